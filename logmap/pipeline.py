"""The pipeline: inputs → source → filter → rules → identity+context → durations → records → sink.

Two phases keep memory bounded while durations stay exact:

1. **Stream** the inputs chunk by chunk through parse, filter, rules, identity and context. Dropped rows go to
   the ledger (and the rejects file) at once; surviving rows are partitioned by a hash of their visitor into
   buckets (kept in memory for one bucket, spilled to Parquet for several).
2. **Per bucket**, infer durations (every row of a visitor is in the same bucket), build the record frame,
   validate, encode, and hand the encoded records to the sink.

``convert`` writes batch files; ``iter_records`` is the generator other sinks (upload, dry-run) consume.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from logmap.background import read_ahead
from logmap.budget import DEFAULT_MEMORY, MAX_BUCKETS, Budget, format_size, parse_size
from logmap.mapping.loader import load_mapping, require_anonymous_key
from logmap.mapping.model import Mapping
from logmap.records.encode import encode_frame
from logmap.records.schema import conform
from logmap.records.validate import validate
from logmap.sinks.batches import BatchFormat, BatchWriter, RejectsWriter, prepare_output_dir
from logmap.sinks.ledger import Ledger
from logmap.errors import LogmapError, MappingError
from logmap.sources import empty_frame, name_input_columns, read_source
from logmap.transform import ALIVE
from logmap.transform.context import context_columns
from logmap.transform.durations import field_durations, infer_durations, order_columns
from logmap.transform.expressions import Scope
from logmap.transform.filter import apply_filter
from logmap.transform.identity import VISITOR, Hasher, identity_columns
from logmap.transform.rules import RECORD_PREFIX, apply_rules
from logmap.transform.useragents import BotDetector

log = logging.getLogger("logmap")

#: Reasons whose rows are written to rejects.ndjson (filtered and unmatched rows are only counted).
REJECTED_REASONS = ("malformed", "invalid:")

ProgressCallback = Callable[[int], None]
#: Seconds per stage, accumulated across chunks and buckets when a dict is passed (``logmap convert --profile``).
Timings = dict[str, float]
#: The stages ``timings`` reports, in pipeline order.
STAGES = ("read/parse", "filter", "rules", "identity+context", "ledger+rejects", "buckets", "durations",
          "validation", "encoding", "writing")


def _tick(timings: Timings | None, stage: str, started: float) -> float:
    """Add the time since ``started`` to ``stage``; returns now (the start of the next stage)."""
    now = time.perf_counter()
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + now - started
    return now
#: Sees every frame of dropped rows (each still carrying its columns and ``_drop``) as the ledger counts it: the
#: dry-run report and ``logmap test`` need the rows themselves, not only the counts.
DroppedObserver = Callable[[pl.DataFrame], None]


@dataclass
class RunOptions:
    #: visitor-hash buckets. None (the default): chosen from ``memory_bytes`` — in memory while the surviving
    #: rows fit, partitioned into as many buckets as the input needs once they do (``logmap.budget``).
    #: 1 keeps everything in memory whatever its size; more always spill to Parquet.
    buckets: int | None = None
    #: the peak RSS the run is planned for, in bytes (``--memory``); None: ``logmap.budget.DEFAULT_MEMORY``.
    #: Used when ``buckets`` is None.
    memory_bytes: int | None = None
    #: where spilled buckets go (a temporary directory by default)
    spill_dir: Path | None = None
    #: bytes of input read per chunk; None: from the memory budget, or 64 MiB with ``buckets=1`` and 16 MiB with
    #: more (a chunk's parsed columns are about 15x its text, which dominates peak memory once the records
    #: themselves are spilled)
    chunk_bytes: int | None = None
    #: bytes of rows held in memory before the buckets are written out (several buckets only); None: the
    #: budget's ``hold_bytes``, or 128 MiB with a fixed bucket count
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
            return BucketStore(None, self.spill_dir, self.spill_bytes or budget.hold_bytes, budget=budget,
                               share_read=share_read)
        return BucketStore(self.buckets, self.spill_dir, self.spill_bytes or 128 * 1024 * 1024)


@dataclass
class RunResult:
    ledger: Ledger
    elapsed_s: float = 0.0
    files: list[Path] = field(default_factory=list)
    rejects: int = 0
    warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    mapping_path: str = ""
    #: how the run was partitioned (``BucketStore.describe``), for the report and the summary
    partitioning: dict[str, object] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.ledger.input_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Prepared:
    """What is computed once per run from a mapping: the key check, the hasher, caches."""

    def __init__(self, mapping: Mapping, inputs: list[str] | None = None) -> None:
        self.mapping = mapping
        self.warnings: list[str] = []
        spec = mapping.identity.anonymous_id
        self.hasher: Hasher | None = None
        if spec is not None and spec.hmac:
            key = require_anonymous_key(mapping)
            if key is None:
                self.warnings.append(
                    "anonymous_id uses a plain SHA-256 (key: none): hashes of IPv4 addresses can be reversed "
                    "by enumeration; set a key for real data")
            self.hasher = Hasher(key)
        self.bots = BotDetector()
        self.rule_names = [rule.name for rule in mapping.rules]
        # Compile every stage against the source's columns now, so that a template naming a field the source
        # does not have stops the run before any input is read. (An export's columns are those of its files:
        # without inputs they are unknown and the check waits for them.)
        empty = empty_frame(mapping.source, inputs, mapping)
        if empty is not None:
            try:
                stream_stage(empty, self)
            except MappingError as error:
                raise name_input_columns(error, mapping.source, inputs) from None


def _split(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return frame.filter(~ALIVE), frame.filter(ALIVE)


def stream_stage(parsed: pl.DataFrame, prepared: Prepared,
                 timings: Timings | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Filter, rules, identity and context for one chunk. Returns (dropped rows, surviving rows)."""
    mapping = prepared.mapping
    started = time.perf_counter()
    frame = apply_filter(parsed, mapping.filter, prepared.bots)
    dropped, alive = _split(frame)
    started = _tick(timings, "filter", started)
    scope = Scope(alive.schema)
    alive = apply_rules(alive, mapping.rules, scope)
    more_dropped, alive = _split(alive)
    started = _tick(timings, "rules", started)
    scope = scope.staging()
    columns = {**identity_columns(mapping.identity, scope, prepared.hasher),
               **context_columns(mapping.context, scope),
               **field_durations(mapping.durations, scope, alive.columns)}
    alive = alive.with_columns(**scope.staged).with_columns(**columns).with_columns(VISITOR)
    keep = ["_file", "_line", "_rule", "time", "_visitor", *[c for c in alive.columns if c.startswith(RECORD_PREFIX)]]
    result = pl.concat([dropped, more_dropped], how="diagonal_relaxed"), alive.select(keep)
    _tick(timings, "identity+context", started)
    return result


