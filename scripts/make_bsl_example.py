"""Generate ``creditsim/examples/loans_bsl.parquet``: the loan tape of the example BSL CLO (``bsl_clo.yaml``).

A synthetic but realistic broadly syndicated loan (BSL) portfolio as a US CLO 2.0 holds it at closing:
first-lien, floating-rate term loans to leveraged large corporates, one position per obligor. Every
number below is a design decision of this example; the reason is written next to it. The tape follows
``shared/spec/loan-tape.md`` (all required columns, the optional ones that mean something for a BSL
loan) and passes :func:`creditsim.schema.validate_loan_tape`.

Why not :class:`creditsim.LoanTapeGenerator`: it draws the spec's generic corporate ranges (fixed and
floating coupons, SME to large corporates, 12-84-month terms, every rating from AAA to CCC) for
model training, not the narrow population a CLO buys. The one input taken from the package is the
base rate (the bundled macro history's policy rate at the cut-off).

Determinism: one ``numpy.random.default_rng(SEED)`` stream drawn in a fixed order, counts by exact
largest-remainder allocation (not multinomial draws), money rounded to whole currency units. The
shipped file is what :func:`build_bsl_tape` returns; ``tests/test_bsl_example.py`` regenerates it and
compares every value. (Parquet bytes are not compared: pyarrow writes its own version into the file.
If a numpy release ever changes the ``Generator`` streams used here, the test fails and the file must be
regenerated with this script and the example's numbers re-measured.)

Run from the repository root::

    python scripts/make_bsl_example.py            # writes creditsim/examples/loans_bsl.parquet
    python scripts/make_bsl_example.py --check    # exit 1 if the shipped file differs from a fresh build
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and str(ROOT) not in sys.path:
    # run as a script: this checkout's creditsim, not another installed copy
    sys.path.insert(0, str(ROOT))

from creditsim.datasets import load_macro_history  # noqa: E402
from creditsim.errors import ConfigError, DataError  # noqa: E402

OUT = ROOT / "creditsim" / "examples" / "loans_bsl.parquet"

#: seed of the one random stream; any fixed value would do
SEED = 20_251_015

#: obligors (= loans: one position per obligor, the usual CLO holding). US BSL CLOs hold ~250-400
#: names; 340 at an average position of ~$1.5m is a typical $500m deal.
N_LOANS = 340

#: collateral par at the cut-off, currency units (USD). Equal to ``collateral_balance`` of bsl_clo.yaml,
#: so the simulation's deal scale factor is exactly 1 and the YAML's note sizes are the real ones.
TARGET_PAR = 500_000_000

#: the cut-off month: the last month of the bundled macro history (creditsim.load_macro_history ends
#: 2025-09), so the MacroVAE paths start from an observed state. The newest loan is originated in it,
#: and simulate() takes the latest origination date as the cut-off by default.
CUTOFF_MONTH = "2025-09"

#: base rate of the floating coupons at the cut-off: the policy rate of CUTOFF_MONTH in the bundled
#: history (the simulator's SOFR proxy: floating coupons move one for one with the policy-rate path).
#: Read from the history in build_bsl_tape and checked against this value so that a silent data change
#: cannot shift every coupon.
BASE_RATE = 0.0422

#: rating mix by number of obligors (S&P-style notches; the schema folds notches into letter grades,
#: and the rating model works on letter grades). A freshly ramped, better-than-median BSL CLO: 30 %
#: BB (BB+/BB/BB-), 69 % single B with B+/B the bulk, 1 % CCC+ (new deals ramp with few CCC names; the
#: market's 5-7 % CCC sits in seasoned deals, under the usual 7.5 % limit). Average rating B+ by notch
#: (~14.1 on BB+ = 11 .. CCC = 18), Moody's WARF ~2,350. Decision (measured): the bundled rating model
#: gives every single B (B+, B and B- alike) a 4.3 % one-year default rate plus migration to CCC (~5 % a
#: year of defaults in the MacroVAE baseline). With the median CLO mix (~13 % BB, 7 % CCC, LGD 0.40) the
#: pool lost 7.7 % of par over the 5 baseline years and the equity's mean baseline IRR was about -50 %
#: (first version of this example); the example therefore holds the better half of the market's
#: portfolios, where the same deal earns a single-digit baseline return (bsl_clo.yaml).
RATING_MIX: dict[str, float] = {
    "BB+": 0.06, "BB": 0.10, "BB-": 0.14,
    "B+": 0.285, "B": 0.255, "B-": 0.15,
    "CCC+": 0.01, "CCC": 0.0,
}

#: margin over the base rate, basis points, by notch, of a loan syndicated in the cut-off month: BB
#: S+225-275, single B S+300-375, CCC S+425-475 (CCC names are former single Bs bought in the
#: secondary market).
SPREAD_BPS: dict[str, float] = {
    "BB+": 225.0, "BB": 250.0, "BB-": 275.0,
    "B+": 300.0, "B": 325.0, "B-": 375.0,
    "CCC+": 425.0, "CCC": 475.0,
}
#: extra margin of older vintages, bp, linear in the loan's seasoning: VINTAGE_PREMIUM_BPS for a loan
#: syndicated MAX_SEASONING_MONTHS before the cut-off, 0 for one of the cut-off month. New-issue
#: single-B margins tightened by about 100 bp from late 2023 (~S+425) to mid 2025 (~S+325); a loan keeps
#: the margin it was syndicated at (repricings are not modelled). The pool's weighted average spread
#: comes out near S+350, the level of CLO portfolios ramped in 2024.
VINTAGE_PREMIUM_BPS = 100.0
#: loan-level dispersion of the margin around its notch level (bp, normal), then rounded to the 25 bp
#: grid syndicated margins are quoted on and kept in [175, 650] bp
SPREAD_SD_BPS = 25.0

#: mean loss given default by letter grade (the model's LGD per loan is Beta around it). First-lien
#: senior secured term loans have recovered ~70 % of par on average (ultimate recoveries, rating-agency
#: loss studies), so LGD 0.30 for single B; 0.28 for BB (more junior debt below them), 0.40 for CCC
#: names (thinner cushion, loan-only structures).
LGD_BY_GRADE: dict[str, float] = {"BB": 0.28, "B": 0.30, "CCC": 0.40}

#: original term, months -> share: the 7-year term loan B is the standard BSL instrument; 5- and
#: 6-year tenors for amend-and-extends and some sponsors' deals
TERM_MIX: dict[int, float] = {84: 0.55, 72: 0.30, 60: 0.15}

#: loans were bought over the ramp-up and the two years before the cut-off (new issue and secondary):
#: origination month = cut-off month minus 0..23 months, uniform; the remaining terms are then 37-84 months
MAX_SEASONING_MONTHS = 23

#: position size, currency units: lognormal around $1.45m (sd of the log 0.45), kept in [$0.5m, $4m]
#: (concentration limits cap a single obligor at ~1 % of a $500m deal), then scaled to TARGET_PAR and
#: rounded to whole $1,000. CCC names are held in smaller sizes (downgraded positions partly sold).
POSITION_MEDIAN = 1_450_000.0
POSITION_LOG_SD = 0.45
POSITION_BOUNDS = (500_000.0, 4_000_000.0)
CCC_SIZE_FACTOR = 0.7

#: obligor-level interest coverage (EBITDA / interest, written to dti_dscr_origination, the spec's DSCR
#: column for corporates): BB ~3x, single B ~2x, CCC ~1.2x, lognormal dispersion, kept in [0.6, 5]
COVERAGE_BY_GRADE: dict[str, float] = {"BB": 3.0, "B": 2.0, "CCC": 1.2}

#: industry mix (share of obligors), close to the industry concentration of 2025 US CLO portfolios
#: (software/tech and healthcare the largest buckets, no industry above the usual 12-15 % limit)
INDUSTRY_MIX: dict[str, float] = {
    "software_technology": 0.12, "healthcare": 0.10, "business_services": 0.09,
    "insurance_financial_services": 0.07, "industrials_capital_goods": 0.07, "chemicals": 0.04,
    "building_materials": 0.04, "containers_packaging": 0.04, "consumer_goods": 0.05,
    "leisure_hotels_gaming": 0.05, "telecoms": 0.04, "media_entertainment": 0.03, "retail": 0.03,
    "food_beverage": 0.03, "automotive": 0.03, "aerospace_defense": 0.03, "transport_logistics": 0.03,
    "energy": 0.02, "utilities_power": 0.02, "education": 0.02, "restaurants": 0.02,
    "environmental_services": 0.03,
}

#: borrower domicile: a US BSL CLO is ~90 %+ US obligors; the usual non-US allowance is filled with
#: Canadian and European borrowers that issue in the US loan market
COUNTRY_MIX: dict[str, float] = {"US": 0.92, "CA": 0.03, "GB": 0.02, "LU": 0.02, "NL": 0.01}

#: lead arrangers, anonymised (the arranger does not enter the model; the column is required)
N_ARRANGERS = 12


def exact_counts(mix: dict, n: int) -> np.ndarray:
    """``(len(mix),)`` int64 counts summing to ``n`` in proportion to the mix (largest remainders), so
    the tape's composition is exactly the stated one and not a multinomial draw around it."""
    w = np.array(list(mix.values()), dtype=np.float64)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"mix weights must be finite, >= 0 and not all 0, got {mix}")
    raw = w / w.sum() * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _shuffled_labels(rng: np.random.Generator, mix: dict, n: int) -> np.ndarray:
    """``(n,)`` labels with exact counts (:func:`exact_counts`) in random order."""
    labels = np.repeat(np.array(list(mix.keys()), dtype=object), exact_counts(mix, n))
    return labels[rng.permutation(n)]


