"""Agreement statistics (vein_tracker.agreement) and `vein-tracker agreement`.

The references are computed here, from the ratings, with the libraries called directly
(pingouin's ICC table, scikit-learn's kappa) and numpy: the library and the CLI must
match them to 1e-6 on random rating tables.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vein_tracker.agreement import (
    AUTO_RATER,
    CSV_COLUMNS,
    Agreement,
    RatingsError,
    agreement_csv,
    agreement_pdf,
    bland_altman_png,
    compute_agreement,
    read_ratings_csv,
)
from vein_tracker.cli import main

TOL = 1e-6
#: pingouin 0.7 calls DataFrame.dropna(inplace=True), which pandas 3.1 deprecates; the
#: reference calls below go through it (the library filters the same warning itself).
PINGOUIN_DROPNA = "ignore:The inplace keyword in DataFrame.dropna:DeprecationWarning"


# --------------------------------------------------------------------------- references


@contextlib.contextmanager
def _pingouin_full_precision() -> Iterator[None]:
    import pingouin as pg

    saved = dict(pg.options)
    pg.options.clear()
    pg.options["round"] = None  # pingouin rounds CI95 to 2 decimals by default
    try:
        yield
    finally:
        pg.options.clear()
        pg.options.update(saved)


def _grades(values: np.ndarray) -> np.ndarray:
    # 0 for <= 25, 1 for (25, 50], 2 for (50, 75], 3 for > 75.
    return np.searchsorted(np.array([25.0, 50.0, 75.0]), values, side="left")


def reference(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The agreement of ``rows`` from pingouin, scikit-learn and numpy directly."""
    import pingouin as pg
    from sklearn.metrics import cohen_kappa_score

    long = pd.DataFrame(rows)
    long["pair"] = long["pair"].astype(str)
    wide = long.pivot(index="pair", columns="rater", values="clearance_pct")
    raters = sorted(wide.columns)
    complete = wide.dropna(axis=0, how="any")
    melted = complete.reset_index().melt(id_vars="pair", value_name="clearance_pct")
    with _pingouin_full_precision(), np.errstate(all="ignore"):
        icc = pg.intraclass_corr(
            data=melted, targets="pair", raters="rater", ratings="clearance_pct"
        ).set_index("Type")
    out: dict[str, Any] = {
        "pairs": int(long["pair"].nunique()),
        "raters": raters,
        "icc": float(icc.loc["ICC(A,1)", "ICC"]),
        "ci95": [float(v) for v in icc.loc["ICC(A,1)", "CI95"]],
        "icc_pairs": len(complete),
        "kappa": {},
        "mad": {},
        "ba": {},
    }
    for i, a in enumerate(raters):
        for b in raters[i + 1 :]:
            both = wide[[a, b]].dropna(axis=0, how="any")
            va = both[a].to_numpy(np.float64)
            vb = both[b].to_numpy(np.float64)
            key = f"{a}|{b}"
            ga, gb = _grades(va), _grades(vb)
            if len(set(ga) | set(gb)) == 1:
                out["kappa"][key] = math.nan  # undefined: one and the same grade throughout
            else:
                out["kappa"][key] = cohen_kappa_score(
                    ga, gb, weights="quadratic", labels=[0, 1, 2, 3]
                )
            out["mad"][key] = float(np.mean(np.abs(va - vb)))
            d = va - vb
            sd = float(np.std(d, ddof=1))
            out["ba"][key] = (float(d.mean()), d.mean() - 1.96 * sd, d.mean() + 1.96 * sd)
    return out


def _close(x: float | None, y: float) -> bool:
    if x is None:
        return not math.isfinite(y)
    return math.isfinite(y) and abs(x - y) <= TOL


