"""Agreement between blinded raters of clearance, and between them and the automatic figure.

A ratings table has one row per rating: ``pair`` (a before/after pair's id, any text),
``rater`` (a name; ``"auto"`` is the automatic figure) and ``clearance_pct`` (0-100).
From it :func:`compute_agreement` gives, as a frozen :class:`Agreement`:

- ICC(2,1) (two-way random effects, absolute agreement, single rater; pingouin's
  ``ICC(A,1)`` row, McGraw and Wong's notation) with its 95 % confidence interval, on the
  clearance of the pairs rated by every rater;
- for every two raters, on the pairs both rated: quadratic-weighted Cohen's kappa on the
  quartile grades (scikit-learn), the mean absolute difference in points, and
  Bland-Altman statistics (mean difference, 95 % limits of agreement) with a plot.

The statistics come from the libraries (pingouin, scikit-learn), not hand-written
formulas. The quartile rule is :func:`vein_tracker.outcome.quartile`. Exports: JSON
(:meth:`Agreement.to_dict`, the contract of ``vein-tracker agreement --json``), CSV
(:func:`agreement_csv`) and PDF (:func:`agreement_pdf`).

This module reads no database and imports no streamlit; the app and the CLI pass it a
table. Bad tables raise :class:`RatingsError` (a ``ValueError``, exit status 2) with one
line a clinic user can act on.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .errors import VeinTrackerError
from .outcome import GRADES, quartile

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

#: Columns a ratings table must have (others are ignored).
RATINGS_COLUMNS: Final[tuple[str, str, str]] = ("pair", "rater", "clearance_pct")
#: The rater name of the automatic figure.
AUTO_RATER: Final[str] = "auto"
#: The fewest pairs rated by every rater that agreement is computed on.
MIN_COMMON_PAIRS: Final[int] = 3
#: The ICC form reported.
ICC_FORM: Final[str] = "ICC(2,1)"
#: Joins two rater names (in sorted order) in the keys of the JSON and CSV.
PAIR_SEP: Final[str] = "|"
#: Half-width of the Bland-Altman limits of agreement, in standard deviations.
LOA_Z: Final[float] = 1.96

#: pingouin's name of ICC(2,1): two-way random, absolute agreement, single rater.
_PINGOUIN_ICC2_ROW = "ICC(A,1)"
_FONT = "DejaVu"
# pingouin's rounding lives in a process-wide dict: change it under a lock only.
_PINGOUIN_LOCK = threading.Lock()


class RatingsError(VeinTrackerError, ValueError):
    """A ratings table cannot be used (missing column, bad value, too few raters or pairs)."""

    exit_code = 2


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Icc:
    """The intraclass correlation of clearance over the pairs rated by every rater.

    Attributes
    ----------
    form : str
        ``"ICC(2,1)"``.
    value : float or None
        The ICC; None when undefined (every rating of every pair the same).
    ci95 : (low, high) of float, or None
        Its 95 % confidence interval; None when undefined.
    pairs : int
        Number of pairs it is computed on (those every rater rated).
    raters : tuple of str
        The raters, sorted.
    """

    form: str
    value: float | None
    ci95: tuple[float, float] | None
    pairs: int
    raters: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"form", "value", "ci95"}``: the ``icc`` member of the JSON contract."""
        return {
            "form": self.form,
            "value": self.value,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
        }


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman statistics of two raters' clearance on the pairs both rated.

    Differences are ``first - second`` in the order of ``raters`` (sorted names).

    Attributes
    ----------
    raters : (str, str)
        The two raters, sorted.
    mean_pct : tuple of float
        Per pair, the mean of the two ratings, percent.
    diff_pct : tuple of float
        Per pair, first minus second rating, points.
    mean_diff : float
        Mean difference (bias), points.
    sd_diff : float or None
        Standard deviation of the differences (ddof 1), points; None for one pair.
    loa : (low, high) of float, or None
        95 % limits of agreement, ``mean_diff ± 1.96 sd_diff``, points.
    """

    raters: tuple[str, str]
    mean_pct: tuple[float, ...]
    diff_pct: tuple[float, ...]
    mean_diff: float
    sd_diff: float | None
    loa: tuple[float, float] | None

    @property
    def pairs(self) -> int:
        return len(self.diff_pct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "raters": list(self.raters),
            "pairs": self.pairs,
            "mean_diff": self.mean_diff,
            "sd_diff": self.sd_diff,
            "loa": list(self.loa) if self.loa is not None else None,
        }


@dataclass(frozen=True)
class RaterPairAgreement:
    """Agreement of two raters on the pairs both rated.

    Attributes
    ----------
    raters : (str, str)
        Sorted names; :attr:`key` joins them with ``"|"``.
    pairs : int
        Number of pairs both rated.
    kappa : float or None
        Quadratic-weighted Cohen's kappa on the quartile grades; None when undefined
        (both raters put every pair in one and the same quartile).
    mean_abs_diff : float
        Mean absolute difference of clearance, points.
    bland_altman : BlandAltman
    """

    raters: tuple[str, str]
    pairs: int
    kappa: float | None
    mean_abs_diff: float
    bland_altman: BlandAltman

    @property
    def key(self) -> str:
        return PAIR_SEP.join(self.raters)

    @property
    def involves_auto(self) -> bool:
        return AUTO_RATER in self.raters


@dataclass(frozen=True)
class Agreement:
    """Agreement of a ratings table; see the module docstring.

    Attributes
    ----------
    pairs : int
        Number of distinct pairs in the table (the ICC's own count is ``icc.pairs``).
    raters : tuple of str
        Every rater, sorted (``"auto"`` among them when the table has it).
    icc : Icc
    rater_pairs : tuple of RaterPairAgreement
        Every two raters, in the order of their keys.
    """

    pairs: int
    raters: tuple[str, ...]
    icc: Icc
    rater_pairs: tuple[RaterPairAgreement, ...]

    @property
    def kappa(self) -> dict[str, float | None]:
        return {rp.key: rp.kappa for rp in self.rater_pairs}

    @property
    def mean_abs_diff(self) -> dict[str, float]:
        return {rp.key: rp.mean_abs_diff for rp in self.rater_pairs}

    def pair(self, a: str, b: str) -> RaterPairAgreement:
        """The agreement of raters ``a`` and ``b`` (either order); KeyError if absent."""
        key = PAIR_SEP.join(sorted((a, b)))
        for rp in self.rater_pairs:
            if rp.key == key:
                return rp
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``vein-tracker agreement --json``.

        ``{"pairs": N, "raters": [...], "icc": {"form", "value", "ci95"},
        "kappa": {"A|B": x}, "mean_abs_diff": {"A|B": x}}``; undefined values are null.
        """
        return {
            "pairs": self.pairs,
            "raters": list(self.raters),
            "icc": self.icc.to_dict(),
            "kappa": self.kappa,
            "mean_abs_diff": self.mean_abs_diff,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per two raters: pairs, kappa, mean |difference|, Bland-Altman figures."""
        import pandas as pd

        rows = [
            {
                "raters": rp.key,
                "pairs": rp.pairs,
                "kappa": rp.kappa,
                "mean_abs_diff": rp.mean_abs_diff,
                "mean_diff": rp.bland_altman.mean_diff,
                "loa_low": rp.bland_altman.loa[0] if rp.bland_altman.loa else None,
                "loa_high": rp.bland_altman.loa[1] if rp.bland_altman.loa else None,
            }
            for rp in self.rater_pairs
        ]
        return pd.DataFrame(
            rows,
            columns=[
                "raters",
                "pairs",
                "kappa",
                "mean_abs_diff",
                "mean_diff",
                "loa_low",
                "loa_high",
            ],
        )


# --------------------------------------------------------------------------- input


def _clean_text(value: Any, *, column: str, where: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise RatingsError(f"ratings: {column} is empty on {where}")
    text = str(value).strip()
    if not text:
        raise RatingsError(f"ratings: {column} is empty on {where}")
    return text


def _clean_pct(value: Any, *, where: str) -> float:
    if isinstance(value, bool):
        raise RatingsError(f"ratings: clearance_pct on {where} is not a number: {value!r}")
    try:
        pct = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RatingsError(
            f"ratings: clearance_pct on {where} is not a number: {value!r}"
        ) from None
    if not math.isfinite(pct):
        raise RatingsError(f"ratings: clearance_pct on {where} is not a number: {value!r}")
    if not 0.0 <= pct <= 100.0:
        raise RatingsError(
            f"ratings: clearance_pct on {where} is {pct:g}, outside 0-100 (a percentage)"
        )
    return pct


def _validate(records: Iterable[tuple[str, Any, Any, Any]]) -> pd.DataFrame:
    """Check ``(where, pair, rater, clearance)`` records; the clean long table."""
    import pandas as pd

    seen: dict[tuple[str, str], str] = {}
    pairs: list[str] = []
    raters: list[str] = []
    values: list[float] = []
    for where, pair_v, rater_v, pct_v in records:
        pair = _clean_text(pair_v, column="pair", where=where)
        rater = _clean_text(rater_v, column="rater", where=where)
        if PAIR_SEP in rater:
            raise RatingsError(
                f"ratings: rater name {rater!r} on {where} contains {PAIR_SEP!r}; rename the rater"
            )
        pct = _clean_pct(pct_v, where=where)
        first = seen.setdefault((pair, rater), where)
        if first != where:
            raise RatingsError(
                f"ratings: rater {rater!r} rated pair {pair!r} twice ({first} and {where}); "
                "keep one rating per rater and pair"
            )
        pairs.append(pair)
        raters.append(rater)
        values.append(pct)
    if not values:
        raise RatingsError("ratings: the table has no ratings")
    names = sorted(set(raters))
    if len(names) < 2:
        raise RatingsError(
            f"ratings: agreement needs at least two raters, found one ({names[0]!r})"
        )
    frame = pd.DataFrame(
        {
            "pair": pd.Series(pairs, dtype=object),
            "rater": pd.Series(raters, dtype=object),
            "clearance_pct": pd.Series(values, dtype="float64"),
        }
    )
    common = _common_pairs(frame, names)
    if len(common) < MIN_COMMON_PAIRS:
        raise RatingsError(
            f"ratings: only {len(common)} pair(s) are rated by every rater "
            f"({', '.join(names)}); agreement needs at least {MIN_COMMON_PAIRS}"
        )
    return frame


def _common_pairs(frame: pd.DataFrame, raters: Sequence[str]) -> list[str]:
    """The pairs every rater rated, in sorted order."""
    by_rater = frame.groupby("rater", sort=True)["pair"].agg(set)
    common = set.intersection(*(by_rater[r] for r in raters))
    return sorted(common)


def validate_ratings(table: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Check a ratings table and return it clean.

    Parameters
    ----------
    table : DataFrame or iterable of mappings
        Columns (keys) ``pair``, ``rater``, ``clearance_pct``; other columns are ignored.

    Returns
    -------
    DataFrame
        Columns ``pair`` (str), ``rater`` (str), ``clearance_pct`` (float64, 0-100), one
        row per rating, in the input's order.

    Raises
    ------
    RatingsError
        A column is missing, a value is empty or not a number, a clearance is outside
        0-100, a rater rated a pair twice, a rater name contains ``"|"``, there is only
        one rater, or fewer than 3 pairs are rated by every rater.
    """
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        columns = [str(c) for c in table.columns]
        _check_columns(columns)
        rows: Iterable[tuple[str, Any, Any, Any]] = (
            (f"row {i + 1}", p, r, v)
            for i, (p, r, v) in enumerate(
                zip(table["pair"], table["rater"], table["clearance_pct"], strict=True)
            )
        )
        return _validate(rows)
    records = list(table)
    for i, rec in enumerate(records):
        _check_columns(list(rec.keys()), where=f"row {i + 1}")
    return _validate(
        (f"row {i + 1}", rec["pair"], rec["rater"], rec["clearance_pct"])
        for i, rec in enumerate(records)
    )


def _check_columns(columns: Sequence[str], *, where: str | None = None) -> None:
    missing = [c for c in RATINGS_COLUMNS if c not in columns]
    if missing:
        place = f" on {where}" if where else ""
        raise RatingsError(
            f"ratings: missing column {missing[0]!r}{place}; the header must be "
            f"{','.join(RATINGS_COLUMNS)}"
        )


def read_ratings_csv(source: str | Path | bytes) -> pd.DataFrame:
    """Read and check a ratings CSV (header ``pair,rater,clearance_pct``).

    Parameters
    ----------
    source : path or bytes
        The CSV file (UTF-8, a byte-order mark allowed), or its bytes.

    Returns
    -------
    DataFrame
        As :func:`validate_ratings`; error messages give the CSV's line numbers.

    Raises
    ------
    RatingsError
        As :func:`validate_ratings`, or the file is not UTF-8 text.
    OSError
        The file cannot be read.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RatingsError("ratings: the file is not UTF-8 text; save it as CSV (UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise RatingsError(
            f"ratings: the file is empty; the header must be {','.join(RATINGS_COLUMNS)}"
        )
    names = [h.strip() for h in header]
    _check_columns(names)
    index = {c: names.index(c) for c in RATINGS_COLUMNS}

    def records() -> Iterable[tuple[str, Any, Any, Any]]:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line, e.g. at the end of the file
            where = f"line {reader.line_num}"
            pair, rater, pct = (
                row[index[c]] if index[c] < len(row) else "" for c in RATINGS_COLUMNS
            )
            yield where, pair, rater, pct

    return _validate(records())


# --------------------------------------------------------------------------- statistics


def _icc(frame: pd.DataFrame, raters: Sequence[str], common: Sequence[str]) -> Icc:
    """ICC(2,1) and its 95 % CI from pingouin, on the pairs every rater rated."""
    import numpy as np
    import pingouin as pg

    data = frame[frame["pair"].isin(set(common))]
    with _PINGOUIN_LOCK, warnings.catch_warnings():
        # pingouin 0.7 calls DataFrame.dropna(inplace=True), deprecated by pandas 3.1;
        # the result is unaffected.
        warnings.filterwarnings(
            "ignore",
            message=r"The inplace keyword in DataFrame\.dropna",
            category=DeprecationWarning,
            module=r"pingouin\.",
        )
        saved = dict(pg.options)
        # pingouin rounds its CI95 column to 2 decimals by default; keep full precision.
        for key in [k for k in pg.options if k.startswith("round.")]:
            del pg.options[key]
        pg.options["round"] = None
        try:
            # Zero variance (every rating equal) makes the ICC 0/0: NaN, reported as None.
            with np.errstate(divide="ignore", invalid="ignore"):
                table = pg.intraclass_corr(
                    data=data,
                    targets="pair",
                    raters="rater",
                    ratings="clearance_pct",
                    nan_policy="raise",
                )
        finally:
            pg.options.clear()
            pg.options.update(saved)
    row = table.set_index("Type").loc[_PINGOUIN_ICC2_ROW]
    value = float(row["ICC"])
    lo, hi = (float(v) for v in row["CI95"])
    finite = math.isfinite(value)
    return Icc(
        form=ICC_FORM,
        value=value if finite else None,
        ci95=(lo, hi) if finite and math.isfinite(lo) and math.isfinite(hi) else None,
        pairs=len(common),
        raters=tuple(raters),
    )


def _kappa(grades_a: Sequence[int], grades_b: Sequence[int]) -> float | None:
    """Quadratic-weighted kappa from scikit-learn over the four quartiles; None if undefined."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(grades_a) | set(grades_b)) == 1:
        # Both raters put every pair in one and the same quartile: expected and observed
        # disagreement are both 0 and kappa is 0/0 (scikit-learn warns and returns NaN).
        return None
    # All four labels, so that the quadratic weights see the true distance between
    # grades even when a quartile is unused (without them grades 0 and 2 would be
    # one step apart).
    return float(
        cohen_kappa_score(
            list(grades_a), list(grades_b), weights="quadratic", labels=list(range(len(GRADES)))
        )
    )


def bland_altman(a_pct: Sequence[float], b_pct: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard deviation (ddof 1) of the differences ``a - b``, points.

    The SD is None for a single pair.
    """
    import numpy as np

    a = np.asarray(a_pct, dtype=np.float64)
    b = np.asarray(b_pct, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("a_pct and b_pct must be two non-empty sequences of the same length")
    d = a - b
    sd = float(np.std(d, ddof=1)) if d.size > 1 else None
    return float(np.mean(d)), sd


def _rater_pair(frame: pd.DataFrame, a: str, b: str) -> RaterPairAgreement:
    wide = frame[frame["rater"].isin((a, b))].pivot(
        index="pair", columns="rater", values="clearance_pct"
    )
    wide = wide.dropna(axis=0, how="any").sort_index()
    va = [float(v) for v in wide[a]]
    vb = [float(v) for v in wide[b]]
    mean_diff, sd = bland_altman(va, vb)
    loa = (mean_diff - LOA_Z * sd, mean_diff + LOA_Z * sd) if sd is not None else None
    ba = BlandAltman(
        raters=(a, b),
        mean_pct=tuple((x + y) / 2.0 for x, y in zip(va, vb, strict=True)),
        diff_pct=tuple(x - y for x, y in zip(va, vb, strict=True)),
        mean_diff=mean_diff,
        sd_diff=sd,
        loa=loa,
    )
    return RaterPairAgreement(
        raters=(a, b),
        pairs=len(va),
        kappa=_kappa([quartile(v) for v in va], [quartile(v) for v in vb]),
        mean_abs_diff=float(sum(abs(x - y) for x, y in zip(va, vb, strict=True)) / len(va)),
        bland_altman=ba,
    )


def compute_agreement(table: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Agreement:
    """Agreement of a ratings table: ICC(2,1), kappa, mean |difference|, Bland-Altman.

    Parameters
    ----------
    table : DataFrame or iterable of mappings
        One rating per row: ``pair``, ``rater``, ``clearance_pct`` (percent, 0-100).
        Checked with :func:`validate_ratings`.

    Returns
    -------
    Agreement

    Raises
    ------
    RatingsError
        See :func:`validate_ratings`.
    """
    frame = validate_ratings(table)
    raters = tuple(sorted(set(frame["rater"])))
    common = _common_pairs(frame, raters)
    return Agreement(
        pairs=int(frame["pair"].nunique()),
        raters=raters,
        icc=_icc(frame, raters, common),
        rater_pairs=tuple(_rater_pair(frame, a, b) for a, b in itertools.combinations(raters, 2)),
    )


# --------------------------------------------------------------------------- exports


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


#: Columns of :func:`agreement_csv`.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "statistic",
    "raters",
    "value",
    "ci95_low",
    "ci95_high",
    "pairs",
)


def agreement_csv(agreement: Agreement) -> bytes:
    """The agreement as CSV bytes (UTF-8), one statistic per row.

    Columns :data:`CSV_COLUMNS`: ``statistic`` (``ICC(2,1)``, ``kappa_quadratic``,
    ``mean_abs_diff``, ``bland_altman_mean_diff``, ``bland_altman_loa_low``,
    ``bland_altman_loa_high``), ``raters`` (names joined with ``|``), ``value``,
    ``ci95_low``/``ci95_high`` (the ICC's only), ``pairs`` (the pairs it is computed
    on). Undefined values are empty cells. Full precision (``repr`` of the float).
    """

    def num(v: float | None) -> str:
        return "" if v is None else repr(float(v))

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    icc = agreement.icc
    writer.writerow(
        [
            icc.form,
            PAIR_SEP.join(icc.raters),
            num(icc.value),
            num(icc.ci95[0] if icc.ci95 else None),
            num(icc.ci95[1] if icc.ci95 else None),
            icc.pairs,
        ]
    )
    for rp in agreement.rater_pairs:
        ba = rp.bland_altman
        for name, value in (
            ("kappa_quadratic", rp.kappa),
            ("mean_abs_diff", rp.mean_abs_diff),
            ("bland_altman_mean_diff", ba.mean_diff),
            ("bland_altman_loa_low", ba.loa[0] if ba.loa else None),
            ("bland_altman_loa_high", ba.loa[1] if ba.loa else None),
        ):
            writer.writerow([name, rp.key, num(value), "", "", rp.pairs])
    return out.getvalue().encode("utf-8")


def bland_altman_png(
    ba: BlandAltman,
    *,
    size_in: tuple[float, float] = (5.0, 3.4),
    dpi: int = 150,
) -> bytes:
    """PNG of a Bland-Altman plot: per pair, the difference against the mean of two raters.

    Parameters
    ----------
    ba : BlandAltman
    size_in : (width, height)
        Figure size in inches.
    dpi : int

    Returns
    -------
    bytes
        A PNG file (no text metadata): the points, the mean difference (solid line) and
        the 95 % limits of agreement (dashed), x the mean clearance in percent, y the
        difference ``first - second`` in points.
    """
    # The object API with an Agg canvas: no pyplot global state, safe in threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a, b = ba.raters
    fig = Figure(figsize=size_in, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(ba.mean_pct, ba.diff_pct, s=18, color="#1f5fa8", alpha=0.8, zorder=3)
    ax.axhline(ba.mean_diff, color="#1f5fa8", linewidth=1.2, label=f"mean {ba.mean_diff:+.1f}")
    if ba.loa is not None:
        for i, limit in enumerate(ba.loa):
            ax.axhline(
                limit,
                color="#c0392b",
                linestyle="--",
                linewidth=1.0,
                label=f"95 % limits {ba.loa[0]:+.1f} / {ba.loa[1]:+.1f}" if i == 0 else None,
            )
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    ax.set_xlim(-2.0, 102.0)
    ax.set_xlabel("mean clearance of the two, %")
    ax.set_ylabel(f"{a} − {b}, points")
    ax.set_title(f"Bland–Altman: {a} vs {b} ({ba.pairs} pairs)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def icc_reading(value: float | None) -> str:
    """A plain reading of an ICC (Koo and Li 2016): poor, moderate, good or excellent."""
    if value is None:
        return "undefined"
    if value < 0.5:
        return "poor"
    if value < 0.75:
        return "moderate"
    if value <= 0.9:
        return "good"
    return "excellent"


def _font_path(name: str) -> str:
    return str(resources.files("vein_tracker") / "fonts" / name)


def agreement_pdf(
    agreement: Agreement,
    *,
    title: str = "Agreement of clearance ratings",
    subtitle: str | None = None,
    clinic_name: str | None = None,
    generated_on: dt.date | None = None,
) -> bytes:
    """The agreement as a PDF (A4 portrait): the ICC, a table per two raters, the plots.

    Parameters
    ----------
    agreement : Agreement
    title : str
    subtitle : str, optional
        E.g. the rating session's name.
    clinic_name : str, optional
        Printed above the title.
    generated_on : date, optional
        Printed under the title (default: today).

    Returns
    -------
    bytes
        A PDF with the bundled DejaVu Sans fonts (any Unicode rater name prints).
    """
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    day = generated_on or dt.date.today()
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font(_FONT, "", _font_path("DejaVuSans.ttf"))
    pdf.add_font(_FONT, "B", _font_path("DejaVuSans-Bold.ttf"))
    pdf.set_title(title)
    pdf.set_creator("vein_tracker")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    nl: dict[str, Any] = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT, "align": "L"}

    _pdf_heading(pdf, width, nl, title=title, subtitle=subtitle, clinic_name=clinic_name, day=day)
    _pdf_method(pdf, width, nl, agreement)
    _pdf_icc(pdf, width, nl, agreement.icc)
    _pdf_table(pdf, width, agreement)
    _pdf_plots(pdf, width, agreement)
    return bytes(pdf.output())


def _pdf_heading(
    pdf: Any,
    width: float,
    nl: dict[str, Any],
    *,
    title: str,
    subtitle: str | None,
    clinic_name: str | None,
    day: dt.date,
) -> None:
    """The clinic's name, the title, the subtitle and the date."""
    if clinic_name:
        pdf.set_font(_FONT, "B", 12)
        pdf.multi_cell(width, 6, clinic_name, **nl)
    pdf.set_font(_FONT, "B", 16)
    pdf.multi_cell(width, 8, title, **nl)
    pdf.set_font(_FONT, "", 10)
    if subtitle:
        pdf.multi_cell(width, 6, subtitle, **nl)
    pdf.multi_cell(width, 5, f"Prepared on {day.strftime('%d %b %Y')}.", **nl)
    pdf.ln(2)


def _pdf_method(pdf: Any, width: float, nl: dict[str, Any], agreement: Agreement) -> None:
    """Who rated how many pairs, and what each statistic is."""
    pdf.set_font(_FONT, "", 9)
    auto_note = (
        f' "{AUTO_RATER}" is the automatic figure of vein_tracker.'
        if AUTO_RATER in agreement.raters
        else ""
    )
    pdf.multi_cell(
        width,
        4.5,
        f"{agreement.pairs} before/after pairs rated for clearance (0-100 %) by "
        f"{len(agreement.raters)} raters: {', '.join(agreement.raters)}.{auto_note} "
        "Quartile grades: 0-25, 26-50, 51-75, 76-100 %. ICC(2,1): two-way random effects, "
        "absolute agreement, single rater, on the pairs every rater rated. Kappa: "
        "quadratic-weighted Cohen's kappa on the quartile grades. Bland-Altman: mean "
        "difference and 95 % limits of agreement (mean ± 1.96 SD), in points.",
        **nl,
    )
    pdf.ln(3)


def _pdf_icc(pdf: Any, width: float, nl: dict[str, Any], icc: Icc) -> None:
    """The ICC in one line, with its 95 % interval and a plain reading."""
    pdf.set_font(_FONT, "B", 12)
    if icc.value is None:
        icc_text = f"{icc.form}: undefined (every rating the same) on {icc.pairs} pairs"
    else:
        ci = f", 95 % CI {icc.ci95[0]:.2f} to {icc.ci95[1]:.2f}" if icc.ci95 else ""
        icc_text = (
            f"{icc.form} = {icc.value:.3f}{ci} on {icc.pairs} pairs ({icc_reading(icc.value)})"
        )
    pdf.multi_cell(width, 7, icc_text, **nl)
    pdf.ln(2)


def _pdf_table(pdf: Any, width: float, agreement: Agreement) -> None:
    """One row per two raters: pairs, kappa, mean |diff|, mean diff, limits."""
    pdf.set_font(_FONT, "", 9)
    with pdf.table(
        col_widths=(50, 16, 20, 26, 26, width - 138),
        width=width,
        line_height=5,
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
    ) as table:
        head = table.row()
        for text in ("Raters", "Pairs", "Kappa", "Mean |diff|", "Mean diff", "95 % limits"):
            head.cell(text)
        for rp in agreement.rater_pairs:
            ba = rp.bland_altman
            limits = f"{ba.loa[0]:+.1f} to {ba.loa[1]:+.1f}" if ba.loa else "—"
            row = table.row()
            for text in (
                f"{rp.raters[0]} vs {rp.raters[1]}",
                str(rp.pairs),
                _fmt(rp.kappa) or "—",
                f"{rp.mean_abs_diff:.1f}",
                f"{ba.mean_diff:+.1f}",
                limits,
            ):
                row.cell(text)


def _pdf_plots(pdf: Any, width: float, agreement: Agreement) -> None:
    """The Bland-Altman plots, two a row, a new page when a row does not fit."""
    half = (width - 4) / 2
    plot_h = half * 3.4 / 5.0
    for i, rp in enumerate(agreement.rater_pairs):
        if i % 2 == 0:
            pdf.ln(4)
            if pdf.get_y() + plot_h > pdf.h - pdf.b_margin:
                pdf.add_page()
            y = pdf.get_y()
        x = pdf.l_margin + (i % 2) * (half + 4)
        pdf.image(io.BytesIO(bland_altman_png(rp.bland_altman)), x=x, y=y, w=half)
        if i % 2 == 1 or i == len(agreement.rater_pairs) - 1:
            pdf.set_y(y + plot_h)
