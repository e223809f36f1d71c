"""Contractual amortisation schedules: annuity, linear, bullet and interest-only, monthly, vectorised.

All amounts are currency units rounded to the cent (as a servicer's schedule is); rates are monthly
decimals (annual coupon / 12 under 30/360). A schedule starts from ``balance`` with ``n_payments``
monthly payments left; payment ``j`` (1-based) falls ``j`` months after the start.

Amortisation types (codes in :data:`AMORTIZATION_CODES`):

- ``annuity``: constant payment ``B r / (1 - (1 + r)^-n)``; the balance after ``j`` payments is
  ``B ((1+r)^n - (1+r)^j) / ((1+r)^n - 1)`` (``B (1 - j/n)`` when ``r = 0``).
- ``linear``: constant principal ``B / n`` plus interest on the outstanding balance.
- ``bullet``: interest only every month, the whole principal with the last payment.
- ``interest_only``: interest only during the remaining interest-only period ``io_months``, then an
  annuity over the payments left (``io_months >= n - 1`` is a bullet).

Rounding: balances are the closed form rounded to the cent, interest is ``round(r x previous balance,
2)`` and principal is the difference of consecutive rounded balances, so every payment is cent-valued
and principal sums exactly to the starting balance (the final payment clears any residual).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from creditsim.errors import DataError, format_labels
from creditsim.schema import AMORTIZATION_TYPES

__all__ = ["AMORTIZATION_CODES", "Schedule", "amortization_schedule", "amortization_codes"]

#: integer code of each of the tape's amortisation types (:data:`creditsim.schema.AMORTIZATION_TYPES`): its position
AMORTIZATION_CODES: dict[str, int] = {name: i for i, name in enumerate(AMORTIZATION_TYPES)}


@dataclass(frozen=True)
class Schedule:
    """Contractual schedule of ``L`` loans over ``N`` payment columns.

    Attributes:
        balance: ``(L, N + 1)`` float64, balance after ``j`` payments (column 0 = starting balance;
            0 after the last payment).
        interest: ``(L, N)`` float64, interest of payment ``j + 1``.
        principal: ``(L, N)`` float64, principal of payment ``j + 1``.
    """

    balance: np.ndarray
    interest: np.ndarray
    principal: np.ndarray

    @property
    def payment(self) -> np.ndarray:
        """``(L, N)`` total scheduled payment (interest + principal)."""
        return self.interest + self.principal


def amortization_codes(types: object) -> np.ndarray:
    """Map amortisation type names (or codes 0..3) to int8 codes; DataError naming bad rows."""
    arr = np.asarray(types)
    if arr.dtype.kind in "iu":
        bad = np.flatnonzero((arr < 0) | (arr >= len(AMORTIZATION_TYPES)))
        if len(bad):
            raise DataError(f"amortization_type: codes must be 0..3 {list(AMORTIZATION_TYPES)}, bad rows {format_labels(bad)}")
        return arr.astype(np.int8)
    names = np.char.lower(np.char.strip(arr.astype(str)))
    out = np.full(names.shape, -1, dtype=np.int8)
    for name, code in AMORTIZATION_CODES.items():
        out[names == name] = code
    bad = np.flatnonzero(out < 0)
    if len(bad):
        raise DataError(
            f"amortization_type: rows {format_labels(bad)} have {format_labels(sorted(set(names[bad])))}; "
            f"expected one of {list(AMORTIZATION_TYPES)}"
        )
    return out


def _numbers(values: object, name: str) -> np.ndarray:
    """float64 array or a DataError naming the argument (not numpy's bare ValueError)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"amortization_schedule: {name} must be numbers, got {values!r:.80}") from exc


def _whole_numbers(values: object, name: str) -> np.ndarray:
    """int64 array of whole numbers; 12.5 payments is an error, never silently truncated to 12."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    f = _numbers(arr, name)
    bad = np.flatnonzero(np.atleast_1d(~np.isfinite(f) | (f != np.round(f))))
    if len(bad):
        raise DataError(
            f"amortization_schedule: {name} must be whole numbers of monthly payments; rows {format_labels(bad)} "
            f"have {format_labels(np.atleast_1d(f)[bad].tolist())}"
        )
    return f.astype(np.int64)


def _annuity_balance(balance: np.ndarray, rate: np.ndarray, n: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Closed-form annuity balance after ``j`` of ``n`` payments (broadcast), stable for tiny rates."""
    lr = np.log1p(rate)
    num = np.expm1(n * lr) - np.expm1(j * lr)
    den = np.expm1(n * lr)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rate > 0, num / np.where(den > 0, den, 1.0), 1.0 - j / n)
    return balance * ratio


