"""The `filter` section: drop rows before rules, each with its reason code."""

from __future__ import annotations

import polars as pl

from logmap.mapping.model import Filter
from logmap.frame import any_match, drop_when
from logmap.transform.useragents import BotDetector


def in_ranges(column: pl.Expr, ranges: list[tuple[int, int]]) -> pl.Expr:
    condition = pl.lit(False)
    for low, high in ranges:
        condition = condition | column.is_between(low, high)
    return condition


def extension(path: pl.Expr) -> pl.Expr:
    """The lower-cased extension of the path's last segment (`/a/b.min.JS` → `js`), or null."""
    return path.str.extract(r"\.([^./]+)$", 1).str.to_lowercase()


def apply_filter(frame: pl.DataFrame, spec: Filter, bots: BotDetector | None = None) -> pl.DataFrame:
    """Mark rows the filter drops: status, method, static asset, bot, path — in that order."""
    columns = frame.columns
    if spec.status and "status" in columns:
        frame = frame.with_columns(drop_when(~in_ranges(pl.col("status"), spec.status), "filtered:status"))
    if spec.methods and "method" in columns:
        frame = frame.with_columns(drop_when(~pl.col("method").is_in(spec.methods), "filtered:method"))
    if spec.static_extensions and "path" in columns:
        frame = frame.with_columns(drop_when(extension(pl.col("path")).is_in(spec.static_extensions), "filtered:static"))
    if "user_agent" in columns and (spec.exclude_bots or spec.bot_patterns):
        bot = (bots or BotDetector()).expr("user_agent", parser=spec.exclude_bots, patterns=spec.bot_patterns or ())
        frame = frame.with_columns(drop_when(bot, "filtered:bot"))
    if "path" in columns:
        if spec.include_paths:
            frame = frame.with_columns(drop_when(~any_match(pl.col("path"), spec.include_paths), "filtered:path"))
        if spec.exclude_paths:
            frame = frame.with_columns(drop_when(any_match(pl.col("path"), spec.exclude_paths), "filtered:path"))
    return frame
