"""Fixtures of the security suites (helpers in ``sec_util``).

``clinic`` is a fresh small clinic with every role (see ``tests.clinic_util.build_clinic``)
in an isolated SQLite data folder (``data_dir`` of tests/conftest.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
# Helpers of this folder, and the seeded app clinic of tests/ui (reused, not copied).
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "ui"))

from sec_util import FAST, build_clinic, make_settings  # noqa: E402

from vein_tracker.storage import open_repository  # noqa: E402


@pytest.fixture
def clinic(data_dir: Path) -> Iterator[SimpleNamespace]:
    """A fresh clinic (see :func:`build_clinic`) in ``data_dir``; ``clinic.repo`` is open."""
    repo = open_repository(make_settings(data_dir), passwords=FAST)
    try:
        ns = build_clinic(repo)
        yield SimpleNamespace(**vars(ns), repo=repo, data_dir=data_dir)
    finally:
        repo.close()
