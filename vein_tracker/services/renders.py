"""Pictures the pages show: downscaled previews and the review page's comparison renders.

Owns the overlay colours of veins and of the change map (and their legend), the preview
and resize helpers, and the wipe / blend / checkerboard / overlay / ghost renders. Every
render function is pure: it never modifies its inputs and returns a new
``(H, W, 3) uint8`` RGB array. Nothing here reads a record or a photo file.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from ..io import as_rgb

__all__ = [
    "CHANGE_COLOURS",
    "CHANGE_COLOUR_NAMES",
    "CHANGE_LABELS",
    "PREVIEW_MAX_SIDE",
    "VEIN_COLOURS",
    "VEIN_COLOUR_NAMES",
    "VEIN_LABELS",
    "blend",
    "change_overlay",
    "checkerboard",
    "ghost",
    "legend",
    "preview",
    "roi_overlay",
    "side_by_side",
    "vein_overlay",
    "wipe",
]

#: Longest side of an image sent to the browser, px. Keeps memory flat over a long day.
PREVIEW_MAX_SIDE = 1024

#: Overlay colours, RGB uint8. Spider veins red-magenta, reticular (feeder) veins cyan-blue.
VEIN_COLOURS: Mapping[int, tuple[int, int, int]] = {
    1: (255, 40, 120),  # spider / telangiectasia
    2: (0, 170, 255),  # reticular / feeder
}
VEIN_LABELS: Mapping[int, str] = {1: "spider (< 1 mm)", 2: "reticular / feeder (1–3 mm)"}
VEIN_COLOUR_NAMES: Mapping[int, str] = {1: "pink", 2: "blue"}

#: Change-map codes of ``measure.Comparison.change_map`` and their colours (RGB) and names.
CHANGE_COLOURS: Mapping[int, tuple[int, int, int]] = {
    1: (40, 200, 80),  # cleared: green
    2: (250, 210, 40),  # faded: yellow
    3: (235, 50, 50),  # persisting: red
    4: (170, 80, 255),  # new: violet
    5: (255, 130, 0),  # recanalised: orange
}
CHANGE_LABELS: Mapping[int, str] = {
    1: "cleared",
    2: "faded",
    3: "persisting",
    4: "new",
    5: "recanalised",
}
CHANGE_COLOUR_NAMES: Mapping[int, str] = {
    1: "green",
    2: "yellow",
    3: "red",
    4: "violet",
    5: "orange",
}


# ----------------------------------------------------------------------------- renders


def _check_pair(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = as_rgb(before)
    a = as_rgb(after)
    if b.shape != a.shape:
        raise ValueError(
            f"before and after must have the same shape, got {b.shape} and {a.shape}; "
            "compare the follow-up warped into the baseline frame"
        )
    return b, a


def preview(image: np.ndarray, *, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Downscale an RGB image (or a 2-D mask/label image) so its longest side is ``max_side``.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) uint8, or (H, W) bool/uint8
        Photo, or a mask / label image (resized with nearest neighbour).
    max_side : int
        Longest side of the result in px (>= 16). Smaller images are returned as a copy.

    Returns
    -------
    ndarray
        Same dtype and channel count, at most ``max_side`` px on its longest side.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be >= 16 px, got {max_side}")
    if image.ndim == 3:
        as_rgb(image)
    elif image.ndim != 2:
        raise ValueError(f"image must be (H, W, 3) RGB or (H, W), got shape {image.shape}")
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.ndim == 2:
        src = image.astype(np.uint8) if image.dtype == bool else image
        out = cv2.resize(src, size, interpolation=cv2.INTER_NEAREST)
        return out.astype(bool) if image.dtype == bool else out
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def wipe(before: np.ndarray, after: np.ndarray, *, position: float) -> np.ndarray:
    """Before on the left of a vertical line, after on the right (a wipe comparison).

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
        Aligned images in the same (baseline) frame.
    position : float
        Where the line sits, as a fraction of the width in [0, 1]; 0 shows only after.

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        With a 2-px white divider line.
    """
    b, a = _check_pair(before, after)
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    w = b.shape[1]
    x = round(position * w)
    out = a.copy()
    out[:, :x] = b[:, :x]
    lo, hi = max(0, x - 1), min(w, x + 1)
    out[:, lo:hi] = 255
    return out


def blend(before: np.ndarray, after: np.ndarray, *, alpha: float) -> np.ndarray:
    """Cross-fade: ``(1 - alpha) * before + alpha * after``.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
    alpha : float
        Weight of ``after`` in [0, 1].
    """
    b, a = _check_pair(before, after)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return cv2.addWeighted(b, 1.0 - alpha, a, alpha, 0.0)


def checkerboard(before: np.ndarray, after: np.ndarray, *, tiles: int = 8) -> np.ndarray:
    """Alternate square tiles of before and after; misalignment shows as broken lines.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
    tiles : int
        Number of tiles along the longer side (>= 2).
    """
    b, a = _check_pair(before, after)
    if tiles < 2:
        raise ValueError(f"tiles must be >= 2, got {tiles}")
    h, w = b.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / tiles)))
    yy = (np.arange(h) // step)[:, None]
    xx = (np.arange(w) // step)[None, :]
    use_after = ((yy + xx) % 2).astype(bool)
    return np.where(use_after[:, :, None], a, b)


def _paint(
    rgb: np.ndarray,
    labels: np.ndarray,
    colours: Mapping[int, tuple[int, int, int]],
    *,
    opacity: float,
) -> np.ndarray:
    img = as_rgb(rgb)
    if labels.shape != img.shape[:2]:
        raise ValueError(
            f"labels must have the image's shape {img.shape[:2]}, got {labels.shape}; "
            "resize both with preview() first"
        )
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = img.astype(np.float32)
    for code, colour in colours.items():
        m = labels == code
        if m.any():
            out[m] = (1.0 - opacity) * out[m] + opacity * np.asarray(colour, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def vein_overlay(rgb: np.ndarray, labels: np.ndarray, *, opacity: float = 0.75) -> np.ndarray:
    """Paint segmented veins on a photo: spider and reticular veins in two colours.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    labels : ndarray, shape (H, W), dtype uint8
        0 background, 1 spider, 2 reticular (``Segmentation.labels``).
    opacity : float
        Colour weight in [0, 1] on vein pixels.
    """
    return _paint(rgb, labels, VEIN_COLOURS, opacity=opacity)


def change_overlay(rgb: np.ndarray, change_map: np.ndarray, *, opacity: float = 0.8) -> np.ndarray:
    """Paint the per-pixel change map (cleared, faded, persisting, new, recanalised).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
        Usually the baseline photo (the change map lives in the baseline frame).
    change_map : ndarray, shape (H, W), dtype uint8
        Codes 0-5 of ``Comparison.change_map``.
    opacity : float
        Colour weight in [0, 1].
    """
    return _paint(rgb, change_map, CHANGE_COLOURS, opacity=opacity)


def roi_overlay(rgb: np.ndarray, roi: np.ndarray, *, dim: float = 0.55) -> np.ndarray:
    """Darken what lies outside the region of interest and outline it in white.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    roi : ndarray, shape (H, W), dtype bool
    dim : float
        Brightness factor in [0, 1] applied outside the region.
    """
    img = as_rgb(rgb)
    if roi.shape != img.shape[:2] or roi.dtype != bool:
        raise ValueError(f"roi must be a bool mask of shape {img.shape[:2]}, got {roi.shape}")
    out = img.copy()
    out[~roi] = (out[~roi].astype(np.float32) * dim).astype(np.uint8)
    contours, _ = cv2.findContours(roi.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thick = max(1, round(max(img.shape[:2]) / 400))
    cv2.drawContours(out, contours, -1, (255, 255, 255), thick)
    return out


def ghost(baseline: np.ndarray, *, opacity: float = 0.45) -> np.ndarray:
    """A faded baseline with its strong edges outlined, to help frame the next photo.

    Parameters
    ----------
    baseline : ndarray, shape (H, W, 3), dtype uint8
    opacity : float
        How much of the baseline shows through a white veil, in [0, 1].

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        White-veiled baseline with the leg outline and large structures in dark teal.
    """
    img = as_rgb(baseline)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = cv2.addWeighted(img, opacity, np.full_like(img, 255), 1.0 - opacity, 0.0)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = max(3, (max(img.shape[:2]) // 200) | 1)
    grey = cv2.GaussianBlur(grey, (k, k), 0)
    edges = cv2.Canny(grey, 30, 90) > 0
    edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    out[edges] = (0, 110, 120)
    return out


def side_by_side(before: np.ndarray, after: np.ndarray, *, gap_px: int = 8) -> np.ndarray:
    """Before and after next to each other, separated by a white gap."""
    b, a = _check_pair(before, after)
    if gap_px < 0:
        raise ValueError(f"gap_px must be >= 0, got {gap_px}")
    gap = np.full((b.shape[0], gap_px, 3), 255, np.uint8)
    return np.concatenate([b, gap, a], axis=1)


def legend(kind: str) -> list[tuple[str, str, str]]:
    """Colour legend as ``(hex colour, colour name, label)``; ``kind`` is "veins" or "change"."""
    if kind == "veins":
        table, colour_names, names = VEIN_COLOURS, VEIN_COLOUR_NAMES, VEIN_LABELS
    elif kind == "change":
        table, colour_names, names = CHANGE_COLOURS, CHANGE_COLOUR_NAMES, CHANGE_LABELS
    else:
        raise ValueError(f"kind must be 'veins' or 'change', got {kind!r}")
    return [
        ("#{:02x}{:02x}{:02x}".format(*table[k]), colour_names[k], names[k]) for k in sorted(table)
    ]


# ----------------------------------------------------------------------------- resizing


def _to_size(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A picture (area-averaged) or a mask / label map (nearest neighbour, dtype kept)
    at ``size`` = (w, h); returned as it is when already that size."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    if arr.ndim == 3:
        return np.asarray(cv2.resize(arr, size, interpolation=cv2.INTER_AREA))
    src = arr.astype(np.uint8) if arr.dtype == bool else arr
    out = cv2.resize(src, size, interpolation=cv2.INTER_NEAREST)
    return out.astype(bool) if arr.dtype == bool else np.asarray(out)


def _scaled_homography(h: np.ndarray, s_from: float, s_to: float) -> np.ndarray:
    """A full-resolution homography re-expressed between images scaled by s_from / s_to."""
    a = np.diag([s_to, s_to, 1.0])
    b = np.diag([1.0 / s_from, 1.0 / s_from, 1.0])
    return a @ h @ b
