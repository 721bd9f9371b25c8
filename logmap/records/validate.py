"""Vectorised validation of the record frame against the API's schema (the vendored JSON Schema).

The API rejects a whole batch when one record is invalid, so every record is checked before it is written.
Each constraint is a polars expression over the whole frame (no per-row Python); the first failing check of a
row names the reason (``invalid:<field>``) and a message in the API's own style
(``data.N.timestamp is invalid. The attribute should match the 'date-time' format.``).

The checks mirror what ``jsonschema`` (Draft 2020-12 with ``FormatChecker``) accepts, down to the quirks of
the Python functions behind its formats (``rfc3339_validator``, ``uuid.UUID``, ``ipaddress.IPv4Address``);
tests/test_records_agreement.py generates thousands of records and asserts both agree on every one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import polars as pl

from logmap.records.schema import CUSTOM_CONTEXT_PREFIX, FILTERS_PREFIX, RECORD_COLUMNS, order_record_columns
from logmap.records.types import ALLOWED_FIELDS, INTERACTION_TYPES, REQUIRED_FIELDS, TYPE_SCHEMAS

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

# --- formats ------------------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: ``ipaddress.IPv4Address``: four ASCII-decimal octets 0-255, no leading zeros, nothing else.
IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"

#: ``rfc3339_validator`` (applied to the upper-cased text, as jsonschema does). Python's ``$`` also matches
#: before a final newline, hence ``\n?``; its ``\d`` is ASCII-only (``re.ASCII``), hence ``[0-9]``.
RFC3339 = (r"^([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
           r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\n?$")

# ``int(text, 16)`` as ``uuid.UUID`` calls it: surrounding white space (ASCII " \t\n\v\f\r" or Unicode
# White_Space, i.e. Rust's ``\s``; not U+001C..U+001F, though str.isspace says they are), an optional '+', an
# optional 0x prefix (one '_' may follow it), hex digits where any Unicode decimal digit counts (Rust's ``\d``
# is Unicode ``Nd`` too), single underscores between digits.
_SPACE = r"\s"
_HEX = r"[\da-fA-F]"
INT16 = rf"^{_SPACE}*\+?(?:0[xX]_?)?{_HEX}(?:_?{_HEX})*{_SPACE}*$"

#: The schema's maxLength per field (for lists: per item), read from the vendored schema.
MAX_LENGTH: dict[str, int] = {}
for _schema in TYPE_SCHEMAS.values():
    for _field, _prop in _schema["properties"].items():
        _limit = _prop.get("maxLength", _prop.get("items", {}).get("maxLength"))
        if _limit is not None:
            MAX_LENGTH[_field] = _limit

#: Check names that are spec rules outside the JSON Schema (the agreement test leaves them out).
SPEC_RULES = frozenset({"quantities_length"})


@dataclass(frozen=True)
class Check:
    """One constraint: where it fails, which field it names, and what the API would say."""

    field: str  #: the JSON path in ``invalid:<field>`` and ``data.N.<field>``
    name: str  #: the constraint class (``additional``, ``maxLength``, ``format:uuid``, …), for tests and reports
    failed: pl.Expr  #: true on rows that break it (null counts as not failed)
    message: str  #: after "is invalid. "; ``{type}`` stands for the row's type


def _uuid_ok(value: pl.Expr) -> pl.Expr:
    """jsonschema's uuid format: ``uuid.UUID(s)`` parses, and s has hyphens at positions 8, 13, 18, 23."""
    digits = value.str.replace_all("urn:", "", literal=True).str.replace_all("uuid:", "", literal=True)
    digits = digits.str.strip_chars("{}").str.replace_all("-", "", literal=True)
    hyphens = pl.all_horizontal([value.str.slice(i, 1) == "-" for i in (8, 13, 18, 23)])
    return (digits.str.len_chars() == 32) & digits.str.contains(INT16) & hyphens


