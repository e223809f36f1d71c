"""The moves of a panel reported every ``k`` months, sorted for :mod:`creditsim.transitions.embed`.

A real quarterly file is not a clean grid. Each loan is reported on its own cycle (most files: calendar
quarter ends; some: quarters from origination), a quarter may be skipped, delinquency rows may be added
between report months, and absorptions (DEFAULT, PREPAID, MATURED) are either *dated* -- reported in the
month they happen -- or *carried* to the next report month. The reading:

* **The loan's grid**: the month residue (mod ``k``) most of the loan's live rows share; ties take the
  panel's (:func:`loan_grid`).
* **Moves** between two rows of a loan ``g`` months apart are scored by ``P^g`` (``counts``).
* **Absorptions off the loan's grid** can only be dated: scored as entered in exactly that month
  (``entries``).
* **Absorptions on the grid** are ambiguous -- a dated one that happened in the report month, or a
  carried one from any month of the period. Files mix (servicers differ, payoffs are dated while
  defaults are reported at the next quarter end): each absorbing state ``a`` has a share ``pi_a`` of dated
  records, and an on-grid absorption is scored by ``pi_a f_g + (1 - pi_a) (P^g)_ia`` (``mixed``).
* **The share** ``pi_a``: a dated file puts a fraction ``s_a`` of its absorptions off the grid, with
  ``s_a = sum_i w_i (P^(k-1))_ia / sum_i w_i (P^k)_ia`` (entered before the period's last month, weighted
  by the moves' starting states ``w``); so ``pi_a = min(1, off_a / (s_a n_a))`` over the ``n_a``
  absorptions into ``a``. Estimated per segment from a first chain (``s_a = (k - 1) / k``, a flat
  hazard), then once more from the fitted pooled chain (:func:`dated_shares`).

Assumed: apart from absorptions, whether a row is in the file does not depend on the loan's state. A
file that adds a row *because* the loan is delinquent (every delinquent month reported, current months only
at quarter ends) tells more than the fit reads -- the months without a row were not delinquent -- and the
12-month PD reads about 4 % low on such a test file (``tests/transitions/test_embed.py``).

Why a share, not a yes/no per state: deciding "dated" for a whole state read half-dated books, and books
whose segments come from different servicers, as all dated (a 2.40 % 12-month PD against 2.58 %
monthly); a carried file with mid-quarter delinquency rows was read as dated when the off-grid test used
the gap from the previous row instead of the loan's calendar grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import DataError
from creditsim.states import N_LIVE_STATES, N_STATES
from creditsim.transitions.cohorts import panel_month_numbers

__all__ = ["PeriodMoves", "loan_grid", "split_moves", "dated_shares", "check_monthly_rows", "check_monthly_panel"]


@dataclass(frozen=True)
class PeriodMoves:
    """A panel's moves by segment and gap (module docstring).

    Attributes:
        counts: ``(C, K, 7, 7)`` int64 moves ``g = 1..K`` months apart (scored by ``P^g``), absorptions
            excepted.
        entries: ``(C, K, 7, 7)`` int64 absorptions off the loan's grid (dated).
        mixed: ``(C, K, 7, 7)`` int64 absorptions on the loan's grid (dated or carried).
    """

    counts: np.ndarray
    entries: np.ndarray
    mixed: np.ndarray

    def every_move(self) -> np.ndarray:
        """``(C, 7, 7)`` every move read, whatever its gap and reading."""
        return (self.counts + self.entries + self.mixed).sum(1)


def loan_grid(loan_code: np.ndarray, month: np.ndarray, live: np.ndarray, period: int) -> np.ndarray:
    """``(n_rows,)`` report-month residue (``month % period``) of each row's loan: the residue most of the
    loan's live rows share (of all its rows for a loan without live rows); on ties the panel's most
    common live residue.

    Args:
        loan_code: ``(n_rows,)`` int64 loan index 0..L-1; ``month``: ``(n_rows,)`` int64 month numbers;
        live: ``(n_rows,)`` bool live rows; period: months per report cycle.
    """
    n_loans = int(loan_code.max()) + 1 if len(loan_code) else 0
    tally = np.zeros((n_loans, period))
    np.add.at(tally, (loan_code[live], month[live] % period), 1.0)
    panel = int(np.argmax(tally.sum(0))) if live.any() else 0
    # a loan without live rows (absorbed before its first report) keeps the cycle of its own rows; ties go
    # to the panel's grid
    np.add.at(tally, (loan_code, month % period), 1e-3)
    tally[:, panel] += 5e-4
    return np.argmax(tally, axis=1)[loan_code]


def split_moves(frm: np.ndarray, to: np.ndarray, gap: np.ndarray, seg: np.ndarray, n_seg: int,
                off_grid: np.ndarray) -> PeriodMoves:
    """Sort moves (``(n,)`` from-state, to-state, gap in months, segment, destination off its loan's grid)
    into :class:`PeriodMoves`."""
    absorbed = (frm < N_LIVE_STATES) & (to >= N_LIVE_STATES)
    shape = (n_seg, int(gap.max()), N_STATES, N_STATES)
    out = []
    for rows in (~absorbed, absorbed & off_grid, absorbed & ~off_grid):
        a = np.zeros(shape, dtype=np.int64)
        np.add.at(a, (seg[rows], gap[rows] - 1, frm[rows], to[rows]), 1)
        out.append(a)
    return PeriodMoves(*out)


def dated_shares(moves: PeriodMoves, period: int, matrix: np.ndarray | None = None) -> np.ndarray:
    """``(C, 7)`` share of dated records per segment and absorbing state (module docstring; 0 on live
    states and where nothing was absorbed). ``matrix`` ``(7, 7)``: the monthly chain that gives the
    off-grid share of a dated file (default: a flat hazard, ``(period - 1) / period``)."""
    off = moves.entries.sum((1, 2))  # (C, 7)
    total = off + moves.mixed.sum((1, 2))
    if matrix is None:
        expected = np.full(total.shape, (period - 1) / period)
    else:
        w = (moves.counts + moves.entries + moves.mixed).sum((1, 3))[:, :N_LIVE_STATES]  # (C, 4) starts
        before = np.linalg.matrix_power(matrix, period - 1)[:N_LIVE_STATES]
        by_end = np.linalg.matrix_power(matrix, period)[:N_LIVE_STATES]
        # fixed-order sums over the 4 live starts: a (C, 4) x (4, 7) product written out
        num = sum(w[:, i:i + 1] * before[i][None, :] for i in range(N_LIVE_STATES))
        den = sum(w[:, i:i + 1] * by_end[i][None, :] for i in range(N_LIVE_STATES))
        expected = np.where(den > 0, num / np.maximum(den, 1e-300), (period - 1) / period)
    share = np.where(total > 0, off / np.maximum(expected * total, 1e-300), 0.0)
    share = np.clip(share, 0.0, 1.0)
    share[:, :N_LIVE_STATES] = 0.0
    return share


def check_monthly_rows(ids: np.ndarray, month: np.ndarray) -> None:
    """DataError when a panel given as monthly is reported less often: its rows (``(n_rows,)`` loan ids and
    month numbers, sorted by loan then month) are most often more than a month apart. A monthly fit of such
    a file reads only its few one-month pairs -- a quarterly file that dates its payoffs gave a chain with a
    0 % default rate -- so it is refused, with the period to give. Gaps in a monthly panel (missing
    reports) leave one month the most common gap and pass."""
    same = ids[1:] == ids[:-1]
    if not same.any():
        return
    gap = np.clip(np.diff(month)[same], 0, 25)
    modal = int(np.bincount(gap).argmax())
    if modal <= 1:
        return
    one = int((gap == 1).sum())
    fix = ("give period 'quarter' (on the command line --period quarter; MarkovTransitionModel.fit: "
           "period_months=3)" if modal == 3 else
           f"the Markov chain fits it with MarkovTransitionModel.fit(panel, period_months={modal}); fit_transitions "
           "and the command line take monthly and quarterly panels")
    raise DataError(f"panel: only {one:,} of {int(same.sum()):,} consecutive rows of a loan are one month apart "
                    f"(most are {modal} months apart): a panel reported every {modal} months, not a monthly one; {fix}")


def check_monthly_panel(panel: pd.DataFrame) -> None:
    """:func:`check_monthly_rows` on a raw panel (``loan_id``, ``reporting_month``; any row order): the
    check every monthly trainer runs (the chain runs it on its sorted rows)."""
    ids = panel["loan_id"].astype(str).to_numpy()
    month = panel_month_numbers(panel)
    order = np.lexsort((month, ids))
    check_monthly_rows(ids[order], month[order])
