"""The default bot filter on a labelled corpus of real user agents (fixtures/useragents, sources in SOURCES.md):
no browser, in-app browser or app is flagged, and every crawler, monitor, script and scanner is."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from logmap.mapping.model import Filter
from logmap.transform.filter import apply_filter
from logmap.transform.useragents import BotDetector

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "useragents" / "labelled.tsv"
PEOPLE = {"browser", "in-app", "app"}
BOTS = {"crawler", "monitoring", "script", "scanner"}


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def verdicts(corpus) -> dict[str, bool]:
    agents = pl.Series("user_agent", [row["user_agent"] for row in corpus])
    flagged = BotDetector().is_bot(agents, parser=True, maintained=True)
    return dict(zip(agents.to_list(), flagged.to_list()))


def test_the_corpus_is_large_and_covers_every_kind(corpus) -> None:
    labels = [row["label"] for row in corpus]
    assert len(corpus) >= 1000
    assert set(labels) == PEOPLE | BOTS
    assert all(labels.count(label) >= 50 for label in PEOPLE | BOTS)
    agents = " ".join(row["user_agent"] for row in corpus)
    for name in ("Applebot", "curl/", "Wget/", "python-requests/", "Go-http-client/", "zgrab", "Expanse",
                 "CensysInspect", "l9tcpid", "HeadlessChrome", "FBAN/", "Instagram", "UptimeRobot"):
        assert name in agents, name


def test_no_person_is_flagged(corpus, verdicts) -> None:
    flagged = [(row["label"], row["user_agent"]) for row in corpus
               if row["label"] in PEOPLE and verdicts[row["user_agent"]]]
    assert flagged == []


def test_every_crawler_and_tool_is_flagged(corpus, verdicts) -> None:
    missed = [(row["label"], row["user_agent"]) for row in corpus
              if row["label"] in BOTS and not verdicts[row["user_agent"]]]
    assert missed == []


def test_an_empty_user_agent_is_a_bot_only_where_the_log_records_user_agents() -> None:
    frame = pl.DataFrame({
        "_file": ["a.log"] * 4 + ["common.log"] * 2,
        "_drop": [None] * 6,
        "user_agent": ["Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", None, " ", "-",
                       None, None],
    }, schema_overrides={"_drop": pl.String})
    dropped = apply_filter(frame, Filter())["_drop"].to_list()
    assert dropped == [None, "filtered:bot", "filtered:bot", "filtered:bot", None, None]
    kept = apply_filter(frame, Filter(exclude_empty_user_agents=False))["_drop"].to_list()
    assert kept == [None] * 6
    assert apply_filter(frame, Filter(exclude_bots=False))["_drop"].to_list() == [None] * 6


def test_the_lists_load_only_when_a_user_agent_is_judged() -> None:
    import subprocess
    import sys

    code = ("import sys, logmap.cli, logmap.transform.filter; "
            "print(sorted(m for m in ('ua_parser', 'crawleruseragents', 'user_agents') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plain_text_patterns_matched_at_once_agree_with_the_list_as_regexes(corpus) -> None:
    from logmap.frame import any_match
    from logmap.transform.useragents import judge, maintained_patterns

    agents = [row["user_agent"] for row in corpus]
    reference = pl.DataFrame({"ua": agents}).select(any_match(pl.col("ua"), maintained_patterns())).to_series()
    assert judge(agents, parser=False, maintained=True) == reference.to_list()


def test_each_source_of_verdicts_alone_judges_every_value(corpus) -> None:
    from logmap.transform.useragents import is_crawler

    agents = pl.Series("user_agent", [row["user_agent"] for row in corpus[:300]] + [None])
    detector = BotDetector()
    parser_only = detector.is_bot(agents, parser=True).to_list()
    assert parser_only == [ua is not None and is_crawler(ua) for ua in agents.to_list()]
    assert detector.is_bot(agents, parser=False).to_list() == [False] * agents.len()
    listed = detector.is_bot(agents, parser=False, maintained=True).to_list()
    assert len(listed) == agents.len() and listed[-1] is False


def test_empty_user_agents_are_bots_by_default_in_access_logs_only() -> None:
    from logmap.sources import load_mapping_text

    def loaded(source: str) -> Filter:
        text = f"logmap: 1\nsource: {source}\nrules:\n  - {{name: any, type: home_page_view}}\n"
        return load_mapping_text(text, "m.yaml").filter

    assert loaded("{format: combined}").exclude_empty_user_agents is True
    export = "{format: ndjson, options: {time: ts, user_agent: '{ua}'}}"
    assert loaded(export).exclude_empty_user_agents is False
