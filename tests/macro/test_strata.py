"""Label-stratified filtering (creditsim.macro.strata; issue 12, item 3): when the conditions pick the dynamics
label, each label's block of particles estimates its evidence, the label posterior matches a closed form and
the filter's ESS no longer collapses on the label."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from creditsim.macro.strata import LabelStrata, ess_fractions, resample_within
from creditsim.macro.vae import ConditionRangeWarning

from .test_vae import _linear_gaussian_model

A = np.array([[0.9, 0.05], [0.1, 0.8]])
C = np.array([0.05, -0.02])
SIGMA, RHO, X0 = 0.5, 0.6, np.array([0.2, -0.1])
DRIFTS = np.array([[0.0, 0.0], [0.25, -0.1]])  # label 1 drifts gdp up
FREQ = (0.7, 0.3)
Y = {3: 1.6, 6: 2.4}  # gdp anchors far above label 0's path


def _evidence(drift: np.ndarray) -> float:
    """p(x_0 = X0, gdp_3, gdp_6 | label) of the linear model, in closed form."""
    Q = (SIGMA * np.array([[1.0, 0.0], [RHO, 1.0]])) @ (SIGMA * np.array([[1.0, 0.0], [RHO, 1.0]])).T
    step = C + drift
    month0 = multivariate_normal(step, Q).pdf(X0)  # month 0 follows x = 0: mean c + d_s
    mean, means, covs = X0.copy(), {}, {}
    for t in range(1, 7):
        mean = A @ mean + step
        means[t] = mean.copy()

    def cov(s: int, t: int) -> np.ndarray:
        return sum(np.linalg.matrix_power(A, s - i) @ Q @ np.linalg.matrix_power(A, t - i).T for i in range(1, min(s, t) + 1))
    months = sorted(Y)
    mu = np.array([means[m][0] for m in months])
    S = np.array([[cov(m, n)[0, 0] for n in months] for m in months])
    return month0 * multivariate_normal(mu, S).pdf([Y[m] for m in months])


def _draw(seed: int, n: int = 1000):
    model = _linear_gaussian_model(A, C, SIGMA, RHO, drifts=DRIFTS, freq=FREQ)
    conditions = {"gdp_growth": [{"month": 0, "value": X0[0]}] + [{"month": m, "value": v} for m, v in Y.items()],
                  "inflation_rate": [{"month": 0, "value": X0[1]}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)
        paths = model.generate_conditional(conditions, seq_length=8, n_samples=n, seed=seed, scenario=None,
                                           start="model", n_particles=4 * n).double().numpy()
    return model, paths


@pytest.mark.parametrize("seed", [0, 1])
def test_label_posterior_matches_the_closed_form_and_the_sample_stays_alive(seed: int):
    joint = np.array([f * _evidence(d) for f, d in zip(FREQ, DRIFTS)])
    exact = joint / joint.sum()
    assert 0.6 < exact[1] < 0.95  # the anchors overturn the prior (0.3), but not completely
    model, paths = _draw(seed)
    assert abs(model.last_label_posterior[1] - exact[1]) < 0.02, (model.last_label_posterior, exact)
    share = float(np.mean(model.last_scenarios == 1))
    assert abs(share - exact[1]) < 0.05, (share, exact)
    assert model.last_ess > 0.5  # labels drawn by evidence: no collapse on the label
    np.testing.assert_allclose(paths[:, 3, 0], Y[3], atol=1e-6)
    np.testing.assert_allclose(paths[:, 6, 0], Y[6], atol=1e-6)
    # the paths' label decides their drift: label-1 paths sit higher between the anchors
    assert paths[model.last_scenarios == 1, 7, 0].mean() > paths[model.last_scenarios == 0, 7, 0].mean()


def test_a_given_label_is_not_stratified():
    model = _linear_gaussian_model(A, C, SIGMA, RHO, drifts=DRIFTS, freq=FREQ)
    model.generate_conditional({"gdp_growth": [{"month": 0, "value": 0.2}, {"month": 3, "value": 1.0}]},
                               seq_length=5, n_samples=50, seed=0, scenario=1, start="model")
    assert model.last_label_posterior is None and (model.last_scenarios == 1).all()


def test_block_helpers_on_hand_worked_weights():
    log_w = torch.log(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(ess_fractions(log_w, 4).numpy(), [1.0, 0.25])
    idx = resample_within(log_w, 4, torch.Generator().manual_seed(0))
    assert sorted(idx[:4].tolist()) == [0, 1, 2, 3] and idx[4:].tolist() == [4, 4, 4, 4]
    dead = torch.full((4,), -torch.inf, dtype=torch.float64)
    assert ess_fractions(dead, 4).item() == 0.0 and sorted(resample_within(dead, 4, torch.Generator()).tolist()) == [0, 1, 2, 3]
    strata = LabelStrata(torch.tensor([0, 2]), torch.tensor([0.25, 0.75]), 4)
    assert strata.particle_labels.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    w = torch.log(torch.tensor([2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    idx = strata.resample(5, w, torch.Generator().manual_seed(1), every=True, threshold=None)
    assert idx is not None and (w == 0).all()  # both blocks resampled, their weights reset
    np.testing.assert_allclose(strata.log_z.numpy(), np.log([2.0, 1.0]))
    np.testing.assert_allclose(strata.posterior(w).numpy(), [0.5 / 1.25, 0.75 / 1.25])  # 0.25 * 2 : 0.75 * 1
    assert strata.resample(6, w, torch.Generator(), every=False, threshold=0.5) is None  # flat: nothing to do


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_resampling_stays_within_each_block(n_blocks: int, size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    log_w = torch.randn(n_blocks * size, generator=g, dtype=torch.float64) * 3
    log_w[torch.rand(n_blocks * size, generator=g) < 0.2] = -torch.inf
    idx = resample_within(log_w, size, g)
    block = torch.arange(n_blocks * size) // size
    assert torch.equal(idx // size, block)
    alive = ~torch.isneginf(log_w.view(-1, size)).all(1)
    assert not torch.isneginf(log_w[idx]).view(-1, size)[alive].any()  # never a zero-weight particle of a live block


def test_degeneracy_warning_counts_particles_per_label():
    """Absurd conditions still degenerate inside the label the evidence picks; the warning then counts the
    label's block (510 particles here), not all four blocks."""
    from creditsim.macro.vae import MacroVAE

    model = MacroVAE.from_pretrained()
    conditions = {"unemployment_rate": [{"month": 1, "value": 0.30}, {"month": 2, "value": 0.01}, {"month": 3, "value": 0.3}],
                  "policy_rate": [{"month": 1, "value": 0.15}, {"month": 2, "value": 0.0}]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.generate_conditional(conditions, seq_length=6, n_samples=20, seed=0, start="model", scenario=None)
    low = [str(w.message) for w in caught if "effective sample size" in str(w.message)]
    assert len(low) == 1 and "of the 510 particles per dynamics label" in low[0], low
    assert model.last_ess < 0.01 and model.last_label_posterior.sum() == pytest.approx(1.0)