def assert_matches(result: dict[str, Any], ref: dict[str, Any]) -> None:
    """``result`` (the JSON contract) equals the reference to 1e-6."""
    assert set(result) == {"pairs", "raters", "icc", "kappa", "mean_abs_diff"}
    assert result["pairs"] == ref["pairs"]
    assert result["raters"] == ref["raters"]
    assert result["icc"]["form"] == "ICC(2,1)"
    assert _close(result["icc"]["value"], ref["icc"]), (result["icc"], ref["icc"])
    if result["icc"]["ci95"] is None:
        assert not all(math.isfinite(v) for v in ref["ci95"]) or result["icc"]["value"] is None
    else:
        for got, want in zip(result["icc"]["ci95"], ref["ci95"], strict=True):
            assert _close(got, want), (result["icc"]["ci95"], ref["ci95"])
    assert set(result["kappa"]) == set(ref["kappa"])
    for key, want in ref["kappa"].items():
        assert _close(result["kappa"][key], want), (key, result["kappa"][key], want)
    assert set(result["mean_abs_diff"]) == set(ref["mad"])
    for key, want in ref["mad"].items():
        assert _close(result["mean_abs_diff"][key], want)


# --------------------------------------------------------------------------- tables

_RATER_NAMES = ("A", "B", "Dr Lee", AUTO_RATER, "zoë")


