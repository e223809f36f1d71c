"""Calibration tests of PD estimates: do realised default counts agree with the predicted PDs?

Conventions (decisions):
- One-sided tests look for *underestimated* PDs (more defaults than predicted), the direction supervisors
  act on; a small p-value rejects the PD as too low.
- :func:`binomial_test` is exact (binomial tail), never the normal approximation.
- :func:`jeffreys_test` follows the ECB instructions for reporting the validation results of internal
  models (IRB, 2019, section 2.5.3.1): p-value = CDF of the Jeffreys posterior Beta(D + 1/2, N - D + 1/2)
  at the grade's PD.
- :func:`vasicek_binomial_test` widens the binomial for default correlation (one-factor Gaussian copula,
  asset correlation rho; Vasicek 2002): the tail P(X >= D) is integrated exactly over the factor by a
  200-node Gauss-Hermite rule, not approximated by a normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special, stats

from creditsim.errors import ConfigError, DataError
from creditsim.validation.results import (ValidationResult, check_alpha, check_count, check_outcomes,
                                          check_probabilities)

__all__ = ["binomial_test", "jeffreys_test", "vasicek_binomial_test", "pd_traffic_light", "hosmer_lemeshow", "spiegelhalter",
           "brier_score"]


def _counts(defaults: Any, obligors: Any) -> tuple[int, int]:
    d, n = check_count(defaults, "defaults"), check_count(obligors, "obligors")
    if n == 0 or d > n:
        raise DataError(f"defaults/obligors: expected 0 <= defaults <= obligors and obligors > 0, got {d}/{n}")
    return d, n


def _decision(p: float, alpha: float) -> str:
    return "reject" if p < alpha else "pass"


def binomial_test(defaults: int, obligors: int, pd: float, alpha: float = 0.05) -> ValidationResult:
    """Exact one-sided binomial test of a grade: ``p = P(X >= defaults)``, ``X ~ Binomial(obligors, pd)``.

    ``details``: the realised default rate and the critical count (fewest defaults rejected at ``alpha``)."""
    d, n = _counts(defaults, obligors)
    p_hat = float(check_probabilities(pd, "pd")[0])
    a = check_alpha(alpha)
    p = float(stats.binom.sf(d - 1, n, p_hat))
    critical = int(stats.binom.isf(a, n, p_hat)) + 1  # smallest k with P(X >= k) <= alpha
    return ValidationResult("binomial", float(d), p, _decision(p, a), a, {"defaults": d, "obligors": n, "pd": p_hat},
                            {"default_rate": d / n, "critical_defaults": critical})


def jeffreys_test(defaults: int, obligors: int, pd: float, alpha: float = 0.05) -> ValidationResult:
    """ECB Jeffreys test: p-value = ``Beta(D + 1/2, N - D + 1/2).cdf(pd)``; ``details`` holds the posterior's
    two-sided ``1 - alpha`` interval of the default rate."""
    d, n = _counts(defaults, obligors)
    p_hat = float(check_probabilities(pd, "pd")[0])
    a = check_alpha(alpha)
    post = stats.beta(d + 0.5, n - d + 0.5)
    p = float(post.cdf(p_hat))
    return ValidationResult("jeffreys", d / n, p, _decision(p, a), a, {"defaults": d, "obligors": n, "pd": p_hat},
                            {"interval": (float(post.ppf(a / 2)), float(post.ppf(1 - a / 2)))})


def vasicek_binomial_test(defaults: int, obligors: int, pd: float, rho: float, alpha: float = 0.05,
                          nodes: int = 200) -> ValidationResult:
    """One-sided test with correlated defaults: ``P(X >= D)`` where, given the factor ``Z``, defaults are
    Binomial(N, p(Z)), ``p(Z) = Phi((Phi^-1(pd) - sqrt(rho) Z) / sqrt(1 - rho))``; ``rho = 0`` is
    :func:`binomial_test`."""
    d, n = _counts(defaults, obligors)
    p_hat = float(check_probabilities(pd, "pd", open_interval=True)[0])
    a = check_alpha(alpha)
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.floating)) or not 0.0 <= float(rho) < 1.0:
        raise ConfigError(f"rho: expected an asset correlation in [0, 1), got {rho!r}")
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    pz = special.ndtr((special.ndtri(p_hat) - np.sqrt(rho) * z) / np.sqrt(1.0 - rho))
    p = float(np.clip(np.sum(w * stats.binom.sf(d - 1, n, pz)), 0.0, 1.0))
    return ValidationResult("vasicek_binomial", float(d), p, _decision(p, a), a,
                            {"defaults": d, "obligors": n, "pd": p_hat, "rho": float(rho)}, {"default_rate": d / n})


def _groups(pd: np.ndarray, groups: Any, n_groups: int) -> np.ndarray:
    if groups is not None:
        g = np.asarray(groups).reshape(-1)
        if g.size != pd.size:
            raise DataError(f"groups: expected one label per prediction ({pd.size}), got {g.size}")
        return np.unique(g, return_inverse=True)[1]
    order = np.argsort(pd, kind="stable")
    out = np.empty(pd.size, dtype=np.int64)
    out[order] = np.arange(pd.size) * n_groups // pd.size  # equal-count groups by predicted PD
    return out


def hosmer_lemeshow(pd: Any, outcomes: Any, groups: Any = None, n_groups: int = 10, dof: str = "validation",
                    alpha: float = 0.05) -> ValidationResult:
    """Hosmer-Lemeshow chi-square ``sum_g (O_g - E_g)^2 / (E_g (1 - E_g / n_g))`` over groups (rating grades
    via ``groups``, else ``n_groups`` equal-count groups by PD). Degrees of freedom: ``G`` on a validation
    sample the model was not fitted to (``dof="validation"``, Hosmer & Lemeshow 2000, section 5.2.2), ``G - 2``
    on its development sample (``"development"``)."""
    p = check_probabilities(pd, "pd")
    y = check_outcomes(outcomes, "outcomes", p.size)
    a = check_alpha(alpha)
    if dof not in ("validation", "development"):
        raise ConfigError(f"dof: expected 'validation' or 'development', got {dof!r}")
    g = _groups(p, groups, n_groups)
    n_g = np.bincount(g)
    obs, exp = np.bincount(g, weights=y), np.bincount(g, weights=p)
    var = exp * (1.0 - exp / n_g)
    if (var <= 0).any():
        raise DataError("hosmer_lemeshow: a group has expected defaults 0 or equal to its size; merge groups")
    stat = float(np.sum((obs - exp) ** 2 / var))
    k = len(n_g) - (2 if dof == "development" else 0)
    if k < 1:
        raise DataError(f"hosmer_lemeshow: {len(n_g)} groups leave no degrees of freedom")
    pv = float(stats.chi2.sf(stat, k))
    return ValidationResult("hosmer_lemeshow", stat, pv, _decision(pv, a), a, {"groups": len(n_g), "dof": k},
                            {"observed": obs.tolist(), "expected": exp.tolist(), "size": n_g.tolist()})


def spiegelhalter(pd: Any, outcomes: Any, alpha: float = 0.05) -> ValidationResult:
    """Spiegelhalter (1986) z-test of the Brier score: ``z = (B - E[B]) / sd(B)`` under perfect calibration,
    ``E[B] = mean p (1 - p)``, ``Var[B] = sum (1 - 2p)^2 p (1 - p) / N^2``; two-sided."""
    p = check_probabilities(pd, "pd")
    y = check_outcomes(outcomes, "outcomes", p.size)
    a = check_alpha(alpha)
    n = p.size
    brier = float(np.mean((y - p) ** 2))
    mean = float(np.mean(p * (1 - p)))
    var = float(np.sum((1 - 2 * p) ** 2 * p * (1 - p)) / n ** 2)
    if var <= 0:
        raise DataError("spiegelhalter: every PD is 0 or 1; the statistic is undefined")
    z = (brier - mean) / np.sqrt(var)
    pv = float(2 * stats.norm.sf(abs(z)))
    return ValidationResult("spiegelhalter", float(z), pv, _decision(pv, a), a, {"n": n},
                            {"brier": brier, "expected_brier": mean})


def brier_score(pd: Any, outcomes: Any, groups: Any = None) -> ValidationResult:
    """Brier score with Murphy's (1973) decomposition ``B = reliability - resolution + uncertainty`` over
    groups of equal forecast (the distinct PDs, or ``groups`` such as grades); exact when every group has
    one PD. ``decision`` is ``"info"`` (a score, not a test)."""
    p = check_probabilities(pd, "pd")
    y = check_outcomes(outcomes, "outcomes", p.size)
    g = np.unique(p if groups is None else np.asarray(groups).reshape(-1), return_inverse=True)[1]
    n_g = np.bincount(g)
    p_g, o_g = np.bincount(g, weights=p) / n_g, np.bincount(g, weights=y) / n_g
    base = y.mean()
    rel = float(np.sum(n_g * (p_g - o_g) ** 2) / p.size)
    res = float(np.sum(n_g * (o_g - base) ** 2) / p.size)
    unc = float(base * (1 - base))
    return ValidationResult("brier", float(np.mean((y - p) ** 2)), float("nan"), "info", 1.0, {"n": p.size},
                            {"reliability": rel, "resolution": res, "uncertainty": unc})


def pd_traffic_light(defaults: int, obligors: int, pd: float, rho: float = 0.05,
                     levels: tuple[float, float] = (0.95, 0.999)) -> ValidationResult:
    """Traffic light of a grade's default count (Blochwitz, Hohl, Tasche & Wehn 2004, Deutsche Bundesbank
    "Validating default probabilities on short time series"): green when the count is below the
    ``levels[0]`` quantile of the correlated-binomial distribution (:func:`vasicek_binomial_test`, asset
    correlation ``rho``), red from the ``levels[1]`` quantile, yellow between. The statistic is the tail
    probability ``P(X >= defaults)``."""
    lo, hi = levels
    if not 0 < lo < hi < 1:
        raise ConfigError(f"levels: expected two increasing confidence levels in (0, 1), got {levels!r}")
    p = vasicek_binomial_test(defaults, obligors, pd, rho).p_value
    zone = "green" if p > 1 - lo else "yellow" if p > 1 - hi else "red"
    return ValidationResult("pd_traffic_light", p, p, zone, 1 - hi,
                            {"defaults": int(defaults), "obligors": int(obligors), "pd": float(pd), "rho": float(rho),
                             "levels": (lo, hi)})
