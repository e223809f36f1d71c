"""Bad-input suite for rating data (issue 10, ratings slice).

Each case is either a one-line clear error naming the field / row / parameter (``ERRORS``: case id,
call, error class, substring of the message) or a documented correct result (``RESULTS``: case id,
call, check). z > 0 is a good year throughout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, CreditSimError, DataError
from creditsim.ratings.ccc import expand_conditional_tm, expand_to_8x8
from creditsim.ratings.estimate import aalen_johansen, cohort_matrix, generator, monthly_matrix, ttc_matrix, validate_matrix
from creditsim.ratings.lifetime import matrices_term_structure, path_term_structure, scenario_weighted, ttc_term_structure
from creditsim.ratings.zfactor import ZFactorModel, conditional_matrix, thresholds
from creditsim.states import GRADES_7

SP = load_sp_ratings()
P7 = SP.matrix_7x7.to_numpy()
P8 = SP.matrix_8x8.to_numpy()


def _edit(m: np.ndarray, **cells: float) -> np.ndarray:
    """Copy of ``m`` with cells set, keys like ``r3c3`` (row 3, column 3)."""
    out = m.copy()
    for key, v in cells.items():
        r, c = key[1:].split("c")
        out[int(r), int(c)] = v
    return out


def _panel(**over: object) -> pd.DataFrame:
    """Small labelled yearly panel: 4 entities over years 0..2 (AAA..B, D)."""
    df = pd.DataFrame(
        {
            "entity": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
            "time": [0, 1, 2] * 4,
            "rating": ["A", "A", "BBB", "BB", "B", "D", "AA", "AA", "A", "B", "B", "B"],
        }
    )
    for col, val in over.items():
        df[col] = val
    return df


def _with_row(df: pd.DataFrame, entity: object, time: object, rating: object) -> pd.DataFrame:
    return pd.concat([df, pd.DataFrame({"entity": [entity], "time": [time], "rating": [rating]})], ignore_index=True)


DEF, OBL = SP.defaults, SP.obligors


def _set(df: pd.DataFrame, year: int, grade: str | None, value: float) -> pd.DataFrame:
    """Copy of a (year x grade) count frame with one cell (or a whole year when grade is None) set."""
    out = df.astype(np.float64)
    if grade is None:
        out.loc[year, :] = value
    else:
        out.loc[year, grade] = value
    return out


def _neg_swap(m: np.ndarray, row: int) -> np.ndarray:
    out = m.copy()
    out[row, 0] -= 0.01 + out[row, 0]
    out[row, row] += 0.01 + m[row, 0]
    return out


ERRORS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # --- matrices: not stochastic, wrong shape, D not absorbing
    ("matrix-row-sum", lambda: validate_matrix(_edit(P7, r3c3=P7[3, 3] + 0.01), labels=GRADES_7), DataError, "offending rows ['BBB'"),
    ("matrix-negative", lambda: validate_matrix(_neg_swap(P7, 4), labels=GRADES_7), DataError, "negative probabilities in rows ['BB']"),
    ("matrix-nan", lambda: validate_matrix(_edit(P7, r2c0=np.nan)), DataError, "non-finite (NaN/inf) entries in rows ['A']"),
    ("matrix-inf", lambda: thresholds(_edit(P8, r6c6=np.inf)), DataError, "rows ['CCC']"),
    ("matrix-not-square", lambda: validate_matrix(np.full((3, 4), 0.25)), DataError, "must be square (K, K), got shape (3, 4)"),
    ("matrix-1d", lambda: validate_matrix(np.ones(7) / 7), DataError, "must be square"),
    ("matrix-empty", lambda: validate_matrix(np.zeros((0, 0))), DataError, "at least 2 states"),
    ("matrix-1x1", lambda: validate_matrix(np.ones((1, 1))), DataError, "at least 2 states"),
    ("matrix-text", lambda: validate_matrix([["a", "b"], ["c", "d"]]), DataError, "cannot convert to a float array"),
    ("matrix-d-not-absorbing", lambda: validate_matrix(_edit(P7, r6c0=0.1, r6c6=0.9)), DataError, "default row 'D' must be absorbing"),
    ("matrix-7x7-as-8x8", lambda: expand_conditional_tm(P7, P7, z=0.0, rho=0.1), DataError, "ttc_8x8 must be 8x8"),
    ("matrix-8x8-as-7x7", lambda: expand_to_8x8(P8, method="calibrated"), DataError, "tm_7x7 must be 7x7"),
    ("ttc-frame-grades-out-of-order", lambda: thresholds(SP.matrix_8x8.iloc[::-1, ::-1]), DataError, "grades out of order"),
    ("ttc-frame-unknown-grade", lambda: thresholds(SP.matrix_8x8.rename(index={"BB": "Ba"})), DataError, "unknown grades ['Ba']"),
    ("monthly-stack-nan", lambda: monthly_matrix(np.stack([P8, _edit(P8, r4c4=np.nan)])), DataError, "P_annual: non-finite (NaN/inf) entries in matrix (1,), rows ['BB']"),
    ("monthly-steps-zero", lambda: monthly_matrix(P8, steps=0), ConfigError, "steps must be >= 1"),
    ("generator-unknown-method", lambda: generator(P8, method="exact"), ConfigError, "unknown generator method 'exact'"),
    # --- count tables
    ("counts-negative", lambda: cohort_matrix(counts=_edit(np.ones((7, 7)), r2c3=-1.0), states=GRADES_7), DataError, "negative counts at [(2, 3)]"),
    ("counts-fractional", lambda: cohort_matrix(counts=_edit(np.ones((7, 7)), r1c1=2.5), states=GRADES_7), DataError, "whole numbers"),
    ("counts-nan", lambda: ttc_matrix(_edit(np.ones((7, 7)), r0c0=np.nan)), DataError, "NaN/inf"),
    ("counts-shape", lambda: ttc_matrix(np.ones((7, 8))), DataError, "(K, K) or (T, K, K) migration counts, got shape (7, 8)"),
    ("counts-vs-states", lambda: cohort_matrix(counts=np.ones((8, 8)), states=GRADES_7), DataError, "counts are 8x8 but 7 states"),
    ("counts-grade-without-obligors", lambda: ttc_matrix(_edit(np.ones((7, 7)), **{f"r3c{j}": 0.0 for j in range(7)})), DataError, "no obligors in any year: ['BBB']"),
    # --- rating histories (panels)
    ("panel-unknown-grade", lambda: cohort_matrix(_panel(rating=["A"] * 11 + ["Baa"])), DataError, "column 'rating': unknown ratings ['Baa']"),
    ("panel-missing-column", lambda: aalen_johansen(_panel().drop(columns="time")), DataError, "panel lacks columns ['time']"),
    ("panel-empty", lambda: cohort_matrix(_panel().iloc[:0]), DataError, "panel has no rows"),
    ("panel-empty-aj", lambda: aalen_johansen(_panel().iloc[:0]), DataError, "has no rows"),
    ("panel-not-a-frame", lambda: cohort_matrix(P7), DataError, "panel must be a pandas DataFrame"),
    ("panel-time-nan", lambda: cohort_matrix(_panel(time=[0, 1, np.nan] + [0, 1, 2] * 3)), DataError, "column 'time' has NaN/inf at rows [2]"),
    ("panel-time-text", lambda: cohort_matrix(_panel(time=["2001-01"] * 12)), DataError, "column 'time' must be numeric or datetime"),
    ("panel-duplicate-entity-date", lambda: cohort_matrix(_with_row(_panel(), 2, 1, "BBB")), DataError, "duplicate (entity, time) rows with different ratings: (entity, time) [(2, 1.0)]"),
    ("panel-duplicate-entity-date-aj", lambda: aalen_johansen(_with_row(_panel(), 3, 0, "BB")), DataError, "(entity, time) [(3, 0.0)]"),
    ("panel-negative-code", lambda: cohort_matrix(_panel(rating=[0, 1, -1] + [2] * 9), states=GRADES_7), DataError, "integer codes must be in 0..7"),
    ("panel-8-grade-codes", lambda: cohort_matrix(_panel(rating=[0, 6, 7] + [3] * 9)), ConfigError, "integer rating codes 0..7 found"),
    ("panel-single-cohort", lambda: cohort_matrix(_panel().query("time == 0")), DataError, "single cohort"),
    ("panel-period-zero", lambda: cohort_matrix(_panel(), period=0), ConfigError, "period must be > 0"),
    ("panel-time-in-seconds", lambda: cohort_matrix(_panel(time=[0.0, 1e9, 2e9] * 4)), ConfigError, "time: 2000000000 cohorts of period=1 (is the time unit years?)"),
    ("panel-nr-option", lambda: cohort_matrix(_panel(), nr="keep"), ConfigError, "nr must be 'drop' or 'state'"),
    ("aj-window", lambda: aalen_johansen(_panel(), t_start=2.0, t_end=1.0), ConfigError, "t_end (1.0) must be greater than t_start (2.0)"),
    ("aj-end-times-missing", lambda: aalen_johansen(_panel(), end_times=pd.Series({1: 2.0, 2: 2.0})), DataError, "end_times lacks entities [3, 4]"),
    # --- Z-factor data and parameters
    ("z-fit-single-year", lambda: ZFactorModel().fit(defaults=DEF.loc[[1990], ["BBB", "BB", "B"]], obligors=OBL.loc[[1990], ["BBB", "BB", "B"]]), DataError, "at least 3 years of data, got 1 ([1990])"),
    ("rho-above-one", lambda: ZFactorModel(rho=1.5), ConfigError, "rho must be in [0, 1), got 1.5"),
    ("rho-zero-model", lambda: ZFactorModel(rho=0.0), ConfigError, "rho must be > 0 to identify Z"),
    ("rho-negative", lambda: conditional_matrix(P8, 0.0, -0.1), ConfigError, "rho must be in [0, 1), got -0.1"),
    ("rho-nan", lambda: conditional_matrix(P8, 0.0, float("nan")), ConfigError, "rho must be in [0, 1)"),
    ("z-nan", lambda: conditional_matrix(P8, [0.5, np.nan], 0.05), DataError, "z must be finite; NaN/inf at positions [(1,)]"),
    ("z-path-nan", lambda: path_term_structure(P8, [[0.1, np.nan, 0.2]], 0.05), DataError, "z_paths contains NaN/inf at (path, year) [(0, 2)]"),
    ("z-path-3d", lambda: path_term_structure(P8, np.zeros((2, 2, 2)), 0.05), DataError, "z_paths must be (H,) or (S, H)"),
    ("defaults-exceed-obligors", lambda: ZFactorModel(rho=0.05).fit(defaults=_set(DEF, 1990, "BB", 10**6), obligors=OBL), DataError, "defaults exceed obligors in years [1990]"),
    ("defaults-negative", lambda: ZFactorModel(rho=0.05).fit(defaults=_set(DEF, 1985, "BB", -1), obligors=OBL), DataError, "defaults has negative counts in years [1985]"),
    ("defaults-fractional", lambda: ZFactorModel(rho=0.05).fit(defaults=_set(DEF, 1987, "B", 2.5), obligors=OBL), DataError, "defaults must be whole numbers; fractional in (year, grade) [(1987, 'B')]"),
    ("obligors-fractional", lambda: ZFactorModel(rho=0.05).fit(defaults=DEF, obligors=OBL.astype(float) + 0.5), DataError, "obligors must be whole numbers"),
    ("defaults-unknown-grade", lambda: ZFactorModel(rho=0.05).fit(defaults=DEF.rename(columns={"BB": "Ba"}), obligors=OBL.rename(columns={"BB": "Ba"})), DataError, "unknown grades ['Ba']"),
    ("defaults-grades-out-of-order", lambda: ZFactorModel(rho=0.05).fit(defaults=DEF[DEF.columns[::-1]], obligors=OBL[OBL.columns[::-1]]), DataError, "grades out of order"),
    ("year-without-obligors", lambda: ZFactorModel(rho=0.05).fit(defaults=_set(DEF, 1995, None, 0), obligors=_set(OBL, 1995, None, 0)), DataError, "years with no obligors: [1995]"),
    ("z-fit-method", lambda: ZFactorModel().fit(defaults=DEF, obligors=OBL, method="ols"), ConfigError, "method must be 'mle', 'map' or 'wls', got 'ols'"),
    ("z-bound", lambda: ZFactorModel(z_bound=-1.0), ConfigError, "z_bound must be in"),
    ("n-nodes", lambda: ZFactorModel(n_nodes=10**7), ConfigError, "n_nodes must be in 1..200"),
    ("counts-in-zero-ttc-cell", lambda: ZFactorModel(P8, rho=0.05).fit(counts=np.stack([_edit(np.eye(8) * 50, r0c7=1.0)] * 3)), DataError, "AAA->D"),
    # --- lifetime parameters
    ("n-years-zero", lambda: ttc_term_structure(P8, 0), ConfigError, "n_years must be in 1..200"),
    ("n-years-fractional", lambda: ttc_term_structure(P8, 2.5), ConfigError, "n_years must be a whole number"),
    ("n-years-without-ttc", lambda: matrices_term_structure(np.stack([P8] * 3), n_years=5), ConfigError, "pass ttc"),
    ("scenario-weights", lambda: scenario_weighted([ttc_term_structure(P8, 3)] * 2, [0.5, 0.6]), ConfigError, "scenario weights must be >= 0 and sum to 1"),
    # --- CCC expansion options
    ("ccc-alpha", lambda: expand_to_8x8(P7, alpha=1.5), ConfigError, "alpha must be in [0, 1]"),
    ("ccc-method", lambda: expand_to_8x8(P7, method="cubic"), ConfigError, "method must be 'geometric', 'linear' or 'calibrated'"),
    ("ccc-weight", lambda: expand_to_8x8(P7, method="calibrated", ccc_weight=1.0), ConfigError, "ccc_weight must be in [0, 1)"),
    ("ccc-pd", lambda: expand_to_8x8(P7, method="calibrated", ccc_pd=1.5), ConfigError, "ccc_pd must be in (0, 1)"),
    ("ccc-row", lambda: expand_to_8x8(P7, method="calibrated", ccc_row=np.full(8, 0.2)), DataError, "ccc_row must be 8 non-negative probabilities"),
    ("ccc-z-shape", lambda: expand_conditional_tm(np.stack([P7] * 3), P8, z=[0.1, 0.2], rho=0.05), DataError, "z has shape (2,) but cond_7x7 holds (3,) matrices"),
    ("ccc-cond-shape", lambda: expand_conditional_tm(P8, P8), DataError, "cond_7x7 must be (..., 7, 7), got shape (8, 8)"),
    ("ccc-cond-not-stochastic", lambda: expand_conditional_tm(np.stack([P7, _edit(P7, r1c1=0.5)]), P8), DataError, "cond_7x7[1]: rows must sum to 1"),
]


@pytest.mark.parametrize(("case", "call", "error", "text"), ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_rating_input_is_a_clear_one_line_error(case, call, error, text):
    with pytest.raises(error) as exc:
        call()
    msg = str(exc.value)
    assert isinstance(exc.value, CreditSimError)
    assert text in msg, msg
    assert "\n" not in msg


def _check_unsorted(res) -> None:
    ref = cohort_matrix(_panel())
    np.testing.assert_array_equal(res.counts, ref.counts)


def _z_fit_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    mats = conditional_matrix(P8, rng.normal(size=4), 0.05)
    obl = np.full((4, 7), 333.0)
    counts = mats * np.concatenate([obl, np.zeros((4, 1))], axis=1)[:, :, None]  # fractional
    a = ZFactorModel(P8, rho=0.05).fit(counts).z_.to_numpy()
    b = ZFactorModel(P8, rho=0.05).fit(matrices=mats, obligors=obl).z_.to_numpy()
    return a, b


RESULTS: list[tuple[str, Callable[[], object], Callable[[object], None]]] = [
    # rows in any order (dates out of order): sorted internally, same counts as the sorted panel
    ("panel-rows-out-of-order", lambda: cohort_matrix(_panel().iloc[::-1]), _check_unsorted),
    # an exact duplicate row (same entity, date and rating) carries no new information: same result
    ("panel-exact-duplicate-row", lambda: cohort_matrix(_with_row(_panel(), 1, 1, "A")), _check_unsorted),
    # a blank rating is a missing observation (right censoring), not an error: entity 1 drops out
    ("panel-blank-rating", lambda: cohort_matrix(_panel(rating=[None] + list(_panel()["rating"][1:]))),
     lambda r: np.testing.assert_array_equal(r.counts.sum(), cohort_matrix(_panel()).counts.sum() - 1)),
    # rho -> 0: every conditional matrix is the TTC matrix
    ("rho-zero-conditional", lambda: conditional_matrix(P8, [-3.0, 3.0], 0.0), lambda m: np.testing.assert_allclose(m, np.stack([P8, P8]), atol=1e-15)),
    # a TTC 7x7 given as the conditional matrix carries no cycle: the 8x8 TTC comes back
    ("ccc-ttc-as-conditional", lambda: expand_conditional_tm(P7, P8), lambda m: np.testing.assert_allclose(m, P8, atol=1e-14)),
    # fractional migration counts (e.g. NR-adjusted) are weights in the Z fit: the same as annual
    # matrices x whole obligor counts
    ("z-fit-fractional-migration-counts", lambda: _z_fit_pair(), lambda pair: np.testing.assert_allclose(pair[0], pair[1], atol=1e-9)),
    # the longest horizon allowed is fine
    ("n-years-max", lambda: ttc_term_structure(P8, 200), lambda ts: (ts.cumulative.shape == (200, 7)) or pytest.fail("shape")),
]


@pytest.mark.parametrize(("case", "call", "check"), RESULTS, ids=[c[0] for c in RESULTS])
def test_documented_result_for_odd_rating_input(case, call, check):
    check(call())


# ----------------------------------------------------------------------------- CLI (in process)
def _cli(argv: list[str], capsys) -> tuple[int, str]:
    from creditsim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _csv(tmp_path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> str:
    long = pd.concat({"obligors": OBL.stack(), "defaults": DEF.stack()}, axis=1).reset_index().rename(columns={"level_1": "rating"})
    path = tmp_path / "counts.csv"
    edit(long).to_csv(path, index=False)
    return str(path)


CLI: list[tuple[str, Callable[[object], list[str]], str]] = [
    ("years-zero", lambda tmp: ["ratings", "lifetime", "--years", "0", "--z", "0.5"], "--years must be in 1..200"),
    ("years-negative", lambda tmp: ["ratings", "lifetime", "--years", "-5", "--z", "0.5"], "--years must be in 1..200"),
    ("years-1e8", lambda tmp: ["ratings", "lifetime", "--years", "1e8"], "--years"),
    ("years-100000000", lambda tmp: ["ratings", "fit", "--years", "100000000"], "--years must be in 1..200"),
    ("unknown-method", lambda tmp: ["ratings", "fit", "--method", "ols"], "method must be 'mle', 'map' or 'wls'"),
    ("unknown-rho-method", lambda tmp: ["ratings", "fit", "--rho-method", "moments"], "rho_method must be 'marginal' or 'bsf'"),
    ("missing-file", lambda tmp: ["ratings", "fit", "--data", str(tmp / "nope.csv")], "counts file not found"),
    ("rho-out-of-bounds", lambda tmp: ["ratings", "fit", "--rho", "1.5"], "rho must be in [0, 1), got 1.5"),
    ("z-nan", lambda tmp: ["ratings", "lifetime", "--z", "0.1,nan"], "--z values must satisfy |z| <= 8"),
    ("unknown-scenario", lambda tmp: ["ratings", "lifetime", "--scenario", "mild"], "scenario='mild'"),
    ("csv-fractional-defaults", lambda tmp: ["ratings", "fit", "--rho", "0.05", "--data", _csv(tmp, lambda d: d.assign(defaults=d["defaults"] + 0.5))], "defaults must be whole numbers"),
    ("csv-negative-obligors", lambda tmp: ["ratings", "fit", "--rho", "0.05", "--data", _csv(tmp, lambda d: d.assign(obligors=-d["obligors"]))], "negative counts in years"),
    ("csv-unknown-grade", lambda tmp: ["ratings", "fit", "--rho", "0.05", "--data", _csv(tmp, lambda d: d.assign(rating=d["rating"].replace("BB", "Ba")))], "unknown grades ['Ba']"),
]


@pytest.mark.parametrize(("case", "argv", "text"), CLI, ids=[c[0] for c in CLI])
def test_ratings_cli_bad_argument_exits_2_with_one_line(case, argv, text, tmp_path, capsys):
    code, err = _cli(argv(tmp_path), capsys)
    assert code == 2
    assert text in err, err
    assert "Traceback" not in err
