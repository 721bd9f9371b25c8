"""Exports on Spark whose files the driver cannot read: their schemas learnt on the cluster.

An export run reads every file with one schema, unified before any row is read (`logmap.sources.exports`: a
column some files lack is null there, widths are widened, a conflict stops the run naming the files), and the
mapping is compiled against it. The local engine, and a Spark run whose exports are local paths, learn each
file's format and schema on the driver (`ExportReader`). Files named by URLs (``s3a://``, ``hdfs://``,
``viewfs://``, …) are probed **on the cluster** instead: a first Spark job over Spark's ``binaryFile`` reader writes
each file to an executor's temporary file and runs `probe_file` on it (the format sniffed from its content, its
schema, its NDJSON columns of mixed shape, the first values of the text columns the mapping walks into as JSON),
the very code the reader runs on the driver otherwise; the driver collects these small probes and opens the run's
`ExportReader` from them. Phase 1 then reads the rows as it does for local files (`ExportReader.read_file` on the
executor's copy), so records, ledger and rejects are the local engine's for the same files.

Each file is read twice (the probe, then phase 1), as the local engine reads an NDJSON or CSV file twice (its
schema, then its rows); Parquet's probe reads only its footer and the sampled columns. A CSV without a header row
takes its column names from ``columns`` or from a ``header_file`` the driver reads (beside a local input, else
the path as given).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from logmap.errors import LogmapError
from logmap.mapping.model import Mapping
from logmap.sources import open_export
from logmap.sources.exports import ExportFile, ExportReader, FileProbe, probe_file, wanted_names, with_header

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

#: What an executor raises for a user error (a LogmapError), so that the driver can say it in one line.
USER_ERROR = "logmap-user-error:"


def _probe_files(batches: Iterator[pa.RecordBatch], items: dict[str, ExportFile], mapping: Mapping,
                 chunk_bytes: int) -> Iterator[pa.RecordBatch]:
    """Executor side: the `FileProbe` of every file of a split, pickled, named by Spark's path."""
    import pyarrow as pa

    wanted = wanted_names(mapping)
    with tempfile.TemporaryDirectory(prefix="logmap-probe-") as folder:
        for batch in batches:
            for index in range(batch.num_rows):  # per file, not per row
                path = batch.column("path")[index].as_py()
                item = items[path]
                copy = os.path.join(folder, os.path.basename(item.path.rstrip("/")) or "input")
                with open(copy, "wb") as handle:
                    handle.write(memoryview(batch.column("content")[index].as_buffer()))
                try:
                    probe = probe_file(replace(item, path=copy), mapping.source, chunk_bytes, wanted)
                except LogmapError as error:
                    raise RuntimeError(USER_ERROR + str(error).replace(copy, item.path)) from None
                finally:
                    os.unlink(copy)
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
