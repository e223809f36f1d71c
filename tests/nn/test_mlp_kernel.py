"""The compiled feed-forward half of a block (creditsim.nn.mlp_kernel) against torch's, row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from creditsim.nn import mlp_kernel
from creditsim.nn.layers import Block
from creditsim.nn.mlp_kernel import mlp_step

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not mlp_kernel.available(), reason="the C++ kernel was not built")]

#: (d, hidden): the shipped 32 x 128 (compiled for its size) and the generic loop, with widths that are not
#: multiples of the 16 layer-norm lanes
SIZES = [(32, 128), (16, 64), (24, 96), (5, 7)]


def _block(d: int, h: int, seed: int) -> Block:
    torch.manual_seed(seed)
    b = Block(d, 1, 0.0)
    if h != 4 * d:  # the generic widths: any hidden size
        b.mlp.c_fc = torch.nn.Linear(d, h)
        b.mlp.c_proj = torch.nn.Linear(h, d)
    with torch.no_grad():  # a layer norm away from its identity start
        b.ln_2.weight.uniform_(0.5, 1.5)
        b.ln_2.bias.uniform_(-0.3, 0.3)
    return b.eval()


def _torch(b: Block, x: torch.Tensor) -> torch.Tensor:
    return x + b.mlp(b.ln_2(x))


@pytest.mark.parametrize("d,h", SIZES)
def test_agrees_with_torch_to_float32_rounding(d, h):
    """Rows spread over the GELU's range (tails included, where 1 + erf nearly cancels) and one constant row
    (zero variance: the layer norm leaves the bias)."""
    b = _block(d, h, seed=d)
    x = torch.randn(37, d) * torch.logspace(-2, 1.3, 37).unsqueeze(1)
    x[5] = 0.75
    with torch.no_grad():
        torch.testing.assert_close(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None), _torch(b, x),
                                   rtol=2e-5, atol=2e-5)


def test_gelu_tails_follow_the_exact_form():
    """The hidden units see +-6: GELU(-6) ~ -6e-9 (erfc's relative precision), GELU(6) ~ 6 (128 units: the
    AVX-512 block's GELU where it runs)."""
    b = _block(16, 128, seed=3)
    with torch.no_grad():
        b.mlp.c_fc.weight.zero_()
        b.mlp.c_fc.bias.copy_(torch.linspace(-6.0, 6.0, 128))
        x = torch.randn(3, 16)
        torch.testing.assert_close(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None), _torch(b, x),
                                   rtol=1e-6, atol=1e-6)


def test_far_negative_hidden_units_give_exactly_zero_as_torch():
    """Below x = -12.7 the GELU is -0 (torch's float32 value), not a denormal: scaled by 1e30 in c_proj, a
    denormal would show as ~1e-8."""
    b = _block(16, 128, seed=4)
    with torch.no_grad():
        b.mlp.c_fc.weight.zero_()
        b.mlp.c_fc.bias.fill_(-20.0)
        b.mlp.c_proj.weight.fill_(1e30)
        b.mlp.c_proj.bias.zero_()
        x = torch.randn(3, 16)
        assert torch.equal(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None), x)
        assert torch.equal(_torch(b, x), x)


def test_a_weight_swapped_through_data_is_read_again():
    """A weight replaced through ``.data`` (whose new storage may land at the old address, with a fresh version
    counter) must not be read from an earlier transposed copy (helper-100, when input_major cached: off by up to
    7.4 in 172 of 200 tries)."""
    b = _block(32, 128, seed=5)
    x = torch.randn(4, 32)
    with torch.no_grad():
        for _ in range(20):
            mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)
            old = b.mlp.c_fc.weight.data
            b.mlp.c_fc.weight.data = torch.empty(128, 32)
            del old
            b.mlp.c_fc.weight.data = torch.empty(128, 32).normal_()
            torch.testing.assert_close(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None), _torch(b, x),
                                       rtol=1e-4, atol=1e-4)  # N(0, 1) weights: larger sums
            b.mlp.c_proj.weight.mul_(1.5)  # in place: the version moves
            torch.testing.assert_close(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None), _torch(b, x),
                                       rtol=1e-4, atol=1e-4)  # N(0, 1) weights: larger sums


