"""The rate channel end to end (issue 13 acceptance): on a book with half its loans floating, a
stagflation path (inflation +6 pp, policy rate +5 pp, 10-year +4 pp, phased in over the first year from
the cut-off state) raises expected loss by more than 3 standard errors of the paired difference (same
seed: common random numbers), and the floating half's interest rises with the policy rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.examples import example_path
from creditsim.macro.scenarios import fed_table_path
from creditsim.states import MACRO_VARS, POOL_CF_TYPES

T = 36


@pytest.fixture(scope="module")
def runs():
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_example.parquet")).groupby("asset_class", group_keys=False).head(100)
    tape = tape.assign(rate_type=np.where(np.arange(len(tape)) % 2 == 0, "floating", "fixed"))
    base = fed_table_path(2025, "baseline", T)
    stag = base.copy()
    ramp = np.minimum(np.arange(T) / 12.0, 1.0)
    for var, d in (("inflation_rate", 0.06), ("policy_rate", 0.05), ("yield_10y", 0.04)):
        stag[:, MACRO_VARS.index(var)] += d * ramp
    kw = dict(n_simulations=800, horizon=T, seed=3, progress=False, cutoff="2025-01")
    deal = example_path("example_clo.yaml")
    return simulate(tape, deal, macro=base, **kw), simulate(tape, deal, macro=stag, **kw), tape


def test_stagflation_raises_el_on_a_half_floating_book(runs) -> None:
    base, stag, _ = runs
    diff = stag.portfolio_losses - base.portfolio_losses
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert diff.mean() > 3 * se, (diff.mean(), se)


def test_floating_interest_follows_the_policy_rate(runs) -> None:
    """Interest received rises by about the floating balance x 5 pp once the hike is in (defaults, which
    also rise, take a little of it back)."""
    base, stag, tape = runs
    k = POOL_CF_TYPES.index("interest")
    gain = stag.cashflows["pool"][:, 12:24, k].sum(1).mean() - base.cashflows["pool"][:, 12:24, k].sum(1).mean()
    floating_balance = base.cashflows["pool"][:, 11, POOL_CF_TYPES.index("balance")].mean() * \
        (tape.loc[tape.rate_type == "floating", "current_balance"].sum() / tape["current_balance"].sum())
    assert 0.6 * 0.05 * floating_balance < gain < 1.2 * 0.05 * floating_balance, (gain, floating_balance)
