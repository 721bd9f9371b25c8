"""The vendored schema, the type table derived from it, and the record frame's contract (``conform``)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from logmap.records.schema import LIST_F64, LIST_STR, RECORD_COLUMNS, conform, order_record_columns
from logmap.records.types import (
    ALLOWED_FIELDS,
    DURATION_TYPES,
    INTERACTION_TYPES,
    REQUIRED_FIELDS,
    RULE_FIELDS,
    TYPE_SCHEMAS,
    interaction_schema,
)
from logmap.records.validate import MAX_LENGTH

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "logmap" / "records" / "interactions.schema.json"

PRODUCTS = {"product_ids", "product_group_ids"}
#: docs/mapping.md, "Fields per type" (every type also takes miso_id).
TYPE_TABLE: dict[str, set[str]] = {
    "product_detail_page_view": PRODUCTS | {"duration"},
    "search": {"search"},
    "add_to_cart": PRODUCTS | {"quantities"},
    "checkout": PRODUCTS | {"quantities", "revenue"},
    **{t: set(PRODUCTS) for t in (
        "remove_from_cart", "refund", "subscribe", "unsubscribe", "add_to_collection", "remove_from_collection",
        "like", "dislike", "share", "bookmark", "complete", "impression", "viewable_impression", "click", "submit",
        "product_image_view")},
    **{t: PRODUCTS | {"duration"} for t in ("read", "watch", "listen", "promo_page_view")},
    "rate": PRODUCTS | {"rating"},
    "home_page_view": {"duration"},
    "category_page_view": {"category", "duration"},
    "feedback": {"question_id", "result_type", "value"},
    "custom": PRODUCTS | {"custom_action_name"},
}


def test_the_vendored_schema_has_the_29_types_of_the_type_table():
    assert len(INTERACTION_TYPES) == 29 == len(set(INTERACTION_TYPES))
    assert set(INTERACTION_TYPES) == set(TYPE_TABLE)
    assert {t: set(RULE_FIELDS[t]) - {"miso_id"} for t in INTERACTION_TYPES} == TYPE_TABLE
    envelope = {"type", "user_id", "anonymous_id", "timestamp", "miso_id", "context"}
    assert all(ALLOWED_FIELDS[t] == envelope | TYPE_TABLE[t] for t in INTERACTION_TYPES)
    assert {t: set(f) for t, f in REQUIRED_FIELDS.items() if f} == {"custom": {"custom_action_name"}}
    assert DURATION_TYPES == {"product_detail_page_view", "read", "watch", "listen", "home_page_view",
                              "category_page_view", "promo_page_view"}


def test_every_type_definition_is_closed_and_names_its_type():
    for name, definition in TYPE_SCHEMAS.items():
        assert definition["additionalProperties"] is False
        assert "type" in definition["required"]
        assert definition["properties"]["type"]["enum"] == [name]


def test_the_record_frame_has_a_column_for_every_field_and_no_other():
    fields = set().union(*ALLOWED_FIELDS.values())
    tops = {name.split(".", 1)[0] for name in RECORD_COLUMNS}
    assert tops == fields  # search and context are reached through their dotted members
    assert MAX_LENGTH == {"user_id": 512, "anonymous_id": 1024, "question_id": 512, "product_ids": 512,
                          "product_group_ids": 512}
    context = interaction_schema()["$defs"]["WebBasedContext"]["properties"]
    assert {n.split(".")[1] for n in RECORD_COLUMNS if n.startswith("context.")} == set(context) - {"custom_context"}


def _vendor_module():
    spec = importlib.util.spec_from_file_location("vendor_schema", ROOT / "scripts" / "vendor_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_openapi(defs: dict, prose: bool) -> dict:
    """An OpenAPI document whose component schemas are ``defs`` (refs back in OpenAPI form), prose re-added."""
    text = json.dumps(defs).replace('"#/$defs/', '"#/components/schemas/')
    schemas = json.loads(text)
    if prose:
        for name, schema in schemas.items():
            schema["title"] = name
            schema["description"] = f"The {name} schema."
            for prop in schema.get("properties", {}).values():
                prop["description"] = "A field."
                prop["examples"] = ["x"]
    return {"openapi": "3.1.0", "info": {"title": "Interactions", "version": "1"}, "paths": {},
            "components": {"schemas": schemas}}


@pytest.mark.parametrize("prose", [False, True])
def test_vendoring_is_stable(tmp_path, monkeypatch, prose):
    """Re-vendoring the vendored definitions (with prose added back) reproduces the file byte for byte."""
    module = _vendor_module()
    vendored = json.loads(VENDORED.read_text())
    spec_path = tmp_path / "interactions-upload.openapi.yaml"
    spec_path.write_text(yaml.safe_dump(_as_openapi(copy.deepcopy(vendored["$defs"]), prose), sort_keys=False,
                                        allow_unicode=True))
    out = tmp_path / "out.json"
    monkeypatch.setattr(module, "OUT", out)
    module.main(str(spec_path))
    first = out.read_text()
    assert first == VENDORED.read_text()
    module.main(str(spec_path))
    assert out.read_text() == first
    assert json.loads(first)["$defs"]["Page"]["properties"]["title"] == {"type": "string"}  # a property, kept


def test_record_columns_are_ordered_type_first_with_families_in_place():
    names = ["context.custom_context.b", "_file", "search.filters.z", "revenue", "context.custom_context.a",
             "search.filters.a", "type", "context.page.url", "search.keywords", "ip", "search.filters."]
    assert order_record_columns(names) == [
        "type", "revenue", "search.keywords", "search.filters.a", "search.filters.z", "context.page.url",
        "context.custom_context.a", "context.custom_context.b"]


def test_conform_adds_casts_and_orders_and_keeps_other_columns():
    frame = pl.DataFrame({
        "_line": pl.Series([1, 2], dtype=pl.UInt64),
        "revenue": [1, 2],
        "product_ids": ["a", None],
        "timestamp": pl.Series([0, 3_600_000], dtype=pl.Datetime("ms", "Europe/Paris")),
        "context.custom_context.n": pl.Series([1, None], dtype=pl.Int8),
        "context.custom_context.l": [[1, 2], []],
        "search.filters.c": [["x"], None],
        "type": ["checkout", "search"],
        "_drop": pl.Series([None, "unmatched"], dtype=pl.String),
    })
    out = conform(frame)
    assert list(out.schema.items())[: len(RECORD_COLUMNS) + 3] == [
        *list(RECORD_COLUMNS.items())[:17], ("search.filters.c", LIST_STR), *list(RECORD_COLUMNS.items())[17:],
        ("context.custom_context.l", LIST_F64), ("context.custom_context.n", pl.Int64()),
    ]
    assert out.columns[-2:] == ["_line", "_drop"] and out["_line"].dtype == pl.UInt64
    assert out["revenue"].to_list() == [1.0, 2.0]
    assert out["product_ids"].to_list() == [["a"], None]
    assert out["timestamp"].dt.hour().to_list() == [0, 1]  # the same instants, in UTC
    assert out["user_id"].null_count() == 2
    lazy = conform(frame.lazy())
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(out)


def test_conform_keeps_a_text_timestamp_for_the_validator_to_judge():
    out = conform(pl.DataFrame({"type": ["read"], "timestamp": ["2024-02-30T00:00:00Z"]}))
    assert out["timestamp"].to_list() == ["2024-02-30T00:00:00Z"]


def test_conform_refuses_a_custom_context_value_the_api_cannot_take():
    with pytest.raises(TypeError, match="context.custom_context.when"):
        conform(pl.DataFrame({"context.custom_context.when": [{"a": 1}]}))
