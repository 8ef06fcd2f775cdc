"""Registration: map a follow-up photo of a treatment area onto its baseline photo.

Owns the geometric alignment and its failure detection. It must not normalise
colour (:mod:`vein_tracker.colour`) nor segment veins.

Method
------
1. **Matching channel.** Both photos are reduced to a working resolution and
   projected, in optical density, onto the direction orthogonal to the two blood
   directions (``HAEMOGLOBIN_OD`` and ``DEEP_VEIN_OD``). Veins, which treatment
   removes on purpose, vanish from this channel while melanin (freckles, moles,
   texture), hair and the leg outline stay. Exposure and white balance are OD
   offsets, so a local high-pass and contrast normalisation remove them.
2. **Coarse homography.** SIFT on the matching channel (skin only, vein-like pixels
   masked), Lowe ratio test, ``cv2.USAC_MAGSAC``.
3. **Sub-pixel refinement.** ECC with a homography motion model
   (``cv2.findTransformECCWithMask``) on the high-passed channel, restricted to
   skin, at a finer working resolution.
4. **Non-rigid refinement** (optional). DIS optical flow between the baseline and
   the homography-warped follow-up, smoothed by normalised convolution on skin and
   bounded; kept only when it lowers the photometric residual.
5. **Checks.** Inlier count and ratio, plausibility of the homography (scale,
   anisotropy, perspective), overlap, normalised correlation on skin after warping,
   and sharpness of the follow-up against the baseline. Any failure gives
   ``ok=False`` with a reason a clinic user can act on; the function never raises
   for an unusable pair.

Conventions: a homography maps follow-up pixel (x, y) to baseline pixel (x, y), at
full resolution, in upright photos. ``flow`` is a residual displacement field in
the baseline frame: baseline pixel ``p`` sees the homography-warped follow-up at
``p + flow(p)``, i.e. the follow-up at ``H^-1(p + flow(p))``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .capture import CaptureReport, assess_capture
from .colour import skin_mask, vein_like_mask
from .io import Photo, as_rgb
from .morphology import sample_linear
from .optics import NEUTRAL_OD, optical_density

__all__ = [
    "CaptureReport",
    "Registration",
    "assess_capture",
    "RegistrationChecks",
    "matching_channel",
    "register",
    "sharpness",
]

ProgressCallback = Callable[[float, str], None]

#: Long side (px) of the image used for SIFT matching.
MATCH_SIDE = 512
#: Long side (px) of the image used for ECC and optical-flow refinement.
REFINE_SIDE = 1000

# Failure thresholds (documented in Registration.reason messages).
MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.08
MIN_NCC = 0.35
MIN_OVERLAP = 0.25
#: Largest extra blur of one photo over the other, as a fraction of the baseline's long side
#: (3 px at 2000 px, about 0.3 mm at the usual framing): finer veins are lost beyond.
MAX_RELATIVE_BLUR = 0.0015
ECC_ITERATIONS = 10
#: Long side (px) of the grid ECC runs on.
ECC_SIDE = 640
#: When matching fails, a photo with less than this share of the other's fine detail
#: (see :func:`sharpness`) is named as blurred in the reason.
BLUR_HINT_RATIO = 0.5
#: Largest non-rigid residual displacement, as a fraction of the long side (20 px at 2000).
MAX_FLOW = 0.01
MAX_SCALE_CHANGE = 2.0
MAX_ANISOTROPY = 1.35
MAX_PERSPECTIVE = 0.35


@dataclass(frozen=True)
class RegistrationChecks:
    """The figures the ok/refuse decision was taken on (for display and debugging).

    Attributes
    ----------
    matches : int
        Ratio-test matches fed to the robust estimator.
    ncc : float
        Normalised correlation of the matching channel on skin after warping, [-1, 1].
    overlap : float
        Fraction of the baseline leg covered by the warped follow-up, [0, 1].
    blur_followup_px, blur_baseline_px : float
        Extra Gaussian blur (sigma, baseline px) of the follow-up over the baseline and
        of the baseline over the follow-up (0 = not blurrier).
    scale : float
        Mean linear scale of the homography (follow-up px to baseline px).
    anisotropy : float
        Ratio of the homography's singular values (1 = no shear/stretch).
    perspective : float
        Largest relative scale change across the frame caused by the projective terms.
    nonrigid_gain : float
        Relative drop of the photometric residual won by the non-rigid stage (0 if unused).
    """

    matches: int = 0
    ncc: float = float("nan")
    overlap: float = 0.0
    blur_followup_px: float = float("nan")
    blur_baseline_px: float = float("nan")
    scale: float = float("nan")
    anisotropy: float = float("nan")
    perspective: float = float("nan")
    nonrigid_gain: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


def _json_float(v: float | int) -> float | int | None:
    if isinstance(v, int):
        return v
    return float(v) if np.isfinite(v) else None


@dataclass(frozen=True, eq=False)
class Registration:
    """A follow-up photo aligned onto its baseline.

    Attributes
    ----------
    ok : bool
        Whether the pair is usable for scoring.
    reason : str or None
        Why not, for a clinic user (None when ``ok``).
    homography : ndarray, shape (3, 3), dtype float64
        Maps follow-up pixel (x, y) to baseline pixel (x, y), full resolution.
        Identity when no estimate could be made.
    flow : ndarray, shape (H, W, 2), dtype float32, or None
        Residual displacement in the baseline frame, px (see module docstring).
    warped : ndarray, shape (H, W, 3), dtype uint8
        The follow-up resampled into the baseline frame (RGB); zeros outside ``valid``.
    valid : ndarray, shape (H, W), dtype bool
        Baseline pixels that the follow-up covers.
    inliers : int
        Feature matches consistent with the homography.
    inlier_ratio : float
        ``inliers`` over the ratio-test matches, [0, 1].
    residual_px : float
        Median distance, in full-resolution baseline px, between matched features
        after the final mapping (NaN when no estimate).
    quality : float
        Overall alignment quality in [0, 1] (0 when refused).
    checks : RegistrationChecks
        The figures behind ``ok`` and ``quality``.
    followup_shape : tuple of int
        ``(H, W)`` of the follow-up photo.
    """

    ok: bool
    reason: str | None
    homography: np.ndarray
    flow: np.ndarray | None
    warped: np.ndarray
    valid: np.ndarray
    inliers: int
    inlier_ratio: float
    residual_px: float
    quality: float
    checks: RegistrationChecks = field(default_factory=RegistrationChecks)
    followup_shape: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixel arrays)."""
        return {
            "ok": bool(self.ok),
            "reason": self.reason,
            "homography": [[float(v) for v in row] for row in self.homography],
            "quality": float(self.quality),
            "residual_px": _json_float(self.residual_px),
            "inliers": int(self.inliers),
            "inlier_ratio": float(self.inlier_ratio),
            "nonrigid": self.flow is not None,
            "valid_fraction": float(self.valid.mean()) if self.valid.size else 0.0,
            "checks": self.checks.to_dict(),
        }

    def map_points(self, xy: np.ndarray) -> np.ndarray:
        """Map follow-up pixel coordinates to the baseline frame.

        Parameters
        ----------
        xy : array_like, shape (N, 2)
            Follow-up (x, y) in px.

        Returns
        -------
        ndarray, shape (N, 2), dtype float64
            Baseline (x, y) in px. With a flow field the inverse of
            ``p -> p + flow(p)`` is found by fixed-point iteration.
        """
        pts = np.asarray(xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"xy must have shape (N, 2), got {pts.shape}")
        q = _apply_h(self.homography, pts)
        if self.flow is None:
            return q
        p = q.copy()
        for _ in range(6):
            fx = _bilinear(self.flow[..., 0], p)
            fy = _bilinear(self.flow[..., 1], p)
            p = q - np.stack([fx, fy], axis=1)
        return p

    def warp(
        self, image: np.ndarray, *, interpolation: str = "linear", fill: float = 0
    ) -> np.ndarray:
        """Resample a follow-up-frame image or mask into the baseline frame.

        Parameters
        ----------
        image : ndarray, shape (h, w) or (h, w, C)
            An image or mask in the follow-up frame (same size as the follow-up).
            Bool masks come back bool.
        interpolation : {"linear", "nearest", "cubic"}
            Resampling; masks and label images should use "nearest".
        fill : float
            Value outside the follow-up.

        Returns
        -------
        ndarray, shape (H, W) or (H, W, C)
            Same dtype as ``image`` in the baseline frame.
        """
        interp = {
            "linear": cv2.INTER_LINEAR,
            "nearest": cv2.INTER_NEAREST,
            "cubic": cv2.INTER_CUBIC,
        }
        if interpolation not in interp:
            raise ValueError(
                f"interpolation must be 'linear', 'nearest' or 'cubic', got {interpolation!r}"
            )
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError("image must be a 2-D or 3-D ndarray in the follow-up frame")
        if self.followup_shape != (0, 0) and image.shape[:2] != self.followup_shape:
            raise ValueError(
                f"image must have the follow-up's size {self.followup_shape}, got {image.shape[:2]}"
            )
        is_bool = image.dtype == bool
        src = image.astype(np.uint8) if is_bool else image
        shape = self.valid.shape
        flag = cv2.INTER_NEAREST if is_bool else interp[interpolation]
        out = _warp_to_baseline(src, self.homography, self.flow, shape, flag, fill)
        return out.astype(bool) if is_bool else out


