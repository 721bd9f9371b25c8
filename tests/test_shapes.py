"""Path shapes: ids, numbers, hashes, uuids and slugs become placeholders; words stay."""

from __future__ import annotations

import polars as pl
import pytest

from logmap.reports.shapes import MAX_SHAPE_CHARS, path_of_url, path_shape, shape_counts


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
