"""The segmentation's signals (steps 1-3 of the package docstring) and the contrast maps.

Optical density at the working level, its colour projections at the half level, the
local skin background (veins left out), hair and moles filled in, and what is built from
them: the maps the centrelines and footprints are found on (:class:`_Maps`, the
guided filters of the JPEG note) and :func:`vein_contrast`'s continuous contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..checks import check_mask, check_px_per_mm
from ..io import Photo, as_rgb
from ..skin import SkinMap
from .leg import _coarse_leg, _leg_full
from .levels import _levels, _resize
from .occlusion import _occluding_edges
from .params import (
    _BG_RIM_MM,
    _BG_SIGMA_MM,
    _DARK_OD,
    _GF_EPS,
    _GF_EPS_RETIC,
    _GF_RADIUS_PX,
    _HAIR_EXCESS_OD,
    _HAIR_EXCESS_REL,
    _HAIR_RIM_MM,
    _NEUTRAL_PER_RETIC,
    _NEUTRAL_PER_SPIDER,
    _OD_LUT,
    PROJECTION,
)
from .results import VeinContrast


@dataclass(frozen=True, eq=False)
class _Maps:
    """Internal: contrast maps at the working level L0 and at half of it (L1)."""

    spider: np.ndarray  # (H0, W0) float32 spider contrast at L0
    neutral: np.ndarray  # (H0, W0) float32 neutral contrast at L0 (full-resolution luminance)
    half: np.ndarray  # (H1, W1, 4) float32 at L1: spider, reticular, neutral, deep chroma
    retic_detect: np.ndarray  # (H1, W1) float32: reticular contrast guided by luminance
    hair: np.ndarray  # (H1, W1) bool: hair, moles and other neutral-dark marks at L1 (core)
    leg: np.ndarray  # (H0, W0) bool
    leg_half: np.ndarray  # (H1, W1) bool
    leg_coarse: np.ndarray  # bool at the background level L2
    ppm_work: float
    ppm_half: float
    ppm_coarse: float
    skin: SkinMap | None  # what find_skin said, when the leg was found here
    dark_coarse: np.ndarray  # bool at L2: skin too dark for its OD to be measured
    occluding: np.ndarray  # (H0, W0) bool: edges of one skin surface over another
    occluding_coarse: np.ndarray  # bool at L2: ``occluding`` where it touches a coarse pixel


@dataclass(frozen=True, eq=False)
class _Signals:
    """Internal: what both the segmentation's maps and :func:`vein_contrast` start from."""

    od: np.ndarray  # (H0, W0, 3) float32 optical density at the working level L0
    half: np.ndarray  # (H1, W1, 4) float32 contrast at L1 (hair and moles filled in)
    bg: np.ndarray  # (H2, W2, 4) float32 skin background at the background level L2
    hair: np.ndarray  # (H1, W1) bool
    leg: np.ndarray  # (H0, W0) bool
    leg_half: np.ndarray  # (H1, W1) bool
    leg_coarse: np.ndarray  # (H2, W2) bool
    work_size: tuple[int, int]  # (W0, H0)
    ppm_work: float
    ppm_half: float
    ppm_coarse: float
    skin: SkinMap | None

    def at_work(self, channel: int) -> np.ndarray:
        """Contrast of projection ``channel`` at L0: OD less its background (off the leg
        too)."""
        out = cv2.transform(self.od, PROJECTION[channel : channel + 1]).reshape(self.od.shape[:2])
        out -= _resize(
            np.ascontiguousarray(self.bg[..., channel]), self.work_size, cv2.INTER_LINEAR
        )
        return out

    def spider(self) -> np.ndarray:
        """The spider contrast at L0, 0 off the leg."""
        out = self.at_work(0)
        out[~self.leg] = 0.0
        return out


