"""Liquidation period and discount collateral (WATERFALL.md 2.4), checked against the outcome they must give.

Defect fixed: the final period's coverage tests counted the collateral at par before its sale at
``liquidation_price``, and residual interest reached equity while senior notes lost principal (example
CLO sold at 0.55: equity was paid ~99k in the last month while class A lost 9.6 %).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from creditsim.examples import example_path
from creditsim.deal.analytics import level_pay_pool
from creditsim.deal.config import load_deal
from creditsim.deal.waterfall import cash_conservation_error, run_waterfall

S = 24


@pytest.fixture(scope="module")
def fire_sale():
    deal = dataclasses.replace(load_deal(example_path("example_clo.yaml")), liquidation_price=0.55)
    rng = np.random.default_rng(2)
    pool = level_pay_pool(1e8, 0.08, 60, horizon=36, cdr=rng.uniform(0.0, 0.15, S), cpr=rng.uniform(0.0, 0.2, S),
                          severity=rng.uniform(0.3, 0.6, S), lag=3)
    return deal, pool


@pytest.mark.parametrize("mode", ["hard", "soft", "straight_through"])
def test_no_cash_to_equity_or_sub_fee_while_a_note_is_not_repaid_at_liquidation(fire_sale, mode) -> None:
    deal, pool = fire_sale
    r = {k: v.detach().numpy() for k, v in run_waterfall(pool, deal, mode=mode, initial_balance=1e8).items()}
    unpaid = (r["balances"][:, -1, :] > 1e-6).any(axis=1) | (r["interest_shortfall"][:, -1, :] > 1e-6).any(axis=1)
    assert unpaid.sum() >= 3, "the fixture must contain scenarios where the notes are not repaid"
    # nothing but float residue of the sequential paydown (before the fix: ~1e5 to equity)
    np.testing.assert_allclose(r["equity"][unpaid, -1], 0.0, atol=1e-6)
    np.testing.assert_allclose(r["sub_fee"][unpaid, -1], 0.0, atol=1e-6)
    # cash is conserved in the liquidation month as in every other
    err = cash_conservation_error(run_waterfall(pool, deal, mode=mode, initial_balance=1e8)).detach().numpy()
    assert np.abs(err).max() < 1e-6


def test_liquidation_coverage_tests_see_the_sale_value_not_par(fire_sale) -> None:
    deal, pool = fire_sale
    r = {k: v.detach().numpy() for k, v in run_waterfall(pool, deal, initial_balance=1e8).items()}
    # principal proceeds of the last month = collections (pool and bucket) + the sale: cash, all of it
    np.testing.assert_array_equal(r["acpa"][:, -1], r["principal_proceeds"][:, -1])
    assert (r["acpa"][:, -1] < r["acpa"][:, -2]).all()  # a fire sale at 0.55 cannot raise the numerator


def test_collateral_bought_below_par_counts_at_its_purchase_price() -> None:
    """No defaults or prepayments: the month-1 OC numerator is pool par + cash + bucket par x price."""
    base = load_deal(example_path("example_clo.yaml"))
    pool = level_pay_pool(1e8, 0.08, 60, horizon=6)
    for price in (0.8, 1.0, 1.02):
        deal = dataclasses.replace(base, reinvestment_price=price)
        r = {k: v.detach().numpy() for k, v in run_waterfall(pool, deal, initial_balance=1e8).items()}
        bucket0 = r["bucket_balance"][0, 0]
        assert bucket0 > 0, "month 0 must reinvest into the bucket"
        s_rate = pool[0, 1, 1] / pool[0, 0, 6]
        b_sch = bucket0 * s_rate  # the bucket mirrors the pool's scheduled amortisation
        expected = pool[0, 1, 6] + min(price, 1.0) * (bucket0 - b_sch) + pool[0, 1, 1] + b_sch
        assert r["acpa"][0, 1] == pytest.approx(expected, rel=1e-12)
