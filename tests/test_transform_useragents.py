"""Bot verdicts: the device-only parse agrees with `user-agents`, and patterns judged per distinct user agent
agree with a row-by-row regex."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import user_agents

from logmap.sources.lines import read_lines
from logmap.transform.useragents import BotDetector, is_crawler

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


@pytest.fixture(scope="module")
def fixture_user_agents() -> list[str]:
    """Every distinct quoted user agent of the real NCSA logs in fixtures/logs (several hundred, some bots)."""
    found: set[str] = set()
    for path in sorted(LOGS.glob("*.log")):
        for frame in read_lines(str(path)):
            found.update(frame["_raw"].str.split('"').list.get(5, null_on_oob=True).drop_nulls().to_list())
    return sorted(found)


@pytest.fixture(scope="module")
def reference(fixture_user_agents) -> dict[str, bool]:
    """`user-agents`' verdict on each of them, parsed once for the two tests (a full parse is the slow part)."""
    return {ua: user_agents.parse(ua).is_bot for ua in fixture_user_agents}


def test_device_only_parse_agrees_with_user_agents(fixture_user_agents, reference):
    assert len(fixture_user_agents) > 300
    verdicts = {ua: is_crawler(ua) for ua in fixture_user_agents}
    assert verdicts == reference
    assert 20 < sum(verdicts.values()) < len(verdicts)  # both kinds are present


def test_patterns_per_distinct_value_agree_with_a_row_regex(fixture_user_agents, reference):
    patterns = ["(?i)uptime|monitor", "curl/", "^Mozilla/4"]
    rows = pl.Series("user_agent", [*fixture_user_agents, *fixture_user_agents[:50], None, "curl/8.1"])
    detector = BotDetector()
    got = detector.is_bot(rows, patterns=patterns)
    expected = (rows.str.contains("|".join(f"(?:{p})" for p in patterns)).fill_null(False)
                | pl.Series([ua is not None and (reference[ua] if ua in reference else user_agents.parse(ua).is_bot)
                             for ua in rows.to_list()]))
    assert got.to_list() == expected.to_list()
    assert detector.is_bot(rows, patterns=patterns).to_list() == got.to_list()  # from the cache
    only_patterns = detector.is_bot(rows, parser=False, patterns=patterns)  # a separate cache
    assert only_patterns.to_list() == rows.str.contains("|".join(f"(?:{p})" for p in patterns)).fill_null(False).to_list()
