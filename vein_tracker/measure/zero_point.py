"""The zero point of the contrast maps: the small contrast skin near veins reads of its own.

Skin around the veins reads a small non-zero contrast (the larger of two noisy class
maps, the skirt a wide reticular vein leaves in its class map, diffuse bruising or
staining the background filter leaves). It is measured locally on a ring of vein-free
skin 1-3 mm around the veins (:func:`zero_ring`, :data:`ZERO_POINT_MM`), on the very map
each pixel is read from (its baseline class's map on baseline vein pixels, the larger of
the two elsewhere), and removed from both visits alike (:func:`zeroed`,
:func:`zeroed_at`): a cleared vein reads 0, not its surroundings, and a persisting vein
reads the same share in both visits whether or not the follow-up's segmentation found it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..morphology import distance_to
from ..segmentation import VeinContrast
from ..smoothing import SparseSmooth, smooth_sum
from .results import RETICULAR, SPIDER

__all__ = ["ZERO_POINT_MM", "ZeroField", "zero_ring", "zeroed", "zeroed_at"]

#: Skin used for the contrast maps' zero point is at least this far from any vein, mm.
ZERO_POINT_MM = 2.0


def zero_ring(veins: np.ndarray, region: np.ndarray, ppm: float) -> np.ndarray:
    """Vein-free skin 1-3 mm from ``veins``: where :class:`ZeroField` is measured."""
    d = distance_to(veins)
    return region & (d > 0.5 * ZERO_POINT_MM * ppm) & (d <= 1.5 * ZERO_POINT_MM * ppm)


class ZeroField:
    """Local zero points over one ring of vein-free skin (``ring``, see :func:`zero_ring`).

    :meth:`of` gives, for a map, its local mean over the ring (σ 3 mm), blended into
    the ring's global median where the ring is too thin; zero everywhere when the ring
    has fewer than 100 pixels. The ring's own weights are computed once for all the
    maps read on it."""

    def __init__(self, ring: np.ndarray, ppm: float) -> None:
        self.ring = ring
        self.ok = bool(np.count_nonzero(ring) >= 100)
        self.sigma = 1.5 * ZERO_POINT_MM * ppm
        if self.ok:
            den = smooth_sum(ring.astype(np.float32), self.sigma)
            self.w = np.clip(den / 0.05, 0.0, 1.0)  # trust the local mean where the ring is dense
            self.w_rest = 1.0 - self.w
            self.dense = den > 1e-4
            self.den = np.maximum(den, 1e-4)

    def reader(self, at: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """A function giving, for a map ``c``, its zero points at the pixels ``at`` (flat
        indices): ``of(c, at=at)`` to float rounding, without a full-frame pass (the
        ring's smoothing is read at ``at`` only, see :class:`SparseSmooth`)."""
        if not self.ok:
            return lambda c: np.zeros(at.shape, np.float32)
        ring_idx = np.flatnonzero(self.ring)
        smooth = SparseSmooth((self.ring.shape[0], self.ring.shape[1]), ring_idx, at, self.sigma)
        dense, den = self.dense.reshape(-1)[at], self.den.reshape(-1)[at]
        w, w_rest = self.w.reshape(-1)[at], self.w_rest.reshape(-1)[at]

        def read(c: np.ndarray) -> np.ndarray:
            ring_c = np.asarray(c, np.float32).reshape(-1)[ring_idx]
            return self._blend(smooth(ring_c), float(np.median(ring_c)), dense, den, w, w_rest)

        return read

    @staticmethod
    def _blend(
        num: np.ndarray,
        glob: float,
        dense: np.ndarray,
        den: np.ndarray,
        w: np.ndarray,
        w_rest: np.ndarray,
    ) -> np.ndarray:
        """The local mean (``num / den`` where the ring is dense, else the ring's median
        ``glob``) blended into ``glob`` by the ring's weight."""
        loc = np.where(dense, num / den, glob)
        return (w * loc + w_rest * glob).astype(np.float32, copy=False)

    def of(self, c: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """The zero-point map of ``c``; with ``at`` (flat pixel indices) only those
        pixels' zero points, in that order (the same values)."""
        if not self.ok:
            return np.zeros(c.shape if at is None else at.shape, np.float32)
        glob = float(np.median(c[self.ring]))
        num = smooth_sum(np.where(self.ring, c, 0).astype(np.float32, copy=False), self.sigma)
        maps = (num, self.dense, self.den, self.w, self.w_rest)
        if at is not None:
            maps = tuple(m.ravel()[at] for m in maps)
        num, dense, den, w, w_rest = maps
        return self._blend(num, glob, dense, den, w, w_rest)


def zeroed(
    c: np.ndarray, maps: VeinContrast | None, labels: np.ndarray, zero: ZeroField
) -> np.ndarray:
    """``c`` (``maps.of_class(labels)``) less its zero point, each pixel's measured on
    the map it is read from (``c`` itself when the class maps are not known)."""
    z = zero.of(c)
    if maps is None:
        return c - z
    out = c - np.where(labels == 0, z, 0)
    flat = out.reshape(-1)  # a view: ``out`` is a new contiguous array
    for code, m in ((SPIDER, maps.spider), (RETICULAR, maps.reticular)):
        idx = np.flatnonzero(labels == code)
        if idx.size:
            flat[idx] -= zero.of(np.asarray(m, np.float32), at=idx)
    return out


def zeroed_at(
    c: np.ndarray, maps: VeinContrast | None, labels: np.ndarray, zero: ZeroField, at: np.ndarray
) -> np.ndarray:
    """``zeroed(c, maps, labels, zero)`` on the pixels ``at`` only (flat indices), as a
    full-frame map that is 0 elsewhere: for a map only ever read there."""
    read = zero.reader(at)
    lab = labels.reshape(-1)[at]
    vals = np.asarray(c, np.float32).reshape(-1)[at].copy()
    if maps is None:
        vals -= read(c)
    else:
        z_own = read(c)
        vals[lab == 0] -= z_own[lab == 0]
        for code, m in ((SPIDER, maps.spider), (RETICULAR, maps.reticular)):
            sel = lab == code
            if sel.any():
                vals[sel] -= read(np.asarray(m, np.float32))[sel]
    out = np.zeros(c.size, np.float32)
    out[at] = vals
    return out.reshape(c.shape)
