"""Micro-benchmark: conform + validate + encode of synthetic record frames; prints records/s.

    python bench/bench_encode.py [--rows 1000000] [--repeat 3]

The frame is built with polars expressions (a storefront-like mix: page views with context, searches with
filters, carts with quantities, a few invalid values) so the benchmark measures the records stage only.
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from logmap.records.encode import encode_frame
from logmap.records.schema import conform
from logmap.records.validate import validate

TYPES = ["product_detail_page_view", "category_page_view", "search", "add_to_cart", "checkout", "home_page_view"]


def synthetic(rows: int) -> pl.DataFrame:
    """``rows`` records of mixed types; about 1% carry an invalid value."""
    i = pl.int_range(rows, dtype=pl.Int64)
    kind = i.hash(7) % len(TYPES)
    type_ = pl.lit(pl.Series(TYPES)).get(kind)
    is_ = {t: type_ == t for t in TYPES}
    product = pl.concat_list(pl.format("sku-{}", i % 5000), pl.format("sku-{}", (i * 7) % 5000))
    frame = pl.select(
        type_.alias("type"),
        pl.when(i % 3 == 0).then(pl.format("user{}", i % 20000)).alias("user_id"),
        i.hash(1).cast(pl.String).alias("anonymous_id"),
        (pl.lit(1_709_251_200_000) + i * 1000).cast(pl.Datetime("ms", "UTC")).alias("timestamp"),
        pl.when(is_["product_detail_page_view"] | is_["add_to_cart"] | is_["checkout"]).then(product)
        .alias("product_ids"),
        pl.when(is_["add_to_cart"] | is_["checkout"]).then(pl.concat_list(pl.lit(1.0), (i % 3).cast(pl.Float64)))
        .alias("quantities"),
        pl.when(is_["checkout"]).then((i % 1000).cast(pl.Float64) / 10).alias("revenue"),
        pl.when(is_["category_page_view"]).then(pl.concat_list(pl.lit("shoes"), pl.lit("red"))).alias("category"),
        pl.when(~is_["search"] & ~is_["add_to_cart"] & ~is_["checkout"]).then((i % 600).cast(pl.Float64))
        .alias("duration"),
        pl.when(is_["search"]).then(pl.format("red shoe \"{}\" é", i % 100)).alias("search.keywords"),
        pl.when(is_["search"] & (i % 2 == 0)).then(pl.concat_list(pl.lit("red"))).alias("search.filters.color"),
        pl.format("https://shop.example.com/p/{}?utm_source=x", i).alias("context.page.url"),
        pl.when(i % 4 == 0).then(pl.lit("https://www.google.com/")).alias("context.page.referrer"),
        pl.lit("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0").alias("context.user_agent"),
        pl.when(i % 100 == 0).then(pl.lit("01.2.3.0")).otherwise(pl.format("10.{}.{}.0", i % 256, (i // 256) % 256))
        .alias("context.truncated_ip"),
        pl.when(i % 2 == 0).then(pl.lit("x")).alias("context.campaign.source"),
        pl.lit("access.log").alias("_file"),
        (i + 1).cast(pl.UInt64).alias("_line"),
        pl.lit(None, pl.String).alias("_drop"),
        pl.lit(None, pl.String).alias("_detail"),
    )
    return frame


def run(frame: pl.DataFrame) -> pl.DataFrame:
    records = validate(conform(frame))
    return records.with_columns(encode_frame(records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frame = synthetic(args.rows)
    print(f"polars {pl.__version__}, {pl.thread_pool_size()} threads, {args.rows:,} records")
    for label, step in (("validate", lambda f: validate(conform(f))),
                        ("encode", lambda f: encode_frame(f)),
                        ("conform+validate+encode", run)):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = step(frame)
            best = min(best, time.perf_counter() - start)
        print(f"{label:>24}: {best:6.2f} s  {args.rows / best:>12,.0f} records/s")
    out = run(frame)
    invalid = out["_drop"].is_not_null().sum()
    size = out["_json"].str.len_bytes().sum()
    print(f"invalid: {invalid:,}  JSON: {size / args.rows:.0f} bytes/record")


if __name__ == "__main__":
    main()
