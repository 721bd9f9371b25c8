"""``dedupe: {by: [...]}`` on Spark: the later copies of a key dropped as ``duplicate``, as the local runner does.

The local runner checks each parsed chunk, in input order, against a run-wide set of the keys seen so far
(`logmap.transform.dedupe`). A Spark run has no such order across its tasks, so the same decision is taken in
two steps:

1. **Phase 1** (executors) computes each parsed row's key hash with the local runner's own expression
   (`dedupe_keys`: null for a row the reader already dropped) and tags every row of the file with the file's
   position in the run's input order (``_input_order``: files in the order given, globs sorted). The rows the
   stream stage drops that have a key travel as rows too (file, line, reason, key), not only as counts, since
   one of them may turn out to be a duplicate, which the ledger counts as ``duplicate`` instead.
2. **On the cluster**, a window over the key ordered by (input order, line) keeps the first row of each key as
   it is; every later one becomes a dropped row counted as ``duplicate``, whatever it would have been (a
   survivor, a filtered or unmatched row, a reject): the local runner dedupes before the filter too. The
   window shuffles the keyed rows once by their key, before phase 2 shuffles the survivors by visitor.

A row with a null key field is never a duplicate (as locally). Keys are 64-bit hashes, so two different keys
collide with the probability the local runner's docs state; the hashes cross Spark as ``long`` (the same
bits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from logmap.mapping.model import Dedupe
from logmap.transform.dedupe import REASON, dedupe_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The row's dedupe key hash (its UInt64 bits as Int64), null when it has none.
KEY = "_dedupe_key"
#: The position of the row's file in the run's input order.
INPUT_ORDER = "_input_order"
#: Columns phase 1 adds to its rows for dedupe.
COLUMNS = {KEY: pl.Int64(), INPUT_ORDER: pl.Int64()}


def keyed_lines(parsed: pl.DataFrame, spec: Dedupe, order: dict[str, int]) -> pl.DataFrame:
    """File, line, key and the file's input order (``order``: position by name) of every row of a parsed chunk."""
    keys = dedupe_keys(parsed, spec).reinterpret(signed=True)
    return pl.DataFrame({"_file": parsed["_file"], "_line": parsed["_line"], KEY: keys}).with_columns(
        pl.col("_file").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias(INPUT_ORDER))


def with_keys(frame: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (rows of the chunk ``keys`` was computed on, after the stream stage) with each row's key and
    input order, found by its file and line."""
    return frame.join(keys, on=["_file", "_line"], how="left", maintain_order="left")


def mark_duplicates(rows: DataFrame) -> DataFrame:
    """Phase 1's rows (``_kind`` alive, count, reject, start) with every keyed row after the first of its key,
    by input order and line, turned into a dropped row counted as ``duplicate``: no longer a survivor nor a
    reject, and no longer counted under its own reason."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keyed = F.col(KEY).isNotNull()
    later = F.row_number().over(Window.partitionBy(KEY).orderBy(INPUT_ORDER, "_line")) > 1
    marked = rows.where(keyed).withColumn("_later", later)
    duplicate = F.col("_later")
    marked = marked.withColumns({
        "_kind": F.when(duplicate, F.lit("count")).otherwise(F.col("_kind")),
        "_drop": F.when(duplicate, F.lit(REASON)).otherwise(F.col("_drop")),
        "_count": F.when(duplicate, F.lit(1).cast("long")).otherwise(F.col("_count")),
        "_bucket": F.when(~duplicate, F.col("_bucket")),
    }).drop("_later")
    return rows.where(~keyed).unionByName(marked)
