"""Vein map versions and blind rating sessions in the database (SQLite and PostgreSQL).

Issue 22: reviewed maps are new versions beside the automatic one (who, when, audited);
raters see only blind pairs; ratings are never changed (a new one supersedes, both kept);
all of it is in backup and restore.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from tests.clinic_util import make_user
from vein_tracker.agreement import compute_agreement
from vein_tracker.errors import AccessDenied, StorageError
from vein_tracker.outcome import quartile
from vein_tracker.storage import open_repository
from vein_tracker.storage.backup import backup, restore

from .conftest import FAST, photo_bytes


def _labels(seed: int = 0, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[10, 5:60] = 1
    lab[20:50, 40 + seed % 5] = 2
    return lab


def _more_pairs(c: SimpleNamespace, n: int) -> list[int]:
    """``n`` more saved analyses of client A's area (new follow-up visits), and the first."""
    repo, aest = c.repo, c.aest
    ids = [c.analysis.id]
    for i in range(n):
        v = repo.create_visit(aest, c.a.id, visit_date=c.start + timedelta(weeks=6 + 2 * i))
        p = repo.add_photo(aest, c.area_a.id, v.id, photo_bytes(100 + i), px_per_mm=8.0)
        a = repo.save_analysis(
            aest,
            c.p1.id,
            p.id,
            params={"sensitivity": 0.5},
            result={
                "improvement_pct": 20.0 + 15 * i,
                "meets_target": False,
                "registration": {"homography": np.eye(3).tolist()},
            },
        )
        ids.append(a.id)
    return ids


# --------------------------------------------------------------------------- vein maps


def test_reviewed_map_is_a_new_version_beside_the_automatic_one(clinic: Any) -> None:
    repo, aest = clinic.repo, clinic.aest
    auto = repo.save_vein_map(
        aest,
        clinic.p1.id,
        _labels(),
        kind="automatic",
        analysis_id=clinic.analysis.id,
        params={"sensitivity": 0.5},
    )
    assert (auto.version, auto.kind, auto.reviewed) == (1, "automatic", False)
    assert auto.reviewed_by_text() is None
    fixed = _labels()
    fixed[10, 5:60] = 0  # a false vein erased
    fixed[55, 10:70] = 1  # a missed one added
    roi = np.zeros(fixed.shape, bool)
    roi[5:58, 2:78] = True
    edits = {"edits": [{"op": "roi_clear"}], "summary": {"added_px": 60, "erased_px": 55}}
    rev = repo.save_vein_map(
        aest, clinic.p1.id, fixed, kind="reviewed", roi=roi, based_on_id=auto.id, edits=edits
    )
    assert (rev.version, rev.kind, rev.based_on_id, rev.has_roi) == (2, "reviewed", auto.id, True)
    assert rev.created_by == aest.username
    assert rev.reviewed_by_text() == (
        f"vein map reviewed by {aest.username} on {rev.created_at.date().isoformat()}"
    )
    assert [v.version for v in repo.list_vein_maps(aest, clinic.p1.id)] == [1, 2]
    assert repo.current_vein_map(aest, clinic.p1.id) == rev
    assert repo.current_vein_map(aest, clinic.p1.id, kind="automatic") == auto
    got = repo.load_vein_map(aest, rev.id)
    assert np.array_equal(got.labels, fixed)
    assert got.roi is not None
    assert np.array_equal(got.roi, roi)
    assert np.array_equal(repo.load_vein_map(aest, auto.id).labels, _labels())
    assert repo.load_vein_map(aest, auto.id).roi is None
    # The first version is untouched and both saves are audited with who and what.
    events = repo.list_audit(clinic.admin, action="vein_map_save")
    assert [(e.target_id, e.username) for e in events[:2]] == [
        (rev.id, aest.username),
        (auto.id, aest.username),
    ]
    assert events[0].detail["summary"] == edits["summary"]
    assert events[0].client_id == clinic.a.id


