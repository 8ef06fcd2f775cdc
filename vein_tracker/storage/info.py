"""Public records of the storage layer: frozen dataclasses the repository returns.

Owns the shapes the pages, the CLI and the export/report code see. These are plain
values (never ORM objects): holding one keeps no database session open, and changing
one changes nothing stored. Every class has ``to_dict()`` giving JSON-ready values
(dates as ISO strings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from ..policy import ROLES

SIDES: Final = ("left", "right")
VIEWS: Final = ("anterior", "posterior", "medial", "lateral")
# --- issue 24 (H6): ankle and foot regions; polidocanol; each agent's usual range ---
REGIONS: Final = ("thigh", "knee", "calf", "ankle", "foot")
SCLEROSANTS: Final = ("polidocanol", "sodium_tetradecyl_sulfate", "hypertonic_saline")
SCLEROSANT_LABELS: Final = {
    "polidocanol": "polidocanol",
    "sodium_tetradecyl_sulfate": "sodium tetradecyl sulfate",
    "hypertonic_saline": "hypertonic saline",
}
#: Concentrations (percent, w/v) a clinic uses on spider and reticular leg veins. A value
#: outside is almost certainly a typing error and is refused with a message naming the
#: range (the repository checks it, whatever page or command sends it).
SCLEROSANT_RANGES_PCT: Final = {
    "polidocanol": (0.25, 1.0),
    "sodium_tetradecyl_sulfate": (0.1, 0.5),
    "hypertonic_saline": (11.7, 23.4),
}


def check_concentration(sclerosant: str | None, concentration_pct: float | None) -> None:
    """Refuse a concentration outside the agent's usual range (or one without an agent).

    Raises
    ------
    ValueError
        Naming ``concentration_pct``, the agent and its range.
    """
    if concentration_pct is None:
        return
    if sclerosant is None:
        raise ValueError(
            "concentration_pct: choose the sclerosant the concentration is for, or leave "
            "the concentration empty"
        )
    lo, hi = SCLEROSANT_RANGES_PCT[sclerosant]
    value = float(concentration_pct)
    if not lo <= value <= hi:
        raise ValueError(
            f"concentration_pct: {value:g} % is outside the usual range of "
            f"{SCLEROSANT_LABELS[sclerosant]} for leg veins ({lo:g}–{hi:g} %); check the "
            "number (a typing error?)"
        )


# --- end issue 24 (H6) ---
CONSENT_KINDS: Final = ("treatment_photography", "marketing")
#: Channels (scopes) of a marketing consent.
CHANNELS: Final = ("website", "social", "print")
#: Contraindication screening questions, in the order a form shows them.
SCREENING_QUESTIONS: Final = (
    "varicose_veins",
    "clotting_disorder",
    "blood_thinners",
    "corticosteroids",
    "pregnancy",
    "breastfeeding",
)
SCREENING_LABELS: Final = {
    "varicose_veins": "varicose veins (> 3 mm, bulging)",
    "clotting_disorder": "clotting disorder",
    "blood_thinners": "takes blood thinners",
    "corticosteroids": "takes corticosteroids",
    "pregnancy": "pregnant",
    "breastfeeding": "breastfeeding",
}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: dates as ISO 8601 strings, tuples as lists."""
        out = _json_value(self)
        assert isinstance(out, dict)
        return out


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor(_ToDict):
    """The signed-in user on whose behalf a repository method runs.

    Attributes
    ----------
    user_id : int
        Account id (0 for the local operator of a CLI command, see :data:`SYSTEM_ACTOR`).
    username : str
    role : str
        One of :data:`vein_tracker.policy.ROLES`; what it may do is in that module's table.
    client_id : int or None
        The client record a ``client`` account belongs to; None for other roles.
    """

    user_id: int
    username: str
    role: str
    client_id: int | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.role == "client" and self.client_id is None:
            raise ValueError("client_id is required for an actor with role 'client'")

    @property
    def is_system(self) -> bool:
        """True for the local operator of a CLI command (no account)."""
        return self.user_id == 0


