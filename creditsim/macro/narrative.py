"""Narrative macro scenarios: a few anchors a risk team writes down, the MacroVAE fills in the rest.

A narrative is a mapping ``{variable: [{month: int, value: float}, ...]}`` -- e.g. "unemployment 9 %
at month 18, policy rate 6 % at month 12"::

    scenario: severely_adverse      # optional: the VAE dynamics label; omitted = the anchors pick it
    unemployment_rate:
      - {month: 18, value: 0.09}
    policy_rate:
      - {month: 12, value: 0.06}

given as a Python dict or a YAML file (``.yaml`` / ``.yml``, read with the hardened
:func:`creditsim.yamlfile.read_yaml`). Paths (:func:`creditsim.macro.scenarios.build_macro_paths`) start
from the run's start state (all nine variables observed at month 0) and meet every anchor exactly; the
months between anchors and the variables nobody anchored are the model's conditional distribution
given the anchors, so a rise in unemployment comes with the spreads, defaults and rates that usually
go with it (coherence).

Rules (each a one-line :class:`~creditsim.errors.ConfigError` naming the variable and entry index):

- variables are the nine :data:`~creditsim.states.MACRO_VARS`; the only other top-level key is
  ``scenario`` (a scenario name or index), anything else is refused by name;
- an entry has exactly the keys ``month`` and ``value``; months are integers, 0-based positions in the
  path, ``0 <= month <= horizon - 1`` (month 0 replaces the start state for that variable; the horizon
  is checked when paths are built, :meth:`Narrative.check_horizon`);
- values are finite decimals (0.09 = 9 %); a value with ``|value| >= 1`` is refused as a percent typed
  by mistake (no macro variable reaches 100 %);
- a month given twice for one variable must carry the same value (it is then kept once);
- values must lie within :data:`PLAUSIBLE_SDS` historical standard deviations beyond the range the
  bundled monthly history has seen (and not below the generator's floors: rates, spreads, unemployment
  and default rates are >= 0), :func:`plausible_range`. The generator extrapolates badly far outside
  its data (an unemployment anchor of 0.9 used to end in a matrix-logarithm error deep inside the
  transition model), and a value that far out is almost always a typo or a unit mistake; a deliberately
  extreme story within the bound is allowed (unemployment up to ~17 %, the 2020 peak was 14.8 %).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from functools import lru_cache

from creditsim.errors import ConfigError
from creditsim.states import MACRO_VARS, SCENARIOS, scenario_index
from creditsim.yamlfile import read_yaml, short_repr

__all__ = ["Narrative", "parse_narrative", "read_narrative", "is_narrative_file", "NARRATIVE_SUFFIXES",
           "plausible_range", "PLAUSIBLE_SDS"]

#: file suffixes read as narratives (anything else is a file of paths)
NARRATIVE_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")
#: how many historical standard deviations beyond the historical min / max an anchor may lie
PLAUSIBLE_SDS: float = 4.0


@lru_cache(maxsize=1)
def _plausible_ranges() -> dict[str, tuple[float, float]]:
    from creditsim.datasets import load_macro_history
    from creditsim.macro.vae import LOWER_BOUNDS

    history = load_macro_history()
    out = {}
    for var in MACRO_VARS:
        x = history[var].to_numpy(np.float64)
        sd = float(np.std(x, ddof=1))
        lo = float(x.min()) - PLAUSIBLE_SDS * sd
        out[var] = (max(lo, LOWER_BOUNDS.get(var, -math.inf)), float(x.max()) + PLAUSIBLE_SDS * sd)
    return out


def plausible_range(var: str) -> tuple[float, float]:
    """``(low, high)`` decimals an anchor of ``var`` may take: the bundled monthly history's min / max
    widened by :data:`PLAUSIBLE_SDS` of its standard deviations, low not below the generator's floor."""
    return _plausible_ranges()[var]


@dataclass(frozen=True)
class Narrative:
    """A validated narrative.

    Attributes:
        anchors: ``{variable: ((month, value), ...)}`` in MACRO_VARS order, months ascending; months are
            0-based path positions, values decimals.
        scenario: the VAE dynamics label (a SCENARIOS name), or None to let the anchors pick it.
        source: where it came from (``"narrative"`` or the file path), for messages and labels.
    """

    anchors: dict[str, tuple[tuple[int, float], ...]]
    scenario: str | None = None
    source: str = "narrative"

    def check_horizon(self, horizon: int) -> None:
        """ConfigError naming the variable and entry when an anchor lies beyond month ``horizon - 1``."""
        for var, items in self.anchors.items():
            for i, (month, _) in enumerate(items):
                if month > horizon - 1:
                    raise ConfigError(f"{self.source}: {var}[{i}]: month {month} is beyond the horizon; months are "
                                      f"0-based, so the last is {horizon - 1} for a {horizon}-month horizon")

    def conditions(self, start: np.ndarray | None, horizon: int) -> dict[str, list[dict[str, float | int]]]:
        """Conditions for :meth:`~creditsim.macro.vae.MacroVAE.generate_conditional`: ``start`` ((9,)
        decimals in MACRO_VARS order, or None) at month 0 for every variable the narrative does not
        anchor at month 0 itself, then the anchors. Checks the horizon first."""
        self.check_horizon(horizon)
        out: dict[str, list[dict[str, float | int]]] = {}
        for j, var in enumerate(MACRO_VARS):
            items = [{"month": m, "value": v} for m, v in self.anchors.get(var, ())]
            if start is not None and not any(m == 0 for m, _ in self.anchors.get(var, ())):
                items.insert(0, {"month": 0, "value": float(start[j])})
            if items:
                out[var] = items
        return out


