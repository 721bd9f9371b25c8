"""logmap: web analytics history → validated interaction records.

The library is what the CLI calls; every command is one of these functions::

    import logmap
    mapping = logmap.load_mapping("mappings/storefront-combined.yaml")
    result = logmap.convert(["access.log.gz"], mapping, "out/", key=secret)
    assert result.ledger.balanced

Secrets are parameters (``key`` for the anonymous-id hash, ``api_key`` for the API); nothing here reads or
changes the environment. The functions import their modules when called, so ``import logmap`` (and
``logmap --help``) stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from logmap.version import __version__

if TYPE_CHECKING:
    import polars as pl

    from logmap.api.client import RetryPolicy
    from logmap.api.upload import UploadStats
    from logmap.mapping.model import Mapping
    from logmap.pipeline.runner import ProgressCallback, RunOptions
    from logmap.reports.dryrun import DryRunReport
    from logmap.sinks.batches import BatchFormat
    from logmap.sinks.report import RunResult
    from logmap.testing import TestRun

__all__ = ["__version__", "convert", "dry_run", "load_mapping", "read_source", "test_mapping", "upload"]


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; raises ``MappingError`` (file:line:column, key) for any problem."""
    from logmap import sources

    return sources.load_mapping(path)


def convert(inputs: list[str], mapping: Mapping | str | Path, out_dir: str | Path, *, key: str | None = None,
            batch_size: int = 10_000, fmt: BatchFormat = "ndjson", overwrite: bool = False,
            options: RunOptions | None = None, progress: ProgressCallback | None = None) -> RunResult:
    """Convert ``inputs`` into batch files, ``rejects.ndjson`` and ``report.json`` in ``out_dir``.

    ``key`` is the secret of the keyed anonymous-id hash (required when the mapping uses one).
    """
    from logmap import conversion

    return conversion.convert(inputs, mapping, out_dir, key=key, batch_size=batch_size, fmt=fmt,
                              overwrite=overwrite, options=options, progress=progress)


def dry_run(inputs: list[str], mapping: Mapping | str | Path, *, key: str | None = None,
            options: RunOptions | None = None, top: int = 10) -> DryRunReport:
    """The whole pipeline without writing batches: ledger, unmatched path shapes, drops, durations, samples."""
    from logmap.reports import dryrun

    return dryrun.dry_run(inputs, mapping, key=key, options=options, top=top)


def test_mapping(mapping: Mapping | str | Path, *, key: str | None = None) -> TestRun:
    """Run the mapping's ``tests:`` cases (a throwaway anonymous-id key is used when ``key`` is None)."""
    from logmap import testing

    return testing.run_mapping_tests(mapping if not isinstance(mapping, (str, Path)) else load_mapping(mapping),
                                     key=key)


test_mapping.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def read_source(inputs: list[str], mapping: Mapping | str | Path) -> Iterator[pl.DataFrame]:
    """The mapping's source applied to ``inputs``: frames of canonical columns, one row per input line or row,
    with provenance (``_file``, ``_line``) and ``_drop`` set on malformed lines."""
    from logmap import sources

    resolved = mapping if not isinstance(mapping, (str, Path)) else load_mapping(mapping)
    return sources.read_source(inputs, resolved.source, mapping=resolved)


def upload(out_dir: str | Path, *, api_key: str, inputs: list[str] | None = None,
           mapping: Mapping | str | Path | None = None, key: str | None = None,
           base_url: str | None = None, resume: bool = False, concurrency: int = 4,
           retry: RetryPolicy | None = None) -> UploadStats:
    """Upload the batches ``convert`` wrote in ``out_dir``; or, with ``inputs`` and ``mapping``, convert and
    upload at once, writing the journal, dead-letter file, rejects and report to ``out_dir``.

    ``api_key`` is the API's secret key; it never appears in output, logs or exception text.
    """
    from logmap.api import client as api
    from logmap.api import upload as uploading

    options = uploading.UploadOptions(concurrency=concurrency, retry=retry or api.RetryPolicy())
    with api.ApiClient(api_key, base_url or api.DEFAULT_BASE_URL) as client:
        if inputs is None:
            return uploading.upload(uploading.batches_from_dir(out_dir), client, out_dir, options=options,
                                    resume=resume)
        if mapping is None:
            raise TypeError("upload(inputs=...) needs a mapping")
        return uploading.upload_inputs(inputs, mapping, client, out_dir, key=key, options=options,
                                       resume=resume).stats
