"""Markov-overlay sensitivities from a credit link calibrated on real history (issue 13).

The overlay of :class:`~creditsim.transitions.markov.MarkovTransitionModel` tilts monthly roll-rate
log-odds by ``sum_v beta_{class, v} z_v``. Here the betas of one asset class come from its fitted
:class:`~creditsim.macro.credit_link.CreditLink` (real loss / delinquency history) instead of the spec's
coefficients times a chosen 0.1:

1. *Direction and relative size per variable*: the link's long-run probit effects ``b_v / (1 - phi)``
   (per historical sd), converted to the overlay's standardisation (``x sd_overlay / sd_link``).
2. *Split over move classes*: the spec's pattern -- the roll-forward ("default") tilt is
   :data:`DEFAULT_SHARE` of the delinquency-onset tilt and the cure tilt :data:`CURE_SHARE` of it (the
   spec's ratios averaged over its three variables). Prepayment keeps its own sensitivities (the link says
   nothing about prepayment).
3. *Overall size* ``kappa``: the one number the link cannot give directly (probit points of a book's loss
   rate vs log-odds of a monthly roll): chosen so that the chain's worst-12-month PD from CURRENT under a
   reference stress path, relative to the same under the reference baseline path, equals the link's
   ratio of peak-year rates under the same two paths. Solved by bisection; the chain's PD multiple is
   increasing in ``kappa``.

So the overlay reproduces the stress multiple the real history implies, with the variable mix the data
chose; what the static overlay cannot carry is the link's partial adjustment (losses lagging the
cycle), which the chain's own roll-through time approximates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from creditsim.errors import ConfigError, DataError
from creditsim.macro.credit_link import CreditLink
from creditsim.macro.sensitivity import SPEC_SENSITIVITY
from creditsim.states import MACRO_VARS, LoanState
from creditsim.transitions.markov import DEFAULT_MACRO_STD, MarkovTransitionModel

__all__ = ["DEFAULT_SHARE", "CURE_SHARE", "OverlayCalibration", "calibrate_overlay", "worst_year_pd"]


def _spec_ratio(cls: str) -> float:
    """Mean over the spec's variables of ``beta_cls / beta_delinquency``."""
    d = SPEC_SENSITIVITY["delinquency"]
    return float(np.mean([SPEC_SENSITIVITY[cls][v] / d[v] for v in d]))


#: roll-forward tilt / onset tilt (spec: 1.0/1.5, 0.5/0.8, -1.5/-2.0 -> 0.68)
DEFAULT_SHARE: float = _spec_ratio("default")
#: cure tilt / onset tilt (spec: -0.8/1.5, -0.3/0.8, 1.0/-2.0 -> -0.47)
CURE_SHARE: float = _spec_ratio("cure")


@dataclass(frozen=True)
class OverlayCalibration:
    """The calibrated overlay of one asset class: ``sensitivities`` ({move class: {variable: log-odds per
    overlay-standardised unit}}), the scale ``kappa``, and the stress multiples it matches: ``link_ratio``
    (peak-year rate, stress / baseline) and ``chain_ratio`` (worst-12-month PD from CURRENT)."""

    asset_class: str
    sensitivities: dict[str, dict[str, float]]
    kappa: float
    link_ratio: float
    chain_ratio: float


def worst_year_pd(matrices: np.ndarray) -> float:
    """Largest 12-month default probability from CURRENT over start months of ``(T, 7, 7)`` monthly
    matrices (T >= 12)."""
    T = matrices.shape[0]
    if T < 12:
        raise DataError(f"worst_year_pd: {T} months of matrices, a year needs 12")
    worst = 0.0
    for start in range(T - 11):
        row = np.zeros(matrices.shape[-1])
        row[LoanState.CURRENT] = 1.0
        for t in range(start, start + 12):
            row = row @ matrices[t]
        worst = max(worst, float(row[LoanState.DEFAULT]))
    return worst


def _unit_sensitivities(link: CreditLink, macro_std: np.ndarray, prepayment: dict[str, float],
                        kappa: float) -> dict[str, dict[str, float]]:
    """Overlay sensitivities for scale ``kappa``: the link's long-run effects in overlay units, split by class."""
    lr = link.long_run()
    onset = {v: kappa * lr[v] * float(macro_std[MACRO_VARS.index(v)]) / sd for v, sd in zip(link.variables, link.sd)}
    return {"delinquency": onset, "default": {v: DEFAULT_SHARE * b for v, b in onset.items()},
            "cure": {v: CURE_SHARE * b for v, b in onset.items()}, "prepayment": dict(prepayment)}


def calibrate_overlay(link: CreditLink, base_matrix: np.ndarray, asset_class: str, stress_path: np.ndarray,
                      baseline_path: np.ndarray, start_rate: float,
                      prepayment: dict[str, float] | None = None) -> OverlayCalibration:
    """Overlay sensitivities of one asset class from its credit link (see the module docstring).

    base_matrix: ``(7, 7)`` the class's through-the-cycle monthly matrix; stress_path / baseline_path:
    ``(T, 9)`` monthly macro (decimals, MACRO_VARS order, T >= 12) used for the stress multiple; start_rate:
    the link's rate at the jump-off (fraction). The chain uses the overlay's default standardisation
    (:data:`~creditsim.transitions.markov.DEFAULT_MACRO_MEAN` / ``STD``)."""
    paths = np.stack([np.asarray(stress_path, float), np.asarray(baseline_path, float)])
    if paths.ndim != 3 or paths.shape[1] < 12 or paths.shape[2] != len(MACRO_VARS):
        raise DataError(f"stress / baseline paths: expected (T >= 12, {len(MACRO_VARS)}) each, got {np.shape(stress_path)} "
                        f"and {np.shape(baseline_path)}")
    rates = link.project(paths, start_rate)  # (2, Q)
    link_ratio = float(_peak_year(rates[0]) / _peak_year(rates[1]))
    if link_ratio <= 1.0:
        raise ConfigError(f"{asset_class}: the link gives no stress multiple ({link_ratio:.3f}) for these paths")
    std = np.array([DEFAULT_MACRO_STD[v] for v in MACRO_VARS])
    prepay = dict(prepayment) if prepayment is not None else {}

    def chain_ratio(kappa: float) -> float:
        model = MarkovTransitionModel.from_matrix(base_matrix, sensitivities=_unit_sensitivities(link, std, prepay, kappa))
        mats = model.scenario_matrices(paths)
        return worst_year_pd(mats[0]) / worst_year_pd(mats[1])

    lo, hi = 0.0, 1.0
    while chain_ratio(hi) < link_ratio:
        hi *= 2.0
        if hi > 64:
            raise ConfigError(f"{asset_class}: no overlay scale up to 64 reaches the link's stress multiple {link_ratio:.2f}")
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if chain_ratio(mid) < link_ratio else (lo, mid)
    kappa = 0.5 * (lo + hi)
    return OverlayCalibration(asset_class=asset_class, sensitivities=_unit_sensitivities(link, std, prepay, kappa),
                              kappa=kappa, link_ratio=link_ratio, chain_ratio=chain_ratio(kappa))


def _peak_year(rates: np.ndarray) -> float:
    """Largest mean of four consecutive quarterly rates."""
    if rates.shape[0] < 4:
        raise DataError(f"stress multiple: {rates.shape[0]} quarters of rates, a year needs 4")
    return float(np.max(np.convolve(rates, np.ones(4) / 4.0, mode="valid")))

