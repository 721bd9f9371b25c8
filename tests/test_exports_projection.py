"""Export sources read only what the mapping needs: the columns its templates, `when:` conditions and source
options name, and inside Parquet structs only the fields they reach. The records are the same as with every
column read, and a template naming a column the files lack still stops the run listing all of their columns."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from support import EXPORT_FIXTURES, TEST_KEY, convert

from logmap.errors import LogmapError
from logmap.sources import exports, load_mapping, load_mapping_text
from logmap.sources.exports import ExportReader, needed_columns, read_export, read_paths, wanted_names
from logmap.transform.nested import key_value_columns, key_value_lookup, prune_dtype, read_path

ROOT = Path(__file__).resolve().parents[1]
GA4 = ROOT / "fixtures" / "exports" / "ga4"
GA4_MAPPING = ROOT / "mappings" / "ga4-bigquery-export.yaml"

ITEM = pl.Struct({"item_id": pl.String, "item_name": pl.String, "quantity": pl.Int64, "price": pl.Float64})
SCHEMA = {
    "ts": pl.Int64,
    "event_params": pl.List(pl.Struct({"key": pl.String, "value": pl.Struct({"string_value": pl.String,
                                                                              "int_value": pl.Int64})})),
    "items": pl.List(ITEM),
    "device": pl.Struct({"language": pl.String, "category": pl.String,
                         "web_info": pl.Struct({"browser": pl.String, "hostname": pl.String})}),
    "context.page.url": pl.String,
}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", TEST_KEY)


def ga4_inputs() -> list[str]:
    return [str(p) for p in sorted(GA4.glob("events_*.parquet"))]


def batches(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "report.json"}


def read_everything(monkeypatch) -> None:
    """Turn the projection off: whatever the mapping, the reader is asked for every column."""
    monkeypatch.setattr(exports, "wanted_names", lambda mapping: None)


class ParquetSpy:
    """Records the columns every Parquet batch read asks pyarrow for."""

    def __init__(self, monkeypatch) -> None:
        self.columns: list[list[str] | None] = []
        real = pq.ParquetFile.iter_batches
        spy = self

        def iter_batches(parquet, *args, **kwargs):
            spy.columns.append(kwargs.get("columns"))
            return real(parquet, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)


# --- what a reference reads -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("event_params.page_location", ("event_params", ())),  # a key/value lookup needs whole entries
    ("items[].item_id", ("items", ("item_id",))),
    ("items.quantity", ("items", ("quantity",))),  # the first item's
    ("device.language", ("device", ("language",))),
    ("device.web_info.hostname", ("device", ("web_info", "hostname"))),
    ("device.web_info", ("device", ("web_info",))),
    ("device", ("device", ())),
    ("device.nope", None),
    ("ts.x", None),
    ("nope", None),
])
def test_read_path_follows_the_reference(name, expected):
    assert read_path(name, SCHEMA) == expected


def test_prune_keeps_the_fields_read_in_their_order():
    assert prune_dtype(SCHEMA["items"], {("quantity",), ("item_id",)}) == \
        pl.List(pl.Struct({"item_id": pl.String, "quantity": pl.Int64}))
    assert prune_dtype(SCHEMA["device"], {("web_info", "hostname")}) == \
        pl.Struct({"web_info": pl.Struct({"hostname": pl.String})})
    assert prune_dtype(SCHEMA["device"], {("language",), ()}) == SCHEMA["device"]


def test_read_paths_of_names():
    paths = read_paths(SCHEMA, frozenset({"ts", "items[].item_id", "device.language", "device.nope",
                                          "context.page.url", "category", "query.q"}))
    # schema order; an unknown field reads its whole column (compiling reports it); groups and query read nothing
    assert paths == {"ts": {()}, "items": {("item_id",)}, "device": {("language",), ()},
                     "context.page.url": {()}}


def test_needed_columns_of_the_ga4_mapping():
    schema = pl.read_parquet_schema(ga4_inputs()[0])
    assert needed_columns(load_mapping(GA4_MAPPING), schema) == [
        "event_timestamp", "event_name", "event_params", "user_id", "user_pseudo_id", "device", "ecommerce",
        "items", "collected_traffic_source"]


def test_a_mapping_built_in_code_without_recorded_references_still_gets_its_columns():
    mapping = load_mapping(GA4_MAPPING)
    mapping.references = []
    schema = pl.read_parquet_schema(ga4_inputs()[0])
    assert needed_columns(mapping, schema) == needed_columns(load_mapping(GA4_MAPPING), schema)


# --- reading ----------------------------------------------------------------------------------------------------

def test_pipeline_reads_only_what_the_mapping_needs(tmp_path, monkeypatch):
    spy = ParquetSpy(monkeypatch)
    convert(ga4_inputs(), GA4_MAPPING, tmp_path / "o")
    assert spy.columns and all(columns is not None for columns in spy.columns)
    asked = set(spy.columns[0])
    assert not {"geo", "user_properties", "privacy_info", "traffic_source", "event_date"} & asked
    assert {"event_params", "event_timestamp", "device.language", "items.list.element.item_id",
            "items.list.element.quantity"} <= asked
    assert not any(name.startswith(("items.list.element.item_name", "device.category")) for name in asked)


def test_same_records_with_and_without_projection(tmp_path, monkeypatch, converted):
    projected, projected_out = converted(ga4_inputs(), GA4_MAPPING)  # a run as any other (projection is the default)
    with monkeypatch.context() as patch:
        read_everything(patch)
        spy = ParquetSpy(patch)
        whole = convert(ga4_inputs(), GA4_MAPPING, tmp_path / "whole")
        assert spy.columns and all(columns is None for columns in spy.columns)
    assert projected.ledger.to_dict() == whole.ledger.to_dict()
    assert batches(projected_out) == batches(tmp_path / "whole")
    assert len(batches(tmp_path / "whole")) >= 1


def test_an_unreferenced_wide_column_is_not_read(tmp_path, monkeypatch):
    """A column no template names is never decoded: here it cannot be (pyarrow would fail on it)."""
    base = pl.read_parquet(ga4_inputs()[0])
    wide = base.with_columns(blob=pl.lit("x" * 1000), matrix=pl.concat_list([pl.lit(i) for i in range(50)]))
    wide.write_parquet(tmp_path / "wide.parquet")
    real = pq.ParquetFile.iter_batches

    def refuse(parquet, *args, **kwargs):
        if kwargs.get("columns") is None or {"blob", "matrix"} & set(kwargs["columns"]):
            raise AssertionError("the unreferenced columns were read")
        return real(parquet, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", refuse)
    result = convert([str(tmp_path / "wide.parquet")], GA4_MAPPING, tmp_path / "o")
    assert result.ledger.balanced and result.ledger.emitted > 0


def test_files_lacking_struct_fields_get_nulls_as_before(tmp_path, monkeypatch):
    """b.parquet's items have no quantity, c.parquet's neither quantity nor id (read whole there): their lists
    keep their lengths and the missing fields are null, as when every column is read."""
    rows = {"ts": [1709280000000, 1709280001000], "uid": ["u1", "u2"], "event": ["add", "add"]}
    pl.DataFrame({**rows, "items": [[{"sku": "A", "qty": 2, "name": "a"}], [{"sku": "B", "qty": 1, "name": "b"}]]}) \
        .write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({**rows, "items": [[{"sku": "C", "name": "c"}, {"sku": "D", "name": "d"}], []]}) \
        .write_parquet(tmp_path / "b.parquet")
    pl.DataFrame({**rows, "items": [[{"name": "e"}], None]}).write_parquet(tmp_path / "c.parquet")
    spec = """
