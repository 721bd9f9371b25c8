"""Read input files into frames of lines: ``_file`` (String), ``_line`` (UInt64, 1-based), ``_raw`` (String).

Why it looks like this:

* **Bounded memory.** A file is read in chunks of ``chunk_bytes`` (64 MiB by default) of *decompressed* data; a
  chunk ends at its last newline and the remainder is carried into the next one, so a line is never cut in two
  and ``_line`` numbers run on across chunks. Reads are of at most 16 MiB, and a thread reads one ahead.
* **Columnar splitting.** Lines are split by polars' CSV reader, set up to see one text column per line
  (``_split_with_polars``): ~5x faster than decoding a block in Python and splitting it with ``str.split`` +
  ``explode`` (``_split_in_python``, the reference; 16 MiB of log: 20 ms → 4 ms). The reader is used only where
  it is known to give exactly what the reference gives (the tests hold the two to each other on every kind of
  awkward input), and its row count is checked on every block; a block it cannot be trusted with (binary junk,
  a compression magic at its start) is split the reference way. Never a Python loop over lines.
* **Invalid UTF-8.** Bytes that are not valid UTF-8 become U+FFFD (the replacement character), one per
  invalid sequence, exactly as Python's ``errors='replace'`` does. Nothing is dropped here: a line whose
  structure survives (an odd byte in a user agent) still parses downstream; one whose structure does not
  (binary garbage) becomes ``malformed`` in ``logmap.sources.accesslog``, with its ``_raw`` kept for the rejects.
* **Line rules.** A line ends at ``\\n``; one trailing ``\\r`` is removed (CRLF files). The newline at the very end
  of a file does not start another line (``wc -l`` counting, plus a last line without newline if there is
  one), but a blank line in the middle is a line: it is kept so that downstream can count it as malformed and
  ``input = emitted + dropped`` stays exact.
* **Compression by content.** gzip (including multi-member), bzip2, xz and zstd are recognised by their magic
  bytes, whatever the file is called; a ``.gz`` name on a plain file is read as plain text. ``-`` is standard
  input (which may be compressed too).
* **Errors a user can fix** (missing file, no glob match, a corrupt or truncated archive) raise ``InputError``
  with one sentence naming the file, never a traceback.
"""

from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import io
import lzma
import os
import sys
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import BinaryIO, cast

import polars as pl

from logmap.background import read_ahead
from logmap.errors import InputError

CHUNK_BYTES = 64 * 1024 * 1024
STDIN = "-"
LINE_SCHEMA = {"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String}

ProgressCallback = Callable[[int], None]

# Magic bytes → compression name. Checked against the first bytes of the content, not the file name.
_MAGIC: dict[bytes, str] = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}
_HEAD_BYTES = max(len(m) for m in _MAGIC)


# ---------------------------------------------------------------------------------------------------------------
# Naming inputs


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """The files named or matched by ``patterns``, in order, each once; ``-`` stands for standard input.

    A glob's matches are sorted (so runs are reproducible whatever the file system's order). A file named twice
    — directly, through two globs, or as ``./x`` and ``x`` — is read once, as the name first given, because
    reading it twice would double its records. A pattern that matches nothing is an error rather than a silent
    empty run: it is almost always a typo.
    """
    if not patterns:
        raise InputError("no input given: name at least one file, a glob such as 'logs/*.gz', or - for stdin.")
    chosen: dict[str, str] = {}  # identity (real path, or '-') → the name as given
    for pattern in patterns:
        if pattern == STDIN:
            chosen.setdefault(STDIN, STDIN)
            continue
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"no such file: nothing matches the pattern '{pattern}'.")
        elif os.path.isdir(pattern):
            raise InputError(f"input '{pattern}' is a directory: name its files, e.g. '{pattern.rstrip('/')}/*.log'.")
        elif not os.path.exists(pattern):
            raise InputError(f"no such file: '{pattern}'.")
        else:
            matches = [pattern]
        for match in matches:
            chosen.setdefault(os.path.realpath(match), match)
    return list(chosen.values())


