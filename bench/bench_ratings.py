"""Benchmark of creditsim.ratings: estimators on 100,000 entities x 20 years, lifetime PD on paths.

Targets (issue 3): cohort and Aalen-Johansen < 1 s each on 100,000 x 20 (printed beside the time of
transitionMatrix 0.5.1 on the same panel when it is installed; its estimators run in a child process
with a time limit, and a crash is reported as such), lifetime PD for 10,000 Z paths x 30 years < 2 s.

    .venv/bin/python bench/bench_ratings.py                 # full run (transitionMatrix limit 300 s)
    .venv/bin/python bench/bench_ratings.py --tm-timeout 60 --entities 100000 --years 20
    .venv/bin/python bench/bench_ratings.py --no-tm         # ours only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

STATES = ("AAA", "AA", "A", "BBB", "BB", "B", "D")


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def tm_worker(kind: str, path: str) -> None:
    """Child process: run one transitionMatrix estimator on the saved panel and print its time."""
    import transitionMatrix  # noqa: F401
    from transitionMatrix.statespaces.statespace import StateSpace

    warnings.simplefilter("ignore")
    panel = pd.read_parquet(path)
    ss = StateSpace([(str(i), s) for i, s in enumerate(STATES)])
    t0 = time.perf_counter()
    try:
        if kind == "cohort":
            from transitionMatrix.estimators.cohort_estimator import CohortEstimator

            n_t = int(panel["time"].max())
            est = CohortEstimator(states=ss, cohort_bounds=list(range(n_t + 1)), ci={"method": "goodman", "alpha": 0.05})
            est.fit(panel.rename(columns={"entity": "ID", "time": "Time", "rating": "State"}))
            mat = est.average_matrix
        else:
            from transitionMatrix.estimators.aalen_johansen_estimator import AalenJohansenEstimator

            # long format (ID, Time, From, To), one row per entity-year, sorted by time as documented
            p = panel.sort_values(["entity", "time"])
            same = p["entity"].to_numpy()[1:] == p["entity"].to_numpy()[:-1]
            ev = pd.DataFrame(
                {
                    "ID": p["entity"].to_numpy()[1:][same],
                    "Time": p["time"].to_numpy()[1:][same].astype(float),
                    "From": p["rating"].to_numpy()[:-1][same],
                    "To": p["rating"].to_numpy()[1:][same],
                }
            ).sort_values("Time", kind="stable")
            est = AalenJohansenEstimator(states=ss)
            est.fit(ev)
            mat = None
    except Exception as exc:  # report the library's failure, not ours
        print(f"CRASH {type(exc).__name__}: {exc} after {time.perf_counter() - t0:.2f} s")
        return
    dt = time.perf_counter() - t0
    extra = ""
    if mat is not None:
        np.save(path + ".tm.npy", mat)
    print(f"OK {dt:.3f}{extra}")


def run_tm(kind: str, path: str, timeout: float) -> str:
    try:
        r = subprocess.run(
            [sys.executable, __file__, "--tm-worker", kind, path], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} s (stopped)"
    line = (r.stdout.strip().splitlines() or [r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "no output"])[-1]
    if line.startswith("OK "):
        return f"{float(line[3:]):.2f} s"
    return line.replace("CRASH ", "crashed: ")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--tm-timeout", type=float, default=300.0)
    ap.add_argument("--no-tm", action="store_true")
    ap.add_argument("--tm-worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tm_worker:
        tm_worker(*args.tm_worker)
        return

    from creditsim.datasets.ratings import load_sp_ratings
    from creditsim.ratings.estimate import aalen_johansen, cohort_matrix
    from creditsim.ratings.lifetime import path_term_structure
    from creditsim.ratings.simulate import simulate_rating_panel

    sp = load_sp_ratings()
    p7 = sp.matrix_7x7.to_numpy()
    p8 = sp.matrix_8x8.to_numpy()
    panel = simulate_rating_panel(p7, args.entities, args.years, seed=0)
    n = len(panel)
    print(f"panel: {args.entities:,} entities x {args.years} years = {n:,} rows, {len(STATES)} states (S&P 7x7 chain)")

    t_coh, coh = best_of(lambda: cohort_matrix(panel, states=STATES))
    t_aj, aj = best_of(lambda: aalen_johansen(panel, states=STATES))
    prod = np.linalg.multi_dot(list(coh.period_matrices))
    print(f"AJ vs product of cohort matrices: max |diff| = {np.abs(prod - aj.matrix).max():.2e}")

    tm_coh = tm_aj = "not run (--no-tm)"
    if not args.no_tm:
        try:
            import transitionMatrix  # noqa: F401

            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "panel.parquet")
                panel.to_parquet(path)
                tm_coh = run_tm("cohort", path, args.tm_timeout)
                if os.path.exists(path + ".tm.npy"):
                    diff = np.abs(np.load(path + ".tm.npy")[:-1] - coh.matrix[:-1]).max()
                    tm_coh += f" (max |diff| to ours {diff:.1e})"
                tm_aj = run_tm("aj", path, args.tm_timeout)
        except ImportError:
            tm_coh = tm_aj = "transitionMatrix not installed"

    print(f"{'estimator':<16} {'creditsim':>12} {'rows/s':>14}   transitionMatrix 0.5.1")
    print(f"{'cohort':<16} {t_coh:>10.3f} s {n / t_coh:>14,.0f}   {tm_coh}")
    print(f"{'Aalen-Johansen':<16} {t_aj:>10.3f} s {n / t_aj:>14,.0f}   {tm_aj}")
    print(f"targets: < 1 s each -> cohort {'OK' if t_coh < 1 else 'MISSED'}, AJ {'OK' if t_aj < 1 else 'MISSED'}")

    z = np.random.default_rng(1).standard_normal((args.paths, args.horizon))
    t_lt, ts = best_of(lambda: path_term_structure(p8, z, 0.05))
    print(
        f"lifetime PD, {args.paths:,} Z paths x {args.horizon} years (8x8): {t_lt:.3f} s "
        f"({args.paths * args.horizon / t_lt:,.0f} path-years/s), target < 2 s -> {'OK' if t_lt < 2 else 'MISSED'}"
    )
    print(f"  mean 30-year cumulative PD B / CCC over paths: {ts.cumulative[:, -1, 5].mean():.4f} / {ts.cumulative[:, -1, 6].mean():.4f}")

    from creditsim.ratings.lifetime import ZMacroLink, monthly_scenario_matrices
    from creditsim.datasets.macro import load_macro_history

    link = ZMacroLink.from_bundled()
    hist = load_macro_history().to_numpy()[-120:]  # last 10 years of monthly history as a template
    rng = np.random.default_rng(2)
    macro = hist[None] + rng.normal(0, 0.002, (1000, 120, hist.shape[1]))
    t_ms, ms = best_of(lambda: monthly_scenario_matrices(macro, link), repeat=2)
    print(f"monthly_scenario_matrices, 1,000 macro paths x 120 months -> {ms.shape}: {t_ms:.3f} s")


if __name__ == "__main__":
    main()
