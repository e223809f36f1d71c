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


def test_ccc_par_is_the_rated_grades_ccc_share_along_the_rating_chain() -> None:
    from creditsim.ratings.lifetime import monthly_scenario_matrices
    from creditsim.risk.pool_engine import PoolEngine
    from creditsim.schema import RATINGS

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    engine = PoolEngine.from_tape(tape, seed=0, horizon=24, cutoff="2025-01")
    paths = np.stack([fed_table_path(2025, "baseline", 24), fed_table_path(2025, "severely_adverse", 24)])
    pool = np.zeros((2, 24, 7))
    pool[:, :, 6] = 1e6  # a flat performing balance isolates the share
    ccc = engine.ccc_par(paths, pool)
    # reference: the grade distributions by explicit matrix products, one scenario and month at a time
    rating = monthly_scenario_matrices(paths, engine.rating_link)
    rated = tape["rating"].notna()
    weights = tape[rated].groupby("rating")["current_balance"].sum() / tape["current_balance"].sum()
    for s in range(2):
        dist = np.eye(8)[:7]
        for t in range(24):
            dist = dist @ rating[s, t]
            if t in (0, 11, 23):
                share = sum(weights.get(g, 0.0) * dist[i, 6] / (1 - dist[i, 7]) for i, g in enumerate(RATINGS))
                assert ccc[s, t] == pytest.approx(1e6 * share, rel=1e-10)
    assert ccc[1, 23] > 1.2 * ccc[0, 23]  # the severely adverse path migrates more names to CCC


def test_simulate_feeds_the_ccc_haircut_only_to_deals_that_set_a_limit() -> None:
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    tape = tape[tape["rating"].notna()].head(80)
    path = fed_table_path(2025, "severely_adverse", T)[None]
    kw = dict(macro=path, n_simulations=1, horizon=T, seed=1, progress=False, cutoff="2025-01")
    tranches = [DEAL["tranches"][0], {**DEAL["tranches"][1], "oc_trigger": 1.10}, DEAL["tranches"][2]]
    deal = {**DEAL, "tranches": tranches}
    plain = simulate(tape, deal, **kw)
    haircut = simulate(tape, {**deal, "ccc_limit": 0.0, "ccc_market_value": 0.0}, **kw)
    # class B's OC (100 / 90 = 1.11) passes its 1.10 trigger until the whole CCC bucket leaves the
    # numerator: then interest is diverted from the equity to pay the notes down
    equity = lambda r: r.cashflows["tranche_interest"][0, :6, -1].sum()  # noqa: E731
    assert equity(haircut) < equity(plain)
    assert plain.settings["deal"]["ccc_limit"] is None


def test_a_run_records_the_restricted_data_files_it_could_read(run) -> None:
    res, _ = run
    files = res.settings["restricted_data"]
    assert set(files) <= {"BAMLC0A0CM", "BAMLH0A0HYM2", "CSUSHPINSA", "FRED-MD"}
    assert all(len(v["sha256"]) == 64 and v["path"] for v in files.values())


def test_pool_warf_is_the_surviving_rated_loans_rating_factor_along_the_rating_chain() -> None:
    from creditsim.deal.market import RATING_FACTORS
    from creditsim.ratings.lifetime import monthly_scenario_matrices
    from creditsim.risk.pool_engine import PoolEngine
    from creditsim.schema import RATINGS

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    engine = PoolEngine.from_tape(tape, seed=0, horizon=24, cutoff="2025-01")
    paths = np.stack([fed_table_path(2025, "baseline", 24), fed_table_path(2025, "severely_adverse", 24)])
    warf = engine.pool_warf(paths, 24)
    rating = monthly_scenario_matrices(paths, engine.rating_link)
    rated = tape["rating"].notna()
    weights = tape[rated].groupby("rating")["current_balance"].sum() / tape["current_balance"].sum()
    factors = np.array([RATING_FACTORS[g] for g in RATINGS])
    for s in range(2):
        dist = np.eye(8)[:7]
        for t in range(24):
            dist = dist @ rating[s, t]
            if t in (0, 23):
                w = np.array([weights.get(g, 0.0) for g in RATINGS])
                expected = (w @ (dist[:, :7] @ factors)) / (w @ (1 - dist[:, 7]))
                assert warf[s, t] == pytest.approx(expected, rel=1e-10)
    assert warf[1, 23] > warf[0, 23]  # the severely adverse path downgrades more


