"""The Spark engine (`logmap.spark`) on local[2] gives what the local engine gives: the same records (as a
multiset, and in the same order as `--buckets N` with N partitions), the same ledger and the same rejects with
file and line, on every fixture log and export; the anonymous-id key shows up in no plan and no configuration.
Logs in byte ranges, visitors spanning ranges and files, and Hadoop file systems: test_spark_logs.py."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from support import EXPORT_FIXTURES, TEST_KEY, convert, read_batch

from logmap.mapping.model import Mapping
from logmap.pipeline.runner import RunOptions

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
STOREFRONT = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"
EXPORTS = ROOT / "fixtures" / "exports"
PARTITIONS = 3

# The first test also starts the JVM and the session (a minute and more on a busy machine).
# Every test taking the `spark` fixture runs on one xdist worker, which starts one JVM (tests/conftest.py).
pytestmark = [pytest.mark.usefixtures("anonymous_key"), pytest.mark.timeout(900)]


def lines_of(out: Path, name: str) -> list[str]:
    path = out / name
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def records_of(out: Path) -> list[str]:
    return [json.dumps(r, sort_keys=True) for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


def on_spark(spark, tmp_path: Path, inputs: list[str], mapping: Path | Mapping, **spark_options):
    """Convert on Spark into ``tmp_path / "spark"``, with :data:`PARTITIONS` visitor buckets."""
    from logmap.spark import convert_spark

    return convert_spark(spark, inputs, mapping, tmp_path / "spark", key=TEST_KEY, partitions=PARTITIONS,
                         **spark_options)


def on_local(inputs: list[str], mapping: Path | Mapping, out: Path):
    """Convert with the local engine into ``out``, with as many buckets as Spark has partitions."""
    return convert(inputs, mapping, out, options=RunOptions(buckets=PARTITIONS))


def both_engines(spark, tmp_path: Path, inputs: list[str], mapping: Path | Mapping, local_inputs: list[str] | None = None,
                 **spark_options):
    """Convert with both engines, into ``tmp_path / "spark"`` and ``tmp_path / "local"``."""
    spark_result = on_spark(spark, tmp_path, inputs, mapping, **spark_options)
    return spark_result, on_local(local_inputs or inputs, mapping, tmp_path / "local")


@pytest.fixture(scope="module")
def local_exports(tmp_path_factory):
    """tool → the local engine's run on that export fixture as delivered, with its shipped mapping: (result, output
    folder), made once for the fixture's test and its test by URL."""
    runs: dict[str, tuple] = {}

    def run(tool: str):
        if tool not in runs:
            out = tmp_path_factory.mktemp(f"local-{tool}") / "local"
            files = json.loads((EXPORTS / tool / "summary.json").read_text())["files"]
            runs[tool] = on_local([str(EXPORTS / tool / name) for name in files],
                                  ROOT / "mappings" / EXPORT_FIXTURES[tool], out), out
        return runs[tool]

    return run


def assert_same_output(spark_result, local_result, tmp_path: Path, *, same_rejects: bool = True,
                       local_out: Path | None = None) -> None:
    """Spark's run in ``tmp_path / "spark"`` against the local one in ``local_out`` (default ``tmp_path / "local"``)."""
    local_out = local_out or tmp_path / "local"
    assert spark_result.ledger.to_dict() == local_result.ledger.to_dict()
    assert spark_result.ledger.balanced
    assert spark_result.ledger.per_type == local_result.ledger.per_type
    assert spark_result.ledger.per_rule == local_result.ledger.per_rule
    spark_records, local_records = records_of(tmp_path / "spark"), records_of(local_out)
    assert Counter(spark_records) == Counter(local_records)
    assert len(spark_records) == spark_result.ledger.emitted
    if same_rejects:
        assert Counter(lines_of(tmp_path / "spark", "rejects.ndjson")) == \
            Counter(lines_of(local_out, "rejects.ndjson"))
    report = json.loads((tmp_path / "spark" / "report.json").read_text())
    assert report["ledger"] == local_result.ledger.to_dict()
    assert report["output"]["engine"] == "spark" and report["output"]["partitions"] == PARTITIONS


