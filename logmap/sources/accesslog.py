"""Access-log lines → the canonical columns of docs/architecture.md.

How a line is parsed
====================

Every format is defined by one regular expression with named groups (``LogFormat.pattern``): that expression
is the *definition* of the format. Because capture-group extraction over a whole chunk is the single most
expensive step of a run, the NCSA presets also have a *fast path*: the line is cut with ``str.splitn`` on ``"``
and on spaces (several times faster than captures). The fast path only accepts a line whose pieces have exactly
the expected shape and which contains no backslash (escaped quotes); every other line — including every line
that will turn out malformed — goes through the regular expression. ``tests/test_sources_accesslog.py`` checks
that both paths agree on every fixture line, so the regex stays the single source of truth.

The matched string fields are then normalised the same way for every format:

* ``-`` and empty → null (``ip``, ``ident``, ``user``, ``referrer``, ``user_agent``, ``bytes``, …).
* ``request`` → ``method``, ``target``, ``protocol`` with ``METHOD TARGET [PROTOCOL]``: a method is an HTTP token
  starting with a letter, the target has no white space, the protocol (``HTTP/1.1``) is optional (HTTP/0.9).
  A request line that is not of this shape — ``"-"``, an empty ``""`` (connection closed before a request),
  TLS handshake bytes logged as ``"\\x16\\x03…"``, a target with spaces — has no page, so the line is
  **malformed**.
* ``target`` → ``path`` (without query; an absolute-form target ``http://host/p`` gives ``/p``, and ``host``
  as ``vhost`` when the format logs no host of its own) and ``query`` (without the ``?``, null when empty). A
  ``path`` field that carries a query (``/p?q=1``) is cut at its first ``?`` too.
* ``time`` → ``Datetime("ms", "UTC")``: with an offset in the text (CLF ``%z``) it is converted to UTC; a
  ``time_format`` without an offset reads the time in ``source.timezone`` (ambiguous DST times take the earlier
  instant). The presets also accept a CLF time without offset (read in ``source.timezone``). A time that does
  not parse, or does not exist in the zone (a DST gap), makes the line **malformed**.
* ``status`` → Int32, ``bytes`` → Int64; a non-numeric value (possible only with ``regex``) is **malformed**.
* ``url`` → ``source.site`` (without its trailing ``/``) + ``target`` for an origin-form target (``/…``), the
  target itself when it is absolute (``http(s)://…``), null for ``*`` and ``host:port`` targets.

A line that does not match the format (a blank line, binary garbage, a truncated line) is ``malformed`` with
``_detail`` saying why; its ``_raw`` is kept so the rejects file can show it. Lines already dropped upstream keep
their reason. All canonical columns are always present (null when the format has no such field), so later
stages see one schema whatever the format.

Adding a format: add a ``LogFormat`` to ``FORMATS`` with a pattern whose group names are canonical columns (or
``request``); a fast path is optional (load-balancer and proxy presets live in ``logmap/sources/cloud.py``). A
format one regex per line cannot describe (W3C ``#Fields:`` headers, JSON objects, a server's format string)
goes in ``PLUGINS``: its own module with ``parse(lines, source)`` giving the same columns and ledger. Every
name must also be in ``logmap.mapping.defaults.FORMATS`` (the mapping language and its JSON Schema).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from logmap.errors import MappingError
from logmap.mapping.model import Source
from logmap.sources.cloud import CLOUD_FORMATS

CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"

#: The canonical columns and their dtypes, in output order.
CANONICAL: dict[str, pl.DataType] = {
    "ip": pl.String(), "ident": pl.String(), "user": pl.String(), "time": pl.Datetime("ms", "UTC"),
    "method": pl.String(), "target": pl.String(), "path": pl.String(), "query": pl.String(),
    "protocol": pl.String(), "status": pl.Int32(), "bytes": pl.Int64(), "referrer": pl.String(),
    "user_agent": pl.String(), "vhost": pl.String(), "url": pl.String(),
}
# Groups with a meaning beyond "a string": consumed by normalisation rather than passed through.
_SPECIAL = {"request", "time", "status", "bytes", "target", "path", "query", "url"}
_TEXT = ("ip", "ident", "user", "method", "protocol", "referrer", "user_agent", "vhost")
_MATCH = "__match"  # an always-empty group that tells a match from a miss in a user's regex

REQUEST = r"^(?P<method>[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) (?P<target>\S+)(?: (?P<protocol>[A-Za-z]+/[0-9.]+))?$"
_TARGET = r"^(?:[A-Za-z][A-Za-z0-9+.-]*://(?P<host>[^/?#]*))?(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?"


def _quoted(name: str) -> str:
    """A double-quoted field in which ``\\"`` and ``\\\\`` are escapes (Apache and nginx both log them so)."""
    return f'"(?P<{name}>[^"\\\\]*(?:\\\\.[^"\\\\]*)*)"'


