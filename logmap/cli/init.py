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
    """Propose a mapping for SAMPLE: the format `formats --detect` names, the default filters (GET only, asset
    paths excluded), and rules for the search, home, product, category and order-confirmation pages found in
    it, with the share of page requests each takes. Other URL shapes are listed as commented suggestions."""
    from logmap.starter import starter_for

    starter = starter_for(sample)
    if output is None:  # the mapping alone, so that it can be piped; the coverage is in its comments
        click.echo(starter.text, nl=False)
        return
    path = Path(output)
    if path.exists():
        raise click.ClickException(f"{output} exists: choose another name or remove it")
    path.write_text(starter.text)
    share = (lambda n: f"{n / starter.pages:6.1%}") if starter.pages else (lambda n: "     -")
    click.echo(f"{output}: format {starter.format}, {starter.pages} page requests in the sample, "
               f"rules cover {starter.coverage:.0%}", err=True)
    for name, count in starter.rules:
        click.echo(f"  {share(count)}  {count:>7,}  {name}", err=True)
    if starter.suggestions:
        rest = sum(n for _, n in starter.suggestions)
        click.echo(f"  {share(rest)}  {rest:>7,}  in {len(starter.suggestions)} other shapes, suggested in "
                   "comments (unmatched until you type them)", err=True)
