"""The frame contract every stage keeps: rows are marked, never removed.

A source yields one row per input line (or export row) with its provenance; each later stage may mark a row
dropped by setting ``_drop`` (a reason code) and ``_detail`` (why, for a person). The runner then moves marked
rows to the ledger, so the ledger balances by construction.
"""

from __future__ import annotations

import polars as pl

#: The provenance columns of an input row: where it came from, and whether (and why) it was dropped.
PROVENANCE: dict[str, pl.DataType] = {"_file": pl.String(), "_line": pl.UInt64(), "_drop": pl.String(),
                                      "_detail": pl.String()}
#: The columns of a frame of input lines, before parsing (``_raw`` is kept so rejects can show the line).
LINE_SCHEMA: dict[str, pl.DataType] = {"_file": pl.String(), "_line": pl.UInt64(), "_raw": pl.String()}

#: A row no stage has dropped.
ALIVE = pl.col("_drop").is_null()

# Reason codes (the ledger's keys). Prefixed reasons carry the column or field after the colon.
MALFORMED = "malformed"
UNMATCHED = "unmatched"
DUPLICATE = "duplicate"
FILTERED = "filtered:"
MISSING = "missing:"
INVALID = "invalid:"
#: A page ping (`durations.from: pings`): no record of its own, its page view's duration counts it.
MERGED_PING = "merged:page_ping"

#: Reasons whose rows are written to rejects.ndjson (filtered and unmatched rows are only counted).
REJECTED_REASONS = (MALFORMED, INVALID)
REJECTED = (pl.col("_drop") == MALFORMED) | pl.col("_drop").str.starts_with(INVALID)


def split_dropped(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(alive rows, dropped rows) of ``frame``."""
    return frame.filter(ALIVE), frame.filter(~ALIVE)


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
