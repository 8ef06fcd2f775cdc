"""Argument checks shared by the image-analysis modules: one rule per kind of argument.

Each check raises ``ValueError`` naming the parameter and the fix, and returns the
value in the form the caller works with. Nothing here converts an image: that is
:mod:`vein_tracker.io`'s job (``io.as_rgb``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The scales a photo of a treatment area can have, pixels per millimetre. 0.5 px/mm
#: is a 200 mm field on a 100 px wide thumbnail, 200 px/mm a 20 mm close-up on a 4000 px
#: sensor; a value outside is a unit mistake (px/cm, px/inch) or a typo.
PX_PER_MM_RANGE = (0.5, 200.0)


def check_px_per_mm(px_per_mm: Any, *, name: str = "px_per_mm") -> float:
    """A scale in pixels per millimetre, as a float.

    Parameters
    ----------
    px_per_mm : float
        Must be a finite number within :data:`PX_PER_MM_RANGE`.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``None``, not a number, or outside :data:`PX_PER_MM_RANGE`.
    """
    if px_per_mm is None:
        raise ValueError(
            f"{name} must be given in pixels per millimetre; use "
            "segmentation.estimate_px_per_mm(photo) when it is not known"
        )
    if isinstance(px_per_mm, bool) or not isinstance(px_per_mm, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {type(px_per_mm).__name__}")
    lo, hi = PX_PER_MM_RANGE
    value = float(px_per_mm)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(
            f"{name} must be between {lo} and {hi:.0f} pixels per millimetre, got {px_per_mm!r}; "
            "leave it unset to estimate it from the photo"
        )
    return value


def check_mask(mask: Any, *, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A bool mask of a given shape, returned as it is (never converted).

    Parameters
    ----------
    mask : ndarray, shape ``shape``, dtype bool
    shape : tuple of int
        ``(H, W)`` of the image the mask belongs to.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    ndarray, dtype bool
        ``mask`` itself.

    Raises
    ------
    ValueError
        Not an ndarray, not bool, or not of ``shape``.
    """
    if not isinstance(mask, np.ndarray):
        raise ValueError(
            f"{name} must be a bool ndarray of shape {tuple(shape)}, got {type(mask).__name__}"
        )
    if mask.dtype != bool:
        raise ValueError(f"{name} must be a bool mask, got dtype {mask.dtype}; use `{name} > 0`")
    if mask.shape != tuple(shape):
        raise ValueError(
            f"{name} must have the image's shape {tuple(shape)} (H, W), got {mask.shape}; "
            "draw it on the upright photo, or resize it to the photo"
        )
    return mask
