"""Issue #12, the engine: optional and alternative references, JSON text as nested data, export format by
content, headerless CSV, deduplication and hashing any identity field."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import polars as pl
import pytest
from support import convert, read_batch

from logmap import conversion
from logmap.errors import MappingError
from logmap.pipeline.runner import RunOptions
from logmap.sources import load_mapping_text
from logmap.transform.expressions import Scope, compile_template

FRAME = pl.DataFrame(
    {"a": ["x", None, None, ""], "b": [None, "y", None, "z"], "n": [1, None, 3, None],
     "s": [{"f": "sf"}, None, {"f": None}, {"f": "g"}],
     "items": [[{"id": "A"}], [], None, [{"id": "B"}, {"id": "C"}]]},
    schema={"a": pl.String, "b": pl.String, "n": pl.Int64, "s": pl.Struct({"f": pl.String}),
            "items": pl.List(pl.Struct({"id": pl.String}))})


def values(template: str) -> list:
    return FRAME.with_columns(compile_template(template, Scope(FRAME.schema)).expr.alias("v"))["v"].to_list()


@pytest.mark.parametrize(("template", "expected"), [
    ("{nope?}", [None] * 4),
    ("{s.nope?}", [None] * 4),
    ("{s.f?}", ["sf", None, None, "g"]),
    ("{nope[].id?}", [None] * 4),
    ("{a|or:b}", ["x", "y", None, "z"]),  # empty text counts as absent
    ("{a|or:b|upper}", ["X", "Y", None, "Z"]),
    ("{nope?|or:b|or:a}", ["x", "y", None, "z"]),
    ("{a|or:n}", ["x", None, "3", None]),  # kinds differ: compared as text
    ("{n|or:n}", [1, None, 3, None]),
    ("{s.f|or:a}", ["sf", None, None, "g"]),
    ("{items[].id|or:a}", [["A"], None, None, ["B", "C"]]),  # an empty list is absent too
])
def test_optional_and_alternative_references(template, expected):
    assert values(template) == expected


@pytest.mark.parametrize("template", ["{nope}", "{a|or:nope}", "{s.nope|or:a}"])
def test_a_required_name_missing_is_still_an_error(template):
    with pytest.raises(MappingError, match="unknown field 'nope|unknown field 's.nope'"):
        compile_template(template, Scope(FRAME.schema))


def write_ndjson(path, rows) -> str:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def read_rejects(out) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.ndjson").read_text().splitlines()]


def run(tmp_path, inputs, text, name="out", **keyword):
    result = (partial(conversion.convert, **keyword) if keyword else convert)(
        inputs, load_mapping_text(text, "m.yaml"), tmp_path / name, overwrite=True)
    return result, [r for p in sorted((tmp_path / name).glob("interactions-*")) for r in read_batch(p)]


OPTIONAL = """
logmap: 1
source: {format: ndjson, options: {time: {column: ts, unit: s}}}
identity: {anonymous_id: '{uid?|or:device_id?|or:session.id?}'}
context: {user_agent: false, truncated_ip: false, page: false,
          custom_context: {campaign: '{traffic.campaign?}'}}
rules:
  - {when: {event: view, 'traffic.source?': {null: false}}, type: product_detail_page_view,
     product_ids: '{items[].id?}'}
  - {when: {event: view}, type: home_page_view}
