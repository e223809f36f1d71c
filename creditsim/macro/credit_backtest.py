"""Rolling-origin out-of-time check of the credit link against its no-macro baseline.

One origin says little (the link's single check from 2007Q4 is one recession); this runs the check from
every quarter of a window: at origin ``o`` the link is refitted on quarters up to ``o`` (drivers and sign
restrictions as given), then run forward ``horizon`` quarters on the *realised* macro from the realised
rate at ``o`` (a conditional forecast: the macro path is known, as in a stress test); beside it the
no-macro baseline, the same partial adjustment without drivers (the rate drifts to its sample mean).
Scored by the RMSE of the rate (fractions) over the horizon, per origin.

Uncertainty: neighbouring origins share most of their realised quarters, so their RMSE differences are
strongly correlated; the interval of the mean difference is a moving-block bootstrap over origins
(Kunsch 1989, Ann. Statist. 17(3)) with blocks of ``horizon`` origins, the span over which two origins'
forecast windows overlap, percentile interval.

Measured (``bench/bench_credit_link.py``, origins 1995Q4-2017Q4 every quarter, 8 quarters ahead, bank
delinquency by loan type, RMSE link minus no-macro, 95 % interval) -- quoted in the bench's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from creditsim.errors import ConfigError, DataError
from creditsim.macro.credit_link import LINK_VARIABLES, fit_credit_link, no_macro_fit, quarterly_frame
from creditsim.rng import numpy_generator

__all__ = ["rolling_backtest", "compare_to_baseline", "asset_class_backtest", "DEFAULT_ORIGINS"]

#: origins of the shipped check: every quarter from 1995Q4 to 2017Q4 (8 quarters ahead stays before 2020)
DEFAULT_ORIGINS: tuple[str, ...] = tuple(f"{y}-{m:02d}" for y in range(1995, 2018) for m in (1, 4, 7, 10)
                                         if (y, m) >= (1995, 10))

#: rng key of the bootstrap (a constant of this module: not a simulation stream)
_BOOTSTRAP_KEY = 0x0CB7


def rolling_backtest(rate: pd.Series, macro: pd.DataFrame, origins: Sequence[str | pd.Timestamp],
                     horizon: int = 8, variables: Sequence[str] = LINK_VARIABLES,
                     signs: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Per origin: ``origin``, ``quarters`` scored (``horizon`` unless the data end first),
    ``rmse_link``, ``rmse_no_macro`` (fractions), ``drivers`` (the fitted link's, after sign drops; an
    origin where the link cannot be fitted -- persistence at or above 1 on that sample -- has
    ``rmse_link`` NaN and drivers ``"unfit"``).

    rate: quarterly rate (fractions, DatetimeIndex); macro: monthly history (decimals) with the drivers;
    origins: quarter starts ("YYYY-MM"); an origin with no realised quarter after it is skipped."""
    if horizon < 1:
        raise ConfigError(f"horizon must be a positive number of quarters, got {horizon}")
    frame = quarterly_frame(rate, macro, list(variables), None)
    rows = []
    for origin in origins:
        o = pd.Timestamp(origin)
        after = frame.loc[frame.index > o].iloc[:horizon]
        if after.empty:
            continue
        history = frame.loc[:o, "y"]
        a0, phi0 = no_macro_fit(history)
        q0 = float(norm.ppf(history.iloc[-1]))
        err_base = []
        for y in after["y"].to_numpy():
            q0 = a0 + phi0 * q0
            err_base.append(norm.cdf(q0) - y)
        row = {"origin": o, "quarters": len(after), "rmse_link": float("nan"),
               "rmse_no_macro": float(np.sqrt(np.mean(np.square(err_base)))), "drivers": "unfit"}
        rows.append(row)
        try:
            link = fit_credit_link(rate, macro, variables, end=f"{o:%Y-%m}", signs=dict(signs) if signs else None)
        except DataError:  # e.g. persistence >= 1 on this sample: the link cannot be used from here
            continue
        keep = list(link.variables)
        z = (after[keep].to_numpy() - np.array(link.mean)) / np.array(link.sd)
        q = float(norm.ppf(history.iloc[-1]))
        err_link = []
        for shock, y in zip(z, after["y"].to_numpy()):
            q = link.intercept + link.persistence * q + float(np.dot(shock, link.coef))
            err_link.append(norm.cdf(q) - y)
        row.update(rmse_link=float(np.sqrt(np.mean(np.square(err_link)))), drivers=",".join(keep))
    if not rows:
        raise DataError(f"rate {rate.name!r}: no origin has realised quarters after it")
    return pd.DataFrame(rows)


