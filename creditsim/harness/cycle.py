"""How the harness transformer reads the economy out of time: a bank credit-cycle link fitted before the split.

One loan panel spans one stretch of one economy. A network that reads the macro path learns whatever the
calendar did in that stretch: on the SBA 7(a) panel (:mod:`creditsim.datasets.sba`; loans of 2002-06,
trained on 2002-07) charge-offs rose as the vintages seasoned while unemployment fell, and the learnt
response ran the wrong way through 2008-10 (+0.0022 nats per move against the pooled chain, where the
same network without the macro path won by 0.0018). The library's own panel trainer draws the same
conclusion (:mod:`creditsim.transitions.panel_train`: ``macro_inputs=False`` plus the calibrated link).

So, with ``credit_link`` set, the harness transformer does not read the path; the economy reaches it
through :class:`CycleTilt`:

1. a :class:`~creditsim.macro.credit_link.CreditLink` (probit partial adjustment on the 12-month change in
   unemployment, the HY spread, GDP growth, house-price growth and the policy rate, signs imposed) is
   fitted on a Federal Reserve bank delinquency rate (:func:`~creditsim.datasets.credit_losses.load_bank_loss_rates`)
   over the complete quarters up to the training split's last month -- decades and several recessions,
   none of them after the split;
2. from the last such quarter's realised rate it is run forward on the realised macro path (a forecast
   conditional on the path, as the harness gives every macro model);
3. each test period's odds of leaving CURRENT for a worse state (30 days late, or default directly) are
   multiplied by the link's rate in that period over its rate at the training split's last month:
   a log-odds tilt of ``log(y_t / y_L)`` on those moves (:data:`ONSET`), zero on every training period.

Why only the moves out of CURRENT: a loan reaches default through exactly one of them (short of a cure and
a relapse), so scaling them by ``r`` scales the flow into delinquency, the stock of delinquent loans and the
defaults they feed by about ``r`` -- what a ratio of delinquency rates says. Scaling every roll forward
(30 -> 60 -> 90 -> default) as well would compound to up to ``r**4`` on a panel with delinquency buckets.
Cures and rolls stay the network's.

Why a ratio, not a fitted scale: with calendar-period embeddings, a fixed per-period offset is absorbed
by them in training, so no scale of the tilt is identified by the panel itself; the ratio is the standard
top-down assumption (the book's default odds move in proportion to the banks' loss rate), and in a
one-factor model whose book sits near the bank rate's level (an annual PD of a few per cent, as the
delinquency rates are) a probit shift and a ratio agree to first order. Why delinquency, not charge-off
rates: the bundled charge-off table by loan type starts in 2019. The series is the caller's choice
(:data:`LINK_SERIES`); ``"business"`` for small-business and corporate loans, ``"consumer"`` /
``"credit_card"`` / ``"residential_mortgage"`` for those books, ``"all"`` when nothing closer fits.
``"auto"`` (the harness default) is ``"all"`` where its history before the split is long enough
(:data:`MIN_LINK_QUARTERS`), otherwise the network reads the path, with a warning (:func:`resolve_link`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.harness.moves import MoveTable, month_label, month_number
from creditsim.macro.credit_link import EXPECTED_SIGNS, LINK_VARIABLES, CreditLink, fit_credit_link
from creditsim.macro.sensitivity import OVERLAY_VARS, derived_frame
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES, LoanState

__all__ = ["LINK_SERIES", "MIN_LINK_QUARTERS", "CycleTilt", "fit_cycle_tilt", "link_quarters", "resolve_link", "ONSET", "check_link_history",
           "last_training_month", "tilt_rows"]

#: bank delinquency series a link can be fitted on (:data:`creditsim.datasets.credit_losses.DELINQUENCY_SERIES`)
LINK_SERIES: tuple[str, ...] = ("all", "business", "consumer", "credit_card", "residential_mortgage")
#: fewest complete quarters before the split the link is fitted on (ten years: at least one recession)
MIN_LINK_QUARTERS = 40
#: ``(7, 7)`` bool: the moves the tilt scales -- from CURRENT to a worse state, direct default included
ONSET: np.ndarray = np.array([[a == int(LoanState.CURRENT) and bool(ALLOWED_TRANSITIONS[a, b]) and a < b <= int(LoanState.DEFAULT)
                               for b in range(N_STATES)] for a in range(N_STATES)])


@dataclass(frozen=True)
class CycleTilt:
    """A fitted credit-cycle tilt (module docstring).

    Attributes:
        series: the bank delinquency series (:data:`LINK_SERIES`).
        link: the link, fitted on the quarters complete by ``last_month + 1``.
        last_month: month number (``12 * year + month - 1``) of the last month of the last training period
            (a move reads the macro of its from-period, :attr:`~creditsim.harness.moves.MoveTable.macro`).
        log_ratio: ``{month number: log(y_month / y_last)}`` for the months after ``last_month`` the macro
            frame covers; ``y`` is the link's quarterly rate (realised up to the fit's last quarter, then
            projected), the same for the three months of a quarter.
    """

    series: str
    link: CreditLink
    last_month: int
    log_ratio: dict[int, float]

    def period_tilt(self, first_month: int, period_months: int, n_periods: int) -> np.ndarray:
        """``(n_periods,)`` float64 log-odds tilt of periods ``0 .. n_periods - 1`` (period ``p`` spans
        months ``first_month + p * period_months`` onward): the mean of its months' log ratios, 0 for months
        up to ``last_month``. A month after ``last_month`` the macro frame did not cover is an error."""
        out = np.zeros(n_periods)
        for p in range(n_periods):
            months = range(first_month + p * period_months, first_month + (p + 1) * period_months)
            later = [m for m in months if m > self.last_month]
            if not later:
                continue
            missing = [m for m in later if m not in self.log_ratio]
            if missing:
                raise ConfigError(f"credit link: the macro frame has no row for {month_label(missing[0])}, a test month")
            out[p] = sum(self.log_ratio[m] for m in later) / period_months  # training months count 0
        return out


def last_training_month(train: MoveTable) -> int:
    """Month number of the last month of the last training period: periods are counted from the training
    moves' first from-month in steps of ``period_months`` (as the harness transformer counts them)."""
    num = month_number(train.month)
    first, step = int(num.min()), train.period_months
    return first + (int((num - first).max()) // step + 1) * step - 1


def tilt_rows(p: np.ndarray, from_state: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """``(n, 7)`` next-state probabilities ``p`` of moves out of ``from_state`` ``(n,)`` with the odds of
    :data:`ONSET` moves multiplied by ``exp(tilt)`` ``(n,)`` and each row renormalised (the numpy twin of
    the transformer's log-space tilt, for probability rows)."""
    w = np.where(ONSET[np.asarray(from_state, np.int64)], np.exp(np.asarray(tilt, np.float64))[:, None], 1.0)
    q = np.asarray(p, np.float64) * w
    return q / q.sum(1, keepdims=True)


def fit_cycle_tilt(series: str, macro: pd.DataFrame, last_month: int) -> CycleTilt:
    """Fit the link of bank delinquency ``series`` on the quarters complete by ``last_month + 1`` (the month
    the last training moves end in; ``last_month`` is the last month of the last training period, a month
    number) and project it on ``macro`` (a monthly frame, MACRO_VARS columns, decimals) beyond (module
    docstring).

    Raises:
        ConfigError: an unknown series, or fewer than :data:`MIN_LINK_QUARTERS` quarters before the split.
    """
    macro = macro.sort_index()
    check_link_history(series, macro, last_month)
    rate, fit_end = _history(series, last_month)
    link = fit_credit_link(rate, macro, end=fit_end, name=series, standardise=macro.loc[:fit_end], signs=EXPECTED_SIGNS)
    quarterly = derived_frame(macro)[list(OVERLAY_VARS)].resample("QS").mean()
    later = quarterly.loc[quarterly.index > pd.Timestamp(fit_end)].dropna(subset=list(link.variables))
    jump_off = pd.Timestamp(fit_end)  # realised rates after it are not read
    projected = link.forward(link.shocks(later.to_numpy()[None]), float(rate.loc[jump_off]))[0]  # (Q,)
    y = {jump_off: float(rate.loc[jump_off]), **dict(zip(later.index, projected.tolist()))}
    starts = month_number(pd.DatetimeIndex(list(y)))  # each quarter's first month
    by_month = {int(first) + k: value for first, value in zip(starts, y.values()) for k in range(3)}
    if last_month not in by_month:
        raise ConfigError(f"credit link: the macro frame ends before {month_label(last_month)}, the last training month")
    ref = by_month[last_month]
    log_ratio = {m: float(np.log(v / ref)) for m, v in by_month.items() if m > last_month}
    return CycleTilt(series, link, last_month, log_ratio)


def _history(series: str, last_month: int) -> tuple[pd.Series, str]:
    """The quarterly delinquency rate of ``series`` (indexed by quarter start) and the start month
    ("YYYY-MM") of the last quarter complete by ``last_month + 1``, the month the last training moves end in."""
    from creditsim.datasets.credit_losses import load_bank_loss_rates

    if series not in LINK_SERIES:
        raise ConfigError(f"credit_link: unknown series {series!r}; expected one of {list(LINK_SERIES)} or None")
    rate = load_bank_loss_rates("delinquency")[series].dropna()
    rate.index = rate.index.to_period("Q").to_timestamp()
    known = last_month + 1
    quarter_end = known - (known + 1) % 3  # the last month of the last complete quarter
    return rate, month_label(quarter_end - 2)


def check_link_history(series: str, macro: pd.DataFrame, last_month: int) -> None:
    """A ConfigError naming the counts unless ``series`` and ``macro`` share :data:`MIN_LINK_QUARTERS` quarters
    before the split (:func:`link_quarters`)."""
    have = link_quarters(series, macro, last_month)
    if have < MIN_LINK_QUARTERS:
        rate, _ = _history(series, last_month)
        raise ConfigError(f"credit_link {series!r}: {have} quarters of bank delinquency and macro history before the "
                          f"split (the series starts {rate.index[0]:%Y-%m}, the macro frame {macro.index.min():%Y-%m}); the "
                          f"link needs {MIN_LINK_QUARTERS}. Split later, give a longer macro history, or pass "
                          "credit_link=None (--credit-link none) to let the network read the path")


def link_quarters(series: str, macro: pd.DataFrame, last_month: int) -> int:
    """Quarters a link fitted for training periods ending in ``last_month`` would see: those with a rate of
    ``series`` and every driver of :data:`~creditsim.macro.credit_link.LINK_VARIABLES` in ``macro``."""
    rate, fit_end = _history(series, last_month)
    drivers = derived_frame(macro.sort_index())[list(LINK_VARIABLES)].resample("QS").mean().dropna()
    both = drivers.index.intersection(rate.index)
    return int((both <= pd.Timestamp(fit_end)).sum())


def resolve_link(credit_link: str | None, macro: pd.DataFrame | None, last_month: int) -> str | None:
    """The series to fit: ``credit_link`` itself, or for ``"auto"`` the all-loans series where it has
    :data:`MIN_LINK_QUARTERS` quarters before the split, else None (the network reads the path) with a
    warning saying why. An explicit series with too short a history is refused by :func:`fit_cycle_tilt`."""
    if credit_link != "auto":
        return credit_link
    have = link_quarters("all", macro, last_month)
    if have >= MIN_LINK_QUARTERS:
        return "all"
    from creditsim.userwarn import warn

    warn(f"credit_link='auto': the bank delinquency and macro histories share {have} quarters before the split (fewer than "
         f"{MIN_LINK_QUARTERS}), too few to fit a credit link: none is used (the transformer reads the macro path itself)")
    return None
