"""`logmap check`: a one-paragraph summary and exit 0, or one `file:line:col: key: message` line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logmap.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
logmap: 1
source: {format: combined}
rules:
  - {name: home, path: '^/$', type: home_page_view}
  - name: product
    path: '^/product/(?P<id>\\d+)'
    type: product_detail_page_view
    product_ids: ['{id}']
  - {name: other product, path: '^/p/(?P<id>\\d+)', type: product_detail_page_view, product_ids: ['{id}']}
"""


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k-not-secret")


def run(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def test_valid_mapping_prints_a_summary(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert f"{path}: OK — format combined; 3 rule(s) producing home_page_view, product_detail_page_view (2)" \
        in result.output


def test_shipped_mapping_checks():
    result = run(str(ROOT / "mappings" / "storefront-combined.yaml"))
    assert result.exit_code == 0, result.output
    assert "8 rule(s)" in result.output and "test case(s)" in result.output


@pytest.mark.parametrize("text, line", [
    (GOOD.replace("['{id}']\n  -", "['{id}']\n    revenue: 3\n  -"),
     "m.yaml:9:5: rules[1].revenue: field 'revenue' is not allowed for type 'product_detail_page_view' (allowed: "),
    (GOOD.replace("type: home_page_view", "type: homepage_view"),
     "m.yaml:4:37: rules[0].type: unknown interaction type 'homepage_view' (did you mean 'home_page_view'?)"),
    (GOOD + "  - {type: search, path: '(?!x)'}\n",
     "m.yaml:10:26: rules[3].path: invalid regular expression '(?!x)' in rule 'rule 4': look-around"),
    ("logmap: 1\nsource: {format: combined\n", "m.yaml:3:1: not valid YAML"),
])
def test_invalid_mapping_exits_2_with_one_line(tmp_path, monkeypatch, text, line):
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_text(text)
    result = run("m.yaml")
    assert result.exit_code == 2
    assert result.output.startswith(f"logmap: error: {line}")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_unknown_template_field_is_reported_by_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_text(GOOD.replace("['{id}']\n  -", "['{sku}']\n  -"))
    result = run("m.yaml")
    assert result.exit_code == 2 and "unknown field 'sku'" in result.output and "rules[1].product_ids" in result.output


def test_missing_key_exits_2_and_key_none_warns(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY")
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    result = run(str(path))
    assert result.exit_code == 2 and "LOGMAP_KEY is not set" in result.output
    path.write_text(GOOD + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: none}\n")
    result = run(str(path))
    assert result.exit_code == 0 and "unkeyed hash" in result.output and "reversed" in result.output


def test_missing_file_and_missing_argument(tmp_path):
    result = run(str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "mapping file not found" in result.output and "Traceback" not in result.output
    assert run().exit_code == 2


def test_schema_path_prints_the_installed_schema():
    result = run("--schema-path")
    assert result.exit_code == 0
    path = Path(result.output.strip())
    assert path.name == "mapping.schema.json" and json.loads(path.read_text())["title"].startswith("logmap mapping")
