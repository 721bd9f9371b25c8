"""A rotation set (access.log, access.log.1, access.log.2.gz, access.log.3.zst) converted in any order gives the
same records: durations are computed across files by event time, not by input order (issue #3, item 3)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
from support import MAPPING, SAMPLE, convert, records_of

pytestmark = pytest.mark.usefixtures("anonymous_key")  # LOGMAP_KEY, from conftest.py



def rotation_set(directory: Path) -> list[Path]:
    """The sample cut in four, newest last, written the way logrotate leaves them (older ones compressed)."""
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    quarter = len(lines) // 4
    parts = [b"".join(lines[i * quarter:(i + 1) * quarter if i < 3 else len(lines)]) for i in range(4)]
    zstd = pytest.importorskip("zstandard")
    directory.mkdir()
    files = [directory / "access.log.3.zst", directory / "access.log.2.gz", directory / "access.log.1",
             directory / "access.log"]
    files[0].write_bytes(zstd.ZstdCompressor().compress(parts[0]))
    files[1].write_bytes(gzip.compress(parts[1]))
    files[2].write_bytes(parts[2])
    files[3].write_bytes(parts[3])
    return files


def test_rotation_set_in_shuffled_order_gives_identical_records(tmp_path: Path) -> None:
    files = rotation_set(tmp_path / "logs")
    first = convert([str(p) for p in files], MAPPING, tmp_path / "first")
    expected = records_of(tmp_path / "first")
    assert len(expected) > 200 and sum('"duration"' in r for r in expected) > 50
    orders = [list(reversed(files))] + [random.Random(seed).sample(files, len(files)) for seed in (1, 2, 3)]
    for i, order in enumerate(orders):
        result = convert([str(p) for p in order], MAPPING, tmp_path / f"run{i}")
        assert result.ledger.balanced and result.ledger.input_rows == first.ledger.input_rows == 406
        assert records_of(tmp_path / f"run{i}") == expected, [p.name for p in order]


def test_rotation_set_gives_the_records_of_the_unsplit_file(tmp_path: Path, converted) -> None:
    files = rotation_set(tmp_path / "logs")
    _, whole = converted([str(SAMPLE)], MAPPING)
    convert([str(p) for p in files], MAPPING, tmp_path / "split")
    assert records_of(tmp_path / "split") == records_of(whole)
