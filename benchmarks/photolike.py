"""The product on photo-like phantom pairs: the yardstick for real leg photographs.

Run: ``python benchmarks/photolike.py [--seeds calibration|benchmark] [--quick]
[--groups G ...] [--save DIR] [--no-scale] [--visibility] [--verbose]``.

Every pair is a baseline and a follow-up photo of the same legs from
:func:`vein_tracker.synthetic.photo.make_photo_pair`: one or two legs with hair,
freckles, creases, relief and skin texture partly from a real photograph, on real or
procedural backgrounds, lit with shading, rim light, speculars and cast shadows,
developed like a phone photo (vignetting, chromatic aberration, noise, tone curve,
sharpening, JPEG). Veins are painted in optical density with exact truth. The follow-up
changes pose (rotation, scale, shift, perspective, a slight bend), lights, white balance
and camera; treated pairs also change the veins.

Groups (five pairs each, every skin tone once):

- ``two-leg``: two legs side by side or one crossing the other, veins on both;
- ``hand-foot-floor``: a hand (bare or gloved) holding the leg and placed again at the
  follow-up; standing legs with feet on a floor;
- ``backgrounds``: white studio, wood, tiles, black cloth, couch paper; a watermark;
- ``casts``: the follow-up under tungsten, fluorescent green or LED blue light;
- ``smooth``: smooth, hairless, low-texture skin and a larger pose change;
- ``texture-hair``: close-ups (10-20 px/mm) of dry, hairy, textured skin;
- ``low-res``: whole-leg photos at 2-4.8 px/mm (reported apart; the product should call
  them low-confidence);
- ``identity``: no treatment, only the capture changes (true improvement 0);
- ``treated``: new veins, recanalised veins, staining and bruising, matting, faded veins.

The pairs run through the product's public pipeline as a user would: the two JPEG files
to the measuring ``compare`` (with the true px/mm of the baseline unless ``--no-scale``),
and each photo to ``segmentation.segment`` for the vein maps. Per group and overall
(low resolution apart) it prints: pairs and refusals; improvement error median and max
(points, treated pairs) and the largest identity-pair error (``ident``); the share of
measured pairs whose uncertainty band holds the truth (``cover``) and the bands' median
half-width (``band``, points); vein Dice on the
whole frame and centreline precision and recall (means over both photos of every pair;
a centreline pixel matches within max(1.5 px, 0.25 mm)); leg-outline false positives
(detected vein pixels within 1.5 mm of a skin boundary that are not true veins, more than
max(1 px, 0.25 mm) from one, as % of all detected vein pixels, pooled over the group);
legs found in photos showing two legs (the product's leg mask covers ≥ 80 % of a leg's
visible skin); and the median seconds of ``compare`` per pair. Then the pairs shown without
a low-confidence flag, and each reason that lowered the confidence with the pairs it
flagged and their errors.

With ``--visibility`` each photo is rendered again without its veins (the same skin,
lights and camera noise: :func:`vein_tracker.synthetic.photo.without_veins`), and every
truth vein gets its visible contrast: its mean ΔE2000 on its centreline against that
bare photo. A table then gives, per class and bin of visible contrast, the bin's share of
the truth centreline and the share of it the product's map finds. A ΔE2000 of about 1 is
the least difference a trained eye sees between two flat patches side by side; a thin
line on textured, noisy skin needs more, so veins under 2 are at or below what a rater
sees, and veins from 4 on are plain to see. Dice and centreline recall count every truth
vein, seen or not; a second Dice, per group, counts only the veins a rater can see (2 or
more), and leaves out of the count the detected pixels on a vein no one sees (the way a
reader's "don't care" region is scored).

Calibration seeds are for tuning; benchmark seeds, disjoint, are for reporting.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vein_tracker import measure
from vein_tracker.colour.delta_e import delta_e_pixels
from vein_tracker.errors import VeinTrackerError
from vein_tracker.morphology import skeleton_of, within_distance
from vein_tracker.segmentation import segment
from vein_tracker.synthetic.photo import make_photo_pair, true_improvement_on, without_veins
from vein_tracker.synthetic.photo_render import render_photo

TONES = ("light", "fair", "medium", "olive", "brown")
GROUPS = (
    "two-leg",
    "hand-foot-floor",
    "backgrounds",
    "casts",
    "smooth",
    "texture-hair",
    "low-res",
    "identity",
    "treated",
)
PER_GROUP = 5
SEED_BASE = {"calibration": 10_000, "benchmark": 70_000}
LOW_RES_PPM = 5.0
OUTLINE_MM = 1.5
#: Bins of a truth vein's visible contrast: its mean ΔE2000 on its centreline against the
#: same photo rendered without veins (``--visibility``). Under 2 a vein is at or below
#: what a person sees on skin; from 4 it is plain to see.
VISIBLE_DE = (0.0, 2.0, 4.0, 8.0, math.inf)
#: A truth vein a rater can see: its visible contrast, ΔE2000, is at least this.
SEEN_DE = VISIBLE_DE[1]
_CLASSES = ((1, "spider"), (2, "reticular"))
_SHAPES = ((1500, 2000), (1200, 1600), (1800, 2400), (1500, 2000), (1200, 1600))


def _treatment(rng: np.random.Generator) -> dict[str, Any]:
    cleared = float(rng.uniform(0.3, 0.9))
    return {"cleared_frac": cleared, "faded_frac": min(0.2, 1.0 - cleared)}


def pair_seed(seeds: str, group: str, i: int) -> int:
    """The seed of pair ``i`` of ``group`` in the ``seeds`` set ("calibration" or
    "benchmark"), for every script that draws these pairs."""
    return SEED_BASE[seeds] + 1000 * GROUPS.index(group) + i


def pair_spec(group: str, i: int, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``make_photo_pair`` for pair ``i`` of ``group``."""
    rng = np.random.default_rng([seed, 0xBE7C])
    tone = TONES[(i + GROUPS.index(group)) % len(TONES)]
    shape = _SHAPES[i % len(_SHAPES)]
    kw: dict[str, Any] = {
        "tone": tone,
        "shape": shape,
        "px_per_mm": float(rng.uniform(5.5, 9.0)),
        "layout": "single",
        "bend_mm": float(rng.uniform(0.0, 1.5)),
        "treatment": _treatment(rng),
    }
    if group == "two-leg":
        kw.update(layout=("two", "crossed")[i % 2], px_per_mm=float(rng.uniform(5.0, 7.5)))
    elif group == "hand-foot-floor":
        if i % 2 == 0:
            kw.update(hand=True, treatment={**_treatment(rng), "move_hand_mm": 8.0})
        else:
            kw.update(layout="standing", shape=(1800, 2400), px_per_mm=float(rng.uniform(5.0, 5.8)))
    elif group == "backgrounds":
        backdrop = ("studio-white", "wood", "tiles", "dark", "paper")[i]
        kw.update(backdrop=backdrop, layout=("single", "two")[i % 2], watermark=i in (1, 3))
        if kw["layout"] == "two":
            kw["px_per_mm"] = float(rng.uniform(5.0, 7.0))
    elif group == "casts":
        kw.update(
            cast_followup=("tungsten", "fluorescent", "led-blue", "fluorescent", "tungsten")[i]
        )
        if i == 4:
            kw["cast_baseline"] = "daylight-shade"
        kw["layout"] = ("single", "two", "single", "crossed", "lying")[i]
        if kw["layout"] != "single":
            kw["px_per_mm"] = float(rng.uniform(5.0, 7.0))
    elif group == "smooth":
        kw.update(
            skin="smooth", hair=0.0, pose=1.4, layout=("single", "two", "lying", "single", "two")[i]
        )
        if kw["layout"] != "single":
            kw["px_per_mm"] = float(rng.uniform(5.0, 7.0))
    elif group == "texture-hair":
        kw.update(
            skin="rough",
            hair=float(rng.uniform(1.5, 3.0)),
            px_per_mm=float(rng.uniform(10.0, 20.0)),
        )
    elif group == "low-res":
        layout = ("standing", "two", "lying", "crossed", "standing")[i]
        kw.update(layout=layout, px_per_mm=float(rng.uniform(2.0, 4.8)))
        if layout == "standing":
            kw["shape"] = (2000, 1500) if i == 0 else (2400, 1800)
    elif group == "identity":
        kw.update(
            identity=True, treatment=None, layout=("single", "two", "crossed", "single", "lying")[i]
        )
        kw["cast_followup"] = ("none", "none", "tungsten", "none", "led-blue")[i]
        if kw["layout"] != "single":
            kw["px_per_mm"] = float(rng.uniform(5.0, 7.5))
    elif group == "treated":
        visits: list[Any] = [
            {"cleared_frac": 0.4, "faded_frac": 0.3, "n_new": 3},
            {"cleared_frac": 0.6, "faded_frac": 0.1, "staining": True, "bruising": True},
            [
                {"cleared_frac": 0.5, "faded_frac": 0.3},
                {"cleared_frac": 0.2, "faded_frac": 0.1, "recanalise_n": 3},
            ],
            {"cleared_frac": 0.5, "faded_frac": 0.2, "matting": True},
            {"cleared_frac": 0.2, "faded_frac": 0.6, "fade_to": (0.3, 0.8), "by": "area"},
        ]
        kw.update(treatment=visits[i], layout=("single", "two", "single", "crossed", "single")[i])
        if kw["layout"] != "single":
            kw["px_per_mm"] = float(rng.uniform(5.0, 7.0))
    return kw


