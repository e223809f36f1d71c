"""The macro sensitivity of roll rates: one source of truth for the synthetic data and the Markov overlay.

``shared/spec/loan-tape.md`` gives the direction and size of the roll-rate sensitivities as log-odds
per unit standardised macro shock (staying put is the reference move):

==============  ============  =========  ==========
move class      unemployment  HY spread  GDP growth
==============  ============  =========  ==========
delinquency     +1.5          +0.8       -2.0        (current -> 30 dpd, the onset)
default         +1.0          +0.5       -1.5        (roll forward 30 -> 60 -> 90 and live -> default)
cure            -0.8          -0.3       +1.0        (delinquent -> a better bucket)
prepayment      -0.3          -0.2       +0.5        (live -> prepaid)
==============  ============  =========  ==========

Standardisation (:data:`SHOCK_MEAN`, :data:`SHOCK_SD`): ``z = (x - mean) / sd``. The means are the
steady state of :class:`creditsim.macro.synthetic.MacroScenarioGenerator` (the jump-off point of every
scenario, so the baseline scenario sits near ``z = 0``); the sds are the 1981-2019 standard
deviations of the US series (``load_macro_history``).

Scale (:data:`SENSITIVITY_SCALE` = 0.1, a decision). The three variables move together in a
downturn: a Fed severely adverse path is 3-5 standard deviations on each at once, so the spec's
coefficients at full strength shift the delinquency log-odds by about +18 (every loan defaults within
a year). Scaled by 0.1 the severely adverse peak multiplies current -> 30 dpd odds by about
e^1.8 = 6, the order of the 2007-2009 rise of the US bank-loan delinquency rate (FRED ``DRALACBS``:
1.5 % -> 7.4 %).

Superseded as the default (issue 13): the Markov chain's default overlay and the synthetic loan panels
now share the per-asset-class link calibrated on the bank delinquency history
(:mod:`creditsim.transitions.calibrate`). This spec-scaled link stays available as
``MarkovTransitionModel.default(calibrated=False)`` and ``synthetic.MacroSensitivity()``; its 9-26x
stress multiples under the Fed 2025 severely adverse path are why it was replaced.

Clipping (:data:`Z_CLIP` = 4, a decision for the Markov overlay): a log-odds tilt linear in ``z``
extrapolates without bound, and generated or user paths can leave the range the sensitivities were
read from; the Markov overlay clips each standardised shock to ``|z| <= 4`` (beyond the worst month
of 2008-09 for unemployment and spreads). The legacy ``MacroSensitivity`` of the synthetic generator does
not clip (its panels stay bit-identical to the pre-issue-13 ones); the calibrated ``OverlaySensitivity``
clips as the overlay does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from creditsim.states import MACRO_VARS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SENSITIVITY_VARIABLES",
    "SPEC_SENSITIVITY",
    "SENSITIVITY_SCALE",
    "SHOCK_MEAN",
    "SHOCK_SD",
    "Z_CLIP",
    "spec_betas",
    "scaled_sensitivity",
    "standardised_shocks",
    "UNEMPLOYMENT_CHANGE",
    "CHANGE_MONTHS",
    "OVERLAY_VARS",
    "with_derived",
    "derived_frame",
]

#: The macro variables the spec's sensitivities are defined on, in the order of :func:`spec_betas`.
SENSITIVITY_VARIABLES: tuple[str, str, str] = ("unemployment_rate", "credit_spread_hy", "gdp_growth")

#: The spec's log-odds per unit standardised shock, at full strength, by move class and variable.
SPEC_SENSITIVITY: dict[str, dict[str, float]] = {
    "delinquency": {"unemployment_rate": 1.5, "credit_spread_hy": 0.8, "gdp_growth": -2.0},
    "default": {"unemployment_rate": 1.0, "credit_spread_hy": 0.5, "gdp_growth": -1.5},
    "cure": {"unemployment_rate": -0.8, "credit_spread_hy": -0.3, "gdp_growth": 1.0},
    "prepayment": {"unemployment_rate": -0.3, "credit_spread_hy": -0.2, "gdp_growth": 0.5},
}

#: Strength applied to :data:`SPEC_SENSITIVITY` (see the module docstring for the calibration).
SENSITIVITY_SCALE: float = 0.1

#: Standardisation centres (decimals): the macro generator's steady state.
SHOCK_MEAN: dict[str, float] = {"unemployment_rate": 0.042, "credit_spread_hy": 0.040, "gdp_growth": 0.020}

#: Standardisation scales (decimals): 1981-2019 standard deviations of the US series.
SHOCK_SD: dict[str, float] = {"unemployment_rate": 0.017, "credit_spread_hy": 0.025, "gdp_growth": 0.019}

#: Largest absolute standardised shock the Markov overlay applies.
Z_CLIP: float = 4.0


def spec_betas(move_class: str) -> tuple[float, float, float]:
    """The spec's full-strength coefficients of a move class in :data:`SENSITIVITY_VARIABLES` order."""
    per_var = SPEC_SENSITIVITY[move_class]
    return tuple(per_var[v] for v in SENSITIVITY_VARIABLES)  # type: ignore[return-value]


