"""Refinancing incentive of fixed-rate mortgages: prepayment as an S-curve of coupon over market rate.

A fixed-rate borrower refinances when the market rate falls well below the loan's coupon and stays put
when it rises above it (the lock-in of 2022-24). The annual prepayment rate as a function of the ratio
``r = coupon / market rate`` is the arctangent S-curve of asset-liability management systems,

    CPR(r) = k1 - k2 * arctan(k3 * (k4 - r)),

flat at both ends (burnt-out refinancers on one side, turnover-only prepayment on the other) and
steepest at the elbow ``r = k4``. The defaults are the worked example of Oracle Financial Services ALM's
"Arctangent Calculation Method" (user guide, section 8.14.2: k1 = 0.3, k2 = 0.2, k3 = 10, k4 = 1.2):
CPR 8 % at r = 1, 30 % at the elbow, 3.5 % at r = 0.8. They are an industry-standard *shape*, not a
fit to data we hold (no loan-level prepayment history is bundled); pass your own curve to change them.

How it enters the simulation (:class:`creditsim.risk.pool_engine.PoolEngine`): the base-case roll rates
already describe prepayment in today's rate environment, so the curve scales the monthly
CURRENT -> PREPAID probability of the fixed-rate real-estate cohort by ``CPR(r_t) / CPR(r_0)``, the
incentive at month ``t`` relative to the cut-off, with ``r_t = coupon / (10-year yield_t + mortgage
spread)``, the coupon being the cohort's balance-weighted fixed coupon. One multiplier per cohort, not
per loan: the engine's thresholds are per (scenario, cohort, month).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from creditsim.errors import ConfigError, DataError
from creditsim.states import LoanState

__all__ = ["RefinancingCurve", "MORTGAGE_SPREAD", "apply_prepayment_multiplier"]

#: 30-year fixed mortgage rate minus the 10-year Treasury yield, decimal: about 1.7 pp on average over
#: 1990-2019 (Freddie Mac PMMS vs FRED DGS10); wider since 2022. Only its level matters through r.
MORTGAGE_SPREAD: float = 0.017


@dataclass(frozen=True)
class RefinancingCurve:
    """The arctangent S-curve (module docstring); ``mortgage_spread`` turns the 10-year yield into the
    market mortgage rate. All rates are annual decimals."""

    k1: float = 0.3
    k2: float = 0.2
    k3: float = 10.0
    k4: float = 1.2
    mortgage_spread: float = MORTGAGE_SPREAD

    def __post_init__(self) -> None:
        for name in ("k1", "k2", "k3", "k4", "mortgage_spread"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"RefinancingCurve.{name} must be a finite number >= 0, got {value!r}")
        if self.k1 - self.k2 * np.arctan(self.k3 * self.k4) <= 0:
            raise ConfigError(f"RefinancingCurve: CPR at a zero coupon ratio is k1 - k2 arctan(k3 k4) = "
                              f"{self.k1 - self.k2 * np.arctan(self.k3 * self.k4):.4f}; it must stay > 0")

    def cpr(self, ratio: np.ndarray) -> np.ndarray:
        """Annual prepayment rate (decimal) at coupon / market-rate ratios ``ratio`` (any shape, >= 0);
        increasing in the ratio."""
        r = np.asarray(ratio, dtype=np.float64)
        return self.k1 - self.k2 * np.arctan(self.k3 * (self.k4 - r))

    def multiplier(self, coupon: float, ten_year: np.ndarray) -> np.ndarray:
        """``(S, T)`` factors ``CPR(r_t) / CPR(r_0)`` on the monthly prepayment probability for a coupon
        (annual decimal) and 10-year yield paths ``(S, T)`` (decimals); 1 at month 0 by construction."""
        y = np.asarray(ten_year, dtype=np.float64)
        if y.ndim != 2 or not np.isfinite(y).all():
            raise DataError(f"ten_year: expected (S, T) finite yields, got shape {y.shape}")
        market = np.maximum(y + self.mortgage_spread, 1e-4)  # a market mortgage rate is never 0
        cpr = self.cpr(float(coupon) / market)
        return cpr / cpr[:, :1]


def apply_prepayment_multiplier(matrices: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``(S, T, 7, 7)`` matrices with P(CURRENT -> PREPAID) multiplied by ``factor`` ``(S, T)``; the
    change is taken from (or given to) staying CURRENT, capped so that probability stays >= 0. Rows
    stay stochastic; a factor of 1 returns the input unchanged."""
    out = np.array(matrices, dtype=np.float64, copy=True)
    cur, pre = LoanState.CURRENT, LoanState.PREPAID
    p = out[..., cur, pre]
    stay = out[..., cur, cur]
    new = np.minimum(p * np.asarray(factor, dtype=np.float64), p + stay)
    out[..., cur, cur] = np.maximum(stay - (new - p), 0.0)  # at the cap the difference can round to -6e-17
    out[..., cur, pre] = new
    return out
