"""`logmap convert`: inputs + mapping → validated batch files, rejects and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from logmap.cli import main
from logmap.cli.output import print_summary, print_warnings, progress_for_inputs

if TYPE_CHECKING:  # imported where used, to keep --help fast
    from logmap.sinks.batches import BatchFormat


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-m", "--mapping", "mapping_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML mapping that describes the input and its rules.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory for batch files, rejects.ndjson and report.json.")
@click.option("--batch-size", default=10_000, show_default=True, type=click.IntRange(1, 10_000),
              help="Records per batch file (the API takes at most 10,000 per request).")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "json"]), default="ndjson", show_default=True,
              help="ndjson: one record per line; json: request bodies {\"data\": [...]}.")
@click.option("--overwrite", is_flag=True, help="Replace logmap's files in a non-empty output directory.")
@click.option("--memory", "memory", default=None, metavar="SIZE",
              help="Peak memory to plan the run for, e.g. 512M or 4G [default: 1G]. An input whose records fit is "
                   "converted in memory; a bigger one is partitioned by visitor into buckets spilled to disk.")
@click.option("--buckets", default=None, type=click.IntRange(1, 4096),
              help="Partition visitors into exactly this many buckets spilled to disk (1: all in memory, whatever "
                   "the input's size) instead of choosing from --memory.")
@click.option("--chunk-mb", type=click.IntRange(1, 4096), default=None,
              help="Input read per chunk, in MiB [default: from --memory; 64 with --buckets 1, 16 with more]. "
                   "Parsing holds about 15x this per chunk, two chunks at a time.")
@click.option("--profile", is_flag=True,
              help="Print the seconds spent in each pipeline stage. Stages then run one after another instead of "
                   "overlapping on two threads, so a profiled run is slower.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def convert(inputs: tuple[str, ...], mapping_path: str, out_dir: str, batch_size: int,
            fmt: BatchFormat,  # one of click.Choice's values
            overwrite: bool, memory: str | None, buckets: int | None, chunk_mb: int | None, profile: bool,
            quiet: bool) -> None:
    """Convert INPUT files (globs, .gz, .bz2, .zst; - for stdin) into validated interaction batches.

    \b
    Writes to the output directory:
      interactions-00001.ndjson …   at most --batch-size records each
      rejects.ndjson                malformed lines and invalid records, with file, line and reason
      report.json                   the ledger: input rows = emitted + dropped, per reason and per type

    \b
    Example:
      LOGMAP_KEY=secret logmap convert 'logs/access.log*' -m mappings/storefront-combined.yaml -o out/
    """
    from logmap.cli.secrets import anonymous_key_from_environment
    from logmap.conversion import convert as run_convert
    from logmap.pipeline.runner import RunOptions
    from logmap.sources import load_mapping

    mapping = load_mapping(mapping_path)
    options = RunOptions(buckets=buckets, memory_bytes=memory_option(memory),
                         chunk_bytes=None if chunk_mb is None else chunk_mb * 1024 * 1024)
    timings: dict[str, float] | None = {} if profile else None
    with progress_for_inputs(list(inputs), enabled=not quiet) as advance:
        result = run_convert(list(inputs), mapping, Path(out_dir), key=anonymous_key_from_environment(mapping),
                             batch_size=batch_size, fmt=fmt,
                             overwrite=overwrite, options=options, progress=advance, timings=timings)
    if not quiet:
        print_warnings(result.warnings)
        print_summary(result, title=f"logmap convert → {out_dir}")
        click.echo(f"{len(result.files)} batch file(s), {result.rejects:,} reject(s) in {out_dir}")
    if timings is not None:
        click.echo(format_profile(timings, result.elapsed_s, result.ledger.input_rows))


def memory_option(text: str | None) -> int | None:
    """``--memory`` in bytes (None: the default), or a usage error naming the option."""
    from logmap.pipeline.budget import MIN_MEMORY, format_size, parse_size

    if text is None:
        return None
    try:
        size = parse_size(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--memory") from None
    if size < MIN_MEMORY:
        raise click.BadParameter(f"at least {format_size(MIN_MEMORY)}", param_hint="--memory")
    return size


def format_profile(timings: dict[str, float], elapsed_s: float, rows: int) -> str:
    """A table of seconds and share of the run per stage (the rest is setup: loading the mapping, the report)."""
    from logmap.pipeline.stages import STAGES

    total = elapsed_s if elapsed_s > 0 else 1.0
    lines = [f"{'stage':<18} {'seconds':>9} {'share':>7}"]
    for stage in [*STAGES, *sorted(set(timings) - set(STAGES))]:
        if stage in timings:
            lines.append(f"{stage:<18} {timings[stage]:>9.3f} {timings[stage] / total:>6.1%}")
    other = elapsed_s - sum(timings.values())
    lines.append(f"{'other':<18} {other:>9.3f} {other / total:>6.1%}")
    rate = rows / elapsed_s if elapsed_s > 0 else 0.0
    lines.append(f"{'total':<18} {elapsed_s:>9.3f} {1:>6.1%}   {rows:,} lines, {rate:,.0f} lines/s")
    return "\n".join(lines)
