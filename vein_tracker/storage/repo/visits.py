"""Treatment areas and visits (sessions).

Owns the ``treatment_areas``, ``visits`` and ``visit_areas`` rows. A visit is numbered
in the client's sequence and needs a screening that clears the client for treatment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...hashing import anonymous_id
from ...policy import Action
from .. import models as m
from ..info import (
    REGIONS,
    SCLEROSANTS,
    SCREENING_LABELS,
    SIDES,
    VIEWS,
    Actor,
    AreaInfo,
    VisitInfo,
    check_concentration,
    default_next_window,
    utcnow,
)
from .base import RepositoryBase
from .common import account_id, add_audit, choice, clean_text, get_or_missing
from .rows import area_info, client_info, visit_info
from .workflow import audit_refusal


class VisitRecords(RepositoryBase):
    """Treatment areas and visits (part of :class:`~vein_tracker.storage.Repository`)."""

    def create_area(
        self,
        actor: Actor,
        client_id: int,
        *,
        side: str,
        view: str,
        region: str,
        note: str | None = None,
    ) -> AreaInfo:
        """Add a treatment area to a client (staff only)."""
        self._require(actor, Action.RECORD_VISITS)
        choice(side, SIDES, "side")
        choice(view, VIEWS, "view")
        choice(region, REGIONS, "region")
        text = clean_text(note, field="note")

        def body(s: Session) -> AreaInfo:
            get_or_missing(s, m.Client, client_id, "client")
            a = m.TreatmentArea(
                client_id=client_id,
                side=side,
                view=view,
                region=region,
                note=text,
                anon_id=anonymous_id(),
                created_at=utcnow(),
            )
            s.add(a)
            s.flush()
            add_audit(
                s,
                actor,
                "area_create",
                target=("area", a.id),
                client_id=client_id,
                detail={"side": side, "view": view, "region": region},
            )
            return area_info(s, a)

        return self._guard(actor, body, write=True)

    def update_area(self, actor: Actor, area_id: int, *, note: str | None) -> AreaInfo:
        """Change an area's free-text note (staff only)."""
        self._require(actor, Action.RECORD_VISITS)
        text = clean_text(note, field="note")

        def body(s: Session) -> AreaInfo:
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            a.note = text
            add_audit(s, actor, "area_update", target=("area", a.id), client_id=a.client_id)
            return area_info(s, a)

        return self._guard(actor, body, write=True)

    def get_area(self, actor: Actor, area_id: int) -> AreaInfo:
        """One treatment area (staff, or the owning client)."""

        def body(s: Session) -> AreaInfo:
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            return area_info(s, a)

        return self._guard(actor, body, write=False)

    def list_areas(self, actor: Actor, client_id: int) -> list[AreaInfo]:
        """A client's treatment areas (staff, or the owning client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[AreaInfo]:
            q = sa.select(m.TreatmentArea).where(m.TreatmentArea.client_id == client_id)
            return [area_info(s, a) for a in s.scalars(q.order_by(m.TreatmentArea.id))]

        return self._guard(actor, body, write=False)

    def create_visit(
        self,
        actor: Actor,
        client_id: int,
        *,
        visit_date: date | None = None,
        sclerosant: str | None = None,
        concentration_pct: float | None = None,
        volume_ml: float | None = None,
        area_ids: Iterable[int] = (),
        notes: str | None = None,
        next_window_start: date | None = None,
        next_window_end: date | None = None,
        same_day: bool = False,
    ) -> VisitInfo:
        """Start a visit (staff only); the session number is the client's next one.

        The client must be screened and cleared for treatment (no positive answer, or
        an override reason). The next-appointment window defaults to 1–4 weeks after
        ``visit_date`` (default today, UTC). A second visit on a date that already has
        one is refused unless ``same_day`` says it is meant. Every refusal is audited.

        Raises
        ------
        ValueError
            Not screened / not cleared, a second visit the same day without
            ``same_day``, bad sclerosant or a concentration outside its usual range,
            negative amounts, an area of another client, or a window that ends before
            it starts.
        """
        self._require(actor, Action.RECORD_VISITS)
        day = visit_date or utcnow().date()
        try:  # issue 24 (H6): every refusal is audited with its reason
            return self._create_visit(
                actor,
                client_id,
                day=day,
                sclerosant=sclerosant,
                concentration_pct=concentration_pct,
                volume_ml=volume_ml,
                area_ids=area_ids,
                notes=notes,
                next_window_start=next_window_start,
                next_window_end=next_window_end,
                same_day=same_day,
            )
        except ValueError as exc:
            audit_refusal(
                self,
                actor,
                "visit_create",
                reason=str(exc),
                client_id=client_id if isinstance(client_id, int) else None,
                detail={"visit_date": day.isoformat()},
            )
            raise

    def _create_visit(
        self,
        actor: Actor,
        client_id: int,
        *,
        day: date,
        sclerosant: str | None,
        concentration_pct: float | None,
        volume_ml: float | None,
        area_ids: Iterable[int],
        notes: str | None,
        next_window_start: date | None,
        next_window_end: date | None,
        same_day: bool,
    ) -> VisitInfo:
        fields = _visit_values(
            sclerosant=sclerosant,
            concentration_pct=concentration_pct,
            volume_ml=volume_ml,
            notes=notes,
        )
        check_concentration(fields["sclerosant"], fields["concentration_pct"])  # issue 24
        start, end = next_window_start, next_window_end
        if start is None and end is None:
            start, end = default_next_window(day)
        if start is not None and end is not None and end < start:
            raise ValueError("next_window_end must be on or after next_window_start")
        wanted = sorted(set(int(a) for a in area_ids))

        def body(s: Session) -> VisitInfo:
            # Row lock (PostgreSQL): two visits started at once get consecutive numbers.
            c = get_or_missing(s, m.Client, client_id, "client", lock=True)
            info = client_info(c)
            if info.screening is None:
                raise ValueError(
                    "The client has not been screened for contraindications: record the "
                    "screening before the first session."
                )
            if not info.cleared_for_treatment:
                raise ValueError(
                    "The screening has a positive answer ("
                    + ", ".join(SCREENING_LABELS[q] for q in info.contraindications)
                    + "): record an override reason before treating."
                )
            if not same_day:  # issue 24 (H6): a second visit the same day is asked for
                twin = s.scalar(
                    sa.select(m.Visit).where(
                        m.Visit.client_id == client_id,
                        m.Visit.visit_date == day,
                        m.Visit.deleted_at.is_(None),
                    )
                )
                if twin is not None:
                    raise ValueError(
                        f"{c.name} already has session {twin.session_number} on {day:%d %b %Y}. "
                        "Add the photos to that visit, or confirm that a second visit on the "
                        "same date is meant."
                    )
            _check_areas(s, client_id, wanted)
            number = (
                s.scalar(
                    sa.select(sa.func.max(m.Visit.session_number)).where(
                        m.Visit.client_id == client_id
                    )
                )
                or 0
            ) + 1
            now = utcnow()
            v = m.Visit(
                client_id=client_id,
                session_number=number,
                visit_date=day,
                aesthetician_id=account_id(actor),
                next_window_start=start,
                next_window_end=end,
                created_at=now,
                updated_at=now,
                **fields,
            )
            s.add(v)
            s.flush()
            for a in wanted:
                s.add(m.VisitArea(visit_id=v.id, area_id=a))
            s.flush()
            add_audit(
                s,
                actor,
                "visit_create",
                target=("visit", v.id),
                client_id=client_id,
                detail={"session_number": number, "visit_date": day.isoformat()},
            )
            return visit_info(s, v)

        return self._guard(actor, body, write=True)

    def update_visit(self, actor: Actor, visit_id: int, **changes: Any) -> VisitInfo:
        """Change a visit (staff only).

        Keyword arguments: any of ``visit_date``, ``sclerosant``, ``concentration_pct``,
        ``volume_ml``, ``notes``, ``area_ids`` (replaces the set), ``next_window_start``,
        ``next_window_end``.
        """
        self._require(actor, Action.RECORD_VISITS)
        allowed = {
            "visit_date",
            "sclerosant",
            "concentration_pct",
            "volume_ml",
            "notes",
            "area_ids",
            "next_window_start",
            "next_window_end",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(
                f"update_visit got unknown fields {sorted(unknown)}; use {sorted(allowed)}"
            )
        simple = {
            k: changes[k]
            for k in ("sclerosant", "concentration_pct", "volume_ml", "notes")
            if k in changes
        }
        values = _visit_values(**simple)

        def body(s: Session) -> VisitInfo:
            v = get_or_missing(s, m.Visit, visit_id, "visit")
            if v.deleted_at is not None:  # issue 24 (H6)
                raise ValueError("visit_id: this visit was deleted; it cannot be changed")
            for k, val in values.items():
                setattr(v, k, val)
            if {"sclerosant", "concentration_pct"} & set(values):  # issue 24 (H6)
                check_concentration(v.sclerosant, v.concentration_pct)
            for k in ("visit_date", "next_window_start", "next_window_end"):
                if k in changes:
                    setattr(v, k, changes[k])
            if v.visit_date is None:
                raise ValueError("visit_date must not be None")
            if (
                v.next_window_start is not None
                and v.next_window_end is not None
                and v.next_window_end < v.next_window_start
            ):
                raise ValueError("next_window_end must be on or after next_window_start")
            if "area_ids" in changes:
                wanted = sorted(set(int(a) for a in changes["area_ids"]))
                _check_areas(s, v.client_id, wanted)
                photographed = set(
                    s.scalars(sa.select(m.Photo.area_id).where(m.Photo.visit_id == v.id))
                )
                s.execute(sa.delete(m.VisitArea).where(m.VisitArea.visit_id == v.id))
                for a in sorted(set(wanted) | photographed):
                    s.add(m.VisitArea(visit_id=v.id, area_id=a))
            v.updated_at = utcnow()
            s.flush()
            add_audit(
                s,
                actor,
                "visit_update",
                target=("visit", v.id),
                client_id=v.client_id,
                detail={"fields": sorted(changes)},
            )
            return visit_info(s, v)

        return self._guard(actor, body, write=True)

    def get_visit(self, actor: Actor, visit_id: int) -> VisitInfo:
        """One visit (staff, or the owning client)."""

        def body(s: Session) -> VisitInfo:
            v = get_or_missing(s, m.Visit, visit_id, "visit")
            self._require_client_read(actor, v.client_id)
            return visit_info(s, v)

        return self._guard(actor, body, write=False)

    def list_visits(self, actor: Actor, client_id: int) -> list[VisitInfo]:
        """A client's visits by session number (staff, or the owning client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[VisitInfo]:
            q = (
                sa.select(m.Visit)
                .where(m.Visit.client_id == client_id, m.Visit.deleted_at.is_(None))
                .order_by(m.Visit.session_number)
            )
            return [visit_info(s, v) for v in s.scalars(q)]

        return self._guard(actor, body, write=False)


def _check_areas(s: Session, client_id: int, area_ids: Sequence[int]) -> None:
    for a in area_ids:
        area = s.get(m.TreatmentArea, a)
        if area is None or area.client_id != client_id:
            raise ValueError(f"area_ids: area {a} is not a treatment area of this client")


def _visit_values(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "sclerosant" in values:
        v = values["sclerosant"]
        out["sclerosant"] = None if v is None else choice(v, SCLEROSANTS, "sclerosant")
    for k, hi in (("concentration_pct", 100.0), ("volume_ml", 100.0)):
        if k in values:
            v = values[k]
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= hi
            ):
                raise ValueError(f"{k} must be a number between 0 and {hi:g}, got {v!r}")
            out[k] = None if v is None else float(v)
    if "notes" in values:
        out["notes"] = clean_text(values["notes"], field="notes", max_len=8000)
    return out
