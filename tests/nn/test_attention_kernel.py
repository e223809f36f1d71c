"""The compiled autoregressive attention step (creditsim.nn.attention_kernel) and the fused KVBuffer: against
torch's scaled_dot_product_attention, the buffer writes, live rows, row invariance, instruction-set levels,
errors, and a decoded sequence against the torch buffer path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from creditsim.nn import attention_kernel
from creditsim.nn.attention_kernel import attention_step, block_attention_step
from creditsim.nn.layers import Block, KVBuffer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NH, HS, M = 4, 8, 24
C = NH * HS


#: head layouts (nh, hs) the kernel runs differently: the shipped model's 4 x 8 (compiled for that size and,
#: with AVX-512, two head pairs per register pass), 2 x 8 and 6 x 8 (one pair left over), 3 x 5 (generic only)
LAYOUTS = [(NH, HS), (2, 8), (6, 8), (3, 5)]


def _case(B: int, t: int, seed: int = 0, nh: int = NH, hs: int = HS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(B, M, nh, hs, generator=g)
    values = torch.randn(B, M, nh, hs, generator=g)
    keys[:, t + 1:] = float("nan")  # months after t must never be read
    values[:, t + 1:] = float("nan")
    qkv = torch.randn(B, 3 * nh * hs, generator=g) * 2.0
    return qkv, keys, values


def _sdpa(qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int) -> torch.Tensor:
    B, _, nh, hs = keys.shape
    q = qkv[:, :nh * hs].view(B, nh, 1, hs)
    k = keys[:, :t + 1].transpose(1, 2)
    v = values[:, :t + 1].transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v).view(B, nh * hs)


def test_the_test_install_built_the_kernel():
    assert attention_kernel.available()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("t", [0, 1, 5, 15, 16, 17, M - 1])
def test_step_writes_the_month_and_is_softmax_attention(t, layout):
    B, (nh, hs) = 21, layout
    C = nh * hs
    qkv, keys, values = _case(B, t, seed=t, nh=nh, hs=hs)
    out = attention_step(qkv, keys, values, t, None)
    assert torch.equal(keys[:, t].reshape(B, C), qkv[:, C:2 * C])
    assert torch.equal(values[:, t].reshape(B, C), qkv[:, 2 * C:])
    torch.testing.assert_close(out, _sdpa(qkv, keys, values, t), rtol=0, atol=3e-6)


def test_only_the_live_rows_are_computed_and_written():
    B, t = 30, 9
    qkv, keys, values = _case(B, t, seed=3)
    before_k, before_v = keys.clone(), values.clone()
    live = torch.tensor([0, 4, 5, 17, 29])
    out = attention_step(qkv, keys, values, t, live)
    dead = torch.ones(B, dtype=torch.bool)
    dead[live] = False
    assert (out[dead] == 0).all()
    assert torch.equal(keys[dead].nan_to_num(), before_k[dead].nan_to_num())  # month t of a dead row untouched
    assert torch.equal(values[dead].nan_to_num(), before_v[dead].nan_to_num())
    torch.testing.assert_close(out[live], _sdpa(qkv, keys, values, t)[live], rtol=0, atol=3e-6)


def test_a_rows_output_is_the_same_bits_alone_or_in_any_batch():
    B, t = 40, 13
    qkv, keys, values = _case(B, t, seed=5)
    whole = attention_step(qkv, keys.clone(), values.clone(), t, None)
    for rows in ([7], [0, 39], list(range(3, 40, 4))):
        idx = torch.tensor(rows)
        alone = attention_step(qkv[idx].contiguous(), keys[idx].contiguous(), values[idx].contiguous(), t, None)
        assert torch.equal(alone, whole[idx]), rows
        as_live = attention_step(qkv, keys.clone(), values.clone(), t, idx)
        assert torch.equal(as_live[idx], whole[idx]), rows


def test_compact_rows_give_the_live_rows_bits_and_write_the_same_buffers():
    """A caller that ran the layers on the live rows alone hands their qkv in live order (compact): the
    outputs are the full-batch step's live rows bit for bit, and the buffers get the same month t."""
    B, t = 30, 9
    qkv, keys, values = _case(B, t, seed=3)
    live = torch.tensor([0, 4, 5, 17, 29])
    k_full, v_full, k_comp, v_comp = keys.clone(), values.clone(), keys.clone(), values.clone()
    full = attention_step(qkv, k_full, v_full, t, live)
    compact = attention_step(qkv[live].contiguous(), k_comp, v_comp, t, live, compact=True)
    assert compact.shape == (5, NH * HS)
    assert torch.equal(compact, full[live])
    assert torch.equal(k_comp.nan_to_num(), k_full.nan_to_num()) and torch.equal(v_comp.nan_to_num(), v_full.nan_to_num())
    # padding rows after the live ones are ignored and get a zero output
    padded = torch.cat([qkv[live], torch.randn(3, qkv.shape[1])]).contiguous()
    out = attention_step(padded, keys.clone(), values.clone(), t, live, compact=True)
    assert torch.equal(out[:5], full[live]) and (out[5:] == 0).all()
    with pytest.raises(ValueError, match=r"qkv \(at least 5, 96\)"):
        attention_step(qkv[:3].contiguous(), keys, values, t, live, compact=True)


