"""The result of registration, and moving follow-up pixels into the baseline frame.

A homography maps follow-up pixel (x, y) to baseline pixel (x, y), at full resolution, in
upright photos. ``flow`` is a residual displacement field in the baseline frame: baseline
pixel ``p`` sees the homography-warped follow-up at ``p + flow(p)``, i.e. the follow-up at
``H^-1(p + flow(p))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

__all__ = [
    "Registration",
    "RegistrationChecks",
    "apply_h",
    "bilinear",
    "excess_blur",
    "refused",
    "source_maps",
    "warp_to_baseline",
    "warp_with_valid",
]


@dataclass(frozen=True)
class RegistrationChecks:
    """The figures the ok/refuse decision was taken on (for display and debugging).

    Attributes
    ----------
    matches : int
        Ratio-test matches fed to the robust estimator.
    ncc : float
        Normalised correlation of the matching channel on skin after warping, [-1, 1]:
        on all the skin both photos show, or, when that correlates under
        :data:`~.checks.MIN_NCC`, on the part of it the matched features span (see
        :data:`~.checks.MIN_EVIDENCED_SHARE`).
    ncc_all_skin : float
        The same on all the skin both photos show. Below :data:`~.checks.MIN_NCC` while
        :attr:`ncc` is above it, part of what is in view moved between the photos (a
        hand placed again, clothing) while the leg under the features agrees.
    moved_share : float
        Share of the baseline's skin in a part of the view that moved between the photos
        once the leg is aligned (:func:`~.motion.moved_parts`: a hand placed again, a
        watermark), left out of :attr:`Registration.agrees`; 0 when nothing moved.
    overlap : float
        Fraction of the baseline leg covered by the warped follow-up, [0, 1].
    blur_followup_px, blur_baseline_px : float
        The Gaussian blur (sigma, baseline px) that, applied to the baseline, makes it
        correlate best with the follow-up, and the reverse: what the measurement blurs
        each photo by to compare them on equal footing. Blurring a photo also removes
        its own noise, so on smooth or noisy skin both read a pixel or more; how much
        blurrier one photo is than the other is :attr:`followup_excess_blur_px` and
        :attr:`baseline_excess_blur_px`.
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
    ncc_all_skin: float = float("nan")
    moved_share: float = 0.0
    overlap: float = 0.0
    blur_followup_px: float = float("nan")
    blur_baseline_px: float = float("nan")
    scale: float = float("nan")
    anisotropy: float = float("nan")
    perspective: float = float("nan")
    nonrigid_gain: float = 0.0

    @property
    def followup_excess_blur_px(self) -> float:
        """How much blurrier the follow-up is than the baseline (sigma, baseline px)."""
        return excess_blur(self.blur_followup_px, self.blur_baseline_px)

    @property
    def baseline_excess_blur_px(self) -> float:
        """How much blurrier the baseline is than the follow-up (sigma, baseline px)."""
        return excess_blur(self.blur_baseline_px, self.blur_followup_px)

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


def excess_blur(own: float, other: float) -> float:
    """How much blurrier one photo is than the other, from the two best-matching blurs
    (``own``: the blur the other photo needs to look like this one).

    Noise pulls both best-matching blurs up alike (blurring a photo removes its own
    noise), and Gaussian blurs add in quadrature, so the excess is
    ``sqrt(own² - other²)``: at most one photo of a pair is blurrier. A smooth-skin pair
    of equal true blur (0.45 and 0.41 px) read 3.0 and 2.0: an excess of 2.2 px, where
    the larger alone would have called the baseline blurred by 3.0 and refused the pair.
    NaN when either is unknown.
    """
    if not (math.isfinite(own) and math.isfinite(other)):
        return math.nan
    return math.sqrt(max(0.0, own * own - other * other))


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
    agrees : ndarray, shape (H, W), dtype bool, or None
        When only part of the skin in view agrees: the baseline pixels the alignment was
        checked on and holds. That is the skin the matched features span when all the
        skin correlates under :data:`~.checks.MIN_NCC` (``checks.ncc_all_skin``: a hand
        placed again covers much of the view), without any part that moved between the
        photos once the leg is aligned (``checks.moved_share``). None when all of
        ``valid`` agrees.
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
    agrees: np.ndarray | None = None

    @property
    def comparable(self) -> np.ndarray:
        """Baseline pixels the follow-up covers and shows as the baseline does: ``valid``
        within ``agrees``."""
        return self.valid if self.agrees is None else self.valid & self.agrees

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
        q = apply_h(self.homography, pts)
        if self.flow is None:
            return q
        p = q.copy()
        for _ in range(6):
            fx = bilinear(self.flow[..., 0], p)
            fy = bilinear(self.flow[..., 1], p)
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
        out = warp_to_baseline(src, self.homography, self.flow, shape, flag, fill)
        return out.astype(bool) if is_bool else out


def apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    ph = np.hstack([pts, np.ones((pts.shape[0], 1))]) @ h.T
    return ph[:, :2] / ph[:, 2:3]


def bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2-D array at (x, y) points, edge values outside."""
    from scipy.ndimage import map_coordinates  # lazy: a slow import

    out = map_coordinates(img, [pts[:, 1], pts[:, 0]], order=1, mode="nearest")
    return np.asarray(out, np.float64)


def warp_to_baseline(
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
    mx, my = source_maps(h, flow, shape)
    return np.asarray(
        cv2.remap(src, mx, my, flag, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    )


def source_maps(
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


def refused(
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


def warp_with_valid(
    fol: np.ndarray, h: np.ndarray, flow: np.ndarray | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the follow-up RGB into the baseline frame, with the mask of covered pixels."""
    if flow is None:
        warped = warp_to_baseline(fol, h, None, shape, cv2.INTER_CUBIC)
        ones = np.full(fol.shape[:2], 255, np.uint8)
        cover = warp_to_baseline(ones, h, None, shape, cv2.INTER_LINEAR)
    else:
        mx, my = source_maps(h, flow, shape)
        warped = cv2.remap(fol, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        ones = np.full(fol.shape[:2], 255, np.uint8)
        cover = cv2.remap(ones, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # Bicubic keeps fine veins sharper than bilinear. Pixels whose 4 x 4 support reaches
    # outside the follow-up are not valid (bilinear coverage, less one pixel).
    valid_u8 = cv2.erode(np.asarray(cover == 255, np.uint8), np.ones((3, 3), np.uint8))
    warped = cv2.bitwise_and(warped, warped, mask=valid_u8)
    return np.asarray(warped, np.uint8), valid_u8.astype(bool)
