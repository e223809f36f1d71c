"""Regenerate the checkpoint shipped in ``creditsim/pretrained/macro_vae`` (``make pretrained``).

    python -m creditsim.training.pretrained [--out DIR] [--epochs N] [--quiet]

Trains :data:`SHIPPED_CONFIG` on the bundled monthly history 1981-2019 (``load_macro_history``) with
the scenario labels of :mod:`creditsim.training.macro`, early stopping on the last 20 % of the months,
then refits on all windows for the best epoch count. Deterministic for a fixed seed on one machine
(CPU, 2 threads). The checkpoint is safetensors + JSON (well under 1 MB).

Config choice: a small model (1-layer LSTMs, hidden 32, latent 8) because the history has ~470 distinct
months: larger models fit the training block better but score worse on the validation block.
"""

from __future__ import annotations

import argparse
import time

import torch

from creditsim.models.macro_vae import PRETRAINED_DIR, MacroVAEConfig
from creditsim.training.trainer import TrainConfig

__all__ = ["SHIPPED_CONFIG", "SHIPPED_TRAINING", "build_pretrained", "main"]

SHIPPED_CONFIG = MacroVAEConfig(
    seq_length=60, latent_dim=8, hidden_dim=32, n_layers=1, beta=0.5, n_scenarios=4,
    scenario_dim=8, free_bits=0.1, dropout=0.1, teacher_noise=0.2,
)
SHIPPED_TRAINING = TrainConfig(epochs=400, batch_size=64, lr=3e-3, weight_decay=1e-3, patience=40,
                               min_epochs=30, kl_warmup=30, seed=0, device="cpu")


def build_pretrained(out=PRETRAINED_DIR, epochs: int | None = None, progress: bool = True):
    """Train the shipped configuration and write it to ``out``; returns the MacroTrainingResult."""
    from dataclasses import replace

    from creditsim.training.macro import train_macro_vae

    train_cfg = replace(SHIPPED_TRAINING, progress=progress, **({"epochs": epochs} if epochs else {}))
    return train_macro_vae(None, SHIPPED_CONFIG, train_cfg, out=out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PRETRAINED_DIR), help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs of the early-stopping stage")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    res = build_pretrained(args.out, args.epochs, progress=not args.quiet)
    print(f"MacroVAE written to {args.out}: best epoch {res.fit.best_epoch}, {res.fit.epochs_run} epochs with "
          f"early stopping + refit, labels {res.label_counts}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
