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

import platform
import sys
import time
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.risk.backends import make_backend, run_chunks
from creditsim.risk.results import SimulationResults, TrancheResult
from creditsim.macro.scenarios import (
    build_macro_paths,
    draw_scenario_labels,
    parse_scenario_mix,
    resolve_macro_start,
)
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, SCENARIOS

__all__ = ["ENGINES", "simulate", "monte_carlo_simulate", "versions"]

ENGINES: tuple[str, ...] = ("markov", "transformer", "trajectory")
_LOSS = POOL_CF_TYPES.index("loss")


def versions() -> dict[str, str]:
    """Versions of creditsim and the libraries that determine the numbers."""
    import torch

    # the package root is loaded before any of its modules, so this is no import up the floors
    out = {"creditsim": sys.modules["creditsim"].__version__, "python": platform.python_version(), "numpy": np.__version__,
           "pandas": pd.__version__, "torch": torch.__version__}
    try:
        import dask

        out["dask"] = dask.__version__
    except ImportError:  # pragma: no cover - optional extra
        pass
    return out


#: longest horizon a run may have, months (100 years)
MAX_HORIZON_MONTHS = 1200
#: memory the kept results of a run may take (cash flows, macro paths, per-tranche arrays), bytes
MAX_RESULT_BYTES = 8 * 2**30
# float64 values kept per (scenario, month): pool cash-flow types + macro variables + a generous
# allowance for the per-tranche arrays (interest / principal / balance x up to ~10 tranches)
_VALUES_PER_SIM_MONTH = len(POOL_CF_TYPES) + len(MACRO_VARS) + 40


def estimate_result_bytes(n_sims: int, horizon: int) -> int:
    """Rough upper estimate of the memory, bytes, that a run of ``n_sims`` x ``horizon`` months keeps."""
    return int(n_sims) * int(horizon) * _VALUES_PER_SIM_MONTH * 8


def check_run_size(n_sims: int, horizon: int) -> None:
    """Refuse, before any work, a run whose horizon or kept results would exhaust memory.

    A one-line ConfigError naming ``horizon`` or ``n_simulations``, the estimate and the limit, instead
    of an allocation traceback minutes into the run (the engine itself streams in bounded chunks).
    """
    if horizon > MAX_HORIZON_MONTHS:
        raise ConfigError(f"horizon must be at most {MAX_HORIZON_MONTHS} months, got {horizon}")
    need = estimate_result_bytes(n_sims, horizon)
    if need > MAX_RESULT_BYTES:
        raise ConfigError(f"n_simulations={n_sims} x horizon={horizon}: the results would need about "
                          f"{need / 2**30:,.1f} GiB (limit {MAX_RESULT_BYTES / 2**30:.0f} GiB); lower n_simulations")


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_deal(deal: Any) -> Any:
    from creditsim.deal.config import WaterfallConfig, load_deal

    if isinstance(deal, WaterfallConfig):
        return deal
    if isinstance(deal, Mapping):
        return WaterfallConfig.from_dict(dict(deal))
    if isinstance(deal, str) or hasattr(deal, "__fspath__"):
        return load_deal(deal)
    raise ConfigError(f"deal must be a WaterfallConfig, a mapping or a YAML path, got {type(deal).__name__}")


def _scaled_deal(config: Any, pool_balance: float) -> tuple[Any, float]:
    """Scale tranche notionals to the pool (see module docstring); returns (config, factor)."""
    from creditsim.deal.config import Tranche

    basis = config.initial_collateral
    factor = pool_balance / basis
    tranches = [Tranche(**{**t.__dict__, "balance": t.balance * factor}) for t in config.tranches]
    coll = None if config.collateral_balance is None else config.collateral_balance * factor
    return replace(config, tranches=tranches, collateral_balance=coll), factor


def check_device(device: Any) -> str:
    """Validate a torch device name: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (N an existing GPU).

    Raises ConfigError for anything else, and when CUDA is asked for but not available, so a typo
    never surfaces as a RuntimeError from inside torch half-way through a run.
    """
    import re

    name = str(device).strip().lower() if isinstance(device, str) or type(device).__name__ == "device" else None
    if name is None or not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}, no usable GPU); use device='cpu'")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return name


