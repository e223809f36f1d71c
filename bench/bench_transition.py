"""Throughput of the TransitionTransformer: cohort matrices per second for the simulation.

    python bench/bench_transition.py [--scenarios 2000] [--months 60] [--device cpu|cuda] [--threads 1]

Times ``TransitionTransformer.for_tape(tape).scenario_matrices(macro_paths)`` (the call the
simulation engine makes per chunk: S paths x 4 asset-class cohorts x T months of 7x7 matrices) and
``cohort_matrices`` on the finer default cohorts, with the shipped checkpoint (a freshly initialised
model of the shipped size when none is shipped). Prints wall time and matrices per second; no
assertion (speed targets are read, not tested).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=2000)
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument("--loans", type=int, default=5000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.macro.synthetic import MacroScenarioGenerator
    from creditsim.transitions.transformer import PRETRAINED_DIR, TransitionTransformer
    from creditsim.transitions.train import SHIPPED_CONFIG

    if (PRETRAINED_DIR / "model.safetensors").is_file():
        model = TransitionTransformer.from_pretrained(device=args.device)
    else:
        model = TransitionTransformer(SHIPPED_CONFIG).to(args.device).eval()
    loans, _ = LoanTapeGenerator(args.loans, 1, random_seed=0).generate()
    paths = MacroScenarioGenerator(args.months).generate_scenario("severely_adverse", args.scenarios, seed=0)

    bound = model.for_tape(loans)
    bound.scenario_matrices(paths[:8])  # warm-up
    t0 = time.perf_counter()
    mats = bound.scenario_matrices(paths)
    dt = time.perf_counter() - t0
    n = mats.shape[0] * mats.shape[1] * mats.shape[2]
    print(f"scenario_matrices: {mats.shape} on {args.device}: {dt:.2f} s, {n / dt:,.0f} matrices/s, "
          f"{mats.shape[0] / dt:,.0f} scenarios/s")

    s_fine = max(1, args.scenarios // 10)
    t0 = time.perf_counter()
    fine, cohorts = model.cohort_matrices(loans, paths[:s_fine])
    dt = time.perf_counter() - t0
    n = fine.shape[0] * fine.shape[1] * fine.shape[2]
    print(f"cohort_matrices ({len(cohorts)} cohorts): {fine.shape}: {dt:.2f} s, {n / dt:,.0f} matrices/s")


if __name__ == "__main__":
    main()
