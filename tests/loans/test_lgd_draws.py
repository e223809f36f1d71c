"""The realised-LGD streams (creditsim.loans.lgd_draws): Beta distributed, keyed by (seed, scenario, loan) only,
and booked at default exactly as the torch step books them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import creditsim.loans.engine as engine
from creditsim.loans.book import LoanBook
from creditsim.loans.collateral import stressed_lgd
from creditsim.loans.lgd_draws import LgdDraws, book_default_losses, lgd_key, realised_lgd
from creditsim.states import POOL_CF_TYPES
from creditsim.transitions.markov import MarkovTransitionModel

_NO_SCALE = np.zeros((0, 0))


def _all(seed: int, sids: np.ndarray, first: int, mu: np.ndarray, kappa: float, scale=None) -> np.ndarray:
    return LgdDraws(seed, sids, first, mu, kappa, scale).all()


@pytest.mark.parametrize("mu, kappa", [(0.45, 5.0), (0.1, 5.0), (0.02, 5.0), (0.75, 1.2), (0.5, 200.0)])
def test_draws_are_beta_with_the_books_mean_and_concentration(mu: float, kappa: float) -> None:
    n = 20_000
    got = _all(3, np.array([11]), 0, np.full(n, mu), kappa)[0]
    a, b = mu * kappa, (1 - mu) * kappa
    assert stats.kstest(got, stats.beta(a, b).cdf).pvalue > 1e-3
    assert got.mean() == pytest.approx(mu, abs=4 * np.sqrt(mu * (1 - mu) / (kappa + 1) / n))
    assert got.var() == pytest.approx(mu * (1 - mu) / (kappa + 1), rel=0.06)
    assert ((got >= 0) & (got <= 1)).all()


def test_a_very_skewed_beta_matches_numpys_sampler() -> None:
    """Shapes far below 1 (0.45, 0.05): many draws round to 1.0, so the one-sample KS test against the
    continuous CDF is meaningless; the two-sample test against numpy's own Beta sampler is not."""
    got = _all(5, np.array([2]), 0, np.full(20_000, 0.9), 0.5)[0]
    ref = np.random.default_rng(0).beta(0.45, 0.05, 20_000)
    assert stats.ks_2samp(got, ref).pvalue > 1e-3
    assert np.isfinite(got).all()


def test_degenerate_assumptions_are_the_assumption_itself() -> None:
    mu = np.array([0.0, 1.0, 0.3])
    np.testing.assert_array_equal(_all(1, np.arange(4), 0, mu, np.inf), np.broadcast_to(mu, (4, 3)))
    got = _all(1, np.arange(4), 0, mu, 5.0)
    np.testing.assert_array_equal(got[:, :2], np.broadcast_to(mu[:2], (4, 2)))
    assert np.unique(got[:, 2]).size == 4


def test_absurdly_small_shapes_give_the_assumption_not_nan() -> None:
    """Review of 959d167: kappa 1e-310 made both gammas' logs -inf and the draw NaN (a loss of -1e18 cents on
    the fused path); an LGD assumption of 5e-324 made a shape exactly 0 (ZeroDivisionError in the kernel)."""
    mu = np.array([0.45, 5e-324, 0.3])
    got = _all(2, np.arange(3), 0, mu, 1e-310)
    np.testing.assert_array_equal(got, np.broadcast_to(mu, (3, 3)))
    small = _all(2, np.arange(3), 0, np.array([0.45, 5e-324, 0.3]), 0.4)
    assert np.isfinite(small).all() and small[0, 1] == 5e-324
    tiny = _all(2, np.arange(200), 0, np.full(5, 0.5), 1e-290)  # tiny but drawn: each draw 0 or 1
    assert set(np.unique(tiny)) <= {0.0, 1.0} and 0 < tiny.mean() < 1


def test_a_pairs_draw_depends_on_seed_scenario_and_loan_position_only() -> None:
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.1, 0.9, 3000)
    sids = np.array([0, 7, 123456])
    whole = _all(9, sids, 0, mu, 4.0)
    np.testing.assert_array_equal(_all(9, sids[1:], 1000, mu[1000:2500], 4.0), whole[1:, 1000:2500])
    np.testing.assert_array_equal(_all(9, np.array([7]), 2999, mu[2999:], 4.0), whole[1:2, 2999:])
    assert not np.array_equal(_all(10, sids, 0, mu, 4.0), whole)
    # neighbours in scenario and loan are unrelated: the probability-integral transforms are iid U(0, 1), so
    # their rank correlations are near 0 (sd about 1/sqrt(3000))
    u = stats.beta(mu * 4.0, (1 - mu) * 4.0).cdf(whole)
    assert abs(stats.spearmanr(u[0], u[1]).statistic) < 0.06
    assert abs(stats.spearmanr(u[0, :-1], u[0, 1:]).statistic) < 0.06
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


