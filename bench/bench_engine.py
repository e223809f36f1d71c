"""Throughput of the Markov sampler + cashflow engine + pool aggregation.

Prints loan-month-scenarios per second for a synthetic book (default 10,000 loans x 60 months x 1,000
scenarios), the machine's numpy uniform rate (``numpy.random.default_rng().random(dtype=float32)``)
and their ratio (the efficiency: how many loan-months are simulated per uniform the machine can
draw), and the peak resident memory. Target on 2 cores: >= 2e7 loan-month-scenarios/s, < 2 GB.

    .venv/bin/python bench/bench_engine.py [--loans 10000] [--months 60] [--sims 1000]
        [--chunk 500] [--loan-chunk 4096] [--threads 2] [--macro] [--device cpu]

Pool-only runs use the fused numba month kernel (``creditsim.loans.fused``; ``fused_cuda`` with
``--device cuda``). Measured 2026-12-04, 10k x 60, homogeneous matrices: this 2-core machine, one
thread, 4.5e7 (torch step) -> 8.8e7 loan-month-scenarios per CPU-second (two numba threads: 1.4e8/s
wall); one H200 with 10,000 scenarios, 8.8e7 -> 3.2e8/s, bound by the host's LGD Beta draws and
stream set-up (1.1 CPU cores busy), not by the GPU. 2026-12-05, after the branch-free classification
pass (first call timed apart): 1.76-1.81e8 per CPU-second on one thread, 0.31-0.33 of the same-run
uniform rate; the kernel is ~4.2 ns per loan-month, the streams' set-up (LGD Beta draws, seeding)
~1.4 ns. 2026-12-06: the realised LGDs are now drawn only where a loan defaults, in the kernel
(:mod:`creditsim.loans.lgd_draws`), so the host's up-front LGD Beta draws named above are gone;
simulate 10k x 60 x 10,000 (bench_table, paired runs against the up-front draws): 57.4 / 57.1 / 49.9 ->
47.5 / 45.5 / 50.2 s CPU on a shared machine.

``--macro`` runs the scenario-varying path: per-scenario (S, C, T, 7, 7) matrices from the Markov
model's macro overlay (random macro shocks), as the Monte Carlo orchestrator does.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from creditsim.loans.book import LoanBook
from creditsim.loans.engine import simulate_pool_cashflows
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.states import ASSET_CLASSES, POOL_CF_TYPES


def uniform_rate(n: int = 20_000_000, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 uniforms per second of numpy's default generator."""
    rng = np.random.default_rng(0)
    out = np.empty(n, dtype=np.float32)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        rng.random(out=out, dtype=np.float32)
        best = min(best, time.perf_counter() - t0)
    return n / best


def synthetic_book(n_loans: int, seed: int = 0) -> LoanBook:
    """A mixed book: four asset classes, four amortisation types, terms 6..120 months."""
    rng = np.random.default_rng(seed)
    asset = rng.integers(0, len(ASSET_CLASSES), n_loans)
    return LoanBook.from_arrays(
        balance=rng.uniform(1e4, 1e6, n_loans),
        annual_rate=rng.uniform(0.02, 0.15, n_loans),
        remaining_term=rng.integers(6, 121, n_loans),
        amortization=rng.choice(["annuity", "linear", "bullet", "interest_only"], n_loans, p=[0.6, 0.2, 0.1, 0.1]),
        io_months=rng.integers(0, 24, n_loans),
        lgd=rng.uniform(0.2, 0.8, n_loans),
        cohort=asset,
        cohort_labels=ASSET_CLASSES,
        asset_class=asset,
        risk_shift=np.round(rng.normal(0.0, 0.3, n_loans), 1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loans", type=int, default=10_000)
    ap.add_argument("--months", type=int, default=60)
    ap.add_argument("--sims", type=int, default=1_000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--loan-chunk", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--macro", action="store_true", help="per-scenario macro-conditioned matrices")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rate_u = uniform_rate()
    book = synthetic_book(args.loans)
    model = MarkovTransitionModel.default()
    if args.macro:
        rng = np.random.default_rng(1)
        mean, std = model.macro_mean_, model.macro_std_

        def matrices(ids: np.ndarray) -> np.ndarray:
            shock = np.cumsum(rng.normal(0, 0.15, (len(ids), args.months, len(mean))), axis=1)
            return model.scenario_matrices(mean + std * shock)

        mats: object = matrices
    else:
        mats = model.transition_matrix_  # (C, 7, 7): one matrix per asset class

    # the first call in a process imports numba and loads its cached kernels (~0.3-2 s, once per process):
    # timed apart, so the figures below are the steady-state throughput
    w0 = time.perf_counter()
    simulate_pool_cashflows(book.subset(np.arange(min(args.loans, 100))), mats, 2, seed=7, n_months=2,
                            device=args.device)
    warm = time.perf_counter() - w0
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate_pool_cashflows(book, mats, args.sims, seed=7, n_months=args.months, chunk_size=args.chunk,
                                  loan_chunk=args.loan_chunk, device=args.device)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    lms = args.loans * args.months * args.sims / elapsed
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    cf = res.cashflows
    k = {name: i for i, name in enumerate(POOL_CF_TYPES)}
    prev = np.concatenate([np.full((cf.shape[0], 1), res.initial_balance), cf[:, :-1, k["balance"]]], axis=1)
    gap = prev - cf[..., k["scheduled_principal"]] - cf[..., k["prepayment"]] - cf[..., k["default_par"]] - cf[..., k["balance"]]
    cum_def = cf[..., k["default_par"]].sum(1) / res.initial_balance

    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: library default configuration)')}")
    print(f"book: {args.loans} loans, {args.months} months, {args.sims} scenarios "
          f"({'macro-conditioned (S, C, T, 7, 7)' if args.macro else 'homogeneous (C, 7, 7)'} matrices), "
          f"{args.threads} torch threads, device {args.device}")
    print(f"first call (numba import, kernel cache load): {warm:.2f} s, not counted below")
    print(f"elapsed: {elapsed:.2f} s wall, {cpu:.2f} s process CPU ({cpu / elapsed:.2f} cores busy on average)")
    print(f"throughput: {lms:.3e} loan-month-scenarios/s (target >= 2e7)")
    print(f"per CPU-second: {args.loans * args.months * args.sims / cpu:.3e} loan-month-scenarios "
          "(wall figures are low when the machine is shared)")
    print(f"numpy uniform rate (PCG64 float32): {rate_u:.3e} /s")
    print(f"efficiency ratio: {lms / rate_u:.3f} loan-months per uniform-draw time")
    print(f"peak RSS: {peak_gb:.2f} GB (target < 2 GB)")
    print(f"pool balance identity max gap: {np.abs(gap).max():.2e}; mean cumulative default rate {cum_def.mean():.4f}")


if __name__ == "__main__":
    main()