def test_vein_map_access_and_bad_input(clinic: Any) -> None:
    repo, aest = clinic.repo, clinic.aest
    auto = repo.save_vein_map(aest, clinic.p1.id, _labels(), kind="automatic")
    # The client sees who reviewed their map, not the pixels; others see nothing.
    assert repo.list_vein_maps(clinic.client_a, clinic.p1.id)[0].id == auto.id
    for actor, call in (
        (clinic.client_a, lambda a: repo.load_vein_map(a, auto.id)),
        (clinic.admin, lambda a: repo.load_vein_map(a, auto.id)),
        (clinic.admin, lambda a: repo.list_vein_maps(a, clinic.p1.id)),
        (
            clinic.admin,
            lambda a: repo.save_vein_map(a, clinic.p1.id, _labels(), based_on_id=auto.id),
        ),
        (clinic.client_b, lambda a: repo.list_vein_maps(a, clinic.p1.id)),
        (clinic.mkt, lambda a: repo.list_vein_maps(a, clinic.p1.id)),
        (
            clinic.client_a,
            lambda a: repo.save_vein_map(a, clinic.p1.id, _labels(), kind="automatic"),
        ),
        (clinic.mkt, lambda a: repo.save_vein_map(a, clinic.p1.id, _labels(), kind="automatic")),
    ):
        with pytest.raises(AccessDenied):
            call(actor)
    with pytest.raises(ValueError, match="based_on_id"):
        repo.save_vein_map(aest, clinic.p1.id, _labels())
    with pytest.raises(ValueError, match="shape"):
        repo.save_vein_map(aest, clinic.p1.id, np.zeros((30, 30), np.uint8), based_on_id=auto.id)
    with pytest.raises(ValueError, match="another photo"):
        repo.save_vein_map(aest, clinic.p2.id, _labels(), based_on_id=auto.id)
    with pytest.raises(ValueError, match="labels"):
        repo.save_vein_map(aest, clinic.p1.id, np.full((4, 4), 7, np.uint8), kind="automatic")
    with pytest.raises(ValueError, match="roi"):
        repo.save_vein_map(
            aest, clinic.p1.id, _labels(), kind="automatic", roi=np.ones((2, 2), bool)
        )
    with pytest.raises(ValueError, match="kind"):
        repo.save_vein_map(aest, clinic.p1.id, _labels(), kind="manual")
    with pytest.raises(AccessDenied):
        repo.save_vein_map(aest, 987654, _labels(), kind="automatic")
    assert len(repo.list_vein_maps(aest, clinic.p1.id)) == 1


def _refused_in_the_database(repo: Any, statements: tuple[str, ...]) -> None:
    for sql in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), repo.engine.begin() as conn:
            conn.execute(sa.text(sql))


def test_map_versions_cannot_be_changed_in_the_database(clinic: Any) -> None:
    repo = clinic.repo
    repo.save_vein_map(clinic.aest, clinic.p1.id, _labels(), kind="automatic")
    _refused_in_the_database(
        repo, ("UPDATE vein_map_versions SET kind = 'reviewed'", "DELETE FROM vein_map_versions")
    )
    assert repo.list_vein_maps(clinic.aest, clinic.p1.id)[0].kind == "automatic"


def test_damaged_map_is_refused(clinic: Any) -> None:
    repo = clinic.repo
    v = repo.save_vein_map(clinic.aest, clinic.p1.id, _labels(), kind="automatic")
    other = repo.save_vein_map(clinic.aest, clinic.p2.id, _labels(3), kind="automatic")
    assert repo.load_vein_map(clinic.aest, other.id).info.sha256 != v.sha256
    # A row whose bytes no longer match its hash (written around the repository and its
    # triggers, as a damaged disk would) is refused, not decoded.
    with repo.engine.begin() as conn:
        if repo.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER vein_map_versions_no_update"))
        conn.execute(
            sa.text("UPDATE vein_map_versions SET sha256 = :h WHERE id = :i"),
            {"h": "0" * 64, "i": v.id},
        )
    with pytest.raises(StorageError, match="damaged"):
        repo.load_vein_map(clinic.aest, v.id)


# --------------------------------------------------------------------------- rating


