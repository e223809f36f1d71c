"""The waterfall's market inputs taken from macro scenario paths.

A deal reads three things from the economy besides its pool's cashflows: the base rate of its floating
notes, the high-yield spread that moves the price at which collateral is sold or bought
(``spread_duration``), and -- through the pool engine, not here -- the CCC par of the rated loans.
:func:`deal_market_paths` maps ``(S, T, 9)`` macro paths (numpy, or torch with gradients) to the
``run_waterfall`` keyword arguments the deal uses, so the Monte Carlo run, the expected-loss path and the
note ECL price a deal on the same economy. :data:`RATING_FACTORS` are the rating factors the pool engine
turns the rated loans' grades into a WARF path with (the reinvestment criteria).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from creditsim.schema import RATINGS
from creditsim.states import MACRO_VARS

__all__ = ["deal_market_paths", "RATING_FACTORS"]

#: Moody's idealised rating factors of the letter grades (``RATINGS`` order, AAA..CCC), at the middle notch
#: of each grade (Aaa 1, Aa2 20, A2 120, Baa2 360, Ba2 1350, B2 2720, Caa2 6500; Moody's "Approach to
#: Rating Collateralized Loan Obligations"): the WARF of the reinvestment criteria. A tape rated by letter
#: grade cannot tell B1 (2220) from B3 (3490); the middle notch is the unbiased guess.
RATING_FACTORS: dict[str, float] = {"AAA": 1.0, "AA": 20.0, "A": 120.0, "BBB": 360.0, "BB": 1350.0, "B": 2720.0,
                                    "CCC": 6500.0}
assert tuple(RATING_FACTORS) == RATINGS


def deal_market_paths(deal: Any, macro: np.ndarray | torch.Tensor, months: int) -> dict[str, Any]:
    """``run_waterfall`` inputs from macro paths ``(S, >= months, 9)`` (MACRO_VARS order, decimals):
    ``base_rate`` = each path's policy rate (the SOFR proxy the floating loans follow too) when a class
    floats, ``hy_spread`` = the high-yield spread when the deal has a ``spread_duration``; only what the
    deal uses. Torch paths stay torch (gradients flow to the notes' coupons and the sale price)."""
    paths = macro[:, :months] if isinstance(macro, torch.Tensor) else np.asarray(macro, dtype=np.float64)[:, :months]
    out: dict[str, Any] = {}
    if deal.has_floating:
        out["base_rate"] = paths[:, :, MACRO_VARS.index("policy_rate")]
    if deal.spread_duration > 0:
        out["hy_spread"] = paths[:, :, MACRO_VARS.index("credit_spread_hy")]
    return out
