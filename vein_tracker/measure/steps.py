"""The steps of a comparison, each a small typed function of its inputs.

:mod:`.pipeline` calls them in order (through a :class:`~vein_tracker.schedule.TaskGraph`);
each one says what it takes and gives, and holds no state and no thread. Most hand the work
to the module that owns it (registration, segmentation, colour, the measurement modules)
with the comparison's options.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ..card import CardReading, read_card
from ..checks import PX_PER_MM_RANGE, check_mask, check_px_per_mm
from ..colour import (
    ColourFit,
    ColourFitInput,
    ColourNormalisation,
    apply_colour_fit,
    blur_rgb,
    chroma_lowpass,
    equalise_to_followup,
    estimate_jpeg_quality,
    fit_colour,
    skin_interior,
)
from ..errors import RegistrationError
from ..io import Photo, PhotoSource, load_photo, photo_from_array
from ..morphology import dilate_disc, distance_to, erode_disc
from ..outcome import grade_for, target_met
from ..registration import PhotoFeatures, Registration, align_features, photo_features
from ..registration.result import warp_to_baseline
from ..scale import Scale as PhotoScale
from ..scale import scale_from_skin
from ..segmentation import Segmentation, VeinContrast, segment, vein_contrast
from ..segmentation import leg_mask as find_leg
from ..skin import SkinMap, find_skin
from .band import (
    Band,
    band_of,
    bootstrap_spread,
    core_layout,
    moved_new_spread,
    moved_tolerances,
    registration_shifts,
    shifted_spread,
)
from .config import AnalysisConfig
from .figures import measure, measure_mask
from .frame import AnalysisFrame, analysis_frame, resize_mask, resize_rgb
from .given_map import map_in_frame, segmentation_of_map
from .improvement import (
    Estimate,
    Ratio,
    contrast_along,
    improvement_by_class,
    measurable,
    min_vein_contrast,
)
from .new_veins import NEW_EDGE_MARGIN_MM, NewVeinSearch, find_new_veins, new_tolerance_px
from .results import Comparison, VeinMetrics
from .support import Layout, Scale, lay_out, scale_for
from .veins import VeinTable, vein_table
from .warnings import capture_warnings, change_warnings, lookalike_step
from .zero_point import ZeroField, zero_ring, zeroed, zeroed_at

#: Margin kept from the border of the region seen in both photos, mm.
REGION_MARGIN_MM = 0.5
#: A blur of at most this σ (px) is not matched: the registration's estimate reads about
#: 0.4 px high on sharp pairs.
MIN_MATCHED_BLUR_PX = 0.3

PhotoInput = Photo | np.ndarray | PhotoSource


# ----------------------------------------------------------------------------- photos


def load(source: PhotoInput, px_per_mm: float | None) -> Photo:
    """A photo from a :class:`~vein_tracker.io.Photo`, an array or a file (path, bytes)."""
    if isinstance(source, Photo):
        return source
    if isinstance(source, np.ndarray):
        return photo_from_array(source, px_per_mm=px_per_mm)
    return load_photo(source, px_per_mm=px_per_mm)


def card_of(photo: Photo) -> CardReading | None:
    """The printed calibration card in a photo (:func:`vein_tracker.card.read_card`)."""
    return read_card(photo)


def photo_scale(b_photo: Photo, px_per_mm: float | None, card: CardReading | None) -> float | None:
    """The baseline photo's scale: the one given, else the photo's own, else its card's,
    else unknown."""
    if px_per_mm is not None:
        return px_per_mm
    if b_photo.px_per_mm is not None:
        return b_photo.px_per_mm
    return None if card is None else card.px_per_mm


def scale_source(b_photo: Photo, px_per_mm: float | None, card: CardReading | None) -> str:
    """Where :func:`photo_scale` took the scale from: "given", "card" or "estimated"."""
    if px_per_mm is not None or b_photo.px_per_mm is not None:
        return "given"
    return "estimated" if card is None else "card"


def card_in_frame(
    card: CardReading | None, photo: Photo, shape: tuple[int, int]
) -> np.ndarray | None:
    """The card's area (with a margin) on a photo brought to ``shape`` (H, W), or None."""
    if card is None:
        return None
    return resize_mask(card.mask(photo.rgb.shape[:2]), shape)


