"""Cashflow engine: loan states -> interest, principal, prepayment, default, loss, recovery, pooled.

Conventions (ARCHITECTURE.md, made precise here)
------------------------------------------------
Month ``t = 0..T-1`` is the t-th month after the cut-off; a loan with ``n`` remaining payments is due
one in each of months ``0..n-1`` (its contractual maturity is month ``m = n - 1``).

*Delinquency buckets count missed payments.* DPD30/60/90 mean 1/2/3 scheduled payments outstanding.
A loan keeps a "paid-through" index ``p`` (the last scheduled payment it has made). Moving from state
``x`` in month ``t-1`` to live state ``y`` in month ``t`` sets ``p' = max(p, tau_t - y)`` with
``tau_t = min(t, m)``: staying CURRENT pays this month's instalment; advancing a bucket pays nothing;
staying in a bucket pays the oldest arrear while missing the new one; a cure to CURRENT (or a lower
bucket) pays the arrears down to the new bucket. Cash received is the contractual interest and
principal of the payments settled (interest into ``interest``, principal -- arrears included -- into
``scheduled_principal``); no default interest or fees accrue on arrears. After maturity no new
instalments fall due (``tau`` stops at ``m``), so a delinquent loan still owes its missed ones.

*Exits.* PREPAID: pays interest and principal through the current month plus the remaining balance as
``prepayment``. MATURED: reached when the balance is paid off at or after contractual maturity (a
CURRENT/PREPAID/MATURED outcome in month ``t >= m``); a MATURED draw before month ``m`` is an early
payoff and is booked as PREPAID. DEFAULT: the outstanding principal (arrears principal included,
accrued unpaid interest excluded) is ``default_par``; ``loss = LGD x default_par`` in the default
month; ``recovery = (1 - LGD) x default_par`` arrives ``recovery_lag`` months later, or is reported as
pending when that falls after the horizon. So for every loan: loss + recovery (+ pending) =
default_par, and opening balance - scheduled_principal - prepayment - default_par = closing balance.
Absorbed loans pay nothing (except recoveries of an earlier default).

Exact pool sums (reproducibility by construction)
-------------------------------------------------
The same seed gives the same numbers for any scenario chunk size, loan chunk size, thread count, BLAS
kernel (MKL's AVX2 / AVX-512 / compatible code paths) and device. The state uniforms' streams are keyed
by (seed, scenario id, fixed 1,024-loan block) and a realised LGD's by (seed, scenario id, loan position),
drawn on the host where the loan defaults (:mod:`creditsim.loans.lgd_draws`), so every loan draws the same
numbers however it is chunked; and every reduction that reaches an output is exact, so its order cannot
matter:

- Tabulated flows are whole cents held in float64 (:mod:`creditsim.cents`); the realised loss
  is rounded to the cent per loan (``round(LGD x default_par)``) before it is summed.
- Allowed on those values: any summation -- the quiet-loan ``mm``, ``bmm`` by group, ``index_add_``
  (including CUDA atomics, whose order is arbitrary), summing loan-block partials, numpy ``sum`` over
  months -- because a sum of integers below 2**53 is exact. :func:`check_exact_range` refuses a book
  whose total balance could break that bound (9.0e13 currency units).
- Not allowed: summing anything that is not whole cents (rates, LGDs, ratios) over a loan- or
  scenario-sized axis; round a product to cents first. Cents become currency units once, by an
  elementwise division, when the pool result leaves the engine.

Floating coupons
----------------
A floating loan's coupon follows the scenario's index (the policy rate) one for one: coupon at month
``t`` = its all-in rate at the cut-off + ``d_t``, ``d_t`` = index at ``t`` minus index at the cut-off
(``index_shift``, per scenario and month). Interest is linear in the coupon, so a loan's interest at the
reset coupon is its contractual interest ``I`` times ``1 + d_t / c`` (``c`` its annual coupon at the
cut-off; arrears interest settled on a cure is paid at the current coupon too, a simplification). The
engine tabulates one more flow, ``B = round(I / c)`` (whole cents; 0 for fixed loans), which the pool
sums exactly like the others,
and adds ``round(d_t x B)`` to the pool's interest per scenario, month (and group): an elementwise
product after the exact sums, so the reproducibility guarantees hold (grouped and ungrouped interest
totals can differ by under a cent per group and month, from that rounding). Index floors and caps and
reset months (:mod:`creditsim.loans.floating`) make the coupon change differ between loans: floating
loans with equal terms form a class, the engine tabulates one base per class and each class adds
``round(D_jt x B_j)`` with its own change ``D_jt`` (equal to ``d_t`` for monthly resets without floor or
cap). Decisions: the principal schedule stays the cut-off one (a reset changes the interest, not the
amortisation); and a class's change is floored at minus its lowest coupon so no loan's coupon turns
negative. Without ``index_shift`` (or
without floating loans) the table keeps its five flows and nothing changes.

How it is fast
--------------
Every cashflow of month ``t`` is a function of (loan, t, cash state c, sampled state y) only. For each
block of loans the engine tabulates those flows once per month as an ``(L_b * 49, 5)`` table indexed by
``code = loan * 49 + 7 c + y`` (scenario-independent). Per (scenario, loan) and month the pool path
then does: one float32 uniform, one gathered "stay CURRENT" threshold and a comparison; the quiet
loan-months (CURRENT staying CURRENT, or already absorbed) -- the vast majority -- are summed for all
scenarios by one matrix product ``(s, L_b) x (L_b, 5)`` of the stay mask with the loans' scheduled
instalments; only the remaining few percent (rolls, cures, exits, delinquent months, last instalments)
are sampled in full (six thresholds) and their flows gathered and scatter-added. Loan-level arrays
exist only for a (scenario chunk x loan block) at a time, so memory is bounded by the chunk sizes.

On the CPU the pool-only path runs a fused numba kernel instead (:mod:`creditsim.loans.fused`,
:data:`FUSED_KERNEL`): one pass per (scenario, RNG block) and month that continues the block's SFC64
stream itself, classifies each loan-month and adds its flows, computed from a compact per-month window
of the contractual history rather than the 49-row tables; same numbers, bit for bit (tests compare it
with this module's torch step), and scenarios run on numba's threads.

*One CPU thread in the month loop (decision).* The loop's operations are small (a 128-scenario tile
of one loan block): a ``(128, 1024) x (1024, 5)`` float64 product takes ~50 us on one thread but
~10 ms with two OpenMP threads on a busy 2-core machine (the idle sibling spins and takes the core the
working thread needs), which made the engine 10x slower unless the caller set
``OMP_WAIT_POLICY=PASSIVE``. The engine therefore runs its month loops with ``torch.set_num_threads(1)``
on CPU and restores the caller's count afterwards (:class:`creditsim.threads.serial_torch`); parallelism comes from running
chunks in separate processes. Note that the thread count is process-wide while the loop runs.
The fused kernel is the exception: one parallel region per month over whole scenarios (no tiny
operations to spin between), on the caller's torch thread count -- both cores by default; set
``torch.set_num_threads(1)`` or ``OMP_NUM_THREADS=1`` when processes run side by side (dask's workers
use one thread each), which also keeps a process free to fork.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from creditsim.cents import check_exact_range, from_cents, to_cents
from creditsim.devices import torch_device
from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.loans.book import LoanBook
from creditsim.loans.floating import FloatingClasses
from creditsim.loans.lgd_draws import LgdDraws
from creditsim.loans.pool import LOAN_FLOWS, book_recoveries, pool_cashflows, stack_pool
from creditsim.loans.schedule import amortization_schedule
from creditsim.states import ALLOWED_TRANSITIONS, N_LIVE_STATES, N_STATES
from creditsim.threads import serial_torch
from creditsim.transitions.sampler import (
    ABSORBED_THRESHOLDS,
    RNG_LOAN_BLOCK,
    BlockStreams,
    check_positive_int,
    check_states,
    cumulative_thresholds,
    risk_bins,
    shift_rows,
    validate_matrices,
)

__all__ = [
    "LoanCashflows",
    "PoolCashflows",
    "loan_cashflows",
    "simulate_loan_level",
    "simulate_pool_chunk",
    "simulate_pool_cashflows",
    "simulate_move_counts",
    "MoveCounts",
]

#: (live chain state x, move y) pairs per segment in the move counts of :func:`simulate_move_counts`
_LIVE_MOVES = N_LIVE_STATES * N_STATES
# flows tabulated per (loan, x, y); loss and recovery follow from default_par and the LGD draw
_F_INTEREST, _F_PRINCIPAL, _F_PREPAY, _F_PAR, _F_BALANCE = range(5)
_N_FLOWS = 5
#: with floating loans and an index path, one more tabulated flow per floating class from here on: the
#: class's floating interest base ``round(interest / annual coupon)`` in cents (0 for other loans), see
#: "Floating coupons"
_F_FLOAT = 5
#: pool column of each tabulated flow (the loss is tabulated after them, the recovery derived)
_FLOW_NAMES = ("interest", "scheduled_principal", "prepayment", "default_par", "balance")
_PAST = 4  # months of history kept before month 0 (arrears of up to 3 payments + the cut-off)
_MAX_LOAN_LEVEL = 50_000_000
log = logging.getLogger(__name__)
#: scenarios per inner tile of the month step (a cache-sized working set; no effect on results)
SCENARIO_TILE = 128
#: pool-only runs on the CPU use the fused numba month kernel (:mod:`creditsim.loans.fused`; same
#: numbers, bit for bit); False keeps the torch month step everywhere (tests compare the two)
FUSED_KERNEL = True


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LoanCashflows:
    """Loan-level cashflows of ``s`` scenarios x ``L`` loans x ``T`` months (currency units, float64).

    ``states`` are the effective states at the end of each month (int8; maturity and early-payoff
    relabelling applied). ``recovery`` is the cash received in the month; ``pending_recovery``
    ``(s, L)`` is recovery cash that falls after the horizon. ``lgd`` ``(s, L)`` is the realised LGD.
    ``opening_balance`` ``(L,)`` is the balance at the cut-off.
    """

    states: np.ndarray
    interest: np.ndarray
    scheduled_principal: np.ndarray
    prepayment: np.ndarray
    recovery: np.ndarray
    default_par: np.ndarray
    loss: np.ndarray
    balance: np.ndarray
    pending_recovery: np.ndarray
    lgd: np.ndarray
    opening_balance: np.ndarray

    def pool(self) -> np.ndarray:
        """Sum over loans: ``(s, T, K)`` in :data:`POOL_CF_TYPES` order (exact cent sums)."""
        return pool_cashflows({name: getattr(self, name) for name in (*LOAN_FLOWS, "recovery")}).cashflows


@dataclass(frozen=True)
class PoolCashflows:
    """Pool cashflows of ``S`` scenarios.

    Attributes:
        cashflows: ``(S, T, K)`` float64 (or ``(S, T, G, K)`` by group), K = :data:`POOL_CF_TYPES`.
        pending_recovery: ``(S,)`` (or ``(S, G)``) recoveries due after the horizon.
        initial_balance: pool (or ``(G,)`` group) balance at the cut-off.
        group_labels: group names when grouped, else None.
    """

    cashflows: np.ndarray
    pending_recovery: np.ndarray
    initial_balance: float | np.ndarray
    group_labels: tuple[str, ...] | None = None


# ---------------------------------------------------------------------------- preparation
def contractual_history(book: LoanBook, index: np.ndarray, n_months: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contractual balance and cumulative interest by month index ``k = -4 .. T-1`` for some loans.

    Returns ``(cb (L_b, T+4), ci (L_b, T+4), m (L_b,))`` in whole cents: ``cb[:, k+4]`` is the
    contractual balance after the payment of month k, ``ci[:, k+4]`` the interest of all payments
    through month k counted from the schedule anchor (the last paid payment at the cut-off), ``m`` the
    maturity month.
    """
    x0 = book.initial_state[index].astype(np.int64)
    n = book.remaining_term[index] + x0  # payments from the anchor, the x0 arrears included
    io = book.io_months[index]
    io = np.where(io > 0, io + x0, 0)
    n_cols = n_months + 3
    sched = amortization_schedule(book.balance[index], book.monthly_rate[index], n, book.amortization[index], io, n_columns=n_cols)
    # whole cents from here on (see "Exact pool sums"): every tabulated flow is an integer-valued float64
    ci_sched = np.concatenate([np.zeros((len(index), 1)), np.cumsum(to_cents(sched.interest), axis=1)], axis=1)
    balance_cents = to_cents(sched.balance)
    k = np.arange(-_PAST, n_months)[None, :]
    j = k + 1 + x0[:, None]  # payments made since the anchor by the end of month k
    jc = np.clip(j, 0, n_cols)
    cb = np.take_along_axis(balance_cents, jc, axis=1)
    ci = np.take_along_axis(ci_sched, jc, axis=1)
    m = book.remaining_term[index] - 1
    return (torch.from_numpy(cb).to(dev), torch.from_numpy(ci).to(dev), torch.from_numpy(m).to(dev))


