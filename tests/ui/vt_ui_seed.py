"""A small seeded clinic for the app tests, built through the real repository.

Two clients (A and B), each with a client account, one treatment area, two visits
(three weeks apart), treatment-photography consent, and a baseline and follow-up
photo rendered by ``vein_tracker.synthetic`` (480 × 640 px). Client A also has a
marketing consent and a saved analysis (``services.analyze_pair`` + ``save_analysis``),
so the Progress page and the portal have a measured point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

# Re-exported: the app tests open the seeded clinic with it.
from tests.clinic_util import open_test_repo as open_test_repo
from vein_tracker import services, synthetic
from vein_tracker.io import encode_image
from vein_tracker.storage import SYSTEM_ACTOR, Actor, Repository, Screening

PASSWORD = "correct-horse-42"
SHAPE = (480, 640)
USERS = {
    "adam": "admin",
    "anna": "aesthetician",
    "mia": "marketing",
}


@dataclass(frozen=True)
class Seeded:
    """Where the seeded clinic lives and the ids the tests need."""

    data_dir: Path
    client_a: int
    client_b: int
    area_a: int
    area_b: int
    baseline_a: int
    followup_a: int
    baseline_b: int
    followup_b: int
    visit_a2: int
    improvement_a: float | None
    password: str = PASSWORD


def photo_jpeg(seed: int, *, followup: bool) -> bytes:
    """JPEG bytes of a phantom baseline (or follow-up) photo, SHAPE px."""
    pair = synthetic.make_pair(
        seed, shape=SHAPE, capture=synthetic.random_capture(seed, blur_sigma=(0.0, 0.3))
    )
    rendered = pair.followup if followup else pair.baseline
    return encode_image(rendered.rgb, quality=92)


def _client(
    repo: Repository, anna: Actor, name: str, username: str, seed: int
) -> tuple[int, int, int, int, int]:
    client = repo.create_client(
        anna, name=name, date_of_birth=date(1980, 5, 17), screening=Screening()
    )
    repo.create_user(SYSTEM_ACTOR, username, PASSWORD, "client", client_id=client.id)
    today = date.today()
    repo.record_consent(
        anna, client.id, kind="treatment_photography", signed_at=today - timedelta(days=60)
    )
    area = repo.create_area(anna, client.id, side="left", view="posterior", region="calf")
    v1, v2 = (
        repo.create_visit(
            anna,
            client.id,
            visit_date=today - timedelta(days=days_ago),
            sclerosant="sodium_tetradecyl_sulfate",
            area_ids=(area.id,),
        )
        for days_ago in (42, 21)
    )
    base = repo.add_photo(
        anna, area.id, v1.id, photo_jpeg(seed, followup=False), filename="baseline.jpg"
    )
    follow = repo.add_photo(
        anna, area.id, v2.id, photo_jpeg(seed, followup=True), filename="followup.jpg"
    )
    return client.id, area.id, base.id, follow.id, v2.id


def seed_temp_clinic(factory: pytest.TempPathFactory, name: str) -> Seeded:
    """The clinic of :func:`seed_clinic` in a new temporary folder (``<name>…/data``)."""
    data = factory.mktemp(name) / "data"
    data.mkdir()
    return seed_clinic(data)


def seed_clinic(data_dir: Path) -> Seeded:
    """Create the clinic in ``data_dir`` (which must be empty) and return its ids."""
    repo = open_test_repo(data_dir)
    try:
        for username, role in USERS.items():
            repo.create_user(SYSTEM_ACTOR, username, PASSWORD, role)
        anna = repo.authenticate("anna", PASSWORD)
        a = _client(repo, anna, "Cara Client", "cara", seed=3)
        b = _client(repo, anna, "Dora Other", "dora", seed=4)
        repo.record_consent(anna, a[0], kind="marketing", scopes=("website", "social", "print"))
        review = services.analyze_pair(
            repo,
            anna,
            baseline_photo_id=a[2],
            followup_photo_id=a[3],
            params=services.AnalysisParams(),
        )
        services.save_analysis(repo, anna, review)
        services.clear_analysis_cache()
        return Seeded(
            data_dir=data_dir,
            client_a=a[0],
            client_b=b[0],
            area_a=a[1],
            area_b=b[1],
            baseline_a=a[2],
            followup_a=a[3],
            baseline_b=b[2],
            followup_b=b[3],
            visit_a2=a[4],
            improvement_a=review.result.get("improvement_pct"),
        )
    finally:
        repo.close()
