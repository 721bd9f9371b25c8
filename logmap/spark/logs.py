"""Access logs on Spark in byte-range splits, every line keeping its exact 1-based number.

A plain (uncompressed) log is read by Spark's own text source (``spark.read.text`` with ``lineSep="\\n"``), which
cuts a file into byte ranges of at most ``spark.sql.files.maxPartitionBytes`` (``convert_spark(split_bytes=…)``)
and gives each range the lines that *start* in it: Hadoop's rule, every line in exactly one range. Line numbers
across ranges come from two passes:

1. **Counting, in the JVM only**: ``groupBy(file, block start).count()`` over the same text source (no Python,
   no parsing) gives each range's number of lines; prefix sums over each file's ranges in byte order give each
   range's first line number (:func:`count_ranges`), collected on the driver and shipped in phase 1's closure.
2. **Phase 1** (``mapInArrow``) numbers a range's lines from there in the order they arrive (a range is read
   front to back by one task; ranges sharing a task are told apart by their file and block start) and hands
   them, a chunk at a time, to the local engine's own line splitting (:func:`logmap.sources.lines.block_lines`:
   UTF-8 with U+FFFD for invalid bytes, one ``\\r`` stripped, blank lines kept) and parser
   (:func:`logmap.sources.accesslog.parse`).

The line crosses into Python as binary (cast in the JVM), so invalid UTF-8 and NUL bytes reach logmap's decoder as
they are on disk. ``lineSep="\\n"`` because Hadoop's default also ends a line at a lone ``\\r``; the local engine
does not.

A file is **read whole** instead, by the local engine's reader (the engine's ``binaryFile`` path), when the
text source would not read it as the local engine does, or a range could not be parsed on its own:

* compressed content (bzip2, xz, zstd; gzip unless named ``.gz``: sniffed from the first bytes on the driver, as
  the local reader decides by content, while Hadoop decompresses by name);
* a name Hadoop would decompress that does not hold what the name says (``x.gz`` holding plain text is text to
  the local reader), or any other name Hadoop decompresses (``.bz2``: Hadoop would cut it into ranges, ``.zst``:
  Hadoop needs a native library).

A **gzip file named** ``.gz`` is read by the text source too, as one range (a gzip stream cannot be cut; Hadoop
decompresses it by its name, concatenated members included, as the local reader does): no count is needed, its
lines are numbered from 1, and no file size limit applies (``binaryFile`` takes files up to 2 GiB). A file that
does not decompress (truncated, trailing bytes) stops the run with one line naming it (:func:`read_failure`).
* ``source.encoding`` other than UTF-8 (the local reader transcodes the whole stream);
* a format whose parser carries state from a file's first lines to the rest: the W3C family's ``#Fields:``
  header in force (``w3c``, ``cloudfront``, ``shoutcast``, ``incapsula``) and ``format: auto``'s choice.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import polars as pl

from logmap.errors import InputError
from logmap.mapping.model import Source
from logmap.sources import accesslog
from logmap.sources.lines import block_lines, compression_of, is_utf8

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

#: Modules of parsers that carry state from a file's first lines to its later ones (``accesslog.PLUGINS``).
_PER_FILE_PARSERS = frozenset({"w3c", "cloudfront", "detect"})
#: Bytes read from each file's start on the driver: enough for every compression magic.
_HEAD_BYTES = 8
#: Files sniffed at once (each a round trip to the file system: an object store's latency, not its bandwidth).
_SNIFF_THREADS = 16
#: Columns of the text source as phase 1 reads it: the file (URL-encoded, as Spark names it), the byte offset of
#: the range, the line's bytes.
FILE, START, LINE = "_split_file", "_split_start", "_split_line"
#: The session setting that sizes the text source's byte ranges (and packs small files into a task).
SPLIT_SETTING = "spark.sql.files.maxPartitionBytes"


def splittable(source: Source) -> bool:
    """Whether ``source``'s lines can be parsed range by range (its files may then be split)."""
    module = accesslog.PLUGINS.get(source.format, (source.format,))[0]
    return not source.is_export and is_utf8(source.encoding) and module not in _PER_FILE_PARSERS