def test_every_fixture_log_gives_the_local_engines_records_ledger_and_rejects(spark, tmp_path):
    """All fixture logs in one run (each file's format detected), the storefront sample among them."""
    mapping = tmp_path / "auto.yaml"
    mapping.write_text(MAPPING.read_text().replace("format: combined", "format: auto"))
    logs = [str(STOREFRONT), *sorted(str(p) for p in LOGS.iterdir() if p.suffix in (".log", ".jsonl"))]
    spark_result, local_result = both_engines(spark, tmp_path, logs, mapping)
    assert_same_output(spark_result, local_result, tmp_path)
    # the same order too: bucket by bucket, as the local engine with --buckets N
    assert lines_of(tmp_path / "spark", "interactions-00001.ndjson") == \
        lines_of(tmp_path / "local", "interactions-00001.ndjson")
    rejects = [json.loads(line) for line in lines_of(tmp_path / "spark", "rejects.ndjson")]
    assert {r["file"] for r in rejects} <= set(logs) and all(r["line"] >= 1 and r["reason"] for r in rejects)
    malformed = sorted(r["line"] for r in rejects if r["file"] == str(STOREFRONT) and r["reason"] == "malformed")
    assert malformed == [253, 340, 401, 402, 403]


@pytest.mark.parametrize("tool", sorted(EXPORT_FIXTURES))
def test_every_fixture_export_gives_the_local_engines_records_ledger_and_rejects(spark, tmp_path, monkeypatch, tool,
                                                                               local_exports):
    """Each export fixture with its shipped mapping as it is, `dedupe` included (mixpanel, segment-warehouse and
    snowplow-csv hold a duplicate each). Parquet exports go through Spark's Parquet scan (not whole files;
    ga4-2021's NDJSON file beside its Parquet one still is), reading only the columns, and struct fields, the
    mapping reads; a run without Parquet builds no scan. The NDJSON and CSV files (gzip files named .gz) are read
    by Spark's text source, one range each, not whole by the local reader."""
    scans = _recorded_scans(monkeypatch)
    text_reads = recorded_text_reads(monkeypatch)
    summary = json.loads((EXPORTS / tool / "summary.json").read_text())
    inputs = [str(EXPORTS / tool / name) for name in summary["files"]]
    spark_result = on_spark(spark, tmp_path, inputs, ROOT / "mappings" / EXPORT_FIXTURES[tool])
    local_result, local_out = local_exports(tool)
    assert_same_output(spark_result, local_result, tmp_path, local_out=local_out)
    assert spark_result.ledger.input_rows == summary["input_rows"]
    assert dict(spark_result.ledger.dropped) == summary["dropped"]
    parquet = [p for p in inputs if p.endswith(".parquet")]
    assert parquet or tool not in ("ga4", "ga4-2021")  # the fixtures whose scans are checked
    if parquet:
        assert_scans_read_only_the_mappings_columns(scans, parquet, tool)
    else:
        assert scans == []
    assert sorted(text_reads) == sorted(p for p in inputs if p not in parquet)


def test_the_key_is_in_no_plan_and_no_configuration(spark, tmp_path):
    from logmap.spark import convert_spark

    secret = "s3cr3t-key-only-in-a-closure"
    result = convert_spark(spark, [str(STOREFRONT)], MAPPING, tmp_path / "out", key=secret, partitions=2)
    assert result.ledger.emitted > 0
    convert([str(STOREFRONT)], MAPPING, tmp_path / "local")  # with TEST_KEY: other anonymous ids
    assert Counter(records_of(tmp_path / "out")) != Counter(records_of(tmp_path / "local"))
    settings = [*spark.sparkContext.getConf().getAll(), *spark.conf.getAll.items()]
    assert not [pair for pair in settings if secret in str(pair)]
    store = spark._jsparkSession.sharedState().statusStore()
    executions = store.executionsList()
    plans = [executions.apply(i).physicalPlanDescription() + executions.apply(i).description()
             for i in range(executions.size())]
    assert plans and not [p for p in plans if secret in p or TEST_KEY in p]
    assert not [name for name in spark.sparkContext.environment if "KEY" in name]


