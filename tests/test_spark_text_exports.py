"""The Spark engine reads plain NDJSON and CSV exports in byte ranges with Spark's text source
(`logmap.spark.exports.read_text_ranges`): each range's lines go through the local reader's own steps
(`ExportReader.ndjson_rows`, `ExportReader.csv_rows`), numbered from the count of lines per range, and give the local
engine's records, ledger and rejects (file and line), malformed lines and awkward bytes included. A CSV file whose
records span lines (a quoted newline, an escaped one) is read whole beside the others."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from support import EXPORT_FIXTURES
from test_spark import assert_same_output, both_engines, lines_of, recorded_text_reads

ROOT = Path(__file__).resolve().parents[1]
EXPORTS = ROOT / "fixtures" / "exports"
#: Ranges this small cut each fixture file (0.3–5 MB unpacked, lines of about 1 KiB) into several ranges, with
#: lines across every boundary, at a few tasks per file.
SPLIT = 256 * 1024
#: NDJSON lines a range reader could get wrong, put into a file's lines at these positions: a blank line, text
#: that is no JSON, a cut object, a JSON array, a CRLF line, invalid UTF-8 and a NUL byte inside a value.
AWKWARD_NDJSON = {1: b"", 3: b"not json at all", 5: b'{"broken": ', 7: b"[1, 2]", 9: b"\r", 11: b"\xff", 13: b"\x00"}

pytestmark = [pytest.mark.usefixtures("anonymous_key"), pytest.mark.timeout(900)]


def fixture_files(tool: str) -> list[str]:
    return json.loads((EXPORTS / tool / "summary.json").read_text())["files"]


def is_ndjson(name: str) -> bool:
    return any(ending in name for ending in (".json", ".ndjson", ".jsonl"))




def unpacked(tool: str, folder: Path) -> list[str]:
    """The fixture's files, gunzipped (plain files are read in ranges), at their relative paths (hive folders
    kept) in ``folder``, lookup files (Adobe's ``column_headers.tsv``) beside them."""
    inputs = []
    for name in fixture_files(tool):
        source = EXPORTS / tool / name
        target = folder / (name[:-3] if name.endswith(".gz") else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.decompress(source.read_bytes()) if name.endswith(".gz") else source.read_bytes())
        for lookup in source.parent.glob("*.tsv"):
            shutil.copyfile(lookup, target.parent / lookup.name)
        inputs.append(str(target))
    return inputs


def with_lines(path: Path, inserted: dict[int, bytes], newline_at_end: bool = True) -> None:
    """``path`` with lines put in at the given 0-based positions; ``b"\\r"`` there: that line as CRLF; ``b"\\xff"``
    or ``b"\\x00"``: invalid UTF-8 or a NUL byte in that line's first JSON text value."""
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    for at in sorted(inserted, reverse=True):
        if inserted[at] == b"\r":
            lines[at] += b"\r"
        elif inserted[at] in (b"\xff", b"\x00"):
            lines[at] = lines[at].replace(b'":"', b'":"' + inserted[at] * 2, 1)
        else:
            lines.insert(at, inserted[at])
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline_at_end else b""))


@pytest.fixture
def ranges_read(monkeypatch):
    """What phase 1 read in ranges: the first line of each counted range, and the files with lines that continue
    (read whole), as the driver's count pass (`count_ranges`) found them, and the files chosen for the text source
    (by their names in the run)."""
    from logmap.spark import engine

    seen: dict[str, list] = {"counted": [], "whole": [], "ranged": recorded_text_reads(monkeypatch)}
    count = engine.count_ranges

    def counting(*args, **kwargs):
        first_line, whole = count(*args, **kwargs)
        seen["counted"].append(first_line)
        seen["whole"].extend(whole)
        return first_line, whole

    monkeypatch.setattr(engine, "count_ranges", counting)
    return seen


def ranges_per_file(seen: dict[str, list]) -> dict[str, int]:
    per_file: dict[str, int] = {}
    for first_line in seen["counted"]:
        for file, _ in first_line:
            per_file[file] = per_file.get(file, 0) + 1
    return per_file


