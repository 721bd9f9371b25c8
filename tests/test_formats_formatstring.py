"""nginx log_format / Apache LogFormat strings compiled to a parser (format: nginx / apache)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from support import convert

from logmap.errors import MappingError
from logmap.mapping.model import Source
from logmap.sources import load_mapping_text
from logmap.sources.accesslog import parse
from logmap.sources.lines import lines_frame, read_lines

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"
NGINX_COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                  '"$http_referer" "$http_user_agent"')
APACHE_COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
FIELDS = ["ip", "user", "time", "method", "path", "query", "status", "bytes", "referrer", "user_agent"]


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def test_nginx_format_with_extra_variables() -> None:
    template = NGINX_COMBINED + ' $request_time "$http_x_forwarded_for"'
    line = ('10.0.0.1 - bob [01/Mar/2024:11:00:00 +0100] "GET /cart?a=1 HTTP/1.1" 200 512 "https://r/" '
            '"Mozilla/5.0 (X; \\"q\\")" 0.123 "203.0.113.9, 10.0.0.1"')
    record = parse(lines_frame([line, "nginx: startup"]), Source(format="nginx", pattern=template)).row(0, named=True)
    assert [record[f] for f in FIELDS] == ["10.0.0.1", "bob", datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "GET",
                                           "/cart", "a=1", 200, 512, "https://r/", 'Mozilla/5.0 (X; \\"q\\")']
    assert record["request_time"] == "0.123" and record["http_x_forwarded_for"] == "203.0.113.9, 10.0.0.1"
    bad = parse(lines_frame(["nginx: startup"]), Source(format="nginx", pattern=template)).row(0, named=True)
    assert (bad["_drop"], bad["_detail"]) == ("malformed", "line does not match format 'nginx'")


def test_apache_format_with_duration_and_xff() -> None:
    template = '%{X-Forwarded-For}i %l %u %t "%r" %>s %B "%{Referer}i" "%{User-agent}i" %D'
    line = '203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] "POST /checkout HTTP/1.1" 302 0 "-" "curl/8" 1534'
    record = parse(lines_frame([line]), Source(format="apache", pattern=template)).row(0, named=True)
    assert [record[f] for f in FIELDS] == [None, None, datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC), "POST",
                                           "/checkout", None, 302, 0, None, "curl/8"]
    assert record["x_forwarded_for"] == "203.0.113.9" and record["duration_us"] == "1534"


@pytest.mark.parametrize(("fmt", "template"), [("nginx", NGINX_COMBINED), ("apache", APACHE_COMBINED)])
def test_combined_format_string_agrees_with_the_combined_preset_on_a_real_log(fmt: str, template: str) -> None:
    lines = pl.concat(list(read_lines(str(LOGS / "advertools_nginx_access_2021.log"))))
    preset = parse(lines, Source(format="combined"))
    compiled = parse(lines, Source(format=fmt, pattern=template))
    alive = preset["_drop"].is_null()
    assert alive.sum() > 0
    assert preset.filter(alive).select(FIELDS).equals(compiled.filter(alive).select(FIELDS))


def test_mapping_accepts_and_checks_format_strings(tmp_path: Path) -> None:
    text = MAPPING.read_text().replace("format: combined",
                                       f"format: nginx\n  pattern: '{NGINX_COMBINED} $request_time'")
    assert load_mapping_text(text, "m.yaml").source.format == "nginx"
    with pytest.raises(MappingError, match="format 'nginx' needs a 'pattern'"):
        load_mapping_text(MAPPING.read_text().replace("format: combined", "format: nginx"), "m.yaml")
    with pytest.raises(MappingError, match="unsupported directive"):
        load_mapping_text(MAPPING.read_text().replace("format: combined", "format: apache\n  pattern: '%h %Z'"),
                          "m.yaml")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(text)
    log = LOGS / "advertools_nginx_access_2021.log"
    result = convert([str(log)], mapping, tmp_path / "out")
    assert result.ledger.balanced and result.ledger.input_rows == log.read_bytes().count(b"\n")
