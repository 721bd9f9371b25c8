"""References into nested export data (see docs/mapping.md, "Export sources").

Analytics exports keep their nested types (Parquet, NDJSON), so a template has to reach inside them without a
Python loop over rows. A reference is a dotted path whose segments walk the column's type:

* a **struct** segment takes the field: ``{context.page.url}``, ``{ecommerce.purchase_revenue}``;
* a segment on a **list of key/value structs** looks the key up: ``{event_params.page_location}`` takes the
  entry of GA4's ``event_params`` whose ``key`` is ``page_location`` and then whichever of its value fields is
  set (``string_value``, ``int_value``, ``float_value``, ``double_value``);
* a plain segment on a **list of other structs** takes the field of the first element:
  ``{contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1.revenue}`` (Snowplow contexts hold one
  entity of a kind, in a list);
* a segment ending in ``[]`` maps over a **list**: ``{items[].item_id}`` gives one value per item (a list, for
  ``product_ids`` and ``quantities``); ``{properties.products[].sku}`` combines both.

Each reference compiles to one polars expression (``list.eval`` for lists), evaluated by the Rust engine over
the whole frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from logmap.transform.compiled import Compiled, column_value

if TYPE_CHECKING:
    from polars._typing import PolarsDataType  # a DataType instance or class: what Field.dtype and .inner hold

#: Value fields of a key/value entry, in the order they are tried (GA4's typed value struct).
VALUE_FIELDS = ("string_value", "int_value", "float_value", "double_value")
KEY_FIELD = "key"
VALUE_FIELD = "value"


class _NoPath(Exception):
    """The path does not fit the column's type (the caller reports the reference as unknown)."""


def _fields(dtype: PolarsDataType) -> dict[str, PolarsDataType]:
    return {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}


def is_key_value_list(dtype: PolarsDataType) -> bool:
    """A list of ``{key, value}`` structs, the shape of GA4's ``event_params`` and ``user_properties``."""
    if not isinstance(dtype, pl.List):
        return False
    fields = _fields(dtype.inner)
    return KEY_FIELD in fields and VALUE_FIELD in fields


def _value_fields(fields: dict[str, PolarsDataType]) -> list[str]:
    """The fields of a value struct that may hold the value, in the order they are tried."""
    return [n for n in VALUE_FIELDS if n in fields] or [n for n in fields if n.endswith("value")] or list(fields)


def _pick_value(value: pl.Expr, dtype: PolarsDataType) -> tuple[pl.Expr, PolarsDataType]:
    """Whichever value field is set. A typed value struct gives text (converters make numbers of it)."""
    fields = _fields(dtype)
    if not fields:
        return value, dtype
    names = _value_fields(fields)
    if len(names) == 1:
        return value.struct.field(names[0]), fields[names[0]]
    parts = [value.struct.field(n).cast(pl.String) for n in names if fields[n] != pl.Null]
    if not parts:
        return pl.lit(None, pl.String), pl.String
    return pl.coalesce(parts), pl.String


def _lookup(expr: pl.Expr, dtype: pl.List, key: str) -> tuple[pl.Expr, PolarsDataType]:
    # Pick the value inside the list, after filtering on the key: the picked entry is then a materialised
    # element, not an expression repeated (and recomputed) once per value field.
    picked, picked_dtype = _pick_value(pl.element().struct.field(VALUE_FIELD), _fields(dtype.inner)[VALUE_FIELD])
    matching = expr.list.filter(pl.element().struct.field(KEY_FIELD) == key)
    return matching.list.eval(picked).list.first(), picked_dtype


def _step(expr: pl.Expr, dtype: PolarsDataType, name: str) -> tuple[pl.Expr, PolarsDataType]:
    fields = _fields(dtype)
    if name in fields:
        return expr.struct.field(name), fields[name]
    if is_key_value_list(dtype):
        assert isinstance(dtype, pl.List)
        return _lookup(expr, dtype, name)
    if isinstance(dtype, pl.List) and name in _fields(dtype.inner):
        # a list of entities that usually holds one (Snowplow contexts): `a.b` is `b` of the first entity
        return expr.list.first().struct.field(name), _fields(dtype.inner)[name]
    raise _NoPath(name)


