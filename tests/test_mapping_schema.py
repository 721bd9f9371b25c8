"""The mapping JSON Schema: valid itself, in sync with its builder and the API's types, accepts the design's
example, rejects typos and fields a type does not allow, and documents every key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from logmap.mapping import defaults
from logmap.mapping.positions import load_located
from logmap.mapping.schema import mapping_schema, schema_path
from logmap.mapping.schema_build import ALL_RULE_FIELDS, build_schema
from logmap.records.types import INTERACTION_TYPES, REQUIRED_FIELDS, RULE_FIELDS

ROOT = Path(__file__).resolve().parents[1]

# The example of /work/shared/DESIGN.md ("Mapping language — a starting point"), verbatim.
DESIGN_EXAMPLE = r"""
logmap: 1                              # language version
source:
  format: combined                     # preset; or `regex` with `pattern:` using named groups
  timezone: UTC                        # for formats whose timestamps carry no offset
  site: https://shop.example.com       # base for absolute page URLs built from paths
filter:
  status: [200, 304]
  methods: [GET]
  exclude_static: true                 # default extension list, or a list of your own
  exclude_bots: true                   # user-agent based; extra patterns allowed
  exclude_paths: ['^/api/', '^/admin']
identity:
  user_id: '{user}'                    # '-' and empty mean absent
  anonymous_id:
    hmac: ['{ip}', '{user_agent}']     # keyed hash: a bare hash of an IPv4 address is reversible
    key: env:LOGMAP_SALT
context:
  page: {url: '{url}', referrer: '{referrer}'}
  user_agent: '{user_agent}'
  truncated_ip: '{ip}'                 # last octet zeroed; IPv6 has no place in this field and is left out
  campaign: utm                        # utm_source/medium/campaign/term/content of the page URL
rules:                                 # first match wins; a row matching none is `unmatched`
  - name: product page
    path: '^/product/(?P<product_id>\d+)'
    type: product_detail_page_view
    product_ids: ['{product_id}']
  - name: category
    path: '^/category/(?P<cat>[^/?]+)'
    type: category_page_view
    category: ['{cat}']
  - name: search
    path: '^/search$'
    type: search
    search: {keywords: '{query.q}'}
  - name: add to cart
    path: '^/cart/add$'
    type: add_to_cart
    product_ids: ['{query.sku}']
    quantities: ['{query.qty|int}']
  - {name: home, path: '^/$', type: home_page_view}
durations:
  from: next_event                     # next record of the same visitor
  session_timeout: 30m                 # a longer gap ends the session: the last page gets no duration
  max: 30m
tests:                                 # run by a `test` command: lines in, records or drop reasons out
  - line: '1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET /product/42 HTTP/1.1" 200 512 "-" "Mozilla/5.0"'
    expect: {type: product_detail_page_view, product_ids: ['42']}
  - line: '1.2.3.4 - - [01/Mar/2024:10:00:01 +0000] "GET /app.js HTTP/1.1" 200 512 "-" "Mozilla/5.0"'
    expect: {dropped: 'filtered:static'}
"""

EXPORT_RULE = """
logmap: 1
source: {format: ga4_bigquery}
rules:
  - name: product view
    when:
      event_name: view_item
      platform: [WEB, IOS]
      event_params.page_location: {regex: '/product/'}
      user_id: {null: false}
      device.category: {not: {regex: '^bot'}}
    type: product_detail_page_view
    product_ids: ['{items[].item_id}']
