"""Every kind of mapping error stops the load with `file:line:column: key: sentence`, at the exact spot.

Convention: a problem with a *key* (unknown, not allowed for the type) points at the key; a problem with a
*value* (bad regex, template, status, duration, type name) points at where the value starts; a missing key points
at the mapping that should hold it.
"""

from __future__ import annotations

import pytest

from logmap.errors import MappingError
from logmap.mapping.loader import anonymous_key, key_variable
from logmap.sources import load_mapping, load_mapping_text

BASE = """\
logmap: 1
source:
  format: combined
rules:
  - name: product page
    path: '^/product/(?P<id>\\d+)'
    type: product_detail_page_view
    product_ids: ['{id}']
"""


def error_of(text: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapping_text(text, "m.yaml")
    return caught.value


CASES = [
    # YAML itself
    ("yaml syntax", "logmap: 1\nsource: {format: combined}\nrules: [\n", 4, 1, None, "not valid YAML"),
    ("yaml tab", "logmap: 1\nsource:\n\tformat: combined\n", 3, 1, None, "not valid YAML"),
    ("duplicate key", BASE + "    type: search\n", 9, 5, "rules[0].type", "duplicate key 'type'"),
    ("empty document", "# nothing\n", 1, 1, None, "the mapping is empty"),
    ("not a mapping", "- a\n- b\n", 1, 1, None, "expected a mapping, got a list"),
    # unknown keys, with suggestions and the list of allowed keys
    ("unknown top key", BASE + "filtr: {}\n", 9, 1, "filtr",
     "unknown key 'filtr' (did you mean 'filter'?); expected one of: logmap, name, description, source, filter"),
    ("unknown source key", BASE.replace("  format: combined\n", "  format: combined\n  tz: UTC\n"), 4, 3,
     "source.tz", "unknown key 'tz' (expected one of: format, pattern, time_format, timezone, fields, encoding, prefix, captures, site)"),
    ("unknown filter key", BASE + "filter:\n  stauts: [200]\n", 10, 3, "filter.stauts",
     "unknown key 'stauts' (did you mean 'status'?)"),
    ("unknown rule key", BASE + "    prodcut_ids: ['x']\n", 9, 5, "rules[0].prodcut_ids",
     "unknown key 'prodcut_ids' (did you mean 'product_ids'?); expected one of: name, path, query, method, status, "
     "when, type, duration, miso_id, product_group_ids, product_ids"),
    ("unknown rule key, nothing close", BASE + "    colour: red\n", 9, 5, "rules[0].colour",
     "unknown key 'colour' (expected one of: name, path"),
    ("unknown search key", BASE + "  - {type: search, search: {keyword: '{query.q}'}}\n", 9, 29,
     "rules[1].search.keyword", "unknown key 'keyword' (did you mean 'keywords'?)"),
    ("unknown hmac key", BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], salt: x}\n", 10, 34,
     "identity.anonymous_id.salt", "unknown key 'salt' (expected one of: hmac, key)"),
    # types and their fields
    ("field not allowed", BASE + "    revenue: '{query.total}'\n", 9, 5, "rules[0].revenue",
     "field 'revenue' is not allowed for type 'product_detail_page_view' "
     "(allowed: duration, miso_id, product_group_ids, product_ids)"),
    ("field not allowed, search", BASE + "  - name: search\n    type: search\n    revenue: 3\n", 11, 5,
     "rules[1].revenue", "field 'revenue' is not allowed for type 'search' (allowed: miso_id, search)"),
    ("unknown type, alias", BASE.replace("type: product_detail_page_view", "type: product_view"), 7, 11,
     "rules[0].type", "unknown interaction type 'product_view' (did you mean 'product_detail_page_view'?)"),
    ("unknown type, typo", BASE.replace("type: product_detail_page_view", "type: serach"), 7, 11,
     "rules[0].type", "unknown interaction type 'serach' (did you mean 'search'?)"),
    ("unknown type, nothing close", BASE.replace("type: product_detail_page_view", "type: zzz"), 7, 11,
     "rules[0].type", "unknown interaction type 'zzz' (one of: product_detail_page_view, search"),
    ("missing type", BASE + "  - {name: x, path: '^/x'}\n", 9, 5, "rules[1]", "missing required key 'type'"),
    ("custom needs its name", BASE + "  - {type: custom, path: '^/x'}\n", 9, 5, "rules[1]",
     "type 'custom' requires 'custom_action_name'"),
    ("no rules", "logmap: 1\nsource: {format: combined}\nrules: []\n", 3, 8, "rules", "the list must not be empty"),
    ("missing rules", "logmap: 1\nsource: {format: combined}\n", 1, 1, None, "missing required key 'rules'"),
    # regexes, compiled by polars
    ("bad rule regex", BASE.replace("'^/product/(?P<id>\\d+)'", "'^/product/(?P<id>\\d+'"), 6, 11,
     "rules[0].path", "invalid regular expression '^/product/(?P<id>\\\\d+' in rule 'product page': unclosed group"),
    ("look-around", BASE.replace("'^/product/(?P<id>\\d+)'", "'(?<=x)y'"), 6, 11, "rules[0].path",
     "look-around, including look-ahead and look-behind, is not supported"),
    ("back-reference", BASE.replace("'^/product/(?P<id>\\d+)'", "'(a)\\1'"), 6, 11, "rules[0].path",
     "backreferences are not supported"),
    ("query regex", BASE + "    query: {sku: '[a-'}\n", 9, 18, "rules[0].query.sku",
     "invalid regular expression '[a-' in rule 'product page'"),
    ("exclude_paths", BASE + "filter:\n  exclude_paths: ['^/api/', '(?=x)']\n", 10, 29, "filter.exclude_paths[1]",
     "invalid regular expression '(?=x)'"),
    ("bot_patterns", BASE + "filter:\n  bot_patterns: '(?i)bot('\n", 10, 17, "filter.bot_patterns",
     "invalid regular expression"),
    ("when regex", BASE + "  - type: search\n    when: {event_name: {regex: '*x'}}\n", 10, 32,
     "rules[1].when.event_name.regex", "in rule 'rule 2': repetition operator missing expression"),
    ("source pattern", "logmap: 1\nsource:\n  format: regex\n  pattern: '(?P<ip>\\S+'\nrules: [{type: search}]\n",
     4, 12, "source.pattern", "invalid regular expression"),
    ("regex without pattern", "logmap: 1\nsource:\n  format: regex\nrules: [{type: search}]\n", 3, 3, "source",
     "format 'regex' needs a 'pattern' with named groups"),
    ("regex without groups", "logmap: 1\nsource: {format: regex, pattern: '^(\\S+) '}\nrules: [{type: search}]\n",
     2, 34, "source.pattern", "the pattern has no named groups"),
    ("pattern with a preset", BASE.replace("format: combined", "format: combined\n  pattern: '(?P<x>.)'"), 4, 3,
     "source.pattern", "'pattern' applies to format 'regex' only"),
    # source values
    ("unknown format", BASE.replace("format: combined", "format: combind"), 3, 11, "source.format",
     "unknown format 'combind' (did you mean 'combined'?); expected one of: combined, common, vhost_combined, "),
    ("format name shape", BASE.replace("format: combined", "format: Combined Log"), 3, 11, "source.format",
     "bad format 'Combined Log'"),
    ("options on a log format", BASE.replace("format: combined", "format: combined\n  options: {time: t}"), 4, 3,
     "source.options", "'options' applies to export formats (parquet, ndjson, csv), not to 'combined'"),
    ("time_format on an export", BASE.replace("format: combined", "format: parquet\n  time_format: '%s'"),
     4, 3, "source.time_format", "'time_format' applies to format 'regex' only ('parquet': use options: {time:"),
    ("export time unit", BASE.replace("format: combined", "format: parquet\n  options: {time: {column: ts, unit: h}}"),
     4, 38, "source.options.time.unit", "expected one of: s, ms, us, ns; got 'h'"),
    ("unknown export option", BASE.replace("format: combined", "format: csv\n  options: {sep: ';'}"), 4, 13,
     "source.options.sep", "unknown key 'sep' (expected one of: time, page_url"),
    ("duration unit without a column", BASE + "durations: {unit: ms}\n", 9, 13, "durations.unit",
     "'unit' applies when 'from' names a column"),
    ("time zone", BASE.replace("format: combined", "format: combined\n  timezone: Mars/Olympus"), 4, 13,
     "source.timezone", "unknown time zone 'Mars/Olympus'"),
    # templates: the error points at the template (a list item or the key's value)
    ("unknown converter", BASE.replace("['{id}']", "['{id|intt}']"), 8, 19, "rules[0].product_ids[0]",
     "bad template '{id|intt}': unknown converter 'intt' (known: field, float, int, lower, split, trim, upper, urldecode) "
     "(at character 5)"),
    ("unbalanced brace", BASE + "  - {type: search, search: {keywords: '{query.q'}}\n", 9, 39,
     "rules[1].search.keywords", "unclosed '{'"),
    ("empty reference", BASE + "identity: {user_id: 'u-{}'}\n", 9, 21, "identity.user_id", "empty reference"),
    ("context template", BASE + "context:\n  page: {url: '{url|lowr}'}\n", 10, 15, "context.page.url",
     "unknown converter 'lowr'"),
    ("campaign", BASE + "context: {campaign: utmm}\n", 9, 21, "context.campaign", "bad campaign 'utmm': write utm"),
    ("page key", BASE + "context: {page: {url: '{url}', tittle: x}}\n", 9, 32, "context.page.tittle",
     "unknown key 'tittle' (did you mean 'title'?); expected one of: url, referrer, title"),
    # statuses, durations, methods
    ("bad status", BASE + "filter:\n  status: [200, 'abc']\n", 10, 17, "filter.status[1]", "bad status 'abc'"),
    ("status out of range", BASE + "filter: {status: 700}\n", 9, 18, "filter.status", "bad status 700"),
    ("empty status range", BASE + "filter: {status: ['299-200']}\n", 9, 19, "filter.status[0]",
     "status range '299-200' is empty"),
    ("rule status", BASE + "    status: 2XX\n", 9, 13, "rules[0].status", "bad status '2XX'"),
    ("bad duration", BASE + "durations: {max: 5 minutes}\n", 9, 18, "durations.max", "bad duration '5 minutes'"),
    ("zero duration", BASE + "durations: {session_timeout: 0s}\n", 9, 30, "durations.session_timeout",
     "must be longer than zero"),
    ("bad durations.from", BASE + "durations: {from: previous}\n", 9, 19, "durations.from",
     "expected next_event, pings, none or a template"),
    ("pings without pings:", BASE + "durations: {from: pings}\n", 9, 19, "durations.from",
     "'from: pings' needs 'pings: {page:"),
    ("pings: without from: pings", BASE + "durations: {pings: {page: '{ip}'}}\n", 9, 13, "durations.pings",
     "'pings' applies with 'from: pings', not with 'next_event'"),
    ("pings without page", BASE + "durations: {from: pings, pings: {heartbeat: 5s}}\n", 9, 33, "durations.pings",
     "missing required key 'page'"),
    ("zero heartbeat", BASE + "durations: {from: pings, pings: {page: '{ip}', heartbeat: 0s}}\n", 9, 59,
     "durations.pings.heartbeat", "must be longer than zero"),
    ("method", BASE + "filter: {methods: [GET, 'P OST']}\n", 9, 25, "filter.methods[1]",
     "does not have the expected form"),
    # identity
    ("key written inline", BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: s3cret}\n", 10, 39,
     "identity.anonymous_id.key", "never write the key itself"),
    ("hmac needs templates", BASE + "identity:\n  anonymous_id: {hmac: []}\n", 10, 24, "identity.anonymous_id.hmac",
     "the list must not be empty"),
    # version
    ("version", BASE.replace("logmap: 1", "logmap: 2"), 1, 9, "logmap",
     "unsupported mapping language version 2: this logmap reads version 1"),
    ("version missing", BASE.replace("logmap: 1\n", ""), 1, 1, None, "missing required key 'logmap'"),
    # tests
    ("test without input", BASE + "tests:\n  - expect: {type: search}\n", 10, 5, "tests[0]",
     "a test case needs its input"),
]


