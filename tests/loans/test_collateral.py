"""Real-estate recoveries follow the path's house prices: index closed form, the LGD rule, the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import DataError
from creditsim.loans.book import LoanBook
from creditsim.loans.collateral import house_price_index, house_price_trough, recovery_scale, stressed_lgd
from creditsim.loans.engine import simulate_pool_chunk
from creditsim.states import ASSET_CLASSES, MACRO_VARS, N_STATES, POOL_CF_TYPES, LoanState

HPI = MACRO_VARS.index("house_price_growth")
K = {name: k for k, name in enumerate(POOL_CF_TYPES)}


def _paths(growth: np.ndarray) -> np.ndarray:
    """(S, T, 9) paths with the given (S, T) house-price growth and 3 % elsewhere."""
    x = np.full(growth.shape + (len(MACRO_VARS),), 0.03)
    x[..., HPI] = growth
    return x


def test_constant_growth_compounds_a_twelfth_a_month() -> None:
    idx = house_price_index(_paths(np.array([np.full(25, -0.12), np.full(25, 0.05)])))
    t = np.arange(25)
    np.testing.assert_allclose(idx[0], 0.88 ** (t / 12), rtol=1e-12)
    np.testing.assert_allclose(idx[1], 1.05 ** (t / 12), rtol=1e-12)
    np.testing.assert_allclose(house_price_trough(_paths(np.array([np.full(25, -0.12), np.full(25, 0.05)]))),
                               [0.88 ** 2, 1.0], rtol=1e-12)


def test_bust_then_recovery_has_its_trough_in_the_middle() -> None:
    g = np.concatenate([np.full(12, -0.2), np.full(12, 0.3)])[None]
    idx = house_price_index(_paths(g))[0]
    assert idx.argmin() == 11 and idx.min() == pytest.approx(0.8 ** (11 / 12))  # months 1..11 fall, 12 on rise
    with pytest.raises(DataError, match="house_price_growth must be above -1"):
        house_price_index(_paths(np.full((1, 3), -1.0)))


def test_only_real_estate_loans_and_only_falls_change_the_lgd() -> None:
    ac = np.array([ASSET_CLASSES.index(a) for a in ("corporate", "real_estate", "consumer", "real_estate")])
    fall = _paths(np.array([np.full(13, -0.3), np.full(13, 0.02)]))
    scale = recovery_scale(fall, ac)
    assert scale.shape == (2, 4)
    np.testing.assert_allclose(scale[0], [1.0, 0.7, 1.0, 0.7], rtol=1e-12)
    np.testing.assert_array_equal(scale[1], 1.0)
    assert recovery_scale(_paths(np.full((2, 13), 0.02)), ac) is None  # prices never fall
    assert recovery_scale(fall, np.zeros(4, dtype=np.int64)) is None  # no real estate
    lgd = np.array([[0.2, 0.275, 0.7, 0.0], [0.2, 0.275, 0.7, 0.0]])
    out = stressed_lgd(lgd, scale)
    np.testing.assert_allclose(out[0], [0.2, 1 - 0.725 * 0.7, 0.7, 0.3], rtol=1e-12)
    np.testing.assert_array_equal(out[1], lgd[1])


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_stressed_lgd_is_an_lgd_and_never_below_the_base(lgd: float, scale: float) -> None:
    out = stressed_lgd(np.array([[lgd]]), np.array([[scale]]))[0, 0]
    assert lgd - 1e-15 <= out <= 1.0 + 1e-15


def test_engine_books_the_collateral_loss_and_keeps_cash_conserved() -> None:
    """Every loan defaults in month 1 (deterministic LGD 0.25): the loss is 1 - 0.75 H of the defaulted par
    for real-estate loans, the rest is recovered, corporate loans are untouched, and a factor of 1 is the
    run without the channel bit for bit."""
    n = 8
    book = LoanBook.from_arrays(np.full(n, 1000.0), 0.0, 24, "bullet", lgd=0.25, lgd_concentration=np.inf,
                                asset_class=["real_estate"] * 4 + ["corporate"] * 4, recovery_lag=0)
    m = np.zeros((N_STATES, N_STATES))
    m[:, :] = np.eye(N_STATES)
    m[LoanState.CURRENT] = 0.0
    m[LoanState.CURRENT, LoanState.DEFAULT] = 1.0
    ids = np.array([0, 1])
    plain = simulate_pool_chunk(book, m, ids, 3, 4, group_by="asset_class")
    scale = np.where(np.arange(n)[None, :] < 4, np.array([[0.6], [1.0]]), 1.0)
    hit = simulate_pool_chunk(book, m, ids, 3, 4, group_by="asset_class", recovery_scale=scale)
    re, corp = ASSET_CLASSES.index("real_estate"), ASSET_CLASSES.index("corporate")
    loss = hit[:, :, :, K["loss"]].sum(axis=1)
    assert loss[0, re] == pytest.approx(4 * 1000.0 * (1 - 0.75 * 0.6))
    assert loss[0, corp] == pytest.approx(4 * 1000.0 * 0.25)
    np.testing.assert_array_equal(hit[1], plain[1])
    np.testing.assert_array_equal(hit[0, :, corp], plain[0, :, corp])
    par, rec = hit[..., K["default_par"]].sum(axis=1), hit[..., K["recovery"]].sum(axis=1)
    np.testing.assert_allclose(loss + rec, par, rtol=0, atol=1e-9)  # loss + recovery = defaulted par
    with pytest.raises(DataError, match="recovery_scale: expected"):
        simulate_pool_chunk(book, m, ids, 3, 4, recovery_scale=np.ones((2, 3)))