def _walk(expr: pl.Expr, dtype: PolarsDataType, segments: list[str]) -> tuple[pl.Expr, PolarsDataType]:
    if not segments:
        return expr, dtype
    if dtype == pl.Null:  # no value anywhere in the input (`[]` or null in every row): nothing below either
        many = any(segment.endswith("[]") for segment in segments)
        return (pl.lit(None, pl.List(pl.String)), pl.List(pl.String)) if many else (pl.lit(None, pl.String), pl.String)
    segment, rest = segments[0], segments[1:]
    many = segment.endswith("[]")
    name = segment[:-2] if many else segment
    if name:
        expr, dtype = _step(expr, dtype, name)
    if not many:
        return _walk(expr, dtype, rest)
    if isinstance(dtype, pl.Array):
        expr, dtype = expr.arr.to_list(), pl.List(dtype.inner)
    if not isinstance(dtype, pl.List):
        raise _NoPath(segment)
    if dtype.inner == pl.Null:  # a list that is always empty (or null): zero items
        return pl.when(expr.is_not_null()).then(pl.lit([], pl.List(pl.String))), pl.List(pl.String)
    inner, inner_dtype = _walk(pl.element(), dtype.inner, rest)
    mapped = expr.list.eval(inner) if rest else expr
    if isinstance(inner_dtype, pl.List):  # a list inside a list: flatten to one list per row
        mapped = mapped.list.eval(pl.element().explode())
        inner_dtype = inner_dtype.inner
    return mapped, pl.List(inner_dtype)


def read_path(name: str, schema: dict[str, pl.DataType]) -> tuple[str, tuple[str, ...]] | None:
    """The column a nested reference starts from and the struct fields it goes through, lists crossed as
    `_walk` crosses them: ``items[].item_id`` → ``('items', ('item_id',))``, ``device.language`` →
    ``('device', ('language',))``. A key/value lookup needs whole entries: ``event_params.page_location`` →
    ``('event_params', ())``. None when ``name`` does not walk ``schema``.

    Readers use it to decode only the fields a mapping reads (`prune_dtype`); it must follow `_walk` step by step.
    """
    segments = split_path(name)
    head = segments[0]
    head_name = column_of(name)
    if head_name not in schema:
        return None
    dtype: PolarsDataType = schema[head_name]
    path: list[str] = []
    for segment in ([head[len(head_name):]] if head.endswith("[]") else []) + segments[1:]:
        many = segment.endswith("[]")
        step = segment[:-2] if many else segment
        if dtype == pl.Null or (isinstance(dtype, (pl.List, pl.Array)) and dtype.inner == pl.Null):
            return head_name, tuple(path)
        if step:
            fields = _fields(dtype)
            if step in fields:
                dtype = fields[step]
            elif is_key_value_list(dtype):
                return head_name, tuple(path)
            elif isinstance(dtype, pl.List) and step in _fields(dtype.inner):
                dtype = _fields(dtype.inner)[step]
            else:
                return None
            path.append(step)
        if many:
            if not isinstance(dtype, (pl.List, pl.Array)):
                return None
            dtype = dtype.inner
    return head_name, tuple(path)


def prune_dtype(dtype: PolarsDataType, paths: set[tuple[str, ...]]) -> PolarsDataType:
    """``dtype`` with only the struct fields on ``paths`` (from `read_path`; lists are crossed). An empty path
    keeps everything below it. Field order is the original's, so values read either way compare equal."""
    if () in paths:
        return dtype
    if isinstance(dtype, pl.List):
        return pl.List(prune_dtype(dtype.inner, paths))
    if isinstance(dtype, pl.Array):
        return pl.Array(prune_dtype(dtype.inner, paths), dtype.size)
    if not isinstance(dtype, pl.Struct):
        return dtype
    kept = {}
    for field in dtype.fields:
        below = {path[1:] for path in paths if path[0] == field.name}
        if below:
            kept[field.name] = prune_dtype(field.dtype, below)
    return pl.Struct(kept)


