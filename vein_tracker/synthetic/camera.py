"""Captures: the camera pose, bend and photometric settings of a photo, and their maps.

A :class:`Capture`'s homography maps rendered-photo pixels to baseline pixels; this module
makes captures (:func:`identity_capture`, :func:`random_capture`) and evaluates their
geometry (pixel maps to the baseline frame, the region a photo sees). It renders nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vein_tracker.synthetic._checks import _check_nonneg, _check_range, _check_shape, _rng
from vein_tracker.synthetic._model import FRAME_WIDTH_MM, Capture, _frozen_array


def identity_capture(
    *,
    shape: tuple[int, int] = (1500, 2000),
    exposure: float = 1.0,
    wb_gains: Sequence[float] = (1.0, 1.0, 1.0),
    blur_sigma: float = 0.0,
    noise: float = 0.0,
    jpeg_quality: int | None = None,
    seed: int = 0,
) -> Capture:
    """A capture aligned pixel for pixel with the baseline frame (no noise, no JPEG by default).

    Parameters
    ----------
    shape : (int, int)
        Frame (H, W) px; only matters for scaling ``blur_sigma`` at other resolutions.
    exposure, wb_gains, blur_sigma, noise, jpeg_quality, seed
        Photometric settings, as in :class:`Capture`.

    Returns
    -------
    Capture
    """
    shp = _check_shape(shape)
    gains = np.asarray(wb_gains, dtype=np.float64)
    if gains.shape != (3,) or not np.all(gains > 0):
        raise ValueError(f"wb_gains must be three positive numbers, got {wb_gains!r}")
    if not (exposure > 0):
        raise ValueError(f"exposure must be positive, got {exposure!r}")
    _check_nonneg(blur_sigma, "blur_sigma", 50.0)
    _check_nonneg(noise, "noise", 0.5)
    if jpeg_quality is not None and not (1 <= int(jpeg_quality) <= 100):
        raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {jpeg_quality!r}")
    return Capture(
        homography=_frozen_array(np.eye(3)),
        exposure=float(exposure),
        wb_gains=_frozen_array(gains),
        blur_sigma=float(blur_sigma),
        noise=float(noise),
        jpeg_quality=None if jpeg_quality is None else int(jpeg_quality),
        bend_px=0.0,
        seed=int(seed),
        shape=shp,
    )


def random_capture(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    rotation_deg: float = 10.0,
    scale: float = 0.10,
    translate: float = 0.05,
    perspective: float = 0.0005,
    exposure: float = 0.20,
    white_balance: float = 0.08,
    blur_sigma: float | tuple[float, float] = (0.0, 1.0),
    jpeg_quality: int | tuple[int, int] | None = (80, 95),
    bend_px: float = 0.0,
    noise: float | tuple[float, float] = (0.002, 0.008),
) -> Capture:
    """A random but reproducible camera pose and photometric setting for a follow-up photo.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    shape : (int, int)
        Frame (H, W) px the pose is drawn for (rotation about its centre).
    rotation_deg : float
        Rotation drawn uniformly in ±rotation_deg.
    scale : float
        Relative scale change drawn in ±scale (0.10 → 0.9-1.1).
    translate : float
        Shift in ±translate × frame size, per axis.
    perspective : float
        Projective coefficients drawn in ±perspective, in 1/mm at the default scale
        (``W/200`` px/mm) in frame-centred coordinates: 0.0005 changes the scale by up to
        ~5 % at the edge of a 200-mm-wide frame.
    exposure : float
        Linear exposure gain drawn in 1 ± exposure.
    white_balance : float
        Per-channel gains drawn in 1 ± white_balance.
    blur_sigma : float or (float, float)
        Gaussian blur σ px (at ``shape``), fixed or a range.
    jpeg_quality : int or (int, int) or None
        JPEG quality, fixed or a range, or None for none.
    bend_px : float
        Largest displacement of a smooth low-frequency bend (px at ``shape``); 0 for none.
    noise : float or (float, float)
        Noise σ in linear reflectance at mid-grey, fixed or a range.

    Returns
    -------
    Capture
    """
    h, w = _check_shape(shape)
    rot = _check_nonneg(rotation_deg, "rotation_deg", 45.0)
    sc = _check_nonneg(scale, "scale", 0.5)
    tr = _check_nonneg(translate, "translate", 0.3)
    persp = _check_nonneg(perspective, "perspective", 0.005)
    ex = _check_nonneg(exposure, "exposure", 0.9)
    wb = _check_nonneg(white_balance, "white_balance", 0.5)
    b_lo, b_hi = _check_range(blur_sigma, "blur_sigma", 0.0, 50.0)
    n_lo, n_hi = _check_range(noise, "noise", 0.0, 0.5)
    bend = _check_nonneg(bend_px, "bend_px", 0.25 * min(h, w))
    q: tuple[float, float] | None = None
    if jpeg_quality is not None:
        q = _check_range(jpeg_quality, "jpeg_quality", 1, 100)
    rng = _rng(seed, 0xCA9)
    theta = float(rng.uniform(-rot, rot))
    s = float(1.0 + rng.uniform(-sc, sc))
    tx, ty = (float(v) for v in rng.uniform(-tr, tr, 2) * np.array([w, h]))
    ppm = w / FRAME_WIDTH_MM
    px, py = (float(v) for v in rng.uniform(-persp, persp, 2) / ppm)
    gain = float(1.0 + rng.uniform(-ex, ex))
    gains = 1.0 + rng.uniform(-wb, wb, 3)
    blur = float(rng.uniform(b_lo, b_hi))
    nz = float(rng.uniform(n_lo, n_hi))
    quality = None if q is None else int(rng.integers(int(q[0]), int(q[1]) + 1))
    cap_seed = int(rng.integers(0, 2**31 - 1))

    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t_neg = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]], dtype=np.float64)
    persp_m = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]], dtype=np.float64)
    ct, st = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    rs = np.array([[s * ct, -s * st, 0], [s * st, s * ct, 0], [0, 0, 1]], dtype=np.float64)
    t_pos = np.array([[1, 0, c[0] + tx], [0, 1, c[1] + ty], [0, 0, 1]], dtype=np.float64)
    hom = t_pos @ rs @ persp_m @ t_neg
    hom /= hom[2, 2]
    return Capture(
        homography=_frozen_array(hom),
        exposure=gain,
        wb_gains=_frozen_array(gains),
        blur_sigma=blur,
        noise=nz,
        jpeg_quality=quality,
        bend_px=bend,
        seed=cap_seed,
        shape=(h, w),
        rotation_deg=theta,
        scale=s,
        translation_px=(tx, ty),
    )


def _bend_params(seed: int) -> np.ndarray:
    """Amplitudes, frequencies (cycles per frame) and phases of the bend: (2, 3, 5)."""
    rng = np.random.default_rng([int(seed), 0xBE4D])
    p = np.empty((2, 3, 5))
    for c in range(2):
        amp = rng.uniform(0.3, 1.0, 3)
        p[c, :, 0] = amp / amp.sum()
        p[c, :, 1] = rng.uniform(0.25, 1.0, 3) * rng.choice([-1.0, 1.0], 3)
        p[c, :, 2] = rng.uniform(0.25, 1.0, 3) * rng.choice([-1.0, 1.0], 3)
        p[c, :, 3] = rng.uniform(0, 2 * math.pi, 3)
        p[c, :, 4] = 0.0
    return p


def _bend_field(
    seed: int, bend_px: float, xn: np.ndarray, yn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement (dx, dy) px at normalised coordinates (x/W, y/H); |d| ≤ bend_px."""
    p = _bend_params(seed)
    out = []
    for c in range(2):
        acc = np.zeros(np.broadcast_shapes(xn.shape, yn.shape), dtype=np.float32)
        separable = xn.ndim == 2 and yn.ndim == 2 and xn.shape[0] == 1 and yn.shape[1] == 1
        for k in range(3):
            a, fx, fy, ph, _ = p[c, k]
            ax = np.float32(2 * math.pi * fx) * xn
            by = np.float32(2 * math.pi * fy) * yn + np.float32(ph)
            if separable:  # sin(A + B) from a row and a column: no per-pixel sine
                acc += np.float32(a) * (np.sin(by) * np.cos(ax) + np.cos(by) * np.sin(ax))
            else:
                acc += np.float32(a) * np.sin(ax + by)
        out.append(acc * np.float32(bend_px / math.sqrt(2.0)))
    return out[0], out[1]


