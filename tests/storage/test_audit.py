"""The audit log: one event per audited action, with who and which record; append-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from vein_tracker.errors import AccessDenied
from vein_tracker.storage import AUDIT_ACTIONS, Screening
from vein_tracker.storage.info import utcnow

from .conftest import PASSWORD


def _last(repo, admin, action):
    events = repo.list_audit(admin, action=action, limit=1)
    assert events, f"no {action} event"
    return events[0]


def test_setup_actions_were_audited(clinic):
    repo, admin = clinic.repo, clinic.admin
    uploads = repo.list_audit(admin, action="photo_upload")
    assert {e.target_id for e in uploads} == {clinic.p1.id, clinic.p2.id, clinic.pb.id}
    assert all(e.username == "erin.aesth" and e.role == "aesthetician" for e in uploads)
    assert {e.client_id for e in uploads} == {clinic.a.id, clinic.b.id}
    assert len(repo.list_audit(admin, action="client_create")) == 2
    assert len(repo.list_audit(admin, action="consent_record")) == 3
    assert len(repo.list_audit(admin, action="visit_create")) == 3
    assert len(repo.list_audit(admin, action="area_create")) == 2
    assert len(repo.list_audit(admin, action="screening_record")) == 2
    assert len(repo.list_audit(admin, action="user_create")) == 5
    saved = _last(repo, admin, "analysis_save")
    assert saved.target_id == clinic.analysis.id
    assert saved.detail["improvement_pct"] == 80.0


def test_every_view_of_photos_is_audited(clinic):
    repo, admin = clinic.repo, clinic.admin
    before = len(repo.list_audit(admin, action="photo_view"))
    repo.get_photo_bytes(clinic.client_a, clinic.p1.id)
    repo.load_photo(clinic.aest, clinic.p2.id)
    repo.get_photo_bytes(clinic.mkt, clinic.p1.id, channel="website")
    views = repo.list_audit(admin, action="photo_view")
    assert len(views) == before + 3
    newest = views[0]
    assert (newest.username, newest.target_id, newest.detail) == (
        "mark.marketing",
        clinic.p1.id,
        {"channel": "website"},
    )
    assert (views[1].username, views[1].target_id) == ("erin.aesth", clinic.p2.id)
    assert (views[2].username, views[2].client_id) == ("ann.client", clinic.a.id)
    # Metadata reads are not photo views.
    repo.get_photo(clinic.client_a, clinic.p1.id)
    assert len(repo.list_audit(admin, action="photo_view")) == before + 3


def test_logins_good_and_failed_are_audited(clinic):
    repo, admin = clinic.repo, clinic.admin
    repo.authenticate("ann.client", PASSWORD)
    good = _last(repo, admin, "login")
    assert (good.username, good.user_id, good.ok) == ("ann.client", clinic.client_a.user_id, True)
    with pytest.raises(AccessDenied):
        repo.authenticate("ann.client", "not her password")
    bad = _last(repo, admin, "login_failed")
    assert (bad.username, bad.ok, bad.detail["reason"]) == ("ann.client", False, "wrong password")
    with pytest.raises(AccessDenied):
        repo.authenticate("ghost.user", "not her password")
    ghost = _last(repo, admin, "login_failed")
    assert ghost.user_id is None
    # An unknown name may be a password typed in the wrong box: only a fingerprint is kept.
    assert ghost.detail["reason"] == "unknown user"
    assert "ghost.user" not in repr(ghost.detail)
    assert len(ghost.detail["username_sha256"]) == 16


def test_changes_are_audited(clinic):
    repo, admin, aest = clinic.repo, clinic.admin, clinic.aest
    repo.update_client(aest, clinic.a.id, phone="555 1234", notes="prefers mornings")
    ev = _last(repo, admin, "client_update")
    assert (ev.target_id, ev.detail["fields"]) == (clinic.a.id, ["notes", "phone"])
    repo.record_screening(aest, clinic.b.id, Screening(pregnancy=True))
    ev = _last(repo, admin, "screening_record")
    assert ev.detail == {"positives": ["pregnancy"], "override": False}
    repo.update_visit(aest, clinic.v1.id, notes="bruise left calf")
    assert _last(repo, admin, "visit_update").target_id == clinic.v1.id
    repo.set_baseline(aest, clinic.p2.id)
    ev = _last(repo, admin, "photo_baseline")
    assert (ev.target_id, ev.detail["previous"]) == (clinic.p2.id, clinic.p1.id)
    repo.revoke_consent(clinic.client_a, clinic.marketing.id, reason="changed mind")
    ev = _last(repo, admin, "consent_revoke")
    assert (ev.username, ev.target_id, ev.client_id) == (
        "ann.client",
        clinic.marketing.id,
        clinic.a.id,
    )
    repo.update_user(admin, clinic.mkt.user_id, active=False)
    assert _last(repo, admin, "user_update").detail == {"active": [True, False]}
    repo.set_password(admin, clinic.mkt.user_id, "temporary password 1")
    assert _last(repo, admin, "password_change").detail == {"by": "admin"}


def test_exports_and_reports_are_audited(clinic):
    repo, admin = clinic.repo, clinic.admin
    pairs = repo.list_marketing_pairs(clinic.mkt, "website")
    repo.record_export(
        clinic.mkt, pairs, channel="website", filename="/tmp/x/pairs.zip", sha256s={"a": "b"}
    )
    ev = _last(repo, admin, "export")
    assert ev.detail["file"] == "pairs.zip"
    assert ev.detail["consent_id"] == clinic.marketing.id
    assert ev.detail["photos"] == [clinic.p1.id, clinic.p2.id]
    repo.log_event(clinic.client_a, "report", client_id=clinic.a.id, detail={"pages": 3})
    ev = _last(repo, admin, "report")
    assert (ev.username, ev.client_id, ev.detail) == ("ann.client", clinic.a.id, {"pages": 3})
    with pytest.raises(AccessDenied):
        repo.log_event(clinic.client_b, "report", client_id=clinic.a.id)
    with pytest.raises(ValueError, match="action"):
        repo.log_event(admin, "photo_view")


def test_denied_access_is_audited(clinic):
    repo, admin = clinic.repo, clinic.admin
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.client_b, clinic.p1.id)
    ev = _last(repo, admin, "access_denied")
    assert (ev.username, ev.ok) == ("bea.client", False)


def test_audit_filters(clinic):
    repo, admin = clinic.repo, clinic.admin
    everything = repo.list_audit(admin, limit=1000)
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert {e.action for e in everything} <= AUDIT_ACTIONS
    photo_events = repo.list_audit(admin, action="photo")
    assert {e.action for e in photo_events} == {"photo_upload"}
    assert all(e.client_id == clinic.b.id for e in repo.list_audit(admin, client_id=clinic.b.id))
    assert repo.list_audit(admin, username="erin.aesth")
    assert all(e.username == "erin.aesth" for e in repo.list_audit(admin, username="Erin.Aesth"))
    today = utcnow().date()
    assert len(repo.list_audit(admin, since=today, until=today, limit=1000)) == len(everything)
    assert repo.list_audit(admin, until=today - timedelta(days=1)) == []
    assert len(repo.list_audit(admin, limit=2)) == 2
    assert repo.list_audit(admin, limit=2, offset=1)[0].id == everything[1].id
    with pytest.raises(ValueError, match="limit"):
        repo.list_audit(admin, limit=0)
    with pytest.raises(ValueError, match="timezone"):
        repo.list_audit(admin, since=utcnow().replace(tzinfo=None))


def test_audit_log_is_append_only_in_the_database(clinic):
    repo = clinic.repo
    for stmt in ("UPDATE audit_events SET action = 'login'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), repo.engine.begin() as conn:
            conn.execute(sa.text(stmt))
    n = len(repo.list_audit(clinic.admin, limit=10_000))
    assert n > 10
