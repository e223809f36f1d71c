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
from creditsim.transitions.period_moves import loan_grid

__all__ = ["reporting_view"]


def reporting_view(panel: pd.DataFrame, months: int = 3, absorptions: str = "carried",
                   anchor: int | None = None, grid: str = "panel") -> pd.DataFrame:
    """The rows of ``panel`` a report every ``months`` months would hold.

    Report months are, with ``grid="panel"``, the panel's first month (or ``anchor``) and every
    ``months``-th month before and after it; with ``grid="loan"``, each loan's own cycle (the residue most
    of its live rows share: :func:`creditsim.transitions.period_moves.loan_grid`), for a file whose loans
    report on staggered cycles. A loan's row in a report month is kept. A loan absorbed (DEFAULT,
    PREPAID, MATURED) between two report months is, with ``absorptions="carried"``, reported in its
    absorbing state at the next one (a servicer's quarterly file lists the quarter's payoffs and
    defaults); with ``"dated"``, in the month it happened (a file that dates each default and payoff).
    Either way absorption is not lost with the months between. A loan whose record ends live between
    report months ends at its last report month, as a real report would show it.

    Args:
        panel: loan x month rows with ``loan_id``, ``reporting_month``, ``loan_state`` (other columns kept
            on the kept rows; an absorbed row moved to the next report month keeps its values).
        months: the reporting cycle in months (3: quarterly).
        absorptions: ``"carried"`` (to the next report month; dropped past the panel's last month) or
            ``"dated"`` (kept in their own month).
        anchor: with ``grid="panel"``, a report month: ``"YYYY-MM"``, a timestamp, or a month number
            (months since 1970-01, as :func:`~creditsim.transitions.cohorts.panel_month_numbers` counts);
            default the panel's first month.
        grid: ``"panel"`` or ``"loan"``. Either way an absorption whose period closes after the panel's
            last month is dropped: the loans that survived that period have no row for it, so keeping only
            the absorbed ones would overstate absorption (a report that ends with the panel shows neither).

    Returns:
        The report rows, sorted by loan and month, ``reporting_month`` as month-start timestamps.
    """
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 1:
        raise ConfigError(f"months must be a positive integer, got {months!r}")
    if absorptions not in ("carried", "dated"):
        raise ConfigError(f"absorptions: expected 'carried' or 'dated', got {absorptions!r}")
    if grid not in ("panel", "loan"):
        raise ConfigError(f"grid: expected 'panel' or 'loan', got {grid!r}")
    month = panel_month_numbers(panel)
    state = panel_states(panel)
    ids = panel["loan_id"].astype(str).to_numpy()
    m1 = int(month.max())
    if grid == "loan":
        if anchor is not None:
            raise ConfigError("anchor: not read with grid='loan' (each loan's own cycle); give one or the other")
        m0 = loan_grid(pd.factorize(ids)[0].astype(np.int64), month, state < int(LoanState.DEFAULT), months)
    else:
        m0 = int(month.min()) if anchor is None else _anchor_month(anchor)
    last = pd.Series(month).groupby(ids).transform("max").to_numpy()
    on_report = (month - m0) % months == 0
    absorbed_end = (state >= int(LoanState.DEFAULT)) & (month == last) & ~on_report
    moved = month + (-(month - m0)) % months if absorptions == "carried" else month
    keep_moved = absorbed_end & (moved <= m1)
    out = pd.concat([panel[on_report], panel[keep_moved].assign(
        reporting_month=pd.to_datetime(moved[keep_moved].astype("datetime64[M]")))], ignore_index=False)
    out = out.assign(reporting_month=pd.to_datetime(out["reporting_month"]).dt.to_period("M").dt.to_timestamp())
    return out.sort_values(["loan_id", "reporting_month"], kind="stable").reset_index(drop=True)


def _anchor_month(anchor: object) -> int:
    """A report month as a month number (months since 1970-01); ConfigError for anything else."""
    if isinstance(anchor, (int, np.integer)) and not isinstance(anchor, bool):
        if not -1200 <= int(anchor) <= 2400:  # 1870 .. 2170: a year * 12 + month count is about 24,000
            raise ConfigError(f"anchor: {anchor} is not a month number (months since 1970-01: 2022-03 is 626); "
                              "give the month as 'YYYY-MM'")
        return int(anchor)
    if isinstance(anchor, (str, pd.Timestamp, np.datetime64)):
        try:
            return int(np.datetime64(pd.Timestamp(anchor), "M").astype(np.int64))
        except (ValueError, TypeError):
            pass
    raise ConfigError(f"anchor: expected a month ('YYYY-MM', a timestamp or months since 1970-01), got {anchor!r}")
