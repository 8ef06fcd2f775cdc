"""Access beyond the role: whose record, which consent, which channel; admin and clinic."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from vein_tracker.errors import AccessDenied
from vein_tracker.storage import Actor

from .conftest import photo_bytes

# Which role may call which method is the security suite's matrix
# (tests/security/test_access_matrix.py, read from the policy table); here: the owner,
# consent and channel rules on top of it, on both backends.


def test_admin_runs_the_installation_not_the_treatment(clinic):
    """Admin manages accounts, reads the audit log and exports consented pairs; the
    clinical records (health data) are the treating staff's and the client's."""
    repo = clinic.repo
    assert {u.username for u in repo.list_users(clinic.admin)} >= {"ann.client", "erin.aesth"}
    assert repo.list_audit(clinic.admin, action="photo_upload")
    assert repo.get_photo_bytes(clinic.admin, clinic.p1.id, channel="website") == photo_bytes(1)
    for read in (
        lambda: repo.get_client(clinic.admin, clinic.a.id),
        lambda: repo.list_clients(clinic.admin),
        lambda: repo.get_photo_bytes(clinic.admin, clinic.p1.id),
        lambda: repo.get_photo(clinic.admin, clinic.pb.id, channel="website"),
        lambda: repo.valid_consent(clinic.admin, clinic.a.id, "treatment_photography"),
        lambda: repo.create_client(clinic.admin, name="New Person"),
    ):
        with pytest.raises(AccessDenied):
            read()


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
