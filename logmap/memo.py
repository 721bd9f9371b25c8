"""What a process remembers across runs: pure results by key, in a bounded memory.

A test suite, ``logmap test``'s cases and a service's many small runs meet the same few mappings and sources
again and again; checks that depend only on them are paid once per process.
"""

from __future__ import annotations

import hashlib
from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


def digest(value: object) -> bytes:
    """A small key for a large value, by its ``repr`` (dataclasses show every field; YAML scalars keep their
    types: ``1``, ``'1'``, ``1.0`` and ``true`` differ)."""
    return hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).digest()


class Remembered(Generic[Key, Value]):
    """Up to ``kept`` values by key, emptied when full: the few keys a process meets again are back after one
    miss, and nothing needs ordering. Each operation is one dict step, so runs in threads can share it (a race
    costs a recomputation, never a wrong value)."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._values: dict[Key, Value] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self._values

    def get(self, key: Key) -> Value | None:
        return self._values.get(key)

    def remember(self, key: Key, value: Value) -> None:
        if len(self._values) >= self.kept:
            self._values.clear()
        self._values[key] = value
