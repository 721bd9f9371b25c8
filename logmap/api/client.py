"""The Miso API client: upload interactions, delete a user's interactions, delete products and read a task.

Why it looks the way it does:

* **The key never leaks.** It lives in an :class:`ApiKey` whose ``str``/``repr`` are masked. It goes in the
  ``X-API-KEY`` header by default; the ``api_key`` query parameter (``key_in="query"``) is supported because the
  API accepts it, but httpx writes URLs into its exception texts and its INFO log line, so every message that
  leaves this module is scrubbed, httpx exceptions are never chained (``from None``), and a logging filter
  scrubs httpx's own log records while a client is open.
* **Errors are classified once, here.** The uploader and the delete commands only ask: retry
  (:class:`TransientError`), stop (:class:`AuthError`, :class:`ApiError`), or isolate bad records
  (:class:`RejectedError`, a 422 with the server's per-record messages).
* :func:`call_with_retries` holds the retry policy (exponential backoff with jitter, ``Retry-After`` honoured,
  a bounded number of attempts) so that every endpoint retries the same way.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import quote, quote_plus

import httpx

from logmap.errors import LogmapError
from logmap.records.types import DEFAULT_BASE_URL as DEFAULT_BASE_URL  # re-exported: the client's default

#: Statuses worth another attempt: the request may succeed later.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MASK = "***"

KeyLocation = Literal["header", "query"]
T = TypeVar("T")


class ApiKey:
    """A secret API key. Printing, logging or formatting it shows ``***``; only :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = (value or "").strip()
        if not value:
            raise LogmapError("no API key: pass --api-key or set MISO_API_KEY")
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the one place that sends it."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every spelling of the key (raw, percent- or plus-encoded) replaced by ``***``."""
        for form in {self._value, quote(self._value, safe=""), quote_plus(self._value)}:
            text = text.replace(form, MASK)
        return text

    def __repr__(self) -> str:
        return f"ApiKey('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> NoReturn:  # pickling would copy the secret into whatever stores the pickle
        raise TypeError("ApiKey cannot be pickled")


