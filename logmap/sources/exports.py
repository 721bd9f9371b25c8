"""Analytics exports (Parquet, NDJSON, CSV) → frames with provenance and canonical columns.

Sites migrating from an analytics tool have its export, not access logs: GA4's BigQuery export as Parquet,
Segment / Snowplow / Amplitude as (gzipped) NDJSON, sometimes CSV. Rows keep the export's own columns with
their nested types, so templates can reach ``{event_params.page_location}`` or ``{items[].item_id}``
(`logmap.transform.nested`), and gain what the rest of the pipeline expects (docs/architecture.md):

* provenance: ``_file``, ``_line`` (1-based row number in the file; the line number for NDJSON), ``_drop``,
  ``_detail``;
* ``time`` (``Datetime("ms", "UTC")``) from ``source.time``: epoch numbers with a unit, strings with a format,
  or a timestamp column;
* ``url``, ``path``, ``query`` from ``source.page_url`` (a template), so that path rules and UTM campaigns work
  as for access logs; ``referrer``, ``user_agent``, ``ip`` from templates of the same names.

All files of one run are read with **one** schema: their schemas are unified up front (a column some files
lack is null there; integer and float widths are widened), and a conflict that cannot be unified safely
(text in one file, numbers in another) stops the run naming the files. Reading is batched (Parquet row groups
through pyarrow, NDJSON by chunks of lines, CSV by polars' streaming batches), so memory stays bounded.

Rows are **projected** to the columns the run's mapping needs (`needed_columns`): a GA4 row carries `device`,
`geo`, `items`, `user_properties` … and decoding, filtering and copying the columns no template names was most
of the cost of a conversion; Parquet struct and list-of-struct columns are decoded with only the fields read.
A key/value list read only through lookups (GA4's ``event_params``) is looked up once per row by the reader,
into columns named like the references (``event_params.page_location``), and not carried further. The schema
of every column is still known (`ExportReader.schema`), so errors that list the input's columns list all of them.
"""

from __future__ import annotations

import glob
import io
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from logmap.errors import InputError, LogmapError, MappingError, UnknownFieldError
from logmap.frame import PROVENANCE, drop_when
from logmap.mapping import defaults
from logmap.mapping.model import Mapping, Source, Where
from logmap.mapping.templates import as_reference, template_refs
from logmap.sources.accesslog import parse_time
from logmap.sources.lines import compression_of, open_input, read_decompressed, read_lines
from logmap.transform.compiled import null_if_empty
from logmap.transform.expressions import Scope, as_string, compile_template
from logmap.transform.nested import (
    column_of,
    json_dtype,
    key_value_columns,
    key_value_lookup,
    path_steps,
    prune_dtype,
    read_path,
)

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

#: Export formats and the file name endings looked for inside a directory.
FILE_ENDINGS: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".parq", ".pq"),
    "ndjson": (".ndjson", ".jsonl", ".json", ".ndjson.gz", ".jsonl.gz", ".json.gz", ".gz", ".zst", ".bz2"),
    "csv": (".csv", ".tsv", ".csv.gz", ".tsv.gz"),
}
#: Keys of ``source.options``, which only export formats take.
OPTION_KEYS = defaults.EXPORT_OPTION_KEYS
#: `format: auto` (with options): each file's format is recognised by its content (`sniff_export`).
AUTO = defaults.AUTO_FORMAT
#: Separators a CSV's first line is tried with when the mapping does not set one (``format: auto``).
SEPARATORS = (",", "\t", ";", "|")
#: Each of the mapping language's time units → ms: ×n, or ÷|n| when negative.
TO_MS: dict[str, int] = dict(zip(defaults.TIME_UNITS, (1_000, 1, -1_000, -1_000_000), strict=True))
CANONICAL: tuple[str, ...] = ("time", "url", "path", "query", "referrer", "user_agent", "ip")
DEFAULT_BATCH_ROWS = 100_000
PAGE_URL = "_page_url"
#: ISO-8601 shapes tried, in order, for a string time column without a `format`.
ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")

ProgressCallback = Callable[[int], None]



