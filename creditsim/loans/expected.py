"""Exact expected pool cashflows of the Markov engine given the transition matrices, differentiably.

The Monte Carlo engine (:mod:`creditsim.loans.engine`) samples each loan's state month by month and
books the flows of its :class:`~creditsim.loans.engine.MonthTables`. Those flows depend on the month,
the loan, its *cash state* ``c`` (missed instalments, or the absorbing state) and the sampled state
``y`` only; the sampling probability depends on the *chain state* ``x`` through the row ``M_t[x]``.
So the pair ``(x, c)`` is a Markov chain per loan, and the expectation of every pool flow is a forward
pass of its distribution -- no sampling:

    Q_t[l, c, y] = sum_x P_t[l, x, c] M_t[l, x, y]          (joint law of the cash state and the move)
    E[flow_t]    = sum_{l, c, y} Q_t[l, c, y] F_t[l, c, y]    (the engine's tabulated flows)
    P_{t+1}[l, x', c'] = sum over (c, y) with next(c, y) = x', next_c(c, y) = c' of Q_t[l, c, y]

``P_0`` puts each loan on its cut-off state. The loss is ``E[LGD] x E[default_par]`` (the engine draws
the LGD independently of the default time), the recovery is the rest of the defaulted par, ``lag``
months later, and the floating interest is ``sum_j D_jt x E[floating base of class j]`` (the coupon
change of each floating class, :mod:`creditsim.loans.floating`). Everything is torch float64
and differentiable in the matrices, the expected LGDs and the index shift (:mod:`creditsim.risk.expected`
chains it to the macro path). Two deliberate differences from the engine, both far below its Monte
Carlo error: the engine rounds each loan's loss and floating interest to whole cents and samples with
float32 thresholds; the expectation does neither.

Cost: ``O(S x L x T x 7^3)`` multiply-adds in batched products, one per (cohort, risk bin) segment and
month. The sums over loans are matrix products over a fixed loan order in fixed blocks; their last bits
may depend on the number of paths evaluated together (a BLAS kernel choice), which is harmless for the
optimisation this path serves and is why reported numbers always come from the Monte Carlo engine.
"""

from __future__ import annotations

import numpy as np
import torch

from creditsim.errors import DataError
from creditsim.loans.book import LoanBook
from creditsim.loans.engine import MonthTables, contractual_history, floating_base
from creditsim.states import N_STATES, POOL_CF_TYPES
from creditsim.transitions.sampler import risk_bins, shift_rows

__all__ = ["expected_pool_cashflows", "pool_columns", "segment_layout"]

_F_INTEREST, _F_PRINCIPAL, _F_PREPAY, _F_PAR, _F_BALANCE, _F_FLOAT = range(6)
_CODES = N_STATES * N_STATES
#: largest paths x loans of a block evaluated with per-loan gathered matrices (``K x 49`` float64 each:
#: ~80 MB at the limit)
GATHER_LIMIT = 0


