"""Batch re-analysis: stale pairs re-run and stored next to the old versions, resume, executors.

A small clinic is seeded through the real repository (built once by the clinic factory of
tests/clinic_util.py, a copy per test): one client, three treatment areas, each with a
baseline and a follow-up phantom photo (600 × 800 px, from ``vein_tracker.synthetic``)
and an analysis stored by an older algorithm ("0.9.0").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.clinic_util import ClinicFactory, open_test_repo
from vein_tracker import ALGORITHM_VERSION, services, synthetic
from vein_tracker.cli import main
from vein_tracker.config import get_settings
from vein_tracker.io import encode_image
from vein_tracker.measure import compare
from vein_tracker.reanalyze import (
    PairOutcome,
    PairTask,
    close_worker_repositories,
    find_stale,
    reanalyze,
    reanalyze_pair,
)
from vein_tracker.storage import SYSTEM_ACTOR, Repository, Screening

SHAPE = (600, 800)
OLD = "0.9.0"
PARAMS = services.AnalysisParams().to_dict()
FIRST_VISIT = date(2026, 1, 5)


@dataclass(frozen=True)
class Pair:
    area_id: int
    baseline_id: int
    followup_id: int
    followup_date: date
    old_analysis_id: int
    baseline_jpeg: bytes
    followup_jpeg: bytes


@functools.cache
def _jpegs(seed: int) -> tuple[bytes, bytes]:
    pair = synthetic.make_pair(
        seed, shape=SHAPE, capture=synthetic.random_capture(seed, blur_sigma=(0.0, 0.3))
    )
    return encode_image(pair.baseline.rgb, quality=92), encode_image(pair.followup.rgb, quality=92)


def _open() -> Repository:
    return open_test_repo(get_settings())


def seed_pairs(
    repo: Repository, photos: list[tuple[bytes, bytes]], *, blank_followup: bool = False
) -> list[Pair]:
    """Seed one client with one area per photo pair and an old-version analysis of each."""
    client = repo.create_client(SYSTEM_ACTOR, name="Rea Nalyse", screening=Screening())
    repo.record_consent(
        SYSTEM_ACTOR, client.id, kind="treatment_photography", signed_at=FIRST_VISIT
    )
    pairs = []
    for i, (b_jpeg, f_jpeg) in enumerate(photos):
        area = repo.create_area(
            SYSTEM_ACTOR, client.id, side=("left", "right")[i % 2], view="posterior",
            region=("calf", "thigh", "knee")[i % 3],
        )  # fmt: skip
        follow_day = FIRST_VISIT + timedelta(days=21 + 7 * i)
        v1 = repo.create_visit(
            SYSTEM_ACTOR, client.id, visit_date=FIRST_VISIT + timedelta(days=i),
            sclerosant="sodium_tetradecyl_sulfate", area_ids=(area.id,),
        )  # fmt: skip
        v2 = repo.create_visit(
            SYSTEM_ACTOR, client.id, visit_date=follow_day,
            sclerosant="sodium_tetradecyl_sulfate", area_ids=(area.id,),
        )  # fmt: skip
        if blank_followup and i == len(photos) - 1:
            f_jpeg = encode_image(np.full((*SHAPE, 3), (200, 160, 140), np.uint8))
        b = repo.add_photo(SYSTEM_ACTOR, area.id, v1.id, b_jpeg, filename="b.jpg")
        f = repo.add_photo(SYSTEM_ACTOR, area.id, v2.id, f_jpeg, filename="f.jpg")
        old = repo.save_analysis(
            SYSTEM_ACTOR,
            b.id,
            f.id,
            params=PARAMS,
            result={"improvement_pct": 10.0 + i, "meets_target": False, "by": OLD},
            masks={"region": np.ones((4, 4), bool)},
            algorithm_version=OLD,
        )
        pairs.append(Pair(area.id, b.id, f.id, follow_day, old.id, b_jpeg, f_jpeg))
    return pairs


def build_three_areas(repo: Repository) -> list[Pair]:
    """The batch of the tests: three areas, photos of phantoms 3, 4 and 5."""
    return seed_pairs(repo, [_jpegs(seed) for seed in (3, 4, 5)])


def build_blank_followup(repo: Repository) -> list[Pair]:
    """Two areas with phantom 3's photos; the second follow-up is a blank skin-coloured frame."""
    return seed_pairs(repo, [_jpegs(3), _jpegs(3)], blank_followup=True)