"""


def test_optional_references_on_sparse_ndjson(tmp_path):
    rows = [{"ts": 1709280000, "event": "view", "uid": "u1", "items": [{"id": "A"}]},
            {"ts": 1709280001, "event": "view", "uid": None}]
    result, out = run(tmp_path, [write_ndjson(tmp_path / "a.ndjson", rows)], OPTIONAL)
    assert result.ledger.balanced and result.ledger.emitted == 2
    assert [r["type"] for r in out] == ["home_page_view"] * 2
    assert out[0]["anonymous_id"] == "u1" and "anonymous_id" not in out[1]
    assert "custom_context" not in out[0].get("context", {})
    rows = [{"ts": 1709280000, "event": "view", "device_id": "d1", "traffic": {"source": "g", "campaign": "c"},
             "items": [{"id": "A"}]}]
    result, out = run(tmp_path, [write_ndjson(tmp_path / "b.ndjson", rows)], OPTIONAL, "out2")
    assert out == [{"type": "product_detail_page_view", "product_ids": ["A"], "anonymous_id": "d1",
                    "timestamp": "2024-03-01T08:00:00.000Z", "context": {"custom_context": {"campaign": "c"}}}]


def test_a_misspelled_required_name_stops_before_reading_listing_the_columns(tmp_path):
    rows = [{"ts": 1709280000, "event": "view", "uid": "u1"}]
    with pytest.raises(MappingError, match=r"unknown field 'uidd'.*ts, event, uid"):
        run(tmp_path, [write_ndjson(tmp_path / "a.ndjson", rows)], OPTIONAL.replace("{uid?|", "{uidd|"))


PRODUCTS = "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1"
JSON_TEXT = """
logmap: 1
source: {format: FORMAT, options: {time: {column: ts, unit: s}}}
identity: {anonymous_id: '{uid}'}
context: {user_agent: false, truncated_ip: false, page: false}
rules:
  - when: {event: transaction, 'PRODUCTS.type?': {null: true}}
    type: checkout
    product_ids: '{PRODUCTS[].id}'
    quantities: '{PRODUCTS[].quantity}'
    revenue: '{TRANSACTION.revenue|float}'
  - {when: {event: view, PRODUCTS.id: [A, B]}, type: product_detail_page_view, product_ids: '{PRODUCTS.id}'}
""".replace("PRODUCTS", PRODUCTS).replace("TRANSACTION", "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1")

EVENTS = [
    {"ts": 1709280000, "uid": "u1", "event": "view", PRODUCTS: '[{"id":"A","quantity":1,"price":9.5}]',
     "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1": None},
    {"ts": 1709280010, "uid": "u1", "event": "transaction",
     PRODUCTS: '[{"id":"A","quantity":2,"extra":{"x":[1]}},{"id":"C","quantity":1.0}]',
     "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1": '[{"revenue":21.5,"currency":"EUR"}]'},
    {"ts": 1709280020, "uid": "u2", "event": "transaction", PRODUCTS: '[{"id":"B", "quantity": 1}',
     "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1": '[{"revenue":3}]'},
    {"ts": 1709280030, "uid": "u2", "event": "view", PRODUCTS: "",
     "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1": ""},
]


def write_events(tmp_path, fmt: str) -> str:
    frame = pl.DataFrame(EVENTS)
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_ndjson(path)
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_json_text_columns_are_nested_data(tmp_path, fmt):
    result, out = run(tmp_path, [write_events(tmp_path, fmt)], JSON_TEXT.replace("FORMAT", fmt))
    assert [(r["type"], r.get("product_ids"), r.get("quantities"), r.get("revenue")) for r in out] == [
        ("product_detail_page_view", ["A"], None, None),
        ("checkout", ["A", "C"], [2.0, 1.0], 21.5),
    ]
    ledger = result.ledger.to_dict()
    assert ledger["dropped"] == {f"invalid:{PRODUCTS}": 1, "unmatched": 1} and ledger["balanced"]
    rejects = read_rejects(tmp_path / "out")
    assert [(r["reason"], r["line"]) for r in rejects] == [(f"invalid:{PRODUCTS}", 3 if fmt != "ndjson" else 3)]
    assert '[{"id":"B"' in rejects[0]["message"]


def test_the_same_events_as_native_nested_ndjson_give_the_same_records(tmp_path):
    transaction = "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"
    native = [{**e, PRODUCTS: json.loads(e[PRODUCTS]), transaction: json.loads(e[transaction] or "null")}
              for e in EVENTS if e["uid"] == "u1"]
    _, text_records = run(tmp_path, [write_events(tmp_path, "csv")], JSON_TEXT.replace("FORMAT", "csv"))
    _, native_records = run(tmp_path, [write_ndjson(tmp_path / "n.ndjson", native)],
                            JSON_TEXT.replace("FORMAT", "ndjson"), "out2")
    assert native_records == text_records


SHAPES = """
logmap: 1
source: {format: ndjson, options: {time: {column: ts, unit: s}}}
identity: {anonymous_id: '{uid}'}
context: {user_agent: false, truncated_ip: false, page: false}
rules:
  - {when: {event: view}, type: product_detail_page_view, product_ids: '{items[].item_id}'}
  - {when: {event: cart}, type: add_to_cart, product_ids: '{cart.sku}'}