def spaced(pattern: str) -> str:
    """``pattern`` with each literal space between fields (outside ``[…]`` classes) made a run of spaces (`` +``).

    Servers pad fields (IIS, HAProxy's syslog day, hand-edited Apache formats), so every space-separated preset
    is written with single spaces and compiled through this. The fast path still takes single spaces only; a
    padded line goes through the regex.
    """
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif in_class:
            out.append(char)
            in_class = char != "]"
        elif char == "[":
            out.append(char)
            in_class = True
        elif char == " ":
            out.append(" +")
        else:
            out.append(char)
    return "".join(out).replace(" ++", " +")


_HEAD = r"(?P<ip>[!-~]+) (?P<ident>[^ ]+) (?P<user>[^ ]+) \[(?P<time>[^\]]+)\] "
_COMMON = _HEAD + _quoted("request") + r" (?P<status>\d{3}) (?P<bytes>\d+|-)"
_COMBINED = _COMMON + " " + _quoted("referrer") + " " + _quoted("user_agent")
_TRAILING = r"(?:[ \t].*)?$"  # fields some servers append (X-Forwarded-For, request time) or a trailing space
_VHOST = r"(?P<vhost>[\w.-]+)(?::(?P<port>\d+))? "  # Apache %v (a server name) or %v:%p


@dataclass(frozen=True)
class _Fast:
    """Shape of an NCSA line for the split-based fast path."""

    head: tuple[str, ...]  # space-separated fields before ``[time]``
    quoted_tail: bool      # True: ``"request" status bytes "referrer" "user_agent"``; False: no referrer/UA


@dataclass(frozen=True)
class LogFormat:
    """A named log format: listed by ``logmap formats``, chosen by ``source.format``."""

    name: str
    description: str
    example: str
    pattern: str
    time_format: str = CLF_TIME
    fast: _Fast | None = None


FORMATS: dict[str, LogFormat] = {
    "common": LogFormat(
        name="common",
        description='NCSA Common Log Format: %h %l %u %t "%r" %>s %b (anything after %b is ignored)',
        example='127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
        pattern="^" + _COMMON + _TRAILING,
        fast=_Fast(("ip", "ident", "user"), quoted_tail=False),
    ),
    "combined": LogFormat(
        name="combined",
        description='Apache/nginx combined: common + "%{Referer}i" "%{User-agent}i" (extra trailing fields ignored)',
        example='127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
                '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
        pattern="^" + _COMBINED + _TRAILING,
        fast=_Fast(("ip", "ident", "user"), quoted_tail=True),
    ),
    "vhost_combined": LogFormat(
        name="vhost_combined",
        description="Apache vhost_combined: %v:%p followed by combined (the :%p may be absent)",
        example='shop.example.com:443 127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /cart HTTP/1.1" 200 2326 '
                '"-" "Mozilla/5.0"',
        pattern=r"^" + _VHOST + _COMBINED + _TRAILING,
        fast=_Fast(("_vhost_port", "ip", "ident", "user"), quoted_tail=True),
    ),
    "common_vhost": LogFormat(
        name="common_vhost",
        description='a virtual host, then common: %v %h %l %u %t "%r" %>s %b (%v:%p too; trailing fields ignored)',
        example='shop.example.com 127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /cart HTTP/1.1" 200 2326',
        pattern=r"^" + _VHOST + _COMMON + _TRAILING,
    ),
    "icecast2": LogFormat(
        name="icecast2",
        description="Icecast2 access log: combined + the listener's session duration in seconds",
        example='127.0.0.1 - - [10/Feb/2012:16:42:07 -0500] "GET /stream.ogg HTTP/1.0" 200 368 "-" '
                '"VLC/3.0.18 LibVLC/3.0.18" 1807',
        pattern="^" + _COMBINED + r" (?P<session_seconds>\d+)" + _TRAILING,
    ),
    "s3": LogFormat(
        name="s3",
        description="Amazon S3 server access log (owner bucket [time] ip requester id operation key \"request\" …)",
        example='79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 '
                '[06/Feb/2019:00:00:38 +0000] 192.0.2.3 '
                '79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE '
                'REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" 200 - 113 - 7 - '
                '"-" "S3Console/0.4" -',
        pattern=r"^(?P<owner>\S+) (?P<vhost>\S+) \[(?P<time>[^\]]+)\] (?P<ip>\S+) (?P<requester>\S+) "
                r"(?P<request_id>\S+) (?P<operation>\S+) (?P<key>\S+) " + _quoted("request")
                + r" (?P<status>\d{3}|-) (?P<error>\S+) (?P<bytes>\d+|-) (?P<object_size>\S+) (?P<total_ms>\S+) "
                r"(?P<turnaround_ms>\S+) " + _quoted("referrer") + " " + _quoted("user_agent") + _TRAILING,
    ),
}

