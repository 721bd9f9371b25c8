"""Helpers shared by test modules: the library's commands with the throwaway anonymous-id key of the tests."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

from logmap import conversion
from logmap.pipeline import runner
from logmap.reports import dryrun

#: A throwaway anonymous-id key; tests that must not see it in any output compare against this value.
TEST_KEY = "test-key-not-secret"
#: every export fixture folder (fixtures/exports/) → the shipped mapping that converts it unchanged
EXPORT_FIXTURES = {
    "ga4": "ga4-bigquery-export.yaml",
    "ga4-2021": "ga4-bigquery-export.yaml",
    "ga4-fivetran": "ga4-fivetran.yaml",
    "segment": "segment.yaml",
    "segment-warehouse": "segment-warehouse.yaml",
    "rudderstack-warehouse": "rudderstack-warehouse.yaml",
    "snowplow": "snowplow-enriched.yaml",
    "snowplow-csv": "snowplow-enriched.yaml",
    "snowplow-warehouse": "snowplow-enriched.yaml",
    "amplitude": "amplitude-export.yaml",
    "amplitude-csv": "amplitude-export.yaml",
    "mixpanel": "mixpanel-export.yaml",
    "adobe-datafeed": "adobe-datafeed.yaml",
}

#: the storefront sample and its shipped mapping, which most conversion tests convert
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "storefront" / "access.log"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"

convert = partial(conversion.convert, key=TEST_KEY)
iter_records = partial(runner.iter_records, key=TEST_KEY)
dry_run = partial(dryrun.dry_run, key=TEST_KEY)


def read_batch(path: Path) -> list[dict[str, Any]]:
    """The records of one batch file, either format."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)["data"]
    return [json.loads(line) for line in text.splitlines() if line]


def records_of(out: Path) -> list[str]:
    """Every record of an output directory's batch files as sorted canonical JSON: a multiset to compare runs."""
    return sorted(json.dumps(r, sort_keys=True) for p in sorted(out.glob("interactions-*")) for r in read_batch(p))


def write_common_mapping(directory: Path) -> Path:
    """The storefront mapping for NCSA common logs (no referrer, no user agent), written into ``directory``."""
    text = MAPPING.read_text().replace("format: combined", "format: common")
    text = text.replace("hmac: ['{ip}', '{user_agent}']", "hmac: ['{ip}']")
    text = text.replace("user_agent: '{user_agent}'", "user_agent: false")
    text = text.replace("page: {url: '{url}', referrer: '{referrer}'}", "page: {url: '{url}'}")
    path = directory / "common.yaml"
    path.write_text(text)
    return path
