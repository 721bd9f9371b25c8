"""The `logmap` command. Each subcommand lives in its own module and only parses flags, calls the library
and prints; user errors (``LogmapError``) become one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from typing import Any

import click

from logmap import __version__
from logmap.errors import LogmapError


class LogmapGroup(click.Group):
    """A click group that turns user errors (``LogmapError``, ``OSError``) into one line and exit 2, never a
    traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LogmapError as error:
            click.echo(f"logmap: error: {error}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:
            # The file system refused something (an output path that cannot be created, a full disk, no
            # permission): the user can fix it, so it gets one line, like any LogmapError, never a traceback.
            where = f": {error.filename}" if error.filename else ""
            click.echo(f"logmap: error: {error.strerror or error}{where}", err=True)
            sys.exit(2)


@click.group(cls=LogmapGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, prog_name="logmap")  # not from package metadata: slow to look up
def main() -> None:
    """Turn access logs and analytics exports into validated interaction records.

    \b
    Typical session:
      logmap check mapping.yaml                       # is the mapping valid?
      logmap convert access.log* -m mapping.yaml -o out/
      logmap upload --from out/                       # send the batches to the API
    """


def _register() -> None:
    # Each module adds its commands to `main`; importing them here keeps this file free of logic.
    from logmap.cli import commands  # noqa: F401


_register()
