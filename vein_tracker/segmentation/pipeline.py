""":func:`segment`, step by step: the photo's scale and calibration card, its contrast
maps, the classes' centrelines and footprints at the working level, then everything
brought to the photo's size and cut to the region of interest.

Holds the order of the steps; each step's method lives in its own module.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..card import read_card
from ..checks import PX_PER_MM_RANGE, check_mask, check_px_per_mm
from ..confidence import Confidence, combine, photo_reasons
from ..io import Photo, as_rgb
from ..scale import Scale, resolve_scale
from ..skin import SkinMap
from .footprint import _labels_at_work, _upsample_skeleton
from .levels import _resize
from .params import RETICULAR, SPIDER
from .results import Segmentation, VeinContrast
from .ridges import _centrelines
from .signals import _compute_maps, _contrast_full, _Maps
from .veins import _vein_objects


def segment(
    photo: Photo | np.ndarray,
    *,
    px_per_mm: float | Scale | None = None,
    roi: np.ndarray | None = None,
    leg_mask: np.ndarray | None = None,
    sensitivity: float = 0.5,
) -> Segmentation:
    """Segment spider and reticular veins in an upright leg photo.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    px_per_mm : float or Scale, optional
        Scale in pixels per millimetre. Default: ``photo.px_per_mm`` when known, else
        estimated with :func:`~vein_tracker.segmentation.estimate_px_per_mm`
        (``px_per_mm_estimated=True``). A :class:`~vein_tracker.scale.Scale` is a scale
        the caller has already resolved (given or estimated), used as it is.
    roi : ndarray, shape (H, W), bool, optional
        Region of interest; vein pixels outside it are not reported.
    leg_mask : ndarray, shape (H, W), bool, optional
        Leg skin; estimated from colour when not given. Backdrop never counts. Given with
        ``px_per_mm``, it is searched as given: no calibration card is looked for (leave
        a card out of the mask).
    sensitivity : float in [0, 1]
        0.5 is right for all photos; higher finds fainter veins (and more false ones),
        lower only the clearest.

    Returns
    -------
    Segmentation

    Raises
    ------
    ValueError
        Bad ``sensitivity``, ``px_per_mm``, or mask shape/dtype.
    """
    rgb = as_rgb(photo)
    sens = _check_sensitivity(sensitivity)
    if px_per_mm is not None:
        check_px_per_mm(px_per_mm.px_per_mm if isinstance(px_per_mm, Scale) else px_per_mm)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    roi_m = None if roi is None else check_mask(roi, shape=shape, name="roi")
    lm = None if leg_mask is None else check_mask(leg_mask, shape=shape, name="leg_mask")
    scale, card_mask = _scale_and_card(
        photo, rgb, px_per_mm, look_for_card=lm is None or px_per_mm is None
    )
    if lm is not None and card_mask is not None:
        lm = lm & ~card_mask
    ppm = float(np.clip(scale.px_per_mm, *PX_PER_MM_RANGE))

    maps = _compute_maps(rgb, ppm, lm, card_mask)
    roi_w, roi_h = _roi_at_levels(roi_m, maps)
    labels_w, skel_w, contrast = _classes_at_work(maps, sens, roi_w, roi_h, shape, ppm)

    labels, skeleton = _labels_at_photo(labels_w, skel_w, shape)
    leg = contrast.leg_mask
    # At the working size ``labels`` and ``skeleton`` are ``labels_w`` and ``skel_w``
    # themselves: the cut to the roi applies to both, before the strength and the veins.
    if roi_m is not None:
        labels[~roi_m] = 0
        leg = leg & roi_m
    mask = labels > 0
    skeleton &= mask
    rt_w = _reticular_at_work(maps)
    strength = _strength(maps, labels_w, rt_w, shape, roi_m, leg)
    neutral = _neutral(maps, shape, roi_m, leg)
    vein_ids, veins = _vein_objects(labels_w, skel_w, maps, rt_w, shape)
    return Segmentation(
        mask=mask,
        labels=labels,
        strength=strength,
        skeleton=skeleton,
        vein_ids=vein_ids,
        veins=veins,
        px_per_mm=ppm,
        px_per_mm_estimated=scale.estimated,
        leg_mask=leg,
        sensitivity=sens,
        contrast=contrast,
        neutral=neutral,
        scale=scale,
        skin=maps.skin,
        confidence=_confidence(scale, maps.skin, leg),
    )


def _check_sensitivity(sensitivity: float) -> float:
    """``sensitivity`` as a float, or ``ValueError`` when it is not a number in [0, 1]."""
    if (
        isinstance(sensitivity, bool)
        or not isinstance(sensitivity, int | float | np.floating)
        or not 0.0 <= float(sensitivity) <= 1.0
    ):
        raise ValueError(f"sensitivity must be a number in [0, 1], got {sensitivity!r}")
    return float(sensitivity)


def _scale_and_card(
    photo: Photo | np.ndarray,
    rgb: np.ndarray,
    px_per_mm: float | Scale | None,
    *,
    look_for_card: bool,
) -> tuple[Scale, np.ndarray | None]:
    """The scale used, and the mask (H, W) bool of a calibration card in the photo.

    A printed calibration card gives the scale (unless one is given) and is no skin: its
    edges and colour patches are never veins. With the caller's leg and scale
    (``look_for_card=False``) there is nothing to read from a card.
    """
    card = read_card(rgb) if look_for_card else None
    card_mask = None if card is None else card.mask((int(rgb.shape[0]), int(rgb.shape[1])))
    if isinstance(px_per_mm, Scale):
        return px_per_mm, card_mask
    scale = resolve_scale(
        photo, px_per_mm=px_per_mm, card_px_per_mm=None if card is None else card.px_per_mm
    )
    return scale, card_mask


def _roi_at_levels(roi: np.ndarray | None, maps: _Maps) -> tuple[np.ndarray, np.ndarray]:
    """The region of interest at the working level L0 and the half level L1 (all of the
    frame when none is given)."""
    work_shape = maps.leg.shape
    if roi is None:
        return np.ones(work_shape, bool), np.ones(maps.leg_half.shape, bool)
    roi_u8 = roi.astype(np.uint8) * 255
    roi_w = _resize(roi_u8, (work_shape[1], work_shape[0])) >= 128
    roi_h = _resize(roi_u8, (maps.leg_half.shape[1], maps.leg_half.shape[0])) >= 128
    return roi_w, roi_h


def _classes_at_work(
    maps: _Maps,
    sens: float,
    roi_w: np.ndarray,
    roi_h: np.ndarray,
    shape: tuple[int, int],
    ppm: float,
) -> tuple[np.ndarray, np.ndarray, VeinContrast]:
    """Class labels and skeleton at the working level L0, and the contrast maps at the
    photo's ``shape``."""
    # The classes' ridges, and the contrast maps, in a second thread while this one
    # works (OpenCV and NumPy release the GIL; the same results as one after the other).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment") as pool:
        retic_job = pool.submit(_centrelines, maps, RETICULAR, sens, roi_h)
        spider_lines = _centrelines(maps, SPIDER, sens, roi_h)
        lines = {SPIDER: spider_lines, RETICULAR: retic_job.result()}
        contrast_job = pool.submit(_contrast_full, maps.spider, maps.half, maps.leg, shape, ppm)
        labels_w, skel_w = _labels_at_work(maps, lines, maps.leg & roi_w, maps.leg_half & roi_h)
        contrast = contrast_job.result()
    return labels_w, skel_w, contrast


