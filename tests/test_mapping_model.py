"""A valid mapping becomes the typed model, with the defaults of docs/mapping.md where nothing is written."""

from __future__ import annotations

import pytest

from logmap.mapping import defaults
from logmap.mapping.model import AnonymousId, QueryCondition, Reference, Where
from logmap.sources import load_mapping_text

MINIMAL = """\
logmap: 1
source: {format: combined}
rules:
  - {name: home, path: '^/$', type: home_page_view}
"""

FULL = r"""
# yaml-language-server: $schema=../logmap/mapping/mapping.schema.json
logmap: 1
name: shop
description: every section written
x-common: &product
  type: product_detail_page_view
source:
  format: regex
  pattern: '^(?P<ip>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d+)'
  time_format: '%Y-%m-%dT%H:%M:%S'
  timezone: Europe/Paris
  site: https://shop.example.com
filter:
  status: ['2xx', 304, '400-404']
  methods: [get, POST]
  exclude_static: [JS, .css]
  exclude_bots: false
  bot_patterns: '(?i)uptime'
  include_paths: ['^/']
  exclude_paths: ['^/api/']
identity:
  user_id: '{query.uid}'
  anonymous_id:
    hmac: ['{ip}']
    key: env:SHOP_KEY
context:
  page: {url: '{url}', title: '{query.title}'}
  user_agent: false
  truncated_ip: '{ip}'
  campaign: {source: '{query.src}', name: '{query.cmp}'}
  locale: '{query.lang|lower}'
  custom_context: {ab: '{query.ab|int}', tags: ['{query.t|split}']}
rules:
  - <<: *product
    name: product
    path: '^/p/(?P<sku>\w+)'
    query: {preview: false, color: '^(red|blue)$', ref: true}
    method: [GET, head]
    status: 200
    product_ids: ['{sku}', '{query.extra}']
    duration: 12
  - type: search
    search:
      keywords: '{query.q|trim}'
      filters: {brand: '{query.brand}', size: ['{query.s1}', '{query.s2}']}
  - type: custom
    custom_action_name: share_{query.via}
    when: {event_name: [share, send], 'event_params.method': {regex: '^w'}, user_id: {null: false}}
  - {type: feedback, question_id: q1, result_type: '{query.r}', value: 5}
durations:
  from: none
  session_timeout: 1h30m
  max: 90
tests:
  - name: a product
    line: 'x'
    expect: {type: product_detail_page_view, product_ids: ['1']}
  - rows: [{event_name: share}]
    expect: [{type: custom}]
"""


def test_minimal_mapping_gets_every_default():
    mapping = load_mapping_text(MINIMAL, "m.yaml")
    assert mapping.version == 1 and mapping.path == "m.yaml" and mapping.name is None
    source = mapping.source
    assert (source.format, source.pattern, source.time_format, source.timezone, source.site) == (
        "combined", None, None, "UTC", None)
    f = mapping.filter
    assert f.status == [(200, 204), (206, 206), (304, 304)] == defaults.STATUS
    assert f.methods == ["GET"]
    assert f.static_extensions == defaults.STATIC_EXTENSIONS and "woff2" in f.static_extensions
    assert f.exclude_bots is True and f.bot_patterns == [] and f.include_paths == [] and f.exclude_paths == []
    assert mapping.identity.user_id is None
    anonymous = mapping.identity.anonymous_id
    assert (anonymous.hmac, anonymous.key_env, anonymous.key_none, anonymous.template) == (
        ["{ip}", "{user_agent}"], "LOGMAP_KEY", False, None)
    c = mapping.context
    assert (c.page_url, c.page_referrer, c.page_title) == ("{url}", "{referrer}", None)
    assert (c.user_agent, c.truncated_ip, c.campaign, c.locale, c.region, c.custom_context) == (
        "{user_agent}", "{ip}", "utm", None, None, {})
    d = mapping.durations
    assert (d.source, d.unit, d.session_timeout_s, d.max_s) == ("next_event", "s", 1800.0, 1800.0)
    assert mapping.tests == []
    (rule,) = mapping.rules
    assert (rule.name, rule.type, rule.path, rule.index, rule.groups) == ("home", "home_page_view", "^/$", 0, [])
    assert rule.where == Where("m.yaml", 4, 5, "rules[0]")


