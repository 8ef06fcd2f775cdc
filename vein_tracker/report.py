"""The client's PDF progress report.

Owns the layout of the report (fpdf2, with the DejaVu Sans TTF bundled in
``vein_tracker/fonts`` so any Unicode name prints) and its chart (matplotlib, Agg,
PNG). :func:`render_report_pdf` lays out plain data; :func:`build_report_pdf`
gathers that data through the storage ``Repository`` with the acting user, so
the repository decides who may read the client's records. This module never
touches SQL or photo files, and the report is for the client only: nothing here
feeds a marketing export.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from .confidence import low_reasons
from .io import as_rgb, encode_image
from .outcome import TARGET_STATUS_TEXT, TargetStatus, target_status
from .vein_map import reviewed_note

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .storage.info import Actor, VisitInfo
    from .storage.repository import Repository

#: After-care instructions printed on every report (DOMAIN.md).
AFTERCARE: tuple[str, ...] = (
    "Wear your compression stockings as advised.",
    "Walk for 30 minutes every day; avoid strenuous exercise for 3–5 days.",
    "No hot baths, saunas or sun on the treated legs.",
    "For pain, take paracetamol only (no aspirin or ibuprofen).",
    "Call the clinic if a treated area becomes hot, very painful or swollen.",
)

_PHOTO_MAX_SIDE_PX = 900
_FONT = "DejaVu"


@dataclass(frozen=True)
class ProgressPoint:
    """One follow-up of an area: date, improvement and its band (percent)."""

    date: dt.date
    improvement_pct: float
    band_pct: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "improvement_pct": self.improvement_pct,
            "band_pct": list(self.band_pct) if self.band_pct else None,
        }


@dataclass(frozen=True, eq=False)
class AreaSection:
    """One treatment area of the report.

    Attributes
    ----------
    label : str
        E.g. ``"left calf, posterior"``.
    baseline_rgb : ndarray, shape (H, W, 3), dtype uint8, or None
        Baseline photo.
    latest_rgb : ndarray, shape (H, W, 3), dtype uint8, or None
        Latest follow-up, aligned onto the baseline (same shape as ``baseline_rgb``).
    baseline_date, latest_date : date or None
    points : tuple of ProgressPoint
        Follow-ups in date order.
    improvement_pct : float or None
        Latest improvement, percent, with ``band_pct`` (low, high) and quartile ``grade``.
    by_class_pct : dict of str to float or None
        Latest improvement per vein class (``"spider"``, ``"reticular"``).
    target_pct : float
        The clinic's target (75 % by default).
    note : str or None
        Shown under the area (e.g. why no aligned photo is available).
    low_confidence : tuple of str
        Why the latest figure is low-confidence (printed before it); empty when not.
    reviewed : str or None
        "vein map reviewed by ..." when the figure was measured on a reviewed map.
    """

    label: str
    baseline_rgb: np.ndarray | None = None
    latest_rgb: np.ndarray | None = None
    baseline_date: dt.date | None = None
    latest_date: dt.date | None = None
    points: tuple[ProgressPoint, ...] = ()
    improvement_pct: float | None = None
    band_pct: tuple[float, float] | None = None
    grade: str | None = None
    by_class_pct: dict[str, float | None] = field(default_factory=dict)
    target_pct: float = 75.0
    note: str | None = None
    low_confidence: tuple[str, ...] = ()
    reviewed: str | None = None

    @property
    def target_status(self) -> TargetStatus | None:
        """The target read from the band (:func:`vein_tracker.outcome.target_status`):
        "met", "likely" or "not yet"; None without a figure."""
        if self.improvement_pct is None or not math.isfinite(self.improvement_pct):
            return None
        return target_status(self.improvement_pct, self.band_pct, self.target_pct)

    @property
    def meets_target(self) -> bool | None:
        if self.improvement_pct is None:
            return None
        return self.target_status == "met"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "has_photos": self.baseline_rgb is not None and self.latest_rgb is not None,
            "baseline_date": self.baseline_date.isoformat() if self.baseline_date else None,
            "latest_date": self.latest_date.isoformat() if self.latest_date else None,
            "points": [p.to_dict() for p in self.points],
            "improvement_pct": self.improvement_pct,
            "band_pct": list(self.band_pct) if self.band_pct else None,
            "grade": self.grade,
            "by_class_pct": dict(self.by_class_pct),
            "target_pct": self.target_pct,
            "meets_target": self.meets_target,
            "target_status": self.target_status,
            "low_confidence": list(self.low_confidence),
            "reviewed": self.reviewed,
            "note": self.note,
        }


@dataclass(frozen=True)
class VisitLine:
    """One line of the visit history."""

    date: dt.date
    session_number: int
    areas: str
    treatment: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "session_number": self.session_number,
            "areas": self.areas,
            "treatment": self.treatment,
        }


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything the report shows, as plain values."""

    clinic_name: str
    client_name: str
    generated_on: dt.date
    areas: tuple[AreaSection, ...] = ()
    visits: tuple[VisitLine, ...] = ()
    next_window: tuple[dt.date, dt.date] | None = None
    aftercare: tuple[str, ...] = AFTERCARE
    target_pct: float = 75.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "clinic_name": self.clinic_name,
            "client_name": self.client_name,
            "generated_on": self.generated_on.isoformat(),
            "areas": [a.to_dict() for a in self.areas],
            "visits": [v.to_dict() for v in self.visits],
            "next_window": [d.isoformat() for d in self.next_window] if self.next_window else None,
            "aftercare": list(self.aftercare),
            "target_pct": self.target_pct,
        }


