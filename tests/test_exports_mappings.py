"""Each shipped export mapping converts its fixture: golden records, an exact ledger that matches what the
fixture generator counted from the simulated shop, and every record valid against the API schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from logmap.sources import load_mapping
from support import convert
from logmap.records.types import interaction_schema
from support import read_batch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "exports"
TOOLS = {
    "ga4": "ga4-bigquery-export.yaml",
    "segment": "segment.yaml",
    "snowplow": "snowplow-enriched.yaml",
    "amplitude": "amplitude-export.yaml",
}


def summary(tool: str) -> dict:
    return json.loads((FIXTURES / tool / "summary.json").read_text())


def inputs(tool: str) -> list[str]:
    return [str(FIXTURES / tool / f) for f in summary(tool)["files"]]


def records_of(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, tuple[object, list[dict]]]:
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOGMAP_KEY", "test-key-not-secret")
        for tool, mapping in TOOLS.items():
            folder = tmp_path_factory.mktemp(tool) / "out"
            result = convert(inputs(tool), ROOT / "mappings" / mapping, folder)
            out[tool] = (result, records_of(folder))
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_mapping_loads_and_hashes_nothing(tool):
    mapping = load_mapping(ROOT / "mappings" / TOOLS[tool])
    assert mapping.identity.anonymous_id is not None and mapping.identity.anonymous_id.template
    assert not mapping.identity.anonymous_id.hmac  # identity comes straight from the export's columns


@pytest.mark.parametrize("tool", TOOLS)
def test_exact_ledger(tool, converted):
    result, records = converted[tool]
    expected = summary(tool)
    ledger = result.ledger.to_dict()
    assert ledger["input_rows"] == expected["input_rows"]
    assert ledger["balanced"] and ledger["input_rows"] == ledger["emitted"] + ledger["dropped_total"]
    assert ledger["dropped"] == expected["dropped"]
    assert dict(sorted(result.ledger.per_type.items())) == expected["records_per_type"]
    assert len(records) == ledger["emitted"]


@pytest.mark.parametrize("tool", TOOLS)
def test_golden_records(tool, converted):
    _, records = converted[tool]
    golden = [json.loads(line) for line in (FIXTURES / tool / "expected.ndjson").read_text().splitlines()]
    assert records == golden


@pytest.mark.parametrize("tool", TOOLS)
def test_every_record_is_valid(tool, converted):
    _, records = converted[tool]
    validator = jsonschema.Draft202012Validator(interaction_schema(), format_checker=jsonschema.FormatChecker())
    assert list(validator.iter_errors({"data": records})) == []


@pytest.mark.parametrize("tool", TOOLS)
def test_three_item_purchase_is_one_checkout(tool, converted):
    _, records = converted[tool]
    checkouts = [r for r in records if r["type"] == "checkout" and r.get("user_id") == "u-three"]
    assert len(checkouts) == 1
    (checkout,) = checkouts
    assert checkout["product_ids"] == ["SKU-1007", "SKU-1070", "SKU-1126"]
    assert checkout["quantities"] == [1.0, 2.0, 3.0]
    assert checkout["revenue"] == 474.0
    assert checkout["timestamp"] == "2024-03-01T10:00:17.345Z"


def test_ga4_details(converted):
    _, records = converted["ga4"]
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


def test_segment_and_snowplow_context(converted):
    _, segment = converted["segment"]
    assert all(r["anonymous_id"].startswith("anon-") for r in segment)
    assert all(r["context"]["truncated_ip"].endswith(".0") for r in segment)
    _, snowplow = converted["snowplow"]
    assert any("campaign" in r["context"] for r in snowplow)
    assert any("duration" in r for r in snowplow)  # next_event durations
