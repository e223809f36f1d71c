"""The library's TransitionTransformer as a harness contestant, trained on the training split's moves.

A cohort model predicts one matrix per (cohort, calendar month), so the contestant first says what a
cohort is: the joint value of the ``segment_by`` categorical covariates and of the ``cohort_by``
numeric covariates cut at training quantiles (``n_bins`` bins). Each cohort is one training sequence:

* counts ``(T, 7, 7)`` of its observed moves per calendar month ``t`` (months since the training
  split's first month, so every cohort shares the calendar: position ``t`` *is* a date), and censored
  default-free periods ``(T, 7)`` by from-state;
* cohort features: one-hot levels of the categorical key columns and the training median (asinh) of
  each numeric key column's bin -- derived from the key alone, so a cohort unseen in training (a rare
  combination) still gets a prediction, pooled through the shared weights rather than a fallback;
* the macro path ``(T, 9)``: each period's average (:attr:`MoveTable.macro`) when the moves carry one
  (zeros otherwise: then the calendar enters only through the period embeddings).
* or, with ``credit_link`` (``"auto"``, the harness default when a macro frame is given), no path at all: the
  economy reaches the network's test periods through a bank credit-cycle link fitted before the split,
  as an odds ratio on the moves out of CURRENT (:mod:`creditsim.harness.cycle`, :func:`_tilted`). Why: one panel's
  training years hold one stretch of one economy; on the SBA 7(a) panel the path-reading network learnt
  a response that ran the wrong way through 2008-10 (+0.0022 nats per move against the pooled chain),
  the link-driven one beat it (-0.0026, ``bench/bench_sba_recession.py``). The credit for that is the
  link's: every test period reuses the last trained month's embedding, so the network's forecast is
  its level at the split times the link's ratio, and the recent chain times the same ratio
  (``markov_link``, :mod:`creditsim.harness.linked`) ties it there.

Loss: the multinomial NLL of the observed moves plus ``-log(1 - P_DEFAULT)`` per censored period, per
live move (the same likelihood the chains' MLE and the harness score use). A seeded 15 % of the
training *loans* is the early-stopping split. Months after the training window (an out-of-time test)
reuse the last trained month's embedding (``max_months`` = training months), with the test months'
realised macro values as inputs: a conditional forecast given the path, as in a stress test.

Ensemble (decision): ``members`` (default 3) networks are trained, each with its own initialisation,
batch order and early-stopping loans (:func:`member_seed`), and the prediction is the mean of their
probability vectors. On the UCI panel one network's margin over the strongest chain depended on the seed
(-0.0011 / -0.0021 / -0.0007 nats per move for seeds 0 / 1 / 2, the last interval touching 0); the
seeds' networks make different errors, and their average is what a practitioner would ship. It costs
``members`` times the fit time (a few seconds each on that panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError
from creditsim.harness.cycle import ONSET, fit_cycle_tilt, last_training_month, resolve_link
from creditsim.harness.moves import CohortKey, MoveTable, held_out_loans, month_number
from creditsim.nn.trainer import TrainConfig, fit
from creditsim.states import MACRO_VARS, N_STATES, LoanState
from creditsim.transitions.transformer import TransitionConfig, TransitionTransformer

__all__ = ["NetSettings", "TransformerContestant", "TransformerSettings", "period_path"]

_D = int(LoanState.DEFAULT)
_N_LIVE = int(LoanState.DPD90) + 1


@dataclass(frozen=True)
class NetSettings:
    """Size and training of a harness network: width, heads, blocks, dropout; epochs, batch, learning rate,
    early-stopping patience (epochs) and the share of training loans held out for early stopping."""

    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    epochs: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    patience: int = 30
    val_share: float = 0.15


@dataclass(frozen=True)
class TransformerSettings(NetSettings):
    """The harness transformer (small: a panel has few cohort sequences); ``n_bins`` cuts each numeric
    cohort covariate; ``members`` independently trained networks whose predicted probabilities are
    averaged (a deep ensemble, module docstring)."""

    n_bins: int = 5
    members: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ConfigError(f"TransformerSettings.members must be a positive integer, got {self.members!r}")


class TransformerContestant:
    """TransitionTransformer over cohort x calendar-month sequences (module docstring).

    Args:
        segment_by: categorical covariates of the cohort key.
        cohort_by: numeric covariates cut into ``settings.n_bins`` training-quantile bins.
        seed: initialisation, batch order and the early-stopping split.
        settings: :class:`TransformerSettings`.
    """

    name = "transformer"

    def __init__(self, segment_by: tuple[str, ...] = ("prev_state",), cohort_by: tuple[str, ...] = (),
                 seed: int = 0, settings: TransformerSettings = TransformerSettings(), progress: bool = False,
                 credit_link: str | None = None, macro: pd.DataFrame | None = None) -> None:
        self.key = CohortKey(segment_by, cohort_by, settings.n_bins)
        self.seed, self.settings, self.progress = seed, settings, progress
        if credit_link is not None and macro is None:
            raise ConfigError(f"credit_link={credit_link!r} needs the monthly macro frame (macro=...)")
        self.credit_link, self.macro = credit_link, macro

    def _period(self, moves: MoveTable) -> np.ndarray:
        """``(n,)`` int64 calendar period of each move, counted from the training split's first one."""
        return np.maximum((month_number(moves.month) - self.first_month_) // moves.period_months, 0)

    def _sequences(self, moves: MoveTable, k: np.ndarray, n_keys: int, months: int) -> tuple[np.ndarray, np.ndarray]:
        """Observed counts ``(K, T, 7, 7)`` and censored counts ``(K, T, 7)`` of ``moves`` per cohort
        (``k`` ``(n,)``: each move's cohort index)."""
        t = np.clip(self._period(moves), 0, months - 1)
        frm = moves.from_state.astype(np.int64)
        obs = moves.observed
        counts = np.zeros((n_keys, months, N_STATES, N_STATES))
        np.add.at(counts, (k[obs], t[obs], frm[obs], moves.to_state[obs].astype(np.int64)), 1.0)
        cens = np.zeros((n_keys, months, N_STATES))
        np.add.at(cens, (k[~obs], t[~obs], frm[~obs]), 1.0)
        return counts, cens

    # ------------------------------------------------------------------ fit / predict
    def fit(self, train: MoveTable) -> "TransformerContestant":
        self.key.fit(train)
        self.first_month_ = int(month_number(train.month).min())
        months = int(self._period(train).max()) + 1
        uniq, key = np.unique(self.key.codes(train), axis=0, return_inverse=True)
        key = key.reshape(-1)
        feats = self.key.features(uniq)
        macro = self.path_ = period_path(train, self._period(train), np.zeros((0, len(MACRO_VARS))), months)
        self.cycle_ = None
        last_month = last_training_month(train)
        series = resolve_link(self.credit_link, self.macro, last_month)
        if series is not None:  # the economy enters through the link, not the path (harness.cycle)
            self.cycle_ = fit_cycle_tilt(series, self.macro, last_month)
        self.members_, self.fits_ = [], []
        for k in range(self.settings.members):
            model, result = self._fit_member(train, key, feats, macro, months, member_seed(self.seed, k))
            self.members_.append(model)
            self.fits_.append(result)
        # model_ / fit_ are member 0 (the one seeded like a single network), kept for callers that inspect one
        # network; predictions average all members
        self.model_, self.fit_, self.months_ = self.members_[0], self.fits_[0], months
        return self

    def _fit_member(self, train: MoveTable, key: np.ndarray, feats: np.ndarray, macro: np.ndarray, months: int,
                    seed: int) -> tuple[TransitionTransformer, Any]:
        """One network of the ensemble: its own early-stopping loans, initialisation and batch order."""
        n_keys = len(feats)
        is_val = held_out_loans(train, self.settings.val_share, seed)
        tensors = {}
        for side, mask in (("train", ~is_val), ("val", is_val)):
            n, c = self._sequences(train.take(mask), key[mask], n_keys, months)
            tensors[side] = [torch.as_tensor(feats, dtype=torch.float32),
                             torch.as_tensor(np.broadcast_to(macro, (n_keys, *macro.shape)).copy(), dtype=torch.float32),
                             torch.as_tensor(n, dtype=torch.float32), torch.as_tensor(c, dtype=torch.float32)]
        s = self.settings
        torch.manual_seed(seed)
        model = TransitionTransformer(TransitionConfig(n_cohort_features=feats.shape[1], n_macro_vars=len(MACRO_VARS), d_model=s.d_model,
                                                       n_heads=s.n_heads, n_layers=s.n_layers, dropout=s.dropout, max_months=months,
                                                       macro_inputs=self.cycle_ is None))
        model.set_scalers(macro.mean(0), macro.std(0), feats.mean(0), feats.std(0))
        total = tensors["train"][2].sum(dim=(0, 1)).numpy()
        model.set_prior(total / np.maximum(total.sum(1, keepdims=True), 1.0) + np.eye(N_STATES) * (total.sum(1, keepdims=True) == 0))
        cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, patience=s.patience, min_epochs=10,
                          seed=seed, progress=self.progress)
        result = fit(model, _censored_nll, tensors["train"], tensors["val"], cfg, description="harness transformer")
        return model.eval(), result

    @torch.no_grad()
    def predict(self, moves: MoveTable) -> np.ndarray:
        codes = self.key.codes(moves)
        uniq, inverse = np.unique(codes, axis=0, return_inverse=True)
        month = self._period(moves)
        span = int(max(month.max(), self.months_ - 1)) + 1
        macro = period_path(moves, month, self.path_, span)
        feats = torch.as_tensor(self.key.features(uniq), dtype=torch.float32)
        path = torch.as_tensor(np.broadcast_to(macro, (len(uniq), *macro.shape)).copy(), dtype=torch.float32)
        rows = (inverse.reshape(-1), np.clip(month, 0, span - 1), moves.from_state.astype(np.int64))
        p = np.zeros((len(moves), N_STATES))
        for model in self.members_:  # members in a fixed order: the same sum for any batch of moves
            logp = model.log_matrices(feats, path)  # (K, span, 7, 7)
            if self.cycle_ is not None:
                logp = _tilted(logp, self.cycle_.period_tilt(self.first_month_, moves.period_months, span))
            mats = logp.exp().double().numpy()
            row = mats[rows]
            p += row / row.sum(1, keepdims=True)
        return p / len(self.members_)


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member ``member``: ``seed`` itself for the first (so a one-member ensemble is the
    single network of that seed), then distinct draws of ``SeedSequence([seed, member])``."""
    return seed if member == 0 else int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def period_path(moves: MoveTable, period: np.ndarray, known: np.ndarray, span: int) -> np.ndarray:
    """``(span, 9)`` macro path by calendar period: ``known`` rows first (the training path), then the
    period averages the moves carry (:attr:`MoveTable.macro`), gaps filled with the last period before
    them (and the first after, at the start); zeros without macro. The transformer is causal, so a test
    period's matrices also read the training periods before it, as they happened."""
    path = np.full((span, len(MACRO_VARS)), np.nan)
    if moves.macro is None:
        return np.zeros_like(path)
    path[period, :] = moves.macro
    path[: len(known)] = known[:span]
    return pd.DataFrame(path).ffill().bfill().fillna(0.0).to_numpy()


