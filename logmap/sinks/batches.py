"""Batch files on disk: NDJSON (one record per line) or JSON request bodies ``{"data": [...]}``.

Records arrive already encoded (one JSON object per string), so writing is joining strings: no per-record
Python objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TextIO

import polars as pl

from logmap.errors import OutputError

BatchFormat = Literal["ndjson", "json"]

class BatchWriter:
    """Writes encoded records into numbered batch files of at most ``batch_size`` records."""

    def __init__(self, out_dir: Path, batch_size: int = 10_000, fmt: BatchFormat = "ndjson") -> None:
        if batch_size < 1:
            raise OutputError("--batch-size must be at least 1")
        self.out_dir = out_dir
        self.batch_size = batch_size
        self.fmt = fmt
        self.files: list[Path] = []
        self._pending: list[pl.Series] = []
        self._pending_rows = 0

    def write(self, records: pl.Series) -> None:
        """Queue encoded records; full batches are written at once.

        Each batch is written straight from slices of ``records`` (views, not copies); only a batch that
        straddles two calls is put together from the held remainder and the head of the next series.
        """
        start = 0
        if self._pending:
            start = min(self.batch_size - self._pending_rows, records.len())
            self._pending.append(records.slice(0, start))
            self._pending_rows += start
            if self._pending_rows < self.batch_size:
                return
            self._flush(pl.concat(self._pending, rechunk=False))
            self._pending, self._pending_rows = [], 0
        while records.len() - start >= self.batch_size:
            self._flush(records.slice(start, self.batch_size))
            start += self.batch_size
        if start < records.len():
            self._pending, self._pending_rows = [records.slice(start)], records.len() - start

    def close(self) -> list[Path]:
        if self._pending_rows:
            self._flush(pl.concat(self._pending, rechunk=False))
        self._pending, self._pending_rows = [], 0
        return self.files

    def _flush(self, records: pl.Series) -> None:
        path = self.out_dir / f"interactions-{len(self.files) + 1:05d}.{self.fmt}"
        if self.fmt == "ndjson":
            # One record per line, written by polars without building a Python string (about 4x faster than
            # join + write_text). Encoded JSON never holds a raw newline, so quote_style="never" writes it as is.
            pl.DataFrame({"record": records}).write_csv(path, include_header=False, quote_style="never")
        else:
            text = '{"data":[' + records.str.join(",").item() + "]}\n"
            path.write_text(text, encoding="utf-8")
        self.files.append(path)


class RejectsWriter:
    """``rejects.ndjson``: one line per malformed or invalid input row, with where it came from and why."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        # Created at once: the file exists, empty, when nothing was rejected.
        self._handle: TextIO | None = self.path.open("w", encoding="utf-8")

    def write(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        if self._handle is None:
            raise OutputError(f"{self.path} is already closed")
        columns = [pl.col("_file").alias("file"), pl.col("_line").alias("line"), pl.col("_drop").alias("reason"),
                   pl.col("_detail").alias("message")]
        if "_raw" in frame.columns:
            columns.append(pl.col("_raw").alias("raw"))
        if "_json" in frame.columns:
            columns.append(pl.col("_json").alias("record"))
        rows = frame.select(columns)
        # `record` is already JSON: embed it as an object, not as a quoted string.
        lines = rows.select(
            pl.concat_str([
                pl.struct([c for c in rows.columns if c != "record"]).struct.json_encode().str.strip_suffix("}"),
                (pl.lit(',"record":') + pl.col("record") + pl.lit("}")) if "record" in rows.columns else pl.lit("}"),
            ])
        ).to_series()
        self._handle.write(lines.str.join("\n").item() + "\n")
        self.count += frame.height

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
