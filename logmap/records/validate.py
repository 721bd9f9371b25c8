"""Vectorised validation of the record frame against the API's schema (the vendored JSON Schema).

Each check is a polars expression over the whole frame; the first failing field of a row names the reason
(``invalid:<field>``) and a message in the API's own style (``data.N.timestamp is invalid. …``). The checks
mirror what a JSON Schema validator with format checking accepts — a test generates thousands of records and
asserts both agree on every one.
"""

from __future__ import annotations

import polars as pl

from logmap.records.schema import DYNAMIC_PREFIXES, RECORD_COLUMNS, record_columns
from logmap.records.types import ALLOWED_FIELDS, INTERACTION_TYPES, REQUIRED_FIELDS

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"
MAX_LENGTH = {"user_id": 512, "anonymous_id": 1024, "question_id": 512, "product_ids": 512, "product_group_ids": 512}

Check = tuple[str, pl.Expr, pl.Expr]  # (field, failed?, message after "data.N.<field> is invalid. ")


def top_level(column: str) -> str:
    return column.split(".", 1)[0]


def _types_allowing(field: str) -> list[str]:
    return sorted(t for t, fields in ALLOWED_FIELDS.items() if field in fields)


def _uuid_ok(value: pl.Expr) -> pl.Expr:
    # Python's uuid.UUID drops 'urn:', 'uuid:', braces and hyphens and wants 32 hex digits; jsonschema also
    # wants hyphens at positions 8, 13, 18 and 23 of the original string.
    digits = value.str.replace_all("urn:", "", literal=True).str.replace_all("uuid:", "", literal=True)
    digits = digits.str.strip_chars("{}").str.replace_all("-", "", literal=True)
    hyphens = pl.all_horizontal([value.str.slice(i, 1) == "-" for i in (8, 13, 18, 23)])
    return digits.str.contains(r"^[0-9a-fA-F]{32}$") & hyphens


def _finite(column: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    if dtype.is_float():
        return column.is_finite()
    if isinstance(dtype, pl.List) and dtype.inner.is_float():
        return column.list.eval(pl.element().is_finite()).list.all()
    return None


def checks(schema: dict[str, pl.DataType]) -> list[Check]:
    """Every constraint, in field order, for the columns present in ``schema``."""
    type_ = pl.col("type")
    out: list[Check] = [
        ("type", ~type_.is_in(list(INTERACTION_TYPES)) | type_.is_null(),
         pl.format("Unknown interaction type '{}'.", type_)),
    ]
    columns = [c for c in record_columns(pl.DataFrame(schema=schema)) if c in schema and c != "type"]
    for column in columns:
        value = pl.col(column)
        dtype = schema[column]
        field = top_level(column)
        present = value.is_not_null()
        if field != "context":
            allowed = _types_allowing(field)
            out.append((column, present & ~type_.is_in(allowed),
                        pl.format("Additional property '{}' is not allowed for type '{}'.", pl.lit(field), type_)))
        if isinstance(dtype, pl.List):
            out.append((column, present & value.list.eval(pl.element().is_null()).list.any(),
                        pl.lit("The attribute's items must not be null.")))
        if column in MAX_LENGTH:
            limit = MAX_LENGTH[column]
            longest = value.list.eval(pl.element().str.len_chars()).list.max() if isinstance(dtype, pl.List) \
                else value.str.len_chars()
            out.append((column, present & (longest > limit),
                        pl.lit(f"The attribute is longer than the maximum length of {limit}.")))
        finite = _finite(value, dtype)
        if finite is not None:
            out.append((column, present & ~finite, pl.lit("The attribute should be a finite number.")))
        if column == "timestamp":
            year = value.dt.year()
            out.append((column, present & ((year < 0) | (year > 9999)),
                        pl.lit("The attribute should match the 'date-time' format.")))
        if column == "miso_id":
            out.append((column, present & ~_uuid_ok(value), pl.lit("The attribute should match the 'uuid' format.")))
        if column == "context.truncated_ip":
            out.append((column, present & ~value.str.contains(IPV4),
                        pl.lit("The attribute should match the 'ipv4' format.")))
        if column == "quantities" and "product_ids" in schema:
            # Not in the JSON Schema: a spec rule (each quantity belongs to the product at the same position).
            mismatch = present & pl.col("product_ids").is_not_null() & (
                value.list.len() != pl.col("product_ids").list.len())
            out.append(("quantities", mismatch, pl.lit("The attribute must have as many entries as product_ids.")))
    page = [c for c in ("context.page.referrer", "context.page.title") if c in schema]
    if page and "context.page.url" in schema:
        out.append(("context.page.url",
                    pl.col("context.page.url").is_null() & pl.any_horizontal([pl.col(c).is_not_null() for c in page]),
                    pl.lit("The attribute is required when context.page is given.")))
    for type_name, required in REQUIRED_FIELDS.items():
        for field in sorted(required):
            missing = pl.col(field).is_null() if field in schema else pl.lit(True)
            out.append((field, (type_ == type_name) & missing,
                        pl.lit(f"The attribute is required for type '{type_name}'.")))
    return out


#: Check labels that are spec rules outside the JSON Schema (the agreement test leaves them out).
SEMANTIC_MESSAGES = ("The attribute must have as many entries as product_ids.",)


def validate(frame: pl.DataFrame, index_column: str | None = None, *, semantic: bool = True) -> pl.DataFrame:
    """Set ``_drop = 'invalid:<field>'`` and ``_detail`` on rows that break the schema; others are unchanged.

    ``index_column`` holds N for the ``data.N.`` prefix (the row position when not given).
    """
    if "_drop" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("_drop"), pl.lit(None, pl.String).alias("_detail"))
    schema = dict(frame.schema)
    index = pl.col(index_column) if index_column else pl.int_range(pl.len(), dtype=pl.Int64)
    reason = pl.lit(None, pl.String)
    detail = pl.lit(None, pl.String)
    for field, failed, message in reversed(checks(schema)):
        if not semantic and _is_semantic(message):
            continue
        failed = failed.fill_null(False)
        reason = pl.when(failed).then(pl.lit(f"invalid:{field}")).otherwise(reason)
        detail = pl.when(failed).then(pl.format("data.{}.{} is invalid. {}", index, pl.lit(field), message)) \
            .otherwise(detail)
    alive = pl.col("_drop").is_null()
    return frame.with_columns(
        pl.when(alive).then(reason).otherwise(pl.col("_drop")).alias("_drop"),
        pl.when(alive & reason.is_not_null()).then(detail).otherwise(pl.col("_detail")).alias("_detail"),
    )


def _is_semantic(message: pl.Expr) -> bool:
    return any(text in str(message) for text in SEMANTIC_MESSAGES)


__all__ = ["DYNAMIC_PREFIXES", "RECORD_COLUMNS", "checks", "validate"]
