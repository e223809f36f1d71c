"""The ECL engine against closed forms derived here, for a level-payment (annuity) loan.

Loan: balance B, coupon c paid monthly at r = c / 12 over n months, so the balance after j payments is
B_j = B (A - (1+r)^j) / (A - 1) with A = (1+r)^n. The EIR of the contractual flows is the effective annual
rate e = (1+r)^12 - 1, so DF(tau months) = (1+e)^(-tau/12) = v^tau with v = 1 / (1+r). Flat annual PD p
gives the monthly hazard h = 1 - (1-p)^(1/12); LGD is flat. EAD of a default on instalment m is the
balance before it plus one month's interest, B_{m-1} (1+r).

Monthly periods, default at the end of month m (tau = m):
    ECL_end = LGD sum_{m=1..N} (1-h)^(m-1) h B_{m-1} (1+r) v^m = LGD h sum_{j<N} (1-h)^j B_j v^j
            = LGD h B / (A-1) [A (1 - x^N) / (1 - x) - (1 - (1-h)^N) / h],   x = (1-h) v,
with N = n for lifetime and N = 12 for the 12-month ECL (A keeps the full term). The start-of-period
convention discounts one month less (x (1+r)), mid-period half a month (x (1+r)^(1/2)).

Annual periods (k = 1..n/12): marginal PD (1-p)^(k-1) p, tau = 12(k-1), 12k-6 or 12k months; EAD at the
start B_{12(k-1)} (1+r), at the end the balance before the year's last instalment B_{12k-1} (1+r), mid the
year's average  (1+r) / 12 sum_{m=a}^{a+11} B_m = (1+r) B / (A-1) [A - (1+r)^a ((1+r)^12 - 1) / (12 r)].
"""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, HazardCurvePD, expected_credit_loss

B, C, N_MONTHS, P, LGD = 100_000.0, 0.06, 60, 0.03, 0.4
R = C / 12.0
A = (1.0 + R) ** N_MONTHS
V = 1.0 / (1.0 + R)
H = 1.0 - (1.0 - P) ** (1.0 / 12.0)
SHIFT = {"end": 1.0, "mid": (1.0 + R) ** 0.5, "start": 1.0 + R}
NO_SICR = dict(sicr_relative=None, sicr_absolute=None, sicr_notches=None)


def _monthly_closed_form(n_periods: int) -> float:
    x = (1.0 - H) * V
    bracket = A * (1.0 - x ** n_periods) / (1.0 - x) - (1.0 - (1.0 - H) ** n_periods) / H
    return LGD * H * B / (A - 1.0) * bracket


def _balance(j: float) -> float:
    return B * (A - (1.0 + R) ** j) / (A - 1.0)


def _annual_closed_form(default_timing: str, ead_timing: str, years: int) -> float:
    total = 0.0
    for k in range(1, years + 1):
        a = 12 * (k - 1)
        ead = {"start": _balance(a), "end": _balance(12 * k - 1),
               "mid": B / (A - 1.0) * (A - (1.0 + R) ** a * ((1.0 + R) ** 12 - 1.0) / (12.0 * R))}[ead_timing]
        tau = {"start": a, "mid": 12 * k - 6, "end": 12 * k}[default_timing]
        total += (1.0 - P) ** (k - 1) * P * LGD * ead * (1.0 + R) * V ** tau
    return total


def _ecl(settings: EclSettings, **loan):
    terms = dict(balance=np.array([B]), annual_rate=C, remaining_months=N_MONTHS)
    terms.update(loan)
    return expected_credit_loss(EclLoans(**terms), HazardCurvePD(P), FlatLGD(LGD), settings=settings)


@pytest.mark.parametrize("timing", ["start", "mid", "end"])
def test_monthly_periods_match_the_annuity_closed_form_for_each_default_timing(timing: str) -> None:
    res = _ecl(EclSettings(period="month", default_timing=timing, ead_timing=timing, **NO_SICR))
    assert res.ecl_lifetime[0, 0] == pytest.approx(_monthly_closed_form(N_MONTHS) * SHIFT[timing], rel=1e-6)
    assert res.ecl_12m[0, 0] == pytest.approx(_monthly_closed_form(12) * SHIFT[timing], rel=1e-6)


@pytest.mark.parametrize("default_timing", ["start", "mid", "end"])
@pytest.mark.parametrize("ead_timing", ["start", "mid", "end"])
def test_annual_periods_match_the_closed_form_and_keep_the_last_year(default_timing: str, ead_timing: str) -> None:
    s = EclSettings(period="year", default_timing=default_timing, ead_timing=ead_timing, **NO_SICR)
    res = expected_credit_loss(EclLoans(balance=np.array([B]), annual_rate=C, remaining_months=N_MONTHS),
                               HazardCurvePD(P), FlatLGD(LGD), settings=s, audit=True)
    assert res.ecl_lifetime[0, 0] == pytest.approx(_annual_closed_form(default_timing, ead_timing, 5), rel=1e-6)
    assert res.ecl_12m[0, 0] == pytest.approx(_annual_closed_form(default_timing, ead_timing, 1), rel=1e-6)
    # the last year carries exposure (never the zero balance after the final payment)
    last = res.audit[res.audit["period"] == 5]
    assert len(last) == 1 and last["ead"].iloc[0] >= _balance(59) * (1.0 + R) - 0.01 > 0


