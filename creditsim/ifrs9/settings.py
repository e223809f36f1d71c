"""Every judgement of an expected-credit-loss run as one named, validated setting (IFRS 9 §5.5, ASC 326-20).

:class:`EclSettings` is a frozen dataclass; a bad value is a one-line :class:`~creditsim.errors.ConfigError`
naming the field, the value and what was expected. A setting that supervisors have criticised (EBA IFRS 9
monitoring reports 2021 and Nov 2023, PRA feedback) is allowed but raises a
:class:`SupervisoryFindingWarning` once, when the settings are built.

Time conventions (``docs/IFRS9.md`` §6.1). The life after the reporting date is cut into periods of
``period`` (1, 3 or 12 months); the last period of a loan may be partial (it ends at maturity). For
period ``k`` starting at month ``a_k`` and ending at month ``b_k`` after the reporting date:

- ``default_timing`` places the default (and hence the discount time ``tau``) at ``a_k`` (start),
  ``(a_k + b_k) / 2`` (mid) or ``b_k`` (end).
- ``ead_timing`` picks the exposure: the balance at ``a_k`` (start, conservative), the mean of the
  period's monthly exposures (mid, the average balance) or the exposure of the period's *last*
  instalment, i.e. the balance before it is paid (end; never the balance after the final payment, which
  is zero and would drop the last period). A monthly exposure is the balance before instalment ``m``
  plus, with ``accrued_interest``, the interest accrued on it over that month.
- ``eir_compounding`` is the discount time unit: how the EIR is quoted. ``DF(tau) = (1 + EIR_eff)^-tau``
  with ``tau`` in *years* and ``EIR_eff`` the effective annual rate of the quote (annual: the EIR
  itself; monthly / quarterly: ``(1 + EIR/m)^m - 1``; continuous: ``e^EIR - 1``). A period is always
  discounted with its own rate, so monthly periods never see an annual rate per month.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

from creditsim.errors import ConfigError

__all__ = ["EclSettings", "SupervisoryFindingWarning", "PERIOD_MONTHS", "SICR_TRIGGERS"]

#: months in each period length
PERIOD_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}

#: the SICR / default triggers reported per loan, in this order (columns of ``EclResult.triggers``)
SICR_TRIGGERS: tuple[str, ...] = (
    "default_90dpd", "defaulted", "stage3_probation",
    "dpd30", "pd_threshold", "notch_downgrade", "watch_list", "forborne", "stage2_probation",
    "low_credit_risk",
)

_CHOICES: dict[str, tuple[str, ...]] = {
    "period": tuple(PERIOD_MONTHS),
    "default_timing": ("start", "mid", "end"),
    "ead_timing": ("start", "mid", "end"),
    "eir_compounding": ("annual", "monthly", "quarterly", "continuous"),
    "staging": ("weighted", "per_scenario"),
    "sicr_combine": ("and", "or"),
    "sicr_pd_measure": ("lifetime", "annualised", "12m"),
    "reversion": ("immediate", "linear", "none"),
    "framework": ("ifrs9", "cecl"),
}


class SupervisoryFindingWarning(UserWarning):
    """A setting is allowed by the standard but has been criticised by supervisors (EBA / ECB / PRA)."""


@dataclass(frozen=True)
class EclSettings:
    """Named conventions of :func:`creditsim.ifrs9.expected_credit_loss`.

    Measurement: ``period`` ("month" | "quarter" | "year"), ``default_timing`` and ``ead_timing``
    ("start" | "mid" | "end", module docstring), ``accrued_interest`` (EAD includes one month's interest
    on the balance, so the PD/LGD/EAD form equals the cash-shortfall form, §6.3), ``eir_compounding``
    ("annual" | "monthly" | "quarterly" | "continuous": how the EIR is quoted).

    Staging: ``staging`` ("weighted": one stage from the probability-weighted lifetime PD, i.e. weighted
    outcomes; "per_scenario": each scenario stages with its own PD and the weighted ECL adds the
    scenario ECLs at their own stages). SICR rules, each one off with False / None:
    ``sicr_30dpd`` (> 30 days past due, 5.5.11), ``default_90dpd`` (> 90 dpd is Stage 3, B5.5.37),
    ``sicr_relative`` (PD_now / PD_orig >= x, decimal ratio, e.g. 2.0), ``sicr_absolute``
    (PD_now - PD_orig >= x, decimal, e.g. 0.005 = 50 bp), ``sicr_combine`` ("and": both thresholds must
    be met when both are set, the usual "relative with an absolute floor"; "or": either),
    ``sicr_pd_measure`` ("lifetime": cumulative PD over the remaining life, now vs as expected at
    origination for the *same* remaining period; "annualised": both annualised over that period;
    "12m": the 12-month PD as proxy, B5.5.13), ``sicr_notches`` (downgrade by >= n grades since
    origination), ``sicr_watch_list``, ``sicr_forbearance``, ``low_credit_risk_grade`` (loans rated
    at or better than this grade index stay in Stage 1 unless past due, 5.5.10; None = no exemption),
    ``probation_months`` (months without any SICR trigger before Stage 2 -> 1), ``stage3_probation_months``
    (months cured before Stage 3 -> 2).

    Framework: ``framework`` ("ifrs9"; "cecl": lifetime ECL for every loan from day one, ASC 326-20-30-2,
    stages still reported for information) and ``discount`` (False: undiscounted losses, CECL's PD x LGD
    method without DCF; IFRS 9 always discounts, 5.5.17(b)).

    Forecast horizon: ``rs_horizon_months`` (reasonable-and-supportable horizon of the scenario PDs)
    and ``reversion`` ("immediate": TTC from the next month; "linear": straight-line blend of
    scenario and TTC matrices / hazards over ``reversion_months``; "none": extrapolate the scenario).
    """

    period: str = "month"
    default_timing: str = "mid"
    ead_timing: str = "mid"
    accrued_interest: bool = True
    eir_compounding: str = "annual"
    staging: str = "weighted"
    sicr_30dpd: bool = True
    default_90dpd: bool = True
    sicr_relative: float | None = 2.0
    sicr_absolute: float | None = 0.005
    sicr_combine: str = "and"
    sicr_pd_measure: str = "lifetime"
    sicr_notches: int | None = 3
    sicr_watch_list: bool = True
    sicr_forbearance: bool = True
    low_credit_risk_grade: int | None = None
    probation_months: int = 3
    stage3_probation_months: int = 3
    rs_horizon_months: int = 36
    reversion: str = "linear"
    reversion_months: int = 24
    framework: str = "ifrs9"
    discount: bool = True

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ConfigError(f"EclSettings.{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        for name in ("accrued_interest", "sicr_30dpd", "default_90dpd", "sicr_watch_list", "sicr_forbearance", "discount"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"EclSettings.{name} must be True or False, got {getattr(self, name)!r}")
        _check_optional_number(self.sicr_relative, "sicr_relative", low=1.0, high=1000.0, what="a PD ratio >= 1")
        _check_optional_number(self.sicr_absolute, "sicr_absolute", low=0.0, high=1.0, what="a PD difference in [0, 1] (decimal)")
        for name, low, high in (("sicr_notches", 1, 20), ("low_credit_risk_grade", 0, 20), ("probation_months", 0, 120),
                                ("stage3_probation_months", 0, 120), ("rs_horizon_months", 0, 1200),
                                ("reversion_months", 0, 1200)):
            value = getattr(self, name)
            optional = name in ("sicr_notches", "low_credit_risk_grade")
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
                none = " or None" if optional else ""
                raise ConfigError(f"EclSettings.{name} must be a whole number in {low}..{high}{none}, got {value!r}")
        if self.framework == "ifrs9" and not self.discount:
            raise ConfigError("EclSettings.discount must be True under framework='ifrs9' (ECL is a present value, IFRS 9 5.5.17(b))")
        if self.reversion == "linear" and self.reversion_months == 0:
            raise ConfigError("EclSettings.reversion_months must be >= 1 for linear reversion (use reversion='immediate' for 0)")
        self._warn_findings()

    @property
    def period_months(self) -> int:
        """Months in one period (1, 3 or 12)."""
        return PERIOD_MONTHS[self.period]

    def _warn_findings(self) -> None:
        """One :class:`SupervisoryFindingWarning` per criticised choice (none for the defaults)."""
        quantitative = self.sicr_relative is not None or self.sicr_absolute is not None or self.sicr_notches is not None
        qualitative = self.sicr_watch_list or self.sicr_forbearance
        findings = []
        if self.sicr_30dpd and not quantitative and not qualitative:
            findings.append("SICR only through the 30 dpd backstop: supervisors find such transfers to Stage 2 late "
                            "(EBA IFRS 9 monitoring 2021 / 2023); add a PD threshold, notch or qualitative trigger")
        if not self.sicr_30dpd:
            findings.append("the 30 dpd SICR presumption is rebutted for the whole book (IFRS 9 5.5.11 needs evidence per exposure)")
        if not self.default_90dpd:
            findings.append("the 90 dpd default backstop is off (IFRS 9 B5.5.37: rebuttable only with evidence)")
        if self.sicr_relative is not None and self.sicr_relative > 3.0:
            findings.append(f"a relative PD threshold of {self.sicr_relative:g}x is above the 2-3x seen in practice; "
                            "EBA: thresholds not consistent with a 'significant' increase")
        if self.sicr_absolute is not None and self.sicr_relative is None and quantitative and self.sicr_absolute > 0.02:
            findings.append(f"an absolute-only PD threshold of {self.sicr_absolute:g} ignores the PD at origination (B5.5.9)")
        if self.low_credit_risk_grade is not None and self.low_credit_risk_grade > 3:
            findings.append(f"the low-credit-risk exemption reaches grade index {self.low_credit_risk_grade}, "
                            "beyond investment grade (B5.5.22-24)")
        if self.probation_months == 0:
            findings.append("no probation before Stage 2 -> 1: supervisors criticise stage 'ping-pong'")
        if self.framework == "cecl" and self.reversion == "none":
            findings.append("CECL requires reverting to historical loss information after the reasonable and "
                            "supportable period (ASC 326-20-30-9); reversion='none' extrapolates the scenario")
        for text in findings:
            warnings.warn(f"EclSettings: {text}", SupervisoryFindingWarning, stacklevel=4)


def _check_optional_number(value: object, name: str, *, low: float, high: float, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
        raise ConfigError(f"EclSettings.{name} must be {what} or None, got {value!r}")
