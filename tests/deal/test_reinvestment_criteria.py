"""Reinvestment criteria (WAS minimum, WARF and WAL maxima, WAL step-down), each against a case worked by hand.

The tests are on the collateral's aggregate metrics: buying par q at metric b moves the metric m of the
collateral (par P) to ``(P m + q b) / (P + q)``; a purchase must leave the test satisfied or, failing
before, maintained or improved; the cash the tests keep from buying pays the notes in order. Cash is
conserved in every period of every case to 1e-9; soft mode at temperature 1e-6 is within 1e-6 of the
hard mode with the criteria on; gradients through the new path inputs match finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.deal.analytics import level_pay_pool
from creditsim.deal.config import WaterfallConfig
from creditsim.deal.inputs import remaining_wal
from creditsim.deal.waterfall import CRITERIA_OUTPUTS, RESULT_KEYS, cash_conservation_error, run_waterfall
from creditsim.errors import ConfigError, DataError
from creditsim.states import POOL_CF_TYPES

COL = {name: i for i, name in enumerate(POOL_CF_TYPES)}
TWO = [{"name": "A", "balance": 70.0, "coupon": 0.03}, {"name": "Equity", "balance": 30.0, "equity": True}]


def make_pool(T: int, **flows) -> np.ndarray:
    out = np.zeros((1, T, len(POOL_CF_TYPES)))
    for name, values in flows.items():
        out[0, :, COL[name]] = values
    return out


def deal(tranches=TWO, **kw) -> WaterfallConfig:
    base = dict(oc_trigger=None, ic_trigger=None, reinvestment_period=1, senior_fee=0.0, sub_fee=0.0,
                liquidate_at_horizon=False)
    base.update(kw)
    return WaterfallConfig(tranches=tranches, **base)


def v(result, key):
    return result[key][0].detach().numpy()


def conserved(result) -> None:
    err = float(cash_conservation_error(result).abs().max())
    assert err <= 1e-9 * max(float(result["cash_in"].max()), 1.0), err


# one month: 100 of par, 0.3 of interest (a 3.6 % yield), 10 of scheduled principal
ONE_MONTH = make_pool(1, interest=[0.3], scheduled_principal=[10.0], balance=[90.0])


def test_was_minimum_caps_the_purchase_at_the_par_that_keeps_the_spread_at_the_limit():
    r = run_waterfall(ONE_MONTH, deal(min_was=0.035, reinvestment_spread=0.025), initial_balance=100.0)
    # pool spread 12 x 0.3 / 100 = 3.6 % (fixed-rate deal: no base rate). Buying q at 2.5 % keeps the WAS
    # at 3.5 % while 90 x 3.6 % + 2.5 % q >= 3.5 % (90 + q): q <= 90 x 0.1 % / 1 % = 9; the other 1 pays A
    assert v(r, "was")[0] == pytest.approx(0.036, rel=1e-13)
    assert v(r, "reinvestment")[0] == pytest.approx(9.0, rel=1e-12)
    assert v(r, "reinvestment_blocked")[0] == pytest.approx(1.0, rel=1e-12)
    assert v(r, "principal")[0, 0] == pytest.approx(1.0, rel=1e-12)
    assert v(r, "bucket_balance")[0] == pytest.approx(9.0, rel=1e-12)
    assert (90 * 0.036 + 9 * 0.025) / 99 == pytest.approx(0.035, rel=1e-13)  # exactly at the limit after
    assert v(r, "equity")[0] == pytest.approx(0.3 - 70 * 0.03 / 12, rel=1e-13)
    np.testing.assert_allclose(v(r, "warf"), np.nan)  # no such test: NaN
    conserved(r)


def test_a_failing_was_test_allows_purchases_that_maintain_or_improve_it():
    failing = make_pool(1, interest=[0.25], scheduled_principal=[10.0], balance=[90.0])  # 3.0 % < 3.5 %
    better = run_waterfall(failing, deal(min_was=0.035, reinvestment_spread=0.032), initial_balance=100.0)
    # 3.2 % is below the limit but above the collateral's 3.0 %: the WAS improves, all 10 is reinvested
    assert v(better, "was")[0] == pytest.approx(0.03, rel=1e-13)
    assert v(better, "reinvestment")[0] == pytest.approx(10.0, rel=1e-13)
    assert v(better, "reinvestment_blocked")[0] == 0.0
    same = run_waterfall(failing, deal(min_was=0.035, reinvestment_spread=0.03), initial_balance=100.0)
    assert v(same, "reinvestment")[0] == pytest.approx(10.0, rel=1e-13)  # maintained
    worse = run_waterfall(failing, deal(min_was=0.035, reinvestment_spread=0.028), initial_balance=100.0)
    # 2.8 % would worsen a failing test: nothing is bought, the 10 pays A
    assert v(worse, "reinvestment")[0] == 0.0
    assert v(worse, "reinvestment_blocked")[0] == pytest.approx(10.0, rel=1e-13)
    np.testing.assert_allclose(v(worse, "balances")[0], [60.0], rtol=1e-13)
    passing_purchase = run_waterfall(failing, deal(min_was=0.035, reinvestment_spread=0.04), initial_balance=100.0)
    assert v(passing_purchase, "reinvestment")[0] == pytest.approx(10.0, rel=1e-13)
    for r in (better, same, worse, passing_purchase):
        conserved(r)


def test_was_of_a_floating_deal_is_the_pool_yield_over_the_base_rate_or_a_given_path():
    tranches = [{"name": "A", "balance": 70.0, "margin": 0.01}, {"name": "Equity", "balance": 30.0, "equity": True}]
    cfg = deal(tranches, base_rate=0.03, min_was=0.035, reinvestment_spread=0.025)
    pool = make_pool(1, interest=[0.55], scheduled_principal=[10.0], balance=[90.0])  # 6.6 % = 3 % + 3.6 %
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    assert v(r, "was")[0] == pytest.approx(0.036, rel=1e-12)
    assert v(r, "reinvestment")[0] == pytest.approx(9.0, rel=1e-10)
    conserved(r)
    given = run_waterfall(pool, cfg, initial_balance=100.0, pool_spread=[0.04])
    # 90 x (4 % - 3.5 %) / 1 % = 45 of room: all 10 bought
    assert v(given, "was")[0] == pytest.approx(0.04, rel=1e-13)
    assert v(given, "reinvestment_blocked")[0] == 0.0


def test_warf_maximum_with_the_bucket_in_the_mix():
    cfg = deal(reinvestment_period=2, max_warf=3000.0, reinvestment_warf=5000.0)
    pool = make_pool(2, interest=[0.3, 0.27], scheduled_principal=[10.0, 9.0], balance=[90.0, 81.0])
    r = run_waterfall(pool, cfg, initial_balance=100.0, pool_warf=[2800.0, 2800.0])
    # month 0: 90 x (3000 - 2800) / (5000 - 3000) = 9 of par at 5000 keeps the WARF at 3000; 1 pays A
    assert v(r, "warf")[0] == pytest.approx(2800.0, rel=1e-13)
    assert v(r, "reinvestment")[0] == pytest.approx(9.0, rel=1e-12)
    assert v(r, "reinvestment_blocked")[0] == pytest.approx(1.0, rel=1e-12)
    # month 1: the bucket mirrors the pool (10 % amortises: 8.1 left, 0.9 collected); WARF (81 x 2800 +
    # 8.1 x 5000) / 89.1 = 3000: no room left, the 9.9 collected pays A
    assert v(r, "warf")[1] == pytest.approx(3000.0, rel=1e-12)
    assert v(r, "reinvestment")[1] == pytest.approx(0.0, abs=1e-9)
    assert v(r, "reinvestment_blocked")[1] == pytest.approx(9.9, rel=1e-12)
    np.testing.assert_allclose(v(r, "balances")[:, 0], [69.0, 59.1], rtol=1e-12)
    conserved(r)
    # without a WARF path (an unrated pool) the test is off
    off = run_waterfall(pool, cfg, initial_balance=100.0)
    np.testing.assert_allclose(v(off, "warf"), np.nan)
    np.testing.assert_allclose(v(off, "reinvestment"), [10.0, 9.0 + 1.0], rtol=1e-12)  # bucket 10 amortises 1


def test_warf_room_is_bought_at_the_reinvestment_price():
    cfg = deal(max_warf=3000.0, reinvestment_warf=5000.0, reinvestment_price=0.9)
    r = run_waterfall(ONE_MONTH, cfg, initial_balance=100.0, pool_warf=[2800.0])
    # 9 of par fits; it costs 0.9 x 9 = 8.1 of the 10, the other 1.9 pays A
    assert v(r, "reinvestment")[0] == pytest.approx(8.1, rel=1e-12)
    assert v(r, "bucket_balance")[0] == pytest.approx(9.0, rel=1e-12)
    assert v(r, "reinvestment_blocked")[0] == pytest.approx(1.9, rel=1e-12)
    conserved(r)


def wal_case(**kw):
    """12 months, 100 of par; 10 of scheduled principal in months 5 and 11; the pool's WAL 3.5 years."""
    sched = np.zeros(12)
    sched[[5, 11]] = 10.0
    bal = 100.0 - np.cumsum(sched)
    pool = make_pool(12, interest=[0.3] * 12, scheduled_principal=sched, balance=bal)
    cfg = deal(reinvestment_period=12, max_wal=4.8, reinvestment_wal=6.0, **kw)
    return run_waterfall(pool, cfg, initial_balance=100.0, pool_wal=np.full(12, 3.5))


