"""Likelihood-ratio reweighted tranche losses: the engine's own draws, exact means, independent Monte
Carlo on other paths, and finite differences.

Two books: a 400-loan slice of the example tape (rated corporates, fixed-rate real estate, floating
loans: every channel) over 24 months, and the demo's BSL CLO (340 floating B loans, CCC haircut) over 60
months, both on the Fed 2025 severely adverse path.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.datasets.fed import load_fed_scenarios
from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.loans.engine import simulate_loan_level, simulate_move_counts
from creditsim.loans.expected import expected_pool_cashflows, segment_layout
from creditsim.macro.latent import LatentPathMap
from creditsim.macro.vae import MacroVAE
from creditsim.risk.expected import ExpectedLossPath
from creditsim.risk.reweighted import MIN_ESS_SHARE, ReweightedLosses, WeightDegeneracyWarning
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, LoanState

T = 24
UNEMPLOYMENT = MACRO_VARS.index("unemployment_rate")


def _fed(months: int) -> np.ndarray:
    x = load_fed_scenarios(2025, "severely_adverse", monthly=True)[list(MACRO_VARS)].to_numpy()
    return np.concatenate([x, np.repeat(x[-1:], max(0, months - len(x)), axis=0)])[:months][None]


def _shifted(path: np.ndarray, pp: float) -> np.ndarray:
    out = path.copy()
    out[0, 6:, UNEMPLOYMENT] += pp
    return out


@pytest.fixture(scope="module")
def elp() -> ExpectedLossPath:
    tape = pd.read_parquet(example_path("loans_example.parquet")).sample(400, random_state=11).reset_index(drop=True)
    return ExpectedLossPath.from_tape(tape, example_path("example_clo.yaml"), horizon=T, seed=5)


@pytest.fixture(scope="module")
def bsl() -> ExpectedLossPath:
    tape = pd.read_parquet(example_path("loans_bsl.parquet"))
    return ExpectedLossPath.from_tape(tape, example_path("bsl_clo.yaml"), horizon=60, seed=5)


@pytest.fixture(scope="module")
def reweighted(elp) -> ReweightedLosses:
    return ReweightedLosses(elp, _fed(T), draws=1200, first_id=50_000)


def test_move_counts_are_the_engines_draws(elp) -> None:
    """Same seed and ids as the loan-level engine: per month, the moves out of each chain state add up to
    the loans in that state, and the moves into DEFAULT are the loans that default."""
    book, path = elp.engine.book, _fed(T)
    mats = elp.engine.cohort_matrices(path)
    ids = np.arange(7, 12)
    counts = simulate_move_counts(book, mats, ids, elp.engine.seed, T, loan_chunk=256)
    states = simulate_loan_level(book, mats, ids, elp.engine.seed, T).states.astype(np.int64)  # (s, L, T)
    start = np.concatenate([np.broadcast_to(book.initial_state[None, :, None], (len(ids), book.n_loans, 1)),
                            states[:, :, :-1]], axis=2)
    moves = counts.moves.numpy()  # (s, T, G, 4, 7)
    for x in range(4):
        np.testing.assert_array_equal(moves[:, :, :, x, :].sum((2, 3)), (start == x).sum(1))
    defaulted = (states == LoanState.DEFAULT) & (start < 4)
    np.testing.assert_array_equal(moves[..., LoanState.DEFAULT].sum((2, 3)), defaulted.sum(1))
    assert counts.moves.shape[2] == len(segment_layout(book, mats.shape[1], 32)[0])


def test_at_the_reference_path_it_is_the_monte_carlo_mean(elp) -> None:
    """Every weight is 1 and the estimate is the plain mean of the engine's draws with the same ids."""
    path = _fed(T)
    rw = ReweightedLosses(elp, path, draws=200, first_id=3)
    est = rw.estimate(path, mode="hard")
    assert est.ess == pytest.approx(200.0) and torch.all(est.weights == 1.0)
    pool = elp.monte_carlo_pool(path, 200)  # ids 0..199: shift to the same ids
    pool = np.concatenate([pool[3:], elp.engine.pool_cashflows(np.repeat(path, 3, axis=0), np.arange(200, 203))])
    np.testing.assert_allclose(rw.pool_cashflows(path).numpy(), pool, atol=0.02)  # floating interest: cent rounding
    _, mean, se = elp.monte_carlo_losses(pool, paths=path, reps=200)
    np.testing.assert_allclose(est.loss.numpy(), mean, atol=1e-9)
    np.testing.assert_allclose(est.standard_error.numpy(), se, atol=1e-9)


