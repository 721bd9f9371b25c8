"""The Spark engine reads plain logs in byte ranges (`logmap.spark.logs`) and writes to Hadoop file systems
(`logmap.spark.output`): with a tiny split size, every line keeps the local engine's number (rejects carry the same
file and line), awkward bytes are read as the local reader reads them, compressed or misnamed files are read whole,
visitors whose events span ranges and files get the same durations, and a viewfs:// mount (a Hadoop file system
other than file:, shipped with Spark) serves as input and output."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from support import TEST_KEY, convert
from test_spark import MAPPING, PARTITIONS, STOREFRONT, assert_same_output, both_engines, lines_of, records_of

from logmap.pipeline.runner import RunOptions

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "fixtures" / "logs"
#: Byte ranges this small cut the fixtures into about 40 ranges, with lines across every boundary.
SPLIT = 128 * 1024
#: Fixture logs of the storefront mapping's format (combined), and a common one whose lines are all malformed:
#: every one of its line numbers is in the rejects.
COMBINED_LOGS = ["advertools_combined_latin1_2023.log", "advertools_dreamhost_apache_2023.log",
                 "advertools_elastic_nginx_subset_with_errors.log", "apache_french_blog_2020.log",
                 "elastic_apache_logs.log", "nasa_jul95_4000.log", "zanbil_shop_2019_3000.log"]
LINE = (b'203.0.113.%d - - [01/Mar/2024:10:00:%02d +0000] "GET /products/%d HTTP/1.1" 200 512 "-" '
        b'"Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"')

pytestmark = [pytest.mark.usefixtures("anonymous_key"), pytest.mark.timeout(900)]


def awkward_log() -> bytes:
    """Lines a byte-range reader could get wrong: CRLF, a lone CR inside a line, NUL bytes, invalid UTF-8 (also a
    multibyte character cut), blank lines, a line longer than a range, and a last line without a newline."""
    lines = [LINE % (i % 7, i % 60, i) for i in range(1, 1200)]
    lines[10] += b"\r"  # CRLF
    lines[20] = lines[20].replace(b"Linux", b"Li\rnux")
    lines[30] = lines[30].replace(b"Linux", b"Li\x00nux")
    lines[40] = lines[40].replace(b"Linux", b"Li\xff\xfenux")
    lines[50] = lines[50].replace(b"Linux", b"Li\xe2\x82nux")
    lines[60] = b""
    lines[61] = b"\r"
    lines[70] = b"\x00\x01 binary junk \xc3"
    lines[80] = lines[80].replace(b"/products/81", b"/products/81?q=" + b"x" * (3 * SPLIT))
    return b"\n".join(lines)  # no newline at the end


def _recorded_counts(monkeypatch) -> list[dict[tuple[str, int], int]]:
    """The first line of each byte range, as the runs' counts (`logmap.spark.logs.count_ranges`) found them."""
    from logmap.spark import engine

    counts: list[dict[tuple[str, int], int]] = []

    def recording(*args):
        first, whole = count_ranges(*args)
        counts.append(first)
        return first, whole

    count_ranges = engine.count_ranges
    monkeypatch.setattr(engine, "count_ranges", recording)
    return counts


