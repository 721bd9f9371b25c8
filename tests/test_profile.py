"""Per-stage timings (`convert(timings=…)`, `logmap convert --profile`) and the bucketed path's equality with the
in-memory one when chunks are small, so that several chunks feed several buckets."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import MAPPING, SAMPLE, convert, read_batch

from logmap.cli import main
from logmap.pipeline.runner import BucketStore, RunOptions
from logmap.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def records_of(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


def test_timings_cover_every_stage_and_fit_in_the_run(tmp_path):
    timings: dict[str, float] = {}
    result = convert([str(SAMPLE)], MAPPING, tmp_path / "o", options=RunOptions(buckets=3), timings=timings)
    assert set(timings) == set(STAGES)
    assert all(seconds >= 0 for seconds in timings.values())
    assert sum(timings.values()) <= result.elapsed_s


def test_a_profiled_run_gives_the_same_output_as_a_normal_one(tmp_path, converted):
    _, normal = converted([str(SAMPLE)], MAPPING)
    convert([str(SAMPLE)], MAPPING, tmp_path / "profiled", timings={})
    for name in ("interactions-00001.ndjson", "rejects.ndjson"):
        assert (normal / name).read_bytes() == (tmp_path / "profiled" / name).read_bytes()


def test_cli_profile_prints_a_table(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "o"),
                                       "--profile", "-q"])
    assert result.exit_code == 0, result.output
    for stage in ("read/parse", "rules", "encoding", "writing", "total"):
        assert stage in result.output


@pytest.mark.parametrize("spill_bytes", [1, 64 * 1024, 128 * 1024 * 1024])  # after every chunk, some, at the end
def test_small_chunks_and_many_buckets_give_the_same_records(tmp_path, converted, spill_bytes):
    _, normal = converted([str(SAMPLE)], MAPPING)
    convert([str(SAMPLE)], MAPPING, tmp_path / "b",
            options=RunOptions(buckets=5, chunk_bytes=4 * 1024, spill_bytes=spill_bytes))
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    a, b = records_of(normal), records_of(tmp_path / "b")
    assert len(a) > 100
    assert sorted(a, key=key) == sorted(b, key=key)


def test_bucket_store_keeps_each_visitor_in_one_bucket_across_spills(tmp_path):
    chunks = [pl.DataFrame({"_visitor": [f"v{i % 40}" for i in range(start, start + 100)],
                            "_line": list(range(start, start + 100))}) for start in (0, 100, 200)]
    store = BucketStore(6, tmp_path / "spill", spill_bytes=1)
    for chunk in chunks:
        store.add(chunk)
    assert len(list((tmp_path / "spill").glob("*.parquet"))) == 3 * 6  # one file per bucket per spill
    buckets = list(store)
    store.close()
    assert sorted(line for b in buckets for line in b["_line"].to_list()) == list(range(300))
    owners = [set(b["_visitor"].to_list()) for b in buckets]
    assert sum(len(o) for o in owners) == 40  # no visitor in two buckets
    assert list((tmp_path / "spill").glob("*.parquet")) == []  # read buckets are removed


def test_default_chunk_is_smaller_with_buckets():
    assert RunOptions().chunk_size == RunOptions().budget.chunk_bytes  # chosen from --memory
    assert RunOptions(buckets=1).chunk_size == 64 * 1024 * 1024
    assert RunOptions(buckets=8).chunk_size == 16 * 1024 * 1024
    assert RunOptions(buckets=8, chunk_bytes=1000).chunk_size == 1000


def test_cli_chunk_mb_with_buckets_gives_the_same_records(tmp_path, monkeypatch, converted):
    import logmap.pipeline.runner as pipeline

    _, normal = converted([str(SAMPLE)], MAPPING)
    chunk_sizes: list[int] = []
    real = pipeline.read_source

    def spy(inputs, source, *, chunk_bytes, **kwargs):
        chunk_sizes.append(chunk_bytes)
        return real(inputs, source, chunk_bytes=chunk_bytes, **kwargs)

    monkeypatch.setattr(pipeline, "read_source", spy)
    result = CliRunner().invoke(main, ["convert", str(SAMPLE), "-m", str(MAPPING), "-o", str(tmp_path / "b"),
                                       "--buckets", "3", "--chunk-mb", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert chunk_sizes == [1024 * 1024]
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(records_of(normal), key=key) == sorted(records_of(tmp_path / "b"), key=key)


def test_slices_and_background_threads_change_no_byte(tmp_path, monkeypatch):
    import logmap.pipeline.runner as pipeline

    # The sample plus records the validator rejects (a product id over 512 characters), spread over the run,
    # so that the data.N positions in rejects.ndjson are checked across slices.
    lines = SAMPLE.read_text().splitlines()
    too_long = ('9.9.9.{n} - - [01/Mar/2024:10:0{n}:00 +0000] "POST /cart/add?sku={sku} HTTP/1.1" 200 1 "-" '
                '"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"')
    for n in range(5):
        lines.insert(60 * n, too_long.format(n=n, sku="9" * 600))
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")

    import threading

    encoded_in: list[str] = []  # the thread each slice was validated and encoded in
    real = pipeline.check_and_encode

    def spy(records, timings=None):
        encoded_in.append(threading.current_thread().name)
        return real(records, timings)

    monkeypatch.setattr(pipeline, "check_and_encode", spy)
    caller = threading.current_thread().name
    convert([str(log)], MAPPING, tmp_path / "a", timings={})  # a profile: every stage in turn, in the caller
    assert set(encoded_in) == {caller}
    encoded_in.clear()
    monkeypatch.setattr(pipeline, "SLICE_ROWS", 7)  # many slices, encoded while the caller writes
    convert([str(log)], MAPPING, tmp_path / "b", batch_size=50)
    assert len(encoded_in) > 1 and caller not in encoded_in
    convert([str(log)], MAPPING, tmp_path / "c", batch_size=50, options=RunOptions(buckets=3, chunk_bytes=4096))
    text = lambda out: "".join(p.read_text() for p in sorted(out.glob("interactions-*")))  # noqa: E731
    assert len(list((tmp_path / "b").glob("interactions-*"))) > 3
    assert text(tmp_path / "a") == text(tmp_path / "b")
    rejects = (tmp_path / "a" / "rejects.ndjson").read_text()
    assert rejects.count('"reason":"invalid:product_ids"') == 5
    assert rejects == (tmp_path / "b" / "rejects.ndjson").read_text()
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(records_of(tmp_path / "a"), key=key) == sorted(records_of(tmp_path / "c"), key=key)


def test_a_consumer_that_stops_early_leaves_no_thread_and_no_spill(tmp_path, monkeypatch):
    import threading

    import logmap.pipeline.runner as pipeline
    from logmap.ledger import Ledger

    monkeypatch.setattr(pipeline, "SLICE_ROWS", 5)
    before = threading.active_count()
    spill = tmp_path / "spill"
    frames = pipeline.iter_records([str(SAMPLE)], pipeline.resolve_mapping(MAPPING), ledger=Ledger(), key="k",
                                   # several chunks (six) for the three buckets, not 25: each chunk costs a pass
                                   options=RunOptions(buckets=3, spill_dir=spill, chunk_bytes=16384))
    assert next(frames).height > 0
    assert list(spill.glob("*.parquet"))  # buckets still to be read
    frames.close()
    assert threading.active_count() == before
    assert not list(spill.glob("*.parquet"))  # the unread buckets are removed too
