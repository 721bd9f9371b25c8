"""`convert` end to end: golden output on the storefront sample, an exact ledger on every real log,
batch files, rejects, and clean errors for bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from apiserver import schema_errors
from click.testing import CliRunner
from support import MAPPING, SAMPLE, TEST_KEY, convert, read_batch

from logmap.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "fixtures" / "storefront" / "expected.ndjson"
REAL_LOGS = sorted((ROOT / "fixtures" / "logs").glob("*.log"))


@pytest.fixture(autouse=True)
def anonymous_key(monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", TEST_KEY)


def records_of(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


def assert_schema_valid(records: list[dict]) -> None:
    assert schema_errors(records) == []


@pytest.fixture
def storefront(converted):
    """The storefront sample converted with its mapping (once per process): (result, output directory)."""
    return converted([str(SAMPLE)], MAPPING)


def test_storefront_sample_gives_the_golden_records(storefront):
    result, out = storefront
    assert result.ledger.balanced
    got = records_of(out)
    expected = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    assert got == expected
    assert_schema_valid(got)


def test_storefront_sample_ledger_and_report(storefront):
    result, out = storefront
    report = json.loads((out / "report.json").read_text())
    ledger = report["ledger"]
    assert ledger["input_rows"] == 406 == sum(1 for _ in SAMPLE.open("rb"))
    assert ledger["input_rows"] == ledger["emitted"] + sum(ledger["dropped"].values())
    assert ledger["balanced"] is True
    # two truncated lines from the generator, and of the junk lines appended: TLS probe, truncated line and
    # blank line are malformed; the line with trailing X-Forwarded-For and request-time fields is valid.
    assert ledger["dropped"]["malformed"] == 5
    assert {"filtered:static", "filtered:bot", "unmatched"} <= set(ledger["dropped"])
    assert ledger["dropped"] == {"filtered:bot": 11, "filtered:static": 123, "filtered:status": 17, "malformed": 5,
                                 "unmatched": 2}  # /about-us and /account/orders have no rule
    assert report["records_per_type"] == dict(sorted(result.ledger.per_type.items()))
    assert sum(report["records_per_type"].values()) == ledger["emitted"]
    assert set(report["records_per_type"]) >= {"home_page_view", "category_page_view", "product_detail_page_view",
                                               "search", "add_to_cart", "checkout"}


def test_record_contents_on_the_sample(storefront):
    records = records_of(storefront[1])
    carts = [r for r in records if r["type"] == "add_to_cart"]
    assert carts and all(len(r["quantities"]) == len(r["product_ids"]) == 1 for r in carts)
    checkout = next(r for r in records if r["type"] == "checkout")
    assert isinstance(checkout["revenue"], float) and checkout["revenue"] > 0
    category = next(r for r in records if r["type"] == "category_page_view")
    assert len(category["category"]) >= 1 and "/" not in "".join(category["category"])
    for record in records:
        assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 24
        assert len(record["anonymous_id"]) == 64
        assert record["context"]["page"]["url"].startswith("https://shop.example.com/")
        ip = record["context"].get("truncated_ip")
        assert ip is None or ip.endswith(".0")
        assert "null" not in json.dumps(record)
    campaign = [r for r in records if "campaign" in r["context"]]
    assert campaign and all(set(r["context"]["campaign"]) <= {"name", "source", "medium", "term", "content"}
                            for r in campaign)
    durations = [r["duration"] for r in records if "duration" in r]
    assert durations and all(0 <= d <= 1800 for d in durations)


def test_rejects_name_file_line_and_reason(storefront):
    rejects = [json.loads(line) for line in (storefront[1] / "rejects.ndjson").read_text().splitlines()]
    malformed = [r for r in rejects if r["reason"] == "malformed"]
    assert [r["line"] for r in malformed] == [253, 340, 401, 402, 403]
    assert all(r["file"] == str(SAMPLE) and "raw" in r and r["message"] for r in malformed)


@pytest.mark.parametrize("log", REAL_LOGS, ids=[p.name for p in REAL_LOGS])
def test_real_logs_have_an_exact_ledger(converted, common_mapping, log):
    """Every line of the real logs is emitted or dropped with a reason, and every record is valid."""
    result, out = converted([str(log)], common_mapping if "nasa" in log.name else MAPPING)
    lines = log.read_bytes().count(b"\n") + (0 if log.read_bytes().endswith(b"\n") else 1)
    assert result.ledger.input_rows == lines
    assert result.ledger.balanced
    assert result.ledger.emitted + result.ledger.dropped_total == lines
    assert_schema_valid(records_of(out))


def test_latin1_file_with_gzip_garbage_is_converted_not_crashed(converted):
    log = ROOT / "fixtures" / "logs" / "advertools_combined_latin1_2023.log"
    result, _ = converted([str(log)], MAPPING)
    assert result.ledger.input_rows == log.read_bytes().count(b"\n")
    assert result.ledger.dropped["malformed"] >= 31  # the appended gzip bytes cannot parse
    # exactly: lines 170-200 (gzip bytes) plus 15 TLS probes and scanner lines with no valid request line
    assert result.ledger.dropped["malformed"] == 46
    assert result.ledger.balanced


def test_batches_split_at_batch_size_and_json_bodies(tmp_path):
    result = convert([str(SAMPLE)], MAPPING, tmp_path / "nd", batch_size=50)
    files = sorted((tmp_path / "nd").glob("interactions-*.ndjson"))
    assert [f.name for f in files][:2] == ["interactions-00001.ndjson", "interactions-00002.ndjson"]
    counts = [len(read_batch(f)) for f in files]
    assert all(c == 50 for c in counts[:-1]) and 0 < counts[-1] <= 50 and sum(counts) == result.ledger.emitted
    convert([str(SAMPLE)], MAPPING, tmp_path / "js", batch_size=50, fmt="json")
    body = json.loads((tmp_path / "js" / "interactions-00001.json").read_text())
    assert list(body) == ["data"] and len(body["data"]) == 50
    assert records_of(tmp_path / "js") == records_of(tmp_path / "nd")


def test_compressed_inputs_and_globs_give_the_same_records(tmp_path, storefront):
    gz = tmp_path / "in" / "access.log.1.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    convert([str(tmp_path / "in" / "*.gz")], MAPPING, tmp_path / "a")
    assert records_of(tmp_path / "a") == records_of(storefront[1])


def test_bucketed_run_gives_the_same_records(tmp_path, storefront):
    from logmap.pipeline.runner import RunOptions

    convert([str(SAMPLE)], MAPPING, tmp_path / "b", options=RunOptions(buckets=7))
    key = lambda r: (r["timestamp"], json.dumps(r, sort_keys=True))  # noqa: E731
    assert sorted(records_of(storefront[1]), key=key) == sorted(records_of(tmp_path / "b"), key=key)


def test_cli_convert_prints_a_summary(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "ledger balanced" in result.output and "product_detail_page_view" in result.output
    assert "lines/s" in result.output


def test_non_empty_output_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(out)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "not empty" in refused.output and "Traceback" not in refused.output
    (out / "upload-journal.ndjson").write_text("{}\n")
    allowed = CliRunner().invoke(main, [*args, "--overwrite"])
    assert allowed.exit_code == 0 and (out / "keep.txt").exists() and (out / "report.json").exists()
    assert (out / "upload-journal.ndjson").read_text() == "{}\n"  # what was uploaded stays acknowledged


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such file"),
    ("corrupt_gz", "gzip"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, setup, message):
    path = tmp_path / "x.log.gz"
    if setup == "corrupt_gz":
        path.write_bytes(gzip.compress(SAMPLE.read_bytes())[:200])
    result = CliRunner().invoke(main, ["convert", str(path), "-m", str(MAPPING), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.output.lower()
    assert "Traceback" not in result.output


def test_missing_key_stops_before_reading_input(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY")
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "LOGMAP_KEY" in result.output
    assert not (tmp_path / "o").exists()


def test_key_never_reaches_output(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o")])
    assert TEST_KEY not in result.output
    for path in (tmp_path / "o").iterdir():
        assert TEST_KEY not in path.read_text()


@pytest.mark.parametrize("command", [
    ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", "/proc/logmap-cannot-create"],
    ["dry-run", str(SAMPLE), "-m", str(MAPPING), "--json", "/proc/logmap-cannot-create/report.json"],
])
def test_unwritable_output_is_one_line_not_a_traceback(command):
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2
    assert "logmap: error:" in result.output and "/proc/logmap-cannot-create" in result.output
    assert "Traceback" not in result.output
