"""Columnar JSON encoding: absent means omitted, nested objects from dotted names, JSON-exact escaping."""

from __future__ import annotations

import json
import math
import random
import struct
from datetime import UTC, datetime, timedelta

import polars as pl

from logmap.records.encode import (
    FAST_MIN_ROWS,
    Facts,
    _laid_out,
    _prepared,
    encode_fast,
    encode_frame,
    encode_ndjson,
    encode_records,
    fast_json_expr,
    json_expr,
)
from logmap.records.schema import DYNAMIC_PREFIXES, RECORD_COLUMNS, conform, record_columns


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
    stamps = [datetime(2024, 3, 1, 10, 0, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, 999000,
                                                                       tzinfo=UTC),
              datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 7, 20, 20, 17, 40, 1000, tzinfo=UTC)]
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


def test_lazy_frames_and_json_expr():
    frame = pl.DataFrame({"type": ["read", "like"], "user_id": ["u", None]})
    expected = ['{"type":"read","user_id":"u"}', '{"type":"like"}']
    assert encode_ndjson(frame.lazy()).to_list() == expected
    assert frame.select(json_expr(["user_id", "type"])).to_series().to_list() == expected
    assert frame.lazy().select(encode_records(frame)).collect().to_series().to_list() == expected
    assert encode_frame(frame).to_list() == expected


# --- the fast encoder: the same bytes as the reference (polars' JSON writer for every value) -----------------

NASTY = ['quote " here', "back\\slash", "tab\there", "new\nline", "cr\r", "".join(map(chr, range(32))), "del \x7f",
         "café ☕ 中文", "emoji 😀", "line\u2028sep\u2029", "", "null", '{"type":null}', "</script>", "a{}b{c}"]
PLAIN = ["plain", "café ☕ 中文", "emoji 😀", "del \x7f", "line\u2028sep\u2029", "", "null", "{}", "</script>",
         "x" * 40, "https://shop.example.com/p/1?utm_source=x&q=a%22b"]
FLOATS = [145.0, 0.1, 1e-7, 1e21, 1e20, 1e16, 1e15, 123456789.123, -0.0, 0.0, -1.5, 5e-324, 2.2250738585072014e-308,
          1.7976931348623157e308, 1e-5, 1e-4, 0.001, 2.0 ** 53, 2.0 ** 63, 1 / 3, 0.30000000000000004, -2.5e-300, 42.0]


def reference(frame: pl.DataFrame) -> list[str | None]:
    return frame.select(json_expr(record_columns(frame), dict(frame.schema))).to_series().to_list()


def assert_fast_is_reference(frame: pl.DataFrame) -> list[str]:
    """Byte for byte: the fast encoder with the frame's facts, without any, and through the public entry points."""
    expected = reference(frame)
    assert encode_fast(frame, min_rows=0).to_list() == expected
    no_facts = frame.select(fast_json_expr(record_columns(frame), dict(frame.schema), Facts())).to_series()
    assert no_facts.to_list() == expected
    assert encode_frame(frame).to_list() == expected
    assert frame.with_columns(encode_records(frame).alias("_json"))["_json"].to_list() == expected
    return expected


def expected_record(row: dict) -> dict:
    """What a JSON record should parse to: absent values left out, NaN/inf as null, objects nested by path."""
    record: dict = {}
    for name, value in row.items():
        if value is None or not (name in RECORD_COLUMNS or name.startswith(DYNAMIC_PREFIXES)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, datetime):
            value = value.astimezone(UTC)
            value = f"{value.year:04d}-{value:%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"
        elif isinstance(value, list):
            value = [None if isinstance(v, float) and not math.isfinite(v) else v for v in value]
        *parents, leaf = name.split(".", 2) if name.startswith(DYNAMIC_PREFIXES) else name.split(".")
        node = record
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return record


def assert_parses_to_rows(frame: pl.DataFrame, lines: list[str]) -> None:
    for line, row in zip(lines, frame.iter_rows(named=True)):
        assert json.loads(line) == expected_record(row)


def test_polars_writer_escapes_exactly_as_the_fast_encoder_assumes():
    """Only '"', '\\' and U+0000-U+001F are escaped, as json.dumps does, in keys and values alike."""
    chars = [chr(c) for c in range(0x80)] + ["é", "中", "😀", "\u2028", "\u2029", "\ufeff", "\x85"]
    for char in chars:
        text = f"a{char}b"
        value = pl.select(pl.struct(pl.lit(text).alias("k")).struct.json_encode()).item()
        key = pl.select(pl.struct(pl.lit(None, pl.String).alias(text)).struct.json_encode()).item()
        assert value == '{"k":' + json.dumps(text, ensure_ascii=False) + "}"
        assert key == "{" + json.dumps(text, ensure_ascii=False) + ":null}"
        escaped = char in '"\\' or ord(char) < 0x20
        assert (json.dumps(text, ensure_ascii=False) != f'"{text}"') == escaped


