"""The `filter` section: drop rows before rules, each with its reason code."""

from __future__ import annotations

import polars as pl

from logmap.errors import MappingError
from logmap.frame import ALIVE, any_match, drop_when
from logmap.mapping.model import Filter
from logmap.transform.expressions import Scope
from logmap.transform.rules import in_ranges, when_conditions
from logmap.transform.useragents import BotDetector


def extension(path: pl.Expr) -> pl.Expr:
    """The lower-cased extension of the path's last segment (`/a/b.min.JS` → `js`), or null."""
    return path.str.extract(r"\.([^./]+)$", 1).str.to_lowercase()


#: The column each filter key reads: written for a source without that column, the key is a mapping error.
FILTER_COLUMNS: dict[str, str] = {
    "status": "status", "methods": "method", "exclude_static": "path", "exclude_bots": "user_agent",
    "exclude_empty_user_agents": "user_agent", "bot_patterns": "user_agent", "include_paths": "path",
    "exclude_paths": "path",
}


def check_filter_columns(spec: Filter, columns: list[str]) -> None:
    """``MappingError`` at the first filter key the mapping writes whose column the source does not produce
    (a ``status`` filter on an export without a status); defaults that do not apply are skipped silently."""
    for key, where in spec.written.items():
        column = FILTER_COLUMNS.get(key)
        if column is not None and column not in columns:
            raise MappingError(f"the source has no '{column}' column for this filter to read; remove the key, or "
                               f"give the source a '{column}' (exports: source.options)",
                               file=where.file, line=where.line, column=where.column, key=where.key)


def apply_filter(frame: pl.DataFrame, spec: Filter, bots: BotDetector | None = None) -> pl.DataFrame:
    """Mark rows the filter drops: `drop` conditions, status, method, static asset, bot (listed, parsed as a
    spider, matching ``bot_patterns``, or an empty user agent), path — in that order."""
    columns = frame.columns
    if spec.drop:
        scope = Scope(frame.schema)
        for reason, when in spec.drop.items():
            frame = frame.with_columns(drop_when(when_conditions(when, scope, spec.where), f"filtered:{reason}"))
    if spec.status and "status" in columns:
        frame = frame.with_columns(drop_when(~in_ranges(pl.col("status"), spec.status), "filtered:status"))
    if spec.methods and "method" in columns:
        frame = frame.with_columns(drop_when(~pl.col("method").is_in(spec.methods), "filtered:method"))
    # The costly tests below read only the rows still alive (null elsewhere, which costs next to nothing): a row
    # keeps the first reason that drops it, so the rest never need to be looked at.
    if spec.static_extensions and "path" in columns:
        static = extension(_alive("path")).is_in(spec.static_extensions)
        frame = frame.with_columns(drop_when(static, "filtered:static"))
    if "user_agent" in columns and (spec.exclude_bots or spec.bot_patterns):
        bots = bots or BotDetector()
        bot = bots.expr(_alive("user_agent"), parser=spec.exclude_bots, maintained=spec.exclude_bots,
                        patterns=spec.bot_patterns or ())
        if spec.exclude_bots and spec.exclude_empty_user_agents:
            bot = bot | bots.empty_agent(frame)
        frame = frame.with_columns(drop_when(bot, "filtered:bot"))
    if "path" in columns:
        if spec.include_paths:
            frame = frame.with_columns(drop_when(~any_match(_alive("path"), spec.include_paths), "filtered:path"))
        if spec.exclude_paths:
            frame = frame.with_columns(drop_when(any_match(_alive("path"), spec.exclude_paths), "filtered:path"))
    return frame


def _alive(column: str) -> pl.Expr:
    """``column`` on rows no stage has dropped, null on the others."""
    return pl.when(ALIVE).then(pl.col(column))