# Load-balancer and proxy logs (logmap/sources/cloud.py): plain one-regex presets, no fast path.
FORMATS.update({name: LogFormat(name=name, description=description, example=example, pattern=pattern,
                                time_format=time_format)
                for name, (description, example, pattern, time_format) in CLOUD_FORMATS.items()})
# Every preset accepts runs of spaces where its definition has one.
FORMATS = {name: replace(log_format, pattern=spaced(log_format.pattern)) for name, log_format in FORMATS.items()}

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


# ---------------------------------------------------------------------------------------------------------------
# Public entry point


def parse(lines: Frame, source: Source, *, fast_path: bool = True) -> Frame:
    """Add the canonical columns to a line frame (``_file``, ``_line``, ``_raw``), marking bad lines malformed.

    Returns the same kind of frame it is given (lazy stays lazy). No row is removed: lines that do not parse
    get ``_drop = 'malformed'`` and a ``_detail``; the input columns, ``_raw`` included, are kept.
    ``fast_path=False`` parses with the format's regular expression alone (the reference the tests compare with).
    """
    if source.prefix:
        return strip_prefix(lines, source, parse)
    if source.format in PLUGINS:
        return _plugin(source.format)(lines, source)
    lazy = lines.lazy() if isinstance(lines, pl.DataFrame) else lines
    zone = _check_timezone(source)
    if source.format != "regex" and source.format not in FORMATS:
        raise MappingError(f"unknown source format '{source.format}' (known: {', '.join(known_formats())})",
                           **_where(source, "source.format"))
    names = lazy.collect_schema().names()
    if "_drop" not in names:
        lazy = lazy.with_columns(pl.lit(None, pl.String).alias("_drop"))
    if "_detail" not in names:
        lazy = lazy.with_columns(pl.lit(None, pl.String).alias("_detail"))
    passthrough = [n for n in lazy.collect_schema().names() if n not in CANONICAL]

    if source.format == "regex":
        lazy, groups = _match_regex(lazy, _check_pattern(source))
        time_format, label, preset = source.time_format or CLF_TIME, "the source pattern", False
    else:
        log_format = FORMATS[source.format]
        lazy, groups = _match_preset(lazy, log_format, fast_path)
        if "captured_request" in groups:
            captured = captured_headers(pl.col("__captured_request"), source.captures)
            lazy = lazy.with_columns(**{f"__{name}": value for name, value in captured.items()})
            groups += [name for name in captured if name not in groups]
        time_format = source.time_format or log_format.time_format
        label, preset = f"format '{log_format.name}'", source.time_format is None

    lazy = lazy.with_columns(_drop_when(~pl.col("__matched"), "malformed",
                                        pl.when(pl.col("_raw") == "").then(pl.lit("empty line"))
                                        .otherwise(pl.lit(f"line does not match {label}"))))
    lazy = _normalise(lazy.drop("__matched"), groups, source, time_format, zone, lenient_offset=preset)
    # A preset yields the canonical columns only; a regex source also keeps its other named groups.
    extras: list[str] = [n for n in _extra_groups(groups) if n not in passthrough] if source.format == "regex" else []
    # A malformed line carries no half-parsed fields (its time may parse while its request does not).
    alive = pl.col("_drop").is_null()
    out = lazy.select(*passthrough, *(pl.when(alive).then(pl.col(n)).alias(n) for n in [*CANONICAL, *extras]))
    return out.collect() if isinstance(lines, pl.DataFrame) else out


def strip_prefix(lines: Frame, source: Source, parse_stripped: Callable[[Frame, Source], Frame]) -> Frame:
    """Parse ``lines`` with ``source.prefix`` (a regex) removed from the start of each line where it matches.

    The line as read stays in ``_raw`` (the rejects file shows it); only the parser sees it stripped.
    """
    assert source.prefix is not None
    original = "__raw_as_read"
    stripped = lines.with_columns(pl.col("_raw").alias(original), without_prefix(pl.col("_raw"), source.prefix))
    out = parse_stripped(stripped, replace(source, prefix=None))
    return out.with_columns(pl.col(original).alias("_raw")).drop(original)


#: HAProxy captured request headers recognised by their value when ``source.captures`` does not name them.
CAPTURE_SHAPES: dict[str, str] = {
    "referrer": r"^https?://",
    "vhost": r"(?i)^(?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?$|^localhost(?::\d+)?$",
    "user_agent": r"(?i)^[a-z][\w.+ -]*/[\w.]|compatible;|bot|crawl|spider",
}
_CAPTURE_COLUMNS = {"host": "vhost", "user_agent": "user_agent", "referrer": "referrer"}


