"""`vein-tracker agreement RATINGS.csv`: agreement of blinded raters and the automatic figure.

The CSV has the header ``pair,rater,clearance_pct`` (one row per rating; a rater named
``auto`` is the automatic figure). Prints ICC(2,1) with its 95 % CI, quadratic-weighted
kappa on the quartile grades and the mean absolute difference for every two raters;
with ``--json`` one object on stdout (:meth:`vein_tracker.agreement.Agreement.to_dict`).
``--csv`` and ``--pdf`` write the exports. Exit status 2, with one line on stderr, for a
table that cannot be used (missing column, a clearance that is not a number or is
outside 0-100, one rater only, fewer than 3 pairs rated by every rater).
Heavy imports (pandas, pingouin, scikit-learn) happen inside :func:`_run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "agreement",
        help="agreement of blinded clearance ratings (ICC, kappa, Bland-Altman)",
        description=(
            "Agreement between raters of before/after pairs, and between each rater and the "
            "automatic figure (rater 'auto'): ICC(2,1) with its 95 % CI on clearance % "
            "(pairs rated by every rater), quadratic-weighted Cohen's kappa on quartile "
            "grades and mean absolute difference for every two raters. "
            "Exit status 2: the ratings cannot be used (reason on stderr)."
        ),
    )
    p.add_argument("ratings", type=Path, metavar="RATINGS.csv", help="pair,rater,clearance_pct")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--csv", type=Path, metavar="OUT.csv", help="also write the statistics as CSV")
    p.add_argument(
        "--pdf", type=Path, metavar="OUT.pdf", help="also write a PDF with Bland-Altman plots"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..agreement import agreement_csv, agreement_pdf, compute_agreement, read_ratings_csv
    from .export import write_atomically

    try:
        table = read_ratings_csv(args.ratings)
    except OSError as exc:
        print(
            f"vein-tracker: cannot read the ratings file {str(args.ratings)!r}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    result = compute_agreement(table)
    for out, make in ((args.csv, agreement_csv), (args.pdf, agreement_pdf)):
        if out is None:
            continue
        write_atomically(Path(out), make(result))
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False))
        return 0
    icc = result.icc
    if icc.value is None:
        print(f"{icc.form}: undefined (every rating the same) on {icc.pairs} pairs")
    else:
        ci = f" (95 % CI {icc.ci95[0]:.3f} to {icc.ci95[1]:.3f})" if icc.ci95 else ""
        print(f"{icc.form}: {icc.value:.3f}{ci} on {icc.pairs} pairs rated by every rater")
    for rp in result.rater_pairs:
        kappa = "undefined" if rp.kappa is None else f"{rp.kappa:.3f}"
        print(
            f"{rp.raters[0]} vs {rp.raters[1]}: kappa {kappa}, mean |difference| "
            f"{rp.mean_abs_diff:.1f} points on {rp.pairs} pairs"
        )
    return 0
