"""Columnar JSON encoding of the record frame.

Each field becomes a ``"key":value`` fragment (null where the value is absent), fragments are joined with
``concat_str(ignore_nulls=True)``, and nested objects are built from the dotted column names the same way, an
object with no members being itself absent. Values are encoded by polars' own JSON writer, so escaping is
exactly JSON's. No per-record Python objects are created.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from logmap.records.schema import record_columns

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


def _value_json(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        column = column.dt.convert_time_zone("UTC").dt.strftime(TIMESTAMP_FORMAT)
    # {"v":<value>} → <value>
    return pl.struct(column.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def _tree(columns: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name in columns:
        node = tree
        head, *rest = name.split(".", 2) if name.startswith(("context.custom_context.", "search.filters.")) else name.split(".")
        parts = [head, *rest]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = name
    return tree


def _object(tree: dict[str, Any], schema: dict[str, pl.DataType]) -> pl.Expr:
    fragments = []
    for key, node in tree.items():
        key_json = json.dumps(key, ensure_ascii=False) + ":"
        if isinstance(node, dict):
            value = _object(node, schema)
            fragments.append(pl.when(value.is_not_null()).then(pl.lit(key_json) + value))
        else:
            column = pl.col(node)
            fragments.append(pl.when(column.is_not_null()).then(pl.lit(key_json) + _value_json(node, schema[node])))
    inner = pl.concat_str(fragments, separator=",", ignore_nulls=True)
    return pl.when(inner.str.len_bytes() > 0).then(pl.lit("{") + inner + pl.lit("}"))


def encode_records(frame: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """An expression giving each row's record as one compact JSON object (evaluate it on ``frame``)."""
    schema = dict(frame.collect_schema())
    columns = [c for c in record_columns(frame) if c in schema]
    return _object(_tree(columns), schema)


def encode_frame(frame: pl.DataFrame) -> pl.Series:
    """The records of ``frame`` as a Series of JSON strings."""
    return frame.select(encode_records(frame).alias("record")).to_series()
