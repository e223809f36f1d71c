"""Run by test_fused_kernel.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (set before numba loads): the GPU
kernel, executed by numba's CUDA simulator on the CPU, against the CPU kernel. Prints "equal" or the gap."""

from __future__ import annotations

import sys
import warnings

import numpy as np

import creditsim.loans.engine as engine
from creditsim.loans import fused_cuda

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_fused_kernel import _book, _macro_matrices  # noqa: E402


def main() -> None:
    # the simulator runs the generator in numpy scalars, which warn on the (intended) uint64 wrap-around
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    book = _book(1100, 8)  # two RNG blocks, the second short
    s, months = 2, 14
    mats = _macro_matrices(s, months, 9)
    shift = np.cumsum(np.random.default_rng(1).normal(0, 0.002, (s, months)), axis=1)
    kw = dict(seed=5, n_months=months, group_by="asset_class", index_shift=shift, index_level=np.full(s, 0.03))
    ref = engine.simulate_pool_chunk(book, mats, np.array([3, 40]), **kw)

    def on_simulated_gpu(streams, lgd, cb, ci, m, inv, group, n_groups, n_flows, threads=1, shared_rows=False):
        host = [a.numpy() for a in (cb, ci, m, group)]
        return fused_cuda.FusedMonthsCuda(streams, lgd, host[0], host[1], host[2], None if inv is None else inv.numpy(),
                                          host[3], n_groups, cb.device)

    engine.fused_months = on_simulated_gpu
    got = engine.simulate_pool_chunk(book, mats, np.array([3, 40]), **kw)
    print("equal" if np.array_equal(got, ref) else f"differ: max gap {np.abs(got - ref).max()}")


if __name__ == "__main__":
    main()
