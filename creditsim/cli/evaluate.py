"""``creditsim eval macro``: MacroVAE vs VAR(1) vs block bootstrap on the EVALUATION.md metrics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError

__all__ = ["register"]

console = Console()
eval_app = typer.Typer(help="Evaluate generative models against history and baselines.", no_args_is_help=True)


@eval_app.command("macro")
def eval_macro(
    checkpoint: Path = typer.Option(None, "--checkpoint", help="MacroVAE checkpoint folder (default: shipped)"),
    n_samples: int = typer.Option(1000, "--n-samples", help="paths per generator and seed"),
    seeds: int = typer.Option(5, "--seeds", help="number of seeds (mean and sd reported)"),
    var_lags: int = typer.Option(1, "--var-lags", help="lag order of the VAR baseline"),
    mean_block: float = typer.Option(12.0, "--mean-block", help="mean block length of the bootstrap (months)"),
    plot: Path = typer.Option(None, "--plot", help="folder for fan charts (one PNG per scenario)"),
    csv: Path = typer.Option(None, "--csv", help="also write the full table as CSV"),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Print the evaluation table (VAE, VAR, bootstrap, history) and the scenario-ordering table."""

    from creditsim.checkpoints import atomic_write
    from creditsim.datasets import load_macro_history, load_recession_indicator
    from creditsim.devices import check_device
    from creditsim.macro.baselines import BlockBootstrapGenerator, VARGenerator
    from creditsim.macro.evaluate import (
        HEADLINE_METRICS,
        compare_generators,
        fan_charts,
        scenario_ordering,
    )
    from creditsim.macro.vae import MacroVAE

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    check_device(device)
    history = load_macro_history()
    recession = load_recession_indicator()["recession"]
    vae = MacroVAE.from_pretrained(checkpoint, device=device)
    var = VARGenerator(var_lags).fit(history, recession)
    boot = BlockBootstrapGenerator(mean_block).fit(history, recession)
    gens = {"MacroVAE": vae, var.name: var, "block bootstrap": boot}
    with console.status("generating and scoring paths"):
        table = compare_generators(gens, history, n_samples=n_samples, seeds=tuple(range(seeds)))
        ordering = scenario_ordering(vae, n_samples=n_samples)
    names = [*gens, "history"]
    out = Table(title=f"Macro generators vs history ({seeds} seeds x {n_samples} paths; mean ± sd)")
    out.add_column("metric", no_wrap=True)
    for n in names:
        out.add_column(n, justify="right")
    for metric in HEADLINE_METRICS:
        row = table.loc[metric]
        out.add_row(metric, *[f"{row[n]:.3f}" + (f" ± {row[n + '_sd']:.3f}" if n != "history" else "") for n in names])
    console.print(out)
    console.print("[dim]history column: real tail statistics; for distances the split-half noise floor[/]")
    sc = Table(title="MacroVAE scenario ordering")
    sc.add_column("scenario")
    for col in ordering.columns:
        sc.add_column(col, justify="right")
    for name, row in ordering.iterrows():
        sc.add_row(str(name), *[f"{v:.3f}" for v in row])
    console.print(sc)
    if csv is not None:
        atomic_write(csv, lambda p: table.to_csv(p))
        console.print(f"table written to {csv}")
    if plot is not None:
        if plot.exists() and not plot.is_dir():
            raise ConfigError(f"--plot must be a folder, but {plot} is a file")
        paths = fan_charts(vae, plot, n_samples=n_samples, history=history)
        console.print(f"fan charts: {', '.join(str(p) for p in paths)}")


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the ``creditsim`` app."""
    app.add_typer(eval_app, name="eval")