def test_wal_limit_steps_down_with_the_time_elapsed():
    r = wal_case(max_wal_floor=1.0)
    # month 5: limit 4.8 - 6/12 = 4.3; room 90 x (4.3 - 3.5) / (6 - 4.3) = 42.4 > 10: all bought at 6 years
    assert v(r, "wal")[5] == pytest.approx(3.5, rel=1e-13)
    assert v(r, "reinvestment")[5] == pytest.approx(10.0, rel=1e-13)
    # month 11: the bucket aged 6 months (5.5 years) and amortised with the pool to 10 x 8/9; WAL
    # (80 x 3.5 + 80/9 x 5.5) / (800/9) = 3.7 against the limit 4.8 - 1 = 3.8: room (800/9) x 0.1 / 2.2
    assert v(r, "wal")[11] == pytest.approx(3.7, rel=1e-12)
    room = 800 / 9 * 0.1 / 2.2
    collected = 10.0 + 10.0 / 9
    assert v(r, "reinvestment")[11] == pytest.approx(room, rel=1e-12)
    assert v(r, "reinvestment_blocked")[11] == pytest.approx(collected - room, rel=1e-12)
    assert v(r, "principal")[11, 0] == pytest.approx(collected - room, rel=1e-12)
    np.testing.assert_allclose(v(r, "reinvestment_blocked")[:11], 0.0, atol=1e-15)
    conserved(r)
    # a floor of 3.9 years holds the limit there in month 11: room (800/9) x 0.2 / 2.1
    floored = wal_case(max_wal_floor=3.9)
    assert v(floored, "reinvestment")[11] == pytest.approx(800 / 9 * 0.2 / 2.1, rel=1e-12)
    # without a step-down the limit stays 4.8: (800/9) x 1.1 / 1.2 = 81.5 of room, all bought
    flat = wal_case()
    assert v(flat, "reinvestment_blocked")[11] == 0.0
    conserved(floored)


