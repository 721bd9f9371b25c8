"""Access logs as they are in the wild (issue #13): padded fields, quoted W3C values, renamed fields, encodings
other than UTF-8, line prefixes, HAProxy captures, detection that is not fooled by one odd line, and filters
on columns a source lacks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from logmap.cli import main
from logmap.errors import InputError, MappingError
from logmap.mapping.model import Source
from logmap.pipeline.stages import Prepared
from logmap.sources import load_mapping_text, read_source
from logmap.sources.accesslog import FORMATS, PLUGINS, parse, spaced
from logmap.sources.detect import PREFIXES, best, rank, why
from logmap.sources.lines import lines_frame, read_lines

ROOT = Path(__file__).resolve().parents[1]
FORMAT_FIXTURES = ROOT / "fixtures" / "logs" / "formats"
CANONICAL = ["ip", "user", "time", "method", "path", "query", "status", "bytes", "referrer", "user_agent", "vhost"]
COMBINED = FORMATS["combined"].example

pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def parsed(lines: list[str], **source: object) -> pl.DataFrame:
    return parse(lines_frame(lines), Source(**source))  # type: ignore[arg-type]


def fields(frame: pl.DataFrame) -> list[dict[str, object]]:
    return frame.select(CANONICAL).to_dicts()


def pad(line: str) -> str:
    """``line`` with every space outside double quotes doubled."""
    out, quoted = [], False
    for char in line:
        quoted = not quoted if char == '"' else quoted
        out.append("  " if char == " " and not quoted else char)
    return "".join(out)


# --- runs of spaces ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["common", "combined", "vhost_combined", "common_vhost", "icecast2", "s3", "alb",
                                  "elb", "haproxy"])
def test_every_space_separated_preset_reads_padded_fields(name: str) -> None:
    example = FORMATS[name].example
    plain, padded = parsed([example], format=name), parsed([pad(example)], format=name)
    assert plain["_drop"].to_list() == [None] and padded["_drop"].to_list() == [None], padded["_detail"].to_list()
    assert fields(padded) == fields(plain)


@pytest.mark.parametrize("fmt, pattern, line", [
    ("nginx", '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent',
     '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 200 512'),
    ("apache", '%h %l %u %t "%r" %>s %b', '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 200 512'),
])
def test_format_strings_read_padded_fields(fmt: str, pattern: str, line: str) -> None:
    plain, padded = parsed([line], format=fmt, pattern=pattern), parsed([pad(line)], format=fmt, pattern=pattern)
    assert padded["_drop"].to_list() == [None] and fields(padded) == fields(plain)


def test_w3c_data_lines_fields_and_headers_may_be_padded() -> None:
    header = "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status"
    line = "2024-03-01 10:00:00 1.2.3.4 GET /a b=1 200"
    plain = parsed([header, line], format="w3c")
    padded = parsed(["  #Fields:   date  time c-ip   cs-method cs-uri-stem cs-uri-query sc-status  ", "   ",
                     pad(line) + " "], format="w3c")
    assert padded["_detail"].to_list()[:2] == ["header line", "empty line"]
    assert fields(padded.tail(1)) == fields(plain.tail(1))


def test_spaced_leaves_character_classes_and_escapes_alone() -> None:
    assert spaced(r"^a [ \d]\d \  b") == r"^a +[ \d]\d +\  +b"


# --- W3C quoted values, renamed fields, path with a query ---------------------------------------------------------

def test_w3c_quoted_values_keep_their_spaces_and_lose_their_quotes() -> None:
    out = parsed(['#Fields: date time c-ip cs(User-Agent) cs-uri-stem sc-status sc-substatus',
                  '2024-03-01 10:00:00 "70.95.0.0" "Mozilla/5.0 (X11; Linux)" /a 200 " odd value "'], format="w3c")
    row = out.row(1, named=True)
    assert (row["ip"], row["user_agent"], row["path"], row["_drop"]) == ("70.95.0.0", "Mozilla/5.0 (X11; Linux)",
                                                                       "/a", None)


def test_source_fields_renames_w3c_fields_to_canonical_columns() -> None:
    lines = ["#Fields: date time c-ip cs-method cs-uri-stem sc-status X-Site UA TimeTaken",
             "2024-03-01 10:00:00 1.2.3.4 GET /a?x=1 200 shop.example.com curl/8 12"]
    out = parsed(lines, format="w3c", fields={"X-Site": "vhost", "UA": "user_agent", "TimeTaken": "time_taken"})
    row = out.row(1, named=True)
    assert (row["vhost"], row["user_agent"], row["time_taken"], row["path"], row["query"]) == (
        "shop.example.com", "curl/8", "12", "/a", "x=1")


def test_source_fields_puts_json_keys_first() -> None:
    line = json.dumps({"client": {"addr": "1.2.3.4"}, "req-uri": "/p?q=1", "when": "2024-03-01T10:00:00Z",
                       "code": 404, "ua": "curl/8"})
    renames = {"client.addr": "ip", "req-uri": "target", "when": "time", "code": "status", "ua": "user_agent"}
    out = parsed([line], format="nginx_json", fields=renames)
    row = out.row(0, named=True)
    assert (row["ip"], row["path"], row["query"], row["status"], row["user_agent"], row["time"].hour) == (
        "1.2.3.4", "/p", "q=1", 404, "curl/8", 10)


def test_a_regex_path_group_carrying_a_query_is_split() -> None:
    out = parsed(["1.2.3.4 /shop/item?id=7&x=1 200"], format="regex",
                 pattern=r"^(?P<ip>\S+) (?P<path>\S+) (?P<status>\d+)$")
    assert out.select("path", "query", "target").row(0) == ("/shop/item", "id=7&x=1", "/shop/item?id=7&x=1")


# --- encodings -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding, agent", [
    ("big5", "瀏覽器/1.0"), ("shift_jis", "ブラウザ/1.0"), ("gb18030", "浏览器/1.0 😀"), ("cp1252", "Navigateur/1.0 “é”"),
    ("latin-1", "Navigateur/1.0 é"), ("utf-16", "Browser/1.0 ü"),
])
@pytest.mark.parametrize("chunk_bytes", [7, 64 * 1024 * 1024])
def test_source_encoding_decodes_whole_chunks_even_across_reads(tmp_path: Path, encoding: str, agent: str,
                                                                chunk_bytes: int) -> None:
    text = "".join(f'1.2.3.{i} - - [10/Oct/2000:13:55:3{i} -0700] "GET /p/{i} HTTP/1.1" 200 5 "-" "{agent}"\n'
                   for i in range(5))
    path = tmp_path / "x.log"
    path.write_bytes(text.encode(encoding))
    frames = list(read_lines(str(path), chunk_bytes=chunk_bytes, encoding=encoding))
    assert pl.concat(frames)["_raw"].to_list() == text.splitlines()
    out = pl.concat(list(read_source([str(path)], Source(format="combined", encoding=encoding))))
    assert out["user_agent"].to_list() == [agent] * 5


def test_unknown_encodings_and_misplaced_options_are_mapping_errors() -> None:
    base = "logmap: 1\nsource: {format: %s, %s}\nrules: [{type: home_page_view}]\n"
    for fmt, extra, fragment in [("combined", "encoding: klingon", "unknown encoding 'klingon'"),
                                 ("combined", "fields: {a: ip}", "'fields' renames W3C or JSON fields"),
                                 ("combined", "captures: [host]", "'captures' names HAProxy"),
                                 ("combined", "prefix: '(['", "invalid regular expression")]:
        with pytest.raises(MappingError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
            load_mapping_text(base % (fmt, extra), "m.yaml")
    source = load_mapping_text(base % ("haproxy", "captures: [host, '-', user_agent], encoding: cp1252"), "m.yaml")
    assert source.source.captures == ["host", "-", "user_agent"] and source.source.encoding == "cp1252"


# --- prefixes --------------------------------------------------------------------------------------------------

PREFIXED = {
    "docker compose": "web-1  | ",
    "kubectl logs --prefix": "[pod/shop-7d9f/nginx] ",
    "syslog": "Mar  1 10:00:00 web01 nginx[812]: ",
    "journald / RFC 5424 syslog": "2024-03-01T10:00:00.123456+00:00 web01 nginx[812]: ",
}


@pytest.mark.parametrize("kind", sorted(PREFIXED))
def test_prefixes_are_detected_proposed_and_stripped(kind: str, tmp_path: Path) -> None:
    lines = [PREFIXED[kind] + COMBINED.replace("/apache_pb.gif", f"/p/{i}") for i in range(20)]
    chosen = best(lines_frame(lines), "x.log")
    assert (chosen.name, chosen.prefix) == ("combined", kind)
    out = parsed(lines, format="combined", prefix=PREFIXES[kind])
    assert out["_drop"].null_count() == 20 and out["_raw"].to_list() == lines  # the rejects show the line as read
    assert out["path"].to_list()[:2] == ["/p/0", "/p/1"]
    auto = parsed(lines, format="auto")
    assert auto["user_agent"].to_list() == out["user_agent"].to_list()
    path = tmp_path / "x.log"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["formats", "--detect", str(path)])
    assert result.exit_code == 0 and f"set source.prefix: '{PREFIXES[kind]}'" in result.output


def test_json_lines_no_preset_reads_are_not_told_to_write_a_regex() -> None:
    with pytest.raises(InputError) as error:
        best(lines_frame(['{"a": 1, "b": "x"}'] * 3), "x.jsonl")
    assert "regex" not in str(error.value) and "source.fields" in str(error.value)


# --- detection -------------------------------------------------------------------------------------------------

def test_one_odd_line_in_ten_thousand_does_not_flip_the_verdict() -> None:
    lines = [COMBINED.replace("13:55:36", f"13:{i // 600 % 60:02d}:{i // 10 % 60:02d}") for i in range(9999)]
    lines.insert(5000, FORMATS["common"].example)  # a health check logged without referrer and user agent
    ranked = rank(lines_frame(lines))
    assert ranked[0].name == "combined" and ranked[1].name == "common"
    assert "combined fills" in (why(ranked) or "")


def test_the_more_specific_of_two_formats_parsing_every_line_wins_and_the_output_says_why(tmp_path: Path) -> None:
    xff = PLUGINS["combined_xff"][2]
    assert best(lines_frame([xff] * 3), "x").name == "combined_xff"
    assert best(lines_frame([COMBINED] * 3), "x").name == "combined"
    path = tmp_path / "x.log"
    path.write_text("\n".join([xff] * 3))  # and no final newline
    result = CliRunner().invoke(main, ["formats", "--detect", str(path)])
    assert result.exit_code == 0 and "why combined_xff:" in result.output


def test_a_file_of_headers_and_one_line_without_newline_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("#Version: 1.0\n#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
                    "2024-03-01 10:00:00 1.2.3.4 GET /a 200")
    result = CliRunner().invoke(main, ["formats", "--detect", str(path)])
    assert result.exit_code == 0 and result.output.strip().endswith("format: w3c  (100.0% of lines parse)")
    out = pl.concat(list(read_source([str(path)], Source(format="auto"))))
    assert out["path"].to_list() == [None, None, "/a"]


def test_ties_exit_2() -> None:
    tie = '{"remote_addr": "1.2.3.4", "ClientHost": "1.2.3.4", "request_uri": "/a", "RequestPath": "/a"}'
    result = CliRunner().invoke(main, ["formats", "--detect", "-"], input=tie + "\n")
    assert result.exit_code == 2 and "parse it equally well" in result.output


# --- HAProxy captured headers ------------------------------------------------------------------------------------

HAPROXY = ('10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- '
           '1/1/1/1/0 0/0 {%s} {text/html} "GET /index.html HTTP/1.1"')


def test_haproxy_captures_are_recognised_by_their_values() -> None:
    out = parsed([HAPROXY % "shop.example.com|https://shop.example.com/|Mozilla/5.0 (X11)",
                  HAPROXY % "Googlebot/2.1 (+http://www.google.com/bot.html)||10.0.0.1"], format="haproxy")
    assert out.select("vhost", "referrer", "user_agent").rows() == [
        ("shop.example.com", "https://shop.example.com/", "Mozilla/5.0 (X11)"),
        (None, None, "Googlebot/2.1 (+http://www.google.com/bot.html)")]


def test_source_captures_names_each_slot() -> None:
    line = HAPROXY % "10.9.9.9|shop.example.com|Mozilla/5.0 (X11)"
    out = parsed([line], format="haproxy", captures=["-", "host", "user_agent"])
    assert out.select("vhost", "referrer", "user_agent").row(0) == ("shop.example.com", None, "Mozilla/5.0 (X11)")


# --- filters on columns the source lacks -------------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [("status", "200"), ("methods", "[GET]")])
def test_a_filter_on_a_column_the_source_lacks_is_a_mapping_error(tmp_path: Path, key: str, value: str) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text(json.dumps({"ts": "2024-03-01T10:00:00Z", "url": "https://a.com/p", "uid": "u1"}) + "\n")
    text = ("logmap: 1\nsource: {format: ndjson, options: {time: ts, page_url: '{url}'}}\n"
            f"filter:\n  {key}: {value}\nrules:\n  - {{type: home_page_view}}\nidentity: {{anonymous_id: '{{uid}}'}}\n")
    with pytest.raises(MappingError, match=f"filter.{key}: the source has no") as error:
        Prepared(load_mapping_text(text, "m.yaml"), [str(events)])
    assert (error.value.line, error.value.column) == (4, 3)
    Prepared(load_mapping_text(text.replace(f"filter:\n  {key}: {value}\n", ""), "m.yaml"), [str(events)])


def test_fixture_files_parse_with_an_explicit_format_too() -> None:
    for name, fmt in [("shoutcast.log", "shoutcast"), ("incapsula.log", "incapsula"), ("s3.log", "s3"),
                      ("cloudflare.jsonl", "cloudflare"), ("icecast2.log", "icecast2")]:
        lines = pl.concat(list(read_lines(str(FORMAT_FIXTURES / name))))
        auto = parse(lines, Source(format="auto"))
        named = parse(lines, replace(Source(), format=fmt))
        assert auto.select(CANONICAL).equals(named.select(CANONICAL)), name