def frame_of(b_photo: Photo, f_photo: Photo, ppm_photo: float | None) -> AnalysisFrame:
    """The analysis frame of the pair (:func:`~.frame.analysis_frame`)."""
    return analysis_frame(b_photo.rgb.shape[:2], f_photo.rgb.shape[:2], ppm_photo)


def in_frame(photo: Photo, shape: tuple[int, int]) -> np.ndarray:
    """A photo reduced to its analysis frame's ``shape`` (the photo itself at its size)."""
    return resize_rgb(photo.rgb, shape)


def baseline_in_frame(b_photo: Photo, frame: AnalysisFrame) -> np.ndarray:
    return in_frame(b_photo, frame.baseline_shape)


def followup_in_frame(f_photo: Photo, frame: AnalysisFrame) -> np.ndarray:
    return in_frame(f_photo, frame.followup_shape)


def roi_in_frame(roi: np.ndarray | None, b_photo: Photo, frame: AnalysisFrame) -> np.ndarray | None:
    """The region of interest (drawn on the baseline photo) in the analysis frame.

    Raises
    ------
    ValueError
        Not a bool mask of the baseline photo's shape, empty, or empty once reduced.
    """
    if roi is None:
        return None
    h, w = b_photo.rgb.shape[:2]
    roi = check_mask(roi, shape=(h, w), name="roi")
    if not roi.any():
        raise ValueError("roi is empty: draw the region of interest on the baseline photo")
    out = resize_mask(roi, frame.baseline_shape)
    if not out.any():
        raise ValueError("roi is too small: draw a larger region of interest")
    return out


def is_known(ppm_photo: float | None) -> bool:
    return ppm_photo is not None


def same_frame(frame: AnalysisFrame, b_photo: Photo, f_photo: Photo) -> AnalysisFrame:
    """An earlier comparison's frame, checked against the photos.

    Raises
    ------
    ValueError
        The photos are not of the sizes the frame was made for.
    """
    shapes = (b_photo.rgb.shape[:2], f_photo.rgb.shape[:2])
    if shapes != (frame.photo_shape, frame.followup_photo_shape):
        raise ValueError(
            f"the photos are {shapes[0]} and {shapes[1]} (H, W), the comparison's were "
            f"{frame.photo_shape} and {frame.followup_photo_shape}: pass the photos it was "
            "made from"
        )
    return frame


def scale_in_frame(ppm_photo: float | None, frame: AnalysisFrame) -> float | None:
    """The given or known scale in analysis pixels per mm (None: to be estimated)."""
    return None if ppm_photo is None else float(ppm_photo) * frame.scale


def baseline_scale(ppm_given: float | None, b_skin: SkinMap) -> PhotoScale:
    """The baseline's scale in the analysis frame: the known one (given, the photo's own
    or its card's), else estimated from its skin (:func:`~vein_tracker.scale.scale_from_skin`:
    a leg's width, else the frame size), as
    :func:`~vein_tracker.segmentation.estimate_px_per_mm` does."""
    if ppm_given is not None:
        v = check_px_per_mm(ppm_given)
        return PhotoScale(v, "given", v, v, "given")
    est = scale_from_skin(b_skin.mask)
    return replace(est, px_per_mm=float(np.clip(est.px_per_mm, *PX_PER_MM_RANGE)))


def analysis_scale(scale: PhotoScale) -> float:
    """The comparison's scale, px/mm of the analysis frame."""
    return check_px_per_mm(scale.px_per_mm)


# ----------------------------------------------------------------------------- registration


def photo_skin(rgb: np.ndarray, ppm: float | None) -> SkinMap:
    """A photo's skin, found once (:func:`~vein_tracker.skin.find_skin`) and shared by its
    scale estimate, its features, its leg and the confidence. ``ppm``, when known, sets
    the clean-up scale (None: a fraction of the frame)."""
    return find_skin(rgb, px_per_mm=ppm)