def test_pool_wal_is_the_tapes_scheduled_amortisation() -> None:
    from creditsim.loans.schedule import amortization_schedule
    from creditsim.risk.pool_engine import PoolEngine

    tape = pd.read_parquet(example_path("loans_example.parquet")).head(40)
    engine = PoolEngine.from_tape(tape, seed=0, horizon=24, cutoff="2025-01")
    book = engine.book
    wal = engine.pool_wal(24)
    sched = amortization_schedule(book.balance, book.monthly_rate, book.remaining_term, book.amortization,
                                  book.io_months).principal.sum(axis=0)
    for t in (0, 11, 23):
        u = np.arange(len(sched))
        later = u > t
        assert wal[t] == pytest.approx(((u[later] - t) * sched[later]).sum() / sched[later].sum() / 12, rel=1e-12)


def test_pool_spread_is_the_floating_loans_contractual_spread_not_the_yield_over_the_path() -> None:
    """Issue 15 review: under a simulation a floating loan's coupon moves with the path's index since the
    cut-off, so yield minus base rate is coupon minus the path's month-0 index (4.2 % on the BSL example
    under synthetic paths against a 3.5 % contractual spread). The WAS path is the tape's spread_bps,
    weighted by scheduled balance; fixed-rate loans and loans without a spread do not count."""
    from creditsim.loans.schedule import amortization_schedule
    from creditsim.risk.pool_engine import PoolEngine

    tape = pd.read_parquet(example_path("loans_bsl.parquet")).head(60).copy()
    tape.loc[tape.index[:5], "rate_type"] = "fixed"  # fixed loans are out of the WAS
    tape.loc[tape.index[5:8], "spread_bps"] = np.nan  # so are floating loans without a spread
    engine = PoolEngine.from_tape(tape, seed=0, horizon=24)
    was = engine.pool_spread(24)
    book = engine.book
    spread = pd.Series(tape["spread_bps"].to_numpy() / 1e4, index=tape["loan_id"].astype(str)).reindex(book.loan_id)
    counts = (tape.set_index(tape["loan_id"].astype(str))["rate_type"].reindex(book.loan_id) == "floating").to_numpy() \
        & spread.notna().to_numpy()
    bal = amortization_schedule(book.balance, book.monthly_rate, book.remaining_term, book.amortization,
                                book.io_months).balance[:, 1:]
    for t in (0, 11, 23):
        w = bal[counts, t]
        assert was[t] == pytest.approx((w * spread.to_numpy()[counts]).sum() / w.sum(), rel=1e-12)
    assert 0.03 < was[0] < 0.04  # SOFR + 130 .. 600 bp, B+ average
    no_spread = PoolEngine.from_tape(tape.drop(columns="spread_bps"), seed=0, horizon=24)
    assert no_spread.pool_spread(24) is None  # the waterfall then reads it off the collections


def test_simulate_gates_reinvestment_with_the_tapes_warf_and_wal() -> None:
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    tape = tape[tape["rating"].notna()].head(80)
    path = fed_table_path(2025, "baseline", T)[None]
    kw = dict(macro=path, n_simulations=1, horizon=T, seed=1, progress=False, cutoff="2025-01")
    deal = {**DEAL, "reinvestment_period": T}
    plain = simulate(tape, deal, **kw)
    strict = simulate(tape, {**deal, "max_warf": 1.0, "reinvestment_warf": 2720.0}, **kw)
    # a WARF limit of 1 (Aaa) fails from the start and B2 purchases would worsen it: nothing is reinvested,
    # the principal pays class A down (before the horizon's liquidation)
    a_principal = lambda r: r.cashflows["tranche_principal"][0, :-1, 0].sum()  # noqa: E731
    assert a_principal(plain) == 0.0 < a_principal(strict)
    short = simulate(tape, {**deal, "max_wal": 0.01, "reinvestment_wal": 5.0}, **kw)
    assert a_principal(short) > 0.0
    loose = simulate(tape, {**deal, "max_warf": 9000.0, "reinvestment_warf": 2720.0, "max_wal": 30.0,
                            "reinvestment_wal": 5.0}, **kw)
    np.testing.assert_array_equal(loose.cashflows["tranche_principal"], plain.cashflows["tranche_principal"])
