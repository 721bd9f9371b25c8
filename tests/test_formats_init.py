"""`logmap init SAMPLE`: a starter mapping that runs as is and covers the sample's page requests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import SAMPLE, TEST_KEY, convert

from logmap.cli import main
from logmap.errors import LogmapError
from logmap.sources import load_mapping
from logmap.starter import shape_expr

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def test_path_shapes() -> None:
    paths = pl.Series(["/", "/product/1956-trail-merino", "/category/shoes/running", "/search", "/cart/add/"])
    assert pl.select(shape_expr(pl.lit(paths))).to_series().to_list() == [
        "/", "/product/{id}", "/category/*/*", "/search", "/cart/*"]


def test_init_on_the_storefront_sample_covers_its_pages_with_an_exact_ledger(tmp_path: Path) -> None:
    out = tmp_path / "starter.yaml"
    result = CliRunner().invoke(main, ["init", str(SAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "format: combined" in text and "# 71 requests (33.5%), e.g. /product/1956-trail-merino" in text
    mapping = load_mapping(out)
    types = {rule.type for rule in mapping.rules}
    assert {"product_detail_page_view", "category_page_view", "home_page_view", "search"} <= types
    run = convert([str(SAMPLE)], out, tmp_path / "out")
    ledger = run.ledger
    assert ledger.balanced and ledger.input_rows == 406
    assert ledger.emitted + ledger.dropped_total == 406
    unmatched = ledger.dropped.get("unmatched", 0)
    assert ledger.emitted / (ledger.emitted + unmatched) >= 0.90
    again = CliRunner().invoke(main, ["init", str(SAMPLE), "-o", str(out)])
    assert again.exit_code != 0 and "exists" in again.output


@pytest.mark.parametrize("name", ["iis85_lnav_w3c_big.log", "caddy_json_lnav.jsonl", "nasa_jul95_4000.log"])
def test_init_on_other_formats_runs_as_is(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(main, ["init", str(LOGS / name)])
    assert result.exit_code == 0, result.output
    mapping = tmp_path / "m.yaml"
    mapping.write_text(result.output)
    run = convert([str(LOGS / name)], mapping, tmp_path / "out")
    assert run.ledger.balanced


SHOP = LOGS / "zanbil_shop_2019_3000.log"


def _init_and_convert(tmp_path: Path, sample: Path) -> tuple[str, str, object]:
    out = tmp_path / "starter.yaml"
    result = CliRunner().invoke(main, ["init", str(sample), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(), result.output, convert([str(sample)], out, tmp_path / "out")


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """``initialised(sample)``: (starter mapping's path, text, what init printed, the conversion with it), once per
    module for each sample (the real shop's is checked by two tests)."""
    done: dict[Path, tuple[Path, str, str, object]] = {}

    def init_once(sample: Path) -> tuple[Path, str, str, object]:
        if sample not in done:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("LOGMAP_KEY", TEST_KEY)
                folder = tmp_path_factory.mktemp("init")
                done[sample] = (folder / "starter.yaml", *_init_and_convert(folder, sample))
        return done[sample]

    return init_once


@pytest.mark.parametrize("sample", [SAMPLE, SHOP], ids=["storefront", "real shop"])
def test_init_proposes_shop_rules_and_its_mapping_emits_no_custom_record(initialised, sample: Path) -> None:
    starter, text, printed, run = initialised(sample)
    mapping = load_mapping(starter)
    types = {rule.type for rule in mapping.rules}
    assert {"product_detail_page_view", "category_page_view", "search"} <= types
    assert "custom" not in types and "custom" not in run.ledger.per_type
    assert run.ledger.balanced
    for rule_type in ("product_detail_page_view", "category_page_view", "search"):
        assert run.ledger.per_type.get(rule_type, 0) > 0, rule_type
    # coverage printed per proposed rule, and what it says is what the mapping then does
    for rule in mapping.rules:
        count = run.ledger.per_rule.get(rule.name, 0)
        assert f"{count:>7,}  {rule.name}" in printed


def test_init_on_the_real_shop_log(initialised) -> None:
    starter, text, printed, run = initialised(SHOP)
    mapping = load_mapping(starter)
    by_name = {rule.name: rule for rule in mapping.rules}
    assert mapping.filter.methods == ["GET"]
    assert set(by_name) >= {"product page (/product/)", "category page (/filter/)", "category page (/browse/)",
                            "search (?phrase=)"}
    # extension-less images are assets, excluded by shape: never a rule, never a suggestion
    assert "/image/" not in text.split("rules:")[1] and "productModel" not in text.split("rules:")[1]
    assert run.ledger.dropped["filtered:path"] > 900
    # shapes without an e-commerce name are commented suggestions, not rules
    assert "# - {name: /settings/*" in text and "/settings" not in " ".join(r.path or "" for r in mapping.rules)
    assert run.ledger.per_type["product_detail_page_view"] == 152
    assert run.ledger.per_rule["search (?phrase=)"] == 1


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log")))
def test_init_uses_the_format_that_formats_detect_names(name: str) -> None:
    from logmap.starter import starter_for

    detected = CliRunner().invoke(main, ["formats", "--detect", str(LOGS / name)])
    if detected.exit_code != 0:  # a tie or nothing parses: init stops the same way
        with pytest.raises(LogmapError):
            starter_for(str(LOGS / name))
        return
    assert f"format: {starter_for(str(LOGS / name)).format} " in detected.output


def test_init_sets_site_from_the_host_field_and_keeps_posts_out(tmp_path: Path) -> None:
    sample = tmp_path / "vhost.log"
    line = ('shop.example.org:443 203.0.113.{n} - - [01/Mar/2024:10:00:{s:02d} +0000] "{m} {p} HTTP/1.1" 200 512 '
            '"-" "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"')
    lines = [line.format(n=i % 7, s=i % 60, m="GET", p=f"/p/{100 + i % 9}") for i in range(30)]
    lines += [line.format(n=i, s=i, m="POST", p="/cart/add") for i in range(40)]
    lines += [line.format(n=i, s=i, m="GET", p=f"/media/catalog/{i}/thumb") for i in range(20)]
    sample.write_text("\n".join(lines) + "\n")
    text, printed, run = _init_and_convert(tmp_path, sample)
    mapping = load_mapping(tmp_path / "starter.yaml")
    assert mapping.source.format == "vhost_combined" and mapping.source.site == "https://shop.example.org"
    assert [rule.name for rule in mapping.rules] == ["product page (/p/)"]
    assert "/cart" not in text and run.ledger.dropped["filtered:method"] == 40
    assert run.ledger.dropped["filtered:path"] == 20 and run.ledger.emitted == 30
