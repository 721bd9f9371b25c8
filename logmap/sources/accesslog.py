"""Access-log formats → canonical columns (see docs/architecture.md).

Each format is one regular expression with named groups, applied by polars' Rust regex engine to a whole chunk
at once; the groups are then normalised the same way for every format (`-` → null, the request line split,
timestamps to UTC, numbers cast). A line the expression does not match, whose request line is not
``METHOD TARGET [PROTOCOL]`` (TLS probes, `"-"`), or whose timestamp does not parse is ``malformed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from logmap.mapping.model import Source
from logmap.transform import drop_when

def _quoted(name: str) -> str:
    return f'"(?P<{name}>(?:[^"\\\\]|\\\\.)*)"'


COMMON = (r"^(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] " + _quoted("request")
          + r" (?P<status>\d{3}) (?P<bytes>\d+|-)")
COMBINED = COMMON + " " + _quoted("referrer") + " " + _quoted("user_agent")
TRAILING = r"(?:\s.*)?$"  # extra fields some servers append (X-Forwarded-For, request time), or a trailing space
CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
REQUEST = r"^(?P<method>[A-Za-z][A-Za-z0-9_-]*) (?P<target>\S+)(?: (?P<protocol>[A-Za-z]+/[0-9.]+))?$"


@dataclass(frozen=True)
class LogFormat:
    name: str
    description: str
    pattern: str
    example: str
    time_format: str = CLF_TIME


FORMATS: dict[str, LogFormat] = {
    "common": LogFormat(
        "common", "NCSA Common Log Format: %h %l %u %t \"%r\" %>s %b", "^" + COMMON[1:] + TRAILING,
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'),
    "combined": LogFormat(
        "combined", "Apache/nginx combined: common + \"%{Referer}i\" \"%{User-agent}i\" (extra trailing fields ignored)",
        COMBINED + TRAILING,
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'),
    "vhost_combined": LogFormat(
        "vhost_combined", "Apache vhost_combined: %v:%p followed by combined",
        r"^(?P<vhost>[^\s:]+)(?::(?P<port>\d+))? " + COMBINED[1:] + TRAILING,
        'shop.example.com:443 127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326 "-" "Mozilla/5.0"'),
}

STRING_FIELDS = ("ip", "ident", "user", "referrer", "user_agent", "vhost", "method", "target", "protocol")


def _absent_if_dash(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(["-", ""]).not_()).then(expr)


def parse_time(text: pl.Expr, time_format: str, timezone: str) -> pl.Expr:
    """Timestamps with an offset are converted to UTC; those without one are read in ``timezone``."""
    if "%z" in time_format or "%Z" in time_format or "%:z" in time_format:
        parsed = text.str.strptime(pl.Datetime("ms", "UTC"), time_format, strict=False)
        return parsed
    naive = text.str.strptime(pl.Datetime("ms"), time_format, strict=False)
    return naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def parse(lines: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Parse ``_raw`` lines into canonical columns; lines that don't parse are dropped as ``malformed``."""
    if source.format == "regex":
        pattern, time_format, label = source.pattern or "", source.time_format or CLF_TIME, "the regex pattern"
    else:
        log_format = FORMATS[source.format]
        pattern, time_format, label = log_format.pattern, source.time_format or log_format.time_format, source.format
    frame = lines
    if "_drop" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("_drop"), pl.lit(None, pl.String).alias("_detail"))
    frame = frame.with_columns(pl.col("_raw").str.extract_groups(pattern).alias("_fields")).unnest("_fields")
    if source.format == "regex":
        # A user's groups may be optional, so only a real match test tells a malformed line.
        unmatched = ~pl.col("_raw").str.contains(pattern)
    else:
        first = next(c for c in frame.columns if c not in lines.columns and c not in ("_drop", "_detail"))
        unmatched = pl.col(first).is_null()  # every preset's first group is required
    frame = frame.with_columns(drop_when(unmatched, "malformed", f"line does not match format '{label}'"))
    return normalise(frame, source, time_format)


def normalise(frame: pl.DataFrame, source: Source, time_format: str = CLF_TIME) -> pl.DataFrame:
    """Bring parsed string fields to the canonical columns and types, marking unparseable lines malformed."""
    columns = set(frame.columns)
    exprs: list[pl.Expr] = []
    if "request" in columns:
        request = pl.col("request").str.extract_groups(REQUEST)
        frame = frame.with_columns(request.alias("_request")).with_columns(
            *[pl.col("_request").struct.field(f).alias(f) for f in ("method", "target", "protocol") if f not in columns])
        frame = frame.with_columns(drop_when(pl.col("_request").struct.field("method").is_null(), "malformed",
                                             pl.format("request line \"{}\" is not METHOD TARGET PROTOCOL",
                                                       pl.col("request").str.slice(0, 80))))
        frame = frame.drop("_request")
        columns = set(frame.columns)
    for name in STRING_FIELDS:
        if name in columns:
            value = _absent_if_dash(pl.col(name))
            exprs.append((value.str.to_uppercase() if name == "method" else value).alias(name))
    if "status" in columns:
        exprs.append(pl.col("status").cast(pl.Int32, strict=False).alias("status"))
    if "bytes" in columns:
        exprs.append(_absent_if_dash(pl.col("bytes")).cast(pl.Int64, strict=False).alias("bytes"))
    frame = frame.with_columns(exprs)
    if "target" in columns and "path" not in columns:
        # Absolute-form targets (proxies log `GET http://host/path`) keep only the path and query.
        relative = pl.col("target").str.replace(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "")
        frame = frame.with_columns(
            relative.str.extract(r"^([^?#]*)", 1).alias("path"),
            pl.when(relative.str.contains(r"\?")).then(relative.str.extract(r"\?([^#]*)", 1))
            .otherwise(None).alias("query"),
        ).with_columns(pl.when(pl.col("query") != "").then(pl.col("query")).alias("query"),
                       pl.when(pl.col("path") != "").then(pl.col("path")).otherwise(pl.lit("/")).alias("path"))
    if "time" in columns:
        frame = frame.with_columns(parse_time(pl.col("time"), time_format, source.timezone).alias("_time"))
        frame = frame.with_columns(drop_when(pl.col("_time").is_null(), "malformed",
                                             pl.format("timestamp \"{}\" does not match {}", pl.col("time"),
                                                       pl.lit(time_format))))
        frame = frame.drop("time").rename({"_time": "time"})
    if "target" in frame.columns:
        base = pl.lit(source.site) if source.site else pl.lit("")
        target = pl.col("target")
        absolute = target.str.starts_with("http://") | target.str.starts_with("https://")
        frame = frame.with_columns(pl.when(absolute).then(target).otherwise(pl.concat_str([base, target])).alias("url"))
    return frame
