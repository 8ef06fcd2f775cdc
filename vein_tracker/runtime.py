"""Set-up for a process that runs one analysis and exits (``vein-tracker analyze``).

A comparison allocates and frees several hundred megabytes of image buffers.
glibc's ``malloc`` serves large buffers with ``mmap`` and gives them back on
``free``, so every new buffer starts as fresh pages that the kernel must fault in
and zero: on a 3 MP pair that was ~120 000 page faults and 0.5–1 s of system time.
A process that exits after one comparison gains nothing from handing memory back,
so :func:`prepare_one_shot_process` asks ``malloc`` to keep freed memory for
reuse (one arena, no ``mmap``, no trimming). It also turns off NumPy's request for
transparent huge pages on large arrays (``NUMPY_MADVISE_HUGEPAGE=0``, when NumPy is
not imported yet): where the kernel compacts memory to serve such a request, each
2 MB page is found and zeroed on first touch, and a process that touches its memory
once pays that in full (measured: 0.7 s of system time per 3 MP comparison with them,
0.4 s without, and ~0.17 s less wall time on 2 cores). It also builds OpenCV's colour-
conversion tables (~0.1 s, built on first use) and imports the NumPy submodules an
analysis loads on first use, on a spare core while the photos decode.

Long-running processes (the app, the re-analysis workers) keep the default
allocator, which returns memory to the system between analyses. When the command is
done, :func:`exit_now` ends the process without the interpreter's teardown.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from typing import NoReturn

# glibc <malloc.h> parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_KEEP = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` reuse freed memory instead of returning it.

    Must run before the process starts other threads (each thread's first
    allocation picks its arena). Returns whether every setting was accepted; on
    a C library without glibc's ``mallopt`` (macOS, musl) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _KEEP)


def _warm_up() -> None:
    import cv2
    import numpy as np

    # Any CIELAB conversion builds all of OpenCV's colour tables (sRGB gamma, Lab).
    cv2.cvtColor(np.zeros((1, 1, 3), np.float32), cv2.COLOR_RGB2Lab)
    # NumPy imports these on first use: np.median checks for masked arrays (numpy.ma),
    # and the band's bootstrap draws from numpy.random.
    import numpy.ma
    import numpy.random  # noqa: F401

    # The library functions the analysis imports where it first calls them (thinning,
    # hole filling, bilinear sampling, CIEDE2000): importing scikit-image and SciPy
    # takes ~0.7 s of CPU, here off the analysis' path.
    from scipy.ndimage import binary_fill_holes, map_coordinates  # noqa: F401
    from skimage.color import deltaE_ciede2000, rgb2lab  # noqa: F401
    from skimage.morphology import skeletonize  # noqa: F401


def warm_up_in_background() -> threading.Thread:
    """Build OpenCV's colour-conversion tables and import the NumPy parts an analysis
    loads on first use, in a daemon thread; returns the thread."""
    thread = threading.Thread(target=_warm_up, name="warm-up", daemon=True)
    thread.start()
    return thread


def no_huge_pages_for_numpy() -> bool:
    """Ask NumPy not to request transparent huge pages for its arrays (see the module
    docstring). Only possible before NumPy is imported; returns whether it took effect
    (``False`` when NumPy is already imported, or the caller set
    ``NUMPY_MADVISE_HUGEPAGE`` themselves)."""
    if "numpy" in sys.modules or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    return True


def prepare_one_shot_process() -> None:
    """Process set-up for a command that runs one analysis and exits."""
    no_huge_pages_for_numpy()
    keep_freed_memory()
    warm_up_in_background()


def exit_now(status: int) -> NoReturn:
    """End a one-shot process: flush stdout and stderr, then exit without the
    interpreter's teardown (~50 ms of freeing arrays and modules the system reclaims
    anyway). Only for a process whose work is done: its files closed and its threads
    joined."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    os._exit(status)