def skin_like_baseline(f_rgb: np.ndarray, f_skin: SkinMap, b_skin: SkinMap) -> SkinMap:
    """The follow-up's skin: as found on its own, or as the surface that moved least from
    the baseline's skin colour (:func:`~vein_tracker.skin.find_skin`'s ``like``),
    whichever lies where the baseline's skin lies.

    A same-leg follow-up under a strong cast is then neither refused for "no skin" nor
    matched on the wrong surface: under a tungsten lamp a beige wall can look more like
    skin than the brown leg in front of it, and a retake frames the leg as the baseline
    did, so the leg is the surface that overlaps the baseline's skin (Dice in the
    follow-up's frame). The other surface is only looked for when the own finding
    overlaps the baseline's skin less than :data:`SKIN_IN_PLACE`, and taken when it
    overlaps it :data:`SKIN_PLACE_MARGIN` better."""
    if not b_skin.found:
        return f_skin
    if not f_skin.found:
        return find_skin(f_rgb, like=b_skin)
    where = resize_mask(b_skin.mask, f_skin.mask.shape)
    own = _dice(f_skin.mask, where)
    if own >= SKIN_IN_PLACE:
        return f_skin
    alt = find_skin(f_rgb, like=b_skin, like_first=True, where=where)
    if alt.found and _dice(alt.mask, where) > own + SKIN_PLACE_MARGIN:
        return alt
    return f_skin


#: Overlap (Dice) with the baseline's skin from which the follow-up's own skin finding is
#: taken as in place: a retake of the same framing overlaps it far more (pose changes of
#: up to 10 % in scale and position).
SKIN_IN_PLACE = 0.6
#: How much better (Dice) the colour-like surface must overlap the baseline's skin than
#: the follow-up's own finding to be taken instead.
SKIN_PLACE_MARGIN = 0.2


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    n = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / n if n else 0.0


def baseline_features(
    b_rgb: np.ndarray, roi: np.ndarray | None, card: np.ndarray | None, skin: SkinMap
) -> PhotoFeatures:
    """The baseline's features on its skin, none on its card (the card moves between
    visits)."""
    return photo_features(b_rgb, roi=roi, leg_mask=_skin_off_card(skin, card))


def followup_features(f_rgb: np.ndarray, card: np.ndarray | None, skin: SkinMap) -> PhotoFeatures:
    """The follow-up's features on its skin, none on its card."""
    return photo_features(f_rgb, leg_mask=_skin_off_card(skin, card))


def _skin_off_card(skin: SkinMap, card: np.ndarray | None) -> np.ndarray:
    """The skin the features are found on (:func:`~vein_tracker.colour.skin_interior`),
    less the card."""
    inside = skin_interior(skin.mask)
    return inside if card is None else inside & ~card


def followup_skin(reg: Registration, skin: SkinMap) -> SkinMap:
    """The follow-up's skin as registered (where the region compared may lie,
    :func:`compared_region`; its share of the frame and its light, for the confidence:
    :func:`vein_tracker.confidence.for_comparison`): the skin found on the follow-up,
    brought into the baseline frame."""
    on_skin = warp_to_baseline(
        skin.mask.astype(np.uint8), reg.homography, reg.flow, reg.valid.shape, cv2.INTER_NEAREST
    )
    return replace(skin, mask=np.asarray(on_skin > 0))


def card_unseen(reg: Registration, card: np.ndarray | None) -> Registration:
    """The registration with the follow-up's card counted as not seen: no follow-up
    pixel of the card is segmented or compared."""
    if card is None:
        return reg
    on_card = warp_to_baseline(
        card.astype(np.uint8), reg.homography, reg.flow, reg.valid.shape, cv2.INTER_NEAREST
    )
    return replace(reg, valid=reg.valid & (on_card == 0))


def registered(b_feat: PhotoFeatures, f_feat: PhotoFeatures, f_rgb: np.ndarray) -> Registration:
    """The follow-up aligned onto the baseline (:func:`~vein_tracker.registration.align_features`).

    Raises
    ------
    RegistrationError
        The pair cannot be registered (the reason says why).
    """
    reg = align_features(b_feat, f_feat, f_rgb)
    if not reg.ok:
        raise RegistrationError(
            reg.reason or "The follow-up photo could not be aligned onto the baseline."
        )
    return reg


