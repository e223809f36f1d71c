"""``fit_transitions``: one entry point that fits a transition model on your own panel.

``model="markov"`` returns a :class:`~creditsim.transitions.markov.MarkovTransitionModel` -- segmented
by ``by`` (a panel column, or a tape column joined on ``loan_id``), censored rows honoured, with a macro
overlay -- that :func:`creditsim.simulate` runs on (``transition_model=``) and that ``save`` writes for
``creditsim simulate --transition-model DIR``. ``model="transformer"`` returns a
:class:`~creditsim.transitions.transformer.TransitionTransformer` trained on the panel's cohorts
(:func:`creditsim.transitions.panel_train.train_transformer_on_panel`: needs the loan tape, reads the
macro history of the panel's months, carries the calibrated credit link): ``simulate(engine="transformer",
transition_model=model)`` runs on it and ``save_pretrained`` writes it for ``--transition-model DIR``.
``model="trajectory"`` returns a :class:`~creditsim.loans.trajectory.LoanTrajectoryModel` fine-tuned on the
panel's loan sequences (:func:`creditsim.loans.panel_train.train_trajectory_on_panel`): ``simulate(engine=
"trajectory", trajectory_model=model)`` runs on it and ``save_pretrained`` writes it for
``--trajectory-model DIR``. Any other harness contestant name (``"gbm"``, ``"logit"``, ...) returns that
contestant fitted on every move of the panel: it predicts next-period state probabilities for a
:class:`~creditsim.harness.moves.MoveTable` (what ``creditsim eval transitions`` scores); the harness's
transformer and trajectory contestants, which also read per-month covariates a simulation cannot give,
are ``creditsim.harness.make_contestant(name, ...)``. The simulation engines do not take those.

A quarterly panel (``period="quarter"``) gives the chain too: the monthly matrix whose cube explains the
quarterly moves (:mod:`creditsim.transitions.embed`), which ``simulate`` steps month by month like any
other; and the transformer, whose three monthly matrices of a quarter are scored against its moves. The
trajectory model learns from monthly loan histories and refuses such a panel.

Overlay decision for the chain: ``"calibrated"`` (the shipped per-asset-class link, which needs
``by="asset_class"``), ``"fit"`` (:meth:`MarkovTransitionModel.fit_macro_sensitivity` on the panel
and ``macro``) or ``"legacy"`` (the spec's coefficients x 0.1). The default is ``"calibrated"`` when
the chain is by asset class and ``"fit"`` when a macro frame is given (a monthly panel), else ``"legacy"``: a chain
fitted on one book should not silently take a calibration made for others.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.moves import build_moves, tape_columns
from creditsim.harness.registry import CONTESTANT_NAMES, make_contestant
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.transitions.overlay_file import calibrated_sensitivities

__all__ = ["fit_transitions", "default_overlay", "OVERLAYS", "PERIOD_MONTHS"]

OVERLAYS: tuple[str, ...] = ("calibrated", "fit", "legacy")
#: months between a loan's rows for each ``period`` the chain takes
PERIOD_MONTHS: dict[str, int] = {"month": 1, "quarter": 3}


def _with_segment(panel: pd.DataFrame, tape: pd.DataFrame | None, by: str) -> pd.DataFrame:
    """``panel`` with column ``by``, joined from the tape when the panel lacks it."""
    if by in panel.columns:
        return panel
    if tape is None or by not in tape.columns:
        raise ConfigError(f"segment column {by!r}: neither the panel nor the loan tape has it (give the tape to join "
                          "it on loan_id)")
    ids = panel["loan_id"].astype(str).to_numpy()
    return panel.assign(loan_id=ids, **{by: tape_columns(ids, tape, [by])[by].to_numpy()})


def fit_transitions(panel: pd.DataFrame, tape: pd.DataFrame | None = None, *, model: str = "markov",
                    macro: pd.DataFrame | str | None = None, by: str | None = None, overlay: str | None = None,
                    panel_features: Sequence[str] = (), tape_features: Sequence[str] = (),
                    segment_by: Sequence[str] = ("prev_state",), cohort_by: Sequence[str] = (),
                    period: str = "month", seed: int = 0, epochs: int | None = None,
                    out: str | os.PathLike[str] | None = None, window: int | None = None, stride: int | None = None,
                    warm_start: bool | None = None, progress: bool = False) -> Any:
    """Fit ``model`` on ``panel`` (module docstring).

    Args:
        panel: loan x period rows (``loan_id``, ``reporting_month``, ``loan_state``, optional ``censored``).
        tape: static loan data (segments, tape features, the trajectory model's contract fields).
        model: ``"markov"``, ``"transformer"``, ``"trajectory"`` (the simulation models) or another harness
            contestant name (:data:`~creditsim.harness.registry.CONTESTANT_NAMES`).
        macro: monthly macro frame, or ``"history"`` for the bundled US history (the chain's ``fit``
            overlay; the contestants' macro input).
        by: the chain's segment column (default ``asset_class`` when a tape is given).
        overlay: the chain's macro overlay, one of :data:`OVERLAYS` (default: module docstring).
        panel_features, tape_features, segment_by, cohort_by: the contestants' inputs
            (:func:`creditsim.harness.evaluate_transitions`).
        period: ``"month"`` or ``"quarter"``, the months between a loan's rows (the chain, the transformer
            and the contestants; the trajectory model takes monthly panels only).
        seed: the seed of the trained models and the contestants.
        epochs: the transformer's and trajectory model's maximum epochs (default their trainers').
        out: a folder to save a simulation model into (the chain's ``markov_model.json``, the networks'
            ``config.json`` + ``model.safetensors``), for ``creditsim simulate --transition-model`` /
            ``--trajectory-model``.
        window, stride, warm_start: the trajectory model's sequences and starting point
            (:func:`~creditsim.loans.panel_train.train_trajectory_on_panel`; defaults 24, 12, True).
        progress: a progress bar while a network trains.

    Raises:
        ConfigError: an option the chosen model does not read (never silently ignored).
    """
    if isinstance(macro, str):
        if macro != "history":
            raise ConfigError(f"macro: expected a frame or 'history', got {macro!r}")
        from creditsim.datasets.macro import load_macro_history

        macro = load_macro_history()
    _check_training_options(model, epochs=epochs, out=out, window=window, stride=stride, warm_start=warm_start)
    if model in ("markov", "transformer", "trajectory") and period not in PERIOD_MONTHS:
        raise ConfigError(f"period: expected one of {list(PERIOD_MONTHS)} for model {model!r}, got {period!r}")
    if model in ("transformer", "trajectory"):
        if tape is None:
            raise ConfigError(f"model {model!r}: give the loan tape (its cohorts and loan features are the model's input)")
        if period != "month" and model == "trajectory":
            raise ConfigError(f"model 'trajectory' learns from monthly loan histories; for a {period!r} panel fit the "
                              f"chain or the transformer (period={period!r}: monthly models whose {period}ly moves fit "
                              f"yours) or a harness model (model='gbm', period={period!r})")
        ignored = [name for name, given in (("by", by is not None), ("overlay", overlay is not None),
                                            ("panel_features", bool(panel_features)),
                                            ("tape_features", bool(tape_features)), ("cohort_by", bool(cohort_by)),
                                            ("segment_by", tuple(segment_by) != ("prev_state",))) if given]
        if ignored:
            raise ConfigError(f"model {model!r}: {ignored} do not apply (the simulation model reads the tape's asset "
                              "classes and contract terms, the calibrated link or the macro path, monthly moves); "
                              f"the harness's {model} contestant takes them: "
                              f"creditsim.harness.make_contestant({model!r}, ...)")
        history = macro if macro is not None else "history"
        if model == "trajectory":
            from creditsim.loans.panel_train import train_trajectory_on_panel

            given = {k: v for k, v in (("window", window), ("stride", stride), ("warm_start", warm_start)) if v is not None}
            return train_trajectory_on_panel(panel, tape, history, out=out, seed=seed, epochs=epochs, progress=progress,
                                             **given)
        from creditsim.transitions.panel_train import train_transformer_on_panel

        return train_transformer_on_panel(panel, tape, history, out=out, seed=seed, epochs=epochs, progress=progress,
                                          period_months=PERIOD_MONTHS[period])
    if model != "markov":
        if model not in CONTESTANT_NAMES:
            raise ConfigError(f"model {model!r}: expected 'markov' or one of {list(CONTESTANT_NAMES)}")
        moves = build_moves(panel, tape, panel_features, tape_features, period, macro=macro)
        return make_contestant(model, tuple(segment_by), seed, tuple(cohort_by), tape=tape).fit(moves)
    months = PERIOD_MONTHS[period]
    by = by if by is not None else ("asset_class" if tape is not None else None)
    overlay = overlay if overlay is not None else default_overlay(by, macro is not None, period)
    if overlay not in OVERLAYS:
        raise ConfigError(f"overlay: expected one of {list(OVERLAYS)}, got {overlay!r}")
    if overlay == "fit" and months > 1:
        raise ConfigError("overlay fit estimates the macro link from monthly moves; a quarterly panel has none: use "
                          "overlay calibrated (a chain segmented by asset_class) or legacy")
    if overlay == "calibrated" and by != "asset_class":
        raise ConfigError("overlay calibrated needs a chain segmented by asset_class (--by asset_class; in Python "
                          "by='asset_class'): one calibrated link per asset class; or use overlay fit (estimated on "
                          "your panel with a macro history) or legacy")
    if overlay == "fit" and macro is None:
        raise ConfigError("overlay 'fit' needs a macro frame (macro=frame or 'history')")
    if overlay != "fit" and macro is not None:
        fix = "drop macro" if months > 1 else "drop macro, or give overlay='fit'"
        raise ConfigError(f"macro: the chain's {overlay!r} overlay does not read it (its macro link is fixed): {fix}")
    if tape is not None and "origination_date" in tape.columns:
        _check_from_origination(panel, tape)
    if out is not None:  # one model per folder, checked before the fit
        from creditsim.checkpoints import check_checkpoint_target

        check_checkpoint_target(out, "MarkovTransitionModel")
    frame = panel if by is None else _with_segment(panel, tape, by)
    kwargs = {"segment_sensitivities": calibrated_sensitivities()} if overlay == "calibrated" else {}
    chain = MarkovTransitionModel(**kwargs).fit(frame, by=by, period_months=months)
    if overlay == "fit":
        chain.fit_macro_sensitivity(frame, macro)
    if out is not None:
        chain.save(out)
    return chain


def _check_from_origination(panel: pd.DataFrame, tape: pd.DataFrame) -> None:
    """The panel trainers' rule for the chain too: a row before its loan's origination is a DataError
    (a mis-keyed loan or a date in the wrong column)."""
    from creditsim.transitions.cohorts import check_rows_from_origination, panel_loan_positions, panel_month_numbers

    check_rows_from_origination(panel, tape, panel_loan_positions(panel, tape), panel_month_numbers(panel))


def default_overlay(by: str | None, macro_given: bool, period: str = "month") -> str:
    """The chain's overlay when none is named (module docstring): calibrated by asset class, else fitted
    when a macro frame is given and the panel is monthly, else legacy."""
    if by == "asset_class":
        return "calibrated"
    return "fit" if macro_given and period == "month" else "legacy"


def _check_training_options(model: str, **given: Any) -> None:
    """ConfigError naming the options (given, not None) that ``model`` does not read."""
    reads = {"markov": ("out",), "transformer": ("epochs", "out"),
             "trajectory": ("epochs", "out", "window", "stride", "warm_start")}.get(model, ())
    unread = [k for k, v in given.items() if v is not None and k not in reads]
    if unread:
        raise ConfigError(f"model {model!r}: {unread} do not apply (read by: epochs, out -- the transformer and the "
                          "trajectory model; window, stride, warm_start -- the trajectory model; out -- the chain too)")