def test_missing_input_is_one_line(spark, tmp_path):
    from logmap.errors import InputError
    from logmap.spark import convert_spark

    with pytest.raises(InputError, match="no such file"):
        convert_spark(spark, [str(tmp_path / "nope.log")], MAPPING, tmp_path / "out", key=TEST_KEY)
    with pytest.raises(InputError, match="standard input"):
        convert_spark(spark, ["-"], MAPPING, tmp_path / "out", key=TEST_KEY)
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10)
    with pytest.raises(InputError) as local_error:
        convert([str(broken)], MAPPING, tmp_path / "local")
    with pytest.raises(InputError) as spark_error:  # raised on an executor, said on the driver in one line
        convert_spark(spark, [str(broken)], MAPPING, tmp_path / "out", key=TEST_KEY, overwrite=True)
    assert str(spark_error.value) == str(local_error.value) and "\n" not in str(spark_error.value)


def test_cli_engine_spark(spark, tmp_path):
    from click.testing import CliRunner

    from logmap.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(STOREFRONT), "-m", str(MAPPING), "-o", str(out), "--engine",
                                       "spark", "--partitions", "2", "--batch-size", "100", "--split-mb", "1", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["ledger"]["input_rows"] == 406 and report["ledger"]["balanced"]
    assert report["output"]["engine"] == "spark" and report["output"]["batch_size"] == 100
    assert [len(read_batch(p)) for p in sorted(out.glob("interactions-*"))] == [100, 100, 48]
    refused = CliRunner().invoke(main, ["convert", str(STOREFRONT), "-m", str(MAPPING), "-o", str(tmp_path / "x"),
                                        "--partitions", "2"])
    assert refused.exit_code == 2 and "--engine spark" in refused.output
    refused = CliRunner().invoke(main, ["convert", str(STOREFRONT), "-m", str(MAPPING), "-o", str(tmp_path / "x"),
                                        "--split-mb", "1"])
    assert refused.exit_code == 2 and "--engine spark" in refused.output


def test_dedupe_on_the_real_snowplow_sample_delivered_twice(spark, tmp_path):
    """The real e-commerce events twice (at-least-once delivery), the second copy first in the run's input
    order: every row of the file given second is a `duplicate` (834), wherever Spark's tasks read it, and the
    records, ledger and rejects are the local engine's."""
    real = EXPORTS / "snowplow-warehouse" / "csv" / "snowplow_ecommerce_events.csv.gz"
    again = tmp_path / "redelivered.csv.gz"
    again.write_bytes(real.read_bytes())
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1")  # one task per file
    try:
        spark_result, local_result = both_engines(spark, tmp_path, [str(again), str(real)],
                                                  ROOT / "mappings" / "snowplow-enriched.yaml")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert_same_output(spark_result, local_result, tmp_path)
    assert spark_result.ledger.input_rows == 1668 and spark_result.ledger.dropped["duplicate"] == 834


@pytest.mark.parametrize("tool", ["ga4-2021", "snowplow-csv", "adobe-datafeed"])
def test_exports_named_by_urls_are_probed_on_the_cluster(spark, tmp_path, tool, local_exports):
    """Exports the driver cannot read as paths: a `viewfs://` mount table (Hadoop's, in pyspark's jars) over a
    local folder stands for a remote store. Formats (Parquet and gzipped NDJSON for GA4's 2021 schema; CSV with
    JSON-text entities for Snowplow, deduplicated; Adobe's TSV without a header row, its names in a header file
    given by an absolute path) are sniffed, schemas unified and JSON text sampled on the cluster: the records,
    ledger and rejects are the local engine's on the same files (its run in the fixture's test)."""
    import shutil

    files = json.loads((EXPORTS / tool / "summary.json").read_text())["files"]
    store = tmp_path / "store"
    for name in files:
        (store / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXPORTS / tool / name, store / name)
    mapping = ROOT / "mappings" / EXPORT_FIXTURES[tool]
    if tool == "adobe-datafeed":  # a header file beside a URL cannot be looked for: named by its local path
        for lookup in (EXPORTS / tool).rglob("column_headers.tsv"):
            shutil.copyfile(lookup, tmp_path / lookup.name)
        text = mapping.read_text().replace("header_file: column_headers.tsv",
                                           f"header_file: {tmp_path / 'column_headers.tsv'}")
        mapping = tmp_path / "adobe.yaml"
        mapping.write_text(text)
    table = f"exports{abs(hash(str(tmp_path)))}"  # its own mount table: Hadoop caches a file system per authority
    spark.sparkContext._jsc.hadoopConfiguration().set(f"fs.viewfs.mounttable.{table}.link./{tool}",
                                                      f"file://{store}")
    urls = [f"viewfs://{table}/{tool}/{name}" for name in files]
    spark_result = on_spark(spark, tmp_path, urls, mapping)
    local_result, local_out = local_exports(tool)
    assert_same_output(spark_result, local_result, tmp_path, same_rejects=False,  # files named by URL here
                       local_out=local_out)
    spark_rejects = [json.loads(line) for line in lines_of(tmp_path / "spark", "rejects.ndjson")]
    local_rejects = [json.loads(line) for line in lines_of(local_out, "rejects.ndjson")]
    assert [{**r, "file": r["file"].replace(f"viewfs://{table}/{tool}/", "")} for r in spark_rejects] == \
        [{**r, "file": r["file"].replace(f"{EXPORTS / tool}/", "")} for r in local_rejects]
    assert spark_result.ledger.input_rows == json.loads((EXPORTS / tool / "summary.json").read_text())["input_rows"]


