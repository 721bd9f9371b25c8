"""`logmap check`: validate a mapping without reading any input."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from logmap.cli import main

if TYPE_CHECKING:  # imported where used, to keep --help fast
    from logmap.mapping.model import Mapping


@main.command()
@click.argument("mapping_path", metavar="MAPPING", type=click.Path(dir_okay=False), required=False)
@click.option("--no-key", is_flag=True,
              help="Do not require the anonymous-id key in the environment (for CI or editors without the secret).")
@click.option("--schema-path", is_flag=True,
              help="Print where the mapping JSON Schema is installed (for `# yaml-language-server: $schema=`) "
                   "and exit.")
def check(mapping_path: str | None, no_key: bool, schema_path: bool) -> None:
    """Check MAPPING: syntax, keys, regexes, templates, types and their fields, and the hash key.

    Exits 0 when the mapping is valid; otherwise prints `file:line:column: key: problem` and exits 2.
    """
    from logmap.mapping import schema

    if schema_path:
        click.echo(str(schema.schema_path()))
        return
    if mapping_path is None:
        raise click.UsageError("missing argument MAPPING (or use --schema-path)")

    from logmap.cli.secrets import anonymous_key_from_environment
    from logmap.pipeline.stages import Prepared
    from logmap.sources import load_mapping
    from logmap.testing import THROWAWAY_KEY

    mapping = load_mapping(mapping_path)
    key = THROWAWAY_KEY if no_key else anonymous_key_from_environment(mapping)
    # Compiles every template against the source's fields: unknown names stop here.
    prepared = Prepared(mapping, key=key)
    click.echo(summary(mapping_path, mapping))
    for warning in prepared.warnings:
        click.secho(f"logmap: warning: {warning}", fg="yellow", err=True)


def summary(mapping_path: str, mapping: Mapping) -> str:
    """One paragraph: what the mapping reads, how many rules, which types, and its tests."""
    types = Counter(rule.type for rule in mapping.rules)
    produced = ", ".join(f"{name} ({count})" if count > 1 else name for name, count in types.items())
    parts = [f"{mapping_path}: OK — format {mapping.source.format}",
             f"{len(mapping.rules)} rule(s) producing {produced}"]
    if mapping.tests:
        parts.append(f"{len(mapping.tests)} test case(s)")
    for field, spec in mapping.identity.keyed_hashes().items():
        parts.append(f"{field}: unkeyed hash" if spec.key_none else f"{field}: HMAC keyed by ${spec.key_env}")
    return "; ".join(parts) + "."
