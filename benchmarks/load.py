"""Load: concurrent browser-less app sessions doing upload, analyse and view.

Each session is a ``streamlit.testing.v1.AppTest`` of ``app.py`` in its own thread,
signed in as its own aesthetician account and working on its own client: it uploads a
new follow-up photo on the Visit page, opens the Review page (which analyses the
newest pair) and saves the result, then views the Progress page, until the time is up
(or ``--max-rounds`` is reached); every session does at least one round, however long
signing in took on a busy machine. Afterwards the records are checked: every upload a
session saw confirmed is stored under that session's client with its bytes intact, each
saved analysis compares that client's own photos, and nothing else is there (nothing
lost, nothing mixed between sessions).

A one-session run of the same work comes first in the same process: the table gives
both and the ratio. Server memory is this process's resident set (AppTest runs the
app in-process).

Usage: ``python benchmarks/load.py [--sessions 20] [--minutes 5] [--max-rounds N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
PASSWORD = "load-test-password-1"
SHAPE = (480, 640)


def _rss_mb() -> float:
    """Resident memory of this process, MB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _photo(leg_seed: int, *, followup: int | None = None) -> bytes:
    """The baseline of phantom leg ``leg_seed``, or its follow-up taken with capture
    number ``followup`` (a new framing each time, so every upload has new bytes)."""
    from vein_tracker import synthetic
    from vein_tracker.io import encode_image

    capture_seed = leg_seed if followup is None else leg_seed * 1000 + followup
    pair = synthetic.make_pair(
        leg_seed,
        shape=SHAPE,
        # A careful re-take (the app's ghost overlay helps): small pose changes only.
        capture=synthetic.random_capture(
            capture_seed, rotation_deg=4, scale=0.04, translate=0.03, blur_sigma=(0.0, 0.3)
        ),
    )
    return encode_image((pair.baseline if followup is None else pair.followup).rgb, quality=90)


def _share_runtime_between_threads() -> None:
    """Let AppTests run in parallel threads.

    ``AppTest.run`` installs a mock ``Runtime`` singleton for its run and clears it at
    the end, so a run finishing in one thread would pull the runtime from under a run
    in another. Benchmark-only shim: fall back to the last runtime seen instead of
    raising. The app code is unchanged; a real server has one runtime for all sessions.
    """
    from streamlit.runtime import Runtime

    last: list[Any] = []

    def instance(cls: type[Runtime]) -> Runtime:
        if cls._instance is not None:
            last[:] = [cls._instance]
            return cls._instance
        if last:
            return last[0]
        raise RuntimeError("Runtime hasn't been created!")

    def exists(cls: type[Runtime]) -> bool:
        return cls._instance is not None or bool(last)

    Runtime.instance = classmethod(instance)  # type: ignore[method-assign, assignment]
    Runtime.exists = classmethod(exists)  # type: ignore[method-assign, assignment]

    # Each AppTest run compiles the scripts in a fresh ScriptCache; CPython 3.11's AST
    # builder is not safe across threads ("AST constructor recursion depth mismatch").
    # A server shares one cache (with its lock); here one lock stands in for it.
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    compile_lock = threading.Lock()
    original = ScriptCache.get_bytecode

    def get_bytecode(self: ScriptCache, script_path: str) -> Any:
        with compile_lock:
            return original(self, script_path)

    ScriptCache.get_bytecode = get_bytecode  # type: ignore[method-assign]

    # AppTest patches ``config.get_option`` (global.appTest=True) around each run and
    # restores it after: with runs overlapping in threads, one run's exit unpatches
    # another, whose selectboxes then miss their registered format functions (KeyError
    # on "$$ID-...-<key>"). Keep the option patched for the whole benchmark instead.
    import contextlib

    import streamlit.testing.v1.app_test as app_test_module
    from streamlit import config
    from streamlit.testing.v1.util import build_mock_config_get_option

    config.get_option = build_mock_config_get_option({"global.appTest": True})  # type: ignore[assignment]
    app_test_module.patch_config_options = lambda overrides: contextlib.nullcontext()  # type: ignore[assignment, return-value]


