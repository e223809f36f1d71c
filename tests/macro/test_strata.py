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

from creditsim.macro.strata import DEFENSIVE_SHARE, LabelStrata, allocate
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


def _wrong_guide(monkeypatch) -> None:
    """A look-ahead guide that misreads the dynamics (A x 0.7, no label drift): the proposal is off, so the
    weights -- not the guide -- must make the label posterior right."""
    from creditsim.macro.guidance import LinearGuide
    from creditsim.macro.vae import MacroVAE

    right = MacroVAE._guide

    def wrong(self, anchors, backbone=None):
        guide = right(self, anchors, backbone)
        return None if guide is None else LinearGuide(0.7 * guide.A, torch.zeros_like(guide.drift), guide.L, anchors)
    monkeypatch.setattr(MacroVAE, "_guide", wrong)


@pytest.mark.parametrize("seed,misread", [(0, False), (1, False), (2, True), (3, True)])
def test_label_posterior_matches_the_closed_form_and_the_sample_stays_alive(seed: int, misread: bool, monkeypatch):
    joint = np.array([f * _evidence(d) for f, d in zip(FREQ, DRIFTS)])
    exact = joint / joint.sum()
    assert 0.6 < exact[1] < 0.95  # the anchors overturn the prior (0.3), but not completely
    if misread:
        _wrong_guide(monkeypatch)
    model, paths = _draw(seed)
    assert abs(model.last_label_posterior[1] - exact[1]) < 0.02, (model.last_label_posterior, exact)
    passes = model.last_label_passes  # each pass on its own is an estimate of the same posterior
    np.testing.assert_allclose(passes.sum(1), 1.0)
    assert np.abs(passes[:, 1] - exact[1]).max() < 0.04, (passes, exact)
    assert passes[:, 1].min() - 1e-12 <= model.last_label_posterior[1] <= passes[:, 1].max() + 1e-12
    share = float(np.mean(model.last_scenarios == 1))
    assert abs(share - exact[1]) < 0.05, (share, exact)
    assert model.last_ess > (0.6 if misread else 0.8)
    np.testing.assert_allclose(paths[:, 3, 0], Y[3], atol=1e-6)
    np.testing.assert_allclose(paths[:, 6, 0], Y[6], atol=1e-6)
    # the paths' label decides their drift: label-1 paths sit higher between the anchors
    assert paths[model.last_scenarios == 1, 7, 0].mean() > paths[model.last_scenarios == 0, 7, 0].mean()


def test_a_given_label_is_not_stratified():
    model = _linear_gaussian_model(A, C, SIGMA, RHO, drifts=DRIFTS, freq=FREQ)
    model.generate_conditional({"gdp_growth": [{"month": 0, "value": 0.2}, {"month": 3, "value": 1.0}]},
                               seq_length=5, n_samples=50, seed=0, scenario=1, start="model")
    assert model.last_label_posterior is None and model.last_label_passes is None and (model.last_scenarios == 1).all()


