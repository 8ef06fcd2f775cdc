"""`vein-tracker serve`: start the Streamlit app (``app.py``) on a local port.

Runs ``python -m streamlit run app.py`` in a child process with usage statistics off
and the server bound to the given address. The app file is looked up next to the
package (a source checkout) and then in the current folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import VeinTrackerError

_APP = "app.py"


def find_app() -> Path:
    """Path of ``app.py``: beside the ``vein_tracker`` package, else in the working folder.

    Raises
    ------
    VeinTrackerError
        When neither place has it (an installed wheel without the source checkout).
    """
    candidates = [Path(__file__).resolve().parents[2] / _APP, Path.cwd() / _APP]
    for path in candidates:
        if path.is_file():
            return path
    raise VeinTrackerError(
        "app.py was not found beside the vein_tracker package or in this folder: "
        "run `vein-tracker serve` from the vein_tracker checkout."
    )


def streamlit_command(app: Path, *, port: int, address: str) -> list[str]:
    """The command line that serves ``app`` (headless, no usage statistics)."""
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless=true",
        f"--server.address={address}",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        # No "Deploy" button or developer menu for clinic users.
        "--client.toolbarMode=minimal",
    ]


def _run(args: argparse.Namespace) -> int:
    try:
        cmd = streamlit_command(find_app(), port=args.port, address=args.address)
    except ValueError as exc:
        print(f"vein-tracker: {exc}", file=sys.stderr)
        return 2
    print(f"vein_tracker: open http://{args.address}:{args.port}", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="start the web app (Streamlit) on a local port")
    p.add_argument("--port", type=int, default=8501, help="TCP port (default 8501)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only)",
    )
    p.set_defaults(func=_run)
