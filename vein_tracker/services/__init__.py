"""Back-end functions the Streamlit pages call: previews, comparison renders, cached analysis.

Owns the glue between the pages (``vein_tracker.ui``) and the library. The parts are
modules of this package, and every name is importable from ``vein_tracker.services``:

- :mod:`.renders`: downscaled previews and the wipe / blend / checkerboard / overlay
  renders of the review page;
- :mod:`.uploads`: the capture check of an upload, storing it, thumbnails;
- :mod:`.review`: the review page's parameters and data, their cache, saving a result;
- :mod:`.progress_views`: an area's progress over its sessions, the latest pair;
- :mod:`.frames`: the frames behind the before/after comparison.

This module holds the analysis of a before/after pair (:func:`analyze_pair`, cached),
the screening form's override rule and the report and export hooks. Nothing here may
depend on the web framework (the UI lives in ``vein_tracker.ui``), hold per-user state,
or touch SQL or photo files directly: records and photos go through the repository,
which checks access.

Every render function is pure: it never modifies its inputs and returns a new
``(H, W, 3) uint8`` RGB array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import ALGORITHM_VERSION, policy
from .frames import (
    COMPARE_MAX_SIDE,
    SessionFrame,
    align_followup,
    compare_size,
    pair_frames,
    session_frames,
)
from .progress_views import PairPreview, area_progress, latest_pair_preview, primary_photos
from .renders import (
    CHANGE_COLOUR_NAMES,
    CHANGE_COLOURS,
    CHANGE_LABELS,
    PREVIEW_MAX_SIDE,
    VEIN_COLOUR_NAMES,
    VEIN_COLOURS,
    VEIN_LABELS,
    blend,
    change_overlay,
    checkerboard,
    ghost,
    legend,
    preview,
    roi_overlay,
    side_by_side,
    vein_overlay,
    wipe,
)
from .renders import _scaled_homography as _scaled_homography  # private, tested as services.*
from .review import (
    AnalysisParams,
    Rect,
    ReviewData,
    _cache_get,
    _cache_put,
    _review_from_stored,
    clear_analysis_cache,
    review_from_comparison,
    save_analysis,
)
from .uploads import (
    THUMB_MAX_SIDE,
    UNMATCHED_REASON,
    StoredUpload,
    UploadCheck,
    baseline_ghost,
    check_upload,
    photo_status_text,
    store_upload,
    thumbnail,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..export import ExportResult
    from ..storage import Actor, Repository
    from ..storage.info import MarketingPair, PhotoInfo, Screening

__all__ = [
    "CHANGE_COLOURS",
    "CHANGE_COLOUR_NAMES",
    "CHANGE_LABELS",
    "COMPARE_MAX_SIDE",
    "PREVIEW_MAX_SIDE",
    "THUMB_MAX_SIDE",
    "UNMATCHED_REASON",
    "VEIN_COLOURS",
    "VEIN_COLOUR_NAMES",
    "VEIN_LABELS",
    "AnalysisParams",
    "PairPreview",
    "ProgressCallback",
    "Rect",
    "ReviewData",
    "SessionFrame",
    "StoredUpload",
    "UploadCheck",
    "align_followup",
    "analyze_pair",
    "area_progress",
    "baseline_ghost",
    "blend",
    "change_overlay",
    "check_upload",
    "checkerboard",
    "clear_analysis_cache",
    "compare_size",
    "ghost",
    "latest_pair_preview",
    "legend",
    "marketing_export",
    "override_reason",
    "pair_frames",
    "photo_status_text",
    "preview",
    "primary_photos",
    "progress_report_pdf",
    "review_from_comparison",
    "roi_overlay",
    "save_analysis",
    "session_frames",
    "side_by_side",
    "store_upload",
    "thumbnail",
    "vein_overlay",
    "wipe",
]

# ----------------------------------------------------------------------------- forms


def override_reason(screening: Screening, *, override: bool, reason: str | None) -> str | None:
    """The override reason to record with a screening, or None for no override.

    The rule is :func:`vein_tracker.storage.info.resolve_override` (the repository applies
    it too): an override is never recorded without its reason.

    Raises
    ------
    ValueError
        ``override`` without a reason, or an override of a screening with no positive
        answer.
    """
    from ..storage.info import resolve_override

    return resolve_override(screening, override=override, reason=reason)


# ----------------------------------------------------------------------------- analysis

ProgressCallback = Callable[[float, str], None]


def analyze_pair(
    repo: Repository,
    actor: Actor,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    params: AnalysisParams,
    progress: ProgressCallback | None = None,
) -> ReviewData:
    """Compare a follow-up photo with its baseline, or return the cached result.

    The cache key is (database, baseline sha256, follow-up sha256, parameters hash,
    ``ALGORITHM_VERSION``). The photos' records are read through the repository
    first, so the access check runs on every call, cached or not.

    Parameters
    ----------
    repo : Repository
    actor : Actor
    baseline_photo_id, followup_photo_id : int
    params : AnalysisParams
    progress : callable(fraction, message), optional
        Called as the work advances (fraction in [0, 1]).

    Returns
    -------
    ReviewData

    Raises
    ------
    RegistrationError
        The pair cannot be aligned; the message says why and what to retake.
    AccessDenied
        The user may not analyse pairs (:mod:`vein_tracker.policy`) or read these photos.
    """
    # Analysing is a clinic job: refused before any photo is read or compared.
    policy.require(actor, policy.Action.ANALYSE)
    b_info, f_info = _usable_photos(repo, actor, baseline_photo_id, followup_photo_id)
    # The database is part of the key: a saved analysis id means nothing in another one.
    key = (repo.settings.db_url, b_info.sha256, f_info.sha256, params.key(), ALGORITHM_VERSION)
    stored = repo.get_analysis(
        actor,
        baseline_photo_id,
        followup_photo_id,
        params=params.to_dict(),
        algorithm_version=ALGORITHM_VERSION,
    )
    hit = _cache_get(key)
    if hit is not None:
        _report(progress, "Result from the cache")
        # The same photo bytes may sit under other records: answer with this pair's ids.
        return replace(
            hit,
            cached=True,
            saved=stored is not None,
            baseline_photo_id=baseline_photo_id,
            followup_photo_id=followup_photo_id,
        )
    if stored is not None:
        review = _review_from_stored(repo, actor, stored, params=params)
        if review is not None:
            _cache_put(key, review)
            _report(progress, "Result from the saved analysis")
            return replace(review, cached=True, saved=True)
    review = _analysed(
        repo,
        actor,
        baseline_photo_id=baseline_photo_id,
        followup_photo_id=followup_photo_id,
        params=params,
        progress=progress,
    )
    _cache_put(key, review)
    return replace(review, saved=stored is not None)


def _usable_photos(
    repo: Repository, actor: Actor, baseline_photo_id: int, followup_photo_id: int
) -> tuple[PhotoInfo, PhotoInfo]:
    """Both photos' records (the access check), refused unless both may be measured."""
    from ..errors import RegistrationError

    b_info = repo.get_photo(actor, baseline_photo_id)
    f_info = repo.get_photo(actor, followup_photo_id)
    for info in (b_info, f_info):
        # Issue 24: a photo marked unmatched or refused (or deleted) is never measured.
        if not info.usable:
            raise RegistrationError(photo_status_text(info))
    return b_info, f_info


