"""Export sources: nested references, schema unification, hive folders, CSV/NDJSON, and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from support import convert, read_batch

from logmap.errors import InputError, LogmapError, MappingError
from logmap.sources import load_mapping_text
from logmap.sources.exports import ExportReader, expand_export_inputs, unify_schemas, url_columns
from logmap.transform.expressions import Scope, compile_template

VALUE = pl.Struct({"string_value": pl.String, "int_value": pl.Int64, "float_value": pl.Float64,
                   "double_value": pl.Float64})
GA4_LIKE = pl.DataFrame(
    {
        "event_params": [
            [{"key": "page_location", "value": {"string_value": "https://s.example/p/1?utm_source=x"}},
             {"key": "engagement_time_msec", "value": {"int_value": 1500}},
             {"key": "value", "value": {"double_value": 12.5}}],
            [],
            None,
        ],
        "items": [[{"item_id": "A", "quantity": 2}, {"item_id": "B", "quantity": 1}], [], None],
        "ecommerce": [{"purchase_revenue": 12.5}, None, {"purchase_revenue": None}],
        "context": [{"page": {"url": "https://s.example/"}, "products": [{"sku": "s1"}]}, None, None],
    },
    schema={"event_params": pl.List(pl.Struct({"key": pl.String, "value": VALUE})),
            "items": pl.List(pl.Struct({"item_id": pl.String, "quantity": pl.Int64})),
            "ecommerce": pl.Struct({"purchase_revenue": pl.Float64}),
            "context": pl.Struct({"page": pl.Struct({"url": pl.String}),
                                  "products": pl.List(pl.Struct({"sku": pl.String}))})},
)


def evaluate(template: str) -> list:
    compiled = compile_template(template, Scope(GA4_LIKE.schema))
    return GA4_LIKE.select(compiled.expr.alias("v"))["v"].to_list()


@pytest.mark.parametrize(("template", "expected"), [
    ("{event_params.page_location}", ["https://s.example/p/1?utm_source=x", None, None]),
    ("{event_params.engagement_time_msec|int}", [1500, None, None]),
    ("{event_params.value|float}", [12.5, None, None]),
    ("{event_params.absent}", [None, None, None]),
    ("{items[].item_id}", [["A", "B"], [], None]),
    ("{items[].quantity}", [["2", "1"], [], None]),
    ("{ecommerce.purchase_revenue}", [12.5, None, None]),
    ("{context.page.url}", ["https://s.example/", None, None]),
    ("{context.products[].sku}", [["s1"], None, None]),
    ("{items.item_id}", ["A", None, None]),  # a list of structs without []: the first element
])
def test_nested_references(template, expected):
    assert evaluate(template) == expected


def test_empty_nested_text_is_no_value():
    params = pl.DataFrame({"p": [[{"key": "t", "value": {"string_value": ""}}],
                                 [{"key": "t", "value": {"string_value": "x"}}], None],
                           "s": [{"a": ""}, {"a": "y"}, None]},
                          schema={"p": pl.List(pl.Struct({"key": pl.String, "value": VALUE})),
                                  "s": pl.Struct({"a": pl.String})})
    scope = Scope(params.schema)
    got = params.select(compile_template("{p.t}", scope).expr.alias("t"),
                        compile_template("{s.a}", scope).expr.alias("a"))
    assert got.rows() == [(None, None), ("x", "y"), (None, None)]


@pytest.mark.parametrize("template", ["{items[]}", "{items[].nope}", "{context.page.nope}", "{nope.x}"])
def test_nested_references_that_name_nothing(template):
    with pytest.raises(MappingError, match="unknown field"):
        compile_template(template, Scope(GA4_LIKE.schema))


@pytest.mark.parametrize(("url", "expected"), [
    ("https://s.example", ("https://s.example", "/", None)),  # an origin alone is the root
    ("https://s.example/a/b?x=1#f", ("https://s.example/a/b?x=1#f", "/a/b", "x=1")),
    ("https://s.example?q=1", ("https://s.example?q=1", "/", "q=1")),
    ("/p/1?", ("https://site.example/p/1?", "/p/1", None)),  # an empty query is none
    ("/a#b?c", ("https://site.example/a#b?c", "/a", "c")),
    ("", ("https://site.example", None, None)),
    (None, (None, None, None)),
])
def test_url_columns(url, expected):
    frame = pl.DataFrame({"u": [url]}, schema={"u": pl.String})
    assert frame.select(**url_columns(pl.col("u"), "https://site.example")).row(0) == expected


# --- schemas ------------------------------------------------------------------------------------------------

def test_unify_widens_numbers_and_fills_missing_columns():
    schema = unify_schemas({"a.parquet": pl.Schema({"x": pl.Int32, "s": pl.Struct({"a": pl.Int32})}),
                            "b.parquet": pl.Schema({"x": pl.Int64, "y": pl.String,
                                                    "s": pl.Struct({"a": pl.Int64, "b": pl.String})})})
    assert schema["x"] == pl.Int64 and schema["y"] == pl.String
    assert schema["s"] == pl.Struct({"a": pl.Int64, "b": pl.String})


def test_unify_rejects_text_against_numbers_naming_the_files():
    with pytest.raises(InputError, match=r"column 'x'.*a\.parquet: Int64; b\.parquet: String"):
        unify_schemas({"a.parquet": pl.Schema({"x": pl.Int64}), "b.parquet": pl.Schema({"x": pl.String})})


MAPPING = """
logmap: 1
source:
  format: {fmt}
  options:
    time: {time}
    page_url: '{{page}}'
    required: [uid]
