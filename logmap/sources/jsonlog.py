"""JSON access logs (one object per line: Caddy v2, nginx ``escape=json``, Traefik) → the canonical columns.

Why it looks like this
======================

JSON access logs differ only in *where* each field lives (Caddy nests ``request.headers.User-Agent[0]``, nginx
uses whatever keys its ``log_format`` names, usually after its variables, Traefik uses ``ClientHost``…). So one
parser serves them all: every canonical column has, per preset, an ordered list of JSON paths
(``PRESET_PATHS``) and takes the first one present, with ``str.json_path_match`` over the whole chunk
(columnar; no per-row Python). The presets
``caddy``, ``nginx_json`` (its usual variable names and the keys of Matomo's documented ``nginx_json``
``log_format``: ``ip``, ``host``, ``path``, ``status``, ``referrer``, ``user_agent``, ``length``, ``date``),
``traefik`` and ``cloudflare`` (Logpush HTTP requests) share this parser, each with its own keys and example.
``source.fields`` puts keys of the user's own (``{client.ip: ip}``) before a preset's.

Times: a number (Caddy ``ts``, nginx ``$msec``, Cloudflare ``EdgeStartTimestamp`` in ``unixnano``) is Unix
time, in seconds, or in milli-, micro- or nanoseconds when it is that large; a string is ISO 8601 with an offset
or ``Z`` (nginx ``$time_iso8601``, Traefik ``StartUTC``) or CLF (nginx ``$time_local``). nginx ``$request``
(``GET /p HTTP/1.1``) fills method, target and protocol when they are not logged on their own.

The ledger stays exact: a line that is not a JSON object (blank, a startup message, another format) or an
object without a request target is ``malformed`` with ``_detail`` saying so; a time that does not parse is
``malformed`` too. All canonical columns are always present (null when the log has no such field).
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import accesslog

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: Per preset: canonical column → JSON paths to try, first present wins. Each ``json_path_match`` parses the
#: line again, so a preset tries only its own server's keys (nginx's keys are the user's choice: the common
#: variable names plus a few generic ones).
PRESET_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "caddy": {
        "ip": ("$.request.client_ip", "$.request.remote_ip"), "user": ("$.user_id",),
        "method": ("$.request.method",), "target": ("$.request.uri",), "protocol": ("$.request.proto",),
        "status": ("$.status",), "bytes": ("$.size",), "referrer": ("$.request.headers.Referer[0]",),
        "user_agent": ("$.request.headers['User-Agent'][0]",), "vhost": ("$.request.host",),
    },
    "nginx_json": {
        "ip": ("$.remote_addr", "$.client_ip", "$.ip"), "user": ("$.remote_user",),
        "method": ("$.request_method", "$.method"), "target": ("$.request_uri", "$.uri", "$.path"),
        "protocol": ("$.server_protocol", "$.protocol"), "status": ("$.status",),
        "bytes": ("$.body_bytes_sent", "$.bytes_sent", "$.bytes", "$.length"),
        "referrer": ("$.http_referer", "$.referer", "$.referrer"),
        "user_agent": ("$.http_user_agent", "$.user_agent"), "vhost": ("$.host", "$.server_name"),
    },
    "traefik": {
        "ip": ("$.ClientHost",), "user": ("$.ClientUsername",), "method": ("$.RequestMethod",),
        "target": ("$.RequestPath",), "protocol": ("$.RequestProtocol",), "status": ("$.DownstreamStatus",),
        "bytes": ("$.DownstreamContentSize",), "referrer": ("$['request_Referer']",),
        "user_agent": ("$['request_User-Agent']",), "vhost": ("$.RequestHost",),
    },
    "cloudflare": {
        "ip": ("$.ClientIP",), "user": (), "method": ("$.ClientRequestMethod",),
        "target": ("$.ClientRequestURI", "$.ClientRequestPath"), "protocol": ("$.ClientRequestProtocol",),
        "status": ("$.EdgeResponseStatus",), "bytes": ("$.EdgeResponseBytes",),
        "referrer": ("$.ClientRequestReferer",), "user_agent": ("$.ClientRequestUserAgent",),
        "vhost": ("$.ClientRequestHost",),
    },
}
#: Per preset: where the event time is (Unix seconds, ISO 8601 or CLF; see ``_time``).
TIME_PATHS: dict[str, tuple[str, ...]] = {
    "caddy": ("$.ts",),
    "nginx_json": ("$.time_iso8601", "$.msec", "$.time_local", "$.time", "$.timestamp", "$.date"),
    "traefik": ("$.StartUTC",), "cloudflare": ("$.EdgeStartTimestamp",),
}
#: A JSON time that is a number: Unix seconds, or milli-, micro- or nanoseconds (Cloudflare's ``unixnano``),
#: told apart by magnitude (seconds reach 1e11 in the year 5138).
_EPOCH_UNITS = ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3))
FIELDS = ("ip", "user", "method", "target", "protocol", "status", "bytes", "referrer", "user_agent", "vhost")
REQUEST_PATH = "$.request"  # nginx $request ("GET /p HTTP/1.1"), which fills method/target/protocol
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%S%.f%z")


def is_json_object(text: pl.Expr) -> pl.Expr:
    """Whether a line can be one of these logs' JSON objects (others are malformed; detection screens by it)."""
    return text.str.strip_chars().str.starts_with("{")


