"""Every output (batches, rejects, report ledgers) on every fixture is byte-identical to the recorded digest.

A change that must not alter output (a refactor, a speed-up) keeps these tests green. A deliberate change of
output regenerates the digest (`python scripts/output_digest.py > fixtures/output-digest.json`) in the same
commit, whose message says which outputs changed and why.

The script is the one definition of the cases and of the digest; here each case is a test of its own, run in
this process, so that the cases spread over the workers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDED = json.loads((ROOT / "fixtures/output-digest.json").read_text())


def _script():
    spec = importlib.util.spec_from_file_location("output_digest", ROOT / "scripts/output_digest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DIGEST = _script()


def test_every_case_has_a_recorded_digest(tmp_path):
    assert sorted(name for name, _, _ in DIGEST.cases(tmp_path)) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_output_matches_the_recorded_digest(name, tmp_path):
    inputs, mapping = next((i, m) for n, i, m in DIGEST.cases(tmp_path) if n == name)
    assert DIGEST.digest_case(inputs, mapping, tmp_path) == RECORDED[name], \
        f"outputs differ from fixtures/output-digest.json for: {name}"
