"""Reading inputs into line frames: numbering, chunking, compression, encodings, errors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
from pathlib import Path

import polars as pl
import pytest
import zstandard

from logmap.errors import InputError
from logmap.sources.lines import expand_inputs, input_size, lines_frame, read_lines, total_size

LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
NGINX_ERRORS = LOGS / "advertools_elastic_nginx_subset_with_errors.log"
LATIN1 = LOGS / "advertools_combined_latin1_2023.log"
DREAMHOST = LOGS / "advertools_dreamhost_apache_2023.log"


def read_all(path: str | Path, **kwargs: object) -> pl.DataFrame:
    frames = list(read_lines(str(path), **kwargs))  # type: ignore[arg-type]
    return pl.concat(frames) if frames else pl.DataFrame(schema={"_file": pl.String, "_line": pl.UInt64,
                                                                  "_raw": pl.String})


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- schema and numbering -----------------------------------------------------------------------------------


def test_schema_and_file_name_as_given() -> None:
    frame = read_all(NGINX_ERRORS)
    assert frame.schema == pl.Schema({"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String})
    assert frame["_file"].unique().to_list() == [str(NGINX_ERRORS)]


def test_no_trailing_newline_keeps_last_line() -> None:
    frame = read_all(NGINX_ERRORS)
    assert frame.height == 889
    assert frame["_line"].to_list() == list(range(1, 890))
    assert frame["_raw"][-1] == ('87.85.173.82 - - [17/May/2015:15:05:30 +0000] "GET /downloads/product_2 HTTP/1.1" '
                                 '404 334 "-" "Wget/1.13.4 (linux-gnu)"')
    errors = frame.filter(pl.col("_raw").str.starts_with("Error line"))
    assert errors.rows() == [(str(NGINX_ERRORS), 3, "Error line 1"), (str(NGINX_ERRORS), 12, "Error line 2"),
                             (str(NGINX_ERRORS), 21, "Error line 3"), (str(NGINX_ERRORS), 22, "Error line 4")]


def test_final_newline_adds_no_line_but_blank_middle_line_counts() -> None:
    frame = read_all(DREAMHOST)
    assert frame.height == 130  # wc -l
    assert frame.filter(pl.col("_raw") == "")["_line"].to_list() == [87]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 7, 100, 4096, 65536])
def test_line_numbers_continue_across_chunks(chunk_bytes: int) -> None:
    whole = read_all(NGINX_ERRORS)
    frames = list(read_lines(str(NGINX_ERRORS), chunk_bytes=chunk_bytes))
    assert len(frames) > 1
    chunked = pl.concat(frames)
    assert chunked.equals(whole)
    assert chunked["_line"].to_list() == list(range(1, 890))


def test_chunking_with_blank_lines_and_line_longer_than_chunk(tmp_path: Path) -> None:
    data = b"first\n\n" + b"x" * 50 + b"\n\nlast\n"
    path = write(tmp_path, "a.log", data)
    expected = ["first", "", "x" * 50, "", "last"]
    for chunk_bytes in (1, 3, 8, 10, 51, 52, 1000):
        frame = read_all(path, chunk_bytes=chunk_bytes)
        assert frame["_raw"].to_list() == expected, chunk_bytes
        assert frame["_line"].to_list() == [1, 2, 3, 4, 5]


def test_line_ending_rules(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "crlf.log", b"a\r\nb\r\n\r\nc\r\n"))["_raw"].to_list() == ["a", "b", "", "c"]
    assert read_all(write(tmp_path, "mixed.log", b"a\r\nb\nc\r"))["_raw"].to_list() == ["a", "b", "c"]
    assert read_all(write(tmp_path, "inner-cr.log", b"a\rb\n"))["_raw"].to_list() == ["a\rb"]
    assert read_all(write(tmp_path, "blank.log", b"\n\n"))["_raw"].to_list() == ["", ""]
    assert read_all(write(tmp_path, "empty.log", b"")).height == 0
    assert list(read_lines(str(tmp_path / "empty.log"))) == []


def test_crlf_across_chunk_boundaries(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.log", b"alpha\r\nbeta\r\n\r\ngamma\r\n")
    for chunk_bytes in (1, 2, 6, 7, 8):
        assert read_all(path, chunk_bytes=chunk_bytes)["_raw"].to_list() == ["alpha", "beta", "", "gamma"]


# --- encodings --------------------------------------------------------------------------------------------


def test_invalid_utf8_becomes_replacement_character(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.log", b"caf\xe9 ok\n\xff\xfe\nplain\n")
    assert read_all(path)["_raw"].to_list() == ["caf\ufffd ok", "\ufffd\ufffd", "plain"]


def test_latin1_fixture_non_utf8_lines_are_exactly_the_appended_gzip_bytes() -> None:
    frame = read_all(LATIN1)
    assert frame.height == 200
    replaced = frame.filter(pl.col("_raw").str.contains("\ufffd", literal=True))["_line"].to_list()
    assert replaced == list(range(170, 201))


# --- compression ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "compress"), [
    ("copy.log.gz", gzip.compress),
    ("copy.log.bz2", bz2.compress),
    ("copy.log.xz", lzma.compress),
    ("copy.log.zst", lambda data: zstandard.ZstdCompressor().compress(data)),
    ("misnamed.log", gzip.compress),  # detected by magic bytes, not by name
])
def test_compressed_equals_plain(tmp_path: Path, name: str, compress: object) -> None:
    data = NGINX_ERRORS.read_bytes()
    path = write(tmp_path, name, compress(data))  # type: ignore[operator]
    plain = read_all(NGINX_ERRORS)
    for chunk_bytes in (64 * 1024 * 1024, 1000):
        packed = read_all(path, chunk_bytes=chunk_bytes)
        assert packed["_raw"].equals(plain["_raw"])
        assert packed["_line"].equals(plain["_line"])
        assert packed["_file"].unique().to_list() == [str(path)]


def test_multi_member_gzip(tmp_path: Path) -> None:
    path = write(tmp_path, "multi.gz", gzip.compress(b"a\nb\n") + gzip.compress(b"c\n"))
    assert read_all(path)["_raw"].to_list() == ["a", "b", "c"]


def test_gz_name_on_plain_text_is_read_as_text(tmp_path: Path) -> None:
    path = write(tmp_path, "not-really.gz", b"hello\nworld\n")
    assert read_all(path)["_raw"].to_list() == ["hello", "world"]


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    packed = gzip.compress(LATIN1.read_bytes())
    path = write(tmp_path, "truncated.log.gz", packed[: len(packed) // 2])
    with pytest.raises(InputError) as error:
        read_all(path)
    message = str(error.value)
    assert message.startswith(f"cannot read {path}: not a valid gzip file (")
    assert "truncated" in message
    assert "\n" not in message


def test_corrupt_gzip_is_an_input_error(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(b"line\n" * 1000))
    packed[20:40] = b"\x00" * 20
    path = write(tmp_path, "corrupt.gz", bytes(packed))
    with pytest.raises(InputError, match=r"^cannot read .*corrupt\.gz: not a valid gzip file \(.+\)\.$"):
        read_all(path)


def test_corrupt_bz2_and_zstd_name_their_format(tmp_path: Path) -> None:
    bz = write(tmp_path, "bad.bz2", bz2.compress(b"x\n" * 1000)[:30])
    with pytest.raises(InputError, match="not a valid bzip2 file"):
        read_all(bz)
    zs = write(tmp_path, "bad.zst", b"\x28\xb5\x2f\xfd" + b"\xff" * 40)
    with pytest.raises(InputError, match="not a valid zstd file"):
        read_all(zs)


# --- stdin ------------------------------------------------------------------------------------------------


class _FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress])
def test_stdin(monkeypatch: pytest.MonkeyPatch, compress: object) -> None:
    data = NGINX_ERRORS.read_bytes()
    monkeypatch.setattr(sys, "stdin", _FakeStdin(compress(data)))  # type: ignore[operator]
    seen: list[int] = []
    frame = read_all("-", chunk_bytes=4096, progress=seen.append)
    assert frame["_file"].unique().to_list() == ["-"]
    assert frame["_raw"].equals(read_all(NGINX_ERRORS)["_raw"])
    assert sum(seen) == len(data)  # decompressed bytes: there is no file size to compare with


def test_stdin_shorter_than_magic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _FakeStdin(b"x"))
    assert read_all("-")["_raw"].to_list() == ["x"]


# --- progress and sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, bz2.compress])
def test_progress_adds_up_to_size_on_disk(tmp_path: Path, compress: object) -> None:
    path = write(tmp_path, "p.log", compress(LOGS.joinpath("apache_french_blog_2020.log").read_bytes()))  # type: ignore[operator]
    seen: list[int] = []
    read_all(path, chunk_bytes=10_000, progress=seen.append)
    assert all(n > 0 for n in seen)
    assert sum(seen) == path.stat().st_size == input_size(str(path))


def test_progress_is_reported_per_chunk() -> None:
    seen: list[int] = []
    read_all(NGINX_ERRORS, chunk_bytes=10_000, progress=seen.append)
    assert seen[:-1] == [10_000] * 11
    assert sum(seen) == 118302


def test_sizes() -> None:
    assert input_size("-") is None
    assert input_size(str(LOGS / "nope.log")) is None
    assert total_size([str(NGINX_ERRORS), str(LATIN1)]) == 118302 + 43011
    assert total_size([str(NGINX_ERRORS), "-"]) is None
    assert total_size([]) == 0


# --- naming inputs ----------------------------------------------------------------------------------------


def test_expand_inputs_sorts_globs_and_deduplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("b.log", "a.log", "c.log.gz", "notes.txt"):
        write(tmp_path, name, b"x\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "d.log", b"x\n")
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["*.log*"]) == ["a.log", "b.log", "c.log.gz"]
    assert expand_inputs(["b.log", "*.log", "./a.log", "-", "-"]) == ["b.log", "a.log", "-"]
    assert expand_inputs(["**/*.log"]) == ["a.log", "b.log", "sub/d.log"]


def test_expand_inputs_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.log", b"x\n")
    with pytest.raises(InputError, match=r"^no such file: 'missing\.log'\.$"):
        expand_inputs(["a.log", "missing.log"])
    with pytest.raises(InputError, match=r"^no such file: nothing matches the pattern 'logs/\*\.gz'\.$"):
        expand_inputs(["logs/*.gz"])
    with pytest.raises(InputError, match=r"is a directory"):
        expand_inputs([str(tmp_path)])
    with pytest.raises(InputError, match=r"^no input given"):
        expand_inputs([])


def test_read_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^no such file: '.*gone\.log'\.$"):
        read_all(tmp_path / "gone.log")


def test_lines_frame() -> None:
    frame = lines_frame(["a", "b\r"], file="<test>")
    assert frame.rows() == [("<test>", 1, "a"), ("<test>", 2, "b")]
    assert frame.schema == pl.Schema({"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String})
