"""Registration itself: each photo's features, then the match, the refinement and the checks.

:func:`register` is :func:`photo_features` on each photo and :func:`align_features` on
the two; a caller that schedules work (``measure.compare``) finds the two photos'
features side by side and calls :func:`align_features` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..checks import check_mask
from ..io import Photo, as_rgb
from ..morphology import dilate_disc, erode_square
from ..schedule import TaskGraph
from .checks import (
    EVIDENCE_MARGIN,
    MAX_RELATIVE_BLUR,
    MIN_EVIDENCED_SHARE,
    MIN_INLIER_RATIO,
    MIN_INLIERS,
    MIN_NCC,
    MIN_OVERLAP,
    blur_hint,
    homography_shape,
    ncc,
    plausible,
    quality,
    relative_blur,
)
from .dense import silhouette_homography
from .features import (
    FeatureMatch,
    PhotoFeatures,
    convert_h,
    match_features,
    photo_features,
)
from .motion import moved_parts
from .refine import ecc_refine, nonrigid_flow
from .result import (
    Registration,
    RegistrationChecks,
    apply_h,
    bilinear,
    refused,
    warp_with_valid,
)

__all__ = ["align_features", "register"]

ProgressCallback = Callable[[float, str], None]


def register(
    baseline: Photo | np.ndarray,
    followup: Photo | np.ndarray,
    *,
    roi: np.ndarray | None = None,
    leg_mask: np.ndarray | None = None,
    nonrigid: bool = True,
    progress: ProgressCallback | None = None,
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
    shape = (int(base.shape[0]), int(base.shape[1]))
    roi_m = None if roi is None else check_mask(roi, shape=shape, name="roi")
    leg_m = None if leg_mask is None else check_mask(leg_mask, shape=shape, name="leg_mask")
    tell = _teller(progress)
    tell(0.0, "preparing photos")
    tell(0.1, "finding skin features")
    # The two photos' features need nothing of each other: found side by side.
    g = TaskGraph()
    b = g.add("baseline features", _features, base, leg_m, roi_m)
    f = g.add("follow-up features", photo_features, fol)
    b_feat, f_feat = g.run(g.add("both", _both, b, f), workers=2)
    return align_features(b_feat, f_feat, fol, nonrigid=nonrigid, progress=progress)


def _features(
    photo: np.ndarray, leg_mask: np.ndarray | None, roi: np.ndarray | None
) -> PhotoFeatures:
    return photo_features(photo, leg_mask=leg_mask, roi=roi)


def _both(b: PhotoFeatures, f: PhotoFeatures) -> tuple[PhotoFeatures, PhotoFeatures]:
    return b, f


def _teller(progress: ProgressCallback | None) -> ProgressCallback:
    def tell(frac: float, msg: str) -> None:
        if progress is not None:
            progress(float(frac), msg)

    return tell


@dataclass(frozen=True)
class _Fit:
    """What the checks on the refine grid found for a homography."""

    ncc: float
    ncc_all_skin: float
    overlap: float
    checked_on: np.ndarray | None  # the skin checked, when only the features' part
    moved_share: float  # share of the baseline skin in a part that moved (motion.py)
    flow_ref: np.ndarray | None  # residual flow on the refine grid, or None
    gain: float
    blur_followup_px: float  # photo px
    blur_baseline_px: float


def align_features(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    followup_photo: np.ndarray,
    *,
    nonrigid: bool = True,
    progress: ProgressCallback | None = None,
) -> Registration:
    """:func:`register` once both photos' features are found.

    Parameters
    ----------
    baseline, followup : PhotoFeatures
        :func:`photo_features` of the two photos (the baseline's with its ``roi`` and
        ``leg_mask``).
    followup_photo : ndarray, shape (h, w, 3), uint8
        The follow-up photo, warped into the baseline frame at the end.
    nonrigid, progress
        As for :func:`register`.

    Returns
    -------
    Registration
    """
    tell = _teller(progress)
    bshape, fshape = baseline.shape, followup.shape
    if not baseline.has_skin or not followup.has_skin:
        return refused(_features_refusal(baseline, followup) or "", bshape, fshape)
    tell(0.3, "matching")
    m, h_full, refusal, checks = _feature_homography(baseline, followup)
    if refusal is not None and not refusal[1]:
        return refused(refusal[0], bshape, fshape, h=h_full, inliers=m.n_inliers, checks=checks)
    n_inl = m.n_inliers
    ratio = n_inl / max(m.n_matches, 1)
    dense = False
    if refusal is not None:
        # Few features (smooth skin): what every leg photo has, its silhouette and
        # shading, proposes the alignment instead; the checks below still decide.
        tell(0.35, "aligning the leg's outline and shading")
        h_dense = silhouette_homography(baseline, followup)
        if h_dense is None or not plausible(*homography_shape(h_dense, fshape)):
            return refused(
                refusal[0], bshape, fshape, h=h_full, inliers=n_inl, ratio=ratio, checks=checks
            )
        h_full, dense = h_dense, True
        scale, aniso, persp = homography_shape(h_full, fshape)
        checks = RegistrationChecks(
            matches=m.n_matches, scale=scale, anisotropy=aniso, perspective=persp
        )
    assert h_full is not None
    scale, aniso, persp = checks.scale, checks.anisotropy, checks.perspective

    tell(0.45, "refining alignment")
    tmask = _template_mask(baseline)
    h_r = _refine(baseline, followup, h_full, tmask)
    h_full = convert_h(h_r, np.linalg.inv(followup.to_ref), np.linalg.inv(baseline.to_ref))
    tell(0.65, "checking alignment")
    fit = _check_fit(
        baseline, followup, h_r, tmask, None if dense else m, nonrigid=nonrigid, tell=tell
    )
    blur_limit = MAX_RELATIVE_BLUR * max(bshape) + 0.5
    checks = RegistrationChecks(
        matches=m.n_matches,
        ncc=fit.ncc,
        ncc_all_skin=fit.ncc_all_skin,
        moved_share=fit.moved_share,
        overlap=fit.overlap,
        blur_followup_px=fit.blur_followup_px,
        blur_baseline_px=fit.blur_baseline_px,
        scale=scale,
        anisotropy=aniso,
        perspective=persp,
        nonrigid_gain=fit.gain,
    )
    fit_refusal = _fit_refusal(baseline, followup, fit, checks, blur_limit)
    if fit_refusal is not None:
        return refused(
            fit_refusal, bshape, fshape, h=h_full, inliers=n_inl, ratio=ratio, checks=checks
        )

    tell(0.9, "warping follow-up")
    return _warped_registration(
        baseline,
        followup,
        followup_photo,
        m,
        h_full,
        fit,
        checks,
        dense=dense,
        blur_limit=blur_limit,
        tell=tell,
    )


def _warped_registration(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    followup_photo: np.ndarray,
    m: FeatureMatch,
    h_full: np.ndarray,
    fit: _Fit,
    checks: RegistrationChecks,
    *,
    dense: bool,
    blur_limit: float,
    tell: ProgressCallback,
) -> Registration:
    """The accepted alignment: the follow-up warped into the baseline frame, its quality."""
    bshape, fshape = baseline.shape, followup.shape
    n_inl = m.n_inliers
    ratio = n_inl / max(m.n_matches, 1)
    flow_full: np.ndarray | None = None
    if fit.flow_ref is not None:
        up = cv2.resize(fit.flow_ref, (bshape[1], bshape[0]), interpolation=cv2.INTER_LINEAR)
        flow_full = np.asarray(up / baseline.ref_scale, dtype=np.float32)
    warped, valid = warp_with_valid(as_rgb(followup_photo), h_full, flow_full, bshape)
    agrees = None
    if fit.checked_on is not None:
        size = (bshape[1], bshape[0])
        agrees = (
            cv2.resize(fit.checked_on.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        )
    q = quality(
        ncc_value=fit.ncc,
        inliers=n_inl,
        overlap=fit.overlap,
        blur_px=max(checks.followup_excess_blur_px, checks.baseline_excess_blur_px),
        blur_limit_px=blur_limit,
    )
    tell(1.0, "done")
    return Registration(
        ok=True,
        reason=None,
        homography=h_full,
        flow=flow_full,
        warped=warped,
        valid=valid,
        inliers=n_inl,
        inlier_ratio=float(ratio),
        residual_px=(
            # ECC's own precision on the refine grid: one of its pixels.
            1.0 / baseline.ref_scale
            if dense
            else _residual(baseline, followup, m, h_full, flow_full)
        ),
        quality=q,
        checks=checks,
        followup_shape=fshape,
        agrees=agrees,
    )


def _feature_homography(
    baseline: PhotoFeatures, followup: PhotoFeatures
) -> tuple[FeatureMatch, np.ndarray | None, tuple[str, bool] | None, RegistrationChecks]:
    """The features' homography, or why there is none: ``(reason, few)`` with ``few``
    True when the features were merely too few (smooth skin), not implausible or
    blurred."""
    none = FeatureMatch(
        0, np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), None, np.zeros(0, bool)
    )
    no_match = _features_refusal(baseline, followup)
    if no_match is not None:
        return none, None, (no_match, _blurred(baseline, followup) is None), RegistrationChecks()
    m = match_features(baseline, followup, min_matches=MIN_INLIERS)
    checks = RegistrationChecks(matches=m.n_matches)
    if m.n_matches < MIN_INLIERS:
        blur = _blurred(baseline, followup)
        reason = blur or (
            f"Only {m.n_matches} features match between the photos: they do not seem to show "
            "the same area of the same leg. Retake the follow-up framed like the baseline."
        )
        return m, None, (reason, blur is None), checks
    if m.homography is None:
        reason = (
            "No consistent alignment was found between the photos: they do not seem to show "
            "the same area. Retake the follow-up framed like the baseline."
        )
        return m, None, (reason, True), checks
    h_full = m.homography
    scale, aniso, persp = homography_shape(h_full, followup.shape)
    checks = RegistrationChecks(
        matches=m.n_matches, scale=scale, anisotropy=aniso, perspective=persp
    )
    match_refusal = _match_refusal(baseline, followup, m, scale, aniso, persp)
    if match_refusal is not None:
        few = plausible(scale, aniso, persp) and _blurred(baseline, followup) is None
        return m, h_full, (match_refusal, few), checks
    return m, h_full, None, checks


def _blurred(baseline: PhotoFeatures, followup: PhotoFeatures) -> str | None:
    """A reason naming a blurred photo, when one is clearly blurrier than the other."""
    return blur_hint(baseline.ref, followup.ref, baseline.skin, followup.skin)


def _features_refusal(baseline: PhotoFeatures, followup: PhotoFeatures) -> str | None:
    """Why the two photos' features cannot be matched at all, or None."""
    if not baseline.has_skin:
        return "No skin was found in the baseline photo: photograph the treated area of the leg."
    if not followup.has_skin:
        return "No skin was found in the follow-up photo: photograph the treated area of the leg."
    db, df = baseline.descriptors, followup.descriptors
    if db is None or df is None or len(baseline.keypoints) < 8 or len(followup.keypoints) < 8:
        return _blurred(baseline, followup) or (
            "Too few skin features were found to align the photos: check focus and "
            "lighting, and photograph the same area as the baseline."
        )
    return None


