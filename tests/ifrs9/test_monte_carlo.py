"""Analytic ECL = mean of a loan-level Monte Carlo of rating migrations, prepayments and defaults,
each default's loss LGD x EAD discounted to the reporting date the same way (monthly periods, default
at the end of the month, prepayment competing: a loan that defaults in month m has neither defaulted
nor prepaid before m). Within 3 standard errors, per loan and scenario."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.ifrs9 import EclLoans, EclSettings, FlatLGD, ScenarioMatrixPD, TTCMatrixPD, expected_credit_loss
from creditsim.ifrs9.pd import reversion_weights

SETTINGS = EclSettings(period="month", default_timing="end", ead_timing="end", sicr_relative=None,
                       sicr_absolute=None, sicr_notches=None, rs_horizon_months=24, reversion="linear", reversion_months=12)
LGD, CPR, RATE, TERM = 0.45, 0.10, 0.07, 84
N_PATHS = 20_000


def _loans() -> EclLoans:
    return EclLoans(balance=np.array([250_000.0, 80_000.0, 40_000.0]), annual_rate=RATE, remaining_months=TERM,
                    amortization=["annuity", "linear", "bullet"], grade=["BB", "B", "CCC"], prepayment_cpr=CPR)


def _simulate(monthly: np.ndarray, loans: EclLoans, rng: np.random.Generator) -> np.ndarray:
    """``(3, N_PATHS)`` discounted losses; ``monthly`` ``(TERM, K, K)`` matrices month by month."""
    r = RATE / 12.0
    eir = (1.0 + r) ** 12 - 1.0
    smm = 1.0 - (1.0 - CPR) ** (1.0 / 12.0)
    k = monthly.shape[-1]
    grade = {"BB": 4, "B": 5, "CCC": 6}
    from creditsim.loans.schedule import amortization_schedule
    bal = amortization_schedule(loans.balance, np.full(3, r), np.full(3, TERM), loans.amortization).balance
    out = np.zeros((3, N_PATHS))
    for i, g in enumerate(("BB", "B", "CCC")):
        state = np.full(N_PATHS, grade[g])
        alive = np.ones(N_PATHS, dtype=bool)
        for m in range(1, TERM + 1):
            cum = np.cumsum(monthly[m - 1], axis=1)[state]
            state = np.minimum((rng.random(N_PATHS)[:, None] > cum).sum(axis=1), k - 1)
            default = alive & (state == k - 1)
            out[i, default] = LGD * bal[i, m - 1] * (1.0 + r) * (1.0 + eir) ** (-m / 12.0)
            alive &= ~default
            alive &= ~(rng.random(N_PATHS) < smm)
    return out


def _check(analytic: np.ndarray, losses: np.ndarray) -> None:
    mean = losses.mean(axis=1)
    se = losses.std(axis=1, ddof=1) / np.sqrt(losses.shape[1])
    assert (se > 0).all()
    assert (np.abs(analytic - mean) < 3.0 * se).all(), (analytic, mean, se)


def test_ttc_matrix_ecl_equals_the_monte_carlo_mean() -> None:
    ttc = load_sp_ratings().matrix_8x8
    provider = TTCMatrixPD(ttc)
    loans = _loans()
    res = expected_credit_loss(loans, provider, FlatLGD(LGD), settings=SETTINGS)
    monthly = np.broadcast_to(provider.ttc_monthly, (TERM,) + provider.ttc_monthly.shape)
    _check(res.ecl_lifetime[0], _simulate(monthly, loans, np.random.default_rng(16)))


@pytest.mark.parametrize("scenario", [0, 2])
def test_z_path_scenario_ecl_equals_the_monte_carlo_mean(scenario: int) -> None:
    ttc = load_sp_ratings().matrix_8x8
    z = np.array([[0.5] * 7, [-0.5] * 7, [-1.5, -1.0] + [0.0] * 5])
    provider = ScenarioMatrixPD.from_z_paths(ttc, z, rho=0.06)
    loans = _loans()
    res = expected_credit_loss(loans, provider, FlatLGD(LGD), scenarios=["up", "base", "down"],
                               weights=[0.25, 0.5, 0.25], settings=SETTINGS)
    # the monthly matrices the engine should use: scenario for 24 months, blended to TTC over 12
    w = reversion_weights(TERM, provider.monthly.shape[1], SETTINGS)[:, None, None]
    seq = w * provider.monthly[scenario, :TERM] + (1.0 - w) * provider.ttc_monthly
    _check(res.ecl_lifetime[scenario], _simulate(seq, loans, np.random.default_rng(160 + scenario)))
    # weighting outcomes: the weighted ECL is the weighted sum of scenario ECLs (all stage 1 here)
    assert np.allclose(res.ecl, (res.weights[:, None] * res.ecl_by_scenario).sum(axis=0), rtol=1e-14)
