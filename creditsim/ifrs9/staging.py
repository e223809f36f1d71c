"""Stage allocation (IFRS 9 5.5.3-5.5.11, B5.5.37): which loans carry 12-month and which lifetime ECL.

Order of the rules, per loan (``settings`` names every switch):

1. **Stage 3** if > 90 days past due (``default_90dpd``), flagged ``defaulted``, or in Stage 3 probation
   (previous stage 3 and fewer than ``stage3_probation_months`` since the default trigger cleared).
2. **Stage 2** if any SICR trigger fires: > 30 dpd (``sicr_30dpd``; never overridden), or -- unless the
   low-credit-risk exemption applies (grade index <= ``low_credit_risk_grade``) -- the PD threshold
   (``sicr_relative`` / ``sicr_absolute`` combined by ``sicr_combine`` on the PDs of matched remaining
   horizons), a downgrade of >= ``sicr_notches`` grades since origination, the watch list or forbearance;
   or Stage 2 probation: previous stage 2 and fewer than ``probation_months`` since the last trigger, or
   previous stage 3 and fewer than ``stage3_probation_months + probation_months`` since the default
   trigger cleared (a cured default passes through Stage 2 on its way back).
3. **Stage 1** otherwise.

With ``staging="weighted"`` the PD test uses the probability-weighted PD (weights of outcomes, one stage
for all scenarios); with ``"per_scenario"`` each scenario's PD stages that scenario.
"""

from __future__ import annotations

import numpy as np

from creditsim.fixed_order import column_sum
from creditsim.ifrs9.loans import EclLoans
from creditsim.ifrs9.settings import SICR_TRIGGERS, EclSettings
from creditsim.states import GRADES_8

__all__ = ["stage_loans", "pd_threshold_hit"]


def _grade_index(grades: np.ndarray | None) -> np.ndarray | None:
    """Integer grade indices (labels by their place on the AAA..CCC scale; -1 = unrated)."""
    if grades is None:
        return None
    if grades.dtype.kind in "iu":
        return grades
    lookup = {g: i for i, g in enumerate(GRADES_8[:-1])}
    return np.array([lookup.get(str(g).strip().upper(), -1) for g in grades], dtype=np.int64)


def pd_threshold_hit(pd_now: np.ndarray, pd_orig: np.ndarray, settings: EclSettings) -> np.ndarray:
    """Boolean of the quantitative SICR test (relative ``pd_now >= x pd_orig`` and / or absolute
    ``pd_now - pd_orig >= y``); all False when both thresholds are None."""
    tests = []
    if settings.sicr_relative is not None:
        tests.append(pd_now >= settings.sicr_relative * pd_orig)
    if settings.sicr_absolute is not None:
        tests.append(pd_now - pd_orig >= settings.sicr_absolute)
    if not tests:
        return np.zeros(np.shape(pd_now), dtype=bool)
    if len(tests) == 1:
        return tests[0]
    return (tests[0] & tests[1]) if settings.sicr_combine == "and" else (tests[0] | tests[1])


def stage_loans(loans: EclLoans, pd_now: np.ndarray, pd_orig: np.ndarray, weights: np.ndarray,
                settings: EclSettings, stage3: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(stage (S, L) int8, triggers {name: (L,) bool})`` for ``pd_now`` ``(S, L)`` and ``pd_orig`` ``(L,)``."""
    n_s, n_l = pd_now.shape
    if settings.staging == "weighted":
        weighted = column_sum(weights[:, None] * pd_now, axis=0)
        pd_hit = np.broadcast_to(pd_threshold_hit(weighted, pd_orig, settings), (n_s, n_l))
    else:
        pd_hit = pd_threshold_hit(pd_now, pd_orig[None, :], settings)
    grade, orig = _grade_index(loans.grade), _grade_index(loans.origination_grade)
    none = np.zeros(n_l, dtype=bool)
    notch = none
    if settings.sicr_notches is not None and grade is not None and orig is not None:
        notch = (grade >= 0) & (orig >= 0) & (grade - orig >= settings.sicr_notches)
    lcr = none
    if settings.low_credit_risk_grade is not None and grade is not None:
        lcr = (grade >= 0) & (grade <= settings.low_credit_risk_grade)
    trig = dict(stage3)
    trig["dpd30"] = (loans.days_past_due > 30) & settings.sicr_30dpd
    trig["pd_threshold"] = pd_hit[weights > 0].any(axis=0)
    trig["notch_downgrade"] = notch
    trig["watch_list"] = loans.watch_list & settings.sicr_watch_list
    trig["forborne"] = loans.forborne & settings.sicr_forbearance
    since = loans.months_since_trigger
    trig["stage2_probation"] = ((loans.previous_stage == 2) & (since < settings.probation_months)) | (
        (loans.previous_stage == 3) & (since < settings.stage3_probation_months + settings.probation_months))
    trig["low_credit_risk"] = lcr
    s3 = trig["default_90dpd"] | trig["defaulted"] | trig["stage3_probation"]
    other = (notch | trig["watch_list"] | trig["forborne"])[None, :] | pd_hit
    sicr = trig["dpd30"][None, :] | (other & ~lcr[None, :]) | trig["stage2_probation"][None, :]
    stage = np.where(s3[None, :], 3, np.where(sicr, 2, 1)).astype(np.int8)
    return stage, {k: np.asarray(trig[k]) for k in SICR_TRIGGERS}
