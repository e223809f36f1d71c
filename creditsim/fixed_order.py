"""Reductions in a fixed order: the same bits for a row whatever the batch around it.

A library reduction (``x.sum(dim=1)``, ``x @ ones``, numpy's ``sum(axis=1)``) chooses its summation order
from the array's shape, strides and the CPU: a matrix-vector product sums a row in an order that depends
on the row's position in the BLAS tile and on the kernel (AVX2 / AVX-512), and a reduction over a
strided axis may be vectorised across rows or along them depending on how many rows there are. A
scenario's waterfall or IRR would then change in its last bits with the chunk it was run in.

These helpers add the slices along ``axis`` one at a time, in index order: every output element is
``((x_0 + x_1) + x_2) + ...`` of its own entries, elementwise, so it cannot depend on the other rows, on
the batch size, the thread count, the BLAS kernel or the device. Use them for every reduction of
non-cent values whose result reaches an output, over short axes (tranches, months); whole-cent loan
sums use :mod:`creditsim.cents` instead (exact, so any order is fine). ``torch.cumsum`` along a
short axis is allowed as it is: it is a sequential scan of each row in index order (the same
``((x_0 + x_1) + x_2)`` as here), whatever the number of rows.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = ["column_sum", "elementwise"]

#: a multiple of every CPU vector loop's stride (torch unrolls two 8-lane float64 vectors on AVX-512)
_PAD = 64

#: from this many slices a float64 CPU tensor is summed by ``torch.cumsum``'s last slice. The CPU scan
#: accumulates each row sequentially in index order in the accumulation type (float64 for float64): the
#: same ``((x_0 + x_1) + x_2) + ...`` as the slice loop, bit for bit (only an all-negative-zero row comes
#: out +0.0: the scan starts from +0), in one op instead of 2n - 1 -- a class sum over seven columns of
#: 10,000 scenarios costs 29 us instead of 67. Not on CUDA (a parallel scan) nor float32 (accumulated
#: in float64, then rounded: not the float32 loop's bits); two slices are one add either way.
_SCAN_FROM = 3

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _slice(x: ArrayT, axis: int, j: int) -> ArrayT:
    """The j-th slice along ``axis`` as a view (no copy)."""
    if isinstance(x, torch.Tensor):
        return x.select(axis, j)
    return x[(slice(None),) * (axis % x.ndim) + (j,)]


def column_sum(x: ArrayT, axis: int = -1) -> ArrayT:
    """Sum over ``axis`` by adding its slices in index order (shape of ``x`` without ``axis``).

    An empty axis sums to zeros. Works on numpy arrays and torch tensors (differentiable).
    """
    n = x.shape[axis]
    if n == 0:
        shape = tuple(s for i, s in enumerate(x.shape) if i != axis % x.ndim)
        if isinstance(x, torch.Tensor):
            return torch.zeros(shape, dtype=x.dtype, device=x.device)
        return np.zeros(shape, dtype=x.dtype)
    if isinstance(x, torch.Tensor) and n >= _SCAN_FROM and x.dtype == torch.float64 and x.device.type == "cpu":
        # the same additions in the same order, in one op instead of 2n - 1 (see _SCAN_FROM)
        return torch.cumsum(x, dim=axis).select(axis, -1)
    acc = _slice(x, axis, 0)
    for j in range(1, n):
        acc = acc + _slice(x, axis, j)
    return acc


def elementwise(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` for a transcendental elementwise torch op (``sigmoid``, ``exp``, ``pow``) computed so that
    each element's result does not depend on its position in the tensor.

    Why: on CPU, torch evaluates the bulk of a tensor with vectorised (SLEEF) kernels and the last
    ``n mod vector-width`` elements -- and non-contiguous inputs -- with the scalar libm function; the two
    differ in the last bit. A scenario's value would then depend on how many scenarios share its batch.
    Here the input is flattened into a contiguous buffer padded to a multiple of :data:`_PAD`, so every
    element takes the vectorised path. Differentiable; on CUDA it is a plain call.
    """
    if x.device.type != "cpu":
        return fn(x)
    flat = x.reshape(-1)
    pad = (-flat.numel()) % _PAD
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return fn(flat.contiguous())[: x.numel()].reshape(x.shape)
