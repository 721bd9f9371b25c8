"""The output contract every command that runs the pipeline shares: one :class:`Run`.

A run has a ledger, warnings, a rejects file and a report. Its files are built in a staging directory beside
the output directory and moved in only when the run has succeeded, ``report.json`` last: a directory with a
``report.json`` holds a finished run, and a run that fails or is killed leaves the previous output as it was
(plus, at worst, a hidden ``.NAME.partial-*`` staging directory).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl

from logmap.errors import OutputError
from logmap.ledger import Ledger
from logmap.mapping.model import Mapping
from logmap.pipeline.runner import DroppedObserver, ProgressCallback, RunOptions, iter_records, resolve_mapping
from logmap.pipeline.stages import Prepared, Timings
from logmap.sinks.batches import RejectsWriter
from logmap.sinks.report import RunResult, write_report

REPORT_NAME = "report.json"
REJECTS_NAME = "rejects.ndjson"
BATCH_PATTERNS = ("interactions-*.ndjson", "interactions-*.json")
#: Files a run writes in an output directory (replaced by a new run; others, such as the upload journal and
#: dead-letter file, are left alone: batch ids include a content hash, so an unchanged batch stays acknowledged).
OWN_PATTERNS = (*BATCH_PATTERNS, REJECTS_NAME, REPORT_NAME)


class OutputDir:
    """An output directory whose new files appear only when :meth:`commit` is called.

    ``replace``: a non-empty directory is accepted, and the run's own files in it (:data:`OWN_PATTERNS`) are
    replaced on commit; otherwise a non-empty directory is refused before anything is read.
    """

    def __init__(self, path: str | Path, *, replace: bool, refuse_hint: str = "pass --overwrite") -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.path} exists and is not a directory")
        if self.path.exists() and any(self.path.iterdir()) and not replace:
            raise OutputError(f"output directory {self.path} is not empty; choose another or {refuse_hint}")
        parent = self.path.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=parent))
        except OSError as error:
            raise OutputError(f"cannot write beside {self.path}: {error.strerror}") from None

    def staged(self, name: str) -> Path:
        """Where a file that will be called ``name`` in the output directory is written meanwhile."""
        return self.staging / name

    def commit(self) -> list[Path]:
        """Move the staged files in, replacing the run's own older files, ``report.json`` last."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / REPORT_NAME).unlink(missing_ok=True)  # from here on the directory holds no finished run
        for pattern in OWN_PATTERNS:
            for old in self.path.glob(pattern):
                old.unlink()
        names = sorted(p.name for p in self.staging.iterdir())
        for name in [n for n in names if n != REPORT_NAME] + [n for n in names if n == REPORT_NAME]:
            os.replace(self.staging / name, self.path / name)
        _fsync_dir(self.path)
        self.discard()
        return [self.path / n for n in names]

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it: readers see the old file or the new one."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.absolute().parent)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class Run:
    """One run of the pipeline: its prepared mapping, ledger, warnings, rejects and (with an output directory)
    its report.

    Use it as a context manager: leaving it with an exception discards the staged output. ``finish`` writes
    ``report.json`` and moves everything into the output directory.
    """

    def __init__(self, inputs: list[str], mapping: Mapping | str | Path, *, key: str | bytes | None = None,
                 out_dir: str | Path | OutputDir | None = None, replace: bool = False,
                 options: RunOptions | None = None,
                 progress: ProgressCallback | None = None, timings: Timings | None = None,
                 on_dropped: DroppedObserver | None = None, prepared: Prepared | None = None) -> None:
        self.started = time.perf_counter()
        self.inputs = list(inputs)
        self.mapping = resolve_mapping(mapping)
        # Stops on a missing key or column before any input is read, and before the output is touched.
        self.prepared = prepared or Prepared(self.mapping, self.inputs, key=key)
        self.ledger = Ledger()
        self.options = options
        self.progress = progress
        self.timings = timings
        self.on_dropped = on_dropped
        # An OutputDir of another kind (the Spark engine's on a Hadoop file system) is taken as it is.
        self.output = out_dir if isinstance(out_dir, OutputDir) or out_dir is None else OutputDir(out_dir,
                                                                                                   replace=replace)
        self.partitioning: dict[str, object] = {}  # filled by iter_records when the run ends
        self.rejects = RejectsWriter(self.output.staged(REJECTS_NAME)) if self.output is not None else None

    @property
    def warnings(self) -> list[str]:
        return self.prepared.warnings

    def records(self) -> Iterator[pl.DataFrame]:
        """Frames of valid, encoded records (``_json``); every row is counted in :attr:`ledger`."""
        return iter_records(self.inputs, self.mapping, ledger=self.ledger, rejects=self.rejects,
                            options=self.options, progress=self.progress, timings=self.timings,
                            prepared=self.prepared, on_dropped=self.on_dropped, partitioning=self.partitioning)

    @property
    def staging(self) -> Path:
        """Where the run's files are written until :meth:`finish` moves them into the output directory."""
        if self.output is None:
            raise OutputError("this run has no output directory")
        return self.output.staging

    def finish(self, files: list[Path] | None = None, **report_extra: Any) -> RunResult:
        """Close the rejects, write the report and commit the output directory. ``files`` are staged paths of
        the batch files written (the result lists their final paths)."""
        if self.rejects is not None:
            self.rejects.close()
        staged = files or []
        result = RunResult(ledger=self.ledger, elapsed_s=time.perf_counter() - self.started,
                           rejects=self.rejects.count if self.rejects is not None else 0,
                           warnings=self.warnings, inputs=self.inputs, mapping_path=self.mapping.path,
                           partitioning=self.partitioning)
        if self.output is not None:
            result.files = [self.output.path / f.name for f in staged]
            write_report(self.output.staged(REPORT_NAME), result, self.mapping, **report_extra)
            self.output.commit()
        return result

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.rejects is not None:
            self.rejects.close()
        if self.output is not None:
            self.output.discard()
