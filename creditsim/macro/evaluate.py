"""Evaluation of macro scenario generators against history (EVALUATION.md 2.1) and fan charts.

A *generator* is anything with ``generate(scenario=None, seq_length=60, n_samples=100, *, seed=None)``
returning ``(n_samples, seq_length, 9)`` paths in real units: :class:`~creditsim.macro.vae.MacroVAE`,
:class:`~creditsim.macro.baselines.VARGenerator`, :class:`~creditsim.macro.baselines.BlockBootstrapGenerator`.

Real windows are all 60-month windows of the history (stride 1) but those overlapping the COVID months
(2020-03 .. 2020-12, left out of estimation: :mod:`creditsim.macro.train`). Distances are computed on variables
standardised with the history's mean / sd; tail statistics in readable units (pp, bp, decimals).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.checkpoints import atomic_write
from creditsim.errors import ConfigError
from creditsim.macro import metrics as M
from creditsim.macro.train import COVID_MONTHS, label_windows, make_windows, overlaps_months
from creditsim.schema import validate_macro
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = [
    "historical_windows", "evaluate_macro", "compare_generators", "scenario_ordering", "dispersion_ratio",
    "HEADLINE_METRICS", "fan_charts", "scenario_diversity",
]

TAIL_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)
#: rows printed by ``creditsim eval macro`` (the full tidy frame has more)
HEADLINE_METRICS: tuple[str, ...] = (
    "w1_mean", "w1_diff_mean", "acf_err", "acf_err_diff", "acf_err_sqdiff", "corr_err", "lead_lag_err",
    "mmd2", "energy", "disc_score", "peak_unemployment_rise_pp_q95", "peak_unemployment_rise_pp_q50",
    "peak_hy_spread_bp_q95", "hy_spread_widening_bp_q95", "max_hpi_drawdown_q95", "min_cum_gdp_growth_q05",
    "peak_default_rate_q95", "tail_w1_unemployment_rise", "tail_w1_hy_peak",
)


def historical_windows(history: pd.DataFrame, seq_length: int = 60,
                       exclude: tuple[str, str] | None = COVID_MONTHS) -> np.ndarray:
    """The ``seq_length``-month windows of the history, (N, T, 9) float64 real units, in time order,
    without those overlapping ``exclude`` (default the COVID months, left out of every generator's
    estimation, :mod:`creditsim.macro.train`): the reference is the history the generators learn from.
    ``exclude=None``: all windows."""
    windows, starts = make_windows(history, seq_length)
    return windows[~overlaps_months(starts, seq_length, exclude)]


def _tail_rows(paths: np.ndarray) -> dict[str, float]:
    stats = M.tail_statistics(paths)
    out = {f"{col}_q{round(q * 100):02d}": float(stats[col].quantile(q)) for col in stats for q in TAIL_QUANTILES}
    return out


def _distance_rows(real: np.ndarray, gen: np.ndarray, mean: np.ndarray, std: np.ndarray, seed: int,
                   mmd_max: int = 500) -> dict[str, float]:
    rz, gz = (real - mean) / std, (gen - mean) / std
    w1, w1d = M.marginal_w1(rz, gz), M.marginal_w1(rz, gz, diff=True)
    rs, gs = M.tail_statistics(real), M.tail_statistics(gen)
    from scipy.stats import wasserstein_distance

    gsub = gz[:mmd_max]
    return {
        "w1_mean": float(w1.mean()), "w1_max": float(w1.max()), "w1_diff_mean": float(w1d.mean()),
        "acf_err": M.acf_error(rz, gz), "acf_err_diff": M.acf_error(rz, gz, transform="diff"),
        "acf_err_sqdiff": M.acf_error(rz, gz, transform="sqdiff"),
        "corr_err": M.correlation_error(rz, gz), "lead_lag_err": M.lead_lag_error(rz, gz),
        "mmd2": M.mmd2_unbiased(rz, gsub)[0], "energy": M.energy_distance(rz, gsub),
        "disc_score": M.discriminative_score(rz, gz, seed=seed),
        "tail_w1_unemployment_rise": float(wasserstein_distance(rs["peak_unemployment_rise_pp"], gs["peak_unemployment_rise_pp"])),
        "tail_w1_hy_peak": float(wasserstein_distance(rs["peak_hy_spread_bp"], gs["peak_hy_spread_bp"])),
    }


def evaluate_macro(generator, history: pd.DataFrame, *, n_samples: int = 1000, seeds: Sequence[int] = (0, 1, 2, 3, 4),
                   seq_length: int = 60, scenario: int | str | None = None, name: str | None = None) -> pd.DataFrame:
    """Score one generator against the historical windows.

    Returns a tidy DataFrame with columns ``generator, metric, mean, sd`` (mean and sd over ``seeds``):
    marginal W1 (levels, Δ), ACF errors (levels, Δ, Δ²), correlation and lead-lag errors, MMD², energy
    distance, discriminative score, 5/50/95 % quantiles of the tail statistics and their W1 to history.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 10:
        raise ConfigError(f"n_samples must be an integer >= 10, got {n_samples!r}")
    if not seeds:
        raise ConfigError("seeds must name at least one seed")
    frame = validate_macro(history)
    real = historical_windows(frame, seq_length)
    mean, std = frame.to_numpy().mean(0), frame.to_numpy().std(0)
    rows = []
    for seed in seeds:
        gen = M.as_paths(generator.generate(scenario=scenario, seq_length=seq_length, n_samples=n_samples, seed=seed),
                         "generated paths")
        rows.append({**_distance_rows(real, gen, mean, std, seed), **_tail_rows(gen)})
    table = pd.DataFrame(rows)
    label = name or getattr(generator, "name", type(generator).__name__)
    return pd.DataFrame({"generator": label, "metric": table.columns, "mean": table.mean().to_numpy(),
                         "sd": table.std(ddof=1).fillna(0.0).to_numpy() if len(seeds) > 1 else 0.0})