def stored_pairs(
    factory: ClinicFactory, build: Callable[[Repository], list[Pair]], data_dir: Path
) -> list[Pair]:
    """A copy of ``build``'s clinic in ``data_dir``, its pairs. The copy's repository is
    closed at once: the batch and these tests open their own from the settings."""
    copy = factory.fresh_built(build, data_dir)
    copy.repo.close()
    return copy.records


@pytest.fixture
def old_pairs(clinic_factory: ClinicFactory, data_dir: Path) -> Iterator[list[Pair]]:
    """A copy of :func:`build_three_areas`' clinic in ``data_dir``: its pairs, in area order."""
    services.clear_analysis_cache()
    yield stored_pairs(clinic_factory, build_three_areas, data_dir)
    close_worker_repositories()


def _analyses(pair: Pair) -> dict[str, dict[str, object]]:
    """Every stored version of one pair, by algorithm version."""
    repo = _open()
    try:
        rows = repo.list_analyses(SYSTEM_ACTOR, pair.area_id, latest_only=False)
        return {
            a.algorithm_version: {
                "id": a.id,
                "params_hash": a.params_hash,
                "result": a.result,
                "improvement_pct": a.improvement_pct,
                "masks": set(a.masks),
                "created_at": a.created_at,
            }
            for a in rows
            if (a.baseline_photo_id, a.followup_photo_id) == (pair.baseline_id, pair.followup_id)
        }
    finally:
        repo.close()


def _stale() -> list[PairTask]:
    repo = _open()
    try:
        return find_stale(repo)
    finally:
        repo.close()


def test_old_algorithm_version_precedes_current() -> None:
    from vein_tracker.storage import version_key

    assert version_key(OLD) < version_key(ALGORITHM_VERSION)


def test_reanalysis_stores_new_version_next_to_old_and_resumes(old_pairs: list[Pair]) -> None:
    stale = _stale()
    assert [t.analysis_id for t in stale] == [p.old_analysis_id for p in old_pairs]
    assert all(t.old_version == OLD and t.target_version == ALGORITHM_VERSION for t in stale)

    seen: list[PairOutcome] = []

    def stop_after_first(outcome: PairOutcome) -> None:
        seen.append(outcome)
        raise KeyboardInterrupt

    first = reanalyze(executor="serial", show_progress=False, on_result=stop_after_first)
    assert first.interrupted
    assert first.planned == 3
    assert first.done == 1
    assert [o.task.analysis_id for o in first.outcomes] == [old_pairs[0].old_analysis_id]
    assert [t.analysis_id for t in _stale()] == [p.old_analysis_id for p in old_pairs[1:]]
    done_before = _analyses(old_pairs[0])[ALGORITHM_VERSION]

    second = reanalyze(executor="serial", show_progress=False)
    assert not second.interrupted
    assert (second.planned, second.done, second.skipped, second.failed) == (2, 2, 0, 0)
    assert [o.task.analysis_id for o in second.outcomes] == [
        p.old_analysis_id for p in old_pairs[1:]
    ]
    # The pair finished before the interrupt was not recomputed.
    assert _analyses(old_pairs[0])[ALGORITHM_VERSION] == done_before

    for i, pair in enumerate(old_pairs):
        versions = _analyses(pair)
        assert set(versions) == {OLD, ALGORITHM_VERSION}
        old, new = versions[OLD], versions[ALGORITHM_VERSION]
        assert old["id"] == pair.old_analysis_id
        assert old["result"] == {"improvement_pct": 10.0 + i, "meets_target": False, "by": OLD}
        assert new["params_hash"] == old["params_hash"]
        assert new["result"]["algorithm_version"] == ALGORITHM_VERSION  # type: ignore[index]
        masks = new["masks"]
        assert isinstance(masks, set)
        assert {"change_map", "baseline_labels", "followup_labels", "region"} <= masks

    assert _stale() == []
    third = reanalyze(executor="serial", show_progress=False)
    assert (third.planned, third.done) == (0, 0)


