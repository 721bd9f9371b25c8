"""Exports on Spark: schemas of files the driver cannot read learnt on the cluster; Parquet read by Spark's scan.

An export run reads every file with one schema, unified before any row is read (`logmap.sources.exports`: a
column some files lack is null there, widths are widened, a conflict stops the run naming the files), and the
mapping is compiled against it. The local engine, and a Spark run whose exports are local paths, learn each
file's format and schema on the driver (`ExportReader`). Files named by URLs (``s3a://``, ``hdfs://``,
``viewfs://``, …) are probed **on the cluster** instead: a first Spark job over Spark's ``binaryFile`` reader writes
each file to an executor's temporary file and runs `probe_file` on it (the format sniffed from its content, its
schema, its NDJSON columns of mixed shape, the first values of the text columns the mapping walks into as JSON),
the very code the reader runs on the driver otherwise; the driver collects these small probes and opens the run's
`ExportReader` from them. Phase 1 then reads the rows as it does for local files, so records, ledger and rejects
are the local engine's for the same files.

Each file is read twice (the probe, then phase 1), as the local engine reads an NDJSON or CSV file twice (its
schema, then its rows); Parquet's probe reads only its footer and the sampled columns. A CSV without a header row
takes its column names from ``columns`` or from a ``header_file`` the driver reads (beside a local input, else
the path as given).

Plain NDJSON and CSV files are read in byte ranges by Spark's text source, as plain logs are (`text_exports`,
`read_text_ranges`): each range's lines go through the reader's own NDJSON or CSV step, numbered from the count of
lines per range; a CSV file whose records span lines (`csv_continues`) is read whole.

Parquet files (`parquet_scan`) are read by Spark's own Parquet source, not whole: only the columns and struct
fields the run reads, split by row group, each row with its file and its index in it (hidden ``_metadata``
columns); the executor turns each batch into the frame `ExportReader.read_file` gives for those rows
(`read_parquet_batches`, through `ExportReader.rows_frame`). Files Spark cannot read together are read whole.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from logmap.errors import InputError, LogmapError
from logmap.mapping.model import Mapping, Source
from logmap.sources import open_export
from logmap.sources.exports import (
    ExportFile,
    ExportReader,
    FileProbe,
    csv_escape,
    csv_header_row,
    csv_quote,
    probe_file,
    wanted_names,
    with_header,
)
from logmap.sources.lines import block_lines
from logmap.spark.files import freeze_modules, local_copies, user_error
from logmap.spark.logs import LINE, STRICT_READ, file_heads, range_blocks, text_files

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

def _probe_files(batches: Iterator[pa.RecordBatch], items: dict[str, ExportFile], mapping: Mapping,
                 chunk_bytes: int) -> Iterator[pa.RecordBatch]:
    """Executor side: the `FileProbe` of every file of a split, pickled, named by Spark's path."""
    import pyarrow as pa

    freeze_modules()
    wanted = wanted_names(mapping)
    for path, copy in local_copies(batches, lambda path: items[path].path):
        item = items[path]
        try:
            probe = probe_file(replace(item, path=copy), mapping.source, chunk_bytes, wanted)
        except LogmapError as error:
            raise user_error(error, copy, item.path) from None
        probe = replace(probe, file=replace(probe.file, path=item.path))
        yield pa.RecordBatch.from_pydict({"path": [path], "probe": [pickle.dumps(probe)]})  # string, binary


