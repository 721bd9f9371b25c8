"""W3C extended log files (IIS, and any server writing ``#Fields:`` headers) → the canonical columns.

Why it looks like this
======================

A W3C log names its columns in a ``#Fields:`` directive, and the directive may change in the middle of a file
(IIS writes a new header block on every restart or configuration change). So a line cannot be parsed on its
own: it is parsed with the latest ``#Fields:`` line above it. Columnar plan:

1. every ``#Fields:`` line is copied into a ``__fields`` column and **forward-filled** over the rows of its file;
2. the rows are grouped by their distinct ``__fields`` value (a handful per file), and each group is cut with
   one ``str.split`` on the separator and its pieces picked by position — no per-row Python;
3. the pieces are named after the canonical columns (table ``FIELD_MAP``) and normalised by
   ``logmap.sources.accesslog`` exactly like the NCSA presets, so both kinds of log give the same columns.

A file is read in chunks: the header in force at the end of a chunk is carried into the next chunk of the
same file (``_carry``), keyed by file name; a chunk starting at line 1 starts afresh.

The ledger stays exact: directive lines (``#Software``, ``#Fields``…) are ``malformed`` with ``_detail``
``header line``; a data line before any ``#Fields:``, or with another number of fields than its header names,
is ``malformed`` with a detail saying so; so is a line of nothing but white space. Times are UTC (the W3C format
and IIS write UTC); ``source.timezone`` reads them in another zone when a server was configured to log local
time (IIS Advanced Logging's ``date-local``/``time-local``, used when there is no ``date``/``time``). IIS
replaces spaces in ``cs(User-Agent)`` by ``+``; those are turned back into spaces; percent-encoded user agents
(Shoutcast, CloudFront) are decoded. ``time-taken`` is kept as ``time_taken`` (String, as logged: milliseconds
for IIS).

Variants handled by the same plan: values separated by runs of spaces or tabs, quoted values that contain
spaces (IIS Advanced Logging, Incapsula; the quotes are stripped), ``#Fields:`` padded with spaces, header
blocks separated by blank lines, fields outside the standard set (``FIELD_MAP``, ``PREFERENCE``; the mapping's
``source.fields`` renames any other), a ``cs-uri-stem`` holding the query (cut at its ``?``).
"""

from __future__ import annotations

import re
from typing import TypeVar
from urllib.parse import unquote

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import accesslog

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: W3C field identifier → group name understood by ``accesslog._normalise`` (canonical column or ``request``),
#: plus ``date``/``time`` (joined into the time) and ``time_taken``. ``source.fields`` adds to and overrides it.
FIELD_MAP: dict[str, str] = {
    "c-ip": "ip", "cs-username": "user", "cs-method": "method", "cs-uri-stem": "path", "cs-uri-query": "query",
    "cs-uri": "target", "sc-status": "status", "c-status": "status", "x-cf-status": "status", "sc-bytes": "bytes",
    "cs-bytes": "bytes", "cs(referer)": "referrer", "cs(referrer)": "referrer", "c-referrer": "referrer",
    "cs(user-agent)": "user_agent", "c-user-agent": "user_agent", "cs-version": "protocol",
    "cs-protocol-version": "protocol", "x-host-header": "vhost", "cs(host)": "vhost", "cs-host": "vhost",
    "time-taken": "time_taken", "timetakenms": "time_taken", "date": "date", "time": "time",
    "date-local": "date", "time-local": "time",
}
#: Where several fields give one column, the earlier name wins whatever the header's order: the site's host
#: (CloudFront's ``x-host-header``) over the distribution's (``cs(Host)``); response bytes over Incapsula's
#: ``cs-bytes``; UTC ``date``/``time`` over IIS Advanced Logging's ``date-local``/``time-local``.
PREFERENCE: dict[str, tuple[str, ...]] = {
    "vhost": ("x-host-header", "cs(host)", "cs-host"), "bytes": ("sc-bytes", "cs-bytes"),
    "date": ("date", "date-local"), "time": ("time", "time-local"), "status": ("sc-status", "c-status", "x-cf-status"),
    "referrer": ("cs(referer)", "cs(referrer)", "c-referrer"),
}
EXTRA_COLUMNS: dict[str, pl.DataType] = {"time_taken": pl.String()}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
#: The directive naming the columns of the lines below it (detection looks for it too).
FIELDS_DIRECTIVE = "#Fields:"
#: A data value: a quoted string (IIS Advanced Logging, Incapsula; the quotes are not part of the value) or a
#: run of non-spaces. Runs of spaces separate values.
_TOKEN = r'"[^"]*"|[^ ]+'
_ABSOLUTE = r"^[A-Za-z][A-Za-z0-9+.-]*://"
_PERCENT = r"%[0-9A-Fa-f]{2}"

