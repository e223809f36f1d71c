"""Rejuvenation of conditioned macro paths (creditsim.macro.rejuvenation; issue 12, item 3): pCN Metropolis
moves keep the conditional law exact -- checked against closed forms -- and separate paths that the particle
filter's resamplings made copies of one another."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from creditsim.errors import ConfigError
from creditsim.macro.rejuvenation import Chains, pcn_sweeps
from creditsim.macro.vae import ConditionRangeWarning, MacroVAE

from .test_vae import _bridge_moments, _linear_gaussian_model


def _tilted_rollout(a_z: float, a_noise: float):
    """rollout for the target N(u; 0, I) exp(a . u) = N(a, I): 'path' = the noise itself."""
    def rollout(z: torch.Tensor, noise: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_w = a_z * z.double().sum(-1) + a_noise * noise.double().sum((1, 2))
        return noise.clone(), log_w
    return rollout


def test_pcn_sweeps_leave_a_closed_form_target_invariant_and_spread_copies():
    """Target N(a, I) in (z, noise): chains started at exact draws stay N(a, I); chains started as 20 copies
    of each of 100 draws (a degenerate filter's output) end with every chain distinct and the same law."""
    g = torch.Generator().manual_seed(0)
    B, a_z, a_n = 2000, 0.8, -0.5
    z = a_z + torch.randn(B, 1, generator=g)
    noise = a_n + torch.randn(B, 3, 2, generator=g)
    rollout = _tilted_rollout(a_z, a_n)

    def start(zs, ns):
        labels = torch.zeros(zs.shape[0], dtype=torch.long)
        path, log_w = rollout(zs, ns, labels)
        return Chains(zs, ns, path, log_w, labels)

    out, report = pcn_sweeps(start(z, noise), rollout, 40, g)
    u = torch.cat([out.z, out.noise.flatten(1)], 1).double().numpy()
    target = np.array([a_z] + [a_n] * 6)
    assert np.abs(u.mean(0) - target).max() < 4 / np.sqrt(B)
    assert np.abs(u.var(0) - 1).max() < 0.12
    assert 0.15 < np.mean(report.acceptance[10:]) < 0.5  # adapted towards the target acceptance
    copies = torch.arange(B) // 20  # 100 ancestors
    out, report = pcn_sweeps(start(z[copies], noise[copies]), rollout, 40, g)
    u = torch.cat([out.z, out.noise.flatten(1)], 1).double().numpy()
    assert len(np.unique(u, axis=0)) == B and report.moved > 0.99
    assert np.abs(u.mean(0) - target).max() < 4 / np.sqrt(100)
    # a chain whose rollout fails (non-finite weight) never moves there
    def broken(zs, ns, labels):
        path, log_w = rollout(zs, ns, labels)
        return path, torch.full_like(log_w, float("nan"))
    stuck, report = pcn_sweeps(start(z[:50], noise[:50]), broken, 5, g)
    assert torch.equal(stuck.z, z[:50]) and report.moved == 0.0


A = np.array([[0.9, 0.05], [0.1, 0.8]])
C = np.array([0.05, -0.02])
SIGMA, RHO, X0, T = 0.5, 0.6, np.array([0.2, -0.1]), 16
QUARTERS = list(range(3, T, 3))
VALUES = {m: 2.5 * np.sin(m / 3) + 1.0 for m in QUARTERS}  # a free variable's path through the tail
ANCHORS = {(m, 0): VALUES[m] for m in QUARTERS}
CONDITIONS = {"gdp_growth": [{"month": 0, "value": 0.2}] + [{"month": m, "value": VALUES[m]} for m in QUARTERS],
              "inflation_rate": [{"month": 0, "value": -0.1}]}


@pytest.fixture
def unguided(monkeypatch) -> MacroVAE:
    """The exactly linear-Gaussian decoder with the look-ahead guide switched off: a plain particle filter,
    which resamples hard at every quarterly anchor (the genealogy a supervisory table leaves)."""
    monkeypatch.setattr(MacroVAE, "_guide", lambda self, anchors, backbone=None: None)
    return _linear_gaussian_model(A, C, SIGMA, RHO)


def _draw(model: MacroVAE, n: int, particles: int, **kw) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)
        return model.generate_conditional(CONDITIONS, seq_length=T, n_samples=n, seed=5, start="model",
                                          n_particles=particles, **kw).double().numpy()


