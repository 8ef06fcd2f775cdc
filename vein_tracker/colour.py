"""Colour: the leg/skin mask and colour normalisation of a follow-up onto its baseline.

Owns the photometric model that makes two visits comparable. It must not register
photos (see :mod:`vein_tracker.registration`) nor segment veins.

Colour model (optical density, OD = -ln(linear reflectance), see
:mod:`vein_tracker.optics`). For a follow-up already warped into the baseline
frame, on skin that is not vein,

    OD_followup(p, k) = OD_baseline(p, k) + c_k + f(p),

where ``c_k`` is a per-channel offset (exposure and white balance are per-channel
gains in linear light, so offsets in OD: ``gain_k = exp(-c_k)``) and ``f`` is a
smooth, neutral illumination field (shading from the leg's curvature, light
fall-off): a 2-D polynomial of degree 2 in the normalised coordinates, with no
constant term. The parameters are fitted by least squares on a sub-sample of skin
pixels with iterative trimming of the largest residuals (treated veins, bruises,
registration misfits), then removed: ``OD_normalised = OD_followup - c_k - f``.
Because vein changes are local and the model has only 3 + 5 parameters, treatment
cannot be absorbed by the correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .io import Photo, as_rgb
from .morphology import components, fill_holes
from .optics import (
    DEEP_VEIN_OD,
    HAEMOGLOBIN_OD,
    _srgb_to_linear,
    linear_to_srgb_u8,
    optical_density,
    srgb_to_linear,
)

__all__ = [
    "ColourFit",
    "ColourNormalisation",
    "apply_colour_fit",
    "delta_e2000",
    "fit_colour",
    "normalise_colour",
    "skin_mask",
    "vein_like_mask",
]

#: Long side (px) at which the skin mask is computed; the result is upsampled.
_MASK_SIDE = 480
#: Pixels sampled (regularly) for a mean ΔE2000.
DELTA_E_SAMPLES = 50_000

_LIN_LUT = srgb_to_linear(np.arange(256, dtype=np.uint8))
# sRGB code of linear values quantised to 16 bits (fine enough near black).
_SRGB16_LUT = linear_to_srgb_u8(np.arange(65536, dtype=np.float32) / 65535.0)


@dataclass(frozen=True, eq=False)
class ColourFit:
    """The model :func:`fit_colour` fits (see :class:`ColourNormalisation` for the
    fields), and ``mask``: the pixels the colour differences are measured on."""

    gains: np.ndarray
    field: np.ndarray
    offsets_od: np.ndarray
    n_pixels: int
    mask: np.ndarray


@dataclass(frozen=True, eq=False)
class ColourNormalisation:
    """Result of :func:`normalise_colour`.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), dtype uint8
        The normalised image, RGB.
    gains : ndarray, shape (3,), dtype float64
        Linear per-channel gains applied to the image (R, G, B), at the image centre.
    field : ndarray, shape (H, W), dtype float32
        The neutral illumination field ``f`` that was removed, in OD units (0 at the
        image centre; positive where the image was darker than the reference).
    offsets_od : ndarray, shape (3,), dtype float64
        The per-channel OD offsets ``c_k`` that were removed.
    delta_e : float
        Mean CIEDE2000 colour difference between the reference and the normalised
        image over the fitting mask (NaN when the mask is empty).
    delta_e_before : float
        The same figure before normalisation.
    n_pixels : int
        Number of mask pixels used in the fit after trimming.
    """

    image: np.ndarray
    gains: np.ndarray
    field: np.ndarray
    offsets_od: np.ndarray
    delta_e: float
    delta_e_before: float
    n_pixels: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays of pixels)."""
        return {
            "gains": [float(g) for g in self.gains],
            "offsets_od": [float(c) for c in self.offsets_od],
            "field_range_od": [float(self.field.min()), float(self.field.max())]
            if self.field.size
            else [0.0, 0.0],
            "delta_e": _nan_to_none(self.delta_e),
            "delta_e_before": _nan_to_none(self.delta_e_before),
            "n_pixels": int(self.n_pixels),
        }


