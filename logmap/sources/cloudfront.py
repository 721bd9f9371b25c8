"""AWS CloudFront standard (access) logs: W3C headers, tab-separated fields, URL-encoded user agents.

Why a thin layer over ``logmap.sources.w3c``: the structure is W3C extended (``#Version``/``#Fields:`` headers,
``date``+``time`` in UTC, ``c-ip``, ``cs-method``, ``cs(Host)``, ``cs-uri-stem``, ``cs-uri-query``…) with tabs
between fields, which ``w3c`` already handles. What differs is encoding: CloudFront URL-encodes
``cs(User-Agent)`` and ``cs(Referer)`` and sometimes encodes them twice (``%2520``). Percent-decoding runs in
Python, so it runs once per *distinct* value and is joined back (docs/architecture.md), never per row. The
site's host is ``x-host-header`` (``cs(Host)`` is the distribution's domain). RTMP distribution logs
(``x-event``, ``x-sname``, ``c-user-agent``, the stream URL as ``cs-uri-stem``) go through the same parser: their
``x-cf-status`` ``OK`` reads as status 200, the only status such a log has.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import w3c
from logmap.sources.w3c import decode

__all__ = ["DECODED", "decode", "parse"]

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
DECODED = ("user_agent", "referrer")


def parse(lines: Frame, source: Source) -> Frame:
    """``w3c`` parsing with the user agent and referrer percent-decoded (once per distinct value)."""
    return w3c.parse(lines, source, decoded=DECODED)
