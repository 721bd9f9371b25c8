"""The dry run: the whole pipeline without writing batches, and a report of what a conversion would produce.

The numbers come from the real pipeline (``logmap.pipeline.iter_records``), never from a re-implementation: the
ledger is the very object ``convert`` fills, so the dry-run's ledger equals ``convert``'s ``report.json`` on the
same input. The statistics beyond the ledger are computed columnar, chunk by chunk, from the two streams the
pipeline exposes: the frames of dropped rows (``on_dropped``) and the frames of valid records it yields.

Memory stays bounded by the run's *shape*, not its size:

* rankings (unmatched path shapes, dropped paths and user agents per reason) take each chunk's top
  ``keep`` values and merge them into counters pruned back to ``keep`` entries; while nothing was pruned they
  are exact, and the report says whether they are (``rankings_exact``);
* durations are counted in fixed bins (1 second up to an hour, 1 minute beyond): median and p90 are read from
  the bins (nearest rank), which is exact to the second — the resolution of access-log timestamps;
* distinct visitors are counted exactly from 64-bit hashes of the ids (8 bytes per distinct id);
* records per hour are one counter per (hour, type).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from logmap.ledger import Ledger
from logmap.mapping.model import Mapping
from logmap.pipeline.runner import ProgressCallback, RunOptions
from logmap.records.types import DURATION_TYPES
from logmap.reports.shapes import display_path, path_of_url, shape_counts
from logmap.sinks.output import Run, write_text_atomically
from logmap.version import __version__

#: Version of the dry-run JSON structure (docs/reports.md); fields are only ever added within a version.
DRY_RUN_REPORT_VERSION = 1
#: Entries each ranking keeps between chunks.
KEEP = 1000
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_HOUR_BIN_LIMIT_S = 3600
#: Edges (seconds) of the duration histogram drawn in the HTML report; the last bin is open-ended.
HISTOGRAM_EDGES_S = (0, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)


class TopCounter:
    """Counts of values that keeps at most ``keep`` entries: exact until it first has to prune."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.exact = True

    def update(self, pairs: Iterable[tuple[str, int]], *, complete: bool = True) -> None:
        """Add ``(value, count)`` pairs; ``complete=False`` says the chunk's own tail was already cut."""
        for value, count in pairs:
            self.counts[value] += count
        if not complete:
            self.exact = False
        if len(self.counts) > 2 * self.keep:
            self.counts = Counter(dict(self.top(self.keep)))
            self.exact = False

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent values; ties in value order, so that chunking never changes the answer."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class Ranked:
    """One entry of a ranking: a value (path, shape, user agent…) and how many rows had it."""

    value: str
    count: int
    percent: float
    example: str | None = None
    #: Paths and shapes get ``label`` and ``example_label``: ``value`` and ``example`` as a person reads them
    #: (percent-decoded), when that differs from them.
    path_like: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "count": self.count, "percent": self.percent}
        if self.path_like and display_path(self.value) != self.value:
            out["label"] = display_path(self.value)
        if self.example is not None:
            out["example"] = self.example
            if self.path_like and display_path(self.example) != self.example:
                out["example_label"] = display_path(self.example)
        return out


@dataclass
class DurationStats:
    """Durations of one interaction type. Shares: ``absent`` of the type's records, ``capped`` of those with a
    duration. Quantiles are nearest-rank over 1-second bins (1-minute bins above an hour)."""

    records: int
    with_duration: int
    capped: int
    median_s: float | None
    p90_s: float | None
    histogram: list[dict[str, Any]]

    @property
    def absent_share(self) -> float:
        return _ratio(self.records - self.with_duration, self.records)

    @property
    def capped_share(self) -> float:
        return _ratio(self.capped, self.with_duration)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "with_duration": self.with_duration, "median_s": self.median_s,
                "p90_s": self.p90_s, "absent_share": self.absent_share, "capped": self.capped,
                "capped_share": self.capped_share, "histogram": self.histogram}


@dataclass
class DropDetail:
    """What the rows dropped for one reason looked like."""

    paths: list[Ranked] = field(default_factory=list)
    user_agents: list[Ranked] = field(default_factory=list)
    details: list[Ranked] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"paths": [r.to_dict() for r in self.paths], "user_agents": [r.to_dict() for r in self.user_agents],
                "details": [r.to_dict() for r in self.details], "examples": self.examples}


