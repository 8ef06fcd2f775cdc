"""Hostile files and file names through every entry point except ``load_photo`` itself.

``load_photo`` is fuzzed in ``test_fuzz_io.py``; its hostile corpus is reused here (loaded
from that file, not copied) against the app's upload path (``services.store_upload`` and
``Repository.add_photo``) and against each CLI command that reads or writes a file. Every
case must end in a clean, one-line refusal: ``PhotoError`` in the library, exit status 2
and one ``vein-tracker: ...`` line on stderr from the CLI. Nothing may be written outside
the data folder, and a refused upload leaves no row and no file.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sec_util import ROOT, photo_bytes, row_counts, store_files

from vein_tracker import services
from vein_tracker.cli import main
from vein_tracker.errors import PhotoError

#: Hypothesis examples per fuzzed entry point (two entry points below).
UPLOAD_EXAMPLES = 150
CLI_EXAMPLES = 150


def _load_fuzz_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vt_fuzz_io_corpus", Path(__file__).with_name("test_fuzz_io.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOSTILE: dict[str, bytes] = dict(_load_fuzz_corpus().HOSTILE)
HOSTILE_NAMES = [
    "../../etc/passwd.jpg",
    "..\\..\\windows\\win.ini.jpg",
    "/etc/cron.d/evil.jpg",
    "a\x00b.jpg",
    "x" * 300 + ".jpg",
    "<script>alert(1)</script>.jpg",
    "",
]
EXTENSIONS = [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".webp", ".gif"]


def _good_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (400, 500, 3), dtype=np.uint8)).save(path)
    return path


def _outside_snapshot(root: Path, data_dir: Path) -> set[Path]:
    return {p for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}


# ------------------------------------------------------------------ upload path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_upload_is_refused_and_leaves_nothing(
    clinic: SimpleNamespace, tmp_path: Path, name: str
) -> None:
    r, c = clinic.repo, clinic
    rows, files = row_counts(r.engine), store_files(c.data_dir)
    outside = _outside_snapshot(tmp_path, c.data_dir)
    for filename in (name, *HOSTILE_NAMES):
        with pytest.raises(PhotoError) as info:
            services.store_upload(
                r, c.aest, visit_id=c.v2.id, area_id=c.area_a.id, data=HOSTILE[name],
                filename=filename,
            )  # fmt: skip
        assert str(info.value)
        assert "\n" not in str(info.value)
        with pytest.raises(PhotoError):
            r.add_photo(c.aest, c.area_a.id, c.v2.id, HOSTILE[name], filename=filename)
    assert row_counts(r.engine) == rows
    assert store_files(c.data_dir) == files
    assert _outside_snapshot(tmp_path, c.data_dir) == outside
    assert r.integrity_check() == []


@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_hostile_name_on_a_good_photo_is_kept_as_text_only(
    clinic: SimpleNamespace, tmp_path: Path, filename: str
) -> None:
    r, c = clinic.repo, clinic
    outside = _outside_snapshot(tmp_path, c.data_dir)
    data = photo_bytes(900 + len(filename))
    stored = services.store_upload(
        r, c.aest, visit_id=c.v2.id, area_id=c.area_a.id, data=data, filename=filename
    )
    name = stored.photo.original_filename
    if name is not None:
        assert "/" not in name
        assert "\\" not in name
        assert "\x00" not in name
        assert len(name) <= 255
    assert r.get_photo_bytes(c.aest, stored.photo.id) == data
    # The bytes live in the store under their hash, nowhere else.
    assert _outside_snapshot(tmp_path, c.data_dir) == outside
    assert not Path("/etc/cron.d/evil.jpg").exists()


@settings(
    max_examples=UPLOAD_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.sampled_from(sorted(HOSTILE)).flatmap(
            lambda k: st.integers(0, len(HOSTILE[k])).map(lambda n, k=k: HOSTILE[k][:n])
        ),
    ),
    name=st.text(max_size=320),
    ext=st.sampled_from(EXTENSIONS),
)
def test_fuzz_upload_path(clinic: SimpleNamespace, data: bytes, name: str, ext: str) -> None:
    r, c = clinic.repo, clinic
    rows, files = row_counts(r.engine), store_files(c.data_dir)
    try:
        stored = services.store_upload(
            r, c.aest, visit_id=c.v2.id, area_id=c.area_a.id, data=data, filename=name + ext
        )
    except PhotoError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message
        assert row_counts(r.engine) == rows
        assert store_files(c.data_dir) == files
    else:  # a truncated file can still be a valid photo: then it is stored intact
        assert r.get_photo_bytes(c.aest, stored.photo.id) == data


# ------------------------------------------------------------------ CLI, in process


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("cli_files")
    hostile = {}
    for name, data in HOSTILE.items():
        p = d / name
        p.write_bytes(data)
        hostile[name] = p
    return SimpleNamespace(dir=d, good=_good_jpeg(d / "good.jpg"), hostile=hostile)


#: Command lines with one file slot ``{}``; ``G`` is a good photo.
PHOTO_SLOTS = {
    "segment": ["segment", "{}"],
    "segment_roi": ["segment", "G", "--roi", "{}"],
    "register_baseline": ["register", "{}", "G"],
    "register_followup": ["register", "G", "{}"],
    "register_roi": ["register", "G", "G", "--rigid", "--roi", "{}"],
    "analyze_baseline": ["analyze", "{}", "G"],
    "analyze_followup": ["analyze", "G", "{}"],
    "analyze_roi": ["analyze", "G", "G", "--roi", "{}"],
}

#: Output file slots: a bad output name is refused before any work is done.
OUTPUT_SLOTS = {
    "segment_mask_out": ["segment", "G", "--mask-out", "{}"],
    "segment_overlay": ["segment", "G", "--overlay", "{}"],
    "register_out": ["register", "G", "G", "--rigid", "--out", "{}"],
    "analyze_overlay": ["analyze", "G", "G", "--overlay", "{}"],
    "analyze_change_map": ["analyze", "G", "G", "--change-map", "{}"],
}


def _argv(template: list[str], value: str, files: SimpleNamespace) -> list[str]:
    return [value if a == "{}" else str(files.good) if a == "G" else a for a in template]


def _check_refusal(rc: int, err: str, *, code: int = 2) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == code, err
    assert len(lines) == 1, err
    assert lines[0].startswith("vein-tracker: ")


@pytest.mark.parametrize("slot", sorted(PHOTO_SLOTS))
def test_cli_refuses_every_hostile_file(
    files: SimpleNamespace, slot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, path in files.hostile.items():
        rc = main(_argv(PHOTO_SLOTS[slot], str(path), files))
        out, err = capsys.readouterr()
        _check_refusal(rc, err)
        assert out == "", (name, out)


@pytest.mark.parametrize("slot", sorted(PHOTO_SLOTS))
@pytest.mark.parametrize("bad", ["../../etc/passwd.jpg", "a\x00b.jpg", "x" * 300 + ".png", "DIR"])
def test_cli_refuses_hostile_input_names(
    files: SimpleNamespace, slot: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value = str(files.dir) if bad == "DIR" else str(files.dir / bad)
    rc = main(_argv(PHOTO_SLOTS[slot], value, files))
    _check_refusal(rc, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("slot", "bad"),
    [(slot, bad) for slot in sorted(OUTPUT_SLOTS) for bad in ("a\x00b.png", "missing-folder/x.png")]
    # A name too long for the file system is only found when writing, after the work.
    + [("segment_mask_out", "x" * 300 + ".png")],
)
def test_cli_refuses_hostile_output_names(
    files: SimpleNamespace, slot: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = set(files.dir.rglob("*"))
    rc = main(_argv(OUTPUT_SLOTS[slot], str(files.dir / bad), files))
    _check_refusal(rc, capsys.readouterr().err)
    assert set(files.dir.rglob("*")) == before


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_restore_refuses_hostile_archives(
    files: SimpleNamespace, data_dir: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = data_dir / "restored"
    rc = main(["restore", str(files.hostile[name]), "--data-dir", str(target)])
    # A file that is not a backup archive is a storage refusal (exit 5, the documented
    # contract of restore), with one line and nothing restored.
    _check_refusal(rc, capsys.readouterr().err, code=5)
    assert not target.exists() or not any(target.iterdir())


@pytest.mark.parametrize("bad", ["a\x00b.tar", "../../etc/passwd.tar", "DIR"])
def test_restore_refuses_hostile_archive_names(
    files: SimpleNamespace, data_dir: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value = str(files.dir) if bad == "DIR" else str(files.dir / bad)
    target = data_dir / "restored"
    rc = main(["restore", value, "--data-dir", str(target)])
    # NUL can be in no file name: the CLI refuses it as bad input before any command runs.
    _check_refusal(rc, capsys.readouterr().err, code=2 if "\x00" in bad else 5)
    assert not target.exists() or not any(target.iterdir())


@settings(
    max_examples=CLI_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=4096), ext=st.sampled_from(EXTENSIONS), roi=st.booleans())
def test_fuzz_cli_segment(
    files: SimpleNamespace, capsys: pytest.CaptureFixture[str], data: bytes, ext: str, roi: bool
) -> None:
    path = files.dir / f"fuzz{ext}"
    path.write_bytes(data)
    argv = ["segment", str(files.good), "--roi", str(path)] if roi else ["segment", str(path)]
    rc = main(argv)
    _check_refusal(rc, capsys.readouterr().err)


# ------------------------------------------------------------------ CLI, real processes


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "H:bomb.png"],
        pytest.param(["analyze", "G", "H:pdf_renamed.jpg"], marks=pytest.mark.slow),
        pytest.param(["register", "G", "G", "--roi", "H:truncated.png"], marks=pytest.mark.slow),
        ["segment", "T:../../etc/passwd.jpg"],
    ],
    ids=["bomb", "pdf", "roi", "traversal"],
)
def test_cli_subprocess_refusal(files: SimpleNamespace, data_dir: Path, argv: list[str]) -> None:
    def resolve(a: str) -> str:
        if a == "G":
            return str(files.good)
        if a.startswith("H:"):
            return str(files.hostile[a[2:]])
        if a.startswith("T:"):
            return str(files.dir / a[2:])
        return a

    env = {**os.environ, "VEIN_TRACKER_DATA": str(data_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "vein_tracker", *map(resolve, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    _check_refusal(proc.returncode, proc.stderr)
    assert proc.stdout == ""
