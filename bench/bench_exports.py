"""Benchmark: a 1M-event GA4-shaped Parquet file through the shipped GA4 mapping; prints events/s.

The file is the GA4 fixture (nested event_params, items, ecommerce … as the BigQuery export has them) tiled
until it has ``--events`` rows, each copy with its own visitors and a later day, so sessions and durations stay
realistic. Nothing in the conversion loops over rows in Python: this measures the polars plan.

    python bench/bench_exports.py [--events 1000000] [--input FILE] [--repeat 1] [--profile] [--floor] [--keep]

* ``--input``: convert this Parquet file (e.g. one kept with ``--keep``) instead of generating one;
* ``--repeat``: conversions to run (the machine is shared: take the best); wall and CPU seconds of each;
* ``--profile``: one more conversion with per-stage seconds (stages then run in turn, without read-ahead);
* ``--floor``: Parquet decoding alone (pyarrow, then into polars), of every column and of what the mapping
  reads: no conversion can read its input faster.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "exports" / "ga4"
MAPPING = ROOT / "mappings" / "ga4-bigquery-export.yaml"
DAY_US = 86_400 * 1_000_000


def make_input(path: Path, events: int) -> int:
    """Write a GA4-shaped Parquet file of ``events`` rows; returns the row count."""
    base = pl.concat([pl.read_parquet(p) for p in sorted(FIXTURE.glob("events_*.parquet"))])
    copies = -(-events // base.height)
    frames = [
        base.with_columns(
            (pl.col("event_timestamp") + copy * 7 * DAY_US),
            pl.col("user_pseudo_id") + f"-{copy}",
            pl.when(pl.col("user_id").is_not_null()).then(pl.col("user_id") + f"-{copy}"),
        )
        for copy in range(copies)
    ]
    table = pl.concat(frames).head(events)
    table.write_parquet(path, compression="zstd", row_group_size=100_000)
    return table.height


def cpu_s() -> float:
    """User + system CPU seconds of this process so far: less sensitive than wall time to a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    cpu, started = cpu_s(), time.perf_counter()
    work()
    return time.perf_counter() - started, cpu_s() - cpu


def floor(source: Path, repeat: int = 3) -> None:
    """Best-of-``repeat`` decoding of the file: every column, then the columns and struct fields the mapping
    reads (as the export reader asks pyarrow for them); Arrow batches alone, then converted to polars."""
    import pyarrow.parquet as pq

    from logmap.mapping.loader import load_mapping
    from logmap.sources.exports import ExportReader, _parquet_columns, wanted_names

    mapping = load_mapping(MAPPING)
    reader = ExportReader([str(source)], mapping.source, wanted=wanted_names(mapping))
    assert reader.paths is not None
    needed = _parquet_columns(pq.ParquetFile(source), reader.paths)

    def decode(columns: list[str] | None, to_polars: bool) -> None:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=100_000, columns=columns):
            if to_polars:
                pl.from_arrow(batch)

    for label, columns in (("every column", None), (f"the mapping's {len(needed)} leaves", needed)):
        for to_polars in (False, True):
            wall, cpu = min(measure(partial(decode, columns, to_polars)) for _ in range(repeat))
            print(f"floor: {label}, pyarrow{' + pl.from_arrow' if to_polars else ''}: {wall:.2f}s wall, "
                  f"{cpu:.2f}s CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--input", type=Path, help="convert this Parquet file instead of generating one")
    parser.add_argument("--repeat", type=int, default=1, help="conversions to run (best of)")
    parser.add_argument("--profile", action="store_true", help="one more conversion with per-stage seconds")
    parser.add_argument("--floor", action="store_true", help="measure Parquet decoding alone")
    parser.add_argument("--keep", action="store_true", help="keep the generated input and output")
    args = parser.parse_args(argv)
    from logmap.conversion import convert

    work = Path(tempfile.mkdtemp(prefix="logmap-bench-exports-"))
    if args.input:
        source = args.input
        rows = pl.scan_parquet(source).select(pl.len()).collect().item()
        print(f"input: {source} ({rows:,} events, {source.stat().st_size / 1e6:.1f} MB)")
    else:
        source = work / "events_bench.parquet"
        started = time.perf_counter()
        rows = make_input(source, args.events)
        print(f"input: {rows:,} events, {source.stat().st_size / 1e6:.1f} MB Parquet "
              f"(made in {time.perf_counter() - started:.1f}s)")
    print(f"load average: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.floor:
        floor(source)
    os.environ.setdefault("LOGMAP_KEY", "bench-key-not-secret")
    balanced = True
    for run in range(args.repeat + (1 if args.profile else 0)):
        timings: dict[str, float] | None = {} if run == args.repeat else None
        shutil.rmtree(work / "out", ignore_errors=True)
        cpu, started = cpu_s(), time.perf_counter()
        result = convert([str(source)], MAPPING, work / "out", key=os.environ["LOGMAP_KEY"], timings=timings)
        elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu
        ledger = result.ledger.to_dict()
        balanced = balanced and ledger["balanced"]
        print(f"{'profiled run' if timings is not None else 'converted'} in {elapsed:.2f}s ({cpu:.2f}s CPU): "
              f"{rows / elapsed:,.0f} events/s; emitted {ledger['emitted']:,}, dropped {ledger['dropped']}, "
              f"balanced={ledger['balanced']}")
        if timings is not None:
            for stage, seconds in timings.items():
                print(f"  {stage:18s} {seconds:6.2f}s {seconds / elapsed:6.1%}")
    if not args.keep:
        shutil.rmtree(work)
    else:
        print(f"kept {work}")
    return 0 if balanced else 1


if __name__ == "__main__":
    sys.exit(main())
