"""The same mapping on Apache Spark: ``convert_spark(spark, inputs, mapping, out)`` (``logmap convert --engine spark``).

The two phases of the local engine (docs/architecture.md) map onto two Spark stages, running the very same stage
functions on executors:

1. **Phase 1, a map over input splits** (``mapInArrow``). Spark lists and reads the inputs (local paths,
   ``file://``, ``s3a://``, ``gs://``, ``abfs://``, ``hdfs://``: whatever the cluster's Hadoop file systems read).
   Plain logs are read in byte ranges by Spark's text source, their line numbers known from a first count of
   lines per range (:mod:`logmap.spark.logs`); so are plain NDJSON and CSV exports, each range's lines through the
   run's ``ExportReader`` (a CSV file whose records span lines is read whole); Parquet exports by Spark's Parquet
   scan with the mapping's projection, in row-group splits, each batch normalised by the run's ``ExportReader``
   (:mod:`logmap.spark.exports`); gzip files named ``.gz`` by the text source as one range each; other files
   (compressed otherwise, formats with per-file state) are read whole: an
   executor writes the file's bytes to a local temporary file and reads it with logmap's own reader
   (``read_source`` for logs, ``ExportReader.read_file`` for exports), so compression detection, invalid UTF-8,
   line numbers, malformed export lines and the column projection are exactly those of the local engine.
   (Export URLs are probed on the cluster first, for the run's schema: :mod:`logmap.spark.exports`.)
   Then ``stream_stage``; out come, in one Arrow schema told apart by ``_kind``: surviving rows with their
   visitor bucket, per-reason counts of dropped rows, the rejected rows themselves (file, line, reason, message,
   raw; each counts itself) and the earliest event time of each file (``FileStarts``). With ``dedupe``, rows
   carry their key, and a window over the keys turns every later copy into a ``duplicate`` before anything is
   counted (:mod:`logmap.spark.dedupe`).
2. **Phase 2, per visitor bucket** (``groupBy("_bucket").applyInArrow``). Survivors are shuffled by the same
   visitor hash as the local engine's ``--buckets N`` (so a visitor's whole history is in one group), ranked by
   the file starts (collected on the driver, shipped in the closure), then ordered, given durations, validated
   and encoded by ``record_stage``, as the local runner does.
   Each bucket's records are numbered from the number of records in the buckets before it, so ``data.N`` in a
   reject message, and the order of the output, are those of ``logmap convert --buckets N`` with N = partitions.

The driver then merges everything into the local engine's layout: batch files of at most ``batch_size`` records
(fetched bucket range by bucket range, in order), ``rejects.ndjson`` and ``report.json`` with the exact ledger, in
a local directory or, through Hadoop's FileSystem, at a URL (:mod:`logmap.spark.output`).

Arrow between polars and Spark: Spark checks the types of returned batches exactly, so frames cross in a
*transport* form (``transport_dtype``: times as epoch integers, every integer as Int64, nulls as strings) cast to
the Arrow schema Spark expects, and are cast back to the exact polars schema on the other side.

The anonymous-id key (``key=``, read by the caller on the driver) goes into the stage functions' ``Prepared``,
which travels to executors inside the pickled Arrow functions: never in a Spark configuration, an environment
variable set for executors, a column or a query plan.
"""

from __future__ import annotations

import functools
import glob
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import polars as pl
from polars.datatypes import DataTypeClass

from logmap.errors import InputError, LogmapError
from logmap.frame import REJECTED, split_dropped
from logmap.mapping.model import Mapping
from logmap.pipeline.runner import FileStarts, account_dropped, resolve_mapping, visitor_bucket
from logmap.pipeline.stages import Prepared, record_stage, stream_stage
from logmap.sinks.batches import BatchFormat, BatchWriter
from logmap.sinks.output import OutputDir, Run
from logmap.sinks.report import RunResult
from logmap.sources import empty_frame, read_source
from logmap.sources.exports import ExportFile, ExportReader, expand_export_inputs
from logmap.spark import dedupe as dedupe_rows
from logmap.spark.exports import (
    csv_continues,
    open_on_cluster,
    parquet_scan,
    read_parquet_batches,
    read_text_ranges,
    text_exports,
)
from logmap.spark.files import USER_ERROR, freeze_modules, local_copies, user_error
from logmap.spark.logs import FILE as RANGE_FILE
from logmap.spark.logs import (
    count_ranges,
    glob_escaped,
    one_range_bytes,
    read_failure,
    read_ranges,
    split_size,
    splittable,
    text_files,
    text_ranges,
)
from logmap.spark.output import HadoopOutputDir

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

