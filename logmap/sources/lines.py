"""Read input files into frames of lines: ``_file``, ``_line`` (1-based), ``_raw``.

Inputs are plain, gzip, bzip2 or zstd files (recognised by their magic bytes, whatever their name), or ``-`` for
standard input. They are read in chunks split at a newline, so memory stays bounded, and each chunk is split
into lines by polars, not by a Python loop.

Bytes that are not valid UTF-8 are decoded with replacement (U+FFFD): a line whose structure is intact is still
parsed, one that is not becomes ``malformed`` downstream. A blank line in the middle of a file is a line (it
will be counted malformed); the newline at the end of a file does not start another line. A trailing ``\\r``
(CRLF files) is removed.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

import polars as pl

from logmap.errors import InputError

CHUNK_BYTES = 64 * 1024 * 1024
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd"}


def expand_inputs(patterns: list[str] | tuple[str, ...]) -> list[str]:
    """Files named or matched by glob patterns, in order, without duplicates; ``-`` is standard input."""
    if not patterns:
        raise InputError("no input given: name at least one file, glob or - for standard input")
    seen: dict[str, None] = {}
    for pattern in patterns:
        if pattern == "-":
            seen.setdefault("-")
            continue
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"no such file: nothing matches {pattern!r}")
            for match in matches:
                seen.setdefault(match)
        elif os.path.isdir(pattern):
            raise InputError(f"{pattern} is a directory: name the files in it, e.g. '{pattern.rstrip('/')}/*.log'")
        elif not os.path.exists(pattern):
            raise InputError(f"no such file: {pattern}")
        else:
            seen.setdefault(pattern)
    return list(seen)


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


@contextmanager
def open_input(path: str) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(decompressed stream, raw stream) — the raw one tells how many bytes of the file were consumed."""
    raw: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        buffered = raw if path != "-" else io.BufferedReader(raw)  # type: ignore[arg-type]
        head = buffered.peek(4)[:4] if hasattr(buffered, "peek") else b""
        kind = compression_of(head)
        if kind == "gzip":
            yield gzip.GzipFile(fileobj=buffered, mode="rb"), raw
        elif kind == "bzip2":
            yield bz2.BZ2File(buffered, mode="rb"), raw
        elif kind == "zstd":
            import zstandard

            yield zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True), raw
        else:
            yield buffered, raw
    finally:
        if path != "-":
            raw.close()


def _split_lines(text: str, path: str, first_line: int) -> pl.DataFrame:
    lines = pl.Series("_raw", [text], dtype=pl.String).str.split("\n").explode()
    lines = lines.str.strip_suffix("\r")
    return pl.DataFrame({
        "_file": pl.Series([path], dtype=pl.String).extend_constant(path, lines.len() - 1) if lines.len() else [],
        "_line": pl.int_range(first_line, first_line + lines.len(), dtype=pl.UInt64, eager=True),
        "_raw": lines,
    }, schema={"_file": pl.String, "_line": pl.UInt64, "_raw": pl.String})


def read_lines(path: str, *, chunk_bytes: int = CHUNK_BYTES,
               progress: Callable[[int], None] | None = None) -> Iterator[pl.DataFrame]:
    """Yield frames of (``_file``, ``_line``, ``_raw``) for one input, chunk by chunk.

    Raises InputError for a file that cannot be read or decompressed, naming it and why.
    """
    next_line = 1
    consumed = 0
    try:
        with open_input(path) as (stream, raw):
            leftover = b""
            while True:
                block = stream.read(chunk_bytes)
                if progress is not None and path != "-":
                    position = raw.tell()
                    progress(position - consumed)
                    consumed = position
                if not block:
                    break
                data = leftover + block
                cut = data.rfind(b"\n")
                if cut == -1:
                    leftover = data
                    continue
                leftover = data[cut + 1:]
                frame = _split_lines(data[:cut].decode("utf-8", errors="replace"), path, next_line)
                next_line += frame.height
                yield frame
            if leftover:
                frame = _split_lines(leftover.decode("utf-8", errors="replace"), path, next_line)
                yield frame
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(f"cannot read {path}: not a valid gzip file or truncated ({error or 'unexpected end'})") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error}") from None
    except Exception as error:  # zstandard raises its own ZstdError
        if type(error).__name__ == "ZstdError":
            raise InputError(f"cannot read {path}: not a valid zstd file ({error})") from None
        raise
