"""`logmap formats` (list, --detect), detection on every fixture, and `format: auto` / `w3c` through convert."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from support import convert

from logmap.cli import main
from logmap.errors import InputError
from logmap.mapping.model import Source
from logmap.sources.accesslog import FORMATS, PLUGINS, parse
from logmap.sources.detect import PREFIXES, SIGNATURE_REQUIRED, SIGNATURES, best, candidate_formats, could_parse, rank
from logmap.sources.lines import lines_frame, read_lines

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
MAPPING = ROOT / "mappings" / "storefront-combined.yaml"
EXPECTED = {
    "advertools_combined_latin1_2023.log": "combined", "advertools_dreamhost_apache_2023.log": "combined",
    "advertools_elastic_nginx_subset_with_errors.log": "combined", "advertools_nginx_access_2021.log": "combined",
    "apache_french_blog_2020.log": "combined", "elastic_apache_logs.log": "combined",
    "iis85_lnav_w3c_big.log": "w3c", "nasa_jul95_4000.log": "common", "caddy_json_lnav.jsonl": "caddy",
    "cloudfront_aws_doc_example.log": "cloudfront", "alb_aws_doc_example.log": "alb",
    "elb_aws_doc_example.log": "elb", "haproxy_doc_example.log": "haproxy",
    "traefik_doc_example.jsonl": "traefik", "nginx_json_doc_example.jsonl": "nginx_json",
    "zanbil_shop_2019_3000.log": "combined",
}

CANDIDATES = candidate_formats()
#: A JSON line both nginx_json and traefik read in full, with both signature keys: a genuine tie.
AMBIGUOUS = '{"remote_addr": "1.2.3.4", "ClientHost": "1.2.3.4", "request_uri": "/a", "RequestPath": "/a"}'


pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in LOGS.iterdir() if p.suffix in (".log", ".jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detection_picks_the_right_format_for_every_fixture(name: str) -> None:
    sample = next(iter(read_lines(str(LOGS / name)))).head(1000)
    assert best(sample, name).name == EXPECTED[name]


@pytest.mark.parametrize("name", [n for n in [*FORMATS, *PLUGINS] if n not in ("auto", "nginx", "apache")])
def test_detection_picks_each_preset_on_its_own_example(name: str) -> None:
    example = FORMATS[name].example if name in FORMATS else PLUGINS[name][2]
    assert best(lines_frame(example.split("\n")), "example").name == name


def screening_samples() -> dict[str, pl.DataFrame]:
    """Every fixture log's first lines (a W3C one also from its middle without its headers, where a header is
    carried), every preset's example, and lines no format reads: each a frame of its own ``_file``."""
    files = sorted([*LOGS.iterdir(), *(LOGS / "formats").iterdir()])
    samples = {p.name: next(iter(read_lines(str(p)))).head(300) for p in files if p.suffix in (".log", ".jsonl")}
    samples["iis, from line 40"] = samples["iis85_lnav_w3c_big.log"].slice(40).filter(~pl.col("_raw").str.starts_with("#"))
    for name in CANDIDATES:
        samples[name] = lines_frame((FORMATS[name].example if name in FORMATS else PLUGINS[name][2]).split("\n"))
    samples["nothing"] = lines_frame(["hello world", "", '{"a": 1}', "#Fields: date"])
    return {name: sample.with_columns(pl.lit(name).alias("_file")) for name, sample in samples.items()}


