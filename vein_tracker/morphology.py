"""Binary morphology, connected components and sampling for the image analysis.

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

Three functions give a library's result, bit for bit (``tests/test_morphology.py``
compares them with the libraries):

- :func:`skeletonize` -- ``skimage.morphology.skeletonize`` of a 2-D mask
  (scikit-image's Zhang--Suen thinning, with its look-up table);
- :func:`fill_holes` -- ``scipy.ndimage.binary_fill_holes`` with its default
  (4-connected) structure, as OpenCV's flood fill of the outside;
- :func:`sample_linear` -- ``scipy.ndimage.map_coordinates(img, (rows, cols),
  order=1, mode="nearest")`` of a 2-D array.

They are written here, not imported, because every ``vein-tracker analyze`` run needs
them (both visits' skeletons, the leg masks, the registration's residual) and importing
``skimage.morphology`` or ``scipy.ndimage`` loads SciPy's array-API layer and with it
most of NumPy's optional submodules: 0.7 s more CPU time per run, measured, on a run of
2.5 s CPU and 1.2 s wall on two cores (the library's thinning also takes 6x as long on
a vein mask). Nothing else in the package copies a library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "SKELETON_LUT",
    "Components",
    "components",
    "dilate_disc",
    "dilate_disc_at",
    "dilate_square",
    "distance_to",
    "erode_disc",
    "erode_square",
    "fill_holes",
    "label_boxes",
    "near_on_grid",
    "sample_linear",
    "skeletonize",
    "within_distance",
]

#: scikit-image's thinning table (``_fast_skeletonize``), indexed by the code of a
#: pixel's 8 neighbours, ``NW + 2 N + 4 NE + 8 E + 16 SE + 32 S + 64 SW + 128 W``:
#: 0 keep, 1 remove in the first sub-pass, 2 in the second, 3 in both. It is the
#: library's table, not the textbook Zhang--Suen conditions: those differ from it in
#: 25 entries (e.g. code 10, N and E set, is removable here), so the table is copied
#: and the tests check that every entry is the one the library uses.
SKELETON_LUT = np.array(
    [
        0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3,
        0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 3, 0, 3, 3,
        0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,
        3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0,
        0, 0, 3, 1, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        2, 3, 1, 3, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        2, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        3, 3, 0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0,
    ],
    dtype=np.uint8,
)  # fmt: skip
SKELETON_LUT.setflags(write=False)

# Removable in the first / second sub-pass, by neighbour code.
_REMOVE = (
    (SKELETON_LUT == 1) | (SKELETON_LUT == 3),
    (SKELETON_LUT == 2) | (SKELETON_LUT == 3),
)


def _offsets(width: int) -> np.ndarray:
    """Flat offsets of the 8 neighbours in a raster ``width`` wide, in code-bit order."""
    w = width
    return np.array([-w - 1, -w, -w + 1, 1, w + 1, w, w - 1, -1], dtype=np.intp)


def _mask_2d(mask: np.ndarray) -> np.ndarray:
    img = np.asarray(mask)
    if img.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {img.shape}")
    return img


def skeletonize(mask: np.ndarray) -> np.ndarray:
    """Skeleton of a 2-D binary mask, identical to ``skimage.morphology.skeletonize``.

    scikit-image's 2-D method: repeated pairs of sub-passes; in each, every set
    pixel is classified by :data:`SKELETON_LUT` from the image as it was at the start
    of the sub-pass, and those removable in that sub-pass are cleared together;
    outside the image is background. It stops after a pair that removes nothing.

    Only pixels that can change are visited: after the first pair, a pixel is
    classified again only when a neighbour was removed in one of the two previous
    sub-passes. Otherwise its code is the one it had two sub-passes ago, in a
    sub-pass of the same kind, which kept it -- so it would be kept again.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Nonzero is foreground.

    Returns
    -------
    ndarray, shape (H, W), dtype bool
    """
    img = _mask_2d(mask)
    out = np.zeros(img.shape, dtype=bool)
    fg = img.astype(bool, copy=False)
    rows = np.flatnonzero(fg.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(fg.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    # Crop to the bounding box with a one-pixel background border (the library's
    # zero padding), so every foreground pixel has 8 neighbours in the raster.
    w = c1 - c0 + 2
    pad = np.zeros((r1 - r0 + 2, w), dtype=np.uint8)
    pad[1:-1, 1:-1] = fg[r0:r1, c0:c1]
    flat = pad.ravel()
    offs = _offsets(w)

    cand = np.flatnonzero(flat.view(bool))
    stamp = np.empty(flat.size, dtype=np.intp)  # de-duplicates candidates without sorting
    removed_prev = np.empty(0, dtype=np.intp)
    idle = 0  # consecutive sub-passes that removed nothing
    sub_pass = 0
    while idle < 2:
        # Codes from the image at the start of the sub-pass, then all removals at once.
        rem = _REMOVE[sub_pass & 1][_codes(flat, cand, offs)]
        gone = cand[rem]
        flat[gone] = 0
        idle = idle + 1 if gone.size == 0 else 0
        if sub_pass == 0:
            cand = cand[~rem]  # the first pair's second sub-pass sees every pixel
        else:
            touched = np.concatenate([gone, removed_prev])
            nbr = (touched[:, None] + offs).ravel()
            nbr = nbr[flat[nbr] != 0]
            order = np.arange(nbr.size, dtype=np.intp)
            stamp[nbr] = order
            cand = nbr[stamp[nbr] == order]
        removed_prev = gone
        sub_pass += 1
    out[r0:r1, c0:c1] = pad[1:-1, 1:-1].astype(bool)
    return out


def _codes(flat: np.ndarray, idx: np.ndarray, offs: np.ndarray) -> np.ndarray:
    """Neighbour codes (0..255, uint8) of pixels ``idx`` of a flat 0/1 raster."""
    code = flat[idx + offs[0]]
    for k in range(1, 8):
        code |= flat[idx + offs[k]] << k
    return code


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes, identical to ``scipy.ndimage.binary_fill_holes(mask)``.

    Background that cannot reach the outside of the image through 4-connected
    background pixels becomes foreground (SciPy's default structure is the cross).

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Nonzero is foreground.

    Returns
    -------
    ndarray, shape (H, W), dtype bool
    """
    img = _mask_2d(mask)
    if img.size == 0:
        return np.zeros(img.shape, dtype=bool)
    pad = np.zeros((img.shape[0] + 2, img.shape[1] + 2), dtype=np.uint8)
    pad[1:-1, 1:-1] = img.astype(bool, copy=False)
    # The border ring is background, 4-connected all round: flood the outside.
    cv2.floodFill(pad, None, (0, 0), 2, flags=4)
    return np.asarray(pad[1:-1, 1:-1] != 2)