def check_options(fmt: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with an export source's options, as (key, message): the loader reports them before any input is
    read, with the position of ``source.options.<key>``."""
    problems: list[tuple[str, str]] = []
    for key in options:
        if key not in OPTION_KEYS:
            problems.append((str(key), f"unknown option '{key}' for format {fmt} (options: {', '.join(OPTION_KEYS)})"))
    time = options.get("time")
    if time is None:
        problems.append(("time", "an export source needs 'time': the column with the event time, e.g. "
                                 "time: {column: event_timestamp, unit: us}"))
    elif isinstance(time, dict):
        unknown = set(time) - {"column", "unit", "format"}
        if unknown:
            problems.append(("time", f"unknown key(s) {sorted(unknown)}: 'time' takes column, unit or format"))
        if not isinstance(time.get("column"), str):
            problems.append(("time.column", "expected the name of the time column"))
        if "unit" in time and time["unit"] not in defaults.TIME_UNITS:
            problems.append(("time.unit", f"unknown unit {time['unit']!r}: one of {', '.join(defaults.TIME_UNITS)}"))
        if "unit" in time and "format" in time:
            problems.append(("time", "give 'unit' (epoch numbers) or 'format' (strings), not both"))
    elif not isinstance(time, str):
        problems.append(("time", "expected a column name or {column, unit | format}"))
    for key in ("page_url", "referrer", "user_agent", "ip"):
        if key in options and not isinstance(options[key], str):
            problems.append((key, "expected a template string, e.g. '{event_params.page_location}'"))
    required = options.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append(("required", "expected a list of field names, e.g. [event_name, user_pseudo_id]"))
    batch = options.get("batch_rows", DEFAULT_BATCH_ROWS)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        problems.append(("batch_rows", "expected a positive number of rows"))
    csv_like = fmt in ("csv", AUTO)
    for key in ("separator", "quote", "escape"):
        value = options.get(key)
        if key in options and (not csv_like or not isinstance(value, str) or len(value) > 1
                               or (key == "separator" and len(value) != 1)):
            problems.append((key, f"'{key}' applies to csv only and is one character"
                                  + (" (or '' for none)" if key != "separator" else "")))
    header = options.get("header", True)
    names = [key for key in ("columns", "header_file") if key in options]
    if "header" in options and (not csv_like or not isinstance(header, bool)):
        problems.append(("header", "'header' applies to csv only: true (the first row names the columns) or false"))
    elif len(names) > 1:
        problems.append(("header_file", "give 'columns' or 'header_file', not both"))
    elif header is False and not names:
        problems.append(("header", "a CSV without a header row needs its column names: 'columns: [a, b, …]' or "
                                   "'header_file: path/to/column_headers.tsv'"))
    elif header is True and names and "header" in options:
        problems.append((names[0], f"'{names[0]}' names the columns of a CSV without a header row: write "
                                   "'header: false' too"))
    if "columns" in options and (not csv_like or not isinstance(options["columns"], list) or not options["columns"]
                                 or not all(isinstance(c, str) and c for c in options["columns"])):
        problems.append(("columns", "expected the list of column names of a CSV without a header row"))
    if "header_file" in options and (not csv_like or not isinstance(options["header_file"], str)):
        problems.append(("header_file", "expected the path of a file whose first line names the columns"))
    return problems


def check_source(source: Source) -> None:
    """Raise MappingError (with the mapping's position) for the first problem in an export source's options."""
    problems = check_options(source.format, _options(source))
    if problems:
        key, message = problems[0]
        where = _where(source, key)
        raise MappingError.at(message, where) if where else MappingError(message, key=f"source.options.{key}")


# --- inputs ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportFile:
    """One input file, as the user named it, and the hive partition values of its folders (``k=v``).

    ``format`` is the export format it is read as (the mapping's, or with ``auto`` the one its content shows);
    ``separator`` the CSV separator (the mapping's, or the one its first line shows); ``header`` the column names
    of a CSV without a header row (`_csv_names`), read once where the file is listed: a copy of the file read
    elsewhere (a Spark executor's) has no ``header_file`` beside it."""

    path: str
    partitions: tuple[tuple[str, str], ...] = ()
    format: str = ""
    separator: str = ","
    header: tuple[str, ...] | None = None


#: What a file's first bytes can show, for messages: format → description.
LOOKS_LIKE = {"parquet": "Parquet", "ndjson": "NDJSON (one JSON object per line)", "csv": "CSV",
              "tsv": "TSV (tab-separated)"}


def sniff_export(path: str) -> tuple[str | None, str, str | None]:
    """(format, what the file looks like, CSV separator) from its first bytes, decompressed: ``PAR1`` is
    Parquet, lines starting with ``{`` NDJSON, a first line with separators CSV/TSV. The format is None when
    the content fits none of them (empty, a JSON array, text without separators)."""
    with open(path, "rb") as handle:
        if handle.read(4) == b"PAR1":
            return "parquet", LOOKS_LIKE["parquet"], None
    head, kind = read_decompressed(path, 64 * 1024)
    zipped = f"{kind}-compressed " if kind else ""
    lines = [line for line in head.decode("utf-8", "replace").splitlines() if line.strip()][:20]
    if not lines:
        return None, f"an empty {zipped}file", None
    if any(line.lstrip().startswith("{") for line in lines):
        return "ndjson", zipped + LOOKS_LIKE["ndjson"], None
    first = lines[0]
    shown = first if len(first) <= 100 else first[:100] + "…"
    if first.lstrip().startswith("["):
        return None, f"a {zipped}JSON array (not one object per line): {shown!r}", None
    separator = max(SEPARATORS, key=first.count)
    if first.count(separator) == 0:
        return None, f"{zipped}text without separators (first line: {shown!r})", None
    shape = LOOKS_LIKE["tsv" if separator == "\t" else "csv"]
    return "csv", f"{zipped}{shape} (first line: {shown!r})", separator


def _typed(item: ExportFile, source: Source) -> ExportFile:
    """``item`` with the format and separator it is read with; an explicit format that the content
    contradicts is an InputError saying what the file looks like."""
    options = _options(source)
    declared = source.format
    if item.path == "-":
        fmt = declared if declared != AUTO else "ndjson"
        return ExportFile(item.path, item.partitions, fmt, options.get("separator", ","))
    found, looks, separator = sniff_export(item.path)
    if declared == AUTO:
        if found is None:
            raise InputError(f"{item.path} is not an export logmap reads: it looks like {looks} (format auto "
                             f"reads Parquet, NDJSON and CSV/TSV)")
        fmt = found
    else:
        if found is not None and found != declared:
            raise InputError(f"{item.path} looks like {looks}, not {declared}: set source.format to {found} "
                             f"(or auto)")
        fmt = declared
    if "separator" in options:
        separator = options["separator"]
    elif declared != AUTO or separator is None:
        separator = ","
    typed = ExportFile(item.path, item.partitions, fmt, separator, item.header)
    return with_header(typed, source) if fmt == "csv" else typed


def with_header(item: ExportFile, source: Source) -> ExportFile:
    """``item`` with the column names of a CSV without a header row (``columns`` or ``header_file``, read beside
    the file first: `_csv_names`), when the source names them that way."""
    names = _csv_names(source, item)
    return item if names is None else replace(item, header=tuple(names))


_HIVE = re.compile(r"^([^=/\\]+)=([^/\\]*)$")


def _endings(fmt: str) -> tuple[str, ...]:
    if fmt == AUTO:
        return tuple(dict.fromkeys(e for endings in FILE_ENDINGS.values() for e in endings))
    return FILE_ENDINGS[fmt]


def _wanted(name: str, fmt: str) -> bool:
    base = os.path.basename(name)
    if base.startswith((".", "_")):  # _SUCCESS, .crc and other writer artefacts
        return False
    return base.lower().endswith(_endings(fmt))


def _partitions(path: str, root: str) -> tuple[tuple[str, str], ...]:
    relative = os.path.relpath(os.path.dirname(path), root)
    found = [_HIVE.match(part) for part in Path(relative).parts]
    return tuple((m.group(1), m.group(2)) for m in found if m)


def _walk(directory: str, fmt: str) -> list[ExportFile]:
    files = []
    for folder, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for name in sorted(names):
            path = os.path.join(folder, name)
            if _wanted(name, fmt):
                files.append(ExportFile(path, _partitions(path, directory)))
    return files


def expand_export_inputs(inputs: list[str], fmt: str) -> list[ExportFile]:
    """Files named, matched by a glob, or found in a directory (recursively, with hive ``key=value`` folders)."""
    if not inputs:
        raise InputError("no input given: name at least one file, directory or glob")
    seen: dict[str, ExportFile] = {}
    for pattern in inputs:
        if pattern == "-":
            if fmt == "parquet":
                raise InputError("Parquet cannot be read from standard input: name the file")
            seen.setdefault("-", ExportFile("-"))
            continue
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if glob.has_magic(pattern) and not matches:
            raise InputError(f"no such file: nothing matches {pattern!r}")
        for match in matches:
            if os.path.isdir(match):
                found = _walk(match, fmt)
                if not found:
                    raise InputError(f"{match} holds no {fmt} files (looked for names ending in "
                                     f"{', '.join(_endings(fmt))})")
                for item in found:
                    seen.setdefault(item.path, item)
            elif not os.path.exists(match):
                raise InputError(f"no such file: {match}")
            else:
                seen.setdefault(match, ExportFile(match))
    return list(seen.values())


# --- schemas --------------------------------------------------------------------------------------------------

def _options(source: Source) -> dict[str, Any]:
    return source.options or {}


def _batch_rows(source: Source) -> int:
    return int(_options(source).get("batch_rows", DEFAULT_BATCH_ROWS))


def _parquet_schema(path: str) -> pl.Schema:
    return pl.scan_parquet(path, hive_partitioning=False).collect_schema()


def _ndjson_chunks(path: str, chunk_bytes: int,
                   progress: ProgressCallback | None = None) -> Generator[pl.DataFrame, None, None]:

    yield from read_lines(path, chunk_bytes=chunk_bytes, progress=progress)


def _looks_like_object(raw: pl.Expr) -> pl.Expr:
    text = raw.str.strip_chars()
    return text.str.starts_with("{") & text.str.ends_with("}")


def _ndjson_schema(path: str, chunk_bytes: int, mixed: set[str]) -> pl.Schema:
    """Inferred from every line (a field may first appear late in the file), one chunk at a time. A column
    whose shape differs between lines (an object here, text there) is added to ``mixed`` and typed String: it
    is read as text (`_read_ndjson`), so it stops nothing, and a mapping walking into it reads it as JSON text."""
    schemas: dict[str, pl.Schema] = {}
    for chunk in _ndjson_chunks(path, chunk_bytes):
        lines = chunk.filter(_looks_like_object(pl.col("_raw")))["_raw"]
        if lines.len() == 0:
            continue
        dtype = _infer_json(lines, mixed)
        if dtype is not None:
            schemas[f"{path} (lines from {chunk['_line'][0]})"] = pl.Schema(dict(_struct_fields(dtype)))
    return unify_schemas(schemas, mixed=mixed)


def _struct_fields(dtype: pl.Struct) -> dict[str, PolarsDataType]:
    return {f.name: f.dtype for f in dtype.fields}


def _is_json(texts: pl.Series) -> pl.Series:
    """A mask of the values that are one well-formed JSON value (columnar: ``json_path_match('$')`` is null
    for text that does not parse)."""
    return texts.str.json_path_match("$").is_not_null()


def _infer_json(lines: pl.Series, mixed: set[str]) -> pl.Struct | None:
    try:
        dtype = lines.str.json_decode(infer_schema_length=None).dtype
        return dtype if isinstance(dtype, pl.Struct) else None
    except pl.exceptions.PolarsError:
        pass
    # Some lines are not JSON, or a column's shape differs between lines: infer from the lines that parse
    # (polars' NDJSON inference gives such a column its supertype, String), then find the columns whose values
    # do not all decode to the inferred type, one decode per column.
    lines = lines.filter(_is_json(lines))
    if lines.len() == 0:
        return None
    try:
        schema = pl.scan_ndjson(io.BytesIO(lines.str.join("\n").item().encode("utf-8")),
                                infer_schema_length=None).collect_schema()
    except pl.exceptions.PolarsError:
        return None
    fields = dict(schema)
    for name, dtype in fields.items():
        try:
            lines.str.json_decode(pl.Struct({name: dtype}))
        except pl.exceptions.PolarsError:
            mixed.add(name)
            fields[name] = pl.String()
    return pl.Struct(fields)


def _decodable(lines: pl.Series, dtype: pl.DataType | None, known: pl.Series | None = None) -> pl.Series:
    """A mask of the lines that decode (with ``dtype``), found by bisection: O(bad lines × log n) decodes.
    Lines outside ``known`` (a mask) are not tried, and are False."""
    def ok(part: pl.Series) -> bool:
        try:
            part.str.json_decode(dtype, infer_schema_length=None)
            return True
        except pl.exceptions.PolarsError:
            return False

    mask = [True] * lines.len() if known is None else known.to_list()
    tried = lines if known is None else lines.zip_with(known, pl.Series([None] * lines.len(), dtype=pl.String))

    def visit(start: int, length: int) -> None:
        if length == 0 or ok(tried.slice(start, length)):
            return
        if length == 1:
            mask[start] = False
            return
        half = length // 2
        visit(start, half)
        visit(start + half, length - half)

    visit(0, lines.len())
    return pl.Series(mask, dtype=pl.Boolean)


def _csv_options(source: Source, item: ExportFile) -> dict[str, Any]:
    out: dict[str, Any] = {"separator": item.separator, "infer_schema_length": 10_000, "null_values": [""],
                           "truncate_ragged_lines": True, "quote_char": csv_quote(source)}
    names = _csv_names(source, item)
    if names is not None:
        out.update(has_header=False, new_columns=names)
    return out


def csv_quote(source: Source) -> str | None:
    """The character that quotes a CSV field (a quoted field may hold separators and newlines), or None."""
    return _options(source).get("quote", '"') or None


def csv_escape(source: Source) -> str | None:
    """The character that escapes the next one in a CSV (an escaped newline goes on to the next line), or None."""
    return _options(source).get("escape") or None


def csv_header_row(item: ExportFile, source: Source) -> bool:
    """Whether ``item``'s first line names its columns (else ``columns`` or a ``header_file`` does)."""
    return item.header is None and not {"columns", "header_file"} & set(_options(source))


def _csv_names(source: Source, item: ExportFile) -> list[str] | None:
    """The column names of a CSV without a header row: ``columns``, or the first line of ``header_file``
    split on the file's separator. A relative ``header_file`` is looked for next to the input file first (a
    data feed delivers its headers with its data), then in the current directory."""
    options = _options(source)
    if item.header is not None:
        return list(item.header)
    if "columns" in options:
        return list(options["columns"])
    if "header_file" not in options:
        return None
    path = str(options["header_file"])
    beside = os.path.join(os.path.dirname(item.path), path)
    if not os.path.isabs(path) and item.path != "-" and os.path.exists(beside):
        path = beside
    # the mapping's separator when it names one: a file listed but not yet sniffed (a Spark run's driver reads
    # the header file for its executors) still has the default
    return header_file_names(path, str(options.get("separator", item.separator)))


def header_file_names(path: str, separator: str) -> list[str]:
    """The column names on the first line of a header file (Adobe's ``column_headers.tsv``)."""
    try:
        with open_input(path) as (stream, _, _):
            first = stream.readline().decode("utf-8", "replace").rstrip("\r\n")
    except OSError as error:
        raise InputError(f"cannot read the header file {path}: {error.strerror or error}") from None
    names = [name.strip() for name in first.split(separator)]
    if not first.strip() or not all(names):
        raise InputError(f"the header file {path} does not name the columns on its first line "
                         f"(separated by {separator!r})")
    return names


#: Placeholders for escaped characters while a CSV with an ``escape`` character is split (bytes that cannot
#: occur in text): the escaped escape, separator, newline and quote.
_ESCAPED = ("\x00", "\x01", "\x02", "\x03")


def _csv_input(item: ExportFile, source: Source, data: bytes | None = None) -> str | io.BytesIO:
    """What polars reads: the path, or (compressed other than gzip, or with an ``escape`` character) the
    file's text in memory, escapes replaced by placeholders (`_unescape` puts the characters back). ``data``: the
    CSV text itself (a header and whole lines of a file: a Spark byte range), read in memory."""
    escape = csv_escape(source) or ""
    if data is None:
        with open(item.path, "rb") as handle:
            kind = compression_of(handle.read(8))
        if not escape and kind in (None, "gzip"):
            return item.path
        data, _ = read_decompressed(item.path)
    if escape:
        mark = escape.encode()
        quote = (csv_quote(source) or "").encode()
        for escaped, placeholder in zip((mark, item.separator.encode(), b"\n", quote), _ESCAPED):
            if escaped:
                data = data.replace(mark + escaped, placeholder.encode())
    return io.BytesIO(data)


def _unescape(frame: pl.DataFrame, item: ExportFile, source: Source) -> pl.DataFrame:
    escape = csv_escape(source) or ""
    if not escape:
        return frame
    quote = csv_quote(source) or ""
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    exprs = []
    for name in texts:
        expr = pl.col(name)
        for placeholder, char in zip(_ESCAPED, (escape, item.separator, "\n", quote)):
            expr = expr.str.replace_all(placeholder, char, literal=True)
        exprs.append(expr)
    return frame.with_columns(exprs)


def _csv_schema(item: ExportFile, source: Source) -> pl.Schema:
    target = _csv_input(item, source)
    if isinstance(target, str):
        return pl.scan_csv(target, **_csv_options(source, item)).collect_schema()
    return pl.read_csv(target, **_csv_options(source, item), n_rows=10_000).schema


def file_schema(item: ExportFile, source: Source, chunk_bytes: int, mixed: set[str] | None = None) -> pl.Schema:
    """The export's own columns in one file, plus its hive partition columns (String). NDJSON columns whose
    shape differs between lines are added to ``mixed`` (see `_ndjson_schema`)."""
    try:
        if item.format == "parquet":
            schema = _parquet_schema(item.path)
        elif item.format == "ndjson":
            schema = _ndjson_schema(item.path, chunk_bytes, mixed if mixed is not None else set())
        else:
            schema = _csv_schema(item, source)
    except LogmapError:
        raise
    except (OSError, pl.exceptions.PolarsError) as error:
        raise unreadable(item, error) from None
    out = dict(schema)
    for key, _ in item.partitions:
        out.setdefault(key, pl.String())
    return pl.Schema(out)


def unreadable(item: ExportFile, error: Exception) -> InputError:
    """The one-line error for a file polars or pyarrow cannot read as its format."""
    return InputError(f"cannot read {item.path} as {item.format}: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _kind(dtype: PolarsDataType) -> str:
    """A coarse kind: types of one kind unify safely (wider ints, float from int); different kinds do not."""
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Null:
        return "null"
    if isinstance(dtype, pl.Struct):
        return "struct"
    if isinstance(dtype, (pl.List, pl.Array)):
        return "list"
    return str(dtype.base_type())


def _unsafe(dtypes: Sequence[PolarsDataType]) -> bool:
    kinds = {_kind(d) for d in dtypes} - {"null"}
    if len(kinds) > 1:
        return True
    if kinds == {"struct"}:  # unify field by field
        names = {f.name for d in dtypes if isinstance(d, pl.Struct) for f in d.fields}
        for name in names:
            inner = [f.dtype for d in dtypes if isinstance(d, pl.Struct) for f in d.fields if f.name == name]
            if _unsafe(inner):
                return True
    if kinds == {"list"}:
        return _unsafe([d.inner for d in dtypes if isinstance(d, (pl.List, pl.Array))])
    return False


def unify_schemas(schemas: dict[str, pl.Schema], used: set[str] | None = None,
                  mixed: set[str] | None = None) -> pl.Schema:
    """One schema for all files. Missing columns and wider numbers unify; other conflicts are an InputError
    for a column in ``used`` (every column when None). A conflicting column outside ``used`` is never read:
    it is typed String and stops nothing. With ``mixed`` (NDJSON, which can read any value as text),
    conflicting columns are added to it and typed String instead of being an error."""
    if not schemas:
        return pl.Schema()
    as_text: set[str] = set()
    for name in dict.fromkeys(c for s in schemas.values() for c in s):
        per_file = {f: s[name] for f, s in schemas.items() if name in s}
        distinct = list(dict.fromkeys(per_file.values()))
        if len(distinct) > 1 and _unsafe(distinct):
            if mixed is not None:
                mixed.add(name)
            elif used is not None and name not in used:
                pass
            else:
                described = "; ".join(f"{f}: {d}" for f, d in per_file.items())
                raise InputError(f"the input files disagree on column '{name}' and cannot be read as one export "
                                 f"({described}); convert them separately or fix the export")
            as_text.add(name)
    frames = [pl.DataFrame(schema={c: pl.String() if c in as_text else d for c, d in s.items()})
              for s in schemas.values()]
    try:
        return pl.concat(frames, how="diagonal_relaxed").schema
    except pl.exceptions.PolarsError as error:
        raise InputError(f"the input files ({', '.join(schemas)}) have schemas that cannot be unified: "
                         f"{_first_line(error)}") from None


# --- projection -----------------------------------------------------------------------------------------------

#: Columns the pipeline reads by name whatever the templates say: the canonical ones (an export may have its
#: own ``url`` or ``path``, which then stands for the canonical one), and ``status`` / ``method``, which the
#: filter and rules check when the input has them.
IMPLICIT_COLUMNS: tuple[str, ...] = (*CANONICAL, "status", "method")


def source_refs(source: Source) -> set[str]:
    """The names an export source's options read: the time column, ``required`` and the URL/referrer/user
    agent/IP templates (the loader checks these options itself, so they are not in ``Mapping.references``)."""
    options = _options(source)
    names = set(options.get("required") or [])
    time = options.get("time")
    column = time.get("column") if isinstance(time, dict) else time
    if isinstance(column, str):
        names |= template_refs(as_reference(column))
    for key in ("page_url", "referrer", "user_agent", "ip"):
        if isinstance(options.get(key), str):
            names |= template_refs(options[key])
    return names


def mapping_refs(mapping: Mapping) -> set[str]:
    """Every name the mapping's templates and ``when:`` conditions refer to.

    ``Mapping.references`` (what the loader recorded) and a walk of the model itself: a mapping built or changed
    in code may not have its references recorded, and a column missing from the projection would be an error.
    """
    names = {ref.name for ref in mapping.references}
    for rule in mapping.rules:
        names |= template_refs([as_reference(column) for column in rule.when])
        names |= template_refs(list(rule.fields.values()))
    for when in mapping.filter.drop.values():
        names |= template_refs([as_reference(column) for column in when])
    identity, context = mapping.identity, mapping.context
    names |= template_refs([identity.user_id or ""])
    for spec in (identity.anonymous_id, identity.user_id_hash):
        if spec is not None:
            names |= template_refs([spec.template or "", *spec.hmac])
    names |= template_refs([context.page_url or "", context.page_referrer or "", context.page_title or "",
                            context.user_agent or "", context.truncated_ip or "", context.locale or "",
                            context.region or "", context.campaign if isinstance(context.campaign, dict) else {},
                            context.custom_context])
    if mapping.durations.source not in ("next_event", "none"):
        names |= template_refs(mapping.durations.source)
    if mapping.dedupe is not None:
        names |= template_refs([as_reference(name) for name in mapping.dedupe.by])
    return names


def wanted_names(mapping: Mapping) -> frozenset[str]:
    """The names a run of ``mapping`` may read from the input: its references, those of the source's options
    and `IMPLICIT_COLUMNS`."""
    return frozenset(mapping_refs(mapping) | source_refs(mapping.source) | set(IMPLICIT_COLUMNS))


def optional_names(mapping: Mapping) -> frozenset[str]:
    """The names the mapping writes only as optional (``{a.b?}``): the input may lack them."""
    required = {ref.name for ref in mapping.references if not ref.optional}
    return frozenset(ref.name for ref in mapping.references if ref.optional) - required


def read_paths(schema: pl.Schema | dict[str, pl.DataType], names: frozenset[str]) -> dict[str, set[tuple[str, ...]]]:
    """The columns of ``schema`` that ``names`` read, in the schema's order, each with the struct fields read
    inside it (`logmap.transform.nested.read_path`; the empty path: the whole column).

    A name that is a column reads all of it (a dotted CSV header too); a path reads its column's fields, or the
    whole column when it does not walk the column's type (it is then an unknown field: compiling the mapping
    reports it, listing every column of the files, see `with_columns`). Names that are no column (regex
    groups, ``query.q``) read nothing.
    """

    schema = dict(schema)
    paths: dict[str, set[tuple[str, ...]]] = {}
    for name in names:
        if name in schema:
            paths.setdefault(name, set()).add(())
        elif (found := read_path(name, schema)) is not None:
            paths.setdefault(found[0], set()).add(found[1])
        elif column_of(name) in schema:
            paths.setdefault(column_of(name), set()).add(())
    return {column: paths[column] for column in schema if column in paths}


def key_value_lookups(schema: pl.Schema | dict[str, pl.DataType], names: frozenset[str],
                      keep: frozenset[str] = frozenset()) -> dict[str, pl.Expr]:
    """Lookups into key/value list columns (GA4's ``event_params``) to compute once per row, as columns named
    like the references (``event_params.page_location``), for the list columns that are read only through such
    lookups: the list is then dropped, and no stage carries it (filtering rows of a list column costs more
    than all of its lookups). Names in ``keep`` are not computed (the time column, which is read raw), nor
    names that are columns themselves (a column named ``event_params.page_location`` is what that name means).
    """

    schema = dict(schema)
    by_column: dict[str, dict[str, pl.Expr | None]] = {}
    for name in sorted(names):  # a stable column order
        if column_of(name) in schema:
            lookup = None if name in keep or name in schema else key_value_lookup(name, schema)
            by_column.setdefault(column_of(name), {})[name] = lookup
    return {name: expr for column, lookups in by_column.items() if all(e is not None for e in lookups.values())
            for name, expr in lookups.items() if expr is not None}


def needed_columns(mapping: Mapping, schema: pl.Schema | dict[str, pl.DataType]) -> list[str]:
    """The columns of ``schema`` a run of ``mapping`` reads, in the schema's order."""
    return list(read_paths(schema, wanted_names(mapping)))


# --- canonical columns ----------------------------------------------------------------------------------------

def _where(source: Source, key: str) -> Where | None:
    if source.where is None:
        return None
    return Where(source.where.file, source.where.line, source.where.column, f"source.options.{key}")


def _time_spec(source: Source) -> dict[str, Any]:
    spec = _options(source).get("time")
    if isinstance(spec, str):
        return {"column": spec}
    if not isinstance(spec, dict) or "column" not in spec:
        raise LogmapError(f"source format {source.format} needs 'time' (the event time column), "
                          "e.g. time: {column: event_timestamp, unit: us}")
    return spec


def _time_column(schema: dict[str, pl.DataType], source: Source) -> tuple[pl.Expr, pl.DataType, str]:

    column = _time_spec(source)["column"]
    if column in schema:
        return pl.col(column), schema[column], column
    # a struct path (`context.timestamp`) or alternatives (`timestamp?|or:TIMESTAMP?`): resolved as a reference
    compiled = compile_template(as_reference(column), Scope(schema), _where(source, "time.column"))
    return compiled.expr, pl.String() if compiled.kind == "str" else pl.Float64(), column


def time_expr(schema: dict[str, pl.DataType], source: Source) -> tuple[pl.Expr, str]:
    """The canonical ``time`` expression and the name of the column it reads."""

    spec = _time_spec(source)
    expr, dtype, column = _time_column(schema, source)
    unit = spec.get("unit")
    if isinstance(dtype, pl.Datetime):
        naive = dtype.time_zone is None
        value = expr.dt.replace_time_zone(source.timezone) if naive else expr
        return value.dt.convert_time_zone("UTC").dt.cast_time_unit("ms"), column
    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("ms")).dt.replace_time_zone(source.timezone).dt.convert_time_zone("UTC"), column
    if dtype.is_numeric() or unit is not None:
        factor = TO_MS[unit or "s"]
        number = expr if dtype.is_numeric() else expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        if dtype.is_integer():
            millis = number.cast(pl.Int64) * factor if factor > 0 else number.cast(pl.Int64) // -factor
        else:
            millis = (number.cast(pl.Float64) * factor if factor > 0 else number.cast(pl.Float64) / -factor).floor()
        return millis.cast(pl.Int64).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"), column
    text = expr.cast(pl.String).str.strip_chars()
    if "format" in spec:
        return parse_time(text, spec["format"], source.timezone), column
    attempts = []
    for fmt in ISO_FORMATS:
        if fmt.endswith("z"):
            attempts.append(text.str.replace(r"Z$", "+00:00").str.strptime(pl.Datetime("ms", "UTC"), fmt, strict=False))
        else:
            attempts.append(parse_time(text, fmt, source.timezone))
    return pl.coalesce(attempts), column


_ORIGIN = r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*"


def url_columns(url: pl.Expr, site: str | None) -> dict[str, pl.Expr]:
    """``url`` (absolute when ``site`` is given and the value is a path), ``path`` and ``query``.

    Each regex runs once (`null_if_empty` reads its input once).
    """

    absolute = url.str.contains(_ORIGIN)
    full = pl.when(absolute | pl.lit(site is None)).then(url).otherwise(pl.lit(site or "") + url)
    path = null_if_empty(url.str.replace(_ORIGIN, "").str.extract(r"^([^?#]*)", 1))
    path = pl.coalesce(path, pl.when(absolute).then(pl.lit("/")))  # an origin alone is the root
    query = null_if_empty(url.str.extract(r"\?([^#]*)", 1))
    return {"url": full, "path": path, "query": query}


def canonical_columns(schema: dict[str, pl.DataType], source: Source) -> list[pl.Expr]:
    """Expressions adding ``time``, ``url``/``path``/``query``, ``referrer``, ``user_agent``, ``ip``."""

    options = _options(source)
    scope = Scope(schema)
    exprs: dict[str, pl.Expr] = {"time": time_expr(schema, source)[0]}
    if options.get("page_url"):
        # `_page_url` is computed first (see canonicalize) so that url, path and query do not each redo it
        exprs.update(url_columns(pl.col(PAGE_URL), source.site))
    for key in ("referrer", "user_agent", "ip"):
        if options.get(key):
            exprs[key] = as_string(compile_template(options[key], scope, _where(source, key)))
    for name in CANONICAL:  # canonical columns always exist, null when the export cannot tell
        if name not in exprs and name not in schema:
            exprs[name] = pl.lit(None, pl.String)
    return [expr.alias(name) for name, expr in exprs.items()]


def _required(schema: dict[str, pl.DataType], source: Source) -> list[tuple[str, pl.Expr]]:

    scope = Scope(schema)
    names = list(_options(source).get("required", []))
    return [(name, scope.resolve(name, _where(source, "required")).expr) for name in names]


def canonicalize(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Add canonical columns to a frame of export columns with provenance; drop rows lacking required values.

    A null time or required value drops the row as ``missing:<column>``; a time that does not parse is
    ``invalid:timestamp`` (it goes to the rejects file with the value).
    """

    schema = dict(frame.schema)
    original, _, time_column = _time_column(schema, source)
    drops = [(expr.is_null(), f"missing:{name}") for name, expr in _required(schema, source)]
    drops.append((original.is_null(), f"missing:{time_column}"))
    frame = frame.with_columns(original.cast(pl.String).alias("_time_raw"))
    for condition, reason in drops:
        frame = frame.with_columns(drop_when(condition, reason))
    if _options(source).get("page_url"):

        template = _options(source)["page_url"]
        url = as_string(compile_template(template, Scope(schema), _where(source, "page_url")))
        frame = frame.with_columns(url.alias(PAGE_URL))
    frame = frame.with_columns(canonical_columns(schema, source)).drop(PAGE_URL, strict=False)
    frame = frame.with_columns(drop_when(
        pl.col("time").is_null(), "invalid:timestamp",
        pl.format("timestamp is invalid. '{}' is not a time ({})", pl.col("_time_raw"), pl.lit(time_column))))
    return frame.drop("_time_raw")


# --- reading --------------------------------------------------------------------------------------------------

def _with_provenance(frame: pl.DataFrame, path: str, first_line: int, lines: pl.Series | None = None) -> pl.DataFrame:
    line = lines if lines is not None else pl.int_range(first_line, first_line + frame.height, dtype=pl.UInt64,
                                                          eager=True)
    return frame.with_columns(
        pl.lit(path, pl.String).alias("_file"),
        pl.Series("_line", line, dtype=pl.UInt64),
        pl.lit(None, pl.String).alias("_drop"),
        pl.lit(None, pl.String).alias("_detail"),
    )


def _conform(frame: pl.DataFrame, schema: pl.Schema, item: ExportFile) -> pl.DataFrame:
    """The export columns in the unified schema's order and types (absent ones null), plus partitions."""
    for key, value in item.partitions:
        if key not in frame.columns:
            frame = frame.with_columns(pl.lit(value, pl.String).alias(key))
    exprs = []
    for name, dtype in schema.items():
        if name in frame.columns:
            exprs.append(pl.col(name) if frame.schema[name] == dtype else pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    return frame.select(exprs)


def _arrow_leaves(dtype: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The struct-field paths of the leaves under an Arrow type, depth first (the order of a Parquet file's leaf
    columns); lists are crossed, a map is a list of ``key``/``value`` structs as polars reads it."""
    import pyarrow as pa

    if pa.types.is_struct(dtype):
        for index in range(dtype.num_fields):
            yield from _arrow_leaves(dtype.field(index).type, (*path, dtype.field(index).name))
    elif pa.types.is_map(dtype):
        yield from _arrow_leaves(dtype.key_type, (*path, "key"))
        yield from _arrow_leaves(dtype.item_type, (*path, "value"))
    elif pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        yield from _arrow_leaves(dtype.value_type, path)
    else:
        yield path


def _parquet_columns(parquet: Any, paths: dict[str, set[tuple[str, ...]]]) -> list[str]:
    """What to ask pyarrow for: the leaf columns (``items.list.element.item_id``) on ``paths``, a whole column
    where the whole is read, where the file lacks every field read (`_conform` then adds them as nulls, by name,
    keeping the column's own nulls and list lengths) or where its leaves cannot be matched to the schema."""
    arrow = parquet.schema_arrow
    leaves = [(field.name, path) for field in arrow for path in _arrow_leaves(field.type, ())]
    physical = [parquet.schema.column(i).path for i in range(len(parquet.schema))]
    aligned = len(leaves) == len(physical)
    columns: list[str] = []
    for column in (c for c in arrow.names if c in paths):
        wanted = paths[column]
        chosen = [name for (top, path), name in zip(leaves, physical)
                  if top == column and any(path[:len(w)] == w for w in wanted)] if aligned and () not in wanted else []
        columns.extend(chosen or [column])
    return columns


def _read_parquet(item: ExportFile, batch_rows: int, progress: ProgressCallback | None,
                  paths: dict[str, set[tuple[str, ...]]] | None = None) -> Iterator[pl.DataFrame]:
    """Row-group batches of the columns (and struct fields) on ``paths``, or of every column when None."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(item.path)
    size = os.path.getsize(item.path)
    total = max(1, parquet.metadata.num_rows)
    reported = 0
    seen = 0
    columns = None if paths is None else (_parquet_columns(parquet, paths) or None)  # none here: rows still count
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        seen += frame.height
        if progress is not None:
            position = size * seen // total
            progress(position - reported)
            reported = position
        yield frame


def _decode_ndjson(chunk: pl.DataFrame, schema: pl.Schema,
                   mixed: set[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """(decoded rows, the chunk's line numbers and text, a mask of lines that are not JSON objects) of a chunk of
    lines (``_line``, ``_raw``: `read_lines`'s frames).

    Only ``schema``'s columns are decoded (a column the mapping does not read cannot make a line malformed);
    those in ``mixed`` (shapes that differ between lines) are taken as text.
    """
    dtype = pl.Struct({name: d for name, d in schema.items() if name not in mixed})
    as_text = [name for name in schema if name in mixed]
    good = chunk.select(_looks_like_object(pl.col("_raw")).fill_null(False))["_raw"]
    raw = chunk["_raw"]
    if good.any():
        try:
            raw.filter(good).str.json_decode(dtype)
        except pl.exceptions.PolarsError:
            candidates = raw.filter(good)
            mask = _is_json(candidates)
            mask = mask & _decodable(candidates, dtype, mask)
            good = good.scatter(good.arg_true().filter(~mask), False)
    lines = raw.filter(good)
    decoded = lines.str.json_decode(dtype).struct.unnest() if good.any() else pl.DataFrame(
        schema=_struct_fields(dtype))
    if as_text:
        decoded = decoded.with_columns(lines.str.json_path_match(_json_path(name)).alias(name) for name in as_text)
    return decoded, chunk.select("_line", "_raw"), good


def _json_path(name: str) -> str:
    """The JSONPath of a top-level key (bracket notation: a key may hold ``$``, ``-`` or ``.``)."""
    return "$['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _read_csv(item: ExportFile, source: Source, schema: pl.Schema, batch_rows: int,
              columns: list[str] | None = None, data: bytes | None = None) -> Iterator[pl.DataFrame]:
    """Batches of ``columns`` (every column when None): a column not read is not parsed, so a value that does not
    fit its inferred type there stops nothing. ``data``: the CSV text to read instead of the file (`_csv_input`)."""
    options = {**_csv_options(source, item), "schema_overrides": dict(schema)}
    target = _csv_input(item, source, data)
    if not isinstance(target, str) or item.path.endswith(".gz"):
        frame = pl.read_csv(target, **options)
        frame = _unescape(frame if columns is None else frame.select(columns), item, source)
        for start in range(0, max(frame.height, 1), batch_rows):
            yield frame.slice(start, batch_rows)
        return
    lazy = pl.scan_csv(target, **options)
    yield from (lazy if columns is None else lazy.select(columns)).collect_batches(chunk_size=batch_rows)


def _malformed(path: str, lines: pl.Series, raw: pl.Series) -> pl.DataFrame:
    """Lines that are not a JSON object of the export's shape, dropped as ``malformed`` with the line's start."""
    return pl.DataFrame({"_line": lines.cast(pl.UInt64), "_raw": raw}).select(
        pl.lit(path, pl.String).alias("_file"),
        pl.col("_line"),
        pl.lit("malformed", pl.String).alias("_drop"),
        pl.format("not a JSON object of the export's shape: {}", pl.col("_raw").str.slice(0, 200)).alias("_detail"),
    )


#: Values of a JSON-text column sampled to learn its shape (`ExportReader._sample_dtype`).
JSON_SAMPLE_ROWS = 10_000


def _used_columns(wanted: frozenset[str]) -> set[str]:
    """The columns names may read: the names themselves (a dotted CSV header) and the columns they start from."""
    return {*wanted, *(column_of(name) for name in wanted)}


def _first_values(item: ExportFile, source: Source, column: str, chunk_bytes: int) -> pl.Series:
    """The first `JSON_SAMPLE_ROWS` non-empty values of a text column in one file, stripped."""
    try:
        values = _read_first_values(item, source, column, chunk_bytes)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise unreadable(item, error) from None
    values = values.cast(pl.String).str.strip_chars()
    return values.filter(values.is_not_null() & (values != ""))


def _read_first_values(item: ExportFile, source: Source, column: str, chunk_bytes: int) -> pl.Series:
    if item.format == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(item.path).iter_batches(batch_size=JSON_SAMPLE_ROWS, columns=[column]), None)
        values = pl.Series([], dtype=pl.String) if batch is None else pl.from_arrow(batch.column(0))
    elif item.format == "csv":
        options = {**_csv_options(source, item), "schema_overrides": {column: pl.String}, "n_rows": JSON_SAMPLE_ROWS}
        values = _unescape(pl.read_csv(_csv_input(item, source), **options).select(column), item, source)[column]
    else:
        with closing(_ndjson_chunks(item.path, min(chunk_bytes, 4 * 1024 * 1024))) as chunks:
            lines = next(chunks, pl.DataFrame(schema={"_raw": pl.String}))
        values = lines["_raw"].head(JSON_SAMPLE_ROWS).str.json_path_match(_json_path(column))
    assert isinstance(values, pl.Series)
    return values


def _json_text(column: str) -> pl.Expr:
    """The text of a JSON-text column to decode: stripped; empty text and ``null`` are null."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(~text.is_in(["", "null"])).then(text)


def decode_json_columns(frame: pl.DataFrame, dtypes: dict[str, pl.DataType]) -> pl.DataFrame:
    """Every JSON-text column decoded as its type, in one pass (polars decodes the columns in parallel); when a
    value does not decode, column by column with `decode_json_text`, which finds the rows."""
    if not dtypes:
        return frame
    try:
        return frame.with_columns(_json_text(c).str.json_decode(d).alias(c) for c, d in dtypes.items())
    except pl.exceptions.PolarsError:
        for column, dtype in dtypes.items():
            frame = decode_json_text(frame, column, dtype)
        return frame


def decode_json_text(frame: pl.DataFrame, column: str, dtype: pl.DataType) -> pl.DataFrame:
    """``column`` (JSON text) decoded as ``dtype``: one columnar decode in the common case. Empty text and
    ``null`` are null. A value that is not JSON, or not of the shape the mapping reads, drops its row as
    ``invalid:<column>`` (the value goes to the rejects file with the row's file and line)."""
    text = frame.select(_json_text(column))[column]
    try:
        return frame.with_columns(text.str.json_decode(dtype).alias(column))
    except pl.exceptions.PolarsError:
        pass
    opening = "[" if isinstance(dtype, pl.List) else "{" if isinstance(dtype, pl.Struct) else None
    fits = _is_json(text) & (text.str.starts_with(opening) if opening else True)
    fits = _decodable(text, dtype, fits.fill_null(False))
    fits = fits | text.is_null()
    nothing = pl.Series([None] * text.len(), dtype=pl.String)
    bad = pl.Series("_bad", ~fits)
    frame = frame.with_columns(bad, pl.Series("_bad_text", text.str.slice(0, 200)),
                               text.zip_with(fits, nothing).str.json_decode(dtype).alias(column))
    detail = pl.format("{} is invalid. {} is not JSON of the shape the mapping reads: {}", pl.lit(column),
                       pl.lit(column), pl.col("_bad_text"))
    return frame.with_columns(drop_when(pl.col("_bad"), f"invalid:{column}", detail)).drop("_bad", "_bad_text")


@dataclass(frozen=True)
class FileProbe:
    """What the reader learns of one file before reading its rows: its format (`_typed`), its schema
    (`file_schema`), its NDJSON columns of mixed shape, and the first values of the text columns a mapping may
    walk into as JSON (`_first_values`). `probe_file` computes it where the file is: on the reader's machine,
    or on the cluster for a Spark run (`logmap.spark.exports`), whose driver may not read the files."""

    file: ExportFile
    schema: pl.Schema
    mixed: frozenset[str]
    first_values: dict[str, pl.Series]


def walked_column(name: str, schema: pl.Schema) -> str | None:
    """The column of ``schema`` that a wanted name walks into (``{contexts_x[].id}`` → ``contexts_x``) when the
    name is not a column itself: a JSON-text candidate (the URL parts ``query``/``referrer_query`` are not)."""
    column, steps = path_steps(name)
    if steps and name not in schema and column in schema and column not in ("query", "referrer_query"):
        return column
    return None


def probe_file(item: ExportFile, source: Source, chunk_bytes: int, wanted: frozenset[str] | None) -> FileProbe:
    """`FileProbe` of ``item``; the values of every column that a ``wanted`` name walks into are sampled (the
    reader decides, with the run's unified schema, which of them are JSON text)."""
    typed = _typed(item, source)
    mixed: set[str] = set()
    schema = file_schema(typed, source, chunk_bytes, mixed)
    walked = set()
    for name in wanted or ():  # every column that may be JSON text in the run: the reader decides which is
        column = walked_column(name, schema)
        if column is not None and not isinstance(schema[column], pl.Struct | pl.List | pl.Array):
            walked.add(column)
    return FileProbe(typed, schema, frozenset(mixed),
                     {column: _first_values(typed, source, column, chunk_bytes) for column in sorted(walked)})


class ExportReader:
    """Reads one run's export files with one unified schema; ``frame_schema`` is known before any row is read.

    ``probes`` are the files' `FileProbe` in the run's order when they were probed elsewhere (a Spark run's
    cluster); by default the reader lists ``inputs`` and probes each file itself."""

    def __init__(self, inputs: list[str], source: Source, chunk_bytes: int = 64 * 1024 * 1024,
                 progress: ProgressCallback | None = None, wanted: frozenset[str] | None = None,
                 optional: frozenset[str] = frozenset(), probes: list[FileProbe] | None = None) -> None:
        if not source.is_export:
            raise ValueError(f"{source.format} is not an export format")
        check_source(source)
        self.source = source
        self.chunk_bytes = chunk_bytes
        self.progress = progress
        #: the first values of JSON-text candidates per (file, column), when probed elsewhere
        self._first_values: dict[tuple[str, str], pl.Series] | None = None
        if probes is None:
            self.files = [_typed(item, source) for item in expand_export_inputs(inputs, source.format)]
            #: NDJSON columns whose shape differs between lines or files: read as text
            self.mixed: set[str] = set()
            self.schemas = {item.path: file_schema(item, source, chunk_bytes, self.mixed) for item in self.files}
        else:
            self.files = [probe.file for probe in probes]
            self.mixed = {column for probe in probes for column in probe.mixed}
            self.schemas = {probe.file.path: probe.schema for probe in probes}
            self._first_values = {(probe.file.path, column): values for probe in probes
                                  for column, values in probe.first_values.items()}
        #: every column of the files (what errors list)
        self.schema = unify_schemas(self.schemas, None if wanted is None else _used_columns(wanted),
                                    self.mixed if {f.format for f in self.files} == {"ndjson"} else None)
        if not self.schema:
            raise InputError(f"no columns found in {', '.join(self.schemas)}: is the input empty?")
        #: the columns (and, for Parquet, struct fields) that ``wanted`` names read (`wanted_names`), or None
        self.paths = None if wanted is None else read_paths(self.schema, wanted)
        #: the columns rows are read with: `paths`, or every column of the files
        self.read_schema = self.schema if self.paths is None else self._read_schema(self.paths)
        #: text columns the mapping walks into, decoded as JSON once per chunk: column → the type decoded
        self.json_columns: dict[str, pl.DataType] = {}
        #: the same columns as the mapping is checked against before reading (`empty`): the fields of the sampled
        #: values, and those of optional names (a required name the sample lacks is then an unknown field)
        self.json_checked: dict[str, pl.DataType] = {}
        if wanted is not None:
            self._json_columns(wanted, optional)
        decoded = pl.Schema({column: self.json_columns.get(column, dtype)
                             for column, dtype in self.read_schema.items()})
        #: key/value lookups computed once per row (each list's in one pass: `key_value_columns`), replacing their list
        #: columns (`key_value_lookups`)
        self.lookups = {} if wanted is None else key_value_lookups(
            decoded, wanted, frozenset([_time_spec(source)["column"]]))

    def _read_schema(self, paths: dict[str, set[tuple[str, ...]]]) -> pl.Schema:
        """Parquet and NDJSON decode only the struct fields read (`logmap.transform.nested.prune_dtype`); a
        CSV column is text."""

        if any(item.format == "csv" for item in self.files):
            return pl.Schema({column: self.schema[column] for column in paths})
        return pl.Schema({column: prune_dtype(self.schema[column], fields) for column, fields in paths.items()})

    def _json_columns(self, wanted: frozenset[str], optional: frozenset[str]) -> None:
        """The text columns (or always-null ones) that a wanted name walks into (``{contexts_x[].id}``), each
        with the type to decode it with: the fields named, shaped as a sample of the values (`json_dtype`)."""
        names: dict[str, dict[str, tuple[str, ...]]] = {}
        for name in wanted:
            column = walked_column(name, self.read_schema)
            if column is not None and self.read_schema[column] in (pl.String, pl.Null):
                names.setdefault(column, {})[name] = path_steps(name)[1]
        for column, steps_by_name in names.items():
            sampled = self._sample_dtype(column)
            self.json_columns[column] = json_dtype(sampled, set(steps_by_name.values()))
            checked = {path for name, path in steps_by_name.items()
                       if sampled is None or name in optional or read_path(name, {column: sampled}) is not None}
            self.json_checked[column] = json_dtype(sampled, checked) if checked else pl.Struct({})

    def _sample_dtype(self, column: str) -> pl.DataType | None:
        """The type polars infers from the first values of a JSON-text column (up to `JSON_SAMPLE_ROWS` values
        with text, across files), or None when there are none or they do not agree."""
        found: list[pl.Series] = []
        for item in self.files:
            if column in self.schemas[item.path]:
                found.append(_first_values(item, self.source, column, self.chunk_bytes) if self._first_values is None
                             else self._first_values.get((item.path, column), pl.Series([], dtype=pl.String)))
                if sum(len(f) for f in found) >= JSON_SAMPLE_ROWS:
                    break
        texts = pl.concat(found) if found else pl.Series([], dtype=pl.String)
        texts = texts.filter(texts.str.starts_with("[") | texts.str.starts_with("{"))
        texts = texts.filter(_is_json(texts))
        if texts.len() == 0:
            return None
        try:
            return texts.str.json_decode(infer_schema_length=None).dtype
        except pl.exceptions.PolarsError:
            return None

    def empty(self) -> pl.DataFrame:
        """No rows, every column a chunk will have: compile the mapping against it before reading."""
        frame = pl.DataFrame(schema={**dict(self.read_schema), **self.json_checked, **PROVENANCE})
        return self._finish(frame, decode=False)

    def _finish(self, frame: pl.DataFrame, decode: bool = True) -> pl.DataFrame:
        """JSON text decoded, the key/value lookups in place of their lists, then the canonical columns."""
        if decode:
            frame = decode_json_columns(frame, self.json_columns)
        if self.lookups:
            lists = {column_of(name) for name in self.lookups}
            frame = frame.with_columns(**key_value_columns(frame, list(self.lookups))).drop(lists)
        try:
            return canonicalize(frame, self.source)
        except LogmapError as error:
            raise with_columns(error, self.schema, list(self.schemas)) from None

    def rows_frame(self, rows: pl.DataFrame, item: ExportFile, lines: int | pl.Series) -> pl.DataFrame:
        """Rows of ``item`` as its reader gives them (a Parquet or CSV batch, decoded NDJSON lines) as
        `read_file` yields them: in the run's schema (absent columns null, types cast, hive partitions added),
        numbered from ``lines`` (the first row's number, or each row's), JSON text decoded, canonical columns.
        A Spark run's Parquet scan hands its batches here too (`logmap.spark.exports`)."""
        numbered = (_with_provenance(_conform(rows, self.read_schema, item), item.path, lines)
                    if isinstance(lines, int) else
                    _with_provenance(_conform(rows, self.read_schema, item), item.path, 0, lines))
        return self._finish(numbered)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for item in self.files:
            yield from self.read_file(item)

    def read_file(self, item: ExportFile, copy: str | None = None) -> Iterator[pl.DataFrame]:
        """The frames of one of the run's ``files``, read with the run's schema. ``copy`` is where its bytes are
        when not at its path (a Spark executor's local copy of its split); rows still name ``item.path``."""
        if copy is None:
            yield from self._read(item, _batch_rows(self.source))
            return
        self.schemas[copy] = self.schemas[item.path]
        try:
            for frame in self._read(replace(item, path=copy), _batch_rows(self.source)):
                yield frame.with_columns(pl.lit(item.path, pl.String).alias("_file"))
        finally:
            del self.schemas[copy]

    def _read(self, item: ExportFile, batch_rows: int) -> Iterator[pl.DataFrame]:
        if item.format == "ndjson":
            yield from self.ndjson_rows(item, _ndjson_chunks(item.path, self.chunk_bytes, self.progress))
        elif item.format == "parquet":
            yield from _reading(item, self._numbered(item, _read_parquet(item, batch_rows, self.progress, self.paths)))
        else:
            yield from self.csv_rows(item)

    def ndjson_rows(self, item: ExportFile, chunks: Iterable[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        """Chunks of ``item``'s lines (``_file``, ``_line``, ``_raw``: `read_lines`'s frames, or a Spark byte
        range's lines split the same way) as `read_file` gives them: decoded with every column read (a line that
        does not fit the export's shape is ``malformed``)."""
        yield from _reading(item, (self._ndjson_rows(item, chunk) for chunk in chunks))

    def _ndjson_rows(self, item: ExportFile, chunk: pl.DataFrame) -> pl.DataFrame:
        decoded, lines, good = _decode_ndjson(chunk, self.read_schema, self.mixed)
        out = self.rows_frame(decoded, item, lines["_line"].filter(good))
        bad = lines.filter(~good)
        if bad.height:
            out = pl.concat([out, _malformed(item.path, bad["_line"], bad["_raw"])], how="diagonal_relaxed")
        return out

    def csv_rows(self, item: ExportFile, data: bytes | None = None, first_row: int = 1) -> Iterator[pl.DataFrame]:
        """The rows of a CSV file as `read_file` gives them, or of ``data`` (CSV text: the file's header, when it
        has one, and some of its whole lines, a Spark byte range) numbered from ``first_row``."""
        columns = [c for c in self.read_schema if c in self.schemas[item.path]]
        batches = _read_csv(item, self.source, self.schema, _batch_rows(self.source), columns, data)
        yield from _reading(item, self._numbered(item, batches, first_row))

    def _numbered(self, item: ExportFile, batches: Iterator[pl.DataFrame],
                  first_row: int = 1) -> Iterator[pl.DataFrame]:
        for batch in batches:
            yield self.rows_frame(batch, item, first_row)
            first_row += batch.height


def _reading(item: ExportFile, frames: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """``frames`` of ``item``, a file polars or pyarrow cannot read said in one line."""
    try:
        yield from frames
    except LogmapError:
        raise
    except (OSError, pl.exceptions.PolarsError) as error:
        raise unreadable(item, error) from None


def with_columns(error: LogmapError, schema: pl.Schema, files: list[str]) -> LogmapError:
    """Say which columns the input has when a source option names one it lacks."""
    if not isinstance(error, UnknownFieldError):
        return error
    return UnknownFieldError(f"unknown field '{error.field}': the input has no such column; "
                             + describe_columns(schema, files), field=error.field, known=list(schema),
                             file=error.file, line=error.line, column=error.column, key=error.key)


def describe_columns(schema: pl.Schema | dict[str, pl.DataType], files: list[str]) -> str:
    """'the columns of a.parquet are: x, y (struct: y.a, y.b), …' — for errors about a column the files lack."""
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    names = [n for n in schema if not n.startswith("_")]
    return f"the columns of {shown} are: {', '.join(names)}"


def explain_unknown_field(error: Exception, reader: ExportReader) -> Exception:
    """A compile error about an unknown field, restated with the input files' own columns (or, for a path into
    JSON text, with the fields its first values have)."""
    if not isinstance(error, UnknownFieldError):
        return error
    name = error.field
    column = column_of(name)
    sampled = reader._sample_dtype(column) if name != column and reader.schema.get(column) == pl.String else None
    if sampled is not None:
        fields = ", ".join(_field_paths(sampled)) or "none"
        return UnknownFieldError(
            f"unknown field '{name}': column {column} holds JSON text, and its first {JSON_SAMPLE_ROWS:,} values "
            f"have no such field (they have: {fields}); write '{name}?' if it may appear later",
            field=name, known=_field_paths(sampled), file=error.file, line=error.line, column=error.column,
            key=error.key)
    return with_columns(error, reader.schema, list(reader.schemas))


def _field_paths(dtype: PolarsDataType, prefix: str = "") -> list[str]:
    """``[].id, [].price, …``: the field paths of a JSON value's type, as references write them."""
    if isinstance(dtype, (pl.List, pl.Array)):
        return _field_paths(dtype.inner, prefix + "[]")
    if isinstance(dtype, pl.Struct):
        return [path for f in dtype.fields for path in _field_paths(f.dtype, f"{prefix}.{f.name}")]
    return [prefix or "(a value)"]


def read_export(inputs: list[str], source: Source, *, chunk_bytes: int = 64 * 1024 * 1024,
                progress: ProgressCallback | None = None, mapping: Mapping | None = None) -> Iterator[pl.DataFrame]:
    """Frames of export rows with provenance and canonical columns, batch by batch, file by file.

    Only the columns ``mapping`` reads when it is given; every column otherwise.
    """
    wanted = wanted_names(mapping) if mapping is not None else None
    optional = optional_names(mapping) if mapping is not None else frozenset()
    yield from ExportReader(inputs, source, chunk_bytes, progress, wanted, optional)