def input_size(path: str) -> int | None:
    """Bytes on disk of one input, or None when unknown (stdin, a pipe): the total of a progress bar."""
    if path == STDIN:
        return None
    try:
        return os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        return None


def total_size(paths: Sequence[str]) -> int | None:
    """Bytes on disk of all inputs, or None when any size is unknown (a bar without a total beats a wrong one).

    ``read_lines``' ``progress`` callback reports bytes of these same on-disk files (compressed bytes for an
    archive), so its increments add up to exactly this total.
    """
    total = 0
    for path in paths:
        size = input_size(path)
        if size is None:
            return None
        total += size
    return total


# ---------------------------------------------------------------------------------------------------------------
# Opening


def compression_of(head: bytes) -> str | None:
    """'gzip', 'bzip2', 'xz' or 'zstd' if ``head`` (the first bytes of a file) starts with that magic, else None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


class _Prefixed(io.RawIOBase):
    """A non-seekable stream (stdin) with the bytes already read to sniff its magic put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _decompressing(kind: str | None, raw: BinaryIO) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


@contextmanager
def open_input(path: str) -> Iterator[tuple[BinaryIO, str | None, Callable[[], int]]]:
    """(decompressed stream, compression name, position in the raw input) for ``path`` or ``-``.

    The position is what a progress bar wants: bytes of the file consumed so far (compressed bytes for an
    archive), which ends at the file's size.
    """
    if path == STDIN:
        source: BinaryIO = sys.stdin.buffer
        head = source.read(_HEAD_BYTES) or b""
        kind = compression_of(head)
        raw: BinaryIO = io.BufferedReader(_Prefixed(head, source))
        yield _decompressing(kind, raw), kind, lambda: -1  # no raw position: the reader counts bytes read
        return
    with open(path, "rb") as handle:
        kind = compression_of(handle.read(_HEAD_BYTES))
        handle.seek(0)
        yield _decompressing(kind, handle), kind, handle.tell


# ---------------------------------------------------------------------------------------------------------------
# Splitting


# Reads are at most this big, whatever ``chunk_bytes`` is: glibc serves a larger allocation with a fresh mmap
# that the kernel zero-fills page by page on every read (the 495 MB bench file took 0.29 s to read in 64 MiB
# reads, 0.05 s in 16 MiB ones, which reuse freed memory). A chunk of more is read in several pieces.
_READ_BYTES = 16 * 1024 * 1024

# Chunks from this size on are read ahead in a thread (``_read_ahead``). Handing a read to a thread costs ~60 µs,
# more than a small read saves.
_READ_AHEAD_BYTES = 1024 * 1024