def test_float_cast_is_the_writers_text_for_every_finite_float():
    rng = random.Random(7)
    bits = [rng.getrandbits(64) for _ in range(100_000)]
    randoms = [struct.unpack("<d", struct.pack("<Q", b))[0] for b in bits]
    decimals = [round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)) * 10.0 ** rng.randint(-30, 30) for _ in range(50_000)]
    powers = [10.0 ** e for e in range(-323, 309)] + [2.0 ** e for e in range(-1074, 1024)]
    values = [v for v in randoms + decimals + powers + FLOATS if math.isfinite(v)]
    values += [-v for v in values[:1000]]
    frame = pl.DataFrame({"k": values}, schema={"k": pl.Float64})
    out = frame.select(pl.struct("k").struct.json_encode().str.slice(5).str.head(-1).alias("writer"),
                       pl.col("k").cast(pl.String).alias("cast"))
    assert out.filter(pl.col("writer") != pl.col("cast")).height == 0


def test_escape_check_finds_exactly_the_characters_json_escapes():
    names = [f"c{code}" for code in range(0x80)] + ["multibyte"]
    frame = pl.DataFrame({f"c{code}": ["ab", None, f"x{chr(code)}y"] for code in range(0x80)}
                         | {"multibyte": ["é中😀\u2028\x7f", "", None]})
    _, plain = _laid_out(frame, names)
    assert plain == {f"c{code}" for code in range(0x20, 0x80) if chr(code) not in '"\\'} | {"multibyte"}
    sliced = conform(pl.DataFrame({"type": ["x"] * 3, "value": ['a"b', "plain", "text"]})).slice(1, 2)
    assert encode_fast(sliced, min_rows=0).to_list() == ['{"type":"x","value":"plain"}', '{"type":"x","value":"text"}']


def test_fast_strings_whatever_they_contain():
    rows = [{"type": "feedback", "value": nasty, "question_id": plain, "context.page.url": plain, "user_id": nasty,
             "search.keywords": None if i % 3 else plain}
            for i, (nasty, plain) in enumerate(zip(NASTY * 2, PLAIN * 3))]
    frame = conform(pl.DataFrame(rows))
    _, facts = _prepared(frame, ["type", "value", "question_id", "context.page.url", "user_id", "search.keywords"])
    assert facts.plain_text == {"type", "question_id", "context.page.url", "search.keywords"}
    lines = assert_fast_is_reference(frame)
    assert all("\n" not in line for line in lines)
    assert_parses_to_rows(frame, lines)


def test_fast_floats_of_every_magnitude_and_not_finite():
    values = FLOATS + [-v for v in FLOATS]
    frame = conform(pl.DataFrame({"type": ["x"] * len(values), "revenue": values, "duration": values[::-1],
                                  "rating": [v if i % 2 else None for i, v in enumerate(values)]}))
    assert_parses_to_rows(frame, assert_fast_is_reference(frame))
    odd = [math.nan, math.inf, -math.inf, 1.5, None]
    frame = conform(pl.DataFrame({"type": ["x"] * 5, "duration": odd, "quantities": [[v, 1.0] for v in odd],
                                  "context.custom_context.x": odd}))
    lines = assert_fast_is_reference(frame)
    assert lines[0] == '{"type":"x","quantities":[null,1.0],"duration":null,"context":{"custom_context":{"x":null}}}'
    assert_parses_to_rows(frame, lines)
    rare = [None] * 30 + odd  # rare columns are written for their present rows only
    frame = conform(pl.DataFrame({"type": ["x"] * len(rare), "revenue": rare,
                                  "quantities": [None if v is None else [v] for v in rare]}))
    assert {"revenue", "quantities"} <= _prepared(frame, ["type", "revenue", "quantities"])[1].rare
    assert_parses_to_rows(frame, assert_fast_is_reference(frame))