# --------------------------------------------------------------------------- chart


def improvement_chart_png(
    points: Sequence[ProgressPoint],
    *,
    target_pct: float = 75.0,
    baseline_date: dt.date | None = None,
    title: str = "",
    size_in: tuple[float, float] = (6.0, 2.6),
    dpi: int = 150,
) -> bytes:
    """PNG of the improvement over time with its bands and the target line.

    Parameters
    ----------
    points : sequence of ProgressPoint
        Follow-ups; may be empty (the chart then shows only the target line).
    target_pct : float
        Horizontal dashed line, percent (0–100).
    baseline_date : date, optional
        Plotted as 0 % on the first day.
    size_in : (width, height)
        Figure size in inches.
    dpi : int

    Returns
    -------
    bytes
        A PNG file (no text metadata).
    """
    if not 0.0 <= target_pct <= 100.0:
        raise ValueError(f"target_pct must be in [0, 100], got {target_pct}")
    # The object API with an Agg canvas: no pyplot global state, safe in threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    day_list = [p.date for p in points]
    values = [p.improvement_pct for p in points]
    if baseline_date is not None:
        day_list = [baseline_date, *day_list]
        values = [0.0, *values]
    dates = np.array(day_list, dtype="datetime64[D]")
    if points:
        lo = [p.band_pct[0] if p.band_pct else p.improvement_pct for p in points]
        hi = [p.band_pct[1] if p.band_pct else p.improvement_pct for p in points]
        err = np.array(
            [
                [max(0.0, v - low) for v, low in zip(values[-len(points) :], lo, strict=True)],
                [max(0.0, high - v) for v, high in zip(values[-len(points) :], hi, strict=True)],
            ]
        )
        ax.plot(dates, values, "-", color="#1f5fa8", linewidth=1.5)
        ax.errorbar(
            dates[-len(points) :],
            values[-len(points) :],
            yerr=err,
            fmt="o",
            color="#1f5fa8",
            ecolor="#7fa6d6",
            capsize=3,
            label="improvement (band)",
        )
    elif baseline_date is not None:
        ax.plot(dates, values, "o", color="#1f5fa8")
    ax.axhline(
        target_pct, color="#c0392b", linestyle="--", linewidth=1.2, label=f"{target_pct:g} % target"
    )
    low_y = min([0.0, *values, *([p.band_pct[0] for p in points if p.band_pct])])
    ax.set_ylim(min(-5.0, low_y - 5.0), 105.0)
    ax.set_ylabel("improvement, %")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------- PDF


def _font_path(name: str) -> str:
    ref = resources.files("vein_tracker") / "fonts" / name
    return str(ref)


