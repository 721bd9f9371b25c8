"""Benchmark: JSON text in a warehouse unload, decoded as nested data (issue #12).

A Snowplow ``atomic.events`` unload to CSV keeps each context as JSON text; here
``contexts_com_snowplowanalytics_snowplow_ecommerce_product_1`` holds an array of 1–3 products (Snowplow's
ecommerce product entity: id, name, category, price, quantity, currency, …) on every row, and
``contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1`` one transaction on every tenth row.

Measured in one process, on the same file, best of ``--repeat``:

* **floor**: polars reading the CSV (every column as it infers it), no decoding: what any CSV conversion pays;
* **read + decode**: the same read, then the reader's JSON-text decoding of the two context columns with the
  fields a mapping names (``[].id``, ``[].quantity``, ``[].price``; ``.revenue``) — `decode_json_columns` with
  `json_dtype`, exactly what `ExportReader` runs per chunk;
* **decode alone**: read + decode minus the floor, per million rows;
* ``--convert``: also the whole ``logmap convert`` of the file with a mapping whose checkout rule reads those
  fields (end to end: read, decode, rules, identity, durations, validation, encoding, writing).

    python bench/bench_json_text.py [--rows 1000000] [--repeat 3] [--convert] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRODUCT = "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1"
TRANSACTION = "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"
WANTED = {PRODUCT: [f"{PRODUCT}[].id", f"{PRODUCT}[].quantity", f"{PRODUCT}[].price"],
          TRANSACTION: [f"{TRANSACTION}.revenue"]}

MAPPING = f"""
logmap: 1
source: {{format: csv, options: {{time: {{column: collector_tstamp, format: '%Y-%m-%d %H:%M:%S%.f'}},
                                  page_url: '{{page_url}}', required: [domain_userid]}}}}
identity: {{anonymous_id: '{{domain_userid}}'}}
context: {{user_agent: false, truncated_ip: false}}
dedupe: {{by: [event_id]}}
rules:
  - {{when: {{event_name: transaction}}, type: checkout, product_ids: '{{{PRODUCT}[].id}}',
     quantities: '{{{PRODUCT}[].quantity}}', revenue: '{{{TRANSACTION}.revenue}}'}}
  - {{when: {{event_name: product_view}}, type: product_detail_page_view, product_ids: '{{{PRODUCT}.id}}'}}
  - {{when: {{event_name: add_to_cart}}, type: add_to_cart, product_ids: '{{{PRODUCT}[].id}}',
     quantities: '{{{PRODUCT}[].quantity}}'}}
