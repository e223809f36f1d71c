"""Transformer blocks shared by the sequence models (TransitionTransformer, LoanTrajectoryModel).

A pre-norm GPT block over months (nanoGPT's layout). Parameter names (``ln_1``, ``attn.c_attn``,
``attn.c_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``) are part of the shipped checkpoints' format.

Autoregressive decoding keeps each layer's keys and values of the months seen so far, either as a
``(keys, values)`` tuple that grows by concatenation every step (:data:`KVCache`: a copy of the whole
past per step), or in a :class:`KVBuffer` allocated once for the whole sequence and written in place
(what :meth:`creditsim.loans.trajectory.LoanTrajectoryModel.generate` uses). Both give the same
attention bit for bit on the CPU (tests/nn): the attention kernel reads the buffer's filled prefix
through its strides, and each (row, head) is computed on its own, whatever the other rows held. A
buffer made ``fused`` runs single steps in the compiled kernel of :mod:`creditsim.nn.attention_kernel`
instead (the same attention to float32 rounding).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditsim.nn import attention_kernel, mlp_kernel

__all__ = ["CausalSelfAttention", "MLP", "Block", "KVBuffer", "FusedBlockStep", "fusable"]

KVCache = tuple[torch.Tensor, torch.Tensor]


class KVBuffer:
    """Preallocated key/value cache of one attention layer for ``max_len`` steps of ``batch`` sequences.

    ``keys`` and ``values`` are stored ``(R, max_len, nh, hs)`` for the ``R`` batch rows held (all
    ``batch`` at first; step-major within a row: the filled steps of a row's heads lie together in
    memory, which the CPU attention kernel reads faster than a ``(R, nh, max_len, hs)`` buffer's gaps
    between heads); steps ``0 .. length - 1`` are filled. :meth:`append` writes a step in place and
    returns the filled prefix as ``(R, nh, length, hs)`` views. :meth:`retain` lets a caller drop rows
    whose outputs it no longer needs (finished sequences): attention then runs on the held rows only
    and the dropped rows get a zero attention output.

    ``fused=True`` (float32 on the CPU, where :mod:`creditsim.nn.attention_kernel` is built; otherwise the
    flag is dropped) makes single steps run in that compiled kernel (:meth:`step`, :meth:`block_step`), and
    only there: every row stays where it lies, ``retain`` only records the live rows (:attr:`live`) and the
    kernel skips the others, so nothing is ever compacted and :attr:`rows` stays None. :meth:`append` refuses such a
    buffer (its dropped rows would be attended and not zeroed). A fused buffer made ``compact`` takes each
    step's rows wanted-first instead of batch rows: row ``i`` of the step is the ``i``-th wanted row (all
    ``batch`` rows until :meth:`retain` drops some), and rows after the wanted ones are padding, ignored
    (a caller that runs the layers on the wanted rows only, in batches padded to a size of its choosing).
    """

    #: compact the buffer once the dropped rows are at least this fraction of the rows held
    COMPACT_FRACTION = 1 / 16

    def __init__(self, batch: int, n_heads: int, max_len: int, head_size: int, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32, fused: bool = False,
                 compact: bool = False, storage: tuple[torch.Tensor, torch.Tensor] | None = None):
        shape = (batch, max_len, n_heads, head_size)
        self.fused = bool(fused) and fusable(device, dtype)
        self.compact = bool(compact) and self.fused
        if storage is not None:  # a caller's buffers, reused as they are: nothing before a step's write is read
            keys, values = storage if isinstance(storage, tuple) and len(storage) == 2 else (None, None)
            if (not self.fused or not isinstance(keys, torch.Tensor) or not isinstance(values, torch.Tensor)
                    or keys.shape != shape or values.shape != shape or keys.dtype != dtype or values.dtype != dtype
                    or not keys.is_contiguous() or not values.is_contiguous()
                    or attention_kernel.overlaps(keys, values)):
                raise ValueError(f"KVBuffer: storage for a fused buffer: two separate contiguous {dtype} tensors "
                                 f"of {shape} (keys, values) expected")
            self.keys, self.values = keys, values
        else:
            self.keys = torch.empty(shape, device=device, dtype=dtype)
            self.values = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0
        self.batch = batch
        self.rows: torch.Tensor | None = None  # (R,) long ascending batch rows held; None = all, in order
        self._wanted: torch.Tensor | None = None  # (batch,) bool rows still wanted (None = all)
        self.live: torch.Tensor | None = None  # fused: (n,) long ascending rows still wanted (None = all)

    @property
    def max_len(self) -> int:
        """Steps the buffer holds."""
        return self.keys.shape[1]

    def retain(self, keep: torch.Tensor) -> None:
        """Only the batch rows where ``keep`` ``(batch,)`` bool is set need outputs from the next step on.

        Rows dropped once cannot be kept again. The buffer is compacted to the kept rows (a copy of
        their filled steps) once the rows dropped since the last compaction reach
        :attr:`COMPACT_FRACTION` of the rows held; until then the dropped rows are still attended
        (their outputs are valid, merely unneeded). The kept rows' outputs do not change.
        """
        if keep.shape != (self.batch,) or keep.dtype != torch.bool:
            raise ValueError(f"KVBuffer.retain: expected a ({self.batch},) bool mask, "
                             f"got {keep.dtype} {tuple(keep.shape)}")
        if self._wanted is not None:
            if bool((keep & ~self._wanted).any()):
                raise ValueError("KVBuffer.retain: a row dropped earlier cannot be kept again")
        self._wanted = keep.clone()
        if self.fused:
            self.live = torch.nonzero(keep).view(-1)
            return
        held = self.rows if self.rows is not None else torch.arange(self.batch, device=keep.device)
        pos = torch.nonzero(keep[held]).view(-1)  # positions of the kept rows among those held
        n_held = held.shape[0]
        if n_held - pos.shape[0] < max(1.0, self.COMPACT_FRACTION * n_held):
            return
        filled = self.length
        for name in ("keys", "values"):
            old = getattr(self, name)
            new = torch.empty((pos.shape[0], *old.shape[1:]), device=old.device, dtype=old.dtype)
            new[:, :filled] = old[pos, :filled]
            setattr(self, name, new)
        self.rows = held[pos]

    def held(self, x: torch.Tensor) -> torch.Tensor:
        """The held rows ``(R, ...)`` of a ``(batch, ...)`` tensor (``x`` itself while all are held)."""
        return x if self.rows is None else x.index_select(0, self.rows)

    def scatter(self, y: torch.Tensor) -> torch.Tensor:
        """``(R, ...)`` outputs of the held rows -> ``(batch, ...)``, zero on the rows not held."""
        if self.rows is None:
            return y
        out = y.new_zeros((self.batch, *y.shape[1:]))
        return out.index_copy_(0, self.rows, y)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> KVCache:
        """Write the held rows of ``k``, ``v`` ``(batch, nh, T, hs)`` at steps ``length .. length + T - 1``;
        return the filled keys and values of the held rows as ``(R, nh, length, hs)`` views."""
        if self.fused:
            raise ValueError("KVBuffer: a fused buffer takes single steps outside autograd and dropout (step), "
                             "not append")
        lo, T = self.length, k.shape[2]
        nh, hs = self.keys.shape[2:]
        if k.shape != (self.batch, nh, T, hs) or v.shape != k.shape:
            raise ValueError(f"KVBuffer: a step of shape {tuple(k.shape)} / {tuple(v.shape)} does not fit a buffer "
                             f"of {self.batch} rows x {nh} heads x {hs}")
        if lo + T > self.max_len:
            raise ValueError(f"KVBuffer: {lo} + {T} steps exceed the {self.max_len} allocated")
        self.keys[:, lo:lo + T] = self.held(k).transpose(1, 2)
        self.values[:, lo:lo + T] = self.held(v).transpose(1, 2)
        self.length = lo + T
        return self.keys[:, :self.length].transpose(1, 2), self.values[:, :self.length].transpose(1, 2)

    def step(self, qkv: torch.Tensor) -> torch.Tensor:
        """One step in the compiled kernel (a ``fused`` buffer): ``qkv`` ``(batch, 3C)`` the step's queries,
        keys and values -> ``(batch, C)`` attention output, 0 on the rows not wanted; for a ``compact``
        buffer ``qkv`` ``(m, 3C)`` holds the wanted rows first (those of :attr:`live`, or all ``batch``, in
        order; ``m`` at least that many) -> ``(m, C)``, 0 on the padding. The step's keys and values are
        written at month :attr:`length`, which advances by one."""
        if not self.fused:
            raise ValueError("KVBuffer.step: this buffer was not made fused (see the class docstring)")
        if self.length >= self.max_len:
            raise ValueError(f"KVBuffer: {self.length} + 1 steps exceed the {self.max_len} allocated")
        y = attention_kernel.attention_step(qkv, self.keys, self.values, self.length, self.live, compact=self.compact)
        self.length += 1
        return y

    def block_step(self, x: torch.Tensor, ln: nn.LayerNorm, c_attn: nn.Linear, c_proj: nn.Linear) -> torch.Tensor:
        """A block's attention half for one step in the compiled kernel (:func:`attention_kernel.block_attention_step`):
        ``x`` ``(batch, C)`` (``(m, C)`` wanted rows first for a ``compact`` buffer) -> ``x + c_proj(attention(
        c_attn(ln(x))))`` on the wanted rows, ``x`` on the others; the keys and values written at :attr:`length`,
        which advances by one."""
        if not self.fused:
            raise ValueError("KVBuffer.block_step: this buffer was not made fused (see the class docstring)")
        if self.length >= self.max_len:
            raise ValueError(f"KVBuffer: {self.length} + 1 steps exceed the {self.max_len} allocated")
        y = attention_kernel.block_attention_step(x, ln, c_attn, c_proj, self.keys, self.values, self.length,
                                                  self.live, compact=self.compact)
        self.length += 1
        return y

    def _live_copy(self) -> torch.Tensor | None:
        """:attr:`live` as it is before a block's step, for both halves: a live set set from outside may lie in the
        buffers (or the rows) the attention half writes, and the feed-forward half reads it after (a single
        kernel call copies such a set itself: ``attention_kernel.rows_apart``); clone, not a conversion: a
        non-integer one is refused by the step's check rather than truncated."""
        return None if self.live is None else self.live.clone()


