"""The `durations` section: time to the same visitor's next record, by event time, or a page view's engaged
time from its pings (`from: pings`).

A pure function of one visitor partition (all rows of a set of visitors), so it runs bucket by bucket in
bounded memory, or per partition on a distributed engine, with the same result. (A page view's pings can be
spread over any number of chunks, but they all belong to its visitor, so they meet in its bucket.)
"""

from __future__ import annotations

import polars as pl

from logmap.frame import MERGED_PING
from logmap.mapping.defaults import DURATION_METHODS
from logmap.mapping.model import Durations
from logmap.records.types import DURATION_TYPES
from logmap.transform.expressions import Scope, as_number, compile_template
from logmap.transform.rules import when_conditions

#: Columns a row carries to the record stage with `from: pings`: whether it is a ping, and its page view id.
PING, PAGE = "_ping", "_page"

#: Equal timestamps are ordered by file, then line. `_file_order` (when the pipeline sets it) ranks files by their
#: earliest event, so that across a rotation set (`access.log.2.gz`, `access.log.1`, `access.log`) an older
#: file's last line comes before a newer file's first line even within the same second; names would not.
ORDER = ["_visitor", "time", "_file_order", "_line"]


def order_columns(frame: pl.DataFrame) -> list[str]:
    return [c if c != "_file_order" or c in frame.columns else "_file" for c in ORDER]
#: Seconds per unit of a duration field (`durations.unit`).
UNITS = {"s": 1.0, "ms": 0.001, "us": 0.000001}


def from_field(spec: Durations) -> bool:
    """Whether durations come from a field of the input (an export's own engagement time)."""
    return spec.source not in DURATION_METHODS


def split_pings(frame: pl.DataFrame, spec: Durations, scope: Scope) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(rows for the rules, pings) of a chunk's live rows: with ``from: pings``, rows meeting ``pings.when`` skip
    the rules (they are no records) and go on to their visitor's bucket; every row gets ``_ping``."""
    if spec.pings is None:
        return frame, None
    flagged = frame.with_columns(when_conditions(spec.pings.when, scope, spec.pings.when_where).fill_null(False)
                                 .alias(PING))
    return flagged.filter(~pl.col(PING)), flagged.filter(pl.col(PING))


def page_columns(spec: Durations, scope: Scope) -> dict[str, pl.Expr]:
    """``_page``, the page view id of records and pings alike (``from: pings``)."""
    if spec.pings is None:
        return {}
    page = compile_template(spec.pings.page, scope, spec.pings.where).expr
    return {PAGE: page.cast(pl.String)}


