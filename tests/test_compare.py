"""compare() end to end on phantom pairs with known truth: smaller versions of the
benchmark's targets (benchmarks/improvement.py), at 800 x 600."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest

from vein_tracker import synthetic as syn
from vein_tracker.confidence import MAX_NEW_VEINS_PCT, MIN_MEASURED_VEINS
from vein_tracker.errors import RegistrationError
from vein_tracker.io import photo_from_array
from vein_tracker.measure import (
    CHANGE_NEW,
    CHANGE_RECANALISED,
    AnalysisConfig,
    Comparison,
    compare,
    grade_for,
    remeasure,
)
from vein_tracker.measure.band import (
    BAND_FLOOR_PCT,
    BAND_K,
    PHOTO_SPREAD_GIVEN_MAP_PCT,
    PHOTO_SPREAD_PCT,
)
from vein_tracker.morphology import distance_to

PH_SHAPE = (600, 800)


def _run(pair: Any, **kwargs: Any) -> Comparison:
    ppm = float(pair.baseline.px_per_mm)
    return compare(
        photo_from_array(pair.baseline.rgb, px_per_mm=ppm),
        photo_from_array(pair.followup.rgb),
        px_per_mm=ppm,
        **kwargs,
    )


def test_compare_identity_pair_reads_no_improvement() -> None:
    """No treatment, recaptured with another pose and light: the change must not show."""
    pair = syn.make_pair(21, shape=PH_SHAPE, tone="medium", cleared_frac=0.0, faded_frac=0.0)
    assert pair.true_improvement_pct == pytest.approx(0.0, abs=1e-9)
    c = _run(pair)
    assert abs(c.improvement_pct) <= 2.0
    lo, hi = c.improvement_band_pct
    assert lo <= 0.0 <= hi
    assert c.vein_counts["cleared"] == 0
    assert c.vein_counts["persisting"] >= 1


def test_compare_standard_pair_close_to_truth() -> None:
    pair = syn.make_pair(22, shape=PH_SHAPE, tone="light", cleared_frac=0.7, faded_frac=0.2)
    c = _run(pair)
    assert abs(c.improvement_pct - pair.true_improvement_pct) <= 6.0
    lo, hi = c.improvement_band_pct
    assert lo <= pair.true_improvement_pct <= hi
    assert c.vein_counts["cleared"] >= 1
    assert c.grade == grade_for(c.improvement_pct)
    assert c.change_map.shape == PH_SHAPE
    assert c.followup_seg.mask.shape == PH_SHAPE  # follow-up measured in the baseline frame


def test_compare_ignores_staining_and_bruising() -> None:
    pair = syn.make_pair(
        23,
        shape=PH_SHAPE,
        tone="fair",
        cleared_frac=0.7,
        faded_frac=0.1,
        staining=True,
        bruising=True,
    )
    c = _run(pair)
    assert abs(c.improvement_pct - pair.true_improvement_pct) <= 6.0


@pytest.fixture(scope="module")
def new_vein_pair() -> tuple[syn.PhantomPair, Any, Any, Comparison]:
    """Three new veins at the follow-up: the pair, its two photos and the comparison."""
    pair = syn.make_pair(24, shape=PH_SHAPE, tone="olive", cleared_frac=0.6, n_new=3)
    ppm = float(pair.baseline.px_per_mm)
    b = photo_from_array(pair.baseline.rgb, px_per_mm=ppm)
    f = photo_from_array(pair.followup.rgb)
    return pair, b, f, compare(b, f, px_per_mm=ppm)


def test_compare_new_veins_count_against_improvement(
    new_vein_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    pair, _, _, c = new_vein_pair
    assert abs(c.improvement_pct - pair.true_improvement_pct) <= 6.0
    assert c.vein_counts["new"] >= 1
    # the points the new veins take are the formula's |N| / |B| term: the figure is the
    # baseline veins' improvement less them
    base = [v for v in c.veins if v.status != "new"]
    kept = sum(v.remaining * v.area_mm2 for v in base) / sum(v.area_mm2 for v in base)
    assert 0.0 < c.new_veins_pct < MAX_NEW_VEINS_PCT
    assert c.improvement_pct == pytest.approx(100.0 * (1.0 - kept) - c.new_veins_pct, abs=0.05)
    assert c.confidence is not None
    assert "new_veins_weigh" not in c.confidence.to_dict()["codes"]


@pytest.fixture(scope="module")
def faded_pair() -> tuple[syn.PhantomPair, Comparison]:
    """Brown skin, most treated veins faded to half their contrast."""
    pair = syn.make_pair(
        25, shape=PH_SHAPE, tone="brown", cleared_frac=0.1, faded_frac=0.7, fade_to=0.5
    )
    return pair, _run(pair)


@pytest.mark.slow
def test_compare_faded_to_half_reads_the_fade(
    faded_pair: tuple[syn.PhantomPair, Comparison],
) -> None:
    pair, c = faded_pair
    faded = [v for v in c.veins if v.status == "faded"]
    assert faded
    assert statistics.median(v.faded_pct for v in faded) == pytest.approx(50.0, abs=15.0)
    lo, hi = c.improvement_band_pct
    assert lo <= pair.true_improvement_pct <= hi


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="open: at 800x600 on brown skin this faded pair reads 7.9 points above the truth "
    "(50.9 against 43.1), past the 6 points asked here; the issue sets no tolerance for faded "
    "pairs, and the 2000x1500 benchmark's faded group reads 1.95 median, 6.94 max. Its faded "
    "veins read a little more faded than they are (median 55 % for a fade to 50 %)",
)
def test_compare_faded_to_half_within_6_points(
    faded_pair: tuple[syn.PhantomPair, Comparison],
) -> None:
    pair, c = faded_pair
    assert abs(c.improvement_pct - pair.true_improvement_pct) <= 6.0


@pytest.mark.slow
def test_compare_nonrigid_bend_within_the_issue_target() -> None:
    """A mild non-rigid bend (the issue: maximum error <= 8 points): 7.2 points here."""
    bent = syn.make_pair(
        26,
        shape=PH_SHAPE,
        tone="light",
        cleared_frac=0.6,
        capture=syn.random_capture(26, shape=PH_SHAPE, bend_px=6.0),
    )
    cb = _run(bent)
    assert abs(cb.improvement_pct - bent.true_improvement_pct) <= 8.0


@pytest.mark.slow
def test_compare_recanalised_across_three_visits() -> None:
    leg = syn.make_leg(27, shape=PH_SHAPE, tone="fair")
    v1 = syn.treat(leg, 1, cleared_frac=0.7, faded_frac=0.0)
    gone = [v.id for v in v1.veins if v.status == "cleared"][:3]
    v2 = syn.treat(v1, 2, cleared_frac=0.0, faded_frac=0.0, recanalise=gone)
    base = syn.render(leg)
    f1 = syn.render(v1, syn.random_capture(1, shape=PH_SHAPE))
    f2 = syn.render(v2, syn.random_capture(2, shape=PH_SHAPE))
    ppm = float(base.px_per_mm)
    c1 = compare(base.rgb, f1.rgb, px_per_mm=ppm)
    c2 = compare(base.rgb, f2.rgb, px_per_mm=ppm, previous=[c1])
    assert c2.vein_counts["recanalised"] >= 1
    # recanalised veins are kept apart from new ones: their pixels are not marked new
    back = np.isin(base.vein_ids, gone)
    assert np.count_nonzero(c2.change_map[back] == CHANGE_NEW) <= 0.05 * np.count_nonzero(back)
    assert np.count_nonzero(c2.change_map[back] == CHANGE_RECANALISED) > 0
    assert any("recanalisation" in w for w in c2.warnings)


def test_compare_bad_options() -> None:
    img = np.zeros((300, 300, 3), np.uint8)
    with pytest.raises(ValueError, match="sensitivity"):
        compare(img, img, sensitivity=1.5)
    with pytest.raises(ValueError, match="target_pct"):
        compare(img, img, target_pct=0.0)
    with pytest.raises(ValueError, match="px_per_mm"):
        compare(img, img, px_per_mm=-1.0)
    with pytest.raises(ValueError, match="roi"):
        compare(img, img, roi=np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="roi"):
        compare(img, img, roi=np.zeros((300, 300), bool))


def test_compare_refuses_unrelated_photos() -> None:
    a = syn.make_pair(28, shape=PH_SHAPE, tone="light")
    b = syn.make_pair(29, shape=PH_SHAPE, tone="brown")
    with pytest.raises(RegistrationError) as info:
        _run(type("P", (), {"baseline": a.baseline, "followup": b.followup})())
    assert str(info.value)


def test_compare_gives_the_same_results_on_one_thread_or_several() -> None:
    """The steps run side by side give the very figures and maps of one after the other."""
    pair = syn.make_pair(22, shape=PH_SHAPE, tone="fair", cleared_frac=0.6, faded_frac=0.2)
    one = _run(pair, workers=1)
    three = _run(pair, workers=3)
    assert one.to_dict() == three.to_dict()
    for a, b in (
        (one.change_map, three.change_map),
        (one.region, three.region),
        (one.followup_seg.strength, three.followup_seg.strength),
        (one.registration.warped, three.registration.warped),
    ):
        assert np.array_equal(a, b)


def test_compare_options_come_from_the_config() -> None:
    """An option switched off in the config is switched off for that comparison alone,
    and the comparison says so."""
    pair = syn.make_pair(23, shape=PH_SHAPE, tone="light", cleared_frac=0.6)
    plain = _run(pair, config=AnalysisConfig(equalise_chroma=False))
    default = _run(pair)
    assert plain.params["equalise_chroma"] is False
    assert default.params["equalise_chroma"] is True
    assert not np.array_equal(plain.followup_seg.strength, default.followup_seg.strength)


# ------------------------------------------------------------------ a given baseline map


@pytest.fixture(scope="module")
def mapped_pair() -> tuple[syn.PhantomPair, Any, Any, Comparison]:
    """A standard pair, its two photos and the automatic comparison."""
    pair = syn.make_pair(31, shape=PH_SHAPE, tone="light", cleared_frac=0.6, faded_frac=0.2)
    ppm = float(pair.baseline.px_per_mm)
    b = photo_from_array(pair.baseline.rgb, px_per_mm=ppm)
    f = photo_from_array(pair.followup.rgb)
    return pair, b, f, compare(b, f)


def _same(a: Comparison, b: Comparison) -> None:
    assert a.to_dict() == b.to_dict()
    assert np.array_equal(a.change_map, b.change_map)
    assert np.array_equal(a.region, b.region)
    assert np.array_equal(a.baseline_seg.labels, b.baseline_seg.labels)


def test_remeasure_with_nothing_new_is_the_comparison(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    _, b, f, auto = mapped_pair
    _same(remeasure(auto, b, f), auto)
    # from the registration alone, the rest made again: the same
    _same(remeasure(auto.registration, b, f), auto)


def test_the_true_baseline_map_is_measured_instead_of_segmenting(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    """With the phantom's true map the baseline side is exact: its veins are the map's,
    and the figure reads close to the truth."""
    pair, b, f, auto = mapped_pair
    truth = pair.baseline.labels
    given = compare(b, f, baseline_labels=truth)
    assert np.array_equal(given.baseline_seg.labels, truth)
    assert {v.cls for v in given.baseline_seg.veins} == {"spider", "reticular"}
    assert abs(given.improvement_pct - pair.true_improvement_pct) <= 6.0
    # re-measured on the automatic comparison's registration: the same
    _same(remeasure(auto, b, f, baseline_labels=truth), given)


def test_the_band_holds_the_photographs_spread_narrower_with_a_given_map(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    """The band carries the figure's spread on photographs that the pair's own spreads
    do not see; with the baseline's map given (a clinic's reviewed map) that spread is
    smaller, and a re-measurement of a given-map comparison keeps it."""
    pair, b, f, auto = mapped_pair
    given = compare(b, f, baseline_labels=pair.baseline.labels)
    for c, map_kind, photo in (
        (auto, "segmented", PHOTO_SPREAD_PCT),
        (given, "given", PHOTO_SPREAD_GIVEN_MAP_PCT),
        (remeasure(given, b, f), "given", PHOTO_SPREAD_GIVEN_MAP_PCT),
    ):
        assert c.params["baseline_map"] == map_kind
        assert c.band_components["photo"] == photo
        lo, hi = c.improvement_band_pct
        measured = [v for k, v in c.band_components.items() if k != "photo"]
        half = BAND_K * math.sqrt(sum(v**2 for v in measured) + photo**2) + BAND_FLOOR_PCT
        assert c.improvement_pct - lo == pytest.approx(half)
        assert lo <= pair.true_improvement_pct <= hi
    assert PHOTO_SPREAD_GIVEN_MAP_PCT < PHOTO_SPREAD_PCT


def test_a_map_without_classes_is_classified_by_colour(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    pair, b, f, auto = mapped_pair
    truth = pair.baseline.labels
    c = remeasure(auto, b, f, baseline_labels=truth > 0)
    got = c.baseline_seg.labels
    assert np.array_equal(got > 0, truth > 0)
    assert np.mean(got[truth > 0] == truth[truth > 0]) >= 0.9


def test_remeasure_with_a_region_of_interest(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    _, b, f, auto = mapped_pair
    roi = np.zeros(PH_SHAPE, bool)
    roi[100:400, 150:500] = True
    c = remeasure(auto, b, f, roi=roi)
    assert c.region.any()
    assert not (c.region & ~roi).any()
    assert c.params["roi"] is True
    # the registration is kept (compare would register again, favouring the region)
    assert c.registration is auto.registration
    _same(c, remeasure(auto.registration, b, f, roi=roi))


def test_bad_baseline_maps_and_remeasures(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    pair, b, f, auto = mapped_pair
    with pytest.raises(ValueError, match="baseline_labels must have"):
        remeasure(auto, b, f, baseline_labels=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="codes other than"):
        remeasure(auto, b, f, baseline_labels=np.full(PH_SHAPE, 7, np.uint8))
    with pytest.raises(ValueError, match="uint8 label map"):
        remeasure(auto, b, f, baseline_labels=np.zeros(PH_SHAPE, np.float32))
    with pytest.raises(ValueError, match="px_per_mm"):
        remeasure(auto, b, f, px_per_mm=10.0)
    other = syn.make_pair(32, shape=(500, 700), tone="light")
    with pytest.raises(ValueError, match="photos it was made from"):
        remeasure(auto, other.baseline.rgb, other.followup.rgb)


def test_a_comparison_with_no_baseline_vein_is_low_confidence_with_why(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    """An area compared that holds no baseline vein gives no figure: the result says so
    in its confidence (never "ok" with an empty number), and the JSON carries the reason."""
    pair, b, f, auto = mapped_pair
    assert auto.confidence is not None
    assert "no_baseline_veins" not in auto.confidence.to_dict()["codes"]
    # a region of interest on plain skin, away from every true vein
    clear = distance_to(~auto.region | (pair.baseline.labels > 0))
    y, x = np.unravel_index(int(np.argmax(clear)), PH_SHAPE)
    r = min(float(clear[y, x]) - 5.0, 40.0)
    assert r >= 15.0
    yy, xx = np.ogrid[: PH_SHAPE[0], : PH_SHAPE[1]]
    roi = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    c = remeasure(auto, b, f, roi=roi)
    assert not c.baseline_seg.mask[c.region].any()
    assert np.isnan(c.improvement_pct)
    assert c.confidence is not None
    assert c.confidence.level == "low"
    d = c.to_dict()["confidence"]
    assert "no_baseline_veins" in d["codes"]
    assert any("No vein was found on the baseline" in r for r in d["reasons"])


def test_a_figure_resting_on_few_veins_is_low_confidence_with_why(
    mapped_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    """A figure measured on a handful of baseline veins is not averaged over enough of
    them to be trusted within a few points: it is low-confidence and says how many veins
    it rests on. The whole pair, with many veins, carries no such reason."""
    pair, b, f, auto = mapped_pair
    assert auto.confidence is not None
    assert auto.baseline_veins_measured >= MIN_MEASURED_VEINS
    assert "few_veins" not in auto.confidence.to_dict()["codes"]
    # a small region of interest around the baseline's largest vein
    ids = auto.baseline_seg.vein_ids
    largest = max((v for v in auto.veins if v.status != "new"), key=lambda v: v.area_mm2)
    ys, xs = np.nonzero(ids == largest.id)
    yy, xx = np.ogrid[: PH_SHAPE[0], : PH_SHAPE[1]]
    roi = (yy - np.median(ys)) ** 2 + (xx - np.median(xs)) ** 2 <= 50.0**2
    c = remeasure(auto, b, f, roi=roi)
    n = c.baseline_veins_measured
    assert n >= 1  # a figure, on the largest vein at least
    assert n < MIN_MEASURED_VEINS
    assert np.isfinite(c.improvement_pct)
    assert c.confidence is not None
    assert c.confidence.level == "low"
    d = c.to_dict()["confidence"]
    assert "few_veins" in d["codes"]
    assert any(f"rests on {n} vein" in r for r in d["reasons"])


def test_a_figure_that_new_veins_weigh_on_is_low_confidence_with_why(
    new_vein_pair: tuple[syn.PhantomPair, Any, Any, Comparison],
) -> None:
    """New veins rest on the follow-up photo alone, so a figure they move by more than
    MAX_NEW_VEINS_PCT points is low-confidence and says by how much. Measured on a
    region around the largest new vein, where they weigh more than on the whole leg."""
    pair, b, f, auto = new_vein_pair
    new = max((v for v in auto.veins if v.status == "new"), key=lambda v: v.area_mm2)
    x, y, w, h = new.bbox
    yy, xx = np.ogrid[: PH_SHAPE[0], : PH_SHAPE[1]]
    roi = (yy - (y + h / 2)) ** 2 + (xx - (x + w / 2)) ** 2 <= (max(w, h) / 2 + 30.0) ** 2
    c = remeasure(auto, b, f, roi=roi)
    assert c.vein_counts["new"] >= 1
    assert c.baseline_veins_measured >= 1
    assert c.new_veins_pct > MAX_NEW_VEINS_PCT
    assert c.confidence is not None
    assert c.confidence.level == "low"
    d = c.to_dict()["confidence"]
    assert "new_veins_weigh" in d["codes"]
    assert any(f"lower the figure by {c.new_veins_pct:.0f} points" in r for r in d["reasons"])


def test_a_hand_placed_again_is_left_out_and_the_figure_is_low_confidence(
    hand_placed_again: Any,
) -> None:
    """A hand holding the leg, placed 20 mm away at the follow-up, covers much of the
    skin in view (tests/test_registration.py has the registration's side). The leg is
    compared where the photos agree (not under the follow-up's hand, which
    tests/test_registration.py checks in the baseline frame), and the result says part
    of the view changed."""
    pair = hand_placed_again
    assert pair.baseline.jpeg is not None
    assert pair.followup.jpeg is not None
    c = compare(pair.baseline.jpeg, pair.followup.jpeg, px_per_mm=6.0)
    conf = c.to_dict()["confidence"]
    assert conf["level"] == "low"
    assert "part_changed" in conf["codes"]
    assert any("moved" in text for text in conf["reasons"])
    assert c.registration.agrees is not None
    assert not (c.region & ~c.registration.agrees).any()
    # at most a fingertip of the baseline's hand at the margin of the features' part
    assert (c.region & pair.baseline.hand).sum() < 0.05 * c.region.sum()
    assert (c.region & pair.overlap_mask).sum() > 0.4 * pair.overlap_mask.sum()
