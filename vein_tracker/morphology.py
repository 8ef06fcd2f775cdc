"""Binary morphology and connected components for the image analysis.

The dilations and erosions come in two kinds, named for their structuring element, since
the two are not interchangeable: :func:`dilate_disc`/:func:`erode_disc` use OpenCV's
elliptic kernel of ``2 round(r) + 1`` px (a disc of radius ``r``, for distances in mm),
:func:`dilate_square`/:func:`erode_square` a ``k`` x ``k`` square (the registration's
masks on its small working grids). :func:`within_distance` is the exact Euclidean disc
(``distance_to(mask) <= r``); :func:`dilate_disc_at` and :func:`near_on_grid` read a
disc dilation at a few pixels or on a coarse grid without dilating the whole frame.

:func:`components` gives ``cv2.connectedComponentsWithStats``' labels, areas and
bounding boxes, the same numbers, at a share of its cost on a sparse mask (its
statistics pass walks every pixel of the image, in floating point for the centroids,
and costs about five times the labelling on a 3 MP vein mask).

Thinning, hole filling and bilinear sampling are the libraries' own:
``skimage.morphology.skeletonize`` (through :func:`skeleton_of`, which hands it only the
mask's bounding box), ``scipy.ndimage.binary_fill_holes`` and
``scipy.ndimage.map_coordinates(..., order=1)``, imported where they are used, inside
the function (importing scikit-image loads SciPy: a slow import that only an analysis
needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Components",
    "components",
    "dilate_disc",
    "dilate_disc_at",
    "dilate_square",
    "distance_to",
    "erode_disc",
    "erode_square",
    "label_boxes",
    "skeleton_of",
    "near_on_grid",
    "within_distance",
]


@dataclass(frozen=True, eq=False)
class Components:
    """Connected components of a mask: what ``cv2.connectedComponentsWithStats`` gives,
    but its centroids.

    ``n`` labels (0 the background); ``labels`` int32 of the mask's shape; ``idx`` the
    mask's flat indices (raster order) and ``at`` their labels; ``areas`` (n,) pixel
    counts, the background's included."""

    n: int
    labels: np.ndarray
    idx: np.ndarray
    at: np.ndarray
    areas: np.ndarray

    def boxes(self) -> np.ndarray:
        """(n, 4) int64 ``x, y, width, height`` of each label, as ``CC_STAT_LEFT`` ..
        ``CC_STAT_HEIGHT``; row 0 (the background) is the image's."""
        h, w = self.labels.shape
        out = label_boxes(self.at, self.idx, self.n, w)
        if self.n:
            out[0] = (0, 0, w, h)
        return out

    def sums(self, image: np.ndarray) -> np.ndarray:
        """(n,) float64 sum of ``image`` (the mask's shape; bool counts as 0/1) over
        each label's pixels; the background's is 0."""
        values = np.asarray(image).reshape(-1)[self.idx]
        return np.bincount(self.at, weights=values, minlength=self.n)


def label_boxes(at: np.ndarray, idx: np.ndarray, n: int, width: int) -> np.ndarray:
    """Bounding boxes of labelled pixels: (n, 4) int64 ``x, y, width, height`` of the
    pixels ``idx`` (flat indices in an image ``width`` pixels wide) that carry each label
    ``at`` (in 0 .. n-1). A label without pixels gets a width and height of at most 0."""
    ys, xs = np.divmod(np.asarray(idx, np.int64), width)
    lo_x = np.full(n, np.iinfo(np.int64).max, np.int64)
    lo_y = np.full(n, np.iinfo(np.int64).max, np.int64)
    hi_x = np.full(n, -1, np.int64)
    hi_y = np.full(n, -1, np.int64)
    np.minimum.at(lo_x, at, xs)
    np.minimum.at(lo_y, at, ys)
    np.maximum.at(hi_x, at, xs)
    np.maximum.at(hi_y, at, ys)
    return np.stack([lo_x, lo_y, hi_x - lo_x + 1, hi_y - lo_y + 1], axis=1)


def components(mask: np.ndarray, connectivity: int = 8) -> Components:
    """Connected components of a 2-D mask (bool or uint8, non-zero is set): the labels
    of ``cv2.connectedComponents`` (those of ``connectedComponentsWithStats``), areas
    from the set pixels alone."""
    if mask.dtype == bool:
        b, m = mask, mask.view(np.uint8)
    else:
        m = np.asarray(mask, np.uint8)
        b = m != 0
    n, lab = cv2.connectedComponents(m, connectivity=connectivity)
    idx = np.flatnonzero(b)  # NumPy finds set bools ~5x faster than set bytes
    at = lab.reshape(-1)[idx]
    areas = np.bincount(at, minlength=n).astype(np.int64)
    areas[0] = m.size - idx.size
    return Components(n=int(n), labels=lab, idx=idx, at=at, areas=areas)


# --------------------------------------------------------------------------- dilations


