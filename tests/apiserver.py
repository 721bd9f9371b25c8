"""A real HTTP server on 127.0.0.1 that behaves like the Miso endpoints logmap uses, with fault injection.

Why a server and not a mocked transport: retries, timeouts, dropped connections, keep-alive pools and
``Retry-After`` only mean something over a socket. The server validates upload bodies with the vendored JSON
Schema (one compiled validator per interaction type, chosen by the record's ``type``; see
:func:`standard_validator`) and answers the way the API documents: 422 with ``{"errors": true, "message": "None
of the records were inserted …", "data": ["data.3.timestamp is invalid. …"]}``, 401 ``{"message": "invalid api
key."}``.

Faults are queued per route and consumed one per request (:meth:`FakeMiso.inject`), or drawn at random
(:meth:`FakeMiso.chaos`). Only the ``drop_after_store`` fault stores records without acknowledging them: it is
the one case no client can make exactly-once, and the tests use it to show that window, nothing else.

Run it by hand for a benchmark or a demo::

    python tests/apiserver.py --port 8080 --key secret
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker

from logmap.records.types import TYPE_SCHEMAS, interaction_schema

UPLOAD, DELETE_INTERACTIONS, DELETE_PRODUCTS, STATUS = "upload", "delete_interactions", "delete_products", "status"
REJECTED = ("None of the records were inserted because at least one of them contained schema errors. "
            "Please see the `data` field for details.")


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour. ``kind``: ``status`` (answer ``status``, store nothing), ``drop`` (close the
    connection without an answer, store nothing), ``hang`` (wait ``seconds`` then drop: a client timeout),
    ``slow`` (wait ``seconds`` then behave normally), ``drop_after_store`` (store, then drop: a lost answer)."""

    kind: str
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def http(cls, status: int, retry_after: float | str | None = None) -> Fault:
        return cls("status", status=status, retry_after=None if retry_after is None else str(retry_after))

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", seconds=seconds)

    @classmethod
    def drop_after_store(cls) -> Fault:
        return cls("drop_after_store")


def standard_validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A standard Draft 2020-12 validator for ``schema``, the tests' judge of "valid against the API schema".

    jsonschema_rs checks the structure (a few hundred times faster than python-jsonschema, whose validation of
    every record cost the suite ~15 CPU s); the formats are python-jsonschema's own ``FormatChecker`` functions,
    because jsonschema_rs's date-time and uuid differ at the edges (it accepts year 0000; it refuses the odd uuid
    spellings that python-jsonschema accepts). The two then agree on every record of
    tests/test_records_agreement.py's generated set, which stays judged by python-jsonschema itself.
    """
    checker = FormatChecker()
    formats = {name: functools.partial(checker.conforms, format=name) for name in checker.checkers}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats=formats)


@functools.cache
def request_validator() -> jsonschema_rs.Validator:
    """The standard validator of a whole upload body, ``{"data": [records]}``, built once per process."""
    return standard_validator(interaction_schema())


def schema_errors(records: list[Any]) -> list[str]:
    """The API schema's errors for ``records`` sent as one upload body (empty when every record is valid)."""
    return [error.message for error in request_validator().iter_errors({"data": records})]


@functools.cache
def _validators() -> dict[str, tuple[jsonschema_rs.Validator, Draft202012Validator]]:
    """Per interaction type: the standard validator, which decides, and python-jsonschema's, whose errors word the
    API's messages for the records found invalid. Built once per process: every FakeMiso shares them."""
    schema = interaction_schema()
    checker = FormatChecker()
    validators = {}
    for name, definition in TYPE_SCHEMAS.items():
        one_type = {"$defs": schema["$defs"], **definition}
        validators[name] = (standard_validator(one_type), Draft202012Validator(one_type, format_checker=checker))
    return validators


