"""The Review page's vein map section: correct the baseline map, see the figure at once.

Shown under the figure on the Review page (one call from ``ui.review``). The editor
(:mod:`.vein_map_editor`) sends the aesthetician's edits; they are replayed on the map
(:func:`vein_tracker.vein_map.apply_edits`) and the pair is measured again on the
corrected map with :func:`vein_tracker.measure.remeasure` (the registration, the
follow-up's segmentation and the analysis frame are kept: no re-registering). Saving
stores the corrected map as a new version beside the automatic one (who, when, the
edits; audited) and the figure measured on it as the pair's newest analysis, so
Progress, reports and exports read it and can say "vein map reviewed by ...".

The pair's comparison is kept in a small process-wide cache after the repository's
access check (the photo records are read for every call), like ``services``' own.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import streamlit as st

from vein_tracker import ALGORITHM_VERSION, services
from vein_tracker.outcome import TARGET_STATUS_TEXT, target_status_of
from vein_tracker.policy import Action
from vein_tracker.storage import Actor, Repository
from vein_tracker.storage.info import PhotoInfo
from vein_tracker.storage.repo.vein_maps import VeinMapInfo
from vein_tracker.ui import session, widgets
from vein_tracker.ui.vein_map_editor import vein_map_editor
from vein_tracker.vein_map import EditedMap, apply_edits

_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, ...], tuple[Any, Any, Any]] = OrderedDict()
_lock = threading.Lock()
_EDITS = "vmr_edits"
_REMEASURED = "vmr_remeasured"


def _comparison(
    actor: Actor, baseline: PhotoInfo, followup: PhotoInfo, params: services.AnalysisParams
) -> tuple[Any, Any, Any]:
    """The pair's comparison and both photos (compared once, then from the cache)."""
    from vein_tracker.measure import compare

    repo = session.repo()
    # Read through the repository first, so the access check runs on every call.
    b_info = repo.get_photo(actor, baseline.id)
    f_info = repo.get_photo(actor, followup.id)
    key = (repo.settings.db_url, b_info.sha256, f_info.sha256, params.key(), ALGORITHM_VERSION)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    b = repo.load_photo(actor, baseline.id)
    f = repo.load_photo(actor, followup.id)
    comparison = compare(
        b,
        f,
        roi=params.roi_mask(b.rgb.shape[:2]),
        sensitivity=params.sensitivity,
        target_pct=params.target_pct,
    )
    with _lock:
        _cache[key] = (comparison, b, f)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return comparison, b, f


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _remeasured(comparison: Any, b: Any, f: Any, edited: EditedMap, key: str) -> Any:
    """The pair measured on the edited map (one result kept per browser session)."""
    from vein_tracker.measure import remeasure

    kept = st.session_state.get(_REMEASURED)
    if isinstance(kept, tuple) and kept[0] == key:
        return kept[1]
    roi = comparison.to_photo(edited.roi) if edited.roi is not None else None
    result = remeasure(comparison, b, f, baseline_labels=edited.labels, roi=roi)
    st.session_state[_REMEASURED] = (key, result)
    return result


def _figure_text(result: dict[str, Any]) -> str:
    pct = result.get("improvement_pct")
    band = result.get("improvement_band_pct") or [None, None]
    status = target_status_of(result)
    text = (
        f"{widgets.fmt_pct(pct)} (likely {widgets.fmt_pct(band[0])} – {widgets.fmt_pct(band[1])})"
    )
    return f"{text}, {TARGET_STATUS_TEXT[status]}" if status else text


