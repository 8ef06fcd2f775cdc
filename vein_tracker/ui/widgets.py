"""Small rendering helpers shared by the pages: images, charts, the numbers, reports.

Everything user-typed is shown as plain text (``st.text``/``st.dataframe``/markdown
with escaping); nothing here renders raw HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from vein_tracker import services
from vein_tracker.confidence import low_reasons, notes_of
from vein_tracker.outcome import TARGET_STATUS_TEXT, target_status_of
from vein_tracker.progress import Progress
from vein_tracker.storage import Actor
from vein_tracker.storage.info import (
    AreaInfo,
    ClientInfo,
    PhotoInfo,
    VisitInfo,
    default_next_window,
)
from vein_tracker.ui import compare_view, session
from vein_tracker.vein_map import reviewed_note

TARGET_COLOUR = "#d62728"
LINE_COLOUR = "#1f77b4"


def md_escape(text: object) -> str:
    """Escape markdown control characters so user text is shown literally."""
    s = str(text)
    for ch in "\\`*_{}[]()<>#+-.!|~$":
        s = s.replace(ch, "\\" + ch)
    return s


def kept_tabs(labels: Sequence[str], *, key: str) -> Sequence[Any]:
    """Tabs whose choice the server keeps (``on_change="rerun"``): a control in a tab
    reruns the page and that tab stays chosen. Left to the browser alone, a rerun that
    arrives mid-click can show the first tab again, and the form being filled in with it."""
    return st.tabs(list(labels), key=key, on_change="rerun")


def image(rgb: np.ndarray, *, caption: str | None = None) -> None:
    """Show a downscaled preview (never the full-resolution array)."""
    st.image(services.preview(rgb), caption=caption, width="stretch")


def colour_legend(kind: str) -> None:
    """One caption line naming each overlay colour."""
    st.caption(" · ".join(f"{colour}: {label}" for _, colour, label in services.legend(kind)))


def fmt_pct(value: float | None, digits: int = 0) -> str:
    """``"72 %"`` or an em dash when unknown."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}f} %"


def range_help(result: Mapping[str, Any]) -> str:
    """What the likely range means, and what photographs add to it (the band's ``photo``
    spread, see :mod:`vein_tracker.measure.band`)."""
    text = "Where the true improvement lies, about 9 times in 10."
    photo = (result.get("band_components") or {}).get("photo")
    if photo:
        text += (
            f" It allows {float(photo):.0f} points for what photographs do to the figure "
            "(texture, hair, light, two cameras' processing)"
        )
        given = (result.get("params") or {}).get("baseline_map") == "given"
        text += "." if given else "; a reviewed vein map narrows it."
    return text


