"""User-agent classification, once per distinct user agent.

Parsing a user agent costs about half a millisecond, so it never runs per row: distinct values are judged once
(and remembered across chunks of the same run) and joined back. The mapping's own ``bot_patterns`` are judged
on the same distinct values, not on every row: a case-insensitive regex over every row's user agent cost more
than the rest of the filter.

``user_agents.parse(ua).is_bot`` is ``device.family == 'Spider'``, and its device comes from ua-parser's
``ParseDevice``; calling that alone skips the browser and OS parses (2x faster, the same verdict: see
tests/test_transform_useragents.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from ua_parser import user_agent_parser

from logmap.frame import any_match


def is_crawler(user_agent: str) -> bool:
    """What ``user_agents.parse(user_agent).is_bot`` says."""
    return user_agent_parser.ParseDevice(user_agent)["family"] == "Spider"


class BotDetector:
    """Remembers the verdict for every user agent it has seen, per filter configuration."""

    def __init__(self) -> None:
        self._known: dict[tuple[bool, tuple[str, ...]], dict[str, bool]] = {}

    def is_bot(self, series: pl.Series, *, parser: bool = True, patterns: Sequence[str] = ()) -> pl.Series:
        """True where the user agent is a crawler (``parser``) or matches one of ``patterns``; False for null."""
        known = self._known.setdefault((parser, tuple(patterns)), {})
        distinct = series.drop_nulls().unique()
        values = distinct.to_list()
        new = [ua for ua in values if ua not in known]
        if new:
            matched = (pl.DataFrame({"ua": new}, schema={"ua": pl.String})
                       .select(any_match(pl.col("ua"), tuple(patterns))).to_series().to_list()
                       if patterns else [False] * len(new))
            for ua, by_pattern in zip(new, matched):
                known[ua] = bool(by_pattern) or (parser and is_crawler(ua))
        verdicts = pl.Series([known[ua] for ua in values], dtype=pl.Boolean)
        return series.replace_strict(distinct, verdicts, default=False, return_dtype=pl.Boolean)

    def expr(self, column: str = "user_agent", *, parser: bool = True, patterns: Sequence[str] = ()) -> pl.Expr:
        return pl.col(column).map_batches(lambda s: self.is_bot(s, parser=parser, patterns=patterns),
                                          return_dtype=pl.Boolean, is_elementwise=True)
