"""The local runner: both stages on one machine, both cores busy, memory bounded by buckets.

Two phases keep memory bounded while durations stay exact:

1. **Stream** the inputs chunk by chunk through :func:`~logmap.pipeline.stages.stream_stage`. Dropped rows go
   to the ledger (and to the rejects observer) at once; surviving rows are partitioned by a hash of their
   visitor into buckets (kept in memory for one bucket, spilled to Parquet for several).
2. **Per bucket**, :func:`~logmap.pipeline.stages.record_stage`'s halves infer durations (every row of a
   visitor is in the same bucket), build, validate and encode the records, slice by slice.

``iter_records`` is the generator every command consumes (`logmap.conversion`, upload, dry-run, tests).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from logmap.background import read_ahead
from logmap.frame import REJECTED, split_dropped
from logmap.ledger import Ledger
from logmap.mapping.model import Mapping
from logmap.pipeline.stages import Prepared, Timings, check_and_encode, order_records, stream_stage, tick
from logmap.transform.dedupe import SeenKeys, apply_dedupe
from logmap.sources import load_mapping, read_source

log = logging.getLogger("logmap")

ProgressCallback = Callable[[int], None]
#: Sees every frame of dropped rows (each still carrying its columns and ``_drop``) as the ledger counts it: the
#: dry-run report and ``logmap test`` need the rows themselves, not only the counts.
DroppedObserver = Callable[[pl.DataFrame], None]


class RejectsSink(Protocol):
    """Where malformed and invalid rows go (`logmap.sinks.batches.RejectsWriter` writes rejects.ndjson)."""

    def write(self, frame: pl.DataFrame) -> None: ...


@dataclass
class RunOptions:
    #: number of visitor-hash buckets; 1 keeps everything in memory, more spill to Parquet
    buckets: int = 1
    #: where spilled buckets go (a temporary directory by default)
    spill_dir: Path | None = None
    #: bytes of input read per chunk; None: 64 MiB in memory, 16 MiB with buckets (a chunk's parsed columns are
    #: about 15x its text, which dominates peak memory once the records themselves are spilled)
    chunk_bytes: int | None = None
    #: rows held in memory before the buckets are written out (several buckets only)
    spill_bytes: int = 128 * 1024 * 1024

    @property
    def chunk_size(self) -> int:
        if self.chunk_bytes is not None:
            return self.chunk_bytes
        return (64 if self.buckets <= 1 else 16) * 1024 * 1024


class BucketStore:
    """Rows partitioned by visitor hash: one in-memory bucket, or Parquet files per bucket.

    With several buckets, each chunk's rows are split by bucket and held in memory until the held rows pass
    ``spill_bytes``; then every bucket's rows are written as one Parquet file. Writing per chunk instead made
    buckets × chunks small files (10,000 for 10M lines), and the file count, not the bytes, cost the time.
    """

    def __init__(self, buckets: int, spill_dir: Path | None, spill_bytes: int = 128 * 1024 * 1024) -> None:
        self.buckets = max(1, buckets)
        self.spill_bytes = spill_bytes
        self._memory: list[pl.DataFrame] = []
        self._held: dict[int, list[pl.DataFrame]] = {}
        self._held_bytes = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._dir: Path | None = None
        self._spills = 0
        if self.buckets > 1:
            if spill_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="logmap-buckets-")
                spill_dir = Path(self._tmp.name)
            self._dir = spill_dir
            self._dir.mkdir(parents=True, exist_ok=True)

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        if self._dir is None:
            self._memory.append(frame)
            return
        bucket = (pl.col("_visitor").hash(seed=0) % self.buckets).fill_null(0).alias("_bucket")
        for (index,), part in frame.with_columns(bucket).partition_by("_bucket", as_dict=True).items():
            self._held.setdefault(int(index), []).append(part.drop("_bucket"))
        self._held_bytes += frame.estimated_size()
        if self._held_bytes >= self.spill_bytes:
            self._spill()

    def _spill(self) -> None:
        assert self._dir is not None
        for index, parts in self._held.items():
            rows = pl.concat(parts, how="diagonal_relaxed")
            rows.write_parquet(self._dir / f"b{index:04d}-s{self._spills:06d}.parquet", compression="lz4")
        self._held, self._held_bytes = {}, 0
        self._spills += 1

    def __iter__(self) -> Iterator[pl.DataFrame]:
        if self._dir is None:
            if self._memory:
                yield pl.concat(self._memory, how="diagonal_relaxed")
            self._memory = []
            return
        self._spill()
        for index in range(self.buckets):
            files = sorted(self._dir.glob(f"b{index:04d}-s*.parquet"))
            if files:
                yield pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
                for f in files:
                    f.unlink()

    def close(self) -> None:
        """Remove the spill files (a run stopped early leaves buckets unread); a temporary directory goes too."""
        if self._dir is not None:
            for leftover in self._dir.glob("b*-s*.parquet"):
                leftover.unlink(missing_ok=True)
        if self._tmp is not None:
            self._tmp.cleanup()


class FileStarts:
    """The earliest event time of each input file, to order files chronologically (rotation sets)."""

    def __init__(self) -> None:
        self._starts: dict[str, object] = {}

    def add(self, parsed: pl.DataFrame) -> None:
        if "time" not in parsed.columns or parsed.height == 0:
            return
        for name, first in parsed.group_by("_file").agg(pl.col("time").min()).iter_rows():
            known = self._starts.get(name)
            if first is not None and (known is None or first < known):
                self._starts[name] = first
            self._starts.setdefault(name, None)

    def rank(self, rows: pl.DataFrame) -> pl.DataFrame:
        """``rows`` with ``_file_order``: 0 for the file whose events start first (names break ties)."""
        ordered = sorted(self._starts, key=lambda n: (self._starts[n] is None, self._starts[n] or 0, n))
        ranks = {name: index for index, name in enumerate(ordered)}
        return rows.with_columns(
            pl.col("_file").replace_strict(ranks, default=len(ranks), return_dtype=pl.UInt32).alias("_file_order"))


#: Records validated and encoded per frame: a bucket is cut into slices so that one slice is encoded while the
#: previous one is written (and so that one bucket's JSON text is never all in memory at once).
SLICE_ROWS = 100_000


def _record_frames(store: BucketStore, file_starts: FileStarts, prepared: Prepared,
                   timings: Timings | None) -> Iterator[pl.DataFrame]:
    """Every bucket through durations, validation and encoding, in slices of :data:`SLICE_ROWS` records; first
    the bucket's pings (``durations.from: pings``), already dropped as ``merged:page_ping``."""
    next_index = 0
    started = time.perf_counter()
    for bucket in store:
        tick(timings, "buckets", started)
        ordered, merged = split_dropped(order_records(prepared, file_starts.rank(bucket), next_index, timings))
        if merged.height:  # pings (`durations.from: pings`): counted, never encoded
            yield merged
        next_index += ordered.height
        for start in range(0, ordered.height, SLICE_ROWS):
            yield check_and_encode(ordered.slice(start, SLICE_ROWS), timings)
        started = time.perf_counter()


