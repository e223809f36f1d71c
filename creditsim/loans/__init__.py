"""Loans: contractual schedules, the cashflow engine, loan-level trajectories and loan -> pool cashflows.

- :mod:`~creditsim.loans.schedule`: annuity / linear / bullet / interest-only schedules.
- :mod:`~creditsim.loans.book`: :class:`LoanBook`, per-loan terms prepared from a validated tape.
- :mod:`~creditsim.loans.engine`: states -> interest, principal, prepayment, default, loss, recovery
  (:func:`simulate_pool_chunk`, :func:`simulate_pool_cashflows`, :func:`simulate_loan_level`).
- :mod:`~creditsim.loans.pool`: THE loan -> pool aggregation (one recovery convention, one column order).
- :mod:`~creditsim.loans.trajectory`: :class:`LoanTrajectoryModel` (autoregressive transformer with a
  diffusion head).
- :mod:`~creditsim.transitions.synthetic`: :class:`LoanTapeGenerator` (synthetic tapes and panels).
- :mod:`~creditsim.loans.evaluate`, :mod:`~creditsim.loans.train`: metrics and training."""

from creditsim.lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "LoanBook": "creditsim.loans.book",
    "LoanCashflows": "creditsim.loans.engine",
    "PoolCashflows": "creditsim.loans.engine",
    "loan_cashflows": "creditsim.loans.engine",
    "simulate_loan_level": "creditsim.loans.engine",
    "simulate_pool_cashflows": "creditsim.loans.engine",
    "simulate_pool_chunk": "creditsim.loans.engine",
    "Schedule": "creditsim.loans.schedule",
    "pool_cashflows": "creditsim.loans.pool",
    "amortization_schedule": "creditsim.loans.schedule",
    "LoanTrajectoryModel": "creditsim.loans.trajectory",
    "TrajectoryConfig": "creditsim.loans.trajectory",
    "LoanTapeGenerator": "creditsim.transitions.synthetic",
})
