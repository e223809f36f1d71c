"""The contestants of the transition harness: the baselines a practitioner would reach for.

Every contestant is fitted on training :class:`~creditsim.harness.moves.MoveTable` moves only and
predicts, for each test move, a probability vector over the 7 states ``(n, 7)`` that is zero on moves
the allowed-transition mask forbids. Nothing it sees in prediction comes from the test split except the
test move's own start-of-period covariates.

* ``markov``: one homogeneous matrix for every loan (row MLE with censored default-free periods,
  :func:`creditsim.transitions.markov.row_mle`).
* ``markov_segment``: one matrix per segment (by default the previous state: the roll-rate-by-history
  chain collections teams use), rows without training moves fall back to ``markov``.
* ``markov_calendar``: one matrix per calendar month of the from-row; months never seen in training
  (every month of an out-of-time test) fall back to ``markov``.
* ``markov_segment_calendar``: segment x calendar month, falling back to ``markov_segment``.
* ``markov_cohort_calendar``: the transformer's own cohort key (segment x binned ``cohort_by`` numeric
  covariates) x calendar month, falling back to ``markov_segment_calendar``: the saturated cohort
  model the transformer must beat by pooling across cohorts.
* ``logit``: multinomial logistic regression on every covariate, one model per from-state.
* ``gbm``: scikit-learn's ``HistGradientBoostingClassifier`` on every covariate, one per from-state.
* ``transformer``: the library's TransitionTransformer on cohort x calendar-month sequences
  (:mod:`creditsim.harness.deep`).
* ``trajectory``: the library's LoanTrajectoryModel on each loan's own sequence, correcting
  ``markov_segment_calendar`` with every covariate and the loan's history (:mod:`creditsim.harness.trajectory`).

The two classifiers use the same factorisation as the chains' MLE: per from-state, a binary *default
hazard* fitted on every move (a censored period is a non-default) and a *conditional move* model over
the non-default destinations fitted on the observed non-default moves; ``p = (pD, (1 - pD) q)``. A default
hazard whose training moves all share one outcome predicts the Jeffreys-smoothed constant
``(k + 1/2) / (n + 1)`` instead of failing; a move model that saw one destination predicts it. Decisions, for the logit: numeric covariates enter as
standardised ``asinh(x)`` (money amounts are heavy-tailed, asinh is linear near 0 and logarithmic in the
tails), missing values as the training median plus a missing indicator, categoricals one-hot with
unseen levels as all-zero; L2 penalty ``C = 1``. For the GBM: categoricals are native categorical splits
(unseen levels are missing), early stopping on a seeded 10 % of the training moves (100 rounds without
early stopping when a destination has fewer than 10 training moves, which a stratified split cannot hold).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.moves import CohortKey, MoveTable
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES, LoanState
from creditsim.transitions.markov import row_mle

__all__ = ["Contestant", "ChainContestant", "ClassifierContestant", "CovariateDesign", "segment_chain",
           "segment_calendar_chain"]

_D = int(LoanState.DEFAULT)
_LIVE = range(int(LoanState.DPD90) + 1)



class Contestant(Protocol):
    """What the harness asks of a model: fit on training moves, predict ``(n, 7)`` for test moves."""

    name: str

    def fit(self, train: MoveTable) -> "Contestant": ...

    def predict(self, moves: MoveTable) -> np.ndarray: ...


#: credibility of a chain's fallback: each row of a keyed chain starts from this many pseudo-moves of
#: the fallback chain's row (a cohort with 3 moves is mostly its parent, one with 3,000 is itself), so
#: a thin cohort never puts probability 0 on a move its parent has seen. Chosen a priori, not tuned.
CREDIBILITY = 10.0


def _chains(moves: MoveTable, key: np.ndarray, n_keys: int, prior: np.ndarray | None = None) -> np.ndarray:
    """``(K, 7, 7)`` row-MLE matrices of the moves of each key index ``key`` ``(n,)`` (censored
    periods as default-free evidence), each row shrunk towards ``prior`` ``(K, 7, 7)`` with
    :data:`CREDIBILITY` pseudo-moves when given."""
    obs = moves.observed
    frm = moves.from_state.astype(np.int64)
    counts = np.zeros((n_keys, N_STATES, N_STATES))
    np.add.at(counts, (key[obs], frm[obs], moves.to_state[obs].astype(np.int64)), 1.0)
    if prior is not None:
        counts += CREDIBILITY * prior
    censored = np.zeros((n_keys, N_STATES))
    np.add.at(censored, (key[~obs], frm[~obs]), 1.0)
    return np.stack([row_mle(counts[k], censored[k]) for k in range(n_keys)])


class ChainContestant:
    """Homogeneous Markov chain(s), one per cohort key, with a fallback chain.

    Args:
        name: the contestant's name in reports.
        key: the :class:`~creditsim.harness.moves.CohortKey` whose value picks the matrix (no columns:
            one pooled matrix).
        fallback: the parent chain: each keyed row is shrunk towards it (:data:`CREDIBILITY`), and it
            answers for keys unseen in training (``None``: no shrinkage; a from-state without a single
            training move stays put).
    """

    def __init__(self, name: str, key: CohortKey | None = None, fallback: "ChainContestant | None" = None) -> None:
        self.name, self.key, self.fallback = name, key if key is not None else CohortKey(()), fallback
        self.matrices_: dict[object, np.ndarray] = {}

    def fit(self, train: MoveTable) -> "ChainContestant":
        if self.fallback is not None:
            self.fallback.fit(train)
        labels, key = np.unique(self.key.fit(train).labels(train), return_inverse=True)
        key = key.reshape(-1)
        prior = None
        if self.fallback is not None:  # the parent's matrix of each key, read at the key's first move
            first = np.unique(key, return_index=True)[1]
            mask = np.zeros(len(train), bool)
            mask[first] = True
            prior = np.empty((len(labels), N_STATES, N_STATES))
            prior[key[np.sort(first)]] = self.fallback.matrices_for(train.take(mask))
        self.matrices_ = dict(zip(labels, _chains(train, key, len(labels), prior)))
        return self

    def matrices_for(self, moves: MoveTable) -> np.ndarray:
        """``(n, 7, 7)`` the whole matrix this chain gives each move's key (absorbing rows stay put)."""
        out = np.tile(np.eye(N_STATES), (len(moves), 1, 1))
        for s in range(int(LoanState.DPD90) + 1):
            out[:, s] = self.predict(replace(moves, from_state=np.full(len(moves), s, np.int8)))
        return out

    def predict(self, moves: MoveTable) -> np.ndarray:
        labels, key = np.unique(self.key.labels(moves), return_inverse=True)
        # (K + 1, 7, 7): the fitted matrix of each test key, all zeros for keys unseen in training (the
        # extra zero matrix keeps an empty move table stackable)
        stacked = np.stack([self.matrices_.get(k, np.zeros((N_STATES, N_STATES))) for k in labels] + [np.zeros((N_STATES, N_STATES))])
        frm = moves.from_state.astype(np.int64)
        out = stacked[key.reshape(-1), frm]
        known = out.sum(1) > 0
        if (~known).any():
            if self.fallback is None:
                out[~known] = np.eye(N_STATES)[frm[~known]]  # an unseen from-state: stay (no evidence of moving)
            else:
                out[~known] = self.fallback.predict(moves.take(~known))
        return out