@dataclass
class PhotoScore:
    """Segmentation figures of one photo."""

    ppm: float
    dice: float
    cl_precision: float
    cl_recall: float
    outline_fp_pct: float
    outline_fp_px: int
    detected_px: int
    legs: int
    legs_found: int
    # with --visibility only: (class, bin) -> (truth centreline px, of them found), and
    # Dice on the truth veins a rater can see (visible_dice)
    by_visibility: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    dice_seen: float = math.nan


@dataclass
class Result:
    group: str
    seed: int
    tone: str
    layout: str
    ppm: float
    truth: float
    identity: bool
    cast: str
    est: float = math.nan
    refused: str | None = None
    seconds: float = math.nan
    confidence: str | None = None
    low_codes: tuple[str, ...] = ()  # the codes of the reasons that lowered the confidence
    band: tuple[float, float] = (math.nan, math.nan)
    moved_share: float = math.nan  # share of the baseline's skin left out as moved
    # with --visibility: the true improvement on the veins a rater can see (in the
    # baseline for its veins, in the follow-up for the new ones)
    truth_seen: float = math.nan
    photos: list[PhotoScore] = field(default_factory=list)

    @property
    def error(self) -> float:
        return abs(self.est - self.truth)

    @property
    def covered(self) -> bool:
        """Whether the uncertainty band holds the truth."""
        return bool(self.band[0] <= self.truth <= self.band[1])


