"""MarkovTransitionModel: the homogeneous monthly Markov chain baseline, with a macro credit-cycle overlay.

Baseline. ``fit(panel)`` estimates the monthly 7x7 transition matrix by maximum likelihood from the
loan-month transitions of a performance panel: ``p_ij = n_ij / n_i`` (multinomial MLE), with standard
errors ``sqrt(p_ij (1 - p_ij) / n_i)``. Only pairs of consecutive calendar months of the same loan
count (a gap in reporting is not a one-month move). Absorbing rows (DEFAULT, PREPAID, MATURED) are
exact unit rows and forbidden moves are exactly 0 (the panel is validated against
:data:`creditsim.states.ALLOWED_TRANSITIONS`). With ``by=`` one matrix is fitted per segment.

Right-censoring (decision). A loan's last row without a flag ends its data: it contributes no move
out of that month (its next state is unknown). An optional bool column ``censored`` set on a loan's
last row says more: the loan was followed one more month and did **not** default, but its state then
is not reported (the UCI card panel's ``Y = 0`` accounts, see
:func:`creditsim.datasets.credit_card.load_credit_card_panel`). Such an observation is coarsened
("some non-DEFAULT state"), so its likelihood term is ``1 - p_iD`` and the row MLE stays closed-form:
``p_iD = n_iD / (n_i + c_i)`` and ``p_ij = (1 - p_iD) n_ij / (n_i - n_iD)`` for ``j != DEFAULT``, with
``c_i`` the censored rows in state ``i``. Without censored rows this is ``n_ij / n_i`` exactly. Leaving
such loans out while the defaulters' last month is counted would be selection on the outcome: every
observed move out of the final month would be a default.

Rows without observations (decision): a segment's live row with no observations borrows the pooled
(all-segment) row; a pooled live row with no observations becomes a "stay" unit row. Every such row is
listed in ``empty_rows_`` and reported by :meth:`summary` and a warning, never silently filled.

Macro overlay (decision, documented). The homogeneous chain is the through-the-cycle baseline. For
scenario analysis :meth:`scenario_matrices` tilts it month by month with log-odds shifts per
standardised macro shock ``z = clip((x - mean) / std, -4, 4)``:

    logit_ij(s, t) = log p_ij + sum_v beta_{class(i, j), v} z_v(s, t),   row softmax over p_ij > 0,

where the move classes and default sensitivities are those of spec/loan-tape.md: delinquency
(CURRENT -> DPD30), default (roll-forward DPD30 -> DPD60 -> DPD90 and any live state -> DEFAULT), cure
(any delinquent state -> a lower bucket or CURRENT) and prepayment (live -> PREPAID); "spreads" are the
high-yield spread. Staying put is the reference category (no shift). Forbidden and unobserved moves
keep probability exactly 0, rows stay stochastic, and a zero shock returns the baseline matrix exactly.

Calibration (decision). :meth:`default` gives each asset class the overlay calibrated on the Federal
Reserve's bank delinquency history (:mod:`creditsim.transitions.calibrate`: per-class probit links on the
12-month unemployment change, the HY spread, GDP growth, house prices and the policy rate, scaled to the
link's Fed 2025 stress multiple: worst-year PD 1.5-3.7x the baseline). The synthetic loan panels the deep
models learn from use the same per-class overlay (:class:`creditsim.transitions.synthetic.OverlaySensitivity`).
``default(calibrated=False)`` and a bare ``MarkovTransitionModel()`` keep the earlier link: the spec's
three coefficients scaled by 0.1 (:mod:`creditsim.macro.sensitivity`), centred on the macro generator's
steady state and scaled by 1981-2019 US sds -- under the Fed 2025 severely adverse path it gave 9-26x the
baseline's worst-year PD, beyond any real recession, and no response to rates. Standardised shocks are clipped to ``|z| <= z_clip``
(default 4) because a linear log-odds tilt extrapolates without bound. The standardisation statistics
are ``macro_mean_`` / ``macro_std_``: taken from the macro frame given to :meth:`fit` (or
:meth:`fit_macro_sensitivity`) if any, else :data:`DEFAULT_MACRO_MEAN` / :data:`DEFAULT_MACRO_STD`.
:meth:`fit_macro_sensitivity` optionally estimates the sensitivities (at full strength, no further
scaling) from a dated panel and a macro frame (conditional-logit MLE with standard errors).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from creditsim.transitions.overlay_file import calibrated_sensitivities
from creditsim.transitions.period_moves import PeriodMoves, check_monthly_rows, dated_shares, loan_grid, split_moves
from creditsim.transitions.sampler import check_positive_int, check_states, cumulative_thresholds, validate_matrices
from creditsim.checkpoints import MARKOV_MODEL_FILE
from creditsim.errors import CheckpointError, ConfigError, DataError, NotFittedError, check_out_array, format_labels
from creditsim.fileio import atomic_write
from creditsim.macro.sensitivity import (CHANGE_MONTHS, OVERLAY_VARS, SHOCK_MEAN, SHOCK_SD, UNEMPLOYMENT_CHANGE, Z_CLIP,
                                        scaled_sensitivity, with_derived)
from creditsim.schema import STATE_PANEL_COLUMNS, validate_macro, validate_panel
from creditsim.states import ABSORBING_STATES, ALLOWED_TRANSITIONS, ASSET_CLASSES, MACRO_VARS, N_STATES, LoanState

__all__ = [
    "MarkovTransitionModel",
    "row_mle",
    "MOVE_CLASSES",
    "DEFAULT_MACRO_SENSITIVITY",
    "DEFAULT_MACRO_MEAN",
    "DEFAULT_MACRO_STD",
    "UNEMPLOYMENT_CHANGE_SD",
    "BASE_CASE_ROLL_RATES",
    "base_case_matrix",
    "MODEL_FILE",
    "MODEL_FORMAT",
]

#: file name and format tag of :meth:`MarkovTransitionModel.save`
MODEL_FILE = MARKOV_MODEL_FILE
MODEL_FORMAT = "creditsim.markov/1"

_LIVE = (LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90)
_N_LIVE = len(_LIVE)  # the live states are 0 .. 3


def _move_classes() -> dict[str, np.ndarray]:
    masks = {name: np.zeros((N_STATES, N_STATES), dtype=bool) for name in ("delinquency", "default", "cure", "prepayment")}
    masks["delinquency"][LoanState.CURRENT, LoanState.DPD30] = True
    for i in (LoanState.DPD30, LoanState.DPD60):
        masks["default"][i, i + 1] = True
    for i in _LIVE:
        masks["default"][i, LoanState.DEFAULT] = True
        masks["prepayment"][i, LoanState.PREPAID] = True
        for j in _LIVE:
            if j < i:
                masks["cure"][i, j] = True
    for m in masks.values():
        m.setflags(write=False)
    return masks


#: (7, 7) bool masks of the moves each macro sensitivity applies to.
MOVE_CLASSES: dict[str, np.ndarray] = _move_classes()
_CLASS_NAMES = list(MOVE_CLASSES)
#: ``(4, 7)`` index of each live move's class in _CLASS_NAMES (len(_CLASS_NAMES): no class); the classes are disjoint
_CLASS_OF_MOVE = np.full((_N_LIVE, N_STATES), len(_CLASS_NAMES))
for _i, _mask in enumerate(MOVE_CLASSES.values()):
    if (_CLASS_OF_MOVE[_mask[:_N_LIVE]] < len(_CLASS_NAMES)).any():
        raise RuntimeError("MOVE_CLASSES must be disjoint")
    _CLASS_OF_MOVE[_mask[:_N_LIVE]] = _i

#: Effective log-odds per unit standardised shock by move class and macro variable: the spec's
#: coefficients times the shared scale (:func:`creditsim.macro.sensitivity.scaled_sensitivity`).
DEFAULT_MACRO_SENSITIVITY: dict[str, dict[str, float]] = scaled_sensitivity()

#: Standardisation centres (decimals). Unemployment, HY spread and GDP growth (the variables of the
#: default sensitivities): the shared anchors of :mod:`creditsim.macro.sensitivity`. The others are
#: only used by user-given or fitted sensitivities on them: FRED CPIAUCSL y/y, FEDFUNDS, DGS10,
#: BAMLC0A0CM, CSUSHPINSA y/y 1997-2019 means; default-rate index: rough long-run level.
DEFAULT_MACRO_MEAN: dict[str, float] = {
    "gdp_growth": SHOCK_MEAN["gdp_growth"], "unemployment_rate": SHOCK_MEAN["unemployment_rate"],
    "inflation_rate": 0.0245, "policy_rate": 0.0224, "yield_10y": 0.0373, "credit_spread_ig": 0.0155,
    "credit_spread_hy": SHOCK_MEAN["credit_spread_hy"], "house_price_growth": 0.0361, "default_rate": 0.0300,
}
#: Standardisation scales, same sources as :data:`DEFAULT_MACRO_MEAN` (shared sds for the three).
DEFAULT_MACRO_STD: dict[str, float] = {
    "gdp_growth": SHOCK_SD["gdp_growth"], "unemployment_rate": SHOCK_SD["unemployment_rate"],
    "inflation_rate": 0.0126, "policy_rate": 0.0214, "yield_10y": 0.0141, "credit_spread_ig": 0.0088,
    "credit_spread_hy": SHOCK_SD["credit_spread_hy"], "house_price_growth": 0.0556, "default_rate": 0.0150,
}

#: Standardisation scale of the derived 12-month unemployment change (centre 0): its 1981-2019 sd (US
#: UNRATE, 1.02 pp; the mean, -0.09 pp, is taken as 0 so a flat path carries no shock).
UNEMPLOYMENT_CHANGE_SD: float = 0.0102

#: Base-case monthly roll rates of spec/loan-tape.md by asset class:
#: (cur->30, 30->60, 30->cur, 60->90, 60->cur, 90->default, 90->cur, cur->prepaid).
BASE_CASE_ROLL_RATES: dict[str, tuple[float, ...]] = {
    "corporate": (0.015, 0.30, 0.40, 0.40, 0.20, 0.50, 0.10, 0.008),
    "consumer": (0.025, 0.35, 0.35, 0.45, 0.15, 0.55, 0.08, 0.015),
    "real_estate": (0.008, 0.25, 0.45, 0.35, 0.25, 0.45, 0.12, 0.005),
    "receivables": (0.010, 0.20, 0.50, 0.30, 0.30, 0.40, 0.15, 0.020),
}


def base_case_matrix(asset_class: str) -> np.ndarray:
    """The spec's base-case monthly matrix of an asset class, ``(7, 7)`` float64.

    Unlisted moves are 0; the remaining mass of each live row stays in its state. Maturity is left to
    the contractual schedule (the cashflow engine matures loans at their last payment), so the
    MATURED column is 0.
    """
    if asset_class not in BASE_CASE_ROLL_RATES:
        raise ConfigError(f"asset_class must be one of {list(BASE_CASE_ROLL_RATES)}, got {asset_class!r}")
    c30, r3060, c30cur, r6090, c60cur, r90d, c90cur, prepay = BASE_CASE_ROLL_RATES[asset_class]
    p = np.zeros((N_STATES, N_STATES))
    p[LoanState.CURRENT, [LoanState.DPD30, LoanState.PREPAID]] = c30, prepay
    p[LoanState.DPD30, [LoanState.DPD60, LoanState.CURRENT]] = r3060, c30cur
    p[LoanState.DPD60, [LoanState.DPD90, LoanState.CURRENT]] = r6090, c60cur
    p[LoanState.DPD90, [LoanState.DEFAULT, LoanState.CURRENT]] = r90d, c90cur
    for i in _LIVE:
        p[i, i] = 1.0 - p[i].sum()
    for a in ABSORBING_STATES:
        p[a, a] = 1.0
    return p


class MarkovTransitionModel:
    """Homogeneous monthly Markov chain over the 7 loan states, optionally one matrix per segment.

    Args:
        n_states: must be 7 (the :class:`~creditsim.states.LoanState` chain).
        sensitivities: macro log-odds sensitivities by move class, at the strength applied (default
            :data:`DEFAULT_MACRO_SENSITIVITY`, the spec's coefficients scaled by 0.1). That default is
            the *legacy* link, kept so a chain fitted on a user's panel does not silently take a
            calibration made for other books: under the Fed 2025 severely adverse path it gives 9-26x the
            baseline's worst-year PD. For the link calibrated on the Fed bank delinquency history use
            :meth:`default`, or fit by asset class with
            ``segment_sensitivities=calibrated_sensitivities()``
            (:func:`creditsim.transitions.overlay_file.calibrated_sensitivities`) and ``by="asset_class"``;
            or estimate the overlay from your own dated panel with :meth:`fit_macro_sensitivity`.
        z_clip: largest absolute standardised shock the overlay applies (default 4); None = no clip.
        segment_sensitivities: ``{segment: sensitivities}`` overriding ``sensitivities`` for those segments
            of a segmented model (e.g. per asset class, each from its own calibrated credit link); a key
            that is not a segment is an error when the overlay is applied.

    Set by :meth:`fit` (and :meth:`from_matrix`), the names ending in ``_``:

    Attributes:
        counts_: ``(7, 7)`` (or ``(C, 7, 7)``) int64 observed transitions (one-month; for
            ``period_months_`` > 1 every move read, summed over gaps of 1 to ``4 * period_months_`` months).
        period_months_: months between the observed rows the chain was fitted on (1; 3 for a quarterly
            panel); the matrix is monthly either way.
        dated_shares_: ``(7,)`` (or ``(C, 7)``) share of the absorptions into each absorbing state that the
            panel dates in the month they happen, rather than carrying them to the next report month
            (:mod:`creditsim.transitions.period_moves`); zeros for a monthly fit and :meth:`from_matrix`.
        censored_counts_: ``(7,)`` (or ``(C, 7)``) int64 censored default-free months by from-state
            (rows flagged ``censored``; zeros without the column), None for :meth:`from_matrix`.
        transition_matrix_: ``(7, 7)`` (or ``(C, 7, 7)``) float64 monthly matrix.
        standard_errors_: same shape, multinomial standard errors (0 where a row has no data); delta-method
            ones for ``period_months_`` > 1.
        segments_: segment labels (None when unsegmented).
        empty_rows_: list of ``(segment, state name, filled_with)`` for rows without observations.
        macro_mean_, macro_std_: ``(9,)`` standardisation statistics in MACRO_VARS order.
    """

    def __init__(self, n_states: int = N_STATES, sensitivities: dict[str, dict[str, float]] | None = None,
                 z_clip: float | None = Z_CLIP,
                 segment_sensitivities: dict[str, dict[str, dict[str, float]]] | None = None):
        if n_states != N_STATES:
            raise ConfigError(f"n_states must be {N_STATES} (the LoanState chain), got {n_states}")
        if z_clip is not None and (isinstance(z_clip, bool) or not isinstance(z_clip, (int, float, np.floating, np.integer))
                                   or not z_clip > 0):
            raise ConfigError(f"z_clip must be a positive number or None, got {z_clip!r}")
        self.z_clip = None if z_clip is None else float(z_clip)
        self.n_states = n_states
        self.sensitivities = _check_sensitivities(DEFAULT_MACRO_SENSITIVITY if sensitivities is None else sensitivities)
        if segment_sensitivities is not None and not isinstance(segment_sensitivities, dict):
            raise ConfigError("segment_sensitivities: expected a dict segment -> {move_class: {macro variable: log-odds}}, "
                              f"got {type(segment_sensitivities).__name__}")
        self.segment_sensitivities = {str(k): _check_sensitivities(v) for k, v in (segment_sensitivities or {}).items()}
        self.macro_mean_ = np.array([DEFAULT_MACRO_MEAN[v] for v in MACRO_VARS])
        self.macro_std_ = np.array([DEFAULT_MACRO_STD[v] for v in MACRO_VARS])

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_matrix(cls, matrix: object, segments: Sequence[str] | None = None, **kwargs: object) -> "MarkovTransitionModel":
        """A model with a given ``(7, 7)`` or ``(C, 7, 7)`` matrix (validated) instead of a fit."""
        arr = validate_matrices(matrix, "matrix")
        if arr.ndim not in (2, 3):
            raise DataError(f"matrix: expected (7, 7) or (C, 7, 7), got {arr.shape}")
        if arr.ndim == 3 and (segments is None or len(segments) != arr.shape[0]):
            raise ConfigError(f"segments: expected {arr.shape[0]} labels for a (C, 7, 7) matrix, got {segments!r}")
        model = cls(**kwargs)
        model.transition_matrix_ = arr.copy()
        model.counts_ = None
        model.censored_counts_ = None
        model.period_months_ = 1
        model.dated_shares_ = np.zeros(arr.shape[:-1])
        model.standard_errors_ = np.zeros_like(arr)
        model.segments_ = None if arr.ndim == 2 else tuple(str(s) for s in segments)
        model.empty_rows_ = []
        return model

    @classmethod
    def default(cls, calibrated: bool = True) -> "MarkovTransitionModel":
        """The spec's base-case roll rates, one segment per asset class (ASSET_CLASSES order).

        ``calibrated`` (default): each class's macro overlay is the shipped calibration on the Federal
        Reserve's bank delinquency history (:mod:`creditsim.transitions.calibrate`: a probit link per
        class on the 12-month unemployment change, the HY spread, GDP growth, house prices and the policy
        rate, scaled so the chain's Fed 2025 severely adverse / baseline worst-year PD multiple -- a
        *delinquency* multiple, the series with history back to 1985 -- is the link's). The synthetic
        panels the deep models learn from use the same calibrated overlay. ``False``: the legacy link,
        the spec's three coefficients times 0.1 for every class (:mod:`creditsim.macro.sensitivity`)."""
        matrices = np.stack([base_case_matrix(a) for a in ASSET_CLASSES])
        if not calibrated:
            return cls.from_matrix(matrices, segments=ASSET_CLASSES)
        return cls.from_matrix(matrices, segments=ASSET_CLASSES, segment_sensitivities=calibrated_sensitivities())

    # ------------------------------------------------------------------ estimation
    def fit(self, panel_df: pd.DataFrame, by: str | None = None, macro: pd.DataFrame | None = None,
            period_months: int = 1) -> "MarkovTransitionModel":
        """Estimate the monthly matrix (per segment with ``by``) from a loan x month panel.

        With ``period_months`` = k > 1 (3: a quarterly panel) the moves counted are rows of a loan k
        months apart, a censored row is one more default-free *period*, and the monthly matrix is the
        one whose k-th power explains them best (:mod:`creditsim.transitions.embed`: constrained maximum
        likelihood; segments pulled weakly towards the pooled chain; delta-method standard errors). The
        result is a monthly chain like any other: ``simulate`` steps it month by month.

        Off-cycle rows are moves of their own length (``g`` months apart: scored by ``P^g``, any gap up to
        four periods), and absorptions are read as dated in their own month or carried to the next report
        month, with a share of dated records estimated per segment and absorbing state
        (:mod:`creditsim.transitions.period_moves`; ``dated_shares_``). Reading one convention as the
        other, or dropping the off-grid rows, misstates the default rate: tested against a known chain.

        A monthly fit of a panel whose rows are mostly more than a month apart is refused (it would read
        the few one-month pairs, e.g. dated payoffs, and nothing else).

        Args:
            panel_df: panel with ``loan_id``, ``reporting_month``, ``loan_state`` (validated; other
                columns such as balances are not read and not required) and optionally a bool
                ``censored`` column (True only on a loan's last row: one more default-free month whose
                state is unknown, see the module docstring).
            by: optional segment column (constant per loan is not required: a transition belongs to
                the segment of its starting month).
            macro: optional macro frame; its mean/std become the standardisation statistics of
                :meth:`scenario_matrices`.
            period_months: months between a loan's observed rows (1 monthly, 3 quarterly).

        Returns:
            self, with the fitted attributes set.
        """
        if isinstance(period_months, bool) or not isinstance(period_months, (int, np.integer)) or period_months < 1:
            raise ConfigError(f"period_months must be a positive integer, got {period_months!r}")
        df = _transition_panel(panel_df, by)
        period = int(period_months)
        st, gap, pair, off_grid = _period_moves(df, period)
        frm, to, k = st[:-1][pair], st[1:][pair], gap[pair]
        if len(frm) == 0:
            raise DataError("panel: no one-month transitions (need consecutive months of the same loan; a quarterly "
                            "panel: period_months=3, on the command line --period quarter)" if period == 1 else
                            f"panel: no moves between rows of the same loan 1 to {_MAX_GAP_PERIODS * period} months "
                            "apart")
        cens = _censored_rows(df)  # (n_rows,) bool
        seg, seg_c, labels = _segment_codes(df, by, pair, cens)
        n_seg = 1 if labels is None else len(labels)
        moves = split_moves(frm, to, k, seg, n_seg, off_grid[1:][pair])
        censored = np.zeros((n_seg, N_STATES), dtype=np.int64)
        np.add.at(censored, (seg_c, st[cens]), 1)
        counts = moves.every_move()  # (C, 7, 7): every move read, whatever its gap
        if period > 1:
            matrix, se, empty, shares = _embedded_segments(moves, censored, labels, period)
        else:
            matrix, se, empty = _monthly_segments(counts, censored, labels)
            shares = np.zeros((n_seg, N_STATES))
        if empty:
            warnings.warn(f"MarkovTransitionModel.fit: rows without observations filled: {empty}", stacklevel=2)
        squeeze = labels is None
        self.period_months_ = period
        self.dated_shares_ = shares[0] if squeeze else shares
        self.counts_ = counts[0] if squeeze else counts
        self.censored_counts_ = censored[0] if squeeze else censored
        self.transition_matrix_ = matrix[0] if squeeze else matrix
        self.standard_errors_ = se[0] if squeeze else se
        self.segments_ = labels
        self.empty_rows_ = empty
        if macro is not None:
            mac = validate_macro(macro)
            std = mac.std().to_numpy()
            if (std <= 0).any():
                flat = [v for v, s_ in zip(MACRO_VARS, std) if s_ <= 0]
                raise DataError(f"macro frame: variables {flat} are constant; cannot standardise")
            self.macro_mean_ = mac.mean().to_numpy()
            self.macro_std_ = std
        return self

    def fit_macro_sensitivity(
        self,
        panel_df: pd.DataFrame,
        macro: pd.DataFrame,
        variables: Sequence[str] = ("unemployment_rate", "credit_spread_hy", "gdp_growth"),
    ) -> "MarkovTransitionModel":
        """Estimate the overlay's sensitivities from a dated panel and a macro frame (optional step).

        Model: for a move i -> j of month t, ``logit_ij(t) = a_ij + sum_v beta_{class(i,j), v} z_v(t)``
        with staying put as the reference, free intercepts ``a_ij`` and one coefficient per (move
        class, variable), shared by all moves of the class; ``z`` is standardised with the macro
        frame's own mean and std (which become ``macro_mean_`` / ``macro_std_``). Maximum likelihood
        on the monthly transition counts (L-BFGS, float64); standard errors from the inverse Hessian.
        The fitted intercepts are not used: the baseline stays the homogeneous matrix.

        Sets ``sensitivities`` (classes x ``variables``; other variables 0), ``sensitivity_se_`` (same
        layout) and ``sensitivity_grad_`` (largest absolute score at the optimum, a convergence check).
        Returns self.
        """
        for v in variables:
            if v not in MACRO_VARS:
                raise ConfigError(f"variables: unknown macro variable {v!r}; expected names from {list(MACRO_VARS)}")
        df = _transition_panel(panel_df, None)
        mac = validate_macro(macro)
        std = mac.std().to_numpy()
        if (std <= 0).any():
            raise DataError(f"macro frame: variables {[v for v, s_ in zip(MACRO_VARS, std) if s_ <= 0]} are constant")
        counts, rows = _live_move_counts(df, mac)
        cols = [MACRO_VARS.index(v) for v in variables]
        z = (mac.to_numpy()[rows] - mac.mean().to_numpy()) / std  # (M, 9)
        z = torch.from_numpy(z[:, cols])  # (M, V)
        classes = list(MOVE_CLASSES)
        cls_mask = torch.from_numpy(np.stack([MOVE_CLASSES[c][:_N_LIVE] for c in classes]).astype(np.float64))  # (K, 4, 7)
        usable = torch.from_numpy(ALLOWED_TRANSITIONS[:_N_LIVE] & (counts.sum(0) > 0))  # (4, 7)
        nll = _sensitivity_nll(z, torch.from_numpy(counts), cls_mask, usable)
        a, beta, self.sensitivity_grad_ = _minimise_nll(nll, len(classes), len(cols))
        b_hat, se, has_data = _sensitivity_standard_errors(nll, a, beta, cls_mask, usable)
        self.sensitivities = {c: {v: float(b_hat[k, q]) for q, v in enumerate(variables)} for k, c in enumerate(classes)
                              if bool(has_data[k])}
        self.sensitivity_se_ = {c: {v: float(se[k, q]) for q, v in enumerate(variables)} for k, c in enumerate(classes)
                                if bool(has_data[k])}
        self.macro_mean_ = mac.mean().to_numpy()
        self.macro_std_ = std
        return self

    # ------------------------------------------------------------------ use
    def _matrix(self) -> np.ndarray:
        if not hasattr(self, "transition_matrix_"):
            raise NotFittedError("MarkovTransitionModel is not fitted; call fit(panel) or from_matrix(...)")
        return self.transition_matrix_

    def simulate(self, initial_states: object, n_steps: int, seed: int | None = None, segment: object | None = None) -> np.ndarray:
        """Sample state paths of the chain.

        Args:
            initial_states: ``(n_loans,)`` states 0..6 at month 0.
            n_steps: months to simulate.
            seed: root seed, an int >= 0 (numpy SeedSequence); None = fresh entropy.
            segment: ``(n_loans,)`` segment index for a segmented model (default 0).

        Returns:
            ``(n_loans, n_steps)`` int8 states after each month.
        """
        p = self._matrix()
        x = check_states(np.atleast_1d(initial_states), "initial_states")
        if x.ndim != 1:
            raise DataError(f"initial_states: expected a 1-D array, got shape {x.shape}")
        steps = check_positive_int(n_steps, "n_steps")
        if seed is not None:
            seed = check_positive_int(seed, "seed", minimum=0)
        mats = p if p.ndim == 3 else p[None]
        try:
            seg = np.zeros(len(x), np.int64) if segment is None else np.asarray(segment, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"segment: expected {len(x)} integer segment indices, got {segment!r:.80}") from exc
        if seg.shape != x.shape or (seg < 0).any() or (seg >= len(mats)).any():
            raise DataError(f"segment: expected {len(x)} indices in 0..{len(mats) - 1}")
        thr = cumulative_thresholds(torch.from_numpy(mats)).numpy().reshape(-1, N_STATES - 1)  # (C*7, 6)
        rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed)))
        out = np.empty((len(x), steps), dtype=np.int8)
        base = seg * N_STATES
        for t in range(steps):
            u = rng.random(len(x), dtype=np.float32)
            x = (u[:, None] >= thr[base + x]).sum(1)
            out[:, t] = x
        return out

    def matrix_power(self, n: int) -> np.ndarray:
        """``P^n``: n-month transition probabilities, ``(7, 7)`` or ``(C, 7, 7)``."""
        return np.linalg.matrix_power(self._matrix(), check_positive_int(n, "n", minimum=0))

    def pd_curve(self, horizon: int, initial_state: int = LoanState.CURRENT) -> np.ndarray:
        """Cumulative probability of DEFAULT by month 1..horizon from ``initial_state``.

        Returns ``(horizon,)`` (or ``(C, horizon)`` for a segmented model), ``(P^t)[initial, DEFAULT]``.
        """
        p = self._matrix()
        steps = check_positive_int(horizon, "horizon")
        state = int(check_states(np.array([initial_state]), "initial_state")[0])
        row = np.zeros(p.shape[:-2] + (N_STATES,))
        row[..., state] = 1.0
        out = np.empty(p.shape[:-2] + (steps,))
        for t in range(steps):
            row = np.einsum("...i,...ij->...j", row, p)
            out[..., t] = row[..., LoanState.DEFAULT]
        return out

    def absorption_probabilities(self) -> np.ndarray:
        """Long-run probability of ending in DEFAULT / PREPAID / MATURED from each live state.

        Returns ``(4, 3)`` (or ``(C, 4, 3)``): ``B = (I - Q)^{-1} R`` with ``Q`` the live-to-live and
        ``R`` the live-to-absorbing blocks (the fundamental-matrix result). A live block that never
        leaves (e.g. an all-stay row) makes ``I - Q`` singular: a DataError says so.
        """
        p = self._matrix()
        live, absorbing = list(_LIVE), list(ABSORBING_STATES)
        q = p[..., live, :][..., :, live]
        r = p[..., live, :][..., :, absorbing]
        try:
            return np.linalg.solve(np.eye(len(live)) - q, r)
        except np.linalg.LinAlgError as exc:
            raise DataError("transition matrix: some live states never reach an absorbing state") from exc

    def scenario_matrices(self, macro_paths: object, macro_mean: object | None = None, macro_std: object | None = None,
                          out: np.ndarray | None = None) -> np.ndarray:
        """Macro-conditioned monthly matrices (the credit-cycle overlay of the module docstring).

        Args:
            macro_paths: ``(S, T, 9)`` macro paths in MACRO_VARS order, decimals.
            macro_mean, macro_std: ``(9,)`` overrides of the standardisation statistics.
            out: optional float64 array of the result's shape to write into (any strides, e.g. a slice of
                the pool engine's cohort array; it must not overlap ``macro_paths``).

        Returns:
            ``(S, T, 7, 7)`` float64, or ``(S, C, T, 7, 7)`` for a segmented model (``out`` when given).
            Rows stochastic, forbidden (and zero-probability) moves exactly 0, the baseline exactly when
            ``z = 0``: by construction (a softmax of finite log-odds over the base row's positive entries),
            so the pool engine does not check them again.
        """
        p = self._matrix()
        macro = np.asarray(macro_paths, dtype=np.float64)
        if macro.ndim != 3 or macro.shape[-1] != len(MACRO_VARS):
            raise DataError(f"macro_paths: expected shape (S, T, {len(MACRO_VARS)}) in MACRO_VARS order, got {macro.shape}")
        if not np.isfinite(macro).all():
            raise DataError("macro_paths: contains NaN or infinite values")
        mean = self.macro_mean_ if macro_mean is None else np.asarray(macro_mean, dtype=np.float64)
        std = self.macro_std_ if macro_std is None else np.asarray(macro_std, dtype=np.float64)
        if mean.shape != (len(MACRO_VARS),) or std.shape != (len(MACRO_VARS),) or not (std > 0).all():
            raise ConfigError(f"macro_mean / macro_std: expected ({len(MACRO_VARS)},) with std > 0")
        z = (macro - mean) / std  # (S, T, 9)
        if self._uses_derived():  # the 12-month unemployment change as a tenth shock (see OVERLAY_VARS)
            change = with_derived(macro)[..., -1:] / UNEMPLOYMENT_CHANGE_SD
            z = np.concatenate([z, change], axis=-1)
        if self.z_clip is not None:
            z = np.clip(z, -self.z_clip, self.z_clip)
        delta = self._segment_tilts(z, p.ndim == 3)  # (S, C or 1, T, 4, 7): the live rows
        base = p if p.ndim == 3 else p[None]  # (C, 7, 7)
        shape = (macro.shape[0], base.shape[0], macro.shape[1], N_STATES, N_STATES)
        if out is None:
            res = np.empty(shape)
        else:
            check_out_array(out, shape if p.ndim == 3 else (shape[0],) + shape[2:], "scenario_matrices")
            res = out if p.ndim == 3 else out[:, None]
        live = base[:, :_N_LIVE]
        logp = np.log(np.where(live > 0, live, 1.0))
        logp = np.where(live > 0, logp, -np.inf)
        unshifted = (delta == 0).all(-1)[..., None]  # rows with no tilt: the baseline bit for bit
        # the softmax in place on one contiguous (S, C, T, 4, 7) array (the tilts' own where their shape is
        # the result's), then one copy into the result's live rows: the same operations in the same order as
        # a softmax of fresh arrays, so the same bits, with two such arrays at most instead of six (strided
        # in-place passes on the result's rows measured slower than this copy)
        w = delta if delta.shape[1] == base.shape[0] else np.empty(shape[:3] + (_N_LIVE, N_STATES))
        np.add(logp[None, :, None], delta, out=w)  # the log-odds
        w -= w.max(-1, keepdims=True)
        np.exp(w, out=w)
        total = w.sum(-1, keepdims=True)
        # a tilt of -inf gives its move probability 0, as it should; a NaN or +inf one (z unclipped, macro
        # values beyond float64's reach) leaves a row with no finite softmax, which nothing downstream checks
        if not (np.isfinite(total).all() and (total > 0).all()):
            raise DataError("macro_paths: the standardised shocks give some rows no finite log-odds (macro values "
                            "far outside the fit's range; set z_clip)")
        w /= total
        np.copyto(w, live[None, :, None], where=unshifted)
        res[..., :_N_LIVE, :] = w
        # no move class touches an absorbing row, so those rows are the baseline's unit rows
        res[..., _N_LIVE:, :] = base[None, :, None, _N_LIVE:]
        if out is not None:
            return out
        return res if p.ndim == 3 else res[:, 0]

    def scenario_matrices_torch(self, macro_paths: torch.Tensor) -> torch.Tensor:
        """:meth:`scenario_matrices` in torch, differentiable in the macro paths (same maths, float64).

        Args:
            macro_paths: ``(S, T, 9)`` float64 tensor (MACRO_VARS order, decimals); may require grad.

        Returns:
            ``(S, T, 7, 7)`` or ``(S, C, T, 7, 7)`` float64 tensor; equal to :meth:`scenario_matrices`
            to rounding (tested to 1e-12). The clip of the standardised shocks at ``z_clip`` has zero
            gradient beyond the clip, as the overlay has no slope there.
        """
        p = self._matrix()
        x = macro_paths
        if x.ndim != 3 or x.shape[-1] != len(MACRO_VARS):
            raise DataError(f"macro_paths: expected shape (S, T, {len(MACRO_VARS)}), got {tuple(x.shape)}")
        opts = {"dtype": torch.float64, "device": x.device}
        z = (x - torch.as_tensor(self.macro_mean_, **opts)) / torch.as_tensor(self.macro_std_, **opts)
        if self._uses_derived():
            u = x[..., MACRO_VARS.index("unemployment_rate")]
            k = min(CHANGE_MONTHS, u.shape[-1])
            lagged = torch.cat([u[..., :1].expand(*u.shape[:-1], k), u[..., : max(u.shape[-1] - CHANGE_MONTHS, 0)]], dim=-1)
            z = torch.cat([z, ((u - lagged) / UNEMPLOYMENT_CHANGE_SD)[..., None]], dim=-1)
        if self.z_clip is not None:
            z = torch.clamp(z, -self.z_clip, self.z_clip)

        def tilt(sensitivities: dict[str, dict[str, float]]) -> torch.Tensor:
            delta = torch.zeros(z.shape[:2] + (N_STATES, N_STATES), **opts)
            for name, sens in sensitivities.items():
                beta = torch.tensor([sens.get(v, 0.0) for v in OVERLAY_VARS[: z.shape[-1]]], **opts)
                delta = delta + (z * beta).sum(-1)[..., None, None] * torch.tensor(MOVE_CLASSES[name], **opts)
            return delta

        if not self.segment_sensitivities:
            delta = tilt(self.sensitivities)[:, None]
        else:
            self._segment_tilts(np.zeros((1, 1, z.shape[-1])), p.ndim == 3)  # the same segment checks
            delta = torch.stack([tilt(self.segment_sensitivities.get(seg, self.sensitivities)) for seg in self.segments_],
                                dim=1)
        base = torch.as_tensor(p if p.ndim == 3 else p[None], **opts)  # (C, 7, 7)
        # masked softmax without logs (as sampler.shift_rows): zero moves stay exactly zero
        w = base[None, :, None] * torch.exp(delta - delta.amax(-1, keepdim=True))
        out = w / w.sum(-1, keepdim=True)
        return out if p.ndim == 3 else out[:, 0]

    def _uses_derived(self) -> bool:
        """Whether any sensitivity is on the derived unemployment change (only then is it computed, so
        models on the nine variables alone give the same numbers bit for bit)."""
        every = [self.sensitivities, *self.segment_sensitivities.values()]
        return any(UNEMPLOYMENT_CHANGE in per_var for sens in every for per_var in sens.values())

    def _segment_tilts(self, z: np.ndarray, segmented: bool) -> np.ndarray:
        """Log-odds tilts of the live rows ``(S, C, T, 4, 7)`` (``C = 1`` when every segment shares
        ``sensitivities``) of standardised shocks ``z`` ``(S, T, 9)``; no move class touches an absorbing row."""
        def tilt(sensitivities: dict[str, dict[str, float]]) -> np.ndarray:
            # the move classes are disjoint, so each entry's tilt is its class's shock (0 outside every
            # class): one gather instead of a full-array pass per class, with the same values
            shock = np.zeros(z.shape[:2] + (len(_CLASS_NAMES) + 1,))
            for name, sens in sensitivities.items():
                beta = np.array([sens.get(v, 0.0) for v in OVERLAY_VARS[: z.shape[-1]]])
                shock[..., _CLASS_NAMES.index(name)] = z @ beta
            return shock[..., _CLASS_OF_MOVE] + 0.0  # + 0.0: a -0.0 shock tilts by +0.0, as the sum did

        if not self.segment_sensitivities:
            return tilt(self.sensitivities)[:, None]
        segments = self.segments_ if segmented else ()
        unknown = sorted(set(self.segment_sensitivities) - set(segments or ()))
        if unknown:
            raise ConfigError(f"segment_sensitivities: {unknown} are not segments of this model "
                              f"(segments: {list(segments) if segments else 'none, the model is not segmented'})")
        return np.stack([tilt(self.segment_sensitivities.get(seg, self.sensitivities)) for seg in segments], axis=1)

    def summary(self) -> pd.DataFrame:
        """Fitted matrix as a table: one row per (segment, from_state), target probabilities, n_obs
        (observed moves), n_censored (censored default-free months) and how rows without observations
        were filled."""
        p = self._matrix()
        mats = p if p.ndim == 3 else p[None]
        counts = None if self.counts_ is None else (self.counts_ if self.counts_.ndim == 3 else self.counts_[None])
        raw_c = getattr(self, "censored_counts_", None)
        cens = None if raw_c is None else (raw_c if raw_c.ndim == 2 else raw_c[None])
        segs = self.segments_ if self.segments_ is not None else ("all",)
        filled = {(seg if seg is not None else "all", st): how for seg, st, how in self.empty_rows_}
        rows = []
        for c, seg in enumerate(segs):
            for i in range(N_STATES):
                rec = {"segment": seg, "from_state": LoanState(i).name}
                rec.update({LoanState(j).name: mats[c, i, j] for j in range(N_STATES)})
                rec["n_obs"] = int(counts[c, i].sum()) if counts is not None else np.nan
                rec["n_censored"] = int(cens[c, i]) if cens is not None else np.nan
                rec["filled"] = filled.get((seg, LoanState(i).name), "")
                rows.append(rec)
        return pd.DataFrame(rows).set_index(["segment", "from_state"])


    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the fitted chain and its macro overlay to ``directory/markov_model.json`` (atomically).

        JSON, not safetensors: the model is a handful of small matrices and dictionaries, and JSON's
        shortest round-trip float repr gives back every float64 bit for bit. Returns the file's path.
        """
        p = self._matrix()
        data = {
            "format": MODEL_FORMAT, "matrix": p.tolist(), "segments": None if self.segments_ is None else list(self.segments_),
            "sensitivities": self.sensitivities, "segment_sensitivities": self.segment_sensitivities, "z_clip": self.z_clip,
            "macro_mean": self.macro_mean_.tolist(), "macro_std": self.macro_std_.tolist(),
            "counts": None if self.counts_ is None else np.asarray(self.counts_).tolist(),
            "censored_counts": None if getattr(self, "censored_counts_", None) is None else np.asarray(self.censored_counts_).tolist(),
            "period_months": int(getattr(self, "period_months_", 1)),
            "dated_shares": np.asarray(getattr(self, "dated_shares_", np.zeros(p.shape[:-1]))).tolist(),
        }
        path = Path(directory) / MODEL_FILE
        return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1), encoding="utf-8"))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> "MarkovTransitionModel":
        """A model written by :meth:`save` (``directory`` or the JSON file itself); CheckpointError naming
        what is missing or malformed."""
        path = Path(directory)
        path = path / MODEL_FILE if path.is_dir() else path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable Markov model file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise CheckpointError(f"{path}: expected a {MODEL_FORMAT!r} file written by MarkovTransitionModel.save")
        model = cls.from_matrix(np.asarray(data["matrix"], dtype=np.float64), segments=data["segments"],
                                sensitivities=data["sensitivities"], z_clip=data["z_clip"],
                                segment_sensitivities=data["segment_sensitivities"] or None)
        model.macro_mean_ = np.asarray(data["macro_mean"], dtype=np.float64)
        model.macro_std_ = np.asarray(data["macro_std"], dtype=np.float64)
        if data.get("counts") is not None:
            model.counts_ = np.asarray(data["counts"], dtype=np.int64)
        if data.get("censored_counts") is not None:
            model.censored_counts_ = np.asarray(data["censored_counts"], dtype=np.int64)
        model.period_months_ = int(data.get("period_months", 1))
        if data.get("dated_shares") is not None:
            model.dated_shares_ = np.asarray(data["dated_shares"], dtype=np.float64)
        return model


def row_mle(counts: np.ndarray, censored: np.ndarray | None = None) -> np.ndarray:
    """Row MLE of a ``(7, 7)`` count table; rows without counts are zero.

    ``censored`` ``(7,)``: default-free months with unknown next state per from-state (module
    docstring): ``p_iD = n_iD / (n_i + c_i)``, the other moves share ``1 - p_iD`` in proportion to
    their counts. Without censored months (or ``None``) this is ``n_ij / n_i`` bit for bit.
    """
    n = counts.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, counts / np.maximum(n, 1), 0.0)
    if censored is not None:
        d = LoanState.DEFAULT
        for i in np.flatnonzero((censored > 0) & (n[:, 0] > 0)):
            p_default = counts[i, d] / (n[i, 0] + censored[i])
            rest = counts[i].astype(np.float64)
            rest[d] = 0.0
            if rest.sum() > 0:
                p[i] = (1.0 - p_default) * rest / rest.sum()
            else:  # every observed move was a default: the survivors' unknown states are taken as staying
                p[i] = 0.0
                p[i, i] = 1.0 - p_default
            p[i, d] = p_default
    p[~ALLOWED_TRANSITIONS] = 0.0  # validated panels have none; kept as a guard for the invariant
    return p


def _row_standard_errors(p: np.ndarray, n_i: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """``(7, 7)`` multinomial standard errors ``sqrt(p_ij (1 - p_ij) / n_i)`` of a fitted matrix.

    ``n_i`` ``(7,)`` observed moves and ``censored`` ``(7,)`` censored months by from-state; rows
    without observations and absorbing rows get 0.
    """
    d = LoanState.DEFAULT
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(n_i[:, None] > 0, np.sqrt(p * (1 - p) / np.maximum(n_i, 1)[:, None]), 0.0)
        # the DEFAULT column is a binomial over observed and censored months alike
        n_d = n_i + censored
        se[:, d] = np.where(n_i > 0, np.sqrt(p[:, d] * (1 - p[:, d]) / np.maximum(n_d, 1)), 0.0)
    se[list(ABSORBING_STATES)] = 0.0
    return se


#: the columns the chain reads; nothing else of a panel is required (balances are never used)
_FIT_COLUMNS: tuple[str, ...] = STATE_PANEL_COLUMNS


def _transition_panel(panel_df: object, by: str | None) -> pd.DataFrame:
    """Validate only the columns :meth:`MarkovTransitionModel.fit` reads; a sorted, coerced copy.

    Returns the ``loan_id`` / ``reporting_month`` / ``loan_state`` columns (plus ``by`` and
    ``censored`` when present), cleaned by :func:`creditsim.schema.validate_panel` (ids, month dates,
    integer states 0..6, one row per loan-month, allowed moves) and sorted by loan and month.
    """
    if not isinstance(panel_df, pd.DataFrame):
        raise DataError(f"panel: expected a pandas DataFrame, got {type(panel_df).__name__}")
    if by is not None and (not isinstance(by, str) or by not in panel_df.columns):
        raise DataError(f"panel: segment column '{by}' is missing (by= names a column of the panel)")
    missing = [c for c in _FIT_COLUMNS if c not in panel_df.columns]
    if missing:
        raise DataError(f"panel: missing required column(s) {missing}; the Markov fit reads {list(_FIT_COLUMNS)}")
    if len(panel_df) == 0:
        raise DataError("panel: no rows")
    keep = list(dict.fromkeys([*_FIT_COLUMNS, *(c for c in (by, "censored") if c is not None and c in panel_df.columns)]))
    used = panel_df[keep]
    if by is not None:
        bad = panel_df.index[panel_df[by].isna()]
        if len(bad):
            raise DataError(f"panel: segment column '{by}' has {len(bad)} missing value(s) at rows {format_labels(list(bad))}")
    # only the columns the chain reads are required (a tape without balances fits as well)
    return validate_panel(used, required=STATE_PANEL_COLUMNS)


def _censored_rows(df: pd.DataFrame) -> np.ndarray:
    """``(n_rows,)`` bool of the validated, sorted panel's ``censored`` flags (all False without the
    column). A flag is allowed only on a loan's last row and only in a live state."""
    if "censored" not in df.columns:
        return np.zeros(len(df), dtype=bool)
    col = df["censored"]
    ok = col.isin([True, False]) & col.notna()  # bool, or 0 / 1 (1.0 == True in isin)
    if not ok.all():
        bad = list(df.index[~ok])
        raise DataError(f"panel: column 'censored' has {len(bad)} invalid row(s) {format_labels(bad)}; "
                        "expected True / False (or 1 / 0)")
    flags = col.to_numpy().astype(bool)
    ids = df["loan_id"].to_numpy()
    last = np.ones(len(df), dtype=bool)
    last[:-1] = ids[1:] != ids[:-1]
    bad = list(df.index[flags & ~last])
    if bad:
        raise DataError(f"panel: column 'censored' has {len(bad)} invalid row(s) {format_labels(bad)}; "
                        "expected True only on a loan's last row (nothing is observed after a censoring)")
    absorbed = flags & (df["loan_state"].to_numpy(np.int64) >= int(LoanState.DEFAULT))
    bad = list(df.index[absorbed])
    if bad:
        raise DataError(f"panel: column 'censored' has {len(bad)} invalid row(s) {format_labels(bad)}; "
                        "expected True only in a live state (CURRENT..DPD90): an absorbed loan has no next month")
    return flags


