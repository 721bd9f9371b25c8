"""Mapping errors stop before any input is read and name file:line:column and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from logmap.cli import main
from logmap.errors import MappingError
from logmap.mapping import defaults
from logmap.mapping.loader import load_mapping, load_mapping_text, require_anonymous_key

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


def error_of(text: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapping_text(text, "m.yaml")
    return caught.value


@pytest.mark.parametrize("text, line, column, key, fragment", [
    (BASE + "    revenue: '{query.total}'\n", 9, 5, "rules[0].revenue",
     "field 'revenue' is not allowed for type 'product_detail_page_view' (allowed: duration, miso_id"),
    (BASE.replace("type: product_detail_page_view", "type: product_view"), 7, 11, "rules[0].type",
     "unknown interaction type 'product_view' (did you mean 'product_detail_page_view'?)"),
    (BASE + "    prodcut_ids: ['x']\n", 9, 5, "rules[0].prodcut_ids", "unknown key 'prodcut_ids' (did you mean 'product_ids'?)"),
    (BASE.replace("'^/product/(?P<id>\\d+)'", "'^/product/(?P<id>\\d+'"), 6, 11, "rules[0].path",
     "invalid regular expression"),
    (BASE.replace("'^/product/(?P<id>\\d+)'", "'(?<=x)y'"), 6, 11, "rules[0].path", "look-around"),
    (BASE + "filter:\n  stauts: [200]\n", 10, 3, "filter.stauts", "did you mean 'status'"),
    (BASE + "filter:\n  status: [200, 'abc']\n", 10, 17, "filter.status[1]", "bad status 'abc'"),
    (BASE.replace("format: combined", "format: combind"), 3, 11, "source.format", "did you mean 'combined'"),
    (BASE + "  - {type: custom, path: '^/x'}\n", 9, 5, "rules[1]", "type 'custom' requires 'custom_action_name'"),
    (BASE.replace("['{id}']", "['{id|intt}']"), 8, 19, "rules[0].product_ids[0]", "unknown converter 'intt'"),
    (BASE + "durations: {max: 5 minutes}\n", 9, 18, "durations.max", "bad duration '5 minutes'"),
    (BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: s3cret}\n", 10, 39, "identity.anonymous_id.key",
     "never write the key itself"),
    (BASE.replace("logmap: 1", "logmap: 2"), 1, 9, "logmap", "unsupported mapping language version 2"),
    ("logmap: 1\nsource: {format: combined}\nrules: [\n", 4, 1, None, "not valid YAML"),
])
def test_errors_name_the_position_and_key(text, line, column, key, fragment):
    error = error_of(text)
    assert (error.line, error.column, error.key) == (line, column, key)
    assert fragment in error.reason
    assert str(error).startswith(f"m.yaml:{line}:{column}:")


def test_defaults_are_applied():
    mapping = load_mapping_text(BASE, "m.yaml")
    assert mapping.filter.status == defaults.STATUS
    assert mapping.filter.methods == ["GET"]
    assert "js" in mapping.filter.static_extensions and mapping.filter.exclude_bots
    assert mapping.identity.anonymous_id.hmac == ["{ip}", "{user_agent}"]
    assert mapping.identity.anonymous_id.key_env == "LOGMAP_KEY"
    assert mapping.context.campaign == "utm" and mapping.context.page_url == "{url}"
    assert (mapping.durations.session_timeout_s, mapping.durations.max_s) == (1800.0, 1800.0)
    assert mapping.rules[0].name == "product" and mapping.rules[0].fields == {"product_ids": ["{id}"]}


def test_status_classes_ranges_and_durations_parse():
    mapping = load_mapping_text(BASE + "filter: {status: ['2xx', '300-304', 410]}\ndurations: {session_timeout: 1h30m, max: 90}\n")
    assert mapping.filter.status == [(200, 299), (300, 304), (410, 410)]
    assert (mapping.durations.session_timeout_s, mapping.durations.max_s) == (5400.0, 90.0)


def test_missing_key_is_reported_without_its_value(monkeypatch):
    mapping = load_mapping_text(BASE, "m.yaml")
    monkeypatch.delenv("LOGMAP_KEY", raising=False)
    with pytest.raises(MappingError, match="LOGMAP_KEY is not set"):
        require_anonymous_key(mapping)
    monkeypatch.setenv("LOGMAP_KEY", "super-secret-value")
    assert require_anonymous_key(mapping) == b"super-secret-value"
    explicit_none = load_mapping_text(BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: none}\n")
    assert require_anonymous_key(explicit_none) is None


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
