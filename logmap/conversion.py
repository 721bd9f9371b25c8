"""`convert`: inputs + mapping → validated batch files, ``rejects.ndjson`` and ``report.json``."""

from __future__ import annotations

import time
from pathlib import Path

from logmap.mapping.model import Mapping
from logmap.pipeline.runner import ProgressCallback, RunOptions
from logmap.pipeline.stages import Timings, tick
from logmap.sinks.batches import BatchFormat, BatchWriter
from logmap.sinks.output import Run
from logmap.sinks.report import RunResult


def convert(inputs: list[str], mapping: Mapping | str | Path, out_dir: str | Path, *, key: str | bytes | None = None,
            batch_size: int = 10_000, fmt: BatchFormat = "ndjson", overwrite: bool = False,
            options: RunOptions | None = None, progress: ProgressCallback | None = None,
            timings: Timings | None = None) -> RunResult:
    """Convert ``inputs`` with ``mapping`` into batch files in ``out_dir``, plus rejects.ndjson and report.json.

    ``key`` is the secret of the anonymous-id hash, when the mapping uses one. The files appear in ``out_dir``
    only when the run has succeeded (``report.json`` last); with ``overwrite`` they replace an earlier run's.
    With ``timings`` (a dict), the seconds spent in each of :data:`~logmap.pipeline.stages.STAGES` are added.
    """
    with Run(inputs, mapping, key=key, out_dir=out_dir, replace=overwrite, options=options, progress=progress,
             timings=timings) as run:
        writer = BatchWriter(run.staging, batch_size, fmt)
        for records in run.records():
            started = time.perf_counter()
            writer.write(records["_json"])
            tick(timings, "writing", started)
        started = time.perf_counter()
        files = writer.close()
        tick(timings, "writing", started)
        return run.finish(files, batch_size=batch_size, fmt=fmt)
