"""A tiny task graph: named steps with declared inputs, run on a thread pool.

The image analysis is written as plain functions that know nothing of threads. A caller
that wants two cores' worth of speed from them declares its steps here, in the order it
would call them, each with its inputs (given values or other steps' results)::

    g = TaskGraph()
    b = g.add("baseline features", photo_features, baseline)
    f = g.add("follow-up features", photo_features, followup)
    reg = g.add("register", align_features, b, f, followup)
    result = g.run(reg, workers=2)

:meth:`TaskGraph.run` starts a step as soon as its inputs are ready and a worker is free,
the steps declared first first, and returns the target's result: the same values as
calling the steps one after the other (``workers=1`` does exactly that, in this thread),
since each step is a function of its inputs alone. A step's result is dropped once every
step that reads it is done. Like scikit-image's ``apply_parallel``, this layer holds no
image maths; the steps hold no scheduling.

A step's inputs are typed: ``add`` checks (with mypy) that each input, or the result
of the step given for it, is what the function takes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

__all__ = ["Task", "TaskGraph"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
F = TypeVar("F")
G = TypeVar("G")
H = TypeVar("H")

ProgressCallback = Callable[[float, str], None]


class Task(Generic[T_co]):
    """A handle on the result of one step of a :class:`TaskGraph` (of type ``T_co``)."""

    __slots__ = ("_graph", "index", "name")

    def __init__(self, graph: TaskGraph, index: int, name: str) -> None:
        self._graph = graph
        self.index = index
        self.name = name

    def __repr__(self) -> str:
        return f"Task({self.name!r})"


@dataclass
class _Step:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deps: tuple[int, ...]
    announce: tuple[float, str] | None = None


class TaskGraph:
    """Steps declared in the order a serial program would call them."""

    def __init__(self) -> None:
        self._steps: list[_Step] = []

    # One overload per number of inputs: each input is a value or a Task of that type.
    @overload
    def add(self, name: str, fn: Callable[[], T], /) -> Task[T]: ...
    @overload
    def add(self, name: str, fn: Callable[[A], T], a: Task[A] | A, /) -> Task[T]: ...
    @overload
    def add(
        self, name: str, fn: Callable[[A, B], T], a: Task[A] | A, b: Task[B] | B, /
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        /,
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C, D], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        d: Task[D] | D,
        /,
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C, D, E], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        d: Task[D] | D,
        e: Task[E] | E,
        /,
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C, D, E, F], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        d: Task[D] | D,
        e: Task[E] | E,
        f: Task[F] | F,
        /,
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C, D, E, F, G], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        d: Task[D] | D,
        e: Task[E] | E,
        f: Task[F] | F,
        g: Task[G] | G,
        /,
    ) -> Task[T]: ...
    @overload
    def add(
        self,
        name: str,
        fn: Callable[[A, B, C, D, E, F, G, H], T],
        a: Task[A] | A,
        b: Task[B] | B,
        c: Task[C] | C,
        d: Task[D] | D,
        e: Task[E] | E,
        f: Task[F] | F,
        g: Task[G] | G,
        h: Task[H] | H,
        /,
    ) -> Task[T]: ...

    def add(self, name: str, fn: Callable[..., Any], /, *args: Any) -> Task[Any]:
        """Declare a step: ``fn(*args)``, where an argument that is a :class:`Task` stands
        for that step's result. Returns the handle on this step's result."""
        for a in args:
            if isinstance(a, Task) and a._graph is not self:
                raise ValueError(f"step {name!r} reads {a.name!r} of another graph")
        deps = tuple(sorted({a.index for a in args if isinstance(a, Task)}))
        self._steps.append(_Step(name, fn, args, deps))
        return Task(self, len(self._steps) - 1, name)

    def announce(self, task: Task[Any], fraction: float, message: str) -> None:
        """Report ``(fraction, message)`` to :meth:`run`'s ``progress`` when ``task``
        starts (from the thread that called :meth:`run`, fractions never going back)."""
        if task._graph is not self:
            raise ValueError(f"{task.name!r} is a step of another graph")
        self._steps[task.index].announce = (float(fraction), message)

    def run(
        self, target: Task[T], *, workers: int = 2, progress: ProgressCallback | None = None
    ) -> T:
        """The result of ``target``, running the steps it needs (and only those).

        Parameters
        ----------
        target : Task
        workers : int
            Threads the steps run on; 1 runs them one after the other in this thread, in
            the order they were declared.
        progress : callable(fraction, message), optional
            Called, from this thread, when an announced step (:meth:`announce`) starts.

        Raises
        ------
        Exception
            The first exception a step raised (steps already running are waited for; no
            other step starts).
        """
        if target._graph is not self:
            raise ValueError(f"{target.name!r} is a step of another graph")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        return _Run(self._steps, target.index, progress).go(workers)


class _Run:
    """One run of a graph: which steps are needed, their results, who still reads them."""

    def __init__(self, steps: list[_Step], target: int, progress: ProgressCallback | None) -> None:
        self.steps = steps
        self.target = target
        self.progress = progress
        self.told = -1.0
        needed = {target}
        for i in range(target, -1, -1):  # inputs are always declared before their readers
            if i in needed:
                needed.update(steps[i].deps)
        self.todo = sorted(needed)
        self.readers = dict.fromkeys(self.todo, 0)
        for i in self.todo:
            for d in steps[i].deps:
                self.readers[d] += 1
        self.results: dict[int, Any] = {}

    def call(self, i: int) -> Any:
        step = self.steps[i]
        args = [self.results[a.index] if isinstance(a, Task) else a for a in step.args]
        return step.fn(*args)

    def tell(self, i: int) -> None:
        note = self.steps[i].announce
        if note is not None and self.progress is not None and note[0] >= self.told:
            self.told = note[0]
            self.progress(*note)

    def done(self, i: int, value: Any) -> None:
        self.results[i] = value
        for d in self.steps[i].deps:
            self.readers[d] -= 1
            if self.readers[d] == 0 and d != self.target:
                del self.results[d]

    def go(self, workers: int) -> Any:
        if workers == 1:
            for i in self.todo:
                self.tell(i)
                self.done(i, self.call(i))
            return self.results[self.target]
        waiting = list(self.todo)
        running: dict[Future[Any], int] = {}
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="step") as pool:
            while waiting or running:
                if error is None:
                    for i in [
                        i for i in waiting if all(d in self.results for d in self.steps[i].deps)
                    ]:
                        if len(running) >= workers:
                            break
                        waiting.remove(i)
                        self.tell(i)
                        running[pool.submit(self.call, i)] = i
                if not running:
                    if error is None:  # pragma: no cover - inputs come before their readers
                        raise RuntimeError(f"no step of {waiting!r} can start")
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = running.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        error = error or exc
                    elif error is None:
                        self.done(i, fut.result())
        if error is not None:
            raise error
        return self.results[self.target]
