"""End-to-end Monte Carlo throughput: 10,000 loans x 60 months x 10,000 scenarios, Markov engine +
waterfall (targets: < 10 minutes and < 4 GB peak memory on 2 cores).

Runs :func:`creditsim.simulate` on a synthetic tape (LoanTapeGenerator) and the example CLO deal with
``macro="synthetic"`` (macro generation is not what is measured; ``--macro vae`` includes it) and
prints wall time, loan-months per second and peak resident memory (``ru_maxrss``). When the full size
is too slow for a loaded machine, run fewer scenarios (``--sims 500``): the cost is linear in the
number of scenarios (chunks are independent and equally sized), and the script prints the linear
extrapolation to ``--target-sims`` next to the measured numbers.

Measured 2026-11-24 (shared 2-core machine, load average 6-8, ``--threads 1 --chunk 500``): full size
10,000 loans x 60 months x 10,000 scenarios in 409 s wall (145 s CPU), 14.7 M loan-months/s wall,
peak RSS 0.98 GiB. Under heavy oversubscription use ``--threads 1``: OpenMP threads that wait for a
descheduled sibling burn CPU (the same run with 2 threads used > 660 s CPU).

Run: ``.venv/bin/python bench/bench_simulate.py [--sims 10000] [--loans 10000] [--threads 2]
[--chunk 250] [--device cpu|cuda] [--backend local|dask] [--engine markov|transformer|trajectory]``.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loans", type=int, default=10_000)
    ap.add_argument("--months", type=int, default=60)
    ap.add_argument("--sims", type=int, default=10_000)
    ap.add_argument("--target-sims", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="local")
    ap.add_argument("--macro", default="synthetic")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engine", default="markov", help="markov | transformer | trajectory")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.examples import example_path
    from creditsim.risk.simulate import simulate
    from creditsim.deal.config import load_deal

    t0 = time.perf_counter()
    loans, _ = LoanTapeGenerator(args.loans, 1, random_seed=args.seed).generate()
    deal = load_deal(example_path("example_clo.yaml"))
    t_setup = time.perf_counter() - t0

    # the first run in a process imports numba and loads its cached kernels (and the macro model, if any):
    # timed apart, so the figures below are the steady-state cost per scenario
    w0 = time.perf_counter()
    simulate(loans, deal, n_simulations=2, macro=args.macro, engine=args.engine, seed=args.seed, chunk_size=2,
             backend="local", progress=False, device=args.device, horizon=args.months)
    warm = time.perf_counter() - w0
    t1, c1 = time.perf_counter(), time.process_time()
    res = simulate(loans, deal, n_simulations=args.sims, macro=args.macro, engine=args.engine, seed=args.seed,
                   chunk_size=args.chunk, backend=args.backend, progress=False, device=args.device,
                   horizon=args.months)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1  # all threads of this process; tells a loaded machine from slow code
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB (Linux)
    loan_months = args.loans * args.months * args.sims
    print(f"engine={args.engine} device={args.device} threads={args.threads} backend={args.backend} "
          f"chunk={args.chunk} macro={args.macro}")
    print(f"loans={args.loans:,} months={args.months} scenarios={args.sims:,}  (tape set-up {t_setup:.1f} s)")
    print(f"first run          {warm:9.1f} s   (imports, kernel cache; not counted below)")
    print(f"wall time          {wall:9.1f} s   (CPU time of the process {cpu:.1f} s)")
    print(f"per loan-month     {cpu / loan_months * 1e9:9.1f} ns CPU")
    print(f"throughput         {loan_months / wall / 1e6:9.2f} M loan-months/s, {args.sims / wall:,.1f} scenarios/s")
    print(f"peak memory (RSS)  {peak_gb:9.2f} GiB")
    if args.sims != args.target_sims:
        est = wall * args.target_sims / args.sims
        est_cpu = cpu * args.target_sims / args.sims
        # kept outputs per (scenario, month): 7 pool flows + 3 tranche arrays + 9 macro variables, float64
        per_st = (7 + 3 * len(deal.tranches) + 9) * 8
        print(f"extrapolated to {args.target_sims:,} scenarios: {est:,.0f} s wall ({est / 60:.1f} min), "
              f"{est_cpu:,.0f} s CPU; memory adds "
              f"only the O(S T) outputs, {args.target_sims * args.months * per_st / 1e9:.2f} GB at that size")
    print(f"EL {res.expected_loss:.4%}  VaR99 {res.var_99:.4%}  CVaR99 {res.cvar_99:.4%}")


if __name__ == "__main__":
    main()
