"""The analysis frame: the scale a comparison works at, and how its maps sit on the photos.

``compare`` works at :data:`ANALYSIS_PX_PER_MM`: a baseline more than
:data:`ANALYSIS_SLACK` times finer is reduced to it with area averaging before anything
else, and the follow-up by the same factor relative to the baseline's long side
(:func:`analysis_frame`). Photos are never enlarged. :class:`AnalysisFrame` brings maps,
boxes and the homography back to the photos' own pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..segmentation import ASSUMED_FIELD_MM

__all__ = [
    "ANALYSIS_PX_PER_MM",
    "ANALYSIS_SLACK",
    "AnalysisFrame",
    "analysis_frame",
    "centre_scale",
    "resize_mask",
    "resize_rgb",
]

#: Scale (px/mm) the comparison works at. Finer photos (a 12 MP phone photo of a
#: 200 mm field is 20 px/mm) are reduced to it first: the segmentation finds veins at
#: this scale anyway (``segmentation.WORK_PX_PER_MM``), and registration, colour
#: normalisation and measurement cost 4x less than at full resolution.
ANALYSIS_PX_PER_MM = 10.0
#: Photos at most this much finer than ``ANALYSIS_PX_PER_MM`` are analysed as they are.
ANALYSIS_SLACK = 1.2


def centre_scale(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """3x3 matrix taking pixel (x, y) of an ``src`` (H, W) image to a resized ``dst`` one
    (pixel centres kept, as ``cv2.resize`` samples)."""
    sx = dst[1] / src[1]
    sy = dst[0] / src[0]
    return np.array(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], np.float64
    )


@dataclass(frozen=True)
class AnalysisFrame:
    """Where a comparison's maps live relative to the photos as loaded (upright).

    Attributes
    ----------
    photo_shape, followup_photo_shape : tuple of int
        ``(H, W)`` of the baseline and follow-up photos.
    baseline_shape, followup_shape : tuple of int
        ``(H, W)`` they were analysed at; the maps of a :class:`Comparison` have
        ``baseline_shape``.
    """

    photo_shape: tuple[int, int]
    baseline_shape: tuple[int, int]
    followup_photo_shape: tuple[int, int]
    followup_shape: tuple[int, int]

    @property
    def scale(self) -> float:
        """Analysis pixels per baseline photo pixel (1.0 when analysed as loaded)."""
        return 0.5 * (
            self.baseline_shape[0] / self.photo_shape[0]
            + self.baseline_shape[1] / self.photo_shape[1]
        )

    @property
    def reduced(self) -> bool:
        return self.baseline_shape != self.photo_shape

    def photo_homography(self, analysis_h: np.ndarray) -> np.ndarray:
        """Lift a follow-up -> baseline homography of the analysis frame to the photos'
        pixels (follow-up photo (x, y) -> baseline photo (x, y)), normalised to h33 = 1."""
        sb = centre_scale(self.photo_shape, self.baseline_shape)
        sf = centre_scale(self.followup_photo_shape, self.followup_shape)
        h = np.linalg.inv(sb) @ np.asarray(analysis_h, np.float64) @ sf
        return h / h[2, 2]

    def to_photo(self, arr: np.ndarray) -> np.ndarray:
        """A mask or label map of the analysis frame at the baseline photo's size
        (nearest neighbour, dtype kept)."""
        a = np.asarray(arr)
        if a.shape[:2] != self.baseline_shape:
            raise ValueError(f"expected a map of shape {self.baseline_shape}, got {a.shape}")
        if not self.reduced:
            return a.copy()
        src = a.astype(np.uint8) if a.dtype == bool else a
        out = cv2.resize(
            src, (self.photo_shape[1], self.photo_shape[0]), interpolation=cv2.INTER_NEAREST
        )
        return out.astype(bool) if a.dtype == bool else np.asarray(out)

    def box_to_photo(self, bbox: Sequence[int]) -> tuple[int, int, int, int]:
        """An ``(x, y, w, h)`` box of the analysis frame, covering the same pixels of the photo."""
        if not self.reduced:
            return (int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3]))
        sx = self.photo_shape[1] / self.baseline_shape[1]
        sy = self.photo_shape[0] / self.baseline_shape[0]
        x0, y0 = math.floor(bbox[0] * sx), math.floor(bbox[1] * sy)
        x1 = min(self.photo_shape[1], math.ceil((bbox[0] + bbox[2]) * sx))
        y1 = min(self.photo_shape[0], math.ceil((bbox[1] + bbox[3]) * sy))
        return (x0, y0, x1 - x0, y1 - y0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": round(self.scale, 6),
            "baseline_shape": list(self.baseline_shape),
            "followup_shape": list(self.followup_shape),
        }


def analysis_frame(
    baseline_shape: tuple[int, ...],
    followup_shape: tuple[int, ...],
    px_per_mm: float | None = None,
) -> AnalysisFrame:
    """The frame :func:`compare` analyses a pair at.

    The baseline is reduced to ``ANALYSIS_PX_PER_MM`` when its scale (given, else
    estimated from the frame size as ``segmentation.estimate_px_per_mm`` does) is more
    than ``ANALYSIS_SLACK`` times finer; the follow-up by the same factor relative to the
    baseline's long side, so a follow-up of the same framing lands at the same scale
    whatever camera took it. Photos are never enlarged.
    """
    bh, bw = int(baseline_shape[0]), int(baseline_shape[1])
    fh, fw = int(followup_shape[0]), int(followup_shape[1])
    ppm = float(px_per_mm) if px_per_mm is not None else max(bh, bw) / ASSUMED_FIELD_MM
    s = ANALYSIS_PX_PER_MM / ppm if ppm > ANALYSIS_SLACK * ANALYSIS_PX_PER_MM else 1.0
    b_new = (max(1, round(bh * s)), max(1, round(bw * s)))
    sf = min(1.0, s * max(bh, bw) / max(fh, fw))
    f_new = (max(1, round(fh * sf)), max(1, round(fw * sf)))
    return AnalysisFrame((bh, bw), b_new, (fh, fw), f_new)


def resize_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A photo reduced to ``shape`` (H, W) by area averaging; the photo itself when it
    already has that shape."""
    if rgb.shape[:2] == shape:
        return rgb
    return np.asarray(cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask brought to ``shape`` (H, W): a pixel is set where at least half of what it
    covers is; the mask itself when it already has that shape."""
    if mask.shape[:2] == shape:
        return mask
    small = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.asarray(small >= 0.5)