def test_reweighted_pool_flows_hit_the_exact_expectation_under_other_matrices(elp, reweighted) -> None:
    """Draws on the Fed path reweighted to matrices with a 15 % higher CURRENT -> DEFAULT probability
    everywhere, against the exact expected cashflows under those matrices: the plain mean of the draws
    misses them by far (so the test can fail), the reweighted mean does not."""
    path = _fed(T)
    with torch.no_grad():
        mats = elp.cohort_matrices(path).clone()
        cur, dflt = LoanState.CURRENT, LoanState.DEFAULT
        extra = 0.15 * mats[..., cur, dflt]
        mats[..., cur, dflt] += extra
        mats[..., cur, cur] -= extra
        est = reweighted.estimate(path, matrices=mats, mode="hard")
        mean_lgd = elp.lgd_moments(path)[0]
        exact = expected_pool_cashflows(elp.engine.book, mats, T, mean_lgd, index_shift=elp.index_shift(path),
                                        index_level=elp.index_level(path))[0].sum(0).numpy()  # (7,) totals
        draws = reweighted.pool_cashflows(path).sum(1).numpy()  # (K, 7)
    assert 0.2 * reweighted.draws < est.ess < 0.9 * reweighted.draws
    w = est.weights.numpy()
    for name in ("default_par", "loss", "prepayment", "interest"):
        k = POOL_CF_TYPES.index(name)
        se = (w * draws[:, k]).std(ddof=1) / np.sqrt(len(w))
        assert abs((w * draws[:, k]).mean() - exact[k]) < 3.5 * se, name
    k = POOL_CF_TYPES.index("default_par")
    assert abs(draws[:, k].mean() - exact[k]) > 6 * draws[:, k].std(ddof=1) / np.sqrt(len(w))


def test_reweighted_tranche_losses_match_an_independent_monte_carlo(elp, reweighted) -> None:
    """Tranche losses (the non-linear part) reweighted to a shifted path against 1,200 fresh engine draws
    on that path: within 3 standard errors of the difference for every class that loses."""
    other = _shifted(_fed(T), 0.02)
    est = reweighted.estimate(other, mode="hard")
    _, mean, se = elp.monte_carlo_losses(elp.monte_carlo_pool(other, 1200), paths=other, reps=1200)
    losing = mean > 0
    assert losing.sum() >= 2
    z = (est.loss.numpy() - mean)[losing] / np.hypot(est.standard_error.numpy(), se)[losing]
    assert np.all(np.abs(z) < 3.0), z


def _fd(fn, base: np.ndarray, idx: tuple, h: float) -> float:
    up, down = base.copy(), base.copy()
    up[idx] += h
    down[idx] -= h
    return (fn(up) - fn(down)) / (2 * h)


def test_gradients_match_central_differences(elp) -> None:
    """d loss / d macro path (matrices through the weights; floating, collateral and market channels
    through the flows), d loss / d tranche balances and d loss / d matrices, relative 1e-4 (float64)."""
    path = _shifted(_fed(T), 0.01)
    rw = ReweightedLosses(elp, _fed(T), draws=48, first_id=9)
    k = 3  # equity
    x = torch.tensor(path, requires_grad=True)
    sizes = torch.tensor([t.balance for t in elp.deal.tranches], dtype=torch.float64, requires_grad=True)
    gx, gs = torch.autograd.grad(rw.estimate(x, tranche_balances=sizes).loss[k], (x, sizes))

    def f_macro(p: np.ndarray) -> float:
        with torch.no_grad():
            return float(rw.estimate(p).loss[k])

    for idx in [(0, 6, UNEMPLOYMENT), (0, 10, MACRO_VARS.index("credit_spread_hy")),
                (0, 3, MACRO_VARS.index("house_price_growth")), (0, 12, MACRO_VARS.index("policy_rate")),
                (0, 8, MACRO_VARS.index("gdp_growth")), (0, 14, MACRO_VARS.index("yield_10y"))]:
        assert gx[idx].item() == pytest.approx(_fd(f_macro, path, idx, 1e-6), rel=1e-4, abs=1e-10), idx
    base = sizes.detach().numpy()

    def f_sizes(b: np.ndarray) -> float:
        with torch.no_grad():
            return float(rw.estimate(path, tranche_balances=torch.from_numpy(b)).loss[k])

    for j in range(len(base)):
        assert gs[j].item() == pytest.approx(_fd(f_sizes, base, (j,), 1e-6 * base[j]), rel=1e-4, abs=1e-14), j
    with torch.no_grad():
        mats = elp.cohort_matrices(path).clone()
    mats.requires_grad_(True)
    (gm,) = torch.autograd.grad(rw.estimate(path, matrices=mats).loss[k], mats)

    def f_mats(m: np.ndarray) -> float:
        with torch.no_grad():
            return float(rw.estimate(path, matrices=torch.from_numpy(m)).loss[k])

    # CURRENT -> DEFAULT (a rated cohort: the Markov cohorts default through the buckets), -> DPD30, DPD30 -> DPD60
    for idx in [(0, 5, 3, 0, 4), (0, 1, 10, 0, 1), (0, 4, 2, 1, 2)]:
        assert mats[idx] > 1e-6
        assert gm[idx].item() == pytest.approx(_fd(f_mats, mats.detach().numpy(), idx, 1e-7), rel=1e-4), idx