@pytest.mark.parametrize("prefix", [None, "docker compose"])
def test_a_format_screened_out_parses_no_line(prefix: str | None) -> None:
    """Detection skips the formats a one-pass screen says cannot read any line of a sample: on every sample,
    each such format indeed parses none of its lines (all samples parsed at once, a format at a time)."""
    samples = screening_samples()
    if prefix:
        samples = {name: sample.with_columns(pl.concat_str(pl.lit("web-1  | "), "_raw").alias("_raw"))
                   for name, sample in samples.items()}
    screened_out = {(name, fmt) for name, sample in samples.items()
                    for fmt, could in could_parse(sample, prefix).items() if not could}
    assert len(screened_out) > 10 * len(samples)
    everything = pl.concat(list(samples.values()))
    pattern = PREFIXES[prefix] if prefix else None
    # The W3C sample from line 41 carries the header of the lines above it, as a file's later chunk does.
    above = samples["iis85_lnav_w3c_big.log"].head(40).with_columns(pl.lit("iis, from line 40").alias("_file"))
    parse(above, Source(format="w3c", prefix=pattern))
    carried = parse(samples["iis, from line 40"], Source(format="w3c", prefix=pattern))
    assert carried["_drop"].null_count() > 10  # so the screen must keep w3c for a chunk not starting a file
    for fmt in CANDIDATES:
        parsed = parse(everything, Source(format=fmt, prefix=pattern))
        read = parsed.filter(pl.col("_drop").is_null() & (pl.col("_raw").str.strip_chars() != "")
                             & ~pl.col("_raw").str.strip_chars_start().str.starts_with("#")
                             & (SIGNATURES[fmt] if fmt in SIGNATURE_REQUIRED else True))
        assert not {(name, fmt) for name in read["_file"].unique()} & screened_out


def test_screening_changes_no_ranking() -> None:
    samples = screening_samples()
    samples["combined_xff, prefixed"] = samples["combined_xff"].with_columns(
        pl.concat_str(pl.lit("web-1  | "), "_raw").alias("_raw"))
    for name in ["elastic_apache_logs.log", "iis, from line 40", "combined_xff", "combined_xff, prefixed", "nothing"]:
        assert rank(samples[name]) == rank(samples[name], screen=False), name


def test_ties_and_unknown_input_ask_the_user_to_choose() -> None:
    with pytest.raises(InputError, match="formats nginx_json, traefik parse it equally well"):
        best(lines_frame([AMBIGUOUS]), "x.log")
    with pytest.raises(InputError, match="no known format parses"):
        best(lines_frame(["hello world"]), "x.log")


def test_formats_command_lists_every_preset_with_an_example() -> None:
    result = CliRunner().invoke(main, ["formats"])
    assert result.exit_code == 0
    for name in [*FORMATS, *PLUGINS, "regex"]:
        assert f"\n{name}\n" in "\n" + result.output
    assert result.output.count("e.g. ") >= len(FORMATS) + len(PLUGINS) + 1


def test_formats_detect_command() -> None:
    result = CliRunner().invoke(main, ["formats", "--detect", str(LOGS / "iis85_lnav_w3c_big.log")])
    assert result.exit_code == 0 and result.output.strip().endswith("format: w3c  (100.0% of lines parse)")
    tie = CliRunner().invoke(main, ["formats", "--detect", "-"], input=AMBIGUOUS + "\n")
    assert tie.exit_code == 2 and "choose one with source.format" in tie.output


def test_auto_parses_like_the_detected_format_per_file() -> None:
    iis = pl.concat(list(read_lines(str(LOGS / "iis85_lnav_w3c_big.log"))))
    nasa = pl.concat(list(read_lines(str(LOGS / "nasa_jul95_4000.log"))))
    auto = parse(pl.concat([iis, nasa]), Source(format="auto"))
    assert auto.height == iis.height + nasa.height
    assert auto.filter(pl.col("_drop").is_null()).height == 210 + 4000
    assert auto.drop("_file").head(iis.height).equals(parse(iis, Source(format="w3c")).drop("_file", "time_taken"))
    assert parse(lines_frame([]), Source(format="auto")).columns == auto.columns


@pytest.mark.parametrize("fmt", ["auto", "w3c"])
def test_convert_iis_log_with_an_exact_ledger(tmp_path: Path, fmt: str) -> None:
    mapping = tmp_path / "iis.yaml"
    mapping.write_text(MAPPING.read_text().replace("format: combined", f"format: {fmt}"))
    log = LOGS / "iis85_lnav_w3c_big.log"
    result = convert([str(log)], mapping, tmp_path / "out")
    assert result.ledger.input_rows == 254 and result.ledger.balanced
    assert result.ledger.emitted + result.ledger.dropped_total == 254


def test_convert_caddy_log_with_an_exact_ledger(tmp_path: Path) -> None:
    mapping = tmp_path / "caddy.yaml"
    mapping.write_text(MAPPING.read_text().replace("format: combined", "format: caddy"))
    result = convert([str(LOGS / "caddy_json_lnav.jsonl")], mapping, tmp_path / "out")
    assert result.ledger.input_rows == 4 and result.ledger.balanced
