"""Saved analyses of photo pairs and their masks.

Owns the ``analyses`` and ``analysis_masks`` rows: one row per (pair, parameters,
algorithm version), masks as PNG in the photo store, and the lists a re-analysis
batch works from.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import ALGORITHM_VERSION
from ...hashing import sha256_hex
from ...policy import Action
from .. import models as m
from ..info import Actor, AnalysisInfo, utcnow
from .base import RepositoryBase
from .common import account_id, add_audit, get_or_missing, jsonable
from .rows import analysis_info


def _listing_figures(result_json: Mapping[str, Any]) -> tuple[float | None, bool | None]:
    """``improvement_pct`` and ``meets_target`` of a result, copied to the row for lists."""
    improvement = result_json.get("improvement_pct")
    meets = result_json.get("meets_target")
    return (
        float(improvement) if isinstance(improvement, int | float) else None,
        bool(meets) if isinstance(meets, bool) else None,
    )


def _check_same_area(s: Session, baseline_photo_id: int, followup_photo_id: int) -> None:
    b = get_or_missing(s, m.Photo, baseline_photo_id, "photo")
    f = get_or_missing(s, m.Photo, followup_photo_id, "photo")
    if b.area_id != f.area_id:
        raise ValueError("the two photos are of different treatment areas")


def _audit_save(s: Session, actor: Actor, row: m.Analysis) -> None:
    add_audit(
        s,
        actor,
        "analysis_save",
        target=("analysis", row.id),
        client_id=row.client_id,
        detail={
            "baseline_photo_id": row.baseline_photo_id,
            "followup_photo_id": row.followup_photo_id,
            "algorithm_version": row.algorithm_version,
            "improvement_pct": row.improvement_pct,
        },
    )


class AnalysisRecords(RepositoryBase):
    """Analyses of photo pairs (part of :class:`~vein_tracker.storage.Repository`)."""

    def save_analysis(
        self,
        actor: Actor,
        baseline_photo_id: int,
        followup_photo_id: int,
        *,
        params: Mapping[str, Any],
        result: Mapping[str, Any],
        masks: Mapping[str, np.ndarray | bytes] | None = None,
        algorithm_version: str = ALGORITHM_VERSION,
        params_hash: str | None = None,
    ) -> AnalysisInfo:
        """Store the analysis of a pair (staff only); one row per (pair, params, version).

        Saving again with the same key replaces that row's result and masks (the same
        algorithm on the same input); a different ``algorithm_version`` adds a row and
        keeps the old one.

        Parameters
        ----------
        params : mapping
            Parameters given to ``measure.compare`` (JSON-able).
        result : mapping
            ``Comparison.to_dict()``; ``improvement_pct`` and ``meets_target`` are copied
            for listing. Non-finite numbers are stored as None.
        masks : mapping of str to ndarray or bytes, optional
            2-D ``bool`` masks or ``uint8`` label images (e.g. ``"region"``,
            ``"change_map"``), or PNG bytes already encoded; stored as PNG in the
            photo store.
        params_hash : str, optional
            The caller's own cache key for ``params``; default :func:`params_hash`.
        """
        self._require(actor, Action.ANALYSE)
        if baseline_photo_id == followup_photo_id:
            raise ValueError("baseline_photo_id and followup_photo_id must differ")
        params_json = jsonable(params)
        result_json = jsonable(result)
        phash = _params_key(params, params_hash)
        improvement, meets = _listing_figures(result_json)

        def check(s: Session) -> None:
            _check_same_area(s, baseline_photo_id, followup_photo_id)

        self._guard(actor, check, write=False)
        stored: dict[str, tuple[str, int]] = {}
        for name, arr in (masks or {}).items():
            png = _mask_png(arr, name)
            stored[_clean_mask_name(name)] = (self.store.put(png), len(png))

        def body(s: Session) -> AnalysisInfo:
            b = get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            row = s.scalar(
                sa.select(m.Analysis).where(
                    m.Analysis.baseline_photo_id == baseline_photo_id,
                    m.Analysis.followup_photo_id == followup_photo_id,
                    m.Analysis.params_hash == phash,
                    m.Analysis.algorithm_version == algorithm_version,
                )
            )
            now = utcnow()
            if row is None:
                row = m.Analysis(
                    client_id=b.client_id,
                    area_id=b.area_id,
                    baseline_photo_id=baseline_photo_id,
                    followup_photo_id=followup_photo_id,
                    params_hash=phash,
                    algorithm_version=algorithm_version,
                    params=params_json,
                    result=result_json,
                    improvement_pct=improvement,
                    meets_target=meets,
                    created_at=now,
                    created_by_id=account_id(actor),
                )
                s.add(row)
                s.flush()
            else:
                row.params = params_json
                row.result = result_json
                row.improvement_pct = improvement
                row.meets_target = meets
                row.created_at = now
                row.created_by_id = account_id(actor)
                s.execute(sa.delete(m.AnalysisMask).where(m.AnalysisMask.analysis_id == row.id))
            for name, (sha, size) in stored.items():
                s.add(m.AnalysisMask(analysis_id=row.id, name=name, sha256=sha, size_bytes=size))
            s.flush()
            _audit_save(s, actor, row)
            return analysis_info(s, row)

        return self._guard(actor, body, write=True)

    def get_analysis(
        self,
        actor: Actor,
        baseline_photo_id: int,
        followup_photo_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        algorithm_version: str | None = ALGORITHM_VERSION,
        params_hash: str | None = None,
    ) -> AnalysisInfo | None:
        """The stored analysis of a pair, or None (cache lookup).

        ``params`` (or the caller's ``params_hash``) None matches any parameters (the
        newest is returned); ``algorithm_version`` None matches any version (the newest
        version wins).
        """
        phash = _params_key(params, params_hash) if (params or params_hash) else None

        def body(s: Session) -> AnalysisInfo | None:
            b = get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            self._require_client_read(actor, b.client_id)
            q = sa.select(m.Analysis).where(
                m.Analysis.baseline_photo_id == baseline_photo_id,
                m.Analysis.followup_photo_id == followup_photo_id,
            )
            if phash is not None:
                q = q.where(m.Analysis.params_hash == phash)
            if algorithm_version is not None:
                q = q.where(m.Analysis.algorithm_version == algorithm_version)
            rows = list(s.scalars(q))
            if not rows:
                return None
            best = max(rows, key=lambda r: (version_key(r.algorithm_version), r.created_at, r.id))
            return analysis_info(s, best)

        return self._guard(actor, body, write=False)

    def find_analysis(
        self,
        actor: Actor,
        *,
        baseline_photo_id: int,
        followup_photo_id: int,
        params_hash: str | None = None,
        algorithm_version: str | None = ALGORITHM_VERSION,
    ) -> AnalysisInfo | None:
        """Keyword form of :meth:`get_analysis` with the caller's ``params_hash``."""
        return self.get_analysis(
            actor,
            baseline_photo_id,
            followup_photo_id,
            params_hash=params_hash,
            algorithm_version=algorithm_version,
        )

    def get_analysis_by_id(self, actor: Actor, analysis_id: int) -> AnalysisInfo:
        """One analysis (staff, or the owning client)."""

        def body(s: Session) -> AnalysisInfo:
            row = get_or_missing(s, m.Analysis, analysis_id, "analysis")
            self._require_client_read(actor, row.client_id)
            return analysis_info(s, row)

        return self._guard(actor, body, write=False)

    def list_analyses(
        self,
        actor: Actor,
        area_id: int,
        *,
        algorithm_version: str | None = None,
        latest_only: bool = True,
    ) -> list[AnalysisInfo]:
        """Analyses of an area, by follow-up visit date (staff, or the owning client).

        With ``latest_only`` one analysis per (baseline, follow-up) pair: the newest
        algorithm version, then the newest run. ``algorithm_version`` restricts to one
        version.
        """

        def body(s: Session) -> list[AnalysisInfo]:
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            q = sa.select(m.Analysis).where(m.Analysis.area_id == area_id)
            if algorithm_version is not None:
                q = q.where(m.Analysis.algorithm_version == algorithm_version)
            rows = list(s.scalars(q))
            if latest_only:
                best: dict[tuple[int, int], m.Analysis] = {}
                for r in rows:
                    k = (r.baseline_photo_id, r.followup_photo_id)
                    cur = best.get(k)
                    if cur is None or (version_key(r.algorithm_version), r.created_at, r.id) > (
                        version_key(cur.algorithm_version),
                        cur.created_at,
                        cur.id,
                    ):
                        best[k] = r
                rows = list(best.values())
            infos = [analysis_info(s, r) for r in rows]
            dates = {
                p.id: (v.visit_date, v.session_number)
                for p, v in s.execute(
                    sa.select(m.Photo, m.Visit)
                    .join(m.Visit, m.Visit.id == m.Photo.visit_id)
                    .where(m.Photo.area_id == area_id)
                )
            }
            infos.sort(key=lambda i: (dates.get(i.followup_photo_id, (date.min, 0)), i.id))
            return infos

        return self._guard(actor, body, write=False)

    def load_analysis_masks(self, actor: Actor, analysis_id: int) -> dict[str, np.ndarray]:
        """The masks of an analysis by name (bool or uint8 arrays), verified from the store."""

        def body(s: Session) -> dict[str, str]:
            row = get_or_missing(s, m.Analysis, analysis_id, "analysis")
            self._require_client_read(actor, row.client_id)
            q = sa.select(m.AnalysisMask).where(m.AnalysisMask.analysis_id == analysis_id)
            return {mk.name: mk.sha256 for mk in s.scalars(q)}

        names = self._guard(actor, body, write=False)
        return {name: decode_mask_png(self.store.get(sha)) for name, sha in names.items()}

    def list_stale_analyses(
        self,
        actor: Actor,
        *,
        since: date | None = None,
        area_id: int | None = None,
        current_version: str = ALGORITHM_VERSION,
    ) -> list[AnalysisInfo]:
        """Analyses to re-run: made with an algorithm older than ``current_version`` and
        with no analysis of the same pair and parameters at ``current_version`` yet
        (staff only).

        One entry (the newest old version) per (baseline, follow-up, params); a finished
        re-run drops out of this list, so an interrupted batch resumes where it stopped.
        ``since`` keeps pairs whose follow-up visit is on or after that date.
        """
        self._require(actor, Action.ANALYSE)
        current = version_key(current_version)

        def body(s: Session) -> list[AnalysisInfo]:
            q = sa.select(m.Analysis)
            if area_id is not None:
                q = q.where(m.Analysis.area_id == area_id)
            if since is not None:
                q = (
                    q.join(m.Photo, m.Photo.id == m.Analysis.followup_photo_id)
                    .join(m.Visit, m.Visit.id == m.Photo.visit_id)
                    .where(m.Visit.visit_date >= since)
                )
            groups: dict[tuple[int, int, str], list[m.Analysis]] = {}
            for r in s.scalars(q):
                groups.setdefault(
                    (r.baseline_photo_id, r.followup_photo_id, r.params_hash), []
                ).append(r)
            out = []
            for rows in groups.values():
                if any(version_key(r.algorithm_version) >= current for r in rows):
                    continue
                newest = max(rows, key=lambda r: (version_key(r.algorithm_version), r.id))
                out.append(analysis_info(s, newest))
            out.sort(key=lambda i: i.id)
            return out

        return self._guard(actor, body, write=False)

    def list_unanalysed_pairs(
        self, actor: Actor, *, area_id: int | None = None
    ) -> list[tuple[int, int]]:
        """(baseline photo id, follow-up photo id) pairs with no analysis at all (staff only).

        Follow-ups are the area's photos at other visits than its baseline's.
        """
        self._require(actor, Action.ANALYSE)

        def body(s: Session) -> list[tuple[int, int]]:
            q = sa.select(m.AreaBaseline, m.Photo).join(
                m.Photo, m.Photo.id == m.AreaBaseline.photo_id
            )
            if area_id is not None:
                q = q.where(m.AreaBaseline.area_id == area_id)
            done = set(
                s.execute(sa.select(m.Analysis.baseline_photo_id, m.Analysis.followup_photo_id))
            )
            out: list[tuple[int, int]] = []
            for b, bp in s.execute(q):
                follow = s.scalars(
                    sa.select(m.Photo.id).where(
                        m.Photo.area_id == b.area_id, m.Photo.visit_id != bp.visit_id
                    )
                )
                out.extend((bp.id, f) for f in follow if (bp.id, f) not in done)
            return sorted(out)

        return self._guard(actor, body, write=False)


