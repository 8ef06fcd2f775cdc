"""Skin relative to the scene: every region of leg skin in a photo, whatever the light.

A colour cast (tungsten, fluorescent, LED) multiplies each linear channel by a gain, so
in optical density (OD = −ln linear reflectance) it adds the same offset to every
pixel. Shading adds a neutral offset. The OD *chroma* (OD less its neutral part, two
numbers per pixel) is therefore blind to shading, and a cast shifts the chroma of every
surface in the scene by the same vector.

Skin's own chroma is set by melanin and blood: from light to brown skin it lies on a
short band (the *skin locus*, :data:`SKIN_LOCUS`) that no fixed colour box can hold
once a cast has moved it. So skin is found relative to the scene:

1. the chroma of the frame is histogrammed and its modes (the scene's main surfaces)
   found;
2. each large mode is scored by the cast it would take to bring it onto the skin
   locus; the mode needing the least (weighed by how much of the frame it covers) is
   the skin, and that shift is the photo's estimated cast (a surface whose chroma
   varies as skin's does may need a warmer lamp than one lamp's cast, when nothing else
   is skin-coloured as photographed: brown legs under strong tungsten; and when every
   large surface is plain grey, a smaller surface skin-coloured as photographed is the
   skin: a backdrop under neutral light, with little skin in view);
3. pixels whose chroma lies within the skin mode's own robust spread are skin, cleaned
   at a scale in millimetres; **every** region above :data:`MIN_REGION_MM2` is kept
   (both legs, a leg crossing the other), holes (veins, moles, hair) filled, but not a
   hole wider than any vein (:data:`MAX_VEIN_HOLE_MM`) that is not skin-coloured either:
   the backdrop seen between a thumb and the fingers holding the leg.

This module finds skin and estimates the cast; it must not segment veins, register or
measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cv2
import numpy as np

from .checks import check_mask, check_px_per_mm
from .io import Photo, as_rgb
from .morphology import Components, components, distance_to
from .optics import MELANIN_OD, NEUTRAL_OD, optical_density

__all__ = [
    "CHROMA_BASIS",
    "MAX_VEIN_HOLE_MM",
    "MIN_REGION_MM2",
    "SKIN_LOCUS",
    "SkinMap",
    "find_skin",
    "od_chroma",
]


def _chroma_basis() -> np.ndarray:
    """Two orthonormal OD directions orthogonal to neutral: melanin's chroma, and the
    direction across it (blood-red negative, green positive)."""
    n = NEUTRAL_OD.astype(np.float64) / np.linalg.norm(NEUTRAL_OD)
    m = MELANIN_OD.astype(np.float64) - float(MELANIN_OD @ n) * n
    m /= np.linalg.norm(m)
    return np.stack([m, np.cross(n, m)]).astype(np.float32)


#: (2, 3) OD (R, G, B) -> chroma (c1 along melanin, c2 across it: haemoglobin is at
#: about -0.36 per unit OD, a green cast positive).
CHROMA_BASIS = _chroma_basis()

#: Skin's chroma under neutral light, from light to brown skin: a segment from
#: ``(c1, c2)`` of light skin to that of brown skin (sRGB ≈ (230, 190, 170) and
#: (90, 55, 40)), and the half-width of the band around it in c1 and c2.
SKIN_LOCUS = ((0.40, -0.12), (1.15, -0.18), (0.12, 0.10))
#: Smallest region of skin kept, mm² (about 30 × 50 mm of leg).
MIN_REGION_MM2 = 1500.0
#: Widest hole in the skin that is filled as skin whatever its colour, mm. Reticular veins
#: are at most 3 mm wide (DOMAIN.md), and moles and hair narrower: a wider hole that is not
#: skin-coloured is something seen through the skin, and its rim is an outline, not a vein
#: (the backdrop between a thumb and the fingers of a hand holding the leg read as a
#: 30 mm² reticular vein on photo-like calibration pair 11004).
MAX_VEIN_HOLE_MM = 4.0
#: Long side (px) of the grid the skin is found on; the mask is upsampled.
_SIDE = 512
#: Chroma histogram bin (OD) and extent.
_BIN = 0.025
_C1_RANGE = (-1.0, 3.0)
_C2_RANGE = (-1.0, 1.0)
#: Pixels darker than this neutral OD (per-channel mean OD ≈ 3.8, sRGB ≈ 40) or
#: brighter than this (near clipping) carry no reliable chroma.
_MAX_NEUTRAL = 6.6
_MIN_NEUTRAL = 0.12
#: Near black (sRGB ≈ 20): a backdrop, not skin in a shadow.
_BLACK_NEUTRAL = 7.6
#: A mode must hold this share of the valid pixels to be a surface worth scoring.
_MIN_MODE_SHARE = 0.04
#: Largest cast allowed when the frame shows one surface only without skin's sign: a
#: chroma spread along melanin's axis of at least this much (OD), and this many times
#: the spread across it.
_LONE_SURFACE_CAST = 0.12
_SKIN_SPREAD_MIN = 0.02
_SKIN_SPREAD_RATIO = 2.0
#: A surface whose true colour would be colder than this (c1, OD) is implausible: a
#: saturated blue-cyan (denim is about -0.85, a white wall 0, light skin +0.4).
_COLD_C1 = -0.6
#: A candidate needing a warmer light than this (OD, c1) yields to a milder one.
_WARM_SHIFT = 0.3
#: A surface covering less than this share of the frame is not taken for the subject.
_MIN_CANDIDATE_SHARE = 0.10
#: Choices whose cold share differs by less than this share of the frame are equal.
_COLD_TIE = 0.02
#: Largest cast (OD chroma shift, c1 and c2) a light gives: tungsten ≈ +0.55 in c1, LED
#: blue ≈ -0.36, fluorescent green ≈ +0.3 in c2 (the gains of common lamps against
#: daylight white balance). Brown skin under strong tungsten, through a phone's tone
#: curve, can need +0.65: it is then as warm as a dark wooden floor under daylight, and
#: the floor is the likelier scene, so the bound stays at tungsten's own for a surface
#: whose chroma does not vary as skin's does ...
_MAX_CAST = (0.62, 0.42)
#: ... while a surface that shows skin's sign (its chroma spread along melanin's axis,
#: :data:`_SKIN_SPREAD_MIN` and :data:`_SKIN_SPREAD_RATIO`) may be skin under a warm cast
#: up to this (c1), when no surface without the sign is skin-coloured as it is (within
#: :data:`_ON_LOCUS` of the skin locus): then the strong warm lamp is the likelier scene,
#: and a beige wall it made skin-coloured yields to the brown legs in front of it. Light
#: skin in view, on the locus as photographed, keeps a dark wooden floor (whose grain
#: shows the sign too) from being taken for skin.
_MAX_WARM_CAST_WITH_SKIN_SIGN = 0.75
#: A surface this close to the skin locus (OD chroma, c1 and c2) is skin-coloured as is.
_ON_LOCUS = 0.05
#: A surface this close to neutral chroma (OD, c1 and c2) is grey or white as is. A lamp
#: moves skin further: light skin under LED blue reads about (0.04, -0.16).
_GREY_CHROMA = 0.05
#: Largest change of one skin's chroma between two photos (c1, c2): one lamp's cast
#: (:data:`_MAX_CAST`), which a phone's tone curve steepens on dark skin (brown skin under
#: tungsten reads +0.65 in c1 through it).
_MAX_CAST_BETWEEN_PHOTOS = (0.8, 0.5)
#: Floors and caps of the skin mode's robust spread (OD), and the Mahalanobis radius.
_SPREAD_FLOOR = (0.05, 0.035)
_SPREAD_CAP = (0.15, 0.08)
#: Knots of the drift of skin chroma with shading (quantile bins of neutral OD).
_DRIFT_BINS = 8
#: Rounds of the drift fit (each refits on the pixels the previous one explains).
_FIT_ROUNDS = 3
#: Largest drift of skin chroma per unit of neutral OD (c1, c2) the tone curve explains.
_MAX_DRIFT = (0.25, 0.12)
_RADIUS = 3.0
#: A cast larger than this (OD chroma) is reported as heavy.
HEAVY_CAST_OD = 0.35
#: A surface set aside as skin is a warmer rival of the skin taken when its chroma lies
#: at least this much warmer (c1, OD): more than the skin fit moves the mode's centre.
_RIVAL_WARMER = 0.15


@dataclass(frozen=True, eq=False)
class SkinMap:
    """Where the skin is in a photo, and what the light did to its colour.

    Attributes
    ----------
    mask : ndarray, shape (H, W), bool
        Skin of every region kept (legs, and any feet or hands of the same skin).
    regions : int
        Number of separate skin regions kept.
    region_areas_mm2 : tuple of float
        Their areas (mm² when the scale was given, else in px of the photo).
    cast_chroma : tuple of float
        ``(c1, c2)`` shift (OD chroma) between the skin's chroma and the nearest skin
        colour under neutral light: the estimated colour cast (0, 0 when none).
    skin_chroma : tuple of float
        ``(c1, c2)`` of the skin mode.
    fraction : float
        Share of the frame that is skin.
    found : bool
        False when no surface of the scene can be skin.
    """

    mask: np.ndarray
    regions: int
    region_areas_mm2: tuple[float, ...]
    cast_chroma: tuple[float, float]
    skin_chroma: tuple[float, float]
    fraction: float
    found: bool
    modes: tuple[tuple[float, float, float, float], ...] = field(default=())

    @property
    def cast_od(self) -> float:
        """Size of the estimated cast, OD chroma."""
        return float(np.hypot(*self.cast_chroma))

    @property
    def heavy_cast(self) -> bool:
        return self.cast_od > HEAVY_CAST_OD

    @property
    def warmer_rival(self) -> bool:
        """Whether a surface warmer than the skin taken could have been the skin.

        :func:`_skin_mode` takes the warmest candidate, unless a milder light makes
        another skin-coloured: then the warmer one is set aside as a wooden floor. The
        scene reads both ways: pale skin beside dark wood under a mild light, or darker
        skin beside a pale wall under a strong warm lamp (a brown leg before a beige wall
        under tungsten). The colours cannot tell which, so the skin found may be the wrong
        surface. Read from :attr:`modes`, the candidates the choice was made among."""
        return self.found and any(
            c1 >= self.skin_chroma[0] + _RIVAL_WARMER for c1, _, _, _ in self.modes
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "found": self.found,
            "regions": self.regions,
            "region_areas_mm2": [round(a, 1) for a in self.region_areas_mm2],
            "fraction": round(self.fraction, 4),
            "cast_chroma": [round(c, 3) for c in self.cast_chroma],
            "cast_od": round(self.cast_od, 3),
            "heavy_cast": self.heavy_cast,
        }


def od_chroma(od: np.ndarray) -> np.ndarray:
    """OD chroma ``(c1, c2)`` of an OD image.

    Parameters
    ----------
    od : ndarray, shape (..., 3), float32
        Optical density (R, G, B).

    Returns
    -------
    ndarray, shape (..., 2), float32
    """
    return np.asarray(od @ CHROMA_BASIS.T, dtype=np.float32)


def _locus_distance(c: np.ndarray) -> np.ndarray:
    """Shift (..., 2) from chroma ``c`` to the nearest point of the skin band."""
    (a1, a2), (b1, b2), (h1, h2) = SKIN_LOCUS
    a = np.array([a1, a2], np.float32)
    d = np.array([b1 - a1, b2 - a2], np.float32)
    t = np.clip(((c - a) @ d) / float(d @ d), 0.0, 1.0)
    near = a + t[..., None] * d
    off = c - near
    half = np.array([h1, h2], np.float32)
    # Inside the band's half-widths counts as on it.
    return np.asarray(np.sign(off) * np.maximum(np.abs(off) - half, 0.0), dtype=np.float32)


def _modes(c: np.ndarray, weight_floor: int) -> list[tuple[float, float, int]]:
    """Peaks of the 2-D chroma histogram: (c1, c2, pixels within a peak's basin)."""
    n1 = int(round((_C1_RANGE[1] - _C1_RANGE[0]) / _BIN))
    n2 = int(round((_C2_RANGE[1] - _C2_RANGE[0]) / _BIN))
    hist, _, _ = np.histogram2d(c[:, 0], c[:, 1], bins=(n1, n2), range=(_C1_RANGE, _C2_RANGE))
    sm = cv2.GaussianBlur(hist.astype(np.float32), (0, 0), 2.0)
    peak = (sm == cv2.dilate(sm, np.ones((7, 7), np.uint8))) & (sm > 0)
    ii, jj = np.nonzero(peak)
    if not len(ii):
        return []
    # Each bin joins its nearest peak (in chroma): the peak's share of the frame.
    c1 = _C1_RANGE[0] + (ii + 0.5) * _BIN
    c2 = _C2_RANGE[0] + (jj + 0.5) * _BIN
    centres = np.stack([c1, c2], axis=1).astype(np.float32)
    owner = _nearest(c, centres)
    counts = np.bincount(owner, minlength=len(centres))
    out = [
        (float(centres[k, 0]), float(centres[k, 1]), int(counts[k]))
        for k in range(len(centres))
        if counts[k] >= weight_floor
    ]
    return sorted(out, key=lambda m: -m[2])


def _centres(modes: list[tuple[float, float, int]]) -> np.ndarray:
    """The modes' chroma ``(c1, c2)`` as a (K, 2) float32 array."""
    return np.array([[m[0], m[1]] for m in modes], np.float32)


class _Candidate(NamedTuple):
    """A surface that can be skin (:func:`_skin_mode`)."""

    c1: float
    c2: float
    pixels: int
    shift: np.ndarray  # the cast that brings it onto the skin locus
    cold: int  # pixels of the scene left colder than any surface if it is the skin
    signed: bool  # its chroma varies as skin's does (:func:`_shows_skin_sign`)
    past_one_lamp: bool = False  # skin only under a warm lamp past one lamp's cast


def _nearest(c: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest of ``centres`` (K, 2) to each chroma of ``c`` (N, 2); the
    first on a tie."""
    c1, c2 = c[:, 0], c[:, 1]
    owner = np.zeros(len(c), np.intp)
    best = np.full(len(c), np.inf, np.result_type(c.dtype, centres.dtype))
    for k, (x, y) in enumerate(centres):
        d2 = (c1 - x) ** 2 + (c2 - y) ** 2
        closer = d2 < best
        owner[closer] = k
        np.minimum(best, d2, out=best)
    return owner


def _drift_fit(nv: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chroma of one skin against its neutral OD: knots ``(n_k,)`` and ``(n_k, 2)``.

    Binned medians (by quantile of the neutral OD), joined by straight lines and held
    flat beyond the first and last: the tone curve's drift is smooth but not straight
    (it flattens in the shadows), and no line should be extrapolated into them.
    """
    qs = np.quantile(nv, np.linspace(0.0, 1.0, _DRIFT_BINS + 1))
    c1, c2 = np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1])
    xs, ys = [], []
    for lo, hi in zip(qs[:-1], qs[1:], strict=True):
        sel = (nv >= lo) & (nv <= hi)
        if sel.sum() >= 20:
            xs.append(float(np.median(nv[sel])))
            ys.append(np.array([np.median(c1[sel]), np.median(c2[sel])], c.dtype))
    if len(xs) < 2:
        return np.array([float(np.median(nv))]), np.median(c, axis=0)[None, :].astype(np.float32)
    x = np.maximum.accumulate(np.asarray(xs))
    y = np.asarray(ys, np.float32)
    # No steeper drift than the tone curve explains between neighbouring knots.
    for k in range(1, len(x)):
        lim = np.asarray(_MAX_DRIFT, np.float32) * float(x[k] - x[k - 1])
        y[k] = y[k - 1] + np.clip(y[k] - y[k - 1], -lim, lim)
    return x, y


