"""Concentration, migration, LGD and SICR checks of a rating / ECL model.

- :func:`concentration`: Herfindahl index ``H = sum s_g^2`` of the exposure (or obligor) shares by grade
  and the coefficient of variation ``CV = sqrt(K H - 1)`` (ECB instructions for reporting validation
  results, 2019, section 2.5.4: an undue concentration when the shares are far from uniform).
- :func:`migration_bandwidth`: upper and lower matrix weighted bandwidth (MWB) of a grade migration
  matrix, ECB 2019 section 2.5.4.3: ``MWB_upper = sum_{i<K-1} sum_{j>i} |j - i| N_i p_ij / M_upper`` with
  ``M_upper`` the same for the matrix that moves every obligor to the worst grade (normalised to [0, 1]);
  lower the mirror image.
- :func:`migration_z_tests`: per cell, z-test that an off-diagonal migration rate does not exceed a
  reference (normal approximation, as in the ECB instructions, of the binomial cell count).
- :func:`lgd_t_test`: paired one-sided t-test that realised LGDs do not exceed the estimates (ECB 2019,
  section 2.6.2); :func:`scipy.stats.ttest_rel` does the arithmetic.
- :func:`sicr_effectiveness`: among loans that defaulted, the share that had been in Stage 2 before
  default, and how many months ahead (IFRS 9 B5.5.19 asks that SICR be recognised before default).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from creditsim.errors import DataError
from creditsim.validation.results import ValidationResult, check_alpha

__all__ = ["concentration", "migration_bandwidth", "migration_z_tests", "lgd_t_test", "sicr_effectiveness"]


def concentration(exposure_by_grade: Any) -> ValidationResult:
    """Herfindahl index and CV of the shares by grade; ``decision`` "info"."""
    x = np.asarray(exposure_by_grade, dtype=np.float64).reshape(-1)
    if x.size < 2 or not np.isfinite(x).all() or (x < 0).any() or x.sum() <= 0:
        raise DataError("exposure_by_grade: expected at least two non-negative amounts with a positive total")
    s = x / x.sum()
    h = float(np.sum(s ** 2))
    return ValidationResult("herfindahl", h, float("nan"), "info", 1.0, {"grades": int(x.size)},
                            {"cv": float(np.sqrt(max(x.size * h - 1.0, 0.0))), "shares": s.tolist()})


def _counts_matrix(counts: Any) -> np.ndarray:
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 2 or n.shape[0] != n.shape[1] or n.shape[0] < 2 or (n < 0).any() or not np.isfinite(n).all():
        raise DataError(f"counts: expected a square (K, K) matrix of non-negative migration counts, got shape {n.shape}")
    if (n.sum(1) == 0).any():
        raise DataError("counts: a grade has no obligors at the start of the period")
    return n


def migration_bandwidth(counts: Any) -> ValidationResult:
    """Upper (downgrades) and lower (upgrades) MWB of ``(K, K)`` migration counts (rows: initial grade, best
    first); statistic = upper MWB, ``details["lower"]``; ``decision`` "info"."""
    n = _counts_matrix(counts)
    k = n.shape[0]
    n_i = n.sum(1)
    p = n / n_i[:, None]
    i, j = np.indices((k, k))
    upper = float(np.sum(np.where(j > i, np.abs(j - i) * n_i[:, None] * p, 0.0)))
    lower = float(np.sum(np.where(j < i, np.abs(j - i) * n_i[:, None] * p, 0.0)))
    m_upper = float(np.sum((k - 1 - np.arange(k)) * n_i))
    m_lower = float(np.sum(np.arange(k) * n_i))
    return ValidationResult("migration_bandwidth", upper / m_upper if m_upper else 0.0, float("nan"), "info", 1.0,
                            {"grades": k}, {"lower": lower / m_lower if m_lower else 0.0})


def migration_z_tests(counts: Any, reference: Any, alpha: float = 0.05) -> ValidationResult:
    """Per off-diagonal cell, one-sided z-test of the observed rate against the reference rate
    ``z = (p_obs - p_ref) / sqrt(p_ref (1 - p_ref) / N_i)``; statistic = the largest z, decision "reject" when
    any cell's p-value is below ``alpha / cells`` (Bonferroni). ``details["z"]``: the (K, K) z matrix."""
    n = _counts_matrix(counts)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != n.shape or (ref < 0).any() or (ref > 1).any():
        raise DataError(f"reference: expected a ({n.shape[0]}, {n.shape[0]}) matrix of rates in [0, 1], got {ref.shape}")
    a = check_alpha(alpha)
    n_i = n.sum(1)[:, None]
    obs = n / n_i
    sd = np.sqrt(ref * (1 - ref) / n_i)
    off = ~np.eye(n.shape[0], dtype=bool) & (sd > 0)
    z = np.where(off, (obs - ref) / np.where(sd > 0, sd, 1.0), 0.0)
    p = np.where(off, stats.norm.sf(z), 1.0)
    cells = int(off.sum())
    worst = float(p.min()) if cells else 1.0
    return ValidationResult("migration_z", float(z.max()), min(1.0, worst * max(cells, 1)),
                            "reject" if cells and worst < a / cells else "pass", a, {"cells": cells},
                            {"z": z.tolist(), "p": p.tolist()})