def _photo_jpeg(rgb: np.ndarray) -> bytes:
    arr = as_rgb(rgb)
    h, w = arr.shape[:2]
    scale = min(1.0, _PHOTO_MAX_SIDE_PX / max(h, w))
    if scale < 1.0:
        from PIL import Image

        arr = np.asarray(
            Image.fromarray(arr).resize(
                (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS
            )
        )
    return encode_image(arr, format="JPEG", quality=88)


def _fmt_pct(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.0f} %"


def _fmt_date(d: dt.date | None) -> str:
    return d.strftime("%d %b %Y") if d else "—"


def render_report_pdf(data: ReportData) -> bytes:
    """Lay out the progress report as PDF bytes.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    bytes
        A PDF (A4 portrait): title page section, one block per area with the
        baseline and latest photos side by side, the chart and the numbers, then
        the visit history, the next-appointment window and the after-care.
    """
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    if not data.client_name.strip():
        raise ValueError("client_name must not be empty")
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font(_FONT, "", _font_path("DejaVuSans.ttf"))
    pdf.add_font(_FONT, "B", _font_path("DejaVuSans-Bold.ttf"))
    pdf.set_title(f"Progress report — {data.clinic_name}")
    pdf.set_creator("vein_tracker")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    nl: dict[str, Any] = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT, "align": "L"}

    _heading(pdf, data, width, nl)
    if not data.areas:
        pdf.ln(3)
        pdf.set_font(_FONT, "", 11)
        pdf.multi_cell(width, 6, "No treatment area has been photographed yet.", **nl)
    for area in data.areas:
        _area_section(pdf, area, width, nl)

    # The closing sections (visit history, next appointment, after-care) stay together:
    # started on a new page when they would not fit, so the report never ends on a page
    # holding the last few lines of the after-care. A history longer than a page flows
    # on, and then the next appointment and the after-care stay together.
    pdf.ln(4)
    with pdf.offset_rendering() as trial:
        _closing(trial, data, width=width, history=True, care=True)
    if trial.page_break_triggered:
        with pdf.offset_rendering() as fresh:
            fresh.set_y(fresh.t_margin)  # as on a page of its own
            _closing(fresh, data, width=width, history=True, care=True)
        if not fresh.page_break_triggered:
            pdf.add_page()
            _closing(pdf, data, width=width, history=True, care=True)
        else:
            _closing(pdf, data, width=width, history=True, care=False)
            with pdf.offset_rendering() as tail:
                _closing(tail, data, width=width, history=False, care=True)
            if tail.page_break_triggered:
                pdf.add_page()
            _closing(pdf, data, width=width, history=False, care=True)
    else:
        _closing(pdf, data, width=width, history=True, care=True)
    return bytes(pdf.output())


def _heading(pdf: Any, data: ReportData, width: float, nl: dict[str, Any]) -> None:
    """The clinic, the client, the date, and what the figures mean."""
    pdf.set_font(_FONT, "B", 16)
    pdf.multi_cell(width, 8, data.clinic_name, **nl)
    pdf.set_font(_FONT, "", 12)
    pdf.multi_cell(width, 7, f"Progress report for {data.client_name}", **nl)
    pdf.set_font(_FONT, "", 9)
    pdf.multi_cell(
        width,
        5,
        f"Prepared on {_fmt_date(data.generated_on)}. Confidential: for the client only.",
        **nl,
    )
    pdf.ln(2)
    pdf.set_font(_FONT, "", 9)
    pdf.multi_cell(
        width,
        4.5,
        f"Improvement compares each follow-up photo with the first (baseline) photo of the "
        f"same area, after aligning them: 100 % means every vein seen at baseline has "
        f"cleared. The clinic aims for at least {data.target_pct:g} %. The band shows the "
        "measurement uncertainty; the grade is the clinical quartile.",
        **nl,
    )


def _area_section(pdf: Any, area: AreaSection, width: float, nl: dict[str, Any]) -> None:
    """One area: its photos side by side, a note, the chart, the numbers, the follow-ups."""
    pdf.ln(4)
    if pdf.get_y() > pdf.h - 120:
        pdf.add_page()
    pdf.set_font(_FONT, "B", 13)
    pdf.multi_cell(width, 7, area.label, **nl)
    _area_photos(pdf, area, width)
    if area.note:
        pdf.set_font(_FONT, "", 9)
        pdf.multi_cell(width, 5, area.note, **nl)

    if area.points:
        chart_h = width * 2.6 / 6.0
        if pdf.get_y() + chart_h + 25 > pdf.h - pdf.b_margin:
            pdf.add_page()
        chart = improvement_chart_png(
            area.points, target_pct=area.target_pct, baseline_date=area.baseline_date
        )
        pdf.image(io.BytesIO(chart), x=pdf.l_margin, y=pdf.get_y(), w=width)
        pdf.set_y(pdf.get_y() + chart_h + 1)

    _area_numbers(pdf, area, width, nl)
    if area.points:
        pdf.set_font(_FONT, "", 9)
        rows = "; ".join(f"{_fmt_date(p.date)}: {_fmt_pct(p.improvement_pct)}" for p in area.points)
        pdf.multi_cell(width, 5, f"Follow-ups: {rows}.", **nl)