def without_prefix(text: pl.Expr, prefix: str) -> pl.Expr:
    """``text`` with the regex ``prefix`` removed from its start where it matches (``source.prefix``)."""
    return text.str.replace(f"^(?:{prefix})", "")


def captured_headers(block: pl.Expr, names: list[str]) -> dict[str, pl.Expr]:
    """User agent, referrer and host from HAProxy's first ``{a|b|c}`` block (its captured request headers).

    ``names`` (``source.captures``) says what each slot holds, in the order of the ``capture request header``
    lines; without it a slot is recognised by its value (``CAPTURE_SHAPES``: a URL is the referrer, a host name
    the host, a ``product/version`` string the user agent), the first slot of each shape winning.
    """
    slots = block.str.split("|")
    if names:
        out: dict[str, pl.Expr] = {}
        for index, name in enumerate(names):
            column = _CAPTURE_COLUMNS.get(name)
            if column is not None and column not in out:
                out[column] = slots.list.get(index, null_on_oob=True)
        return out
    out = {}
    for column, shape in CAPTURE_SHAPES.items():
        taken = list(out)  # shapes checked earlier win a slot that looks like both
        keep = pl.element().str.contains(shape)
        for other in taken:
            keep = keep & ~pl.element().str.contains(CAPTURE_SHAPES[other])
        out[column] = slots.list.eval(pl.element().filter(keep)).list.first()
    return out


def known_formats() -> list[str]:
    """Every value ``source.format`` accepts for access logs."""
    return [*FORMATS, "regex", *PLUGINS]


#: Formats that one regular expression per line cannot describe (a header that names the columns, JSON
#: objects), each parsed by its own module ``logmap.sources.<module>`` exposing ``parse(lines, source)``.
#: Imported on first use so that the NCSA path pays nothing for them. Name → (module, description, example).
PLUGINS: dict[str, tuple[str, str, str]] = {
    "w3c": ("w3c", "W3C extended / IIS: fields named by '#Fields:' headers, which may change mid-file",
            "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status sc-bytes cs(Referer) "
            "cs(User-Agent)\n2024-03-01 10:00:00 127.0.0.1 GET /cart a=1 200 2326 - Mozilla/5.0+(X11)"),
    "auto": ("detect", "detect each file's format from its first lines (canonical columns only)",
             '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'),
    "combined_xff": ("xff", "combined + a trailing \"X-Forwarded-For\" field; the client IP is its first address",
                     '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /cart HTTP/1.1" 200 2326 "-" "Mozilla/5.0" '
                     '"203.0.113.9, 10.0.0.1"'),
    "cloudfront": ("cloudfront", "AWS CloudFront standard log: W3C headers, tab-separated, URL-encoded user agent",
                   "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
                   "cs(Referer) cs(User-Agent) cs-uri-query\n2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\t"
                   "d111111abcdef8.cloudfront.net\t/index.html\t200\t-\tMozilla/5.0%20(X11)\t-"),
    "nginx": ("formatstring", "your nginx log_format string as source.pattern, compiled to a parser",
              "pattern: '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
              "\"$http_referer\" \"$http_user_agent\" $request_time'"),
    "apache": ("formatstring", "your Apache LogFormat string as source.pattern, compiled to a parser",
               "pattern: '%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %D'"),
    "caddy": ("jsonlog", "Caddy v2 JSON access log (request.client_ip, request.uri, ts, status, size, headers)",
              '{"level":"info","ts":1709287200.5,"logger":"http.log.access","msg":"handled request",'
              '"request":{"remote_ip":"127.0.0.1","client_ip":"127.0.0.1","proto":"HTTP/2.0","method":"GET",'
              '"host":"shop.example.com","uri":"/cart?a=1","headers":{"User-Agent":["Mozilla/5.0"],'
              '"Referer":["https://shop.example.com/"]}},"user_id":"","duration":0.01,"size":2326,"status":200}'),
    "nginx_json": ("jsonlog", "nginx log_format escape=json with its variable names as keys ($remote_addr, "
                   "$time_iso8601 or $msec, $request, $status, $body_bytes_sent, $http_referer, $http_user_agent)",
                   '{"remote_addr":"127.0.0.1","remote_user":"","time_iso8601":"2024-03-01T10:00:00+00:00",'
                   '"request":"GET /cart?a=1 HTTP/1.1","status":"200","body_bytes_sent":"2326",'
                   '"http_referer":"https://shop.example.com/","http_user_agent":"Mozilla/5.0"}'),
    "cloudflare": ("jsonlog", "Cloudflare Logpush HTTP requests, JSON lines (ClientIP, ClientRequestHost, "
                   "ClientRequestMethod, ClientRequestURI, EdgeStartTimestamp, EdgeResponseStatus, "
                   "EdgeResponseBytes, ClientRequestReferer, ClientRequestUserAgent)",
                   '{"ClientIP":"192.0.2.1","ClientRequestHost":"shop.example.com","ClientRequestMethod":"GET",'
                   '"ClientRequestURI":"/cart?a=1","ClientRequestProtocol":"HTTP/2","EdgeStartTimestamp":'
                   '"2024-03-01T10:00:00Z","EdgeResponseStatus":200,"EdgeResponseBytes":2326,'
                   '"ClientRequestReferer":"https://shop.example.com/","ClientRequestUserAgent":"Mozilla/5.0"}'),
    "shoutcast": ("w3c", "SHOUTcast W3C log: #Fields: headers, c-status, percent-encoded user agents",
                  "#Software: SHOUTcast\n#Fields: c-ip c-dns date time cs-uri-stem c-status cs(User-Agent) sc-bytes "
                  "x-duration avgbandwidth\n192.0.2.7 192.0.2.7 2024-03-01 10:00:00 /stream?title=Live 200 "
                  "VLC%2F3.0.18%20LibVLC%2F3.0.18 65580 1 524640"),
    "incapsula": ("w3c", "Imperva Incapsula W3C log: every value quoted, cs-uri is host + path",
                  '#Software: Incapsula LOGS API\n#Fields: date time c-ip cs(User-Agent) cs-uri cs-method '
                  'cs-uri-query sc-status cs(Referrer) cs-bytes\n"2024-03-01" "10:00:00" "192.0.2.7" '
                  '"Mozilla/5.0 (X11; Linux x86_64)" "shop.example.com/cart" "GET" "a=1" "200" "-" "2326"'),
    "traefik": ("jsonlog", "Traefik JSON access log (ClientHost, StartUTC, RequestMethod, RequestPath, "
                "DownstreamStatus, DownstreamContentSize, request_User-Agent)",
                '{"ClientHost":"127.0.0.1","StartUTC":"2024-03-01T10:00:00.123456789Z","RequestMethod":"GET",'
                '"RequestPath":"/cart?a=1","RequestProtocol":"HTTP/1.1","DownstreamStatus":200,'
                '"DownstreamContentSize":2326,"request_Referer":"https://shop.example.com/",'
                '"request_User-Agent":"Mozilla/5.0"}'),
}


