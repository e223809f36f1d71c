"""creditsim.cashflows: contractual schedules, loan terms, state sampling and the pool cashflow engine.

- :mod:`~creditsim.cashflows.schedule`: annuity / linear / bullet / interest-only schedules.
- :mod:`~creditsim.cashflows.book`: :class:`LoanBook`, per-loan terms prepared from a loan tape.
- :mod:`~creditsim.cashflows.sampler`: matrix validation, risk shifts, thresholds, random streams.
- :mod:`~creditsim.cashflows.engine`: states -> interest, principal, prepayment, default, loss,
  recovery; :func:`simulate_pool_chunk` (what the Monte Carlo orchestrator calls per scenario chunk),
  :func:`simulate_pool_cashflows`, :func:`simulate_loan_level`, :func:`loan_cashflows`.
"""

from creditsim.cashflows.book import LoanBook
from creditsim.cashflows.engine import (
    LoanCashflows,
    PoolCashflows,
    loan_cashflows,
    simulate_loan_level,
    simulate_pool_cashflows,
    simulate_pool_chunk,
)
from creditsim.cashflows.schedule import Schedule, amortization_schedule

__all__ = [
    "LoanBook",
    "LoanCashflows",
    "PoolCashflows",
    "Schedule",
    "amortization_schedule",
    "loan_cashflows",
    "simulate_loan_level",
    "simulate_pool_cashflows",
    "simulate_pool_chunk",
]