@dataclass(frozen=True, eq=False)
class Visibility:
    """How plainly each truth vein of a photo shows (:func:`visible_contrast`)."""

    centreline: np.ndarray  # (H, W) float32: the vein's mean ΔE2000 on its centreline, else NaN
    by_vein: dict[int, float]  # vein id -> the same

    def seen(self) -> set[int]:
        """The ids of the veins a rater can see (:data:`SEEN_DE` or more)."""
        return {k for k, de in self.by_vein.items() if de >= SEEN_DE}


def visible_contrast(photo: Any, scene: Any) -> Visibility:
    """Each truth vein's mean ΔE2000 on its centreline against the same capture of
    ``scene`` without veins, on its centreline and by vein id.

    Both photos share the skin, lights and camera noise; only the camera's auto exposure
    meters them a little differently, so the bare photo's channels are first matched to
    the photo's on skin 3 mm or more from any vein. Both are blurred by 0.7 px (JPEG's
    ringing on the edge of a vein is no contrast a person reads as the vein).
    """
    bare = render_photo(without_veins(scene), photo.capture).rgb.astype(np.float32)
    rgb = photo.rgb.astype(np.float32)
    ppm = float(photo.px_per_mm)
    veins = photo.labels > 0
    far = photo.leg_mask & ~within_distance(veins, 3.0 * ppm)
    if np.count_nonzero(far) > 100:
        gain = np.median(rgb[far], axis=0) / np.maximum(np.median(bare[far], axis=0), 1.0)
        bare *= gain.astype(np.float32)[None, None, :]
    centreline = np.full(veins.shape, np.nan, np.float32)
    by_vein: dict[int, float] = {}
    for code, _ in _CLASSES:
        sk = skeleton_of(photo.labels == code)
        if not sk.any():
            continue
        photo_px, bare_px = (
            np.clip(cv2.GaussianBlur(im, (0, 0), 0.7)[sk] / 255.0, 0.0, 1.0) for im in (rgb, bare)
        )
        de = delta_e_pixels(photo_px, bare_px)
        ids, at = np.unique(photo.vein_ids[sk], return_inverse=True)
        mean = np.bincount(at, weights=de) / np.bincount(at)
        centreline[sk] = mean[at]
        by_vein.update(zip(ids.tolist(), mean.tolist(), strict=True))
    return Visibility(centreline, by_vein)