# Polars' CSV reader, which splits a block into lines, decompresses a buffer that starts with one of these (gzip,
# zlib, zstd; of all two-byte prefixes, polars 2.1 acts on these and no other). "x^" is plain ASCII, so a block
# that starts with one is split in Python.
_POLARS_MAGIC = (b"\x1f\x8b", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x28\xb5\x2f\xfd")

# Field separators for that reader, in order of preference: ASCII control bytes (it takes no other) that a text
# log does not contain. It must see one field per line, so a block containing every one (binary junk) is split
# in Python.
_SEPARATORS = tuple(chr(byte) for byte in (0x1F, 0x1E, 0x1D, 0x1C, *range(0x01, 0x09), 0x0B, 0x0C,
                                            *range(0x0E, 0x1C), 0x7F))


def lines_frame(lines: Sequence[str], file: str = "<lines>", first_line: int = 1) -> pl.DataFrame:
    """A line frame from strings already in memory (a mapping's test cases, ``logmap try 'LINE'``)."""
    return pl.DataFrame({
        "_file": [file] * len(lines),
        "_line": list(range(first_line, first_line + len(lines))),
        "_raw": [line.removesuffix("\r") for line in lines],
    }, schema=LINE_SCHEMA)


def _decode(data: bytes | memoryview) -> str:
    return str(data, "utf-8", "replace")


def _frame(parts: list[pl.Series], path: str, first_line: int) -> pl.DataFrame:
    """The line frame of ``parts`` (String series of lines, in order), numbered from ``first_line``."""
    # One chunk: the reader returns a dozen per block, and polars 2.1 panics in ``pl.format`` on a String column
    # that a filter left with an empty chunk (exports.py formats its malformed lines so). Cheap: ~3 ms for a
    # 64 MiB chunk, the 16-byte row views are copied, the text is not.
    raw = pl.concat(parts, rechunk=True) if len(parts) > 1 else parts[0].rechunk()
    return pl.DataFrame([
        pl.repeat(path, raw.len(), dtype=pl.String, eager=True).alias("_file"),
        pl.int_range(first_line, first_line + raw.len(), dtype=pl.UInt64, eager=True).alias("_line"),
        raw.alias("_raw"),
    ])


def _one_line(data: bytes | memoryview) -> pl.Series:
    """The line ``data`` (no newline in it) as a one-row series."""
    return pl.Series("_raw", [_decode(data).removesuffix("\r")], dtype=pl.String)


def _split_in_python(data: bytes | memoryview) -> pl.Series:
    """The lines of ``data`` (whole lines, the last without its newline): the reference way, decoding in Python."""
    return pl.Series("_raw", [_decode(data)], dtype=pl.String).str.split("\n").explode().str.strip_suffix("\r")


def _split_with_polars(block: bytes, first: int, cut: int) -> pl.Series | None:
    """The lines between the first newline (at ``first``) and the last (at ``cut``) of ``block``, or None where
    polars' CSV reader cannot be trusted to give exactly what ``_split_in_python`` would.

    The reader parses the whole block, partial first and last lines included, because slicing a block is a copy
    of it. Set up as one column with no quoting, no comments and no nulls, it gives one row per line, strips one
    ``\r`` before a newline, and its ``utf8-lossy`` decoding replaces invalid UTF-8 as Python's ``'replace'``
    does (``tests/test_sources_lines.py`` holds each of these to the Python path, byte sequence by sequence).
    """
    if block.startswith(_POLARS_MAGIC):
        return None
    separator = next((sep for sep in _SEPARATORS if block.find(sep.encode()) == -1), None)
    if separator is None:
        return None
    # Strict UTF-8 first: 30% faster than lossy, and it keeps every row as long as its bytes, which the check
    # of the row count relies on. It fails on invalid UTF-8, in the lines or in a multibyte character cut in
    # two at either end of the block.
    for encoding in ("utf8", "utf8-lossy"):
        try:
            rows = pl.read_csv(block, has_header=False, separator=separator, quote_char=None, comment_prefix=None,
                               schema={"_raw": pl.String}, empty_string_is_null=False, raise_if_empty=False,
                               encoding=encoding).to_series()
            break
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError):
            # Lossy failing too: whatever it was, the Python split will do. A panic (polars 2.1 panicked on odd
            # input elsewhere) is a BaseException, caught here so that it costs speed, not the run.
            continue
    else:
        return None
    partial_last = cut + 1 < len(block)
    lines = rows.slice(1, max(rows.len() - 1 - partial_last, 0))  # without the partial lines at either end
    return lines if _one_row_per_line(lines, block, first, cut, same_bytes=encoding == "utf8") else None


