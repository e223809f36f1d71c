"""Path-dispersion calibration of the MacroVAE, on the history it was trained on.

Why: the decoder's innovation sd is fitted by one-month likelihood, yet its year-ahead paths came out
too narrow out of time -- realised values fell inside the central 90 % band in only 69-79 % of cases at
6-36 months, against 86-91 % for the block bootstrap (:mod:`creditsim.macro.oot`). One-step calibration
does not make multi-step paths calibrated: the latent and the scenario label are drawn once per path
and the learned dynamics mean-revert faster than the data.

Method: ``factor_v`` multiplies the innovation sd of variable ``v`` when generating
(:attr:`MacroVAE.dispersion`; training is untouched). It is chosen on the *training* history only --
so the out-of-time evaluation stays honest -- by simulated in-sample forecasts: from every
``step``-th month of the history (the real state of all nine variables at month 0, as a forecast from
today starts), ``n_paths`` paths ``horizon`` months ahead; for each candidate factor in ``grid``
(applied to every variable at once) the coverage of the realised value by the central ``level`` band
of the paths, per variable; ``factor_v`` is where that coverage reaches ``level``, linear between grid
points (the largest grid value when it never does, 1 when it already does at 1 -- never below 1: an
in-sample check cannot justify *narrower* bands than the likelihood's). In-sample origins flatter the
model (it has seen those months), so the factors are if anything too small. Origins whose forecast
months overlap the COVID months (2020-03 .. 2020-12) are skipped, the decision every generator's
estimation follows (:mod:`creditsim.macro.train`): with the history to 2025-09 only the 2020-01 origin.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.macro.train import COVID_MONTHS, overlaps_months
from creditsim.rng import MACRO, int_seed

__all__ = ["calibrate_dispersion", "calibration_origins", "DISPERSION_GRID", "DISPERSION_KEY"]

#: candidate factors (applied to every variable at once)
DISPERSION_GRID: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 2.5)
#: rng key of the calibration's forecasts: (MACRO, DISPERSION_KEY, grid index, origin month number)
DISPERSION_KEY = 0xD15


def calibrate_dispersion(model, history: pd.DataFrame, *, horizon: int = 12, step: int = 12, n_paths: int = 200,
                         grid: Sequence[float] = DISPERSION_GRID, level: float = 0.9, seed: int = 0,
                         warmup: int = 24, exclude: tuple[str, str] | None = COVID_MONTHS) -> np.ndarray:
    """``(D,)`` dispersion factors for ``model`` in ``model.config.variables`` order (module docstring).

    history: the monthly training history (real units, decimals) with the model's variables; origins are
    every ``step``-th month from ``warmup`` months in to ``horizon`` months before its end, except those
    whose ``horizon + 1`` months overlap ``exclude`` (default the COVID months, left out of every
    generator's estimation: :mod:`creditsim.macro.train`; None keeps all). The model's own dispersion is
    restored before returning; set the result with :meth:`MacroVAE.set_dispersion`.
    """
    variables = list(model.config.variables)
    missing = [v for v in variables if v not in history.columns]
    if missing:
        raise DataError(f"history: missing the model's variables {missing}")
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}")
    grid = sorted(float(g) for g in grid)
    if not grid or grid[0] < 1.0:
        raise ConfigError(f"grid: expected factors >= 1, got {grid!r}")
    frame = history[variables].dropna()
    rows = calibration_origins(frame.index, horizon=horizon, step=step, warmup=warmup, exclude=exclude)
    if len(rows) < 5:
        raise DataError(f"history: {len(frame)} months give {len(rows)} calibration origins; at least 5 needed")
    values = frame.to_numpy(np.float64)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    coverage = np.zeros((len(grid), len(variables)))
    saved = model.dispersion.clone()
    try:
        for k, factor in enumerate(grid):
            model.set_dispersion(np.full(len(variables), factor))
            inside = np.zeros(len(variables))
            for r in rows:
                cond = {v: {"month": 0, "value": float(values[r, j])} for j, v in enumerate(variables)}
                month = frame.index[r]
                paths = model.generate_conditional(cond, seq_length=horizon + 1, n_samples=n_paths, scenario=None,
                                                   start="model",
                                                   seed=int_seed(seed, MACRO, DISPERSION_KEY, k, 12 * month.year + month.month))
                end = paths[:, horizon].detach().cpu().double().numpy()  # (n_paths, D)
                band = np.quantile(end, [lo_q, hi_q], axis=0)
                inside += (band[0] <= values[r + horizon]) & (values[r + horizon] <= band[1])
            coverage[k] = inside / len(rows)
    finally:
        model.dispersion = saved
    return _crossing(np.asarray(grid), coverage, level)


def calibration_origins(months: pd.DatetimeIndex, *, horizon: int = 12, step: int = 12, warmup: int = 24,
                        exclude: tuple[str, str] | None = COVID_MONTHS) -> np.ndarray:
    """Row positions of the calibration origins in ``months`` (see :func:`calibrate_dispersion`)."""
    rows = np.arange(warmup, len(months) - horizon, step)
    return rows[~overlaps_months(pd.DatetimeIndex(months)[rows], horizon + 1, exclude)]


def _crossing(grid: np.ndarray, coverage: np.ndarray, level: float) -> np.ndarray:
    """Per column of ``coverage`` (grid x D): the factor where coverage first reaches ``level``, linear
    between grid points; the first grid value when it starts there, the last when it never does."""
    out = np.full(coverage.shape[1], grid[-1])
    for j in range(coverage.shape[1]):
        c = np.maximum.accumulate(coverage[:, j])  # monotone in the factor up to sampling noise
        hit = np.flatnonzero(c >= level)
        if not hit.size:
            continue
        k = int(hit[0])
        if k == 0:
            out[j] = grid[0]
        else:
            frac = (level - c[k - 1]) / max(c[k] - c[k - 1], 1e-12)
            out[j] = grid[k - 1] + frac * (grid[k] - grid[k - 1])
    return out