def test_models_the_kernel_does_not_fit_generate_in_torch():
    """A width over the kernel's 256 (TrajectoryConfig allows 512) and a model made under inference mode
    (no version counters) both generate."""
    from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig

    torch.manual_seed(0)
    wide = LoanTrajectoryModel(TrajectoryConfig(d_model=320, n_heads=8, n_layers=1, diffusion_steps=4)).eval()
    block = wide.blocks[0]
    assert not mlp_kernel.fits(block.ln_2, block.mlp.c_fc, block.mlp.c_proj)
    cohort = torch.eye(7).expand(6, 3, 7, 7).contiguous()
    cohort[:, :, 0] = torch.tensor([0.9, 0.05, 0.0, 0.0, 0.02, 0.03, 0.0])
    feats = torch.zeros(6, 24)
    assert wide.generate(feats, cohort, None, seed=1)["states"].shape == (1, 6, 3)
    with torch.inference_mode():
        model = LoanTrajectoryModel(TrajectoryConfig(d_model=32, n_heads=4, n_layers=1, diffusion_steps=4)).eval()
        assert model.generate(feats, cohort, None, seed=1)["states"].shape == (1, 6, 3)


def test_a_row_is_the_same_bits_whatever_the_batch_and_the_live_set():
    b = _block(32, 128, seed=1)
    x = torch.randn(50, 32)
    with torch.no_grad():
        whole = mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)
        live = torch.tensor([0, 3, 4, 17, 49])
        part = mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, live)
        alone = mlp_step(x[17:18], b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)
    assert torch.equal(part[live], whole[live])
    rest = torch.ones(50, dtype=torch.bool)
    rest[live] = False
    assert torch.equal(part[rest], x[rest])  # rows not wanted keep their input
    assert torch.equal(alone[0], whole[17])


def test_every_instruction_set_level_gives_the_same_bits(kernel_levels, monkeypatch):
    """Each size, and one whose hidden units are set to the GELU's edge values (its erfc cut at z = 9, the
    -0 region, both zeros, the sign switch, a NaN), at every level: the AVX-512 block's GELU is the scalar one."""
    cases = [(_block(d, h, seed=d), torch.randn(23, d)) for d, h in SIZES]
    units = torch.cat([torch.tensor([0.0, -0.0, 12.7279, -12.7279, 12.728, -12.728, -13.0, 40.0, -1e-30, 1e-30,
                                     1e30, -20.0]), torch.linspace(-14.0, 14.0, 116)])
    for hidden in (units, units.where(torch.arange(128) != 5, float("nan"))):  # a NaN unit makes its rows NaN
        edge = _block(16, 128, seed=9)
        with torch.no_grad():
            edge.mlp.c_fc.weight.zero_()
            edge.mlp.c_fc.bias.copy_(hidden)
        cases.append((edge, torch.randn(5, 16)))
    outs: list[list] = [[] for _ in cases]
    for march, module in kernel_levels(Path(mlp_kernel.__file__).with_name("_mlp_step.cpp")):
        monkeypatch.setattr(mlp_kernel, "_mlp_step", module)
        with torch.no_grad():
            for runs, (b, x) in zip(outs, cases):
                runs.append((march, mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)))
    for runs in outs:
        for march, out in runs[1:]:
            assert torch.equal(out.view(torch.int32), runs[0][1].view(torch.int32)), march  # NaN rows too