class ApiError(LogmapError):
    """The API answered with an error that another attempt will not fix (or attempts ran out)."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthError(ApiError):
    """401/403: the key was refused. Nothing else will succeed with it, so everything stops."""


class TransientError(ApiError):
    """A failure another attempt may fix: 408, 429, 5xx, a timeout or a dropped connection."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class RejectedError(ApiError):
    """422 (or 413): the server refused the batch's content; ``errors`` are its per-record messages."""

    def __init__(self, message: str, *, status: int, body: Any = None, errors: list[str] | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.errors = errors or []


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """How failures are retried: ``attempts`` in total, waits growing ``base_s * 2**n`` up to ``max_s``, with
    jitter (a random half of each wait) so that parallel requests do not retry in lockstep. A ``Retry-After``
    from the server replaces the computed wait (up to ``max_retry_after_s``): the server knows best."""

    attempts: int = 8
    base_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (1-based)."""
        uniform = rng.uniform if rng is not None else random.uniform
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s) + uniform(0, min(self.base_s, 1.0))
        ceiling = min(self.max_s, self.base_s * (2 ** (retry - 1)))
        return ceiling / 2 + uniform(0, ceiling / 2)


class Stopped(Exception):
    """Another worker hit a fatal error (or the user pressed Ctrl-C): give up waiting and unwind."""


def call_with_retries(call: Callable[[], T], policy: RetryPolicy, *, stop: threading.Event | None = None,
                      on_retry: Callable[[TransientError, float], None] | None = None) -> T:
    """Run ``call``, retrying :class:`TransientError` per ``policy``. Waits end early when ``stop`` is set.

    Raises the last error (as :class:`ApiError`, saying how many attempts were made) when attempts run out.
    """
    retry = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped
        try:
            return call()
        except TransientError as error:
            retry += 1
            if retry >= policy.attempts:
                raise ApiError(f"gave up after {policy.attempts} attempts: {error}", status=error.status,
                               body=error.body) from None
            wait = policy.delay(retry, error.retry_after)
            if on_retry is not None:
                on_retry(error, wait)
            if stop is not None:
                if stop.wait(wait):
                    raise Stopped from None
            else:
                time.sleep(wait)


class _ScrubKey(logging.Filter):
    """Rewrites httpx's log records (which carry the request URL) without the key."""

    def __init__(self, key: ApiKey) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.key.redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


_INDEX = re.compile(r"^data\.(\d+)\b")


def error_indices(errors: list[str]) -> set[int]:
    """Record indices named by 422 messages like ``data.3.timestamp is invalid …``."""
    found = set()
    for text in errors:
        match = _INDEX.match(text)
        if match:
            found.add(int(match.group(1)))
    return found


def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi's bundle), made once per
    process and bundle: loading the CA bundle costs ~60 ms of CPU, more than a small upload's requests."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # it reads the same two variables


class ApiClient:
    """A thread-safe client for the endpoints logmap uses. Methods raise the errors above, never httpx's."""

    def __init__(self, api_key: ApiKey | str, base_url: str = DEFAULT_BASE_URL, *, key_in: KeyLocation = "header",
                 timeout_s: float = 60.0, max_connections: int = 16, user_agent: str = "logmap") -> None:
        self.key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key)
        if key_in not in ("header", "query"):
            raise LogmapError(f"key location must be 'header' or 'query', not {key_in!r}")
        self.base_url = base_url.rstrip("/")
        self.key_in = key_in
        self.timeout_s = timeout_s
        self._http = httpx.Client(
            verify=tls_context(),
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )
        self._scrub = _ScrubKey(self.key)
        logging.getLogger("httpx").addFilter(self._scrub)

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r}, key={self.key!r}, key_in={self.key_in!r})"

    def close(self) -> None:
        self._http.close()
        logging.getLogger("httpx").removeFilter(self._scrub)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------------------------

    def upload_interactions(self, body: bytes) -> dict[str, Any]:
        """``POST /v1/interactions`` with an already-encoded body ``{"data": [...]}``."""
        return self.request("POST", "/v1/interactions", content=body)

    def delete_interactions(self, user_ids: list[str]) -> dict[str, Any]:
        """``DELETE /v1/interactions`` with ``{"user_ids": [...]}``: every interaction of these users."""
        return self.request("DELETE", "/v1/interactions", content=_json({"user_ids": user_ids}))

    def delete_products(self, product_ids: list[str]) -> str:
        """``POST /v1/products/_delete``; returns the ``task_id`` whose state :meth:`product_task` reads."""
        body = self.request("POST", "/v1/products/_delete", content=_json({"data": {"product_ids": product_ids}}))
        task_id = (body.get("data") or {}).get("task_id") if isinstance(body, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ApiError(f"the API accepted the product delete but returned no task_id: {body}", body=body)
        return task_id

    def product_task(self, task_id: str) -> dict[str, Any]:
        """``GET /v1/products/_status/{task_id}``: the task's status body as the API returns it."""
        return self.request("GET", f"/v1/products/_status/{quote(task_id, safe='')}")

    # -- one request, classified ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, content: bytes | None = None) -> dict[str, Any]:
        """Send one request; return the JSON body of a 2xx answer or raise the matching error class."""
        headers = {"Content-Type": "application/json"} if content is not None else {}
        params = None
        if self.key_in == "header":
            headers["X-API-KEY"] = self.key.reveal()
        else:
            params = {"api_key": self.key.reveal()}
        where = f"{method} {path}"
        try:
            response = self._http.request(method, self.base_url + path, content=content, headers=headers,
                                          params=params)
        except httpx.TimeoutException as error:
            raise TransientError(f"{where}: no answer within {self.timeout_s:g}s "
                                 f"({type(error).__name__})") from None
        except httpx.TransportError as error:
            detail = self.key.redact(str(error)) or type(error).__name__
            raise TransientError(f"{where}: connection failed ({detail})") from None
        except httpx.HTTPError as error:  # anything else httpx raises: scrub and stop
            raise ApiError(f"{where}: {self.key.redact(str(error)) or type(error).__name__}") from None
        return self._classify(where, response)

    def _classify(self, where: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        body = _body(response)
        message = self.key.redact(_message(body) or response.reason_phrase or "")
        if 200 <= status < 300:
            return body if isinstance(body, dict) else {}
        if status in (401, 403):
            raise AuthError(f"the API refused the key (HTTP {status}: {message}); check --api-key / MISO_API_KEY",
                            status=status, body=body)
        if status in RETRY_STATUSES:
            raise TransientError(f"{where}: HTTP {status} {message}".rstrip(), status=status, body=body,
                                 retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status in (413, 422):
            errors = body.get("data") if isinstance(body, dict) else None
            errors = [self.key.redact(str(e)) for e in errors] if isinstance(errors, list) else []
            raise RejectedError(f"{where}: HTTP {status} {message}".rstrip(), status=status, body=body,
                                errors=errors)
        raise ApiError(f"{where}: HTTP {status} {message}".rstrip(), status=status, body=body)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return body[key]
        if isinstance(body.get("detail"), list):  # FastAPI-style validation errors
            return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                             for item in body["detail"])
    return ""
