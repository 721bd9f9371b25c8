"""Upload batches of encoded records to ``POST /v1/interactions``: concurrent, retried, resumable.

Why it is built this way:

* **One shape of input.** Every source yields :class:`Batch` objects (encoded JSON records plus a stable id):
  batch files written by ``convert`` (:func:`batches_from_dir`) or the pipeline's output as it is produced
  (:func:`upload_inputs`). Batches are pulled only as fast as requests leave, so memory stays bounded
  and the first requests go out while later batches are still being computed.
* **Exactly once across restarts, as far as HTTP allows.** A batch's id is its file name plus a hash of its
  content. Each request covers a range ``[start, end)`` of one batch; when the server acknowledges it (or a
  record is dead-lettered), a line is appended to ``upload-journal.ndjson`` and fsynced *before* the record
  counts as done. ``--resume`` sends only the ranges no journal line covers. The one window left: the server
  stored a request but its answer was lost (connection dropped, timeout, kill between the answer and the
  fsync). That request is sent again, so those records can arrive twice. The API has no idempotency key, so no
  client can close this window; it is at most the requests in flight (``concurrency``) at the moment of failure.
* **A 422 never drops good records.** The API refuses a whole request for one bad record. The request is split
  — around the indices named in the server's messages, or in halves when it names none — until each refused
  record stands alone; the rest is uploaded and each refused record goes to ``dead-letter.ndjson`` with the
  server's messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from logmap.api.client import (
    ApiClient,
    ApiError,
    RejectedError,
    RetryPolicy,
    Stopped,
    TransientError,
    call_with_retries,
    error_indices,
)
from logmap.errors import InputError, LogmapError, OutputError
from logmap.mapping.model import Mapping
from logmap.pipeline.runner import RunOptions
from logmap.sinks.output import BATCH_PATTERNS, REPORT_NAME, Run
from logmap.sinks.report import RunResult

JOURNAL_NAME = "upload-journal.ndjson"
DEAD_LETTER_NAME = "dead-letter.ndjson"
#: The API takes at most this many records per request.
MAX_RECORDS = 10_000
#: Default cap on a request body: well under what HTTP gateways commonly refuse, far above 10,000 small records.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_OPEN, _SEP, _CLOSE = b'{"data":[', b",", b"]}"
_OVERHEAD = len(_OPEN) + len(_CLOSE)


# -- sources ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """Encoded records (one JSON object each, as bytes) and an id that is the same on every run."""

    id: str
    records: list[bytes]
    source: str


def _content_id(name: str, content: bytes) -> str:
    return f"{name}#{hashlib.sha256(content).hexdigest()[:20]}"


def batch_files(directory: str | Path) -> list[Path]:
    """The batch files ``convert`` wrote in ``directory`` (``interactions-NNNNN.ndjson`` or ``.json``), in order.

    Only a finished run's: ``convert`` writes ``report.json`` last, so a directory without it is refused.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a directory of batch files")
    if not (folder / REPORT_NAME).is_file():
        raise InputError(f"{folder} holds no finished conversion ({REPORT_NAME} is missing: the run that wrote it "
                         "failed or was stopped); convert again before uploading")
    files = sorted(path for pattern in BATCH_PATTERNS for path in folder.glob(pattern))
    if not files:
        raise InputError(f"no batch files (interactions-*.ndjson or interactions-*.json) in {folder}")
    return files