def is_narrative_file(source: Any) -> bool:
    """True for a ``str`` / PathLike ending in ``.yaml`` / ``.yml`` (existing or not: a missing file is
    then reported as a missing narrative file, not as an unknown source name)."""
    return isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(NARRATIVE_SUFFIXES)


def read_narrative(path: str | os.PathLike[str]) -> Narrative:
    """Read and validate a narrative YAML file (see the module docstring)."""
    data = read_yaml(path, "narrative file", max_depth=4, layout="a mapping {variable: [{month, value}, ...]}")
    return parse_narrative(data, source=f"narrative file {Path(path)}")


def parse_narrative(spec: Any, source: str = "narrative") -> Narrative:
    """Validate a narrative mapping ``{variable: [{month, value}, ...], scenario: name?}``.

    Returns:
        :class:`Narrative` (anchors sorted by month, duplicates with equal values kept once).

    Raises:
        ConfigError: one line naming the variable and entry index (module docstring rules).
    """
    if isinstance(spec, Narrative):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: expected a mapping {{variable: [{{month, value}}, ...]}}, "
                          f"got {type(spec).__name__}")
    unknown = [k for k in spec if k != "scenario" and k not in MACRO_VARS]
    if unknown:
        raise ConfigError(f"{source}: unknown variable(s) [{', '.join(short_repr(k) for k in unknown)}]; expected "
                          f"'scenario' or variables of {list(MACRO_VARS)}")
    scenario = _scenario(spec.get("scenario"), source)
    anchors = {var: _entries(spec[var], var, source) for var in MACRO_VARS if var in spec}
    if not any(anchors.values()):
        raise ConfigError(f"{source}: no anchors; give at least one variable with [{{month, value}}, ...]")
    return Narrative({k: v for k, v in anchors.items() if v}, scenario, source)


def _scenario(value: Any, source: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        raise ConfigError(f"{source}: scenario must be one of {list(SCENARIOS)} or omitted, got {short_repr(value)}")
    try:
        return SCENARIOS[scenario_index(value)]
    except (ConfigError, IndexError, KeyError, ValueError):
        raise ConfigError(f"{source}: scenario must be one of {list(SCENARIOS)} or omitted, "
                          f"got {short_repr(value)}") from None


def _entries(spec: Any, var: str, source: str) -> tuple[tuple[int, float], ...]:
    """``((month, value), ...)`` of one variable, sorted by month; ConfigError naming ``var[i]``."""
    items = [spec] if isinstance(spec, Mapping) else spec
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)) or not items:
        raise ConfigError(f"{source}: {var} must be a non-empty list of {{month, value}} entries, "
                          f"got {short_repr(spec)}")
    seen: dict[int, float] = {}
    for i, item in enumerate(items):
        where = f"{source}: {var}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected {{month: int, value: float}}, got {short_repr(item)}")
        missing = [k for k in ("month", "value") if k not in item]
        extra = ", ".join(short_repr(k) for k in item if k not in ("month", "value"))
        if missing or extra:
            raise ConfigError(f"{where}: an entry has exactly the keys 'month' and 'value'"
                              + (f"; missing {missing}" if missing else "") + (f"; unknown [{extra}]" if extra else ""))
        month, value = _month(item["month"], where), _value(item["value"], var, where)
        if month in seen and seen[month] != value:
            raise ConfigError(f"{where}: month {month} given twice with different values "
                              f"({seen[month]:g} and {value:g})")
        seen[month] = value
    return tuple(sorted(seen.items()))


def _month(month: Any, where: str) -> int:
    if isinstance(month, bool) or not isinstance(month, (int, np.integer)) or int(month) < 0:
        raise ConfigError(f"{where}: month must be an integer >= 0 (0-based position in the path), "
                          f"got {short_repr(month)}")
    return int(month)


def _value(value: Any, var: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{where}: value must be a number (a decimal, 0.09 = 9 %), got {short_repr(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise ConfigError(f"{where}: value must be finite, got {short_repr(value)}")
    if abs(x) >= 1.0:
        raise ConfigError(f"{where}: {var} = {x:g} looks like a percent; values are decimals "
                          f"(0.09 = 9 %), so write {x / 100:g} for {x:g} %")
    lo, hi = plausible_range(var)
    if not lo <= x <= hi:
        raise ConfigError(f"{where}: {var} = {x:g} is outside the plausible range [{lo:.4g}, {hi:.4g}] (the "
                          f"history's range widened by {PLAUSIBLE_SDS:g} standard deviations); values are "
                          f"decimals (0.09 = 9 %)")
    return x
