"""Speed and memory of the full pipeline at phone resolution (issue 9), with a baseline.

Run: ``python benchmarks/pipeline.py [--pairs N] [--quick] [--no-24mp] [--no-baseline]
[--no-review]``

For ``--pairs`` phantom scenes (``vein_tracker.synthetic.make_pair``, tones in turn,
default follow-up captures) it writes the baseline and follow-up photos as JPEG files at
12 MP (3000 × 4000 px) and runs, each in a fresh child process (spawn) so that one
pair's peak memory is isolated:

* the full ``vein_tracker.measure.compare`` on the two files (load, register while the
  baseline is segmented in a second thread, normalise colour, segment the follow-up,
  measure); the stages are timed through compare's ``progress`` callback;
* the baseline pipeline on the same files: ORB + RANSAC homography,
  ``skimage.filters.frangi`` (green channel, dark ridges) at full resolution on both
  photos, Otsu threshold over the overlap, improvement = 1 − vein-area ratio;
* the app's review page (Table 5): a throw-away SQLite clinic in a temporary folder,
  both files uploaded with ``services.store_upload`` (as the Visit page does), then
  ``services.analyze_pair`` and the pictures the review page shows, timed at the first
  open, a cached reopen, and reopens after clearing the in-memory cache before and after
  the result is saved (issue 9: result ≤ 4 s after the second upload; reopening instant).

It prints per stage the median wall time, the end-to-end wall and CPU time, the peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child, cross-checked with the
kernel's ``VmHWM``) and the speed ratio; the accuracy of issue 5 (|improvement_pct −
truth| and band coverage) at 12 MP and on the same scenes at 2000 × 1500; and the time
of the pipeline at 3, 12 and 24 MP (linearity). The machine is shared: the load average
is printed with the results, and CPU time is given next to wall time.

``--quick`` runs one pair, without the 24 MP point (a check of the harness).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TONES = ("light", "fair", "medium", "olive", "brown")
SHAPE_3MP = (1500, 2000)
SHAPE_12MP = (3000, 4000)
SHAPE_24MP = (4240, 5656)
#: Targets of issue 9.
TARGET_S = 2.5
TARGET_RSS_MB = 1200.0
TARGET_RATIO = 15.0

#: compare's progress messages (by their first words) -> stage names, in pipeline order.
#: compare's steps run on a task graph (vein_tracker.schedule), so its stages overlap: a
#: message is told when the first step of its stage starts (the baseline's features,
#: the baseline's segmentation, the colour fit, the baseline's equalisation, the zero
#: point), and a stage here runs until the next message. While it registers, compare
#: prepares the baseline and finds its leg; both visits are segmented side by side; the
#: measuring starts while colour is fitted and the baseline equalised ("measure" then
#: holds the rest of both; a stage whose message would go back is not told).
STAGES = (
    ("loading", "load"),
    ("aligning", "register"),
    ("segmenting both", "segment both"),
    ("normalising", "normalise colour"),
    ("equalising", "equalise baseline"),
    ("measuring", "measure"),
)
#: Stages of the review page's first open (``services.analyze_pair`` then the page's
#: pictures). analyze_pair says "Loading the photos" (repository read and JPEG decode of
#: both photos) before compare's own "loading photos" (resize to the analysis frame).
REVIEW_STAGES = (
    ("loading the photos", "read+decode (repo)"),
    *STAGES,
    ("<review data>", "review data"),
    ("<render>", "page pictures"),
    ("<encode>", "browser encode"),
)
#: Target of issue 9: the review page shows a 12 MP pair's result this soon after the
#: second upload.
TARGET_REVIEW_S = 4.0
#: What this benchmark takes "instant" (a cached reopen) to mean: a tenth of a second.
INSTANT_S = 0.1
BASE_STAGES = ("load", "ORB+RANSAC", "frangi baseline", "frangi follow-up", "Otsu+area")


# ----------------------------------------------------------------------------- children


def _peak_rss_mb() -> tuple[float, float]:
    """(ru_maxrss, VmHWM) of this process, MB."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    hwm = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return ru, hwm


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _git_state() -> str:
    """The commit checked out and whether the package has uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "vein_tracker"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}{' + uncommitted changes in vein_tracker/' if dirty else ''}"


def _split_stages(
    events: Sequence[tuple[float, float, str]],
    start: tuple[float, float],
    end: tuple[float, float],
    table: Sequence[tuple[str, str]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Wall and CPU seconds per stage from (time, CPU, message) progress events.

    A message starting with a prefix of ``table`` opens that stage; other messages
    (sub-steps) leave the running stage as it is.
    """
    stages: dict[str, float] = {}
    stages_cpu: dict[str, float] = {}
    current, (t_prev, c_prev) = "before load", start
    for t, c_now, msg in [*events, (*end, "<end>")]:
        stages[current] = stages.get(current, 0.0) + (t - t_prev)
        stages_cpu[current] = stages_cpu.get(current, 0.0) + (c_now - c_prev)
        current = next((s for prefix, s in table if msg.lower().startswith(prefix)), current)
        t_prev, c_prev = t, c_now
    return stages, stages_cpu