def compare_to_baseline(backtest: pd.DataFrame, block: int = 8, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, float]:
    """Mean RMSE of the link and of the no-macro baseline over origins, their difference (link minus
    baseline: negative = the link is better) with a moving-block bootstrap ``level`` interval
    (``block`` consecutive origins per block), and the share of origins the link wins -- over the origins
    where the link could be fitted (``origins``; ``unfit`` counts the others)."""
    fitted = backtest.dropna(subset=["rmse_link"])
    d = (fitted["rmse_link"] - fitted["rmse_no_macro"]).to_numpy(np.float64)
    n = d.size
    if n < 2:
        raise DataError(f"compare_to_baseline: {n} origin(s); the interval needs at least 2")
    b = int(min(max(block, 1), n))
    rng = numpy_generator(seed, _BOOTSTRAP_KEY)
    starts = rng.integers(0, n - b + 1, size=(n_boot, -(-n // b)))
    idx = (starts[:, :, None] + np.arange(b)).reshape(n_boot, -1)[:, :n]
    means = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return {"rmse_link": float(fitted["rmse_link"].mean()), "rmse_no_macro": float(fitted["rmse_no_macro"].mean()),
            "diff": float(d.mean()), "ci_low": float(np.quantile(means, tail)),
            "ci_high": float(np.quantile(means, 1.0 - tail)), "win_share": float(np.mean(d < 0)), "origins": n,
            "unfit": int(len(backtest) - n)}


def asset_class_backtest(horizon: int = 8, origins: Sequence[str] = DEFAULT_ORIGINS, block: int | None = None,
                         n_boot: int = 2000, seed: int = 0,
                         variables: Sequence[str] | None = None) -> pd.DataFrame:
    """The shipped links' out-of-time check, one row per asset class (ASSET_CLASS_SERIES' bank
    delinquency series; receivables share the business-loan series with corporate and are left out):
    :func:`compare_to_baseline` of :func:`rolling_backtest` with the shipped drivers and sign
    restrictions (``variables`` overrides the drivers), ``block`` defaulting to ``horizon``. Columns:
    ``asset_class``, ``series``, ``rmse_link``, ``rmse_no_macro``, ``diff``, ``ci_low``, ``ci_high``,
    ``win_share``, ``origins``, ``unfit``, ``drivers`` (kept at the last origin)."""
    from creditsim.datasets import load_bank_loss_rates, load_macro_history
    from creditsim.datasets.credit_losses import ASSET_CLASS_SERIES
    from creditsim.macro.credit_link import EXPECTED_SIGNS

    rates = load_bank_loss_rates("delinquency")
    macro = load_macro_history(ragged="keep")
    rows = []
    for cls in ("corporate", "consumer", "real_estate"):
        series = rates[ASSET_CLASS_SERIES[cls]].dropna()
        bt = rolling_backtest(series, macro, origins, horizon, variables or LINK_VARIABLES, EXPECTED_SIGNS)
        c = compare_to_baseline(bt, block=block or horizon, n_boot=n_boot, seed=seed)
        rows.append({"asset_class": cls, "series": ASSET_CLASS_SERIES[cls], **c, "drivers": bt["drivers"].iloc[-1]})
    return pd.DataFrame(rows)