def lgd_t_test(realised: Any, estimated: Any, alpha: float = 0.05) -> ValidationResult:
    """One-sided paired t-test of H0: mean(realised - estimated) <= 0 (the LGD is not underestimated)."""
    r = np.asarray(realised, dtype=np.float64).reshape(-1)
    e = np.asarray(estimated, dtype=np.float64).reshape(-1)
    if r.size < 2 or r.size != e.size or not (np.isfinite(r).all() and np.isfinite(e).all()):
        raise DataError(f"realised/estimated: expected two finite samples of equal length >= 2, got {r.size} and {e.size}")
    a = check_alpha(alpha)
    res = stats.ttest_rel(r, e, alternative="greater")
    return ValidationResult("lgd_t", float(res.statistic), float(res.pvalue), "reject" if res.pvalue < a else "pass", a,
                            {"n": int(r.size)}, {"mean_difference": float(np.mean(r - e))})


def sicr_effectiveness(stage_history: Any, defaulted: Any, months_before: int = 3) -> ValidationResult:
    """Share of defaulted loans that were in Stage 2 at least ``months_before`` months before default.

    ``stage_history``: ``(L, T)`` stages 1/2/3 per loan and month, the default month marked by the first
    Stage 3; ``defaulted``: ``(L,)`` booleans. ``details``: the median months spent in Stage 2 before
    default and the share that went straight from Stage 1 to Stage 3. ``decision`` "info"."""
    s = np.asarray(stage_history)
    d = np.asarray(defaulted, dtype=bool).reshape(-1)
    if s.ndim != 2 or s.shape[0] != d.size or not np.isin(s, (1, 2, 3)).all():
        raise DataError(f"stage_history: expected (L, T) stages in {{1, 2, 3}} with L = {d.size}, got shape {s.shape}")
    early, months, direct = [], [], 0
    for row in s[d]:
        hit = np.flatnonzero(row == 3)
        if hit.size == 0:
            raise DataError("stage_history: a defaulted loan never reaches Stage 3")
        before = row[: hit[0]]
        in2 = np.flatnonzero(before == 2)
        months.append(int(hit[0] - in2[0]) if in2.size else 0)
        direct += int(in2.size == 0)
        early.append(in2.size > 0 and hit[0] - in2[0] >= months_before)
    share = float(np.mean(early)) if early else float("nan")
    return ValidationResult("sicr_effectiveness", share, float("nan"), "info", 1.0,
                            {"defaults": int(d.sum()), "months_before": months_before},
                            {"median_months_in_stage2": float(np.median(months)) if months else float("nan"),
                             "straight_to_stage3": direct / max(len(months), 1)})