def test_the_key_comes_from_the_seed_sequence() -> None:
    ref = np.random.SeedSequence(5, spawn_key=(0x4C4744,)).generate_state(2, np.uint64)
    np.testing.assert_array_equal(lgd_key(5), ref)
    assert not np.array_equal(lgd_key(5), lgd_key(6))


@pytest.mark.parametrize("with_scale", [False, True])
def test_booked_losses_are_rint_of_par_times_the_same_draws(with_scale: bool) -> None:
    rng = np.random.default_rng(2)
    s, lb, months, groups = 5, 700, 9, 3
    mu = np.where(rng.random(lb) < 0.1, 1.0, rng.uniform(0.05, 0.95, lb))
    sids, first = np.arange(40, 40 + s), 2048
    scale = np.where(rng.random((s, lb)) < 0.5, 1.0, rng.uniform(0.3, 1.0, (s, lb))) if with_scale else None
    par = np.where(rng.random((s, lb)) < 0.2, np.round(rng.uniform(1, 1e7, (s, lb))), 0.0)
    month = rng.integers(0, months, (s, lb)).astype(np.int32)
    group = rng.integers(0, groups, lb)
    loss = np.zeros((s, months, groups))
    LgdDraws(4, sids, first, mu, 3.0, scale).book_losses(par, month, group, loss)
    lgd = stressed_lgd(_all(4, sids, first, mu, 3.0), scale)  # the collateral module's own formula
    ref = np.zeros_like(loss)
    i, k = np.nonzero(par)
    np.add.at(ref, (i, month[i, k], group[k]), np.rint(par[i, k] * lgd[i, k]))
    np.testing.assert_array_equal(loss, ref)
    np.testing.assert_array_equal(_all(4, sids, first, mu, 3.0, scale), lgd)
    assert ref.sum() > 0


def test_kernels_take_a_zero_sized_scale_as_none() -> None:
    k0, k1 = (np.uint64(k) for k in lgd_key(0))
    out = np.empty((1, 2))
    realised_lgd(k0, k1, np.array([0]), 0, np.array([0.4, 0.6]), 5.0, _NO_SCALE, out)
    loss = np.zeros((1, 1, 1))
    book_default_losses(np.array([[100.0, 0.0]]), np.zeros((1, 2), np.int32), np.zeros(2, np.int64), k0, k1,
                        np.array([0]), 0, np.array([0.4, 0.6]), 5.0, _NO_SCALE, loss)
    assert loss[0, 0, 0] == np.rint(100.0 * out[0, 0])


def test_fused_and_torch_steps_book_the_same_losses_under_a_collateral_factor(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    n, s, months = 2300, 4, 24
    book = LoanBook.from_arrays(np.round(rng.uniform(1e3, 1e5, n), 2), 0.06, rng.integers(6, 60, n), "annuity",
                                lgd=rng.uniform(0.1, 0.9, n), lgd_concentration=4.0)
    mats = MarkovTransitionModel.default().transition_matrix_[:1]  # one cohort
    scale = np.where(rng.random((s, n)) < 0.5, 1.0, rng.uniform(0.4, 1.0, (s, n)))
    out = {}
    for fused in (False, True):
        monkeypatch.setattr(engine, "FUSED_KERNEL", fused)
        out[fused] = engine.simulate_pool_chunk(book, mats, np.arange(3, 3 + s), seed=8, n_months=months,
                                                recovery_scale=scale, loan_chunk=1024)
    np.testing.assert_array_equal(out[True], out[False])
    plain = engine.simulate_pool_chunk(book, mats, np.arange(3, 3 + s), seed=8, n_months=months, loan_chunk=1024)
    loss, par = POOL_CF_TYPES.index("loss"), POOL_CF_TYPES.index("default_par")
    assert out[True][..., loss].sum() > plain[..., loss].sum() > 0  # the factor raises losses, same defaults
    np.testing.assert_array_equal(out[True][..., par], plain[..., par])
