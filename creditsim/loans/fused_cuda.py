"""The fused month kernel on an NVIDIA GPU (numba-cuda): the Markov engine's pool path with ``device="cuda"``.

One GPU thread per (scenario, RNG loan block) stream. The torch step on CUDA still drew every uniform
with numpy on the host and copied it over, so the host, not the GPU, set the pace (8.8e7
loan-month-scenarios/s on an H200, one CPU core busy). Here each thread continues its block's SFC64
stream on the device (:meth:`BlockStreams.sfc64_states`), walks the block's loans in order and keeps
its sums in registers / local memory; the per-block partial sums are added on the device afterwards.
Each month's compact contractual window (:func:`creditsim.loans.fused.month_window`, ``O(L_b)``) is
built on the host; a default's par and month are recorded on the device and its loss is booked on the
host after the month loop, where its LGD is drawn (:mod:`creditsim.loans.lgd_draws`: CUDA's ``log`` /
``exp`` may round differently from the host's, which could move a loss by a cent or flip a rejection
step of the draw, so the draw stays on the host and the numbers stay the CPU kernel's).

Same numbers as the CPU kernel and the torch step, bit for bit: the generator and the move logic
are the CPU kernel's own functions (:func:`~creditsim.loans.fused.draw_uniform`,
:func:`~creditsim.loans.fused.add_event`) compiled for the device, and every sum is of whole cents, so
its order (threads, blocks) cannot change it. The tests run the kernel in numba's CUDA simulator
against the CPU kernel; ``bench/gpu_check.sh`` checks the real device against the CPU.

Limits: at most :data:`MAX_GROUPS` groups and :data:`MAX_FLOWS` tabulated flows (5 + floating classes);
beyond them the engine keeps the torch step.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from numba import cuda, float64

from creditsim.loans.fused import FusedMonths, add_event, draw_uniform
from creditsim.loans.lgd_draws import LgdDraws
from creditsim.transitions.sampler import RNG_LOAN_BLOCK, BlockStreams

__all__ = ["MAX_FLOWS", "MAX_GROUPS", "FusedMonthsCuda", "available", "pool_month_cuda"]

#: local-memory size of a thread's sums (compile-time constants of the kernel)
MAX_GROUPS = 8
MAX_FLOWS = 15
_ACC_COLUMNS = 16  # MAX_FLOWS + 1 (the loss): a literal, as cuda.local.array needs
THREADS_PER_BLOCK = 128
log = logging.getLogger(__name__)

_draw = cuda.jit(device=True)(draw_uniform.py_func)
_event = cuda.jit(device=True)(add_event.py_func)


@cuda.jit
def _probe(out):  # pragma: no cover - compiled
    out[0] = 1.0


@functools.cache
def available() -> bool:
    """True when numba can compile and launch a kernel on a CUDA device here (probed once).

    A driver without a device, or a numba-cuda that does not work with the installed numpy (seen on a
    GPU image: numba-cuda importing ``numpy.row_stack``, which numpy 2.5 removed), makes the engine keep
    its torch step on the GPU instead of failing deep inside numba; the reason is logged.
    """
    try:
        if not cuda.is_available():
            return False
        out = cuda.to_device(np.zeros(1))
        _probe[1, 1](out)
        return bool(out.copy_to_host()[0] == 1.0)
    except Exception as exc:  # noqa: BLE001 - a probe: any failure means "use the torch step"
        log.warning("the fused CUDA kernel is unavailable (%s: %s); the engine uses its torch step on the GPU",
                    type(exc).__name__, exc)
        return False


@cuda.jit
def pool_month_cuda(t, x, c, row_base, thresholds, stay_current, window, current, m, inv_coupon, default_par,
                    default_month, loan_group, words, buffered, widths, block, out):  # pragma: no cover - compiled
    """:func:`creditsim.loans.fused.pool_month` with one thread per (scenario i, block j); ``out`` is
    ``(s, n_blocks, G, F + 1)``: the block's partial sums (the caller adds the blocks) but the losses, whose
    defaults are recorded in ``default_par`` / ``default_month`` ``(s, L_b)`` instead."""
    tid = cuda.grid(1)
    nb = widths.shape[0]
    if tid >= x.shape[0] * nb:
        return
    i = tid // nb
    j = tid - i * nb
    n_groups = out.shape[2]
    nf = out.shape[3] - 1
    n_thr = thresholds.shape[0]
    acc = cuda.local.array((MAX_GROUPS, _ACC_COLUMNS), float64)
    for g in range(n_groups):
        for f in range(nf + 1):
            acc[g, f] = 0.0
    a, b, cc, w = words[i, j, 0], words[i, j, 1], words[i, j, 2], words[i, j, 3]
    has, half = buffered[i, j, 0], buffered[i, j, 1]
    # the loan loop of pool_month, without its separate quiet pass: a GPU thread has no SIMD to gain
    for k in range(widths[j]):
        a, b, cc, w, has, half, u = _draw(a, b, cc, w, has, half)
        loan = j * block + k
        xs = x[i, loan]
        if xs >= 4:
            continue
        g = loan_group[loan]
        row = row_base[i, loan] + xs
        if u < stay_current[row] and m[loan] != t:
            for f in range(nf):
                acc[g, f] += current[g * nf + f, loan]
            continue
        y = 0
        for q in range(n_thr):
            if u >= thresholds[q, row]:
                y += 1
        x[i, loan], c[i, loan], par = _event(acc, g, nf, window, loan, t, m[loan], c[i, loan], y, inv_coupon)
        if par > 0.0:  # its loss is booked on the host (FusedMonthsCuda.finish)
            default_par[i, loan] = par
            default_month[i, loan] = t
    words[i, j, 0], words[i, j, 1], words[i, j, 2], words[i, j, 3] = a, b, cc, w
    buffered[i, j, 0], buffered[i, j, 1] = has, half
    for g in range(n_groups):
        for f in range(nf + 1):
            out[i, j, g, f] = acc[g, f]


class FusedMonthsCuda(FusedMonths):
    """The month loop of one (scenario chunk x loan block) on the GPU kernel, pool sums only.

    :class:`creditsim.loans.fused.FusedMonths`' host arrays and month window (built on the host and
    copied each month); the streams' states and the per-loan constants move to ``device`` once.
    """

    def __init__(self, streams: BlockStreams, lgd: LgdDraws, cb: np.ndarray, ci: np.ndarray, m: np.ndarray,
                 inv_coupon: np.ndarray | None, loan_group: np.ndarray, n_groups: int, device: torch.device):
        super().__init__(streams, lgd, cb, ci, m, inv_coupon, loan_group, n_groups)
        self._dev = device
        self._n_blocks = len(self._widths)
        self._words, self._buffered = cuda.to_device(self._words), cuda.to_device(self._buffered)
        self._widths_dev = cuda.to_device(self._widths)
        self._m_dev, self._inv_dev = cuda.to_device(self._m), cuda.to_device(self._inv)
        self._group_dev = cuda.to_device(self._group)
        # each default's par and month, written on the device; the losses are booked on the host (finish)
        self._default_dev = (torch.zeros(lgd.shape, dtype=torch.float64, device=device),
                             torch.zeros(lgd.shape, dtype=torch.int32, device=device))

    def step(self, t: int, x: torch.Tensor, c: torch.Tensor, row_base: torch.Tensor, thresholds: torch.Tensor,
             stay_current: torch.Tensor, out: torch.Tensor) -> None:
        """Advance month ``t`` on the device: ``x`` / ``c`` in place, ``out`` ``(s, G, F + 1)`` set but the loss."""
        s, g, f1 = out.shape
        window, current = (cuda.to_device(a) for a in self.month_window(t))
        partial = torch.empty((s, self._n_blocks, g, f1), dtype=torch.float64, device=self._dev)
        n_threads = s * self._n_blocks
        grid = -(-n_threads // THREADS_PER_BLOCK)
        if partial.is_cuda:  # torch may have queued the inputs on a non-default stream: finish them first
            torch.cuda.current_stream(partial.device).synchronize()
        arrays = [_kernel_arg(a) for a in (x, c, row_base, thresholds, stay_current, *self._default_dev, partial)]
        pool_month_cuda[grid, THREADS_PER_BLOCK](t, *arrays[:5], window, current, self._m_dev, self._inv_dev,
                                                 arrays[5], arrays[6], self._group_dev, self._words, self._buffered,
                                                 self._widths_dev, RNG_LOAN_BLOCK, arrays[7])
        cuda.synchronize()  # numba's stream before torch's: the sum below reads the kernel's output
        out.copy_(partial.sum(dim=1))  # whole cents: exact in any order

    def finish(self, sums: torch.Tensor) -> None:
        """Book every recorded default's loss ``rint(par x LGD)`` into ``sums[..., -1]`` (``(s, T, G, F + 1)``
        whole cents): the defaults' par and month are copied to the host, where their LGDs are drawn
        (:meth:`LgdDraws.book_losses`, the CPU kernel's own draws). Call once, after the last month."""
        loss = np.zeros(sums.shape[:-1])
        par, month = (a.cpu().numpy() for a in self._default_dev)
        self._lgd.book_losses(par, month, self._group, loss)
        sums[..., -1] += torch.from_numpy(loss).to(sums.device)


def _kernel_arg(tensor: torch.Tensor) -> object:
    """A torch tensor as a kernel argument: CUDA tensors go as they are (``__cuda_array_interface__``,
    no copy); CPU tensors (numba's CUDA simulator, in the tests) as numpy views."""
    return tensor.numpy() if tensor.device.type == "cpu" else tensor
