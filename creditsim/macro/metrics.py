"""Generative-model metrics for macro paths (EVALUATION.md, section 2.1 tier A and B).

Every function takes sets of paths ``(N, T, D)`` (windows x months x variables) as float arrays. Metrics
that compare real ``R`` and generated ``G`` expect both already standardised with the same (training)
mean / sd unless stated; tail statistics take real units (decimals) and report percentage points /
decimals as documented.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from creditsim.errors import DataError
from creditsim.states import MACRO_VARS

__all__ = [
    "ACF_LAGS", "as_paths", "marginal_w1", "acf", "acf_error", "correlation_error", "cross_correlation",
    "lead_lag_error", "LEAD_LAG_PAIRS", "mmd2_unbiased", "mmd_test", "energy_distance", "summary_features",
    "discriminative_score", "tail_statistics", "prob_greater", "cross_sample_std",
    "crps_ensemble", "energy_score", "interval_coverage",
]

ACF_LAGS: tuple[int, ...] = (1, 3, 6, 12, 24)
#: economically key pairs for the lead-lag cross-correlation check
LEAD_LAG_PAIRS: tuple[tuple[str, str], ...] = (
    ("unemployment_rate", "default_rate"),
    ("credit_spread_hy", "unemployment_rate"),
    ("policy_rate", "yield_10y"),
)


def as_paths(x, name: str = "paths") -> np.ndarray:
    """Any array-like / torch tensor (N, T, D) -> float64 numpy, with a clear error on bad shapes."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3:
        raise DataError(f"{name}: expected an array (n_paths, n_months, n_vars), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or infinite values")
    return arr


def marginal_w1(real: np.ndarray, gen: np.ndarray, diff: bool = False) -> np.ndarray:
    """Per-variable 1-Wasserstein distance of all (window, month) values; (D,). ``diff``: on Δx."""
    if diff:
        real, gen = np.diff(real, axis=1), np.diff(gen, axis=1)
    D = real.shape[-1]
    return np.array([wasserstein_distance(real[..., j].ravel(), gen[..., j].ravel()) for j in range(D)])


def acf(x: np.ndarray, lags: Sequence[int] = ACF_LAGS) -> np.ndarray:
    """Lag-k autocorrelation within each window, averaged over windows: (D, K).

    Each window is demeaned by its own mean; windows with zero variance contribute 0.
    """
    x = x - x.mean(axis=1, keepdims=True)
    var = (x ** 2).sum(axis=1)  # (N, D)
    out = np.empty((x.shape[-1], len(lags)))
    for i, k in enumerate(lags):
        if k >= x.shape[1]:
            raise DataError(f"ACF lag {k} needs windows longer than {x.shape[1]} months")
        cov = (x[:, k:] * x[:, :-k]).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0)
        out[:, i] = rho.mean(axis=0)
    return out


def acf_error(real: np.ndarray, gen: np.ndarray, lags: Sequence[int] = ACF_LAGS, transform: str = "level") -> float:
    """Mean over variables and lags of |ρ_k^R - ρ_k^G|. transform: 'level', 'diff' or 'sqdiff'."""
    if transform == "diff":
        real, gen = np.diff(real, axis=1), np.diff(gen, axis=1)
    elif transform == "sqdiff":
        real, gen = np.diff(real, axis=1) ** 2, np.diff(gen, axis=1) ** 2
    elif transform != "level":
        raise DataError(f"transform must be 'level', 'diff' or 'sqdiff', got {transform!r}")
    return float(np.abs(acf(real, lags) - acf(gen, lags)).mean())


def _corr(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1, x.shape[-1])
    return np.corrcoef(flat, rowvar=False)


def correlation_error(real: np.ndarray, gen: np.ndarray) -> float:
    """Mean over i<j of |C^R_ij - C^G_ij|, C = Pearson correlation of the pooled (window x month, D) data."""
    iu = np.triu_indices(real.shape[-1], k=1)
    return float(np.abs(_corr(real)[iu] - _corr(gen)[iu]).mean())