def quoted_newline(inputs: list[str]) -> tuple[list[str], str]:
    """segment-warehouse with a user agent over two lines (a quoted newline) in ``pages.csv``."""
    pages = next(Path(p) for p in inputs if p.endswith("pages.csv"))
    text = pages.read_bytes()
    pages.write_bytes(text.replace(b"(Windows NT 10.0; Win64", b"(Windows NT 10.0;\nWin64", 1))
    return inputs, str(pages)


def escaped_newline(inputs: list[str]) -> tuple[list[str], str]:
    """Adobe's hit data cut in two files, the first with a value holding an escaped newline (``\\`` and a newline:
    the record goes on on the next line)."""
    hits = Path(inputs[0])
    lines = hits.read_bytes().split(b"\n")
    half = len(lines) // 2
    lines[5] = lines[5].replace(b"\t", b"two\\\nlines\t", 1)
    hits.write_bytes(b"\n".join(lines[:half]) + b"\n")
    second = hits.with_name("02-" + hits.name)
    second.write_bytes(b"\n".join(lines[half:]))
    return [str(hits), str(second)], str(hits)


@pytest.mark.parametrize(("tool", "spanning"), [("segment-warehouse", quoted_newline),
                                                ("adobe-datafeed", escaped_newline)])
def test_csv_files_with_records_over_several_lines_are_read_whole(spark, tmp_path, ranges_read, tool, spanning):
    """The count finds the line that goes on (an odd number of quotes; with an escape and no quotes, an odd run of
    escapes at its end): that file is read whole, the others of the run in ranges."""
    inputs, spans = spanning(unpacked(tool, tmp_path / "in")[:3])
    spark_result, local_result = both_engines(spark, tmp_path, inputs, ROOT / "mappings" / EXPORT_FIXTURES[tool],
                                              split_bytes=SPLIT)
    assert_same_output(spark_result, local_result, tmp_path)
    assert [file.removeprefix("file:") for file in ranges_read["whole"]] == [spans]
    assert set(ranges_read["ranged"]) == set(inputs)  # the others stay in ranges


def test_a_csv_range_that_cannot_be_read_is_one_line_as_locally(spark, tmp_path, ranges_read):
    """Invalid UTF-8 in a CSV file: the local reader's one-line error, naming the file, whether the sample of its
    JSON-text columns meets it (on the driver: amplitude-csv as it is) or a range does (on an executor: its rows
    four times over, the bad line past the sample)."""
    from support import TEST_KEY, convert

    from logmap.errors import InputError
    from logmap.spark import convert_spark

    mapping = ROOT / "mappings" / EXPORT_FIXTURES["amplitude-csv"]
    inputs = unpacked("amplitude-csv", tmp_path / "in")
    header, body = Path(inputs[0]).read_bytes().split(b"\n", 1)
    for copies, bad in ((1, 2000), (4, 11000)):
        Path(inputs[0]).write_bytes(header + b"\n" + body * copies)
        with_lines(Path(inputs[0]), {bad: b"\xff\xfe,broken"})
        with pytest.raises(InputError) as local:
            convert(inputs, mapping, tmp_path / f"local{copies}")
        with pytest.raises(InputError) as spark_error:
            convert_spark(spark, inputs, mapping, tmp_path / f"spark{copies}", key=TEST_KEY, split_bytes=SPLIT)
        assert str(spark_error.value) == str(local.value)
        assert "\n" not in str(spark_error.value) and inputs[0] in str(spark_error.value)
    assert ranges_per_file(ranges_read)[f"file:{inputs[0]}"] >= 2  # the second time, read in ranges


