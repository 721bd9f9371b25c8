"""Bounded by default (issue #15): ``--memory`` → chunk size, rows held, buckets chosen from the input's size."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import convert, records_of

from logmap.cli import main
from logmap.pipeline.budget import MAX_BUCKETS, Budget, parse_size
from logmap.pipeline.runner import BucketStore, RunOptions

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"

pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py



@pytest.mark.parametrize(("text", "size"), [("1G", 1 << 30), ("512M", 512 << 20), ("1.5GB", 3 << 29),
                                             ("800MiB", 800 << 20), ("64k", 64 << 10), ("2048", 2048)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "1X", "-1G", "one gig"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize("memory", ["384M", "1G", "4G", "64G"])
def test_a_budget_fits_its_bound(memory: str) -> None:
    budget = Budget.for_memory(parse_size(memory))
    assert 2 << 20 <= budget.chunk_bytes <= 64 << 20
    assert 0 < budget.hold_bytes < budget.memory_bytes and 0 < budget.bucket_bytes < budget.memory_bytes


def test_buckets_follow_the_share_read() -> None:
    budget = Budget(memory_bytes=1 << 30, chunk_bytes=1 << 20, hold_bytes=100, bucket_bytes=100)
    assert budget.buckets_for(150, share_read=0.5) == 4  # 300 bytes expected in all, and 25% headroom
    assert budget.buckets_for(150, share_read=1.0) == 2
    assert budget.buckets_for(150, share_read=None) == 8  # unknown size (stdin): a guess, split again if short
    assert not budget.too_big(120) and budget.too_big(130)
    assert budget.buckets_for(10**12, share_read=0.1) == MAX_BUCKETS


def visitors_frame(start: int, rows: int, visitors: int = 50) -> pl.DataFrame:
    return pl.DataFrame({"_visitor": [f"visitor-{i % visitors}" for i in range(start, start + rows)],
                         "_line": list(range(start, start + rows))})


@pytest.mark.parametrize("share", [0.5, 1.0, None])
def test_an_adaptive_store_partitions_when_it_outgrows_memory_and_splits_a_bucket_that_is_too_big(
        tmp_path: Path, share: float | None) -> None:
    one_chunk = visitors_frame(0, 100).estimated_size()
    budget = Budget(memory_bytes=1 << 30, chunk_bytes=1 << 20, hold_bytes=int(one_chunk * 1.5),
                    bucket_bytes=one_chunk)
    store = BucketStore(None, tmp_path / "spill", budget.hold_bytes, budget=budget, share_read=lambda: share)
    for start in range(0, 1000, 100):
        store.add(visitors_frame(start, 100))
    described = store.describe()
    buckets = list(store)
    store.close()
    assert described["in_memory"] is False and described["buckets"] >= 2
    assert sorted(line for b in buckets for line in b["_line"].to_list()) == list(range(1000))
    owners = [set(b["_visitor"].to_list()) for b in buckets]
    assert sum(len(o) for o in owners) == 50  # a visitor's rows are all in one bucket
    assert max(b.estimated_size() for b in buckets) <= 3 * one_chunk  # split again when the guess fell short
    assert store.describe()["buckets_split_again"] > 0 or share == 0.5
    assert not list((tmp_path / "spill").rglob("*.parquet"))


def test_a_store_that_fits_stays_in_memory(tmp_path: Path) -> None:
    budget = Budget(memory_bytes=1 << 30, chunk_bytes=1 << 20, hold_bytes=1 << 30, bucket_bytes=1 << 30)
    store = BucketStore(None, tmp_path / "spill", budget.hold_bytes, budget=budget)
    store.add(visitors_frame(0, 100))
    store.add(visitors_frame(100, 100))
    assert store.describe()["in_memory"] is True and not (tmp_path / "spill").exists()
    assert [b.height for b in store] == [200]


@pytest.fixture
def tiny_budget(monkeypatch):
    """Every run planned for a few KiB: the storefront sample outgrows it after a few chunks."""
    budget = Budget(memory_bytes=1 << 30, chunk_bytes=4096, hold_bytes=20_000, bucket_bytes=30_000)
    monkeypatch.setattr(RunOptions, "budget", property(lambda self: budget))
    return budget


def test_a_partitioned_run_gives_the_same_records_and_ledger_and_reports_how(tmp_path: Path, tiny_budget) -> None:
    whole = convert([str(SAMPLE)], MAPPING, tmp_path / "a", options=RunOptions(buckets=1))
    parts = convert([str(SAMPLE)], MAPPING, tmp_path / "b")
    assert records_of(tmp_path / "a") == records_of(tmp_path / "b") and len(records_of(tmp_path / "a")) > 100
    assert whole.ledger.to_dict() == parts.ledger.to_dict()
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["partitioning"]["in_memory"] is False and report["partitioning"]["buckets"] >= 2
    assert report["partitioning"]["chosen_by"] == "memory limit"
    small = json.loads((tmp_path / "a" / "report.json").read_text())["partitioning"]
    assert small["in_memory"] is True and small["chosen_by"] == "--buckets"


def test_standard_input_is_partitioned_without_knowing_its_size(tmp_path: Path, tiny_budget) -> None:
    result = CliRunner().invoke(main, ["convert", "-", "-m", str(MAPPING), "-o", str(tmp_path / "o"), "-q"],
                                input=SAMPLE.read_bytes())
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["partitioning"]["in_memory"] is False and report["ledger"]["balanced"]
    convert([str(SAMPLE)], MAPPING, tmp_path / "a", options=RunOptions(buckets=1))
    assert records_of(tmp_path / "o") == records_of(tmp_path / "a")


def test_a_small_input_is_converted_in_memory_by_default(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "partitioning: none, all records in memory, memory limit 1G" in result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["partitioning"] == {"buckets": 1, "in_memory": True, "chosen_by": "memory limit",
                                      "memory_limit": "1G", "chunk": report["partitioning"]["chunk"]}


def test_memory_option_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o"),
                                       "--memory", "lots"])
    assert result.exit_code == 2 and "--memory" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o"),
                                       "--memory", "10M"])
    assert result.exit_code == 2 and "at least 384M" in result.output


def test_the_hasher_memory_is_bounded_and_its_digests_unchanged(monkeypatch) -> None:
    from logmap.transform import identity

    values = pl.Series([f"10.0.0.{i % 50}\x1fMozilla" for i in range(200)] + [None])
    expected = identity.Hasher(b"key").series(values)
    monkeypatch.setattr(identity, "KNOWN_LIMIT", 60)
    hasher = identity.Hasher(b"key")
    for start in range(0, 200, 40):
        part = values.slice(start, 40)
        assert hasher.series(part).to_list() == expected.slice(start, 40).to_list()
        assert len(hasher._known) <= 60
    assert hasher.series(values).to_list() == expected.to_list() and expected[-1] is None


def test_the_hasher_is_exact_when_two_values_share_a_64_bit_hash(monkeypatch) -> None:
    from logmap.transform import identity

    values = pl.Series(["1.2.3.4\x1fMozilla", None, "5.6.7.8\x1fcurl", "1.2.3.4\x1fMozilla", "9.9.9.9\x1fMozilla"])
    hasher = identity.Hasher(b"key")
    expected = [None if v is None else hasher.digest(v) for v in values.to_list()]
    assert hasher.series(values).to_list() == expected
    # Every value colliding on one integer: the digests still follow the text.
    monkeypatch.setattr(pl.Series, "hash", lambda self, *a, **k: pl.Series([7] * self.len(), dtype=pl.UInt64))
    assert identity.Hasher(b"key").series(values).to_list() == expected
