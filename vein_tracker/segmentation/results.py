"""The segmentation's results: :class:`Segmentation` (what
:func:`~vein_tracker.segmentation.segment` returns), :class:`VeinContrast` (the continuous
contrast maps) and :class:`VeinSegment` (one vein).

Frozen dataclasses and their JSON summaries; no image processing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..confidence import Confidence
from ..scale import Scale
from ..skin import SkinMap
from .params import CLASS_NAMES, RETICULAR, SPIDER


@dataclass(frozen=True, eq=False)
class VeinContrast:
    """Continuous vein contrast maps, in OD units over the local skin background.

    Attributes
    ----------
    spider : ndarray, shape (H, W), float32
        Contrast along the haemoglobin direction, blind to melanin and neutral OD.
    reticular : ndarray, shape (H, W), float32
        Contrast along the deep-vein direction, blind to melanin and haemoglobin.
    leg_mask : ndarray, shape (H, W), bool
        Where the maps are meaningful (leg skin); 0 outside.
    px_per_mm : float
    """

    spider: np.ndarray
    reticular: np.ndarray
    leg_mask: np.ndarray
    px_per_mm: float

    def of_class(self, labels: np.ndarray) -> np.ndarray:
        """Contrast of each pixel's class: ``spider`` where ``labels == 1``, ``reticular``
        where ``labels == 2`` and the larger of the two elsewhere.

        Parameters
        ----------
        labels : ndarray, shape (H, W), uint8 0/1/2
        """
        if labels.shape != self.spider.shape:
            raise ValueError(
                f"labels must have shape {self.spider.shape}, got {labels.shape}; "
                "warp the labels to this photo's frame first"
            )
        out = np.maximum(self.spider, self.reticular)
        np.copyto(out, self.spider, where=labels == SPIDER)
        np.copyto(out, self.reticular, where=labels == RETICULAR)
        return out

    def to_dict(self) -> dict[str, Any]:
        leg = self.leg_mask
        return {
            "shape": list(self.spider.shape),
            "px_per_mm": float(self.px_per_mm),
            "leg_fraction": float(leg.mean()) if leg.size else 0.0,
            "spider_p99": float(np.percentile(self.spider[leg], 99)) if leg.any() else 0.0,
            "reticular_p99": float(np.percentile(self.reticular[leg], 99)) if leg.any() else 0.0,
        }


@dataclass(frozen=True)
class VeinSegment:
    """One connected vein (or vein tree) of one class.

    Attributes
    ----------
    id : int
        Value of this vein in :attr:`Segmentation.vein_ids` (1-based).
    cls : str
        ``"spider"`` or ``"reticular"``.
    length_mm : float
        Centreline length.
    width_mm : float
        Mean width (area / length).
    area_mm2 : float
    contrast : float
        Mean contrast (OD) of the class over the vein's pixels.
    bbox : tuple of int
        ``(x, y, w, h)`` in pixels of the photo.
    """

    id: int
    cls: str
    length_mm: float
    width_mm: float
    area_mm2: float
    contrast: float
    bbox: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cls": self.cls,
            "length_mm": round(self.length_mm, 3),
            "width_mm": round(self.width_mm, 3),
            "area_mm2": round(self.area_mm2, 3),
            "contrast": round(self.contrast, 4),
            "bbox": list(self.bbox),
        }


@dataclass(frozen=True, eq=False)
class Segmentation:
    """Result of :func:`~vein_tracker.segmentation.segment`; every array has the photo's
    shape ``(H, W)``.

    Attributes
    ----------
    mask : ndarray, bool
        Vein pixels.
    labels : ndarray, uint8
        0 none, 1 spider, 2 reticular.
    strength : ndarray, float32
        Vein contrast in OD units of each pixel's class (see :meth:`VeinContrast.of_class`,
        evaluated at the working resolution and upsampled); continuous, ≈ 0 on skin
        without veins, 0 outside the leg.
    skeleton : ndarray, bool
        Vein centrelines (subset of ``mask``).
    vein_ids : ndarray, int32
        0 none, else the :attr:`VeinSegment.id` of the pixel's vein.
    veins : tuple of VeinSegment
    px_per_mm : float
    px_per_mm_estimated : bool
        True when the scale was not given and was estimated from the frame size.
    leg_mask : ndarray, bool
        Leg skin considered (after the region of interest).
    sensitivity : float
    contrast : VeinContrast
        Both classes' continuous contrast maps (what
        :func:`~vein_tracker.segmentation.vein_contrast` returns).
    neutral : ndarray, float32, optional
        Neutral OD contrast over the local skin background: how much each pixel darkens,
        whatever its hue (0 outside the leg). A vein darkens in proportion to its colour
        contrast (:data:`~vein_tracker.segmentation.NEUTRAL_PER_CLASS`); a colour fringe
        hardly darkens, and hair or a shadow darkens far more.
    scale : Scale, optional
        The scale used and where it came from (given, card or estimated, with its range).
    skin : SkinMap, optional
        The skin :func:`vein_tracker.skin.find_skin` found (every region, the cast), at
        the working resolution; None when the caller gave the leg.
    confidence : Confidence, optional
        Whether the map can be trusted (scale below what spider veins need, little skin,
        an estimated scale, a strong cast), with the reasons.
    """

    mask: np.ndarray
    labels: np.ndarray
    strength: np.ndarray
    skeleton: np.ndarray
    vein_ids: np.ndarray
    veins: tuple[VeinSegment, ...]
    px_per_mm: float
    px_per_mm_estimated: bool
    leg_mask: np.ndarray
    sensitivity: float = 0.5
    contrast: VeinContrast | None = None
    neutral: np.ndarray | None = None
    scale: Scale | None = None
    skin: SkinMap | None = None
    confidence: Confidence | None = None

    @property
    def strength_by_class(self) -> dict[str, np.ndarray]:
        """Contrast maps of both classes, ``{"spider": (H, W), "reticular": (H, W)}``."""
        if self.contrast is None:
            return {}
        return {"spider": self.contrast.spider, "reticular": self.contrast.reticular}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        ppm2 = self.px_per_mm**2
        by_class: dict[str, dict[str, float | int]] = {}
        for code, name in CLASS_NAMES.items():
            segs = [v for v in self.veins if v.cls == name]
            by_class[name] = {
                "count": len(segs),
                "length_mm": round(sum(v.length_mm for v in segs), 2),
                "area_mm2": round(float((self.labels == code).sum()) / ppm2, 2),
            }
        return {
            "shape": list(self.mask.shape),
            "px_per_mm": round(float(self.px_per_mm), 4),
            "px_per_mm_estimated": bool(self.px_per_mm_estimated),
            "sensitivity": float(self.sensitivity),
            "vein_pixels": int(self.mask.sum()),
            "leg_pixels": int(self.leg_mask.sum()),
            "by_class": by_class,
            "veins": [v.to_dict() for v in self.veins],
            "scale": None if self.scale is None else self.scale.to_dict(),
            "skin": None if self.skin is None else self.skin.to_dict(),
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
        }
