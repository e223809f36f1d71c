"""``creditsim train macro``: train a MacroVAE on the bundled history and write a checkpoint folder;
``creditsim train transitions``: fit the Markov chain (and its macro overlay), or a TransitionTransformer, on
your own panel; ``creditsim train trajectory``: a LoanTrajectoryModel on your own panel."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError

__all__ = ["register"]

console = Console()
train_app = typer.Typer(help="Train models: the macro VAE on the bundled history, or a transition model (Markov chain, "
                        "transformer) or a loan trajectory model on your own loan panel.", no_args_is_help=True)


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
    creditsim.macro.pretrained; like the shipped model it works on the logs of the IG and HY spreads)."""
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
        value = meta[key] + 1 if key == "best_epoch" else meta[key]  # epochs counted from 1, as the log counts them
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("labels", ", ".join(f"{k} {v}" for k, v in meta["label_counts"].items()))
    console.print(table)


@train_app.command("transitions")
def train_transitions(
    panel: Path = typer.Option(..., "--panel", help="loan x month panel (csv/parquet) with loan_id, reporting_month, loan_state"),
    out: Path = typer.Option(..., "--out", help="folder to write the model into (markov_model.json, or config.json + "
                             "model.safetensors for the transformer)"),
    model: str = typer.Option("markov", "--model", help="markov (the chain) | transformer (a TransitionTransformer on "
                              "the panel's cohorts; needs --tape; carries the calibrated credit link)"),
    tape: Path = typer.Option(None, "--tape", help="loan tape, for a --by column the panel lacks (joined on loan_id)"),
    by: str = typer.Option(None, "--by", help="segment column (default asset_class when a tape is given: the "
                           "segmentation simulate uses)"),
    overlay: str = typer.Option(None, "--overlay", help="macro overlay: calibrated (the shipped per-asset-class link, "
                                "needs --by asset_class; the default then), fit (estimated on a monthly panel with --macro; "
                                "the default otherwise), legacy (the default for a quarterly panel without asset classes)"),
    macro: str = typer.Option(None, "--macro", help="for --overlay fit and the transformer: 'history' (bundled "
                              "US macro, 1980-01 .. 2025-09; the default) or a monthly file covering the panel's months "
                              "(a panel from 'creditsim data synth --out DIR' runs in future months: give --macro "
                              "DIR/macro.parquet); not read by the calibrated and legacy overlays"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="transformer: maximum epochs (early stopping may end sooner)"),
    seed: int = typer.Option(None, "--seed", min=0, help="transformer: initialisation, batch order and early-stopping "
                             "loans (default 0)"),
    period: str = typer.Option("month", "--period", help="month | quarter: months between a loan's rows. From a "
                               "quarterly panel both models learn monthly matrices whose three-month products fit "
                               "its moves"),
) -> None:
    """Fit the monthly Markov chain (or, with --model transformer, a TransitionTransformer) on your panel and
    save it for 'creditsim simulate --transition-model DIR' (Python: creditsim.fit_transitions)."""
    from creditsim.cli.run import read_macro_history
    from creditsim.harness.fit import PERIOD_MONTHS, default_overlay, fit_transitions
    from creditsim.io import read_frame, read_panel
    from creditsim.schema import STATE_PANEL_COLUMNS

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder, but {out} is a file")
    if model not in ("markov", "transformer"):
        raise ConfigError(f"--model: expected markov or transformer, got {model!r}")
    if period not in PERIOD_MONTHS:
        raise ConfigError(f"--period: expected one of {list(PERIOD_MONTHS)}, got {period!r}")
    if model == "markov":  # cheap checks before the panel is read
        if epochs is not None or seed is not None:
            raise ConfigError("--epochs and --seed train the transformer (--model transformer); the Markov chain is "
                              "counted, not trained")
        if (out / "config.json").is_file():
            raise ConfigError(f"--out {out} already holds a neural model checkpoint (config.json); write the chain to "
                              "another folder (one model per folder, so --transition-model DIR is never ambiguous)")
        _check_overlay(overlay or default_overlay(by or ("asset_class" if tape is not None else None), True, period),
                       overlay is not None, macro is not None, period)
    frame = read_panel(panel, check_transitions=False, required=STATE_PANEL_COLUMNS)
    static = None if tape is None else read_frame(tape, "loan tape")
    history = read_macro_history("history" if macro is None else macro)
    if model == "transformer":
        _train_transformer(frame, static, history, out, epochs, 0 if seed is None else seed, (by, overlay), period)
        return
    used = overlay or default_overlay(by or ("asset_class" if static is not None else None), True, period)
    model = fit_transitions(frame, static, model="markov", macro=history if used == "fit" else None, by=by,
                            overlay=used, period=period)
    path = model.save(out)
    _print_chain(model, path, used)