def _plugin(name: str) -> Callable[[Frame, Source], Frame]:
    module = importlib.import_module(f"logmap.sources.{PLUGINS[name][0]}")
    return module.parse


# ---------------------------------------------------------------------------------------------------------------
# Matching: string fields plus a "matched" flag


def _match_preset(lazy: pl.LazyFrame, log_format: LogFormat, fast_path: bool) -> tuple[pl.LazyFrame, list[str]]:
    """Add ``__<group>`` string columns and ``__matched`` for a preset (fast path, else its regex).

    Intermediate results are materialised as temporary columns on purpose: an expression reused in several
    places would otherwise be evaluated once per use.
    """
    groups = group_names(log_format.pattern)
    first = groups[0]  # every preset's first group is required: non-null exactly when the line matched
    if log_format.fast is None or not fast_path:
        lazy = lazy.with_columns(_extract(pl.col("_raw"), log_format.pattern).alias("__m"))
        return lazy.with_columns(pl.col("__m").struct.field(first).is_not_null().alias("__matched"),
                                 *(pl.col("__m").struct.field(g).alias(f"__{g}") for g in groups)).drop("__m"), groups
    lazy, fast = _fast_split(lazy, log_format.fast)
    ok = pl.col("__ok")
    # The regex only runs on lines the fast path declined (its input is null elsewhere, which costs nothing).
    declined = pl.when(ok).then(None).otherwise(pl.col("_raw"))
    lazy = lazy.with_columns(_extract(declined, log_format.pattern).alias("__m"))
    slow = pl.col("__m")
    lazy = lazy.with_columns(
        (ok | slow.struct.field(first).is_not_null()).alias("__matched"),
        *((pl.when(ok).then(pl.col(fast[g])).otherwise(slow.struct.field(g)) if g in fast
           else slow.struct.field(g)).alias(f"__{g}") for g in groups))
    names = lazy.collect_schema().names()  # resolved once: each call walks the whole plan so far
    temporary = [n for n in names if n.startswith("__f_")]
    temporary += ["__ok", "__m", "__q", "__h", "__n"]
    return lazy.drop([n for n in temporary if n in names]), groups


