"""Run a mapping's own ``tests:`` block: input lines (or export rows) in, records or drop reasons out.

Each case goes through the real pipeline (a `logmap.sinks.output.Run`) on a small input file written to a
temporary directory — the same reader, parser, filter, rules, identity, durations, validation and encoder a
conversion uses — so a passing test means the mapping really behaves that way. Cases run separately, so that
durations (the gap to the visitor's next record) never reach from one case into another.

Expectations (``expect:``):

* a record, as a subset of its JSON fields: ``{type: search, search: {keywords: red shoes}}``. Nested objects
  are compared key by key, lists element by element; ``null`` means the field must be absent;
* a drop reason: ``{dropped: 'filtered:static'}``;
* counts: ``{counts: {product_detail_page_view: 2, 'filtered:bot': 1}}`` — records per type and rows per drop
  reason, for the keys given (``records`` and ``dropped`` count all records and all dropped rows);
* a list with one of the above per input line.

A single record or drop expectation on a case with several lines must hold for every line.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from logmap.mapping.loader import key_variable
from logmap.mapping.model import Mapping, TestCase
from logmap.sinks.output import Run

#: The key used when the mapping's anonymous-id key variable is unset: test expectations never depend on it.
THROWAWAY_KEY = "logmap-test-throwaway-key"


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


#: Marks a field the actual record does not have.
MISSING: Any = _Missing()


@dataclass
class Outcome:
    """What became of one input line: a record (as the API would receive it) or a drop reason."""

    line: int
    record: dict[str, Any] | None = None
    rule: str | None = None
    dropped: str | None = None
    detail: str | None = None

    def describe(self) -> str:
        if self.record is not None:
            return f"became a {self.record.get('type')} record (rule '{self.rule}')"
        detail = f" ({self.detail})" if self.detail else ""
        return f"was dropped as {self.dropped}{detail}"


@dataclass
class FieldDiff:
    """One field whose actual value differs from the expected one (``MISSING`` when absent)."""

    path: str
    expected: Any
    actual: Any


@dataclass
class Failure:
    """Why a case failed: a message, the field differences, and what actually came out."""

    message: str
    line: int | None = None
    diffs: list[FieldDiff] = field(default_factory=list)
    actual: Outcome | None = None


@dataclass
class CaseResult:
    case: TestCase
    outcomes: list[Outcome]
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def location(self) -> str:
        where = self.case.where
        return f"{where.file}:{where.line}" if where else ""


@dataclass
class TestRun:
    """All case results of one mapping, and whether a throwaway anonymous-id key was used."""

    mapping: Mapping
    results: list[CaseResult]
    throwaway_key: str | None = None   # the name of the variable that was unset

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]


# --- running --------------------------------------------------------------------------------------------------

def _write_input(case: TestCase, mapping: Mapping, directory: Path, index: int) -> Path:
    """The case's lines or rows as a file the mapping's source reads."""
    fmt = mapping.source.format
    if case.rows:
        if fmt == "csv":
            path = directory / f"case-{index}.csv"
            options = mapping.source.options
            separator = str(options.get("separator", ","))
            rows = pl.DataFrame(case.rows)
            names = options.get("columns")
            if names is None and "header_file" in options:
                header = Path(str(options["header_file"]))
                if header.is_absolute():
                    from logmap.sources.exports import header_file_names

                    names = header_file_names(str(header), separator)
                else:  # looked for beside the input: the case's own columns, so a test needs no delivery
                    names = list(rows.columns)
                    (directory / header).parent.mkdir(parents=True, exist_ok=True)
                    (directory / header).write_text(separator.join(names) + "\n", encoding="utf-8")
            if names is not None:  # a CSV without a header row: the values in the order the mapping names them
                rows = rows.select(pl.col(n) if n in rows.columns else pl.lit(None, pl.String).alias(n) for n in names)
            rows.write_csv(path, separator=separator, include_header=names is None)
        elif fmt == "parquet":
            path = directory / f"case-{index}.parquet"
            pl.DataFrame(case.rows).write_parquet(path)
        else:
            path = directory / f"case-{index}.ndjson"
            path.write_text("".join(json.dumps(row, default=str) + "\n" for row in case.rows), encoding="utf-8")
        return path
    path = directory / f"case-{index}.log"
    path.write_text("".join(line + "\n" for line in case.lines), encoding="utf-8")
    return path


def run_case(case: TestCase, mapping: Mapping, directory: Path, index: int = 0, *,
             key: str | bytes | None = None) -> CaseResult:
    """Run one case through the pipeline and compare the outcome with its expectation."""
    path = _write_input(case, mapping, directory, index)
    dropped: list[pl.DataFrame] = []
    records: list[pl.DataFrame] = []
    with Run([str(path)], mapping, key=key, on_dropped=dropped.append) as run:
        for frame in run.records():
            records.append(frame.select("_line", "_rule", "_json"))
    prepared = run.prepared
    outcomes: dict[int, Outcome] = {}
    for frame in dropped:
        detail = frame["_detail"] if "_detail" in frame.columns else pl.Series([None] * frame.height)
        for line, reason, text in zip(frame["_line"].to_list(), frame["_drop"].to_list(), detail.to_list()):
            outcomes[line] = Outcome(line=line, dropped=reason, detail=text)
    for frame in records:
        for line, rule, encoded in frame.iter_rows():
            name = prepared.rule_names[rule] if rule is not None else None
            outcomes[line] = Outcome(line=line, record=json.loads(encoded), rule=name)
    ordered = [outcomes[k] for k in sorted(outcomes)]
    result = CaseResult(case=case, outcomes=ordered)
    given = len(case.rows) or len(case.lines)
    if len(ordered) != given:
        result.failures = [Failure(f"the pipeline accounted for {len(ordered)} row(s) of {given} input line(s)")]
    else:
        result.failures = check_expectation(case.expect, ordered, given)
    return result


def run_mapping_tests(mapping: Mapping, *, key: str | bytes | None = None) -> TestRun:
    """Run every case of ``mapping.tests`` with the anonymous-id ``key``, or a throwaway one when the mapping
    needs a key and none is given (expectations never depend on its value)."""
    throwaway = key_variable(mapping) if not key else None
    with tempfile.TemporaryDirectory(prefix="logmap-test-") as tmp:
        results = [run_case(case, mapping, Path(tmp), i, key=key or THROWAWAY_KEY)
                   for i, case in enumerate(mapping.tests)]
    return TestRun(mapping=mapping, results=results, throwaway_key=throwaway)


# --- comparing ------------------------------------------------------------------------------------------------

def check_expectation(expect: Any, outcomes: list[Outcome], lines: int) -> list[Failure]:
    """Failures of ``outcomes`` (one per input line, in line order) against ``expect``; empty when it holds."""
    if isinstance(expect, list):
        if len(expect) != lines:
            return [Failure(f"expect lists {len(expect)} expectation(s) but the case has {lines} input line(s)")]
        failures = []
        for number, (single, outcome) in enumerate(zip(expect, outcomes), start=1):
            failures += _check_one(single, outcome, number)
        return failures
    if isinstance(expect, dict) and "counts" in expect:
        return _check_counts(expect["counts"], outcomes)
    failures = []
    for number, outcome in enumerate(outcomes, start=1):
        failures += _check_one(expect, outcome, number if lines > 1 else None)
    return failures


def _check_one(expect: Any, outcome: Outcome, line: int | None) -> list[Failure]:
    if not isinstance(expect, dict):
        return [Failure(f"an expectation is a mapping (record fields, dropped or counts), not {expect!r}", line)]
    if "dropped" in expect:
        if outcome.dropped == expect["dropped"]:
            return []
        return [Failure(f"expected the line to be dropped as {expect['dropped']}, but it "
                        f"{outcome.describe()}", line, actual=outcome)]
    if outcome.record is None:
        return [Failure(f"expected a record, but the line {outcome.describe()}", line, actual=outcome)]
    diffs = compare_subset(expect, outcome.record)
    if not diffs:
        return []
    return [Failure(f"the record differs in {len(diffs)} field(s)", line, diffs, outcome)]


def _check_counts(expected: Any, outcomes: list[Outcome]) -> list[Failure]:
    if not isinstance(expected, dict):
        return [Failure(f"counts is a mapping of type or drop reason to a number, not {expected!r}")]
    actual: Counter[str] = Counter()
    for outcome in outcomes:
        actual[outcome.record["type"] if outcome.record is not None else str(outcome.dropped)] += 1
        actual["records" if outcome.record is not None else "dropped"] += 1
    diffs = [FieldDiff(f"counts.{key}", want, actual.get(key, 0))
             for key, want in expected.items() if actual.get(key, 0) != want]
    if not diffs:
        return []
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(actual.items()) if k not in ("records", "dropped"))
    return [Failure(f"counts differ (actual: {summary or 'nothing'})", diffs=diffs)]


def compare_subset(expected: Any, actual: Any, path: str = "") -> list[FieldDiff]:
    """Differences where ``actual`` does not contain ``expected``: dicts by their expected keys, lists element
    by element, numbers by value (``2`` equals ``2.0``), date-times by instant, ``None`` meaning absent."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [FieldDiff(path or "(record)", expected, actual)]
        diffs = []
        for key, want in expected.items():
            child = f"{path}.{key}" if path else str(key)
            have = actual.get(key, MISSING)
            if want is None:
                if have is not MISSING:
                    diffs.append(FieldDiff(child, MISSING, have))
            elif have is MISSING:
                diffs.append(FieldDiff(child, want, MISSING))
            else:
                diffs += compare_subset(want, have, child)
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [FieldDiff(path, expected, actual)]
        if any(compare_subset(w, h, f"{path}[{i}]") for i, (w, h) in enumerate(zip(expected, actual))):
            return [FieldDiff(path, expected, actual)]
        return []
    return [] if _same_scalar(expected, actual) else [FieldDiff(path, expected, actual)]


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    if isinstance(expected, datetime):  # YAML turns an unquoted timestamp into a datetime
        expected = expected.isoformat()
    if isinstance(expected, str) and isinstance(actual, str) and expected != actual:
        left, right = _instant(expected), _instant(actual)
        return left is not None and left == right
    return expected == actual


