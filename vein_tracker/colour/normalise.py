"""Colour normalisation of a follow-up (registered onto its baseline) to the baseline.

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

from ..checks import check_mask
from ..io import Photo, as_rgb
from ..optics import linear_to_srgb_u8, optical_density, srgb_to_linear
from .delta_e import delta_e_index, mean_delta_e
from .skin import skin_mask, vein_like_from_score, vein_score

__all__ = [
    "ColourFit",
    "ColourFitInput",
    "ColourNormalisation",
    "apply_colour_fit",
    "apply_linear_gain",
    "fit_colour",
    "normalise_colour",
    "prepare_colour_fit",
]

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


def _poly_terms(xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Degree-2 polynomial terms without the constant: (N, 5)."""
    return np.stack([xn, yn, xn * xn, xn * yn, yn * yn], axis=-1)


def apply_linear_gain(img: np.ndarray, field_gain: np.ndarray, gains: np.ndarray) -> np.ndarray:
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
class ColourFitInput:
    """What :func:`fit_colour` works on that does not depend on its mask
    (:func:`prepare_colour_fit`): both images reduced to at most ~0.5 MP (the model is
    smooth, so this is exact enough), their optical densities, vein scores and unclipped
    pixels."""

    shape: tuple[int, int]
    s: float
    ref_s: np.ndarray
    od_r: np.ndarray
    od_i: np.ndarray
    sigma_px: float
    score_r: np.ndarray
    score_i: np.ndarray
    unclipped: np.ndarray


def prepare_colour_fit(reference: Photo | np.ndarray, image: Photo | np.ndarray) -> ColourFitInput:
    """The part of :func:`fit_colour` that needs no mask, for a caller that has the two
    images before it has the mask (``compare`` makes it while both visits are segmented).

    Parameters
    ----------
    reference, image : Photo or ndarray, shape (H, W, 3), dtype uint8
        As for :func:`fit_colour`.

    Returns
    -------
    ColourFitInput
    """
    ref = as_rgb(reference)
    img = as_rgb(image)
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
    return ColourFitInput(
        shape=(int(h), int(w)),
        s=s,
        ref_s=ref_s,
        od_r=od_r,
        od_i=od_i,
        sigma_px=sig,
        score_r=vein_score(od_r, sig),
        score_i=vein_score(od_i, sig),
        unclipped=unclipped,
    )


def fit_colour(
    reference: Photo | np.ndarray,
    image: Photo | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    trim: float = 0.2,
    prepared: ColourFitInput | None = None,
) -> ColourFit:
    """:func:`normalise_colour`'s fit alone: the gains and illumination field that bring
    ``image`` to ``reference`` (same parameters and errors), without applying them.

    ``prepared``: :func:`prepare_colour_fit` of the same two images, made beforehand."""
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
    m = skin_mask(ref) if mask is None else check_mask(mask, shape=(h, w), name="mask")
    if prepared is None:
        prepared = prepare_colour_fit(ref, img)
    elif prepared.shape != (h, w):
        raise ValueError(
            f"prepared is of images of shape {prepared.shape}, the images are {(h, w)}: "
            "prepare the fit on these two images"
        )
    ref_s, od_r, od_i = prepared.ref_s, prepared.od_r, prepared.od_i
    m_s = (
        cv2.resize(m.astype(np.uint8), (ref_s.shape[1], ref_s.shape[0])) > 0
        if prepared.s < 1.0
        else m
    )
    hs, ws = ref_s.shape[:2]
    # Exclude veins of either visit, clipped or black pixels (OD is not linear there).
    sig = prepared.sigma_px
    use = m_s & ~vein_like_from_score(prepared.score_r, sig, 3.0, m_s)
    use &= ~vein_like_from_score(prepared.score_i, sig, 3.0, m_s)
    use &= prepared.unclipped
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
    idx = delta_e_index(fit.mask, (int(ref.shape[0]), int(ref.shape[1])))
    ref_px = ref.reshape(-1, 3)[idx]
    img_px = img.reshape(-1, 3)[idx]
    if grid_step == 1:
        out = apply_linear_gain(img, np.exp(fit.field), fit.gains)
        out_px = out.reshape(-1, 3)[idx]
    else:
        sl = (slice(None, None, grid_step), slice(None, None, grid_step))
        out = apply_linear_gain(
            np.ascontiguousarray(img[sl]), np.ascontiguousarray(np.exp(fit.field[sl])), fit.gains
        )
        # the sampled pixels alone, for the difference after
        out_px = img_px
        if idx.size:
            gain_px = np.exp(fit.field.reshape(-1)[idx])
            out_px = apply_linear_gain(img_px[:, None, :], gain_px[:, None], fit.gains)[:, 0, :]
    de_before = mean_delta_e(ref_px, img_px)
    de_after = mean_delta_e(ref_px, out_px)
    return ColourNormalisation(
        image=out,
        gains=fit.gains,
        field=fit.field,
        offsets_od=fit.offsets_od,
        delta_e=de_after,
        delta_e_before=de_before,
        n_pixels=fit.n_pixels,
    )
