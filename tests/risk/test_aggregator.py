"""PortfolioAggregator: loan trajectories -> pool cashflows -> waterfall."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.states import POOL_CF_TYPES, LoanState
from creditsim.risk.aggregator import PortfolioAggregator
from creditsim.deal.analytics import level_pay_pool
from creditsim.deal.config import load_deal
from creditsim.deal.waterfall import run_waterfall

C, D, P = int(LoanState.CURRENT), int(LoanState.DEFAULT), int(LoanState.PREPAID)


@pytest.fixture()
def aggregator() -> PortfolioAggregator:
    return PortfolioAggregator(load_deal(example_path("example_clo.yaml")))


def hand_trajectories():
    """2 sims x 3 loans x 3 months; loan 0 amortises, loan 1 defaults in month 1 (sim 0), loan 2 prepays."""
    states = np.array([
        [[C, C, C], [C, D, D], [C, P, P]],
        [[C, C, C], [C, C, C], [C, C, C]],
    ])
    balances = np.array([
        [[75.0, 50.0, 25.0], [40.0, 0.0, 0.0], [18.0, 0.0, 0.0]],
        [[75.0, 50.0, 25.0], [40.0, 30.0, 20.0], [18.0, 16.0, 14.0]],
    ])
    # payments = interest (1 % of the previous balance) + scheduled principal + prepayment
    payments = np.array([
        [[26.0, 25.75, 25.5], [10.5, 0.0, 0.0], [2.2, 18.18, 0.0]],
        [[26.0, 25.75, 25.5], [10.5, 10.4, 10.3], [2.2, 2.18, 2.16]],
    ])
    features = pd.DataFrame({
        "loan_id": ["L0", "L1", "L2"],
        "current_balance": [100.0, 50.0, 20.0],
        "lgd_assumption": [0.4, 0.4, 0.4],
        "asset_class": ["corporate", "consumer", "consumer"],
    })
    return {"states": states, "balances": balances, "payments": payments}, features


def test_aggregate_derives_flows_from_states_balances_and_payments(aggregator):
    traj, features = hand_trajectories()
    df = aggregator.aggregate_cashflows(traj, features, recovery_lag=1)
    assert list(df.columns) == [*POOL_CF_TYPES, "initial_balance"]
    s0 = df.xs(0, level="sim")
    # sim 0, month 1: loan 1 defaults from 40 (40 % LGD: loss 16, recovery 24 one month later); loan 2
    # prepays 18
    assert s0.loc[1, "default_par"] == pytest.approx(40.0)
    assert s0.loc[1, "loss"] == pytest.approx(16.0)
    assert s0.loc[1, "recovery"] == 0.0
    assert s0.loc[2, "recovery"] == pytest.approx(24.0)
    assert s0.loc[1, "prepayment"] == pytest.approx(18.0)
    assert s0.loc[1, "scheduled_principal"] == pytest.approx(25.0)
    assert s0.loc[1, "interest"] == pytest.approx(0.75 + 0.18)
    assert s0.loc[1, "balance"] == pytest.approx(50.0)
    s1 = df.xs(1, level="sim")
    np.testing.assert_allclose(s1["scheduled_principal"], [25 + 10 + 2, 25 + 10 + 2, 25 + 10 + 2])
    np.testing.assert_allclose(s1["interest"], [1.0 + 0.5 + 0.2, 0.75 + 0.4 + 0.18, 0.5 + 0.3 + 0.16])
    assert (df["initial_balance"] == 170.0).all()


def test_aggregate_with_explicit_flows_is_a_sum_over_loans(aggregator):
    rng = np.random.default_rng(0)
    flows = {k: rng.uniform(0, 10, size=(4, 6, 5)) for k in POOL_CF_TYPES}
    traj = {"interest": torch.tensor(flows["interest"]), "principal": flows["scheduled_principal"],
            "prepayment": flows["prepayment"], "recoveries": flows["recovery"], "defaults": flows["default_par"],
            "losses": flows["loss"], "balances": flows["balance"], "initial_balance": np.full(6, 50.0)}
    df = aggregator.aggregate_cashflows(traj)
    cf, init = PortfolioAggregator.pool_tensor(df)
    # loan amounts are rounded to the cent, then summed exactly (creditsim.cents)
    expected = np.stack([np.round(flows[k], 2).sum(axis=1) for k in POOL_CF_TYPES], axis=-1)
    np.testing.assert_allclose(cf.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(init.numpy(), 300.0)


def test_group_by_splits_the_pool_and_sums_back(aggregator):
    traj, features = hand_trajectories()
    total = aggregator.aggregate_cashflows(traj, features)
    by_class = aggregator.aggregate_cashflows(traj, features, group_by="asset_class")
    assert by_class.index.names == ["sim", "month", "asset_class"]
    consumer = by_class.xs("consumer", level="asset_class")
    assert consumer.loc[(0, 1), "default_par"] == pytest.approx(40.0)
    assert by_class.xs("corporate", level="asset_class")["default_par"].sum() == 0.0
    summed = by_class.groupby(level=["sim", "month"]).sum()
    pd.testing.assert_frame_equal(summed, total, check_like=True)


def test_apply_waterfall_accepts_the_table_or_a_tensor(aggregator):
    pool = level_pay_pool(1e8, 0.08, 60, 66, cdr=[0.01, 0.05], cpr=0.1, severity=0.4, lag=6)
    S, T, K = pool.shape
    index = pd.MultiIndex.from_product([range(S), range(T)], names=["sim", "month"])
    table = pd.DataFrame(pool.reshape(S * T, K), index=index, columns=list(POOL_CF_TYPES))
    table["initial_balance"] = 1e8
    from_table = aggregator.apply_waterfall(table)
    from_tensor = aggregator(torch.as_tensor(pool), 1e8)
    direct = run_waterfall(pool, aggregator.config, 1e8)
    for key in ("tranche_cashflows", "oc_ratio", "balances"):
        torch.testing.assert_close(from_table[key], direct[key], equal_nan=True)
        torch.testing.assert_close(from_tensor[key], direct[key], equal_nan=True)
    soft = aggregator.apply_waterfall(pool, 1e8, mode="soft", temperature=0.01)
    assert not torch.equal(soft["tranche_cashflows"], direct["tranche_cashflows"])


def test_module_buffers_and_tranche_size_gradients(aggregator):
    assert aggregator.tranche_balances.dtype == torch.float64
    assert "tranche_balances" in dict(aggregator.named_buffers())
    assert aggregator.tranche_names == ["A", "B", "C", "Equity"]
    sizes = aggregator.tranche_balances.clone().requires_grad_(True)
    pool = level_pay_pool(1e8, 0.08, 60, 66, cdr=0.6, cpr=0.1, severity=0.7, lag=6)
    res = aggregator.apply_waterfall(pool, 1e8, mode="straight_through", tranche_balances=sizes)
    (grad,) = torch.autograd.grad(res["balances"][:, -1, 0].sum(), sizes)
    assert torch.isfinite(grad).all() and grad[0] > 0


def test_monte_carlo_simulate_delegates_to_the_risk_simulation(aggregator, monkeypatch):
    import creditsim.risk.aggregator as module

    calls = {}

    def monte_carlo_simulate(agg, *args, **kwargs):
        calls["args"] = (agg, args, kwargs)
        return "results"

    monkeypatch.setattr(module, "monte_carlo_simulate", monte_carlo_simulate)
    assert aggregator.monte_carlo_simulate("loans", n_simulations=10) == "results"
    expected = {"macro_vae": None, "transition_model": None, "trajectory_model": None, "n_simulations": 10,
                "scenario_mix": None}
    assert calls["args"] == (aggregator, ("loans",), expected)


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.update(colour=t["balances"]), "unknown key 'colour'"),
    (lambda t: t.pop("balances"), "needs 'balance'"),
    (lambda t: t.update(payments=t["payments"][:, :, :2]), r"'payments'.*has shape \(2, 3, 2\)"),
    (lambda t: t.update(payments=-t["payments"]), r"'payments'.*must be >= 0"),
    (lambda t: t.update(balances=t["balances"][0]), r"must have shape \(n_sims, n_loans, T\)"),
    (lambda t: t.pop("states"), "needs 'default_par'"),
])
def test_bad_trajectories_raise_data_errors(aggregator, mutate, message):
    traj, features = hand_trajectories()
    mutate(traj)
    with pytest.raises(DataError, match=message):
        aggregator.aggregate_cashflows(traj, features)


def test_missing_features_raise_data_errors(aggregator):
    traj, features = hand_trajectories()
    with pytest.raises(DataError, match="initial loan balances are needed"):
        aggregator.aggregate_cashflows(traj)
    with pytest.raises(DataError, match="loan_features has 2 rows, trajectories have 3 loans"):
        aggregator.aggregate_cashflows(traj, features.iloc[:2])
    with pytest.raises(DataError, match="needs 'loss'"):
        aggregator.aggregate_cashflows(traj, features.drop(columns="lgd_assumption"))
    with pytest.raises(DataError, match=r"group_by column\(s\) \['sector'\]"):
        aggregator.aggregate_cashflows(traj, features, group_by="sector")


def test_constructor_validates():
    with pytest.raises(ConfigError, match="WaterfallConfig"):
        PortfolioAggregator({"tranches": []})
    with pytest.raises(ConfigError, match="mode must be one of"):
        PortfolioAggregator(load_deal(example_path("example_clo.yaml")), mode="exact")


def test_recoveries_arrive_after_the_lag_like_the_engine_books_them(aggregator):
    """The listed inconsistency of the house issue: aggregate_cashflows booked recoveries in the month
    of default, the engine ``recovery_lag`` months later. Now both go through loans.pool: the default
    (12 months) pushes the month-1 recovery past a 3-month horizon, lag 0 books it at once, lag 2 in
    month 3 = past the horizon too, lag 1 in month 2."""
    traj, features = hand_trajectories()
    by_lag = {lag: aggregator.aggregate_cashflows(traj, features, recovery_lag=lag).xs(0, level="sim")["recovery"]
              for lag in (0, 1, 2)}
    np.testing.assert_allclose(by_lag[0], [0.0, 24.0, 0.0])
    np.testing.assert_allclose(by_lag[1], [0.0, 0.0, 24.0])
    np.testing.assert_allclose(by_lag[2], [0.0, 0.0, 0.0])
    default = aggregator.aggregate_cashflows(traj, features).xs(0, level="sim")["recovery"]
    np.testing.assert_array_equal(default, [0.0, 0.0, 0.0])
    # per-loan lags: only loan 1 defaults, so its lag decides
    per_loan = aggregator.aggregate_cashflows(traj, features, recovery_lag=np.array([5, 0, 5]))
    np.testing.assert_allclose(per_loan.xs(0, level="sim")["recovery"], [0.0, 24.0, 0.0])


def test_aggregator_reproduces_the_engine_pool_from_its_loan_level_flows(aggregator):
    """Same loans, same draws: the engine's pool cashflows and the aggregator fed with the engine's
    loan-level flows (recoveries left for the aggregator to book) agree to the cent -- one convention."""
    from creditsim.loans.book import LoanBook
    from creditsim.loans.engine import simulate_loan_level, simulate_pool_chunk
    from creditsim.transitions.markov import MarkovTransitionModel
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(300, 2, random_seed=3).generate()
    book = LoanBook.from_tape(loans, recovery_lag=4)
    mats = MarkovTransitionModel.default().transition_matrix_ * 1.0
    # a harsher matrix so that many loans default inside the horizon
    mats[:, 0, 4] += 0.02
    mats[:, 0, 0] -= 0.02
    ids = np.array([0, 1])
    pool, _ = simulate_pool_chunk(book, mats, ids, seed=9, n_months=18, return_pending=True)
    lvl = simulate_loan_level(book, mats, ids, seed=9, n_months=18)
    assert lvl.default_par.sum() > 0
    traj = {k: getattr(lvl, k) for k in ("interest", "scheduled_principal", "prepayment", "default_par", "loss", "balance")}
    traj["initial_balance"] = lvl.opening_balance
    df = aggregator.aggregate_cashflows(traj, recovery_lag=book.recovery_lag)
    agg = aggregator.pool_tensor(df)[0].numpy()
    np.testing.assert_array_equal(agg, pool)
    np.testing.assert_array_equal(lvl.pool(), pool)
