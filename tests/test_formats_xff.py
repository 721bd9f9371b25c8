"""combined_xff: combined with the client IP from a trailing X-Forwarded-For field."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from logmap.mapping.model import Source
from logmap.sources.accesslog import parse
from logmap.sources.lines import lines_frame

HEAD = '10.0.0.1 - - [01/Mar/2024:10:00:00 +0000] "GET /cart?a=1 HTTP/1.1" 200 512 "https://r/" "Mozilla/5.0 (X)"'


def test_client_ip_from_x_forwarded_for_else_remote_addr() -> None:
    lines = [HEAD + ' "203.0.113.9, 10.0.0.1"', HEAD + ' "-"', HEAD, HEAD + ' "2001:db8::7" 0.123',
             HEAD + ' "not-an-ip"', "garbage"]
    frame = parse(lines_frame(lines), Source(format="combined_xff"))
    assert frame["ip"].to_list() == ["203.0.113.9", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.1", None]
    first = frame.row(0, named=True)
    assert (first["time"], first["method"], first["path"], first["query"], first["status"], first["bytes"],
            first["referrer"], first["user_agent"]) == (datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "GET", "/cart",
                                                        "a=1", 200, 512, "https://r/", "Mozilla/5.0 (X)")
    assert frame.filter(pl.col("_drop").is_not_null())["_line"].to_list() == [6]


def test_ipv6_forwarded_address() -> None:
    frame = parse(lines_frame([HEAD + ' "2001:db8::7"']), Source(format="combined_xff"))
    assert frame["ip"].to_list() == ["2001:db8::7"]
