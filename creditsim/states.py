"""Domain constants: loan states, the allowed-transition mask, rating grades, macro variables.

The index order of :class:`LoanState`, of the grades and of :data:`MACRO_VARS` is part of the public
API: arrays of shape ``(..., 7, 7)`` or ``(..., 9)`` are indexed by these positions everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from creditsim.errors import ConfigError

__all__ = [
    "LoanState",
    "N_STATES",
    "ABSORBING_STATES",
    "DELINQUENT_STATES",
    "ALLOWED_TRANSITIONS",
    "allowed_mask",
    "reachable_states",
    "Grade7",
    "Grade8",
    "GRADES_7",
    "GRADES_8",
    "MacroVar",
    "MACRO_VARS",
    "MACRO_VAR_INFO",
    "SCENARIOS",
    "scenario_index",
    "POOL_CF_TYPES",
    "ASSET_CLASSES",
]


class LoanState(IntEnum):
    """Monthly loan state. DEFAULT, PREPAID and MATURED are absorbing."""

    CURRENT = 0
    DPD30 = 1
    DPD60 = 2
    DPD90 = 3
    DEFAULT = 4
    PREPAID = 5
    MATURED = 6


N_STATES: int = len(LoanState)
ABSORBING_STATES: tuple[LoanState, ...] = (LoanState.DEFAULT, LoanState.PREPAID, LoanState.MATURED)
#: the live states CURRENT, DPD30, DPD60, DPD90 are 0 .. N_LIVE_STATES - 1, the absorbing ones follow
N_LIVE_STATES: int = N_STATES - len(ABSORBING_STATES)
DELINQUENT_STATES: tuple[LoanState, ...] = (LoanState.DPD30, LoanState.DPD60, LoanState.DPD90)


def allowed_mask() -> np.ndarray:
    """Boolean ``(7, 7)`` matrix, ``mask[i, j]`` True when a one-month move i -> j is possible.

    Rules (decided for this library, see ARCHITECTURE.md):

    - absorbing states (DEFAULT, PREPAID, MATURED) only stay where they are;
    - delinquency advances at most one bucket a month (CURRENT -> DPD30 -> DPD60 -> DPD90);
    - any delinquent state may cure to CURRENT or to any lower bucket, or stay;
    - DEFAULT is reachable from every live state: a jump to default (bankruptcy, a rating downgrade
      to D, a charge-off decision) does not wait for the 90-day bucket;
    - PREPAID and MATURED are reachable from every live state: a delinquent loan can be refinanced or
      sold (paying balance and arrears), and a cure in the final month pays arrears and the balloon.
    """
    s = LoanState
    mask = np.zeros((N_STATES, N_STATES), dtype=bool)
    for a in ABSORBING_STATES:
        mask[a, a] = True
    live = (s.CURRENT, s.DPD30, s.DPD60, s.DPD90)
    for i in live:
        for j in live:
            if j <= i + 1:  # stay, cure to any lower bucket, or advance one bucket
                mask[i, j] = True
        mask[i, s.DEFAULT] = mask[i, s.PREPAID] = mask[i, s.MATURED] = True
    return mask


ALLOWED_TRANSITIONS: np.ndarray = allowed_mask()
ALLOWED_TRANSITIONS.setflags(write=False)


def reachable_states(months: int) -> np.ndarray:
    """``(7, 7)`` bool: state ``j`` can follow state ``i`` after ``months`` monthly moves along
    :data:`ALLOWED_TRANSITIONS` (``months`` = 0: only ``i`` itself). A panel row ``months`` after the
    loan's previous row (a quarterly panel, or a gap) may show any such ``j``: CURRENT -> DPD90 takes
    three months."""
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 0:
        raise ValueError(f"months must be a non-negative integer, got {months!r}")
    step = ALLOWED_TRANSITIONS.astype(np.int64)
    out = np.eye(N_STATES, dtype=np.int64)
    for _ in range(int(min(months, 2 * N_STATES))):  # the pattern stops changing after a few steps
        out = np.minimum(out @ step, 1)
    return out.astype(bool)


class Grade7(IntEnum):
    """Rating grades of the 7x7 matrices (no separate CCC). D is absorbing."""

    AAA = 0
    AA = 1
    A = 2
    BBB = 3
    BB = 4
    B = 5
    D = 6


class Grade8(IntEnum):
    """Rating grades of the 8x8 matrices, with a CCC/C grade. D is absorbing."""

    AAA = 0
    AA = 1
    A = 2
    BBB = 3
    BB = 4
    B = 5
    CCC = 6
    D = 7


GRADES_7: tuple[str, ...] = tuple(g.name for g in Grade7)
GRADES_8: tuple[str, ...] = tuple(g.name for g in Grade8)


@dataclass(frozen=True)
class MacroVar:
    """One macro variable: name, meaning and unit (always a decimal, monthly frequency)."""

    name: str
    description: str
    unit: str


MACRO_VAR_INFO: tuple[MacroVar, ...] = (
    MacroVar("gdp_growth", "real activity growth, year on year", "decimal (0.02 = 2 % y/y)"),
    MacroVar("unemployment_rate", "civilian unemployment rate", "decimal (0.045 = 4.5 %)"),
    MacroVar("inflation_rate", "CPI inflation, year on year", "decimal (0.03 = 3 % y/y)"),
    MacroVar("policy_rate", "effective federal funds rate", "decimal (0.05 = 5 % p.a.)"),
    MacroVar("yield_10y", "10-year Treasury yield", "decimal (0.04 = 4 % p.a.)"),
    MacroVar("credit_spread_ig", "investment-grade corporate OAS", "decimal (0.012 = 120 bp)"),
    MacroVar("credit_spread_hy", "high-yield corporate OAS", "decimal (0.035 = 350 bp)"),
    MacroVar("house_price_growth", "house price index growth, year on year", "decimal (0.05 = 5 % y/y)"),
    MacroVar("default_rate", "delinquency-based default-rate index (annual)", "decimal (0.02 = 2 %)"),
)
MACRO_VARS: tuple[str, ...] = tuple(v.name for v in MACRO_VAR_INFO)

SCENARIOS: tuple[str, ...] = ("baseline", "adverse", "severely_adverse", "stagflation")


def scenario_index(scenario: int | str) -> int:
    """Map a scenario name or index to its index (0 baseline .. 3 stagflation)."""

    if isinstance(scenario, str):
        key = scenario.strip().lower().replace(" ", "_").replace("-", "_")
        if key not in SCENARIOS:
            raise ConfigError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
        return SCENARIOS.index(key)
    idx = int(scenario)
    if not 0 <= idx < len(SCENARIOS):
        raise ConfigError(f"scenario index must be in 0..{len(SCENARIOS) - 1}, got {scenario}")
    return idx


#: Pool cashflow types K, in the order of the last axis of ``(S, T, K)`` pool arrays.
POOL_CF_TYPES: tuple[str, ...] = (
    "interest",
    "scheduled_principal",
    "prepayment",
    "recovery",
    "default_par",
    "loss",
    "balance",
)

ASSET_CLASSES: tuple[str, ...] = ("corporate", "consumer", "real_estate", "receivables")
