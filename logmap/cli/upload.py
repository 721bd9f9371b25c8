"""`logmap upload`: send batches to the API, from `convert`'s output directory or straight from inputs.

Also holds the options every API command shares (`--api-key`, `--base-url`, `--key-in`, `--timeout`) and the
retry flags, so `delete-interactions` and `delete-products` spell them the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from logmap.cli import main
from logmap.errors import LogmapError

if TYPE_CHECKING:  # imported where used, to keep --help fast
    from logmap.api.client import ApiClient, RetryPolicy


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--api-key` (or MISO_API_KEY), `--base-url`, `--key-in`, `--timeout` and the retry policy flags."""
    from logmap.records.types import DEFAULT_BASE_URL

    options = [
        click.option("--api-key", envvar="MISO_API_KEY", show_envvar=True, metavar="KEY",
                     help="Secret API key; prefer the environment variable (a flag shows in `ps`). Never printed."),
        click.option("--base-url", envvar="MISO_BASE_URL", show_envvar=True, default=DEFAULT_BASE_URL,
                     show_default=True, help="API server."),
        click.option("--key-in", type=click.Choice(["header", "query"]), default="header", show_default=True,
                     help="Send the key as the X-API-KEY header or the api_key query parameter."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(0.1), default=60.0, show_default=True,
                     help="Seconds to wait for each answer before retrying."),
        click.option("--attempts", type=click.IntRange(1, 100), default=8, show_default=True,
                     help="Attempts per request for 408, 429, 5xx, timeouts and dropped connections."),
        click.option("--backoff", "backoff_s", type=click.FloatRange(0), default=0.5, show_default=True,
                     help="First retry wait in seconds; doubles each time (with jitter) unless Retry-After says."),
        click.option("--max-backoff", "max_backoff_s", type=click.FloatRange(0), default=30.0, show_default=True,
                     help="Longest computed wait between attempts, in seconds."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def make_client(api_key: str | None, base_url: str, key_in: str, timeout_s: float,
                connections: int = 16) -> ApiClient:
    """The API client from the shared flags (the key is wrapped at once so nothing prints it)."""
    from logmap.api.client import ApiClient, ApiKey

    return ApiClient(ApiKey(api_key or ""), base_url, key_in=key_in, timeout_s=timeout_s,  # type: ignore[arg-type]
                     max_connections=connections)


def make_retry(attempts: int, backoff_s: float, max_backoff_s: float) -> RetryPolicy:
    from logmap.api.client import RetryPolicy

    return RetryPolicy(attempts=attempts, base_s=backoff_s, max_s=max(max_backoff_s, backoff_s))


@main.command()
@click.argument("inputs", nargs=-1, metavar="[INPUT...]")
@click.option("--from", "from_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Upload the batch files `logmap convert` wrote in DIR.")
@click.option("-m", "--mapping", "mapping_path", type=click.Path(dir_okay=False),
              help="With INPUT files: convert them with this mapping while uploading.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Where the journal and dead-letter file go (default: the --from DIR; required with INPUTs).")
@click.option("--resume", is_flag=True, help="Continue an earlier upload: send only what its journal lacks.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Requests in flight at once.")
@click.option("--max-records", type=click.IntRange(1, 10_000), default=10_000, show_default=True,
              help="Records per request (the API takes at most 10,000).")
@click.option("--max-bytes", type=click.IntRange(1024), default=8 * 1024 * 1024, show_default=True,
              help="Bytes per request body.")
@api_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary; errors only.")
def upload(inputs: tuple[str, ...], from_dir: str | None, mapping_path: str | None, out_dir: str | None,
           resume: bool, concurrency: int, max_records: int, max_bytes: int, api_key: str | None, base_url: str,
           key_in: str, timeout_s: float, attempts: int, backoff_s: float, max_backoff_s: float,
           quiet: bool) -> None:
    """Upload interaction records to the API: from `convert`'s batch files (--from DIR) or straight from
    INPUT files and a mapping, sending batches while later ones are still being converted.

    \b
    Failures: 408, 429, 5xx, timeouts and dropped connections are retried with backoff (Retry-After honoured);
    a refused key (401/403) stops at once; a 422 is split until the refused records stand alone: the rest is
    uploaded, they go to dead-letter.ndjson with the server's messages.
    Every acknowledged request is recorded in upload-journal.ndjson; after a crash or Ctrl-C, --resume sends
    only what was not acknowledged. See docs/upload.md.

    \b
    Examples:
      export MISO_API_KEY=...
      logmap upload --from out/
      logmap upload --from out/ --resume
      logmap upload 'logs/access.log*' -m mapping.yaml -o upload-state/
    """
    from logmap.api.upload import Uploader, UploadFailed, UploadOptions, batches_from_dir, upload_inputs

    if from_dir and (inputs or mapping_path):
        raise LogmapError("give either --from DIR or INPUT files with --mapping, not both")
    if from_dir:
        batches = batches_from_dir(from_dir)
        out = Path(out_dir or from_dir)
    elif inputs:
        if not mapping_path:
            raise LogmapError("INPUT files need --mapping (or upload converted batches with --from DIR)")
        if not out_dir:
            raise LogmapError("INPUT files need --out DIR for the upload journal, dead-letter file, rejects and "
                              "report")
        out = Path(out_dir)
    else:
        raise LogmapError("nothing to upload: give --from DIR, or INPUT files with --mapping and --out")

    options = UploadOptions(concurrency=concurrency, max_records=max_records, max_bytes=max_bytes,
                            retry=make_retry(attempts, backoff_s, max_backoff_s))
    total = None
    if from_dir and not quiet and sys.stderr.isatty():
        from logmap.api.upload import count_records
        total = count_records(from_dir)
    with make_client(api_key, base_url, key_in, timeout_s, connections=concurrency + 2) as client:
        with _Progress(enabled=not quiet, total=total) as on_progress:
            uploader = Uploader(client, out, options, resume=resume, progress=on_progress)
            try:
                if from_dir:
                    stats = uploader.run(batches)
                else:
                    from logmap.cli.output import print_summary, print_warnings
                    from logmap.cli.secrets import anonymous_key_from_environment
                    from logmap.sources import load_mapping

                    mapping = load_mapping(str(mapping_path))
                    done = upload_inputs(list(inputs), mapping, client, out,
                                         key=anonymous_key_from_environment(mapping), uploader=uploader)
                    stats = done.stats
                    if not quiet:
                        print_warnings(done.run.warnings)
                        print_summary(done.run, title=f"logmap upload → {out}")
            except UploadFailed as error:
                if not quiet:
                    _summary(error.stats, client.base_url)
                raise
            except KeyboardInterrupt:
                if not quiet:
                    _summary(uploader.stats, client.base_url)
                click.echo(f"logmap: interrupted; what was acknowledged is in {uploader.stats.journal}: "
                           "run the same command with --resume to send the rest", err=True)
                sys.exit(130)
    if not quiet:
        _summary(stats, client.base_url)


class _Progress:
    """A rich progress bar on stderr (records, records/s), only when stderr is a terminal."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Callable[[Any], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(BarColumn(bar_width=16), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]:>8,.0f} rec/s"),
                            TextColumn("retried {task.fields[retried]} rejected {task.fields[rejected]}"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("upload", total=self.total, rate=0.0, retried=0, rejected=0)
        return self.update

    def update(self, stats: Any) -> None:
        self.bar.update(self.task, completed=stats.done, rate=stats.records_per_second, retried=stats.retried,
                        rejected=stats.rejected)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _summary(stats: Any, base_url: str) -> None:
    """The final summary: always printed (stdout) unless --quiet, bar or no bar."""
    lines = [
        f"logmap upload → {base_url}",
        f"  sent      {stats.sent:>12,} records in {stats.requests:,} request(s)",
        f"  retried   {stats.retried:>12,} request(s)",
        f"  rejected  {stats.rejected:>12,} records" + (f"  → {stats.dead_letter}" if stats.rejected else ""),
    ]
    if stats.skipped:
        lines.append(f"  skipped   {stats.skipped:>12,} records (acknowledged by an earlier run)")
    lines.append(f"  elapsed   {stats.elapsed_s:>12.1f} s  ({stats.records_per_second:,.0f} records/s)")
    click.echo("\n".join(lines))
    if stats.rejected:
        click.secho(f"logmap: warning: the API refused {stats.rejected:,} record(s); they and its messages are in "
                    f"{stats.dead_letter}", fg="yellow", err=True)

