"""``creditsim train macro``: train a MacroVAE on the bundled history and write a checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError

__all__ = ["register"]

console = Console()
train_app = typer.Typer(help="Train the generative models.", no_args_is_help=True)


@train_app.command("macro")
def train_macro(
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write (safetensors + JSON)"),
    epochs: int = typer.Option(200, "--epochs", help="maximum epochs of the early-stopping stage"),
    hidden_dim: int = typer.Option(32, "--hidden-dim"),
    latent_dim: int = typer.Option(8, "--latent-dim"),
    layers: int = typer.Option(1, "--layers", help="LSTM layers"),
    beta: float = typer.Option(1.0, "--beta", help="KL weight after annealing"),
    lr: float = typer.Option(3e-3, "--lr"),
    patience: int = typer.Option(20, "--patience", help="early-stopping patience in epochs"),
    min_epochs: int = typer.Option(150, "--min-epochs", help="epochs before early stopping may act"),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="share of months in the validation block"),
    refit: bool = typer.Option(True, "--refit/--no-refit", help="refit on all windows for the best epoch count"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    end: str = typer.Option(None, "--end", help="train on the history up to this month only, e.g. 2014-12 "
                            "(out-of-time evaluation)"),
) -> None:
    """Train a MacroVAE on 60-month windows of the bundled 1980-01 .. 2025-09 history, windows overlapping
    the COVID months 2020-03 .. 2020-12 left out (defaults: the shipped configuration, see
    ``creditsim.macro.pretrained``)."""
    from dataclasses import replace

    from creditsim.macro.train import train_macro_vae
    from creditsim.macro.pretrained import SHIPPED_CONFIG, SHIPPED_TRAINING

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder, but {out} is a file")
    config = replace(SHIPPED_CONFIG, hidden_dim=hidden_dim, latent_dim=latent_dim, n_layers=layers, beta=beta)
    config.__post_init__()
    train_cfg = replace(SHIPPED_TRAINING, epochs=epochs, lr=lr, patience=patience, min_epochs=min_epochs, seed=seed, device=device,
                        progress=not quiet)
    train_cfg.__post_init__()
    res = train_macro_vae(None, config, train_cfg, val_fraction=val_fraction, refit=refit, out=out, end=end)
    table = Table(title=f"MacroVAE trained -> {out}")
    table.add_column("item")
    table.add_column("value", justify="right")
    meta = res.metadata()
    for key in ("history_start", "history_end", "windows", "train_windows", "val_windows", "best_epoch", "epochs_run",
                "best_val_loss", "seconds"):
        value = meta[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("labels", ", ".join(f"{k} {v}" for k, v in meta["label_counts"].items()))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to the ``creditsim`` app."""
    app.add_typer(train_app, name="train")