def test_a_compact_buffer_takes_its_wanted_rows_first():
    buf = KVBuffer(6, NH, 5, HS, fused=True, compact=True)
    assert buf.compact and buf.live is None  # every row wanted
    assert not KVBuffer(6, NH, 5, HS, compact=True).compact  # only a fused buffer steps compact
    g = torch.Generator().manual_seed(0)
    q0 = torch.randn(6, 3 * NH * HS, generator=g)
    assert buf.step(torch.cat([q0, q0[:2]])).shape == (8, NH * HS)  # month 0: all six, then padding
    buf.retain(torch.tensor([True, False, True, True, False, True]))
    assert buf.live.numel() == 4
    with pytest.raises(ValueError, match="at least 4"):
        buf.step(torch.zeros(3, 3 * NH * HS))


def test_a_block_step_on_the_live_rows_alone_is_the_full_steps_bits():
    """What the trajectory engine relies on: a decoding step of a whole block (layer norms, torch's linears,
    both compiled kernels) run on the live rows alone gives those rows the full batch's numbers, bit for bit,
    and the next step still sees the same keys and values."""
    from creditsim.nn.layers import Block

    torch.manual_seed(0)
    block = Block(NH * HS, NH, 0.0).eval()
    B = 96  # trajectory._LIVE_STEP_ROWS: a batch size MKL's AVX-512 and AVX2 kernels round row by row alike
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(B, 1, NH * HS, generator=g) for _ in range(3)]
    live = torch.ones(B, dtype=torch.bool)
    live[[0, 3, 4, 20, 36, 47]] = False
    rows = torch.nonzero(live).view(-1)
    full, comp = KVBuffer(B, NH, 4, HS, fused=True), KVBuffer(B, NH, 4, HS, fused=True, compact=True)
    with torch.no_grad():
        for t, x in enumerate(xs):
            if t:
                full.retain(live)
                comp.retain(live)
            y_full, _ = block(x, full)
            want = x if t == 0 else x[rows]
            y_comp, _ = block(torch.cat([want, want[-1:].expand(B - len(want), 1, NH * HS)]), comp)  # padded to 96
            assert torch.equal(y_comp[:len(want)], y_full if t == 0 else y_full[rows]), t


