"""One test per mapping feature, through the real pipeline: a few log lines in, records or drop reasons out."""

from __future__ import annotations

import hashlib
import hmac
import textwrap

import pytest
from support import TEST_KEY, iter_records

from logmap.ledger import Ledger
from logmap.pipeline.stages import Prepared, stream_stage
from logmap.sources import load_mapping_text, read_source

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def line(target: str, *, method: str = "GET", status: int = 200, ip: str = "203.0.113.9", ua: str = UA,
         user: str = "-", time: str = "01/Mar/2024:10:00:00 +0000", referrer: str = "-") -> str:
    return f'{ip} - {user} [{time}] "{method} {target} HTTP/1.1" {status} 512 "{referrer}" "{ua}"'


def run(tmp_path, mapping_yaml: str, lines: list[str]):
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    mapping = load_mapping_text(textwrap.dedent(mapping_yaml), "m.yaml")
    ledger = Ledger()
    records = [r for frame in iter_records([str(log)], mapping, ledger=ledger) for r in frame.to_dicts()]
    assert ledger.balanced
    records.sort(key=lambda r: r["_line"])
    return records, ledger


BASE = """
logmap: 1
source: {format: combined, site: 'https://shop.example.com/'}
"""
ANY_PAGE = """
rules:
  - {name: any page, path: '^/', type: home_page_view}
"""