# --------------------------------------------------------------------------- helpers


def _apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    ph = np.hstack([pts, np.ones((pts.shape[0], 1))]) @ h.T
    return ph[:, :2] / ph[:, 2:3]


def _bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2-D array at (x, y) points, edge values outside."""
    return sample_linear(img, pts[:, 1], pts[:, 0])


def _grid_matrix(src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> np.ndarray:
    """Pixel coordinates of a ``src`` image in a resized copy of shape ``dst``.

    ``cv2.resize`` aligns pixel centres: ``x_dst = sx * x_src + (sx - 1) / 2``. Using
    the bare scale instead would shift a homography by half a pixel per level.
    """
    sx = dst_shape[1] / src_shape[1]
    sy = dst_shape[0] / src_shape[0]
    return np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0], [0.0, 0.0, 1.0]])


def _convert_h(h: np.ndarray, m_f: np.ndarray, m_b: np.ndarray) -> np.ndarray:
    """``h`` (follow-up -> baseline) in frames mapped by ``m_f`` and ``m_b``."""
    out = m_b @ h @ np.linalg.inv(m_f)
    return out / out[2, 2]


def _apply_m(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return _apply_h(m, pts)


def _resize(rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Downscale so the long side is at most ``side``: image, grid matrix, mean scale."""
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return rgb, np.eye(3), 1.0
    out = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    m = _grid_matrix(rgb.shape, out.shape)
    return out, m, 0.5 * (m[0, 0] + m[1, 1])


def matching_channel(rgb: np.ndarray, *, sigma_px: float = 3.0) -> np.ndarray:
    """The illumination-robust, vein-free channel registration matches on.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
        RGB image (any resolution).
    sigma_px : float
        Scale of the high-pass, in px of ``rgb``.

    Returns
    -------
    ndarray, shape (H, W), dtype float32
        Neutral optical density (log-luminance; exposure and white balance are
        offsets in it), lightly smoothed against JPEG noise, minus its local mean
        (Gaussian ``sigma_px``). Vein pixels are masked separately.
    """
    return _highpass(optical_density(as_rgb(rgb)) @ NEUTRAL_OD, sigma_px)


