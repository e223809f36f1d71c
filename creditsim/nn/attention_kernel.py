"""One autoregressive attention step over a :class:`~creditsim.nn.layers.KVBuffer` as a fused C++ pass (CPU).

The trajectory model decodes a month at a time: each block's attention takes the step's ``(B, 3C)`` query,
key and value rows, writes the key and value into the row's buffer at month ``t`` and attends over
months ``0 .. t``. In torch that is a split, three views, two buffer writes, ``scaled_dot_product_attention``
on a single query (which runs at a few GFLOP/s: its kernel is built for long queries), a scatter back to
the batch and a transpose; and dropping finished rows means compacting the buffers (a copy of every
held row's filled months). The extension ``creditsim.nn._attention_step`` (``_attention_step.cpp``) does
the step in one pass per live row and skips finished rows where they lie, so nothing is compacted.

Per row and head ``h`` (``hs`` dimensions, ``scale = 1 / sqrt(hs)``, months ``l = 0 .. t``):
``s_l = scale * sum_d q_d k_ld``, ``w_l = exp(s_l - max s)``, ``y_d = (sum_l w_l v_ld) / sum_l w_l`` --
softmax attention, as ``scaled_dot_product_attention``; the two agree to float32 rounding. Every sum runs
in a fixed order (months ascending, a head's dimensions by the tree below, explicit ``fmaf``), a row reads
its own data only, and the file is built with ``-ffp-contract=off``: the output of a row is the same bits
whatever the batch, the live set, the thread or the instruction set. (Not a NaN's sign or payload: where two
NaNs meet in an add, x86 keeps the first operand's, and a compiler may order a commutative add either way;
helper-109 saw a row holding both +NaN and inf give -NaN on one level and +NaN on another. Such a row is
invalid input whatever its bits; the trajectory model stops on NaN values, creditsim.errors.NumericalError.)

Speed (2-core Xeon with AVX-512, 2026-12-07; one thread, 2,000 rows, months 0..59 in turn): 45 ns per
row-month as first written, 26 ns after these two, against about 13 ns to merely read a row-month's 256 bytes of keys
and values at the 19-20 GB/s one core streams here. Two changes, both bit for bit: the shipped 4 x 8 head
layout is compiled for its size (the head sums unroll), and the weighted sum of the values runs in an
AVX-512 block where the CPU has it (hs = 8, an even number of heads: two heads' weights per register,
the accumulators in registers -- the generic loop accumulates in the output row, which may alias the
values, so every month's multiply-add went through memory).

Inside the trajectory engine the buffers (2 x 61 MB per layer for 4,000 paths x 60 months) are far larger
than the caches, and a row's filled months are a run too short for the hardware prefetcher: the next live
row's months are prefetched while a row computes. With the caches flushed between steps (as in the
engine), 30 % of 4,000 rows live, months 20..56: 55-67 ns per row-month before, 41-50 ns after; bits
unchanged (a prefetch reads nothing into the arithmetic).

Where the AVX-512 block runs (hs = 8, an even number of heads), the live rows go 16 at a time as the lanes
of a vector (every row of a step has the same month count): a month's query-key products of the 16 rows
are summed per head by a pairwise tree of permutes and adds that ends with each head's 16 scores in one
register, and the whole softmax -- the 16 partial maxima and sums and their reductions, which row by row
were the step's fixed cost of ~250 ns a row -- runs across the rows, each lane the per-row sequence of
operations. A head's dot product is that tree, ``((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))``, on
every path (for hs = 8; other sizes sum in order), so the levels agree bit for bit (tests/nn). While a group
computes month ``l`` it prefetches month ``l`` of the next group's rows. Measured, one thread: 16 ns per
row-month with the caches warm before, 7.0 now; 8,000 rows streamed from memory 27 -> 15 ns; in the bench's
engine (2,000 loans x 60 months x 4 scenarios, same-process A/B over four alternations) the attention's
time 0.42-0.53 s before, 0.30 s now (a transpose in registers instead of the tree: 0.31 s; the next group
prefetched all at once instead of month by month: 0.32 s).

A transformer block's whole attention half -- ``x + c_proj(attention(c_attn(ln_1(x))))`` -- runs in the same
pass (:func:`block_attention_step`, what :class:`~creditsim.nn.layers.Block` calls on a fused buffer): in torch
the layer norm, the two linears and the residual add were four more passes a step and layer, with their
Python calls. The products run each output's sum in order with the accumulators in registers (two rows'
``c_attn`` and four rows' ``c_proj`` share each weight load where the AVX-512 block runs, C = 32). Measured
on 2,016 rows at month 30: the half around the step 0.31 ms in torch, 0.18-0.20 ms here; the bench's run
(same-process A/B, five alternations) 1.62 -> 1.58 s CPU.

Decision: optional, as :mod:`creditsim.loans.diffusion_kernel` (the same build, the same fall-back to torch).
Only a buffer made with ``fused=True`` (the trajectory model's ``generate``) on the CPU in float32 takes
this path, one step at a time and outside autograd; everything else, CUDA included, stays in torch.
"""

