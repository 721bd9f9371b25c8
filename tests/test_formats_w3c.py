"""W3C extended / IIS logs: fields from switching ``#Fields:`` headers, exact ledger, chunk carry-over."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from logmap.mapping.loader import known_formats as loader_formats
from logmap.mapping.model import Source
from logmap.sources.accesslog import PLUGINS, known_formats, parse
from logmap.sources.lines import lines_frame, read_lines

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
IIS = LOGS / "iis85_lnav_w3c_big.log"


def row(frame: pl.DataFrame, line: int) -> dict[str, Any]:
    return frame.filter(pl.col("_line") == line).row(0, named=True)


def parsed_iis(chunk_bytes: int = 64 * 1024 * 1024) -> pl.DataFrame:
    lines = pl.concat(list(read_lines(str(IIS), chunk_bytes=chunk_bytes)))
    return parse(lines, Source(format="w3c"))


def test_iis_fixture_fields_of_specific_lines() -> None:
    frame = parsed_iis()
    first = row(frame, 5)
    assert first["_drop"] is None
    assert (first["ip"], first["method"], first["path"], first["query"], first["status"], first["bytes"]) == (
        "157.55.39.146", "GET", "/robots.txt", None, 404, 1405)
    assert first["time"] == datetime(2015, 1, 13, 0, 32, 17, tzinfo=UTC)
    # IIS writes spaces as '+' without escaping a literal '+': "; +http" was logged ";++http" (ambiguous).
    assert first["user_agent"] == "Mozilla/5.0 (compatible; bingbot/2.0;  http://www.bing.com/bingbot.htm)"
    assert first["referrer"] is None and first["time_taken"] == "283"
    with_referrer = row(frame, 26)
    assert with_referrer["referrer"] == "http://example.com" and with_referrer["status"] == 200
    assert with_referrer["time"] == datetime(2015, 1, 13, 9, 49, 46, tzinfo=UTC)
    with_query = row(frame, 138)
    assert (with_query["path"], with_query["query"], with_query["target"]) == (
        "/index.php", "m=search", "/index.php?m=search")
    assert row(frame, 69)["query"] == "c=4e5e5d7364f443e28fbf0d3ae744a59a"


def test_iis_fixture_ledger_is_exact() -> None:
    frame = parsed_iis()
    raw = IIS.read_text().splitlines()
    headers = sum(line.startswith("#") for line in raw)
    assert frame.height == len(raw) == 254
    assert frame.filter(pl.col("_drop").is_null()).height == len(raw) - headers == 210
    dropped = frame.filter(pl.col("_drop").is_not_null())
    assert set(dropped["_drop"]) == {"malformed"} and set(dropped["_detail"]) == {"header line"}
    assert dropped["_line"].to_list() == [i + 1 for i, line in enumerate(raw) if line.startswith("#")]
    assert frame["_line"].to_list() == list(range(1, 255))  # input order kept


def test_small_chunks_carry_the_header_across_chunks() -> None:
    whole, chunked = parsed_iis(), parsed_iis(chunk_bytes=700)
    assert chunked.drop("_file").equals(whole.drop("_file"))


def test_fields_change_mid_file_and_bad_lines_are_malformed_with_line_numbers() -> None:
    lines = [
        "some startup message",
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status",
        "2024-03-01 10:00:00 1.2.3.4 GET /a 200",
        "",
        "#Fields: date time cs-method cs-uri-stem cs-uri-query sc-status sc-bytes c-ip cs(User-Agent) cs(Referer)",
        "2024-03-01 10:00:01 POST /cart x=1 302 12 5.6.7.8 Mozilla/5.0+(X11) https://shop.example.com/",
        "2024-03-01 10:00:02 GET /short 200",
        '1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5',
    ]
    frame = parse(lines_frame(lines), Source(format="w3c", site="https://shop.example.com"))
    assert frame.height == len(lines)
    assert row(frame, 1)["_detail"] == "data line before any #Fields: header"
    assert row(frame, 2)["_detail"] == "header line"
    a = row(frame, 3)
    assert (a["ip"], a["path"], a["status"], a["bytes"], a["url"]) == ("1.2.3.4", "/a", 200, None,
                                                                         "https://shop.example.com/a")
    assert row(frame, 4)["_detail"] == "empty line"
    cart = row(frame, 6)
    assert (cart["ip"], cart["method"], cart["path"], cart["query"], cart["status"], cart["bytes"]) == (
        "5.6.7.8", "POST", "/cart", "x=1", 302, 12)
    assert cart["user_agent"] == "Mozilla/5.0 (X11)" and cart["referrer"] == "https://shop.example.com/"
    assert cart["time"] == datetime(2024, 3, 1, 10, 0, 1, tzinfo=UTC)
    assert row(frame, 7)["_detail"] == "line has 5 fields, its #Fields: header names 10"
    assert row(frame, 8)["_drop"] == "malformed" and row(frame, 8)["ip"] is None
    assert frame.filter(pl.col("_drop").is_null())["_line"].to_list() == [3, 6]


def test_timezone_and_empty_frame_schema() -> None:
    lines = ["#Fields: date time c-ip cs-method cs-uri-stem sc-status", "2024-07-01 12:00:00 1.2.3.4 GET /a 200"]
    frame = parse(lines_frame(lines), Source(format="w3c", timezone="Europe/Paris"))
    assert row(frame, 2)["time"] == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    empty = parse(lines_frame([]), Source(format="w3c"))
    assert empty.height == 0 and empty.schema == frame.schema


def test_format_is_registered_for_mappings_and_lazy_frames() -> None:
    assert "w3c" in known_formats() and "w3c" in loader_formats()
    assert set(PLUGINS) <= set(loader_formats())
    lines = lines_frame(["#Fields: date time c-ip cs-method cs-uri-stem sc-status",
                         "2024-07-01 12:00:00 1.2.3.4 GET /a 200"])
    lazy = parse(lines.lazy(), Source(format="w3c"))
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(parse(lines, Source(format="w3c")))


def test_a_new_run_over_the_same_file_does_not_inherit_the_previous_header() -> None:
    header = ["#Fields: date time c-ip cs-method cs-uri-stem sc-status", "2024-07-01 12:00:00 1.2.3.4 GET /a 200"]
    parse(lines_frame(header, file="same.log"), Source(format="w3c"))
    again = parse(lines_frame(["junk", "2024-07-01 12:00:00 1.2.3.4 GET /a 200"], file="same.log"),
                  Source(format="w3c"))
    assert again["_detail"].to_list() == ["data line before any #Fields: header"] * 2
    later = parse(lines_frame(["2024-07-01 12:00:01 1.2.3.4 GET /b 200"], file="same.log", first_line=3),
                  Source(format="w3c"))
    assert later["_detail"].to_list() == ["data line before any #Fields: header"]  # the last run had none
