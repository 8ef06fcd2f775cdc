"""Batch re-analysis of stored pairs after an algorithm change (``vein-tracker reanalyze``).

Owns orchestration only: which stored analyses are stale, sending each pair to an
executor, the progress bar and the summary. The per-pair work is the app's own
(:func:`vein_tracker.services.analyze_pair`, i.e. ``measure.compare`` on the photos read
through the repository); the result is written back through
:meth:`~vein_tracker.storage.Repository.save_analysis`. This module must not touch SQL or
photo files, and it keeps no queue of its own: the work list is the repository's
:meth:`~vein_tracker.storage.Repository.list_stale_analyses`, and the scheduling is
``concurrent.futures`` (``local``) or ``dask.distributed`` (``dask``).

Resumability: every finished pair is committed on its own (one ``save_analysis``
transaction), next to the old versions, under the old analysis's parameters hash. A
re-analysed pair therefore leaves the stale list, and a restarted run skips it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from . import ALGORITHM_VERSION
from .config import Settings, get_settings
from .errors import VeinTrackerError

Executor = Literal["serial", "local", "dask"]
EXECUTORS: tuple[str, ...] = ("serial", "local", "dask")
Status = Literal["done", "skipped", "failed"]

__all__ = [
    "EXECUTORS",
    "PairOutcome",
    "PairTask",
    "ReanalysisSummary",
    "close_worker_repositories",
    "default_workers",
    "find_stale",
    "reanalyze",
    "reanalyze_pair",
]


@dataclass(frozen=True)
class PairTask:
    """One stale analysis to re-run: a (baseline, follow-up) pair and its parameters.

    Attributes
    ----------
    analysis_id : int
        The stale (newest old-version) analysis of the pair.
    baseline_photo_id, followup_photo_id : int
    params : dict
        The stored parameters (``services.AnalysisParams.to_dict()``), reused as they are.
    params_hash : str
        The stored parameters hash; the new version is saved under the same one, so it
        replaces this pair in the stale list.
    old_version : str
        Algorithm version of the stale analysis.
    target_version : str
        The version the re-run must produce (the caller's ``ALGORITHM_VERSION``); a
        worker running other code refuses the task instead of storing a mislabelled result.
    store_url : str or None
        The caller's photo store (``VEIN_TRACKER_STORE_URL``; None: the local store). A
        worker configured for another store refuses the task with a message naming the
        setting, instead of failing on a "missing" photo.
    """

    analysis_id: int
    baseline_photo_id: int
    followup_photo_id: int
    params: Mapping[str, Any]
    params_hash: str
    old_version: str
    target_version: str = ALGORITHM_VERSION
    store_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out = asdict(self)
        out["params"] = dict(self.params)
        return out


@dataclass(frozen=True)
class PairOutcome:
    """What happened to one pair.

    Attributes
    ----------
    task : PairTask
    status : {"done", "skipped", "failed"}
        ``skipped``: a current-version result already existed (nothing recomputed).
    analysis_id : int or None
        The current-version analysis (new or found), None when failed.
    improvement_pct : float or None
        Its headline improvement, percent.
    seconds : float
        Wall time of the pair in its worker, s.
    error : str or None
        Why the pair failed, in words for the clinic.
    """

    task: PairTask
    status: Status
    analysis_id: int | None = None
    improvement_pct: float | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "task": self.task.to_dict(),
            "status": self.status,
            "analysis_id": self.analysis_id,
            "improvement_pct": self.improvement_pct,
            "seconds": self.seconds,
            "error": self.error,
        }


@dataclass(frozen=True)
class ReanalysisSummary:
    """The result of a batch run.

    Attributes
    ----------
    algorithm_version : str
        The version written.
    executor : str
    workers : int
        Processes of the local pool (1 for serial; the dask cluster's worker count).
    planned : int
        Stale pairs found (after ``limit``).
    outcomes : tuple of PairOutcome
        Finished pairs, in the order of the stale list.
    seconds : float
        Wall time of the batch, s.
    interrupted : bool
        True when the run was interrupted (Ctrl-C); the finished pairs are saved.
    """

    algorithm_version: str
    executor: str
    workers: int
    planned: int
    outcomes: tuple[PairOutcome, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    interrupted: bool = False

    def _count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def done(self) -> int:
        """Pairs re-analysed and saved by this run."""
        return self._count("done")

    @property
    def skipped(self) -> int:
        """Pairs that already had a current-version result."""
        return self._count("skipped")

    @property
    def failed(self) -> int:
        """Pairs that could not be re-analysed (see their ``error``)."""
        return self._count("failed")

    @property
    def pairs_per_minute(self) -> float:
        """Re-analysed pairs per minute of wall time (0 when none)."""
        return 60.0 * self.done / self.seconds if self.seconds > 0 and self.done else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with every outcome."""
        return {
            "algorithm_version": self.algorithm_version,
            "executor": self.executor,
            "workers": self.workers,
            "planned": self.planned,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": self.seconds,
            "pairs_per_minute": self.pairs_per_minute,
            "interrupted": self.interrupted,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }


def default_workers() -> int:
    """Cores this process may use (the default size of the local pool)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- work list


def find_stale(
    repo: Any,
    *,
    since: date | None = None,
    area_id: int | None = None,
    actor: Any = None,
    current_version: str = ALGORITHM_VERSION,
    store_url: str | None = None,
) -> list[PairTask]:
    """The pairs whose stored analysis predates ``current_version``, oldest record first.

    Parameters
    ----------
    repo : vein_tracker.storage.Repository
    since : date, optional
        Keep pairs whose follow-up visit is on or after this date.
    area_id : int, optional
        Keep one treatment area.
    actor : Actor, optional
        Default the local operator (``SYSTEM_ACTOR``), as the records commands do.
    current_version : str
        Default :data:`vein_tracker.ALGORITHM_VERSION`.
    store_url : str, optional
        The photo store the tasks expect (see :attr:`PairTask.store_url`).
    """
    from .storage import SYSTEM_ACTOR

    stale = repo.list_stale_analyses(
        actor or SYSTEM_ACTOR, since=since, area_id=area_id, current_version=current_version
    )
    return [
        PairTask(
            analysis_id=a.id,
            baseline_photo_id=a.baseline_photo_id,
            followup_photo_id=a.followup_photo_id,
            params=dict(a.params),
            params_hash=a.params_hash,
            old_version=a.algorithm_version,
            target_version=current_version,
            store_url=store_url,
        )
        for a in stale
    ]


# ----------------------------------------------------------------------------- per pair

#: One repository per worker process and settings (opened lazily, reused across pairs).
_REPOS: dict[Settings, Any] = {}
#: Whether this process's allocator was set up for analyses (see _on_dask_worker_setup).
_ALLOCATOR_READY = False


def _on_dask_worker_setup() -> None:
    """On a dask worker, let ``malloc`` keep freed memory for the next pair (once).

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``: setting it
    turns off glibc's adaptive ``mmap`` threshold, so every image buffer of a pair is
    a fresh ``mmap`` whose pages are faulted in and zeroed, and one 2000 x 1500 pair took
    2.3-2.5 s instead of 1.2 s here (CPU 4.3 s instead of 2.1 s). A worker that only runs
    analyses gains nothing from handing memory back between pairs, so it keeps it, as a
    one-shot ``vein-tracker analyze`` does (:func:`vein_tracker.runtime.keep_freed_memory`).
    Local pool and serial runs keep the default allocator.
    """
    global _ALLOCATOR_READY
    if _ALLOCATOR_READY or "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # not running in a dask worker
        return
    from .runtime import keep_freed_memory

    keep_freed_memory()
    _ALLOCATOR_READY = True


def _worker_repository(settings: Settings | None) -> Any:
    from sqlalchemy.engine import make_url

    from .errors import StorageError
    from .storage import open_repository

    key = settings or get_settings()
    repo = _REPOS.get(key)
    if repo is None:
        url = make_url(key.db_url)
        # Never create an empty database beside a misconfigured worker.
        db_file = url.database if url.get_backend_name() == "sqlite" else None
        if db_file and not Path(db_file).exists():
            raise StorageError(
                f"This worker does not see the clinic database ({db_file}): set "
                "VEIN_TRACKER_DATA or VEIN_TRACKER_DB_URL of every worker to the shared records."
            )
        # The caller migrated the schema before sending work; workers only read/write rows.
        repo = open_repository(key, migrate=False)
        _REPOS[key] = repo
    return repo


def close_worker_repositories() -> None:
    """Close the repositories opened by :func:`reanalyze_pair` in this process."""
    while _REPOS:
        _, repo = _REPOS.popitem()
        repo.close()


def _same_records(repo: Any, task: PairTask) -> bool:
    """True when the worker's database holds the stale analysis the batch listed."""
    from .errors import AccessDenied
    from .storage import SYSTEM_ACTOR

    try:
        old = repo.get_analysis_by_id(SYSTEM_ACTOR, task.analysis_id)
    except AccessDenied:  # "not found" (the repository does not tell missing from forbidden)
        return False
    return (old.baseline_photo_id, old.followup_photo_id, old.params_hash) == (
        task.baseline_photo_id,
        task.followup_photo_id,
        task.params_hash,
    )


def _analysis_params(params: Mapping[str, Any]) -> Any:
    from .services import AnalysisParams

    known = {"sensitivity", "include_rect", "exclude_rect", "target_pct"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"stored parameters {unknown} are not known to this version")

    def rect(value: Any) -> tuple[float, float, float, float] | None:
        if value is None:
            return None
        x0, y0, x1, y1 = (float(v) for v in value)
        return (x0, y0, x1, y1)

    return AnalysisParams(
        sensitivity=float(params.get("sensitivity", 0.5)),
        include_rect=rect(params.get("include_rect")),
        exclude_rect=rect(params.get("exclude_rect")),
        target_pct=float(params.get("target_pct", 75.0)),
    )


def reanalyze_pair(task: PairTask, settings: Settings | None = None) -> PairOutcome:
    """Re-run one pair with the current algorithm and save it next to the old versions.

    This is the function every executor runs (in a pool process or on a dask worker).
    It opens (once per process) its own repository from ``settings``, reads the photos
    through the photo store, runs :func:`vein_tracker.services.analyze_pair` with the
    stored parameters and commits the result in one transaction with
    ``save_analysis``, under the old analysis's parameters hash. It never raises for a
    pair that cannot be scored: the outcome says why.

    Parameters
    ----------
    task : PairTask
    settings : Settings, optional
        Where the records live; default this process's environment
        (:func:`vein_tracker.config.get_settings`).

    Returns
    -------
    PairOutcome
        ``skipped`` when a current-version result exists already (another run made it).
    """
    from . import services
    from .storage import SYSTEM_ACTOR

    _on_dask_worker_setup()
    t0 = time.perf_counter()

    def outcome(status: Status, **kw: Any) -> PairOutcome:
        return PairOutcome(task=task, status=status, seconds=time.perf_counter() - t0, **kw)

    if task.target_version != ALGORITHM_VERSION:
        return outcome(
            "failed",
            error=(
                f"this worker runs algorithm {ALGORITHM_VERSION}, the batch asked for "
                f"{task.target_version}: install the same vein_tracker on every worker"
            ),
        )
    here = settings or get_settings()
    if here.store_url != task.store_url:
        return outcome(
            "failed",
            error=(
                f"this worker's photo store is {here.store_url or 'the local data folder'}, "
                f"the batch's is {task.store_url or 'its local data folder'}: set "
                "VEIN_TRACKER_STORE_URL of every worker to the clinic's photo store"
            ),
        )
    try:
        repo = _worker_repository(here)
        found = repo.find_analysis(
            SYSTEM_ACTOR,
            baseline_photo_id=task.baseline_photo_id,
            followup_photo_id=task.followup_photo_id,
            params_hash=task.params_hash,
            algorithm_version=ALGORITHM_VERSION,
        )
        if found is not None:
            return outcome("skipped", analysis_id=found.id, improvement_pct=found.improvement_pct)
        if not _same_records(repo, task):
            return outcome(
                "failed",
                error=(
                    f"this worker's records do not hold analysis {task.analysis_id} of the batch: "
                    "point VEIN_TRACKER_DATA / VEIN_TRACKER_DB_URL of every worker at the same "
                    "database and photo store"
                ),
            )
        params = _analysis_params(task.params)
        review = services.analyze_pair(
            repo,
            SYSTEM_ACTOR,
            baseline_photo_id=task.baseline_photo_id,
            followup_photo_id=task.followup_photo_id,
            params=params,
        )
        saved = repo.save_analysis(
            SYSTEM_ACTOR,
            task.baseline_photo_id,
            task.followup_photo_id,
            params=dict(task.params),
            params_hash=task.params_hash,
            result=review.result,
            masks=dict(review.masks_png),
            algorithm_version=ALGORITHM_VERSION,
        )
    except (VeinTrackerError, ValueError) as exc:
        return outcome("failed", error=str(exc))
    finally:
        # The review cache holds full-size masks: keep long-lived workers flat.
        services.clear_analysis_cache()
    return outcome("done", analysis_id=saved.id, improvement_pct=saved.improvement_pct)


# ----------------------------------------------------------------------------- executors

OnResult = Callable[[PairOutcome], None]


def _run_serial(tasks: Sequence[PairTask], settings: Settings) -> Iterator[PairOutcome]:
    try:
        for task in tasks:
            yield reanalyze_pair(task, settings)
    finally:
        close_worker_repositories()


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: let the pairs in flight finish and commit
    # while the parent cancels the queued ones.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_local(
    tasks: Sequence[PairTask], settings: Settings, workers: int
) -> Iterator[PairOutcome]:
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_sigint)
    cancel = True
    try:
        futures: list[Future[PairOutcome]] = [
            pool.submit(reanalyze_pair, t, settings) for t in tasks
        ]
        for fut in as_completed(futures):
            yield fut.result()
        cancel = False
    finally:
        # On an interrupt, queued pairs are dropped; pairs already running finish and commit.
        pool.shutdown(wait=True, cancel_futures=cancel)


