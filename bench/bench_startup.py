"""Start-up time of the `logmap` command (issue #15: `--help` and `--version` under 0.3 s).

    python bench/bench_startup.py [--repeat 10]

Each command runs as a fresh process (``python -c 'from logmap.cli import main; main()' ARGS``, what the
installed script does, without a pyenv or venv shim in front); the best and median wall times of ``--repeat``
runs are printed next to ``python -c pass``, the interpreter's own start-up in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGMAP = [sys.executable, "-c", "import sys; from logmap.cli import main; sys.argv[0] = 'logmap'; main()"]
COMMANDS = {"python -c pass": [sys.executable, "-c", "pass"], "logmap --version": [*LOGMAP, "--version"],
            "logmap --help": [*LOGMAP, "--help"], "logmap convert --help": [*LOGMAP, "convert", "--help"]}
TARGET_S = 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):  # interleaved, so that a busy moment falls on every command alike
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
            times[name].append(time.perf_counter() - started)
    print(f"| command | best s | median s | target |\n| --- | ---: | ---: | --- |")
    for name, runs in times.items():
        target = "" if name.startswith("python") else f"< {TARGET_S} s: {'met' if min(runs) < TARGET_S else 'NOT met'}"
        print(f"| `{name}` | {min(runs):.3f} | {statistics.median(runs):.3f} | {target} |")
    print(f"\nload average: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.repeat} runs each")


if __name__ == "__main__":
    main()