def make_scene_files(seed: int, shape: tuple[int, int], out_dir: str) -> dict[str, Any]:
    """Render one phantom pair at ``shape`` and write it as two JPEG files (child process)."""
    from vein_tracker import synthetic
    from vein_tracker.io import encode_image

    tone = TONES[seed % len(TONES)]
    pair = synthetic.make_pair(seed, shape=shape, tone=tone)
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"s{seed}_{shape[1]}x{shape[0]}"
    b_path, f_path = d / f"{stem}_b.jpg", d / f"{stem}_f.jpg"
    b_path.write_bytes(pair.baseline.jpeg or encode_image(pair.baseline.rgb, quality=92))
    f_path.write_bytes(pair.followup.jpeg or encode_image(pair.followup.rgb, quality=92))
    return {
        "seed": seed,
        "tone": tone,
        "shape": list(shape),
        "truth": float(pair.true_improvement_pct),
        "baseline": str(b_path),
        "followup": str(f_path),
    }


def run_pipeline(scene: dict[str, Any]) -> dict[str, Any]:
    """Time ``measure.compare`` on the scene's two files (child process)."""
    # A review page runs in a long-lived server: import what compare imports lazily
    # before the clock starts, so the first-call import cost (~2 s CPU) is not timed.
    import scipy.ndimage  # noqa: F401
    import skimage.color  # noqa: F401
    import skimage.morphology  # noqa: F401

    import vein_tracker.colour
    import vein_tracker.registration
    import vein_tracker.segmentation  # noqa: F401
    from vein_tracker.errors import VeinTrackerError
    from vein_tracker.measure import compare

    events: list[tuple[float, float, str]] = []

    def progress(_frac: float, msg: str) -> None:
        events.append((time.perf_counter(), _cpu_s(), msg))

    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    try:
        c = compare(scene["baseline"], scene["followup"], progress=progress)
    except VeinTrackerError as exc:  # e.g. the pair does not register: report, go on
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    t1 = time.perf_counter()
    cpu = _cpu_s() - cpu0
    ru, hwm = _peak_rss_mb()
    stages, stages_cpu = _split_stages(events, (t0, cpu0), (t1, cpu0 + cpu), STAGES)
    lo, hi = c.improvement_band_pct
    est = float(c.improvement_pct)
    return {
        "ok": True,
        "total_s": t1 - t0,
        "cpu_s": cpu,
        "stages": stages,
        "stages_cpu": stages_cpu,
        "rss_mb": ru,
        "hwm_mb": hwm,
        "estimate": est,
        "band": [float(lo), float(hi)],
        "abs_err": abs(est - scene["truth"]),
        "covered": bool(lo <= scene["truth"] <= hi),
    }


