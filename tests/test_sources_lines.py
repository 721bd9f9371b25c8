"""Reading inputs into line frames: numbering, chunking, compression, encodings, errors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import zstandard
from polars.testing import assert_frame_equal, assert_series_equal

from logmap.errors import InputError
from logmap.sources import lines as lines_module
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


# --- the polars fast path against the Python reference ------------------------------------------------------
#
# read_lines splits each block with polars' CSV reader; fast=False splits it the reference way (decode in Python,
# split in polars). Both must give the same frames, and both the frames of the original implementation, restated
# below over bytes in memory.


def original_frames(data: bytes, path: str, chunk_bytes: int) -> list[pl.DataFrame]:
    """The frames read_lines gave before the fast path: one per read of chunk_bytes that completes a line. A last
    line without a newline joins the frame of the last read when that read was short (the chunk was still open
    at the end of the file), so that a small file is one frame; otherwise it is a frame of its own."""
    frames: list[pl.DataFrame] = []
    pending, next_line = b"", 1
    open_at_end = False
    for start in range(0, len(data), chunk_bytes):
        block = data[start:start + chunk_bytes]
        cut = block.rfind(b"\n")
        open_at_end = False
        if cut == -1:
            pending += block
            continue
        frames.append(lines_frame((pending + block[:cut]).decode("utf-8", "replace").split("\n"), path, next_line))
        next_line += frames[-1].height
        pending = block[cut + 1:]
        open_at_end = len(block) < chunk_bytes
    if pending:
        last = lines_frame([pending.decode("utf-8", "replace")], path, next_line)
        if open_at_end:
            frames[-1] = pl.concat([frames[-1], last])
        else:
            frames.append(last)
    return frames


def assert_same_frames(actual: list[pl.DataFrame], expected: list[pl.DataFrame]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert_frame_equal(got, want)


def check_both_paths(path: Path, chunk_bytes: int, after_fast: Callable[[], None] = lambda: None) -> None:
    """The fast and the reference read of ``path`` both give the original frames (``after_fast`` runs between)."""
    expected = original_frames(path.read_bytes(), str(path), chunk_bytes)
    assert_same_frames(list(read_lines(str(path), chunk_bytes=chunk_bytes)), expected)
    after_fast()
    assert_same_frames(list(read_lines(str(path), chunk_bytes=chunk_bytes, fast=False)), expected)


@pytest.fixture
def python_splits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the blocks split the reference way (the fast path's fallback)."""
    calls: list[int] = []
    split = lines_module._split_in_python

    def counting(data: bytes | memoryview) -> pl.Series:
        calls.append(len(data))
        return split(data)

    monkeypatch.setattr(lines_module, "_split_in_python", counting)
    return calls


