"""``creditsim eval macro``: MacroVAE vs VAR(1) vs block bootstrap on the EVALUATION.md metrics; with
``--oot``, their out-of-time forecast skill from real origin states (:mod:`creditsim.macro.oot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError

__all__ = ["register"]

console = Console()
eval_app = typer.Typer(help="Evaluate the generative and transition models against history and baselines.", no_args_is_help=True)


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
    pull: str = typer.Option(None, "--pull", help="--oot: VAE backbone pull kept: 'uniform' (drawn per path, the forecast "
                             "source's setting; default), 'trained' (the scenario generator's backbone) or 0..1"),
) -> None:
    """Print the evaluation table (VAE, VAR, bootstrap, history) and the scenario-ordering table; with
    --oot the out-of-time CRPS, energy-score and coverage tables instead."""
    _check_macro_modes(oot, checkpoint, plot, dispersion, endpoint_months, pull)
    if oot:
        _eval_macro_oot(origins, epochs, _parse_horizons(horizons), n_samples, seed, models_dir, csv, device, dispersion,
                        endpoint_months, _parse_pull(pull))
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
        check, start = _scenario_check(vae, history, recession, n_samples)
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
    from creditsim.cli.tables import print_whole

    print_whole(console, _ordering_table(ordering))
    print_whole(console, _scenario_check_table(check, n_samples, start))
    if csv is not None:
        atomic_write(csv, lambda p: table.to_csv(p))
        console.print(f"table written to {csv}")
    if plot is not None:
        if plot.exists() and not plot.is_dir():
            raise ConfigError(f"--plot must be a folder, but {plot} is a file")
        paths = fan_charts(vae, plot, n_samples=n_samples, history=history)
        console.print(f"fan charts: {', '.join(str(p) for p in paths)}")


def _ordering_table(ordering) -> Table:
    """:func:`creditsim.macro.evaluate.scenario_ordering` with statistics down and scenarios across."""
    table = Table(title="MacroVAE scenario ordering (the VAE's scenario-typical historical starts)")
    table.add_column("statistic", no_wrap=True)
    for name in ordering.index:
        table.add_column(str(name), justify="right")
    for col in ordering.columns:
        table.add_row(col, *[f"{v:.3f}" for v in ordering[col]])
    return table


def _scenario_check(vae, history, recession, n_samples: int, months: int = 39):
    """(:func:`creditsim.macro.scenario_check.scenario_check` of ``n_samples`` paths per scenario from the
    latest real month, as a simulation draws them, with the Fed 2026 tables' own statistics beside it;
    the start's label)."""
    import creditsim as cs
    from creditsim.macro.scenario_check import scenario_check, scenario_statistics
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.states import SCENARIOS

    drawn = {s: cs.macro_paths(vae, s, n_paths=n_samples, months=months, seed=11) for s in SCENARIOS}
    table = scenario_check({s: mp.values for s, mp in drawn.items()}, history, recession)
    for name in ("baseline", "severely_adverse"):
        stats = scenario_statistics(fed_table_path(2026, name, months)[None])
        table[f"Fed 2026 {name}"] = [float(stats[r][0]) if r in stats else None for r in table.index]
    return table, drawn["baseline"].start


#: how each row of the scenario check is shown: label and a formatter (percent rows in percent, no sign)
_CHECK_ROWS = {
    "u_peak": ("unemployment peak %", "pct"), "u_rise": ("unemployment rise pp", "pct"),
    "hy_widen_bp": ("HY widening bp", "{:.0f}"), "gdp_fall": ("real GDP fall %", "pct1"),
    "hpi_fall": ("house-price fall %", "pct1"), "infl_12_24": ("inflation m12-24 %", "pct"),
    "policy_12_24": ("policy rate m12-24 %", "pct"),
    "P_named_min": ("P(worse), min", "{:.2f}"), "P_named_stat": ("  at", "name"),
    "disp_total": ("diversity total", "{:.2f}"), "disp_capped": ("diversity capped", "{:.2f}"),
    "disp_min": ("diversity min", "{:.2f}"), "disp_min_var": ("  at", "name"),
}
_NAMES = {"u_peak": "unemp", "u_rise": "unemp", "hy_widen_bp": "HY", "gdp_fall": "GDP", "hpi_fall": "HPI",
          "infl_12_24": "infl", "policy_12_24": "policy", "gdp_growth": "GDP", "unemployment_rate": "unemp",
          "inflation_rate": "infl", "policy_rate": "policy", "yield_10y": "10y", "credit_spread_ig": "IG",
          "credit_spread_hy": "HY", "house_price_growth": "HPI", "default_rate": "dflt"}


def _check_cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if fmt == "name":
        return _NAMES.get(str(value), str(value))
    if fmt in ("pct", "pct1"):
        return f"{100 * value:.{2 if fmt == 'pct' else 1}f}"
    return fmt.format(value)


def _scenario_check_table(check, n_samples: int, start: str) -> Table:
    """The scenario check as a rich table: statistics down, scenarios (and the Fed tables) across."""
    short = {"baseline": "base", "adverse": "adv", "severely_adverse": "severe", "stagflation": "stagfl",
             "Fed 2026 baseline": "Fed b", "Fed 2026 severely_adverse": "Fed sa"}
    table = Table(title=f"Scenarios from {start} ({n_samples} paths each, medians)",
                  caption="P(worse): the smallest P(stress statistic worse than baseline's) over the statistics "
                          "named for the scenario; diversity: 36-month change sd over history's windows of the "
                          "type (standardised total; total with each variable capped at history's; smallest "
                          "variable; bar 0.6); Fed b / Fed sa: the Fed's 2026 baseline / severely adverse tables")
    table.add_column("statistic", no_wrap=True)
    for col in check.columns:
        table.add_column(short.get(col, col), justify="right", no_wrap=True)
    for row, (label, fmt) in _CHECK_ROWS.items():
        table.add_row(label, *[_check_cell(v, fmt) for v in check.loc[row]])
    return table


def _parse_horizons(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise ConfigError(f"--horizons must be whole months separated by commas, e.g. 6,12,24,36; got {text!r}") from None


def _check_macro_modes(oot: bool, checkpoint: Path | None, plot: Path | None, dispersion: bool,
                       endpoint_months: int | None, pull: str | None) -> None:
    """One-line errors for options of the other mode of ``eval macro``, and for a bad ``--pull``, before any work."""
    if oot and (checkpoint is not None or plot is not None):
        raise ConfigError("--checkpoint and --plot are not used with --oot (each origin trains its own model)")
    if not oot and (dispersion or endpoint_months is not None or pull is not None):
        raise ConfigError("--dispersion, --endpoint-months and --pull apply to --oot only")
    _parse_pull(pull)


def _parse_pull(text: str | None) -> float | str | None:
    """``--pull``: a number in [0, 1], ``uniform`` (also when not given: the ``forecast`` source's setting)
    or ``trained`` (None: the backbone as trained, the scenario generator's)."""
    if text is None or text == "uniform":
        return "uniform"
    if text == "trained":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--pull must be a number in [0, 1], 'uniform' or 'trained', got {text!r}")
    return value


def _eval_macro_oot(origins: int, epochs: int | None, horizons: tuple[int, ...], n_samples: int, seed: int,
                    models_dir: Path | None, csv: Path | None, device: str, dispersion: bool = False,
                    endpoint_months: int | None = None, pull: float | str | None = None) -> None:
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

        def done(origin: str) -> None:
            bar.update(task, advance=1, last=f"{origin} done")
            if not console.is_terminal:  # a log has no live bar: one line per origin
                console.print(f"origin {origin} scored ({bar.tasks[0].completed:.0f} of {origins})")

        res = evaluate_oot(origins, horizons, n_samples=n_samples, epochs=epochs, seed=seed, models_dir=models_dir,
                           on_origin=done, dispersion=dispersion, endpoint_months=endpoint_months, pull=pull)
    _print_oot(res)
    if csv is not None:
        atomic_write(csv, lambda p: res.long_frame().to_csv(p, index=False))
        console.print(f"scores written to {csv}")


def _print_oot(res) -> None:
    """The three out-of-time tables and the issue's bar, as rich tables."""
    import numpy as np

    from creditsim.cli.tables import print_whole
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
    print_whole(console, crps)
    es = Table(title="Energy score (8 variables, training sds; lower is better) and VAE - best baseline, 95 % t CI over origins")
    for col in ("h", *[short[g] for g in GENERATORS], "best baseline", "VAE - best", "95 % CI", "n"):
        es.add_column(col, justify="right", no_wrap=True)
    for h, row in res.energy_table().iterrows():
        es.add_row(str(h), *[f"{row[g]:.3f}" for g in GENERATORS], short[row["best_baseline"]], f"{row['diff']:+.3f}",
                   f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]", str(int(row["n"])))
    print_whole(console, es)
    cov = Table(title="Central-interval coverage (pooled over origins and realised variables)")
    cov.add_column("h", justify="right")
    for g in GENERATORS:
        cov.add_column(f"{short[g]} 90%", justify="right")
        cov.add_column(f"{short[g]} 99%", justify="right")
    cov.add_column("n", justify="right")
    for h, row in res.coverage_table().iterrows():
        cov.add_row(str(h), *[f"{row[(g, lv)]:.3f}" for g in GENERATORS for lv in ("90%", "99%")], str(int(row[("n", "")])))
    print_whole(console, cov)
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
    (creditsim.macro.credit_backtest)."""
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


#: settings of the bundled panels (``--panel uci`` / ``--panel sp``); any option given overrides them
BUNDLED_PANELS: dict[str, dict[str, object]] = {
    "uci": {"panel_features": "current_balance,actual_payment,pay_status", "tape_features": "credit_limit,sex,education,marriage,age",
            "cohort_by": "credit_limit,age", "segment_by": "prev_state", "period": "month", "split": "account", "cluster": "loan"},
    "sp": {"panel_features": "rating", "tape_features": "", "cohort_by": "", "segment_by": "rating", "period": "year",
           "split": "oot:1990-01", "cluster": "period", "macro": "history", "macro_features": "unemployment_rate,gdp_growth",
           # the bank delinquency history starts 1985-87: too few quarters before 1990 to fit a credit link on
           "credit_link": "none"},
}
GENERIC_DEFAULTS: dict[str, object] = {"panel_features": "", "tape_features": "", "cohort_by": "", "segment_by": "prev_state",
                                       "period": "month", "split": "account", "cluster": "loan", "macro": None, "macro_features": "",
                                       "credit_link": "auto"}


def _names(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def _harness_inputs(panel: str, tape: Path | None, macro: str | None):
    """``(panel, tape, macro)`` frames: the bundled panels by name, else the files."""
    from creditsim.cli.run import read_tape
    from creditsim.io import read_panel
    from creditsim.schema import STATE_PANEL_COLUMNS

    if panel == "uci":
        from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape

        frame, static = load_credit_card_panel(), load_credit_card_tape() if tape is None else read_tape(tape)
    elif panel == "sp":
        from creditsim.datasets.ratings import load_sp_default_panel

        frame, static = load_sp_default_panel(), None if tape is None else read_tape(tape)
    else:
        path = Path(panel)
        if not path.exists():
            raise ConfigError(f"--panel: {panel} does not exist (a panel file, or 'uci' / 'sp' for a built-in panel)")
        frame = read_panel(path, check_transitions=False, required=STATE_PANEL_COLUMNS)  # + the features asked for
        static = None if tape is None else read_tape(tape)
    if macro is None:
        return frame, static, None
    from creditsim.cli.run import read_macro_history

    return frame, static, read_macro_history(macro)


def _print_harness(res, split: str) -> None:
    from creditsim.cli.tables import print_whole

    st = res.settings
    t = Table(title=f"Next-state prediction, split {split}: {st['train_moves']:,} training / {st['test_moves']:,} test moves, "
                    f"{st['test_loans']:,} test loans, {st['test_defaults']:,} test defaults "
                    f"(95 % intervals, bootstrap by {st['cluster']})")
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


@eval_app.command("transitions")
def eval_transitions(
    panel: str = typer.Option(..., "--panel", help="loan x month panel (csv/parquet); 'uci' (UCI credit cards, by account) "
                              "or 'sp' (S&P annual defaults by rating 1981-2000, out of time from 1990)"),
    tape: Path = typer.Option(None, "--tape", help="static loan data for --tape-features (joined on loan_id)"),
    split: str = typer.Option(None, "--split", help="'account' (loans held out whole) or 'oot:YYYY-MM'"),
    models: str = typer.Option("all", "--models", help="comma-separated contestants (markov, markov_segment, markov_calendar, "
                               "markov_segment_calendar, markov_cohort_calendar, markov_link, logit, gbm, transformer, trajectory); "
                               "'all': every one (trajectory only with a loan tape in the data contract, markov_link only "
                               "with --macro and a credit link)"),
    macro: str = typer.Option(None, "--macro", help="'history' (bundled US macro) or a monthly macro file"),
    macro_features: str = typer.Option(None, "--macro-features", help="macro variables every model sees, comma-separated"),
    credit_link: str = typer.Option(None, "--credit-link", help="with --macro: the bank delinquency series (all, business, "
                                    "consumer, credit_card, residential_mortgage) whose link, fitted before the split, carries "
                                    "the economy into the transformer; 'none': the network reads the macro path; default 'auto': all "
                                    "where the bank history before the split is long enough (10 years), else none"),
    lags: int = typer.Option(0, "--lags", help="also give every covariate model the panel features 1..N periods back"),
    reference: str = typer.Option("markov", "--reference", help="model the paired NLL differences are taken against"),
    cohort_by: str = typer.Option(None, "--cohort-by", help="numeric covariates binned into the cohort key (transformer)"),
    panel_features: str = typer.Option(None, "--panel-features", help="time-varying panel columns, comma-separated"),
    tape_features: str = typer.Option(None, "--tape-features", help="static tape columns, comma-separated"),
    segment_by: str = typer.Option(None, "--segment-by", help="categorical covariates of markov_segment and the cohort key"),
    period: str = typer.Option(None, "--period", help="month, quarter or year"),
    cluster: str = typer.Option(None, "--cluster", help="bootstrap unit: loan, or period (few test periods, common shocks)"),
    test_share: float = typer.Option(0.3, "--test-share", help="share of loans held out (account split)"),
    n_boot: int = typer.Option(200, "--n-boot", help="bootstrap replicates for the intervals"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(None, "--out", help="folder for scores.csv, summary.txt, bootstrap_nll.csv, meta.json"),
) -> None:
    """Transition models against practitioners' baselines on a real panel: every model fitted on the
    training split only, scored per move on the test split (NLL, Brier, within-month default AUC, ECE),
    with bootstrap 95 % intervals, the paired NLL difference to --reference, and the verdict of the
    library's models against the best chain and the best classifier (creditsim.harness)."""
    from creditsim.fileio import check_output_target
    from creditsim.harness import evaluate_transitions
    from creditsim.harness.cycle import LINK_SERIES

    if out is not None:
        check_output_target(out, "result_dir", "--out")
    if n_boot < 10:
        raise ConfigError(f"--n-boot must be at least 10 for a 95 % interval, got {n_boot}")
    given = {"panel_features": panel_features, "tape_features": tape_features, "cohort_by": cohort_by, "segment_by": segment_by,
             "period": period, "split": split, "cluster": cluster, "macro": macro, "macro_features": macro_features,
             "credit_link": credit_link}
    opt = {k: v if v is not None else {**GENERIC_DEFAULTS, **BUNDLED_PANELS.get(panel, {})}.get(k) for k, v in given.items()}
    frame, static, macro_frame = _harness_inputs(panel, tape, opt["macro"])
    link = opt["credit_link"]
    if link not in (*LINK_SERIES, "auto", "none"):
        raise ConfigError(f"--credit-link: expected one of {', '.join(LINK_SERIES)}, auto or none; got {link!r}")
    if models == "all":  # None: evaluate_transitions runs every applicable contestant (this prints what it leaves out)
        _all_contestants(static, macro_frame is not None and link != "none")
    chosen = None if models == "all" else _names(models)
    res = evaluate_transitions(frame, static, opt["split"], chosen, _names(opt["panel_features"]), _names(opt["tape_features"]),
                               tuple(_names(opt["segment_by"])), opt["period"], reference=reference, test_share=test_share,
                               n_boot=n_boot, seed=seed, cohort_by=tuple(_names(opt["cohort_by"])), macro=macro_frame,
                               macro_features=_names(opt["macro_features"]), lags=lags, cluster=opt["cluster"],
                               credit_link=None if link == "none" else link, progress=lambda line: console.print(f"[dim]{line}[/]"))
    _print_harness(res, opt["split"])
    if out is not None:
        res.save(out)
        console.print(f"results written to {out}")


def _all_contestants(static: Any, linked: bool = False) -> list[str]:
    """``--models all``: :func:`creditsim.harness.registry.applicable_contestants`, saying what is left out
    and why (the trajectory model without a contract tape would fail after every other model had run)."""
    from creditsim.harness.registry import applicable_contestants

    names, left_out = applicable_contestants(static, linked)
    for name, why in left_out.items():
        if static is not None or name != "trajectory":
            console.print(f"[dim]{name} left out: {why}[/]")
    return names


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the ``creditsim`` app."""
    app.add_typer(eval_app, name="eval")
