"""Tranche analytics: pool generator, IRR, WAL, PD / EL / LGD, attachment points, break-even CDR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.states import POOL_CF_TYPES
from creditsim.deal.analytics import (
    annual_to_monthly,
    attachment_points,
    breakeven_cdr,
    irr,
    irr_torch,
    level_pay_pool,
    principal_loss,
    PV_LOSS_TOLERANCE,
    pv_loss,
    tranche_outcomes,
    tranche_summary,
    wal,
)
from creditsim.deal.config import WaterfallConfig, load_deal
from creditsim.deal.waterfall import run_waterfall

COL = {name: i for i, name in enumerate(POOL_CF_TYPES)}


def test_level_pay_pool_without_credit_events_is_an_annuity():
    pool = level_pay_pool(1000.0, 0.06, 12)[0]
    r = 0.005
    payment = 1000.0 * r / (1 - (1 + r) ** -12)
    np.testing.assert_allclose(pool[:, COL["interest"]] + pool[:, COL["scheduled_principal"]], payment, rtol=1e-12)
    assert pool[:, COL["scheduled_principal"]].sum() == pytest.approx(1000.0, rel=1e-12)
    assert pool[-1, COL["balance"]] == pytest.approx(0.0, abs=1e-9)
    assert pool[:, [COL["prepayment"], COL["default_par"], COL["recovery"], COL["loss"]]].sum() == 0.0


def test_level_pay_pool_balance_identity_and_recovery_lag():
    pool = level_pay_pool(1e6, 0.08, 36, horizon=40, cdr=[0.05, 0.2], cpr=0.1, severity=0.35, lag=4)
    S, T, _ = pool.shape
    assert (S, T) == (2, 40)
    bal = pool[:, :, COL["balance"]]
    prev = np.concatenate([np.full((S, 1), 1e6), bal[:, :-1]], axis=1)
    out = pool[:, :, COL["scheduled_principal"]] + pool[:, :, COL["prepayment"]] + pool[:, :, COL["default_par"]]
    np.testing.assert_allclose(prev - out, bal, atol=1e-6)
    # month 0: MDR x balance defaults; its 65 % recovery arrives 4 months later
    mdr = 1 - (1 - np.array([0.05, 0.2])) ** (1 / 12)
    np.testing.assert_allclose(pool[:, 0, COL["default_par"]], mdr * 1e6, rtol=1e-12)
    np.testing.assert_allclose(pool[:, 4, COL["recovery"]], 0.65 * pool[:, 0, COL["default_par"]], rtol=1e-12)
    np.testing.assert_allclose(pool[:, :, COL["loss"]], 0.35 * pool[:, :, COL["default_par"]], rtol=1e-12)
    # every defaulted unit is eventually lost or recovered within term + lag
    total_def = pool[:, :, COL["default_par"]].sum(axis=1)
    np.testing.assert_allclose(pool[:, :, COL["loss"]].sum(axis=1) + pool[:, :, COL["recovery"]].sum(axis=1),
                               total_def, rtol=1e-12)


def test_level_pay_pool_validates_inputs():
    with pytest.raises(ConfigError, match="cdr must be decimals in"):
        level_pay_pool(100.0, 0.05, 12, cdr=1.5)
    with pytest.raises(ConfigError, match="lag must be a whole number"):
        level_pay_pool(100.0, 0.05, 12, lag=-1)
    with pytest.raises(ConfigError, match="term_months"):
        level_pay_pool(100.0, 0.05, 0)


def test_annual_to_monthly_hazard():
    assert annual_to_monthly(0.12) == pytest.approx(1 - 0.88 ** (1 / 12))
    assert (1 - annual_to_monthly(0.2)) ** 12 == pytest.approx(0.8)


def test_irr_of_a_par_annuity_is_its_rate_and_matches_brentq():
    r = 0.07 / 12
    payment = 100.0 * r / (1 - (1 + r) ** -24)
    cf = np.full((1, 24), payment)
    assert irr(cf, 100.0)[0] == pytest.approx((1 + r) ** 12 - 1, abs=1e-12)
    rng = np.random.default_rng(3)
    flows = rng.exponential(1.0, size=(20, 30)) * (rng.random((20, 30)) < 0.7)
    prices = rng.uniform(5.0, 40.0, 20)
    got = irr(flows, prices)
    for s in range(20):
        t = np.arange(1, 31)
        m = brentq(lambda m: (flows[s] / (1 + m) ** t).sum() - prices[s], -0.99, 10.0, xtol=1e-15)
        assert got[s] == pytest.approx((1 + m) ** 12 - 1, rel=1e-9, abs=1e-12)


def test_irr_rules_without_sign_change():
    cf = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, -1.0, 1.0]])
    out = irr(cf, np.array([10.0, 0.0, 1.0]))
    assert out[0] == -1.0  # nothing received: -100 %
    assert np.isnan(out[1])  # nothing paid: no root
    assert np.isnan(out[2])  # negative cash received: not a waterfall output


def test_irr_torch_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    cf = torch.tensor(rng.uniform(0.5, 2.0, size=(3, 12)), requires_grad=True)
    price = torch.tensor([12.0, 15.0, 20.0], dtype=torch.float64, requires_grad=True)
    value = irr_torch(cf, price)
    np.testing.assert_allclose(value.detach().numpy(), irr(cf.detach().numpy(), price.detach().numpy()), rtol=1e-12)
    g_cf, g_p = torch.autograd.grad(value.sum(), (cf, price))
    h = 1e-6
    for s, t in [(0, 0), (1, 5), (2, 11)]:
        up, dn = cf.detach().clone(), cf.detach().clone()
        up[s, t] += h
        dn[s, t] -= h
        fd = (irr(up.numpy(), price.detach().numpy())[s] - irr(dn.numpy(), price.detach().numpy())[s]) / (2 * h)
        assert g_cf[s, t].item() == pytest.approx(fd, rel=1e-5)
    fd_p = (irr(cf.detach().numpy(), price.detach().numpy() + h) - irr(cf.detach().numpy(), price.detach().numpy() - h)) / (2 * h)
    np.testing.assert_allclose(g_p.numpy(), fd_p, rtol=1e-5)


def test_wal_in_years():
    p = np.zeros((3, 24))
    p[0, 11] = 100.0  # bullet after 12 months
    p[1, [5, 17]] = 50.0  # half at 6, half at 18 months
    out = wal(p)
    assert out[0] == pytest.approx(1.0)
    assert out[1] == pytest.approx(1.0)
    assert np.isnan(out[2])


def test_attachment_points_of_the_example_deal():
    att, det = attachment_points(load_deal(example_path("example_clo.yaml")))
    np.testing.assert_allclose(att, [0.30, 0.15, 0.05, 0.0])
    np.testing.assert_allclose(det, [1.00, 0.30, 0.15, 0.05])


@pytest.fixture(scope="module")
def stressed_run():
    cfg = load_deal(example_path("example_clo.yaml"))
    cdrs = np.array([0.0, 0.02, 0.1, 0.3, 0.6])
    pool = level_pay_pool(1e8, 0.08, 60, 66, cdr=cdrs, cpr=0.1, severity=0.6, lag=6)
    return cfg, run_waterfall(pool, cfg, 1e8)


def test_tranche_outcomes_and_summary_are_consistent(stressed_run):
    cfg, res = stressed_run
    out = tranche_outcomes(res, cfg)
    summary = tranche_summary(res, cfg)
    losses = principal_loss(res).numpy()
    for k, name in enumerate(cfg.tranche_names):
        loss = out[name]["losses"]
        np.testing.assert_allclose(loss, losses[:, k])
        assert summary.loc[name, "pd"] == pytest.approx(np.mean(loss > 1e-8))
        assert summary.loc[name, "expected_loss"] == pytest.approx(loss.mean())
        if summary.loc[name, "pd"] > 0:
            assert summary.loc[name, "lgd"] == pytest.approx(loss.mean() / np.mean(loss > 1e-8))
    # losses rise with the CDR and hit juniors first
    a, c = out["A"]["losses"], out["C"]["losses"]
    assert np.all(np.diff(a) >= -1e-12) and np.all(np.diff(c) >= -1e-12)
    assert np.all(c >= a - 1e-12)
    # unpaid note balance at the horizon = loss x original balance
    np.testing.assert_allclose(res["balances"][:, -1, 0].numpy(), a * 70e6)
    # a note repaid in full at par has zero PV loss and earns its coupon
    assert out["A"]["pv_losses"][0] == pytest.approx(0.0, abs=1e-12)
    assert out["A"]["irr"][0] == pytest.approx((1 + 0.055 / 12) ** 12 - 1, abs=1e-10)
    # PV loss by hand for class C in the worst scenario: 1 - PV at the coupon of the cash received / par
    t = np.arange(1, 67)
    pv = (res["tranche_cashflows"][-1, :, 2].numpy() / (1 + 0.10 / 12) ** t).sum()
    assert out["C"]["pv_losses"][-1] == pytest.approx(1 - pv / 10e6, rel=1e-12)
    for name in ("A", "B", "C"):
        assert np.all((out[name]["pv_losses"] >= 0.0) & (out[name]["pv_losses"] <= 1.0))
        assert np.all((out[name]["losses"] >= 0.0) & (out[name]["losses"] <= 1.0))
    # class C is wiped out and its capitalised interest is unpaid: the loss is capped at 100 %
    assert out["C"]["losses"][-1] == 1.0
    assert res["balances"][-1, -1, 2].item() > 10e6


def test_pv_loss_rounding_is_clipped_at_zero_but_real_negatives_stay():
    cfg = WaterfallConfig(tranches=[{"name": "A", "balance": 100.0, "coupon": 0.06},
                                    {"name": "C", "balance": 50.0, "coupon": 0.0},
                                    {"name": "Equity", "balance": 10.0, "equity": True}])
    T = 12
    cash = torch.zeros(3, T, 3, dtype=torch.float64)
    # scenario 0: A is paid its coupon monthly and par at month 12 (PV exactly 100 up to rounding)
    cash[0, :, 0] = 0.5
    cash[0, -1, 0] += 100.0
    cash[0, -1, 1] = 50.0
    # scenario 1: C receives 50 x (1 + 1e-15): rounding of a loss that is 0, clipped to 0
    cash[1, -1, 1] = 50.0 * (1 + 1e-15)
    # scenario 2: C receives 1 % more than promised: not rounding, left visible
    cash[2, -1, 1] = 50.5
    res = {"tranche_cashflows": cash, "initial_balances": torch.tensor([100.0, 50.0, 10.0], dtype=torch.float64)}
    pvl = pv_loss(res, cfg)
    raw_1 = 1.0 - 50.0 * (1 + 1e-15) / 50.0
    assert -PV_LOSS_TOLERANCE < raw_1 < 0.0 and pvl[1, 1] == 0.0
    assert 0.0 <= pvl[0, 0] < 1e-13 and pvl[0, 1] == 0.0
    assert pvl[2, 1] == pytest.approx(-0.01, rel=1e-12)


def test_tranche_outcomes_build_tranche_results(stressed_run):
    from creditsim.risk.results import TrancheResult

    cfg, res = stressed_run
    results = [TrancheResult(name=name, **fields) for name, fields in tranche_outcomes(res, cfg).items()]
    assert results[0].attachment == pytest.approx(0.30)
    assert results[-1].equity and results[-1].pv_losses is None


def test_breakeven_cdr_is_the_edge_of_first_dollar_loss():
    cfg = load_deal(example_path("example_clo.yaml"))
    be = breakeven_cdr(cfg, cpr=0.1, severity=0.4, lag=6)
    assert list(be.index) == ["A", "B", "C"]
    assert be["A"] > be["B"] > be["C"] > 0
    delta = 1e-4
    pool = level_pay_pool(1e8, 0.08, 60, None, cdr=np.concatenate([be.values - delta, be.values + delta]),
                          cpr=0.1, severity=0.4, lag=6)
    loss = principal_loss(run_waterfall(pool, cfg, 1e8)).numpy()
    n = len(be)
    for k in range(n):
        assert loss[k, k] <= 1e-8  # just below: no loss
        assert loss[n + k, k] > 1e-8  # just above: first-dollar loss
    # a 1 % loss needs a higher CDR than the first dollar
    be1 = breakeven_cdr(cfg, cpr=0.1, severity=0.4, lag=6, target_loss=0.01)
    assert np.all(be1.values > be.values)


def test_triggers_moved_with_the_structure_keep_each_closing_cushion():
    from creditsim.deal.analytics import closing_oc, oc_cushions, with_cushioned_triggers

    cfg = WaterfallConfig(tranches=[
        {"name": "A", "balance": 70.0, "coupon": 0.05, "oc_trigger": 1.25},
        {"name": "B", "balance": 15.0, "coupon": 0.07, "oc_trigger": 1.10},
        {"name": "C", "balance": 5.0, "coupon": 0.10, "oc_trigger": None},
        {"name": "Equity", "balance": 10.0, "equity": True},
    ], interest_diversion_trigger=1.12, collateral_balance=100.0)
    # closing OC: A 100 / 70, B 100 / 85; cushions OC / trigger - 1
    np.testing.assert_allclose(closing_oc(cfg), [100 / 70, 100 / 85, 100 / 90])
    cushions = oc_cushions(cfg)
    np.testing.assert_allclose(cushions[:2], [100 / 70 / 1.25 - 1, 100 / 85 / 1.10 - 1])
    assert np.isnan(cushions[2])
    # the same sizes give back the deal's triggers
    same = with_cushioned_triggers(cfg, [70.0, 15.0, 5.0, 10.0], cushions)
    assert [t.oc_trigger for t in same.tranches[:2]] == pytest.approx([1.25, 1.10], rel=1e-12)
    # a thinner B (equity thicker): B's trigger rises with its closing ratio, A's stays, C has no test
    moved = with_cushioned_triggers(cfg, [70.0, 10.0, 5.0, 15.0], cushions)
    assert moved.tranches[0].oc_trigger == pytest.approx(1.25, rel=1e-12)
    assert moved.tranches[1].oc_trigger == pytest.approx(100 / 80 / (100 / 85 / 1.10), rel=1e-12)
    assert moved.tranches[2].oc_trigger is None
    assert moved.interest_diversion_trigger == pytest.approx(1.12 * moved.tranches[1].oc_trigger / 1.10, rel=1e-12)
    assert [t.balance for t in moved.tranches] == [70.0, 10.0, 5.0, 15.0]
    # a sliver of a senior class (a sizing trial) keeps its trigger within the deal's range
    sliver = with_cushioned_triggers(cfg, [1.0, 84.0, 5.0, 10.0], cushions)
    assert sliver.tranches[0].oc_trigger == 10.0