class FusedBlockStep:
    """A :class:`Block`'s decoding step on a fused :class:`KVBuffer`, for a decoding loop: both halves in the compiled
    kernels, as :meth:`Block.forward` runs them, the same bits, at less Python a step -- the fits, the buffer checks
    and the kernels' parameter tuples are redone only when a parameter or a buffer has changed
    (:func:`~creditsim.nn.attention_kernel.param_stamp`, and the copied weights' bits for an edit torch counts no
    version for: :class:`~creditsim.nn.attention_kernel.PreparedHalf`; a buffer swapped on the :class:`KVBuffer` is
    picked up, one whose storage was shrunk under it refused); the step's live rows are copied once and checked by
    each half. :meth:`make` gives None where :meth:`Block.forward`
    would not run both halves compiled (a torch buffer, a layer the kernels do not fit, dropout in training, or
    autograd on): then call the block."""

    def __init__(self, block: "Block", past: KVBuffer):
        self.past = past
        self._block = block
        self._attn = attention_kernel.BlockHalf(block.ln_1, block.attn.c_attn, block.attn.c_proj, past.keys,
                                                past.values)
        self._mlp = mlp_kernel.MLPHalf(block.ln_2, block.mlp.c_fc, block.mlp.c_proj)

    @classmethod
    def make(cls, block: "Block", past: object) -> "FusedBlockStep | None":
        if not all(block.compiled_halves(past, 1)):
            return None
        return cls(block, past)

    def __call__(self, x: torch.Tensor, in_place: bool = False) -> torch.Tensor:
        """``x`` ``(B, C)`` (``(m, C)`` wanted rows first for a ``compact`` buffer, as :meth:`KVBuffer.block_step`)
        -> the block's output rows; the buffer's month advances by one. ``in_place``: written over ``x``
        (contiguous, apart from the buffers; a caller's own intermediate) instead of a new tensor."""
        if torch.is_grad_enabled():
            raise ValueError("FusedBlockStep: the compiled step has no backward; call it under torch.no_grad()")
        past = self.past
        if past.length >= past.max_len:
            raise ValueError(f"KVBuffer: {past.length} + 1 steps exceed the {past.max_len} allocated")
        if past.keys is not self._attn.keys or past.values is not self._attn.values:  # the buffer's storage swapped
            block = self._block
            self._attn = attention_kernel.BlockHalf(block.ln_1, block.attn.c_attn, block.attn.c_proj, past.keys,
                                                    past.values)
        # a copy for both halves (a live set lying in x or the buffers would change under the kernels' writes),
        # each half checking it against the rows it indexes
        live = past._live_copy()
        y = self._attn(x, past.length, live, past.compact, in_place=in_place)
        past.length += 1
        # a compact step's rows are all computed (padding too), as Block.forward; y is the step's own
        return self._mlp(y, None if past.compact else live, in_place=True)


