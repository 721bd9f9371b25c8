"""Sources: read inputs and yield frames of canonical columns with provenance (`_file`, `_line`, `_drop`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl

from logmap.mapping.model import Mapping, Source

#: Analytics-export formats, read by `logmap.sources.exports` (the mapping language lists them in defaults).
EXPORT_FORMATS: tuple[str, ...] = ("parquet", "ndjson", "csv")


def read_source(inputs: list[str], source: Source, *, chunk_bytes: int = 64 * 1024 * 1024,
                progress: Callable[[int], None] | None = None,
                mapping: Mapping | None = None) -> Iterator[pl.DataFrame]:
    """Parsed chunks of every input, in order. Each row is one input line (or export row).

    With ``mapping``, an export is read with only the columns the mapping uses (a GA4 row is mostly columns a
    mapping never looks at); access logs always give their canonical columns.
    """
    if source.format in EXPORT_FORMATS:
        from logmap.sources.exports import read_export

        yield from read_export(inputs, source, chunk_bytes=chunk_bytes, progress=progress, mapping=mapping)
        return
    from logmap.sources import accesslog
    from logmap.sources.lines import expand_inputs, read_lines

    for path in expand_inputs(inputs):
        for lines in read_lines(path, chunk_bytes=chunk_bytes, progress=progress, encoding=source.encoding):
            yield accesslog.parse(lines, source)


def empty_frame(source: Source, inputs: list[str] | None = None, mapping: Mapping | None = None) -> pl.DataFrame | None:
    """A parsed frame with no rows but the columns ``source`` produces: lets a mapping be compiled, and its
    references checked, before any input is read.

    An export's columns come from its files' schemas (read from metadata or a first pass, not from rows), so
    for exports this needs ``inputs`` and is None without them (the options are still checked).
    """
    if source.format in EXPORT_FORMATS:
        from logmap.sources.exports import check_source, empty_export_frame

        check_source(source)
        return empty_export_frame(inputs, source, mapping) if inputs else None
    from logmap.sources import accesslog

    lines = pl.DataFrame(schema={"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String})
    return accesslog.parse(lines, source)


def name_input_columns(error: Exception, source: Source, inputs: list[str] | None) -> Exception:
    """For exports, a template naming a column the files lack: say which files and which columns they have."""
    if source.format not in EXPORT_FORMATS or not inputs:
        return error
    from logmap.sources.exports import explain_unknown_field

    return explain_unknown_field(error, source, inputs)
