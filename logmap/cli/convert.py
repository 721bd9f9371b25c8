"""`logmap convert`: inputs + mapping → validated batch files, rejects and a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from logmap.cli import main
from logmap.cli.output import print_summary, print_warnings, progress_for_inputs

if TYPE_CHECKING:  # imported where used, to keep --help fast
    from logmap.mapping.model import Mapping
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
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: this machine; spark: an Apache Spark cluster (pip install 'logmap[spark]'; docs/spark.md).")
@click.option("--master", default=None, metavar="URL",
              help="Spark master URL (spark://…, yarn, k8s://…, local[4]) [default: spark-submit's, else local[*]].")
@click.option("--partitions", type=click.IntRange(1, 1_000_000), default=None,
              help="Spark: visitor buckets, one task each [default: the cluster's cores, or one per 256 MiB of "
                   "input].")
@click.option("--split-mb", type=click.IntRange(1, 1_000_000), default=None,
              help="Spark: input per phase-1 task, in MiB; a bigger plain log is read in byte ranges of this size "
                   "[default: spark.sql.files.maxPartitionBytes, 128].")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def convert(inputs: tuple[str, ...], mapping_path: str, out_dir: str, batch_size: int,
            fmt: BatchFormat,  # one of click.Choice's values
            overwrite: bool, memory: str | None, buckets: int | None, chunk_mb: int | None, profile: bool,
            engine: str, master: str | None, partitions: int | None, split_mb: int | None, quiet: bool) -> None:
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
    from logmap.sources import load_mapping

    mapping = load_mapping(mapping_path)
    key = anonymous_key_from_environment(mapping)
    if engine == "spark":
        _convert_on_spark(list(inputs), mapping, key, out_dir, batch_size, fmt, overwrite, memory, buckets,
                          chunk_mb, profile, master, partitions, split_mb, quiet)
        return
    if master is not None or partitions is not None or split_mb is not None:
        raise click.UsageError("--master, --partitions and --split-mb are for --engine spark")
    from logmap.conversion import convert as run_convert
    from logmap.pipeline.runner import RunOptions

    options = RunOptions(buckets=buckets, memory_bytes=memory_option(memory),
                         chunk_bytes=None if chunk_mb is None else chunk_mb * 1024 * 1024)
    timings: dict[str, float] | None = {} if profile else None
    with progress_for_inputs(list(inputs), enabled=not quiet) as advance:
        result = run_convert(list(inputs), mapping, Path(out_dir), key=key, batch_size=batch_size, fmt=fmt,
                             overwrite=overwrite, options=options, progress=advance, timings=timings)
    if not quiet:
        print_warnings(result.warnings)
        print_summary(result, title=f"logmap convert → {out_dir}")
        click.echo(f"{len(result.files)} batch file(s), {result.rejects:,} reject(s) in {out_dir}")
    if timings is not None:
        click.echo(format_profile(timings, result.elapsed_s, result.ledger.input_rows))


def _convert_on_spark(inputs: list[str], mapping: Mapping, key: str | None, out_dir: str, batch_size: int,
                      fmt: BatchFormat, overwrite: bool, memory: str | None, buckets: int | None,
                      chunk_mb: int | None, profile: bool, master: str | None, partitions: int | None,
                      split_mb: int | None, quiet: bool) -> None:
    if memory is not None or buckets is not None or profile:
        raise click.UsageError("--memory, --buckets and --profile are for the local engine; on Spark, --partitions "
                               "sets the visitor buckets")
    from logmap.spark import convert_spark, spark_session

    spark = spark_session(master)
    chunk_bytes = (chunk_mb or 64) * 1024 * 1024
    result = convert_spark(spark, inputs, mapping, out_dir, key=key, batch_size=batch_size,  # a path or a URL
                           fmt=fmt, overwrite=overwrite, partitions=partitions, chunk_bytes=chunk_bytes,
                           split_bytes=None if split_mb is None else split_mb * 1024 * 1024)
    if not quiet:
        print_warnings(result.warnings)
        print_summary(result, title=f"logmap convert --engine spark → {out_dir}")
        click.echo(f"{len(result.files)} batch file(s), {result.rejects:,} reject(s) in {out_dir}")


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