"""


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(mapping_schema())


def errors_of(document: Any) -> list[jsonschema.ValidationError]:
    return list(validator().iter_errors(document))


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(mapping_schema())
    assert mapping_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_shipped_file_is_what_the_builder_makes():
    # Regenerate with: python -m logmap.mapping.schema_build > logmap/mapping/mapping.schema.json
    assert json.loads(schema_path().read_text("utf-8")) == build_schema()


def test_the_design_example_is_valid():
    assert errors_of(yaml.safe_load(DESIGN_EXAMPLE)) == []


def test_shipped_mappings_are_valid_and_point_editors_at_the_schema():
    for path in sorted((ROOT / "mappings").glob("*.yaml")):
        assert errors_of(yaml.safe_load(path.read_text())) == [], path


def test_when_conditions_and_future_formats_are_accepted():
    # (PyYAML's safe_load would turn the key `null` into None; the loader keeps keys as written.)
    assert errors_of(load_located(EXPORT_RULE, "m.yaml").value) == []


@pytest.mark.parametrize("edit, where", [
    (lambda d: d.update(filtr={}), []),
    (lambda d: d["source"].update(fromat="combined"), ["source"]),
    (lambda d: d["filter"].update(exclude_bot=True), ["filter"]),
    (lambda d: d["rules"][0].update(prodct_ids=["x"]), ["rules", 0]),
    (lambda d: d["rules"][2]["search"].update(keyword="{query.q}"), ["rules", 2, "search"]),
    (lambda d: d["identity"]["anonymous_id"].update(salt="x"), ["identity", "anonymous_id"]),
    (lambda d: d["durations"].update(timeout="30m"), ["durations"]),
    (lambda d: d["tests"][0]["expect"].update(prodcut_ids=["42"]), ["tests", 0, "expect"]),
])
def test_typos_are_rejected_everywhere(edit, where):
    document = yaml.safe_load(DESIGN_EXAMPLE)
    edit(document)
    assert errors_of(document), "a misspelt key must be an error"


@pytest.mark.parametrize("value", ["combined", "ga4_bigquery", "segment:track"])
def test_format_names_are_open_but_shaped(value):
    document = yaml.safe_load(DESIGN_EXAMPLE)
    document["source"]["format"] = value
    assert errors_of(document) == []
    document["source"]["format"] = "Combined Log"
    assert errors_of(document)


def test_known_formats_are_listed_for_editors():
    format_schema = mapping_schema()["$defs"]["source"]["properties"]["format"]
    assert format_schema["examples"] == list(defaults.FORMATS)


@pytest.mark.parametrize("type_name", INTERACTION_TYPES)
def test_each_type_allows_exactly_its_fields(type_name):
    for field in ALL_RULE_FIELDS:
        rule = {"type": type_name, field: "{x}" if field != "search" else {"keywords": "{q}"}}
        rule.update({name: "{y}" for name in REQUIRED_FIELDS[type_name] if name != field})
        document = {"logmap": 1, "source": {"format": "combined"}, "rules": [rule]}
        allowed = field in RULE_FIELDS[type_name]
        assert (errors_of(document) == []) is allowed, (type_name, field)


def test_types_enum_lists_the_29_types():
    assert mapping_schema()["$defs"]["rule"]["properties"]["type"]["enum"] == list(INTERACTION_TYPES)
    assert len(INTERACTION_TYPES) == 29


def test_custom_requires_custom_action_name():
    document = {"logmap": 1, "source": {"format": "combined"}, "rules": [{"type": "custom"}]}
    assert [e.validator for e in errors_of(document)] == ["required"]


def _walk(node: Any, path: str = "#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_every_object_is_closed_and_every_key_is_described():
    for path, node in _walk(mapping_schema()):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for name, sub in node["properties"].items():
                assert isinstance(sub, dict) and sub.get("description"), f"{path}/properties/{name}"


def test_every_key_of_the_reference_is_in_the_schema():
    defs = mapping_schema()["$defs"]
    assert set(mapping_schema()["properties"]) == {
        "logmap", "name", "description", "source", "filter", "rules", "identity", "context", "durations", "dedupe",
        "tests"}
    assert {"format", "pattern", "time_format", "timezone", "site"} <= set(defs["source"]["properties"])
    assert set(defs["filter"]["properties"]) == {
        "status", "methods", "exclude_static", "exclude_bots", "exclude_empty_user_agents", "bot_patterns",
        "include_paths", "exclude_paths", "drop"}
    assert {"name", "path", "query", "method", "status", "when", "type", *ALL_RULE_FIELDS} == set(
        defs["rule"]["properties"])
    assert set(defs["context"]["properties"]) == {
        "page", "user_agent", "truncated_ip", "campaign", "locale", "region", "custom_context"}
    assert set(defs["durations"]["properties"]) == {"from", "unit", "session_timeout", "max", "pings"}
    assert set(defs["durations"]["properties"]["pings"]["properties"]) == {"page", "when", "heartbeat", "min_visit"}


def test_type_aliases_suggest_real_types():
    assert set(defaults.TYPE_ALIASES.values()) <= set(INTERACTION_TYPES)


def test_every_alternative_has_a_message_for_users():
    # anyOf/oneOf failures otherwise read "is not valid under any of the given schemas".
    for path, node in _walk(mapping_schema()):
        if "anyOf" in node or "oneOf" in node:
            assert node.get("errorMessage"), path
