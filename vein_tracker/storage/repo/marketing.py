"""Marketing: consented before/after pairs and the audit of their export.

Owns no table of its own: a pair is an area's baseline and a later photo of a client
whose marketing consent covers the channel today. The ZIP itself is built by
:mod:`vein_tracker.export`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...errors import ConsentError
from ...outcome import reaches
from ...policy import Action
from .. import models as m
from ..info import CHANNELS, REGIONS, Actor, ConsentInfo, MarketingPair, utcnow
from .analyses import version_key
from .base import RepositoryBase
from .common import add_audit, choice
from .consent import valid_marketing_consent
from .rows import consent_info


class MarketingRecords(RepositoryBase):
    """Consented before/after pairs (part of :class:`~vein_tracker.storage.Repository`)."""

    def list_marketing_pairs(
        self,
        actor: Actor,
        channel: str,
        *,
        on: date | None = None,
        region: str | None = None,
        min_improvement: float | None = None,
        since: date | None = None,
        until: date | None = None,
        latest_only: bool = False,
    ) -> list[MarketingPair]:
        """Before/after pairs whose client's marketing consent covers ``channel`` on ``on``.

        For whoever may export marketing pairs (:mod:`vein_tracker.policy`). A pair is
        (area baseline, a later photo of the same area). ``region`` filters the body
        region; ``min_improvement`` (percent) keeps analysed pairs that reach it by the
        target rule (:func:`vein_tracker.outcome.reaches`: the band's lower end);
        ``since``/``until`` bound the follow-up date; ``latest_only`` keeps the newest
        follow-up per area. Run :meth:`recheck_marketing_pairs` again right before
        exporting.
        """
        self._require(actor, Action.EXPORT_MARKETING)
        choice(channel, CHANNELS, "channel")
        if region is not None:
            choice(region, REGIONS, "region")
        day = on or utcnow().date()

        def body(s: Session) -> list[MarketingPair]:
            return _marketing_pairs(
                s,
                channel,
                day,
                region=region,
                min_improvement=min_improvement,
                since=since,
                until=until,
                latest_only=latest_only,
            )

        return self._guard(actor, body, write=False)

    def marketing_pairs(self, actor: Actor, channel: str, **filters: Any) -> list[MarketingPair]:
        """Same as :meth:`list_marketing_pairs`."""
        return self.list_marketing_pairs(actor, channel, **filters)

    def recheck_marketing_pairs(
        self,
        actor: Actor,
        pairs: Sequence[MarketingPair],
        *,
        on: date | None = None,
    ) -> list[MarketingPair]:
        """The subset of ``pairs`` whose marketing consent is still valid now for their
        channel (a revocation since they were listed removes them). For whoever may
        export marketing pairs.
        """
        self._require(actor, Action.EXPORT_MARKETING)
        day = on or utcnow().date()

        def body(s: Session) -> list[MarketingPair]:
            out = []
            for p in pairs:
                c = valid_marketing_consent(s, p.client_id, p.channel, day)
                if c is None:
                    continue
                photo_b = s.get(m.Photo, p.baseline_photo_id)
                photo_f = s.get(m.Photo, p.followup_photo_id)
                if (
                    photo_b is None
                    or photo_f is None
                    or photo_b.client_id != p.client_id
                    or photo_f.client_id != p.client_id
                ):
                    continue
                out.append(p)
            return out

        return self._guard(actor, body, write=False)

    def record_export(
        self,
        actor: Actor,
        pairs: Sequence[MarketingPair],
        *,
        channel: str,
        filename: str,
        sha256s: Mapping[str, str] | None = None,
    ) -> None:
        """Audit a marketing export; re-checks every pair's consent in the same transaction.

        Raises
        ------
        ConsentError
            A pair's consent is no longer valid (nothing is recorded): drop it and
            export again.
        """
        self._require(actor, Action.EXPORT_MARKETING)
        choice(channel, CHANNELS, "channel")
        today = utcnow().date()

        def body(s: Session) -> None:
            for p in pairs:
                if (
                    p.channel != channel
                    or valid_marketing_consent(s, p.client_id, channel, today) is None
                ):
                    raise ConsentError(
                        f"The marketing consent for pair {p.anon_id[:8]} is no longer valid for "
                        f"{channel}: it was removed; export again without it."
                    )
            for p in pairs:
                add_audit(
                    s,
                    actor,
                    "export",
                    target=("area", p.area_id),
                    client_id=p.client_id,
                    detail={
                        "channel": channel,
                        "file": Path(filename).name[:200],
                        "anon_id": p.anon_id,
                        "consent_id": p.consent_id,
                        "photos": [p.baseline_photo_id, p.followup_photo_id],
                        "sha256": dict(sha256s or {}).get(p.anon_id),
                    },
                )
            if not pairs:
                add_audit(
                    s, actor, "export", detail={"channel": channel, "file": Path(filename).name}
                )

        self._guard(actor, body, write=True)


def _marketing_pairs(
    s: Session,
    channel: str,
    day: date,
    *,
    region: str | None,
    min_improvement: float | None,
    since: date | None,
    until: date | None,
    latest_only: bool,
) -> list[MarketingPair]:
    out: list[MarketingPair] = []
    client_ids = s.scalars(
        sa.select(m.Consent.client_id).where(m.Consent.kind == "marketing").distinct()
    )
    for cid in sorted(client_ids):
        consent = valid_marketing_consent(s, cid, channel, day)
        if consent is None:
            continue
        cinfo = consent_info(s, consent)
        areas = s.scalars(
            sa.select(m.TreatmentArea)
            .where(m.TreatmentArea.client_id == cid)
            .order_by(m.TreatmentArea.id)
        )
        for area in areas:
            if region is not None and area.region != region:
                continue
            area_pairs = _area_pairs(
                s,
                area,
                cid,
                cinfo,
                channel,
                min_improvement=min_improvement,
                since=since,
                until=until,
            )
            if latest_only and area_pairs:
                area_pairs = area_pairs[-1:]
            out.extend(area_pairs)
    return out


def _area_pairs(
    s: Session,
    area: m.TreatmentArea,
    cid: int,
    cinfo: ConsentInfo,
    channel: str,
    *,
    min_improvement: float | None,
    since: date | None,
    until: date | None,
) -> list[MarketingPair]:
    """An area's (baseline, later visit) pairs that may be exported, in visit order."""
    base = s.get(m.AreaBaseline, area.id)
    if base is None:
        return []
    bp = s.get_one(m.Photo, base.photo_id)
    bv = s.get_one(m.Visit, bp.visit_id)
    if bp.status != "ok" or bp.deleted_at is not None:  # issue 24 (H6)
        return []
    # issue 24 (H6): the photo that counts for each later visit, if it is usable;
    # alternates, deleted, unmatched and refused photos are never exported.
    rows = s.execute(
        sa.select(m.Photo, m.Visit)
        .join(m.Visit, m.Visit.id == m.Photo.visit_id)
        .join(m.PrimaryPhoto, m.PrimaryPhoto.photo_id == m.Photo.id)
        .where(
            m.Photo.area_id == area.id,
            m.Visit.visit_date > bv.visit_date,
            m.Photo.status == "ok",
            m.Photo.deleted_at.is_(None),
            m.Visit.deleted_at.is_(None),
        )
        .order_by(m.Visit.visit_date, m.Photo.id)
    )
    area_pairs = []
    for fp, fv in rows:
        if since is not None and fv.visit_date < since:
            continue
        if until is not None and fv.visit_date > until:
            continue
        best = _newest_analysis(s, bp.id, fp.id)
        improvement = best.improvement_pct if best else None
        if min_improvement is not None and (
            best is None or not reaches(best.result, min_improvement)
        ):
            continue
        area_pairs.append(
            MarketingPair(
                anon_id=area.anon_id,
                client_id=cid,
                area_id=area.id,
                area_label=f"{area.side} {area.region}, {area.view}",
                channel=channel,
                baseline_photo_id=bp.id,
                followup_photo_id=fp.id,
                baseline_sha256=bp.sha256,
                followup_sha256=fp.sha256,
                baseline_date=bv.visit_date,
                followup_date=fv.visit_date,
                weeks=round((fv.visit_date - bv.visit_date).days / 7.0, 1),
                session_count=fv.session_number,
                improvement_pct=improvement,
                analysis_id=best.id if best else None,
                algorithm_version=best.algorithm_version if best else None,
                consent_id=cinfo.id,
                consent_scopes=cinfo.scopes,
                consent_expires_at=cinfo.expires_at,
            )
        )
    return area_pairs


def _newest_analysis(s: Session, baseline_id: int, followup_id: int) -> m.Analysis | None:
    """The pair's analysis of the newest algorithm version (then the latest saved)."""
    analyses = list(
        s.scalars(
            sa.select(m.Analysis).where(
                m.Analysis.baseline_photo_id == baseline_id,
                m.Analysis.followup_photo_id == followup_id,
            )
        )
    )
    return (
        max(
            analyses,
            key=lambda r: (version_key(r.algorithm_version), r.created_at, r.id),
        )
        if analyses
        else None
    )