def _recorded_scans(monkeypatch) -> list:
    """The Parquet scans phase 1 builds (`logmap.spark.exports.parquet_scan`), recorded as the engine makes them."""
    from logmap.spark import engine

    scans: list = []

    def recording(*args, **kwargs):
        scan = parquet_scan(*args, **kwargs)
        scans.append(scan)
        return scan

    parquet_scan = engine.parquet_scan
    monkeypatch.setattr(engine, "parquet_scan", recording)
    return scans


def recorded_text_reads(monkeypatch) -> list[str]:
    """The export files phase 1 reads by Spark's text source (`logmap.spark.exports.text_exports`: NDJSON and CSV
    files in byte ranges, or one range a gzip file), by their names in the run, as the engine chooses them."""
    from logmap.spark import engine

    read: list[str] = []

    def recording(spark, paths, names, items, source):
        ndjson, ndjson_gzipped, csv, headers = text_exports(spark, paths, names, items, source)
        read.extend(names[path] for path in [*ndjson, *ndjson_gzipped, *csv])
        return ndjson, ndjson_gzipped, csv, headers

    text_exports = engine.text_exports
    monkeypatch.setattr(engine, "text_exports", recording)
    return read


def _read_schema(scan) -> str:
    """The ReadSchema of the scan's plan, in full (Spark cuts it to 100 characters by default)."""
    spark = scan.sparkSession
    spark.conf.set("spark.sql.maxMetadataStringLength", "100000")
    try:
        plan = scan._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.unset("spark.sql.maxMetadataStringLength")
    assert "FileScan parquet" in plan
    return plan.split("ReadSchema: ", 1)[1].splitlines()[0]


def assert_scans_read_only_the_mappings_columns(scans: list, parquet: list[str], tool: str) -> None:
    """One Parquet scan, of exactly the run's Parquet files; for GA4, only the columns and struct fields (also
    inside lists) its mapping reads."""
    assert len(scans) == 1 and scans[0] is not None
    assert sorted(scans[0].inputFiles()) == sorted(f"file://{p}" for p in parquet)
    read_schema = _read_schema(scans[0])
    if tool == "ga4":
        assert read_schema.startswith("struct<event_timestamp:bigint,event_name:string,event_params:")
        for unread in ("event_bundle_sequence_id", "user_ltv", "privacy_info", "event_dimensions", "geo:"):
            assert unread not in read_schema
        assert "ecommerce:struct<purchase_revenue:double>" in read_schema
        assert "items:array<struct<item_id:string,quantity:bigint>>" in read_schema


