"""User-agent classification, once per distinct user agent.

`user-agents` costs about half a millisecond per string, so it never runs per row: distinct values are parsed
once (and remembered across chunks of the same run) and joined back.
"""

from __future__ import annotations

import polars as pl
import user_agents


class BotDetector:
    """Remembers the verdict for every user agent it has seen."""

    def __init__(self) -> None:
        self._known: dict[str, bool] = {}

    def is_bot(self, series: pl.Series) -> pl.Series:
        new = [ua for ua in series.drop_nulls().unique().to_list() if ua not in self._known]
        for ua in new:
            self._known[ua] = bool(user_agents.parse(ua).is_bot)
        distinct = series.drop_nulls().unique()
        verdicts = pl.Series([self._known[ua] for ua in distinct.to_list()], dtype=pl.Boolean)
        return series.replace_strict(distinct, verdicts, default=False, return_dtype=pl.Boolean)

    def expr(self, column: str = "user_agent") -> pl.Expr:
        return pl.col(column).map_batches(self.is_bot, return_dtype=pl.Boolean, is_elementwise=True)
