"""The Markov-mixture term structure as the rated loans' default hazard in the simulation
(creditsim.ratings.term_structure.scenario_default_hazard, RunConfig.rating_pd)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.datasets import load_fed_scenarios, load_sp_ratings
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.ratings.lifetime import ZMacroLink, monthly_scenario_matrices
from creditsim.ratings.term_structure import MarkovMixtureTermStructure, scenario_default_hazard
from creditsim.risk.config import RunConfig
from creditsim.risk.pool_engine import rating_default_hazard
from creditsim.states import MACRO_VARS

T = 60


@pytest.fixture(scope="module")
def link() -> ZMacroLink:
    return ZMacroLink.from_bundled()


@pytest.fixture(scope="module")
def paths() -> np.ndarray:
    def fed(name: str) -> np.ndarray:
        x = load_fed_scenarios(2025, name, monthly=True)[list(MACRO_VARS)].to_numpy()
        return np.concatenate([x, np.repeat(x[-1:], T - len(x), axis=0)])[:T]
    return np.stack([fed("baseline"), fed("severely_adverse")])


def _survival(hazard: np.ndarray) -> np.ndarray:
    return np.cumprod(1.0 - hazard, axis=-1)


def test_one_type_of_speed_one_is_the_runs_rating_chain(link, paths) -> None:
    one = MarkovMixtureTermStructure.from_params(load_sp_ratings().matrix_8x8, [1.0], [1.0])
    chain = rating_default_hazard(monthly_scenario_matrices(paths, link))
    np.testing.assert_allclose(scenario_default_hazard(one, paths, link), chain, rtol=0, atol=1e-10)


def test_the_grade_survives_as_the_weighted_mix_of_its_types(link, paths) -> None:
    ttc = load_sp_ratings().matrix_8x8
    w, s = np.array([0.3, 0.7]), np.array([0.4, 2.5])
    mix = MarkovMixtureTermStructure.from_params(ttc, w, s)
    slow = MarkovMixtureTermStructure.from_params(ttc, [1.0], [s[0]])
    fast = MarkovMixtureTermStructure.from_params(ttc, [1.0], [s[1]])
    expected = w[0] * _survival(scenario_default_hazard(slow, paths, link)) + \
        w[1] * _survival(scenario_default_hazard(fast, paths, link))
    np.testing.assert_allclose(_survival(scenario_default_hazard(mix, paths, link)), expected, rtol=1e-10, atol=1e-14)


def test_the_fitted_mixture_moves_lifetime_pd_the_way_the_published_table_does(link, paths, sp_term_structure) -> None:
    """Against the Markov chain on the same Z paths: lower 5-year PD for B and CCC (the chain runs
    1.5-1.9x the published curve there), higher for AAA on the baseline path (measured: 0.31 % vs 0.24 %;
    under the severely adverse path the chain's AAA runs to 1.33 %, the mixture's to 0.82 %); the
    severely adverse path still above the baseline for every grade."""
    chain = 1.0 - _survival(rating_default_hazard(monthly_scenario_matrices(paths, link)))[..., -1]  # (2, 7)
    mixture = 1.0 - _survival(scenario_default_hazard(sp_term_structure, paths, link))[..., -1]
    aaa, b, ccc = 0, 5, 6
    assert (mixture[:, b] < 0.85 * chain[:, b]).all() and (mixture[:, ccc] < 0.85 * chain[:, ccc]).all()
    assert mixture[0, aaa] > chain[0, aaa]
    assert (mixture[1] > mixture[0]).all()


def test_simulate_takes_the_mixture_for_rated_loans(sp_term_structure) -> None:
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    rated = tape[tape["rating"].notna()].head(120) if "rating" in tape else tape.head(0)
    assert len(rated) >= 50
    kw = dict(n_simulations=16, macro="synthetic", seed=3, horizon=24, progress=False)
    chain = cs.simulate(rated, example_path("example_clo.yaml"), **kw)
    mixture = cs.simulate(rated, example_path("example_clo.yaml"), rating_pd="mixture", **kw)
    assert mixture.settings["rating_pd"] == "mixture" and chain.settings["rating_pd"] == "markov"
    assert "mixture of Z-conditional rating chains" in mixture.settings["transition_model"]
    assert not np.allclose(mixture.portfolio_losses, chain.portfolio_losses)
    # the mixture's hazards are per path: the same numbers whatever the chunking
    rechunked = cs.simulate(rated, example_path("example_clo.yaml"), rating_pd="mixture", chunk_size=5, **kw)
    np.testing.assert_array_equal(rechunked.portfolio_losses, mixture.portfolio_losses)
    with pytest.raises(ConfigError, match="rating_pd must be one of"):
        RunConfig(rating_pd="copula")


def test_a_deep_stress_year_keeps_hazards_finite_and_higher(link, paths, sp_term_structure) -> None:
    """A path far beyond the supervisory one (the monthly matrices of such a year had no real log, which
    broke an earlier version): hazards stay in [0, 1] and above the severely adverse path's."""
    deep = paths[1:].copy()
    for var, value in (("unemployment_rate", 0.16), ("credit_spread_hy", 0.20), ("gdp_growth", -0.10)):
        deep[..., MACRO_VARS.index(var)] = value
    h = scenario_default_hazard(sp_term_structure, np.concatenate([paths, deep]), link)
    assert np.isfinite(h).all() and (h >= 0).all() and (h <= 1).all()
    survival = _survival(h)[..., -1]
    assert (survival[2] <= survival[1] + 1e-12).all() and survival[2, 6] < survival[1, 6]