def _month_pairs(df: pd.DataFrame, step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States, months and ``step``-month moves of a validated panel sorted by loan and month.

    Returns ``(state, month, pair)``: ``(n_rows,)`` int64 states, ``(n_rows,)`` months as
    ``year * 12 + month`` and ``(n_rows - 1,)`` bool, True where rows ``r`` and ``r + 1`` are the same
    loan ``step`` calendar months apart (a gap in reporting is not a move of one period).
    """
    ids = df["loan_id"].to_numpy()
    month = df["reporting_month"].dt.year.to_numpy() * 12 + df["reporting_month"].dt.month.to_numpy()
    st = df["loan_state"].to_numpy(np.int64)
    pair = (ids[1:] == ids[:-1]) & (month[1:] - month[:-1] == step)
    return st, month, pair


#: rows of a loan further apart than this many periods are not read as a move (a year of missing reports)
_MAX_GAP_PERIODS = 4


def _period_moves(df: pd.DataFrame, period: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States, gaps and the moves a ``period``-month chain fit reads, of a validated panel sorted by loan
    and month.

    Returns ``(state, gap, pair, off_grid)``: ``(n_rows,)`` int64 states, ``(n_rows - 1,)`` months from
    row ``r`` to ``r + 1``, ``(n_rows - 1,)`` bool, True where the two rows are the same loan and a move --
    exactly one month apart for a monthly fit (a reporting gap is missing data there), 1 to
    ``4 * period`` months apart for a ``period`` > 1 fit (off-cycle rows and skipped quarters are moves of
    their own length; an absorption in a period that closes after the panel's last month is not read:
    that period's survivors have no row) -- and ``(n_rows,)`` bool, True on a row off its loan's report grid
    (:func:`~creditsim.transitions.period_moves.loan_grid`; all False for a monthly fit).

    DataError for a monthly fit of a panel whose same-loan rows are mostly more than a month apart
    (:func:`~creditsim.transitions.period_moves.check_monthly_rows`).
    """
    st, month, pair = _month_pairs(df, 1)
    ids = df["loan_id"].to_numpy()
    gap = month[1:] - month[:-1]
    same = ids[1:] == ids[:-1]
    if period == 1:
        check_monthly_rows(ids, month)
        return st, gap, pair, np.zeros(len(st), bool)
    code = pd.factorize(ids)[0].astype(np.int64)
    residue = loan_grid(code, month.astype(np.int64), st < _N_LIVE, period)
    off_grid = (month % period) != residue
    # an absorption dated in a period that closes after the panel's last month: that period's survivors have no
    # row, so reading its absorptions alone would overstate absorption -- not read, as for the survivors
    unfinished = off_grid & (st >= _N_LIVE) & (month + (residue - month) % period > month.max())
    pair = same & (gap >= 1) & (gap <= _MAX_GAP_PERIODS * period) & ~unfinished[1:]
    return st, gap, pair, off_grid


def _segment_codes(df: pd.DataFrame, by: str | None, pair: np.ndarray, cens: np.ndarray) -> tuple:
    """``(seg, seg_c, labels)``: segment index of each move (its starting row's) and of each censored row,
    and the segment labels (None unsegmented; the asset classes in their order when ``by`` is asset_class)."""
    if by is None:
        return np.zeros(int(pair.sum()), np.int64), np.zeros(int(cens.sum()), np.int64), None
    all_values = df[by].astype(str).to_numpy()
    values, values_c = all_values[:-1][pair], all_values[cens]
    present = set(values) | set(values_c)
    labels = tuple(ASSET_CLASSES) if by == "asset_class" and present <= set(ASSET_CLASSES) else tuple(sorted(present))
    position = {label: c for c, label in enumerate(labels)}
    seg = np.array([position[v] for v in values], dtype=np.int64)
    seg_c = np.array([position[v] for v in values_c], dtype=np.int64)
    return seg, seg_c, labels


def _monthly_segments(counts: np.ndarray, censored: np.ndarray, labels: tuple | None) -> tuple:
    """Row MLE per segment of one-month ``counts`` ``(C, 7, 7)`` (module docstring's empty-row rule).
    Returns ``(matrix, se, empty_rows)``."""
    pooled, pooled_c = counts.sum(0), censored.sum(0)
    matrix, se, empty = np.zeros(counts.shape), np.zeros(counts.shape), []
    pooled_p = row_mle(pooled, pooled_c)
    for c in range(counts.shape[0]):
        p = row_mle(counts[c], censored[c])
        n_i = counts[c].sum(1)
        for i in _LIVE:
            if n_i[i] == 0:
                if labels is not None and pooled[i].sum() > 0:
                    p[i] = pooled_p[i]
                    empty.append((labels[c], LoanState(i).name, "pooled"))
                else:
                    p[i] = 0.0
                    p[i, i] = 1.0
                    empty.append((None if labels is None else labels[c], LoanState(i).name, "stay"))
        for a in ABSORBING_STATES:
            p[a] = 0.0
            p[a, a] = 1.0
        se[c] = _row_standard_errors(p, n_i, censored[c])
        matrix[c] = p
    return matrix, se, empty


def _embedded_segments(moves: PeriodMoves, censored: np.ndarray, labels: tuple | None, months: int) -> tuple:
    """Monthly chains per segment from a period panel's ``moves`` (:class:`PeriodMoves`, ``C`` segments;
    :func:`creditsim.transitions.embed.embed_monthly_chain`): the pooled chain first, pulled weakly
    towards the data's shares; each segment pulled towards the pooled one. The dated shares are estimated
    with a flat hazard, then once more from the pooled chain (:func:`dated_shares`). A live row never
    observed at a move's start is reported in ``empty_rows`` (``"start"``, or ``"pooled prior"`` for a
    segment: its paths through the observed rows still inform it). Returns ``(matrix, se, empty_rows,
    shares)``."""
    from creditsim.transitions.embed import embed_monthly_chain

    def pooled_fit(share: np.ndarray):
        return embed_monthly_chain(moves.counts.sum(0), months, censored.sum(0), entries=moves.entries.sum(0),
                                   mixed=moves.mixed.sum(0), dated_share=share)

    total = PeriodMoves(moves.counts.sum(0)[None], moves.entries.sum(0)[None], moves.mixed.sum(0)[None])
    pooled = pooled_fit(dated_shares(total, months)[0])
    if moves.entries.any():  # the off-grid share of a dated file, from the chain itself
        pooled = pooled_fit(dated_shares(total, months, pooled.matrix)[0])
    shares = dated_shares(moves, months, pooled.matrix)
    shape = (moves.counts.shape[0], N_STATES, N_STATES)
    matrix, se, empty = np.zeros(shape), np.zeros(shape), []
    starts = moves.every_move().sum(2) + censored  # (C, 7) moves and censored periods out of each state
    for c in range(shape[0]):
        fit = pooled if labels is None else embed_monthly_chain(
            moves.counts[c], months, censored[c], theta0=pooled.theta, entries=moves.entries[c],
            mixed=moves.mixed[c], dated_share=shares[c])
        matrix[c], se[c] = fit.matrix, fit.standard_errors
        empty += [(None if labels is None else labels[c], LoanState(i).name,
                   "start" if labels is None else "pooled prior") for i in _LIVE if starts[c, i] == 0]
    return matrix, se, empty, shares


def _live_move_counts(df: pd.DataFrame, mac: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Moves out of live states per calendar month, for :meth:`MarkovTransitionModel.fit_macro_sensitivity`.

    Returns ``(counts, rows)``: ``(M, 4, 7)`` float64 counts of the ``M`` distinct starting months
    (ascending) by from-state (CURRENT..DPD90) and to-state, and each month's row position in ``mac``.
    A DataError names the panel months the macro frame lacks.
    """
    st, month, pair = _month_pairs(df)
    pair = pair & (st[:-1] < _N_LIVE)
    frm, to, when = st[:-1][pair], st[1:][pair], month[:-1][pair]
    mac_month = mac.index.year.to_numpy() * 12 + mac.index.month.to_numpy()
    pos = {m: k for k, m in enumerate(mac_month)}
    missing = sorted({int(m) for m in when if m not in pos})
    if missing:
        raise DataError(f"macro frame: no values for {len(missing)} panel month(s), e.g. "
                        f"{[f'{m // 12}-{m % 12 or 12:02d}' for m in missing[:5]]}")
    months, t_idx = np.unique(when, return_inverse=True)
    counts = np.zeros((len(months), _N_LIVE, N_STATES))
    np.add.at(counts, (t_idx, frm, to), 1.0)
    return counts, [pos[m] for m in months]


def _sensitivity_nll(z: torch.Tensor, n: torch.Tensor, cls_mask: torch.Tensor,
                     usable: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Negative log-likelihood ``nll(a, beta)`` of the monthly live-state move counts.

    ``z`` ``(M, V)`` standardised shocks, ``n`` ``(M, 4, 7)`` counts, ``cls_mask`` ``(K, 4, 7)`` move
    classes, ``usable`` ``(4, 7)`` allowed moves with data. ``a`` ``(4, 7)`` intercepts, ``beta``
    ``(K, V)`` sensitivities; unusable moves get log-odds ``-inf`` (probability exactly 0).
    """

    def nll(a: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        shift = torch.einsum("mv,kv,kij->mij", z, beta, cls_mask)  # (M, 4, 7)
        logits = torch.where(usable, a + shift, torch.tensor(-torch.inf, dtype=torch.float64))
        return -(n * torch.log_softmax(logits, dim=-1).nan_to_num(neginf=0.0)).sum()

    return nll


def _minimise_nll(nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n_classes: int,
                  n_vars: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """L-BFGS minimum of ``nll`` from zero; returns ``(a (4, 7), beta (K, V), largest |score|)``."""
    a = torch.zeros(_N_LIVE, N_STATES, dtype=torch.float64, requires_grad=True)
    beta = torch.zeros(n_classes, n_vars, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, beta], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(a, beta)
        loss.backward()
        return loss

    for _ in range(20):  # restart until the gradient vanishes (one LBFGS call can stop on a flat step)
        opt.step(closure)
        grad = torch.cat([a.grad.reshape(-1), beta.grad.reshape(-1)]).abs().max()
        if float(grad) < 1e-6:
            break
    return a, beta, float(grad)


def _sensitivity_standard_errors(nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], a: torch.Tensor,
                                 beta: torch.Tensor, cls_mask: torch.Tensor,
                                 usable: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standard errors of the fitted sensitivities from the inverse Hessian of ``nll``.

    Returns ``(b_hat, se, has_data)``: ``(K, V)`` estimates, ``(K, V)`` standard errors (NaN for
    classes without data) and ``(K,)`` bool, the classes with data.
    """
    # identified parameters: intercepts of usable off-diagonal moves and betas of classes with data
    a_free = usable.clone()
    a_free[torch.arange(_N_LIVE), torch.arange(_N_LIVE)] = False
    has_data = (cls_mask * usable).flatten(1).any(1)  # (K,)
    b_hat = beta.detach()
    n_vars = b_hat.shape[1]
    # staying put is the reference: move the (unidentified) diagonal intercepts to 0 so the Hessian
    # below is taken at the same optimum in the identified parametrisation
    a_hat = a.detach() - torch.diagonal(a.detach()[:, :_N_LIVE])[:, None]

    def packed(theta: torch.Tensor) -> torch.Tensor:
        a_full = torch.zeros(_N_LIVE, N_STATES, dtype=torch.float64).masked_scatter(a_free, theta[: int(a_free.sum())])
        b_full = torch.zeros_like(b_hat)
        b_full[has_data] = theta[int(a_free.sum()):].view(-1, n_vars)
        return nll(a_full, b_full)

    theta = torch.cat([a_hat[a_free], b_hat[has_data].reshape(-1)])
    hess = torch.autograd.functional.hessian(packed, theta)
    cov = torch.linalg.pinv(hess)
    se_flat = torch.sqrt(torch.clamp(torch.diagonal(cov)[int(a_free.sum()):], min=0.0)).view(-1, n_vars)
    se = torch.full_like(b_hat, float("nan"))
    se[has_data] = se_flat
    return b_hat, se, has_data


def _check_sensitivities(sens: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    if not isinstance(sens, dict):
        raise ConfigError(f"sensitivities: expected a dict move_class -> {{macro variable: log-odds}}, got {type(sens).__name__}")
    for name, per_var in sens.items():
        if name not in MOVE_CLASSES:
            raise ConfigError(f"sensitivities: unknown move class {name!r}; expected one of {list(MOVE_CLASSES)}")
        for var, val in per_var.items():
            if var not in OVERLAY_VARS:
                raise ConfigError(f"sensitivities[{name!r}]: unknown macro variable {var!r}; expected one of {list(OVERLAY_VARS)}")
            if not np.isfinite(float(val)):
                raise ConfigError(f"sensitivities[{name!r}][{var!r}] must be finite, got {val}")
    return {k: dict(v) for k, v in sens.items()}
