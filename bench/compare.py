"""Side by side on one generated log, in one go (issue #15): the polars floor, logmap, GoAccess.

    LOGMAP_KEY=any python bench/compare.py [--lines 2000000] [--repeat 3] [--bounded "--memory 512M"]
                                          [--goaccess-repeat 1] [--results bench/results.md]

Each contender runs as a fresh process, and its wall time, CPU time (user + system) and peak RSS are those of
that process alone (``os.wait4``'s resource usage). Rounds are interleaved (floor, logmap, logmap bounded, …
then again), so that the load other work puts on a shared machine falls on all of them alike; each figure is
the best of ``--repeat`` rounds and the ratios are to the floor measured in the same run.

* **floor**: a Python process that imports polars and reads the file as one string column with
  ``pl.read_csv`` (a separator and no quote character that never occur in the log): the cost of getting the
  bytes into a polars frame at all. Its read alone is shown too; ratios are to the whole process, which
  starts Python and imports polars as logmap's process does.
* **logmap**: ``logmap convert`` (the CLI, start-up included) with ``mappings/storefront-combined.yaml``
  writing ndjson batches to a temporary directory; once with default options, once with ``--bounded``'s.
* **GoAccess** (``apt-get install goaccess``), when installed: ``goaccess --log-format=COMBINED`` writing its
  JSON report; a different job (aggregate statistics, no records), shown as a familiar yardstick.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_convert import MAPPING, ROOT, log_path, machine  # noqa: E402

FLOOR_SCRIPT = """
import sys, time, polars as pl
started = time.perf_counter()
frame = pl.read_csv(sys.argv[1], has_header=False, separator="\\x1f", quote_char=None, new_columns=["line"],
                    schema_overrides={"line": pl.String}, truncate_ragged_lines=True)
print(f"{time.perf_counter() - started:.4f} {frame.height}")
"""

LOGMAP = [sys.executable, "-c", "import sys; from logmap.cli import main; sys.argv[0] = 'logmap'; main()"]


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    output: str = ""


def measure(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time, CPU time and peak RSS of ``command`` run to completion (its own process alone)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            error = err.read().decode(errors="replace")
            raise SystemExit(f"{shlex.join(command)} failed ({process.returncode}):\n{error[-2000:]}")
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


@dataclass
class Contender:
    name: str
    command: Callable[[Path], list[str]]  # output path → argv
    repeat: int
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--visitors", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bounded", default="--memory 512M",
                        help="logmap options of the bounded run (e.g. '--buckets 16')")
    parser.add_argument("--goaccess-repeat", type=int, default=1,
                        help="GoAccess runs (it takes ~10x logmap's time); 0 skips it")
    parser.add_argument("--results", type=Path, default=HERE / "results.md",
                        help="append a section to this Markdown file ('-' for stdout only)")
    parser.add_argument("--note", default="", help="a line about this run, for the results file")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another logmap tree (e.g. `git archive <commit>` unpacked) run with defaults too, to "
                             "measure before and after in the same run")
    args = parser.parse_args()

    path = log_path(args.lines, args.visitors)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("LOGMAP_KEY", "bench-key-not-secret")
    work = Path(tempfile.mkdtemp(prefix="logmap-compare-"))

    def logmap(*options: str, tree: Path = ROOT):
        # -c runs with the tree as working directory, so its logmap package is the one imported
        return lambda out: ["env", "--chdir", str(tree), f"PYTHONPATH={tree}", *LOGMAP, "convert", str(path),
                            "-m", str(MAPPING), "-o", str(out), "-q", *options]

    contenders = [
        Contender("floor: python + polars `read_csv`, one string column",
                  lambda out: [sys.executable, "-c", FLOOR_SCRIPT, str(path)], args.repeat),
        Contender("`logmap convert` (defaults)", logmap(), args.repeat),
        Contender(f"`logmap convert {args.bounded}`", logmap(*shlex.split(args.bounded)), args.repeat),
    ]
    if args.baseline is not None:
        contenders.insert(1, Contender(f"`logmap convert` (defaults), baseline tree {args.baseline.name}",
                                       logmap(tree=args.baseline.resolve()), args.repeat))
    goaccess = shutil.which("goaccess")
    if goaccess is None:
        print("GoAccess is not installed (apt-get install -y goaccess): skipped", file=sys.stderr)
    elif args.goaccess_repeat > 0:
        contenders.append(Contender(
            "GoAccess `--log-format=COMBINED`, JSON report",
            lambda out: [goaccess, str(path), "--log-format=COMBINED", "--no-global-config", "--no-progress", "-o",
                         str(out) + ".json"], args.goaccess_repeat))

    load_before = os.getloadavg()
    try:
        for round_ in range(max(c.repeat for c in contenders)):
            for contender in contenders:
                if round_ >= contender.repeat:
                    continue
                out = work / f"out-{round_}"
                contender.runs.append(measure(contender.command(out), env))
                shutil.rmtree(out, ignore_errors=True)
                Path(str(out) + ".json").unlink(missing_ok=True)
                run = contender.runs[-1]
                print(f"round {round_ + 1}: {contender.name}: {run.wall_s:.2f} s, {run.cpu_s:.2f} CPU s, "
                      f"{run.peak_rss_mb:.0f} MB", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    floor = contenders[0]
    floor_read = min(float(r.output.split()[0]) for r in floor.runs)
    rows = int(floor.runs[0].output.split()[1])
    size_mb = path.stat().st_size / 1e6
    out = [f"## compare.py: {args.lines:,} lines ({size_mb:.0f} MB) — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
           "", f"Machine: {machine()}.  ",
           f"Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
           f"{' / '.join(f'{x:.2f}' for x in load_after)}.  ",
           f"Best of {args.repeat} interleaved rounds (GoAccess: {args.goaccess_repeat}); each a fresh process. "
           f"The floor's `read_csv` alone: {floor_read:.2f} s.", *([f"{args.note}  "] if args.note else []), "",
           "| what | wall s | CPU s | peak RSS MB | lines/s | × floor (wall) | × floor (CPU) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for contender in contenders:
        best = contender.best
        out.append(f"| {contender.name} | {best.wall_s:.2f} | {best.cpu_s:.2f} | {best.peak_rss_mb:.0f} | "
                   f"{rows / best.wall_s:,.0f} | {best.wall_s / floor.best.wall_s:.1f} | "
                   f"{best.cpu_s / floor.best.cpu_s:.1f} |")
    text = "\n".join(out) + "\n"
    print(text)
    summary = {c.name: {"wall_s": c.best.wall_s, "cpu_s": c.best.cpu_s, "peak_rss_mb": c.best.peak_rss_mb,
                        "x_floor": c.best.wall_s / floor.best.wall_s} for c in contenders}
    print(json.dumps(summary), file=sys.stderr)
    if str(args.results) != "-":
        with args.results.open("a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
