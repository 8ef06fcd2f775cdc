"""The task graph the comparison's steps run on (vein_tracker.schedule)."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import pytest

from vein_tracker.schedule import TaskGraph


def _graph(calls: list[str], lock: threading.Lock) -> tuple[TaskGraph, Any]:
    """a, b from given values; c = a + b; d = c * a; an unused step e."""

    def step(name: str, fn: Any) -> Any:
        def run(*args: Any) -> Any:
            time.sleep(0.01)  # long enough for the workers to overlap
            with lock:
                calls.append(name)
            return fn(*args)

        return run

    g = TaskGraph()
    a = g.add("a", step("a", lambda x: x + 1), 1)
    b = g.add("b", step("b", lambda x: x * 10), 2)
    c = g.add("c", step("c", lambda x, y: x + y), a, b)
    g.add("e", step("e", lambda x: x - 1), c)
    d = g.add("d", step("d", lambda x, y: x * y), c, a)
    return g, d


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_run_gives_the_serial_result_running_each_needed_step_once(workers: int) -> None:
    calls: list[str] = []
    g, d = _graph(calls, threading.Lock())
    assert g.run(d, workers=workers) == (2 + 20) * 2
    assert sorted(calls) == ["a", "b", "c", "d"]  # "e" is not needed for d
    assert calls.index("c") > max(calls.index("a"), calls.index("b"))
    assert calls[-1] == "d"


def test_one_worker_runs_the_steps_in_the_order_they_were_declared() -> None:
    calls: list[str] = []
    g, d = _graph(calls, threading.Lock())
    g.run(d, workers=1)
    assert calls == ["a", "b", "c", "d"]


def test_steps_run_side_by_side() -> None:
    """Two independent steps overlap in time on two workers."""
    inside = threading.Barrier(2, timeout=10)

    def meet(x: int) -> int:
        inside.wait()  # both steps must be running at once to get past this
        return x

    g = TaskGraph()
    a = g.add("a", meet, 1)
    b = g.add("b", meet, 2)
    total = g.add("sum", lambda x, y: x + y, a, b)
    assert g.run(total, workers=2) == 3


@pytest.mark.parametrize("workers", [1, 3])
def test_the_first_error_is_raised_and_no_step_starts_after_it(workers: int) -> None:
    calls: list[str] = []

    def fail(_: int) -> int:
        raise ValueError("bad input")

    def later(x: int) -> int:
        calls.append("later")
        return x

    g = TaskGraph()
    a = g.add("a", fail, 1)
    b = g.add("b", later, a)
    with pytest.raises(ValueError, match="bad input"):
        g.run(b, workers=workers)
    assert calls == []


def test_a_result_is_dropped_once_every_reader_is_done() -> None:
    class Big:
        pass

    seen: list[bool] = []
    g = TaskGraph()
    a = g.add("a", Big)
    ref = g.add("ref", weakref.ref, a)
    b = g.add("b", lambda r: seen.append(r() is None) or 1, ref)
    g.run(b, workers=1)
    assert seen == [True]


def test_progress_is_told_from_the_caller_as_announced_steps_start_never_going_back() -> None:
    told: list[tuple[float, str, str]] = []
    g = TaskGraph()
    a = g.add("a", lambda: 1)
    b = g.add("b", lambda x: x, a)
    c = g.add("c", lambda x: x, b)
    g.announce(a, 0.1, "first")
    g.announce(b, 0.5, "second")
    g.announce(c, 0.3, "late and lower: not told")
    g.run(c, workers=2, progress=lambda f, m: told.append((f, m, threading.current_thread().name)))
    assert [(f, m) for f, m, _ in told] == [(0.1, "first"), (0.5, "second")]
    assert {t for *_, t in told} == {threading.current_thread().name}


def test_bad_uses() -> None:
    g, other = TaskGraph(), TaskGraph()
    a = other.add("a", lambda: 1)
    with pytest.raises(ValueError, match="another graph"):
        g.add("b", lambda x: x, a)
    with pytest.raises(ValueError, match="another graph"):
        g.run(a)
    with pytest.raises(ValueError, match="another graph"):
        g.announce(a, 0.5, "x")
    with pytest.raises(ValueError, match="workers"):
        other.run(a, workers=0)