def read_batch_file(path: Path) -> Batch:
    """One batch file as a :class:`Batch`; its id is the file name plus a hash of its bytes."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            records = json.loads(data)["data"]
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a request body {{\"data\": [...]}} ({error})") from None
        encoded = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode("utf-8") for r in records]
    else:
        lines = [line.rstrip(b"\r") for line in data.split(b"\n")]
        _check_lines(path, lines)
        encoded = [line for line in lines if line.strip()]
    return Batch(_content_id(path.name, data), encoded, path.name)


def _check_lines(path: Path, lines: list[bytes]) -> None:
    """Refuse a batch with a line that is not a whole JSON record (a torn write), naming its file and line, before
    any of the batch is sent. Every record has a ``type``, so a line whose ``$.type`` cannot be read is broken."""
    text = pl.Series(lines, dtype=pl.Binary).cast(pl.String, strict=False)
    broken = (text.str.json_path_match("$.type").is_null() & (text.str.strip_chars() != "")) | text.is_null()
    if broken.any():
        line = int(broken.arg_true()[0]) + 1
        raise InputError(f"{path}:{line}: not a complete JSON record (a torn or edited batch file); nothing of "
                         "this batch was sent — convert again")


def batches_from_dir(directory: str | Path) -> Iterator[Batch]:
    """Batches from the files ``convert`` wrote, read one at a time (report.json and rejects are ignored)."""
    for path in batch_files(directory):
        yield read_batch_file(path)


def count_records(directory: str | Path) -> int:
    """Records in a directory of batch files (for a progress bar's total); reads every file once."""
    total = 0
    for path in batch_files(directory):
        if path.suffix == ".json":
            total += len(read_batch_file(path).records)
        else:
            with path.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
    return total


def batches_from_stream(batches: Iterable[list[bytes]], name: str = "stream") -> Iterator[Batch]:
    """Wrap encoded batches as they are produced; ids are the sequence number plus a content hash, so a resumed
    run skips exactly the acknowledged batches when the producer is deterministic (the pipeline is)."""
    for number, records in enumerate(batches, start=1):
        records = [bytes(r) for r in records]
        yield Batch(_content_id(f"{name}-{number:05d}", b"\n".join(records)), records, f"{name}-{number:05d}")


def encoded_batches(frames: Iterable[pl.DataFrame], batch_size: int = MAX_RECORDS) -> Iterator[list[bytes]]:
    """The ``_json`` of record frames regrouped into lists of at most ``batch_size`` encoded records."""
    pending: list[bytes] = []
    for records in frames:
        for start in range(0, records.height, batch_size):
            pending.extend(records["_json"].slice(start, batch_size).cast(pl.Binary).to_list())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
    if pending:
        yield pending


@dataclass
class InputUpload:
    """What :func:`upload_inputs` did: the upload's stats and the conversion's result (ledger, rejects)."""

    stats: UploadStats
    run: RunResult


def upload_inputs(inputs: list[str], mapping: Mapping | str | Path, client: ApiClient, out_dir: str | Path, *,
                  key: str | bytes | None = None, options: UploadOptions | None = None, resume: bool = False,
                  progress: ProgressCallback | None = None, run_options: RunOptions | None = None,
                  uploader: Uploader | None = None) -> InputUpload:
    """Convert ``inputs`` with ``mapping`` and upload the batches while later ones are still computed.

    ``out_dir`` receives the journal and dead-letter file as the upload goes, and, when every batch has been
    accounted for, ``rejects.ndjson`` and ``report.json`` (the conversion's ledger) as ``convert`` writes them.
    Pass an ``uploader`` to keep its :attr:`~Uploader.stats` after an interruption (it then brings its own
    options, resume flag and progress callback).
    """
    with Run(inputs, mapping, key=key, out_dir=out_dir, replace=True, options=run_options) as run:
        uploader = uploader or Uploader(client, out_dir, options, resume=resume, progress=progress)
        options = uploader.options
        batches = batches_from_stream(encoded_batches(run.records(), options.max_records))
        stats = uploader.run(batches)
        result = run.finish(uploaded={"sent": stats.sent, "rejected": stats.rejected, "skipped": stats.skipped})
    return InputUpload(stats, result)


# -- ranges ----------------------------------------------------------------------------------------------------

def uncovered(size: int, covered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[0, size)`` that no range in ``covered`` includes, in order."""
    out, position = [], 0
    for start, end in sorted(covered):
        if start > position:
            out.append((position, min(start, size)))
        position = max(position, end)
    if position < size:
        out.append((position, size))
    return [(s, e) for s, e in out if s < e]


def split_range(records: list[bytes], start: int, end: int, max_records: int,
                max_bytes: int) -> Iterator[tuple[int, int]]:
    """Cut ``records[start:end]`` into consecutive ranges whose request body holds at most ``max_records``
    records and ``max_bytes`` bytes. A record too large for any request gets a range of its own."""
    first, size = start, _OVERHEAD
    for index in range(start, end):
        grow = len(records[index]) + (1 if index > first else 0)
        if index > first and (index - first >= max_records or size + grow > max_bytes):
            yield first, index
            first, size, grow = index, _OVERHEAD, len(records[index])
        size += grow
    if first < end:
        yield first, end


def request_body(records: list[bytes]) -> bytes:
    """``{"data":[…]}`` from encoded records, by joining bytes."""
    return _OPEN + _SEP.join(records) + _CLOSE


# -- journal and dead letters ----------------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Journal:
    """``upload-journal.ndjson``: one fsynced line per range the server acknowledged (or whose single record it
    refused). What it lists is never sent again by ``--resume``; what it does not list is."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self._covered: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()
        existed = path.exists() and path.stat().st_size > 0
        if existed and not resume:
            raise OutputError(f"{path} records an earlier upload: pass --resume to send only what it has not "
                              "acknowledged, or delete it (and dead-letter.ndjson) to send everything again")
        if existed:
            self._load()
        self._handle = path.open("ab")
        if not existed:
            _fsync_dir(path.parent)

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a line torn by a kill: it was never fsynced, so it never counted
            with self.path.open("r+b") as handle:
                handle.truncate(complete)
        for line in data[:complete].splitlines():
            try:
                entry = json.loads(line)
                self._covered.setdefault(entry["batch"], []).append((int(entry["start"]), int(entry["end"])))
            except (ValueError, KeyError, TypeError):
                continue  # not ours or damaged: its range is simply not covered, so it is sent again

    def covered(self, batch_id: str) -> list[tuple[int, int]]:
        return list(self._covered.get(batch_id, ()))

    def record(self, batch_id: str, start: int, end: int, status: str) -> None:
        """Append and fsync one line; only after this returns does the range count as done."""
        line = json.dumps({"batch": batch_id, "start": start, "end": end, "status": status,
                           "at": round(time.time(), 3)}, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._covered.setdefault(batch_id, []).append((start, end))

    def close(self) -> None:
        with self._lock:
            self._handle.close()


class DeadLetter:
    """``dead-letter.ndjson``: each record the server refused, once, with where it came from and the server's
    messages, so it can be fixed and sent again."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        if path.exists() and path.stat().st_size > 0:
            if not resume:
                raise OutputError(f"{path} exists from an earlier upload: pass --resume, or move it away")
            for line in path.read_bytes().splitlines():
                try:
                    entry = json.loads(line)
                    self._seen.add((entry["batch"], int(entry["index"])))
                except (ValueError, KeyError, TypeError):
                    continue
        self._handle: Any = None

    def write(self, batch: Batch, index: int, *, status: int | None, message: str, errors: list[str]) -> None:
        """Record one refused record (skipped when an interrupted run already recorded it)."""
        raw = batch.records[index]
        entry: dict[str, Any] = {"batch": batch.id, "source": batch.source, "index": index, "status": status,
                                 "message": message, "errors": errors}
        try:
            entry["record"] = json.loads(raw)
        except ValueError:
            entry["raw"] = raw.decode("utf-8", "replace")
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            if (batch.id, index) in self._seen:
                return
            if self._handle is None:
                self._handle = self.path.open("ab")
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._seen.add((batch.id, index))

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


# -- the uploader ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadOptions:
    """Knobs of an upload. Defaults suit the real API; tests shrink the retry waits."""

    concurrency: int = 4
    max_records: int = MAX_RECORDS
    max_bytes: int = DEFAULT_MAX_BYTES
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= MAX_RECORDS:
            raise LogmapError(f"records per request must be between 1 and {MAX_RECORDS:,}")
        if self.max_bytes < 1024:
            raise LogmapError("the byte cap per request must be at least 1024")
        if self.concurrency < 1:
            raise LogmapError("concurrency must be at least 1")


@dataclass
class UploadStats:
    """What an upload did. ``skipped`` were acknowledged (or dead-lettered) by an earlier run of the journal."""

    batches: int = 0
    sent: int = 0
    skipped: int = 0
    rejected: int = 0
    requests: int = 0
    retried: int = 0
    elapsed_s: float = 0.0
    dead_letter: Path | None = None
    journal: Path | None = None

    @property
    def done(self) -> int:
        """Records accounted for so far: sent, rejected or skipped."""
        return self.sent + self.rejected + self.skipped

    @property
    def records_per_second(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class UploadFailed(LogmapError):
    """The upload stopped (key refused, attempts exhausted, an unexpected answer); the journal says where."""

    def __init__(self, message: str, stats: UploadStats) -> None:
        super().__init__(message)
        self.stats = stats


ProgressCallback = Callable[[UploadStats], None]


class Uploader:
    """Sends batches with ``concurrency`` requests in flight, journals acknowledgements, dead-letters refusals.

    Use :func:`upload` for one call; keep an ``Uploader`` when you want its :attr:`stats` after an interruption.
    """

    def __init__(self, client: ApiClient, out_dir: str | Path, options: UploadOptions | None = None, *,
                 resume: bool = False, progress: ProgressCallback | None = None) -> None:
        self.client = client
        self.options = options or UploadOptions()
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.progress = progress
        self.stats = UploadStats(journal=self.out_dir / JOURNAL_NAME, dead_letter=self.out_dir / DEAD_LETTER_NAME)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._started = 0.0

    def run(self, batches: Iterable[Batch]) -> UploadStats:
        """Upload every batch; return the stats. Raises :class:`UploadFailed` on a fatal error and re-raises
        ``KeyboardInterrupt`` after the requests already in flight have finished and been journaled."""
        journal = Journal(self.out_dir / JOURNAL_NAME, resume=self.resume)
        dead = DeadLetter(self.out_dir / DEAD_LETTER_NAME, resume=self.resume)
        self._started = time.perf_counter()
        slots = threading.BoundedSemaphore(self.options.concurrency * 2)
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="logmap-upload")
        futures: set[Future] = set()
        try:
            for batch in batches:
                if self.stop.is_set():
                    break
                self._count(batches=1)
                todo = uncovered(len(batch.records), journal.covered(batch.id))
                self._count(skipped=len(batch.records) - sum(end - start for start, end in todo))
                for start, end in todo:
                    for piece in split_range(batch.records, start, end, self.options.max_records,
                                             self.options.max_bytes):
                        while not slots.acquire(timeout=0.2):
                            if self.stop.is_set():
                                break
                        if self.stop.is_set():
                            break
                        future = pool.submit(self._task, journal, dead, batch, *piece)
                        future.add_done_callback(lambda _f: slots.release())
                        futures.add(future)
                        futures = {f for f in futures if not f.done()}
        except BaseException:
            self.stop.set()  # requests in flight finish and are journaled; queued ones never start
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
            journal.close()
            dead.close()
            self._count()
        if self._error is not None:
            with self._lock:
                done = self.stats.sent + self.stats.rejected
            raise UploadFailed(f"{self._error} — stopped after {done:,} record(s) were accounted for; the journal "
                               f"{self.stats.journal} lists them: run again with --resume to continue",
                               self.stats)
        return self.stats

    # -- workers ---------------------------------------------------------------------------------------------

    def _task(self, journal: Journal, dead: DeadLetter, batch: Batch, start: int, end: int) -> None:
        try:
            self._deliver(journal, dead, batch, start, end)
        except Stopped:
            pass
        except BaseException as error:  # the first fatal error stops everyone; later ones are consequences
            with self._lock:
                if self._error is None:
                    self._error = error if isinstance(error, LogmapError) else LogmapError(
                        f"upload failed: {type(error).__name__}: {self.client.key.redact(str(error))}")
            self.stop.set()

    def _deliver(self, journal: Journal, dead: DeadLetter, batch: Batch, start: int, end: int) -> None:
        """Send ``batch.records[start:end]``; on a 422 split it until every refused record stands alone."""
        stack = [(start, end)]
        while stack:
            first, last = stack.pop()
            records = batch.records[first:last]
            body = request_body(records)
            if last - first == 1 and len(body) > self.options.max_bytes:
                message = f"the record is {len(records[0]):,} bytes; a request may carry {self.options.max_bytes:,}"
                self._reject(journal, dead, batch, first, status=None, message=message, errors=[])
                continue
            try:
                call_with_retries(partial(self._post, body), self.options.retry, stop=self.stop,
                                  on_retry=self._on_retry)
            except RejectedError as error:
                if last - first == 1:
                    self._reject(journal, dead, batch, first, status=error.status,
                                 message=_server_message(error), errors=error.errors)
                else:
                    stack.extend(reversed(_isolate(first, last, error)))
                continue
            journal.record(batch.id, first, last, "sent")
            self._count(sent=last - first)

    def _post(self, body: bytes) -> dict[str, Any]:
        self._count(requests=1)
        return self.client.upload_interactions(body)

    def _on_retry(self, error: TransientError, wait_s: float) -> None:
        self._count(retried=1)

    def _reject(self, journal: Journal, dead: DeadLetter, batch: Batch, index: int, *, status: int | None,
                message: str, errors: list[str]) -> None:
        dead.write(batch, index, status=status, message=message, errors=errors)  # first: journal implies written
        journal.record(batch.id, index, index + 1, "rejected")
        self._count(rejected=1)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)
            self.stats.elapsed_s = time.perf_counter() - self._started
        if self.progress is not None:
            self.progress(self.stats)


def _server_message(error: ApiError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(error)


def _isolate(first: int, last: int, error: RejectedError) -> list[tuple[int, int]]:
    """Ranges to retry after a 422 on ``[first, last)``: the records the server named, each alone, and the
    stretches between them; in halves when the server named none (or all)."""
    named = sorted(i for i in error_indices(error.errors) if i < last - first)
    if not named or len(named) == last - first:
        middle = (first + last) // 2
        return [(first, middle), (middle, last)]
    parts, position = [], first
    for offset in named:
        index = first + offset
        if index > position:
            parts.append((position, index))
        parts.append((index, index + 1))
        position = index + 1
    if position < last:
        parts.append((position, last))
    return parts


def upload(batches: Iterable[Batch], client: ApiClient, out_dir: str | Path, *,
           options: UploadOptions | None = None, resume: bool = False,
           progress: ProgressCallback | None = None) -> UploadStats:
    """Upload ``batches`` through ``client``; the journal and dead-letter file go to ``out_dir``.

    From a notebook::

        with ApiClient(os.environ["MISO_API_KEY"]) as client:
            stats = upload(batches_from_dir("out/"), client, "out/", resume=True)
    """
    return Uploader(client, out_dir, options, resume=resume, progress=progress).run(batches)


__all__ = ["Batch", "DeadLetter", "Journal", "UploadFailed", "UploadOptions", "UploadStats", "Uploader",
           "batch_files", "batches_from_dir", "batches_from_stream", "count_records", "encoded_batches",
           "upload_inputs", "read_batch_file", "request_body", "split_range", "uncovered", "upload", "JOURNAL_NAME",
           "DEAD_LETTER_NAME"]
