"""The `durations` section: time to the same visitor's next record, by event time.

A pure function of one visitor partition (all rows of a set of visitors), so it runs bucket by bucket in
bounded memory, or per partition on a distributed engine, with the same result.
"""

from __future__ import annotations

import polars as pl

from logmap.mapping.model import Durations
from logmap.records.types import DURATION_TYPES

ORDER = ["_visitor", "time", "_file", "_line"]


def infer_durations(frame: pl.DataFrame, spec: Durations) -> pl.DataFrame:
    """Sort by visitor and event time and fill ``r:duration`` for the types that carry one.

    The gap to the visitor's next record becomes the duration unless it exceeds ``session_timeout`` (the
    session ended) or the record is the visitor's last; gaps above ``max`` are capped. A duration the rule set
    itself is kept.
    """
    frame = frame.sort(ORDER, nulls_last=True)
    if "r:duration" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("r:duration"))
    if spec.source == "none":
        return frame
    same_visitor = (pl.col("_visitor") == pl.col("_visitor").shift(-1)).fill_null(False)
    gap = (pl.col("time").shift(-1) - pl.col("time")).dt.total_milliseconds() / 1000.0
    inferred = (
        pl.when(same_visitor & pl.col("r:type").is_in(sorted(DURATION_TYPES)) & (gap <= spec.session_timeout_s))
        .then(pl.min_horizontal(gap, pl.lit(spec.max_s)))
    )
    return frame.with_columns(pl.coalesce(pl.col("r:duration"), inferred).alias("r:duration"))
