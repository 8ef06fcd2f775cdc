"""Marketing export of consented, de-identified before/after pairs.

The export run lives here; its parts are modules of this package:

- :mod:`.pairs`: listing and choosing the consented pairs (:func:`list_exportable_pairs`,
  :func:`pair_key`, :func:`pair_label`, :class:`SkippedPair`);
- :mod:`.images`: the composite image (aligned follow-up, one crop and zoom for both
  halves, identical colour processing, labels, watermark, blur boxes; :func:`compose_pair`);
- :mod:`.faces`: the no-face check (:func:`detect_faces`);
- :mod:`.archive`: the manifest and the ZIP (:func:`write_manifest`, :func:`build_zip`).

Every name is importable from ``vein_tracker.export`` as before. The export reads records
only through the storage ``Repository`` with the acting user, so the repository's role
and consent checks always apply; it never touches SQL or photo files itself. Exported
images are written with :func:`vein_tracker.io.encode_image`, which writes pixels only.

Consent is checked when pairs are listed, again when the export starts, again
by the repository when each pair's photos are read, and a last time inside the
transaction that writes the audit events; a revocation or expiry at any point
before the ZIP is returned removes the pair.

Public entry points for pages and the CLI: :func:`list_exportable_pairs`,
:func:`preview_pair`, :func:`run_export` (-> :class:`ExportResult`) and
:func:`export_pairs` (-> ZIP bytes). The pure parts (:func:`compose_pair`,
:func:`add_watermark`, :func:`apply_blur_boxes`, :func:`detect_faces`,
:func:`write_manifest`, :func:`build_zip`) work on arrays and bytes only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import ALGORITHM_VERSION
from ..errors import AccessDenied, ConsentError, PhotoError, RegistrationError, StorageError
from ..hashing import anonymous_id as new_anonymous_id
from ..hashing import sha256_hex
from ..io import as_rgb
from ..storage.info import Actor, MarketingPair
from .archive import (
    MANIFEST_COLUMNS,
    ManifestRow,
    build_zip,
    encode_composite,
    manifest_row,
    read_manifest,
    write_manifest,
)
from .faces import FACE_MIN_DETAIL, FACE_MIN_RANGE, detect_faces, face_structure
from .images import (
    COLOUR_MODES,
    LAYOUTS,
    BlurBox,
    _check_watermark,
    add_watermark,
    after_label,
    apply_blur_boxes,
    compose_pair,
    cropped_halves,
    largest_valid_rectangle,
    shared_levels,
)
from .pairs import (
    SkippedPair,
    _check_channel,
    choose_pairs,
    list_exportable_pairs,
    pair_key,
    pair_label,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..storage.repository import Repository

__all__ = [
    "ALGORITHM_VERSION",
    "COLOUR_MODES",
    "FACE_MIN_DETAIL",
    "FACE_MIN_RANGE",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "BlurBox",
    "ExportResult",
    "ManifestRow",
    "PairHalves",
    "SkippedPair",
    "add_watermark",
    "after_label",
    "apply_blur_boxes",
    "build_zip",
    "choose_pairs",
    "compose_pair",
    "cropped_halves",
    "detect_faces",
    "encode_composite",
    "export_pairs",
    "face_structure",
    "largest_valid_rectangle",
    "list_exportable_pairs",
    "manifest_row",
    "new_anonymous_id",
    "pair_halves",
    "pair_key",
    "pair_label",
    "preview_pair",
    "read_manifest",
    "run_export",
    "sha256_hex",
    "shared_levels",
    "write_manifest",
]

#: Why a pair whose consent lapsed is left out (on the page and in the audit log).
_CONSENT_GONE = "marketing consent no longer valid"


@dataclass(frozen=True, eq=False)
class ExportResult:
    """What :func:`run_export` produced.

    Attributes
    ----------
    zip_bytes : bytes
        The ZIP: ``images/<random id>.jpg`` and ``manifest.csv``.
    rows : tuple of ManifestRow
        One per exported pair, as in the manifest.
    skipped : tuple of SkippedPair
        Chosen pairs left out (consent no longer valid, face in frame, not aligned).
    channel : str
    """

    zip_bytes: bytes
    rows: tuple[ManifestRow, ...]
    skipped: tuple[SkippedPair, ...]
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "exported": [r.to_dict() for r in self.rows],
            "skipped": [s.to_dict() for s in self.skipped],
            "zip_size_bytes": len(self.zip_bytes),
        }


@dataclass(frozen=True)
class _Style:
    """How every composite of one export is made (options of :func:`compose_pair`)."""

    layout: str
    watermark: str
    watermark_opacity: float
    colour: str
    half_max_side_px: int


def _pair_composite(
    repo: Repository,
    actor: Actor,
    pair: MarketingPair,
    *,
    channel: str,
    style: _Style,
    blur_boxes: Sequence[BlurBox],
    crop: tuple[int, int, int, int] | None,
) -> np.ndarray:
    from ..registration import register

    # Reading with the channel makes the repository check the consent once more.
    before = repo.load_photo(actor, pair.baseline_photo_id, channel=channel)
    after = repo.load_photo(actor, pair.followup_photo_id, channel=channel)
    if (before.sha256, after.sha256) != (pair.baseline_sha256, pair.followup_sha256):
        raise PhotoError("A photo of this pair changed since it was listed: list the pairs again.")
    reg = register(before, after)
    if not reg.ok:
        raise RegistrationError(f"The pair could not be aligned: {reg.reason}")
    # Looked up in this module, so a test can stand in for compose_pair here.
    return compose_pair(
        before,
        reg.warped,
        valid=reg.valid,
        weeks=round(pair.weeks),
        sessions=max(0, pair.session_count - 1),
        layout=style.layout,
        watermark=style.watermark,
        watermark_opacity=style.watermark_opacity,
        blur_boxes=blur_boxes,
        crop=crop,
        colour=style.colour,
        half_max_side_px=style.half_max_side_px,
    )


@dataclass(frozen=True, eq=False)
class PairHalves:
    """A listed pair's two halves as the export crops them, for the blur-box tool.

    Attributes
    ----------
    before, after : ndarray, shape (h, w, 3), dtype uint8
        The crop of the baseline and of the aligned follow-up (outside the overlap grey).
    crop : (x, y, width, height)
        Where the crop sits in the baseline photo, px: a box drawn at (bx, by) on a half
        is :class:`BlurBox` ``(crop[0] + bx, crop[1] + by, ...)``.
    faces : tuple of (x, y, width, height)
        Faces the check finds in either half, in the halves' px (boxes to start from).
    """

    before: np.ndarray
    after: np.ndarray
    crop: tuple[int, int, int, int]
    faces: tuple[tuple[int, int, int, int], ...]


def pair_halves(repo: Repository, actor: Actor, pair: MarketingPair) -> PairHalves:
    """The pair's halves as :func:`run_export` would crop them, and any face found.

    Re-checks the consent (through the repository's read of each photo).

    Raises
    ------
    RegistrationError
        The pair does not align.
    """
    from ..registration import register

    before = repo.load_photo(actor, pair.baseline_photo_id, channel=pair.channel)
    after = repo.load_photo(actor, pair.followup_photo_id, channel=pair.channel)
    reg = register(before, after)
    if not reg.ok:
        raise RegistrationError(f"The pair could not be aligned: {reg.reason}")
    crop = largest_valid_rectangle(reg.valid)
    before_half, after_half = cropped_halves(as_rgb(before), reg.warped, valid=reg.valid, crop=crop)
    faces = detect_faces(before_half) + detect_faces(after_half)
    return PairHalves(before=before_half, after=after_half, crop=crop, faces=faces)


def preview_pair(
    repo: Repository,
    actor: Actor,
    pair: MarketingPair,
    *,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Sequence[BlurBox] = (),
    crop: tuple[int, int, int, int] | None = None,
    half_max_side_px: int = 800,
) -> np.ndarray:
    """The composite of one listed pair, exactly as the export would make it (for a page).

    Re-checks the pair's consent first. Nothing is written or audited as an export
    (the repository audits the photo reads).

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8

    Raises
    ------
    ConsentError
        The consent is no longer valid for the pair's channel.
    PhotoError
        A face is visible (draw a blur box), or a photo changed.
    RegistrationError
        The pair does not align.
    """
    if not repo.recheck_marketing_pairs(actor, [pair]):
        raise ConsentError(
            f"The marketing consent for this pair is no longer valid for {pair.channel}."
        )
    text = repo.settings.clinic_name if watermark is None else watermark
    _check_watermark(text, watermark_opacity)
    style = _Style(layout, text, watermark_opacity, colour, half_max_side_px)
    return _pair_composite(
        repo,
        actor,
        pair,
        channel=pair.channel,
        style=style,
        blur_boxes=blur_boxes,
        crop=crop,
    )


def run_export(
    repo: Repository,
    actor: Actor,
    pairs: Sequence[MarketingPair | str] | None = None,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Mapping[str, Sequence[BlurBox]] | None = None,
    crops: Mapping[str, tuple[int, int, int, int]] | None = None,
    half_max_side_px: int = 1200,
    filename: str = "pairs.zip",
) -> ExportResult:
    """Export consented before/after pairs as a de-identified ZIP, and audit it.

    Consent is checked when the pairs are chosen, again right before each pair's
    photos are read, and a last time in the transaction that writes the audit
    events; a pair whose consent was revoked or expired in between is left out.

    Parameters
    ----------
    repo : Repository
    actor : Actor
        A marketing or admin account.
    channel : {"website", "social", "print"}
    pairs : sequence of MarketingPair or str, optional
        The pairs chosen (from :func:`list_exportable_pairs`, or their
        :func:`pair_key`). Default: every pair the filters list.
    min_improvement, area, date_from, date_to
        Filters, as in :func:`list_exportable_pairs` (used when ``pairs`` is None or
        given as keys).
    watermark : str, optional
        Watermark text; default the clinic's name (``VEIN_TRACKER_CLINIC_NAME``).
    watermark_opacity : float
        In (0, 1].
    layout : {"side_by_side", "stacked"}
    colour : {"shared_levels", "none"}
        See :func:`compose_pair`.
    blur_boxes : mapping of pair key to sequence of BlurBox, optional
        Boxes drawn by the user per pair, in baseline pixels.
    crops : mapping of pair key to (x, y, width, height), optional
        A crop per pair in baseline pixels (default: the largest rectangle seen in
        both photos).
    half_max_side_px : int
        Longer side of each half of a composite, px.
    filename : str
        Name given to the ZIP (recorded in the audit log).

    Returns
    -------
    ExportResult

    Raises
    ------
    AccessDenied
        The policy does not let the actor export marketing pairs.
    ValueError
        Bad options.
    """
    _check_allowed(repo, actor, channel)
    style = _checked_style(
        repo,
        layout=layout,
        colour=colour,
        watermark=watermark,
        watermark_opacity=watermark_opacity,
        half_max_side_px=half_max_side_px,
    )
    boxes, crop_map = dict(blur_boxes or {}), dict(crops or {})
    chosen, skipped = choose_pairs(
        repo,
        actor,
        pairs,
        channel=channel,
        min_improvement=min_improvement,
        area=area,
        date_from=date_from,
        date_to=date_to,
    )
    refusals = _Refusals(repo, actor, channel=channel, skipped=skipped)
    # Check consent again: a revocation since the pairs were chosen removes them.
    still = {pair_key(p) for p in repo.recheck_marketing_pairs(actor, chosen)}
    public_ids = repo.export_public_ids(actor, chosen)
    batch = _compose_each(
        repo,
        actor,
        chosen,
        still=still,
        public_ids=public_ids,
        style=style,
        boxes=boxes,
        crops=crop_map,
        refusals=refusals,
    )
    _record_export(repo, actor, batch, filename=filename, refusals=refusals)
    # The private mapping (published id -> records) stays in the database.
    repo.record_exported_pairs(actor, batch.pairs, channel=channel, public_ids=public_ids)
    blob = build_zip(batch.images, write_manifest(batch.rows))
    return ExportResult(
        zip_bytes=blob, rows=tuple(batch.rows), skipped=tuple(skipped), channel=channel
    )


def _check_allowed(repo: Repository, actor: Actor, channel: str) -> None:
    """A known channel, and an account the policy lets export (a refusal is audited)."""
    from .. import policy

    _check_channel(channel)
    try:
        policy.require(actor, policy.Action.EXPORT_MARKETING)
    except AccessDenied as exc:
        repo.log_refusal(actor, "export", reason=str(exc), detail={"channel": channel})
        raise


def _checked_style(
    repo: Repository,
    *,
    layout: str,
    colour: str,
    watermark: str | None,
    watermark_opacity: float,
    half_max_side_px: int,
) -> _Style:
    """The export's composite options, checked before any photo is read."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    text = repo.settings.clinic_name if watermark is None else watermark
    _check_watermark(text, watermark_opacity)
    return _Style(layout, text, watermark_opacity, colour, half_max_side_px)


@dataclass(frozen=True)
class _Refusals:
    """The pairs one export leaves out: each listed for the page, each audited."""

    repo: Repository
    actor: Actor
    channel: str
    skipped: list[SkippedPair]

    def leave_out(self, pair: MarketingPair, reason: str) -> None:
        # Every pair left out is a refusal: audited with who, which pair and why.
        self.skipped.append(SkippedPair(pair_label(pair), pair_key(pair), reason))
        self.repo.log_refusal(
            self.actor,
            "export",
            reason=reason,
            client_id=pair.client_id,
            target=("area", pair.area_id),
            detail={
                "channel": self.channel,
                "photos": [pair.baseline_photo_id, pair.followup_photo_id],
            },
        )


@dataclass
class _Batch:
    """The pairs composed so far: their JPEG by file name, manifest rows and records."""

    images: dict[str, bytes] = field(default_factory=dict)
    rows: list[ManifestRow] = field(default_factory=list)
    pairs: list[MarketingPair] = field(default_factory=list)

    def add(self, pair: MarketingPair, row: ManifestRow, jpeg: bytes) -> None:
        self.images[row.file.removeprefix("images/")] = jpeg
        self.pairs.append(pair)
        self.rows.append(row)

    def keep_only(self, keep: set[str], refusals: _Refusals) -> None:
        """Drop (and leave out, audited) every pair whose key is not in ``keep``."""
        kept_rows, kept_pairs = [], []
        for p, r in zip(self.pairs, self.rows, strict=True):
            if pair_key(p) in keep:
                kept_pairs.append(p)
                kept_rows.append(r)
            else:
                refusals.leave_out(p, _CONSENT_GONE)
                self.images.pop(r.file.removeprefix("images/"), None)
        self.pairs, self.rows = kept_pairs, kept_rows


def _compose_each(
    repo: Repository,
    actor: Actor,
    chosen: Sequence[MarketingPair],
    *,
    still: set[str],
    public_ids: Mapping[str, str],
    style: _Style,
    boxes: Mapping[str, Sequence[BlurBox]],
    crops: Mapping[str, tuple[int, int, int, int]],
    refusals: _Refusals,
) -> _Batch:
    """Compose each chosen pair still consented; leave out the others, with the reason."""
    batch = _Batch()
    for pair in chosen:
        key = pair_key(pair)
        if key not in still:
            refusals.leave_out(pair, _CONSENT_GONE)
            continue
        try:
            comp = _pair_composite(
                repo,
                actor,
                pair,
                channel=refusals.channel,
                style=style,
                blur_boxes=boxes.get(key, ()),
                crop=crops.get(key),
            )
        except (ConsentError, AccessDenied):
            refusals.leave_out(pair, _CONSENT_GONE)
            continue
        except (PhotoError, RegistrationError, StorageError) as exc:
            refusals.leave_out(pair, str(exc))
            continue
        jpeg = encode_composite(comp)
        batch.add(pair, manifest_row(pair, pair_id=public_ids[key], channel=refusals.channel), jpeg)
    return batch


def _record_export(
    repo: Repository, actor: Actor, batch: _Batch, *, filename: str, refusals: _Refusals
) -> None:
    """Audit the export; a pair whose consent lapsed meanwhile is dropped from ``batch``."""
    # The audit transaction re-checks every consent; a revocation that landed while the
    # composites were made drops the pair here, before any byte leaves.
    for _ in range(len(batch.pairs) + 1):
        try:
            # No digest of the composite is kept: the ZIP's files must not hash to a record.
            repo.record_export(actor, batch.pairs, channel=refusals.channel, filename=filename)
            return
        except ConsentError:
            keep = {pair_key(p) for p in repo.recheck_marketing_pairs(actor, batch.pairs)}
            batch.keep_only(keep, refusals)
    # Each retry removes at least one pair.
    raise ConsentError(  # pragma: no cover
        "Consents kept changing during the export: please export again."
    )


def export_pairs(
    repo: Repository,
    actor: Actor,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    pairs: Sequence[MarketingPair | str] | None = None,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Mapping[str, Sequence[BlurBox]] | None = None,
    crops: Mapping[str, tuple[int, int, int, int]] | None = None,
) -> bytes:
    """The ZIP bytes of :func:`run_export` (same arguments): the page hook of the UI."""
    return run_export(
        repo,
        actor,
        channel=channel,
        pairs=pairs,
        min_improvement=min_improvement,
        area=area,
        date_from=date_from,
        date_to=date_to,
        watermark=watermark,
        watermark_opacity=watermark_opacity,
        layout=layout,
        colour=colour,
        blur_boxes=blur_boxes,
        crops=crops,
    ).zip_bytes