def _match_refusal(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    m: FeatureMatch,
    scale: float,
    aniso: float,
    persp: float,
) -> str | None:
    """Why the features' homography cannot be the pair's, or None."""
    ratio = m.n_inliers / max(m.n_matches, 1)
    if m.n_inliers < MIN_INLIERS or ratio < MIN_INLIER_RATIO:
        return _blurred(baseline, followup) or (
            f"Only {m.n_inliers} of {m.n_matches} skin features agree on one alignment: the "
            "photos do not seem to show the same area of the same leg."
        )
    if not plausible(scale, aniso, persp):
        return (
            "The only alignment found is implausible (too strong a change of size, shear or "
            "viewing angle): retake the follow-up from the baseline's distance and angle."
        )
    return None


def _template_mask(baseline: PhotoFeatures) -> np.ndarray:
    """The baseline's skin the alignment is refined and checked on (refine grid): the
    features' skin without vein-like pixels, away from the leg outline (and any frame
    border) by about 3 high-pass sigmas."""
    veins = baseline.veins
    if veins.shape != baseline.ref.shape[:2]:
        size = (baseline.ref.shape[1], baseline.ref.shape[0])
        veins = np.asarray(cv2.resize(veins.astype(np.uint8), size) > 0)
    return erode_square(baseline.use & ~veins, 11)


