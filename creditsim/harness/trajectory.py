"""The library's LoanTrajectoryModel as a harness contestant: loan sequences of a real panel.

Each loan's moves form a sequence (a gap in its rows starts a new one; a long one is cut into windows
of ``TrajectorySettings.window`` periods). The model reads, per month,
the previous state, the loan's 24 contract features (:func:`creditsim.features.loan_features` from the
tape, as of the end of the sequence's first move), the start-of-month covariates every covariate model sees
(:class:`~creditsim.harness.contestants.CovariateDesign`, as the logit sees them: standardised asinh
numerics, missing flags, one-hot categoricals, the calendar month among them) through the model's
``n_step_features`` slot, and -- as its base -- the cohort matrix of ``markov_segment_calendar`` fitted
on the training split: the model learns a correction to that chain's log row. Attention runs over the
loan's own history, so unlike the classifiers it sees every earlier month, not just the previous state.

Loss: NLL of each observed next state plus ``-log(1 - P_DEFAULT)`` per censored default-free month,
per live move, as every contestant. Teacher forcing in scoring too: the states before a test month are
the loan's observed ones (next-month prediction given the history to date, as the other contestants).
A seeded 15 % of the training loans is the early-stopping split. The diffusion head is not used (no
value targets); the maturity rule of the model applies, so a panel in which loans stay CURRENT past
their tape maturity is refused by the model's own check naming the loan and month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError
from creditsim.features import loan_features
from creditsim.harness.contestants import CovariateDesign, segment_calendar_chain
from creditsim.harness.deep import NetSettings
from creditsim.harness.moves import MoveTable, held_out_loans, month_number
from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig, censored_state_nll
from creditsim.nn.trainer import TrainConfig, fit
from creditsim.states import MACRO_VARS, N_STATES, LoanState

__all__ = ["TrajectoryContestant", "TrajectorySettings"]

_D = int(LoanState.DEFAULT)


@dataclass(frozen=True)
class TrajectorySettings(NetSettings):
    """The harness trajectory model (many loan sequences: fewer epochs, bigger batches). ``window``: the
    longest sequence, in periods; a loan's longer history is cut into consecutive windows (each starts
    from the observed state and carries ``prev_state`` and any lagged covariates), which bounds the
    padding and the attention cost on long panels at the price of attention beyond ``window`` periods.
    ``patience`` 8 (measured on 2 cores, ``bench/bench_harness_scale.py``): at 100k loans x 60 months the fit
    takes 469 s on a quiet machine (twice, 468.6 and 468.8 s; an earlier 663 s was taken beside other
    work), test NLL 0.1688; with 5 it took about half that at the same NLL, but on the UCI panel 5 loses a
    third of the margin over gradient boosting in one seed of three, so the default keeps 8 and a large
    panel may pass 5."""

    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    patience: int = 8
    window: int = 24


class TrajectoryContestant:
    """LoanTrajectoryModel over loan sequences (module docstring).

    Args:
        tape: the static loan tape (contract fields for :func:`creditsim.features.loan_features`).
        segment_by: categorical covariates of the base chain's segment (with the calendar month).
        seed: initialisation, batch order and the early-stopping split.
    """

    name = "trajectory"

    def __init__(self, tape: pd.DataFrame | None, segment_by: tuple[str, ...] = ("prev_state",),
                 seed: int = 0, settings: TrajectorySettings = TrajectorySettings(), progress: bool = False) -> None:
        if tape is None:
            raise ConfigError("the trajectory contestant needs the loan tape (--tape): its contract fields "
                              "(balance, rate, term, amortisation) are the model's loan features")
        self.tape = tape.assign(loan_id=tape["loan_id"].astype(str)).drop_duplicates("loan_id").set_index("loan_id", drop=False)
        self.segment_by, self.seed, self.settings, self.progress = tuple(segment_by), seed, settings, progress

    # ------------------------------------------------------------------ sequences
    def _sequences(self, moves: MoveTable) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
        """Model tensors of ``moves`` and each move's (sequence, month) position."""
        month = month_number(moves.month)
        loan = moves.loan_id.astype(str)
        run = np.ones(len(moves), bool)
        run[1:] = (loan[1:] != loan[:-1]) | (month[1:] - month[:-1] != moves.period_months)
        in_run = np.arange(len(moves)) - np.flatnonzero(run)[np.cumsum(run) - 1]
        new = run | (in_run % self.months_ == 0)  # windows of at most months_ moves
        seq = np.cumsum(new) - 1
        start = np.flatnonzero(new)
        pos = np.arange(len(moves)) - start[seq]
        B, T = len(start), int(pos.max()) + 1
        feats = np.zeros((B, 24), np.float32)
        first = moves.month[start]
        for m0 in pd.unique(first):
            at = np.flatnonzero(first == m0)
            ids = loan[start[at]]
            # as of the first move's own month: a maturity date is a month start, the last instalment is
            # paid in the month before it, which is the model's maturity month rem - 1
            as_of = pd.Timestamp(m0) + pd.DateOffset(months=moves.period_months)
            feats[at] = loan_features(self.tape.loc[ids].reset_index(drop=True), as_of=as_of).to_numpy(np.float32)
        cohort = np.tile(np.eye(N_STATES, dtype=np.float32), (B, T, 1, 1))
        cohort[seq, pos] = self.base_.matrices_for(moves)
        step = np.zeros((B, T, self.design_width_), np.float32)
        step[seq, pos] = self.design_.transform(moves.covariates)
        target = np.zeros((B, T), np.int64)
        obs = moves.observed
        target[seq, pos] = np.where(obs, moves.to_state, moves.from_state)
        # padding after a sequence ends (weight 0, and causal attention keeps it out of the real months):
        # a live last state defaults and stays there -- a move the allowed-move mask and the maturity
        # rule permit in every month -- an absorbed one stays put
        last = np.zeros(B, np.int64)
        last[seq] = target[seq, pos]
        last = np.where(last <= int(LoanState.DPD90), _D, last)
        length = np.bincount(seq, minlength=B)  # (B,) moves in each sequence
        pad = np.arange(T)[None, :] > (length - 1)[:, None]
        target = np.where(pad, last[:, None], target)
        w_obs, w_cens = np.zeros((B, T), np.float32), np.zeros((B, T), np.float32)
        w_obs[seq[obs], pos[obs]] = 1.0
        w_cens[seq[~obs], pos[~obs]] = 1.0
        macro = np.zeros((B, T, len(MACRO_VARS)))
        if moves.macro is not None:  # each month's period average; padding repeats the sequence's last month
            macro[seq, pos] = moves.macro
            macro = np.where(pad[..., None], macro[np.arange(B), length - 1][:, None, :], macro)
        tensors = [torch.from_numpy(feats), torch.from_numpy(cohort), torch.from_numpy(step), torch.from_numpy(target),
                   torch.as_tensor(moves.from_state[start], dtype=torch.long), torch.from_numpy(w_obs),
                   torch.from_numpy(w_cens), torch.as_tensor(macro, dtype=torch.float32)]
        return tensors, seq, pos

    # ------------------------------------------------------------------ fit / predict
    def fit(self, train: MoveTable) -> "TrajectoryContestant":
        self.base_ = segment_calendar_chain(self.segment_by).fit(train)
        self.design_ = CovariateDesign("logit", train.categorical).fit(train.covariates)
        self.design_width_ = self.design_.transform(train.covariates.iloc[:1]).shape[1]
        month = month_number(train.month)
        self.months_ = min(int(month.max() - month.min()) // train.period_months + 1, self.settings.window)
        is_val = held_out_loans(train, self.settings.val_share, self.seed)
        s = self.settings
        torch.manual_seed(self.seed)
        self.model_ = LoanTrajectoryModel(TrajectoryConfig(
            d_model=s.d_model, n_heads=s.n_heads, n_layers=s.n_layers, dropout=s.dropout, max_months=self.months_,
            diffusion_steps=2, diffusion_hidden=8, value_weight=0.0, idio_scale=0.0, n_step_features=self.design_width_))
        cfg = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, patience=s.patience, min_epochs=5,
                          seed=self.seed, progress=self.progress)
        self.fit_ = fit(self.model_, _sequence_nll, self._sequences(train.take(~is_val))[0],
                        self._sequences(train.take(is_val))[0], cfg, description="harness trajectory model")
        self.model_.eval()
        return self

    @torch.no_grad()
    def predict(self, moves: MoveTable) -> np.ndarray:
        tensors, seq, pos = self._sequences(moves)
        probs = []
        for i in range(0, tensors[0].shape[0], 4096):
            feats, cohort, step, target, init, _, _, macro = (t[i:i + 4096] for t in tensors)
            out = self.model_(feats, cohort, target, macro_path=None if moves.macro is None else macro,
                              initial_states=init, step_features=step)
            probs.append(torch.softmax(out["state_logits"].double(), dim=-1).numpy())
        p = np.concatenate(probs)[seq, pos]
        return p / p.sum(1, keepdims=True)


def _sequence_nll(model: LoanTrajectoryModel, batch: list[torch.Tensor], epoch: int) -> dict[str, torch.Tensor]:
    """Per-live-move NLL of observed next states plus censored default-free months."""
    feats, cohort, step, target, init, w_obs, w_cens, macro = batch
    macro_path = macro if bool(macro.abs().sum() > 0) else None  # all zeros: a panel without macro
    out = model(feats, cohort, target, macro_path=macro_path, initial_states=init, step_features=step)
    return {"loss": censored_state_nll(out["state_logits"], target, w_obs, w_cens)}
