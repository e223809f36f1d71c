"""``RunConfig``: every setting of a Monte Carlo run in one validated, YAML-loadable object.

:func:`creditsim.simulate` takes ``simulate(loans, deal, config=None, **overrides)``; the keyword
arguments of earlier versions (``n_simulations=..., seed=...``) are overrides of the default config, so
old calls keep working. From the command line: ``creditsim simulate --config run.yaml``, where the file
holds a mapping of the scalar fields below (explicit command-line options override the file)::

    n_simulations: 20000
    scenario_mix: {baseline: 0.5, severely_adverse: 0.5}
    macro: synthetic
    seed: 7
    horizon: 72

Validation happens when a config is built (bad values are one-line :class:`ConfigError` naming the
field), so a run never starts with a setting it would trip over later.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.deal.config import MODES
from creditsim.devices import check_device
from creditsim.errors import ConfigError, check_positive_int
from creditsim.macro.scenarios import (
    MACRO_SOURCES,
    as_narrative,
    is_narrative_source,
    parse_macro_source,
    parse_scenario_mix,
    resolve_macro_start,
    source_weights,
)
from creditsim.macro.vae import MacroVAE
from creditsim.schema import month_start
from creditsim.states import MACRO_VARS, POOL_CF_TYPES
from creditsim.yamlfile import read_yaml

__all__ = [
    "ENGINES",
    "RATING_PD_MODELS",
    "BACKENDS",
    "MAX_HORIZON_MONTHS",
    "MAX_RESULT_BYTES",
    "RunConfig",
    "check_run_size",
    "estimate_result_bytes",
]

ENGINES: tuple[str, ...] = ("markov", "transformer", "trajectory")
#: how rated loans' default hazards come out of the rating chain: one Markov chain on the TTC matrix, or
#: the Markov mixture fitted to the published multi-year default rates (creditsim.ratings.term_structure)
RATING_PD_MODELS: tuple[str, ...] = ("markov", "mixture")
BACKENDS: tuple[str, ...] = ("local", "dask")
#: longest horizon a run may have, months (100 years)
MAX_HORIZON_MONTHS = 1200
#: memory the kept results of a run may take (cash flows, macro paths, per-tranche arrays), bytes
MAX_RESULT_BYTES = 8 * 2**30
# float64 values kept per (scenario, month): pool cash-flow types + macro variables + a generous
# allowance for the per-tranche arrays (interest / principal / balance x up to ~10 tranches)
_VALUES_PER_SIM_MONTH = len(POOL_CF_TYPES) + len(MACRO_VARS) + 40
#: fields that hold Python objects (models, a dask client): settable in code, not in a YAML file
_OBJECT_FIELDS = ("client", "transition_model", "trajectory_model")


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
        raise ConfigError(f"n_simulations (--n-sims) {n_sims} x horizon (--horizon) {horizon}: the results would need "
                          f"about {need / 2**30:,.1f} GiB (limit {MAX_RESULT_BYTES / 2**30:.0f} GiB); lower n_simulations")


def _check_macro(macro: Any) -> None:
    """A macro source :func:`~creditsim.macro.scenarios.build_macro_paths` accepts: a named source, a frame,
    an array, a MacroVAE or the folder of a trained one, a narrative (mapping,
    :class:`~creditsim.macro.narrative.Narrative`, ``.yaml`` file; validated now so a bad anchor is named
    before any work) or the path of a macro file."""
    if is_narrative_source(macro):
        as_narrative(macro)
    elif isinstance(macro, str) and macro.split(":")[0].strip().lower() in MACRO_SOURCES:
        parse_macro_source(macro)
    elif isinstance(macro, (str, os.PathLike)) and Path(macro).is_dir():
        from creditsim.checkpoints import saved_model

        found = saved_model(macro)
        if found != "MacroVAE":
            raise ConfigError(f"macro {os.fspath(macro)}: expected a MacroVAE checkpoint folder (config.json + "
                              f"model.safetensors, as 'creditsim train macro --out DIR' writes), found "
                              f"{found or 'no model'} there")
    elif isinstance(macro, str) and not Path(macro).is_file():
        raise ConfigError(f"macro must be one of {list(MACRO_SOURCES)}, 'fed:YEAR[:SCENARIO]', a macro file or a "
                          f"MacroVAE folder, got {macro!r}")
    elif not isinstance(macro, (str, pd.DataFrame, np.ndarray, MacroVAE, os.PathLike)):
        raise ConfigError(f"macro must be a source name, a DataFrame, an array, a MacroVAE or a narrative "
                          f"{{variable: [{{month, value}}]}}, got {type(macro).__name__}")


def paths_from_file(data: Any, path: str | os.PathLike[str]) -> Any:
    """A run config file's settings with a relative ``macro`` path (a file or a MacroVAE folder, not a
    source name) read from the file's folder, wherever the run starts (never from the working directory);
    ConfigError when nothing is there. Other values are returned as written."""
    macro = data.get("macro") if isinstance(data, Mapping) else None
    if (isinstance(macro, str) and macro.split(":")[0].strip().lower() not in MACRO_SOURCES
            and not Path(macro).is_absolute()):
        beside = Path(path).parent / macro
        if not beside.exists():
            raise ConfigError(f"run config file {path}: macro {macro!r} is not a source name, and {beside} (a path "
                              "is read from the config file's folder) does not exist")
        return {**data, "macro": str(beside)}
    return data


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RunConfig:
    """Settings of one Monte Carlo run (see :func:`creditsim.simulate` for the meaning of each).

    Attributes:
        n_simulations: scenarios S.
        scenario_mix: weights of the scenario types (mapping, ``"a=0.5,b=0.5"`` string, one name or
            None for 0.6 / 0.25 / 0.1 / 0.05).
        macro: ``"vae"``, ``"synthetic"``, ``"fed"``, a macro DataFrame, an array or a MacroVAE.
        engine: ``"markov"``, ``"transformer"`` or ``"trajectory"``.
        seed: master seed of every random draw (int >= 0).
        chunk_size: scenarios per chunk.
        chunk_threads: chunks a local CPU run keeps in flight on threads, one torch thread each. None:
            the caller's torch thread count where the engine's models are creditsim's own (Markov,
            TransitionTransformer, LoanTrajectoryModel), else 1 (a model it does not know may keep state
            between calls); 1: one chunk at a time, the threads working inside it. Each chunk in flight
            holds its own working set (loan tables, ~0.1-0.2 GB at 10k loans x 60 months).
        backend: ``"local"`` or ``"dask"``; client: an existing dask Client (code only).
        progress: show a progress bar.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        horizon: months simulated, T (<= :data:`MAX_HORIZON_MONTHS`).
        cutoff: cut-off date of the tape (None: its latest origination date).
        transition_model, trajectory_model: model objects (code only; None = defaults).
        scale_deal: scale tranche notionals to the tape's pool balance.
        keep_cashflows: keep ``(S, T, k)`` cashflow arrays in the result.
        mode: waterfall mode (``"hard"`` for reported numbers).
        macro_start: start state of generated macro paths (None, ``"scenario"``, mapping or (9,) array).
        rating_pd: rated loans' default hazards: ``"markov"`` (the Z-conditional rating chain) or
            ``"mixture"`` (a mix of faster and slower Z-conditional chains per grade, fitted to the S&P
            1981-2024 cumulative default rates: lower B / CCC and higher AAA lifetime PDs than the chain).
    """

    n_simulations: int = 10_000
    scenario_mix: Any = None
    macro: Any = "vae"
    engine: str = "markov"
    seed: int = 0
    chunk_size: int = 500
    chunk_threads: int | None = None
    backend: str = "local"
    client: Any = field(default=None, repr=False)
    progress: bool = True
    device: str = "cpu"
    horizon: int = 60
    cutoff: Any = None
    transition_model: Any = field(default=None, repr=False)
    trajectory_model: Any = field(default=None, repr=False)
    scale_deal: bool = True
    keep_cashflows: bool = True
    mode: str = "hard"
    macro_start: Any = None
    rating_pd: str = "markov"

    def __post_init__(self) -> None:
        checked = {
            "n_simulations": check_positive_int(self.n_simulations, "n_simulations"),
            "chunk_size": check_positive_int(self.chunk_size, "chunk_size"),
            "chunk_threads": None if self.chunk_threads is None else check_positive_int(self.chunk_threads,
                                                                                        "chunk_threads"),
            "horizon": check_positive_int(self.horizon, "horizon"),
            "seed": check_positive_int(self.seed, "seed", minimum=0),
        }
        check_run_size(checked["n_simulations"], checked["horizon"])
        checked["engine"] = _check_choice(self.engine, "engine", ENGINES)
        checked["device"] = check_device(self.device)
        parse_scenario_mix(self.scenario_mix)  # validates; the run parses it again into weights
        checked["progress"] = _check_bool(self.progress, "progress")
        checked["backend"] = _check_choice(self.backend, "backend", BACKENDS)
        checked["mode"] = _check_choice(self.mode, "mode", MODES)
        checked["rating_pd"] = _check_choice(self.rating_pd, "rating_pd", RATING_PD_MODELS)
        checked["scale_deal"] = _check_bool(self.scale_deal, "scale_deal")
        checked["keep_cashflows"] = _check_bool(self.keep_cashflows, "keep_cashflows")
        _check_macro(self.macro)
        source_weights(self.macro, self.scenario_mix)  # a mix the source cannot take (forecast) fails now
        if self.cutoff is not None:
            month_start(self.cutoff, "cutoff")  # the library's one date parser: a bad date is a ConfigError
        if self.macro_start is not None:
            resolve_macro_start(self.macro_start)  # names a bad month, shape or variable now, not mid-run
        for name, value in checked.items():  # normalised values (numpy ints -> int, "CUDA" -> "cuda")
            object.__setattr__(self, name, value)

    @property
    def weights(self) -> np.ndarray:
        """``(4,)`` weights of the scenario labels in SCENARIOS order: the ``scenario_mix``, or the one
        scenario of a ``"fed:YEAR:SCENARIO"`` source (:func:`~creditsim.macro.scenarios.source_weights`)."""
        return source_weights(self.macro, self.scenario_mix)

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with ``overrides`` applied (and validated); an unknown name is a ConfigError."""
        unknown = sorted(set(overrides) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown run setting(s) {unknown}; allowed: {sorted(f.name for f in fields(self))}")
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "run config") -> RunConfig:
        """Build from a mapping of scalar settings (a YAML file's content)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of run settings, got {type(data).__name__}")
        allowed = sorted(f.name for f in fields(cls) if f.name not in _OBJECT_FIELDS)
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {unknown}; allowed: {allowed}")
        try:
            return cls(**dict(data))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a run configuration file (a YAML mapping of the scalar settings, at most 64 KiB)."""
        data = read_yaml(path, what="run config file", max_bytes=1 << 16, max_depth=3,
                         layout="a mapping of run settings")
        return cls.from_dict(paths_from_file({} if data is None else data, path), where=f"run config file {path}")

    def to_dict(self) -> dict[str, Any]:
        """The settings that describe the run, JSON-friendly (objects by their class name)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OBJECT_FIELDS:
                continue
            out[f.name] = value if value is None or isinstance(value, (str, int, float, bool, dict)) else type(value).__name__
        return out