def test_filter_reasons_in_order(tmp_path):
    mapping = BASE + """
filter:
  status: ['2xx']
  methods: [GET]
  exclude_static: [js]
  bot_patterns: ['(?i)uptime']
  include_paths: ['^/(shop|static)']
  exclude_paths: ['^/shop/admin']
""" + ANY_PAGE
    _, ledger = run(tmp_path, mapping, [
        line("/shop/a", status=404),                                       # filtered:status
        line("/shop/a", method="POST"),                                    # filtered:method
        line("/static/app.js"),                                            # filtered:static (listed extension)
        line("/static/app.css"),                                           # css is not in this mapping's list
        line("/shop/a", ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        line("/shop/a", ua="UptimeRobot/2.0"),                             # filtered:bot by pattern
        line("/blog/post"),                                                # filtered:path (not included)
        line("/shop/admin/users"),                                         # filtered:path (excluded)
        line("/shop/a"),                                                   # kept
    ])
    assert dict(ledger.dropped) == {"filtered:status": 1, "filtered:method": 1, "filtered:static": 1,
                                    "filtered:bot": 2, "filtered:path": 2}
    assert ledger.emitted == 2


def test_first_match_wins_and_conditions_combine(tmp_path):
    mapping = BASE + """
filter: {methods: [GET, POST], status: [200, 201]}
rules:
  - {name: created, path: '^/cart$', status: 201, type: add_to_cart, product_ids: '{query.sku}'}
  - {name: post only, path: '^/cart$', method: POST, type: remove_from_cart, product_ids: '{query.sku}'}
  - {name: sku present, path: '^/cart$', query: {sku: true}, type: product_detail_page_view, product_ids: '{query.sku}'}
  - {name: sku absent, path: '^/cart$', query: {sku: false}, type: home_page_view}
  - {name: sku regex, path: '^/p$', query: {sku: '^A-\\d+$'}, type: product_detail_page_view, product_ids: '{query.sku}'}
"""
    records, ledger = run(tmp_path, mapping, [
        line("/cart?sku=1", method="POST", status=201),
        line("/cart?sku=2", method="POST"),
        line("/cart?sku=3"),
        line("/cart"),
        line("/p?sku=A-7"),
        line("/p?sku=B-7"),
    ])
    assert [(r["type"], r["product_ids"]) for r in records] == [
        ("add_to_cart", ["1"]), ("remove_from_cart", ["2"]), ("product_detail_page_view", ["3"]),
        ("home_page_view", None), ("product_detail_page_view", ["A-7"])]
    assert ledger.dropped == {"unmatched": 1}
    assert ledger.per_rule == {"created": 1, "post only": 1, "sku present": 1, "sku absent": 1, "sku regex": 1}


def test_every_field_shape_from_templates(tmp_path):
    mapping = BASE + """
rules:
  - name: search
    path: '^/search$'
    type: search
    search: {keywords: '{query.q|trim|lower}', filters: {size: ['{query.size}', 'all'], color: '{query.c|split:;}'}}
  - {name: rate, path: '^/rate/(?P<id>\\w+)$', type: rate, product_ids: ['sku-{id|upper}'], rating: '{query.stars}'}
  - name: checkout
    path: '^/done$'
    type: checkout
    product_ids: '{query.ids|split}'
    quantities: '{query.qty|split}'
    revenue: '{query.total|float}'
  - {name: custom, path: '^/share$', type: custom, custom_action_name: 'share:{query.via}', miso_id: '{query.m}'}
  - {name: feedback, path: '^/fb$', type: feedback, question_id: q1, result_type: answer, value: '{query.v|urldecode}'}
"""
    records, _ = run(tmp_path, mapping, [
        line("/search?q=+Red%20Shoes+&size=42&c=red;blue"),
        line("/rate/ab1?stars=4.5"),
        line("/done?ids=a,b&qty=1,2&total=19.90"),
        line("/share?via=mail&m=123e4567-e89b-12d3-a456-426614174000"),
        line("/fb?v=very%2520good"),
    ])
    search, rate, checkout, custom, feedback = records
    assert search["search.keywords"] == "red shoes"
    assert search["search.filters.size"] == ["42", "all"] and search["search.filters.color"] == ["red", "blue"]
    assert rate["product_ids"] == ["sku-AB1"] and rate["rating"] == 4.5
    assert checkout["product_ids"] == ["a", "b"] and checkout["quantities"] == [1.0, 2.0]
    assert checkout["revenue"] == pytest.approx(19.9)
    assert custom["custom_action_name"] == "share:mail"
    assert custom["miso_id"] == "123e4567-e89b-12d3-a456-426614174000"
    # query values are decoded once (%2520 → %20); |urldecode decodes again
    assert feedback["question_id"] == "q1" and feedback["value"] == "very good"


def test_conversion_failure_is_invalid_not_silent(tmp_path):
    mapping = BASE + """
rules:
  - {path: '^/cart$', type: add_to_cart, product_ids: '{query.sku}', quantities: '{query.qty|int}'}
"""
    records, ledger = run(tmp_path, mapping, [line("/cart?sku=1&qty=2"), line("/cart?sku=1&qty=lots")])
    assert [r["quantities"] for r in records] == [[2.0]]
    assert ledger.dropped == {"invalid:quantities": 1}


def test_identity_user_id_hmac_and_plain_templates(tmp_path):
    mapping = BASE + ANY_PAGE + "identity: {user_id: 'u-{user}'}\n"
    records, _ = run(tmp_path, mapping, [line("/", user="alice"), line("/")])
    expected = hmac.new(TEST_KEY.encode(), f"203.0.113.9\x1f{UA}".encode(), hashlib.sha256).hexdigest()
    assert [r["user_id"] for r in records] == ["u-alice", None]
    assert [r["anonymous_id"] for r in records] == [expected, expected]
    plain = BASE + ANY_PAGE + "identity: {anonymous_id: '{ip}'}\n"
    records, _ = run(tmp_path, plain, [line("/")])
    assert records[0]["anonymous_id"] == "203.0.113.9"
    unkeyed = BASE + ANY_PAGE + "identity: {anonymous_id: {hmac: ['{ip}'], key: none}}\n"
    records, _ = run(tmp_path, unkeyed, [line("/")])
    assert records[0]["anonymous_id"] == hashlib.sha256(b"203.0.113.9").hexdigest()


def test_context_entries(tmp_path):
    mapping = BASE + ANY_PAGE + """
context:
  page: {url: '{url}', referrer: '{referrer}', title: 'Shop {path}'}
  locale: '{query.lang}'
  region: eu
  campaign: {source: '{referrer_query.src}', name: 'fixed'}
  custom_context: {status: '{status}', bytes: '{bytes}', lang: '{query.lang|upper}'}
"""
    records, _ = run(tmp_path, mapping, [
        line("/x?lang=fr", referrer="https://news.example/?src=letter"),
        line("/y", ip="2001:db8::1"),
    ])
    first, ipv6 = records
    assert first["context.page.url"] == "https://shop.example.com/x?lang=fr"
    assert first["context.page.title"] == "Shop /x" and first["context.locale"] == "fr"
    assert first["context.region"] == "eu"
    assert (first["context.campaign.source"], first["context.campaign.name"]) == ("letter", "fixed")
    assert first["context.custom_context.status"] == 200 and first["context.custom_context.lang"] == "FR"
    assert first["context.truncated_ip"] == "203.0.113.0"
    assert ipv6["context.truncated_ip"] is None  # the API's field is ipv4: IPv6 is left out, never sent raw


def test_utm_campaign_and_disabled_context(tmp_path):
    records, _ = run(tmp_path, BASE + ANY_PAGE, [line("/?utm_source=nl&utm_medium=email&utm_campaign=spring&utm_term=t&utm_content=c")])
    r = records[0]
    assert [r[f"context.campaign.{k}"] for k in ("source", "medium", "name", "term", "content")] == [
        "nl", "email", "spring", "t", "c"]
    off = BASE + ANY_PAGE + "context: {page: false, user_agent: false, truncated_ip: false, campaign: false}\n"
    records, _ = run(tmp_path, off, [line("/?utm_source=nl")])
    assert not any(v is not None for k, v in records[0].items() if k.startswith("context."))


def test_timezone_for_timestamps_without_offset(tmp_path):
    mapping = """
logmap: 1
source:
  format: regex
  pattern: '^(?P<ip>\\S+) \\[(?P<time>[^\\]]+)\\] (?P<method>\\S+) (?P<target>\\S+) (?P<status>\\d+)$'
  time_format: '%Y-%m-%d %H:%M:%S'
  timezone: Europe/Paris
filter: {exclude_bots: false}
rules:
  - {path: '^/$', type: home_page_view}
identity: {anonymous_id: '{ip}'}
"""
    records, _ = run(tmp_path, mapping, ["1.2.3.4 [2024-03-01 10:00:00] GET / 200"])
    assert records[0]["timestamp"].isoformat() == "2024-03-01T09:00:00+00:00"


def test_rules_keep_the_row_order_and_list_dropped_rows_unmatched_first_then_rule_by_rule(tmp_path):
    mapping = load_mapping_text(textwrap.dedent(BASE + """
rules:
  - {name: cart, path: '^/cart$', type: add_to_cart, product_ids: '{query.sku}', quantities: '{query.qty|int}'}
  - {name: buy, path: '^/buy$', type: checkout, product_ids: '{query.sku}', revenue: '{query.total|float}'}
"""), "m.yaml")
    targets = ["/buy?sku=1&total=x", "/cart?sku=2&qty=x", "/nothing", "/buy?sku=3&total=9.5", "/cart?sku=4&qty=1",
               "/cart?sku=5&qty=y", "/other"]
    log = tmp_path / "access.log"
    log.write_text("\n".join(line(t) for t in targets) + "\n")
    chunk = next(iter(read_source([str(log)], mapping.source)))
    alive, dropped = stream_stage(Prepared(mapping, [str(log)], key=TEST_KEY), chunk)
    assert alive["_line"].to_list() == [4, 5]  # in input order, whatever their rules
    assert alive["r:product_ids"].to_list() == [["3"], ["4"]] and alive["r:revenue"].to_list() == [9.5, None]
    # as rejects have always listed them: unmatched rows first, then the first rule's, then the second's
    assert list(zip(dropped["_line"], dropped["_drop"])) == [
        (3, "unmatched"), (7, "unmatched"), (2, "invalid:quantities"), (6, "invalid:quantities"),
        (1, "invalid:revenue")]
