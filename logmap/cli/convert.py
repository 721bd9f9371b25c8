"""`logmap convert`: inputs + mapping → validated batch files."""

from __future__ import annotations

import click

from logmap.cli import main


@main.command()
def convert() -> None:
    """Convert inputs to validated interaction batches (not yet implemented)."""
    raise click.ClickException("not implemented yet")
