"""The ``vein-tracker`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func``. ``func``
takes the parsed arguments and returns an exit status.

Building the parser must stay cheap: every run (``--version`` included) builds all
of it. Sub-command modules import only the standard library and light
``vein_tracker`` modules (errors, config) at module level; numpy, Pillow, the
storage layer (SQLAlchemy), export, report and the image analysis are imported
inside ``func``. A parser that needs values from a heavy module (option choices)
fills them in with :meth:`CommandParser.defer`, which runs on first use of that
sub-command's parser.

Exit statuses: 0 success; 1 unexpected failure; 2 bad input (unreadable photo,
bad arguments); 3 the pair cannot be registered; 4 access or consent refused;
5 storage failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

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
    "agreement",  # issue 22 (H5): agreement of blinded ratings
    "card",  # issue 21 (H4): the printed scale-and-colour card
    "serve",
)


class CommandParser(argparse.ArgumentParser):
    """A sub-command parser that can finish its set-up on first use.

    ``defer(setup)`` queues ``setup(parser)``; the queue runs before the parser
    parses, formats its help or usage. A command uses it to take option choices from
    a heavy module without importing that module whenever any parser is built.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[argparse.ArgumentParser], None]] = []

    def defer(self, setup: Callable[[argparse.ArgumentParser], None]) -> None:
        """Run ``setup(self)`` before this parser is first used."""
        self._deferred.append(setup)

    def complete(self) -> None:
        """Run the queued set-up now (idempotent)."""
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self.complete()
        return super().parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vein-tracker",
        description="Track sclerotherapy of leg spider veins from photos.",
    )
    parser.add_argument("--version", action="version", version=f"vein-tracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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
    one_shot = argv is None and getattr(args, "one_shot_analysis", False)
    if one_shot:
        # This process is the command and exits after one analysis (not a caller's
        # process that runs ``main([...])``): keep freed memory, warm OpenCV up.
        from .. import runtime

        runtime.prepare_one_shot_process()
    try:
        status = int(args.func(args))
    except VeinTrackerError as exc:
        print(f"vein-tracker: {exc}", file=sys.stderr)
        status = exc.exit_code
    except KeyboardInterrupt:
        print("vein-tracker: interrupted", file=sys.stderr)
        status = 130
    if one_shot:
        runtime.exit_now(status)  # its output flushed; no teardown of a finished process
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