def policy_rate(month: str) -> float:
    """Policy rate of ``month`` (YYYY-MM) in the bundled macro history, annual decimal."""
    hist = load_macro_history()
    return float(hist.loc[pd.Timestamp(f"{month}-01"), "policy_rate"])


def letter_grade(notch: str) -> str:
    """Letter grade of an S&P-style notch (``"B+"`` -> ``"B"``, ``"CCC+"`` -> ``"CCC"``)."""
    return notch.rstrip("+-")


def build_bsl_tape(seed: int = SEED, n_loans: int = N_LOANS, target_par: int = TARGET_PAR) -> pd.DataFrame:
    """The example BSL tape, one row per loan (= obligor); deterministic in ``seed``.

    Columns: the spec's required ones plus ``spread_bps`` (margin over the base rate, bp),
    ``dti_dscr_origination`` (interest coverage, x), ``industry_sector``, ``rating`` (S&P-style notch),
    ``lgd_assumption`` (decimal) and ``current_balance`` (= original: bullet loans, currency units).
    ``interest_rate`` is the all-in coupon at the cut-off, base rate + margin, annual decimal.
    """
    for name, value, low in (("seed", seed, 0), ("n_loans", n_loans, 1), ("target_par", target_par, 1000)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if target_par % 1000:
        raise ConfigError(f"target_par must be a whole number of thousands (positions are rounded to "
                          f"$1,000), got {target_par}")
    base = policy_rate(CUTOFF_MONTH)
    if abs(base - BASE_RATE) > 1e-12:
        raise DataError(f"the bundled policy rate of {CUTOFF_MONTH} is {base}, the example was designed "
                           f"with {BASE_RATE}: re-check the deal's base rate and coupons before regenerating")
    rng = np.random.default_rng(seed)
    n = n_loans

    # draw order is part of the reproducibility contract: append new draws at the end only
    notch = _shuffled_labels(rng, RATING_MIX, n)
    grade = np.array([letter_grade(x) for x in notch], dtype=object)
    term = _shuffled_labels(rng, TERM_MIX, n).astype(np.int64)
    seasoning = rng.integers(0, MAX_SEASONING_MONTHS + 1, n)
    seasoning[rng.integers(0, n)] = 0  # at least one loan of the cut-off month (it sets the cut-off)
    day = rng.integers(1, 29, n)  # days 1..28 exist in every month
    log_size = np.log(POSITION_MEDIAN) + POSITION_LOG_SD * rng.standard_normal(n)
    spread_noise = SPREAD_SD_BPS * rng.standard_normal(n)
    coverage_noise = 0.25 * rng.standard_normal(n)
    industry = _shuffled_labels(rng, INDUSTRY_MIX, n)
    country = _shuffled_labels(rng, COUNTRY_MIX, n)
    arranger = rng.integers(1, N_ARRANGERS + 1, n)

    # position sizes: bounded lognormal, smaller for CCC, scaled to the target par in whole $1,000
    size = np.clip(np.exp(log_size), *POSITION_BOUNDS) * np.where(grade == "CCC", CCC_SIZE_FACTOR, 1.0)
    thousands = np.round(size / size.sum() * target_par / 1000.0)
    thousands[np.argmax(thousands)] += target_par / 1000.0 - thousands.sum()  # exact total par
    balance = thousands * 1000.0

    premium = VINTAGE_PREMIUM_BPS * seasoning / MAX_SEASONING_MONTHS
    spread = np.array([SPREAD_BPS[x] for x in notch]) + premium + spread_noise
    spread = np.clip(np.round(spread / 25.0) * 25.0, 175.0, 650.0)
    coverage = np.clip(np.array([COVERAGE_BY_GRADE[g] for g in grade]) * np.exp(coverage_noise), 0.6, 5.0)

    cutoff = pd.Period(CUTOFF_MONTH, freq="M")
    months = [cutoff - int(k) for k in seasoning]
    origination = pd.to_datetime([f"{m.year:04d}-{m.month:02d}-{int(d):02d}" for m, d in zip(months, day)])
    maturity = pd.to_datetime([o + pd.DateOffset(months=int(t)) for o, t in zip(origination, term)])

    tape = pd.DataFrame({
        "loan_id": [f"BSL{i + 1:04d}" for i in range(n)],
        "origination_date": origination.astype("datetime64[ns]"),
        "maturity_date": maturity.astype("datetime64[ns]"),
        "original_balance": balance,
        "interest_rate": np.round(base + spread / 1e4, 6),
        "rate_type": "floating",
        # syndicated term loans pay on 3-month SOFR periods; the engine projects every frequency as a
        # monthly schedule of the same term (creditsim.loans.book)
        "payment_frequency": "quarterly",
        # term loan B: 1 % a year of amortisation and a bullet; the 1 % is dropped (bullet), a small
        # simplification that keeps the collateral par flat between prepayments and defaults
        "amortization_type": "bullet",
        "asset_class": "corporate",
        "term_months": term,
        "geography_country": country,
        "borrower_type": "large_corporate",
        "originator_id": [f"ARR{int(a):02d}" for a in arranger],
        "vintage": [f"{m.year:04d}-{m.month:02d}" for m in months],
        "spread_bps": spread,
        "dti_dscr_origination": np.round(coverage, 2),
        "industry_sector": industry,
        "rating": notch,
        "lgd_assumption": np.array([LGD_BY_GRADE[g] for g in grade]),
        "current_balance": balance,
    })
    for col in ("loan_id", "rate_type", "payment_frequency", "amortization_type", "asset_class",
                "geography_country", "borrower_type", "originator_id", "vintage", "industry_sector", "rating"):
        tape[col] = tape[col].astype(str)
    return tape


def write_tape(tape: pd.DataFrame, path: Path = OUT) -> Path:
    """Write ``tape`` as Parquet (zstd, no index), the format of the shipped examples."""
    tape.to_parquet(path, index=False, compression="zstd")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"output Parquet file (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--check", action="store_true", help="compare with the existing file instead of writing it")
    args = ap.parse_args(argv)
    tape = build_bsl_tape()
    if args.check:
        shipped = pd.read_parquet(args.out)
        try:
            pd.testing.assert_frame_equal(shipped, tape, check_exact=True)
        except AssertionError as exc:
            print(f"{args.out} differs from a fresh build: {exc}", file=sys.stderr)
            return 1
        print(f"{args.out}: identical to a fresh build ({len(tape)} loans)")
        return 0
    write_tape(tape, args.out)
    print(f"wrote {args.out}: {len(tape)} loans, par {tape['current_balance'].sum():,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
