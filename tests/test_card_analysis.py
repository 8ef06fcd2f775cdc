"""A calibration card in the photos of an analysis (issue 21).

The card gives the baseline's scale (unless one is given), and its area is no skin: its
markers, ruler and colour patches are never veins, it gives the registration no features
(it moves between visits), and the follow-up's card hides what it covers. Phantoms from
:func:`vein_tracker.synthetic.make_pair` with the card drawn in by ``tests/test_card.py``'s
:func:`place_card` (true 6 px/mm); the follow-up under tungsten light.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.test_card import Camera, card_to_photo, photograph, place_card
from vein_tracker import synthetic
from vein_tracker.card import read_card
from vein_tracker.measure import compare
from vein_tracker.segmentation import segment

PPM = 6.0
SHAPE = (900, 1200)


@pytest.fixture(scope="module")
def pair() -> Any:
    """An unchanged leg (true improvement 0 %) photographed twice."""
    p = synthetic.make_pair(7, shape=SHAPE, tone="medium", cleared_frac=0.0, faded_frac=0.0)
    assert p.true_improvement_pct == 0.0
    return p


@pytest.fixture(scope="module")
def with_cards(pair: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pair with the card on the skin, at another place and angle at the follow-up,
    which is taken under tungsten light."""
    b = place_card(pair.baseline.rgb, card_to_photo(PPM, 10.0, (330.0, 690.0)))
    f = place_card(pair.followup.rgb, card_to_photo(PPM, -15.0, (860.0, 230.0)))
    return b, photograph(f, Camera("tungsten", 0.85, seed=3))


def test_segment_takes_the_scale_from_the_card_and_finds_no_vein_on_it(
    pair: Any, with_cards: tuple[np.ndarray, np.ndarray]
) -> None:
    b, _ = with_cards
    card = read_card(b)
    assert card is not None
    on_card = card.mask(b.shape[:2])
    seg = segment(b)
    assert seg.scale is not None
    assert seg.scale.source == "card"
    assert seg.px_per_mm == pytest.approx(PPM, rel=0.02)
    assert not seg.scale.estimated
    assert not (seg.mask & on_card).any()
    assert not (seg.leg_mask & on_card).any()
    # Without the card the same place holds veins: the card's absence of veins is the
    # card's doing, not an empty patch of leg.
    assert segment(pair.baseline.rgb, px_per_mm=PPM).mask[on_card].any()
    # A given scale wins over the card's.
    assert segment(b, px_per_mm=5.0).scale.source == "given"


def test_compare_reads_the_scale_from_the_card_and_measures_no_change(
    with_cards: tuple[np.ndarray, np.ndarray],
) -> None:
    b, f = with_cards
    c = compare(b, f)
    assert c.params["scale_source"] == "card"
    assert c.px_per_mm == pytest.approx(PPM, rel=0.02)
    cards = c.params["cards"]
    assert cards["baseline"]["px_per_mm"] == pytest.approx(PPM, rel=0.02)
    assert cards["followup"]["px_per_mm"] == pytest.approx(PPM, rel=0.02)
    # The follow-up's light is far from daylight; the baseline's is daylight.
    assert cards["followup"]["delta_e_mean"] > cards["baseline"]["delta_e_mean"] + 3.0
    # The unchanged leg reads as unchanged, light and card moves notwithstanding.
    assert abs(c.improvement_pct) <= 1.0
    # No vein on either card: the baseline's is out of the leg, the follow-up's unseen.
    b_card = read_card(b)
    assert b_card is not None
    on_b_card = b_card.mask(b.shape[:2])
    assert not (c.baseline_seg.mask & on_b_card).any()
    assert not (c.followup_seg.mask & on_b_card).any()
    assert c.confidence is not None
    assert "scale_estimated" not in c.confidence.to_dict()["codes"]


def test_compare_without_a_card_says_the_scale_was_estimated(pair: Any) -> None:
    c = compare(pair.baseline.rgb, pair.followup.rgb)
    assert c.params["scale_source"] == "estimated"
    assert c.params["cards"] == {"baseline": None, "followup": None}
    assert c.confidence is not None
    assert "scale_estimated" in c.confidence.to_dict()["codes"]
