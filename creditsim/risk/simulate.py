"""Monte Carlo orchestration: macro paths -> transition matrices -> loans -> pool cashflows ->
waterfall -> :class:`~creditsim.risk.results.SimulationResults`.

This is the only module that wires the levels of the model hierarchy together (ARCHITECTURE.md).

Flow of :func:`simulate`:

1. Validate everything at the edge: the tape (``LoanBook.from_tape``), the deal, the mix, the engine,
   sizes. Bad input fails here, before any work, with a :class:`DataError` / :class:`ConfigError`.
2. Draw the scenario label of every global simulation id (stratified by the mix, shuffled by the
   seed) and generate all macro paths ``(S, T, 9)`` up front.
3. Split the simulation ids into chunks of ``chunk_size`` and run each chunk (locally or as a dask
   task): macro-conditioned cohort matrices ``(s, C, T, 7, 7)`` -> loan states and pool cashflows
   ``(s, T, 7)`` -> waterfall -> per-scenario tranche outcomes. Only per-scenario arrays come back, so
   memory is bounded by one chunk of loans at a time plus ``O(S T)`` outputs.
4. Concatenate in simulation-id order.

Reproducibility: loan-level random numbers come from streams keyed by (seed, global scenario id,
loan block) (:mod:`creditsim.transitions.sampler`), macro paths from streams keyed by (seed, scenario
type) generated before chunking, labels from a stream keyed by the seed. Nothing depends on the chunk
size, on the backend, or on the order in which chunks finish.

Deal scaling (decision): a deal file describes a capital structure, usually written for a round
collateral amount, while a tape has whatever balance it has. With ``scale_deal=True`` (default) the
tranche notionals are scaled by ``pool balance / deal collateral`` (``collateral_balance`` when the
deal sets it, else the sum of the tranches) so the attachment points and OC cushions of the deal are
kept. ``scale_deal=False`` uses the notionals as written.

Portfolio loss (decision): ``sum_t loss / balance_0`` with ``loss = LGD x default_par`` recognised in
the month of default. This is ``(sum D - sum R) / balance_0`` of WATERFALL.md whenever recoveries
arrive inside the horizon, and does not count a default in month 58 as a total loss just because its
recovery (lag 12) falls after the horizon.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from importlib import import_module
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from creditsim.deal.analytics import tranche_outcomes
from creditsim.deal.config import Tranche, WaterfallConfig, load_deal
from creditsim.datasets.restricted import data_provenance
from creditsim.deal.waterfall import CRITERIA_OUTPUTS, run_waterfall
from creditsim.errors import ConfigError, format_labels
from creditsim.features import loan_features
from creditsim.io import read_frame
from creditsim.loans.floating import COUPON_TOLERANCE, coupon_mismatch
from creditsim.loans.trajectory import LoanTrajectoryModel
from creditsim.macro.conditioning import conditioning_record
from creditsim.macro.plausibility import beyond_history, history_band
from creditsim.macro.scenarios import (
    GENERATED_SOURCES,
    build_macro_draw,
    first_simulated_month,
    draw_scenario_labels,
    is_narrative_source,
    parse_scenario_mix,
    resolve_macro_start,
)
from creditsim.macro.vae import MacroVAE
from creditsim.nn.modes import eval_modes
from creditsim.risk.backends import CollectFn, make_backend, run_chunks
from creditsim.risk.chunk_results import ChunkResults
from creditsim.risk.config import RunConfig
from creditsim.risk.pool_engine import PoolEngine
from creditsim.risk.results import SimulationResults
from creditsim.schema import LoanTape, as_loan_tape
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, SCENARIOS
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.transitions.transformer import TapeTransitionModel, TransitionTransformer
from creditsim.userwarn import warn

__all__ = ["simulate", "monte_carlo_simulate", "versions"]

_LOSS = POOL_CF_TYPES.index("loss")


def versions() -> dict[str, str]:
    """Versions of creditsim and the libraries that determine the numbers."""
    # the package root is loaded before any of its modules, so this is no import up the floors
    out = {"creditsim": sys.modules["creditsim"].__version__, "python": platform.python_version(),
           "numpy": np.__version__, "pandas": pd.__version__, "torch": torch.__version__}
    try:
        import dask  # optional extra (creditsim[distributed])

        out["dask"] = dask.__version__
    except ImportError:  # pragma: no cover - optional extra
        pass
    return out


def as_deal(deal: Any) -> Any:
    if isinstance(deal, WaterfallConfig):
        return deal
    if isinstance(deal, Mapping):
        return WaterfallConfig.from_dict(dict(deal))
    if isinstance(deal, str) or hasattr(deal, "__fspath__"):
        return load_deal(deal)
    raise ConfigError(f"deal must be a WaterfallConfig, a mapping or a YAML path, got {type(deal).__name__}")


def _scaled_deal(config: Any, pool_balance: float) -> tuple[Any, float]:
    """Scale tranche notionals to the pool (see module docstring); returns (config, factor)."""
    basis = config.initial_collateral
    factor = pool_balance / basis
    tranches = [Tranche(**{**t.__dict__, "balance": t.balance * factor}) for t in config.tranches]
    coll = None if config.collateral_balance is None else config.collateral_balance * factor
    # fixed admin expenses and their cap are currency amounts of the deal's size: they scale with it
    cap = None if config.admin_cap is None else config.admin_cap * factor
    return replace(config, tranches=tranches, collateral_balance=coll, admin_expenses=config.admin_expenses * factor,
                   admin_cap=cap, interest_reserve=config.interest_reserve * factor), factor


#: the run's decisions a user may not have made explicitly (cut-off, rescaling, models, macro start), at
#: INFO; ``creditsim -v`` shows them, a library user gets them with ``logging.basicConfig(level="INFO")``
log = logging.getLogger(__name__)


def _default_cutoff(tape: LoanTape, cutoff: Any) -> Any:
    """The cut-off date: the given one, else the latest origination date of the tape (decision: a
    tape's ``current_balance`` is a balance *at the cut-off*, and a loan cannot be originated after it;
    this is also the ``as_of`` default of the loan features the learned models see)."""
    return tape.frame["origination_date"].max() if cutoff is None else cutoff


def _attach_trajectory_model(engine: PoolEngine, model: Any, tape: LoanTape, cutoff: Any, device: str) -> None:
    """Give the pool engine the LoanTrajectoryModel (pretrained unless given) and the loans' features
    as of the cut-off."""
    if model is None:
        model = LoanTrajectoryModel.from_pretrained(device=device)
    if not isinstance(model, LoanTrajectoryModel):
        raise ConfigError(f"trajectory_model must be a LoanTrajectoryModel, got {type(model).__name__}")
    # the caller's model keeps its mode: the engine generates inside LoanTrajectoryModel.evaluating()
    engine.trajectory_model = model
    engine.loan_features = loan_features(tape, as_of=cutoff).to_numpy(np.float32)


def _transition_model_for(engine: str, model: Any, tape: LoanTape, device: str) -> Any:
    """The object whose ``scenario_matrices`` drives the chosen engine.

    markov: ``model`` or None (the default Markov model, picked by the engine).
    transformer: a TransitionTransformer (bound to the tape with ``for_tape``), an already bound
    adapter, or None for the pretrained checkpoint (CheckpointError when it is not installed).
    trajectory: any of the above; a TransitionTransformer's cohort matrices then condition the
    LoanTrajectoryModel (the spec's full chain MacroVAE -> TransitionTransformer -> LoanTrajectoryModel).
    """
    if engine != "transformer" and type(model).__name__ != "TransitionTransformer":
        return model
    if model is None:
        model = TransitionTransformer.from_pretrained(device=device)
    if isinstance(model, TransitionTransformer):
        return model.for_tape(tape)
    return model


# ---------------------------------------------------------------------- chunk work
@dataclass
class ChunkContext:
    """Everything a chunk needs besides its own scenario ids and macro paths (sent once per worker).

    Attributes:
        engine: a :class:`creditsim.risk.pool_engine.PoolEngine` turning macro paths into pool
            cashflows for given global scenario ids.
        config: the (scaled) deal.
        mode: waterfall mode ("hard" for reported results).
        device: torch device of the engine and waterfall.
        keep_cashflows: return pool and tranche cashflow arrays (``(s, T, k)``) with the chunk.
        start_month: calendar month of month 0 ("YYYY-MM", the month after the cut-off): the ACT/360
            accrual of floating notes; None = 365/12-day months.
    """

    engine: Any
    config: Any
    mode: str = "hard"
    device: str = "cpu"
    keep_cashflows: bool = True
    start_month: str | None = None


@dataclass
class ChunkTask:
    start: int
    stop: int
    macro: np.ndarray  # (stop - start, T, 9)


def run_chunk(ctx: ChunkContext, task: ChunkTask) -> dict[str, Any]:
    """Simulate global scenarios ``task.start .. task.stop - 1`` (``s = stop - start`` of them).

    Returns a dict:
        ``portfolio_losses``: ``(s,)`` float64, ``sum_t loss / initial balance`` (fraction);
        ``tranches``: tranche name -> dict of ``(s,)`` arrays (``losses`` fraction of note balance,
        ``irr`` annual decimal, ``wal`` years, ``pv_losses`` or None) plus the scalars ``balance``,
        ``coupon``, ``attachment``, ``detachment``, ``equity``;
        with ``keep_cashflows``: ``pool`` ``(s, T, 7)`` currency units in POOL_CF_TYPES order and
        ``tranche_interest`` / ``tranche_principal`` / ``tranche_balance`` ``(s, T, n_tranches)``, and
        the coverage ratios ``oc_ratio`` / ``ic_ratio`` ``(s, T, n_debt)`` (NaN where a class has no such
        test, inf once it is repaid) for the report's test fans, and for a deal with reinvestment criteria
        ``reinvestment_criteria`` ``(s, T, 4)``: the cash they blocked (currency units), WAS (annual
        decimal), WARF, WAL (years), NaN where a test is off (``CRITERIA_OUTPUTS`` order).
    """
    ids = np.arange(task.start, task.stop, dtype=np.int64)
    with torch.no_grad():  # reported numbers need no autograd graph (and no_grad keeps memory flat)
        pool = ctx.engine.pool_cashflows(task.macro, ids)  # (s, T, 7) float64
        p0 = ctx.engine.initial_balance
        wf = run_waterfall(pool, ctx.config, initial_balance=p0, mode=ctx.mode, device=ctx.device,
                           start_month=ctx.start_month, **ctx.engine.market_inputs(ctx.config, task.macro, pool))
        outcomes = tranche_outcomes(wf, ctx.config, collateral_balance=p0)
    out: dict[str, Any] = {
        "portfolio_losses": pool[:, :, _LOSS].sum(axis=1) / p0,
        "tranches": outcomes,
    }
    if ctx.keep_cashflows:
        out["pool"] = pool
        for key in ("tranche_interest", "tranche_principal", "tranche_balance", "oc_ratio", "ic_ratio"):
            out[key] = wf[key].detach().cpu().numpy()
        if ctx.config.has_reinvestment_criteria:  # blocked cash, WAS, WARF, WAL
            out["reinvestment_criteria"] = torch.stack([wf[k] for k in CRITERIA_OUTPUTS], dim=-1).detach().cpu().numpy()
    return out


# ---------------------------------------------------------------------- public API
def simulate(loans_df: pd.DataFrame, deal: Any, config: RunConfig | None = None, **overrides: Any) -> SimulationResults:
    """Run the full Monte Carlo of a deal on a loan tape.

    Args:
        loans_df: loan tape (spec/loan-tape.md), one row per loan: a DataFrame, a validated
            :class:`~creditsim.schema.LoanTape` or the path of a CSV / Parquet tape.
        deal: :class:`~creditsim.deal.config.WaterfallConfig`, a mapping in the YAML layout or a
            path to a deal YAML file.
        config: the run settings (:class:`~creditsim.risk.config.RunConfig`); None = the defaults.
        **overrides: settings replacing those of ``config`` (``simulate(loans, deal, n_simulations=1000,
            seed=7)``), each a :class:`RunConfig` field:

            - ``n_simulations``: number of scenarios S (default 10,000).
            - ``scenario_mix``: weights of the scenario types (mapping, ``"a=0.5,b=0.5"`` string or one
              name); default 0.6 baseline / 0.25 adverse / 0.1 severely adverse / 0.05 stagflation.
            - ``macro``: ``"vae"`` (pretrained MacroVAE), ``"var"`` / ``"bootstrap"`` (baselines on the
              bundled history; from a start their scenarios are anchored as the VAE's, the baseline
              model giving each path's deviation), ``"synthetic"`` (MacroScenarioGenerator), ``"fed"`` / ``"fed:YEAR"`` /
              ``"fed:YEAR:SCENARIO"`` (VAE paths through the supervisory tables), a narrative
              ``{variable: [{month, value}], scenario?}`` or its ``.yaml`` file, a macro DataFrame, an
              array or a MacroVAE (see :func:`creditsim.macro.scenarios.build_macro_draw`). Anchored
              sources (fed, narratives, paths from a start state) give paths that share ancestors; the
              result's standard errors are then cluster-robust (:mod:`creditsim.risk.measures`).
            - ``engine``: ``"markov"`` (macro-conditioned Markov chain + fast cashflow sampler);
              ``"transformer"`` (TransitionTransformer cohort matrices + the same sampler; the
              pretrained checkpoint unless ``transition_model`` is given); ``"trajectory"`` (loan paths
              from the LoanTrajectoryModel conditioned on the cohort matrices, pretrained unless
              ``trajectory_model`` is given).
            - ``seed``: master seed of every random draw.
            - ``chunk_size``: scenarios per chunk (memory ~ chunk_size x loans x months bytes, per chunk
              in flight); ``chunk_threads``: chunks a local CPU run keeps in flight on threads (None: the
              torch thread count for creditsim's own models, else 1; see :class:`RunConfig`).
            - ``backend``: ``"local"`` or ``"dask"`` (``client``: an existing dask Client; default a
              2-worker LocalCluster).
            - ``progress``: show a rich progress bar. ``device``: "cpu" or "cuda".
            - ``horizon``: months simulated, T. ``cutoff``: cut-off date of the tape (None: the latest
              origination date in the tape).
            - ``transition_model``: a fitted MarkovTransitionModel (default:
              :meth:`MarkovTransitionModel.default`, the spec's base-case roll rates per asset class with
              the macro overlay calibrated on the Fed's bank delinquency history), or a
              TransitionTransformer.
            - ``trajectory_model``: a LoanTrajectoryModel for ``engine="trajectory"``.
            - ``scale_deal``: scale tranche notionals to the tape's pool balance (module docstring).
            - ``keep_cashflows``: keep ``(S, T, k)`` pool and tranche cashflows in the result.
            - ``mode``: waterfall mode, "hard" (exact) by default.
            - ``macro_start``: the macro state generated (VAE) paths start from at month 0 -- None: the
              observed state of the cut-off month (bundled macro history; its latest month when the
              cut-off lies beyond it); a mapping / Series of the 9 MACRO_VARS or a ``(9,)`` array
              (decimals); ``"scenario"``: the VAE's scenario-typical historical starts.

    Returns:
        :class:`SimulationResults` with per-scenario portfolio losses, tranche results, cashflows,
        scenario labels, macro paths and the run settings.
    """
    if config is None:
        config = RunConfig(**overrides) if overrides else RunConfig()
    elif isinstance(config, RunConfig):
        config = config.replace(**overrides) if overrides else config
    else:
        raise ConfigError(f"config must be a RunConfig or None, got {type(config).__name__}; pass settings as "
                          "keywords, e.g. simulate(loans, deal, n_simulations=1000)")
    prepared = prepare_run(loans_df, as_deal(deal), config)
    t0 = time.perf_counter()
    # a private dask cluster starts while the paths are drawn (its fork server imports this module once for
    # the workers, and this process runs the first chunks until the workers are up)
    runner = make_backend(config.backend, config.client, warm_up=partial(import_module, __name__),
                          threads=_local_chunk_threads(config, prepared.engine), preload=(__name__,))
    try:
        labels = draw_scenario_labels(config.weights, config.n_simulations, config.seed)
        draw = _macro_draw(config, labels, prepared.start_vec, first_simulated_month(prepared.cutoff))
        carried_mix = None
        if draw.labels is not None:  # a narrative's (or a paths table's) paths carry their own scenario labels
            carried_mix = _carried_mix(config, draw.labels)
            labels = draw.labels
        _warn_floating_coupons(prepared, config.macro, draw.values)
        with models_in_eval(prepared.engine):
            gathered = _run_all_chunks(prepared, config, draw.values, runner)
    finally:
        runner.close()
    # paths that share an ancestor make the standard errors cluster-robust (creditsim.risk.measures)
    clusters = draw.clusters if np.unique(draw.clusters).size < draw.clusters.size else None
    results = gathered.results(labels, draw.values, prepared.engine.initial_balance, clusters)
    results.settings = _settings(config, prepared, time.perf_counter() - t0)
    if carried_mix is not None:  # what the run used, not the mix it was not asked to use
        results.settings["scenario_mix"] = carried_mix
        results.settings["scenario_mix_from"] = "the macro source's own path labels"
    if draw.conditioning:  # fed / narrative / forecast paths: how their conditioned draw went
        results.settings["macro_conditioning"] = conditioning_record(draw.conditioning)
    # how much of the run's macro tail lies beyond what history has seen (creditsim.macro.plausibility)
    results.settings["macro_beyond_history"] = beyond_history(draw.values, history_band())
    log.info("%d scenarios x %d months in %.1f s; expected pool loss %.4f", config.n_simulations, config.horizon,
             time.perf_counter() - t0, results.expected_loss)
    return results


@contextmanager
def models_in_eval(engine: Any) -> Iterator[None]:
    """The engine's torch models in eval mode while its chunks run, each module's own mode back after:
    those it holds as attributes (the trajectory model) or as attributes of one (a
    :class:`~creditsim.transitions.transformer.TapeTransitionModel`'s transformer), which covers every
    model of creditsim's own; a user's model object runs one chunk at a time (:func:`_local_chunk_threads`).

    The models put themselves in eval mode inside each generating call and restore their mode when it
    ends; with chunks on threads of one process (:class:`~creditsim.risk.backends.LocalBackend`), a model
    left in training mode would be flipped back to training -- dropout on -- under another thread still
    generating with it. Already in eval mode, those calls change nothing. (The dask backend pickles the
    models inside this block, in eval mode; a generating call would have switched to it anyway.)"""
    models = [owner for value in vars(engine).values()
              for owner in (value, *(vars(value).values() if hasattr(value, "__dict__") else ()))
              if isinstance(owner, torch.nn.Module)]
    with eval_modes(models):
        yield


def _local_chunk_threads(config: RunConfig, engine: PoolEngine) -> int:
    """Chunks a local run keeps in flight on threads (:class:`~creditsim.risk.backends.LocalBackend`):
    ``config.chunk_threads``, or by default the caller's torch thread count (the count the engines would
    otherwise use inside each chunk) where the engine's transition model is one of creditsim's own. A
    model it does not know (any object with ``scenario_matrices``) may keep state between calls or draw
    from a global generator, which was safe one chunk at a time: it keeps running so. One on CUDA (one
    device runs one chunk at a time) and for dask, whose workers are the parallelism."""
    if config.backend != "local" or torch.device(config.device).type != "cpu":
        return 1
    if config.chunk_threads is not None:
        return config.chunk_threads
    if type(engine.transition_model) not in (MarkovTransitionModel, TapeTransitionModel):  # (a subclass may not be)
        return 1
    return torch.get_num_threads()


def _carried_mix(config: RunConfig, labels: np.ndarray) -> dict[str, float]:
    """``{scenario: share}`` of the labels a macro source gave its own paths (a narrative, a paths table
    with a scenario column), which the run records as its mix. Such a source leaves a scenario mix nothing
    to do: one that says otherwise is reported (a warning: a run config file's general mix beside a
    narrative on the command line is a normal set-up, so it is not refused); a mix naming the one
    scenario every path carries is silent."""
    shares = np.bincount(labels, minlength=len(SCENARIOS)) / labels.size
    if config.scenario_mix is not None and not np.allclose(parse_scenario_mix(config.scenario_mix), shares):
        carried = ", ".join(f"{s} {w:.0%}" for s, w in zip(SCENARIOS, shares) if w > 0)
        warn(f"the macro source labels its own paths ({carried}); the scenario mix {config.scenario_mix!r} is "
             "not used (a narrative's scenario key, or a paths table's scenario column, sets the labels)")
    return {s: float(w) for s, w in zip(SCENARIOS, shares)}


@dataclass
class PreparedRun:
    """What a run needs beyond its settings: the pool engine, the (scaled) deal, the macro start."""

    engine: PoolEngine
    deal: WaterfallConfig
    scale_factor: float
    cutoff: Any
    start_vec: np.ndarray | None
    start_label: str


def _warn_floating_coupons(prepared: PreparedRun, source: Any, macro: np.ndarray) -> None:
    """Warn (one line) when tape coupons disagree with spread + the cut-off index clamped to the loans'
    floors and caps (:func:`creditsim.loans.floating.coupon_mismatch`): the run keeps the tape coupon.
    Not on synthetic paths (``source``): they start from a stylised index, not the one the tape priced."""
    book = prepared.engine.book
    margin = prepared.engine.loan_spread  # the tape's spread_bps of the floating loans, book order
    if margin is None or (book.index_floor is None and book.index_cap is None):
        return
    if isinstance(source, str) and source.strip().lower() == "synthetic":
        return
    level = float(np.median(np.asarray(macro)[:, 0, MACRO_VARS.index("policy_rate")]))
    bad = coupon_mismatch(book.floating, book.monthly_rate * 12.0, margin, book.index_floor, book.index_cap,
                          level)
    if bad.any():
        rows = book.row_labels[bad] if book.row_labels is not None else np.flatnonzero(bad)
        warnings.warn(f"floating coupons: rows {format_labels(list(rows))} have interest_rate more than "
                      f"{COUPON_TOLERANCE:.2%} away from spread_bps + the cut-off index ({level:.2%}) clamped to "
                      "their index floor / cap; the run keeps the tape coupon, so their margin is the coupon minus "
                      "the clamped index", stacklevel=3)


def prepare_run(loans_df: pd.DataFrame, deal: WaterfallConfig, config: RunConfig) -> PreparedRun:
    """Validate the tape, build the pool engine and its models, resolve the macro start, scale the deal."""
    if isinstance(loans_df, (str, os.PathLike)):  # a tape file: read as text ids, validated next
        loans_df = read_frame(loans_df, "loan tape")
    if config.trajectory_model is not None and config.engine != "trajectory":  # never silently ignored
        raise ConfigError(f"trajectory_model is read only by engine='trajectory', got engine={config.engine!r}; "
                          "pass engine='trajectory'")
    tape = as_loan_tape(loans_df)  # the one validation of the run; every layer below trusts it
    cutoff = _default_cutoff(tape, config.cutoff)
    transition_model = _transition_model_for(config.engine, config.transition_model, tape, config.device)
    term_structure = None
    if config.rating_pd == "mixture":
        from creditsim.ratings.term_structure import bundled_term_structure

        term_structure = bundled_term_structure()
    pool_engine = PoolEngine.from_tape(tape, seed=config.seed, horizon=config.horizon, cutoff=cutoff,
                                       transition_model=transition_model, device=config.device,
                                       rating_term_structure=term_structure)
    if config.engine == "trajectory":
        _attach_trajectory_model(pool_engine, config.trajectory_model, tape, cutoff, config.device)
    macro = config.macro
    # generated sources start from today's (or the given) state; data and supervisory paths carry their own
    # (a narrative too: its anchors are read against the state the paths start from)
    generated = (isinstance(macro, MacroVAE) or is_narrative_source(macro)
                 or (isinstance(macro, str) and macro.split(":")[0].strip().lower() in GENERATED_SOURCES))
    if generated:
        start_vec, start_label = resolve_macro_start(config.macro_start, cutoff)
    else:  # paths given as data, or the rule-based generator: they carry their own start
        start_vec, start_label = None, "paths as given"
    factor = 1.0
    if config.scale_deal:
        deal, factor = _scaled_deal(deal, pool_engine.initial_balance)
    log.info("cut-off %s%s; %d loans, pool balance %.0f; deal notionals scaled x%.6g; models: %s; macro %s, "
             "start: %s", cutoff, " (the tape's latest origination date)" if config.cutoff is None else "",
             pool_engine.n_loans, pool_engine.initial_balance, factor, pool_engine.describe(),
             macro if isinstance(macro, str) else type(macro).__name__, start_label)
    return PreparedRun(pool_engine, deal, factor, cutoff, start_vec, start_label)


def _run_all_chunks(prepared: PreparedRun, config: RunConfig, macro_paths: np.ndarray, runner: Any) -> ChunkResults:
    """Split the scenarios into chunks of ``chunk_size``, run them on ``runner`` (the configured backend;
    the caller closes it) and gather each into the run's arrays as it arrives."""
    n, chunk = config.n_simulations, config.chunk_size
    # chunks side by side on threads share the engine: each keeps its matrices within its share of the budget
    prepared.engine.chunks_in_flight = min(getattr(runner, "threads", 1), -(-n // chunk))
    ctx = ChunkContext(engine=prepared.engine, config=prepared.deal, mode=config.mode, device=config.device,
                       keep_cashflows=config.keep_cashflows, start_month=first_simulated_month(prepared.cutoff))
    tasks = [ChunkTask(s, min(s + chunk, n), macro_paths[s:min(s + chunk, n)]) for s in range(0, n, chunk)]
    sizes = [t.stop - t.start for t in tasks]
    gathered = ChunkResults(n, [tr.name for tr in prepared.deal.tranches])

    def collect(i: int, result: dict[str, Any]) -> None:
        gathered.add(tasks[i].start, tasks[i].stop, result)

    # the run's scenario blocks rewrite one cohort-matrix array per thread (PoolEngine._matrix_buffer),
    # freed when the chunks are done
    prepared.engine.keep_matrix_memory = True
    try:
        _run_with_progress(runner, ctx, tasks, sizes, n, config.progress, collect)
    finally:
        prepared.engine.release_matrix_memory()
    return gathered


def _settings(config: RunConfig, prepared: PreparedRun, seconds: float) -> dict[str, Any]:
    """The JSON-serialisable record of a run (``SimulationResults.settings``)."""
    macro, start = config.macro, prepared.start_vec
    return {
        "name": prepared.deal.name,
        "n_simulations": config.n_simulations,
        "scenario_mix": {SCENARIOS[i]: float(w) for i, w in enumerate(config.weights)},
        "macro": macro if isinstance(macro, str) else type(macro).__name__,
        "macro_start": {"source": prepared.start_label,
                        "state": None if start is None else dict(zip(MACRO_VARS, map(float, start)))},
        "engine": config.engine,
        "rating_pd": config.rating_pd,
        "seed": config.seed,
        "chunk_size": config.chunk_size,
        "chunk_threads": prepared.engine.chunks_in_flight,  # the chunks that ran at once (1: one after another)
        "backend": config.backend,
        "device": config.device,
        "horizon_months": config.horizon,
        # one spelling for a given "2025-01" and a tape's Timestamp, so comparing two runs sees the same month
        "cutoff": None if prepared.cutoff is None else pd.Timestamp(prepared.cutoff).strftime("%Y-%m-%d"),
        "n_loans": prepared.engine.n_loans,
        "pool_balance": prepared.engine.initial_balance,
        "deal_scale_factor": prepared.scale_factor,
        "mode": config.mode,
        "transition_model": prepared.engine.describe(),
        "deal": prepared.deal.to_dict(),
        "versions": versions(),
        "restricted_data": data_provenance(),
        "simulation_seconds": round(seconds, 3),
    }


def _macro_draw(config: RunConfig, labels: np.ndarray, start: np.ndarray | None, first_month: str | None) -> Any:
    """The run's macro paths, with a spinner when ``config.progress``: anchored sources (supervisory tables,
    narratives) take seconds per thousand paths (the filter and its rejuvenation moves), before any bar.
    ``first_month``: ``"YYYY-MM"`` of simulated month 0 (a dated frame of paths is read from there)."""
    with Console().status(f"[bold]generating {labels.size:,} macro paths") if config.progress else nullcontext():
        return build_macro_draw(config.macro, labels, config.horizon, config.seed, config.device, start=start,
                                first_month=first_month)


def _run_with_progress(runner: Any, ctx: ChunkContext, tasks: list, sizes: list, n: int, progress: bool,
                       collect: CollectFn) -> None:
    if not progress:
        run_chunks(runner, run_chunk, ctx, tasks, sizes, collect=collect)
        return
    columns = (TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("scenarios"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task_id = bar.add_task("simulate", total=n)
        run_chunks(runner, run_chunk, ctx, tasks, sizes, on_done=lambda k: bar.advance(task_id, k), collect=collect)


def _with_tranche_balances(config: Any, balances: Any) -> Any:
    """``config`` with its tranche balances replaced by the aggregator's ``(N,)`` buffer (equity last)."""
    if balances is None:
        return config
    # a tensor buffer of the aggregator; np.asarray would fail on one that requires grad
    sizes = [float(x) for x in (balances.detach().cpu().reshape(-1).tolist() if hasattr(balances, "detach")
                                else np.asarray(balances, dtype=np.float64).reshape(-1))]
    if len(sizes) != len(config.tranches):
        raise ConfigError(f"aggregator.tranche_balances has {len(sizes)} entries, the deal {len(config.tranches)} tranches")
    if sizes == [float(t.balance) for t in config.tranches]:
        return config
    tranches = [dataclasses.replace(t, balance=b) for t, b in zip(config.tranches, sizes)]
    return dataclasses.replace(config, tranches=tranches)


def monte_carlo_simulate(
    aggregator: Any,
    loans_df: pd.DataFrame,
    macro_vae: Any = None,
    transition_model: Any = None,
    trajectory_model: Any = None,
    n_simulations: int = 10_000,
    scenario_mix: Mapping[str, float] | str | None = None,
    **kw: Any,
) -> SimulationResults:
    """The spec's ``PortfolioAggregator.monte_carlo_simulate``: run :func:`simulate` with the
    aggregator's deal and the given models.

    ``macro_vae``: a MacroVAE instance (its paths drive the run), None for the pretrained one;
    ``transition_model``: a fitted MarkovTransitionModel, None (default calibration) or a
    TransitionTransformer (engine "transformer"); ``trajectory_model``: a LoanTrajectoryModel
    (engine "trajectory").
    Other keyword arguments go to :func:`simulate` (seed, chunk_size, backend, horizon, ...).
    """
    config = getattr(aggregator, "config", None)
    if config is None:
        raise ConfigError("aggregator must be a PortfolioAggregator (with a .config WaterfallConfig)")
    engine = kw.pop("engine", "trajectory" if trajectory_model is not None else "markov")
    if transition_model is not None and type(transition_model).__name__ == "TransitionTransformer":
        # with a trajectory model: the full chain, the transformer's cohort matrices condition the loan paths
        if trajectory_model is None:
            engine = "transformer"
    elif transition_model is not None and not hasattr(transition_model, "scenario_matrices"):
        raise ConfigError(f"transition_model must be a MarkovTransitionModel, a TransitionTransformer or have "
                          f"scenario_matrices(macro_paths), got {type(transition_model).__name__}")
    if trajectory_model is not None and engine != "trajectory":
        raise ConfigError(f"trajectory_model is used only by engine='trajectory', got engine={engine!r}")
    macro = kw.pop("macro", None)
    if macro is None:
        macro = "vae" if macro_vae is None else macro_vae
    kw.setdefault("device", str(getattr(aggregator, "device", "cpu")))
    # the aggregator's own waterfall settings apply, as in its forward(): its mode and tranche sizes
    kw.setdefault("mode", getattr(aggregator, "mode", "hard"))
    config = _with_tranche_balances(config, getattr(aggregator, "tranche_balances", None))
    return simulate(loans_df, config, n_simulations=n_simulations, scenario_mix=scenario_mix, macro=macro,
                    engine=engine, transition_model=transition_model, trajectory_model=trajectory_model, **kw)