def test_blocks_on_hand_worked_weights():
    strata = LabelStrata(torch.tensor([0, 2]), torch.tensor([0.25, 0.75]), torch.tensor([4, 2]))
    assert strata.particle_labels.tolist() == [0, 0, 0, 0, 2, 2] and strata.n_particles == 6
    log_w = torch.log(torch.tensor([2.0, 2.0, 2.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    idx = strata.resample(5, log_w, torch.Generator().manual_seed(1), every=True, threshold=None)
    assert sorted(idx[:4].tolist()) == [0, 1, 2, 3] and idx[4:].tolist() == [4, 4]  # within blocks only
    assert (log_w == 0).all()  # both blocks resampled, their weights reset
    np.testing.assert_allclose(strata.log_z.numpy(), np.log([2.0, 0.5]))  # block means
    np.testing.assert_allclose(strata.posterior(log_w).numpy(), [0.5 / 0.875, 0.375 / 0.875])
    # ESS as a sample of the posterior: block ESS counts 4 and 1, 1 / (p0^2 / 4 + p1^2 / 1), of 6 particles
    p = np.array([0.5, 0.375]) / 0.875
    assert strata.ess_fractions(log_w, 9)[5] == pytest.approx(1.0 / (p[0] ** 2 / 4 + p[1] ** 2) / 6)
    assert strata.resample(6, log_w, torch.Generator(), every=False, threshold=0.5) is None  # flat: nothing to do
    # a pilot's evidence Z = (1, 4) is averaged with this pass's (2, 2), equally: (1.5, 3)
    pooled = LabelStrata(strata.labels, strata.prior, torch.tensor([3, 3]), torch.log(torch.tensor([1.0, 4.0])))
    pooled.log_z += torch.log(torch.tensor([2.0, 2.0], dtype=torch.float64))
    np.testing.assert_allclose(pooled.log_evidence(torch.zeros(6)).exp().numpy(), [1.5, 3.0])
    # a block dead in this pass gets no paths even if the pilot gave its label mass; all dead: the prior
    dead = torch.tensor([0.0, 0.0, 0.0, -torch.inf, -torch.inf, -torch.inf], dtype=torch.float64)
    final = pooled.final_log_w(dead)
    assert torch.isfinite(final[:3]).all() and torch.isneginf(final[3:]).all()
    np.testing.assert_allclose(torch.softmax(final, 0)[:3].sum().item(), 1.0)
    everything_dead = LabelStrata(strata.labels, strata.prior, torch.tensor([3, 3]))
    np.testing.assert_allclose(everything_dead.posterior(torch.full((6,), -torch.inf, dtype=torch.float64)).numpy(), [0.25, 0.75])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6).filter(lambda p: sum(p) > 0), st.integers(6, 5000))
def test_allocation_sums_and_never_starves_a_label(post: list[float], n: int):
    sizes = allocate(torch.tensor(post, dtype=torch.float64), n)
    assert int(sizes.sum()) == n and bool((sizes >= 1).all())
    share = (1 - DEFENSIVE_SHARE) * (np.asarray(post) / sum(post)) + DEFENSIVE_SHARE / len(post)
    assert np.abs(sizes.numpy() - share * (n - len(post)) - 1).max() <= 1.0 + 1e-9


@pytest.mark.parametrize("post", [[5e-324], [5e-324, 0.0], [0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0]])
def test_allocation_of_a_degenerate_posterior(post: list[float]):
    """A subnormal total once gave 11 particles 12 blocks' worth (0.9 * 5e-324 rounds back to 5e-324); an
    underflowed or non-finite posterior falls back to equal blocks."""
    sizes = allocate(torch.tensor(post, dtype=torch.float64), 11)
    assert int(sizes.sum()) == 11 and bool((sizes >= 1).all())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_resampling_stays_within_each_block(sizes: list[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    log_w = torch.randn(n, generator=g, dtype=torch.float64) * 3
    log_w[torch.rand(n, generator=g) < 0.2] = -torch.inf
    before = log_w.clone()
    strata = LabelStrata(torch.arange(len(sizes)), torch.ones(len(sizes)), torch.tensor(sizes))
    idx = strata.resample(0, log_w, g, every=True, threshold=None)
    block = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    assert torch.equal(block[idx], block)
    for b in range(len(sizes)):
        inside = block == b
        if not torch.isneginf(before[inside]).all():  # never a zero-weight particle of a live block
            assert not torch.isneginf(before[idx[inside]]).any()


def test_degeneracy_warning_under_absurd_conditions():
    """Absurd conditions still degenerate inside the label the evidence picks: one warning, counting all the
    particles of the allocated pass (2,040 here)."""
    from creditsim.macro.vae import MacroVAE

    model = MacroVAE.from_pretrained()
    conditions = {"unemployment_rate": [{"month": 1, "value": 0.30}, {"month": 2, "value": 0.01}, {"month": 3, "value": 0.3}],
                  "policy_rate": [{"month": 1, "value": 0.15}, {"month": 2, "value": 0.0}]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.generate_conditional(conditions, seq_length=6, n_samples=20, seed=0, start="model", scenario=None)
    low = [str(w.message) for w in caught if "effective sample size" in str(w.message)]
    assert len(low) == 1 and "of the 2040 particles" in low[0], low
    assert model.last_ess < 0.01 and model.last_label_posterior.sum() == pytest.approx(1.0)


def test_a_block_the_pilot_underrated_gets_one_more_pass():
    """After the allocated pass, a label holding more than REALLOCATE_SHARE of the pooled posterior and more
    than twice its share of the particles is misallocated; the extra pass sizes the blocks by the pooled
    posterior and carries the pooled evidence. A posterior that matches the blocks is left alone."""
    from creditsim.macro.strata import REALLOCATE_SHARE

    labels, prior = torch.tensor([0, 2]), torch.tensor([0.5, 0.5], dtype=torch.float64)
    under = LabelStrata(labels, prior, torch.tensor([90, 10]))
    log_w = torch.cat([torch.zeros(90), torch.full((10,), np.log(3.0))]).double()  # evidence 1 : 3
    post = under.posterior(log_w)
    np.testing.assert_allclose(post.numpy(), [0.25, 0.75])
    assert under.misallocated(log_w)
    again = under.allocated(log_w)
    assert again.sizes.tolist() == allocate(post, 100).tolist() and again.sizes[1] > again.sizes[0]
    np.testing.assert_allclose(again.earlier.numpy(), under.log_evidence(log_w).numpy())
    fair = LabelStrata(labels, prior, torch.tensor([25, 75]))
    assert not fair.misallocated(torch.cat([torch.zeros(25), torch.full((75,), np.log(3.0))]).double())
    tiny = LabelStrata(labels, prior, torch.tensor([99, 1]))  # twice its share, but under the floor
    odds = REALLOCATE_SHARE / 2 / (1 - REALLOCATE_SHARE / 2)
    assert not tiny.misallocated(torch.cat([torch.zeros(99), torch.full((1,), np.log(odds))]).double())