@st.composite
def rating_tables(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random tables: 2-4 raters, 3-12 pairs, some pairs not rated by everyone."""
    n_raters = draw(st.integers(2, 4))
    raters = draw(st.permutations(_RATER_NAMES))[:n_raters]
    n_pairs = draw(st.integers(3, 12))
    value = st.one_of(
        st.integers(0, 100).map(float),  # a slider's whole percent
        st.floats(0, 100, allow_nan=False),
        st.sampled_from([0.0, 25.0, 50.0, 75.0, 100.0]),  # the quartile bounds
    )
    rows = []
    for p in range(n_pairs):
        truth = draw(value)
        for r in raters:
            # The first three pairs are rated by everyone; later ones may be skipped.
            if p >= 3 and draw(st.booleans()) and draw(st.booleans()):
                continue
            v = draw(st.one_of(value, st.just(truth)))
            rows.append({"pair": f"P{p:02d}", "rater": r, "clearance_pct": v})
    return rows


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    lines = ["pair,rater,clearance_pct"]
    lines += [f"{r['pair']},{r['rater']},{r['clearance_pct']!r}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- properties


@pytest.mark.filterwarnings(PINGOUIN_DROPNA)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rating_tables())
def test_library_matches_pingouin_and_sklearn(rows: list[dict[str, Any]]) -> None:
    result = compute_agreement(rows)
    ref = reference(rows)
    assert_matches(result.to_dict(), ref)
    assert result.icc.pairs == ref["icc_pairs"]
    for rp in result.rater_pairs:
        mean, lo, hi = ref["ba"][rp.key]
        assert rp.bland_altman.mean_diff == pytest.approx(mean, abs=TOL)
        assert rp.bland_altman.loa is not None
        assert rp.bland_altman.loa == pytest.approx((lo, hi), abs=TOL)


@pytest.mark.filterwarnings(PINGOUIN_DROPNA)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rating_tables())
def test_cli_json_matches_pingouin_and_sklearn(rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        _write_csv(rows, path)
        status, out, err = _cli("agreement", str(path), "--json")
    assert status == 0, err
    assert_matches(json.loads(out), reference(rows))


def test_the_library_itself_raises_no_warning() -> None:
    # pytest turns warnings into errors: without the library's own narrow filter,
    # pingouin's pandas deprecation would fail this test.
    rows = [
        {"pair": p, "rater": r, "clearance_pct": v}
        for p, vals in enumerate([(10, 20), (50, 45), (80, 90), (30, 33)])
        for r, v in zip("AB", vals, strict=True)
    ]
    result = compute_agreement(rows)
    assert result.icc.value is not None
    assert 0.9 < result.icc.value < 1.0


# --------------------------------------------------------------------------- known values


def test_icc_on_shrout_and_fleiss_example() -> None:
    # Shrout and Fleiss (1979), table 2: 6 targets, 4 judges; ICC(2,1) = 0.29.
    scores = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    rows = [
        {"pair": f"t{t}", "rater": f"judge{j}", "clearance_pct": float(v)}
        for t, row in enumerate(scores)
        for j, v in enumerate(row)
    ]
    result = compute_agreement(rows)
    assert result.icc.value is not None
    assert result.icc.value == pytest.approx(0.29, abs=0.005)
    assert result.icc.ci95 is not None
    lo, hi = result.icc.ci95
    # Full precision (pingouin rounds the CI to 2 decimals unless told not to).
    assert lo < result.icc.value < hi
    assert round(lo, 2) != lo or round(hi, 2) != hi
    assert result.icc.pairs == 6
    assert result.raters == ("judge0", "judge1", "judge2", "judge3")


def test_bland_altman_against_numpy() -> None:
    a = np.array([10.0, 35.0, 62.5, 80.0, 91.0, 47.0])
    b = np.array([14.0, 30.0, 70.0, 76.0, 99.0, 47.0])
    rows = [{"pair": i, "rater": "A", "clearance_pct": v} for i, v in enumerate(a)]
    rows += [{"pair": i, "rater": AUTO_RATER, "clearance_pct": v} for i, v in enumerate(b)]
    rp = compute_agreement(rows).pair(AUTO_RATER, "A")
    assert rp.raters == ("A", AUTO_RATER)
    d = a - b
    ba = rp.bland_altman
    assert ba.mean_diff == pytest.approx(d.mean(), abs=1e-12)
    assert ba.sd_diff == pytest.approx(d.std(ddof=1), abs=1e-12)
    assert ba.loa == pytest.approx(
        (d.mean() - 1.96 * d.std(ddof=1), d.mean() + 1.96 * d.std(ddof=1)), abs=1e-12
    )
    assert ba.diff_pct == pytest.approx(tuple(d))
    assert ba.mean_pct == pytest.approx(tuple((a + b) / 2))
    assert rp.mean_abs_diff == pytest.approx(np.abs(d).mean(), abs=1e-12)
    assert rp.pairs == 6


def test_kappa_sees_the_distance_between_unused_quartiles() -> None:
    # Raters use grades 0 and 2 only (quartile 1 empty): a 0-vs-2 disagreement is two
    # steps apart, so kappa is scikit-learn's with all four labels, not with two.
    from sklearn.metrics import cohen_kappa_score

    a = [10.0, 10.0, 60.0, 60.0, 10.0]
    b = [10.0, 60.0, 60.0, 10.0, 10.0]
    rows = [{"pair": i, "rater": "A", "clearance_pct": v} for i, v in enumerate(a)]
    rows += [{"pair": i, "rater": "B", "clearance_pct": v} for i, v in enumerate(b)]
    kappa = compute_agreement(rows).kappa["A|B"]
    ga, gb = [0, 0, 2, 2, 0], [0, 2, 2, 0, 0]
    assert kappa == pytest.approx(
        cohen_kappa_score(ga, gb, weights="quadratic", labels=[0, 1, 2, 3])
    )


def test_perfect_and_undefined_agreement() -> None:
    rows = [
        {"pair": p, "rater": r, "clearance_pct": v}
        for p, v in enumerate([5.0, 40.0, 66.0, 90.0])
        for r in ("A", "B")
    ]
    perfect = compute_agreement(rows)
    assert perfect.icc.value == pytest.approx(1.0)
    assert perfect.kappa == {"A|B": pytest.approx(1.0)}
    assert perfect.mean_abs_diff == {"A|B": 0.0}
    # Everyone rates every pair 50 %: ICC and kappa are 0/0, reported as null.
    same = [{"pair": p, "rater": r, "clearance_pct": 50.0} for p in range(3) for r in "AB"]
    undefined = compute_agreement(same).to_dict()
    assert undefined["icc"] == {"form": "ICC(2,1)", "value": None, "ci95": None}
    assert undefined["kappa"] == {"A|B": None}
    assert undefined["mean_abs_diff"] == {"A|B": 0.0}
    json.dumps(undefined, allow_nan=False)  # valid JSON: no NaN


def test_icc_uses_only_pairs_every_rater_rated() -> None:
    rows = [
        {"pair": p, "rater": r, "clearance_pct": v}
        for p, vals in enumerate([(10, 12, 11), (40, 44, 41), (70, 65, 72), (90, 95, 93)])
        for r, v in zip(("A", "B", AUTO_RATER), vals, strict=True)
    ]
    rows.append({"pair": 9, "rater": "A", "clearance_pct": 0.0})  # only A rated pair 9
    result = compute_agreement(rows)
    assert result.pairs == 5
    assert result.icc.pairs == 4
    assert result.pair("A", "B").pairs == 4


# --------------------------------------------------------------------------- exports


def _agreement() -> Agreement:
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 100, 10)
    rows = [
        {"pair": f"p{i}", "rater": r, "clearance_pct": float(np.clip(t + rng.normal(0, 7), 0, 100))}
        for i, t in enumerate(truth)
        for r in ("Ana", "Ben", AUTO_RATER)
    ]
    return compute_agreement(rows)


def test_csv_export_holds_every_statistic_at_full_precision() -> None:
    ag = _agreement()
    table = pd.read_csv(io.BytesIO(agreement_csv(ag)), keep_default_na=False)
    assert tuple(table.columns) == CSV_COLUMNS
    icc = table[table["statistic"] == "ICC(2,1)"].iloc[0]
    assert float(icc["value"]) == ag.icc.value
    assert ag.icc.ci95 is not None
    assert (float(icc["ci95_low"]), float(icc["ci95_high"])) == ag.icc.ci95
    assert icc["raters"] == "Ana|Ben|auto"
    kappa = table[table["statistic"] == "kappa_quadratic"].set_index("raters")["value"]
    assert {k: float(v) for k, v in kappa.items()} == ag.kappa
    mad = table[table["statistic"] == "mean_abs_diff"].set_index("raters")["value"]
    assert {k: float(v) for k, v in mad.items()} == ag.mean_abs_diff
    low = table[table["statistic"] == "bland_altman_loa_low"].set_index("raters")["value"]
    assert float(low["Ana|auto"]) == ag.pair("Ana", "auto").bland_altman.loa[0]  # type: ignore[index]
    assert len(table) == 1 + 5 * 3


def test_bland_altman_png_is_a_plot() -> None:
    ba = _agreement().pair("Ana", AUTO_RATER).bland_altman
    png = bland_altman_png(ba, size_in=(5.0, 3.4), dpi=100)
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.size == (500, 340)
        rgb = np.asarray(im.convert("RGB"))
    # The dashed limits are red, the points blue: both are drawn.
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    blue = (rgb[..., 2] > 120) & (rgb[..., 0] < 80)
    assert red.sum() > 100
    assert blue.sum() > 100


def _poppler(tool: str, pdf: bytes, tmp_path: Path, *args: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (apt-get install poppler-utils) - PDF check skipped")
    src = tmp_path / "a.pdf"
    src.write_bytes(pdf)
    return subprocess.run(
        [path, *args, str(src), *(["-"] if tool == "pdftotext" else [])],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def test_pdf_export_shows_icc_kappa_and_plots(tmp_path: Path) -> None:
    ag = _agreement()
    pdf = agreement_pdf(ag, subtitle="Rating session: spring audit", clinic_name="Clinique Zoë")
    assert pdf.startswith(b"%PDF")
    text = _poppler("pdftotext", pdf, tmp_path, "-layout")
    assert ag.icc.value is not None
    assert f"ICC(2,1) = {ag.icc.value:.3f}" in text
    assert "Clinique Zoë" in text
    for rp in ag.rater_pairs:
        assert f"{rp.raters[0]} vs {rp.raters[1]}" in text
        assert f"{rp.kappa:.3f}" in text
    # One Bland-Altman plot (an image) per two raters.
    images = _poppler("pdfimages", pdf, tmp_path, "-list").splitlines()[2:]
    assert len([line for line in images if line.strip()]) == 3


# --------------------------------------------------------------------------- bad input


def _rows_csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


GOOD = ("1,A,10", "1,B,12", "2,A,50", "2,B,40", "3,A,90", "3,B,85")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_rows_csv("pair,clearance_pct", "1,10"), "missing column 'rater'"),
        (_rows_csv("pair,rater,clearance", *GOOD), "missing column 'clearance_pct'"),
        (_rows_csv("rater,clearance_pct", "A,10"), "missing column 'pair'"),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "4,A,101"), "outside 0-100"),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "4,A,-0.5"), "outside 0-100"),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "4,A,lots"), "not a number"),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "4,A,"), "not a number"),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "4,A,nan"), "not a number"),
        (_rows_csv("pair,rater,clearance_pct", "1,A,10", "2,A,20", "3,A,30"), "two raters"),
        (
            _rows_csv("pair,rater,clearance_pct", "1,A,10", "1,B,12", "2,A,5", "2,B,7", "3,A,9"),
            "only 2 pair(s) are rated by every rater",
        ),
        (_rows_csv("pair,rater,clearance_pct", *GOOD, "1,A,11"), "rated pair '1' twice"),
        (_rows_csv("pair,rater,clearance_pct"), "no ratings"),
        ("", "empty"),
    ],
)
def test_cli_refuses_bad_input_with_exit_2(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    status, out, err = _cli("agreement", str(path), "--json")
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert needle in err, err
    with pytest.raises(RatingsError, match="ratings: "):
        read_ratings_csv(path)


def test_cli_line_numbers_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(_rows_csv("pair,rater,clearance_pct", *GOOD, "", "4,A,150"), "utf-8")
    status, _, err = _cli("agreement", str(path))
    assert status == 2
    assert "line 9" in err
    status, out, err = _cli("agreement", str(tmp_path / "absent.csv"), "--json")
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert "cannot read the ratings file" in err


def test_cli_writes_csv_and_pdf_and_text(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    # A byte-order mark and extra columns are accepted.
    path.write_text(
        "\ufeff" + _rows_csv("pair,rater,clearance_pct,note", *[g + ",x" for g in GOOD]), "utf-8"
    )
    status, out, err = _cli(
        "agreement", str(path), "--csv", str(tmp_path / "a.csv"), "--pdf", str(tmp_path / "a.pdf")
    )
    assert status == 0, err
    assert out.startswith("ICC(2,1): ")
    assert "A vs B: kappa" in out
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "a.csv").read_text("utf-8").startswith(",".join(CSV_COLUMNS))


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([{"pair": 1, "rater": "A"}], "missing column 'clearance_pct'"),
        ([{"pair": 1, "rater": "A|B", "clearance_pct": 3}], "contains '|'"),
        ([{"pair": " ", "rater": "A", "clearance_pct": 3}], "pair is empty"),
        ([{"pair": 1, "rater": "A", "clearance_pct": True}], "not a number"),
    ],
)
def test_library_refuses_bad_records(rows: list[dict[str, Any]], needle: str) -> None:
    with pytest.raises(RatingsError, match=None) as exc:
        compute_agreement(rows)
    assert needle in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert exc.value.exit_code == 2


def test_dataframe_input_is_checked_too() -> None:
    frame = pd.DataFrame({"pair": [1, 1, 2, 2, 3, 3], "rater": list("ABABAB")})
    with pytest.raises(RatingsError, match="missing column 'clearance_pct'"):
        compute_agreement(frame)
    frame["clearance_pct"] = [10.0, 11.0, 50.0, 55.0, 80.0, 200.0]
    with pytest.raises(RatingsError, match="row 6 is 200, outside 0-100"):
        compute_agreement(frame)
