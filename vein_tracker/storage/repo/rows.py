"""ORM rows -> the frozen records of :mod:`vein_tracker.storage.info`.

One converter per record type, used inside a transaction; callers outside storage
never see ORM objects.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import models as m
from ..info import (
    SCREENING_QUESTIONS,
    AnalysisInfo,
    AreaInfo,
    AuditInfo,
    ClientInfo,
    ConsentInfo,
    PhotoInfo,
    Screening,
    UserInfo,
    VisitInfo,
)


def user_info(u: m.User) -> UserInfo:
    return UserInfo(
        id=u.id,
        username=u.username,
        role=u.role,
        client_id=u.client_id,
        active=bool(u.active),
        must_change_password=bool(u.must_change_password),
        failed_logins=int(u.failed_logins),
        locked_until=u.locked_until,
        last_login_at=u.last_login_at,
        created_at=u.created_at,
    )


def client_info(c: m.Client) -> ClientInfo:
    screening = None
    if c.screened_at is not None:
        screening = Screening(**{q: bool(getattr(c, f"scr_{q}")) for q in SCREENING_QUESTIONS})
    return ClientInfo(
        id=c.id,
        name=c.name,
        date_of_birth=c.date_of_birth,
        email=c.email,
        phone=c.phone,
        address=c.address,
        fitzpatrick=c.fitzpatrick,
        notes=c.notes,
        screening=screening,
        screened_at=c.screened_at,
        screened_by=c.screened_by,
        override_reason=c.screening_override_reason,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def area_info(s: Session, a: m.TreatmentArea) -> AreaInfo:
    b = s.get(m.AreaBaseline, a.id)
    return AreaInfo(
        id=a.id,
        client_id=a.client_id,
        side=a.side,
        view=a.view,
        region=a.region,
        note=a.note,
        anon_id=a.anon_id,
        baseline_photo_id=b.photo_id if b else None,
        created_at=a.created_at,
    )


def username_of(s: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return "system"
    u = s.get(m.User, user_id)
    return u.username if u else None


def visit_info(s: Session, v: m.Visit) -> VisitInfo:
    areas = tuple(
        sorted(s.scalars(sa.select(m.VisitArea.area_id).where(m.VisitArea.visit_id == v.id)))
    )
    return VisitInfo(
        id=v.id,
        client_id=v.client_id,
        session_number=v.session_number,
        visit_date=v.visit_date,
        aesthetician_id=v.aesthetician_id,
        aesthetician=username_of(s, v.aesthetician_id),
        sclerosant=v.sclerosant,
        concentration_pct=v.concentration_pct,
        volume_ml=v.volume_ml,
        area_ids=areas,
        notes=v.notes,
        next_window_start=v.next_window_start,
        next_window_end=v.next_window_end,
        created_at=v.created_at,
        deleted_at=v.deleted_at,  # issue 24 (H6)
        delete_reason=v.delete_reason,
    )


def photo_info(s: Session, p: m.Photo) -> PhotoInfo:
    v = s.get_one(m.Visit, p.visit_id)
    b = s.get(m.AreaBaseline, p.area_id)
    return PhotoInfo(
        id=p.id,
        client_id=p.client_id,
        area_id=p.area_id,
        visit_id=p.visit_id,
        visit_date=v.visit_date,
        session_number=v.session_number,
        sha256=p.sha256,
        size_bytes=int(p.size_bytes),
        width=p.width,
        height=p.height,
        format=p.format,
        original_filename=p.original_filename,
        capture_time=p.capture_time,
        px_per_mm=p.px_per_mm,
        capture_report=dict(p.capture_report) if p.capture_report is not None else None,
        is_baseline=b is not None and b.photo_id == p.id,
        uploaded_at=p.uploaded_at,
        uploaded_by=username_of(s, p.uploaded_by_id),
        # issue 24 (H6): primary photo, status, soft delete
        is_primary=(pp := s.get(m.PrimaryPhoto, (p.area_id, p.visit_id))) is not None
        and pp.photo_id == p.id,
        status=p.status,
        status_reason=p.status_reason,
        deleted_at=p.deleted_at,
        delete_reason=p.delete_reason,
        replaced_by_id=p.replaced_by_id,
    )


def consent_info(s: Session, c: m.Consent) -> ConsentInfo:
    scopes = tuple(
        ch
        for ch, flag in (
            ("website", c.scope_website),
            ("social", c.scope_social),
            ("print", c.scope_print),
        )
        if flag
    )
    return ConsentInfo(
        id=c.id,
        client_id=c.client_id,
        kind=c.kind,
        scopes=scopes,
        signed_at=c.signed_at,
        expires_at=c.expires_at,
        recorded_by=username_of(s, c.recorded_by_id),
        recorded_at=c.recorded_at,
        revoked_at=c.revoked_at,
        revoked_by=username_of(s, c.revoked_by_id) if c.revoked_at else None,
        revoke_reason=c.revoke_reason,
        note=c.note,
    )


def analysis_info(s: Session, r: m.Analysis) -> AnalysisInfo:
    masks = {
        mk.name: mk.sha256
        for mk in s.scalars(sa.select(m.AnalysisMask).where(m.AnalysisMask.analysis_id == r.id))
    }
    return AnalysisInfo(
        id=r.id,
        client_id=r.client_id,
        area_id=r.area_id,
        baseline_photo_id=r.baseline_photo_id,
        followup_photo_id=r.followup_photo_id,
        params_hash=r.params_hash,
        params=dict(r.params),
        algorithm_version=r.algorithm_version,
        result=dict(r.result),
        improvement_pct=r.improvement_pct,
        meets_target=r.meets_target,
        masks=masks,
        created_at=r.created_at,
        created_by=username_of(s, r.created_by_id),
    )


def audit_info(e: m.AuditEvent) -> AuditInfo:
    return AuditInfo(
        id=e.id,
        at=e.at,
        user_id=e.user_id,
        username=e.username,
        role=e.role,
        action=e.action,
        target_type=e.target_type,
        target_id=e.target_id,
        client_id=e.client_id,
        ok=bool(e.ok),
        detail=dict(e.detail or {}),
    )