def cross_correlation(x: np.ndarray, i: int, j: int, lag: int) -> float:
    """corr(x_i[t], x_j[t + lag]) within windows, pooled over windows (lag may be negative)."""
    a, b = x[:, :, i], x[:, :, j]
    if lag > 0:
        a, b = a[:, :-lag], b[:, lag:]
    elif lag < 0:
        a, b = a[:, -lag:], b[:, :lag]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def lead_lag_error(real: np.ndarray, gen: np.ndarray, pairs: Sequence[tuple[str, str]] = LEAD_LAG_PAIRS,
                   lags: Sequence[int] = (-6, -3, -1, 1, 3, 6), variables: Sequence[str] = MACRO_VARS) -> float:
    """Mean |cross-correlation difference| over the key pairs and lags ±{1, 3, 6}."""
    errs = []
    for a, b in pairs:
        i, j = variables.index(a), variables.index(b)
        errs += [abs(cross_correlation(real, i, j, k) - cross_correlation(gen, i, j, k)) for k in lags]
    return float(np.mean(errs))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased MMD² with a Gaussian kernel on flattened windows; bandwidth = median pairwise distance.

    Returns (mmd2, bandwidth)."""
    xf, yf = x.reshape(len(x), -1), y.reshape(len(y), -1)
    z = np.concatenate([xf, yf])
    d2 = _sq_dists(z, z)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d2[np.triu_indices(len(z), k=1)])))
    k = np.exp(-d2 / (2.0 * bandwidth ** 2))
    return _mmd2_from_kernel(k, len(xf)), bandwidth


def _mmd2_from_kernel(k: np.ndarray, m: int) -> float:
    n = k.shape[0] - m
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_test(x: np.ndarray, y: np.ndarray, n_perm: int = 200, seed: int = 0) -> tuple[float, float]:
    """MMD² and its permutation p-value (``n_perm`` label permutations of the pooled sample)."""
    xf, yf = x.reshape(len(x), -1), y.reshape(len(y), -1)
    z = np.concatenate([xf, yf])
    d2 = _sq_dists(z, z)
    bw = float(np.sqrt(np.median(d2[np.triu_indices(len(z), k=1)])))
    k = np.exp(-d2 / (2.0 * bw ** 2))
    stat = _mmd2_from_kernel(k, len(xf))
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_perm):
        p = rng.permutation(len(z))
        count += _mmd2_from_kernel(k[np.ix_(p, p)], len(xf)) >= stat
    return stat, (count + 1) / (n_perm + 1)


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| on flattened windows (bandwidth-free check)."""
    xf, yf = x.reshape(len(x), -1), y.reshape(len(y), -1)
    dxy = np.sqrt(_sq_dists(xf, yf)).mean()
    dxx = np.sqrt(_sq_dists(xf, xf)).sum() / (len(xf) * (len(xf) - 1))
    dyy = np.sqrt(_sq_dists(yf, yf)).sum() / (len(yf) * (len(yf) - 1))
    return float(2 * dxy - dxx - dyy)


def summary_features(x: np.ndarray) -> np.ndarray:
    """Per-window features (N, 7 D): mean, sd, sd of Δ, end - start, min, max, lag-1 ACF per variable."""
    dx = np.diff(x, axis=1)
    xc = x - x.mean(axis=1, keepdims=True)
    var = (xc ** 2).sum(1)
    rho1 = np.where(var > 0, (xc[:, 1:] * xc[:, :-1]).sum(1) / np.where(var > 0, var, 1.0), 0.0)
    return np.concatenate([x.mean(1), x.std(1), dx.std(1), x[:, -1] - x[:, 0], x.min(1), x.max(1), rho1], axis=1)