from __future__ import annotations

import abc
import math

import numpy as np
import torch
import torch.nn as nn

try:  # built by `pip install` (setup.py); optional, see the module docstring
    from creditsim.nn import _attention_step
except ImportError:  # pragma: no cover - exercised only where the install had no compiler
    _attention_step = None

__all__ = ["available", "attention_step", "block_attention_step", "BlockHalf", "block_fits", "checked_rows",
           "input_major", "half_params", "kernel_params", "overlaps", "param_stamp", "PreparedHalf", "rows_apart",
           "same_bits"]


def available() -> bool:
    """True where the compiled step was built and imports."""
    return _attention_step is not None


def attention_step(qkv: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int,
                   live: torch.Tensor | None, compact: bool = False) -> torch.Tensor:
    """Write month ``t``'s keys and values and attend, for the ``live`` rows.

    Args:
        qkv: ``(B, 3C)`` float32, the step's queries, keys and values (``c_attn``'s output, heads
            ``C = nh * hs`` wide, ``nh`` taken from ``keys``); with ``compact`` ``(m, 3C)``, row ``i`` for
            buffer row ``live[i]`` (row ``i`` itself where ``live`` is None), rows after the ``n`` live ones
            padding, ignored (a caller that ran the step's layers on the live rows only).
        keys, values: ``(B, max_len, nh, hs)`` float32 contiguous buffers; months ``0 .. t - 1`` filled,
            month ``t`` is written here.
        t: the month, ``0 <= t < max_len``.
        live: ``(n,)`` int64 ascending row indices to compute, or None for every row.

    Returns:
        ``(B, C)`` float32: the attention output of the live rows, 0 on the others; with ``compact``
        ``(m, C)``, the live rows' outputs in their order, then 0 on the padding.
    """
    if _attention_step is None:
        raise RuntimeError("creditsim.nn._attention_step is not built; reinstall with a C++ compiler")
    _check_buffers(keys, values, "attention_step")
    _, max_len, nh, hs = keys.shape
    C = nh * hs
    for name, x in (("qkv", qkv), ("keys", keys), ("values", values)):
        if x.device.type != "cpu" or x.dtype != torch.float32 or not x.is_contiguous():
            raise ValueError(f"attention_step: {name} must be a contiguous float32 CPU tensor")
    live, n_live, rows = _step_rows(qkv, "qkv", 3 * C, keys, values, t, live, compact, "attention_step")
    live = rows_apart(live, keys, values)
    out = torch.zeros(rows, C, dtype=torch.float32)
    _attention_step.step(n_live, 0 if live is None else live.data_ptr(), bool(compact),
                         nh, hs, t, max_len, 1.0 / math.sqrt(hs), qkv.data_ptr(), keys.data_ptr(), values.data_ptr(),
                         out.data_ptr())
    return out


