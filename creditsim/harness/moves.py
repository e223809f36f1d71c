"""One-period moves of a loan panel, the unit every contestant of the harness predicts.

A *move* is a loan's state at the start of a period (``from_state``, a live state CURRENT..DPD90) and
what is known of its state one period later:

* ``to_state`` in ``0..6``: the next row of the same loan, exactly one period later, was observed;
* ``to_state = -1``: the loan's last row carries ``censored = True`` (the panel contract of
  :meth:`creditsim.transitions.markov.MarkovTransitionModel.fit`): the loan was followed one more
  period without a default but its state was not reported. Such a move is evidence ``to != DEFAULT``
  and nothing more; the harness scores it with ``-log(1 - p_DEFAULT)`` and every contestant is fitted
  with the matching likelihood (the default hazard sees it as a non-default, the conditional move
  model does not see it), which is the exact maximum likelihood for a multinomial row with such
  coarsened observations.

Rows whose next row is missing or more than one period away contribute no move (a gap is not a
transition). Absorbing from-states (DEFAULT, PREPAID, MATURED) are left out: their next state is
certain and would flatter every model equally.

Covariates, all observed at the start of the move (no look-ahead): ``prev_state`` (the state one
period earlier, ``-1`` if not observed), ``period`` (the calendar month of the from-row, as
``"YYYY-MM"``), any panel column named in ``panel_features`` (time-varying: balance, payment,
utilisation...) and any tape column named in ``tape_features`` (static: limit, age, score...),
joined on ``loan_id``. Object / string / category columns are categorical, the rest numeric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.schema import validate_macro
from creditsim.states import MACRO_VARS, LoanState
from creditsim.transitions.period_moves import check_monthly_panel

__all__ = ["MoveTable", "CohortKey", "build_moves", "split_moves", "parse_split", "held_out_loans", "month_number", "month_label",
           "tape_columns"]

_LIVE_MAX = int(LoanState.DPD90)
_PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True)
class MoveTable:
    """Moves of a panel, one row each (see the module docstring).

    Attributes:
        loan_id: ``(n,)`` object, the loan of each move.
        month: ``(n,)`` datetime64[ns], the calendar month of the from-row.
        from_state: ``(n,)`` int8 in 0..3.
        to_state: ``(n,)`` int8 in 0..6, or -1 for a censored default-free period.
        covariates: ``(n, k)`` DataFrame (``RangeIndex``): ``prev_state``, ``period`` and the requested
            panel / tape features.
        categorical: names of the categorical covariates (the others are numeric).
        period_months: 1 for a monthly panel, 3 for a quarterly one, 12 for an annual one.
        macro: ``(n, 9)`` float64 MACRO_VARS averaged over the months of each move's period (the path a
            scenario gives for that period), or None without a macro frame.
    """

    loan_id: np.ndarray
    month: np.ndarray
    from_state: np.ndarray
    to_state: np.ndarray
    covariates: pd.DataFrame
    categorical: tuple[str, ...]
    period_months: int = 1
    macro: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.from_state)

    def take(self, mask: np.ndarray) -> MoveTable:
        """The moves where ``mask`` (``(n,)`` bool) is True, in order."""
        return MoveTable(self.loan_id[mask], self.month[mask], self.from_state[mask], self.to_state[mask],
                         self.covariates.loc[mask].reset_index(drop=True), self.categorical, self.period_months,
                         None if self.macro is None else self.macro[mask])

    @property
    def observed(self) -> np.ndarray:
        """``(n,)`` bool: the next state is known (not a censored default-free period)."""
        return self.to_state >= 0


def month_number(months: object) -> np.ndarray:
    """``(n,)`` int64 ``12 * year + month - 1`` of dates (consecutive months differ by one)."""
    m = pd.DatetimeIndex(months)
    return m.year.to_numpy(np.int64) * 12 + m.month.to_numpy(np.int64) - 1


def month_label(number: int) -> str:
    """``"YYYY-MM"`` of a month number (:func:`month_number`)."""
    return f"{number // 12}-{number % 12 + 1:02d}"


def _check_panel(panel: pd.DataFrame, features: Sequence[str]) -> None:
    missing = [c for c in ("loan_id", "reporting_month", "loan_state", *features) if c not in panel.columns]
    if missing:
        raise DataError(f"panel: missing column(s) {missing}; expected loan_id, reporting_month, loan_state"
                        " and the panel features asked for")
    state = pd.to_numeric(panel["loan_state"], errors="coerce")
    bad = state.isna() | (state < 0) | (state > int(LoanState.MATURED))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"panel row {row}: loan_state {panel['loan_state'].iloc[row]} is not a state code 0..6")
    months = pd.to_datetime(panel["reporting_month"], errors="coerce")
    if months.isna().any():
        row = int(np.flatnonzero(months.isna().to_numpy())[0])
        raise DataError(f"panel row {row}: reporting_month {str(panel['reporting_month'].iloc[row])!r} is not a date")


def build_moves(panel: pd.DataFrame, tape: pd.DataFrame | None = None, panel_features: Sequence[str] = (),
                tape_features: Sequence[str] = (), period: str = "month", lags: int = 0,
                macro: pd.DataFrame | None = None, macro_features: Sequence[str] = ()) -> MoveTable:
    """Moves of ``panel`` with their covariates (module docstring).

    Args:
        panel: loan x period rows with ``loan_id``, ``reporting_month``, ``loan_state`` and optionally
            ``censored`` (bool, True only on a loan's last row) and the ``panel_features``.
        tape: static loan data with ``loan_id`` and the ``tape_features`` (needed only if any are asked).
        panel_features, tape_features: covariate column names.
        period: ``"month"`` (rows one month apart) or ``"quarter"`` (three months apart).
        lags: also give each panel feature's values 1..``lags`` periods earlier (``{name}_lag{k}``; NaN
            where the loan has no row that far back), so models without a memory see the history a
            sequence model reads.
        macro: monthly macro frame (:func:`creditsim.schema.validate_macro`) covering every month of
            every move; each move gets the average over its period (:attr:`MoveTable.macro`).
        macro_features: MACRO_VARS names to add as covariates ``macro_{name}`` (that period average).
            When given, they are also the only variables left in :attr:`MoveTable.macro` (the others
            are zeroed), so the sequence models read the same economy the classifiers do.

    Raises:
        DataError: missing columns, bad states or dates, tape loans missing, no moves at all.
        ConfigError: unknown period, tape features without a tape.
    """
    if period not in _PERIOD_MONTHS:
        raise ConfigError(f"period: expected one of {list(_PERIOD_MONTHS)}, got {period!r}")
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or not 0 <= lags <= 24:
        raise ConfigError(f"lags: expected an integer 0..24, got {lags!r}")
    step = _PERIOD_MONTHS[period]
    panel_features, tape_features = list(panel_features), list(tape_features)
    _check_panel(panel, panel_features)
    if period == "month":  # a quarterly file read as monthly would give only its few one-month pairs
        check_monthly_panel(panel)
    df = panel.assign(reporting_month=pd.to_datetime(panel["reporting_month"]).dt.to_period("M").dt.to_timestamp())
    df = df.sort_values(["loan_id", "reporting_month"], kind="stable").reset_index(drop=True)
    state = df["loan_state"].to_numpy(np.int64)
    num = month_number(df["reporting_month"])
    loan = df["loan_id"].astype(str).to_numpy(dtype=object)
    same_next = np.zeros(len(df), bool)
    same_next[:-1] = (loan[1:] == loan[:-1]) & (num[1:] - num[:-1] == step)
    same_prev = np.zeros(len(df), bool)
    same_prev[1:] = same_next[:-1]
    next_state = np.full(len(df), -2, np.int64)
    next_state[:-1][same_next[:-1]] = state[1:][same_next[:-1]]
    cens = df["censored"].fillna(False).to_numpy(bool) if "censored" in df.columns else np.zeros(len(df), bool)
    next_state[cens & ~same_next] = -1
    keep = (state <= _LIVE_MAX) & (next_state >= -1)
    if not keep.any():
        monthly = (loan[1:] == loan[:-1]) & (num[1:] - num[:-1] == 1)
        hint = (f"; its rows are one month apart ({int(monthly.sum()):,} monthly pairs): period={period!r} reads "
                f"rows {step} months apart, so use period='month' or keep one row every {step} months of each loan"
                if step > 1 and monthly.any() else "")
        raise DataError(f"panel: no one-{period} moves out of a live state (need consecutive rows of the same "
                        f"loan){hint}")
    prev = np.full(len(df), -1, np.int64)
    prev[1:][same_prev[1:]] = state[:-1][same_prev[1:]]
    cov = pd.DataFrame({"prev_state": prev[keep].astype(str), "period": df["reporting_month"].dt.strftime("%Y-%m").to_numpy()[keep]})
    for c in panel_features:
        cov[c] = df[c].to_numpy()[keep]
    for k in range(1, lags + 1):
        back = np.arange(len(df)) - k
        ok = back >= 0
        ok[ok] = (loan[back[ok]] == loan[ok]) & (num[ok] - num[back[ok]] == k * step)
        for c in panel_features:
            values = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
            cov[f"{c}_lag{k}"] = np.where(ok, values[np.maximum(back, 0)], np.nan)[keep]
    if tape_features:
        cov = _join_tape(cov, loan[keep], tape, tape_features)
    path = None
    if macro is not None or macro_features:
        path = _period_macro(macro, num[keep], step)
        for v in macro_features:
            if v not in MACRO_VARS:
                raise ConfigError(f"macro_features: unknown variable {v!r}; expected names from {list(MACRO_VARS)}")
            cov[f"macro_{v}"] = path[:, MACRO_VARS.index(v)]
        if macro_features:
            path[:, [j for j, v in enumerate(MACRO_VARS) if v not in macro_features]] = 0.0
    categorical = tuple(c for c in cov.columns if not pd.api.types.is_numeric_dtype(cov[c]))
    for c in categorical:
        cov[c] = cov[c].astype(str)
    return MoveTable(loan[keep], df["reporting_month"].to_numpy()[keep], state[keep].astype(np.int8),
                     next_state[keep].astype(np.int8), cov, categorical, step, path)


def _period_macro(macro: pd.DataFrame | None, first: np.ndarray, step: int) -> np.ndarray:
    """``(n, 9)`` macro averaged over months ``first .. first + step - 1`` (month numbers) of each move."""
    if macro is None:
        raise ConfigError("macro_features need a macro frame (macro=...)")
    frame = validate_macro(macro)
    have = month_number(frame.index)
    values = frame.to_numpy(np.float64)
    out = np.zeros((len(first), values.shape[1]))
    for k in range(step):
        want = first + k
        pos = np.searchsorted(have, want)
        bad = (pos >= len(have)) | (have[np.minimum(pos, len(have) - 1)] != want)
        if bad.any():
            mm = int(want[np.flatnonzero(bad)[0]])
            raise DataError(f"macro: no row for {month_label(mm)}; the frame must cover every month of every move")
        out += values[pos]
    return out / step


def tape_columns(loan_ids: np.ndarray, tape: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``(len(loan_ids), len(columns))`` the tape's ``columns`` for each of ``loan_ids`` (text ids, in that
    order, ``RangeIndex``); DataError naming a missing column or the first panel loan without a tape row."""
    columns = list(columns)
    missing = [c for c in ("loan_id", *columns) if c not in tape.columns]
    if missing:
        raise DataError(f"tape: missing column(s) {missing}")
    static = tape.assign(loan_id=tape["loan_id"].astype(str)).drop_duplicates("loan_id").set_index("loan_id")
    absent = pd.Index(loan_ids).difference(static.index)
    if len(absent):
        raise DataError(f"tape: {len(absent)} panel loan(s) have no tape row, e.g. loan_id {absent[0]!r}")
    return static.loc[loan_ids, columns].reset_index(drop=True)


