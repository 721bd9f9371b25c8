"""Uploads against a real HTTP server on 127.0.0.1 with injected faults: every valid record is stored exactly
once, every invalid one is in the dead-letter file, and the key never shows."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from apiserver import UPLOAD, FakeMiso, Fault, make_records, write_batches
from click.testing import CliRunner

from logmap.api.client import ApiClient, RetryPolicy
from logmap.api.upload import (
    DEAD_LETTER_NAME,
    JOURNAL_NAME,
    UploadFailed,
    UploadOptions,
    batches_from_dir,
    batches_from_stream,
    split_range,
    uncovered,
    upload,
)
from logmap.cli import main
from logmap.errors import LogmapError

KEY = "sk-LOGMAP-TEST-9f3e1c7b2d4a"
FAST = RetryPolicy(attempts=6, base_s=0.01, max_s=0.05)


@pytest.fixture
def server():
    with FakeMiso(KEY) as api:
        yield api


def client_for(api: FakeMiso, **kwargs) -> ApiClient:
    # Generous: a request the server stored but answered after the timeout is sent again and stored twice, so
    # a timeout shorter than a loaded machine's answer would fail the exactly-once checks for no fault of ours.
    kwargs.setdefault("timeout_s", 10.0)
    return ApiClient(KEY, api.url, **kwargs)


def run_upload(api: FakeMiso, directory: Path, *, resume: bool = False, **options):
    options.setdefault("retry", FAST)
    options.setdefault("concurrency", 3)
    with client_for(api) as client:
        return upload(batches_from_dir(directory), client, directory, options=UploadOptions(**options),
                      resume=resume)


def dead_letters(directory: Path) -> list[dict]:
    path = directory / DEAD_LETTER_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_exactly_once(api: FakeMiso, records: list[dict], invalid: tuple[int, ...], directory: Path) -> None:
    stored = Counter(api.stored_keys())
    valid = {r["user_id"] for i, r in enumerate(records) if i not in invalid}
    assert {k: n for k, n in stored.items() if n > 1} == {}, "a record was stored twice"
    assert set(stored) == valid
    rejected = [d["record"]["user_id"] for d in dead_letters(directory)]
    assert sorted(rejected) == sorted(records[i]["user_id"] for i in invalid)


# -- pure helpers ---------------------------------------------------------------------------------------------

def test_uncovered_ranges_are_the_complement():
    assert uncovered(10, []) == [(0, 10)]
    assert uncovered(10, [(0, 3), (5, 6), (6, 8)]) == [(3, 5), (8, 10)]
    assert uncovered(10, [(0, 10)]) == []


def test_split_range_respects_record_and_byte_caps():
    records = [b'{"a":"' + b"x" * 90 + b'"}'] * 50  # 98 bytes each
    pieces = list(split_range(records, 0, 50, max_records=20, max_bytes=1024))
    assert pieces[0] == (0, 10) and pieces[-1][1] == 50
    assert all(b - a <= 20 for a, b in pieces)
    for a, b in pieces:
        assert len(b'{"data":[' + b",".join(records[a:b]) + b"]}") <= 1024
    assert list(split_range(records, 0, 50, max_records=20, max_bytes=10**6)) == [(0, 20), (20, 40), (40, 50)]


# -- happy path and the API contract ---------------------------------------------------------------------------

def test_upload_from_dir_stores_every_record_once(tmp_path, server):
    records = make_records(2500)
    write_batches(tmp_path, records, per_file=1000)
    stats = run_upload(server, tmp_path)
    assert (stats.sent, stats.rejected, stats.skipped, stats.batches) == (2500, 0, 0, 3)
    assert_exactly_once(server, records, (), tmp_path)
    assert stats.records_per_second > 0


def test_json_batch_files_are_uploaded_too(tmp_path, server):
    records = make_records(300)
    write_batches(tmp_path, records, per_file=120, fmt="json")
    assert run_upload(server, tmp_path).sent == 300
    assert_exactly_once(server, records, (), tmp_path)


def test_requests_respect_record_and_byte_caps(tmp_path):
    records = make_records(1200)
    write_batches(tmp_path, records, per_file=1200)
    with FakeMiso(KEY, max_records=500, max_bytes=40_000) as api:
        stats = run_upload(api, tmp_path, max_records=500, max_bytes=40_000)
        sizes = [e for e in api.log if e["route"] == UPLOAD]
        assert stats.sent == 1200 and all(e["status"] == 200 for e in sizes)
        assert max(e["records"] for e in sizes) <= 500 and max(e["bytes"] for e in sizes) <= 40_000
        assert_exactly_once(api, records, (), tmp_path)


def test_streaming_batches_are_sent_while_later_ones_are_produced(tmp_path, server):
    records = make_records(400)
    encoded = [json.dumps(r).encode() for r in records]
    produced_after_first_ack = []

    def produce():
        for start in range(0, 400, 100):
            produced_after_first_ack.append(server.stored_count > 0)
            yield encoded[start:start + 100]
            time.sleep(0.05)

    with client_for(server) as client:
        stats = upload(batches_from_stream(produce()), client, tmp_path, options=UploadOptions(retry=FAST))
    assert stats.sent == 400
    assert any(produced_after_first_ack), "no request went out before the producer finished"
    assert_exactly_once(server, records, (), tmp_path)


# -- failures ----------------------------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured(tmp_path, server):
    records = make_records(50)
    write_batches(tmp_path, records, per_file=50)
    server.inject(Fault.http(429, retry_after=0.4))
    stats = run_upload(server, tmp_path, concurrency=1)
    attempts = [e["at"] for e in server.log if e["route"] == UPLOAD]
    assert server.statuses() == [429, 200]
    assert attempts[1] - attempts[0] >= 0.4
    assert stats.retried == 1 and stats.sent == 50


def test_500_503_drops_and_timeouts_are_retried_and_nothing_is_lost_or_doubled(tmp_path, server):
    records = make_records(3000, invalid=(17, 1500, 2999))
    write_batches(tmp_path, records, per_file=700)
    server.inject(Fault.http(500), Fault.http(503), Fault.drop(), Fault.hang(4.0), Fault.slow(0.3),
                  Fault.http(502), Fault.http(408), Fault.http(429, retry_after=0))
    with client_for(server, timeout_s=2.5) as client:  # the hang outlasts it; normal answers well within it
        stats = upload(batches_from_dir(tmp_path), client, tmp_path,
                       options=UploadOptions(concurrency=3, max_records=250, retry=FAST))
    assert stats.retried >= 7
    assert (stats.sent, stats.rejected) == (2997, 3)
    assert_exactly_once(server, records, (17, 1500, 2999), tmp_path)


def test_random_faults_everywhere(tmp_path, server):
    records = make_records(4000, invalid=(5, 6, 7, 3333))
    write_batches(tmp_path, records, per_file=1000)
    server.chaos(0.3, [Fault.http(500), Fault.http(503), Fault.drop(), Fault.http(429, retry_after=0.01),
                       Fault.slow(0.05)], seed=7)
    stats = run_upload(server, tmp_path, max_records=200, retry=RetryPolicy(attempts=20, base_s=0.005, max_s=0.02))
    assert stats.retried > 0
    assert_exactly_once(server, records, (5, 6, 7, 3333), tmp_path)


def test_422_isolates_bad_records_and_dead_letters_them_with_the_servers_messages(tmp_path, server):
    records = make_records(1000, invalid=(0, 499, 500, 999))
    write_batches(tmp_path, records, per_file=1000)
    stats = run_upload(server, tmp_path)
    assert (stats.sent, stats.rejected) == (996, 4)
    assert_exactly_once(server, records, (0, 499, 500, 999), tmp_path)
    letters = {d["index"]: d for d in dead_letters(tmp_path)}
    assert set(letters) == {0, 499, 500, 999}
    assert letters[0]["status"] == 422 and letters[0]["source"] == "interactions-00001.ndjson"
    assert letters[0]["errors"] == ["data.0.timestamp is invalid. The attribute should match the 'date-time' "
                                    "format."]
    assert "None of the records were inserted" in letters[0]["message"]
    assert "colour" in letters[499]["errors"][0]


def test_422_without_indices_is_bisected(tmp_path, server, monkeypatch):
    records = make_records(64, invalid=(9, 40))
    write_batches(tmp_path, records, per_file=64)
    original = server.check_records
    monkeypatch.setattr(server, "check_records", lambda data: ["a record is invalid."] if original(data) else [])
    stats = run_upload(server, tmp_path)
    assert stats.rejected == 2
    assert_exactly_once(server, records, (9, 40), tmp_path)
    assert dead_letters(tmp_path)[0]["errors"] == ["a record is invalid."]


def test_wrong_key_stops_at_once_and_says_the_key_was_refused(tmp_path, server):
    write_batches(tmp_path, make_records(5000), per_file=500)
    with ApiClient("sk-wrong-key-123456", server.url) as client:
        with pytest.raises(UploadFailed) as caught:
            upload(batches_from_dir(tmp_path), client, tmp_path, options=UploadOptions(concurrency=2, retry=FAST))
    message = str(caught.value)
    assert "refused the key" in message and "401" in message
    assert "sk-wrong-key-123456" not in message
    assert server.statuses() and set(server.statuses()) == {401}
    assert len(server.statuses()) <= 4, "it kept sending after the key was refused"
    assert server.records == []


def test_giving_up_after_bounded_attempts_then_resume_finishes(tmp_path, server):
    records = make_records(900)
    write_batches(tmp_path, records, per_file=300)
    server.inject(*[Fault.http(503)] * 3)
    with pytest.raises(UploadFailed, match="gave up after 3 attempts.*--resume"):
        run_upload(server, tmp_path, concurrency=1, retry=RetryPolicy(attempts=3, base_s=0.01))
    assert server.records == []
    stats = run_upload(server, tmp_path, resume=True)
    assert stats.sent == 900
    assert_exactly_once(server, records, (), tmp_path)


# -- the journal ---------------------------------------------------------------------------------------------

def test_resume_sends_only_what_was_not_acknowledged(tmp_path, server):
    records = make_records(2000, invalid=(10,))
    write_batches(tmp_path, records, per_file=500)
    first = run_upload(server, tmp_path)
    assert first.sent == 1999
    again = run_upload(server, tmp_path, resume=True)
    assert (again.sent, again.skipped, again.requests) == (0, 2000, 0)
    # Lose the journal's last two lines (as if those answers never came back): exactly those ranges go again.
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_text().splitlines(keepends=True)
    dropped = [json.loads(line) for line in lines[-2:]]
    journal.write_text("".join(lines[:-2]) + '{"batch": "torn')  # plus a line torn by kill -9
    server.records.clear()
    third = run_upload(server, tmp_path, resume=True)
    assert third.sent + third.rejected == sum(d["end"] - d["start"] for d in dropped)
    assert len(dead_letters(tmp_path)) == 1, "the dead-letter file got a duplicate"


def test_an_existing_journal_needs_resume(tmp_path, server):
    write_batches(tmp_path, make_records(10), per_file=10)
    run_upload(server, tmp_path)
    with pytest.raises(LogmapError, match="--resume"):
        run_upload(server, tmp_path)


def test_a_changed_batch_file_is_a_new_batch(tmp_path, server):
    records = make_records(20)
    paths = write_batches(tmp_path, records, per_file=10)
    run_upload(server, tmp_path)
    write_batches(tmp_path, make_records(20)[:10] + [dict(r, user_id="new-" + r["user_id"]) for r in records[10:]],
                  per_file=10)
    assert paths[1].exists()
    stats = run_upload(server, tmp_path, resume=True)
    assert (stats.sent, stats.skipped) == (10, 10)


def test_a_lost_response_is_the_documented_at_least_once_window(tmp_path, server):
    """The server stores a request, then the connection drops before the answer: the client cannot know, sends
    again, and that one request's records are stored twice. Nothing else is."""
    records = make_records(300)
    write_batches(tmp_path, records, per_file=300)
    server.inject(Fault.http(503), Fault.drop_after_store())
    stats = run_upload(server, tmp_path, concurrency=1, max_records=100)
    assert stats.sent == 300
    twice = {k for k, n in Counter(server.stored_keys()).items() if n == 2}
    assert twice == {r["user_id"] for r in records[:100]}
    assert len(server.records) == 400


