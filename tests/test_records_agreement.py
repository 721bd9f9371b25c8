"""The vectorised validator and a standard JSON Schema validator agree on every generated record.

Records are generated in the record frame (the only form the pipeline validates): mostly valid, each with at
most a couple of injected faults, with boundary values on the valid side too (ids of exactly 512 and 1024
characters, leap days, the odd spellings ``uuid.UUID`` accepts). Each row is encoded by logmap's encoder and
judged twice: by ``logmap.records.validate`` and by ``jsonschema`` (Draft 2020-12, ``FormatChecker``) over the
vendored schema. Nothing here reads the API spec itself: the vendored schema ships with the package.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import jsonschema
import polars as pl
import pytest

from logmap.records.encode import encode_frame
from logmap.records.schema import LIST_F64, LIST_STR, RECORD_COLUMNS, conform
from logmap.records.types import ALLOWED_FIELDS, INTERACTION_TYPES, TYPE_SCHEMAS, interaction_schema
from logmap.records.validate import SPEC_RULES, checks, validate

N = 6000
SEED = 20240229

DYNAMIC = {
    "search.filters.color": LIST_STR,
    "search.filters.size": LIST_STR,
    "context.custom_context.flag": pl.Boolean(),
    "context.custom_context.n": pl.Int64(),
    "context.custom_context.x": pl.Float64(),
    "context.custom_context.s": pl.String(),
    "context.custom_context.lf": LIST_F64,
    "context.custom_context.ls": LIST_STR,
}

TEXT = ["", "plain", "café ☕", 'quote " and \\ backslash', "new\nline\ttab\r", "\x00nul\x01\x1f\x7f", "😀 emoji",
        "\u2028\u2029", "中文字", "</script>", "a" * 600, "{\"k\":null}", "null"]
# Characters of 1, 2, 3 and 4 UTF-8 bytes: maxLength counts characters, not bytes.
CHARS = ["x", "é", "中", "😀"]

UUIDS_OK = ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000",
            "00000000-0000-0000-0000-000000000000",
            # what uuid.UUID + jsonschema's hyphen positions also accept:
            "123e4567-e89b-12d3-a456-426614174000-", "123e4567-e89b-12d3-a456-426614174000}}",
            "123e4567-e89b-12d3-a456-4266_4174000", "+23e4567-e89b-12d3-a456-426614174000",
            " 23e4567-e89b-12d3-a456-426614174000", "0x3e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400\n", "123e4567-e89b-12d3-a456-42661417400\u0663",
            "123e4567-e89b-12d3-a456-42661417400\uff11", "0X_e4567-e89b-12d3-a456-426614174000",
            "\u300023e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400\x85"]
UUIDS_BAD = ["", "not-a-uuid", "123e4567e89b12d3a456426614174000", "{123e4567-e89b-12d3-a456-426614174000}",
             "urn:uuid:123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400g",
             "123e4567-e89b-12d3-a456-4266141740001", "123e4567-e89b-12d3-a456_426614174000",
             "123e4567-e89b-12d3-a456-4266__174000", "_23e4567-e89b-12d3-a456-426614174000",
             "++3e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400\uff41",
             "123e4567-e89b-12d3-a456-42661417400_", "1x3e4567-e89b-12d3-a456-426614174000",
             "123e4567-e89b-12d3-a456-4266141740\u00e9\u00e9", "123e4567 e89b 12d3 a456 426614174000",
             "\x1c23e4567-e89b-12d3-a456-426614174000"]
IPS_OK = ["1.2.3.0", "0.0.0.0", "255.255.255.255", "10.0.0.0", "192.168.100.0", "9.99.199.249"]
IPS_BAD = ["", "01.2.3.4", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "1.2.3.-1",
           "2001:db8::1", "a.b.c.d", "\u0661.\u0662.\u0663.\u0664", "1.2.3.4/32", "1..2.3", "0.0.0.00",
           "255.255.255.256", "1.2.3.1000", "+1.2.3.4", "1.2.3.4."]
TIMES_OK = ["2024-03-01T10:00:00Z", "2024-02-29T23:59:59.999Z", "2000-02-29T00:00:00+00:00",
            "2023-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.123456789Z",
            "2024-03-01t10:00:00z", "2024-03-01T10:00:00Z\n", "2024-04-30T12:00:00+05:30", "1996-02-29T00:00:00Z"]
TIMES_BAD = ["", "2024-02-30T10:00:00Z", "2023-02-29T10:00:00Z", "1900-02-29T00:00:00Z", "2024-04-31T00:00:00Z",
             "0000-01-01T00:00:00Z", "2024-03-01T24:00:00Z", "2024-03-01T23:59:60Z", "2024-03-01T10:00Z",
             "2024-03-01 10:00:00Z", "2024-03-01T10:00:00", "2024-03-01T10:00:00+24:00", "2024-3-01T10:00:00Z",
             "2024-03-01T10:00:00Z ", "\uff12024-03-01T10:00:00Z", "2024-03-01T10:00:00.Z", "2024-13-01T10:00:00Z",
             "2024-00-10T10:00:00Z", "2024-03-00T10:00:00Z", "2024-03-01T10:00:00+0100", "+2024-03-01T10:00:00Z"]
MS_PER_DAY = 86_400_000
MS_OK = [-62_135_596_800_000, 253_402_300_799_999, 951_782_400_000]  # 0001-01-01, 9999-12-31T23:59:59.999, 2000-02-29
MS_BAD = [-62_135_596_800_001, 253_402_300_800_000, -62_198_755_200_000, -99_999_999_999_999]  # year 0, 10000, …

FIELDS = ["user_id", "anonymous_id", "miso_id", "timestamp", "product_ids", "product_group_ids", "category",
          "quantities", "revenue", "rating", "duration", "custom_action_name", "question_id", "result_type", "value",
          "search.keywords", "search.filters.color", "search.filters.size", "context.page.url",
          "context.page.referrer", "context.page.title", "context.user_agent", "context.truncated_ip",
          "context.locale", "context.region", "context.campaign.name", "context.campaign.source",
          "context.campaign.medium", "context.campaign.term", "context.campaign.content",
          "context.custom_context.flag", "context.custom_context.n", "context.custom_context.x",
          "context.custom_context.s", "context.custom_context.lf", "context.custom_context.ls"]
FLOATS_OK = [0.0, -0.0, 1.0, -1.5, 42.0, 1e300, 5e-324, 123456.789]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def allows(type_: str | None, column: str) -> bool:
    return type_ in ALLOWED_FIELDS and column.split(".", 1)[0] in ALLOWED_FIELDS[type_]


def sized(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(CHARS, k=length))


def valid_value(rng: random.Random, column: str, text_time: bool) -> Any:
    """A value the schema accepts for ``column`` (boundaries included)."""
    if column == "user_id":
        return sized(rng, rng.choice([1, 8, 511, 512]))
    if column == "anonymous_id":
        return sized(rng, rng.choice([1, 64, 1023, 1024]))
    if column == "question_id":
        return sized(rng, rng.choice([0, 3, 512]))
    if column == "miso_id":
        return rng.choice(UUIDS_OK)
    if column == "timestamp":
        if text_time:
            return rng.choice(TIMES_OK)
        return rng.choice(MS_OK) if rng.random() < 0.2 else 1_577_836_800_000 + rng.randrange(2000 * MS_PER_DAY)
    if column in ("product_ids", "product_group_ids"):
        return [sized(rng, rng.choice([1, 5, 512])) if rng.random() < 0.3 else rng.choice(TEXT)[:512]
                for _ in range(rng.randint(0, 3))]
    if column in ("category", "search.filters.color", "search.filters.size", "context.custom_context.ls"):
        return [rng.choice(TEXT) for _ in range(rng.randint(0, 3))]
    if column in ("quantities", "context.custom_context.lf"):
        return [rng.choice(FLOATS_OK) for _ in range(rng.randint(0, 3))]
    if column in ("revenue", "rating", "duration", "context.custom_context.x"):
        return rng.choice(FLOATS_OK)
    if column == "context.truncated_ip":
        return rng.choice(IPS_OK)
    if column == "context.custom_context.flag":
        return rng.random() < 0.5
    if column == "context.custom_context.n":
        return rng.choice([0, -1, 7, 2**63 - 1, -(2**63)])
    return rng.choice(TEXT)


# --- faults: each makes the record invalid in one way, named by the check class that should catch it ----------

Fault = Callable[[random.Random, dict, bool], bool]  # changes the row; False when it does not apply


def _unknown_type(rng: random.Random, row: dict, text_time: bool) -> bool:
    row["type"] = rng.choice(["bogus", "Search", "", "page_view", "home_page_view "])
    return True


def _missing_type(rng: random.Random, row: dict, text_time: bool) -> bool:
    row["type"] = None
    return True


def _additional(rng: random.Random, row: dict, text_time: bool) -> bool:
    column = rng.choice([c for c in FIELDS if not c.startswith("context.") and not allows(row["type"], c)])
    row[column] = valid_value(rng, column, text_time)
    return True


def _required(rng: random.Random, row: dict, text_time: bool) -> bool:
    if row["type"] not in ALLOWED_FIELDS:
        return False
    row["type"] = "custom"
    for column in [c for c in row if not allows("custom", c) and not c.startswith("context.")]:
        del row[column]
    row.pop("custom_action_name", None)
    return True


def _max_length(rng: random.Random, row: dict, text_time: bool) -> bool:
    options = ["user_id", "anonymous_id"] + [c for c in ("product_ids", "product_group_ids", "question_id")
                                             if allows(row["type"], c)]
    column = rng.choice(options)
    limit = 1024 if column == "anonymous_id" else 512
    long = sized(rng, limit + rng.choice([1, 1, 2, 100]))
    row[column] = [*(row.get(column) or []), long] if column.endswith("_ids") else long
    return True


def _null_item(rng: random.Random, row: dict, text_time: bool) -> bool:
    options = [c for c in ("product_ids", "product_group_ids", "category", "quantities", "search.filters.color")
               if allows(row["type"], c)] + ["context.custom_context.lf", "context.custom_context.ls"]
    column = rng.choice(options)
    items = list(row.get(column) or [])
    items.insert(rng.randint(0, len(items)), None)
    row[column] = items
    if column == "quantities" and row.get("product_ids") is not None:
        row["product_ids"] = [*row["product_ids"], "p"]  # keep the lengths as they were
    return True


def _non_finite(rng: random.Random, row: dict, text_time: bool) -> bool:
    options = [c for c in ("revenue", "rating", "duration", "quantities") if allows(row["type"], c)]
    column = rng.choice(options + ["context.custom_context.x", "context.custom_context.lf"])
    bad = rng.choice(NON_FINITE)
    if column in ("quantities", "context.custom_context.lf"):
        items = list(row.get(column) or [1.0])
        items[rng.randrange(len(items))] = bad
        row[column] = items
    else:
        row[column] = bad
    return True


def _date_time(rng: random.Random, row: dict, text_time: bool) -> bool:
    row["timestamp"] = rng.choice(TIMES_BAD) if text_time else rng.choice(MS_BAD)
    return True


def _uuid(rng: random.Random, row: dict, text_time: bool) -> bool:
    row["miso_id"] = rng.choice(UUIDS_BAD)
    return True


def _ipv4(rng: random.Random, row: dict, text_time: bool) -> bool:
    row["context.truncated_ip"] = rng.choice(IPS_BAD)
    return True


def _page_without_url(rng: random.Random, row: dict, text_time: bool) -> bool:
    row.pop("context.page.url", None)
    row[rng.choice(["context.page.referrer", "context.page.title"])] = rng.choice(TEXT)
    return True


def _quantities_length(rng: random.Random, row: dict, text_time: bool) -> bool:
    if not allows(row["type"], "quantities"):
        return False
    ids = row.get("product_ids") or ["p"]
    row["product_ids"] = ids
    row["quantities"] = [1.0] * (len(ids) + rng.choice([-1, 1])) if len(ids) > 1 else [1.0, 2.0]
    return True


FAULTS: dict[str, Fault] = {
    "enum": _unknown_type, "type_required": _missing_type, "additional": _additional, "required": _required,
    "maxLength": _max_length, "items": _null_item, "finite": _non_finite, "format:date-time": _date_time,
    "format:uuid": _uuid, "format:ipv4": _ipv4, "page.url": _page_without_url,
    "quantities_length": _quantities_length,
}

#: How often each fault is picked: an unknown or missing type is checked against the whole (slow) anyOf, and
#: quantities_length applies to two types only.
FAULT_WEIGHTS = {name: {"enum": 0.4, "type_required": 0.4, "quantities_length": 2.5}.get(name, 1.0) for name in FAULTS}


def generate(rng: random.Random, n: int) -> tuple[list[dict], list[bool], Counter]:
    """``n`` rows (record-frame column → value), whether each uses a text timestamp, and injected faults."""
    rows, text_times, injected = [], [], Counter()
    for _ in range(n):
        text_time = rng.random() < 0.5
        # a bias towards the types with a required field or quantities
        type_ = rng.choice(INTERACTION_TYPES) if rng.random() > 0.1 else rng.choice(["custom", "checkout",
                                                                                      "add_to_cart"])
        row: dict = {"type": type_}
        for column in rng.sample(FIELDS, rng.randint(0, 12)):
            if allows(type_, column) or column.startswith("context."):
                row[column] = valid_value(rng, column, text_time)
        if "context.page.referrer" in row or "context.page.title" in row:
            row["context.page.url"] = rng.choice(TEXT)
        if type_ == "custom":
            row["custom_action_name"] = rng.choice(TEXT)
        if row.get("quantities") is not None and row.get("product_ids") is not None:
            row["quantities"] = [rng.choice(FLOATS_OK) for _ in row["product_ids"]]
        faults: set[str] = set()
        for _ in range(rng.choices([0, 1, 2], weights=[45, 45, 10])[0]):
            faults.add(rng.choices(list(FAULT_WEIGHTS), weights=list(FAULT_WEIGHTS.values()))[0])
        for name in sorted(faults):
            if FAULTS[name](rng, row, text_time):
                injected[name] += 1
        rows.append(row)
        text_times.append(text_time)
    return rows, text_times, injected


def frame_of(rows: list[dict], text_time: bool) -> pl.DataFrame:
    schema = {**RECORD_COLUMNS, **DYNAMIC, "timestamp": pl.String() if text_time else pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema)
    if not text_time:
        frame = frame.with_columns(pl.from_epoch("timestamp", "ms").dt.replace_time_zone("UTC"))
    return conform(frame)


def type_validator(type_: str) -> jsonschema.Draft202012Validator:
    """A validator for one type's definition, its ``$ref``s resolved against the vendored ``$defs``."""
    name = next(n for n, d in interaction_schema()["$defs"].items() if d is TYPE_SCHEMAS[type_])
    schema = {"$defs": interaction_schema()["$defs"], "$ref": f"#/$defs/{name}"}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def judged() -> dict[str, Any]:
    rng = random.Random(SEED)
    rows, text_times, injected = generate(rng, N)
    parts = []
    for text_time in (False, True):
        chosen = [i for i, t in enumerate(text_times) if t == text_time]
        frame = frame_of([rows[i] for i in chosen], text_time).with_columns(pl.Series("_row", chosen))
        failing = frame.select([c.failed.fill_null(False).alias(f"{k}|{c.name}")
                                for k, c in enumerate(checks(frame.schema))])
        parts.append(pl.DataFrame({
            "_row": chosen,
            "record": encode_frame(frame),
            "ours": validate(frame, spec_rules=False)["_drop"],
            "ours_with_spec_rules": validate(frame)["_drop"],
            "failed": failing.select(pl.concat_list(
                pl.when(pl.col(c)).then(pl.lit(c.split("|", 1)[1])) for c in failing.columns
            ).list.drop_nulls().list.unique().list.sort()).to_series(),
        }))
    table = pl.concat(parts).sort("_row")
    root = jsonschema.Draft202012Validator(interaction_schema(), format_checker=jsonschema.FormatChecker())
    validators = {t: type_validator(t) for t in INTERACTION_TYPES}
    records = [json.loads(r) for r in table["record"]]
    theirs, whole_bodies = [], 0
    for i, record in enumerate(records):
        validator = validators.get(record.get("type")) if isinstance(record.get("type"), str) else None
        if validator is None or i % 50 == 0:
            # Unknown type (or a sample of the rest): the whole request body against the root schema.
            theirs.append(root.is_valid({"data": [record]}))
            whole_bodies += 1
            if validator is not None:
                assert theirs[-1] == validator.is_valid(record), record
        else:
            theirs.append(validator.is_valid(record))
    return {"table": table.with_columns(pl.Series("theirs", theirs)), "records": records, "injected": injected,
            "whole_bodies": whole_bodies}


