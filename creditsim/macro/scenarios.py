"""Scenario mix, scenario labels and the macro paths that drive a run.

Decisions:

- **Default mix** 0.6 baseline / 0.25 adverse / 0.10 severely adverse / 0.05 stagflation. User weights
  must be non-negative and sum to 1 (tolerance 1e-6): a mix that sums to 0.9 is a typo, not something
  to renormalise silently.
- **Stratified labels.** The number of simulations per scenario type is fixed by the mix (largest
  remainder rounding), then the labels are shuffled with a stream derived from the seed. Compared with
  i.i.d. draws this removes the sampling noise of the mix itself (EL of a 10 % scenario is not
  weighted 9 % or 11 % by chance) and every result is still an equally weighted sample.
- **Paths start from the current macro state** (``macro="vae"``). A risk run asks "what happens to
  *this* pool from *today*", so month 0 of every generated path is pinned to one start vector: the
  user's ``macro_start``, else the observed macro state of the cut-off month when the bundled history
  (:func:`creditsim.datasets.load_macro_history`) covers it, else its latest month. The VAE's own
  default draws the start of each path from historical months that carry the scenario's label, which
  makes "baseline" paths start wherever past baselines started (median 7.2 % unemployment) and
  reverses the scenario ordering for a risk run. Pinning uses the VAE's public conditioning API
  (``generate_conditional`` with all nine variables observed at month 0): the decoder's latent is
  importance-sampled given that start (``MACRO_START_PARTICLES`` candidates per path), so the months
  that follow are the model's conditional distribution from the start, scenario by scenario.
  ``macro_start="scenario"`` restores the scenario-typical historical starts.
- **Macro paths are generated once, up front**, for all simulations: ``(S, T, 9)`` float64 is small
  (10^4 x 60 x 9 = 43 MB) and generating them before chunking is what makes them independent of the
  chunk size and of the backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.datasets import (
    available_fed_scenarios,
    load_fed_scenarios,
    load_macro_history,
    load_recession_indicator,
    macro_state,
)
from creditsim.errors import ConfigError, DataError
from creditsim.io import read_frame
from creditsim.macro.anchors import (
    consensus_path,
    floor,
    path_offsets,
    scenario_offsets,
)
from creditsim.macro.baselines import BlockBootstrapGenerator, VARGenerator
from creditsim.macro.synthetic import MacroScenarioGenerator
from creditsim.macro.vae import MacroVAE
from creditsim.rng import LABELS, MACRO, int_seed, numpy_generator
from creditsim.schema import validate_macro
from creditsim.states import MACRO_VARS, SCENARIOS, scenario_index

__all__ = [
    "DEFAULT_SCENARIO_MIX",
    "MACRO_SOURCES",
    "GENERATED_SOURCES",
    "parse_scenario_mix",
    "mix_from_string",
    "draw_scenario_labels",
    "build_macro_paths",
    "resolve_macro_start",
    "parse_macro_source",
    "fitted_baseline",
]

DEFAULT_SCENARIO_MIX: dict[str, float] = {
    "baseline": 0.60, "adverse": 0.25, "severely_adverse": 0.10, "stagflation": 0.05,
}
#: named macro sources; ``"fed:YEAR"`` and ``"fed:YEAR:SCENARIO"`` name a bundled supervisory table
MACRO_SOURCES: tuple[str, ...] = ("vae", "synthetic", "fed", "var", "bootstrap")
#: the sources that generate paths from a start state (the others carry their own month 0)
GENERATED_SOURCES: tuple[str, ...] = ("vae", "var", "bootstrap")
#: supervisory scenario vintage used by ``macro="fed"``: the latest final (not proposed) one bundled
FED_SCENARIO_YEAR = 2025

#: latent candidates per path when month 0 is pinned to the start state (importance sampling of the
#: VAE latent given the start; 4 keeps the cost at a quarter of the VAE's own 16-candidate history start)
MACRO_START_PARTICLES = 4
#: VAE paths of the reference sample whose median is the VAE's central path from a given start
ANCHOR_REFERENCE_PATHS = 256

def parse_scenario_mix(mix: Mapping[str, float] | Sequence[float] | str | None) -> np.ndarray:
    """Scenario weights as a ``(4,)`` float array in SCENARIOS order.

    Accepts None (the default mix), a scenario name (100 % of that scenario), a mapping name -> weight
    (missing scenarios get 0) or a sequence of 4 weights.
    """
    if mix is None:
        mix = DEFAULT_SCENARIO_MIX
    if isinstance(mix, str):
        if "=" in mix or "," in mix:
            return mix_from_string(mix)
        w = np.zeros(len(SCENARIOS))
        w[scenario_index(mix)] = 1.0
        return w
    w = np.zeros(len(SCENARIOS))
    if isinstance(mix, Mapping):
        for name, value in mix.items():
            idx = scenario_index(name)
            w[idx] = _weight(value, name)
    else:
        vals = list(mix)
        if len(vals) != len(SCENARIOS):
            raise ConfigError(f"scenario_mix: expected {len(SCENARIOS)} weights {list(SCENARIOS)}, got {len(vals)}")
        for i, value in enumerate(vals):
            w[i] = _weight(value, SCENARIOS[i])
    total = w.sum()
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"scenario_mix: weights must sum to 1, got {total:.6g} ({_describe(w)})")
    return w / total


def _weight(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"scenario_mix: weight of {name!r} must be a number, got {value!r}") from None
    if not np.isfinite(x) or x < 0:
        raise ConfigError(f"scenario_mix: weight of {name!r} must be a finite number >= 0, got {value!r}")
    return x


def _describe(w: np.ndarray) -> str:
    return ", ".join(f"{SCENARIOS[i]}={w[i]:g}" for i in range(len(w)) if w[i] > 0) or "all zero"


def mix_from_string(text: str) -> np.ndarray:
    """Parse ``"baseline=0.5,severely_adverse=0.5"`` (the CLI form) or a single scenario name."""
    text = text.strip()
    if "=" not in text:
        if "," in text:
            # "baseline,adverse" has no weights: refuse rather than guess equal weights
            raise ConfigError(f"scenario_mix: expected 'name=weight' items separated by commas "
                              f"(e.g. 'baseline=0.5,adverse=0.5') or one scenario name, got {text!r}")
        w = np.zeros(len(SCENARIOS))
        w[scenario_index(text)] = 1.0
        return w
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"scenario_mix: expected 'name=weight' items separated by commas, got {part!r}")
        name, value = part.split("=", 1)
        key = name.strip()
        if scenario_index(key) in {scenario_index(k) for k in mix}:
            raise ConfigError(f"scenario_mix: scenario {key!r} given twice")
        mix[key] = value.strip()  # type: ignore[assignment]
    return parse_scenario_mix(mix)


def draw_scenario_labels(weights: np.ndarray, n_simulations: int, seed: int) -> np.ndarray:
    """``(n_simulations,)`` int64 scenario index per global simulation id (stratified, shuffled)."""
    exact = weights * n_simulations
    counts = np.floor(exact).astype(np.int64)
    short = n_simulations - counts.sum()
    if short > 0:
        # largest remainder; ties go to the earlier (less severe) scenario, deterministically
        order = np.lexsort((np.arange(len(weights)), -(exact - counts)))
        counts[order[:short]] += 1
    labels = np.repeat(np.arange(len(weights), dtype=np.int64), counts)
    rng = numpy_generator(seed, LABELS)
    return labels[rng.permutation(n_simulations)]


# ---------------------------------------------------------------------- macro paths
def resolve_macro_start(start: Any = None, cutoff: Any = None) -> tuple[np.ndarray | None, str]:
    """The macro state month 0 of generated paths starts from: ``((9,) float64 in MACRO_VARS order,
    description)``, or ``(None, "scenario")`` for ``start="scenario"`` (the VAE's scenario-typical
    historical starts).

    start: None (the real state of the cut-off month, :func:`creditsim.datasets.macro_state`; the
    latest observed month when the cut-off lies beyond the data or is not given), ``"latest"``, a month
    ``"YYYY-MM"`` (that month's real state), a mapping / Series ``{variable: value}`` with all nine
    MACRO_VARS, or a ``(9,)`` array in MACRO_VARS order; values are decimals.
    """
    if isinstance(start, str) and start.strip().lower() == "scenario":
        return None, "scenario"
    if start is None or isinstance(start, (str, pd.Timestamp)):
        month = start
        if start is None and cutoff is not None:
            try:
                month = pd.Timestamp(cutoff).to_period("M").to_timestamp()
            except (TypeError, ValueError):
                raise ConfigError(f"cutoff: expected a date, got {cutoff!r}") from None
            month = min(month, pd.Timestamp(macro_state().attrs["month"] + "-01"))
        try:
            state = macro_state(month)
        except ConfigError as exc:
            raise ConfigError(f"macro_start: {exc}") from None
        held = "".join(f", {v} held from {m}" for v, m in state.attrs["held"].items())
        return state[list(MACRO_VARS)].to_numpy(np.float64), f"history {state.attrs['month']}{held}"
    if isinstance(start, (Mapping, pd.Series)):
        missing = [v for v in MACRO_VARS if v not in start]
        if missing:
            raise ConfigError(f"macro_start: missing variable(s) {missing}; expected all of {list(MACRO_VARS)}")
        try:
            vec = np.array([float(start[v]) for v in MACRO_VARS])
        except (TypeError, ValueError):
            raise ConfigError("macro_start: values must be numbers (decimals)") from None
    else:
        vec = np.asarray(start, dtype=np.float64).reshape(-1) if np.ndim(start) else np.array([])
        if vec.shape != (len(MACRO_VARS),):
            raise ConfigError(f"macro_start: expected {len(MACRO_VARS)} values in MACRO_VARS order "
                              f"{list(MACRO_VARS)}, got shape {np.shape(start)}")
    if not np.all(np.isfinite(vec)):
        bad = [MACRO_VARS[i] for i in np.flatnonzero(~np.isfinite(vec))]
        raise DataError(f"macro_start: non-finite value for {bad}")
    return vec, "user"


def build_macro_paths(macro: Any, labels: np.ndarray, horizon: int, seed: int, device: str = "cpu",
                      start: np.ndarray | None = None) -> np.ndarray:
    """Macro paths ``(S, horizon, 9)`` float64 (decimals, MACRO_VARS order) for the given labels.

    macro:
        ``"vae"``: the pretrained :class:`~creditsim.macro.vae.MacroVAE` (or a MacroVAE
        instance passed directly), one batch per scenario type with a seed derived from
        (seed, scenario);
        ``"synthetic"``: :class:`~creditsim.macro.synthetic.MacroScenarioGenerator` (rule-based);
        ``"fed"``: the 2025 Federal Reserve supervisory baseline / severely adverse paths (the same
        path for every simulation of a scenario type; only those two types are available);
        a DataFrame with the 9 variables (monthly rows; one path for all simulations, or one path
        per scenario type when it has a ``scenario`` column);
        an array ``(S, T, 9)`` or ``(T, 9)``.
    start: ``(9,)`` macro state in MACRO_VARS order that month 0 of generated VAE paths is pinned to
        (see :func:`resolve_macro_start`); None lets the VAE draw scenario-typical historical starts.
        Paths given as data (fed, frame, array) and the rule-based generator keep their own start.
    """
    n = labels.size
    if isinstance(macro, os.PathLike) or (isinstance(macro, str) and macro.split(":")[0].strip().lower() not in MACRO_SOURCES
                                          and Path(macro).is_file()):
        macro = read_frame(macro, "macro file")  # a CSV / Parquet file of paths: validated as a frame below
    if isinstance(macro, str):
        key, year, name = parse_macro_source(macro)
        if key == "vae":
            return _vae_paths(labels, horizon, seed, device, start=start)
        if key == "synthetic":
            return _synthetic_paths(labels, horizon, seed)
        if key == "fed":
            return _fed_paths(labels, horizon, year, name)
        return _baseline_paths(key, labels, horizon, seed, start)
    if isinstance(macro, pd.DataFrame):
        return _frame_paths(macro, labels, horizon)
    if hasattr(macro, "generate") and hasattr(macro, "config"):  # a MacroVAE instance
        return _vae_paths(labels, horizon, seed, device, model=macro, start=start)
    if isinstance(macro, np.ndarray):
        arr = np.asarray(macro, dtype=np.float64)
        if arr.ndim == 2:
            arr = np.broadcast_to(arr, (n, *arr.shape))
        if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != len(MACRO_VARS):
            raise DataError(f"macro array: expected shape ({n}, T, {len(MACRO_VARS)}) or (T, {len(MACRO_VARS)}), "
                            f"got {np.shape(macro)}")
        if arr.shape[1] < horizon:
            raise DataError(f"macro array: {arr.shape[1]} months, the horizon needs {horizon}")
        if not np.all(np.isfinite(arr)):
            raise DataError("macro array: contains NaN or infinite values")
        return np.ascontiguousarray(arr[:, :horizon])
    raise ConfigError(f"macro must be one of {list(MACRO_SOURCES)}, a DataFrame or an array, got {type(macro).__name__}")


def _vae_paths(labels: np.ndarray, horizon: int, seed: int, device: str, model: Any = None,
               start: np.ndarray | None = None) -> np.ndarray:
    """VAE paths per label. From a given ``start`` the scenarios are anchored (:mod:`creditsim.macro.anchors`):
    the VAE's baseline dynamics give each path's variation around the scenario's central path. Without a
    start (``macro_start="scenario"``) the VAE's own scenario-typical historical starts and labels."""
    if model is None:
        model = MacroVAE.from_pretrained(device=device)
    order = list(model.config.variables)
    missing = [v for v in MACRO_VARS if v not in order]
    if missing:
        raise ConfigError(f"MacroVAE does not model {missing}; a simulation needs all of {list(MACRO_VARS)}")
    perm = [order.index(v) for v in MACRO_VARS]
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    if start is None:
        for s in np.unique(labels):
            idx = np.flatnonzero(labels == s)
            paths = model.generate(int(s), seq_length=horizon, n_samples=idx.size, seed=int_seed(seed, MACRO, int(s)))
            out[idx] = paths.detach().cpu().double().numpy()[:, :, perm]
        return out
    conditions = {v: {"month": 0, "value": float(start[MACRO_VARS.index(v)])} for v in order}

    def baseline_dynamics(n: int, key: int) -> np.ndarray:
        paths = model.generate_conditional(conditions, seq_length=horizon, n_samples=n, scenario=0,
                                           seed=int_seed(seed, MACRO, key), start="model",
                                           n_particles=MACRO_START_PARTICLES * n)
        return paths.detach().cpu().double().numpy()[:, :, perm]

    # the VAE's central path from this start, from a reference sample of its own stream (key 4 = after
    # the four scenario types), so a path's deviation does not depend on how many paths its group has
    centre = np.median(baseline_dynamics(ANCHOR_REFERENCE_PATHS, len(SCENARIOS)), axis=0)
    offsets = scenario_offsets(horizon)
    base = start[None, :] + consensus_path(horizon)  # (T, 9)
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        # a depth and an onset per path: stress scenarios differ in how deep and when, not only in noise
        shock = path_offsets(offsets[int(s)], idx.size, numpy_generator(seed, MACRO, int(s), 1))
        out[idx] = floor(base[None] + shock + baseline_dynamics(idx.size, int(s)) - centre)
    return out


def _synthetic_paths(labels: np.ndarray, horizon: int, seed: int) -> np.ndarray:
    gen = MacroScenarioGenerator(n_months=horizon)
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        sub_seed = int_seed(seed, MACRO, int(s))
        out[idx] = _as_path_array(gen.generate_scenario(int(s), n_paths=idx.size, seed=sub_seed), idx.size, horizon)
    return out


def _as_path_array(paths: Any, n: int, horizon: int) -> np.ndarray:
    arr = paths.detach().cpu().numpy() if hasattr(paths, "detach") else np.asarray(paths)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (n, horizon, len(MACRO_VARS)):
        raise DataError(f"macro generator returned shape {arr.shape}, expected {(n, horizon, len(MACRO_VARS))}")
    return arr


def parse_macro_source(source: str) -> tuple[str, int, str | None]:
    """``(kind, fed year, fed scenario)`` of a named source: ``"vae"``, ``"synthetic"``, ``"var"``,
    ``"bootstrap"``, ``"fed"`` (the :data:`FED_SCENARIO_YEAR` table per scenario label),
    ``"fed:2026"`` (that year's tables) or ``"fed:2026:severely_adverse"`` (that one path for every
    simulation); ConfigError naming what exists otherwise."""
    parts = [x.strip() for x in source.strip().lower().split(":")]
    kind = parts[0]
    if kind not in MACRO_SOURCES or (kind != "fed" and len(parts) > 1) or len(parts) > 3:
        raise ConfigError(f"macro must be one of {list(MACRO_SOURCES)}, 'fed:YEAR' or 'fed:YEAR:SCENARIO', "
                          f"a DataFrame or an array, got {source!r}")
    year, name = FED_SCENARIO_YEAR, None
    if len(parts) >= 2:
        years = sorted({y for y, _, _ in available_fed_scenarios()})
        if not parts[1].isdigit() or int(parts[1]) not in years:
            raise ConfigError(f"macro {source!r}: no bundled supervisory scenarios for year {parts[1]!r}; "
                              f"bundled: {years}")
        year = int(parts[1])
    if len(parts) == 3:
        name = SCENARIOS[scenario_index(parts[2])]
    return kind, year, name


def _fed_paths(labels: np.ndarray, horizon: int, year: int = FED_SCENARIO_YEAR, only: str | None = None) -> np.ndarray:
    """The supervisory path of each label's scenario (or of ``only`` for every simulation), monthly."""
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        name = only or SCENARIOS[int(s)]
        if name not in ("baseline", "severely_adverse"):
            raise ConfigError(f"macro='fed' has only baseline and severely_adverse paths; the scenario mix "
                              f"gives weight to {name!r} (name one path with 'fed:YEAR:SCENARIO')")
        frame = load_fed_scenarios(year, scenario=name, monthly=True)
        out[labels == s] = _extend(frame[list(MACRO_VARS)].to_numpy(np.float64), horizon)
    return out


@lru_cache(maxsize=4)
def fitted_baseline(kind: str, seq_length: int = 60) -> VARGenerator | BlockBootstrapGenerator:
    """The VAR(1) or block-bootstrap baseline fitted on the bundled history (cached per process)."""
    gen = VARGenerator(1, seq_length=seq_length) if kind == "var" else BlockBootstrapGenerator(seq_length=seq_length)
    return gen.fit(load_macro_history(), load_recession_indicator()["recession"])


def _baseline_paths(kind: str, labels: np.ndarray, horizon: int, seed: int, start: np.ndarray | None) -> np.ndarray:
    """Paths of the VAR(1) / block-bootstrap baseline per label from ``start`` (or historical starts).

    The VAR has one set of dynamics for every scenario (its label only picks historical starts when no
    start is given); the bootstrap draws the monthly changes of historical windows of the label's type."""
    gen = fitted_baseline(kind)
    perm = [gen.variables_.index(v) for v in MACRO_VARS]
    start_fit = None if start is None else np.asarray(start, dtype=np.float64)[[MACRO_VARS.index(v) for v in gen.variables_]]
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        paths = gen.generate(int(s), seq_length=horizon, n_samples=idx.size, seed=int_seed(seed, MACRO, int(s)),
                             start=start_fit)
        out[idx] = paths.numpy()[:, :, perm]
    return out


def _extend(path: np.ndarray, horizon: int) -> np.ndarray:
    """Cut or extend a ``(T, 9)`` path to ``horizon`` months; beyond its end the last month is held
    (supervisory tables stop after 13 quarters; holding the end state is the neutral choice)."""
    if path.shape[0] >= horizon:
        return path[:horizon]
    pad = np.repeat(path[-1:], horizon - path.shape[0], axis=0)
    return np.concatenate([path, pad], axis=0)


def _frame_paths(frame: pd.DataFrame, labels: np.ndarray, horizon: int) -> np.ndarray:
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    if "scenario" in frame.columns:
        groups = {scenario_index(k): g.drop(columns="scenario") for k, g in frame.groupby("scenario", sort=False)}
        for s in np.unique(labels):
            if int(s) not in groups:
                raise ConfigError(f"macro frame has no rows for scenario {SCENARIOS[int(s)]!r}, which the mix uses")
            clean = validate_macro(groups[int(s)])
            out[labels == s] = _need(clean, horizon)
        return out
    clean = validate_macro(frame)
    out[:] = _need(clean, horizon)
    return out


def _need(frame: pd.DataFrame, horizon: int) -> np.ndarray:
    if len(frame) < horizon:
        raise DataError(f"macro frame: {len(frame)} months, the simulation horizon needs {horizon}")
    return frame[list(MACRO_VARS)].to_numpy(np.float64)[:horizon]
