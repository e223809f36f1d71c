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

    # large scenario ids (the reverse stress's calibration draws start at 1e9) and a collateral factor on the
    # recovered share, which the GPU path applies on the host when it books the defaults' losses
    ids = np.array([1_000_000_000, 2_000_000_017])
    scale = np.where(np.random.default_rng(2).random((s, book.n_loans)) < 0.5, 1.0, 0.6)
    ref_big = engine.simulate_pool_chunk(book, mats, ids, recovery_scale=scale, **kw)
    engine.fused_months = on_simulated_gpu
    got = engine.simulate_pool_chunk(book, mats, np.array([3, 40]), **kw)
    got_big = engine.simulate_pool_chunk(book, mats, ids, recovery_scale=scale, **kw)
    gap = max(np.abs(got - ref).max(), np.abs(got_big - ref_big).max())
    print("equal" if np.array_equal(got, ref) and np.array_equal(got_big, ref_big) else f"differ: max gap {gap}")


if __name__ == "__main__":
    main()
