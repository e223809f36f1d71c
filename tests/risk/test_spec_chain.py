"""The spec's aggregator chain (issue 10): settings honoured, trajectory output accepted, sums exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.examples import example_path
from creditsim.risk.aggregator import PortfolioAggregator
from creditsim.deal.config import load_deal


@pytest.fixture(scope="module")
def deal():
    return load_deal(example_path("example_clo.yaml"))


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    return pd.read_parquet(example_path("loans_example.parquet")).head(60)


def _run(agg: PortfolioAggregator, loans: pd.DataFrame):
    return agg.monte_carlo_simulate(loans, n_simulations=16, macro="synthetic", horizon=12, seed=3, progress=False)


def test_monte_carlo_simulate_uses_the_aggregators_mode(deal, loans) -> None:
    res = _run(PortfolioAggregator(deal, mode="soft"), loans)
    assert res.settings["mode"] == "soft"


def test_monte_carlo_simulate_uses_the_aggregators_tranche_balances(deal, loans) -> None:
    base = _run(PortfolioAggregator(deal), loans)
    agg = PortfolioAggregator(deal)
    sizes = agg.tranche_balances.clone()
    sizes[-1] = sizes[-1] * 3.0  # a thicker equity tranche
    agg.tranche_balances.copy_(sizes)
    thick = _run(agg, loans)
    # simulate scales the deal to the pool by one factor, so the equity tranche is 3x as thick as before
    ratio = thick.tranche_results[-1].balance / base.tranche_results[-1].balance
    assert ratio == pytest.approx(3.0, rel=1e-9)
    assert thick.tranche_results[0].balance == pytest.approx(base.tranche_results[0].balance, rel=1e-9)


def test_aggregate_accepts_the_trajectory_models_lgd_key_and_sums_exactly(deal) -> None:
    rng = np.random.default_rng(1)
    S, L, T = 3, 40, 5
    bal = np.round(rng.uniform(1e3, 1e5, (S, L, 1)) * np.linspace(1.0, 0.5, T)[None, None, :], 2)
    traj = {"balances": bal, "interest": np.round(bal * 0.004, 2), "scheduled_principal": np.round(bal * 0.02, 2),
            "prepayment": np.zeros_like(bal), "default_par": np.zeros_like(bal), "losses": np.zeros_like(bal),
            "states": np.zeros((S, L, T), dtype=np.int64), "lgd": rng.uniform(0, 1, (S, L)),
            "initial_balance": bal[:, :, 0] * 1.01}
    agg = PortfolioAggregator(deal)
    whole = agg.aggregate_cashflows(traj)
    # the same loans in reverse order: an order-dependent float sum would change the last bits
    rev = {k: (v[:, ::-1] if k != "lgd" else v[:, ::-1]) for k, v in traj.items()}
    pd.testing.assert_frame_equal(whole, agg.aggregate_cashflows(rev), check_exact=True)
    np.testing.assert_array_equal(whole["interest"].to_numpy(), np.round(whole["interest"].to_numpy(), 2))


def test_full_chain_vae_transformer_trajectory_runs_with_the_shipped_checkpoints(deal, loans) -> None:
    """MacroVAE paths -> TransitionTransformer cohort matrices -> LoanTrajectoryModel loan paths -> waterfall."""
    from creditsim.loans.trajectory import LoanTrajectoryModel
    from creditsim.macro.vae import MacroVAE
    from creditsim.transitions.transformer import TransitionTransformer

    agg = PortfolioAggregator(deal)
    res = agg.monte_carlo_simulate(loans.head(20), macro_vae=MacroVAE.from_pretrained(),
                                   transition_model=TransitionTransformer.from_pretrained(),
                                   trajectory_model=LoanTrajectoryModel.from_pretrained(),
                                   n_simulations=4, horizon=6, seed=2, progress=False)
    assert res.settings["engine"] == "trajectory"
    assert np.isfinite(res.portfolio_losses).all() and len(res.portfolio_losses) == 4
