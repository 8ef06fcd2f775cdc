"""A baseline vein map given by hand (a clinician's corrected map, a phantom's truth) as the
baseline's segmentation.

The map says which pixels are veins (and, where known, of which class); the measurement
still needs what the segmentation gives besides: each pixel's contrast (the photo's own
:func:`~vein_tracker.segmentation.vein_contrast` maps, read along the pixel's class),
centrelines and vein ids. A map whose classes are not known (a bool mask) is classified
by colour: blood in a spider reads on the spider map and hardly on the reticular one,
deep blood the other way round (their cross-talk is below 1 %).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..morphology import components, label_boxes, skeleton_of
from ..segmentation import (
    CLASS_NAMES,
    RETICULAR,
    SPIDER,
    Segmentation,
    VeinContrast,
    VeinSegment,
    vein_contrast,
)
from .figures import skeleton_length_px

__all__ = ["classify_by_colour", "map_in_frame", "segmentation_of_map"]


def map_in_frame(
    labels: np.ndarray, *, photo_shape: tuple[int, int], frame_shape: tuple[int, int]
) -> np.ndarray:
    """A baseline vein map brought to the analysis frame (nearest neighbour).

    Parameters
    ----------
    labels : ndarray, shape ``photo_shape`` or ``frame_shape``, uint8 or bool
        0 no vein, 1 spider, 2 reticular; or a bool mask (vein, class unknown).
    photo_shape, frame_shape : tuple of int
        ``(H, W)`` of the baseline photo and of its analysis frame.

    Returns
    -------
    ndarray, shape ``frame_shape``, same dtype

    Raises
    ------
    ValueError
        Not a bool or uint8 map with codes 0, 1, 2, or of neither shape.
    """
    a = labels
    if not isinstance(a, np.ndarray) or a.dtype not in (np.dtype(bool), np.dtype(np.uint8)):
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(
            f"baseline_labels must be a uint8 label map (0 none, 1 spider, 2 reticular) or a "
            f"bool vein mask, got {got}"
        )
    if a.dtype == np.uint8 and int(a.max(initial=0)) > RETICULAR:
        raise ValueError(
            "baseline_labels holds codes other than 0 (none), 1 (spider) and 2 (reticular): "
            "pass a bool mask when the classes are not known"
        )
    shape = tuple(a.shape)
    if shape == tuple(frame_shape):
        return a
    if shape != tuple(photo_shape):
        raise ValueError(
            f"baseline_labels must have the baseline photo's shape {tuple(photo_shape)} or "
            f"its analysis frame's {tuple(frame_shape)}, got {shape}"
        )
    size = (frame_shape[1], frame_shape[0])
    out = cv2.resize(a.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return np.asarray(out).astype(a.dtype)


def classify_by_colour(mask: np.ndarray, contrast: VeinContrast) -> np.ndarray:
    """Class labels of a vein mask whose classes are not known: a vein pixel is a spider's
    where its spider contrast is at least its reticular contrast, else a reticular vein's.

    Pixel by pixel, not vein by vein: spiders lie over and along reticular veins, and one
    connected piece often holds both (on the phantoms, 99.5 % of vein pixels get their
    true class; a vote per 8-connected piece, 70 %).

    Returns
    -------
    ndarray, shape (H, W), uint8
        0 none, 1 spider, 2 reticular.
    """
    out = np.where(contrast.spider >= contrast.reticular, SPIDER, RETICULAR).astype(np.uint8)
    out[~mask] = 0
    return out


def segmentation_of_map(
    photo: np.ndarray,
    labels: np.ndarray,
    *,
    px_per_mm: float,
    leg_mask: np.ndarray,
    sensitivity: float = 0.5,
) -> Segmentation:
    """The segmentation a given vein map stands for, on the photo it was drawn on.

    Parameters
    ----------
    photo : ndarray, shape (H, W, 3), uint8
        The baseline as measured (what :func:`~vein_tracker.segmentation.segment` would
        have been given).
    labels : ndarray, shape (H, W), uint8 or bool
        0 none, 1 spider, 2 reticular; or a bool mask, classified by colour.
    px_per_mm : float
    leg_mask : ndarray, shape (H, W), bool
        The leg.
    sensitivity : float
        Recorded only (the map is not thresholded).

    Returns
    -------
    Segmentation
        Its contrast maps and strength are the photo's; its centrelines the skeletons of
        each class's pixels; its veins the 8-connected pieces of each class, spiders
        first.
    """
    contrast = vein_contrast(photo, px_per_mm=px_per_mm, leg_mask=leg_mask)
    lab = classify_by_colour(labels, contrast) if labels.dtype == bool else labels.copy()
    skeleton = np.zeros(lab.shape, bool)
    vein_ids = np.zeros(lab.shape, np.int32)
    veins: list[VeinSegment] = []
    for code in (SPIDER, RETICULAR):
        m = lab == code
        if not m.any():
            continue
        sk = skeleton_of(m)
        skeleton |= sk
        veins.extend(_veins_of_class(m, sk, contrast, code, len(veins), px_per_mm, vein_ids))
    return Segmentation(
        mask=lab > 0,
        labels=lab,
        strength=contrast.of_class(lab),
        skeleton=skeleton,
        vein_ids=vein_ids,
        veins=tuple(veins),
        px_per_mm=float(px_per_mm),
        px_per_mm_estimated=False,
        leg_mask=contrast.leg_mask,
        sensitivity=float(sensitivity),
        contrast=contrast,
    )


def _veins_of_class(
    m: np.ndarray,
    sk: np.ndarray,
    contrast: VeinContrast,
    code: int,
    first_id: int,
    ppm: float,
    vein_ids: np.ndarray,
) -> list[VeinSegment]:
    """The pieces of one class's mask as veins, numbered from ``first_id + 1``; their ids
    are written into ``vein_ids``."""
    cc = components(m)
    vein_ids.reshape(-1)[cc.idx] = first_id + cc.at
    boxes = label_boxes(cc.at, cc.idx, cc.n, m.shape[1])
    csum = cc.sums(contrast.spider if code == SPIDER else contrast.reticular)
    out = []
    for i in range(1, cc.n):
        x, y, bw, bh = (int(v) for v in boxes[i])
        # the vein's own centreline pixels, within its box (8-connected pieces share none)
        box = (slice(y, y + bh), slice(x, x + bw))
        length_mm = max(skeleton_length_px(sk[box] & (cc.labels[box] == i)), 1.0) / ppm
        area_mm2 = float(cc.areas[i]) / ppm**2
        out.append(
            VeinSegment(
                id=first_id + i,
                cls=CLASS_NAMES[code],
                length_mm=float(length_mm),
                width_mm=float(area_mm2 / length_mm),
                area_mm2=area_mm2,
                contrast=float(csum[i] / cc.areas[i]),
                bbox=(x, y, bw, bh),
            )
        )
    return out
