"""The ledger's counts and the order the report lists them in."""

from __future__ import annotations

import polars as pl

from logmap.ledger import Ledger


def test_report_lists_tied_rules_in_the_same_order_every_run():
    frame = pl.DataFrame({"type": ["a", "b"] * 50, "_rule": [1, 0] * 50})
    orders = set()
    for _ in range(20):
        ledger = Ledger()
        ledger.add_emitted(frame, ["first", "second"])
        orders.add(tuple(dict(ledger.per_rule.most_common())))
    assert orders == {("first", "second")}