@pytest.fixture
def session(clinic: Any) -> SimpleNamespace:
    repo = clinic.repo
    rater = make_user(repo, "rita.rater", "rater")
    ids = _more_pairs(clinic, 4)  # five pairs
    s = repo.create_rating_session(
        clinic.aest,
        name="Spring audit",
        analysis_ids=ids,
        rater_ids=[rater.user_id, clinic.aest.user_id],
        seed=7,
    )
    return SimpleNamespace(rater=rater, ids=ids, info=s)


def test_rater_sees_only_blind_pairs_in_their_own_random_order(
    clinic: Any, session: SimpleNamespace
) -> None:
    repo, rater = clinic.repo, session.rater
    mine = repo.list_rating_sessions(rater)
    assert [s.id for s in mine] == [session.info.id]
    assert mine[0].raters == ()  # a rater is not told who else rates
    assert mine[0].created_by is None
    assert (mine[0].pairs, mine[0].rated, mine[0].is_rater) == (5, 0, True)
    staff_view = repo.list_rating_sessions(clinic.aest)[0]
    assert staff_view.raters == tuple(sorted([rater.username, clinic.aest.username]))
    seen = []
    for i in range(5):
        pair = repo.next_blind_pair(rater, session.info.id)
        assert pair is not None
        assert (pair.position, pair.total) == (i + 1, 5)
        assert set(pair.to_dict()) == {"session_id", "pair_id", "position", "total"}
        photos = repo.blind_pair_photos(rater, pair.pair_id)
        assert photos.before.dtype == np.uint8
        assert photos.before.ndim == 3
        assert photos.after.shape[2] == 3
        seen.append(pair.pair_id)
        r = repo.submit_rating(rater, pair.pair_id, 10.0 + 20 * i)
        assert (r.quartile, r.supersedes_id) == (quartile(10.0 + 20 * i), None)
    assert repo.next_blind_pair(rater, session.info.id) is None
    assert repo.list_rating_sessions(rater)[0].rated == 5
    # The aesthetician rater has an order of their own (seeded here: a different one).
    other = []
    for _ in range(5):
        pair = repo.next_blind_pair(clinic.aest, session.info.id)
        assert pair is not None
        other.append(pair.pair_id)
        repo.submit_rating(clinic.aest, pair.pair_id, 50.0)
    assert sorted(other) == sorted(seen)
    assert other != seen
    # Each photo a rater opened is in the audit log, with the pair's code only.
    views = [
        e
        for e in repo.list_audit(clinic.admin, action="photo_view")
        if e.username == rater.username
    ]
    assert len(views) == 10
    assert all(set(e.detail) == {"rating_session", "rating_pair"} for e in views)


def test_raters_reach_nothing_else(clinic: Any, session: SimpleNamespace) -> None:
    repo, rater = clinic.repo, session.rater
    pair = repo.next_blind_pair(rater, session.info.id)
    assert pair is not None
    for call in (
        lambda: repo.list_clients(rater),
        lambda: repo.get_photo(rater, clinic.p1.id),
        lambda: repo.load_photo(rater, clinic.p1.id),
        lambda: repo.get_analysis_by_id(rater, clinic.analysis.id),
        lambda: repo.session_ratings(rater, session.info.id),
        lambda: repo.create_rating_session(
            rater, name="x", analysis_ids=session.ids[:3], rater_ids=[rater.user_id]
        ),
        lambda: repo.close_rating_session(rater, session.info.id),
        lambda: repo.list_vein_maps(rater, clinic.p1.id),
    ):
        with pytest.raises(AccessDenied):
            call()
    # Someone not rating this session cannot see its pairs or rate them.
    other = make_user(repo, "otto.rater", "rater")
    assert repo.list_rating_sessions(other) == []
    for call in (
        lambda: repo.next_blind_pair(other, session.info.id),
        lambda: repo.blind_pair_photos(other, pair.pair_id),
        lambda: repo.submit_rating(other, pair.pair_id, 40.0),
        lambda: repo.blind_pair_photos(clinic.admin, pair.pair_id),
    ):
        with pytest.raises(AccessDenied):
            call()
    for role_actor in (clinic.client_a, clinic.mkt):
        with pytest.raises(AccessDenied):
            repo.list_rating_sessions(role_actor)


