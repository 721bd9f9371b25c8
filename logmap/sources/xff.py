"""``combined_xff``: a combined line with a trailing ``"X-Forwarded-For"`` field; the client IP taken from it.

Why: behind a load balancer or CDN, ``%h``/``$remote_addr`` is the proxy, and the visitor is the *first*
address of ``X-Forwarded-For``, which nginx/Apache setups commonly append as one more quoted field after the
user agent (``… "ua" "203.0.113.9, 10.0.0.1"``). The line is parsed exactly as ``combined`` (which ignores
trailing fields), then one columnar ``str.extract`` reads the first address of a trailing quoted IP list; where
there is none (``"-"``, an absent field), the logged ``ip`` stays. A header value that is not an IP address
is ignored rather than trusted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import accesslog

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

_ADDRESS = r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*[0-9A-Fa-f])"
#: The last quoted field of the line when it is a list of addresses: its first address.
TRAILING_XFF = r'" "(' + _ADDRESS + r')(?:, ?' + _ADDRESS + r')*"[ \t]*$'


def parse(lines: Frame, source: Source) -> Frame:
    """``combined`` parsing, then ``ip`` replaced by the first X-Forwarded-For address where one is logged."""
    out = accesslog.parse(lines, replace(source, format="combined"))
    alive = pl.col("_drop").is_null()
    forwarded = pl.when(alive).then(pl.col("_raw").str.extract(TRAILING_XFF, 1))
    return out.with_columns(pl.coalesce(forwarded, pl.col("ip")).alias("ip"))