def segment_chain(segment_by: tuple[str, ...]) -> ChainContestant:
    """``markov_segment``: one chain per segment, shrunk towards the pooled chain."""
    return ChainContestant("markov_segment", CohortKey(tuple(segment_by)), ChainContestant("markov"))


def segment_calendar_chain(segment_by: tuple[str, ...]) -> ChainContestant:
    """``markov_segment_calendar``: one chain per segment and calendar month, shrunk towards
    :func:`segment_chain` (also the trajectory model's base chain)."""
    return ChainContestant("markov_segment_calendar", CohortKey((*segment_by, "period")), segment_chain(segment_by))


def _jeffreys(k: int, n: int) -> float:
    return (k + 0.5) / (n + 1.0)


class CovariateDesign:
    """Covariate preprocessing fitted on training moves (module docstring: logit vs GBM)."""

    def __init__(self, kind: str, categorical: tuple[str, ...]) -> None:
        self.kind, self.categorical = kind, categorical

    def fit(self, cov: pd.DataFrame) -> "CovariateDesign":
        self.numeric = [c for c in cov.columns if c not in self.categorical]
        self.levels = {c: sorted(pd.unique(cov[c].astype(str))) for c in self.categorical}
        x = self._numeric(cov)
        self.median = np.nanmedian(x, axis=0) if x.shape[1] else np.zeros(0)
        self.median = np.where(np.isfinite(self.median), self.median, 0.0)
        filled = np.where(np.isnan(x), self.median, x)
        self.mean, self.std = filled.mean(0), filled.std(0)
        self.std = np.where(self.std > 0, self.std, 1.0)
        self.has_missing = np.isnan(x).any(0)
        return self

    def _numeric(self, cov: pd.DataFrame) -> np.ndarray:
        x = cov[self.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64) if self.numeric else np.zeros((len(cov), 0))
        return np.arcsinh(x) if self.kind == "logit" else x

    def transform(self, cov: pd.DataFrame) -> np.ndarray:
        x = self._numeric(cov)
        if self.kind == "gbm":
            codes = [cov[c].astype(str).map({v: i for i, v in enumerate(self.levels[c])}).to_numpy(np.float64)
                     for c in self.categorical]
            return np.column_stack([*codes, x]) if codes or x.shape[1] else np.zeros((len(cov), 0))
        miss = np.isnan(x)
        z = (np.where(miss, self.median, x) - self.mean) / self.std
        parts = [z, miss[:, self.has_missing].astype(np.float64)]
        for c in self.categorical:
            parts.append((cov[c].astype(str).to_numpy()[:, None] == np.array(self.levels[c], dtype=object)[None, :]).astype(np.float64))
        return np.column_stack(parts)