"""


def test_a_column_the_mapping_does_not_use_never_stops_a_run(tmp_path):
    rows = [{"ts": 1709280000, "uid": "u1", "event": "view", "items": [], "other": "text"},
            {"ts": 1709280001, "uid": "u1", "event": "view", "items": [], "other": {"an": ["object"]}}]
    result, out = run(tmp_path, [write_ndjson(tmp_path / "a.ndjson", rows)], SHAPES.replace("{cart.sku}", "x"))
    # a list that is empty in every row of the file (null-typed) gives zero items, not an unknown field
    assert result.ledger.balanced and result.ledger.emitted == 2
    assert [r.get("product_ids") for r in out] == [None, None]


def test_a_column_the_mapping_uses_whose_shape_varies_is_named_with_file_and_line(tmp_path):
    rows = [{"ts": 1709280000, "uid": "u1", "event": "cart", "items": [], "cart": {"sku": "S1"}},
            {"ts": 1709280001, "uid": "u1", "event": "cart", "items": [], "cart": "S2"},
            {"ts": 1709280002, "uid": "u1", "event": "cart", "items": [], "cart": '{"sku": "S3"}'}]
    path = write_ndjson(tmp_path / "a.ndjson", rows)
    result, out = run(tmp_path, [path], SHAPES)
    assert [r["product_ids"] for r in out] == [["S1"], ["S3"]]
    rejects = read_rejects(tmp_path / "out")
    assert [(r["reason"], r["file"], r["line"]) for r in rejects] == [("invalid:cart", path, 2)]
    assert "cart is not JSON of the shape the mapping reads: S2" in rejects[0]["message"]


def write_all_formats(tmp_path) -> dict[str, str]:
    import gzip

    frame = pl.DataFrame(EVENTS)
    paths = {}
    for name, write in [("e.parquet", frame.write_parquet), ("e.ndjson", frame.write_ndjson),
                        ("e.csv", frame.write_csv), ("e.tsv", lambda p: frame.write_csv(p, separator="\t"))]:
        write(tmp_path / name)
        paths[name] = str(tmp_path / name)
    for name in ("e.ndjson", "e.tsv"):
        zipped = tmp_path / f"z{name}.gz"
        zipped.write_bytes(gzip.compress((tmp_path / name).read_bytes()))
        paths[f"{name}.gz"] = str(zipped)
    return paths


def test_format_auto_reads_every_export_format_by_content(tmp_path):
    outcomes = {}
    for name, path in write_all_formats(tmp_path).items():
        result, out = run(tmp_path, [path], JSON_TEXT.replace("FORMAT", "auto"), f"out-{name}")
        outcomes[name] = (out, result.ledger.to_dict()["dropped"])
    first = outcomes["e.parquet"]
    assert len(first[0]) == 2
    assert all(outcome == first for outcome in outcomes.values()), outcomes


@pytest.mark.parametrize(("fmt", "name", "looks"), [
    ("ndjson", "e.csv", r"looks like CSV \(first line: 'ts,uid,event,.*'\), not ndjson: set source.format to csv"),
    ("csv", "e.ndjson", r"looks like NDJSON \(one JSON object per line\), not csv: set source.format to ndjson"),
    ("parquet", "e.tsv.gz", r"looks like gzip-compressed TSV \(tab-separated\) \(first line: 'ts\\tuid"),
    ("ndjson", "e.parquet", r"looks like Parquet, not ndjson"),
])
def test_an_explicit_format_that_does_not_fit_says_what_the_file_looks_like(tmp_path, fmt, name, looks):
    from logmap.errors import InputError

    paths = write_all_formats(tmp_path)
    with pytest.raises(InputError, match=looks):
        run(tmp_path, [paths[name]], JSON_TEXT.replace("FORMAT", fmt))


HEADERLESS = r"""
logmap: 1
source:
  format: FORMAT
  options:
    time: {column: ts, unit: s}
    NAMES
    escape: '\'
    quote: ''
identity: {anonymous_id: '{uid}'}
context: {user_agent: false, truncated_ip: false, page: {url: '{url}'}}
rules:
  - {type: product_detail_page_view, product_ids: '{sku}'}
