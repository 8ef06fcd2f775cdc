"""Consent: expiry, revocation (history kept, effect immediate), export-time re-check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vein_tracker.errors import ConsentError
from vein_tracker.storage import CHANNELS, ConsentInfo, Screening
from vein_tracker.storage.info import utcnow

from .conftest import photo_bytes

D0 = date(2026, 1, 10)


def _consent(**kw):
    base = dict(
        id=1,
        client_id=1,
        kind="marketing",
        scopes=("website",),
        signed_at=D0,
        expires_at=None,
        recorded_by="x",
        recorded_at=datetime(2026, 1, 10, tzinfo=UTC),
        revoked_at=None,
        revoked_by=None,
        revoke_reason=None,
        note=None,
    )
    base.update(kw)
    return ConsentInfo(**base)


def test_validity_window_is_exact():
    c = _consent(expires_at=D0 + timedelta(days=30))
    assert not c.is_valid(D0 - timedelta(days=1))
    assert c.is_valid(D0)
    assert c.is_valid(D0 + timedelta(days=29))
    assert not c.is_valid(D0 + timedelta(days=30))  # expires at the start of that day
    assert c.status(D0 + timedelta(days=30)) == "expired"
    assert c.is_valid(D0, channel="website")
    assert not c.is_valid(D0, channel="print")
    revoked = _consent(revoked_at=datetime(2026, 2, 1, 15, 0, tzinfo=UTC))
    assert revoked.is_valid(date(2026, 1, 31))
    assert not revoked.is_valid(date(2026, 2, 1))  # the same day: effect immediate
    assert revoked.status(date(2026, 2, 1)) == "revoked"
    assert revoked.status(date(2026, 1, 31)) == "valid"
    assert _consent().status(D0 - timedelta(days=1)) == "not yet signed"


@settings(max_examples=60, deadline=None)
@given(
    signed=st.integers(0, 60),
    expires=st.one_of(st.none(), st.integers(1, 90)),
    revoked=st.one_of(st.none(), st.integers(0, 90)),
    day=st.integers(-10, 120),
    scopes=st.sets(st.sampled_from(CHANNELS), min_size=1),
    channel=st.sampled_from(CHANNELS),
)
def test_validity_matches_the_definition(signed, expires, revoked, day, scopes, channel):
    s = D0 + timedelta(days=signed)
    e = s + timedelta(days=expires) if expires is not None else None
    r = datetime.combine(s + timedelta(days=revoked), datetime.min.time(), UTC) if revoked else None
    d = D0 + timedelta(days=day)
    c = _consent(signed_at=s, expires_at=e, revoked_at=r, scopes=tuple(sorted(scopes)))
    expected = s <= d and (e is None or d < e) and (r is None or d < r.date()) and channel in scopes
    assert c.is_valid(d, channel=channel) is expected


def test_expiry_in_the_repository(clinic):
    repo, aest = clinic.repo, clinic.aest
    today = utcnow().date()
    c = repo.record_consent(
        aest,
        clinic.b.id,
        kind="marketing",
        scopes=["print"],
        signed_at=today - timedelta(days=10),
        expires_at=today + timedelta(days=1),
    )
    assert repo.marketing_consent_valid(clinic.mkt, clinic.b.id, "print")
    assert repo.marketing_consent_valid(clinic.mkt, clinic.b.id, "print", on=today)
    assert not repo.marketing_consent_valid(
        clinic.mkt, clinic.b.id, "print", on=today + timedelta(days=1)
    )
    assert not repo.marketing_consent_valid(clinic.mkt, clinic.b.id, "website")
    assert repo.valid_consent(aest, clinic.b.id, "marketing", channel="print").id == c.id


def test_expired_treatment_consent_blocks_uploads(clinic):
    repo, aest = clinic.repo, clinic.aest
    today = utcnow().date()
    # Client C: consent that expired yesterday.
    c = repo.create_client(aest, name="Cleo Expired")
    repo.record_screening(aest, c.id, Screening())
    repo.record_consent(
        aest,
        c.id,
        kind="treatment_photography",
        signed_at=today - timedelta(days=400),
        expires_at=today,
    )
    area = repo.create_area(aest, c.id, side="left", view="lateral", region="knee")
    visit = repo.create_visit(aest, c.id)
    with pytest.raises(ConsentError, match="treatment-photography consent"):
        repo.add_photo(aest, area.id, visit.id, photo_bytes(40))
    assert repo.list_photos(aest, client_id=c.id) == []
    repo.record_consent(aest, c.id, kind="treatment_photography")
    assert repo.add_photo(aest, area.id, visit.id, photo_bytes(40)).is_baseline


def test_revocation_keeps_history_and_acts_at_once(clinic):
    repo = clinic.repo
    listed = repo.list_marketing_pairs(clinic.mkt, "website")
    assert [p.followup_photo_id for p in listed] == [clinic.p2.id]
    revoked = repo.revoke_consent(clinic.aest, clinic.marketing.id, reason="phone call")
    assert revoked.revoked_at is not None
    assert revoked.revoke_reason == "phone call"
    # History: the record is still there, marked revoked.
    history = repo.list_consents(clinic.aest, clinic.a.id)
    assert [c.id for c in history if c.kind == "marketing"] == [clinic.marketing.id]
    assert history[-1].status() == "revoked"
    # Effect: immediate everywhere.
    assert not repo.marketing_consent_valid(clinic.mkt, clinic.a.id, "website")
    assert repo.list_marketing_pairs(clinic.mkt, "website") == []
    assert repo.recheck_marketing_pairs(clinic.mkt, listed) == []
    with pytest.raises(ConsentError, match="no longer valid"):
        repo.record_export(clinic.mkt, listed, channel="website", filename="pairs.zip")
    assert repo.list_audit(clinic.admin, action="export") == []
    # Revoking again changes nothing.
    again = repo.revoke_consent(clinic.aest, clinic.marketing.id)
    assert again.revoked_at == revoked.revoked_at
    # A new consent restores the pair; the old record stays revoked.
    repo.record_consent(clinic.aest, clinic.a.id, kind="marketing", scopes=["website"])
    assert len(repo.list_marketing_pairs(clinic.mkt, "website")) == 1
    assert len([c for c in repo.list_consents(clinic.aest, clinic.a.id)]) == 3


def test_marketing_pair_filters(clinic):
    repo, mkt = clinic.repo, clinic.mkt
    assert len(repo.list_marketing_pairs(mkt, "social", min_improvement=75)) == 1
    assert repo.list_marketing_pairs(mkt, "social", min_improvement=85) == []
    assert repo.list_marketing_pairs(mkt, "social", region="thigh") == []
    assert len(repo.list_marketing_pairs(mkt, "social", region="calf")) == 1
    assert repo.list_marketing_pairs(mkt, "social", since=utcnow().date()) == []
    # On a day before the consent was signed, nothing is offered.
    assert repo.list_marketing_pairs(mkt, "social", on=clinic.start - timedelta(days=1)) == []
    with pytest.raises(ValueError, match="channel"):
        repo.list_marketing_pairs(mkt, "tv")


def test_consent_input_rules(clinic):
    repo, aest = clinic.repo, clinic.aest
    with pytest.raises(ValueError, match="scopes must name"):
        repo.record_consent(aest, clinic.a.id, kind="marketing")
    with pytest.raises(ValueError, match="marketing consent only"):
        repo.record_consent(aest, clinic.a.id, kind="treatment_photography", scopes=["print"])
    with pytest.raises(ValueError, match="scopes"):
        repo.record_consent(aest, clinic.a.id, kind="marketing", scopes=["billboard"])
    with pytest.raises(ValueError, match="kind"):
        repo.record_consent(aest, clinic.a.id, kind="everything")
    with pytest.raises(ValueError, match="expires_at"):
        repo.record_consent(
            aest, clinic.a.id, kind="marketing", scopes=["print"], expires_at=date(2000, 1, 1)
        )
    with pytest.raises(ValueError, match="future"):
        repo.revoke_consent(aest, clinic.marketing.id, revoked_at=utcnow() + timedelta(days=2))
    with pytest.raises(ValueError, match="timezone"):
        repo.revoke_consent(aest, clinic.marketing.id, revoked_at=datetime(2026, 1, 1))