def _run_dask(tasks: Sequence[PairTask], scheduler: str) -> Iterator[PairOutcome]:
    from dask.distributed import Client, KilledWorker
    from dask.distributed import as_completed as dask_completed

    client = Client(scheduler, set_as_default=False)
    futures: list[Any] = []
    try:
        # Workers use their own configuration (VEIN_TRACKER_DB_URL, VEIN_TRACKER_STORE_URL,
        # VEIN_TRACKER_ENCRYPTION_KEY and the AWS_* variables of the shared database and
        # photo store; no disk is shared): no secret travels with a task. A worker that
        # dies has its pair rescheduled by dask on another worker.
        futures = client.map(reanalyze_pair, list(tasks), pure=False)
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in dask_completed(futures, loop=client.loop):
            try:
                yield fut.result()
            except KilledWorker as exc:
                # Every worker that took this pair died: it stays stale for the next run.
                yield PairOutcome(
                    task=by_key[fut.key],
                    status="failed",
                    error=f"the workers running it died ({exc.__class__.__name__}): run again",
                )
    finally:
        client.cancel([f for f in futures if not f.done()])
        client.close()


def _dask_workers(scheduler: str) -> int:
    from dask.distributed import Client

    with Client(scheduler, set_as_default=False) as client:
        return len(client.scheduler_info().get("workers", {}))