logmap: 1
source: {format: parquet, options: {time: {column: ts, unit: ms}, required: [uid]}}
identity: {anonymous_id: '{uid}'}
context: {page: false, user_agent: false, truncated_ip: false, campaign: false}
durations: {from: none}
rules:
  - {name: cart, when: {event: add}, type: add_to_cart, product_ids: '{items[].sku}', quantities: '{items[].qty}'}
"""
    inputs = [str(tmp_path / f"{name}.parquet") for name in "abc"]
    spy = ParquetSpy(monkeypatch)
    projected = convert(inputs, load_mapping_text(spec, "t.yaml"), tmp_path / "projected")
    assert spy.columns == [["ts", "uid", "event", "items.list.element.sku", "items.list.element.qty"],
                           ["ts", "uid", "event", "items.list.element.sku"],
                           ["ts", "uid", "event", "items"]]
    read_everything(monkeypatch)
    whole = convert(inputs, load_mapping_text(spec, "t.yaml"), tmp_path / "whole")
    assert projected.ledger.to_dict() == whole.ledger.to_dict()
    assert batches(tmp_path / "projected") == batches(tmp_path / "whole")


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_text_exports_are_projected_after_decoding(tmp_path, fmt):
    data = pl.DataFrame({"ts": [1709280000000, 1709280001000], "uid": ["u1", "u2"], "event": ["view", "view"],
                         "page": ["https://s.example/p/1", "https://s.example/p/2"], "unused": ["x", "y"]})
    path = tmp_path / f"a.{fmt}"
    data.write_ndjson(path) if fmt == "ndjson" else data.write_csv(path)
    mapping = load_mapping_text(f"""
