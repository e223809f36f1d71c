"""``creditsim eval macro``: MacroVAE vs VAR(1) vs block bootstrap on the EVALUATION.md metrics; with
``--oot``, their out-of-time forecast skill from real origin states (:mod:`creditsim.macro.oot`)."""

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
    oot: bool = typer.Option(False, "--oot", help="out-of-time forecast skill: models retrained up to each origin, "
                             "scored on realised values (CRPS, energy score, coverage)"),
    origins: int = typer.Option(15, "--origins", help="--oot: number of annual December origins (from 15 years "
                                "before the last realised month)"),
    epochs: int = typer.Option(None, "--epochs", help="--oot: cap on the VAE's training epochs per origin "
                               "(default: the shipped 200 with early stopping)"),
    horizons: str = typer.Option("6,12,24,36", "--horizons", help="--oot: forecast horizons in months, comma-separated"),
    models_dir: Path = typer.Option(None, "--models-dir", help="--oot: folder caching the per-origin trained VAEs"),
    seed: int = typer.Option(0, "--seed", help="--oot: the seed every training and sampling stream derives from"),
    dispersion: bool = typer.Option(False, "--dispersion", help="--oot: calibrate each origin's VAE path dispersion "
                                    "on its own training window first (creditsim.macro.dispersion)"),
    endpoint_months: int = typer.Option(None, "--endpoint-months", help="--oot: the VAE's backbone rests at the mean "
                                        "of the last N months before each origin (shifting endpoint)"),
) -> None:
    """Print the evaluation table (VAE, VAR, bootstrap, history) and the scenario-ordering table; with
    ``--oot`` the out-of-time CRPS, energy-score and coverage tables instead."""
    if oot:
        if checkpoint is not None or plot is not None:
            raise ConfigError("--checkpoint and --plot are not used with --oot (each origin trains its own model)")
        _eval_macro_oot(origins, epochs, _parse_horizons(horizons), n_samples, seed, models_dir, csv, device, dispersion,
                        endpoint_months)
        return

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


