"""Tests of vein_tracker.export: composite, de-identification, manifest and ZIP.

The repository-backed tests (consent property test, end-to-end ZIP) are further down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as skdata

from tests.clinic_util import make_user, open_test_repo
from vein_tracker import ALGORITHM_VERSION
from vein_tracker import export as ex
from vein_tracker import synthetic as sy
from vein_tracker.errors import AccessDenied, ConsentError, PhotoError
from vein_tracker.io import encode_image
from vein_tracker.storage import CHANNELS, SYSTEM_ACTOR, Screening
from vein_tracker.storage.repository import Repository

# Pillow keys that only describe the encoding (JFIF density, progressive flags...).
BASIC_INFO_KEYS = {
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "dpi",
    "progressive",
    "progression",
    "adobe",
    "adobe_transform",
}


# The face check has its own tests below; layout, colour and packaging tests skip it.
NO_FACE = {"check_faces": False}


def _skin(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A skin-coloured image with smooth shading, some red 'veins' and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 0.85 + 0.15 * np.sin(xx / w * np.pi)
    base = np.array([215, 165, 145], np.float32) * shade[..., None]
    for _ in range(6):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        ang = rng.uniform(0, np.pi)
        d = np.abs((xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang))
        line = (d < 1.5) & (np.hypot(xx - x0, yy - y0) < 120)
        base[line] *= np.array([0.95, 0.70, 0.75], np.float32)
    base += rng.normal(0, 2.0, base.shape).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def assert_no_metadata(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert not img.getexif(), "EXIF present"
        assert "exif" not in img.info
        assert "icc_profile" not in img.info
        assert "xmp" not in img.info
        assert "XML:com.adobe.xmp" not in img.info
        assert not hasattr(img, "applist") or all(
            marker in ("APP0",) for marker, _ in img.applist
        ), f"unexpected APP segments {[m for m, _ in img.applist]}"
        extra = set(img.info) - BASIC_INFO_KEYS
        assert not extra, f"unexpected metadata keys {extra}"


# --------------------------------------------------------------------------- geometry


def test_largest_valid_rectangle_exact() -> None:
    valid = np.zeros((300, 400), bool)
    valid[50:250, 100:350] = True
    valid[0:20, :] = True  # a wide but thin strip must lose to the big block
    assert ex.largest_valid_rectangle(valid) == (100, 50, 250, 200)


def test_largest_valid_rectangle_downscaled_stays_inside() -> None:
    yy, xx = np.mgrid[0:900, 0:1200]
    valid = (xx - 600) ** 2 / 500**2 + (yy - 450) ** 2 / 400**2 < 1  # an ellipse
    x, y, w, h = ex.largest_valid_rectangle(valid, max_side_px=128)
    assert valid[y : y + h, x : x + w].all()
    # The largest rectangle in an ellipse has area 2ab = 400 000 px; coarse cells lose a little.
    assert w * h > 0.85 * 2 * 500 * 400


def test_largest_valid_rectangle_thin_overlap() -> None:
    # Thinner than one coarse cell (4 px at 1000 px wide): falls back to the exact strip.
    valid = np.zeros((600, 1000), bool)
    valid[301:303, 100:900] = True
    assert ex.largest_valid_rectangle(valid) == (100, 301, 800, 2)


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10), bool), np.ones((10, 10), np.uint8), np.ones((4, 4, 3), bool)]
)
def test_largest_valid_rectangle_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="valid"):
        ex.largest_valid_rectangle(bad)


# --------------------------------------------------------------------------- composite


def test_composite_layouts_and_identical_processing() -> None:
    before = _skin()
    comp_sbs = ex.compose_pair(before, before, weeks=6, sessions=2, half_max_side_px=320, **NO_FACE)
    comp_stk = ex.compose_pair(
        before,
        before,
        weeks=6,
        sessions=2,
        half_max_side_px=320,
        layout="stacked",
        **NO_FACE,
    )
    # 640x480 zoomed to 320x240 per half, label strip 24 px, gap 4 px.
    assert comp_sbs.shape == (240 + 24, 2 * 320 + 4, 3)
    assert comp_stk.shape == (2 * (240 + 24) + 4, 320, 3)
    # Same photo on both sides -> the two photo areas are identical, pixel for pixel.
    left, right = comp_sbs[24:, :320], comp_sbs[24:, 324:]
    np.testing.assert_array_equal(left, right)
    top, bottom = comp_stk[24:264], comp_stk[24 + 268 :]
    np.testing.assert_array_equal(top, bottom)


def test_composite_does_not_flatter_the_after_photo() -> None:
    """One mapping for both halves: equal input pixels give equal output pixels."""
    before = _skin(seed=1)
    after = before.copy()
    after[100:200, 100:300] = (before[100:200, 100:300] * 0.8).astype(np.uint8)
    comp = ex.compose_pair(before, after, weeks=4, sessions=1, half_max_side_px=640, **NO_FACE)
    lh = max(24, 480 // 12)
    left = comp[lh:, :640].astype(int)
    right = comp[lh:, 640 + 6 :].astype(int)
    same = np.ones(before.shape[:2], bool)
    same[100:200, 100:300] = False
    np.testing.assert_array_equal(left[same], right[same])
    # The darker patch stays darker by the shared gain (never lifted on the after side).
    gain, offset = ex.shared_levels(before, after)
    dark = left[~same].mean() - right[~same].mean()
    expected = gain * (before[100:200, 100:300].mean() - after[100:200, 100:300].mean())
    assert dark == pytest.approx(expected, rel=0.05)
    # colour="none" leaves the pixels exactly as given (apart from the faint watermark).
    comp_none = ex.compose_pair(
        before,
        after,
        weeks=4,
        sessions=1,
        colour="none",
        half_max_side_px=640,
        watermark_opacity=0.01,
        check_faces=False,
    )
    assert np.abs(comp_none[lh:, :640].astype(int) - before.astype(int)).max() <= 3


def test_shared_levels_are_one_mapping_for_both_halves() -> None:
    before = _skin(seed=2)
    after = _skin(seed=3)
    gain, offset = ex.shared_levels(before, after)
    # Swapping the halves gives the same mapping: nothing depends on which side is "after".
    assert ex.shared_levels(after, before) == pytest.approx((gain, offset))


def test_shared_levels_stretch_the_pooled_range() -> None:
    # Before is grey 40, after grey 240: the pooled luminance spans 40-240 (200 levels),
    # so the stretch is 245/200 = 1.225 and lifts 40 to 5.
    before = np.full((64, 64, 3), 40, np.uint8)
    after = np.full((64, 64, 3), 240, np.uint8)
    gain, offset = ex.shared_levels(before, after)
    assert gain == pytest.approx(1.225, abs=1e-4)
    assert offset == pytest.approx(5.0 - 1.225 * 40.0, abs=1e-2)
    # A narrow range is not stretched beyond x1.25, and a flat one is left alone.
    narrow = ex.shared_levels(np.full_like(before, 100), np.full_like(after, 150))
    assert narrow[0] == pytest.approx(1.25)
    assert ex.shared_levels(before, before) == (1.0, 0.0)


def test_crop_and_valid_apply_to_both_halves() -> None:
    before = _skin(seed=4)
    after = _skin(seed=5)
    valid = np.zeros(before.shape[:2], bool)
    valid[48:432, 96:576] = True  # on the 3-px grid the coarse search uses for 640 px
    comp = ex.compose_pair(
        before,
        after,
        weeks=3,
        sessions=1,
        valid=valid,
        colour="none",
        half_max_side_px=480,
        watermark_opacity=0.01,
        **NO_FACE,
    )
    # The automatic crop is the valid block (480x384): no grey fill is shown.
    label_h = max(24, 384 // 12)
    assert comp.shape == (384 + label_h, 2 * 480 + 4, 3)
    left = comp[label_h:, :480].astype(int)
    assert np.abs(left - before[48:432, 96:576].astype(int)).max() <= 3
    right = comp[label_h:, 484:].astype(int)
    assert np.abs(right - after[48:432, 96:576].astype(int)).max() <= 3


def test_labels_are_drawn() -> None:
    assert ex.after_label(6, 2) == "After — 6 weeks, 2 sessions"
    assert ex.after_label(1, 1) == "After — 1 week, 1 session"
    before = _skin(seed=6)
    comp = ex.compose_pair(before, before, weeks=6, sessions=2, half_max_side_px=320, **NO_FACE)
    strip_left, strip_right = comp[:24, :320], comp[:24, 324:]
    # Dark text on white, and the after label is longer than "Before".
    dark_l, dark_r = (strip_left.mean(axis=2) < 100).sum(), (strip_right.mean(axis=2) < 100).sum()
    assert dark_l > 20
    assert dark_r > 2 * dark_l
    with pytest.raises(ValueError, match="weeks and sessions"):
        ex.after_label(-1, 2)


def test_watermark_text_and_opacity() -> None:
    flat = np.full((300, 400, 3), 100, np.uint8)
    w1 = ex.add_watermark(flat, "Clinic", opacity=0.3).astype(int)
    w2 = ex.add_watermark(flat, "Clinic", opacity=0.6).astype(int)
    other = ex.add_watermark(flat, "Другая клиника ✓", opacity=0.3).astype(int)
    assert flat.max() == 100  # input untouched
    d1, d2 = np.abs(w1 - 100), np.abs(w2 - 100)
    assert d1.max() > 20
    # White text over grey 100 at full coverage: change = opacity * 155.
    assert d1.max() == pytest.approx(0.3 * 155, abs=2)
    assert d2.max() == pytest.approx(0.6 * 155, abs=2)
    assert not np.array_equal(w1, other)
    with pytest.raises(ValueError, match="opacity"):
        ex.add_watermark(flat, "x", opacity=0.0)
    with pytest.raises(ValueError, match="opacity"):
        ex.add_watermark(flat, "x", opacity=1.5)
    with pytest.raises(ValueError, match="watermark text"):
        ex.add_watermark(flat, "  ", opacity=0.3)


def test_blur_box_hides_a_tattoo_and_nothing_else() -> None:
    img = _skin(seed=7)
    tattoo = img.copy()
    yy, xx = np.mgrid[0:120, 0:160]
    pattern = ((xx // 4 + yy // 4) % 2 == 0)[..., None]
    tattoo[200:320, 300:460] = np.where(pattern, 30, 220).astype(np.uint8)
    box = ex.BlurBox(x=300, y=200, width=160, height=120)
    out = ex.apply_blur_boxes(tattoo, [box])
    assert tattoo[200, 300, 0] in (30, 220)  # input untouched
    np.testing.assert_array_equal(out[:200], tattoo[:200])
    np.testing.assert_array_equal(out[:, :300], tattoo[:, :300])
    inside = out[200:320, 300:460].astype(np.float64)
    # The 4-px checkerboard is gone: horizontal neighbour differences collapse.
    grad_before = np.abs(np.diff(tattoo[200:320, 300:460].astype(float), axis=1)).mean()
    grad_after = np.abs(np.diff(inside, axis=1)).mean()
    assert grad_before > 40
    assert grad_after < 0.05 * grad_before
    with pytest.raises(ValueError, match="width and height"):
        ex.BlurBox(x=0, y=0, width=0, height=5)


def test_blur_box_applies_to_both_halves() -> None:
    before = _skin(seed=8)
    after = _skin(seed=9)
    box = ex.BlurBox(x=0, y=0, width=320, height=240)
    comp = ex.compose_pair(
        before,
        after,
        weeks=2,
        sessions=1,
        blur_boxes=[box],
        colour="none",
        half_max_side_px=640,
        watermark_opacity=0.01,
        **NO_FACE,
    )
    lh = max(24, 480 // 12)
    for x0 in (0, 640 + 6):
        quad = comp[lh : lh + 240, x0 : x0 + 320].astype(float)
        rest = comp[lh + 240 :, x0 + 320 : x0 + 640].astype(float)
        assert np.abs(np.diff(quad, axis=1)).mean() < 0.5 * np.abs(np.diff(rest, axis=1)).mean()


def test_face_is_refused_and_legs_pass() -> None:
    face = skdata.astronaut()  # 512x512, one frontal face
    boxes = ex.detect_faces(face)
    assert len(boxes) >= 1
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260
    assert 60 < y + h / 2 < 170
    # A face lying sideways (turned 90° either way) is found too, at the right place.
    turned = np.ascontiguousarray(np.rot90(face))
    (box,) = ex.detect_faces(turned)
    # Boxes merge hits from several pyramid levels: a few px apart.
    assert box == pytest.approx((y, 512 - x - w, h, w), abs=5)
    with pytest.raises(ValueError, match="rotations"):
        ex.detect_faces(face, rotations=(45,))
    with pytest.raises(ValueError, match="sizes_px"):
        ex.detect_faces(face, sizes_px=(10,))
    skin = _skin(512, 512, seed=10)
    # The message points at the face in baseline pixels, so a blur box can be drawn.
    with pytest.raises(PhotoError, match=r"after photo .*near x=1\d\d, y=\d+"):
        ex.compose_pair(skin, face, weeks=6, sessions=2)
    with pytest.raises(PhotoError, match="before photo"):
        ex.compose_pair(turned, skin, weeks=6, sessions=2)
    # Blurring the face away makes the pair exportable.
    blurred = ex.compose_pair(
        skin, face, weeks=6, sessions=2, blur_boxes=[ex.BlurBox(x=140, y=30, width=160, height=180)]
    )
    assert blurred.ndim == 3
    assert ex.detect_faces(skin) == ()


def test_face_check_ignores_plain_skin_with_hairs() -> None:
    """Issue 24 item 6: the cascade alone flags plain calf skin with a few hairs (a bundled
    demo photo) as a face; the face-contrast check clears it and keeps real faces."""
    from vein_tracker.io import load_photo

    photo = Path(__file__).resolve().parents[1] / "sample_images" / "c02_right-calf-lateral_s2.jpg"
    rgb = load_photo(photo.read_bytes()).rgb
    assert ex.detect_faces(rgb, verify=False)  # the false alarm, as the cascade gives it
    assert ex.detect_faces(rgb) == ()
    face = skdata.astronaut()
    assert len(ex.detect_faces(face)) == 1
    assert len(ex.detect_faces(np.ascontiguousarray(np.rot90(face, 3)))) == 1


def test_face_structure_measures_contrast() -> None:
    flat = np.full((60, 60), 180.0)
    rng, detail = ex.face_structure(flat)
    assert rng == pytest.approx(0.0, abs=1e-6)
    assert detail == pytest.approx(0.0, abs=1e-6)
    head = np.asarray(skdata.astronaut()[40:200, 160:300].mean(axis=2))
    rng, detail = ex.face_structure(head)
    assert rng > ex.FACE_MIN_RANGE
    assert detail > ex.FACE_MIN_DETAIL
    with pytest.raises(ValueError, match="grey"):
        ex.face_structure(np.zeros((3, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "diagonal"}, "layout"),
        ({"colour": "vivid"}, "colour"),
        ({"watermark": ""}, "watermark text"),
        ({"watermark_opacity": -0.1}, "opacity"),
        ({"crop": (600, 0, 100, 100)}, "crop"),
        ({"crop": (0, 0, 0, 10)}, "crop"),
        ({"half_max_side_px": 10}, "half_max_side_px"),
        ({"valid": np.ones((5, 5), bool)}, "valid"),
        ({"blur_boxes": [(0, 0, 5, 5)]}, "blur_boxes"),
        ({"weeks": -2}, "weeks"),
    ],
)
def test_compose_pair_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    img = _skin(240, 320)
    args: dict[str, object] = {"weeks": 2, "sessions": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        ex.compose_pair(img, img, **args)  # type: ignore[arg-type]


def test_compose_pair_rejects_unaligned_after() -> None:
    with pytest.raises(ValueError, match="baseline frame"):
        ex.compose_pair(_skin(240, 320), _skin(200, 320), weeks=1, sessions=1)
    with pytest.raises(ValueError, match="uint8"):
        ex.compose_pair(np.zeros((10, 10, 3)), np.zeros((10, 10, 3)), weeks=1, sessions=1)


# --------------------------------------------------------------------------- packaging


def test_encoded_composite_has_no_metadata() -> None:
    comp = ex.compose_pair(
        _skin(), _skin(seed=11), weeks=3, sessions=2, half_max_side_px=320, **NO_FACE
    )
    jpeg = ex.encode_composite(comp)
    assert jpeg[:2] == b"\xff\xd8"
    assert_no_metadata(jpeg)


def test_manifest_and_zip_roundtrip() -> None:
    images = {}
    rows = []
    for i in range(3):
        comp = ex.compose_pair(
            _skin(seed=i),
            _skin(seed=i + 20),
            weeks=4 + i,
            sessions=i + 1,
            half_max_side_px=200,
            **NO_FACE,
        )
        jpeg = ex.encode_composite(comp)
        pair_id = f"{i:02d}" + "ab" * 11  # any 24-hex id; the real ones are HMACs
        name = f"{pair_id}.jpg"
        images[name] = jpeg
        rows.append(
            ex.ManifestRow(
                pair_id=pair_id,
                file=f"images/{name}",
                channel="website",
                area="left calf",
                sessions=i + 1,
                weeks=4.0 + i,
                improvement_pct=80.0 + i if i < 2 else None,
                grade="76–100 %",
            )
        )
    blob = ex.build_zip(images, ex.write_manifest(rows))
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(["manifest.csv", *(f"images/{n}" for n in images)])
        assert all(zi.date_time == (1980, 1, 1, 0, 0, 0) for zi in zf.infolist())
        assert zf.comment == b""
        manifest = ex.read_manifest(zf.read("manifest.csv"))
        assert list(manifest[0]) == list(ex.MANIFEST_COLUMNS)
        for row in manifest:
            assert row["file"] == f"images/{row['pair_id']}.jpg"
            assert row["algorithm_version"] == ALGORITHM_VERSION
        assert manifest[1]["improvement_pct"] == "81.0"
        assert manifest[2]["improvement_pct"] == ""
        assert manifest[0]["weeks"] == "4.0"
        assert manifest[0]["grade"] == "76–100 %"
    # Nothing that could name a record: no consent, no photo digest, no composite digest.
    assert not {c for c in ex.MANIFEST_COLUMNS if "consent" in c or "sha" in c}
    with pytest.raises(ValueError, match="bare file name"):
        ex.build_zip({"../evil.jpg": b"x"}, b"")


# --------------------------------------------------------------------------- with the repository

STAFF = SYSTEM_ACTOR


@pytest.fixture(scope="module")
def phantom_files() -> tuple[bytes, bytes]:
    """PNG files of one phantom baseline and its treated follow-up (same framing)."""
    pair = sy.make_pair(5, shape=(300, 400), capture=sy.identity_capture())
    return encode_image(pair.baseline.rgb, format="PNG"), encode_image(
        pair.followup.rgb, format="PNG"
    )


@pytest.fixture
def repo(data_dir: Path) -> Iterator[Repository]:
    """An empty clinic: the export's pairs are exactly the ones a test adds."""
    r = open_test_repo(data_dir)
    try:
        yield r
    finally:
        r.close()