def test_a_gzip_csv_whose_start_does_not_decompress_is_one_line_as_locally(spark, tmp_path):
    """A .gz CSV whose first block is damaged (the driver reads its header line from there): the local reader's
    one-line error, not zlib's traceback."""
    from support import TEST_KEY, convert

    from logmap.errors import InputError
    from logmap.spark import convert_spark

    mapping = ROOT / "mappings" / EXPORT_FIXTURES["amplitude-csv"]
    source = EXPORTS / "amplitude-csv" / fixture_files("amplitude-csv")[0]
    damaged = tmp_path / source.name
    data = bytearray(source.read_bytes())
    data[20:40] = b"\xff" * 20  # inside the first deflate block, past the gzip header
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError) as local:
        convert([str(damaged)], mapping, tmp_path / "local")
    with pytest.raises(InputError) as spark_error:
        convert_spark(spark, [str(damaged)], mapping, tmp_path / "spark", key=TEST_KEY)
    assert str(spark_error.value) == str(local.value) and "\n" not in str(spark_error.value)


@pytest.mark.parametrize("tool", ["segment", "snowplow-csv"])
def test_tiny_ranges_hold_a_line_start_or_none(spark, tmp_path, ranges_read, tool):
    """The first 40 lines of a fixture file in 2 KiB ranges (lines of 1–2 KiB: most ranges hold one or two line
    starts, some none), one line longer than five ranges, awkward lines for NDJSON (the last line without a
    newline), a blank and a CRLF line for CSV (the header put before each range but the first). Every fixture
    export as delivered (gzip, one range a file) is compared in test_spark.py."""
    inputs = unpacked(tool, tmp_path / "in")[:1]
    path = Path(inputs[0])
    lines = path.read_bytes().split(b"\n")[:40]
    lines[20] = lines[20].replace(b"Mozilla", b"Mozilla" + b"x" * 12_000, 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    ndjson = is_ndjson(inputs[0])
    with_lines(path, AWKWARD_NDJSON if ndjson else {2: b"", 4: b"\r"}, newline_at_end=not ndjson)
    spark_result, local_result = both_engines(spark, tmp_path, inputs, ROOT / "mappings" / EXPORT_FIXTURES[tool],
                                              split_bytes=2048)
    assert_same_output(spark_result, local_result, tmp_path)
    assert ranges_per_file(ranges_read)[f"file:{path}"] >= 15 and spark_result.ledger.emitted > 0
    assert ranges_read["ranged"] == inputs and not ranges_read["whole"]
    if ndjson:
        rejects = [json.loads(line) for line in lines_of(tmp_path / "spark", "rejects.ndjson")]
        malformed = sorted(r["line"] for r in rejects if r["file"] == str(path) and r["reason"] == "malformed")
        assert {2, 5, 8, 11} <= set(malformed)  # the lines put in (a blank one too), numbered as in the file


def test_gzipped_logs_named_gz_are_read_by_the_text_source(spark, tmp_path, monkeypatch):
    """A rotated log gzipped in several members (as `cat a.gz b.gz` makes) and named .gz is read by the text source
    as one range; one that does not decompress is the local reader's one-line error."""
    from support import TEST_KEY, convert
    from test_spark import MAPPING, STOREFRONT

    from logmap.errors import InputError
    from logmap.spark import convert_spark, engine

    chosen: list[list[str]] = []
    text_files = engine.text_files

    def choosing(*args):
        plain, gzipped = text_files(*args)
        chosen.append(gzipped)
        return plain, gzipped

    monkeypatch.setattr(engine, "text_files", choosing)
    lines = STOREFRONT.read_bytes().split(b"\n")
    rotated = tmp_path / "access.log.1.gz"
    rotated.write_bytes(gzip.compress(b"\n".join(lines[:150]) + b"\n") + gzip.compress(b"\n".join(lines[150:])))
    spark_result, local_result = both_engines(spark, tmp_path, [str(rotated)], MAPPING)
    assert_same_output(spark_result, local_result, tmp_path)
    assert chosen == [[f"file:{rotated}"]]
    truncated = tmp_path / "cut.log.gz"
    truncated.write_bytes(rotated.read_bytes()[:5000])
    with pytest.raises(InputError) as local:
        convert([str(truncated)], MAPPING, tmp_path / "local-cut")
    with pytest.raises(InputError) as spark_error:
        convert_spark(spark, [str(truncated)], MAPPING, tmp_path / "spark-cut", key=TEST_KEY)
    assert str(spark_error.value) == str(local.value) and "\n" not in str(spark_error.value)


def typed_ga4(source: Path, target: Path) -> None:
    """A GA4 export file with other Parquet types: ``event_timestamp`` as a UTC timestamp (not epoch µs),
    ``ecommerce.purchase_revenue`` as decimal(12, 2), ``user_properties`` as a map (key → value struct); some
    timestamps null; row groups of 100 rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    stamps = table.column("event_timestamp").cast(pa.timestamp("us", tz="UTC"))
    timeless = pc.equal(pc.remainder(pa.array(range(table.num_rows)), 53), 7)
    stamps = pc.if_else(timeless, pa.scalar(None, stamps.type), stamps)
    table = table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp", stamps)
    properties = table.column("user_properties").combine_chunks()
    pairs = properties.flatten()
    table = table.set_column(table.schema.get_field_index("user_properties"), "user_properties",
                             pa.MapArray.from_arrays(properties.offsets, pairs.field("key"), pairs.field("value")))
    ecommerce = table.column("ecommerce").combine_chunks()
    names = [field.name for field in ecommerce.type]
    fields = [ecommerce.field(index) for index in range(len(names))]
    at = names.index("purchase_revenue")
    fields[at] = pc.round(fields[at], 2).cast(pa.decimal128(12, 2))
    table = table.set_column(table.schema.get_field_index("ecommerce"), "ecommerce",
                             pa.StructArray.from_arrays(fields, names=names, mask=ecommerce.is_null()))
    pq.write_table(table, target, row_group_size=100)


def test_parquet_timestamps_and_decimals_beside_a_map_column_through_sparks_scan(spark, tmp_path, monkeypatch):
    """Parquet types the fixtures lack (a timestamp time column, a decimal revenue, a map column the mapping does
    not read), split by row group: Spark's Parquet scan gives the local engine's records, ledger and rejects."""
    from test_spark import _recorded_scans

    scans = _recorded_scans(monkeypatch)
    inputs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for source, target in zip(sorted((EXPORTS / "ga4").glob("*.parquet"))[1:3], inputs):
        typed_ga4(source, target)
    mapping = tmp_path / "ga4-timestamp.yaml"
    shipped = (ROOT / "mappings" / EXPORT_FIXTURES["ga4"]).read_text()
    mapping.write_text(shipped.replace("time: {column: event_timestamp, unit: us}", "time: {column: event_timestamp}"))
    assert mapping.read_text() != shipped
    spark_result, local_result = both_engines(spark, tmp_path, [str(p) for p in inputs], mapping,
                                              split_bytes=inputs[0].stat().st_size // 4)
    assert_same_output(spark_result, local_result, tmp_path)
    assert len(scans) == 1 and scans[0] is not None and "user_properties" not in scans[0].columns  # projected
    assert spark_result.ledger.dropped["missing:event_timestamp"] > 0
    assert spark_result.ledger.per_type["checkout"] > 0  # purchases, with their decimal revenue


def test_the_real_snowplow_csv_in_ranges_gives_the_local_engines_output(spark, tmp_path, ranges_read):
    """Real data (Snowplow's e-commerce test events, fixtures/exports/snowplow-warehouse/SOURCES.md): 87 columns,
    entities as JSON text with doubled quotes, unpacked and cut into ~10 ranges, none read whole."""
    inputs = unpacked("snowplow-warehouse", tmp_path / "in")
    spark_result, local_result = both_engines(spark, tmp_path, inputs, ROOT / "mappings" / EXPORT_FIXTURES[
        "snowplow-warehouse"], split_bytes=128 * 1024)
    assert_same_output(spark_result, local_result, tmp_path)
    assert ranges_per_file(ranges_read)[f"file:{inputs[0]}"] >= 8 and not ranges_read["whole"]
    assert spark_result.ledger.input_rows == 834 and spark_result.ledger.emitted == 385
