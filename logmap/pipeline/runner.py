"""The local runner: both stages on one machine, both cores busy, memory bounded (``--memory``, by default 1G).

Two phases keep memory bounded while durations stay exact:

1. **Stream** the inputs chunk by chunk through :func:`~logmap.pipeline.stages.stream_stage`. Dropped rows go
   to the ledger (and to the rejects observer) at once; surviving rows are held in memory while they fit the
   budget (``logmap.pipeline.budget``) and partitioned by a hash of their visitor into buckets spilled to
   Parquet once they do not.
2. **Per bucket**, :func:`~logmap.pipeline.stages.record_stage`'s halves infer durations (every row of a
   visitor is in the same bucket), build, validate and encode the records, slice by slice.

``iter_records`` is the generator every command consumes (`logmap.conversion`, upload, dry-run, tests).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from logmap.background import read_ahead
from logmap.errors import LogmapError
from logmap.frame import REJECTED, split_dropped
from logmap.ledger import Ledger
from logmap.mapping.model import Mapping
from logmap.pipeline.budget import DEFAULT_MEMORY, MAX_BUCKETS, Budget, format_size, parse_size
from logmap.pipeline.stages import Prepared, Timings, check_and_encode, order_records, stream_stage, tick
from logmap.sources import load_mapping, read_source
from logmap.transform.dedupe import SeenKeys, apply_dedupe

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
    #: visitor-hash buckets. None (the default): chosen from ``memory_bytes`` — in memory while the surviving
    #: rows fit, partitioned into as many buckets as the input needs once they do (``logmap.pipeline.budget``).
    #: 1 keeps everything in memory whatever its size; more always spill to Parquet.
    buckets: int | None = None
    #: the peak RSS the run is planned for, in bytes (``--memory``); None: ``logmap.pipeline.budget.DEFAULT_MEMORY``.
    #: Used when ``buckets`` is None.
    memory_bytes: int | None = None
    #: where spilled buckets go (a temporary directory by default)
    spill_dir: Path | None = None
    #: bytes of input read per chunk; None: from the memory budget, or 64 MiB with ``buckets=1`` and 16 MiB with
    #: more (a chunk's parsed columns are about 15x its text, which dominates peak memory once the records
    #: themselves are spilled)
    chunk_bytes: int | None = None
    #: bytes of rows held in memory before the buckets are written out (several buckets only); None: the
    #: budget's ``spill_bytes``, or 128 MiB with a fixed bucket count
    spill_bytes: int | None = None

    @property
    def budget(self) -> Budget:
        return Budget.for_memory(self.memory_bytes or parse_size(DEFAULT_MEMORY))

    @property
    def chunk_size(self) -> int:
        if self.chunk_bytes is not None:
            return self.chunk_bytes
        if self.buckets is None:
            return self.budget.chunk_bytes
        return (64 if self.buckets <= 1 else 16) * 1024 * 1024

    def store(self, share_read: Callable[[], float | None] | None = None) -> BucketStore:
        """The bucket store these options ask for (``share_read``: how much of the input has been read)."""
        if self.buckets is None:
            budget = self.budget
            return BucketStore(None, self.spill_dir, self.spill_bytes or budget.spill_bytes, budget=budget,
                               share_read=share_read)
        return BucketStore(self.buckets, self.spill_dir, self.spill_bytes or 128 * 1024 * 1024)


def visitor_bucket(buckets: int, seed: int = 0) -> pl.Expr:
    """``_bucket``: the hash of each row's visitor modulo ``buckets`` (the Spark engine shuffles by the same)."""
    return (pl.col("_visitor").hash(seed=seed) % buckets).fill_null(0).alias("_bucket")