def test_plain_logs_in_byte_ranges_give_the_local_engines_lines(spark, tmp_path, monkeypatch):
    """Fixture logs and awkward bytes in 128 KiB ranges; compressed and misnamed files beside them, read whole."""
    from logmap.spark.logs import text_files

    awkward = tmp_path / "awk ward#1.log"  # a space and a '#': Spark URL-encodes its names of files
    awkward.write_bytes(awkward_log())
    gzipped = tmp_path / "rotated.log.gz"
    gzipped.write_bytes(gzip.compress(awkward_log()[:20_000] + b"\n") + gzip.compress(b"second member\n"))
    gzip_unnamed = tmp_path / "rotated.log.1"  # gzip by content only: the local reader decompresses it
    gzip_unnamed.write_bytes(gzip.compress(awkward_log()[:9_000]))
    plain_named_gz = tmp_path / "plain.gz"  # text despite its name: Hadoop would try to gunzip it
    plain_named_gz.write_bytes(awkward_log()[:5_000])
    logs = [str(STOREFRONT), *(str(LOGS / name) for name in COMBINED_LOGS), str(awkward), str(gzipped),
            str(gzip_unnamed), str(plain_named_gz)]

    counts = _recorded_counts(monkeypatch)
    spark_result, local_result = both_engines(spark, tmp_path, logs, MAPPING, split_bytes=SPLIT)
    assert_same_output(spark_result, local_result, tmp_path)
    assert lines_of(tmp_path / "spark", "rejects.ndjson") == lines_of(tmp_path / "local", "rejects.ndjson")
    rejects = [json.loads(line) for line in lines_of(tmp_path / "spark", "rejects.ndjson")]
    nasa = str(LOGS / "nasa_jul95_4000.log")
    assert [r["line"] for r in rejects if r["file"] == nasa] == list(range(1, 4001))

    # The plain files were read in ranges (the compressed and misnamed ones were not), many to a file.
    listed = [f"file:{path}" for path in logs]
    ranged = text_files(spark, listed)[0]
    assert sorted(ranged) == sorted(listed[:-3])
    assert len(counts) == 1  # one count of lines per range, over the files bigger than a range
    starts = {start: line for (file, start), line in counts[0].items() if file.endswith("/elastic_apache_logs.log")}
    assert len(starts) >= 15 and min(starts.values()) == 1 and max(starts.values()) < 10_000


def test_visitors_spanning_ranges_and_files_get_the_same_durations(spark, tmp_path):
    """A 20,000-line generated log dealt round-robin into three files (every visitor's events span all three),
    each file cut into about 7 ranges, given as file:// URLs: the records, ledger and rejects (file and line) of
    the local engine on the same files. (Not those of the whole log: events of one second are ordered by file,
    then line.)"""
    generated = subprocess.run([sys.executable, str(ROOT / "bench" / "storefront_log.py"), "--lines", "20000",
                                "--visitors", "300", "--seed", "3"], capture_output=True, check=True).stdout
    lines = generated.splitlines(keepends=True)
    parts = []
    for index in range(3):
        part = tmp_path / f"part{index}.log"
        part.write_bytes(b"".join(lines[index::3]))
        parts.append(str(part))
    spark_result, local_result = both_engines(spark, tmp_path, [f"file://{p}" for p in parts], MAPPING,
                                              local_inputs=parts, split_bytes=256 * 1024)
    assert spark_result.ledger.input_rows == 20_000
    assert_same_output(spark_result, local_result, tmp_path, same_rejects=False)  # files named by URL here
    spark_rejects = [json.loads(line) for line in lines_of(tmp_path / "spark", "rejects.ndjson")]
    local_rejects = [json.loads(line) for line in lines_of(tmp_path / "local", "rejects.ndjson")]
    assert [(r["file"], r["line"], r["reason"]) for r in spark_rejects] == \
        [(f"file://{r['file']}", r["line"], r["reason"]) for r in local_rejects]
    durations = [r for r in records_of(tmp_path / "spark") if '"duration"' in r]
    assert len(durations) > 1000


