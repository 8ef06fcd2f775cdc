"""Privacy: passwords, login timing, lock-out, HTML injection, file metadata, encryption at rest.

- a password never reaches a log record, the database, a data file or CLI output;
- a failed sign-in of an unknown user costs the same time as one of a known user
  (medians of interleaved samples, generous tolerance: a correctness property);
- lock-out after repeated failures, with the same message as any other failure;
- no user-supplied text is rendered with ``unsafe_allow_html`` (static scan of the UI,
  and a client called ``<script>alert(1)</script>`` shown as text in the app);
- exported and downloaded files carry no EXIF/XMP/text metadata and no identity;
- photos at rest are AES-GCM encrypted when ``VEIN_TRACKER_ENCRYPTION_KEY`` is set, and a
  key rotation (``vein-tracker rekey``) leaves every photo readable with the new key only.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import io
import logging
import sqlite3
import statistics
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import argon2
import pytest
from PIL import Image
from sec_util import FAST, ROOT, make_settings, photo_bytes

from vein_tracker.cli import main
from vein_tracker.errors import AccessDenied
from vein_tracker.storage import (
    LOGIN_FAILED_MESSAGE,
    MAX_FAILED_LOGINS,
    SYSTEM_ACTOR,
    Passwords,
    open_repository,
)

SECRET = "Zebra-Quartz-Secret-9147"
KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()


# ------------------------------------------------------------------ passwords


def _every_file_text(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_passwords_never_logged_or_stored_in_clear(
    clinic: SimpleNamespace,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r, c = clinic.repo, clinic
    caplog.set_level(logging.DEBUG)
    # SQL statements with their parameters, as an operator turning on SQL logging would see.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
    try:
        u = r.create_user(c.admin, "pat.new", SECRET, "aesthetician")
        r.authenticate("pat.new", SECRET)
        for wrong in (SECRET + "x", SECRET.upper()):
            with pytest.raises(AccessDenied):
                r.authenticate("pat.new", wrong)
        actor = r.authenticate("pat.new", SECRET)
        r.change_password(actor, SECRET, SECRET + "-2")
        r.set_password(c.admin, u.id, SECRET + "-3")
        monkeypatch.setenv("VEIN_TRACKER_ADMIN_PASSWORD", SECRET + "-4")
        assert main(["create-admin", "--username", "root2"]) == 0
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    out, err = capsys.readouterr()
    logged = "\n".join(rec.getMessage() + repr(rec.args) for rec in caplog.records)
    assert caplog.records  # the capture did see the SQL
    for text in (logged, out, err):
        assert SECRET not in text
    r.close()
    assert SECRET.encode() not in _every_file_text(c.data_dir)
    with sqlite3.connect(c.data_dir / "vein_tracker.db") as conn:
        dump = "\n".join(conn.iterdump())
        hashes = [h for (h,) in conn.execute("SELECT password_hash FROM users") if h]
    conn.close()
    assert SECRET not in dump
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_password_typed_as_user_name_is_not_stored(
    clinic: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """People type their password into the user-name box; the failed attempt is audited,
    but the typed text must not be kept verbatim (it is very likely a password)."""
    r = clinic.repo
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AccessDenied):
        r.authenticate(SECRET, SECRET)
    assert SECRET not in "\n".join(rec.getMessage() for rec in caplog.records)
    r.close()
    with sqlite3.connect(clinic.data_dir / "vein_tracker.db") as conn:
        dump = "\n".join(conn.iterdump())
    conn.close()
    assert SECRET not in dump


def test_login_timing_does_not_reveal_whether_a_user_exists(data_dir: Path) -> None:
    # A hasher slow enough (~10-30 ms) to dominate the database work, yet quick to run.
    hasher = argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)
    repo = open_repository(make_settings(data_dir), passwords=Passwords(hasher))
    try:
        known = repo.create_user(SYSTEM_ACTOR, "kim.known", "a long good password", "marketing")
        samples: dict[str, list[float]] = {"known": [], "unknown": []}
        for i in range(30):
            for kind in ("known", "unknown") if i % 2 else ("unknown", "known"):
                if kind == "known":
                    repo.update_user(SYSTEM_ACTOR, known.id, unlock=True)  # stay under lock-out
                name = "kim.known" if kind == "known" else f"nobody.{i}"
                t0 = time.perf_counter()
                with pytest.raises(AccessDenied) as info:
                    repo.authenticate(name, "wrong password here")
                samples[kind].append(time.perf_counter() - t0)
                assert str(info.value) == LOGIN_FAILED_MESSAGE
    finally:
        repo.close()
    known_s, unknown_s = (statistics.median(samples[k]) for k in ("known", "unknown"))
    # Without a dummy hash an unknown user answers >10x faster; 0.5-2x allows a busy machine.
    ratio = unknown_s / known_s
    assert 0.5 < ratio < 2.0, (known_s, unknown_s)


def test_lockout_refuses_even_the_right_password_with_the_same_message(
    clinic: SimpleNamespace,
) -> None:
    r, c = clinic.repo, clinic
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(AccessDenied) as wrong:
            r.authenticate("erin.aesth", "not the password")
    with pytest.raises(AccessDenied) as locked:
        r.authenticate("erin.aesth", "correct horse battery")
    with pytest.raises(AccessDenied) as unknown:
        r.authenticate("no.such.user", "correct horse battery")
    # Locked, wrong and unknown look alike to the person at the keyboard.
    assert str(locked.value) == str(wrong.value) == str(unknown.value) == LOGIN_FAILED_MESSAGE
    assert r.get_user(c.admin, c.aest.user_id).is_locked()
    # Another account is not affected, and the admin's unlock restores access.
    assert r.authenticate("ann.client", "correct horse battery").role == "client"
    r.update_user(c.admin, c.aest.user_id, unlock=True)
    assert r.authenticate("erin.aesth", "correct horse battery").role == "aesthetician"


# ------------------------------------------------------------------ HTML injection


def _ui_sources() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "vein_tracker" / "ui").glob("*.py"))]


def test_static_scan_unsafe_allow_html_only_on_literal_text() -> None:
    """Every call with ``unsafe_allow_html=True`` (or ``st.html``) gets a literal string."""
    offenders = []
    for path in _ui_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            is_html = isinstance(node.func, ast.Attribute) and node.func.attr == "html"
            unsafe = any(
                k.arg == "unsafe_allow_html"
                and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                for k in node.keywords
            )
            if not (is_html or unsafe):
                continue
            args = node.args[:1]
            if not args or not (
                isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], f"HTML built from non-literal text: {offenders}"


@pytest.fixture(scope="module")
def ui_clinic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from vt_ui_seed import seed_clinic

    data = tmp_path_factory.mktemp("xss") / "data"
    data.mkdir()
    return seed_clinic(data)


XSS = "<script>alert(1)</script>"


def test_script_client_name_is_shown_as_text(
    ui_clinic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest
    from vt_ui_seed import PASSWORD, open_test_repo

    monkeypatch.setenv("VEIN_TRACKER_DATA", str(ui_clinic.data_dir))
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    monkeypatch.delenv("VEIN_TRACKER_ENCRYPTION_KEY", raising=False)
    repo = open_test_repo(ui_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        evil = repo.create_client(anna, name=XSS, notes=f"<img src=x onerror=alert(2)> {XSS}")
    finally:
        repo.close()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.text_input[0].input("anna")
    at.text_input[1].input(PASSWORD)
    at.button[0].click()
    at.run()
    at.selectbox(key="vt_client_select").set_value(evil.id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    seen = False
    for page in ("clients.py", "consent.py", "visit.py", "progress.py"):
        at.switch_page(f"vein_tracker/ui/{page}")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        for el in at.markdown:
            if "script" in str(el.value) or "onerror" in str(el.value):
                seen = True
                assert not el.allow_html, (page, el.value)
        for kind in ("caption", "title", "header", "subheader", "error", "warning", "info"):
            for el in getattr(at, kind):
                if "script" in str(el.value):
                    seen = True
                    assert not getattr(el, "allow_html", False), (page, kind, el.value)
    # Shown as plain text in the client picker and the client's editor.
    at.switch_page("vein_tracker/ui/clients.py")
    at.run()
    assert f"{XSS} (record {evil.id})" in at.selectbox(key="vt_client_select").options
    seen = seen or any(w.value == XSS for w in at.text_input)
    assert seen, "the client's name was not shown at all"


# ------------------------------------------------------------------ metadata


def _jpeg_with_exif(seed: int, description: str) -> bytes:
    return _with_exif(photo_bytes(seed, shape=(480, 640)), description)


def _with_exif(jpeg: bytes, description: str) -> bytes:
    """The same picture re-saved with GPS, a name and a comment in its metadata."""
    img = Image.open(io.BytesIO(jpeg))
    exif = Image.Exif()
    exif[0x010E] = description  # ImageDescription
    exif[0x013B] = description  # Artist
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), comment=description.encode())
    return buf.getvalue()


def _assert_no_image_metadata(data: bytes, name: str, forbidden: list[str]) -> None:
    with Image.open(io.BytesIO(data)) as img:
        assert not img.getexif(), name
        info = {k: v for k, v in img.info.items() if k not in ("dpi", "jfif", "jfif_version",
                "jfif_unit", "jfif_density", "progressive", "progression", "adobe",
                "adobe_transform", "icc_profile", "gamma", "srgb")}  # fmt: skip
        assert info == {}, (name, sorted(info))
    for text in forbidden:
        assert text.encode() not in data, (name, text)


@pytest.mark.slow  # one analysis and one marketing export (face check, renders): ~40 s
def test_export_and_report_downloads_carry_no_metadata(ui_clinic: Any) -> None:
    """The marketing zip and the PDF report: no EXIF/XMP/comments, no identity.

    A follow-up taken with a camera that wrote GPS, the client's name and a comment into
    EXIF is stored (unchanged, as the original) and analysed; its export has none of it.
    """
    import re

    from vt_ui_seed import PASSWORD, open_test_repo, photo_jpeg

    from vein_tracker import services

    secret = "Cara Client GPS home address"
    repo = open_test_repo(ui_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        mia = repo.authenticate("mia", PASSWORD)
        client = repo.get_client(anna, ui_clinic.client_a)
        raw = _with_exif(photo_jpeg(3, followup=True), secret)
        assert secret.encode() in raw
        visit = repo.create_visit(anna, ui_clinic.client_a, area_ids=[ui_clinic.area_a])
        photo = repo.add_photo(anna, ui_clinic.area_a, visit.id, raw, filename="IMG_0001 Cara.jpg")
        review = services.analyze_pair(
            repo,
            anna,
            baseline_photo_id=ui_clinic.baseline_a,
            followup_photo_id=photo.id,
            params=services.AnalysisParams(),
        )
        services.save_analysis(repo, anna, review)
        pairs = repo.list_marketing_pairs(mia, "website")
        assert photo.id in {p.followup_photo_id for p in pairs}
        result = services.marketing_export(repo, mia, pairs, channel="website")
        pdf = services.progress_report_pdf(repo, anna, ui_clinic.client_a)
    finally:
        repo.close()
    forbidden = [secret, client.name, *client.name.split(), "IMG_0001", "baseline.jpg"]
    assert result.rows
    with zipfile.ZipFile(io.BytesIO(result.zip_bytes)) as z:
        assert z.comment == b""
        names = z.namelist()
        images = [n for n in names if n.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))]
        assert images
        for n in names:
            assert z.getinfo(n).comment == b""
            body = z.read(n)
            if n in images:
                _assert_no_image_metadata(body, n, forbidden)
            else:
                for text in forbidden:
                    assert text.encode() not in body, (n, text)
    # The report is the client's own document: the name is in the page text, but the
    # PDF's document information carries no author, no subject and no name.
    info = b"".join(re.findall(rb"/(?:Author|Subject|Keywords|Title|Creator)\s*\(([^)]*)\)", pdf))
    for text in [client.name, *client.name.split()]:
        assert text.encode() not in info


# ------------------------------------------------------------------ encryption at rest


def _plain_markers(blob: bytes) -> list[bytes]:
    """JPEG/PNG signatures at the start and 4-byte markers anywhere (a 3-byte SOI occurs by
    chance in ~1 % of 150 kB ciphertexts, a 4-byte marker in ~0.004 %)."""
    found = [m for m in (b"\xff\xd8\xff", b"\x89PNG") if blob.startswith(m)]
    return found + [m for m in (b"JFIF", b"Exif") if m in blob]


def test_photos_at_rest_are_encrypted_and_rotation_keeps_them(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", KEY1)
    settings = dataclasses.replace(make_settings(data_dir), encryption_key=KEY1)
    repo = open_repository(settings, passwords=FAST)
    aest_u = repo.create_user(SYSTEM_ACTOR, "erin.aesth", "correct horse battery", "aesthetician")
    aest = repo.authenticate("erin.aesth", "correct horse battery")
    assert aest.user_id == aest_u.id
    client = repo.create_client(aest, name="Enc Client")
    from vein_tracker.storage import Screening

    repo.record_screening(aest, client.id, Screening())
    repo.record_consent(aest, client.id, kind="treatment_photography")
    area = repo.create_area(aest, client.id, side="left", view="anterior", region="calf")
    visit = repo.create_visit(aest, client.id)
    originals = {}
    for seed in range(3):
        data = _jpeg_with_exif(40 + seed, "private description")
        originals[repo.add_photo(aest, area.id, visit.id, data).id] = data
    repo.close()
    store_blobs = [
        p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("vein_tracker.db")
    ]
    assert len(store_blobs) >= 3
    windows = [d[i : i + 32] for d in originals.values() for i in range(0, len(d) - 32, 4096)]
    for blob in store_blobs:
        assert _plain_markers(blob) == []
        assert b"private description" not in blob
        assert not any(w in blob for w in windows)  # no plaintext run of the photos
    # Rotation: the new key first, the old one second; rekey; then the new key alone.
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", f"{KEY2},{KEY1}")
    assert main(["rekey"]) == 0
    assert "Re-encrypted 3 files; 0 left" in capsys.readouterr().out
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", KEY2)
    repo = open_repository(dataclasses.replace(settings, encryption_key=KEY2), passwords=FAST)
    try:
        for pid, data in originals.items():
            assert repo.get_photo_bytes(aest, pid) == data
    finally:
        repo.close()
    assert main(["fsck", "--grace-minutes", "0"]) == 0
    # The old key alone no longer opens anything.
    old = open_repository(dataclasses.replace(settings, encryption_key=KEY1), passwords=FAST)
    try:
        from vein_tracker.errors import StorageError

        with pytest.raises(StorageError):
            old.get_photo_bytes(aest, next(iter(originals)))
    finally:
        old.close()
