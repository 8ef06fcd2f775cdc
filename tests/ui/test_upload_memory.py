"""Memory stays flat over a long day: 100 uploads through the Visit page in one session.

Drives the real page with AppTest (uploader, area assignment, "Store photos", the
rotated uploader key) and reads this process's resident memory before and after.
"""

from __future__ import annotations

import gc
from pathlib import Path

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from vt_ui_seed import PASSWORD, Seeded, photo_jpeg

from vein_tracker.io import encode_image

ROOT = Path(__file__).resolve().parents[2]
N_UPLOADS = 100
LIMIT_MB = 300.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    pytest.skip("no /proc/self/status on this system")


@pytest.mark.slow
def test_hundred_uploads_grow_memory_less_than_300_mb(seeded_clinic: Seeded) -> None:
    base = cv2.imdecode(np.frombuffer(photo_jpeg(5, followup=True), np.uint8), cv2.IMREAD_COLOR)
    base = cv2.cvtColor(cv2.resize(base, (2000, 1500)), cv2.COLOR_BGR2RGB)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.text_input[0].input("anna")
    at.text_input[1].input(PASSWORD)
    at.button[0].click()
    at.run()
    at.switch_page("vein_tracker/ui/visit.py")
    at.run()
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_a)
    at.run()

    def upload(i: int) -> None:
        img = base.copy()
        img[i % 1500, : 1 + i] = (i * 7) % 255  # distinct bytes: no de-duplication
        at.file_uploader[0].set_value((f"p{i}.jpg", encode_image(img), "image/jpeg"))
        at.run()
        # Checked first (thumbnail and capture report), then stored.
        next(b for b in at.button if b.label == "Check photos").click()
        at.run()
        next(b for b in at.button if b.label == "Store the photos kept").click()
        at.run()
        assert not at.exception
        assert not at.error, [e.value for e in at.error]

    for i in range(5):  # warm-up: imports, caches, first allocations
        upload(i)
    gc.collect()
    start = rss_mb()
    for i in range(5, N_UPLOADS + 5):
        upload(i)
    gc.collect()
    grown = rss_mb() - start
    print(f"\n{N_UPLOADS} uploads (2000x1500 JPEG): RSS {start:.0f} MB -> +{grown:.0f} MB")
    assert grown < LIMIT_MB