def _fast_split(lazy: pl.LazyFrame, shape: _Fast) -> tuple[pl.LazyFrame, dict[str, str]]:
    """Cut NCSA lines with ``splitn``; ``__ok`` says where the pieces have exactly the format's shape.

    Returns the frame with ``__f_<group>`` columns and the map group → column name.
    """
    raw = pl.col("_raw")
    lazy = lazy.with_columns(raw.str.splitn('"', 7 if shape.quoted_tail else 3).alias("__q"))
    quotes = pl.col("__q")
    numbers = r"^ (?P<status>\d{3}) (?P<bytes>\d+|-)" + (" $" if shape.quoted_tail else _TRAILING)
    lazy = lazy.with_columns(
        quotes.struct.field("field_0").str.splitn(" ", len(shape.head) + 1).alias("__h"),  # 'ip ident user [time] '
        quotes.struct.field("field_2").str.extract_groups(numbers).alias("__n"),           # ' status bytes '
    )
    head, nums = pl.col("__h"), pl.col("__n")
    columns = {f"__f_{name}": head.struct.field(f"field_{i}") for i, name in enumerate(shape.head)}
    columns |= {"__f_bracket": head.struct.field(f"field_{len(shape.head)}"),
                "__f_request": quotes.struct.field("field_1"),
                "__f_status": nums.struct.field("status"), "__f_bytes": nums.struct.field("bytes")}
    if shape.quoted_tail:
        columns |= {"__f_referrer": quotes.struct.field("field_3"), "__f_user_agent": quotes.struct.field("field_5"),
                    "__f_between": quotes.struct.field("field_4"), "__f_rest": quotes.struct.field("field_6")}
    lazy = lazy.with_columns(**columns)
    bracket = pl.col("__f_bracket")
    lazy = lazy.with_columns(bracket.str.strip_prefix("[").str.strip_suffix("] ").alias("__f_time"))
    time = pl.col("__f_time")
    ok = ~raw.str.contains("\\", literal=True) & pl.col("__f_ip").str.contains(r"^[!-~]+$")
    for name in shape.head:
        ok = ok & (pl.col(f"__f_{name}").str.len_bytes() > 0)
    ok = (ok & bracket.str.starts_with("[") & bracket.str.ends_with("] ") & (time.str.len_bytes() > 0)
          & ~time.str.contains("]", literal=True) & pl.col("__f_status").is_not_null())
    if shape.quoted_tail:
        rest = pl.col("__f_rest")
        ok = ok & (pl.col("__f_between") == " ") & ((rest == "") | rest.str.starts_with(" ")
                                                    | rest.str.starts_with("\t"))
    if "_vhost_port" in shape.head:
        lazy = lazy.with_columns(pl.col("__f__vhost_port").str.extract_groups(r"^(?P<vhost>[^ ]+):(?P<port>\d+)$")
                                 .alias("__f_vp"))
        lazy = lazy.with_columns(pl.col("__f_vp").struct.field("vhost").alias("__f_vhost"),
                                 pl.col("__f_vp").struct.field("port").alias("__f_port"))
        ok = ok & pl.col("__f_vhost").is_not_null()
    lazy = lazy.with_columns(ok.fill_null(False).alias("__ok"))
    groups = [n for n in shape.head if not n.startswith("_")] + ["time", "request", "status", "bytes"]
    groups += ["referrer", "user_agent"] if shape.quoted_tail else []
    groups += ["vhost", "port"] if "_vhost_port" in shape.head else []
    return lazy, {g: f"__f_{g}" for g in groups}


def _match_regex(lazy: pl.LazyFrame, pattern: str) -> tuple[pl.LazyFrame, list[str]]:
    # An always-empty leading group: "" on a match, null on a miss, even if every user group is optional.
    wrapped = f"(?P<{_MATCH}>)(?:{pattern})"
    groups = [g for g in group_names(wrapped) if g != _MATCH]
    lazy = lazy.with_columns(_extract(pl.col("_raw"), wrapped).alias("__m"))
    m = pl.col("__m")
    lazy = lazy.with_columns(m.struct.field(_MATCH).is_not_null().alias("__matched"),
                             *(m.struct.field(g).alias(f"__{g}") for g in groups))
    return lazy.drop("__m"), groups


def _extract(text: pl.Expr, pattern: str) -> pl.Expr:
    return text.str.extract_groups(pattern)


def group_names(pattern: str) -> list[str]:
    """Named groups of a pattern, in order, as polars' regex engine sees them (unnamed groups are skipped)."""
    schema = pl.LazyFrame(schema={"_raw": pl.String}).select(_extract(pl.col("_raw"), pattern)).collect_schema()
    dtype = schema["_raw"]
    assert isinstance(dtype, pl.Struct)
    return [f.name for f in dtype.fields if not f.name.isdigit()]


