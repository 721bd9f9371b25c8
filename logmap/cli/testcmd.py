"""`logmap test`: run a mapping's own `tests:` block and show a readable diff for each failing case."""

from __future__ import annotations

import sys

import click

from logmap.cli import main


@main.command("test")
@click.argument("mappings", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="MAPPING...")
@click.option("-q", "--quiet", is_flag=True, help="Print failures and the summary only.")
def test(mappings: tuple[str, ...], quiet: bool) -> None:
    """Run the test cases in each MAPPING's `tests:` block through the real pipeline.

    \b
    Each case gives input lines (or rows, for exports) and expects a record (a subset of its fields), a drop
    reason, or counts per type. Failures show the expected and actual value of every differing field.
    Exit status: 0 when every case passes, 1 when one fails, 2 for an invalid mapping.

    \b
    Example:
      logmap test mappings/storefront-combined.yaml
    """
    from logmap.cli.secrets import anonymous_key_from_environment
    from logmap.sources import load_mapping
    from logmap.testing import format_result, run_mapping_tests

    failed = total = 0
    for path in mappings:
        mapping = load_mapping(path)
        if not mapping.tests:
            click.secho(f"{path}: no tests (add a `tests:` block; see docs/reports.md)", fg="yellow", err=True)
            continue
        run = run_mapping_tests(mapping, key=anonymous_key_from_environment(mapping))
        if run.throwaway_key and not quiet:
            click.echo(f"{path}: {run.throwaway_key} is not set; using a throwaway anonymous-id key for the test run "
                       f"(no expectation depends on it)")
        for result in run.results:
            total += 1
            if result.passed and quiet:
                continue
            failed += not result.passed
            for i, line in enumerate(format_result(result)):
                click.secho(line, **_style(line, i, result.passed))
        if not quiet:
            click.echo(f"{path}: {len(run.results) - len(run.failed)} passed, {len(run.failed)} failed")
    if len(mappings) > 1 or quiet:
        click.echo(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def _style(line: str, index: int, passed: bool) -> dict:
    if index == 0:
        return {"fg": "green" if passed else "red", "bold": not passed}
    stripped = line.strip()
    if stripped.startswith("- expected"):
        return {"fg": "green"}
    if stripped.startswith("+ actual"):
        return {"fg": "red"}
    return {}
