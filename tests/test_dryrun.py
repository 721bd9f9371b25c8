"""`logmap dry-run`: its ledger equals `convert`'s report.json on every fixture, and its statistics are right."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import MAPPING, SAMPLE, TEST_KEY, dry_run, read_batch

from logmap.cli import main
from logmap.pipeline.runner import RunOptions
from logmap.reports.dryrun import DRY_RUN_REPORT_VERSION, TopCounter, quantile_from_bins

ROOT = Path(__file__).resolve().parents[1]
REAL_LOGS = sorted((ROOT / "fixtures" / "logs").glob("*.log"))
EXPORTS = {"ga4": "ga4-bigquery-export.yaml", "segment": "segment.yaml", "snowplow": "snowplow-enriched.yaml",
           "amplitude": "amplitude-export.yaml"}
EXPORT_DIR = ROOT / "fixtures" / "exports"


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def fixture_cases() -> list[tuple[str, list[str], str]]:
    """(id, inputs, mapping) for every fixture: the storefront sample, each real log, each export."""
    cases = [("storefront", [str(SAMPLE)], str(MAPPING))]
    cases += [(log.name, [str(log)], "common" if "nasa" in log.name else str(MAPPING)) for log in REAL_LOGS]
    for tool, mapping in EXPORTS.items():
        summary = EXPORT_DIR / tool / "summary.json"
        if summary.exists():
            files = [str(EXPORT_DIR / tool / f) for f in json.loads(summary.read_text())["files"]]
            cases.append((tool, files, str(ROOT / "mappings" / mapping)))
    return cases


CASES = fixture_cases()


@pytest.mark.parametrize("inputs,mapping", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dry_run_ledger_equals_convert_report(converted, common_mapping, inputs, mapping):
    if mapping == "common":
        mapping = str(common_mapping)
    _, out = converted(inputs, mapping)
    written = json.loads((out / "report.json").read_text())
    report = dry_run(inputs, mapping).to_dict()
    assert report["ledger"] == written["ledger"]
    assert report["ledger"]["balanced"] is True
    assert report["records_per_type"] == written["records_per_type"]
    assert report["records_per_rule"] == written["records_per_rule"]
    assert sum(d["count"] for d in report["drops"]) == report["ledger"]["dropped_total"]
    # the statistics agree with the ledger wherever they overlap
    hourly = Counter()
    for entry in report["records_per_hour"]:
        hourly.update(entry["counts"])
    assert dict(hourly) == report["records_per_type"]
    assert set(report["drops_detail"]) == set(report["ledger"]["dropped"])
    unmatched = report["ledger"]["dropped"].get("unmatched", 0)
    assert sum(s["count"] for s in report["unmatched_shapes"]) <= unmatched
    for type_name, stats in report["durations"]["per_type"].items():
        assert stats["records"] == report["records_per_type"][type_name]
        assert sum(b["count"] for b in stats["histogram"]) == stats["with_duration"]


@pytest.fixture(scope="module")
def storefront(converted):
    """The dry-run report of the storefront sample, and the records `convert` writes for it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOGMAP_KEY", TEST_KEY)
        _, out = converted([str(SAMPLE)], str(MAPPING))
        records = [r for path in sorted(out.glob("interactions-*")) for r in read_batch(path)]
        return dry_run([str(SAMPLE)], MAPPING).to_dict(), records


def test_statistics_match_the_converted_records(storefront):
    report, records = storefront
    assert report["report_version"] == DRY_RUN_REPORT_VERSION and report["kind"] == "dry-run"
    assert report["visitors"]["anonymous_ids"] == len({r["anonymous_id"] for r in records if "anonymous_id" in r})
    assert report["visitors"]["user_ids"] == len({r["user_id"] for r in records if "user_id" in r})
    stamps = sorted(r["timestamp"] for r in records)
    assert report["time_range"]["first"] == stamps[0].replace(".000Z", "Z")
    assert report["time_range"]["last"] == stamps[-1].replace(".000Z", "Z")
    with_ids = sum(1 for r in records if r.get("product_ids"))
    assert report["product_ids"]["records"] == with_ids
    assert report["product_ids"]["share"] == round(with_ids / len(records), 4)
    for type_name, stats in report["durations"]["per_type"].items():
        durations = sorted(r["duration"] for r in records if r["type"] == type_name and "duration" in r)
        assert stats["with_duration"] == len(durations)
        assert stats["absent_share"] == round(1 - len(durations) / stats["records"], 4)
        # nearest rank over the exact values: access-log timestamps are whole seconds, so 1-second bins are exact
        assert stats["median_s"] == durations[math.ceil(0.5 * len(durations)) - 1]
        assert stats["p90_s"] == durations[math.ceil(0.9 * len(durations)) - 1]
        assert stats["capped"] == sum(1 for d in durations if d >= report["durations"]["max_s"])
    for type_name, samples in report["samples"].items():
        assert 1 <= len(samples) <= 3 and all(s["record"] in records for s in samples)
        assert all(s["record"]["type"] == type_name for s in samples)


def test_drops_detail_names_what_was_dropped(storefront):
    report, _ = storefront
    static = report["drops_detail"]["filtered:static"]
    assert static["paths"][0] == {"value": "/static/app.js", "count": 27,
                                  "percent": round(100 * 27 / report["ledger"]["dropped"]["filtered:static"], 2)}
    bots = report["drops_detail"]["filtered:bot"]
    assert any("Googlebot" in ua["value"] for ua in bots["user_agents"])
    malformed = report["drops_detail"]["malformed"]
    assert malformed["examples"] and all("raw" in e for e in malformed["examples"])
    assert {s["value"] for s in report["unmatched_shapes"]} == {"/about-us", "/account/orders"}