def _tilted(logp: torch.Tensor, tilt: np.ndarray) -> torch.Tensor:
    """``(K, T, 7, 7)`` log matrices with period ``t``'s log-odds of leaving CURRENT for a worse state raised by ``tilt[t]`` (``(T,)``)
    and each row renormalised (:mod:`creditsim.harness.cycle`); forbidden moves stay ``-inf``."""
    shift = torch.as_tensor(tilt, dtype=logp.dtype)[:, None, None] * torch.as_tensor(ONSET, dtype=logp.dtype)
    return torch.log_softmax(logp + shift, dim=-1)


def _censored_nll(model: TransitionTransformer, batch: list[torch.Tensor], epoch: int) -> dict[str, torch.Tensor]:
    """Per-live-move NLL of observed counts plus censored default-free periods (module docstring)."""
    cf, macro, counts, cens = batch
    logp = model.log_matrices(cf, macro)  # (B, T, 7, 7)
    ll = torch.where(counts > 0, counts * logp, torch.zeros_like(logp)).sum()
    survive = torch.log1p(-logp[..., _D].exp().clamp(max=1.0 - 1e-7))  # (B, T, 7)
    ll = ll + (cens * survive).sum()
    exposure = (counts[..., :_N_LIVE, :].sum() + cens[..., :_N_LIVE].sum()).clamp_min(1.0)
    return {"loss": -ll / exposure}
