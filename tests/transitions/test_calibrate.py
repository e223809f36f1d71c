"""Overlay sensitivities from a credit link: the chain reproduces the link's stress multiple."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.datasets import load_fed_scenarios
from creditsim.errors import ConfigError, DataError
from creditsim.macro.credit_link import CreditLink
from creditsim.states import MACRO_VARS, LoanState
from creditsim.transitions.calibrate import CURE_SHARE, DEFAULT_SHARE, calibrate_overlay, worst_year_pd
from creditsim.transitions.markov import DEFAULT_MACRO_STD, MarkovTransitionModel, base_case_matrix

LINK = CreditLink(name="test", variables=("unemployment_rate", "credit_spread_hy", "policy_rate"), intercept=-0.12,
                  persistence=0.9, coef=(0.02, 0.015, 0.01), se=(0.0, 0.0, 0.0), resid_sd=0.02,
                  mean=(0.06, 0.05, 0.04), sd=(0.016, 0.025, 0.035), sample=("", ""), n_obs=0)


def _fed(name: str) -> np.ndarray:
    return load_fed_scenarios(2025, name, monthly=True)[list(MACRO_VARS)].to_numpy()


def test_worst_year_pd_of_a_constant_chain_is_the_twelfth_power() -> None:
    p = base_case_matrix("consumer")
    want = np.linalg.matrix_power(p, 12)[LoanState.CURRENT, LoanState.DEFAULT]
    assert worst_year_pd(np.repeat(p[None], 20, axis=0)) == pytest.approx(want, rel=1e-12)
    with pytest.raises(DataError, match="a year needs 12"):
        worst_year_pd(np.repeat(p[None], 11, axis=0))


def test_the_calibrated_chain_has_the_links_stress_multiple_and_the_links_variable_mix() -> None:
    severe, base = _fed("severely_adverse"), _fed("baseline")
    cal = calibrate_overlay(LINK, base_case_matrix("corporate"), "corporate", severe, base, start_rate=0.02)
    rates = LINK.project(np.stack([severe, base]), 0.02)
    peak = [np.convolve(r, np.ones(4) / 4, mode="valid").max() for r in rates]
    assert cal.link_ratio == pytest.approx(peak[0] / peak[1], rel=1e-12)
    assert cal.chain_ratio == pytest.approx(cal.link_ratio, rel=1e-6)
    model = MarkovTransitionModel.from_matrix(base_case_matrix("corporate"), sensitivities=cal.sensitivities)
    mats = model.scenario_matrices(np.stack([severe, base]))
    assert worst_year_pd(mats[0]) / worst_year_pd(mats[1]) == pytest.approx(cal.link_ratio, rel=1e-6)
    onset = cal.sensitivities["delinquency"]
    lr = LINK.long_run()
    for v, sd in zip(LINK.variables, LINK.sd):  # per-variable ratios are the link's, in overlay units
        assert onset[v] == pytest.approx(cal.kappa * lr[v] * DEFAULT_MACRO_STD[v] / sd, rel=1e-12)
        assert cal.sensitivities["default"][v] == pytest.approx(DEFAULT_SHARE * onset[v], rel=1e-12)
        assert cal.sensitivities["cure"][v] == pytest.approx(CURE_SHARE * onset[v], rel=1e-12)
    assert 0.5 < DEFAULT_SHARE < 0.8 and -0.6 < CURE_SHARE < -0.4


def test_a_link_without_a_stress_multiple_is_refused() -> None:
    flat = CreditLink(**{**LINK.__dict__, "coef": (0.0, 0.0, 0.0)})
    with pytest.raises(ConfigError, match="no stress multiple"):
        calibrate_overlay(flat, base_case_matrix("corporate"), "corporate", _fed("severely_adverse"), _fed("baseline"), 0.02)
    with pytest.raises(DataError, match="T >= 12"):
        calibrate_overlay(LINK, base_case_matrix("corporate"), "corporate", np.zeros((6, 9)), np.zeros((6, 9)), 0.02)
