"""Train a :class:`~creditsim.loans.trajectory.LoanTrajectoryModel` on your own loan panel, for
``simulate(engine="trajectory", trajectory_model=model)`` and ``creditsim simulate --trajectory-model DIR``.

    model = train_trajectory_on_panel(panel, tape, macro="history", out="models/trajectory")

A simulation starts every loan of the tape at the cut-off and runs it month by month, reading the loan's
contract features, its asset class's monthly transition matrices (from the transition model) and the
macro path. The panel is cut so that the model is asked the same question in training:

* **Snapshots.** Cut-off months ``c`` = the panel's first month, then every ``stride`` months. At each,
  the loans in a live state (CURRENT..DPD90; delinquent starts are kept) form sequences of the next
  ``window`` months ``c+1 .. c+window``, starting from their state at ``c``. A loan is in several
  snapshots, so each of its moves is learnt at several seasonings, as a simulation from any cut-off needs.
* **Loan features** (:func:`creditsim.features.loan_features`) from the tape, as of month ``c+1``, the
  model's month 0 (the convention of the shipped model's panels and of the harness contestant). They
  are static contract terms: the model reads no per-month covariates here, because a simulation has
  none to give it (the harness contestant, which scores next-month prediction, does read them).
* **Cohort matrices.** In a simulation the model reads the asset class's matrices of the transition
  model (:meth:`creditsim.risk.pool_engine.PoolEngine.cohort_matrices`); here the *empirical* monthly
  matrices of the asset class among the snapshot's training loans, shrunk towards the class's all-month
  rows and those towards the pooled rows (:func:`~creditsim.loans.train.shrink_cohort_counts`). So the
  model learns the loan's deviation from its class (contract terms, its own delinquency history,
  seasoning), not the class's level, which the transition model supplies.
* **Macro.** Month ``c+1+t`` reads the macro values of that calendar month (a monthly frame, or
  ``"history"``, as :func:`creditsim.transitions.panel_train.macro_rows`).
* **What counts as observed.** A sequence runs to the loan's first missing month (a gap, or the panel's
  end); later months are padding with weight 0. A loan whose last row carries ``censored = True`` adds
  one default-free month, scored ``-log(1 - P(DEFAULT))`` (the harness's likelihood for it).
* **The contract's maturity rule** (the model's own, :meth:`LoanTrajectoryModel._apply_rules`): a payoff
  before the tape's maturity month is a prepayment, from it on a maturity, and no loan stays CURRENT
  past it. The maturity month is the month before ``maturity_date`` (the engine's convention); a panel that
  reports MATURED in ``maturity_date``'s own month, one month later, is read one month earlier. A panel row
  MATURED before the tape's maturity month is read as PREPAID; a loan CURRENT past it (an extension the
  tape does not know) is censored from that month. Both are counted in the
  checkpoint. A move :data:`~creditsim.states.ALLOWED_TRANSITIONS` forbids is a DataError naming the
  loan and month.
* **Values.** With the panel's ``scheduled_payment``, ``actual_payment``, ``current_balance`` and
  ``loss_amount``, the payment ratio of performing months and the LGD (loss over the balance of the
  month before) of default months, as :func:`~creditsim.loans.train.panel_arrays`; without them the
  diffusion head is not trained.
* **Warm start** (default, decision): from the shipped checkpoint. One real panel spans one economy and
  often few defaults; the shipped model brings a value head and a macro response learnt on many paths,
  and the panel adapts them to the book. ``warm_start=False`` trains the shipped architecture from
  scratch.
* **Early stopping** on a seeded share of the loans (all their snapshots), best weights kept.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.checkpoints import check_checkpoint_target
from creditsim.errors import ConfigError, DataError
from creditsim.features import loan_features
from creditsim.loans.train import SHIPPED_CONFIG, SHIPPED_TRAINING, shrink_cohort_counts
from creditsim.loans.trajectory import N_VALUES, LoanTrajectoryModel, censored_state_nll, remaining_term
from creditsim.nn.trainer import TrainConfig, fit
from creditsim.schema import as_loan_tape
from creditsim.states import ALLOWED_TRANSITIONS, ASSET_CLASSES, N_STATES, LoanState
from creditsim.transitions.markov import MODEL_FILE as MARKOV_FILE
from creditsim.transitions.cohorts import (check_rows_from_origination, panel_loan_positions, panel_month_numbers,
                                           panel_states)
from creditsim.transitions.panel_train import check_training_panel, macro_rows
from creditsim.transitions.period_moves import check_monthly_panel

__all__ = ["PANEL_TRAINING", "VAL_SEQUENCES", "PanelSequences", "panel_trajectory_sequences", "train_trajectory_on_panel",
           "sequence_nll", "cohort_matrix_nll"]

_D, _CUR, _PRE, _MAT = int(LoanState.DEFAULT), int(LoanState.CURRENT), int(LoanState.PREPAID), int(LoanState.MATURED)
_LIVE_MAX = int(LoanState.DPD90)
_VALUE_COLUMNS = ("scheduled_payment", "actual_payment", "current_balance", "loss_amount")

#: the shipped model's optimiser settings with epochs of at most 32,768 sequences (decision): measured on a
#: 100,000-loan x 60-month synthetic panel (234k sequences of 24 months), a full pass took 93 s on 2 cores,
#: so early stopping (10 epochs floor, patience 10) would need half an hour; a panel of up to 32k training
#: sequences (the UCI panel's 25k) trains exactly as with full passes
PANEL_TRAINING: TrainConfig = replace(SHIPPED_TRAINING, epoch_size=32_768)
#: held-out sequences that early stopping monitors, at most (a seeded subset of the held-out loans')
VAL_SEQUENCES = 16_384


@dataclass
class PanelSequences:
    """Loan sequences of a panel's snapshots (module docstring), ``n`` sequences of ``T = window`` months.

    Attributes:
        features: ``(n, 24)`` float32 loan features as of each sequence's month 0.
        cohort_index: ``(n,)`` int64 row of ``cohort_matrices`` (snapshot x asset class).
        path_index: ``(n,)`` int64 row of ``macro_paths`` (the snapshot).
        initial_states: ``(n,)`` int64 live state at the snapshot's cut-off.
        states: ``(n, T)`` int64 end-of-month states (padding: DEFAULT after a live last state, else the
            absorbing state held).
        values: ``(n, T, 2)`` float32 payment ratio and LGD; ``value_mask`` ``(n, T, 2)`` bool.
        observed: ``(n, T)`` float32 1 where the move from a live state was observed.
        censored: ``(n, T)`` float32 1 on a censored default-free month.
        cohort_matrices: ``(n_snapshots x 4, T, 7, 7)`` float32; ``macro_paths`` ``(n_snapshots, T, 9)``.
        held_out: ``(n,)`` bool, the early-stopping loans' sequences.
        loan_id: ``(n,)`` the tape's loan ids; ``cutoffs``: the snapshots' cut-off months.
        relabelled: loans whose MATURED rows before the tape's maturity were read as PREPAID;
            ``truncated``: sequences censored where a loan stayed CURRENT past the tape's maturity;
            ``matured_on_date``: loans whose maturity the panel dates in ``maturity_date``'s own month,
            read one month earlier (:func:`_maturity_rule`). Loans, not sequences: a loan in two
            overlapping snapshots is counted once.
    """

    features: torch.Tensor
    cohort_index: torch.Tensor
    path_index: torch.Tensor
    initial_states: torch.Tensor
    states: torch.Tensor
    values: torch.Tensor
    value_mask: torch.Tensor
    observed: torch.Tensor
    censored: torch.Tensor
    cohort_matrices: torch.Tensor
    macro_paths: torch.Tensor
    held_out: np.ndarray
    loan_id: np.ndarray
    cutoffs: pd.DatetimeIndex
    relabelled: int
    truncated: int
    matured_on_date: int = 0

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def tensors(self, rows: np.ndarray) -> list[torch.Tensor]:
        """Per-sequence tensors of ``rows`` (bool mask) in the order :func:`_sequence_loss` reads them."""
        idx = torch.from_numpy(np.flatnonzero(rows))
        return [t[idx] for t in (self.features, self.cohort_index, self.path_index, self.initial_states, self.states,
                                 self.values, self.value_mask, self.observed, self.censored)]


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _grid(values: np.ndarray, pos: np.ndarray, month: np.ndarray, shape: tuple[int, int], fill: Any,
          dtype: Any) -> np.ndarray:
    out = np.full(shape, fill, dtype=dtype)
    out[pos, month] = values
    return out


def _with_censored(counts: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """``counts`` ``(C, T, 7, 7)`` plus ``unknown`` ``(C, T, 7)`` censored default-free months, each spread
    over the non-default moves of its row in proportion to the row's observed ones (else its cohort's
    all-month row, else the pooled row, else staying put). This is the maximum-likelihood row for a
    multinomial with such coarsened observations: ``P(DEFAULT) = n_D / (n + m)`` and the other moves keep
    their observed proportions. Without it a month whose survivors are censored (a panel that reports the
    month only for defaulters, like the UCI panel's last) would look like a month of certain default."""
    if not unknown.any():
        return counts
    other = counts.copy()
    other[..., _D] = 0.0
    share = other
    for prior in (other.sum(axis=1, keepdims=True), other.sum(axis=(0, 1), keepdims=True)):
        empty = share.sum(-1, keepdims=True) == 0
        share = np.where(empty, np.broadcast_to(prior, share.shape), share)
    stay = np.broadcast_to(np.eye(N_STATES), share.shape)
    share = np.where(share.sum(-1, keepdims=True) == 0, stay, share)
    return counts + unknown[..., None] * share / share.sum(-1, keepdims=True)


def _panel_grids(panel: pd.DataFrame, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict | None, int]:
    """The panel on a (tape loan x calendar month) grid: states (-1 where no row), the ``censored`` flags,
    the value columns (None when the panel lacks one) and the first month (months since 1970-01)."""
    pos = panel_loan_positions(panel, frame)
    month_no = panel_month_numbers(panel)
    check_rows_from_origination(panel, frame, pos, month_no)
    state = panel_states(panel)
    m0 = int(month_no.min())
    span = int(month_no.max()) - m0 + 1
    if span < 2:
        raise DataError(f"panel: every row is in {str(np.datetime64(m0, 'M'))}; a move needs two consecutive months")
    col = month_no - m0
    key = pos.astype(np.int64) * span + col
    if len(np.unique(key)) != len(key):
        dup = panel.index[pd.Series(key).duplicated(keep=False).to_numpy()]
        raise DataError(f"panel: {len(dup)} rows repeat a loan's month (first rows {list(dup[:4])}); expected one row per "
                        "loan and month")
    L = len(frame)
    grid = _grid(state, pos, col, (L, span), -1, np.int8)
    flags = np.zeros(len(panel), bool)
    if "censored" in panel.columns:
        raw = panel["censored"]
        if not (pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw)) or \
                not raw.dropna().isin([0, 1, True, False]).all():
            raise DataError("panel: column 'censored' must hold True/False (or 1/0, blank = False); got "
                            f"{list(pd.unique(raw.dropna()))[:4]}")
        flags = raw.fillna(False).astype(bool).to_numpy()
    cens = _grid(flags, pos, col, (L, span), False, bool)
    value_grids = None
    have = [c for c in _VALUE_COLUMNS if c in panel.columns]
    if have and len(have) < len(_VALUE_COLUMNS):  # likely a renamed column: say so rather than train without it
        warnings.warn(f"panel: has {have} but not {[c for c in _VALUE_COLUMNS if c not in have]}; the payment-ratio and "
                      "LGD head is trained only with all four value columns, so it keeps its starting weights", stacklevel=3)
    if len(have) == len(_VALUE_COLUMNS):
        value_grids = {c: _grid(pd.to_numeric(panel[c], errors="coerce").to_numpy(np.float64), pos, col, (L, span),
                                np.nan, np.float64) for c in _VALUE_COLUMNS}
    return grid, cens, value_grids, m0


