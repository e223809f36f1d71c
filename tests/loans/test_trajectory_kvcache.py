"""LoanTrajectoryModel.generate's preallocated key/value cache against the concatenating cache it replaced.

generate keeps each block's keys and values in a :class:`~creditsim.nn.layers.KVBuffer` written in place,
and attends only for the paths still live (absorbed paths are dropped from the buffers, which compact).
Here the same generation runs through a cache that concatenates every month and attends for every path
(the former code path), and every output must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig, remaining_term
from creditsim.nn.layers import CausalSelfAttention, KVBuffer
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class _ConcatCache(KVBuffer):
    """The former cache: ``torch.cat`` of the past and the new step, every row attended, no buffer."""

    def __init__(self, batch: int):  # no preallocation, on purpose
        self.batch, self.rows, self.length, self.fused = batch, None, 0, False
        self.past: tuple[torch.Tensor, torch.Tensor] | None = None

    def retain(self, keep: torch.Tensor) -> None:
        pass

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.past is not None:
            k, v = torch.cat([self.past[0], k], dim=2), torch.cat([self.past[1], v], dim=2)
        self.past, self.length = (k, v), self.length + k.shape[2]
        return k, v


def _book(B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features with remaining terms of 1..3 T months (many paths mature inside the horizon), random
    cohort matrices with a sizeable default and prepayment rate, a macro path."""
    from creditsim.features import LOAN_FEATURES

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, size=(B, 24))
    i_term, (_, mu, sd) = next((i, f) for i, f in enumerate(LOAN_FEATURES) if f[0] == "remaining_term_years")
    x[:, i_term] = (rng.integers(1, 3 * T, B) / 12.0 - mu) / sd
    x[:, 19:23] = np.eye(4)[rng.integers(0, 4, B)]
    w = rng.gamma(0.5, size=(4, T, N_STATES, N_STATES)) * ALLOWED_TRANSITIONS
    w[:, :, np.arange(N_STATES), np.arange(N_STATES)] += 0.5
    w[:, :, 0, 0] += 6.0
    cohort = torch.tensor((w / w.sum(-1, keepdims=True))[rng.integers(0, 4, B)], dtype=torch.float32)
    macro = torch.tensor(rng.normal(0.03, 0.02, size=(T, 9)), dtype=torch.float32)
    return torch.tensor(x, dtype=torch.float32), cohort, macro


def _generate(model: LoanTrajectoryModel, monkeypatch, concat: bool, **kw) -> tuple[dict, list]:
    made: list = []
    kv_buffer = CausalSelfAttention.kv_buffer

    def spy(self, batch, max_len, **kwargs):
        buf = _ConcatCache(batch) if concat else kv_buffer(self, batch, max_len, **kwargs)
        made.append(buf)
        return buf

    with monkeypatch.context() as m:
        m.setattr(CausalSelfAttention, "kv_buffer", spy)
        out = model.generate(*kw.pop("inputs"), **kw)
    return out, made


