"""Sources: read inputs and yield frames of canonical columns with provenance (`logmap.frame`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from logmap.errors import MappingError
from logmap.frame import LINE_SCHEMA
from logmap.mapping import defaults, loader
from logmap.mapping.model import Mapping, Source
from logmap.sources import accesslog, exports, formatstring
from logmap.sources.lines import expand_inputs, read_lines


def is_export(source: Source) -> bool:
    return source.format in defaults.EXPORT_FORMATS


def source_problems(source: Source) -> list[tuple[str, str]]:
    """What the source finds wrong with its own settings, as (mapping key, message): the loader reports the first
    with its position, before any input is read."""
    if source.format in ("nginx", "apache") and source.pattern is not None:
        try:
            formatstring.compile_source(source)
        except MappingError as error:
            return [("source.pattern", error.reason)]
    if is_export(source):
        return [(f"source.options.{key}" if key else "source.options", message)
                for key, message in exports.check_options(source.format, dict(source.options))]
    return []


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file, the source's own settings included (MappingError with a position)."""
    return loader.load_mapping(path, source_check=source_problems)


def load_mapping_text(text: str, name: str = "<mapping>") -> Mapping:
    """:func:`load_mapping` for YAML text; ``name`` stands for the file in error messages."""
    return loader.load_mapping_text(text, name, source_check=source_problems)


def read_source(inputs: list[str], source: Source, *, chunk_bytes: int = 64 * 1024 * 1024,
                progress: Callable[[int], None] | None = None,
                mapping: Mapping | None = None) -> Iterator[pl.DataFrame]:
    """Parsed chunks of every input, in order. Each row is one input line (or export row).

    With ``mapping``, an export is read with only the columns the mapping uses (a GA4 row is mostly columns a
    mapping never looks at); access logs always give their canonical columns.
    """
    if is_export(source):
        yield from exports.read_export(inputs, source, chunk_bytes=chunk_bytes, progress=progress, mapping=mapping)
        return
    for path in expand_inputs(inputs):
        for lines in read_lines(path, chunk_bytes=chunk_bytes, progress=progress):
            yield accesslog.parse(lines, source)


def empty_frame(source: Source, inputs: list[str] | None = None, mapping: Mapping | None = None) -> pl.DataFrame | None:
    """A parsed frame with no rows but the columns ``source`` produces: lets a mapping be compiled, and its
    references checked, before any input is read.

    An export's columns come from its files' schemas (read from metadata or a first pass, not from rows), so
    for exports this needs ``inputs`` and is None without them (the options are still checked).
    """
    if is_export(source):
        exports.check_source(source)
        return exports.empty_export_frame(inputs, source, mapping) if inputs else None
    return accesslog.parse(pl.DataFrame(schema=LINE_SCHEMA), source)


def name_input_columns(error: Exception, source: Source, inputs: list[str] | None) -> Exception:
    """For exports, a template naming a column the files lack: say which files and which columns they have."""
    if not is_export(source) or not inputs:
        return error
    return exports.explain_unknown_field(error, source, inputs)
