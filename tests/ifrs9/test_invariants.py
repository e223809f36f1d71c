"""Hypothesis invariants: lifetime and 12-month ECL are monotone in PD, LGD, exposure and term; zero PD
gives exactly zero ECL; ECL never exceeds the undiscounted exposure."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, HazardCurvePD, expected_credit_loss

SETTINGS = EclSettings(sicr_relative=None, sicr_absolute=None, sicr_notches=None)
pds = st.floats(0.0, 0.6)
lgds = st.floats(0.0, 1.0)
terms = st.integers(1, 480)
periods = st.sampled_from(["month", "quarter", "year"])
timings = st.sampled_from(["start", "mid", "end"])
amort = st.sampled_from(["annuity", "linear", "bullet", "interest_only"])


def _ecl(pd_: float, lgd: float, balance: float, term: int, period: str = "month", timing: str = "mid",
         amortization: str = "annuity", cpr: float = 0.05) -> tuple[float, float]:
    s = EclSettings(period=period, default_timing=timing, ead_timing=timing, sicr_relative=None, sicr_absolute=None,
                    sicr_notches=None)
    loans = EclLoans(balance=np.array([balance]), annual_rate=0.05, remaining_months=term, amortization=amortization,
                     io_months=12, prepayment_cpr=cpr)
    res = expected_credit_loss(loans, HazardCurvePD(pd_), FlatLGD(lgd), settings=s)
    return float(res.ecl_12m[0, 0]), float(res.ecl_lifetime[0, 0])


@given(pds, pds, lgds, terms, periods, timings, amort)
def test_ecl_is_monotone_in_pd(p1, p2, lgd, term, period, timing, am) -> None:
    lo, hi = sorted((p1, p2))
    a, b = _ecl(lo, lgd, 1e5, term, period, timing, am), _ecl(hi, lgd, 1e5, term, period, timing, am)
    assert b[0] >= a[0] and b[1] >= a[1]


@given(pds, lgds, lgds, terms, periods)
def test_ecl_is_monotone_in_lgd(p, l1, l2, term, period) -> None:
    lo, hi = sorted((l1, l2))
    a, b = _ecl(p, lo, 1e5, term, period), _ecl(p, hi, 1e5, term, period)
    assert b[0] >= a[0] and b[1] >= a[1]


@given(pds, lgds, st.floats(100.0, 1e7), st.floats(100.0, 1e7), terms, amort)
def test_ecl_is_monotone_in_exposure(p, lgd, e1, e2, term, am) -> None:
    lo, hi = sorted((round(e1, 2), round(e2, 2)))
    a, b = _ecl(p, lgd, lo, term, amortization=am), _ecl(p, lgd, hi, term, amortization=am)
    assert b[0] >= a[0] and b[1] >= a[1]


@given(st.floats(0.001, 0.6), st.floats(0.01, 1.0), terms, terms, periods, timings)
def test_lifetime_ecl_is_monotone_in_term(p, lgd, t1, t2, period, timing) -> None:
    lo, hi = sorted((t1, t2))
    a, b = _ecl(p, lgd, 1e5, lo, period, timing), _ecl(p, lgd, 1e5, hi, period, timing)
    assert b[1] >= a[1] * (1 - 1e-12)


@given(lgds, terms, periods, timings, amort)
def test_zero_pd_gives_zero_ecl(lgd, term, period, timing, am) -> None:
    assert _ecl(0.0, lgd, 1e5, term, period, timing, am) == (0.0, 0.0)


@given(pds, lgds, terms, periods, timings, amort)
def test_ecl_is_bounded_by_lgd_times_the_largest_exposure(p, lgd, term, period, timing, am) -> None:
    e12, life = _ecl(p, lgd, 1e5, term, period, timing, am)
    assert 0.0 <= e12 <= life <= lgd * 1e5 * (1 + 0.05 / 12) + 1e-9
