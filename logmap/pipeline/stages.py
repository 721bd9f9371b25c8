"""The two stages every runner calls: the local one (`logmap.pipeline.runner`) and Spark (`logmap.spark`).

1. :func:`stream_stage` takes one chunk of parsed input rows through filter, rules, identity and context; it
   needs nothing but the chunk, so chunks can be processed anywhere, in any order.
2. :func:`record_stage` takes every surviving row of a set of visitors (a bucket: rows partitioned by a hash
   of their visitor) through durations, records, validation and encoding.

Both are pure functions of their frames and a :class:`Prepared` mapping: no files, no threads, no ledger.
"""

from __future__ import annotations

import time

import polars as pl

from logmap.errors import MappingError
from logmap.frame import split_dropped
from logmap.mapping.loader import hash_key
from logmap.mapping.model import Mapping
from logmap.memo import Remembered, digest
from logmap.records.encode import encode_frame
from logmap.records.schema import conform
from logmap.records.validate import validate
from logmap.sources import empty_frame, name_input_columns, open_export
from logmap.sources.exports import ExportReader
from logmap.transform.context import context_columns
from logmap.transform.durations import (
    PAGE,
    PING,
    field_durations,
    infer_durations,
    order_columns,
    page_columns,
    split_pings,
    take_pings,
)
from logmap.transform.expressions import Scope
from logmap.transform.filter import apply_filter, check_filter_columns
from logmap.transform.identity import VISITOR, Hasher, identity_columns
from logmap.transform.rules import RECORD_PREFIX, apply_rules
from logmap.transform.useragents import BotDetector

#: Seconds per stage, accumulated across chunks and buckets when a dict is passed (``logmap convert --profile``).
Timings = dict[str, float]
#: The stages ``timings`` reports, in pipeline order.
STAGES = ("read/parse", "filter", "rules", "identity+context", "ledger+rejects", "buckets", "durations",
          "validation", "encoding", "writing")
#: The columns a surviving row carries from the stream stage to the record stage, besides ``r:`` record fields.
CARRIED = ("_file", "_line", "_rule", "time", "_visitor")


def tick(timings: Timings | None, stage: str, started: float) -> float:
    """Add the time since ``started`` to ``stage``; returns now (the start of the next stage)."""
    now = time.perf_counter()
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + now - started
    return now


#: The stream stage's sections of mappings that compiled against a source's columns, by :func:`_compiled_key`: the
#: check is a pure function of them, and costs about as much as a small run's own chunk (a test suite, ``logmap
#: test``'s cases and a service's small runs compile the same mapping again and again).
_COMPILED: Remembered[bytes, bool] = Remembered(256)


def _compiled_key(mapping: Mapping, schema: pl.Schema, hashers: dict[str, Hasher]) -> bytes:
    """What compiling the stream stage depends on: the sections it reads (their ``repr`` shows every field of these
    dataclasses, positions included), the source's columns and which keyed hashes have a hasher; as a digest, so
    that what is kept stays small."""
    sections = (mapping.source, mapping.filter, mapping.rules, mapping.identity, mapping.context, mapping.durations)
    return digest((sections, list(schema.items()), sorted(hashers)))


class Prepared:
    """What is computed once per run from a mapping: the key check, the hasher, caches.

    ``key`` is the secret of the keyed hashes (``anonymous_id``, a hashed ``user_id``; the CLI reads it from the
    variable the mapping names); a mapping that needs one stops here without it, before any input is read.
    """

    def __init__(self, mapping: Mapping, inputs: list[str] | None = None, *, key: str | bytes | None = None,
                 export_reader: ExportReader | None = None) -> None:
        self.mapping = mapping
        self.warnings: list[str] = []
        #: identity field → the Hasher of its keyed hash (``anonymous_id``, a hashed ``user_id``)
        self.hashers: dict[str, Hasher] = {}
        for field in mapping.identity.keyed_hashes():
            secret = hash_key(mapping, key, field)
            if secret is None:
                self.warnings.append(
                    f"{field} uses a plain SHA-256 (key: none): hashes of IPv4 addresses can be reversed "
                    "by enumeration; set a key for real data")
            self.hashers[field] = Hasher(secret)
        self.hasher = self.hashers.get("anonymous_id")
        self.bots = BotDetector()
        self.rule_names = [rule.name for rule in mapping.rules]
        #: the run's one reader of its export files (None for access logs, or without inputs); given when the
        #: caller opened it (a Spark run, whose files are probed on the cluster)
        self.export_reader = export_reader or (open_export(inputs, mapping.source, mapping)
                                               if inputs and mapping.source.is_export else None)
        # Compile every stage against the source's columns now, so that a template naming a field the source
        # does not have stops the run before any input is read. (An export's columns are those of its files:
        # without inputs they are unknown and the check waits for them.)
        empty = empty_frame(mapping.source, self.export_reader)
        if empty is not None:
            check_filter_columns(mapping.filter, empty.columns)
            compiled = _compiled_key(mapping, empty.schema, self.hashers)
            if compiled not in _COMPILED:
                try:
                    stream_stage(self, empty)
                except MappingError as error:
                    raise name_input_columns(error, self.export_reader) from None
                _COMPILED.remember(compiled, True)

    def __repr__(self) -> str:
        return f"Prepared({self.mapping.path!r})"