# -- the command -----------------------------------------------------------------------------------------------

def test_cli_upload_prints_a_summary_and_never_the_key(tmp_path, server):
    records = make_records(1500, invalid=(3,))
    write_batches(tmp_path, records, per_file=500)
    server.inject(Fault.http(503), Fault.http(429, retry_after=0.05))
    result = CliRunner().invoke(main, ["upload", "--from", str(tmp_path), "--base-url", server.url,
                                       "--key-in", "query", "--backoff", "0.01", "--concurrency", "2"],
                                env={"MISO_API_KEY": KEY})
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 0, output
    assert "sent             1,499 records" in output and "rejected             1" in output
    assert "retried              2" in output and "records/s" in output
    assert KEY not in output
    assert {e["key_in"] for e in server.log} == {"query"}
    assert_exactly_once(server, records, (3,), tmp_path)
    for name in (JOURNAL_NAME, DEAD_LETTER_NAME):
        assert KEY not in (tmp_path / name).read_text()


def test_cli_refused_key_is_one_line_and_exit_2(tmp_path, server):
    write_batches(tmp_path, make_records(10), per_file=10)
    result = CliRunner().invoke(main, ["upload", "--from", str(tmp_path), "--base-url", server.url,
                                       "--api-key", "sk-not-the-right-one"])
    assert result.exit_code == 2
    assert "refused the key" in result.output and "sk-not-the-right-one" not in result.output


def test_cli_without_a_key_says_how_to_give_one(tmp_path, server):
    write_batches(tmp_path, make_records(10), per_file=10)
    result = CliRunner().invoke(main, ["upload", "--from", str(tmp_path), "--base-url", server.url],
                                env={"MISO_API_KEY": ""})
    assert result.exit_code == 2 and "MISO_API_KEY" in result.output


def test_cli_upload_straight_from_inputs_and_a_mapping(tmp_path, server, monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("LOGMAP_KEY", "mapping-hmac-secret")
    monkeypatch.setenv("MISO_API_KEY", KEY)
    result = CliRunner().invoke(main, ["upload", str(repo / "fixtures/storefront/access.log"), "-m",
                                       str(repo / "mappings/storefront-combined.yaml"), "-o", str(tmp_path / "st"),
                                       "--base-url", server.url, "--max-records", "50"])
    assert result.exit_code == 0, result.output
    expected = [json.loads(line) for line in (repo / "fixtures/storefront/expected.ndjson").read_text().splitlines()
                if line.strip()]
    assert len(server.records) == len(expected)
    assert all(e["records"] <= 50 for e in server.log)
