"""Imports every command module so that each registers itself on `logmap.cli.main`."""

from logmap.cli import check, convert  # noqa: F401
from logmap.cli import upload  # noqa: F401,E402
from logmap.cli import delete  # noqa: F401,E402
from logmap.cli import dryrun  # noqa: F401,E402
from logmap.cli import testcmd  # noqa: F401,E402
from logmap.cli import formats  # noqa: F401,E402
from logmap.cli import init  # noqa: F401,E402
