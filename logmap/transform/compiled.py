"""What a compiled template reference is: an expression, the kind of value it yields, and how it can fail.

Shared by `expressions` (templates) and `nested` (paths into structs, lists and key/value arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

Kind = Literal["str", "int", "float", "bool", "list"]


@dataclass
class Compiled:
    """An expression plus what it yields and how it can fail."""

    expr: pl.Expr
    kind: Kind
    #: expressions that are a message where a conversion failed, null elsewhere
    errors: list[pl.Expr] = field(default_factory=list)
    #: a list known to hold only non-empty strings (``split``'s result): nothing left to clean
    clean: bool = False


def null_if_empty(expr: pl.Expr) -> pl.Expr:
    """``expr`` with empty text as null. ``replace`` reads ``expr`` once; a ``when`` that tests the text and then
    takes it evaluates it twice (polars evaluates both), which doubled every key/value lookup and every
    percent-decoding behind it."""
    return expr.replace("", None)


def column_value(expr: pl.Expr, dtype: PolarsDataType) -> Compiled:
    """A column (or nested value) of type ``dtype`` as a template value: text, int, float, bool or list."""
    if dtype == pl.String:
        return Compiled(null_if_empty(expr), "str")
    if dtype.is_integer():
        return Compiled(expr.cast(pl.Int64), "int")
    if dtype.is_float() or dtype.is_decimal():
        return Compiled(expr.cast(pl.Float64), "float")
    if dtype == pl.Boolean:
        return Compiled(expr, "bool")
    if isinstance(dtype, (pl.List, pl.Array)):
        return Compiled(expr.cast(pl.List(pl.String)) if not isinstance(dtype, pl.List) else expr, "list")
    if isinstance(dtype, pl.Datetime):
        return Compiled(expr.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"), "str")
    return Compiled(expr.cast(pl.String), "str")