def _join_tape(cov: pd.DataFrame, loan_ids: np.ndarray, tape: pd.DataFrame | None, features: list[str]) -> pd.DataFrame:
    if tape is None:
        raise ConfigError(f"tape_features {features} need a tape (static loan data with loan_id)")
    return pd.concat([cov, tape_columns(loan_ids, tape, features)], axis=1)


def parse_split(split: str) -> tuple[str, pd.Timestamp | None]:
    """``"account"`` -> ``("account", None)``; ``"oot:2005-08"`` -> ``("oot", Timestamp(2005-08-01))``."""
    if split == "account":
        return "account", None
    if split.startswith("oot:"):
        try:
            return "oot", pd.Timestamp(split[4:]).to_period("M").to_timestamp()
        except ValueError:
            pass
    raise ConfigError(f"split: expected 'account' or 'oot:YYYY-MM', got {split!r}")


def held_out_loans(moves: MoveTable, share: float, seed: int, at_least_one: bool = True) -> np.ndarray:
    """``(n,)`` bool: the moves of a seeded ``share`` of the loans (rounded; at least one loan if asked)."""
    loans, loan = np.unique(moves.loan_id.astype(str), return_inverse=True)
    n = int(round(share * len(loans)))
    chosen = np.zeros(len(loans), bool)
    chosen[np.random.default_rng(seed).permutation(len(loans))[: max(n, 1) if at_least_one else n]] = True
    return chosen[loan.reshape(-1)]


