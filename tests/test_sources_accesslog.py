"""Access-log parsing: canonical fields of real lines, exact malformed lines per real fixture, formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from logmap.errors import MappingError
from logmap.mapping.model import Source
from logmap.sources.accesslog import CANONICAL, FORMATS, parse
from logmap.sources.lines import lines_frame, read_lines

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"


def parsed(name: str, fmt: str = "combined", **kwargs: Any) -> pl.DataFrame:
    lines = pl.concat(list(read_lines(str(LOGS / name))))
    return parse(lines, Source(format=fmt, **kwargs))


def row(frame: pl.DataFrame, line: int) -> dict[str, Any]:
    return frame.filter(pl.col("_line") == line).row(0, named=True)


def one(line: str, source: Source) -> dict[str, Any]:
    return parse(lines_frame([line]), source).row(0, named=True)


def fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("ip", "ident", "user", "time", "method", "target", "path", "query", "protocol",
                                   "status", "bytes", "referrer", "user_agent", "vhost", "url")}


# --- fields of real lines ---------------------------------------------------------------------------------


def test_nasa_common_offset_converted_to_utc() -> None:
    frame = parsed("nasa_jul95_4000.log", "common")
    assert fields(row(frame, 1)) == {
        "ip": "199.72.81.55", "ident": None, "user": None, "time": datetime(1995, 7, 1, 4, 0, 1, tzinfo=UTC),
        "method": "GET", "target": "/history/apollo/", "path": "/history/apollo/", "query": None,
        "protocol": "HTTP/1.0", "status": 200, "bytes": 6245, "referrer": None, "user_agent": None, "vhost": None,
        "url": "/history/apollo/"}
    line51 = row(frame, 51)  # host name instead of an IP, bytes '-'
    assert (line51["ip"], line51["status"], line51["bytes"]) == ("dd15-062.compuserve.com", 404, None)
    assert frame["time"].min() == datetime(1995, 7, 1, 4, 0, 1, tzinfo=UTC)
    assert frame["time"].max() == datetime(1995, 7, 1, 5, 8, 54, tzinfo=UTC)


def test_dreamhost_negative_offset_and_trailing_space() -> None:
    frame = parsed("advertools_dreamhost_apache_2023.log")
    assert fields(row(frame, 1)) == {
        "ip": "107.20.105.74", "ident": None, "user": None, "time": datetime(2023, 4, 25, 8, 45, 43, tzinfo=UTC),
        "method": "HEAD", "target": "/", "path": "/", "query": None, "protocol": "HTTP/1.1", "status": 200,
        "bytes": 5640, "referrer": "http://208.113.171.66", "user_agent": "DreamHost SiteMonitor 1.0",
        "vhost": None, "url": "/"}
    assert row(frame, 2)["user_agent"] == "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
    assert frame["time"].max() == datetime(2023, 4, 26, 7, 22, 33, tzinfo=UTC)


def test_french_blog_positive_offset() -> None:
    frame = parsed("apache_french_blog_2020.log", site="https://blog.example.fr/")
    first = row(frame, 1)
    assert first["time"] == datetime(2020, 2, 12, 5, 31, 50, tzinfo=UTC)
    assert (first["method"], first["path"], first["status"], first["bytes"]) == ("GET", "/robots.txt", 404, 136)
    assert first["user_agent"] == "Mozilla/5.0 (compatible; AhrefsBot/6.1; +http://ahrefs.com/robot/)"
    assert first["referrer"] is None
    assert first["url"] == "https://blog.example.fr/robots.txt"


def test_query_split_and_url_from_site() -> None:
    frame = parsed("elastic_apache_logs.log", site="https://semicomplete.com")
    line = row(frame, 32)
    assert (line["ip"], line["target"], line["path"], line["query"]) == (
        "50.16.19.13", "/blog/tags/puppet?flav=rss20", "/blog/tags/puppet", "flav=rss20")
    assert line["url"] == "https://semicomplete.com/blog/tags/puppet?flav=rss20"
    assert line["referrer"] == "http://www.semicomplete.com/blog/tags/puppet?flav=rss20"
    assert line["time"] == datetime(2015, 5, 17, 10, 5, 10, tzinfo=UTC)
    assert (line["status"], line["bytes"]) == (200, 14872)


def test_schema() -> None:
    frame = parsed("advertools_nginx_access_2021.log")
    expected = {"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String, "_drop": pl.String,
                "_detail": pl.String, **CANONICAL}
    assert frame.schema == pl.Schema(expected)


# --- malformed lines per real fixture (combined) ----------------------------------------------------------

MALFORMED = {
    # 15 scanner/TLS request lines, then 170-200: the bytes of a gzip file appended to the log (line 200 is the
    # gzip tail glued to a real log line: its 'host' is binary, so it is malformed too).
    "advertools_combined_latin1_2023.log": [4, 28, 39, 41, 61, 96, 102, 103, 108, 110, 130, 153, 156, 166, 169,
                                            *range(170, 201)],
    "advertools_dreamhost_apache_2023.log": [87],  # a blank line
    "advertools_elastic_nginx_subset_with_errors.log": [3, 12, 21, 22],  # "Error line 1..4"
    "advertools_nginx_access_2021.log": [6, 7, 44, 79, 128, 149, 171, 172, 235, 236, 255, 283, 284, 305, 375,
                                         377, 378, 400, 401, 429, 433, 453, 454, 476, 481, 507, 515, 524, 528,
                                         553, 582, 584, 585, 586, 587, 588, 589, 674, 692, 790, 817, 818, 898],
    "apache_french_blog_2020.log": [17, 18, 21, 1017, 1024],
    "elastic_apache_logs.log": [8899],  # cut off inside the user agent (no closing quote)
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_exact_malformed_lines(name: str) -> None:
    frame = parsed(name)
    bad = frame.filter(pl.col("_drop").is_not_null())
    assert bad["_line"].to_list() == MALFORMED[name]
    assert bad["_drop"].unique().to_list() == ["malformed"]
    assert bad["_detail"].null_count() == 0
    alive = frame.filter(pl.col("_drop").is_null())
    # Every line that is kept has every field a record needs.
    assert alive.select("ip", "time", "method", "target", "path", "status").null_count().sum_horizontal().item() == 0
    # Malformed lines keep their raw text and carry no half-parsed fields.
    assert bad["_raw"].null_count() == 0
    assert bad.select(list(CANONICAL)).null_count().row(0) == (bad.height,) * len(CANONICAL)


def test_malformed_details() -> None:
    latin = parsed("advertools_combined_latin1_2023.log")
    assert row(latin, 96)["_detail"] == 'request line "" is not METHOD TARGET PROTOCOL'
    assert row(latin, 39)["_detail"] == 'request line "GET ../../proc/ HTTP" is not METHOD TARGET PROTOCOL'
    assert row(latin, 4)["_detail"].startswith('request line "\\x16\\x03\\x01\\x00\\x85')
    assert row(latin, 4)["_detail"].endswith('…" is not METHOD TARGET PROTOCOL')
    assert row(latin, 170)["_detail"] == "line does not match format 'combined'"
    assert row(latin, 200)["_raw"].endswith('"GET / HTTP/1.1" 200 13270 "-" "Mozilla/5.0 (Windows NT 5.1; Win64; x64) '
                                            'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 '
                                            'Safari/537.36"')
    errors = parsed("advertools_elastic_nginx_subset_with_errors.log")
    assert row(errors, 3)["_detail"] == "line does not match format 'combined'"
    assert row(errors, 3)["_raw"] == "Error line 1"
    assert row(parsed("advertools_dreamhost_apache_2023.log"), 87)["_detail"] == "empty line"


@pytest.mark.parametrize(("name", "fmt", "count"), [
    ("nasa_jul95_4000.log", "common", 0),
    ("nasa_jul95_4000.log", "combined", 4000),  # no referrer / user agent
    ("elastic_apache_logs.log", "common", 0),  # the truncated user agent is beyond what common reads
    ("iis85_lnav_w3c_big.log", "combined", 254),
    ("caddy_json_lnav.jsonl", "combined", 4),
    ("elastic_apache_logs.log", "vhost_combined", 10000),
])
def test_malformed_counts_other_formats(name: str, fmt: str, count: int) -> None:
    assert parsed(name, fmt)["_drop"].eq("malformed").sum() == count


@pytest.mark.parametrize("fmt", ["combined", "common", "vhost_combined"])
@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log")))
def test_fast_path_agrees_with_the_regex(name: str, fmt: str) -> None:
    lines = pl.concat(list(read_lines(str(LOGS / name))))
    source = Source(format=fmt, site="https://example.com")
    assert_frame_equal(parse(lines, source), parse(lines, source, fast_path=False))


# --- format details ---------------------------------------------------------------------------------------

COMBINED = Source(format="combined")


def test_trailing_fields_after_user_agent() -> None:
    line = ('10.0.0.1 - alice [01/Mar/2024:10:00:00 +0000] "GET /p?a=1&b=2 HTTP/2.0" 200 512 "https://r.example/" '
            '"Mozilla/5.0" "203.0.113.9, 10.0.0.2" 0.012')
    record = one(line, COMBINED)
    assert record["_drop"] is None
    assert (record["user"], record["query"], record["protocol"], record["user_agent"]) == (
        "alice", "a=1&b=2", "HTTP/2.0", "Mozilla/5.0")


def test_escaped_quotes_inside_fields() -> None:
    line = r'1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET /q HTTP/1.1" 200 5 "-" "Bot \"quoted\" 1.0"'
    record = one(line, COMBINED)
    assert record["_drop"] is None
    assert record["user_agent"] == r'Bot \"quoted\" 1.0'


@pytest.mark.parametrize(("request_line", "detail"), [
    ("-", 'request line "-" is not METHOD TARGET PROTOCOL'),
    (r"\x16\x03\x01\x00", r'request line "\x16\x03\x01\x00" is not METHOD TARGET PROTOCOL'),
    ("GET /a b HTTP/1.1", 'request line "GET /a b HTTP/1.1" is not METHOD TARGET PROTOCOL'),
])
def test_request_lines_without_a_page_are_malformed(request_line: str, detail: str) -> None:
    record = one(f'1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "{request_line}" 400 0 "-" "-"', COMBINED)
    assert (record["_drop"], record["_detail"], record["method"]) == ("malformed", detail, None)


def test_request_without_protocol_and_absolute_target() -> None:
    record = one('1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET /old" 200 5', Source(format="common"))
    assert (record["method"], record["target"], record["protocol"]) == ("GET", "/old", None)
    record = one('1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET http://h.example:8080/x/y?z=1 HTTP/1.1" 200 5',
                 Source(format="common", site="https://shop.example.com"))
    assert (record["path"], record["query"], record["url"]) == ("/x/y", "z=1", "http://h.example:8080/x/y?z=1")
    record = one('1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "CONNECT h.example:443 HTTP/1.1" 200 5',
                 Source(format="common", site="https://shop.example.com"))
    assert (record["_drop"], record["target"], record["url"]) == (None, "h.example:443", None)


def test_bad_timestamp_is_malformed() -> None:
    record = one('1.2.3.4 - - [31/Feb/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-"', COMBINED)
    assert record["_drop"] == "malformed"
    assert record["_detail"] == "timestamp \"31/Feb/2024:10:00:00 +0000\" does not match '%d/%b/%Y:%H:%M:%S %z'"
    assert record["time"] is None


def test_clf_time_without_offset_uses_the_source_timezone() -> None:
    line = '1.2.3.4 - - [01/Jul/2024:10:00:00] "GET / HTTP/1.1" 200 5 "-" "-"'
    assert one(line, COMBINED)["time"] == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    ny = one(line, Source(format="combined", timezone="America/New_York"))
    assert ny["time"] == datetime(2024, 7, 1, 14, 0, tzinfo=UTC)
    # An explicit offset wins over the source's time zone.
    with_offset = '1.2.3.4 - - [01/Jul/2024:10:00:00 +0200] "GET / HTTP/1.1" 200 5 "-" "-"'
    assert one(with_offset, Source(format="combined", timezone="America/New_York"))["time"] == datetime(
        2024, 7, 1, 8, 0, tzinfo=UTC)


def test_vhost_combined() -> None:
    record = one(FORMATS["vhost_combined"].example, Source(format="vhost_combined"))
    assert (record["vhost"], record["ip"], record["path"], record["status"]) == ("shop.example.com", "127.0.0.1",
                                                                                  "/cart", 200)
    assert record["time"] == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert "port" not in parse(lines_frame([FORMATS["vhost_combined"].example]), Source(format="vhost_combined")).columns


@pytest.mark.parametrize("site", [None, "https://shop.example.com", "https://shop.example.com/"])
def test_url(site: str | None) -> None:
    record = one('1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET /p/1?x=y HTTP/1.1" 200 5',
                 Source(format="common", site=site))
    assert record["url"] == ("/p/1?x=y" if site is None else "https://shop.example.com/p/1?x=y")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_registry_examples_parse(name: str) -> None:
    spec = FORMATS[name]
    assert spec.name == name and spec.description
    record = one(spec.example, Source(format=name))
    assert record["_drop"] is None
    assert record["status"] == 200


# --- regex format -----------------------------------------------------------------------------------------

IIS_LIKE = (r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?P<server>\S+) (?P<method>\S+) (?P<path>\S+) "
            r"(?P<query>\S+) (?P<port>\d+) (?P<user>\S+) (?P<ip>\S+) (?P<user_agent>\S+) (?P<referrer>\S+) "
            r"(?P<status>\d+) (?P<substatus>\d+)")


def test_regex_format_with_named_groups_and_timezone() -> None:
    source = Source(format="regex", pattern=IIS_LIKE, time_format="%Y-%m-%d %H:%M:%S", timezone="Europe/Paris",
                    site="https://www.example.com")
    lines = lines_frame([
        "#Fields: date time s-ip cs-method",
        "2015-01-13 00:32:17 100.79.192.81 GET /robots.txt - 80 - 157.55.39.146 Mozilla/5.0+(bingbot) - 404 0",
        "2015-07-13 12:00:00 100.79.192.81 GET /s q=shoe 80 bob 10.0.0.1 - https://r.example/ 200 0",
    ])
    frame = parse(lines, source)
    assert frame["_drop"].to_list() == ["malformed", None, None]
    assert frame["_detail"][0] == "line does not match the source pattern"
    first, second = frame.row(1, named=True), frame.row(2, named=True)
    assert first["time"] == datetime(2015, 1, 12, 23, 32, 17, tzinfo=UTC)  # CET, +01:00
    assert second["time"] == datetime(2015, 7, 13, 10, 0, tzinfo=UTC)      # CEST, +02:00
    assert (first["path"], first["query"], first["target"], first["user"], first["status"]) == (
        "/robots.txt", None, "/robots.txt", None, 404)
    assert (second["target"], second["query"], second["url"], second["user"], second["user_agent"]) == (
        "/s?q=shoe", "q=shoe", "https://www.example.com/s?q=shoe", "bob", None)
    # Other groups become String columns (the port of a regex source is not canonical: it is dropped).
    assert frame.schema["server"] == pl.String and frame.schema["substatus"] == pl.String
    assert (first["server"], first["substatus"]) == ("100.79.192.81", "0")
    assert frame.schema["status"] == pl.Int32 and frame.schema["time"] == pl.Datetime("ms", "UTC")


def test_regex_format_request_group_and_default_clf_time() -> None:
    pattern = r'^(?P<ip>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\S+)(?: (?P<bytes>\S+))?$'
    frame = parse(lines_frame([
        '1.2.3.4 [01/Mar/2024:10:00:00 +0100] "POST /cart/add?sku=9 HTTP/1.1" 302',
        '1.2.3.4 [01/Mar/2024:10:00:00 +0100] "GET / HTTP/1.1" abc 1',
        '1.2.3.4 [01/Mar/2024:10:00:00 +0100] "GET / HTTP/1.1" 200 many',
    ]), Source(format="regex", pattern=pattern))
    record = frame.row(0, named=True)
    assert (record["method"], record["path"], record["query"], record["status"], record["bytes"]) == (
        "POST", "/cart/add", "sku=9", 302, None)
    assert record["time"] == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert frame["_detail"].to_list()[1:] == ['status "abc" is not a number', 'bytes "many" is not a number']


def test_regex_dst_gap_is_malformed() -> None:
    source = Source(format="regex", pattern=r"^(?P<time>\S+ \S+) (?P<path>\S+)$", time_format="%Y-%m-%d %H:%M:%S",
                    timezone="Europe/Paris")
    frame = parse(lines_frame(["2024-03-31 02:30:00 /a", "2024-10-27 02:30:00 /b"]), source)
    assert frame["_drop"].to_list() == ["malformed", None]
    assert frame["time"][1] == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # ambiguous: the earlier instant


# --- contract ---------------------------------------------------------------------------------------------


def test_lazy_in_lazy_out_and_earlier_drops_kept() -> None:
    lines = lines_frame(["Error", FORMATS["combined"].example]).with_columns(
        pl.Series("_drop", ["filtered:test", None], pl.String), pl.Series("_detail", ["kept", None], pl.String))
    out = parse(lines.lazy(), COMBINED)
    assert isinstance(out, pl.LazyFrame)
    frame = out.collect()
    assert frame["_drop"].to_list() == ["filtered:test", None]
    assert frame["_detail"].to_list() == ["kept", None]
    assert frame.columns[:5] == ["_file", "_line", "_raw", "_drop", "_detail"]


@pytest.mark.parametrize(("source", "message"), [
    (Source(format="lighttpd"), "unknown source format 'lighttpd' (known: common, combined, vhost_combined, "),
    (Source(format="regex", pattern="(?P<a>x"), "the pattern does not compile: unclosed group"),
    (Source(format="regex", pattern=r"(?<=a)b"), "the pattern does not compile"),
    (Source(format="regex", pattern=r"\S+"), "the pattern has no named groups"),
    (Source(format="regex"), "format 'regex' needs a 'pattern'"),
    (Source(format="combined", timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
])
def test_source_errors_are_mapping_errors(source: Source, message: str) -> None:
    with pytest.raises(MappingError) as error:
        parse(lines_frame(["x"]), source)
    assert message in str(error.value)