def test_fast_timestamps():
    utc = UTC
    near = [datetime(2024, 2, 28, 22, 0, tzinfo=utc) + timedelta(milliseconds=7_777_777 * i) for i in range(40)]
    far = [datetime(1, 1, 1, tzinfo=utc), datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=utc),
           datetime(1970, 1, 1, tzinfo=utc), datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=utc), None]
    epoch = [datetime(1969, 12, 30, 1, 2, 3, 4000, tzinfo=utc) + timedelta(milliseconds=3_333_331 * i)
             for i in range(90)]
    for stamps in (near, far, epoch, near[:3] + [None] + far[1:3]):
        frame = conform(pl.DataFrame({"type": ["x"] * len(stamps), "timestamp": stamps}))
        assert_parses_to_rows(frame, assert_fast_is_reference(frame))
    # Near ones are put together from tables of strftime text; a span of millennia is formatted value by value.
    assert "timestamp" in _prepared(conform(pl.DataFrame({"type": ["x"] * 40, "timestamp": near})),
                                    ["type", "timestamp"])[1].days
    assert "timestamp" not in _prepared(conform(pl.DataFrame({"type": ["x"] * 5, "timestamp": far})),
                                        ["type", "timestamp"])[1].days
    naive = pl.DataFrame({"type": ["x", "y"],
                          "timestamp": [datetime(2024, 3, 1, 11), datetime(1950, 6, 1, 0, 0, 0, 1234)]})
    for frame in (naive, naive.with_columns(pl.col("timestamp").dt.replace_time_zone("Europe/Paris")),
                  naive.with_columns(pl.col("timestamp").dt.cast_time_unit("ms")),
                  pl.DataFrame({"type": ["x"] * 40, "timestamp": near}).with_columns(
                      pl.col("timestamp").dt.cast_time_unit("ms").dt.convert_time_zone("Europe/Paris")),
                  naive.with_columns(pl.col("timestamp").cast(pl.Date)),
                  pl.DataFrame({"type": ["x"], "timestamp": ['2024-03-01T10:00:00+01:00 "quoted"']})):
        assert_fast_is_reference(frame)


def test_fast_dynamic_names_and_custom_context_of_every_dtype():
    frame = pl.DataFrame({
        "type": ["search", "search", "read"],
        "search.filters.size": [["42", "43"], None, []],
        "search.filters.co.lour": [["red"], ["blue", 'say "hi"'], None],
        'search.filters.say "hi"\\': [["x"], None, None],
        "search.filters.a{}b": [["{}"], None, ["}{"]],
        "search.filters.\x01ctl\n": [None, ["v"], None],
        "search.filters.nulls": pl.Series([[None, "a"], None, None], dtype=pl.List(pl.String)),
        "context.custom_context.ab": ["B", None, 'q"'],
        "context.custom_context.n": [2**62, -(2**63), None],
        "context.custom_context.x": [0.5, None, 1e-7],
        "context.custom_context.flag": [False, True, None],
        "context.custom_context.lf": [[1.0, 2.0], [], None],
        "context.custom_context.ls": [["x"], None, ["é", ""]],
        "context.custom_context.{k}": ["v", "w", None],
        "context.custom_context.gone": pl.Series([None, None, None], dtype=pl.String),
    })
    frame = conform(frame)
    lines = assert_fast_is_reference(frame)
    assert_parses_to_rows(frame, lines)
    assert json.loads(lines[0])["search"]["filters"]["a{}b"] == ["{}"]


def test_fast_nesting_absence_same_nulls_and_apart_fields():
    rows = []
    for i in range(60):
        kind = ["checkout", "home_page_view", "search", "add_to_cart"][i % 4]
        utm = i % 5 == 0
        rows.append({
            "type": kind, "user_id": f"u{i}" if i % 7 == 0 else None,
            "revenue": i / 10 if kind == "checkout" else None,
            "duration": float(i) if kind == "home_page_view" else None,
            "product_ids": [f"p{i}"] if kind in ("checkout", "add_to_cart") else None,
            "quantities": [1.0] if kind == "add_to_cart" else None,
            "search.keywords": f"kw {i}" if kind == "search" else None,
            "search.filters.color": ["red"] if kind == "search" and i % 8 == 2 else None,
            "context.page.url": None if i % 6 == 0 else f"https://s/{i}",
            "context.page.referrer": "https://r/" if i % 3 == 0 else None,
            "context.campaign.name": "spring" if utm else None, "context.campaign.source": "g" if utm else None,
            "context.campaign.medium": "cpc" if utm else None,
        })
    frame = conform(pl.DataFrame(rows))
    present = [c for c in record_columns(frame) if frame[c].null_count() < frame.height]
    facts = _prepared(frame, present)[1]
    assert facts.same_nulls == {"context.campaign.source": "context.campaign.name",
                                "context.campaign.medium": "context.campaign.name"}
    assert frozenset(("revenue", "duration")) in facts.apart
    assert facts.dense == {"type"}
    lines = assert_fast_is_reference(frame)
    assert_parses_to_rows(frame, lines)
    assert lines[0] == ('{"type":"checkout","user_id":"u0","product_ids":["p0"],"revenue":0.0,"context":{"page":'
                        '{"referrer":"https://r/"},"campaign":{"name":"spring","source":"g","medium":"cpc"}}}')


