"""Vein map versions: the automatic baseline map and every reviewed correction of it.

Part of :class:`~vein_tracker.storage.Repository` (one aggregate of :mod:`.repo`).
Each version is a PNG label image (0 none, 1 spider, 2 reticular) of one baseline photo
in the analysis frame, with the free-hand region of interest when one was drawn, the
edits that made it, who and when. Versions are never changed (the table is append-only):
a correction is a new version that names the one it corrects. Only clinic staff may
save or read maps (:mod:`vein_tracker.policy`); clients see who reviewed their map
(:class:`VeinMapInfo` has no pixels).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...errors import StorageError
from ...policy import Action
from .. import models as m
from ..info import Actor, _ToDict, utcnow
from .analyses import decode_mask_png, encode_mask_png
from .base import RepositoryBase
from .common import add_audit, clean_text, get_or_missing, jsonable
from .rows import username_of

#: Kinds of map version.
MAP_KINDS: Final = ("automatic", "reviewed")
#: Largest map accepted, pixels (a 12 MP photo's analysis frame is about 3 MP).
MAX_MAP_PIXELS: Final = 40_000_000


@dataclass(frozen=True)
class VeinMapInfo(_ToDict):
    """One version of a baseline photo's vein map (no pixels: see ``load_vein_map``).

    Attributes
    ----------
    id : int
    client_id, area_id, baseline_photo_id : int
    version : int
        1, 2, ... per baseline photo.
    kind : {"automatic", "reviewed"}
    based_on_id : int or None
        The version this one corrects.
    analysis_id : int or None
        The saved analysis an automatic map came from.
    width, height : int
        Map size, pixels (the analysis frame of the baseline).
    sha256 : str
        Of the labels PNG.
    has_roi : bool
        A free-hand region of interest goes with the map.
    edits : dict or None
        ``{"edits": [...], "summary": {...}}`` of a reviewed map.
    params : dict
        How the automatic map was made (sensitivity, algorithm version).
    note : str or None
    created_at : datetime
    created_by : str or None
        Username of whoever saved it (None for the system).
    """

    id: int
    client_id: int
    area_id: int
    baseline_photo_id: int
    version: int
    kind: str
    based_on_id: int | None
    analysis_id: int | None
    width: int
    height: int
    sha256: str
    has_roi: bool
    edits: dict[str, Any] | None
    params: dict[str, Any]
    note: str | None
    created_at: datetime
    created_by: str | None

    @property
    def reviewed(self) -> bool:
        return self.kind == "reviewed"

    def reviewed_by_text(self) -> str | None:
        """``"vein map reviewed by anna on 2026-12-04"`` for a reviewed map, else None."""
        if not self.reviewed:
            return None
        who = self.created_by or "the clinic"
        return f"vein map reviewed by {who} on {self.created_at.date().isoformat()}"


@dataclass(frozen=True, eq=False)
class VeinMap:
    """A map version's pixels with its record.

    Attributes
    ----------
    info : VeinMapInfo
    labels : ndarray, shape (height, width), dtype uint8
    roi : ndarray, shape (height, width), dtype bool, or None
    """

    info: VeinMapInfo
    labels: np.ndarray
    roi: np.ndarray | None


def _labels_png(labels: np.ndarray) -> bytes:
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.dtype != np.uint8 or arr.size == 0:
        raise ValueError(f"labels must be a (H, W) uint8 label map, got {arr.dtype} {arr.shape}")
    if arr.size > MAX_MAP_PIXELS:
        raise ValueError(f"labels has {arr.size} pixels, at most {MAX_MAP_PIXELS}")
    if int(arr.max(initial=0)) > 2:
        raise ValueError("labels must hold 0 (none), 1 (spider) or 2 (reticular) only")
    return encode_mask_png(arr, name="labels")


def _roi_png(roi: np.ndarray | None, shape: tuple[int, ...]) -> bytes | None:
    if roi is None:
        return None
    arr = np.asarray(roi)
    if arr.dtype != bool or arr.shape != shape:
        raise ValueError(f"roi must be a bool mask of shape {shape}, got {arr.dtype} {arr.shape}")
    return encode_mask_png(arr, name="roi")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise StorageError("A stored vein map is damaged (not base64).") from exc


def _map_info(s: Session, r: m.VeinMapVersion) -> VeinMapInfo:
    return VeinMapInfo(
        id=r.id,
        client_id=r.client_id,
        area_id=r.area_id,
        baseline_photo_id=r.baseline_photo_id,
        version=r.version,
        kind=r.kind,
        based_on_id=r.based_on_id,
        analysis_id=r.analysis_id,
        width=r.width,
        height=r.height,
        sha256=r.sha256,
        has_roi=r.roi_png_b64 is not None,
        edits=dict(r.edits) if r.edits is not None else None,
        params=dict(r.params),
        note=r.note,
        created_at=r.created_at,
        created_by=username_of(s, r.created_by_id),
    )


def _check_sources(
    s: Session,
    baseline_photo_id: int,
    shape: tuple[int, ...],
    *,
    based_on_id: int | None,
    analysis_id: int | None,
) -> None:
    """The version corrected and the analysis are of this baseline photo (and size)."""
    if based_on_id is not None:
        base = get_or_missing(s, m.VeinMapVersion, based_on_id, "vein map")
        if base.baseline_photo_id != baseline_photo_id:
            raise ValueError("based_on_id is a map of another photo")
        if (base.height, base.width) != shape:
            raise ValueError(
                f"labels must have the corrected map's shape {(base.height, base.width)}, "
                f"got {shape}"
            )
    if analysis_id is not None:
        a = get_or_missing(s, m.Analysis, analysis_id, "analysis")
        if a.baseline_photo_id != baseline_photo_id:
            raise ValueError("analysis_id is an analysis of another baseline photo")


def _audit_save(s: Session, actor: Actor, row: m.VeinMapVersion, edits_json: Any) -> None:
    summary = (edits_json or {}).get("summary") if isinstance(edits_json, dict) else None
    add_audit(
        s,
        actor,
        "vein_map_save",
        target=("vein_map", row.id),
        client_id=row.client_id,
        detail={
            "baseline_photo_id": row.baseline_photo_id,
            "version": row.version,
            "kind": row.kind,
            "based_on_id": row.based_on_id,
            "summary": summary,
        },
    )


class VeinMapRecords(RepositoryBase):
    """Vein map versions (part of :class:`~vein_tracker.storage.Repository`)."""

    def save_vein_map(
        self,
        actor: Actor,
        baseline_photo_id: int,
        labels: np.ndarray,
        *,
        kind: str = "reviewed",
        roi: np.ndarray | None = None,
        based_on_id: int | None = None,
        analysis_id: int | None = None,
        edits: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> VeinMapInfo:
        """Store a new version of a baseline photo's vein map; audited.

        An automatic map needs the ``analyse`` action, a reviewed one ``correct_vein_map``
        (:mod:`vein_tracker.policy`).

        Parameters
        ----------
        baseline_photo_id : int
            The photo the map is of.
        labels : ndarray, shape (H, W), dtype uint8
            0 none, 1 spider, 2 reticular.
        kind : {"automatic", "reviewed"}
        roi : ndarray, shape (H, W), dtype bool, optional
            The free-hand region of interest.
        based_on_id : int, optional
            The version corrected (required for a reviewed map).
        analysis_id : int, optional
            The saved analysis an automatic map came from.
        edits, params : mapping, optional
            JSON-able: the editor's edit list and summary; how the map was made.
        note : str, optional

        Returns
        -------
        VeinMapInfo
            With the next version number of this photo's maps.

        Raises
        ------
        AccessDenied
            Not clinic staff, or the photo or version is not found.
        ValueError
            Bad labels, roi or kind; a correction of another photo's map; a reviewed
            map without ``based_on_id``, or of another size than the map it corrects.
        """
        if kind not in MAP_KINDS:
            raise ValueError(f"kind must be one of {MAP_KINDS}, got {kind!r}")
        # The automatic map is part of an analysis; a reviewed one is a correction.
        self._require(actor, Action.ANALYSE if kind == "automatic" else Action.CORRECT_VEIN_MAP)
        if kind == "reviewed" and based_on_id is None:
            raise ValueError("based_on_id is required for a reviewed map (the version corrected)")
        labels_png = _labels_png(labels)
        shape = np.asarray(labels).shape
        roi_png = _roi_png(roi, shape)
        sha = hashlib.sha256(labels_png).hexdigest()
        note_text = clean_text(note, field="note")
        edits_json = jsonable(edits) if edits is not None else None
        params_json = jsonable(params or {})

        def body(s: Session) -> VeinMapInfo:
            photo = get_or_missing(s, m.Photo, baseline_photo_id, "photo", lock=True)
            _check_sources(
                s, baseline_photo_id, shape, based_on_id=based_on_id, analysis_id=analysis_id
            )
            last = s.scalar(
                sa.select(sa.func.max(m.VeinMapVersion.version)).where(
                    m.VeinMapVersion.baseline_photo_id == baseline_photo_id
                )
            )
            row = m.VeinMapVersion(
                client_id=photo.client_id,
                area_id=photo.area_id,
                baseline_photo_id=baseline_photo_id,
                version=int(last or 0) + 1,
                kind=kind,
                based_on_id=based_on_id,
                analysis_id=analysis_id,
                width=int(shape[1]),
                height=int(shape[0]),
                labels_png_b64=_b64(labels_png),
                roi_png_b64=_b64(roi_png) if roi_png is not None else None,
                sha256=sha,
                edits=edits_json,
                params=params_json,
                note=note_text,
                created_at=utcnow(),
                created_by_id=None if actor.is_system else actor.user_id,
            )
            s.add(row)
            s.flush()
            _audit_save(s, actor, row, edits_json)
            return _map_info(s, row)

        try:
            return self._guard(actor, body, write=True)
        except sa.exc.IntegrityError as exc:
            # Two people saved a version of this photo's map at the same moment.
            raise StorageError(
                "Another version of this vein map was saved at the same time: reload the "
                "page and apply your corrections again."
            ) from exc

    def list_vein_maps(self, actor: Actor, baseline_photo_id: int) -> list[VeinMapInfo]:
        """Every version of a baseline photo's map, oldest first (whoever may read the
        client's records: staff, or the client's own account)."""

        def body(s: Session) -> list[VeinMapInfo]:
            photo = get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            self._require_client_read(actor, photo.client_id)
            rows = s.scalars(
                sa.select(m.VeinMapVersion)
                .where(m.VeinMapVersion.baseline_photo_id == baseline_photo_id)
                .order_by(m.VeinMapVersion.version)
            )
            return [_map_info(s, r) for r in rows]

        return self._guard(actor, body, write=False)

    def current_vein_map(
        self, actor: Actor, baseline_photo_id: int, *, kind: str | None = None
    ) -> VeinMapInfo | None:
        """The newest version (of ``kind`` when given), or None when there is none."""
        if kind is not None and kind not in MAP_KINDS:
            raise ValueError(f"kind must be one of {MAP_KINDS}, got {kind!r}")
        maps = [v for v in self.list_vein_maps(actor, baseline_photo_id) if kind in (None, v.kind)]
        return maps[-1] if maps else None

    def load_vein_map(self, actor: Actor, map_id: int) -> VeinMap:
        """A version's labels and region of interest (``view_client_records``), verified.

        Raises
        ------
        AccessDenied
        StorageError
            The stored PNG does not match its hash.
        """
        self._require(actor, Action.VIEW_CLIENT_RECORDS)

        def body(s: Session) -> tuple[VeinMapInfo, bytes, bytes | None]:
            r = get_or_missing(s, m.VeinMapVersion, map_id, "vein map")
            roi = _unb64(r.roi_png_b64) if r.roi_png_b64 is not None else None
            return _map_info(s, r), _unb64(r.labels_png_b64), roi

        info, labels_png, roi_png = self._guard(actor, body, write=False)
        if hashlib.sha256(labels_png).hexdigest() != info.sha256:
            raise StorageError(f"Vein map {map_id} is damaged (its hash does not match).")
        labels = decode_mask_png(labels_png)
        roi = decode_mask_png(roi_png).astype(bool) if roi_png is not None else None
        return VeinMap(info=info, labels=labels.astype(np.uint8), roi=roi)