def _signals(
    rgb: np.ndarray,
    ppm: float,
    leg_mask: np.ndarray | None,
    deep: bool = True,
    exclude: np.ndarray | None = None,
) -> _Signals:
    """The signals; with ``deep=False`` the deep-chroma channel (3) is left 0 (what
    :func:`vein_contrast` reads needs none of it). ``exclude`` is left out of the skin
    found when no ``leg_mask`` is given."""
    h, w = rgb.shape[:2]
    work_size, ppm_work, half_size, coarse_size, ppm_coarse = _levels((h, w), ppm)
    small = _resize(rgb, work_size)
    od = cv2.LUT(small, _OD_LUT)
    ppm_half = ppm_work * half_size[0] / work_size[0]
    sig_half = cv2.transform(_resize(od, half_size), PROJECTION)  # (h1, w1, 4)
    sig_c = _resize(sig_half, coarse_size)
    skin: SkinMap | None = None
    if leg_mask is None:
        leg_u8, skin = _coarse_leg(small, coarse_size, ppm_work, exclude)
        leg_c = leg_u8 > 0
        leg = _resize(leg_u8, work_size, cv2.INTER_LINEAR) >= 128
        leg_half = _resize(leg_u8, half_size, cv2.INTER_LINEAR) >= 128
    else:
        leg_u8 = leg_mask.astype(np.uint8) * 255
        leg = _resize(leg_u8, work_size) >= 128
        leg_half = _resize(leg_u8, half_size) >= 128
        leg_c = _resize(leg_u8, coarse_size) >= 128
    n_ch = 4 if deep else 3
    bg = _background(sig_c, leg_c, ppm_coarse, n_ch)
    half = sig_half - _resize(bg, half_size, cv2.INTER_LINEAR)
    half[~leg_half] = 0.0
    if not deep:
        half[..., 3] = 0.0
    hair = _remove_hair(half, leg_half, ppm_half, n_ch)
    return _Signals(
        od, half, bg, hair, leg, leg_half, leg_c, work_size, ppm_work, ppm_half, ppm_coarse, skin
    )


def _compute_maps(
    rgb: np.ndarray, ppm: float, leg_mask: np.ndarray | None, exclude: np.ndarray | None = None
) -> _Maps:
    sg = _signals(rgb, ppm, leg_mask, exclude=exclude)
    half, leg_half = sg.half, sg.leg_half
    half[..., 0] = _guided(half[..., 0], half[..., 2], _GF_RADIUS_PX, _GF_EPS)
    half[~leg_half, 0] = 0.0
    retic_det = _guided(half[..., 1], half[..., 2], _GF_RADIUS_PX, _GF_EPS_RETIC)
    retic_det[~leg_half] = 0.0
    coarse_size = (sg.leg_coarse.shape[1], sg.leg_coarse.shape[0])
    occluding = _occluding_edges(sg.od, sg.leg, sg.ppm_work, coarse_size)
    return _Maps(
        sg.spider(),
        sg.at_work(2),  # neutral
        half,
        retic_det,
        sg.hair,
        sg.leg,
        leg_half,
        sg.leg_coarse,
        sg.ppm_work,
        sg.ppm_half,
        sg.ppm_coarse,
        sg.skin,
        _too_dark(sg.od, coarse_size),
        occluding,
        _resize(occluding.astype(np.uint8), coarse_size, cv2.INTER_AREA) > 0,
    )


