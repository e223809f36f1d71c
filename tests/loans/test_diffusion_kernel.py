"""The compiled ancestral value sampler (creditsim.loans.diffusion_kernel): the eager chain's values, a
float64 reference, row invariance (bit for bit), threads, errors and generate end to end."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from creditsim.loans import diffusion_kernel
from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# h = 18: not a multiple of the kernel's four-unit (generic) or eight-unit (AVX-512) blocks, so the remainders run too
SMALL = TrajectoryConfig(d_model=16, n_heads=2, n_layers=1, diffusion_steps=20, diffusion_hidden=18, dropout=0.0,
                         idio_scale=0.3, max_months=48)


def _model(seed: int = 0, **kw) -> LoanTrajectoryModel:
    torch.manual_seed(seed)
    return LoanTrajectoryModel(replace(SMALL, **kw)).eval()


def _inputs(model: LoanTrajectoryModel, n: int, seed: int = 1, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    vp = torch.randn(n, model.config.d_model, generator=g) * scale
    noise = torch.randn(model.config.diffusion_steps + 1, n, 2, generator=g)
    return vp, noise


def _both(model: LoanTrajectoryModel, vp: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fused = model._sample_values(vp, noise)
        model.fused_kernels = False
        try:
            eager = model._sample_values(vp, noise)
        finally:
            model.fused_kernels = True
    return fused, eager


def test_the_test_install_built_the_kernel():
    """`make install` builds it (setup.py); a silent fall-back to torch would hide a broken build."""
    assert diffusion_kernel.available()


@pytest.mark.parametrize("n", [1, 15, 16, 17, 200])
def test_fused_chain_gives_the_eager_chains_values(n):
    model = _model(3)
    vp, noise = _inputs(model, n)
    fused, eager = _both(model, vp, noise)
    assert fused.dtype == torch.float32 and fused.shape == (n, 2)
    assert not torch.equal(fused, torch.full_like(fused, 0.5))
    # float32 rounding of an untrained head; helper-97 measured gaps up to 3.5e-6 on heads 1-7 wide
    torch.testing.assert_close(fused, eager, rtol=0, atol=5e-6)


def test_shipped_model_fused_chain_matches_eager_and_clips():
    model = LoanTrajectoryModel.from_pretrained()
    vp, noise = _inputs(model, 300, seed=4, scale=1.0)
    fused, eager = _both(model, vp, noise)
    torch.testing.assert_close(fused, eager, rtol=0, atol=2e-6)
    assert ((fused >= 0) & (fused <= 1)).all()


def _reference(model: LoanTrajectoryModel, vp: torch.Tensor, noise: torch.Tensor) -> np.ndarray:
    """The DDPM ancestral chain written out in float64 numpy from the head's weights and the cosine
    schedule (Ho et al. 2020, eqs. 6-7, with the clipped y0 estimate)."""
    d = model.diffusion
    w = {k: v.detach().double().numpy() for k, v in d.state_dict().items()}
    ab = model.alphas_cumprod.double().numpy()
    beta = model.betas.double().numpy()
    silu = lambda x: x / (1 + np.exp(-x))  # noqa: E731
    cond = vp.double().numpy() @ w["cond.weight"].T + w["cond.bias"]
    y = noise[0].double().numpy()
    K = model.config.diffusion_steps
    for k in range(K - 1, -1, -1):
        z = silu(y @ w["x_in.weight"].T + w["x_in.bias"] + cond + w["step_emb.weight"][k])
        eps = silu(z @ w["hidden.weight"].T + w["hidden.bias"]) @ w["out.weight"].T + w["out.bias"]
        y0 = np.clip((y - np.sqrt(1 - ab[k]) * eps) / np.sqrt(ab[k]), -1, 1)
        if k == 0:
            return (y0 + 1) / 2
        prev = ab[k - 1]
        mean = np.sqrt(prev) * beta[k] / (1 - ab[k]) * y0 + np.sqrt(1 - beta[k]) * (1 - prev) / (1 - ab[k]) * y
        y = mean + np.sqrt(beta[k] * (1 - prev) / (1 - ab[k])) * noise[K - k].double().numpy()
    raise AssertionError("unreachable")


def test_fused_chain_matches_a_float64_reference():
    model = _model(5)
    vp, noise = _inputs(model, 64, seed=6)
    with torch.no_grad():
        got = model._sample_values(vp, noise).double().numpy()
    np.testing.assert_allclose(got, _reference(model, vp, noise), rtol=0, atol=2e-5)


def _kernel_silu(module, v: np.ndarray) -> np.ndarray:
    """The chain's own SiLU (``_diffusion_chain.silu``) on a float32 array."""
    x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    y = torch.empty_like(x)
    module.silu(x.numel(), x.data_ptr(), y.data_ptr())
    return y.numpy()


