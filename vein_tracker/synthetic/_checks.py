"""Input checks and seeded generators shared by the phantom modules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vein_tracker.synthetic._model import FRAME_WIDTH_MM


def _check_shape(shape: Any, name: str = "shape") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width) in px, got {shape!r}") from None
    if h < 64 or w < 64 or (h, w) != tuple(shape):
        raise ValueError(f"{name} must be two integers ≥ 64 (height, width), got {shape!r}")
    return h, w


def _check_fraction(value: float, name: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _check_range(
    value: float | tuple[float, float], name: str, lo: float, hi: float
) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        a = b = float(value)
    else:
        try:
            a, b = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (low, high) pair") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} ≤ low ≤ high ≤ {hi}, got {value!r}")
    return a, b


def _check_nonneg(value: float, name: str, hi: float = math.inf) -> float:
    v = float(value)
    if not (0.0 <= v <= hi) or math.isnan(v):
        raise ValueError(f"{name} must be in [0, {hi}], got {value!r}")
    return v


def default_px_per_mm(shape: tuple[int, int]) -> float:
    """Default scale for a frame: the width spans 200 mm (2000 px wide → 10 px/mm).

    Parameters
    ----------
    shape : (int, int)
        (H, W) px.

    Returns
    -------
    float
        px per mm.
    """
    _, w = _check_shape(shape)
    return w / FRAME_WIDTH_MM


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _rng(seed: int, tag: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), tag])
