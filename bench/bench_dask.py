"""simulate() wall time: local (one process) vs the dask backend on a private 2-worker LocalCluster.

    .venv/bin/python bench/bench_dask.py [--sims 6000] [--loans 2000] [--horizon 60]

A run of about a minute locally; the dask run includes starting the cluster. On a 2-core machine the
target is dask faster than local (two processes, one thread each).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import creditsim as cs
from creditsim.examples import example_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=6000)
    ap.add_argument("--loans", type=int, default=2000)
    ap.add_argument("--horizon", type=int, default=60)
    a = ap.parse_args()
    loans = pd.read_parquet(example_path("loans_example.parquet")).head(a.loans)
    deal = cs.load_deal(example_path("example_clo.yaml"))
    kw = dict(n_simulations=a.sims, macro="synthetic", horizon=a.horizon, seed=1, chunk_size=500, progress=False)
    t0 = time.perf_counter()
    local = cs.simulate(loans, deal, **kw)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist = cs.simulate(loans, deal, backend="dask", **kw)
    t_dask = time.perf_counter() - t0
    same = (local.portfolio_losses == dist.portfolio_losses).all()
    print(f"{a.sims} scenarios x {len(loans)} loans x {a.horizon} months")
    print(f"local: {t_local:6.1f} s   dask (2 workers, incl. start-up): {t_dask:6.1f} s   "
          f"speed-up {t_local / t_dask:4.2f}x   bit-identical: {bool(same)}")


if __name__ == "__main__":
    main()
