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
is ``malformed`` with a detail saying so. Times are UTC (the W3C format and IIS write UTC); ``source.timezone``
reads them in another zone when a server was configured to log local time. IIS replaces spaces in
``cs(User-Agent)`` by ``+``; those are turned back into spaces. ``time-taken`` is kept as ``time_taken``
(String, as logged: milliseconds for IIS).
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from logmap.mapping.model import Source
from logmap.sources import accesslog

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: W3C field identifier → group name understood by ``accesslog._normalise`` (canonical column or ``request``).
FIELD_MAP: dict[str, str] = {
    "c-ip": "ip", "cs-username": "user", "cs-method": "method", "cs-uri-stem": "path", "cs-uri-query": "query",
    "cs-uri": "target", "sc-status": "status", "sc-bytes": "bytes", "cs(referer)": "referrer",
    "cs(user-agent)": "user_agent", "cs-version": "protocol", "cs-protocol-version": "protocol", "cs-host": "vhost",
    "cs(host)": "vhost",
    "time-taken": "time_taken",
}
EXTRA_COLUMNS: dict[str, pl.DataType] = {"time_taken": pl.String()}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_FIELDS = "#Fields:"

# Last ``#Fields:`` value per file, carried across the chunks of one run (see the module docstring).
_carry: dict[str, str] = {}


def parse(lines: Frame, source: Source) -> Frame:
    """Canonical columns (plus ``time_taken``) for a W3C line frame; every input row comes out once."""
    frame = lines.collect() if isinstance(lines, pl.LazyFrame) else lines
    out = _parse_frame(frame, source)
    return out.lazy() if isinstance(lines, pl.LazyFrame) else out


def _parse_frame(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    zone = accesslog._check_timezone(source)
    for name in ("_drop", "_detail"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    passthrough = [n for n in frame.columns if n not in accesslog.CANONICAL and n not in EXTRA_COLUMNS]
    raw = pl.col("_raw")
    header = raw.str.starts_with("#")
    declared = pl.when(raw.str.starts_with(_FIELDS)).then(raw.str.strip_prefix(_FIELDS).str.strip_chars())
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
    frame = frame.with_columns(*accesslog._drop_when(raw == "", "malformed", pl.lit("empty line")))
    frame = frame.with_columns(*accesslog._drop_when(pl.col("__fields").is_null(), "malformed",
                                                     pl.lit("data line before any #Fields: header")))
    parts = [_parse_group(frame.filter(pl.col("__fields") == fields), fields, source, zone, passthrough)
             for fields in frame.get_column("__fields").drop_nulls().unique().to_list()]
    rest = frame.filter(pl.col("__fields").is_null())
    parts.append(_parse_group(rest, "", source, zone, passthrough))
    return pl.concat(parts, how="vertical").sort("__row").drop("__row")


def _parse_group(frame: pl.DataFrame, fields: str, source: Source, zone: str,
                 passthrough: list[str]) -> pl.DataFrame:
    """Rows sharing one ``#Fields:`` header: split once, name the pieces, normalise like the NCSA presets."""
    names = [n.lower() for n in fields.split()]
    lazy = frame.lazy()
    # CloudFront and some exporters separate data fields by tabs while the header uses spaces.
    pieces = pl.when(pl.col("_raw").str.contains("\t", literal=True)).then(pl.col("_raw").str.split("\t")) \
        .otherwise(pl.col("_raw").str.split(" "))
    lazy = lazy.with_columns(pieces.alias("__p"))
    count = pl.col("__p").list.len()
    lazy = lazy.with_columns(*accesslog._drop_when(count != len(names), "malformed", pl.format(
        "line has {} fields, its #Fields: header names {}", count, pl.lit(len(names)))))
    alive = pl.col("_drop").is_null()
    groups: dict[str, pl.Expr] = {}
    for i, name in enumerate(names):
        group = FIELD_MAP.get(name)
        if group is not None and group not in groups:
            groups[group] = pl.when(alive).then(pl.col("__p").list.get(i, null_on_oob=True))
    if "user_agent" in groups:
        groups["user_agent"] = groups["user_agent"].str.replace_all("+", " ", literal=True)
    if "date" in names and "time" in names:
        groups["time"] = pl.when(alive).then(pl.concat_str(
            [pl.col("__p").list.get(names.index("date"), null_on_oob=True), pl.lit(" "),
             pl.col("__p").list.get(names.index("time"), null_on_oob=True)]))
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
