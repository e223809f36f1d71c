"""Throughput of the data layer: synthetic tape + panel generation and cohort transition counts.

Targets (issue 2, 2 CPU cores): a 100,000-loan x 60-month tape in under 30 s, its cohort transition
counts in under 2 s. Run: ``.venv/bin/python bench/bench_data.py [--n-loans N] [--n-months T]``.
Prints throughput only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import time

from creditsim.transitions.cohorts import transition_counts
from creditsim.transitions.synthetic import LoanTapeGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-loans", type=int, default=100_000)
    parser.add_argument("--n-months", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of the counts (best is shown)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    loans, panel = LoanTapeGenerator(args.n_loans, args.n_months, random_seed=args.seed).generate()
    gen_s = time.perf_counter() - t0
    rows = len(panel)
    print(f"generate tape+panel : {args.n_loans:,} loans x {args.n_months} months = {rows:,} panel rows "
          f"in {gen_s:.2f} s -> {rows / gen_s:,.0f} rows/s")

    best = float("inf")
    for _ in range(max(args.repeat, 1)):
        t0 = time.perf_counter()
        counts, cohorts, months = transition_counts(panel, loans)
        best = min(best, time.perf_counter() - t0)
    print(f"transition counts   : {counts.shape} (C, T, 7, 7) from {rows:,} rows in {best:.2f} s "
          f"-> {rows / best:,.0f} rows/s ({int(counts.sum()):,} moves, {len(cohorts)} cohorts)")


if __name__ == "__main__":
    main()
