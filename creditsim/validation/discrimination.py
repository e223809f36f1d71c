"""Discriminatory power: AUC (with DeLong's variance), AUC comparison, Kolmogorov-Smirnov.

AUC is the Mann-Whitney probability that a defaulter scores higher than a non-defaulter (ties count
1/2); higher score = riskier (pass ``-score`` for a creditworthiness score). Variance and covariance of
correlated AUCs by DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44(3)) from the placement values,
computed with midranks as in Sun & Xu (2014, IEEE Signal Process. Lett. 21(11)). Gini = 2 AUC - 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from creditsim.errors import DataError
from creditsim.validation.results import ValidationResult, check_alpha, check_outcomes

__all__ = ["auc_test", "compare_auc", "ks_test", "delong_components"]


def _scores(scores: Any, outcomes: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0 or not np.isfinite(s).all():
        raise DataError("scores: expected finite numbers")
    y = check_outcomes(outcomes, "outcomes", s.size)
    if y.sum() == 0 or y.sum() == y.size:
        raise DataError("outcomes: need both defaulters (1) and non-defaulters (0)")
    return s, y


def delong_components(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(AUC, V10 (n1,), V01 (n0,))``: the AUC and DeLong's placement values of the defaulters and the
    non-defaulters (their means are the AUC)."""
    pos, neg = scores[y == 1], scores[y == 0]
    n1, n0 = pos.size, neg.size
    r_all = stats.rankdata(np.r_[pos, neg])
    r_pos, r_neg = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (r_all[:n1] - r_pos) / n0  # share of non-defaulters below each defaulter (ties 1/2)
    v01 = 1.0 - (r_all[n1:] - r_neg) / n1  # share of defaulters above each non-defaulter
    return float(v10.mean()), v10, v01


def auc_test(scores: Any, outcomes: Any, alpha: float = 0.05) -> ValidationResult:
    """AUC with DeLong standard error, a ``1 - alpha`` normal interval, Gini, and the z-test of AUC = 0.5
    (two-sided)."""
    s, y = _scores(scores, outcomes)
    a = check_alpha(alpha)
    auc, v10, v01 = delong_components(s, y)
    var = v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size
    se = float(np.sqrt(var))
    z = (auc - 0.5) / se if se > 0 else float("inf")
    p = float(2 * stats.norm.sf(abs(z)))
    q = stats.norm.ppf(1 - a / 2)
    return ValidationResult("auc", auc, p, "reject" if p < a else "pass", a,
                            {"defaulters": int(v10.size), "non_defaulters": int(v01.size)},
                            {"se": se, "interval": (auc - q * se, auc + q * se), "gini": 2 * auc - 1})


def compare_auc(scores_a: Any, scores_b: Any, outcomes: Any, alpha: float = 0.05) -> ValidationResult:
    """DeLong test of two AUCs on the same obligors: ``z = (A - B) / sd(A - B)`` with the covariance of the
    placement values; two-sided."""
    sa, y = _scores(scores_a, outcomes)
    sb, _ = _scores(scores_b, outcomes)
    if sa.size != sb.size:
        raise DataError(f"scores_b: expected {sa.size} scores, got {sb.size}")
    a = check_alpha(alpha)
    auc_a, v10a, v01a = delong_components(sa, y)
    auc_b, v10b, v01b = delong_components(sb, y)
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    cov = s10 / v10a.size + s01 / v01a.size
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (auc_a - auc_b) / np.sqrt(var) if var > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z)))
    return ValidationResult("compare_auc", float(z), p, "reject" if p < a else "pass", a, {"n": int(y.size)},
                            {"auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b, "se": float(np.sqrt(var))})


def ks_test(scores: Any, outcomes: Any, alpha: float = 0.05) -> ValidationResult:
    """Kolmogorov-Smirnov distance between the score distributions of defaulters and non-defaulters, with
    the exact/asymptotic two-sample p-value of :func:`scipy.stats.ks_2samp`."""
    s, y = _scores(scores, outcomes)
    a = check_alpha(alpha)
    res = stats.ks_2samp(s[y == 1], s[y == 0])
    return ValidationResult("ks", float(res.statistic), float(res.pvalue), "reject" if res.pvalue < a else "pass", a,
                            {"defaulters": int(y.sum()), "non_defaulters": int((1 - y).sum())})