def _report(progress: ProgressCallback | None, message: str) -> None:
    """A result found without computing: the work is done."""
    if progress is not None:
        progress(1.0, message)


def _analysed(
    repo: Repository,
    actor: Actor,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    params: AnalysisParams,
    progress: ProgressCallback | None,
) -> ReviewData:
    """Compare the pair's photos (``measure.compare``) and downscale the result for the page.

    A pair that cannot be aligned marks its follow-up photo "refused" in the record.
    """
    from ..errors import RegistrationError
    from ..measure import compare

    if progress is not None:
        progress(0.02, "Loading the photos")
    baseline = repo.load_photo(actor, baseline_photo_id)
    followup = repo.load_photo(actor, followup_photo_id)
    try:
        comparison = compare(
            baseline,
            followup,
            roi=params.roi_mask(baseline.shape),
            sensitivity=params.sensitivity,
            target_pct=params.target_pct,
            progress=progress,
        )
    except RegistrationError as exc:
        # Issue 24: the photo is marked "refused" in the record, so Progress, reports and
        # exports flag it and never use it, and Review opens on a usable photo next time.
        repo.set_photo_status(actor, followup_photo_id, "refused", reason=str(exc))
        raise
    # Looked up in this module, so a benchmark can wrap review_from_comparison here.
    return review_from_comparison(
        comparison,
        baseline.rgb,
        baseline_photo_id=baseline_photo_id,
        followup_photo_id=followup_photo_id,
        params=params,
    )


# ----------------------------------------------------------------------------- hooks


def progress_report_pdf(repo: Repository, actor: Actor, client_id: int) -> bytes:
    """The client's PDF progress report (``vein_tracker.report``; access checked there)."""
    from ..report import progress_report_pdf as build

    return build(repo, actor, client_id)


def marketing_export(
    repo: Repository, actor: Actor, pairs: Sequence[MarketingPair], *, channel: str
) -> ExportResult:
    """De-identified, watermarked composites and a manifest as a ZIP (``export.run_export``).

    Consent is re-checked pair by pair inside the export; pairs left out are listed in
    ``ExportResult.skipped`` with the reason.
    """
    from ..export import run_export

    return run_export(repo, actor, list(pairs), channel=channel)
