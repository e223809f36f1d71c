"""Scenario mix, scenario labels and the macro paths that drive a run.

Decisions:

- **Default mix** 0.6 baseline / 0.25 adverse / 0.10 severely adverse / 0.05 stagflation. User weights
  must be non-negative and sum to 1 (tolerance 1e-6): a mix that sums to 0.9 is a typo, not something
  to renormalise silently.
- **Stratified labels.** The number of simulations per scenario type is fixed by the mix (largest
  remainder rounding), then the labels are shuffled with a stream derived from the seed. Compared with
  i.i.d. draws this removes the sampling noise of the mix itself (EL of a 10 % scenario is not
  weighted 9 % or 11 % by chance) and every result is still an equally weighted sample.
- **Macro paths are generated once, up front**, for all simulations: ``(S, T, 9)`` float64 is small
  (10^4 x 60 x 9 = 43 MB) and generating them before chunking is what makes them independent of the
  chunk size and of the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.states import MACRO_VARS, SCENARIOS, scenario_index

__all__ = [
    "DEFAULT_SCENARIO_MIX",
    "MACRO_SOURCES",
    "parse_scenario_mix",
    "mix_from_string",
    "draw_scenario_labels",
    "build_macro_paths",
    "stream",
]

DEFAULT_SCENARIO_MIX: dict[str, float] = {
    "baseline": 0.60, "adverse": 0.25, "severely_adverse": 0.10, "stagflation": 0.05,
}
MACRO_SOURCES: tuple[str, ...] = ("vae", "synthetic", "fed")
#: supervisory scenario vintage used by ``macro="fed"``: the latest final (not proposed) one bundled
FED_SCENARIO_YEAR = 2025

# spawn keys of the independent random streams of a run (never reuse a number)
STREAM_LABELS = 1
STREAM_MACRO = 2
STREAM_LOANS = 3


def stream(seed: int, *key: int) -> np.random.SeedSequence:
    """The SeedSequence of stream ``key`` (e.g. ``(STREAM_MACRO, scenario)``) under ``seed``."""
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))


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
    rng = np.random.default_rng(stream(seed, STREAM_LABELS))
    return labels[rng.permutation(n_simulations)]


# ---------------------------------------------------------------------- macro paths
def build_macro_paths(macro: Any, labels: np.ndarray, horizon: int, seed: int, device: str = "cpu") -> np.ndarray:
    """Macro paths ``(S, horizon, 9)`` float64 (decimals, MACRO_VARS order) for the given labels.

    macro:
        ``"vae"``: the pretrained :class:`~creditsim.models.macro_vae.MacroVAE` (or a MacroVAE
        instance passed directly), one batch per scenario type with a seed derived from
        (seed, scenario);
        ``"synthetic"``: :class:`~creditsim.data.synthetic.MacroScenarioGenerator` (rule-based);
        ``"fed"``: the 2025 Federal Reserve supervisory baseline / severely adverse paths (the same
        path for every simulation of a scenario type; only those two types are available);
        a DataFrame with the 9 variables (monthly rows; one path for all simulations, or one path
        per scenario type when it has a ``scenario`` column);
        an array ``(S, T, 9)`` or ``(T, 9)``.
    """
    n = labels.size
    if isinstance(macro, str):
        key = macro.strip().lower()
        if key == "vae":
            return _vae_paths(labels, horizon, seed, device)
        if key == "synthetic":
            return _synthetic_paths(labels, horizon, seed)
        if key == "fed":
            return _fed_paths(labels, horizon)
        raise ConfigError(f"macro must be one of {list(MACRO_SOURCES)}, a DataFrame or an array, got {macro!r}")
    if isinstance(macro, pd.DataFrame):
        return _frame_paths(macro, labels, horizon)
    if hasattr(macro, "generate") and hasattr(macro, "config"):  # a MacroVAE instance
        return _vae_paths(labels, horizon, seed, device, model=macro)
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


def _vae_paths(labels: np.ndarray, horizon: int, seed: int, device: str, model: Any = None) -> np.ndarray:
    if model is None:
        from creditsim.models.macro_vae import MacroVAE

        model = MacroVAE.from_pretrained(device=device)
    order = list(model.config.variables)
    perm = [order.index(v) for v in MACRO_VARS]
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        sub_seed = int(stream(seed, STREAM_MACRO, int(s)).generate_state(1)[0])
        paths = model.generate(int(s), seq_length=horizon, n_samples=idx.size, seed=sub_seed)
        out[idx] = paths.detach().cpu().double().numpy()[:, :, perm]
    return out


def _synthetic_paths(labels: np.ndarray, horizon: int, seed: int) -> np.ndarray:
    from creditsim.data.synthetic import MacroScenarioGenerator

    gen = MacroScenarioGenerator(n_months=horizon)
    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        sub_seed = int(stream(seed, STREAM_MACRO, int(s)).generate_state(1)[0])
        out[idx] = _as_path_array(gen.generate_scenario(int(s), n_paths=idx.size, seed=sub_seed), idx.size, horizon)
    return out


def _as_path_array(paths: Any, n: int, horizon: int) -> np.ndarray:
    arr = paths.detach().cpu().numpy() if hasattr(paths, "detach") else np.asarray(paths)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (n, horizon, len(MACRO_VARS)):
        raise DataError(f"macro generator returned shape {arr.shape}, expected {(n, horizon, len(MACRO_VARS))}")
    return arr


def _fed_paths(labels: np.ndarray, horizon: int) -> np.ndarray:
    from creditsim.datasets import load_fed_scenarios

    out = np.empty((labels.size, horizon, len(MACRO_VARS)))
    for s in np.unique(labels):
        name = SCENARIOS[int(s)]
        if name not in ("baseline", "severely_adverse"):
            raise ConfigError(f"macro='fed' has only baseline and severely_adverse paths; the scenario mix "
                              f"gives weight to {name!r}")
        frame = load_fed_scenarios(FED_SCENARIO_YEAR, scenario=name, monthly=True)
        out[labels == s] = _extend(frame[list(MACRO_VARS)].to_numpy(np.float64), horizon)
    return out


def _extend(path: np.ndarray, horizon: int) -> np.ndarray:
    """Cut or extend a ``(T, 9)`` path to ``horizon`` months; beyond its end the last month is held
    (supervisory tables stop after 13 quarters; holding the end state is the neutral choice)."""
    if path.shape[0] >= horizon:
        return path[:horizon]
    pad = np.repeat(path[-1:], horizon - path.shape[0], axis=0)
    return np.concatenate([path, pad], axis=0)


def _frame_paths(frame: pd.DataFrame, labels: np.ndarray, horizon: int) -> np.ndarray:
    from creditsim.schema import validate_macro

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
