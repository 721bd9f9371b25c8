"""User-agent classification, once per distinct user agent.

A user agent is a bot when any of these says so, in this order (the cheap columnar ones first):

* the maintained list of the ``crawler-user-agents`` package (MIT; 1,500 regexes of crawlers, monitors, HTTP
  libraries, scanners and headless browsers, each with real example strings), plus ``EXTRA_PATTERNS``: clients
  seen in real logs that the list misses;
* the mapping's own ``bot_patterns``;
* ua-parser's verdict (``device.family == 'Spider'``), which is what ``user_agents.parse(ua).is_bot`` says.

Parsing a user agent costs about half a millisecond, so it never runs per row: distinct values are judged once
(and remembered across chunks, and across the runs of a process) and joined back; ua-parser only sees the values
no regex flagged.
The regexes, too, run on the distinct values only: a case-sensitive alternation of 1,500 patterns over every
row would cost more than the rest of the filter.

``user_agents.parse(ua).is_bot`` is ``device.family == 'Spider'``, and its device comes from ua-parser's
``ParseDevice``; calling that alone skips the browser and OS parses (2x faster, the same verdict: see
tests/test_transform_useragents.py).

Nothing here is imported or compiled until a run judges its first user agent: ``logmap --help`` and runs
without a user agent never load ua-parser's regexes or the list's JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache

import polars as pl

from logmap.frame import any_match

#: Non-browser clients found in the real logs under fixtures/logs that crawler-user-agents 1.67.0 does not
#: list (its ``zgrab``, ``Expanse``, ``CensysInspect``, ``^curl``, ``[wW]get``, ``python-requests``,
#: ``Go-http-client``, ``HeadlessChrome``, ``Applebot`` are there already).
EXTRA_PATTERNS: tuple[str, ...] = (
    r"l9tcpid",                   # LeakIX scanner
    r"^Debian APT-HTTP/",         # package managers fetching from a mirror
    r"^urlgrabber/",
    r"^Java/\d",                  # the JDK's default HTTP client
    r"^Ruby$",
    r"^PycURL/",
    r"^Dalvik/.*\bokhttp",
    r"\bSiteMonitor\b",           # hosting providers' uptime checks (DreamHost SiteMonitor)
    r"Spinn3r",                   # listed as 'spinn3r', but the real string says 'aggregator:Spinn3r'
    r" slurp$",                   # Yahoo Slurp appended to a browser string
)
#: Entries of the list that flag people, left out (None) or narrowed; found by the labelled corpus test
#: (tests/test_bot_corpus.py). Each matched real browsers or in-app browsers.
LIST_CORRECTIONS: dict[str, str | None] = {
    r"AP3A\.240617\.008": None,   # an Android build id: its example is an Instagram in-app browser on a phone
    r"MetaIAB Facebook": None,     # the marker of Facebook's in-app browser (people reading a link in the app)
    r"008\/": r"\b008/",           # the 008 crawler, but unanchored it matched Opera Mini's "Opera Mini/4.4.39008/37"
}


@cache
def maintained_patterns() -> tuple[str, ...]:
    """The crawler-user-agents patterns plus ``EXTRA_PATTERNS`` (loaded on first use)."""
    from crawleruseragents import CRAWLER_USER_AGENTS_DATA

    listed = (LIST_CORRECTIONS.get(entry["pattern"], entry["pattern"]) for entry in CRAWLER_USER_AGENTS_DATA)
    return tuple(pattern for pattern in listed if pattern) + EXTRA_PATTERNS


@cache
def maintained_matchers() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``maintained_patterns()`` as (literal strings, regexes). 1,467 of the 1,512 patterns are plain text
    (``Googlebot``, ``python-requests``, ``CensysInspect\\/``): matched all at once with Aho-Corasick
    (``str.contains_any``) they cost 40 ms per 3,000 user agents, where one regex alternation of all the patterns
    is too big for the regex engine's fast paths and costs 4 s."""
    literals: list[str] = []
    regexes: list[str] = []
    for pattern in maintained_patterns():
        plain = not re.search(r"(?<!\\)[][^$.*+?(){}|]|\\[A-Za-z0-9]", pattern)
        (literals if plain else regexes).append(re.sub(r"\\(.)", r"\1", pattern) if plain else pattern)
    return tuple(literals), tuple(regexes)


#: ua-parser verdicts remembered by the process, across runs: a test suite, ``logmap test``'s cases and every
#: small run of one process meet the same user agents again, and each parse costs half a millisecond (ua-parser's
#: own cache holds 200 and is emptied when full). A pure function of the string, so bounded by plain LRU.
VERDICTS_KEPT = 50_000