"""


@pytest.mark.parametrize("names", ["header: false\n    columns: [ts, uid, sku, url]",
                                   "header: false\n    header_file: HEADERS",
                                   "header: false\n    header_file: column_headers.tsv"])  # beside the data
def test_headerless_tsv_with_escapes(tmp_path, names):
    (tmp_path / "column_headers.tsv").write_text("ts\tuid\tsku\turl\n")
    data = ('1709280000\tu1\tA\\\tB\thttps://s.example/a\n'          # an escaped tab inside a value
            '1709280001\tu1\t"C\\\\\thttps://s.example/multi\\\nline\n'  # an escaped backslash, an escaped newline
            '1709280002\tu2\tD\t\n')
    (tmp_path / "hit_data.tsv").write_text(data)
    text = HEADERLESS.replace("FORMAT", "auto").replace(
        "NAMES", names.replace("HEADERS", str(tmp_path / "column_headers.tsv")))
    result, out = run(tmp_path, [str(tmp_path / "hit_data.tsv")], text)
    assert result.ledger.balanced and result.ledger.input_rows == 3
    assert [(r["product_ids"], r.get("context", {}).get("page", {}).get("url")) for r in out] == [
        (["A\tB"], "https://s.example/a"), (['"C\\'], "https://s.example/multi\nline"), (["D"], None)]


@pytest.mark.parametrize(("options", "message"), [
    ("{time: ts, header: false}", "needs its column names"),
    ("{time: ts, columns: [a], header_file: h.tsv}", "not both"),
    ("{time: ts, separator: ';;'}", "too long"),
])
def test_csv_option_mistakes_are_mapping_errors(options, message):
    with pytest.raises(MappingError, match=message):
        load_mapping_text(f"logmap: 1\nsource: {{format: csv, options: {options}}}\nrules: [{{type: home_page_view}}]\n",
                          "m.yaml")


HASHED_USER = """
logmap: 1
source: {format: ndjson, options: {time: {column: ts, unit: s}}}
identity:
  user_id: {hmac: ['{email|trim|lower}'], KEY}
  anonymous_id: '{device}'
context: {user_agent: false, truncated_ip: false, page: false}
rules:
  - {type: home_page_view}
"""


def test_a_user_id_can_be_a_keyed_hash(tmp_path):
    import hashlib
    import hmac

    rows = [{"ts": 1709280000, "email": " Ann@Example.com", "device": "d1"}, {"ts": 1709280001, "device": "d2"}]
    path = write_ndjson(tmp_path / "a.ndjson", rows)
    _, out = run(tmp_path, [path], HASHED_USER.replace("KEY", "key: 'env:SHOP_KEY'"), key="secret")
    expected = hmac.new(b"secret", b"ann@example.com", hashlib.sha256).hexdigest()
    assert [(r.get("user_id"), r["anonymous_id"]) for r in out] == [(expected, "d1"), (None, "d2")]
    assert "Ann" not in (tmp_path / "out" / "interactions-00001.ndjson").read_text()
    _, out = run(tmp_path, [path], HASHED_USER.replace("KEY", "key: none"), "out2", key=None)
    assert out[0]["user_id"] == hashlib.sha256(b"ann@example.com").hexdigest()


def test_a_hashed_user_id_without_its_key_stops_before_reading(tmp_path, monkeypatch):
    from logmap.cli.secrets import anonymous_key_from_environment

    monkeypatch.delenv("SHOP_KEY", raising=False)
    path = write_ndjson(tmp_path / "a.ndjson", [{"ts": 1709280000, "email": "a@b.c", "device": "d"}])
    text = HASHED_USER.replace("KEY", "key: 'env:SHOP_KEY'")
    assert anonymous_key_from_environment(load_mapping_text(text, "m.yaml")) is None  # the CLI reads SHOP_KEY
    with pytest.raises(MappingError, match=r"m.yaml:5:\d+: identity.user_id.key: environment variable SHOP_KEY "
                                           r"is not set or empty: it must hold the secret key of the user-id hash"):
        run(tmp_path, [path], text, key=None)
    assert not (tmp_path / "out").exists()


DEDUPE = """
logmap: 1
source: {format: ndjson, options: {time: {column: ts, unit: s}}}
identity: {anonymous_id: '{uid}'}
context: {user_agent: false, truncated_ip: false, page: false}
dedupe: {by: [event_id]}
rules:
  - {when: {event: view}, type: home_page_view}