def _scaled_capture(capture: Capture, shape: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """Homography, bend and blur of ``capture`` expressed for a frame of ``shape``."""
    k = shape[1] / capture.shape[1]
    if k == 1.0:
        return np.asarray(capture.homography, dtype=np.float64), capture.bend_px, capture.blur_sigma
    s = np.diag([k, k, 1.0])
    hom = s @ capture.homography @ np.linalg.inv(s)
    return hom / hom[2, 2], capture.bend_px * k, capture.blur_sigma * k


def _map_to_baseline(
    capture: Capture, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(H, W, 2) float32 baseline (x, y) for every pixel of a photo of ``shape``.

    Also returns the map's extent (x min, y min, x max, y max).
    """
    h, w = shape
    hom, bend, _ = _scaled_capture(capture, shape)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    out = np.empty((h, w, 2), dtype=np.float32)
    xn = (xs / w).astype(np.float32)[None, :]
    # Row by row blocks keep memory modest on 24 MP frames.
    block = max(1, 2_000_000 // w)
    ext = [math.inf, math.inf, -math.inf, -math.inf]
    for y0 in range(0, h, block):
        yy = ys[y0 : y0 + block][:, None]
        den = hom[2, 0] * xs[None, :] + hom[2, 1] * yy + hom[2, 2]
        mx = (hom[0, 0] * xs[None, :] + hom[0, 1] * yy + hom[0, 2]) / den
        my = (hom[1, 0] * xs[None, :] + hom[1, 1] * yy + hom[1, 2]) / den
        if bend > 0:
            yn = (yy / h).astype(np.float32)
            dx, dy = _bend_field(capture.seed, bend, xn, yn)
            mx = mx + dx
            my = my + dy
        out[y0 : y0 + block, :, 0] = mx
        out[y0 : y0 + block, :, 1] = my
        ext = [
            min(ext[0], float(mx.min())),
            min(ext[1], float(my.min())),
            max(ext[2], float(mx.max())),
            max(ext[3], float(my.max())),
        ]
    return out, (ext[0], ext[1], ext[2], ext[3])


def _inverse_in_frame(capture: Capture, shape: tuple[int, int]) -> np.ndarray:
    """Baseline-frame (H, W) bool: pixels that the photo taken with ``capture`` sees."""
    h, w = shape
    hom, bend, _ = _scaled_capture(capture, shape)
    inv = np.linalg.inv(hom)
    qx = np.arange(w, dtype=np.float64)[None, :]
    qy = np.arange(h, dtype=np.float64)[:, None]

    def apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        den = m[2, 0] * x + m[2, 1] * y + m[2, 2]
        return (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / den, (
            m[1, 0] * x + m[1, 1] * y + m[1, 2]
        ) / den

    px, py = apply(inv, qx + 0 * qy, qy + 0 * qx)
    if bend > 0:
        # Fixed point of p = H⁻¹(q − bend(p)); the bend is smooth and small, so it converges.
        for _ in range(6):
            dx, dy = _bend_field(
                capture.seed, bend, (px / w).astype(np.float32), (py / h).astype(np.float32)
            )
            px, py = apply(inv, qx - dx, qy - dy)
    return np.asarray((px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1))