def _refine(
    baseline: PhotoFeatures, followup: PhotoFeatures, h_full: np.ndarray, tmask: np.ndarray
) -> np.ndarray:
    """ECC refinement of the features' homography on the ``tmask`` skin, on the refine
    grid (follow-up refine px -> baseline refine px)."""
    h_r = convert_h(h_full, followup.to_ref, baseline.to_ref)
    imask = erode_square(followup.skin, 11)
    return ecc_refine(baseline.channel, followup.channel, tmask, imask, h_r)


def _evidence_mask(baseline: PhotoFeatures, m: FeatureMatch) -> np.ndarray:
    """The baseline's refine grid the matched features span: the convex hull of the
    inliers, widened by :data:`~.checks.EVIDENCE_MARGIN` of the grid's long side."""
    bh, bw = baseline.ref.shape[:2]
    match_to_ref = baseline.to_ref @ np.linalg.inv(baseline.to_match)
    pts = apply_h(match_to_ref, m.baseline_xy[m.inliers].astype(np.float64))
    hull = np.zeros((bh, bw), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts.astype(np.float32)).astype(np.int32), 1)
    return dilate_disc(hull > 0, EVIDENCE_MARGIN * max(bh, bw))


def _check_fit(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    h_r: np.ndarray,
    tmask: np.ndarray,
    m: FeatureMatch | None,
    *,
    nonrigid: bool,
    tell: ProgressCallback,
) -> _Fit:
    """Overlap, correlation, the non-rigid flow (when it helps; with matched features
    ``m`` even under :data:`~.checks.MIN_NCC`, the check then holding after it) and the
    relative blur of the pair under ``h_r`` (refine grid), on the ``tmask`` skin the
    follow-up covers; when that correlates under :data:`~.checks.MIN_NCC`, on its part
    the matched features ``m`` span (:func:`_evidence_mask`; ``m`` None: aligned without
    features) if that part holds :data:`~.checks.MIN_EVIDENCED_SHARE` of it; in either
    case without the parts that moved once the leg is aligned
    (:func:`~.motion.moved_parts`)."""
    bh, bw = baseline.ref.shape[:2]
    warped_ch = cv2.warpPerspective(followup.channel, h_r, (bw, bh), flags=cv2.INTER_LINEAR)
    cover = cv2.warpPerspective(
        np.ones(followup.ref.shape[:2], np.uint8), h_r, (bw, bh), flags=cv2.INTER_NEAREST
    )
    cover_b = erode_square(cover > 0, 5)
    f_skin_w = cv2.warpPerspective(followup.skin.astype(np.uint8), h_r, (bw, bh)) > 0
    b_skin = baseline.skin
    overlap = float((b_skin & cover_b).sum() / max(b_skin.sum(), 1))
    qmask = tmask & cover_b & f_skin_w
    if baseline.roi is not None and (qmask & baseline.roi).sum() > 500:
        qmask = qmask & baseline.roi
    corr = corr_all = ncc(baseline.channel, warped_ch, qmask)
    checked_on: np.ndarray | None = None
    if not corr_all >= MIN_NCC and m is not None:
        # All the skin disagrees: something else in view may have moved (a hand placed
        # again). The alignment is checked on the leg its features span instead.
        evidence = _evidence_mask(baseline, m)
        if (qmask & evidence).sum() >= MIN_EVIDENCED_SHARE * qmask.sum():
            qmask, checked_on = qmask & evidence, evidence
            corr = ncc(baseline.channel, warped_ch, qmask)
    # What moved once the leg is aligned (a hand placed again) is neither checked, nor
    # followed by the non-rigid flow, nor compared.
    warped_od = cv2.warpPerspective(followup.odn, h_r, (bw, bh), flags=cv2.INTER_LINEAR)
    moved = moved_parts(baseline.odn, warped_od, b_skin & cover_b, f_skin_w & cover_b)
    if moved.any():
        checked_on = ~moved if checked_on is None else checked_on & ~moved
        qmask = qmask & ~moved
        corr = ncc(baseline.channel, warped_ch, qmask)
    flow_ref: np.ndarray | None = None
    gain = 0.0
    # A leg that bent between visits correlates poorly under the homography alone, more
    # so at a fine scale: when features matched, the pair is judged after the flow.
    if nonrigid and np.isfinite(corr) and (corr >= MIN_NCC or m is not None):
        tell(0.75, "non-rigid refinement")
        flow_ref, gain, corr2 = nonrigid_flow(baseline.channel, warped_ch, qmask)
        if flow_ref is not None:
            corr = corr2
    # Relative blur: how much the sharper photo must be blurred to look like the other.
    blur_f, blur_b = relative_blur(baseline.odn, followup.odn, h_r, flow_ref, qmask)
    return _Fit(
        ncc=corr,
        ncc_all_skin=corr_all,
        overlap=overlap,
        checked_on=checked_on,
        moved_share=float((moved & b_skin).sum() / max(b_skin.sum(), 1)),
        flow_ref=flow_ref,
        gain=gain,
        blur_followup_px=blur_f / baseline.ref_scale,
        blur_baseline_px=blur_b / baseline.ref_scale,
    )


