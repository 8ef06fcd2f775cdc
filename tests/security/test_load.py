"""A short run of ``benchmarks/load.py``: 20 concurrent app sessions for about a minute.

Asserts correctness only (no timing): every session signed in and completed rounds of
upload, analyse and view without an error, and nothing was lost or mixed between
sessions. The throughput and latency table is the benchmark's job.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sec_util import ROOT


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vt_bench_load", ROOT / "benchmarks" / "load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_twenty_sessions_lose_and_mix_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = _load_benchmark()
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(data))
    result = load.run(sessions=20, minutes=1.0, max_rounds=3, data_dir=data)
    print(
        f"\n20 sessions: {result.rounds} rounds, {result.uploads} uploads, "
        f"{result.analyses_saved} analyses saved, {result.refused} pairs refused, "
        f"{result.harness_retries} harness retries, "
        f"review p95 {result.review_p95_s:.1f} s, RSS {result.rss_mb:.0f} MB"
    )
    assert result.errors == ()
    assert result.rounds >= 20  # every session finished at least one round
    assert result.uploads >= 20
    assert result.lost == 0
    assert result.mixed == 0
