"""One visit's vein figures over a region: length, area, width, density, coverage and
the contrast-weighted burden (:func:`measure`, :func:`measure_mask`).

Lengths are counted on the centreline skeleton (:func:`skeleton_length_px`: a diagonal
step is √2 px), areas in pixels, both converted with the scale in px/mm.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_mask, check_px_per_mm
from ..morphology import skeleton_of
from ..segmentation import Segmentation
from .results import CLASS_CODES, VeinMetrics

__all__ = ["measure", "measure_mask", "skeleton_length_px"]

_SQRT2 = math.sqrt(2.0)


def skeleton_length_px(skeleton: np.ndarray) -> float:
    """Length of a one-pixel-wide skeleton in pixels.

    Each pair of 8-connected skeleton pixels is one step: 1 px for a horizontal
    or vertical neighbour, √2 px for a diagonal one. A diagonal link is not
    counted when the two pixels are also joined through a shared 4-neighbour
    (an L corner), so corners are not counted twice. A straight run of ``n``
    pixels measures ``n - 1`` (centre to centre).

    Parameters
    ----------
    skeleton : ndarray, shape (H, W), dtype bool

    Returns
    -------
    float
        Length in pixels.
    """
    sk = np.asarray(skeleton)
    if sk.ndim != 2 or sk.dtype != bool:
        raise ValueError(
            f"skeleton must be a 2-D bool array, got shape {sk.shape} dtype {sk.dtype}"
        )
    # Counted from the skeleton's own pixels (a skeleton is sparse): for each pixel p,
    # its links to the right, down, down-right and down-left neighbours.
    h, w = sk.shape
    flat = np.ascontiguousarray(sk).reshape(-1)
    p = np.flatnonzero(flat)
    if p.size == 0:
        return 0.0
    col = p % w
    right = col < w - 1
    left = col > 0
    down = p < (h - 1) * w
    n_orth = int(np.count_nonzero(flat[p[right] + 1])) + int(np.count_nonzero(flat[p[down] + w]))
    # down-right (p, p + w + 1), not when p + 1 or p + w closes the L corner
    q = p[right & down]
    n_diag = int(np.count_nonzero(flat[q + w + 1] & ~(flat[q + 1] | flat[q + w])))
    # down-left (p, p + w - 1), not when p - 1 or p + w closes the L corner
    q = p[left & down]
    n_diag += int(np.count_nonzero(flat[q + w - 1] & ~(flat[q - 1] | flat[q + w])))
    return float(n_orth + _SQRT2 * n_diag)


def measure_mask(
    mask: np.ndarray,
    *,
    region: np.ndarray,
    px_per_mm: float,
    strength: np.ndarray | None = None,
    skeleton: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    vein_ids: np.ndarray | None = None,
    skin: np.ndarray | None = None,
) -> VeinMetrics:
    """Measure a vein mask over a region (the array-level core of :func:`measure`).

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
        Vein pixels.
    region : ndarray, shape (H, W), bool
        Only pixels inside count.
    px_per_mm : float
        Scale, pixels per millimetre.
    strength : ndarray, shape (H, W), float, optional
        Vein contrast in OD units; the burden is 0 without it.
    skeleton : ndarray, shape (H, W), bool, optional
        Centrelines (within ``mask``); computed with
        ``skimage.morphology.skeletonize`` (:func:`~vein_tracker.morphology.skeleton_of`)
        when absent.
    labels : ndarray, shape (H, W), uint8, optional
        Class codes (1 spider, 2 reticular); per-class figures need it.
    vein_ids : ndarray, shape (H, W), int, optional
        Vein (segment) ids, 0 = none; counts veins.
    skin : ndarray, shape (H, W), bool, optional
        Skin pixels; the density refers to ``skin & region`` (``region`` alone when absent).

    Returns
    -------
    VeinMetrics
    """
    ppm = check_px_per_mm(px_per_mm)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    m = check_mask(m, shape=m.shape, name="mask")
    reg = check_mask(region, shape=m.shape, name="region")
    if skin is not None:
        reg = reg & check_mask(skin, shape=m.shape, name="skin")
    vm = m & reg
    if skeleton is None:
        sk = skeleton_of(vm)
    else:
        sk = check_mask(skeleton, shape=m.shape, name="skeleton") & vm
    if strength is not None and np.shape(strength) != m.shape:
        raise ValueError(f"strength must have shape {m.shape}, got {np.shape(strength)}")
    if labels is not None and np.shape(labels) != m.shape:
        raise ValueError(f"labels must have shape {m.shape}, got {np.shape(labels)}")
    if vein_ids is not None and np.shape(vein_ids) != m.shape:
        raise ValueError(f"vein_ids must have shape {m.shape}, got {np.shape(vein_ids)}")
    skin_px = int(np.count_nonzero(reg))

    def one(sel: np.ndarray, sk_sel: np.ndarray, *, per_class: bool) -> VeinMetrics:
        area_px = int(np.count_nonzero(sel))
        length_px = skeleton_length_px(sk_sel)
        length_mm = length_px / ppm
        area_mm2 = area_px / ppm**2
        skin_cm2 = skin_px / ppm**2 / 100.0
        burden = 0.0
        if strength is not None and area_px:
            burden = float(np.sum(np.asarray(strength)[sel].astype(np.float64))) / ppm**2
        n_veins = 0
        if vein_ids is not None and area_px:
            ids = np.unique(np.asarray(vein_ids)[sel])
            n_veins = int(np.count_nonzero(ids))
        by: dict[str, VeinMetrics] = {}
        if per_class and labels is not None:
            lab = np.asarray(labels)
            for name, code in CLASS_CODES.items():
                cm = lab == code
                by[name] = one(sel & cm, sk_sel & cm, per_class=False)
        return VeinMetrics(
            length_mm=length_mm,
            area_mm2=area_mm2,
            mean_width_mm=area_mm2 / length_mm if length_mm > 0 else 0.0,
            density_mm_per_cm2=length_mm / skin_cm2 if skin_cm2 > 0 else 0.0,
            coverage_pct=100.0 * area_px / skin_px if skin_px else 0.0,
            burden=burden,
            n_veins=n_veins,
            skin_area_cm2=skin_cm2,
            by_class=by,
        )

    return one(vm, sk, per_class=True)


def measure(
    segmentation: Segmentation, *, region: np.ndarray, px_per_mm: float | None = None
) -> VeinMetrics:
    """Measure a segmentation over a region.

    Parameters
    ----------
    segmentation : Segmentation
        From :func:`vein_tracker.segmentation.segment` (its ``mask``, ``labels``,
        ``strength``, ``skeleton``, ``vein_ids`` and ``leg_mask`` are used).
    region : ndarray, shape (H, W), bool
        Only pixels inside count (for a comparison: the region seen in both photos,
        baseline frame).
    px_per_mm : float, optional
        Scale; default the segmentation's own ``px_per_mm``.

    Returns
    -------
    VeinMetrics
        For all veins, with ``by_class`` for spider and reticular veins.
    """
    seg = segmentation
    return measure_mask(
        seg.mask,
        region=region,
        px_per_mm=seg.px_per_mm if px_per_mm is None else px_per_mm,
        strength=seg.strength,
        skeleton=seg.skeleton,
        labels=seg.labels,
        vein_ids=seg.vein_ids,
        skin=seg.leg_mask,
    )