def test_every_instruction_set_level_gives_the_same_bits(kernel_levels, monkeypatch):
    """Baseline, v3 and v4 builds agree bit for bit, per layout: v4 runs whole groups of 16 live rows as vector
    lanes (hs = 8, nh even) and the weighted sums in its AVX-512 block, the others every row alone. Cases: one
    group and a remainder, several groups of a sparse live set (plain and compact), the first and the last
    month, and scores large enough to drive most softmax weights to the exp's floor."""
    cases = {}
    for layout in LAYOUTS:
        nh, hs = layout
        g = torch.Generator().manual_seed(11)
        live = torch.nonzero(torch.rand(70, generator=g) < 0.6).view(-1)  # > 2 groups, not a multiple of 16
        for B, t, rows, compact, q_scale in ((19, 11, None, False, 1.0), (70, 0, live, False, 1.0),
                                             (70, M - 1, live, True, 1.0), (37, 16, None, False, 40.0)):
            qkv, keys, values = _case(B, t, seed=7 + t, nh=nh, hs=hs)
            qkv[:, :nh * hs] *= q_scale
            if compact:
                qkv = torch.cat([qkv[rows], qkv[:5]])  # the wanted rows first, then padding
            cases[layout, B, t] = (qkv, keys, values, rows, compact)
    halves = {layout: _half(*layout, seed=3) for layout in LAYOUTS}
    outs: dict[tuple, list] = {key: [] for key in cases}
    for march, module in kernel_levels(Path(attention_kernel.__file__).with_name("_attention_step.cpp")):
        monkeypatch.setattr(attention_kernel, "_attention_step", module)
        for key, (qkv, keys, values, rows, compact) in cases.items():
            k, v = keys.clone(), values.clone()
            outs[key].append((march, attention_step(qkv, k, v, key[2], rows, compact=compact), k, v))
            x = qkv[:, :key[0][0] * key[0][1]] * 0.7  # the block half, from rows of the step's width
            k, v = keys.clone(), values.clone()
            outs[key].append((march, block_attention_step(x, *halves[key[0]], k, v, key[2], rows, compact=compact),
                              k, v))
    for key, runs in outs.items():  # per level: the step, then the block half
        for i, (march, out, k, v) in enumerate(runs[2:]):
            ref = runs[i % 2]
            assert torch.equal(out, ref[1]), (key, march, i % 2)
            for buf, want in ((k, ref[2]), (v, ref[3])):  # bit patterns: the NaN months after t too
                assert torch.equal(buf.view(torch.int32), want.view(torch.int32)), (key, march)


def _half(nh: int, hs: int, seed: int) -> tuple[torch.nn.LayerNorm, torch.nn.Linear, torch.nn.Linear]:
    """A block's ln_1, c_attn and c_proj of width nh * hs with random (non-default) parameters."""
    torch.manual_seed(seed)
    C = nh * hs
    ln, c_attn, c_proj = torch.nn.LayerNorm(C), torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.normal_(0.0, 0.2)
    return ln, c_attn, c_proj


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("t", [0, 16, M - 1])
def test_the_block_half_is_the_torch_half(t, layout):
    """block_attention_step = x + c_proj(attention(c_attn(ln_1(x)))) as torch computes it, on 37 rows (two
    groups of 16 and a remainder where groups apply), with the month's keys and values written; rows not
    wanted keep x."""
    B, (nh, hs) = 37, layout
    C = nh * hs
    ln, c_attn, c_proj = _half(nh, hs, seed=t)
    _, keys, values = _case(B, t, seed=t + 1, nh=nh, hs=hs)
    x = torch.randn(B, C) * 2.0
    live = torch.tensor([i for i in range(B) if i % 7 != 3])
    with torch.no_grad():
        qkv = c_attn(ln(x))
        k_ref, v_ref = keys.clone(), values.clone()
        want = x + c_proj(attention_step(qkv, k_ref, v_ref, t, live))
        out = block_attention_step(x, ln, c_attn, c_proj, keys, values, t, live)
    torch.testing.assert_close(out[live], want[live], rtol=0, atol=2e-5)
    dropped = torch.tensor([i for i in range(B) if i % 7 == 3])
    assert torch.equal(out[dropped], x[dropped])
    torch.testing.assert_close(keys[live, t].reshape(-1, C), qkv[live, C:2 * C], rtol=0, atol=2e-6)
    torch.testing.assert_close(values[live, t].reshape(-1, C), qkv[live, 2 * C:], rtol=0, atol=2e-6)


