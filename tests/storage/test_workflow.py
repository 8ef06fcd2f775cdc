"""Photos and visits as a clinic uses them (issue 24 items 1-3, 5): the repository side.

One primary photo per area and visit (a second photo is an alternate); the photo status
(ok / unmatched / refused) keeps a photo out of figures and exports; delete and retake are
soft, with the reason, who and when; a deleted visit frees its number; the retention rule
removes the bytes of photos deleted long ago; refusals are audited with who, what and why.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.clinic_util import photo_bytes
from vein_tracker.cli import main
from vein_tracker.errors import AccessDenied, PhotoError, StorageError
from vein_tracker.storage import Actor
from vein_tracker.storage import models as m


def test_second_photo_of_a_visit_is_an_alternate_and_can_be_chosen(clinic) -> None:
    repo, aest = clinic.repo, clinic.aest
    assert repo.get_photo(aest, clinic.p2.id).is_primary
    alt = repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, photo_bytes(50), filename="b.jpg")
    assert not alt.is_primary
    assert repo.get_photo(aest, clinic.p2.id).is_primary
    chosen = repo.set_primary_photo(aest, alt.id)
    assert chosen.is_primary
    assert not repo.get_photo(aest, clinic.p2.id).is_primary
    events = repo.list_audit(clinic.admin, action="photo_primary")
    assert events[0].detail["previous"] == clinic.p2.id


def test_unmatched_and_refused_photos_are_never_exported(clinic) -> None:
    repo, aest = clinic.repo, clinic.aest
    listed = repo.list_marketing_pairs(clinic.mkt, "website")
    assert [p.followup_photo_id for p in listed if p.area_id == clinic.area_a.id] == [clinic.p2.id]
    with pytest.raises(ValueError, match="reason"):
        repo.set_photo_status(aest, clinic.p2.id, "refused")
    refused = repo.set_photo_status(aest, clinic.p2.id, "refused", reason="did not align")
    assert (refused.status, refused.usable) == ("refused", False)
    assert not [
        p for p in repo.list_marketing_pairs(clinic.mkt, "website") if p.area_id == clinic.area_a.id
    ]
    # Even a crafted request for the photo's bytes under a marketing channel is refused.
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.mkt, clinic.p2.id, channel="website")
    # An unmatched upload is kept apart with its reason; staff still see it.
    v3 = repo.create_visit(aest, clinic.a.id, visit_date=clinic.start + timedelta(weeks=8))
    odd = repo.add_photo(
        aest, clinic.area_a.id, v3.id, photo_bytes(51), status="unmatched", status_reason="leg?"
    )
    assert (odd.status, odd.status_reason, odd.is_primary) == ("unmatched", "leg?", True)
    assert repo.list_audit(clinic.admin, action="photo_upload")[0].detail["status"] == "unmatched"


def test_delete_and_retake_are_soft_and_audited(clinic) -> None:
    repo, aest = clinic.repo, clinic.aest
    with pytest.raises(ValueError, match="reason"):
        repo.delete_photo(aest, clinic.p2.id, reason="  ")
    # The baseline, with a later photo compared against it, is retaken, not deleted.
    with pytest.raises(ValueError, match="baseline"):
        repo.delete_photo(aest, clinic.p1.id, reason="blurred")
    alt = repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, photo_bytes(52))
    gone = repo.delete_photo(aest, clinic.p2.id, reason="blurred")
    assert gone.deleted_at is not None
    assert gone.delete_reason == "blurred"
    # Hidden from lists; the alternate now counts for the visit.
    ids = [p.id for p in repo.list_photos(aest, area_id=clinic.area_a.id)]
    assert clinic.p2.id not in ids
    assert repo.get_photo(aest, alt.id).is_primary
    assert [p.id for p in repo.list_deleted_photos(aest, clinic.area_a.id)] == [clinic.p2.id]
    # The owning client no longer sees it at all.
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.client_a, clinic.p2.id)
    # Retake of the baseline: the new photo becomes baseline and primary.
    new = repo.add_photo(aest, clinic.area_a.id, clinic.v1.id, photo_bytes(53))
    retaken = repo.replace_photo(aest, clinic.p1.id, new.id, reason="out of focus")
    assert retaken.is_baseline
    assert retaken.is_primary
    old = repo.get_photo(aest, clinic.p1.id)
    assert (old.replaced_by_id, old.delete_reason) == (new.id, "out of focus")
    actions = {e.action for e in repo.list_audit(clinic.admin) if e.username == aest.username}
    assert {"photo_delete", "photo_retake"} <= actions
    # Sending the same bytes again restores a deleted photo.
    back = repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, photo_bytes(2))
    assert (back.id, back.deleted_at) == (clinic.p2.id, None)


def test_a_deleted_visit_is_hidden_and_frees_its_number(clinic) -> None:
    repo, aest = clinic.repo, clinic.aest
    v3 = repo.create_visit(aest, clinic.a.id, visit_date=clinic.start + timedelta(weeks=8))
    repo.add_photo(aest, clinic.area_a.id, v3.id, photo_bytes(54))
    assert v3.session_number == 3
    with pytest.raises(ValueError, match="baseline"):
        repo.delete_visit(aest, clinic.v1.id, reason="wrong client")
    repo.delete_visit(aest, v3.id, reason="started for the wrong client")
    assert [v.session_number for v in repo.list_visits(aest, clinic.a.id)] == [1, 2]
    assert all(p.visit_id != v3.id for p in repo.list_photos(aest, client_id=clinic.a.id))
    with pytest.raises(ValueError, match="deleted"):
        repo.add_photo(aest, clinic.area_a.id, v3.id, photo_bytes(55))
    again = repo.create_visit(aest, clinic.a.id, visit_date=clinic.start + timedelta(weeks=8))
    assert again.session_number == 3
    (event,) = repo.list_audit(clinic.admin, action="visit_delete")
    assert event.detail["session_number"] == 3
    assert event.detail["reason"] == "started for the wrong client"


def test_retention_removes_old_deleted_bytes_only(clinic, capsys) -> None:
    repo, aest = clinic.repo, clinic.aest
    alt = repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, photo_bytes(56))
    repo.delete_photo(aest, alt.id, reason="duplicate")
    sha = repo.get_photo(aest, alt.id).sha256
    assert repo.purge_deleted_photos(clinic.admin) == 0  # not 30 days old yet
    assert repo.store.exists(sha)
    with pytest.raises(AccessDenied):
        repo.purge_deleted_photos(aest)
    with Session(repo.engine.execution_options(vt_write=True)) as s, s.begin():
        p = s.get_one(m.Photo, alt.id)
        p.deleted_at = p.deleted_at - timedelta(days=31)
    # The rule runs from the command line (a daily job): `vein-tracker purge-deleted`.
    assert main(["purge-deleted", "--days", "40", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"purged_photos": 0, "days": 40.0}
    assert repo.store.exists(sha)
    assert main(["purge-deleted", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"purged_photos": 1, "days": 30.0}
    assert not repo.store.exists(sha)
    assert sha not in repo.referenced_hashes()  # fsck does not look for it any more
    with pytest.raises(StorageError):
        repo.get_photo_bytes(aest, alt.id)
    assert repo.purge_deleted_photos(clinic.admin) == 0


def test_refusals_are_audited_with_who_what_and_why(clinic) -> None:
    repo, aest = clinic.repo, clinic.aest
    # A second visit on one date without saying so.
    day = clinic.start + timedelta(weeks=10)
    repo.create_visit(aest, clinic.a.id, visit_date=day)
    with pytest.raises(ValueError, match="already has session"):
        repo.create_visit(aest, clinic.a.id, visit_date=day)
    # A concentration that is a typing error.
    with pytest.raises(ValueError, match="11.7–23.4 %"):
        repo.create_visit(
            aest,
            clinic.a.id,
            visit_date=day + timedelta(days=1),
            sclerosant="hypertonic_saline",
            concentration_pct=0.5,
        )
    # An upload that is not a photo.
    with pytest.raises(PhotoError, match="not a photo"):
        repo.add_photo(aest, clinic.area_a.id, clinic.v2.id, b"%PDF-1.4 not a photo")
    # An override without its reason.
    from vein_tracker.storage import Screening

    with pytest.raises(ValueError, match="override_reason"):
        repo.record_screening(aest, clinic.a.id, Screening(pregnancy=True), override=True)
    refused = repo.list_audit(clinic.admin, ok=False)
    kinds = {(e.action, e.username) for e in refused}
    assert {
        ("visit_create", aest.username),
        ("photo_upload", aest.username),
        ("screening_record", aest.username),
    } <= kinds
    reasons = " | ".join(str(e.detail.get("reason")) for e in refused)
    for needle in ("already has session", "11.7–23.4 %", "not a photo", "override_reason"):
        assert needle in reasons
    # A refusal logged for a forged actor names the claimed user, not an account.
    forged = Actor(user_id=aest.user_id, username="mallory", role="admin")
    repo.log_refusal(forged, "access_denied", reason="page users")
    (last,) = repo.list_audit(clinic.admin, action="access_denied", ok=False, limit=1)
    assert last.username is None
    assert last.detail["claimed_user"] == "mallory"
    with repo.engine.connect() as conn:
        n = conn.execute(sa.text("SELECT COUNT(*) FROM audit_events WHERE ok = false")).scalar()
    assert n >= 5
