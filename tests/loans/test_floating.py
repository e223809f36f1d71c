"""Floating coupons in the pool engine (creditsim.loans.engine, "Floating coupons"): interest at the
cut-off coupon plus the index's move, exactly, for fixed-and-floating books; nothing changes without a
shift or without floating loans; chunking still does not matter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import DataError
from creditsim.loans.book import LoanBook
from creditsim.loans.engine import simulate_pool_chunk
from creditsim.loans.schedule import amortization_schedule
from creditsim.states import POOL_CF_TYPES
from creditsim.transitions.markov import base_case_matrix

INTEREST = POOL_CF_TYPES.index("interest")
STAY = np.eye(7)  # every loan stays CURRENT until it matures: the schedule, deterministically
STAY[0, 0], STAY[0, 6] = 1.0, 0.0


def _book(floating: list[bool], rates: list[float], **kw: object) -> LoanBook:
    n = len(floating)
    return LoanBook.from_arrays(np.linspace(100_000.0, 400_000.0, n), rates, [36] * n, ["annuity", "bullet"] * (n // 2),
                                floating=floating, lgd_concentration=np.inf, **kw)


def test_all_current_interest_is_the_schedule_at_the_reset_coupon() -> None:
    """Closed form: a CURRENT loan pays interest ``I_t (1 + d_t / c)`` with ``I_t`` its contractual
    interest at the cut-off coupon ``c``; fixed loans pay ``I_t``. Pool interest = the fixed loans'
    schedule + the floating loans' schedule + round(d_t x sum round(I_t / c)) cents."""
    book = _book([True, False, True, False], [0.08, 0.06, 0.065, 0.05])
    t = 24
    shift = np.stack([np.linspace(0.0, 0.03, t), np.linspace(0.0, -0.02, t)])  # a hike and a cut
    out = simulate_pool_chunk(book, STAY, np.arange(2), seed=0, n_months=t, index_shift=shift)
    sched = amortization_schedule(book.balance, book.monthly_rate, book.remaining_term, book.amortization,
                                  book.io_months, n_columns=t)
    cents = np.round(sched.interest * 100)  # (L, T) whole cents
    fixed = cents[~book.floating].sum(0)
    base = np.round(cents[book.floating] / (book.monthly_rate[book.floating, None] * 12)).sum(0)
    for k in range(2):
        want = (fixed + cents[book.floating].sum(0) + np.round(shift[k] * base)) / 100
        np.testing.assert_allclose(out[k, :, INTEREST], want, rtol=0, atol=1e-9)
    # principal does not reset: every other column is the no-shift run's
    plain = simulate_pool_chunk(book, STAY, np.arange(2), seed=0, n_months=t)
    others = [j for j in range(len(POOL_CF_TYPES)) if j != INTEREST]
    np.testing.assert_array_equal(out[..., others], plain[..., others])
    assert (out[0, 1:, INTEREST] > plain[0, 1:, INTEREST]).all() and (out[1, 1:, INTEREST] < plain[1, 1:, INTEREST]).all()


def test_zero_shift_or_a_fixed_book_changes_nothing_bit_for_bit() -> None:
    m = base_case_matrix("corporate")
    book = _book([True, False] * 20, [0.07] * 40)
    plain = simulate_pool_chunk(book, m, np.arange(6), seed=4, n_months=18)
    zero = simulate_pool_chunk(book, m, np.arange(6), seed=4, n_months=18, index_shift=np.zeros((6, 18)))
    np.testing.assert_array_equal(plain, zero)
    fixed = _book([False] * 40, [0.07] * 40)
    shift = np.full((6, 18), 0.02)
    np.testing.assert_array_equal(simulate_pool_chunk(fixed, m, np.arange(6), seed=4, n_months=18, index_shift=shift),
                                  simulate_pool_chunk(fixed, m, np.arange(6), seed=4, n_months=18))


def test_sampled_paths_floating_interest_is_linear_in_the_shift_and_chunking_does_not_matter() -> None:
    """With defaults, cures and prepayments sampled: interest(+d) - interest(0) is d x the floating base
    (so +d and -d move it symmetrically, within the cent rounding), and loan chunk / scenario slice still
    give bit-identical pools."""
    rng = np.random.default_rng(1)
    n = 2600
    book = LoanBook.from_arrays(rng.uniform(5e4, 5e5, n), rng.uniform(0.04, 0.1, n), rng.integers(12, 60, n),
                                "annuity", floating=rng.random(n) < 0.5)
    m = base_case_matrix("consumer")
    ids = np.array([3, 11, 500])
    up = np.full((3, 12), 0.02)
    plain = simulate_pool_chunk(book, m, ids, seed=9, n_months=12)
    hi = simulate_pool_chunk(book, m, ids, seed=9, n_months=12, index_shift=up, loan_chunk=4096)
    lo = simulate_pool_chunk(book, m, ids, seed=9, n_months=12, index_shift=-up)
    np.testing.assert_allclose(hi[..., INTEREST] - plain[..., INTEREST], plain[..., INTEREST] - lo[..., INTEREST],
                               rtol=0, atol=0.011)
    assert (hi[..., INTEREST] > plain[..., INTEREST]).all()
    small = simulate_pool_chunk(book, m, ids, seed=9, n_months=12, index_shift=up, loan_chunk=1000)
    np.testing.assert_array_equal(hi, small)
    single = simulate_pool_chunk(book, m, ids[1:2], seed=9, n_months=12, index_shift=up[1:2])
    np.testing.assert_array_equal(hi[1:2], single)