def block_attention_step(x: torch.Tensor, ln: nn.LayerNorm, c_attn: nn.Linear, c_proj: nn.Linear,
                         keys: torch.Tensor, values: torch.Tensor, t: int, live: torch.Tensor | None,
                         compact: bool = False) -> torch.Tensor:
    """A transformer block's attention half for one step: ``x + c_proj(attention(c_attn(ln(x))))``, the step's
    keys and values written at month ``t``, for the ``live`` rows; ``x`` itself on the others.

    :func:`attention_step` with the block's layer norm and both products in the same pass per row (the
    products each output's bias, then the inputs ascending, explicit ``fmaf``; the layer norm's sums in a
    fixed order, as :mod:`creditsim.nn.mlp_kernel`'s): in torch these were four passes a step and layer
    (layer norm, two linears, the residual add) over the live rows. A row's output is the same bits in
    any batch, live set, thread or instruction set; it agrees with torch to float32 rounding.

    Args:
        x: ``(B, C)`` float32 rows (``C = nh * hs`` of ``keys``, at most 256); with ``compact`` ``(m, C)``, the
            ``n`` live rows first, then padding (as :func:`attention_step`'s ``qkv``).
        ln, c_attn, c_proj: the block's ``ln_1`` and ``attn.c_attn`` ``(C -> 3C)``, ``attn.c_proj``
            ``(C -> C)``: float32 CPU, with biases (:func:`block_fits`).
        keys, values, t, live, compact: as :func:`attention_step`.

    Returns:
        ``(B, C)`` (``(m, C)`` with ``compact``) float32, a new tensor.
    """
    return BlockHalf(ln, c_attn, c_proj, keys, values)(x, t, live, compact)


def param_stamp(params: tuple[torch.Tensor, ...]) -> tuple[tuple[object, ...], ...] | None:
    """Each parameter's address, version, shape and strides: what changes when one is swapped, re-strided over
    the same storage (``w.data = w.data.t()``: same address, version and shape) or edited in place through torch
    (an edit torch does not count is :meth:`PreparedHalf._copies_stale`'s to see). None where one is an inference
    tensor, which keeps no version, or missing (a linear without bias: the fit check refuses it)."""
    if any(p is None or p.is_inference() for p in params):
        return None
    return tuple((p.data_ptr(), p._version, tuple(p.shape), p.stride()) for p in params)


def half_params(ln: nn.LayerNorm, first: nn.Linear, second: nn.Linear) -> tuple[torch.Tensor | None, ...]:
    """A block half's parameters as its module holds them: ``ln`` weight and bias, each linear's weight and bias
    (what :func:`block_fits`, ``mlp_kernel.fits`` and :func:`param_stamp` read; :func:`kernel_params` is their
    kernel layout)."""
    return ln.weight, ln.bias, first.weight, first.bias, second.weight, second.bias