#: The operator running a local CLI command (backup, fsck, seed, reanalyze). It has no
#: account and may do every action of the policy (its role only labels audit rows);
#: audit rows show it as user "system".
SYSTEM_ACTOR: Final = Actor(user_id=0, username="system", role="admin")


@dataclass(frozen=True)
class UserInfo(_ToDict):
    """A user account (never the password hash).

    ``locked_until`` is set after 5 failed sign-ins in a row (UTC, aware).
    """

    id: int
    username: str
    role: str
    client_id: int | None
    active: bool
    must_change_password: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    def is_locked(self, now: datetime | None = None) -> bool:
        """True while the account is locked out after failed sign-ins."""
        return self.locked_until is not None and self.locked_until > (now or utcnow())


@dataclass(frozen=True)
class Screening(_ToDict):
    """Answers to the contraindication screening (True = yes, the condition applies).

    ``varicose_veins`` means the client should be referred to a vascular physician.
    """

    varicose_veins: bool = False
    clotting_disorder: bool = False
    blood_thinners: bool = False
    corticosteroids: bool = False
    pregnancy: bool = False
    breastfeeding: bool = False

    @property
    def positives(self) -> tuple[str, ...]:
        """Names of the questions answered yes, in :data:`SCREENING_QUESTIONS` order."""
        return tuple(q for q in SCREENING_QUESTIONS if getattr(self, q))


def resolve_override(screening: Screening, *, override: bool, reason: str | None) -> str | None:
    """The override reason to record with ``screening`` (None: no override). Issue 24.

    An override is never recorded without its reason, nor for a screening with nothing
    to override. The one rule for every caller (pages, services, the repository).

    Raises
    ------
    ValueError
        ``override`` with an empty ``reason``, or with no positive answer.
    """
    text = (reason or "").strip()
    if not override:
        return None
    if not screening.positives:
        raise ValueError("override: there is no positive screening answer to override; untick it")
    if not text:
        raise ValueError(
            "A reason for the override (override_reason) is required: write why treatment "
            "may go ahead despite the positive screening, or untick the override. "
            "Nothing was saved."
        )
    return text


@dataclass(frozen=True)
class ClientInfo(_ToDict):
    """A client (patient) record.

    Attributes
    ----------
    screening : Screening or None
        Latest contraindication screening; None if never screened.
    screened_at : datetime or None
        When it was recorded (UTC); ``screened_by`` is the username who did it.
    override_reason : str or None
        Why treatment goes ahead despite a positive answer.
    fitzpatrick : int or None
        Fitzpatrick skin type 1–6.
    """

    id: int
    name: str
    date_of_birth: date | None
    email: str | None
    phone: str | None
    address: str | None
    fitzpatrick: int | None
    notes: str | None
    screening: Screening | None
    screened_at: datetime | None
    screened_by: str | None
    override_reason: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def contraindications(self) -> tuple[str, ...]:
        """Positive screening answers (empty if none or not screened)."""
        return self.screening.positives if self.screening else ()

    @property
    def refer_to_vascular(self) -> bool:
        """True when the client has varicose veins: refer to a vascular physician."""
        return bool(self.screening and self.screening.varicose_veins)

    @property
    def cleared_for_treatment(self) -> bool:
        """Screened, and either no positive answer or an override reason recorded."""
        if self.screening is None:
            return False
        return not self.contraindications or bool(self.override_reason)


@dataclass(frozen=True)
class AreaInfo(_ToDict):
    """A treatment area of a client: side, view, region and a free-text note.

    ``anon_id`` is a random id used in marketing exports instead of any name.
    """

    id: int
    client_id: int
    side: str
    view: str
    region: str
    note: str | None
    anon_id: str
    baseline_photo_id: int | None
    created_at: datetime

    @property
    def label(self) -> str:
        """Human label, e.g. ``"left calf, posterior"``."""
        return f"{self.side} {self.region}, {self.view}"


