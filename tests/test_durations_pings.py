"""`durations: {from: pings}`: a page view's engaged time from its pings (Snowplow's model), else the next event.

Pings are no records: each is counted as `merged:page_ping` and the ledger balances, however the pings of one page
view are spread over chunks and buckets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import convert, read_batch

from logmap.errors import UnknownFieldError
from logmap.pipeline.runner import RunOptions
from logmap.pipeline.stages import Prepared
from logmap.sources import load_mapping_text

MAPPING = """\
logmap: 1
source:
  format: ndjson
  options: {time: {column: ts}, page_url: '{url}'}
identity: {anonymous_id: '{uid}'}
rules:
  - {name: page, when: {event: page_view}, path: '^/p/(?P<id>[a-z0-9]+)', type: product_detail_page_view, product_ids: ['{id}']}
  - {name: cart, when: {event: add}, type: add_to_cart, product_ids: ['{sku?}']}
durations:
  from: pings
  pings: {when: {event: ping}, page: '{pv?}'%s}
  max: %s
"""


def event(uid: str, ts: str, event: str, pv: str | None = None, url: str = "https://s.example/p/a", **more) -> dict:
    row = {"uid": uid, "ts": f"2024-03-01T10:{ts}Z", "event": event, "url": url, **more}
    return {**row, "pv": pv} if pv is not None else row


def run(tmp_path: Path, rows: list[dict], pings_extra: str = "", max_: str = "30m", **options):
    tmp_path.mkdir(exist_ok=True)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING % (pings_extra, max_))
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = convert([str(source)], mapping, tmp_path / "out", options=RunOptions(**options) if options else None)
    records = [r for path in sorted((tmp_path / "out").glob("interactions-*")) for r in read_batch(path)]
    return result, records


def test_engaged_time_is_snowplows_and_duplicate_pings_count_once(tmp_path):
    rows = [event("u1", "00:00", "page_view", "pv1"),
            event("u1", "00:12", "ping", "pv1"), event("u1", "00:13", "ping", "pv1"),   # one 10 s window
            event("u1", "00:25", "ping", "pv1"), event("u1", "00:41", "ping", "pv1"),
            event("u1", "09:00", "page_view", "pv2", url="https://s.example/p/b"),
            event("u1", "09:20", "add", "pv2", sku="b")]
    result, records = run(tmp_path, rows)
    assert [r["duration"] for r in records[:2]] == [10 * (3 - 1) + 5, 20]   # 3 windows; pv2: no pings, next event
    ledger = result.ledger.to_dict()
    assert ledger["dropped"] == {"merged:page_ping": 4} and ledger["emitted"] == 3 and ledger["balanced"]


def test_heartbeat_min_visit_and_max(tmp_path):
    rows = [event("u1", "00:00", "page_view", "pv1")] + [event("u1", f"{m:02d}:00", "ping", "pv1") for m in (1, 2, 3)]
    _, records = run(tmp_path, rows, ", heartbeat: 1m, min_visit: 30s")
    assert records[0]["duration"] == 60 * 2 + 30
    _, records = run(tmp_path / "capped", rows, ", heartbeat: 1m, min_visit: 30s", max_="100s")
    assert records[0]["duration"] == 100


def test_pings_of_another_visitor_or_page_or_without_page_do_not_count(tmp_path):
    rows = [event("u1", "00:00", "page_view", "pv1"), event("u2", "00:10", "ping", "pv1"),
            event("u1", "00:20", "ping", "pv-other"), event("u1", "00:30", "ping"),
            event("u1", "01:00", "add", "pv1", sku="a")]
    result, records = run(tmp_path, rows)
    assert records[0]["duration"] == 60          # the next record (pings are no events of the gap either)
    assert result.ledger.to_dict()["dropped"] == {"merged:page_ping": 3}


@pytest.mark.parametrize("options", [{"chunk_bytes": 300}, {"chunk_bytes": 300, "buckets": 4}])
def test_pings_spread_over_chunks_and_buckets_meet_in_their_visitors_bucket(tmp_path, options):
    rows = []
    for user in range(12):
        uid = f"u{user}"
        rows.append(event(uid, "00:00", "page_view", f"{uid}-pv"))
    for second in range(10, 60, 10):                 # each visitor's pings after every page view, many chunks later
        rows += [event(f"u{user}", f"00:{second}", "ping", f"u{user}-pv") for user in range(12)]
    result, records = run(tmp_path, rows, **options)
    assert len(records) == 12 and {r["duration"] for r in records} == {10 * (5 - 1) + 5}
    ledger = result.ledger.to_dict()
    assert ledger["dropped"] == {"merged:page_ping": 60} and ledger["balanced"]


def test_a_misspelled_page_or_ping_field_is_named_at_its_key(tmp_path):
    source = tmp_path / "e.ndjson"
    source.write_text(json.dumps(event("u1", "00:00", "page_view", "pv1")) + "\n")
    text = (MAPPING % ("", "30m")).replace("'{pv?}'", "'{pvv}'")
    with pytest.raises(UnknownFieldError, match="durations.pings.page: unknown field 'pvv'"):
        Prepared(load_mapping_text(text, "m.yaml"), [str(source)])
    text = (MAPPING % ("", "30m")).replace("{event: ping}", "{evnt: ping}")
    with pytest.raises(UnknownFieldError, match="durations.pings.when: unknown field 'evnt'"):
        Prepared(load_mapping_text(text, "m.yaml"), [str(source)])