def run_baseline(scene: dict[str, Any]) -> dict[str, Any]:
    """ORB + RANSAC, full-resolution Frangi, Otsu, area ratio (child process)."""
    import cv2
    import numpy as np
    from skimage.filters import frangi, threshold_otsu

    from vein_tracker.io import load_photo

    stages: dict[str, float] = {}
    stages_cpu: dict[str, float] = {}
    cpu0 = c = _cpu_s()
    t_start = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t, c
        now, c_now = time.perf_counter(), _cpu_s()
        stages[name], stages_cpu[name] = now - t, c_now - c
        t, c = now, c_now

    b = load_photo(scene["baseline"]).rgb
    f = load_photo(scene["followup"]).rgb
    lap("load")
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    gf = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    orb = cv2.ORB.create(nfeatures=5000)
    kb, db = orb.detectAndCompute(gb, None)
    kf, df = orb.detectAndCompute(gf, None)
    hom = None
    if db is not None and df is not None and len(kb) >= 4 and len(kf) >= 4:
        knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(df, db, k=2)
        good = [p[0] for p in knn if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
        if len(good) >= 4:
            src = np.array([kf[m.queryIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
            dst = np.array([kb[m.trainIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
            hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    h, w = gb.shape
    if hom is None:
        hom = np.eye(3)
    warped = cv2.warpPerspective(f, hom, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.ones(f.shape[:2], np.uint8), hom, (w, h)) > 0
    lap("ORB+RANSAC")
    vb = frangi(b[..., 1].astype(np.float32) / 255.0, black_ridges=True)
    lap("frangi baseline")
    vf = frangi(warped[..., 1].astype(np.float32) / 255.0, black_ridges=True)
    lap("frangi follow-up")
    mb = vb > threshold_otsu(vb[valid])
    mf = vf > threshold_otsu(vf[valid])
    area_b = float((mb & valid).sum())
    area_f = float((mf & valid).sum())
    est = 100.0 * (1.0 - area_f / area_b) if area_b else float("nan")
    lap("Otsu+area")
    total = time.perf_counter() - t_start
    ru, hwm = _peak_rss_mb()
    return {
        "ok": True,
        "total_s": total,
        "cpu_s": _cpu_s() - cpu0,
        "stages": stages,
        "stages_cpu": stages_cpu,
        "rss_mb": ru,
        "hwm_mb": hwm,
        "estimate": est,
        "abs_err": abs(est - scene["truth"]) if math.isfinite(est) else float("nan"),
    }


def _open_review_page(
    repo: Any,
    actor: Any,
    client_id: int,
    area_id: int,
    ids: dict[str, int],
    events: list[tuple[float, float, str]],
) -> dict[str, Any]:
    """One opening of the review page: its queries, ``analyze_pair``, its pictures and their
    JPEG encoding, timed by stage from the progress ``events`` (child process)."""
    import io

    import numpy as np
    from PIL import Image

    from vein_tracker import services
    from vein_tracker.config import get_settings

    def mark(_frac: float, msg: str) -> None:
        events.append((time.perf_counter(), _cpu_s(), msg))

    events.clear()
    t0, c0 = time.perf_counter(), _cpu_s()
    # _pick_pair: the client's areas and the area's photos.
    repo.list_areas(actor, client_id)
    repo.list_photos(actor, area_id=area_id)
    params = services.AnalysisParams(sensitivity=0.5, target_pct=get_settings().target_pct)
    review = services.analyze_pair(
        repo,
        actor,
        baseline_photo_id=ids["baseline"],
        followup_photo_id=ids["followup"],
        params=params,
        progress=mark,
    )
    mark(1.0, "<render>")
    shown = [
        services.wipe(review.baseline, review.followup, position=0.5),
        services.checkerboard(review.baseline, review.followup, tiles=8),
        services.vein_overlay(review.baseline, review.baseline_labels),
        services.vein_overlay(review.followup, review.followup_labels),
        services.change_overlay(review.baseline, review.change_map),
        services.roi_overlay(review.baseline, review.region),
    ]
    shown = [services.preview(img) for img in shown]
    services.legend("veins")
    services.legend("change")
    mark(1.0, "<encode>")
    for img in shown:
        buf = io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=100)
    t1, c1 = time.perf_counter(), _cpu_s()
    stages, stages_cpu = _split_stages(events, (t0, c0), (t1, c1), REVIEW_STAGES)
    return {
        "wall_s": t1 - t0,
        "cpu_s": c1 - c0,
        "stages": stages,
        "stages_cpu": stages_cpu,
        "cached": bool(review.cached),
        "saved": bool(review.saved),
        "estimate": review.result.get("improvement_pct"),
        "messages": [m for _, _, m in events],
        "_review": review,
    }


def _bench_clinic(repo: Any, password: str) -> tuple[Any, Any, Any, list[Any]]:
    """An aesthetician, a consenting client, an area and two visits 21 days apart."""
    from datetime import date, timedelta

    from vein_tracker.storage import SYSTEM_ACTOR, Screening

    repo.create_user(SYSTEM_ACTOR, "anna", password, "aesthetician")
    anna = repo.authenticate("anna", password)
    today = date.today()
    client = repo.create_client(
        anna, name="Bench Client", date_of_birth=date(1980, 5, 17), screening=Screening()
    )
    repo.record_consent(
        anna, client.id, kind="treatment_photography", signed_at=today - timedelta(days=60)
    )
    area = repo.create_area(anna, client.id, side="left", view="posterior", region="calf")
    visits = [
        repo.create_visit(
            anna, client.id, visit_date=today - timedelta(days=d), area_ids=(area.id,)
        )
        for d in (42, 21)
    ]
    return anna, client, area, visits


def run_review(scene: dict[str, Any], clinic_dir: str) -> dict[str, Any]:
    """The app's review page on one pair uploaded to a throw-away clinic (child process).

    The clinic is a fresh SQLite database and photo store in ``clinic_dir``, selected
    through ``VEIN_TRACKER_DATA`` as the app tests do (no encryption key). The two JPEG
    files are uploaded with ``services.store_upload`` (what the Visit page calls), then
    the review page's work is timed: the page's queries, ``services.analyze_pair`` with
    the page's default parameters, and the pictures its tabs show (wipe, checkerboard,
    two vein overlays, change overlay, region overlay, each through ``preview`` as
    ``widgets.image`` does), then their JPEG encoding as ``st.image`` does for the
    browser. Streamlit's own transport is not included.

    Openings: the first (computes), a reopen in the same process (in-memory cache), a
    reopen after ``clear_analysis_cache`` while the result is not saved (the page saves
    only on its button: this computes again), the save, and a reopen after clearing the
    cache once it is saved (rebuilt from the saved analysis).
    """

    os.environ["VEIN_TRACKER_DATA"] = clinic_dir
    os.environ.pop("VEIN_TRACKER_DB_URL", None)
    os.environ.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)

    # The app is a long-lived server: import what the page needs before the clock starts.
    import scipy.ndimage  # noqa: F401
    import skimage.color  # noqa: F401
    import skimage.morphology  # noqa: F401

    import vein_tracker.colour
    import vein_tracker.measure
    import vein_tracker.registration
    import vein_tracker.segmentation  # noqa: F401
    from vein_tracker import services
    from vein_tracker.config import get_settings
    from vein_tracker.errors import VeinTrackerError
    from vein_tracker.storage import (
        Passwords,
        fast_test_hasher,
        open_repository,
    )

    password = "bench-password-42"
    repo = open_repository(get_settings(), passwords=Passwords(fast_test_hasher()))
    try:
        anna, client, area, visits = _bench_clinic(repo, password)
        upload_s: dict[str, float] = {}
        upload_cpu: dict[str, float] = {}
        ids: dict[str, int] = {}
        for name, visit in zip(("baseline", "followup"), visits, strict=True):
            data = Path(scene[name]).read_bytes()
            t, c = time.perf_counter(), _cpu_s()
            stored = services.store_upload(
                repo, anna, visit_id=visit.id, area_id=area.id, data=data, filename=f"{name}.jpg"
            )
            upload_s[name], upload_cpu[name] = time.perf_counter() - t, _cpu_s() - c
            ids[name] = stored.photo.id

        events: list[tuple[float, float, str]] = []

        def mark(_frac: float, msg: str) -> None:
            events.append((time.perf_counter(), _cpu_s(), msg))

        # analyze_pair calls review_from_comparison (previews, mask PNGs) once compare has
        # returned; a wrapper marks that moment (it changes nothing else).
        inner = services.review_from_comparison

        def review_from_comparison(*a: Any, **k: Any) -> Any:
            mark(1.0, "<review data>")
            return inner(*a, **k)

        services.review_from_comparison = review_from_comparison

        try:
            page = (repo, anna, client.id, area.id, ids, events)
            first = _open_review_page(*page)
            reopen = _open_review_page(*page)
            services.clear_analysis_cache()
            cleared_unsaved = _open_review_page(*page)
            t, c = time.perf_counter(), _cpu_s()
            services.save_analysis(repo, anna, cleared_unsaved["_review"])
            save_s, save_cpu = time.perf_counter() - t, _cpu_s() - c
            services.clear_analysis_cache()
            cleared_saved = _open_review_page(*page)
        except VeinTrackerError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        repo.close()
    ru, hwm = _peak_rss_mb()
    opens = {
        "first": first,
        "reopen": reopen,
        "cleared_unsaved": cleared_unsaved,
        "cleared_saved": cleared_saved,
    }
    for o in opens.values():
        del o["_review"]
    return {
        "ok": True,
        "upload_s": upload_s,
        "upload_cpu": upload_cpu,
        "save_s": save_s,
        "save_cpu": save_cpu,
        "opens": opens,
        "rss_mb": ru,
        "hwm_mb": hwm,
        "truth": scene["truth"],
    }


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh spawned process and return its result."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


# ----------------------------------------------------------------------------- report


def _median(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return statistics.median(vals) if vals else float("nan")


def _fmt(v: float, nd: int = 2) -> str:
    return "—" if not math.isfinite(v) else f"{v:.{nd}f}"


def _mp(shape: Sequence[int]) -> float:
    return shape[0] * shape[1] / 1e6


def _analysis_s(o: dict[str, Any]) -> float:
    """Wall s of one page open until ``analyze_pair`` returned."""
    page = ("page pictures", "browser encode")
    return float(o["wall_s"] - sum(o["stages"].get(k, 0.0) for k in page))


def _report_review(rs: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """Print Table 5; return median wall s: first open, its CPU s, cached reopen (page and
    analyze_pair alone)."""
    print(
        "\nTable 5. Review page, 12 MP pair uploaded to a throw-away SQLite clinic\n"
        "(services.store_upload; then the page's queries, services.analyze_pair and the\n"
        "pictures its tabs show, JPEG-encoded as st.image does; Streamlit transport not\n"
        f"included). Median over {len(rs)} pair(s), wall s / CPU s (all threads)"
    )
    print(f"{'step':<58}{'wall':>7}{'CPU':>7}{'analysis':>10}  from")
    rows: list[tuple[str, list[float], list[float], list[float], str]] = [
        (
            "upload baseline (store_upload; not in the target)",
            [r["upload_s"]["baseline"] for r in rs],
            [r["upload_cpu"]["baseline"] for r in rs],
            [],
            "",
        ),
        (
            "upload follow-up (store_upload; not in the target)",
            [r["upload_s"]["followup"] for r in rs],
            [r["upload_cpu"]["followup"] for r in rs],
            [],
            "",
        ),
    ]
    labels = {
        "first": "first open (computes)",
        "reopen": "reopen, same process (in-memory cache)",
        "cleared_unsaved": "reopen after clear_analysis_cache, not saved",
        "cleared_saved": "reopen after clear_analysis_cache, saved",
    }

    def source(o: dict[str, Any]) -> str:
        if not o["cached"]:
            return "computed"
        return "saved analysis" if any("saved analysis" in m for m in o["messages"]) else "cache"

    for key, label in labels.items():
        if key == "cleared_saved":
            rows.append(
                (
                    "save (the page's 'Save this result' button)",
                    [r["save_s"] for r in rs],
                    [r["save_cpu"] for r in rs],
                    [],
                    "",
                )
            )
        opens = [r["opens"][key] for r in rs]
        rows.append(
            (
                label,
                [o["wall_s"] for o in opens],
                [o["cpu_s"] for o in opens],
                [_analysis_s(o) for o in opens],
                "/".join(sorted({source(o) for o in opens})),
            )
        )
    for label, walls, cpus, analysis, src in rows:
        an = _fmt(_median(analysis)) if analysis else ""
        print(f"{label:<58}{_fmt(_median(walls)):>7}{_fmt(_median(cpus)):>7}{an:>10}  {src}")
    print(
        "'analysis': wall s until analyze_pair returned (the rest is the page's pictures\n"
        "and their encoding, redone on every run of the page)."
    )
    print(
        "The page does not save an analysis by itself (only its 'Save this result' button\n"
        "does): after the in-memory cache is cleared (server restart, eviction) an unsaved\n"
        "result is computed again; a saved one is rebuilt from its stored masks (both\n"
        "photos are read and decoded again for the previews)."
    )
    print(f"\nFirst open by stage (median wall s / CPU s){'':<8}{'wall':>7}{'CPU':>7}{'share':>7}")
    first = [r["opens"]["first"] for r in rs]
    med = _median([o["wall_s"] for o in first])
    med_cpu = _median([o["cpu_s"] for o in first])
    names = ["before load", *dict.fromkeys(s for _, s in REVIEW_STAGES)]
    for name in names:
        w = _median([o["stages"].get(name, 0.0) for o in first])
        c = _median([o["stages_cpu"].get(name, 0.0) for o in first])
        print(f"  {name:<48}{_fmt(w):>7}{_fmt(c):>7}{_fmt(100 * w / med, 0) + '%':>7}")
    print(f"  {'total':<48}{_fmt(med):>7}{_fmt(med_cpu):>7}")
    print(
        "'before load': the page's queries and analyze_pair's record and saved-analysis\n"
        "look-ups; 'review data': previews and full-size mask PNGs (review_from_comparison)."
    )
    est = [o["estimate"] for o in first if o["estimate"] is not None]
    truths = [r["truth"] for r in rs]
    same = all(
        r["opens"]["cleared_saved"]["estimate"] == r["opens"]["first"]["estimate"] for r in rs
    )
    print(
        f"improvement_pct on the page: {', '.join(f'{e:.1f}' for e in est)} "
        f"(truth {', '.join(f'{t:.1f}' for t in truths)}); "
        f"same after reopening from the saved analysis: {'yes' if same else 'NO'}"
    )
    print(
        f"peak RSS of the review process (uploads included): "
        f"{_fmt(max(r['rss_mb'] for r in rs), 0)} MB"
    )
    reopen = _median([r["opens"]["reopen"]["wall_s"] for r in rs])
    reopen_an = _median([_analysis_s(r["opens"]["reopen"]) for r in rs])
    return med, med_cpu, reopen, reopen_an


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3, help="12 MP scenes (default 3)")
    ap.add_argument("--quick", action="store_true", help="one pair, no 24 MP point")
    ap.add_argument("--no-24mp", action="store_true", help="skip the 24 MP linearity point")
    ap.add_argument("--no-baseline", action="store_true", help="skip the Frangi baseline")
    ap.add_argument("--no-review", action="store_true", help="skip the review page (Table 5)")
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument(
        "--from-json", type=Path, default=None, help="print the tables of a saved --json run"
    )
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    if args.from_json:
        report(json.loads(args.from_json.read_text()))
        return 0
    n_pairs = 1 if args.quick else args.pairs
    with_24 = not (args.quick or args.no_24mp)
    seeds = list(range(1, n_pairs + 1))
    load0 = os.getloadavg()
    git0 = _git_state()
    print(f"code at start: {git0}")
    print(f"load average at start (1, 5, 15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    t_bench = time.perf_counter()
    raw: dict[str, Any] = {"seeds": seeds}

    with tempfile.TemporaryDirectory(prefix="vt_bench_") as tmp:
        print(f"Rendering {n_pairs} scene(s) at 12 MP and 3 MP (not timed)...", flush=True)
        scenes12 = [in_child(make_scene_files, s, SHAPE_12MP, tmp) for s in seeds]
        scenes3 = [in_child(make_scene_files, s, SHAPE_3MP, tmp) for s in seeds]
        ours12, base12, ours3 = [], [], []
        review12: list[dict[str, Any]] = []
        for sc in scenes12:
            print(f"  12 MP seed {sc['seed']}: pipeline...", end="", flush=True)
            ours12.append(in_child(run_pipeline, sc))
            print(f" {_fmt(ours12[-1].get('total_s', math.nan), 1)} s", end="", flush=True)
            if not args.no_baseline:
                print("; baseline...", end="", flush=True)
                base12.append(in_child(run_baseline, sc))
                print(f" {_fmt(base12[-1]['total_s'], 1)} s", end="", flush=True)
            if not args.no_review:
                print("; review page...", end="", flush=True)
                clinic = str(Path(tmp) / f"clinic_s{sc['seed']}")
                review12.append(in_child(run_review, sc, clinic))
                r = review12[-1]
                first = r["opens"]["first"]["wall_s"] if r["ok"] else math.nan
                print(f" {_fmt(first, 1)} s", end="", flush=True)
            print(flush=True)
        for sc in scenes3:
            ours3.append(in_child(run_pipeline, sc))
        ours24: list[dict[str, Any]] = []
        if with_24:
            print("  24 MP seed 1: rendering and pipeline...", flush=True)
            sc24 = in_child(make_scene_files, seeds[0], SHAPE_24MP, tmp)
            ours24.append(in_child(run_pipeline, sc24))
        raw.update(
            scenes12=scenes12,
            ours12=ours12,
            base12=base12,
            ours3=ours3,
            ours24=ours24,
            review12=review12,
        )
    load1 = os.getloadavg()
    raw.update(
        git_start=git0,
        git_end=_git_state(),
        load_start=load0[0],
        load_end=load1[0],
        loadavg_start=list(load0),
        loadavg_end=list(load1),
        cores=os.cpu_count(),
        bench_s=time.perf_counter() - t_bench,
    )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    report(raw)
    return 0


def report(raw: dict[str, Any]) -> None:
    """Print the tables of one run (``raw`` as written by ``--json``)."""
    scenes12, ours12, base12 = raw["scenes12"], raw["ours12"], raw["base12"]
    ours3, ours24 = raw["ours3"], raw["ours24"]
    ok12 = [r for r in ours12 if r["ok"]]
    _report_header(raw, scenes12, ours12)
    med_total, med_cpu = _report_stages(ok12, base12)
    ratios, ratios_cpu = _report_pairs(scenes12, ours12, base12)
    _report_accuracy(ours3, ours12, base12)
    _report_linearity(ours3, ok12, ours24)
    # Table 5: the review page.
    review12 = [r for r in raw.get("review12", []) if r["ok"]]
    for r, sc in zip(raw.get("review12", []), scenes12, strict=False):
        if not r["ok"]:
            print(f"  seed {sc['seed']}: review page FAILED: {r['error']}")
    review = _report_review(review12) if review12 else (math.nan,) * 4
    _report_targets(ok12, base12, med_total, med_cpu, ratios, ratios_cpu, review12, review)
    print(f"\n(benchmark wall time {raw.get('bench_s', math.nan):.0f} s)")


def _report_header(
    raw: dict[str, Any], scenes12: list[dict[str, Any]], ours12: list[dict[str, Any]]
) -> None:
    print()
    if "git_start" in raw:
        same = raw["git_start"] == raw["git_end"]
        print(
            f"code: {raw['git_start']} at start, {raw['git_end']} at end"
            + ("" if same else " (CHANGED during the run: children mixed versions)")
        )
    for when in ("start", "end"):
        la = raw.get(f"loadavg_{when}")
        if la:
            print(f"load average at {when} (1, 5, 15 min): {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    print(
        f"vein_tracker pipeline benchmark: {len(scenes12)} pair(s); cores {raw.get('cores')}; "
        f"load average {raw.get('load_start', math.nan):.1f} at start, "
        f"{raw.get('load_end', math.nan):.1f} at end "
        f"(machine shared: wall times are inflated when load > cores)"
    )
    for r, sc in zip(ours12, scenes12, strict=True):
        if not r["ok"]:
            print(f"  seed {sc['seed']}: pipeline FAILED: {r['error']}")


def _report_stages(ok12: list[dict[str, Any]], base12: list[dict[str, Any]]) -> tuple[float, float]:
    """Table 1: the median time per stage; returns the median wall and CPU end to end."""
    print("\nTable 1. Median time per stage, 12 MP (4000 × 3000): wall s / CPU s (all threads)")
    print(
        f"{'stage':<19}{'wall':>7}{'CPU':>7}{'share':>7}   "
        f"{'baseline stage':<17}{'wall':>7}{'CPU':>7}"
    )
    med_total = _median([r["total_s"] for r in ok12])
    med_cpu = _median([r["cpu_s"] for r in ok12])
    names = [s for _, s in STAGES]
    for i in range(max(len(names), len(BASE_STAGES))):
        left, right = " " * 40, ""
        if i < len(names):
            w = _median([r["stages"].get(names[i], 0.0) for r in ok12])
            c = _median([r["stages_cpu"].get(names[i], 0.0) for r in ok12])
            left = f"{names[i]:<19}{_fmt(w):>7}{_fmt(c):>7}{_fmt(100 * w / med_total, 0) + '%':>7}"
        if base12 and i < len(BASE_STAGES):
            w = _median([r["stages"][BASE_STAGES[i]] for r in base12])
            c = _median([r["stages_cpu"][BASE_STAGES[i]] for r in base12])
            right = f"{BASE_STAGES[i]:<17}{_fmt(w):>7}{_fmt(c):>7}"
        print(f"{left}   {right}")
    base_total = _median([r["total_s"] for r in base12]) if base12 else math.nan
    base_cpu = _median([r["cpu_s"] for r in base12]) if base12 else math.nan
    e2e = "end to end"
    print(
        f"{e2e:<19}{_fmt(med_total):>7}{_fmt(med_cpu):>7}{'':>7}   "
        f"{e2e:<17}{_fmt(base_total):>7}{_fmt(base_cpu):>7}"
    )
    print(
        "Note: compare's steps run on a task graph, so its stages overlap: a stage runs from\n"
        "the start of its first step to the next stage's (CPU counts every thread). The\n"
        "baseline is prepared and its leg found while the follow-up is registered; both\n"
        "visits are segmented side by side; colour fitting and the baseline's equalisation\n"
        "run while measuring starts, so most of them fall in 'measure'."
    )

    return med_total, med_cpu


def _report_pairs(
    scenes12: list[dict[str, Any]], ours12: list[dict[str, Any]], base12: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """Table 2: each pair; returns the speed ratios (wall, CPU) against the baseline."""
    print("\nTable 2. Per pair at 12 MP (wall s, CPU s, peak RSS MB, |error| points)")
    hdr = (
        f"{'seed':>4} {'tone':<7}{'truth':>6} |{'wall':>6}{'CPU':>6}{'RSS':>6}{'HWM':>6}"
        f"{'est':>6}{'|err|':>6}{'band':>11}{'in':>3} |{'wall':>6}{'CPU':>6}{'RSS':>6}"
        f"{'est':>6}{'|err|':>6} |{'ratio wall':>11}{'CPU':>6}"
    )
    print(" " * 19 + "| pipeline" + " " * 47 + "| baseline" + " " * 21 + "|")
    print(hdr)
    ratios, ratios_cpu = [], []
    for i, (sc, r) in enumerate(zip(scenes12, ours12, strict=True)):
        b = base12[i] if base12 else None
        line = f"{sc['seed']:>4} {sc['tone']:<7}{sc['truth']:>6.1f} |"
        if r["ok"]:
            band = f"[{r['band'][0]:.0f},{r['band'][1]:.0f}]"
            line += (
                f"{r['total_s']:>6.1f}{r['cpu_s']:>6.1f}{r['rss_mb']:>6.0f}{r['hwm_mb']:>6.0f}"
                f"{r['estimate']:>6.1f}{r['abs_err']:>6.1f}{band:>11}"
                f"{'y' if r['covered'] else 'n':>3} |"
            )
        else:
            line += f"{'failed':>56} |"
        if b is not None:
            ratio = b["total_s"] / r["total_s"] if r["ok"] else math.nan
            ratio_cpu = b["cpu_s"] / r["cpu_s"] if r["ok"] else math.nan
            ratios.append(ratio)
            ratios_cpu.append(ratio_cpu)
            line += (
                f"{b['total_s']:>6.1f}{b['cpu_s']:>6.1f}{b['rss_mb']:>6.0f}"
                f"{_fmt(b['estimate'], 1):>6}{_fmt(b['abs_err'], 1):>6} |"
                f"{_fmt(ratio, 1) + '×':>11}{_fmt(ratio_cpu, 1) + '×':>6}"
            )
        print(line)

    return ratios, ratios_cpu


def _report_accuracy(
    ours3: list[dict[str, Any]], ours12: list[dict[str, Any]], base12: list[dict[str, Any]]
) -> None:
    """Table 3: accuracy at 12 MP and 3 MP."""
    print("\nTable 3. Accuracy of issue 5 on the same scenes (|improvement_pct − truth|, points)")
    print(f"{'resolution':<22}{'pairs':>6}{'median':>8}{'max':>8}{'band coverage':>15}")
    for label, rs in (("2000 × 1500 (3 MP)", ours3), ("4000 × 3000 (12 MP)", ours12)):
        good = [r for r in rs if r["ok"]]
        errs = [r["abs_err"] for r in good]
        cov = sum(r["covered"] for r in good) / len(good) if good else math.nan
        print(
            f"{label:<22}{len(good):>6}{_fmt(_median(errs), 1):>8}"
            f"{_fmt(max(errs) if errs else math.nan, 1):>8}{_fmt(100 * cov, 0) + ' %':>15}"
        )
    if base12:
        errs = [r["abs_err"] for r in base12 if math.isfinite(r["abs_err"])]
        print(
            f"{'baseline, 12 MP':<22}{len(errs):>6}{_fmt(_median(errs), 1):>8}"
            f"{_fmt(max(errs) if errs else math.nan, 1):>8}{'(no band)':>15}"
        )


def _report_linearity(
    ours3: list[dict[str, Any]], ok12: list[dict[str, Any]], ours24: list[dict[str, Any]]
) -> None:
    """Table 4: cost against pixel count, and by stage."""
    from vein_tracker.measure import ANALYSIS_PX_PER_MM

    ours12 = ok12
    names = [s for _, s in STAGES]
    print("\nTable 4. Cost against pixel count (pipeline, median wall and CPU s)")
    print(
        f"{'size':<22}{'MP':>6}{'pairs':>6}{'wall s':>8}{'CPU s':>8}{'wall s/MP':>11}{'RSS MB':>8}"
    )
    per_mp, per_mp_cpu = {}, {}
    for label, shape, rs in (
        ("2000 × 1500", SHAPE_3MP, ours3),
        ("4000 × 3000", SHAPE_12MP, ours12),
        (f"{SHAPE_24MP[1]} × {SHAPE_24MP[0]}", SHAPE_24MP, ours24),
    ):
        good = [r for r in rs if r["ok"]]
        if not good:
            continue
        wall = _median([r["total_s"] for r in good])
        cpu = _median([r["cpu_s"] for r in good])
        per_mp[_mp(shape)] = wall / _mp(shape)
        per_mp_cpu[_mp(shape)] = cpu / _mp(shape)
        print(
            f"{label:<22}{_mp(shape):>6.1f}{len(good):>6}{wall:>8.2f}{cpu:>8.2f}"
            f"{wall / _mp(shape):>11.3f}{_median([r['rss_mb'] for r in good]):>8.0f}"
        )
    for what, d in (("wall", per_mp), ("CPU", per_mp_cpu)):
        ref = d.get(_mp(SHAPE_12MP))
        if ref:
            spread = ", ".join(f"{mp:.0f} MP {v / ref:.2f}" for mp, v in sorted(d.items()))
            print(f"{what} s/MP relative to 12 MP (1.00 = linear): {spread}")
    print(
        f"The pipeline is sub-linear in pixel count: compare analyses any photo finer than\n"
        f"{ANALYSIS_PX_PER_MM:g} px/mm at {ANALYSIS_PX_PER_MM:g} px/mm "
        "(measure.analysis_frame), so only decoding and\n"
        "one resize grow with the pixels. s/MP above 1.00 at 3 MP and below 1.00 at 24 MP\n"
        "mean cost grows slower than the pixel count (by design, not a failure)."
    )

    ok3 = [r for r in ours3 if r["ok"]]
    if ok3 and ok12:
        ok24 = [r for r in ours24 if r["ok"]]
        print(
            "\nTable 4b. CPU s per stage by size; ratios against 3 MP "
            "(linear: 12 MP ×4.0, 24 MP ×8.0)"
        )
        print(f"{'stage':<19}{'3 MP':>8}{'12 MP':>8}{'×':>6}{'24 MP':>8}{'×':>6}")

        def cpu_of(rs: list[dict[str, Any]], name: str) -> float:
            if not rs:
                return math.nan
            if name == "end to end":
                return _median([r["cpu_s"] for r in rs])
            return _median([r["stages_cpu"].get(name, 0.0) for r in rs])

        for name in [*names, "end to end"]:
            a, b_, c_ = cpu_of(ok3, name), cpu_of(ok12, name), cpu_of(ok24, name)
            print(
                f"{name:<19}{_fmt(a):>8}{_fmt(b_):>8}{_fmt(b_ / a if a > 0 else math.nan, 1):>6}"
                f"{_fmt(c_):>8}{_fmt(c_ / a if a > 0 else math.nan, 1):>6}"
            )


def _report_targets(
    ok12: list[dict[str, Any]],
    base12: list[dict[str, Any]],
    med_total: float,
    med_cpu: float,
    ratios: list[float],
    ratios_cpu: list[float],
    review12: list[dict[str, Any]],
    review: tuple[float, ...],
) -> None:
    """The issue's targets at 12 MP, met or not."""
    rev_first, rev_first_cpu, rev_reopen, rev_reopen_an = review
    rss = max((r["rss_mb"] for r in ok12), default=math.nan)
    ratio = _median(ratios) if ratios else math.nan
    ratio_cpu = _median(ratios_cpu) if ratios_cpu else math.nan
    print("\nTargets (12 MP)")
    print(f"{'target':<40}{'measured':>10}{'met':>6}")
    checks = [
        (f"end to end ≤ {TARGET_S} s (median wall)", med_total, med_total <= TARGET_S),
        # Wall time on 2 idle cores cannot be below CPU / 2: a necessary condition that
        # does not depend on how loaded the shared machine is.
        ("  CPU s / 2 cores (floor of idle wall)", med_cpu / 2, med_cpu / 2 <= TARGET_S),
        (f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB (max)", rss, rss <= TARGET_RSS_MB),
    ]
    if base12:
        checks.append(
            (f"≥ {TARGET_RATIO:.0f}× faster than baseline (wall)", ratio, ratio >= TARGET_RATIO)
        )
        checks.append(("  (CPU time ratio)", ratio_cpu, ratio_cpu >= TARGET_RATIO))
    if review12:
        checks.append(
            (
                f"review page first open ≤ {TARGET_REVIEW_S:g} s (wall)",
                rev_first,
                rev_first <= TARGET_REVIEW_S,
            )
        )
        checks.append(
            (
                "  CPU s / 2 cores (floor of idle wall)",
                rev_first_cpu / 2,
                rev_first_cpu / 2 <= TARGET_REVIEW_S,
            )
        )
        checks.append(
            (
                f"review reopen 'instant' (≤ {INSTANT_S:g} s, wall)",
                rev_reopen,
                rev_reopen <= INSTANT_S,
            )
        )
        checks.append(
            ("  of which analyze_pair (cache hit)", rev_reopen_an, rev_reopen_an <= INSTANT_S)
        )
    for label, v, ok in checks:
        print(f"{label:<40}{_fmt(v):>10}{'yes' if ok else 'NO':>6}")


if __name__ == "__main__":
    sys.exit(main())