# ---------------------------------------------------------------------------------------------------------------
# Normalisation: strings → canonical columns


def _normalise(lazy: pl.LazyFrame, fields: list[str], source: Source, time_format: str,
               zone: str, *, lenient_offset: bool) -> pl.LazyFrame:
    """Turn the ``__<group>`` string columns into the canonical columns, marking unparseable values malformed."""
    alive = pl.col("_drop").is_null()
    # Only lines still alive are normalised: a malformed line's leftovers must not produce half a record.
    lazy = lazy.with_columns(pl.when(alive).then(pl.col(f"__{name}")).alias(f"__{name}") for name in fields)
    have = set(fields)
    col = {name: pl.col(f"__{name}") for name in fields}

    columns: dict[str, pl.Expr] = {}
    for name in _TEXT:
        if name in have:
            columns[name] = _absent(col[name])
    if "request" in have:
        lazy = lazy.with_columns(col["request"].str.extract_groups(REQUEST).alias("__req"))
        request = pl.col("__req")
        for part in ("method", "target", "protocol"):
            if part not in have:
                columns[part] = request.struct.field(part)
        lazy = lazy.with_columns(_drop_when(col["request"].is_not_null() & request.struct.field("method").is_null(),
                                            "malformed", pl.format('request line "{}" is not METHOD TARGET PROTOCOL',
                                                                   _clip(col["request"]))))
    lazy = lazy.with_columns(**columns)
    if "request" in have:
        lazy = lazy.drop("__req")

    # target / path / query: derive whichever is missing from the others. A path field may carry the query
    # ('/p?q=1': W3C cs-uri-stem, a regex group): it is cut at its first '?', a query field winning over the cut.
    if "path" in have:
        lazy = lazy.with_columns(_absent(col["path"]).str.splitn("?", 2).alias("__pq"))
        path_part = pl.col("__pq").struct.field("field_0")
        path_query = pl.col("__pq").struct.field("field_1")
        given_query = pl.coalesce(_absent(col["query"]).str.strip_prefix("?"), path_query) if "query" in have \
            else path_query
    elif "query" in have:
        given_query = _absent(col["query"]).str.strip_prefix("?")
    if "request" in have or "target" in have:
        target = _absent(col["target"]) if "target" in have else pl.col("target")
    elif "path" in have:
        target = pl.when(given_query.is_null() | (given_query == "")).then(path_part).otherwise(
            pl.concat_str([path_part, pl.lit("?"), given_query]))
    else:
        target = pl.lit(None, pl.String)
    lazy = lazy.with_columns(target.alias("target"))
    # Origin-form targets ('/p?q') are split on the first '?'; only the rare absolute-form ones
    # ('http://host/p?q') go through a regex, fed nulls elsewhere so it costs nothing on the rest.
    target = pl.col("target")
    absolute = pl.when(~target.str.starts_with("/")).then(target).str.extract_groups(_TARGET)
    lazy = lazy.with_columns(absolute.alias("__abs"), target.str.splitn("?", 2).alias("__split"))
    split_path = pl.coalesce(pl.col("__abs").struct.field("path"), pl.col("__split").struct.field("field_0"))
    split_query = pl.when(pl.col("__abs").is_not_null()).then(pl.col("__abs").struct.field("query")).otherwise(
        pl.col("__split").struct.field("field_1"))
    if "path" in have:
        path = _absent(path_part)
    else:  # 'http://host' and '?q=1' have an empty path: that is the root
        path = pl.when(target.is_not_null()).then(_absent(split_path).fill_null("/"))
    query = given_query if "query" in have else split_query
    lazy = lazy.with_columns(path.alias("path"), pl.when(query != "").then(query).alias("query"))
    if "vhost" not in have:  # an absolute-form target (ALB, ELB, a proxy's log) names the host
        lazy = lazy.with_columns(_absent(pl.col("__abs").struct.field("host")).alias("vhost"))
    lazy = lazy.drop("__split", "__abs", *(["__pq"] if "path" in have else []))

    for name, dtype in (("status", pl.Int32), ("bytes", pl.Int64)):
        if name in have:
            text = _absent(col[name])
            value = text.str.strip_chars().cast(dtype, strict=False)
            lazy = lazy.with_columns(value.alias(name))
            lazy = lazy.with_columns(_drop_when(text.is_not_null() & pl.col(name).is_null(), "malformed",
                                                pl.format("{} \"{}\" is not a number", pl.lit(name), _clip(text))))

    if "time" in have:
        text = _absent(col["time"])
        lazy = lazy.with_columns(parse_time(text, time_format, zone).alias("time"))
        if lenient_offset and _has_offset(time_format):  # a preset's CLF time logged without its offset
            naive_format = time_format.replace(" %z", "").replace("%z", "")
            retry = pl.when(pl.col("time").is_null()).then(text)
            lazy = lazy.with_columns(pl.coalesce(pl.col("time"), parse_time(retry, naive_format, zone)).alias("time"))
        lazy = lazy.with_columns(_drop_when(text.is_not_null() & pl.col("time").is_null(), "malformed",
                                            pl.format("timestamp \"{}\" does not match '{}'{}", _clip(text),
                                                      pl.lit(time_format),
                                                      pl.lit("" if zone == "UTC" else f" in {zone}"))))

    if "url" in have:
        url = _absent(col["url"])
    else:
        target = pl.col("target")
        site = (source.site or "").rstrip("/")
        url = (pl.when(target.str.starts_with("/")).then(pl.concat_str([pl.lit(site), target]))
               .when(target.str.contains(r"^[A-Za-z][A-Za-z0-9+.-]*://")).then(target))
    lazy = lazy.with_columns(url.alias("url"))

    present = lazy.collect_schema().names()  # resolved once: each call walks the whole plan so far
    missing = {name: pl.lit(None, dtype) for name, dtype in CANONICAL.items() if name not in present}
    lazy = lazy.with_columns(**missing)
    lazy = lazy.with_columns(*(pl.col(name).cast(dtype) for name, dtype in CANONICAL.items()))
    # Extra groups of a regex source keep their (cleaned) string value under their own name.
    lazy = lazy.with_columns(**{name: _absent(col[name]) for name in _extra_groups(fields)})
    return lazy.drop([f"__{name}" for name in fields])