def _to_u8(hp: np.ndarray, sigma_px: float) -> np.ndarray:
    """Locally contrast-normalised high-pass as uint8, for SIFT."""
    sd = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 4.0 * sigma_px)) + 1e-3
    z = np.clip(hp / sd, -3.0, 3.0)
    return np.asarray(np.round(z * 40.0 + 128.0), dtype=np.uint8)


def sharpness(rgb: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Scale-free focus measure: fine-band over mid-band detail energy of the grey image.

    Ratio of the energy of the difference of Gaussians (1.5 px, 3 px) to that of
    (3 px, 6 px). Blur removes the fine band first; pixel noise barely reaches
    either band, so the measure keeps falling with blur on noisy photos. Compute it
    at a fixed working size (about 1000 px long side). On skin phantoms: about
    0.8–1.2 sharp, 0.5–0.8 at a blur σ of 1 px, 0.3–0.5 at 2 px, below 0.3 beyond.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    mask : ndarray, shape (H, W), dtype bool, optional
        Pixels to measure on (e.g. skin); ignored when it has fewer than 100 pixels.

    Returns
    -------
    float
    """
    g = cv2.cvtColor(as_rgb(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g1 = cv2.GaussianBlur(g, (0, 0), 1.5)
    g2 = cv2.GaussianBlur(g, (0, 0), 3.0)
    g4 = cv2.GaussianBlur(g, (0, 0), 6.0)
    fine = (g1 - g2) ** 2
    mid = (g2 - g4) ** 2
    if mask is not None:
        m = _erode(mask, 13)
        if m.sum() > 100:
            return float(fine[m].mean() / (mid[m].mean() + 1e-6))
    return float(fine.mean() / (mid.mean() + 1e-6))


def _warp_to_baseline(
    src: np.ndarray,
    h: np.ndarray,
    flow: np.ndarray | None,
    shape: tuple[int, int],
    flag: int,
    fill: float = 0,
) -> np.ndarray:
    hh, ww = shape
    if flow is None:
        return np.asarray(
            cv2.warpPerspective(
                src,
                h,
                (ww, hh),
                flags=flag,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=fill,
            )
        )
    mx, my = _source_maps(h, flow, shape)
    return np.asarray(
        cv2.remap(src, mx, my, flag, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    )


def _source_maps(
    h: np.ndarray, flow: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Follow-up (x, y) of each baseline pixel: ``H^-1(p + flow(p))``, float32 maps."""
    hh, ww = shape
    hinv = np.linalg.inv(h)
    xs = np.arange(ww, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(hh, dtype=np.float32)[:, None] + flow[..., 1]
    hi = hinv.astype(np.float32)
    den = hi[2, 0] * xs + hi[2, 1] * ys + hi[2, 2]
    mx = (hi[0, 0] * xs + hi[0, 1] * ys + hi[0, 2]) / den
    my = (hi[1, 0] * xs + hi[1, 1] * ys + hi[1, 2]) / den
    return np.asarray(mx, np.float32), np.asarray(my, np.float32)


def _homography_shape(h: np.ndarray, shape_f: tuple[int, int]) -> tuple[float, float, float]:
    """Scale, anisotropy and perspective strength of ``h`` over the follow-up frame."""
    hf, wf = shape_f
    cx, cy = wf / 2.0, hf / 2.0
    # Local Jacobian at the centre.
    d = h[2, 0] * cx + h[2, 1] * cy + h[2, 2]
    u = (h[0, 0] * cx + h[0, 1] * cy + h[0, 2]) / d
    v = (h[1, 0] * cx + h[1, 1] * cy + h[1, 2]) / d
    jac = np.array(
        [
            [(h[0, 0] - u * h[2, 0]) / d, (h[0, 1] - u * h[2, 1]) / d],
            [(h[1, 0] - v * h[2, 0]) / d, (h[1, 1] - v * h[2, 1]) / d],
        ]
    )
    sv = np.linalg.svd(jac, compute_uv=False)
    if not np.all(np.isfinite(sv)) or sv[1] <= 0:
        return float("nan"), float("inf"), float("inf")
    scale = float(np.sqrt(sv[0] * sv[1]))
    aniso = float(sv[0] / sv[1])
    corners = np.array([[0, 0], [wf, 0], [0, hf], [wf, hf]], dtype=np.float64)
    den = corners @ h[2, :2] + h[2, 2]
    if np.any(den <= 0):
        return scale, aniso, float("inf")
    persp = float(np.max(np.abs(den / d - 1.0)))
    return scale, aniso, persp


def _masked_smooth(
    flow: np.ndarray, weight: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution of a flow field with a Gaussian, weights in [0, 1].

    Wide kernels run on a grid reduced by up to 4 (the sums are linear, so averaging
    first and blurring after is nearly the same) and come back bilinearly.
    """
    h, w = weight.shape
    k = int(min(4, max(1, sigma // 3)))
    stack = np.dstack([flow[..., 0] * weight, flow[..., 1] * weight, weight]).astype(np.float32)
    if k > 1:
        small = cv2.resize(stack, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / k)
        stack = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    else:
        stack = np.asarray(cv2.GaussianBlur(stack, (0, 0), sigma))
    den = np.maximum(stack[..., 2], 1e-3)
    out = np.stack([stack[..., 0] / den, stack[..., 1] / den], axis=-1)
    return out.astype(np.float32), np.ascontiguousarray(stack[..., 2])


def _ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    if m.sum() < 50:
        return float("nan")
    x = a[m].astype(np.float64)
    y = b[m].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _check_optional_mask(
    mask: np.ndarray | None, shape: tuple[int, int], name: str
) -> np.ndarray | None:
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.shape != shape:
        got = mask.shape if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(
            f"{name} must be a bool array of the baseline's shape {shape}, got {got}; "
            "draw it on the upright baseline photo"
        )
    if mask.dtype != bool:
        raise ValueError(f"{name} must have dtype bool, got {mask.dtype}; use `{name} > 0`")
    return mask


def _blur_hint(
    b_ref: np.ndarray, f_ref: np.ndarray, b_skin: np.ndarray, f_skin: np.ndarray
) -> str | None:
    """A reason naming a blurred photo when matching failed because one photo is blurred."""
    sb = sharpness(b_ref, mask=b_skin)
    sf = sharpness(f_ref, mask=f_skin)
    if sf < BLUR_HINT_RATIO * sb:
        return (
            "The follow-up photo is blurred, so its skin details cannot be matched to the "
            "baseline: retake it with the camera steady and focused on the skin."
        )
    if sb < BLUR_HINT_RATIO * sf:
        return (
            "The baseline photo is blurred, so its skin details cannot be matched to the "
            "follow-up: its fine veins cannot be compared; retake the baseline if possible."
        )
    return None


def _refused(
    reason: str,
    base_shape: tuple[int, int],
    f_shape: tuple[int, int],
    *,
    h: np.ndarray | None = None,
    inliers: int = 0,
    ratio: float = 0.0,
    checks: RegistrationChecks | None = None,
) -> Registration:
    hh, ww = base_shape
    return Registration(
        ok=False,
        reason=reason,
        homography=np.eye(3) if h is None else h,
        flow=None,
        warped=np.zeros((hh, ww, 3), np.uint8),
        valid=np.zeros((hh, ww), bool),
        inliers=int(inliers),
        inlier_ratio=float(ratio),
        residual_px=float("nan"),
        quality=0.0,
        checks=checks or RegistrationChecks(),
        followup_shape=f_shape,
    )


# --------------------------------------------------------------------------- main entry


def register(
    baseline: Photo | np.ndarray,
    followup: Photo | np.ndarray,
    *,
    roi: np.ndarray | None = None,
    leg_mask: np.ndarray | None = None,
    nonrigid: bool = True,
    progress: ProgressCallback | None = None,
    on_features: Callable[[], None] | None = None,
) -> Registration:
    """Align a follow-up photo onto the baseline photo of the same treatment area.

    Parameters
    ----------
    baseline, followup : Photo or ndarray, shape (H, W, 3) and (h, w, 3), dtype uint8
        Upright RGB photos. Their sizes may differ.
    roi : ndarray, shape (H, W), dtype bool, optional
        Region of interest in the baseline frame; matching and checks favour it.
    leg_mask : ndarray, shape (H, W), dtype bool, optional
        Leg (skin) pixels of the baseline; default :func:`colour.skin_mask`.
    nonrigid : bool
        Add a smooth, bounded residual flow when it improves the fit.
    progress : callable(fraction, message), optional
        Called with a fraction in [0, 1] and a short message.
    on_features : callable(), optional
        Called once, when both photos' features have been found: what follows (matching,
        refinement, checks, warping) runs on one thread, so a caller may start other work
        then. Not called when a photo shows no skin.

    Returns
    -------
    Registration
        ``ok=False`` with a reason for pairs that cannot be aligned (different legs,
        blurred, too little overlap); this function does not raise for those.

    Raises
    ------
    ValueError
        A photo is not ``(H, W, 3) uint8`` or a mask has the wrong shape/dtype.
    """
    base = as_rgb(baseline)
    fol = as_rgb(followup)
    bshape = (int(base.shape[0]), int(base.shape[1]))
    fshape = (int(fol.shape[0]), int(fol.shape[1]))
    roi_m = _check_optional_mask(roi, bshape, "roi")
    leg_m = _check_optional_mask(leg_mask, bshape, "leg_mask")

    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(float(frac), msg)

    report(0.0, "preparing photos")
    # ---- working images: refine grid (<= REFINE_SIDE) and match grid (<= MATCH_SIDE)
    b_ref, m_bref, s_bref = _resize(base, REFINE_SIDE)
    f_ref, m_fref, _ = _resize(fol, REFINE_SIDE)
    b_m, m_bm, _ = _resize(b_ref, MATCH_SIDE)
    f_m, m_fm, _ = _resize(f_ref, MATCH_SIDE)
    m_bm = m_bm @ m_bref  # full px -> match px
    m_fm = m_fm @ m_fref

    def grid(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
        if mask.shape == like.shape[:2]:
            return mask
        out = cv2.resize(mask.astype(np.uint8), (like.shape[1], like.shape[0]))
        return np.asarray(out > 0)

    sig_m = 3.0

    def feat_mask(skin: np.ndarray, veins: np.ndarray) -> np.ndarray:
        # A band around the leg outline is kept: the outline is a stable feature too.
        band = _dilate(grid(skin, veins), 9)
        return np.asarray((band & ~veins).astype(np.uint8) * 255)

    sig_r = 3.0

    def refine_channel(ref: np.ndarray, skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # neutral OD on the refine grid, and its clipped high-pass (what ECC aligns)
        odn = optical_density(ref) @ NEUTRAL_OD
        return odn, _clip_robust(_highpass(odn, sig_r), skin)

    def features(small: np.ndarray, skin: np.ndarray, use: np.ndarray) -> tuple[Any, ...]:
        # Vein-like pixels (they change with treatment: no features there) and SIFT
        # features of the high-passed neutral OD on the ``use`` skin, on the match grid.
        od = optical_density(small)
        veins = _dilate(vein_like_mask(od, sigma_px=4.0, k=4.0, mask=grid(skin, small)), 5)
        ch = _highpass(od @ NEUTRAL_OD, sig_m)
        sift = cv2.SIFT.create(nfeatures=1500, contrastThreshold=0.02)
        kp, desc = sift.detectAndCompute(_to_u8(ch, sig_m), feat_mask(use, veins))
        return veins, kp, desc

    def followup_features() -> tuple[np.ndarray, Any, Any, Any]:
        # The follow-up's skin and features (OpenCV releases the GIL: found on a second
        # thread while the baseline's are, with the same results as one after the other).
        skin = skin_mask(f_ref)
        if skin.mean() < 0.02:
            return skin, None, None, None
        _, kp, desc = features(f_m, skin, skin)
        # and what the refinement aligns, should the features match
        return skin, kp, desc, refine_channel(f_ref, skin)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="register") as pool:
        f_job = pool.submit(followup_features)
        b_skin_ref = skin_mask(b_ref) if leg_m is None else grid(leg_m, b_ref)
        roi_ref: np.ndarray | None = None
        b_use_ref = b_skin_ref
        if roi_m is not None:
            roi_ref = grid(roi_m, b_ref)
            # Keep context around a small ROI: features just outside it constrain it too.
            k = max(3, round(0.15 * max(b_ref.shape[:2])) | 1)
            roi_dil = cv2.dilate(roi_ref.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
            if (b_skin_ref & roi_dil).mean() >= 0.02:
                b_use_ref = b_skin_ref & roi_dil
        b_skin_ok = b_use_ref.mean() >= 0.02
        if b_skin_ok:
            # ---- the baseline's features on the match grid
            report(0.1, "finding skin features")
            vein_bm, kb, db = features(b_m, b_skin_ref, b_use_ref)
            odn_b, ch_bref = refine_channel(b_ref, b_skin_ref)
        f_skin_ref, kf, df, f_refine = f_job.result()
    if on_features is not None and b_skin_ok and f_skin_ref.mean() >= 0.02:
        on_features()
    if not b_skin_ok:
        return _refused(
            "No skin was found in the baseline photo: photograph the treated area of the leg.",
            bshape,
            fshape,
        )
    if f_skin_ref.mean() < 0.02:
        return _refused(
            "No skin was found in the follow-up photo: photograph the treated area of the leg.",
            bshape,
            fshape,
        )
    if db is None or df is None or len(kb) < 8 or len(kf) < 8:
        return _refused(
            _blur_hint(b_ref, f_ref, b_skin_ref, f_skin_ref)
            or "Too few skin features were found to align the photos: check focus and "
            "lighting, and photograph the same area as the baseline.",
            bshape,
            fshape,
        )
    report(0.3, "matching")
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(df, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    n_matches = len(good)
    if n_matches < MIN_INLIERS:
        return _refused(
            _blur_hint(b_ref, f_ref, b_skin_ref, f_skin_ref)
            or f"Only {n_matches} features match between the photos: they do not seem to show "
            "the same area of the same leg. Retake the follow-up framed like the baseline.",
            bshape,
            fshape,
            checks=RegistrationChecks(matches=n_matches),
        )
    pf = np.array([kf[m.queryIdx].pt for m in good], dtype=np.float32)
    pb = np.array([kb[m.trainIdx].pt for m in good], dtype=np.float32)
    h_m, inl = cv2.findHomography(pf, pb, cv2.USAC_MAGSAC, 1.5, maxIters=5000, confidence=0.9999)
    if h_m is None or inl is None:
        return _refused(
            "No consistent alignment was found between the photos: they do not seem to show "
            "the same area. Retake the follow-up framed like the baseline.",
            bshape,
            fshape,
            checks=RegistrationChecks(matches=n_matches),
        )
    inl_b = np.asarray(inl).ravel().astype(bool)
    n_inl = int(inl_b.sum())
    ratio = n_inl / max(n_matches, 1)
    h_full = _convert_h(np.asarray(h_m, dtype=np.float64), np.linalg.inv(m_fm), np.linalg.inv(m_bm))
    scale, aniso, persp = _homography_shape(h_full, fshape)
    checks = RegistrationChecks(matches=n_matches, scale=scale, anisotropy=aniso, perspective=persp)
    if n_inl < MIN_INLIERS or ratio < MIN_INLIER_RATIO:
        return _refused(
            _blur_hint(b_ref, f_ref, b_skin_ref, f_skin_ref)
            or f"Only {n_inl} of {n_matches} skin features agree on one alignment: the photos "
            "do not seem to show the same area of the same leg.",
            bshape,
            fshape,
            h=h_full,
            inliers=n_inl,
            ratio=ratio,
            checks=checks,
        )
    if not (
        np.isfinite(scale)
        and 1.0 / MAX_SCALE_CHANGE <= scale <= MAX_SCALE_CHANGE
        and aniso <= MAX_ANISOTROPY
        and persp <= MAX_PERSPECTIVE
    ):
        return _refused(
            "The only alignment found is implausible (too strong a change of size, shear or "
            "viewing angle): retake the follow-up from the baseline's distance and angle.",
            bshape,
            fshape,
            h=h_full,
            inliers=n_inl,
            ratio=ratio,
            checks=checks,
        )

    # ---- ECC refinement on the refine grid
    report(0.45, "refining alignment")
    odn_f, ch_fref = f_refine
    h_r = _convert_h(h_full, m_fref, m_bref)  # follow-up refine px -> baseline refine px
    vein_bref = grid(vein_bm, b_ref)
    # Away from the leg outline (and any frame border) by about 3 high-pass sigmas.
    tmask_b = _erode(b_use_ref & ~vein_bref, 11)
    imask = _erode(f_skin_ref, 11)
    h_r = _ecc_refine(ch_bref, ch_fref, tmask_b, imask, h_r)
    h_full = _convert_h(h_r, np.linalg.inv(m_fref), np.linalg.inv(m_bref))

    # ---- checks on the refine grid
    report(0.65, "checking alignment")
    bh, bw = b_ref.shape[:2]
    warped_ch = cv2.warpPerspective(ch_fref, h_r, (bw, bh), flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(
        np.ones(f_ref.shape[:2], np.uint8), h_r, (bw, bh), flags=cv2.INTER_NEAREST
    )
    cover_b = _erode(cover > 0, 5)
    f_skin_w = cv2.warpPerspective(f_skin_ref.astype(np.uint8), h_r, (bw, bh)) > 0
    overlap = float((b_skin_ref & cover_b).sum() / max(b_skin_ref.sum(), 1))
    qmask = tmask_b & cover_b & f_skin_w
    if roi_ref is not None and (qmask & roi_ref).sum() > 500:
        qmask = qmask & roi_ref
    ncc = _ncc(ch_bref, warped_ch, qmask)

    flow_ref: np.ndarray | None = None
    gain = 0.0
    if nonrigid and np.isfinite(ncc) and ncc >= MIN_NCC:
        report(0.75, "non-rigid refinement")
        flow_ref, gain, ncc2 = _nonrigid(ch_bref, warped_ch, qmask)
        if flow_ref is not None:
            ncc = ncc2

    # Relative blur: how much the sharper photo must be blurred to look like the other.
    blur_f, blur_b = _relative_blur(odn_b, odn_f, h_r, flow_ref, qmask)
    blur_f /= s_bref
    blur_b /= s_bref
    # The estimate reads about 0.4 px high on sharp pairs (JPEG smoothing, interpolation).
    blur_limit = MAX_RELATIVE_BLUR * max(bshape) + 0.5
    checks = RegistrationChecks(
        matches=n_matches,
        ncc=ncc,
        overlap=overlap,
        blur_followup_px=blur_f,
        blur_baseline_px=blur_b,
        scale=scale,
        anisotropy=aniso,
        perspective=persp,
        nonrigid_gain=gain,
    )
    reason: str | None = None
    if not np.isfinite(ncc) or ncc < MIN_NCC:
        # A badly blurred photo also correlates poorly: name the blur when it is clear.
        reason = _blur_hint(b_ref, f_ref, b_skin_ref, f_skin_ref) or (
            "After alignment the skin patterns do not agree (correlation "
            f"{0.0 if not np.isfinite(ncc) else ncc:.2f}): the photos do not seem to show the "
            "same area of the same leg. Retake the follow-up framed like the baseline."
        )
    elif blur_f > blur_limit:
        reason = (
            f"The follow-up photo is blurred (about {blur_f:.1f} px more than the baseline): "
            "retake it with the camera steady and focused on the skin."
        )
    elif blur_b > blur_limit:
        reason = (
            f"The baseline photo is blurred (about {blur_b:.1f} px more than the follow-up): "
            "its fine veins cannot be compared; retake the baseline if possible."
        )
    elif overlap < MIN_OVERLAP:
        reason = (
            f"The photos overlap on only {100 * overlap:.0f} % of the leg: retake the follow-up "
            "framed like the baseline."
        )
    if reason is not None:
        return _refused(reason, bshape, fshape, h=h_full, inliers=n_inl, ratio=ratio, checks=checks)

    # ---- full-resolution outputs
    report(0.9, "warping follow-up")
    flow_full: np.ndarray | None = None
    if flow_ref is not None:
        up = cv2.resize(flow_ref, (bshape[1], bshape[0]), interpolation=cv2.INTER_LINEAR)
        flow_full = np.asarray(up / s_bref, dtype=np.float32)
    warped, valid = _warp_with_valid(fol, h_full, flow_full, bshape)
    # Residual: inlier features under the final mapping, in baseline px.
    pf_full = _apply_m(np.linalg.inv(m_fm), pf[inl_b].astype(np.float64))
    pb_full = _apply_m(np.linalg.inv(m_bm), pb[inl_b].astype(np.float64))
    mapped = _apply_h(h_full, pf_full)
    if flow_full is not None:
        fx = _bilinear(flow_full[..., 0], pb_full)
        fy = _bilinear(flow_full[..., 1], pb_full)
        mapped = mapped - np.stack([fx, fy], axis=1)
    residual = float(np.median(np.linalg.norm(mapped - pb_full, axis=1)))

    q_ncc = float(np.clip((ncc - MIN_NCC) / (0.8 - MIN_NCC), 0.0, 1.0))
    q_inl = float(np.clip(n_inl / 150.0, 0.0, 1.0))
    q_ov = float(np.clip((overlap - MIN_OVERLAP) / (0.8 - MIN_OVERLAP), 0.0, 1.0))
    q_bl = float(np.clip(1.0 - max(blur_f, blur_b) / blur_limit, 0.0, 1.0))
    quality = float(np.clip(0.5 * q_ncc + 0.2 * q_inl + 0.15 * q_ov + 0.15 * q_bl, 0.0, 1.0))
    report(1.0, "done")
    return Registration(
        ok=True,
        reason=None,
        homography=h_full,
        flow=flow_full,
        warped=warped,
        valid=valid,
        inliers=n_inl,
        inlier_ratio=float(ratio),
        residual_px=residual,
        quality=quality,
        checks=checks,
        followup_shape=fshape,
    )


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)


def _erode(mask: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(cv2.erode(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)


def _highpass(ch: np.ndarray, sigma_px: float) -> np.ndarray:
    c = cv2.GaussianBlur(ch, (0, 0), 1.0)
    return np.asarray(c - cv2.GaussianBlur(c, (0, 0), sigma_px), dtype=np.float32)


def _ecc_refine(
    ch_b: np.ndarray, ch_f: np.ndarray, tmask: np.ndarray, imask: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """ECC homography refinement of ``h`` (follow-up -> baseline, refine grid).

    Runs on a grid reduced to ``ECC_SIDE`` and on the template's bounding box of
    usable skin only; keeps ``h`` if ECC fails or wanders from the feature estimate.
    """
    ys, xs = np.nonzero(tmask[::4, ::4])
    if ys.size < 50:
        return h
    bh, bw = ch_b.shape
    x0, x1 = max(0, xs.min() * 4 - 4), min(bw, xs.max() * 4 + 8)
    y0, y1 = max(0, ys.min() * 4 - 4), min(bh, ys.max() * 4 + 8)
    e = min(1.0, ECC_SIDE / max(bh, bw))

    def shrink(x: np.ndarray, interp: int) -> np.ndarray:
        if e >= 1.0:
            return x
        # An explicit size: with fx/fy OpenCV maps by fx, not by the rounded size ratio.
        size = (max(1, round(x.shape[1] * e)), max(1, round(x.shape[0] * e)))
        return np.asarray(cv2.resize(x, size, interpolation=interp))

    tb = shrink(ch_b[y0:y1, x0:x1], cv2.INTER_AREA)
    tm = shrink(tmask[y0:y1, x0:x1].astype(np.uint8), cv2.INTER_NEAREST)
    fi = shrink(ch_f, cv2.INTER_AREA)
    fm = shrink(imask.astype(np.uint8), cv2.INTER_NEAREST)
    # Template px -> baseline refine px -> follow-up refine px -> follow-up ECC px.
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    m_t = _grid_matrix((y1 - y0, x1 - x0), tb.shape) @ shift  # baseline refine -> template
    m_i = _grid_matrix(ch_f.shape, fi.shape)  # follow-up refine -> ECC input
    warp = m_i @ np.linalg.inv(h) @ np.linalg.inv(m_t)
    warp = (warp / warp[2, 2]).astype(np.float32)
    try:
        _, warp_out = cv2.findTransformECCWithMask(
            tb,
            fi,
            tm,
            fm,
            warp,
            cv2.MOTION_HOMOGRAPHY,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5),
            3,
        )
    except cv2.error:
        # ECC can fail to converge on low-texture pairs; the feature homography stands.
        return h
    inv_new = np.linalg.inv(m_i) @ np.asarray(warp_out, np.float64) @ m_t
    h_new = np.linalg.inv(inv_new)
    h_new /= h_new[2, 2]
    # Accept the refinement only if it stays close to the feature estimate.
    corners = np.array([[0, 0], [bw, 0], [0, bh], [bw, bh]], dtype=np.float64)
    moved = np.abs(_apply_h(h_new, corners) - _apply_h(h, corners)).max()
    if np.isfinite(moved) and moved < 0.03 * max(bh, bw):
        return h_new
    return h


def _clip_robust(ch: np.ndarray, mask: np.ndarray, k: float = 4.0) -> np.ndarray:
    """Clip a high-passed channel at k robust sigmas of its skin pixels (outline, moles)."""
    vals = ch[::4, ::4][mask[::4, ::4]]
    if vals.size < 100:
        return ch
    mad = float(np.median(np.abs(vals - np.median(vals)))) * 1.4826 + 1e-6
    return np.asarray(np.clip(ch, -k * mad, k * mad), dtype=np.float32)


def _warp_with_valid(
    fol: np.ndarray, h: np.ndarray, flow: np.ndarray | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the follow-up RGB into the baseline frame, with the mask of covered pixels."""
    if flow is None:
        warped = _warp_to_baseline(fol, h, None, shape, cv2.INTER_CUBIC)
        ones = np.full(fol.shape[:2], 255, np.uint8)
        cover = _warp_to_baseline(ones, h, None, shape, cv2.INTER_LINEAR)
    else:
        mx, my = _source_maps(h, flow, shape)
        warped = cv2.remap(fol, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        ones = np.full(fol.shape[:2], 255, np.uint8)
        cover = cv2.remap(ones, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # Bicubic keeps fine veins sharper than bilinear. Pixels whose 4 x 4 support reaches
    # outside the follow-up are not valid (bilinear coverage, less one pixel).
    valid_u8 = cv2.erode(np.asarray(cover == 255, np.uint8), np.ones((3, 3), np.uint8))
    warped = cv2.bitwise_and(warped, warped, mask=valid_u8)
    return np.asarray(warped, np.uint8), valid_u8.astype(bool)


def _relative_blur(
    odn_b: np.ndarray,
    odn_f: np.ndarray,
    h_r: np.ndarray,
    flow: np.ndarray | None,
    qmask: np.ndarray,
) -> tuple[float, float]:
    """Extra Gaussian blur (refine px) of the follow-up and of the baseline, each vs the other.

    The sharper photo, blurred by the right sigma, correlates best with the blurrier
    one; noise and JPEG artefacts are uncorrelated between visits and do not bias it.
    """
    bh, bw = odn_b.shape
    # A window of at most 400 x 400 refine px around the centre of the usable skin.
    ys, xs = np.nonzero(qmask[::4, ::4])
    if ys.size < 20:
        return 0.0, 0.0
    cy, cx = int(np.median(ys)) * 4, int(np.median(xs)) * 4
    half = 200
    y0, x0 = max(0, min(cy - half, bh - 2 * half)), max(0, min(cx - half, bw - 2 * half))
    y1, x1 = min(bh, y0 + 2 * half), min(bw, x0 + 2 * half)
    hh_, ww_ = y1 - y0, x1 - x0
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    if flow is None:
        fw = cv2.warpPerspective(odn_f, shift @ h_r, (ww_, hh_), flags=cv2.INTER_LINEAR)
    else:
        mx, my = _source_maps(h_r, flow, (bh, bw))
        fw = cv2.remap(odn_f, mx[y0:y1, x0:x1], my[y0:y1, x0:x1], cv2.INTER_LINEAR)
    # The bilinear warp itself blurs slightly (about 0.3 px); blur the baseline alike.
    b = cv2.GaussianBlur(odn_b[y0:y1, x0:x1], (0, 0), 0.3)
    m = qmask[y0:y1, x0:x1]
    low_b = cv2.GaussianBlur(b, (0, 0), 6.0)
    low_f = cv2.GaussianBlur(fw, (0, 0), 6.0)

    def band(x: np.ndarray, low: np.ndarray, s: float) -> np.ndarray:
        y = cv2.GaussianBlur(x, (0, 0), s) if s > 0 else x
        return np.asarray(y - low, np.float32)

    sig = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    fw_hp = band(fw, low_f, 0.0)
    b_hp = band(b, low_b, 0.0)
    c_f = np.array([_ncc(band(b, low_b, s), fw_hp, m) for s in sig])
    c_b = np.array([_ncc(b_hp, band(fw, low_f, s), m) for s in sig])

    def peak(c: np.ndarray) -> float:
        if not np.all(np.isfinite(c)):
            return 0.0
        i = int(np.argmax(c))
        if 0 < i < len(sig) - 1:
            # Parabola through the three samples around the peak (uneven spacing).
            x0, x1, x2 = sig[i - 1], sig[i], sig[i + 1]
            y0, y1, y2 = c[i - 1], c[i], c[i + 1]
            den = (x0 - x1) * (x0 - x2) * (x1 - x2)
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
            bq = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
            if a < 0:
                return float(np.clip(-bq / (2 * a), x0, x2))
        return float(sig[i])

    return peak(c_f), peak(c_b)


def _nonrigid(
    ch_b: np.ndarray,
    ch_fw: np.ndarray,
    qmask: np.ndarray,
) -> tuple[np.ndarray | None, float, float]:
    """Smooth residual flow between baseline and warped follow-up channels (refine grid)."""
    h, w = ch_b.shape
    # DIS on a half-resolution pair: the residual motion is smooth and small.
    s = 0.5
    small = (round(w * s), round(h * s))
    sd = float(np.std(ch_b[qmask])) + 1e-6

    def u8(x: np.ndarray) -> np.ndarray:
        y = cv2.resize(x, small, interpolation=cv2.INTER_AREA)
        return np.asarray(np.clip(y / sd * 40.0 + 128.0, 0, 255), np.uint8)

    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    raw = np.asarray(dis.calc(u8(ch_b), u8(ch_fw), None))  # type: ignore[call-overload]
    # Patches that straddle the leg outline see the backdrop: keep away from it.
    inner = _erode(cv2.resize(qmask.astype(np.uint8), small) > 0, 9)
    weight = inner.astype(np.float32)
    sigma = max(4.0, 0.03 * max(small))
    smooth, wsum = _masked_smooth(raw, weight, sigma=sigma)
    # Robust re-weighting: vectors far from the smooth field are DIS failures (flat
    # skin, aperture problem along hairs), not motion.
    for _ in range(2):
        dev = np.sqrt(((raw - smooth) ** 2).sum(axis=-1))
        sel = inner & np.isfinite(dev)
        if sel.sum() < 100:
            return None, 0.0, _ncc(ch_b, ch_fw, qmask)
        cut = max(0.75, 3.0 * float(np.median(dev[sel])))
        weight = (inner & (dev < cut)).astype(np.float32)
        smooth, wsum = _masked_smooth(raw, weight, sigma=sigma)
    # Where few vectors are near (leg outline, veins, frame border) the field comes from a
    # wider neighbourhood, and fades to zero only far from any usable skin.
    wide, wsum_wide = _masked_smooth(raw, weight, sigma=3.0 * sigma)
    a = np.clip(wsum / 0.2, 0.0, 1.0)[..., None]
    b = np.clip(wsum_wide / 0.1, 0.0, 1.0)[..., None]
    smooth = a * smooth + (1.0 - a) * b * wide
    # Bound: a leg that turns or bends within one treatment area moves little.
    mag = np.sqrt(smooth[..., 0] ** 2 + smooth[..., 1] ** 2)
    limit = MAX_FLOW * max(small)
    smooth *= np.minimum(1.0, limit / np.maximum(mag, 1e-6))[..., None]
    flow = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR) / s
    mx = (np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]).astype(np.float32)
    my = (np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]).astype(np.float32)
    refined = cv2.remap(ch_fw, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    before = _ncc(ch_b, ch_fw, qmask)
    after = _ncc(ch_b, refined, qmask)
    if not (np.isfinite(after) and np.isfinite(before)) or after <= before + 0.005:
        return None, 0.0, before
    err_b = float(np.mean(np.abs(ch_b[qmask] - ch_fw[qmask])))
    err_a = float(np.mean(np.abs(ch_b[qmask] - refined[qmask])))
    gain = 1.0 - err_a / max(err_b, 1e-9)
    return np.asarray(flow, np.float32), gain, after
