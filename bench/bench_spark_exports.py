"""NDJSON exports on Spark ``local[2]``: read by the text source (plain files in byte ranges, ``.gz`` files as one
range each) against read whole through ``binaryFile`` (what the engine did before; forced here by choosing no
file for the text source), on the same files (issue #14).

    python bench/bench_spark_exports.py [--copies 12] [--rounds 3] [--split-mb 4 16]

* Input: the three big files of the Segment fixture (fixtures/exports/segment), unpacked, each repeated
  ``--copies`` times (12: 34 MB, 33,828 lines), plain and gzipped, written to a temporary folder.
* Each variant runs ``--rounds`` times, in turn, in one session (its start-up not counted); it reports the best
  wall time and the best CPU seconds (user + system of this process and all its descendants, the JVM and the
  Python workers, read from /proc before and after), the count pass's wall time, and the load average.
* The mapping is the shipped ``mappings/segment.yaml``; every variant gives the same ledger (checked).
  Run it with ``PYTHONPATH`` at this tree, so that Spark's Python workers import the same logmap.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and its descendants alive now."""
    parents, cpu = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)], cpu[int(entry)] = int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK
    mine = {os.getpid()}
    while True:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        if not more:
            return sum(cpu[pid] for pid in mine)
        mine |= more


def inputs(folder: Path, copies: int) -> tuple[list[str], list[str]]:
    """(plain files, gzipped files) of the Segment fixture's three big files, each ``copies`` times over."""
    segment = ROOT / "fixtures" / "exports" / "segment"
    plain, zipped = [], []
    for name in json.loads((segment / "summary.json").read_text())["files"][:3]:
        lines = gzip.decompress((segment / name).read_bytes()).rstrip(b"\n").split(b"\n")[:-1]  # not the cut line
        body = b"\n".join(lines * copies) + b"\n"
        target = folder / Path(name).name.removesuffix(".gz")
        target.write_bytes(body)
        target.with_name(target.name + ".gz").write_bytes(gzip.compress(body, 6))
        plain.append(str(target))
        zipped.append(str(target) + ".gz")
    return plain, zipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--split-mb", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    from logmap.spark import convert_spark, engine

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.adaptive.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("FATAL")
    chosen, counting = engine.text_exports, engine.count_ranges
    counts: list[float] = []

    def timed_count(*given, **options):
        started = time.perf_counter()
        try:
            return counting(*given, **options)
        finally:
            counts.append(time.perf_counter() - started)

    def nothing(*given, **options):
        return [], [], [], {}

    engine.count_ranges = timed_count
    with tempfile.TemporaryDirectory(prefix="bench-spark-exports-") as tmp:
        plain, zipped = inputs(Path(tmp), args.copies)
        lines = sum(Path(p).read_bytes().count(b"\n") for p in plain)
        print(f"input: {sum(os.path.getsize(p) for p in plain) / 1e6:.1f} MB plain, {lines:,} lines, "
              f"{sum(os.path.getsize(p) for p in zipped) / 1e6:.1f} MB gzipped")
        variants = [*((f"plain, {mb} MiB ranges", plain, chosen, mb) for mb in args.split_mb),
                    ("plain, whole (binaryFile)", plain, nothing, 128), (".gz, text source", zipped, chosen, 128),
                    (".gz, whole (binaryFile)", zipped, nothing, 128)]
        best: dict[str, list[tuple[float, float, float]]] = {}
        ledgers = set()
        for round_ in range(args.rounds):
            for label, files, choose, split_mb in variants:
                engine.text_exports = choose
                counts.clear()
                cpu, started = tree_cpu(), time.perf_counter()
                result = convert_spark(spark, files, ROOT / "mappings" / "segment.yaml",
                                       Path(tmp) / f"out-{round_}-{len(best.get(label, []))}-{abs(hash(label))}",
                                       key="bench-key", partitions=2, split_bytes=split_mb * 1024 * 1024)
                wall, cpu = time.perf_counter() - started, tree_cpu() - cpu
                ledgers.add(json.dumps(result.ledger.to_dict(), sort_keys=True))
                best.setdefault(label, []).append((wall, cpu, sum(counts)))
                print(f"round {round_}: {label}: {wall:.1f} s, {cpu:.1f} CPU s (count {sum(counts):.1f} s), load "
                      f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    spark.stop()
    assert len(ledgers) == 1, ledgers
    print("\n| variant | best wall s | best CPU s | count pass s |\n| --- | --- | --- | --- |")
    for label, runs in best.items():
        print(f"| {label} | {min(r[0] for r in runs):.1f} | {min(r[1] for r in runs):.1f} | "
              f"{min(r[2] for r in runs):.1f} |")


if __name__ == "__main__":
    main()
