"""Train a :class:`~creditsim.transitions.transformer.TransitionTransformer` on your own loan panel, for
``simulate(engine="transformer")`` and ``creditsim simulate --transition-model DIR``.

    model = train_transformer_on_panel(panel, tape, macro="history", out="models/transformer")

The shipped checkpoint learns from synthetic books driven by many macro paths
(:mod:`creditsim.transitions.train`); this module fits the same network on one real panel, aligned to
calendar time:

* **Sequences.** Each cohort of the tape (the default ``asset_class|vintage|risk`` cohorts and the coarse
  ``asset_class`` cohorts the simulation engine uses) is one sequence of monthly move counts
  (:func:`~creditsim.transitions.cohorts.transition_counts`): position ``t`` is the move *into* calendar
  month ``months[t]``, counted from the panel's second month, so position 0 is the first month after the
  panel's first one -- as in a simulation, where position 0 is the first month after the cut-off.
* **Quarterly panels** (``period_months=3``): the sequences stay monthly, and a move seen three months
  apart is scored by the product of the model's three monthly matrices of the months it spans
  (:meth:`TransitionTransformer.period_nll`), so the network learns the monthly dynamics a simulation
  steps through from data that never shows them. Each loan is read on its own reporting cycle
  (:func:`~creditsim.transitions.reporting.reporting_view` with ``grid="loan"``): an absorption dated off
  it (a default reported in its own month) is carried to the next report month, where the product of the period's
  matrices scores "absorbed by then" -- the exact likelihood of the coarsened record, which gives up
  only the month of the absorption (the Markov chain's fit also reads that month:
  :meth:`MarkovTransitionModel.fit`). Other rows off the cycle are not read, with a warning counting
  them; without the carry such absorptions were dropped and the default rate understated.
* **Cohort features** (:data:`~creditsim.transitions.cohorts.COHORT_FEATURES`, with the asset-class
  shares) are taken from the whole tape as of the panel's first month, the role the cut-off plays in a
  simulation; the held-out loans read the features of their whole cohort, as a simulated book does. Ages
  and remaining terms are counted to that month; the balance weights are the tape's ``current_balance``
  (the tape's own as-of date), not the panel's first-month balances -- the same weights ``simulate`` uses.
* **Macro.** The move into month ``m`` reads the macro values of month ``m`` (a monthly frame in
  :data:`~creditsim.states.MACRO_VARS`, or ``"history"``: the bundled US history). A month of the panel
  the frame lacks is an error naming it.
* **Early stopping** on a seeded share of the *loans* (``val_share``): their moves are counted apart, so
  no loan is in both.
* **The credit link** (``macro_link``, default on): one panel spans one economy, far too little macro
  variation to learn a macro response from; the model then carries the calibrated per-asset-class link
  as its fixed offset (:meth:`TransitionTransformer.set_macro_link`), the network does not read the macro
  path (``macro_inputs=False``), and it learns the cohort, seasoning and calendar structure of *your*
  book around the link. Off, the network reads the path and learns the macro effects from the panel
  alone (sensible only for a panel spanning several cycles).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from creditsim.checkpoints import check_checkpoint_target
from creditsim.errors import ConfigError, DataError
from creditsim.nn.trainer import TrainConfig
from creditsim.schema import STATE_PANEL_COLUMNS, as_loan_tape
from creditsim.states import MACRO_VARS, N_LIVE_STATES, N_STATES
from creditsim.transitions.cohorts import (DEFAULT_COHORT_KEY, check_rows_from_origination, cohort_features,
                                           panel_loan_positions, panel_month_numbers, transition_counts)
from creditsim.transitions.markov import MODEL_FILE as MARKOV_FILE
from creditsim.transitions.period_moves import check_monthly_panel
from creditsim.transitions.reporting import reporting_view
from creditsim.transitions.train import SHIPPED_CONFIG, SHIPPED_TRAINING, CohortMonthData, train_transition_model
from creditsim.transitions.transformer import TransitionConfig, TransitionTransformer
from creditsim.userwarn import warn

__all__ = ["PANEL_COHORTS", "check_training_panel", "macro_rows", "panel_transition_data", "train_transformer_on_panel"]

#: cohort definitions a panel is counted under (the finer default cohorts and the engine's coarse ones)
PANEL_COHORTS: tuple[str, ...] = (DEFAULT_COHORT_KEY, "asset_class")


def macro_rows(macro: pd.DataFrame | str, months: pd.DatetimeIndex) -> np.ndarray:
    """``(T, 9)`` macro values of each destination month, MACRO_VARS order."""
    if isinstance(macro, str):
        if macro != "history":
            raise ConfigError(f"macro: expected a monthly frame or 'history', got {macro!r}")
        from creditsim.datasets.macro import load_macro_history

        macro = load_macro_history()
    if not isinstance(macro, pd.DataFrame):
        raise ConfigError(f"macro: expected a monthly DataFrame or 'history', got {type(macro).__name__}")
    missing = [v for v in MACRO_VARS if v not in macro.columns]
    if missing:
        raise DataError(f"macro frame: missing column(s) {missing}; expected {list(MACRO_VARS)}")
    if "reporting_month" in macro.columns:  # a frame as read from a file: the months in a column
        macro = macro.set_index("reporting_month")
    if not isinstance(macro.index, pd.DatetimeIndex):
        try:
            macro = macro.set_axis(pd.to_datetime(macro.index.astype(str), format="mixed"))
        except (ValueError, TypeError) as exc:
            raise DataError("macro frame: the index (or a 'reporting_month' column) must hold the months, "
                            f"e.g. 2024-01-01; got {list(macro.index[:3])}") from exc
    index = pd.DatetimeIndex(macro.index).to_period("M").to_timestamp()
    frame = pd.DataFrame(macro[list(MACRO_VARS)].to_numpy(np.float64), index=index)
    frame = frame[~frame.index.duplicated(keep="last")]
    rows = frame.reindex(months)
    lacking = rows.index[rows.isna().any(axis=1)]
    if len(lacking):
        shown = ", ".join(str(m)[:7] for m in lacking[:6]) + (" ..." if len(lacking) > 6 else "")
        raise DataError(f"macro frame: no complete values for {len(lacking)} panel month(s): {shown} "
                        f"(the frame covers {str(frame.index.min())[:7]} .. {str(frame.index.max())[:7]}); give a "
                        "monthly macro file covering the panel (--macro FILE; `creditsim data synth` writes the "
                        "path its synthetic panel was drawn under as DIR/macro.parquet)")
    return rows.to_numpy(np.float64)


def check_training_panel(panel: Any, val_share: Any) -> None:
    """The checks every panel trainer makes before it reads a row: ``val_share`` in [0, 0.5), a non-empty
    DataFrame with ``loan_id``, ``reporting_month`` and ``loan_state`` (ConfigError / DataError naming them)."""
    if not isinstance(val_share, (int, float)) or isinstance(val_share, bool) or not 0.0 <= val_share < 0.5:
        raise ConfigError(f"val_share must be a number in [0, 0.5), got {val_share!r}")
    if not isinstance(panel, pd.DataFrame):
        raise DataError(f"panel: expected a pandas DataFrame, got {type(panel).__name__}")
    absent = [c for c in STATE_PANEL_COLUMNS if c not in panel.columns]
    if absent:
        raise DataError(f"panel: missing required column(s) {absent}; expected loan_id, reporting_month, loan_state")
    if len(panel) == 0:
        raise DataError("panel: no rows")


def panel_transition_data(panel: pd.DataFrame, tape: Any, macro: pd.DataFrame | str = "history",
                          val_share: float = 0.15, seed: int = 0,
                          cohort_definitions: tuple[str, ...] = PANEL_COHORTS,
                          period_months: int = 1) -> dict[str, CohortMonthData]:
    """``{"train", "val"}`` cohort sequences of a real panel (module docstring).

    Args:
        panel: loan x month rows with ``loan_id``, ``reporting_month``, ``loan_state`` (0..6).
        tape: the loan tape of those loans (a DataFrame validated here, or a LoanTape).
        macro: monthly macro frame (MACRO_VARS columns, month index) or ``"history"``.
        val_share: share of the loans held out for early stopping, in [0, 0.5).
        seed: the held-out loans.
        cohort_definitions: cohort keys of :func:`~creditsim.transitions.cohorts.cohort_keys`.
        period_months: months between a loan's rows (3: a quarterly panel). The sequences stay monthly
            (every calendar month has its macro row and its position); the counts are the moves ``k``
            months apart, each at its destination month.

    Returns:
        :class:`~creditsim.transitions.train.CohortMonthData` per split; ``N`` rows = cohorts x definitions,
        ``T`` = calendar months of the panel minus one.
    """
    check_training_panel(panel, val_share)
    if period_months > 1:  # module docstring: off-grid absorptions carried to the next report month
        on_grid = reporting_view(panel, period_months, grid="loan")
        dropped = len(panel) - len(on_grid)
        if dropped:
            warn(f"panel: {dropped:,} row(s) off their loan's {period_months}-month reporting cycle are "
                 "not read by the transformer: live rows between report months, and absorptions in a period "
                 "that closes after the panel's last month (its survivors have no row); other absorptions off "
                 "the cycle are carried to the next report month")
        panel = on_grid
    frame = as_loan_tape(tape).frame
    # every panel row's loan on the tape (the chain's rule: a panel loan without a tape row is an error, never
    # silently dropped), then the first month as the cut-off of the cohort features
    loan_pos = panel_loan_positions(panel, frame)
    month_numbers = panel_month_numbers(panel)
    check_rows_from_origination(panel, frame, loan_pos, month_numbers)
    if period_months == 1:
        check_monthly_panel(panel)
    first = pd.Timestamp(np.datetime64(int(month_numbers.min()), "M"))
    # destination months of the whole panel (a split may miss its ends: its counts are placed on these)
    months = pd.date_range(first + pd.offsets.MonthBegin(1), periods=int(month_numbers.max() - month_numbers.min()),
                           freq="MS", name="reporting_month")
    if len(months) == 0:
        raise DataError(f"panel: every row is in {str(first)[:7]}; a move needs two consecutive calendar months")
    held = np.random.default_rng(seed).random(len(frame)) < val_share
    # features of the whole cohort, for both splits: the held-out loans are a sample of the same cohorts, and
    # a simulation reads the features of the whole tape
    features = {d: cohort_features(frame, d, as_of=first) for d in cohort_definitions}
    out: dict[str, dict[str, list[np.ndarray]]] = {s: {"feat": [], "counts": [], "cohort": [], "definition": []}
                                                   for s in ("train", "val")}
    for split, keep in (("train", ~held), ("val", held)):
        if not keep.any():
            continue
        loans = frame[keep]
        rows = panel[keep[loan_pos]]
        for definition in cohort_definitions:
            counts, cohorts, dest = transition_counts(rows, loans, definition, step=period_months)
            if len(dest) != len(months) or (dest != months).any():  # a split that misses the panel's ends
                counts = _on_months(counts, dest, months)
            feats = features[definition].loc[cohorts]
            r = out[split]
            r["feat"].append(feats.to_numpy(np.float64))
            r["counts"].append(counts)
            r["cohort"].append(np.asarray(cohorts, dtype=object))
            r["definition"].append(np.full(len(cohorts), definition, dtype=object))
    path = macro_rows(macro, months)
    data = {}
    for split, r in out.items():
        if not r["feat"]:
            continue
        counts = np.concatenate(r["counts"])
        n = len(counts)
        definition = np.concatenate(r["definition"])
        once = counts[definition == cohort_definitions[0]].sum(axis=(0, 1)).astype(np.int64)  # each move once
        data[split] = CohortMonthData(np.concatenate(r["feat"]), np.broadcast_to(path, (n, *path.shape)).copy(), counts,
                                      np.concatenate(r["cohort"]), definition, np.zeros(n, np.int64),
                                      np.zeros(n, np.int64), once, period_months)
    if "train" in data and data["train"].counts[:, :, :N_LIVE_STATES].sum() == 0:
        if period_months == 1:
            raise DataError("panel: no month-to-month move of a live loan among the training loans: a move is two rows "
                            "of one loan in consecutive calendar months (a quarterly panel has none: give "
                            "period='quarter', 'creditsim train transitions --model transformer --period quarter')")
        raise DataError(f"panel: no move of a live loan {period_months} months apart among the training loans (a "
                        f"move is two consecutive rows of one loan {period_months} calendar months apart)")
    return data


def _on_months(counts: np.ndarray, have: pd.DatetimeIndex, months: pd.DatetimeIndex) -> np.ndarray:
    """``counts`` ``(C, len(have), 7, 7)`` placed on the calendar ``months`` (zeros where absent)."""
    out = np.zeros((counts.shape[0], len(months), N_STATES, N_STATES), dtype=counts.dtype)
    pos = months.get_indexer(have)
    inside = pos >= 0
    out[:, pos[inside]] = counts[:, inside]
    return out


def train_transformer_on_panel(panel: pd.DataFrame, tape: Any, macro: pd.DataFrame | str = "history",
                               out: str | os.PathLike[str] | None = None, macro_link: bool = True,
                               epochs: int | None = None, seed: int = 0, val_share: float = 0.15,
                               progress: bool = False,
                               model_config: TransitionConfig | None = None,
                               period_months: int = 1) -> TransitionTransformer:
    """Fit a TransitionTransformer on ``panel`` (module docstring) and save it to ``out`` when given.

    Args:
        panel, tape, macro, val_share: see :func:`panel_transition_data`.
        out: checkpoint folder (``config.json`` + ``model.safetensors``) for ``from_pretrained`` and
            ``creditsim simulate --transition-model``.
        macro_link: carry the calibrated credit link as a fixed offset (module docstring).
        epochs: maximum epochs (default the shipped model's); early stopping may end sooner.
        seed: initialisation, batch order and the held-out loans.
        model_config: network size (default the shipped model's; ``macro_link`` sets its ``macro_link`` and
            ``macro_inputs`` fields).
        period_months: months between a loan's rows (3: a quarterly panel; module docstring).

    Returns:
        The trained model, in eval mode.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if epochs is not None and (not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1):
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(period_months, bool) or not isinstance(period_months, (int, np.integer)) or period_months < 1:
        raise ConfigError(f"period_months must be a positive integer, got {period_months!r}")
    if out is not None:
        check_checkpoint_target(out, "TransitionTransformer", foreign=(MARKOV_FILE,))
    data = panel_transition_data(panel, tape, macro, val_share=val_share, seed=seed, period_months=int(period_months))
    if "train" not in data:
        raise DataError("panel: no training loans (val_share leaves none)")
    # with the link the network does not read the path (one economy: module docstring); without it, it must
    cfg = replace(model_config if model_config is not None else SHIPPED_CONFIG, macro_link=bool(macro_link),
                  macro_inputs=not macro_link)
    months = data["train"].counts.shape[1]
    cfg = replace(cfg, max_months=max(1, min(cfg.max_months, months)))
    train_cfg: TrainConfig = replace(SHIPPED_TRAINING, seed=seed, progress=progress,
                                     **({"epochs": int(epochs)} if epochs is not None else {}))
    result = train_transition_model(data, cfg, train_cfg, out=out, evaluate=False)
    return result.model.eval()