def improvement_numbers(result: Mapping[str, Any], *, audience: str = "clinic") -> None:
    """The headline numbers of a comparison (``Comparison.to_dict()``).

    A low-confidence figure comes after its reasons and is labelled so; the target is
    read from the band (:func:`vein_tracker.outcome.target_status_of`: met, likely, or
    not yet); a figure measured on a reviewed vein map says who reviewed it.
    """
    pct = result.get("improvement_pct")
    band = result.get("improvement_band_pct") or [None, None]
    target = float(result.get("target_pct") or 75.0)
    grade = result.get("grade")
    low = low_reasons(result)
    if low:
        st.warning("**Low confidence.** " + " ".join(low))
    status = target_status_of(result)
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Improvement (low confidence)" if low else "Improvement",
        fmt_pct(pct),
        help="1 − follow-up ÷ baseline vein burden",
    )
    c2.metric("Likely range", f"{fmt_pct(band[0])} – {fmt_pct(band[1])}", help=range_help(result))
    c3.metric(
        "Target",
        fmt_pct(target),
        delta=TARGET_STATUS_TEXT[status] if status else "not measured",
        delta_color="normal" if status == "met" else "off",
    )
    note = reviewed_note(result)
    if note:
        st.caption(note[0].upper() + note[1:] + ".")
    if audience == "clinic":
        for text in notes_of(result):
            st.caption("Note: " + text)
    if grade:
        st.caption(f"Grade (quartile of clearance): {grade}")
    by_class = result.get("improvement_by_class_pct") or {}
    if by_class and audience == "clinic":
        st.caption(
            "By class: "
            + ", ".join(f"{name} {fmt_pct(v)}" for name, v in by_class.items())
            + " (feeders first: reticular changes can make spiders fade)"
        )
    counts = result.get("veins") or {}
    if counts and audience == "clinic":
        st.caption("Veins: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for warning in result.get("warnings") or []:
        st.warning(str(warning))


def progress_chart(prog: Progress, *, target_pct: float) -> None:
    """Improvement over sessions with its band, the projection and the target line.

    Altair (bundled with Streamlit) renders offline; no CDN component is used.
    """
    frame = prog.frame
    data = pd.DataFrame(
        {
            "session": frame["session"].astype(int),
            "date": frame["date"].dt.strftime("%Y-%m-%d"),
            "improvement": frame["improvement_pct"].astype(float),
            "low": frame["improvement_low_pct"].astype(float),
            "high": frame["improvement_high_pct"].astype(float),
        }
    ).dropna(subset=["improvement"])
    proj = prog.projection
    last = int(frame["session"].max())
    x_max = max(last, int(proj.planned_sessions))
    x = alt.X(
        "session:Q",
        title="Session",
        scale=alt.Scale(domain=[1, max(2, x_max)], nice=False),
        axis=alt.Axis(tickMinStep=1, format="d"),
    )
    y = alt.Y("improvement:Q", title="Improvement (%)", scale=alt.Scale(domain=[-20, 100]))
    layers: list[alt.Chart] = [
        alt.Chart(data)
        .mark_area(opacity=0.2, color=LINE_COLOUR)
        .encode(x=x, y=alt.Y("low:Q", scale=alt.Scale(domain=[-20, 100])), y2="high:Q"),
        alt.Chart(data)
        .mark_line(point=True, color=LINE_COLOUR)
        .encode(x=x, y=y, tooltip=["session", "date", "improvement", "low", "high"]),
        alt.Chart(pd.DataFrame({"target": [target_pct]}))
        .mark_rule(color=TARGET_COLOUR, strokeDash=[6, 4], size=2)
        .encode(y="target:Q"),
    ]
    if proj.projected_pct is not None and not data.empty and proj.planned_sessions > last:
        tail = pd.DataFrame(
            {
                "session": [int(data["session"].iloc[-1]), int(proj.planned_sessions)],
                "improvement": [float(data["improvement"].iloc[-1]), float(proj.projected_pct)],
            }
        )
        layers.append(
            alt.Chart(tail).mark_line(strokeDash=[2, 3], color="#7f7f7f").encode(x=x, y=y)
        )
    st.altair_chart(alt.layer(*layers).properties(height=240), width="stretch")
    st.caption(
        f"Blue: measured improvement with its likely range. Red dashed line: the {target_pct:g} % "
        "target. Grey dotted: projection."
    )


def progress_view(prog: Progress | None, *, target_pct: float, audience: str) -> None:
    """Chart, flags and projection of one area (``audience`` "clinic" or "client")."""
    if prog is not None:
        _photo_flags(prog, audience=audience)
    if prog is None or prog.frame["improvement_pct"].iloc[1:].dropna().empty:
        st.info("No follow-up has been measured for this area yet.")
        return
    progress_chart(prog, target_pct=target_pct)
    measured = prog.frame.dropna(subset=["improvement_pct"])
    last = measured.iloc[-1]
    latest = float(last["improvement_pct"])
    if audience == "client":
        status = target_status_of(
            {
                "improvement_pct": latest,
                "improvement_band_pct": [last["improvement_low_pct"], last["improvement_high_pct"]],
                "target_pct": target_pct,
            }
        )
        word = TARGET_STATUS_TEXT[status] if status else "not measured"
        uncertain = " The clinic is checking this figure." if last["low_confidence"] else ""
        st.write(
            f"Latest improvement: **{latest:.0f} %** ({word}, target {target_pct:g} %).{uncertain}"
        )
    for s, reasons in prog.confidence_flags:
        if audience == "client":
            continue
        st.warning(f"Session {s}: low confidence. " + " ".join(reasons))
    for s in prog.gap_flags:
        st.warning(
            f"Session {s} came more than 4 weeks after the previous one: "
            "treated veins can re-open when follow-up is late."
        )
    for s in prog.regression_flags:
        st.warning(f"Session {s}: less improvement than the session before (possible re-opening).")
    proj = prog.projection
    verdicts = {
        "reached": "The target is already reached.",
        "likely": "Reaching the target by the planned last session is likely.",
        "possible": "Reaching the target by the planned last session is possible.",
        "unlikely": (
            "The target is unlikely by the planned last session; an extra session may help."
        ),
        "unknown": "Not enough sessions for a projection yet.",
    }
    text = verdicts.get(proj.verdict, proj.verdict)
    if proj.projected_pct is not None and proj.verdict != "reached":
        text += (
            f" Projected at session {proj.planned_sessions}: {fmt_pct(proj.projected_pct)}"
            f" (range {fmt_pct(proj.projected_low_pct)} – {fmt_pct(proj.projected_high_pct)})."
        )
    st.caption(text)


def _photo_flags(prog: Progress, *, audience: str) -> None:
    """Sessions whose photo gives no figure (unmatched, not aligned, missing)."""
    words = {
        "unmatched": "does not match the baseline photo",
        "refused": "could not be aligned with the baseline photo",
        "missing": "is missing",
    }
    for session_index, status in prog.photo_flags:
        what = words.get(status, status)
        if audience == "client":
            st.info(
                f"Session {session_index}: the photo {what}, so it is not compared; the "
                "clinic will take it again."
            )
        else:
            st.warning(
                f"Session {session_index}: the photo that counts {what}: no figure. Retake "
                "it, or make another photo of that visit count (Visit page).",
                icon=":material/report:",
            )


def next_window_state(start: date, end: date, *, today: date | None = None) -> str:
    """``"upcoming"``, ``"due"`` (today is inside the window) or ``"overdue"`` (after it)."""
    day = today or date.today()
    if day > end:
        return "overdue"
    return "due" if day >= start else "upcoming"


def next_window(
    visits: Sequence[VisitInfo], *, audience: str = "clinic", today: date | None = None
) -> None:
    """The next-appointment window after the latest visit (1–4 weeks later), flagged when
    it has passed without a visit (``audience`` "clinic" or "client" words the advice)."""
    if not visits:
        return
    latest = max(visits, key=lambda v: (v.visit_date, v.session_number))
    start, end = latest.next_window_start, latest.next_window_end
    if start is None or end is None:
        start, end = default_next_window(latest.visit_date)
    day = today or date.today()
    state = next_window_state(start, end, today=day)
    text = (
        f"Next appointment: between **{start:%d %b %Y}** and **{end:%d %b %Y}** "
        f"(1–4 weeks after session {latest.session_number} on {latest.visit_date:%d %b %Y})."
    )
    if state == "overdue":
        late = (day - end).days
        advice = (
            "Please book your next session soon: treated veins can re-open when follow-up is late."
            if audience == "client"
            else "Contact the client to book: treated veins can re-open when follow-up is late."
        )
        st.warning(
            f"**Overdue** by {late} day{'s' if late != 1 else ''}. {text} {advice}",
            icon=":material/event_busy:",
        )
    elif state == "due":
        st.info(f"**Due now.** {text}", icon=":material/event:")
    else:
        st.info(text, icon=":material/event:")


def report_download(actor: Actor, client_id: int) -> None:
    """The PDF progress report button.

    The PDF is built when the button is clicked (deferred data), not on every run.
    """
    repo = session.repo()

    def build() -> bytes:
        return services.progress_report_pdf(repo, actor, client_id)

    st.download_button(
        "Download progress report (PDF)",
        data=build,
        file_name=f"progress-report-{client_id}.pdf",
        mime="application/pdf",
        key=f"pdf_{client_id}",
        icon=":material/picture_as_pdf:",
    )


def capture_report(report: Mapping[str, Any], *, name: str | None = None) -> None:
    """The capture feedback of one upload: measures and plain advice."""
    ok = bool(report.get("ok"))
    head = f"{md_escape(name)}: " if name else ""
    if ok:
        st.success(f"{head}{'p' if name else 'P'}hoto is usable.")
    else:
        st.warning(f"{head}{'c' if name else 'C'}onsider retaking this photo.")
    cols = st.columns(3)
    for col, key, label in (
        (cols[0], "sharpness", "Sharpness"),
        (cols[1], "exposure", "Exposure"),
        (cols[2], "leg_fraction", "Leg in frame"),
    ):
        v = report.get(key)
        col.metric(label, "—" if v is None else f"{float(v):.2f}")
    extra = []
    for key, label, unit in (
        ("scale", "scale vs baseline", "×"),
        ("rotation_deg", "rotation", "°"),
    ):
        v = report.get(key)
        if v is not None:
            extra.append(f"{label} {float(v):.2f}{unit}")
    if extra:
        st.caption("Framing: " + ", ".join(extra))
    for line in report.get("advice") or []:
        st.write(f"• {line}")


#: What a table shows for a value that is not recorded.
BLANK = "—"


def cell_text(value: Any) -> str:
    """One table cell as text: dates as ISO (times to the minute, UTC), yes/no for booleans,
    whole numbers without ".0", and :data:`BLANK` for a missing value (None, NaN, NaT)."""
    if value is None or value is pd.NaT:
        return BLANK
    if isinstance(value, float) and not math.isfinite(value):
        return BLANK
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else BLANK


def table_frame(
    rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The frame :func:`table` shows: a column with a missing value or with values of
    more than one type becomes text (:func:`cell_text`), so no cell reads "None" and no
    mixed column reaches Arrow (which refuses them); other columns keep their type."""
    df = pd.DataFrame(list(rows))
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    for name in df.columns:
        values = list(df[name])
        kinds = {type(v) for v in values if not _missing(v)}
        if len(kinds) > 1 or any(_missing(v) for v in values) or kinds <= {bool, np.bool_}:
            df[name] = pd.Series([cell_text(v) for v in values], index=df.index, dtype=object)
    return df


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and not math.isfinite(value)


def table(rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None) -> None:
    """A read-only table of records (text cells are never interpreted as HTML)."""
    if not rows:
        st.caption("Nothing to show.")
        return
    st.dataframe(table_frame(rows, columns=columns), hide_index=True, width="stretch")


CLIENT_KEY = "vt_client_id"
#: Set by a page to select a client on the next run (e.g. right after adding one).
PENDING_CLIENT_KEY = "vt_client_pending"
_SELECT_KEY = "vt_client_select"


def screening_status(client: ClientInfo) -> str:
    """Short screening status of a client for lists."""
    if client.screening is None:
        return "not screened"
    if client.refer_to_vascular:
        return "refer to vascular physician"
    if not client.contraindications:
        return "cleared"
    return "override recorded" if client.override_reason else "contraindicated"


def client_picker(
    actor: Actor, *, clients: Sequence[ClientInfo] | None = None
) -> ClientInfo | None:
    """Choose the client the staff pages work on; the choice is shared by those pages.

    The choice lives in session state and in the ``client`` query parameter, so a page
    URL can name a client. The repository still checks the user may read that record.
    """
    if clients is None:
        clients = session.repo().search_clients(actor)
    if not clients:
        st.info("No clients yet: add one on the Clients page.")
        return None
    ids = [c.id for c in clients]
    by_id = {c.id: c for c in clients}
    pending = st.session_state.pop(PENDING_CLIENT_KEY, None)
    if pending in by_id:
        st.session_state[CLIENT_KEY] = pending
    wanted = st.session_state.get(CLIENT_KEY)
    if wanted is None:
        raw = st.query_params.get("client")
        wanted = int(raw) if raw and raw.isdigit() else None
    if wanted not in by_id:
        wanted = ids[0]
    # Always re-bind: widget state is tied to the page, so a value left by another page
    # would be ignored. The user's own change reaches CLIENT_KEY first (on_change).
    st.session_state[_SELECT_KEY] = wanted

    def _changed() -> None:
        st.session_state[CLIENT_KEY] = st.session_state[_SELECT_KEY]

    chosen = st.selectbox(
        "Client",
        ids,
        format_func=lambda i: f"{by_id[i].name} (record {i})",
        key=_SELECT_KEY,
        on_change=_changed,
    )
    st.session_state[CLIENT_KEY] = chosen
    st.query_params["client"] = str(chosen)
    return by_id[chosen]


_FLASH = "vt_flash"


def flash(message: str) -> None:
    """Keep a success message for the next run (survives ``st.rerun``)."""
    st.session_state[_FLASH] = message


def show_flash() -> None:
    """Show, once, the message left by :func:`flash`."""
    message = st.session_state.pop(_FLASH, None)
    if isinstance(message, str):
        st.success(message)


def area_label(area: AreaInfo) -> str:
    """``"left calf, posterior"`` (plus the note)."""
    text = f"{area.side} {area.region}, {area.view}"
    return f"{text} ({area.note})" if area.note else text


def pair_compare(actor: Actor, review: services.ReviewData, *, key: str) -> None:
    """The reviewed pair in the browser-side comparison (wipe, side by side, zoom, pan)."""
    frames = services.pair_frames(
        session.repo(),
        actor,
        baseline_photo_id=review.baseline_photo_id,
        followup_photo_id=review.followup_photo_id,
        result=review.result,
    )
    if frames is None:
        before, after = review.baseline, review.followup
    else:
        before, after = frames
    compare_view.compare_view(
        [compare_view.Frame("before", before), compare_view.Frame("after (aligned)", after)],
        key=key,
    )


def sessions_compare(actor: Actor, area_id: int, *, key: str) -> bool:
    """Every analysed session of an area in the browser-side comparison, baseline against
    the latest first (the viewer picks other sessions in the browser). False when the area
    has no analysed follow-up yet (nothing is shown)."""
    frames = services.session_frames(session.repo(), actor, area_id)
    if len(frames) < 2:
        return False
    compare_view.compare_view(
        [compare_view.Frame(f.label, f.rgb) for f in frames], key=key, left=0, right=-1
    )
    return True


CONSENT_KIND_LABELS = {
    "treatment_photography": "Treatment photography (clinical record)",
    "marketing": "Marketing use of de-identified before/after photos",
}


def consent_kind_label(kind: str) -> str:
    """The words for a consent kind (never the stored name)."""
    return CONSENT_KIND_LABELS.get(kind, kind.replace("_", " "))


def photo_badge(photo: PhotoInfo) -> str:
    """A photo's place and state in a few words: baseline, counts, alternate, status."""
    from vein_tracker.storage.repo.workflow import STATUS_LABELS

    parts = []
    if photo.is_baseline:
        parts.append("baseline")
    parts.append("counts for the visit" if photo.is_primary else "alternate")
    if photo.status != "ok":
        parts.append(f"⚠ {STATUS_LABELS.get(photo.status, photo.status)}")
    return " · ".join(parts)