@pytest.mark.slow
def test_reanalysed_result_is_the_pipeline_result(old_pairs: list[Pair]) -> None:
    pair = old_pairs[0]
    summary = reanalyze(executor="serial", show_progress=False, area_id=pair.area_id)
    assert (summary.planned, summary.done) == (1, 1)
    stored = _analyses(pair)[ALGORITHM_VERSION]
    direct = compare(
        pair.baseline_jpeg, pair.followup_jpeg, sensitivity=PARAMS["sensitivity"]
    ).to_dict()
    result = stored["result"]
    assert isinstance(result, dict)
    for key in ("improvement_pct", "improvement_band_pct", "grade", "veins", "registration"):
        assert result[key] == json.loads(json.dumps(direct[key])), key
    # The other areas were left alone.
    assert [t.analysis_id for t in _stale()] == [p.old_analysis_id for p in old_pairs[1:]]


def test_filters_select_pairs(old_pairs: list[Pair]) -> None:
    repo = _open()
    try:
        by_area = find_stale(repo, area_id=old_pairs[1].area_id)
        since = find_stale(repo, since=old_pairs[1].followup_date)
    finally:
        repo.close()
    assert [t.analysis_id for t in by_area] == [old_pairs[1].old_analysis_id]
    assert [t.analysis_id for t in since] == [p.old_analysis_id for p in old_pairs[1:]]
    later = old_pairs[-1].followup_date + timedelta(days=1)
    summary = reanalyze(executor="serial", show_progress=False, since=later)
    assert (summary.planned, summary.done) == (0, 0)


def test_pair_already_current_is_skipped(old_pairs: list[Pair]) -> None:
    task = _stale()[0]
    settings = get_settings()
    done = reanalyze_pair(task, settings)
    again = reanalyze_pair(task, settings)
    assert done.status == "done"
    assert again.status == "skipped"
    assert again.analysis_id == done.analysis_id
    assert again.improvement_pct == done.improvement_pct


def test_unscorable_pair_fails_with_reason_and_stays_stale(
    clinic_factory: ClinicFactory, data_dir: Path
) -> None:
    pairs = stored_pairs(clinic_factory, build_blank_followup, data_dir)
    try:
        summary = reanalyze(executor="serial", show_progress=False, area_id=pairs[1].area_id)
    finally:
        close_worker_repositories()
    assert (summary.planned, summary.done, summary.failed) == (1, 0, 1)
    error = summary.outcomes[0].error
    assert error
    assert set(_analyses(pairs[1])) == {OLD}
    assert [t.analysis_id for t in _stale()] == [p.old_analysis_id for p in pairs]


def test_task_from_other_algorithm_or_unknown_params_fails(old_pairs: list[Pair]) -> None:
    task = _stale()[0]
    other = replace(task, target_version="99.0.0")
    outcome = reanalyze_pair(other)
    assert outcome.status == "failed"
    assert outcome.error
    assert "99.0.0" in outcome.error
    odd = replace(task, params={**PARAMS, "denoise": True})
    outcome = reanalyze_pair(odd)
    assert outcome.status == "failed"
    assert outcome.error
    assert "denoise" in outcome.error
    assert set(_analyses(old_pairs[0])) == {OLD}
    assert json.loads(json.dumps(outcome.to_dict()))["status"] == "failed"


def test_worker_on_other_records_refuses(old_pairs: list[Pair], tmp_path: Path) -> None:
    task = _stale()[0]
    elsewhere = tmp_path / "elsewhere"
    settings = replace(
        get_settings(), data_dir=elsewhere, db_url=f"sqlite:///{elsewhere / 'vein_tracker.db'}"
    )
    outcome = reanalyze_pair(task, settings)
    assert outcome.status == "failed"
    assert outcome.error
    assert "does not see the clinic database" in outcome.error
    assert not elsewhere.exists()  # no empty database was created
    unknown = reanalyze_pair(replace(task, analysis_id=task.analysis_id + 1000))
    assert unknown.status == "failed"
    assert unknown.error
    assert f"analysis {task.analysis_id + 1000}" in unknown.error
    assert set(_analyses(old_pairs[0])) == {OLD}