def same_registration(reg: Registration, frame: AnalysisFrame) -> Registration:
    """An earlier registration of the pair, checked against the analysis frame.

    Raises
    ------
    ValueError
        Not a usable registration of photos of this frame.
    """
    if not reg.ok:
        raise ValueError(f"the registration was refused ({reg.reason}): nothing to measure")
    if reg.valid.shape != frame.baseline_shape or reg.followup_shape != frame.followup_shape:
        raise ValueError(
            f"the registration maps a {reg.followup_shape} follow-up onto a "
            f"{reg.valid.shape} baseline, the analysis frame is {frame.followup_shape} onto "
            f"{frame.baseline_shape}: pass the photos it was made from"
        )
    return reg


# ----------------------------------------------------------------------------- equal footing


def prepared(rgb: np.ndarray, cfg: AnalysisConfig) -> np.ndarray:
    """A photo as it is measured: through the 4:2:0-like chroma low-pass both visits get
    (:func:`~vein_tracker.colour.chroma_lowpass`), when the options ask for it."""
    return chroma_lowpass(rgb) if cfg.equalise_chroma else rgb


def baseline_leg(
    b_prepared: np.ndarray, ppm: float, card: np.ndarray | None, skin: SkinMap
) -> np.ndarray:
    """The baseline's leg, as the segmentation makes it from the baseline's skin at the
    analysis scale, less its card."""
    return find_leg(b_prepared, px_per_mm=ppm, exclude=card, skin=skin)


def jpeg_quality(photo: Photo, cfg: AnalysisConfig) -> int | None:
    """The JPEG quality the photo was saved with (None: not a JPEG, or not needed)."""
    return estimate_jpeg_quality(photo.rgb) if cfg.equalise_quantisation else None


@dataclass(frozen=True)
class Blurs:
    """The extra blur (σ, analysis px) each photo gets to match the other's: the
    follow-up's excess for the baseline, the baseline's for the follow-up (NaN: none)."""

    baseline_px: float
    followup_px: float


def matching_blurs(reg: Registration, cfg: AnalysisConfig) -> Blurs:
    """What the registration measured: the sharper photo gets the difference in blur."""
    if not cfg.match_blur:
        return Blurs(math.nan, math.nan)
    return Blurs(float(reg.checks.blur_followup_px), float(reg.checks.blur_baseline_px))


def blurred(rgb: np.ndarray, sigma_px: float) -> np.ndarray | None:
    """``rgb`` blurred by ``sigma_px``, or None when that blur is not worth matching."""
    if not (math.isfinite(sigma_px) and sigma_px > MIN_MATCHED_BLUR_PX):
        return None
    return blur_rgb(rgb, sigma_px)


def baseline_blurred(b_rgb: np.ndarray, blurs: Blurs) -> np.ndarray | None:
    return blurred(b_rgb, blurs.baseline_px)


def baseline_measured(
    b_blurred: np.ndarray | None, b_prepared: np.ndarray, cfg: AnalysisConfig
) -> np.ndarray:
    """The baseline as measured: blurred to match when the follow-up is blurrier (the
    usual case: the warp's interpolation blurs it), prepared."""
    return b_prepared if b_blurred is None else prepared(b_blurred, cfg)


def followup_measured(reg: Registration, blurs: Blurs, cfg: AnalysisConfig) -> np.ndarray:
    """The registered follow-up as measured: blurred to match a blurrier baseline, prepared.

    The follow-up is measured as registered, not its colour-normalised copy (made for the
    warnings): vein contrast is measured in OD over the local skin background, so
    per-channel gains and smooth fields cancel in it, while re-quantising a gain-corrected
    copy to 8 bits does not (−2.5 % spider contrast at ±8 % gains on dark skin)."""
    warped = blurred(reg.warped, blurs.followup_px)
    return prepared(reg.warped if warped is None else warped, cfg)


# ----------------------------------------------------------------------------- segmentation


def segment_baseline(
    b_measured: np.ndarray, leg: np.ndarray, scale: PhotoScale, sensitivity: float
) -> Segmentation:
    """The baseline's veins as measured, on its leg (the leg the follow-up is segmented
    on too), at its scale."""
    return segment(b_measured, px_per_mm=scale, leg_mask=leg, sensitivity=sensitivity)


