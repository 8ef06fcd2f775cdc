"""`vein-tracker export`: consented before/after pairs as a de-identified ZIP.

Runs :func:`vein_tracker.export.run_export` as a marketing or admin account given
with ``--as USERNAME`` (password from ``VEIN_TRACKER_PASSWORD``, or asked on the
terminal), or, without ``--as``, as the local operator (admin rights; audited as
user "system"). The consent checks and the audit events are the same as in the app.

Also holds the sign-in helper the ``report`` command shares.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import VeinTrackerError
from . import CommandParser

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..storage.info import Actor
    from ..storage.repository import Repository

#: Environment variable holding the password of the ``--as`` account.
PASSWORD_ENV = "VEIN_TRACKER_PASSWORD"


class UsageError(VeinTrackerError):
    """Bad command-line input (exit 2)."""

    exit_code = 2


def add_actor_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--as USERNAME`` (password from ``VEIN_TRACKER_PASSWORD`` or a prompt)."""
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USERNAME",
        default=None,
        help=(
            f"act as this account; the password comes from {PASSWORD_ENV} or is asked on "
            "the terminal. Without --as the command runs as the local operator (admin)."
        ),
    )


def resolve_actor(repo: Repository, username: str | None) -> Actor:
    """The acting user: the signed-in ``username``, or the local operator when None."""
    from ..storage import SYSTEM_ACTOR

    if username is None:
        return SYSTEM_ACTOR
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError(
                f"--as {username} needs a password: set {PASSWORD_ENV} or run in a terminal."
            )
        password = getpass.getpass(f"Password for {username}: ")
    return repo.authenticate(username, password)


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = path.expanduser()
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UsageError(f"The folder {str(folder)!r} does not exist: create it or choose --out.")
    fd, tmp = tempfile.mkstemp(prefix=".vt-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from exc
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"opacity must be in (0, 1], got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export consented before/after pairs as a de-identified ZIP",
        description=(
            "Export before/after pairs whose client holds a marketing consent valid today "
            "for the channel, as watermarked composites with no metadata plus manifest.csv. "
            "Needs a marketing or admin account."
        ),
    )
    # The choices live in vein_tracker.export and vein_tracker.storage.info, which pull
    # in numpy, Pillow and SQLAlchemy: they are filled in when this parser is used.
    channel = p.add_argument("--channel", required=True)
    p.add_argument("--out", required=True, type=Path, metavar="PAIRS.zip")
    p.add_argument("--min-improvement", type=float, default=None, metavar="PCT")
    p.add_argument(
        "--area", default=None, help="region (thigh, knee, calf, ankle, foot) or label part"
    )
    p.add_argument("--from", dest="date_from", type=_date, default=None, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_date, default=None, metavar="YYYY-MM-DD")
    layout = p.add_argument("--layout", default="side_by_side")
    colour = p.add_argument("--colour", default="shared_levels")
    p.add_argument("--watermark", default=None, help="text (default: the clinic's name)")
    p.add_argument("--opacity", type=_opacity, default=0.35, help="watermark opacity (0, 1]")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_actor_argument(p)
    p.set_defaults(func=_run)

    def set_choices(_: argparse.ArgumentParser) -> None:
        from ..export import COLOUR_MODES, LAYOUTS
        from ..storage.info import CHANNELS

        channel.choices = CHANNELS
        layout.choices = LAYOUTS
        colour.choices = COLOUR_MODES

    if isinstance(p, CommandParser):
        p.defer(set_choices)
    else:  # a plain argparse parser: no deferred set-up, fill the choices in now
        set_choices(p)


def _run(args: argparse.Namespace) -> int:
    from ..export import run_export
    from ..storage import open_repository

    with open_repository() as repo:
        actor = resolve_actor(repo, args.as_user)
        result = run_export(
            repo,
            actor,
            channel=args.channel,
            min_improvement=args.min_improvement,
            area=args.area,
            date_from=args.date_from,
            date_to=args.date_to,
            watermark=args.watermark,
            watermark_opacity=args.opacity,
            layout=args.layout,
            colour=args.colour,
            filename=Path(args.out).name,
        )
    out = write_atomically(Path(args.out), result.zip_bytes)
    if args.json:
        summary = result.to_dict()
        summary["out"] = str(out)
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"exported {len(result.rows)} pair(s) for {args.channel} to {out}"
            + (f"; {len(result.skipped)} left out" if result.skipped else ""),
            file=sys.stderr,
        )
        for s in result.skipped:
            print(f"  left out {s.label} (pair {s.key}): {s.reason}", file=sys.stderr)
    return 0