identity:
  anonymous_id: '{{uid}}'
context: {{user_agent: false, truncated_ip: false}}
rules:
  - {{name: product, when: {{event: view}}, path: '^/p/(?P<id>\\w+)', type: product_detail_page_view,
     product_ids: ['{{id}}']}}
  - {{name: cart, when: {{event: add}}, type: add_to_cart, product_ids: ['{{sku}}'], quantities: ['{{qty}}']}}
"""


def mapping(fmt: str, time: str = "{column: ts, unit: ms}", extra_rule: str = ""):
    return load_mapping_text(MAPPING.format(fmt=fmt, time=time) + extra_rule, "test.yaml")


def frame(n: int = 4, **overrides) -> pl.DataFrame:
    data = {"ts": [1709280000000 + i * 1000 for i in range(n)], "uid": [f"u{i % 2}" for i in range(n)],
            "event": ["view", "add"] * (n // 2), "page": [f"https://s.example/p/{i}" for i in range(n)],
            "sku": [f"S{i}" for i in range(n)], "qty": [i + 1 for i in range(n)]}
    data.update(overrides)
    return pl.DataFrame(data)


def records(out: Path) -> list[dict]:
    return [r for p in sorted(out.glob("interactions-*")) for r in read_batch(p)]


def test_hive_partitioned_folder(tmp_path):
    for day in ("2024-03-01", "2024-03-02"):
        folder = tmp_path / "events" / f"event_date={day}"
        folder.mkdir(parents=True)
        frame().write_parquet(folder / "part-0.parquet")
    (tmp_path / "events" / "_SUCCESS").write_text("")
    files = expand_export_inputs([str(tmp_path / "events")], "parquet")
    assert [f.partitions for f in files] == [(("event_date", "2024-03-01"),), (("event_date", "2024-03-02"),)]
    reader = ExportReader([str(tmp_path / "events")], mapping("parquet").source)
    chunks = list(reader)
    assert sum(c.height for c in chunks) == 8
    first = chunks[0]
    assert first["_line"].to_list() == [1, 2, 3, 4] and first["_line"].dtype == pl.UInt64
    assert first["event_date"].unique().to_list() == ["2024-03-01"]
    assert first["time"].dtype == pl.Datetime("ms", "UTC")
    assert first["path"].to_list()[0] == "/p/0" and first["query"].to_list()[0] is None


def test_files_with_differing_schemas_are_unified(tmp_path):
    frame().write_parquet(tmp_path / "a.parquet")
    frame().with_columns(pl.col("qty").cast(pl.Int32)).drop("sku").write_parquet(tmp_path / "b.parquet")
    result = convert([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], mapping("parquet"), tmp_path / "o")
    assert result.ledger.balanced and result.ledger.input_rows == 8
    # b.parquet has no sku: its add_to_cart rows lack product ids (quantities without products are invalid)
    assert result.ledger.emitted + result.ledger.dropped_total == 8


def test_files_with_conflicting_schemas_stop_before_output(tmp_path):
    frame().write_parquet(tmp_path / "a.parquet")
    frame(qty=["one", "two", "three", "four"]).write_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"column 'qty'.*a\.parquet.*b\.parquet"):
        convert([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], mapping("parquet"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_missing_column_stops_before_output_and_lists_the_columns(tmp_path):
    frame().drop("sku").write_parquet(tmp_path / "a.parquet")
    with pytest.raises(LogmapError) as error:
        convert([str(tmp_path / "a.parquet")], mapping("parquet"), tmp_path / "o")
    message = str(error.value)
    assert "'sku'" in message and "ts, uid, event, page, qty" in message
    assert not (tmp_path / "o").exists()


def test_missing_time_column_names_the_files_columns(tmp_path):
    frame().drop("ts").write_parquet(tmp_path / "a.parquet")
    with pytest.raises(LogmapError, match=r"'ts'.*uid, event, page, sku, qty"):
        convert([str(tmp_path / "a.parquet")], mapping("parquet"), tmp_path / "o")


def test_null_required_values_are_dropped_with_a_reason(tmp_path):
    frame(uid=["u0", None, "u1", "u1"], ts=[1709280000000, 1709280001000, None, 1709280003000]) \
        .write_parquet(tmp_path / "a.parquet")
    result = convert([str(tmp_path / "a.parquet")], mapping("parquet"), tmp_path / "o")
    assert result.ledger.to_dict()["dropped"] == {"missing:uid": 1, "missing:ts": 1}
    assert result.ledger.emitted == 2 and result.ledger.balanced


def test_csv_with_a_time_format(tmp_path):
    data = frame().with_columns(ts=pl.Series(["2024-03-01 10:00:00", "2024-03-01 10:00:01", "bad",
                                              "2024-03-01 10:00:03"]))
    data.write_csv(tmp_path / "a.csv")
    result = convert([str(tmp_path / "a.csv")], mapping("csv", "{column: ts, format: '%Y-%m-%d %H:%M:%S'}"),
                     tmp_path / "o")
    assert result.ledger.to_dict()["dropped"] == {"invalid:timestamp": 1}
    got = records(tmp_path / "o")
    assert [r["timestamp"] for r in got] == ["2024-03-01T10:00:00.000Z", "2024-03-01T10:00:01.000Z",
                                             "2024-03-01T10:00:03.000Z"]
    assert got[2]["quantities"] == [4.0] and got[2]["product_ids"] == ["S3"]


def test_gzipped_ndjson_with_iso_times_and_broken_lines(tmp_path):
    rows = [{"ts": f"2024-03-01T10:00:0{i}.250Z", "uid": "u1", "event": "view", "page": f"/p/{i}"} for i in range(3)]
    text = "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n{\"ts\": \"2024\n" + json.dumps(rows[2]) + "\n"
    (tmp_path / "a.ndjson.gz").write_bytes(gzip.compress(text.encode()))
    spec = MAPPING.format(fmt="ndjson", time="{column: ts}").replace(
        "  - {name: cart, when: {event: add}, type: add_to_cart, product_ids: ['{sku}'], quantities: ['{qty}']}\n", "")
    result = convert([str(tmp_path / "a.ndjson.gz")], load_mapping_text(spec, "t.yaml"), tmp_path / "o")
    assert result.ledger.to_dict()["dropped"] == {"malformed": 2}
    got = records(tmp_path / "o")
    assert [r["timestamp"] for r in got] == [f"2024-03-01T10:00:0{i}.250Z" for i in range(3)]
    rejects = [json.loads(line) for line in (tmp_path / "o" / "rejects.ndjson").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [3, 4]


def test_unknown_export_option_is_a_mapping_error():
    with pytest.raises(MappingError, match="source.options"):
        load_mapping_text(MAPPING.format(fmt="parquet", time="{column: ts, unit: minutes}"), "t.yaml")


def test_filter_drop_conditions_name_their_reason(tmp_path, monkeypatch):
    """`filter.drop`: reason → column conditions; the first reason whose conditions all hold names the drop,
    before the other filters; a misspelled column stops the run before reading, like a rule's `when`."""
    monkeypatch.setenv("LOGMAP_KEY", "k")
    spec = """
logmap: 1
source: {format: ndjson, options: {time: {column: t, unit: s}}}
filter:
  drop:
    exclude_hit: {exclude_hit: {not: 0}}
    hit_source: {hit_source: [5, 7, 8, 9], visitor: {regex: '^v'}}
identity: {anonymous_id: '{visitor}'}
context: {user_agent: false, truncated_ip: false}
rules: [{type: home_page_view}]
"""
    rows = [{"t": 1709287200 + i, "visitor": "v1", "exclude_hit": hit, "hit_source": source}
            for i, (hit, source) in enumerate([(0, 1), (4, 1), (0, 5), (3, 8), (0, 9)])]
    rows[4]["visitor"] = "x1"  # hit_source 9 but the second condition fails: kept
    (tmp_path / "a.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = convert([str(tmp_path / "a.ndjson")], load_mapping_text(spec, "t.yaml"), tmp_path / "o")
    ledger = result.ledger.to_dict()
    assert ledger["dropped"] == {"filtered:exclude_hit": 2, "filtered:hit_source": 1}
    assert ledger["emitted"] == 2 and ledger["balanced"]
    with pytest.raises(MappingError, match="exclude_hitt"):
        bad = spec.replace("exclude_hit: {not: 0}", "exclude_hitt: {not: 0}")
        convert([str(tmp_path / "a.ndjson")], load_mapping_text(bad, "t.yaml"), tmp_path / "o2")


def test_when_keys_and_the_time_column_take_alternatives(tmp_path, monkeypatch):
    """Snowplow's `…_1` / `…_1_0_0` columns, Snowflake's UPPER_CASE: a `when:` key and `time.column` are
    references, so `a?|or:b?` works there as in templates."""
    monkeypatch.setenv("LOGMAP_KEY", "k")
    spec = """
logmap: 1
source: {format: ndjson, options: {time: {column: 'ts?|or:TS?', unit: s}}}
identity: {anonymous_id: '{v?|or:V?}'}
context: {user_agent: false, truncated_ip: false}
rules:
  - {when: {'action_1.type?|or:action_1_0_0.type?': list_view}, type: impression}
"""
    rows = [{"ts": 1709287200, "v": "a", "action_1": {"type": "list_view"}},
            {"TS": 1709287201, "V": "b", "action_1_0_0": {"type": "list_view"}},
            {"TS": 1709287202, "V": "c", "action_1_0_0": {"type": "other"}}]
    (tmp_path / "a.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = convert([str(tmp_path / "a.ndjson")], load_mapping_text(spec, "t.yaml"), tmp_path / "o")
    assert result.ledger.to_dict()["dropped"] == {"unmatched": 1} and result.ledger.emitted == 2
    with pytest.raises(MappingError, match="action_2"):
        convert([str(tmp_path / "a.ndjson")], load_mapping_text(spec.replace("action_1_0_0.type?", "action_2.type"),
                                                                 "t.yaml"), tmp_path / "o2")