def reanalyze(
    *,
    settings: Settings | None = None,
    since: date | None = None,
    area_id: int | None = None,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    on_result: OnResult | None = None,
) -> ReanalysisSummary:
    """Re-analyse every stored pair whose algorithm version is older than the current one.

    New results are stored next to the old ones. Each pair is committed when it
    finishes, so an interrupted run (Ctrl-C, a killed job) loses at most the pairs in
    flight, and running again resumes with the pairs still stale.

    Parameters
    ----------
    settings : Settings, optional
        Where the records live; default the environment. The ``local`` and ``serial``
        executors pass these to their workers; ``dask`` workers use their own
        environment (they must point at the same database and photo store).
    since : date, optional
        Only pairs whose follow-up visit is on or after this date.
    area_id : int, optional
        Only this treatment area.
    workers : int, optional
        Processes of the ``local`` pool; default every core (:func:`default_workers`).
        Ignored by ``serial`` (1) and ``dask`` (the cluster decides).
    executor : {"local", "dask", "serial"}
        ``local``: a process pool (spawn) on this machine. ``dask``: the same per-pair
        function on an existing ``dask.distributed`` cluster at ``scheduler``.
        ``serial``: in this process (debugging).
    scheduler : str, optional
        Address of the dask scheduler (e.g. ``tcp://host:8786``); required for ``dask``.
    limit : int, optional
        Re-run at most this many pairs now (the rest stay stale for a later run).
    show_progress : bool
        Show a tqdm progress bar on stderr.
    on_result : callable(PairOutcome), optional
        Called in this process as each pair finishes.

    Returns
    -------
    ReanalysisSummary

    Raises
    ------
    ValueError
        Unknown ``executor``, ``workers`` or ``limit`` below 1, or ``dask`` without
        ``scheduler``.
    StorageError
        The records cannot be opened.
    """
    _check_options(executor=executor, workers=workers, limit=limit, scheduler=scheduler)
    settings = settings or get_settings()
    t0 = time.perf_counter()
    tasks = _stale_tasks(settings, since=since, area_id=area_id, limit=limit)
    n_workers, stream = _start(
        tasks, settings, executor=executor, workers=workers, scheduler=scheduler
    )
    order = {t.analysis_id: i for i, t in enumerate(tasks)}
    outcomes, interrupted = _collect(
        tasks, stream, show_progress=show_progress, on_result=on_result
    )
    outcomes.sort(key=lambda o: order.get(o.task.analysis_id, len(order)))
    return ReanalysisSummary(
        algorithm_version=ALGORITHM_VERSION,
        executor=executor,
        workers=n_workers,
        planned=len(tasks),
        outcomes=tuple(outcomes),
        seconds=time.perf_counter() - t0,
        interrupted=interrupted,
    )


