"""Out-of-time forecast skill of the MacroVAE vs VAR(1) vs block bootstrap (:mod:`creditsim.macro.oot`):
runs the full evaluation and prints the tables (no assertions).

    .venv/bin/python bench/bench_macro_oot.py [--origins 15] [--epochs N] [--n-samples 1000]
        [--models-dir DIR] [--csv FILE] [--seed 0] [--dispersion] [--endpoint-months N] [--pull uniform|trained|F]

Defaults are the issue's: 15 annual origins, the shipped training settings, 1000 paths. Per-origin
models are cached in ``--models-dir`` (a re-run only generates and scores).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origins", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--csv", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dispersion", action="store_true", help="calibrate each origin's VAE dispersion first")
    parser.add_argument("--endpoint-months", type=int, default=None, help="shifting endpoint: mean of N months")
    parser.add_argument("--pull", default="uniform", help="backbone pull kept by every variable: 'uniform' (default, the "
                        "forecast source's), 'trained' (the scenario generator's) or a number in [0, 1]")
    args = parser.parse_args()
    from creditsim.fileio import atomic_write
    from creditsim.macro.oot import evaluate_oot

    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.max_columns", 20)
    t0 = time.perf_counter()

    def tick(origin: str) -> None:
        print(f"origin {origin} scored after {time.perf_counter() - t0:.0f} s", flush=True)

    res = evaluate_oot(args.origins, n_samples=args.n_samples, epochs=args.epochs, seed=args.seed,
                       models_dir=args.models_dir, on_origin=tick, dispersion=args.dispersion,
                       endpoint_months=args.endpoint_months,
                       pull={"uniform": "uniform", "trained": None}.get(args.pull) if args.pull in ("uniform", "trained")
                       else float(args.pull))
    print(f"\n{res.settings}\n{res.seconds:.0f} s\n")
    print("CRPS (percentage points; last row per horizon: mean over variables in training sds)")
    print(res.crps_table().round(3).to_string())
    print("\nEnergy score (8 variables, training sds) and VAE - best baseline, 95 % t interval over origins")
    print(res.energy_table().round(3).to_string())
    print("\nCentral-interval coverage, pooled over origins and variables")
    print(res.coverage_table().round(3).to_string())
    print("\nBar (12-36 months)")
    print(res.verdict().to_string())
    if args.csv:
        atomic_write(args.csv, lambda p: res.long_frame().to_csv(p, index=False))


if __name__ == "__main__":
    main()