logmap: 1
source: {{format: {fmt}, options: {{time: {{column: ts, unit: ms}}, page_url: '{{page}}'}}}}
identity: {{anonymous_id: '{{uid}}'}}
context: {{user_agent: false, truncated_ip: false}}
rules: [{{name: view, when: {{event: view}}, type: home_page_view}}]
""", "t.yaml")
    reader = ExportReader([str(path)], mapping.source, wanted=wanted_names(mapping))
    assert list(reader.read_schema) == ["ts", "uid", "event", "page"]
    assert list(reader.schema) == ["ts", "uid", "event", "page", "unused"]  # what errors list
    frame = next(iter(reader))
    assert "unused" not in frame.columns and frame["path"].to_list() == ["/p/1", "/p/2"]


def test_a_direct_reader_without_a_mapping_gets_every_column():
    mapping = load_mapping(GA4_MAPPING)
    first = next(read_export(ga4_inputs()[:1], mapping.source))
    assert {"geo", "user_properties", "traffic_source"} <= set(first.columns)
    assert first.schema["items"] == pl.read_parquet_schema(ga4_inputs()[0])["items"]


def test_a_key_value_list_read_only_through_lookups_is_looked_up_once_and_dropped():
    mapping = load_mapping(GA4_MAPPING)
    reader = ExportReader(ga4_inputs(), mapping.source, wanted=wanted_names(mapping))
    frame = next(iter(reader))
    assert "event_params" not in frame.columns
    looked_up = [c for c in frame.columns if c.startswith("event_params.")]
    campaign = [f"event_params.{key}" for key in ("campaign", "source", "medium", "term", "content")]  # before 2023
    assert looked_up == sorted(["event_params.page_location", "event_params.page_referrer",
                                "event_params.page_title", "event_params.search_term",
                                "event_params.item_list_name", "event_params.engagement_time_msec", *campaign])
    assert frame.columns == reader.empty().columns  # what the mapping is compiled against
    assert frame["url"].to_list() == frame["event_params.page_location"].to_list()


def test_lookups_give_the_records_of_the_list(tmp_path, monkeypatch):
    """Empty text, missing keys, repeated keys (the first counts), null and empty lists, typed values."""
    entry = pl.Struct({"key": pl.String, "value": pl.Struct({"string_value": pl.String, "int_value": pl.Int64})})
    params = [[{"key": "page", "value": {"string_value": "/p/1"}}, {"key": "n", "value": {"int_value": 3}}],
              [{"key": "page", "value": {"string_value": ""}}, {"key": "page", "value": {"string_value": "/p/2"}}],
              [{"key": "n", "value": {"int_value": 0}}], [], None,
              [{"key": "page", "value": {"string_value": "/p/3"}}, {"key": "n", "value": {"string_value": "7"}}]]
    pl.DataFrame({"ts": [1709280000000 + i for i in range(6)], "uid": [f"u{i}" for i in range(6)],
                  "params": params, "counts": [[{"key": "n", "value": i}] for i in range(6)]},
                 schema={"ts": pl.Int64, "uid": pl.String, "params": pl.List(entry),
                         "counts": pl.List(pl.Struct({"key": pl.String, "value": pl.Int64}))}) \
        .write_parquet(tmp_path / "a.parquet")
    spec = """
logmap: 1
source: {format: parquet, options: {time: {column: ts, unit: ms}, page_url: '{params.page}', required: [uid]}}
identity: {anonymous_id: '{uid}'}
context: {user_agent: false, truncated_ip: false, custom_context: {n: '{params.n}', c: '{counts.n}', m: '{params.x}'}}
durations: {from: '{counts.n}', unit: s}
rules:
  - {name: p, when: {params.page: {regex: '^/p/'}}, path: '^/p/(?P<id>\\d+)', type: product_detail_page_view,
     product_ids: ['{id}', '{params.n}']}
  - {name: other, type: custom, custom_action_name: 'n={params.n|int}'}
