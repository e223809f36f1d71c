"""Training time of the simulation models on your own panel at the issue's scale (100k loans x 60 months).

Run: ``python bench/bench_panel_train_scale.py [--n-loans 100000] [--n-months 60]``. The panel comes from
:class:`creditsim.LoanTapeGenerator` with a 2019-01 cut-off (inside the bundled macro history); prints the
seconds and epochs of ``train_transformer_on_panel`` and ``train_trajectory_on_panel`` (default settings,
2 threads).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import creditsim as cs
from creditsim.loans.panel_train import train_trajectory_on_panel
from creditsim.transitions.panel_train import train_transformer_on_panel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-loans", type=int, default=100_000)
    ap.add_argument("--n-months", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    loans, panel = cs.LoanTapeGenerator(args.n_loans, args.n_months, random_seed=1, cutoff="2019-01-01").generate()
    print(f"panel {len(panel):,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, train in (("TransitionTransformer", train_transformer_on_panel),
                            ("LoanTrajectoryModel", train_trajectory_on_panel)):
            out = Path(tmp) / name
            start = time.perf_counter()
            train(panel, loans, out=out)
            meta = json.loads((out / "config.json").read_text())["training"]
            print(f"{name:>22}: {time.perf_counter() - start:6.1f} s, {meta['epochs_run']} epochs "
                  f"(best {meta['best_epoch'] + 1})", flush=True)


if __name__ == "__main__":
    main()
