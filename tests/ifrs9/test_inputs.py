"""Building inputs: loans from a frame, macro-driven PD and collateral providers, partial last periods and
the 12-month / annualised SICR measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.ifrs9 import (CollateralLGD, EclLoans, EclSettings, FlatLGD, HazardCurvePD, ScenarioMatrixPD,
                             expected_credit_loss)
from creditsim.ratings.lifetime import ZMacroLink
from creditsim.states import MACRO_VARS


def test_loans_from_a_frame_take_defaults_for_missing_columns() -> None:
    frame = pd.DataFrame({"balance": [1e5, 2e4], "annual_rate": [0.05, 0.08], "remaining_months": [120, 36],
                          "grade": ["BBB", "B"], "loan_id": ["a", "b"], "unknown_column": [1, 2]})
    loans = EclLoans.from_frame(frame)
    assert loans.n_loans == 2 and loans.loan_id.tolist() == ["a", "b"] and loans.grade.tolist() == ["BBB", "B"]
    assert (loans.days_past_due == 0).all() and (loans.amortization == 0).all()


def _macro(n_months: int = 60) -> np.ndarray:
    macro = np.zeros((3, n_months, len(MACRO_VARS)))
    hist = np.array([0.025, 0.04, 0.02, 0.03, 0.04, 0.01, 0.04, 0.03, 0.02])  # a plain mid-cycle month
    macro[:] = hist
    gdp, spread, hpg = MACRO_VARS.index("gdp_growth"), MACRO_VARS.index("credit_spread_hy"), MACRO_VARS.index("house_price_growth")
    macro[1, :24, gdp], macro[1, :24, spread], macro[1, :24, hpg] = -0.02, 0.08, -0.15
    macro[2, :24, gdp], macro[2, :24, spread], macro[2, :24, hpg] = 0.04, 0.03, 0.06
    return macro


def test_macro_scenarios_drive_pd_and_collateral_lgd() -> None:
    macro = _macro()
    link = ZMacroLink.from_bundled()
    provider = ScenarioMatrixPD.from_macro(link, macro)
    lgd = CollateralLGD.from_macro(np.full(3, 1.2e5), macro, time_to_sale=12)
    loans = EclLoans(balance=np.full(3, 1e5), annual_rate=0.05, remaining_months=120, grade=["BBB", "BB", "B"],
                     origination_grade=["BBB", "BB", "B"])
    res = expected_credit_loss(loans, provider, lgd, ["base", "down", "up"], [0.5, 0.3, 0.2])
    assert (res.lifetime_pd[1] > res.lifetime_pd[0]).all() and (res.lifetime_pd[2] < res.lifetime_pd[0]).all()
    assert (res.ecl_lifetime[1] > res.ecl_lifetime[0]).all()
    lgds = lgd.lgd(loans, np.zeros((1, 3)), np.full((1, 3), 1e5), np.full(3, 0.05))
    assert (lgds[0, 1] > lgds[0, 0]).all()  # house prices fall in the downturn


def test_a_partial_last_period_ends_at_maturity() -> None:
    p = 0.04
    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.0, remaining_months=30, amortization="bullet", eir=0.05)
    res = expected_credit_loss(loans, HazardCurvePD(p), FlatLGD(0.5), settings=EclSettings(period="year", accrued_interest=False),
                               audit=True)
    last = res.audit.iloc[-1]
    assert (last["period"], last["month_start"], last["month_end"]) == (3, 24, 30)
    assert last["marginal_pd"] == pytest.approx((1 - p) ** 2 - (1 - p) ** 2.5, rel=1e-12)
    assert last["tau_years"] == pytest.approx(27 / 12) and last["ead"] == pytest.approx(1e5)
    assert last["discount_factor"] == pytest.approx(1.05 ** (-27 / 12), rel=1e-12)


@pytest.mark.parametrize("measure, stage", [("lifetime", 2), ("annualised", 2), ("12m", 2)])
def test_sicr_measures_compare_matched_horizons(measure: str, stage: int) -> None:
    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.05, remaining_months=60, months_on_book=24)
    s = EclSettings(sicr_pd_measure=measure, sicr_relative=2.0, sicr_absolute=None)
    high = expected_credit_loss(loans, HazardCurvePD(0.05, origination_pd=0.02), FlatLGD(0.4), settings=s)
    low = expected_credit_loss(loans, HazardCurvePD(0.03, origination_pd=0.02), FlatLGD(0.4), settings=s)
    assert high.stage[0] == stage and low.stage[0] == 1
    horizon = 12 if measure == "12m" else 60
    expected_orig = 1 - 0.98 ** (horizon / 12)
    if measure == "annualised":
        expected_orig = 0.02
    assert high.origination_pd[0] == pytest.approx(expected_orig, rel=1e-12)


def test_ttc_origination_pd_is_conditional_on_survival_to_months_on_book() -> None:
    from creditsim.ifrs9 import TTCMatrixPD
    from creditsim.ratings.lifetime import ttc_term_structure

    ttc = load_sp_ratings().matrix_8x8
    loans = EclLoans(balance=np.ones(1), annual_rate=0.05, remaining_months=24, origination_grade=["BB"], months_on_book=36)
    got = TTCMatrixPD(ttc).origination_pd(loans, loans.months_on_book, loans.remaining_months)[0]
    cum = ttc_term_structure(ttc, 5).cumulative[:, 4]
    assert got == pytest.approx((cum[4] - cum[2]) / (1 - cum[2]), abs=2e-3)


def test_loans_from_the_simulation_s_loan_book() -> None:
    from creditsim.loans.book import LoanBook

    book = LoanBook.from_arrays([1e5, 5e4, 2e4], [0.06, 0.04, 0.09], [120, 60, 24], ["annuity", "linear", "bullet"],
                                initial_state=[0, 1, 3], floating=[False, True, False], lgd=[0.3, 0.4, 0.5])
    loans = EclLoans.from_book(book, grade=["BBB", "BB", "B"])
    assert loans.annual_rate == pytest.approx([0.06, 0.04, 0.09]) and loans.rate_type.tolist() == [0, 1, 0]
    res = expected_credit_loss(loans, HazardCurvePD(0.02), FlatLGD(book.lgd))
    assert res.stage.tolist() == [1, 2, 3]
    assert res.ecl[2] == pytest.approx(0.5 * 2e4 * (1 + 0.09 / 12))


@pytest.mark.parametrize("timing", ["start", "mid", "end"])
def test_partial_last_period_exposure_follows_the_ead_timing(timing: str) -> None:
    from creditsim.ifrs9.ecl import contract_balance

    loans = EclLoans(balance=np.array([1e5]), annual_rate=0.06, remaining_months=30)
    res = expected_credit_loss(loans, HazardCurvePD(0.04), FlatLGD(0.5),
                               settings=EclSettings(period="year", ead_timing=timing, accrued_interest=False), audit=True)
    bal = contract_balance(loans, 30)[0]
    want = {"start": [bal[0], bal[12], bal[24]], "mid": [bal[:12].mean(), bal[12:24].mean(), bal[24:30].mean()],
            "end": [bal[11], bal[23], bal[29]]}[timing]
    assert res.audit["ead"].to_numpy() == pytest.approx(want, rel=1e-12)
