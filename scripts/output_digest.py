"""Digest of every output logmap writes for every fixture: proves a refactor or speed-up changed no byte.

Run it on two revisions and compare the JSON it prints (``diff`` of two runs must be empty)::

    python scripts/output_digest.py > after.json
    git stash; python scripts/output_digest.py > before.json; git stash pop
    diff before.json after.json

Each fixture is converted with its mapping (the shipped mapping for exports and the storefront sample, a
catch-all ``format: auto`` mapping for every real log) into a temporary directory; the digest covers each
batch file's bytes, ``rejects.ndjson`` (empty when absent) and the report's ledger and per-type counts.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "digest-key"
CATCH_ALL = """\
logmap: 1
source: {format: auto, site: 'https://example.com/'}
rules:
  - {name: any page, path: '^/', type: custom, custom_action_name: visit}
"""


def _convert(inputs: list[str], mapping: Path, out: Path) -> None:
    try:
        from logmap.conversion import convert
    except ImportError:  # revisions before the layered library: the key came from the environment
        import os

        from logmap.pipeline import convert  # type: ignore[no-redef]

        os.environ["LOGMAP_KEY"] = KEY
        convert(inputs, mapping, out, overwrite=True)
        return
    convert(inputs, mapping, out, key=KEY, overwrite=True)


def _digest(out: Path) -> dict[str, object]:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(out.glob("interactions-*"))}
    rejects = out / "rejects.ndjson"
    # Rejects name their input files: the checkout's own path is left out, so two checkouts compare equal.
    rejected = rejects.read_bytes().replace(str(ROOT).encode(), b"<root>") if rejects.exists() else b""
    report = json.loads((out / "report.json").read_text())
    return {"batches": files,
            "rejects": hashlib.sha256(rejected).hexdigest(),
            "ledger": report["ledger"], "records_per_type": report["records_per_type"],
            "records_per_rule": report["records_per_rule"], "rejects_count": report["rejects"]}


def cases(tmp: Path) -> list[tuple[str, list[str], Path]]:
    catch_all = tmp / "catch-all.yaml"
    catch_all.write_text(CATCH_ALL)
    found = [("storefront", [str(ROOT / "fixtures/storefront/access.log")],
              ROOT / "mappings/storefront-combined.yaml")]
    for log in sorted((ROOT / "fixtures/logs").iterdir()):
        if log.suffix in (".log", ".jsonl"):
            found.append((log.name, [str(log)], catch_all))
    # each export fixture's own input files (its summary lists them; the folder also holds the golden records)
    tests = str(ROOT / "tests")
    if tests not in sys.path:  # already there when tests/test_output_digest.py calls this
        sys.path.insert(0, tests)
    from support import EXPORT_FIXTURES

    for folder, mapping in EXPORT_FIXTURES.items():
        files = json.loads((ROOT / "fixtures/exports" / folder / "summary.json").read_text())["files"]
        found.append((f"exports/{folder}", [str(ROOT / "fixtures/exports" / folder / f) for f in files],
                      ROOT / "mappings" / mapping))
    return found


def digest_case(inputs: list[str], mapping: Path, tmp: Path) -> dict[str, object]:
    """The digest of one case, converted into ``tmp/out`` (replaced if there); ``tmp`` reads ``<tmp>`` in errors."""
    out = tmp / "out"
    try:
        _convert(inputs, mapping, out)
        return _digest(out)
    except Exception as error:  # recorded, so that a difference in failures shows up too
        return {"error": f"{type(error).__name__}: {error}".replace(str(tmp), "<tmp>")}


def main() -> None:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, inputs, mapping in cases(tmp):
            results[name] = digest_case(inputs, mapping, tmp)
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