def test_every_level_computes_the_gelu_alike(kernel_levels):
    """The kernel's GELU itself (its ``gelu`` entry: the AVX-512 form where it runs), which the products after it
    can hide: edge values -- erfc's cut at z = 9 (|x| = 12.7279...) and the ulps around it, both zeros, the sign
    switch, subnormals, the float32 extremes, infinities, NaN -- and a dense sweep, bit for bit per level,
    and within 1e-6 of torch's float32 GELU (absolute, or relative for the large)."""
    cut = np.float32(9.0) / np.float32(0.70710678118654752)
    near = np.nextafter(np.repeat(cut, 41), np.float32(np.inf), dtype=np.float32)
    near = np.concatenate([cut + np.arange(-20, 21, dtype=np.float32) * np.spacing(cut), near])
    x = np.concatenate([near, -near, np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 3.4e38, -3.4e38, np.inf,
                                               -np.inf, np.nan], dtype=np.float32),
                        np.linspace(-30.0, 30.0, 60_001, dtype=np.float32)])
    xt = torch.from_numpy(x.copy())
    outs = []
    for march, module in kernel_levels(Path(mlp_kernel.__file__).with_name("_mlp_step.cpp")):
        y = torch.empty_like(xt)
        module.gelu(xt.numel(), xt.data_ptr(), y.data_ptr())
        outs.append((march, y))
    for march, y in outs[1:]:
        assert torch.equal(y.view(torch.int32), outs[0][1].view(torch.int32)), march
    finite = torch.isfinite(xt) & (xt.abs() < 1e30)
    want = torch.nn.functional.gelu(xt[finite])
    assert torch.all((outs[0][1][finite] - want).abs() <= 1e-6 * torch.clamp(want.abs(), min=1.0))


def test_the_block_takes_it_for_single_steps_on_a_fused_buffer_only():
    """Block.forward with a fused KVBuffer (a decoding step) runs the kernel: torch's numbers to float32
    rounding on the live rows; with autograd on, or several steps, it stays in torch."""
    from creditsim.nn.attention_kernel import available as attention_built
    from creditsim.nn.layers import KVBuffer

    if not attention_built():
        pytest.skip("the attention kernel was not built")
    b = _block(32, 128, seed=2)
    x = torch.randn(6, 1, 32)
    calls = []
    real = mlp_kernel.mlp_step

    def spy(*args):
        calls.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mlp_kernel, "mlp_step", spy)
        buf = b.attn.kv_buffer(6, 4, fused=True)
        buf.retain(torch.tensor([True, False, True, True, True, True]))
        with torch.no_grad():
            fused, _ = b(x, buf)
            eager, _ = b(x, KVBuffer(6, 1, 4, 32))
        assert calls == [1]
        live = torch.tensor([0, 2, 3, 4, 5])
        torch.testing.assert_close(fused[live], eager[live], rtol=2e-5, atol=2e-5)
        b(x, b.attn.kv_buffer(6, 4, fused=False))  # autograd on, torch buffer: no kernel
        assert calls == [1]


def test_bad_arguments_are_refused():
    b = _block(16, 64, seed=0)
    x = torch.randn(4, 16)
    with pytest.raises(ValueError, match="float32 CPU"):
        mlp_step(x.double(), b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)
    with pytest.raises(ValueError, match="rows of width 8 do not fit"):
        mlp_step(x[:, :8], b.ln_2, b.mlp.c_fc, b.mlp.c_proj, None)
    for live in ([1, 4], [0, 10_000_000, 3], [2, 1], [1, 1], [-1]):
        with pytest.raises(ValueError, match=r"strictly ascending and lie in \[0, 4\)"):
            mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, torch.tensor(live))
    with pytest.raises(ValueError, match="1-D tensor of integer row indices"):
        mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, torch.tensor([True, False, True, True]))
    assert torch.equal(mlp_step(x, b.ln_2, b.mlp.c_fc, b.mlp.c_proj, torch.tensor([], dtype=torch.int64)), x)


def test_an_in_place_step_copies_a_live_set_lying_in_its_rows():
    """MLPHalf in place over rows that hold the live set's own indices (a live row's bits): the kernel writes that
    row while it still has rows to read the indices of, so it reads a copy; the output is the same live set's held
    apart."""
    b = _block(32, 128, seed=2)
    x = torch.randn(12, 32)
    rows = torch.tensor([0, 2, 5, 7, 9])
    x.view(torch.int64)[0, :len(rows)] = rows  # row 0 is live and comes first: written before rows 2..9 are read
    with torch.no_grad():
        want = mlp_kernel.MLPHalf(b.ln_2, b.mlp.c_fc, b.mlp.c_proj)(x.clone(), rows.clone())
        mine = x.clone()
        inside = mine.view(torch.int64)[0, :len(rows)]
        got = mlp_kernel.MLPHalf(b.ln_2, b.mlp.c_fc, b.mlp.c_proj)(mine, inside, in_place=True)
    assert got is mine and torch.equal(got, want)
