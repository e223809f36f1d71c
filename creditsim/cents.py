"""Currency amounts as whole cents: sums that are exact, so their order cannot matter.

Why. Floating-point addition is not associative, so a sum over loans depends on the order the kernel
adds in -- and that order changes with the array's shape, the row's position inside a BLAS tile, the
CPU's vector width (MKL picks other kernels on AVX-512 than on AVX2), the thread count and, on a GPU,
the order atomics land in. The same seed then gives different pool cashflows for different chunk
sizes. Servicer cashflows are cent-valued anyway (schedules are rounded to the cent), so the engine
keeps every loan-level amount as an integer number of cents held in float64: a sum of integers is
exact while every partial sum stays below 2**53 (9.0e15 cents = 9.0e13 currency units), and an exact
result is the same in any order -- ``mm``, ``bmm``, ``index_add_`` (CPU or CUDA atomics), numpy's
pairwise ``sum`` alike. Amounts are divided by 100 once, at the end (a correctly rounded elementwise
operation).

Rules (which operations are allowed where):

- Loan -> pool aggregation (engine, trajectory path, loan-level ``pool()``): any reduction, but only
  over whole-cent values of a book whose total balance is below :data:`MAX_EXACT_BALANCE` (checked by
  :func:`check_exact_range`). A product with a non-integer factor (an LGD, a rate) is rounded to cents
  *before* it is summed.
- Anything that is not cent-valued (rates, LGDs, waterfall ratios, risk measures): elementwise
  operations, and reductions only over axes whose length and order do not change with chunking (e.g.
  the tranche axis, column by column, or a fixed month axis), never ``mm``/``@`` over a scenario-sized
  or loan-sized axis.
"""

from __future__ import annotations

import numpy as np
import torch

from creditsim.errors import ConfigError

__all__ = ["CENTS", "MAX_EXACT_BALANCE", "to_cents", "from_cents", "sum_currency", "check_exact_range"]

#: cents per currency unit
CENTS = 100.0
#: largest total book balance (currency units) whose cent sums stay exact in float64 (2**52 cents: a
#: factor-2 margin for interest and pending recoveries on top of the principal)
MAX_EXACT_BALANCE = 2.0**52 / CENTS


def to_cents(amount: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Currency units -> whole cents (integer-valued float64, rounded half to even)."""
    if isinstance(amount, torch.Tensor):
        return torch.round(amount.to(torch.float64) * CENTS)
    return np.rint(np.asarray(amount, dtype=np.float64) * CENTS)


def from_cents(cents: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Whole cents -> currency units (one correctly rounded division per element)."""
    return cents / CENTS


def sum_currency(amount: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Exact sum of currency amounts over ``axis``: rounded to cents, summed, converted back.

    The result does not depend on the summation order (see the module docstring), so it is the same
    for any chunking, kernel or thread count. Amounts are rounded to the cent first.
    """
    return from_cents(to_cents(amount).sum(axis=axis))


def check_exact_range(total_balance: float, what: str = "book") -> None:
    """ConfigError when a pool is too large for exact cent sums in float64."""
    if not np.isfinite(total_balance) or abs(total_balance) >= MAX_EXACT_BALANCE:
        raise ConfigError(
            f"{what}: total balance {total_balance:.4g} is beyond the exact-sum range of the engine "
            f"({MAX_EXACT_BALANCE:.3g} currency units); express balances in thousands or split the book"
        )
