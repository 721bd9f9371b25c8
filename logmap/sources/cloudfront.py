"""AWS CloudFront standard (access) logs: W3C headers, tab-separated fields, URL-encoded user agents.

Why a thin layer over ``logmap.sources.w3c``: the structure is W3C extended (``#Version``/``#Fields:`` headers,
``date``+``time`` in UTC, ``c-ip``, ``cs-method``, ``cs(Host)``, ``cs-uri-stem``, ``cs-uri-query``…) with tabs
between fields, which ``w3c`` already handles. What differs is encoding: CloudFront URL-encodes
``cs(User-Agent)`` and ``cs(Referer)`` and sometimes encodes them twice (``%2520``). Percent-decoding runs in
Python, so it runs once per *distinct* value and is joined back (docs/architecture.md), never per row.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import unquote

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import w3c

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
DECODED = ("user_agent", "referrer")


def decode(value: str) -> str:
    """Percent-decode, a second time when the first pass still leaves an escape (double encoding)."""
    once = unquote(value)
    return unquote(once) if once != value and "%" in once else once


def parse(lines: Frame, source: Source) -> Frame:
    """``w3c`` parsing, then the user agent and referrer percent-decoded (once per distinct value)."""
    frame = w3c.parse(lines.collect() if isinstance(lines, pl.LazyFrame) else lines, source)
    columns = []
    for name in DECODED:
        distinct = [v for v in frame.get_column(name).unique().to_list() if v is not None and "%" in v]
        mapping = {v: decode(v) for v in distinct}
        columns.append(pl.col(name).replace(mapping) if mapping else pl.col(name))
    out = frame.with_columns(*columns)
    return out.lazy() if isinstance(lines, pl.LazyFrame) else out