#: A polars dtype, as an instance or as its class (what ``List.inner`` and struct fields may hold)
PolarsType = pl.DataType | DataTypeClass
#: Input bytes per visitor bucket when ``partitions`` is not given: about a million log lines, whose survivors
#: a Python worker orders, validates and encodes in a few seconds.
BYTES_PER_PARTITION = 256 * 1024 * 1024
#: Records fetched to the driver per Spark job while writing the batch files (bounds the driver's memory).
FETCH_RECORDS = 500_000
#: Columns of phase 2's output: the encoding, what the ledger counts, what a reject shows.
RECORD_COLUMNS = {"_bucket": pl.Int64(), "_index": pl.Int64(), "_json": pl.String(), "_drop": pl.String(),
                  "_detail": pl.String(), "_file": pl.String(), "_line": pl.UInt64(), "type": pl.String(),
                  "_rule": pl.UInt32()}
#: Input files up to which the driver takes their paths and sizes from Spark's listing, four py4j calls each
#: (measured: 0.75 s for 2,000 files; a listing job costs ~0.3 s on a warm JVM, more on a cold one, and most runs
#: list a few files).
LIST_ON_DRIVER = 1000
#: Columns of phase 1's output besides the surviving rows' own.
PHASE1_COLUMNS = {"_kind": pl.String(), "_bucket": pl.Int64(), "_count": pl.Int64(), "_drop": pl.String(),
                  "_detail": pl.String(), "_raw": pl.String()}


# --- the transport form of frames ---------------------------------------------------------------------------

def transport_dtype(dtype: PolarsType) -> PolarsType:
    """The dtype a column crosses Spark in: one Spark type per polars dtype, cast back exactly on arrival."""
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(transport_dtype(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: transport_dtype(f.dtype) for f in dtype.fields})
    if isinstance(dtype, pl.Datetime | pl.Duration) or dtype.is_integer() or dtype == pl.Date:
        return pl.Int64()
    if dtype.is_float():
        return pl.Float64()
    if dtype in (pl.Boolean, pl.Binary, pl.String):
        return dtype
    return pl.String()  # Null, Categorical, Enum: as text


