"""Transforms: each module compiles one part of the mapping into polars expressions over a frame.

Stages never remove rows; they mark them. ``drop_when`` is the one way a stage records why a row leaves.
"""

from __future__ import annotations

import polars as pl

ALIVE = pl.col("_drop").is_null()


def any_match(column: pl.Expr, patterns: list[str] | tuple[str, ...]) -> pl.Expr:
    """Whether ``column`` matches any of ``patterns``: one alternation is one pass of the regex engine instead
    of one per pattern."""
    return column.str.contains("|".join(f"(?:{p})" for p in patterns))


def drop_when(condition: pl.Expr, reason: str | pl.Expr, detail: pl.Expr | str | None = None) -> list[pl.Expr]:
    """Expressions setting ``_drop`` (and ``_detail``) where ``condition`` holds on a row still alive."""
    hit = ALIVE & condition.fill_null(False)
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    detail_expr = pl.lit(detail) if isinstance(detail, str) else detail
    exprs = [pl.when(hit).then(reason_expr).otherwise(pl.col("_drop")).alias("_drop")]
    if detail_expr is not None:
        exprs.append(pl.when(hit).then(detail_expr).otherwise(pl.col("_detail")).alias("_detail"))
    return exprs