def open_on_cluster(files: DataFrame, name_of: dict[str, str], order: dict[str, int], local: list[ExportFile],
                    mapping: Mapping, chunk_bytes: int, action: Callable[[Callable[[], Any]], Any]) -> ExportReader:
    """The run's `ExportReader`, its files probed on the cluster.

    ``files`` is Spark's ``binaryFile`` frame of the inputs, ``name_of`` each file's name by Spark's path,
    ``order`` the run's input order by name; ``local`` the local inputs as listed on the driver (hive partitions
    of their folders), in that order. ``action`` runs the Spark action (turning an executor's user error into
    the driver's).
    """
    by_name = {item.path: item for item in local}
    items: dict[str, ExportFile] = {}
    for path, name in name_of.items():
        items[path] = with_header(by_name.get(name, ExportFile(name)), mapping.source)

    def probe(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return _probe_files(batches, items, mapping, chunk_bytes)

    rows = action(files.select("path", "content").mapInArrow(probe, "path string, probe binary").collect)
    probes: list[FileProbe] = sorted((pickle.loads(row.probe) for row in rows),
                                     key=lambda p: order.get(p.file.path, len(order)))
    return open_export([p.file.path for p in probes], mapping.source, mapping, probes=probes)


# --- Parquet through Spark's own reader ----------------------------------------------------------------------

#: Columns of the Parquet scan besides the export's: the file (URL-encoded, as Spark names it), the row's 0-based
#: index in it.
FILE, ROW = "_parquet_file", "_parquet_row"


def agreeing_types(reader: ExportReader, items: list[ExportFile]) -> bool:
    """Whether every column the run reads has one type in all of ``items`` that hold it: Spark's reader merges
    the files' schemas, but it cannot read one column as an integer in one file and as text in another."""
    for column in reader.read_schema:
        if len({str(reader.schemas[item.path][column]) for item in items if column in reader.schemas[item.path]}) > 1:
            return False
    return True


def _projected(column: Any, dtype: Any, spark_type: Any) -> Any:
    """``column`` with only the struct fields of ``dtype`` (the run's read type of it: the fields the mapping
    reads), so that Spark's nested schema pruning reads no other leaf; other columns whole."""
    import polars as pl
    from pyspark.sql import functions as F
    from pyspark.sql import types as t

    if isinstance(dtype, pl.Struct) and isinstance(spark_type, t.StructType):
        present = {field.name: field.dataType for field in spark_type.fields}
        fields = [F.lit(None).cast(t.NullType()).alias(f.name) if f.name not in present else
                  _projected(column.getField(f.name), f.dtype, present[f.name]).alias(f.name) for f in dtype.fields]
        if not any(f.name in present for f in dtype.fields):
            return column
        return F.when(column.isNull(), F.lit(None)).otherwise(F.struct(*fields))  # a null struct stays null
    if isinstance(dtype, pl.List) and isinstance(spark_type, t.ArrayType) and isinstance(dtype.inner, pl.Struct):
        return F.transform(column, lambda element: _projected(element, dtype.inner, spark_type.elementType))
    return column


def parquet_scan(spark: SparkSession, paths: list[str], reader: ExportReader,
                 items: list[ExportFile]) -> DataFrame | None:
    """Spark's Parquet scan of ``paths`` (Spark's names of the run's Parquet files ``items``) with the columns
    and struct fields the run reads, each row's file and 0-based index beside them; None when Spark cannot read
    the files together (the engine then reads them whole, as other exports)."""
    from pyspark.sql import functions as F

    from logmap.spark.logs import glob_escaped

    if not agreeing_types(reader, items):
        return None
    try:
        files = (spark.read.option("mergeSchema", "true").options(**STRICT_READ)
                 .parquet(*[glob_escaped(p) for p in paths]))
    except Exception:  # any schema Spark cannot merge: the files are read whole
        return None
    stored = {item.path: reader.schemas[item.path] for item in items}
    spark_types = {field.name: field.dataType for field in files.schema.fields}
    columns = [_projected(F.col(f"`{name}`"), dtype, spark_types[name]).alias(name)
               for name, dtype in reader.read_schema.items()
               if name in spark_types and any(name in schema for schema in stored.values())]
    return files.select(F.col("_metadata.file_path").alias(FILE), F.col("_metadata.row_index").alias(ROW), *columns)


def read_parquet_batches(batches: Iterator[pa.RecordBatch], reader: ExportReader, items: dict[str, ExportFile],
                         names: dict[str, str]) -> Iterator[pl.DataFrame]:
    """Executor side: the frames `ExportReader.read_file` gives for the rows of the scan's ``batches``, each row
    numbered as there (its index in the file + 1) and named as the user named its file (``names``: Spark's
    decoded path → name; ``items``: name → the run's `ExportFile`)."""
    import polars as pl

    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        # consecutive rows of one file: one run per batch, or a few where a split holds several files
        runs = (frame.select(FILE).with_row_index("_at").group_by(pl.col(FILE).rle_id().alias("_run"),
                                                                  maintain_order=True)
                .agg(pl.col(FILE).first(), pl.col("_at").first(), pl.len()))
        for file, at, count in runs.select(FILE, "_at", "len").iter_rows():  # per file, not per row
            name = names.get(unquote(file), unquote(file))
            rows = frame.slice(at, count)
            lines = (rows[ROW] + 1).cast(pl.UInt64)
            out = reader.rows_frame(rows.drop(FILE, ROW), items[name], lines)
            yield out.with_columns(pl.lit(name, pl.String).alias("_file"))


# --- NDJSON and CSV through Spark's text source -------------------------------------------------------------

#: Bytes of a CSV file's start read on the driver for its header line (a longer header: the file is read whole).
HEADER_BYTES = 64 * 1024


def text_exports(spark: SparkSession, paths: list[str], names: dict[str, str], items: dict[str, ExportFile],
                 source: Source) -> tuple[list[str], list[str], list[str], dict[str, bytes]]:
    """Those of ``paths`` (Spark's names of the run's files) read by Spark's text source: (plain NDJSON files, in
    byte ranges; gzipped NDJSON files named ``.gz``, one range each; CSV files of either kind; the header line of
    each CSV file that has one). See `logmap.spark.logs.text_files`. CSV files are not read so when an ``escape``
    character and a ``quote`` are both set (an escaped quote cannot be told from a quote line by line), nor one whose
    header line is longer than :data:`HEADER_BYTES`."""
    import zlib

    text = [path for path in paths if items[names[path]].format in ("ndjson", "csv")]
    plain, gzipped = text_files(spark, text) if text else ([], [])
    ndjson = [path for path in plain if items[names[path]].format == "ndjson"]
    ndjson_gzipped = [path for path in gzipped if items[names[path]].format == "ndjson"]
    csv = [path for path in [*plain, *gzipped] if items[names[path]].format == "csv"]
    if not csv or (csv_quote(source) and csv_escape(source)):
        return ndjson, ndjson_gzipped, [], {}
    headed = [path for path in csv if csv_header_row(items[names[path]], source)]
    heads = file_heads(spark, headed, HEADER_BYTES)
    broken = set()
    for path in set(gzipped) & set(heads):  # the start of the text: a gzip stream decompresses from its start
        try:
            heads[path] = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(heads[path], HEADER_BYTES)
        except zlib.error:  # read whole instead: the local reader says what is wrong with it, in one line
            broken.add(path)
    headers = {names[path]: head[:head.index(b"\n") + 1] for path, head in heads.items() if b"\n" in head}
    return ndjson, ndjson_gzipped, [path for path in csv if path not in broken and (path not in heads or
                                                                                    names[path] in headers)], headers


def csv_continues(source: Source) -> Column | None:
    """True for a line of the text source (``logs.LINE``, binary) whose CSV record goes on past its newline, by the
    source's quoting: an odd number of quote characters (a quoted field left open: a doubled quote counts twice),
    or, without quotes, an odd run of escape characters at its end (an escaped newline); None when no record can
    span lines. A file holding such a line is read whole (`logmap.spark.logs.count_ranges`)."""
    import re

    from pyspark.sql import functions as F

    line = F.col(LINE).cast("string")
    quote, escape = csv_quote(source), csv_escape(source)
    if quote:
        size = len(quote.encode())
        quotes = (F.octet_length(line) - F.octet_length(F.replace(line, F.lit(quote), F.lit("")))) / size
        return quotes % 2 == 1
    if escape:
        mark = re.escape(escape)
        return line.rlike(f"(^|[^{mark}])({mark}{mark})*{mark}$")
    return None


def read_text_ranges(batches: Iterator[pa.RecordBatch], first_line: dict[tuple[str, int], int],
                     names: dict[str, str], reader: ExportReader, items: dict[str, ExportFile],
                     headers: dict[str, bytes]) -> Iterator[pl.DataFrame]:
    """Executor side: the frames `ExportReader.read_file` gives for the NDJSON and CSV lines of the text source's
    ``batches`` (`logmap.spark.logs.range_blocks`: each run of a range's lines, numbered), by the reader's own
    steps, a chunk of consecutive lines of one file (up to the reader's ``chunk_bytes``) at a time: NDJSON lines
    split as `read_lines` splits a file (`block_lines`) and decoded by `ExportReader.ndjson_rows`; CSV lines
    (after the file's header line, ``headers`` by name, when they are not the file's start) parsed by
    `ExportReader.csv_rows`, the rows numbered from the first line's (a line is a row: no record spans lines in
    a file read so)."""
    held: list[bytes] = []
    name, line, count, size = "", 0, 0, 0
    for block_name, block_line, block, block_count in range_blocks(batches, first_line, names):
        if held and (block_name != name or block_line != line + count or size >= reader.chunk_bytes):
            yield from _text_chunk(name, line, b"".join(held), count, reader, items[name], headers.get(name))
            held = []
        if not held:
            name, line, count, size = block_name, block_line, 0, 0
        held.append(block)
        count += block_count
        size += len(block)
    if held:
        yield from _text_chunk(name, line, b"".join(held), count, reader, items[name], headers.get(name))


def _text_chunk(name: str, line: int, block: bytes, count: int, reader: ExportReader, item: ExportFile,
                header: bytes | None) -> Iterator[pl.DataFrame]:
    """The frames of ``count`` consecutive lines of one NDJSON or CSV file, the first of them line ``line``."""
    import polars as pl

    if item.format == "ndjson":
        frames = list(reader.ndjson_rows(item, [block_lines(block, name, line)]))
    else:
        data, first_row, rows = ((block, line, count) if header is None else
                                 (block, 1, count - 1) if line == 1 else (header + block, line - 1, count))
        frames = list(reader.csv_rows(item, data, first_row))
        if sum(frame.height for frame in frames) != rows:
            raise InputError(f"cannot read {name} in byte ranges: its lines {line}–{line + count - 1} hold "
                             f"{sum(frame.height for frame in frames)} CSV records, not {rows} (a quoted field "
                             "goes on past a line's end although the line's quotes pair up); gzip the file to "
                             "have it read whole")
    yield from (frame.with_columns(pl.lit(name, pl.String).alias("_file")) for frame in frames)
