"""Finding the card in a photo: its ArUco markers and the card-to-photo homography.

The markers are detected on a reduced copy, their corners refined on the full photo, and
a homography from card millimetres to photo pixels is fitted to them, leaving out one
marker that disagrees. This module must not read colours.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import cv2
import numpy as np

from .layout import ARUCO_DICTIONARY, MARKER_IDS, MARKER_ORIGINS_MM, MARKER_SIZE_MM

#: The detector works on a copy whose long side is at most this (pixels); corners are
#: then refined on the full photo. Keeps a photo without a card cheap to reject.
DETECT_MAX_SIDE = 1600
#: Fewest markers a reading needs. Two markers leave the far side of the card to
#: extrapolation; three span it.
MIN_MARKERS = 3
#: Largest accepted RMS distance between detected marker corners and the fitted card, as
#: a share of the marker's side in the photo. Blur rounds the corners inwards (about 0.9
#: blur sigma of RMS, common to all markers, so the scale keeps within 0.2 %): 5 % allows
#: a blur of 0.6 mm sigma, beyond what the detector reads anyway.
_MAX_RESIDUAL_FRAC = 0.05


def _apply_h(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    out: np.ndarray = q[:, :2] / q[:, 2:3]
    return out


def _marker_corners_mm(index: int) -> np.ndarray:
    x0, y0 = MARKER_ORIGINS_MM[index]
    s = MARKER_SIZE_MM
    # ArUco's corner order: the marker's top-left, then clockwise.
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], np.float64)


@cache
def _detector() -> Any:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    # Read each cell's bit from its middle only: a blurred photo (0.2-0.3 mm) smears the
    # cell edges, and OpenCV's default margin (0.13 of a cell) then loses one-cell
    # features: at 3-5 px/mm and a blur of 0.3 mm, 1-2 markers of 4 were found instead
    # of 4.
    params.perspectiveRemovePixelPerCell = 8
    params.perspectiveRemoveIgnoredMarginPerCell = 0.35
    return cv2.aruco.ArucoDetector(dictionary, params)


def _detect_markers(gray: np.ndarray) -> dict[int, np.ndarray]:
    """Card markers found in a grey photo: id -> (4, 2) corners in full-resolution px."""
    h, w = gray.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = gray
    if scale < 1.0:
        small = cv2.resize(
            gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    corners, ids, _ = _detector().detectMarkers(small)
    if ids is None:
        return {}
    wanted = set(MARKER_IDS)
    seen: dict[int, list[np.ndarray]] = {}
    for c, i in zip(corners, ids.ravel(), strict=True):
        if int(i) in wanted:
            seen.setdefault(int(i), []).append(np.asarray(c, np.float64).reshape(4, 2))
    found: dict[int, np.ndarray] = {}
    for marker_id, cs in seen.items():
        if len(cs) != 1:
            continue  # the same id twice: two cards or a look-alike; trust neither
        c = cs[0]
        if scale < 1.0:
            # Pixel centres at integers: x_full + 0.5 = (x_small + 0.5) * w / w_small.
            c = (c + 0.5) * np.array([w / small.shape[1], h / small.shape[0]]) - 0.5
            c = _refine_corners(gray, c)
        found[marker_id] = c
    return found


def _refine_corners(gray: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Sub-pixel corners on the full-resolution photo, within the marker's border cell."""
    side = float(np.mean(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)))
    half = int(np.clip(round(0.5 * side / 6.0), 2, 12))
    pts = corners.astype(np.float32).reshape(-1, 1, 2).copy()
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 40, 0.01)
    refined = cv2.cornerSubPix(gray, pts, (half, half), (-1, -1), criteria)
    out = refined.reshape(4, 2).astype(np.float64)
    # A corner that wandered more than a cell is not trusted: keep the detector's.
    moved = np.linalg.norm(out - corners, axis=1) > side / 6.0
    out[moved] = corners[moved]
    return out


def _fit_card(found: dict[int, np.ndarray]) -> tuple[np.ndarray, float, tuple[int, ...]] | None:
    """Card-to-photo homography from the markers; drops one marker that disagrees."""
    ids = sorted(found)
    while len(ids) >= MIN_MARKERS:
        src = np.concatenate([_marker_corners_mm(MARKER_IDS.index(i)) for i in ids])
        dst = np.concatenate([found[i] for i in ids])
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None or not np.all(np.isfinite(h)):
            return None
        err = np.linalg.norm(_apply_h(h, src) - dst, axis=1)
        side_px = float(np.mean(np.linalg.norm(dst - np.roll(dst, 1, axis=0), axis=1)))
        tol = max(1.0, _MAX_RESIDUAL_FRAC * side_px)
        per_marker = np.sqrt(np.mean(err.reshape(-1, 4) ** 2, axis=1))
        rms = float(np.sqrt(np.mean(err**2)))
        if rms <= tol:
            return h / h[2, 2], rms, tuple(ids)
        ids.pop(int(np.argmax(per_marker)))
    return None


def _local_scales(h: np.ndarray, xy_mm: tuple[float, float]) -> tuple[float, float]:
    """Singular values of the card-to-photo map's Jacobian at a card point (px per mm)."""
    x, y = xy_mm
    q = h @ np.array([x, y, 1.0])
    u, v, s = q
    jac = np.array(
        [
            [(h[0, 0] * s - u * h[2, 0]) / s**2, (h[0, 1] * s - u * h[2, 1]) / s**2],
            [(h[1, 0] * s - v * h[2, 0]) / s**2, (h[1, 1] * s - v * h[2, 1]) / s**2],
        ]
    )
    if np.linalg.det(jac) <= 0:
        return (0.0, 0.0)  # mirrored: not a card seen from its printed side
    sv = np.linalg.svd(jac, compute_uv=False)
    return float(sv[0]), float(sv[1])
