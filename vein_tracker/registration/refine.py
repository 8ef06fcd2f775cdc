"""Refining a coarse homography: ECC on the skin's high-passed neutral OD, then an optional
smooth, bounded non-rigid flow.

ECC (``cv2.findTransformECCWithMask``, homography motion) runs on the refine grid reduced
to ``ECC_SIDE``, on the usable skin only, and is kept only when it stays near the feature
estimate. The non-rigid stage is DIS optical flow between the baseline and the warped
follow-up, smoothed by normalised convolution on skin, robustly re-weighted and bounded
(``MAX_FLOW``); it is kept only when it raises the correlation.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..morphology import erode_square
from .checks import ncc
from .features import grid_matrix
from .result import apply_h

__all__ = ["ECC_ITERATIONS", "ECC_SIDE", "MAX_FLOW", "ecc_refine", "nonrigid_flow"]

ECC_ITERATIONS = 10
#: Long side (px) of the grid ECC runs on.
ECC_SIDE = 640
#: Largest non-rigid residual displacement, as a fraction of the long side (20 px at 2000).
MAX_FLOW = 0.01


def ecc_refine(
    ch_b: np.ndarray, ch_f: np.ndarray, tmask: np.ndarray, imask: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """ECC homography refinement of ``h`` (follow-up -> baseline, refine grid).

    Runs on a grid reduced to ``ECC_SIDE`` and on the template's bounding box of
    usable skin only; keeps ``h`` if ECC fails or wanders from the feature estimate.
    """
    ys, xs = np.nonzero(tmask[::4, ::4])
    if ys.size < 50:
        return h
    bh, bw = ch_b.shape
    x0, x1 = max(0, xs.min() * 4 - 4), min(bw, xs.max() * 4 + 8)
    y0, y1 = max(0, ys.min() * 4 - 4), min(bh, ys.max() * 4 + 8)
    e = min(1.0, ECC_SIDE / max(bh, bw))

    def shrink(x: np.ndarray, interp: int) -> np.ndarray:
        if e >= 1.0:
            return x
        # An explicit size: with fx/fy OpenCV maps by fx, not by the rounded size ratio.
        size = (max(1, round(x.shape[1] * e)), max(1, round(x.shape[0] * e)))
        return np.asarray(cv2.resize(x, size, interpolation=interp))

    tb = shrink(ch_b[y0:y1, x0:x1], cv2.INTER_AREA)
    tm = shrink(tmask[y0:y1, x0:x1].astype(np.uint8), cv2.INTER_NEAREST)
    fi = shrink(ch_f, cv2.INTER_AREA)
    fm = shrink(imask.astype(np.uint8), cv2.INTER_NEAREST)
    # Template px -> baseline refine px -> follow-up refine px -> follow-up ECC px.
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    m_t = grid_matrix((y1 - y0, x1 - x0), tb.shape) @ shift  # baseline refine -> template
    m_i = grid_matrix(ch_f.shape, fi.shape)  # follow-up refine -> ECC input
    warp = m_i @ np.linalg.inv(h) @ np.linalg.inv(m_t)
    warp = (warp / warp[2, 2]).astype(np.float32)
    try:
        _, warp_out = cv2.findTransformECCWithMask(
            tb,
            fi,
            tm,
            fm,
            warp,
            cv2.MOTION_HOMOGRAPHY,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5),
            3,
        )
    except cv2.error:
        # ECC can fail to converge on low-texture pairs; the feature homography stands.
        return h
    inv_new = np.linalg.inv(m_i) @ np.asarray(warp_out, np.float64) @ m_t
    h_new = np.linalg.inv(inv_new)
    h_new /= h_new[2, 2]
    # Accept the refinement only if it stays close to the feature estimate.
    corners = np.array([[0, 0], [bw, 0], [0, bh], [bw, bh]], dtype=np.float64)
    moved = np.abs(apply_h(h_new, corners) - apply_h(h, corners)).max()
    if np.isfinite(moved) and moved < 0.03 * max(bh, bw):
        return h_new
    return h


def _masked_smooth(
    flow: np.ndarray, weight: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution of a flow field with a Gaussian, weights in [0, 1].

    Wide kernels run on a grid reduced by up to 4 (the sums are linear, so averaging
    first and blurring after is nearly the same) and come back bilinearly.
    """
    h, w = weight.shape
    k = int(min(4, max(1, sigma // 3)))
    stack = np.dstack([flow[..., 0] * weight, flow[..., 1] * weight, weight]).astype(np.float32)
    if k > 1:
        small = cv2.resize(stack, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / k)
        stack = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    else:
        stack = np.asarray(cv2.GaussianBlur(stack, (0, 0), sigma))
    den = np.maximum(stack[..., 2], 1e-3)
    out = np.stack([stack[..., 0] / den, stack[..., 1] / den], axis=-1)
    return out.astype(np.float32), np.ascontiguousarray(stack[..., 2])


def nonrigid_flow(
    ch_b: np.ndarray,
    ch_fw: np.ndarray,
    qmask: np.ndarray,
) -> tuple[np.ndarray | None, float, float]:
    """Smooth residual flow between baseline and warped follow-up channels (refine grid)."""
    h, w = ch_b.shape
    # DIS on a half-resolution pair: the residual motion is smooth and small.
    s = 0.5
    small = (round(w * s), round(h * s))
    sd = float(np.std(ch_b[qmask])) + 1e-6

    def u8(x: np.ndarray) -> np.ndarray:
        y = cv2.resize(x, small, interpolation=cv2.INTER_AREA)
        return np.asarray(np.clip(y / sd * 40.0 + 128.0, 0, 255), np.uint8)

    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    raw = np.asarray(dis.calc(u8(ch_b), u8(ch_fw), None))  # type: ignore[call-overload]
    # Patches that straddle the leg outline see the backdrop: keep away from it.
    inner = erode_square(cv2.resize(qmask.astype(np.uint8), small) > 0, 9)
    weight = inner.astype(np.float32)
    sigma = max(4.0, 0.03 * max(small))
    smooth, wsum = _masked_smooth(raw, weight, sigma=sigma)
    # Robust re-weighting: vectors far from the smooth field are DIS failures (flat
    # skin, aperture problem along hairs), not motion.
    for _ in range(2):
        dev = np.sqrt(((raw - smooth) ** 2).sum(axis=-1))
        sel = inner & np.isfinite(dev)
        if sel.sum() < 100:
            return None, 0.0, ncc(ch_b, ch_fw, qmask)
        cut = max(0.75, 3.0 * float(np.median(dev[sel])))
        weight = (inner & (dev < cut)).astype(np.float32)
        smooth, wsum = _masked_smooth(raw, weight, sigma=sigma)
    # Where few vectors are near (leg outline, veins, frame border) the field comes from a
    # wider neighbourhood, and fades to zero only far from any usable skin.
    wide, wsum_wide = _masked_smooth(raw, weight, sigma=3.0 * sigma)
    a = np.clip(wsum / 0.2, 0.0, 1.0)[..., None]
    b = np.clip(wsum_wide / 0.1, 0.0, 1.0)[..., None]
    smooth = a * smooth + (1.0 - a) * b * wide
    # Bound: a leg that turns or bends within one treatment area moves little.
    mag = np.sqrt(smooth[..., 0] ** 2 + smooth[..., 1] ** 2)
    limit = MAX_FLOW * max(small)
    smooth *= np.minimum(1.0, limit / np.maximum(mag, 1e-6))[..., None]
    flow = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR) / s
    mx = (np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]).astype(np.float32)
    my = (np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]).astype(np.float32)
    refined = cv2.remap(ch_fw, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    before = ncc(ch_b, ch_fw, qmask)
    after = ncc(ch_b, refined, qmask)
    if not (np.isfinite(after) and np.isfinite(before)) or after <= before + 0.005:
        return None, 0.0, before
    err_b = float(np.mean(np.abs(ch_b[qmask] - ch_fw[qmask])))
    err_a = float(np.mean(np.abs(ch_b[qmask] - refined[qmask])))
    gain = 1.0 - err_a / max(err_b, 1e-9)
    return np.asarray(flow, np.float32), gain, after
