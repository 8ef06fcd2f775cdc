"""Access rules of the vein map and rating-session methods, for test_access_matrix.py.

Issue 22's aggregates (``repo.vein_maps``, ``repo.ratings``): :func:`prepare_review`
makes, before the matrix runs, the records their cases work on (an automatic vein map of
client A's baseline, two rating sessions whose rater is the aesthetician);
:func:`review_rules` gives each public method its cases and the actors allowed, read
from the policy table like the matrix's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
from sec_util import photo_bytes

from vein_tracker.policy import Action
from vein_tracker.storage import Repository

Op = Callable[[Repository, SimpleNamespace, Any], Any]
Rules = dict[str, list[tuple[str, Op, frozenset[str]]]]


def _labels() -> np.ndarray:
    lab = np.zeros((30, 40), np.uint8)
    lab[10, 5:30] = 1
    return lab


def prepare_review(repo: Repository, c: Any) -> SimpleNamespace:
    """An automatic map of A's baseline and two rating sessions (the aesthetician rates)."""
    auto = repo.save_vein_map(c.aest, c.p1.id, _labels(), kind="automatic")
    v = repo.create_visit(c.aest, c.a.id, visit_date=c.start + timedelta(weeks=9))
    p = repo.add_photo(c.aest, c.area_a.id, v.id, photo_bytes(777), filename="r.jpg")
    third = repo.save_analysis(
        c.aest, c.p1.id, p.id, params={"matrix": 1}, result={"improvement_pct": 40.0}
    )
    ids = [c.analysis.id, c.analysis_b.id, third.id]
    rate = repo.create_rating_session(
        c.aest, name="matrix", analysis_ids=ids, rater_ids=[c.aest.user_id], seed=1
    )
    to_close = repo.create_rating_session(
        c.aest, name="to close", analysis_ids=ids, rater_ids=[c.aest.user_id], seed=2
    )
    first = repo.next_blind_pair(c.aest, rate.id)
    assert first is not None
    return SimpleNamespace(
        auto=auto, ids=ids, session=rate.id, to_close=to_close.id, pair=first.pair_id
    )


def review_rules(
    may: Callable[..., frozenset[str]], read_a: frozenset[str], rater: frozenset[str]
) -> Rules:
    """The cases; ``rater`` is who rates the prepared sessions (and may, by the policy)."""
    raters = rater & may(Action.RATE)
    return {
        "save_vein_map": [
            (
                "automatic",
                lambda r, c, a: r.save_vein_map(a, c.p1.id, _labels(), kind="automatic"),
                may(Action.ANALYSE),
            ),
            (
                "reviewed",
                lambda r, c, a: r.save_vein_map(
                    a, c.p1.id, _labels(), based_on_id=c.review.auto.id
                ),
                may(Action.CORRECT_VEIN_MAP),
            ),
        ],
        "list_vein_maps": [("a", lambda r, c, a: r.list_vein_maps(a, c.p1.id), read_a)],
        "current_vein_map": [("a", lambda r, c, a: r.current_vein_map(a, c.p1.id), read_a)],
        "load_vein_map": [
            (
                "a",
                lambda r, c, a: r.load_vein_map(a, c.review.auto.id),
                may(Action.VIEW_CLIENT_RECORDS),
            )
        ],
        "create_rating_session": [
            (
                "new",
                lambda r, c, a: r.create_rating_session(
                    a, name="m", analysis_ids=c.review.ids, rater_ids=[c.aest.user_id]
                ),
                may(Action.CREATE_RATING_SESSION),
            )
        ],
        "list_rating_sessions": [
            (
                "all",
                lambda r, c, a: r.list_rating_sessions(a),
                may(Action.CREATE_RATING_SESSION, Action.VIEW_AGREEMENT, Action.RATE),
            )
        ],
        "close_rating_session": [
            (
                "s",
                lambda r, c, a: r.close_rating_session(a, c.review.to_close),
                may(Action.CREATE_RATING_SESSION),
            )
        ],
        "list_measured_pairs": [
            ("all", lambda r, c, a: r.list_measured_pairs(a), may(Action.CREATE_RATING_SESSION))
        ],
        "list_raters": [
            ("all", lambda r, c, a: r.list_raters(a), may(Action.CREATE_RATING_SESSION))
        ],
        "next_blind_pair": [("s", lambda r, c, a: r.next_blind_pair(a, c.review.session), raters)],
        "blind_pair_photos": [("s", lambda r, c, a: r.blind_pair_photos(a, c.review.pair), raters)],
        "submit_rating": [("s", lambda r, c, a: r.submit_rating(a, c.review.pair, 55.0), raters)],
        "session_ratings": [
            (
                "s",
                lambda r, c, a: r.session_ratings(a, c.review.session),
                may(Action.VIEW_AGREEMENT),
            )
        ],
    }