@pytest.mark.parametrize("text, line, column, key, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_position_key_and_reason(text, line, column, key, fragment):
    error = error_of(text)
    assert (error.line, error.column, error.key) == (line, column, key), error.reason
    assert fragment in error.reason
    prefix = f"m.yaml:{line}:{column}:" + (f" {key}:" if key else "")
    assert str(error).startswith(prefix)


def test_the_first_error_in_the_document_is_reported():
    text = BASE.replace("format: combined", "format: combined\n  tz: UTC") + "    revenue: 3\nfiltr: {}\n"
    assert error_of(text).key == "source.tz"


def test_a_secret_written_as_key_is_not_echoed():
    error = error_of(BASE + "identity:\n  anonymous_id: {hmac: ['{ip}'], key: 'hunter2-very-secret'}\n")
    assert "hunter2" not in str(error)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MappingError, match="mapping file not found"):
        load_mapping(tmp_path / "nope.yaml")
    with pytest.raises(MappingError, match="is a directory"):
        load_mapping(tmp_path)


def test_errors_carry_the_file_name(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(BASE + "    revenue: 3\n")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}:9:5: rules[0].revenue: field 'revenue' is not allowed")


class TestAnonymousKey:
    def test_missing_or_empty_key_stops_with_the_key_position(self):
        mapping = load_mapping_text(BASE + "identity:\n  anonymous_id:\n    hmac: ['{ip}']\n    key: env:SHOP_KEY\n",
                                    "m.yaml")
        assert key_variable(mapping) == "SHOP_KEY"
        with pytest.raises(MappingError) as caught:
            anonymous_key(mapping, None)
        assert (caught.value.line, caught.value.column, caught.value.key) == (12, 5, "identity.anonymous_id.key")
        assert "environment variable SHOP_KEY is not set" in caught.value.reason
        with pytest.raises(MappingError, match="SHOP_KEY is not set or empty"):
            anonymous_key(mapping, "")

    def test_the_key_is_returned_and_never_in_messages(self):
        mapping = load_mapping_text(BASE, "m.yaml")
        assert anonymous_key(mapping, "super-secret-value") == b"super-secret-value"

    def test_default_key_missing_points_at_the_document(self):
        with pytest.raises(MappingError) as caught:
            anonymous_key(load_mapping_text(BASE, "m.yaml"), None)
        assert (caught.value.line, caught.value.column) == (1, 1) and "LOGMAP_KEY" in caught.value.reason

    @pytest.mark.parametrize("identity", [
        "identity:\n  anonymous_id: {hmac: ['{ip}'], key: none}\n",
        "identity:\n  anonymous_id: '{cookie}'\n",
        "identity:\n  anonymous_id: false\n  user_id: '{user}'\n",
    ])
    def test_no_key_needed(self, identity):
        mapping = load_mapping_text(BASE + identity)
        assert key_variable(mapping) is None and anonymous_key(mapping, None) is None