def visible_dice(truth: np.ndarray, pred: np.ndarray, seen_veins: np.ndarray, tol: float) -> float:
    """Dice on the truth veins a rater can see (``seen_veins``, bool, their pixels), with
    the detected pixels within ``tol`` of an unseen truth vein left out of the count:
    finding or missing those is neither right nor wrong."""
    seen = truth & seen_veins
    unseen = truth & ~seen
    judged = pred & ~(within_distance(unseen, tol) & ~seen)
    denom = int(np.count_nonzero(seen)) + int(np.count_nonzero(judged))
    return 2.0 * int(np.count_nonzero(seen & judged)) / denom if denom else math.nan


def score_photo(photo: Any, seg: Any, visible: Visibility | None = None) -> PhotoScore:
    """Whole-frame segmentation figures of one photo against its truth; with ``visible``
    (:func:`visible_contrast`) also the truth centreline found per bin of visible
    contrast."""
    ppm = float(photo.px_per_mm)
    truth = photo.labels > 0
    pred = np.asarray(seg.mask, dtype=bool)
    inter = int(np.count_nonzero(truth & pred))
    denom = int(np.count_nonzero(truth)) + int(np.count_nonzero(pred))
    dice = 2.0 * inter / denom if denom else 1.0
    tol = max(1.5, 0.25 * ppm)
    sk_pred = skeleton_of(pred)
    sk_true = skeleton_of(truth)
    n_sp, n_st = int(sk_pred.sum()), int(sk_true.sum())
    near_truth, near_pred = within_distance(truth, tol), within_distance(pred, tol)
    cl_p = float(np.count_nonzero(sk_pred & near_truth)) / n_sp if n_sp else math.nan
    cl_r = float(np.count_nonzero(sk_true & near_pred)) / n_st if n_st else math.nan
    n_pred = int(np.count_nonzero(pred))
    near_true = within_distance(truth, max(1.0, 0.25 * ppm))
    fp_outline = int(np.count_nonzero(pred & photo.outline_band & ~near_true))
    outline_pct = 100.0 * fp_outline / n_pred if n_pred else 0.0
    leg_mask = np.asarray(seg.leg_mask, dtype=bool)
    frame = photo.labels.size
    legs = [m for m in photo.skin_masks if np.count_nonzero(m) >= 0.01 * frame]
    found = sum(1 for m in legs if np.count_nonzero(m & leg_mask) >= 0.8 * np.count_nonzero(m))
    score = PhotoScore(ppm, dice, cl_p, cl_r, outline_pct, fp_outline, n_pred, len(legs), found)
    if visible is not None:
        seen_veins = np.isin(photo.vein_ids, list(visible.seen()))
        score.dice_seen = visible_dice(truth, pred, seen_veins, tol)
        for code, name in _CLASSES:
            sk = np.isfinite(visible.centreline) & (photo.labels == code)  # the centreline
            bins = np.digitize(visible.centreline[sk], VISIBLE_DE[1:-1])
            hit_sk = near_pred[sk]
            for b in range(len(VISIBLE_DE) - 1):
                at = bins == b
                score.by_visibility[(name, b)] = (
                    int(np.count_nonzero(at)),
                    int(np.count_nonzero(hit_sk[at])),
                )
    return score