def test_a_new_rating_supersedes_and_both_are_kept(clinic: Any, session: SimpleNamespace) -> None:
    repo, rater = clinic.repo, session.rater
    pair = repo.next_blind_pair(rater, session.info.id)
    assert pair is not None
    first = repo.submit_rating(rater, pair.pair_id, 30.0)
    second = repo.submit_rating(rater, pair.pair_id, 62.5)
    assert second.supersedes_id == first.id
    assert second.quartile == 2
    current = repo.session_ratings(clinic.aest, session.info.id, include_auto=False)
    assert [r["clearance_pct"] for r in current if r["rater"] == rater.username] == [62.5]
    history = repo.session_ratings(clinic.aest, session.info.id, include_auto=False, current=False)
    mine = [r for r in history if r["rater"] == rater.username]
    assert [(r["clearance_pct"], r["superseded"]) for r in mine] == [(30.0, True), (62.5, False)]
    events = repo.list_audit(clinic.admin, action="rating_submit")
    assert [e.detail["clearance_pct"] for e in events[:2]] == [62.5, 30.0]
    assert events[0].detail["supersedes_id"] == first.id
    for bad in (-1, 100.5, float("nan"), "50", True):
        with pytest.raises(ValueError, match="clearance_pct"):
            repo.submit_rating(rater, pair.pair_id, bad)


def test_ratings_cannot_be_changed_in_the_database(clinic: Any, session: SimpleNamespace) -> None:
    repo, rater = clinic.repo, session.rater
    pair = repo.next_blind_pair(rater, session.info.id)
    assert pair is not None
    repo.submit_rating(rater, pair.pair_id, 30.0)
    _refused_in_the_database(repo, ("UPDATE ratings SET clearance_pct = 1", "DELETE FROM ratings"))
    rows = repo.session_ratings(clinic.aest, session.info.id, include_auto=False)
    assert [r["clearance_pct"] for r in rows] == [30.0]


def test_closed_session_takes_no_ratings(clinic: Any, session: SimpleNamespace) -> None:
    repo, rater = clinic.repo, session.rater
    pair = repo.next_blind_pair(rater, session.info.id)
    assert pair is not None
    closed = repo.close_rating_session(clinic.aest, session.info.id)
    assert closed.status == "closed"
    with pytest.raises(AccessDenied, match="closed"):
        repo.submit_rating(rater, pair.pair_id, 50.0)
    assert repo.list_audit(clinic.admin, action="rating_session_close")


def test_session_ratings_feed_the_agreement(clinic: Any, session: SimpleNamespace) -> None:
    repo = clinic.repo
    truth: dict[int, float] = {}
    for actor, noise in ((session.rater, 4.0), (clinic.aest, -3.0)):
        while (pair := repo.next_blind_pair(actor, session.info.id)) is not None:
            base = truth.setdefault(pair.pair_id, 15.0 + 17.0 * len(truth))
            repo.submit_rating(actor, pair.pair_id, base + noise)
    rows = repo.session_ratings(clinic.aest, session.info.id)
    assert {r["rater"] for r in rows} == {session.rater.username, clinic.aest.username, "auto"}
    assert all(set(r) == {"pair", "rater", "clearance_pct"} for r in rows)
    codes = sorted({r["pair"] for r in rows})
    assert codes == [f"P{i:02d}" for i in range(1, 6)]
    # The automatic figure of each pair, as the analyses had it (80 % and 20-65 %).
    auto = sorted(r["clearance_pct"] for r in rows if r["rater"] == "auto")
    assert auto == [20.0, 35.0, 50.0, 65.0, 80.0]
    ag = compute_agreement(rows)
    assert ag.pairs == 5
    assert ag.raters == tuple(sorted([session.rater.username, clinic.aest.username, "auto"]))
    assert ag.pair(session.rater.username, clinic.aest.username).mean_abs_diff == pytest.approx(7.0)


