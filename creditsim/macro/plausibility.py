"""The range a generated economy may visit: history's range, with a soft edge beyond it.

Why: the anchored scenario paths (:mod:`creditsim.macro.anchors`) add a scaled supervisory shock and the
VAE's own variation to today's state, and both have tails that history does not vouch for. Measured on
the shipped model from 2025-09 (1,000 paths per scenario, seed 11), before this module: the 99th
percentile of the severely adverse unemployment peak was 23.8 % and its worst path 43 %; the adverse HY
spread peaked above 42.6 % in 1 % of paths and one severely adverse path reached 100.5 %; 10 % of
*baseline* paths had the HY spread below 25 bp at some month and 1 % at 0. Such paths are not stress, they
are the additive noise of a level model running off its data -- and a tail risk number (VaR 99, CVaR 99)
is read exactly from them.

Method (decision): each variable keeps its value inside history's range (the bundled monthly history,
1980 on, COVID months *included*: they happened) and is compressed smoothly beyond it, towards a hard
edge it never passes:

    y = k + w tanh((x - k) / w)      for x beyond the knee k (history's max; mirrored at the min),

with ``w`` the width of the margin beyond the knee: identity inside history's range, slope 1 at the
knee (no kink, and no wall at the knee: a path a little past history moves as it would without the
band), and at most ``w`` past it (equal only where ``tanh`` rounds to 1, far out). Margins:

* ratio-scale variables (unemployment, IG and HY spreads, the default rate: positive, their spread
  grows with their level): the edges are history's min / (1 + m) and max * (1 + m), :data:`MARGIN` m.
* growth and inflation rates: history's min / max widened by m times history's range.
* the policy rate and the 10-year yield: only the upper edge; below they keep the floors of
  :data:`~creditsim.macro.vae.LOWER_BOUNDS` (zero is history's own lower bound for them).

With m = 0.25 the edges are (from the 2025-09 history) unemployment 2.7-18.5 %, HY 1.2-25.4 %, IG
0.24-8.0 %, GDP growth -12.4 to +17.3 % y/y, house prices -21 to +29 % y/y. In paths with anchors
(``fed:``, narratives) only the variables nobody anchored are bounded (from month 1): an anchor is the
user's to set and is met exactly, even beyond history. This is a guard on the tails, not a model of them:
where much of a scenario's mass runs past the edge it piles up there. With the MacroVAE in levels, fed
2026 severely adverse (1,000 paths from 2025-09) had the unanchored HY spread fall after its peak faster
than the table's own (median 2.6 % at month 36 against 3.3 %) and a third of the paths within 1 bp of
the 1.2 % edge at some month; with the spreads modelled in logs (2026-12, :mod:`creditsim.macro.vae`) the
median is 5.1 %, the 5th percentile 2.9 %, and no path comes near the edge.

A start outside history (``macro_start``, a month-0 condition) is the user's: the band is widened per
path to hold it (:meth:`PlausibleBand.around_start`), so month 1 is never pulled in from it. The band is
the US economy's of the bundled data, also for a MacroVAE the user trained on other data: it says where
these nine US series have been, not where a model was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.states import MACRO_VARS

__all__ = ["MARGIN", "RATIO_VARIABLES", "UPPER_ONLY", "HISTORY_RANGE", "PlausibleBand", "plausible_band", "band_from_range",
           "history_band", "saturate", "bound_from_month_1", "beyond_history"]

#: how far past history's range a path may go (module docstring)
MARGIN = 0.25
#: positive variables whose edges widen multiplicatively
RATIO_VARIABLES: tuple[str, ...] = ("unemployment_rate", "credit_spread_ig", "credit_spread_hy", "default_rate")
#: variables bounded above only (below: the floors of LOWER_BOUNDS)
UPPER_ONLY: tuple[str, ...] = ("policy_rate", "yield_10y")


#: history's range per variable (min, max; decimals): the bundled monthly history 1980-01 .. 2025-09
#: (``load_macro_history()``, every month, COVID included). Kept here as numbers, like the MacroVAE
#: checkpoint's training range, because the history itself needs the restricted FRED-MD file that a user
#: fetches (``creditsim data fetch``) and a run must not; a test checks them against the history.
HISTORY_RANGE: dict[str, tuple[float, float]] = {
    "gdp_growth": (-0.0739861495878491, 0.12385669309432568),
    "unemployment_rate": (0.034, 0.14800000000000002),
    "inflation_rate": (-0.01958761003762277, 0.14592274678111572),
    "policy_rate": (0.0005, 0.191),
    "yield_10y": (0.006236363636363636, 0.15323809523809526),
    "credit_spread_ig": (0.003, 0.06392727272727272),
    "credit_spread_hy": (0.015, 0.20309545454545452),
    "house_price_growth": (-0.12750828954601057, 0.20778300631109925),
    "default_rate": (0.011899999999999999, 0.0794351440793949),
}


@dataclass(frozen=True)
class PlausibleBand:
    """Per variable (MACRO_VARS order, (9,) float64 each, decimals): knees ``knee_lo`` / ``knee_hi``
    (history's min / max) and edges ``lo`` / ``hi`` the values approach but never pass (``-inf`` where a
    variable is not bounded below)."""

    knee_lo: np.ndarray
    knee_hi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def around_start(self, start: np.ndarray) -> PlausibleBand:
        """The band widened, per path, to hold ``start`` (``(n, 9)`` month-0 values): a knee moves out to a
        start beyond it and its edge moves with it, so that a state the user chose (a month-0 condition,
        a ``start`` outside history) is never pulled in at month 1. Knees of shape ``(n, 1, 9)``, ready to
        broadcast over ``(n, T, 9)`` paths."""
        x0 = np.asarray(start, dtype=np.float64)[:, None, :]
        knee_hi = np.maximum(self.knee_hi, x0)
        knee_lo = np.where(np.isfinite(self.lo), np.minimum(self.knee_lo, x0), self.knee_lo)
        return PlausibleBand(knee_lo, knee_hi, knee_lo - (self.knee_lo - self.lo), knee_hi + (self.hi - self.knee_hi))

    def frame(self) -> pd.DataFrame:
        """The band as a table: rows MACRO_VARS, columns ``lo, knee_lo, knee_hi, hi``."""
        return pd.DataFrame({"lo": self.lo, "knee_lo": self.knee_lo, "knee_hi": self.knee_hi, "hi": self.hi},
                            index=pd.Index(MACRO_VARS, name="variable"))


def plausible_band(history: pd.DataFrame, margin: float = MARGIN) -> PlausibleBand:
    """The band of ``history`` (monthly, the 9 MACRO_VARS, decimals) with ``margin`` (module docstring)."""
    if not isinstance(history, pd.DataFrame):
        raise ConfigError(f"history: expected a DataFrame with the columns {list(MACRO_VARS)}, got {type(history).__name__}")
    missing = [v for v in MACRO_VARS if v not in history.columns]
    if missing:
        raise DataError(f"history: missing the macro variables {missing}")
    frame = history[list(MACRO_VARS)].apply(pd.to_numeric, errors="coerce")
    text = [v for v in MACRO_VARS if (frame[v].isna() & history[v].notna()).any()]
    if text:
        raise DataError(f"history: {text} must be numbers (decimals, 0.045 for 4.5 %); found text such as "
                        f"{history[text[0]][frame[text[0]].isna() & history[text[0]].notna()].iloc[0]!r}")
    values = frame.to_numpy(np.float64)
    bad = [v for j, v in enumerate(MACRO_VARS) if np.isnan(values[:, j]).all() or np.isinf(values[:, j]).any()]
    if bad:
        raise DataError(f"history: {bad} have no observations or hold infinite values; every variable needs finite ones")
    return band_from_range(np.nanmin(values, axis=0), np.nanmax(values, axis=0), margin)


def band_from_range(knee_lo: np.ndarray, knee_hi: np.ndarray, margin: float = MARGIN) -> PlausibleBand:
    """The band whose knees are ``knee_lo`` / ``knee_hi`` ((9,) each, MACRO_VARS order, decimals)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin <= 2:
        raise ConfigError(f"margin must be in (0, 2], got {margin!r}")
    knee_lo, knee_hi = np.asarray(knee_lo, np.float64).copy(), np.asarray(knee_hi, np.float64).copy()
    if (knee_hi <= knee_lo).any():
        bad = [v for v, a, b in zip(MACRO_VARS, knee_lo, knee_hi) if b <= a]
        raise DataError(f"history: {bad} never move; a band needs a range")
    width = knee_hi - knee_lo
    lo, hi = knee_lo - margin * width, knee_hi + margin * width
    for j, name in enumerate(MACRO_VARS):
        if name in RATIO_VARIABLES:
            if knee_lo[j] <= 0:
                raise DataError(f"history: {name} has a minimum of {knee_lo[j]:.4g}; expected a positive rate")
            lo[j], hi[j] = knee_lo[j] / (1 + margin), knee_hi[j] * (1 + margin)
        elif name in UPPER_ONLY:
            lo[j] = -np.inf
    return PlausibleBand(knee_lo, knee_hi, lo, hi)


