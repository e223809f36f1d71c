"""``creditsim simulate`` and ``creditsim report``.

``simulate`` reads a loan tape and a deal, runs the Monte Carlo (see :func:`creditsim.simulate`) with a
rich progress bar, prints the risk and tranche tables and saves the run directory: the parquet result
(:meth:`SimulationResults.to_parquet`), ``run.json`` (settings, seed, package versions, input hashes) and
the deal as ``deal.yaml``. The directory is assembled under a temporary sibling and renamed at the end,
so Ctrl-C at any moment leaves either the complete run or nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import typer
from rich.console import Console
from rich.table import Table

from creditsim.errors import ConfigError, DataError, format_labels

__all__ = ["register", "simulate_cmd", "report_cmd", "run_config", "read_tape", "read_macro_file", "print_results"]

console = Console()


def read_tape(path: Path) -> Any:
    """Read a loan tape (.csv, .csv.gz or .parquet) with the library's one reader
    (:func:`creditsim.io.read_frame`: ids stay text, so ``'007'`` is the same loan as in Python)."""
    from creditsim.io import read_frame

    return read_frame(path, "loan tape")


def read_macro_file(path: Path) -> Any:
    """Read a macro file: a narrative YAML (``.yaml`` / ``.yml``, anchors ``{variable: [{month, value}]}``,
    returned as a validated :class:`~creditsim.macro.narrative.Narrative`) or a frame of paths
    (csv/parquet with a ``reporting_month`` column, returned as a DataFrame)."""
    from creditsim.macro.narrative import is_narrative_file, read_narrative

    if is_narrative_file(path):
        return read_narrative(path)
    import pandas as pd

    try:
        if path.name.lower().endswith(".parquet"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"macro file {path}: cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None
    if "reporting_month" in df.columns:
        from creditsim.schema import parse_dates

        # strict ISO parsing names bad rows; a coercing parser would turn them into NaT silently
        months = parse_dates(df["reporting_month"], "reporting_month", f"macro file {path}")
        bad = df.index[months.isna()]
        if len(bad):
            raise DataError(f"macro file {path}: column 'reporting_month' is empty at rows "
                            f"{format_labels(list(bad))}; expected one ISO month per row")
        df = df.drop(columns="reporting_month").set_index(pd.DatetimeIndex(months.to_numpy(), name="reporting_month"))
    return df


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _measure_label(key: str) -> str:
    """``var_99_9_se`` -> ``VaR 99.9% s.e.`` (short labels keep the table inside 80 columns)."""
    se = key.endswith("_se")
    base = key[:-3] if se else key
    if base == "expected_loss":
        label = "EL"
    else:
        kind, _, level = base.partition("_")
        label = f"{'VaR' if kind == 'var' else 'CVaR'} {level.replace('_', '.')}%"
    return label + (" s.e." if se else "")


def _money(x: float) -> str:
    if x != x:
        return "–"
    return f"{x / 1e9:.2f}bn" if abs(x) >= 1e9 else f"{x / 1e6:.1f}m" if abs(x) >= 1e6 else f"{x:,.0f}"


def _horizon_months(results: Any) -> int | None:
    h = results.settings.get("horizon_months") if isinstance(results.settings, dict) else None
    if h is None and "pool" in results.cashflows:
        h = results.cashflows["pool"].shape[1]
    return None if h is None else int(h)


def _pct(v: float, digits: int = 2) -> str:
    """Percent with ``digits`` decimals; NaN (no estimate, e.g. a tail s.e. from < 10 tail samples) -> "–"."""
    return "–" if v != v else f"{v * 100:.{digits}f}"


def print_results(results: Any, out: Console | None = None) -> None:
    """Print the portfolio risk table (by scenario type) and the tranche table (fits 80 columns).

    Losses are cumulative over the simulation horizon (headers say so, e.g. "EL 60m"); "–" marks a
    number that does not exist for the row (pool PD / attachment) or could not be estimated (tail
    standard errors from fewer than 10 tail samples, see :mod:`creditsim.risk.measures`).
    IRR: median and mean over scenarios, both shown because a few -100 % scenarios (nothing received)
    drag the mean far below what a typical scenario earns.
    """
    from rich import box

    out = out or console
    months = _horizon_months(results)
    span = f" over {months} months" if months else ""
    rt = results.risk_table()
    short = {"baseline": "base", "adverse": "adv", "severely_adverse": "sev", "stagflation": "stag"}
    t = Table(title=f"Portfolio loss{span}, % of initial pool balance", box=box.SIMPLE_HEAD)
    t.add_column("measure")
    for c in rt.columns:
        t.add_column(short.get(str(c), str(c)), justify="right")
    for idx, row in rt.iterrows():
        if idx == "n_sims":
            t.add_row("scenarios", *[f"{int(v):,}" for v in row])
        else:
            t.add_row(_measure_label(str(idx)), *[_pct(v, 3) for v in row])
    out.print(t)
    s = results.summary()
    el = f"EL {months}m" if months else "EL"
    # 1-decimal percents, short headers and no outer edge keep ten columns inside 80 characters
    t2 = Table(title=f"Tranches: loss{span}, % of tranche balance", box=box.SIMPLE_HEAD, show_edge=False,
               padding=(0, 0, 0, 1), pad_edge=False,
               caption="att: attachment; WAL: years; IRR med/avg: median/mean, % p.a.")
    t2.add_column("tranche", no_wrap=True, overflow="ellipsis", max_width=12)  # a long name gives way
    for c in ("bal", "att", "PD", el, "LGD", "CVaR99", "WAL", "IRR med", "IRR avg"):
        t2.add_column(c, justify="right", no_wrap=True)
    tail = results.tail_estimable(0.99)  # as the portfolio table: no CVaR 99 % from under 100 scenarios
    for name, r in s.iterrows():
        pool = name == "portfolio"
        t2.add_row(
            "pool" if pool else str(name), _money(r["balance"]),
            "" if pool else _pct(r["attachment"], 1), "" if pool else _pct(r["pd"], 1), _pct(r["expected_loss"]),
            "" if pool else _pct(r["lgd"], 1), _pct(r["cvar_99"], 1) if tail else "–",
            "" if r["wal_years"] != r["wal_years"] else f"{r['wal_years']:.2f}",
            "" if pool else _pct(r["irr_median"], 1), "" if pool else _pct(r["irr_mean"], 1),
        )
    out.print(t2)
    _print_tranches_by_scenario(results, out, span, short)


def _print_tranches_by_scenario(results: Any, out: Console, span: str, short: dict[str, str]) -> None:
    """Tranche EL and the equity's median IRR by scenario type: the table that shows whether the deal
    behaves like a capital structure (losses rising down the stack, worse in worse economies)."""
    import numpy as np
    from rich import box

    from creditsim.states import SCENARIOS

    tt = results.tranche_table()
    scenarios = [sc for sc in tt["scenario"].unique() if sc != "all"]
    if len(scenarios) < 2:
        return
    t = Table(title=f"Tranche EL{span} by scenario type, % of tranche balance", box=box.SIMPLE_HEAD)
    t.add_column("tranche", no_wrap=True, overflow="ellipsis", max_width=12)
    for sc in scenarios:
        t.add_column(short.get(str(sc), str(sc)), justify="right")
    for name in tt["tranche"].unique():
        rows = tt[tt["tranche"] == name].set_index("scenario")
        t.add_row(str(name), *[_pct(rows.loc[sc, "expected_loss"], 2) for sc in scenarios])
    equity = next((tr for tr in results.tranche_results if tr.equity), None)
    if equity is not None:
        medians = []
        for sc in scenarios:
            irr = equity.subset(results.scenarios == SCENARIOS.index(sc)).irr
            medians.append(_pct(float(np.median(irr)), 1) if len(irr) else "-")
        t.add_row("eq. IRR med", *medians)
    out.print(t)



def check_sim_resources(n_sims: int | None, horizon: int | None, chunk_size: int | None, seed: int | None) -> None:
    """Refuse, before any work, CLI numbers that are invalid or would exhaust memory (one-line
    :class:`ConfigError` naming the option). Options not given (None) are left to the run config."""
    from creditsim.risk.config import MAX_HORIZON_MONTHS, MAX_RESULT_BYTES, estimate_result_bytes

    if n_sims is not None and n_sims < 1:
        raise ConfigError(f"--n-sims must be a positive integer, got {n_sims}")
    if horizon is not None and (horizon < 1 or horizon > MAX_HORIZON_MONTHS):
        raise ConfigError(f"--horizon must be between 1 and {MAX_HORIZON_MONTHS} months, got {horizon}")
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"--chunk-size must be a positive integer, got {chunk_size}")
    if seed is not None and not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {seed}")
    if n_sims is None or horizon is None:
        return
    need = estimate_result_bytes(n_sims, horizon)
    if need > MAX_RESULT_BYTES:
        raise ConfigError(f"--n-sims {n_sims} x --horizon {horizon}: results would need about "
                          f"{need / 2**30:,.1f} GiB (limit {MAX_RESULT_BYTES / 2**30:.0f} GiB); lower --n-sims")


def read_macro_history(spec: str, option: str = "--macro") -> Any:
    """A monthly macro frame for ``spec``: ``"history"`` is the bundled US history, anything else a
    csv/parquet file read by :func:`read_macro_file` (a narrative YAML is refused: it holds anchors, not
    a history)."""
    if spec == "history":
        from creditsim.datasets.macro import load_macro_history

        return load_macro_history()
    data = read_macro_file(Path(spec))
    if not hasattr(data, "columns"):
        raise ConfigError(f"{option}: {spec} is a narrative; expected 'history' or a monthly macro file (csv/parquet)")
    return data


def read_run_file(config_file: Path | None) -> Any:
    """The settings of a ``--config`` run file as written (None without a file or for an empty one): read
    once, for the :class:`~creditsim.risk.config.RunConfig` and for the engine the file writes down."""
    if config_file is None:
        return None
    from creditsim.risk.config import paths_from_file
    from creditsim.yamlfile import read_yaml

    data = read_yaml(config_file, what="run config file", max_bytes=1 << 16, max_depth=3,
                     layout="a mapping of run settings")
    return paths_from_file(data, config_file)  # a relative macro path is read from the file's folder


def run_config(config_file: Path | None, options: dict[str, Any], settings: Any = None) -> Any:
    """The :class:`~creditsim.risk.config.RunConfig` of a ``simulate`` command: the ``--config`` file's
    ``settings`` (:func:`read_run_file`; read here when not given) or the defaults, overridden by every
    option given on the command line (None = not given).

    ``macro`` may name a macro csv/parquet file (a string that is not vae / synthetic / fed); it is
    read here, so the run gets a validated frame. A narrative YAML file (``.yaml`` / ``.yml``) is read
    and validated here too (against the run's horizon), so a bad anchor fails before any work; the run
    keeps its path and :func:`~creditsim.macro.scenarios.build_macro_paths` generates the anchored paths.
    A folder (``--macro DIR``, or the run config file's ``macro``) is a trained MacroVAE checkpoint, as
    ``creditsim train macro --out DIR`` writes it: loaded here (:func:`load_macro_vae`, on the run's device),
    it generates the run's paths as the shipped VAE does for ``vae``; another model's folder is named with
    the option it belongs to.
    """
    from creditsim.macro.scenarios import MACRO_SOURCES
    from creditsim.risk.config import RunConfig

    if settings is None and config_file is not None:
        settings = read_run_file(config_file)
    macro = options.get("macro")
    if isinstance(macro, str) and macro.split(":")[0].strip().lower() not in MACRO_SOURCES and not Path(macro).exists():
        raise ConfigError(f"--macro must be {_MACRO_CHOICES}, got {macro!r}")
    folder = macro_folder(macro, settings)
    if folder is not None:  # a MacroVAE checkpoint, loaded once the run's device is known
        options = {**options, "macro": None}
        settings = {k: v for k, v in settings.items() if k != "macro"} if isinstance(settings, dict) else settings
    base = RunConfig() if config_file is None else RunConfig.from_dict(
        {} if settings is None else settings, where=f"run config file {config_file}")
    cfg = base.replace(progress=True, **{k: v for k, v in options.items() if v is not None})
    if folder is not None:
        return cfg.replace(macro=load_macro_vae(folder[0], folder[1], cfg.device))
    if isinstance(cfg.macro, str) and cfg.macro.split(":")[0].strip().lower() not in MACRO_SOURCES:
        mp = Path(cfg.macro)
        if not mp.is_file():
            raise ConfigError(f"macro (--macro or the run config file) must be {_MACRO_CHOICES}, got {cfg.macro!r}")
        from creditsim.macro.narrative import Narrative

        data = read_macro_file(mp)
        if isinstance(data, Narrative):  # checked now; the run generates its paths from the path
            data.check_horizon(cfg.horizon)
        else:
            cfg = cfg.replace(macro=data)
    return cfg


#: what --macro (or a run config file's macro) may name, for its errors
_MACRO_CHOICES = ("vae, var, bootstrap, synthetic, forecast, fed[:YEAR[:SCENARIO]], a narrative .yaml, a macro "
                  "csv/parquet file or a MacroVAE folder written by 'creditsim train macro'")


def macro_folder(macro: Any, settings: Any) -> tuple[str, Path] | None:
    """``(where it was named, folder)`` when the run's macro names a folder: ``--macro`` (``macro``, None when
    not given), else the run config file's ``macro`` (``settings``, :func:`read_run_file`); None otherwise."""
    if macro is None and isinstance(settings, dict):
        macro, where = settings.get("macro"), "the run config file's macro"
    else:
        where = "--macro"
    return (where, Path(macro)) if isinstance(macro, (str, Path)) and Path(macro).is_dir() else None


def load_macro_vae(option: str, folder: Path, device: str = "cpu") -> Any:
    """The MacroVAE of a checkpoint folder named by ``option`` (``--macro DIR``); a folder of another model
    is named with the option it belongs to, one without a model says what was expected."""
    from creditsim.checkpoints import saved_model
    from creditsim.macro.vae import MacroVAE

    found = saved_model(folder)
    if found is None:
        raise ConfigError(f"{option} {folder}: no MacroVAE there (expected config.json + model.safetensors, as "
                          "'creditsim train macro --out DIR' writes them)")
    if found != "MacroVAE":
        raise _wrong_folder(option, folder, found, "a MacroVAE")
    return MacroVAE.from_pretrained(folder, device=device)


class ModelFolder(NamedTuple):
    """What a kind of checkpoint folder is for: the command that writes it and the ``simulate`` option that reads it."""

    trained_by: str
    option: str


#: each kind of model folder (by the model its config.json names), for errors that name a folder given to the
#: wrong option: who wrote it and where it goes
MODEL_FOLDERS: dict[str, ModelFolder] = {
    "MarkovTransitionModel": ModelFolder("creditsim train transitions", "--transition-model"),
    "TransitionTransformer": ModelFolder("creditsim train transitions --model transformer",
                                         "--transition-model (with --engine transformer)"),
    "LoanTrajectoryModel": ModelFolder("creditsim train trajectory", "--trajectory-model"),
    "MacroVAE": ModelFolder("creditsim train macro", "--macro"),
}


def _neural_model(folder: Path) -> str | None:
    """The model of a checkpoint folder's ``config.json`` when its weights are there too, else None."""
    from creditsim.checkpoints import WEIGHTS_FILE, checkpoint_model

    return checkpoint_model(folder) if (folder / WEIGHTS_FILE).is_file() else None


def _wrong_folder(option: str, path: Path, found: str, expected: str) -> ConfigError:
    """The error for a model folder handed to the wrong option: what it holds, who wrote it, where it goes."""
    role = MODEL_FOLDERS.get(found)
    where = f"; give it as {role.option}" if role else ""
    source = f" (written by '{role.trained_by}')" if role else ""
    return ConfigError(f"{option} {path} holds a {found}{source}, not {expected}{where}")


def load_chain(path: Path, engine: str, device: str = "cpu") -> Any:
    """The model of ``--transition-model``: a Markov chain (folder with ``markov_model.json``, or that file;
    markov and trajectory engines) or a TransitionTransformer checkpoint (``config.json`` +
    ``model.safetensors``, e.g. from ``creditsim train transitions --model transformer``; transformer and
    trajectory engines). A folder holding both is read by the engine's kind (ambiguous for trajectory);
    another model's folder is named with the option it belongs to."""
    from creditsim.transitions.markov import MODEL_FILE, MarkovTransitionModel

    folder = Path(path)
    chain = folder.is_file() or (folder / MODEL_FILE).is_file()
    neural = _neural_model(folder)
    if neural is not None and neural != "TransitionTransformer" and not chain:
        raise _wrong_folder("--transition-model", folder, neural, "a Markov chain or a TransitionTransformer")
    transformer = neural == "TransitionTransformer"
    if not chain and not transformer:
        raise ConfigError(f"--transition-model {path}: no model there (expected {MODEL_FILE}, or config.json + "
                          "model.safetensors, as 'creditsim train transitions' writes them)")
    if chain and transformer and engine not in ("markov", "transformer"):
        raise ConfigError(f"--transition-model {path} holds both a Markov chain and a TransitionTransformer; with "
                          f"--engine {engine} give a folder with one of them")
    if transformer and (not chain or engine == "transformer"):
        from creditsim.transitions.transformer import TransitionTransformer

        if engine == "markov":
            raise ConfigError(f"--transition-model {path} holds a TransitionTransformer checkpoint; use it with "
                              "--engine transformer (or trajectory)")
        return TransitionTransformer.from_pretrained(folder, device=device)
    if engine == "transformer":
        raise ConfigError("--transition-model holds a Markov chain; use it with --engine markov (or trajectory)")
    return MarkovTransitionModel.load(folder)


def load_trajectory(path: Path, engine_option: str | None, run_cfg: Any, file_engine: str | None = None) -> dict[str, Any]:
    """The ``--trajectory-model`` folder as RunConfig fields: the model and ``engine="trajectory"``, the only
    engine that reads it.

    An ``--engine`` given on the command line is the user's choice and overrides the run config file's
    ``engine`` (``file_engine``): ``--engine trajectory`` runs the model whatever the file says, another
    ``--engine`` is an error. Without ``--engine`` the model implies the trajectory engine unless the run
    config file writes down another one: a run must not switch an engine the user wrote down implicitly
    (the error says to add ``--engine trajectory``)."""
    from creditsim.loans.trajectory import LoanTrajectoryModel
    from creditsim.transitions.markov import MODEL_FILE

    if engine_option is not None and engine_option != "trajectory":
        raise ConfigError(f"--trajectory-model is read only by --engine trajectory, but --engine is {engine_option}: "
                          f"give --engine trajectory, or drop --trajectory-model")
    if engine_option is None and file_engine is not None and file_engine != "trajectory":
        raise ConfigError(f"--trajectory-model is read only by --engine trajectory, but the run config file's engine "
                          f"is {file_engine!r}: add --engine trajectory to run it (the command line overrides the "
                          "file), or drop --trajectory-model")
    folder = Path(path)
    neural = _neural_model(folder)
    if neural is None and (folder.is_file() or (folder / MODEL_FILE).is_file()):
        raise _wrong_folder("--trajectory-model", folder, "MarkovTransitionModel", "a LoanTrajectoryModel")
    if neural is not None and neural != "LoanTrajectoryModel":
        raise _wrong_folder("--trajectory-model", folder, neural, "a LoanTrajectoryModel")
    if neural is None:
        raise ConfigError(f"--trajectory-model {path}: no model there (expected config.json + model.safetensors, as "
                          "'creditsim train trajectory' writes them)")
    return {"engine": "trajectory", "trajectory_model": LoanTrajectoryModel.from_pretrained(folder, device=run_cfg.device)}


def print_run_terms(settings: dict[str, Any], cutoff_given: bool) -> None:
    """Say out loud the two things a run decides for the user when not told: the cut-off month (the
    tape's latest origination date) and the scaling of the deal's notionals to the tape's pool."""
    if not cutoff_given and settings.get("cutoff"):
        console.print(f"[yellow]cut-off[/] {str(settings['cutoff'])[:7]}: the tape's latest origination date "
                      f"(set it with --cutoff YYYY-MM)")
    factor = float(settings.get("deal_scale_factor", 1.0))
    if abs(factor - 1.0) > 1e-12:
        console.print(f"[yellow]deal rescaled[/]: tranche notionals x{factor:,.4g} to the tape's pool balance of "
                      f"{float(settings.get('pool_balance', float('nan'))):,.0f} (keep them as written with --no-rescale)")


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` and ``report`` commands to ``app``."""
    app.command("simulate")(simulate_cmd)
    app.command("report")(report_cmd)


def simulate_cmd(
    tape: Path = typer.Option(..., "--tape", help="loan tape (.csv, .csv.gz or .parquet)"),
    deal: Path = typer.Option(..., "--deal", help="deal YAML file"),
    out: Path = typer.Option(..., "--out", help="run directory to create (e.g. runs/NAME)"),
    n_sims: int = typer.Option(None, "--n-sims", help="number of Monte Carlo scenarios (default 10000)"),
    mix: str = typer.Option(None, "--mix", help="scenario mix, e.g. 'baseline=0.5,severely_adverse=0.5' "
                            "or one scenario name (default 0.6/0.25/0.1/0.05)"),
    macro: str = typer.Option(None, "--macro", help="vae | var | bootstrap | synthetic | forecast | fed[:YEAR[:SCENARIO]] | a narrative "
                              ".yaml of anchors {variable: [{month, value}]} | a macro csv/parquet | a MacroVAE folder "
                              "written by 'creditsim train macro' (default vae)"),
    engine: str = typer.Option(None, "--engine", help="markov | transformer | trajectory (default markov)"),
    rating_pd: str = typer.Option(None, "--rating-pd", help="rated loans' lifetime PD: markov (the rating chain) | "
                                  "mixture (fitted to S&P multi-year default rates) (default markov)"),
    seed: int = typer.Option(None, "--seed", help="master seed of every random draw (default 0)"),
    chunk_size: int = typer.Option(None, "--chunk-size", help="scenarios per chunk (default 500)"),
    chunk_threads: int = typer.Option(None, "--chunk-threads", help="chunks run side by side on threads, local CPU "
                                      "(default: torch's thread count for creditsim's own models, else 1)"),
    horizon: int = typer.Option(None, "--horizon", help="simulation horizon, months (default 60)"),
    backend: str = typer.Option(None, "--backend", help="local | dask (default local)"),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default cpu)"),
    config: Path = typer.Option(None, "--config", help="run settings YAML (RunConfig fields, e.g. "
                                "n_simulations, scenario_mix, macro, seed, horizon); options given here "
                                "override the file"),
    cutoff: str = typer.Option(None, "--cutoff", help="cut-off month of the tape, YYYY-MM (default: the latest "
                               "origination date in the tape, announced)"),
    no_rescale: bool = typer.Option(False, "--no-rescale", help="keep the deal's tranche notionals as written "
                                    "(default: scale them to the tape's pool balance, announced)"),
    excel: bool = typer.Option(False, "--excel", help="also write results.xlsx into the run directory"),
    html_report: bool = typer.Option(False, "--html", help="also write report.html into the run directory"),
    pdf: bool = typer.Option(False, "--pdf", help="also write summary.pdf (the one-page summary) into the run directory"),
    transition_model: Path = typer.Option(None, "--transition-model", help="a model trained on your panel (folder "
                                          "written by 'creditsim train transitions': a Markov chain, or with "
                                          "--model transformer a TransitionTransformer for --engine transformer) "
                                          "instead of the default"),
    trajectory_model: Path = typer.Option(None, "--trajectory-model", help="a LoanTrajectoryModel trained on your "
                                          "panel (folder written by 'creditsim train trajectory') for --engine "
                                          "trajectory (implied when --engine is not given)"),
) -> None:
    """Run the Monte Carlo simulation of a deal on a loan tape and save the run."""
    # the CLI imports its stack on use: `creditsim --help` and the data commands must not pay for torch
    import time
    from datetime import datetime, timezone

    import yaml

    from creditsim.deal.config import load_deal
    from creditsim.fileio import fault_point
    from creditsim.risk.results import check_result_target
    from creditsim.risk.simulate import simulate, versions

    # cheap checks first: a bad --out, --config, --device or --mix must not cost a simulation
    check_result_target(out, "--out")
    check_sim_resources(n_sims, horizon, chunk_size, seed)
    settings = read_run_file(config)  # read once: the run's settings and the engine the file writes down
    run_cfg = run_config(config, {"n_simulations": n_sims, "scenario_mix": mix, "macro": macro, "engine": engine,
                                  "seed": seed, "chunk_size": chunk_size, "chunk_threads": chunk_threads,
                                  "horizon": horizon, "backend": backend, "device": device, "cutoff": cutoff,
                                  "scale_deal": False if no_rescale else None, "rating_pd": rating_pd}, settings)
    run_cfg = _with_models(run_cfg, engine, settings, trajectory_model, transition_model)
    loans = read_tape(tape)
    deal_cfg = load_deal(deal)
    t0 = time.perf_counter()
    fault_point("simulate")  # test hook (CREDITSIM_FAULT_POINT): a run interrupted before any write
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # when the run started (UTC)
    results = simulate(loans, deal_cfg, run_cfg)
    wall = time.perf_counter() - t0
    results.settings.update({
        # absolute paths, as the model folders are: run.json is read from elsewhere
        "tape": str(Path(tape).resolve()), "tape_sha256": _sha256(tape), "deal_file": str(Path(deal).resolve()),
        "deal_sha256": _sha256(deal), "macro": macro or results.settings["macro"], "wall_seconds": round(wall, 3),
        "config_file": None if config is None else str(Path(config).resolve()),
        "config_sha256": None if config is None else _sha256(config), "created": created,
        **_model_folders(transition_model, trajectory_model, macro_folder(macro, settings)),
    })
    run_info = {"settings": results.settings, "versions": versions()}
    extra = {"run.json": json.dumps(run_info, indent=2, default=str),
             "deal.yaml": yaml.safe_dump(deal_cfg.to_dict(), sort_keys=False)}
    results.to_parquet(out, extra_files=extra, extra_writers=_run_writers(results, excel, html_report, pdf))
    print_run_terms(results.settings, cutoff_given=run_cfg.cutoff is not None)
    print_results(results)
    console.print(f"run saved to [bold]{out}[/] ({results.n_sims:,} scenarios, {wall:.1f} s)")


def _with_models(run_cfg: Any, engine: str | None, settings: Any, trajectory_model: Path | None,
                 transition_model: Path | None) -> Any:
    """``run_cfg`` with the models of ``--trajectory-model`` and ``--transition-model`` (read by
    :func:`load_trajectory` and :func:`load_chain`); ``engine`` is ``--engine`` (None: not given),
    ``settings`` the run config file's (:func:`read_run_file`)."""
    if trajectory_model is not None:
        file_engine = settings.get("engine") if isinstance(settings, dict) else None
        run_cfg = run_cfg.replace(**load_trajectory(trajectory_model, engine, run_cfg, file_engine))
    if transition_model is not None:
        run_cfg = run_cfg.replace(transition_model=load_chain(transition_model, run_cfg.engine, run_cfg.device))
    return run_cfg


def _model_folders(transition_model: Path | None, trajectory_model: Path | None,
                   macro: tuple[str, Path] | None = None) -> dict[str, Any]:
    """run.json's record of the model folders a run read (``macro``: :func:`macro_folder`): each folder's
    absolute path (``Path.resolve()``: the record means the same from any working directory) and the SHA-256 of
    every file its loader reads (the weights, ``config.json``, the chain's JSON, a model's extra JSON such as
    the MacroVAE's scalers), so a run can be traced to the trained model it used."""
    from creditsim.checkpoints import WEIGHTS_FILE

    out: dict[str, Any] = {}
    for key, folder in (("transition_model", transition_model), ("trajectory_model", trajectory_model),
                        ("macro", None if macro is None else macro[1])):
        if folder is None:
            continue
        folder = Path(folder).resolve()
        files = [folder] if folder.is_file() else [f for f in [folder / WEIGHTS_FILE, *sorted(folder.glob("*.json"))]
                                                   if f.is_file()]
        out[f"{key}_folder"] = str(folder)
        out[f"{key}_sha256"] = {f.name: _sha256(f) for f in files}
    return out


def _run_writers(results: Any, excel: bool, html_report: bool, pdf: bool) -> list[tuple[str, Any]]:
    """``(file name, write(path))`` of the files ``simulate --excel / --html / --pdf`` puts into the run
    directory (:meth:`SimulationResults.to_parquet` calls them inside its temporary directory)."""
    writers: list[tuple[str, Any]] = []
    if excel:
        writers.append(("results.xlsx", results.to_excel))
    if html_report:
        from creditsim.risk.report import write_report

        writers.append(("report.html", lambda p: write_report(results, p)))
    if pdf:
        from creditsim.risk.summary_pdf import write_summary_pdf

        writers.append(("summary.pdf", lambda p: write_summary_pdf(results, p)))
    return writers


def report_cmd(
    run_dir: Path = typer.Argument(..., help="run directory written by 'creditsim simulate'"),
    output: Path = typer.Option(None, "-o", "--output", help="HTML file to write (default report.html, none "
                                "when only --pdf and/or --excel is given)"),
    pdf: Path = typer.Option(None, "--pdf", help="write the one-page PDF summary here (e.g. summary.pdf)"),
    excel: Path = typer.Option(None, "--excel", help="also write the Excel workbook here"),
    title: str = typer.Option(None, "--title", help="report title (default: the deal name)"),
    self_contained: bool = typer.Option(False, "--self-contained",
                                        help="inline plotly.js in the page (one ~5 MB file to e-mail) instead "
                                             "of loading the bundle written beside it"),
) -> None:
    """Write the HTML report (-o), the one-page PDF summary (--pdf) and the Excel workbook (--excel) of a
    saved run. With none of -o, --pdf and --excel the report goes to report.html; with only --pdf and/or
    --excel no HTML is written (asking for a workbook wrote an unasked report.html into the working
    folder). The page loads the plotly.js bundle written once beside it (plotly-<version>.min.js), so a
    folder of reports shares one copy; --self-contained inlines it instead."""
    from creditsim.risk.report import write_report
    from creditsim.risk.results import SimulationResults

    from creditsim.fileio import check_output_target

    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    if output is None and pdf is None and excel is None:
        output = Path("report.html")
    # targets first: an unwritable -o / --pdf / --excel must fail before the run is loaded and rendered
    for target, option in ((output, "--output"), (pdf, "--pdf"), (excel, "--excel")):
        if target is not None:
            check_output_target(target, "file", option)
    if pdf is not None and pdf.suffix.lower() != ".pdf":
        raise ConfigError(f"--pdf: {str(pdf)!r} does not end in .pdf")
    results = SimulationResults.load(run_dir)
    if output is not None:
        write_report(results, output, title=title, plotly_js="inline" if self_contained else "file")
        console.print(f"report written to [bold]{output}[/]")
    if pdf is not None:
        from creditsim.risk.summary_pdf import write_summary_pdf

        write_summary_pdf(results, pdf, title=title)
        console.print(f"summary written to [bold]{pdf}[/]")
    if excel is not None:
        results.to_excel(excel)
        console.print(f"workbook written to [bold]{excel}[/]")
