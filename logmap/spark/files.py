"""Files read whole on executors: Spark's ``binaryFile`` rows as local files logmap's own readers can open, and
user errors raised there in a form the driver says in one line."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from logmap.errors import LogmapError

if TYPE_CHECKING:
    import pyarrow as pa

#: What an executor raises for a user error (a LogmapError), so that the driver can say it in one line.
USER_ERROR = "logmap-user-error:"


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
