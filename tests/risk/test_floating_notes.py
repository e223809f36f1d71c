"""Floating-rate notes inside ``simulate``: each scenario's notes accrue ACT/360 at that scenario's
policy-rate path (the SOFR proxy the floating loans follow too) plus the margin, from the month after
the cut-off; fixed admin expenses scale with the deal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.examples import example_path
from creditsim.macro.scenarios import fed_table_path
from creditsim.states import MACRO_VARS

T = 12
DEAL = {
    "name": "floating notes", "base_rate": 0.04, "reinvestment_period": 0, "senior_fee": 0.0015,
    "admin_expenses": 120_000.0, "admin_cap": 60_000.0, "collateral_balance": 100e6,
    "tranches": [
        {"name": "A", "balance": 60e6, "margin": 0.0135, "floor": 0.0, "oc_trigger": None, "ic_trigger": None},
        {"name": "B", "balance": 30e6, "coupon": 0.07, "oc_trigger": None, "ic_trigger": None},
        {"name": "Equity", "balance": 10e6, "equity": True},
    ],
}


@pytest.fixture(scope="module")
def run():
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_example.parquet")).head(60)
    path = fed_table_path(2025, "baseline", T)
    paths = np.stack([path, path])
    paths[1, :, MACRO_VARS.index("policy_rate")] += 0.05  # the second scenario: rates 5 pp higher
    res = simulate(tape, DEAL, macro=paths, n_simulations=2, horizon=T, seed=1, progress=False, cutoff="2025-01")
    return res, paths


def test_floating_note_accrues_the_scenarios_policy_rate_act_360(run) -> None:
    res, paths = run
    interest = res.cashflows["tranche_interest"][:, :, 0]
    balance = res.cashflows["tranche_balance"][:, :, 0]
    opening = np.concatenate([np.full((2, 1), res.tranche_results[0].balance), balance[:, :-1]], axis=1)
    days = np.array([(pd.Period("2025-02", freq="M") + i).days_in_month for i in range(T)])
    policy = paths[:, :, MACRO_VARS.index("policy_rate")]
    expected = opening * (np.maximum(policy, 0.0) + 0.0135) * days / 360.0
    np.testing.assert_allclose(interest, expected, rtol=1e-10)
    # the fixed class is untouched by the rate path
    np.testing.assert_allclose(res.cashflows["tranche_interest"][0, :, 1], res.cashflows["tranche_interest"][1, :, 1],
                               rtol=1e-12)


def test_fixed_admin_expenses_scale_with_the_deal(run) -> None:
    res, _ = run
    factor = res.settings["deal_scale_factor"]
    deal = res.settings["deal"]
    assert deal["admin_expenses"] == pytest.approx(120_000.0 * factor, rel=1e-12)
    assert deal["admin_cap"] == pytest.approx(60_000.0 * factor, rel=1e-12)
