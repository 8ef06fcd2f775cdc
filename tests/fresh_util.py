"""Run Python code in a fresh interpreter, with this checkout importable.

For checks about what a process imports, how it is set up or how it ends: the test
session itself has long imported most modules and set its own state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -c code argv...`` in the checkout's root; output captured as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env=env,
    )