def key_value_lookup(name: str, schema: dict[str, pl.DataType]) -> pl.Expr | None:
    """The raw value of a reference that only looks a key up in a key/value list column
    (``event_params.page_location``), when that value is text, a number or a boolean; None for any other
    reference.

    A reader may compute it once per row, as a column named ``name``, instead of carrying the list through the
    pipeline: a template naming ``name`` then resolves to that column (`Scope.resolve` looks for a column of
    that name first), and `_column` turns it into the same value `resolve_nested` gives.
    """
    segments = split_path(name)
    if len(segments) != 2 or segments[0] not in schema or segments[1].endswith("[]"):
        return None
    dtype = schema[segments[0]]
    if not is_key_value_list(dtype):
        return None
    assert isinstance(dtype, pl.List)
    expr, picked = _lookup(pl.col(segments[0]), dtype, segments[1])
    return expr if picked == pl.String or picked == pl.Boolean or picked.is_numeric() else None


def key_value_columns(frame: pl.DataFrame, names: list[str]) -> dict[str, pl.Series]:
    """The values of `key_value_lookup` references (``event_params.page_location``, …), each as the series its
    expression gives, computed with one pass over each list column's entries instead of one list filter per
    reference (a list filter copies every entry of the keys it keeps, once per reference).

    Each list's entries are flattened once, with the row each came from, and their keys coded once; each entry
    with a key looked up has a slot (row × keys + key), and its value is picked once (`_picked_values`), then
    spread to one column per key. Where a row has a key twice, the first entry wins, as in the expression.
    """
    by_column: dict[str, list[str]] = {}
    for name in names:
        by_column.setdefault(column_of(name), []).append(name)
    out: dict[str, pl.Series] = {}
    for column, column_names in by_column.items():
        dtype = frame.schema[column]
        assert isinstance(dtype, pl.List) and is_key_value_list(dtype)
        if _fields(dtype.inner)[KEY_FIELD] != pl.String:  # keys of another type: one expression per lookup
            schema = dict(frame.schema)
            out.update((name, frame.select(key_value_lookup(name, schema)).to_series().alias(name))
                       for name in column_names)
            continue
        keys = [split_path(name)[1] for name in column_names]
        entries = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), pl.col(column).alias("entry"))
        entries = entries.explode("entry", keep_nulls=False)  # empty and null lists have no entries
        found = entries.select(
            pl.col("row").cast(pl.UInt64) * len(keys)
            + pl.col("entry").struct.field(KEY_FIELD).cast(pl.Enum(keys), strict=False).to_physical(),
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("entry"),
        ).rename({"row": "slot"}).drop_nulls("slot")
        # where: slot → the entry found there (its position in `found`), null for none
        where = _spread(found["slot"], frame.height * len(keys))
        if where.null_count() != where.len() - found.height:  # a row has a key twice: keep its first entry
            found = found.sort("slot", maintain_order=True).filter(pl.col("slot").diff().fill_null(1) != 0)
            where = _spread(found["slot"], frame.height * len(keys))
        picked = _picked_values(entries["entry"].struct.field(VALUE_FIELD).gather(found["entry"]))
        for index, name in enumerate(column_names):
            out[name] = picked.gather(where.gather_every(len(keys), index)).alias(name)
    return {name: out[name] for name in names}


def _picked_values(values: pl.Series) -> pl.Series:
    """`_pick_value` of each entry's value. A typed value struct gives text: its first value field that is set,
    cast to text; only the values picked are cast (a cast formats a column's null slots too, and most of each
    value field is null)."""
    fields = _fields(values.dtype)
    if not fields:
        return values
    names = _value_fields(fields)
    if len(names) == 1:
        return values.struct.field(names[0])
    picked: pl.Series | None = None
    for name in names:
        if fields[name] == pl.Null:
            continue
        field = values.struct.field(name)
        if picked is None and field.dtype == pl.String:
            picked = field
            continue
        if picked is None:
            picked = _nulls(pl.String, values.len())
        setting = (picked.is_null() & field.is_not_null()).arg_true()
        if setting.len():
            picked = picked.scatter(setting, field.gather(setting).cast(pl.String))
    return _nulls(pl.String, values.len()) if picked is None else picked


