"""What leaves the clinic in an export: ``manifest.csv`` and the ZIP of composites.

Owns the manifest's columns and rows (:class:`ManifestRow`, :func:`manifest_row`), their
CSV (:func:`write_manifest`, :func:`read_manifest`), the composite's JPEG
(:func:`encode_composite`, pixels only) and the ZIP (:func:`build_zip`, fixed
timestamps, no comment). Nothing written here equals or hashes to a stored value: no
consent id, no photo digest, no record number, no date of a visit or a consent. Works on
values and bytes only; it never reads records.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import ALGORITHM_VERSION
from ..io import encode_image
from ..storage.info import MarketingPair

__all__ = [
    "MANIFEST_COLUMNS",
    "ManifestRow",
    "build_zip",
    "encode_composite",
    "manifest_row",
    "read_manifest",
    "write_manifest",
]

#: Columns of ``manifest.csv``, in order. Nothing here equals or hashes to anything in the
#: clinic's records: no consent id, no photo digest, no record number, no date of a visit
#: or a consent; ``pair_id`` is an HMAC made with a key kept only in the clinic's database.
MANIFEST_COLUMNS = (
    "pair_id",
    "file",
    "channel",
    "area",
    "sessions",
    "weeks",
    "improvement_pct",
    "grade",
    "algorithm_version",
)

# ZIP entries get a fixed timestamp: the archive says nothing about when or where it was made.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ManifestRow:
    """One exported pair, as written to ``manifest.csv`` (nothing that identifies anyone).

    Attributes
    ----------
    pair_id : str
        The pair's published id: HMAC-SHA256 of its photo ids under the clinic's private
        key (``Repository.export_public_ids``); distinct per pair, meaningless without
        the key. The composite's file is ``images/<pair_id>.jpg``.
    file : str
        Path of the composite inside the ZIP.
    area : str
        Body site, e.g. ``"left calf, posterior"`` (no free-text note).
    sessions : int
        Treatment sessions before the after photo (the photo is taken before that
        visit's treatment).
    weeks : float
        Weeks from the baseline to the after photo.
    improvement_pct : float or None
        Headline improvement of the stored analysis; ``grade`` its quartile.
    """

    pair_id: str
    file: str
    channel: str
    area: str
    sessions: int
    weeks: float
    improvement_pct: float | None
    grade: str
    algorithm_version: str = ALGORITHM_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def manifest_row(pair: MarketingPair, *, pair_id: str, channel: str) -> ManifestRow:
    """The manifest's row of one exported pair; its composite is ``images/<pair_id>.jpg``.

    Parameters
    ----------
    pair : MarketingPair
        The pair as listed (its body site, sessions, weeks and stored improvement).
    pair_id : str
        The pair's published id (``Repository.export_public_ids``).
    channel : {"website", "social", "print"}
    """
    return ManifestRow(
        pair_id=pair_id,
        file=f"images/{pair_id}.jpg",
        channel=channel,
        area=pair.area_label,
        sessions=max(0, pair.session_count - 1),
        weeks=float(pair.weeks),
        improvement_pct=pair.improvement_pct,
        grade=_grade(pair.improvement_pct),
        algorithm_version=pair.algorithm_version or ALGORITHM_VERSION,
    )


def _grade(improvement: float | None) -> str:
    if improvement is None or not math.isfinite(improvement):
        return ""
    from ..outcome import grade_for

    return str(grade_for(improvement))


def write_manifest(rows: Iterable[ManifestRow]) -> bytes:
    """``manifest.csv`` as UTF-8 bytes, header :data:`MANIFEST_COLUMNS`, one row per pair."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        d = row.to_dict()
        d["improvement_pct"] = "" if d["improvement_pct"] is None else f"{d['improvement_pct']:.1f}"
        d["weeks"] = f"{float(d['weeks']):.1f}"
        writer.writerow(d)
    return buf.getvalue().encode("utf-8")


def read_manifest(data: bytes) -> list[dict[str, str]]:
    """Parse ``manifest.csv`` bytes back into one dict per row (for checks and tests)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def build_zip(images: dict[str, bytes], manifest_csv: bytes) -> bytes:
    """ZIP with ``images/<name>`` entries and ``manifest.csv``; fixed timestamps, no comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in images.items():
            if "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"image name must be a bare file name, got {name!r}")
            info = zipfile.ZipInfo(f"images/{name}", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED  # JPEG is already compressed
            zf.writestr(info, data)
        info = zipfile.ZipInfo("manifest.csv", date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, manifest_csv)
    return buf.getvalue()


def encode_composite(composite: np.ndarray, *, quality: int = 92) -> bytes:
    """JPEG bytes of a composite with no metadata at all (pixels only)."""
    return encode_image(composite, format="JPEG", quality=quality)
