"""The feed-forward half of a transformer block for one decoding step as a fused C++ pass (CPU).

Per decoding step the trajectory model's :class:`~creditsim.nn.layers.Block` computes
``x + c_proj(gelu(c_fc(ln_2(x))))`` for every path. In torch that is five passes over ``(B, 4 d)`` and
``(B, d)`` tensors (the layer norm, two products, each starting with a copy of its broadcast bias, the
GELU, the residual add), and at the model's width (d = 32) the passes, not the products, take the time.
The extension ``creditsim.nn._mlp_step`` (``_mlp_step.cpp``) does the half in one pass per row, the row's
activations in registers and L1.

The maths, per row: the layer norm ``(x - mean) / sqrt(var + eps) * w + b`` (biased variance, as
``nn.LayerNorm``); the exact GELU ``x (1 + erf(x / sqrt 2)) / 2`` (``F.gelu``'s default), with ``erfc`` from
the Chebyshev fit of Numerical Recipes (relative error below 1.2e-7); the products bias first, then the
inputs ascending, each an explicit ``fmaf``. It agrees with torch to float32 rounding (tests/nn); every
sum runs in a fixed order within the row and the file is built with ``-ffp-contract=off``, so a row's
output is the same bits whatever the batch, the live set, the thread or the instruction set.

Where the CPU has AVX-512 (and h is a multiple of 128) the ``c_fc`` sums run with their 8 accumulators in
registers and the GELU is applied to them before they are stored (its division and exp overlap the next
units' products), the scalar code's operations lane by lane: the same bits (tests/nn compare the levels, and
the GELU alone through the module's ``gelu`` entry). 261 -> 230 ns a row on 4,000 rows (the GELU was ~45 %).

Decision: optional, as :mod:`creditsim.nn.attention_kernel` (the same build, the same fall-back to torch);
only single decoding steps outside autograd and dropout on the CPU in float32 take this path
(:class:`~creditsim.nn.layers.Block` with a fused :class:`~creditsim.nn.layers.KVBuffer`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from creditsim.nn.attention_kernel import PreparedHalf, checked_rows, half_params, kernel_params, rows_apart

try:  # built by `pip install` (setup.py); optional, see the module docstring
    from creditsim.nn import _mlp_step
except ImportError:  # pragma: no cover - exercised only where the install had no compiler
    _mlp_step = None

__all__ = ["available", "fits", "mlp_step", "MLPHalf"]


def available() -> bool:
    """True where the compiled step was built and imports."""
    return _mlp_step is not None


def mlp_step(x: torch.Tensor, ln: nn.LayerNorm, c_fc: nn.Linear, c_proj: nn.Linear,
             live: torch.Tensor | None) -> torch.Tensor:
    """``x + c_proj(gelu(c_fc(ln(x))))`` for the ``live`` rows of ``x`` ``(B, d)``; ``x`` itself elsewhere.

    Args:
        x: ``(B, d)`` float32 CPU rows (d at most 256, the hidden width at most 1,024).
        ln, c_fc, c_proj: the block's ``ln_2`` and ``mlp.c_fc`` / ``mlp.c_proj`` (float32, with biases).
        live: ``(n,)`` int64 ascending row indices to compute, or None for every row.

    Returns:
        ``(B, d)`` float32, a new tensor.
    """
    return MLPHalf(ln, c_fc, c_proj)(x, live)


class MLPHalf(PreparedHalf):
    """:func:`mlp_step` for one layer, for a decoding loop that calls it every month
    (:class:`~creditsim.nn.layers.FusedBlockStep`), prepared as :class:`~creditsim.nn.attention_kernel.
    PreparedHalf`."""

    def __init__(self, ln: nn.LayerNorm, c_fc: nn.Linear, c_proj: nn.Linear):
        if _mlp_step is None:
            raise RuntimeError("creditsim.nn._mlp_step is not built; reinstall with a C++ compiler")
        super().__init__(ln, c_fc, c_proj)
        self._refresh()

    def _gather(self) -> None:
        ln, c_fc, c_proj = self._layers
        if not fits(ln, c_fc, c_proj):
            raise ValueError("mlp_step: float32 CPU rows and parameters (with biases) expected, model width <= 256 "
                             "and hidden width <= 1024")
        self._shapes = (tuple(ln.weight.shape), tuple(c_fc.weight.shape), tuple(c_proj.weight.shape))
        self.d, self.h, self._eps = c_fc.in_features, c_fc.out_features, float(ln.eps)
        self._params = kernel_params(ln, c_fc, c_proj)  # kept: the C++ reads them by address

    def __call__(self, x: torch.Tensor, live: torch.Tensor | None, in_place: bool = False) -> torch.Tensor:
        """The step of ``x`` ``(B, d)`` for the ``live`` rows (:func:`mlp_step`'s arguments, the live rows checked
        every call); ``in_place``: the output is written over ``x`` (contiguous) and returned -- the kernel reads
        each row before it writes that row's output, and only its own row, so the values are a new tensor's."""
        self._refresh()
        if x.device.type != "cpu" or x.dtype != torch.float32 or x.ndim != 2:
            raise ValueError("mlp_step: float32 CPU rows and parameters (with biases) expected, model width <= 256 "
                             "and hidden width <= 1024")
        B, d = x.shape
        if d != self.d:
            raise ValueError(f"mlp_step: rows of width {d} do not fit ln {self._shapes[0]}, c_fc "
                             f"{self._shapes[1]}, c_proj {self._shapes[2]}")
        if in_place and not x.is_contiguous():
            raise ValueError("mlp_step: in place needs contiguous rows")
        x = x.contiguous()
        out = x if in_place else x.clone()
        live = rows_apart(checked_rows(live, B, "mlp_step"), out)  # a live set lying in x, written in place: copied
        _mlp_step.step(B if live is None else live.numel(), 0 if live is None else live.data_ptr(), d, self.h,
                       self._eps, x.data_ptr(), *(p.data_ptr() for p in self._params), out.data_ptr())
        return out


def fits(ln: nn.LayerNorm, c_fc: nn.Linear, c_proj: nn.Linear) -> bool:
    """Whether the kernel takes this feed-forward half: float32 CPU parameters with biases (an affine layer
    norm), ``d -> h -> d`` shapes, ``d <= 256`` and ``h <= 1024`` (the kernel's row buffers)."""
    params = half_params(ln, c_fc, c_proj)
    if any(p is None or p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        return False
    d, h = c_fc.in_features, c_fc.out_features
    return (1 <= d <= 256 and 1 <= h <= 1024 and ln.weight.shape == (d,) and ln.bias.shape == (d,)
            and c_fc.weight.shape == (h, d) and c_fc.bias.shape == (h,) and c_proj.weight.shape == (d, h)
            and c_proj.bias.shape == (d,))  # (torch would broadcast a (1,) bias)
