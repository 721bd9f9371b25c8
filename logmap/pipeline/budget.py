"""How a run spends its memory: ``--memory`` (a bound on peak RSS) → chunk size, rows held, bucket size.

A run's memory goes to three things (docs/architecture.md, "Phases, threads and memory"):

* **the chunks being parsed**: the text read per chunk, parsed into columns, is about 15 times the text for a
  while, and the background thread parses the next chunk meanwhile;
* **the surviving rows** (the records to be), held until every row of a visitor has been seen, because
  durations and the output order need a visitor's whole history: about 1 GB per million log lines;
* **one bucket's records**, sorted, validated and encoded, in the record phase.

Plain Python, polars and logmap take :data:`BASE_BYTES` before any data. A :class:`Budget` divides the rest:
chunks get a fixed share; rows are held in memory up to ``hold_bytes``; past that, the run is partitioned by a
hash of the visitor into as many buckets as keep each one under ``bucket_bytes``, spilled to disk as Parquet,
and converted bucket by bucket. The bucket count is chosen when the held rows outgrow ``hold_bytes``, from how
much of the input has been read by then (files' sizes are known up front, compressed or not); for standard
input, whose size is unknown, a bucket that still turns out too big is split again when it is read back. An
input that fits is converted in memory exactly as without a bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1024 * 1024
#: Peak RSS that ``convert`` is kept under when no ``--memory`` is given.
DEFAULT_MEMORY = "1G"
#: The share of the bound a run is planned to use: the factors below are measured averages, not guarantees
#: (10M lines planned at 85% peaked at 963 MiB: memory the streaming phase used is not all reused later).
PLANNED_SHARE = 0.75
#: The interpreter, polars and logmap loaded and a mapping prepared (measured: 123 MB), and what the streaming
#: phase leaves behind that the record phase does not reuse (--memory 512M peaked 3% over with 128 MiB here).
BASE_BYTES = 160 * MIB
#: Chunks of input text: the smallest and largest chosen (bigger chunks make fewer, cheaper passes; 16 MiB
#: costs no more CPU than 64 MiB, 4 MiB 10-20% more).
MIN_CHUNK, MAX_CHUNK = 2 * MIB, 64 * MIB
#: Memory the streaming phase works in, as a multiple of the chunk size: the chunk read ahead, its parsed
#: columns and the stages' intermediate ones (measured: 16 MiB chunks, ~240 MB).
CHUNK_FACTOR = 15
#: Memory of the record phase as a multiple of a bucket's rows (polars' ``estimated_size``): the rows, their
#: sorted copy while it is made, and two slices being encoded (measured: 2.1).
BUCKET_FACTOR = 2.2
#: Buckets are chosen for this much more than the input is expected to hold (the rows' density varies along a
#: log), and a bucket is split again only when it outgrows ``bucket_bytes`` by this much.
HEADROOM = 1.25
#: The most buckets chosen (each costs a Parquet file per spill).
MAX_BUCKETS = 1024
#: The least memory ``--memory`` accepts.
MIN_MEMORY = 384 * MIB

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``1.5GB``, ``800MiB`` → bytes (powers of 1024, as ``sort -S`` reads them); ValueError
    for anything else."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a size such as 1G or 512M")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def format_size(size: int) -> str:
    for unit, factor in (("G", 1024 * MIB), ("M", MIB), ("K", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Budget:
    """What a run may hold, derived from a bound on its peak RSS (see the module docstring)."""

    memory_bytes: int
    chunk_bytes: int
    #: surviving rows held in memory before the run is partitioned into buckets (and, once it is, before the
    #: held rows are written out)
    hold_bytes: int
    #: the most rows one bucket should have in the record phase
    bucket_bytes: int

    @property
    def spill_bytes(self) -> int:
        """Rows held, once partitioned, before each bucket's share is written out: half of ``hold_bytes``,
        because writing them out needs their copies per bucket besides."""
        return self.hold_bytes // 2

    @classmethod
    def for_memory(cls, memory_bytes: int) -> Budget:
        working = int(max(memory_bytes, MIN_MEMORY) * PLANNED_SHARE) - BASE_BYTES
        # About a third of the working memory for the streaming phase, the rest for the rows.
        chunk = min(max(working // (3 * CHUNK_FACTOR) // MIB * MIB, MIN_CHUNK), MAX_CHUNK)
        rows = int((working - chunk * CHUNK_FACTOR) / BUCKET_FACTOR)
        return cls(memory_bytes=memory_bytes, chunk_bytes=chunk, hold_bytes=rows, bucket_bytes=rows)

    def buckets_for(self, held_bytes: float, share_read: float | None) -> int:
        """Buckets for a run holding ``held_bytes`` of rows after reading ``share_read`` of its input (None:
        unknown, standard input): enough that each bucket of the whole input stays under ``bucket_bytes``."""
        expected = (held_bytes / share_read if share_read else held_bytes * 4) * HEADROOM
        return min(MAX_BUCKETS, max(2, -(-int(expected) // self.bucket_bytes)))

    def too_big(self, bucket_bytes: float) -> bool:
        """Whether a bucket of ``bucket_bytes`` must be split again before its record phase."""
        return bucket_bytes > self.bucket_bytes * HEADROOM