@dataclasses.dataclass(frozen=True)
class SessionSetup:
    index: int
    username: str
    client_id: int
    area_id: int
    baseline_id: int


def seed(data_dir: Path, sessions: int) -> list[SessionSetup]:
    """One aesthetician account and one client (area, baseline, visit) per session."""
    from vein_tracker.config import get_settings
    from vein_tracker.storage import (
        SYSTEM_ACTOR,
        Passwords,
        Screening,
        fast_test_hasher,
        open_repository,
    )

    settings = dataclasses.replace(
        get_settings(),
        data_dir=data_dir,
        db_url=f"sqlite:///{data_dir / 'vein_tracker.db'}",
        encryption_key=None,
    )
    repo = open_repository(settings, passwords=Passwords(fast_test_hasher()))
    out = []
    try:
        repo.create_user(SYSTEM_ACTOR, "load.admin", PASSWORD, "admin")
        for i in range(sessions):
            name = f"load.staff{i}"
            repo.create_user(SYSTEM_ACTOR, name, PASSWORD, "aesthetician")
            staff = repo.authenticate(name, PASSWORD)
            c = repo.create_client(staff, name=f"Load Client {i:02d}", screening=Screening())
            repo.record_consent(
                staff, c.id, kind="treatment_photography", signed_at=date.today() - timedelta(60)
            )
            area = repo.create_area(staff, c.id, side="left", view="posterior", region="calf")
            v1 = repo.create_visit(
                staff, c.id, visit_date=date.today() - timedelta(28), area_ids=[area.id]
            )
            base = repo.add_photo(staff, area.id, v1.id, _photo(1000 + i))
            repo.create_visit(staff, c.id, visit_date=date.today(), area_ids=[area.id])
            out.append(SessionSetup(i, name, c.id, area.id, base.id))
    finally:
        repo.close()
    return out


@dataclasses.dataclass
class SessionLog:
    """What one session did and saw."""

    setup: SessionSetup
    uploaded: list[str] = dataclasses.field(default_factory=list)  # sha256 confirmed
    saved_rounds: int = 0
    review_s: list[float] = dataclasses.field(default_factory=list)
    rounds: int = 0
    refused: int = 0  # pairs the app declined to analyse (registration), shown clearly
    harness_retries: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def _run_session(log: SessionLog, deadline: float, max_rounds: int) -> None:
    from streamlit.testing.v1 import AppTest

    s = log.setup
    try:
        at = AppTest.from_file(str(APP), default_timeout=600)
        at.run()
        at.text_input[0].input(s.username)
        at.text_input[1].input(PASSWORD)
        at.button[0].click()
        at.run()
        _check(at, log, "sign in")
        # The first round always runs: with many sessions on few cores, signing in alone
        # can take longer than the time given, and a session that did nothing checks
        # nothing.
        while log.rounds < max_rounds and (log.rounds == 0 or time.monotonic() < deadline):
            try:
                _round(at, log)
            except KeyError as exc:
                # AppTest keeps each run's selectbox format functions in its own session
                # store; with several AppTests in threads a run can miss one. That is a
                # harness artefact (a server keeps one store per session): retry the
                # round, count it, and give up after 3.
                log.harness_retries += 1
                if log.harness_retries > 3:
                    raise
                del exc
    except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure, then checks
        log.errors.append(f"{type(exc).__name__}: {exc}")


