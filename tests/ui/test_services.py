"""services: analysis parameters, the analysis cache and its access check, progress, uploads."""

from __future__ import annotations

import numpy as np
import pytest
from vt_ui_seed import PASSWORD, Seeded, open_test_repo, photo_jpeg

from vein_tracker import ALGORITHM_VERSION, services
from vein_tracker.cli import serve
from vein_tracker.errors import AccessDenied, PhotoError
from vein_tracker.storage import Repository


@pytest.fixture
def repo(seeded_clinic: Seeded) -> Repository:
    r = open_test_repo(seeded_clinic.data_dir)
    yield r  # type: ignore[misc]
    r.close()


# ----------------------------------------------------------------------------- params


def test_params_roi_mask_include_and_erase() -> None:
    p = services.AnalysisParams(
        include_rect=(0.25, 0.5, 0.75, 1.0), exclude_rect=(0.5, 0.5, 1.0, 1.0)
    )
    roi = p.roi_mask((100, 200))
    assert roi is not None
    assert roi.dtype == bool
    expected = np.zeros((100, 200), bool)
    expected[50:100, 50:100] = True
    assert np.array_equal(roi, expected)
    assert services.AnalysisParams().roi_mask((10, 10)) is None
    erase_only = services.AnalysisParams(exclude_rect=(0.0, 0.0, 0.5, 1.0)).roi_mask((4, 4))
    assert erase_only is not None
    assert erase_only.sum() == 8