def _area_photos(pdf: Any, area: AreaSection, width: float) -> None:
    """The baseline and the latest (aligned) photo side by side, when both are there."""
    if area.baseline_rgb is None or area.latest_rgb is None:
        return
    half = (width - 4) / 2
    b = as_rgb(area.baseline_rgb)
    h_mm = half * b.shape[0] / b.shape[1]
    if pdf.get_y() + h_mm + 8 > pdf.h - pdf.b_margin:
        pdf.add_page()
    y = pdf.get_y()
    pdf.set_font(_FONT, "", 9)
    pdf.set_xy(pdf.l_margin, y)
    pdf.cell(half, 5, f"Before — {_fmt_date(area.baseline_date)}")
    pdf.set_xy(pdf.l_margin + half + 4, y)
    pdf.cell(half, 5, f"Latest — {_fmt_date(area.latest_date)} (aligned)")
    y += 5
    pdf.image(io.BytesIO(_photo_jpeg(area.baseline_rgb)), x=pdf.l_margin, y=y, w=half)
    pdf.image(io.BytesIO(_photo_jpeg(area.latest_rgb)), x=pdf.l_margin + half + 4, y=y, w=half)
    pdf.set_xy(pdf.l_margin, y + h_mm + 2)


def _area_numbers(pdf: Any, area: AreaSection, width: float, nl: dict[str, Any]) -> None:
    """The latest figure: low-confidence reasons first, the band, grade and target, who
    reviewed the vein map, and the figure per vein class."""
    pdf.set_font(_FONT, "", 10)
    if area.improvement_pct is None:
        pdf.multi_cell(width, 5.5, "Improvement: not measured yet.", **nl)
    else:
        band = f" (band {area.band_pct[0]:.0f}–{area.band_pct[1]:.0f} %)" if area.band_pct else ""
        verdict = TARGET_STATUS_TEXT[area.target_status or "not yet"]
        if area.low_confidence:
            pdf.multi_cell(width, 5.5, "Low confidence: " + " ".join(area.low_confidence), **nl)
        pdf.multi_cell(
            width,
            5.5,
            f"Improvement: {_fmt_pct(area.improvement_pct)}{band}; grade "
            f"{area.grade or '—'} %; {verdict} ({area.target_pct:g} %).",
            **nl,
        )
        if area.reviewed:
            pdf.multi_cell(width, 5.5, area.reviewed[0].upper() + area.reviewed[1:] + ".", **nl)
        classes = ", ".join(f"{name} veins {_fmt_pct(v)}" for name, v in area.by_class_pct.items())
        if classes:
            pdf.multi_cell(width, 5.5, f"By vein class: {classes}.", **nl)