@settings(max_examples=25, deadline=None)
@given(st.floats(-0.5, 0.5), st.lists(st.floats(0.0, 0.2), min_size=4, max_size=4))
def test_interest_is_never_negative_however_far_the_index_falls(drop: float, rates: list[float]) -> None:
    book = _book([True, True, False, True], rates)
    shift = np.full((1, 12), drop)
    out = simulate_pool_chunk(book, STAY, np.arange(1), seed=0, n_months=12, index_shift=shift)
    assert (out[..., INTEREST] >= 0).all()


def test_bad_shift_and_book_flags_are_named() -> None:
    book = _book([True, False], [0.05, 0.05])
    with pytest.raises(DataError, match=r"index_shift: expected \(2, 6\) finite"):
        simulate_pool_chunk(book, STAY, np.arange(2), seed=0, n_months=6, index_shift=np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"index_shift: expected"):
        simulate_pool_chunk(book, STAY, np.arange(1), seed=0, n_months=6, index_shift=np.full((1, 6), np.nan))
    with pytest.raises(DataError, match=r"'floating' must be \(2,\) booleans"):
        dataclasses.replace(book, floating=np.array([1, 0]))
    with pytest.raises(DataError, match=r"'floating' must be \(2,\) booleans"):
        dataclasses.replace(book, floating=np.array([True]))


def test_pool_engine_shift_is_the_policy_rate_path_since_month_zero() -> None:
    import pandas as pd

    from creditsim.examples import example_path
    from creditsim.risk.pool_engine import PoolEngine
    from creditsim.states import MACRO_VARS

    tape = pd.read_parquet(example_path("loans_example.parquet")).iloc[::20]
    engine = PoolEngine.from_tape(tape, seed=0, horizon=12)
    assert engine.book.floating.sum() == (tape["rate_type"] == "floating").sum() > 0
    macro = np.zeros((2, 12, len(MACRO_VARS)))
    macro[:, :, MACRO_VARS.index("policy_rate")] = np.linspace(0.04, 0.06, 12)
    np.testing.assert_allclose(engine.index_shift(macro), np.broadcast_to(np.linspace(0.0, 0.02, 12), (2, 12)))
    assert engine.index_shift(macro, months=6).shape == (2, 6)


def test_trajectory_engine_flows_get_the_same_channels_per_loan() -> None:
    """The deep engine's loan flows go through the Markov engine's channels: a floating loan's interest
    times 1 + shift / coupon (fixed loans untouched), a real-estate loan's recovery times the path's
    house-price trough, in whole cents."""
    import pandas as pd

    from creditsim.examples import example_path
    from creditsim.loans.collateral import house_price_trough
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.risk.pool_engine import PoolEngine

    tape = pd.read_parquet(example_path("loans_example.parquet")).groupby("asset_class", group_keys=False).head(10)
    engine = PoolEngine.from_tape(tape, seed=0, horizon=12, cutoff="2025-01")
    book = engine.book
    macro = fed_table_path(2025, "severely_adverse", 12)[None].copy()
    n, t = book.n_loans, 12
    interest = np.full((1, n, t), 100.0)
    par = np.zeros((1, n, t))
    par[0, :, 5] = 1000.0
    flows = {"interest": interest, "scheduled_principal": np.zeros((1, n, t)), "prepayment": np.zeros((1, n, t)),
             "default_par": par, "loss": 0.4 * par, "balance": np.ones((1, n, t))}
    out = engine._with_channels(flows, macro)
    shift = engine.index_shift(macro)[0]
    coupon = book.monthly_rate * 12
    fl = book.floating
    want = np.round(100.0 * (1 + np.maximum(shift[None, :], -coupon[fl, None]) / coupon[fl, None]), 2)
    np.testing.assert_allclose(out["interest"][0, fl], want, atol=0.0100001)
    np.testing.assert_array_equal(out["interest"][0, ~fl], interest[0, ~fl])
    re_ = book.asset_class == 2
    h = house_price_trough(macro)[0]
    assert h < 1
    np.testing.assert_allclose(out["loss"][0, re_, 5], np.round(1000.0 - 600.0 * h, 2), atol=1e-9)
    np.testing.assert_array_equal(out["loss"][0, ~re_, 5], 400.0)
    assert engine.index_shift(macro)[0, 0] == 0.0 and (shift[6:] < 0).all()  # the severe table cuts rates