@pytest.mark.parametrize("fraction", [KVBuffer.COMPACT_FRACTION, 0.5, 2.0])
def test_generate_with_the_preallocated_cache_is_the_concatenating_cache_bit_for_bit(monkeypatch, fraction):
    monkeypatch.setattr(KVBuffer, "COMPACT_FRACTION", fraction)
    model = LoanTrajectoryModel.from_pretrained()
    model.fused_kernels = False  # torch's buffers (the compiled step: tests/nn/test_attention_kernel.py)
    B, T = 600, 30
    inputs = _book(B, T, 1)
    init = np.random.default_rng(2).integers(0, 4, B)
    for kw in (dict(n_samples=2, seed=5, idio_scale=0.5), dict(seed=6, chunk_size=256, initial_states=init)):
        new, bufs = _generate(model, monkeypatch, False, inputs=inputs, **kw)
        old, _ = _generate(model, monkeypatch, True, inputs=inputs, **kw)
        assert new.keys() == old.keys()
        for k in new:
            assert new[k].dtype == old[k].dtype and torch.equal(new[k].nan_to_num(-7.0), old[k].nan_to_num(-7.0)), k
        absorbed = new["states"][..., T // 2] >= 4
        assert 0.2 < absorbed.float().mean() < 0.95  # the drop / compaction paths were exercised
        assert all(b.length == T for b in bufs)
        if fraction < 1:
            assert all(b.rows is not None and b.keys.shape[0] < b.batch for b in bufs)
        else:
            assert all(b.rows is None and b.keys.shape[0] == b.batch for b in bufs)


def test_generate_attends_only_for_live_paths(monkeypatch):
    """After the last month, each compacted buffer holds (at least) the paths live in that month; each
    fused buffer (the compiled step) keeps every row and attends for exactly those paths."""
    model = LoanTrajectoryModel.from_pretrained()
    B, T = 300, 24
    model.fused_kernels = False
    out, bufs = _generate(model, monkeypatch, False, inputs=_book(B, T, 3), seed=1)
    live = (out["states"][0, :, T - 2] <= 3).nonzero().view(-1)  # live entering the last month
    for b in bufs:
        held = b.rows if b.rows is not None else torch.arange(B)
        assert set(live.tolist()) <= set(held.tolist())
        assert len(held) <= len(live) / (1 - KVBuffer.COMPACT_FRACTION) + 1
    model.fused_kernels = True
    fused_out, fused_bufs = _generate(model, monkeypatch, False, inputs=_book(B, T, 3), seed=1)
    assert torch.equal(fused_out["states"], out["states"])
    for b in fused_bufs:
        assert b.fused and b.rows is None and b.keys.shape[0] == B and torch.equal(b.live, live)


def test_fused_months_run_the_live_paths_alone_and_give_the_eager_paths(monkeypatch):
    """With the compiled kernels a month's layers run on the live paths only (compact steps, padded to a
    multiple of _LIVE_STEP_ROWS rows, fewer than the batch once paths are absorbed), and the paths are the
    eager (every row) run's."""
    from creditsim.loans import trajectory
    from creditsim.nn import attention_kernel

    model = LoanTrajectoryModel.from_pretrained()
    B, T = 300, 24
    inputs = _book(B, T, 3)
    model.fused_kernels = False
    eager = model.generate(*inputs[:2], None, seed=1)
    seen: list[tuple[int, bool]] = []
    step = attention_kernel.BlockHalf.__call__  # a block's attention half, the step inside it

    def spy(self, x, t, live, compact=False, **kw):
        seen.append((x.shape[0], compact))
        return step(self, x, t, live, compact, **kw)

    monkeypatch.setattr(attention_kernel.BlockHalf, "__call__", spy)
    model.fused_kernels = True
    fused = model.generate(*inputs[:2], None, seed=1)
    assert torch.equal(fused["states"], eager["states"])
    torch.testing.assert_close(fused["balances"], eager["balances"], rtol=1e-5, atol=1e-3)
    assert seen and all(c and n % trajectory._LIVE_STEP_ROWS == 0 for n, c in seen)
    assert seen[0][0] >= B and min(n for n, _ in seen) < B


def test_buffered_steps_match_the_teacher_forced_pass():
    """The model's blocks decoding month by month through KVBuffers give the full causal pass's hidden
    states (to float rounding): a buffer written at a wrong month or attended over a wrong prefix fails."""
    torch.manual_seed(0)
    cfg = TrajectoryConfig(d_model=16, n_heads=4, n_layers=2, diffusion_steps=5, diffusion_hidden=16, dropout=0.0,
                           max_months=24)
    model = LoanTrajectoryModel(cfg).eval()
    B, T = 6, 9
    feats, cohort, _ = _book(B, T, 4)
    states = model.generate(feats, cohort, None, seed=0)["states"][0].long()  # allowed moves by construction
    with torch.no_grad():
        full = model(feats, cohort, states)["hidden"]
    prev = torch.cat([torch.zeros(B, 1, dtype=torch.long), states[:, :-1]], 1)
    macro = torch.zeros(B, T, 9)  # the anchors (macro_path None), standardised
    rem = remaining_term(feats)
    bufs = [b.attn.kv_buffer(B, T) for b in model.blocks]
    with torch.no_grad():
        for t in range(T):
            x, _ = model._embed(feats, cohort[:, t:t + 1], macro[:, t:t + 1], prev[:, t:t + 1], rem, t)
            for block, buf in zip(model.blocks, bufs):
                x, _ = block(x, buf)
            torch.testing.assert_close(model.ln_f(x)[:, 0], full[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("per_loan_macro", [False, True])
def test_live_tokens_from_tables_are_the_per_month_tokens(per_loan_macro):
    """The compiled step's tokens (LoanTrajectoryModel._live_tokens: feat_proj, macro_proj and term_proj read
    from per-chunk tables) are :meth:`_tokens` of the same rows, bit for bit, at every month -- months to
    maturity on both sides of the clamp at -12 and 120 included, and a macro path per scenario (the macro
    table) or per loan (macro_proj per month). A table off by one row, or its terms added in another order,
    fails it."""
    from creditsim.loans import trajectory

    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=32, n_heads=4, n_layers=1, diffusion_steps=4,
                                                 diffusion_hidden=8, max_months=24)).eval()
    g = torch.Generator().manual_seed(5)
    N, T, S = 300, 24, 3
    feats = torch.randn(N, model.config.n_loan_features, generator=g)
    rem = torch.randint(-20, 160, (N,), generator=g)
    rem[:4] = torch.tensor([1, 13, 121, 133])  # left = rem - 1 - t hits 0, -12 and 120 at some month
    R = N if per_loan_macro else S
    macro = torch.randn(R, T, model.config.n_macro_vars, generator=g)
    macro_row = torch.arange(N) if per_loan_macro else torch.randint(0, S, (N,), generator=g)
    paths = trajectory._PathInputs(feats, torch.empty(0), torch.zeros(N, dtype=torch.long), macro, macro_row, rem,
                                   torch.empty(0), torch.arange(N), {})
    with torch.no_grad():
        for t in range(T):
            rows = trajectory._padded_rows(torch.randperm(N, generator=g)[:150 + t].sort().values)
            m = rows.numel()
            prev = torch.randint(0, N_STATES, (m,), generator=g)
            log_rows = torch.log(torch.rand(m, 1, N_STATES, generator=g) + 1e-3)
            got = model._live_tokens(t, paths, rows, prev, log_rows)
            want, _ = model._tokens(feats[rows], log_rows, macro[macro_row[rows], t].unsqueeze(1), prev.view(m, 1),
                                    rem[rows], t)
            assert got.shape == (m, 1, 32)
            assert torch.equal(got, want), t
    assert ("macro" in paths.tables) is not per_loan_macro


def test_generate_reads_weights_edited_through_data_again():
    """The compiled steps read each linear's weight from a transposed copy; after ``weight.data.mul_`` (no version
    moves) a second generate must use the new weights: the same paths as the eager run of the edited model, not
    the first run's (before the fix: the first run's, silently)."""
    model = LoanTrajectoryModel.from_pretrained()
    inputs = _book(200, 18, 3)
    first = model.generate(*inputs[:2], None, seed=1)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_attn.weight.data.mul_(0.3)
            block.mlp.c_fc.weight.data.mul_(0.3)
    fused = model.generate(*inputs[:2], None, seed=1)
    model.fused_kernels = False
    eager = model.generate(*inputs[:2], None, seed=1)
    assert not torch.equal(fused["states"], first["states"])
    assert torch.equal(fused["states"], eager["states"])
    torch.testing.assert_close(fused["balances"], eager["balances"], rtol=1e-5, atol=1e-3)