def _background(signals: np.ndarray, leg: np.ndarray, ppm: float, channels: int = 4) -> np.ndarray:
    """Local skin background of the first ``channels`` signal channels (coarse level),
    excluding veins; the others are left 0.

    Two exclusion passes: pixels standing out of the first estimate, widened by a
    class-sized rim (a reticular vein's Gaussian tails reach ~1.5 mm), are left out of
    the second and third. Excluding the tails as well as the core keeps the contrast
    linear in the vein's amplitude: a faded vein loses the same share of its contrast.
    """
    w0 = leg.astype(np.float32)
    out = np.zeros_like(signals)
    den0_at: dict[float, np.ndarray] = {}  # the leg's weight, once per scale
    for c in range(min(channels, signals.shape[2])):
        x = np.ascontiguousarray(signals[..., c])
        sigma = _BG_SIGMA_MM[c] * ppm
        if sigma not in den0_at:
            den0_at[sigma] = cv2.GaussianBlur(w0, (0, 0), sigma)
        den0 = den0_at[sigma]
        bg = cv2.GaussianBlur(x * w0, (0, 0), sigma) / np.maximum(den0, 1e-3)
        k = 2 * max(1, int(round(_BG_RIM_MM[c] * ppm))) + 1
        rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        for _ in range(2):
            resid = x - bg
            spread = 1.4826 * float(np.median(np.abs(resid[leg]))) if leg.any() else 0.0
            # Candidates (vein-like excess, either sign for neutral/chroma) are left out.
            r = np.abs(resid) if c >= 2 else resid
            cand = cv2.dilate((r > max(2.0 * spread, 1e-4)).astype(np.uint8), rim)
            w1 = w0 * (cand == 0)
            den1 = cv2.GaussianBlur(w1, (0, 0), sigma)
            bg1 = cv2.GaussianBlur(x * w1, (0, 0), sigma) / np.maximum(den1, 1e-3)
            # Where the exclusion left too little skin, keep the previous estimate.
            bg = np.where(den1 > 0.15 * den0, bg1, bg)
        out[..., c] = bg
    return out


def _too_dark(od: np.ndarray, coarse_size: tuple[int, int]) -> np.ndarray:
    """Where the photo is too dark for a vein's optical density to be read (L2 bool).

    An 8-bit photo's code step is worth more OD the darker the pixel: below about sRGB
    57 (OD 3.2) one step is over 0.04 OD and JPEG's errors of a few steps rival a spider
    vein's whole contrast. A leg's shaded flank, a dark cast shadow and under-exposed
    brown skin are left unsearched rather than read as noise.
    """
    mean_od = cv2.transform(od, np.full((1, 3), 1.0 / 3.0, np.float32)).reshape(od.shape[:2])
    return np.asarray(_resize(mean_od, coarse_size) > _DARK_OD, dtype=bool)