def _one_row_per_line(lines: pl.Series, block: bytes, first: int, cut: int, *, same_bytes: bool) -> bool:
    """Whether ``lines`` has one (non-null) row per line of ``block[first + 1:cut]``.

    Counting the newlines costs as much as the parse, so first the bytes are accounted for: where the rows hold
    exactly the bytes of their lines (``same_bytes``: no invalid UTF-8 was replaced), their text plus one
    newline between each two fill the span exactly, unless a ``\r`` was stripped. A dropped blank line, a
    truncated or a decompressed row all break that sum. Only when it does not add up are the newlines counted.
    """
    if lines.len() == 0 or lines.null_count():
        return False
    if same_bytes and lines.str.len_bytes().sum() + lines.len() - 1 == cut - first - 1:
        return True
    return lines.len() == block.count(b"\n", first + 1, cut) + 1


def _take_lines(block: bytes, pending: list[bytes], lines: list[pl.Series], fast: bool) -> list[bytes]:
    """Append the lines that ``block`` completes to ``lines``; return what is pending after it.

    ``pending`` holds the bytes read since the last newline (the start of ``block``'s first line).
    """
    cut = block.rfind(b"\n")
    if cut == -1:
        return [*pending, block]
    view = memoryview(block)
    first = block.find(b"\n")
    lines.append(_one_line(b"".join([*pending, view[:first]]) if pending else view[:first]))
    if first < cut:
        between = _split_with_polars(block, first, cut) if fast else None
        lines.append(between if between is not None else _split_in_python(view[first + 1:cut]))
    return [block[cut + 1:]] if cut + 1 < len(block) else []


def block_lines(block: bytes, path: str, first_line: int) -> pl.DataFrame:
    """The line frame of ``block``: whole lines of a file, each ending with a newline, numbered from
    ``first_line``. Split, decoded and stripped of one ``\\r`` exactly as :func:`read_lines` does a chunk (the
    Spark engine's byte-range splits of a log go through here)."""
    lines: list[pl.Series] = []
    if _take_lines(block, [], lines, True):
        raise ValueError("block_lines: the block must end with a newline")
    return _frame(lines, path, first_line) if lines else pl.DataFrame(schema=LINE_SCHEMA)


def read_decompressed(path: str, size: int = -1) -> tuple[bytes, str | None]:
    """(the first ``size`` bytes of ``path`` decompressed, or all of them; its compression). A file that does
    not decompress is the one-line InputError reading its lines gives, not the decompressor's exception."""
    kind = None
    try:
        with open_input(path) as (stream, kind, _):
            return stream.read(size), kind
    except Exception as error:
        found = _decoding_error(path, kind, error)
        if found is None:
            raise
        raise found from None


def _decoding_error(path: str, kind: str | None, error: Exception) -> InputError | None:
    """The one-line InputError for what reading a (compressed) input can raise, or None for anything else."""
    if isinstance(error, EOFError | zlib.error | lzma.LZMAError | OSError) or type(error).__name__ == "ZstdError":
        return _read_error(path, kind, error)  # ZstdError: zstandard's own exception type
    return None


def _read_error(path: str, kind: str | None, error: BaseException) -> InputError:
    what = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz", "zstd": "zstd"}.get(kind or "", "")
    reason = str(error) or type(error).__name__
    if isinstance(error, EOFError):
        reason = f"the file is truncated: {reason}"
    name = "standard input" if path == STDIN else path
    if what:
        return InputError(f"cannot read {name}: not a valid {what} file ({reason}).")
    return InputError(f"cannot read {name}: {reason}.")


def _read_blocks(stream: BinaryIO, position: Callable[[], int],
                 chunk_bytes: int) -> Generator[tuple[bytes, int, bool], None, None]:
    """The reads of ``stream`` (see ``_reads``), from a background thread one read ahead for big chunks."""
    reads = _reads(stream, position, chunk_bytes)
    return read_ahead(reads) if chunk_bytes >= _READ_AHEAD_BYTES else reads


