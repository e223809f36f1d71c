"""Scores of predicted next-state distributions, with account-clustered paired bootstrap intervals.

Per move (``p`` ``(n, 7)`` predicted, a :class:`~creditsim.harness.moves.MoveTable` of outcomes):

* NLL: ``-log p[to]`` for an observed move, ``-log(1 - p[DEFAULT])`` for a censored default-free
  period (the probability of what was observed); probabilities floored at ``floor`` = 1e-10 so that a
  chain that never saw a move scores a large finite penalty rather than ``inf``.
* Brier: ``sum_j (p_j - 1[j = to])^2`` over observed moves (a censored period has no full outcome;
  on a panel whose survivors are all censored, such as annual default counts, it covers the
  defaulters only and should not be read), and the default Brier ``(p_DEFAULT - 1[default])^2`` over
  every move that may default, censored ones included.
* Default AUC and ECE: score ``p[DEFAULT]`` against "the move is a default" on every move out of a
  state that may default (censored periods are non-defaults). The AUC counts only pairs from the same
  calendar month (:func:`weighted_auc` with ``group``), so it measures ranking within a month, not
  knowing which months have defaults (the NLL already rewards that). ECE: 10 equal-count bins of the
  score, ``sum_b |sum p - sum y| / n``.

Moves of one loan are not independent (a loan that falls behind keeps falling), so intervals come from
a bootstrap over *loans*: each replicate draws loans with replacement and keeps all their moves, the
same draw for every model (paired), so the interval of a difference between two models is as narrow as
the data allow. Percentile intervals at 95 %. Every sum is over fixed arrays in index order (weights x
per-loan totals), so the numbers do not depend on thread count or BLAS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.moves import MoveTable
from creditsim.states import ALLOWED_TRANSITIONS, LoanState

__all__ = ["move_scores", "weighted_auc", "expected_calibration_error", "bootstrap_table", "check_cluster", "MoveScores"]

_D = int(LoanState.DEFAULT)


@dataclass(frozen=True)
class MoveScores:
    """Per-move scores of one model: ``nll`` ``(n,)``, ``brier`` ``(n,)`` (NaN on censored moves),
    ``p_default`` ``(n,)``, ``default`` ``(n,)`` bool outcome, ``eligible`` ``(n,)`` bool (may default)."""

    nll: np.ndarray
    brier: np.ndarray
    p_default: np.ndarray
    default: np.ndarray
    eligible: np.ndarray


def move_scores(p: np.ndarray, moves: MoveTable, floor: float = 1e-10) -> MoveScores:
    """Score ``p`` ``(n, 7)`` against the outcomes of ``moves`` (module docstring)."""
    obs = moves.observed
    to = np.where(obs, moves.to_state, 0).astype(np.int64)
    rows = np.arange(len(moves))
    hit = np.where(obs, p[rows, to], 1.0 - p[:, _D])
    nll = -np.log(np.maximum(hit, floor))
    onehot = np.zeros_like(p)
    onehot[rows[obs], to[obs]] = 1.0
    brier = np.where(obs, ((p - onehot) ** 2).sum(1), np.nan)
    eligible = ALLOWED_TRANSITIONS[moves.from_state.astype(np.int64), _D]
    return MoveScores(nll, brier, p[:, _D].copy(), obs & (moves.to_state == _D), eligible)


def weighted_auc(score: np.ndarray, label: np.ndarray, weight: np.ndarray | None = None,
                 group: np.ndarray | None = None) -> float:
    """Mann-Whitney AUC with ties counted one half, each observation weighted (``None``: 1).

    With ``group`` (``(n,)`` labels), only pairs within the same group count: the AUC of ranking a
    period's defaulters above the same period's survivors, which is what a monthly scorecard is for
    (pooled over periods, a model would also be rewarded for knowing *which month* has defaults).
    """
    if group is not None:
        num = den = 0.0
        for g in pd.unique(group):
            at = group == g
            a, pairs = _auc_pairs(score[at], label[at], None if weight is None else np.asarray(weight)[at])
            if pairs > 0:
                num, den = num + a * pairs, den + pairs
        return float(num / den) if den > 0 else float("nan")
    a, pairs = _auc_pairs(score, label, weight)
    return a if pairs > 0 else float("nan")


def _auc_pairs(score: np.ndarray, label: np.ndarray, weight: np.ndarray | None) -> tuple[float, float]:
    """``(AUC, weighted number of positive-negative pairs)``; AUC is NaN without pairs."""
    w = np.ones(len(score)) if weight is None else np.asarray(weight, np.float64)
    order = np.argsort(score, kind="stable")
    s, y, w = score[order], label[order].astype(bool), w[order]
    wp, wn = np.where(y, w, 0.0), np.where(y, 0.0, w)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos_g, neg_g = np.add.reduceat(wp, starts), np.add.reduceat(wn, starts)
    below = np.cumsum(neg_g) - neg_g  # negative weight strictly below each tie group
    total_p, total_n = pos_g.sum(), neg_g.sum()
    if total_p <= 0 or total_n <= 0:
        return float("nan"), 0.0
    return float((pos_g * (below + 0.5 * neg_g)).sum() / (total_p * total_n)), float(total_p * total_n)


def expected_calibration_error(score: np.ndarray, label: np.ndarray, bins: int = 10) -> float:
    """Equal-count-bin ECE: ``sum_b |sum_b p - sum_b y| / n``."""
    if len(score) == 0:
        return float("nan")
    order = np.argsort(score, kind="stable")
    gaps = [abs(score[b].sum() - label[b].sum()) for b in np.array_split(order, min(bins, len(score)))]
    return float(np.sum(gaps) / len(score))


def _per_loan(values: np.ndarray, loan: np.ndarray, n_loans: int) -> np.ndarray:
    ok = ~np.isnan(values)
    return np.bincount(loan[ok], weights=values[ok], minlength=n_loans)


def check_cluster(cluster: str) -> str:
    """``cluster`` if it is a bootstrap unit (``"loan"`` or ``"period"``), else a one-line ConfigError."""
    if cluster not in ("loan", "period"):
        raise ConfigError(f"cluster: expected 'loan' or 'period', got {cluster!r}")
    return cluster


def bootstrap_table(scores: dict[str, MoveScores], moves: MoveTable, reference: str, n_boot: int = 200,
                    seed: int = 0, cluster: str = "loan") -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model: point scores, 95 % cluster-bootstrap intervals, paired NLL difference to ``reference``.

    ``cluster``: what a replicate resamples -- ``"loan"`` (all moves of a loan together) or ``"period"``
    (all moves of a calendar period together: the honest choice when a common shock moves every loan of
    a period at once and the test spans few periods, e.g. annual default counts out of time).

    Returns:
        ``(table, replicates)``. ``table`` columns: ``nll``, ``nll_lo``, ``nll_hi``, ``nll_vs_ref`` (model
        minus reference, negative = better), ``nll_vs_ref_lo``, ``nll_vs_ref_hi``, ``brier`` (+ interval),
        ``brier_default``, ``auc_default`` (+ interval), ``ece_default``, ``moves``, ``loans``. ``replicates``: ``(n_boot,
        models)`` NLL per move of every replicate (the same loan draw in a row), for any paired comparison.
    """
    check_cluster(cluster)
    ids = moves.loan_id.astype(str) if cluster == "loan" else moves.covariates["period"].to_numpy(dtype=str)
    _, loan = np.unique(ids, return_inverse=True)
    n_loans = int(loan.max()) + 1
    eligible = next(iter(scores.values())).eligible
    n_obs = np.bincount(loan, minlength=n_loans).astype(np.float64)
    n_brier = np.bincount(loan[moves.observed], minlength=n_loans).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = [np.bincount(rng.integers(0, n_loans, n_loans), minlength=n_loans).astype(np.float64) for _ in range(n_boot)]
    nll_sum = {m: _per_loan(s.nll, loan, n_loans) for m, s in scores.items()}
    brier_sum = {m: _per_loan(s.brier, loan, n_loans) for m, s in scores.items()}
    period = moves.covariates["period"].to_numpy()[eligible]
    boot = {m: np.array([[(w * nll_sum[m]).sum() / (w * n_obs).sum(), (w * brier_sum[m]).sum() / (w * n_brier).sum(),
                          weighted_auc(s.p_default[eligible], s.default[eligible], w[loan][eligible], period)] for w in draws])
            for m, s in scores.items()}
    rows = []
    for m, s in scores.items():
        b, diff = boot[m], boot[m][:, 0] - boot[reference][:, 0]
        rows.append({
            "model": m, "nll": float(s.nll.mean()), "nll_lo": np.quantile(b[:, 0], 0.025), "nll_hi": np.quantile(b[:, 0], 0.975),
            "nll_vs_ref": float(s.nll.mean() - scores[reference].nll.mean()),
            "nll_vs_ref_lo": np.quantile(diff, 0.025), "nll_vs_ref_hi": np.quantile(diff, 0.975),
            "brier": float(np.nanmean(s.brier)), "brier_lo": np.quantile(b[:, 1], 0.025), "brier_hi": np.quantile(b[:, 1], 0.975),
            "brier_default": float(((s.p_default[eligible] - s.default[eligible]) ** 2).mean()),
            "auc_default": weighted_auc(s.p_default[eligible], s.default[eligible], group=period),
            "auc_lo": np.nanquantile(b[:, 2], 0.025), "auc_hi": np.nanquantile(b[:, 2], 0.975),
            "ece_default": expected_calibration_error(s.p_default[eligible], s.default[eligible].astype(np.float64)),
            "moves": len(moves), "clusters": n_loans,
        })
    replicates = pd.DataFrame({m: b[:, 0] for m, b in boot.items()})
    return pd.DataFrame(rows).set_index("model"), replicates