FIXTURES = sorted(p for p in LOGS.iterdir() if p.suffix in (".log", ".jsonl", ".md"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_bytes", [4096, lines_module.CHUNK_BYTES])
def test_fast_path_equals_reference_on_fixtures(fixture: Path, chunk_bytes: int, python_splits: list[int]) -> None:
    def fast_path_taken() -> None:
        if chunk_bytes == 4096:
            # ... and the fast path is taken: the latin1 log ends in raw gzip bytes; there, and only there, a 4 KiB
            # read holds every separator byte.
            assert len(python_splits) == (3 if fixture == LATIN1 else 0), fixture.name
            assert len(python_splits) == junk_reads(fixture.read_bytes(), 4096)

    check_both_paths(fixture, chunk_bytes, after_fast=fast_path_taken)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_fast_path_equals_reference_on_fixtures_in_tiny_chunks(fixture: Path, tmp_path: Path) -> None:
    head = write(tmp_path, fixture.name, fixture.read_bytes()[:6000])  # chunks of 7 bytes: keep it short
    check_both_paths(head, 7)


@pytest.mark.parametrize("fast", [True, False])
def test_frames_are_one_chunk(fast: bool) -> None:
    # Polars 2.1 panics in pl.format on a String column that a filter left with an empty chunk: frames made of
    # several parts (the first line, the reader's dozen chunks per block) must not reach downstream so.
    for frame in read_lines(str(LOGS / "elastic_apache_logs.log"), chunk_bytes=100_000, fast=fast):
        assert all(frame[name].n_chunks() == 1 for name in frame.columns)
        first_only = frame.filter(pl.col("_line") == pl.col("_line").min())["_raw"]
        assert pl.DataFrame({"_raw": first_only}).select(pl.format("line: {}", "_raw")).height == 1


def test_reference_path_does_not_use_polars_csv(monkeypatch: pytest.MonkeyPatch, python_splits: list[int]) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("fast=False used the CSV reader")

    monkeypatch.setattr(lines_module, "_split_with_polars", fail)
    frames = list(read_lines(str(NGINX_ERRORS), chunk_bytes=4096, fast=False))
    assert python_splits
    assert_same_frames(frames, original_frames(NGINX_ERRORS.read_bytes(), str(NGINX_ERRORS), 4096))


def junk_reads(data: bytes, size: int) -> int:
    blocks = (data[at:at + size] for at in range(0, len(data), size))
    return sum(all(sep.encode() in block for sep in lines_module._SEPARATORS) for block in blocks)


# Lines that stress each rule and each way polars' CSV reader could differ from the Python split.
AWKWARD_LINES = [
    b"", b"plain", b"\r", b"\r\r", b"a\rb", b"trailing cr\r", b"two crs\r\r", b"\x00", b"nul\x00inside",
    b"#comment", b"# another", b'"quoted"', b'"unterminated', b'a "b" c', b"'single'", b'""', b'"',
    b"a,b;c\td|e", b"  spaced  ", b"NA", b"null", b"NULL", b"None", b"nan", b"-", b"\\N",
    b"\xef\xbb\xbfbom at line start", b"bom \xef\xbb\xbf inside", b"\xef\xbf\xbd real replacement char",
    "caf\u00e9 \u20ac \U0001f600 \u0645\u0631\u062d\u0628\u0627".encode(),
    b"latin1 caf\xe9", b"\xff\xfe", b"\xfe\xff", b"\x80", b"\xbf\xbf", b"\xc0\xaf overlong slash", b"\xc1\xbf",
    b"\xe0\x80\xaf overlong 3", b"\xf0\x80\x80\xaf overlong 4", b"\xed\xa0\x80 surrogate", b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80 above max", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
    b"truncated \xc3", b"truncated \xe2\x82", b"truncated \xf0\x9f\x98", b"\xc3 then ascii", b"\xe2\x82",
    b"\xf0\x9f then \xf0\x9f\x98\x80 ok", b"\xc2\x80\xc2\x9f C1 controls", b"\xc0\x80", b"\xe0\x9f\x80",
    b"\xf0\x8f\xbf\xbf", b"\xf4\x8f\xbf\xbf max", b"lone cont \x80\x81\x82", b"\xe2\x82\r", b"end \xc3\r",
]


def awkward_text() -> bytes:
    return b"\n".join(AWKWARD_LINES) + b"\n"


def test_awkward_lines_are_what_python_decodes(tmp_path: Path, python_splits: list[int]) -> None:
    path = write(tmp_path, "awkward.log", b"first line\n" + awkward_text() * 3 + b"last\n")
    expected = [line.decode("utf-8", "replace").removesuffix("\r") for line in AWKWARD_LINES]
    assert read_all(path)["_raw"].to_list() == ["first line", *expected * 3, "last"]
    assert python_splits == []  # all of it went through polars
    for chunk_bytes in (7, 64, 4096):
        check_both_paths(path, chunk_bytes)


@pytest.mark.parametrize("data", [
    b"a\n\nb\n\n\n", b"\n", b"\n\n", b"\r\n", b"\r\n\r\n", b"a\r\nb\r\n\r\nc\r\n", b"a\nb\r", b"a\rb", b"x",
    b"no final newline\nlast", b"last ends in cr\nlast\r", b"\xef\xbb\xbfbom at file start\nb\n", b"\xef\xbb\xbf",
    b"\xe2\x82\xac split by the chunk\n" * 20, b"# only comments\n#\n##\n", b'"\n"\n"a\nb"\n',
])
def test_small_inputs_equal_reference(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "small.log", data)
    for chunk_bytes in (1, 2, 3, 7, 4096):
        check_both_paths(path, chunk_bytes)


@pytest.mark.parametrize("magic", lines_module._POLARS_MAGIC)
def test_block_starting_with_compression_magic_is_split_in_python(tmp_path: Path, magic: bytes,
                                                                 python_splits: list[int]) -> None:
    # Polars decompresses a buffer that starts with these: here the second 32-byte read starts with one. After
    # a zlib magic, "bc\n..." is a deflate stream that inflates to a line of junk, without an error.
    line = magic + b"bc"
    data = b"p" * 31 + b"\n" + line + b"\nsecond\nthird\n" + b"z" * 13 + b"\n" + line + b"\nx^y\n"
    path = write(tmp_path, "magic.log", data)
    assert read_all(path, chunk_bytes=32)["_raw"].to_list() == [
        "p" * 31, _decode(line), "second", "third", "z" * 13, _decode(line), "x^y"]
    assert python_splits  # the fallback was needed
    for chunk_bytes in (7, 14, 32, 4096):
        check_both_paths(path, chunk_bytes)
    if lines_module.compression_of(magic) is None:  # zlib: not a compression read_lines knows, so plain text
        starts = write(tmp_path, "starts.log", data[32:])
        assert read_all(starts)["_raw"].to_list()[0] == _decode(line)
        check_both_paths(starts, 4096)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def test_separator_bytes_in_the_data(tmp_path: Path, python_splits: list[int]) -> None:
    separators = [sep.encode() for sep in lines_module._SEPARATORS]
    some = write(tmp_path, "some.log", b"".join(b"a" + sep + b"b\n" for sep in separators[:-1]) + b"c\n")
    assert read_all(some)["_raw"].to_list() == [f"a{sep}b" for sep in lines_module._SEPARATORS[:-1]] + ["c"]
    assert python_splits == []  # the last one was free
    every = write(tmp_path, "every.log", b"head\n" + b"".join(b"a" + sep + b"b\n" for sep in separators) + b"tail\n")
    assert read_all(every)["_raw"].to_list() == ["head", *(f"a{sep}b" for sep in lines_module._SEPARATORS), "tail"]
    assert python_splits  # none left: split in Python
    for path in (some, every):
        for chunk_bytes in (7, 4096):
            check_both_paths(path, chunk_bytes)


@pytest.mark.parametrize("index", range(len(lines_module._SEPARATORS)))
def test_each_separator_works(index: int) -> None:
    # The block holds every separator before this one, so this one is used.
    earlier = [sep.encode() + b"x" for sep in lines_module._SEPARATORS[:index]]
    block = b"head\n" + b"\n".join([*earlier, b"a b", b"", b"#c", b"\x00", b'"q"', b"\r"]) + b"\ntail"
    first, cut = block.find(b"\n"), block.rfind(b"\n")
    fast = lines_module._split_with_polars(block, first, cut)
    assert fast is not None
    assert_series_equal(fast, lines_module._split_in_python(memoryview(block)[first + 1:cut]))


def test_reads_smaller_than_a_chunk_give_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A chunk bigger than _READ_BYTES is read in pieces; its frame must be the one a single read would give.
    monkeypatch.setattr(lines_module, "_READ_BYTES", 1000)
    data = NGINX_ERRORS.read_bytes()
    path = write(tmp_path, "pieces.log", data)
    for chunk_bytes in (999, 1000, 2500, 10_000, 50_000):
        check_both_paths(path, chunk_bytes)
    seen: list[int] = []
    list(read_lines(str(path), chunk_bytes=10_000, progress=seen.append))
    assert sum(seen) == len(data)


def test_read_ahead_gives_the_same_frames_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reads go to a thread for big chunks only; here for every chunk, in reads of 1000 bytes.
    monkeypatch.setattr(lines_module, "_READ_AHEAD_BYTES", 1)
    monkeypatch.setattr(lines_module, "_READ_BYTES", 1000)
    for chunk_bytes in (999, 4096):
        check_both_paths(NGINX_ERRORS, chunk_bytes)
    seen: list[int] = []
    list(read_lines(str(NGINX_ERRORS), chunk_bytes=10_000, progress=seen.append))
    assert seen[:-1] == [1000] * 118 and sum(seen) == 118302
    packed = gzip.compress(LATIN1.read_bytes())
    truncated = write(tmp_path, "truncated.log.gz", packed[: len(packed) // 2])
    frames: list[pl.DataFrame] = []
    with pytest.raises(InputError, match="not a valid gzip file"):
        frames.extend(read_lines(str(truncated), chunk_bytes=4096))
    assert frames  # what was read before the damage came first, as without a thread


def test_stopping_early_ends_the_reader_thread() -> None:
    # As a format sniffer does: take the first frame of a file of several chunks, the next read under way.
    before = threading.active_count()
    frames = read_lines(str(LOGS / "elastic_apache_logs.log"), chunk_bytes=lines_module._READ_AHEAD_BYTES)
    assert next(frames)["_line"][0] == 1
    assert threading.active_count() == before + 1
    frames.close()
    assert threading.active_count() == before


def random_junk_lines(rng: random.Random, count: int) -> list[bytes]:
    pieces = [*(line for line in AWKWARD_LINES if line), b" ", b"a", b"\xc3\xa9", b"\r", b"\x00"]
    pieces += [bytes([byte]) for byte in range(0x80, 0x100)]
    return [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(count)]


@pytest.mark.parametrize("chunk_bytes", [4096, 256 * 1024, lines_module.CHUNK_BYTES])
def test_random_invalid_utf8_matches_python(tmp_path: Path, chunk_bytes: int, python_splits: list[int]) -> None:
    rng = random.Random(20240611)
    data = b"\n".join(random_junk_lines(rng, 20_000)) + b"\n"  # ~1 MB, a multibyte character cut at most reads
    path = write(tmp_path, "junk.log", data)
    frames = list(read_lines(str(path), chunk_bytes=chunk_bytes))
    assert python_splits == []
    assert_same_frames(frames, original_frames(data, str(path), chunk_bytes))


def test_every_invalid_lead_and_continuation_matches_python() -> None:
    # Each byte 0x80-0xFF followed by continuation bytes of every range, truncated or not, or by ASCII.
    tails = [b"", b"\x80", b"\x8f", b"\x90", b"\x9f", b"\xa0", b"\xbf", b"\x80\x80", b"\xbf\xbf", b"\x90\x80\x80",
             b"\x80\x80\x80\x80", b"a", b"\xc3\xa9", b"\r"]
    lines = [b"z" + bytes([lead]) + one + two for lead in range(0x80, 0x100) for one in tails for two in tails]
    block = b"head\n" + b"\n".join(lines) + b"\ntail"
    first, cut = block.find(b"\n"), block.rfind(b"\n")
    fast = lines_module._split_with_polars(block, first, cut)
    assert fast is not None
    assert_series_equal(fast, lines_module._split_in_python(memoryview(block)[first + 1:cut]))


def test_row_check_catches_a_missing_or_extra_line() -> None:
    block = b"head\nalpha\n\nbeta\ntail"
    first, cut = block.find(b"\n"), block.rfind(b"\n")
    good = pl.Series("_raw", ["alpha", "", "beta"])
    check = lines_module._one_row_per_line
    assert check(good, block, first, cut, same_bytes=True)
    assert not check(good.filter(good != ""), block, first, cut, same_bytes=True)  # a blank line dropped
    assert not check(pl.Series("_raw", ["alpha", "", "bet", "a"]), block, first, cut, same_bytes=True)  # a line split
    assert not check(pl.Series("_raw", ["alpha", None, "beta"]), block, first, cut, same_bytes=True)
    crlf = b"head\r\nalpha\r\n\r\nbeta\r\ntail"
    first, cut = crlf.find(b"\n"), crlf.rfind(b"\n")
    for same_bytes in (True, False):  # with a \r, or with invalid UTF-8 replaced, the newlines are counted
        assert check(good, crlf, first, cut, same_bytes=same_bytes)
        assert not check(good.filter(good != ""), crlf, first, cut, same_bytes=same_bytes)
        assert not check(pl.Series("_raw", ["alpha", "", "bet", "a"]), crlf, first, cut, same_bytes=same_bytes)


def test_a_panic_in_the_csv_reader_falls_back_to_the_python_split(monkeypatch: pytest.MonkeyPatch,
                                                                  python_splits: list[int]) -> None:
    def panic(*args: object, **kwargs: object) -> None:
        raise pl.exceptions.PanicException("polars panicked")

    monkeypatch.setattr(lines_module.pl, "read_csv", panic)
    frames = list(read_lines(str(NGINX_ERRORS), chunk_bytes=4096))
    assert python_splits  # every block went the reference way, and the run went on
    assert_same_frames(frames, original_frames(NGINX_ERRORS.read_bytes(), str(NGINX_ERRORS), 4096))



@pytest.mark.parametrize("fixture", [LATIN1, NGINX_ERRORS, DREAMHOST])
def test_block_lines_gives_read_lines_rows_from_any_line(tmp_path: Path, fixture: Path) -> None:
    """A run of whole lines (what a Spark byte range hands over), numbered from its first line: the rows
    ``read_lines`` gives for those lines, invalid UTF-8, NUL, CRLF, lone CR and blank lines included."""
    data = fixture.read_bytes().rstrip(b"\n") + b"\n\r\n\n\x00\xc3\r\rend\r\nlast"
    path = write(tmp_path, "input.log", data)
    expected = read_all(path)
    starts = [0, *(at + 1 for at, byte in enumerate(data) if byte == 0x0A)]
    for line in (1, 2, len(starts) // 2, len(starts) - 3):
        block = data[starts[line - 1]:] + b"\n"
        assert_frame_equal(lines_module.block_lines(block, str(path), line), expected.slice(line - 1))
    with pytest.raises(ValueError, match="must end with a newline"):
        lines_module.block_lines(b"no newline", "x", 1)
