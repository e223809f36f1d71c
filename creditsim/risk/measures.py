"""Exact risk estimators on a (weighted) sample of losses.

Definitions (WATERFALL.md §2.11):

- ``EL = sum_i w_i L_i`` (weights normalised to 1);
- ``VaR_a = inf{x : F(x) >= a}`` with ``F`` the weighted empirical CDF, i.e. a sample value, never
  interpolated (``np.percentile`` interpolates and is therefore *not* used);
- ``CVaR_a = VaR_a + E[(L - VaR_a)^+] / (1 - a)`` (Acerbi-Tasche / Rockafellar-Uryasev), which stays
  coherent when the sample has atoms; ``mean(L | L >= VaR)`` is biased upward with ties and is not used.

Monte Carlo standard errors use the effective sample size ``n_eff = (sum w)^2 / sum w^2`` (equal to
``n`` for equal weights):

- EL: weighted standard deviation / sqrt(n_eff);
- VaR: order-statistic (sectioning) estimate ``(q(a + s) - q(a - s)) / 2`` with
  ``s = sqrt(a (1 - a) / n_eff)``: the binomial spread of the empirical CDF at the quantile mapped
  through the sample quantile function, so no density estimate (and no bandwidth) is needed;
- CVaR: the influence-function variance of the Rockafellar-Uryasev estimator,
  ``Var(VaR + (L - VaR)^+ / (1 - a)) / n_eff``.

Too few tail samples (decision): both tail standard errors are returned as **NaN** when the tail holds
fewer than ``MIN_TAIL_SAMPLES = 10`` effective samples, ``n_eff (1 - a) < 10`` (e.g. VaR 99.9 % from
fewer than 10,000 scenarios, or VaR 99 % of a scenario type with 20 scenarios). With so few points the
order-statistic spread is often exactly 0 (neighbouring order statistics tie, or ``a + s`` and
``a - s`` pick the same sample) and a printed "s.e. 0.000" would claim a precision the run does not
have; NaN is shown as "–" in tables. Such estimates need more simulations, not an error bar.
"""

from __future__ import annotations

import numpy as np

from creditsim.errors import ConfigError, DataError

__all__ = [
    "normalise_weights",
    "expected_value",
    "value_at_risk",
    "expected_shortfall",
    "expected_value_se",
    "value_at_risk_se",
    "expected_shortfall_se",
    "effective_sample_size",
    "MIN_TAIL_SAMPLES",
]

#: fewest effective tail samples n_eff (1 - a) for which a VaR/CVaR standard error is reported
MIN_TAIL_SAMPLES = 10.0

# cumulative weights are float sums: 0.99 can come out as 0.98999999999; compare with a tolerance so
# the quantile of 1..100 at 0.99 is 99, exactly as the definition says.
_CDF_TOL = 1e-12


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    return a


def _as_losses(losses: np.ndarray) -> np.ndarray:
    x = np.asarray(losses, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise DataError("losses: empty sample; expected at least one simulated loss")
    if not np.all(np.isfinite(x)):
        raise DataError("losses: contains NaN or infinite values; expected finite numbers")
    return x


def normalise_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Return weights of shape ``(n,)`` summing to 1 (equal weights when ``weights`` is None)."""
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise DataError(f"weights: expected shape ({n},) matching the losses, got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError("weights: expected finite, non-negative values")
    total = w.sum()
    if total <= 0:
        raise DataError("weights: sum to zero; expected a positive total weight")
    return w / total


def effective_sample_size(weights: np.ndarray | None, n: int) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2``."""
    w = normalise_weights(weights, n)
    return float(1.0 / np.sum(w * w))


def expected_value(losses: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted mean of the losses."""
    x = _as_losses(losses)
    w = normalise_weights(weights, x.size)
    return float(np.dot(w, x))


def _quantile(x: np.ndarray, w: np.ndarray, alpha: float) -> float:
    """``inf{x : F(x) >= alpha}`` for the weighted empirical CDF (no interpolation)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cum = np.cumsum(w[order])
    idx = int(np.searchsorted(cum, alpha - _CDF_TOL, side="left"))
    return float(xs[min(idx, xs.size - 1)])


def value_at_risk(losses: np.ndarray, alpha: float = 0.99, weights: np.ndarray | None = None) -> float:
    """Empirical ``alpha``-quantile of the losses, ``inf{x : F(x) >= alpha}`` (a sample value)."""
    a = _check_alpha(alpha)
    x = _as_losses(losses)
    return _quantile(x, normalise_weights(weights, x.size), a)


def expected_shortfall(losses: np.ndarray, alpha: float = 0.99, weights: np.ndarray | None = None) -> float:
    """Acerbi-Tasche CVaR: ``VaR_a + E[(L - VaR_a)^+] / (1 - a)``."""
    a = _check_alpha(alpha)
    x = _as_losses(losses)
    w = normalise_weights(weights, x.size)
    var = _quantile(x, w, a)
    return float(var + np.dot(w, np.maximum(x - var, 0.0)) / (1.0 - a))


def expected_value_se(losses: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Monte Carlo standard error of the weighted mean."""
    x = _as_losses(losses)
    if x.size < 2:
        return float("nan")
    w = normalise_weights(weights, x.size)
    mean = np.dot(w, x)
    n_eff = 1.0 / np.sum(w * w)
    # unbiased weighted variance (reliability weights)
    var = np.dot(w, (x - mean) ** 2) / max(1.0 - np.sum(w * w), 1e-300)
    return float(np.sqrt(var / n_eff))


def value_at_risk_se(losses: np.ndarray, alpha: float = 0.99, weights: np.ndarray | None = None) -> float:
    """Order-statistic standard error of :func:`value_at_risk`, same units as the losses; NaN when
    ``n_eff (1 - alpha) < MIN_TAIL_SAMPLES`` (see module docstring)."""
    a = _check_alpha(alpha)
    x = _as_losses(losses)
    if x.size < 2:
        return float("nan")
    w = normalise_weights(weights, x.size)
    n_eff = 1.0 / np.sum(w * w)
    if n_eff * (1.0 - a) < MIN_TAIL_SAMPLES:
        return float("nan")  # too few tail samples to say anything (module docstring)
    s = np.sqrt(a * (1.0 - a) / n_eff)
    hi = _quantile(x, w, min(a + s, 1.0))
    lo = _quantile(x, w, max(a - s, 1e-15))
    return float((hi - lo) / 2.0)


def expected_shortfall_se(losses: np.ndarray, alpha: float = 0.99, weights: np.ndarray | None = None) -> float:
    """Influence-function standard error of :func:`expected_shortfall`, same units as the losses;
    NaN when ``n_eff (1 - alpha) < MIN_TAIL_SAMPLES`` (see module docstring)."""
    a = _check_alpha(alpha)
    x = _as_losses(losses)
    if x.size < 2:
        return float("nan")
    w = normalise_weights(weights, x.size)
    if (1.0 - a) / np.sum(w * w) < MIN_TAIL_SAMPLES:
        return float("nan")  # too few tail samples to say anything (module docstring)
    var = _quantile(x, w, a)
    h = var + np.maximum(x - var, 0.0) / (1.0 - a)
    return expected_value_se(h, w)
