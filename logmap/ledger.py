"""The ledger: every input row is either emitted or dropped with a reason, and the sums must agree exactly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass
class Ledger:
    input_rows: int = 0
    emitted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    per_type: Counter[str] = field(default_factory=Counter)
    per_rule: Counter[str] = field(default_factory=Counter)

    def add_input(self, rows: int) -> None:
        self.input_rows += rows

    def add_dropped(self, frame: pl.DataFrame) -> None:
        """Count rows of ``frame`` by their ``_drop`` reason (every row must carry one)."""
        if frame.height == 0:
            return
        # Sorted keys: Counter.most_common() breaks ties by first insertion, and group_by's order varies.
        for reason, count in frame.group_by("_drop").len().sort("_drop").iter_rows():
            self.dropped[reason] += count

    def add_emitted(self, frame: pl.DataFrame, rule_names: list[str]) -> None:
        if frame.height == 0:
            return
        self.emitted += frame.height
        for type_name, count in frame.group_by("type").len().sort("type").iter_rows():
            self.per_type[type_name] += count
        if "_rule" in frame.columns:
            for index, count in frame.group_by("_rule").len().sort("_rule").iter_rows():
                self.per_rule[rule_names[index] if index is not None else "(none)"] += count

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        return self.input_rows == self.emitted + self.dropped_total

    def merge(self, other: Ledger) -> None:
        self.input_rows += other.input_rows
        self.emitted += other.emitted
        self.dropped.update(other.dropped)
        self.per_type.update(other.per_type)
        self.per_rule.update(other.per_rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_rows": self.input_rows,
            "emitted": self.emitted,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": self.dropped_total,
            "balanced": self.balanced,
        }