def _logistic_fit(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Ridge logistic regression by Newton's method; X already has an intercept column."""
    w = np.zeros(X.shape[1])
    reg = l2 * np.eye(X.shape[1])
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + reg @ w
        hess = (X * (p * (1 - p))[:, None]).T @ X + reg + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def discriminative_score(real: np.ndarray, gen: np.ndarray, n_folds: int = 5, seed: int = 0) -> float:
    """|accuracy - 0.5| of a ridge logistic regression on :func:`summary_features`, blocked K-fold CV.

    Real windows are split into ``n_folds`` contiguous blocks in time (their given order); as many
    generated windows as real ones are drawn and split at random. 0 = indistinguishable.
    """
    rng = np.random.default_rng(seed)
    n = len(real)
    gen = gen[rng.choice(len(gen), size=n, replace=len(gen) < n)]
    fr, fg = summary_features(real), summary_features(gen)
    mu, sd = fr.mean(0), fr.std(0) + 1e-8
    fr, fg = (fr - mu) / sd, (fg - mu) / sd
    real_fold = np.arange(n) * n_folds // n  # contiguous blocks
    gen_fold = rng.permutation(real_fold)
    correct = 0
    for f in range(n_folds):
        tr_x = np.concatenate([fr[real_fold != f], fg[gen_fold != f]])
        tr_y = np.concatenate([np.ones((real_fold != f).sum()), np.zeros((gen_fold != f).sum())])
        te_x = np.concatenate([fr[real_fold == f], fg[gen_fold == f]])
        te_y = np.concatenate([np.ones((real_fold == f).sum()), np.zeros((gen_fold == f).sum())])
        w = _logistic_fit(np.c_[np.ones(len(tr_x)), tr_x], tr_y)
        pred = (np.c_[np.ones(len(te_x)), te_x] @ w) > 0
        correct += int((pred == te_y.astype(bool)).sum())
    return float(abs(correct / (2 * n) - 0.5))


def _cumulative_index(yoy: np.ndarray) -> np.ndarray:
    """Index level cumulated from y/y growth rates (N, T) -> (N, T + 1): 1 before month 0, then one
    month of growth = (1 + g)^(1/12)."""
    monthly = np.power(np.maximum(1.0 + yoy, 1e-6), 1.0 / 12.0)
    return np.concatenate([np.ones_like(monthly[:, :1]), np.cumprod(monthly, axis=-1)], axis=-1)


def tail_statistics(paths: np.ndarray, variables: Sequence[str] = MACRO_VARS) -> pd.DataFrame:
    """Stress statistics per window (rows), real units in, readable units out.

    Columns: ``peak_unemployment_rise_pp`` (largest trough-to-peak rise, percentage points),
    ``peak_hy_spread_bp`` (maximum HY spread, basis points), ``hy_spread_widening_bp`` (trough-to-peak
    widening, bp), ``max_hpi_drawdown`` (largest peak-to-trough fall of the house-price index
    cumulated from y/y growth, decimal), ``min_cum_gdp_growth`` (lowest cumulative real-GDP change
    from the window start, decimal), ``peak_default_rate`` (decimal).
    """
    v = list(variables)
    u = paths[:, :, v.index("unemployment_rate")]
    hy = paths[:, :, v.index("credit_spread_hy")]
    hpi = _cumulative_index(paths[:, :, v.index("house_price_growth")])
    gdp = _cumulative_index(paths[:, :, v.index("gdp_growth")])
    rise = lambda a: (a - np.minimum.accumulate(a, axis=1)).max(axis=1)  # noqa: E731
    return pd.DataFrame({
        "peak_unemployment_rise_pp": 100.0 * rise(u),
        "peak_hy_spread_bp": 1e4 * hy.max(axis=1),
        "hy_spread_widening_bp": 1e4 * rise(hy),
        "max_hpi_drawdown": (1.0 - hpi / np.maximum.accumulate(hpi, axis=1)).max(axis=1),
        "min_cum_gdp_growth": (gdp - 1.0).min(axis=1),
        "peak_default_rate": paths[:, :, v.index("default_rate")].max(axis=1),
    })


def prob_greater(a: np.ndarray, b: np.ndarray) -> float:
    """P(A > B) for independent draws from the two samples (ties count 1/2), via ranks (Mann-Whitney)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def cross_sample_std(paths: np.ndarray, month: int) -> np.ndarray:
    """Standard deviation across paths of every variable at ``month``; (D,)."""
    if not 0 <= month < paths.shape[1]:
        raise DataError(f"month must be in 0..{paths.shape[1] - 1}, got {month}")
    return paths[:, month].std(axis=0, ddof=1)


# ---------------------------------------------------------------- proper scores of forecast ensembles
# Convention (Gneiting & Raftery 2007, eq. 20-22): CRPS(F, y) = E|X - y| - 0.5 E|X - X'| and energy
# score ES(F, y) = E||X - y|| - 0.5 E||X - X'||, X, X' independent draws from F. For an ensemble, F is
# its empirical distribution, so E|X - X'| averages over all n^2 ordered pairs (the pairs i = j count
# as 0): the score of the ensemble's step CDF, not the "fair" n(n-1) version. In one dimension the two
# scores are the same number (ES = CRPS, no factor 2). Lower is better; units are those of y.


def _ensemble(samples, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(samples.detach().cpu().numpy() if hasattr(samples, "detach") else samples, dtype=np.float64)
    obs = np.asarray(y, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 1:
        raise DataError(f"samples: expected at least one ensemble member on axis 0, got shape {x.shape}")
    if x.shape[1:] != obs.shape:
        raise DataError(f"samples {x.shape} and observations {obs.shape}: samples must be (n, *y.shape)")
    if not np.all(np.isfinite(x)):
        raise DataError("samples: contains NaN or infinite values")
    return x, obs


def crps_ensemble(samples, y) -> np.ndarray:
    """Continuous ranked probability score of an ensemble, ``E|X - y| - 0.5 E|X - X'|``.

    samples: ``(n, ...)`` ensemble members on axis 0 (finite); y: ``(...)`` observations, NaN allowed
    (their score is NaN). Returns ``(...)`` float64 >= 0 in the units of y (decimals for rates).
    ``E|X - X'|`` over the n^2 pairs comes from the sorted members in O(n log n):
    ``(2 / n^2) sum_i (2 i - n - 1) x_(i)`` (i = 1..n). One member: ``|x - y|``.
    """
    x, obs = _ensemble(samples, y)
    n = x.shape[0]
    abs_err = np.abs(x - obs).mean(axis=0)
    w = (2.0 * np.arange(1, n + 1) - n - 1).reshape((n,) + (1,) * (x.ndim - 1))
    spread = 2.0 * (w * np.sort(x, axis=0)).sum(axis=0) / (n * n)
    return abs_err - 0.5 * spread


def energy_score(samples, y, chunk: int = 256) -> np.ndarray:
    """Multivariate energy score ``E||X - y|| - 0.5 E||X - X'||`` (Euclidean norm, beta = 1).

    samples: ``(n, ..., d)``; y: ``(..., d)`` (the last axis is the vector scored; standardise the
    variables first so that no unit dominates). Returns ``(...)`` float64 >= 0; NaN where any entry of
    that observation vector is NaN. Cost O(n^2 d) per observation, in chunks of ``chunk`` members. With
    d = 1 it equals :func:`crps_ensemble`; one member: ``||x - y||``.
    """
    x, obs = _ensemble(samples, y)
    if x.ndim < 2:
        raise DataError(f"energy_score: samples need a vector axis, (n, ..., d); got shape {x.shape}")
    n = x.shape[0]
    to_obs = np.sqrt(((x - obs) ** 2).sum(axis=-1)).mean(axis=0)
    pair = np.zeros(x.shape[1:-1])
    for i in range(0, n, chunk):
        block = x[i:i + chunk]  # (c, ..., d)
        pair += np.sqrt(((block[:, None] - x[None]) ** 2).sum(axis=-1)).sum(axis=(0, 1))
    return to_obs - 0.5 * pair / (n * n)


def interval_coverage(samples, y, level: float) -> np.ndarray:
    """Whether y lies in the ensemble's central ``level`` interval (e.g. 0.9: 5th to 95th percentile,
    linear interpolation, ends included).

    samples: ``(n, ...)``; y: ``(...)``, NaN allowed. Returns ``(...)`` float64: 1.0 inside, 0.0
    outside, NaN where y is NaN -- its ``nanmean`` is the empirical coverage rate (a decimal).
    """
    if not 0.0 < float(level) < 1.0:
        raise DataError(f"level must be in (0, 1), got {level!r}")
    x, obs = _ensemble(samples, y)
    lo, hi = np.quantile(x, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=0)
    inside = ((obs >= lo) & (obs <= hi)).astype(np.float64)
    return np.where(np.isnan(obs), np.nan, inside)
