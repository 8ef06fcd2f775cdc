"""Clinic records: clients, screening, areas, visits, analyses (versioned), concurrency."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, timedelta

import numpy as np
import pytest

from tests.clinic_util import open_test_repo
from vein_tracker import ALGORITHM_VERSION
from vein_tracker.errors import StorageError
from vein_tracker.storage import Retry, Screening, db, params_hash, version_key

from .conftest import photo_bytes


def test_client_fields_and_search(clinic):
    repo, aest = clinic.repo, clinic.aest
    c = repo.create_client(
        aest,
        name="  Zoë <script>alert(1)</script> 100%_ ",
        date_of_birth=date(1990, 2, 3),
        email="zoe@example.org",
        phone="+44 20 7946 0000",
        fitzpatrick=4,
    )
    assert c.name == "Zoë <script>alert(1)</script> 100%_"
    assert c.fitzpatrick == 4
    assert not c.cleared_for_treatment  # not screened yet
    assert [x.id for x in repo.search_clients(aest, "zoë")] == [c.id]
    assert [x.id for x in repo.search_clients(aest, "7946")] == [c.id]
    assert [x.id for x in repo.search_clients(aest, "100%_")] == [c.id]  # no wildcard leak
    assert [x.id for x in repo.search_clients(aest, "%")] == [c.id]
    assert repo.update_client(aest, c.id, fitzpatrick=None, email=None).fitzpatrick is None
    for bad, match in [
        ({"fitzpatrick": 7}, "fitzpatrick"),
        ({"fitzpatrick": True}, "fitzpatrick"),
        ({"date_of_birth": date.today() + timedelta(days=3)}, "future"),
        ({"name": "  "}, "name"),
        ({"colour": "red"}, "unknown client fields"),
        ({"notes": "x\x00y"}, "NUL"),
    ]:
        with pytest.raises(ValueError, match=match):
            repo.update_client(aest, c.id, **bad)
    with pytest.raises(ValueError, match="name is required"):
        repo.create_client(aest, name="")


def test_screening_gates_treatment(clinic):
    repo, aest = clinic.repo, clinic.aest
    c = repo.create_client(aest, name="Val Varicose")
    with pytest.raises(ValueError, match="not been screened"):
        repo.create_visit(aest, c.id)
    info = repo.record_screening(aest, c.id, Screening(varicose_veins=True, blood_thinners=True))
    assert info.contraindications == ("varicose_veins", "blood_thinners")
    assert info.refer_to_vascular
    assert info.screened_by == "erin.aesth"
    assert not info.cleared_for_treatment
    with pytest.raises(ValueError, match="override reason"):
        repo.create_visit(aest, c.id)
    info = repo.update_client(
        aest,
        c.id,
        screening=Screening(varicose_veins=True, blood_thinners=True),
        override_reason="Vascular physician cleared spider-vein treatment (letter on file).",
    )
    assert info.cleared_for_treatment
    assert repo.create_visit(aest, c.id).session_number == 1
    # A new negative screening clears the override reason.
    info = repo.record_screening(aest, c.id, Screening(), override_reason="ignored")
    assert info.override_reason is None
    assert info.cleared_for_treatment
    created = repo.create_client(
        aest, name="Sam Screened", screening=Screening(pregnancy=True), override_reason=None
    )
    assert created.contraindications == ("pregnancy",)
    assert not created.cleared_for_treatment


def test_visits_sessions_and_windows(clinic):
    repo, aest = clinic.repo, clinic.aest
    visits = repo.list_visits(clinic.client_a, clinic.a.id)
    assert [v.session_number for v in visits] == [1, 2]
    assert visits[0].next_window_start == clinic.start + timedelta(weeks=1)
    assert visits[0].next_window_end == clinic.start + timedelta(weeks=4)
    assert visits[0].area_ids == (clinic.area_a.id,)
    assert visits[1].area_ids == (clinic.area_a.id,)  # photographed there
    v3 = repo.create_visit(
        aest,
        clinic.a.id,
        visit_date=clinic.start + timedelta(weeks=8),
        sclerosant="sodium_tetradecyl_sulfate",
        concentration_pct=0.2,
        volume_ml=2.5,
        area_ids=[clinic.area_a.id],
        notes="feeders first",
        next_window_start=clinic.start + timedelta(weeks=10),
        next_window_end=clinic.start + timedelta(weeks=12),
    )
    assert (v3.session_number, v3.sclerosant, v3.volume_ml) == (3, "sodium_tetradecyl_sulfate", 2.5)
    assert v3.aesthetician == "erin.aesth"
    v3 = repo.update_visit(aest, v3.id, area_ids=[], volume_ml=3.0)
    assert v3.area_ids == ()
    assert v3.volume_ml == 3.0
    for bad, match in [
        ({"sclerosant": "ethanolamine_oleate"}, "sclerosant"),  # issue 24: not offered
        ({"volume_ml": -1}, "volume_ml"),
        ({"concentration_pct": 150}, "concentration_pct"),
        ({"area_ids": [clinic.area_b.id]}, "not a treatment area of this client"),
        (
            {"next_window_start": date(2026, 5, 2), "next_window_end": date(2026, 5, 1)},
            "next_window_end",
        ),
    ]:
        with pytest.raises(ValueError, match=match):
            repo.create_visit(aest, clinic.a.id, **bad)
    with pytest.raises(ValueError, match="unknown fields"):
        repo.update_visit(aest, v3.id, price=450)
    assert [v.session_number for v in repo.list_visits(aest, clinic.a.id)] == [1, 2, 3]


def test_area_choices(clinic):
    repo, aest = clinic.repo, clinic.aest
    area = repo.create_area(aest, clinic.b.id, side="left", view="medial", region="knee", note="x")
    assert area.label == "left knee, medial"
    assert len(area.anon_id) == 32
    assert area.baseline_photo_id is None
    assert repo.update_area(aest, area.id, note=None).note is None
    for field, value in [("side", "middle"), ("view", "top"), ("region", "elbow")]:
        kw = {"side": "left", "view": "medial", "region": "knee", field: value}
        with pytest.raises(ValueError, match=field):
            repo.create_area(aest, clinic.b.id, **kw)
    assert [a.id for a in repo.list_areas(clinic.client_b, clinic.b.id)] == [
        clinic.area_b.id,
        area.id,
    ]


def test_analyses_are_versioned_and_cached(clinic):
    repo, aest = clinic.repo, clinic.aest
    params = {"sensitivity": 0.5}
    assert clinic.analysis.params_hash == params_hash(params)
    assert clinic.analysis.algorithm_version == ALGORITHM_VERSION
    got = repo.get_analysis(aest, clinic.p1.id, clinic.p2.id, params=params)
    assert got is not None
    assert got.id == clinic.analysis.id
    assert (
        repo.find_analysis(
            aest,
            baseline_photo_id=clinic.p1.id,
            followup_photo_id=clinic.p2.id,
            params_hash=params_hash(params),
        )
        == got
    )
    assert repo.get_analysis(aest, clinic.p1.id, clinic.p2.id, params={"sensitivity": 0.7}) is None
    old = repo.save_analysis(
        aest,
        clinic.p1.id,
        clinic.p2.id,
        params=params,
        result={"improvement_pct": 60.0, "meets_target": False, "band": [float("inf"), 1]},
        algorithm_version="0.9.0",
    )
    assert old.id != clinic.analysis.id
    assert old.result["band"] == [None, 1]
    # Both versions are kept; the newest version wins the default listing.
    assert [a.id for a in repo.list_analyses(aest, clinic.area_a.id)] == [clinic.analysis.id]
    both = repo.list_analyses(aest, clinic.area_a.id, latest_only=False)
    assert {a.algorithm_version for a in both} == {"0.9.0", ALGORITHM_VERSION}
    assert repo.get_analysis(aest, clinic.p1.id, clinic.p2.id, algorithm_version="0.9.0") == old
    # Saving the same key again replaces that row (same algorithm, same input).
    labels = np.zeros((30, 40), np.uint8)
    labels[5:10, 5:20] = 2
    again = repo.save_analysis(
        aest,
        clinic.p1.id,
        clinic.p2.id,
        params=params,
        result={"improvement_pct": 81.5, "meets_target": True},
        masks={"change_map": labels, "region": np.ones((30, 40), bool)},
    )
    assert again.id == clinic.analysis.id
    assert again.improvement_pct == 81.5
    masks = repo.load_analysis_masks(clinic.client_a, again.id)
    assert masks["change_map"].dtype == np.uint8
    assert np.array_equal(masks["change_map"], labels)
    assert masks["region"].dtype == bool
    assert masks["region"].all()
    for bad_mask, match in [
        ({"x": np.zeros((2, 2, 3), np.uint8)}, "2-D"),
        ({"x": np.zeros((2, 2), np.float32)}, "bool or uint8"),
        ({"bad name!": np.zeros((2, 2), bool)}, "mask names"),
        ({"x": b"not a png"}, "PNG"),
    ]:
        with pytest.raises(ValueError, match=match):
            repo.save_analysis(
                aest, clinic.p1.id, clinic.p2.id, params={}, result={}, masks=bad_mask
            )
    with pytest.raises(ValueError, match="differ"):
        repo.save_analysis(aest, clinic.p1.id, clinic.p1.id, params={}, result={})
    with pytest.raises(ValueError, match="different treatment areas"):
        repo.save_analysis(aest, clinic.p1.id, clinic.pb.id, params={}, result={})


def test_stale_analyses_for_reanalysis(clinic):
    repo, aest = clinic.repo, clinic.aest
    assert repo.list_stale_analyses(aest) == []
    old = repo.save_analysis(
        aest,
        clinic.p1.id,
        clinic.p2.id,
        params={"sensitivity": 0.3},
        result={},
        algorithm_version="0.2.0",
    )
    older = repo.save_analysis(
        aest,
        clinic.p1.id,
        clinic.p2.id,
        params={"sensitivity": 0.3},
        result={},
        algorithm_version="0.1.9",
    )
    assert older.id != old.id
    stale = repo.list_stale_analyses(aest)
    assert [a.id for a in stale] == [old.id]  # the newest old version of that key
    assert repo.list_stale_analyses(aest, area_id=clinic.area_b.id) == []
    assert repo.list_stale_analyses(aest, since=clinic.start + timedelta(weeks=5)) == []
    assert [a.id for a in repo.list_stale_analyses(aest, since=clinic.start)] == [old.id]
    # Re-run at the current version: it drops out (resumable batches).
    repo.save_analysis(aest, clinic.p1.id, clinic.p2.id, params={"sensitivity": 0.3}, result={})
    assert repo.list_stale_analyses(aest) == []
    assert [a.id for a in repo.list_stale_analyses(aest, current_version="9.0")] != []
    assert repo.list_unanalysed_pairs(aest) == []
    p3 = repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, photo_bytes(123))
    assert repo.list_unanalysed_pairs(aest, area_id=clinic.area_a.id) == [(clinic.p1.id, p3.id)]


def test_version_ordering():
    assert version_key("1.10.0") > version_key("1.9.9")
    assert version_key("2.0") > version_key("1.99.99")
    assert version_key("1.0.0rc1") == (1, 0, 1)


def test_concurrent_writers_all_succeed(clinic):
    repo, aest = clinic.repo, clinic.aest
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(5):
                repo.create_client(aest, name=f"Thread {k} client {i}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(repo.list_clients(aest, search="Thread")) == 20


def test_concurrent_visits_get_consecutive_session_numbers(clinic):
    repo, aest = clinic.repo, clinic.aest
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                repo.create_visit(aest, clinic.b.id, same_day=True)  # issue 24: asked for
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = [v.session_number for v in repo.list_visits(aest, clinic.b.id)]
    assert numbers == list(range(1, 14))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_locked_database_gives_a_clear_storage_error(clinic, monkeypatch):
    """A write lock held past the retries: StorageError after every retry's wait (recorded
    here, not slept), nothing written; the next write works once the lock is gone."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    waits: list[float] = []
    quick = open_test_repo(clinic.settings, retry=Retry(attempts=3, sleep=waits.append))
    blocker = sqlite3.connect(
        str(clinic.settings.data_dir / "vein_tracker.db"), isolation_level=None
    )
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="busy"):
            quick.create_client(clinic.aest, name="Blocked")
        assert waits == [0.05, 0.1]
        blocker.execute("ROLLBACK")
        assert quick.create_client(clinic.aest, name="Unblocked").name == "Unblocked"
    finally:
        blocker.close()
        quick.close()
