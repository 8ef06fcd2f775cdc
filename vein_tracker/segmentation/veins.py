"""The connected veins of each class (:class:`~.results.VeinSegment`: length, width,
area, contrast, box) and the map of their ids.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..morphology import Components, components
from .params import _SKELETON_STEP, CLASS_NAMES, RETICULAR, SPIDER
from .results import VeinSegment
from .signals import _Maps


def _centreline_lengths_px(cc: Components, skeleton: np.ndarray) -> np.ndarray:
    """Each component's centreline length in pixels, at least 1 (index 0 is the
    background): its skeleton pixels, each :data:`~.params._SKELETON_STEP` long on
    average."""
    return np.maximum(cc.sums(skeleton) * _SKELETON_STEP, 1.0)


def _vein_objects(
    labels: np.ndarray,
    skeleton: np.ndarray,
    maps: _Maps,
    reticular: np.ndarray,
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, tuple[VeinSegment, ...]]:
    """Connected veins of each class at the working level, ids resized to ``out_shape``."""
    ppm = maps.ppm_work
    vein_ids = np.zeros(labels.shape, np.int32)
    veins: list[VeinSegment] = []
    next_id = 1
    f = out_shape[1] / labels.shape[1]
    for code in (SPIDER, RETICULAR):
        m = labels == code
        if not m.any():
            continue
        cc = components(m)
        n, idx = cc.n, cc.idx
        area = cc.areas.astype(np.float64)
        stats = cc.boxes()
        lengths_px = _centreline_lengths_px(cc, skeleton)
        csum = cc.sums(maps.spider if code == SPIDER else reticular)
        ids = np.arange(n, dtype=np.int32) + np.int32(next_id - 1)
        ids[0] = 0
        for i in range(1, n):
            length_px = float(lengths_px[i])
            x, y, bw, bh = (float(v) for v in stats[i, :4])
            veins.append(
                VeinSegment(
                    id=int(ids[i]),
                    cls=CLASS_NAMES[code],
                    length_mm=float(length_px / ppm),
                    width_mm=float(area[i] / length_px / ppm),
                    area_mm2=float(area[i] / ppm**2),
                    contrast=float(csum[i] / area[i]),
                    bbox=(
                        int(round(x * f)),
                        int(round(y * f)),
                        max(1, int(round(bw * f))),
                        max(1, int(round(bh * f))),
                    ),
                )
            )
        next_id += n - 1
        vein_ids.ravel()[idx] = ids[cc.at]
    if vein_ids.shape != out_shape:
        up = cv2.resize(vein_ids, (out_shape[1], out_shape[0]), interpolation=cv2.INTER_NEAREST)
        return np.asarray(up, dtype=np.int32), tuple(veins)
    return vein_ids, tuple(veins)
