"""The ``vein-tracker`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func``. ``func``
takes the parsed arguments and returns an exit status.

Exit statuses: 0 success; 1 unexpected failure; 2 bad input (unreadable photo,
bad arguments); 3 the pair cannot be registered; 4 access or consent refused;
5 storage failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import VeinTrackerError

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "register",
    "segment",
    "analyze",
    "records",
    "export",
    "report",
    "reanalyze",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vein-tracker",
        description="Track sclerotherapy of leg spider veins from photos.",
    )
    parser.add_argument("--version", action="version", version=f"vein-tracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if any("\x00" in a for a in args_list):
        # No file name or option value can contain NUL; refuse before touching any file.
        print(
            "vein-tracker: an argument contains a NUL character; check the file names.",
            file=sys.stderr,
        )
        return 2
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help/--version
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except VeinTrackerError as exc:
        print(f"vein-tracker: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vein-tracker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
