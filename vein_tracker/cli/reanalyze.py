"""`vein-tracker reanalyze`: re-run stored analyses made with an older algorithm.

Runs as the local operator, like the records commands (``SYSTEM_ACTOR``: no sign-in,
whoever can run it can read the data folder anyway); every saved result is audited as
``analysis_save`` by user "system". All work goes through :mod:`vein_tracker.reanalyze`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from .. import ALGORITHM_VERSION


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reanalyze",
        help=f"re-run analyses made with an algorithm older than {ALGORITHM_VERSION}",
        description=(
            "Re-analyse every stored pair whose algorithm version is older than the current "
            f"one ({ALGORITHM_VERSION}). New results are stored next to the old ones; each "
            "finished pair is saved at once, so an interrupted run resumes where it stopped."
        ),
    )
    p.add_argument(
        "--since",
        type=_date,
        default=None,
        metavar="DATE",
        help="only pairs whose follow-up visit is on or after DATE (YYYY-MM-DD)",
    )
    p.add_argument("--area", type=_positive, default=None, metavar="ID", help="one treatment area")
    p.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="processes of the local pool (default: every core)",
    )
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local: a process pool on this machine; dask: an existing dask cluster",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask scheduler address, e.g. tcp://host:8786 (with --executor dask)",
    )
    p.add_argument(
        "--limit", type=_positive, default=None, metavar="N", help="re-run at most N pairs now"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import VeinTrackerError
    from ..reanalyze import reanalyze

    if args.executor == "dask" and not args.scheduler:
        print("vein-tracker: --executor dask needs --scheduler ADDRESS", file=sys.stderr)
        return 2
    if args.executor != "dask" and args.scheduler:
        print("vein-tracker: --scheduler is used with --executor dask only", file=sys.stderr)
        return 2
    try:
        summary = reanalyze(
            since=args.since,
            area_id=args.area,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            limit=args.limit,
            show_progress=not args.no_progress,
        )
    except OSError as exc:  # e.g. the dask scheduler cannot be reached
        raise VeinTrackerError(f"The batch could not start: {exc}") from exc
    if args.json:
        print(json.dumps(summary.to_dict(), indent=1, default=str))
    else:
        print(
            f"Re-analysed {summary.done} of {summary.planned} stale pairs to algorithm "
            f"{summary.algorithm_version} in {summary.seconds:.1f} s "
            f"({summary.executor}, {summary.workers} workers, "
            f"{summary.pairs_per_minute:.1f} pairs/min); {summary.skipped} already current, "
            f"{summary.failed} failed."
        )
    for o in summary.outcomes:
        if o.status == "failed":
            print(
                f"  pair {o.task.baseline_photo_id}->{o.task.followup_photo_id} "
                f"not re-analysed: {o.error}",
                file=sys.stderr,
            )
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