def _instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


# --- reporting ------------------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False, default=str)


def format_failure(failure: Failure) -> list[str]:
    """Readable lines for one failure: the message, then ``- expected`` / ``+ actual`` per field."""
    where = f"line {failure.line}: " if failure.line is not None else ""
    lines = [f"{where}{failure.message}"]
    for diff in failure.diffs:
        lines.append(f"  {diff.path}:")
        lines.append(f"    - expected {_show(diff.expected)}")
        lines.append(f"    + actual   {_show(diff.actual)}")
    if failure.actual is not None and failure.actual.record is not None:
        lines.append(f"  actual record: {_show(failure.actual.record)}")
    return lines


def format_result(result: CaseResult) -> list[str]:
    """The report lines for one case: a status line, and for a failure its diff."""
    status = "PASS" if result.passed else "FAIL"
    head = f"{status} {result.name}" + (f"  ({result.location})" if result.location else "")
    lines = [head]
    if not result.passed:
        shown = result.case.lines or [json.dumps(r, default=str) for r in result.case.rows]
        for i, text in enumerate(shown, start=1):
            lines.append(f"  input {i}: {text if len(text) <= 160 else text[:159] + '…'}")
        for failure in result.failures:
            lines += ["  " + line for line in format_failure(failure)]
    return lines