def params_hash(params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of analysis parameters (sorted keys, no spaces)."""
    return sha256_hex(json.dumps(jsonable(params), sort_keys=True, separators=(",", ":")).encode())


def version_key(version: str) -> tuple[int, ...]:
    """``"1.10.0"`` -> ``(1, 10, 0)`` for ordering algorithm versions (non-digits ignored)."""
    parts = []
    for piece in str(version).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _clean_mask_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 64
        or not name.replace("_", "").isalnum()
    ):
        raise ValueError(f"mask names must be 1-64 letters, digits or '_', got {name!r}")
    return name


def _params_key(params: Mapping[str, Any] | None, given: str | None) -> str:
    if given is not None:
        if not isinstance(given, str) or not 1 <= len(given) <= 64:
            raise ValueError("params_hash must be a string of 1-64 characters")
        return given
    return params_hash(params or {})


def _mask_png(value: np.ndarray | bytes, name: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"mask {name!r} bytes must be a PNG file")
        return data
    return encode_mask_png(value, name=name)


def encode_mask_png(mask: np.ndarray, *, name: str = "mask") -> bytes:
    """PNG bytes of a 2-D ``bool`` mask (1-bit) or ``uint8`` label image (8-bit grey)."""
    from PIL import Image

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask {name!r} must be 2-D, got shape {arr.shape}")
    buf = io.BytesIO()
    if arr.dtype == bool:
        Image.fromarray(arr).convert("1").save(buf, format="PNG")
    elif arr.dtype == np.uint8:
        Image.fromarray(arr, mode="L").save(buf, format="PNG")
    else:
        raise ValueError(f"mask {name!r} must be bool or uint8, got {arr.dtype}")
    return buf.getvalue()


def decode_mask_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mask_png`: ``bool`` for 1-bit PNGs, else ``uint8``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.mode == "1":
            return np.asarray(img, dtype=bool).copy()
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
