"""`vein-tracker report CLIENT_ID --out report.pdf`: a client's PDF progress report.

Runs :func:`vein_tracker.report.build_report_pdf` as the account given with
``--as USERNAME`` (staff, or the client's own account; password from
``VEIN_TRACKER_PASSWORD`` or asked on the terminal), or, without ``--as``, as the
local operator. The report is audited like a download from the app.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .export import add_actor_argument, resolve_actor, write_atomically


def _client_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"CLIENT_ID must be a number, got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"CLIENT_ID must be positive, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write a client's PDF progress report",
        description=(
            "Write the client's progress report (photos aligned, improvement chart with the "
            "target line, numbers with bands and grade, visits, next appointment, after-care)."
        ),
    )
    p.add_argument("client_id", type=_client_id, metavar="CLIENT_ID")
    p.add_argument("--out", required=True, type=Path, metavar="REPORT.pdf")
    p.add_argument("--json", action="store_true", help="print a summary as JSON on stdout")
    add_actor_argument(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..report import build_report_pdf
    from ..storage import open_repository

    with open_repository() as repo:
        actor = resolve_actor(repo, args.as_user)
        pdf = build_report_pdf(repo, actor, args.client_id)
    out = write_atomically(Path(args.out), pdf)
    if args.json:
        print(json.dumps({"client_id": args.client_id, "out": str(out), "size_bytes": len(pdf)}))
    else:
        print(f"wrote the report of client {args.client_id} to {out}", file=sys.stderr)
    return 0
