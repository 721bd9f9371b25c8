"""The Spark engine (`logmap.spark`) on local[2] gives what the local engine gives: the same records (as a
multiset, and in the same order as `--buckets N` with N partitions), the same ledger and the same rejects with
file and line, on every fixture log and export; the anonymous-id key shows up in no plan and no configuration.
Logs in byte ranges, visitors spanning ranges and files, and Hadoop file systems: test_spark_logs.py."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
from support import TEST_KEY, convert, read_batch

from logmap.mapping.model import Mapping
from logmap.pipeline.runner import RunOptions
from logmap.sources import load_mapping

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
STOREFRONT = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"
EXPORTS = ROOT / "fixtures" / "exports"
EXPORT_MAPPINGS = {"ga4": "ga4-bigquery-export.yaml", "segment": "segment.yaml",
                   "snowplow": "snowplow-enriched.yaml", "amplitude": "amplitude-export.yaml"}
PARTITIONS = 3

# The first test also starts the JVM and the session (a minute and more on a busy machine).
# xdist_group: with `-n 2 --dist loadgroup` every Spark test runs on one worker, which starts one JVM, not two.
pytestmark = [pytest.mark.usefixtures("anonymous_key"), pytest.mark.timeout(900), pytest.mark.xdist_group("spark")]


def lines_of(out: Path, name: str) -> list[str]:
    path = out / name
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def records_of(out: Path) -> list[str]:
    return [json.dumps(r, sort_keys=True) for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


def both_engines(spark, tmp_path: Path, inputs: list[str], mapping: Path | Mapping, local_inputs: list[str] | None = None,
                 **spark_options):
    """Convert with both engines; the local one with as many buckets as Spark has partitions."""
    from logmap.spark import convert_spark

    spark_result = convert_spark(spark, inputs, mapping, tmp_path / "spark", key=TEST_KEY, partitions=PARTITIONS,
                                 **spark_options)
    local_result = convert(local_inputs or inputs, mapping, tmp_path / "local", options=RunOptions(buckets=PARTITIONS))
    return spark_result, local_result


def assert_same_output(spark_result, local_result, tmp_path: Path, *, same_rejects: bool = True) -> None:
    assert spark_result.ledger.to_dict() == local_result.ledger.to_dict()
    assert spark_result.ledger.balanced
    assert spark_result.ledger.per_type == local_result.ledger.per_type
    assert spark_result.ledger.per_rule == local_result.ledger.per_rule
    spark_records, local_records = records_of(tmp_path / "spark"), records_of(tmp_path / "local")
    assert Counter(spark_records) == Counter(local_records)
    assert len(spark_records) == spark_result.ledger.emitted
    if same_rejects:
        assert Counter(lines_of(tmp_path / "spark", "rejects.ndjson")) == \
            Counter(lines_of(tmp_path / "local", "rejects.ndjson"))
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


@pytest.mark.parametrize("tool", sorted(EXPORT_MAPPINGS))
def test_every_fixture_export_gives_the_local_engines_records_and_ledger(spark, tmp_path, tool):
    summary = json.loads((EXPORTS / tool / "summary.json").read_text())
    inputs = [str(EXPORTS / tool / name) for name in summary["files"]]
    # The Spark engine refuses `dedupe` (tested below); these fixtures hold no duplicate, so both engines compare
    # on the mapping without it.
    mapping = dataclasses.replace(load_mapping(ROOT / "mappings" / EXPORT_MAPPINGS[tool]), dedupe=None)
    spark_result, local_result = both_engines(spark, tmp_path, inputs, mapping)
    assert_same_output(spark_result, local_result, tmp_path)
    assert spark_result.ledger.input_rows == summary["input_rows"]
    assert dict(spark_result.ledger.dropped) == summary["dropped"]


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


def test_a_mapping_with_dedupe_is_refused_rather_than_converted_differently(tmp_path):
    from logmap.errors import MappingError
    from logmap.spark import convert_spark

    mapping = (ROOT / "mappings" / "snowplow-enriched.yaml")
    with pytest.raises(MappingError, match="dedupe is not supported by the Spark engine"):
        convert_spark(None, [str(tmp_path / "none.csv")], mapping, tmp_path / "out", key="k")  # type: ignore[arg-type]
