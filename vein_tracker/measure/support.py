"""The supports of the baseline veins: each class's vein pixels and the thin margin around
them that the contrast ratio is integrated over, and which vein owns each margin pixel.

A sub-pixel misalignment, a blur or JPEG's chroma subsampling moves a vein's contrast
within its margin and leaves the integrated ratio unchanged. The margin is
:data:`SUPPORT_MM` (at least :data:`SUPPORT_MIN_PX`, reticular veins
:data:`SUPPORT_MIN_RETICULAR_PX`) plus the registration residual, and never takes another
class's vein pixels (algorithm 1.4.0). Everything is kept as flat pixel indices: only the
veins and their margins are ever read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from ..morphology import within_distance
from ..smoothing import SparseSmooth
from .results import CLASS_CODES, RETICULAR, SPIDER

__all__ = [
    "RATIO_SIGMA_MM",
    "SUPPORT_MIN_PX",
    "SUPPORT_MIN_RETICULAR_PX",
    "SUPPORT_MM",
    "Layout",
    "Scale",
    "Support",
    "class_sums",
    "lay_out",
    "needed_pixels",
    "scale_for",
]

#: Smoothing scale of the contrast ratio along veins, mm (noise of c_f/c_b averages out).
RATIO_SIGMA_MM = 1.5
#: Margin around baseline veins over which contrast is integrated (plus the residual), mm,
#: and at least SUPPORT_MIN_PX: JPEG's 4:2:0 chroma and block quantisation spread a thin
#: red vein's (chromatic) contrast over a few pixels; integrated, it is kept.
SUPPORT_MM = 0.3
SUPPORT_MIN_PX = 4.0
#: Reticular veins' margin is at least this, px (chroma spread reaches ~2 px at 4 px/mm).
SUPPORT_MIN_RETICULAR_PX = 2.0


def class_sums(c: np.ndarray, layout: Layout) -> np.ndarray:
    """A contrast map integrated over each class's support, read on that class's vein
    pixels (in ``layout.base_idx`` order): either side of the ratio
    :func:`~.improvement.estimate_terms` takes."""
    flat = c.reshape(-1)
    out = np.zeros(layout.base_idx.size, np.float32)
    for sp in layout.classes:
        out[sp.sel_pos] = sp.smooth(flat[sp.area_idx])
    return out


@dataclass(frozen=True)
class Scale:
    """The supports' margins per class code (px) and the ratio's smoothing σ (px)."""

    radius_px: Mapping[int, float]
    sigma_px: float


def scale_for(px_per_mm: float, residual_px: float) -> Scale:
    """The supports' scale at ``px_per_mm``, widened by the registration residual."""
    return Scale(
        radius_px={
            CLASS_CODES["spider"]: max(SUPPORT_MIN_PX, SUPPORT_MM * px_per_mm) + residual_px,
            CLASS_CODES["reticular"]: max(SUPPORT_MIN_RETICULAR_PX, SUPPORT_MM * px_per_mm)
            + residual_px,
        },
        sigma_px=RATIO_SIGMA_MM * px_per_mm,
    )


@dataclass(frozen=True, eq=False)
class Support:
    """One class's baseline vein pixels, the thin margin around them the ratio is
    integrated over, and which vein each margin pixel belongs to; as flat pixel indices.

    The margin never takes another class's vein pixels: a persisting spider crossing a
    cleared reticular vein would otherwise lend the reticular vein its contrast (and a
    cleared reticular vein would take a persisting spider's away)."""

    sel_pos: np.ndarray  # positions of the class's vein pixels in ``Layout.base_idx``
    area_idx: np.ndarray  # the class's vein pixels and their margin, inside the region
    own_idx: np.ndarray  # the ``area_idx`` pixels a vein owns (``owner > 0``) ...
    own: np.ndarray  # ... and that vein's id
    smooth: SparseSmooth  # Gaussian of a map on ``area_idx``, read on the vein pixels


@dataclass(frozen=True, eq=False)
class Layout:
    """The baseline vein pixels one estimate counts, and each class's support."""

    base: np.ndarray  # (H, W) bool: the baseline vein pixels in the region
    base_idx: np.ndarray  # flat indices of the baseline vein pixels in the region
    ids: np.ndarray  # their vein ids (0: a pixel of no vein)
    classes: tuple[Support, ...]


def _support(
    sel: np.ndarray,
    radius_px: float,
    region: np.ndarray,
    ids: np.ndarray,
    others: np.ndarray,
    *,
    sel_pos: np.ndarray,
    sigma_px: float,
) -> Support:
    """``others``: the other classes' baseline vein pixels, left out of the margin."""
    area = within_distance(sel, radius_px) & region & ~others
    area_idx = np.flatnonzero(area)
    sel_idx = np.flatnonzero(sel)
    own_idx = np.zeros(0, np.int64)
    own = np.zeros(0, np.int64)
    if sel_idx.size:
        # the id of the vein each margin pixel surrounds (the larger where two margins meet)
        k = 2 * math.ceil(radius_px) + 1
        # 16-bit ids dilate twice as fast as float ones (the same maxima)
        own_ids = np.where(sel, ids, 0)
        small = own_ids.size == 0 or int(own_ids.max()) < 65536
        grown = cv2.dilate(
            own_ids.astype(np.uint16 if small else np.float32),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)),
        )
        owner = grown.reshape(-1)[area_idx].astype(np.int64)
        mine = owner > 0
        own_idx, own = area_idx[mine], owner[mine]
    return Support(
        sel_pos=sel_pos,
        area_idx=area_idx,
        own_idx=own_idx,
        own=own,
        smooth=SparseSmooth(sel.shape, area_idx, sel_idx, sigma_px),
    )


def lay_out(
    base: np.ndarray,
    *,
    labels: np.ndarray,
    region: np.ndarray,
    ids: np.ndarray,
    scale: Scale,
) -> Layout:
    """The supports of ``base``'s veins in the region, per class: the spider support
    takes every baseline vein pixel not reticular.

    Parameters
    ----------
    base : ndarray, shape (H, W), bool
        The baseline vein pixels to count.
    labels : ndarray, shape (H, W), uint8
        Their classes (the baseline's labels).
    region : ndarray, shape (H, W), bool
    ids : ndarray, shape (H, W), int
        The baseline's vein ids.
    scale : Scale
        The margins and the smoothing (:func:`scale_for`).

    Returns
    -------
    Layout
    """
    base = base & region
    base_idx = np.flatnonzero(base)
    lab = labels.reshape(-1)[base_idx]

    def one(code: int, r_px: float) -> Support:
        pick = lab != RETICULAR if code == SPIDER else lab == code
        sel = np.zeros(base.shape, bool)
        sel.reshape(-1)[base_idx[pick]] = True
        return _support(
            sel,
            r_px,
            region,
            ids,
            others=base & ~sel,
            sel_pos=np.flatnonzero(pick),
            sigma_px=scale.sigma_px,
        )

    classes = tuple(one(code, r_px) for code, r_px in scale.radius_px.items())
    return Layout(
        base=base,
        base_idx=base_idx,
        ids=ids.reshape(-1)[base_idx],
        classes=classes,
    )


def needed_pixels(layout: Layout) -> np.ndarray:
    """Flat indices of every pixel a map is read at on ``layout``: its vein pixels and
    their supports. The supports of any subset of the veins lie within these (with the
    veins), so a baseline contrast made at these pixels alone serves every estimate."""
    needed = np.zeros(layout.base.size, bool)
    needed[layout.base_idx] = True
    for sp in layout.classes:
        needed[sp.area_idx] = True
    return np.flatnonzero(needed)
