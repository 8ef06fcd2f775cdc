"""Fixtures of the security suites (helpers in ``sec_util``).

``clinic`` is tests/conftest.py's fresh clinic (the one clinic factory), here the
extended one: every role, a deactivated admin, both clients with analysed pairs (see
``tests.clinic_util.build_clinic``), on SQLite unless a test parametrizes ``backend``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Helpers of this folder, and the seeded app clinic of tests/ui (reused, not copied).
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "ui"))


@pytest.fixture
def clinic_extended() -> bool:
    """The security suites use the extended clinic."""
    return True