def _closing(pdf: Any, data: ReportData, *, width: float, history: bool, care: bool) -> None:
    """The report's closing sections: the visit history and/or the next appointment with
    the after-care (``pdf`` may be a trial rendering of fpdf2's ``offset_rendering``)."""
    from fpdf.enums import XPos, YPos

    nl: dict[str, Any] = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT, "align": "L"}
    if history:
        pdf.set_font(_FONT, "B", 13)
        pdf.multi_cell(width, 7, "Visit history", **nl)
        pdf.set_font(_FONT, "", 9)
        if data.visits:
            with pdf.table(
                col_widths=(28, 18, 70, width - 116),
                width=width,
                line_height=5,
                text_align="LEFT",
                borders_layout="HORIZONTAL_LINES",
            ) as table:
                head = table.row()
                for text in ("Date", "Session", "Areas", "Treatment"):
                    head.cell(text)
                for v in data.visits:
                    row = table.row()
                    for text in (_fmt_date(v.date), str(v.session_number), v.areas, v.treatment):
                        row.cell(text)
        else:
            pdf.multi_cell(width, 5, "No visit recorded yet.", **nl)
    if not care:
        return
    if history:
        pdf.ln(3)
    pdf.set_font(_FONT, "B", 13)
    pdf.multi_cell(width, 7, "Next appointment", **nl)
    pdf.set_font(_FONT, "", 10)
    if data.next_window is not None:
        start, end = data.next_window
        pdf.multi_cell(
            width,
            5.5,
            f"Please book your next session between {_fmt_date(start)} and {_fmt_date(end)}. "
            "Gaps of more than 4 weeks let partly closed veins re-open.",
            **nl,
        )
    else:
        pdf.multi_cell(width, 5.5, "Your course is complete, or no next session is planned.", **nl)

    pdf.ln(3)
    pdf.set_font(_FONT, "B", 13)
    pdf.multi_cell(width, 7, "After-care", **nl)
    pdf.set_font(_FONT, "", 10)
    for line in data.aftercare:
        pdf.multi_cell(width, 5.5, f"•  {line}", **nl)


# --------------------------------------------------------------------------- repository


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    from PIL import Image

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return rgb, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS)), s