def _parse_horizons(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise ConfigError(f"--horizons must be whole months separated by commas, e.g. 6,12,24,36; got {text!r}") from None


def _eval_macro_oot(origins: int, epochs: int | None, horizons: tuple[int, ...], n_samples: int, seed: int,
                    models_dir: Path | None, csv: Path | None, device: str, dispersion: bool = False,
                    endpoint_months: int | None = None) -> None:
    """``eval macro --oot``: run :func:`creditsim.macro.oot.evaluate_oot` with a progress bar, print the tables."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from creditsim.checkpoints import atomic_write
    from creditsim.macro.oot import evaluate_oot

    if device != "cpu":
        raise ConfigError(f"--device: --oot runs on the CPU (one thread, reproducible), got {device!r}")
    if origins < 1:
        raise ConfigError(f"--origins must be >= 1, got {origins}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if n_samples < 2:
        raise ConfigError(f"--n-samples must be >= 2 with --oot, got {n_samples}")
    if models_dir is not None and models_dir.exists() and not models_dir.is_dir():
        raise ConfigError(f"--models-dir must be a folder, but {models_dir} is a file")
    if csv is not None and csv.is_dir():
        raise ConfigError(f"--csv must be a file, but {csv} is a folder")
    columns = (TextColumn("[bold]out-of-time origins"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("oot", total=origins, last="training + scoring")
        res = evaluate_oot(origins, horizons, n_samples=n_samples, epochs=epochs, seed=seed, models_dir=models_dir,
                           on_origin=lambda o: bar.update(task, advance=1, last=f"{o} done"), dispersion=dispersion,
                           endpoint_months=endpoint_months)
    _print_oot(res)
    if csv is not None:
        atomic_write(csv, lambda p: res.long_frame().to_csv(p, index=False))
        console.print(f"scores written to {csv}")


def _print_oot(res) -> None:
    """The three out-of-time tables and the issue's bar, as rich tables."""
    import numpy as np

    from creditsim.macro.oot import GENERATORS

    short = {"MacroVAE": "VAE", "VAR(1)": "VAR(1)", "block bootstrap": "bootstrap"}
    st = res.settings
    head = (f"{len(st['origins'])} origins {st['origins'][0]}..{st['origins'][-1]}, {st['n_samples']} paths, "
            f"VAE epochs <= {st['epochs']}, seed {st['seed']}")
    crps = Table(title=f"Out-of-time CRPS, percentage points (mean over origins; {head})")
    for col in ("h", "variable", *GENERATORS, "n"):
        crps.add_column(col, justify="left" if col == "variable" else "right")
    for (h, var), row in res.crps_table().iterrows():
        unit = "sd" if var.startswith("mean") else "pp"
        crps.add_row(str(h), var, *[f"{row[g]:.3f}" for g in GENERATORS], str(int(row["n"])),
                     end_section=unit == "sd")
    console.print(crps)
    es = Table(title="Energy score (8 variables, training sds; lower is better) and VAE - best baseline, 95 % t CI over origins")
    for col in ("h", *[short[g] for g in GENERATORS], "best baseline", "VAE - best", "95 % CI", "n"):
        es.add_column(col, justify="right", no_wrap=True)
    for h, row in res.energy_table().iterrows():
        es.add_row(str(h), *[f"{row[g]:.3f}" for g in GENERATORS], short[row["best_baseline"]], f"{row['diff']:+.3f}",
                   f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]", str(int(row["n"])))
    console.print(es)
    cov = Table(title="Central-interval coverage (pooled over origins and realised variables)")
    cov.add_column("h", justify="right")
    for g in GENERATORS:
        cov.add_column(f"{short[g]} 90%", justify="right")
        cov.add_column(f"{short[g]} 99%", justify="right")
    cov.add_column("n", justify="right")
    for h, row in res.coverage_table().iterrows():
        cov.add_row(str(h), *[f"{row[(g, lv)]:.3f}" for g in GENERATORS for lv in ("90%", "99%")], str(int(row[("n", "")])))
    console.print(cov)
    for h, row in res.verdict().iterrows():
        es_txt = "n/a" if row["energy_ok"] is None else ("yes" if row["energy_ok"] else "NO")
        console.print(f"h={h}: VAE energy score <= best baseline: {es_txt}; VAE 90 % coverage in [0.80, 1.00]: "
                      f"{'yes' if row['coverage_ok'] else 'NO'}")
    if st["state_outside_training_range"]:
        console.print(f"[dim]origin states outside the VAE's training range: {', '.join(st['state_outside_training_range'])}[/]")
    ess = st.get("vae_min_ess", {})
    if ess:
        worst = min(ess, key=ess.get)
        console.print(f"[dim]VAE particle ESS at the origin state: smallest {ess[worst]:.1%} ({worst}), "
                      f"median {float(np.median(list(ess.values()))):.1%}[/]")
    console.print(f"[dim]{res.seconds:.0f} s; CI: Student t over origins, which overlap at long horizons (too narrow)[/]")


@eval_app.command("credit-link")
def eval_credit_link(
    horizon: int = typer.Option(8, "--horizon", help="quarters ahead from each origin"),
    csv: Path = typer.Option(None, "--csv", help="also write the table as CSV"),
    seed: int = typer.Option(0, "--seed", help="seed of the block bootstrap"),
) -> None:
    """Out-of-time check of the shipped credit links: refitted at every quarter 1995Q4-2017Q4 and run
    ahead on the realised macro, RMSE against the no-macro baseline with a block-bootstrap 95 % interval
    (:mod:`creditsim.macro.credit_backtest`)."""
    from creditsim.checkpoints import atomic_write
    from creditsim.cli.tables import print_whole
    from creditsim.fileio import check_output_target
    from creditsim.macro.credit_backtest import DEFAULT_ORIGINS, asset_class_backtest

    if horizon < 1:
        raise ConfigError(f"--horizon must be a positive number of quarters, got {horizon}")
    if csv is not None:
        check_output_target(csv, "file", "--csv")
    with console.status("refitting the links at every origin..."):
        table = asset_class_backtest(horizon=horizon, seed=seed)
    t = Table(title=f"Credit link out of time: {len(DEFAULT_ORIGINS)} origins {DEFAULT_ORIGINS[0]}..{DEFAULT_ORIGINS[-1]}, "
                    f"{horizon} quarters ahead, RMSE of the delinquency rate (pp)")
    for col in ("asset class", "series", "link", "no macro", "link - no macro [95 %]", "link wins", "unfit"):
        t.add_column(col, justify="left" if col in ("asset class", "series") else "right", no_wrap=True)
    for _, r in table.iterrows():
        t.add_row(r["asset_class"], r["series"], f"{100 * r['rmse_link']:.2f}", f"{100 * r['rmse_no_macro']:.2f}",
                  f"{100 * r['diff']:+.2f} [{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}]",
                  f"{r['win_share']:.0%}", str(int(r["unfit"])))
    print_whole(console, t)
    if csv is not None:
        atomic_write(csv, lambda p: table.to_csv(p, index=False))
        console.print(f"table written to {csv}")


#: the bundled UCI panel's covariates, used when ``--panel uci`` is given without feature options
UCI_PANEL_FEATURES = ("current_balance", "actual_payment", "pay_status")
UCI_TAPE_FEATURES = ("credit_limit", "sex", "education", "marriage", "age")


def _names(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def _harness_inputs(panel: str, tape: Path | None, panel_features: str | None, tape_features: str | None):
    """The panel, tape and feature lists: the bundled UCI panel for ``uci``, else the files."""
    from creditsim.cli.run import read_tape
    from creditsim.io import read_panel

    if panel == "uci":
        from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape

        pf = UCI_PANEL_FEATURES if panel_features is None else _names(panel_features)
        tf = UCI_TAPE_FEATURES if tape_features is None else _names(tape_features)
        return load_credit_card_panel(), load_credit_card_tape() if tape is None else read_tape(tape), pf, tf
    path = Path(panel)
    if not path.exists():
        raise ConfigError(f"--panel: {panel} does not exist (a panel file, or 'uci' for the bundled UCI credit-card panel)")
    return read_panel(path, check_transitions=False), None if tape is None else read_tape(tape), _names(panel_features), _names(tape_features)


@eval_app.command("transitions")
def eval_transitions(
    panel: str = typer.Option(..., "--panel", help="loan x month panel (csv/parquet), or 'uci' for the bundled UCI panel"),
    tape: Path = typer.Option(None, "--tape", help="static loan data for --tape-features (joined on loan_id)"),
    split: str = typer.Option("account", "--split", help="'account' (loans held out whole) or 'oot:YYYY-MM'"),
    models: str = typer.Option("all", "--models", help="comma-separated contestants (markov, markov_segment, markov_calendar, "
                               "markov_segment_calendar, markov_cohort_calendar, logit, gbm, transformer, trajectory); "
                               "'all': every one (trajectory only with a tape)"),
    lags: int = typer.Option(0, "--lags", help="also give every covariate model the panel features 1..N months back"),
    reference: str = typer.Option("markov", "--reference", help="model the paired NLL differences are taken against"),
    cohort_by: str = typer.Option(None, "--cohort-by", help="numeric covariates binned into the cohort key (transformer)"),
    panel_features: str = typer.Option(None, "--panel-features", help="time-varying panel columns, comma-separated"),
    tape_features: str = typer.Option(None, "--tape-features", help="static tape columns, comma-separated"),
    segment_by: str = typer.Option("prev_state", "--segment-by", help="covariates of markov_segment"),
    period: str = typer.Option("month", "--period", help="month or quarter"),
    test_share: float = typer.Option(0.3, "--test-share", help="share of loans held out (account split)"),
    n_boot: int = typer.Option(200, "--n-boot", help="loan-bootstrap replicates for the intervals"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(None, "--out", help="folder for scores.csv, summary.txt, settings.json"),
) -> None:
    """Transition models against practitioners' baselines on a real panel: every model fitted on the
    training split only, scored per move on the test split (NLL, Brier, default AUC and ECE), with
    loan-bootstrap 95 % intervals and the paired NLL difference to the pooled Markov chain
    (:mod:`creditsim.harness`)."""
    from creditsim.cli.tables import print_whole
    from creditsim.fileio import check_output_target
    from creditsim.harness import evaluate_transitions

    if out is not None:
        check_output_target(out, "result_dir", "--out")
    if n_boot < 10:
        raise ConfigError(f"--n-boot must be at least 10 for a 95 % interval, got {n_boot}")
    frame, static, pf, tf = _harness_inputs(panel, tape, panel_features, tape_features)
    from creditsim.harness import CONTESTANT_NAMES

    cohort = ("credit_limit", "age") if cohort_by is None and panel == "uci" else tuple(_names(cohort_by))
    chosen = [m for m in CONTESTANT_NAMES if m != "trajectory" or static is not None] if models == "all" else _names(models)
    res = evaluate_transitions(frame, static, split, chosen, pf, tf, tuple(_names(segment_by)), period,
                               reference=reference, test_share=test_share, n_boot=n_boot, seed=seed, cohort_by=cohort, lags=lags,
                               progress=lambda line: console.print(f"[dim]{line}[/]"))
    st = res.settings
    t = Table(title=f"Next-state prediction, split {split}: {st['train_moves']:,} training / {st['test_moves']:,} test moves, "
                    f"{st['test_loans']:,} test loans, {st['test_defaults']:,} test defaults (95 % loan-bootstrap intervals)")
    summary = res.summary()
    t.add_column("model", no_wrap=True)
    for col in summary.columns:
        t.add_column(col, justify="right", no_wrap=True)
    for name, row in summary.iterrows():
        t.add_row(str(name), *map(str, row))
    print_whole(console, t)
    for _, v in res.verdicts().iterrows():
        verdict = "better" if v["hi"] < 0 else "worse" if v["lo"] > 0 else "no clear difference"
        console.print(f"{v['model']} vs {v['against']}: {v['difference']:+.4f} nats per move "
                      f"[{v['lo']:+.4f}, {v['hi']:+.4f}], {verdict}")
    if out is not None:
        res.save(out)
        console.print(f"results written to {out}")


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the ``creditsim`` app."""
    app.add_typer(eval_app, name="eval")
