"""Markov-overlay sensitivities from a credit link calibrated on real history (issue 13).

The overlay of :class:`~creditsim.transitions.markov.MarkovTransitionModel` tilts monthly roll-rate
log-odds by ``sum_v beta_{class, v} z_v``. Here the betas of one asset class come from its fitted
:class:`~creditsim.macro.credit_link.CreditLink` (fitted on the Fed's bank *delinquency* rates by loan
type, 1985/87/91-2019; the charge-off table by loan type only covers 2020-24, too short to fit a link)
instead of the spec's coefficients times a chosen 0.1. The matched stress multiple is therefore a
delinquency multiple; charge-offs lag delinquencies and can move by a different multiple, which is not
checked here (the bundled charge-off table by loan type starts in 2020). Real estate is fitted on residential mortgages
(DRSFRMACBS); the stress table's "banks*" reference column uses banks' charge-offs on all real-estate
loans (commercial included), the closest published match:

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

The shipped calibration (:func:`calibrate_asset_classes`, :data:`CALIBRATED_OVERLAY_FILE`, the default
overlay of :meth:`MarkovTransitionModel.default`), links fitted 1985/87/91-2019 with signs imposed;
long-run probit effects per sd, stress multiple = Fed 2025 severely adverse / baseline peak-year rate:

=============  ========================  =====  ======================================  ==========  =====
asset class    series (jump-off rate)    phi    long-run effects                        dropped     x
=============  ========================  =====  ======================================  ==========  =====
corporate      business loans (1.13 %)   0.92   du +0.14, HY +0.27, gdp -0.07, pol +0.48  hpi         3.06
consumer       consumer loans (2.74 %)   0.87   du +0.06, HY +0.05, hpi -0.03, pol +0.16  gdp         1.46
real estate    resid. mortgages (1.77 %) 0.98   du +0.06, HY +0.41, gdp -0.22, hpi -0.59,  --          3.57
                                                pol +0.65
receivables    business loans (1.13 %)   0.92   as corporate                            hpi         3.06
=============  ========================  =====  ======================================  ==========  =====

Worst-year PD from CURRENT, Fed 2025 baseline -> severely adverse (the spec-scaled overlay in brackets):
corporate 2.96 % -> 9.08 % (2.58 -> 31.8 %), consumer 5.82 -> 8.49 % (5.69 -> 48.7 %), real estate 1.07 ->
3.82 % (0.97 -> 17.1 %), receivables 0.81 -> 2.49 % (0.73 -> 17.2 %); the baseline with inflation +6 pp,
policy rate +5 pp and 10y +4 pp: 4.90 / 7.09 / 1.38 / 1.32 % (the old overlay: unchanged). The tables'
unpublished spreads start from the observed month before the jump-off (HY 2.8 % for 2025, not the
regression's 1.66 %, :func:`creditsim.datasets.load_fed_scenarios`), which lowered the multiples
from 3.29 / 1.48 / 3.72 (corporate / consumer / real estate).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.macro.credit_link import EXPECTED_SIGNS, CreditLink, fit_credit_link
from creditsim.macro.sensitivity import SPEC_SENSITIVITY
from creditsim.states import ASSET_CLASSES, MACRO_VARS, LoanState
from creditsim.transitions.overlay_file import CALIBRATED_OVERLAY_FILE, calibrated_sensitivities, load_calibrated_overlay
from creditsim.macro.sensitivity import UNEMPLOYMENT_CHANGE
from creditsim.transitions.markov import (DEFAULT_MACRO_SENSITIVITY, DEFAULT_MACRO_STD, UNEMPLOYMENT_CHANGE_SD,
                                         MarkovTransitionModel, base_case_matrix)

__all__ = ["DEFAULT_SHARE", "CURE_SHARE", "OverlayCalibration", "calibrate_overlay", "worst_year_pd",
           "CALIBRATION_END", "CALIBRATION_YEAR", "CALIBRATED_OVERLAY_FILE", "calibrate_asset_classes",
           "load_calibrated_overlay", "calibrated_sensitivities"]


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


def _overlay_std(variable: str) -> float:
    """The Markov overlay's standardisation scale of a variable (decimals)."""
    return UNEMPLOYMENT_CHANGE_SD if variable == UNEMPLOYMENT_CHANGE else float(DEFAULT_MACRO_STD[variable])