def _histories(paths: np.ndarray, month: int) -> int:
    return len(np.unique(paths[:, :month + 1].reshape(len(paths), -1), axis=0))


def test_rejuvenated_paths_keep_the_exact_gaussian_bridge(unguided: MacroVAE):
    """With quarterly anchors and an accurate filter (40,000 particles) the moved paths still have the
    closed-form conditional mean and covariance of the VAR(1) between the anchors, and meet every anchor."""
    L = np.array([[1.0, 0.0], [RHO, 1.0]])
    Q = (SIGMA * L) @ (SIGMA * L).T
    paths = _draw(unguided, 4000, 40000)
    assert unguided.last_ess < 0.02  # the filter did degenerate at the anchors
    for (t, j), value in ANCHORS.items():
        assert np.abs(paths[:, t, j] - value).max() < 1e-6
    for month in (1, 7, 11):
        mu, cov = _bridge_moments(A, C, Q, X0, month, ANCHORS)
        sample = paths[:, month]
        se = np.sqrt(np.diag(cov) / len(sample))
        assert np.all(np.abs(sample.mean(0) - mu) < 5 * se), (month, sample.mean(0), mu)
        assert np.allclose(np.cov(sample.T), cov, rtol=0.12, atol=0.01), (month, np.cov(sample.T), cov)
    assert _histories(paths, 1) == 4000
    assert 0.15 < np.mean(unguided.last_rejuvenation.acceptance) < 0.5


def test_rejuvenation_separates_the_paths_a_degenerate_filter_shares(unguided: MacroVAE):
    """500 paths from 1,000 particles: the filter alone returns a few dozen distinct first months; the
    default moves make every path its own, and the spread of the first month approaches the closed form."""
    L = np.array([[1.0, 0.0], [RHO, 1.0]])
    Q = (SIGMA * L) @ (SIGMA * L).T
    before = _draw(unguided, 500, 1000, n_moves=0)
    after = _draw(unguided, 500, 1000)
    assert _histories(before, 1) < 50 and unguided.last_rejuvenation.moved > 0.99
    assert _histories(after, 1) == 500
    sd = np.sqrt(np.diag(_bridge_moments(A, C, Q, X0, 1, ANCHORS)[1]))
    assert np.abs(after[:, 1].std(0) / sd - 1).max() < np.abs(before[:, 1].std(0) / sd - 1).max()
    # the moves happen after the filter: its genealogy (the clusters of the standard errors) is kept
    assert len(np.unique(unguided.last_ancestors)) < 50


def test_month_zero_conditioning_alone_is_not_rejuvenated_by_default():
    """Only anchors after month 0 resample again and again; a start-state condition (every scenario path of
    simulate) keeps the filter's draw bit for bit unless moves are asked for."""
    model = _linear_gaussian_model(A, C, SIGMA, RHO)
    start = {"gdp_growth": {"month": 0, "value": 0.2}, "inflation_rate": {"month": 0, "value": -0.1}}
    plain = model.generate_conditional(start, seq_length=T, n_samples=50, seed=1, start="model")
    assert model.last_rejuvenation.acceptance == []
    assert torch.equal(plain, model.generate_conditional(start, seq_length=T, n_samples=50, seed=1, start="model",
                                                         n_moves=0))
    moved = model.generate_conditional(start, seq_length=T, n_samples=50, seed=1, start="model", n_moves=3)
    assert len(model.last_rejuvenation.acceptance) == 3 and not torch.equal(plain, moved)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_bad_n_moves_is_a_config_error(bad):
    model = _linear_gaussian_model(A, C, SIGMA, RHO)
    with pytest.raises(ConfigError, match="n_moves"):
        model.generate_conditional(CONDITIONS, seq_length=T, n_samples=4, seed=1, n_moves=bad)