def scaled_sensitivity(scale: float = SENSITIVITY_SCALE) -> dict[str, dict[str, float]]:
    """``{move class: {variable: scale x beta}}``: the effective log-odds per unit shock."""
    return {cls: {v: scale * b for v, b in per_var.items()} for cls, per_var in SPEC_SENSITIVITY.items()}


def standardised_shocks(macro: np.ndarray, clip: float | None = None) -> np.ndarray:
    """``(..., 3)`` standardised shocks of :data:`SENSITIVITY_VARIABLES` from ``(..., 9)`` macro values.

    Args:
        macro: macro values in MACRO_VARS order, decimals, last axis 9.
        clip: if given, each shock is clipped to ``[-clip, clip]``.
    """
    x = np.asarray(macro, dtype=np.float64)
    cols = [MACRO_VARS.index(v) for v in SENSITIVITY_VARIABLES]
    mean = np.array([SHOCK_MEAN[v] for v in SENSITIVITY_VARIABLES])
    sd = np.array([SHOCK_SD[v] for v in SENSITIVITY_VARIABLES])
    z = (x[..., cols] - mean) / sd
    return z if clip is None else np.clip(z, -clip, clip)


#: A derived driver: the 12-month change in the unemployment rate (decimals). Credit losses follow the
#: *rise* in unemployment more than its level (after a recession unemployment stays high for years while
#: delinquencies fall back); on the bank delinquency history the level's coefficient came out negative once
#: spreads and growth were in the model, the change's positive for every loan type.
UNEMPLOYMENT_CHANGE: str = "unemployment_change"
#: months of the change
CHANGE_MONTHS: int = 12
#: the variables a macro overlay or credit link may use: the nine MACRO_VARS, then the derived change
OVERLAY_VARS: tuple[str, ...] = (*MACRO_VARS, UNEMPLOYMENT_CHANGE)


def with_derived(paths: np.ndarray) -> np.ndarray:
    """``(..., T, 10)``: monthly ``paths`` ``(..., T, 9)`` (MACRO_VARS order) with the derived
    :data:`UNEMPLOYMENT_CHANGE` appended. A path has no months before its month 0, so the change over
    the first year is taken from month 0 (the economy is assumed flat before the jump-off): month ``t``
    gets ``u_t - u_max(t - 12, 0)``. Per path and month, so it does not depend on how paths are chunked."""
    x = np.asarray(paths, dtype=np.float64)
    u = x[..., MACRO_VARS.index("unemployment_rate")]
    lagged = np.concatenate([np.repeat(u[..., :1], min(CHANGE_MONTHS, u.shape[-1]), axis=-1),
                             u[..., : max(u.shape[-1] - CHANGE_MONTHS, 0)]], axis=-1)
    return np.concatenate([x, (u - lagged)[..., None]], axis=-1)


def derived_frame(macro: pd.DataFrame) -> pd.DataFrame:
    """A monthly macro frame with the :data:`UNEMPLOYMENT_CHANGE` column added from its own history
    (NaN for the first 12 months; a frame that already has the column is returned as is)."""
    if UNEMPLOYMENT_CHANGE in macro.columns:
        return macro
    out = macro.copy()
    out[UNEMPLOYMENT_CHANGE] = macro["unemployment_rate"].diff(CHANGE_MONTHS)
    return out