def map_for_frame(labels: np.ndarray, b_photo: Photo, frame: AnalysisFrame) -> np.ndarray:
    """A given baseline vein map in the analysis frame (:func:`~.given_map.map_in_frame`)."""
    return map_in_frame(labels, photo_shape=b_photo.rgb.shape[:2], frame_shape=frame.baseline_shape)


def segment_map(
    b_measured: np.ndarray, labels: np.ndarray, leg: np.ndarray, ppm: float, sensitivity: float
) -> Segmentation:
    """The baseline's veins from a given map, on the baseline as measured and its leg."""
    return segmentation_of_map(
        b_measured, labels, px_per_mm=ppm, leg_mask=leg, sensitivity=sensitivity
    )


def same_segmentation(seg: Segmentation, frame: AnalysisFrame) -> Segmentation:
    """An earlier comparison's baseline segmentation, checked against the analysis frame."""
    if seg.mask.shape != frame.baseline_shape:
        raise ValueError(
            f"the segmentation is {seg.mask.shape}, the analysis frame {frame.baseline_shape}"
        )
    return seg


def segment_followup(
    f_measured: np.ndarray, leg: np.ndarray, reg: Registration, ppm: float, sensitivity: float
) -> Segmentation:
    """The follow-up's veins in the baseline frame, on the baseline's leg it covers."""
    return segment(f_measured, px_per_mm=ppm, leg_mask=leg & reg.valid, sensitivity=sensitivity)


def compared_region(
    leg: np.ndarray,
    reg: Registration,
    f_skin: SkinMap,
    roi: np.ndarray | None,
    ppm: float,
) -> np.ndarray:
    """The region compared: the baseline's leg the follow-up covers, shows alike
    (``Registration.comparable``: not a hand placed again) and shows as skin (``f_skin``,
    the follow-up's skin as registered: not a glove or clothing laid over the leg at the
    follow-up, whose veins would read as cleared), away from the border of that part by
    :data:`REGION_MARGIN_MM`, inside the region of interest."""
    region = leg & erode_disc(reg.comparable & f_skin.mask, REGION_MARGIN_MM * ppm)
    if roi is not None:
        region &= roi
    return region


@dataclass(frozen=True, eq=False)
class Visits:
    """The two visits ready to be compared: both segmented in the baseline frame, the
    registration between them, the region compared, the scale (px/mm) and the baseline
    vein pixels in the region (``base``; :func:`visits` makes it)."""

    registration: Registration
    baseline: Segmentation
    followup: Segmentation
    region: np.ndarray
    px_per_mm: float
    base: np.ndarray

    @property
    def residual_px(self) -> float:
        """The registration's residual, px (0 when unknown)."""
        r = float(self.registration.residual_px or 0.0)
        return r if math.isfinite(r) else 0.0


def visits(
    reg: Registration, seg_b: Segmentation, seg_f: Segmentation, region: np.ndarray, ppm: float
) -> Visits:
    """The two visits to compare over ``region`` (baseline frame) at ``ppm``."""
    shape = seg_b.mask.shape
    region = check_mask(region, shape=shape, name="region")
    if seg_f.mask.shape != shape:
        raise ValueError(
            f"the follow-up's segmentation must be in the baseline frame {shape}, "
            f"got {seg_f.mask.shape}"
        )
    ppm = check_px_per_mm(ppm)
    return Visits(reg, seg_b, seg_f, region, ppm, seg_b.mask & region)


# ----------------------------------------------------------------------------- colour


def colour_fit(
    b_measured: np.ndarray,
    f_measured: np.ndarray,
    v: Visits,
    fit_input: ColourFitInput,
) -> ColourFit:
    """The follow-up's colour onto the baseline's, fitted on skin away from the baseline
    veins as measured (1 mm)."""
    mask = v.region & ~dilate_disc(v.baseline.mask, 1.0 * v.px_per_mm)
    return fit_colour(b_measured, f_measured, mask=mask, prepared=fit_input)


