"""The comparison pipeline: two photos of one treatment area in, a :class:`Comparison` out.

:func:`compare` declares its steps (:mod:`.steps`) in the order a serial program calls
them, each with its inputs, and runs them on a small thread pool
(:class:`~vein_tracker.schedule.TaskGraph`): a step starts once its inputs are there, so
the two photos' features are found side by side, and so on. The steps know nothing of
threads, and the results are those of running them one after the other (``workers=1``).

The photos' stage (:func:`_visit_steps`) ends with both visits segmented in the baseline
frame (:class:`~.steps.Visits`); the measuring stage (:func:`_measure_steps`) compares
them. :func:`measure_visits` runs the measuring stage alone on given segmentations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..card import CardReading
from ..checks import check_px_per_mm
from ..colour import ColourNormalisation, prepare_colour_fit
from ..confidence import for_comparison
from ..registration import Registration
from ..scale import Scale as PhotoScale
from ..schedule import Task, TaskGraph
from ..segmentation import Segmentation, VeinContrast
from ..skin import SkinMap
from . import steps as s
from .band import BAND_FLOOR_PCT, BAND_K, cut_core_spread, photo_spread
from .config import AnalysisConfig
from .frame import ANALYSIS_PX_PER_MM, AnalysisFrame
from .improvement import headline_estimate
from .new_veins import NEW_TOLERANCE_MM
from .results import Comparison
from .support import RATIO_SIGMA_MM, needed_pixels

__all__ = ["DEFAULT_WORKERS", "compare", "measure_visits", "remeasure"]

ProgressCallback = Callable[[float, str], None]

#: Threads a comparison's steps run on (two cores' worth; OpenCV and NumPy release the GIL).
DEFAULT_WORKERS = 2


def compare(
    baseline: s.PhotoInput,
    followup: s.PhotoInput,
    *,
    roi: np.ndarray | None = None,
    px_per_mm: float | None = None,
    sensitivity: float = 0.5,
    target_pct: float | None = None,
    previous: Sequence[Comparison] | None = None,
    progress: ProgressCallback | None = None,
    config: AnalysisConfig | None = None,
    workers: int = DEFAULT_WORKERS,
    baseline_labels: np.ndarray | None = None,
) -> Comparison:
    """Compare a follow-up photo of a treatment area with its baseline.

    Pipeline: load both photos and bring them to the analysis frame, register the
    follow-up onto the baseline, segment both visits in the baseline frame (the sharper
    photo blurred to match the other, both through the same chroma low-pass), fit the
    follow-up's colour onto the baseline's, bring a copy of the baseline to the
    follow-up's capture, then measure both over the region seen in both photos (inside
    ``roi`` when given): the headline, its band, the per-class and per-vein figures and
    the warnings.

    The headline ``improvement_pct`` is :func:`~.formula.improvement_pct` with ``c_b``
    and ``c_f`` the two visits' vein contrast (OD units, along the class of the baseline
    pixel, less the zero point of the skin around the veins), integrated over each
    vein's support and set per vein (:mod:`.improvement`), and ``N`` the follow-up vein
    pieces farther than ``NEW_TOLERANCE_MM`` (plus twice the registration residual) from
    any baseline vein (:mod:`.new_veins`). The band is :mod:`.band`'s.

    Parameters
    ----------
    baseline, followup : Photo, ndarray (H, W, 3) uint8, path or bytes
        The two photos, upright.
    roi : ndarray, shape (H, W), bool, optional
        Region of interest on the baseline photo; only pixels inside count.
    px_per_mm : float, optional
        Scale of the baseline; default the photo's own, else the segmentation's estimate.
    sensitivity : float
        Segmentation sensitivity in [0, 1].
    target_pct : float, optional
        The clinic's target; default ``VEIN_TRACKER_TARGET_PCT`` (75).
    previous : sequence of Comparison, optional
        Earlier comparisons against the same baseline, oldest first; needed to call a
        vein "recanalised" (faded, then came back).
    progress : callable(fraction, message), optional
        Called from this thread as the stages start.
    config : AnalysisConfig, optional
        How the two visits are equalised; default :class:`AnalysisConfig()`.
    workers : int
        Threads the steps run on; the results do not depend on it.
    baseline_labels : ndarray, shape (H, W), uint8 or bool, optional
        A baseline vein map to measure instead of segmenting the baseline (a clinician's
        corrected map, a phantom's truth): 0 none, 1 spider, 2 reticular; or a bool mask
        of vein pixels whose classes are not known (each vein is then classified by
        colour, :func:`~.given_map.classify_by_colour`). On the baseline photo (resized
        to the analysis frame, nearest neighbour) or already in the analysis frame.

    Returns
    -------
    Comparison

    Raises
    ------
    RegistrationError
        The pair cannot be registered (the reason says why).
    PhotoError
        A photo cannot be read.
    ValueError
        Bad ``roi``, ``px_per_mm``, ``sensitivity``, ``target_pct`` or
        ``baseline_labels``.
    """
    cfg = AnalysisConfig() if config is None else config
    opts = _options(px_per_mm, sensitivity, target_pct)
    given = _Given(baseline_labels=baseline_labels)
    return _run_pipeline(baseline, followup, roi, opts, cfg, given, previous, progress, workers)


def remeasure(
    measured: Comparison | Registration,
    baseline: s.PhotoInput,
    followup: s.PhotoInput,
    *,
    baseline_labels: np.ndarray | None = None,
    roi: np.ndarray | None = None,
    px_per_mm: float | None = None,
    sensitivity: float | None = None,
    target_pct: float | None = None,
    previous: Sequence[Comparison] | None = None,
    progress: ProgressCallback | None = None,
    config: AnalysisConfig | None = None,
    workers: int = DEFAULT_WORKERS,
) -> Comparison:
    """Measure a pair again on its existing registration (no re-registering), with a new
    baseline vein map and/or region of interest.

    The result is what :func:`compare` measures on that registration: with a new baseline
    map, :func:`compare`'s own with that map (a region of interest, which :func:`compare`
    also uses to register, only changes the region measured here). Only the steps the new
    map or region change run again.

    Parameters
    ----------
    measured : Comparison or Registration
        An earlier :func:`compare` of these photos (its registration, analysis frame and
        scale, its follow-up's segmentation, its baseline's unless ``baseline_labels`` is
        given, and its sensitivity and target unless given, are kept), or only the
        registration of the pair in its analysis frame (the rest is made again).
    baseline, followup : Photo, ndarray (H, W, 3) uint8, path or bytes
        The photos ``measured`` was made from.
    baseline_labels : ndarray, shape (H, W), uint8 or bool, optional
        As for :func:`compare`: typically a clinician's corrected map, in the analysis
        frame (``Comparison.baseline_seg.labels``' shape) or on the photo.
    roi : ndarray, shape (H, W), bool, optional
        Region of interest on the baseline photo (None: the whole region seen in both).
    px_per_mm : float, optional
        With a Registration only: the scale :func:`compare` was given.
    sensitivity, target_pct, previous, progress, config, workers
        As for :func:`compare`.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        The photos are not those of ``measured``, or bad arguments (as :func:`compare`).
    """
    cfg = AnalysisConfig() if config is None else config
    if isinstance(measured, Registration):
        given = _Given(registration=measured, baseline_labels=baseline_labels)
        opts = _options(px_per_mm, 0.5 if sensitivity is None else sensitivity, target_pct)
        return _run_pipeline(baseline, followup, roi, opts, cfg, given, previous, progress, workers)
    if px_per_mm is not None:
        raise ValueError(
            "px_per_mm is the comparison's own when re-measuring a Comparison; pass it only "
            "with a Registration"
        )
    if measured.frame is None:
        raise ValueError(
            "this comparison was not made from photos (it has no analysis frame): compare "
            "the photos instead"
        )
    scale_known = bool(measured.params.get("px_per_mm_given", False))
    given = _Given(
        registration=measured.registration,
        baseline_seg=measured.baseline_seg if baseline_labels is None else None,
        followup_seg=measured.followup_seg,
        baseline_labels=baseline_labels,
        frame=measured.frame,
        ppm_given=measured.px_per_mm if scale_known else None,
        scale_known=scale_known,
        scale_source=str(
            measured.params.get("scale_source", "given" if scale_known else "estimated")
        ),
        earlier_map_given=measured.params.get("baseline_map") == "given",
    )
    opts = _options(
        None,
        float(measured.params.get("sensitivity", 0.5)) if sensitivity is None else sensitivity,
        measured.target_pct if target_pct is None else target_pct,
    )
    return _run_pipeline(baseline, followup, roi, opts, cfg, given, previous, progress, workers)


def _run_pipeline(
    baseline: s.PhotoInput,
    followup: s.PhotoInput,
    roi: np.ndarray | None,
    opts: _Options,
    cfg: AnalysisConfig,
    given: _Given,
    previous: Sequence[Comparison] | None,
    progress: ProgressCallback | None,
    workers: int,
) -> Comparison:
    """The whole pipeline, from the two photos to the comparison."""
    if progress is not None:
        progress(0.0, "loading photos")
    g = TaskGraph()
    fr = _frame_steps(g, baseline, followup, roi=roi, opts=opts, given=given)
    photos = _visit_steps(g, fr, opts=opts, cfg=cfg, given=given)
    colour = _colour_steps(g, photos, cfg)
    params = g.add(
        "params",
        _params,
        photos.ppm,
        fr.scale_known,
        fr.scale_source,
        fr.cards,
        fr.roi,
        opts,
        cfg,
        given.map_given,
    )
    result = _measure_steps(
        g,
        photos.visits,
        cfg=cfg,
        opts=opts,
        map_given=given.map_given,
        previous=previous,
        extras=_Extras(
            leg=photos.leg,
            equalised=colour.equalised,
            normalised=colour.normalised,
            baseline_measured=photos.b_measured,
            frame=fr.frame,
            params=params,
        ),
    )
    # How far the figure can be trusted: scale, skin in view, light, alignment.
    confident = g.add(
        "confidence", _with_confidence, result, photos.f_skin, photos.b_scale, photos.b_skin
    )
    return g.run(confident, workers=workers, progress=progress)


def _with_confidence(
    comparison: Comparison,
    followup_skin: SkinMap,
    baseline_scale: PhotoScale,
    baseline_skin: SkinMap,
) -> Comparison:
    confidence = for_comparison(
        comparison,
        followup_skin=followup_skin,
        baseline_scale=baseline_scale,
        baseline_skin=baseline_skin,
    )
    return replace(comparison, confidence=confidence)


def measure_visits(
    registration: Registration,
    baseline_seg: Segmentation,
    followup_seg: Segmentation,
    *,
    region: np.ndarray,
    px_per_mm: float,
    target_pct: float = 75.0,
    previous: Sequence[Comparison] | None = None,
    config: AnalysisConfig | None = None,
    params: dict[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
) -> Comparison:
    """The measuring stage of :func:`compare` alone, on two segmentations in the baseline
    frame: no colour normalisation, hence no capture or look-alike warnings, and ``c_b``
    read on the baseline as segmented.

    Parameters
    ----------
    registration : Registration
    baseline_seg, followup_seg : Segmentation
        The two visits' veins, both in the baseline frame (same shape).
    region : ndarray, shape (H, W), bool
        The region compared.
    px_per_mm : float
        Scale of the frame.
    target_pct, previous, config, workers
        As for :func:`compare`.
    params : dict, optional
        Stored as the comparison's ``params``.

    Returns
    -------
    Comparison
    """
    cfg = AnalysisConfig() if config is None else config
    opts = _options(px_per_mm, baseline_seg.sensitivity, target_pct)
    g = TaskGraph()
    v = g.add("visits", s.visits, registration, baseline_seg, followup_seg, region, px_per_mm)
    result = _measure_steps(
        g,
        v,
        cfg=cfg,
        opts=opts,
        previous=previous,
        extras=_Extras(leg=None, params=dict(params or {})),
        map_given=False,  # the baseline's segmentation is taken as segmented, not reviewed
    )
    return g.run(result, workers=workers)


@dataclass(frozen=True)
class _Options:
    """The checked options of one comparison."""

    px_per_mm: float | None
    sensitivity: float
    target_pct: float


def _options(px_per_mm: float | None, sensitivity: float, target_pct: float | None) -> _Options:
    from ..config import get_settings

    if px_per_mm is not None:
        check_px_per_mm(px_per_mm)
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be in [0, 1], got {sensitivity!r}")
    if target_pct is None:
        target_pct = get_settings().target_pct
    if not (math.isfinite(target_pct) and 0 < target_pct <= 100):
        raise ValueError(f"target_pct must be in (0, 100], got {target_pct!r}")
    return _Options(px_per_mm, float(sensitivity), float(target_pct))


@dataclass(frozen=True)
class _Given:
    """What a re-measurement takes from an earlier comparison instead of making it again
    (:func:`remeasure`), and a vein map given for the baseline."""

    registration: Registration | None = None
    baseline_seg: Segmentation | None = None
    followup_seg: Segmentation | None = None
    baseline_labels: np.ndarray | None = None
    frame: AnalysisFrame | None = None
    ppm_given: float | None = None  # in the analysis frame, with ``frame``
    scale_known: bool = False  # whether the photo's scale was known, with ``frame``
    scale_source: str = "estimated"  # "given", "card" or "estimated", with ``frame``
    earlier_map_given: bool = False  # ``measured``'s baseline map was given

    @property
    def map_given(self) -> bool:
        """Whether the baseline's vein map was given, now or to the earlier comparison."""
        return self.baseline_labels is not None or self.earlier_map_given


@dataclass(frozen=True)
class _FrameTasks:
    """The two photos in the analysis frame."""

    b_photo: Task[s.Photo]
    f_photo: Task[s.Photo]
    frame: Task[AnalysisFrame]
    scale_known: Task[bool] | bool
    scale_source: Task[str] | str
    ppm_given: Task[float | None] | float | None
    roi: Task[np.ndarray | None]
    b_rgb: Task[np.ndarray]
    f_rgb: Task[np.ndarray]
    b_card: Task[np.ndarray | None]  # the baseline's calibration card, in the frame
    f_card: Task[np.ndarray | None]  # the follow-up's
    cards: Task[dict[str, Any]]  # what the cards gave, for the params


def _frame_steps(
    g: TaskGraph,
    baseline: s.PhotoInput,
    followup: s.PhotoInput,
    *,
    roi: np.ndarray | None,
    opts: _Options,
    given: _Given,
) -> _FrameTasks:
    """Both photos loaded, their calibration cards read (the baseline's scale, and the
    cards' area kept out of the registration, the leg and the comparison), brought to the
    analysis frame, with the region of interest.

    A card's colour correction is not applied to the photos: measured on an identity pair
    under tungsten light, correcting both photos to the card's printed colours before the
    skin's own colour fit moved the figure by 3.9 points, the skin's fit alone by 0.0 (the
    card's fitted tone curves are not exact enough for vein contrast in optical density).
    The card's colour reading is kept in the params.
    """
    b_photo = g.add("load baseline", s.load, baseline, opts.px_per_mm)
    f_photo = g.add("load follow-up", s.load, followup, None)
    b_reading = g.add("baseline card", s.card_of, b_photo)
    f_reading = g.add("follow-up card", s.card_of, f_photo)
    scale_known: Task[bool] | bool
    source: Task[str] | str
    ppm_given: Task[float | None] | float | None
    if given.frame is None:
        ppm_photo = g.add("photo scale", s.photo_scale, b_photo, opts.px_per_mm, b_reading)
        source = g.add("scale source", s.scale_source, b_photo, opts.px_per_mm, b_reading)
        frame = g.add("analysis frame", s.frame_of, b_photo, f_photo, ppm_photo)
        ppm_given = g.add("given scale", s.scale_in_frame, ppm_photo, frame)
        scale_known = g.add("scale known", s.is_known, ppm_photo)
    else:
        frame = g.add("same frame", s.same_frame, given.frame, b_photo, f_photo)
        ppm_given, scale_known = given.ppm_given, given.scale_known
        source = given.scale_source
    roi_a = g.add("roi", s.roi_in_frame, roi, b_photo, frame)
    b_rgb = g.add("baseline in frame", s.baseline_in_frame, b_photo, frame)
    f_rgb = g.add("follow-up in frame", s.followup_in_frame, f_photo, frame)
    b_card = g.add("baseline card in frame", _card_in_baseline_frame, b_reading, b_photo, frame)
    f_card = g.add("follow-up card in frame", _card_in_followup_frame, f_reading, f_photo, frame)
    cards = g.add("cards", _cards_used, b_reading, f_reading)
    return _FrameTasks(
        b_photo,
        f_photo,
        frame,
        scale_known,
        source,
        ppm_given,
        roi_a,
        b_rgb,
        f_rgb,
        b_card,
        f_card,
        cards,
    )


def _card_in_baseline_frame(
    card: CardReading | None, photo: s.Photo, frame: AnalysisFrame
) -> np.ndarray | None:
    return s.card_in_frame(card, photo, frame.baseline_shape)


def _card_in_followup_frame(
    card: CardReading | None, photo: s.Photo, frame: AnalysisFrame
) -> np.ndarray | None:
    return s.card_in_frame(card, photo, frame.followup_shape)


def _cards_used(b_card: CardReading | None, f_card: CardReading | None) -> dict[str, Any]:
    """Each photo's card: None, or its scale and its colours' CIEDE2000 from the printed
    ones (mean of the patches, before correction: how far the light was from daylight)."""

    def one(card: CardReading | None) -> dict[str, Any] | None:
        if card is None:
            return None
        de = card.delta_e_before_mean
        return {"px_per_mm": card.px_per_mm, "delta_e_mean": None if de is None else float(de)}

    return {"baseline": one(b_card), "followup": one(f_card)}


@dataclass(frozen=True)
class _PhotoTasks:
    """The photos' stage's results that later steps read."""

    fr: _FrameTasks
    ppm: Task[float]
    leg: Task[np.ndarray]
    blurs: Task[s.Blurs]
    b_blurred: Task[np.ndarray | None]
    b_measured: Task[np.ndarray]
    f_measured: Task[np.ndarray]
    q_b: Task[int | None]
    q_f: Task[int | None]
    visits: Task[s.Visits]
    registration: Task[Registration]
    f_skin: Task[SkinMap]  # the follow-up's skin as registered (baseline frame)
    b_scale: Task[PhotoScale]
    b_skin: Task[SkinMap]


def _visit_steps(
    g: TaskGraph, fr: _FrameTasks, *, opts: _Options, cfg: AnalysisConfig, given: _Given
) -> _PhotoTasks:
    """From the two photos in the analysis frame to both visits segmented in it."""
    reg: Task[Registration] | Registration
    # Each photo's skin is found once: the features, the baseline's leg and the
    # confidence all read it.
    b_skin = g.add("baseline skin", s.photo_skin, fr.b_rgb, fr.ppm_given)
    f_own_skin = g.add("follow-up skin", s.photo_skin, fr.f_rgb, None)
    f_skin = g.add(
        "follow-up skin like baseline", s.skin_like_baseline, fr.f_rgb, f_own_skin, b_skin
    )
    b_scale = g.add("baseline scale", s.baseline_scale, fr.ppm_given, b_skin)
    ppm = g.add("scale", s.analysis_scale, b_scale)
    if given.registration is None:
        b_feat = g.add(
            "baseline features", s.baseline_features, fr.b_rgb, fr.roi, fr.b_card, b_skin
        )
        f_feat = g.add("follow-up features", s.followup_features, fr.f_rgb, fr.f_card, f_skin)
        g.announce(b_feat, 0.05, "aligning the follow-up onto the baseline")
    b_prepared = g.add("prepare baseline", s.prepared, fr.b_rgb, cfg)
    leg = g.add("baseline leg", s.baseline_leg, b_prepared, ppm, fr.b_card, b_skin)
    q_b = g.add("baseline JPEG quality", s.jpeg_quality, fr.b_photo, cfg)
    q_f = g.add("follow-up JPEG quality", s.jpeg_quality, fr.f_photo, cfg)
    if given.registration is None:
        aligned = g.add("register", s.registered, b_feat, f_feat, fr.f_rgb)
    else:
        aligned = g.add("registration given", s.same_registration, given.registration, fr.frame)
    reg = g.add("follow-up card unseen", s.card_unseen, aligned, fr.f_card)

    blurs = g.add("matching blurs", s.matching_blurs, reg, cfg)
    b_blurred = g.add("blur baseline", s.baseline_blurred, fr.b_rgb, blurs)
    b_measured = g.add("baseline measured", s.baseline_measured, b_blurred, b_prepared, cfg)
    seg_b = _baseline_segmentation(g, fr, b_measured, leg, b_scale, ppm, opts, given)
    f_measured = g.add("follow-up measured", s.followup_measured, reg, blurs, cfg)
    seg_f: Task[Segmentation] | Segmentation
    if given.followup_seg is None:
        seg_f = g.add(
            "segment follow-up", s.segment_followup, f_measured, leg, reg, ppm, opts.sensitivity
        )
    else:
        seg_f = given.followup_seg
    f_skin_registered = g.add("follow-up skin registered", s.followup_skin, reg, f_skin)
    region = g.add("region", s.compared_region, leg, reg, f_skin_registered, fr.roi, ppm)
    v = g.add("visits", s.visits, reg, seg_b, seg_f, region, ppm)
    return _PhotoTasks(
        fr,
        ppm,
        leg,
        blurs,
        b_blurred,
        b_measured,
        f_measured,
        q_b,
        q_f,
        v,
        reg,
        f_skin_registered,
        b_scale,
        b_skin,
    )


def _baseline_segmentation(
    g: TaskGraph,
    fr: _FrameTasks,
    b_measured: Task[np.ndarray],
    leg: Task[np.ndarray],
    b_scale: Task[PhotoScale],
    ppm: Task[float],
    opts: _Options,
    given: _Given,
) -> Task[Segmentation]:
    """The baseline's veins: segmented, or the given map's, or an earlier comparison's."""
    if given.baseline_labels is not None:
        labels = g.add("baseline map", s.map_for_frame, given.baseline_labels, fr.b_photo, fr.frame)
        seg_b = g.add(
            "baseline of the map", s.segment_map, b_measured, labels, leg, ppm, opts.sensitivity
        )
    elif given.baseline_seg is not None:
        seg_b = g.add("baseline given", s.same_segmentation, given.baseline_seg, fr.frame)
    else:
        seg_b = g.add(
            "segment baseline",
            s.segment_baseline,
            b_measured,
            leg,
            b_scale,
            opts.sensitivity,
        )
    g.announce(seg_b, 0.4, "segmenting both visits")
    return seg_b


@dataclass(frozen=True)
class _ColourTasks:
    equalised: Task[VeinContrast | None]
    normalised: Task[ColourNormalisation]


def _colour_steps(g: TaskGraph, p: _PhotoTasks, cfg: AnalysisConfig) -> _ColourTasks:
    """The follow-up's colour fit onto the baseline, the baseline brought to the
    follow-up's capture (for ``c_b``), and the normalised follow-up (for the warnings)."""
    fit_input = g.add("colour fit input", prepare_colour_fit, p.b_measured, p.f_measured)
    fit = g.add("colour fit", s.colour_fit, p.b_measured, p.f_measured, p.visits, fit_input)
    g.announce(fit, 0.6, "normalising colour")
    eq_rgb = g.add(
        "equalise baseline",
        s.equalised_baseline,
        p.fr.b_photo,
        p.fr.frame,
        p.q_b,
        p.q_f,
        p.blurs,
        fit,
        p.b_blurred,
        cfg,
    )
    g.announce(eq_rgb, 0.7, "equalising the baseline to the follow-up's capture")
    equalised = g.add("equalised contrast", s.equalised_contrast, eq_rgb, p.ppm, p.leg)
    norm = g.add("normalise follow-up", s.normalised, p.b_measured, p.f_measured, fit, p.ppm)
    return _ColourTasks(equalised, norm)


@dataclass(frozen=True)
class _Extras:
    """What the measuring stage reads besides the two visits, when there is more (as
    tasks, or as values)."""

    leg: Task[np.ndarray] | np.ndarray | None
    params: Task[dict[str, Any]] | dict[str, Any]
    equalised: Task[VeinContrast | None] | None = None
    normalised: Task[ColourNormalisation] | None = None
    baseline_measured: Task[np.ndarray] | None = None
    frame: Task[AnalysisFrame] | None = None


def _measure_steps(
    g: TaskGraph,
    v: Task[s.Visits],
    *,
    cfg: AnalysisConfig,
    opts: _Options,
    previous: Sequence[Comparison] | None,
    extras: _Extras,
    map_given: bool,
) -> Task[Comparison]:
    """From the two visits to the comparison (``map_given``: the baseline's vein map was
    given, not segmented)."""
    c_stored = g.add("stored baseline contrast", s.stored_contrast, v)
    zero = g.add("zero point", s.zero_field, v, cfg)
    g.announce(zero, 0.9, "measuring")
    c_f = g.add("follow-up contrast", s.followup_contrast, v, zero)
    min_s = g.add("contrast gate", s.min_contrast, v, c_stored)
    dist_b = g.add("distance to baseline veins", s.baseline_distance, v)
    edge = g.add("distance to leg outline", s.edge_distance, v)
    scale = g.add("supports' scale", s.supports_scale, v)
    tol = g.add("new-vein tolerance", s.new_tolerance, v)
    base_layout = g.add("baseline supports", s.base_layout, v, scale)
    read_at = g.add("pixels read", needed_pixels, base_layout)
    search = g.add("new-vein search", s.new_vein_search, v, dist_b, edge, min_s)
    new_main = g.add("new veins", s.new_veins, search, tol)
    moved = [
        g.add(f"moved new veins {k}", s.moved_new_count, search, base_layout, tol, k)
        for k in range(3)
    ]
    fm = g.add("follow-up figures", s.followup_figures, v, search)
    bm = g.add("baseline figures", s.baseline_figures, v)
    c_b = g.add(
        "ratio baseline contrast",
        s.ratio_baseline_contrast,
        v,
        c_stored,
        extras.equalised,
        zero,
        read_at,
    )
    counted = g.add("counted veins", s.counted_veins, v, c_b)
    core = g.add("band core supports", s.cut_layout, counted, c_b, v, scale)
    lay = g.add("counted supports", s.counted_layout, counted, base_layout, v, scale)
    ratio = g.add("ratio", s.ratio, c_b, c_f, lay, v, new_main)
    est = g.add("estimate", headline_estimate, ratio)
    boot = g.add("bootstrap spread", s.bootstrap, est, counted, v)
    shifted = [g.add(f"shift {k}", s.shift_spread, ratio, est, v, k) for k in range(4)]
    cut = g.add("cut core spread", cut_core_spread, ratio, core, est)
    shifts = g.add("shifts", s.spreads, *shifted)
    moves = g.add("moves", s.spreads, *moved)
    band = g.add("band", s.band, est, boot, shifts, cut, moves, map_given)
    by_class = g.add("by class", s.by_class, est, lay, v)
    table = g.add("vein table", s.table, est, v, counted, previous)
    warnings = g.add(
        "warnings",
        s.all_warnings,
        v,
        extras.leg,
        extras.normalised,
        est,
        counted,
        table,
        extras.baseline_measured,
    )
    head = g.add("headline", s.headline, est, band, by_class)
    figs = g.add("figures", s.figures, bm, fm)
    return g.add(
        "comparison",
        s.comparison,
        v,
        head,
        figs,
        table,
        warnings,
        extras.frame,
        opts.target_pct,
        extras.params,
    )


def _params(
    ppm: float,
    scale_known: bool,
    scale_source: str,
    cards: dict[str, Any],
    roi: np.ndarray | None,
    opts: _Options,
    cfg: AnalysisConfig,
    map_given: bool,
) -> dict[str, Any]:
    """What a comparison stores of how it was made (``Comparison.params``)."""
    return {
        "baseline_map": "given" if map_given else "segmented",
        "sensitivity": opts.sensitivity,
        "px_per_mm": ppm,
        "px_per_mm_given": scale_known,
        "scale_source": scale_source,
        "cards": cards,
        "analysis_px_per_mm": ANALYSIS_PX_PER_MM,
        "roi": roi is not None,
        "ratio_sigma_mm": RATIO_SIGMA_MM,
        "equalise_chroma": cfg.equalise_chroma,
        "new_tolerance_mm": NEW_TOLERANCE_MM,
        "band_k": BAND_K,
        "band_floor_pct": BAND_FLOOR_PCT,
        "band_photo_pct": photo_spread(map_given),
    }