_TYPE_NAMES = {"string": "string", "number": "number", "integer": "integer", "array": "array",
               "object": "object", "boolean": "boolean", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def api_message(index: int, error: Any) -> str:
    """A jsonschema error in the API's words: ``data.0.timestamp is invalid. The attribute should match …``."""
    where = ".".join(["data", str(index), *(str(p) for p in error.absolute_path)])
    if error.validator == "format":
        return f"{where} is invalid. The attribute should match the '{error.validator_value}' format."
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        wanted = ", ".join(f"'{_TYPE_NAMES.get(t, t)}'" for t in expected)
        return (f"{where} is invalid. The attribute was expected to be of type '{wanted}' but type "
                f"'{_json_type(error.instance)}' was given.")
    if error.validator == "maxLength":
        return f"{where} is invalid. The attribute should be at most {error.validator_value} characters long."
    return f"{where} is invalid. {error.message}"


class FakeMiso:
    """The fake API. ``records`` holds every stored record in arrival order (unless ``keep`` is false: then only
    ``record_total`` counts them, for benchmarks); ``log`` has one entry per request."""

    def __init__(self, api_key: str = "test-key", *, validate: bool = True, max_records: int = 10_000,
                 max_bytes: int = 64 * 1024 * 1024, task_polls: int = 2, keep: bool = True) -> None:
        self.api_key = api_key
        self.keep = keep
        self.record_total = 0
        self.validate = validate
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.task_polls = task_polls
        self.records: list[dict[str, Any]] = []
        self.stored_count = 0
        self.log: list[dict[str, Any]] = []
        self.deleted_users: list[str] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._faults: dict[str, deque[Fault]] = {}
        self._chaos: tuple[float, random.Random, list[Fault]] | None = None
        self._hold_after: int | None = None
        self._release = threading.Event()
        self.holding = threading.Event()
        self._validators = _validators() if validate else {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeMiso:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = _QuietServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-miso", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeMiso:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: Fault, route: str = UPLOAD) -> None:
        """Queue faults for the next requests to ``route``, one per request, in order."""
        with self.lock:
            self._faults.setdefault(route, deque()).extend(faults)

    def chaos(self, rate: float, faults: list[Fault], seed: int = 0) -> None:
        """Give each upload request probability ``rate`` of one of ``faults`` (none store anything)."""
        self._chaos = (rate, random.Random(seed), faults)

    def hold_after(self, stored_requests: int) -> None:
        """After this many stored uploads, park later uploads until :meth:`release`; they then store nothing."""
        self._hold_after = stored_requests

    def release(self) -> None:
        self._hold_after = None
        self._release.set()

    # -- helpers for assertions ------------------------------------------------------------------------------

    def stored_keys(self, key: str = "user_id") -> list[Any]:
        with self.lock:
            return [r.get(key) for r in self.records]

    def statuses(self, route: str = UPLOAD) -> list[int]:
        with self.lock:
            return [e["status"] for e in self.log if e["route"] == route]

    # -- behaviour -------------------------------------------------------------------------------------------

    def next_fault(self, route: str) -> Fault | None:
        with self.lock:
            queue = self._faults.get(route)
            if queue:
                return queue.popleft()
            if route == UPLOAD and self._chaos is not None:
                rate, rng, faults = self._chaos
                if rng.random() < rate:
                    return rng.choice(faults)
        return None

    def check_records(self, data: Any) -> list[str]:
        """The API's messages for every schema error in ``data`` (empty when all records are valid)."""
        if not isinstance(data, list):
            return ["data is invalid. The attribute was expected to be of type 'array'."]
        errors: list[str] = []
        for index, record in enumerate(data):
            kind = record.get("type") if isinstance(record, dict) else None
            validator = self._validators.get(kind) if isinstance(kind, str) else None
            if not isinstance(record, dict):
                errors.append(f"data.{index} is invalid. The attribute was expected to be of type 'object' but "
                              f"type '{_json_type(record)}' was given.")
            elif not self.validate:
                continue
            elif validator is None:
                errors.append(f"data.{index}.type is invalid. The attribute should be one of the interaction "
                              f"types, not {kind!r}.")
            elif not validator[0].is_valid(record):
                found = sorted(validator[1].iter_errors(record), key=lambda e: list(e.absolute_path))
                errors.extend(api_message(index, error) for error in found)
                if not found:  # the two validators disagree: still a rejection, never a record stored
                    errors.append(f"data.{index} is invalid (jsonschema_rs; python-jsonschema found no error).")
        return errors


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) is part of the tests, not an error worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    api: FakeMiso
    protocol_version = "HTTP/1.1"
    server_version = "FakeMiso/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `api.log` instead
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, route: str, status: int, body: dict[str, Any], *, records: int = 0, size: int = 0,
              headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        # Log before answering: a client that has its answer must find the request in the log (no race).
        self._log(route, status, records=records, size=size)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _log(self, route: str, status: int, *, records: int = 0, size: int = 0) -> None:
        with self.api.lock:
            self.api.log.append({"route": route, "status": status, "records": records, "bytes": size,
                                 "key_in": self._key_in, "at": time.monotonic()})

    def _drop(self, route: str) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._log(route, 0)

    def _authorized(self) -> bool:
        header = self.headers.get("X-API-KEY")
        query = parse_qs(urlsplit(self.path).query).get("api_key", [None])[0]
        self._key_in = "header" if header else "query" if query else None
        return (header or query) == self.api.api_key

    def _route(self, method: str) -> str | None:
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/interactions":
            return {"POST": UPLOAD, "DELETE": DELETE_INTERACTIONS}.get(method)
        if path == "/v1/products/_delete" and method == "POST":
            return DELETE_PRODUCTS
        if path.startswith("/v1/products/_status/") and method == "GET":
            return STATUS
        return None

    def _handle(self, method: str) -> None:
        self._key_in = None
        body = self._read_body()
        route = self._route(method)
        if route is None:
            self._send("unknown", 404, {"detail": "Not Found"})
            return
        if not self._authorized():
            self._send(route, 401, {"message": "invalid api key."})
            return
        fault = self.api.next_fault(route)
        if fault is not None:
            if fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
                message = {429: "Too many requests."}.get(fault.status,
                                                          "Something went wrong. Please contact miso product team.")
                self._send(route, fault.status, {"message": message}, headers=headers)
                return
            if fault.kind == "drop":
                self._drop(route)
                return
            if fault.kind == "hang":
                time.sleep(fault.seconds)
                self._drop(route)
                return
            if fault.kind == "slow":
                time.sleep(fault.seconds)
        getattr(self, f"_do_{route}")(body, drop_after=fault is not None and fault.kind == "drop_after_store")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_GET(self) -> None:
        self._handle("GET")

    # -- endpoints --------------------------------------------------------------------------------------------

    def _parse(self, route: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as error:
            self._send(route, 422, {"detail": [{"loc": ["body", 0], "msg": f"JSON decode error: {error}",
                                                "type": "value_error.jsondecode"}]})
            return None

    def _do_upload(self, body: bytes, *, drop_after: bool) -> None:
        api = self.api
        if api._hold_after is not None:
            with api.lock:
                parked = api.stored_count >= api._hold_after
            if parked:
                api.holding.set()
                api._release.wait()
                self._send(UPLOAD, 503, {"message": "Service unavailable."})
                return
        if len(body) > api.max_bytes:
            self._send(UPLOAD, 413, {"message": "Request entity too large."}, size=len(body))
            return
        parsed = self._parse(UPLOAD, body)
        if parsed is None:
            return
        data = parsed.get("data") if isinstance(parsed, dict) else None
        if isinstance(data, list) and len(data) > api.max_records:
            self._send(UPLOAD, 413, {"message": f"Too many records: at most {api.max_records} per request."},
                       records=len(data), size=len(body))
            return
        errors = api.check_records(data)
        if errors:
            self._send(UPLOAD, 422, {"errors": True, "message": REJECTED, "data": errors},
                       records=len(data) if isinstance(data, list) else 0, size=len(body))
            return
        with api.lock:
            if api.keep:
                api.records.extend(data)
            api.record_total += len(data)
            api.stored_count += 1
        if drop_after:
            self._drop(UPLOAD)
            return
        self._send(UPLOAD, 200, {"message": "success"}, records=len(data), size=len(body))

    def _do_delete_interactions(self, body: bytes, *, drop_after: bool) -> None:
        parsed = self._parse(DELETE_INTERACTIONS, body)
        if parsed is None:
            return
        users = parsed.get("user_ids") if isinstance(parsed, dict) else None
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            self._send(DELETE_INTERACTIONS, 422, {"detail": [{"loc": ["body", "user_ids"],
                                                              "msg": "value is not a valid list of strings",
                                                              "type": "type_error.list"}]})
            return
        gone = set(users)
        with self.api.lock:
            self.api.records = [r for r in self.api.records if r.get("user_id") not in gone]
            self.api.deleted_users.extend(users)
        self._send(DELETE_INTERACTIONS, 200, {"message": "success"}, records=len(users))

    def _do_delete_products(self, body: bytes, *, drop_after: bool) -> None:
        parsed = self._parse(DELETE_PRODUCTS, body)
        if parsed is None:
            return
        data = parsed.get("data") if isinstance(parsed, dict) else None
        ids = data.get("product_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            self._send(DELETE_PRODUCTS, 422, {"detail": [{"loc": ["body", "data", "product_ids"],
                                                          "msg": "field required", "type": "value_error.missing"}]})
            return
        task_id = str(uuid.uuid4())
        with self.api.lock:
            self.api.tasks[task_id] = {"product_ids": ids, "polls_left": self.api.task_polls}
        self._send(DELETE_PRODUCTS, 200, {"message": "deleted", "data": {"task_id": task_id}}, records=len(ids))

    def _do_status(self, body: bytes, *, drop_after: bool) -> None:
        task_id = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
        with self.api.lock:
            task = self.api.tasks.get(task_id)
            if task is not None:
                task["polls_left"] -= 1
                state = "done" if task["polls_left"] < 0 else "running"
        if task is None:
            self._send(STATUS, 404, {"message": "task not found."})
            return
        self._send(STATUS, 200, {"message": "success", "data": {"task_id": task_id, "status": state,
                                                                "total": len(task["product_ids"])}})


