"""Every output (batches, rejects, report ledgers) on every fixture is byte-identical to the recorded digest.

A change that must not alter output (a refactor, a speed-up) keeps this test green. A deliberate change of
output regenerates the digest (`python scripts/output_digest.py > fixtures/output-digest.json`) in the same
commit, whose message says which outputs changed and why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_outputs_match_the_recorded_digest():
    done = subprocess.run([sys.executable, str(ROOT / "scripts/output_digest.py")], capture_output=True, text=True,
                          check=True)
    actual = json.loads(done.stdout)
    expected = json.loads((ROOT / "fixtures/output-digest.json").read_text())
    changed = sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))
    assert not changed, f"outputs differ from fixtures/output-digest.json for: {', '.join(changed)}"