def test_fast_edge_frames():
    empty = conform(pl.DataFrame({"type": pl.Series([], dtype=pl.String)}))
    assert encode_fast(empty, min_rows=0).to_list() == [] == reference(empty)
    all_null = conform(pl.DataFrame({"type": pl.Series([None, None], dtype=pl.String)}))
    assert encode_fast(all_null, min_rows=0).to_list() == ["{}", "{}"] == reference(all_null)
    one = conform(pl.DataFrame({"type": ["x"], "user_id": ["u"]}))
    assert_fast_is_reference(one)
    assert_fast_is_reference(pl.DataFrame({"duration": [1.5, None], "timestamp": [None, datetime(2024, 3, 1)]}))
    chunked = pl.concat([one, one.with_columns(pl.lit(None, pl.String).alias("user_id"))], rechunk=False)
    assert chunked.n_chunks() == 2
    assert_fast_is_reference(chunked)


def _random_frame(seed: int, rows: int) -> pl.DataFrame:
    rng = random.Random(seed)

    def maybe(value, p=0.5):
        return value if rng.random() < p else None

    def text():
        return rng.choice(PLAIN) if rng.random() < 0.9 else rng.choice(NASTY)

    start = datetime(2024, 3, 1, tzinfo=UTC)
    data = {
        "type": [maybe(rng.choice(["search", "checkout", "home_page_view"]), 0.97) for _ in range(rows)],
        "user_id": [maybe(f"u{rng.randint(0, 99)}", 0.2) for _ in range(rows)],
        "anonymous_id": [f"{rng.getrandbits(64):016x}" for _ in range(rows)],
        "timestamp": [maybe(start + timedelta(milliseconds=rng.randint(-10**9, 10**9)), 0.95) for _ in range(rows)],
        "product_ids": [maybe([text() for _ in range(rng.randint(0, 3))], 0.4) for _ in range(rows)],
        "quantities": [maybe([rng.choice(FLOATS) for _ in range(rng.randint(0, 3))], 0.2) for _ in range(rows)],
        "revenue": [maybe(rng.choice(FLOATS), 0.1) for _ in range(rows)],
        "duration": [maybe(rng.choice(FLOATS), 0.6) for _ in range(rows)],
        "value": [maybe(text(), 0.1) for _ in range(rows)],
        "search.keywords": [maybe(text(), 0.2) for _ in range(rows)],
        "search.filters.co.lour": [maybe([text()], 0.1) for _ in range(rows)],
        "context.page.url": [maybe(rng.choice(PLAIN), 0.98) for _ in range(rows)],
        "context.page.referrer": [maybe(text(), 0.7) for _ in range(rows)],
        "context.user_agent": [maybe("Mozilla/5.0 (X11; Linux x86_64)", 0.99) for _ in range(rows)],
        "context.campaign.name": [maybe("spring", 0.05) for _ in range(rows)],
        "context.custom_context.n": [maybe(rng.randint(-10**12, 10**12), 0.3) for _ in range(rows)],
        "context.custom_context.flag": [maybe(rng.random() < 0.5, 0.3) for _ in range(rows)],
    }
    return conform(pl.DataFrame(data))


def test_fast_random_frames_byte_identical():
    for seed in range(4):
        frame = _random_frame(seed, 500)
        assert_parses_to_rows(frame, assert_fast_is_reference(frame))


def test_big_frames_take_the_fast_path_and_encode_records_is_the_reference(monkeypatch):
    import logmap.records.encode as encode

    frame = _random_frame(11, FAST_MIN_ROWS + 500)
    expected = reference(frame)
    fast_frames: list[int] = []
    real = encode.fast_json_expr

    def spy(columns, dtypes=None, facts=Facts()):
        fast_frames.append(len(columns))
        return real(columns, dtypes, facts)

    monkeypatch.setattr(encode, "fast_json_expr", spy)
    assert frame.with_columns(encode_records(frame).alias("_json"))["_json"].to_list() == expected
    assert encode_frame(frame.lazy()).to_list() == expected
    assert encode_frame(frame.slice(100, FAST_MIN_ROWS)).to_list() == expected[100:100 + FAST_MIN_ROWS]
    assert frame.lazy().select(encode_records(frame.lazy())).collect().to_series().to_list() == expected
    assert len(fast_frames) == 2  # encode_frame on the (lazy) frame and on a slice; encode_records never
    assert encode_frame(frame.head(10)).to_list() == expected[:10]
    assert len(fast_frames) == 2  # a small frame goes to the reference
