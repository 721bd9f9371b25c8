"""`logmap check` end to end: the key requirement, --no-key, and template names checked against the source."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from logmap.cli import main
from logmap.sources import load_mapping

ROOT = Path(__file__).resolve().parents[1]
BASE = """\
logmap: 1
source:
  format: combined
rules:
  - name: product
    path: '^/product/(?P<id>\\d+)'
    type: product_detail_page_view
    product_ids: ['{id}']
"""


def test_key_none_runs_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    path = tmp_path / "m.yaml"
    path.write_text(BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: none}\n")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "reversed" in result.output


def test_shipped_mappings_load():
    for path in sorted((ROOT / "mappings").glob("*.yaml")):
        assert load_mapping(path).rules


def test_check_command_exit_codes(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    good = CliRunner().invoke(main, ["check", str(ROOT / "mappings" / "storefront-combined.yaml")])
    assert good.exit_code == 0 and "OK" in good.output and "8 rule(s)" in good.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "    revenue: 3\n")
    result = CliRunner().invoke(main, ["check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:9:5: rules[0].revenue: field 'revenue' is not allowed" in result.output
    assert "Traceback" not in result.output


def test_unknown_field_in_a_template_is_caught_before_reading_input(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "k")
    path = tmp_path / "m.yaml"
    path.write_text(BASE.replace("['{id}']", "['{sku}']"))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert "unknown field 'sku'" in result.output and "rules[0].product_ids" in result.output


def test_check_without_the_key_in_ci(monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    mapping = str(ROOT / "mappings" / "storefront-combined.yaml")
    refused = CliRunner().invoke(main, ["check", mapping])
    assert refused.exit_code == 2 and "LOGMAP_KEY is not set" in refused.output
    allowed = CliRunner().invoke(main, ["check", "--no-key", mapping])
    assert allowed.exit_code == 0 and "OK" in allowed.output
    assert "LOGMAP_KEY" not in __import__("os").environ  # the throwaway key does not leak out of the command
