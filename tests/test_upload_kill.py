"""`kill -9` in the middle of an upload, then `--resume`: the journal makes the result exactly once, except for
requests whose answer was lost at the moment of the kill (the documented window), which are at most
``concurrency`` requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from apiserver import FakeMiso, Fault, make_records, write_batches
from click.testing import CliRunner, Result
from test_upload import DEAD_LETTER_NAME, JOURNAL_NAME, KEY, assert_exactly_once

from logmap.cli import main

REPO = Path(__file__).resolve().parents[1]


def logmap(*args: str) -> list[str]:
    return [sys.executable, "-c", "from logmap.cli import main; main()", *args]


def env() -> dict[str, str]:
    return {**os.environ, "MISO_API_KEY": KEY, "PYTHONPATH": str(REPO)}


def command(api: FakeMiso, directory: Path, *extra: str) -> list[str]:
    return ["upload", "--from", str(directory), "--base-url", api.url, "--max-records", "400", "--concurrency", "2",
            "--backoff", "0.01", "--max-backoff", "0.05", "--timeout", "5", *extra]


def upload_args(api: FakeMiso, directory: Path, *extra: str) -> list[str]:
    return logmap(*command(api, directory, *extra))


def resume(api: FakeMiso, directory: Path) -> Result:
    """The ``--resume`` run, in this process: only the run that is killed needs a process of its own (one less
    interpreter and import of logmap per test)."""
    return CliRunner().invoke(main, command(api, directory, "--resume"), env={"MISO_API_KEY": KEY})


def journal_sent(directory: Path) -> int:
    path = directory / JOURNAL_NAME
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.endswith("}") and '"sent"' in line)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_kill_9_between_acknowledgements_then_resume_is_exactly_once(tmp_path):
    invalid = (42, 2500, 5999)
    records = make_records(6000, invalid=invalid)
    write_batches(tmp_path, records, per_file=1000)
    with FakeMiso(KEY) as api:
        api.chaos(0.2, [Fault.http(503), Fault.http(429, retry_after=0.01), Fault.drop()], seed=3)
        api.hold_after(5)  # after 5 stored requests the server parks the rest (they will store nothing)
        first = subprocess.Popen(upload_args(api, tmp_path), env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        # Kill once every stored request is journaled and the others are parked: nothing is in its lost-answer
        # window, so the resumed run must end exactly once.
        wait_for(lambda: api.holding.is_set() and journal_sent(tmp_path) == api.stored_count)
        first.send_signal(signal.SIGKILL)
        out, err = first.communicate(timeout=10)
        assert first.returncode == -signal.SIGKILL
        api.release()
        stored_before = len(api.records)
        assert 0 < stored_before < 6000 - len(invalid)

        resumed = resume(api, tmp_path)
        assert resumed.exit_code == 0, resumed.output
        assert "skipped" in resumed.stdout
        for text in (out.decode(), err.decode(), resumed.stdout, resumed.stderr):
            assert KEY not in text
        assert_exactly_once(api, records, invalid, tmp_path)
        for name in (JOURNAL_NAME, DEAD_LETTER_NAME):
            assert KEY not in (tmp_path / name).read_text()


def test_kill_9_at_any_moment_loses_nothing_and_duplicates_at_most_the_requests_in_flight(tmp_path):
    records = make_records(8000, invalid=(7,))
    write_batches(tmp_path, records, per_file=2000)
    with FakeMiso(KEY) as api:
        api.chaos(0.1, [Fault.slow(0.05)], seed=11)
        first = subprocess.Popen(upload_args(api, tmp_path), env=env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_for(lambda: api.stored_count >= 4)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        resumed = resume(api, tmp_path)
        assert resumed.exit_code == 0, resumed.output
        stored = Counter(api.stored_keys())
        valid = {r["user_id"] for i, r in enumerate(records) if i != 7}
        assert set(stored) == valid, "a record was lost"
        doubled = [k for k, n in stored.items() if n > 1]
        assert all(n <= 2 for n in stored.values())
        assert len(doubled) <= 2 * 400, "more duplicates than the requests in flight at the kill"
        letters = [json.loads(line) for line in (tmp_path / DEAD_LETTER_NAME).read_text().splitlines()]
        assert [d["index"] for d in letters] == [7]


def test_ctrl_c_finishes_what_is_in_flight_says_resume_and_resume_is_exactly_once(tmp_path):
    records = make_records(5000, invalid=(1234,))
    write_batches(tmp_path, records, per_file=1000)
    with FakeMiso(KEY) as api:
        api.hold_after(3)
        first = subprocess.Popen(upload_args(api, tmp_path), env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        wait_for(lambda: api.holding.is_set() and journal_sent(tmp_path) == api.stored_count)
        first.send_signal(signal.SIGINT)
        time.sleep(0.3)
        api.release()  # the parked requests now fail (503); the interrupted run must not retry them
        out, err = first.communicate(timeout=20)
        assert first.returncode == 130, err
        assert "--resume" in err and "sent" in out and KEY not in out + err
        resumed = resume(api, tmp_path)
        assert resumed.exit_code == 0, resumed.output
        assert_exactly_once(api, records, (1234,), tmp_path)