def test_unnamed_rules_are_numbered_from_one():
    mapping = load_mapping_text(MINIMAL + "  - {type: search}\n")
    assert [r.name for r in mapping.rules] == ["home", "rule 2"]


def test_full_mapping_fills_the_model():
    mapping = load_mapping_text(FULL, "shop.yaml")
    assert (mapping.name, mapping.description) == ("shop", "every section written")
    assert mapping.source.time_format == "%Y-%m-%dT%H:%M:%S" and mapping.source.timezone == "Europe/Paris"
    f = mapping.filter
    assert f.status == [(200, 299), (304, 304), (400, 404)]
    assert f.methods == ["GET", "POST"] and f.static_extensions == ["js", "css"] and f.exclude_bots is False
    assert (f.bot_patterns, f.include_paths, f.exclude_paths) == (["(?i)uptime"], ["^/"], ["^/api/"])
    assert mapping.identity.user_id == "{query.uid}"
    assert mapping.identity.anonymous_id == AnonymousId(hmac=["{ip}"], key_env="SHOP_KEY",
                                                        where=Where("shop.yaml", 26, 5, "identity.anonymous_id.key"))
    c = mapping.context
    assert (c.page_url, c.page_referrer, c.page_title) == ("{url}", None, "{query.title}")  # `page` replaces
    assert c.user_agent is None and c.campaign == {"source": "{query.src}", "name": "{query.cmp}"}
    assert c.locale == "{query.lang|lower}"
    assert c.custom_context == {"ab": "{query.ab|int}", "tags": ["{query.t|split}"]}
    assert (mapping.durations.source, mapping.durations.session_timeout_s, mapping.durations.max_s) == (
        "none", 5400.0, 90.0)

    product, search, custom, feedback = mapping.rules
    assert product.type == "product_detail_page_view"  # from the YAML merge key
    assert product.groups == ["sku"]
    assert product.query == {"preview": QueryCondition(present=False), "color": QueryCondition(pattern="^(red|blue)$"),
                             "ref": QueryCondition(present=True)}
    assert product.methods == ["GET", "HEAD"] and product.status == [(200, 200)]
    assert product.fields == {"product_ids": ["{sku}", "{query.extra}"], "duration": 12}
    assert product.field_where["path"] == Where("shop.yaml", 37, 5, "rules[0].path")
    assert set(product.field_where) == {"type", "name", "path", "query", "method", "status", "product_ids", "duration"}
    assert search.fields == {"search": {"keywords": "{query.q|trim}",
                                        "filters": {"brand": "{query.brand}", "size": ["{query.s1}", "{query.s2}"]}}}
    assert custom.when == {"event_name": ["share", "send"], "event_params.method": {"regex": "^w"},
                           "user_id": {"null": False}}
    assert custom.fields == {"custom_action_name": "share_{query.via}"}
    assert feedback.fields == {"question_id": "q1", "result_type": "{query.r}", "value": 5}
    assert [t.name for t in mapping.tests] == ["a product", "test 2"]
    assert mapping.tests[0].lines == ["x"] and mapping.tests[1].rows == [{"event_name": "share"}]
    assert mapping.raw["x-common"] == {"type": "product_detail_page_view"}


def test_references_are_collected_for_a_later_check():
    mapping = load_mapping_text(FULL, "shop.yaml")
    by_key = {(r.where.key, r.name) for r in mapping.references}
    assert ("rules[0].product_ids[0]", "sku") in by_key
    assert ("rules[1].search.filters.size[1]", "query.s2") in by_key
    assert ("rules[2].when.event_params.method", "event_params.method") in by_key
    assert ("identity.anonymous_id.hmac[0]", "ip") in by_key
    assert ("context.custom_context.tags[0]", "query.t") in by_key
    sku = next(r for r in mapping.references if r.name == "sku")
    assert sku == Reference("sku", Where("shop.yaml", 41, 19, "rules[0].product_ids[0]"), 0)
    assert next(r for r in mapping.references if r.name == "ip").rule_index is None