@lru_cache(maxsize=1)
def history_band() -> PlausibleBand:
    """The band of the bundled macro history (:data:`HISTORY_RANGE`, every month, COVID included) with
    :data:`MARGIN`."""
    lo, hi = zip(*(HISTORY_RANGE[v] for v in MACRO_VARS))
    return band_from_range(np.array(lo), np.array(hi))


def saturate(paths: np.ndarray, band: PlausibleBand) -> np.ndarray:
    """``paths`` ``(..., 9)`` (MACRO_VARS order, decimals) compressed beyond the band's knees, a new array
    (the band's arrays broadcast against ``paths``: ``(9,)``, or per path from :meth:`PlausibleBand.around_start`).

    Inside ``[knee_lo, knee_hi]`` values are unchanged; beyond, ``k + w tanh((x - k) / w)`` with ``w`` the
    distance from the knee to its edge (continuous with slope 1 at the knee, never past the edge,
    non-decreasing: the order of paths is kept)."""
    x = np.asarray(paths, dtype=np.float64)
    if x.shape[-1:] != (len(MACRO_VARS),):
        raise ConfigError(f"paths: expected (..., {len(MACRO_VARS)}), got {x.shape}")
    w_hi = band.hi - band.knee_hi
    out = np.where(x > band.knee_hi, band.knee_hi + w_hi * np.tanh((x - band.knee_hi) / w_hi), x)
    bounded = np.isfinite(band.lo)
    w_lo = np.where(bounded, band.knee_lo - band.lo, 1.0)
    below = (x < band.knee_lo) & bounded
    return np.where(below, band.knee_lo - w_lo * np.tanh((band.knee_lo - x) / w_lo), out)


