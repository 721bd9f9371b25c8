"""Imports every command module so that each registers itself on `logmap.cli.main`."""

from logmap.cli import (  # noqa: F401
    check,
    convert,
    delete,
    dryrun,
    formats,
    init,
    testcmd,
    upload,
)
