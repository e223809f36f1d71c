"""Refinancing S-curve of fixed-rate real estate (creditsim.loans.prepayment): the curve's shape and its
published example values, the matrix scaling, and the acceptance test of issue 13 -- a fixed-rate
mortgage book prepays less when rates rise and more when they fall, monotonically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError
from creditsim.loans.prepayment import RefinancingCurve, apply_prepayment_multiplier
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, LoanState
from creditsim.transitions.markov import base_case_matrix


def test_curve_values_are_the_published_example() -> None:
    """k = (0.3, 0.2, 10, 1.2): 30 % CPR at the elbow r = 1.2, 0.3 - 0.2 atan(2) at r = 1, and flat ends."""
    c = RefinancingCurve()
    assert c.cpr(1.2) == pytest.approx(0.3)
    assert c.cpr(1.0) == pytest.approx(0.3 - 0.2 * np.arctan(2.0))
    assert c.cpr(0.0) > 0 and c.cpr(3.0) < 0.3 + 0.2 * np.pi / 2


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 3.0), st.floats(0.0, 3.0))
def test_cpr_is_increasing_in_the_coupon_over_market_ratio(a: float, b: float) -> None:
    c = RefinancingCurve()
    lo, hi = min(a, b), max(a, b)
    assert c.cpr(lo) <= c.cpr(hi)


def test_multiplier_is_one_at_the_cut_off_and_for_flat_yields() -> None:
    c = RefinancingCurve()
    flat = np.full((3, 24), 0.04)
    np.testing.assert_array_equal(c.multiplier(0.05, flat), np.ones((3, 24)))
    rising = flat + np.linspace(0, 0.03, 24)
    m = c.multiplier(0.05, rising)
    assert (m[:, 0] == 1).all() and (np.diff(m, axis=1) <= 0).all() and m[0, -1] < 0.7
    with pytest.raises(DataError, match=r"ten_year: expected \(S, T\)"):
        c.multiplier(0.05, np.full(24, 0.04))


def test_scaling_keeps_rows_stochastic_and_caps_at_the_staying_mass() -> None:
    p = np.broadcast_to(base_case_matrix("real_estate"), (2, 5, 7, 7))
    same = apply_prepayment_multiplier(p, np.ones((2, 5)))
    np.testing.assert_array_equal(same, p)
    big = apply_prepayment_multiplier(p, np.full((2, 5), 1e6))
    np.testing.assert_allclose(big.sum(-1), 1.0, atol=1e-12)
    assert (big[..., LoanState.CURRENT, LoanState.CURRENT] >= 0).all()
    assert big[0, 0, LoanState.CURRENT, LoanState.CURRENT] == pytest.approx(0.0, abs=1e-15)
    half = apply_prepayment_multiplier(p, np.full((2, 5), 0.5))
    np.testing.assert_allclose(half[..., 0, LoanState.PREPAID], 0.5 * p[..., 0, LoanState.PREPAID])


def test_the_capped_row_never_goes_below_zero() -> None:
    """At the cap, ``stay - (new - p)`` rounds to -5.6e-17 for these two probabilities (helper-99's case);
    the derived cohort is not re-validated downstream, so it must be stochastic by construction."""
    p = np.eye(7)
    p[0] = 0.0
    p[0, 0], p[0, 5] = 0.4115365381495178, 0.4066351196001362
    p[0, 4] = 1.0 - p[0, 0] - p[0, 5]
    out = apply_prepayment_multiplier(p[None, None], np.full((1, 1), 1e9))
    assert (out >= 0).all() and out[0, 0, 0, 0] == 0.0



@pytest.mark.parametrize("kw, match", [({"k1": -0.1}, r"k1 must be a finite number >= 0"),
                                       ({"k1": 0.1}, r"CPR at a zero coupon ratio"),
                                       ({"k3": float("nan")}, r"k3 must be")])
def test_bad_curves_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RefinancingCurve(**kw)


def test_fixed_rate_mortgage_prepayment_falls_when_rates_rise_and_rises_when_they_fall() -> None:
    """Issue 13: the fixed-rate real-estate book's 3-year prepayments under 10-year yield moves of -2, -1,
    0, +1, +2 pp (phased in over six months) are strictly decreasing; floating-rate real estate keeps
    the plain real-estate matrices (no refinancing cohort)."""
    from creditsim.examples import example_path
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.risk.pool_engine import PoolEngine

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    re_book = tape[tape.asset_class == "real_estate"]
    engine = PoolEngine.from_tape(re_book, seed=0, horizon=36, cutoff="2025-01")
    fixed = (re_book["rate_type"] == "fixed").to_numpy()
    assert engine.refinancing is not None and (engine.book.cohort[fixed] == 4).all()
    assert (engine.book.cohort[~fixed] == 2).all()
    base = fed_table_path(2025, "baseline", 36)
    k = POOL_CF_TYPES.index("prepayment")
    totals = []
    for move in (-0.02, -0.01, 0.0, 0.01, 0.02):
        paths = np.repeat(base[None], 64, axis=0)
        paths[:, :, MACRO_VARS.index("yield_10y")] += move * np.minimum(np.arange(36) / 6, 1)
        totals.append(engine.pool_cashflows(paths, np.arange(64))[..., k].sum())
    assert all(a > b for a, b in zip(totals, totals[1:])), totals
    floating_only = PoolEngine.from_tape(re_book[~fixed], seed=0, horizon=36, cutoff="2025-01")
    assert floating_only.refinancing is None
