"""Imports every command module so that each registers itself on `logmap.cli.main`."""

from logmap.cli import convert  # noqa: F401