@lru_cache(maxsize=VERDICTS_KEPT)
def is_crawler(user_agent: str) -> bool:
    """What ``user_agents.parse(user_agent).is_bot`` says."""
    from ua_parser import user_agent_parser

    return user_agent_parser.ParseDevice(user_agent)["family"] == "Spider"


def judge(values: list[str], *, parser: bool = True, maintained: bool = False,
          patterns: Sequence[str] = ()) -> list[bool]:
    """The verdict for each of ``values`` (distinct, non-null user agents)."""
    literals, regexes = maintained_matchers() if maintained else ((), ())
    regexes = (*regexes, *patterns)
    agent = pl.col("ua")
    tests = ([agent.str.contains_any(list(literals))] if literals else []) + (
        [any_match(agent, regexes)] if regexes else [])
    matched = (pl.DataFrame({"ua": values}, schema={"ua": pl.String}).select(pl.any_horizontal(tests))
               .to_series().to_list() if tests else [False] * len(values))
    return [bool(found) or (parser and is_crawler(ua)) for ua, found in zip(values, matched)]


#: Verdicts by filter configuration, shared by the process's detectors (each still remembers its whole run): the
#: runs of one process meet the same user agents again, and judging even a few costs ~3 ms (the list's matchers
#: are built per batch). Bounded: emptied when full.
_VERDICTS: dict[tuple[bool, bool, tuple[str, ...]], dict[str, bool]] = {}


def _share(configuration: tuple[bool, bool, tuple[str, ...]], judged: dict[str, bool]) -> None:
    # list(): runs in other threads may add a configuration meanwhile (a dict must not grow while iterated)
    if sum(len(verdicts) for verdicts in list(_VERDICTS.values())) + len(judged) > VERDICTS_KEPT:
        _VERDICTS.clear()
    if len(judged) <= VERDICTS_KEPT:
        _VERDICTS.setdefault(configuration, {}).update(judged)


class BotDetector:
    """Remembers the verdict for every user agent it has seen, per filter configuration, and which input files
    record user agents at all (so that an empty one there is telling, and a log without the field is not)."""

    def __init__(self) -> None:
        self._known: dict[tuple[bool, bool, tuple[str, ...]], dict[str, bool]] = {}
        self._files_with_agents: set[str] = set()

    def is_bot(self, series: pl.Series, *, parser: bool = True, maintained: bool = False,
               patterns: Sequence[str] = ()) -> pl.Series:
        """True where the user agent is a crawler (``parser``), is on the maintained list (``maintained``) or
        matches one of ``patterns``; False for null."""
        configuration = (parser, maintained, tuple(patterns))
        known = self._known.setdefault(configuration, {})
        distinct = series.drop_nulls().unique()
        values = distinct.to_list()
        new = [ua for ua in values if ua not in known]
        if new:
            shared = _VERDICTS.get(configuration, {})
            unseen = [ua for ua in new if ua not in shared]
            judged = dict(zip(unseen, judge(unseen, parser=parser, maintained=maintained, patterns=patterns))
                          ) if unseen else {}
            known.update((ua, judged[ua] if ua in judged else shared[ua]) for ua in new)
            _share(configuration, judged)
        # Membership in the (few) bots found: one small hash table, rather than a verdict looked up per value.
        bots = pl.Series([ua for ua in values if known[ua]], dtype=pl.String)
        return series.is_in(bots.implode()).fill_null(False)

    def expr(self, column: str | pl.Expr = "user_agent", *, parser: bool = True, maintained: bool = False,
             patterns: Sequence[str] = ()) -> pl.Expr:
        """:meth:`is_bot` of a column (or an expression giving the user agents), once per distinct value."""
        agents = pl.col(column) if isinstance(column, str) else column
        return agents.map_batches(
            lambda s: self.is_bot(s, parser=parser, maintained=maintained, patterns=patterns),
            return_dtype=pl.Boolean, is_elementwise=True)

    def empty_agent(self, frame: pl.DataFrame, column: str = "user_agent") -> pl.Expr:
        """True where the user agent is empty (null, blank or ``-``) in a file whose lines record user agents:
        a file where some line so far had one. A log without the field (common format) is never affected."""
        agent = pl.col(column)
        empty = agent.is_null() | agent.str.strip_chars().is_in(["", "-"])
        if "_file" not in frame.columns:
            return empty & ~empty.all()
        seen = frame.select(pl.col("_file").filter(~empty.fill_null(True)).unique()).to_series().to_list()
        self._files_with_agents.update(str(f) for f in seen)
        return empty & pl.col("_file").cast(pl.String).is_in(sorted(self._files_with_agents))