def stream_stage(prepared: Prepared, chunk: pl.DataFrame,
                 timings: Timings | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Filter, rules, identity and context for one chunk of parsed rows. Returns (alive rows, dropped rows).

    Alive rows keep :data:`CARRIED` and their record fields (``r:…``); dropped rows keep every column and
    their ``_drop`` reason.
    """
    mapping = prepared.mapping
    started = time.perf_counter()
    alive, dropped = split_dropped(apply_filter(chunk, mapping.filter, prepared.bots))
    started = tick(timings, "filter", started)
    scope = Scope(alive.schema)
    alive, pings = split_pings(alive, mapping.durations, scope)
    alive, more_dropped = split_dropped(apply_rules(alive, mapping.rules, scope))
    # Rows the rules drop are passed on rule by rule (unmatched first), as rejects.ndjson has always listed them.
    more_dropped = more_dropped.sort("_rule", nulls_last=False, maintain_order=True)
    if pings is not None:  # to their visitor's bucket with the records, for the page views' durations
        alive = pl.concat([alive, pings], how="diagonal")
    started = tick(timings, "rules", started)
    scope = scope.staging()
    columns = {**identity_columns(mapping.identity, scope, prepared.hasher, prepared.hashers.get("user_id")),
               **context_columns(mapping.context, scope),
               **field_durations(mapping.durations, scope, alive.columns),
               **page_columns(mapping.durations, scope)}
    alive = alive.with_columns(**(scope.staged or {})).with_columns(**columns).with_columns(VISITOR)
    keep = [*CARRIED, *[c for c in (PING, PAGE) if c in alive.columns],
            *[c for c in alive.columns if c.startswith(RECORD_PREFIX)]]
    result = alive.select(keep), pl.concat([dropped, more_dropped], how="diagonal_relaxed")
    tick(timings, "identity+context", started)
    return result


def order_records(prepared: Prepared, rows: pl.DataFrame, first_index: int = 0,
                  timings: Timings | None = None) -> pl.DataFrame:
    """Durations and the record frame of one bucket, in output order (event time, then file and line).

    ``rows`` carry ``_file_order`` (the rank of their file among the run's files by first event time). Adds
    ``_drop`` and ``_detail`` (null) and ``_index``, each record's position in the run from ``first_index``
    (the N of ``data.N.`` in messages). Pings (``durations.from: pings``) come last, already dropped as
    ``merged:page_ping``, without an ``_index``.
    """
    started = time.perf_counter()
    # Output order first (one sort of the bucket's own columns, before conform adds the absent ones); durations
    # then need only a stable sort by visitor.
    rows = rows.sort(order_columns(rows)[1:], nulls_last=True)  # time, file order, line
    rows, pings = take_pings(rows)
    rows = infer_durations(rows, prepared.mapping.durations, in_time_order=True, pings=pings)
    started = tick(timings, "durations", started)
    records = rows.rename({c: c[len(RECORD_PREFIX):] for c in rows.columns if c.startswith(RECORD_PREFIX)})
    records = conform(records.with_columns(pl.col("time").alias("timestamp")))
    records = records.with_columns(
        pl.lit(None, pl.String).alias("_drop"),
        pl.lit(None, pl.String).alias("_detail"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_index).alias("_index"),
    )
    if pings is not None:
        records = pl.concat([records, pings.drop(PAGE)], how="diagonal_relaxed")
    tick(timings, "validation", started)
    return records


def check_and_encode(records: pl.DataFrame, timings: Timings | None = None) -> pl.DataFrame:
    """Validate and encode records from :func:`order_records` (a whole bucket or any slice of one).

    Returns them with ``_drop`` (``invalid:<field>`` or null), ``_detail`` and ``_json`` (the encoded record).
    """
    started = time.perf_counter()
    records = validate(records, index_column="_index")
    started = tick(timings, "validation", started)
    records = records.with_columns(encode_frame(records))
    tick(timings, "encoding", started)
    return records


def record_stage(prepared: Prepared, bucket: pl.DataFrame, first_index: int = 0) -> pl.DataFrame:
    """Durations, records, validation and encoding for every row of a set of visitors, in output order.

    Valid records carry ``_json``; invalid ones ``_drop`` (``invalid:<field>``) and ``_detail``. The local
    runner calls the two halves itself, to encode one slice while the previous one is written.
    """
    return check_and_encode(order_records(prepared, bucket, first_index))