def sample_linear(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2-D array, identical to SciPy's ``map_coordinates``.

    Same result, bit for bit, as ``scipy.ndimage.map_coordinates(img, [rows, cols],
    order=1, mode="nearest")`` converted to float64. Like SciPy, the two taps along an
    axis are ``floor(x)`` and ``floor(x) + 1`` clamped into the image, weighted
    ``1 - f`` and ``1 - (1 - f)`` with ``f = x - floor(x)`` of the *unclamped*
    coordinate; the four products are summed in SciPy's order and the sum is rounded
    to ``img``'s dtype. A non-finite coordinate gives NaN, as in SciPy.

    Parameters
    ----------
    img : ndarray, shape (H, W), floating
    rows, cols : ndarray, shape (N,)
        Row (y) and column (x) coordinates.

    Returns
    -------
    ndarray, shape (N,), dtype float64
    """
    a = np.asarray(img)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"img must be a non-empty 2-D array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"img must be floating point, got {a.dtype}")
    r = np.asarray(rows, dtype=np.float64).ravel()
    c = np.asarray(cols, dtype=np.float64).ravel()
    if r.shape != c.shape:
        raise ValueError(f"rows and cols must have the same length, got {r.size} and {c.size}")
    i0, i1, wr0, wr1 = _axis_taps(r, a.shape[0])
    j0, j1, wc0, wc1 = _axis_taps(c, a.shape[1])
    v = a.astype(np.float64, copy=False)
    t = 0.0 + (v[i0, j0] * wr0) * wc0
    t = t + (v[i0, j1] * wr0) * wc1
    t = t + (v[i1, j0] * wr1) * wc0
    t = t + (v[i1, j1] * wr1) * wc1
    return t.astype(a.dtype).astype(np.float64)


_INT64_MIN = np.iinfo(np.int64).min


def _axis_taps(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clamped indices and weights of the two linear taps along an axis of length ``n``."""
    fl = np.floor(x)
    # SciPy's C cast of floor(x) to an integer; out of range (or NaN) it is INT64_MIN
    # on the platforms NumPy supports -- the weights are NaN there anyway, except for
    # huge finite coordinates, which then read the first sample, as in SciPy.
    inside = np.abs(fl) < 2.0**63
    start = np.where(inside, fl, 0.0).astype(np.int64)
    start[~inside] = _INT64_MIN
    i0 = np.clip(start, 0, n - 1)
    i1 = np.clip(np.where(inside, start + 1, _INT64_MIN), 0, n - 1)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN weights, as in SciPy
        w0 = 1.0 - (x - fl)
    w1 = 1.0 - w0
    return i0, i1, w0, w1


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
