"""Convert every fixture with its mapping and record what came out, to prove a change leaves output unchanged.

    PYTHONPATH=. python scripts/fixture_outputs.py save  /tmp/before     # on the commit before the change
    PYTHONPATH=. python scripts/fixture_outputs.py check /tmp/before     # after it: exit 1 on any difference

Inputs: ``fixtures/storefront`` with ``mappings/storefront-combined.yaml``; each export fixture with its
mapping (the files its ``summary.json`` names); each ``fixtures/logs`` file with the starter mapping ``logmap
init`` writes for it. Compared byte for byte: every batch file, ``rejects.ndjson``, and report.json's ledger,
per-type and per-rule counts, rejects count and file list (its timings, date and how the run was partitioned
differ from run to run by nature).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORT_MAPPINGS = {"ga4": "ga4-bigquery-export.yaml", "amplitude": "amplitude-export.yaml",
                   "segment": "segment.yaml", "snowplow": "snowplow-enriched.yaml"}
#: report.json fields that are the run's output, not how or when it ran
REPORT_FIELDS = ("mapping", "inputs", "ledger", "records_per_type", "records_per_rule", "rejects", "output")


def cases(work: Path) -> dict[str, tuple[list[str], Path]]:
    from click.testing import CliRunner

    from logmap.cli import main

    found = {"storefront": ([str(ROOT / "fixtures/storefront/access.log")],
                            ROOT / "mappings/storefront-combined.yaml")}
    for tool, mapping in EXPORT_MAPPINGS.items():
        folder = ROOT / "fixtures/exports" / tool
        files = json.loads((folder / "summary.json").read_text())["files"]
        found[f"exports/{tool}"] = ([str(folder / f) for f in files], ROOT / "mappings" / mapping)
    for log in sorted((ROOT / "fixtures/logs").iterdir()):
        if log.suffix not in (".log", ".jsonl"):
            continue
        starter = work / f"{log.name}.yaml"
        result = CliRunner().invoke(main, ["init", str(log), "-o", str(starter)])
        if result.exit_code == 0:
            found[f"logs/{log.name}"] = ([str(log)], starter)
        else:
            print(f"skipped {log.name}: init failed: {result.output.strip()[:200]}", file=sys.stderr)
    return found


def outputs(work: Path) -> dict[str, str]:
    """name/file → sha256 of the file (report.json: of its output fields)."""
    from logmap.pipeline import convert

    digests: dict[str, str] = {}
    for name, (inputs, mapping) in cases(work).items():
        out = work / name.replace("/", "_")
        convert(inputs, mapping, out)
        for path in sorted(out.iterdir()):
            data = path.read_bytes()
            if path.name == "report.json":
                report = json.loads(data)
                report["mapping"] = Path(report["mapping"]).name  # starter mappings live in a temporary directory
                data = json.dumps({k: report.get(k) for k in REPORT_FIELDS}, sort_keys=True).encode()
            digests[f"{name}/{path.name}"] = hashlib.sha256(data).hexdigest()
    return digests


def main() -> None:
    action, where = sys.argv[1], Path(sys.argv[2])
    os.environ.setdefault("LOGMAP_KEY", "fixture-outputs-key")
    with tempfile.TemporaryDirectory(prefix="logmap-fixture-outputs-") as work:
        digests = outputs(Path(work))
    if action == "save":
        where.mkdir(parents=True, exist_ok=True)
        (where / "digests.json").write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        print(f"{len(digests)} output files recorded in {where}/digests.json")
        return
    before = json.loads((where / "digests.json").read_text())
    differ = sorted(k for k in before.keys() | digests.keys() if before.get(k) != digests.get(k))
    for key in differ:
        print(f"differs: {key}")
    print(f"{len(digests)} output files, {len(differ)} differ from {where}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