"""
    projected = convert([str(tmp_path / "a.parquet")], load_mapping_text(spec, "t.yaml"), tmp_path / "projected")
    read_everything(monkeypatch)
    whole = convert([str(tmp_path / "a.parquet")], load_mapping_text(spec, "t.yaml"), tmp_path / "whole")
    assert projected.ledger.to_dict() == whole.ledger.to_dict()
    assert batches(tmp_path / "projected") == batches(tmp_path / "whole")
    assert projected.ledger.emitted + projected.ledger.dropped_total == 6


def kv_source(time: str = "{column: ts, unit: ms}"):
    return load_mapping_text(f"""
logmap: 1
source: {{format: parquet, options: {{time: {time}}}}}
identity: {{anonymous_id: '{{ts}}'}}
rules: [{{name: any, type: home_page_view}}]
""", "t.yaml").source


def test_a_key_value_list_read_otherwise_is_kept(tmp_path):
    pl.DataFrame({"ts": [1709280000000], "params": [[{"key": "k", "value": "v"}]]}).write_parquet(tmp_path / "a.pq")
    inputs = [str(tmp_path / "a.pq")]
    only_lookups = ExportReader(inputs, kv_source(), wanted=frozenset({"ts", "params.k"}))
    assert list(only_lookups.lookups) == ["params.k"]
    assert next(iter(only_lookups))["params.k"].to_list() == ["v"]
    also_listed = ExportReader(inputs, kv_source(), wanted=frozenset({"ts", "params.k", "params[].key"}))
    assert also_listed.lookups == {} and "params" in next(iter(also_listed)).columns
    # the time column is read raw (its type decides how it is parsed)
    assert ExportReader(inputs, kv_source("{column: params.k}"), wanted=frozenset({"params.k"})).lookups == {}


def test_a_column_named_like_a_lookup_wins(tmp_path):
    pl.DataFrame({"ts": [1709280000000], "params": [[{"key": "k", "value": "from the list"}]],
                  "params.k": ["the column"]}).write_parquet(tmp_path / "a.pq")
    reader = ExportReader([str(tmp_path / "a.pq")], kv_source(), wanted=frozenset({"ts", "params.k"}))
    assert reader.lookups == {} and next(iter(reader))["params.k"].to_list() == ["the column"]


TYPED_VALUE = pl.Struct({"string_value": pl.String, "int_value": pl.Int64, "float_value": pl.Float32,
                         "double_value": pl.Float64})


@pytest.mark.parametrize("value_dtype", [TYPED_VALUE, pl.String, pl.Struct({"int_value": pl.Int64}),
                                         pl.Struct({"string_value": pl.String, "int_value": pl.Null}),
                                         pl.Struct({"a_value": pl.Boolean, "b_value": pl.Float64})])
@pytest.mark.parametrize("key_dtype", [pl.String, pl.Categorical])
def test_key_value_columns_give_what_the_lookup_expressions_give(value_dtype, key_dtype):
    # null and empty lists, null entries and keys, a key twice in a row (the first wins, even when its value is
    # null), values in any of the typed fields or in none, keys absent from every row
    fields = [f.name for f in value_dtype.fields if f.dtype != pl.Null] if isinstance(value_dtype, pl.Struct) else []

    def value(n: int):
        if not fields:
            return None if n % 4 == 0 else f"v{n}"
        name = fields[n % len(fields)]
        raw = {"string_value": f"s{n}", "int_value": n, "float_value": n + 0.5, "double_value": n / 3,
               "a_value": n % 2 == 0, "b_value": n * 1.25}[name]
        return {f: (raw if f == name and n % 5 else None) for f in fields}  # a Null field is left out

    rows = []
    for row in range(60):
        entries = [None if (row + i) % 13 == 0 else {"key": None if (row + i) % 11 == 0 else f"k{(row * 7 + i) % 4}",
                                                    "value": value(row * 3 + i)} for i in range(row % 6)]
        rows.append(None if row % 9 == 4 else entries)
    dtype = pl.List(pl.Struct({"key": key_dtype, "value": value_dtype}))
    frame = pl.DataFrame({"params": pl.Series(rows, dtype=dtype)})
    names = [f"params.k{i}" for i in range(6)]
    schema = dict(frame.schema)
    for rows_read in (frame, frame.filter(pl.col("params").list.len() < 5), frame.clear()):  # key twice, not
        expected = rows_read.select(**{name: key_value_lookup(name, schema) for name in names})
        assert pl.DataFrame(list(key_value_columns(rows_read, names).values())).equals(expected)


# --- errors still list every column -----------------------------------------------------------------------------

def test_unknown_column_fails_before_reading_and_lists_every_column(tmp_path, monkeypatch):
    mapping = load_mapping_text(GA4_MAPPING.read_text().replace("'{device.language?}'", "'{device_language}'"),
                                "ga4.yaml")
    spy = ParquetSpy(monkeypatch)
    with pytest.raises(LogmapError) as error:
        convert(ga4_inputs(), mapping, tmp_path / "o")
    message = str(error.value)
    assert "'device_language'" in message and "no such column" in message
    # the columns the mapping does not read are listed too
    columns = ", ".join(pl.read_parquet_schema(ga4_inputs()[0]))
    assert columns in message and "geo" in message and "user_properties" in message
    assert spy.columns == [] and not (tmp_path / "o").exists()


def test_unknown_struct_field_still_fails_before_reading(tmp_path, monkeypatch):
    mapping = load_mapping_text(GA4_MAPPING.read_text().replace("'{device.language?}'", "'{device.langage}'"),
                                "ga4.yaml")
    spy = ParquetSpy(monkeypatch)
    with pytest.raises(LogmapError, match=r"device\.langage"):
        convert(ga4_inputs(), mapping, tmp_path / "o")
    assert spy.columns == []



def test_each_export_file_schema_is_read_once_per_run(tmp_path, monkeypatch):
    import logmap.sources.exports as exports

    calls: list[str] = []
    real = exports.file_schema

    def counted(item, *args, **kwargs):
        calls.append(item.path)
        return real(item, *args, **kwargs)

    monkeypatch.setattr(exports, "file_schema", counted)
    inputs = ga4_inputs()
    result = convert(inputs, GA4_MAPPING, tmp_path / "out")
    assert result.ledger.balanced and len(inputs) == 5
    assert sorted(calls) == sorted(inputs)


@pytest.mark.parametrize("folder", sorted(EXPORT_FIXTURES))
def test_a_reader_opened_from_probes_reads_what_a_reader_probing_its_files_reads(folder):
    """A Spark run probes export URLs on the cluster (`probe_file` per file) and opens the reader from the probes:
    the same files, unified schema, projection and JSON-text types, hence the same frames, as the reader that
    lists and probes the files itself."""
    import json

    from logmap.sources import open_export
    from logmap.sources.exports import expand_export_inputs, probe_file

    mapping = load_mapping(ROOT / "mappings" / EXPORT_FIXTURES[folder])
    summary = json.loads((ROOT / "fixtures" / "exports" / folder / "summary.json").read_text())
    files = [str(ROOT / "fixtures" / "exports" / folder / name) for name in summary["files"]]
    direct = open_export(files, mapping.source, mapping)
    probes = [probe_file(item, mapping.source, direct.chunk_bytes, wanted_names(mapping))
              for item in expand_export_inputs(files, mapping.source.format)]
    probed = open_export(files, mapping.source, mapping, probes=probes)
    # (polars infers an NDJSON struct's fields in an order of its own from one pass to the next: names compared)
    assert probed.files == direct.files and probed.mixed == direct.mixed
    assert {p: unordered(s) for p, s in probed.schemas.items()} == {p: unordered(s) for p, s in direct.schemas.items()}
    assert unordered(probed.read_schema) == unordered(direct.read_schema)
    assert unordered(probed.json_columns) == unordered(direct.json_columns)
    assert unordered(probed.json_checked) == unordered(direct.json_checked)
    assert probed.lookups.keys() == direct.lookups.keys()
    assert pl.concat(list(probed), how="diagonal_relaxed").to_dicts() == \
        pl.concat(list(direct), how="diagonal_relaxed").to_dicts()


def unordered(schema) -> dict:
    """A schema with struct fields as dicts: equal whatever order the fields were inferred in."""
    def form(dtype):
        if isinstance(dtype, pl.Struct):
            return {f.name: form(f.dtype) for f in dtype.fields}
        if isinstance(dtype, pl.List | pl.Array):
            return ["list", form(dtype.inner)]
        return str(dtype)

    return {name: form(dtype) for name, dtype in dict(schema).items()}
