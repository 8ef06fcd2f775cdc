"""Blind rating sessions: measured pairs graded for clearance by raters who see nothing else.

Part of :class:`~vein_tracker.storage.Repository` (one aggregate of :mod:`.repo`).
An aesthetician makes a session from saved analyses (measured pairs) and names
its raters; each pair gets a code (``P01``...) in a random order, each rater a random
order of their own. A rater sees a pair as its code's position in their order and its
two photos, nothing else: no client, date, visit number or automatic figure leaves this
module for a rater. Ratings are append-only: a new rating of the same pair by the same
rater supersedes the previous one (both kept). Agreement statistics read the current
ratings and the automatic figure (rater ``auto``) through :meth:`session_ratings`.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import policy
from ...errors import AccessDenied
from ...outcome import quartile
from ...policy import Action
from .. import models as m
from ..info import Actor, _ToDict, utcnow
from .base import RepositoryBase
from .common import DENIED, add_audit, clean_text, get_or_missing
from .rows import username_of

#: Fewest pairs in a session (agreement needs 3 pairs rated by everyone).
MIN_SESSION_PAIRS: Final = 3
MAX_SESSION_PAIRS: Final = 500
SESSION_STATUSES: Final = ("open", "closed")
_AUTO = "auto"


@dataclass(frozen=True)
class RatingSessionInfo(_ToDict):
    """A rating session as its viewer may see it.

    Attributes
    ----------
    id : int
    name : str
    status : {"open", "closed"}
    created_at : datetime
    created_by : str or None
    pairs : int
        Number of pairs in the session.
    raters : tuple of str
        Usernames of its raters (empty for a rater's own view).
    rated : int
        Pairs the viewing rater has rated (0 for staff who are not raters of it).
    is_rater : bool
        The viewer is one of its raters.
    """

    id: int
    name: str
    status: str
    created_at: datetime
    created_by: str | None
    pairs: int
    raters: tuple[str, ...]
    rated: int
    is_rater: bool


@dataclass(frozen=True)
class BlindPair(_ToDict):
    """The next pair a rater grades: only its place in the rater's own order.

    Attributes
    ----------
    session_id : int
    pair_id : int
        Opaque id to submit the rating and fetch the photos with.
    position : int
        1-based place in this rater's order.
    total : int
        Pairs in the session.
    """

    session_id: int
    pair_id: int
    position: int
    total: int


@dataclass(frozen=True)
class MeasuredPair(_ToDict):
    """A saved analysis staff may put in a rating session (never shown to raters).

    Attributes
    ----------
    analysis_id : int
        The newest saved analysis of this (baseline, follow-up) pair.
    client_id : int
    client_name : str
    area_id : int
    area : str
        E.g. ``"left calf, posterior"``.
    baseline_date, followup_date : date
    session_number : int
        The follow-up's visit number.
    improvement_pct : float
    """

    analysis_id: int
    client_id: int
    client_name: str
    area_id: int
    area: str
    baseline_date: date
    followup_date: date
    session_number: int
    improvement_pct: float


@dataclass(frozen=True)
class RaterInfo(_ToDict):
    """An account that may rate: id, username and role."""

    id: int
    username: str
    role: str


@dataclass(frozen=True, eq=False)
class BlindPhotos:
    """The two photos of a pair for a rater: pixels and the alignment, nothing else.

    Attributes
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
        Baseline and follow-up as stored (upright RGB), full resolution.
    homography : ndarray, shape (3, 3), or None
        Maps follow-up (x, y) px to baseline (x, y) px (from the saved analysis).
    """

    before: np.ndarray
    after: np.ndarray
    homography: np.ndarray | None


@dataclass(frozen=True)
class RatingInfo(_ToDict):
    """A submitted rating (never changed).

    Attributes
    ----------
    id : int
    session_id, pair_id : int
    rater : str
    clearance_pct : float
    quartile : int
        0-3 (:func:`vein_tracker.outcome.quartile`).
    submitted_at : datetime
    supersedes_id : int or None
        The earlier rating of the same pair by the same rater this one replaces.
    """

    id: int
    session_id: int
    pair_id: int
    rater: str
    clearance_pct: float
    quartile: int
    submitted_at: datetime
    supersedes_id: int | None


def _current_ratings(s: Session, session_id: int) -> list[m.Rating]:
    """The ratings no later rating supersedes."""
    later = sa.select(m.Rating.supersedes_id).where(
        m.Rating.session_id == session_id, m.Rating.supersedes_id.is_not(None)
    )
    return list(
        s.scalars(
            sa.select(m.Rating)
            .where(m.Rating.session_id == session_id, m.Rating.id.not_in(later))
            .order_by(m.Rating.id)
        )
    )


def _rating_info(s: Session, r: m.Rating) -> RatingInfo:
    return RatingInfo(
        id=r.id,
        session_id=r.session_id,
        pair_id=r.pair_id,
        rater=username_of(s, r.rater_id) or "?",
        clearance_pct=float(r.clearance_pct),
        quartile=int(r.quartile),
        submitted_at=r.submitted_at,
        supersedes_id=r.supersedes_id,
    )


def _session_analyses(s: Session, ids: Sequence[int]) -> list[m.Analysis]:
    """The session's analyses, each with an improvement figure."""
    analyses = [get_or_missing(s, m.Analysis, a, "analysis") for a in ids]
    for a in analyses:
        if a.improvement_pct is None:
            raise ValueError(f"analysis {a.id} has no improvement figure to compare with")
    return analyses


def _session_raters(s: Session, raters: Sequence[int]) -> list[m.User]:
    """The session's raters: active accounts whose role may rate."""
    users = [get_or_missing(s, m.User, u, "user") for u in raters]
    for u in users:
        if not u.active:
            raise AccessDenied(DENIED)
        if u.username == _AUTO:
            raise ValueError(f"a rater may not be called {_AUTO!r}: it names the automatic figure")
        if not policy.allows(u.role, Action.RATE):
            raise ValueError(f"user {u.username!r} is a {u.role} account, which may not rate pairs")
    return users


def _add_coded_pairs(
    s: Session, session_id: int, analyses: Sequence[m.Analysis], rng: random.Random
) -> list[m.RatingPair]:
    """The session's pairs, coded P01, P02... in a shuffled order (flushed: ids known)."""
    # Codes follow a shuffled order: nothing about a pair's code tells its client,
    # date or the order the clinic picked them in.
    shuffled = list(analyses)
    rng.shuffle(shuffled)
    width = max(2, len(str(len(shuffled))))
    pairs = []
    for i, a in enumerate(shuffled, start=1):
        p = m.RatingPair(
            session_id=session_id,
            analysis_id=a.id,
            code=f"P{i:0{width}d}",
            auto_pct=float(a.improvement_pct) if a.improvement_pct is not None else None,
        )
        s.add(p)
        pairs.append(p)
    s.flush()
    return pairs


class RatingRecords(RepositoryBase):
    """Blind rating sessions and ratings (part of :class:`~vein_tracker.storage.Repository`)."""

    # ------------------------------------------------------------------ sessions

    def create_rating_session(
        self,
        actor: Actor,
        *,
        name: str,
        analysis_ids: Sequence[int],
        rater_ids: Sequence[int],
        seed: int | None = None,
    ) -> RatingSessionInfo:
        """Make a blind rating session (aesthetician); audited.

        Parameters
        ----------
        name : str
            For the clinic's list (raters see it too: keep client names out of it).
        analysis_ids : sequence of int
            Saved analyses (measured pairs), at least 3, each once.
        rater_ids : sequence of int
            Active accounts whose role may rate (the policy: rater or aesthetician), at least one.
        seed : int, optional
            Seeds the codes' and the raters' random orders (tests); default a secure
            random seed.

        Raises
        ------
        AccessDenied
            Not an aesthetician, or an analysis or user is not found.
        ValueError
            Too few pairs, a pair twice, no rater, a rater of another role or inactive,
            an analysis without a figure, an empty name.
        """

        self._require(actor, Action.CREATE_RATING_SESSION)
        title = clean_text(name, field="name", max_len=200)
        if not title:
            raise ValueError("name must not be empty")
        ids = [int(a) for a in analysis_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("analysis_ids must not repeat a pair")
        if not MIN_SESSION_PAIRS <= len(ids) <= MAX_SESSION_PAIRS:
            raise ValueError(
                f"a rating session needs {MIN_SESSION_PAIRS} to {MAX_SESSION_PAIRS} pairs, "
                f"got {len(ids)}"
            )
        raters = [int(r) for r in rater_ids]
        if not raters or len(set(raters)) != len(raters):
            raise ValueError("rater_ids must name at least one rater, each once")
        rng = random.Random(seed if seed is not None else secrets.randbits(64))

        def body(s: Session) -> RatingSessionInfo:
            analyses = _session_analyses(s, ids)
            users = _session_raters(s, raters)
            now = utcnow()
            row = m.RatingSession(
                name=title,
                status="open",
                created_at=now,
                created_by_id=None if actor.is_system else actor.user_id,
            )
            s.add(row)
            s.flush()
            pairs = _add_coded_pairs(s, row.id, analyses, rng)
            for u in users:
                order = [p.id for p in pairs]
                rng.shuffle(order)
                s.add(
                    m.RatingAssignment(
                        session_id=row.id,
                        rater_id=u.id,
                        pair_order={"pairs": order},
                        created_at=now,
                    )
                )
            s.flush()
            add_audit(
                s,
                actor,
                "rating_session_create",
                target=("rating_session", row.id),
                detail={
                    "name": title,
                    "pairs": len(pairs),
                    "raters": [u.username for u in users],
                    "analysis_ids": ids,
                },
            )
            return self._session_info(s, actor, row)

        return self._guard(actor, body, write=True)

    def _session_info(self, s: Session, actor: Actor, row: m.RatingSession) -> RatingSessionInfo:

        n_pairs = s.scalar(sa.select(sa.func.count()).where(m.RatingPair.session_id == row.id))
        assignments = list(
            s.scalars(sa.select(m.RatingAssignment).where(m.RatingAssignment.session_id == row.id))
        )
        mine = next((a for a in assignments if a.rater_id == actor.user_id), None)
        rated = 0
        if mine is not None:
            rated = len(
                {r.pair_id for r in _current_ratings(s, row.id) if r.rater_id == actor.user_id}
            )
        staff = policy.permits_any(actor, (Action.CREATE_RATING_SESSION, Action.VIEW_AGREEMENT))
        return RatingSessionInfo(
            id=row.id,
            name=row.name,
            status=row.status,
            created_at=row.created_at,
            created_by=username_of(s, row.created_by_id) if staff else None,
            pairs=int(n_pairs or 0),
            raters=tuple(sorted(username_of(s, a.rater_id) or "?" for a in assignments))
            if staff
            else (),
            rated=rated,
            is_rater=mine is not None,
        )

    def list_rating_sessions(self, actor: Actor) -> list[RatingSessionInfo]:
        """Sessions the viewer may see, newest first: all for staff, their own for a rater."""

        def body(s: Session) -> list[RatingSessionInfo]:
            q = sa.select(m.RatingSession).order_by(m.RatingSession.id.desc())
            if not policy.permits_any(actor, (Action.CREATE_RATING_SESSION, Action.VIEW_AGREEMENT)):
                self._require(actor, Action.RATE)
                q = q.where(
                    m.RatingSession.id.in_(
                        sa.select(m.RatingAssignment.session_id).where(
                            m.RatingAssignment.rater_id == actor.user_id
                        )
                    )
                )
            return [self._session_info(s, actor, r) for r in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def close_rating_session(self, actor: Actor, session_id: int) -> RatingSessionInfo:
        """Close a session to new ratings (aesthetician); audited."""

        self._require(actor, Action.CREATE_RATING_SESSION)

        def body(s: Session) -> RatingSessionInfo:
            row = get_or_missing(s, m.RatingSession, session_id, "rating session", lock=True)
            if row.status != "closed":
                row.status = "closed"
                row.closed_at = utcnow()
                row.closed_by_id = None if actor.is_system else actor.user_id
                s.flush()
                add_audit(s, actor, "rating_session_close", target=("rating_session", row.id))
            return self._session_info(s, actor, row)

        return self._guard(actor, body, write=True)

    def list_measured_pairs(self, actor: Actor) -> list[MeasuredPair]:
        """Measured pairs (newest saved analysis of each) for a new session; staff only."""
        self._require(actor, Action.CREATE_RATING_SESSION)

        def body(s: Session) -> list[MeasuredPair]:
            newest = (
                sa.select(sa.func.max(m.Analysis.id))
                .where(m.Analysis.improvement_pct.is_not(None))
                .group_by(m.Analysis.baseline_photo_id, m.Analysis.followup_photo_id)
            )
            out = []
            for a in s.scalars(
                sa.select(m.Analysis).where(m.Analysis.id.in_(newest)).order_by(m.Analysis.id)
            ):
                b = s.get_one(m.Photo, a.baseline_photo_id)
                f = s.get_one(m.Photo, a.followup_photo_id)
                vb = s.get_one(m.Visit, b.visit_id)
                vf = s.get_one(m.Visit, f.visit_id)
                c = s.get_one(m.Client, a.client_id)
                area = s.get_one(m.TreatmentArea, a.area_id)
                out.append(
                    MeasuredPair(
                        analysis_id=a.id,
                        client_id=c.id,
                        client_name=c.name,
                        area_id=area.id,
                        area=f"{area.side} {area.region}, {area.view}",
                        baseline_date=vb.visit_date,
                        followup_date=vf.visit_date,
                        session_number=vf.session_number,
                        improvement_pct=float(a.improvement_pct or 0.0),
                    )
                )
            return out

        return self._guard(actor, body, write=False)

    def list_raters(self, actor: Actor) -> list[RaterInfo]:
        """Active accounts that may be named raters (rater, aesthetician, admin); staff only."""
        self._require(actor, Action.CREATE_RATING_SESSION)

        def body(s: Session) -> list[RaterInfo]:
            rows = s.scalars(
                sa.select(m.User)
                .where(
                    m.User.active.is_(True),
                    m.User.role.in_(sorted(policy.roles_for(Action.RATE))),
                )
                .order_by(m.User.username)
            )
            return [
                RaterInfo(id=u.id, username=u.username, role=u.role)
                for u in rows
                if u.username != _AUTO
            ]

        return self._guard(actor, body, write=False)

    # ------------------------------------------------------------------ rating

    def _assignment(
        self, s: Session, actor: Actor, session_id: int, *, lock: bool = False
    ) -> m.RatingAssignment:
        """The acting rater's assignment to the session (``lock``: FOR UPDATE, so one
        rater's submissions for the session are serialised)."""
        self._require(actor, Action.RATE)
        q = sa.select(m.RatingAssignment).where(
            m.RatingAssignment.session_id == session_id,
            m.RatingAssignment.rater_id == actor.user_id,
        )
        a = s.scalar(q.with_for_update() if lock else q)
        if a is None or actor.is_system:
            raise AccessDenied(DENIED)
        return a

    def next_blind_pair(self, actor: Actor, session_id: int) -> BlindPair | None:
        """The first pair of the rater's own order not rated yet, or None when all are."""

        def body(s: Session) -> BlindPair | None:
            a = self._assignment(s, actor, session_id)
            order = [int(p) for p in a.pair_order["pairs"]]
            done = {
                r.pair_id for r in _current_ratings(s, session_id) if r.rater_id == actor.user_id
            }
            for i, pid in enumerate(order, start=1):
                if pid not in done:
                    return BlindPair(
                        session_id=session_id, pair_id=pid, position=i, total=len(order)
                    )
            return None

        return self._guard(actor, body, write=False)

    def blind_pair_photos(self, actor: Actor, pair_id: int) -> BlindPhotos:
        """A pair's two photos for one of its session's raters; each view audited.

        Only pixels and the alignment leave: no file name, date, visit, client or figure.
        """
        from ...io import load_photo

        def body(s: Session) -> tuple[str, float | None, str, Any]:
            p = get_or_missing(s, m.RatingPair, pair_id, "pair")
            self._assignment(s, actor, p.session_id)
            a = s.get_one(m.Analysis, p.analysis_id)
            b = s.get_one(m.Photo, a.baseline_photo_id)
            f = s.get_one(m.Photo, a.followup_photo_id)
            for photo in (b, f):
                add_audit(
                    s,
                    actor,
                    "photo_view",
                    target=("photo", photo.id),
                    client_id=photo.client_id,
                    detail={"rating_session": p.session_id, "rating_pair": p.code},
                )
            h = ((a.result or {}).get("registration") or {}).get("homography")
            return b.sha256, b.px_per_mm, f.sha256, h

        b_sha, b_ppm, f_sha, h = self._guard(actor, body, write=True)
        limit = self.settings.max_pixels
        before = load_photo(self.store.get(b_sha), px_per_mm=b_ppm, max_pixels=limit)
        after = load_photo(self.store.get(f_sha), max_pixels=limit)
        hom = np.asarray(h, np.float64) if h is not None else None
        if hom is not None and hom.shape != (3, 3):
            hom = None
        return BlindPhotos(before=before.rgb, after=after.rgb, homography=hom)

    def submit_rating(self, actor: Actor, pair_id: int, clearance_pct: float) -> RatingInfo:
        """Store the acting rater's clearance for a pair; audited. Never changes a rating:
        rating the pair again adds a rating that supersedes the previous one.

        Raises
        ------
        AccessDenied
            Not a rater of the pair's session, or the session is closed.
        ValueError
            ``clearance_pct`` outside 0-100 or not a number.
        """

        if isinstance(clearance_pct, bool) or not isinstance(clearance_pct, int | float):
            raise ValueError(f"clearance_pct must be a number, got {clearance_pct!r}")
        pct = float(clearance_pct)
        if not 0.0 <= pct <= 100.0:
            raise ValueError(f"clearance_pct must be in [0, 100], got {clearance_pct!r}")

        def body(s: Session) -> RatingInfo:
            p = get_or_missing(s, m.RatingPair, pair_id, "pair")
            self._assignment(s, actor, p.session_id, lock=True)
            session = s.get_one(m.RatingSession, p.session_id)
            if session.status != "open":
                raise AccessDenied("This rating session is closed: no more ratings are taken.")
            previous = next(
                (
                    r
                    for r in _current_ratings(s, p.session_id)
                    if r.pair_id == p.id and r.rater_id == actor.user_id
                ),
                None,
            )
            row = m.Rating(
                session_id=p.session_id,
                pair_id=p.id,
                rater_id=actor.user_id,
                clearance_pct=pct,
                quartile=quartile(pct),
                submitted_at=utcnow(),
                supersedes_id=previous.id if previous is not None else None,
            )
            s.add(row)
            s.flush()
            add_audit(
                s,
                actor,
                "rating_submit",
                target=("rating", row.id),
                detail={
                    "rating_session": p.session_id,
                    "rating_pair": p.code,
                    "clearance_pct": pct,
                    "supersedes_id": row.supersedes_id,
                },
            )
            return _rating_info(s, row)

        return self._guard(actor, body, write=True)

    # ------------------------------------------------------------------ agreement

    def session_ratings(
        self, actor: Actor, session_id: int, *, include_auto: bool = True, current: bool = True
    ) -> list[dict[str, Any]]:
        """The session's ratings as rows ``{pair, rater, clearance_pct}`` (staff only).

        ``pair`` is the blind code, ``rater`` the username; with ``include_auto`` each
        pair's automatic figure is a row of rater ``auto``, as clearance: the improvement
        when the session was made, clipped to 0-100 (a worsening is 0 % clearance).
        ``current=False`` adds the superseded ratings, with ``submitted_at`` and
        ``superseded`` on every row.
        """

        self._require(actor, Action.VIEW_AGREEMENT)

        def body(s: Session) -> list[dict[str, Any]]:
            get_or_missing(s, m.RatingSession, session_id, "rating session")
            codes = {
                p.id: (p.code, p.auto_pct)
                for p in s.scalars(
                    sa.select(m.RatingPair).where(m.RatingPair.session_id == session_id)
                )
            }
            live = _current_ratings(s, session_id)
            live_ids = {r.id for r in live}
            rows_src = (
                live
                if current
                else list(
                    s.scalars(
                        sa.select(m.Rating)
                        .where(m.Rating.session_id == session_id)
                        .order_by(m.Rating.id)
                    )
                )
            )
            rows: list[dict[str, Any]] = []
            for r in rows_src:
                row: dict[str, Any] = {
                    "pair": codes[r.pair_id][0],
                    "rater": username_of(s, r.rater_id) or "?",
                    "clearance_pct": float(r.clearance_pct),
                }
                if not current:
                    row["submitted_at"] = r.submitted_at.isoformat()
                    row["superseded"] = r.id not in live_ids
                rows.append(row)
            if include_auto:
                for code, auto in sorted(codes.values()):
                    if auto is not None:
                        clearance = min(100.0, max(0.0, float(auto)))
                        rows.append({"pair": code, "rater": _AUTO, "clearance_pct": clearance})
            return rows

        return self._guard(actor, body, write=False)
