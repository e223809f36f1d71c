"""Data layer: synthetic generators, cohorts and file IO.

- :mod:`creditsim.data.synthetic`: :class:`MacroScenarioGenerator`, :class:`LoanTapeGenerator`,
  :func:`loan_features`.
- :mod:`creditsim.data.cohorts`: cohort keys, :func:`cohort_features`, :func:`transition_counts`.
- :mod:`creditsim.data.io`: :func:`read_loan_tape`, :func:`write_loan_tape`, :func:`read_panel`,
  :func:`write_panel` (CSV or Parquet, validated on read, atomic writes).
"""

from creditsim.data.cohorts import cohort_features, cohort_keys, risk_bucket, transition_counts
from creditsim.data.io import read_loan_tape, read_panel, write_loan_tape, write_panel
from creditsim.data.synthetic import LoanTapeGenerator, MacroScenarioGenerator, loan_features

__all__ = [
    "LoanTapeGenerator",
    "MacroScenarioGenerator",
    "loan_features",
    "cohort_keys",
    "cohort_features",
    "risk_bucket",
    "transition_counts",
    "read_loan_tape",
    "write_loan_tape",
    "read_panel",
    "write_panel",
]