def _check_engine(engine: str) -> str:
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ConfigError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "transformer":
        try:
            import creditsim.transitions.transformer  # noqa: F401
        except ImportError:
            raise ConfigError("engine='transformer' needs the TransitionTransformer (creditsim.models."
                              "transition_transformer), which is not part of this build; use engine='markov'") from None
    if engine == "trajectory":
        try:
            import creditsim.loans.trajectory  # noqa: F401
        except ImportError:
            raise ConfigError("engine='trajectory' needs the LoanTrajectoryModel (creditsim.models."
                              "loan_trajectory), which is not part of this build; use engine='markov'") from None
    return engine


def _default_cutoff(loans_df: Any, cutoff: Any) -> Any:
    """The cut-off date: the given one, else the latest origination date of the tape (decision: a
    tape's ``current_balance`` is a balance *at the cut-off*, and a loan cannot be originated after it;
    this is also the ``as_of`` default of the loan features the learned models see)."""
    if cutoff is not None:
        return cutoff
    if isinstance(loans_df, pd.DataFrame) and "origination_date" in loans_df.columns:
        dates = pd.to_datetime(loans_df["origination_date"], errors="coerce")
        if dates.notna().any():
            return dates.max()
    return None  # the tape validation that follows names the problem


def _attach_trajectory_model(engine: Any, model: Any, loans_df: pd.DataFrame, cutoff: Any, device: str) -> None:
    """Give the pool engine the LoanTrajectoryModel (pretrained unless given) and the loans' features
    as of the cut-off."""
    from creditsim.features import loan_features
    from creditsim.loans.trajectory import LoanTrajectoryModel

    if model is None:
        model = LoanTrajectoryModel.from_pretrained(device=device)
    if not isinstance(model, LoanTrajectoryModel):
        raise ConfigError(f"trajectory_model must be a LoanTrajectoryModel, got {type(model).__name__}")
    engine.trajectory_model = model.eval()
    engine.loan_features = loan_features(loans_df, as_of=cutoff).to_numpy(np.float32)


def _transition_model_for(engine: str, model: Any, loans_df: pd.DataFrame, device: str) -> Any:
    """The object whose ``scenario_matrices`` drives the chosen engine.

    markov: ``model`` or None (the default Markov model, picked by the engine).
    transformer: a TransitionTransformer (bound to the tape with ``for_tape``), an already bound
    adapter, or None for the pretrained checkpoint (CheckpointError when it is not installed).
    trajectory: any of the above; a TransitionTransformer's cohort matrices then condition the
    LoanTrajectoryModel (the spec's full chain MacroVAE -> TransitionTransformer -> LoanTrajectoryModel).
    """
    if engine != "transformer" and type(model).__name__ != "TransitionTransformer":
        return model
    from creditsim.transitions.transformer import TransitionTransformer

    if model is None:
        model = TransitionTransformer.from_pretrained(device=device)
    if isinstance(model, TransitionTransformer):
        if not isinstance(loans_df, pd.DataFrame):
            raise ConfigError(f"loans_df must be a pandas DataFrame, got {type(loans_df).__name__}")
        from creditsim.schema import validate_loan_tape

        return model.for_tape(validate_loan_tape(loans_df))
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
    """

    engine: Any
    config: Any
    mode: str = "hard"
    device: str = "cpu"
    keep_cashflows: bool = True


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
        ``tranche_interest`` / ``tranche_principal`` / ``tranche_balance`` ``(s, T, n_tranches)``.
    """
    import torch

    from creditsim.deal.analytics import tranche_outcomes
    from creditsim.deal.waterfall import run_waterfall

    ids = np.arange(task.start, task.stop, dtype=np.int64)
    with torch.no_grad():  # reported numbers need no autograd graph (and no_grad keeps memory flat)
        pool = ctx.engine.pool_cashflows(task.macro, ids)  # (s, T, 7) float64
        p0 = ctx.engine.initial_balance
        wf = run_waterfall(pool, ctx.config, initial_balance=p0, mode=ctx.mode, device=ctx.device)
        outcomes = tranche_outcomes(wf, ctx.config, collateral_balance=p0)
    out: dict[str, Any] = {
        "portfolio_losses": pool[:, :, _LOSS].sum(axis=1) / p0,
        "tranches": outcomes,
    }
    if ctx.keep_cashflows:
        out["pool"] = pool
        for key in ("tranche_interest", "tranche_principal", "tranche_balance"):
            out[key] = wf[key].detach().cpu().numpy()
    return out


