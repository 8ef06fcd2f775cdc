"""The image renders behind the review page: exact pixels on small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from vein_tracker import services


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    before = np.zeros((60, 80, 3), np.uint8)
    before[..., 0] = 200
    after = np.zeros((60, 80, 3), np.uint8)
    after[..., 2] = 100
    return before, after


def test_preview_downscales_longest_side_and_keeps_small_images() -> None:
    img = np.zeros((300, 1200, 3), np.uint8)
    out = services.preview(img, max_side=400)
    assert out.shape == (100, 400, 3)
    assert out.dtype == np.uint8
    small = np.ones((10, 20, 3), np.uint8)
    kept = services.preview(small, max_side=400)
    assert kept.shape == small.shape
    assert kept is not small


def test_preview_masks_stay_bool_and_labels_nearest() -> None:
    mask = np.zeros((200, 400), bool)
    mask[:, :200] = True
    out = services.preview(mask, max_side=100)
    assert out.dtype == bool
    assert out.shape == (50, 100)
    assert out[:, :50].all()
    assert not out[:, 50:].any()
    labels = np.zeros((200, 400), np.uint8)
    labels[:100] = 2
    lab = services.preview(labels, max_side=100)
    assert set(np.unique(lab)) == {0, 2}


def test_preview_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="max_side"):
        services.preview(np.zeros((10, 10, 3), np.uint8), max_side=4)
    with pytest.raises(ValueError, match="image must be"):
        services.preview(np.zeros((10, 10, 3, 1), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        services.preview(np.zeros((10, 10, 3), np.float32))


def test_wipe_left_is_before_right_is_after(pair: tuple[np.ndarray, np.ndarray]) -> None:
    before, after = pair
    out = services.wipe(before, after, position=0.5)
    assert (out[:, :39] == before[:, :39]).all()
    assert (out[:, 41:] == after[:, 41:]).all()
    assert (out[:, 39:41] == 255).all()
    assert (services.wipe(before, after, position=0.0)[:, 2:] == after[:, 2:]).all()
    assert before[0, 0, 0] == 200  # inputs untouched
    with pytest.raises(ValueError, match="position"):
        services.wipe(before, after, position=1.5)
    with pytest.raises(ValueError, match="same shape"):
        services.wipe(before, after[:10], position=0.5)


def test_blend_is_weighted_mean(pair: tuple[np.ndarray, np.ndarray]) -> None:
    before, after = pair
    out = services.blend(before, after, alpha=0.25)
    assert out[0, 0].tolist() == [150, 0, 25]
    with pytest.raises(ValueError, match="alpha"):
        services.blend(before, after, alpha=-0.1)


def test_checkerboard_alternates_tiles(pair: tuple[np.ndarray, np.ndarray]) -> None:
    before, after = pair
    out = services.checkerboard(before, after, tiles=4)  # 20 px tiles
    assert (out[0, 0] == before[0, 0]).all()
    assert (out[0, 25] == after[0, 25]).all()
    assert (out[25, 25] == before[25, 25]).all()
    with pytest.raises(ValueError, match="tiles"):
        services.checkerboard(before, after, tiles=1)


def test_vein_overlay_paints_two_classes_in_two_colours() -> None:
    rgb = np.full((20, 20, 3), 100, np.uint8)
    labels = np.zeros((20, 20), np.uint8)
    labels[2, 2] = 1
    labels[5, 5] = 2
    out = services.vein_overlay(rgb, labels, opacity=1.0)
    assert tuple(out[2, 2]) == services.VEIN_COLOURS[1]
    assert tuple(out[5, 5]) == services.VEIN_COLOURS[2]
    assert (out[0, 0] == 100).all()
    assert (rgb == 100).all()
    with pytest.raises(ValueError, match="labels must have"):
        services.vein_overlay(rgb, labels[:5])
    with pytest.raises(ValueError, match="opacity"):
        services.vein_overlay(rgb, labels, opacity=2.0)


def test_change_overlay_colours_every_status() -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    cmap = np.zeros((10, 10), np.uint8)
    for code in range(1, 6):
        cmap[code, 0] = code
    out = services.change_overlay(rgb, cmap, opacity=1.0)
    colours = {tuple(out[code, 0]) for code in range(1, 6)}
    assert len(colours) == 5
    assert [label for _, _, label in services.legend("change")] == [
        "cleared",
        "faded",
        "persisting",
        "new",
        "recanalised",
    ]
    with pytest.raises(ValueError, match="kind"):
        services.legend("other")


def test_roi_overlay_dims_outside_and_ghost_is_lighter() -> None:
    rgb = np.full((100, 100, 3), 200, np.uint8)
    roi = np.zeros((100, 100), bool)
    roi[20:80, 20:80] = True
    out = services.roi_overlay(rgb, roi, dim=0.5)
    assert (out[0, 0] == 100).all()
    assert (out[50, 50] == 200).all()
    with pytest.raises(ValueError, match="roi must be"):
        services.roi_overlay(rgb, roi.astype(np.uint8))
    dark = np.zeros((100, 100, 3), np.uint8)
    g = services.ghost(dark, opacity=0.5)
    assert g.shape == dark.shape
    assert g.mean() > 100
    with pytest.raises(ValueError, match="opacity"):
        services.ghost(dark, opacity=1.5)


def test_side_by_side_width(pair: tuple[np.ndarray, np.ndarray]) -> None:
    before, after = pair
    out = services.side_by_side(before, after, gap_px=4)
    assert out.shape == (60, 164, 3)
    assert (out[:, 80:84] == 255).all()


def test_markdown_escape_shows_user_text_literally() -> None:
    from vein_tracker.ui.widgets import md_escape

    assert md_escape("[click](http://x.test)") == r"\[click\]\(http://x\.test\)"
    assert md_escape("<script>**b**</script>") == r"\<script\>\*\*b\*\*\</script\>"
    assert md_escape("calf 2") == "calf 2"
