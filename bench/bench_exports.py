"""Benchmark: a 1M-event GA4-shaped Parquet file through the shipped GA4 mapping; prints events/s.

The file is the GA4 fixture (nested event_params, items, ecommerce … as the BigQuery export has them) tiled
until it has ``--events`` rows, each copy with its own visitors and a later day, so sessions and durations stay
realistic. Nothing in the conversion loops over rows in Python: this measures the polars plan.

    python bench/bench_exports.py [--events 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated input and output")
    args = parser.parse_args(argv)
    from logmap.pipeline import convert

    work = Path(tempfile.mkdtemp(prefix="logmap-bench-exports-"))
    source = work / "events_bench.parquet"
    started = time.perf_counter()
    rows = make_input(source, args.events)
    print(f"input: {rows:,} events, {source.stat().st_size / 1e6:.1f} MB Parquet "
          f"(made in {time.perf_counter() - started:.1f}s)")
    os.environ.setdefault("LOGMAP_KEY", "bench-key-not-secret")
    started = time.perf_counter()
    result = convert([str(source)], MAPPING, work / "out")
    elapsed = time.perf_counter() - started
    ledger = result.ledger.to_dict()
    print(f"converted in {elapsed:.2f}s: {rows / elapsed:,.0f} events/s; emitted {ledger['emitted']:,}, "
          f"dropped {ledger['dropped']}, balanced={ledger['balanced']}")
    if not args.keep:
        import shutil

        shutil.rmtree(work)
    else:
        print(f"kept {work}")
    return 0 if ledger["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