"""


def test_dedupe_drops_later_copies_across_chunks_and_files(tmp_path):
    first = [{"ts": 1709280000 + i, "uid": f"u{i % 3}", "event": "view", "event_id": f"e{i % 7}"} for i in range(20)]
    second = [{"ts": 1709290000 + i, "uid": "u9", "event": "view" if i else "other", "event_id": f"e{i}"}
              for i in range(10)] + [{"ts": 1709290100, "uid": "u9", "event": "view", "event_id": None}] * 2
    paths = [write_ndjson(tmp_path / "a.ndjson", first), write_ndjson(tmp_path / "b.ndjson", second)]
    result = convert(paths, load_mapping_text(DEDUPE, "m.yaml"), tmp_path / "out",
                     options=RunOptions(chunk_bytes=300))  # many small chunks
    ledger = result.ledger.to_dict()
    # a.ndjson: e0..e6 once each; b.ndjson: e7, e8, e9 are new, e0 (an 'other' event) and e1..e6 are copies;
    # rows without an event_id are never duplicates
    assert ledger["dropped"] == {"duplicate": 13 + 7}
    assert ledger["emitted"] == 7 + 3 + 2 and ledger["balanced"]


def test_seen_keys_stay_exact_as_runs_merge():
    from logmap.transform.dedupe import SeenKeys

    seen = SeenKeys()
    for start in range(0, 5000, 250):
        batch = pl.Series(range(start, start + 250), dtype=pl.UInt64)
        assert not seen.contains(batch).any()
        seen.add(batch)
        assert seen.contains(pl.Series(range(start + 250), dtype=pl.UInt64)).all()
    assert len(seen) == 5000 and len(seen._runs) <= 13


def test_a_csv_column_the_mapping_does_not_use_is_not_parsed(tmp_path):
    lines = ["ts,uid,event,code"] + [f"{1709280000 + i},u{i},view,{i}" for i in range(12_000)]
    (tmp_path / "a.csv").write_text("\n".join([*lines, "1709299999,u1,view,not-a-number"]) + "\n")
    text = OPTIONAL.replace("format: ndjson", "format: csv").replace("'{uid?|or:device_id?|or:session.id?}'", "'{uid}'")
    result, out = run(tmp_path, [str(tmp_path / "a.csv")], text)
    assert result.ledger.emitted == 12_001 and result.ledger.balanced


def test_a_misspelled_field_inside_json_text_stops_before_reading(tmp_path):
    text = JSON_TEXT.replace("FORMAT", "csv").replace(f"{PRODUCTS}[].quantity}}", f"{PRODUCTS}[].quantitty}}")
    with pytest.raises(MappingError, match=r"m.yaml:\d+:\d+: rules\[0\].quantities: unknown field "
                                           rf"'{PRODUCTS}\[\].quantitty': column {PRODUCTS} holds JSON text, and its "
                                           r"first 10,000 values have no such field \(they have: \[\].id, "
                                           r"\[\].quantity, \[\].price, \[\].extra.x\[\]\); write '.*\?'"):
        run(tmp_path, [write_events(tmp_path, "csv")], text)
    # optional, it is read when it appears
    result, _ = run(tmp_path, [write_events(tmp_path, "csv")], text.replace("quantitty}", "quantitty?}"))
    assert result.ledger.balanced


def test_both_hashes_of_a_run_name_the_same_key_variable():
    text = HASHED_USER.replace("KEY", "key: 'env:SHOP_KEY'").replace(
        "anonymous_id: '{device}'", "anonymous_id: {hmac: ['{device}'], key: 'env:OTHER_KEY'}")
    with pytest.raises(MappingError, match=r"identity.user_id.key: one run has one hash key: write "
                                           r"key: env:OTHER_KEY here too"):
        load_mapping_text(text, "m.yaml")


def test_dedupe_on_the_real_snowplow_sample_given_twice(tmp_path, converted):
    """The real e-commerce events delivered twice (at-least-once): every second copy is a `duplicate`, and the
    records are byte for byte those of one delivery."""
    root = Path(__file__).resolve().parents[1]
    real = root / "fixtures/exports/snowplow-warehouse/csv/snowplow_ecommerce_events.csv.gz"
    again = tmp_path / "redelivered.csv.gz"
    again.write_bytes(real.read_bytes())
    mapping = root / "mappings/snowplow-enriched.yaml"
    once, once_out = converted([str(real)], mapping)
    twice = convert([str(real), str(again)], mapping, tmp_path / "twice")
    assert twice.ledger.input_rows == 2 * once.ledger.input_rows == 1668
    assert twice.ledger.dropped["duplicate"] == 834 and twice.ledger.balanced
    assert (tmp_path / "twice/interactions-00001.ndjson").read_bytes() == \
        (once_out / "interactions-00001.ndjson").read_bytes()
