"""The record frame: one flat column per JSON path of an interaction record (null = absent).

Flat, typed columns let every later step (validation, encoding) be plain polars expressions, and the dotted
names say exactly where each value lands in the JSON. See docs/architecture.md, "The record frame".
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

LIST_STR = pl.List(pl.String)
LIST_F64 = pl.List(pl.Float64)

#: The fixed columns, in the order their fields are written.
RECORD_COLUMNS: dict[str, pl.DataType] = {
    "type": pl.String(),
    "user_id": pl.String(),
    "anonymous_id": pl.String(),
    "miso_id": pl.String(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "product_ids": LIST_STR,
    "product_group_ids": LIST_STR,
    "category": LIST_STR,
    "quantities": LIST_F64,
    "revenue": pl.Float64(),
    "rating": pl.Float64(),
    "duration": pl.Float64(),
    "custom_action_name": pl.String(),
    "question_id": pl.String(),
    "result_type": pl.String(),
    "value": pl.String(),
    "search.keywords": pl.String(),
    "context.page.url": pl.String(),
    "context.page.referrer": pl.String(),
    "context.page.title": pl.String(),
    "context.user_agent": pl.String(),
    "context.truncated_ip": pl.String(),
    "context.locale": pl.String(),
    "context.region": pl.String(),
    "context.campaign.name": pl.String(),
    "context.campaign.source": pl.String(),
    "context.campaign.medium": pl.String(),
    "context.campaign.term": pl.String(),
    "context.campaign.content": pl.String(),
}

FILTERS_PREFIX = "search.filters."
CUSTOM_CONTEXT_PREFIX = "context.custom_context."
#: Column families whose members are named by the mapping (`search.filters.color`, `context.custom_context.ab`).
DYNAMIC_PREFIXES = (FILTERS_PREFIX, CUSTOM_CONTEXT_PREFIX)

#: The dtypes a `context.custom_context.<key>` column may have (the API's custom_context value shapes).
CUSTOM_CONTEXT_DTYPES: tuple[pl.DataType, ...] = (pl.Boolean(), pl.Int64(), pl.Float64(), pl.String(), LIST_F64,
                                                  LIST_STR)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def order_record_columns(names: list[str] | tuple[str, ...]) -> list[str]:
    """The record columns among ``names`` in writing order.

    Fixed columns keep ``RECORD_COLUMNS``' order; filters follow ``search.keywords`` and custom context ends
    ``context``, each family sorted by name, so the same columns always give the same JSON.
    """
    present = set(names)
    filters = sorted(n for n in present if n.startswith(FILTERS_PREFIX) and n != FILTERS_PREFIX)
    custom = sorted(n for n in present if n.startswith(CUSTOM_CONTEXT_PREFIX) and n != CUSTOM_CONTEXT_PREFIX)
    out: list[str] = []
    for name in RECORD_COLUMNS:
        if name in present:
            out.append(name)
        if name == "search.keywords":
            out.extend(filters)
    return out + custom


def record_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The record columns of ``frame`` in writing order (see :func:`order_record_columns`)."""
    return order_record_columns(frame.collect_schema().names())


def column_dtype(name: str, current: pl.DataType) -> pl.DataType | None:
    """The dtype record column ``name`` must have, given its ``current`` dtype (None: not a record column).

    A text ``timestamp`` stays text: casting would turn an invalid one into null, i.e. silently absent, where
    the validator should reject it with ``invalid:timestamp``.
    """
    if name in RECORD_COLUMNS:
        if name == "timestamp" and current == pl.String:
            return pl.String()
        return RECORD_COLUMNS[name]
    if name.startswith(FILTERS_PREFIX) and name != FILTERS_PREFIX:
        return LIST_STR
    if name.startswith(CUSTOM_CONTEXT_PREFIX) and name != CUSTOM_CONTEXT_PREFIX:
        return _custom_context_dtype(name, current)
    return None


def _custom_context_dtype(name: str, current: pl.DataType) -> pl.DataType:
    if current == pl.Null or current in CUSTOM_CONTEXT_DTYPES:
        return pl.String() if current == pl.Null else current
    if current.is_integer():
        return pl.Int64()
    if current.is_float() or current.is_decimal():
        return pl.Float64()
    if isinstance(current, (pl.Categorical, pl.Enum)):
        return pl.String()
    if isinstance(current, (pl.List, pl.Array)):
        inner = current.inner
        if inner.is_numeric():
            return LIST_F64
        if inner == pl.String or inner == pl.Null or isinstance(inner, (pl.Categorical, pl.Enum)):
            return LIST_STR
    raise TypeError(f"record column {name!r} has dtype {current}; custom context values must be one of "
                    f"{', '.join(str(d) for d in CUSTOM_CONTEXT_DTYPES)}")


def _cast(name: str, current: pl.DataType, target: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if current == target:
        return column
    if isinstance(target, pl.List) and not isinstance(current, (pl.List, pl.Array, pl.Null)):
        # One value where a list is expected: a one-element list (the mapping language allows one template).
        return pl.when(column.is_not_null()).then(pl.concat_list(column.cast(target.inner))).alias(name)
    if isinstance(target, pl.Datetime) and isinstance(current, pl.Datetime) and current.time_zone is not None:
        return column.dt.convert_time_zone("UTC").cast(target).alias(name)
    return column.cast(target).alias(name)


def conform(frame: Frame) -> Frame:
    """Give ``frame`` every fixed record column, each with its contract dtype, record columns first in order.

    Missing fixed columns become typed nulls (so validation and encoding need no "is it there?" branches),
    present ones are cast (strictly: a value that does not convert is a bug upstream, not a record to drop),
    dynamic columns get their family's dtype. Other columns (``_file``, ``_line``, ``_drop``, ``_detail``, …)
    follow, untouched and in their original order.
    """
    schema = frame.collect_schema()
    exprs: list[pl.Expr] = []
    for name in order_record_columns(list(schema.names()) + list(RECORD_COLUMNS)):
        if name in schema:
            target = column_dtype(name, schema[name])
            assert target is not None
            exprs.append(_cast(name, schema[name], target))
        else:
            exprs.append(pl.lit(None, RECORD_COLUMNS[name]).alias(name))
    recorded = {e.meta.output_name() for e in exprs}
    exprs.extend(pl.col(name) for name in schema.names() if name not in recorded)
    return frame.select(exprs)