def test_a_stepped_down_wal_limit_the_collateral_already_fails_blocks_longer_purchases():
    sched = np.zeros(24)
    sched[[5, 11, 23]] = 10.0
    pool = make_pool(24, interest=[0.3] * 24, scheduled_principal=sched, balance=100.0 - np.cumsum(sched))
    cfg = deal(reinvestment_period=24, max_wal=4.8, reinvestment_wal=6.0, max_wal_floor=1.0)
    r = run_waterfall(pool, cfg, initial_balance=100.0, pool_wal=np.full(24, 3.5))
    # month 11 as in the test above: 800/9 x 0.1 / 2.2 of par bought at 6 years into 80/9 at 5.5 years
    room = 800 / 9 * 0.1 / 2.2
    bucket, bucket_wal = 80 / 9 + room, (80 / 9 * 5.5 + room * 6.0) / (80 / 9 + room)
    # month 23: the bucket aged a year and amortised with the pool (80 -> 70); the limit 4.8 - 2 = 2.8 is
    # below the pool's 3.5 alone: failing, and 6-year purchases would worsen it: all of it pays A
    bucket23 = bucket * 7 / 8
    wal23 = (70 * 3.5 + bucket23 * (bucket_wal - 1.0)) / (70 + bucket23)
    assert v(r, "wal")[23] == pytest.approx(wal23, rel=1e-12)
    assert v(r, "reinvestment")[23] == 0.0
    assert v(r, "reinvestment_blocked")[23] == pytest.approx(10.0 + bucket / 8, rel=1e-12)
    shorter = run_waterfall(pool, deal(reinvestment_period=24, max_wal=4.8, reinvestment_wal=2.5, max_wal_floor=1.0),
                            initial_balance=100.0, pool_wal=np.full(24, 3.5))
    # 2.5 years passes the 2.8 limit: everything is bought (the failing test improves)
    np.testing.assert_allclose(v(shorter, "reinvestment_blocked"), 0.0, atol=1e-15)
    conserved(r)