def test_12_month_ecl_is_the_first_year_of_lifetime_and_equals_it_for_a_one_year_loan() -> None:
    s = EclSettings(**NO_SICR)
    long = _ecl(s)
    assert 0 < long.ecl_12m[0, 0] < long.ecl_lifetime[0, 0]
    assert long.stage[0] == 1 and long.ecl[0] == long.ecl_12m[0, 0]
    short = _ecl(s, remaining_months=12)
    assert short.ecl_12m[0, 0] == short.ecl_lifetime[0, 0]
    stage2 = _ecl(s, watch_list=True)
    assert stage2.stage[0] == 2 and stage2.ecl[0] == stage2.ecl_lifetime[0, 0]


@pytest.mark.parametrize("period", ["month", "quarter", "year"])
def test_stage_3_is_lgd_times_exposure_at_the_reporting_date(period: str) -> None:
    res = _ecl(EclSettings(period=period, **NO_SICR), days_past_due=120, undrawn=5_000.0, ccf=0.5)
    ead = B * (1.0 + R) + 0.5 * 5_000.0
    assert res.stage[0] == 3 and res.triggers["default_90dpd"].iloc[0]
    assert res.ecl_12m[0, 0] == pytest.approx(LGD * ead, rel=1e-12)
    assert res.ecl_lifetime[0, 0] == res.ecl_12m[0, 0] == res.ecl[0]
    own = _ecl(EclSettings(period=period, **NO_SICR), defaulted=True, lgd_in_default=0.7)
    assert own.ecl[0] == pytest.approx(0.7 * B * (1.0 + R), rel=1e-12)


def test_monthly_quarterly_and_annual_agree_within_discretisation_error() -> None:
    ecl = {p: _ecl(EclSettings(period=p, **NO_SICR)).ecl_lifetime[0, 0] for p in ("month", "quarter", "year")}
    # mid/mid: the period average of a smooth integrand, error O(step^2): about 0.1 % a year here
    assert abs(ecl["year"] / ecl["month"] - 1.0) < 5e-3
    assert abs(ecl["quarter"] - ecl["month"]) < abs(ecl["year"] - ecl["month"])
    assert abs(ecl["quarter"] / ecl["month"] - 1.0) < 1e-3


def test_eir_by_rate_type_and_the_period_s_own_discount_rate() -> None:
    s = EclSettings(**NO_SICR)
    loans = EclLoans(balance=np.full(3, B), annual_rate=C, remaining_months=N_MONTHS, eir=0.05,
                     current_eir=0.08, credit_adjusted_eir=0.12, rate_type=["fixed", "floating", "fixed"],
                     poci=[False, False, True], poci_initial_ecl=[0.0, 0.0, 1_000.0])
    res = expected_credit_loss(loans, HazardCurvePD(P), FlatLGD(LGD), settings=s, audit=True)
    first = res.audit[res.audit["period"] == 1].set_index("loan_id")["discount_factor"]
    for loan, eir in enumerate((0.05, 0.08, 0.12)):
        assert first[loan] == pytest.approx((1.0 + eir) ** (-0.5 / 12.0), rel=1e-14)
    assert res.ecl[2] == pytest.approx(res.ecl_lifetime[0, 2] - 1_000.0, rel=1e-12)
    nominal = expected_credit_loss(loans, HazardCurvePD(P), FlatLGD(LGD), settings=EclSettings(eir_compounding="monthly", **NO_SICR), audit=True)
    df = nominal.audit[nominal.audit["period"] == 12].set_index("loan_id")["discount_factor"]
    assert df[0] == pytest.approx((1.0 + 0.05 / 12.0) ** -11.5, rel=1e-13)


def test_the_audit_table_adds_up_to_the_ecl() -> None:
    res = expected_credit_loss(EclLoans(balance=np.array([B, 5_000.0]), annual_rate=C, remaining_months=[N_MONTHS, 7],
                                        days_past_due=[0, 95]), HazardCurvePD(P), FlatLGD(LGD),
                               settings=EclSettings(**NO_SICR), audit=True)
    a = res.audit
    assert np.allclose(a.groupby("loan_id")["ecl"].sum().to_numpy(), res.ecl_lifetime[0], rtol=1e-12)
    assert np.allclose(a[a["in_12m"]].groupby("loan_id")["ecl"].sum().to_numpy(), res.ecl_12m[0], rtol=1e-12)
    assert np.allclose(a["ecl"], a["marginal_pd"] * a["lgd"] * a["ead"] * a["discount_factor"], rtol=1e-12)


@pytest.mark.parametrize("lgd", [1.0, 0.4])
def test_pd_lgd_ead_form_equals_the_cash_shortfall_form(lgd: float) -> None:
    """IFRS9.md 6.3: with EAD incl. accrued interest and the loss measured at the default date, the
    PD x LGD x EAD sum equals PV(contractual cash flows) - PV(expected cash flows) at the EIR. Expected
    flows: the instalment P at month m if no default by m, the recovery (1 - LGD) EAD_m at a default in m."""
    res = expected_credit_loss(EclLoans(balance=np.array([B]), annual_rate=C, remaining_months=N_MONTHS),
                               HazardCurvePD(P), FlatLGD(lgd),
                               settings=EclSettings(default_timing="end", ead_timing="end", **NO_SICR))
    m = np.arange(1, N_MONTHS + 1)
    payment = B * R / (1.0 - (1.0 + R) ** -N_MONTHS)
    survive = (1.0 - H) ** m
    default_in = (1.0 - H) ** (m - 1) * H
    ead = np.array([_balance(j) for j in m - 1]) * (1.0 + R)
    contractual = np.sum(payment * V ** m)
    expected = np.sum((survive * payment + default_in * (1.0 - lgd) * ead) * V ** m)
    assert contractual == pytest.approx(B, rel=1e-12)
    assert res.ecl_lifetime[0, 0] == pytest.approx(contractual - expected, rel=1e-9)