def _round(at: Any, log: SessionLog) -> None:
    """One round: upload a follow-up, review (analyse) and save it, view progress."""
    s = log.setup
    n = log.rounds
    data = _photo(1000 + s.index, followup=n + 1)
    at.switch_page("vein_tracker/ui/visit.py")
    at.run()
    at.selectbox(key="vt_client_select").set_value(s.client_id)
    at.run()
    at.file_uploader[0].set_value([(f"s{s.index}-{n}.jpg", data, "image/jpeg")])
    at.run()
    # Issue 24: photos are checked (thumbnail, capture report) before they are stored.
    next(b for b in at.button if b.label == "Check photos").click()
    at.run()
    next(b for b in at.button if b.label == "Store the photos kept").click()
    at.run()
    _check(at, log, "upload")
    if not at.error:
        log.uploaded.append(hashlib.sha256(data).hexdigest())
    t0 = time.perf_counter()
    at.switch_page("vein_tracker/ui/review.py")
    at.run()
    # The follow-up choice is kept between visits of the page: pick the newest.
    follow = [sb for sb in at.selectbox if sb.key == f"r_followup_{s.area_id}"]
    if follow and follow[0].index != 0:
        follow[0].select_index(0)
        at.run()
    log.review_s.append(time.perf_counter() - t0)
    _check(at, log, "review")
    save = [b for b in at.button if b.key == "r_save"]
    if save:
        save[0].click()
        at.run()
        _check(at, log, "save")
        if any("Result saved" in str(x.value) for x in at.success):
            log.saved_rounds += 1
    at.switch_page("vein_tracker/ui/progress.py")
    at.run()
    _check(at, log, "progress")
    log.rounds += 1


def _check(at: Any, log: SessionLog, step: str) -> None:
    if at.exception:
        log.errors.append(f"{step}: {[e.value for e in at.exception][:1]}")
    for e in at.error:
        if step in ("review", "save") and "features" in str(e.value):
            log.refused += 1  # a RegistrationError shown as a message: correct behaviour
        else:
            log.errors.append(f"{step}: error shown: {e.value}")


@dataclasses.dataclass(frozen=True)
class LoadResult:
    sessions: int
    seconds: float
    rounds: int
    uploads: int
    analyses_saved: int
    review_median_s: float
    review_p95_s: float
    rss_mb: float
    lost: int
    mixed: int
    refused: int
    harness_retries: int
    errors: tuple[str, ...]

    @property
    def throughput_per_min(self) -> float:
        return 60.0 * self.rounds / self.seconds if self.seconds else 0.0


def verify(data_dir: Path, logs: list[SessionLog]) -> tuple[int, int]:
    """(lost, mixed): confirmed uploads missing from their client; records of another."""
    from vein_tracker.config import get_settings
    from vein_tracker.storage import SYSTEM_ACTOR, open_repository

    settings = dataclasses.replace(
        get_settings(),
        data_dir=data_dir,
        db_url=f"sqlite:///{data_dir / 'vein_tracker.db'}",
        encryption_key=None,
    )
    repo = open_repository(settings)
    lost = mixed = 0
    try:
        for log in logs:
            s = log.setup
            photos = repo.list_photos(SYSTEM_ACTOR, client_id=s.client_id)
            by_sha = {p.sha256: p for p in photos}
            for sha in log.uploaded:
                p = by_sha.get(sha)
                if (
                    p is None
                    or p.area_id != s.area_id
                    or hashlib.sha256(repo.get_photo_bytes(SYSTEM_ACTOR, p.id)).hexdigest() != sha
                ):
                    lost += 1
            # Photos of this client that no session of this client uploaded: mixed in.
            expected = {*log.uploaded}
            mixed += sum(1 for p in photos if p.id != s.baseline_id and p.sha256 not in expected)
            own = {p.id for p in photos}
            analyses = repo.list_analyses(SYSTEM_ACTOR, s.area_id, latest_only=False)
            mixed += sum(
                1
                for a in analyses
                if a.baseline_photo_id not in own or a.followup_photo_id not in own
            )
            if len(analyses) < log.saved_rounds:
                lost += log.saved_rounds - len(analyses)
                print(
                    f"lost: session {s.index} saved {log.saved_rounds} analyses, "
                    f"{len(analyses)} stored",
                    file=sys.stderr,
                )
    finally:
        repo.close()
    return lost, mixed