"""


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A Snowplow-shaped CSV unload: Python builds 10,000 distinct context texts once; polars tiles them."""
    rng = random.Random(seed)
    products = []
    for _ in range(10_000):
        items = [{"id": f"SKU-{rng.randrange(100_000):05d}", "name": f"Product {rng.randrange(1000)}",
                  "category": rng.choice(["shoes", "bags", "coats/winter", "hats"]),
                  "price": round(rng.uniform(5, 300), 2), "quantity": rng.randrange(1, 4), "currency": "EUR",
                  "brand": "Acme", "variant": rng.choice(["red", "blue", None]), "list_price": None}
                 for _ in range(rng.randrange(1, 4))]
        products.append(json.dumps(items, separators=(",", ":")))
    frame = pl.DataFrame({"i": pl.int_range(rows, eager=True, dtype=pl.Int64)})
    texts = pl.Series(products)
    frame = frame.select(
        pl.format("{}-0000-4000-8000-000000000000", pl.col("i").cast(pl.String).str.zfill(8)).alias("event_id"),
        (pl.lit(1_709_280_000_000_000) + pl.col("i") * 250_000).cast(pl.Datetime("us"))
        .dt.strftime("%Y-%m-%d %H:%M:%S%.3f").alias("collector_tstamp"),
        pl.format("{}-visitor", (pl.col("i") // 40).cast(pl.String)).alias("domain_userid"),
        pl.col("i").mod(10).replace_strict({0: "transaction", 1: "add_to_cart"}, default="product_view",
                                           return_dtype=pl.String).alias("event_name"),
        pl.format("https://shop.example/p/{}", pl.col("i").mod(5000)).alias("page_url"),
        pl.lit(texts).gather(pl.col("i").mod(len(products))).alias(PRODUCT),
        pl.when(pl.col("i").mod(10) == 0).then(pl.format('[{{"id":"T{}","revenue":{}.5,"currency":"EUR"}}]',
                                                         pl.col("i"), pl.col("i").mod(500)))
        .alias(TRANSACTION),
    )
    frame.write_csv(path)


def best(seconds: list[float]) -> float:
    return min(seconds)


def measure(path: Path, repeat: int) -> dict[str, float]:
    from logmap.sources.exports import decode_json_columns
    from logmap.transform.nested import json_dtype, path_steps

    dtypes = {}
    sample = pl.read_csv(path, n_rows=10_000, infer_schema_length=10_000)
    for column, names in WANTED.items():
        inferred = sample[column].drop_nulls().str.json_decode(infer_schema_length=None).dtype
        dtypes[column] = json_dtype(inferred, {path_steps(name)[1] for name in names})
    floor, decode, floor_cpu, decode_cpu = [], [], [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        frame = pl.read_csv(path, infer_schema_length=10_000, null_values=[""])
        floor.append(time.perf_counter() - started)
        floor_cpu.append(time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        frame = pl.read_csv(path, infer_schema_length=10_000, null_values=[""]).with_columns(
            pl.lit(None, pl.String).alias("_drop"), pl.lit(None, pl.String).alias("_detail"))
        frame = decode_json_columns(frame, dtypes)
        decode.append(time.perf_counter() - started)
        decode_cpu.append(time.process_time() - cpu)
        assert frame["_drop"].null_count() == frame.height
    return {"rows": frame.height, "floor": best(floor), "decode": best(decode), "floor_cpu": best(floor_cpu),
            "decode_cpu": best(decode_cpu)}


def convert(path: Path, out: Path) -> dict[str, float]:
    from logmap.conversion import convert as run
    from logmap.sources import load_mapping_text

    cpu = time.process_time()
    started = time.perf_counter()
    result = run([str(path)], load_mapping_text(MAPPING, "bench.yaml"), out, overwrite=True)
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "emitted": result.ledger.emitted, "dropped": dict(result.ledger.dropped),
            "balanced": result.ledger.balanced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--convert", action="store_true")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the CSV in this directory")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="logmap-json-text-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"snowplow-{args.rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        make_csv(path, args.rows)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    figures = measure(path, args.repeat)
    rows = figures["rows"]
    alone = figures["decode"] - figures["floor"]
    print(f"rows {rows:,}; load average {os.getloadavg()[0]:.1f}")
    print(f"floor (read CSV)        {figures['floor']:.2f} s  {rows / figures['floor']:>12,.0f} rows/s")
    print(f"read + decode JSON text {figures['decode']:.2f} s  {rows / figures['decode']:>12,.0f} rows/s  "
          f"({figures['decode'] / figures['floor']:.2f}x the floor)")
    print(f"decoding alone          {alone:.2f} s  {rows / max(alone, 1e-9):>12,.0f} rows/s  "
          f"({alone / rows * 1e6:.2f} s per million rows)")
    alone_cpu = figures["decode_cpu"] - figures["floor_cpu"]
    print(f"CPU seconds (all threads): floor {figures['floor_cpu']:.2f}, read + decode {figures['decode_cpu']:.2f} "
          f"({figures['decode_cpu'] / figures['floor_cpu']:.2f}x), decoding alone {alone_cpu:.2f}")
    if args.convert:
        result = convert(path, directory / "out")
        print(f"convert: {result['wall']:.2f} s wall, {result['cpu']:.2f} s CPU, {rows / result['wall']:,.0f} "
              f"rows/s; emitted {result['emitted']:,}, dropped {result['dropped']}, balanced {result['balanced']}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
