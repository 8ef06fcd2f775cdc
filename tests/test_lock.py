"""The environment is exactly the lock file: every machine runs the same program.

``make install`` syncs the venv to ``requirements.lock`` (hashes required); these tests
read the lock independently of the installer and compare it with what is importable.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
UV_LOCK = ROOT / "requirements-uv.lock"
# A venv's own seed packages, which the lock does not (and need not) pin.
SEED = {"pip", "setuptools", "wheel"}


def _pins(path: Path) -> dict[str, Requirement]:
    """Each ``name==version ; marker`` entry of a hashed requirements file."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pins: dict[str, Requirement] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(re.sub(r"\s--hash=\S+", "", line).strip())
        if req.marker is None or req.marker.evaluate(default_environment()):
            pins[canonicalize_name(req.name)] = req
    return pins


def _version(req: Requirement) -> str:
    (spec,) = tuple(req.specifier)
    assert spec.operator == "==", f"{req} is not an exact pin"
    return spec.version


def _installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


pytestmark = pytest.mark.skipif(
    sys.prefix == sys.base_prefix, reason="only meaningful inside the project's venv"
)


def test_every_lock_entry_is_an_exact_hashed_pin() -> None:
    text = LOCK.read_text(encoding="utf-8")
    entries = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==\S+", text, flags=re.M)
    assert len(entries) > 50
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split()[0] for b in blocks if b.strip() and "--hash=sha256:" not in b]
    assert unhashed == []


def test_installed_packages_are_exactly_the_locks() -> None:
    pins = _pins(LOCK)
    installed = _installed()
    project = canonicalize_name("vein-tracker")
    extra = sorted(set(installed) - set(pins) - SEED - {project})
    missing = sorted(set(pins) - set(installed))
    wrong = sorted(
        f"{name} {installed[name]} (lock {_version(req)})"
        for name, req in pins.items()
        if name in installed and installed[name] != _version(req)
    )
    assert (extra, missing, wrong) == ([], [], [])


def test_bootstrap_uv_is_the_locked_uv() -> None:
    assert _version(_pins(UV_LOCK)["uv"]) == _version(_pins(LOCK)["uv"])
