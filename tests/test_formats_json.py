"""JSON access logs: Caddy v2 (real fixture), nginx escape=json and Traefik (documented examples)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from logmap.mapping.loader import known_formats as loader_formats
from logmap.mapping.model import Source
from logmap.sources.accesslog import PLUGINS, parse
from logmap.sources.lines import lines_frame, read_lines

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
FIELDS = ("ip", "time", "method", "path", "query", "status", "bytes", "referrer", "user_agent")


def row(frame: pl.DataFrame, line: int) -> dict[str, Any]:
    return frame.filter(pl.col("_line") == line).row(0, named=True)


def fields(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[name] for name in FIELDS)


def test_caddy_fixture_fields_of_specific_lines() -> None:
    frame = parse(pl.concat(list(read_lines(str(LOGS / "caddy_json_lnav.jsonl")))), Source(format="caddy"))
    assert frame.height == 4 and frame["_drop"].null_count() == 4
    assert fields(row(frame, 1)) == (
        "10.10.10.117", datetime(2024, 5, 26, 11, 42, 52, 601000, tzinfo=UTC), "GET",
        "/gentoo/gentoo-distfiles/distfiles/9b/tl-hrlatex.source-2021.tar.xz", None, 200, 3768, None,
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)")
    last = row(frame, 4)
    assert fields(last) == (
        "240e:1:1::1234", datetime(2024, 5, 26, 14, 16, 3, 415000, tzinfo=UTC), "GET", "/res/browse.css", None,
        200, 1577, "https://mirrors.tnonline.net/gentoo/gentoo-portage/app-dicts/aspell-lt/",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/117.0.5938.60 "
        "Safari/537.36")
    assert (last["protocol"], last["vhost"], last["user"]) == ("HTTP/3.0", "mirrors.tnonline.net", None)


@pytest.mark.parametrize("name", ["caddy", "nginx_json", "traefik"])
def test_documented_examples(name: str) -> None:
    record = parse(lines_frame([PLUGINS[name][2]]), Source(format=name, site="https://shop.example.com")).row(
        0, named=True)
    assert record["_drop"] is None
    assert fields(record)[2:] == ("GET", "/cart", "a=1", 200, 2326, "https://shop.example.com/", "Mozilla/5.0")
    assert record["ip"] == "127.0.0.1" and record["url"] == "https://shop.example.com/cart?a=1"
    assert record["time"].replace(microsecond=0) == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert name in loader_formats()


def test_nginx_time_variants_and_bad_lines_are_malformed() -> None:
    lines = [
        '{"remote_addr":"1.2.3.4","time_local":"01/Mar/2024:11:00:00 +0100","request":"POST /a?x=%20 HTTP/1.1",'
        '"status":"302","body_bytes_sent":"-","http_referer":"","http_user_agent":"curl/8"}',
        '{"remote_addr":"1.2.3.4","msec":"1709287200.250","request_method":"GET","request_uri":"/b",'
        '"status":"200","body_bytes_sent":"10"}',
        "",
        "nginx: [warn] startup message",
        '{"remote_addr":"1.2.3.4","status":"200"}',
        '{"remote_addr":"1.2.3.4","time_iso8601":"yesterday","request_uri":"/c","status":"200"}',
        '1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5',
    ]
    frame = parse(lines_frame(lines), Source(format="nginx_json"))
    assert frame.height == len(lines)
    assert fields(row(frame, 1)) == ("1.2.3.4", datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "POST", "/a", "x=%20",
                                     302, None, None, "curl/8")
    assert fields(row(frame, 2))[:6] == ("1.2.3.4", datetime(2024, 3, 1, 10, 0, 0, 250000, tzinfo=UTC), "GET",
                                         "/b", None, 200)
    details = dict(zip(frame["_line"], frame["_detail"]))
    assert details[3] == "empty line"
    assert details[4] == details[7] == "line is not a JSON object"
    assert details[5] == "JSON object has no request target (uri)"
    assert details[6].startswith('timestamp "yesterday"')
    assert set(frame.filter(pl.col("_line") > 2)["_drop"]) == {"malformed"}
    assert row(frame, 7)["ip"] is None


def test_empty_and_lazy_frames_have_the_canonical_schema() -> None:
    example = lines_frame([PLUGINS["traefik"][2]])
    empty = parse(lines_frame([]), Source(format="traefik"))
    full = parse(example, Source(format="traefik"))
    assert empty.height == 0 and empty.schema == full.schema
    assert parse(example.lazy(), Source(format="traefik")).collect().equals(full)


def test_traefik_and_nginx_json_fixtures() -> None:
    traefik = parse(pl.concat(list(read_lines(str(LOGS / "traefik_doc_example.jsonl")))), Source(format="traefik"))
    assert fields(row(traefik, 1)) == (
        "192.168.1.10", datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=UTC), "GET", "/product/1956-trail-merino",
        "ref=home", 200, 7312, "https://shop.example.com/",
        "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0")
    assert fields(row(traefik, 2))[:7] == ("2001:db8::7", datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC), "POST",
                                           "/cart/add", "sku=1956&qty=2", 302, 0)
    assert row(traefik, 3)["_detail"] == "line is not a JSON object"
    nginx = parse(pl.concat(list(read_lines(str(LOGS / "nginx_json_doc_example.jsonl")))), Source(format="nginx_json"))
    assert fields(row(nginx, 1))[:8] == ("203.0.113.9", datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "GET", "/search",
                                         "q=red+shoe", 200, 5120, "https://shop.example.com/")
    assert row(nginx, 2)["user"] == "alice" and row(nginx, 2)["protocol"] == "HTTP/2.0"
    assert [row(nginx, n)["_detail"] for n in (3, 4)] == ["empty line", "line is not a JSON object"]
