"""DDIM sampling of the trajectory model's value head: the closed-form identity with the ancestral chain,
the step plans, the generate plumbing, and sampler_check against the full chain on the shipped model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from creditsim.errors import ConfigError
from creditsim.loans.diffusion_sampling import SamplingPlan, ddim_sample, ddim_steps, plan_for, sampler_check
from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=20, diffusion_hidden=16, dropout=0.0,
                         idio_scale=0.3, max_months=48)


def _model(seed: int = 0, **kw) -> LoanTrajectoryModel:
    torch.manual_seed(seed)
    return LoanTrajectoryModel(replace(SMALL, **kw)).eval()


def test_ddim_on_every_step_with_eta_one_is_the_ancestral_chain():
    """Song et al.'s eq. 12 with sigma at its eta = 1 value and every step is the DDPM posterior step,
    written another way: same noise in, same values out (to float32 rounding), clipping included."""
    model = _model(3)
    k = model.config.diffusion_steps
    vp = torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) * 2.0
    noise = torch.randn(k + 1, 64, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ancestral = model._sample_values(vp, noise)
        plan = SamplingPlan(tuple(range(k - 1, -1, -1)), 1.0)
        assert plan.n_noise(k) == k  # the start and one draw per move; the last step draws nothing
        ddim = model._sample_values(vp, noise[:k], plan)
    # the untrained head's y0 is clipped often: the identity holds through the clip
    assert ((ancestral == 0) | (ancestral == 1)).any()
    torch.testing.assert_close(ddim, ancestral, rtol=0, atol=2e-5)
    # and a sampler that skips steps does not reproduce it
    with torch.no_grad():
        short = model._sample_values(vp, noise[:5], SamplingPlan(ddim_steps(k, 5), 1.0))
    assert (short - ancestral).abs().max() > 1e-2


def _reference_ddim(model: LoanTrajectoryModel, vp: torch.Tensor, steps: tuple[int, ...], eta: float,
                    noise: torch.Tensor) -> np.ndarray:
    """Song et al. (2021) eq. 12 with sigma of eq. 16, written out in float64 numpy from the cosine
    schedule's alphas (only the noise predictor is the model's)."""
    ab = model.alphas_cumprod.double().numpy()
    cond = model.diffusion.cond_features(vp)
    y = noise[0].double().numpy()
    for i, t in enumerate(steps):
        with torch.no_grad():
            eps = model.diffusion.forward_step(torch.from_numpy(y).float(), t, cond).double().numpy()
        y0 = np.clip((y - np.sqrt(1 - ab[t]) * eps) / np.sqrt(ab[t]), -1, 1)
        if i == len(steps) - 1:
            return (y0 + 1) / 2
        prev = ab[steps[i + 1]]
        sigma = eta * np.sqrt((1 - prev) / (1 - ab[t])) * np.sqrt(1 - ab[t] / prev)
        direction = (y - np.sqrt(ab[t]) * y0) / np.sqrt(1 - ab[t])
        y = np.sqrt(prev) * y0 + np.sqrt(1 - prev - sigma**2) * direction
        if eta > 0:
            y = y + sigma * noise[i + 1].double().numpy()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("s,eta", [(2, 0.0), (5, 1.0), (7, 0.5), (13, 0.0), (20, 0.3)])
def test_strided_ddim_matches_a_float64_reference(s, eta):
    model = _model(4)
    k = model.config.diffusion_steps
    vp = torch.randn(48, 16, generator=torch.Generator().manual_seed(5)) * 2.0
    plan = plan_for(k, s, eta)
    noise = torch.randn(plan.n_noise(k), 48, 2, generator=torch.Generator().manual_seed(6))
    assert noise.shape[0] == (s if eta > 0 else 1)  # only the draws the sampler reads
    with torch.no_grad():
        got = model._sample_values(vp, noise, plan).double().numpy()
    want = _reference_ddim(model, vp, plan.steps, eta, noise)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert (got >= 0).all() and (got <= 1).all()
    with pytest.raises(ConfigError, match=r"noise must be \(%d, N, 2\)" % noise.shape[0]):
        model._sample_values(vp, torch.cat([noise, noise[:1]]), plan)


@pytest.mark.parametrize("k,s", [(50, 2), (50, 10), (50, 25), (50, 50), (7, 3), (1000, 37)])
def test_ddim_steps_are_distinct_descending_and_keep_both_ends(k, s):
    steps = ddim_steps(k, s)
    assert len(steps) == s and steps[0] == k - 1 and steps[-1] == 0
    assert all(a > b for a, b in zip(steps, steps[1:]))
    gaps = -np.diff(steps)
    assert gaps.max() - gaps.min() <= 1  # evenly spaced up to rounding


@pytest.mark.parametrize("s", [1, 51, True, False, 2.5, 0.0, "10"])
def test_plans_refuse_what_is_not_a_step_count(s):
    with pytest.raises(ConfigError, match=r"sampling_steps must be 0 \(the full chain\) or an integer in 2..50"):
        plan_for(50, s, 1.0)
    assert plan_for(50, 0, 0.3) == SamplingPlan(None, 1.0) and plan_for(50, np.int64(0), 1.0).steps is None


def test_config_checks_the_sampler_fields():
    with pytest.raises(ConfigError, match="sampling_steps must be 0 .* or an integer in 2..20"):
        replace(SMALL, sampling_steps=21)
    with pytest.raises(ConfigError, match="sampling_steps"):
        replace(SMALL, sampling_steps=1)
    with pytest.raises(ConfigError, match="sampling_eta must be a number in"):
        replace(SMALL, sampling_steps=5, sampling_eta=1.5)
    with pytest.raises(ConfigError, match="sampling_eta must be a number in"):
        plan_for(20, 5, True)
    assert replace(SMALL, sampling_eta=np.float32(0.5)).sampling_eta == 0.5
    cfg = replace(SMALL, sampling_steps=5, sampling_eta=0.0)
    assert TrajectoryConfig.from_dict(cfg.to_dict()) == cfg


def _features(n: int, months: int = 20) -> torch.Tensor:
    from creditsim.features import LOAN_FEATURES

    raw = {name: centre for name, centre, _ in LOAN_FEATURES}
    raw.update(remaining_term_years=months / 12.0, is_annuity=1.0)
    x = np.array([(raw[n_] - c) / s for n_, c, s in LOAN_FEATURES], dtype=np.float32)
    return torch.from_numpy(np.tile(x, (n, 1)))


def _cohort(b: int, t: int) -> torch.Tensor:
    p = np.eye(7)
    p[0] = [0.90, 0.05, 0, 0, 0.01, 0.03, 0.01]
    p[1] = [0.30, 0.40, 0.25, 0, 0.02, 0.02, 0.01]
    p[2] = [0.20, 0.10, 0.30, 0.35, 0.03, 0.01, 0.01]
    p[3] = [0.10, 0.05, 0.05, 0.40, 0.38, 0.01, 0.01]
    return torch.from_numpy(np.broadcast_to(p, (b, t, 7, 7)).copy()).float()


def test_generate_with_fewer_steps_is_seeded_chunk_free_and_reads_the_config():
    model = _model(2)
    feats, cohort = _features(300), _cohort(300, 8)
    a = model.generate(feats, cohort, None, n_samples=2, seed=11, sampling_steps=5)
    b = model.generate(feats, cohort, None, n_samples=2, seed=11, sampling_steps=5, chunk_size=256)
    full = model.generate(feats, cohort, None, n_samples=2, seed=11)
    assert torch.equal(a["states"], b["states"])
    # the DDIM head runs in torch on padded batches (LoanTrajectoryModel._month_values): the same bits by chunk
    for k in ("payments", "balances", "losses"):
        assert torch.equal(a[k], b[k]), k
    # the value noise has streams of its own: the samplers give the same state paths, every month
    assert torch.equal(a["states"], full["states"])
    assert not torch.equal(a["payments"], full["payments"])
    configured = _model(2, sampling_steps=5)
    c = configured.generate(feats, cohort, None, n_samples=2, seed=11)
    assert torch.equal(c["payments"], a["payments"])
    assert torch.equal(configured.generate(feats, cohort, None, n_samples=2, seed=11, sampling_steps=0)["payments"],
                       full["payments"])
    eta0 = model.generate(feats, cohort, None, n_samples=2, seed=11, sampling_steps=5, sampling_eta=0.0)
    assert torch.equal(_model(2, sampling_steps=5, sampling_eta=0.0).generate(feats, cohort, None, n_samples=2,
                                                                              seed=11)["payments"], eta0["payments"])
    with pytest.raises(ConfigError, match=r"sampling_steps must be 0 \(the full chain\) or an integer in 2..20"):
        model.generate(feats, cohort, None, seed=1, sampling_steps=30)
    with pytest.raises(ConfigError, match="sampling_eta must be a number in"):
        model.generate(feats, cohort, None, seed=1, sampling_steps=5, sampling_eta=-0.1)


def _shipped_conditioning(n_pay: int, seed: int = 0) -> tuple[LoanTrajectoryModel, torch.Tensor, torch.Tensor]:
    """The shipped model's value conditioning on loan-months it generates: ``n_pay`` payment months and
    every default month of 600 loans x 36 months (a high-default cohort matrix)."""
    model = LoanTrajectoryModel.from_pretrained()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    month_values = model._month_values

    def spy(t, h, new, need, noise, plan=None):
        rows = torch.nonzero(need).view(-1)
        seen.append((model._value_params(h[rows], new[rows]), new[rows]))
        return month_values(t, h, new, need, noise, plan)

    model._month_values = spy
    feats = _features(600, 40)
    coh = _cohort(600, 36)
    coh[:, :, 0] = torch.tensor([0.93, 0.03, 0, 0, 0.02, 0.015, 0.005])
    model.generate(feats, coh, None, seed=seed)
    vp = torch.cat([v for v, _ in seen])
    new = torch.cat([s for _, s in seen])
    pay = torch.nonzero(new == 0).view(-1)
    pay = pay[torch.randperm(pay.numel(), generator=torch.Generator().manual_seed(seed))[:n_pay]]
    dft = torch.nonzero(new == 4).view(-1)
    rows = torch.cat([pay, dft])
    return model, vp[rows], (new[rows] == 4).long()


def test_sampler_check_measures_ddim_against_the_full_chain_on_the_shipped_model():
    model, vp, which = _shipped_conditioning(60)
    assert (which == 1).sum() >= 10  # default months: the LGD value is checked too
    good = sampler_check(model, vp, which, sampling_steps=10, eta=1.0, n_draws=200, seed=1)
    bad = sampler_check(model, vp, which, sampling_steps=2, eta=0.0, n_draws=200, seed=1)
    # the full chain against itself: the Monte Carlo floor of 200 draws
    assert good["floor_w1_payment_ratio"] < 2e-3 and abs(good["floor_gap_lgd"]) < 5e-3
    # ten DDIM steps stay within ~1 % of an LGD of ~0.6 in the mean (measured 0.0005 with 400 draws)
    assert abs(good["gap_lgd"]) < 6e-3 and abs(good["gap_payment_ratio"]) < 3e-3
    # two deterministic steps are visibly off, and the check says so
    assert bad["w1_lgd"] > 2 * good["w1_lgd"] or bad["w1_payment_ratio"] > 2 * good["w1_payment_ratio"]
    with pytest.raises(ConfigError, match="value_params must be"):
        sampler_check(model, vp, which[:-1], sampling_steps=10)
    with pytest.raises(ConfigError, match="n_draws must be an integer >= 2"):
        sampler_check(model, vp, which, sampling_steps=10, n_draws=0)
    with pytest.raises(ConfigError, match="needs a DDIM plan"):
        ddim_sample(lambda y, t: y, model.alphas_cumprod, SamplingPlan(None, 1.0), torch.zeros(51, 3, 2))
