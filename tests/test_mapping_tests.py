"""`logmap test`: every shipped mapping's tests pass; a wrong expectation fails with a per-field diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from logmap.cli import main
from logmap.mapping.model import TestCase as MappingCase
from logmap.sources import load_mapping
from logmap.testing import MISSING, FieldDiff, compare_subset, run_mapping_tests

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "mappings").glob("*.yaml"))
STOREFRONT = ROOT / "mappings" / "storefront-combined.yaml"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def line(path: str, second: int = 0, method: str = "GET", status: int = 200) -> str:
    return f'1.2.3.4 - - [01/Mar/2024:10:{second // 60:02d}:{second % 60:02d} +0000] "{method} {path} HTTP/1.1" ' \
           f'{status} 512 "-" "{UA}"'


def with_tests(tmp_path: Path, tests_yaml: str) -> Path:
    """The storefront mapping with its tests: block replaced."""
    text = STOREFRONT.read_text()
    text = text[: text.index("\ntests:")] + "\ntests:\n" + tests_yaml
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("mapping", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_mapping_passes_its_tests(mapping, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)  # the tests must not need the real key
    loaded = load_mapping(mapping)
    assert loaded.tests, f"{mapping.name} has no `tests:` block: every shipped mapping must carry tests"
    run = run_mapping_tests(loaded)
    failures = ["\n".join(r.name + ": " + f.message for f in r.failures) for r in run.failed]
    assert failures == []
    assert "LOGMAP_KEY" not in os.environ  # the throwaway key was a parameter: the environment is as it was


def test_cli_passes_on_the_storefront_mapping_with_a_throwaway_key(monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    result = CliRunner().invoke(main, ["test", str(STOREFRONT)])
    assert result.exit_code == 0, result.output
    assert "throwaway" in result.output and "LOGMAP_KEY" in result.output
    assert "7 passed, 0 failed" in result.output


def test_no_throwaway_note_when_the_key_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    # one case is enough (the note is about the key, not the cases): the command's other runs cost a pipeline each
    mapping = with_tests(tmp_path, f"""
  - name: home
    line: '{line("/")}'
    expect: {{type: home_page_view}}
""")
    result = CliRunner().invoke(main, ["test", str(mapping)])
    output = result.output.replace(str(tmp_path), "<tmp>")  # the folder is named after this test
    assert result.exit_code == 0 and "1 passed, 0 failed" in output and "throwaway" not in output


def test_a_wrong_expectation_fails_with_a_diff(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    mapping = with_tests(tmp_path, f"""
  - name: right
    line: '{line("/product/42-red-shoe")}'
    expect: {{type: product_detail_page_view, product_ids: ['42']}}
  - name: wrong product
    line: '{line("/product/42-red-shoe")}'
    expect: {{type: product_detail_page_view, product_ids: ['43'], search: {{keywords: shoes}}}}
  - name: wrong drop
    line: '{line("/about-us")}'
    expect: {{dropped: 'filtered:static'}}
""")
    result = CliRunner().invoke(main, ["test", str(mapping)])
    assert result.exit_code == 1
    out = result.output
    assert "PASS right" in out and "FAIL wrong product" in out and "FAIL wrong drop" in out
    assert '- expected ["43"]' in out and '+ actual   ["42"]' in out
    assert "search:" in out and "+ actual   (absent)" in out
    assert "expected the line to be dropped as filtered:static, but it was dropped as unmatched" in out
    assert "1 passed, 2 failed" in out


def test_per_line_expectations_see_durations_across_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    mapping = with_tests(tmp_path, f"""
  - name: a visit
    lines:
      - '{line("/product/42", 0)}'
      - '{line("/", 75)}'
      - '{line("/app.js", 76)}'
    expect:
      - {{type: product_detail_page_view, duration: 75, timestamp: '2024-03-01T10:00:00Z'}}
      - {{type: home_page_view, duration: null}}
      - {{dropped: 'filtered:static'}}
""")
    run = run_mapping_tests(load_mapping(mapping))
    assert [r.passed for r in run.results] == [True]
    assert [o.dropped or o.record["type"] for o in run.results[0].outcomes] == [
        "product_detail_page_view", "home_page_view", "filtered:static"]


def test_counts_expectation(monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    mapping = load_mapping(STOREFRONT)
    lines = [line("/product/1", 0), line("/product/2", 10), line("/app.js", 11), line("/nope", 12)]
    right = {"counts": {"product_detail_page_view": 2, "filtered:static": 1, "unmatched": 1, "records": 2}}
    wrong = {"counts": {"product_detail_page_view": 3}}
    mapping.tests = [MappingCase(name="right", lines=lines, expect=right), MappingCase(name="wrong", lines=lines, expect=wrong)]
    run = run_mapping_tests(mapping)
    assert run.results[0].passed
    (failure,) = run.results[1].failures
    assert failure.diffs == [FieldDiff("counts.product_detail_page_view", 3, 2)]


def test_list_expectation_must_match_the_number_of_lines(monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    mapping = load_mapping(STOREFRONT)
    mapping.tests = [MappingCase(name="short", lines=[line("/"), line("/", 5)], expect=[{"type": "home_page_view"}])]
    (result,) = run_mapping_tests(mapping).results
    assert "1 expectation(s) but the case has 2 input line(s)" in result.failures[0].message


def test_compare_subset():
    actual = {"type": "add_to_cart", "quantities": [2.0], "timestamp": "2024-03-01T10:00:00.000Z",
              "context": {"page": {"url": "u"}, "user_agent": "x"}}
    assert compare_subset({"quantities": [2], "timestamp": "2024-03-01T10:00:00Z"}, actual) == []
    assert compare_subset({"context": {"page": {"url": "u"}}}, actual) == []
    assert compare_subset({"duration": None}, actual) == []
    assert compare_subset({"type": None}, actual) == [FieldDiff("type", MISSING, "add_to_cart")]
    assert compare_subset({"context": {"page": {"url": "v"}}}, actual) == [FieldDiff("context.page.url", "v", "u")]
    assert compare_subset({"quantities": [2, 1]}, actual) == [FieldDiff("quantities", [2, 1], [2.0])]
    assert compare_subset({"product_ids": ["1"]}, actual) == [FieldDiff("product_ids", ["1"], MISSING)]


def test_invalid_mapping_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("logmap: 1\nsource: {format: combined}\nrules: [{name: x, type: nope}]\n")
    result = CliRunner().invoke(main, ["test", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.output

