"""Sources: read inputs and yield frames of canonical columns with provenance (`logmap.frame`)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import polars as pl

from logmap.errors import MappingError
from logmap.frame import LINE_SCHEMA
from logmap.mapping import loader
from logmap.mapping.model import Mapping, Source
from logmap.memo import Remembered
from logmap.sources import accesslog, exports, formatstring
from logmap.sources.lines import expand_inputs, read_lines


def source_problems(source: Source) -> list[tuple[str, str]]:
    """What the source finds wrong with its own settings, as (mapping key, message): the loader reports the first
    with its position, before any input is read."""
    if source.format in ("nginx", "apache") and source.pattern is not None:
        try:
            formatstring.compile_source(source)
        except MappingError as error:
            return [("source.pattern", error.reason)]
    if source.is_export:
        return [(f"source.options.{key}" if key else "source.options", message)
                for key, message in exports.check_options(source.format, dict(source.options))]
    return []


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file, the source's own settings included (MappingError with a position)."""
    return loader.load_mapping(path, source_check=source_problems)


def load_mapping_text(text: str, name: str = "<mapping>") -> Mapping:
    """:func:`load_mapping` for YAML text; ``name`` stands for the file in error messages."""
    return loader.load_mapping_text(text, name, source_check=source_problems)


def open_export(inputs: list[str], source: Source, mapping: Mapping | None = None,
                probes: list[exports.FileProbe] | None = None) -> exports.ExportReader:
    """The one reader of a run's export files: their schemas are read (from metadata, or a first pass) once,
    for the checks before reading and for the rows. With ``mapping``, only the columns it uses are read.
    ``probes``: the files as probed elsewhere (`exports.probe_file`), instead of listing and probing ``inputs``."""
    wanted = exports.wanted_names(mapping) if mapping is not None else None
    optional = exports.optional_names(mapping) if mapping is not None else frozenset()
    return exports.ExportReader(inputs, source, wanted=wanted, optional=optional, probes=probes)


def read_source(inputs: list[str], source: Source, *, chunk_bytes: int = 64 * 1024 * 1024,
                progress: Callable[[int], None] | None = None, mapping: Mapping | None = None,
                reader: exports.ExportReader | None = None) -> Generator[pl.DataFrame, None, None]:
    """Parsed chunks of every input, in order. Each row is one input line (or export row).

    With ``mapping``, an export is read with only the columns the mapping uses (a GA4 row is mostly columns a
    mapping never looks at); access logs always give their canonical columns. An export ``reader`` from
    :func:`open_export` is reused rather than opened again.
    """
    if source.is_export:
        reader = reader or open_export(inputs, source, mapping)
        reader.chunk_bytes, reader.progress = chunk_bytes, progress
        yield from reader
        return
    for path in expand_inputs(inputs):
        for lines in read_lines(path, chunk_bytes=chunk_bytes, progress=progress, encoding=source.encoding):
            yield accesslog.parse(lines, source)


def empty_frame(source: Source, reader: exports.ExportReader | None = None) -> pl.DataFrame | None:
    """A parsed frame with no rows but the columns ``source`` produces: lets a mapping be compiled, and its
    references checked, before any input is read.

    An export's columns come from its files' schemas, so for exports this needs their ``reader`` and is None
    without it.
    """
    if source.is_export:
        return reader.empty() if reader is not None else None
    key = repr(source)  # every field of the dataclass: parsing no lines is a pure function of them
    empty = _EMPTY.get(key)
    if empty is None:
        empty = accesslog.parse(pl.DataFrame(schema=LINE_SCHEMA), source)
        _EMPTY.remember(key, empty)
    return empty.clear()  # a frame of its own: the caller may change it in place


#: Access-log sources' frames of no rows, by ``repr`` of the source: building the parser's plan costs ~10 ms, paid
#: again by every run of a process (a test suite, ``logmap test``'s cases) for the same few sources. Bounded.
_EMPTY: Remembered[str, pl.DataFrame] = Remembered(64)


def name_input_columns(error: Exception, reader: exports.ExportReader | None) -> Exception:
    """For exports, a template naming a column the files lack: say which files and which columns they have."""
    if reader is None:
        return error
    return exports.explain_unknown_field(error, reader)
