"""What moved between the visits once the leg is aligned: a hand holding the leg placed
again, the shadow of a gloved hand, a watermark printed at a fixed place in the frame.

The leg's alignment holds on the leg; something else in view that moved between the
photos does not follow it. Compared as if it were leg, the part of the baseline a hand
covered reads as new veins at the follow-up, the part the follow-up's hand covers as
cleared veins, and the hand's own creases and finger gaps (found as veins) as cleared or
new. :func:`moved_parts` finds those parts so the comparison leaves them out.

Method: on a grid of long side :data:`MOTION_SIDE`, the neutral optical density of each
photo, high-passed (shading and exposure removed, the structure a few millimetres across
kept), is cut into blocks; each block of one photo is searched for in the other within
:data:`SEARCH` of its place. A block is *displaced* when it matches the other photo
clearly better elsewhere (normalised correlation at least :data:`MIN_BEST`, and
:data:`MIN_GAIN` above its correlation in place) than where the alignment puts it. A
vein that cleared or faded leaves the follow-up's skin alone there, which matches the
block nowhere, so a change of the veins is not a displacement. Blocks are searched both
ways: the baseline's hand is found where it lay at baseline, the follow-up's where it
lies at follow-up. Displaced blocks joined in groups of at least :data:`MIN_BLOCKS` (an
object the size of a few fingers) are what moved, closed and filled over the object.

This module only finds the moved parts; the registration reports them
(:attr:`~.result.Registration.agrees`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..morphology import dilate_disc, erode_disc
from .checks import ncc
from .features import highpass

__all__ = ["MIN_BEST", "MIN_BLOCKS", "MIN_GAIN", "MOTION_SIDE", "SEARCH", "moved_parts"]

#: Long side (px) of the grid blocks are matched on.
MOTION_SIDE = 500
#: Block side and search radius, as shares of the grid's long side (25 and 15 px: about
#: 20 and 13 mm when the photo's long side spans 420 mm of leg).
BLOCK = 0.05
SEARCH = 0.03
#: Smallest displacement (grid px) counted as a move: larger than what is left of a
#: leg's bend after the non-rigid refinement.
MIN_SHIFT_PX = 3.0
#: A block is displaced when its best correlation elsewhere is at least MIN_BEST and
#: beats its correlation in place by MIN_GAIN.
MIN_BEST = 0.7
MIN_GAIN = 0.4
#: Fewest displaced blocks (half-overlapping) joined together that make a moved part.
MIN_BLOCKS = 8
#: Scale (grid px) of the high-pass: the structure of fingers, creases and shadows.
_HIGHPASS_PX = 8.0
#: Share of a block that must be skin, and of its search window skin in the other photo.
_BLOCK_SKIN = 0.9
_WINDOW_SKIN = 0.6


def moved_parts(
    od_b: np.ndarray, od_fw: np.ndarray, skin_b: np.ndarray, skin_fw: np.ndarray
) -> np.ndarray:
    """The skin that moved between the visits once the leg is aligned.

    Parameters
    ----------
    od_b, od_fw : ndarray, shape (h, w), float
        Neutral optical density of the baseline and of the follow-up warped onto it
        (same grid).
    skin_b, skin_fw : ndarray, shape (h, w), bool
        Skin of the baseline, and of the warped follow-up where it covers the baseline.

    Returns
    -------
    ndarray, shape (h, w), bool
        Skin of either photo lying in a part that moved (all False when nothing did).
    """
    h, w = od_b.shape
    s = min(1.0, MOTION_SIDE / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))

    def grid(a: np.ndarray, interp: int) -> np.ndarray:
        return np.asarray(cv2.resize(a, size, interpolation=interp))

    hp_b = highpass(grid(od_b.astype(np.float32), cv2.INTER_AREA), _HIGHPASS_PX)
    hp_f = highpass(grid(od_fw.astype(np.float32), cv2.INTER_AREA), _HIGHPASS_PX)
    sk_b = grid(skin_b.astype(np.uint8), cv2.INTER_NEAREST) > 0
    sk_f = grid(skin_fw.astype(np.uint8), cv2.INTER_NEAREST) > 0
    side = max(size)
    block = max(8, round(BLOCK * side))
    search = max(4, round(SEARCH * side))
    displaced = _displaced(hp_b, hp_f, sk_b, sk_f, block, search) | _displaced(
        hp_f, hp_b, sk_f, sk_b, block, search
    )
    moved = _grouped(displaced, block, (size[1], size[0]))
    if not moved.any():
        return np.zeros((h, w), bool)
    out = cv2.resize(moved.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return np.asarray(out & (skin_b | skin_fw))


def _displaced(
    a: np.ndarray, b: np.ndarray, skin_a: np.ndarray, skin_b: np.ndarray, block: int, search: int
) -> np.ndarray:
    """Blocks of ``a`` (on its skin) that match ``b`` clearly better elsewhere than in
    place, as a grid of blocks at a stride of half a block (bool)."""
    h, w = a.shape
    step = block // 2
    ys = range(0, max(0, h - block) + 1, step)
    xs = range(0, max(0, w - block) + 1, step)
    out = np.zeros((len(ys), len(xs)), bool)
    whole = np.ones((block, block), bool)  # every pixel of a block, for checks.ncc
    for gy, y in enumerate(ys):
        for gx, x in enumerate(xs):
            if skin_a[y : y + block, x : x + block].mean() < _BLOCK_SKIN:
                continue
            y0, y1 = max(0, y - search), min(h, y + block + search)
            x0, x1 = max(0, x - search), min(w, x + block + search)
            if skin_b[y0:y1, x0:x1].mean() < _WINDOW_SKIN:
                continue
            tpl = a[y : y + block, x : x + block]
            win = b[y0:y1, x0:x1]
            if float(tpl.std()) < 1e-6 or float(win.std()) < 1e-6:
                continue
            # No match elsewhere (at most 1) can beat a block that already correlates
            # over 1 - MIN_GAIN in place by MIN_GAIN: most of a well-aligned leg.
            here = b[y : y + block, x : x + block]
            if ncc(tpl, here, whole) > 1.0 - MIN_GAIN + 1e-3:
                continue
            corr = cv2.matchTemplate(win, tpl, cv2.TM_CCOEFF_NORMED)
            in_place = float(corr[y - y0, x - x0])
            iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
            best = float(corr[iy, ix])
            shift = float(np.hypot(iy - (y - y0), ix - (x - x0)))
            out[gy, gx] = best >= MIN_BEST and best - in_place >= MIN_GAIN and shift >= MIN_SHIFT_PX
    return out


def _grouped(displaced: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    """The parts made of at least :data:`MIN_BLOCKS` displaced blocks joined together,
    at the grid's ``shape``, closed and with their holes filled."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        displaced.astype(np.uint8), connectivity=8
    )
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_BLOCKS)
    keep = keep[keep > 0]
    out = np.zeros(shape, np.uint8)
    if keep.size == 0:
        return out > 0
    step = block // 2
    for gy, gx in zip(*np.nonzero(np.isin(labels, keep)), strict=True):
        out[gy * step : gy * step + block, gx * step : gx * step + block] = 1
    # Close gaps between displaced blocks (flat skin between fingers), then fill what the
    # part encloses (the smooth back of a hand matches equally well anywhere).
    from scipy.ndimage import binary_fill_holes  # lazy: a slow import

    closed = erode_disc(dilate_disc(out > 0, block / 2), block / 2)
    return np.asarray(binary_fill_holes(closed), bool)