def parse(lines: Frame, source: Source) -> Frame:
    """Canonical columns for a frame of JSON lines; every input row comes out once (bad ones malformed)."""
    lazy = lines.lazy() if isinstance(lines, pl.DataFrame) else lines
    zone = accesslog._check_timezone(source)
    names = lazy.collect_schema().names()
    for name in ("_drop", "_detail"):
        if name not in names:
            lazy = lazy.with_columns(pl.lit(None, pl.String).alias(name))
    passthrough = [n for n in lazy.collect_schema().names() if n not in accesslog.CANONICAL]
    raw = pl.col("_raw")
    is_object = is_json_object(raw)
    lazy = lazy.with_columns(*accesslog._drop_when(raw == "", "malformed", pl.lit("empty line")))
    lazy = lazy.with_columns(*accesslog._drop_when(~is_object, "malformed", pl.lit("line is not a JSON object")))
    text = pl.when(pl.col("_drop").is_null()).then(raw)
    paths = preset_paths(source)
    lazy = lazy.with_columns(
        *(_first(text, column_paths).alias(f"__{name}") for name, column_paths in paths.items() if name != "time"),
        _first(text, paths["time"]).alias("__timetext"),
        (text.str.json_path_match(REQUEST_PATH) if source.format == "nginx_json" else pl.lit(None, pl.String))
        .str.extract_groups(accesslog.REQUEST).alias("__req"),
    )
    request = pl.col("__req")
    lazy = lazy.with_columns(*(pl.coalesce(accesslog._absent(pl.col(f"__{part}")), request.struct.field(part))
                               .alias(f"__{part}") for part in ("method", "target", "protocol")))
    lazy = lazy.with_columns(*accesslog._drop_when(pl.col("__target").is_null(), "malformed",
                                                   pl.lit("JSON object has no request target (uri)")))
    lazy = lazy.with_columns(_time(pl.col("__timetext"), zone).alias("time"))
    lazy = lazy.with_columns(*accesslog._drop_when(pl.col("__timetext").is_not_null() & pl.col("time").is_null(),
                                                   "malformed", pl.format('timestamp "{}" is not a Unix time, '
                                                                          "ISO 8601 or CLF",
                                                                          accesslog._clip(pl.col("__timetext")))))
    lazy = accesslog._normalise(lazy.drop("__req"), list(FIELDS), source, accesslog.CLF_TIME, zone,
                                lenient_offset=False)
    alive = pl.col("_drop").is_null()
    out = lazy.select(*passthrough, *(pl.when(alive).then(pl.col(n)).alias(n) for n in accesslog.CANONICAL))
    return out.collect() if isinstance(lines, pl.DataFrame) else out


def preset_paths(source: Source) -> dict[str, tuple[str, ...]]:
    """Column → JSON paths to try for ``source``: the keys ``source.fields`` names first, then the preset's."""
    paths = {**PRESET_PATHS[source.format], "time": TIME_PATHS[source.format]}
    for key, column in source.fields.items():
        paths[column] = (json_path(key), *paths.get(column, ()))
    return paths


def json_path(key: str) -> str:
    """A ``source.fields`` key as a JSON path: ``a.b`` walks into objects; other characters are quoted."""
    if key.startswith("$"):
        return key
    parts = key.split(".")
    return "$" + "".join(f".{p}" if p.replace("_", "a").isalnum() else f"['{p}']" for p in parts)


def _first(text: pl.Expr, paths: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce(*(text.str.json_path_match(p) for p in paths)) if paths else pl.lit(None, pl.String)


def _time(text: pl.Expr, zone: str) -> pl.Expr:
    """Unix time (seconds with fraction, or ms/us/ns by magnitude), ISO 8601 with offset or ``Z``, else CLF;
    null when none fits."""
    number = text.cast(pl.Float64, strict=False)
    epoch = number
    for above, scale in reversed(_EPOCH_UNITS):  # the largest magnitude is tested first
        epoch = pl.when(number.abs() >= above).then(number * scale).otherwise(epoch)
    from_epoch = pl.from_epoch((epoch * 1000).round(0).cast(pl.Int64), time_unit="ms").dt.replace_time_zone("UTC")
    candidates = [from_epoch]
    for fmt in _ISO_FORMATS:
        parsed = text.str.strptime(pl.Datetime("ms", "UTC"), fmt, strict=False) if not fmt.endswith("Z") else \
            text.str.strptime(pl.Datetime("ms"), fmt, strict=False).dt.replace_time_zone("UTC")
        candidates.append(parsed)
    candidates.append(accesslog.parse_time(text, accesslog.CLF_TIME, zone))
    return pl.coalesce(*candidates).cast(pl.Datetime("ms", "UTC"))
