"""The MacroVAE's generation-time backbone (creditsim.macro.backbone): closed forms of the rewritten
VAR(1), its effect on generated paths, the per-path ("uniform") pull and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.errors import ConfigError
from creditsim.macro.backbone import GenerationBackbone, row_product
from creditsim.macro.vae import MacroVAE


@pytest.fixture(scope="module")
def vae() -> MacroVAE:
    return MacroVAE.from_pretrained()


@pytest.fixture(scope="module")
def start(vae: MacroVAE) -> dict:
    from creditsim.datasets import macro_state

    state = macro_state("2012-12")  # zero lower bound: far from the 1980-2012 resting level
    return {v: {"month": 0, "value": float(state[v])} for v in vae.config.variables}


def _toy(pull: list[float], rest: list[float] | None = None) -> GenerationBackbone:
    W = torch.tensor([[-0.10, 0.05, 0.00], [0.02, -0.05, 0.03], [0.00, 0.04, -0.20]], dtype=torch.float64)
    b = torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)
    c = torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.01, 0.02]], dtype=torch.float64)
    r = torch.linalg.solve(W, -(b + c[0])) if rest is None else torch.tensor(rest, dtype=torch.float64)
    return GenerationBackbone(W, b, c, r, torch.tensor(pull, dtype=torch.float64))


def test_full_pull_at_the_trained_rest_is_the_trained_backbone() -> None:
    bb = _toy([1.0, 1.0, 1.0])
    x = torch.tensor([[0.3, -1.2, 2.0], [1.0, 0.5, -0.7]], dtype=torch.float64)
    s = torch.tensor([0, 1])
    torch.testing.assert_close(bb.correction(x, s), torch.zeros(2, 3, dtype=torch.float64), atol=1e-14, rtol=0)
    A, d = bb.linear()
    torch.testing.assert_close(A, torch.eye(3, dtype=torch.float64) + bb.weight)
    torch.testing.assert_close(d, bb.bias[None, :] + bb.scenario_drift)


def test_zero_pull_makes_a_random_walk_that_leaves_the_other_equations() -> None:
    bb = _toy([1.0, 0.0, 1.0])
    A, d = bb.linear()
    np.testing.assert_allclose(A[1].numpy(), [0.0, 1.0, 0.0])  # x_1 walks
    np.testing.assert_allclose(A[[0, 2], 1].numpy(), [0.0, 0.0])  # nobody loads on x_1's level
    np.testing.assert_allclose(d[:, 1].numpy(), [0.0, 0.0])  # nor drifts it, in any scenario
    x = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    moved = x.clone()
    moved[0, 1] += 5.0
    s = torch.tensor([1])
    torch.testing.assert_close(bb.change(moved, s), bb.change(x, s))  # x_1's level changes nothing
    assert float(bb.change(x, s)[0, 1]) == 0.0


def test_an_endpoint_becomes_the_fixed_point_and_partial_pull_keeps_it() -> None:
    """With any pull factors the baseline linear system rests at the endpoint: (I - A) r = d_0."""
    for pull in ([1.0, 1.0, 1.0], [0.5, 0.2, 0.9]):
        bb = _toy(pull, rest=[0.4, -0.3, 1.1])
        A, d = bb.linear()
        np.testing.assert_allclose(((torch.eye(3, dtype=torch.float64) - A) @ bb.rest).numpy(), d[0].numpy(), atol=1e-14)
        # half the pull: the first step from a gap closes half as much of it through the own coefficient
    full, half = _toy([1.0, 1.0, 1.0]), _toy([0.5, 0.5, 0.5])
    gap = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64) + full.rest
    s = torch.tensor([0])
    np.testing.assert_allclose(half.change(gap, s).numpy(), 0.25 * full.change(gap, s).numpy(), atol=1e-14)


def test_generated_month_one_moves_by_exactly_the_correction(vae: MacroVAE, start: dict) -> None:
    """Same seed: a pull below 1 changes month 1 by the backbone correction at month 0's state (the
    decoder's own mean, scale and shocks are the same), to float rounding, away from the zero floor."""
    kw = dict(seq_length=2, n_samples=200, scenario=0, start="model", seed=4)
    plain = vae.generate_conditional(start, **kw).double().numpy()
    pull = {"policy_rate": 0.0, "yield_10y": 0.3}
    walk = vae.generate_conditional(start, pull=pull, **kw).double().numpy()
    np.testing.assert_array_equal(walk[:, 0], plain[:, 0])
    x0 = vae.normalize(torch.as_tensor(plain[:1, 0], dtype=torch.float32))
    corr = vae.generation_backbone(pull=pull).correction(x0, torch.zeros(1, dtype=torch.long))[0]
    expected = (corr * vae.x_std).double().numpy()  # model units: logs of config.log_variables
    free = (walk[:, 1] > 1e-9).all(axis=1) & (plain[:, 1] > 1e-9).all(axis=1)
    assert free.sum() > 100
    moved = (vae.to_model_units(torch.as_tensor(walk[:, 1])) - vae.to_model_units(torch.as_tensor(plain[:, 1]))).numpy()
    np.testing.assert_allclose(moved[free], np.broadcast_to(expected, (free.sum(), 9)), atol=2e-5)
    assert np.abs(expected).max() > 1e-5  # the test would see a correction that did nothing


