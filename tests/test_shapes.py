"""Path shapes: ids, numbers, hashes, uuids and slugs become placeholders; words stay."""

from __future__ import annotations

import polars as pl
import pytest

from logmap.reports.shapes import MAX_SHAPE_CHARS, display_path, path_of_url, path_shape, shape_counts


@pytest.mark.parametrize("path,shape", [
    ("/product/123-red-shoe", "/product/{id}-{slug}"),
    ("/product/1956", "/product/{id}"),
    ("/item/trail-merino-1956", "/item/{slug}-{id}"),
    ("/u/550e8400-e29b-41d4-a716-446655440000/orders", "/u/{uuid}/orders"),
    ("/files/9f86d081884c7d65", "/files/{hash}"),
    ("/t/AbCdEf1234567890xyz", "/t/{hash}"),
    ("/blog/how-to-lace-boots", "/blog/{slug}"),
    ("/img_0042.html", "/img_{n}.html"),
    ("/2024/03/01/news", "/{id}/{id}/{id}/news"),
    ("/about-us", "/about-us"),            # short words are what tells one missing rule from another
    ("/category/shoes/running", "/category/shoes/running"),
    ("/page2.html", "/page2.html"),
    ("/", "/"),
    ("/a//b/", "/a//b/"),
])
def test_shapes(path, shape):
    assert pl.select(path_shape(pl.lit(path))).item() == shape


def test_null_stays_null_and_long_shapes_are_cut():
    out = pl.DataFrame({"p": [None, "/x" * 500]}).select(path_shape(pl.col("p"))).to_series().to_list()
    assert out[0] is None and len(out[1]) == MAX_SHAPE_CHARS and out[1].endswith("…")


def test_shape_counts_sum_distinct_paths_and_keep_the_most_frequent_example():
    paths = pl.Series(["/p/1-a-b", "/p/2-c", "/p/2-c", "/about", None])
    counts = shape_counts(paths)
    assert counts.to_dicts() == [
        {"shape": "/p/{id}-{slug}", "count": 3, "example": "/p/2-c"},
        {"shape": "/about", "count": 1, "example": "/about"},
    ]


@pytest.mark.parametrize("url,path", [("https://shop.example.com/a/b?q=1#x", "/a/b"),
                                      ("https://shop.example.com", "/"), ("/c?x=1", "/c")])
def test_path_of_url(url, path):
    assert pl.select(path_of_url(pl.lit(url))).item() == path


PERSIAN = "%D8%B3%D8%B4%D9%88%D8%A7%D8%B1"  # سشوار


@pytest.mark.parametrize("path,shape", [
    # digits inside escapes are the escape's: never {n} (it used to give %D9%{n})
    ("/filter/b41,c150%7C%D8%A8%D8%AE,p56", "/filter/b{n},c{n}%7C%D8%A8%D8%AE,p{n}"),
    ("/x%D9%85%D9%85", "/x%D9%85%D9%85"),
    ("/a%2012b", "/a%20{n}b"),                      # %20 then 12: the run after the escape is replaced
    # words made of escapes are words: a non-Latin slug is a {slug} like a Latin one
    (f"/product/31893/62100/{PERSIAN}-{PERSIAN}-{PERSIAN}-PR257AT", "/product/{id}/{id}/{slug}"),
    (f"/blog/{PERSIAN}-{PERSIAN}-2019", "/blog/{slug}-{id}"),
])
def test_shapes_never_split_a_percent_escape(path, shape):
    assert pl.select(path_shape(pl.lit(path))).item() == shape


def test_a_cut_shape_does_not_end_in_half_an_escape():
    for offset in range(3):
        path = "/" + "a" * (MAX_SHAPE_CHARS - 3 + offset) + PERSIAN * 5
        shape = pl.select(path_shape(pl.lit(path))).item()
        assert shape.endswith("…") and not __import__("re").search(r"%[0-9A-F]?…$", shape), shape


@pytest.mark.parametrize("value,shown", [
    (f"/blog/{PERSIAN}", "/blog/سشوار"),
    ("/filter/b{n}%7C%D8%A8%D8%AE,p{n}", "/filter/b{n}|بخ,p{n}"),
    ("/search?q=red+shoes", "/search?q=red+shoes"),      # + stays: paths are not form-encoded
    ("/bad%FF%FEbytes", "/bad%FF%FEbytes"),                # not UTF-8: shown as is
    ("/a%0Ab", "/a%0Ab"),                                  # a decoded newline would break the line
    ("/x%E2%80%AEgpj.exe", "/x%E2%80%AEgpj.exe"),          # a bidi override would reorder the text
    (None, None),
])
def test_display_path(value, shown):
    assert display_path(value) == shown
