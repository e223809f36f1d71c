"""Features of real CLO indentures, each against a case worked by hand in the test (currency units).

Quarterly payment dates, floating notes accrued ACT/360 on a base-rate path with a floor, pari-passu
classes, admin expenses with a cap, the incentive fee at the hurdle, defaulted interest, events of
default with acceleration; then every feature on at once: soft -> hard, straight-through = hard,
gradients against finite differences. Cash is conserved in every period of every case to 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.deal.analytics import irr, level_pay_pool
from creditsim.deal.config import WaterfallConfig
from creditsim.deal.waterfall import cash_conservation_error, run_waterfall
from creditsim.errors import ConfigError, DataError
from creditsim.states import POOL_CF_TYPES

COL = {name: i for i, name in enumerate(POOL_CF_TYPES)}


def make_pool(T: int, S: int = 1, **flows) -> np.ndarray:
    """(S, T, 7) pool array from per-type lists (one list: every scenario; a list of lists: per scenario)."""
    out = np.zeros((S, T, len(POOL_CF_TYPES)))
    for name, values in flows.items():
        out[:, :, COL[name]] = values
    return out


def deal(tranches, **kw) -> WaterfallConfig:
    base = dict(oc_trigger=None, ic_trigger=None, reinvestment_period=0, senior_fee=0.0, sub_fee=0.0,
                liquidate_at_horizon=False)
    base.update(kw)
    return WaterfallConfig(tranches=tranches, **base)


def v(result, key, s: int = 0):
    return result[key][s].detach().numpy()


def conserved(result) -> None:
    err = float(cash_conservation_error(result).abs().max())
    assert err <= 1e-9 * max(float(result["cash_in"].max()), 1.0), err


def test_quarterly_payment_dates_hold_collections_and_accrue_30_360():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.06}, {"name": "B", "balance": 30.0, "coupon": 0.12},
                {"name": "Equity", "balance": 10.0, "equity": True}], payment_frequency="quarterly")
    pool = make_pool(3, interest=[1.0, 1.0, 1.0], scheduled_principal=[5, 5, 5], balance=[95, 90, 85])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # months 0 and 1 are not payment dates: nothing is paid, the collections wait
    np.testing.assert_allclose(v(r, "cash_in"), [0.0, 0.0, 18.0], atol=1e-12)
    np.testing.assert_allclose(v(r, "collection_account"), [6.0, 12.0, 0.0], atol=1e-12)
    # month 2: three months of 30/360 interest: A 60 x 6 % x 3/12 = 0.9, B 30 x 12 % x 3/12 = 0.9
    np.testing.assert_allclose(v(r, "interest")[2], [0.9, 0.9], rtol=1e-13)
    np.testing.assert_allclose(v(r, "interest")[:2], 0.0, atol=1e-15)
    assert v(r, "equity")[2] == pytest.approx(3.0 - 1.8, rel=1e-13)
    np.testing.assert_allclose(v(r, "principal")[2], [15.0, 0.0], rtol=1e-13)
    np.testing.assert_allclose(v(r, "balances")[2], [45.0, 30.0], rtol=1e-13)
    # principal cash held for the payment date counts in the OC numerator at par
    np.testing.assert_allclose(v(r, "acpa"), [95 + 5, 90 + 10, 85 + 15], rtol=1e-13)
    conserved(r)


def test_the_last_month_is_always_a_payment_date():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.06}, {"name": "Equity", "balance": 40.0, "equity": True}],
               payment_frequency="quarterly")
    pool = make_pool(4, interest=[1.0] * 4, balance=[100.0] * 4)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    np.testing.assert_allclose(v(r, "cash_in"), [0.0, 0.0, 3.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(v(r, "interest")[:, 0], [0.0, 0.0, 0.9, 0.3], rtol=1e-13)
    assert float(r["collection_account"][0, -1]) == 0.0
    conserved(r)


def test_floating_class_accrues_act_360_on_the_base_path_with_a_floor():
    cfg = deal([{"name": "A", "balance": 100.0, "margin": 0.01, "floor": 0.015},
                {"name": "B", "balance": 20.0, "coupon": 0.06},
                {"name": "Equity", "balance": 10.0, "equity": True}], base_rate=0.04)
    pool = make_pool(3, interest=[2.0] * 3, balance=[130.0] * 3)
    r = run_waterfall(pool, cfg, initial_balance=130.0, base_rate=[0.02, 0.01, 0.03], start_month="2025-01")
    # January 31 days at 2 % + 1 %, February 28 days at the 1.5 % floor + 1 %, March 31 days at 3 % + 1 %
    expected = [100 * 0.03 * 31 / 360, 100 * 0.025 * 28 / 360, 100 * 0.04 * 31 / 360]
    np.testing.assert_allclose(v(r, "interest")[:, 0], expected, rtol=1e-13)
    np.testing.assert_allclose(v(r, "interest")[:, 1], [20 * 0.06 / 12] * 3, rtol=1e-13)  # fixed: 30/360
    conserved(r)
    # without a path: the deal's flat base rate and 365/12-day months
    flat = run_waterfall(pool, cfg, initial_balance=130.0)
    np.testing.assert_allclose(v(flat, "interest")[:, 0], 100 * 0.05 * (365 / 12) / 360, rtol=1e-13)
    # per-scenario paths: each scenario reads its own row
    two = run_waterfall(np.concatenate([pool, pool]), cfg, initial_balance=130.0,
                        base_rate=np.array([[0.02] * 3, [0.05] * 3]))
    np.testing.assert_allclose(two["interest"][:, 0, 0].numpy(), [100 * 0.03 * (365 / 12) / 360,
                                                                   100 * 0.06 * (365 / 12) / 360], rtol=1e-13)


def test_floating_class_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"tranches\[0\] \(A\) floats .* needs base_rate"):
        deal([{"name": "A", "balance": 100.0, "margin": 0.01}, {"name": "Equity", "balance": 10.0, "equity": True}])
    with pytest.raises(ConfigError, match="give coupon .* or margin"):
        deal([{"name": "A", "balance": 100.0, "margin": 0.01, "coupon": 0.05},
              {"name": "Equity", "balance": 10.0, "equity": True}], base_rate=0.04)
    with pytest.raises(ConfigError, match=r"tranches\[0\] \(A\)\.floor: only a floating class"):
        deal([{"name": "A", "balance": 100.0, "coupon": 0.05, "floor": 0.0},
              {"name": "Equity", "balance": 10.0, "equity": True}])
    cfg = deal([{"name": "A", "balance": 100.0, "margin": 0.01}, {"name": "Equity", "balance": 10.0, "equity": True}],
               base_rate=0.04)
    pool = make_pool(3, interest=[1.0] * 3, balance=[110.0] * 3)
    with pytest.raises(DataError, match=r"base_rate must be a scalar, \(3,\) or \(1, 3\)"):
        run_waterfall(pool, cfg, initial_balance=110.0, base_rate=[0.01, 0.02])
    with pytest.raises(DataError, match="within \\+-0.5 .* at scenario 0, month 1"):
        run_waterfall(pool, cfg, initial_balance=110.0, base_rate=[0.01, 4.5, 0.02])  # percent, not decimal
    with pytest.raises(ConfigError, match="start_month must be a month"):
        run_waterfall(pool, cfg, initial_balance=110.0, start_month="someday")


def test_pari_passu_classes_share_interest_and_principal_pro_rata():
    cfg = deal([{"name": "A-1", "balance": 40.0, "coupon": 0.06},
                {"name": "A-2", "balance": 20.0, "coupon": 0.12, "pari_passu": True},
                {"name": "B", "balance": 30.0, "coupon": 0.06},
                {"name": "Equity", "balance": 10.0, "equity": True}])
    pool = make_pool(1, interest=[0.3], scheduled_principal=[10.0], balance=[90.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # interest: are each owed 0.2; 0.3 is shared pro rata (0.15 each); principal then pays the
    # carried 0.05 + 0.05 and B's 0.15 (non-deferrable), and the 9.75 left goes to by 40 : 20
    np.testing.assert_allclose(v(r, "interest")[0], [0.2, 0.2, 0.15], rtol=1e-13)
    np.testing.assert_allclose(v(r, "principal")[0], [6.5, 3.25, 0.0], rtol=1e-13)
    np.testing.assert_allclose(v(r, "balances")[0], [33.5, 16.75, 30.0], rtol=1e-13)
    conserved(r)


def test_pari_passu_group_is_tested_and_cured_as_one():
    cfg = deal([{"name": "A-1", "balance": 40.0, "coupon": 0.06, "oc_trigger": 1.25},
                {"name": "A-2", "balance": 20.0, "coupon": 0.12, "oc_trigger": 1.25, "pari_passu": True},
                {"name": "B", "balance": 30.0, "coupon": 0.06},
                {"name": "Equity", "balance": 10.0, "equity": True}])
    pool = make_pool(1, interest=[10.0], default_par=[30.0], loss=[30.0], balance=[70.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # both members report the group's ratio 70 / 60; the cure 60 - 70 / 1.25 = 4 is split 40 : 20
    np.testing.assert_allclose(v(r, "oc_ratio")[0, :2], [70 / 60, 70 / 60], rtol=1e-14)
    np.testing.assert_allclose(v(r, "principal")[0], [8 / 3, 4 / 3, 0.0], rtol=1e-13)
    assert v(r, "interest_cure")[0] == pytest.approx(4.0, rel=1e-13)
    assert v(r, "equity")[0] == pytest.approx(10.0 - 0.2 - 0.2 - 4.0 - 0.15, rel=1e-13)
    conserved(r)
    with pytest.raises(ConfigError, match=r"tranches\[1\] \(A-2\) is pari passu with A-1 but its oc_trigger"):
        deal([{"name": "A-1", "balance": 40.0, "coupon": 0.06, "oc_trigger": 1.25},
              {"name": "A-2", "balance": 20.0, "coupon": 0.12, "oc_trigger": 1.2, "pari_passu": True},
              {"name": "Equity", "balance": 10.0, "equity": True}])
    with pytest.raises(ConfigError, match=r"tranches\[0\] \(A-1\)\.pari_passu: the first class"):
        deal([{"name": "A-1", "balance": 40.0, "coupon": 0.06, "pari_passu": True},
              {"name": "Equity", "balance": 10.0, "equity": True}])


def test_admin_expenses_above_the_cap_rank_after_the_subordinated_fee():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.06, "ic_trigger": 1.0},
                {"name": "Equity", "balance": 40.0, "equity": True}],
               admin_expenses=12.0, admin_fee=0.012, admin_cap=6.0, sub_fee=0.012)
    pool = make_pool(1, interest=[3.0], balance=[100.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # accrual 12 / 12 + 1.2 % x 100 / 12 = 1.1 a month: 0.5 (the cap, 6 / 12) senior, 0.6 after the
    # subordinated fee (0.1); the IC numerator is net of the senior part: (3 - 0.5) / 0.3
    assert v(r, "admin_expenses")[0] == pytest.approx(1.1, rel=1e-13)
    assert v(r, "ic_ratio")[0, 0] == pytest.approx(2.5 / 0.3, rel=1e-13)
    assert v(r, "sub_fee")[0] == pytest.approx(0.1, rel=1e-13)
    assert v(r, "equity")[0] == pytest.approx(3.0 - 0.5 - 0.3 - 0.1 - 0.6, rel=1e-13)
    conserved(r)
    # too little interest: the senior part is paid before the notes, the excess waits behind them
    short = run_waterfall(make_pool(1, interest=[0.7], balance=[100.0]), cfg, initial_balance=100.0)
    assert v(short, "admin_expenses")[0] == pytest.approx(0.5, rel=1e-13)
    assert v(short, "interest")[0, 0] == pytest.approx(0.2, rel=1e-13)
    conserved(short)


def test_incentive_fee_starts_exactly_at_the_hurdle():
    cfg = deal([{"name": "A", "balance": 50.0, "coupon": 0.0}, {"name": "Equity", "balance": 50.0, "equity": True}],
               incentive_fee=0.2, incentive_hurdle=0.12)
    g = 1.12 ** (1 / 12)
    d0 = 10.0
    h1 = (50.0 * g - d0) * g  # hurdle account before the month-1 distribution
    d1 = np.array([h1 - 5.0, h1, h1 + 10.0])  # below, at and above the hurdle
    pool = np.zeros((3, 2, len(POOL_CF_TYPES)))
    pool[:, 0, COL["interest"]] = d0
    pool[:, 1, COL["interest"]] = d1
    pool[:, :, COL["balance"]] = 100.0
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    np.testing.assert_allclose(r["incentive_fee"][:, 0].numpy(), 0.0, atol=1e-15)
    np.testing.assert_allclose(r["incentive_fee"][:, 1].numpy(), [0.0, 0.0, 2.0], atol=1e-12)
    # at the hurdle the equity earns exactly 12 % a year; above it, more, but only 80 % of the excess
    at = irr(np.array([[d0, h1]]), 50.0)
    assert float(at[0]) == pytest.approx(0.12, abs=1e-9)
    np.testing.assert_allclose(r["equity"][2].numpy(), [d0, h1 + 8.0], rtol=1e-13)
    conserved(r)


def test_defaulted_interest_earns_interest_at_the_coupon():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.12}, {"name": "Equity", "balance": 40.0, "equity": True}],
               defaulted_interest_accrues=True)
    pool = make_pool(2, interest=[0.2, 2.0], balance=[100.0, 100.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # month 0: 0.6 due, 0.2 paid, 0.4 carried; month 1: 0.6 + 0.4 + 0.4 x 1 % = 1.004
    np.testing.assert_allclose(v(r, "interest")[:, 0], [0.2, 1.004], rtol=1e-13)
    plain = run_waterfall(pool, deal(cfg.tranches), initial_balance=100.0)
    assert v(plain, "interest")[1, 0] == pytest.approx(1.0, rel=1e-13)
    conserved(r)


def _eod_deal(**kw) -> WaterfallConfig:
    return deal([{"name": "A", "balance": 70.0, "coupon": 0.06},
                 {"name": "B", "balance": 20.0, "coupon": 0.12, "deferrable": True},
                 {"name": "Equity", "balance": 10.0, "equity": True}], eod_oc_trigger=1.10, **kw)


def test_event_of_default_switches_to_the_accelerated_sequential_priority():
    # scenario 0: 30 of par defaults in month 0 (OC of A 70 / 70 = 1.0 < 1.10); scenario 1 stays healthy
    pool = np.zeros((2, 2, len(POOL_CF_TYPES)))
    pool[:, 0, COL["interest"]] = 2.0
    pool[:, 1, COL["interest"]] = 1.0
    pool[:, 1, COL["scheduled_principal"]] = 10.0
    pool[0, 0, COL["default_par"]] = pool[0, 0, COL["loss"]] = 30.0
    pool[0, :, COL["balance"]] = [70.0, 60.0]
    pool[1, :, COL["balance"]] = [100.0, 90.0]
    r = run_waterfall(pool, _eod_deal(acceleration=True), initial_balance=100.0)
    np.testing.assert_allclose(r["eod"].numpy(), [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(r["accelerated"].numpy(), [[0.0, 1.0], [0.0, 0.0]])
    # month 0 is still paid normally: A 0.35, B 0.2, equity 1.45
    np.testing.assert_allclose(v(r, "interest")[0], [0.35, 0.2], rtol=1e-13)
    # month 1, accelerated: one pot of 11 pays A's interest 0.35 then A's principal 10.65; B's 0.2 is
    # capitalised and the equity gets nothing (the normal priority would have paid B and the equity 0.45)
    np.testing.assert_allclose(v(r, "interest")[1], [0.35, 0.0], atol=1e-13)
    np.testing.assert_allclose(v(r, "principal")[1], [10.65, 0.0], rtol=1e-13)
    np.testing.assert_allclose(v(r, "balances")[1], [59.35, 20.2], rtol=1e-13)
    assert v(r, "equity")[1] == 0.0
    # the healthy scenario is the deal without acceleration, bit for bit
    plain = run_waterfall(pool, _eod_deal(), initial_balance=100.0)
    for key in ("tranche_cashflows", "balances"):
        assert torch.equal(r[key][1], plain[key][1]), key
    # without acceleration the event is recorded and nothing else changes
    np.testing.assert_allclose(plain["eod"][0].numpy(), [1.0, 1.0])
    np.testing.assert_allclose(v(plain, "principal")[1], [10.0, 0.0], rtol=1e-13)
    conserved(r)


def test_unpaid_senior_interest_is_an_event_of_default():
    cfg = deal([{"name": "A", "balance": 70.0, "coupon": 0.06},
                {"name": "Equity", "balance": 30.0, "equity": True}], acceleration=True)
    pool = make_pool(3, interest=[0.1, 1.0, 1.0], scheduled_principal=[0.0, 5.0, 5.0], balance=[100, 95, 90])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # month 0: 0.35 due, 0.1 paid, no principal to catch up -> EoD, accelerated from month 1
    np.testing.assert_allclose(v(r, "eod"), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(v(r, "accelerated"), [0.0, 1.0, 1.0])
    # month 1: pot 6 pays interest 0.35 + carried 0.25 and principal 5.4; nothing to the equity
    assert v(r, "interest")[1, 0] == pytest.approx(0.6, rel=1e-13)
    assert v(r, "principal")[1, 0] == pytest.approx(5.4, rel=1e-13)
    assert v(r, "equity")[1] == 0.0
    conserved(r)


def everything_deal(**kw) -> WaterfallConfig:
    """A deal with every feature on: quarterly dates, floating classes, a pari-passu pair, admin cap,
    incentive fee, interest diversion, deferrable mezzanine, events of default with acceleration."""
    return WaterfallConfig(
        name="all features", payment_frequency="quarterly", reinvestment_period=12, base_rate=0.04,
        senior_fee=0.0015, sub_fee=0.0035, admin_fee=0.0002, admin_expenses=200_000.0, admin_cap=250_000.0,
        incentive_fee=0.2, incentive_hurdle=0.12, interest_diversion_trigger=1.04, eod_oc_trigger=1.025,
        acceleration=True, defaulted_interest_accrues=True, liquidate_at_horizon=True, non_call_period=24,
        call_nav_threshold=1.6, clean_up_call=0.2, spread_duration=3.0, ccc_limit=0.075, refinancing_saving=0.1,
        tranches=[
            {"name": "A-1", "balance": 52e6, "margin": 0.0135, "floor": 0.0, "oc_trigger": 1.22, "ic_trigger": 1.2},
            {"name": "A-2", "balance": 10e6, "coupon": 0.055, "oc_trigger": 1.22, "ic_trigger": 1.2,
             "pari_passu": True},
            {"name": "B", "balance": 11e6, "margin": 0.019, "oc_trigger": 1.15, "ic_trigger": 1.15},
            {"name": "C", "balance": 13e6, "margin": 0.035, "oc_trigger": 1.07, "deferrable": True},
            {"name": "D", "balance": 5e6, "margin": 0.065, "oc_trigger": 1.03, "deferrable": True},
            {"name": "Equity", "balance": 9e6, "equity": True},
        ],
        **kw,
    )


@pytest.fixture(scope="module")
def stressed_pool() -> np.ndarray:
    rng = np.random.default_rng(3)
    return level_pay_pool(1e8, 0.08, 48, 54, cdr=rng.uniform(0.0, 0.35, 24), cpr=0.15, severity=0.6, lag=3)


def market_paths(pool: np.ndarray) -> dict:
    """Spread and CCC paths for the every-feature runs: HY spreads that widen with the scenario's
    defaults, and a CCC bucket of 10 % of the performing par."""
    S, T = pool.shape[:2]
    stress = pool[:, :, COL["default_par"]].sum(axis=1, keepdims=True) / 1e8
    hy = 0.035 + 0.05 * stress * np.linspace(0.0, 1.0, T)[None, :]
    return {"hy_spread": hy, "ccc_par": 0.10 * pool[:, :, COL["balance"]]}


def test_every_feature_on_conserves_cash_and_triggers_acceleration(stressed_pool):
    base = np.linspace(0.01, 0.06, stressed_pool.shape[1])
    r = run_waterfall(stressed_pool, everything_deal(), 1e8, base_rate=base, start_month="2026-01",
                      **market_paths(stressed_pool))
    conserved(r)
    accelerated = r["accelerated"].amax(dim=1).numpy()
    assert 0 < accelerated.sum() < len(accelerated)  # some scenarios accelerate, not all
    called = r["called"].sum(dim=1).numpy()
    assert 0 < called.sum() < len(called) and called.max() == 1.0  # the benign ones are called, once
    assert float(r["incentive_fee"].sum()) > 0.0  # the benign scenarios pay the manager
    assert float(r["admin_expenses"].min()) >= 0.0


def test_soft_within_1e6_of_hard_with_every_feature_on(stressed_pool):
    cfg = everything_deal()
    paths = market_paths(stressed_pool)
    hard = run_waterfall(stressed_pool, cfg, 1e8, **paths)["tranche_cashflows"]
    soft = run_waterfall(stressed_pool, cfg, 1e8, mode="soft", temperature=1e-6, **paths)["tranche_cashflows"]
    err = float((soft - hard).abs().sum(dim=1).max()) / 1e8
    assert err < 1e-6, err
    loose = run_waterfall(stressed_pool, cfg, 1e8, mode="soft", temperature=1e-2, **paths)["tranche_cashflows"]
    assert float((loose - hard).abs().sum(dim=1).max()) / 1e8 > err  # the gates matter at 1e-2


def test_straight_through_forward_equals_hard_with_every_feature_on(stressed_pool):
    cfg = everything_deal()
    paths = market_paths(stressed_pool)
    hard = run_waterfall(stressed_pool, cfg, 1e8, mode="hard", **paths)
    st_ = run_waterfall(stressed_pool, cfg, 1e8, mode="straight_through", **paths)
    for key in ("tranche_cashflows", "balances", "accelerated", "incentive_fee", "admin_expenses", "called"):
        assert torch.equal(hard[key], st_[key]), key


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_gradients_with_every_feature_on_match_finite_differences(stressed_pool, mode, check_gradient):
    cfg = everything_deal()
    pool = torch.as_tensor(stressed_pool[:8])
    paths = market_paths(stressed_pool[:8])
    sizes = torch.tensor([t.balance for t in cfg.tranches], dtype=torch.float64)

    def equity_value(x: torch.Tensor) -> torch.Tensor:
        r = run_waterfall(pool, cfg, 1e8, mode=mode, tranche_balances=x, temperature=0.05, **paths)
        months = torch.arange(pool.shape[1], dtype=torch.float64)
        disc = 1.0 / (1.0 + 0.01) ** months  # 1 % a month
        return (r["tranche_cashflows"][:, :, -1] * disc).sum() / 1e6

    fd = check_gradient(equity_value, sizes, rel=2e-3)
    assert np.abs(fd).max() > 0


def test_optional_call_at_the_first_date_the_equity_nav_reaches_the_threshold():
    tranches = [{"name": "A", "balance": 60.0, "coupon": 0.06}, {"name": "Equity", "balance": 40.0, "equity": True}]
    pool = make_pool(6, interest=[1.0] * 6, balance=[100.0] * 6)
    r = run_waterfall(pool, deal(tranches, non_call_period=2), initial_balance=100.0)
    # NAV = (100 par + 1 interest - 60 notes - 0.3 interest due) / 40 = 1.0175 >= 1: called on the
    # payment date closing month 2 (t = 1), the first after the 2-month non-call period; A gets 0.3 + 60,
    # the equity the rest of 101; later flows are the buyer's
    np.testing.assert_allclose(v(r, "called"), [0, 1, 0, 0, 0, 0])
    assert v(r, "liquidation")[1] == pytest.approx(100.0, rel=1e-13)
    np.testing.assert_allclose(v(r, "tranche_cashflows")[1], [60.3, 40.7], rtol=1e-13)
    np.testing.assert_allclose(v(r, "cash_in")[2:], 0.0, atol=1e-15)
    np.testing.assert_allclose(v(r, "tranche_cashflows")[2:], 0.0, atol=1e-15)
    conserved(r)
    never = run_waterfall(pool, deal(tranches, non_call_period=2, call_nav_threshold=1.05), initial_balance=100.0)
    np.testing.assert_allclose(v(never, "called"), 0.0)
    np.testing.assert_allclose(v(never, "equity")[2:], 0.7, rtol=1e-13)


def test_clean_up_call_when_the_pool_has_run_down():
    tranches = [{"name": "A", "balance": 20.0, "coupon": 0.06}, {"name": "Equity", "balance": 80.0, "equity": True}]
    pool = make_pool(10, interest=[0.5] * 10, scheduled_principal=[10.0] * 10,
                     balance=[90.0 - 10 * t for t in range(10)])
    r = run_waterfall(pool, deal(tranches, clean_up_call=0.25), initial_balance=100.0)
    # month 7 ends with 20 of par, below 25 % of the 100 at the cut-off: sold at par with its month's cash
    np.testing.assert_allclose(v(r, "called"), [0] * 7 + [1, 0, 0])
    assert v(r, "equity")[7] == pytest.approx(0.5 + 10.0 + 20.0, rel=1e-13)
    np.testing.assert_allclose(v(r, "equity")[8:], 0.0, atol=1e-15)
    conserved(r)


def test_liquidation_price_moves_with_the_spread_path():
    cfg = deal([{"name": "A", "balance": 50.0, "coupon": 0.0}, {"name": "Equity", "balance": 50.0, "equity": True}],
               liquidate_at_horizon=True, spread_duration=4.0, liquidation_price=0.98)
    pool = make_pool(2, balance=[100.0, 100.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=[0.03, 0.05])
    # 0.98 x (1 - 4 x (5 % - 3 %)) = 0.9016 of par
    assert v(r, "liquidation")[1] == pytest.approx(0.98 * 0.92 * 100.0, rel=1e-13)
    flat = run_waterfall(pool, cfg, initial_balance=100.0)
    assert v(flat, "liquidation")[1] == pytest.approx(98.0, rel=1e-13)
    with pytest.raises(DataError, match="hy_spread must be annual decimals .* got 350 at scenario 0, month 0"):
        run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=[350.0, 400.0])  # basis points, not decimals


def test_ccc_excess_counts_at_market_value_in_the_oc_numerator():
    cfg = deal([{"name": "A", "balance": 80.0, "coupon": 0.06, "oc_trigger": 1.0},
                {"name": "Equity", "balance": 20.0, "equity": True}], ccc_limit=0.075)
    pool = make_pool(1, interest=[1.0], balance=[100.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0, ccc_par=[12.5])
    # CCC 12.5 against a 7.5 % limit: 5 of excess at 70 -> ACPA 100 - 1.5
    assert v(r, "acpa")[0] == pytest.approx(98.5, rel=1e-13)
    assert v(r, "oc_ratio")[0, 0] == pytest.approx(98.5 / 80.0, rel=1e-13)
    within = run_waterfall(pool, cfg, initial_balance=100.0, ccc_par=[7.0])
    assert v(within, "acpa")[0] == pytest.approx(100.0, rel=1e-13)


def test_a_floating_class_is_refinanced_when_its_market_margin_falls_enough():
    cfg = deal([{"name": "A", "balance": 60.0, "margin": 0.02}, {"name": "B", "balance": 20.0, "coupon": 0.08},
                {"name": "Equity", "balance": 20.0, "equity": True}],
               base_rate=0.03, non_call_period=1, call_nav_threshold=None, refinancing_saving=0.10)
    pool = make_pool(5, interest=[2.0] * 5, balance=[100.0] * 5)
    hy = [0.04, 0.038, 0.03, 0.03, 0.05]
    r = run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=hy)
    # month 1: market 2 % x 0.038 / 0.04 = 1.9 %, not 10 % below 2 %; month 2: 1.5 % < 1.8 %: reset to
    # 1.5 % from month 3 on; month 4's wider spreads do not raise it back
    np.testing.assert_allclose(v(r, "note_margin")[:, 0], [0.02, 0.02, 0.015, 0.015, 0.015], rtol=1e-13)
    np.testing.assert_allclose(v(r, "note_margin")[:, 1], 0.0)  # a fixed class has no margin
    days = 365.0 / 12.0
    np.testing.assert_allclose(v(r, "interest")[:, 0], 60 * np.array([0.05, 0.05, 0.05, 0.045, 0.045]) * days / 360,
                               rtol=1e-13)
    conserved(r)
    with pytest.raises(ConfigError, match="refinancing_saving needs non_call_period"):
        deal(cfg.tranches, base_rate=0.03, refinancing_saving=0.10)


@pytest.mark.parametrize("margin", [0.0135, 0.02, 0.035])
def test_refinancing_on_the_threshold_is_the_same_with_and_without_autograd(margin):
    # a spread move exactly at 1 - saving: (margin x 0.9) / margin can round below 0.9 and refinance; the
    # hard run without autograd (which skips dates no move can trigger) must agree with the tracked one
    cfg = deal([{"name": "A", "balance": 60.0, "margin": margin}, {"name": "B", "balance": 20.0, "coupon": 0.08},
                {"name": "Equity", "balance": 20.0, "equity": True}],
               base_rate=0.03, non_call_period=1, call_nav_threshold=None, refinancing_saving=0.1)
    pool = make_pool(4, interest=[2.0] * 4, balance=[100.0] * 4)
    hy = [0.05, 0.05 * (1 - 0.1), 0.05 * (1 - 0.1), 0.05]
    fast = run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=hy)
    sizes = torch.tensor([t.balance for t in cfg.tranches], dtype=torch.float64, requires_grad=True)
    tracked = run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=hy, tranche_balances=sizes)
    for key in ("note_margin", "interest", "tranche_cashflows"):
        torch.testing.assert_close(fast[key], tracked[key].detach(), rtol=0, atol=0, msg=key)


def test_reinvestment_buys_at_the_spread_path_price_and_the_oc_test_carries_it_at_cost():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.06}, {"name": "Equity", "balance": 40.0, "equity": True}],
               reinvestment_period=2, reinvestment_price=0.97, spread_duration=2.0)
    pool = make_pool(2, interest=[1.0, 1.0], scheduled_principal=[10.0, 0.0], balance=[90.0, 90.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0, hy_spread=[0.03, 0.05])
    # month 0 buys 10 of collateral at 0.97 (no spread move yet): 10.309 of par, carried at the 10 paid
    price0 = 0.97
    assert v(r, "bucket_balance")[0] == pytest.approx(10.0 / price0, rel=1e-13)
    # month 1: the bucket mirrors the pool (no defaults, no principal): the OC numerator counts it at cost
    assert v(r, "acpa")[1] == pytest.approx(90.0 + 10.0, rel=1e-13)
    flat = run_waterfall(pool, cfg, initial_balance=100.0)  # no path: the same here (bought below par)
    assert v(flat, "acpa")[1] == pytest.approx(90.0 + 0.97 * 10.0 / 0.97, rel=1e-13)
    conserved(r)
    # a purchase in a month whose spreads widened: price 0.97 x (1 - 2 x 2 %) = 0.9312
    pool2 = make_pool(2, interest=[1.0, 1.0], scheduled_principal=[0.0, 10.0], balance=[100.0, 90.0])
    r2 = run_waterfall(pool2, cfg, initial_balance=100.0, hy_spread=[0.03, 0.05])
    assert v(r2, "bucket_balance")[1] == pytest.approx(10.0 / (0.97 * 0.96), rel=1e-13)


def test_a_floating_quarterly_note_repaid_in_full_has_no_pv_loss_and_groups_share_attachment():
    from creditsim.deal.analytics import attachment_points, pv_loss

    cfg = everything_deal()
    pool = level_pay_pool(1e8, 0.08, 48, 54, cdr=0.0, cpr=0.1, severity=0.5, lag=3)
    r = run_waterfall(pool, cfg, 1e8)
    assert float(r["balances"][:, -1].abs().max()) < 1e-6  # everything repaid
    # discounting at the flat-base coupon once a quarter makes the promised cash worth par exactly
    np.testing.assert_allclose(pv_loss(r, cfg), 0.0, atol=1e-12)
    att, det = attachment_points(cfg)
    assert att[0] == att[1] and det[0] == det[1] == 1.0  # attach together


# ---- found by the fresh-clone review: each a case that failed before its fix --------------------------


def test_ic_test_and_cure_use_the_periods_interest_on_a_quarterly_deal():
    tranches = [{"name": "A", "balance": 80.0, "coupon": 0.06, "ic_trigger": 1.2},
                {"name": "Equity", "balance": 20.0, "equity": True}]
    pool = make_pool(3, interest=[0.45] * 3, balance=[100.0] * 3)
    monthly = run_waterfall(pool, deal(tranches, ic_first_period=0), initial_balance=100.0)
    quarterly = run_waterfall(pool, deal(tranches, ic_first_period=0, payment_frequency="quarterly"),
                              initial_balance=100.0)
    # monthly: IC 0.45 / 0.4 = 1.125 < 1.2; paying x cuts due by 0.5 % x: x = (0.4 - 0.375) / 0.005 = 5,
    # limited to the 0.05 left (later months: the same on the smaller balance)
    assert v(monthly, "interest_cure")[0] == pytest.approx(0.05, rel=1e-12)
    # quarterly: the same ratio every month (a running check on the period so far), and on the date the
    # whole period: due 1.2, interest 1.35, x = (1.2 - 1.125) / 0.015 = 5, limited to the 0.15 left
    np.testing.assert_allclose(v(quarterly, "ic_ratio")[:, 0], [1.125] * 3, rtol=1e-12)
    np.testing.assert_allclose(v(quarterly, "interest_cure"), [0.0, 0.0, 0.15], rtol=1e-12, atol=1e-15)
    assert v(quarterly, "equity")[2] == pytest.approx(0.0, abs=1e-12)
    conserved(quarterly)


def test_ic_first_period_counts_payment_dates():
    tranches = [{"name": "A", "balance": 80.0, "coupon": 0.06, "ic_trigger": 1.2},
                {"name": "Equity", "balance": 20.0, "equity": True}]
    pool = make_pool(6, interest=[0.45] * 6, balance=[100.0] * 6)
    r = run_waterfall(pool, deal(tranches, payment_frequency="quarterly", ic_first_period=1), initial_balance=100.0)
    # the first payment date (month index 2) is the IC test's grace date; the second (index 5) tests
    np.testing.assert_allclose(v(r, "interest_cure")[[2, 5]], [0.0, 0.15], rtol=1e-12, atol=1e-15)


def test_floating_coupon_is_fixed_at_the_start_of_each_quarter():
    cfg = deal([{"name": "A", "balance": 100.0, "margin": 0.01}, {"name": "Equity", "balance": 10.0, "equity": True}],
               base_rate=0.04, payment_frequency="quarterly")
    pool = make_pool(6, interest=[2.0] * 6, balance=[110.0] * 6)
    base = [0.02, 0.05, 0.05, 0.03, 0.0, 0.0]
    r = run_waterfall(pool, cfg, initial_balance=110.0, base_rate=base, start_month="2025-01")
    # Q1 accrues at 2 % + 1 % over 31 + 28 + 31 days, Q2 at 3 % + 1 % over 30 + 31 + 30 days
    np.testing.assert_allclose(v(r, "interest")[[2, 5], 0], [100 * 0.03 * 90 / 360, 100 * 0.04 * 91 / 360], rtol=1e-13)
    # a note repaid in full on its own coupon path has no PV loss, whatever the path
    from creditsim.deal.analytics import pv_loss

    paid = run_waterfall(make_pool(6, interest=[2.0] * 6, scheduled_principal=[0, 0, 50, 0, 0, 60],
                                   balance=[110, 110, 60, 60, 60, 0]), cfg, initial_balance=110.0, base_rate=base,
                         start_month="2025-01")
    assert float(paid["balances"][0, -1, 0]) == 0.0
    assert abs(pv_loss(paid, cfg)[0, 0]) < 1e-12


def test_defaulted_interest_over_a_short_last_period_earns_only_its_months():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.12}, {"name": "Equity", "balance": 40.0, "equity": True}],
               defaulted_interest_accrues=True, payment_frequency="quarterly")
    pool = make_pool(4, interest=[0.0, 0.0, 0.8, 3.0], balance=[100.0] * 4)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # date 1 (month 2): 1.8 due, 0.8 paid, 1.0 carried; date 2 closes one month: 0.6 + 1.0 + 1.0 x 1 %
    np.testing.assert_allclose(v(r, "interest")[[2, 3], 0], [0.8, 1.61], rtol=1e-13)


def test_the_admin_cap_limits_each_payment_date():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.0}, {"name": "Equity", "balance": 40.0, "equity": True}],
               admin_expenses=12.0, admin_cap=6.0, payment_frequency="quarterly")
    pool = make_pool(6, interest=[0.0, 0.0, 0.0, 5.0, 5.0, 5.0], balance=[100.0] * 6)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # 1 a month accrues; the cap is 0.5 a month, 1.5 a quarter. Date 1 has no cash; date 2 pays 1.5
    # senior and the other 4.5 owed only after the subordinated fee -- here from the 15 - 1.5 left
    np.testing.assert_allclose(v(r, "admin_expenses")[[2, 5]], [0.0, 6.0], rtol=1e-13, atol=1e-15)
    short = run_waterfall(make_pool(6, interest=[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], balance=[100.0] * 6),
                          deal([{"name": "A", "balance": 60.0, "coupon": 0.02},
                                {"name": "Equity", "balance": 40.0, "equity": True}],
                               admin_expenses=12.0, admin_cap=6.0, payment_frequency="quarterly"),
                          initial_balance=100.0)
    # 3 of cash: 1.5 of admin senior, then A's 0.3 of interest and the 0.3 left unpaid on date 1, then
    # 0.9 of the admin owed above the cap
    np.testing.assert_allclose(v(short, "admin_expenses")[5], 1.5 + 0.9, rtol=1e-13)
    np.testing.assert_allclose(v(short, "interest")[5, 0], 0.6, rtol=1e-13)
    conserved(short)


def test_reinvested_par_bought_above_the_discount_obligation_price_counts_at_par():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.06}, {"name": "Equity", "balance": 40.0, "equity": True}],
               reinvestment_period=2, reinvestment_price=0.97, discount_obligation_price=0.80)
    pool = make_pool(2, interest=[1.0, 1.0], scheduled_principal=[10.0, 0.0], balance=[90.0, 90.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    assert v(r, "acpa")[1] == pytest.approx(90.0 + 10.0 / 0.97, rel=1e-13)  # par built
    cheap = run_waterfall(pool, deal(cfg.tranches, reinvestment_period=2, reinvestment_price=0.75,
                                     discount_obligation_price=0.80), initial_balance=100.0)
    assert v(cheap, "acpa")[1] == pytest.approx(90.0 + 10.0, rel=1e-13)  # a discount obligation: at cost


def test_one_way_switches_do_not_leak_weight_in_soft_mode():
    cfg = everything_deal()
    healthy = level_pay_pool(1e8, 0.08, 48, 54, cdr=np.array([0.01, 0.02]), cpr=0.15, severity=0.4, lag=3)
    r = run_waterfall(healthy, cfg, 1e8, mode="soft", temperature=0.1)
    # the senior OC (about 1.6) never comes near the 1.025 event-of-default level
    assert float(r["eod"].max()) == 0.0 and float(r["accelerated"].max()) == 0.0


def test_gradients_through_the_spread_and_ccc_paths():
    cfg = everything_deal()
    pool = torch.as_tensor(level_pay_pool(1e8, 0.08, 48, 54, cdr=np.array([0.2, 0.35]), cpr=0.15, severity=0.5,
                                          lag=3))
    paths = market_paths(pool.numpy())
    hy = torch.as_tensor(paths["hy_spread"]).requires_grad_(True)
    ccc = torch.as_tensor(paths["ccc_par"]).requires_grad_(True)
    r = run_waterfall(pool, cfg, 1e8, mode="soft", temperature=0.05, hy_spread=hy, ccc_par=ccc)
    g_hy, g_ccc = torch.autograd.grad(r["tranche_cashflows"][:, :, -1].sum(), (hy, ccc))
    assert torch.isfinite(g_hy).all() and torch.isfinite(g_ccc).all()
    assert float(g_ccc.abs().sum()) > 0.0


def test_the_ccc_haircut_stops_with_a_call():
    tranches = [{"name": "A", "balance": 20.0, "coupon": 0.06}, {"name": "Equity", "balance": 80.0, "equity": True}]
    pool = make_pool(10, interest=[0.5] * 10, scheduled_principal=[10.0] * 10,
                     balance=[90.0 - 10 * t for t in range(10)])
    r = run_waterfall(pool, deal(tranches, clean_up_call=0.25, ccc_limit=0.0, ccc_market_value=0.5),
                      initial_balance=100.0, ccc_par=np.full(10, 20.0))
    assert float(r["acpa"].min()) >= 0.0


def test_interest_reserve_covers_senior_interest_then_is_released_to_principal():
    cfg = deal([{"name": "A", "balance": 60.0, "coupon": 0.12}, {"name": "Equity", "balance": 40.0, "equity": True}],
               interest_reserve=1.0, interest_reserve_release=2)
    pool = make_pool(3, interest=[0.2, 0.1, 1.0], balance=[100.0] * 3)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # month 0: 0.6 due, 0.2 collected, 0.4 drawn; month 1: 0.5 drawn, and the 0.1 left is released to
    # principal (paying A down); month 2: nothing left to draw
    np.testing.assert_allclose(v(r, "interest")[:, 0], [0.6, 0.6, 0.6 * 59.9 / 60.0], rtol=1e-12)
    np.testing.assert_allclose(v(r, "interest_reserve"), [0.6, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(v(r, "principal")[:, 0], [0.0, 0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(v(r, "cash_in"), [0.6, 0.7, 1.0], rtol=1e-12)  # collections + reserve moved
    conserved(r)

