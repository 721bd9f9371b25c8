"""Each shipped export mapping converts its fixtures unchanged: golden records, an exact ledger that matches what
the fixture generators counted (independently of logmap), and every record valid against the API schema.
Fixtures: ``fixtures/exports/<folder>/`` (provenance and licence in each folder's SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apiserver import schema_errors
from support import EXPORT_FIXTURES, TEST_KEY, convert, read_batch

from logmap.sources import load_mapping

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "exports"
#: fixture folder → the shipped mapping that converts it unchanged
TOOLS = EXPORT_FIXTURES
#: fixtures holding the simulated shop's three-item purchase (the real Snowplow sample does not)
THREE_ITEMS = [t for t in TOOLS if t not in {"snowplow-warehouse", "ga4-fivetran"}]
#: ... and those whose data carry its revenue (Adobe's is per product line, with no total)
WITH_REVENUE = [t for t in THREE_ITEMS if t != "adobe-datafeed"]


def summary(folder: str) -> dict:
    return json.loads((FIXTURES / folder / "summary.json").read_text())


def inputs(folder: str, files: str = "files") -> list[str]:
    return [str(FIXTURES / folder / f) for f in summary(folder)[files]]


def records_of(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


@pytest.fixture(scope="module")
def run(converted):
    """A fixture folder (or another list of its files) converted once per process; returns (result, records)."""
    cache: dict[tuple[str, str], tuple[object, list[dict]]] = {}

    def run_folder(folder: str, files: str = "files") -> tuple[object, list[dict]]:
        if (folder, files) not in cache:
            result, out = converted(inputs(folder, files), ROOT / "mappings" / TOOLS[folder])
            cache[folder, files] = (result, records_of(out))
        return cache[folder, files]

    return run_folder


@pytest.mark.parametrize("folder", TOOLS)
def test_mapping_loads_and_hashes_nothing(folder):
    mapping = load_mapping(ROOT / "mappings" / TOOLS[folder])
    assert mapping.identity.anonymous_id is not None and mapping.identity.anonymous_id.template
    assert not mapping.identity.anonymous_id.hmac  # identity comes straight from the export's columns


@pytest.mark.parametrize("folder", TOOLS)
def test_exact_ledger(folder, run):
    result, records = run(folder)
    expected = summary(folder)
    ledger = result.ledger.to_dict()
    assert ledger["input_rows"] == expected["input_rows"]
    assert ledger["balanced"] and ledger["input_rows"] == ledger["emitted"] + ledger["dropped_total"]
    assert ledger["dropped"] == expected["dropped"]
    assert dict(sorted(result.ledger.per_type.items())) == expected["records_per_type"]
    assert len(records) == ledger["emitted"]


@pytest.mark.parametrize("folder", TOOLS)
def test_golden_records(folder, run):
    _, records = run(folder)
    golden = [json.loads(line) for line in (FIXTURES / folder / "expected.ndjson").read_text().splitlines()]
    assert records == golden


def test_schema_errors_finds_errors():
    assert schema_errors([{"type": "checkout", "revenue": "12"}, {"type": "search", "timestamp": "yesterday"}])
    assert schema_errors([{"type": "search", "timestamp": "yesterday"}])  # formats are checked
    assert schema_errors([{"type": "search", "timestamp": "0000-01-01T00:00:00Z"}])  # python-jsonschema's date-time
    assert schema_errors([{"type": "checkout", "revenue": 12.0, "product_ids": ["a"]}]) == []


@pytest.mark.parametrize("folder", TOOLS)
def test_every_record_is_valid(folder, run):
    _, records = run(folder)
    assert schema_errors(records) == []
    assert all(r.get("anonymous_id") or r.get("user_id") for r in records)


@pytest.mark.parametrize("folder", THREE_ITEMS)
def test_three_item_purchase_is_one_checkout(folder, run):
    _, records = run(folder)
    checkouts = [r for r in records if r["type"] == "checkout"
                 and r.get("product_ids") == ["SKU-1007", "SKU-1070", "SKU-1126"]]
    assert len(checkouts) == 1
    (checkout,) = checkouts
    assert checkout["quantities"] == [1.0, 2.0, 3.0]
    assert checkout["timestamp"].startswith("2024-03-01T10:00:17")
    if folder in WITH_REVENUE:
        assert checkout["revenue"] == 474.0


def test_ga4_details(run):
    _, records = run("ga4")
    by_type: dict[str, list[dict]] = {}
    for record in records:
        by_type.setdefault(record["type"], []).append(record)
    # page_view classified by path, view_item by its items
    assert any(r["context"]["page"]["url"].endswith("/") for r in by_type["home_page_view"])
    assert all(len(r["product_ids"]) == 1 for r in by_type["product_detail_page_view"])
    assert all(r["search"]["keywords"] for r in by_type["search"])
    carts = by_type["add_to_cart"]
    assert all(len(r["quantities"]) == len(r["product_ids"]) == 1 for r in carts)
    # durations from engagement_time_msec (ms → s), only on page types and only where measured
    durations = [r["duration"] for r in records if "duration" in r]
    assert durations and all(0 < d <= 1800 for d in durations)
    assert not any("duration" in r for r in by_type["add_to_cart"])
    # campaign from GA4's collected traffic source
    assert any(r["context"].get("campaign", {}).get("source") in {"newsletter", "google", "instagram"} for r in records)
    assert all(r["anonymous_id"].count(".") == 1 for r in records)  # user_pseudo_id, unhashed


def test_a_ga4_export_without_collected_traffic_source_converts(run):
    import pyarrow.parquet as pq

    folder = FIXTURES / "ga4-2021"
    assert "collected_traffic_source" not in pq.read_schema(folder / "events_20240301.parquet").names
    result, records = run("ga4-2021")
    assert result.ledger.to_dict()["balanced"] and records
    # the NDJSON day has no commerce event at all: `items` is a null-typed list there, `ecommerce` absent
    ndjson = [r for r in records if r["timestamp"] >= "2024-03-02"]
    assert ndjson and {r["type"] for r in ndjson} <= {"home_page_view", "category_page_view",
                                                       "product_detail_page_view", "search"}


def test_segment_and_snowplow_context(run):
    _, segment = run("segment")
    assert all(r["anonymous_id"].startswith("anon-") for r in segment)
    assert all(r["context"]["truncated_ip"].endswith(".0") for r in segment)
    _, snowplow = run("snowplow")
    assert any("campaign" in r["context"] for r in snowplow)
    assert any("duration" in r for r in snowplow)  # next_event durations


# --- Snowplow: warehouse unloads ------------------------------------------------------------------------------

def test_snowplow_same_events_as_sdk_json_csv_and_parquet_give_identical_records(run, tmp_path_factory):
    """The real sample as the warehouse CSV (`_1_0_0`, JSON text), the SDK's JSON (`_1`, nested, sparse) and a
    Parquet unload (`_1`, JSON text) give the same records, byte for byte."""
    _, from_csv = run("snowplow-warehouse")
    outputs = {}
    for shape in ("sdk-json/part-00000.ndjson.gz", "parquet/part-00000.parquet"):
        out = tmp_path_factory.mktemp("snowplow-shape") / "out"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LOGMAP_KEY", TEST_KEY)
            convert([str(FIXTURES / "snowplow-warehouse" / shape)], ROOT / "mappings" / "snowplow-enriched.yaml", out)
        outputs[shape] = records_of(out)
    assert from_csv and all(records == from_csv for records in outputs.values())


def test_snowplow_warehouse_csv_checkouts_carry_every_product_quantity_and_revenue(run):
    import gzip

    import polars as pl

    _, records = run("snowplow-csv")
    source = pl.read_csv(gzip.decompress((FIXTURES / "snowplow-csv" / "atomic_events_000.csv.gz").read_bytes()),
                         infer_schema_length=0)
    action = "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1_0_0"
    transactions = source.filter(pl.col(action).str.contains('"transaction"')).unique("event_id")
    checkouts = [r for r in records if r["type"] == "checkout"]
    assert len(checkouts) == transactions.height > 80
    expected = set()
    for row in transactions.iter_rows(named=True):
        products = json.loads(row["contexts_com_snowplowanalytics_snowplow_ecommerce_product_1_0_0"])
        revenue = json.loads(row["contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1_0_0"])[0]["revenue"]
        expected.add((tuple(p["id"] for p in products), tuple(float(p["quantity"]) for p in products), revenue))
    assert {(tuple(c["product_ids"]), tuple(c["quantities"]), c["revenue"]) for c in checkouts} == expected


def test_snowplow_real_sample_semantics(run):
    _, records = run("snowplow-warehouse")
    kinds = {r["type"] for r in records}
    assert "category_page_view" not in kinds            # list_view is an impression: no page entity says category
    impressions = [r for r in records if r["type"] == "impression" and len(r.get("product_ids", [])) == 2]
    assert len(impressions) >= 99                       # the listed product ids
    checkouts = [r for r in records if r["type"] == "checkout"]
    assert len(checkouts) == 15 and all(r["product_ids"] and r["revenue"] > 0 for r in checkouts)
    # the Android tracker's events have no domain_userid: identity falls back (network_userid), none is lost
    import gzip

    import polars as pl

    source = pl.read_csv(gzip.decompress((FIXTURES / "snowplow-warehouse" / summary("snowplow-warehouse")["files"][0])
                                         .read_bytes()), infer_schema_length=0)
    action = "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1_0_0"
    android = source.filter((pl.col("platform") == "mob")
                            & ~pl.col(action).str.json_path_match("$.type").is_in(["checkout_step"]))
    assert android["domain_userid"].null_count() == android.height > 0
    mobile = [r for r in records if r.get("context", {}).get("user_agent", "").startswith("snowplow/andr")]
    assert len(mobile) == android.height and all(r["anonymous_id"] for r in mobile)


def test_snowplow_durations_come_from_page_pings(tmp_path, monkeypatch):
    """A page view with three pings (10 s heartbeat) then nothing for 4 minutes: engaged ~30 s, not 240 s.

    Snowplow's model ties a ping to its page view by the web_page context's id (pings without one count for no
    page view), so every event here carries it, as the JavaScript tracker sends it: heartbeat 10 s x (3 windows
    - 1) + min visit 5 s = 25 s. The next page view has no pings: the gap to the visitor's next event.
    """
    def web_page(page_view_id):
        return {"contexts_com_snowplowanalytics_snowplow_web_page_1": [{"id": page_view_id}]}

    base = {"event_name": "page_view", "event": "page_view", "domain_userid": "d1",
            "page_url": "https://shop.example.com/category/shoes", **web_page("pv-1")}
    rows = [dict(base, event_id="e0", derived_tstamp="2024-03-01T10:00:00Z")]
    rows += [dict(base, event_id=f"p{i}", event="page_ping", event_name="page_ping",
                  derived_tstamp=f"2024-03-01T10:00:{10 * i:02d}Z") for i in (1, 2, 3)]
    rows.append(dict(base, event_id="e1", page_url="https://shop.example.com/", derived_tstamp="2024-03-01T10:04:00Z",
                     **web_page("pv-2")))
    rows.append(dict(base, event_id="e2", page_url="https://shop.example.com/product/SKU-1",
                     derived_tstamp="2024-03-01T10:05:30Z", **web_page("pv-3")))
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("LOGMAP_KEY", "k")
    result = convert([str(source)], ROOT / "mappings" / "snowplow-enriched.yaml", tmp_path / "out")
    records = records_of(tmp_path / "out")
    category = next(r for r in records if r["type"] == "category_page_view")
    assert 25 <= category["duration"] <= 40
    assert category["duration"] == 25                       # Snowplow's engaged_time_in_s, exactly
    home = next(r for r in records if r["type"] == "home_page_view")
    assert home["duration"] == 90                            # no pings: the next event, 90 s later
    assert len(records) == 3 and result.ledger.to_dict()["dropped"] == {"merged:page_ping": 3}


# --- warehouse layouts ------------------------------------------------------------------------------------------

def test_rudderstack_snowflake_layout_gives_the_same_records(run):
    _, lower = run("rudderstack-warehouse")
    _, upper = run("rudderstack-warehouse", "snowflake_files")
    assert lower and upper == lower


def test_segment_warehouse_products_json_text(run):
    _, records = run("segment-warehouse")
    checkouts = [r for r in records if r["type"] == "checkout"]
    assert checkouts and all(len(r["product_ids"]) == len(r["quantities"]) >= 1 for r in checkouts)


def test_adobe_product_list_and_exclusions(run):
    result, records = run("adobe-datafeed")
    dropped = result.ledger.to_dict()["dropped"]
    assert dropped["filtered:exclude_hit"] == 1 and dropped["filtered:hit_source"] == 1
    carts = [r for r in records if r["type"] == "add_to_cart"]
    assert carts and all(len(r["product_ids"]) == len(r["quantities"]) == 1 for r in carts)
    assert all(r["anonymous_id"].count("-") == 1 for r in records)   # post_visid_high-post_visid_low
