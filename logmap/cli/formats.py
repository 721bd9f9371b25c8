"""`logmap formats`: list every access-log format with an example line, or detect the format of a file."""

from __future__ import annotations

import click

from logmap.cli import main


def format_table() -> list[tuple[str, str, str]]:
    """(name, description, example) of every access-log format a mapping's ``source.format`` may name."""
    from logmap.sources.accesslog import FORMATS, PLUGINS

    rows = [(f.name, f.description, f.example) for f in FORMATS.values()]
    rows += [(name, description, example) for name, (_, description, example) in PLUGINS.items()]
    rows.append(("regex", "your own regular expression (source.pattern) with named groups",
                 r"pattern: '^(?P<ip>\S+) (?P<time>\S+) (?P<path>\S+) (?P<status>\d+)$'"))
    return rows


@main.command()
@click.option("--detect", "detect_path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True),
              help="Read the first lines of FILE (- for stdin; compressed or not) and name its format.")
def formats(detect_path: str | None) -> None:
    """List the access-log formats (source.format) with an example line each, or detect a file's format.

    With --detect, prints each format that parses some of the first lines with the share it parses, best
    first, then the chosen one; when two formats tie it says so and exits 2: choose with source.format.
    """
    if detect_path is None:
        for name, description, example in format_table():
            click.echo(f"{name}\n  {description}")
            for line in example.split("\n"):
                click.echo(f"  e.g. {line}")
        return
    from logmap.sources.detect import SAMPLE_LINES, best, rank
    from logmap.sources.lines import read_lines

    sample = next(iter(read_lines(detect_path, chunk_bytes=1024 * 1024)), None)
    if sample is None:
        raise click.ClickException(f"{detect_path} is empty")
    sample = sample.head(SAMPLE_LINES)
    for candidate in rank(sample):
        if candidate.share > 0:
            click.echo(f"{candidate.name:<16} {candidate.share:7.1%} of the first {sample.height} lines "
                       "(directives and blanks aside)")
    chosen = best(sample, detect_path)  # InputError (exit 2) when nothing parses or formats tie
    click.echo(f"format: {chosen.name}  ({chosen.share:.1%} of lines parse)")