def _drift_at(knots: tuple[np.ndarray, np.ndarray], n: np.ndarray) -> np.ndarray:
    """Skin chroma expected at neutral OD ``n`` (any shape): (..., 2) float32."""
    x, y = knots
    if len(x) < 2:
        return np.broadcast_to(y[0], (*n.shape, 2)).astype(np.float32)
    return np.stack([np.interp(n, x, y[:, 0]), np.interp(n, x, y[:, 1])], axis=-1).astype(
        np.float32
    )


def _grow_into_shadow(
    rgb: np.ndarray, core: np.ndarray, other: np.ndarray, neutral: np.ndarray
) -> np.ndarray:
    """The skin core grown over the skin that a shadow gave another light (watershed).

    Skin in a cast shadow (under a crossing leg, a hand) is lit by the ambient light
    only: darker and of another chroma, it leaves the core. Whatever is neither skin nor
    clearly another surface (``other``: chroma far from the skin's; or black) is given
    to the side it joins with the weaker colour edge: a shadow's edge on skin is soft,
    a leg's outline against the scene is sharp.
    """
    markers = np.zeros(core.shape, np.int32)
    bg = other | (neutral > _BLACK_NEUTRAL)
    bg = cv2.erode(bg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    markers[bg] = 2
    markers[cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 1
    if not (markers == 2).any():
        return core
    cv2.watershed(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), markers)
    return np.asarray((markers == 1) | core)


def find_skin(
    photo: Photo | np.ndarray,
    *,
    px_per_mm: float | None = None,
    like: SkinMap | None = None,
    like_first: bool = False,
    where: np.ndarray | None = None,
) -> SkinMap:
    """Every region of skin in a photo, found relative to the scene's light.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    px_per_mm : float, optional
        Scale of the photo. Sets the clean-up scale and the smallest region kept
        (:data:`MIN_REGION_MM2`); without it, regions under 1 % of the frame are dropped.
    like : SkinMap, optional
        The skin found on another photo of the same leg (a follow-up's baseline). When no
        surface of this photo can be skin under one lamp's cast from the skin locus
        (brown skin under strong tungsten light, through a phone's tone curve, needs
        more), the surface whose chroma moved least from that skin's, by no more than a
        lamp's cast can move it (:data:`_MAX_CAST_BETWEEN_PHOTOS`), is the skin: the
        light changed between the photos, the leg did not.
    like_first : bool
        Take the surface nearest to ``like``'s skin colour even when another surface
        could be skin on its own (a beige wall under a tungsten lamp can look more like
        skin than the brown leg in front of it); the caller decides between the two
        findings (see :func:`vein_tracker.measure.steps.skin_like_baseline`).
    where : ndarray, shape (H, W), bool, optional
        Where ``like``'s skin lies in this photo's frame (a retake frames the leg as
        the baseline did). Among the surfaces a lamp's cast can have moved from
        ``like``'s skin colour, the one most inside it is the skin: a cast moves every
        surface's chroma alike, so the nearest in colour can be a wall.

    Returns
    -------
    SkinMap
        ``found=False`` and an empty mask when no surface of the scene can be skin.

    Raises
    ------
    ValueError
        Bad ``px_per_mm``.
    """
    rgb = as_rgb(photo)
    ppm = None if px_per_mm is None else check_px_per_mm(px_per_mm)
    h, w = rgb.shape[:2]
    s = min(1.0, _SIDE / max(h, w))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    sh, sw = small.shape[:2]
    neutral, chroma = _neutral_and_chroma(small)
    valid = (neutral < _MAX_NEUTRAL) & (neutral > _MIN_NEUTRAL)
    empty = SkinMap(np.zeros((h, w), bool), 0, (), (0.0, 0.0), (0.0, 0.0), 0.0, False)
    if valid.sum() < 0.02 * valid.size:
        return empty
    cv_ = chroma[valid]
    modes = _modes(cv_[::2], max(1, int(_MIN_MODE_SHARE * len(cv_[::2]))))
    if not modes:
        return empty
    # Each valid pixel's mode: the one nearest to its chroma.
    centres = _centres(modes)
    owner = _nearest(cv_, centres)
    known = like is not None and like.found
    choice = None if like_first and known else _skin_mode(cv_, modes, owner)
    if choice is None and like is not None and like.found:
        inside = None
        if where is not None:
            prior = check_mask(where, shape=(h, w), name="where")
            small_prior = cv2.resize(prior.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_AREA)
            inside = _share_inside(owner, len(modes), small_prior[valid] > 0)
        choice = _mode_like(modes, like.skin_chroma, inside)
    if choice is None:
        return empty
    mode, shift, scored = choice
    fit = _skin_fit(chroma, neutral, valid, cv_, owner, centres, mode)
    if fit is None:
        return empty
    z2, centre = fit
    cand = valid & (z2 < _RADIUS**2)

    # Clean-up at a scale in millimetres (a fraction of the frame without a scale).
    ppm_s = ppm * s if ppm is not None else max(sh, sw) / 200.0
    min_px = MIN_REGION_MM2 * ppm_s**2 if ppm is not None else 0.01 * sh * sw
    cc, keep = _large_regions(_close_open(cand, ppm_s) > 0, min_px)
    if not keep[1:].any():
        return SkinMap(
            np.zeros((h, w), bool),
            0,
            (),
            (float(shift[0]), float(shift[1])),
            (float(centre[0]), float(centre[1])),
            0.0,
            False,
        )
    core = keep[cc.labels]
    from scipy.ndimage import binary_fill_holes  # lazy: a slow import

    grown = _grow_into_shadow(small, core, valid & (z2 > (2 * _RADIUS) ** 2), neutral)
    small_mask = _vein_holes_filled(grown, binary_fill_holes(grown), ppm_s, chroma - shift)
    cc, keep = _large_regions(small_mask, min_px)
    small_mask = keep[cc.labels]
    if s < 1:
        up = cv2.resize(small_mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR)
        mask = np.asarray(up >= 128)
    else:
        mask = small_mask
    area_unit = 1.0 / (ppm_s**2) if ppm is not None else 1.0 / (s * s)
    areas = tuple(float(a) * area_unit for a in cc.areas[keep])
    return SkinMap(
        mask=mask,
        regions=int(keep.sum()),
        region_areas_mm2=areas,
        cast_chroma=(float(shift[0]), float(shift[1])),
        skin_chroma=(float(centre[0]), float(centre[1])),
        fraction=float(small_mask.mean()),
        found=True,
        modes=scored,
    )


def _vein_holes_filled(
    mask: np.ndarray, filled: np.ndarray, ppm_s: float, chroma: np.ndarray
) -> np.ndarray:
    """``filled`` (``mask`` with its holes filled) less the holes wider than
    :data:`MAX_VEIN_HOLE_MM` at ``ppm_s`` px per mm (a hole holding a point farther than
    half that width from the skin around it) that are not skin-coloured: their median
    ``chroma`` (the photo's, less its cast) off the skin locus by more than
    :data:`_ON_LOCUS`. A skin-coloured hole is skin the skin's mode left out (a light leg
    between the fingers of a darker hand) and stays filled."""
    holes = filled & ~mask
    if not holes.any():
        return filled
    cc = components(holes)
    wide = np.zeros(cc.n, bool)
    wide[np.unique(cc.labels[distance_to(~holes) > 0.5 * MAX_VEIN_HOLE_MM * ppm_s])] = True
    wide[0] = False
    for k in np.flatnonzero(wide):
        median = np.median(chroma[cc.labels == k], axis=0)
        wide[k] = bool(np.any(np.abs(_locus_distance(median)) > _ON_LOCUS))
    return np.asarray(filled & ~wide[cc.labels])


def _neutral_and_chroma(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neutral OD (H, W) and OD chroma (H, W, 2) of an RGB photo, smoothed over 1 px."""
    od = cv2.GaussianBlur(optical_density(small), (0, 0), 1.0)
    neutral = od @ (NEUTRAL_OD / np.linalg.norm(NEUTRAL_OD))
    return neutral, od_chroma(od)


def _skin_mode(
    cv_: np.ndarray, modes: list[tuple[float, float, int]], owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, float, float, float], ...]] | None:
    """The mode of the scene's chroma that is skin, and the cast that makes it so.

    Parameters
    ----------
    cv_ : ndarray, shape (N, 2), float32
        Chroma of the valid pixels.
    modes : list of (c1, c2, pixels)
        The chroma histogram's modes (:func:`_modes`), largest first.
    owner : ndarray, shape (N,), int
        Each valid pixel's mode (the nearest in chroma).

    Returns
    -------
    (mode, shift, scored) or None
        The skin mode's ``(c1, c2)``, the cast (shift onto the skin locus, (2,) float32)
        and every candidate as ``(c1, c2, share of the modes, cold share)``; None when no
        surface can be skin.
    """
    total = float(sum(m[2] for m in modes))
    # A surface can be skin when some plausible cast brings it onto the skin locus. Each
    # such choice implies a cast, and so the true colour of every other surface: taking
    # a wood floor under a blue light for skin makes the real skin a cold blue, which no
    # skin and few surfaces are. So the choice that leaves the least of the scene cold
    # wins; among equals, skin is the warmest (largest melanin-direction chroma): walls,
    # sheets and clothes are nearer neutral, and a cast moves them all by the same
    # vector, so the order survives the cast.
    # Skin also shows itself by how its chroma varies: shading (through the tone curve)
    # and melanin move it along melanin's axis, far more than across it, while a painted
    # wall or a sheet varies by the camera's noise alike in both. With a single surface
    # in view there is nothing to tell a cast from that surface's own colour: a lone
    # surface without that sign is skin only if skin-coloured under near-neutral light.
    # A surface with the sign that is skin only under a lamp warmer than one lamp's cast
    # (brown legs under strong tungsten) is the skin when nothing without the sign is
    # skin-coloured as photographed (:data:`_MAX_WARM_CAST_WITH_SKIN_SIGN`).
    cands: list[_Candidate] = []
    past_one_lamp: list[_Candidate] = []
    small_skin_coloured: list[_Candidate] = []
    # Each mode's pixels, grouped once (not one pass over all pixels per mode).
    by_mode = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[by_mode], np.arange(len(modes) + 1))
    for k, (c1, c2, n) in enumerate(modes):
        shift = _locus_distance(np.array([c1, c2], np.float32))
        warm, tint = float(shift[0]), abs(float(shift[1]))
        cold = sum(o[2] for o in modes if o[0] - warm < _COLD_C1)
        pixels = cv_[by_mode[bounds[k] : bounds[k + 1]]]
        if n < _MIN_CANDIDATE_SHARE * total:
            if np.all(np.abs(shift) <= _ON_LOCUS):
                sign = _shows_skin_sign(pixels)
                small_skin_coloured.append(_Candidate(c1, c2, n, shift, cold, sign))
            continue
        signed = _shows_skin_sign(pixels)
        max_cast = _MAX_CAST if signed or len(modes) > 1 else (_LONE_SURFACE_CAST,) * 2
        if abs(warm) <= max_cast[0] and tint <= max_cast[1]:
            cands.append(_Candidate(c1, c2, n, shift, cold, signed))
        elif signed and max_cast[0] < warm <= _MAX_WARM_CAST_WITH_SKIN_SIGN and tint <= max_cast[1]:
            past_one_lamp.append(_Candidate(c1, c2, n, shift, cold, signed, past_one_lamp=True))
    skin_coloured = any(not t.signed and np.all(np.abs(t.shift) <= _ON_LOCUS) for t in cands)
    if past_one_lamp and not skin_coloured:
        cands = cands + past_one_lamp
    if small_skin_coloured and cands and all(_plain_grey(t) for t in cands):
        # The only large surfaces are grey and plain: a backdrop under neutral light
        # rather than skin under a cold lamp, when a smaller surface is skin-coloured as
        # photographed. That surface is the skin, and little of it is in view.
        cands = small_skin_coloured
    if not cands:
        return None
    least_cold = min(t.cold for t in cands)
    cands = [t for t in cands if t.cold <= least_cold + _COLD_TIE * total]
    # Past one lamp's cast, the warm lamp is the scene: the surfaces it made skin-coloured
    # (a beige wall) yield.
    likeliest = [t for t in cands if t.past_one_lamp] or cands
    # A surface that is skin only under a strong warm light (a wooden floor or table)
    # gives way to one that is skin-coloured under a mild light: warm light strong
    # enough to make a floor skin-coloured makes real skin warmer still.
    mild = [t for t in likeliest if float(t.shift[0]) <= _WARM_SHIFT]
    skin = max(mild or likeliest, key=lambda t: t.c1)
    mode = np.array([skin.c1, skin.c2], np.float32)
    scored = tuple(
        (float(t.c1), float(t.c2), float(t.pixels) / total, float(t.cold) / total) for t in cands
    )
    return mode, skin.shift, scored


def _plain_grey(t: _Candidate) -> bool:
    """Whether a surface is grey or white as photographed (within
    :data:`_GREY_CHROMA` of neutral chroma) and without skin's sign."""
    return not t.signed and abs(t.c1) <= _GREY_CHROMA and abs(t.c2) <= _GREY_CHROMA


def _shows_skin_sign(c: np.ndarray) -> bool:
    """Whether chroma ``c`` (N, 2) varies as skin's does: a robust spread along melanin's
    axis of at least :data:`_SKIN_SPREAD_MIN`, and :data:`_SKIN_SPREAD_RATIO` times the
    spread across it."""
    if len(c) < 50:
        return False
    mad = 1.4826 * np.median(np.abs(c - np.median(c, axis=0)), axis=0)
    return bool(mad[0] >= _SKIN_SPREAD_MIN and mad[0] >= _SKIN_SPREAD_RATIO * mad[1])


def _share_inside(owner: np.ndarray, n_modes: int, inside: np.ndarray) -> np.ndarray:
    """Each mode's share of its pixels (``owner``: each valid pixel's mode) set in
    ``inside`` (one flag per valid pixel)."""
    n = np.bincount(owner, minlength=n_modes).astype(np.float64)
    k = np.bincount(owner, weights=inside.astype(np.float64), minlength=n_modes)
    return np.asarray(k / np.maximum(n, 1.0))


def _mode_like(
    modes: list[tuple[float, float, int]],
    skin_chroma: tuple[float, float],
    inside: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[float, float, float, float], ...]] | None:
    """The mode of the scene's chroma that is another photo's skin: among those within
    :data:`_MAX_CAST_BETWEEN_PHOTOS` of its chroma and covering
    :data:`_MIN_CANDIDATE_SHARE` of the modes, the one most inside where that skin lies
    (``inside``: each mode's share there, :func:`_share_inside`), else the nearest in
    chroma; as :func:`_skin_mode` returns it (its cast from the skin locus), or None."""
    total = float(sum(m[2] for m in modes))
    ref = np.asarray(skin_chroma, np.float32)
    near = [
        (k, m)
        for k, m in enumerate(modes)
        if abs(m[0] - float(ref[0])) <= _MAX_CAST_BETWEEN_PHOTOS[0]
        and abs(m[1] - float(ref[1])) <= _MAX_CAST_BETWEEN_PHOTOS[1]
        and m[2] >= _MIN_CANDIDATE_SHARE * total
    ]
    if not near:
        return None

    def rank(km: tuple[int, tuple[float, float, int]]) -> tuple[float, float]:
        k, m = km
        placed = -float(inside[k]) if inside is not None else 0.0
        return placed, float(np.hypot(m[0] - ref[0], m[1] - ref[1]))

    c1, c2, n = min(near, key=rank)[1]
    mode = np.array([c1, c2], np.float32)
    return mode, _locus_distance(mode), ((float(c1), float(c2), float(n) / total, 0.0),)


def _skin_fit(
    chroma: np.ndarray,
    neutral: np.ndarray,
    valid: np.ndarray,
    cv_: np.ndarray,
    owner: np.ndarray,
    centres: np.ndarray,
    mode: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """How far each pixel's chroma is from the skin's, as the skin's shading drifts it.

    Returns ``(z2, centre)``: the squared Mahalanobis distance (H, W) of every pixel's
    chroma from the skin chroma expected at its neutral OD, and the median ``(c1, c2)``
    of the skin's pixels; None when too few pixels are skin.
    """
    # The skin mode's own pixels: those nearer to it than to any other mode.
    k_mode = int(np.argmin(((centres - mode) ** 2).sum(axis=1)))
    basin = owner == k_mode
    if basin.sum() < 50:
        return None
    # A camera's tone curve is not exactly sRGB's, so the chroma of one skin drifts with
    # its shading: fit that drift on the skin mode (chroma against neutral OD), so the
    # shaded flank of a leg is skin too, and measure the spread about the fit.
    nv = neutral[valid]
    member = basin
    for _ in range(_FIT_ROUNDS):
        knots = _drift_fit(nv[member], cv_[member])
        resid_all = cv_ - _drift_at(knots, nv)
        resid = resid_all[member]
        spread = 1.4826 * np.median(np.abs(resid - np.median(resid, axis=0)), axis=0)
        spread = np.clip(spread, _SPREAD_FLOOR, _SPREAD_CAP).astype(np.float32)
        # The skin the fit explains (its sheen, its shaded side) joins the next fit.
        zv = resid_all / spread
        member = (zv**2).sum(axis=1) < _RADIUS**2
        if member.sum() < 50:
            return None
    z = (chroma - _drift_at(knots, neutral)) / spread
    z2 = (z**2).sum(axis=2)
    centre = np.median(cv_[member], axis=0)
    return z2, centre


def _close_open(cand: np.ndarray, ppm_s: float) -> np.ndarray:
    """``cand`` closed (3 mm) then opened (1.5 mm) at ``ppm_s`` px per mm, uint8 0/1."""
    k_open = max(3, int(round(1.5 * ppm_s)) | 1)
    k_close = max(3, int(round(3.0 * ppm_s)) | 1)
    cand_u8 = cv2.morphologyEx(
        cand.astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_close, k_close)),
    )
    return np.asarray(
        cv2.morphologyEx(
            cand_u8,
            cv2.MORPH_OPEN,
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_open, k_open)),
        )
    )


def _large_regions(mask: np.ndarray, min_px: float) -> tuple[Components, np.ndarray]:
    """The 8-connected regions of ``mask``, and which hold at least ``min_px`` pixels
    (by region label; the background, label 0, never)."""
    cc = components(mask)
    keep = cc.areas >= min_px
    keep[0] = False
    return cc, keep
