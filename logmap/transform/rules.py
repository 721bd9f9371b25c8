"""The `rules` section: first match wins; the matching rule sets the record's type and fields.

Matching is one `when/then` chain over all rows (`_rule` = index of the first matching rule). Fields are then
computed rule by rule on that rule's rows only, so a rule's regex groups are extracted only where it matched.
Record fields are written as ``r:<json path>`` columns so they can never collide with input columns (a Segment
export has its own `type` column, for example).
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from logmap.errors import MappingError
from logmap.frame import ALIVE, drop_when
from logmap.mapping.model import QueryCondition, Rule, Where
from logmap.mapping.templates import as_reference
from logmap.mapping.values import named_groups
from logmap.transform.compiled import Compiled
from logmap.transform.expressions import (
    Scope,
    as_number,
    as_number_list,
    as_string,
    as_string_list,
    compile_template,
    first_error,
    query_param,
)

RECORD_PREFIX = "r:"
LIST_FIELDS = {"product_ids", "product_group_ids", "category"}
NUMBER_FIELDS = {"revenue", "rating", "duration"}
STRING_FIELDS = {"custom_action_name", "question_id", "result_type", "value", "miso_id"}


def _query_condition(name: str, condition: QueryCondition) -> pl.Expr:
    query = pl.col("query")
    present = query.str.contains(r"(?:^|&)" + re.escape(name) + r"(?:[=&#]|$)").fill_null(False)
    result = pl.lit(True)
    if condition.present is True:
        result = result & present
    elif condition.present is False:
        result = result & ~present
    if condition.pattern is not None:
        result = result & query_param(query, name).str.contains(condition.pattern).fill_null(False)
    return result


def _when_condition(column: str, expected: Any, scope: Scope, where: Where | None) -> pl.Expr:
    resolved = compile_template(as_reference(column), scope, where)   # `a?`, `a|or:b` as in templates
    value = resolved.expr
    if resolved.kind == "str" and not isinstance(expected, (dict, str)):
        # text (JSON text is decoded with text leaves) compared with a YAML number or boolean, as JSON writes it
        expected = [_as_json_text(e) for e in expected] if isinstance(expected, list) else _as_json_text(expected)
    if isinstance(expected, dict):
        condition = pl.lit(True)
        if "regex" in expected:
            condition = condition & value.cast(pl.String).str.contains(expected["regex"])
        if "null" in expected:
            condition = condition & (value.is_null() if expected["null"] else value.is_not_null())
        if "not" in expected:
            condition = condition & ~_when_condition(column, expected["not"], scope, where)
        return condition
    if isinstance(expected, list):
        return value.is_in(expected)
    return value == expected


def _as_json_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def in_ranges(column: pl.Expr, ranges: list[tuple[int, int]]) -> pl.Expr:
    condition = pl.lit(False)
    for low, high in ranges:
        condition = condition | column.is_between(low, high)
    return condition


def when_conditions(when: dict[str, Any], scope: Scope, where: Where | None) -> pl.Expr:
    """All of a ``when:`` mapping's column conditions (a rule's, or a ``filter.drop`` reason's) hold."""
    condition = pl.lit(True)
    for column, expected in when.items():
        condition = condition & _when_condition(column, expected, scope, where)
    return condition


def rule_condition(rule: Rule, scope: Scope) -> pl.Expr:
    condition = pl.lit(True)
    if rule.path is not None:
        condition = condition & pl.col("path").str.contains(rule.path)
    for name, query_condition in rule.query.items():
        condition = condition & _query_condition(name, query_condition)
    if rule.methods:
        condition = condition & pl.col("method").is_in(rule.methods)
    if rule.status:
        condition = condition & in_ranges(pl.col("status"), rule.status)
    condition = condition & when_conditions(rule.when, scope, rule.field_where.get("when", rule.where))
    return condition.fill_null(False)