def _confidence(c: Any) -> tuple[str | None, tuple[str, ...]]:
    """The comparison's confidence level and the codes of the reasons that lowered it."""
    conf = c.confidence
    if conf is None:
        return None, ()
    return str(conf.level), tuple(r.code for r in conf.reasons if r.lowers)


def run_pair(
    group: str, i: int, seed: int, *, give_scale: bool, save: Path | None, visibility: bool = False
) -> Result:
    kw = pair_spec(group, i, seed)
    pair = make_photo_pair(seed, **kw)
    b, f = pair.baseline, pair.followup
    ppm = float(b.px_per_mm)
    res = Result(
        group=group,
        seed=seed,
        tone=str(kw["tone"]),
        layout=str(kw["layout"]),
        ppm=ppm,
        truth=float(pair.true_improvement_pct),
        identity=pair.identity,
        cast=str(kw.get("cast_followup", "none")),
    )
    assert b.jpeg is not None
    assert f.jpeg is not None
    t0 = time.perf_counter()
    comparison = None
    try:
        comparison = measure.compare(b.jpeg, f.jpeg, px_per_mm=ppm if give_scale else None)
        res.est = float(comparison.improvement_pct)
        res.confidence, res.low_codes = _confidence(comparison)
        lo, hi = comparison.improvement_band_pct
        res.band = (float(lo), float(hi))
        res.moved_share = float(comparison.registration.checks.moved_share)
    except VeinTrackerError as exc:
        res.refused = str(exc)
    res.seconds = time.perf_counter() - t0
    segs, seen = [], []
    for photo, scene in ((b, pair.baseline_scene), (f, pair.followup_scene)):
        seg = segment(photo.rgb, px_per_mm=float(photo.px_per_mm) if give_scale else None)
        segs.append(seg)
        visible = visible_contrast(photo, scene) if visibility else None
        if visible is not None:
            seen.append(visible.seen())
        res.photos.append(score_photo(photo, seg, visible))
    if seen:
        res.truth_seen = true_improvement_on(pair, *seen)
    if save is not None:
        _save(save, group, i, pair, segs, res)
    return res