def _check_options(
    *, executor: str, workers: int | None, limit: int | None, scheduler: str | None
) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if executor == "dask" and not scheduler:
        raise ValueError("executor 'dask' needs scheduler: give --scheduler ADDRESS")


def _stale_tasks(
    settings: Settings, *, since: date | None, area_id: int | None, limit: int | None
) -> list[PairTask]:
    """The pairs to re-run now, in the repository's order (at most ``limit``)."""
    from .storage import open_repository

    repo = open_repository(settings)  # also brings the schema up to date for the workers
    try:
        tasks = find_stale(repo, since=since, area_id=area_id, store_url=settings.store_url)
    finally:
        repo.close()
    if limit is not None:
        tasks = tasks[:limit]
    return tasks


def _start(
    tasks: Sequence[PairTask],
    settings: Settings,
    *,
    executor: str,
    workers: int | None,
    scheduler: str | None,
) -> tuple[int, Iterator[PairOutcome]]:
    """The executor's worker count and its stream of outcomes (lazy: nothing runs yet)."""
    if executor == "serial":
        return 1, _run_serial(tasks, settings)
    if executor == "local":
        n_workers = min(workers or default_workers(), max(1, len(tasks)))
        return n_workers, _run_local(tasks, settings, n_workers)
    assert scheduler is not None
    n_workers = _dask_workers(scheduler)
    return n_workers, _run_dask(tasks, scheduler)


def _collect(
    tasks: Sequence[PairTask],
    stream: Iterator[PairOutcome],
    *,
    show_progress: bool,
    on_result: OnResult | None,
) -> tuple[list[PairOutcome], bool]:
    """Outcomes as they finish, with the progress bar: (outcomes, interrupted)."""
    from tqdm import tqdm

    outcomes: list[PairOutcome] = []
    interrupted = True
    bar = tqdm(
        total=len(tasks),
        desc=f"re-analysing to {ALGORITHM_VERSION}",
        unit="pair",
        file=sys.stderr,
        disable=not show_progress,
        dynamic_ncols=True,
    )
    try:
        if tasks:
            for result in stream:
                outcomes.append(result)
                bar.update(1)
                if result.status == "failed":
                    bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes))
                if on_result is not None:
                    on_result(result)
        interrupted = False
    except KeyboardInterrupt:
        # Finished pairs are committed already; report them and let the caller resume later.
        bar.write(
            f"interrupted: {len(outcomes)} of {len(tasks)} pairs finished and saved; "
            "run again to resume",
            file=sys.stderr,
        )
    finally:
        if hasattr(stream, "close"):
            stream.close()  # runs the executor's clean-up (cancel queued work)
        bar.close()
    return outcomes, interrupted