def classify(frame: pl.DataFrame, rules: list[Rule], scope: Scope) -> pl.DataFrame:
    """Set `_rule` to the index of the first matching rule; rows matching none are dropped as `unmatched`."""
    chain: Any = None
    for index, rule in enumerate(rules):
        condition = rule_condition(rule, scope)
        chain = pl.when(condition).then(pl.lit(index, pl.Int32)) if chain is None else chain.when(condition).then(
            pl.lit(index, pl.Int32))
    rule_index = chain.otherwise(pl.lit(None, pl.Int32)) if chain is not None else pl.lit(None, pl.Int32)
    frame = frame.with_columns(pl.when(ALIVE).then(rule_index).otherwise(pl.lit(None, pl.Int32)).alias("_rule"))
    return frame.with_columns(drop_when(pl.col("_rule").is_null(), "unmatched"))


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def compile_fields(rule: Rule, scope: Scope) -> tuple[dict[str, pl.Expr], list[tuple[str, pl.Expr]]]:
    """Record columns (``r:`` names) for one rule, and (field, error message expr) pairs for failed conversions."""
    columns: dict[str, pl.Expr] = {RECORD_PREFIX + "type": pl.lit(rule.type)}
    errors: list[tuple[str, pl.Expr]] = []

    def where(field: str) -> Where | None:
        return rule.field_where.get(field, rule.field_where.get(field.split(".")[0], rule.where))

    def put(name: str, compiled: Compiled) -> None:
        columns[RECORD_PREFIX + name] = compiled.expr
        error = first_error(compiled.errors)
        if error is not None:
            errors.append((name, error))

    for field, value in rule.fields.items():
        if field in LIST_FIELDS:
            put(field, as_string_list([compile_template(v, scope, where(field)) for v in _items(value)]))
        elif field == "quantities":
            put(field, as_number_list([compile_template(v, scope, where(field)) for v in _items(value)], str(value)))
        elif field in NUMBER_FIELDS:
            put(field, as_number(compile_template(value, scope, where(field)), str(value)))
        elif field in STRING_FIELDS:
            put(field, Compiled(as_string(compile_template(value, scope, where(field))), "str"))
        elif field == "search":
            assert isinstance(value, dict)  # the loader checked the search section's shape
            if "keywords" in value:
                compiled = compile_template(value["keywords"], scope, where("search.keywords"))
                put("search.keywords", Compiled(as_string(compiled), "str", compiled.errors))
            for name, filter_value in (value.get("filters") or {}).items():
                compiled_list = as_string_list([compile_template(v, scope, where(f"search.filters.{name}"))
                                                for v in _items(filter_value)])
                put(f"search.filters.{name}", compiled_list)
        else:
            raise MappingError.at(f"field '{field}' is not supported by rules", where(field))
    return columns, errors



def apply_rules(frame: pl.DataFrame, rules: list[Rule], scope: Scope) -> pl.DataFrame:
    """Classify rows, then compute each rule's record fields on its own rows. Rows keep their order.

    The rows are split by rule in one pass, with only the columns the rules read: splitting the full-width
    chunk copied every parsed column (the raw line included) once more, and cost more than the fields.
    """
    frame = classify(frame, rules, scope)
    compiled = [_compile_rule(rule, scope) for rule in rules]
    read = {name for staged, columns, errors in compiled
            for expr in [*staged.values(), *columns.values(), *(message for _, message in errors)]
            for name in expr.meta.root_names()}
    own = ("_rule", "_drop", "_detail")
    narrow = frame.select(*own, *(c for c in frame.columns if c in read and c not in own)).with_row_index(_ROW)
    by_rule = {key: rows for (key,), rows in narrow.partition_by("_rule", as_dict=True, maintain_order=True).items()}
    # One lazy plan for every rule, collected once (in memory, as eager steps are: a Python function still sees
    # a whole column). A rule no row of the chunk matched adds only its columns' types: resolving its plan costs a
    # tenth of running it on no rows, and in a small chunk most rules match none. A frame of no rows (the check
    # before reading, done once per mapping and columns) runs every rule: an error polars finds only when it runs
    # an expression still stops the run before any input is read.
    parts = [by_rule.get(None, narrow.clear()).lazy().select(_ROW, "_drop", "_detail")]
    for index, (staged, columns, errors) in enumerate(compiled):
        rows = by_rule.get(index, narrow.clear()).lazy().with_columns(**staged).with_columns(**columns)
        for field, message in errors:
            rows = rows.with_columns(drop_when(message.is_not_null(), f"invalid:{field}",
                                               pl.format("{} is invalid. {}", pl.lit(field), message)))
        part = rows.select(_ROW, "_drop", "_detail", *columns)
        parts.append(part if index in by_rule or narrow.is_empty() else pl.LazyFrame(schema=part.collect_schema()))
    fields = pl.concat(parts, how="diagonal_relaxed").sort(_ROW).drop(_ROW).collect(engine="in-memory")
    return frame.with_columns(fields)


_ROW = "__rule_row"


def _compile_rule(rule: Rule, scope: Scope) -> tuple[dict[str, pl.Expr], dict[str, pl.Expr], list[tuple[str, pl.Expr]]]:
    """(temporary columns to compute first, record columns, (field, error message) pairs) of one rule."""
    rule_scope = scope.staging()
    staged = rule_scope.staged
    assert staged is not None  # a staging scope
    groups = named_groups(rule.path)
    if groups and rule.path is not None:
        rule_scope = rule_scope.with_groups({g: pl.col("_groups").struct.field(g) for g in groups})
        staged["_groups"] = pl.col("path").str.extract_groups(rule.path)
    columns, errors = compile_fields(rule, rule_scope)
    return staged, columns, errors