def test_remaining_wal_by_hand():
    principal = torch.tensor([[0.0, 0.0, 10.0, 30.0]], dtype=torch.float64)
    # end of month 0: (2 x 10 + 3 x 30) / (12 x 40); month 1: (10 + 2 x 30) / (12 x 40); month 2: 30 / (12 x 30)
    np.testing.assert_allclose(remaining_wal(principal)[0].numpy(), [110 / 480, 70 / 480, 1 / 12, 0.0], rtol=1e-14)


def test_the_wal_path_defaults_to_the_pools_remaining_scheduled_principal():
    pool = make_pool(3, scheduled_principal=[0.0, 10.0, 10.0], balance=[100.0, 90.0, 80.0])
    cfg = deal(reinvestment_period=3, max_wal=5.0, reinvestment_wal=2.0)
    r = run_waterfall(pool, cfg, initial_balance=100.0)
    # the 80 left at the horizon counts as paid in the last month: end of month 0, (10 + 2 x 90) / (12 x 100)
    assert v(r, "wal")[0] == pytest.approx(190 / 1200, rel=1e-13)


def test_blocked_cash_beyond_the_notes_reaches_the_equity():
    small = [{"name": "A", "balance": 5.0, "coupon": 0.0}, {"name": "Equity", "balance": 95.0, "equity": True}]
    r = run_waterfall(ONE_MONTH, deal(small, min_was=0.035, reinvestment_spread=0.02), initial_balance=100.0,
                      pool_spread=[0.03])
    # failing (3 %) and 2 % would worsen it: the 10 repays A's 5 and the other 5 goes to the equity
    assert v(r, "reinvestment_blocked")[0] == pytest.approx(10.0, rel=1e-13)
    assert v(r, "equity")[0] == pytest.approx(0.3 + 5.0, rel=1e-13)
    conserved(r)


# ---- deals without criteria, errors, soft mode, gradients -----------------------------------------------


def test_criteria_that_never_bind_leave_every_output_bit_identical():
    pool = level_pay_pool(1e8, 0.08, 48, 54, cdr=np.array([0.02, 0.3]), cpr=0.15, severity=0.6, lag=3)
    kw = dict(reinvestment_period=24, oc_trigger=1.2, ic_trigger=1.1, interest_diversion_trigger=1.04, tranches=[
        {"name": "A", "balance": 70e6, "coupon": 0.05}, {"name": "B", "balance": 20e6, "coupon": 0.08},
        {"name": "Equity", "balance": 10e6, "equity": True}])
    plain = run_waterfall(pool, WaterfallConfig(**kw), 1e8)
    loose = run_waterfall(pool, WaterfallConfig(**kw, min_was=0.0, reinvestment_spread=0.03, max_warf=9000.0,
                                                reinvestment_warf=2000.0, max_wal=8.0, reinvestment_wal=5.0),
                          1e8, pool_warf=2500.0)
    for key in RESULT_KEYS:
        if key not in ("was", "warf", "wal"):
            assert torch.equal(plain[key], loose[key]), key
    # a deal without criteria reports nothing blocked and no metrics
    assert float(plain["reinvestment_blocked"].abs().max()) == 0.0
    for key in ("was", "warf", "wal"):
        assert bool(plain[key].isnan().all())
    assert set(CRITERIA_OUTPUTS) <= set(plain)
    only = run_waterfall(pool, WaterfallConfig(**kw), 1e8, outputs=("equity",))
    assert set(only) == {"equity", "initial_balances", "pool_balance_0"}