def fusable(device: torch.device | str | None, dtype: torch.dtype) -> bool:
    """Whether a :class:`KVBuffer` on ``device`` of ``dtype`` made ``fused=True`` is fused: float32 on the CPU,
    where :mod:`creditsim.nn.attention_kernel` is built."""
    return attention_kernel.available() and torch.device(device or "cpu").type == "cpu" and dtype == torch.float32


def _fused_step(past: object, n_steps: int, dropping: bool) -> bool:
    """Whether a layer's call is a decoding step for the compiled kernels: one step on a fused
    :class:`KVBuffer`, outside autograd and without dropout (the kernels have neither backward nor dropout)."""
    return (isinstance(past, KVBuffer) and past.fused and n_steps == 1 and not torch.is_grad_enabled()
            and not dropping)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over months; month t attends to months <= t only.

    With ``past`` it runs autoregressive steps. ``past`` is either the keys and values of earlier
    months, each ``(B, nh, T_past, hs)`` (returned concatenated with the new ones; one step at a time:
    the new queries see every month, no mask), or a :class:`KVBuffer` (written in place and returned
    as is; any number of new steps, each seeing the cached months and the new ones up to itself).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def kv_buffer(self, batch: int, max_len: int, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32, fused: bool = False, compact: bool = False,
                  storage: tuple[torch.Tensor, torch.Tensor] | None = None) -> KVBuffer:
        """An empty :class:`KVBuffer` for ``batch`` sequences of up to ``max_len`` steps of this layer
        (``fused``: single steps in the compiled kernel where it applies; ``compact``: steps of the wanted
        rows first; ``storage``: a fused buffer's keys and values to reuse; see :class:`KVBuffer`)."""
        d_model = self.c_proj.in_features
        return KVBuffer(batch, self.n_heads, max_len, d_model // self.n_heads, device=device, dtype=dtype,
                        fused=fused, compact=compact, storage=storage)

    def forward(self, x: torch.Tensor, past: KVCache | KVBuffer | None = None
                ) -> tuple[torch.Tensor, KVCache | KVBuffer]:
        """``x`` ``(B, T, C)`` -> ``((B, T, C), cache)``: the new tuple of keys and values ``(B, nh, T_past + T,
        hs)``, or ``past`` itself when it is a :class:`KVBuffer` (then holding these steps too)."""
        B, T, C = x.size()
        if _fused_step(past, T, self.training and self.dropout > 0):
            y = past.step(self.c_attn(x).view(B, 3 * C))
            return self.resid_dropout(self.c_proj(y.view(B, 1, C))), past
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        present: KVCache | KVBuffer
        causal, mask = past is None, None
        if isinstance(past, KVBuffer):
            t0 = past.length
            k, v = past.append(k, v)  # (R, nh, t0 + T, hs) views of the buffer's held rows
            q = past.held(q)  # (R, nh, T, hs)
            present, causal = past, t0 == 0  # an empty buffer: the training path's causal attention
            if t0 and T > 1:  # several new steps after cached ones: step i sees months <= t0 + i
                mask = torch.ones(T, t0 + T, dtype=torch.bool, device=x.device).tril(diagonal=t0)
        else:
            if past is not None:
                k = torch.cat([past[0], k], dim=2)
                v = torch.cat([past[1], v], dim=2)
            present = (k, v)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal)
        if isinstance(past, KVBuffer):
            y = past.scatter(y)  # (B, nh, T, hs), zero on rows the buffer no longer holds
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y)), present


