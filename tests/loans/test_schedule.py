"""Amortisation schedules: closed forms, rounding, the four types, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.loans.schedule import amortization_schedule
from creditsim.schema import AMORTIZATION_TYPES
from creditsim.errors import DataError


def _recursive_annuity(balance: float, r: float, n: int) -> tuple[list[float], list[float]]:
    """Textbook loop: constant payment, interest on the running balance (no rounding)."""
    pay = balance / n if r == 0 else balance * r / (1 - (1 + r) ** -n)
    interest, principal = [], []
    for _ in range(n):
        i = balance * r
        interest.append(i)
        principal.append(pay - i)
        balance -= pay - i
    return interest, principal


def test_annuity_matches_textbook_recursion_to_the_cent() -> None:
    sched = amortization_schedule(np.array([250_000.0]), np.array([0.06 / 12]), np.array([360]), np.array(["annuity"]))
    interest, principal = _recursive_annuity(250_000.0, 0.005, 360)
    # payment of a 250k 30y 6 % mortgage: 1498.88 (published amortisation tables)
    assert sched.payment[0, 0] == pytest.approx(1498.88, abs=0.01)
    np.testing.assert_allclose(sched.interest[0], interest, atol=0.011)
    np.testing.assert_allclose(sched.principal[0], principal, atol=0.011)
    assert sched.balance[0, -1] == 0.0
    assert sched.principal[0].sum() == pytest.approx(250_000.0, abs=1e-6)


def test_linear_pays_constant_principal() -> None:
    sched = amortization_schedule(np.array([1200.0]), np.array([0.01]), np.array([12]), np.array(["linear"]))
    np.testing.assert_allclose(sched.principal[0], 100.0, atol=1e-9)
    np.testing.assert_allclose(sched.interest[0], 0.01 * (1200.0 - 100.0 * np.arange(12)), atol=0.005)


def test_bullet_pays_interest_then_all_principal_at_maturity() -> None:
    sched = amortization_schedule(np.array([1_000_000.0]), np.array([0.005]), np.array([24]), np.array(["bullet"]))
    np.testing.assert_allclose(sched.interest[0], 5000.0)
    assert (sched.principal[0, :-1] == 0).all()
    assert sched.principal[0, -1] == 1_000_000.0


def test_interest_only_period_then_annuity() -> None:
    sched = amortization_schedule(np.array([10_000.0]), np.array([0.01]), np.array([12]), np.array(["interest_only"]), io_months=np.array([4]))
    assert (sched.principal[0, :4] == 0).all()
    np.testing.assert_allclose(sched.interest[0, :4], 100.0)
    amort = sched.payment[0, 4:]
    # the last 8 payments are an 8-month annuity of 10,000 at 1 %: 1306.90
    np.testing.assert_allclose(amort, 10_000 * 0.01 / (1 - 1.01**-8), atol=0.02)


def test_zero_rate_annuity_is_linear() -> None:
    sched = amortization_schedule(np.array([900.0]), np.array([0.0]), np.array([9]), np.array(["annuity"]))
    np.testing.assert_allclose(sched.principal[0], 100.0, atol=1e-9)
    assert (sched.interest[0] == 0).all()


def test_truncated_columns_and_padding_after_maturity() -> None:
    sched = amortization_schedule(np.array([100.0, 100.0]), np.array([0.01, 0.01]), np.array([3, 10]), np.array([0, 1]), n_columns=5)
    assert sched.balance.shape == (2, 6)
    assert (sched.balance[0, 3:] == 0).all() and (sched.interest[0, 3:] == 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"balance": np.array([-1.0])}, "balance"),
        ({"monthly_rate": np.array([1.5 / 12])}, "monthly_rate"),
        ({"n_payments": np.array([0])}, "n_payments"),
        ({"amortization": np.array(["balloon"])}, "amortization_type"),
        ({"balance": np.array([1.0, 2.0])}, "equal length"),
    ],
)
def test_bad_schedule_inputs_raise_data_error(kwargs: dict, match: str) -> None:
    args = {"balance": np.array([100.0]), "monthly_rate": np.array([0.01]), "n_payments": np.array([12]), "amortization": np.array(["annuity"])}
    args.update(kwargs)
    with pytest.raises(DataError, match=match):
        amortization_schedule(**args)


@settings(max_examples=50, deadline=None)
@given(
    balance=st.floats(100.0, 5e7),
    annual=st.floats(0.0, 1.0),
    n=st.integers(1, 360),
    amort=st.sampled_from(AMORTIZATION_TYPES),
    io=st.integers(0, 360),
)
def test_schedule_invariants(balance: float, annual: float, n: int, amort: str, io: int) -> None:
    sched = amortization_schedule(np.array([balance]), np.array([annual / 12]), np.array([n]), np.array([amort]), io_months=np.array([io]))
    bal = sched.balance[0]
    assert bal[n] == 0.0
    assert (np.diff(bal) <= 1e-9).all(), "balances never increase"
    assert sched.principal[0].sum() == pytest.approx(balance, rel=1e-12, abs=1e-6)
    cents = sched.interest[0] * 100
    np.testing.assert_allclose(cents, np.round(cents), atol=1e-6)
    # interest is the monthly rate on the previous balance, to the cent
    np.testing.assert_allclose(sched.interest[0], annual / 12 * bal[:-1], atol=0.0051)


def test_non_integer_or_non_numeric_payment_counts_are_refused_not_truncated() -> None:
    with pytest.raises(DataError, match=r"n_payments must be whole numbers.*rows \[1\].*12\.5"):
        amortization_schedule(np.array([1000.0, 2000.0]), np.array([0.01, 0.01]), np.array([12.0, 12.5]), np.array([0, 0]))
    with pytest.raises(DataError, match="io_months must be whole numbers"):
        amortization_schedule(np.array([1000.0]), np.array([0.01]), np.array([12]), np.array([2]), io_months=np.array([2.5]))
    with pytest.raises(DataError, match="balance must be numbers"):
        amortization_schedule(np.array(["abc"]), np.array([0.01]), np.array([12]), np.array([0]))
    # whole numbers given as floats are fine and equal the integer schedule
    a = amortization_schedule(np.array([1000.0]), np.array([0.01]), np.array([12.0]), np.array([0]))
    b = amortization_schedule(np.array([1000.0]), np.array([0.01]), np.array([12]), np.array([0]))
    np.testing.assert_array_equal(a.balance, b.balance)