def _labels_at_photo(
    labels_w: np.ndarray, skel_w: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and skeleton of the working level at the photo's ``shape`` (the same arrays
    when the photo is at the working size)."""
    size = (shape[1], shape[0])
    if (labels_w.shape[1], labels_w.shape[0]) == size:
        return labels_w, skel_w
    # Upsample class by class through a linear blend, so edges stay sub-pixel; the
    # redrawn centrelines stay inside their veins.
    labels = np.zeros(shape, np.uint8)
    skeleton = np.zeros(shape, bool)
    for code in (RETICULAR, SPIDER):
        up = _resize((labels_w == code).astype(np.uint8) * 255, size, cv2.INTER_LINEAR)
        sk = _upsample_skeleton(skel_w & (labels_w == code), shape)
        labels[(up >= 128) | sk] = code
        skeleton |= sk
    skeleton &= labels > 0
    return labels, skeleton


def _reticular_at_work(maps: _Maps) -> np.ndarray:
    """The reticular contrast at the working level L0, 0 off the leg."""
    work_size = (maps.leg.shape[1], maps.leg.shape[0])
    rt_w = _resize(np.ascontiguousarray(maps.half[..., 1]), work_size, cv2.INTER_LINEAR)
    return np.where(maps.leg, rt_w, np.float32(0.0))


def _strength(
    maps: _Maps,
    labels_w: np.ndarray,
    rt_w: np.ndarray,
    shape: tuple[int, int],
    roi: np.ndarray | None,
    leg: np.ndarray,
) -> np.ndarray:
    """Each pixel's class contrast (:attr:`~.results.Segmentation.strength`) at the
    photo's ``shape``."""
    # Class contrast at the working level (one upsampling instead of three passes at a
    # 12 MP photo's full size).
    work_size = (maps.leg.shape[1], maps.leg.shape[0])
    size = (shape[1], shape[0])
    strength_w = np.maximum(maps.spider, rt_w)
    np.copyto(strength_w, maps.spider, where=labels_w == SPIDER)
    np.copyto(strength_w, rt_w, where=labels_w == RETICULAR)
    strength = _resize(strength_w, size, cv2.INTER_LINEAR) if work_size != size else strength_w
    if roi is not None:
        strength[~leg] = 0.0
    return strength


def _neutral(
    maps: _Maps, shape: tuple[int, int], roi: np.ndarray | None, leg: np.ndarray
) -> np.ndarray:
    """The neutral contrast (:attr:`~.results.Segmentation.neutral`) at the photo's ``shape``."""
    work_size = (maps.leg.shape[1], maps.leg.shape[0])
    size = (shape[1], shape[0])
    neutral_w = np.where(maps.leg, maps.neutral, np.float32(0.0))
    neutral = _resize(neutral_w, size, cv2.INTER_LINEAR) if work_size != size else neutral_w
    if roi is not None:
        neutral[~leg] = 0.0
    return neutral


def _confidence(scale: Scale, skin: SkinMap | None, leg: np.ndarray) -> Confidence:
    """The segmentation's confidence: its scale, the skin in view and the light."""
    if skin is None:  # the caller gave the leg
        return combine(
            photo_reasons(scale=scale, skin_fraction=float(leg.mean()), skin_found=bool(leg.any()))
        )
    return combine(
        photo_reasons(
            scale=scale,
            skin_fraction=float(leg.mean()),
            skin_found=skin.found,
            cast_od=skin.cast_od,
            heavy_cast=skin.heavy_cast,
            skin_uncertain=skin.warmer_rival,
        )
    )