def _reads(stream: BinaryIO, position: Callable[[], int],
           chunk_bytes: int) -> Generator[tuple[bytes, int, bool], None, None]:
    """(block, position in the raw input after it, whether it ends a chunk) for every read of ``stream``, up to
    and including the empty read at its end. A chunk of more than ``_READ_BYTES`` takes several reads."""
    filled = 0
    while True:
        block = stream.read(min(chunk_bytes - filled, _READ_BYTES))
        filled += len(block)
        ends_chunk = filled >= chunk_bytes or not block
        yield block, position(), ends_chunk
        if not block:
            return
        if ends_chunk:
            filled = 0


class _Transcoding:
    """A byte stream in another encoding, read as UTF-8: each read is decoded whole by the codec's incremental
    decoder (C speed, a character cut between two reads is completed by the next) and encoded to UTF-8, so the
    line splitting downstream is the same as for UTF-8 input. Undecodable bytes become U+FFFD."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done:
            block = self._stream.read(size)
            self._done = not block
            text = self._decoder.decode(block, final=self._done)
            if text:
                return text.encode("utf-8")
        return b""


def _decoded(stream: BinaryIO, encoding: str | None) -> BinaryIO:
    """``stream`` read as UTF-8: itself, or transcoded from ``encoding``."""
    return stream if is_utf8(encoding) else cast(BinaryIO, _Transcoding(stream, encoding or ""))


def is_utf8(encoding: str | None) -> bool:
    """Whether ``encoding`` (a Python codec name, or None) is read as UTF-8 without transcoding."""
    return encoding is None or codecs.lookup(encoding).name == "utf-8"


def read_lines(path: str, *, chunk_bytes: int = CHUNK_BYTES, progress: ProgressCallback | None = None,
               fast: bool = True, encoding: str | None = None) -> Iterator[pl.DataFrame]:
    """Yield frames of (``_file``, ``_line``, ``_raw``) for one input, one frame per chunk of about ``chunk_bytes``.

    ``_file`` is ``path`` exactly as given; ``_line`` is 1-based and continuous across frames. ``progress`` (if
    given) is called with the number of input bytes consumed since its last call; for a file the calls add up to
    its size on disk. Raises ``InputError`` for a file that cannot be opened or decompressed.

    ``fast=False`` splits every chunk the reference way (decoded in Python): the same frames, slower; the tests
    compare the two. ``encoding`` (``source.encoding``: any Python codec) reads a file that is not UTF-8.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    next_line = 1
    reported = 0
    kind: str | None = None
    try:
        # Reading and decompressing release the GIL: the next read overlaps the split of this block and whatever
        # the consumer does with its frame (~8% off read_lines alone on 2 cores, ~30% for gzip input). The
        # reader thread stops (after its read in flight) before the input is closed: exits run in reverse.
        with open_input(path) as (stream, kind, position), \
                closing(_read_blocks(_decoded(stream, encoding), position, chunk_bytes)) as reads:
            pending: list[bytes] = []  # bytes since the last newline, possibly over several reads
            lines: list[pl.Series] = []  # lines of the current chunk so far
            for block, where, ends_chunk in reads:
                if progress is not None:
                    if where < 0:  # stdin: no raw position, count what was read
                        progress(len(block))
                    elif where > reported:
                        progress(where - reported)
                        reported = where
                if block:
                    pending = _take_lines(block, pending, lines, fast)
                elif pending:  # the end: a last line without a newline belongs to the last chunk
                    lines.append(_one_line(b"".join(pending)))
                    pending = []
                if ends_chunk and lines:
                    frame = _frame(lines, path, next_line)
                    next_line += frame.height
                    yield frame
                    lines = []
            if pending:
                yield _frame([_one_line(b"".join(pending))], path, next_line)
    except FileNotFoundError:
        raise InputError(f"no such file: '{path}'.") from None
    except IsADirectoryError:
        raise InputError(f"input '{path}' is a directory: name its files, e.g. '{path.rstrip('/')}/*.log'.") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied.") from None
    except Exception as error:
        found = _decoding_error(path, kind, error)
        if found is None:
            raise
        raise found from None