def test_worker_on_another_photo_store_refuses(old_pairs: list[Pair]) -> None:
    task = _stale()[0]
    assert task.store_url is None  # the batch's photos are in the local store
    elsewhere = replace(get_settings(), store_url="s3://other-clinic/photos")
    outcome = reanalyze_pair(task, elsewhere)
    assert outcome.status == "failed"
    assert outcome.error
    assert "VEIN_TRACKER_STORE_URL" in outcome.error
    assert "s3://other-clinic/photos" in outcome.error
    s3_task = replace(task, store_url="s3://clinic-photos/site-a")
    outcome = reanalyze_pair(s3_task)  # this worker: the local store
    assert outcome.status == "failed"
    assert outcome.error
    assert "s3://clinic-photos/site-a" in outcome.error
    assert set(_analyses(old_pairs[0])) == {OLD}


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"executor": "threads"}, "executor"),
        ({"workers": 0}, "workers"),
        ({"limit": 0}, "limit"),
        ({"executor": "dask"}, "scheduler"),
    ],
)
def test_bad_arguments_raise(data_dir: Path, kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        reanalyze(show_progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ["reanalyze", "--since", "last week"],
        ["reanalyze", "--workers", "0"],
        ["reanalyze", "--area", "x"],
        ["reanalyze", "--executor", "spark"],
        ["reanalyze", "--executor", "dask"],
        ["reanalyze", "--scheduler", "tcp://127.0.0.1:1"],
    ],
)
def test_cli_bad_arguments_exit_2(data_dir: Path, argv: list[str]) -> None:
    assert main(argv) == 2


def test_cli_nothing_stale(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reanalyze", "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["planned"], out["done"], out["algorithm_version"]) == (0, 0, ALGORITHM_VERSION)


@pytest.mark.slow
def test_cli_local_pool_two_workers(
    old_pairs: list[Pair], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reanalyze", "--workers", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["executor"], out["workers"]) == ("local", 2)
    assert (out["planned"], out["done"], out["failed"]) == (3, 3, 0)
    for pair in old_pairs:
        assert set(_analyses(pair)) == {OLD, ALGORITHM_VERSION}
    assert _stale() == []
    # Same numbers as the in-process pipeline on the same photos.
    direct = compare(old_pairs[2].baseline_jpeg, old_pairs[2].followup_jpeg).to_dict()
    result = _analyses(old_pairs[2])[ALGORITHM_VERSION]["result"]
    assert isinstance(result, dict)
    assert result["improvement_pct"] == direct["improvement_pct"]
    assert result["improvement_band_pct"] == list(direct["improvement_band_pct"])
    audit = _open()
    try:
        saves = audit.list_audit(SYSTEM_ACTOR, action="analysis_save")
    finally:
        audit.close()
    assert sum(e.username == "system" for e in saves) >= 6


@pytest.mark.slow
def test_dask_executor_on_local_cluster(old_pairs: list[Pair]) -> None:
    from dask.distributed import LocalCluster

    # dashboard_address=":0": a free port (None still binds the scheduler's HTTP server to 8787,
    # which another run on the machine may hold).
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        first = reanalyze(
            executor="dask", scheduler=cluster.scheduler_address, limit=2, show_progress=False
        )
        assert (first.executor, first.workers) == ("dask", 2)
        assert (first.planned, first.done, first.failed) == (2, 2, 0)
        assert [t.analysis_id for t in _stale()] == [old_pairs[2].old_analysis_id]
        rest = reanalyze(executor="dask", scheduler=cluster.scheduler_address, show_progress=False)
    assert (rest.planned, rest.done) == (1, 1)
    for pair in old_pairs:
        assert set(_analyses(pair)) == {OLD, ALGORITHM_VERSION}
    assert _stale() == []