def test_a_parquet_file_beside_nothing_else_is_read_by_sparks_parquet_scan(spark, tmp_path, monkeypatch):
    """Snowplow's warehouse table as Parquet (the fixture's summary covers its CSV form): scanned, and the output
    is the local engine's. (GA4's Parquet exports are checked with the other fixtures above.)"""
    scans = _recorded_scans(monkeypatch)
    inputs = [str(EXPORTS / "snowplow-warehouse" / "parquet" / "part-00000.parquet")]
    mapping = ROOT / "mappings" / EXPORT_FIXTURES["snowplow-warehouse"]
    spark_result, local_result = both_engines(spark, tmp_path, inputs, mapping)
    assert_same_output(spark_result, local_result, tmp_path)
    assert_scans_read_only_the_mappings_columns(scans, inputs, "snowplow-warehouse")


def test_a_parquet_file_of_many_row_groups_split_across_tasks_keeps_its_row_numbers(spark, tmp_path, monkeypatch):
    """One Parquet file of many row groups (a few rows without a time), read by Spark in several splits: each
    split's frames are exactly those `ExportReader.read_file` gives for its rows (row numbers included), and the
    run's records and ledger are the local engine's."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from polars.testing import assert_frame_equal

    from logmap.pipeline.runner import resolve_mapping
    from logmap.sources import open_export
    from logmap.spark.exports import parquet_scan, read_parquet_batches

    scans = _recorded_scans(monkeypatch)
    table = pa.concat_tables(pq.read_table(p) for p in sorted((EXPORTS / "ga4").glob("*.parquet")))
    timeless = pc.equal(pc.remainder(pa.array(range(table.num_rows)), 97), 5)
    table = table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp",
                             pc.if_else(timeless, pa.scalar(None, pa.int64()), table.column("event_timestamp")))
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=200)
    assert pq.ParquetFile(path).metadata.num_row_groups >= 10
    split = path.stat().st_size // 6
    mapping_file = ROOT / "mappings" / EXPORT_FIXTURES["ga4"]
    spark_result, local_result = both_engines(spark, tmp_path, [str(path)], mapping_file, split_bytes=split)
    assert_same_output(spark_result, local_result, tmp_path)
    assert spark_result.ledger.dropped["missing:event_timestamp"] > pc.sum(timeless.cast(pa.int64())).as_py() - 1
    assert len(scans) == 1

    mapping = resolve_mapping(mapping_file)
    reader = open_export([str(path)], mapping.source, mapping)
    local = pl.concat(reader.read_file(reader.files[0]))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
    try:
        scan = parquet_scan(spark, [f"file://{path}"], reader, reader.files)
        assert scan is not None and scan.rdd.getNumPartitions() > 1

        def frames(batches):
            for frame in read_parquet_batches(batches, reader, {str(path): reader.files[0]}, {f"file:{path}": str(path)}):
                yield pa.RecordBatch.from_pydict({"ipc": [frame.write_ipc(None).getvalue()]})

        parts = scan.mapInArrow(frames, "ipc binary").collect()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert len(parts) > 1
    split_frames = pl.concat([pl.read_ipc(row.ipc) for row in parts]).sort("_line")
    assert_frame_equal(split_frames, local)
    assert local["_line"].to_list() == list(range(1, table.num_rows + 1))


def test_parquet_files_with_a_read_column_of_different_types_are_read_whole(spark, tmp_path, monkeypatch):
    """A struct field the mapping reads (GA4's `ecommerce.purchase_revenue`) as float in one file and double in
    the other: the run's schema widens it, Spark's scan would not, so the files are read whole; the output is
    the local engine's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    scans = _recorded_scans(monkeypatch)
    first, second = sorted((EXPORTS / "ga4").glob("*.parquet"))[:2]
    narrow = pq.read_table(second)
    ecommerce = narrow.schema.field("ecommerce").type
    fields = [pa.field(f.name, pa.float32()) if f.name == "purchase_revenue" else f for f in ecommerce]
    narrow = narrow.set_column(narrow.schema.get_field_index("ecommerce"), "ecommerce",
                               narrow.column("ecommerce").cast(pa.struct(fields)))
    inputs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(pq.read_table(first), inputs[0])
    pq.write_table(narrow, inputs[1])
    spark_result, local_result = both_engines(spark, tmp_path, [str(p) for p in inputs],
                                              ROOT / "mappings" / EXPORT_FIXTURES["ga4"])
    assert_same_output(spark_result, local_result, tmp_path)
    assert scans == [None]