def spark_type(dtype: PolarsType) -> DataType:
    """The Spark type of a transport dtype."""
    from pyspark.sql import types as t

    if isinstance(dtype, pl.List):
        return t.ArrayType(spark_type(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return t.StructType([t.StructField(f.name, spark_type(f.dtype)) for f in dtype.fields])
    simple: dict[PolarsType, DataType] = {pl.Int64: t.LongType(), pl.Float64: t.DoubleType(),
                                          pl.Boolean: t.BooleanType(), pl.Binary: t.BinaryType(),
                                          pl.String: t.StringType()}
    return simple[dtype.base_type()]


class Transport:
    """A polars schema and the Spark and Arrow schemas its frames cross Spark in.

    Columns keep their names, but for dots (``r:search.keywords``), which Spark reads as struct fields even where
    it names columns itself (``applyInArrow``): on the wire they are slashes.
    """

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        from pyspark.sql import types as t
        from pyspark.sql.pandas.types import to_arrow_schema

        self.schema = pl.Schema(schema)
        self.wire_name = {name: name.replace(".", "/") for name in schema}
        if len(set(self.wire_name.values())) < len(schema):  # a name with a slash of its own
            self.wire_name = {name: f"c{index}" for index, name in enumerate(schema)}
        self.wire = pl.Schema({name: transport_dtype(dtype) for name, dtype in schema.items()})
        self.spark = t.StructType([t.StructField(self.wire_name[name], spark_type(dtype))
                                   for name, dtype in self.wire.items()])
        self.arrow = to_arrow_schema(self.spark)

    def to_arrow(self, frame: pl.DataFrame) -> pa.Table:
        """``frame`` (with some or all of the columns, in any order) as Spark expects it back."""
        missing = [pl.lit(None, dtype).alias(name) for name, dtype in self.schema.items() if name not in frame.columns]
        wire = frame.with_columns(missing).select(self.schema.names()).cast(self.wire).rename(self.wire_name)
        return wire.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(self.arrow)

    def from_arrow(self, table: pa.Table, columns: list[str] | None = None) -> pl.DataFrame:
        """The frame Spark handed over (``columns`` of the schema, all by default) in its exact polars types."""
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        names = columns or self.schema.names()
        return frame.select([pl.col(self.wire_name[n]).cast(self.schema[n]).alias(n) for n in names])

    def columns(self, names: list[str] | None = None) -> list[str]:
        """The wire names of ``names`` (all columns by default), to select them in Spark."""
        return [self.wire_name[n] for n in (names or self.schema.names())]


# --- inputs -------------------------------------------------------------------------------------------------

def _is_url(name: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", name))


def _local_key(path: str) -> str:
    """A local file as Spark names it (``file:/a/b#c``) or as a user does (``a/b#c``): its real path."""
    return os.path.realpath(_file_path(path))


class Inputs:
    """The run's input files: what Spark reads (``files``) and what the user called each (``name_of``).

    ``paths`` are the local files (globs expanded, each once, in the local engine's order) as the driver reads
    them; ``remote`` the URLs of other file systems, listed by Spark.
    """

    def __init__(self, spark: SparkSession, paths: list[str], given: list[str], remote: list[str]) -> None:
        # A file named by a file: URL keeps that name (in rejects); a path keeps its own, as the local engine's.
        as_given = {os.path.realpath(_file_path(n)): n for n in given if n.startswith("file:")
                    and not glob.has_magic(n)}
        #: the name of each of ``paths``
        self.names = [as_given.get(os.path.realpath(path), path) for path in paths]
        # file:// and the absolute path as is: Hadoop takes no percent-encoding ('#', '=' in export names)
        uris = ["file://" + os.path.abspath(path) for path in paths] + remote
        try:
            self.files = spark.read.format("binaryFile").load(uris)
            listed = _listed(self.files)
        except Exception as error:
            raise InputError(f"cannot list the inputs: {_first_line(str(error))}") from None
        by_key = {_local_key(path): name for path, name in zip(paths, self.names)}
        #: Spark's path of each file → its name (a remote pattern's matches are named by their URLs)
        self.name_of = {path: by_key.get(_local_key(path), path) if path.startswith("file:") else path
                        for path, _ in listed}
        #: Spark's path of each file → its size in bytes
        self.length_of = dict(listed)
        self.bytes = sum(self.length_of.values())
        remote_names = sorted(set(self.name_of.values()) - set(self.names))
        #: the order the local engine reads files in: what rejects of phase 1 are sorted by
        self.order = {name: index for index, name in enumerate([*self.names, *remote_names])}


def _listed(files: DataFrame) -> list[tuple[str, int]]:
    """(path, size) of each file a ``binaryFile`` DataFrame reads, the path as its ``path`` column gives it: from
    the file index Spark listed on the driver when the DataFrame was made (globs expanded, folders' files found),
    which is what its scan reads; by a Spark job selecting the two columns only past :data:`LIST_ON_DRIVER` files."""
    statuses = files._jdf.queryExecution().analyzed().relation().location().allFiles()
    if statuses.length() > LIST_ON_DRIVER:
        return [(row.path, row.length) for row in files.select("path", "length").collect()]
    listed = []
    for index in range(statuses.length()):
        status = statuses.apply(index)
        listed.append((str(status.getPath().toString()), int(status.getLen())))
    return listed


def _prepare(spark: SparkSession, inputs: list[str], mapping: Mapping, key: str | bytes | None,
             chunk_bytes: int) -> tuple[Prepared, Inputs]:
    """The stage functions' state (which stops on a missing key or an unknown column before any task runs)
    and the input files."""
    if "-" in inputs:
        raise InputError("the Spark engine cannot read standard input: name the files")
    local = [name for name in inputs if not _is_url(name) or name.startswith("file:")]
    remote = [name for name in inputs if name not in local]
    if mapping.source.is_export and remote:
        # the files' schemas are learnt on the cluster (`logmap.spark.exports`): the driver may not read them
        listed = expand_export_inputs([_file_path(n) for n in local], mapping.source.format) if local else []
        files = Inputs(spark, [item.path for item in listed], local, remote)
        named = [replace(item, path=name) for item, name in zip(listed, files.names)]
        reader = open_on_cluster(files.files, files.name_of, files.order, named, mapping, chunk_bytes, _user_errors)
        return Prepared(mapping, key=key, export_reader=reader), files
    if mapping.source.is_export:
        prepared = Prepared(mapping, [_file_path(n) for n in local], key=key)
        assert prepared.export_reader is not None
        paths = [item.path for item in prepared.export_reader.files]
    else:
        from logmap.sources.lines import expand_inputs

        paths = expand_inputs([_file_path(n) for n in local]) if local else []
        prepared = Prepared(mapping, key=key)
    return prepared, Inputs(spark, paths, local, remote)


def _file_path(name: str) -> str:
    """The path of a ``file:`` URL (``file:///a/b``, or ``file:/a/b`` as Hadoop writes it), taken as it is: Hadoop
    neither encodes nor decodes, and ``#`` or ``%`` may be part of a file's name."""
    if not name.startswith("file:"):
        return name
    path = name[len("file:"):]
    return path[2:] if path.startswith("///") else path


def _output_dir(spark: SparkSession, out_dir: str | Path, overwrite: bool) -> str | Path | OutputDir:
    """A local path (or ``file:`` URL) as it is; another file system's URL as a :class:`HadoopOutputDir`."""
    name = str(out_dir)
    if not _is_url(name) or name.startswith("file:"):
        return _file_path(name) if isinstance(out_dir, str) else out_dir
    return HadoopOutputDir(spark, name, replace=overwrite)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


# --- phase 1: a map over input files ------------------------------------------------------------------------

FileReader = Callable[[str, str], Iterator[pl.DataFrame]]
#: (text source batches, first line of each counted range, phase 1's schema, buckets) → phase 1's batches
RangeReader = Callable[[Iterator["pa.RecordBatch"], dict[tuple[str, int], int], "Transport", int],
                       Iterator["pa.RecordBatch"]]
#: Files read together by the text source: (Spark's paths, whether their ranges are counted, what marks a line
#: whose record goes on past its newline)
TextGroup = tuple[list[str], bool, "Column | None"]


def _file_reader(prepared: Prepared, inputs: Inputs, chunk_bytes: int) -> FileReader:
    """(local copy, name) → parsed chunks of that file, by the local engine's reader (run on executors)."""
    source = prepared.mapping.source
    reader = prepared.export_reader
    if reader is not None:
        reader.chunk_bytes = chunk_bytes
        item_of = _export_items(reader, inputs)

        def read_export(copy: str, name: str) -> Iterator[pl.DataFrame]:
            return reader.read_file(item_of[name], copy)

        return read_export
    mapping = prepared.mapping

    def read_log(copy: str, name: str) -> Iterator[pl.DataFrame]:
        return read_source([copy], source, chunk_bytes=chunk_bytes, mapping=mapping)

    return read_log


def _export_items(reader: ExportReader, inputs: Inputs) -> dict[str, ExportFile]:
    """The run's export files by name: local inputs by the names the user gave (a file: URL's path is the
    item's), URLs by their own."""
    return {**{item.path: item for item in reader.files}, **dict(zip(inputs.names, reader.files))}


def _phase1_rows(parsed: pl.DataFrame, prepared: Prepared, buckets: int, order: dict[str, int]) -> list[pl.DataFrame]:
    """One parsed chunk through the stream stage, as phase 1's rows (see the module's docstring; ``order`` is the
    run's input order of the files, by name). A reject counts itself (``_count`` 1); so does a dropped row with
    a dedupe key (`logmap.spark.dedupe`: it may turn out to be a duplicate)."""
    parts = []
    if "time" in parsed.columns and parsed.height:
        parts.append(parsed.group_by("_file").agg(pl.col("time").min()).with_columns(_kind=pl.lit("start")))
    dedupe = prepared.mapping.dedupe
    keys = dedupe_rows.keyed_lines(parsed, dedupe, order) if dedupe is not None else None
    alive, dropped = stream_stage(prepared, parsed)
    if keys is not None:
        alive, dropped = dedupe_rows.with_keys(alive, keys), dedupe_rows.with_keys(dropped, keys)
    if dropped.height:
        rejected = dropped.filter(REJECTED)
        counted = dropped.filter(~REJECTED)
        if keys is not None:
            keyed = pl.col(dedupe_rows.KEY).is_not_null()
            parts.append(counted.filter(keyed).select("_file", "_line", "_drop", *dedupe_rows.COLUMNS)
                         .with_columns(_count=pl.lit(1, pl.Int64), _kind=pl.lit("count")))
            counted = counted.filter(~keyed)
        if counted.height:
            parts.append(counted.group_by("_drop").agg(pl.len().cast(pl.Int64).alias("_count"))
                         .with_columns(_kind=pl.lit("count")))
        if rejected.height:
            keep = [c for c in ("_file", "_line", "_drop", "_detail", "_raw", *dedupe_rows.COLUMNS)
                    if c in rejected.columns]
            parts.append(rejected.select(keep).with_columns(_count=pl.lit(1, pl.Int64), _kind=pl.lit("reject")))
    if alive.height:
        # the local engine's buckets (``--buckets N``), so that the order and ``data.N`` are those of such a run
        parts.append(alive.with_columns(visitor_bucket(buckets).cast(pl.Int64), _kind=pl.lit("alive")))
    return parts


def _phase1_chunks(chunks: Iterator[pl.DataFrame], prepared: Prepared, buckets: int, order: dict[str, int],
                   out: Transport) -> Iterator[pa.RecordBatch]:
    """Parsed chunks as phase 1's output batches (``order``: the run's input order of the files, by name)."""
    freeze_modules()
    for parsed in chunks:
        parts = _phase1_rows(parsed, prepared, buckets, order)
        if parts:
            yield from out.to_arrow(pl.concat(parts, how="diagonal_relaxed")).to_batches()


def _read_whole(files: Iterator[pa.RecordBatch], read: FileReader, names: dict[str, str]) -> Iterator[pl.DataFrame]:
    """The parsed chunks of every file of ``binaryFile`` batches, read whole by the local engine's reader, named as
    the user named the file."""
    for path, copy in local_copies(files, lambda path: _file_path(names.get(path, path))):
        name = names.get(path, path)
        try:
            for parsed in read(copy, name):
                yield parsed.with_columns(pl.lit(name, pl.String).alias("_file"))
        except LogmapError as error:
            raise user_error(error, copy, name) from None


def _phase1(files: Iterator[pa.RecordBatch], read: FileReader, names: dict[str, str], order: dict[str, int],
            prepared: Prepared, buckets: int, out: Transport) -> Iterator[pa.RecordBatch]:
    """Executor side of phase 1 for files read whole: every file of a split, chunk by chunk."""
    try:
        yield from _phase1_chunks(_read_whole(files, read, names), prepared, buckets, order, out)
    except LogmapError as error:
        raise user_error(error) from None


def _phase1_parquet(batches: Iterator[pa.RecordBatch], reader: ExportReader, items: dict[str, ExportFile],
                    names: dict[str, str], order: dict[str, int], prepared: Prepared, buckets: int,
                    out: Transport) -> Iterator[pa.RecordBatch]:
    """Executor side of phase 1 for Parquet exports read by Spark's scan (:mod:`logmap.spark.exports`)."""
    try:
        yield from _phase1_chunks(read_parquet_batches(batches, reader, items, names), prepared, buckets, order, out)
    except LogmapError as error:
        raise user_error(error) from None


def _parquet_input(spark: SparkSession, files: Inputs, prepared: Prepared, chunk_bytes: int) -> \
        tuple[DataFrame, ExportReader, dict[str, ExportFile]] | None:
    """Spark's Parquet scan of the run's Parquet exports with the columns the mapping reads, the reader and the
    files by name; None when there are none or Spark cannot read them together."""
    reader = prepared.export_reader
    if reader is None:
        return None
    reader.chunk_bytes = chunk_bytes
    item_of = _export_items(reader, files)
    paths = [path for path, name in files.name_of.items() if item_of[name].format == "parquet"]
    if not paths:
        return None
    scan = parquet_scan(spark, paths, reader, [item_of[files.name_of[path]] for path in paths])
    return None if scan is None else (scan, reader, item_of)


def _text_groups(spark: SparkSession, files: Inputs, prepared: Prepared,
                 chunk_bytes: int) -> tuple[list[TextGroup], RangeReader]:
    """The files phase 1 reads with Spark's text source, in reads of their own: (Spark's paths, whether their
    ranges are counted, what marks a line whose record goes on past its newline), and the executor's reader of a
    read's batches.

    Files the text source does not cut (too small, or gzipped) are read apart from the others, without the count:
    their one range starts at line 1 (they cannot share a read with counted files: a read's range size depends on
    all its files). CSV files are always counted, for the lines that continue
    (:func:`logmap.spark.exports.csv_continues`); such a file is read whole."""
    names, order, uncut = files.name_of, files.order, one_range_bytes(spark)  # not `files`: it holds a DataFrame
    reader = prepared.export_reader
    if reader is None:
        plain, gzipped = text_files(spark, list(names)) if splittable(prepared.mapping.source) else ([], [])
        groups: list[TextGroup] = [([*(p for p in plain if files.length_of[p] <= uncut), *gzipped], False, None),
                                   ([p for p in plain if files.length_of[p] > uncut], True, None)]
        source = prepared.mapping.source

        def read_logs(batches: Iterator[pa.RecordBatch], first_line: dict[tuple[str, int], int],
                      out: Transport, buckets: int) -> Iterator[pa.RecordBatch]:
            chunks = read_ranges(batches, first_line, names, source, chunk_bytes)
            return _phase1_chunks(chunks, prepared, buckets, order, out)

        return groups, read_logs
    reader.chunk_bytes = chunk_bytes
    items = _export_items(reader, files)
    ndjson, ndjson_gzipped, csv, headers = text_exports(spark, list(names), names, items, prepared.mapping.source)
    groups = [([*(p for p in ndjson if files.length_of[p] <= uncut), *ndjson_gzipped], False, None),
              ([p for p in ndjson if files.length_of[p] > uncut], True, None),
              (csv, True, csv_continues(prepared.mapping.source))]

    def read_exports(batches: Iterator[pa.RecordBatch], first_line: dict[tuple[str, int], int],
                     out: Transport, buckets: int) -> Iterator[pa.RecordBatch]:
        chunks = read_text_ranges(batches, first_line, names, reader, items, headers)
        return _phase1_chunks(chunks, prepared, buckets, order, out)

    return groups, read_exports


def _phase1_input(spark: SparkSession, files: Inputs, prepared: Prepared, chunk_bytes: int, buckets: int,
                  out: Transport) -> DataFrame:
    """Phase 1 over every input: plain logs and plain NDJSON and CSV exports in byte ranges (see
    :mod:`logmap.spark.logs`, :mod:`logmap.spark.exports`), Parquet exports by Spark's Parquet scan, other files
    whole."""
    from pyspark.sql import functions as F

    names, order = files.name_of, files.order  # not `files` in the closures: it holds a DataFrame
    groups, read = _text_groups(spark, files, prepared, chunk_bytes)
    parts = []
    ranged: set[str] = set()
    for group, counted, continues in groups:
        if not group:
            continue
        ranges = text_ranges(spark, group)
        first_line, whole = _user_errors(functools.partial(count_ranges, ranges, continues)) if counted else ({}, set())
        if whole:  # files with lines that continue: read whole, below (the same read, so the same ranges)
            ranges = ranges.where(~F.col(RANGE_FILE).isin(sorted(whole)))
        ranged |= set(group) - {unquote(file) for file in whole}

        def phase1_ranges(batches: Iterator[pa.RecordBatch],
                          first_line: dict[tuple[str, int], int] = first_line) -> Iterator[pa.RecordBatch]:
            try:
                yield from read(batches, first_line, out, buckets)
            except LogmapError as error:
                raise user_error(error) from None

        parts.append(ranges.mapInArrow(phase1_ranges, out.spark))
    parquet = _parquet_input(spark, files, prepared, chunk_bytes)
    scanned: set[str] = set()
    if parquet is not None:
        scan, reader, items = parquet
        scanned = {path for path in names if items[names[path]].format == "parquet"}

        def phase1_parquet(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _phase1_parquet(batches, reader, items, names, order, prepared, buckets, out)

        parts.append(scan.mapInArrow(phase1_parquet, out.spark))
    whole_files = sorted(set(names) - ranged - scanned)
    if whole_files:
        read_file = _file_reader(prepared, files, chunk_bytes)
        binary = files.files if not ranged and not scanned else \
            spark.read.format("binaryFile").load([glob_escaped(path) for path in whole_files])

        def phase1(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _phase1(batches, read_file, names, order, prepared, buckets, out)

        parts.append(binary.select("path", "content").mapInArrow(phase1, out.spark))
    if not parts:  # no file at all: an empty phase 1 of the right schema
        return spark.createDataFrame([], out.spark)
    return functools.reduce(lambda union, part: union.unionByName(part), parts)


# --- phase 2: per visitor bucket ----------------------------------------------------------------------------

def _phase2(key: tuple[Any, ...], table: pa.Table, prepared: Prepared, file_starts: FileStarts,
            first_index: dict[int, int], alive: Transport, out: Transport) -> pa.Table:
    freeze_modules()
    bucket = key[0].as_py() if hasattr(key[0], "as_py") else key[0]
    try:
        rows = alive.from_arrow(table, [c for c in alive.schema.names() if c != "_bucket"])
        records = record_stage(prepared, file_starts.rank(rows), first_index.get(bucket, 0))
    except LogmapError as error:
        raise user_error(error) from None
    return out.to_arrow(records.with_columns(pl.lit(bucket, pl.Int64).alias("_bucket")))


# --- the driver ---------------------------------------------------------------------------------------------

def spark_session(master: str | None = None) -> SparkSession:
    """The session ``logmap convert --engine spark`` runs on: ``master``, else spark-submit's, else ``local[*]``.

    Spark's own log is cut to fatal errors: a user error on an executor (a corrupt archive) is said once, in one
    line, by ``convert_spark``, not as the executor's traceback.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("logmap convert")
    if master is not None:
        builder = builder.master(master)
    elif not SparkConf().contains("spark.master"):
        builder = builder.master("local[*]")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("FATAL")
    return spark


# --- running a conversion ------------------------------------------------------------------------------

def _user_errors(action: Callable[[], Any]) -> Any:
    """Run a Spark action; a user error raised on an executor becomes that one-line error on the driver."""
    try:
        return action()
    except LogmapError:
        raise
    except Exception as error:
        found = re.search(re.escape(USER_ERROR) + r"\s*(.+)", str(error))
        if found:
            raise InputError(found.group(1).strip()) from None
        unreadable = read_failure(str(error))  # a gzip file the text source could not decompress
        if unreadable is not None:
            raise UnreadableFile(*unreadable) from None
        raise


class UnreadableFile(InputError):
    """A file Spark's text source could not read (a gzip file that does not decompress): ``path`` as Spark names
    it; the message is Hadoop's cause, until `_as_read_locally` finds the local reader's."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _as_read_locally(spark: SparkSession, error: UnreadableFile, read: FileReader,
                     names: dict[str, str]) -> InputError:
    """The error the local engine's reader gives for the file of ``error`` (read whole on an executor, as files
    that are not read by the text source are), so that a corrupt file is said in the same line by both engines;
    ``error`` itself when that reader does not fail (or cannot read the file whole)."""

    def read_whole(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        try:
            for _ in _read_whole(batches, read, names):
                pass
        except RuntimeError as failure:
            if not str(failure).startswith(USER_ERROR):
                raise
            # the reader's error as a row, not raised: a task that fails ends its Python worker, and the next
            # one starts again (the imports, a second or two of CPU), for an error that is expected here
            yield pa.RecordBatch.from_pydict({"error": [str(failure).removeprefix(USER_ERROR)]})

    whole = spark.read.format("binaryFile").load(glob_escaped(error.path)).select("path", "content")
    try:
        found = _user_errors(whole.mapInArrow(read_whole, "error string").collect)
    except InputError as failure:
        return failure if not isinstance(failure, UnreadableFile) else error
    except Exception:  # any other failure (a file over binaryFile's 2 GiB): Hadoop's cause is all there is
        return error
    return InputError(_first_line(found[0].error)) if found else error


def _partitions_for(spark: SparkSession, partitions: int | None, input_bytes: int) -> int:
    if partitions is not None:
        if partitions < 1:
            raise InputError("--partitions must be at least 1")
        return partitions
    return max(spark.sparkContext.defaultParallelism, math.ceil(input_bytes / BYTES_PER_PARTITION))


def _alive_schema(prepared: Prepared) -> dict[str, pl.DataType]:
    """The columns of phase 1's surviving rows, from the stream stage run on no rows (as Prepared checks it)."""
    empty = empty_frame(prepared.mapping.source, prepared.export_reader)
    assert empty is not None
    return dict(stream_stage(prepared, empty)[0].schema)


def convert_spark(spark: SparkSession, inputs: list[str], mapping: Mapping | str | Path, out_dir: str | Path, *,
                  key: str | bytes | None = None, batch_size: int = 10_000, fmt: BatchFormat = "ndjson",
                  overwrite: bool = False, partitions: int | None = None,
                  chunk_bytes: int = 64 * 1024 * 1024, split_bytes: int | None = None) -> RunResult:
    """Convert ``inputs`` with ``mapping`` on ``spark`` into ``out_dir``: the same batch files, rejects.ndjson and
    report.json as :func:`logmap.conversion.convert`, computed by the cluster (see the module's docstring).

    ``key`` is the anonymous-id HMAC key (read it from your secret store on the driver; the CLI reads the
    variable the mapping names). ``partitions`` is the number of visitor buckets, one Spark task each (default:
    the cluster's parallelism, or one per 256 MiB of input when that is more). ``split_bytes`` is the most
    input bytes per phase-1 task: a plain log bigger than that is read in byte ranges of at most this size
    (default: the session's ``spark.sql.files.maxPartitionBytes``, 128 MiB unless set; :mod:`logmap.spark.logs`).
    """
    with split_size(spark, split_bytes):
        return _convert(spark, inputs, mapping, out_dir, key=key, batch_size=batch_size, fmt=fmt, overwrite=overwrite,
                        partitions=partitions, chunk_bytes=chunk_bytes)


def _convert(spark: SparkSession, inputs: list[str], mapping: Mapping | str | Path, out_dir: str | Path, *,
             key: str | bytes | None, batch_size: int, fmt: BatchFormat, overwrite: bool, partitions: int | None,
             chunk_bytes: int) -> RunResult:
    mapping = resolve_mapping(mapping)
    prepared, files = _prepare(spark, list(inputs), mapping, key, chunk_bytes)
    try:
        return _run(spark, inputs, prepared, files, out_dir, batch_size=batch_size, fmt=fmt, overwrite=overwrite,
                    partitions=partitions, chunk_bytes=chunk_bytes)
    except UnreadableFile as error:
        raise _as_read_locally(spark, error, _file_reader(prepared, files, chunk_bytes), files.name_of) from None


def _run(spark: SparkSession, inputs: list[str], prepared: Prepared, files: Inputs, out_dir: str | Path, *,
         batch_size: int, fmt: BatchFormat, overwrite: bool, partitions: int | None, chunk_bytes: int) -> RunResult:
    from pyspark import StorageLevel

    mapping = prepared.mapping
    buckets = _partitions_for(spark, partitions, files.bytes)
    with Run(inputs, mapping, out_dir=_output_dir(spark, out_dir, overwrite), replace=overwrite,
             prepared=prepared) as run:
        alive_schema = _alive_schema(prepared)
        phase1_out = Transport({**alive_schema, **PHASE1_COLUMNS,
                                **(dedupe_rows.COLUMNS if mapping.dedupe is not None else {})})
        rows = _phase1_input(spark, files, prepared, chunk_bytes, buckets, phase1_out)
        if mapping.dedupe is not None:
            rows = dedupe_rows.mark_duplicates(rows)
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            summary = _summarize(rows, run, alive_schema)
            alive = Transport({**alive_schema, "_bucket": pl.Int64()})
            records_out = Transport(RECORD_COLUMNS)
            file_starts, first_index = summary.file_starts, summary.first_index

            def phase2(key: tuple[Any, ...], table: pa.Table) -> pa.Table:
                return _phase2(key, table, prepared, file_starts, first_index, alive, records_out)

            from pyspark.sql import functions as F

            survivors = rows.where(F.col("_kind") == "alive").select(*alive.columns())
            records = (survivors.repartition(buckets, "_bucket").groupBy("_bucket")
                       .applyInArrow(phase2, records_out.spark).persist(StorageLevel.MEMORY_AND_DISK))
            try:
                writer = BatchWriter(run.staging, batch_size, fmt)
                _write_rejects(rows, phase1_out, files, run)
                _write_records(records, records_out, summary.bucket_rows, writer, run)
            finally:
                records.unpersist()
        finally:
            rows.unpersist()
        return run.finish(writer.close(), batch_size=batch_size, fmt=fmt, engine="spark", partitions=buckets)


class Summary:
    """What phase 2 and the ledger need from phase 1, from one small aggregate of its rows."""

    def __init__(self, rows: list[Any], run: Run, time_dtype: pl.DataType) -> None:
        #: surviving rows per visitor bucket
        self.bucket_rows: dict[int, int] = {}
        starts: dict[str, Any] = {}
        for row in rows:
            if row["_kind"] == "count":
                run.ledger.add_input(row["dropped"])
                run.ledger.dropped[row["_drop"]] += row["dropped"]
            elif row["_kind"] == "alive":
                run.ledger.add_input(row["rows"])
                self.bucket_rows[row["_bucket"]] = row["rows"]
            else:
                starts[row["_file"]] = row["time"]
        self.file_starts = FileStarts()
        self.file_starts.add(pl.DataFrame({"_file": list(starts), "time": list(starts.values())},
                                          schema={"_file": pl.String, "time": pl.Int64})
                             .with_columns(pl.col("time").cast(time_dtype)))
        #: the position in the run of each bucket's first record (the buckets before it hold the ones before)
        self.first_index: dict[int, int] = {}
        total = 0
        for bucket in sorted(self.bucket_rows):
            self.first_index[bucket], total = total, total + self.bucket_rows[bucket]


def _summarize(rows: DataFrame, run: Run, alive_schema: dict[str, pl.DataType]) -> Summary:
    from pyspark.sql import functions as F

    kind = F.col("_kind")
    counted = F.when(kind == "reject", F.lit("count")).otherwise(kind).alias("_kind")  # a reject counts itself
    aggregate = (rows.groupBy(counted, "_drop", F.when(kind == "start", F.col("_file")).alias("_file"), "_bucket")
                 .agg(F.count(F.lit(1)).alias("rows"), F.sum("_count").alias("dropped"), F.min("time").alias("time")))
    return Summary(_user_errors(aggregate.collect), run, alive_schema.get("time", pl.Datetime("ms", "UTC")))


def _write_rejects(rows: DataFrame, phase1_out: Transport, inputs: Inputs, run: Run) -> None:
    """Phase 1's rejects (malformed lines, invalid values), in input order: file, then line."""
    from pyspark.sql import functions as F

    columns = ["_file", "_line", "_drop", "_detail", "_raw"]
    table = _user_errors(rows.where(F.col("_kind") == "reject").select(*columns).toArrow)
    rejected = phase1_out.from_arrow(table, columns)
    if rejected["_raw"].null_count() == rejected.height:  # exports have no raw line; the local engine omits it
        rejected = rejected.drop("_raw")
    order = inputs.order
    file_order = pl.col("_file").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    assert run.rejects is not None
    run.rejects.write(rejected.sort(file_order, "_line"))


def _write_records(records: DataFrame, records_out: Transport, bucket_rows: dict[int, int], writer: BatchWriter,
                   run: Run) -> None:
    """Phase 2's records fetched bucket range by bucket range, each in its run order: valid ones to the batch
    files, invalid ones to the rejects (rows merged into another, such as page pings, only to the ledger), all to
    the ledger."""
    from pyspark.sql import functions as F

    assert run.rejects is not None
    for low, high in _bucket_ranges(bucket_rows):
        table = _user_errors(records.where(F.col("_bucket").between(low, high)).toArrow)
        valid, invalid = split_dropped(records_out.from_arrow(table).sort("_index"))
        account_dropped(invalid, run.ledger, run.rejects)
        run.ledger.add_emitted(valid, run.prepared.rule_names)
        if valid.height:
            writer.write(valid["_json"])


def _bucket_ranges(bucket_rows: dict[int, int]) -> Iterator[tuple[int, int]]:
    """Consecutive buckets holding about :data:`FETCH_RECORDS` records together (a bigger bucket on its own)."""
    low, held = None, 0
    ordered = sorted(bucket_rows)
    for bucket in ordered:
        if low is None:
            low = bucket
        held += bucket_rows[bucket]
        if held >= FETCH_RECORDS:
            yield low, bucket
            low, held = None, 0
    if low is not None:
        yield low, ordered[-1]
