"""Chunk-size invariance, providers (TTC matrix vs the ratings term structure, reversion, collateral LGD),
staging rules and probability weighting of outcomes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.ifrs9 import (CollateralLGD, EclLoans, EclSettings, FlatLGD, HazardCurvePD, PeriodLGD, ScenarioMatrixPD,
                             SupervisoryFindingWarning, TTCMatrixPD, audit_chunks, expected_credit_loss)
from creditsim.ratings.lifetime import ttc_term_structure

TTC = load_sp_ratings().matrix_8x8
Z = np.array([[0.8] * 5, [0.0] * 5, [-1.5, -1.2, -0.5, 0.0, 0.0]])


def _book(n: int = 60) -> tuple[EclLoans, np.ndarray]:
    rng = np.random.default_rng(7)
    grade = rng.integers(1, 7, n)
    loans = EclLoans(balance=rng.uniform(1e4, 5e5, n).round(2), annual_rate=rng.uniform(0.02, 0.09, n),
                     remaining_months=rng.integers(1, 240, n), amortization=rng.choice(["annuity", "linear", "bullet", "interest_only"], n),
                     io_months=rng.integers(0, 24, n), undrawn=rng.choice([0.0, 2e4], n), ccf=0.6,
                     prepayment_cpr=rng.uniform(0.0, 0.2, n), grade=grade, origination_grade=np.clip(grade - rng.integers(0, 4, n), 0, 6),
                     months_on_book=rng.integers(0, 60, n), days_past_due=rng.choice([0, 0, 0, 45, 100], n),
                     watch_list=rng.random(n) < 0.1, rate_type=rng.choice(["fixed", "floating"], n),
                     current_eir=0.08, loan_id=np.arange(1000, 1000 + n))
    return loans, rng.uniform(1e5, 6e5, n)


def _run(chunk_size: int, audit: bool = False, staging: str = "weighted", workers: int = 1):
    loans, value = _book()
    hpi = np.exp(np.cumsum(np.concatenate([np.zeros((3, 1)), np.tile([[0.002], [0.0], [-0.004]], (1, 300))], axis=1), axis=1))
    return expected_credit_loss(loans, ScenarioMatrixPD.from_z_paths(TTC, Z, 0.06), CollateralLGD(value, hpi),
                                scenarios=["up", "base", "down"], weights=[0.3, 0.4, 0.3],
                                settings=EclSettings(period="quarter", staging=staging), chunk_size=chunk_size, audit=audit,
                                workers=workers)


def test_results_are_bit_identical_for_every_chunk_size_and_thread_count() -> None:
    ref = _run(1000, audit=True)
    for size, workers in ((1, 1), (7, 1), (32, 1), (5, 2)):
        other = _run(size, audit=True, workers=workers)
        for name in ("ecl", "ecl_12m", "ecl_lifetime", "ecl_by_scenario", "lifetime_pd", "stage_by_scenario", "ead"):
            assert np.array_equal(getattr(ref, name), getattr(other, name)), (name, size)
        pd.testing.assert_frame_equal(ref.triggers, other.triggers)
        key = ["loan_id", "scenario", "period"]
        pd.testing.assert_frame_equal(ref.audit.sort_values(key).reset_index(drop=True),
                                      other.audit.sort_values(key).reset_index(drop=True))
    chunks = list(audit_chunks(*_inputs(), chunk_size=25))
    assert len(chunks) == 3 and sum(len(c) for c in chunks) == len(ref.audit)


def _inputs():
    loans, value = _book()
    hpi = np.exp(np.cumsum(np.concatenate([np.zeros((3, 1)), np.tile([[0.002], [0.0], [-0.004]], (1, 300))], axis=1), axis=1))
    return (loans, ScenarioMatrixPD.from_z_paths(TTC, Z, 0.06), CollateralLGD(value, hpi), ["up", "base", "down"],
            [0.3, 0.4, 0.3], EclSettings(period="quarter"))


def test_weighted_ecl_weights_outcomes_and_exceeds_the_ecl_of_the_mean_path() -> None:
    res = _run(64)
    assert np.allclose(res.ecl, (res.weights[:, None] * res.ecl_by_scenario).sum(axis=0), rtol=1e-13)
    assert (res.ecl_lifetime[2] >= res.ecl_lifetime[0]).all()
    loans, value = _book()
    mean_path = ScenarioMatrixPD.from_z_paths(TTC, (np.array([0.3, 0.4, 0.3]) @ Z)[None, :], 0.06)
    weighted = expected_credit_loss(loans, ScenarioMatrixPD.from_z_paths(TTC, Z, 0.06), FlatLGD(0.4), ["u", "b", "d"], [0.3, 0.4, 0.3])
    single = expected_credit_loss(loans, mean_path, FlatLGD(0.4))
    assert weighted.ecl_lifetime_weighted.sum() > single.ecl_lifetime[0].sum()  # losses are convex in z


def test_ttc_provider_reproduces_the_ratings_term_structure_at_whole_years() -> None:
    loans = EclLoans(balance=np.ones(7), annual_rate=0.05, remaining_months=120, grade=np.arange(7))
    surv = TTCMatrixPD(TTC).survival(loans, 120, EclSettings())
    cum = ttc_term_structure(TTC, 10).cumulative  # (10, 7)
    assert np.allclose(1.0 - surv[12::12, 0, :], cum, atol=2e-3)


def test_reversion_to_ttc_after_the_reasonable_and_supportable_horizon() -> None:
    loans = EclLoans(balance=np.ones(6), annual_rate=0.05, remaining_months=120, grade=np.arange(6))
    scen = ScenarioMatrixPD.from_z_paths(TTC, Z, 0.06)
    ttc = TTCMatrixPD(TTC).survival(loans, 120, EclSettings())
    immediate = scen.survival(loans, 120, EclSettings(reversion="immediate", rs_horizon_months=0))
    assert np.array_equal(immediate, np.broadcast_to(ttc, immediate.shape))
    s = EclSettings(reversion="immediate", rs_horizon_months=24)
    cut = scen.survival(loans, 120, s)
    # after month 24 each scenario moves with TTC monthly matrices: the bad path keeps its higher PD
    assert (cut[-1, 2] < cut[-1, 0]).all()
    none = scen.survival(loans, 120, EclSettings(reversion="none"))
    lin = scen.survival(loans, 120, EclSettings(reversion="linear", rs_horizon_months=24, reversion_months=24))
    assert np.array_equal(none[:25], lin[:25]) and np.array_equal(cut[:25], lin[:25])


def test_hazard_curve_and_period_lgd_follow_the_year_of_default() -> None:
    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.0, remaining_months=36, amortization="bullet")
    res = expected_credit_loss(loans, HazardCurvePD([0.01, 0.02, 0.04]), PeriodLGD([0.1, 0.2, 0.3]),
                               settings=EclSettings(period="year", default_timing="end", ead_timing="start", sicr_relative=None, sicr_absolute=None),
                               audit=True)
    a = res.audit
    assert np.allclose(a["marginal_pd"], [0.01, 0.99 * 0.02, 0.99 * 0.98 * 0.04])
    assert np.allclose(a["lgd"], [0.1, 0.2, 0.3])
    assert res.ecl_lifetime[0, 0] == pytest.approx(1e5 * (0.01 * 0.1 + 0.99 * 0.02 * 0.2 + 0.99 * 0.98 * 0.04 * 0.3))


def test_collateral_lgd_from_ltv_haircut_time_to_sale_and_discounting() -> None:
    loans = EclLoans(balance=np.array([90_000.0, 90_000.0]), annual_rate=0.0, remaining_months=24, amortization="bullet", eir=0.05)
    hpi = np.array([[1.0] * 40, [1.0] + [0.7] * 39])
    lgd = CollateralLGD(np.array([100_000.0, 200_000.0]), hpi, haircut=0.2, sale_cost=0.05, time_to_sale=12)
    out = lgd.lgd(loans, np.zeros((1, 2)), np.full((1, 2), 90_000.0), np.full(2, 0.05))  # (1, S, L)
    df = 1.05 ** -1
    assert out[0, 0, 0] == pytest.approx(1 - 75_000 * df / 90_000)
    assert out[0, 1, 0] == pytest.approx(1 - 0.75 * 70_000 * df / 90_000)
    assert out[0, 0, 1] == pytest.approx(1 - df)  # fully covered: only the time value of the sale delay


def _stage(settings: EclSettings, pd_now: float = 0.02, pd_orig: float = 0.02, **loan) -> tuple[int, pd.Series]:
    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.05, remaining_months=60, **loan)
    res = expected_credit_loss(loans, HazardCurvePD(pd_now, origination_pd=pd_orig), FlatLGD(0.4), settings=settings)
    return int(res.stage[0]), res.triggers.iloc[0]


def test_staging_rules_fire_and_are_named() -> None:
    s = EclSettings()
    assert _stage(s)[0] == 1
    stage, fired = _stage(s, days_past_due=31)
    assert stage == 2 and fired["dpd30"] and not fired["pd_threshold"]
    assert _stage(s, days_past_due=91)[0] == 3
    assert _stage(s, pd_now=0.05)[0] == 2 and _stage(s, pd_now=0.05)[1]["pd_threshold"]
    assert _stage(s, pd_now=0.035)[0] == 1                    # 1.75x: below the 2x relative threshold
    assert _stage(s, pd_now=0.0006, pd_orig=0.0002)[0] == 1   # 3x but below the 50 bp absolute floor ("and")
    assert _stage(EclSettings(sicr_combine="or"), pd_now=0.0006, pd_orig=0.0002)[0] == 2
    assert _stage(s, grade=[5], origination_grade=[2])[0] == 2
    assert _stage(s, forborne=True)[0] == 2
    lcr = EclSettings(low_credit_risk_grade=3)
    assert _stage(lcr, watch_list=True, grade=[2], origination_grade=[2])[0] == 1
    assert _stage(lcr, days_past_due=40, grade=[2], origination_grade=[2])[0] == 2
    assert _stage(s, previous_stage=2, months_since_trigger=2)[0] == 2
    assert _stage(s, previous_stage=2, months_since_trigger=3)[0] == 1
    assert _stage(s, previous_stage=3, months_since_trigger=1)[0] == 3
    assert _stage(s, previous_stage=3, months_since_trigger=4)[0] == 2  # cured 4 months ago: Stage 2 probation
    assert _stage(s, previous_stage=3, months_since_trigger=6)[0] == 1


def test_per_scenario_staging_stages_each_scenario_with_its_own_pd() -> None:
    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.05, remaining_months=60)
    provider = HazardCurvePD(np.array([[0.01], [0.02], [0.08]]), origination_pd=0.02)
    per = expected_credit_loss(loans, provider, FlatLGD(0.4), ["u", "b", "d"], [0.3, 0.5, 0.2],
                               EclSettings(staging="per_scenario"))
    assert per.stage_by_scenario[:, 0].tolist() == [1, 1, 2] and per.stage[0] == 2
    assert per.ecl_by_scenario[2, 0] == per.ecl_lifetime[2, 0] and per.ecl_by_scenario[1, 0] == per.ecl_12m[1, 0]
    weighted = expected_credit_loss(loans, provider, FlatLGD(0.4), ["u", "b", "d"], [0.3, 0.5, 0.2], EclSettings())
    assert weighted.stage_by_scenario[:, 0].tolist() == [1, 1, 1]  # weighted PD 1.6x origination
    assert per.ecl[0] > weighted.ecl[0]


def test_settings_criticised_by_supervisors_warn_and_defaults_do_not() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EclSettings()
    with pytest.warns(SupervisoryFindingWarning, match="only through the 30 dpd backstop"):
        EclSettings(sicr_relative=None, sicr_absolute=None, sicr_notches=None, sicr_watch_list=False, sicr_forbearance=False)
    with pytest.warns(SupervisoryFindingWarning, match="ping-pong"):
        EclSettings(probation_months=0)
    with pytest.warns(SupervisoryFindingWarning, match="investment grade"):
        EclSettings(low_credit_risk_grade=4)


def test_contract_balance_is_the_engine_schedule_within_a_cent() -> None:
    from creditsim.ifrs9.ecl import contract_balance
    from creditsim.loans.schedule import amortization_schedule

    loans, _ = _book(200)
    bal = contract_balance(loans, 240)
    sched = amortization_schedule(loans.balance, loans.annual_rate / 12.0, loans.remaining_months, loans.amortization,
                                  loans.io_months, n_columns=240)
    assert np.abs(bal - sched.balance[:, :240]).max() <= 0.0051


def test_cecl_carries_lifetime_ecl_from_day_one_and_may_skip_discounting() -> None:
    from creditsim.errors import ConfigError

    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.05, remaining_months=60)
    ifrs9 = expected_credit_loss(loans, HazardCurvePD(0.02), FlatLGD(0.4))
    cecl = expected_credit_loss(loans, HazardCurvePD(0.02), FlatLGD(0.4), settings=EclSettings(framework="cecl"))
    assert ifrs9.ecl[0] == ifrs9.ecl_12m[0, 0] and cecl.ecl[0] == cecl.ecl_lifetime[0, 0] and cecl.stage[0] == 1
    flat = expected_credit_loss(loans, HazardCurvePD(0.02), FlatLGD(0.4), audit=True,
                                settings=EclSettings(framework="cecl", discount=False))
    assert (flat.audit["discount_factor"] == 1.0).all() and flat.ecl[0] > cecl.ecl[0]
    with pytest.raises(ConfigError, match="EclSettings.discount"):
        EclSettings(discount=False)
    with pytest.warns(SupervisoryFindingWarning, match="326-20-30-9"):
        EclSettings(framework="cecl", reversion="none")


def test_hazard_curves_revert_to_their_ttc_curve() -> None:
    loans = EclLoans(balance=np.ones(1), annual_rate=0.05, remaining_months=48)
    provider = HazardCurvePD(np.array([[0.10]]), ttc_pd=0.02)
    surv = provider.survival(loans, 48, EclSettings(reversion="immediate", rs_horizon_months=12))[:, 0, 0]
    assert surv[12] == pytest.approx(0.9) and surv[24] == pytest.approx(0.9 * 0.98) and surv[48] == pytest.approx(0.9 * 0.98 ** 3)
    lin = provider.survival(loans, 48, EclSettings(reversion="linear", rs_horizon_months=12, reversion_months=12))[:, 0, 0]
    assert 0.9 ** 2 < lin[24] < surv[24] and lin[48] / lin[24] == pytest.approx(0.98 ** 2)
    none = provider.survival(loans, 48, EclSettings(reversion="none"))[:, 0, 0]
    assert none[48] == pytest.approx(0.9 ** 4)
