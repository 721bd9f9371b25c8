"""`logmap init SAMPLE`: a starter mapping that runs as is and covers the sample's page requests."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from logmap.cli import main
from logmap.sources import load_mapping
from logmap.starter import shape_expr
from support import convert

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fixtures" / "storefront" / "access.log"
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
    assert "format: combined" in text and "# 82 requests (31.4%), e.g. shape /product/{id}" in text
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