@pytest.mark.parametrize("fields, message", [
    ({"min_was": 3.5, "reinvestment_spread": 0.03}, r"min_was must be an annual spread .* got 3.5"),
    ({"min_was": 0.035}, "min_was needs reinvestment_spread"),
    ({"min_was": 0.035, "reinvestment_spread": -0.01}, "reinvestment_spread must be an annual spread"),
    ({"max_warf": 0.0, "reinvestment_warf": 2800}, "max_warf must be a Moody's rating factor"),
    ({"max_warf": 3000}, "max_warf needs reinvestment_warf"),
    ({"max_warf": 3000, "reinvestment_warf": 20_000}, "reinvestment_warf must be a Moody's rating factor"),
    ({"max_wal": 60, "reinvestment_wal": 5}, r"max_wal must be years in \[0.01, 30\], got 60"),
    ({"max_wal": 6}, "max_wal needs reinvestment_wal"),
    ({"max_wal": 6, "reinvestment_wal": -1}, "reinvestment_wal must be years"),
    ({"max_wal_floor": 3}, "max_wal_floor needs max_wal"),
    ({"max_wal": 6, "reinvestment_wal": 5, "max_wal_floor": 7}, "max_wal_floor must be at most max_wal"),
    ({"max_wal": "six", "reinvestment_wal": 5}, "max_wal must be a number"),
])
def test_every_criteria_field_has_a_one_line_error_naming_it(fields, message):
    with pytest.raises(ConfigError, match=message) as exc:
        deal(**fields)
    assert "\n" not in str(exc.value)


def test_a_purchase_metric_without_its_limit_is_a_warning():
    assert any("reinvestment_warf is set but max_warf is not" in w for w in deal(reinvestment_warf=2800).warnings())


def test_path_inputs_are_checked():
    cfg = deal(max_warf=3000.0, reinvestment_warf=3500.0, max_wal=5.0, reinvestment_wal=6.0)
    with pytest.raises(DataError, match="pool_warf must be Moody's rating factors .* got -1 at scenario 0, month 0"):
        run_waterfall(ONE_MONTH, cfg, initial_balance=100.0, pool_warf=[-1.0])
    with pytest.raises(DataError, match="pool_wal must be a scalar"):
        run_waterfall(ONE_MONTH, cfg, initial_balance=100.0, pool_wal=[1.0, 2.0])


def criteria_deal(**kw) -> WaterfallConfig:
    """The every-feature deal of test_waterfall_clo with the three tests on, tight enough to bind."""
    fields = dict(
        name="criteria", payment_frequency="quarterly", reinvestment_period=30, base_rate=0.04,
        senior_fee=0.0015, sub_fee=0.0035, interest_diversion_trigger=1.04, eod_oc_trigger=1.025, acceleration=True,
        liquidate_at_horizon=True, non_call_period=24, call_nav_threshold=1.6, spread_duration=3.0,
        reinvestment_price=0.97, min_was=0.0345, reinvestment_spread=0.033, max_warf=3000.0, reinvestment_warf=3300.0,
        max_wal=4.5, reinvestment_wal=4.0, max_wal_floor=3.5,
        tranches=[
            {"name": "A", "balance": 62e6, "margin": 0.0135, "floor": 0.0, "oc_trigger": 1.22, "ic_trigger": 1.2},
            {"name": "B", "balance": 11e6, "margin": 0.019, "oc_trigger": 1.15, "ic_trigger": 1.15},
            {"name": "C", "balance": 13e6, "margin": 0.035, "oc_trigger": 1.07, "deferrable": True},
            {"name": "Equity", "balance": 14e6, "equity": True},
        ],
    )
    fields.update(kw)
    return WaterfallConfig(**fields)