def parse_time(text: pl.Expr, time_format: str, timezone: str = "UTC") -> pl.Expr:
    """Parse ``text`` with a strptime ``time_format`` into ``Datetime('ms', 'UTC')``; null where it does not parse.

    With an offset in the format (``%z``) the offset decides; without one, the time is read in ``timezone``
    (ambiguous times at a DST change take the earlier instant; times in a DST gap are null).
    """
    if _has_offset(time_format):
        return text.str.strptime(pl.Datetime("ms", "UTC"), time_format, strict=False)
    return _in_zone(text.str.strptime(pl.Datetime("ms"), time_format, strict=False), timezone)


def _has_offset(time_format: str) -> bool:
    return any(z in time_format for z in ("%z", "%:z", "%::z", "%#z"))


def _in_zone(naive: pl.Expr, timezone: str) -> pl.Expr:
    if timezone == "UTC":
        return naive.dt.replace_time_zone("UTC")
    return (naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC"))


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _extra_groups(fields: list[str]) -> list[str]:
    """Groups that are neither canonical nor consumed by normalisation (``request``, ``port``…)."""
    return [n for n in fields if n not in CANONICAL and n not in _SPECIAL and n != "port" and n != _MATCH]


def _absent(expr: pl.Expr) -> pl.Expr:
    """``-`` and empty mean absent in access logs."""
    return pl.when((expr != "-") & (expr != "")).then(expr)


def _clip(expr: pl.Expr, width: int = 80) -> pl.Expr:
    return pl.when(expr.str.len_chars() > width).then(expr.str.slice(0, width) + "…").otherwise(expr)


def _drop_when(condition: pl.Expr, reason: str, detail: pl.Expr) -> list[pl.Expr]:
    """Set ``_drop``/``_detail`` where ``condition`` holds on a row that is still alive (first reason wins)."""
    hit = pl.col("_drop").is_null() & condition.fill_null(False)
    return [pl.when(hit).then(pl.lit(reason)).otherwise(pl.col("_drop")).alias("_drop"),
            pl.when(hit).then(detail).otherwise(pl.col("_detail")).alias("_detail")]


def _where(source: Source, key: str) -> dict[str, Any]:
    where = source.where
    if where is None:
        return {"key": key}
    return {"file": where.file, "line": where.line, "column": where.column, "key": key}


def _check_timezone(source: Source) -> str:
    zone = source.timezone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"unknown time zone '{zone}' (use an IANA name such as 'Europe/Paris')",
                           **_where(source, "source.timezone")) from None
    return zone


def _check_pattern(source: Source) -> str:
    if not source.pattern:
        raise MappingError("format 'regex' needs a 'pattern' with named groups", **_where(source, "source.pattern"))
    try:
        groups = group_names(source.pattern)
    except pl.exceptions.ComputeError as error:
        reason = str(error).split("error:")[-1].strip().splitlines()[0]
        raise MappingError(f"the pattern does not compile: {reason}", **_where(source, "source.pattern")) from None
    if not groups:
        raise MappingError("the pattern has no named groups: name them like (?P<path>[^ ]+)",
                           **_where(source, "source.pattern"))
    return source.pattern
