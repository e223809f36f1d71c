"""The differentiable expected-loss path against the Monte Carlo engine, closed facts and finite differences.

A 400-loan slice of the example tape (rated corporates, fixed-rate real estate, floating loans: every
channel of the engine) over 24 months, the example CLO scaled to it, the Fed 2025 paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.datasets.fed import load_fed_scenarios
from creditsim.deal.analytics import principal_loss
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.loans.expected import expected_pool_cashflows
from creditsim.risk.expected import ExpectedLossPath
from creditsim.states import MACRO_VARS, POOL_CF_TYPES

T = 24
N_MC = 1500


def _tape() -> pd.DataFrame:
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    return tape.sample(400, random_state=11).reset_index(drop=True)


def _fed(scenario: str) -> np.ndarray:
    return load_fed_scenarios(2025, scenario, monthly=True)[list(MACRO_VARS)].to_numpy()[:T]


@pytest.fixture(scope="module")
def elp() -> ExpectedLossPath:
    return ExpectedLossPath.from_tape(_tape(), example_path("example_clo.yaml"), horizon=T, seed=5)


@pytest.fixture(scope="module")
def paths() -> np.ndarray:
    return np.stack([_fed("baseline"), _fed("severely_adverse")])


@pytest.fixture(scope="module")
def monte_carlo(elp, paths) -> np.ndarray:
    """``(N_MC, T, 7)`` Monte Carlo pool cashflows on the severely adverse path."""
    return elp.engine.pool_cashflows(np.repeat(paths[1:], N_MC, axis=0), np.arange(N_MC))


def test_the_slice_exercises_every_channel(elp) -> None:
    book = elp.engine.book
    assert elp.engine.rating_link is not None and elp.engine.refinancing is not None
    assert book.floating.any() and (book.asset_class == 2).any()


def test_torch_matrices_equal_the_engine(elp, paths) -> None:
    np.testing.assert_allclose(elp.cohort_matrices(paths).numpy(), elp.engine.cohort_matrices(paths), rtol=0, atol=1e-12)


def test_expected_cashflows_equal_the_monte_carlo_mean(elp, paths, monte_carlo) -> None:
    """Totals over the horizon of every pool flow: within 4 Monte Carlo standard errors (the engine's
    cent rounding and float32 thresholds are far below that)."""
    with torch.no_grad():
        exact = elp.pool_cashflows(paths[1:])[0].numpy()
    totals = monte_carlo.sum(axis=1)
    for k, name in enumerate(POOL_CF_TYPES):
        se = totals[:, k].std(ddof=1) / np.sqrt(N_MC)
        z = (exact[:, k].sum() - totals[:, k].mean()) / se
        assert abs(z) < 4.0, (name, z)


def test_pool_identities_hold_in_expectation(elp, paths) -> None:
    with torch.no_grad():
        cf = elp.pool_cashflows(paths).numpy()
    col = {n: cf[..., i] for i, n in enumerate(POOL_CF_TYPES)}
    opening = np.concatenate([np.full((2, 1), elp.engine.initial_balance), col["balance"][:, :-1]], axis=1)
    flow = col["scheduled_principal"] + col["prepayment"] + col["default_par"]
    np.testing.assert_allclose(opening - flow, col["balance"], rtol=0, atol=1e-6 * elp.engine.initial_balance)
    assert (col["loss"] <= col["default_par"] + 1e-6).all() and (col["loss"] >= 0).all()


def test_loss_variance_matches_the_monte_carlo_spread(elp, paths, monte_carlo) -> None:
    with torch.no_grad():
        _, monthly, total = elp.pool_cashflows(paths[1:], with_variance=True)
    mc_sd = monte_carlo[:, :, POOL_CF_TYPES.index("loss")].sum(axis=1).std(ddof=1)
    assert float(total[0].sqrt()) == pytest.approx(mc_sd, rel=0.1)
    # independent months would overstate it: a loan defaults once
    assert float(monthly[0].sum()) > float(total[0])


def test_granular_tranche_losses_track_the_monte_carlo(elp, paths, monte_carlo) -> None:
    """The waterfall of the expected cashflows misses E[waterfall] (Jensen); the idiosyncratic draws move
    the mezzanine class towards the Monte Carlo mean (measured on this 400-loan slice, severely adverse:
    class C Monte Carlo 0.291, expected cashflows 0.197, with draws 0.226) and keep every class within 0.1."""
    wf = run_waterfall(monte_carlo, elp.deal, initial_balance=elp.engine.initial_balance, mode="hard")
    mc = principal_loss(wf).numpy().mean(axis=0)
    with torch.no_grad():
        granular = elp.tranche_losses(paths[1:], mode="hard")[0].numpy()
        plain = elp.tranche_losses(paths[1:], mode="hard", granularity=None)[0].numpy()
    np.testing.assert_allclose(granular, mc, atol=0.1)
    assert abs(granular[2] - mc[2]) < abs(plain[2] - mc[2])


def test_losses_rise_with_the_stress(elp, paths) -> None:
    with torch.no_grad():
        loss, pool = elp.losses(paths)
    assert pool[1] > pool[0]
    assert (loss[1] >= loss[0] - 1e-12).all()


def _fd(fn, x: np.ndarray, idx: tuple, h: float) -> float:
    up, down = x.copy(), x.copy()
    up[idx] += h
    down[idx] -= h
    return (fn(up) - fn(down)) / (2 * h)


@pytest.mark.parametrize("granularity", [None, 16])
def test_gradients_match_central_differences(elp, paths, granularity) -> None:
    """d loss / d macro path (through matrices, rating chain, refinancing, LGD and floating channels) and
    d loss / d tranche balances (attachment points) against central differences, relative 1e-4."""
    k = 3  # equity: a loss on both paths, so every entry has a slope
    x = torch.tensor(paths, requires_grad=True)
    sizes = torch.tensor([t.balance for t in elp.deal.tranches], dtype=torch.float64, requires_grad=True)
    loss = elp.tranche_losses(x, tranche_balances=sizes, granularity=granularity)[:, k].sum()
    gx, gs = torch.autograd.grad(loss, (x, sizes))

    def f_macro(p: np.ndarray) -> float:
        with torch.no_grad():
            return float(elp.tranche_losses(p, granularity=granularity)[:, k].sum())

    for idx in [(1, 6, MACRO_VARS.index("unemployment_rate")), (1, 10, MACRO_VARS.index("credit_spread_hy")),
                (1, 3, MACRO_VARS.index("house_price_growth")), (1, 12, MACRO_VARS.index("policy_rate")),
                (0, 8, MACRO_VARS.index("gdp_growth")), (1, 14, MACRO_VARS.index("yield_10y"))]:
        fd = _fd(f_macro, paths, idx, 1e-6)
        assert gx[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-9), idx
    base = sizes.detach().numpy()

    def f_sizes(b: np.ndarray) -> float:
        with torch.no_grad():
            return float(elp.tranche_losses(paths, tranche_balances=torch.from_numpy(b), granularity=granularity)[:, k].sum())

    for j in range(len(base)):
        fd = _fd(f_sizes, base, (j,), 1e-6 * base[j])
        assert gs[j].item() == pytest.approx(fd, rel=1e-4, abs=1e-14), j


def test_gradient_with_respect_to_the_matrices(elp, paths) -> None:
    book = elp.engine.book
    with torch.no_grad():
        mats = elp.cohort_matrices(paths[1:]).clone()
        lgd = elp.expected_lgd(paths[1:])
    mats.requires_grad_(True)
    total = expected_pool_cashflows(book, mats, T, lgd)[..., POOL_CF_TYPES.index("loss")].sum()
    (grad,) = torch.autograd.grad(total, mats)

    def f(m: np.ndarray) -> float:
        with torch.no_grad():
            cf = expected_pool_cashflows(book, torch.from_numpy(m), T, lgd)
        return float(cf[..., POOL_CF_TYPES.index("loss")].sum())

    base = mats.detach().numpy()
    for idx in [(0, 0, 5, 0, 4), (0, 1, 10, 0, 1), (0, 4, 2, 1, 2)]:  # CURRENT->DEFAULT, CURRENT->DPD30, DPD30->DPD60
        assert grad[idx].item() == pytest.approx(_fd(f, base, idx, 1e-7), rel=1e-4), idx


def test_bad_inputs_are_named(elp) -> None:
    with pytest.raises(DataError, match="macro paths"):
        elp.pool_cashflows(np.zeros((1, T - 1, 9)))
    with pytest.raises(ConfigError, match="tranche 'Z'"):
        elp.tranche_index("Z")
    with pytest.raises(DataError, match="lgd"):
        expected_pool_cashflows(elp.engine.book, elp.cohort_matrices(np.zeros((1, T, 9))), T, torch.zeros(1, 3))
