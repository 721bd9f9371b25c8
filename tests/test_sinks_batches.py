"""BatchWriter: batches of exactly ``batch_size`` records whatever the sizes of the series it is handed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from logmap.sinks.batches import BatchWriter


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
@pytest.mark.parametrize("sizes", [[2, 5, 1, 7, 0, 3], [10], [3, 3, 3], [1] * 8, [0], [4, 0, 9]])
def test_batches_are_cut_at_batch_size_across_series(tmp_path: Path, sizes: list[int], fmt: str) -> None:
    records = [f'{{"n":{i}}}' for i in range(sum(sizes))]
    writer = BatchWriter(tmp_path, batch_size=3, fmt=fmt)
    start = 0
    for size in sizes:
        writer.write(pl.Series("_json", records[start:start + size], dtype=pl.String))
        start += size
    files = writer.close()
    expected = [records[i:i + 3] for i in range(0, len(records), 3)]
    assert [p.name for p in files] == [f"interactions-{i + 1:05d}.{fmt}" for i in range(len(expected))]
    for path, batch in zip(files, expected):
        text = path.read_text()
        assert text == ("\n".join(batch) + "\n" if fmt == "ndjson" else '{"data":[' + ",".join(batch) + "]}\n")