def _fit_refusal(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    fit: _Fit,
    checks: RegistrationChecks,
    blur_limit: float,
) -> str | None:
    """Why the refined alignment cannot be scored, or None. A photo is refused as blurred
    on its excess blur over the other (:func:`~.result.excess_blur`), which reads about
    0.4 px high on sharp pairs (JPEG smoothing, interpolation): ``blur_limit`` has 0.5 px
    more than ``MAX_RELATIVE_BLUR`` allows."""
    corr = fit.ncc
    if not np.isfinite(corr) or corr < MIN_NCC:
        # A badly blurred photo also correlates poorly: name the blur when it is clear.
        return _blurred(baseline, followup) or (
            "After alignment the skin patterns do not agree (correlation "
            f"{0.0 if not np.isfinite(corr) else corr:.2f}): the photos do not seem to show "
            "the same area of the same leg. Retake the follow-up framed like the baseline."
        )
    blur_f, blur_b = checks.followup_excess_blur_px, checks.baseline_excess_blur_px
    if blur_f > blur_limit:
        return (
            f"The follow-up photo is blurred (about {blur_f:.1f} px more than the "
            "baseline): retake it with the camera steady and focused on the skin."
        )
    if blur_b > blur_limit:
        return (
            f"The baseline photo is blurred (about {blur_b:.1f} px more than the "
            "follow-up): its fine veins cannot be compared; retake the baseline if possible."
        )
    if fit.overlap < MIN_OVERLAP:
        return (
            f"The photos overlap on only {100 * fit.overlap:.0f} % of the leg: retake the "
            "follow-up framed like the baseline."
        )
    return None


def _residual(
    baseline: PhotoFeatures,
    followup: PhotoFeatures,
    m: FeatureMatch,
    h_full: np.ndarray,
    flow_full: np.ndarray | None,
) -> float:
    """Median distance, baseline photo px, of the inlier features under the final mapping."""
    pf = apply_h(np.linalg.inv(followup.to_match), m.followup_xy[m.inliers].astype(np.float64))
    pb = apply_h(np.linalg.inv(baseline.to_match), m.baseline_xy[m.inliers].astype(np.float64))
    mapped = apply_h(h_full, pf)
    if flow_full is not None:
        fx = bilinear(flow_full[..., 0], pb)
        fy = bilinear(flow_full[..., 1], pb)
        mapped = mapped - np.stack([fx, fy], axis=1)
    return float(np.median(np.linalg.norm(mapped - pb, axis=1)))