def _history_rows(history: pd.DataFrame, seq_length: int) -> pd.DataFrame:
    """Noise floor for distances (first half of the windows vs all of them) and the real tail statistics."""
    frame = validate_macro(history)
    real = historical_windows(frame, seq_length)
    mean, std = frame.to_numpy().mean(0), frame.to_numpy().std(0)
    first_half = real[: len(real) // 2]
    vals = {**_distance_rows(real, first_half, mean, std, 0), **_tail_rows(real)}
    return pd.DataFrame({"generator": "history", "metric": list(vals), "mean": list(vals.values()), "sd": 0.0})


def compare_generators(generators: Mapping[str, object], history: pd.DataFrame, *, n_samples: int = 1000,
                       seeds: Sequence[int] = (0, 1, 2, 3, 4), seq_length: int = 60, include_history: bool = True) -> pd.DataFrame:
    """Wide table: one row per metric, columns ``<generator>`` (mean) and ``<generator>_sd``; a
    ``history`` column holds the real tail statistics and the split-half noise floor of the distances."""
    parts = [evaluate_macro(g, history, n_samples=n_samples, seeds=seeds, seq_length=seq_length, name=n)
             for n, g in generators.items()]
    if include_history:
        parts.append(_history_rows(history, seq_length))
    tidy = pd.concat(parts, ignore_index=True)
    wide = tidy.pivot(index="metric", columns="generator", values="mean")
    sd = tidy.pivot(index="metric", columns="generator", values="sd").add_suffix("_sd")
    order = [m for m in tidy["metric"].drop_duplicates()]
    cols = list(dict.fromkeys(tidy["generator"]))
    return pd.concat([wide[cols], sd[[c + "_sd" for c in cols]]], axis=1).loc[order]


def scenario_ordering(generator, *, n_samples: int = 1000, seq_length: int = 60, seed: int = 0) -> pd.DataFrame:
    """Scenario fidelity (EVALUATION.md item 9): per scenario the median tail statistics, and
    P(stat_s > stat_baseline) for the peak unemployment rise and peak HY spread; mean inflation,
    policy rate and GDP growth. Rows: scenarios; columns: statistics."""
    paths = {s: M.as_paths(generator.generate(scenario=i, seq_length=seq_length, n_samples=n_samples, seed=seed + i))
             for i, s in enumerate(SCENARIOS)}
    base = M.tail_statistics(paths["baseline"])
    rows = []
    for s, p in paths.items():
        st = M.tail_statistics(p)
        rows.append({
            "scenario": s,
            "median_peak_unemployment_rise_pp": float(st["peak_unemployment_rise_pp"].median()),
            "p_rise_gt_baseline": M.prob_greater(st["peak_unemployment_rise_pp"], base["peak_unemployment_rise_pp"]),
            "median_peak_hy_spread_bp": float(st["peak_hy_spread_bp"].median()),
            "p_hy_gt_baseline": M.prob_greater(st["peak_hy_spread_bp"], base["peak_hy_spread_bp"]),
            "median_max_hpi_drawdown": float(st["max_hpi_drawdown"].median()),
            "mean_inflation": float(p[:, :, MACRO_VARS.index("inflation_rate")].mean()),
            "mean_policy_rate": float(p[:, :, MACRO_VARS.index("policy_rate")].mean()),
            "mean_gdp_growth": float(p[:, :, MACRO_VARS.index("gdp_growth")].mean()),
        })
    return pd.DataFrame(rows).set_index("scenario")


def dispersion_ratio(generator, history: pd.DataFrame, *, month: int = 36, n_samples: int = 1000,
                     seq_length: int = 60, seed: int = 0) -> pd.DataFrame:
    """Cross-sample sd at ``month`` of each scenario's paths divided by the historical sd of the value
    ``month`` months into a window (over all real windows). Rows: scenarios; columns: variables.
    The acceptance bar of the MacroVAE is >= 0.5 everywhere."""
    real = historical_windows(history, seq_length)
    hist_sd = M.cross_sample_std(real, month)
    rows = {s: M.cross_sample_std(M.as_paths(generator.generate(scenario=i, seq_length=seq_length,
                                                                n_samples=n_samples, seed=seed + i)), month) / hist_sd
            for i, s in enumerate(SCENARIOS)}
    return pd.DataFrame(rows, index=MACRO_VARS).T


def scenario_diversity(paths: Mapping[str, np.ndarray], history: pd.DataFrame, recession: pd.Series | None = None,
                       *, months: int = 36, exclude: tuple[str, str] | None = COVID_MONTHS) -> pd.DataFrame:
    """How much of history's spread each scenario's paths keep: the issue-12 diversity bar, in readings.

    paths: ``{scenario name: (S, T, 9) real-unit paths}`` with ``T > months``, all from one start state;
    history: the monthly macro history; recession: NBER 0/1 by month (None: the Sahm rule stands in), for
    the VAE's own window labels (:func:`creditsim.macro.train.label_windows`, every ``months + 3``-month
    window of ``history`` but those overlapping ``exclude``, as :func:`historical_windows`; None keeps
    all). The paths' ``months``-month change ``x[:, months] - x[:, 0]`` is compared with the same change
    over the historical windows of the same scenario type (sds with ``ddof=1``).

    Returns a frame indexed by ``(reading, scenario)``: one column per variable (sd ratio, paths over
    history); ``total``, the ratio of total dispersion ``sqrt(sum_v var_v / s_v^2)`` of the paths over the
    same of history, with ``s_v`` the change's sd over *all* windows so that variables weigh alike;
    ``total_capped``, the same with each variable's variance capped at history's, so that a variable
    wider than history cannot make up for a narrow one; ``windows`` and ``episodes`` (runs of consecutive
    start months) of the type in history.

    * ``unconditional``: the historical sd as it stands -- the issue's bar (0.6 per variable).
    * ``start_conditional``: history's residual sd after regressing each variable's change on its own
      start value within the type (least squares with intercept, ``n - 2`` degrees of freedom), asking
      how much spread history keeps once the start is known. A diagnostic only: a type can hold one or
      two episodes (from the 2025-09 history, severely adverse is the 2005-08 windows alone, stagflation
      1980-82 and 1988-90), and the regression then nearly fits them (R^2 up to 1.00), so its ratios can be
      very large or unstable.
    """
    for name, v in paths.items():
        if np.ndim(v) != 3 or np.shape(v)[2] != len(MACRO_VARS) or np.shape(v)[1] <= months:
            raise ConfigError(f"paths[{name!r}]: expected (S, T > {months}, {len(MACRO_VARS)}), got {np.shape(v)}")
        if name not in SCENARIOS:
            raise ConfigError(f"paths: unknown scenario {name!r}; expected one of {list(SCENARIOS)}")
    frame = validate_macro(history)[list(MACRO_VARS)]
    windows, starts = make_windows(frame, months + 3)
    labels = label_windows(windows, starts, recession, frame)
    keep = ~overlaps_months(starts, months + 3, exclude)
    windows, labels, starts = windows[keep], labels[keep], starts[keep]
    change = windows[:, months] - windows[:, 0]  # (N, 9)
    scale2 = change.var(0, ddof=1)
    rows, index = [], []
    for name, v in paths.items():
        mine = labels == SCENARIOS.index(name)
        if mine.sum() < 10:
            raise ConfigError(f"history: {int(mine.sum())} windows of type {name!r}; at least 10 are needed")
        x = np.asarray(v, np.float64)
        var = (x[:, months] - x[:, 0]).var(0, ddof=1)
        month_no = starts[mine].year * 12 + starts[mine].month
        episodes = 1 + int((np.diff(month_no) > 1).sum())
        for reading, hist_sd in (("unconditional", change[mine].std(0, ddof=1)),
                                 ("start_conditional", _start_residual_sd(change[mine], windows[mine, 0]))):
            h2 = hist_sd ** 2
            total = np.sqrt((var / scale2).sum() / (h2 / scale2).sum())
            capped = np.sqrt((np.minimum(var, h2) / scale2).sum() / (h2 / scale2).sum())
            rows.append([*(np.sqrt(var) / hist_sd), total, capped, int(mine.sum()), episodes])
            index.append((reading, name))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["reading", "scenario"]),
                        columns=[*MACRO_VARS, "total", "total_capped", "windows", "episodes"])