def iter_records(inputs: list[str], mapping: Mapping, *, ledger: Ledger, rejects: RejectsSink | None = None,
                 options: RunOptions | None = None, progress: ProgressCallback | None = None,
                 timings: Timings | None = None, prepared: Prepared | None = None,
                 on_dropped: DroppedObserver | None = None, key: str | bytes | None = None) -> Iterator[pl.DataFrame]:
    """Run the pipeline, yielding frames of valid records (with their ``_json`` encoding), slice by slice.

    Every input row ends up in ``ledger``: emitted when yielded, dropped with its reason otherwise (and then
    also passed to ``on_dropped``, when given).

    Reading and parsing run one chunk ahead in a background thread, and the records of the next slice are
    validated and encoded while the caller consumes the current one, so both cores work. With ``timings``
    (a profile) every stage runs in turn instead, so that each stage's seconds are its own.
    """
    options = options or RunOptions()
    prepared = prepared or Prepared(mapping, inputs, key=key)
    store = BucketStore(options.buckets, options.spill_dir, options.spill_bytes)
    file_starts = FileStarts()
    # `dedupe`: the keys seen so far in the run. It is the runner's (chunks come in input order here), not the
    # stream stage's, which stays a function of its chunk.
    seen_keys = SeenKeys() if mapping.dedupe is not None else None
    in_turn = timings is not None
    try:
        started = time.perf_counter()
        chunks = read_source(inputs, mapping.source, chunk_bytes=options.chunk_size, progress=progress,
                             mapping=mapping, reader=prepared.export_reader)
        # closing(): a background thread stops (and closes its files) before the spilled buckets are removed.
        with closing(chunks if in_turn else read_ahead(chunks)) as parsed_chunks:
            for parsed in parsed_chunks:
                tick(timings, "read/parse", started)
                ledger.add_input(parsed.height)
                file_starts.add(parsed)
                if seen_keys is not None:  # before the filter: a later copy of an event is a duplicate whatever it is
                    parsed = apply_dedupe(parsed, mapping.dedupe, seen_keys)
                alive, dropped = stream_stage(prepared, parsed, timings)
                started = time.perf_counter()
                _account(dropped, ledger, rejects, on_dropped)
                started = tick(timings, "ledger+rejects", started)
                store.add(alive)
                started = tick(timings, "buckets", started)
        frames = _record_frames(store, file_starts, prepared, timings)
        with closing(frames if in_turn else read_ahead(frames)) as record_frames:
            for records in record_frames:
                started = time.perf_counter()
                valid, invalid = split_dropped(records)
                _account(invalid, ledger, rejects, on_dropped)
                ledger.add_emitted(valid, prepared.rule_names)
                tick(timings, "ledger+rejects", started)
                if valid.height:
                    yield valid
    finally:
        store.close()


def _account(dropped: pl.DataFrame, ledger: Ledger, rejects: RejectsSink | None,
             on_dropped: DroppedObserver | None = None) -> None:
    ledger.add_dropped(dropped)
    if on_dropped is not None and dropped.height:
        on_dropped(dropped)
    if rejects is not None and dropped.height:
        rejects.write(dropped.filter(REJECTED))


def resolve_mapping(mapping: Mapping | str | Path) -> Mapping:
    return mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
