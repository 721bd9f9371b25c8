"""``dedupe: {by: [event_id]}``: drop the later rows of events delivered more than once, as ``duplicate``.

Snowplow and Segment deliver at least once, and their own models deduplicate by ``event_id`` / ``messageId``.
The check must be exact across chunks and files, while the visitor may not be part of the key, so it runs in
the streaming phase, on rows in input order, against a run-wide set of the keys seen so far.

That set holds one 64-bit hash per distinct key (8 bytes each: 80 MB for 10M events), as sorted runs merged
like a log-structured merge tree: a chunk's new hashes are one run; two runs of similar size are merged into
one, so a hash is copied O(log n) times and a lookup is a binary search per run (columnar, `search_sorted`).
Two different keys share a hash with probability about n²/2⁶⁵ (3·10⁻⁴ for 100M distinct keys): then the later
row would be dropped as a duplicate although it is not.
"""

from __future__ import annotations

import polars as pl

from logmap.frame import ALIVE, drop_when
from logmap.mapping.model import Dedupe
from logmap.mapping.templates import as_reference
from logmap.transform.expressions import Scope, compile_template

REASON = "duplicate"
_KEY = "_dedupe_key"


class SeenKeys:
    """The hashes of the keys seen so far in a run (see the module's docstring)."""

    def __init__(self) -> None:
        self._runs: list[pl.Series] = []

    def __len__(self) -> int:
        return sum(run.len() for run in self._runs)

    def contains(self, hashes: pl.Series) -> pl.Series:
        """A mask of ``hashes`` (UInt64, no nulls) already seen."""
        found = pl.repeat(False, hashes.len(), eager=True)
        for run in self._runs:
            at = run.search_sorted(hashes).clip(0, run.len() - 1)
            found = found | (run.gather(at) == hashes)
        return found

    def add(self, hashes: pl.Series) -> None:
        """Remember ``hashes`` (new ones, no nulls)."""
        run = hashes.unique().sort()
        while self._runs and self._runs[-1].len() <= 2 * run.len():
            run = pl.concat([self._runs.pop(), run]).sort()
        if run.len():
            self._runs.append(run)


def key_hash(spec: Dedupe, scope: Scope) -> pl.Expr:
    """The 64-bit hash of a row's key; null when a key field is null (such a row is never a duplicate)."""
    values = []
    for name in spec.by:
        values.append(compile_template(as_reference(name), scope, spec.where).expr)   # `a?`, `a|or:b` too
    complete = pl.all_horizontal([value.is_not_null() for value in values])
    key = pl.struct([value.cast(pl.String).alias(f"k{index}") for index, value in enumerate(values)])
    return pl.when(complete).then(key.hash(seed=12))


def dedupe_keys(frame: pl.DataFrame, spec: Dedupe) -> pl.Series:
    """The key hash of each row of a parsed chunk (`key_hash`); null for a row already dropped by the reader
    (malformed, missing, invalid), which is counted as what it is and never as a duplicate. Every engine takes
    its keys from here: the local runner checks them against the run's `SeenKeys`, the Spark engine ranks the
    rows of each key across the cluster (`logmap.spark.dedupe`)."""
    return frame.select(pl.when(ALIVE).then(key_hash(spec, Scope(frame.schema))).alias(_KEY))[_KEY]


def apply_dedupe(frame: pl.DataFrame, spec: Dedupe, seen: SeenKeys) -> pl.DataFrame:
    """Mark rows whose key an earlier row had (in this chunk or an earlier one) as ``duplicate``."""
    keyed = dedupe_keys(frame, spec)
    present = keyed.is_not_null()
    hashes = keyed.filter(present)
    earlier = seen.contains(hashes) | ~hashes.is_first_distinct()
    duplicate = pl.repeat(False, frame.height, eager=True).scatter(present.arg_true().filter(earlier), True)
    seen.add(hashes.filter(~earlier))
    return frame.with_columns(drop_when(pl.lit(duplicate), REASON))
