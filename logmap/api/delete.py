"""Deleting from the API: every interaction of some users (right to be forgotten), and products by id.

Why: a deletion request must either happen or fail loudly. Both calls are idempotent (deleting twice deletes
nothing more), so they are retried like uploads. Product deletion is asynchronous in the API: it answers with a
``task_id``; :func:`wait_for_tasks` polls ``GET /v1/products/_status/{task_id}`` until each task reports a final
state or a deadline passes. The API does not document the status body, so :func:`task_state` accepts the usual
spellings (``status``/``state`` of ``done``, ``finished``, ``completed``, ``success``…, or ``finished: true``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from logmap.api.client import ApiClient, RetryPolicy, call_with_retries
from logmap.errors import InputError, LogmapError

#: Ids per request. The API documents no limit; this keeps each request small and each retry cheap.
DEFAULT_CHUNK = 1_000
TaskState = Literal["done", "failed", "pending"]
_DONE = {"done", "finished", "complete", "completed", "success", "succeeded", "deleted"}
_FAILED = {"failed", "failure", "error", "errored", "cancelled", "canceled"}


def read_ids(path: str | Path) -> list[str]:
    """Ids from a file, one per line; blank lines and lines starting with ``#`` are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read ids from {path}: {error.strerror or error}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def split_ids(text: str) -> list[str]:
    """``a,b, c`` → ``['a', 'b', 'c']``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _chunks(ids: list[str], size: int) -> Iterable[list[str]]:
    if size < 1:
        raise LogmapError("ids per request must be at least 1")
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


@dataclass
class DeleteResult:
    """What a delete did: how many ids, in how many requests, and (products) the tasks the API started."""

    ids: int = 0
    requests: int = 0
    retried: int = 0
    task_ids: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)


def delete_interactions(client: ApiClient, user_ids: Iterable[str], *, chunk_size: int = DEFAULT_CHUNK,
                        retry: RetryPolicy | None = None) -> DeleteResult:
    """Delete every interaction of ``user_ids`` (``DELETE /v1/interactions``), ``chunk_size`` ids per request."""
    ids = _unique(user_ids)
    if not ids:
        raise LogmapError("no user ids to delete")
    result = DeleteResult(ids=len(ids))
    for chunk in _chunks(ids, chunk_size):
        call_with_retries(partial(client.delete_interactions, chunk), retry or RetryPolicy(),
                          on_retry=lambda *_: _bump(result))
        result.requests += 1
    return result


def delete_products(client: ApiClient, product_ids: Iterable[str], *, chunk_size: int = DEFAULT_CHUNK,
                    retry: RetryPolicy | None = None) -> DeleteResult:
    """Ask the API to delete ``product_ids`` (``POST /v1/products/_delete``); one task id per request."""
    ids = _unique(product_ids)
    if not ids:
        raise LogmapError("no product ids to delete")
    result = DeleteResult(ids=len(ids))
    for chunk in _chunks(ids, chunk_size):
        task_id = call_with_retries(partial(client.delete_products, chunk), retry or RetryPolicy(),
                                    on_retry=lambda *_: _bump(result))
        result.requests += 1
        result.task_ids.append(task_id)
    return result


def _bump(result: DeleteResult) -> None:
    result.retried += 1


def task_state(status: dict[str, Any]) -> TaskState:
    """``done``, ``failed`` or ``pending`` from a ``_status`` body (the API leaves its shape undocumented)."""
    for body in (status.get("data"), status):
        if not isinstance(body, dict):
            continue
        if body.get("finished") is True or body.get("done") is True:
            return "done"
        for key in ("status", "state"):
            value = body.get(key)
            if isinstance(value, str):
                value = value.strip().lower()
                if value in _DONE:
                    return "done"
                if value in _FAILED:
                    return "failed"
                return "pending"
    return "pending"


class TaskTimeout(LogmapError):
    """Some product-delete tasks were still running when the wait ended."""


def wait_for_tasks(client: ApiClient, task_ids: list[str], *, timeout_s: float = 600.0, interval_s: float = 2.0,
                   retry: RetryPolicy | None = None, stop: threading.Event | None = None,
                   on_poll: Callable[[str, TaskState], None] | None = None) -> dict[str, dict[str, Any]]:
    """Poll each task until it is done or failed; return the last status body per task.

    Raises :class:`TaskTimeout` naming the unfinished tasks when ``timeout_s`` passes, and :class:`LogmapError`
    when a task reports failure.
    """
    deadline = time.monotonic() + timeout_s
    pending, final = list(task_ids), {}
    while pending:
        for task_id in list(pending):
            status = call_with_retries(partial(client.product_task, task_id), retry or RetryPolicy(), stop=stop)
            state = task_state(status)
            if on_poll is not None:
                on_poll(task_id, state)
            final[task_id] = status
            if state != "pending":
                pending.remove(task_id)
        failed = [t for t in task_ids if t in final and task_state(final[t]) == "failed"]
        if failed:
            raise LogmapError(f"product delete task(s) failed: {', '.join(failed)}")
        if not pending:
            break
        if time.monotonic() + interval_s > deadline:
            raise TaskTimeout(f"{len(pending)} product delete task(s) still running after {timeout_s:g}s: "
                              f"{', '.join(pending)}")
        if stop is not None:
            if stop.wait(interval_s):
                break
        else:
            time.sleep(interval_s)
    return final
