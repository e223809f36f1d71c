"""Index floors, caps and reset months of floating loans (creditsim.loans.floating) in the pool engine, the
expected-cashflow path and the tape intake: closed forms for one loan, the class aggregation against a
loan-by-loan computation, books without the terms unchanged to the bit, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.errors import ConfigError, DataError
from creditsim.loans.book import LoanBook
from creditsim.loans.engine import simulate_pool_chunk
from creditsim.loans.expected import expected_pool_cashflows
from creditsim.loans.schedule import amortization_schedule
from creditsim.states import MACRO_VARS, POOL_CF_TYPES

INTEREST = POOL_CF_TYPES.index("interest")
STAY = np.eye(7)  # every loan stays CURRENT until it matures: the schedule, deterministically
STAY[0, 0], STAY[0, 6] = 1.0, 0.0


def _bullet(coupon: float, **terms: object) -> LoanBook:
    return LoanBook.from_arrays([1_000_000.0], [coupon], [36], ["bullet"], floating=[True], lgd_concentration=np.inf,
                                **{k: [v] for k, v in terms.items()})


def _interest(book: LoanBook, shift: np.ndarray, level: float | None) -> np.ndarray:
    out = simulate_pool_chunk(book, STAY, np.arange(len(shift)), seed=0, n_months=shift.shape[1], index_shift=shift,
                              index_level=None if level is None else np.full(len(shift), level))
    return out[..., INTEREST]


def test_a_floor_stops_the_coupon_falling_below_margin_plus_floor() -> None:
    """Coupon 8 % = margin 7 % + index 1 %, floor 0.5 %: the index falls by 1 pp, the coupon by 0.5 pp
    (1,000,000 x 7.5 % / 12 = 6,250.00 a month); without the floor by the full 1 pp."""
    shift = np.full((1, 6), -0.01)
    shift[0, 0] = 0.0
    floored = _interest(_bullet(0.08, index_floor=0.005), shift, level=0.01)
    plain = _interest(_bullet(0.08), shift, level=0.01)
    np.testing.assert_allclose(floored[0], [1_000_000 * 0.08 / 12] + [6_250.0] * 5, atol=0.005)
    np.testing.assert_allclose(plain[0, 1:], 1_000_000 * 0.07 / 12, atol=0.01)  # the base is rounded to cents


def test_a_cap_stops_the_coupon_rising_above_margin_plus_cap() -> None:
    """Index 4 % rising by 3 pp against a 5 % cap: the coupon rises by 1 pp only."""
    shift = np.full((1, 4), 0.03)
    capped = _interest(_bullet(0.09, index_cap=0.05), shift, level=0.04)
    np.testing.assert_allclose(capped[0], 1_000_000 * 0.10 / 12, atol=0.005)


def test_quarterly_resets_hold_the_coupon_until_the_next_reset_month() -> None:
    """Reset every 3 months, first reset in month 2: a 1 pp rise from month 1 reaches the coupon in
    month 2; a further rise in month 3 waits for month 5."""
    shift = np.zeros((1, 8))
    shift[0, 1:] = 0.01
    shift[0, 3:] = 0.02
    got = _interest(_bullet(0.06, reset_months=3, reset_phase=2), shift, level=None)[0]
    coupons = np.array([0.06, 0.06, 0.07, 0.07, 0.07, 0.08, 0.08, 0.08])
    np.testing.assert_allclose(got, 1_000_000 * coupons / 12, atol=0.005)


def test_classes_add_up_to_the_loan_by_loan_coupons() -> None:
    """A mixed book (floors, caps, monthly and quarterly resets, fixed loans): pool interest equals the
    loans' schedules at their own reset coupons computed loan by loan, within half a cent per class and
    month (the engine rounds each class's floating interest once)."""
    rng = np.random.default_rng(3)
    n, t = 40, 30
    floating = rng.random(n) < 0.75
    rates = rng.uniform(0.04, 0.11, n)
    floor = np.where(rng.random(n) < 0.5, rng.choice([0.0, 0.005, 0.01], n), np.nan)
    cap = np.where(rng.random(n) < 0.3, 0.06, np.nan)
    months = rng.choice([1, 3, 6], n)
    phase = np.array([rng.integers(0, m) for m in months])
    book = LoanBook.from_arrays(rng.uniform(1e5, 9e5, n), rates, rng.integers(12, 60, n), ["annuity", "bullet"] * (n // 2),
                                floating=floating, index_floor=floor, index_cap=cap, reset_months=months, reset_phase=phase,
                                lgd_concentration=np.inf)
    level = np.array([0.02, 0.045])
    shift = np.stack([np.linspace(0.0, -0.03, t), np.linspace(0.0, 0.04, t)])
    got = simulate_pool_chunk(book, STAY, np.arange(2), seed=0, n_months=t, index_shift=shift,
                              index_level=level)[..., INTEREST]
    sched = amortization_schedule(book.balance, book.monthly_rate, book.remaining_term, book.amortization,
                                  book.io_months, n_columns=t)
    cents = np.round(sched.interest * 100)
    clip = lambda x, i: min(max(x, -np.inf if np.isnan(floor[i]) else floor[i]), np.inf if np.isnan(cap[i]) else cap[i])  # noqa: E731
    classes = book.floating_classes()
    for k in range(2):
        want = cents.sum(0).astype(float)
        for i in np.flatnonzero(floating):
            base = np.round(cents[i] / rates[i])
            for m in range(t):
                r = m - (m - phase[i]) % months[i] if m >= phase[i] else 0
                d = shift[k, r] if np.isnan(floor[i]) and np.isnan(cap[i]) else \
                    clip(level[k] + shift[k, r], i) - clip(level[k], i)
                low = -classes.min_coupon[classes.member[i]]
                want[m] += max(d, low) * base[m]
        np.testing.assert_allclose(got[k], want / 100, rtol=0, atol=0.005 * classes.n_classes + 1e-9)
    assert classes.n_classes > 5


def test_floors_need_the_index_level_and_bad_terms_are_named() -> None:
    book = _bullet(0.08, index_floor=0.005)
    with pytest.raises(ConfigError, match="index_level"):
        _interest(book, np.zeros((1, 3)), level=None)
    with pytest.raises(DataError, match="index_cap"):
        _bullet(0.08, index_floor=0.02, index_cap=0.01)
    with pytest.raises(DataError, match="reset_phase"):
        _bullet(0.08, reset_months=3, reset_phase=3)
    with pytest.raises(DataError, match="reset_months"):
        _bullet(0.08, reset_months=0)


def test_without_the_terms_the_numbers_are_unchanged_to_the_bit() -> None:
    """Monthly resets, no floor, no cap, given explicitly: the same bits as a book without the arrays."""
    m = np.array(STAY)
    m[0] = [0.95, 0.02, 0, 0, 0.01, 0.02, 0.0]
    n = 30
    args = (np.linspace(1e5, 5e5, n), np.linspace(0.05, 0.09, n), [48] * n, ["annuity"] * n)
    plain = LoanBook.from_arrays(*args, floating=[True, False] * 15)
    spelled = LoanBook.from_arrays(*args, floating=[True, False] * 15, index_floor=np.full(n, np.nan),
                                   reset_months=np.ones(n), reset_phase=np.zeros(n))
    shift = np.stack([np.linspace(0, -0.04, 24), np.linspace(0, 0.02, 24)])
    a = simulate_pool_chunk(plain, m, np.arange(2), seed=1, n_months=24, index_shift=shift)
    b = simulate_pool_chunk(spelled, m, np.arange(2), seed=1, n_months=24, index_shift=shift, index_level=np.zeros(2))
    np.testing.assert_array_equal(a, b)


def test_the_expected_path_applies_the_same_terms() -> None:
    """With every loan staying CURRENT the engine is deterministic, so its interest is the expectation:
    the expected-cashflow path (torch, differentiable) matches it within a cent per class and month,
    and its gradient in the index moves only through the months the floor does not bind."""
    n, t = 12, 18
    book = LoanBook.from_arrays(np.linspace(2e5, 8e5, n), np.linspace(0.06, 0.1, n), [36] * n, ["bullet"] * n,
                                floating=[True] * n, index_floor=[0.01, np.nan] * 6, reset_months=[1, 3] * 6,
                                reset_phase=[0, 1] * 6, lgd_concentration=np.inf)
    shift = np.linspace(0.0, -0.03, t)[None]
    engine = simulate_pool_chunk(book, STAY, [0], seed=0, n_months=t, index_shift=shift, index_level=[0.02])
    mats = torch.as_tensor(STAY)[None, None, None].expand(1, 1, t, 7, 7).contiguous()
    x = torch.tensor(shift, requires_grad=True)
    expected = expected_pool_cashflows(book, mats, t, torch.full((1, n), 0.45, dtype=torch.float64),
                                       index_shift=x, index_level=torch.tensor([0.02], dtype=torch.float64))
    np.testing.assert_allclose(expected[0, :, INTEREST].detach().numpy(), engine[0, :, INTEREST], atol=0.01 * 4)
    expected[0, :, INTEREST].sum().backward()
    grad = x.grad[0].numpy()
    # month m's index moves interest through the monthly loans while their 1 % floor does not bind
    # (index 2 % + shift above 1 %) and through the quarterly loans in month 0 (before their first reset)
    # and their reset months 1, 4, 7, ...
    months = np.arange(t)
    moves = (0.02 + shift[0] > 0.01) | ((months - 1) % 3 == 0)  # month 0 reads the index at the cut-off
    np.testing.assert_array_equal(grad != 0, moves)
    assert (grad[moves] > 0).all()


def test_tape_columns_become_book_terms_with_resets_on_the_origination_anniversary() -> None:
    from creditsim.examples import example_path

    tape = pd.read_parquet(example_path("loans_bsl.parquet")).head(6).copy()
    tape["rate_type"] = ["floating", "floating", "floating", "fixed", "floating", "floating"]
    tape["index_floor_bps"] = [50.0, np.nan, 0.0, 50.0, 75.0, 50.0]
    tape["index_cap_bps"] = [np.nan] * 5 + [600.0]
    tape["reset_months"] = [3, 1, 3, 3, 6, 1]
    cutoff = pd.Timestamp("2026-06-01")
    book = LoanBook.from_tape(tape, cutoff)
    np.testing.assert_array_equal(book.index_floor[[0, 2, 4]], [0.005, 0.0, 0.0075])
    assert np.isnan(book.index_floor[[1, 3]]).all()  # blank, and a fixed loan's floor is ignored
    assert book.index_cap[5] == 0.06 and book.reset_months[3] == 1
    origination = pd.to_datetime(tape["origination_date"])
    elapsed = (cutoff.year - origination.dt.year) * 12 + (cutoff.month - origination.dt.month)
    assert book.reset_phase[0] == (-elapsed.iloc[0]) % 3 and book.reset_phase[4] == (-elapsed.iloc[4]) % 6
    tape.loc[tape.index[5], "index_cap_bps"] = 25.0  # below its 50 bp floor
    with pytest.raises(DataError, match="index_cap"):
        LoanBook.from_tape(tape, cutoff)


def test_floors_keep_interest_up_when_the_fed_severely_adverse_path_cuts_rates() -> None:
    """End to end through ``simulate``: the Fed 2025 severely adverse path takes the policy rate from
    about 4.3 % to near zero; with 100 bp index floors the floating book keeps more interest, so the
    equity's cash is higher, while states, defaults and pool losses are the same draws."""
    from creditsim.examples import example_path
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_bsl.parquet")).head(120)
    path = fed_table_path(2025, "severely_adverse", 36)
    kw = dict(n_simulations=40, horizon=36, seed=2, progress=False, macro=path)
    deal = example_path("bsl_clo.yaml")
    plain = simulate(tape, deal, **kw)
    floored = simulate(tape.assign(index_floor_bps=100.0), deal, **kw)
    k = POOL_CF_TYPES.index("interest")
    gain = floored.cashflows["pool"][..., k] - plain.cashflows["pool"][..., k]
    assert (gain >= 0).all() and gain[:, 24:].sum() > 0
    others = [j for j in range(len(POOL_CF_TYPES)) if j != k]
    np.testing.assert_array_equal(floored.cashflows["pool"][..., others], plain.cashflows["pool"][..., others])
    np.testing.assert_array_equal(floored.portfolio_losses, plain.portfolio_losses)


def test_coupons_that_ignore_a_binding_cap_or_floor_are_flagged_and_simulate_warns() -> None:
    """Spread 400 bp, index 4.22 % at the cut-off: with a 3 % cap the coupon should be 7.00 %; a tape
    still saying 8.22 % (spread + uncapped index) would imply a 5.22 % margin, so the run warns."""
    from creditsim.loans.floating import coupon_mismatch

    rate = np.array([0.0822, 0.0700, 0.0822, 0.0822, 0.0650])
    margin = np.array([0.04, 0.04, 0.04, np.nan, 0.04])
    floor = np.array([np.nan, np.nan, 0.0, 0.05, 0.025])
    cap = np.array([0.03, 0.03, np.nan, np.nan, np.nan])
    flags = coupon_mismatch(np.ones(5, bool), rate, margin, floor, cap, level=0.0422)
    # capped but not reflected / consistent / floor not binding / no spread given / binding floor reflected
    np.testing.assert_array_equal(flags, [True, False, False, False, True])

    from creditsim.examples import example_path
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_bsl.parquet")).head(30)
    path = fed_table_path(2025, "baseline", 12)
    level = path[0, MACRO_VARS.index("policy_rate")]
    tape = tape.assign(spread_bps=400.0, index_cap_bps=level * 1e4 - 100.0, interest_rate=0.04 + level)
    with pytest.warns(UserWarning, match="floating coupons: rows .* spread_bps"):
        simulate(tape, example_path("bsl_clo.yaml"), n_simulations=4, horizon=12, seed=0, progress=False, macro=path)
    consistent = tape.assign(interest_rate=0.04 + level - 0.01)
    import warnings as w
    with w.catch_warnings():
        w.simplefilter("error", UserWarning)
        simulate(consistent, example_path("bsl_clo.yaml"), n_simulations=4, horizon=12, seed=0, progress=False, macro=path)