def render(
    actor: Actor,
    *,
    baseline: PhotoInfo,
    followup: PhotoInfo,
    params: services.AnalysisParams,
) -> None:
    """The section: the current map's reviewer, the editor, both figures, Save."""
    st.subheader("Baseline vein map")
    repo = session.repo()
    current = repo.current_vein_map(actor, baseline.id)
    if current is not None and current.reviewed:
        st.caption(f"Current map: version {current.version}, {current.reviewed_by_text()}.")
    if not st.toggle(
        "Correct the baseline vein map",
        key=f"vmr_open_{baseline.id}_{followup.id}",
        help="Erase false veins, paint missed ones, click a vein to reject or accept it, "
        "draw the region to measure. The figure is measured again after every stroke.",
    ):
        return
    with st.spinner("Preparing the vein map…"):
        comparison, b, f = _comparison(actor, baseline, followup, params)
    auto = np.asarray(comparison.baseline_seg.labels, np.uint8)
    base_labels, base_roi, base_id = auto, None, None
    if current is not None and (current.height, current.width) == auto.shape:
        stored = repo.load_vein_map(actor, current.id)
        base_labels, base_roi, base_id = stored.labels, stored.roi, current.id
    generation = f"{baseline.id}-{followup.id}-{base_id}"
    edits_key = f"{_EDITS}:{generation}"
    edits = list(st.session_state.get(edits_key, []))
    edited = apply_edits(base_labels, edits, roi=base_roi)
    new_edits = vein_map_editor(
        b.rgb,
        edited.labels,
        roi=edited.roi,
        edits=edits,
        generation=generation,
        key=f"vmr_editor_{baseline.id}",
    )
    if new_edits != edits:
        # Checked now: a bad list from the browser is refused here, not stored.
        apply_edits(base_labels, new_edits, roi=base_roi)
        st.session_state[edits_key] = new_edits
        st.rerun()
    reviewed_base = base_id is not None and current is not None and current.reviewed
    if edits or reviewed_base:
        shown = _remeasured(comparison, b, f, edited, _digest(generation, edits))
    else:
        shown = comparison
    c1, c2 = st.columns(2)
    c1.metric("Automatic map", widgets.fmt_pct(comparison.improvement_pct))
    c2.metric(
        "Corrected map" if edits else "This map",
        widgets.fmt_pct(shown.improvement_pct),
        delta=(
            f"{shown.improvement_pct - comparison.improvement_pct:+.1f} points"
            if edits and np.isfinite(shown.improvement_pct)
            else None
        ),
        delta_color="off",
    )
    st.caption(f"Measured on this map: {_figure_text(shown.to_dict())}.")
    summary = edited.summary()
    st.caption(
        f"{summary['edits']} edit(s): {summary['added_px']} px added, "
        f"{summary['erased_px']} px erased, {summary['rejected_veins']} vein(s) rejected"
        + (", region drawn" if summary["roi"] else "")
        + "."
    )
    if not edits:
        return
    if not session.admits(actor, Action.CORRECT_VEIN_MAP):
        return
    if st.button("Save the corrected map", type="primary", key=f"vmr_save_{generation}"):
        version = _save_corrected(
            actor,
            repo,
            baseline=baseline,
            followup=followup,
            params=params,
            auto=auto,
            base_id=base_id,
            edited=edited,
            edits=edits,
            shown=shown,
        )
        st.session_state.pop(edits_key, None)
        st.session_state.pop(_REMEASURED, None)
        widgets.flash(
            f"Corrected vein map saved as version {version.version}; "
            f"the figure on it is {widgets.fmt_pct(shown.improvement_pct)}."
        )
        st.rerun()


def _save_corrected(
    actor: Actor,
    repo: Repository,
    *,
    baseline: PhotoInfo,
    followup: PhotoInfo,
    params: services.AnalysisParams,
    auto: np.ndarray,
    base_id: int | None,
    edited: EditedMap,
    edits: list[Any],
    shown: Any,
) -> VeinMapInfo:
    """The corrected map as a new version (the automatic one stored first when it is not
    yet), and the figure measured on it as the pair's newest analysis."""
    based_on = base_id
    if based_on is None:
        automatic = repo.save_vein_map(
            actor,
            baseline.id,
            auto,
            kind="automatic",
            params={"sensitivity": params.sensitivity, "algorithm": ALGORITHM_VERSION},
        )
        based_on = automatic.id
    version = repo.save_vein_map(
        actor,
        baseline.id,
        edited.labels,
        kind="reviewed",
        roi=edited.roi,
        based_on_id=based_on,
        edits={"edits": edits, "summary": edited.summary()},
    )
    result = shown.to_dict()
    result["vein_map"] = {
        "version_id": version.id,
        "version": version.version,
        "reviewed_by": version.created_by,
        "reviewed_at": version.created_at.isoformat(),
    }
    repo.save_analysis(
        actor,
        baseline.id,
        followup.id,
        params={**params.to_dict(), "baseline_map_version": version.id},
        result=result,
        masks={
            "change_map": shown.change_map,
            "baseline_labels": shown.baseline_seg.labels,
            "followup_labels": shown.followup_seg.labels,
            "region": shown.region,
        },
    )
    return version