def _unit_sensitivities(link: CreditLink, prepayment: dict[str, float], kappa: float) -> dict[str, dict[str, float]]:
    """Overlay sensitivities for scale ``kappa``: the link's long-run effects in overlay units, split by class."""
    lr = link.long_run()
    onset = {v: kappa * lr[v] * _overlay_std(v) / sd for v, sd in zip(link.variables, link.sd)}
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
    prepay = dict(prepayment) if prepayment is not None else {}

    def chain_ratio(kappa: float) -> float:
        model = MarkovTransitionModel.from_matrix(base_matrix, sensitivities=_unit_sensitivities(link, prepay, kappa))
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
    return OverlayCalibration(asset_class=asset_class, sensitivities=_unit_sensitivities(link, prepay, kappa),
                              kappa=kappa, link_ratio=link_ratio, chain_ratio=chain_ratio(kappa))


def _peak_year(rates: np.ndarray) -> float:
    """Largest mean of four consecutive quarterly rates."""
    if rates.shape[0] < 4:
        raise DataError(f"stress multiple: {rates.shape[0]} quarters of rates, a year needs 4")
    return float(np.max(np.convolve(rates, np.ones(4) / 4.0, mode="valid")))



# ---------------------------------------------------------------- the shipped per-class calibration
#: last month of the history the links are fitted on: pre-pandemic. In 2020-21 forbearance (CARES Act
#: payment relief) held reported delinquencies down while unemployment reached 14.8 %, a break in the
#: link that would teach it that unemployment does not matter.
CALIBRATION_END: str = "2019-12"
#: the supervisory year whose baseline / severely adverse tables define the stress multiple matched
CALIBRATION_YEAR: int = 2025


def calibrate_asset_classes(end: str = CALIBRATION_END, year: int = CALIBRATION_YEAR) -> dict[str, dict[str, Any]]:
    """Fit one credit link per asset class on the bank delinquency history and calibrate its overlay.

    Per class: the delinquency series of :data:`~creditsim.datasets.credit_losses.ASSET_CLASS_SERIES`
    (corporate and receivables: business loans; consumer: consumer loans; real estate: residential
    mortgages) against the bundled macro history up to ``end``, drivers :data:`~creditsim.macro.credit_link.LINK_VARIABLES` with
    :data:`EXPECTED_SIGNS` imposed; the overlay of the spec's base-case matrix scaled so the chain's
    worst-year PD multiple under the ``year`` Fed severely adverse vs baseline tables equals the link's
    peak-year delinquency multiple, from the series' last rate observed before the tables' jump-off.
    Prepayment keeps the default overlay's sensitivities.

    Returns ``{asset class: {"link": CreditLink JSON dict, "start_rate", "kappa", "link_ratio",
    "chain_ratio", "sensitivities"}}`` in ASSET_CLASSES order."""
    from creditsim.datasets import load_bank_loss_rates, load_fed_scenarios, load_macro_history
    from creditsim.datasets.credit_losses import ASSET_CLASS_SERIES
    from creditsim.macro.scenarios import fed_table_path

    rates = load_bank_loss_rates("delinquency")
    macro = load_macro_history(ragged="keep")
    jump_off = load_fed_scenarios(year, "baseline", monthly=True).index[0]
    stress, base = fed_table_path(year, "severely_adverse"), fed_table_path(year, "baseline")
    out: dict[str, dict[str, Any]] = {}
    for cls in ASSET_CLASSES:
        series = rates[ASSET_CLASS_SERIES[cls]].dropna()
        link = fit_credit_link(series, macro, end=end, name=cls, signs=EXPECTED_SIGNS)
        start_rate = float(series.loc[: jump_off - pd.DateOffset(days=1)].iloc[-1])
        cal = calibrate_overlay(link, base_case_matrix(cls), cls, stress, base, start_rate,
                                prepayment=DEFAULT_MACRO_SENSITIVITY["prepayment"])
        out[cls] = {"link": json.loads(link.to_json()), "series": ASSET_CLASS_SERIES[cls], "start_rate": start_rate,
                    "kappa": cal.kappa, "link_ratio": cal.link_ratio, "chain_ratio": cal.chain_ratio,
                    "sensitivities": cal.sensitivities}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate :data:`CALIBRATED_OVERLAY_FILE` (atomically) and print the per-class table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=CALIBRATED_OVERLAY_FILE)
    args = parser.parse_args(argv)
    result = calibrate_asset_classes()
    payload = {"end": CALIBRATION_END, "year": CALIBRATION_YEAR, "asset_classes": result}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, args.out)
    for cls, e in result.items():
        lr = {v: round(b / (1 - e["link"]["persistence"]), 3) for v, b in zip(e["link"]["variables"], e["link"]["coef"])}
        print(f"{cls:12s} {e['series']:22s} start {e['start_rate']:.4f} phi {e['link']['persistence']:.3f} "
              f"long-run {lr} dropped {e['link']['dropped']} kappa {e['kappa']:.3f} "
              f"stress multiple {e['link_ratio']:.2f}")


if __name__ == "__main__":
    main()
