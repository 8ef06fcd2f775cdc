"""How far a result can be trusted: ``ok``, ``low`` or ``refused``, with plain reasons.

A number is only as good as the photo under it. Each check below looks at one thing the
clinic can act on (the scale, the skin in view, the light, the alignment, the vein map)
and, when it finds a problem, gives a reason in words a clinic user understands. A
reason either lowers the confidence (``"low"``: the number is shown as uncertain, never
bare) or is a note that leaves it ``"ok"`` (say, a scale estimated without a card).
``"refused"`` is for results that were not computed at all (a pair that does not
register); its reason is the refusal's.

This module judges results; it must not segment, register or measure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .scale import MIN_PX_PER_MM, Scale, describe_range, scale_from_skin

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .measure.results import Comparison
    from .skin import SkinMap

__all__ = [
    "Confidence",
    "Reason",
    "combine",
    "for_comparison",
    "low_reasons",
    "notes_of",
    "photo_reasons",
    "light_change_reasons",
    "measurement_reasons",
    "registration_reasons",
    "vein_map_reasons",
]

Level = Literal["ok", "low", "refused"]

#: A photo whose skin covers less than this share of the frame shows little leg.
MIN_SKIN_FRACTION = 0.10
#: Registration quality (0-1) below which an alignment is rough.
MIN_REGISTRATION_QUALITY = 0.5
#: Change of the skin's chroma between the two photos (OD) above which the light changed
#: too much for vein contrast to be compared with confidence. On the photo-like
#: calibration pairs the same skin moved by at most 0.16 between captures under the
#: same kind of light (turned, dimmed, re-framed), and by 0.34 or more when a lamp's
#: cast was added: the threshold lies between.
MAX_LIGHT_CHANGE_OD = 0.25
#: Share of the baseline's skin left out of a comparison because it moved between the
#: photos (a hand placed again) above which the figure speaks for too little of the view.
MAX_MOVED_SHARE = 0.25
#: Agreement (Dice) of the automatic baseline vein map with a reviewed one below which
#: the two maps are unlike each other.
MIN_MAP_AGREEMENT = 0.5
#: Fewest baseline veins the figure may rest on. One vein's remaining share reads within
#: about ±0.3 of its truth on photographs (the camera's processing, the skin's texture
#: and JPEG noise under its pixels), so the mean of n veins is good to about ±30/√n
#: points: under 15 veins, ±8 or worse. Of the 34 treated photo-like calibration pairs,
#: the six figures resting on fewer than 15 veins were off by 5.6-29.3 points (median
#: 17.3), the other 28 by a median of 7.9.
MIN_MEASURED_VEINS = 15
#: Most points of the figure new veins may take before it is low. A new vein rests on
#: the follow-up photo alone: nothing at baseline confirms it, and whatever the
#: follow-up's map took for a vein away from every baseline vein (skin texture, a
#: shaded flank, a vein the baseline's map missed) counts in full against the
#: improvement. On the photo-like calibration pairs, 6 of the 60 new pieces found on 16
#: pairs lay on a true new vein, and the new veins took up to 18 points where the truth
#: had none (see docs/ARCHITECTURE.md).
MAX_NEW_VEINS_PCT = 5.0


@dataclass(frozen=True)
class Reason:
    """One finding: ``lowers`` True when it makes the result low-confidence."""

    code: str
    text: str
    lowers: bool


@dataclass(frozen=True)
class Confidence:
    """The confidence of a result.

    Attributes
    ----------
    level : {"ok", "low", "refused"}
    reasons : tuple of Reason
        What lowered it and the notes, in the order found.
    """

    level: Level
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return self.level == "ok"

    @classmethod
    def refused(cls, text: str, code: str = "refused") -> Confidence:
        return cls("refused", (Reason(code, text, True),))

    def to_dict(self) -> dict[str, Any]:
        """``{"level": ..., "reasons": [text, ...], "codes": [code, ...],
        "notes": [text, ...]}``: ``reasons`` are what lowered the level, ``notes`` the
        rest."""
        return {
            "level": self.level,
            "reasons": [r.text for r in self.reasons if r.lowers],
            "codes": [r.code for r in self.reasons],
            "notes": [r.text for r in self.reasons if not r.lowers],
        }

    def summary(self) -> str:
        """One line: the level and the reasons that lowered it."""
        low = [r.text for r in self.reasons if r.lowers]
        if not low:
            return self.level
        return f"{self.level}: " + " ".join(low)


def combine(*groups: Iterable[Reason], refused: str | None = None) -> Confidence:
    """A :class:`Confidence` from reasons (duplicates by code dropped, first kept)."""
    if refused is not None:
        return Confidence.refused(refused)
    seen: set[str] = set()
    out: list[Reason] = []
    for g in groups:
        for r in g:
            if r.code not in seen:
                seen.add(r.code)
                out.append(r)
    return Confidence("low" if any(r.lowers for r in out) else "ok", tuple(out))


def photo_reasons(
    *,
    scale: Scale,
    skin_fraction: float,
    skin_found: bool,
    cast_od: float = 0.0,
    heavy_cast: bool = False,
    skin_uncertain: bool = False,
    which: str = "photo",
) -> list[Reason]:
    """What a single photo's scale, skin and light say about a measurement on it.

    Parameters
    ----------
    scale : Scale
        The photo's scale (given, card or estimated).
    skin_fraction : float
        Share of the frame that is skin (0-1).
    skin_found : bool
    cast_od : float
        Size of the estimated colour cast (OD chroma).
    heavy_cast : bool
    skin_uncertain : bool
        Whether another surface could be the skin under another light
        (:attr:`~vein_tracker.skin.SkinMap.warmer_rival`).
    which : str
        How to name the photo in the reasons ("baseline photo", "follow-up photo").
    """
    out: list[Reason] = []
    if scale.too_coarse:
        out.append(
            Reason(
                "scale_too_coarse",
                f"The {which} has about {describe_range(scale)}: spider veins (under 1 mm) "
                f"need at least {MIN_PX_PER_MM:g} px/mm. Photograph the area from closer.",
                True,
            )
        )
    if scale.estimated:
        how = "the leg's width" if scale.method == "leg width" else "the frame's size"
        out.append(
            Reason(
                "scale_estimated",
                f"No calibration card and no scale: the {which}'s scale was estimated from "
                f"{how} ({describe_range(scale)}). Put the printed card in the photo for "
                "sizes in millimetres.",
                False,
            )
        )
    if not skin_found:
        out.append(Reason("no_skin", f"No skin was found in the {which}.", True))
    elif skin_fraction < MIN_SKIN_FRACTION:
        out.append(
            Reason(
                "little_skin",
                f"Little skin is in view in the {which} ({100 * skin_fraction:.0f} % of the "
                "frame): frame the treated area so that it fills most of the photo.",
                True,
            )
        )
    if skin_found and skin_uncertain:
        out.append(
            Reason(
                "skin_uncertain",
                f"The skin outlined in the {which} may be the wrong surface: its colours fit "
                "two scenes, this surface under a mild light or a warmer one under a strong "
                "warm lamp. Check the outlined leg, or retake the photo under "
                "daylight-balanced light.",
                True,
            )
        )
    if heavy_cast:
        out.append(
            Reason(
                "heavy_cast",
                f"The {which} has a strong colour cast (about {cast_od:.2f} OD): it was "
                "allowed for, but daylight-balanced light or the printed card makes colours "
                "exact.",
                False,
            )
        )
    return out


def light_change_reasons(
    baseline_skin_chroma: tuple[float, float], followup_skin_chroma: tuple[float, float]
) -> list[Reason]:
    """Whether the light changed too much between the visits.

    The skin of one leg keeps its colour between visits; the light does not always. A
    cast moves every surface's OD chroma alike and the colour fit undoes it on the skin,
    but through a camera's tone curve and JPEG a vein's contrast does not scale back
    exactly, so a strong change of light reads as a change of the veins (tens of points
    on photo-like identity pairs under tungsten or blue LED light). The skin's chroma
    (:attr:`vein_tracker.skin.SkinMap.skin_chroma`) moving by more than
    :data:`MAX_LIGHT_CHANGE_OD` lowers the confidence.
    """
    change = float(
        np.hypot(
            followup_skin_chroma[0] - baseline_skin_chroma[0],
            followup_skin_chroma[1] - baseline_skin_chroma[1],
        )
    )
    if change <= MAX_LIGHT_CHANGE_OD:
        return []
    return [
        Reason(
            "light_changed",
            f"The light changed strongly between the visits (the skin's colour moved by "
            f"{change:.2f} OD): vein contrast under another light is not exactly "
            "comparable. Retake the follow-up under the baseline's light.",
            True,
        )
    ]


def registration_reasons(
    quality: float, ncc_all_skin: float = math.nan, moved_share: float = 0.0
) -> list[Reason]:
    """A rough alignment lowers the confidence, and so does an alignment that holds only
    on the part of the skin its features span (``ncc_all_skin``, the correlation on all
    the skin both photos show, below :data:`~.registration.checks.MIN_NCC`): something
    else in view moved between the photos, and veins under it cannot be compared. A
    smaller part that moved once the leg is aligned (``moved_share`` of the baseline's
    skin, :func:`~.registration.motion.moved_parts`) is left out of the comparison and
    noted; above :data:`MAX_MOVED_SHARE` it lowers the confidence."""
    from .registration.checks import MIN_NCC

    reasons = []
    if quality < MIN_REGISTRATION_QUALITY:
        reasons.append(
            Reason(
                "poor_registration",
                f"The photos align only roughly (quality {quality:.2f} of 1): retake the "
                "follow-up from the baseline's distance and angle.",
                True,
            )
        )
    if ncc_all_skin < MIN_NCC:
        reasons.append(
            Reason(
                "part_changed",
                "Part of the skin in view differs between the photos (a hand, clothing or "
                "the other leg moved?): the leg aligns where the photos agree, but veins "
                "under what moved read as changed. Retake the follow-up with nothing "
                "touching or covering the leg.",
                True,
            )
        )
    elif moved_share > 0.0:
        reasons.append(
            Reason(
                "part_moved",
                f"Part of the view moved between the photos (a hand placed again?): "
                f"{100.0 * moved_share:.0f} % of the skin is left out of the comparison. "
                "Retake the follow-up with nothing touching or covering the leg to "
                "compare all of it.",
                moved_share > MAX_MOVED_SHARE,
            )
        )
    return reasons


def vein_map_reasons(agreement: float | None) -> list[Reason]:
    """A baseline vein map unlike the reviewed one lowers the confidence."""
    if agreement is not None and agreement < MIN_MAP_AGREEMENT:
        return [
            Reason(
                "vein_map_unlike_baseline",
                f"The veins found on the baseline photo agree poorly with its reviewed vein "
                f"map (overlap {agreement:.2f}): check the vein map before relying on the "
                "figure.",
                True,
            )
        ]
    return []


def measurement_reasons(
    improvement_pct: float,
    veins_measured: int | None = None,
    new_veins_pct: float | None = None,
) -> list[Reason]:
    """A comparison without a figure (no baseline vein in the compared area) cannot be
    ok: there is nothing to hold the follow-up against, and the clinic must be told why
    rather than shown an empty number. A figure resting on fewer than
    :data:`MIN_MEASURED_VEINS` baseline veins (``veins_measured``) is low: a few veins'
    readings do not average out. So is a figure whose new veins take more than
    :data:`MAX_NEW_VEINS_PCT` points of it (``new_veins_pct``): they rest on the
    follow-up photo alone."""
    if not math.isfinite(improvement_pct):
        return [
            Reason(
                "no_baseline_veins",
                "No vein was found on the baseline photo in the area compared, so there is "
                "no improvement to measure: check the baseline's vein map (draw the veins "
                "on it) or retake the baseline closer and in focus.",
                True,
            )
        ]
    reasons = []
    if veins_measured is not None and veins_measured < MIN_MEASURED_VEINS:
        reasons.append(
            Reason(
                "few_veins",
                f"The figure rests on {veins_measured} "
                f"{'vein' if veins_measured == 1 else 'veins'} of the baseline only (at "
                f"least {MIN_MEASURED_VEINS} are needed for a figure within a few points): "
                "check the baseline's vein map (draw the veins it missed), or photograph "
                "more of the treated area.",
                True,
            )
        )
    if new_veins_pct is not None and new_veins_pct > MAX_NEW_VEINS_PCT:
        reasons.append(
            Reason(
                "new_veins_weigh",
                f"New veins lower the figure by {new_veins_pct:.0f} points. A new vein "
                "is seen on the follow-up photo only, with nothing at baseline to confirm "
                "it: check the veins marked new on the follow-up before relying on the "
                "figure.",
                True,
            )
        )
    return reasons


def for_comparison(
    comparison: Comparison,
    *,
    followup_skin: SkinMap | None = None,
    baseline_scale: Scale | None = None,
    baseline_skin: SkinMap | None = None,
) -> Confidence:
    """The confidence of a comparison: both photos' scale and skin, the follow-up's light,
    the alignment and whether there was anything to measure.

    The baseline's scale is the comparison's (given, read from a calibration card, or
    estimated from the leg's width or the frame, with its range: ``baseline_scale``, the
    estimate the comparison made, else made again from the baseline's leg); the
    follow-up's skin and cast are ``followup_skin``'s, else found on the follow-up as
    registered (:func:`vein_tracker.skin.find_skin`); with ``baseline_skin`` (the
    baseline's skin as found), a strong change of light between the photos lowers the
    confidence (:func:`light_change_reasons`), and so does a baseline whose skin another
    surface could have been (``skin_uncertain``). The follow-up's skin needs no such
    check: the comparison finds it where the baseline's lies
    (:func:`vein_tracker.measure.steps.skin_like_baseline`).
    """
    from .skin import find_skin

    c = comparison
    ppm = float(c.params.get("px_per_mm", math.nan))
    if c.params.get("scale_source") == "card":
        scale = Scale(ppm, "card", ppm, ppm, "card")
    elif bool(c.params.get("px_per_mm_given", False)) or not math.isfinite(ppm):
        scale = Scale(ppm, "given", ppm, ppm, "given")
    else:
        est = baseline_scale
        if est is None or not est.estimated:
            est = scale_from_skin(np.asarray(c.baseline_seg.leg_mask, bool))
        r = ppm / est.px_per_mm
        scale = Scale(ppm, "estimated", est.low * r, est.high * r, est.method)
    leg_b = np.asarray(c.baseline_seg.leg_mask, bool)
    reg = c.registration
    valid = np.asarray(reg.valid, bool)
    f_skin = find_skin(reg.warped) if followup_skin is None else followup_skin
    f_frac = float((f_skin.mask & valid).sum() / max(int(valid.sum()), 1))
    return combine(
        photo_reasons(
            scale=scale,
            skin_fraction=float(leg_b.mean()),
            skin_found=bool(leg_b.any()),
            skin_uncertain=baseline_skin is not None and baseline_skin.warmer_rival,
            which="baseline photo",
        ),
        photo_reasons(
            scale=Scale(scale.px_per_mm, "given", scale.px_per_mm, scale.px_per_mm, "given"),
            skin_fraction=f_frac,
            skin_found=f_skin.found,
            cast_od=f_skin.cast_od,
            heavy_cast=f_skin.heavy_cast,
            which="follow-up photo",
        ),
        registration_reasons(
            float(reg.quality),
            float(reg.checks.ncc_all_skin),
            float(reg.checks.moved_share),
        ),
        measurement_reasons(float(c.improvement_pct), c.baseline_veins_measured, c.new_veins_pct),
        []
        if baseline_skin is None or not (baseline_skin.found and f_skin.found)
        else light_change_reasons(baseline_skin.skin_chroma, f_skin.skin_chroma),
    )


def low_reasons(result: Mapping[str, Any]) -> tuple[str, ...]:
    """Why a comparison's JSON (``Comparison.to_dict()``, or a stored analysis' result)
    is low-confidence: its reasons, in order; empty when it is ok, or was stored before
    results carried a confidence. The app, the report and the export read this one
    function, so a low-confidence figure is never shown bare anywhere."""
    conf = result.get("confidence")
    if not isinstance(conf, Mapping) or conf.get("level") != "low":
        return ()
    reasons = tuple(str(r) for r in conf.get("reasons") or () if str(r).strip())
    return reasons or ("the photos leave the figure uncertain.",)


def notes_of(result: Mapping[str, Any]) -> tuple[str, ...]:
    """The notes of a comparison's JSON: what was allowed for without lowering the
    confidence (an estimated scale, a strong cast, a part of the view left out because it
    moved), in order; empty when there are none or the result predates them."""
    conf = result.get("confidence")
    if not isinstance(conf, Mapping):
        return ()
    return tuple(str(n) for n in conf.get("notes") or () if str(n).strip())
