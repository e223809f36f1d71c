"""Loan cashflows -> pool cashflows: the one aggregation every path uses, with one recovery convention.

Used by the Markov cashflow engine (:mod:`creditsim.loans.engine`, which sums inside its month loop and
calls :func:`book_recoveries` / :func:`stack_pool` on the sums), the trajectory path
(:meth:`LoanTrajectoryModel.pool_cashflows <creditsim.loans.trajectory.LoanTrajectoryModel.pool_cashflows>`,
:class:`~creditsim.risk.pool_engine.PoolEngine`) and
:meth:`PortfolioAggregator.aggregate_cashflows <creditsim.risk.aggregator.PortfolioAggregator.aggregate_cashflows>`.

Conventions (``shared/docs/WATERFALL.md``):

- **Recoveries** of a default in month ``t`` are ``default_par - loss`` (the recoverable part at the
  realised LGD) and arrive as cash in month ``t + recovery_lag``; those due after the horizon are
  reported as ``pending`` and are not pool cash of the simulated months. The loss is recognised in
  the month of default.
- **Column order** is :data:`creditsim.states.POOL_CF_TYPES` (interest, scheduled_principal,
  prepayment, recovery, default_par, loss, balance): the last axis of every pool array.
- **Exact sums**: amounts are rounded to whole cents before they are summed over loans
  (:mod:`creditsim.cents`), so the pool does not depend on the loans' order, chunking or kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from creditsim.cents import from_cents, to_cents
from creditsim.errors import ConfigError, DataError
from creditsim.states import POOL_CF_TYPES

__all__ = ["DEFAULT_RECOVERY_LAG", "LOAN_FLOWS", "PoolFlows", "book_recoveries", "stack_pool", "pool_cashflows",
           "check_recovery_lag"]

#: months from default to recovery cash unless a book or caller says otherwise
DEFAULT_RECOVERY_LAG = 12

#: the loan-level flows a pool is built from (the recovery column is derived from them)
LOAN_FLOWS: tuple[str, ...] = ("interest", "scheduled_principal", "prepayment", "default_par", "loss", "balance")


@dataclass
class PoolFlows:
    """Pool cashflows of ``S`` scenarios over ``T`` months.

    Attributes:
        cashflows: ``(S, T, 7)`` float64 currency units, last axis in POOL_CF_TYPES order.
        pending_recovery: ``(S,)`` recoveries of defaults inside the horizon that are due after it.
    """

    cashflows: np.ndarray
    pending_recovery: np.ndarray


def book_recoveries(recoverable: np.ndarray, lag: int, month_axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Recovery cash ``lag`` months after default, and what falls past the horizon.

    Args:
        recoverable: ``default_par - loss`` by month of default, any shape with the month axis at
            ``month_axis`` (whole cents or currency units; the shift is exact either way).
        lag: months from default to recovery cash, >= 0.
        month_axis: the month axis of ``recoverable``.

    Returns:
        ``(recovery, pending)``: ``recovery`` has the shape of ``recoverable`` (month ``t`` holds the
        recoverable amount of month ``t - lag``); ``pending`` drops the month axis and sums the
        recoverable amounts of the last ``lag`` months.
    """
    if lag < 0:
        raise DataError(f"recovery_lag: expected months >= 0, got {lag}")
    r = np.moveaxis(np.asarray(recoverable, dtype=np.float64), month_axis, 0)
    n_months = r.shape[0]
    recovery = np.zeros_like(r)
    if lag < n_months:
        recovery[lag:] = r[: n_months - lag]
    pending = r[max(n_months - lag, 0):].sum(axis=0)
    return np.moveaxis(recovery, 0, month_axis), pending


def stack_pool(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Named ``(..., T)``-shaped pool columns -> one ``(..., T, 7)`` array in POOL_CF_TYPES order."""
    missing = [k for k in POOL_CF_TYPES if k not in columns]
    if missing:
        raise DataError(f"pool columns: missing {missing}; expected {list(POOL_CF_TYPES)}")
    return np.stack([np.asarray(columns[k], dtype=np.float64) for k in POOL_CF_TYPES], axis=-1)


def pool_cashflows(flows: Mapping[str, np.ndarray], recovery_lag: int | np.ndarray = DEFAULT_RECOVERY_LAG) -> PoolFlows:
    """Sum loan-level cashflows to the pool and book the recoveries after the lag.

    Args:
        flows: the :data:`LOAN_FLOWS` arrays, each ``(S, L, T)`` currency units per loan and month
            (``balance`` at the end of the month). Torch tensors are accepted (moved to the CPU). An
            optional ``recovery`` entry is taken as the recovery cash as is (already lagged by the
            caller); then ``recovery_lag`` is not used and nothing is pending.
        recovery_lag: months from default to recovery cash, an int for the whole pool or ``(L,)``
            per loan.

    Returns:
        :class:`PoolFlows` with ``(S, T, 7)`` cashflows and ``(S,)`` pending recoveries.
    """
    missing = [k for k in LOAN_FLOWS if k not in flows]
    if missing:
        raise DataError(f"loan flows: missing {missing}; expected {list(LOAN_FLOWS)} of shape (S, L, T)")
    cents = {k: to_cents(_numpy(flows[k])) for k in LOAN_FLOWS}
    shape = cents["balance"].shape
    for k, v in cents.items():
        if v.ndim != 3 or v.shape != shape:
            raise DataError(f"loan flows[{k!r}]: expected shape (S, L, T) = {shape}, got {v.shape}")
    lag = check_recovery_lag(recovery_lag, shape[1])
    pending = np.zeros(shape[0])
    if "recovery" in flows:
        recovery = to_cents(_numpy(flows["recovery"])).sum(axis=1)
    else:
        recoverable = cents["default_par"] - cents["loss"]  # (S, L, T) whole cents
        recovery = np.zeros((shape[0], shape[2]))
        for value in np.unique(lag):  # loans sharing a lag are summed first, then shifted once
            rec, pend = book_recoveries(recoverable[:, lag == value].sum(axis=1), int(value), month_axis=1)
            recovery += rec
            pending += pend
    columns = {k: v.sum(axis=1) for k, v in cents.items()}
    columns["recovery"] = recovery
    return PoolFlows(cashflows=from_cents(stack_pool(columns)), pending_recovery=from_cents(pending))


def check_recovery_lag(recovery_lag: object, n_loans: int) -> np.ndarray:
    """``recovery_lag`` as ``(n_loans,)`` int64 whole months in 0..1200 (one int for all loans or one per
    loan), or a ConfigError naming it (no silent rounding of 1.5 months, no bools, no text)."""
    arr = np.asarray(recovery_lag, dtype=object)
    flat = arr.reshape(-1)
    if arr.ndim > 1 or arr.ndim == 1 and arr.shape != (n_loans,) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and 0 <= int(v) <= 1200
            for v in flat):
        raise ConfigError(f"recovery_lag must be whole months in 0..1200, one for the pool or one per loan "
                          f"({n_loans}), got {str(recovery_lag)[:80]}")
    return np.broadcast_to(arr.astype(np.int64), (n_loans,))


def _numpy(x: object) -> np.ndarray:
    detach = getattr(x, "detach", None)
    if detach is not None:  # a torch tensor, on any device
        x = detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
