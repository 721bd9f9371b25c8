"""Per-stage timings (`convert(timings=…)`, `logmap convert --profile`) and the bucketed path's equality with the
in-memory one when chunks are small, so that several chunks feed several buckets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logmap.cli import main
from logmap.pipeline import STAGES, RunOptions, convert
from logmap.sinks.batches import read_batch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def records_of(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


def test_timings_cover_every_stage_and_fit_in_the_run(tmp_path):
    timings: dict[str, float] = {}
    result = convert([str(SAMPLE)], MAPPING, tmp_path / "o", options=RunOptions(buckets=3), timings=timings)
    assert set(timings) == set(STAGES)
    assert all(seconds >= 0 for seconds in timings.values())
    assert sum(timings.values()) <= result.elapsed_s


def test_no_timings_by_default(tmp_path):
    convert([str(SAMPLE)], MAPPING, tmp_path / "o")  # timings=None: nothing to fill, nothing breaks


def test_cli_profile_prints_a_table(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o"),
                                       "--profile", "-q"])
    assert result.exit_code == 0, result.output
    for stage in ("read/parse", "rules", "encoding", "writing", "total"):
        assert stage in result.output


def test_small_chunks_and_many_buckets_give_the_same_records(tmp_path):
    convert([str(SAMPLE)], MAPPING, tmp_path / "a")
    convert([str(SAMPLE)], MAPPING, tmp_path / "b", options=RunOptions(buckets=5, chunk_bytes=4 * 1024))
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    a, b = records_of(tmp_path / "a"), records_of(tmp_path / "b")
    assert len(a) > 100
    assert sorted(a, key=key) == sorted(b, key=key)