class MLP(nn.Module):
    """Position-wise feed-forward layer, ``d_model -> 4 d_model -> d_model`` with GELU."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block; returns the new hidden states and this layer's key/value cache."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, dropout)

    def compiled_halves(self, past: object, n_steps: int) -> tuple[bool, bool]:
        """Whether :meth:`forward` of ``n_steps`` steps with ``past`` runs its attention half, and its feed-forward
        half, in the compiled kernels (:class:`FusedBlockStep` runs where both do)."""
        attn = (_fused_step(past, n_steps, self.training and self.attn.dropout > 0)
                and attention_kernel.block_fits(self.ln_1, self.attn.c_attn, self.attn.c_proj))
        mlp = (_fused_step(past, n_steps, self.training and self.mlp.dropout.p > 0) and mlp_kernel.available()
               and mlp_kernel.fits(self.ln_2, self.mlp.c_fc, self.mlp.c_proj))
        return attn, mlp

    def forward(self, x: torch.Tensor, past: KVCache | KVBuffer | None = None
                ) -> tuple[torch.Tensor, KVCache | KVBuffer]:
        """``x`` ``(B, T, C)`` -> ``((B, T, C), cache)``; ``past`` and the cache as in :class:`CausalSelfAttention`.

        A single decoding step on a fused :class:`KVBuffer` runs both halves in the compiled kernels -- the
        attention half (layer norm, ``c_attn``, the step, ``c_proj``, residual) in
        :func:`~creditsim.nn.attention_kernel.block_attention_step`, the feed-forward half in
        :mod:`creditsim.nn.mlp_kernel` (the same values as torch to float32 rounding) -- for the buffer's live
        rows only: a row no longer wanted keeps its input there (finite, and unused)."""
        B, T, C = x.shape
        attn_compiled, mlp_compiled = self.compiled_halves(past, T)
        # a compact step's rows are all computed (padding too); else the live set as it is before the step,
        # copied (FusedBlockStep likewise): one lying in the buffers would change under the attention half's writes
        live = None if not mlp_compiled or past.compact else past._live_copy()
        if attn_compiled:
            x = past.block_step(x.reshape(B, C), self.ln_1, self.attn.c_attn, self.attn.c_proj).view(B, 1, C)
            present = past
        else:
            a, present = self.attn(self.ln_1(x), past)
            x = x + a
        if mlp_compiled:  # else torch (e.g. d_model > 256)
            y = mlp_kernel.mlp_step(x.view(B, C), self.ln_2, self.mlp.c_fc, self.mlp.c_proj, live)
            return y.view(B, 1, C), present
        return x + self.mlp(self.ln_2(x)), present
