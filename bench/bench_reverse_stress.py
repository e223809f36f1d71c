"""Reverse stress on the demo: expected-loss path throughput, then a full search.

1. The differentiable expected-loss path (exact expected pool cashflows of the Markov engine + 64
   idiosyncratic draws through the soft waterfall) on the demo tape (2,000 loans, 60 months): paths per
   second forward (64 paths at once, the reference-path pass) and forward + backward (4 paths, a search
   iteration), against the Monte Carlo engine's cost for one path's 2,000 loan draws.
2. ``creditsim.reverse_stress`` on the demo (tranche C, 25 % principal loss; and optionally tranche B 1 %
   with ``--b``) with the default settings: wall time, and the acceptance numbers.

Run: ``.venv/bin/python bench/bench_reverse_stress.py [--b]`` (about 3-4 minutes on 2 cores).

Measured 2026-12-04 on the 2-core machine (shared with other work, so walls are upper bounds):
    expected-loss path: 64 paths forward 2.8 s (23 paths/s); 4 paths forward+backward 2.3 s;
    Monte Carlo, 2,000 loan draws on one path: 17.0 s
    C 25 %: found path Monte Carlo loss 25.72 % (s.e. 0.28 %), soft 25.01 %; negative log-density -1567
      vs -1234 for the most plausible of the 1,000 generator paths that reach 25 % (0.1 % of them do; none
      of the 1,000 is more plausible than the found path); 0.36 sd beyond the training range; wall 130 s
      (166 s through the CLI while other work ran).
    B 1 %: Monte Carlo 0.95 % (s.e. 0.08 %); no generator path reaches it and 95 % of them are more
      plausible: the search had to leave the training range (HY spread 39 % at month 18); wall 325 s
      while other jobs ran.
Measured 2026-12-04, later, with the calibration on reweighted engine draws (:mod:`creditsim.risk.reweighted`)
instead of soft-target rescaling: expected-loss path 64 paths forward 2.4 s, 4 paths forward+backward 1.6 s;
Monte Carlo 2,000 loan draws 4.5 s; C 25 %: Monte Carlo 24.66 % (s.e. 0.28 %, 1.3 % off the threshold,
was 2.9 %), soft 23.9 %; negative log-density -1570 vs -1234; wall 102-112 s (the same after the
cliff-safe bracket search of the calibration).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from creditsim.examples import example_path
from creditsim.macro.latent import LatentPathMap
from creditsim.macro.vae import MacroVAE
from creditsim.risk.expected import ExpectedLossPath
from creditsim.risk.reverse_stress import monte_carlo_loss, reverse_stress


def throughput(tape: pd.DataFrame) -> None:
    elp = ExpectedLossPath.from_tape(tape, example_path("example_clo.yaml"), horizon=60, seed=0)
    lmap = LatentPathMap(MacroVAE.from_pretrained(), elp.start, 60)
    with torch.no_grad():
        paths = lmap.decode(lmap.sample(64, 1))[0]
        t0 = time.perf_counter()
        elp.losses(paths)
        fwd = time.perf_counter() - t0
    x = paths[:4].clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss, _ = elp.losses(x)
    loss[:, 2].sum().backward()
    both = time.perf_counter() - t0
    t0 = time.perf_counter()
    monte_carlo_loss(elp, paths[0].numpy(), 2, 2000)
    mc = time.perf_counter() - t0
    print(f"expected-loss path: 64 paths forward {fwd:.2f} s ({64 / fwd:.1f} paths/s); 4 paths forward+backward "
          f"{both:.2f} s; Monte Carlo 2,000 loan draws on one path {mc:.1f} s")


def search(tape: pd.DataFrame, tranche: str, loss: float) -> None:
    t0 = time.perf_counter()
    r = reverse_stress(tape, example_path("example_clo.yaml"), tranche, loss, progress=False)
    wall = time.perf_counter() - t0
    hit = r.reference_losses >= r.threshold
    print(f"{tranche} {loss:.0%}: Monte Carlo {r.mc_loss:.4f} (s.e. {r.mc_se:.4f}, {abs(r.mc_loss / loss - 1):.1%} off), "
          f"soft {r.soft_loss:.4f}; nld {r.neg_log_density:.0f} vs best breaking reference "
          f"{r.best_reference_nld:.0f} ({hit.mean():.1%} of {len(hit)} reach it); beyond history "
          f"{r.beyond_history_sd:.2f} sd; wall {wall:.0f} s")
    print(r.path_table().round(4).T.to_string())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--b", action="store_true", help="also tranche B at 1 %%")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    throughput(tape)
    search(tape, "C", 0.25)
    if args.b:
        search(tape, "B", 0.01)


if __name__ == "__main__":
    main()
