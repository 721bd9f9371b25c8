"""Issue #13's done-when matrix: with ``format: auto`` and one catch-all mapping, a log in each format is detected
and parsed with the right UTC time, path, query, status (and every other canonical field), plus the parsing
features that matrix relies on: runs of spaces, quoted W3C values, ``source.fields``, ``source.encoding``,
``source.prefix``, HAProxy captures, detection's specificity and prefix proposals.

Fixtures under ``fixtures/logs/formats/`` are written from each vendor's documented example (sources in
``fixtures/logs/SOURCES.md``).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from logmap.conversion import convert
from logmap.mapping.model import Source
from logmap.sources import load_mapping_text
from logmap.sources.accesslog import parse
from logmap.sources.detect import best
from logmap.sources.lines import read_lines

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
FORMATS = LOGS / "formats"

pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MOZ = "Mozilla/5.0 (X11; Linux x86_64)"
#: fixture → (detected format, line number, expected canonical fields of that line). ``None`` = absent.
MATRIX: dict[str, tuple[str, int, dict[str, object]]] = {
    "formats/common.log": ("common", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="127.0.0.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer=None, user_agent=None, vhost=None)),
    "formats/common_vhost.log": ("common_vhost", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="127.0.0.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer=None, user_agent=None, vhost="www.example.com")),
    "formats/common_vhost_port.log": ("common_vhost", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="127.0.0.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer=None, user_agent=None, vhost="www.example.com")),
    "formats/combined.log": ("combined", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="127.0.0.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer="http://www.example.com/start.html",
        user_agent="Mozilla/4.08 [en] (Win98; I ;Nav)", vhost=None)),
    "formats/combined_trailing.log": ("combined", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="192.0.2.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer="http://www.example.com/start.html", user_agent=MOZ, vhost=None)),
    "formats/vhost_combined_noport.log": ("vhost_combined", 2, dict(
        time=utc("2000-10-10 20:55:37"), ip="192.0.2.1", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=2326, referrer="http://www.example.com/start.html", user_agent=MOZ,
        vhost="www.example.com")),
    "formats/s3.log": ("s3", 1, dict(
        time=utc("2019-02-06 00:00:38"), ip="192.0.2.3", method="GET", path="/amzn-s3-demo-bucket1",
        query="versioning", status=200, bytes=113, referrer=None, user_agent="S3Console/0.4",
        vhost="amzn-s3-demo-bucket1")),
    "formats/icecast2.log": ("icecast2", 1, dict(
        time=utc("2012-02-10 21:42:07"), ip="192.0.2.10", method="GET", path="/stream.ogg", query="id=7",
        status=200, bytes=3612, referrer="http://radio.example.com/listen", user_agent="VLC/3.0.18 LibVLC/3.0.18",
        vhost=None)),
    "formats/shoutcast.log": ("shoutcast", 5, dict(
        time=utc("2024-03-01 10:00:05"), ip="192.0.2.21", method=None, path="/stream",
        query="title=Morning%20Show", status=200, bytes=65580, referrer=None,
        user_agent="NSPlayer/10.0.0.3702 WMFSDK/10.0", vhost=None)),
    "elb_aws_doc_example.log": ("elb", 1, dict(
        time=datetime(2015, 5, 13, 23, 39, 43, 945000, tzinfo=UTC), ip="192.168.131.39", method="GET",
        path="/", query=None, status=200, bytes=29, referrer=None, user_agent="curl/7.38.0",
        vhost="www.example.com:80")),
    "alb_aws_doc_example.log": ("alb", 2, dict(
        time=datetime(2018, 7, 2, 22, 23, 0, 186000, tzinfo=UTC), ip="192.168.131.39", method="GET",
        path="/cart", query="id=42", status=200, bytes=57, referrer=None, user_agent="Mozilla/5.0 (Windows NT 10.0)",
        vhost="www.example.com:443")),
    "cloudfront_aws_doc_example.log": ("cloudfront", 5, dict(
        time=utc("2019-12-04 21:02:32"), ip="192.0.2.200", method="GET", path="/search",
        query="q=red%20shoe&page=2", status=200, bytes=389, referrer="https://www.example.com/",
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15)", vhost="d111111abcdef8.cloudfront.net")),
    "formats/cloudfront_host.log": ("cloudfront", 4, dict(
        time=utc("2019-12-04 21:02:32"), ip="192.0.2.200", method="GET", path="/search",
        query="q=red%20shoe&page=2", status=200, bytes=389, referrer="https://www.example.com/",
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15)", vhost="www.example.com")),
    "formats/cloudfront_rtmp.log": ("cloudfront", 4, dict(
        time=utc("2010-03-12 23:51:21"), ip="192.0.2.222", method=None, path="/cfx/st", query="key=value",
        status=200, bytes=3914, referrer="http://player.example.com/player.swf", user_agent="LNX 10,0,32,18",
        vhost=None)),
    "formats/iis_w3c.log": ("w3c", 6, dict(
        time=utc("2002-05-24 20:18:02"), ip="172.224.24.114", method="GET", path="/search.aspx", query="q=red+shoe",
        status=200, bytes=7930, referrer="http://64.224.24.114/Default.htm",
        user_agent="Mozilla/4.0 (compatible; MSIE 5.01; Windows 2000 Server)", vhost=None)),
    "iis85_lnav_w3c_big.log": ("w3c", 5, None),
    "formats/iis_advanced.log": ("w3c", 8, dict(
        time=datetime(2024, 3, 1, 10, 0, 0, 363000, tzinfo=UTC), ip="192.0.2.31", method="GET",
        path="/products/blue-shoe", query=None, status=200, bytes=None,
        referrer="https://www.example.com/search?q=shoe",
        user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/122.0 Mobile Safari/537.36", vhost="www.example.com")),
    "formats/netscaler_w3c.log": ("w3c", 6, dict(
        time=utc("2024-03-01 10:00:03"), ip="192.0.2.41", method="GET", path="/search.html", query="q=red",
        status=200, bytes=8120, referrer="http://www.example.com/index.html",
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64)", vhost=None)),
    "formats/incapsula.log": ("incapsula", 5, dict(
        time=utc("2024-03-01 10:04:35"), ip="192.0.2.51", method="GET", path="/products/blue-shoe",
        query="color=blue", status=200, bytes=5120, referrer="https://www.example.com/",
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/122.0 Safari/537.36", vhost="www.example.com")),
    "haproxy_doc_example.log": ("haproxy", 2, dict(  # without the syslog prefix
        time=datetime(2009, 2, 6, 12, 14, 15, 2000, tzinfo=UTC), ip="10.0.1.2", method="POST",
        path="/checkout", query="step=2", status=302, bytes=180, referrer=None, user_agent=None, vhost=None)),
    "formats/haproxy_captures.log": ("haproxy", 1, dict(  # with the syslog prefix and captured headers
        time=datetime(2009, 2, 6, 12, 40, 15, 443000, tzinfo=UTC), ip="10.0.1.2", method="GET",
        path="/search", query="q=red", status=200, bytes=2750, referrer="http://www.example.com/start",
        user_agent=MOZ, vhost="www.example.com")),
    "nginx_json_doc_example.jsonl": ("nginx_json", 1, dict(
        time=utc("2024-03-01 10:00:00"), ip="203.0.113.9", method="GET", path="/search", query="q=red+shoe",
        status=200, bytes=5120, referrer="https://shop.example.com/", vhost=None)),
    "formats/nginx_json_matomo.jsonl": ("nginx_json", 1, dict(
        time=utc("2024-03-01 09:00:00"), ip="192.0.2.61", method=None, path="/search", query="q=red+shoe",
        status=200, bytes=5120, referrer="https://www.example.com/", user_agent=MOZ, vhost="www.example.com")),
    "traefik_doc_example.jsonl": ("traefik", 2, dict(
        time=utc("2024-03-01 10:00:05"), ip="2001:db8::7", method="POST", path="/cart/add", query="sku=1956&qty=2",
        status=302, bytes=0, referrer=None, user_agent="curl/8.5.0", vhost="shop.example.com")),
    "caddy_json_lnav.jsonl": ("caddy", 4, dict(
        time=datetime(2024, 5, 26, 14, 16, 3, 415000, tzinfo=UTC), ip="240e:1:1::1234", method="GET",
        path="/res/browse.css", query=None, status=200, bytes=1577, vhost="mirrors.tnonline.net")),
    "formats/cloudflare.jsonl": ("cloudflare", 1, dict(
        time=datetime(2018, 12, 18, 17, 45, 29, 696000, tzinfo=UTC), ip="203.0.113.89", method="GET",
        path="/var/www", query=None, status=403, bytes=1935, referrer=None, user_agent=None,
        vhost="testing.logpull.com")),
}
CATCH_ALL = """
logmap: 1
source: {format: auto, site: https://www.example.com}
filter: {status: ['100-599'], methods: [GET, POST, HEAD, PUT], exclude_static: false, exclude_bots: false}
rules:
  - {name: every hit, type: custom, custom_action_name: hit}
identity: {anonymous_id: {hmac: ['{ip}'], key: none}}
durations: {from: none}
"""


@functools.cache
def lines_of(name: str) -> pl.DataFrame:
    return pl.concat(list(read_lines(str(LOGS / name))))


@functools.cache
def parsed_auto(name: str) -> pl.DataFrame:
    """A fixture parsed with ``format: auto``, once per process for the two tests that check it."""
    return parse(lines_of(name), Source(format="auto"))


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_auto_detects_and_parses_every_canonical_field(name: str) -> None:
    fmt, line, expected = MATRIX[name]
    lines = lines_of(name)
    assert best(lines.head(1000), name).name == fmt
    parsed = parsed_auto(name)
    row = parsed.filter(pl.col("_line") == line).to_dicts()[0]
    assert row["_drop"] is None, row["_detail"]
    for field, value in (expected or {}).items():
        assert row[field] == value, (field, row[field], value)
    assert row["time"] is not None and row["path"] is not None


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_a_catch_all_mapping_emits_every_data_line(name: str, tmp_path: Path) -> None:
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(CATCH_ALL)
    report = convert([str(LOGS / name)], load_mapping_text(CATCH_ALL, str(mapping_file)), tmp_path / "out")
    lines = lines_of(name)
    raw = pl.col("_raw")
    data = lines.filter(~raw.str.strip_chars_start().str.starts_with("#") & (raw.str.strip_chars() != ""))
    parsed = parsed_auto(name).filter(pl.col("_drop").is_null()).height
    ledger = report.ledger
    assert ledger.input_rows == lines.height == ledger.emitted + sum(ledger.dropped.values())
    assert ledger.emitted == parsed
    assert parsed >= data.height - 2  # the few deliberately odd lines of the older fixtures aside
