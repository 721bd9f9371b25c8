"""The API client: the key never shows (repr, errors, httpx's logs), errors are classified, Retry-After is read,
and the official `miso-sdk` client accepts what logmap writes (the same server, the same batch)."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from apiserver import FakeMiso, Fault, make_records

from logmap.api.client import (
    ApiClient,
    ApiError,
    ApiKey,
    AuthError,
    RejectedError,
    RetryPolicy,
    TransientError,
    call_with_retries,
    error_indices,
    parse_retry_after,
)

KEY = "sk-LOGMAP-API-7c1d/+=&x"  # characters that URL-encode differently, to test every spelling


@pytest.fixture
def server():
    with FakeMiso(KEY) as api:
        yield api


def test_the_key_is_masked_everywhere_it_could_be_printed():
    key = ApiKey(KEY)
    client = ApiClient(key, "http://127.0.0.1:9")
    try:
        for text in (repr(key), str(key), f"{key}", f"{key!r}", repr(client), "%s" % key):  # noqa: UP031 - %-formatting is a spelling to test
            assert KEY not in text and "***" in text
        assert key.reveal() == KEY
        assert KEY not in key.redact(f"GET /x?api_key={KEY}&y=1 and sk-LOGMAP-API-7c1d%2F%2B%3D%26x")
    finally:
        client.close()


def test_an_empty_key_is_a_user_error():
    with pytest.raises(Exception, match="MISO_API_KEY"):
        ApiKey("  ")


def test_retry_after_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_backoff_grows_with_jitter_and_retry_after_wins():
    policy = RetryPolicy(base_s=1.0, max_s=8.0)
    waits = [policy.delay(n) for n in range(1, 7)]
    assert 0.5 <= waits[0] <= 1.0 and 4.0 <= waits[5] <= 8.0
    assert 7.0 <= policy.delay(1, retry_after=7.0) <= 8.0
    assert policy.delay(1, retry_after=10_000) <= policy.max_retry_after_s + 1


def test_call_with_retries_is_bounded():
    calls = []

    def failing():
        calls.append(1)
        raise TransientError("HTTP 503")

    with pytest.raises(ApiError, match="gave up after 4 attempts"):
        call_with_retries(failing, RetryPolicy(attempts=4, base_s=0.001))
    assert len(calls) == 4


def test_errors_are_classified(server):
    with ApiClient(KEY, server.url) as client:
        server.inject(Fault.http(429, retry_after=2))
        with pytest.raises(TransientError) as caught:
            client.upload_interactions(b'{"data":[]}')
        assert caught.value.status == 429 and caught.value.retry_after == 2.0
        bad = json.dumps({"data": make_records(3, invalid=(1,))}).encode()
        with pytest.raises(RejectedError) as rejected:
            client.upload_interactions(bad)
        assert error_indices(rejected.value.errors) == {1}
        assert client.upload_interactions(b'{"data":[]}') == {"message": "success"}
    with ApiClient("sk-other", server.url) as wrong:
        with pytest.raises(AuthError, match=r"refused the key \(HTTP 401: invalid api key.\)"):
            wrong.upload_interactions(b'{"data":[]}')


@pytest.mark.parametrize("key_in", ["header", "query"])
def test_the_key_is_not_in_httpx_logs_or_connection_errors(key_in, server, caplog):
    caplog.set_level(logging.DEBUG)
    with ApiClient(KEY, server.url, key_in=key_in) as client:
        client.upload_interactions(b'{"data":[]}')
    assert "HTTP Request: POST" in caplog.text
    assert {e["key_in"] for e in server.log} == {key_in}
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ApiClient(KEY, f"http://127.0.0.1:{port}", key_in=key_in, timeout_s=1) as client:
        with pytest.raises(TransientError) as caught:
            client.upload_interactions(b'{"data":[]}')
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    for text in (caplog.text, str(caught.value), repr(caught.value)):
        assert KEY not in text and "7c1d%2F" not in text


def test_the_official_sdk_uploads_a_batch_logmap_wrote(tmp_path, server, monkeypatch):
    """Witness: `miso-sdk`'s ApiClient, pointed at the same server, sends a batch `logmap convert` wrote and the
    server accepts it — so logmap's files and the test server agree with the official client."""
    sdk = pytest.importorskip("miso.sdk")
    from support import convert

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("LOGMAP_KEY", "mapping-hmac-secret")
    result = convert([str(repo / "fixtures/storefront/access.log")], repo / "mappings/storefront-combined.yaml",
                     tmp_path / "out")
    batch = [json.loads(line) for line in result.files[0].read_text().splitlines()]
    assert batch
    answer = sdk.ApiClient(api_key=KEY, host=server.url).interaction.upload(data=batch)
    assert answer == {"message": "success"}
    assert server.records == batch
    assert server.log[-1]["key_in"] == "query"  # the SDK sends the key as a query parameter
    refused = sdk.ApiClient(api_key=KEY, host=server.url).interaction.upload(data=[dict(batch[0], colour="red")])
    assert refused["errors"] is True and refused["data"][0].startswith("data.0 is invalid.")