def test_unmatched_paths_are_generalised_into_shapes(tmp_path):
    line = ('1.2.3.{n} - - [01/Mar/2024:10:00:{s:02d} +0000] "GET {path} HTTP/1.1" 200 5 "-" '
            '"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"')
    paths = [f"/blog/{i}-some-post-title" for i in range(5)] + [f"/user/{i}{i}{i}/orders" for i in range(3)]
    log = tmp_path / "a.log"
    log.write_text("\n".join(line.format(n=i, s=i, path=p) for i, p in enumerate(paths)) + "\n")
    report = dry_run([str(log)], MAPPING).to_dict()
    shapes = {s["value"]: s["count"] for s in report["unmatched_shapes"]}
    assert shapes == {"/blog/{id}-{slug}": 5, "/user/{id}/orders": 3}
    assert report["unmatched_shapes"][0]["example"].startswith("/blog/")


def test_bucketed_and_chunked_runs_give_the_same_report(storefront):
    one, _ = storefront
    many = dry_run([str(SAMPLE)], MAPPING, options=RunOptions(buckets=4, chunk_bytes=8 * 1024)).to_dict()
    volatile = ("created_at", "elapsed_s", "rows_per_second")
    assert {k: v for k, v in one.items() if k not in volatile} == {k: v for k, v in many.items() if k not in volatile}


def test_rankings_are_bounded_and_say_when_they_are_approximate():
    counter = TopCounter(keep=3)
    counter.update([("a", 5), ("b", 4), ("c", 3)])
    assert counter.exact
    counter.update([(f"x{i}", 1) for i in range(10)])
    assert not counter.exact and len(counter.counts) <= 6 and counter.top(1) == [("a", 5)]


def test_quantiles_from_bins_are_nearest_rank():
    values = [3, 1, 4, 1, 5, 9, 2, 6]
    bins = Counter(values)
    ordered = sorted(values)
    for q in (0.1, 0.5, 0.9, 1.0):
        assert quantile_from_bins(bins, q) == ordered[math.ceil(q * len(values)) - 1]
    assert quantile_from_bins(Counter(), 0.5) is None


def test_cli_dry_run_writes_json_and_html_and_prints_tables(tmp_path):
    result = CliRunner().invoke(main, ["dry-run", str(SAMPLE), "-m", str(MAPPING), "--json",
                                       str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "ledger balanced" in result.output and "unmatched" in result.output and "durations" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ledger"]["input_rows"] == 404 + data["ledger"]["input_rows"] - 404  # a number, written
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob("interactions-*"))  # nothing but the reports


def test_cli_dry_run_missing_key_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGMAP_KEY")
    result = CliRunner().invoke(main, ["dry-run", str(SAMPLE), "-m", str(MAPPING)])
    assert result.exit_code == 2 and "LOGMAP_KEY" in result.output


def test_key_never_appears_in_the_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGMAP_KEY", "very-secret-key-1234")
    report = dry_run([str(SAMPLE)], MAPPING).to_dict()
    assert "very-secret-key-1234" not in json.dumps(report)
    from logmap.reports.html import render_html
    assert "very-secret-key-1234" not in render_html(report)


def test_empty_input_gives_an_empty_balanced_report(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    report = dry_run([str(empty)], MAPPING).to_dict()
    assert report["ledger"] == {"input_rows": 0, "emitted": 0, "dropped": {}, "dropped_total": 0, "balanced": True}
    assert report["time_range"] == {"first": None, "last": None} and report["records_per_hour"] == []
    assert pl.DataFrame(report["drops"]).height == 0


def test_paths_are_shown_decoded_and_cut_in_the_terminal_and_labelled_in_the_json(tmp_path):
    persian = "%D8%B3%D8%B4%D9%88%D8%A7%D8%B1"  # سشوار
    long_path = "/" + persian + "/" + "%20".join(["shoes"] * 14) + "/%D9%85%D8%AF%D9%84-12"  # 84 characters shown
    line = ('1.2.3.{n} - - [01/Mar/2024:10:00:{s:02d} +0000] "GET {path} HTTP/1.1" 200 5 "-" '
            '"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"')
    log = tmp_path / "a.log"
    log.write_text("\n".join(line.format(n=i, s=i, path=long_path) for i in range(3)) + "\n")
    report = dry_run([str(log)], MAPPING).to_dict()
    shape = report["unmatched_shapes"][0]
    assert "%{n}" not in shape["value"] and shape["value"].endswith("shoes%20shoes/{slug}-{id}")
    assert shape["label"] == "/سشوار/" + " ".join(["shoes"] * 14) + "/{slug}-{id}"
    assert shape["example_label"] == "/سشوار/" + " ".join(["shoes"] * 14) + "/مدل-12"
    assert report["drops_detail"]["unmatched"]["paths"][0]["label"] == shape["example_label"]
    result = CliRunner().invoke(main, ["dry-run", str(log), "-m", str(MAPPING)], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = [row for row in result.output.splitlines() if "سشوار" in row]
    # one line per path in each table (the shapes table: shape and example; the drops table: the path), cut
    cells = [cell for row in shown for cell in row.split("│") if "سشوار" in cell]
    assert len(shown) == 2 and len(cells) == 3 and all("…" in cell for cell in cells), shown
    assert "(3)" in shown[1]                                  # the count survives the cut
    assert "%D8" not in result.output