class BucketStore:
    """Rows partitioned by visitor hash: one in-memory bucket, or Parquet files per bucket.

    With several buckets, each chunk's rows are split by bucket and held in memory until the held rows pass
    ``spill_bytes``; then every bucket's rows are written as one Parquet file. Writing per chunk instead made
    buckets × chunks small files (10,000 for 10M lines), and the file count, not the bytes, cost the time.

    With ``buckets=None`` the count follows ``budget`` (``logmap.budget``): rows stay in memory, as with one
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
        self._memory_bytes = 0
        self._held: dict[int, list[pl.DataFrame]] = {}
        self._held_bytes = 0
        self._bucket_bytes: dict[int, int] = {}  # estimated in-memory size of each bucket's rows, spilled or held
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
        bucket = (pl.col("_visitor").hash(seed=self.seed) % self.buckets).fill_null(0).alias("_bucket")
        for (index,), part in frame.with_columns(bucket).partition_by("_bucket", as_dict=True).items():
            self._held.setdefault(int(index), []).append(part.drop("_bucket"))
            self._bucket_bytes[int(index)] = self._bucket_bytes.get(int(index), 0) + part.estimated_size()
        self._held_bytes += frame.estimated_size()
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
            self._bucket_bytes.get(index, 0) > self.budget.bucket_bytes

    def _split(self, index: int, files: list[Path]) -> Iterator[pl.DataFrame]:
        assert self.budget is not None and self._dir is not None
        parts = -(-self._bucket_bytes[index] // self.budget.bucket_bytes)
        sub = BucketStore(min(MAX_BUCKETS, max(2, parts)), self._dir / f"split-{index:04d}", self.spill_bytes, budget=self.budget,
                          seed=self.seed + 1)
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


def order_records(rows: pl.DataFrame, prepared: Prepared, first_index: int,
                  timings: Timings | None = None) -> pl.DataFrame:
    """Durations and the record frame of one bucket, in output order (event time, then file and line).

    Adds ``_drop`` and ``_detail`` (null) and ``_index``, each record's position in the run from
    ``first_index`` (the N of ``data.N.`` in messages).
    """
    started = time.perf_counter()
    # Output order first (one sort of the bucket's own columns, before conform adds the absent ones); durations
    # then need only a stable sort by visitor.
    rows = rows.sort(order_columns(rows)[1:], nulls_last=True)  # time, file order, line
    rows = infer_durations(rows, prepared.mapping.durations, in_time_order=True)
    started = _tick(timings, "durations", started)
    records = rows.rename({c: c[len(RECORD_PREFIX):] for c in rows.columns if c.startswith(RECORD_PREFIX)})
    records = conform(records.with_columns(pl.col("time").alias("timestamp")))
    records = records.with_columns(
        pl.lit(None, pl.String).alias("_drop"),
        pl.lit(None, pl.String).alias("_detail"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_index).alias("_index"),
    )
    _tick(timings, "validation", started)
    return records


def check_and_encode(records: pl.DataFrame, timings: Timings | None = None) -> pl.DataFrame:
    """Validate and encode records from :func:`order_records` (a whole bucket or any slice of one).

    Returns them with ``_drop`` (``invalid:<field>`` or null), ``_detail`` and ``_json`` (the encoded record).
    """
    started = time.perf_counter()
    records = validate(records, index_column="_index")
    started = _tick(timings, "validation", started)
    records = records.with_columns(encode_frame(records))
    _tick(timings, "encoding", started)
    return records


#: Records validated and encoded per frame: a bucket is cut into slices so that one slice is encoded while the
#: previous one is written (and so that one bucket's JSON text is never all in memory at once).
SLICE_ROWS = 100_000


def _record_frames(store: BucketStore, file_starts: FileStarts, prepared: Prepared,
                   timings: Timings | None) -> Iterator[pl.DataFrame]:
    """Every bucket through durations, validation and encoding, in slices of :data:`SLICE_ROWS` records."""
    next_index = 0
    started = time.perf_counter()
    for bucket in store:
        _tick(timings, "buckets", started)
        ordered = order_records(file_starts.rank(bucket), prepared, next_index, timings)
        del bucket  # the ordered copy replaces it: not both held while the slices are encoded
        next_index += ordered.height
        for start in range(0, ordered.height, SLICE_ROWS):
            yield check_and_encode(ordered.slice(start, SLICE_ROWS), timings)
        started = time.perf_counter()


def iter_records(inputs: list[str], mapping: Mapping, *, ledger: Ledger, rejects: RejectsWriter | None = None,
                 options: RunOptions | None = None, progress: ProgressCallback | None = None,
                 timings: Timings | None = None, prepared: Prepared | None = None,
                 on_dropped: DroppedObserver | None = None,
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
    prepared = prepared or Prepared(mapping, inputs)
    reading = _ReadShare(inputs, progress)
    store = options.store(reading.share)
    file_starts = FileStarts()
    in_turn = timings is not None
    try:
        started = time.perf_counter()
        chunks = read_source(inputs, mapping.source, chunk_bytes=options.chunk_size, progress=reading.advance,
                             mapping=mapping)
        # closing(): a background thread stops (and closes its files) before the spilled buckets are removed.
        with closing(chunks if in_turn else read_ahead(chunks)) as parsed_chunks:
            for parsed in parsed_chunks:
                _tick(timings, "read/parse", started)
                ledger.add_input(parsed.height)
                file_starts.add(parsed)
                dropped, alive = stream_stage(parsed, prepared, timings)
                started = time.perf_counter()
                _account(dropped, ledger, rejects, on_dropped)
                started = _tick(timings, "ledger+rejects", started)
                store.add(alive)
                started = _tick(timings, "buckets", started)
        frames = _record_frames(store, file_starts, prepared, timings)
        with closing(frames if in_turn else read_ahead(frames)) as record_frames:
            for records in record_frames:
                started = time.perf_counter()
                invalid, valid = _split(records)
                _account(invalid, ledger, rejects, on_dropped)
                ledger.add_emitted(valid, prepared.rule_names)
                _tick(timings, "ledger+rejects", started)
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


def _account(dropped: pl.DataFrame, ledger: Ledger, rejects: RejectsWriter | None,
             on_dropped: DroppedObserver | None = None) -> None:
    ledger.add_dropped(dropped)
    if on_dropped is not None and dropped.height:
        on_dropped(dropped)
    if rejects is not None and dropped.height:
        rejected = dropped.filter(pl.col("_drop").str.starts_with(REJECTED_REASONS[1])
                                  | (pl.col("_drop") == REJECTED_REASONS[0]))
        rejects.write(rejected)


def resolve_mapping(mapping: Mapping | str | Path) -> Mapping:
    return mapping if isinstance(mapping, Mapping) else load_mapping(mapping)


def convert(inputs: list[str], mapping: Mapping | str | Path, out_dir: str | Path, *, batch_size: int = 10_000,
            fmt: BatchFormat = "ndjson", overwrite: bool = False, options: RunOptions | None = None,
            progress: ProgressCallback | None = None, timings: Timings | None = None) -> RunResult:
    """Convert ``inputs`` with ``mapping`` into batch files in ``out_dir``, plus rejects.ndjson and report.json.

    With ``timings`` (a dict), the seconds spent in each of :data:`STAGES` are added to it.
    """
    from logmap.sinks.report import write_report

    started = time.perf_counter()
    mapping = resolve_mapping(mapping)
    prepared = Prepared(mapping, inputs)  # stops on a missing key or column before any input is read
    out = Path(out_dir)
    prepare_output_dir(out, overwrite)
    ledger = Ledger()
    rejects = RejectsWriter(out / "rejects.ndjson")
    writer = BatchWriter(out, batch_size, fmt)
    partitioning: dict[str, object] = {}
    try:
        for records in iter_records(inputs, mapping, ledger=ledger, rejects=rejects, options=options,
                                    progress=progress, timings=timings, prepared=prepared,
                                    partitioning=partitioning):
            started_writing = time.perf_counter()
            writer.write(records["_json"])
            _tick(timings, "writing", started_writing)
    finally:
        rejects.close()
    started_writing = time.perf_counter()
    files = writer.close()
    _tick(timings, "writing", started_writing)
    result = RunResult(ledger=ledger, elapsed_s=time.perf_counter() - started, files=files, rejects=rejects.count,
                       warnings=prepared.warnings, inputs=list(inputs), mapping_path=mapping.path,
                       partitioning=partitioning)
    write_report(out / "report.json", result, mapping, batch_size=batch_size, fmt=fmt)
    return result


def iter_batches(inputs: list[str], mapping: Mapping | str | Path, *, batch_size: int = 10_000,
                 ledger: Ledger | None = None, options: RunOptions | None = None) -> Iterator[list[bytes]]:
    """Encoded records in batches of at most ``batch_size``, produced while later ones are still computed."""
    mapping = resolve_mapping(mapping)
    ledger = ledger if ledger is not None else Ledger()
    pending: list[bytes] = []
    for records in iter_records(inputs, mapping, ledger=ledger, options=options):
        for start in range(0, records.height, batch_size):
            encoded = records["_json"].slice(start, batch_size).cast(pl.Binary).to_list()
            pending.extend(encoded)
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
    if pending:
        yield pending
