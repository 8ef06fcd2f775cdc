"""Where one skin surface lies over another inside the leg skin (a crossing leg, a hand):
the edges seen there (:func:`_occluding_edges`), which the segmentation treats as
outlines.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..morphology import components, dilate_disc
from .params import (
    _OCCLUDING_BOW,
    _OCCLUDING_CLEAR_MM,
    _OCCLUDING_HALF_WIDTH_MM,
    _OCCLUDING_HI_OD_PER_MM,
    _OCCLUDING_JUNCTION_MM,
    _OCCLUDING_LO_OD_PER_MM,
    _OCCLUDING_NEAR_MM,
    _OCCLUDING_REACH_MM,
    _OCCLUDING_SHARP_MM,
    _OCCLUDING_SHARP_RATIO,
    _OCCLUDING_SHARP_WITHIN_MM,
    _OCCLUDING_SIGMA_MM,
    _OCCLUDING_SPAN_MM,
    _OCCLUDING_STEP_FRAC,
)


def _occluding_edges(
    od: np.ndarray, leg: np.ndarray, ppm_work: float, coarse_size: tuple[int, int]
) -> np.ndarray:
    """Where one skin surface lies over another in the leg (a crossing leg, a hand): the
    edges, widened by :data:`~.params._OCCLUDING_HALF_WIDTH_MM`, as (H0, W0) bool at the
    working level of ``od`` (H0, W0, 3) and ``leg`` (H0, W0) bool.

    Found at the coarse level ``coarse_size`` (w, h) on the mean OD of the three
    channels, smoothed within the leg, as the steps :mod:`.params` describes
    (``_OCCLUDING_*``): Canny's non-maximum suppression and hysteresis on the gradient,
    then each chain's sharpness, span, bow and T-junction with the leg's outline.
    """
    h0, w0 = leg.shape
    w, h = coarse_size
    p = ppm_work * w / w0  # px per mm at the coarse level
    leg_c = cv2.resize(leg.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    mean_od = cv2.resize(od.mean(axis=2, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)

    def smoothed(sigma_mm: float) -> np.ndarray:
        den = cv2.GaussianBlur(leg_c, (0, 0), sigma_mm * p)
        return np.asarray(cv2.GaussianBlur(mean_od * leg_c, (0, 0), sigma_mm * p)) / np.maximum(
            den, 1e-3
        )

    def gradient(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d/dx and d/dy in OD per mm."""
        return (
            cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) * (p / 8.0),
            cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) * (p / 8.0),
        )

    s = smoothed(_OCCLUDING_SIGMA_MM)
    gx, gy = gradient(s)
    g = np.hypot(gx, gy)
    dx, dy = gx / np.maximum(g, 1e-9), gy / np.maximum(g, 1e-9)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def along(img: np.ndarray, t_mm: float) -> np.ndarray:
        """``img`` read ``t_mm`` along the gradient's direction from every pixel."""
        t = np.float32(t_mm * p)
        return np.asarray(cv2.remap(img, xx + dx * t, yy + dy * t, cv2.INTER_LINEAR))

    dist_out = cv2.distanceTransform((leg_c > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / p
    # The step is read _OCCLUDING_REACH_MM either side, within the frame: near the
    # frame's edge the leg's own outline may lie just beyond it.
    to_frame = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy)) / p
    peak = (
        (g >= along(g, 1.0 / p))
        & (g >= along(g, -1.0 / p))
        & (dist_out > _OCCLUDING_CLEAR_MM)
        & (to_frame > _OCCLUDING_REACH_MM)
    )
    # Still a step farther out, by as much as the gradient says: not a ridge's flank.
    far = along(s, _OCCLUDING_REACH_MM) - along(s, -_OCCLUDING_REACH_MM)
    near = along(s, _OCCLUDING_NEAR_MM) - along(s, -_OCCLUDING_NEAR_MM)
    expected = g * math.sqrt(2.0 * math.pi) * _OCCLUDING_SIGMA_MM
    step = peak & (far >= _OCCLUDING_STEP_FRAC * np.maximum(expected, near))
    # The fine gradient along the coarse one, at its best close across the chain.
    fx, fy = gradient(smoothed(_OCCLUDING_SHARP_MM))
    fine = fx * dx + fy * dy
    reach = _OCCLUDING_SHARP_WITHIN_MM
    fine_best = np.max([along(fine, t) for t in np.linspace(-reach, reach, 7)], axis=0)

    chains = components(step & (g >= _OCCLUDING_LO_OD_PER_MM))
    keep = np.zeros(chains.n, bool)
    keep[np.unique(chains.labels[step & (g >= _OCCLUDING_HI_OD_PER_MM)])] = True
    keep[0] = False
    ratio = fine_best.reshape(-1)[chains.idx] / np.maximum(g.reshape(-1)[chains.idx], 1e-9)
    sharp = np.bincount(chains.at, weights=ratio, minlength=chains.n) / np.maximum(chains.areas, 1)
    keep &= sharp >= _OCCLUDING_SHARP_RATIO
    ys, xs = np.divmod(chains.idx, w)
    for k in np.flatnonzero(keep):
        on = chains.at == k
        _, sides, _ = cv2.minAreaRect(np.stack([xs[on], ys[on]], axis=1).astype(np.float32))
        span = max(sides) / p
        keep[k] = (
            span >= _OCCLUDING_SPAN_MM
            and min(sides) / p <= _OCCLUDING_BOW * span
            and float(dist_out[ys[on], xs[on]].min())
            <= _OCCLUDING_CLEAR_MM + _OCCLUDING_JUNCTION_MM
        )
    edges = cv2.resize(
        keep[chains.labels].astype(np.uint8), (w0, h0), interpolation=cv2.INTER_NEAREST
    )
    return dilate_disc(edges > 0, max(1.0, _OCCLUDING_HALF_WIDTH_MM * ppm_work))