@pytest.fixture(scope="module")
def stressed():
    rng = np.random.default_rng(5)
    pool = level_pay_pool(1e8, 0.075, 60, 54, cdr=rng.uniform(0.0, 0.3, 24), cpr=0.15, severity=0.6, lag=3)
    S, T = pool.shape[:2]
    stress = pool[:, :, COL["default_par"]].sum(axis=1, keepdims=True) / 1e8
    ramp = np.linspace(0.0, 1.0, T)[None, :]
    paths = {"hy_spread": 0.035 + 0.05 * stress * ramp, "base_rate": np.full((S, T), 0.04),
             "pool_warf": 2700.0 + 3000.0 * stress * ramp, "pool_wal": np.maximum(4.2 - 3.0 * ramp, 0.5) + 0 * stress,
             # spreads tighten in the benign scenarios (and the WARF rises in the stressed ones): each test
             # is the one that binds in some scenarios
             "pool_spread": 0.0355 - 0.003 * ramp * (0.4 - stress) / 0.4}
    return pool, paths


def test_criteria_bind_in_part_of_the_scenarios_and_cash_is_conserved(stressed):
    pool, paths = stressed
    r = run_waterfall(pool, criteria_deal(), 1e8, **paths)
    conserved(r)
    blocked = r["reinvestment_blocked"].sum(dim=1).numpy()
    assert 0 < (blocked > 0).sum() < len(blocked)


def test_soft_within_1e6_of_hard_with_the_criteria_on(stressed):
    pool, paths = stressed
    cfg = criteria_deal()
    hard = run_waterfall(pool, cfg, 1e8, **paths)
    soft = run_waterfall(pool, cfg, 1e8, mode="soft", temperature=1e-6, **paths)
    err = float((soft["tranche_cashflows"] - hard["tranche_cashflows"]).abs().sum(dim=1).max()) / 1e8
    assert err < 1e-6, err
    assert float((soft["reinvestment_blocked"] - hard["reinvestment_blocked"]).abs().max()) / 1e8 < 1e-6
    st_ = run_waterfall(pool, cfg, 1e8, mode="straight_through", **paths)
    for key in ("tranche_cashflows", "reinvestment_blocked", "wal"):
        assert torch.equal(hard[key], st_[key]), key


ONLY = {"pool_spread": dict(max_warf=None, max_wal=None, max_wal_floor=None),
        "pool_warf": dict(min_was=None, max_wal=None, max_wal_floor=None),
        "pool_wal": dict(min_was=None, max_warf=None)}


