"""The trajectory model's month ledger on the CPU: a month's moves and cash booked in one numba pass per path.

:class:`~creditsim.loans.trajectory._PathLedger` books each month of ``N`` generated paths: which paths
stay live, pay an instalment, default, prepay or mature, then interest, principal, prepayment, default
par, loss and balance from the contractual tables (the trajectory module's "Cashflows"). In torch that
is about 60 passes over ``(N,)`` tensors a month, most paths absorbed (62 % of the path-months on the
trajectory bench) and the result for them known: nothing moves. Here :func:`month_moves` and
:func:`settle_month` make one pass each, and an absorbed path costs a comparison.

The arithmetic is the torch ledger's, operation for operation in float64 (a ``torch.where`` is an
``if``; ``1.0 * x`` is ``x`` exactly), so the outputs are the same bits (the tests compare the two on
random ledgers, infinities and NaNs among them); numba contracts nothing into FMAs without ``fastmath``.
One exception: where both operands of a sum are NaN the two may keep the sign of a different one (IEEE
leaves it open), so a NaN output can differ in its sign bit. The torch ledger stays the reference and
runs on other devices and with ``fused_kernels`` off.
"""

from __future__ import annotations

from numba import njit

from creditsim.states import LoanState

__all__ = ["FLOWS", "month_moves", "settle_month"]

#: the ledger's flows, in the order of :func:`settle_month`'s ``flows`` axis
FLOWS = ("payments", "balances", "losses", "interest", "scheduled_principal", "prepayment", "default_par")

_DPD90, _DEFAULT = int(LoanState.DPD90), int(LoanState.DEFAULT)
_CUR, _PRE, _MAT = int(LoanState.CURRENT), int(LoanState.PREPAID), int(LoanState.MATURED)


@njit(cache=True, nogil=True)
def month_moves(t, state, new, paid, n_idx, live, due, stays, new_paid, performing,
                defaulted):  # pragma: no cover - compiled
    """Month ``t``'s moves of ``N`` paths from ``state`` to ``new`` (``(N,)`` int64) with ``paid`` payments
    settled and ``n_idx`` payments in the schedule: fills the ``(N,)`` outputs ``live``, ``stays``,
    ``performing``, ``defaulted`` (bool), ``due`` (payments due by the end of the month) and ``new_paid``
    (int64), as ``_PathLedger.moves``. A state code outside 0..6 raises ValueError (the cash pass would read
    past the schedules)."""
    for i in range(state.shape[0]):
        s, n = state[i], new[i]
        if n < 0 or n > _MAT or s < 0 or s > _MAT:
            raise ValueError("month_moves: a state code outside 0..6")
        d = t + 1 if t + 1 < n_idx[i] else n_idx[i]
        due[i] = d
        lv = s <= _DPD90
        st = lv and n <= _DPD90
        p = paid[i]
        np_ = p
        if st and d - n > p:
            np_ = d - n
        live[i] = lv
        stays[i] = st
        new_paid[i] = np_
        performing[i] = st and s == _CUR and n == _CUR and np_ > p
        defaulted[i] = lv and n == _DEFAULT


@njit(cache=True, nogil=True)
def settle_month(t, new, live, due, stays, new_paid, performing, defaulted, values, sbal, cum, cum_end, paid,
                 short, balance, lgd, flows, states):  # pragma: no cover - compiled
    """Book month ``t`` of ``N`` paths moving into ``new`` with the masks and counts of :func:`month_moves`
    and ``values`` ``(N, 2)`` (payment ratio, LGD), as ``_PathLedger.settle``.

    ``sbal``, ``cum`` ``(N, n_cols + 1)`` scheduled balance and cumulative interest after ``j`` payments,
    ``cum_end`` ``(N,)`` the schedule's whole interest. Updates ``paid`` (int64), ``short``, ``balance``,
    ``lgd`` (float64 ``(N,)``) in place; writes ``flows[k, t]`` (``flows`` ``(7, T, N)`` in :data:`FLOWS`
    order) and ``states[t]`` (int8).
    """
    for i in range(new.shape[0]):
        n = new[i]
        states[t, i] = n
        if not live[i]:  # absorbed before the month: no cash, the balance carries over, nothing owed
            flows[0, t, i] = 0.0
            flows[1, t, i] = balance[i]
            for k in range(2, 7):
                flows[k, t, i] = 0.0
            paid[i] = new_paid[i]
            short[i] = 0.0
            continue
        p, q = paid[i], new_paid[i]
        b_prev, b_new, c_paid = sbal[i, p], sbal[i, q], cum[i, p]
        sched_prin = b_prev - b_new
        sched_int = cum[i, q] - c_paid
        prin, intr = sched_prin, sched_int
        if performing[i]:
            prin = values[i, 0] * sched_prin
            intr = values[i, 0] * sched_int
        short_new = short[i] + (sched_prin - prin)
        exposure = b_prev + short[i]
        prepay = 0.0
        par = 0.0
        loss = 0.0
        if n == _PRE:
            to = p if p > due[i] else due[i]
            pre_prin = b_prev - sbal[i, to]
            intr = cum[i, to] - c_paid
            prin = pre_prin
            prepay = exposure - pre_prin
        elif n == _MAT:
            intr = cum_end[i] - c_paid
            prin = exposure
        elif not stays[i]:
            intr = 0.0
            prin = 0.0
        if defaulted[i]:
            par = exposure
            loss = values[i, 1] * par
            lgd[i] = values[i, 1]
        new_balance = b_new + short_new if stays[i] else 0.0
        flows[3, t, i] = intr
        flows[4, t, i] = prin
        flows[5, t, i] = prepay
        flows[0, t, i] = (intr + prin) + prepay
        flows[6, t, i] = par
        flows[2, t, i] = loss
        flows[1, t, i] = new_balance
        paid[i] = q
        short[i] = short_new if stays[i] else 0.0
        balance[i] = new_balance