@dataclass
class DryRunReport:
    """Everything ``logmap dry-run`` shows; ``to_dict()`` is the versioned JSON report (docs/reports.md)."""

    ledger: Ledger
    mapping: str
    mapping_name: str | None
    inputs: list[str]
    elapsed_s: float
    warnings: list[str]
    duration_max_s: float
    unmatched_shapes: list[Ranked]
    drops_detail: dict[str, DropDetail]
    durations: dict[str, DurationStats]
    visitors: dict[str, int]
    first_record: datetime | None
    last_record: datetime | None
    with_product_ids: int
    with_product_ids_per_type: dict[str, int]
    records_per_hour: list[dict[str, Any]]
    samples: dict[str, list[dict[str, Any]]]
    rankings_exact: bool = True
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def rows_per_second(self) -> float:
        return self.ledger.input_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def share_of_input(self, count: int) -> float:
        return _percent(count, self.ledger.input_rows)

    def to_dict(self) -> dict[str, Any]:
        ledger = self.ledger
        return {
            "report_version": DRY_RUN_REPORT_VERSION,
            "kind": "dry-run",
            "logmap_version": __version__,
            "created_at": self.created_at.strftime(_TS_FORMAT),
            "mapping": self.mapping,
            "mapping_name": self.mapping_name,
            "inputs": self.inputs,
            "ledger": ledger.to_dict(),
            "drops": [{"reason": reason, "count": count, "percent": self.share_of_input(count)}
                      for reason, count in sorted(ledger.dropped.items(), key=lambda kv: (-kv[1], kv[0]))],
            "records_per_type": dict(sorted(ledger.per_type.items())),
            "records_per_rule": dict(ledger.per_rule.most_common()),
            "unmatched_shapes": [r.to_dict() for r in self.unmatched_shapes],
            "drops_detail": {reason: detail.to_dict() for reason, detail in sorted(self.drops_detail.items())},
            "durations": {"max_s": self.duration_max_s,
                          "per_type": {t: s.to_dict() for t, s in sorted(self.durations.items())}},
            "visitors": self.visitors,
            "time_range": {"first": _iso(self.first_record), "last": _iso(self.last_record)},
            "product_ids": {"records": self.with_product_ids,
                            "share": _ratio(self.with_product_ids, ledger.emitted),
                            "per_type": {t: {"records": n, "share": _ratio(n, ledger.per_type.get(t, 0))}
                                         for t, n in sorted(self.with_product_ids_per_type.items())}},
            "records_per_hour": self.records_per_hour,
            "samples": self.samples,
            "rankings_exact": self.rankings_exact,
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "warnings": self.warnings,
        }


def display_label(entry: dict[str, Any]) -> str:
    """What a person reads for a ranking entry of the JSON report: the percent-decoded ``label`` of paths and
    shapes, else the value."""
    return entry.get("label") or entry["value"]


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(_TS_FORMAT) if value is not None else None


def _duration_bin(duration: pl.Expr) -> pl.Expr:
    """1-second bins below an hour, 1-minute bins above: the key of the duration counters."""
    seconds = duration.floor()
    return pl.when(seconds < _HOUR_BIN_LIMIT_S).then(seconds).otherwise((seconds / 60).floor() * 60).cast(pl.Int64)