def _save(root: Path, group: str, i: int, pair: Any, segs: list[Any], res: Result) -> None:
    """Baseline and follow-up photos and overlays: truth veins green, the product's vein
    map magenta, the leg-outline band yellow, each photo's product leg mask outlined."""
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{group}_{i}_{res.tone}"
    for name, photo, seg in (
        ("baseline", pair.baseline, segs[0]),
        ("followup", pair.followup, segs[1]),
    ):
        (root / f"{stem}_{name}.jpg").write_bytes(photo.jpeg)
        ov = photo.rgb.copy()
        band = photo.outline_band
        ov[band] = (ov[band] * 0.6 + np.array([255, 255, 0]) * 0.4).astype(np.uint8)
        ov[photo.labels > 0] = (0, 220, 0)
        ov[np.asarray(seg.mask, bool)] = (255, 0, 255)
        both = (photo.labels > 0) & np.asarray(seg.mask, bool)
        ov[both] = (255, 255, 255)
        edge = cv2.morphologyEx(
            np.asarray(seg.leg_mask, np.uint8), cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)
        )
        ov[edge > 0] = (0, 160, 255)
        scale = 1600 / max(ov.shape[:2])
        small = (
            cv2.resize(ov, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if scale < 1
            else ov
        )
        cv2.imwrite(
            str(root / f"{stem}_{name}_overlay.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        )


def _f(v: float, nd: int = 2) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{nd}f}"


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if math.isfinite(v)]
    return statistics.fmean(vals) if vals else math.nan


def _med(vals: list[float]) -> float:
    vals = [v for v in vals if math.isfinite(v)]
    return statistics.median(vals) if vals else math.nan


def median_max(vals: list[float]) -> str:
    """The finite ``vals``' median and largest as one 16-character cell ("-": none), as
    the breakdown scripts (``map_extent.py``, ``capture_ablation.py``) print them."""
    finite = [v for v in vals if math.isfinite(v)]
    return f"{_med(finite):>7.2f}/{max(finite):<8.2f}" if finite else f"{'-':>16}"


def _cover(measured: list[Result]) -> str:
    """The share of ``measured`` pairs whose band holds the truth, as a percentage."""
    if not measured:
        return "-"
    return f"{100.0 * sum(r.covered for r in measured) / len(measured):.0f}%"


def table(results: list[Result], title: str, rows: list[tuple[str, list[Result]]]) -> str:
    head = (
        f"{'group':<16} {'n':>2} {'refused':>7} {'med|err|':>8} {'max|err|':>8} {'ident':>6} "
        f"{'cover':>5} {'band':>5} {'Dice':>5} {'CL-P':>5} {'CL-R':>5} {'outlFP%':>7} "
        f"{'legs':>6} {'s/pair':>6}"
    )
    lines = [title, head, "-" * len(head)]
    for name, rs in rows:
        if not rs:
            continue
        ok = [r for r in rs if r.refused is None]
        treated_err = [r.error for r in ok if not r.identity]
        ident = [r.error for r in ok if r.identity]
        photos = [p for r in rs for p in r.photos]
        two = [p for p in photos if p.legs >= 2]
        legs = f"{sum(p.legs_found for p in two)}/{sum(p.legs for p in two)}" if two else "-"
        lines.append(
            f"{name:<16} {len(rs):>2} {len(rs) - len(ok):>7} "
            f"{_f(_med(treated_err)):>8} {_f(max(treated_err, default=math.nan)):>8} "
            f"{_f(max(ident, default=math.nan)):>6} "
            f"{_cover(ok):>5} {_f(_med([(r.band[1] - r.band[0]) / 2 for r in ok]), 1):>5} "
            f"{_f(_mean([p.dice for p in photos])):>5} "
            f"{_f(_mean([p.cl_precision for p in photos])):>5} "
            f"{_f(_mean([p.cl_recall for p in photos])):>5} "
            f"{_f(_outline_fp_pct(rs), 1):>7} "
            f"{legs:>6} {_f(_med([r.seconds for r in rs]), 1):>6}"
        )
    return "\n".join(lines)


def visibility_table(results: list[Result]) -> str:
    """Truth centreline by its vein's visible contrast: each bin's share of the class's
    truth and the share of it the product's map finds (pooled over both photos)."""
    photos = [p for r in results for p in r.photos if p.by_visibility]
    if not photos:
        return ""
    lines = [
        "Truth centreline by visible contrast (mean dE2000 of each vein on its centreline "
        "against the photo without veins), both photos pooled",
        f"{'class':<10} {'dE2000':<8} {'share':>6} {'recall':>6} {'px':>8}",
    ]
    for _, name in _CLASSES:
        counts = [
            (
                sum(p.by_visibility[(name, b)][0] for p in photos),
                sum(p.by_visibility[(name, b)][1] for p in photos),
            )
            for b in range(len(VISIBLE_DE) - 1)
        ]
        total = sum(n for n, _ in counts)
        for b, (n, hit) in enumerate(counts):
            lo, hi = VISIBLE_DE[b], VISIBLE_DE[b + 1]
            span = f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}"
            lines.append(
                f"{name:<10} {span:<8} {_f(n / total if total else math.nan):>6} "
                f"{_f(hit / n if n else math.nan):>6} {n:>8}"
            )
    lines += [
        "",
        "Against every truth vein (all) and against the veins a rater can see (seen: "
        f"dE2000 >= {SEEN_DE:g}; for Dice, detections within the centreline tolerance of an "
        "unseen vein are not counted; for the improvement, the truth's formula on the seen "
        "baseline veins and the seen new veins); Dice is the mean over both photos, the "
        "error the median/max over the treated pairs",
        f"{'group':<16} {'Dice':>6} {'seen':>6} {'error, all':>16} {'error, seen':>16}",
    ]
    groups = [(g, [r for r in results if r.group == g]) for g in GROUPS]
    for name, rs in [*groups, ("overall", results)]:
        ps = [p for r in rs for p in r.photos if p.by_visibility]
        if not ps:
            continue
        treated = [r for r in rs if r.refused is None and not r.identity]
        lines.append(
            f"{name:<16} {_f(_mean([p.dice for p in ps])):>6} "
            f"{_f(_mean([p.dice_seen for p in ps])):>6} "
            f"{median_max([r.error for r in treated])} "
            f"{median_max([abs(r.est - r.truth_seen) for r in treated])}"
        )
    return "\n".join(lines)


