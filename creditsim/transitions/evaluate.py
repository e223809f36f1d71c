"""Held-out evaluation of cohort transition models (EVALUATION.md section 2.2).

Every metric takes predicted matrices ``P`` ``(N, T, 7, 7)`` (rows = from-state) and observed counts
``n`` ``(N, T, 7, 7)`` of the same cohort-months, so any model (transformer, Markov chain) is scored
the same way:

* :func:`transition_nll`: multinomial NLL ``-sum n_ab log P_ab`` per live move (moves out of
  CURRENT..DPD90; absorbing rows are certain), overall and by from-state. Probabilities are floored at
  ``floor`` (1e-10) so that a homogeneous chain that never saw a move in training scores a large
  finite penalty rather than ``inf``; the floor never binds for a model whose allowed moves are > 0.
* :func:`brier_score`: multiclass Brier score per live loan-month, ``sum_j (P_aj - 1[j = b])^2``.
* :func:`roll_rate_error`: occupancy-weighted total-variation distance between predicted and
  empirical rows, ``1/2 sum_b |P_ab - n_ab / n_a|`` (empirical rows of small cohorts are noisy, so
  this has a noise floor; compare models with it, do not read it alone).
* :func:`roll_rate_calibration`: for the key roll rates, reliability by exposure-weighted bins of the
  predicted rate (observed vs predicted rate per bin and the expected calibration error, ECE).
* :func:`chained_curve_gap`: cumulative default / prepayment curves obtained by chaining ``P`` from
  the observed month-0 state mix vs the realised ones: maximum vertical distance per cohort,
  loan-weighted mean over cohorts.

:func:`evaluate_transition_models` puts the transformer next to the homogeneous Markov baselines fitted
on the same training panels: ``markov`` (one :class:`~creditsim.transitions.markov.MarkovTransitionModel`
matrix for all loans) and ``markov_by_cohort`` (one homogeneous matrix per cohort label, pooled over
training paths and months, falling back to ``markov`` for labels unseen in training).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import DataError
from creditsim.states import ABSORBING_STATES, ALLOWED_TRANSITIONS, N_STATES, LoanState
from creditsim.transitions.markov import MarkovTransitionModel, row_mle

__all__ = [
    "KEY_MOVES",
    "homogeneous_matrix",
    "transition_nll",
    "brier_score",
    "roll_rate_error",
    "roll_rate_calibration",
    "chained_curve_gap",
    "transformer_matrices",
    "markov_baselines",
    "evaluate_transition_models",
]

_N_LIVE = int(LoanState.DPD90) + 1
_STATE_NAMES = [s.name for s in LoanState]

#: the roll rates whose calibration is reported, ``(from, to)``
KEY_MOVES: tuple[tuple[int, int], ...] = (
    (LoanState.CURRENT, LoanState.DPD30), (LoanState.DPD30, LoanState.DPD60), (LoanState.DPD60, LoanState.DPD90), (LoanState.DPD90, LoanState.DEFAULT),
    (LoanState.DPD30, LoanState.CURRENT), (LoanState.CURRENT, LoanState.PREPAID),
)


def _check_pair(matrices: Any, counts: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(matrices, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    if p.shape[-2:] != (N_STATES, N_STATES) or p.ndim < 3:
        raise DataError(f"matrices must have shape (..., T, 7, 7), got {p.shape}")
    if n.shape != p.shape:
        raise DataError(f"counts shape {n.shape} differs from matrices shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise DataError("matrices must be finite and non-negative")
    if not np.all(np.isfinite(n)) or np.any(n < 0):
        raise DataError("counts must be finite and non-negative")
    return p, n


def homogeneous_matrix(counts: Any) -> np.ndarray:
    """Row-normalised ``(7, 7)`` counts (the homogeneous chain's MLE ``n_ab / n_a``).

    Live rows without counts stay put (unit row, as in MarkovTransitionModel); absorbing rows are unit
    rows; forbidden moves are 0.
    """
    n = np.asarray(counts, dtype=np.float64)
    if n.shape != (N_STATES, N_STATES) or not np.all(np.isfinite(n)) or np.any(n < 0):
        raise DataError(f"counts must be a (7, 7) non-negative finite array, got shape {n.shape}")
    n = np.where(ALLOWED_TRANSITIONS, n, 0.0)
    p = row_mle(n)  # the Markov model's estimator; rows without counts come back zero
    empty = n.sum(1) == 0
    p[empty] = np.eye(N_STATES)[empty]
    for a in ABSORBING_STATES:
        p[a] = np.eye(N_STATES)[a]
    return p


def transition_nll(matrices: Any, counts: Any, floor: float = 1e-10) -> dict[str, float]:
    """NLL per live move (nats): ``{"nll": ..., "nll_CURRENT": ..., ..., "nll_DPD90": ..., "n_moves": ...}``."""
    p, n = _check_pair(matrices, counts)
    ll = np.where(n > 0, n * np.log(np.maximum(p, floor)), 0.0)
    out = {"nll": float(-ll[..., :_N_LIVE, :].sum() / max(n[..., :_N_LIVE, :].sum(), 1.0))}
    for a in range(_N_LIVE):
        out[f"nll_{_STATE_NAMES[a]}"] = float(-ll[..., a, :].sum() / max(n[..., a, :].sum(), 1.0))
    out["n_moves"] = float(n[..., :_N_LIVE, :].sum())
    return out


def brier_score(matrices: Any, counts: Any) -> float:
    """Multiclass Brier score per live loan-month: mean of ``sum_j (P_aj - 1[j = b])^2`` over moves a -> b."""
    p, n = _check_pair(matrices, counts)
    p, n = p[..., :_N_LIVE, :], n[..., :_N_LIVE, :]
    sq = (p ** 2).sum(-1, keepdims=True)  # (..., 4, 1)
    per_move = sq - 2.0 * p + 1.0  # (..., 4, 7): score of a loan that moved a -> b
    return float((n * per_move).sum() / max(n.sum(), 1.0))


def roll_rate_error(matrices: Any, counts: Any) -> float:
    """Occupancy-weighted total-variation distance between predicted and empirical live rows."""
    p, n = _check_pair(matrices, counts)
    p, n = p[..., :_N_LIVE, :], n[..., :_N_LIVE, :]
    occ = n.sum(-1)  # (..., 4)
    emp = np.divide(n, occ[..., None], out=np.zeros_like(n), where=occ[..., None] > 0)
    tv = 0.5 * np.abs(p - emp).sum(-1)
    return float((occ * tv).sum() / max(occ.sum(), 1.0))


def roll_rate_calibration(matrices: Any, counts: Any, moves: tuple[tuple[int, int], ...] = KEY_MOVES,
                          n_bins: int = 10) -> pd.DataFrame:
    """Reliability of the key roll rates.

    For each move ``a -> b``, cohort-months with ``n_a > 0`` are sorted by the predicted rate and cut
    into ``n_bins`` bins of (about) equal exposure; per bin the observed rate ``sum n_ab / sum n_a``
    is compared with the exposure-weighted predicted rate.

    Returns:
        DataFrame indexed by move name (``"CURRENT->DPD30"``) with ``observed`` and ``predicted``
        overall rates, ``ece`` (exposure-weighted mean |observed - predicted| over bins) and
        ``exposure`` (loan-months in state a).
    """
    p, n = _check_pair(matrices, counts)
    rows = []
    for a, b in moves:
        occ = n[..., a, :].sum(-1).reshape(-1)
        hit = n[..., a, b].reshape(-1)
        pred = p[..., a, b].reshape(-1)
        keep = occ > 0
        occ, hit, pred = occ[keep], hit[keep], pred[keep]
        total = occ.sum()
        if total == 0:
            rows.append({"move": f"{_STATE_NAMES[a]}->{_STATE_NAMES[b]}", "observed": np.nan, "predicted": np.nan,
                         "ece": np.nan, "exposure": 0.0})
            continue
        order = np.argsort(pred, kind="stable")
        cum = np.cumsum(occ[order]) / total
        bins = np.minimum((cum * n_bins - 1e-12).astype(np.int64), n_bins - 1)
        w = np.bincount(bins, weights=occ[order], minlength=n_bins)
        obs = np.bincount(bins, weights=hit[order], minlength=n_bins)
        prd = np.bincount(bins, weights=(pred * occ)[order], minlength=n_bins)
        ok = w > 0
        ece = float((np.abs(obs[ok] - prd[ok])).sum() / total)
        rows.append({"move": f"{_STATE_NAMES[a]}->{_STATE_NAMES[b]}", "observed": float(hit.sum() / total),
                     "predicted": float((pred * occ).sum() / total), "ece": ece, "exposure": float(total)})
    return pd.DataFrame(rows).set_index("move")


def chained_curve_gap(matrices: Any, counts: Any) -> dict[str, float]:
    """Max vertical distance of chained vs realised cumulative default and prepayment curves.

    Per cohort: ``pi_0`` = observed state mix at the start of month 0 (row sums of the month-0
    counts), ``pi_{t+1} = pi_t P_t``; the realised share in DEFAULT (PREPAID) after month t is
    ``sum_a n_{t, a, DEFAULT} / N``. Returns the loan-weighted means over cohorts of the maximum
    distance over months: ``{"cum_default_gap": ..., "cum_prepay_gap": ...}`` (decimals).
    """
    p, n = _check_pair(matrices, counts)
    p = p.reshape(-1, *p.shape[-3:])
    n = n.reshape(-1, *n.shape[-3:])
    n_loans = n[:, 0].sum(axis=(-2, -1))  # (N,)
    keep = n_loans > 0
    p, n, n_loans = p[keep], n[keep], n_loans[keep]
    if len(n_loans) == 0:
        return {"cum_default_gap": float("nan"), "cum_prepay_gap": float("nan")}
    pi = n[:, 0].sum(-1) / n_loans[:, None]  # (N, 7)
    gaps = {"cum_default_gap": np.zeros(len(n_loans)), "cum_prepay_gap": np.zeros(len(n_loans))}
    for t in range(p.shape[1]):
        pi = np.einsum("na,nab->nb", pi, p[:, t])
        # loans observed in month t (a loan may drop out of a real panel; synthetic ones never do)
        seen = n[:, t].sum(axis=(-2, -1))
        for key, state in (("cum_default_gap", LoanState.DEFAULT), ("cum_prepay_gap", LoanState.PREPAID)):
            real = np.divide(n[:, t, :, state].sum(-1), seen, out=np.zeros(len(seen)), where=seen > 0)
            gaps[key] = np.maximum(gaps[key], np.where(seen > 0, np.abs(pi[:, state] - real), 0.0))
    return {k: float((v * n_loans).sum() / n_loans.sum()) for k, v in gaps.items()}


def transformer_matrices(model: Any, data: Any, batch_size: int = 256) -> np.ndarray:
    """``(N, T, 7, 7)`` float64 matrices of a TransitionTransformer for :class:`CohortMonthData` rows."""
    import torch

    cf, macro, _ = data.tensors(len(model.cohort_feature_names))
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            out.append(model(cf[i:i + batch_size].to(model.device), macro[i:i + batch_size].to(model.device))
                       .double().cpu().numpy())
    if not out:
        return np.zeros((0, data.counts.shape[1], N_STATES, N_STATES))
    return np.concatenate(out)


def markov_baselines(train: Any, test: Any) -> dict[str, np.ndarray]:
    """Homogeneous baselines' ``(N_test, T, 7, 7)`` matrices, fitted on the training panels / counts.

    ``markov``: the :class:`~creditsim.transitions.markov.MarkovTransitionModel` matrix of the training
    panels (``train.markov_counts``, the summed ``counts_`` of its per-panel fits; when those are
    empty, the summed training counts). ``markov_by_cohort``: one homogeneous MLE matrix per (cohort
    definition, cohort label), pooled over training paths and months; unseen labels use ``markov``.
    """

    pooled_counts = train.markov_counts if train.markov_counts.sum() > 0 else train.counts.sum(axis=(0, 1))
    pooled = MarkovTransitionModel.from_matrix(homogeneous_matrix(pooled_counts)).transition_matrix_
    t_len = test.counts.shape[1]
    by_label: dict[tuple[str, str], np.ndarray] = {}
    keys = list(zip(train.definition, train.cohort))
    summed = train.counts.sum(axis=1)
    for key in dict.fromkeys(keys):
        mask = np.array([k == key for k in keys])
        n = summed[mask].sum(0)
        p = homogeneous_matrix(n)
        # a live row never observed for this cohort borrows the pooled row (not "stay")
        empty = n[:_N_LIVE].sum(1) == 0
        p[:_N_LIVE][empty] = pooled[:_N_LIVE][empty]
        by_label[key] = p
    cohort_mats = np.stack([by_label.get((d, c), pooled) for d, c in zip(test.definition, test.cohort)]) \
        if len(test) else np.zeros((0, N_STATES, N_STATES))
    return {
        "markov": np.broadcast_to(pooled, (len(test), t_len, N_STATES, N_STATES)),
        "markov_by_cohort": np.broadcast_to(cohort_mats[:, None], (len(test), t_len, N_STATES, N_STATES)),
    }


def _scores(p: np.ndarray, n: np.ndarray) -> dict[str, float]:
    row = transition_nll(p, n)
    row["brier"] = brier_score(p, n)
    row["roll_rate_tv"] = roll_rate_error(p, n)
    row["mean_ece"] = float(roll_rate_calibration(p, n)["ece"].mean())
    row.update(chained_curve_gap(p, n))
    return row


def evaluate_transition_models(model: Any, train: Any, test: Any,
                               definition: str | None = "asset_class_vintage_risk") -> pd.DataFrame:
    """Held-out table: transformer vs homogeneous Markov baselines on the test cohort-months.

    Args:
        model: a trained TransitionTransformer.
        train, test: :class:`~creditsim.transitions.train.CohortMonthData` splits (test paths are
            macro paths and loans never seen in training).
        definition: score only test rows of this cohort definition (None: all rows).

    Returns:
        DataFrame indexed by model (``transformer``, ``markov``, ``markov_by_cohort``) with columns
        ``nll`` (per live move, nats), ``nll_<state>``, ``n_moves``, ``brier``, ``roll_rate_tv``,
        ``mean_ece`` (mean ECE over :data:`KEY_MOVES`), ``cum_default_gap``, ``cum_prepay_gap``.
    """
    if definition is not None:
        test = test.subset(test.definition == definition)
    if len(test) == 0:
        raise DataError(f"test set has no cohorts of definition {definition!r}")
    mats = {"transformer": transformer_matrices(model, test), **markov_baselines(train, test)}
    rows = {name: _scores(p, test.counts) for name, p in mats.items()}
    return pd.DataFrame.from_dict(rows, orient="index")