def file_heads(spark: SparkSession, paths: list[str], size: int) -> dict[str, bytes]:
    """The first ``size`` bytes (or fewer: the whole file) of each of ``paths`` (Spark's names of listed files),
    read on the driver through Hadoop's FileSystem, :data:`_SNIFF_THREADS` at a time."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    assert jvm is not None

    def head(name: str) -> bytes:
        path = jvm.org.apache.hadoop.fs.Path(name)
        stream = path.getFileSystem(conf).open(path)
        try:
            return bytes(stream.readNBytes(size))
        finally:
            stream.close()

    with ThreadPoolExecutor(_SNIFF_THREADS) as pool:
        return dict(zip(paths, pool.map(head, paths)))


def text_files(spark: SparkSession, paths: list[str]) -> tuple[list[str], list[str]]:
    """Those of ``paths`` (Spark's names of the listed files) that the text source reads as the local engine
    does: (plain files: no compression magic at their start and no name Hadoop would decompress, gzip files named
    ``.gz``)."""
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    assert jvm is not None
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf)

    def codec(name: str) -> str | None:
        found = codecs.getCodec(jvm.org.apache.hadoop.fs.Path(name))
        return None if found is None else str(found.getDefaultExtension())

    named = {name: codec(name) for name in paths}
    candidates = [name for name, extension in named.items() if extension in (None, ".gz")]
    heads = file_heads(spark, candidates, _HEAD_BYTES)
    kinds = {name: compression_of(heads[name]) for name in candidates}
    return ([name for name in candidates if named[name] is None and kinds[name] is None],
            [name for name in candidates if named[name] == ".gz" and kinds[name] == "gzip"])


def read_failure(error: str) -> tuple[str, str] | None:
    """(the file, a one-line message) of a Spark job that failed reading a file (a gzip file that does not
    decompress), from the text of its error; None for any other failure."""
    import re

    failed = re.search(r"Encountered error while reading file (\S+?)\.?\s", error)
    if failed is None:
        return None
    cause = re.search(r"Caused by: ([\w.$]+): ([^\n]*)", error)
    reason = f"{cause.group(2).strip()} ({cause.group(1).rsplit('.', 1)[-1]})" if cause else "unreadable"
    shown = re.sub(r"^file:(//)?(?=/)", "", unquote(failed.group(1)))
    return failed.group(1), f"cannot read {shown}: {reason}."


@contextmanager
def split_size(spark: SparkSession, split_bytes: int | None) -> Iterator[None]:
    """The session's :data:`SPLIT_SETTING` at ``split_bytes`` for a run (None: as it is), restored after it.

    Held for the whole run: the count and phase 1 must cut a file into the same ranges, and phase 1 may be
    computed again (a persisted partition lost with its executor)."""
    if split_bytes is None:
        yield
        return
    if split_bytes < 1:
        raise ValueError("split_bytes must be positive")
    before = spark.conf.get(SPLIT_SETTING, None)
    spark.conf.set(SPLIT_SETTING, str(split_bytes))
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(SPLIT_SETTING)
        else:
            spark.conf.set(SPLIT_SETTING, before)


def one_range_bytes(spark: SparkSession) -> int:
    """The size up to which the text source never cuts a file: the least range size Spark may choose,
    ``min(maxPartitionBytes, openCostInBytes)`` (it takes ``min(maxPartitionBytes, max(openCostInBytes, bytes per
    core))``). Such files need no count."""
    conf = spark._jsparkSession.sessionState().conf()
    return int(min(conf.filesMaxPartitionBytes(), conf.filesOpenCostInBytes()))


def glob_escaped(path: str) -> str:
    """``path`` as a literal to Spark, which expands any path holding a glob character (``[``, ``{``, ``*``…)."""
    return "".join("\\" + char if char in "\\{}[]*?" else char for char in path)


#: Options of every file read: a corrupt or vanished file fails the run, whatever the cluster's defaults
#: (``spark.sql.files.ignoreCorruptFiles`` would skip the rest of a file, its lines in no count of the ledger).
STRICT_READ = {"ignoreCorruptFiles": "false", "ignoreMissingFiles": "false"}


def text_ranges(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The lines of ``paths`` as Spark's text source splits them: (file, range start, line bytes)."""
    from pyspark.sql import functions as F

    return (spark.read.option("lineSep", "\n").options(**STRICT_READ).text([glob_escaped(p) for p in paths])
            .select(F.col("_metadata.file_path").alias(FILE), F.col("_metadata.file_block_start").alias(START),
                    F.col("value").cast("binary").alias(LINE)))


def count_ranges(ranges: DataFrame, continues: Column | None = None) -> tuple[dict[tuple[str, int], int], set[str]]:
    """(file, range start) → the 1-based number of the range's first line, from a count of lines per range (a
    pass over the input in the JVM alone); ranges that hold no line start (inside one long line) are absent.
    With ``continues`` (true for a line whose record goes on past its newline: a CSV quoted field), also the files
    holding such a line, whose lines cannot be read range by range."""
    from pyspark.sql import functions as F

    counted = [F.count(F.lit(1)).alias("count")]
    if continues is not None:
        counted.append(F.max(continues.cast("int")).alias("continues"))
    counts = ranges.groupBy(FILE, START).agg(*counted).collect()
    per_file: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in counts:
        per_file[row[FILE]].append((row[START], row["count"]))
    first: dict[tuple[str, int], int] = {}
    for file, spans in per_file.items():
        line = 1
        for start, count in sorted(spans):
            first[(file, start)] = line
            line += count
    return first, {row[FILE] for row in counts if continues is not None and row["continues"]}


def range_blocks(batches: Iterator[pa.RecordBatch], first_line: dict[tuple[str, int], int],
                 names: dict[str, str]) -> Iterator[tuple[str, int, bytes, int]]:
    """Executor side: (file, number of its first line, whole lines ending with a newline, how many) for each run of
    one range's lines in the text source's ``batches``, the file named as the user named it (``names``: Spark's
    decoded path → name) and its lines numbered from the range's first line (``first_line``; a file not counted
    is one range, from line 1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    next_line: dict[tuple[str, int], int] = {}  # where each range seen so far continues
    for batch in batches:
        keys = pl.from_arrow(batch.select([FILE, START]))
        assert isinstance(keys, pl.DataFrame)
        # consecutive rows of one range: one run per batch, or a few where a range ends and the next begins
        runs = (keys.with_row_index("_at").group_by(pl.struct(FILE, START).rle_id().alias("_run"), maintain_order=True)
                .agg(pl.col(FILE).first(), pl.col(START).first(), pl.col("_at").first(), pl.len()))
        lines = batch.column(LINE)
        for file, start, at, count in runs.select(FILE, START, "_at", "len").iter_rows():  # per range, not per line
            key = (file, start)
            if key not in next_line:
                if key not in first_line and start != 0:  # an uncounted file is one range, from line 1
                    raise InputError(f"{unquote(file)} changed while it was read (a byte range at {start} was not "
                                     "in the count of its lines): convert it once it is complete")
                next_line[key] = first_line.get(key, 1)
            values = lines.slice(at, count)
            # the offsets from a buffer, not pa.array([0, count]): pyarrow imports pandas to read a Python list
            # (~0.3 s of every Python worker's start, for two integers)
            offsets: Any = pa.Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(struct.pack("=ii", 0, count))])
            joined: Any = pc.binary_join(pa.ListArray.from_arrays(offsets, values), b"\n")
            yield names.get(unquote(file), unquote(file)), next_line[key], joined[0].as_py() + b"\n", count
            next_line[key] += count


def read_ranges(batches: Iterator[pa.RecordBatch], first_line: dict[tuple[str, int], int], names: dict[str, str],
                source: Source, chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """Executor side: the parsed chunks (of about ``chunk_bytes`` of lines) of the log ranges in ``batches``
    (:func:`range_blocks`), each line numbered and named as the local engine would."""
    held: list[pl.DataFrame] = []
    held_bytes = 0
    for name, line, block, _ in range_blocks(batches, first_line, names):
        held.append(block_lines(block, name, line))
        held_bytes += len(block)
        if held_bytes >= chunk_bytes:
            yield accesslog.parse(pl.concat(held), source)
            held, held_bytes = [], 0
    if held:
        yield accesslog.parse(pl.concat(held), source)
