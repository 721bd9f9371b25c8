"""Start-up: `logmap --help`, `--version` and a subcommand's help import no heavy library (issue #15).

Heavy libraries (polars, pyarrow, httpx, rich, jsonschema, the user-agent parsers) are imported when a run needs
them. Timing is measured by ``bench/bench_startup.py``, not here; these tests fail when an import creeps back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("polars", "pyarrow", "httpx", "rich", "jsonschema", "yaml", "ua_parser", "user_agents", "numpy", "pandas")

PROBE = """
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print("IMPORTED:" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr))
from logmap.cli import main
main({argv!r}, prog_name="logmap") if {argv!r} is not None else None
"""


def imported_by(argv: list[str] | None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, argv=argv)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = next(x for x in done.stderr.splitlines() if x.startswith("IMPORTED:"))
    return [m for m in line.removeprefix("IMPORTED:").split(",") if m]


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert imported_by(None) == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["convert", "--help"], ["upload", "--help"]],
                         ids=" ".join)
def test_help_and_version_import_no_heavy_library(argv: list[str]) -> None:
    assert imported_by(argv) == []
