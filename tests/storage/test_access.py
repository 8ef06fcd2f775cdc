"""Every access rule, by role: allowed calls succeed, forbidden ones raise AccessDenied."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from vein_tracker.errors import AccessDenied
from vein_tracker.storage import Actor, Repository, Screening

from .conftest import photo_bytes

ROLES = ("admin", "aest", "client_a", "client_b", "mkt")
STAFF = {"admin", "aest"}
OWNER = {"admin", "aest", "client_a"}

Op = Callable[[Repository, SimpleNamespace, Actor], Any]

# Reads of client A's records: staff and A's own account only.
READS: dict[str, Op] = {
    "get_client": lambda r, c, a: r.get_client(a, c.a.id),
    "list_areas": lambda r, c, a: r.list_areas(a, c.a.id),
    "get_area": lambda r, c, a: r.get_area(a, c.area_a.id),
    "list_visits": lambda r, c, a: r.list_visits(a, c.a.id),
    "get_visit": lambda r, c, a: r.get_visit(a, c.v1.id),
    "list_photos": lambda r, c, a: r.list_photos(a, client_id=c.a.id),
    "list_photos_area": lambda r, c, a: r.list_photos(a, area_id=c.area_a.id),
    "get_photo": lambda r, c, a: r.get_photo(a, c.p1.id),
    "get_photo_bytes": lambda r, c, a: r.get_photo_bytes(a, c.p1.id),
    "load_photo": lambda r, c, a: r.load_photo(a, c.p2.id),
    "baseline_photo": lambda r, c, a: r.baseline_photo(a, c.area_a.id),
    "list_consents": lambda r, c, a: r.list_consents(a, c.a.id),
    "valid_consent": lambda r, c, a: r.valid_consent(a, c.a.id, "treatment_photography"),
    "get_analysis": lambda r, c, a: r.get_analysis(
        a, c.p1.id, c.p2.id, params={"sensitivity": 0.5}
    ),
    "get_analysis_by_id": lambda r, c, a: r.get_analysis_by_id(a, c.analysis.id),
    "list_analyses": lambda r, c, a: r.list_analyses(a, c.area_a.id),
    "load_analysis_masks": lambda r, c, a: r.load_analysis_masks(a, c.analysis.id),
}

# Writes: staff only.
WRITES: dict[str, Op] = {
    "create_client": lambda r, c, a: r.create_client(a, name="New Person"),
    "update_client": lambda r, c, a: r.update_client(a, c.a.id, phone="123"),
    "record_screening": lambda r, c, a: r.record_screening(a, c.a.id, Screening()),
    "create_area": lambda r, c, a: r.create_area(
        a, c.a.id, side="right", view="medial", region="knee"
    ),
    "update_area": lambda r, c, a: r.update_area(a, c.area_a.id, note="n"),
    "create_visit": lambda r, c, a: r.create_visit(a, c.a.id),
    "update_visit": lambda r, c, a: r.update_visit(a, c.v1.id, notes="x"),
    "add_photo": lambda r, c, a: r.add_photo(a, c.area_a.id, c.v2.id, photo_bytes(50)),
    "update_photo": lambda r, c, a: r.update_photo(a, c.p2.id, px_per_mm=9.0),
    "set_baseline": lambda r, c, a: r.set_baseline(a, c.p1.id),
    "save_analysis": lambda r, c, a: r.save_analysis(
        a, c.p1.id, c.p2.id, params={"s": 1}, result={"improvement_pct": 1.0}
    ),
    "record_consent": lambda r, c, a: r.record_consent(a, c.a.id, kind="treatment_photography"),
    # Revokes a fresh extra consent, so A's original one stays valid for the other cases.
    "revoke_treatment_consent": lambda r, c, a: r.revoke_consent(
        a, r.record_consent(c.aest, c.a.id, kind="treatment_photography").id
    ),
    "list_unanalysed_pairs": lambda r, c, a: r.list_unanalysed_pairs(a),
    "list_stale_analyses": lambda r, c, a: r.list_stale_analyses(a),
}

ADMIN_ONLY: dict[str, Op] = {
    "create_user": lambda r, c, a: r.create_user(
        a, f"new.{a.username}", "another long pw", "marketing"
    ),
    "invite_user": lambda r, c, a: r.invite_user(a, f"inv.{a.username}", "aesthetician"),
    "update_user": lambda r, c, a: r.update_user(a, c.mkt.user_id, unlock=True),
    "set_password": lambda r, c, a: r.set_password(a, c.mkt.user_id, "brand new password"),
    "reset_password": lambda r, c, a: r.reset_password(a, c.mkt.user_id),
    "list_users": lambda r, c, a: r.list_users(a),
    "get_other_user": lambda r, c, a: r.get_user(
        a, c.aest.user_id if a.role == "admin" else c.admin.user_id
    ),
    "list_audit": lambda r, c, a: r.list_audit(a),
    "audit_log": lambda r, c, a: r.audit_log(a, action="login"),
}

MARKETING: dict[str, Op] = {
    "list_marketing_pairs": lambda r, c, a: r.list_marketing_pairs(a, "website"),
    "recheck_marketing_pairs": lambda r, c, a: r.recheck_marketing_pairs(a, []),
    "record_export": lambda r, c, a: r.record_export(a, [], channel="website", filename="x.zip"),
    "log_export": lambda r, c, a: r.log_event(a, "export", detail={"n": 0}),
}


def _cases(ops: dict[str, Op], allowed: set[str]) -> list[Any]:
    return [
        pytest.param(name, role, role in allowed, id=f"{name}-{role}")
        for name in ops
        for role in ROLES
    ]


def _check(repo: Repository, clinic: SimpleNamespace, op: Op, role: str, allowed: bool) -> None:
    actor = getattr(clinic, role)
    if allowed:
        op(repo, clinic, actor)
    else:
        with pytest.raises(AccessDenied):
            op(repo, clinic, actor)


# The matrix shares one clinic per backend (module scope): every allowed write above is
# additive or idempotent, so the order of the cases does not matter.


@pytest.mark.parametrize(("name", "role", "allowed"), _cases(READS, OWNER))
def test_reads_of_a_clients_records(shared_repo, shared_clinic, name, role, allowed):
    _check(shared_repo, shared_clinic, READS[name], role, allowed)


@pytest.mark.parametrize(("name", "role", "allowed"), _cases(WRITES, STAFF))
def test_only_staff_write(shared_repo, shared_clinic, name, role, allowed):
    _check(shared_repo, shared_clinic, WRITES[name], role, allowed)


@pytest.mark.parametrize(("name", "role", "allowed"), _cases(ADMIN_ONLY, {"admin"}))
def test_only_admin_manages_users_and_reads_audit(shared_repo, shared_clinic, name, role, allowed):
    _check(shared_repo, shared_clinic, ADMIN_ONLY[name], role, allowed)


@pytest.mark.parametrize(("name", "role", "allowed"), _cases(MARKETING, {"admin", "mkt"}))
def test_marketing_functions(shared_repo, shared_clinic, name, role, allowed):
    _check(shared_repo, shared_clinic, MARKETING[name], role, allowed)


def test_failed_writes_change_nothing(clinic):
    repo = clinic.repo
    before = repo.list_photos(clinic.aest, client_id=clinic.a.id)
    for actor in (clinic.client_a, clinic.client_b, clinic.mkt):
        with pytest.raises(AccessDenied):
            repo.add_photo(actor, clinic.area_a.id, clinic.v2.id, photo_bytes(77))
        with pytest.raises(AccessDenied):
            repo.update_client(actor, clinic.a.id, name="Hacked")
    assert repo.list_photos(clinic.aest, client_id=clinic.a.id) == before
    assert repo.get_client(clinic.aest, clinic.a.id).name == "Ann Example"


def test_client_search_sees_only_itself(clinic):
    repo = clinic.repo
    assert [c.id for c in repo.search_clients(clinic.client_a)] == [clinic.a.id]
    assert repo.search_clients(clinic.client_a, "Bea") == []
    assert {c.id for c in repo.list_clients(clinic.aest)} == {clinic.a.id, clinic.b.id}
    with pytest.raises(AccessDenied):
        repo.search_clients(clinic.mkt)
    with pytest.raises(AccessDenied):
        repo.list_photos(clinic.client_a, client_id=clinic.b.id)
    with pytest.raises(AccessDenied):
        repo.list_photos(clinic.mkt, client_id=clinic.a.id)
    # A client listing by area or visit of another client is refused too.
    with pytest.raises(AccessDenied):
        repo.list_photos(clinic.client_a, area_id=clinic.area_b.id)
    own = repo.list_photos(clinic.client_a)
    assert {p.id for p in own} == {clinic.p1.id, clinic.p2.id}


def test_missing_and_forbidden_ids_look_the_same(clinic):
    repo = clinic.repo
    with pytest.raises(AccessDenied) as forbidden:
        repo.get_photo(clinic.client_b, clinic.p1.id)
    with pytest.raises(AccessDenied) as missing:
        repo.get_photo(clinic.client_b, 99_999)
    assert "not yours" in str(missing.value)
    assert type(forbidden.value) is type(missing.value)


def test_marketing_reads_only_consented_photos(clinic):
    repo = clinic.repo
    # Client A consented to website and social, not print; client B never consented.
    assert repo.get_photo_bytes(clinic.mkt, clinic.p1.id, channel="website") == photo_bytes(1)
    assert repo.get_photo(clinic.mkt, clinic.p2.id, channel="social").id == clinic.p2.id
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.mkt, clinic.p1.id)  # no channel named
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.mkt, clinic.p1.id, channel="print")
    with pytest.raises(AccessDenied):
        repo.get_photo_bytes(clinic.mkt, clinic.pb.id, channel="website")
    with pytest.raises(AccessDenied):
        repo.get_client(clinic.mkt, clinic.a.id)
    with pytest.raises(AccessDenied):
        repo.valid_consent(clinic.mkt, clinic.a.id, "treatment_photography")
    assert repo.marketing_consent_valid(clinic.mkt, clinic.a.id, "website")
    with pytest.raises(ValueError, match="channel"):
        repo.get_photo_bytes(clinic.mkt, clinic.p1.id, channel="billboard")


def test_marketing_pairs_hold_no_identity(clinic):
    repo = clinic.repo
    pairs = repo.list_marketing_pairs(clinic.mkt, "website")
    assert len(pairs) == 1
    d = pairs[0].to_dict()
    text = repr(d)
    assert "Ann" not in text
    assert "Example" not in text
    assert d["anon_id"] == clinic.area_a.anon_id
    assert d["improvement_pct"] == 80.0
    assert d["session_count"] == 2
    assert d["weeks"] == 4.0
    assert repo.list_marketing_pairs(clinic.mkt, "print") == []


def test_client_revokes_only_own_marketing_consent(clinic):
    repo = clinic.repo
    treatment = repo.valid_consent(clinic.aest, clinic.a.id, "treatment_photography")
    assert treatment is not None
    with pytest.raises(AccessDenied):
        repo.revoke_consent(clinic.client_a, treatment.id)
    with pytest.raises(AccessDenied):
        repo.revoke_consent(clinic.client_b, clinic.marketing.id)
    with pytest.raises(AccessDenied):
        repo.revoke_consent(clinic.mkt, clinic.marketing.id)
    revoked = repo.revoke_consent(clinic.client_a, clinic.marketing.id)
    assert revoked.revoked_by == "ann.client"
    assert not repo.marketing_consent_valid(clinic.mkt, clinic.a.id, "website")


def test_deactivated_or_changed_account_loses_access_at_once(clinic):
    repo = clinic.repo
    repo.update_user(clinic.admin, clinic.client_a.user_id, active=False)
    with pytest.raises(AccessDenied, match="sign in again"):
        repo.get_client(clinic.client_a, clinic.a.id)
    repo.update_user(clinic.admin, clinic.aest.user_id, role="marketing")
    with pytest.raises(AccessDenied):
        repo.list_clients(clinic.aest)
    forged = Actor(user_id=clinic.mkt.user_id, username="mark.marketing", role="admin")
    with pytest.raises(AccessDenied):
        repo.list_users(forged)
    forged_client = Actor(
        user_id=clinic.client_b.user_id, username="bea.client", role="client", client_id=clinic.a.id
    )
    with pytest.raises(AccessDenied):
        repo.get_client(forged_client, clinic.a.id)


def test_admin_cannot_lock_itself_out(clinic):
    repo = clinic.repo
    with pytest.raises(ValueError, match="own account"):
        repo.update_user(clinic.admin, clinic.admin.user_id, active=False)
    with pytest.raises(ValueError, match="own account"):
        repo.update_user(clinic.admin, clinic.admin.user_id, role="aesthetician")


def test_own_user_record_and_password_change(clinic):
    repo = clinic.repo
    assert repo.get_user(clinic.client_a, clinic.client_a.user_id).username == "ann.client"
    with pytest.raises(AccessDenied):
        repo.change_password(clinic.client_a, "wrong old password", "new password 123")
    repo.change_password(clinic.client_a, "correct horse battery", "new password 123")
    assert repo.authenticate("ann.client", "new password 123") == clinic.client_a


def test_mask_and_analysis_reads_check_the_owner(clinic):
    repo = clinic.repo
    masks = repo.load_analysis_masks(clinic.client_a, clinic.analysis.id)
    assert masks["region"].dtype == bool
    assert np.array_equal(masks["region"], np.ones((300, 400), bool))
    later = clinic.start + timedelta(weeks=5)
    v3 = repo.create_visit(clinic.aest, clinic.a.id, visit_date=later)
    assert v3.session_number == 3
    with pytest.raises(AccessDenied):
        repo.get_visit(clinic.client_b, v3.id)
