"""Gaussian smoothing of maps, for the segmentation and the measurement: plain, on a mask
(normalised convolution), at a reduced resolution for wide kernels, and read at a few
pixels without a full-frame pass.

:func:`smooth_sum` blurs wide kernels on a grid reduced by ``f = σ // 3`` (box means over
f x f blocks, a Gaussian of σ / f, bilinear read-back); :class:`SparseSmooth` gives the
same values at chosen pixels of a map that is zero but at chosen others, from those
pixels alone (the supports of the contrast ratio, the zero point's ring).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["SparseSmooth", "gauss", "smooth_on_mask", "smooth_sum"]


def gauss(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of σ ``sigma_px`` (kernel 3 σ each side) as float32; a copy at σ 0."""
    if sigma_px <= 0:
        return img.astype(np.float32, copy=True)
    k = int(2 * math.ceil(3 * sigma_px) + 1)
    return np.asarray(
        cv2.GaussianBlur(img.astype(np.float32, copy=False), (k, k), sigma_px), dtype=np.float32
    )


def smooth_on_mask(values: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Normalised convolution: Gaussian average of ``values`` over ``mask`` pixels only.

    Parameters
    ----------
    values : ndarray, shape (H, W), float
    mask : ndarray, shape (H, W), bool
    sigma_px : float
        Gaussian σ in pixels (0 returns ``values`` unchanged inside the mask).

    Returns
    -------
    ndarray, float32, shape (H, W)
        The local mean over mask pixels; 0 outside the mask.
    """
    m = mask.astype(np.float32)
    v = np.where(mask, values, 0).astype(np.float32)
    num = gauss(v, sigma_px)
    den = gauss(m, sigma_px)
    out = np.zeros(v.shape, dtype=np.float32)
    np.divide(num, den, out=out, where=mask & (den > 1e-6))
    return out


def smooth_sum(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur, computed at a reduced resolution when σ is large (same result to ~1 %)."""
    f = max(1, int(sigma_px // 3.0))
    if f == 1:
        return gauss(img, sigma_px)
    h, w = img.shape
    small = cv2.resize(
        img.astype(np.float32, copy=False),
        (max(1, math.ceil(w / f)), max(1, math.ceil(h / f))),
        interpolation=cv2.INTER_AREA,
    )
    sm = gauss(small, sigma_px / f)
    return np.asarray(cv2.resize(sm, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


class SparseSmooth:
    """``smooth_sum(v, σ)`` read at the ``dst`` pixels, for a map ``v`` that is zero
    outside the ``src`` pixels, from ``v``'s values at ``src`` alone (flat indices).

    The same reduced-resolution blur as :func:`smooth_sum` (box means over f x f
    blocks, a Gaussian of σ / f, bilinear read-back at ``cv2.resize``'s pixel centres)
    without a full-frame pass: the blocks are summed from the ``src`` pixels and the
    result is interpolated at the ``dst`` pixels only. The same values to float
    rounding when the frame is a whole number of blocks (the analysis frames are);
    otherwise the partial blocks at the right and bottom edges are averaged over
    their own pixels.
    """

    def __init__(
        self, shape: tuple[int, int], src: np.ndarray, dst: np.ndarray, sigma_px: float
    ) -> None:
        h, w = shape
        self.shape = (h, w)
        self.src = src
        self.dst = dst
        self.sigma = float(sigma_px)
        self.f = f = max(1, int(sigma_px // 3.0))
        if f == 1:
            return
        hs, ws = math.ceil(h / f), math.ceil(w / f)
        self.small = (hs, ws)
        ys, xs = np.divmod(src, w)
        self.block = (ys // f) * ws + xs // f
        bh = np.minimum(f, h - f * np.arange(hs))
        bw = np.minimum(f, w - f * np.arange(ws))
        self.inv_n = (1.0 / (bh[:, None] * bw[None, :])).ravel()

        def axis(d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            s = (d + 0.5) / f - 0.5
            i0 = np.floor(s).astype(np.int64)
            a = (s - i0).astype(np.float32)
            a[i0 < 0] = 0.0
            a[i0 >= n - 1] = 0.0
            i0 = np.clip(i0, 0, n - 1)
            return i0, np.minimum(i0 + 1, n - 1), a

        yd, xd = np.divmod(dst, w)
        y0, y1, ay = axis(yd, hs)
        x0, x1, ax = axis(xd, ws)
        self.at = (y0 * ws + x0, y0 * ws + x1, y1 * ws + x0, y1 * ws + x1)
        self.wts = ((1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax)

    def __call__(self, v_src: np.ndarray) -> np.ndarray:
        if self.f == 1:
            full = np.zeros(self.shape[0] * self.shape[1], np.float32)
            full[self.src] = v_src
            return gauss(full.reshape(self.shape), self.sigma).ravel()[self.dst]
        sums = np.bincount(self.block, weights=v_src, minlength=self.inv_n.size)
        small = (sums * self.inv_n).astype(np.float32).reshape(self.small)
        sm = gauss(small, self.sigma / self.f).ravel()
        out = sm[self.at[0]] * self.wts[0]
        for i in (1, 2, 3):
            out += sm[self.at[i]] * self.wts[i]
        return out