def _spread(slots: pl.Series, length: int) -> pl.Series:
    """A series of ``length`` positions: ``i`` at ``slots[i]``, null elsewhere."""
    return _nulls(pl.UInt32, length).scatter(slots, pl.int_range(slots.len(), dtype=pl.UInt32, eager=True))


def _nulls(dtype: PolarsDataType, length: int) -> pl.Series:
    return pl.repeat(None, length, dtype=dtype, eager=True)


def split_path(name: str) -> list[str]:
    """``items[].item_id`` → ``['items[]', 'item_id']``."""
    return name.split(".")


def column_of(name: str) -> str:
    """The column a reference starts from: ``event_params.page_location`` → ``event_params``,
    ``items[].item_id`` → ``items``."""
    head = split_path(name)[0]
    return head.removesuffix("[]")


def resolve_nested(name: str, schema: dict[str, pl.DataType]) -> Compiled | None:
    """Compile a nested reference against ``schema``; None when it does not name anything there.

    Lists of scalars come back as ``List(String)`` (ids and quantities are converted downstream), so a list of
    structs must name a field (``items[]`` alone is not a value).
    """
    segments = split_path(name)
    head = segments[0]
    head_name = column_of(name)
    if head_name not in schema:
        return None
    try:
        expr, dtype = _walk(pl.col(head_name), schema[head_name], [head[len(head_name):], *segments[1:]]
                            if head.endswith("[]") else segments[1:])
    except _NoPath:
        return None
    if isinstance(dtype, pl.List):
        if isinstance(dtype.inner, (pl.Struct, pl.List)):
            return None
        if dtype.inner != pl.String:
            expr = expr.cast(pl.List(pl.String))
        return Compiled(expr, "list")
    if isinstance(dtype, pl.Struct):
        return None
    return column_value(expr, dtype)


# --- JSON text ----------------------------------------------------------------------------------------------

#: A path step that crosses a list (``items[]`` in a reference).
EACH = "[]"


def path_steps(name: str) -> tuple[str, tuple[str, ...]]:
    """The column a reference starts from and its steps below it, ``[]`` a step of its own:
    ``PROPERTIES.products[].product_id`` → ``('PROPERTIES', ('products', '[]', 'product_id'))``."""
    segments = split_path(name)
    steps: list[str] = []
    for index, segment in enumerate(segments):
        field = segment.removesuffix(EACH)
        if index and field:
            steps.append(field)
        if segment.endswith(EACH):
            steps.append(EACH)
    return column_of(name), tuple(steps)


def text_leaves(dtype: PolarsDataType) -> pl.DataType:
    """``dtype`` with every scalar as String (JSON text decodes to text leaves; converters make numbers)."""
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: text_leaves(f.dtype) for f in dtype.fields})
    if isinstance(dtype, (pl.List, pl.Array)):
        return pl.List(text_leaves(dtype.inner))
    return pl.String()


def json_dtype(sampled: PolarsDataType | None, paths: set[tuple[str, ...]]) -> pl.DataType:
    """The type to decode a JSON-text column with: the fields on ``paths`` (from `path_steps`) and nothing else,
    shaped as the ``sampled`` values are (lists, structs, key/value lists), scalars as text.

    A field the sample lacks (it appears later, or the sample is empty) is still decoded: its shape comes from
    the path (``[]`` a list, a name a struct field), so a value that appears late in a file is not lost.
    """
    if sampled == pl.Null:
        sampled = None
    if () in paths or (sampled is not None and is_key_value_list(sampled)):
        return text_leaves(sampled) if sampled is not None else pl.String()
    if any(path[0] == EACH for path in paths) or isinstance(sampled, (pl.List, pl.Array)):
        inner = sampled.inner if isinstance(sampled, (pl.List, pl.Array)) else None
        # a name on a list of structs is the field of its first element (`_step`), so it stays inside the list
        return pl.List(json_dtype(inner, {path[1:] if path[0] == EACH else path for path in paths}))
    fields = _fields(sampled) if sampled is not None else {}
    names = [*[n for n in fields if any(p[0] == n for p in paths)],
             *sorted({p[0] for p in paths} - set(fields))]
    return pl.Struct({name: json_dtype(fields.get(name), {p[1:] for p in paths if p[0] == name}) for name in names})