def test_the_block_half_refuses_what_it_does_not_fit():
    ln, c_attn, c_proj = _half(NH, HS, seed=0)
    _, keys, values = _case(4, 2)
    x = torch.randn(4, C)
    with pytest.raises(ValueError, match="c_attn 32 -> 96"):
        block_attention_step(x, ln, torch.nn.Linear(C, 3 * C, bias=False), c_proj, keys, values, 2, None)
    with pytest.raises(ValueError, match=r"x \(4, 32\) rows"):
        block_attention_step(x[:, :16], ln, c_attn, c_proj, keys, values, 2, None)
    with pytest.raises(ValueError, match="strictly ascending"):
        block_attention_step(x, ln, c_attn, c_proj, keys, values, 2, torch.tensor([3, 1]))
    assert not attention_kernel.block_fits(ln, c_attn.double(), c_proj)
    # one tensor as both keys and values (the step's value writes would overwrite the keys), or not 4-D
    with pytest.raises(ValueError, match="share memory"):
        block_attention_step(x, ln, c_attn, c_proj, keys, keys, 2, None)
    with pytest.raises(ValueError, match="share memory"):
        attention_step(torch.randn(4, 3 * C), keys, keys.view(keys.shape), 2, None)
    with pytest.raises(ValueError, match=r"\(B, max_len, nh, hs\) tensors of one shape"):
        attention_step(torch.randn(4, 3 * C), keys[0], values[0], 2, None)
    with pytest.raises(ValueError, match="two separate contiguous"):
        KVBuffer(4, NH, M, HS, fused=True, storage=(keys, keys))
    with pytest.raises(ValueError, match="two separate contiguous"):
        KVBuffer(4, NH, M, HS, fused=True, storage=(None, None))
    assert KVBuffer(4, NH, M, HS, fused=True, storage=(keys, values)).keys is keys


def test_bad_arguments_are_refused():
    qkv, keys, values = _case(4, 2)
    with pytest.raises(ValueError, match="0 <= t < 24"):
        attention_step(qkv, keys, values, M, None)
    with pytest.raises(ValueError, match=r"qkv \(4, 96\)"):
        attention_step(qkv[:, :10].contiguous(), keys, values, 2, None)
    with pytest.raises(ValueError, match="contiguous float32 CPU"):
        attention_step(qkv.double(), keys, values, 2, None)
    # the C++ writes at every index: each bad index set is refused before it gets there (helper-97: an
    # unsorted set with a huge index in the middle crashed the process)
    for live in ([1, 4], [0, 10_000_000, 3], [0, -5_000_000, 3], [2, 1], [1, 1], [-1]):
        with pytest.raises(ValueError, match=r"strictly ascending and lie in \[0, 4\)"):
            attention_step(qkv, keys, values, 2, torch.tensor(live))
    for live in (torch.tensor([True, False, True, True]), torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]])):
        with pytest.raises(ValueError, match="1-D tensor of integer row indices"):
            attention_step(qkv, keys, values, 2, live)
    assert attention_step(qkv, keys, values, 2, torch.tensor([], dtype=torch.int64)).abs().sum() == 0