def _silu_inputs() -> np.ndarray:
    """Dense over the working range, normal draws, the rounding ties of y = -v log2(e) near integers and
    halves, the subnormal and overflowing ranges of 2^y, and the edges of float32."""
    g = np.random.default_rng(12)
    k = np.arange(-130, 131, dtype=np.float64) / 2  # y = k: n's rounding ties and the exact integers
    ties = (-k / np.log2(np.e)).astype(np.float32)
    ties = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    return np.concatenate([np.linspace(-110, 110, 400_001, dtype=np.float32), g.standard_normal(200_000).astype(
        np.float32) * 4, ties, np.float32([0, -0.0, 1e-30, -1e-30, 1e-45, -1e-45, 3e38, -3e38, 1e20, -1e20])])


def test_the_chains_silu_is_within_its_stated_error_of_the_exact_one():
    """_diffusion_chain.cpp's SiLU is its own (2^y by a degree-5 polynomial and a scaling, not libm): held
    to the accuracy its comment states against float64, with the right limits at the ends of float32. A
    wrong polynomial coefficient, a missed clamp or a double rounding in the scaling fails here."""
    v = _silu_inputs()
    got = _kernel_silu(diffusion_kernel._diffusion_chain, v).astype(np.float64)
    vd = v.astype(np.float64)
    with np.errstate(over="ignore"):
        exact = vd / (1 + np.exp(-vd))
    for bound, rel_max in ((5, 4e-7), (20, 1.2e-6), (87, 4.5e-6)):
        inside = (np.abs(vd) <= bound) & (np.abs(exact) >= 1.2e-38)  # a subnormal result has no relative accuracy
        rel = np.abs(got[inside] - exact[inside]) / np.abs(exact[inside])
        assert rel.max() <= rel_max, (bound, rel.max(), vd[inside][rel.argmax()])
    inside = np.abs(vd) <= 20
    assert np.abs(got[inside] - exact[inside]).max() <= 1.3e-6
    far = vd < -87  # the exact SiLU is below 1.6e-36 in size there
    assert (np.abs(got[far]) <= 1e-35).all() and (got[far] <= 0).all()
    big = vd > 87  # 2^y vanishes beside 1: silu(v) = v
    assert np.array_equal(got[big], vd[big])
    assert np.isnan(_kernel_silu(diffusion_kernel._diffusion_chain, np.float32([np.nan]))).all()


def test_a_rows_value_is_the_same_bits_in_any_batch_or_tile_position():
    """The tile's rows are vector lanes and the conditioning layer runs in the kernel too: no sum mixes
    rows, so a row does not depend on its neighbours, its position in the tile or the batch size (torch's
    product for the conditioning gave another last bit for a batch of one row)."""
    model = LoanTrajectoryModel.from_pretrained()
    vp, noise = _inputs(model, 53, seed=7, scale=1.0)
    with torch.no_grad():
        whole = model._sample_values(vp, noise)
        for lo, hi in [(0, 1), (5, 29), (16, 53), (52, 53), (3, 4)]:
            part = model._sample_values(vp[lo:hi], noise[:, lo:hi].contiguous())
            assert torch.equal(part, whole[lo:hi]), (lo, hi)
        perm = torch.randperm(53, generator=torch.Generator().manual_seed(8))
        shuffled = model._sample_values(vp[perm], noise[:, perm].contiguous())
    assert torch.equal(shuffled, whole[perm])