# -- test data ---------------------------------------------------------------------------------------------------

def make_records(count: int, *, invalid: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """``count`` records with unique ``user_id`` ``u000000``…, valid except at the ``invalid`` positions."""
    kinds = [
        lambda i: {"type": "product_detail_page_view", "product_ids": [f"p{i % 97}"], "duration": 12.5},
        lambda i: {"type": "search", "search": {"keywords": f"red shoe {i % 13}"}},
        lambda i: {"type": "add_to_cart", "product_ids": [f"p{i % 89}"], "quantities": [1]},
        lambda i: {"type": "home_page_view", "context": {"truncated_ip": "10.1.2.0",
                                                         "page": {"url": "https://shop.example.com/"}}},
    ]
    breakers = [
        lambda r: r.update(timestamp="yesterday afternoon"),
        lambda r: r.update(colour="red"),
        lambda r: r.update(type="product_detail_page_view", product_ids="p1"),
    ]
    records = []
    for i in range(count):
        record = {"user_id": f"u{i:06d}", "timestamp": f"2024-03-01T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                  **kinds[i % len(kinds)](i)}
        if i in invalid:
            breakers[invalid.index(i) % len(breakers)](record)
        records.append(record)
    return records


def write_batches(directory: Any, records: list[dict[str, Any]], per_file: int = 1000,
                  fmt: str = "ndjson") -> list[Any]:
    """Batch files as `logmap convert` writes them (plus report.json and rejects.ndjson, to be ignored)."""
    from pathlib import Path

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, start in enumerate(range(0, len(records), per_file), start=1):
        chunk = [json.dumps(r, separators=(",", ":")) for r in records[start:start + per_file]]
        path = folder / f"interactions-{number:05d}.{fmt}"
        if fmt == "ndjson":
            path.write_text("\n".join(chunk) + "\n", encoding="utf-8")
        else:
            path.write_text('{"data":[' + ",".join(chunk) + "]}\n", encoding="utf-8")
        paths.append(path)
    (folder / "report.json").write_text("{}", encoding="utf-8")
    (folder / "rejects.ndjson").write_text('{"file":"x","line":1,"reason":"malformed"}\n', encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--no-validate", action="store_true", help="store records without schema validation")
    parser.add_argument("--count-only", action="store_true", help="count stored records instead of keeping them")
    args = parser.parse_args()
    server = FakeMiso(args.key, validate=not args.no_validate, keep=not args.count_only).start(args.port)
    print(f"fake Miso API on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