def add_client_pair(
    repo: Repository,
    files: tuple[bytes, bytes],
    *,
    name: str = "Jane Doe",
    improvement: float | None = 81.0,
    weeks: int = 8,
) -> tuple[int, str]:
    """A screened client with a treatment-photography consent and one analysed pair.

    Returns the client id and the area's id.
    """
    today = dt.date.today()
    c = repo.create_client(STAFF, name=name, screening=Screening())
    repo.record_consent(
        STAFF, c.id, kind="treatment_photography", signed_at=today - timedelta(days=800)
    )
    area = repo.create_area(STAFF, c.id, side="left", view="posterior", region="calf")
    v1 = repo.create_visit(
        STAFF, c.id, visit_date=today - timedelta(weeks=weeks), area_ids=[area.id]
    )
    repo.create_visit(
        STAFF, c.id, visit_date=today - timedelta(weeks=weeks // 2), area_ids=[area.id]
    )
    v3 = repo.create_visit(STAFF, c.id, visit_date=today - timedelta(days=1), area_ids=[area.id])
    pb = repo.add_photo(STAFF, area.id, v1.id, files[0], filename=f"{name}-before.png")
    pf = repo.add_photo(STAFF, area.id, v3.id, files[1], filename=f"{name}-after.png")
    if improvement is not None:
        repo.save_analysis(STAFF, pb.id, pf.id, params={}, result={"improvement_pct": improvement})
    return c.id, area.id


def read_zip(blob: bytes) -> tuple[list[dict[str, str]], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        manifest = ex.read_manifest(zf.read("manifest.csv"))
        files = {n: zf.read(n) for n in zf.namelist() if n != "manifest.csv"}
    return manifest, files


def check_zip_integrity(blob: bytes) -> list[dict[str, str]]:
    """Every image is listed once under its pair's id, and it carries no metadata."""
    manifest, files = read_zip(blob)
    assert sorted(r["file"] for r in manifest) == sorted(files)
    assert len({r["pair_id"] for r in manifest}) == len(manifest)  # one id per pair
    for row in manifest:
        assert_no_metadata(files[row["file"]])
        assert row["file"] == f"images/{row['pair_id']}.jpg"
        assert len(row["pair_id"]) == 24
        int(row["pair_id"], 16)
    return manifest


def traced(repo: Repository, pair_id: str) -> int:
    """The client a published pair id comes from (the clinic's private mapping)."""
    found = repo.trace_public_id(STAFF, pair_id)
    assert found, f"pair id {pair_id} was never exported"
    return found[0].client_id


def test_export_end_to_end(repo: Repository, phantom_files: tuple[bytes, bytes]) -> None:
    mk = make_user(repo, "marketing1", "marketing")
    cid, area_id = add_client_pair(repo, phantom_files, name="Jane Doe", improvement=81.0)
    repo.record_consent(
        STAFF,
        cid,
        kind="marketing",
        scopes=["website", "print"],
        expires_at=dt.date.today() + timedelta(days=30),
    )
    cid2, _ = add_client_pair(repo, phantom_files, name="Zoë Other", improvement=40.0)
    repo.record_consent(STAFF, cid2, kind="marketing", scopes=["website"])

    listed = ex.list_exportable_pairs(repo, mk, channel="website")
    assert {p.client_id for p in listed} == {cid, cid2}
    good = ex.list_exportable_pairs(repo, mk, channel="website", min_improvement=75)
    assert [p.client_id for p in good] == [cid]
    assert ex.list_exportable_pairs(repo, mk, channel="social") == []
    assert len(ex.list_exportable_pairs(repo, mk, channel="website", area="left calf")) == 2
    assert len(ex.list_exportable_pairs(repo, mk, channel="website", area="calf")) == 2
    assert ex.list_exportable_pairs(repo, mk, channel="website", area="right") == []
    assert (
        ex.list_exportable_pairs(
            repo, mk, channel="website", date_to=dt.date.today() - timedelta(days=2)
        )
        == []
    )

    result = ex.run_export(
        repo,
        mk,
        channel="website",
        min_improvement=75,
        layout="stacked",
        watermark="Clinique Zoë",
        watermark_opacity=0.5,
    )
    assert result.skipped == ()
    manifest = check_zip_integrity(result.zip_bytes)
    assert len(manifest) == 1
    row = manifest[0]
    assert row["area"] == "left calf, posterior"
    assert row["sessions"] == "2"  # treatments before the after photo (3rd visit)
    assert row["weeks"] == "7.9"
    assert row["improvement_pct"] == "81.0"
    assert row["grade"] == "76-100"
    assert row["algorithm_version"] == ALGORITHM_VERSION
    # The clinic traces the published id back to the pair; the id is the pair's HMAC.
    (trace,) = repo.trace_public_id(STAFF, row["pair_id"])
    assert (trace.client_id, trace.area_id, trace.channel) == (cid, area_id, "website")
    assert repo.export_public_ids(mk, good) == {ex.pair_key(good[0]): row["pair_id"]}
    assert (trace.baseline_photo_id, trace.followup_photo_id) == (
        good[0].baseline_photo_id,
        good[0].followup_photo_id,
    )
    # Nothing in the archive names the client or the uploaded files.
    for needle in ("Jane", "Doe", "before.png", "after.png"):
        assert needle.encode() not in result.zip_bytes
    # Stacked: taller than wide.
    _, files = read_zip(result.zip_bytes)
    with Image.open(io.BytesIO(files[row["file"]])) as im:
        assert im.height > im.width
    # One audit event per exported pair, naming the channel and the archive; no digest of
    # the composite is kept (the ZIP's files must not hash to a record).
    events = repo.list_audit(STAFF, action="export", ok=True)
    assert len(events) == 1
    assert events[0].client_id == cid
    assert events[0].username == "marketing1"
    assert events[0].detail["channel"] == "website"
    assert not events[0].detail.get("sha256")


def test_export_refuses_other_roles_and_bad_options(
    repo: Repository, phantom_files: tuple[bytes, bytes]
) -> None:
    cid, _ = add_client_pair(repo, phantom_files)
    staff = make_user(repo, "aesth1", "aesthetician")
    client = make_user(repo, "client1", "client", client_id=cid)
    for actor in (staff, client):
        with pytest.raises(AccessDenied):
            ex.run_export(repo, actor, channel="website")
        with pytest.raises(AccessDenied):
            ex.list_exportable_pairs(repo, actor, channel="website")
    mk = make_user(repo, "marketing1", "marketing")
    with pytest.raises(ValueError, match="channel"):
        ex.run_export(repo, mk, channel="billboard")
    with pytest.raises(ValueError, match="layout"):
        ex.run_export(repo, mk, channel="website", layout="grid")
    with pytest.raises(ValueError, match="opacity"):
        ex.run_export(repo, mk, channel="website", watermark_opacity=2.0)
    with pytest.raises(ValueError, match="date_from"):
        ex.list_exportable_pairs(
            repo, mk, channel="website", date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 1, 1)
        )
    # An empty export is still a valid, audited archive.
    result = ex.run_export(repo, mk, channel="website")
    assert check_zip_integrity(result.zip_bytes) == []
    assert len(repo.list_audit(STAFF, action="export", ok=True)) == 1
    # Each refused export is in the audit log with who and why.
    refused = repo.list_audit(STAFF, action="export", ok=False)
    assert {e.username for e in refused} == {"aesth1", "client1"}
    assert all(e.detail.get("reason") for e in refused)


def test_revocation_between_choosing_and_exporting(
    repo: Repository, phantom_files: tuple[bytes, bytes]
) -> None:
    mk = make_user(repo, "marketing1", "marketing")
    ids = []
    for name in ("A Client", "B Client"):
        cid, _ = add_client_pair(repo, phantom_files, name=name)
        consent = repo.record_consent(STAFF, cid, kind="marketing", scopes=["social"])
        ids.append((cid, consent.id))
    chosen = ex.list_exportable_pairs(repo, mk, channel="social")
    assert len(chosen) == 2
    repo.revoke_consent(STAFF, ids[0][1], reason="client asked")
    result = ex.run_export(repo, mk, chosen, channel="social")  # the UI calls it so
    manifest = check_zip_integrity(result.zip_bytes)
    assert [traced(repo, r["pair_id"]) for r in manifest] == [ids[1][0]]
    assert [s.reason for s in result.skipped] == ["marketing consent no longer valid"]
    # The pair left out is an audited refusal, naming its client and why.
    (refusal,) = repo.list_audit(STAFF, action="export", ok=False)
    assert refusal.client_id == ids[0][0]
    assert refusal.detail["reason"] == "marketing consent no longer valid"
    # Choosing by key works the same way; a stale key is reported, not exported.
    keys = [ex.pair_key(p) for p in chosen]
    result2 = ex.export_pairs(repo, mk, channel="social", pairs=keys)
    assert [traced(repo, r["pair_id"]) for r in check_zip_integrity(result2)] == [ids[1][0]]
    with pytest.raises(ValueError, match="listed for"):
        ex.run_export(repo, mk, channel="website", pairs=chosen[1:])


def test_crafted_pair_without_consent_is_never_exported(
    repo: Repository, phantom_files: tuple[bytes, bytes]
) -> None:
    """A pair edited by hand (e.g. crafted widget state) to point at another client's photos."""
    mk = make_user(repo, "marketing1", "marketing")
    ok_client, _ = add_client_pair(repo, phantom_files, name="Consenting")
    repo.record_consent(STAFF, ok_client, kind="marketing", scopes=["website"])
    no_client, _ = add_client_pair(repo, phantom_files, name="Not Consenting")
    (good,) = ex.list_exportable_pairs(repo, mk, channel="website")
    secret = repo.list_photos(STAFF, client_id=no_client)
    photo_ids = {"baseline_photo_id": secret[0].id, "followup_photo_id": secret[1].id}
    crafted = [
        dataclasses.replace(good, **photo_ids),  # consenting client's id, other's photos
        dataclasses.replace(good, client_id=no_client, **photo_ids),  # all of the other's
    ]
    result = ex.run_export(repo, mk, channel="website", pairs=crafted)
    assert result.rows == ()
    assert [s.reason for s in result.skipped] == ["marketing consent no longer valid"] * 2
    assert check_zip_integrity(result.zip_bytes) == []
    assert all(e.client_id != no_client for e in repo.list_audit(STAFF, action="export", ok=True))


def test_revocation_during_composites_is_caught_by_the_audit_transaction(
    repo: Repository, phantom_files: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consent revoked after the photos were read never reaches the ZIP."""
    mk = make_user(repo, "marketing1", "marketing")
    cid, _ = add_client_pair(repo, phantom_files)
    consent = repo.record_consent(STAFF, cid, kind="marketing", scopes=["print"])
    real = ex.compose_pair

    def compose_then_revoke(*args: object, **kwargs: object) -> np.ndarray:
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        repo.revoke_consent(STAFF, consent.id)
        return out

    monkeypatch.setattr(ex, "compose_pair", compose_then_revoke)
    result = ex.run_export(repo, mk, channel="print")
    assert check_zip_integrity(result.zip_bytes) == []
    assert [s.reason for s in result.skipped] == ["marketing consent no longer valid"]
    _, files = read_zip(result.zip_bytes)
    assert files == {}


def test_face_pair_is_skipped_unless_blurred(repo: Repository) -> None:
    face = encode_image(skdata.astronaut(), format="PNG")
    mk = make_user(repo, "marketing1", "marketing")
    cid, _ = add_client_pair(repo, (face, face))
    repo.record_consent(STAFF, cid, kind="marketing", scopes=["website"])
    result = ex.run_export(repo, mk, channel="website")
    assert result.rows == ()
    assert len(result.skipped) == 1
    assert "face" in result.skipped[0].reason
    key = result.skipped[0].key
    blurred = ex.run_export(
        repo,
        mk,
        channel="website",
        blur_boxes={key: [ex.BlurBox(x=140, y=30, width=160, height=180)]},
    )
    assert len(check_zip_integrity(blurred.zip_bytes)) == 1


# --------------------------------------------------------------------------- property


def _consent_is_valid(c: dict[str, object], channel: str, today: dt.date) -> bool:
    signed = today + timedelta(days=int(c["signed"]))  # type: ignore[call-overload]
    if signed > today or channel not in c["scopes"]:  # type: ignore[operator]
        return False
    if c["expires"] is not None and today >= signed + timedelta(days=int(c["expires"])):  # type: ignore[call-overload]
        return False
    return c["revoked"] is None  # a revocation is never in the future: always in force


consents = st.fixed_dictionaries(
    {
        "scopes": st.sets(st.sampled_from(CHANNELS), min_size=1),
        "signed": st.integers(-400, 2),  # days from today (> 0: not signed yet)
        "expires": st.one_of(st.none(), st.integers(1, 900)),  # days after signing
        # days ago, or None (not revoked) about 2 times in 3
        "revoked": st.integers(0, 30).map(lambda d: d if d < 10 else None),
    }
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    histories=st.lists(st.lists(consents, max_size=3), min_size=1, max_size=3),
    channel=st.sampled_from(CHANNELS),
    revoke_one=st.booleans(),
)
def test_export_never_contains_a_pair_without_valid_consent(
    phantom_files: tuple[bytes, bytes],
    histories: list[list[dict[str, object]]],
    channel: str,
    revoke_one: bool,
) -> None:
    today = dt.date.today()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        repo = open_test_repo(Path(tmp))
        try:
            mk = make_user(repo, "marketing1", "marketing")
            expected: set[int] = set()
            for i, history in enumerate(histories):
                cid, _ = add_client_pair(repo, phantom_files, name=f"Client {i}")
                for c in history:
                    signed = today + timedelta(days=int(c["signed"]))  # type: ignore[call-overload]
                    rec = repo.record_consent(
                        STAFF,
                        cid,
                        kind="marketing",
                        scopes=sorted(c["scopes"]),  # type: ignore[call-overload]
                        signed_at=signed,
                        expires_at=None
                        if c["expires"] is None
                        else signed + timedelta(days=int(c["expires"])),  # type: ignore[call-overload]
                    )
                    if c["revoked"] is not None:
                        repo.revoke_consent(
                            STAFF,
                            rec.id,
                            revoked_at=now - timedelta(days=int(c["revoked"])),  # type: ignore[call-overload]
                        )
                if any(_consent_is_valid(c, channel, today) for c in history):
                    expected.add(cid)

            chosen = ex.list_exportable_pairs(repo, mk, channel=channel)
            assert {p.client_id for p in chosen} == expected
            if revoke_one and chosen:
                victim = chosen[0].client_id
                for c in repo.list_consents(STAFF, victim):
                    if c.kind == "marketing" and c.revoked_at is None:
                        repo.revoke_consent(STAFF, c.id)
                expected.discard(victim)

            result = ex.run_export(repo, mk, channel=channel, pairs=chosen)
            manifest = check_zip_integrity(result.zip_bytes)
            exported = {traced(repo, r["pair_id"]) for r in manifest}
            event(f"exported {len(exported)} of {len(histories)}; revoke_one={revoke_one}")
            assert exported == expected
            for cid in exported:
                assert any(
                    c.is_valid(today, channel=channel)
                    for c in repo.list_consents(STAFF, cid)
                    if c.kind == "marketing"
                )
            assert {s.reason for s in result.skipped} <= {"marketing consent no longer valid"}
            events = repo.list_audit(STAFF, action="export", ok=True)
            assert {e.client_id for e in events if e.client_id is not None} == exported
        finally:
            repo.close()


def test_preview_and_crop_match_the_export(
    repo: Repository, phantom_files: tuple[bytes, bytes]
) -> None:
    mk = make_user(repo, "marketing1", "marketing")
    cid, _ = add_client_pair(repo, phantom_files)
    consent = repo.record_consent(STAFF, cid, kind="marketing", scopes=["social"])
    (pair,) = ex.list_exportable_pairs(repo, mk, channel="social")
    crop = (40, 20, 200, 150)
    preview = ex.preview_pair(repo, mk, pair, crop=crop, watermark="W", half_max_side_px=200)
    result = ex.run_export(
        repo,
        mk,
        channel="social",
        crops={ex.pair_key(pair): crop},
        watermark="W",
        half_max_side_px=200,
    )
    manifest, files = read_zip(result.zip_bytes)
    with Image.open(io.BytesIO(files[manifest[0]["file"]])) as im:
        exported = np.asarray(im.convert("RGB")).astype(int)
    assert exported.shape == preview.shape == (150 + 24, 2 * 200 + 4, 3)
    assert np.abs(exported - preview.astype(int)).mean() < 3.0  # JPEG round trip only
    repo.revoke_consent(STAFF, consent.id)
    with pytest.raises(ConsentError):
        ex.preview_pair(repo, mk, pair)