_HISTORY_LOCK = threading.Lock()


def _cached_history(book: LoanBook, index: np.ndarray, n_months: int, dev: torch.device,
                    history: dict | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`contractual_history` of the loans ``index`` (consecutive book positions), looked up in and
    added to ``history`` (a caller's dict kept across the chunks of one book; None: built every time).
    The tensors are only read from here on (tables, windows), so one copy serves every chunk."""
    if history is None:
        return contractual_history(book, index, n_months, dev)
    key = (int(index[0]) if len(index) else 0, len(index), n_months, str(dev))
    # chunks on threads of one process share ``history`` (creditsim.risk.backends.LocalBackend): the first
    # to miss builds the block while the others wait and reuse it (two builds at once doubled the build's
    # time and its transient memory, ~0.1 GB a block at 10k loans x 360 months). A module lock, not one in
    # ``history``: the dict travels to dask workers with the engine, and a lock cannot be pickled.
    with _HISTORY_LOCK:
        cached = history.get(key)
        if cached is None:
            cached = history[key] = contractual_history(book, index, n_months, dev)
    return cached


class MonthTables:
    """Flows and next states of month ``t`` for every (loan, c, y) of a loan block.

    ``c`` is the loan's cash state at the start of the month: the number of missed instalments (0..3)
    for a live loan, the state itself (4..6) for an absorbed one. Before maturity ``c`` equals the
    chain state; after maturity no instalment falls due, so a loan that rolls DPD30 -> DPD60 still
    misses one instalment (``c`` = 1) while the chain says DPD60. ``y`` is the sampled chain state.

    :meth:`month` returns ``(flows (L_b * 49, 5) float64, next_state (L_b * 49,) int32,
    next_c (L_b * 49,) int32)`` indexed by ``loan * 49 + 7 c + y``; flows are (interest,
    scheduled_principal, prepayment, default_par, closing balance). Rows of absorbed ``c`` are zero and
    keep the state. The buffers are reused month to month (only the month-dependent entries change),
    so a returned table is valid until the next call.
    """

    def __init__(self, cb: torch.Tensor, ci: torch.Tensor, m: torch.Tensor, inv_coupon: torch.Tensor | None = None):
        self.cb, self.ci, self.m = cb, ci, m
        lb = cb.shape[0]
        dev = cb.device
        self._lb = lb
        self._live = torch.arange(4, device=dev)
        # (L_b, 1, 1, J) 1 / annual coupon of the loan's floating class (0 elsewhere): flows 5.., the bases
        self._inv_coupon = None if inv_coupon is None else inv_coupon.view(lb, 1, 1, -1)
        self.n_flows = _N_FLOWS + (0 if inv_coupon is None else self._inv_coupon.shape[-1])
        self._flows = torch.zeros(lb, N_STATES, N_STATES, self.n_flows, dtype=torch.float64, device=dev)
        states = torch.arange(N_STATES, device=dev, dtype=torch.int32)
        self._nxt = states.view(1, 1, N_STATES).expand(lb, N_STATES, N_STATES).clone()
        self._nxt[:, 4:, :] = states[4:].view(1, 3, 1)  # absorbed loans keep their state
        self._nxt_c = self._nxt.clone()

    def _at(self, table: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        col = (p + _PAST).clamp(min=0).reshape(self._lb, -1)
        return table.gather(1, col).reshape(p.shape)

    def month(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lb, live, m = self._lb, self._live, self.m
        tau_prev = torch.clamp(m, max=t - 1)  # (L_b,)
        tau = torch.clamp(m, max=t)
        p_prev = tau_prev[:, None] - live[None, :]  # (L_b, 4) paid-through index before month t
        p_new = torch.maximum(p_prev[:, :, None], (tau[:, None] - live[None, :])[:, None, :])  # (L_b, c, y)
        cb_prev, ci_prev = self._at(self.cb, p_prev), self._at(self.ci, p_prev)  # (L_b, 4)
        cb_new, ci_new = self._at(self.cb, p_new), self._at(self.ci, p_new)  # (L_b, 4, 4)
        cb_now, ci_now = self._at(self.cb, tau[:, None]), self._at(self.ci, tau[:, None])  # (L_b, 1)

        flows = self._flows
        # cumulative interest is in whole cents, so differences are exact
        flows[:, :4, :4, _F_INTEREST] = ci_new - ci_prev[:, :, None]
        flows[:, :4, :4, _F_PRINCIPAL] = cb_prev[:, :, None] - cb_new
        flows[:, :4, :4, _F_BALANCE] = cb_new
        flows[:, :4, 4, _F_PAR] = cb_prev
        exit_interest = ci_now - ci_prev
        for exit_state in (5, 6):
            flows[:, :4, exit_state, _F_INTEREST] = exit_interest
            flows[:, :4, exit_state, _F_PRINCIPAL] = cb_prev - cb_now
            flows[:, :4, exit_state, _F_PREPAY] = cb_now.expand(lb, 4)
        if self._inv_coupon is not None:  # whole cents, like every tabulated flow
            torch.round(flows[..., _F_INTEREST, None] * self._inv_coupon, out=flows[..., _F_FLOAT:])

        matured = (t >= m)[:, None]  # (L_b, 1)
        nxt = self._nxt
        pay_off = torch.where(matured, 6, 5).to(torch.int32)  # an exit before maturity is a prepayment
        nxt[:, :4, 0] = torch.where(matured, 6, 0).to(torch.int32).expand(lb, 4)
        nxt[:, :4, 5] = pay_off.expand(lb, 4)
        nxt[:, :4, 6] = pay_off.expand(lb, 4)
        # missed instalments after the move: min(c + newly due, y); nothing falls due after maturity
        due = (t <= m).to(torch.int32)[:, None, None]  # (L_b, 1, 1)
        missed = torch.minimum(live.to(torch.int32)[None, :, None] + due, live.to(torch.int32)[None, None, :])
        nxt_c = self._nxt_c
        nxt_c[:, :4, :] = nxt[:, :4, :]
        nxt_c[:, :4, :4] = torch.where(nxt[:, :4, :4] < 4, missed, nxt[:, :4, :4])
        return flows.view(lb * N_STATES * N_STATES, self.n_flows), nxt.view(-1), nxt_c.view(-1)


def _as_tensor(matrices: object, name: str = "matrices", validated: bool = False) -> torch.Tensor:
    """Float64 matrices as a CPU tensor sharing numpy's memory, checked by :func:`validate_matrices` unless
    the caller vouches for them (``validated``: simulate_pool_chunk's argument)."""
    arr = np.asarray(matrices, dtype=np.float64) if validated else validate_matrices(matrices, name)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


class _Thresholds:
    """Sampling thresholds of a scenario chunk, per (scenario, segment, state) and month.

    A segment is a (cohort, risk bin) pair used by the book. ``rows(t)`` returns ``(6, n_rows)``
    float32 and ``offset`` the per-scenario row offset (0 when the matrices do not vary by scenario).
    """

    def __init__(self, matrices: torch.Tensor, book: LoanBook, n_scenarios: int, n_months: int, dev: torch.device, max_risk_bins: int):
        shape = tuple(matrices.shape)
        if matrices.ndim == 2:
            m = matrices.view(1, 1, 1, N_STATES, N_STATES)  # (s, C, T, 7, 7)
        elif matrices.ndim == 3:
            # (C, 7, 7) and a month-varying (T, 7, 7) look alike: never guess, require the book's C
            n_labels = len(book.cohort_labels)
            if shape[0] != n_labels:
                raise ConfigError(
                    f"matrices: a 3-D input is read as (C, 7, 7), one matrix per cohort, but it has {shape[0]} "
                    f"matrices and the book has {n_labels} cohorts {format_labels(list(book.cohort_labels))}; "
                    "for month-varying matrices pass (1, T, 7, 7) (shared by all scenarios) or (S, T, 7, 7)"
                )
            m = matrices.view(1, shape[0], 1, N_STATES, N_STATES)
        elif matrices.ndim == 4:
            m = matrices.unsqueeze(1)
        elif matrices.ndim == 5:
            m = matrices
        else:
            raise DataError(f"matrices: expected (7,7), (C,7,7), (s,T,7,7) or (s,C,T,7,7), got shape {shape}")
        s_m, c_m, t_m = m.shape[:3]
        if s_m not in (1, n_scenarios):
            raise DataError(f"matrices: scenario axis has {s_m} entries for a chunk of {n_scenarios} scenarios")
        if t_m not in (1,) and t_m < n_months:
            raise DataError(f"matrices: month axis has {t_m} months, fewer than n_months={n_months}")
        n_coh = int(book.cohort.max()) + 1
        if c_m != 1 and c_m < n_coh:
            raise DataError(f"matrices: cohort axis has {c_m} cohorts but the book uses cohort index up to {n_coh - 1}")
        cohort = book.cohort if c_m != 1 else np.zeros(book.n_loans, np.int64)
        bins, loan_bin = risk_bins(book.risk_shift, max_risk_bins)
        seg_key = cohort * len(bins) + loan_bin
        used, self.loan_segment = np.unique(seg_key, return_inverse=True)
        seg_cohort = torch.from_numpy(used // len(bins))
        seg_bin = torch.from_numpy(used % len(bins))
        self.n_rows_per_scenario = len(used) * N_STATES
        self.varies = s_m > 1
        self.t_m = t_m
        self._bins = torch.from_numpy(bins)
        self._m = m
        self._seg_cohort, self._seg_bin = seg_cohort, seg_bin
        self._seg_cohort_np = np.ascontiguousarray(seg_cohort.numpy(), dtype=np.int64)
        # every cohort used once, in order (one risk bin): the month's matrices are a view, not a gather
        self._all_cohorts = bool(len(seg_cohort) == c_m and torch.equal(seg_cohort, torch.arange(c_m)))
        self._dev = dev
        # on the CPU the month's thresholds come from one numba pass where the fused kernel loads
        self._fused = _fused_module() if dev.type == "cpu" else None
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if t_m == 1:
            self._cache[0] = self._compute(0)

    def _compute(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fused is not None:
            return self._compute_fused(self._fused, t)
        # (s_m, G, 7, 7): each used segment's cohort matrix
        mt = self._m[:, :, t] if self._all_cohorts else self._m[:, self._seg_cohort, t]
        seg = shift_rows(mt, self._bins[self._seg_bin])  # its risk bin's shift, per segment
        thr = cumulative_thresholds(seg)  # (s_m, G, 7, 6)
        # u < stay_current  <=>  a CURRENT loan stays CURRENT (y = 0); never true for other rows
        stay = torch.where(torch.arange(N_STATES) == 0, thr[..., 0], torch.full_like(thr[..., 0], -1.0))
        return thr.reshape(-1, N_STATES - 1).t().contiguous().to(self._dev), stay.reshape(-1).to(self._dev)

    def _compute_fused(self, fused: object, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_compute` by :func:`creditsim.loans.fused.month_thresholds` (CPU; bit-identical)."""
        bins = self._bins[self._seg_bin]
        if bool(bins.any()):  # risk bins shift the rows first (torch; rarely more than a few segments)
            m = shift_rows(self._m[:, self._seg_cohort, t], bins).unsqueeze(2).contiguous()
            seg, key = np.arange(m.shape[1], dtype=np.int64), 0
        else:
            m, seg, key = self._m, self._seg_cohort_np, t
        n_rows = m.shape[0] * len(seg) * N_STATES
        thr = np.empty((N_STATES - 1, n_rows), dtype=np.float32)
        stay = np.empty(n_rows, dtype=np.float32)
        fused.month_thresholds(m.numpy(), key, seg, ABSORBED_THRESHOLDS, thr, stay)
        return torch.from_numpy(thr), torch.from_numpy(stay)

    def rows(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(thresholds (6, n_rows) float32, stay_current (n_rows,) float32)`` of month ``t``.

        Time-varying thresholds are kept for the latest month only (callers go month by month)."""
        key = 0 if self.t_m == 1 else t
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = self._compute(key)
        return self._cache[key]


# ---------------------------------------------------------------------------- core loop
def _month_step(
    u: torch.Tensor,
    x: torch.Tensor,
    c: torch.Tensor,
    row_base: torch.Tensor,
    thresholds: torch.Tensor,
    flow_table: torch.Tensor,
    next_table: torch.Tensor,
    next_c: torch.Tensor,
    loan_base: torch.Tensor,
    weights: torch.Tensor,
    lgd: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One month for an (s x L_b) block: sample, tabulated flows, weighted sums over loans.

    Args:
        u: ``(s, L_b)`` float32 uniforms; x / c: ``(s, L_b)`` int64 chain and cash states at the start
            of the month (see :class:`MonthTables`).
        row_base: ``(s, L_b)`` int64 threshold row of state 0 for each (scenario, loan).
        thresholds: ``(6, n_rows)`` float32 cumulative thresholds, threshold-major (one gather each).
        flow_table / next_table / next_c: from :class:`MonthTables`; loan_base ``(s, L_b)`` = ``loan * 49``.
        weights: ``(s, G, L_b)`` float64 group membership (0 / 1).
        lgd: ``(s, L_b)`` float64 realised LGD.

    Returns:
        ``(x_next, c_next (s, L_b) int64, flows (s, L_b, F) float64, sums (s, G, F + 1) float64, y (s, L_b)
        int64)``: the F = 5 (or 6, with the floating base) flows in whole cents; sums = the flows + loss
        (``round(lgd x default_par)`` cents) per group, exact; y the sampled moves.
    """
    s, lb = x.shape
    ridx = (row_base + x).view(-1)
    uf = u.view(-1)
    # six threshold-major gathers beat a row gather + reduction over a length-6 axis in eager torch
    y = (uf >= thresholds[0].index_select(0, ridx)).to(torch.int64)
    for j in range(1, N_STATES - 1):
        y += uf >= thresholds[j].index_select(0, ridx)
    code = c.view(-1).to(torch.int64) * N_STATES + y + loan_base.view(-1)
    flows = flow_table.index_select(0, code).view(s, lb, flow_table.shape[1])
    x_next = next_table.take(code).view(s, lb)
    c_next = next_c.take(code).view(s, lb)
    return x_next, c_next, flows, _group_sums(weights, flows, lgd), y.view(s, lb)


def _group_sums(weights: torch.Tensor, flows: torch.Tensor, lgd: torch.Tensor) -> torch.Tensor:
    """``(s, G, F + 1)`` exact group sums of ``(s, L_b, F)`` whole-cent flows plus the whole-cent loss.

    A batched product of 0/1 weights with integer-valued float64 entries: every partial sum is an integer
    below 2**53, so the result is exact and does not depend on the BLAS kernel's summation order.
    """
    loss = torch.round(flows[..., _F_PAR] * lgd).unsqueeze(-1)  # (s, L_b, 1) whole cents
    return torch.bmm(weights, torch.cat([flows, loss], dim=-1))


def _month_step_pool(
    u: torch.Tensor,
    x: torch.Tensor,
    c: torch.Tensor,
    row_base: torch.Tensor,
    thresholds: torch.Tensor,
    stay_current: torch.Tensor,
    flow_table: torch.Tensor,
    next_table: torch.Tensor,
    next_c: torch.Tensor,
    current_flows: torch.Tensor,
    not_maturing: torch.Tensor,
    lgd: torch.Tensor,
    loan_group: torch.Tensor,
    n_groups: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One month for an (s x L_b) block, pool sums only (same numbers as :func:`_month_step`).

    Most loan-months are quiet: a CURRENT loan staying CURRENT (its flows are the loan's scheduled
    instalment, summed for all scenarios at once by one matrix product) or an absorbed loan (no flows).
    Only the other loan-months -- roll-forwards, cures, exits, delinquent months; a few percent --
    are sampled in full and gathered individually. ``current_flows`` is ``(L_b, G * F)``: the
    CURRENT->CURRENT flows of each loan placed in its group's columns (F flows, see :func:`_month_step`).
    A loan paying its last
    instalment this month (``not_maturing`` False) is an event too, since it becomes MATURED. ``x`` and
    ``c`` are updated in place (quiet loan-months keep their state).

    Returns ``(x, c (s, L_b) int64, sums (s, G, F + 1))`` with sums = the F flows + loss.
    """
    s, lb = x.shape
    nf = flow_table.shape[1]
    ridx = (row_base + x).view(-1)  # int32: index_select takes it directly (cheaper than int64 take)
    # CURRENT -> CURRENT (exactly y == 0 of the full sampler) of a loan not at its last instalment
    quiet = torch.logical_and(u < stay_current.index_select(0, ridx).view(s, lb), not_maturing)
    sums = torch.mm(quiet.to(torch.float64), current_flows).view(s, n_groups, nf)
    sums = torch.cat([sums, torch.zeros(s, n_groups, 1, dtype=sums.dtype, device=sums.device)], dim=2)
    busy = torch.logical_and(quiet.logical_not_(), x < 4).view(-1)
    if busy.device.type == "cpu":  # numpy's flatnonzero is several times faster than torch.nonzero on CPU
        event = torch.from_numpy(np.flatnonzero(busy.numpy()))
    else:
        event = busy.nonzero().squeeze(1)
    x_next, c_next = x, c
    if event.numel():
        ce = c.view(-1).index_select(0, event).to(torch.int64)
        ue = u.reshape(-1).index_select(0, event)
        re = ridx.index_select(0, event)
        ye = (ue >= thresholds[0].index_select(0, re)).to(torch.int64)
        for j in range(1, N_STATES - 1):
            ye += ue >= thresholds[j].index_select(0, re)
        se = torch.div(event, lb, rounding_mode="floor")
        le = event - se * lb
        code = le * (N_STATES * N_STATES) + ce * N_STATES + ye
        fe = flow_table.index_select(0, code)
        # re and ce were read before this in-place update, so writing x and c here is safe
        x_next.view(-1).index_copy_(0, event, next_table.take(code))
        c_next.view(-1).index_copy_(0, event, next_c.take(code))
        loss = torch.round(fe[:, _F_PAR] * lgd.reshape(-1).index_select(0, event))  # whole cents
        sums.view(s * n_groups, nf + 1).index_add_(
            0, se * n_groups + loan_group.take(le), torch.cat([fe, loss[:, None]], dim=1)
        )
    return x_next, c_next, sums


def _group_membership(groups: np.ndarray | None, index: np.ndarray, n_groups: int, dev: torch.device) -> torch.Tensor:
    """``(G, L_b)`` float64 0/1 group membership of a loan block (``(1, L_b)`` ones without groups)."""
    lb = len(index)
    if groups is None:
        return torch.ones(1, lb, dtype=torch.float64, device=dev)
    member = torch.zeros(n_groups, lb, dtype=torch.float64, device=dev)
    member[torch.from_numpy(groups[index]).to(dev), torch.arange(lb, device=dev)] = 1.0
    return member


def _threshold_rows(thresholds: _Thresholds | None, index: np.ndarray, s: int, dev: torch.device) -> torch.Tensor:
    """``(s, L_b)`` int32 threshold row of state 0 of each (scenario, loan): the scenario's row offset
    plus the loan's segment x 7. Zeros for given paths (thresholds are never read then)."""
    lb = len(index)
    if thresholds is None:
        return torch.zeros(s, lb, dtype=torch.int32, device=dev)
    seg7 = torch.from_numpy(thresholds.loan_segment[index] * N_STATES).to(dev)
    off = (torch.arange(s, device=dev) * thresholds.n_rows_per_scenario) if thresholds.varies else torch.zeros(s, dtype=torch.int64, device=dev)
    # int32 rows (cheaper index_select) must not overflow
    if s * thresholds.n_rows_per_scenario >= 2**31:
        raise ConfigError("too many (scenario, segment) rows in one chunk; use a smaller chunk or fewer risk bins")
    return (off[:, None] + seg7[None, :]).to(torch.int32).contiguous()


class _BlockRun:
    """The month loop of one (scenario chunk x loan block), advanced one month per :meth:`step`.

    States come from the random ``streams`` and the thresholds, or from given ``paths``
    ``(s, L_b, T)`` (rows of absorbed loans map to themselves whatever the path says); realised LGDs from
    ``lgd``: the block's :class:`~creditsim.loans.lgd_draws.LgdDraws` (the fused kernel draws them for the
    defaults only, the torch steps for every pair) or a given ``(s, L_b)`` array. What it produces, filled
    month by month (the GPU kernel books its defaults' losses after the last month):

    - ``sums``: ``(s, T, G, F + 1)`` float64 whole-cent block sums (F = 5 tabulated flows, 6 with the
      floating base of ``inv_coupon``, + loss; G = 1 without groups);
    - ``loan_level``: with ``keep_loan_level``, ``{"states": (s, L_b, T) int8, "flows": (s, L_b, T, F)
      float64}``, else None.
    - ``moves``: with ``count_moves``, ``(s, T, G_seg * 28 + 1)`` float32 counts of the sampled moves of
      live loans, column ``28 g + 7 x + y`` for segment ``g`` (:class:`_Thresholds`), chain state
      ``x < 4`` and move ``y`` (the last column collects absorbed loan-months), else None.

    Stepping rather than looping lets :func:`simulate_pool_chunk` advance all loan blocks month by
    month, so time-varying thresholds are computed once per month for the whole chunk. The pool-only
    path (random states, no loan-level output) uses the fused kernel (:func:`fused_months`) where it
    runs, else :func:`_month_step_pool`; the others :func:`_month_step` or the given paths.
    """

    def __init__(
        self,
        book: LoanBook,
        index: np.ndarray,
        thresholds: _Thresholds | None,
        streams: BlockStreams | None,
        paths: torch.Tensor | None,
        lgd: LgdDraws | np.ndarray,
        n_months: int,
        dev: torch.device,
        groups: np.ndarray | None,
        n_groups: int,
        keep_loan_level: bool,
        inv_coupon: np.ndarray | None = None,
        kernel_threads: int = 1,
        count_moves: bool = False,
        history: dict | None = None,
    ):
        lb = len(index)
        s = lgd.shape[0]
        self._lb, self._s = lb, s
        self._thresholds, self._streams, self._paths, self._dev = thresholds, streams, paths, dev
        self._n_months = n_months
        cb, ci, self._m = _cached_history(book, index, n_months, dev, history)
        inv = None if inv_coupon is None else torch.from_numpy(np.ascontiguousarray(inv_coupon[index])).to(dev)
        nf = self._nf = _N_FLOWS + (0 if inv is None else inv.shape[-1])
        # chain state x and cash state c (see MonthTables); int32 keeps the per-element traffic low
        self._x = torch.from_numpy(book.initial_state[index].astype(np.int32)).to(dev).expand(s, lb).contiguous()
        self._c = self._x.clone()
        self._fast = paths is None and not keep_loan_level and not count_moves
        self.moves: torch.Tensor | None = None
        if count_moves:
            n_cols = (thresholds.n_rows_per_scenario // N_STATES) * _LIVE_MOVES
            self.moves = torch.zeros(s, n_months, n_cols + 1, dtype=torch.float32, device=dev)
            self._move_base = torch.from_numpy(thresholds.loan_segment[index] * _LIVE_MOVES).to(dev)
        self._member = _group_membership(groups, index, n_groups, dev)
        g = self._g = self._member.shape[0]
        if not self._fast:
            self._loan_base = (torch.arange(lb, device=dev) * (N_STATES * N_STATES)).expand(s, lb).contiguous()
            self._weights = self._member.expand(s, -1, -1).contiguous()  # (s, G, L_b) 0/1 group membership
        self._row_base = _threshold_rows(thresholds, index, s, dev)
        self.sums = torch.zeros(s, n_months, g, nf + 1, dtype=torch.float64, device=dev)
        self.loan_level: dict[str, torch.Tensor] | None = None
        if keep_loan_level:
            self.loan_level = {
                "states": torch.empty(s, lb, n_months, dtype=torch.int8, device=dev),
                "flows": torch.empty(s, lb, n_months, nf, dtype=torch.float64, device=dev),
            }
        if self._fast:
            self._loan_group = torch.zeros(lb, dtype=torch.int64, device=dev) if groups is None else torch.from_numpy(groups[index]).to(dev)
        self._fused = (fused_months(streams, lgd, cb, ci, self._m, inv, self._loan_group, g, nf, kernel_threads,
                                    shared_rows=not thresholds.varies) if self._fast else None)
        self._lgd: torch.Tensor | None = None  # (s, L_b) realised LGD, for the torch steps: every pair drawn
        if self._fused is None:
            values = lgd.all() if isinstance(lgd, LgdDraws) else np.ascontiguousarray(lgd)
            self._lgd = torch.from_numpy(values).to(dev)
        # the 49-row month tables (2.4 kB per loan) only for the torch step: the fused kernel reads a window
        self._tables = MonthTables(cb, ci, self._m, inv) if self._fused is None else None

    def run_all(self) -> dict[str, torch.Tensor] | None:
        """Step every month in order and return the loan-level record (None unless kept)."""
        for t in range(self._n_months):
            self.step(t)
        return self.loan_level

    def step(self, t: int) -> None:
        """Advance month ``t`` (months must be stepped in order 0, 1, ...)."""
        if self._fused is not None:
            thr, stay_current = self._thresholds.rows(t)
            self._fused.step(t, self._x, self._c, self._row_base, thr, stay_current, self.sums[:, t])
            if t == self._n_months - 1:  # the defaults' losses, their LGDs drawn now (lgd_draws)
                self._fused.finish(self.sums)
            return
        flow_table, next_table, next_c = self._tables.month(t)
        if self._fast:
            self._pool_month(t, flow_table, next_table, next_c)
        else:
            self._loan_month(t, flow_table, next_table, next_c)

    def _pool_month(self, t: int, flow_table: torch.Tensor, next_table: torch.Tensor, next_c: torch.Tensor) -> None:
        """Pool sums only: quiet loan-months by one product, events gathered (:func:`_month_step_pool`)."""
        lb, s, g = self._lb, self._s, self._g
        x, c, row_base, lgd = self._x, self._c, self._row_base, self._lgd
        u = torch.from_numpy(self._streams.next_month()).to(self._dev)
        thr, stay_current = self._thresholds.rows(t)
        current = flow_table.view(lb, N_STATES * N_STATES, self._nf)[:, 0, :]  # (L_b, F)
        current_flows = (self._member.t()[:, :, None] * current[:, None, :]).reshape(lb, g * self._nf)
        not_maturing = self._m != t
        # scenario tiles keep the per-element working set in cache; the month tables are shared;
        # x and c are updated in place through the tile views
        for a in range(0, s, SCENARIO_TILE):
            b = min(s, a + SCENARIO_TILE)
            _, _, sums = _month_step_pool(u[a:b], x[a:b], c[a:b], row_base[a:b], thr, stay_current, flow_table,
                                          next_table, next_c, current_flows, not_maturing, lgd[a:b],
                                          self._loan_group, g)
            self.sums[a:b, t] = sums

    def _count_moves(self, t: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add month ``t``'s sampled moves ``y`` from chain states ``x`` (``(s, L_b)`` each) to :attr:`moves`."""
        dump = self.moves.shape[-1] - 1
        col = torch.where(x < N_LIVE_STATES, self._move_base[None, :] + x.to(torch.int64) * N_STATES + y,
                          torch.full_like(y, dump))
        self.moves[:, t].scatter_add_(1, col, torch.ones(col.shape, dtype=torch.float32, device=col.device))

    def _loan_month(self, t: int, flow_table: torch.Tensor, next_table: torch.Tensor, next_c: torch.Tensor) -> None:
        """Every loan-month in full (sampled or from the given paths), loan-level output if kept."""
        lb, s = self._lb, self._s
        x, c, loan_base = self._x, self._c, self._loan_base
        if self._paths is None:
            u = torch.from_numpy(self._streams.next_month()).to(self._dev)
            x_now = x
            x, c, f, sums, y = _month_step(u, x, c, self._row_base, self._thresholds.rows(t)[0], flow_table,
                                           next_table, next_c, loan_base, self._weights, self._lgd)
            if self.moves is not None:
                self._count_moves(t, x_now, y)
        else:
            # a given path: its states replace the draw (absorbed rows of next_table ignore them)
            y = self._paths[:, :, t]
            code = (c.to(torch.int64) * N_STATES + y + loan_base).view(-1)
            f = flow_table.index_select(0, code).view(s, lb, self._nf)
            x = next_table.take(code).view(s, lb)
            c = next_c.take(code).view(s, lb)
            sums = _group_sums(self._weights, f, self._lgd)
        self._x, self._c = x, c
        self.sums[:, t] = sums
        if self.loan_level is not None:
            self.loan_level["states"][:, :, t] = x.to(torch.int8)
            self.loan_level["flows"][:, :, t] = f


#: reasons the fused kernel failed to load that were logged already (the import is retried on every call,
#: which costs nothing once it works, so a cache directory that becomes writable is picked up)
_FUSED_FAILURES_LOGGED: set[str] = set()


def _fused_module() -> object | None:
    """:mod:`creditsim.loans.fused` when :data:`FUSED_KERNEL` is on and numba loads (imported, and its
    cached kernels loaded, on first use), else None with the reason logged: e.g. numba finds no
    writable cache directory, and the engine keeps its torch step and torch thresholds."""
    if not FUSED_KERNEL:
        return None
    try:
        from creditsim.loans import fused
    except Exception as exc:  # noqa: BLE001 - any import failure means "use the torch path"
        reason = f"{type(exc).__name__}: {exc}"
        if reason not in _FUSED_FAILURES_LOGGED:  # once per reason, not once per chunk and caller
            _FUSED_FAILURES_LOGGED.add(reason)
            log.warning("the fused month kernel is unavailable (%s); the engine uses its torch step", reason)
        return None
    return fused


def fused_months(streams: BlockStreams, lgd: LgdDraws | np.ndarray, cb: torch.Tensor, ci: torch.Tensor, m: torch.Tensor,
                 inv_coupon: torch.Tensor | None, loan_group: torch.Tensor, n_groups: int, n_flows: int,
                 threads: int = 1, shared_rows: bool = False) -> object | None:
    """The fused month kernel for a pool-only block run on ``cb``'s device, or None to keep the torch step.

    CPU: :class:`creditsim.loans.fused.FusedMonths` on ``threads`` numba threads (the engine passes the
    caller's torch thread count, which ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` set; with 1 the
    serial build runs and no OpenMP pool starts; results never depend on it; ``shared_rows``: the
    thresholds do not vary by scenario, so the kernel looks each month's stay thresholds up once). CUDA: :class:`creditsim.loans.fused_cuda.FusedMonthsCuda`
    when numba can reach the GPU and the sums fit its local memory (at most 8 groups and 15 flows;
    beyond, the torch step). If numba cannot be loaded (no writable cache directory for its compiled
    code, say) the torch step runs and the reason is logged. numba is imported (and compiles, once
    per machine: the code is cached) on first use. Either continues the streams itself; the Python
    generators of ``streams`` are not used again.
    """
    if not FUSED_KERNEL or cb.device.type not in ("cpu", "cuda") or not isinstance(lgd, LgdDraws):
        return None
    fused = _fused_module()
    if fused is None:
        return None
    if cb.device.type == "cuda":
        try:  # the CUDA module on a GPU only
            from creditsim.loans import fused_cuda
        except Exception as exc:  # noqa: BLE001 - a broken numba-cuda: keep the torch step
            log.warning("the fused CUDA kernel is unavailable (%s: %s); the engine uses its torch step",
                        type(exc).__name__, exc)
            return None
    host = [a.cpu().numpy() for a in (cb, ci, m, loan_group)]
    inv = None if inv_coupon is None else inv_coupon.cpu().numpy()
    if cb.device.type == "cpu":
        return fused.FusedMonths(streams, lgd, host[0], host[1], host[2], inv, host[3], n_groups, threads, shared_rows)
    if fused_cuda.available() and n_groups <= fused_cuda.MAX_GROUPS and n_flows <= fused_cuda.MAX_FLOWS:
        return fused_cuda.FusedMonthsCuda(streams, lgd, host[0], host[1], host[2], inv, host[3], n_groups, cb.device)
    return None


def _scatter_pool(acc: torch.Tensor, lag: int, grouped: bool,
                  coupon_change: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(s, T, [G,] F + 1)`` block flows in whole cents -> ``(s, T, [G,] K)`` pool cashflows and pending
    recoveries in currency units (all arithmetic before the final division is exact, except the one
    rounding of each floating class's interest to cents; module docstring). ``coupon_change``: ``(s, T, J)``
    per floating class (:meth:`FloatingClasses.coupon_change`), J bases tabulated."""
    a = acc.cpu().numpy()
    if not grouped:
        a = a[:, :, 0]
    columns = {name: a[..., f] for f, name in enumerate(_FLOW_NAMES)}  # (s, T, [G]) each
    columns["loss"] = a[..., -1]
    if coupon_change is not None and a.shape[-1] == _N_FLOWS + 1 + coupon_change.shape[-1]:  # bases tabulated
        for j in range(coupon_change.shape[-1]):  # class by class, a fixed order
            change = coupon_change[..., j] if not grouped else coupon_change[:, :, None, j]
            columns["interest"] = columns["interest"] + np.round(change * a[..., _F_FLOAT + j])
    columns["recovery"], pending = book_recoveries(columns["default_par"] - columns["loss"], lag, month_axis=1)
    return from_cents(stack_pool(columns)), from_cents(pending)


# ---------------------------------------------------------------------------- public API
def _check_chunk_args(book: LoanBook, scenario_ids: object, seed: object, n_months: object) -> tuple[np.ndarray, int, int]:
    if not isinstance(book, LoanBook):
        raise ConfigError(f"book must be a LoanBook (see LoanBook.from_tape), got {type(book).__name__}")
    check_exact_range(float(book.balance.sum()))
    ids = np.atleast_1d(np.asarray(scenario_ids))
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or (ids < 0).any():
        raise ConfigError(f"scenario_ids must be a 1-D array of non-negative integers, got {scenario_ids!r}")
    seed_i = check_positive_int(seed, "seed", minimum=0)
    months = check_positive_int(n_months, "n_months")
    return ids.astype(np.int64), seed_i, months


def simulate_pool_chunk(
    book: LoanBook,
    matrices: object,
    scenario_ids: object,
    seed: int,
    n_months: int,
    *,
    loan_chunk: int = 4096,
    group_by: object | None = None,
    device: str | torch.device = "cpu",
    max_risk_bins: int = 32,
    return_pending: bool = False,
    recovery_scale: np.ndarray | None = None,
    index_shift: np.ndarray | None = None,
    index_level: np.ndarray | None = None,
    history: dict | None = None,
    validated: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pool cashflows of a slice of scenarios, sampled from transition matrices.

    Args:
        book: loan terms (:class:`LoanBook`).
        matrices: ``(7, 7)``, ``(C, 7, 7)``, ``(s, T_m, 7, 7)`` or ``(s, C, T_m, 7, 7)`` monthly
            transition matrices for THIS slice (``s = len(scenario_ids)``; ``T_m >= n_months`` or 1).
            A 3-D input is always ``(C, 7, 7)`` with ``C = len(book.cohort_labels)`` (else ConfigError;
            a month-varying set shared by all scenarios is ``(1, T_m, 7, 7)``).
            Validated: stochastic rows, forbidden moves exactly 0 (unless ``validated``). Loan risk shifts
            are applied per risk bin (:func:`creditsim.transitions.sampler.risk_bins`).
        scenario_ids: ``(s,)`` GLOBAL scenario ids; each scenario's random stream depends only on
            (seed, scenario id, fixed loan block), so results do not depend on chunking.
        seed: root seed (int >= 0).
        n_months: horizon T.
        loan_chunk: loans processed at once (rounded up to a multiple of the RNG block, 1024). Working
            memory is about ``s * loan_chunk * 70`` bytes (e.g. 0.3 GB for 1,000 x 4,096) plus the
            month tables (``loan_chunk * 2.4`` kB), independent of the horizon and of the number of
            scenarios outside the chunk.
        group_by: None, ``"asset_class"``, ``"cohort"``, ``"amortization"`` or ``(L,)`` labels.
        device: torch device for the tables and the state loop. The pool-only path runs the fused
            kernel there (CPU: numba threads; CUDA: one GPU thread per scenario and RNG block, the
            uniforms drawn on the device), the same numbers on either.
        return_pending: also return recoveries still pending at the horizon.
        recovery_scale: optional ``(s, L)`` factor on each loan's recovered share ``1 - LGD`` in each
            scenario (the collateral channel, :func:`creditsim.loans.collateral.recovery_scale`); the
            LGD draws themselves (and every other random number) are unchanged.
        index_shift: optional ``(s, n_months)`` change of the floating-rate index since the cut-off
            (annual decimal, e.g. the policy-rate path minus its month-0 value): floating loans
            (``book.floating``) pay interest at their cut-off coupon plus it (module docstring,
            "Floating coupons"; floors, caps and resets: :mod:`creditsim.loans.floating`); states,
            principal and every random number are unchanged.
        index_level: ``(s,)`` index at the cut-off (annual decimal), needed when the book has index
            floors or caps.
        history: a dict the caller keeps across the chunks of one book, horizon and loan chunk: each loan
            block's contractual history (:func:`contractual_history`, ``(L_b, T + 4)`` whole cents twice)
            is built by the first chunk and reused by the others (a tenth of a second per chunk on 10k
            loans x 60 months; about 16 bytes per loan-month held). None: built per chunk.
        validated: the caller vouches for the checks (a float64 array that passed
            :func:`~creditsim.transitions.sampler.validate_matrices`, or is stochastic by construction):
            :class:`~creditsim.risk.pool_engine.PoolEngine`, which checks its transition model's output and
            derives the rated and refinancing cohorts from it, so the whole chunk is not checked again.

    Returns:
        ``(s, T, K)`` float64 pool cashflows in :data:`POOL_CF_TYPES` order (``(s, T, G, K)`` when
        grouped); with ``return_pending`` a tuple ``(cashflows, pending (s,) or (s, G))``.
    """
    ids, seed_i, months = _check_chunk_args(book, scenario_ids, seed, n_months)
    chunk = check_positive_int(loan_chunk, "loan_chunk")
    dev = torch_device(device)
    mats = _as_tensor(matrices, validated=validated)
    thresholds = _Thresholds(mats, book, len(ids), months, dev, max_risk_bins)
    groups, labels = (None, ()) if group_by is None else book.group_codes(group_by)
    n_groups = len(labels) if groups is not None else 1
    if recovery_scale is not None:
        recovery_scale = np.asarray(recovery_scale, dtype=np.float64)
        if recovery_scale.shape != (len(ids), book.n_loans) or not ((recovery_scale >= 0) & (recovery_scale <= 1)).all():
            raise DataError(f"recovery_scale: expected ({len(ids)}, {book.n_loans}) factors in [0, 1], got shape "
                            f"{recovery_scale.shape}")
    inv_coupon, coupon_change = floating_terms(book, index_shift, len(ids), months, index_level)
    blocks = _loan_blocks(book, ids, seed_i, chunk)
    threads = torch.get_num_threads()  # the caller's: the fused kernel's scenario threads
    runs = _run_blocks(lambda index, streams: _BlockRun(
        book, index, thresholds, streams, None, _lgd_draws(book, ids, seed_i, index, recovery_scale),
        months, dev, groups, n_groups, False, inv_coupon, threads, history=history), blocks, months)
    total = sum(run.sums for run in runs)
    cashflows, pending = _scatter_pool(total, book.recovery_lag, groups is not None, coupon_change)
    return (cashflows, pending) if return_pending else cashflows


def _run_blocks(make: Callable[[np.ndarray, BlockStreams], "_BlockRun"], blocks: list[tuple[np.ndarray, BlockStreams]],
                months: int) -> list["_BlockRun"]:
    """Build a block run per ``(loan index, streams)`` with ``make`` and step them all, month-major (each
    month's thresholds are built once for every block and then dropped), on one torch thread."""
    with serial_torch():
        runs = [make(index, streams) for index, streams in blocks]
        for t in range(months):
            for run in runs:
                run.step(t)
    return runs


def _loan_blocks(book: LoanBook, ids: np.ndarray, seed: int, chunk: int) -> list[tuple[np.ndarray, BlockStreams]]:
    """The loan blocks of a scenario chunk (``chunk`` loans rounded up to whole RNG blocks) with their
    random streams: ``[(loan index, streams), ...]`` in loan order."""
    blocks_per_chunk = max(1, -(-chunk // RNG_LOAN_BLOCK))
    blocks: list[tuple[np.ndarray, BlockStreams]] = []
    for first_block in range(0, -(-book.n_loans // RNG_LOAN_BLOCK), blocks_per_chunk):
        start = first_block * RNG_LOAN_BLOCK
        stop = min(book.n_loans, (first_block + blocks_per_chunk) * RNG_LOAN_BLOCK)
        index = np.arange(start, stop)
        n_blocks = -(-(stop - start) // RNG_LOAN_BLOCK)
        blocks.append((index, BlockStreams(seed, ids, range(first_block, first_block + n_blocks), stop - start)))
    return blocks


def _lgd_draws(book: LoanBook, ids: np.ndarray, seed: int, index: np.ndarray,
               recovery_scale: np.ndarray | None = None) -> LgdDraws:
    """The realised-LGD streams of the scenarios ``ids`` x the consecutive loans ``index`` of the book, with
    the collateral factors ``recovery_scale`` ``(s, L)`` (cut to ``index``) when given."""
    scale = None if recovery_scale is None else recovery_scale[:, index]
    return LgdDraws(seed, ids, int(index[0]) if len(index) else 0, book.lgd[index], book.lgd_concentration, scale)


@dataclass(frozen=True)
class MoveCounts:
    """Monte Carlo draws of the Markov engine kept in the form a likelihood-ratio reweighting needs
    (:func:`simulate_move_counts`).

    Attributes:
        flows: ``(s, T, G, F + 1)`` float64 whole cents per group: the tabulated flows (interest at the
            cut-off coupons, scheduled principal, prepayment, default par, balance, then one floating base
            per floating class when ``floating``) and the loss at the drawn LGDs (no collateral channel) last.
        moves: ``(s, T, G_seg, 4, 7)`` float32 counts of the sampled moves of live loans per segment,
            chain state ``x < 4`` and move ``y``: a draw's probability under matrices ``M`` is
            ``prod M_t[g, x, y] ** moves[t, g, x, y]`` (absorbed loan-months move with probability 1).
        group_labels: the groups' names (``()`` without ``group_by``: one group).
    """

    flows: torch.Tensor
    moves: torch.Tensor
    group_labels: tuple[str, ...]


def simulate_move_counts(book: LoanBook, matrices: object, scenario_ids: object, seed: int, n_months: int, *,
                         loan_chunk: int = 4096, group_by: object | None = None, floating: bool = False,
                         device: str | torch.device = "cpu", max_risk_bins: int = 32) -> MoveCounts:
    """The draws of :func:`simulate_pool_chunk` (same seed, scenario ids, matrices: the same states and
    LGDs) as :class:`MoveCounts`: per-group whole-cent flows and the count of every sampled move.

    The flows are kept before the channels that depend on the macro path (the floating coupon change
    and the collateral factor on recoveries), so a caller can apply them for another path, and the
    counts give each draw's likelihood under other matrices (:mod:`creditsim.risk.reweighted`).
    Segments are :class:`_Thresholds`' (cohort, risk bin) pairs, in the order of
    :func:`creditsim.loans.expected.segment_layout`. Runs the torch step (every loan-month sampled in
    full), several times slower than the pool path; ``floating`` tabulates the floating bases.
    """
    ids, seed_i, months = _check_chunk_args(book, scenario_ids, seed, n_months)
    chunk = check_positive_int(loan_chunk, "loan_chunk")
    dev = torch_device(device)
    thresholds = _Thresholds(_as_tensor(matrices), book, len(ids), months, dev, max_risk_bins)
    groups, labels = (None, ()) if group_by is None else book.group_codes(group_by)
    n_groups = len(labels) if groups is not None else 1
    base = floating_base(book) if floating else None
    inv_coupon = None if base is None else base[0]
    runs = _run_blocks(lambda index, streams: _BlockRun(
        book, index, thresholds, streams, None, _lgd_draws(book, ids, seed_i, index), months, dev, groups, n_groups,
        False, inv_coupon, count_moves=True), _loan_blocks(book, ids, seed_i, chunk), months)
    flows = sum(run.sums for run in runs)  # whole cents: exact in any order
    moves = sum(run.moves for run in runs)[..., :-1]  # counts below 2**24: exact in float32
    n_seg = moves.shape[-1] // _LIVE_MOVES
    return MoveCounts(flows, moves.reshape(len(ids), months, n_seg, N_LIVE_STATES, N_STATES), tuple(labels))


def floating_base(book: LoanBook) -> tuple[np.ndarray, FloatingClasses] | None:
    """``(inv_coupon (L, J), classes)``: ``1 / annual coupon`` of each paying floating loan in the column
    of its class (:mod:`creditsim.loans.floating`), or None when no floating loan pays a coupon."""
    classes = book.floating_classes()
    if classes is None:
        return None
    return classes.base_weights(book.monthly_rate), classes


def floating_terms(book: LoanBook, index_shift: np.ndarray | None, s: int, months: int,
                   index_level: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(inv_coupon (L, J), coupon change (s, T, J))`` of the floating classes, or ``(None, None)`` when
    nothing floats: :func:`floating_base` and :meth:`FloatingClasses.coupon_change` of the index path."""
    base = None if index_shift is None else floating_base(book)
    if base is None:
        return None, None
    shift = np.asarray(index_shift, dtype=np.float64)
    if shift.shape != (s, months) or not np.isfinite(shift).all():
        raise DataError(f"index_shift: expected ({s}, {months}) finite annual decimals (index minus its cut-off "
                        f"value), got shape {shift.shape}")
    level = None
    if index_level is not None:
        level = np.broadcast_to(np.asarray(index_level, dtype=np.float64), (s,))
        if not np.isfinite(level).all():
            raise DataError(f"index_level: expected {s} finite annual decimals (the index at the cut-off)")
        level = torch.from_numpy(np.array(level))  # a writable copy
    inv, classes = base
    change = classes.coupon_change(torch.from_numpy(shift), level)
    return inv, change.numpy()


def simulate_pool_cashflows(
    book: LoanBook,
    matrices: object | Callable[[np.ndarray], object],
    n_sims: int,
    seed: int,
    n_months: int,
    *,
    chunk_size: int = 1000,
    loan_chunk: int = 4096,
    group_by: object | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    on_chunk: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    keep: bool = True,
) -> PoolCashflows | None:
    """Pool cashflows of ``n_sims`` scenarios, streamed in scenario chunks (bounded memory).

    Args:
        matrices: one matrix set shared by all scenarios (``(7,7)`` / ``(C,7,7)``), an array whose
            first axis has ``n_sims`` scenarios (``(S, T, 7, 7)`` / ``(S, C, T, 7, 7)``, sliced per
            chunk), or a callable ``scenario_ids -> matrices`` for the chunk (e.g. generated by a model).
        chunk_size: scenarios per chunk; results are identical for any chunk size. The per-month loan
            tables are built once per chunk and loan block, so chunks of 500+ scenarios amortise them.
        progress: called as ``progress(done, n_sims)`` after each chunk.
        on_chunk: called as ``on_chunk(scenario_ids (s,), cashflows (s, T, [G,] K), pending (s, [G]))``
            after each chunk, to reduce results as they stream (e.g. tranche losses, quantiles).
        keep: keep the full result (default). ``keep=False`` (with ``on_chunk``) returns None and
            holds only one chunk at a time.

    Memory bound: the chunk working set (:func:`simulate_pool_chunk`: about
    ``chunk_size * loan_chunk * 70`` bytes, 0.3 GB at the defaults) plus, with ``keep``, the result,
    allocated once and filled chunk by chunk: ``n_sims * T * [G *] K * 8`` bytes (3.4 kB per scenario at
    T = 60, K = 7: 3.4 GB for a million scenarios). With ``keep=False`` the bound does not depend on
    ``n_sims`` at all.

    Returns:
        :class:`PoolCashflows` with ``(S, T, K)`` (or ``(S, T, G, K)``) cashflows; None if not ``keep``.
    """
    sims = check_positive_int(n_sims, "n_sims")
    size = check_positive_int(chunk_size, "chunk_size")
    if not isinstance(keep, (bool, np.bool_)):
        raise ConfigError(f"keep must be True or False, got {keep!r}")
    if on_chunk is not None and not callable(on_chunk):
        raise ConfigError(f"on_chunk must be a callable (scenario_ids, cashflows, pending) -> None, got {on_chunk!r}")
    if not keep and on_chunk is None:
        raise ConfigError("keep=False discards every result; pass on_chunk to reduce the chunks as they stream")
    per_scenario = None
    if not callable(matrices):
        arr = matrices if isinstance(matrices, (np.ndarray, torch.Tensor)) else np.asarray(matrices, dtype=np.float64)
        if arr.ndim >= 4:
            if arr.shape[0] != sims:
                raise DataError(f"matrices: first axis has {arr.shape[0]} scenarios, expected n_sims={sims}")
            per_scenario = arr
    out: np.ndarray | None = None
    pending: np.ndarray | None = None
    for start in range(0, sims, size):
        ids = np.arange(start, min(sims, start + size))
        if callable(matrices):
            mats = matrices(ids)
        elif per_scenario is not None:
            mats = per_scenario[start : start + len(ids)]
        else:
            mats = matrices
        cf, pend = simulate_pool_chunk(book, mats, ids, seed, n_months, loan_chunk=loan_chunk, group_by=group_by,
                                       device=device, return_pending=True)
        if on_chunk is not None:
            on_chunk(ids, cf, pend)
        if keep:
            if out is None:  # allocated once: peak = result + one chunk (not 2x the result)
                out = np.empty((sims,) + cf.shape[1:], dtype=cf.dtype)
                pending = np.empty((sims,) + pend.shape[1:], dtype=pend.dtype)
            out[start : start + len(ids)] = cf
            pending[start : start + len(ids)] = pend
        del cf, pend
        if progress is not None:
            progress(int(ids[-1]) + 1, sims)
    if not keep:
        return None
    if group_by is None:
        init: float | np.ndarray = book.initial_balance
        labels = None
    else:
        codes, labels = book.group_codes(group_by)
        init = np.bincount(codes, weights=book.balance, minlength=len(labels))
    return PoolCashflows(out, pending, init, labels)


def _loan_level(book: LoanBook, keep: dict[str, torch.Tensor], lgd: np.ndarray) -> LoanCashflows:
    states = keep["states"].cpu().numpy()
    flows = keep["flows"].cpu().numpy()  # whole cents
    par = flows[..., _F_PAR]
    loss = np.rint(par * lgd[:, :, None])  # whole cents, as the pool path books it
    recovery, pending = book_recoveries(par - loss, book.recovery_lag, month_axis=-1)
    return LoanCashflows(
        states=states,
        interest=from_cents(flows[..., _F_INTEREST]),
        scheduled_principal=from_cents(flows[..., _F_PRINCIPAL]),
        prepayment=from_cents(flows[..., _F_PREPAY]),
        recovery=from_cents(recovery),
        default_par=from_cents(par),
        loss=from_cents(loss),
        balance=from_cents(flows[..., _F_BALANCE]),
        pending_recovery=from_cents(pending),
        lgd=lgd,
        opening_balance=book.balance.copy(),
    )


def simulate_loan_level(
    book: LoanBook,
    matrices: object,
    scenario_ids: object,
    seed: int,
    n_months: int,
    *,
    device: str | torch.device = "cpu",
    max_risk_bins: int = 32,
) -> LoanCashflows:
    """Loan-level states and cashflows ``(s, L, T)`` for a small book, with the SAME random streams as
    :func:`simulate_pool_chunk` (so ``simulate_loan_level(...).pool()`` equals its output)."""
    ids, seed_i, months = _check_chunk_args(book, scenario_ids, seed, n_months)
    if len(ids) * book.n_loans * months > _MAX_LOAN_LEVEL:
        raise ConfigError(
            f"loan-level output of {len(ids)} x {book.n_loans} x {months} values is too large "
            f"(limit {_MAX_LOAN_LEVEL}); use simulate_pool_chunk or a book.subset(...)"
        )
    dev = torch_device(device)
    thresholds = _Thresholds(_as_tensor(matrices), book, len(ids), months, dev, max_risk_bins)
    index = np.arange(book.n_loans)
    n_blocks = -(-book.n_loans // RNG_LOAN_BLOCK)
    streams = BlockStreams(seed_i, ids, range(n_blocks), book.n_loans)
    lgd = _lgd_draws(book, ids, seed_i, index).all()
    with serial_torch():
        keep = _BlockRun(book, index, thresholds, streams, None, lgd, months, dev, None, 1, True).run_all()
    return _loan_level(book, keep, lgd)


def loan_cashflows(book: LoanBook, states: object, lgd: object | None = None, *, device: str | torch.device = "cpu") -> LoanCashflows:
    """Deterministic cashflows of given state paths.

    Args:
        states: ``(L, T)`` or ``(s, L, T)`` int states at the END of months 0..T-1 (the cut-off state is
            ``book.initial_state``). Moves must be allowed (:data:`ALLOWED_TRANSITIONS`); a path that
            stays CURRENT past maturity is relabelled MATURED, and entries after an absorbing state are
            ignored (the loan stays absorbed).
        lgd: realised LGD ``(L,)`` or ``(s, L)``; default the book's LGD assumption.

    Returns:
        :class:`LoanCashflows` with ``(s, L, T)`` arrays (s = 1 for a 2-D input).
    """
    paths = check_states(states, "states")
    if paths.ndim == 2:
        paths = paths[None]
    if paths.ndim != 3 or paths.shape[1] != book.n_loans:
        raise DataError(f"states: expected shape (L, T) or (s, L, T) with L={book.n_loans}, got {np.shape(states)}")
    s, n_loans, months = paths.shape
    prev = np.concatenate([np.broadcast_to(book.initial_state.astype(np.int64)[None, :, None], (s, n_loans, 1)), paths[:, :, :-1]], axis=2)
    # after an absorbing state the path is ignored, so only moves out of live states are checked
    ok = ALLOWED_TRANSITIONS[prev, paths] | (np.maximum.accumulate(prev >= 4, axis=2))
    if not ok.all():
        pos = np.argwhere(~ok)
        desc = [f"(scenario {a}, loan {book.loan_id[b]}, month {c}: {prev[a, b, c]}->{paths[a, b, c]})" for a, b, c in pos[:10]]
        raise DataError(f"states: forbidden moves at {format_labels(desc)}; see creditsim.states.ALLOWED_TRANSITIONS")
    try:
        lgd_raw = np.asarray(book.lgd if lgd is None else lgd, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"lgd: expected realised LGD decimals, got {lgd!r:.80}") from exc
    if lgd_raw.shape not in ((), (n_loans,), (s, n_loans)):
        raise DataError(f"lgd: expected a scalar, ({n_loans},) or ({s}, {n_loans}) realised LGDs, got shape {lgd_raw.shape}")
    lgd_arr = np.broadcast_to(lgd_raw, (s, n_loans)).copy()
    if not ((lgd_arr >= 0) & (lgd_arr <= 1)).all():
        raise DataError("lgd: realised LGDs must be decimals in [0, 1]")
    dev = torch_device(device)
    index = np.arange(n_loans)
    with serial_torch():
        keep = _BlockRun(book, index, None, None, torch.from_numpy(paths).to(dev), lgd_arr, months, dev, None, 1,
                         True).run_all()
    return _loan_level(book, keep, lgd_arr)