def test_session_creation_is_checked(clinic: Any) -> None:
    repo = clinic.repo
    rater = make_user(repo, "rita.rater", "rater")
    ids = _more_pairs(clinic, 2)
    make = repo.create_rating_session
    with pytest.raises(ValueError, match="3 to"):
        make(clinic.aest, name="x", analysis_ids=ids[:2], rater_ids=[rater.user_id])
    with pytest.raises(ValueError, match="repeat"):
        make(clinic.aest, name="x", analysis_ids=[ids[0], *ids[:2]], rater_ids=[rater.user_id])
    with pytest.raises(ValueError, match="at least one rater"):
        make(clinic.aest, name="x", analysis_ids=ids, rater_ids=[])
    with pytest.raises(ValueError, match="may not rate"):
        make(clinic.aest, name="x", analysis_ids=ids, rater_ids=[clinic.mkt.user_id])
    with pytest.raises(ValueError, match="name"):
        make(clinic.aest, name="  ", analysis_ids=ids, rater_ids=[rater.user_id])
    with pytest.raises(AccessDenied):
        make(clinic.aest, name="x", analysis_ids=[*ids[:2], 999999], rater_ids=[rater.user_id])
    with pytest.raises(AccessDenied):
        make(clinic.mkt, name="x", analysis_ids=ids, rater_ids=[rater.user_id])
    # The administrator runs the installation and sees no clinical record (policy).
    with pytest.raises(AccessDenied):
        make(clinic.admin, name="x", analysis_ids=ids, rater_ids=[rater.user_id])
    assert repo.list_rating_sessions(clinic.aest) == []
    s = make(clinic.aest, name="ok", analysis_ids=ids, rater_ids=[rater.user_id])
    assert s.pairs == 3
    assert repo.list_audit(clinic.admin, action="rating_session_create")[0].detail["pairs"] == 3


# --------------------------------------------------------------------------- backup


def _review_state(repo: Any, c: Any, session_id: int) -> dict[str, Any]:
    maps = repo.list_vein_maps(c.aest, c.p1.id)
    return {
        "maps": [v.to_dict() for v in maps],
        "pixels": [repo.load_vein_map(c.aest, v.id).labels.tolist() for v in maps],
        "sessions": [s.to_dict() for s in repo.list_rating_sessions(c.aest)],
        "ratings": repo.session_ratings(c.aest, session_id, current=False),
    }


def _fill(clinic: Any, session: SimpleNamespace) -> None:
    repo = clinic.repo
    auto = repo.save_vein_map(clinic.aest, clinic.p1.id, _labels(), kind="automatic")
    roi = np.ones((60, 80), bool)
    roi[:5] = False
    repo.save_vein_map(clinic.aest, clinic.p1.id, _labels(2), roi=roi, based_on_id=auto.id)
    pair = repo.next_blind_pair(session.rater, session.info.id)
    assert pair is not None
    repo.submit_rating(session.rater, pair.pair_id, 40.0)
    repo.submit_rating(session.rater, pair.pair_id, 45.0)


@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_maps_sessions_and_ratings_are_in_backup_and_restore(
    clinic: Any, session: SimpleNamespace, tmp_path: Any, target: str, request: Any
) -> None:
    _fill(clinic, session)
    expected = _review_state(clinic.repo, clinic, session.info.id)
    backup(tmp_path / "b.tar", clinic.settings)
    dest = tmp_path / "restored"
    url = (
        request.getfixturevalue("pg_url")
        if target == "postgres"
        else f"sqlite:///{dest / 'vein_tracker.db'}"
    )
    out = restore(tmp_path / "b.tar", dest, db_url=url)
    assert out.rows["vein_map_versions"] == 2
    assert out.rows["ratings"] == 2
    settings = dataclasses.replace(clinic.settings, data_dir=dest, db_url=url)
    restored = open_repository(settings, passwords=FAST)
    try:
        assert _review_state(restored, clinic, session.info.id) == expected
        # Restored ratings keep working: the next rating supersedes the restored one.
        pair_id = restored.next_blind_pair(session.rater, session.info.id)
        assert pair_id is not None
    finally:
        restored.close()
