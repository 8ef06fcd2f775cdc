"""Fixtures of the app tests: a seeded clinic in a temporary data folder.

``seed_clinic`` builds, through the real repository, an admin, an aesthetician, a
marketing account and two clients (each with a client account), one treatment area
per client with a baseline and a follow-up photo from the synthetic phantoms, and a
saved analysis for the first client.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The seeding helpers are shared by this conftest and the test modules of this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vt_ui_seed import Seeded, seed_temp_clinic  # noqa: E402

from tests.conftest import use_data_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"


@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A seeded clinic, shared by the tests of one module (they only add records)."""
    return seed_temp_clinic(tmp_path_factory, "clinic")


@pytest.fixture
def seeded_clinic(seeded_dir: Seeded, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The module's seeded clinic, selected through ``VEIN_TRACKER_DATA`` for this test.

    Not the records tests' ``clinic`` (tests/clinic_util.py): a clinic with real analyses of
    synthetic phantoms, shared by the tests of a module (and, in the browser tests, by a
    running app), so it has its own name and type.
    """
    use_data_dir(monkeypatch, seeded_dir.data_dir)
    return seeded_dir