# Last ``#Fields:`` value per file, carried across the chunks of one run (see the module docstring).
_carry: dict[str, str] = {}


def parse(lines: Frame, source: Source, *, decoded: tuple[str, ...] = ("user_agent",)) -> Frame:
    """Canonical columns (plus ``time_taken``) for a W3C line frame; every input row comes out once.

    ``decoded`` columns are percent-decoded where they hold escapes (Shoutcast and CloudFront encode user
    agents, CloudFront referrers too), once per distinct value.
    """
    frame = lines.collect() if isinstance(lines, pl.LazyFrame) else lines
    out = percent_decode(_parse_frame(frame, source), decoded)
    return out.lazy() if isinstance(lines, pl.LazyFrame) else out


def percent_decode(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """``columns`` percent-decoded (twice when encoded twice) where they hold an escape: Python once per
    distinct value, joined back."""
    decoded = []
    for name in columns:
        values = frame.get_column(name)
        distinct = values.filter(values.str.contains(_PERCENT)).unique().to_list()
        mapping = {v: decode(v) for v in distinct}
        decoded.append(pl.col(name).replace(mapping) if mapping else pl.col(name))
    return frame.with_columns(*decoded)


def decode(value: str) -> str:
    """Percent-decode, a second time when the first pass still leaves an escape (double encoding)."""
    once = unquote(value)
    return unquote(once) if once != value and re.search(_PERCENT, once) else once


def _parse_frame(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    zone = accesslog._check_timezone(source)
    for name in ("_drop", "_detail"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    passthrough = [n for n in frame.columns if n not in accesslog.CANONICAL and n not in EXTRA_COLUMNS]
    raw = pl.col("_raw")
    trimmed = raw.str.strip_chars_start()
    header = trimmed.str.starts_with("#")
    declared = pl.when(trimmed.str.starts_with(FIELDS_DIRECTIVE)).then(
        trimmed.str.strip_prefix(FIELDS_DIRECTIVE).str.strip_chars())
    # Only a chunk that does not start its file inherits a header (a new run over the same file starts afresh).
    carried = pl.when(pl.col("_line").min().over("_file") != 1).then(
        pl.col("_file").replace_strict(_carry, default=None, return_dtype=pl.String))
    frame = frame.with_row_index("__row").with_columns(
        pl.coalesce(declared.forward_fill().over("_file"), carried).alias("__fields"))
    if frame.height:
        last = frame.group_by("_file").agg(pl.col("__fields").last())
        for file, fields in last.iter_rows():
            if fields is None:
                _carry.pop(file, None)
            else:
                _carry[file] = fields
    frame = frame.with_columns(*accesslog._drop_when(header, "malformed", pl.lit("header line")))
    frame = frame.with_columns(*accesslog._drop_when(raw.str.strip_chars() == "", "malformed", pl.lit("empty line")))
    frame = frame.with_columns(*accesslog._drop_when(pl.col("__fields").is_null(), "malformed",
                                                     pl.lit("data line before any #Fields: header")))
    parts = [_parse_group(frame.filter(pl.col("__fields") == fields), fields, source, zone, passthrough)
             for fields in frame.get_column("__fields").drop_nulls().unique().to_list()]
    rest = frame.filter(pl.col("__fields").is_null())
    parts.append(_parse_group(rest, "", source, zone, passthrough))
    return pl.concat(parts, how="vertical").sort("__row").drop("__row")


def roles(names: list[str], renames: dict[str, str]) -> dict[str, int]:
    """Column → index of the field that gives it, for a ``#Fields:`` list (lower-cased names).

    ``renames`` (``source.fields``, lower-cased keys) comes first; otherwise ``FIELD_MAP``, with ``PREFERENCE``
    choosing between fields that give the same column, then the header's order.
    """
    chosen: dict[str, tuple[int, int]] = {}  # column → (rank, index)
    for index, name in enumerate(names):
        if name in renames:
            role, rank = renames[name], -1
        elif name in FIELD_MAP:
            role = FIELD_MAP[name]
            order = PREFERENCE.get(role, ())
            rank = order.index(name) if name in order else len(order)
        else:
            continue
        if role not in chosen or (rank, index) < chosen[role]:
            chosen[role] = (rank, index)
    return {role: index for role, (_, index) in chosen.items()}


def _parse_group(frame: pl.DataFrame, fields: str, source: Source, zone: str,
                 passthrough: list[str]) -> pl.DataFrame:
    """Rows sharing one ``#Fields:`` header: split once, name the pieces, normalise like the NCSA presets."""
    names = [n.lower() for n in fields.split()]
    lazy = frame.lazy()
    raw = pl.col("_raw")
    # CloudFront and some exporters separate data fields by tabs while the header uses spaces. Space-separated
    # lines are cut on single spaces unless they hold a quote or a run of spaces: those are tokenized.
    tabbed = raw.str.contains("\t", literal=True)
    tokenize = ~tabbed & (raw.str.contains('"', literal=True) | raw.str.contains("  ", literal=True)
                          | raw.str.starts_with(" ") | raw.str.ends_with(" "))
    tokens = pl.when(tokenize).then(raw).str.extract_all(_TOKEN).list.eval(
        pl.element().str.replace(r'^"(.*)"$', "$1"))
    pieces = pl.when(tabbed).then(raw.str.split("\t")).when(tokenize).then(tokens).otherwise(raw.str.split(" "))
    lazy = lazy.with_columns(pieces.alias("__p"))
    count = pl.col("__p").list.len()
    lazy = lazy.with_columns(*accesslog._drop_when(count != len(names), "malformed", pl.format(
        "line has {} fields, its #Fields: header names {}", count, pl.lit(len(names)))))
    alive = pl.col("_drop").is_null()

    def value(index: int) -> pl.Expr:
        return pl.when(alive).then(pl.col("__p").list.get(index, null_on_oob=True))

    found = roles(names, {k.lower(): v for k, v in source.fields.items()})
    groups: dict[str, pl.Expr] = {role: value(index) for role, index in found.items()
                                  if role not in ("date", "time")}
    if "x-cf-status" in names and found.get("status") == names.index("x-cf-status"):
        # CloudFront RTMP: the event's status is "OK" (its only documented value), no HTTP status is logged.
        groups["status"] = pl.when(groups["status"] == "OK").then(pl.lit("200"))
    if "path" in groups:  # CloudFront RTMP logs the stream's URL (rtmp://host/app) as cs-uri-stem
        groups["path"] = groups["path"].str.replace(_ABSOLUTE + "[^/]*", "")
    if "target" in groups:  # Incapsula's cs-uri is host + path without a scheme: give it one
        target = groups["target"]
        bare = ~target.str.starts_with("/") & ~target.str.contains(_ABSOLUTE) & target.str.contains("/", literal=True)
        groups["target"] = pl.when(bare).then(pl.concat_str([pl.lit("http://"), target])).otherwise(target)
        if "vhost" not in groups:
            groups["vhost"] = pl.when(bare).then(target.str.extract(r"^([^/]+)/", 1))
    if "user_agent" in groups:  # IIS writes spaces in user agents as '+'
        groups["user_agent"] = groups["user_agent"].str.replace_all("+", " ", literal=True)
    if "time" in found and "date" in found:
        groups["time"] = pl.concat_str([value(found["date"]), pl.lit(" "), value(found["time"])])
    elif "time" in source.fields.values():  # a field the user says holds the whole time
        groups["time"] = value(found["time"])
    time_taken = groups.pop("time_taken", pl.lit(None, pl.String))
    lazy = lazy.with_columns(accesslog._absent(time_taken).alias("time_taken"),
                             *(expr.alias(f"__{name}") for name, expr in groups.items()))
    lazy = accesslog._normalise(lazy.drop("__p"), list(groups), source, TIME_FORMAT, zone, lenient_offset=False)
    alive = pl.col("_drop").is_null()
    columns = [*accesslog.CANONICAL, *EXTRA_COLUMNS]
    out = lazy.select("__row", *passthrough,
                      *(pl.when(alive).then(pl.col(n)).cast(t).alias(n)
                        for n, t in {**accesslog.CANONICAL, **EXTRA_COLUMNS}.items()))
    assert out.collect_schema().names()[-len(columns):] == columns
    return out.collect()
