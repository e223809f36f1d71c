"""The trajectory model's month tokens for the live paths, gathered and summed in one pass per path (numba, CPU).

:meth:`LoanTrajectoryModel._live_tokens <creditsim.loans.trajectory.LoanTrajectoryModel>` builds a month's
token of each live path from six terms: the previous state's embedding, the loan's ``feat_proj`` row, the
``row_proj`` of its cohort's log transition row, its macro path's ``macro_proj`` row for the month, the
``term_proj`` row of its months to maturity and the month's position embedding. With every term but the
state embedding in a table made once per chunk, what is left each month is gathering rows and adding them:
in torch, a dozen passes over ``(m, d)`` tensors (index arithmetic, six ``index_select``, five adds), about
0.04 s of a 1.7 s trajectory bench run. Here each path is one loop over its row.

The sums are torch's, term by term in the same order (``((((emb + feat) + row) + macro) + term) + pos``, each a
float32 add), so the tokens are the same bits as the torch code's; the tests compare the two.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

__all__ = ["month_tokens"]


@njit(cache=True, nogil=True)
def _month_tokens(rows, state, cohort_row, n_months, t, macro_row, by_row, rem, term_lo, term_hi, emb, feat, row_tab,
                  log_tab, macro_tab, term_tab, pos, x, log_rows):  # pragma: no cover - compiled
    """Fill ``x`` and ``log_rows``; -1, or the first position whose path, state, cohort row or macro row lies
    outside its table (nothing read there)."""
    n_states = log_tab.shape[1]
    d = x.shape[1]
    n_cohorts = log_tab.shape[0] // (n_months * n_states)
    n_macro = macro_tab.shape[0] if by_row else macro_tab.shape[0] // n_months
    for i in range(rows.shape[0]):
        r = rows[i]
        if r < 0 or r >= state.shape[0]:
            return i
        # each index checked against its table's rows before any product (a huge one would wrap around)
        prev, c, q = state[r], cohort_row[r], i if by_row else macro_row[r]
        if prev < 0 or prev >= n_states or c < 0 or c >= n_cohorts or q < 0 or q >= n_macro:
            return i
        flat = (c * n_months + t) * n_states + prev
        mac = q if by_row else q * n_months + t
        left = rem[r] - 1 - t
        left = term_lo if left < term_lo else (term_hi if left > term_hi else left)
        left -= term_lo
        for j in range(d):
            x[i, j] = ((((emb[prev, j] + feat[r, j]) + row_tab[flat, j]) + macro_tab[mac, j]) + term_tab[left, j]) \
                + pos[j]
        for j in range(n_states):
            log_rows[i, j] = log_tab[flat, j]
    return -1


def month_tokens(rows: torch.Tensor, state: torch.Tensor, cohort_row: torch.Tensor, n_months: int, t: int,
                 macro_row: torch.Tensor, rem: torch.Tensor, term_range: tuple[int, int], emb: torch.Tensor,
                 feat: torch.Tensor, row_tab: torch.Tensor, log_tab: torch.Tensor, macro_tab: torch.Tensor,
                 term_tab: torch.Tensor, pos: torch.Tensor,
                 macro_by_row: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Month ``t``'s tokens and log cohort rows of the paths ``rows`` (module docstring).

    Args:
        rows: ``(m,)`` int64 path rows (a padded live batch; repeats allowed).
        state, cohort_row, macro_row, rem: ``(N,)`` int64 per path: the state entering the month, its row of the
            cohort matrices ``(R, n_months, S, S)``, its row of the macro paths ``(Q, n_months, ...)``, its payments
            left at the cut-off.
        n_months, t: the months of the tables and the month.
        term_range: ``(lo, hi)``: months to maturity ``rem - 1 - t`` are clamped to it; ``term_tab`` row
            ``left - lo``.
        emb: ``(S, d)`` state embeddings; ``feat``: ``(N, d)`` per path; ``row_tab``: ``(R * n_months * S, d)``
            ``row_proj`` of each cohort row's logs; ``log_tab``: ``(R * n_months * S, S)`` those logs;
            ``macro_tab``: ``(Q * n_months, d)``; ``term_tab``: ``(hi - lo + 1, d)``; ``pos``: ``(d,)`` the
            month's position embedding. All float32, contiguous, on the CPU.
        macro_by_row: ``macro_tab`` holds the batch's own macro terms, row ``i`` for batch row ``i`` (``(m, d)``:
            the chunk had too many macro paths to tabulate), instead of ``(Q * n_months, d)``.

    Returns:
        ``(x (m, d), log_rows (m, S))`` float32, new tensors.

    Raises:
        ValueError: tables of other shapes, or an index out of its table (the kernel checks each one before it
            reads there).
    """
    lo, hi = term_range
    n = state.shape[0]
    S, d = log_tab.shape[1], emb.shape[1]
    ints, tables = (rows, state, cohort_row, macro_row, rem), (emb, feat, row_tab, log_tab, macro_tab, term_tab, pos)
    if any(a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool for a in ints) \
            or any(a.dtype != torch.float32 for a in tables):
        raise ValueError("month_tokens: integer rows, states, cohort rows, macro rows and terms, and float32 tables "
                         "expected")
    if (n_months < 1 or not 0 <= t < n_months or log_tab.shape[0] % (n_months * S)
            or row_tab.shape != (log_tab.shape[0], d) or term_tab.shape != (hi - lo + 1, d) or feat.shape != (n, d)
            or pos.shape != (d,) or macro_tab.shape[1] != d or emb.shape[0] != S
            or (not macro_by_row and macro_tab.shape[0] % n_months)
            or not cohort_row.shape == macro_row.shape == rem.shape == (n,) or rows.ndim != 1):
        raise ValueError("month_tokens: tables that do not fit one another, the paths or the month")
    x = torch.empty(rows.shape[0], d, dtype=torch.float32)
    log_rows = torch.empty(rows.shape[0], S, dtype=torch.float32)
    ints = [a.to(torch.int64).contiguous().numpy() for a in ints]
    tables = [a.detach().contiguous().numpy() for a in tables]
    bad = _month_tokens(*ints[:3], np.int64(n_months), np.int64(t), ints[3], bool(macro_by_row), ints[4], np.int64(lo),
                        np.int64(hi), *tables, x.numpy(), log_rows.numpy())
    if bad >= 0:
        raise ValueError(f"month_tokens: row {bad} of the batch (path {int(rows[bad])}) indexes past a table: paths "
                         f"[0, {n}), states [0, {S}), cohort rows [0, {log_tab.shape[0] // (n_months * S)}), macro "
                         f"rows [0, {macro_tab.shape[0] if macro_by_row else macro_tab.shape[0] // n_months})")
    return x, log_rows