def _start_residual_sd(change: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(9,) residual sd (``n - 2`` degrees of freedom) of ``change[:, v]`` on ``[1, start[:, v]]`` by
    least squares, per variable."""
    out = np.empty(change.shape[1])
    n = len(start)
    for j in range(change.shape[1]):
        design = np.column_stack([np.ones(n), start[:, j]])
        coef, *_ = np.linalg.lstsq(design, change[:, j], rcond=None)
        resid = change[:, j] - (coef[0] + coef[1] * start[:, j])
        out[j] = np.sqrt(np.sum(resid ** 2) / (n - 2))
    return out


def fan_charts(generator, out_dir: str | os.PathLike, *, n_samples: int = 1000, seq_length: int = 60, seed: int = 0,
               history: pd.DataFrame | None = None) -> list[Path]:
    """Write one PNG per scenario: a 3x3 grid of fan charts (5-95 %, 25-75 % bands, median) per variable,
    in percent. With ``history``, the range of the historical windows is drawn as dotted lines.
    Files are written atomically; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real = historical_windows(history, seq_length) if history is not None else None
    months = np.arange(seq_length)
    written = []
    for i, s in enumerate(SCENARIOS):
        paths = 100.0 * M.as_paths(generator.generate(scenario=i, seq_length=seq_length, n_samples=n_samples, seed=seed + i))
        q = np.quantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)  # (5, T, D)
        fig, axes = plt.subplots(3, 3, figsize=(12, 9), sharex=True)
        for j, (ax, var) in enumerate(zip(axes.ravel(), MACRO_VARS)):
            ax.fill_between(months, q[0, :, j], q[4, :, j], alpha=0.25, color="tab:blue", label="5-95 %")
            ax.fill_between(months, q[1, :, j], q[3, :, j], alpha=0.45, color="tab:blue", label="25-75 %")
            ax.plot(months, q[2, :, j], color="navy", lw=1.5, label="median")
            if real is not None:
                lo, hi = 100 * real[:, :, j].min(), 100 * real[:, :, j].max()
                ax.axhline(lo, ls=":", color="grey", lw=0.8)
                ax.axhline(hi, ls=":", color="grey", lw=0.8)
            ax.set_title(var, fontsize=9)
            ax.tick_params(labelsize=7)
        axes[0, 0].legend(fontsize=7)
        for ax in axes[-1]:
            ax.set_xlabel("month")
        fig.suptitle(f"MacroVAE fan chart: {s} (percent)")
        fig.tight_layout()
        path = out / f"fan_{s}.png"
        atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=90))
        plt.close(fig)
        written.append(path)
    return written