class BucketStore:
    """Rows partitioned by visitor hash: one in-memory bucket, or Parquet files per bucket.

    With several buckets, each chunk's rows are split by bucket and held in memory until the held rows pass
    ``spill_bytes``; then every bucket's rows are written as one Parquet file. Writing per chunk instead made
    buckets × chunks small files (10,000 for 10M lines), and the file count, not the bytes, cost the time.

    With ``buckets=None`` the count follows ``budget`` (``logmap.pipeline.budget``): rows stay in memory, as with one
    bucket, until they pass ``budget.hold_bytes``; then the store chooses enough buckets for the whole input
    (``share_read()`` says how much of it has been read; None when unknown), partitions what it holds and
    goes on spilling. A bucket read back bigger than ``budget.bucket_bytes`` (standard input outgrowing the
    guess) is split again, by another hash seed, before it is yielded.
    """

    def __init__(self, buckets: int | None, spill_dir: Path | None, spill_bytes: int = 128 * 1024 * 1024, *,
                 budget: Budget | None = None, share_read: Callable[[], float | None] | None = None,
                 seed: int = 0) -> None:
        self.adaptive = buckets is None
        self.buckets = max(1, buckets or 1)
        self.spill_bytes = spill_bytes
        self.budget = budget
        self.seed = seed
        self._share_read = share_read
        self._memory: list[pl.DataFrame] = []
        self._memory_bytes: float = 0
        self._held: dict[int, list[pl.DataFrame]] = {}
        self._held_bytes: float = 0  # estimated_size() is a float
        self._bucket_bytes: dict[int, float] = {}  # estimated in-memory size of each bucket's rows, spilled or held
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._spill_dir = spill_dir
        self._dir: Path | None = None
        self._spills = 0
        self._files = 0
        self._resplit = 0
        if self.buckets > 1:
            self._open_dir()

    def _open_dir(self) -> None:
        spill_dir = self._spill_dir
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
            self._memory_bytes += frame.estimated_size()
            if self.adaptive and self.budget is not None and self._memory_bytes > self.budget.hold_bytes:
                self._partition()
            return
        self._hold(frame)

    def _partition(self) -> None:
        """Outgrown memory: choose the bucket count for the whole input and spill what is held so far."""
        assert self.budget is not None
        share = self._share_read() if self._share_read is not None else None
        self.buckets = self.budget.buckets_for(self._memory_bytes, share)
        self._open_dir()
        memory, self._memory, self._memory_bytes = self._memory, [], 0
        while memory:
            self._hold(memory.pop(0))

    def _hold(self, frame: pl.DataFrame) -> None:
        size = frame.estimated_size()
        parts = frame.with_columns(visitor_bucket(self.buckets, self.seed)).partition_by("_bucket", as_dict=True)
        for (index,), part in parts.items():
            self._held.setdefault(int(index), []).append(part.drop("_bucket"))
            # Its share of the frame's size: a part's own estimate counts string buffers it shares with the
            # other parts, so the parts' estimates add up to several times the frame's.
            self._bucket_bytes[int(index)] = self._bucket_bytes.get(int(index), 0) + size * part.height // frame.height
        self._held_bytes += size
        if self._held_bytes >= self.spill_bytes:
            self._spill()

    def _spill(self) -> None:
        assert self._dir is not None
        for index, parts in self._held.items():
            rows = pl.concat(parts, how="diagonal_relaxed")
            rows.write_parquet(self._dir / f"b{index:04d}-s{self._spills:06d}.parquet", compression="lz4")
            self._files += 1
        self._held, self._held_bytes = {}, 0
        self._spills += 1

    def __iter__(self) -> Iterator[pl.DataFrame]:
        if self._dir is None:
            parts, self._memory, self._memory_bytes = self._memory, [], 0
            if parts:
                yield _concat_all(parts)
            return
        self._spill()
        for index in range(self.buckets):
            files = sorted(self._dir.glob(f"b{index:04d}-s*.parquet"))
            if not files:
                continue
            if self._too_big(index):
                yield from self._split(index, files)
                continue
            parts = [pl.read_parquet(f) for f in files]
            for f in files:
                f.unlink()
            yield _concat_all(parts)

    def _too_big(self, index: int) -> bool:
        """Whether bucket ``index`` must be split again before its record phase (an adaptive store, a guess that
        fell short; a second split by yet another seed is the last, since one visitor cannot be split)."""
        return (self.adaptive or self.seed > 0) and self.budget is not None and self.seed < 2 and \
            self.budget.too_big(self._bucket_bytes.get(index, 0))

    def _split(self, index: int, files: list[Path]) -> Iterator[pl.DataFrame]:
        assert self.budget is not None and self._dir is not None
        parts = -int(-self._bucket_bytes[index] // self.budget.bucket_bytes)
        sub = BucketStore(min(MAX_BUCKETS, max(2, parts)), self._dir / f"split-{index:04d}", self.spill_bytes,
                          budget=self.budget, seed=self.seed + 1)
        self._resplit += 1
        try:
            for f in files:
                sub.add(pl.read_parquet(f))
                f.unlink()
            yield from sub
        finally:
            self._files += sub._files
            self._resplit += sub._resplit
            sub.close()

    def describe(self) -> dict[str, object]:
        """How the rows were partitioned: for report.json and the summary."""
        out: dict[str, object] = {
            "buckets": self.buckets,
            "in_memory": self._dir is None,
            "chosen_by": "memory limit" if self.adaptive else "--buckets",
        }
        if self.budget is not None:
            out["memory_limit"] = format_size(self.budget.memory_bytes)
        if self._dir is not None:
            out["spill_files"] = self._files
            out["buckets_split_again"] = self._resplit
        return out

    def close(self) -> None:
        """Remove the spill files (a run stopped early leaves buckets unread); a temporary directory goes too."""
        if self._dir is not None:
            for leftover in self._dir.glob("b*-s*.parquet"):
                leftover.unlink(missing_ok=True)
            for split in self._dir.glob("split-*"):
                shutil.rmtree(split, ignore_errors=True)
        if self._tmp is not None:
            self._tmp.cleanup()


def _concat_all(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """The rows of ``parts``, which it empties: nothing is left holding a bucket but its consumer.

    (A generator's locals live while it is suspended at ``yield``: a bucket yielded from a local variable would
    be held through its whole record phase, next to its sorted copy.)
    """
    rows = pl.concat(parts, how="diagonal_relaxed")
    parts.clear()
    return rows


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
                   timings: Timings | None) -> Generator[pl.DataFrame, None, None]:
    """Every bucket through durations, validation and encoding, in slices of :data:`SLICE_ROWS` records; first
    the bucket's pings (``durations.from: pings``), already dropped as ``merged:page_ping``."""
    next_index = 0
    started = time.perf_counter()
    for bucket in store:
        tick(timings, "buckets", started)
        ordered, merged = split_dropped(order_records(prepared, file_starts.rank(bucket), next_index, timings))
        del bucket  # the ordered copy replaces it: not both held while the slices are encoded
        if merged.height:  # pings (`durations.from: pings`): counted, never encoded
            yield merged
        next_index += ordered.height
        for start in range(0, ordered.height, SLICE_ROWS):
            yield check_and_encode(ordered.slice(start, SLICE_ROWS), timings)
        started = time.perf_counter()


def iter_records(inputs: list[str], mapping: Mapping, *, ledger: Ledger, rejects: RejectsSink | None = None,
                 options: RunOptions | None = None, progress: ProgressCallback | None = None,
                 timings: Timings | None = None, prepared: Prepared | None = None,
                 on_dropped: DroppedObserver | None = None, key: str | bytes | None = None,
                 partitioning: dict[str, object] | None = None) -> Iterator[pl.DataFrame]:
    """Run the pipeline, yielding frames of valid records (with their ``_json`` encoding), slice by slice.

    Every input row ends up in ``ledger``: emitted when yielded, dropped with its reason otherwise (and then
    also passed to ``on_dropped``, when given). ``partitioning`` (a dict, when given) receives how the rows
    were partitioned (``BucketStore.describe``) once the run ends.

    Reading and parsing run one chunk ahead in a background thread, and the records of the next slice are
    validated and encoded while the caller consumes the current one, so both cores work. With ``timings``
    (a profile) every stage runs in turn instead, so that each stage's seconds are its own.
    """
    options = options or RunOptions()
    prepared = prepared or Prepared(mapping, inputs, key=key)
    reading = _ReadShare(inputs, progress)
    store = options.store(reading.share)
    file_starts = FileStarts()
    # `dedupe`: the keys seen so far in the run. It is the runner's (chunks come in input order here), not the
    # stream stage's, which stays a function of its chunk.
    seen_keys = SeenKeys() if mapping.dedupe is not None else None
    in_turn = timings is not None
    try:
        started = time.perf_counter()
        chunks = read_source(inputs, mapping.source, chunk_bytes=options.chunk_size, progress=reading.advance,
                             mapping=mapping, reader=prepared.export_reader)
        # closing(): a background thread stops (and closes its files) before the spilled buckets are removed.
        with closing(chunks if in_turn else read_ahead(chunks)) as parsed_chunks:
            for parsed in parsed_chunks:
                tick(timings, "read/parse", started)
                ledger.add_input(parsed.height)
                file_starts.add(parsed)
                # Before the filter: a later copy of an event is a duplicate whatever it is.
                if seen_keys is not None and mapping.dedupe is not None:
                    parsed = apply_dedupe(parsed, mapping.dedupe, seen_keys)
                alive, dropped = stream_stage(prepared, parsed, timings)
                started = time.perf_counter()
                account_dropped(dropped, ledger, rejects, on_dropped)
                started = tick(timings, "ledger+rejects", started)
                store.add(alive)
                started = tick(timings, "buckets", started)
        frames = _record_frames(store, file_starts, prepared, timings)
        with closing(frames if in_turn else read_ahead(frames)) as record_frames:
            for records in record_frames:
                started = time.perf_counter()
                valid, invalid = split_dropped(records)
                account_dropped(invalid, ledger, rejects, on_dropped)
                ledger.add_emitted(valid, prepared.rule_names)
                tick(timings, "ledger+rejects", started)
                if valid.height:
                    yield valid
    finally:
        if partitioning is not None:
            partitioning.update(store.describe(), chunk=format_size(options.chunk_size))
        store.close()


class _ReadShare:
    """Counts the input bytes read (passing them on to ``progress``), to tell what share of the input is read."""

    def __init__(self, inputs: list[str], progress: ProgressCallback | None) -> None:
        from logmap.sources.lines import expand_inputs, total_size

        try:
            self.total = total_size(expand_inputs(inputs))
        except LogmapError:
            self.total = None  # the reader names the missing input itself
        self.read = 0
        self._progress = progress

    def advance(self, count: int) -> None:
        self.read += count
        if self._progress is not None:
            self._progress(count)

    def share(self) -> float | None:
        """The share of the input read so far, or None when its size is unknown (standard input)."""
        if not self.total or not self.read:
            return None
        return min(1.0, self.read / self.total)




def account_dropped(dropped: pl.DataFrame, ledger: Ledger, rejects: RejectsSink | None,
                    on_dropped: DroppedObserver | None = None) -> None:
    """Dropped rows into the ledger (every one, by reason), and the malformed and invalid ones into the rejects:
    what every runner does with the rows its stages drop."""
    ledger.add_dropped(dropped)
    if on_dropped is not None and dropped.height:
        on_dropped(dropped)
    if rejects is not None and dropped.height:
        rejects.write(dropped.filter(REJECTED))


def resolve_mapping(mapping: Mapping | str | Path) -> Mapping:
    return mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
