"""read_ahead: same items in order, errors surface at the consumer, an early stop stops the producer."""

from __future__ import annotations

import threading

import pytest

from logmap.background import read_ahead


def test_items_arrive_in_order_from_another_thread():
    threads: set[str] = set()

    def produce():
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(produce())) == list(range(50))
    assert threads and threading.current_thread().name not in threads


def test_a_producer_error_is_raised_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise ValueError("bad chunk")

    got = []
    with pytest.raises(ValueError, match="bad chunk"):
        for item in read_ahead(produce()):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_stops_and_closes_the_producer():
    produced, closed = [], threading.Event()

    def produce():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    items = read_ahead(produce())
    assert next(items) == 0
    items.close()
    assert closed.wait(5)
    assert len(produced) <= 2  # the one handed over and the one computed ahead, never the whole input


def test_the_producer_runs_ahead_of_the_consumer():
    second_ready = threading.Event()

    def produce():
        yield 0
        second_ready.set()  # reached while the consumer still holds item 0
        yield 1

    items = read_ahead(produce())
    assert next(items) == 0
    assert second_ready.wait(5)
    assert list(items) == [1]


def test_only_one_item_is_computed_ahead():
    produced = []

    def produce():
        for i in range(10):
            produced.append(i)
            yield i

    items = read_ahead(produce())
    assert next(items) == 0
    for _ in range(50):  # give the producer every chance to run further ahead than it may
        threading.Event().wait(0.005)
    assert produced == [0, 1]
    assert list(items) == list(range(1, 10))
