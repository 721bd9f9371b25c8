"""`logmap init SAMPLE`: write a starter mapping proposed from a sample log."""

from __future__ import annotations

from pathlib import Path

import click

from logmap.cli import main


@main.command()
@click.argument("sample", metavar="SAMPLE", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the mapping to this file (default: standard output). An existing file is kept.")
def init(sample: str, output: str | None) -> None:
    """Propose a mapping for SAMPLE: its detected format, the default filters, and one rule per frequent URL
    shape (with its count and a guessed type). It runs as is; rename rules and fix types before real use."""
    from logmap.starter import starter_for

    text, fmt, coverage = starter_for(sample)
    if output is None:
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists():
        raise click.ClickException(f"{output} exists: choose another name or remove it")
    path.write_text(text)
    click.echo(f"{output}: format {fmt}, rules cover {coverage:.0%} of the sample's page requests", err=True)
