"""Worked waterfall cases, each computed by hand in the test (currency units, monthly months t = 0..)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.errors import ConfigError, DataError
from creditsim.states import POOL_CF_TYPES
from creditsim.deal.analytics import irr
from creditsim.deal.config import WaterfallConfig
from creditsim.deal.waterfall import cash_conservation_error, run_waterfall

COL = {name: i for i, name in enumerate(POOL_CF_TYPES)}


def make_pool(T: int, **flows: list[float]) -> np.ndarray:
    """One-scenario (1, T, 7) pool array from per-type lists (missing types are zero)."""
    out = np.zeros((1, T, len(POOL_CF_TYPES)))
    for name, values in flows.items():
        out[0, :, COL[name]] = values
    return out


def deal(tranches, **kw) -> WaterfallConfig:
    base = dict(oc_trigger=None, ic_trigger=None, reinvestment_period=0, management_fee=0.0, sub_fee=0.0)
    if "senior_fee" in kw:  # a fee split replaces the single management fee (both is a ConfigError)
        del base["management_fee"]
    base.update(kw)
    return WaterfallConfig(tranches=tranches, **base)


def v(result, key):
    return result[key][0].detach().numpy()


def test_two_tranche_sequential_pay():
    cfg = deal([
        {"name": "A", "balance": 60.0, "coupon": 0.06},
        {"name": "B", "balance": 30.0, "coupon": 0.12},
        {"name": "Equity", "balance": 10.0, "equity": True},
    ])
    pool = make_pool(3, interest=[1.0, 0.7, 0.3], scheduled_principal=[30, 40, 30], balance=[70, 30, 0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # month 0: A 60 x 0.5 % = 0.30, B 30 x 1 % = 0.30, equity 1.0 - 0.6; principal 30 -> A
    # month 1: A 30 x 0.5 % = 0.15, B 0.30, equity 0.25; principal 40 -> A 30, B 10
    # month 2: B 20 x 1 % = 0.20, equity 0.10; principal 30 -> B 20, equity 10
    np.testing.assert_allclose(v(r, "interest"), [[0.3, 0.3], [0.15, 0.3], [0.0, 0.2]], atol=1e-12)
    np.testing.assert_allclose(v(r, "principal"), [[30, 0], [30, 10], [0, 20]], atol=1e-12)
    np.testing.assert_allclose(v(r, "equity"), [0.4, 0.25, 10.1], atol=1e-12)
    np.testing.assert_allclose(v(r, "balances"), [[30, 30], [0, 20], [0, 0]], atol=1e-12)
    assert float(cash_conservation_error(r).abs().max()) < 1e-12


def test_oc_failure_diverts_interest_to_class_a():
    cfg = deal([
        {"name": "A", "balance": 70.0, "coupon": 0.06, "oc_trigger": 1.20},
        {"name": "Equity", "balance": 30.0, "equity": True},
    ], liquidate_at_horizon=False)
    # 20 of par defaults with no recovery: ACPA = 80 performing, OC_A = 80 / 70 < 1.20
    pool = make_pool(1, interest=[5.0], default_par=[20.0], loss=[20.0], balance=[80.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    cure = 70.0 - 80.0 / 1.20  # interest-funded cure: L - ACPA / theta = 3.3333...
    assert v(r, "oc_ratio")[0, 0] == pytest.approx(80.0 / 70.0, rel=1e-14)
    assert v(r, "oc_pass")[0, 0] == 0.0
    assert v(r, "interest")[0, 0] == pytest.approx(0.35, rel=1e-14)  # 70 x 6 % / 12
    assert v(r, "interest_cure")[0] == pytest.approx(cure, rel=1e-13)
    assert v(r, "principal")[0, 0] == pytest.approx(cure, rel=1e-13)
    assert v(r, "equity")[0] == pytest.approx(5.0 - 0.35 - cure, rel=1e-13)
    # after the cure the test passes exactly at the trigger
    assert 80.0 / v(r, "balances")[0, 0] == pytest.approx(1.20, rel=1e-13)


def test_oc_passing_diverts_nothing():
    cfg = deal([
        {"name": "A", "balance": 70.0, "coupon": 0.06, "oc_trigger": 1.20},
        {"name": "Equity", "balance": 30.0, "equity": True},
    ], liquidate_at_horizon=False)
    pool = make_pool(1, interest=[5.0], default_par=[10.0], loss=[10.0], balance=[90.0])  # OC 90/70 = 1.29
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    assert v(r, "oc_pass")[0, 0] == 1.0
    assert v(r, "interest_cure")[0] == 0.0
    assert v(r, "equity")[0] == pytest.approx(5.0 - 0.35, rel=1e-14)


def test_oc_failure_cured_from_principal_uses_principal_formula():
    cfg = deal([
        {"name": "A", "balance": 90.0, "coupon": 0.0, "oc_trigger": 1.20},
        {"name": "Equity", "balance": 10.0, "equity": True},
    ], reinvestment_period=12, liquidate_at_horizon=False)
    # ACPA = 60 performing + 40 principal cash = 100; OC = 100 / 90 < 1.2; no interest to cure with.
    pool = make_pool(1, prepayment=[40.0], balance=[60.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # principal cash leaves the numerator too: x = (1.2 x 90 - 100) / 0.2 = 40 (the interest formula
    # 90 - 100 / 1.2 = 6.67 would leave the test failing)
    assert v(r, "principal_cure")[0] == pytest.approx(40.0, rel=1e-13)
    assert v(r, "reinvestment")[0] == pytest.approx(0.0, abs=1e-12)
    assert v(r, "balances")[0, 0] == pytest.approx(50.0, rel=1e-13)
    assert 60.0 / 50.0 == pytest.approx(1.2)


def test_ic_failure_pays_down_senior_pro_forma():
    cfg = deal([
        {"name": "A", "balance": 60.0, "coupon": 0.06},
        {"name": "B", "balance": 20.0, "coupon": 0.12, "ic_trigger": 1.20},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ], reinvestment_period=12, ic_first_period=0, liquidate_at_horizon=False)
    pool = make_pool(1, interest=[0.55], prepayment=[10.0], balance=[90.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # interest due A 0.30 + B 0.20 = 0.50; IC_B = 0.55 / 0.50 = 1.10 < 1.20
    assert v(r, "ic_ratio")[0, 1] == pytest.approx(1.10, rel=1e-14)
    assert v(r, "ic_pass")[0, 1] == 0.0
    # cut in interest due needed: 0.50 - 0.55 / 1.2 = 0.041667, i.e. 0.041667 / 0.005 = 8.3333 of A;
    # the 0.05 of interest left after coupons goes first, principal proceeds pay the rest
    total = (0.50 - 0.55 / 1.2) / 0.005
    assert v(r, "interest_cure")[0] == pytest.approx(0.05, rel=1e-12)
    assert v(r, "principal_cure")[0] == pytest.approx(total - 0.05, rel=1e-12)
    assert v(r, "principal")[0, 0] == pytest.approx(total, rel=1e-12)
    assert v(r, "reinvestment")[0] == pytest.approx(10.0 - (total - 0.05), rel=1e-12)
    a_after = 60.0 - total
    assert 0.55 / (a_after * 0.005 + 0.20) == pytest.approx(1.20, rel=1e-12)  # passes pro forma
    assert v(r, "equity")[0] == pytest.approx(0.0, abs=1e-12)


def test_pik_class_repaid_in_full_earns_its_coupon_yield():
    cfg = deal([
        {"name": "A", "balance": 50.0, "coupon": 0.06},
        {"name": "B", "balance": 30.0, "coupon": 0.12, "deferrable": True},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ])
    T = 24
    interest = [0.25] * 12 + [5.0] * 12  # the first year covers class A's coupon only
    sched = [0.0] * 23 + [100.0]
    bal = [100.0] * 23 + [0.0]
    r = run_waterfall(make_pool(T, interest=interest, scheduled_principal=sched, balance=bal), cfg, initial_balance=100.0)
    # unpaid interest is capitalised monthly at 1 %: N_B(t) = 30 x 1.01^(t+1) for t < 12
    np.testing.assert_allclose(v(r, "balances")[:12, 1], 30.0 * 1.01 ** np.arange(1, 13), rtol=1e-13)
    assert v(r, "event_of_default").sum() == 0.0  # deferral is not an event of default
    # month 12: current interest, then the leftover repays the capitalised 30 (1.01^12 - 1)
    assert v(r, "deferred_interest_paid")[12, 1] == pytest.approx(30.0 * (1.01 ** 12 - 1.0), rel=1e-12)
    assert v(r, "balances")[12, 1] == pytest.approx(30.0, rel=1e-13)
    assert v(r, "balances")[-1, 1] == pytest.approx(0.0, abs=1e-12)
    b_cash = r["tranche_cashflows"][0, :, 1].numpy()
    assert irr(b_cash[None, :], 30.0)[0] == pytest.approx(1.01 ** 12 - 1.0, abs=1e-10)
    assert float(cash_conservation_error(r).abs().max()) < 1e-12


def test_reinvestment_keeps_notes_flat():
    cfg = deal([
        {"name": "A", "balance": 80.0, "coupon": 0.05, "oc_trigger": 1.10},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ], reinvestment_period=6)
    T = 12
    sched = [5.0] * 11 + [45.0]
    bal = list(100.0 - 5.0 * np.arange(1, 12)) + [0.0]
    r = run_waterfall(make_pool(T, interest=[0.6] * T, scheduled_principal=sched, balance=bal), cfg,
                      initial_balance=100.0)
    # months 0..5: every unit of principal buys collateral: par stays 100, notes stay 80
    np.testing.assert_allclose(v(r, "balances")[:6, 0], 80.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v(r, "collateral_balance")[:6], 100.0, rtol=1e-13)
    np.testing.assert_allclose(v(r, "reinvestment")[:6], v(r, "principal_proceeds")[:6], rtol=1e-13)
    # the bucket holds what the pool has paid down: 5, 10, ..., 30
    np.testing.assert_allclose(v(r, "bucket_balance")[:6], 5.0 * np.arange(1, 7), rtol=1e-13)
    # month 1: the bucket (5) amortises at the pool's rate 5 / 95
    assert v(r, "principal_proceeds")[1] == pytest.approx(5.0 + 5.0 * 5.0 / 95.0, rel=1e-13)
    # after the period: no reinvestment, class A amortises and is repaid in full
    assert np.all(v(r, "reinvestment")[6:] == 0.0)
    assert v(r, "principal")[6, 0] > 0
    assert v(r, "principal")[:, 0].sum() == pytest.approx(80.0, rel=1e-13)
    assert float(cash_conservation_error(r).abs().max()) < 1e-12


def test_reinvestment_bucket_mirrors_pool_defaults_and_recoveries():
    cfg = deal([
        {"name": "A", "balance": 80.0, "coupon": 0.0},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ], reinvestment_period=3, liquidate_at_horizon=False)
    # month 0: 10 of principal -> bucket 10; month 1: 10 % of the pool defaults at 40 % severity;
    # month 2: the pool recovers all of its pending 60 %
    pool = make_pool(3, scheduled_principal=[10, 0, 0], default_par=[0, 9, 0], loss=[0, 3.6, 0],
                     recovery=[0, 0, 5.4], balance=[90, 81, 81])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    assert v(r, "bucket_balance")[1] == pytest.approx(9.0, rel=1e-13)  # 10 % of 10 defaulted
    # ACPA month 1: 81 + 9 performing + 0.6 x (9 + 1) expected recoveries
    assert v(r, "acpa")[1] == pytest.approx(81 + 9 + 5.4 + 0.6, rel=1e-13)
    # month 2: the bucket recovers its 0.6 like the pool; 5.4 + 0.6 is reinvested
    assert v(r, "principal_proceeds")[2] == pytest.approx(6.0, rel=1e-13)
    assert v(r, "bucket_balance")[2] == pytest.approx(15.0, rel=1e-13)


def test_fees_senior_and_subordinated():
    cfg = deal([
        {"name": "A", "balance": 80.0, "coupon": 0.06},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ], senior_fee=0.012, sub_fee=0.024, liquidate_at_horizon=False)
    pool = make_pool(2, interest=[1.0, 0.42], balance=[100.0, 100.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # senior 100 x 1.2 % / 12 = 0.1, A 0.4, sub 0.2, equity 0.3
    assert v(r, "senior_fee")[0] == pytest.approx(0.1)
    assert v(r, "sub_fee")[0] == pytest.approx(0.2)
    assert v(r, "equity")[0] == pytest.approx(0.3)
    # month 1: 0.42 covers senior 0.1 and A 0.4 only in part: A gets 0.32, the sub fee accrues unpaid
    assert v(r, "interest")[1, 0] == pytest.approx(0.32)
    assert v(r, "sub_fee")[1] == 0.0
    assert v(r, "interest_shortfall")[1, 0] == pytest.approx(0.08)
    assert v(r, "event_of_default")[1] == 1.0


def test_single_management_fee_is_senior():
    cfg = WaterfallConfig(tranches=[{"name": "A", "balance": 80.0, "coupon": 0.0},
                                    {"name": "E", "balance": 20.0, "equity": True}],
                          oc_trigger=None, ic_trigger=None, management_fee=0.012, liquidate_at_horizon=False)
    r = run_waterfall(make_pool(1, interest=[0.05], balance=[100.0]), cfg, initial_balance=100.0)
    assert v(r, "senior_fee")[0] == pytest.approx(0.05)  # 0.1 due, all interest goes to it
    assert v(r, "equity")[0] == 0.0


def test_liquidation_at_horizon_pays_remaining_collateral_sequentially():
    cfg = deal([
        {"name": "A", "balance": 60.0, "coupon": 0.0},
        {"name": "Equity", "balance": 40.0, "equity": True},
    ], liquidation_price=0.9)
    pool = make_pool(1, default_par=[10.0], loss=[4.0], balance=[90.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # 90 x 0.9 performing + 6 expected recovery = 87: A 60, equity 27
    assert v(r, "liquidation")[0] == pytest.approx(87.0)
    assert v(r, "principal")[0, 0] == pytest.approx(60.0)
    assert v(r, "equity")[0] == pytest.approx(27.0)


def test_modes_agree_in_forward_values_for_straight_through():
    cfg = deal([
        {"name": "A", "balance": 70.0, "coupon": 0.06, "oc_trigger": 1.20},
        {"name": "Equity", "balance": 30.0, "equity": True},
    ], liquidate_at_horizon=False)
    pool = make_pool(1, interest=[5.0], default_par=[20.0], loss=[20.0], balance=[80.0])
    hard = run_waterfall(pool, cfg, 100.0, mode="hard")
    st = run_waterfall(pool, cfg, 100.0, mode="straight_through")
    soft = run_waterfall(pool, cfg, 100.0, mode="soft")
    assert torch.equal(hard["tranche_cashflows"], st["tranche_cashflows"])
    assert not torch.allclose(hard["tranche_cashflows"], soft["tranche_cashflows"])


def test_bad_inputs_raise_clear_errors():
    cfg = deal([{"name": "A", "balance": 1.0, "coupon": 0.0}, {"name": "E", "balance": 1.0, "equity": True}])
    with pytest.raises(DataError, match=r"shape \(n_sims, n_months, 7\)"):
        run_waterfall(np.zeros((2, 3)), cfg, 1.0)
    bad = make_pool(2, interest=[1.0, -5.0], balance=[1, 1])
    with pytest.raises(DataError, match="interest must be >= 0.*month 1"):
        run_waterfall(bad, cfg, 1.0)
    nan = make_pool(2, balance=[1.0, np.nan])
    with pytest.raises(DataError, match="non-finite value: balance at scenario 0, month 1"):
        run_waterfall(nan, cfg, 1.0)
    with pytest.raises(DataError, match="initial pool balance"):
        run_waterfall(make_pool(1, balance=[1.0]), cfg, 0.0)
    with pytest.raises(ConfigError, match="mode must be one of"):
        run_waterfall(make_pool(1, balance=[1.0]), cfg, 1.0, mode="fuzzy")


@pytest.mark.parametrize("trigger, diverted", [(1.30, 1.0), (1.26, 0.8), (1.20, 0.0)])
def test_interest_diversion_buys_collateral_during_reinvestment(trigger, diverted):
    cfg = deal([
        {"name": "A", "balance": 80.0, "coupon": 0.0},
        {"name": "Equity", "balance": 20.0, "equity": True},
    ], reinvestment_period=12, interest_diversion_trigger=trigger, interest_diversion_share=0.5,
        liquidate_at_horizon=False)
    r = run_waterfall(make_pool(1, interest=[2.0], balance=[100.0]), cfg, initial_balance=100.0)
    # ratio 100 / 80 = 1.25; cure by buying collateral: trigger x 80 - 100, capped at 50 % of 2.0
    assert v(r, "interest_diversion")[0] == pytest.approx(diverted, abs=1e-12)
    assert v(r, "reinvestment")[0] == pytest.approx(diverted, abs=1e-12)
    assert v(r, "bucket_balance")[0] == pytest.approx(diverted, abs=1e-12)
    assert v(r, "equity")[0] == pytest.approx(2.0 - diverted, abs=1e-12)
    assert v(r, "balances")[0, 0] == 80.0


def test_gradient_with_respect_to_collections_flows_to_equity():
    cfg = deal([
        {"name": "A", "balance": 60.0, "coupon": 0.06},
        {"name": "B", "balance": 30.0, "coupon": 0.12},
        {"name": "Equity", "balance": 10.0, "equity": True},
    ])
    pool = torch.tensor(make_pool(3, interest=[1.0, 0.7, 0.3], scheduled_principal=[30, 40, 30],
                                  balance=[70, 30, 0]), requires_grad=True)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    (grad,) = torch.autograd.grad(r["equity"].sum(), pool)
    # with the notes' interest covered, one more unit of interest in any month is one more unit of
    # equity cash
    np.testing.assert_allclose(grad[0, :, COL["interest"]].numpy(), [1.0, 1.0, 1.0])
    # one more unit of principal in month 0 repays A earlier (saves 0.5 % of A interest in month 1),
    # so B is repaid earlier (saves 1 % of B interest in month 2) and equity gets the unit in month 2
    assert grad[0, 0, COL["scheduled_principal"]].item() == pytest.approx(1.0 + 0.005 + 0.01, rel=1e-12)
    assert grad[0, 2, COL["scheduled_principal"]].item() == pytest.approx(1.0)


def test_tranche_balance_override_is_validated():
    cfg = deal([{"name": "A", "balance": 1.0, "coupon": 0.0}, {"name": "E", "balance": 1.0, "equity": True}])
    pool = make_pool(1, balance=[1.0])
    with pytest.raises(ConfigError, match=r"tranche_balances must have shape \(2,\)"):
        run_waterfall(pool, cfg, 1.0, tranche_balances=torch.ones(3))
    with pytest.raises(ConfigError, match="tranche_balances must be finite and > 0"):
        run_waterfall(pool, cfg, 1.0, tranche_balances=torch.tensor([1.0, -1.0]))