def test_fused_buffer_keeps_every_row_records_the_live_ones_and_refuses_append():
    buf = KVBuffer(6, NH, 5, HS, fused=True)
    assert buf.fused
    keep = torch.tensor([True, False, True, True, False, True])
    buf.retain(keep)
    assert buf.rows is None and buf.keys.shape[0] == 6 and buf.live.tolist() == [0, 2, 3, 5]
    with pytest.raises(ValueError, match="cannot be kept again"):
        buf.retain(torch.ones(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="not append"):
        buf.append(torch.zeros(6, NH, 1, HS), torch.zeros(6, NH, 1, HS))
    for _ in range(5):
        buf.step(torch.randn(6, 3 * C))
    with pytest.raises(ValueError, match="5 \\+ 1 steps exceed the 5"):
        buf.step(torch.randn(6, 3 * C))
    assert not KVBuffer(6, NH, 5, HS, fused=True, dtype=torch.float64).fused  # float64 stays in torch
    with pytest.raises(ValueError, match="not made fused"):
        KVBuffer(6, NH, 5, HS).step(torch.randn(6, 3 * C))


def test_decoding_through_fused_buffers_matches_the_torch_buffers():
    """Two blocks decoding month by month, with rows dropped on the way: the fused buffers give the torch
    buffers' outputs on the rows still wanted, to float32 rounding, and zero attention on the others."""
    torch.manual_seed(0)
    blocks = [Block(C, NH, 0.0).eval() for _ in range(2)]
    B, T = 33, 12
    x = torch.randn(B, T, C)
    plain = [b.attn.kv_buffer(B, T) for b in blocks]
    fused = [b.attn.kv_buffer(B, T, fused=True) for b in blocks]
    assert all(f.fused for f in fused) and not any(p.fused for p in plain)
    wanted = torch.ones(B, dtype=torch.bool)
    with torch.no_grad():
        for t in range(T):
            if t in (4, 8):
                wanted &= torch.rand(B, generator=torch.Generator().manual_seed(t)) > 0.3
                for buf in plain + fused:
                    buf.retain(wanted.clone())
            a = b_ = x[:, t:t + 1]
            for block, p, f in zip(blocks, plain, fused):
                a, _ = block(a, p)
                b_, _ = block(b_, f)
            torch.testing.assert_close(b_[wanted], a[wanted], rtol=1e-5, atol=1e-5)
    assert 0 < int(wanted.sum()) < B


@pytest.mark.parametrize("compact", [False, True])
def test_a_prepared_block_step_is_the_blocks_bits_and_follows_changes(compact):
    """FusedBlockStep (the fits, buffer checks and parameter tuples redone only on a change) gives Block.forward's
    bits month by month as rows are dropped, in both buffer modes and in place, and writes the same buffers; a
    parameter edited in place, a buffer swapped on the KVBuffer and a bad live set (set from outside, or edited
    through numpy, which torch's version counter does not see) are followed or refused, never read stale; in place
    over the buffers themselves is refused; no step under autograd."""
    from creditsim.nn.layers import FusedBlockStep

    torch.manual_seed(0)
    block = Block(C, NH, 0.0).eval()
    B, T = 40, 8
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(T, B, C, generator=g)
    bufs = [KVBuffer(B, NH, T, HS, fused=True, compact=compact,  # zeroed: the rows never written compare too
                     storage=(torch.zeros(B, T, NH, HS), torch.zeros(B, T, NH, HS))) for _ in range(3)]
    assert FusedBlockStep.make(block, bufs[1]) is None  # under autograd: Block.forward's torch path
    wanted = torch.ones(B, dtype=torch.bool)
    with torch.no_grad():
        step, over = FusedBlockStep.make(block, bufs[1]), FusedBlockStep.make(block, bufs[2])
        assert step is not None and FusedBlockStep.make(block, KVBuffer(B, NH, T, HS)) is None
        for t in range(T):
            if t in (2, 4):
                wanted &= torch.rand(B, generator=g) > 0.3
                for buf in bufs:
                    buf.retain(wanted.clone())
            if t == 5:  # a parameter edited in place, and one buffer's storage swapped for a copy
                block.attn.c_attn.weight.mul_(1.25)
                block.mlp.c_fc.weight.add_(0.01)
                bufs[1].keys, bufs[1].values = bufs[1].keys.clone(), bufs[1].values.clone()
            rows = torch.nonzero(wanted).view(-1)
            x = xs[t][rows] if compact else xs[t]
            want, _ = block(x.unsqueeze(1), bufs[0])
            got = step(x)
            assert torch.equal(got, want[:, 0]), t
            mine = x.clone()
            assert over(mine, in_place=True) is mine and torch.equal(mine, got), t  # written over its input
        for buf in bufs[1:]:
            assert torch.equal(bufs[0].keys, buf.keys) and torch.equal(bufs[0].values, buf.values)
        n = len(rows) if compact else B
        bufs[1].length = bufs[2].length = 3
        bufs[1].live = torch.tensor([5, 2])  # not ascending: checked, refused before the C++ reads it
        with pytest.raises(ValueError, match="strictly ascending"):
            step(xs[3][:2] if compact else xs[3])
        bufs[2].live.numpy()[0] = B + 7  # retain's tensor edited where torch keeps no version: still checked
        with pytest.raises(ValueError, match="lie in"):
            over(xs[3][:n])
        bufs[0].retain(wanted.clone())
        bufs[0].length = 3
        inside = FusedBlockStep.make(block, bufs[0])
        with pytest.raises(ValueError, match="apart from the buffers"):
            inside(bufs[0].keys.view(-1, C)[:n], in_place=True)
    with pytest.raises(ValueError, match="no backward"):
        step(xs[0])


def _prepared_step(B: int, T: int, seed: int):
    """A block (seed 0), a fused buffer of ``B`` rows and ``T`` months, its FusedBlockStep (call under no_grad) and
    a generator for the inputs."""
    from creditsim.nn.layers import FusedBlockStep

    torch.manual_seed(0)
    block = Block(C, NH, 0.0).eval()
    buf = KVBuffer(B, NH, T, HS, fused=True)
    return block, buf, FusedBlockStep.make(block, buf), torch.Generator().manual_seed(seed)


def test_a_prepared_block_step_refuses_what_would_take_it_out_of_bounds():
    """helper-111's cases: buffers swapped for fewer rows than the live set names are refused (the live rows are
    checked against the rows the kernels index); a live set lying inside x is copied before an in-place step
    writes x (the step's bits are Block.forward's); a (1,) bias, which torch broadcasts, is not taken by the
    kernels (Block.forward runs it in torch) instead of read past its end."""
    from creditsim.nn.layers import FusedBlockStep

    B, T = 12, 4
    with torch.no_grad():
        block, buf, step, g = _prepared_step(B, T, seed=4)
        buf.retain(torch.arange(B) != 3)
        buf.keys, buf.values = torch.zeros(6, T, NH, HS), torch.zeros(6, T, NH, HS)
        with pytest.raises(ValueError, match="lie in"):
            step(torch.randn(6, C, generator=g))
        other = KVBuffer(B, NH, T, HS, fused=True)
        other.live = torch.tensor([0.5, 2.7])  # copied for the step, but not converted: refused, not truncated
        with pytest.raises(ValueError, match="integer row indices"):
            FusedBlockStep.make(block, other)(torch.randn(B, C, generator=g))
        # a live set stored inside x: the in-place step must not read the rows it has overwritten
        ref, mine = (KVBuffer(B, NH, T, HS, fused=True, storage=(torch.zeros(B, T, NH, HS), torch.zeros(B, T, NH, HS)))
                     for _ in range(2))
        x = torch.randn(B, C, generator=g)
        rows = torch.tensor([0, 2, 5, 7, 9])
        x.view(torch.int64)[9, :len(rows)] = rows  # a live row's bits hold the live indices: written by the step
        for b in (ref, mine):
            b.retain(torch.isin(torch.arange(B), rows))
        mine.live = x.view(torch.int64)[9, :len(rows)]
        want, _ = block(x.clone().unsqueeze(1), ref)
        assert torch.equal(FusedBlockStep.make(block, mine)(x, in_place=True), want[:, 0])
        wide = Block(C, NH, 0.0).eval()
        wide.attn.c_proj.bias = torch.nn.Parameter(torch.zeros(1))
        wide.mlp.c_proj.bias = torch.nn.Parameter(torch.zeros(1))
        assert FusedBlockStep.make(wide, KVBuffer(B, NH, T, HS, fused=True)) is None


@pytest.mark.parametrize("edit", ["data", "numpy", "restride"])
def test_weights_edited_where_torch_counts_no_version_are_read_again(edit):
    """``weight.data.mul_`` (the ``.data`` idiom of weight initialisation) and an edit through numpy move no version
    counter: the compiled halves, which read each linear's weight from a transposed copy, must still read the new
    weights -- a prepared step (FusedBlockStep), Block.forward and mlp_step alike give the bits of a fresh copy of
    the edited block (before the fix: the old weights, silently). Each edit also changes the output, so the test
    cannot pass by reading nothing new. ``restride``: a square weight re-strided over the same storage (``w.data =
    w.data.t()``: the same address, version and shape; helper-113's case)."""
    import copy

    from creditsim.nn import mlp_kernel
    from creditsim.nn.layers import FusedBlockStep

    torch.manual_seed(3)
    block = Block(C, NH, 0.0).eval()
    B, T = 16, 6
    g = torch.Generator().manual_seed(5)
    xs = torch.randn(T, B, C, generator=g)

    def fresh_buffer() -> KVBuffer:
        return KVBuffer(B, NH, T, HS, fused=True, storage=(torch.zeros(B, T, NH, HS), torch.zeros(B, T, NH, HS)))

    with torch.no_grad():
        mine, forward = fresh_buffer(), fresh_buffer()
        step = FusedBlockStep.make(block, mine)
        for t in range(T):
            if t == 3:
                before = block(xs[t].unsqueeze(1), fresh_buffer())[0][:, 0]
                if edit == "restride":  # alone: any other change to the half would make it gather again anyway
                    w = block.attn.c_proj.weight
                    w.data = w.data.t()
                else:
                    for w in (block.attn.c_attn.weight, block.attn.c_proj.weight, block.mlp.c_fc.weight,
                              block.mlp.c_proj.weight):
                        if edit == "data":
                            w.data.mul_(0.5)
                        else:
                            w.detach().numpy()[:] *= 0.5
                after = block(xs[t].unsqueeze(1), fresh_buffer())[0][:, 0]
                assert not torch.equal(after, before)  # the edit changes the block's output
            ref = copy.deepcopy(block)  # its own modules: nothing cached for them
            want_buf = copy.deepcopy(mine)
            want, _ = ref(xs[t].unsqueeze(1), want_buf)
            got = step(xs[t])
            assert torch.equal(got, want[:, 0]), t
            got_forward, _ = block(xs[t].unsqueeze(1), forward)
            assert torch.equal(got_forward[:, 0], want[:, 0]), t
            fresh_mlp = mlp_kernel.mlp_step(xs[t], ref.ln_2, ref.mlp.c_fc, ref.mlp.c_proj, None)
            assert torch.equal(mlp_kernel.mlp_step(xs[t], block.ln_2, block.mlp.c_fc, block.mlp.c_proj, None),
                               fresh_mlp), t


def test_a_buffer_shrunk_under_its_tensor_is_refused():
    """A key/value buffer whose storage is resized under it (the tensor keeps its shape) would be written past its
    allocation by the C++: refused, by the prepared step, Block.forward and attention_step, naming the buffer."""
    B, T = 32, 4
    with torch.no_grad():
        block, buf, step, g = _prepared_step(B, T, seed=1)
        step(torch.randn(B, C, generator=g))  # prepared and bound: later calls check the same tensors again
        buf.keys.untyped_storage().resize_(16)
        with pytest.raises(ValueError, match="keys buffer's storage holds 16 bytes"):
            step(torch.randn(B, C, generator=g))
        other = KVBuffer(B, NH, T, HS, fused=True)
        other.values.untyped_storage().resize_(64)
        with pytest.raises(ValueError, match="values buffer's storage holds 64 bytes"):
            block(torch.randn(B, 1, C, generator=g), other)
        qkv, keys, values = _case(B, 2)
        values.untyped_storage().resize_(values.numel() * 4 - 4)  # one element short
        with pytest.raises(ValueError, match="values buffer's storage"):
            attention_step(qkv, keys, values, 2, None)


def test_a_live_set_lying_in_the_buffers_is_read_before_the_step_writes():
    """Block.forward and attention_step with a live set stored inside the keys buffer, at a live row's month-t
    slot (which the step writes): the step reads a copy, so the outputs, and the feed-forward half's rows, are
    those of the same live set held apart (before the fix: the indices overwritten mid-step, then refused or
    worse)."""
    torch.manual_seed(0)
    block = Block(C, NH, 0.0).eval()
    B, T = 12, 4
    rows = torch.tensor([0, 2, 5, 7, 9])
    with torch.no_grad():
        ref, mine = (KVBuffer(B, NH, T, HS, fused=True, storage=(torch.zeros(B, T, NH, HS), torch.zeros(B, T, NH, HS)))
                     for _ in range(2))
        for b in (ref, mine):
            b.retain(torch.isin(torch.arange(B), rows))
        slot = mine.keys.view(torch.int64).view(B, -1)[9, :len(rows)]  # row 9, month 0: written by the step
        slot.copy_(rows)
        mine.live = slot
        x = torch.randn(B, 1, C)
        want, _ = block(x.clone(), ref)
        got, _ = block(x.clone(), mine)
        assert torch.equal(got, want)
        assert not torch.equal(slot, rows)  # the step did write over the set it was given
        qkv, keys, values = _case(B, 1)
        inside = keys.view(torch.int64).view(B, -1)[9, 16:16 + len(rows)]  # row 9, month 1
        inside.copy_(rows)
        want = attention_step(qkv, keys.clone(), values.clone(), 1, rows.clone())
        assert torch.equal(attention_step(qkv, keys, values, 1, inside), want)
