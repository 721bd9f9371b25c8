"""Start-up time of the `logmap` command (issue #15: `--help` and `--version` under 0.3 s).

    python bench/bench_startup.py [--repeat 10]

Each command runs as a fresh process (``python -c 'from logmap.cli import main; main()' ARGS``, what the
installed script does, without a pyenv or venv shim in front); the best and median wall times of ``--repeat``
runs are printed next to ``python -c pass``, the interpreter's own start-up in the same run, and so is what
logmap adds to it. ``--baseline TREE`` times another checkout's ``--version`` in the same run.
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
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, timed with --version")
    args = parser.parse_args()
    commands = {name: (command, ROOT) for name, command in COMMANDS.items()}
    if args.baseline is not None:
        commands[f"logmap --version ({args.baseline.name})"] = ([*LOGMAP, "--version"], args.baseline.resolve())
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):  # interleaved, so that a busy moment falls on every command alike
        for name, (command, tree) in commands.items():
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tree,
                                       env={**os.environ, "PYTHONPATH": str(tree)})
            _, status, usage = os.wait4(process.pid, 0)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(usage.ru_utime + usage.ru_stime)  # steadier than wall time on a shared machine
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{name} failed")
    python = min(times["python -c pass"])
    print("| command | best s | median s | best − `python -c pass` | CPU s (best) | target |\n"
          "| --- | ---: | ---: | ---: | ---: | --- |")
    for name, runs in times.items():
        target = "" if name.startswith("python") else f"< {TARGET_S} s: {'met' if min(runs) < TARGET_S else 'NOT met'}"
        print(f"| `{name}` | {min(runs):.3f} | {statistics.median(runs):.3f} | {min(runs) - python:.3f} | "
              f"{min(cpu[name]):.3f} | {target} |")
    print(f"\nload average: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.repeat} runs each")


if __name__ == "__main__":
    main()