def _disc_kernel(radius_px: float) -> np.ndarray | None:
    """OpenCV's elliptic kernel of ``2 round(r) + 1`` px, or None for a radius below 0.5."""
    r = int(round(radius_px))
    if r <= 0:
        return None
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def dilate_disc(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within about ``radius_px`` of ``mask``: dilation by OpenCV's elliptic kernel
    of ``2 round(r) + 1`` px.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    radius_px : float
        Radius, px; below 0.5 the mask comes back as a copy.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    k = _disc_kernel(radius_px)
    if k is None:
        return np.array(mask, dtype=bool, copy=True)
    return np.asarray(cv2.dilate(mask.astype(np.uint8), k)).astype(bool)


def erode_disc(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``mask`` less the pixels within about ``radius_px`` of its outside (the image's
    border counts as outside): erosion by the kernel of :func:`dilate_disc`, with the
    same parameters and result."""
    k = _disc_kernel(radius_px)
    if k is None:
        return np.array(mask, dtype=bool, copy=True)
    return np.asarray(cv2.erode(mask.astype(np.uint8), k, borderValue=0)).astype(bool)


def dilate_square(mask: np.ndarray, size_px: int) -> np.ndarray:
    """Dilation of ``mask`` by a ``size_px`` x ``size_px`` square.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    size_px : int
        Side of the square, px (odd keeps the mask centred).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    return np.asarray(cv2.dilate(mask.astype(np.uint8), np.ones((size_px, size_px), np.uint8)) > 0)


def erode_square(mask: np.ndarray, size_px: int) -> np.ndarray:
    """Erosion of ``mask`` by the square of :func:`dilate_square` (same parameters and
    result); outside the image counts as part of the mask (OpenCV's default), so a mask
    touching the border is not eaten from there."""
    return np.asarray(cv2.erode(mask.astype(np.uint8), np.ones((size_px, size_px), np.uint8)) > 0)


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest set pixel of ``mask``.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool

    Returns
    -------
    ndarray, shape (H, W), float32
        0 on the mask; ``inf`` everywhere when the mask is empty.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return np.asarray(
        cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
        dtype=np.float32,
    )


def within_distance(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``distance_to(mask) <= radius_px``: a dilation by the exact Euclidean disc, far
    cheaper than a distance transform for radii of a few pixels.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    radius_px : float

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    r = int(math.floor(radius_px))
    if r < 0:
        return np.zeros(mask.shape, bool)
    off = np.arange(-r, r + 1)
    disc = ((off[:, None] ** 2 + off[None, :] ** 2) <= radius_px**2).astype(np.uint8)
    return np.asarray(cv2.dilate(mask.astype(np.uint8), disc, borderValue=0)).astype(bool)


def dilate_disc_at(
    mask: np.ndarray, radius_px: float, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """``dilate_disc(mask, radius_px)[np.ix_(rows, cols)]``, computed at those pixels only.

    The same elliptic kernel, row by row: a kernel row is one run of columns, so a pixel
    is hit when the mask's prefix sum over that run is positive. Far faster than the full
    dilation with a large kernel when few pixels are asked for.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    radius_px : float
    rows, cols : ndarray, shape (m,) and (n,), int
        Pixel rows (y) and columns (x), in any order, repeats allowed.

    Returns
    -------
    ndarray, shape (m, n), bool
    """
    m = np.asarray(mask, dtype=bool)
    kernel = _disc_kernel(radius_px)
    if kernel is None:
        return np.array(m[np.ix_(rows, cols)], dtype=bool)
    k = kernel.astype(bool)
    r = k.shape[0] // 2
    h, w = m.shape
    cs = np.zeros((h, w + 1), np.int32)
    np.cumsum(m, axis=1, out=cs[:, 1:])
    out = np.zeros((rows.size, cols.size), dtype=bool)
    for ky in range(2 * r + 1):
        xs = np.flatnonzero(k[ky])
        if xs.size == 0:
            continue
        if xs.size != xs[-1] - xs[0] + 1:  # pragma: no cover - OpenCV ellipse rows are runs
            return np.asarray(dilate_disc(m, radius_px)[np.ix_(rows, cols)], dtype=bool)
        yy = rows + (ky - r)
        ok = (yy >= 0) & (yy < h)
        if not ok.any():
            continue
        lo = np.clip(cols + (xs[0] - r), 0, w)
        hi = np.clip(cols + (xs[-1] - r) + 1, 0, w)
        c = cs[yy[ok]]
        out[ok] |= (c[:, hi] - c[:, lo]) > 0
    return out


def near_on_grid(mask: np.ndarray, radius_px: float, step: int) -> np.ndarray:
    """Whether a ``mask`` pixel lies within about ``radius_px`` of each pixel of the grid
    ``mask[::step, ::step]``.

    The mask's step x step blocks centred on the grid pixels (any pixel set) are dilated
    on the grid by the radius in grid steps (:func:`dilate_disc`): the same as
    ``dilate_disc(mask, radius_px)[::step, ::step]`` to within half a grid step, at a
    small share of its cost.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
    radius_px : float
    step : int
        Grid step, px (1: the full dilation).

    Returns
    -------
    ndarray, shape (ceil(H / step), ceil(W / step)), bool
    """
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    if step <= 1:
        return dilate_disc(m, radius_px)
    hg, wg = -(-h // step), -(-w // step)
    o = step // 2
    pad = np.zeros((hg * step, wg * step), bool)
    pad[o : o + h, o : o + w] = m[: hg * step - o, : wg * step - o]
    blocks = np.asarray(pad.reshape(hg, step, wg, step).any(axis=(1, 3)))
    return dilate_disc(blocks, radius_px / step)


def skeleton_of(mask: np.ndarray) -> np.ndarray:
    """``skimage.morphology.skeletonize(mask)`` (Zhang-Suen thinning), run on the mask's
    bounding box only.

    The same result: the thinning looks at each pixel's 8 neighbours and takes what lies
    outside the image as background, so the empty rows and columns around a sparse vein
    mask only cost time (about two thirds of it on a leg photo's spider mask).
    """
    from skimage.morphology import skeletonize  # lazy: a slow import (SciPy)

    m = np.asarray(mask, bool)
    out = np.zeros(m.shape, bool)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if not len(rows):
        return out
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    out[box] = skeletonize(m[box])
    return out
