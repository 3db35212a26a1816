"""map_bounded: order kept, in-flight bound, first error stops the batch."""

from __future__ import annotations

import threading
import time

import pytest

from ifpo.judge.concurrency import map_bounded


def test_keeps_order_and_bounds_in_flight_calls() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def work(x: int) -> int:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02 if x % 2 else 0.01)
        with lock:
            state["now"] -= 1
        return x * x

    assert map_bounded(work, list(range(10)), max_workers=2, show_progress=False) == [
        x * x for x in range(10)
    ]
    assert state["max"] == 2


def test_first_error_is_raised_and_pending_calls_are_cancelled() -> None:
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        time.sleep(0.01)
        if x == 1:
            raise RuntimeError("boom")
        return x

    with pytest.raises(RuntimeError, match="boom"):
        map_bounded(work, list(range(50)), max_workers=2, show_progress=False)
    assert len(started) < 50


def test_empty_input_and_bad_worker_count() -> None:
    assert map_bounded(lambda x: x, [], max_workers=1) == []
    with pytest.raises(ValueError, match="max_workers"):
        map_bounded(lambda x: x, [1], max_workers=0)