def amortization_schedule(
    balance: np.ndarray,
    monthly_rate: np.ndarray,
    n_payments: np.ndarray,
    amortization: np.ndarray,
    io_months: np.ndarray | None = None,
    n_columns: int | None = None,
) -> Schedule:
    """Contractual monthly schedule of each loan, vectorised over loans.

    Args:
        balance: ``(L,)`` outstanding principal at the start, currency units, > 0.
        monthly_rate: ``(L,)`` monthly coupon, decimal (annual / 12).
        n_payments: ``(L,)`` int, monthly payments left (>= 1).
        amortization: ``(L,)`` int codes (:data:`AMORTIZATION_CODES`) or type names.
        io_months: ``(L,)`` int, interest-only payments left for ``interest_only`` loans (others
            ignore it); default 0 (plain annuity).
        n_columns: number of payments to tabulate (default ``max(n_payments)``); columns past a loan's
            last payment are zero. A smaller value truncates (the engine only needs the horizon).

    Returns:
        :class:`Schedule` with ``(L, n_columns + 1)`` balances and ``(L, n_columns)`` flows.
    """
    balance = _numbers(balance, "balance")
    rate = _numbers(monthly_rate, "monthly_rate")
    n = _whole_numbers(n_payments, "n_payments")
    code = amortization_codes(amortization)
    if balance.ndim != 1 or not (balance.shape == rate.shape == n.shape == code.shape):
        raise DataError(
            f"amortization_schedule: balance, monthly_rate, n_payments and amortization must be 1-D of equal "
            f"length, got {balance.shape}, {rate.shape}, {n.shape}, {code.shape}"
        )
    for label, bad in (
        ("balance", np.flatnonzero(~(balance > 0) | ~np.isfinite(balance))),
        ("monthly_rate", np.flatnonzero(~((rate >= 0) & (rate <= 1.0 / 12.0 + 1e-12)))),
        ("n_payments", np.flatnonzero(n < 1)),
    ):
        if len(bad):
            expected = {"balance": "finite balances > 0", "monthly_rate": "monthly decimals in [0, 1/12]", "n_payments": ">= 1 payment left"}
            raise DataError(f"amortization_schedule: {label} invalid at rows {format_labels(bad)}; expected {expected[label]}")
    io = np.zeros_like(n) if io_months is None else _whole_numbers(io_months, "io_months")
    io = np.where(code == AMORTIZATION_CODES["interest_only"], np.clip(io, 0, n - 1), 0)
    io = np.where(code == AMORTIZATION_CODES["bullet"], n - 1, io)
    n_cols = int(n.max()) if n_columns is None else int(n_columns)

    j = np.arange(n_cols + 1, dtype=np.float64)[None, :]  # payments made so far
    b0, r, nn = balance[:, None], rate[:, None], n[:, None].astype(np.float64)
    io_f = io[:, None].astype(np.float64)
    # annuity after the interest-only period (io = 0 for plain annuities)
    amort_n = nn - io_f
    amort_j = np.clip(j - io_f, 0.0, None)
    annuity = _annuity_balance(b0, r, amort_n, np.minimum(amort_j, amort_n))
    linear = b0 * (1.0 - np.minimum(j, nn) / nn)
    is_linear = (code == AMORTIZATION_CODES["linear"])[:, None]
    bal = np.where(is_linear, linear, annuity)
    bal = np.where(j >= nn, 0.0, np.round(bal, 2))
    bal[:, 0] = balance
    # a sub-cent starting balance must not round up: balances never increase
    bal = np.minimum.accumulate(bal, axis=1)
    interest = np.round(r * bal[:, :-1], 2)
    interest = np.where(j[:, 1:] <= nn, interest, 0.0)
    principal = bal[:, :-1] - bal[:, 1:]
    # a difference of two cent values carries float noise (4718.470000000001): re-round it to the cent the
    # cash is; only a sub-cent opening balance (column 0) keeps its exact difference
    whole = np.round(bal[:, :-1], 2) == bal[:, :-1]
    principal = np.where(whole, np.round(principal, 2), principal)
    return Schedule(balance=bal, interest=interest, principal=principal)