def take_pings(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(records, pings) of a bucket; the pings marked dropped as ``merged:page_ping`` (each counted in the ledger:
    its page view's duration holds it)."""
    if PING not in rows.columns:
        return rows, None
    pings = rows.filter(pl.col(PING)).select("_file", "_line", "time", "_visitor", PAGE).with_columns(
        pl.lit(MERGED_PING).alias("_drop"), pl.lit(None, pl.String).alias("_detail"))
    return rows.filter(~pl.col(PING)), pings


def engaged_times(pings: pl.DataFrame, spec: Durations) -> pl.DataFrame:
    """Seconds of engaged time per visitor and page view, Snowplow's model (dbt-snowplow-web,
    ``snowplow_web_pv_engaged_time``): heartbeat x (distinct heartbeat windows of the pings' event times - 1)
    + min_visit, so that duplicate pings and pings of several tabs in one window count once."""
    assert spec.pings is not None
    heartbeat, min_visit = spec.pings.heartbeat_s, spec.pings.min_visit_s
    window = (pl.col("time").dt.epoch("ms") / (heartbeat * 1000)).floor()
    return (pings.filter(pl.col("_visitor").is_not_null() & pl.col(PAGE).is_not_null() & pl.col("time").is_not_null())
            .group_by("_visitor", PAGE)
            .agg(((window.n_unique() - 1) * heartbeat + min_visit).cast(pl.Float64).alias("_engaged")))


def field_durations(spec: Durations, scope: Scope, columns: list[str]) -> dict[str, pl.Expr]:
    """``r:duration`` from the field ``durations.from`` names, in seconds, for the types that carry one.

    Computed while the input's columns are still there (the per-visitor stage only keeps record columns). A
    duration the rule set itself wins; a missing or non-positive value means no duration; ``max`` caps it.
    """
    if not from_field(spec):
        return {}
    value = as_number(compile_template(spec.source, scope, spec.where), spec.source).expr * UNITS[spec.unit]
    value = pl.when(value > 0).then(pl.min_horizontal(value, pl.lit(spec.max_s)))
    typed = pl.when(pl.col("r:type").is_in(sorted(DURATION_TYPES))).then(value)
    own = pl.col("r:duration") if "r:duration" in columns else pl.lit(None, pl.Float64)
    return {"r:duration": pl.coalesce(own, typed)}


# A polars expression is an immutable value, so it is a safe default (B008).
def visitor_key(frame: pl.DataFrame, hashed: pl.Expr = pl.col("_visitor").hash(seed=0)) -> pl.Expr:  # noqa: B008
    """A sort key that groups each visitor's rows: ``hashed`` (a 64-bit hash of ``_visitor``) when no two
    visitors of ``frame`` share one (checked, so the result is exact), else the visitor string itself.

    Sorting 64-character ids costs twice as much as sorting their hashes, and the sort is most of this stage.
    """
    distinct = frame.select(pl.col("_visitor").n_unique().alias("v"), hashed.n_unique().alias("h")).row(0)
    return hashed if distinct[0] == distinct[1] else pl.col("_visitor")


def infer_durations(frame: pl.DataFrame, spec: Durations, *, in_time_order: bool = False,
                    pings: pl.DataFrame | None = None) -> pl.DataFrame:
    """Fill ``r:duration`` for the types that carry one; rows keep their order.

    ``pings`` (``from: pings``, from :func:`take_pings`): a record of a page view with pings gets its engaged time
    (:func:`engaged_times`, capped at ``max``); the others get the gap below.

    The gap to the visitor's next record (by event time, then file and line) becomes the duration unless it
    exceeds ``session_timeout`` (the session ended) or the record is the visitor's last; gaps above ``max``
    are capped. A duration the rule set itself is kept. Only the few columns the gaps need are put in visitor
    order; the result is scattered back, so the wide record columns are never reordered here.

    ``in_time_order``: the frame is already sorted by time, file order and line (nulls last), as the pipeline's
    output order is; a stable sort by visitor alone then gives the visitor order (4x cheaper than four keys).
    """
    if "r:duration" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("r:duration"))
    if spec.source == "none" or from_field(spec) or frame.height == 0:
        return frame.drop(PING, PAGE, strict=False)
    if pings is not None:  # a page view's engaged time first; its records without pings fall back to the gap
        engaged = frame.select(pl.col("_visitor"), pl.col(PAGE)).join(
            engaged_times(pings, spec), on=["_visitor", PAGE], how="left", maintain_order="left")["_engaged"]
        typed = pl.when(pl.col("r:type").is_in(sorted(DURATION_TYPES)) & engaged.is_not_null()).then(
            pl.min_horizontal(engaged, pl.lit(spec.max_s)))
        frame = frame.with_columns(pl.coalesce(pl.col("r:duration"), typed).alias("r:duration"))
    frame = frame.drop(PING, PAGE, strict=False)
    key = visitor_key(frame)
    if in_time_order:
        at = pl.arg_sort_by(key, nulls_last=True, maintain_order=True)
    else:
        at = pl.arg_sort_by([key, *order_columns(frame)[1:]], nulls_last=True)
    by_visitor = frame.select(at.alias("_at"), key.alias("_key"),
                              pl.col("_visitor").is_not_null().alias("_known"), "time", "r:type")
    by_visitor = by_visitor.select("_at", *(pl.col(c).gather(pl.col("_at")) for c in ("_key", "_known", "time",
                                                                                       "r:type")))
    same_visitor = (pl.col("_known") & (pl.col("_key") == pl.col("_key").shift(-1))).fill_null(False)
    gap = (pl.col("time").shift(-1) - pl.col("time")).dt.total_milliseconds() / 1000.0
    inferred = (
        pl.when(same_visitor & pl.col("r:type").is_in(sorted(DURATION_TYPES)) & (gap <= spec.session_timeout_s))
        .then(pl.min_horizontal(gap, pl.lit(spec.max_s)))
    )
    in_visitor_order = by_visitor.select("_at", inferred.alias("_gap"))
    in_row_order = in_visitor_order.sort("_at")["_gap"]
    return frame.with_columns(pl.coalesce(pl.col("r:duration"), in_row_order).alias("r:duration"))
