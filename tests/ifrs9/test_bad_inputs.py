"""Bad input is a one-line ConfigError / DataError naming the field, the value and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, DataError
from creditsim.ifrs9 import (CollateralLGD, EclLoans, EclSettings, FlatLGD, HazardCurvePD, ScenarioMatrixPD, TTCMatrixPD,
                             expected_credit_loss)


def _one_line(exc: pytest.ExceptionInfo, *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("kw, words", [
    ({"period": "week"}, ("EclSettings.period", "'week'", "'month'")),
    ({"default_timing": "middle"}, ("EclSettings.default_timing", "'middle'")),
    ({"eir_compounding": "daily"}, ("EclSettings.eir_compounding",)),
    ({"staging": "mixed"}, ("EclSettings.staging",)),
    ({"sicr_relative": 0.5}, ("EclSettings.sicr_relative", "0.5", ">= 1")),
    ({"sicr_absolute": -0.01}, ("EclSettings.sicr_absolute",)),
    ({"sicr_absolute": float("nan")}, ("EclSettings.sicr_absolute",)),
    ({"sicr_notches": 0}, ("EclSettings.sicr_notches", "1..20")),
    ({"probation_months": 2.5}, ("EclSettings.probation_months",)),
    ({"rs_horizon_months": True}, ("EclSettings.rs_horizon_months",)),
    ({"accrued_interest": "yes"}, ("EclSettings.accrued_interest",)),
    ({"reversion": "linear", "reversion_months": 0}, ("EclSettings.reversion_months",)),
])
def test_bad_settings(kw, words) -> None:
    with pytest.raises(ConfigError) as exc:
        EclSettings(**kw)
    _one_line(exc, *words)


@pytest.mark.parametrize("kw, words", [
    ({"balance": [-1.0, 5.0]}, ("EclLoans.balance", "[0]")),
    ({"balance": [0.0, 5.0]}, ("EclLoans.balance", "no drawn or undrawn exposure")),
    ({"remaining_months": [0, 12]}, ("EclLoans.remaining_months", "1..1200")),
    ({"remaining_months": [6.5, 12]}, ("EclLoans.remaining_months", "whole")),
    ({"annual_rate": [0.05, np.nan]}, ("EclLoans.annual_rate", "[1]")),
    ({"ccf": 1.5}, ("EclLoans.ccf",)),
    ({"annual_rate": ["x", "y"]}, ("EclLoans.annual_rate", "numbers")),
    ({"amortization": "balloon"}, ("amortization_type", "balloon")),
    ({"rate_type": "variable"}, ("EclLoans.rate_type", "'fixed' or 'floating'")),
    ({"poci": True}, ("EclLoans.credit_adjusted_eir", "POCI")),
    ({"days_past_due": [-3, 0]}, ("EclLoans.days_past_due",)),
    ({"grade": ["BB", "BB", "BB"]}, ("EclLoans.grade", "expected 2 values")),
])
def test_bad_loans(kw, words) -> None:
    terms = dict(balance=[100.0, 5.0], annual_rate=0.05, remaining_months=12)
    terms.update(kw)
    with pytest.raises(DataError) as exc:
        EclLoans(**{k: np.asarray(v) if isinstance(v, list) else v for k, v in terms.items()})
    _one_line(exc, *words)


def _loans(**kw) -> EclLoans:
    return EclLoans(balance=np.array([100.0, 50.0]), annual_rate=0.05, remaining_months=12, **kw)


def test_bad_run_arguments() -> None:
    pd_, lgd = HazardCurvePD(0.02), FlatLGD(0.4)
    cases = [
        (lambda: expected_credit_loss(_loans(), pd_, lgd, ["a", "b"], [0.6, 0.6]), ConfigError, ("sum to 1",)),
        (lambda: expected_credit_loss(_loans(), pd_, lgd, ["a", "b"], [1.0]), ConfigError, ("one weight per scenario",)),
        (lambda: expected_credit_loss(_loans(), HazardCurvePD([[0.01], [0.02]]), lgd, ["a", "b", "c"], [0.2, 0.3, 0.5]),
         ConfigError, ("pd_provider has 2 scenarios", "1 or 3")),
        (lambda: expected_credit_loss(_loans(), pd_, lgd, chunk_size=0), ConfigError, ("chunk_size",)),
        (lambda: expected_credit_loss(_loans(), pd_, 0.4), ConfigError, ("lgd_provider",)),
        (lambda: expected_credit_loss(_loans(), pd_, lgd, settings={"period": "year"}), ConfigError, ("settings",)),
        (lambda: expected_credit_loss(_loans(), TTCMatrixPD(load_sp_ratings().matrix_8x8), lgd), DataError, ("EclLoans.grade", "required")),
        (lambda: expected_credit_loss(_loans(grade=["BB", "D"]), TTCMatrixPD(load_sp_ratings().matrix_8x8), lgd,
                                      settings=EclSettings(sicr_relative=None, sicr_absolute=None)), DataError, ("EclLoans.grade", "[1]")),
        (lambda: expected_credit_loss(_loans(grade=["BB", "B"]), TTCMatrixPD(load_sp_ratings().matrix_8x8), lgd),
         DataError, ("origination_grade",)),
        (lambda: HazardCurvePD(1.5), DataError, ("annual_pd", "[0, 1]")),
        (lambda: FlatLGD([0.2, -0.1]), DataError, ("lgd",)),
        (lambda: CollateralLGD(1e5, np.ones((1, 10)), haircut=0.8, sale_cost=0.3), ConfigError, ("haircut + sale_cost",)),
        (lambda: CollateralLGD(1e5, np.ones((1, 10)), time_to_sale=-1), ConfigError, ("time_to_sale",)),
        (lambda: ScenarioMatrixPD(np.ones((2, 3, 7, 7)) / 7, load_sp_ratings().matrix_8x8), DataError, ("(S, Y, 8, 8)",)),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind) as exc:
            call()
        _one_line(exc, *words)