def equalised_baseline(
    b_photo: Photo,
    frame: AnalysisFrame,
    q_b: int | None,
    q_f: int | None,
    blurs: Blurs,
    fit: ColourFit,
    b_blurred: np.ndarray | None,
    cfg: AnalysisConfig,
) -> np.ndarray | None:
    """The baseline as the follow-up's camera would have taken it, in the analysis frame
    (:func:`~vein_tracker.colour.equalise_to_followup`), or None."""
    if not cfg.equalise_quantisation:
        return None
    return equalise_to_followup(
        b_photo.rgb,
        analysis_shape=frame.baseline_shape,
        followup_quality=q_f,
        baseline_quality=q_b,
        blur_px=blurs.baseline_px,
        fit=fit,
        blurred=b_blurred,
        chroma=cfg.equalise_chroma,
    )


def equalised_contrast(
    eq_rgb: np.ndarray | None, ppm: float, leg: np.ndarray
) -> VeinContrast | None:
    """The equalised baseline's vein contrast maps (None without an equalised baseline)."""
    return None if eq_rgb is None else vein_contrast(eq_rgb, px_per_mm=ppm, leg_mask=leg)


def normalised(
    b_measured: np.ndarray, f_measured: np.ndarray, fit: ColourFit, ppm: float
) -> ColourNormalisation:
    """The follow-up with its colour fit removed, on the look-alike warnings' grid only
    (the only pixels they read), with the colour differences left."""
    return apply_colour_fit(b_measured, f_measured, fit, grid_step=lookalike_step(ppm))


# ----------------------------------------------------------------------------- measurement


def stored_contrast(v: Visits) -> np.ndarray:
    """The baseline's contrast as stored (along its own classes): the gate a follow-up
    vein's contrast is held against."""
    return contrast_along(v.baseline, v.baseline.labels)


def zero_field(v: Visits, cfg: AnalysisConfig) -> ZeroField | None:
    """The zero point's ring around every vein of either visit (None when off)."""
    if not cfg.zero_point:
        return None
    ring = zero_ring(v.baseline.mask | v.followup.mask, v.region, v.px_per_mm)
    return ZeroField(ring, v.px_per_mm)


def followup_contrast(v: Visits, zero: ZeroField | None) -> np.ndarray:
    """``c_f``: the follow-up's contrast along the baseline's classes, less its zero point."""
    c = contrast_along(v.followup, v.baseline.labels)
    return c if zero is None else zeroed(c, v.followup.contrast, v.baseline.labels, zero)


def min_contrast(v: Visits, c_stored: np.ndarray) -> np.ndarray:
    """The smallest contrast a follow-up vein pixel needs, by its class."""
    return min_vein_contrast(c_stored, v.base, v.baseline.labels, v.followup.labels)


def baseline_distance(v: Visits) -> np.ndarray:
    return distance_to(v.base)


def edge_distance(v: Visits) -> np.ndarray:
    """Distance (px) to the follow-up leg's outline, within the region."""
    return distance_to(~(v.followup.leg_mask & v.region))


def new_vein_search(
    v: Visits, dist_b: np.ndarray, edge: np.ndarray, min_s: np.ndarray
) -> NewVeinSearch:
    """Where new veins are looked for: shading at the leg's outline makes vein-like ridges
    in one photo and not the other, so not within :data:`NEW_EDGE_MARGIN_MM` of it."""
    seg_f, ppm = v.followup, v.px_per_mm
    f_own = np.asarray(seg_f.strength, dtype=np.float32)
    return NewVeinSearch(
        followup=seg_f.mask & v.region & (f_own >= min_s),
        baseline=v.base,
        distance=dist_b,
        inner=v.region & (edge > NEW_EDGE_MARGIN_MM * ppm),
        skeleton=np.asarray(seg_f.skeleton, dtype=bool),
        strength=f_own,
        baseline_strength=np.asarray(v.baseline.strength, dtype=np.float32),
        min_contrast=min_s,
        neutral=seg_f.neutral,
        labels=np.asarray(seg_f.labels),
        px_per_mm=ppm,
    )


def new_veins(search: NewVeinSearch, tolerance_px: float) -> np.ndarray:
    return find_new_veins(search, tolerance_px=tolerance_px)


def moved_new_count(search: NewVeinSearch, base_layout: Layout, tol_px: float, k: int) -> float:
    """New vein pixels with the ``k``-th of the band's moved tolerances and gates (0 when
    there is no baseline vein: no estimate to move)."""
    if base_layout.base_idx.size == 0:
        return 0.0
    tol, strength_k = moved_tolerances(tol_px)[k]
    return float(np.count_nonzero(find_new_veins(search, tolerance_px=tol, strength_k=strength_k)))


