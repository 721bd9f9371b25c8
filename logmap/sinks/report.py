"""``report.json`` and the end-of-run summary.

The report's structure is versioned (``report_version``); fields are only ever added within a version.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logmap import __version__
from logmap.mapping.model import Mapping

if TYPE_CHECKING:
    from logmap.pipeline import RunResult

REPORT_VERSION = 1


def report_dict(result: RunResult, mapping: Mapping, **extra: Any) -> dict[str, Any]:
    ledger = result.ledger
    return {
        "report_version": REPORT_VERSION,
        "logmap_version": __version__,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
