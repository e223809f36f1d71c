"""Real-estate recoveries that follow house prices: the collateral channel of a macro path.

A defaulted mortgage or real-estate loan recovers from the sale of its collateral, so the share it
recovers moves with the value of that collateral when it is sold. The book's LGD assumption (and the
engine's Beta draw around it) is read as the loss *at today's house prices*; under a scenario the
recovered share is scaled by the house-price level the collateral is sold at:

    LGD_s = 1 - (1 - LGD) * min(1, H_s),      H_s = min_t  HPI_s(t) / HPI_s(0),

where ``HPI_s(t) = prod_{m=1..t} (1 + g_s(m)) ** (1/12)`` is the house-price index implied by the path's
``house_price_growth`` (year-on-year, monthly observations; a month contributes a twelfth of its
annual growth, in logs). Decisions:

- *The path's trough*, not the level in the month of default: the engine draws one LGD per loan and
  scenario (:mod:`creditsim.loans.lgd_draws`) and scales it by one factor per path, and workouts of
  real-estate defaults take a year or more (the book's recovery lag), so sales cluster near the trough
  of a housing bust. Conservative for defaults late in a recovery.
- *Proportional to the collateral value*, no free parameter: with LGD 0.275 (the spec's real-estate
  mid-point) the Fed 2025 severely adverse house-price fall (-33 % peak to trough) gives an LGD of
  about 0.51 -- the order of the loss severities on US mortgage defaults in 2009-2011, when house prices
  were some 30 % below their peak.
- *Only house-price falls count* (``min(1, H)``): rising prices are not credited above today's recovery,
  and a path whose index never goes below its start leaves every LGD bit for bit unchanged.
- *Which loans*: the ``real_estate`` asset class. (Other loans secured by real estate would need the
  tape's ``collateral_type`` in the book; not carried yet.)
"""

from __future__ import annotations

import numpy as np

from creditsim.errors import DataError
from creditsim.states import ASSET_CLASSES, MACRO_VARS

__all__ = ["house_price_index", "house_price_trough", "recovery_scale", "stressed_lgd"]

_HPI = MACRO_VARS.index("house_price_growth")
_REAL_ESTATE = ASSET_CLASSES.index("real_estate")


def house_price_index(macro: np.ndarray) -> np.ndarray:
    """``(S, T)`` house-price index relative to month 0 (1.0 at month 0) of ``(S, T, 9)`` monthly paths
    (decimals, MACRO_VARS order): month ``t`` compounds a twelfth of months ``1..t``'s y/y growth."""
    x = np.asarray(macro, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != len(MACRO_VARS):
        raise DataError(f"macro paths: expected shape (S, T, {len(MACRO_VARS)}), got {x.shape}")
    g = x[:, 1:, _HPI]
    if (g <= -1.0).any():
        raise DataError("macro paths: house_price_growth must be above -1 (a decimal y/y growth rate)")
    # a running sum along months is the same for every chunking of the scenarios (per path, fixed order)
    log_level = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(np.log1p(g) / 12.0, axis=1)], axis=1)
    return np.exp(log_level)


def house_price_trough(macro: np.ndarray) -> np.ndarray:
    """``(S,)`` lowest house-price index of each path relative to its month 0 (``H_s`` above, <= 1)."""
    return house_price_index(macro).min(axis=1)


def recovery_scale(macro: np.ndarray, asset_class: np.ndarray) -> np.ndarray | None:
    """``(S, L)`` factor on the recovered share ``1 - LGD`` of each loan in each scenario: ``H_s`` for
    real-estate loans (``asset_class`` ``(L,)`` codes into ASSET_CLASSES), 1 otherwise; None when no
    loan is real estate or no path's house prices fall (nothing to change)."""
    ac = np.asarray(asset_class)
    hit = ac == _REAL_ESTATE
    if not hit.any():
        return None
    trough = house_price_trough(macro)
    if (trough >= 1.0).all():
        return None
    return np.where(hit[None, :], trough[:, None], 1.0)


def stressed_lgd(lgd: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """``1 - (1 - lgd) * scale`` (``(S, L)`` realised LGDs), or ``lgd`` itself where ``scale`` is None;
    loans with a factor of exactly 1 keep their LGD bit for bit. The reference formula: the engine
    applies it draw by draw (:func:`creditsim.loans.lgd_draws.stressed_draw`), and a test holds the two to
    the same bits."""
    if scale is None:
        return lgd
    # the same three operations, the last two in place (the simulation stresses every chunk)
    out = (1.0 - np.asarray(lgd, dtype=np.float64)) * scale
    np.subtract(1.0, out, out=out)
    np.copyto(out, lgd, where=np.asarray(scale) == 1.0)
    return out
