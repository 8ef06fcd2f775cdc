"""The clinic on an S3-compatible photo store: seed-demo, upload, backup, restore, fsck.

With ``VEIN_TRACKER_STORE_URL`` pointing at moto's server (real HTTP on 127.0.0.1), the
records commands and the app's upload path work as on the local store, and no photo
byte (plaintext or encrypted, photo or analysis mask) is ever written to the data
folder: every file under it is searched for every stored object's bytes. Faults on the
way (the endpoint cut during an upload, a missing bucket, a damaged archive) leave
nothing behind and end in one line with exit status 5.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.s3_server import CutProxy, MotoServer, list_keys, use_s3
from vein_tracker import services
from vein_tracker.cli import main
from vein_tracker.errors import StorageError
from vein_tracker.storage import SYSTEM_ACTOR, accounts, open_repository
from vein_tracker.storage.photostore import sha256_hex
from vein_tracker.storage.s3store import S3PhotoStore

from .conftest import FAST

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"
AREA = "c01_left-calf-posterior"
KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds its own repository: give it the test-only cheap argon2 parameters."""
    monkeypatch.setattr(accounts, "default_hasher", accounts.fast_test_hasher)


@pytest.fixture
def server(s3_server: MotoServer) -> MotoServer:
    """The storage suite's moto server (conftest)."""
    return s3_server


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Sessions 1 and 2 of one shipped demo area (a pair the analysis scores)."""
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    keep = [p for p in manifest["photos"] if p["file"] in (f"{AREA}_s1.jpg", f"{AREA}_s2.jpg")]
    assert len(keep) == 2
    d = tmp_path / "images"
    d.mkdir()
    for p in keep:
        shutil.copyfile(SAMPLES / p["file"], d / p["file"])
    (d / "manifest.json").write_text(json.dumps({**manifest, "photos": keep}))
    return d


@pytest.fixture
def s3(
    backend: str, data_dir: Path, server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    """An empty bucket selected through the environment, the photos encrypted at rest."""
    bucket = server.new_bucket()
    url = use_s3(monkeypatch, server, bucket, "clinic")
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", KEY)
    return SimpleNamespace(server=server, bucket=bucket, url=url, backend=backend)


def _needles(blobs: list[bytes]) -> list[bytes]:
    """Distinctive slices of each blob (from its middle: past any common file header)."""
    return [b[len(b) // 2 : len(b) // 2 + 64] for b in blobs if len(b) >= 256]


def _files_holding(root: Path, needles: list[bytes]) -> list[Path]:
    """Files under ``root`` that contain any of ``needles``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if any(n in data for n in needles):
            found.append(path)
    return found


def _stored(s3: SimpleNamespace, bucket: str | None = None) -> dict[str, bytes]:
    return list_keys(s3.server, bucket or s3.bucket, "clinic/")


