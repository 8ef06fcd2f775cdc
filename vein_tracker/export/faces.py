"""The export's no-face check: frontal faces found with scikit-image's LBP cascade.

Owns :func:`detect_faces` (several scales and rotations, a vote across scales) and
:func:`face_structure`, the contrast test that throws out the cascade's false alarms on
plain skin. Works on arrays only; it never reads records, and it never decides what is
exported (:func:`vein_tracker.export.compose_pair` refuses a pair with a face in it).
scikit-image and OpenCV are imported inside the functions that need them, so importing
the export loads neither.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..io import Photo, as_rgb

__all__ = ["FACE_MIN_DETAIL", "FACE_MIN_RANGE", "detect_faces", "face_structure"]


@functools.lru_cache(maxsize=1)
def _face_cascade() -> Any:
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def _faces_at(
    grey0: np.ndarray, *, min_face_frac: float, rotations: Sequence[int]
) -> list[tuple[float, float, float, float]]:
    """Cascade hits (x, y, w, h) as fractions of the (unturned) image size."""
    sh, sw = grey0.shape
    short = min(sh, sw)
    min_px = max(24, int(short * min_face_frac))
    if min_px > short:
        return []
    out = []
    for angle in dict.fromkeys(rotations):
        grey = np.ascontiguousarray(np.rot90(grey0, k=angle // 90))
        found = _face_cascade().detect_multi_scale(
            img=grey,
            scale_factor=1.2,
            step_ratio=1.0,
            min_size=(min_px, min_px),
            max_size=(short, short),
            # 6 overlapping hits: the shipped cascade's default of 4 fires now and then
            # on skin texture; 6 still finds the astronaut's face at 1/5 of the frame.
            min_neighbor_number=6,
        )
        for f in found:
            r0, c0, fh, fw = f["r"], f["c"], f["height"], f["width"]
            # Map the box back from the turned image (np.rot90 turns counter-clockwise).
            if angle == 0:
                x, y, bw, bh = c0, r0, fw, fh
            elif angle == 90:
                x, y, bw, bh = sw - r0 - fh, c0, fh, fw
            elif angle == 180:
                x, y, bw, bh = sw - c0 - fw, sh - r0 - fh, fw, fh
            else:
                x, y, bw, bh = r0, sh - c0 - fw, fh, fw
            out.append((x / sw, y / sh, bw / sw, bh / sh))
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-12, min(a[2] * a[3], b[2] * b[3]))


#: A face's box spans a wide range of brightness (eyes, brows, nostrils, mouth, hair
#: against skin): its 5th-95th percentile luminance range, over its mean, is at least
#: this. Measured (benchmarks/face_check.py): real faces 0.52-1.59 (the astronaut and
#: faces pasted into leg photos at 1/8-2/5 of the frame, turned, in colour and grey);
#: the cascade's false alarm on the bundled leg photo c02 (plain skin with hairs) 0.075.
FACE_MIN_RANGE = 0.25
#: ... and its fine detail (luminance minus a blur of 1/8 of the box, std over mean) is at
#: least this: real faces 0.15-0.39, the false alarm 0.014.
FACE_MIN_DETAIL = 0.05


def face_structure(grey: np.ndarray) -> tuple[float, float]:
    """Brightness range and fine detail of a candidate face box (see :data:`FACE_MIN_RANGE`).

    Parameters
    ----------
    grey : ndarray, shape (h, w), float
        The box's luminance, any scale (both measures are relative to its mean).

    Returns
    -------
    (range, detail) : tuple of float
    """
    import cv2

    g = np.asarray(grey, np.float32)
    if g.ndim != 2 or min(g.shape) < 4:
        raise ValueError(f"grey must be a 2-D box of at least 4x4 px, got shape {g.shape}")
    g = np.asarray(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA), np.float32)
    mean = max(float(g.mean()), 1e-6)
    lo, hi = np.percentile(g, [5, 95])
    detail = float(np.std(g - cv2.GaussianBlur(g, (0, 0), 6.0))) / mean
    return float(hi - lo) / mean, detail


def detect_faces(
    image: Photo | np.ndarray,
    *,
    sizes_px: Sequence[int] = (360, 480, 640),
    min_face_frac: float = 0.08,
    rotations: Sequence[int] = (0, 90, 270),
    verify: bool = True,
) -> tuple[tuple[int, int, int, int], ...]:
    """Frontal faces in ``image`` with scikit-image's LBP cascade.

    The search runs on copies downscaled to each of ``sizes_px`` (longer side, px;
    never enlarged). With three or more distinct sizes a face counts only when at
    least two sizes find it at the same place: skin texture, moles and hair fool
    the cascade at one scale now and then, a real face is found at several.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), dtype uint8
    sizes_px : sequence of int
        Longer sides of the copies searched, px.
    min_face_frac : float
        Smallest face searched, as a fraction of the image's shorter side (0–1).
    rotations : sequence of {0, 90, 180, 270}
        Also search the image turned by these angles (degrees counter-clockwise), for
        a face lying sideways in the frame (a client lying on the couch).
    verify : bool
        Keep only boxes with a face's contrast (:func:`face_structure`): the cascade
        also fires on plain skin with a few hairs, which has next to none. Skin tone
        is deliberately not required: under a colour cast a real face can fall outside
        any skin-tone range, and a missed face is worse than a pair left out.

    Returns
    -------
    tuple of (x, y, width, height)
        Face boxes in px of ``image`` (axis-aligned bounds); empty when no face is found.
    """
    rgb = as_rgb(image)
    if not 0.0 < min_face_frac <= 1.0:
        raise ValueError(f"min_face_frac must be in (0, 1], got {min_face_frac}")
    if any(r not in (0, 90, 180, 270) for r in rotations):
        raise ValueError(f"rotations must be taken from 0, 90, 180, 270, got {tuple(rotations)}")
    if not sizes_px or any(int(v) < 48 for v in sizes_px):
        raise ValueError(f"sizes_px must be one or more sizes >= 48 px, got {tuple(sizes_px)}")
    h, w = rgb.shape[:2]
    grey_full = Image.fromarray(rgb).convert("L")
    scales = sorted({min(1.0, int(v) / max(h, w)) for v in sizes_px})
    per_scale = []
    for scale in scales:
        pil = grey_full
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            pil = grey_full.resize(size, Image.Resampling.BOX)
        grey = np.asarray(pil, dtype=np.float64) / 255.0
        per_scale.append(_faces_at(grey, min_face_frac=min_face_frac, rotations=rotations))
    need = 2 if len(per_scale) >= 3 else 1
    kept: list[tuple[float, float, float, float]] = []
    for i, boxes in enumerate(per_scale):
        for box in boxes:
            votes = 1 + sum(
                any(_overlap(box, other) > 0.5 for other in per_scale[j])
                for j in range(len(per_scale))
                if j != i
            )
            if votes >= need and not any(_overlap(box, k) > 0.5 for k in kept):
                kept.append(box)
    if verify and kept:
        lum = np.asarray(grey_full, np.float32)
        kept = [b for b in kept if _face_like(lum, b)]
    return tuple(
        (round(x * w), round(y * h), round(bw * w), round(bh * h)) for x, y, bw, bh in kept
    )


def _face_like(lum: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    h, w = lum.shape
    x0, y0 = max(0, round(box[0] * w)), max(0, round(box[1] * h))
    x1, y1 = min(w, round((box[0] + box[2]) * w)), min(h, round((box[1] + box[3]) * h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return True  # too small to judge: keep it (a missed face is the worse mistake)
    rng, detail = face_structure(lum[y0:y1, x0:x1])
    return rng >= FACE_MIN_RANGE and detail >= FACE_MIN_DETAIL
