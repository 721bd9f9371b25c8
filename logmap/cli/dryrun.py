"""`logmap dry-run`: the whole pipeline without writing batches, and a report of what it would produce."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from logmap.cli import main
from logmap.cli.output import print_warnings, progress_for_inputs

if TYPE_CHECKING:
    from rich.console import Console


@main.command("dry-run")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-m", "--mapping", "mapping_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML mapping that describes the input and its rules.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the JSON report here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report with charts here.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="Entries in each ranking (unmatched shapes, paths and user agents per drop reason).")
@click.option("--samples", default=3, show_default=True, type=click.IntRange(0, 100),
              help="Sample records kept per interaction type.")
@click.option("--buckets", default=None, type=click.IntRange(1, 4096),
              help="Partition visitors into exactly this many buckets spilled to disk [default: chosen to keep the "
                   "run under 1G, as `convert` does].")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors (write --json/--html only).")
def dry_run(inputs: tuple[str, ...], mapping_path: str, json_path: str | None, html_path: str | None, top: int,
            samples: int, buckets: int | None, quiet: bool) -> None:
    """Run the mapping over INPUT files without writing batches, and report what a conversion would produce.

    \b
    The report: the ledger (input rows = records + dropped, per reason, exactly as `convert`'s report.json),
    records per type and per rule, the top unmatched path shapes (the rules you are missing), the top paths and
    user agents per drop reason, durations per type, distinct visitors, the time range, the share of records
    with product ids, and sample records. See docs/reports.md.

    \b
    Example:
      LOGMAP_KEY=secret logmap dry-run 'logs/access.log*' -m mapping.yaml --html report.html
    """
    from rich.console import Console

    from logmap.cli.secrets import anonymous_key_from_environment
    from logmap.pipeline.runner import RunOptions
    from logmap.reports.dryrun import dry_run as run_dry_run
    from logmap.reports.dryrun import write_json
    from logmap.reports.html import write_html
    from logmap.sources import load_mapping

    mapping = load_mapping(mapping_path)
    with progress_for_inputs(list(inputs), enabled=not quiet) as advance:
        report = run_dry_run(list(inputs), mapping, key=anonymous_key_from_environment(mapping),
                             options=RunOptions(buckets=buckets), progress=advance, top=top, samples_per_type=samples)
    data = report.to_dict()
    if json_path:
        write_json(report, json_path)
    if html_path:
        write_html(data, html_path)
    if not quiet:
        print_warnings(report.warnings)
        print_report(data, Console())
        for label, path in (("JSON", json_path), ("HTML", html_path)):
            if path:
                click.echo(f"{label} report: {path}")


#: Characters of a path or shape shown in a terminal table cell (the rest is cut with an ellipsis).
PATH_WIDTH = 60


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}s" if value < 120 else f"{value / 60:.1f}m"


def print_report(data: dict, console: Console) -> None:
    """The dry-run report as terminal tables (the same numbers as the JSON report)."""
    from rich.table import Table

    from logmap.reports.dryrun import display_label
    ledger = data["ledger"]
    inputs, emitted = ledger["input_rows"], ledger["emitted"]
    title = f"logmap dry-run · {data.get('mapping_name') or data['mapping']}"

    table = Table(title=title, header_style="bold")
    table.add_column("", style="bold")
    table.add_column("rows", justify="right")
    table.add_column("%", justify="right")
    table.add_row("input rows", f"{inputs:,}", "100.0" if inputs else "-")
    table.add_row("records", f"{emitted:,}", _pct(emitted, inputs))
    for type_name, count in sorted(data["records_per_type"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {type_name}", f"{count:,}", _pct(count, inputs), style="green")
    table.add_row("dropped", f"{ledger['dropped_total']:,}", _pct(ledger["dropped_total"], inputs))
    for drop in data["drops"]:
        table.add_row(f"  {drop['reason']}", f"{drop['count']:,}", f"{drop['percent']:.1f}", style="yellow")
    console.print(table)
    verdict = "[green]balanced[/]" if ledger["balanced"] else "[red bold]NOT BALANCED[/]"
    console.print(f"ledger {verdict}: {inputs:,} input = {emitted:,} records + {ledger['dropped_total']:,} dropped")

    rules = Table(title="records per rule", header_style="bold")
    rules.add_column("rule")
    rules.add_column("records", justify="right")
    rules.add_column("% of records", justify="right")
    for rule, count in data["records_per_rule"].items():
        rules.add_row(rule, f"{count:,}", _pct(count, emitted))
    console.print(rules)

    # Paths and shapes get one line each, cut to what the terminal leaves them (never wrapped): the other
    # columns (counts, reasons) keep their width.
    path_width = max(16, min(PATH_WIDTH, (console.width - 31) // 2))
    shapes = Table(title="top unmatched path shapes (the rules you may be missing)", header_style="bold")
    shapes.add_column("shape", no_wrap=True, max_width=path_width)
    shapes.add_column("rows", justify="right", no_wrap=True)
    shapes.add_column("% unmatched", justify="right", no_wrap=True)
    shapes.add_column("example", no_wrap=True, max_width=path_width, style="dim")
    for shape in data["unmatched_shapes"]:
        example = shape.get("example_label") or shape.get("example") or ""
        shapes.add_row(_short(display_label(shape), path_width), f"{shape['count']:,}", f"{shape['percent']:.1f}",
                       _short(example, path_width))
    if data["unmatched_shapes"]:
        console.print(shapes)
    else:
        console.print("no unmatched rows: every kept row matched a rule")

    drops = Table(title="dropped rows: top paths and user agents per reason", header_style="bold", show_lines=True)
    reason_width = max([len(reason) for reason in data["drops_detail"]], default=6)
    agent_width = max(24, (console.width - reason_width - 10) // 2)
    path_width = max(16, min(PATH_WIDTH + 10, console.width - reason_width - agent_width - 10))
    drops.add_column("reason", style="yellow", no_wrap=True)
    drops.add_column("top paths (rows)", no_wrap=True, max_width=path_width)
    drops.add_column("top user agents (rows)", no_wrap=True, max_width=agent_width)
    for reason, detail in data["drops_detail"].items():
        paths = detail["paths"] or detail["details"]
        drops.add_row(reason, "\n".join(_counted(display_label(r), r["count"], path_width) for r in paths[:5]) or "-",
                      "\n".join(_counted(r["value"], r["count"], agent_width) for r in detail["user_agents"][:3])
                      or "-")
    if data["drops_detail"]:
        console.print(drops)

    per_type = data["durations"]["per_type"]
    if per_type:
        durations = Table(title=f"durations (capped at {_secs(data['durations']['max_s'])})", header_style="bold")
        for name in ("type", "records", "median", "p90", "absent", "capped"):
            durations.add_column(name, justify="left" if name == "type" else "right")
        for type_name, stats in per_type.items():
            durations.add_row(type_name, f"{stats['records']:,}", _secs(stats["median_s"]), _secs(stats["p90_s"]),
                              f"{100 * stats['absent_share']:.1f}%", f"{100 * stats['capped_share']:.1f}%")
        console.print(durations)

    visitors, time_range, products = data["visitors"], data["time_range"], data["product_ids"]
    facts = Table(title="visitors, time, products", header_style="bold", show_header=False)
    facts.add_column("", style="bold")
    facts.add_column("")
    facts.add_row("distinct user_ids", f"{visitors['user_ids']:,}")
    facts.add_row("distinct anonymous_ids", f"{visitors['anonymous_ids']:,}")
    facts.add_row("records from", str(time_range["first"]))
    facts.add_row("records to", str(time_range["last"]))
    facts.add_row("records with product ids", f"{products['records']:,} ({100 * products['share']:.1f}%)")
    console.print(facts)

    if data["samples"]:
        console.print("[bold]sample records[/] (one per type; more in --json/--html)")
        for type_name, samples in data["samples"].items():
            sample = samples[0]
            console.print(f"[green]{type_name}[/] [dim]{sample['file']}:{sample['line']}[/]")
            console.print(json.dumps(sample["record"], ensure_ascii=False), markup=False, highlight=False,
                          soft_wrap=True)


def _counted(text: str, count: int, width: int) -> str:
    """``text (count)`` in at most ``width`` characters: the text is cut, the count always shown."""
    suffix = f" ({count:,})"
    return _short(text, max(4, width - len(suffix))) + suffix


def _short(text: str, width: int = 70) -> str:
    """One line of at most ``width`` characters: long paths and user agents are cut, never wrapped."""
    from rich.markup import escape

    text = " ".join(text.split())
    return escape(text if len(text) <= width else text[: width - 1] + "…")

