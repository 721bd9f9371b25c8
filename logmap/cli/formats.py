"""`logmap formats`: list every access-log format with an example line, or detect the format of a file."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from logmap.cli import main

if TYPE_CHECKING:  # polars is imported by --detect only: `logmap --help` must start fast
    import polars as pl


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
@click.option("--encoding", default=None, metavar="CODEC",
              help="With --detect: the file's encoding when it is not UTF-8 (as source.encoding).")
def formats(detect_path: str | None, encoding: str | None) -> None:
    """List the access-log formats (source.format) with an example line each, or detect a file's format.

    With --detect, prints each format that parses some of the first lines with the share it parses, best
    first, then the chosen one and, when another format parses as many lines, why it wins; a known line prefix
    (docker compose, kubectl, syslog, journald) is tried stripped and proposed as source.prefix. When two
    formats tie it says so and exits 2: choose with source.format.
    """
    if detect_path is None:
        for name, description, example in format_table():
            click.echo(f"{name}\n  {description}")
            for line in example.split("\n"):
                click.echo(f"  e.g. {line}")
        return
    from logmap.sources.detect import PREFIXES, SAMPLE_LINES, best, rank, why
    from logmap.sources.lines import read_lines

    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise click.BadParameter(f"unknown encoding {encoding!r}", param_hint="--encoding") from None
    sample = _sample(read_lines(detect_path, chunk_bytes=1024 * 1024, encoding=encoding), SAMPLE_LINES)
    if sample is None:
        raise click.ClickException(f"{detect_path} is empty")
    ranked = rank(sample)
    for candidate in ranked:
        if candidate.share > 0:
            after = f" after the {candidate.prefix} prefix" if candidate.prefix else ""
            click.echo(f"{candidate.name:<16} {candidate.share:7.1%} of the first {sample.height} lines"
                       f"{after} (directives and blanks aside)")
    chosen = best(sample, detect_path)  # InputError (exit 2) when nothing parses or formats tie
    reason = why(ranked)
    if reason:
        click.echo(f"why {chosen.name}: {reason}")
    if chosen.prefix:
        click.echo(f"lines start with a {chosen.prefix} prefix: set source.prefix: '{PREFIXES[chosen.prefix]}'")
    click.echo(f"format: {chosen.name}  ({chosen.share:.1%} of lines parse)")


def _sample(frames: Iterator[pl.DataFrame], lines: int) -> pl.DataFrame | None:
    """The first ``lines`` lines of a file, over as many chunks as that takes (a last line without a newline
    included)."""
    import polars as pl

    taken: list[pl.DataFrame] = []
    count = 0
    for frame in frames:
        taken.append(frame)
        count += frame.height
        if count >= lines:
            break
    return pl.concat(taken).head(lines) if taken else None