def align_for_display(
    baseline: np.ndarray,
    followup: np.ndarray,
    homography: np.ndarray,
    *,
    max_side_px: int = _PHOTO_MAX_SIDE_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Both photos downscaled, the follow-up warped onto the baseline with ``homography``.

    Parameters
    ----------
    baseline, followup : ndarray, shape (H, W, 3), dtype uint8
    homography : ndarray, shape (3, 3)
        Maps full-resolution follow-up (x, y) px to baseline (x, y) px.
    max_side_px : int
        Longer side of the returned images.

    Returns
    -------
    (baseline_small, followup_aligned) : ndarrays of the same shape, dtype uint8
        Pixels outside the follow-up are white.
    """
    import cv2

    b = as_rgb(baseline)
    f = as_rgb(followup)
    hmat = np.asarray(homography, dtype=np.float64)
    if hmat.shape != (3, 3) or not np.all(np.isfinite(hmat)):
        raise ValueError(f"homography must be a finite 3x3 matrix, got shape {hmat.shape}")
    b_small, sb = _downscale(b, max_side_px)
    # Warp from the full-resolution follow-up straight into the small baseline frame.
    h_small = np.diag([sb, sb, 1.0]) @ hmat
    warped = cv2.warpPerspective(
        f,
        h_small,
        (b_small.shape[1], b_small.shape[0]),
        flags=cv2.INTER_AREA if sb < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )
    return np.ascontiguousarray(b_small), np.ascontiguousarray(warped)


def _treatment_text(visit: VisitInfo) -> str:
    from .storage.info import SCLEROSANT_LABELS

    if visit.sclerosant is None:
        return "photos only"
    parts = [SCLEROSANT_LABELS.get(visit.sclerosant, visit.sclerosant)]
    if visit.concentration_pct is not None:
        parts.append(f"{visit.concentration_pct:g} %")
    if visit.volume_ml is not None:
        parts.append(f"{visit.volume_ml:g} ml")
    return ", ".join(parts)


def _band(result: dict[str, Any]) -> tuple[float, float] | None:
    band = result.get("improvement_band_pct")
    if not band or len(band) != 2 or band[0] is None or band[1] is None:
        return None
    return float(band[0]), float(band[1])


def collect_report_data(
    repo: Repository, actor: Actor, client_id: int, *, today: dt.date | None = None
) -> ReportData:
    """Gather a client's report from the repository (staff, or that client).

    Per area: the baseline photo, the latest analysed follow-up aligned onto it with
    the analysis' homography, every analysed follow-up as a chart point, and the
    latest numbers. Raises ``AccessDenied`` for anyone else (marketing included).
    """
    from . import policy
    from .errors import StorageError

    # Who may at all is the policy's; which client's records, the repository's.
    policy.require(actor, policy.Action.PROGRESS_REPORT)
    client = repo.get_client(actor, client_id)
    areas = repo.list_areas(actor, client_id)
    visits = sorted(repo.list_visits(actor, client_id), key=lambda v: (v.visit_date, v.id))
    labels = {a.id: a.label for a in areas}
    target = float(repo.settings.target_pct)

    sections: list[AreaSection] = []
    for area in areas:
        base = repo.baseline_photo(actor, area.id)
        if base is None:
            sections.append(AreaSection(area.label, target_pct=target, note="No photo yet."))
            continue
        photos = {p.id: p for p in repo.list_photos(actor, area_id=area.id)}
        analyses = [
            a
            for a in repo.list_analyses(actor, area.id)
            if a.baseline_photo_id == base.id and a.followup_photo_id in photos
        ]
        analyses.sort(key=lambda a: (photos[a.followup_photo_id].visit_date, a.id))
        points = tuple(
            ProgressPoint(
                photos[a.followup_photo_id].visit_date, a.improvement_pct, _band(a.result)
            )
            for a in analyses
            if a.improvement_pct is not None and math.isfinite(a.improvement_pct)
        )
        scored = [a for a in analyses if a.improvement_pct is not None]
        if not scored:
            sections.append(
                AreaSection(
                    area.label,
                    baseline_date=base.visit_date,
                    target_pct=target,
                    note="No analysed follow-up photo yet.",
                )
            )
            continue
        latest = scored[-1]
        result = latest.result
        note = None
        b_rgb: np.ndarray | None = None
        f_rgb: np.ndarray | None = None
        hom = (result.get("registration") or {}).get("homography")
        try:
            b_photo = repo.load_photo(actor, base.id)
            f_photo = repo.load_photo(actor, latest.followup_photo_id)
            if hom is None:
                from .registration import register

                reg = register(b_photo, f_photo)
                hom = reg.homography if reg.ok else None
                if hom is None:
                    note = f"The latest photo could not be aligned: {reg.reason}"
            if hom is not None:
                b_rgb, f_rgb = align_for_display(b_photo.rgb, f_photo.rgb, np.asarray(hom))
        except StorageError as exc:
            note = f"Photos unavailable: {exc}"
        by_class = {
            str(k): (None if v is None else float(v))
            for k, v in (result.get("improvement_by_class_pct") or {}).items()
        }
        grade = result.get("grade")
        if grade is None and latest.improvement_pct is not None:
            from .outcome import grade_for

            grade = grade_for(latest.improvement_pct)
        sections.append(
            AreaSection(
                label=area.label,
                baseline_rgb=b_rgb,
                latest_rgb=f_rgb,
                baseline_date=base.visit_date,
                latest_date=photos[latest.followup_photo_id].visit_date,
                points=points,
                improvement_pct=latest.improvement_pct,
                band_pct=_band(result),
                grade=None if grade is None else str(grade),
                by_class_pct=by_class,
                target_pct=target,
                note=note,
                low_confidence=low_reasons(result),
                reviewed=reviewed_note(result),
            )
        )

    lines = tuple(
        VisitLine(
            date=v.visit_date,
            session_number=v.session_number,
            areas="; ".join(labels.get(i, "?") for i in v.area_ids) or "—",
            treatment=_treatment_text(v),
        )
        for v in visits
    )
    window = None
    if visits and visits[-1].next_window_start and visits[-1].next_window_end:
        window = (visits[-1].next_window_start, visits[-1].next_window_end)
    return ReportData(
        clinic_name=repo.settings.clinic_name,
        client_name=client.name,
        generated_on=today or dt.date.today(),
        areas=tuple(sections),
        visits=lines,
        next_window=window,
        target_pct=target,
    )


def build_report_pdf(repo: Repository, actor: Actor, client_id: int) -> bytes:
    """The client's progress report as PDF bytes; audited as ``report``.

    The page hook of the UI (aesthetician's progress page, client portal) and of
    ``vein-tracker report``. Staff may build any client's report; a client account
    only its own; marketing accounts never (``AccessDenied``).
    """
    data = collect_report_data(repo, actor, client_id)
    pdf = render_report_pdf(data)
    repo.log_event(
        actor,
        "report",
        client_id=client_id,
        target_type="client",
        target_id=client_id,
        detail={"areas": len(data.areas), "size_bytes": len(pdf)},
    )
    return pdf


def progress_report_pdf(repo: Repository, actor: Actor, client_id: int) -> bytes:
    """Same as :func:`build_report_pdf` (the name ``vein_tracker.services`` looks up)."""
    return build_report_pdf(repo, actor, client_id)
