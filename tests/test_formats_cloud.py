"""CloudFront, AWS ALB / classic ELB and HAProxy logs: fields of specific lines of the documented examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from logmap.mapping.model import Source
from logmap.sources.accesslog import parse
from logmap.sources.cloudfront import decode
from logmap.sources.detect import best
from logmap.sources.lines import read_lines

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
FIELDS = ("ip", "time", "method", "path", "query", "status", "bytes", "referrer", "user_agent")


def parsed(name: str, fmt: str, **kwargs: Any) -> pl.DataFrame:
    return parse(pl.concat(list(read_lines(str(LOGS / name)))), Source(format=fmt, **kwargs))


def fields(frame: pl.DataFrame, line: int) -> tuple[Any, ...]:
    record = frame.filter(pl.col("_line") == line).row(0, named=True)
    return tuple(record[f] for f in FIELDS)


def test_cloudfront() -> None:
    frame = parsed("cloudfront_aws_doc_example.log", "cloudfront")
    assert frame["_detail"].to_list()[:2] == ["header line", "header line"] and frame["_drop"].null_count() == 3
    assert fields(frame, 3) == (
        "192.0.2.100", datetime(2019, 12, 4, 21, 2, 31, tzinfo=UTC), "GET", "/index.html", None, 200, 392, None,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/78.0.3904.108 Safari/537.36")
    assert fields(frame, 5) == (  # double-encoded user agent, query kept as logged
        "192.0.2.200", datetime(2019, 12, 4, 21, 2, 32, tzinfo=UTC), "GET", "/search", "q=red%20shoe&page=2", 200,
        389, "https://www.example.com/", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15)")
    row = frame.filter(pl.col("_line") == 5).row(0, named=True)
    assert (row["vhost"], row["protocol"], row["time_taken"]) == ("d111111abcdef8.cloudfront.net", "HTTP/2.0",
                                                                  "0.112")
    assert decode("a%2520b") == "a b" and decode("a%20b") == "a b" and decode("100%") == "100%"


def test_alb() -> None:
    frame = parsed("alb_aws_doc_example.log", "alb", site="https://ignored.example")
    assert frame["_drop"].null_count() == 3
    assert fields(frame, 1) == ("192.168.131.39", datetime(2018, 7, 2, 22, 23, 0, 186000, tzinfo=UTC), "GET", "/",
                                None, 200, 366, None, "curl/7.46.0")
    assert fields(frame, 2)[3:7] == ("/cart", "id=42", 200, 57)
    assert frame.filter(pl.col("_line") == 2)["url"].item() == "https://www.example.com:443/cart?id=42"
    assert fields(frame, 3)[5:7] == (502, 366)


def test_classic_elb() -> None:
    frame = parsed("elb_aws_doc_example.log", "elb")
    assert fields(frame, 1) == ("192.168.131.39", datetime(2015, 5, 13, 23, 39, 43, 945000, tzinfo=UTC), "GET",
                                "/", None, 200, 29, None, "curl/7.38.0")
    tcp = frame.filter(pl.col("_line") == 2).row(0, named=True)
    assert tcp["_drop"] == "malformed" and tcp["_detail"].startswith('request line "- - - "')
    assert fields(frame, 3)[2:7] == ("GET", "/", None, None, 502)


def test_haproxy_with_and_without_syslog_prefix() -> None:
    frame = parsed("haproxy_doc_example.log", "haproxy", timezone="Europe/Paris")
    assert fields(frame, 1) == ("10.0.1.2", datetime(2009, 2, 6, 11, 14, 14, 655000, tzinfo=UTC), "GET",
                                "/index.html", None, 200, 2750, None, None)
    assert fields(frame, 2)[2:7] == ("POST", "/checkout", "step=2", 302, 180)
    assert fields(frame, 3)[3:7] == ("/img/logo.png", None, 200, 8192)
    last = frame.filter(pl.col("_line") == 4).row(0, named=True)
    assert (last["_drop"], last["_detail"]) == ("malformed", "line does not match format 'haproxy'")


@pytest.mark.parametrize(("name", "fmt"), [("cloudfront_aws_doc_example.log", "cloudfront"),
                                           ("alb_aws_doc_example.log", "alb"), ("elb_aws_doc_example.log", "elb"),
                                           ("haproxy_doc_example.log", "haproxy")])
def test_detection(name: str, fmt: str) -> None:
    assert best(next(iter(read_lines(str(LOGS / name)))), name).name == fmt
