"""A monthly panel as a coarser reporting cycle would show it (quarterly, for instance).

Used to measure what quarterly reporting costs a model (train on the quarter-end rows, score on the
monthly moves held out) and to test the quarterly fitting paths (:mod:`creditsim.transitions.embed`,
:meth:`~creditsim.transitions.transformer.TransitionTransformer.period_nll`) against the monthly truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.states import LoanState
from creditsim.transitions.cohorts import panel_month_numbers, panel_states

__all__ = ["reporting_view"]


def reporting_view(panel: pd.DataFrame, months: int = 3) -> pd.DataFrame:
    """The rows of ``panel`` a report every ``months`` months would hold.

    Report months are the panel's first month and every ``months``-th month after it. A loan's row in a
    report month is kept; a loan absorbed (DEFAULT, PREPAID, MATURED) between two report months is
    reported in its absorbing state at the next one (a servicer's quarterly file lists the quarter's
    payoffs and defaults), so absorption is not lost with the months between. A loan whose record ends
    live between report months ends at its last report month, as a real report would show it.

    Args:
        panel: loan x month rows with ``loan_id``, ``reporting_month``, ``loan_state`` (other columns kept
            on the kept rows; an absorbed row moved to the next report month keeps its values).
        months: the reporting cycle in months (3: quarterly).

    Returns:
        The report rows, sorted by loan and month, ``reporting_month`` as month-start timestamps.
    """
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise ConfigError(f"months must be a positive integer, got {months!r}")
    month = panel_month_numbers(panel)
    state = panel_states(panel)
    m0, m1 = int(month.min()), int(month.max())
    ids = panel["loan_id"].astype(str).to_numpy()
    last = pd.Series(month).groupby(ids).transform("max").to_numpy()
    on_report = (month - m0) % months == 0
    absorbed_end = (state >= int(LoanState.DEFAULT)) & (month == last) & ~on_report
    moved = m0 + ((month - m0) // months + 1) * months
    keep_moved = absorbed_end & (moved <= m1)
    out = pd.concat([panel[on_report], panel[keep_moved].assign(
        reporting_month=pd.to_datetime(moved[keep_moved].astype("datetime64[M]")))], ignore_index=False)
    out = out.assign(reporting_month=pd.to_datetime(out["reporting_month"]).dt.to_period("M").dt.to_timestamp())
    return out.sort_values(["loan_id", "reporting_month"], kind="stable").reset_index(drop=True)