@dataclass(frozen=True)
class VisitInfo(_ToDict):
    """A treatment session.

    Attributes
    ----------
    session_number : int
        1 for the client's first visit, then 2, 3... (assigned automatically).
    sclerosant : {"hypertonic_saline", "sodium_tetradecyl_sulfate"} or None
    concentration_pct : float or None
        Sclerosant concentration, percent (w/v).
    volume_ml : float or None
        Total volume injected, millilitres.
    area_ids : tuple of int
        Treatment areas treated or photographed at this visit.
    next_window_start, next_window_end : date or None
        When the next session should take place (typically 1–4 weeks later).
    """

    id: int
    client_id: int
    session_number: int
    visit_date: date
    aesthetician_id: int | None
    aesthetician: str | None
    sclerosant: str | None
    concentration_pct: float | None
    volume_ml: float | None
    area_ids: tuple[int, ...]
    notes: str | None
    next_window_start: date | None
    next_window_end: date | None
    created_at: datetime
    # issue 24 (H6): a visit deleted by mistake (hidden from lists; kept on record)
    deleted_at: datetime | None = None
    delete_reason: str | None = None


@dataclass(frozen=True)
class PhotoInfo(_ToDict):
    """A stored photo of a treatment area taken at a visit (metadata only, no pixels).

    Attributes
    ----------
    sha256 : str
        Hex digest of the original file bytes: the photo store address.
    width, height : int
        Size of the upright image, px.
    capture_time : datetime or None
        Camera time from EXIF (naive, as the camera wrote it).
    px_per_mm : float or None
        Scale, pixels per millimetre, when known.
    capture_report : dict or None
        JSON of ``registration.assess_capture(...).to_dict()`` given at upload.
    is_baseline : bool
        True for the baseline photo of its area.
    is_primary : bool
        True for the photo that counts for its area at its visit (one per area and
        visit; the others are alternates).
    status : {"ok", "unmatched", "refused"}
        Only ``ok`` photos are measured, reported or exported; ``status_reason`` says
        why another status was set.
    deleted_at, delete_reason, replaced_by_id
        Set when the photo was deleted (hidden from every list) or retaken (the photo
        that replaced it).
    """

    id: int
    client_id: int
    area_id: int
    visit_id: int
    visit_date: date
    session_number: int
    sha256: str
    size_bytes: int
    width: int
    height: int
    format: str
    original_filename: str | None
    capture_time: datetime | None
    px_per_mm: float | None
    capture_report: dict[str, Any] | None
    is_baseline: bool
    uploaded_at: datetime
    uploaded_by: str | None
    # issue 24 (H6): primary photo, status, soft delete
    is_primary: bool = True
    status: str = "ok"
    status_reason: str | None = None
    deleted_at: datetime | None = None
    delete_reason: str | None = None
    replaced_by_id: int | None = None

    @property
    def usable(self) -> bool:
        """True when a figure or an export may use this photo (kept and ``ok``)."""
        return self.status == "ok" and self.deleted_at is None


