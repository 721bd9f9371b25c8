"""Executor-side helpers: Spark's ``binaryFile`` rows as local files logmap's own readers can open, user errors
raised there in a form the driver says in one line, and a Python worker's collector kept off the modules."""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from logmap.errors import LogmapError

if TYPE_CHECKING:
    import pyarrow as pa

#: What an executor raises for a user error (a LogmapError), so that the driver can say it in one line.
USER_ERROR = "logmap-user-error:"


_frozen = False


def freeze_modules() -> None:
    """Take the objects a Python worker holds (its modules: pyspark, pyarrow, polars, logmap, the task's function)
    out of the cyclic garbage collector's reach, once per worker process; later garbage is collected as before.

    PySpark's daemon runs a full ``gc.collect()`` after every task of a reused worker. With logmap's modules
    loaded (some 70,000 objects) each collection costs ~50 ms of CPU: more than a small task's own work, so a
    run of many small splits spent most of its Python time there. Called at the start of every executor-side
    function."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def local_copies(batches: Iterator[pa.RecordBatch], name_of: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    """Each file of ``binaryFile`` batches (columns ``path``, ``content``) written to a temporary local file named
    like the input (``name_of(Spark's path)``, so that readers see its ending): ``(Spark's path, the copy)``. A copy
    is removed when the caller moves on to the next file."""
    with tempfile.TemporaryDirectory(prefix="logmap-file-") as folder:
        for batch in batches:
            paths, contents = batch.column("path"), batch.column("content")
            for index in range(batch.num_rows):  # per file, not per row
                path = paths[index].as_py()
                copy = os.path.join(folder, os.path.basename(name_of(path).rstrip("/")) or "input")
                with open(copy, "wb") as handle:
                    handle.write(memoryview(contents[index].as_buffer()))
                try:
                    yield path, copy
                finally:
                    os.unlink(copy)


def user_error(error: LogmapError, copy: str | None = None, name: str = "") -> RuntimeError:
    """The executor's form of ``error`` (naming the input, not its temporary ``copy``), for the driver to find."""
    message = str(error) if copy is None else str(error).replace(copy, name)
    return RuntimeError(USER_ERROR + message)
