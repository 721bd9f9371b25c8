"""Run the producer of an iterator in a background thread, one item ahead of its consumer.

polars releases the GIL while it computes, so a thread that reads and parses chunk n+1 runs on the second core
while the pipeline filters, classifies and encodes chunk n: on two cores most stages are one pass over one
column at a time and leave the other core idle otherwise. Exactly one item is computed ahead (not a queue of
them), so memory grows by one parsed chunk, not more.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")


class _Handoff:
    """One slot between the two threads: the producer fills it, the consumer empties it."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: object = None
        self._full = False
        self._ended = False
        self._error: BaseException | None = None
        self.stopped = False

    def put(self, item: object) -> bool:
        """Wait for the slot to be empty, then fill it; False once the consumer has stopped."""
        with self._ready:
            while self._full and not self.stopped:
                self._ready.wait()
            if self.stopped:
                return False
            self._item, self._full = item, True
            self._ready.notify_all()
            return True

    def wait_taken(self) -> bool:
        """Wait until the consumer has taken the item; False once it has stopped."""
        with self._ready:
            while self._full and not self.stopped:
                self._ready.wait()
            return not self.stopped

    def end(self, error: BaseException | None = None) -> None:
        with self._ready:
            self._ended, self._error = True, error
            self._ready.notify_all()

    def take(self) -> tuple[bool, object]:
        """(True, item), or (False, None) at the end; raises the producer's error."""
        with self._ready:
            while not self._full and not self._ended:
                self._ready.wait()
            if self._full:
                item, self._item, self._full = self._item, None, False
                self._ready.notify_all()
                return True, item
            if self._error is not None:
                raise self._error
            return False, None

    def stop(self) -> None:
        with self._ready:
            self.stopped = True
            self._ready.notify_all()


def read_ahead(items: Iterable[T]) -> Generator[T, None, None]:
    """The items of ``items``, each computed by a background thread while the consumer works on the previous.

    An exception in the producer is raised in the consumer after the items before it. When the consumer stops
    early (an error downstream, Ctrl-C, ``close()``), the producer stops after the item it is computing and
    closes ``items`` in its own thread.
    """
    handoff = _Handoff()

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                # Hand over, then wait until it is taken before computing the next: one item ahead, no more.
                if not handoff.put(item) or not handoff.wait_taken():
                    return
            handoff.end()
        except BaseException as error:  # raised in the consumer
            handoff.end(error)
        finally:  # close files in the thread that opened them
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="logmap-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            more, item = handoff.take()
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        handoff.stop()
        worker.join(timeout=10)  # the producer stops after its current item; a blocked stdin read may not
