"""Read input files into frames of lines: ``_file`` (String), ``_line`` (UInt64, 1-based), ``_raw`` (String).

Why it looks like this:

* **Bounded memory.** A file is read in chunks of ``chunk_bytes`` (64 MiB by default) of *decompressed* data; a
  chunk ends at its last newline and the remainder is carried into the next one, so a line is never cut in two
  and ``_line`` numbers run on across chunks.
* **Columnar splitting.** Each chunk is decoded once with ``bytes.decode('utf-8', errors='replace')`` and split
  into lines by polars (``str.split`` + ``explode``), never by a Python loop over lines.
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
import glob
import gzip
import io
import lzma
import os
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

import polars as pl

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

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
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
        raw: BinaryIO = io.BufferedReader(_Prefixed(head, source))  # type: ignore[arg-type]
        yield _decompressing(kind, raw), kind, lambda: -1  # no raw position: the reader counts bytes read
        return
    with open(path, "rb") as handle:
        kind = compression_of(handle.read(_HEAD_BYTES))
        handle.seek(0)
        yield _decompressing(kind, handle), kind, handle.tell


# ---------------------------------------------------------------------------------------------------------------
# Splitting


def _frame(pieces: list[str], path: str, first_line: int) -> pl.DataFrame:
    """Lines of the decoded ``pieces`` (which end at line boundaries, the last one without its newline)."""
    lines = pl.DataFrame({"_raw": pieces}, schema={"_raw": pl.String}).lazy()
    lines = lines.select(pl.col("_raw").str.split("\n").explode().str.strip_suffix("\r"))
    return lines.select(
        pl.lit(path, dtype=pl.String).alias("_file"),
        (pl.int_range(pl.len(), dtype=pl.UInt64) + pl.lit(first_line, dtype=pl.UInt64)).alias("_line"),
        pl.col("_raw"),
    ).collect()


def lines_frame(lines: Sequence[str], file: str = "<lines>", first_line: int = 1) -> pl.DataFrame:
    """A line frame from strings already in memory (a mapping's test cases, ``logmap try 'LINE'``)."""
    return pl.DataFrame({
        "_file": [file] * len(lines),
        "_line": list(range(first_line, first_line + len(lines))),
        "_raw": [line.removesuffix("\r") for line in lines],
    }, schema=LINE_SCHEMA)


def _decode(data: bytes | memoryview) -> str:
    return str(data, "utf-8", "replace")


def _read_error(path: str, kind: str | None, error: BaseException) -> InputError:
    what = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz", "zstd": "zstd"}.get(kind or "", "")
    reason = str(error) or type(error).__name__
    if isinstance(error, EOFError):
        reason = f"the file is truncated: {reason}"
    name = "standard input" if path == STDIN else path
    if what:
        return InputError(f"cannot read {name}: not a valid {what} file ({reason}).")
    return InputError(f"cannot read {name}: {reason}.")


def read_lines(path: str, *, chunk_bytes: int = CHUNK_BYTES,
               progress: ProgressCallback | None = None) -> Iterator[pl.DataFrame]:
    """Yield frames of (``_file``, ``_line``, ``_raw``) for one input, one frame per chunk of about ``chunk_bytes``.

    ``_file`` is ``path`` exactly as given; ``_line`` is 1-based and continuous across frames. ``progress`` (if
    given) is called with the number of input bytes consumed since its last call; for a file the calls add up to
    its size on disk. Raises ``InputError`` for a file that cannot be opened or decompressed.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    next_line = 1
    reported = 0
    kind: str | None = None
    try:
        with open_input(path) as (stream, kind, position):
            pending: list[bytes] = []  # bytes since the last newline, possibly over several reads
            while True:
                block = stream.read(chunk_bytes)
                if progress is not None:
                    where = position()
                    if where < 0:  # stdin: no raw position, count what was read
                        progress(len(block))
                    elif where > reported:
                        progress(where - reported)
                        reported = where
                if not block:
                    break
                cut = block.rfind(b"\n")
                if cut == -1:
                    pending.append(block)
                    continue
                view = memoryview(block)
                if pending:  # the first line started in an earlier read
                    first = block.find(b"\n")
                    pieces = [_decode(b"".join(pending) + block[:first])]
                    if first < cut:
                        pieces.append(_decode(view[first + 1:cut]))
                    pending = []
                else:
                    pieces = [_decode(view[:cut])]
                if cut + 1 < len(block):
                    pending.append(block[cut + 1:])
                frame = _frame(pieces, path, next_line)
                next_line += frame.height
                yield frame
            if pending:
                yield _frame([_decode(b"".join(pending))], path, next_line)
    except FileNotFoundError:
        raise InputError(f"no such file: '{path}'.") from None
    except IsADirectoryError:
        raise InputError(f"input '{path}' is a directory: name its files, e.g. '{path.rstrip('/')}/*.log'.") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied.") from None
    except (EOFError, zlib.error, lzma.LZMAError, OSError) as error:
        raise _read_error(path, kind, error) from None
    except Exception as error:
        if type(error).__name__ == "ZstdError":  # zstandard's own exception type
            raise _read_error(path, kind, error) from None
        raise
