"""Durations: time to the same visitor's next record, by event time, across files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from logmap.mapping.model import Durations
from logmap.transform.durations import infer_durations

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def frame(rows):
    return pl.DataFrame(
        [{"_visitor": v, "time": T0 + timedelta(seconds=s), "_file": f, "_line": n, "r:type": t,
          "r:duration": None} for v, s, f, n, t in rows],
        schema={"_visitor": pl.String, "time": pl.Datetime("ms", "UTC"), "_file": pl.String, "_line": pl.UInt64,
                "r:type": pl.String, "r:duration": pl.Float64},
    )


def durations_by_line(result):
    return dict(zip(result["_line"].to_list(), result["r:duration"].to_list()))


def test_gap_to_next_record_of_the_same_visitor_sorted_across_files():
    rows = [
        ("a", 100, "b.log", 1, "product_detail_page_view"),   # later file, earlier line number
        ("a", 0, "a.log", 5, "home_page_view"),
        ("a", 40, "a.log", 9, "add_to_cart"),                 # add_to_cart carries no duration
        ("b", 10, "a.log", 6, "category_page_view"),          # b's last record: none
    ]
    got = durations_by_line(infer_durations(frame(rows), Durations()))
    assert got == {5: 40.0, 9: None, 1: None, 6: None}


def test_session_timeout_and_cap():
    rows = [
        ("a", 0, "x", 1, "product_detail_page_view"),
        ("a", 1000, "x", 2, "product_detail_page_view"),   # gap 1000s: capped at 600
        ("a", 1000 + 3600, "x", 3, "product_detail_page_view"),  # gap 3600 > timeout: none
        ("a", 1000 + 3600 + 5, "x", 4, "home_page_view"),
    ]
    got = durations_by_line(infer_durations(frame(rows), Durations(session_timeout_s=1800, max_s=600)))
    assert got == {1: 600.0, 2: None, 3: 5.0, 4: None}


def test_from_none_disables_inference():
    rows = [("a", 0, "x", 1, "home_page_view"), ("a", 5, "x", 2, "home_page_view")]
    got = durations_by_line(infer_durations(frame(rows), Durations(source="none")))
    assert got == {1: None, 2: None}


def test_same_second_ties_follow_file_order_not_file_names():
    # access.log.2.gz is the older file (rank 0) though its name sorts after access.log.1
    rows = [
        ("a", 0, "access.log.2.gz", 9, "product_detail_page_view"),
        ("a", 0, "access.log.1", 1, "product_detail_page_view"),
        ("a", 30, "access.log.1", 2, "home_page_view"),
    ]
    ordered = frame(rows).with_columns(
        pl.col("_file").replace_strict({"access.log.2.gz": 0, "access.log.1": 1}, return_dtype=pl.UInt32)
        .alias("_file_order"))
    result = infer_durations(ordered, Durations())
    assert result["_file"].to_list() == ["access.log.2.gz", "access.log.1", "access.log.1"]
    assert durations_by_line(result) == {9: 0.0, 1: 30.0, 2: None}


def test_a_frame_in_time_order_needs_only_a_stable_sort_by_visitor():
    rows = [("a", 0, "f", 1, "product_detail_page_view"), ("b", 5, "f", 2, "home_page_view"),
            ("a", 5, "f", 3, "product_detail_page_view"), ("a", 5, "g", 11, "home_page_view"),
            ("b", 20, "f", 4, "home_page_view"), (None, 20, "f", 5, "home_page_view"),
            ("a", 3000, "f", 6, "home_page_view"), (None, 30, "f", 7, "home_page_view")]
    shuffled = frame(rows)
    ordered = shuffled.sort(["time", "_file", "_line"], nulls_last=True)
    expected = durations_by_line(infer_durations(shuffled, Durations()))
    assert durations_by_line(infer_durations(ordered, Durations(), in_time_order=True)) == expected
    assert expected == {1: 5.0, 2: 15.0, 3: 0.0, 11: None, 4: None, 5: None, 6: None, 7: None}


def test_visitor_hashes_that_collide_fall_back_to_the_visitor_ids():
    from logmap.transform.durations import visitor_key

    rows = [("aa", 0, "f", 1, "product_detail_page_view"), ("bb", 10, "f", 2, "product_detail_page_view"),
            ("aa", 20, "f", 3, "product_detail_page_view"), ("bb", 40, "f", 4, "home_page_view")]
    visits = frame(rows)
    same_length = pl.col("_visitor").str.len_bytes().cast(pl.UInt64)  # a "hash" under which aa and bb collide
    assert str(visitor_key(visits, same_length)) == str(pl.col("_visitor"))
    assert str(visitor_key(visits)) == str(pl.col("_visitor").hash(seed=0))
    assert durations_by_line(infer_durations(visits, Durations())) == {1: 20.0, 2: 30.0, 3: None, 4: None}