#: the float dtypes' same-width integer dtypes, for comparing bits (same_bits, PreparedHalf)
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_BITS_NP = {2: np.int16, 4: np.int32, 8: np.int64}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` (any strides) have one dtype and shape and hold the same bits: a NaN equals
    itself and 0.0 differs from -0.0, where ``torch.equal`` says the opposite."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.is_floating_point and a.element_size() in _BITS:  # a view of another dtype of one width: any strides
        a, b = a.view(_BITS[a.element_size()]), b.view(_BITS[b.element_size()])
    return torch.equal(a, b)


class PreparedHalf(abc.ABC):
    """A block half prepared for a decoding loop that calls it every month: a subclass's :meth:`_gather` (its fit
    checked, its kernel parameter tuple built) runs again only when a parameter's address or version has changed
    since the last call (:func:`param_stamp`), or a parameter the kernel reads from a copy no longer holds the
    copy's bits (:meth:`_copies_stale`) -- a few attribute reads and two comparisons a call instead of the dozen
    checks and six ``contiguous`` of :func:`kernel_params`. A subclass's :meth:`_gather` sets ``_params`` to
    :func:`kernel_params` of its layers."""

    def __init__(self, ln: nn.LayerNorm, first: nn.Linear, second: nn.Linear):
        self._layers = (ln, first, second)
        self._stamp: tuple[tuple[object, ...], ...] | None = None
        self._watch: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    @abc.abstractmethod
    def _gather(self) -> None:
        """Check the half's fit and build the parameter tuple its kernel reads."""

    def _refresh(self) -> None:
        """Gather again where a parameter changed (or one keeps no version: every call)."""
        stamp = param_stamp(half_params(*self._layers))
        if stamp is None or stamp != self._stamp or self._copies_stale():  # the stamp first: the views keep its layout
            self._gather()
            self._stamp = stamp
            self._watch = self._watched()

    def _watched(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """(the bits when gathered, a view of the parameter's bits) of each parameter the kernel reads from a
        copy: each linear's weight (transposed, :func:`input_major`) and any parameter that was not contiguous.
        A parameter the kernel reads in place (the tuple holds the tensor itself) is current by construction."""
        watch = []
        for p, kept, transposed in zip(half_params(*self._layers), self._params, _TRANSPOSED):
            p = p.detach()
            if transposed or kept.data_ptr() != p.data_ptr():
                bits = p.numpy().view(_BITS_NP[p.element_size()])
                watch.append((bits.copy(), bits))
        return tuple(watch)

    def _copies_stale(self) -> bool:
        """Whether a parameter the kernel reads from a copy (:meth:`_watched`) has changed since the copy was made.
        An edit through ``.data`` (``weight.data.normal_()``, a common initialisation idiom), numpy or dlpack moves
        no version counter, so the stamp misses it, and the kernels would go on reading the old weights: the
        parameters' current bits, through numpy views of their memory bound when gathered, are compared with
        their bits then. The views keep the layout of that time; a parameter swapped for other memory or
        re-strided over the same memory changes the stamp, which is checked first. Two ~1-5 k-element
        comparisons, ~4-7 us a call (d = 32)."""
        return any(not np.array_equal(then, now) for then, now in self._watch)


class BlockHalf(PreparedHalf):
    """:func:`block_attention_step` for one layer and one pair of key/value buffers, for a decoding loop
    (:class:`~creditsim.nn.layers.FusedBlockStep`): prepared as :class:`PreparedHalf`, and the buffers checked
    again only when one's address, shape or strides have changed."""

    def __init__(self, ln: nn.LayerNorm, c_attn: nn.Linear, c_proj: nn.Linear, keys: torch.Tensor,
                 values: torch.Tensor):
        if _attention_step is None:
            raise RuntimeError("creditsim.nn._attention_step is not built; reinstall with a C++ compiler")
        super().__init__(ln, c_attn, c_proj)
        self._bind(keys, values)
        self._refresh()

    def _bind(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        _check_buffers(keys, values, "block_attention_step")
        for name, v in (("keys", keys), ("values", values)):
            if v.device.type != "cpu" or v.dtype != torch.float32 or not v.is_contiguous():
                raise ValueError(f"block_attention_step: {name} must be a float32 CPU tensor (buffers contiguous)")
        _, self.max_len, self.nh, self.hs = keys.shape
        self.keys, self.values, self.width = keys, values, self.nh * self.hs
        self._buffers = (keys.data_ptr(), values.data_ptr(), keys.shape, values.shape, keys.stride(), values.stride())
        self._stamp = None  # the fit depends on the heads' width: checked again

    def _gather(self) -> None:
        ln, c_attn, c_proj = self._layers
        C = self.width
        if not block_fits(ln, c_attn, c_proj) or c_attn.in_features != C:
            raise ValueError(f"block_attention_step: float32 CPU ln ({C},), c_attn {C} -> {3 * C} and c_proj {C} -> "
                             f"{C} with biases expected for buffers of {self.nh} x {self.hs} heads")
        self._params = kernel_params(ln, c_attn, c_proj)  # kept: the C++ reads them by address
        self._args = (1.0 / math.sqrt(self.hs), float(ln.eps))

    def __call__(self, x: torch.Tensor, t: int, live: torch.Tensor | None, compact: bool = False,
                 in_place: bool = False) -> torch.Tensor:
        """The step of ``x`` at month ``t`` for the ``live`` rows (:func:`block_attention_step`'s arguments, the
        live rows checked against the buffers' rows every call); ``in_place``: the output is written over ``x`` (contiguous, not
        the buffers) and returned -- a group of rows is read whole before its outputs are written, each output
        element right after its own residual input, so the values are a new tensor's."""
        keys, values = self.keys, self.values
        if (keys.data_ptr(), values.data_ptr(), keys.shape, values.shape, keys.stride(),
                values.stride()) != self._buffers:
            # resized, or set_ to other storage or strides: checked again; a storage resized under its tensor
            # (untyped_storage().resize_) is reallocated, so its address moves and it is checked here too
            self._bind(keys, values)
        self._refresh()
        if x.device.type != "cpu" or x.dtype != torch.float32:
            raise ValueError("block_attention_step: x must be a float32 CPU tensor (buffers contiguous)")
        live, n_live, _ = _step_rows(x, "x", self.width, keys, values, t, live, compact, "block_attention_step")
        if in_place and (not x.is_contiguous() or overlaps(x, keys) or overlaps(x, values)):
            raise ValueError("block_attention_step: in place needs contiguous rows apart from the buffers")
        x = x.contiguous()
        out = x if in_place else x.clone()
        live = rows_apart(live, keys, values, out)
        _attention_step.block_step(n_live, 0 if live is None else live.data_ptr(), bool(compact), self.nh, self.hs,
                                   t, self.max_len, *self._args, x.data_ptr(), *(p.data_ptr() for p in self._params),
                                   keys.data_ptr(), values.data_ptr(), out.data_ptr())
        return out


def _step_rows(inp: torch.Tensor, name: str, width: int, keys: torch.Tensor, values: torch.Tensor, t: int,
               live: torch.Tensor | None, compact: bool, who: str) -> tuple[torch.Tensor | None, int, int]:
    """A step's checked ``live`` rows (:func:`checked_rows`), their count and the rows ``inp`` and the output
    hold: the buffers' batch, or with ``compact`` ``inp``'s own rows (at least the live ones); ValueError
    naming ``who`` for an ``inp`` that is not ``(rows, width)`` or a month outside the buffers."""
    B, max_len = keys.shape[:2]
    live = checked_rows(live, B, who)
    n_live = B if live is None else live.numel()
    rows = inp.shape[0] if compact and inp.ndim == 2 and inp.shape[0] >= n_live else B
    if inp.shape != (rows, width) or not 0 <= t < max_len:
        need = f"at least {n_live}" if compact else B
        raise ValueError(f"{who}: {name} ({need}, {width}) rows, values {tuple(keys.shape)} and "
                         f"0 <= t < {max_len} expected, got {tuple(inp.shape)}, {tuple(values.shape)}, t={t}")
    return live, n_live, rows


def rows_apart(live: torch.Tensor | None, *written: torch.Tensor) -> torch.Tensor | None:
    """The checked ``live`` rows, copied where they lie in memory the step writes (a buffer, or an in-place
    output): the kernel would read indices it has just overwritten."""
    if live is not None and any(overlaps(live, w) for w in written):
        return live.clone()
    return live


#: which entries of kernel_params are a weight transposed (the others: a parameter as it is, made contiguous)
_TRANSPOSED = (False, False, True, False, True, False)


def kernel_params(ln: nn.LayerNorm, first: nn.Linear, second: nn.Linear) -> tuple[torch.Tensor, ...]:
    """The parameters of a layer norm and two linears as a block's compiled half reads them: ``ln`` weight
    and bias, each linear's weight input-major (:func:`input_major`) and bias, contiguous. Keep the tuple
    alive until the kernel returns (its addresses are what the C++ reads)."""
    return (ln.weight.detach().contiguous(), ln.bias.detach().contiguous(), input_major(first),
            first.bias.detach().contiguous(), input_major(second), second.bias.detach().contiguous())


def block_fits(ln: nn.LayerNorm, c_attn: nn.Linear, c_proj: nn.Linear) -> bool:
    """Whether :func:`block_attention_step` takes this attention half: float32 CPU parameters with biases (an
    affine layer norm), ``C -> 3C`` and ``C -> C`` products, ``C <= 256`` (the kernel's row buffers)."""
    params = half_params(ln, c_attn, c_proj)
    if any(p is None or p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        return False
    C = c_attn.in_features
    return (1 <= C <= 256 and c_attn.weight.shape == (3 * C, C) and c_proj.weight.shape == (C, C)
            and c_attn.bias.shape == (3 * C,) and c_proj.bias.shape == (C,)  # (torch would broadcast a (1,) bias)
            and ln.weight.shape == (C,) and ln.bias.shape == (C,))


def _check_buffers(keys: object, values: object, who: str) -> None:
    """Keys and values: two 4-D ``(B, max_len, nh, hs)`` tensors of one shape that share no memory (the step
    writes both: values over keys would corrupt the cache silently); ValueError naming ``who`` otherwise."""
    if not (isinstance(keys, torch.Tensor) and isinstance(values, torch.Tensor) and keys.ndim == 4
            and values.shape == keys.shape):
        raise ValueError(f"{who}: keys and values must be (B, max_len, nh, hs) tensors of one shape, got "
                         f"{getattr(keys, 'shape', type(keys).__name__)} and "
                         f"{getattr(values, 'shape', type(values).__name__)}")
    if keys.numel() and overlaps(keys, values):
        raise ValueError(f"{who}: keys and values share memory; two separate buffers expected")
    _check_storage(keys, values, who)


def _check_storage(keys: torch.Tensor, values: torch.Tensor, who: str) -> None:
    """ValueError naming ``who`` where a buffer's storage no longer holds all of its elements: a storage shrunk
    under its tensor (``untyped_storage().resize_``) leaves the shape as it was, and the C++, which writes every
    month's keys and values by address, would write past the allocation. The key/value buffers only: they live
    across calls; a step's other inputs are the caller's for the call (torch's own operations read a shrunk one
    out of bounds as well)."""
    for name, v in (("keys", keys), ("values", values)):
        if v.untyped_storage().nbytes() < (v.storage_offset() + v.numel()) * v.element_size():
            raise ValueError(f"{who}: the {name} buffer's storage holds {v.untyped_storage().nbytes()} bytes, fewer "
                             f"than its shape {tuple(v.shape)} needs (resized under it)")


def overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two contiguous tensors' memory overlaps (a step writing one would change the other)."""
    a0, b0 = a.data_ptr(), b.data_ptr()
    return a0 < b0 + b.numel() * b.element_size() and b0 < a0 + a.numel() * a.element_size()


def checked_rows(live: torch.Tensor | None, batch: int, who: str) -> torch.Tensor | None:
    """``live`` as the compiled steps take it: a contiguous int64 CPU tensor of strictly ascending row indices in
    ``[0, batch)`` (None stays None: every row). The C++ reads and writes at every index it is given, so the
    set is checked whole, not trusted; ValueError naming ``who`` otherwise. Keep the result alive until the
    step returns (its address is what the C++ reads)."""
    if live is None:
        return None
    if live.ndim != 1 or live.dtype.is_floating_point or live.dtype == torch.bool or live.is_complex():
        raise ValueError(f"{who}: live must be a 1-D tensor of integer row indices, got {live.dtype} "
                         f"{tuple(live.shape)}")
    live = live.to(device="cpu", dtype=torch.int64).contiguous()
    if live.numel() and (int(live.min()) < 0 or int(live.max()) >= batch or bool((live[1:] <= live[:-1]).any())):
        raise ValueError(f"{who}: live rows must be strictly ascending and lie in [0, {batch})")
    return live


def input_major(linear: nn.Linear) -> torch.Tensor:
    """``linear.weight`` transposed to ``(in, out)`` contiguous (a row's product reads it in order), a new copy
    each call. A decoding loop keeps it in its :class:`PreparedHalf` until the weight changes. Decision: no
    cache here; one that must compare its copy with the weight bit for bit, to see edits that move no version
    counter, costs more than the transpose at the model's sizes (6.5-7.7 against 4.7-6.1 us, 2026-12-07)."""
    return linear.weight.detach().t().contiguous()