def test_records_on_s3_write_no_photo_byte_to_the_data_folder(
    s3: SimpleNamespace,
    data_dir: Path,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # seed-demo: photos, analyses and their masks go to the bucket.
    assert main(["seed-demo", "--images", str(images)]) == 0
    assert "1 analyses" in capsys.readouterr().out
    seeded = _stored(s3)
    assert len(seeded) >= 3  # two photos and the analysis's masks
    assert all(blob.startswith(b"VTE1") for blob in seeded.values())  # encrypted before upload

    # The app's upload path (services.store_upload, through the repository).
    new_photo = (SAMPLES / f"{AREA}_s3.jpg").read_bytes()
    repo = open_repository(passwords=FAST)
    try:
        [area] = repo.list_areas(SYSTEM_ACTOR, repo.search_clients(SYSTEM_ACTOR)[0].id)
        visits = repo.list_visits(SYSTEM_ACTOR, area.client_id)
        v3 = repo.create_visit(
            SYSTEM_ACTOR,
            area.client_id,
            visit_date=max(v.visit_date for v in visits) + timedelta(weeks=3),
            area_ids=(area.id,),
        )
        stored = services.store_upload(
            repo, SYSTEM_ACTOR, visit_id=v3.id, area_id=area.id, data=new_photo, filename="s3.jpg"
        )
        assert repo.get_photo_bytes(SYSTEM_ACTOR, stored.photo.id) == new_photo
        assert isinstance(repo.store, S3PhotoStore)
    finally:
        repo.close()
    uploaded = _stored(s3)
    sha = sha256_hex(new_photo)
    assert f"clinic/objects/{sha[:2]}/{sha[2:4]}/{sha}" in set(uploaded) - set(seeded)

    # fsck reads every object back from the bucket.
    assert main(["fsck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["store"], report["orphans"]) == (True, s3.url, [])
    assert report["checked"] == len(uploaded)

    # backup: the archive holds the objects as stored (encrypted).
    archive = tmp_path / "backups" / "clinic.tar"
    assert main(["backup", str(archive), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == len(uploaded)
    with tarfile.open(archive) as tar:
        archived = {
            m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("photos/")
        }
    assert sorted(archived.values()) == sorted(uploaded.values())

    # restore into a new data folder and a new, empty bucket.
    new_bucket = s3.server.new_bucket()
    restored_url = use_s3(monkeypatch, s3.server, new_bucket, "clinic")
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    target = tmp_path / "restored"
    assert main(["restore", str(archive), "--data-dir", str(target)]) == 0
    assert f"all {len(uploaded)} verified" in capsys.readouterr().out
    assert _stored(s3, new_bucket) == uploaded  # the same objects, byte for byte
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(target))
    assert main(["fsck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["store"], report["checked"]) == (True, restored_url, len(uploaded))

    # Not one photo or mask byte, plaintext or encrypted, in either data folder.
    plain: list[bytes] = [new_photo, *(p.read_bytes() for p in images.glob("*.jpg"))]
    repo = open_repository(passwords=FAST)
    try:
        plain += [repo.store.get(h) for h in repo.store.iter_hashes()]
    finally:
        repo.close()
    needles = _needles(plain + list(uploaded.values()))
    assert len(needles) == len(plain) + len(uploaded)
    assert _files_holding(data_dir, needles) == []
    assert _files_holding(target, needles) == []
    assert _files_holding(archive.parent, needles) == [archive]  # the check does see bytes


def test_restore_into_the_bucket_that_holds_the_photos(
    s3: SimpleNamespace,
    images: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database is lost, the bucket is not: objects there intact are kept as they are."""
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    assert main(["backup", str(tmp_path / "b.tar")]) == 0
    before = _stored(s3)
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "new")]) == 0
    assert "all 2 verified" in capsys.readouterr().out
    assert _stored(s3) == before


def test_damaged_archive_leaves_nothing_in_the_bucket(
    s3: SimpleNamespace, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    assert main(["backup", str(tmp_path / "b.tar")]) == 0
    # Damage the last photo of the archive: the ones before it are already in the bucket.
    with tarfile.open(tmp_path / "b.tar") as tin, tarfile.open(tmp_path / "bad.tar", "w") as tout:
        members = tin.getmembers()
        last = [m.name for m in members if m.name.startswith("photos/")][-1]
        for m in members:
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == last:
                data = data[:-1] + bytes([data[-1] ^ 1])
            tout.addfile(m, io.BytesIO(data))
    fresh = s3.server.new_bucket()
    use_s3(monkeypatch, s3.server, fresh, "clinic")
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    target = tmp_path / "restored"
    from vein_tracker.storage.backup import restore

    with pytest.raises(StorageError, match="checksum"):
        restore(tmp_path / "bad.tar", target)
    assert list(target.iterdir()) == []
    assert _stored(s3, fresh) == {}


def test_endpoint_cut_during_an_upload_stores_nothing(
    s3: SimpleNamespace, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    before = _stored(s3)
    photo = (SAMPLES / f"{AREA}_s4.jpg").read_bytes()
    # The endpoint goes away half way through the photo's body.
    proxy = CutProxy(int(s3.server.endpoint.rsplit(":", 1)[1]), cut_after=len(photo) // 2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    repo = open_repository(passwords=FAST)
    try:
        [area] = repo.list_areas(SYSTEM_ACTOR, repo.search_clients(SYSTEM_ACTOR)[0].id)
        [visit] = [
            v for v in repo.list_visits(SYSTEM_ACTOR, area.client_id) if v.session_number == 2
        ]
        n_photos = len(repo.list_photos(SYSTEM_ACTOR, area_id=area.id))
        with pytest.raises(StorageError, match="cannot be reached") as exc:
            repo.add_photo(SYSTEM_ACTOR, area.id, visit.id, photo, filename="s4.jpg")
        assert "\n" not in str(exc.value)
        assert proxy.sent >= len(photo) // 2
    finally:
        repo.close()
        proxy.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.server.endpoint)
    assert _stored(s3) == before  # no object, whole or partial
    repo = open_repository(passwords=FAST)
    try:
        assert len(repo.list_photos(SYSTEM_ACTOR, area_id=area.id)) == n_photos  # no row
        for p in repo.list_photos(SYSTEM_ACTOR, area_id=area.id):
            repo.get_photo_bytes(SYSTEM_ACTOR, p.id)  # everything before is intact
    finally:
        repo.close()


@pytest.mark.parametrize("fault", ["missing bucket", "endpoint down"])
def test_commands_fail_in_one_line_with_exit_5(
    s3: SimpleNamespace,
    images: Path,
    tmp_path: Path,
    fault: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    if fault == "missing bucket":
        monkeypatch.setenv("VEIN_TRACKER_STORE_URL", "s3://vt-no-such-bucket/clinic")
        expected = "does not exist"
    else:
        from tests.conftest import free_port

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        expected = "cannot be reached"
    capsys.readouterr()
    for argv in (["fsck"], ["backup", str(tmp_path / "b.tar")], ["rekey"]):
        assert main(argv) == 5, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert expected in err
    assert list(tmp_path.glob("b.tar*")) == []
