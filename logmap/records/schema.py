"""The record frame: one flat column per JSON path of an interaction record (null = absent)."""

from __future__ import annotations

import polars as pl

LIST_STR = pl.List(pl.String)

#: The fixed columns, in the order fields are written.
RECORD_COLUMNS: dict[str, pl.DataType] = {
    "type": pl.String(),
    "user_id": pl.String(),
    "anonymous_id": pl.String(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "miso_id": pl.String(),
    "product_ids": LIST_STR,
    "product_group_ids": LIST_STR,
    "quantities": pl.List(pl.Float64),
    "revenue": pl.Float64(),
    "rating": pl.Float64(),
    "duration": pl.Float64(),
    "category": LIST_STR,
    "custom_action_name": pl.String(),
    "question_id": pl.String(),
    "result_type": pl.String(),
    "value": pl.String(),
    "search.keywords": pl.String(),
    "context.page.url": pl.String(),
    "context.page.referrer": pl.String(),
    "context.page.title": pl.String(),
    "context.user_agent": pl.String(),
    "context.truncated_ip": pl.String(),
    "context.locale": pl.String(),
    "context.region": pl.String(),
    "context.campaign.name": pl.String(),
    "context.campaign.source": pl.String(),
    "context.campaign.medium": pl.String(),
    "context.campaign.term": pl.String(),
    "context.campaign.content": pl.String(),
}

#: Column families whose members are named by the mapping (`search.filters.color`).
DYNAMIC_PREFIXES = ("search.filters.", "context.custom_context.")


def is_record_column(name: str) -> bool:
    return name in RECORD_COLUMNS or name.startswith(DYNAMIC_PREFIXES)


def record_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The record columns of ``frame`` in writing order: fixed ones first, then dynamic ones by name."""
    names = frame.collect_schema().names()
    dynamic = sorted(n for n in names if n.startswith(DYNAMIC_PREFIXES))
    fixed = list(RECORD_COLUMNS)
    # search.filters.* belong right after search.keywords; custom context at the end of context.
    search_at = fixed.index("search.keywords") + 1
    filters = [n for n in dynamic if n.startswith("search.filters.")]
    custom = [n for n in dynamic if n.startswith("context.custom_context.")]
    return fixed[:search_at] + filters + fixed[search_at:] + custom


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing fixed record columns as typed nulls and cast present ones; other columns are kept."""
    exprs = []
    for name, dtype in RECORD_COLUMNS.items():
        if name in frame.columns:
            if frame.schema[name] != dtype:
                exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    return frame.with_columns(exprs) if exprs else frame
