"""Tests of vein_tracker.report: the chart, the PDF layout, and the repository-backed report."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vein_tracker import report as rp

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def poppler(tool: str) -> str:
    """Path of a poppler-utils tool; skip outside CI when missing, fail in CI."""
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} is required in CI: .ci/run must install poppler-utils")
        pytest.skip(f"{tool} not installed (apt-get install poppler-utils) - PDF check skipped")
    return path


def pdf_pages(pdf: bytes, tmp_path: Path) -> list[Image.Image]:
    """Render every page with pdftoppm (60 dpi) and load the PNGs."""
    src = tmp_path / "r.pdf"
    src.write_bytes(pdf)
    subprocess.run(
        [poppler("pdftoppm"), "-r", "60", "-png", str(src), str(tmp_path / "page")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pages = []
    for p in sorted(tmp_path.glob("page-*.png")):
        with Image.open(p) as im:
            pages.append(im.convert("RGB"))
    return pages


def pdf_images(pdf: bytes, tmp_path: Path) -> list[dict[str, str]]:
    """Rows of ``pdfimages -list``: page, type, width, height, enc."""
    src = tmp_path / "i.pdf"
    src.write_bytes(pdf)
    out = subprocess.run(
        [poppler("pdfimages"), "-list", str(src)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    head = out[0].split()
    return [dict(zip(head, line.split(), strict=False)) for line in out[2:] if line.strip()]


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    src = tmp_path / "t.pdf"
    src.write_bytes(pdf)
    return subprocess.run(
        [poppler("pdftotext"), "-layout", str(src), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _photo(seed: int, h: int = 300, w: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([210, 160, 140], np.float32) + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def sample_data(n_areas: int = 2) -> rp.ReportData:
    d0 = dt.date(2026, 1, 5)
    pts = (
        rp.ProgressPoint(dt.date(2026, 2, 2), 41.0, (33.0, 47.0)),
        rp.ProgressPoint(dt.date(2026, 3, 2), 78.0, (70.0, 85.0)),
    )
    areas = [
        rp.AreaSection(
            label=f"left calf, posterior #{i}",
            baseline_rgb=_photo(2 * i),
            latest_rgb=_photo(2 * i + 1),
            baseline_date=d0,
            latest_date=dt.date(2026, 3, 2),
            points=pts,
            improvement_pct=78.0,
            band_pct=(70.0, 85.0),
            grade="76-100",
            by_class_pct={"spider": 80.0, "reticular": None},
        )
        for i in range(n_areas)
    ]
    areas.append(rp.AreaSection(label="right thigh, lateral", note="No follow-up photo yet."))
    visits = tuple(
        rp.VisitLine(d0 + dt.timedelta(weeks=4 * i), i + 1, "left calf", "hypertonic saline")
        for i in range(3)
    )
    return rp.ReportData(
        clinic_name="Clinique Zoë — Lyon",
        client_name="Åsa Ñúñez-Żółć",
        generated_on=dt.date(2026, 3, 3),
        areas=tuple(areas),
        visits=visits,
        next_window=(dt.date(2026, 3, 9), dt.date(2026, 3, 30)),
    )


def test_chart_png_has_target_line() -> None:
    pts = (rp.ProgressPoint(dt.date(2026, 2, 1), 50.0, (40.0, 60.0)),)
    png = rp.improvement_chart_png(pts, target_pct=75.0, baseline_date=dt.date(2026, 1, 1))
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.size == (900, 390)
        assert "Software" not in im.info
        rgb = np.asarray(im.convert("RGB")).astype(int)
    # The dashed target line is drawn in #c0392b.
    red = (np.abs(rgb - np.array([0xC0, 0x39, 0x2B])).sum(axis=2) < 40).sum()
    assert red > 200
    png_no_target = rp.improvement_chart_png(pts, target_pct=0.0)
    with Image.open(io.BytesIO(png_no_target)) as im:
        rgb0 = np.asarray(im.convert("RGB")).astype(int)
    # At 0 % the line lies on the lower axis region: still drawn, elsewhere.
    assert not np.array_equal(rgb0, rgb)
    with pytest.raises(ValueError, match="target_pct"):
        rp.improvement_chart_png(pts, target_pct=120.0)


def test_pdf_opens_with_pages_images_and_unicode(tmp_path: Path) -> None:
    data = sample_data()
    pdf = rp.render_report_pdf(data)
    assert pdf[:5] == b"%PDF-"
    pages = pdf_pages(pdf, tmp_path)
    assert len(pages) >= 2
    assert all(p.size[0] > 400 for p in pages)
    images = pdf_images(pdf, tmp_path)
    # Per area with photos: baseline + latest (JPEG) and a chart (PNG -> flate "image").
    jpegs = [r for r in images if r["enc"] == "jpeg"]
    assert len(jpegs) == 4
    assert {(r["width"], r["height"]) for r in jpegs} == {("400", "300")}
    charts = [r for r in images if r["enc"] != "jpeg" and r["type"] == "image"]
    assert len(charts) == 2
    text = pdf_text(pdf, tmp_path)
    for needle in (
        "Clinique Zoë — Lyon",
        "Åsa Ñúñez-Żółć",
        "78 % (band 70–85 %)",
        "76-100",
        "target met",
        "Visit history",
        "09 Mar 2026",
        "30 Mar 2026",
        "compression stockings",
        "No follow-up photo yet.",
    ):
        assert needle in text, needle


def test_pdf_without_areas_or_visits(tmp_path: Path) -> None:
    data = rp.ReportData(
        clinic_name="Clinic", client_name="A. Client", generated_on=dt.date(2026, 1, 1)
    )
    pdf = rp.render_report_pdf(data)
    assert len(pdf_pages(pdf, tmp_path)) == 1
    assert pdf_images(pdf, tmp_path) == []
    text = pdf_text(pdf, tmp_path)
    assert "No treatment area has been photographed yet." in text
    assert "No visit recorded yet." in text


def test_pdf_photos_are_downscaled_and_data_untouched(tmp_path: Path) -> None:
    big = _photo(5, 1200, 1600)
    keep = big.copy()
    area = rp.AreaSection(
        label="left calf",
        baseline_rgb=big,
        latest_rgb=big,
        baseline_date=dt.date(2026, 1, 1),
        latest_date=dt.date(2026, 2, 1),
        points=(rp.ProgressPoint(dt.date(2026, 2, 1), 30.0),),
        improvement_pct=30.0,
        grade="26-50",
    )
    data = rp.ReportData("Clinic", "B", dt.date(2026, 2, 2), areas=(area,))
    pdf = rp.render_report_pdf(data)
    np.testing.assert_array_equal(big, keep)
    jpegs = [r for r in pdf_images(pdf, tmp_path) if r["enc"] == "jpeg"]
    assert {(r["width"], r["height"]) for r in jpegs} == {("900", "675")}
    assert "target not met yet" in pdf_text(pdf, tmp_path)


def test_report_data_to_dict_and_bad_input() -> None:
    d = sample_data(1).to_dict()
    assert d["client_name"] == "Åsa Ñúñez-Żółć"
    assert d["areas"][0]["meets_target"] is True
    assert d["areas"][0]["has_photos"] is True
    assert d["areas"][1]["meets_target"] is None
    assert d["next_window"] == ["2026-03-09", "2026-03-30"]
    with pytest.raises(ValueError, match="client_name"):
        rp.render_report_pdf(rp.ReportData("Clinic", "  ", dt.date(2026, 1, 1)))
    bad = rp.AreaSection(label="x", baseline_rgb=np.zeros((4, 4)), latest_rgb=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        rp.render_report_pdf(rp.ReportData("Clinic", "C", dt.date(2026, 1, 1), areas=(bad,)))
