"""Columnar JSON encoding of the record frame: one compact JSON object string per row.

Each present value becomes a ``"key":value`` fragment written by polars' own JSON writer (so escaping is
exactly JSON's), fragments are joined with ``concat_str(ignore_nulls=True)`` so absent values leave no trace
(never ``null``), and nested objects are built from the dotted column names the same way; an object with no
present member is itself absent. No per-record Python objects are created.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import polars as pl

from logmap.records.schema import DYNAMIC_PREFIXES, RECORD_COLUMNS, order_record_columns, record_columns

#: ``2024-03-01T10:00:00.000Z``: UTC with milliseconds.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"

Tree = dict[str, Any]  # key → column name (leaf) or Tree (nested object)


def _path(name: str) -> list[str]:
    """The JSON path of a column; a dynamic family's member name is one key even if it contains dots."""
    if name.startswith(DYNAMIC_PREFIXES):
        return name.split(".", 2)
    return name.split(".")


def _tree(columns: Sequence[str]) -> Tree:
    tree: Tree = {}
    for name in columns:
        *parents, leaf = _path(name)
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = name
    return tree


def _fragment(key: str, name: str, dtype: pl.DataType) -> pl.Expr:
    """``"key":<value>`` where the column is present, else null."""
    column = pl.col(name)
    value = column
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone not in (None, "UTC"):
            value = value.dt.convert_time_zone("UTC")
        value = value.dt.strftime(TIMESTAMP_FORMAT)
    elif isinstance(dtype, pl.Date):
        value = value.dt.strftime("%Y-%m-%d")
    # {"key":<value>} → "key":<value>
    encoded = pl.struct(value.alias(key)).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
    return pl.when(column.is_not_null()).then(encoded)


def _leaves(tree: Tree) -> list[str]:
    return [leaf for node in tree.values() for leaf in (_leaves(node) if isinstance(node, dict) else [node])]


def _members(tree: Tree, dtypes: Mapping[str, pl.DataType]) -> pl.Expr:
    """The comma-joined fragments of an object's present members (empty string when none is present)."""
    fragments = []
    for key, node in tree.items():
        if isinstance(node, dict):
            present = pl.any_horizontal([pl.col(leaf).is_not_null() for leaf in _leaves(node)])
            opening = json.dumps(key, ensure_ascii=False) + ":{"
            fragments.append(pl.when(present).then(pl.lit(opening) + _members(node, dtypes) + pl.lit("}")))
        else:
            fragments.append(_fragment(key, node, dtypes[node]))
    return pl.concat_str(fragments, separator=",", ignore_nulls=True)


def json_expr(columns: Sequence[str], dtypes: Mapping[str, pl.DataType] | None = None) -> pl.Expr:
    """An expression giving each row's record as one compact JSON object.

    ``columns`` are record column names (any order: fields are written ``type`` first, then in the frame's
    fixed order, so the same columns always give the same text). ``dtypes`` is needed only where a column's
    dtype differs from ``RECORD_COLUMNS`` (e.g. a text ``timestamp``, written verbatim); by default fixed
    columns have their contract dtype.
    """
    known: dict[str, pl.DataType] = dict(RECORD_COLUMNS)
    known.update(dtypes or {})
    ordered = order_record_columns(list(columns))
    resolved = {c: known.get(c, pl.String()) for c in ordered}
    return (pl.lit("{") + _members(_tree(ordered), resolved) + pl.lit("}")).alias("_json")


def encode_records(frame: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """The JSON expression for every record column of ``frame`` (evaluate it on ``frame``)."""
    schema = frame.collect_schema()
    return json_expr(record_columns(frame), dict(schema))


def encode_frame(frame: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """The records of ``frame`` as a String Series of compact JSON objects (named ``_json``)."""
    selected = frame.select(encode_records(frame))
    if isinstance(selected, pl.LazyFrame):
        selected = selected.collect()
    return selected.to_series()


#: The same as :func:`encode_frame`, under the name the batch writer looks for.
encode_ndjson = encode_frame


def ndjson_text(records: pl.Series) -> str:
    """Encoded records as NDJSON: one per line, newline-terminated ("" when there are none)."""
    if records.len() == 0:
        return ""
    return records.str.join("\n").item() + "\n"


def body_text(records: pl.Series) -> str:
    """Encoded records as one upload request body, ``{"data":[...]}``."""
    joined = records.str.join(",").item() if records.len() else ""
    return '{"data":[' + joined + "]}"