# ---------------------------------------------------------------------- public API
def simulate(
    loans_df: pd.DataFrame,
    deal: Any,
    n_simulations: int = 10_000,
    scenario_mix: Mapping[str, float] | str | None = None,
    macro: Any = "vae",
    engine: str = "markov",
    seed: int = 0,
    chunk_size: int = 500,
    backend: str = "local",
    client: Any | None = None,
    progress: bool = True,
    device: str = "cpu",
    *,
    horizon: int = 60,
    cutoff: Any | None = None,
    transition_model: Any | None = None,
    trajectory_model: Any | None = None,
    scale_deal: bool = True,
    keep_cashflows: bool = True,
    mode: str = "hard",
    macro_start: Any = None,
) -> SimulationResults:
    """Run the full Monte Carlo of a deal on a loan tape.

    Args:
        loans_df: loan tape (spec/loan-tape.md), one row per loan.
        deal: :class:`~creditsim.deal.config.WaterfallConfig`, a mapping in the YAML layout or a
            path to a deal YAML file.
        n_simulations: number of scenarios S.
        scenario_mix: weights of the scenario types (mapping, ``"a=0.5,b=0.5"`` string or one name);
            default 0.6 baseline / 0.25 adverse / 0.1 severely adverse / 0.05 stagflation.
        macro: ``"vae"`` (pretrained MacroVAE), ``"synthetic"`` (MacroScenarioGenerator), ``"fed"``
            (supervisory paths), a macro DataFrame or an array (see
            :func:`creditsim.macro.scenarios.build_macro_paths`).
        engine: ``"markov"`` (macro-conditioned Markov chain + fast cashflow sampler);
            ``"transformer"`` (TransitionTransformer cohort matrices + the same sampler; the pretrained
            checkpoint unless ``transition_model`` is given); ``"trajectory"`` (loan paths from the
            LoanTrajectoryModel conditioned on the Markov cohort matrices, pretrained unless
            ``trajectory_model`` is given).
        seed: master seed of every random draw.
        chunk_size: scenarios per chunk (memory ~ chunk_size x loans x months bytes in the sampler).
        backend: ``"local"`` or ``"dask"`` (``client``: an existing dask Client; default a
            2-worker LocalCluster).
        progress: show a rich progress bar.
        device: "cpu" or "cuda" for the engine and the waterfall.
        horizon: months simulated, T.
        cutoff: cut-off date of the tape (None: the latest origination date in the tape).
        transition_model: a fitted :class:`~creditsim.transitions.markov.MarkovTransitionModel`
            (default: the model calibrated to the spec's base-case roll rates and macro sensitivities),
            or with ``engine="transformer"`` a TransitionTransformer.
        trajectory_model: a LoanTrajectoryModel for ``engine="trajectory"``.
        scale_deal: scale tranche notionals to the tape's pool balance (module docstring).
        keep_cashflows: keep ``(S, T, k)`` pool and tranche cashflows in the result.
        mode: waterfall mode, "hard" (exact) by default.
        macro_start: the macro state generated (VAE) paths start from at month 0 -- None: the
            observed state of the cut-off month (bundled macro history; its latest month when the
            cut-off lies beyond it); a mapping / Series of the 9 MACRO_VARS or a ``(9,)`` array
            (decimals); ``"scenario"``: the VAE's scenario-typical historical starts. See
            :mod:`creditsim.macro.scenarios`.

    Returns:
        :class:`SimulationResults` with per-scenario portfolio losses, tranche results, cashflows,
        scenario labels, macro paths and the run settings.
    """
    from creditsim.risk.pool_engine import PoolEngine

    n = _positive_int(n_simulations, "n_simulations")
    chunk = _positive_int(chunk_size, "chunk_size")
    horizon = _positive_int(horizon, "horizon")
    seed = _positive_int(seed, "seed", minimum=0)
    check_run_size(n, horizon)
    _check_engine(engine)
    device = check_device(device)
    weights = parse_scenario_mix(scenario_mix)
    config = _as_deal(deal)
    if not isinstance(progress, bool):
        raise ConfigError(f"progress must be True or False, got {progress!r}")
    if backend not in ("local", "dask"):
        raise ConfigError(f"backend must be 'local' or 'dask', got {backend!r}")
    from creditsim.deal.waterfall import MODES

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    cutoff = _default_cutoff(loans_df, cutoff)
    transition_model = _transition_model_for(engine, transition_model, loans_df, device)
    pool_engine = PoolEngine.from_tape(loans_df, seed=seed, horizon=horizon, cutoff=cutoff,
                                       transition_model=transition_model, device=device)
    if engine == "trajectory":
        _attach_trajectory_model(pool_engine, trajectory_model, loans_df, cutoff, device)
    p0 = pool_engine.initial_balance
    generated = (isinstance(macro, str) and macro.strip().lower() == "vae") or (
        hasattr(macro, "generate") and hasattr(macro, "config"))
    if generated:
        start_vec, start_label = resolve_macro_start(macro_start, cutoff)
    else:  # paths given as data, or the rule-based generator: they carry their own start
        start_vec, start_label = None, "paths as given"
    factor = 1.0
    if scale_deal:
        config, factor = _scaled_deal(config, p0)

    t0 = time.perf_counter()
    labels = draw_scenario_labels(weights, n, seed)
    macro_paths = build_macro_paths(macro, labels, horizon, seed, device, start=start_vec)

    ctx = ChunkContext(engine=pool_engine, config=config, mode=mode, device=device, keep_cashflows=keep_cashflows)
    starts = list(range(0, n, chunk))
    tasks = [ChunkTask(s, min(s + chunk, n), macro_paths[s:min(s + chunk, n)]) for s in starts]
    sizes = [t.stop - t.start for t in tasks]
    runner = make_backend(backend, client)
    try:
        chunks = _run_with_progress(runner, ctx, tasks, sizes, n, progress)
    finally:
        runner.close()

    results = _assemble(chunks, config, labels, macro_paths, p0, keep_cashflows)
    results.settings = {
        "name": config.name,
        "n_simulations": n,
        "scenario_mix": {SCENARIOS[i]: float(w) for i, w in enumerate(weights)},
        "macro": macro if isinstance(macro, str) else type(macro).__name__,
        "macro_start": {"source": start_label,
                        "state": None if start_vec is None else dict(zip(MACRO_VARS, map(float, start_vec)))},
        "engine": engine,
        "seed": seed,
        "chunk_size": chunk,
        "backend": backend,
        "device": device,
        "horizon_months": horizon,
        "cutoff": None if cutoff is None else str(cutoff),
        "n_loans": pool_engine.n_loans,
        "pool_balance": p0,
        "deal_scale_factor": factor,
        "mode": mode,
        "transition_model": pool_engine.describe(),
        "deal": config.to_dict(),
        "versions": versions(),
        "simulation_seconds": round(time.perf_counter() - t0, 3),
    }
    return results