def quantile_from_bins(bins: Counter[int], q: float) -> float | None:
    """Nearest-rank quantile (the value at rank ⌈q·n⌉ in sorted order) of binned values."""
    total = sum(bins.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value in sorted(bins):
        seen += bins[value]
        if seen >= rank:
            return float(value)
    return float(max(bins))  # pragma: no cover - unreachable: the ranks add up to total


def histogram_edges(max_s: float) -> tuple[float, ...]:
    """The histogram's bin edges for a run whose durations are capped at ``max_s``: the fixed edges below the
    cap, then the cap itself, so that the last (open) bin holds exactly the capped durations."""
    cap = int(max_s) if float(max_s).is_integer() else max_s
    return tuple(e for e in HISTOGRAM_EDGES_S if e < cap) + (cap,)


def histogram_from_bins(bins: Counter[int], edges: tuple[float, ...] = HISTOGRAM_EDGES_S) -> list[dict[str, Any]]:
    """Re-bin the fine duration counters into the report's histogram: ``[{from_s, to_s, count}]`` (``to_s`` is
    null for the open last bin)."""
    out = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        count = sum(n for value, n in bins.items() if value >= low and (high is None or value < high))
        out.append({"from_s": low, "to_s": high, "count": count})
    return out


class DryRunStats:
    """Accumulates the dry-run statistics from the pipeline's dropped rows and emitted records."""

    def __init__(self, *, duration_max_s: float, samples_per_type: int = 3, keep: int = KEEP,
                 examples_per_reason: int = 3) -> None:
        self.duration_max_s = duration_max_s
        self.samples_per_type = samples_per_type
        self.examples_per_reason = examples_per_reason
        self.keep = keep
        self.unmatched = TopCounter(keep)
        self.unmatched_examples: dict[str, str] = {}
        self.drop_paths: dict[str, TopCounter] = {}
        self.drop_agents: dict[str, TopCounter] = {}
        self.drop_details: dict[str, TopCounter] = {}
        self.drop_examples: dict[str, list[dict[str, Any]]] = {}
        self.per_hour: Counter[tuple[str, str]] = Counter()
        self.duration_totals: dict[str, list[int]] = {}      # type → [records, with_duration, capped]
        self.duration_bins: dict[str, Counter[int]] = {}
        self.with_product_ids: Counter[str] = Counter()
        self.ids: dict[str, pl.Series] = {}
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.samples: dict[str, list[dict[str, Any]]] = {}

    # --- dropped rows -----------------------------------------------------------------------------------

    def add_dropped(self, frame: pl.DataFrame) -> None:
        """One frame of dropped rows: from the stream stage (access-log columns) or the record stage
        (record columns, reasons ``invalid:<field>``)."""
        columns = set(frame.columns)
        path = pl.col("path") if "path" in columns else pl.lit(None, pl.String)
        if "context.page.url" in columns:
            path = pl.coalesce(path, path_of_url(pl.col("context.page.url")))
        agent = pl.col("user_agent") if "user_agent" in columns else pl.lit(None, pl.String)
        if "context.user_agent" in columns:
            agent = pl.coalesce(agent, pl.col("context.user_agent"))
        detail = pl.col("_detail") if "_detail" in columns else pl.lit(None, pl.String)
        raw = pl.col("_raw").str.slice(0, 300) if "_raw" in columns else pl.lit(None, pl.String)
        rows = frame.select(pl.col("_drop").alias("reason"), path.alias("path"), agent.alias("user_agent"),
                            detail.alias("detail"), pl.col("_file").alias("file"), pl.col("_line").alias("line"),
                            raw.alias("raw"))
        for name, counters in (("path", self.drop_paths), ("user_agent", self.drop_agents),
                               ("detail", self.drop_details)):
            self._rank(rows, name, counters)
        self._examples(rows)
        unmatched = rows.filter(pl.col("reason") == "unmatched")
        if unmatched.height:
            shapes = shape_counts(unmatched, path_column="path")
            complete = shapes.height <= self.keep
            shapes = shapes.head(self.keep)
            self.unmatched.update(zip(shapes["shape"].to_list(), shapes["count"].to_list()), complete=complete)
            for shape, example in zip(shapes["shape"].to_list(), shapes["example"].to_list()):
                self.unmatched_examples.setdefault(shape, example)

    def _rank(self, rows: pl.DataFrame, column: str, counters: dict[str, TopCounter]) -> None:
        counts = (rows.filter(pl.col(column).is_not_null())
                  .group_by("reason", column).agg(pl.len().alias("n"))
                  .sort(["n", column], descending=[True, False]))
        if counts.height == 0:
            return
        for (reason,), part in counts.partition_by("reason", as_dict=True, maintain_order=True).items():
            counter = counters.setdefault(reason, TopCounter(self.keep))
            top = part.head(self.keep)
            counter.update(zip(top[column].to_list(), top["n"].to_list()), complete=part.height <= self.keep)

    def _examples(self, rows: pl.DataFrame) -> None:
        wanted = [r for r in rows["reason"].unique().to_list()
                  if len(self.drop_examples.get(r, [])) < self.examples_per_reason]
        if not wanted:
            return
        picked = (rows.filter(pl.col("reason").is_in(wanted))
                  .group_by("reason", maintain_order=True).head(self.examples_per_reason))
        for row in picked.iter_rows(named=True):
            bucket = self.drop_examples.setdefault(row["reason"], [])
            if len(bucket) < self.examples_per_reason:
                example = {"file": row["file"], "line": row["line"], "path": row["path"], "detail": row["detail"]}
                if display_path(row["path"]) != row["path"]:
                    example["path_label"] = display_path(row["path"])
                if row["reason"] == "malformed":
                    example["raw"] = row["raw"]
                bucket.append(example)

    # --- records ------------------------------------------------------------------------------------------

    def add_records(self, frame: pl.DataFrame) -> None:
        """One frame of valid records (a bucket) as ``iter_records`` yields it."""
        if frame.height == 0:
            return
        hours = (frame.group_by(pl.col("timestamp").dt.truncate("1h").dt.strftime(_TS_FORMAT).alias("hour"), "type")
                 .agg(pl.len().alias("n")))
        for hour, type_name, n in hours.iter_rows():
            self.per_hour[(hour, type_name)] += n
        self._durations(frame)
        has_ids = frame.select(pl.col("type"), (pl.col("product_ids").list.len() > 0).fill_null(False).alias("has"))
        for type_name, n in has_ids.group_by("type").agg(pl.col("has").sum()).iter_rows():
            if n:
                self.with_product_ids[type_name] += n
        for column in ("user_id", "anonymous_id"):
            self._distinct(column, frame[column])
        visitor = frame.select(pl.coalesce("user_id", "anonymous_id")).to_series()
        self._distinct("visitor", visitor)
        first, last = frame.select(pl.col("timestamp").min().alias("first"),
                                   pl.col("timestamp").max().alias("last")).row(0)
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
            self.last = last if self.last is None else max(self.last, last)
        self._samples(frame)

    def _durations(self, frame: pl.DataFrame) -> None:
        typed = frame.filter(pl.col("type").is_in(sorted(DURATION_TYPES)))
        if typed.height == 0:
            return
        totals = typed.group_by("type").agg(
            pl.len().alias("records"), pl.col("duration").count().alias("with"),
            (pl.col("duration") >= self.duration_max_s).sum().alias("capped"))
        for type_name, records, with_duration, capped in totals.iter_rows():
            acc = self.duration_totals.setdefault(type_name, [0, 0, 0])
            acc[0] += records
            acc[1] += with_duration
            acc[2] += capped
        bins = (typed.filter(pl.col("duration").is_not_null())
                .group_by("type", _duration_bin(pl.col("duration")).alias("bin")).agg(pl.len().alias("n")))
        for type_name, value, n in bins.iter_rows():
            self.duration_bins.setdefault(type_name, Counter())[value] += n

    def _distinct(self, name: str, values: pl.Series) -> None:
        hashed = values.drop_nulls().unique().hash(seed=0)
        previous = self.ids.get(name)
        self.ids[name] = hashed if previous is None else pl.concat([previous, hashed]).unique()

    def _samples(self, frame: pl.DataFrame) -> None:
        """Keep the earliest records per type (by timestamp, file, line), so that buckets never change them."""
        if self.samples_per_type == 0:
            return
        picked = (frame.sort(["timestamp", "_file", "_line"], nulls_last=True)
                  .group_by("type", maintain_order=True).head(self.samples_per_type)
                  .select("type", "_file", "_line", "_rule", "_json"))
        for type_name, file, line, rule, encoded in picked.iter_rows():
            self.samples.setdefault(type_name, []).append(
                {"file": file, "line": line, "rule": rule, "record": json.loads(encoded)})
        for kept in self.samples.values():
            kept.sort(key=lambda s: (s["record"].get("timestamp", ""), s["file"], s["line"]))
            del kept[self.samples_per_type:]

    # --- the report -----------------------------------------------------------------------------------------

    def report(self, ledger: Ledger, mapping: Mapping, inputs: list[str], *, elapsed_s: float,
               warnings: list[str], rule_names: list[str], top: int = 10) -> DryRunReport:
        dropped = ledger.dropped

        def ranked(counter: TopCounter, total: int, examples: dict[str, str] | None = None, *,
                   paths: bool = False) -> list[Ranked]:
            return [Ranked(value, count, _percent(count, total), (examples or {}).get(value), path_like=paths)
                    for value, count in counter.top(top)]

        details: dict[str, DropDetail] = {}
        for reason in dropped:
            total = dropped[reason]
            details[reason] = DropDetail(
                paths=ranked(self.drop_paths.get(reason, TopCounter()), total, paths=True),
                user_agents=ranked(self.drop_agents.get(reason, TopCounter()), total),
                details=ranked(self.drop_details.get(reason, TopCounter()), total),
                examples=self.drop_examples.get(reason, []))
        durations = {}
        for type_name, (records, with_duration, capped) in self.duration_totals.items():
            bins = self.duration_bins.get(type_name, Counter())
            durations[type_name] = DurationStats(
                records=records, with_duration=with_duration, capped=capped,
                median_s=quantile_from_bins(bins, 0.5), p90_s=quantile_from_bins(bins, 0.9),
                histogram=histogram_from_bins(bins, histogram_edges(self.duration_max_s)))
        hours: dict[str, dict[str, int]] = {}
        for (hour, type_name), n in sorted(self.per_hour.items()):
            hours.setdefault(hour, {})[type_name] = n
        for samples in self.samples.values():
            for sample in samples:
                rule = sample["rule"]
                sample["rule"] = rule_names[rule] if isinstance(rule, int) and 0 <= rule < len(rule_names) else rule
        counters = [self.unmatched, *self.drop_paths.values(), *self.drop_agents.values(),
                    *self.drop_details.values()]
        return DryRunReport(
            ledger=ledger, mapping=mapping.path, mapping_name=mapping.name, inputs=list(inputs),
            elapsed_s=elapsed_s, warnings=list(warnings), duration_max_s=mapping.durations.max_s,
            unmatched_shapes=ranked(self.unmatched, dropped.get("unmatched", 0), self.unmatched_examples, paths=True),
            drops_detail=details, durations=durations,
            visitors={"user_ids": self._count("user_id"), "anonymous_ids": self._count("anonymous_id"),
                      "visitors": self._count("visitor")},
            first_record=self.first, last_record=self.last,
            with_product_ids=sum(self.with_product_ids.values()),
            with_product_ids_per_type=dict(self.with_product_ids),
            records_per_hour=[{"hour": hour, "counts": dict(sorted(counts.items()))}
                              for hour, counts in hours.items()],
            samples=dict(sorted(self.samples.items())),
            rankings_exact=all(c.exact for c in counters))

    def _count(self, name: str) -> int:
        series = self.ids.get(name)
        return 0 if series is None else series.len()


def dry_run(inputs: list[str], mapping: Mapping | str | Path, *, key: str | bytes | None = None,
            options: RunOptions | None = None, progress: ProgressCallback | None = None,
            top: int = 10, samples_per_type: int = 3) -> DryRunReport:
    """Run the pipeline on ``inputs`` without writing anything and gather the dry-run report.

    ``key`` is the anonymous-id key; ``options`` and ``progress`` are those of
    :func:`logmap.pipeline.runner.iter_records`; ``top`` is the length of each ranking in the report.
    """
    started = time.perf_counter()
    stats: DryRunStats | None = None

    def observe_dropped(frame: pl.DataFrame) -> None:
        assert stats is not None
        stats.add_dropped(frame)

    # Stops on a missing key or a bad template before reading input.
    with Run(list(inputs), mapping, key=key, options=options, progress=progress, on_dropped=observe_dropped) as run:
        stats = DryRunStats(duration_max_s=run.mapping.durations.max_s, samples_per_type=samples_per_type)
        for records in run.records():
            stats.add_records(records)
    return stats.report(run.ledger, run.mapping, inputs, elapsed_s=time.perf_counter() - started,
                        warnings=run.warnings, rule_names=run.prepared.rule_names, top=top)


def write_json(report: DryRunReport, path: str | Path) -> dict[str, Any]:
    """Write the JSON report (UTF-8, indented) and return the dict written."""
    data = report.to_dict()
    write_text_atomically(Path(path), json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return data