def _guided(p: np.ndarray, guide: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Guided filter (He et al.) of ``p`` by ``guide``, from box filters."""
    k = (2 * r + 1, 2 * r + 1)
    p = np.ascontiguousarray(p)
    g = np.ascontiguousarray(guide)
    mg = cv2.boxFilter(g, -1, k)
    mp = cv2.boxFilter(p, -1, k)
    cov = cv2.boxFilter(g * p, -1, k) - mg * mp
    var = cv2.boxFilter(g * g, -1, k) - mg * mg
    a = cov / (var + np.float32(eps))
    b = mp - a * mg
    return cv2.boxFilter(a, -1, k) * g + cv2.boxFilter(b, -1, k)


def _remove_hair(
    contrast: np.ndarray, leg: np.ndarray, ppm: float, channels: int = 4
) -> np.ndarray:
    """Replace the non-spider contrast under hair and moles by that of the skin around them.

    Veins carry a fixed share of neutral OD (0.90 of a spider's amplitude, 0.94 of a
    deep vein's); hair, moles and shadows carry far more. Pixels with that excess, and
    a rim of 0.2 mm around them, are filled from their surroundings (normalised
    convolution), so hair crossing or lying beside a vein neither adds to it nor cuts
    it. The spider channel is blind to neutral OD by construction and is left as is.
    Works at half resolution, where JPEG's half-resolution chroma is consistent with
    the luminance. Modifies ``contrast`` (H, W, 4) in place (its first ``channels``);
    returns the mask.
    """
    # JPEG smears a thin spider's colour over its neighbours while its luminance stays
    # sharp, so the spider share is taken as the local maximum over 3 × 3 pixels.
    spider = cv2.dilate(np.maximum(contrast[..., 0], 0.0), np.ones((3, 3), np.uint8))
    expected = _NEUTRAL_PER_SPIDER * spider + (
        _NEUTRAL_PER_RETIC * np.maximum(contrast[..., 1], 0.0)
    )
    # The relative term tolerates colour smeared by JPEG's half-resolution chroma.
    core = contrast[..., 2] - expected > _HAIR_EXCESS_OD + _HAIR_EXCESS_REL * expected
    if not core.any():
        return core
    k = 2 * max(1, int(round(_HAIR_RIM_MM * ppm))) + 1
    hair = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    keep = (leg & (hair == 0)).astype(np.float32)
    sigma = max(1.0, 0.2 * ppm)
    num = cv2.GaussianBlur(contrast[..., 1:channels] * keep[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(keep, (0, 0), sigma)
    sel = hair.astype(bool) & leg
    den_sel = den[sel]
    fill = num[sel] / np.maximum(den_sel, 1e-3)[:, None]
    # only the filled pixels are written (no copy of the channels out and back)
    contrast[sel, 1:channels] = np.where((den_sel > 0.05)[:, None], fill, 0.0)
    return core & leg


def vein_contrast(
    photo: Photo | np.ndarray, *, px_per_mm: float, leg_mask: np.ndarray | None = None
) -> VeinContrast:
    """Continuous spider and reticular vein contrast over the local skin background.

    The contrast of class *k* at a pixel is ``w_k · (OD − OD_background)`` where OD is
    the optical density of the linearised sRGB pixel, ``OD_background`` a Gaussian
    average (σ 1.5 mm spider, 4 mm reticular) of the surrounding leg skin with vein
    candidates left out, and ``w_k`` the weights of the module docstring. Properties
    measurement relies on:

    * linear in vein absorption: a vein of OD amplitude ``a`` along the class direction
      reads ``≈ a`` at its centre (less what the photo's blur spreads away);
    * invariant to exposure and white balance (per-channel OD offsets), to smooth
      shading and to diffuse patches wider than the background scale (bruises);
    * blind to melanin (freckles, moles, haemosiderin staining): ``w_k · MELANIN = 0``;
      the spider map is blind to neutral OD (hair, shadows) as well;
    * ≈ 0 on vein-free skin, 0 outside the leg.

    The maps are those of :attr:`~.results.Segmentation.contrast` for the same inputs.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    px_per_mm : float
        Scale of the photo, pixels per millimetre.
    leg_mask : ndarray, shape (H, W), bool, optional
        Leg skin; estimated from colour when not given.

    Returns
    -------
    VeinContrast
        Maps of shape (H, W), float32, OD units.
    """
    rgb = as_rgb(photo)
    check_px_per_mm(px_per_mm)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    lm = None if leg_mask is None else check_mask(leg_mask, shape=shape, name="leg_mask")
    # Only the spider map and the reticular contrast are read: none of the detection
    # maps (guided filters, neutral map) the segmentation makes from the same signals.
    sg = _signals(rgb, float(px_per_mm), lm, deep=False)
    return _contrast_full(sg.spider(), sg.half, sg.leg, shape, float(px_per_mm))


def _contrast_full(
    spider: np.ndarray,
    half: np.ndarray,
    leg_work: np.ndarray,
    shape: tuple[int, int],
    ppm: float,
) -> VeinContrast:
    size = (shape[1], shape[0])
    sp = _resize(spider, size, cv2.INTER_LINEAR)
    if sp is spider:
        sp = sp.copy()
    rt = _resize(np.ascontiguousarray(half[..., 1]), size, cv2.INTER_LINEAR)
    leg = _leg_full(leg_work, size)
    sp[~leg] = 0.0
    rt[~leg] = 0.0
    return VeinContrast(spider=sp, reticular=rt, leg_mask=leg, px_per_mm=ppm)