def test_gradient_with_respect_to_the_latent_draw(elp) -> None:
    """latent draw -> MacroVAE decoder -> path -> reweighted equity loss, against central differences."""
    lmap = LatentPathMap(MacroVAE.from_pretrained(), elp.start, T)
    u = lmap.sample(1, seed=4)
    with torch.no_grad():
        path = lmap.decode(u)[0]
    rw = ReweightedLosses(elp, path, draws=48, first_id=21)
    x = u.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rw.estimate(lmap.decode(x)[0]).loss[3], x)

    def f(v: np.ndarray) -> float:
        with torch.no_grad():
            return float(rw.estimate(lmap.decode(torch.from_numpy(v))[0]).loss[3])

    # the largest slopes among the VAE latents and among the innovations (some innovations move nothing)
    d = lmap.latent_dim
    picks = [int(grad[0, :d].abs().argmax()), d + int(grad[0, d:].abs().argmax()), 0]
    for i in picks:
        assert grad[0, i].item() == pytest.approx(_fd(f, u.numpy(), (0, i), 1e-6), rel=1e-4, abs=1e-10), i


def test_demo_deal_at_the_fed_path_equals_the_monte_carlo_and_differentiates(bsl) -> None:
    """The demo deal (BSL CLO, CCC haircut along the rating chain): the reweighted estimate on the Fed
    path from one set of draws against an independent Monte Carlo on the same path (the acceptance check
    runs 20,000 draws in bench/bench_expected_path_mc.py), and its CCC-channel gradient against differences."""
    path = _fed(60)
    rw = ReweightedLosses(bsl, path, draws=600, first_id=100_000)
    est = rw.estimate(path, mode="hard")
    _, mean, se = bsl.monte_carlo_losses(bsl.monte_carlo_pool(path, 600), paths=path, reps=600)
    assert mean[-1] > 0
    z = (est.loss.numpy() - mean)[mean > 0] / np.hypot(est.standard_error.numpy(), se)[mean > 0]
    assert np.all(np.abs(z) < 3.0), z
    small = ReweightedLosses(bsl, path, draws=24, first_id=100_000)
    x = torch.tensor(path, requires_grad=True)
    (g,) = torch.autograd.grad(small.estimate(x).loss[-1], x)
    idx = (0, 5, MACRO_VARS.index("credit_spread_hy"))  # moves the Z index, so the CCC share and the haircut

    def f(p: np.ndarray) -> float:
        with torch.no_grad():
            return float(small.estimate(p).loss[-1])

    assert g[idx].item() == pytest.approx(_fd(f, path, idx, 1e-6), rel=1e-4)


def test_ccc_share_is_the_engines(bsl) -> None:
    path = _fed(60)
    cf = bsl.engine.pool_cashflows(path, np.arange(1))
    engine_ccc = bsl.engine.ccc_par(path, cf)
    torch_ccc = cf[..., POOL_CF_TYPES.index("balance")] * bsl.ccc_share(path).numpy()
    np.testing.assert_allclose(torch_ccc, engine_ccc, rtol=1e-12)


def test_bad_inputs_are_named(elp) -> None:
    with pytest.raises(ConfigError, match="draws"):
        ReweightedLosses(elp, _fed(T), draws=1)
    with pytest.raises(ConfigError, match="first_id"):
        ReweightedLosses(elp, _fed(T), draws=4, first_id=-1)
    with pytest.raises(DataError, match="macro path"):
        ReweightedLosses(elp, np.zeros((2, T, 9)), draws=4)
    with pytest.raises(DataError, match="macro path"):
        ReweightedLosses(elp, np.zeros((T - 1, 9)), draws=4)
    with pytest.raises(ConfigError, match="chunk"):
        ReweightedLosses(elp, _fed(T), draws=4, chunk=0)
    rw = ReweightedLosses(elp, _fed(T), draws=4)
    with torch.no_grad():
        mats = elp.cohort_matrices(_fed(T))
    for bad in (torch.zeros(2, 3, T, 7, 7), mats[:, :-1], mats[:, :, : T - 1], mats.numpy()):
        with pytest.raises(DataError, match="matrices: expected a torch tensor of cohort matrices"):
            rw.estimate(_fed(T), matrices=bad)
    negative = mats.clone()
    negative[0, 0, 3, 0, 1] = -0.1
    with pytest.raises(DataError, match="finite probabilities"):
        rw.estimate(_fed(T), matrices=negative)
    with pytest.raises(DataError, match="sum to 1"):
        rw.estimate(_fed(T), matrices=torch.ones_like(mats))
    with pytest.raises(DataError, match="floating-point"):
        rw.estimate(_fed(T), matrices=mats.to(torch.int64))
    frozen = _fed(T)
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning about a non-writable array
        rw.estimate(frozen)


def test_degenerate_weights_warn(elp) -> None:
    """Reweighting far from the reference path (the Fed baseline from the severely adverse one) leaves a
    handful of effective draws: the estimate says so instead of reporting a confident wrong number."""
    rw = ReweightedLosses(elp, _fed(T), draws=200, first_id=7)
    far = load_fed_scenarios(2025, "baseline", monthly=True)[list(MACRO_VARS)].to_numpy()[:T][None]
    with pytest.warns(WeightDegeneracyWarning, match="effective sample size"):
        est = rw.estimate(far)
    assert est.ess < MIN_ESS_SHARE * 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rw.estimate(_shifted(_fed(T), 0.002)).ess > 0.9 * 200
