"""Vectorised validation: reason codes, API-style messages, and the rows it must leave alone."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from logmap.records.schema import conform
from logmap.records.validate import validate


def judge(rows: list[dict], **kwargs) -> list[tuple[str | None, str | None]]:
    checked = validate(conform(pl.DataFrame(rows)), **kwargs)
    return list(zip(checked["_drop"].to_list(), checked["_detail"].to_list()))


@pytest.mark.parametrize(("row", "reason", "message"), [
    ({"type": "search", "revenue": 1.0}, "invalid:revenue", "Additional property not allowed for type 'search'."),
    ({"type": "read", "search.keywords": "x"}, "invalid:search", "Additional property not allowed for type 'read'."),
    ({"type": "read", "category": ["a"]}, "invalid:category", "Additional property not allowed for type 'read'."),
    ({"type": "nope"}, "invalid:type", "Unknown interaction type 'nope'."),
    ({"type": None, "user_id": "u"}, "invalid:type", "The attribute is required."),
    ({"type": "custom"}, "invalid:custom_action_name", "The attribute is required for type 'custom'."),
    ({"type": "read", "user_id": "é" * 513}, "invalid:user_id",
     "The attribute is longer than the maximum length of 512."),
    ({"type": "read", "anonymous_id": "x" * 1025}, "invalid:anonymous_id",
     "The attribute is longer than the maximum length of 1024."),
    ({"type": "like", "product_ids": ["a", "x" * 513]}, "invalid:product_ids",
     "The attribute is longer than the maximum length of 512."),
    ({"type": "like", "product_group_ids": ["a", None]}, "invalid:product_group_ids",
     "The attribute's items were expected to be of type 'string' but type 'null' was given."),
    ({"type": "read", "timestamp": "2023-02-29T00:00:00Z"}, "invalid:timestamp",
     "The attribute should match the 'date-time' format."),
    ({"type": "read", "miso_id": "123e4567e89b12d3a456426614174000"}, "invalid:miso_id",
     "The attribute should match the 'uuid' format."),
    ({"type": "read", "context.truncated_ip": "01.2.3.0"}, "invalid:context.truncated_ip",
     "The attribute should match the 'ipv4' format."),
    ({"type": "read", "context.page.title": "T"}, "invalid:context.page.url",
     "The attribute is required when context.page is given."),
    ({"type": "checkout", "revenue": float("inf")}, "invalid:revenue", "The attribute should be a finite number."),
    ({"type": "add_to_cart", "product_ids": ["a", "b"], "quantities": [1.0]}, "invalid:quantities",
     "The attribute should have as many entries as product_ids."),
])
def test_each_constraint_names_its_field_in_the_api_style(row, reason, message):
    assert judge([row]) == [(reason, f"data.0.{reason.split(':', 1)[1]} is invalid. {message}")]


def test_valid_records_are_untouched():
    rows = [{"type": "checkout", "user_id": "é" * 512, "anonymous_id": "x" * 1024, "product_ids": ["a", "b"],
             "quantities": [1.0, 2.0], "revenue": 9.5, "miso_id": "123e4567-e89b-12d3-a456-426614174000",
             "timestamp": datetime(2024, 2, 29, tzinfo=UTC), "context.truncated_ip": "255.255.255.0",
             "context.page.url": "u", "context.page.title": "t"},
            {"type": "custom", "custom_action_name": ""}]
    assert judge(rows) == [(None, None), (None, None)]


def test_the_first_failing_field_is_reported():
    rows = [{"type": "search", "user_id": "x" * 600, "revenue": 1.0, "context.truncated_ip": "1.2.3"}]
    assert judge(rows)[0][0] == "invalid:user_id"


def test_quantities_length_can_be_left_out():
    rows = [{"type": "add_to_cart", "product_ids": ["a", "b"], "quantities": [1.0]}]
    assert judge(rows, spec_rules=False) == [(None, None)]


def test_messages_use_the_index_column_and_dropped_rows_are_left_alone():
    frame = conform(pl.DataFrame({"type": ["search", "bogus", "read"], "miso_id": [None, None, "nope"]}))
    frame = frame.with_columns(pl.Series("_index", [7, 8, 9]), pl.Series("_drop", [None, "unmatched", None]),
                               pl.Series("_detail", [None, "no rule", None]))
    checked = validate(frame, index_column="_index")
    assert checked["_drop"].to_list() == [None, "unmatched", "invalid:miso_id"]
    assert checked["_detail"].to_list() == [None, "no rule",
                                            "data.9.miso_id is invalid. The attribute should match the 'uuid' format."]
    assert checked.columns == frame.columns


def test_lazy_in_lazy_out_and_missing_columns_are_fine():
    lazy = pl.LazyFrame({"type": ["custom", "read"]})
    checked = validate(lazy)
    assert isinstance(checked, pl.LazyFrame)
    assert checked.collect()["_drop"].to_list() == ["invalid:custom_action_name", None]


def test_datetime_timestamps_outside_years_1_to_9999_are_invalid():
    ms = pl.Series("timestamp", [-62_135_596_800_001, -62_135_596_800_000, 253_402_300_799_999,
                                 253_402_300_800_000]).cast(pl.Datetime("ms", "UTC"))
    frame = conform(pl.DataFrame({"type": ["read"] * 4}).with_columns(ms))
    assert validate(frame)["_drop"].to_list() == ["invalid:timestamp", None, None, "invalid:timestamp"]


def test_a_frame_that_skipped_conform_is_judged_by_the_json_it_would_produce():
    frame = pl.DataFrame({"type": ["read", "checkout", "checkout", "read"], "user_id": [1, None, None, None],
                          "revenue": [None, 3, None, None], "product_ids": [None, None, [1, 2], None],
                          "context.custom_context.when": pl.Series([None, None, None, {"a": 1}])})
    checked = validate(frame)
    assert checked["_drop"].to_list() == ["invalid:user_id", None, "invalid:product_ids",
                                          "invalid:context.custom_context.when"]
    assert checked["_detail"][0] == ("data.0.user_id is invalid. The attribute was expected to be of type 'string' "
                                     "but type 'number' was given.")
    assert checked["_detail"][2].endswith("expected to be of type 'array of string' but type 'array of number' "
                                          "was given.")


def test_a_frame_without_a_type_column_is_all_invalid_and_keeps_its_columns():
    checked = validate(pl.DataFrame({"user_id": ["u"]}))
    assert checked.columns == ["user_id", "_drop", "_detail"]
    assert checked["_drop"].to_list() == ["invalid:type"]