def _nan_to_none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _check_mask(mask: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.shape != shape or mask.dtype != bool:
        got = (
            f"shape {mask.shape} dtype {mask.dtype}"
            if isinstance(mask, np.ndarray)
            else type(mask).__name__
        )
        raise ValueError(
            f"{name} must be a bool array of shape {shape} (the photo's H, W), got {got}; "
            f"convert it with `{name}.astype(bool)` or resize it to the photo"
        )
    return mask


# --------------------------------------------------------------------------- skin mask


def skin_mask(photo: Photo | np.ndarray) -> np.ndarray:
    """Pixels of the leg (skin), as opposed to backdrop, clothing or floor.

    Skin colours are a narrow family of red-orange hues in CIELAB. Pixels of that
    family are taken as seeds; their robust mean and spread in (L*, a*, b*)
    define a colour model of *this* leg under *this* light, so white balance and
    skin tone do not need fixed thresholds. The pixels close to the model are then
    cleaned with morphology, and the largest connected component with its holes
    filled (veins, moles, hair) is returned.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), dtype uint8
        RGB photo.

    Returns
    -------
    ndarray, shape (H, W), dtype bool
        True on the leg. All False when no skin-coloured region is found.
    """
    rgb = as_rgb(photo)
    h, w = rgb.shape[:2]
    s = min(1.0, _MASK_SIDE / max(h, w))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    small_mask = _skin_mask_small(small)
    if s >= 1:
        return small_mask
    up = cv2.resize(small_mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(up >= 128)


def _skin_mask_small(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
    lab = cv2.GaussianBlur(lab, (0, 0), 1.5)
    big_l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    hue = np.degrees(np.arctan2(b, a))
    chroma = np.hypot(a, b)
    seeds = (big_l > 20) & (big_l < 97) & (hue > 10) & (hue < 80) & (chroma > 8) & (chroma < 70)
    if seeds.sum() < 0.01 * seeds.size:
        return np.zeros(rgb.shape[:2], dtype=bool)
    feats = np.stack([big_l * 0.5, a, b], axis=-1)
    x = feats[seeds]
    centre = np.median(x, axis=0)
    # Robust spread: median absolute deviation, floored so a uniform phantom still works.
    spread = np.maximum(1.4826 * np.median(np.abs(x - centre), axis=0), np.array([3.0, 2.0, 2.0]))
    # Re-estimate from the core of the seeds (drops a skin-like backdrop minority).
    core = np.all(np.abs(x - centre) < 2.5 * spread, axis=1)
    if core.sum() > 100:
        centre = np.median(x[core], axis=0)
        spread = np.maximum(
            1.4826 * np.median(np.abs(x[core] - centre), axis=0), np.array([3.0, 2.0, 2.0])
        )
    # Skin under one light is a tight colour cluster; a wide spread is not a leg.
    if spread[1] > 6.0 or spread[2] > 6.0:
        return np.zeros(rgb.shape[:2], dtype=bool)
    z = (feats - centre) / spread
    d2 = np.einsum("...k,...k->...", z, z)
    cand = d2 < 16.0  # 4 robust sigmas
    k = max(3, round(0.01 * max(rgb.shape[:2])) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    cand_u8 = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    cand_u8 = cv2.morphologyEx(cand_u8, cv2.MORPH_CLOSE, kernel)
    cc = components(cand_u8)
    n, lab_cc = cc.n, cc.labels
    if n <= 1:
        return np.zeros(rgb.shape[:2], dtype=bool)
    largest = 1 + int(np.argmax(cc.areas[1:]))
    if cc.areas[largest] < 0.02 * cand.size:
        return np.zeros(rgb.shape[:2], dtype=bool)
    leg = lab_cc == largest
    # Veins, moles and hair inside the leg are leg too.
    leg = fill_holes(leg)
    return leg


# --------------------------------------------------------------------------- vein-like pixels


def _chroma_basis() -> tuple[np.ndarray, np.ndarray]:
    """Unit OD directions seen only by blood (orthogonal to neutral and melanin)."""
    from .optics import MELANIN_OD, NEUTRAL_OD

    q, _ = np.linalg.qr(np.stack([NEUTRAL_OD, MELANIN_OD], axis=1).astype(np.float64))
    out = []
    for v in (HAEMOGLOBIN_OD, DEEP_VEIN_OD):
        r = v.astype(np.float64) - q @ (q.T @ v.astype(np.float64))
        out.append((r / np.linalg.norm(r)).astype(np.float32))
    return out[0], out[1]


def vein_like_mask(
    od: np.ndarray, *, sigma_px: float = 6.0, k: float = 3.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Pixels whose OD excess over the local skin points towards blood.

    The excess (OD minus its Gaussian local mean) is projected on the parts of the
    haemoglobin and deep-vein directions orthogonal to melanin and the neutral
    axis, so freckles, moles, hair and shading do not respond.

    Parameters
    ----------
    od : ndarray, shape (H, W, 3), dtype float32
        Optical density of a photo (any resolution).
    sigma_px : float
        Scale of the local skin background, in pixels of ``od``.
    k : float
        Threshold in robust standard deviations of the score on skin.
    mask : ndarray, shape (H, W), dtype bool, optional
        Skin pixels; the result is restricted to them, away from their outline
        (where backdrop colour would read as blood).

    Returns
    -------
    ndarray, shape (H, W), dtype bool
    """
    if od.ndim != 3 or od.shape[2] != 3:
        raise ValueError(f"od must be (H, W, 3), got shape {od.shape}")
    m = _check_mask(mask, od.shape[:2], "mask")
    return _vein_like_from_score(_vein_score(od, sigma_px), sigma_px, k, m)


def _vein_score(od: np.ndarray, sigma_px: float) -> np.ndarray:
    """:func:`vein_like_mask`'s score: the OD excess projected towards blood."""
    hb, dv = _chroma_basis()
    hp = od - cv2.GaussianBlur(od, (0, 0), sigma_px)
    return np.asarray(np.maximum(hp @ hb, hp @ dv))


def _vein_like_from_score(
    score: np.ndarray, sigma_px: float, k: float, m: np.ndarray | None
) -> np.ndarray:
    if m is not None:
        r = max(1, round(2 * sigma_px))
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        m = cv2.erode(m.astype(np.uint8), kernel) > 0
        vals = score[::2, ::2][m[::2, ::2]]
    else:
        vals = score[::2, ::2].ravel()
    if vals.size < 50:
        return np.zeros(score.shape[:2], dtype=bool)
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826 + 1e-6
    out = score > med + k * mad
    return np.asarray(out & m) if m is not None else np.asarray(out)


# --------------------------------------------------------------------------- normalisation


def _poly_terms(xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Degree-2 polynomial terms without the constant: (N, 5)."""
    return np.stack([xn, yn, xn * xn, xn * yn, yn * yn], axis=-1)


# sRGB -> XYZ matrix and D65 (2 degree observer) white of scikit-image's ``rgb2lab``.
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


#: Linear value of each sRGB code in float64 (the formula ``skimage.color.rgb2xyz`` uses).
_LIN64_LUT = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)


def srgb_u8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65, 2 degree observer) of sRGB uint8 colours.

    The formula of ``skimage.color.rgb2lab`` (sRGB gamma, its XYZ matrix, CIE
    L*a*b* with the linear segment below 0.008856), in float64.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), dtype uint8

    Returns
    -------
    ndarray, shape (..., 3), dtype float64
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"rgb must be uint8 with 3 channels last, got {a.dtype} {a.shape}")
    xyz = _LIN64_LUT[a] @ _XYZ_FROM_RGB.T
    f = xyz / _D65_WHITE
    hi = f > 0.008856
    f[hi] = np.cbrt(f[hi])
    f[~hi] = 7.787 * f[~hi] + 16.0 / 116.0
    x, y, z = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1), as ``skimage.color.deltaE_ciede2000``.

    Parameters
    ----------
    lab1, lab2 : ndarray, shape (..., 3), float
        Reference and compared colours, CIE L*a*b*.

    Returns
    -------
    ndarray, shape (...), dtype float64
    """
    p = np.asarray(lab1, dtype=np.float64)
    q = np.asarray(lab2, dtype=np.float64)
    if p.shape != q.shape or p.ndim < 1 or p.shape[-1] != 3:
        raise ValueError(f"lab1 and lab2 must share a (..., 3) shape, got {p.shape}, {q.shape}")
    l1, a1, b1 = p[..., 0], p[..., 1], p[..., 2]
    l2, a2, b2 = q[..., 0], q[..., 1], q[..., 2]
    # a* stretched by the mean chroma, then polar (hue in [0, 2 pi)).
    cbar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = cbar**7
    scale = 1 + 0.5 * (1 - np.sqrt(c7 / (c7 + 25**7)))
    c1, h1 = _polar_2pi(a1 * scale, b1)
    c2, h2 = _polar_2pi(a2 * scale, b2)

    lbar = 0.5 * (l1 + l2)
    tmp = (lbar - 50) ** 2
    l_term = (l2 - l1) / (1 + 0.015 * tmp / np.sqrt(20 + tmp))

    cbar = 0.5 * (c1 + c2)
    c_term = (c2 - c1) / (1 + 0.045 * cbar)

    h_diff = h2 - h1
    h_sum = h1 + h2
    cc = c1 * c2
    dh = h_diff.copy()
    dh[h_diff > np.pi] -= 2 * np.pi
    dh[h_diff < -np.pi] += 2 * np.pi
    dh[cc == 0.0] = 0.0
    dh_term = 2 * np.sqrt(cc) * np.sin(dh / 2)

    hbar = h_sum.copy()
    wrap = (cc != 0.0) & (np.abs(h_diff) > np.pi)
    hbar[wrap & (h_sum < 2 * np.pi)] += 2 * np.pi
    hbar[wrap & (h_sum >= 2 * np.pi)] -= 2 * np.pi
    hbar[cc == 0.0] *= 2
    hbar *= 0.5
    t = (
        1
        - 0.17 * np.cos(hbar - np.deg2rad(30))
        + 0.24 * np.cos(2 * hbar)
        + 0.32 * np.cos(3 * hbar + np.deg2rad(6))
        - 0.20 * np.cos(4 * hbar - np.deg2rad(63))
    )
    h_term = dh_term / (1 + 0.015 * cbar * t)

    c7 = cbar**7
    rc = 2 * np.sqrt(c7 / (c7 + 25**7))
    dtheta = np.deg2rad(30) * np.exp(-(((np.rad2deg(hbar) - 275) / 25) ** 2))
    r_term = -np.sin(2 * dtheta) * rc * c_term * h_term

    de2 = l_term**2
    de2 += c_term**2
    de2 += h_term**2
    de2 += r_term
    return np.asarray(np.sqrt(np.maximum(de2, 0)))


def _polar_2pi(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, t = np.hypot(x, y), np.arctan2(y, x)
    t += np.where(t < 0.0, 2 * np.pi, 0)
    return r, t


def delta_e2000(
    reference: np.ndarray, image: np.ndarray, *, mask: np.ndarray | None = None
) -> float:
    """Mean CIEDE2000 difference between two RGB images over ``mask``.

    Parameters
    ----------
    reference, image : ndarray, shape (H, W, 3), dtype uint8
    mask : ndarray, shape (H, W), dtype bool, optional

    Returns
    -------
    float
        Mean ΔE2000 (NaN when the mask is empty). At most ``DELTA_E_SAMPLES`` pixels
        are used (a regular sub-sample).
    """
    ref = as_rgb(reference)
    img = as_rgb(image)
    if ref.shape != img.shape:
        raise ValueError(f"image shape {img.shape} must equal reference shape {ref.shape}")
    idx = _delta_e_index(mask, (int(ref.shape[0]), int(ref.shape[1])))
    return _mean_delta_e(ref.reshape(-1, 3)[idx], img.reshape(-1, 3)[idx])


def _delta_e_index(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The flat indices :func:`delta_e2000` reads: a regular sub-sample of ``mask``."""
    m = np.ones(shape, bool) if mask is None else _check_mask(mask, shape, "mask")
    assert m is not None
    idx = np.flatnonzero(m)
    return idx[:: max(1, idx.size // DELTA_E_SAMPLES)]


def _mean_delta_e(ref_px: np.ndarray, img_px: np.ndarray) -> float:
    """Mean CIEDE2000 difference of two (N, 3) uint8 sRGB pixel lists; NaN when empty."""
    if ref_px.shape[0] == 0:
        return float("nan")
    return float(np.mean(ciede2000(srgb_u8_to_lab(ref_px), srgb_u8_to_lab(img_px))))


def _apply_linear_gain(img: np.ndarray, field_gain: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """sRGB uint8 image times a linear gain ``field_gain (H, W) * gains[k]``, clipped."""
    out = np.empty_like(img)
    lut = _LIN_LUT.reshape(256, 1)
    for k in range(3):
        lin = cv2.LUT(np.ascontiguousarray(img[..., k]), lut)
        lin = cv2.multiply(lin, field_gain, scale=float(gains[k]) * 65535.0)
        idx = np.minimum(lin, 65535.0).astype(np.uint16)  # non-negative: gains > 0
        out[..., k] = _SRGB16_LUT[idx]
    return out


def normalise_colour(
    reference: Photo | np.ndarray,
    image: Photo | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    trim: float = 0.2,
) -> ColourNormalisation:
    """Bring ``image``'s colour and exposure to ``reference``'s, on skin that is not vein.

    Both images must be in the same frame (register the follow-up first). See the
    module docstring for the model: per-channel OD offsets plus a smooth, neutral
    degree-2 illumination field, fitted robustly.

    Parameters
    ----------
    reference : Photo or ndarray, shape (H, W, 3), dtype uint8
        The baseline photo (RGB).
    image : Photo or ndarray, shape (H, W, 3), dtype uint8
        The follow-up photo warped into the baseline frame (RGB).
    mask : ndarray, shape (H, W), dtype bool, optional
        Pixels usable for the fit, e.g. skin seen in both photos
        (``skin_mask(reference) & registration.valid``). Vein-like pixels of either
        image are removed from it. Default: the skin mask of ``reference``.
    trim : float
        Fraction of the largest residuals dropped at each of the 3 fitting rounds,
        in [0, 0.5).

    Returns
    -------
    ColourNormalisation

    Raises
    ------
    ValueError
        Shapes differ, a bad mask, or ``trim`` outside [0, 0.5).
    """
    return apply_colour_fit(reference, image, fit_colour(reference, image, mask=mask, trim=trim))


@dataclass(frozen=True, eq=False)
class _FitFrame:
    """What :func:`fit_colour` works on that does not depend on its mask: both images
    reduced to at most ~0.5 MP (the model is smooth, so this is exact enough), their
    optical densities, vein scores and unclipped pixels."""

    shape: tuple[int, int]
    s: float
    ref_s: np.ndarray
    od_r: np.ndarray
    od_i: np.ndarray
    sigma_px: float
    score_r: np.ndarray
    score_i: np.ndarray
    unclipped: np.ndarray


def _fit_frame(ref: np.ndarray, img: np.ndarray) -> _FitFrame:
    h, w = ref.shape[:2]
    s = min(1.0, float(np.sqrt(5e5 / (h * w))))
    if s < 1.0:
        ref_s = cv2.resize(ref, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        img_s = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    else:
        ref_s, img_s = ref, img
    od_r = optical_density(ref_s)
    od_i = optical_density(img_s)
    sig = max(2.0, 6.0 * ref_s.shape[1] / 1000.0)
    unclipped = np.all((ref_s > 3) & (ref_s < 252) & (img_s > 3) & (img_s < 252), axis=-1)
    return _FitFrame(
        shape=(int(h), int(w)),
        s=s,
        ref_s=ref_s,
        od_r=od_r,
        od_i=od_i,
        sigma_px=sig,
        score_r=_vein_score(od_r, sig),
        score_i=_vein_score(od_i, sig),
        unclipped=unclipped,
    )


def fit_colour(
    reference: Photo | np.ndarray,
    image: Photo | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    trim: float = 0.2,
    frame: _FitFrame | None = None,
) -> ColourFit:
    """:func:`normalise_colour`'s fit alone: the gains and illumination field that bring
    ``image`` to ``reference`` (same parameters and errors), without applying them.

    ``frame``: ``_fit_frame(reference, image)`` made beforehand (what does not depend on
    the mask), when the caller has had time for it while the mask was being made."""
    ref = as_rgb(reference)
    img = as_rgb(image)
    if ref.shape != img.shape:
        raise ValueError(
            f"image shape {img.shape} must equal reference shape {ref.shape}: "
            "warp the follow-up into the baseline frame first (registration.warp)"
        )
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
    h, w = ref.shape[:2]
    m = _check_mask(mask, (h, w), "mask")
    if m is None:
        m = skin_mask(ref)
    if frame is None:
        frame = _fit_frame(ref, img)
    elif frame.shape != (h, w):
        raise ValueError(f"frame is of shape {frame.shape}, the images are {(h, w)}")
    ref_s, od_r, od_i = frame.ref_s, frame.od_r, frame.od_i
    m_s = (
        cv2.resize(m.astype(np.uint8), (ref_s.shape[1], ref_s.shape[0])) > 0 if frame.s < 1.0 else m
    )
    hs, ws = ref_s.shape[:2]
    # Exclude veins of either visit, clipped or black pixels (OD is not linear there).
    sig = frame.sigma_px
    use = m_s & ~_vein_like_from_score(frame.score_r, sig, 3.0, m_s)
    use &= ~_vein_like_from_score(frame.score_i, sig, 3.0, m_s)
    use &= frame.unclipped
    ys, xs = np.nonzero(use)
    if ys.size > 20_000:
        sel = np.linspace(0, ys.size - 1, 20_000).astype(np.int64)
        ys, xs = ys[sel], xs[sel]
    n_used = int(ys.size)
    offsets = np.zeros(3)
    coef = np.zeros(5)
    if n_used >= 50:
        diff = (od_i[ys, xs] - od_r[ys, xs]).astype(np.float64)  # (N, 3)
        xn = (xs + 0.5) / ws * 2.0 - 1.0
        yn = (ys + 0.5) / hs * 2.0 - 1.0
        terms = _poly_terms(xn, yn)  # (N, 5)
        keep = np.ones(n_used, bool)
        for _ in range(3):
            # Unknowns: c_R, c_G, c_B and 5 shared field coefficients; 3 equations per
            # pixel (row [e_ch, t]). Solved through the 8x8 normal equations, whose
            # blocks have a closed form: N·I, 1ᵀT per channel, 3·TᵀT.
            k = np.flatnonzero(keep)
            t = terms[k]
            d = diff[k]
            ata = np.zeros((8, 8))
            ata[:3, :3] = np.eye(3) * k.size
            ata[:3, 3:] = t.sum(axis=0)[None, :]
            ata[3:, :3] = ata[:3, 3:].T
            ata[3:, 3:] = 3.0 * (t.T @ t)
            atb = np.concatenate([d.sum(axis=0), t.T @ d.sum(axis=1)])
            sol, *_ = np.linalg.lstsq(ata, atb, rcond=None)
            offsets, coef = sol[:3], sol[3:]
            resid = np.abs(diff - offsets[None, :] - (terms @ coef)[:, None]).sum(axis=1)
            keep = resid <= np.quantile(resid, 1.0 - trim)
        n_used = int(keep.sum())
    # Evaluate the field at full resolution from separable polynomial terms.
    xf = ((np.arange(w, dtype=np.float32) + 0.5) / w * 2.0 - 1.0)[None, :]
    yf = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2.0 - 1.0)[:, None]
    c = coef.astype(np.float32)
    field = (c[0] + c[2] * xf + c[3] * yf) * xf + (c[1] + c[4] * yf) * yf
    field = np.ascontiguousarray(field, dtype=np.float32)
    gains = np.exp(offsets)  # linear gain applied = exp(+c_k)
    return ColourFit(gains=gains, field=field, offsets_od=offsets, n_pixels=n_used, mask=m)


def apply_colour_fit(
    reference: Photo | np.ndarray,
    image: Photo | np.ndarray,
    fit: ColourFit,
    *,
    grid_step: int = 1,
) -> ColourNormalisation:
    """:func:`normalise_colour`'s second half: ``image`` with ``fit`` (from
    :func:`fit_colour` on the same pair) removed, and the colour differences to
    ``reference`` before and after, over the fit's mask.

    With ``grid_step`` s > 1 only the grid ``image[::s, ::s]`` is normalised and returned
    as ``image`` (for a caller that reads no other pixel); the colour differences are the
    same as with s = 1, and so is every grid pixel (the correction is pixel by pixel).
    """
    ref = as_rgb(reference)
    img = as_rgb(image)
    if ref.shape != img.shape:
        raise ValueError(f"image shape {img.shape} must equal reference shape {ref.shape}")
    if isinstance(grid_step, bool) or not isinstance(grid_step, int) or grid_step < 1:
        raise ValueError(f"grid_step must be a positive int, got {grid_step!r}")
    # OD_out = OD_in - c_k - f is a linear-light gain exp(c_k + f): apply it through
    # lookup tables instead of a full-resolution OD round trip.
    idx = _delta_e_index(fit.mask, (int(ref.shape[0]), int(ref.shape[1])))
    ref_px = ref.reshape(-1, 3)[idx]
    img_px = img.reshape(-1, 3)[idx]
    if grid_step == 1:
        out = _apply_linear_gain(img, np.exp(fit.field), fit.gains)
        out_px = out.reshape(-1, 3)[idx]
    else:
        sl = (slice(None, None, grid_step), slice(None, None, grid_step))
        out = _apply_linear_gain(
            np.ascontiguousarray(img[sl]), np.ascontiguousarray(np.exp(fit.field[sl])), fit.gains
        )
        # the sampled pixels alone, for the difference after
        out_px = img_px
        if idx.size:
            gain_px = np.exp(fit.field.reshape(-1)[idx])
            out_px = _apply_linear_gain(img_px[:, None, :], gain_px[:, None], fit.gains)[:, 0, :]
    de_before = _mean_delta_e(ref_px, img_px)
    de_after = _mean_delta_e(ref_px, out_px)
    return ColourNormalisation(
        image=out,
        gains=fit.gains,
        field=fit.field,
        offsets_od=fit.offsets_od,
        delta_e=de_after,
        delta_e_before=de_before,
        n_pixels=fit.n_pixels,
    )