def _flagged_by(results: list[Result]) -> str:
    """Which reasons lowered the confidence, each with the pairs it flagged and their
    median / largest error (treated pairs) or largest |estimate| (identity pairs)."""
    codes = sorted({c for r in results for c in r.low_codes})
    if not codes:
        return "low-confidence reasons: none"
    parts = []
    for code in codes:
        rs = [r for r in results if code in r.low_codes]
        err = median_max([r.error for r in rs if not r.identity]).strip()
        ident = [r.error for r in rs if r.identity and math.isfinite(r.error)]
        parts.append(f"{code} {len(rs)} (error {err}, identity {_f(max(ident, default=math.nan))})")
    return "low-confidence reasons (pairs flagged): " + "; ".join(parts)


def _outline_fp_pct(results: list[Result]) -> float:
    """The leg-outline false positives of all the photos of ``results``, pooled, as a
    percentage of their detected vein pixels (the table's ``outlFP%``)."""
    photos = [p for r in results for p in r.photos]
    det = sum(p.detected_px for p in photos)
    return 100.0 * sum(p.outline_fp_px for p in photos) / det if det else math.nan


def summary(results: list[Result]) -> str:
    main = [r for r in results if r.ppm >= LOW_RES_PPM]
    low = [r for r in results if r.ppm < LOW_RES_PPM]
    groups = [(g, [r for r in main if r.group == g]) for g in GROUPS]
    out = [
        table(main, f"Photo-like pairs at >= {LOW_RES_PPM:g} px/mm", [*groups, ("overall", main)])
    ]
    cast = [r for r in results if r.cast != "none"]
    ok = [r for r in main if r.refused is None]
    ident = [r.error for r in ok if r.identity]
    err = [r.error for r in ok if not r.identity]
    out.append(
        f"overall: improvement error median {_f(_med(err))}, max {_f(max(err, default=math.nan))} "
        f"points (treated pairs); identity |est| max {_f(max(ident, default=math.nan))}; "
        f"refused {sum(r.refused is not None for r in results)}/{len(results)} same-leg pairs, "
        f"{sum(r.refused is not None for r in cast)}/{len(cast)} under a colour cast; "
        f"leg-outline false positives {_outline_fp_pct(main):.2f} % of the vein map"
    )
    # What a clinic sees as a plain figure: the pairs not flagged low-confidence.
    shown = [r for r in ok if r.confidence is None or r.confidence.lower() == "ok"]
    s_ident = [r.error for r in shown if r.identity]
    s_err = [r.error for r in shown if not r.identity]
    out.append(
        f"shown without a low-confidence flag: {len(shown)}/{len(ok)} pairs; improvement "
        f"error median {_f(_med(s_err))}, max {_f(max(s_err, default=math.nan))} points "
        f"(treated); identity |est| max {_f(max(s_ident, default=math.nan))}"
    )
    out.append(_flagged_by(ok))
    if low:
        out.append("")
        out.append(
            table(
                low, f"Low resolution (< {LOW_RES_PPM:g} px/mm), reported apart", [("low-res", low)]
            )
        )
        confs = [r.confidence for r in low if r.refused is None]
        if confs and all(c is None for c in confs):
            flagged = "n/a (the result exposes no confidence)"
        else:
            flagged = f"{sum(c is not None and c.lower() != 'ok' for c in confs)}/{len(confs)}"
        out.append(f"low-resolution pairs flagged low-confidence: {flagged}")
    vis = visibility_table(main)
    if vis:
        out += ["", vis]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", choices=sorted(SEED_BASE), default="benchmark")
    ap.add_argument("--groups", nargs="*", default=list(GROUPS), choices=GROUPS)
    ap.add_argument("--per-group", type=int, default=PER_GROUP)
    ap.add_argument("--quick", action="store_true", help="one pair of three groups (smoke run)")
    ap.add_argument("--save", type=Path, default=None, help="write photos and overlays here")
    ap.add_argument("--no-scale", action="store_true", help="do not give the true px/mm")
    ap.add_argument(
        "--visibility",
        action="store_true",
        help="also the truth found per bin of visible contrast (renders each photo again "
        "without its veins)",
    )
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    plan = [(g, i) for g in a.groups for i in range(min(a.per_group, PER_GROUP))]
    if a.quick:
        plan = [("two-leg", 0), ("casts", 1), ("identity", 0)]
    results: list[Result] = []
    t_start = time.perf_counter()
    c_start = time.process_time()
    for g, i in plan:
        seed = pair_seed(a.seeds, g, i)
        r = run_pair(g, i, seed, give_scale=not a.no_scale, save=a.save, visibility=a.visibility)
        results.append(r)
        if a.verbose:
            ph = r.photos
            print(
                f"  {g:<15} {i} seed {seed} {r.tone:<6} {r.layout:<8} {r.ppm:5.1f} px/mm "
                f"cast {r.cast:<11} truth {r.truth:6.1f} seen {r.truth_seen:6.1f} "
                f"est {r.est:6.1f} "
                f"Dice {ph[0].dice:.2f}/{ph[1].dice:.2f} outlFP {ph[0].outline_fp_pct:.0f}% "
                f"legs {ph[0].legs_found}/{ph[0].legs} moved {100 * r.moved_share:.0f}% "
                f"{r.seconds:.1f}s conf {r.confidence} {r.refused or ''}",
                flush=True,
            )
    wall = time.perf_counter() - t_start
    cpu = time.process_time() - c_start
    n = max(len(results), 1)
    print(
        f"\n{len(results)} photo-like pairs, {a.seeds} seeds, "
        f"scale {'not ' if a.no_scale else ''}given; {wall:.0f} s wall, {cpu:.0f} s CPU in all "
        f"({wall / n:.1f} s wall, {cpu / n:.1f} s CPU per pair with rendering and scoring)"
    )
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