def bound_from_month_1(paths: np.ndarray, band: PlausibleBand) -> np.ndarray:
    """``paths`` ``(n, T, 9)`` in ``band`` from month 1 on, the band widened per path to hold its month 0
    (:meth:`PlausibleBand.around_start`): a start the user chose, even outside history, stays exactly as
    given and is not pulled in at month 1. A new float64 array; month 0 is left as it is."""
    out = np.array(paths, dtype=np.float64, copy=True)
    if out.shape[1] > 1:
        out[:, 1:] = saturate(out[:, 1:], band.around_start(out[:, 0]))
    return out


def beyond_history(paths: np.ndarray, band: PlausibleBand) -> dict[str, object]:
    """How much of ``paths`` ``(S, T, 9)`` (MACRO_VARS order, decimals) leaves history's range at some
    month, by side: ``{"above": share of paths with any variable past its upper knee, "below": the same
    under a lower knee, "above_by_variable": {variable: share}, "below_by_variable": {...}}`` (variables
    with a zero share left out; shares rounded to 4 decimals). Only the sides the band bounds count: a
    policy rate at its zero floor is not "beyond history". What a run records
    (``settings["macro_beyond_history"]``): how much of the scenarios -- the tail a VaR 99 is read from
    above all -- lies where history cannot vouch for the model. (The demo's 1,000 paths over 60 months,
    2026-12: 5 % above at some month -- the spreads (3.2-3.6 %), the default rate (2 %); 73 % below: the
    default rate 44 % (the supervisory baseline's derived default rate the scenarios are centred on ends
    at 1.22 %, 3 bp over history's 1.19 % low; 53 % when it ended at 0.99 %, :mod:`creditsim.datasets.fed`),
    unemployment 37 % (from today's 4.4 %, history's low is 3.4 %), the HY / IG spreads 20 / 15 %. With
    the spreads still in levels: 8 % above, 85 % below.)"""
    x = np.asarray(paths, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != len(MACRO_VARS):
        raise ConfigError(f"paths: expected (S, T, {len(MACRO_VARS)}), got {x.shape}")
    out: dict[str, object] = {}
    for side, outside in (("above", x > band.knee_hi), ("below", (x < band.knee_lo) & np.isfinite(band.lo))):
        per_path = outside.any(axis=1)  # (S, 9)
        out[side] = round(float(per_path.any(axis=1).mean()), 4)
        out[f"{side}_by_variable"] = {v: round(float(sh), 4) for v, sh in zip(MACRO_VARS, per_path.mean(axis=0)) if sh > 0}
    return out
