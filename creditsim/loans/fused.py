"""Fused month kernel of the pool-only Markov engine (numba, CPU).

The engine's torch month step (``_month_step_pool`` in :mod:`creditsim.loans.engine`) makes about ten passes over
``(scenario, loan)`` arrays per month -- draw the uniforms in numpy, copy them, gather the "stay
CURRENT" thresholds, compare, a matrix product for the quiet loans, ``nonzero``, gathers and a
scatter-add for the others -- and moves about 70 bytes per loan-month. This kernel does the same
month in one pass per (scenario, RNG loan block): it continues each block's SFC64 stream itself
(:meth:`BlockStreams.sfc64_states`), so a loan-month costs one 32-bit draw, one threshold read and
a comparison when the loan stays CURRENT, and the month's flows are accumulated into the pool sums
as they are found. Absorbed loans still consume their uniform (the streams are fixed by the loan's
position, not by its state) but nothing else.

Same numbers as the torch path, bit for bit (tests check it on books with floating loans, groups,
arrears at the cut-off and per-scenario matrices):

- the uniforms are numpy's ``Generator(SFC64).random(dtype=float32)``: ``(next_uint32 >> 8) * 2**-24``,
  where ``next_uint32`` hands out the low then the high half of each 64-bit output;
- the flows, next states and cash states follow :class:`~creditsim.loans.engine.MonthTables`' rules,
  recomputed per move from a compact window of the same contractual history (:func:`month_window`,
  :func:`add_event`) instead of read from its 49-row tables (a cache miss per move); the tests hold the
  two to the same numbers, so a change to the rules must be made in both;
- every sum is of whole cents held in float64, so it is exact and its order cannot matter
  (engine module docstring, "Exact pool sums"); the loss is ``rint(LGD x default_par)`` per loan
  (``rint`` rounds half to even, as ``torch.round``), its LGD drawn in the kernel when the loan
  defaults (:mod:`creditsim.loans.lgd_draws`): only the defaults' LGDs are ever drawn.

Scenarios run in parallel (``numba.prange``) on as many threads as the caller's torch thread count:
each scenario's sums are written by one thread only, so the count changes nothing but the time. With
one thread the serial build runs (:func:`pool_month_serial`): no OpenMP pool, so the process can still
fork and processes side by side do not oversubscribe the cores. The serial kernels release the GIL
(``nogil``), so chunks run side by side on Python threads (:class:`creditsim.risk.backends.LocalBackend`)
overlap in them.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from creditsim.loans.lgd_draws import LgdDraws, stressed_draw
from creditsim.transitions.sampler import RNG_LOAN_BLOCK, BlockStreams

__all__ = ["FusedMonths", "add_event", "add_quiet", "draw_uniform", "loan_stay", "month_body", "month_thresholds",
           "month_window", "pool_month", "pool_month_serial", "sfc64_uniforms"]

_U1, _U3, _U8, _U11, _U24, _U32, _U40 = (np.uint64(k) for k in (1, 3, 8, 11, 24, 32, 40))
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_M24 = np.float32(1.0 / 16777216.0)


@njit(cache=True, inline="always")
def draw_uniform(a, b, cc, w, has, half):  # pragma: no cover - compiled
    """One float32 uniform of an SFC64 stream: ``(a, b, c, counter, has_uint32, uinteger)`` -> the
    advanced tuple + the uniform. numpy's ``next_uint32`` hands out the low half of a 64-bit output
    and keeps the high half for the next call; the float is ``(next_uint32 >> 8) * 2**-24``."""
    if has != 0:
        return a, b, cc, w, np.uint64(0), half, np.float32(half >> _U8) * _TWO_M24
    tmp = a + b + w
    return (b ^ (b >> _U11), cc + (cc << _U3), ((cc << _U24) | (cc >> _U40)) + tmp, w + _U1, _U1,
            tmp >> _U32, np.float32((tmp & _LOW32) >> _U8) * _TWO_M24)


@njit(cache=True, nogil=True)
def month_window(cb, ci, m, t, inv_coupon, loan_group, window, current):  # pragma: no cover - compiled
    """Each loan's contractual balance and cumulative interest around month ``t``, compact.

    ``window[l, 0, k]`` / ``window[l, 1, k]`` = ``cb`` / ``ci`` (cents, :func:`contractual_history`) at
    paid-through index ``p = tau - 4 + k`` (``tau = min(m, t)``; k = 0..4 covers every ``p`` a month
    can read: the paid-through index before the month, ``tau - 1 - c`` or ``tau - c``, after it, and
    ``tau`` itself). ``current`` ``(G * F, L_b)``: each loan's CURRENT -> CURRENT flows (interest,
    principal, 0, 0, balance, floating bases, as :class:`MonthTables` tabulates them) in its group's
    rows ``g * F .. g * F + F - 1``; only those rows are written, so the caller zeroes ``current`` once
    (the other groups' rows, and rows 2-3, stay 0: a loan's group never changes).
    """
    nj = inv_coupon.shape[1]
    nf = 5 + nj
    for loan in range(cb.shape[0]):
        tau = min(m[loan], t)
        for k in range(5):
            window[loan, 0, k] = cb[loan, tau + k]  # column p + 4 of the history (p >= -4 here)
            window[loan, 1, k] = ci[loan, tau + k]
        kp = min(m[loan], t - 1) - tau + 4
        interest = window[loan, 1, 4] - window[loan, 1, kp]
        r = loan_group[loan] * nf
        current[r, loan] = interest
        current[r + 1, loan] = window[loan, 0, kp] - window[loan, 0, 4]
        current[r + 4, loan] = window[loan, 0, 4]
        for jj in range(nj):
            current[r + 5 + jj, loan] = np.rint(interest * inv_coupon[loan, jj])


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def add_quiet(acc, quiet, current, first, n):  # pragma: no cover - compiled
    """``acc[g, f] += sum_k quiet[k] * current[g * F + f, first + k]`` for ``k < n``.

    Reassociation is allowed (the sums vectorise) because every term is a whole number of cents in
    float64 and every partial sum stays below 2**53 (:func:`creditsim.cents.check_exact_range`): the
    result is exact, so it is the same in any order.
    """
    nf = acc.shape[1] - 1
    for r in range(current.shape[0]):
        if r % nf == 2 or r % nf == 3:  # a quiet month books no default or recovery: month_window leaves them 0
            continue
        tot = 0.0
        row = current[r, first:first + n]  # a contiguous 1-D view: the loop vectorises
        for k in range(n):
            tot += quiet[k] * row[k]
        acc[r // nf, r % nf] += tot


@njit(cache=True, inline="always")
def add_event(acc, g, nf, window, loan, t, ml, c, y, inv_coupon):  # pragma: no cover - compiled
    """Add the flows of one sampled move ``c -> y`` in month ``t`` of live ``loan`` (maturity month
    ``ml``) to ``acc[g, :nf]``; return ``(next chain state, next cash state, default par)`` (rules:
    :class:`MonthTables`; the par is 0 unless the move is a default, whose loss the caller books with
    the loan's LGD). Also compiled for the GPU (:mod:`creditsim.loans.fused_cuda`), so it calls nothing
    but builtins: ``round`` is half-to-even on both targets (``llrint`` on CUDA), as ``torch.round``; the
    values are whole cents far below 2**63."""
    kp = min(ml, t - 1) - min(ml, t) + 4 - c  # window index of the paid-through payment before the month
    matured = t >= ml
    paying, default, payoff = y < 4, y == 4, y > 4
    # one sequence for every move, the cases chosen by selects, not branches: the move is random, and a
    # mispredicted branch per event cost more than the event's own arithmetic. A default reads kn = kp
    # (no interest, no principal), a payoff kn = 4 (the rest of the schedule); the flows a move does not
    # have are added as +0.0, which leaves the whole-cent sums' bits as they were
    kn = max(kp, 4 - y) if paying else (kp if default else 4)
    interest = window[loan, 1, kn] - window[loan, 1, kp]
    acc[g, 1] += window[loan, 0, kp] - window[loan, 0, kn]
    acc[g, 4] += window[loan, 0, kn] if paying else 0.0
    acc[g, 2] += window[loan, 0, 4] if payoff else 0.0
    par = window[loan, 0, kp] if default else 0.0
    acc[g, 3] += par
    acc[g, 0] += interest
    for jj in range(inv_coupon.shape[1]):
        acc[g, 5 + jj] += float(round(interest * inv_coupon[loan, jj]))
    end = 6 if matured else (5 if payoff else 0)  # CURRENT in the maturity month is MATURED
    nxt = y if (paying and y > 0) or default else end
    cash = min(c + (1 if t <= ml else 0), y)  # an instalment falls due up to maturity
    return nxt, cash if nxt < 4 else nxt, par


@njit(cache=True, nogil=True)
def loan_stay(t, m, row_base, stay_current, out):  # pragma: no cover - compiled
    """``out[l]`` = the threshold below which loan ``l``'s uniform keeps it CURRENT in month ``t``:
    ``stay_current`` at its state-0 row ``row_base[l]``, or -1 (never) in its maturity month."""
    for loan in range(out.shape[0]):
        out[loan] = stay_current[row_base[loan]] if m[loan] != t else np.float32(-1.0)


@njit(cache=True, nogil=True)
def month_thresholds(m, t, seg_cohort, absorbed, thr, stay):  # pragma: no cover - compiled
    """Month ``t``'s sampling thresholds, as :class:`creditsim.loans.engine._Thresholds` lays them out.

    Args:
        m: ``(s_m, C, T_m, 7, 7)`` stochastic matrices (float64 or float32); row ``(i, g, r)`` of the
            output reads ``m[i, seg_cohort[g], t, r]``.
        seg_cohort: ``(G,)`` int64 cohort of each segment; absorbed ``(3, 6)`` float32 the unit rows'
            thresholds (:data:`~creditsim.transitions.sampler.ABSORBED_THRESHOLDS`).
        thr: ``(6, s_m * G * 7)`` float32, set to :func:`~creditsim.transitions.sampler.cumulative_thresholds`
            of each row, transposed; stay ``(s_m * G * 7,)`` float32, set to row 0's first threshold
            (CURRENT stays CURRENT below it) and -1 for the other rows.

    The same numbers as the torch path, bit for bit: the cumulative sum adds each row's entries left
    to right in float64 (as torch's CPU ``cumsum`` does), every threshold from the row's last positive
    entry on is 2.0, and the float32 cast rounds to nearest. One pass instead of ~10 torch ops on
    ``(s, G, 7, 7)`` arrays a month (a tenth of ``simulate``'s time outside the kernel)."""
    n_seg = seg_cohort.shape[0]
    for i in range(m.shape[0]):
        for g in range(n_seg):
            base = (i * n_seg + g) * 7
            c = seg_cohort[g]
            for r in range(4):
                last = 0
                for j in range(7):
                    if m[i, c, t, r, j] > 0:
                        last = j
                cum = 0.0
                for j in range(6):
                    cum += np.float64(m[i, c, t, r, j])
                    thr[j, base + r] = np.float32(2.0) if j >= last else np.float32(cum)
                stay[base + r] = thr[0, base + r] if r == 0 else np.float32(-1.0)
            for r in range(4, 7):
                for j in range(6):
                    thr[j, base + r] = absorbed[r - 4, j]
                stay[base + r] = np.float32(-1.0)


@njit(cache=True, inline="always")
def month_body(t, x, c, row_base, thresholds, stay_current, shared_stay, window, current, m, inv_coupon, lgd_key,
               sids, first_loan, lgd_mean, kappa, lgd_scale, loan_group, words, buffered, widths, block,
               out):  # pragma: no cover - compiled
    """One month ``t`` of an ``(s, L_b)`` scenario x loan block, pool sums only.

    Args:
        x, c: ``(s, L_b)`` int32 chain and cash states, updated in place.
        row_base: ``(s, L_b)`` int32 threshold row of state 0 per (scenario, loan).
        thresholds: ``(6, n_rows)`` float32 cumulative thresholds; stay_current ``(n_rows,)`` float32.
        shared_stay: ``(1, L_b)`` float32 :func:`loan_stay` of month ``t`` when every scenario reads the
            same rows (``row_base[i] == row_base[0]``), else ``(0, L_b)``: computed per scenario here.
        window, current: the month's :func:`month_window` (``current`` ``(G * F, L_b)``); m ``(L_b,)``
            int64 maturity months;
            inv_coupon ``(L_b, J)`` float64 (``J = 0`` without floating bases).
        lgd_key, sids, first_loan, lgd_mean, kappa, lgd_scale: a default's realised LGD, drawn when it
            happens (:func:`creditsim.loans.lgd_draws.stressed_draw`: the run's ``(2,)`` uint64 key, ``(s,)``
            global scenario ids, the block's first book position, ``(L_b,)`` LGD assumptions, the
            concentration, ``(s, L_b)`` collateral factors or ``(0, 0)``); loan_group ``(L_b,)`` int64.
        words, buffered: ``(s, n_blocks, 4)`` / ``(s, n_blocks, 2)`` uint64 SFC64 states, advanced in
            place; widths ``(n_blocks,)`` loans per block; block = loans per full block (1,024).
        out: ``(s, G, F + 1)`` float64, set to the whole-cent sums (F = 5 + J flows, then the loss).

    A block's month is three loops. The first classifies every loan without a branch: only CURRENT
    (state 0) rows have a stay threshold (``stay_current`` is -1 elsewhere, and a uniform is >= 0), so
    "quiet" (CURRENT -> CURRENT, not maturing) is ``x == 0 and u < stay``, and an event is any other
    live loan. Absorbed and live loans interleave at random, so a branch on the state is mispredicted
    about as often as not (it cost ~2 ns per loan-month at mid-life); the classification vectorises
    instead. The second lists the events (a few per cent of loan-months); the third samples and books
    them.
    """
    s = x.shape[0]
    n_thr = thresholds.shape[0]
    nf = out.shape[2] - 1
    per_scenario = shared_stay.shape[0] == 0
    for i in prange(s):
        acc = np.zeros((out.shape[1], out.shape[2]))  # private to the scenario's thread
        u = np.empty(block, dtype=np.float32)
        quiet = np.empty(block)
        is_event = np.empty(block, dtype=np.uint8)
        events = np.empty(block, dtype=np.int64)
        own_stay = np.empty(x.shape[1] if per_scenario else 0, dtype=np.float32)
        if per_scenario:
            loan_stay(t, m, row_base[i], stay_current, own_stay)
            stay = own_stay
        else:
            stay = shared_stay[0]
        for j in range(widths.shape[0]):
            # draw the block's month first: the tight generator loop keeps its state in registers
            a, b, cc, w = words[i, j, 0], words[i, j, 1], words[i, j, 2], words[i, j, 3]
            has, half = buffered[i, j, 0], buffered[i, j, 1]
            for k in range(widths[j]):
                a, b, cc, w, has, half, u[k] = draw_uniform(a, b, cc, w, has, half)
            words[i, j, 0], words[i, j, 1], words[i, j, 2], words[i, j, 3] = a, b, cc, w
            buffered[i, j, 0], buffered[i, j, 1] = has, half
            first, n = j * block, widths[j]
            xb = x[i, first:first + n]
            sb = stay[first:first + n]
            for k in range(n):  # absorbed loans (x >= 4) are neither: their uniform is drawn all the same
                xs = xb[k]
                q = (xs == 0) & (u[k] < sb[k])
                quiet[k] = np.float64(q)  # the scheduled instalment, summed by add_quiet
                is_event[k] = np.uint8((xs < 4) & (not q))
            n_events = 0
            for k in range(n):  # written every time, counted when an event: no branch
                events[n_events] = k
                n_events += np.int64(is_event[k])
            for e in range(n_events):
                k = events[e]
                loan = first + k
                row = row_base[i, loan] + xb[k]
                y = 0
                for q in range(n_thr):
                    if u[k] >= thresholds[q, row]:
                        y += 1
                g = loan_group[loan]
                x[i, loan], c[i, loan], par = add_event(acc, g, nf, window, loan, t, m[loan], c[i, loan], y,
                                                        inv_coupon)
                if par > 0.0:  # a default: its LGD is drawn now, from the (scenario, loan) stream
                    lgd = stressed_draw(lgd_key[0], lgd_key[1], sids[i], first_loan + loan, lgd_mean[loan], kappa,
                                        lgd_scale, i, loan)
                    acc[g, nf] += float(round(par * lgd))
            add_quiet(acc, quiet, current, first, n)
        out[i] = acc


@njit(cache=True, parallel=True)
def pool_month(t, x, c, row_base, thresholds, stay_current, shared_stay, window, current, m, inv_coupon, lgd_key,
               sids, first_loan, lgd_mean, kappa, lgd_scale, loan_group, words, buffered, widths, block,
               out):  # pragma: no cover - compiled
    """:func:`month_body` with its scenarios split over numba's threads (``prange``)."""
    month_body(t, x, c, row_base, thresholds, stay_current, shared_stay, window, current, m, inv_coupon, lgd_key,
               sids, first_loan, lgd_mean, kappa, lgd_scale, loan_group, words, buffered, widths, block, out)


@njit(cache=True, nogil=True)
def pool_month_serial(t, x, c, row_base, thresholds, stay_current, shared_stay, window, current, m, inv_coupon,
                      lgd_key, sids, first_loan, lgd_mean, kappa, lgd_scale, loan_group, words, buffered, widths,
                      block, out):  # pragma: no cover - compiled
    """:func:`month_body` on the calling thread alone (``prange`` is ``range`` here): no OpenMP pool is
    started, so a process that runs it can still ``fork`` (GNU OpenMP kills forked children of a process
    that used it) and side-by-side processes do not oversubscribe the cores."""
    month_body(t, x, c, row_base, thresholds, stay_current, shared_stay, window, current, m, inv_coupon, lgd_key,
               sids, first_loan, lgd_mean, kappa, lgd_scale, loan_group, words, buffered, widths, block, out)


@njit(cache=True, nogil=True)
def sfc64_uniforms(words, buffered, n):  # pragma: no cover - compiled
    """``n`` float32 uniforms of one SFC64 stream (``words (4,)``, ``buffered (2,)`` advanced in place),
    drawn exactly as :func:`pool_month` draws them: the check that it matches numpy's generator."""
    out = np.empty(n, dtype=np.float32)
    a, b, cc, w = words[0], words[1], words[2], words[3]
    has, half = buffered[0], buffered[1]
    for k in range(n):
        a, b, cc, w, has, half, out[k] = draw_uniform(a, b, cc, w, has, half)
    words[0], words[1], words[2], words[3] = a, b, cc, w
    buffered[0], buffered[1] = has, half
    return out


class FusedMonths:
    """The month loop of one (scenario chunk x loan block) on the fused kernel, pool sums only.

    Holds what does not change from month to month: the streams' SFC64 states (taken over from
    ``streams``, whose Python generators are not used again), the loans' contractual history ``cb`` /
    ``ci`` ``(L_b, T + 4)`` whole cents, maturity months ``m`` ``(L_b,)``, the floating bases'
    ``inv_coupon`` ``(L_b, J)`` (None: J = 0), ``loan_group`` ``(L_b,)`` of ``n_groups`` groups, the
    realised-LGD streams ``lgd`` (:class:`~creditsim.loans.lgd_draws.LgdDraws`: a default's LGD is drawn
    in the kernel when it happens), and the month window's buffers;
    ``threads``: numba threads the scenarios are split over (capped at numba's pool; the numbers do not
    depend on it); ``shared_rows``: every scenario reads the same threshold rows (matrices that do not
    vary by scenario), so each month's stay thresholds are looked up once for all of them (:func:`loan_stay`).
    """

    def __init__(self, streams: BlockStreams, lgd: LgdDraws, cb: np.ndarray, ci: np.ndarray, m: np.ndarray,
                 inv_coupon: np.ndarray | None, loan_group: np.ndarray, n_groups: int, threads: int = 1,
                 shared_rows: bool = False):
        self._threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
        self._words, self._buffered = streams.sfc64_states()
        self._widths = streams.widths
        self._lgd = lgd
        self._cb, self._ci, self._m = cb, ci, np.ascontiguousarray(m, dtype=np.int64)
        lb = cb.shape[0]
        self._inv = np.zeros((lb, 0)) if inv_coupon is None else np.ascontiguousarray(inv_coupon, dtype=np.float64)
        self._group = np.ascontiguousarray(loan_group, dtype=np.int64)
        self._window = np.empty((lb, 2, 5))
        self._current = np.zeros((n_groups * (5 + self._inv.shape[1]), lb))  # G * F rows, zeroed once
        self._stay = np.empty((1 if shared_rows else 0, lb), dtype=np.float32)

    def month_window(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(window (L_b, 2, 5), current (G * F, L_b))`` of month ``t`` (:func:`month_window`; reused
        buffers, valid until the next call)."""
        month_window(self._cb, self._ci, self._m, t, self._inv, self._group, self._window, self._current)
        return self._window, self._current

    def step(self, t: int, x: torch.Tensor, c: torch.Tensor, row_base: torch.Tensor, thresholds: torch.Tensor,
             stay_current: torch.Tensor, out: torch.Tensor) -> None:
        """Advance month ``t``: states ``x`` / ``c`` in place, ``out`` ``(s, G, F + 1)`` set to the sums
        (CPU tensors, shared with numpy without a copy; arguments as :func:`pool_month`)."""
        window, current = self.month_window(t)
        rows, stay_current = row_base.numpy(), stay_current.numpy()
        if self._stay.shape[0] and rows.shape[0]:  # an empty chunk has no rows to read
            loan_stay(t, self._m, rows[0], stay_current, self._stay[0])
        args = (t, x.numpy(), c.numpy(), rows, thresholds.numpy(), stay_current, self._stay, window, current,
                self._m, self._inv, *self._lgd.kernel_args(), self._group, self._words, self._buffered,
                self._widths, RNG_LOAN_BLOCK, out.numpy())
        if self._threads == 1:
            pool_month_serial(*args)
            return
        before = numba.get_num_threads()  # numba's count is per calling thread: set it for this call only
        numba.set_num_threads(self._threads)
        try:
            pool_month(*args)
        finally:
            numba.set_num_threads(before)

    def finish(self, sums: torch.Tensor) -> None:
        """Nothing left to book on the CPU: each default's loss went into its month's sums when it happened
        (the GPU kernel books them here, :class:`creditsim.loans.fused_cuda.FusedMonthsCuda`)."""