def segment_layout(book: LoanBook, n_cohorts: int, max_risk_bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """The engine's (cohort, risk bin) segments: ``(seg_cohort (G,), seg_bin (G,), bins (R,), loan_segment (L,))``."""
    cohort = book.cohort if n_cohorts != 1 else np.zeros(book.n_loans, np.int64)
    bins, loan_bin = risk_bins(book.risk_shift, max_risk_bins)
    key = cohort * len(bins) + loan_bin
    used, loan_segment = np.unique(key, return_inverse=True)
    return (torch.from_numpy(used // len(bins)), torch.from_numpy(used % len(bins)), torch.from_numpy(bins),
            loan_segment)


def _check(book: LoanBook, matrices: torch.Tensor, lgd: torch.Tensor, n_months: int,
           index_shift: torch.Tensor | None) -> None:
    if not isinstance(book, LoanBook):
        raise DataError(f"book must be a LoanBook, got {type(book).__name__}")
    if matrices.ndim != 5 or matrices.shape[-2:] != (N_STATES, N_STATES) or matrices.shape[2] < n_months:
        raise DataError(f"matrices: expected (S, C, >= {n_months}, 7, 7), got {tuple(matrices.shape)}")
    if int(book.cohort.max()) >= matrices.shape[1] and matrices.shape[1] != 1:
        raise DataError(f"matrices: {matrices.shape[1]} cohorts, the book uses up to cohort {int(book.cohort.max())}")
    s = matrices.shape[0]
    if lgd.shape != (s, book.n_loans):
        raise DataError(f"lgd: expected ({s}, {book.n_loans}) expected LGDs, got {tuple(lgd.shape)}")
    if index_shift is not None and index_shift.shape != (s, n_months):
        raise DataError(f"index_shift: expected ({s}, {n_months}), got {tuple(index_shift.shape)}")


def expected_pool_cashflows(book: LoanBook, matrices: torch.Tensor, n_months: int, lgd: torch.Tensor, *,
                            index_shift: torch.Tensor | None = None, index_level: torch.Tensor | None = None,
                            max_risk_bins: int = 32,
                            loan_chunk: int = 4096, lgd_var: torch.Tensor | None = None
                            ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Expected pool cashflows ``(S, T, 7)`` (currency units, POOL_CF_TYPES order) of the Markov engine.

    Args:
        book: the loan book.
        matrices: ``(S, C, T_m, 7, 7)`` float64 monthly matrices per scenario and cohort (``C = 1`` for
            one set shared by every cohort), rows stochastic; may require grad.
        n_months: horizon T (``T_m >= T``).
        lgd: ``(S, L)`` expected realised LGD of each loan (its Beta mean, after the collateral channel).
        index_shift: ``(S, T)`` change of the floating index since the cut-off (annual decimal), as the
            engine takes it (floors, caps, resets and the lowest-coupon bound are applied here, per
            floating class, as the engine applies them); None = no floating channel.
        index_level: ``(S,)`` index at the cut-off, needed when the book has index floors or caps.
        max_risk_bins: the engine's risk-shift binning (keep the engine's default to match it).
        loan_chunk: loans per pass (bounds memory; the sum over chunks is in a fixed order).
        lgd_var: optional ``(S, L)`` variance of each loan's realised LGD; with it the function also
            returns the variance of each month's pool loss given the matrices (loans default
            independently given the path: ``Var_t = sum_l E[LGD^2] E[D_lt^2] - (E[LGD] E[D_lt])^2`` with
            ``D_lt`` the loan's par defaulted in month t) and of the total loss over the horizon (the same
            with ``D_l = sum_t D_lt``: a loan defaults at most once, so ``E[D_l^2] = sum_t E[D_lt^2]``),
            currency units squared.

    Returns:
        ``(S, T, 7)`` float64 tensor on the matrices' device; ``balance`` is the expected performing par
        at the end of each month. With ``lgd_var``: ``(cashflows, monthly loss variance (S, T), total (S,))``.
    """
    _check(book, matrices, lgd, n_months, index_shift)
    dev = matrices.device
    seg_cohort, seg_bin, bins, loan_segment = segment_layout(book, matrices.shape[1], max_risk_bins)
    inv_coupon = change = None
    base = None if index_shift is None else floating_base(book)
    if base is not None:
        inv_coupon = torch.from_numpy(base[0]).to(dev)
        change = base[1].coupon_change(index_shift.to(matrices.dtype), index_level)
    # loans in segment order, so each segment's rows are one contiguous (loans x 7) block of a matmul
    order = np.argsort(loan_segment, kind="stable")
    flows = var = total = None
    for start in range(0, book.n_loans, loan_chunk):
        index = order[start:start + loan_chunk]
        pick = torch.from_numpy(index).to(dev)
        part, part_var, part_total = _block_flows(book, index, matrices, n_months, lgd[:, pick], seg_cohort, seg_bin,
                                                  bins, loan_segment[index], inv_coupon,
                                                  None if lgd_var is None else lgd_var[:, pick])
        flows = part if flows is None else flows + part  # fixed order over fixed blocks
        var = part_var if var is None else var + part_var
        total = part_total if total is None else total + part_total
    cashflows = pool_columns(flows, book.recovery_lag, change)
    return cashflows if lgd_var is None else (cashflows, var / 1e4, total / 1e4)


#: the reachable (chain state x, cash state c) pairs: live c <= x (a cash state counts missed instalments,
#: at most the delinquency bucket), absorbed x = c
_PAIRS = [(x, c) for x in range(4) for c in range(x + 1)] + [(x, x) for x in range(4, N_STATES)]
_K = len(_PAIRS)
_PAIR_INDEX = np.full((N_STATES, N_STATES), -1, dtype=np.int64)  # [x, c] -> k
for _k, (_x, _c) in enumerate(_PAIRS):
    _PAIR_INDEX[_x, _c] = _k


def _pair_rows(seg: torch.Tensor) -> torch.Tensor:
    """``(S, G, 7, 7)`` segment matrices -> ``(S, G, K, 49)``: row ``k = (x, c)`` holds ``M[x, :]`` in the
    columns ``7 c + y``, so ``p (.., K) @ A`` is the joint law of (cash state, move)."""
    s, g = seg.shape[:2]
    a = torch.zeros(s, g, _K, N_STATES, N_STATES, dtype=seg.dtype, device=seg.device)
    ks = torch.arange(_K)
    xs = torch.tensor([x for x, _ in _PAIRS])
    cs = torch.tensor([c for _, c in _PAIRS])
    a[:, :, ks, cs, :] = seg[:, :, xs, :]
    return a.view(s, g, _K, _CODES)


def _block_flows(book: LoanBook, index: np.ndarray, matrices: torch.Tensor, n_months: int, lgd: torch.Tensor,
                 seg_cohort: torch.Tensor, seg_bin: torch.Tensor, bins: torch.Tensor, loan_segment: np.ndarray,
                 inv_coupon: torch.Tensor | None, lgd_var: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(S, T, F + 1)`` expected whole-cent flows of one loan block (tabulated flows + loss), and the
    block's monthly ``(S, T)`` and total ``(S,)`` loss variances in cents squared when ``lgd_var`` is given
    (else None).

    ``index`` lists the block's loans sorted by segment. The loans are split into groups, each keeping
    its distribution ``(S, n, K)`` over the reachable (x, c) pairs; ``p @ A`` (:func:`_pair_rows`) is the
    joint law ``q`` ``(S, n, 49)`` of (cash state c, move y). With many paths a group is one segment's run
    of loans and ``A`` its matrix (one batched product per segment); with few paths (``S x L_b`` up to
    :data:`GATHER_LIMIT`) the whole block is one group with each loan's ``A`` gathered, which saves the
    per-segment Python loop that would dominate.
    """
    dev, s, lb = matrices.device, matrices.shape[0], len(index)
    cb, ci, m = contractual_history(book, index, n_months, dev)
    tables = MonthTables(cb, ci, m, None if inv_coupon is None else inv_coupon[torch.from_numpy(index).to(dev)])
    x0 = book.initial_state[index].astype(np.int64)
    if s * lb <= GATHER_LIMIT:
        runs, seg_of_run = [(0, lb)], [torch.from_numpy(loan_segment).to(dev)]
    else:
        cuts = np.flatnonzero(np.diff(loan_segment)) + 1
        runs = list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, lb].tolist()))
        seg_of_run = [int(loan_segment[a]) for a, _ in runs]
    pair = torch.from_numpy(_PAIR_INDEX).to(dev)
    dists = []
    for a, b in runs:
        p0 = torch.zeros(s, b - a, _K, dtype=torch.float64, device=dev)
        p0[:, torch.arange(b - a), torch.from_numpy(_PAIR_INDEX[x0[a:b], x0[a:b]])] = 1.0
        dists.append(p0)
    cohort_axis = matrices.shape[1] != 1
    # one view per month: indexing the whole (S, C, T, 7, 7) tensor each month would make its backward
    # allocate (and fill) a gradient of that whole size every month
    months = matrices[:, :, :n_months].unbind(dim=2)
    out, variances = [], []
    # per loan: E[D] and E[D^2] of the defaulted par over the horizon (default happens at most once)
    par1 = [0.0] * len(runs)
    par2 = [0.0] * len(runs)
    for t in range(n_months):
        table, nxt, nxt_c = tables.month(t)
        f = table.view(lb, _CODES, -1).clone()  # the tables' buffers are reused next month
        route = pair[nxt.view(lb, _CODES).to(torch.int64), nxt_c.view(lb, _CODES).to(torch.int64)]  # (L_b, 49) -> k'
        mt = months[t][:, seg_cohort if cohort_axis else torch.zeros_like(seg_cohort)]  # (S, G, 7, 7)
        rows = _pair_rows(shift_rows(mt, bins[seg_bin]))
        sums = loss = var = 0.0
        for i, ((a, b), g) in enumerate(zip(runs, seg_of_run)):
            if isinstance(g, int):
                q = torch.bmm(dists[i], rows[:, g])  # (S, n, 49)
            else:
                q = torch.matmul(dists[i].unsqueeze(2), rows[:, g]).squeeze(2)
            sums = sums + q.reshape(s, (b - a) * _CODES) @ f[a:b].reshape((b - a) * _CODES, -1)
            q_def = q.view(s, b - a, N_STATES, N_STATES)[..., 4]  # (S, n, c): default this month
            par_c = f[a:b].view(b - a, N_STATES, N_STATES, -1)[..., 4, _F_PAR]  # (n, c)
            par = (q_def * par_c).sum(-1)
            loss = loss + (par * lgd[:, a:b]).sum(-1, keepdim=True)
            if lgd_var is not None:
                mean = lgd[:, a:b]
                square = (q_def * par_c ** 2).sum(-1)
                var = var + ((lgd_var[:, a:b] + mean ** 2) * square - (mean * par) ** 2).sum(-1)
                par1[i] = par1[i] + par
                par2[i] = par2[i] + square
            dists[i] = torch.zeros(s, b - a, _K, dtype=q.dtype, device=dev).scatter_add(
                2, route[a:b].unsqueeze(0).expand(s, b - a, _CODES), q)
        out.append(torch.cat([sums, loss], dim=-1))
        variances.append(var)
    if lgd_var is None:
        return torch.stack(out, dim=1), None, None
    total = 0.0
    for i, (a, b) in enumerate(runs):
        mean = lgd[:, a:b]
        total = total + ((lgd_var[:, a:b] + mean ** 2) * par2[i] - (mean * par1[i]) ** 2).sum(-1)
    return torch.stack(out, dim=1), torch.stack(variances, dim=1), total


