"""``report.json`` and the end-of-run summary.

The report's structure is versioned (``report_version``); fields are only ever added within a version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logmap.ledger import Ledger
from logmap.mapping.model import Mapping
from logmap.version import __version__

REPORT_VERSION = 1


@dataclass
class RunResult:
    """What a finished run reports: its ledger, output files, reject count and warnings."""

    ledger: Ledger
    elapsed_s: float = 0.0
    files: list[Path] = field(default_factory=list)
    rejects: int = 0
    warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    mapping_path: str = ""
    #: how the run was partitioned (``BucketStore.describe``): report.json's ``partitioning`` and the summary
    partitioning: dict[str, object] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.ledger.input_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


def report_dict(result: RunResult, mapping: Mapping, **extra: Any) -> dict[str, Any]:
    ledger = result.ledger
    return {
        "report_version": REPORT_VERSION,
        "logmap_version": __version__,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mapping": mapping.path,
        "inputs": result.inputs,
        "ledger": ledger.to_dict(),
        "records_per_type": dict(sorted(ledger.per_type.items())),
        "records_per_rule": dict(ledger.per_rule.most_common()),
        "rejects": result.rejects,
        "output": {"files": [p.name for p in result.files], **extra},
        "partitioning": result.partitioning,
        "elapsed_s": round(result.elapsed_s, 3),
        "rows_per_second": round(result.rows_per_second, 1),
        "warnings": result.warnings,
    }


def write_report(path: Path, result: RunResult, mapping: Mapping, **extra: Any) -> dict[str, Any]:
    report = report_dict(result, mapping, **extra)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
