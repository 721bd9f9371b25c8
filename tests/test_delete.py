"""`delete-interactions` and `delete-products` against the local server: the right requests, retried, and
`--wait` polling the product task until it is done."""

from __future__ import annotations

import json

import pytest
from apiserver import DELETE_INTERACTIONS, DELETE_PRODUCTS, STATUS, FakeMiso, Fault, make_records
from click.testing import CliRunner

from logmap.api.client import ApiClient, RetryPolicy
from logmap.api.delete import TaskTimeout, delete_interactions, task_state, wait_for_tasks
from logmap.cli import main

KEY = "sk-LOGMAP-DELETE-55aa11"


@pytest.fixture
def server():
    with FakeMiso(KEY, task_polls=2) as api:
        yield api


def invoke(*args: str):
    return CliRunner().invoke(main, [*args, "--backoff", "0.01"], env={"MISO_API_KEY": KEY})


def test_delete_interactions_removes_those_users_only(server):
    server.records.extend(make_records(6))
    server.inject(Fault.http(503), route=DELETE_INTERACTIONS)
    result = invoke("delete-interactions", "--user-ids", "u000001, u000004", "--base-url", server.url)
    assert result.exit_code == 0, result.output
    assert "2 user(s) in 1 request(s) (1 retried)" in result.output
    assert server.stored_keys() == ["u000000", "u000002", "u000003", "u000005"]
    assert KEY not in result.output


def test_delete_interactions_from_a_file_in_chunks(tmp_path, server):
    ids = tmp_path / "forget.txt"
    ids.write_text("# users who asked\nu1\nu2\n\nu3\nu2\n")
    with ApiClient(KEY, server.url) as client:
        result = delete_interactions(client, ["u1", "u2", "u3", "u2"], chunk_size=2)
    assert (result.ids, result.requests) == (3, 2)
    cli = invoke("delete-interactions", "--from", str(ids), "--base-url", server.url)
    assert cli.exit_code == 0, cli.output
    assert server.deleted_users == ["u1", "u2", "u3", "u1", "u2", "u3"]


def test_delete_needs_exactly_one_source_of_ids(server):
    result = invoke("delete-interactions", "--base-url", server.url)
    assert result.exit_code == 2 and "--user-ids" in result.output


def test_delete_products_waits_for_the_task(server):
    server.inject(Fault.drop(), route=DELETE_PRODUCTS)
    server.inject(Fault.http(500), route=STATUS)
    result = invoke("delete-products", "--product-ids", "p1,p2,p3", "--wait", "--poll-interval", "0.01",
                    "--base-url", server.url, "--key-in", "query")
    assert result.exit_code == 0, result.output
    (task_id,) = server.tasks
    assert f"task {task_id}" in result.output and "all 1 task(s) done" in result.output
    assert server.tasks[task_id]["product_ids"] == ["p1", "p2", "p3"]
    assert server.statuses(STATUS).count(200) == 3  # running, running, done
    assert KEY not in result.output


def test_delete_products_wait_times_out_with_the_task_ids(server):
    server.task_polls = 10**6
    with ApiClient(KEY, server.url) as client:
        task_id = client.delete_products(["p9"])
        with pytest.raises(TaskTimeout, match=task_id):
            wait_for_tasks(client, [task_id], timeout_s=0.2, interval_s=0.05, retry=RetryPolicy(base_s=0.01))


def test_task_states_in_the_shapes_an_api_might_use():
    assert task_state({"data": {"status": "done"}}) == "done"
    assert task_state({"status": "SUCCESS"}) == "done"
    assert task_state({"data": {"finished": True}}) == "done"
    assert task_state({"data": {"state": "failed"}}) == "failed"
    assert task_state({"data": {"status": "running"}}) == "pending"
    assert task_state({"message": "success"}) == "pending"
    assert json.dumps(task_state({})) == '"pending"'