def test_params_key_follows_the_values() -> None:
    a = services.AnalysisParams(sensitivity=0.5)
    assert a.key() == services.AnalysisParams(sensitivity=0.5).key()
    assert a.key() != services.AnalysisParams(sensitivity=0.6).key()
    assert a.to_dict() == {
        "sensitivity": 0.5,
        "include_rect": None,
        "exclude_rect": None,
        "target_pct": 75.0,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sensitivity": 1.5}, "sensitivity"),
        ({"target_pct": 0.0}, "target_pct"),
        ({"include_rect": (0.5, 0.0, 0.4, 1.0)}, "include_rect"),
        ({"exclude_rect": (0.0, 0.0, 1.0, 1.2)}, "exclude_rect"),
        ({"include_rect": (0.0, 0.0, 1.0)}, "include_rect"),
    ],
)
def test_params_reject_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        services.AnalysisParams(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- analysis


def test_saved_analysis_reopens_from_the_record(seeded_clinic: Seeded, repo: Repository) -> None:
    services.clear_analysis_cache()
    anna = repo.authenticate("anna", PASSWORD)
    review = services.analyze_pair(
        repo,
        anna,
        baseline_photo_id=seeded_clinic.baseline_a,
        followup_photo_id=seeded_clinic.followup_a,
        params=services.AnalysisParams(),
    )
    stored = repo.get_analysis(
        anna,
        seeded_clinic.baseline_a,
        seeded_clinic.followup_a,
        params=services.AnalysisParams().to_dict(),
    )
    assert stored is not None, repo.list_analyses(anna, seeded_clinic.area_a)
    assert review.saved
    assert review.cached
    assert review.result["improvement_pct"] == seeded_clinic.improvement_a
    assert review.result["algorithm_version"] == ALGORITHM_VERSION
    h, w = review.baseline.shape[:2]
    assert max(h, w) <= services.PREVIEW_MAX_SIDE
    for arr in (review.followup, review.baseline_labels, review.change_map, review.region):
        assert arr.shape[:2] == (h, w)
    assert review.region.dtype == bool
    assert set(np.unique(review.baseline_labels)) <= {0, 1, 2}
    summary = review.to_dict()
    assert summary["saved"] is True
    assert summary["params"] == services.AnalysisParams().to_dict()


def test_cache_never_skips_the_access_check(seeded_clinic: Seeded, repo: Repository) -> None:
    anna = repo.authenticate("anna", PASSWORD)
    services.analyze_pair(
        repo,
        anna,
        baseline_photo_id=seeded_clinic.baseline_a,
        followup_photo_id=seeded_clinic.followup_a,
        params=services.AnalysisParams(),
    )
    dora = repo.authenticate("dora", PASSWORD)
    with pytest.raises(AccessDenied):
        services.analyze_pair(
            repo,
            dora,
            baseline_photo_id=seeded_clinic.baseline_a,
            followup_photo_id=seeded_clinic.followup_a,
            params=services.AnalysisParams(),
        )
    with pytest.raises(AccessDenied):
        services.latest_pair_preview(repo, dora, seeded_clinic.area_a)
    with pytest.raises(AccessDenied):
        services.area_progress(repo, dora, seeded_clinic.area_a)


def test_progress_and_pair_preview_of_own_area(seeded_clinic: Seeded, repo: Repository) -> None:
    cara = repo.authenticate("cara", PASSWORD)
    prog = services.area_progress(repo, cara, seeded_clinic.area_a, target_pct=75.0)
    assert prog is not None
    assert prog.frame["session"].tolist()[:2] == [1, 2]
    assert prog.frame["improvement_pct"].iloc[0] == 0.0
    assert prog.frame["improvement_pct"].iloc[1] == pytest.approx(seeded_clinic.improvement_a)
    pair = services.latest_pair_preview(repo, cara, seeded_clinic.area_a)
    assert pair is not None
    assert pair.baseline.shape == pair.followup.shape
    assert pair.baseline_date < pair.followup_date
    assert pair.to_dict()["improvement_pct"] == pytest.approx(seeded_clinic.improvement_a)
    # Client B has no saved analysis: a chart row without a number, and no pair preview.
    dora = repo.authenticate("dora", PASSWORD)
    assert services.latest_pair_preview(repo, dora, seeded_clinic.area_b) is None


def test_scaled_homography_maps_preview_points() -> None:
    h = np.array([[1.0, 0.0, 40.0], [0.0, 1.0, -20.0], [0.0, 0.0, 1.0]])
    hp = services._scaled_homography(h, 0.5, 0.25)
    pt = hp @ np.array([10.0, 10.0, 1.0])  # follow-up preview px (20, 20) at full res
    assert pt[:2] / pt[2] == pytest.approx([(20 + 40) * 0.25, (20 - 20) * 0.25])


# ----------------------------------------------------------------------------- uploads


def test_store_upload_reports_capture_against_baseline(
    seeded_clinic: Seeded, repo: Repository
) -> None:
    anna = repo.authenticate("anna", PASSWORD)
    stored = services.store_upload(
        repo,
        anna,
        visit_id=seeded_clinic.visit_a2,
        area_id=seeded_clinic.area_a,
        data=photo_jpeg(11, followup=True),
        filename="../../etc/passwd.jpg",
    )
    assert not stored.photo.is_baseline
    assert stored.photo.original_filename is None or "/" not in stored.photo.original_filename
    assert set(stored.report) >= {"sharpness", "exposure", "leg_fraction", "ok", "advice"}
    assert stored.report["matches_baseline"] is not None
    assert stored.to_dict()["photo"]["id"] == stored.photo.id


@pytest.mark.parametrize(
    "data", [b"", b"GIF89a" + bytes(100), b"%PDF-1.4\n", b"\xff\xd8\xff\xe0" + bytes(50)]
)
def test_store_upload_refuses_bad_files_and_stores_nothing(
    seeded_clinic: Seeded, repo: Repository, data: bytes
) -> None:
    anna = repo.authenticate("anna", PASSWORD)
    before = len(repo.list_photos(anna, area_id=seeded_clinic.area_a))
    with pytest.raises(PhotoError):
        services.store_upload(
            repo,
            anna,
            visit_id=seeded_clinic.visit_a2,
            area_id=seeded_clinic.area_a,
            data=data,
            filename="x.jpg",
        )
    assert len(repo.list_photos(anna, area_id=seeded_clinic.area_a)) == before


def test_client_cannot_upload(seeded_clinic: Seeded, repo: Repository) -> None:
    cara = repo.authenticate("cara", PASSWORD)
    with pytest.raises(AccessDenied):
        services.store_upload(
            repo,
            cara,
            visit_id=seeded_clinic.visit_a2,
            area_id=seeded_clinic.area_a,
            data=photo_jpeg(12, followup=True),
            filename="mine.jpg",
        )


# ----------------------------------------------------------------------------- serve


def test_serve_command_line() -> None:
    app = serve.find_app()
    assert app.name == "app.py"
    cmd = serve.streamlit_command(app, port=8765, address="127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"]
    assert "--server.port=8765" in cmd
    assert "--browser.gatherUsageStats=false" in cmd
    assert "--server.headless=true" in cmd
    with pytest.raises(ValueError, match="port"):
        serve.streamlit_command(app, port=0, address="127.0.0.1")


def test_same_photos_under_another_record_reuse_the_cache_with_their_ids(
    seeded_clinic: Seeded, repo: Repository
) -> None:
    """A cached review answers with the ids asked for, and saving it keeps the masks."""
    anna = repo.authenticate("anna", PASSWORD)
    first = services.analyze_pair(
        repo,
        anna,
        baseline_photo_id=seeded_clinic.baseline_a,
        followup_photo_id=seeded_clinic.followup_a,
        params=services.AnalysisParams(),
    )
    assert first.baseline_photo_id == seeded_clinic.baseline_a
    hit = services.analyze_pair(
        repo,
        anna,
        baseline_photo_id=seeded_clinic.baseline_a,
        followup_photo_id=seeded_clinic.followup_a,
        params=services.AnalysisParams(),
    )
    assert hit.cached
    saved = services.save_analysis(repo, anna, hit)
    assert set(saved.masks) == {"change_map", "baseline_labels", "followup_labels", "region"}


def test_override_reason_is_required_with_an_override() -> None:
    from vein_tracker.storage import Screening

    positive = Screening(blood_thinners=True)
    assert services.override_reason(positive, override=False, reason="ignored") is None
    assert services.override_reason(positive, override=True, reason="  GP letter ") == "GP letter"
    for empty in (None, "", "   "):
        with pytest.raises(ValueError, match="override_reason"):
            services.override_reason(positive, override=True, reason=empty)
    with pytest.raises(ValueError, match="no positive screening answer"):
        services.override_reason(Screening(), override=True, reason="why not")