def _run_with_progress(runner: Any, ctx: ChunkContext, tasks: list, sizes: list, n: int, progress: bool) -> list:
    if not progress:
        return run_chunks(runner, run_chunk, ctx, tasks, sizes)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("scenarios"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task_id = bar.add_task("simulate", total=n)
        return run_chunks(runner, run_chunk, ctx, tasks, sizes, on_done=lambda k: bar.advance(task_id, k))


def _assemble(chunks: list[dict[str, Any]], config: Any, labels: np.ndarray, macro_paths: np.ndarray,
              p0: float, keep_cashflows: bool) -> SimulationResults:
    losses = np.concatenate([c["portfolio_losses"] for c in chunks])
    tranches = []
    for tr in config.tranches:
        parts = [c["tranches"][tr.name] for c in chunks]
        first = parts[0]
        pv = None if first["pv_losses"] is None else np.concatenate([p["pv_losses"] for p in parts])
        tranches.append(TrancheResult(
            name=tr.name, balance=first["balance"],
            losses=np.concatenate([p["losses"] for p in parts]),
            irr=np.concatenate([p["irr"] for p in parts]),
            wal=np.concatenate([p["wal"] for p in parts]),
            coupon=first["coupon"], attachment=first["attachment"], detachment=first["detachment"],
            equity=first["equity"], pv_losses=pv,
        ))
    cashflows = {}
    if keep_cashflows:
        for key in ("pool", "tranche_interest", "tranche_principal", "tranche_balance"):
            cashflows[key] = np.concatenate([c[key] for c in chunks], axis=0)
    return SimulationResults(portfolio_losses=losses, tranche_results=tranches, cashflows=cashflows,
                             scenarios=labels, macro_paths=macro_paths, initial_balance=p0)


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