def pool_columns(flows: torch.Tensor, lag: int, coupon_change: torch.Tensor | None) -> torch.Tensor:
    """``(S, T, F + 1)`` expected cents -> ``(S, T, 7)`` currency units in POOL_CF_TYPES order;
    ``coupon_change`` ``(S, T, J)`` per floating class (J bases among the flows)."""
    s, t_len = flows.shape[:2]
    col = {"interest": flows[..., _F_INTEREST], "scheduled_principal": flows[..., _F_PRINCIPAL],
           "prepayment": flows[..., _F_PREPAY], "default_par": flows[..., _F_PAR],
           "balance": flows[..., _F_BALANCE], "loss": flows[..., -1]}
    if coupon_change is not None and flows.shape[-1] == _F_FLOAT + 1 + coupon_change.shape[-1]:
        for j in range(coupon_change.shape[-1]):  # class by class, a fixed order
            col["interest"] = col["interest"] + coupon_change[..., j] * flows[..., _F_FLOAT + j]
    recoverable = col["default_par"] - col["loss"]
    lag = int(lag)
    if lag >= t_len:
        col["recovery"] = torch.zeros_like(recoverable)
    else:  # recoveries of defaults after month T - 1 - lag are pending at the horizon (not pool cash)
        col["recovery"] = torch.cat([torch.zeros(s, lag, dtype=flows.dtype, device=flows.device),
                                     recoverable[:, : t_len - lag]], dim=1)
    return torch.stack([col[k] for k in POOL_CF_TYPES], dim=-1) / 100.0