def test_both_validators_agree_on_every_record(judged):
    table = judged["table"]
    disagreements = table.filter(pl.col("ours").is_null() != pl.col("theirs"))
    assert disagreements.select("record", "ours", "theirs").head(5).to_dicts() == []


def test_the_set_is_large_on_both_sides(judged):
    table = judged["table"]
    valid = table.filter(pl.col("theirs")).height
    assert table.height == N
    assert valid >= 2000 and N - valid >= 2000, valid
    assert judged["whole_bodies"] >= 300  # unknown types and a sample judged as whole {"data": [...]} bodies


def test_every_constraint_class_is_exercised_alone(judged):
    """Each constraint decides some records on its own, so agreement is tested for each one separately."""
    table = judged["table"]
    alone = Counter(f[0] for f in table["failed"].to_list() if len(f) == 1)
    classes = {"enum", "required", "additional", "maxLength", "items", "finite", "format:date-time",
               "format:uuid", "format:ipv4", "page.url", "quantities_length"}
    assert {c: alone[c] for c in classes if alone[c] < 50} == {}
    assert all(judged["injected"][name] >= (50 if name == "quantities_length" else 100) for name in FAULTS), \
        judged["injected"]


def test_boundary_values_are_on_the_valid_side_too(judged):
    valid = [r for r, ok in zip(judged["records"], judged["table"]["theirs"]) if ok]
    assert sum(len(r.get("user_id", "")) == 512 for r in valid) > 20
    assert sum(len(r.get("anonymous_id", "")) == 1024 for r in valid) > 20
    assert sum(any(len(p) == 512 for p in r.get("product_ids", [])) for r in valid) > 10
    assert sum(r.get("miso_id") in UUIDS_OK[3:] for r in valid) > 50
    assert sum("-02-29T" in str(r.get("timestamp", "")) for r in valid) > 20
    assert sum(r.get("context", {}).get("truncated_ip") in ("0.0.0.0", "255.255.255.255") for r in valid) > 20


def test_quantities_length_is_a_spec_rule_outside_the_json_schema(judged):
    table = judged["table"]
    only_spec = table.filter(pl.col("ours").is_null() & pl.col("ours_with_spec_rules").is_not_null())
    assert only_spec.height > 25
    assert set(only_spec["ours_with_spec_rules"]) == {"invalid:quantities"}
    assert only_spec["theirs"].all()  # jsonschema cannot see it
    assert SPEC_RULES == {"quantities_length"}
