"""Throughput of the shipped MacroVAE: unconditional and conditional paths per second, and the CPU cost
of one training epoch of the shipped configuration (prints; no assertions).

    .venv/bin/python bench/bench_macro.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from creditsim.macro.vae import MacroVAE

    model = MacroVAE.from_pretrained(device=args.device)
    for n in (1000, 10000):
        t0 = time.perf_counter()
        model.generate(scenario=None, seq_length=60, n_samples=n, seed=0)
        dt = time.perf_counter() - t0
        print(f"generate            n={n:>6}: {dt:6.2f} s  {n / dt:10.0f} paths/s  (60 months, 9 vars)")
    conds = {"unemployment_rate": {"month": 12, "value": 0.08}, "credit_spread_hy": {"month": 12, "value": 0.08},
             "policy_rate": {"month": 36, "value": 0.01}}
    for n in (100, 1000):
        t0 = time.perf_counter()
        model.generate_conditional(conds, n_samples=n, seed=0)
        dt = time.perf_counter() - t0
        print(f"generate_conditional n={n:>5}: {dt:6.2f} s  {n / dt:10.0f} paths/s  (3 conditions, 16x particles)")

    from dataclasses import replace

    from creditsim.macro.train import train_macro_vae
    from creditsim.macro.pretrained import SHIPPED_CONFIG, SHIPPED_TRAINING

    epochs = 5
    c0, t0 = time.process_time(), time.perf_counter()
    train_macro_vae(None, SHIPPED_CONFIG, replace(SHIPPED_TRAINING, epochs=epochs, min_epochs=0, progress=False),
                    refit=False)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    per_epoch = cpu / epochs
    print(f"training: {per_epoch:.2f} CPU-s per epoch ({wall / epochs:.2f} s wall on this machine); "
          f"shipped run = early-stopping stage + refit, at most {2 * SHIPPED_TRAINING.epochs} epochs "
          f"-> <= {2 * SHIPPED_TRAINING.epochs * per_epoch / max(args.threads, 1) / 60:.1f} min on {args.threads} free cores")


if __name__ == "__main__":
    main()