class ClassifierContestant:
    """Default hazard x conditional move classifiers per from-state (module docstring).

    Args:
        name: ``"logit"`` or ``"gbm"``.
        seed: seeds the GBM's early-stopping split (the logit is deterministic).
    """

    def __init__(self, name: str, seed: int = 0) -> None:
        if name not in ("logit", "gbm"):
            raise ConfigError(f"classifier contestant: expected 'logit' or 'gbm', got {name!r}")
        self.name, self.seed = name, seed
        self.heads_: dict[int, tuple] = {}

    def _estimator(self, smallest_class: int):
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.linear_model import LogisticRegression
        except ImportError as exc:  # the 'eval' extra
            raise ConfigError("the logit and gbm contestants need scikit-learn: pip install 'creditsim[eval]'") from exc
        if self.name == "logit":
            return LogisticRegression(C=1.0, max_iter=2000)
        cat = list(range(len(self.design_.categorical)))
        # the early-stopping split is stratified: it needs every class twice and means little below ~10
        stop = smallest_class >= 10
        return HistGradientBoostingClassifier(max_iter=300 if stop else 100, learning_rate=0.1, max_leaf_nodes=31,
                                              l2_regularization=1.0, categorical_features=cat or None, early_stopping=stop,
                                              validation_fraction=0.1, random_state=self.seed)

    def _head(self, x: np.ndarray, y: np.ndarray) -> object:
        """A fitted classifier, or the smoothed constant class distribution if ``y`` has one value."""
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            return ("constant", classes, counts)
        empty = np.isnan(x).all(axis=0) if self.name == "gbm" and len(x) else np.zeros(x.shape[1], bool)
        if empty.any():
            # scikit-learn 1.9's binning fails on a column with no value at all (a lag no move of this
            # from-state reaches); as a constant it is never split on, so prediction needs no change
            x = np.where(empty[None, :], 0.0, x)
        return self._estimator(int(counts.min())).fit(x, y)

    def fit(self, train: MoveTable) -> "ClassifierContestant":
        self.design_ = CovariateDesign(self.name, train.categorical).fit(train.covariates)
        x_all = self.design_.transform(train.covariates)
        for s in _LIVE:
            rows = np.flatnonzero(train.from_state == s)
            if len(rows) == 0:
                continue
            to = train.to_state[rows].astype(np.int64)
            default = self._head(x_all[rows], (to == _D).astype(np.int64)) if ALLOWED_TRANSITIONS[s, _D] else None
            move_rows = rows[(to >= 0) & (to != _D)]
            moves = self._head(x_all[move_rows], train.to_state[move_rows].astype(np.int64)) if len(move_rows) else None
            self.heads_[s] = (default, moves, len(rows))
        return self

    @staticmethod
    def _proba(head: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(classes, (n, len(classes)))`` probabilities of a fitted head."""
        if isinstance(head, tuple):
            _, classes, counts = head
            return classes, np.tile(counts / counts.sum(), (len(x), 1))
        return head.classes_, head.predict_proba(x)

    def predict(self, moves: MoveTable) -> np.ndarray:
        out = np.zeros((len(moves), N_STATES))
        x_all = self.design_.transform(moves.covariates)
        for s in _LIVE:
            rows = np.flatnonzero(moves.from_state == s)
            if len(rows) == 0:
                continue
            if s not in self.heads_:
                out[rows, s] = 1.0  # no training move out of this state: stay
                continue
            default, move_head, _ = self.heads_[s]
            x = x_all[rows]
            p_d = self._default_probability(default, x)
            q = np.zeros((len(rows), N_STATES))
            if move_head is None:
                q[:, s] = 1.0
            else:
                classes, prob = self._proba(move_head, x)
                q[:, classes] = prob
            q[:, ~ALLOWED_TRANSITIONS[s]] = 0.0
            q[:, _D] = 0.0
            q /= np.maximum(q.sum(1, keepdims=True), 1e-300)
            out[rows] = (1.0 - p_d)[:, None] * q
            out[rows, _D] = p_d
        return out

    def _default_probability(self, head: object, x: np.ndarray) -> np.ndarray:
        if head is None:
            return np.zeros(len(x))
        if isinstance(head, tuple):
            _, classes, counts = head
            k = int(counts[classes == 1].sum())
            return np.full(len(x), _jeffreys(k, int(counts.sum())))
        return head.predict_proba(x)[:, list(head.classes_).index(1)]