def followup_figures(v: Visits, search: NewVeinSearch) -> VeinMetrics:
    """The follow-up's plain figures, on its vein pixels that pass the contrast gate."""
    seg_f, fmask = v.followup, search.followup
    return measure_mask(
        fmask,
        region=v.region,
        px_per_mm=v.px_per_mm,
        strength=search.strength,
        skeleton=search.skeleton & fmask,
        labels=search.labels,
        vein_ids=np.asarray(seg_f.vein_ids),
        skin=seg_f.leg_mask,
    )


def baseline_figures(v: Visits) -> VeinMetrics:
    return measure(v.baseline, region=v.region, px_per_mm=v.px_per_mm)


def supports_scale(v: Visits) -> Scale:
    """The supports' margins and the ratio's smoothing, widened by the residual."""
    return scale_for(v.px_per_mm, v.residual_px)


def new_tolerance(v: Visits) -> float:
    """How far from a baseline vein a new vein must lie, px."""
    return new_tolerance_px(v.px_per_mm, v.residual_px)


def base_layout(v: Visits, scale: Scale) -> Layout:
    """The supports of every baseline vein in the region."""
    return layout_of(v.base, v, scale)


def layout_of(base: np.ndarray, v: Visits, scale: Scale) -> Layout:
    return lay_out(
        base,
        labels=np.asarray(v.baseline.labels),
        region=v.region,
        ids=np.asarray(v.baseline.vein_ids),
        scale=scale,
    )


def ratio_baseline_contrast(
    v: Visits,
    c_stored: np.ndarray,
    equalised: VeinContrast | None,
    zero: ZeroField | None,
    read_at: np.ndarray,
) -> np.ndarray:
    """``c_b``: the contrast the ratio divides by, at the pixels it is read on (0
    elsewhere): the baseline at the follow-up's JPEG quantisation when there is one, else
    as stored, less the zero point measured on the very map each pixel is read from."""
    labels = v.baseline.labels
    c, maps = c_stored, v.baseline.contrast
    if equalised is not None:
        c, maps = np.asarray(equalised.of_class(labels), dtype=np.float32), equalised
    return c if zero is None else zeroed_at(c, maps, labels, zero, read_at)


def counted_veins(v: Visits, c_b: np.ndarray) -> np.ndarray:
    """The baseline vein pixels the headline counts: those of veins with a measurable
    contrast of their own (new veins are still looked for away from every vein)."""
    return measurable(v.base, c_b, v.baseline.labels, np.asarray(v.baseline.vein_ids))


def counted_layout(counted: np.ndarray, base_layout: Layout, v: Visits, scale: Scale) -> Layout:
    """The counted veins' supports: those of every baseline vein when all are counted."""
    return base_layout if counted is v.base else layout_of(counted, v, scale)


def cut_layout(counted: np.ndarray, c_b: np.ndarray, v: Visits, scale: Scale) -> Layout | None:
    """The band's threshold move: the counted veins cut to their stronger 80 %."""
    return core_layout(
        counted,
        c_b,
        labels=np.asarray(v.baseline.labels),
        region=v.region,
        ids=np.asarray(v.baseline.vein_ids),
        scale=scale,
    )


def ratio(c_b: np.ndarray, c_f: np.ndarray, lay: Layout, v: Visits, new: np.ndarray) -> Ratio:
    """What every estimate of the formula reads (:class:`~.improvement.Ratio`)."""
    return Ratio.of(c_b, c_f, lay, v.region, new)


def bootstrap(est: Estimate, counted: np.ndarray, v: Visits) -> float:
    return bootstrap_spread(est, counted, v.region, v.px_per_mm)


def shift_spread(ratio: Ratio, est: Estimate, v: Visits, k: int) -> float:
    """The ``k``-th registration shift's move of the estimate."""
    dx, dy = registration_shifts(v.residual_px)[k]
    return shifted_spread(ratio, est, dx, dy)


def spreads(*values: float) -> tuple[float, ...]:
    return tuple(values)


