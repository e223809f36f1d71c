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

__all__ = ["reporting_view", "grid_anchor"]


def reporting_view(panel: pd.DataFrame, months: int = 3, absorptions: str = "carried",
                   anchor: int | None = None) -> pd.DataFrame:
    """The rows of ``panel`` a report every ``months`` months would hold.

    Report months are the panel's first month (or ``anchor``) and every ``months``-th month after (and
    before) it. A loan's row in a
    report month is kept. A loan absorbed (DEFAULT, PREPAID, MATURED) between two report months is, with
    ``absorptions="carried"``, reported in its absorbing state at the next one (a servicer's quarterly
    file lists the quarter's payoffs and defaults); with ``"dated"``, in the month it happened (a file
    that dates each default and payoff). Either way absorption is not lost with the months between. A
    loan whose record ends live between report months ends at its last report month, as a real report
    would show it.

    Args:
        panel: loan x month rows with ``loan_id``, ``reporting_month``, ``loan_state`` (other columns kept
            on the kept rows; an absorbed row moved to the next report month keeps its values).
        months: the reporting cycle in months (3: quarterly).
        absorptions: ``"carried"`` (to the next report month; dropped past the panel's last month) or
            ``"dated"`` (kept in their own month).
        anchor: a report month as ``year * 12 + month`` (:func:`grid_anchor`); default the panel's first.

    Returns:
        The report rows, sorted by loan and month, ``reporting_month`` as month-start timestamps.
    """
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise ConfigError(f"months must be a positive integer, got {months!r}")
    if absorptions not in ("carried", "dated"):
        raise ConfigError(f"absorptions: expected 'carried' or 'dated', got {absorptions!r}")
    month = panel_month_numbers(panel)
    state = panel_states(panel)
    m0 = int(month.min()) if anchor is None else int(anchor)
    m1 = int(month.max())
    ids = panel["loan_id"].astype(str).to_numpy()
    last = pd.Series(month).groupby(ids).transform("max").to_numpy()
    on_report = (month - m0) % months == 0
    absorbed_end = (state >= int(LoanState.DEFAULT)) & (month == last) & ~on_report
    moved = month + (-(month - m0)) % months if absorptions == "carried" else month
    keep_moved = absorbed_end & (moved <= m1)
    out = pd.concat([panel[on_report], panel[keep_moved].assign(
        reporting_month=pd.to_datetime(moved[keep_moved].astype("datetime64[M]")))], ignore_index=False)
    out = out.assign(reporting_month=pd.to_datetime(out["reporting_month"]).dt.to_period("M").dt.to_timestamp())
    return out.sort_values(["loan_id", "reporting_month"], kind="stable").reset_index(drop=True)


def grid_anchor(panel: pd.DataFrame, months: int) -> int:
    """The report month (``year * 12 + month``) of a panel reported every ``months`` months: the most
    common month residue among its live rows (absorptions may be dated off the grid; ties: the earliest
    residue of the first month)."""
    month = panel_month_numbers(panel)
    live = panel_states(panel) < int(LoanState.DEFAULT)
    residues = np.bincount((month[live] if live.any() else month) % months, minlength=months)
    m0 = int(month.min())
    order = [(m0 + r) % months for r in range(months)]  # residues from the first month's on
    best = max(order, key=lambda r: (residues[r], -order.index(r)))
    return m0 + (best - m0) % months