def _check_overlay(used: str, named: bool, macro_given: bool, period: str) -> None:
    """Refuse, before the panel is read, a chain overlay the panel cannot fit (``--overlay fit`` on a quarterly
    panel: no monthly moves to estimate the link from) and a ``--macro`` the overlay does not read; the advice
    never names an option that would be refused in turn."""
    if used == "fit" and named and period != "month":
        raise ConfigError(f"--overlay fit estimates the macro link from monthly moves; --period {period} gives none: "
                          "give --overlay calibrated (with --tape or --by asset_class) or --overlay legacy")
    if macro_given and used != "fit":
        fix = "drop --macro" if period != "month" else "drop --macro, or give --overlay fit"
        raise ConfigError(f"--macro is read by --overlay fit (monthly panels) and --model transformer; the {used} "
                          f"overlay does not read it (its macro link is fixed): {fix}")


def _train_transformer(panel, tape, macro, out: Path, epochs: int | None, seed: int, chain_only: tuple,
                       period: str = "month") -> None:
    """``train transitions --model transformer``: train on the panel's cohorts, save, print what was learnt."""
    from creditsim.transitions.panel_train import train_transformer_on_panel

    if tape is None:
        raise ConfigError("--model transformer needs --tape: the cohorts and their features come from the loan tape")
    if any(v is not None for v in chain_only):
        raise ConfigError("--by and --overlay are Markov-chain options; the transformer's cohorts are the tape's "
                          "asset classes (and vintage x risk), its macro link the calibrated one")
    from creditsim.harness.fit import PERIOD_MONTHS

    model = train_transformer_on_panel(panel, tape, macro, out=out, epochs=epochs, seed=seed, progress=True,
                                       period_months=PERIOD_MONTHS[period])
    meta = json.loads((out / "config.json").read_text())["training"]
    table = Table(title=f"TransitionTransformer trained -> {out}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("best epoch / epochs run", f"{meta['best_epoch'] + 1} / {meta['epochs_run']}")
    table.add_row("held-out NLL per move" + (" (quarterly moves)" if period == "quarter" else ""),
                  f"{meta['best_val_nll']:.4f}")
    table.add_row("training seconds", f"{meta['seconds_train']:.1f}")
    table.add_row("cohort sequences", ", ".join(f"{k} {v}" for k, v in meta["n_sequences"].items()))
    table.add_row("month positions learnt", str(model.config.max_months))
    console.print(table)
    console.print(f"use it with: creditsim simulate --engine transformer --transition-model {out} ...")


@train_app.command("trajectory")
def train_trajectory(
    panel: Path = typer.Option(..., "--panel", help="loan x month panel (csv/parquet) with loan_id, reporting_month, "
                               "loan_state (and, for the payment and LGD head, scheduled_payment, actual_payment, "
                               "current_balance, loss_amount)"),
    tape: Path = typer.Option(..., "--tape", help="loan tape of the panel's loans (the model's contract features)"),
    out: Path = typer.Option(..., "--out", help="folder to write the model into (config.json + model.safetensors)"),
    macro: str = typer.Option("history", "--macro", help="'history' (bundled US macro, 1980-01 .. 2025-09) or a "
                              "monthly file covering the panel's months (a panel from 'creditsim data synth --out DIR': "
                              "--macro DIR/macro.parquet)"),
    window: int = typer.Option(24, "--window", min=1, help="months per training sequence"),
    stride: int = typer.Option(12, "--stride", min=1, help="months between snapshot cut-offs"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="maximum epochs (default 60; early stopping may end sooner)"),
    seed: int = typer.Option(0, "--seed", min=0, help="batch order, early-stopping loans (and initialisation with "
                             "--cold-start)"),
    cold_start: bool = typer.Option(False, "--cold-start", help="train from scratch instead of from the shipped model"),
) -> None:
    """Train a LoanTrajectoryModel on your panel and save it for 'creditsim simulate --trajectory-model DIR'.

    Live loans at snapshot cut-offs run --window months; the asset class's empirical monthly chain is the
    model's cohort input; early stopping on held-out loans. Panel rows flagged censored=True end a loan's
    record with one more default-free month whose state is unknown. Python:
    creditsim.loans.panel_train.train_trajectory_on_panel."""
    from creditsim.cli.run import read_macro_history
    from creditsim.io import read_frame, read_panel
    from creditsim.loans.panel_train import train_trajectory_on_panel
    from creditsim.schema import STATE_PANEL_COLUMNS

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder, but {out} is a file")
    frame = read_panel(panel, check_transitions=False, required=STATE_PANEL_COLUMNS)
    static = read_frame(tape, "loan tape")
    train_trajectory_on_panel(frame, static, read_macro_history(macro), out=out, window=window, stride=stride,
                                      epochs=epochs, seed=seed, warm_start=not cold_start, progress=True)
    meta = json.loads((out / "config.json").read_text())["training"]
    table = Table(title=f"LoanTrajectoryModel trained -> {out}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("started from", "scratch" if cold_start else "the shipped model")
    table.add_row("snapshots (cut-offs)", f"{len(meta['snapshots'])}: {meta['snapshots'][0]} .. {meta['snapshots'][-1]}")
    table.add_row("sequences train / held out", f"{meta['n_sequences']['train']:,} / {meta['n_sequences']['val']:,}")
    table.add_row("best epoch / epochs run", f"{meta['best_epoch'] + 1} / {meta['epochs_run']}")
    table.add_row("held-out loss", f"{meta['best_val_loss']:.4f}")
    table.add_row("MATURED before term read as PREPAID", f"{meta['matured_read_as_prepaid']:,}")
    table.add_row("sequences censored past maturity", f"{meta['censored_past_maturity']:,}")
    table.add_row("MATURED in maturity_date's month, read at term", f"{meta['matured_on_maturity_date']:,}")
    table.add_row("training seconds", f"{meta['seconds']:.1f}")
    console.print(table)
    console.print(f"use it with: creditsim simulate --trajectory-model {out} ...")


def _print_chain(model, path: Path, overlay: str) -> None:
    table = Table(title=f"Markov chain fitted -> {path} (overlay: {overlay})")
    for col in ("segment", "moves", "12-month PD from CURRENT"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    counts = model.counts_ if model.counts_.ndim == 3 else model.counts_[None]
    pd12 = model.pd_curve(12)
    pd12 = pd12 if pd12.ndim == 2 else pd12[None]
    for c, seg in enumerate(model.segments_ or ("all",)):
        table.add_row(str(seg), f"{int(counts[c].sum()):,}", f"{pd12[c, -1]:.2%}")
    console.print(table)
    months = int(getattr(model, "period_months_", 1))
    if months > 1:
        import numpy as np

        from creditsim.states import N_LIVE_STATES, N_STATES, LoanState

        shares = np.atleast_2d(model.dated_shares_)  # (C, 7): a range across segments when they differ
        lo, hi = shares.min(0), shares.max(0)
        dated = ", ".join(f"{LoanState(a).name} {lo[a]:.0%}" + (f"-{hi[a]:.0%} by segment" if hi[a] > lo[a] + 0.005 else "")
                          for a in range(N_LIVE_STATES, N_STATES) if hi[a] > 0)
        console.print(f"a monthly chain fitted to a panel reported every {months} months: rows g months apart read "
                      f"through its g-step matrix; absorptions dated in their own month: {dated or 'none'}; simulate "
                      "steps it month by month")


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to the ``creditsim`` app."""
    app.add_typer(train_app, name="train")