def split_moves(moves: MoveTable, split: str = "account", test_share: float = 0.3, seed: int = 0) -> tuple[MoveTable, MoveTable]:
    """Training and test moves.

    ``"account"``: a seeded random ``test_share`` of the loans is held out whole (all their moves), so
    no loan is seen on both sides. ``"oot:DATE"``: out of time -- moves that *end* before DATE train
    (everything a model is fitted on was known on the day before DATE), moves that end in or after
    DATE test; the same loan may appear on both sides, as it would in production.

    Raises:
        ConfigError: bad split or share; DataError: an empty side.
    """
    kind, date = parse_split(split)
    if kind == "account":
        if not 0.0 < test_share < 1.0:
            raise ConfigError(f"test_share: expected a fraction in (0, 1), got {test_share!r}")
        test = held_out_loans(moves, test_share, seed, at_least_one=False)
    else:
        end = pd.DatetimeIndex(moves.month) + pd.DateOffset(months=moves.period_months)
        test = np.asarray(end >= date)
    if test.all() or not test.any():
        side = "test" if not test.any() else "training"
        raise DataError(f"split {split!r}: the {side} side has no moves")
    return moves.take(~test), moves.take(test)


class CohortKey:
    """A cohort key fitted on training moves: categorical ``segment_by`` levels and numeric ``cohort_by``
    columns cut at training quantiles of ``asinh(x)`` into ``n_bins`` bins (plus a "missing" bin).

    :meth:`codes` gives each move its key as integer codes (``-1``: a level unseen in training);
    :meth:`features` describes a key by one-hot levels and the training median of each bin, so a model
    can place a key it never saw between those it did.
    """

    def __init__(self, segment_by: tuple[str, ...], cohort_by: tuple[str, ...] = (), n_bins: int = 5) -> None:
        if n_bins < 1:
            raise ConfigError(f"n_bins: expected a positive number of bins, got {n_bins!r}")
        self.segment_by, self.cohort_by, self.n_bins = tuple(segment_by), tuple(cohort_by), n_bins

    def fit(self, train: MoveTable) -> "CohortKey":
        cov = train.covariates
        for c in (*self.segment_by, *self.cohort_by):
            if c not in cov.columns:
                raise ConfigError(f"cohort key: {c!r} is not a covariate; expected one of {list(cov.columns)}")
        self.levels_ = {c: sorted(pd.unique(cov[c].astype(str))) for c in self.segment_by}
        self.edges_, self.centres_ = {}, {}
        for c in self.cohort_by:
            if c in train.categorical:
                raise ConfigError(f"cohort_by: {c!r} is categorical; put it in segment_by")
            x = self._numeric(cov, c)
            x = x[~np.isnan(x)]
            edges = np.unique(np.quantile(x, np.linspace(0, 1, self.n_bins + 1)[1:-1])) if len(x) else np.zeros(0)
            code = np.searchsorted(edges, x, side="right")
            self.edges_[c] = edges
            # one centre per bin, and one more slot (code len(edges) + 1) for "missing"
            self.centres_[c] = np.array([np.median(x[code == k]) if (code == k).any() else 0.0 for k in range(len(edges) + 2)])
        return self

    @staticmethod
    def _numeric(cov: pd.DataFrame, c: str) -> np.ndarray:
        return np.arcsinh(pd.to_numeric(cov[c], errors="coerce").to_numpy(np.float64))

    def codes(self, moves: MoveTable) -> np.ndarray:
        """``(n, len(segment_by) + len(cohort_by))`` int64 codes of each move's key."""
        cols = []
        for c in self.segment_by:
            lookup = {v: i for i, v in enumerate(self.levels_[c])}
            cols.append(moves.covariates[c].astype(str).map(lookup).fillna(-1).to_numpy(np.int64))
        for c in self.cohort_by:
            x = self._numeric(moves.covariates, c)
            cols.append(np.where(np.isnan(x), len(self.edges_[c]) + 1, np.searchsorted(self.edges_[c], x, side="right")))
        return np.column_stack(cols).astype(np.int64) if cols else np.zeros((len(moves), 1), np.int64)

    def labels(self, moves: MoveTable) -> np.ndarray:
        """``(n,)`` object: the key as one string per move (for dictionary lookups)."""
        uniq, inverse = np.unique(self.codes(moves), axis=0, return_inverse=True)
        names = np.array(["|".join(map(str, r)) for r in uniq], dtype=object)
        return names[inverse.reshape(-1)]

    def features(self, codes: np.ndarray) -> np.ndarray:
        """``(K, F)`` float64 description of key rows ``codes`` (class docstring)."""
        parts = []
        for j, c in enumerate(self.segment_by):
            parts.append((codes[:, j:j + 1] == np.arange(len(self.levels_[c]))[None, :]).astype(np.float64))
        for j, c in enumerate(self.cohort_by, start=len(self.segment_by)):
            centre = self.centres_[c]
            parts.append(np.column_stack([centre[np.clip(codes[:, j], 0, len(centre) - 1)],
                                          (codes[:, j] == len(centre) - 1).astype(np.float64)]))
        return np.column_stack(parts) if parts else np.zeros((len(codes), 1))
