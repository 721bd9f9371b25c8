"""Columnar JSON encoding: absent means omitted, nested objects from dotted names, JSON-exact escaping."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl

from logmap.records.encode import body_text, encode_frame, encode_ndjson, encode_records, json_expr, ndjson_text
from logmap.records.schema import conform


def encode(rows: list[dict], **schema: pl.DataType) -> list[str]:
    return encode_frame(conform(pl.DataFrame(rows, schema_overrides=schema or None))).to_list()


def test_absent_fields_are_omitted_never_null():
    out = encode([{"type": "home_page_view", "user_id": None, "duration": None, "context.page.url": None}])
    assert out == ['{"type":"home_page_view"}']


def test_nested_objects_come_from_dotted_names_in_a_stable_order():
    row = {"context.campaign.source": "google", "context.page.referrer": "https://r/", "type": "search",
           "search.keywords": "red shoe", "context.page.url": "https://s/search?q=red", "user_id": "u1",
           "context.truncated_ip": "1.2.3.0"}
    (out,) = encode([row])
    assert out == ('{"type":"search","user_id":"u1","search":{"keywords":"red shoe"},"context":{"page":'
                   '{"url":"https://s/search?q=red","referrer":"https://r/"},"truncated_ip":"1.2.3.0",'
                   '"campaign":{"source":"google"}}}')
    reordered = encode([dict(reversed(list(row.items())))])
    assert reordered == [out]


def test_an_object_without_members_is_absent():
    rows = [{"type": "read", "context.page.url": None, "context.campaign.name": None},
            {"type": "read", "context.campaign.name": "spring"}]
    assert [json.loads(r) for r in encode(rows)] == [{"type": "read"},
                                                     {"type": "read", "context": {"campaign": {"name": "spring"}}}]


def test_strings_round_trip_whatever_they_contain():
    nasty = ['quote " backslash \\ slash /', "".join(chr(c) for c in range(32)) + "\x7f", "café ☕ 中文 😀",
             "\u2028\u2029", '{"type":null}', "", "null", "</script>"]
    rows = [{"type": "feedback", "value": s, "question_id": s, "context.page.url": s} for s in nasty]
    for text, record in zip(nasty, encode(rows)):
        assert "\n" not in record
        assert json.loads(record) == {"type": "feedback", "value": text, "question_id": text,
                                      "context": {"page": {"url": text}}}


def test_timestamps_are_utc_with_milliseconds():
    stamps = [datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc), datetime(2024, 2, 29, 23, 59, 59, 999000,
                                                                       tzinfo=timezone.utc),
              datetime(1, 1, 1, tzinfo=timezone.utc), datetime(1969, 7, 20, 20, 17, 40, 1000, tzinfo=timezone.utc)]
    out = encode([{"type": "read", "timestamp": s} for s in stamps])
    assert [json.loads(r)["timestamp"] for r in out] == [
        "2024-03-01T10:00:00.000Z", "2024-02-29T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "1969-07-20T20:17:40.001Z"]


def test_a_zoned_timestamp_is_written_in_utc_even_without_conform():
    frame = pl.DataFrame({"type": ["read"], "timestamp": [datetime(2024, 3, 1, 11, 0)]}).with_columns(
        pl.col("timestamp").dt.replace_time_zone("Europe/Paris"))
    assert encode_frame(frame).to_list() == ['{"type":"read","timestamp":"2024-03-01T10:00:00.000Z"}']


def test_a_text_timestamp_is_written_verbatim():
    frame = pl.DataFrame({"type": ["read"], "timestamp": ["2024-03-01T10:00:00+01:00"]})
    assert json.loads(encode_frame(frame)[0])["timestamp"] == "2024-03-01T10:00:00+01:00"


def test_numbers_and_lists():
    (out,) = encode([{"type": "checkout", "product_ids": ["a", "b"], "quantities": [1.0, 2.5], "revenue": 12.0,
                      "product_group_ids": []}])
    assert out == ('{"type":"checkout","product_ids":["a","b"],"product_group_ids":[],"quantities":[1.0,2.5],'
                   '"revenue":12.0}')
    assert json.loads(out)["quantities"] == [1, 2.5]


def test_dynamic_filter_and_custom_context_columns():
    frame = pl.DataFrame({
        "type": ["search"],
        "search.filters.size": [["42", "43"]],
        "search.filters.co.lour": [["red"]],
        'search.filters.say "hi"\\': [["x"]],
        "search.filters.empty": pl.Series([None], dtype=pl.List(pl.String)),
        "context.custom_context.ab": ["B"],
        "context.custom_context.n": [2**62],
        "context.custom_context.x": [0.5],
        "context.custom_context.flag": [False],
        "context.custom_context.lf": [[1.0, 2.0]],
        "context.custom_context.ls": [["x"]],
        "context.custom_context.gone": pl.Series([None], dtype=pl.String),
    })
    (out,) = encode_frame(conform(frame)).to_list()
    assert json.loads(out) == {"type": "search", "search": {"filters": {"co.lour": ["red"], 'say "hi"\\': ["x"],
                                                                      "size": ["42", "43"]}},
                               "context": {"custom_context": {"ab": "B", "flag": False, "lf": [1.0, 2.0],
                                                             "ls": ["x"], "n": 2**62, "x": 0.5}}}
    assert out.index('"filters"') < out.index('"context"')


def test_only_record_columns_are_written():
    frame = pl.DataFrame({"type": ["read"], "_file": ["a.log"], "ip": ["1.2.3.4"], "context.unknown": ["x"]})
    assert encode_frame(frame).to_list() == ['{"type":"read"}']


def test_lazy_frames_json_expr_and_batch_helpers():
    frame = pl.DataFrame({"type": ["read", "like"], "user_id": ["u", None]})
    expected = ['{"type":"read","user_id":"u"}', '{"type":"like"}']
    assert encode_ndjson(frame.lazy()).to_list() == expected
    assert frame.select(json_expr(["user_id", "type"])).to_series().to_list() == expected
    assert frame.lazy().select(encode_records(frame)).collect().to_series().to_list() == expected
    records = encode_frame(frame)
    assert ndjson_text(records) == "\n".join(expected) + "\n"
    assert json.loads(body_text(records)) == {"data": [json.loads(r) for r in expected]}
    assert ndjson_text(records.clear()) == "" and body_text(records.clear()) == '{"data":[]}'