def test_two_threads_give_the_serial_bits():
    """The kernel releases the GIL (the trajectory engine runs scenarios on threads): running two chains at
    once must change nothing."""
    model = LoanTrajectoryModel.from_pretrained()
    cases = [_inputs(model, 700, seed=s, scale=1.0) for s in (9, 10)]
    with torch.no_grad():
        serial = [model._sample_values(vp, nz) for vp, nz in cases]
        got: dict[int, torch.Tensor] = {}
        start = threading.Barrier(2)

        def run(i: int) -> None:
            start.wait()
            with torch.no_grad():
                got[i] = model._sample_values(*cases[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(2):
        assert torch.equal(got[i], serial[i])


def test_autograd_and_ddim_stay_in_torch_and_shapes_are_checked():
    model = _model(2)
    vp, noise = _inputs(model, 8)
    with torch.no_grad():
        assert model._fused_chain(vp, noise)
    assert not model._fused_chain(vp, noise)  # grad mode on: the kernel has no backward
    assert not model._fused_chain(vp.double(), noise)
    with pytest.raises(ValueError, match=r"noise \(21, N, 2\)"):
        diffusion_kernel.ancestral_chain(model.diffusion, model._posterior_table(), vp, noise[:-1])
    with pytest.raises(ValueError, match=r"value_params \(N, 16\)"):
        diffusion_kernel.ancestral_chain(model.diffusion, model._posterior_table(), vp[:, :5], noise)
    with pytest.raises(ValueError, match="no backward"):  # would detach silently
        diffusion_kernel.ancestral_chain(model.diffusion, model._posterior_table(), vp.requires_grad_(), noise)


def test_posterior_table_holds_the_per_step_coefficients():
    model = _model(1)
    table = model._posterior_table()
    ab, beta = model.alphas_cumprod, model.betas
    assert table.shape == (5, model.config.diffusion_steps) and table.dtype == torch.float32
    torch.testing.assert_close(table[0], (1 - ab).sqrt(), rtol=0, atol=0)
    torch.testing.assert_close(table[1], ab.sqrt(), rtol=0, atol=0)
    for row, scalars in zip(table, model._posterior()):
        assert torch.equal(row, torch.stack(scalars))
    del beta


@pytest.mark.parametrize("edit", ["inplace", "data", "numpy"])
def test_posterior_table_follows_an_edited_schedule(edit):
    """The table is cached per schedule buffer; an edit torch counts (in place), or does not (through ``.data`` or
    numpy: no version moves), is read again, never served stale."""
    model = _model(1)
    before = model._posterior_table().clone()
    ab = model.alphas_cumprod
    with torch.no_grad():
        if edit == "inplace":
            ab.mul_(0.99)
        elif edit == "data":
            ab.data.mul_(0.99)
        else:
            ab.numpy()[:] *= 0.99
    after = model._posterior_table()
    assert not torch.equal(after, before)
    torch.testing.assert_close(after[1], ab.sqrt(), rtol=0, atol=0)


def _book_inputs(n_loans: int, n_months: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a synthetic tape and the default Markov chain's matrix for every loan and month."""
    from creditsim.features import loan_features
    from creditsim.transitions.markov import MarkovTransitionModel
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(n_loans, 1, random_seed=3).generate()
    feats = torch.from_numpy(np.array(loan_features(loans), dtype=np.float32))
    mats = torch.as_tensor(MarkovTransitionModel.default().transition_matrix_, dtype=torch.float32)
    return feats, mats[0].expand(n_loans, n_months, 7, 7).contiguous()


def test_generate_with_the_fused_chain_matches_the_eager_one():
    """End to end on the shipped model: the states (drawn from the transformer) are the same paths, the
    amounts agree to float32 rounding of the sampled values."""
    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort = _book_inputs(120, 24)
    fused = model.generate(feats, cohort, None, n_samples=2, seed=5)
    model.fused_kernels = False
    try:
        eager = model.generate(feats, cohort, None, n_samples=2, seed=5)
    finally:
        model.fused_kernels = True
    assert torch.equal(fused["states"], eager["states"])
    assert float(fused["payments"].sum()) > 0
    for k in ("payments", "balances", "losses", "prepayment"):
        torch.testing.assert_close(fused[k], eager[k], rtol=1e-5, atol=1e-3)



def test_every_instruction_set_level_gives_the_same_bits(kernel_levels, monkeypatch):
    """The module docstring's claim: baseline x86-64 (libm's fmaf), AVX2 + FMA and AVX-512 builds agree bit
    for bit, since every multiply-add is an explicit fmaf and nothing is contracted or reassociated."""
    shipped, small = LoanTrajectoryModel.from_pretrained(), _model(4)  # h = 64; h = 18: AVX-512 block + generic tail
    cases = [(m, *_inputs(m, 37, seed=11, scale=1.0)) for m in (shipped, small)]
    outs: list[list] = [[], []]
    silus, v = [], _silu_inputs()  # the SiLU alone, over its edge cases (scalef against two scalings)
    for march, module in kernel_levels(Path(diffusion_kernel.__file__).with_name("_diffusion_chain.cpp")):
        monkeypatch.setattr(diffusion_kernel, "_diffusion_chain", module)
        with torch.no_grad():
            for runs, (m, vp, noise) in zip(outs, cases):
                runs.append((march, m._sample_values(vp, noise)))
        silus.append((march, _kernel_silu(module, v).view(np.uint32)))
    for runs in outs:
        for march, out in runs[1:]:
            assert torch.equal(out, runs[0][1]), march
    for march, bits in silus[1:]:
        assert np.array_equal(bits, silus[0][1]), march


def test_without_the_compiled_kernels_generate_runs_in_torch(monkeypatch):
    """An install where no compiler built the extensions (setup.py marks them optional): both wrappers say
    so, a fused buffer falls back to torch's, and generate gives the eager paths and values."""
    from creditsim.nn import attention_kernel, mlp_kernel
    from creditsim.nn.layers import KVBuffer

    model = LoanTrajectoryModel.from_pretrained()
    feats, cohort = _book_inputs(40, 6)
    model.fused_kernels = False
    try:
        eager = model.generate(feats, cohort, None, seed=3)
    finally:
        model.fused_kernels = True
    monkeypatch.setattr(diffusion_kernel, "_diffusion_chain", None)
    monkeypatch.setattr(attention_kernel, "_attention_step", None)
    monkeypatch.setattr(mlp_kernel, "_mlp_step", None)
    assert not diffusion_kernel.available() and not attention_kernel.available() and not mlp_kernel.available()
    assert not KVBuffer(4, 2, 3, 8, fused=True).fused
    with pytest.raises(RuntimeError, match="not built"):
        diffusion_kernel.ancestral_chain(model.diffusion, model._posterior_table(), torch.zeros(1, 32),
                                         torch.zeros(51, 1, 2))
    fallback = model.generate(feats, cohort, None, seed=3)
    for k in eager:
        assert torch.equal(fallback[k].nan_to_num(-7.0), eager[k].nan_to_num(-7.0)), k