@dataclass(frozen=True)
class ConsentInfo(_ToDict):
    """A consent the client signed, with its scope, expiry and revocation.

    A consent is valid on day ``d`` when ``signed_at <= d``, ``d < expires_at`` (if
    set: it expires at the start of that day) and it was not revoked on or before
    ``d``. Revocation keeps the record (history) and takes effect at once.

    Attributes
    ----------
    kind : {"treatment_photography", "marketing"}
    scopes : tuple of {"website", "social", "print"}
        Channels a marketing consent covers (empty for treatment photography).
    revoked_at : datetime or None
        When it was revoked (UTC), ``revoked_by`` the username who recorded it.
    """

    id: int
    client_id: int
    kind: str
    scopes: tuple[str, ...]
    signed_at: date
    expires_at: date | None
    recorded_by: str | None
    recorded_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    note: str | None

    def is_valid(self, on: date | None = None, *, channel: str | None = None) -> bool:
        """True if the consent is in force on day ``on`` (default today, UTC) for ``channel``."""
        day = on or utcnow().date()
        if self.signed_at > day:
            return False
        if self.expires_at is not None and day >= self.expires_at:
            return False
        if self.revoked_at is not None and self.revoked_at.date() <= day:
            return False
        return channel is None or channel in self.scopes

    def status(self, on: date | None = None) -> str:
        """``"valid"``, ``"revoked"``, ``"expired"`` or ``"not yet signed"`` on day ``on``."""
        day = on or utcnow().date()
        if self.revoked_at is not None and self.revoked_at.date() <= day:
            return "revoked"
        if self.expires_at is not None and day >= self.expires_at:
            return "expired"
        if self.signed_at > day:
            return "not yet signed"
        return "valid"


@dataclass(frozen=True)
class AnalysisInfo(_ToDict):
    """A stored analysis of a (baseline, follow-up) photo pair.

    Keyed by (baseline photo, follow-up photo, parameters hash, algorithm version):
    re-running with a newer algorithm adds a row and keeps the old one.

    Attributes
    ----------
    params : dict
        The parameters given to ``measure.compare`` (JSON).
    params_hash : str
        sha256 of the canonical JSON of ``params`` (see :func:`params_hash`).
    result : dict
        ``Comparison.to_dict()`` (non-finite numbers stored as None).
    improvement_pct : float or None
        Headline improvement, percent (copied from the result for listing).
    masks : dict of str to str
        Mask name to the sha256 of its PNG in the photo store.
    """

    id: int
    client_id: int
    area_id: int
    baseline_photo_id: int
    followup_photo_id: int
    params_hash: str
    params: dict[str, Any]
    algorithm_version: str
    result: dict[str, Any]
    improvement_pct: float | None
    meets_target: bool | None
    masks: dict[str, str]
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True)
class AuditInfo(_ToDict):
    """One append-only audit event: who, when, what, which record, and whether it succeeded."""

    id: int
    at: datetime
    user_id: int | None
    username: str | None
    role: str | None
    action: str
    target_type: str | None
    target_id: int | None
    client_id: int | None
    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class MarketingPair(_ToDict):
    """A before/after pair a marketing export may use, with the consent that allows it.

    Never carries the client's name. ``client_id`` is for the re-check at export
    time only and must not appear in any exported file; use ``anon_id`` there.

    Attributes
    ----------
    anon_id : str
        Random id of the treatment area (stable, unrelated to any name).
    weeks : float
        Time from the baseline to the follow-up visit, weeks.
    session_count : int
        Sessions from the first visit up to the follow-up visit, inclusive.
    improvement_pct : float or None
        From the latest analysis of the pair (None if not analysed yet).
    consent_id, consent_scopes, consent_expires_at
        The marketing consent that covers ``channel``.
    """

    anon_id: str
    client_id: int
    area_id: int
    area_label: str
    channel: str
    baseline_photo_id: int
    followup_photo_id: int
    baseline_sha256: str
    followup_sha256: str
    baseline_date: date
    followup_date: date
    weeks: float
    session_count: int
    improvement_pct: float | None
    analysis_id: int | None
    algorithm_version: str | None
    consent_id: int
    consent_scopes: tuple[str, ...]
    consent_expires_at: date | None


@dataclass(frozen=True)
class BootstrapResult(_ToDict):
    """What :meth:`Repository.bootstrap_admin` did.

    ``password`` is the generated one-time password (None when it came from the
    environment or nothing was created). It is shown once and never stored in clear.
    """

    created: bool
    username: str | None
    password: str | None
    source: str


def default_next_window(visit_date: date) -> tuple[date, date]:
    """The usual next-appointment window after a session: 1 to 4 weeks later."""
    return visit_date + timedelta(weeks=1), visit_date + timedelta(weeks=4)