def _date_time_ok(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """jsonschema's date-time format for a text or a Datetime column (written as ``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    if dtype != pl.String and not isinstance(dtype, pl.Datetime):
        return pl.lit(False)  # e.g. a Date: written as YYYY-MM-DD, not a date-time
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone not in (None, "UTC"):
            value = value.dt.convert_time_zone("UTC")
        year = value.dt.year()
        return (year >= 1) & (year <= 9999)  # year 0 and 5-digit or signed years do not match
    parts = value.str.to_uppercase().str.extract_groups(RFC3339)
    year = parts.struct.field("1").cast(pl.Int32)
    month = parts.struct.field("2").cast(pl.Int32)
    day = parts.struct.field("3").cast(pl.Int32)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last = (pl.when(month == 2).then(pl.when(leap).then(29).otherwise(28))
            .when(month.is_in([4, 6, 9, 11])).then(30).otherwise(31))
    return ((year != 0) & (day >= 1) & (day <= last)).fill_null(False)  # null: the text did not match


def _finite(value: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Whether every number is finite (NaN and ±inf cannot be written as JSON); None when there are none."""
    if dtype.is_float():
        return value.is_finite()
    if isinstance(dtype, pl.List) and dtype.inner.is_float():
        return value.list.eval(pl.element().is_finite().fill_null(True)).list.all()
    return None


def json_type(dtype: PolarsDataType) -> str:
    """The JSON shape the encoder writes for a column of ``dtype`` (``string``, ``array of number``, …)."""
    if isinstance(dtype, pl.List):
        return f"array of {json_type(dtype.inner)}"
    if isinstance(dtype, pl.Array):
        return f"fixed-size array of {json_type(dtype.inner)}"  # conform() makes it a list
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Null:
        return "null"
    if isinstance(dtype, pl.Struct):
        return "object"
    return "string"  # String, Categorical, Enum, and temporal values (written as text)


_CUSTOM_CONTEXT_SHAPES = ("boolean", "number", "string", "array of number", "array of string")


def _expected_shapes(column: str) -> tuple[str, ...]:
    if column in RECORD_COLUMNS:
        return (json_type(RECORD_COLUMNS[column]),)
    if column.startswith(FILTERS_PREFIX):
        return ("array of string",)
    if column.startswith(CUSTOM_CONTEXT_PREFIX):
        return _CUSTOM_CONTEXT_SHAPES
    return ()


def _top(column: str) -> str:
    return column.split(".", 1)[0]


def _types_refusing(field: str) -> list[str]:
    """The known types that do not allow ``field`` (an unknown type is reported as such, not field by field)."""
    return [t for t in INTERACTION_TYPES if field not in ALLOWED_FIELDS[t]]


#: Checks that can fail where the column has no value; every other check needs a present value.
_ABSENCE_CHECKS = frozenset({"required", "page.url"})


def checks(schema: Mapping[str, pl.DataType], empty: frozenset[str] = frozenset()) -> list[Check]:
    """Every constraint for the record columns in ``schema``, in the order they are reported.

    ``type`` first, then field by field in writing order, so "the first failing field" is the first one the
    record would show. ``schema`` must have a ``type`` column (:func:`validate` adds a null one if needed).
    Columns in ``empty`` hold no value at all: only the checks that fire on an absent value are kept for them
    (a conformed frame carries every fixed column, most of them empty, and a format check still costs a pass).
    """
    if "type" not in schema:
        raise ValueError("the record frame has no 'type' column")
    type_ = pl.col("type")
    out: list[Check] = [
        Check("type", "required", type_.is_null(), "The attribute is required."),
        Check("type", "enum", type_.is_not_null() & ~type_.is_in(list(INTERACTION_TYPES)),
              "Unknown interaction type '{type}'."),
    ]
    required = {field: sorted(t for t, fields in REQUIRED_FIELDS.items() if field in fields)
                for field in set().union(*REQUIRED_FIELDS.values())}
    columns = order_record_columns([c for c in schema if c != "type"])
    for field in sorted(required):
        if field not in columns:
            out.append(Check(field, "required", type_.is_in(required[field]),
                             "The attribute is required for type '{type}'."))
    for column in columns:
        found = _column_checks(column, schema[column], schema, required.get(column, []))
        out.extend(c for c in found if column not in empty or c.name in _ABSENCE_CHECKS)
    return out


def _column_checks(column: str, dtype: pl.DataType, schema: Mapping[str, pl.DataType],
                   required_by: list[str]) -> list[Check]:
    value = pl.col(column)
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        value, dtype = value.cast(pl.String), pl.String()
    present = value.is_not_null()
    type_ = pl.col("type")
    top = _top(column)
    out: list[Check] = []
    if top != "context":  # every type allows context
        out.append(Check(top, "additional", present & type_.is_in(_types_refusing(top)),
                         "Additional property not allowed for type '{type}'."))
    if required_by:
        out.append(Check(column, "required", ~present & type_.is_in(required_by),
                         "The attribute is required for type '{type}'."))
    if dtype == pl.Null:
        return out
    shape, expected = json_type(dtype), _expected_shapes(column)
    if shape not in expected:
        # A frame that skipped conform(): every present value would be written with the wrong JSON type.
        out.append(Check(column, "dtype", present,
                         f"The attribute was expected to be of type '{expected[0]}' but type '{shape}' was given."))
        return out
    if isinstance(dtype, pl.List):
        inner = "number" if dtype.inner.is_numeric() else "string"
        out.append(Check(column, "items", present & value.list.eval(pl.element().is_null()).list.any(),
                         f"The attribute's items were expected to be of type '{inner}' but type 'null' was given."))
    if column in MAX_LENGTH:
        limit = MAX_LENGTH[column]
        if isinstance(dtype, pl.List):
            too_long = value.list.eval(pl.element().str.len_chars() > limit).list.any()
        else:
            too_long = value.str.len_chars() > limit
        out.append(Check(column, "maxLength", present & too_long,
                         f"The attribute is longer than the maximum length of {limit}."))
    finite = _finite(value, dtype)
    if finite is not None:
        out.append(Check(column, "finite", present & ~finite, "The attribute should be a finite number."))
    if column == "timestamp":
        out.append(Check(column, "format:date-time", present & ~_date_time_ok(value, dtype),
                         "The attribute should match the 'date-time' format."))
    elif column == "miso_id":
        out.append(Check(column, "format:uuid", present & ~_uuid_ok(value),
                         "The attribute should match the 'uuid' format."))
    elif column == "context.truncated_ip":
        out.append(Check(column, "format:ipv4", present & ~value.str.contains(IPV4),
                         "The attribute should match the 'ipv4' format."))
    elif column == "context.page.url":
        others = [pl.col(c).is_not_null() for c in ("context.page.referrer", "context.page.title") if c in schema]
        if others:
            out.append(Check(column, "page.url", ~present & pl.any_horizontal(others),
                             "The attribute is required when context.page is given."))
    elif column == "quantities" and "product_ids" in schema:
        # Not in the JSON Schema, a rule of the spec: quantities[i] is the quantity of product_ids[i].
        ids = pl.col("product_ids")
        out.append(Check(column, "quantities_length",
                         present & ids.is_not_null() & (value.list.len() != ids.list.len()),
                         "The attribute should have as many entries as product_ids."))
    return out


_FIRST = "__logmap_first_failed_check"


def validate(frame: Frame, index_column: str | None = None, *, spec_rules: bool = True) -> Frame:
    """Set ``_drop = 'invalid:<field>'`` and ``_detail`` on live rows that break the schema; others unchanged.

    ``index_column`` holds N for the ``data.N.`` prefix of messages (the row position when not given).
    ``spec_rules=False`` leaves out the checks in :data:`SPEC_RULES` (rules the JSON Schema cannot express).
    Works on a DataFrame or a LazyFrame and returns the same kind; ``_drop``/``_detail`` are added if missing.
    """
    schema = frame.collect_schema()
    for name in ("_drop", "_detail", "type"):
        if name not in schema:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    without_type = "type" not in schema
    schema = frame.collect_schema()
    empty: frozenset[str] = frozenset()
    if isinstance(frame, pl.DataFrame):
        counts = frame.select(pl.all().null_count()).row(0, named=True)
        empty = frozenset(name for name, nulls in counts.items() if nulls == frame.height and name != "type")
    active = [c for c in checks(schema, empty) if spec_rules or c.name not in SPEC_RULES]
    first = pl.coalesce([pl.when(c.failed.fill_null(False)).then(pl.lit(i, pl.UInt32))
                         for i, c in enumerate(active)])
    frame = frame.with_columns(first.alias(_FIRST))

    which = pl.col(_FIRST)
    codes = list(range(len(active)))

    def lookup(values: list[str]) -> pl.Expr:
        return which.replace_strict(codes, values, default=None, return_dtype=pl.String)

    before = [c.message.split("{type}", 1)[0] for c in active]
    after = [c.message.split("{type}", 1)[1] if "{type}" in c.message else "" for c in active]
    uses_type = which.is_in([i for i, c in enumerate(active) if "{type}" in c.message])
    index = pl.col(index_column) if index_column else pl.int_range(pl.len(), dtype=pl.Int64)
    detail = pl.concat_str([
        pl.lit("data."), index.cast(pl.String), pl.lit("."), lookup([c.field for c in active]),
        pl.lit(" is invalid. "), lookup(before), pl.when(uses_type).then(pl.col("type")), lookup(after),
    ], ignore_nulls=True)
    update = pl.col("_drop").is_null() & which.is_not_null()
    return frame.with_columns(
        pl.when(update).then(lookup([f"invalid:{c.field}" for c in active])).otherwise(pl.col("_drop"))
        .alias("_drop"),
        pl.when(update).then(detail).otherwise(pl.col("_detail")).alias("_detail"),
    ).drop([_FIRST, "type"] if without_type else _FIRST)


__all__ = ["IPV4", "MAX_LENGTH", "SPEC_RULES", "Check", "checks", "json_type", "validate"]