def run(
    *, sessions: int, minutes: float, max_rounds: int = 10**6, data_dir: Path | None = None
) -> LoadResult:
    """Seed a clinic, run ``sessions`` concurrent sessions for ``minutes``, verify it."""
    import os

    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="vt-load-")
        data_dir = Path(tmp.name) / "data"
        data_dir.mkdir()
    os.environ["VEIN_TRACKER_DATA"] = str(data_dir)
    os.environ.pop("VEIN_TRACKER_DB_URL", None)
    os.environ.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)
    try:
        _share_runtime_between_threads()
        setups = seed(data_dir, sessions)
        logs = [SessionLog(s) for s in setups]
        deadline = time.monotonic() + 60.0 * minutes
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=_run_session, args=(log, deadline, max_rounds), daemon=True)
            for log in logs
        ]
        for t in threads:
            t.start()
        peak = [_rss_mb()]
        while any(t.is_alive() for t in threads):
            peak[0] = max(peak[0], _rss_mb())
            for t in threads:
                t.join(timeout=0.5)
        seconds = time.monotonic() - t0
        lost, mixed = verify(data_dir, logs)
        review = sorted(x for log in logs for x in log.review_s)
        p95 = review[min(len(review) - 1, int(0.95 * len(review)))] if review else float("nan")
        return LoadResult(
            sessions=sessions,
            seconds=seconds,
            rounds=sum(log.rounds for log in logs),
            uploads=sum(len(log.uploaded) for log in logs),
            analyses_saved=sum(log.saved_rounds for log in logs),
            review_median_s=statistics.median(review) if review else float("nan"),
            review_p95_s=p95,
            rss_mb=peak[0],
            lost=lost,
            mixed=mixed,
            refused=sum(log.refused for log in logs),
            harness_retries=sum(log.harness_retries for log in logs),
            errors=tuple(e for log in logs for e in log.errors),
        )
    finally:
        if tmp is not None:
            tmp.cleanup()


def _table(rows: list[tuple[str, LoadResult]], emit: Callable[[str], None]) -> None:
    emit(
        f"{'run':<12}{'sessions':>9}{'time s':>8}{'rounds':>8}{'rounds/min':>11}"
        f"{'review med s':>13}{'review p95 s':>13}{'RSS MB':>8}{'refused':>8}{'lost':>6}"
        f"{'mixed':>6}"
    )
    for name, r in rows:
        emit(
            f"{name:<12}{r.sessions:>9}{r.seconds:>8.0f}{r.rounds:>8}{r.throughput_per_min:>11.2f}"
            f"{r.review_median_s:>13.2f}{r.review_p95_s:>13.2f}{r.rss_mb:>8.0f}"
            f"{r.refused:>8}{r.lost:>6}{r.mixed:>6}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--max-rounds", type=int, default=10**6, help="rounds per session at most")
    p.add_argument("--baseline-rounds", type=int, default=2, help="rounds of the 1-session run")
    args = p.parse_args(argv)
    if args.sessions < 1 or args.minutes <= 0:
        p.error("--sessions must be >= 1 and --minutes > 0")
    base = run(sessions=1, minutes=args.minutes, max_rounds=args.baseline_rounds)
    load = run(sessions=args.sessions, minutes=args.minutes, max_rounds=args.max_rounds)
    _table([("1 session", base), (f"{args.sessions} sessions", load)], print)
    print(
        f"AppTest harness retries (see _run_session): {base.harness_retries + load.harness_retries}"
    )
    if base.review_p95_s > 0:
        print(
            f"ratio (load / 1 session): review p95 {load.review_p95_s / base.review_p95_s:.2f}x, "
            f"throughput {load.throughput_per_min / max(base.throughput_per_min, 1e-9):.2f}x"
        )
    for e in (*base.errors, *load.errors)[:20]:
        print("error:", e, file=sys.stderr)
    ok = load.lost == load.mixed == base.lost == base.mixed == 0 and not load.errors
    print("OK: nothing lost or mixed." if ok else "PROBLEMS: see above.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