def test_uniform_pull_is_seeded_widens_the_paths_and_keeps_anchors(vae: MacroVAE, start: dict) -> None:
    kw = dict(seq_length=37, n_samples=300, scenario=None, start="model", seed=9)
    plain = vae.generate_conditional(start, **kw).double().numpy()
    a = vae.generate_conditional(start, pull="uniform", **kw).double().numpy()
    b = vae.generate_conditional(start, pull="uniform", **kw).double().numpy()
    np.testing.assert_array_equal(a, b)
    order = list(vae.config.variables)
    # from 2012's zero policy rate and 7.9 % unemployment the trained backbone pulls both towards the
    # 1980-2012 resting level; paths that keep less of the pull stay nearer today's levels
    for var in ("policy_rate", "unemployment_rate"):
        j, today = order.index(var), start[var]["value"]
        assert abs(np.median(a[:, 36, j]) - today) < abs(np.median(plain[:, 36, j]) - today) - 0.005, var
    # and the spread of pulls widens the 3-year outcomes (the zero floor bounds the policy rate's)
    wider = a[:, 36].std(axis=0) > plain[:, 36].std(axis=0)
    assert wider.sum() >= 7, wider
    hy = {**start, "credit_spread_hy": {"month": 12, "value": 0.08}}
    anchored = vae.generate_conditional(hy, pull="uniform", **kw).double().numpy()
    np.testing.assert_allclose(anchored[:, 12, list(vae.config.variables).index("credit_spread_hy")], 0.08, atol=1e-6)
    assert vae.last_ess > 0.05


@pytest.mark.parametrize("pull, match", [
    ({"fed_funds": 0.5}, "pull: unknown macro variable"),
    ({"policy_rate": 1.5}, "factors must be numbers in"),
    ({"policy_rate": True}, "factors must be numbers in"),
    ("gaussian", "or 'uniform'"),
])
def test_bad_pull_is_refused(vae: MacroVAE, start: dict, pull, match) -> None:
    with pytest.raises(ConfigError, match=match):
        vae.generate_conditional(start, seq_length=3, n_samples=5, pull=pull)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_product_gives_a_row_the_same_bits_in_any_batch(vae: MacroVAE, dtype):
    """The month step's D x D products: a path rolled among 640 candidates and among 40 is the same path
    (a BLAS ``x @ W.T`` with K = 9 changed its order with the row count on AVX-512 MKL)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 9, generator=g, dtype=dtype)
    rows = torch.randperm(640, generator=g)[:40]
    for w in (vae.decoder.linear_ar.weight, vae.decoder.unit_tril()):
        w = w.detach().to(dtype)
        full = row_product(x, w)
        assert torch.equal(full[rows], row_product(x[rows], w))
        assert torch.equal(full[rows[:1]], row_product(x[rows[:1]], w))
        torch.testing.assert_close(full, x @ w.T)  # the same product, to rounding