def test_a_hadoop_file_system_for_input_and_output(spark, tmp_path, monkeypatch):
    """viewfs:// (Hadoop's mount-table file system, in Spark's own jars) mounted on local folders stands for
    s3a://, gs://, abfs:// or hdfs://: logs read from it in ranges, the output copied into it, report.json last;
    a non-empty output refused unless overwrite. (Hadoop's checksummed local file system writes a .crc beside
    each file; object stores do not.)"""
    from logmap.errors import OutputError
    from logmap.spark import convert_spark

    table = f"logmap{uuid.uuid4().hex[:8]}"  # a mount table of its own: Hadoop caches file systems by authority
    logs, out = tmp_path / "logs", tmp_path / "out"
    logs.mkdir()
    out.mkdir()
    (logs / "access.log").write_bytes(STOREFRONT.read_bytes())
    (logs / "awkward.log").write_bytes(awkward_log())
    conf = spark._jsc.hadoopConfiguration()
    conf.set(f"fs.viewfs.mounttable.{table}.link./logs", logs.as_uri())
    conf.set(f"fs.viewfs.mounttable.{table}.link./out", out.as_uri())
    url = f"viewfs://{table}"

    from logmap.spark import engine

    monkeypatch.setattr(engine, "LIST_ON_DRIVER", 1)  # the glob's two files listed by a Spark job, as many files are
    counts = _recorded_counts(monkeypatch)
    result = convert_spark(spark, [f"{url}/logs/*.log"], MAPPING, f"{url}/out/run", key=TEST_KEY,
                           partitions=PARTITIONS, split_bytes=SPLIT)
    ranges = [start for file, start in counts[0] if file == f"{url}/logs/awkward.log"]
    assert len(ranges) >= 3  # read through the Hadoop file system in byte ranges, not whole
    local = convert([str(logs / "access.log"), str(logs / "awkward.log")], MAPPING, tmp_path / "local",
                    options=RunOptions(buckets=PARTITIONS))
    assert result.ledger.to_dict() == local.ledger.to_dict()
    run = out / "run"
    assert Counter(records_of(run)) == Counter(records_of(tmp_path / "local"))
    report = json.loads((run / "report.json").read_text())
    assert report["ledger"] == local.ledger.to_dict() and report["output"]["engine"] == "spark"
    spark_rejects = [json.loads(line) for line in lines_of(run, "rejects.ndjson")]
    local_rejects = [json.loads(line) for line in lines_of(tmp_path / "local", "rejects.ndjson")]
    assert [(Path(r["file"]).name, r["line"], r["raw"]) for r in spark_rejects] == \
        [(Path(r["file"]).name, r["line"], r["raw"]) for r in local_rejects]
    assert all(r["file"].startswith(f"{url}/logs/") for r in spark_rejects)
    assert not list(tmp_path.glob("**/logmap-output-*"))  # the local staging is gone

    with pytest.raises(OutputError, match="is not empty"):
        convert_spark(spark, [f"{url}/logs/access.log"], MAPPING, f"{url}/out/run", key=TEST_KEY)
    convert_spark(spark, [f"{url}/logs/access.log"], MAPPING, f"{url}/out/run", key=TEST_KEY, overwrite=True,
                  batch_size=100)
    assert sorted(p.name for p in run.iterdir() if p.suffix != ".crc") == \
        ["interactions-00001.ndjson", "interactions-00002.ndjson", "interactions-00003.ndjson", "rejects.ndjson",
         "report.json"]
    with pytest.raises(OutputError, match="cannot write to nofs://x/out"):
        convert_spark(spark, [str(STOREFRONT)], MAPPING, "nofs://x/out", key=TEST_KEY)


#: Real one-line formats other than combined (fixtures/logs/SOURCES.md): read in ranges as the combined logs are.
OTHER_FORMATS = {"caddy": "caddy_json_lnav.jsonl", "traefik": "traefik_doc_example.jsonl",
                 "nginx_json": "nginx_json_doc_example.jsonl", "alb": "alb_aws_doc_example.log",
                 "elb": "elb_aws_doc_example.log", "haproxy": "haproxy_doc_example.log"}


@pytest.mark.parametrize("fmt", sorted(OTHER_FORMATS))
def test_other_one_line_formats_in_byte_ranges_give_the_local_engines_lines(spark, tmp_path, monkeypatch, fmt):
    """JSON-line and load-balancer logs (0.5–5 KB) cut into ranges of 200 bytes, or an eighth of the file when
    that is more (caddy's 1.1–1.4 KB lines: 9 ranges, not 26; a task each), shorter than most lines, so lines
    cross every boundary: the same records, ledger and rejects (file, line)."""
    from logmap.spark.logs import text_files

    log = str(LOGS / OTHER_FORMATS[fmt])
    split = max(200, Path(log).stat().st_size // 8)
    assert text_files(spark, [f"file:{log}"])[0] == [f"file:{log}"]  # read in ranges, not whole
    counts = _recorded_counts(monkeypatch)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.read_text().replace("format: combined", f"format: {fmt}"))
    spark_result, local_result = both_engines(spark, tmp_path, [log], mapping, split_bytes=split)
    assert spark_result.ledger.input_rows > 0
    assert len(counts) == 1 and len(counts[0]) >= 2  # lines counted in two ranges or more
    assert_same_output(spark_result, local_result, tmp_path)
    assert lines_of(tmp_path / "spark", "rejects.ndjson") == lines_of(tmp_path / "local", "rejects.ndjson")