def test_unknown_group_reference_is_not_a_load_error():
    # `{sku}` is neither a group of this rule's path nor a canonical field: only the source can tell.
    mapping = load_mapping_text(MINIMAL.replace("type: home_page_view}", "type: product_detail_page_view, "
                                                                        "product_ids: ['{sku}']}"))
    assert [r.name for r in mapping.references if r.rule_index == 0] == ["sku"]


def test_context_entries_can_be_switched_off():
    mapping = load_mapping_text(MINIMAL + "context: {page: false, truncated_ip: false, campaign: false}\n")
    c = mapping.context
    assert (c.page_url, c.page_referrer, c.page_title, c.truncated_ip, c.campaign) == (None,) * 5
    assert c.user_agent == "{user_agent}"


def test_regex_source_gets_the_default_time_format():
    text = "logmap: 1\nsource: {format: regex, pattern: '(?P<path>\\S+)'}\nrules: [{type: search}]\n"
    assert load_mapping_text(text).source.time_format == defaults.TIME_FORMAT


def test_status_and_methods_accept_a_single_value():
    mapping = load_mapping_text(MINIMAL + "filter: {status: '3xx', methods: post}\n")
    assert mapping.filter.status == [(300, 399)] and mapping.filter.methods == ["POST"]


EXPORT = """\
logmap: 1
source:
  format: parquet
  options:
    time: {column: event_timestamp, unit: us}
    page_url: '{event_params.page_location}'
    required: [event_name]
rules:
  - when: {event_name: view_item}
    type: product_detail_page_view
    product_ids: ['{items[].item_id}']
durations: {from: '{event_params.engagement_time_msec}', unit: ms}
"""


def test_export_source_keys_become_options():
    mapping = load_mapping_text(EXPORT, "ga4.yaml")
    assert mapping.source.format == "parquet" and mapping.source.time_format is None
    assert mapping.source.options == {"time": {"column": "event_timestamp", "unit": "us"},
                                      "page_url": "{event_params.page_location}", "required": ["event_name"]}
    assert mapping.rules[0].when == {"event_name": "view_item"}
    assert (mapping.durations.source, mapping.durations.unit) == ("{event_params.engagement_time_msec}", "ms")
    assert mapping.source.options and load_mapping_text(MINIMAL).source.options == {}


def test_export_keys_match_the_export_reader():
    exports = pytest.importorskip("logmap.sources.exports")
    assert set(defaults.EXPORT_FORMATS) == set(exports.FILE_ENDINGS)


def test_docs_tables_list_every_format_option_and_unit():
    """docs/mapping.md is written by hand; this keeps it true to defaults.py, the one source of these facts."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "mapping.md").read_text(encoding="utf-8")
    format_row = next(line for line in text.splitlines() if line.startswith("| `format` |"))
    options_row = next(line for line in text.splitlines() if line.startswith("| `options` |"))
    assert [name for name in defaults.FORMATS if f"`{name}`" not in format_row] == []
    assert [name for name in defaults.ACCESS_LOG_FORMATS
            if name not in ("auto", "regex") and f"| `{name}` |" not in text] == []  # those two have sections
    assert [key for key in defaults.EXPORT_OPTION_KEYS if f"`{key}`" not in options_row] == []
    assert all(unit in options_row for unit in defaults.TIME_UNITS)


def test_durations_in_seconds_agree_with_their_written_defaults():
    from logmap.mapping.values import parse_duration

    assert parse_duration(defaults.SESSION_TIMEOUT) == defaults.SESSION_TIMEOUT_S
    assert parse_duration(defaults.MAX_DURATION) == defaults.MAX_DURATION_S