def _maturity_rule(s: np.ndarray, init: np.ndarray, present: np.ndarray, rem: np.ndarray, after: np.ndarray) -> tuple:
    """The contract's maturity rule applied to a snapshot's observed states ``s`` ``(n, window)`` (module
    docstring). The model's maturity month is ``rem - 1`` (the month before ``maturity_date``, the engine's
    and generator's convention); a panel that dates the final payment in ``maturity_date``'s own month
    reports CURRENT in the model's maturity month and MATURED one month later: that CURRENT row is read as
    the maturity (``on_date``; ``after`` ``(n,)`` is the state of the month after the window, -1 if none, so
    a maturity month in the window's last column is read the same). Then MATURED before the maturity month
    becomes PREPAID, and a sequence still CURRENT from that month on is cut there. Returns ``(s, present,
    prev, live_prev, relabelled, n_truncated, on_date)``: ``relabelled`` and ``on_date`` ``(n,)`` bool, the
    sequences where the rule applied (the caller counts loans: snapshots overlap)."""
    t = np.arange(s.shape[1])[None]

    def moves(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prev = np.concatenate([init[:, None], states[:, :-1]], axis=1)
        return prev, present & (prev >= 0) & (prev <= _LIVE_MAX)

    following = np.concatenate([s[:, 1:], after[:, None]], axis=1)
    _, live_prev = moves(s)
    on_date = live_prev & (s == _CUR) & (t == rem - 1) & (following == _MAT)
    s = np.where(on_date, _MAT, s)
    prev, live_prev = moves(s)
    early = live_prev & (s == _MAT) & (t < rem - 1)
    # the payoff and every MATURED row the panel keeps reporting after it are PREPAID
    s = np.where((np.cumsum(early, axis=1) > 0) & (s == _MAT), _PRE, s)
    prev = np.concatenate([init[:, None], s[:, :-1]], axis=1)
    late = live_prev & (s == _CUR) & (t >= rem - 1)
    cut = np.where(late.any(1), late.argmax(1), s.shape[1])
    present = present & (t < cut[:, None])
    return s, present, prev, live_prev & present, early.any(1), int(late.any(1).sum()), on_date.any(1)


def _targets(s: np.ndarray, init: np.ndarray, present: np.ndarray, cens: np.ndarray, c: int) -> tuple:
    """Training targets ``(n, window)``: the observed states, then padding (DEFAULT after a live last state,
    else the absorbing state held); and the censored default-free month after a run whose last row is
    flagged ``censored`` (``cens``: the sequences' flags on the panel's month grid; the cut-off is ``c``)."""
    n, window = s.shape
    span = cens.shape[1]
    run = present.sum(1)
    last = np.where(run > 0, s[np.arange(n), np.maximum(run - 1, 0)], init)
    fill = np.where(last <= _LIVE_MAX, _D, last)
    target = np.where(present, s, fill[:, None])
    censored = np.zeros((n, window), np.float32)
    ends = (last <= _LIVE_MAX) & (run < window) & (c + run < span) & cens[np.arange(n), np.minimum(c + run, span - 1)]
    censored[np.flatnonzero(ends), run[ends]] = 1.0
    return target, censored


def _snapshot_values(value_grids: dict | None, idx: np.ndarray, c: int, window: int, live_prev: np.ndarray,
                     prev: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, window, 2)`` payment ratio and LGD targets of a snapshot's sequences and their mask (module
    docstring); all masked when the panel has no value columns."""
    values = np.zeros((len(idx), window, N_VALUES), np.float32)
    vmask = np.zeros((len(idx), window, N_VALUES), bool)
    if value_grids is not None:
        span = value_grids["current_balance"].shape[1]
        cols = np.clip(c + 1 + np.arange(window), 0, span - 1)
        g = {k: v[idx][:, cols] for k, v in value_grids.items()}
        prev_bal = np.concatenate([value_grids["current_balance"][idx, c][:, None], g["current_balance"][:, :-1]], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = g["actual_payment"] / g["scheduled_payment"]
            lgd = g["loss_amount"] / prev_bal
        perf = live_prev & (prev == _CUR) & (target == _CUR) & (g["scheduled_payment"] > 0) & np.isfinite(ratio)
        dflt = live_prev & (target == _D) & (prev_bal > 0) & np.isfinite(lgd)
        values[..., 0] = np.where(perf, np.clip(ratio, 0.0, 1.0), 0.0)
        values[..., 1] = np.where(dflt, np.clip(lgd, 0.0, 1.0), 0.0)
        vmask[..., 0], vmask[..., 1] = perf, dflt
    return values, vmask


def _snapshot_matrices(code: np.ndarray, prev: np.ndarray, target: np.ndarray, live_prev: np.ndarray,
                       censored: np.ndarray, training: np.ndarray, smoothing: float) -> np.ndarray:
    """``(4, window, 7, 7)`` the asset classes' empirical monthly chains of a snapshot's training sequences
    (observed moves, and censored default-free months at their MLE), shrunk (module docstring)."""
    r, m = np.nonzero(live_prev & training[:, None])
    counts = np.zeros((len(ASSET_CLASSES), prev.shape[1], N_STATES, N_STATES))
    np.add.at(counts, (code[r], m, prev[r, m], target[r, m]), 1.0)
    r, m = np.nonzero((censored > 0) & training[:, None])
    unknown = np.zeros(counts.shape[:3])
    np.add.at(unknown, (code[r], m, prev[r, m]), 1.0)
    return shrink_cohort_counts(_with_censored(counts, unknown), smoothing)


def panel_trajectory_sequences(panel: pd.DataFrame, tape: Any, macro: pd.DataFrame | str = "history",
                               window: int = 24, stride: int = 12, val_share: float = 0.15, seed: int = 0,
                               smoothing: float = 20.0) -> PanelSequences:
    """The snapshot sequences of ``panel`` (module docstring).

    Args:
        panel: loan x month rows with ``loan_id``, ``reporting_month``, ``loan_state`` (0..6); optional
            ``censored`` and the value columns (module docstring).
        tape: the loan tape of those loans (DataFrame or LoanTape).
        macro: monthly macro frame (MACRO_VARS columns) or ``"history"``.
        window: months per sequence (the model's ``max_months`` at most).
        stride: months between snapshot cut-offs.
        val_share: share of loans held out for early stopping, in [0, 0.5).
        seed: the held-out loans.
        smoothing: pseudo-count of the cohort matrices' shrinkage.
    """
    window, stride = _check_positive("window", window), _check_positive("stride", stride)
    check_training_panel(panel, val_share)
    frame = as_loan_tape(tape).frame
    grid, cens, value_grids, m0 = _panel_grids(panel, frame)
    L, span = grid.shape
    held = np.random.default_rng(seed).random(L) < val_share
    if isinstance(macro, str) and macro == "history":  # read once, not per snapshot
        from creditsim.datasets.macro import load_macro_history

        macro = load_macro_history()
    asset = pd.Categorical(frame["asset_class"], categories=list(ASSET_CLASSES)).codes.astype(np.int64)
    first = pd.Timestamp(np.datetime64(m0, "M"))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feat", "cidx", "pidx", "init", "states", "values", "vmask",
                                                         "obs", "cens", "held", "loan")}
    mats, paths, cutoffs = [], [], []
    truncated = 0
    relabelled: set[str] = set()
    on_date: set[str] = set()
    for c in range(0, span - 1, stride):
        idx = np.flatnonzero((grid[:, c] >= 0) & (grid[:, c] <= _LIVE_MAX))
        if len(idx) == 0:
            continue
        n_t = min(window, span - 1 - c)
        s = np.full((len(idx), window), -1, np.int64)
        s[:, :n_t] = grid[idx, c + 1:c + 1 + n_t]
        init = grid[idx, c].astype(np.int64)
        present = np.cumprod(s >= 0, axis=1).astype(bool)  # the observed run from month c+1
        as_of = first + pd.DateOffset(months=c + 1)
        feats = loan_features(frame.iloc[idx].reset_index(drop=True), as_of=as_of).to_numpy(np.float32, copy=True)
        rem = remaining_term(torch.from_numpy(feats)).numpy()[:, None]
        after = grid[idx, c + 1 + n_t] if c + 1 + n_t < span else np.full(len(idx), -1, grid.dtype)
        s, present, prev, live_prev, relabel, n_truncated, dated = _maturity_rule(s, init, present, rem,
                                                                                  after.astype(np.int64))
        truncated += n_truncated
        ids = frame["loan_id"].astype(str).to_numpy()[idx]
        relabelled.update(ids[relabel])
        on_date.update(ids[dated])
        # every observed move, out of absorbing states too (a cure from DEFAULT is not a move this model knows)
        bad = present & (prev >= 0) & ~ALLOWED_TRANSITIONS[np.clip(prev, 0, N_STATES - 1), np.clip(s, 0, N_STATES - 1)]
        if bad.any():
            r, m = np.argwhere(bad)[0]
            raise DataError(f"panel: loan {frame['loan_id'].iloc[idx[r]]!s} moves {LoanState(int(prev[r, m])).name} -> "
                            f"{LoanState(int(s[r, m])).name} into {str(as_of + pd.DateOffset(months=int(m)))[:7]}, which "
                            f"ALLOWED_TRANSITIONS forbids ({int(bad.sum())} such moves in the snapshot from "
                            f"{str(first + pd.DateOffset(months=c))[:7]}); clean the panel's states first")
        target, censored = _targets(s, init, present, cens[idx], c)
        values, vmask = _snapshot_values(value_grids, idx, c, window, live_prev, prev, target)
        # the class's empirical matrices from this snapshot's training loans' observed moves
        snap = len(cutoffs)
        code = asset[idx]
        mats.append(_snapshot_matrices(code, prev, target, live_prev, censored, ~held[idx], smoothing))
        months = pd.date_range(first + pd.DateOffset(months=c + 1), periods=n_t, freq="MS")
        rows = macro_rows(macro, months)
        paths.append(np.concatenate([rows, np.repeat(rows[-1:], window - n_t, axis=0)]))
        cutoffs.append(first + pd.DateOffset(months=c))
        for k, v in (("feat", feats), ("cidx", snap * len(ASSET_CLASSES) + code), ("pidx", np.full(len(idx), snap)),
                     ("init", init), ("states", target), ("values", values), ("vmask", vmask),
                     ("obs", live_prev.astype(np.float32)), ("cens", censored), ("held", held[idx]),
                     ("loan", frame["loan_id"].to_numpy()[idx])):
            parts[k].append(v)
    if not cutoffs:
        raise DataError("panel: no loan is in a live state (CURRENT..DPD90) at any snapshot cut-off")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    _check_moves(panel, cat["obs"][~cat["held"]])
    return PanelSequences(
        features=torch.from_numpy(cat["feat"]), cohort_index=torch.from_numpy(cat["cidx"]).long(),
        path_index=torch.from_numpy(cat["pidx"]).long(), initial_states=torch.from_numpy(cat["init"]).long(),
        states=torch.from_numpy(cat["states"]).long(), values=torch.from_numpy(cat["values"]),
        value_mask=torch.from_numpy(cat["vmask"]), observed=torch.from_numpy(cat["obs"]),
        censored=torch.from_numpy(cat["cens"]),
        cohort_matrices=torch.from_numpy(np.concatenate(mats)).float(),
        macro_paths=torch.from_numpy(np.stack(paths)).float(), held_out=cat["held"], loan_id=cat["loan"],
        cutoffs=pd.DatetimeIndex(cutoffs), relabelled=len(relabelled), truncated=truncated,
        matured_on_date=len(on_date))


def _check_moves(panel: pd.DataFrame, observed: np.ndarray) -> None:
    """DataError when the training sequences ``observed`` ``(n, T)`` hold no move of a live loan, or when the
    panel is less than monthly (a few one-month pairs, such as dated payoffs, would be all it learns from)."""
    if observed.sum() == 0:
        raise DataError("panel: no month-to-month move of a live loan among the training loans: a move is two rows of "
                        "one loan in consecutive calendar months (a quarterly panel has none: fit the chain with "
                        "period='quarter', 'creditsim train transitions --period quarter')")
    check_monthly_panel(panel)


def _sequence_loss(seqs: PanelSequences):
    """Per-observed-move state NLL (censored months as ``-log(1 - P(DEFAULT))``) plus the model's value loss."""
    cohorts, macros = seqs.cohort_matrices, seqs.macro_paths

    def loss_fn(model: LoanTrajectoryModel, batch: list[torch.Tensor], epoch: int) -> dict[str, torch.Tensor]:
        feats, cidx, pidx, init, states, values, vmask, w_obs, w_cens = batch
        dev = feats.device
        out = model(feats, cohorts.to(dev)[cidx], states, values, value_mask=vmask, macro_path=macros.to(dev)[pidx],
                    initial_states=init)
        state_loss = censored_state_nll(out["state_logits"], states, w_obs, w_cens)
        return {"loss": state_loss + model.config.value_weight * out["value_loss"], "state": state_loss.detach(),
                "value": out["value_loss"].detach()}

    return loss_fn


def _selection(seqs: PanelSequences, rows: Any) -> np.ndarray:
    """``rows`` as a boolean mask over the sequences (default the held-out loans'); ConfigError for a mask of
    another length or type, DataError when it selects no observed move (a score of nothing is no score)."""
    if rows is None:
        rows = seqs.held_out
    rows = np.asarray(rows)
    if rows.dtype != bool or rows.shape != (len(seqs),):
        raise ConfigError(f"rows: expected a boolean mask of the {len(seqs)} sequences, got dtype {rows.dtype} and "
                          f"shape {rows.shape}")
    sel = torch.from_numpy(rows)
    if float(seqs.observed[sel].sum() + seqs.censored[sel].sum()) == 0:
        raise DataError(f"rows: the {int(rows.sum())} selected sequence(s) hold no observed move to score")
    return rows


@torch.no_grad()
def sequence_nll(model: LoanTrajectoryModel, seqs: PanelSequences, rows: np.ndarray | None = None,
                 batch_size: int = 4096) -> float:
    """Mean NLL (nats) per observed move of the sequences ``rows`` (default the held-out loans'), censored
    months scored ``-log(1 - P(DEFAULT))``: the training objective's state part, teacher-forced."""
    rows = _selection(seqs, rows)
    model = model.eval()
    loss = _sequence_loss(seqs)
    tensors = seqs.tensors(rows)
    total = weight = 0.0
    dev = model.device
    for i in range(0, int(tensors[0].shape[0]), batch_size):
        part = [t[i:i + batch_size].to(dev) for t in tensors]
        w = float(part[7].sum() + part[8].sum())
        total += float(loss(model, part, 0)["state"]) * max(w, 1.0)
        weight += w
    return total / max(weight, 1.0)


def cohort_matrix_nll(seqs: PanelSequences, rows: np.ndarray | None = None) -> float:
    """The same score for the cohort matrices alone (the asset class's empirical monthly chain of the
    training loans, what the model corrects), with the contract's maturity rule applied to the chain as
    the cashflow engine does: the baseline the trajectory model must beat."""
    idx = np.flatnonzero(_selection(seqs, rows))
    mats = seqs.cohort_matrices.double().numpy()
    cidx, init, states = seqs.cohort_index.numpy()[idx], seqs.initial_states.numpy()[idx], seqs.states.numpy()[idx]
    prev = np.concatenate([init[:, None], states[:, :-1]], axis=1)
    t = np.broadcast_to(np.arange(states.shape[1]), states.shape)
    row = mats[cidx[:, None], t, prev].copy()  # (n, T, 7)
    # the contract's maturity rule, as the cashflow engine applies it to a chain: a payoff before the
    # maturity month is a prepayment, from it on paying is maturity (else the chain loses on every
    # maturity month for a reason no model is being tested on)
    rem = remaining_term(seqs.features[torch.from_numpy(idx)]).numpy()[:, None]
    live = prev <= _LIVE_MAX
    early, late = live & (t < rem - 1), live & (t >= rem - 1)
    row[..., _PRE] += np.where(early, row[..., _MAT], 0.0)
    row[..., _MAT] = np.where(early, 0.0, row[..., _MAT] + np.where(late, row[..., _CUR], 0.0))
    row[..., _CUR] = np.where(late, 0.0, row[..., _CUR])
    hit = np.take_along_axis(row, states[..., None], -1)[..., 0]
    w_obs, w_cens = seqs.observed.numpy()[idx] > 0, seqs.censored.numpy()[idx] > 0
    ll = np.log(np.maximum(hit[w_obs], 1e-12)).sum() + np.log1p(-np.minimum(row[..., _D][w_cens], 1 - 1e-12)).sum()
    return float(-ll / max(w_obs.sum() + w_cens.sum(), 1))


def train_trajectory_on_panel(panel: pd.DataFrame, tape: Any, macro: pd.DataFrame | str = "history",
                              out: str | os.PathLike[str] | None = None, window: int = 24, stride: int = 12,
                              epochs: int | None = None, seed: int = 0, val_share: float = 0.15,
                              warm_start: bool = True, progress: bool = False) -> LoanTrajectoryModel:
    """Fit a LoanTrajectoryModel on ``panel`` (module docstring) and save it to ``out`` when given.

    Args:
        panel, tape, macro, window, stride, val_share: see :func:`panel_trajectory_sequences`.
        out: checkpoint folder (``config.json`` + ``model.safetensors``) for
            ``LoanTrajectoryModel.from_pretrained`` and ``creditsim simulate --trajectory-model``.
        epochs: maximum epochs (default 60, each of at most :data:`PANEL_TRAINING` ``.epoch_size`` sequences);
            early stopping may end sooner.
        seed: initialisation (cold start), batch order and the held-out loans.
        warm_start: start from the shipped checkpoint (module docstring).
        progress: a progress bar.

    Returns:
        The trained model, in eval mode.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if epochs is not None:
        _check_positive("epochs", epochs)
    if not isinstance(warm_start, bool):
        raise ConfigError(f"warm_start must be True or False, got {warm_start!r}")
    if out is not None:
        check_checkpoint_target(out, "LoanTrajectoryModel", foreign=(MARKOV_FILE,))
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = LoanTrajectoryModel.from_pretrained() if warm_start else LoanTrajectoryModel(SHIPPED_CONFIG)
    if _check_positive("window", window) > model.config.max_months:
        raise ConfigError(f"window {window} exceeds the model's max_months {model.config.max_months}")
    seqs = panel_trajectory_sequences(panel, tape, macro, window=window, stride=stride, val_share=val_share, seed=seed)
    train, val = ~seqs.held_out, seqs.held_out.copy()
    if val.sum() > VAL_SEQUENCES:  # a seeded subset: the monitored loss, not a test score
        keep = np.random.default_rng([seed, 1]).choice(np.flatnonzero(val), VAL_SEQUENCES, replace=False)
        val[:] = False
        val[keep] = True
    cfg: TrainConfig = replace(PANEL_TRAINING, seed=seed, progress=progress,
                               **({"epochs": int(epochs)} if epochs is not None else {}))
    res = fit(model, _sequence_loss(seqs), seqs.tensors(train), seqs.tensors(val) if val.any() else None, cfg,
              description="trajectory model on your panel")
    model.eval()
    if out is not None:
        best = res.history[res.best_epoch] if res.history else {}
        model.save_pretrained(out, extra={
            "data": "your panel (creditsim.loans.panel_train)", "warm_start": warm_start,
            "panel_months": [str(seqs.cutoffs[0])[:7], str(pd.Timestamp(np.datetime64(
                int(panel_month_numbers(panel).max()), "M")))[:7]],
            "snapshots": [str(c)[:7] for c in seqs.cutoffs], "window": int(window), "stride": int(stride),
            "n_sequences": {"train": int(train.sum()), "val": int(seqs.held_out.sum()), "monitored": int(val.sum())},
            "observed_moves": {"train": float(seqs.observed[torch.from_numpy(train)].sum()),
                               "val": float(seqs.observed[torch.from_numpy(seqs.held_out)].sum())},
            "epoch_size": cfg.epoch_size,
            "matured_read_as_prepaid": seqs.relabelled, "censored_past_maturity": seqs.truncated,
            "matured_on_maturity_date": seqs.matured_on_date,
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "best_val_loss": res.best_val_loss,
            "best_epoch_metrics": best, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "torch": torch.__version__,
        })
    return model
