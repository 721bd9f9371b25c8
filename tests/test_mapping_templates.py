"""Template syntax: literals, references, converters, escapes, list paths, and errors with their offset."""

from __future__ import annotations

import pytest

from logmap.mapping.templates import (
    Converter,
    Literal,
    Ref,
    TemplateSyntaxError,
    parse_template,
    template_refs,
)


def test_literal_and_reference_parts():
    template = parse_template("sku-{query.sku|lower}")
    assert list(template) == [Literal("sku-"), Ref("query.sku", (Converter("lower"),))]
    assert template.refs == [Ref("query.sku", (Converter("lower"),))]
    assert len(template) == 2 and template[0] == Literal("sku-")


def test_plain_text_and_empty_template():
    assert parse_template("home").parts == (Literal("home"),)
    assert parse_template("").parts == ()


@pytest.mark.parametrize("name", [
    "product_id", "query.q", "referrer_query.x", "event_params.page_location", "ecommerce.purchase_revenue",
    "items[].item_id", "user_agent",
])
def test_reference_names(name):
    assert parse_template("{" + name + "}").parts == (Ref(name),)


def test_list_path_is_marked():
    (ref,) = parse_template("{items[].item_id}").refs


def test_converters_apply_in_order_with_arguments():
    (ref,) = parse_template("{ path | trim | split:/ | lower }").refs
    assert ref == Ref("path", (Converter("trim"), Converter("split", "/"), Converter("lower")))


def test_split_without_separator_uses_the_default():
    (ref,) = parse_template("{tags|split}").refs
    assert ref.converters == (Converter("split", None),)
    (ref,) = parse_template("{tags|split:}").refs
    assert ref.converters == (Converter("split", None),)


def test_every_known_converter_parses():
    (ref,) = parse_template("{x|int|float|lower|upper|trim|urldecode|split:;}").refs
    assert [c.name for c in ref.converters] == ["int", "float", "lower", "upper", "trim", "urldecode", "split"]


def test_escaped_braces_are_literal():
    assert parse_template("{{literal}}").parts == (Literal("{literal}"),)
    assert parse_template("a{{b}}c").parts == (Literal("a{b}c"),)
    assert parse_template("{{{id}}}").parts == (Literal("{"), Ref("id"), Literal("}"))


@pytest.mark.parametrize("text, offset, fragment", [
    ("{id|intt}", 4, "unknown converter 'intt'"),
    ("ab {x|lower|nope}", 12, "unknown converter 'nope'"),
    ("{x|}", 3, "empty converter"),
    ("sku-{id", 4, "unclosed '{'"),
    ("{a{b}", 0, "unclosed '{'"),
    ("id}", 2, "unmatched '}'"),
    ("{id}}", 4, "unmatched '}'"),
    ("x{}", 1, "empty reference"),
    ("{ |lower}", 0, "empty reference"),
    ("{a b}", 1, "'a b' is not a field name"),
    ("{9lives}", 1, "not a field name"),
    ("{x|lower:1}", 3, "takes no argument"),
])
def test_syntax_errors_carry_the_offset(text, offset, fragment):
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(text)
    assert caught.value.offset == offset
    assert fragment in str(caught.value)
    assert f"(at character {offset + 1})" in str(caught.value)


def test_template_refs_over_lists_and_mappings():
    value = {"keywords": "{query.q}", "filters": {"color": ["{query.color}", "x-{path}"], "n": 3}, "flag": True}
    assert template_refs(value) == {"query.q", "query.color", "path"}
    assert template_refs(["{a}", ["{b|int}"]]) == {"a", "b"}
    assert template_refs([]) == set() and template_refs(7) == set() and template_refs("{{x}}") == set()