@pytest.mark.parametrize("mode", ["soft", "hard"])
@pytest.mark.parametrize("path", ["all", *ONLY])
def test_gradients_through_the_criteria_paths_match_finite_differences(stressed, mode, path, check_gradient):
    pool, paths = stressed
    cfg = criteria_deal(**ONLY.get(path, {}))
    cf = torch.as_tensor(pool)
    shape = {k: torch.as_tensor(v) for k, v in paths.items()}
    names = list(ONLY)

    def equity_value(x: torch.Tensor) -> torch.Tensor:
        # x scales the pool's spread, WARF and WAL paths (all three, or the one whose test is on)
        scaled = {k: (x[names.index(k)] if path == "all" else x[0]) * shape[k] if path in (k, "all") else shape[k]
                  for k in names}
        r = run_waterfall(cf, cfg, 1e8, mode=mode, temperature=0.05, hy_spread=shape["hy_spread"],
                          base_rate=shape["base_rate"], **scaled)
        months = torch.arange(cf.shape[1], dtype=torch.float64)
        return (r["tranche_cashflows"][:, :, -1] / (1.01 ** months)).sum() / 1e6

    x = torch.ones(3 if path == "all" else 1, dtype=torch.float64)
    fd = check_gradient(equity_value, x, rel=2e-3)
    assert np.abs(fd).max() > 1.0  # the path moves the equity (millions per unit of scale)
    if path != "all":
        assert np.abs(fd).min() > 1.0


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_criteria_results_do_not_depend_on_the_batch(stressed, mode):
    pool, paths = stressed
    cfg = criteria_deal()
    full = run_waterfall(pool, cfg, 1e8, mode=mode, **paths)
    chunked = run_waterfall(pool, cfg, 1e8, mode=mode, chunk_size=5, **paths)
    rows = np.random.default_rng(1).permutation(len(pool))[:9]
    part = run_waterfall(pool[rows], cfg, 1e8, mode=mode, **{k: v[rows] for k, v in paths.items()})
    for key in RESULT_KEYS:
        if key == "initial_balances":
            continue
        np.testing.assert_array_equal(chunked[key].numpy(), full[key].numpy(), err_msg=key)
        np.testing.assert_array_equal(part[key].numpy(), full[key][rows].numpy(), err_msg=key)
    # the WAL path derived from the pool's own schedule too
    no_wal = {k: v for k, v in paths.items() if k != "pool_wal"}
    a = run_waterfall(pool, cfg, 1e8, mode=mode, **no_wal)["wal"]
    b = run_waterfall(pool[rows], cfg, 1e8, mode=mode, **{k: v[rows] for k, v in no_wal.items()})["wal"]
    np.testing.assert_array_equal(b.numpy(), a[rows].numpy())


def wal_call_deal(max_wal: float) -> WaterfallConfig:
    """A monthly deal whose clean-up call can come inside the reinvestment period, with a WAL test that binds
    (reviewer's case: a call branch that skipped the bucket's WAL ageing changed the soft blend)."""
    return WaterfallConfig(
        name="wal-call", payment_frequency="monthly", reinvestment_period=30, base_rate=0.04, senior_fee=0.0015,
        sub_fee=0.0035, liquidate_at_horizon=True, spread_duration=3.0, reinvestment_price=0.97, max_wal=max_wal,
        reinvestment_wal=6.0, clean_up_call=0.6,
        tranches=[{"name": "A", "balance": 62e6, "margin": 0.0135, "floor": 0.0, "oc_trigger": 1.22, "ic_trigger": 1.2},
                  {"name": "B", "balance": 11e6, "margin": 0.019, "oc_trigger": 1.15, "ic_trigger": 1.15},
                  {"name": "C", "balance": 13e6, "margin": 0.035, "oc_trigger": 1.07, "deferrable": True},
                  {"name": "Equity", "balance": 14e6, "equity": True}])


@pytest.mark.parametrize("mode", ["hard", "soft", "straight_through"])
@pytest.mark.parametrize("which", ["criteria", "wal-call"])
def test_tranche_outputs_alone_match_the_full_run_with_calls_and_criteria(stressed, mode, which):
    # without the criteria outputs the collateral metrics are skipped after the reinvestment period; calls
    # inside it (whose liquidation branch the soft modes blend with the normal month) must still age the
    # bucket's WAL: the tranche results must be the full run's, bit for bit
    from creditsim.deal.waterfall import TRANCHE_OUTPUTS

    pool, paths = stressed
    if which == "criteria":
        cfg = criteria_deal(payment_frequency="monthly", clean_up_call=0.6)
    else:
        cfg = wal_call_deal(4.0)
        paths = {k: paths[k] for k in ("hy_spread", "base_rate", "pool_wal")}
    full = run_waterfall(pool, cfg, 1e8, mode=mode, **paths)
    part = run_waterfall(pool, cfg, 1e8, mode=mode, outputs=TRANCHE_OUTPUTS, **paths)
    assert float(full["called"][:, :30].sum()) > 0 and float(full["reinvestment_blocked"].sum()) > 0
    for key in TRANCHE_OUTPUTS:
        torch.testing.assert_close(part[key], full[key], rtol=0, atol=0, msg=key)