def band(
    est: Estimate,
    boot: float,
    shifted: tuple[float, ...],
    cut: float,
    moved: tuple[float, ...],
    map_given: bool,
) -> Band:
    """The band around the estimate from its measured spreads and the photographs' own
    (smaller with the baseline's vein map given)."""
    threshold = [cut, *(moved_new_spread(est, n) for n in moved)]
    return band_of(
        est.terms.pct,
        bootstrap=boot,
        registration=shifted,
        threshold=threshold,
        map_given=map_given,
    )


def by_class(est: Estimate, lay: Layout, v: Visits) -> dict[str, float | None]:
    return improvement_by_class(
        est, lay, np.asarray(v.baseline.labels), np.asarray(v.followup.labels), v.region
    )


def table(
    est: Estimate, v: Visits, counted: np.ndarray, previous: Sequence[Comparison] | None
) -> VeinTable:
    return vein_table(
        est,
        v.baseline,
        v.followup,
        base=counted,
        ids_b=np.asarray(v.baseline.vein_ids),
        labels_b=np.asarray(v.baseline.labels),
        labels_f=np.asarray(v.followup.labels),
        previous=previous,
        ppm=v.px_per_mm,
    )


def all_warnings(
    v: Visits,
    leg: np.ndarray | None,
    norm: ColourNormalisation | None,
    est: Estimate,
    counted: np.ndarray,
    tab: VeinTable,
    b_measured: np.ndarray | None,
) -> list[str]:
    """The capture's warnings (when the colour normalisation is known), then the
    change's."""
    capture: list[str] = []
    if norm is not None and leg is not None:
        capture = capture_warnings(v.registration, v.region, leg, norm)
    return change_warnings(
        capture,
        pct=est.terms.pct,
        base=counted,
        table=tab,
        region=v.region,
        ppm=v.px_per_mm,
        baseline_rgb=b_measured,
        followup_rgb=None if norm is None else norm.image,
    )


@dataclass(frozen=True)
class Headline:
    """The headline figure, its band, its grade and the per-class figures."""

    estimate: Estimate
    band: Band
    by_class: dict[str, float | None]


def headline(est: Estimate, band_: Band, per_class: dict[str, float | None]) -> Headline:
    return Headline(est, band_, per_class)


@dataclass(frozen=True)
class Figures:
    """Both visits' plain figures."""

    baseline: VeinMetrics
    followup: VeinMetrics


def figures(bm: VeinMetrics, fm: VeinMetrics) -> Figures:
    return Figures(bm, fm)


def comparison(
    v: Visits,
    head: Headline,
    figs: Figures,
    tab: VeinTable,
    warnings: list[str],
    frame: AnalysisFrame | None,
    target_pct: float,
    params: dict[str, Any],
) -> Comparison:
    """The :class:`~.results.Comparison` of the steps' results."""
    from .. import ALGORITHM_VERSION

    pct = head.estimate.terms.pct
    bm, fm = figs.baseline, figs.followup
    return Comparison(
        registration=v.registration,
        baseline_metrics=bm,
        followup_metrics=fm,
        improvement_pct=pct,
        improvement_band_pct=head.band.low_high,
        improvement_by_class_pct=head.by_class,
        improvement_by_length_pct=100.0 * (1.0 - fm.length_mm / bm.length_mm)
        if bm.length_mm > 0
        else None,
        improvement_by_area_pct=100.0 * (1.0 - fm.area_mm2 / bm.area_mm2)
        if bm.area_mm2 > 0
        else None,
        grade=grade_for(pct) if math.isfinite(pct) else None,
        target_pct=float(target_pct),
        # Met only when the band's low end reaches the target (issue 22): outcome's rule.
        meets_target=bool(math.isfinite(pct) and target_met(pct, head.band.low_high, target_pct)),
        veins=tab.veins,
        vein_counts=tab.counts,
        warnings=tuple(warnings),
        region=v.region,
        change_map=tab.change_map,
        baseline_seg=v.baseline,
        followup_seg=v.followup,
        algorithm_version=ALGORITHM_VERSION,
        params=dict(params),
        px_per_mm=v.px_per_mm,
        band_components=head.band.components,
        frame=frame,
    )
