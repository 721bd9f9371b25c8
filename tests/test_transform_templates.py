"""Templates compile to polars expressions: references, converters, emptiness and conversion errors."""

from __future__ import annotations

import polars as pl
import pytest

from logmap.errors import MappingError
from logmap.transform.expressions import Scope, as_number_list, as_string_list, compile_template, first_error

FRAME = pl.DataFrame({
    "path": ["/product/42-red", "/search", "/p"],
    "query": ["sku=A%2F1&qty=2&q=red+shoes", "q=&qty=abc", None],
    "user": ["alice", None, "bob"],
    "status": pl.Series([200, 404, 200], dtype=pl.Int32),
    "referrer": ["https://g.example/?q=caf%C3%A9", None, "-"],
})


def evaluate(template, scope: Scope | None = None):
    compiled = compile_template(template, scope or Scope(FRAME.schema))
    return FRAME.with_columns(compiled.expr.alias("v"))["v"].to_list(), compiled


def test_query_parameters_are_percent_decoded_and_empty_is_absent():
    values, _ = evaluate("{query.q}")
    assert values == ["red shoes", None, None]
    values, _ = evaluate("{query.sku}")
    assert values == ["A/1", None, None]


def test_literal_text_with_an_absent_reference_is_absent_not_half_filled():
    values, _ = evaluate("user-{user|upper}")
    assert values == ["user-ALICE", None, "user-BOB"]


def test_referrer_query_and_escaped_braces():
    values, _ = evaluate("{referrer_query.q}")
    assert values == ["café", None, None]
    values, _ = evaluate("{{literal}}")
    assert values == ["{literal}"] * 3


def test_int_conversion_keeps_type_and_reports_failures():
    values, compiled = evaluate("{query.qty|int}")
    assert compiled.kind == "int"
    assert values == [2, None, None]
    errors = FRAME.select(first_error(compiled.errors).alias("e"))["e"].to_list()
    assert errors[0] is None and "'abc' is not a number" in errors[1] and errors[2] is None


def test_named_groups_shadow_fields():
    scope = Scope(FRAME.schema, groups={"user": pl.lit("from-group")})
    values, _ = evaluate("{user}", scope)
    assert values == ["from-group"] * 3


def test_split_gives_a_list_and_lists_drop_empty_elements():
    frame = pl.DataFrame({"category": ["shoes/running", "sale", ""]})
    scope = Scope(frame.schema)
    compiled = as_string_list([compile_template("{category|split:/}", scope)])
    assert frame.select(compiled.expr.alias("v"))["v"].to_list() == [["shoes", "running"], ["sale"], None]


def test_field_takes_the_nth_separated_field_of_a_value_or_of_each_list_element():
    """Adobe's product list: `category;product;quantity;price;events;evars`, products separated by commas."""
    frame = pl.DataFrame({"products": ["Shoes;SKU-1;2;;;,Bags;SKU-2;1;94.0;;", "Hats;SKU-3", None]})
    scope = Scope(frame.schema)
    ids = as_string_list([compile_template("{products|split:,|field:2:;}", scope)])
    quantities = as_number_list([compile_template("{products|split:,|field:3:;}", scope)], "quantities")
    category = compile_template("{products|field:1:;}", scope)
    values = frame.select(ids.expr.alias("ids"), quantities.expr.alias("q"), category.expr.alias("c"))
    assert values["ids"].to_list() == [["SKU-1", "SKU-2"], ["SKU-3"], None]
    assert values["q"].to_list() == [[2.0, 1.0], None, None]   # a product without a quantity gives none
    assert values["c"].to_list() == ["Shoes", "Hats", None]
    with pytest.raises(MappingError, match="field number from 1"):
        compile_template("{products|field:0}", scope)


def test_number_lists_flag_values_that_are_not_numbers():
    compiled = as_number_list([compile_template("{query.qty}", Scope(FRAME.schema))], "{query.qty}")
    out = FRAME.select(compiled.expr.alias("v"), first_error(compiled.errors).alias("e"))
    assert out["v"].to_list() == [[2.0], None, None]
    assert out["e"].to_list()[1] == "'abc' is not a number ({query.qty})"


def test_unknown_reference_names_the_fields_that_exist():
    with pytest.raises(MappingError, match=r"unknown field 'nope'.*path.*query"):
        compile_template("{nope}", Scope(FRAME.schema))


def test_yaml_literals_are_values():
    values, compiled = evaluate(3)
    assert compiled.kind == "int" and values == [3, 3, 3]
