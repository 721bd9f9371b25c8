"""Terminal output shared by commands: progress bars (only on a terminal), warnings and the run summary."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from logmap.sinks.report import RunResult

# rich is imported where output is printed, not at import time: `logmap --help` must start fast.


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def total_input_bytes(inputs: list[str]) -> int | None:
    from logmap.errors import InputError
    from logmap.sources.lines import expand_inputs, total_size

    try:
        return total_size(expand_inputs(inputs)) or None
    except InputError:  # the pipeline reports missing inputs itself, with a clear message
        return None


@contextmanager
def progress_for_inputs(inputs: list[str], enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A bytes-read progress bar on stderr when it is a terminal; otherwise no callback at all."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    total = total_input_bytes(inputs)
    columns = [TextColumn("reading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr_console(), transient=True) as progress:
        task = progress.add_task("read", total=total)
        yield lambda n: progress.advance(task, n)


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        click.secho(f"logmap: warning: {warning}", fg="yellow", err=True)


def describe_partitioning(partitioning: dict) -> str:
    """One line: how a run held its rows (report.json's ``partitioning``)."""
    limit = f", memory limit {partitioning['memory_limit']}" if "memory_limit" in partitioning else ""
    chunk = f", chunks of {partitioning['chunk']}" if "chunk" in partitioning else ""
    if partitioning.get("in_memory"):
        return f"partitioning: none, all records in memory{limit}{chunk}"
    again = partitioning.get("buckets_split_again") or 0
    split = f", {again} split again" if again else ""
    chosen_by = partitioning["chosen_by"]
    return (f"partitioning: {partitioning['buckets']} visitor buckets chosen by the {chosen_by}{limit}, "
            f"{partitioning.get('spill_files', 0)} spill files{split}{chunk}")


def print_summary(result: RunResult, title: str) -> None:
    """Counts per type, drops per reason, the ledger check, elapsed time and lines/s."""
    from rich.console import Console
    from rich.table import Table

    ledger = result.ledger
    console = Console()
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("", style="bold")
    table.add_column("rows", justify="right")
    table.add_column("%", justify="right")

    def share(count: int) -> str:
        return f"{100 * count / ledger.input_rows:.1f}" if ledger.input_rows else "-"

    table.add_row("input rows", f"{ledger.input_rows:,}", "100.0" if ledger.input_rows else "-")
    table.add_row("emitted", f"{ledger.emitted:,}", share(ledger.emitted))
    for type_name, count in ledger.per_type.most_common():
        table.add_row(f"  {type_name}", f"{count:,}", share(count), style="green")
    table.add_row("dropped", f"{ledger.dropped_total:,}", share(ledger.dropped_total))
    for reason, count in ledger.dropped.most_common():
        table.add_row(f"  {reason}", f"{count:,}", share(count), style="yellow")
    console.print(table)
    verdict = "[green]balanced[/]" if ledger.balanced else "[red bold]NOT BALANCED[/]"
    if result.partitioning:
        console.print(describe_partitioning(result.partitioning))
    console.print(f"ledger {verdict}: {ledger.input_rows:,} input = {ledger.emitted:,} emitted + "
                  f"{ledger.dropped_total:,} dropped; {result.elapsed_s:.2f}s, {result.rows_per_second:,.0f} lines/s")
