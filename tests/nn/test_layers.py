"""Transformer layers: the preallocated key/value cache (KVBuffer) against the concatenating cache and the
full causal pass, row dropping (retain) and its compaction, and the buffer's errors."""

from __future__ import annotations

import pytest
import torch

from creditsim.nn.layers import Block, KVBuffer

D_MODEL, N_HEADS = 16, 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _blocks(n_layers: int = 2, seed: int = 0) -> list[Block]:
    torch.manual_seed(seed)
    return [Block(D_MODEL, N_HEADS, 0.0).eval() for _ in range(n_layers)]


def _full(blocks: list[Block], x: torch.Tensor) -> torch.Tensor:
    """``(B, T, d)`` outputs of the training path (past=None, causal attention over all steps)."""
    for b in blocks:
        x, _ = b(x)
    return x


def _incremental(blocks: list[Block], x: torch.Tensor, caches: list, steps: list[int] | None = None,
                 keep: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """``(B, T, d)`` outputs of decoding ``x`` ``(B, T, d)`` in pieces of ``steps`` steps (default one at
    a time) through ``caches`` (tuples or KVBuffers; a None entry is replaced by the returned cache).
    ``keep``: step -> ``(B,)`` rows to retain in the buffers before that step."""
    B, T, _ = x.shape
    steps = steps or [1] * T
    outs, t = [], 0
    with torch.no_grad():
        for n in steps:
            if keep and t in keep:
                for c in caches:
                    c.retain(keep[t])
            h = x[:, t:t + n]
            for i, b in enumerate(blocks):
                h, caches[i] = b(h, caches[i])
            outs.append(h)
            t += n
    assert t == T
    return torch.cat(outs, dim=1)


def _buffers(blocks: list[Block], B: int, T: int) -> list[KVBuffer]:
    return [b.attn.kv_buffer(B, T) for b in blocks]


def test_buffer_decoding_is_the_concatenating_cache_bit_for_bit_and_the_full_pass_to_rounding():
    blocks = _blocks()
    B, T = 7, 11
    x = torch.randn(B, T, D_MODEL)
    with torch.no_grad():
        full = _full(blocks, x)
    concat = _incremental(blocks, x, [None] * len(blocks))
    bufs = _buffers(blocks, B, T)
    buffered = _incremental(blocks, x, bufs)
    assert torch.equal(buffered, concat)
    torch.testing.assert_close(buffered, full, atol=1e-5, rtol=1e-5)
    assert all(b.length == T and b.rows is None for b in bufs)
    # the buffer holds each step's keys where the concatenating cache does
    past = None
    with torch.no_grad():
        for t in range(T):
            _, past = blocks[0].attn(blocks[0].ln_1(x[:, t:t + 1]), past)
    buf = KVBuffer(B, N_HEADS, T, D_MODEL // N_HEADS)
    with torch.no_grad():
        for t in range(T):
            blocks[0].attn(blocks[0].ln_1(x[:, t:t + 1]), buf)
    assert torch.equal(buf.keys.transpose(1, 2), past[0])
    assert torch.equal(buf.values.transpose(1, 2), past[1])


def test_buffer_decodes_several_steps_at_once_with_a_causal_mask():
    """A prefill of 4 steps, then 1, then 3 (queries after cached steps see only steps up to themselves)."""
    blocks = _blocks(seed=1)
    B, T = 3, 8
    x = torch.randn(B, T, D_MODEL)
    with torch.no_grad():
        full = _full(blocks, x)
    out = _incremental(blocks, x, _buffers(blocks, B, T), steps=[4, 1, 3])
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)
    # a buffer larger than the sequence: only the filled prefix is attended
    out = _incremental(blocks, x, [b.attn.kv_buffer(B, 3 * T) for b in blocks], steps=[2] * 4)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fraction", [1 / 16, 2.0])  # compact at once / never compact
def test_retained_rows_keep_their_outputs_bit_for_bit(monkeypatch, fraction):
    monkeypatch.setattr(KVBuffer, "COMPACT_FRACTION", fraction)
    blocks = _blocks(seed=2)
    B, T = 9, 10
    x = torch.randn(B, T, D_MODEL)
    ref = _incremental(blocks, x, _buffers(blocks, B, T))
    keep3 = torch.tensor([1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=torch.bool)
    keep6 = keep3 & torch.tensor([0, 1, 1, 1, 0, 1, 1, 1, 0], dtype=torch.bool)
    keep8 = torch.zeros(B, dtype=torch.bool)
    bufs = _buffers(blocks, B, T)
    out = _incremental(blocks, x, bufs, keep={3: keep3, 6: keep6})
    for t, keep in ((3, keep3), (6, keep6)):
        end = T if t == 6 else 6
        assert torch.equal(out[keep, t:end], ref[keep, t:end])
        # dropped rows get a zero attention output once compacted away, and are still attended before
        assert torch.equal(out[~keep, t:end], ref[~keep, t:end]) == (fraction > 1)
    assert torch.equal(out[:, :3], ref[:, :3])
    if fraction < 1:
        assert torch.equal(bufs[0].rows, torch.nonzero(keep6).view(-1))
        assert bufs[0].keys.shape[0] == int(keep6.sum())
        # the compacted buffer holds the kept rows' steps as they were written
        assert torch.equal(bufs[0].keys[:, :T], _key_steps(blocks, x, T)[keep6])
    else:
        assert bufs[0].rows is None and bufs[0].keys.shape[0] == B
    out = _incremental(blocks, x, _buffers(blocks, B, T), keep={3: keep3, 8: keep8})  # every row dropped
    assert torch.equal(out[keep3, :8], ref[keep3, :8])


def _key_steps(blocks: list[Block], x: torch.Tensor, T: int) -> torch.Tensor:
    """``(B, T, nh, hs)`` first-layer keys of every step, from the concatenating cache."""
    past = None
    with torch.no_grad():
        for t in range(T):
            _, past = blocks[0].attn(blocks[0].ln_1(x[:, t:t + 1]), past)
    return past[0].transpose(1, 2)


def test_buffer_errors():
    buf = KVBuffer(2, N_HEADS, 3, 4)
    k = torch.zeros(2, N_HEADS, 2, 4)
    buf.append(k, k)
    with pytest.raises(ValueError, match="exceed the 3 allocated"):
        buf.append(k, k)
    with pytest.raises(ValueError, match="does not fit"):
        buf.append(torch.zeros(3, N_HEADS, 1, 4), torch.zeros(3, N_HEADS, 1, 4))
    with pytest.raises(ValueError, match="bool mask"):
        buf.retain(torch.ones(3, dtype=torch.bool))
    buf.retain(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="cannot be kept again"):
        buf.retain(torch.tensor([True, True]))
