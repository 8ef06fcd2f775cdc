"""Process set-up of the one-shot analysis commands (``vein_tracker.runtime``).

The allocator settings change the process they run in, so every check that applies
them runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import platform
import sys

import pytest

from tests.fresh_util import run_fresh

_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


_FAULTS = """
import json, resource, sys
import numpy as np
from vein_tracker import runtime
kept = runtime.keep_freed_memory() if sys.argv[1] == "keep" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones((1500, 2000, 3), np.float32)  # 36 MB: above glibc's largest mmap threshold
    total = float(a[::97, ::89].sum())
    del a
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
json.dump({"kept": kept, "faults": after - before, "total": total}, sys.stdout)
"""


@pytest.mark.skipif(not _GLIBC, reason="mallopt settings are glibc's")
def test_keep_freed_memory_reuses_buffers_instead_of_faulting_them_in_again() -> None:
    plain = run_fresh(_FAULTS, "plain")
    kept = run_fresh(_FAULTS, "keep")
    assert plain.returncode == 0, plain.stderr
    assert kept.returncode == 0, kept.stderr
    p, k = json.loads(plain.stdout), json.loads(kept.stdout)
    assert k["kept"] is True
    assert p["total"] == k["total"]
    # By default each 36 MB buffer is a fresh mapping whose pages fault in again (20 x 9216
    # pages of 4 KiB, fewer with huge pages); kept, the freed buffer is reused.
    assert k["faults"] < p["faults"] / 3, (p, k)


def test_keep_freed_memory_says_whether_it_applied() -> None:
    probe = run_fresh("from vein_tracker import runtime; print(runtime.keep_freed_memory())")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(_GLIBC)


_HUGE = """
import json, os, sys
os.environ.pop("NUMPY_MADVISE_HUGEPAGE", None)
mode = sys.argv[1]
if mode == "caller-set":
    os.environ["NUMPY_MADVISE_HUGEPAGE"] = "1"
if mode == "numpy-first":
    import numpy
from vein_tracker import runtime
took = runtime.no_huge_pages_for_numpy()
import numpy as np
a = np.ones((1500, 2000, 3), np.float32)  # arrays work as before
json.dump({"took": took, "madvise": bool(np._core.multiarray._get_madvise_hugepage()),
           "sum": float(a.sum())}, sys.stdout)
"""


@pytest.mark.parametrize(
    ("mode", "took", "madvise"),
    [
        ("fresh", True, False),  # before NumPy is imported: its huge-page requests are off
        ("numpy-first", False, True),  # too late: NumPy keeps its default
        ("caller-set", False, True),  # the caller's own setting wins
    ],
)
def test_no_huge_pages_for_numpy_only_before_numpy_and_never_over_the_caller(
    mode: str, took: bool, madvise: bool
) -> None:
    probe = run_fresh(_HUGE, mode)
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    assert got["took"] is took
    if sys.platform == "linux":  # elsewhere NumPy's default does not depend on the kernel
        assert got["madvise"] is madvise
    assert got["sum"] == 1500 * 2000 * 3


_WARM = """
import json, sys
import numpy as np
import cv2
from vein_tracker import runtime
thread = None
if sys.argv[1] == "warm":
    thread = runtime.warm_up_in_background()
    thread.join(timeout=60)
loaded = {m: m in sys.modules for m in ("numpy.ma", "numpy.random")}
rgb = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
json.dump({"loaded": loaded, "lab": lab.tolist(),
           "alive": thread is not None and thread.is_alive(),
           "daemon": thread is None or thread.daemon}, sys.stdout)
"""


def test_warm_up_loads_what_an_analysis_loads_first_and_leaves_results_unchanged() -> None:
    """In a fresh process, the warm-up imports the NumPy parts an analysis loads on first
    use (a cold process has not), and the colour tables it builds give the conversions a
    cold process builds on first use."""
    cold = run_fresh(_WARM, "cold")
    warm = run_fresh(_WARM, "warm")
    assert cold.returncode == 0, cold.stderr
    assert warm.returncode == 0, warm.stderr
    c, w = json.loads(cold.stdout), json.loads(warm.stdout)
    assert c["loaded"] == {"numpy.ma": False, "numpy.random": False}
    assert w["loaded"] == {"numpy.ma": True, "numpy.random": True}
    assert w["alive"] is False
    assert w["daemon"] is True
    assert w["lab"] == c["lab"]


_WHO_PREPARES = """
import contextlib, io, json, sys
import vein_tracker.runtime as runtime
calls = []
exits = []
runtime.prepare_one_shot_process = lambda: calls.append(True)
runtime.exit_now = lambda status: exits.append(status)
from vein_tracker.cli import main
mode, *rest = sys.argv[1:]
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    if mode == "process":
        sys.argv = ["vein-tracker", *rest]
        status = main()
    else:
        status = main(rest)
json.dump({"status": status, "prepared": len(calls), "exits": exits}, sys.stdout)
"""


@pytest.mark.parametrize(
    ("mode", "argv", "prepared"),
    [
        # the process is the command: one-shot set-up for an analysis command
        ("process", ("analyze", "missing-a.jpg", "missing-b.jpg"), 1),
        ("process", ("segment", "missing-a.jpg"), 1),
        # other commands keep the default allocator
        ("process", ("records", "users", "--help"), 0),
        # a caller's process running main([...]) is left as it is
        ("call", ("analyze", "missing-a.jpg", "missing-b.jpg"), 0),
    ],
)
def test_only_a_process_that_is_an_analysis_command_is_set_up(
    mode: str, argv: tuple[str, ...], prepared: int
) -> None:
    probe = run_fresh(_WHO_PREPARES, mode, *argv)
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)
    assert got["prepared"] == prepared
    # a one-shot process ends through exit_now, with the command's own status
    assert got["exits"] == ([got["status"]] if prepared else [])
    if argv[0] == "analyze":
        assert got["status"] == 2  # the photos do not exist: bad input, as before


def test_exit_now_flushes_what_was_written_and_keeps_the_status() -> None:
    code = (
        "import sys; from vein_tracker import runtime; "
        "sys.stdout.write('x' * 200000); sys.stderr.write('done'); runtime.exit_now(3)"
    )
    proc = run_fresh(code)
    assert proc.returncode == 3
    assert proc.stdout == "x" * 200000
    assert proc.stderr == "done"
