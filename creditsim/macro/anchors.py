"""What each scenario means, carried by the dynamics from any start: anchored scenario offsets.

The MacroVAE learns its scenario label from historical windows, and those labels are mostly about where
a window *starts* (stagflation = windows starting with high inflation). From today's state the label then
carries almost no information: measured from 2025-09 (``bench/bench_macro_scenarios.py``), the VAE's
"stagflation" had the baseline's inflation and policy rate, its adverse peak unemployment exceeded the
baseline's in only 62 % of paths, and its baseline drifted 1.5 pp up in unemployment while the Fed's
baseline is flat.

Method (decision): scenario paths from a given start are the VAE's baseline dynamics for the
*dispersion* (each path's deviation from the VAE's central path: coherent co-movement learnt from the
1980-01..2020-02 windows, the COVID months left out; each path drawing how much of the backbone's pull
it keeps, as the out-of-time-scored forecast does: ``SCENARIO_DEVIATION_PULL`` in
:mod:`creditsim.macro.scenarios`), around an explicit central path per scenario:

    path_s(t) = start + consensus(t) + severity * offset_s((t - onset) / duration)
                + width * (vae_path(t) - vae_centre(t))

except that for the spreads, where the MacroVAE models their logs (the shipped one does,
:attr:`~creditsim.macro.vae.MacroVAEConfig.log_variables`, :data:`PROPORTIONAL_VARIABLES`), a deviation
*below* the VAE's centre is taken in proportion, ``central_s(t) * vae_path(t) / vae_centre(t)``
(:func:`compose`): a spread falls by a share of its level, never through zero. Why (2026-12): composed
additively, even the deviations of a log model left 1.5-2 % of the baseline IG paths from today's
0.77 % at 1 bp or less at month 36 (before the plausible band), and 7-16 % of the baseline's spread paths
reached the band's lower edge; with proportional falls 4-5 %. Rises stay additive because the
deviations are the *baseline's* dynamics, recessions included: taken in proportion on top of a stressed
central path they count a recession twice -- 1,000 paths from 2025-09, seed 11: the adverse HY peak's
90th percentile went from 18.1 % to 22.8 % (13 % of the adverse paths above 22 %, worse than 2008), the
severely adverse median peak from 16.5 % to 18.8 %. The proportional falls make a stressed spread's
downside wider than the additive one (a fall is scaled by the central path over the VAE's centre,
about x5 in the severely adverse peak), so they also make the stress milder on average: the severely
adverse median HY peak is 16.5 % against 18.1 % all-additive (the Fed table's derived peak: 16.9 %),
its median widening 1,380 bp against about 1,500.

- ``consensus(t)``: the Federal Reserve supervisory *baseline*, as changes since its first month
  (mean-reverting, flat unemployment), held after the table's 39 months.
- ``offset_s(t)``: baseline 0; severely adverse = supervisory severely adverse minus baseline, month by
  month (unemployment +4 pp, real GDP about -6 % peak to trough, house prices about -30 %), decaying with
  a 12-month half-life after the table ends; adverse = 60 % of it (a moderate recession, by
  construction); stagflation = a narrative shock (:data:`STAGFLATION_PEAKS`): inflation +4.5 pp and the
  policy rate +3.5 pp for two years, falling activity and rising unemployment.
- ``severity``, onset and duration: per path a depth on ``[0, SEVERITY_MAX]`` (a symmetric beta, median 1,
  sd :data:`SEVERITY_SD`, adverse :data:`SCENARIO_SEVERITY_SD`), a start 0..:data:`MAX_ONSET_MONTHS`
  months after today (0..18 for adverse, :data:`SCENARIO_MAX_ONSET`) and a pace on
  :data:`DURATION_RANGE` (the offset at ``(t - onset) / duration``): recessions differ in depth, timing
  and length, not only in noise.
  The depth was lognormal (log-sd 0.5, adverse 0.65) until 2026-12: without a cap, 1 % of severely
  adverse paths drew more than x3.2 the supervisory shock and one adverse path of a 10,000-path run
  x12.6 (a y/y house-price fall of 127 %); :data:`SEVERITY_MAX` = 2 bounds a path at twice the
  supervisory severely adverse shock (unemployment +11 pp, the COVID peak's size).
- ``width``: :data:`SCENARIO_DEVIATION_WIDTH`, 1.15-1.25 for GDP growth, house prices and the default
  rate, 1 for the rest: the spread history's windows of each type keep in those three.
- Rates and levels are floored at :data:`~creditsim.macro.vae.LOWER_BOUNDS`, and the paths are kept in
  history's range with a soft edge (:mod:`creditsim.macro.plausibility`).

Supervisory tables: Board of Governors of the Federal Reserve System, supervisory scenarios (public
domain), bundled in :mod:`creditsim.datasets.fed`. The VAE remains the generator of every path's
variation; the anchors say what the scenario names mean.
"""

from __future__ import annotations

import numpy as np

from creditsim.datasets import load_fed_scenarios
from creditsim.errors import ConfigError
from creditsim.macro.vae import LOWER_BOUNDS
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = ["ANCHOR_YEAR", "STAGFLATION_PEAKS", "ADVERSE_SHARE", "SEVERITY_SD", "SCENARIO_SEVERITY_SD", "SEVERITY_MAX",
           "consensus_path", "scenario_offsets", "path_offsets", "severity_draws", "MAX_ONSET_MONTHS", "compose",
           "PROPORTIONAL_FLOOR", "PROPORTIONAL_VARIABLES", "floor", "DURATION_RANGE", "offset_months",
           "SCENARIO_DEVIATION_WIDTH", "deviation_width", "SCENARIO_MAX_ONSET"]

#: supervisory vintage of the anchors (the latest bundled, 2026 proposed)
ANCHOR_YEAR = 2026
#: adverse = this share of the severely adverse offset (0.5 left its GDP fall below 30 % of the way
#: from baseline to severely adverse: a level fall is not linear in the growth offset)
ADVERSE_SHARE = 0.6
#: largest severity: a path's shock is at most twice its scenario's offset (twice the supervisory severely
#: adverse shock: unemployment +11 pp from today, the size of the COVID peak, the worst month since 1980)
SEVERITY_MAX = 2.0
#: sd of each path's severity (the factor on its scenario offset: ``SEVERITY_MAX * Beta(a, a)``, median 1,
#: 5-95 % range x0.2 - x1.8 at sd 0.5): historical stress windows differ in depth, so one central path plus
#: VAE noise under-dispersed them. 36-month change spread / same-type historical windows' (median over
#: variables, 1,000 paths from 2025-09): one path + noise 0.69 / 0.46 / 0.52 / 0.63 (baseline / adverse /
#: severely adverse / stagflation); with a lognormal severity (log-sd 0.5) and onsets 0.68 / 0.59 / 0.67 / 0.83
SEVERITY_SD = 0.5
#: per-scenario override of :data:`SEVERITY_SD`: "adverse" is the widest family -- its 77 historical windows
#: run from growth scares to the 1990-91 recession. Below ``SEVERITY_MAX / sqrt(12)`` = 0.577 (the uniform's)
#: so the beta keeps one mode at 1; 0.55 is the widest round value under it
SCENARIO_SEVERITY_SD: dict[str, float] = {"adverse": 0.55}
#: latest onset of a path's shock, months after the start (uniform 0..this): recessions start at different
#: times; with one onset the 36-month spread of spreads and GDP stayed near 0.3-0.5 of history's
MAX_ONSET_MONTHS = 12
#: range of each path's duration factor (log-uniform): the offset runs at ``(t - onset) / duration``, so a
#: path's recession unfolds 0.6x to 1.8x as fast as the supervisory one (geometric mean 1.04: the
#: supervisory path's own pace is the centre). Recessions differ in length as well as depth and timing;
#: the range's ratio of 3 is that of the shortest to the longest NBER contraction since 1980 (6 and 18
#: months). The lengths themselves run longer than history's: the supervisory severely adverse path has
#: about 18 months of falling GDP, so its paths get about 11 to 32. For the peaks of rates and spreads
#: (unemployment, HY) the pace moves *when*, not how high (the central severely adverse unemployment peak
#: 9.6-9.9 % from 0.6 to 1.8); for the levels cumulated from y/y growth a longer recession is a deeper
#: house-price fall (central path -18.6 / -25.8 / -32.6 % at 0.6 / 1 / 1.8) and deeper GDP tails (the
#: median GDP fall is not monotone in the pace: -4.9 / -4.1 / -6.0 % on the central path): the 1st
#: percentile of the severely adverse GDP level fall went -11.9 -> -16.4 % (seeds 11 / 5 / 3 pooled; the
#: worst path of single 1,000-path draws -18 to -27 %), stagflation's -7.7 -> -13.9 % (with its larger
#: narrative shock).
#: Capping the depth at ``SEVERITY_MAX / duration`` for the slow paths, so no path accumulates more than
#: twice the supervisory fall, put the diversity bar out of reach again (13 of 40 seeds short, smallest
#: 0.57): the spread history's windows have is partly these tails. Drawn independently of the severity,
#: which is milder than history, where the longer recessions were also the deeper. What the pace alone
#: bought (onsets to 12, no width): the 36-month spreads (a window's position in its cycle) without
#: blurring the scenarios -- 1,000 paths from 2025-09, seed 11, severely adverse GDP growth 0.54 -> 0.80 of history's same-type spread, IG
#: 0.46 -> 0.66, HY 0.55 -> 0.77, while the smallest named P(worse than baseline) went 0.84 -> 0.85
#: (``bench/bench_macro_scenarios.py``)
DURATION_RANGE: tuple[float, float] = (0.6, 1.8)
#: scenario paths' deviation from the VAE's centre is this many times the VAE's own, per variable (1
#: elsewhere), in every scenario, the baseline included. The forecast's deviations are calibrated to
#: *forecast* coverage out of time (:mod:`creditsim.macro.dispersion`, :mod:`creditsim.macro.oot`), which
#: the scenarios keep for every other variable; as scenarios these three kept less than 0.6 of the
#: 36-month spread of history's windows of the same type (baseline house prices 0.57-0.61 and default rate
#: 0.59-0.62, GDP growth 0.44-0.56 in adverse and stagflation, with the duration factor). So the baseline's
#: deviations in these three are 1.15-1.25 times the VAE's own: a deliberate trade for the diversity bar
#: (against ``macro="forecast"``, which draws another label mix, the baseline's 90 % bands at 12-36 months
#: are 1.10-1.23 times as wide for GDP growth, 0.89-1.24 for house prices, 0.71-0.86 for the default rate). A
#: wider *innovation* sd does not do it: house prices twice as noisy month to month moved their baseline
#: ratio 0.57 -> 0.60 -- their 36-month spread comes from the dynamics, not the month's noise. The factors
#: were set on the diversity bar itself (round ones that cleared it at seeds 11 / 5 / 3 with the named
#: P(worse than baseline) still >= 0.8; the default rate's raised 1.1 -> 1.15 when a review's seeds 0-39
#: showed it short at one), so they are a calibration to that bar, not an estimate.
#: The forecast (``macro="forecast"``) and the out-of-time scores are untouched: they act in :func:`compose`
#: only
SCENARIO_DEVIATION_WIDTH: dict[str, float] = {"gdp_growth": 1.25, "house_price_growth": 1.15, "default_rate": 1.15}
#: per-scenario override of :data:`MAX_ONSET_MONTHS`: the adverse (moderate) recession's start is spread
#: over the next 18 months; severely adverse keeps the supervisory immediate shock within a year, and
#: stagflation keeps 12, its narrative being a shock at months 12-24. With onsets to 12 the adverse GDP
#: growth and the baseline default rate fell below 0.6 of history's spread at 5 of 40 seeds (0.591-0.597,
#: a reviewer's run, 1,000 paths each); with this and the default rate's width 1.15, 0 of 40 (smallest
#: 0.603, mean of the per-seed minima 0.64), the smallest named P(worse than baseline) 0.82 (adverse GDP
#: fall, 0.813 before). Severely adverse onsets to 18 were tried too: no diversity gain that mattered, and
#: fewer of its losses fell inside a 24-month horizon (the sizing round trip, tests/risk/test_sizing.py,
#: could no longer invert its classes' expected losses)
SCENARIO_MAX_ONSET: dict[str, int] = {"adverse": 18}
#: months over which an offset halves after the supervisory table ends
_HALF_LIFE = 12.0
#: smallest level a proportional deviation is taken from or applied to (decimals: 1 bp)
PROPORTIONAL_FLOOR = 1e-4
#: variables whose falls below the VAE's centre are composed in proportion where the VAE models their log
#: (the shipped one logs the two spreads only, :mod:`creditsim.macro.vae`): the spreads and the default
#: rate. Unemployment keeps additive deviations even from a model that logs it: tried with one, in
#: proportion (rises and falls) its severely
#: adverse 36-month change spread rose to 2.5x history's and the 99th percentile of its peak to 17 %
#: (1,000 paths from 2025-09, seed 11), while its baseline lower tail barely moved (33 % of paths under
#: history's 3.4 % low at some month, against 39 %)
PROPORTIONAL_VARIABLES: tuple[str, ...] = ("credit_spread_ig", "credit_spread_hy", "default_rate")
#: stagflation narrative: variable -> (peak change in decimals, month of the peak); each change follows a
#: hump ``(t / peak) exp(1 - t / peak)`` (0 at the start, the full change at the peak month, then fading).
#: Activity: y/y real GDP 4 pp below the baseline's pace, unemployment +2 pp -- the stagflationary recessions
#: took y/y GDP 4-6 pp below its pre-shock pace (1973 -> 1975, 1981 -> 1982) and unemployment up 2-4 pp.
#: Until 2026-12 -2.5 pp and +1.5 pp: its GDP kept 0.44-0.47 of the 36-month spread of history's
#: stagflation windows (1,000 paths from 2025-09); 0.60-0.66 now, with the deviation width and the durations
STAGFLATION_PEAKS: dict[str, tuple[float, float]] = {
    "inflation_rate": (0.045, 15.0),
    "policy_rate": (0.035, 18.0),
    "yield_10y": (0.015, 18.0),
    "gdp_growth": (-0.04, 12.0),
    "unemployment_rate": (0.02, 18.0),
    "credit_spread_ig": (0.005, 12.0),
    "credit_spread_hy": (0.025, 12.0),
    "house_price_growth": (-0.06, 15.0),
    "default_rate": (0.01, 18.0),
}


def _fed(scenario: str, year: int) -> np.ndarray:
    return load_fed_scenarios(year, scenario=scenario, monthly=True)[list(MACRO_VARS)].to_numpy(np.float64)


def _extend(path: np.ndarray, months: int, decay: bool) -> np.ndarray:
    """``(T0, 9)`` -> ``(months, 9)``: cut, or continue past the end held (``decay=False``) or fading to
    zero with a 12-month half-life (``decay=True``)."""
    if path.shape[0] >= months:
        return path[:months]
    extra = np.arange(1, months - path.shape[0] + 1, dtype=np.float64)
    factor = 0.5 ** (extra / _HALF_LIFE) if decay else np.ones_like(extra)
    return np.concatenate([path, path[-1] * factor[:, None]], axis=0)


def consensus_path(months: int, year: int = ANCHOR_YEAR) -> np.ndarray:
    """``(months, 9)`` supervisory-baseline changes since its first month (0 at month 0)."""
    base = _fed("baseline", year)
    return _extend(base - base[0], months, decay=False)


def scenario_offsets(months: int, year: int = ANCHOR_YEAR) -> np.ndarray:
    """``(4, months, 9)`` central-path offsets from the baseline, in SCENARIOS order (decimals)."""
    t = np.arange(months, dtype=np.float64)
    severe = _extend(_fed("severely_adverse", year) - _fed("baseline", year), months, decay=True)
    stag = np.zeros((months, len(MACRO_VARS)))
    for var, (change, peak) in STAGFLATION_PEAKS.items():
        stag[:, MACRO_VARS.index(var)] = change * (t / peak) * np.exp(1.0 - t / peak)
    # the supervisory first quarter is already shocked; paths start from today's state, so the offset
    # builds up over the first quarter instead of jumping at month 0
    severe = severe * np.minimum(1.0, t / 3.0)[:, None]
    out = np.zeros((len(SCENARIOS), months, len(MACRO_VARS)))
    out[SCENARIOS.index("adverse")] = ADVERSE_SHARE * severe
    out[SCENARIOS.index("severely_adverse")] = severe
    out[SCENARIOS.index("stagflation")] = stag
    return out


def deviation_width() -> np.ndarray:
    """``(9,)`` :data:`SCENARIO_DEVIATION_WIDTH` in MACRO_VARS order (1 for the variables it leaves out)."""
    return np.array([SCENARIO_DEVIATION_WIDTH.get(v, 1.0) for v in MACRO_VARS])


def compose(central: np.ndarray, paths: np.ndarray, centre: np.ndarray, proportional: np.ndarray,
            width: np.ndarray | None = None) -> np.ndarray:
    """Anchored paths (module docstring): ``central + (paths - centre)``, and where ``proportional`` (9,)
    bool is set and the path lies below the centre, ``central * paths / centre`` (both floored at
    :data:`PROPORTIONAL_FLOOR` first): a fall is a share of the level, so it never crosses zero; a rise
    stays additive. Continuous (the two agree where ``paths == centre``) and increasing in ``paths``.

    central: ``(S, T, 9)`` the scenario's central path per path (start, consensus and shock); paths:
    ``(S, T, 9)`` the VAE's baseline dynamics from the start; centre: ``(T, 9)`` their median path;
    width: ``(9,)`` positive factors on each variable's deviation from the centre before composing
    (None: 1; the scenarios use :func:`deviation_width`). Returns ``(S, T, 9)`` float64, real units.
    Raises :class:`ConfigError` for other shapes, a mask that is not nine booleans or a width that is
    not nine positive numbers."""
    central, paths, centre = (np.asarray(a, dtype=np.float64) for a in (central, paths, centre))
    mask = np.asarray(proportional)
    D = len(MACRO_VARS)
    if mask.shape != (D,) or mask.dtype != np.bool_:
        raise ConfigError(f"compose: proportional must be {D} booleans in MACRO_VARS order, got {proportional!r:.200}")
    if paths.ndim != 3 or paths.shape[2] != D or central.shape != paths.shape or centre.shape != paths.shape[1:]:
        raise ConfigError(f"compose: expected central and paths (S, T, {D}) and centre (T, {D}), got "
                          f"{central.shape}, {paths.shape} and {centre.shape}")
    if width is not None:
        width = np.asarray(width, dtype=np.float64)
        if width.shape != (D,) or not (np.isfinite(width) & (width > 0)).all():
            raise ConfigError(f"compose: width must be {D} positive numbers in MACRO_VARS order, got {width!r:.200}")
        paths = centre + width * (paths - centre)
    out = central + (paths - centre)
    if mask.any():
        j = np.flatnonzero(mask)
        ratio = np.maximum(paths[..., j], PROPORTIONAL_FLOOR) / np.maximum(centre[..., j], PROPORTIONAL_FLOOR)
        falls = np.maximum(central[..., j], PROPORTIONAL_FLOOR) * ratio
        out[..., j] = np.where(paths[..., j] < centre[..., j], falls, out[..., j])
    return out


def floor(paths: np.ndarray) -> np.ndarray:
    """``paths`` ``(..., 9)`` with rates and levels kept at or above :data:`LOWER_BOUNDS`."""
    out = paths.copy()
    for var, lo in LOWER_BOUNDS.items():
        j = MACRO_VARS.index(var)
        out[..., j] = np.maximum(out[..., j], lo)
    return out


def severity_draws(n: int, rng: np.random.Generator, sd: float = SEVERITY_SD) -> np.ndarray:
    """``(n,)`` severities ``SEVERITY_MAX * Beta(a, a)`` with mean and median 1 and standard deviation ``sd``
    (``a = (SEVERITY_MAX^2 / (4 sd^2) - 1) / 2``; ``sd`` below ``SEVERITY_MAX / sqrt(12)`` keeps ``a > 1``:
    one mode, at 1)."""
    if not 0 < sd < SEVERITY_MAX / np.sqrt(12.0):
        raise ConfigError(f"severity sd must be in (0, {SEVERITY_MAX / np.sqrt(12.0):.3f}), got {sd!r}")
    a = (SEVERITY_MAX ** 2 / (4.0 * sd ** 2) - 1.0) / 2.0
    return SEVERITY_MAX * rng.beta(a, a, n)


def offset_months(months: int) -> int:
    """Rows of a scenario offset table that :func:`path_offsets` needs for ``months`` output months: the
    fastest duration (``DURATION_RANGE[0]``) reads the table up to ``(months - 1) / DURATION_RANGE[0]``."""
    return int(np.ceil((max(months, 1) - 1) / DURATION_RANGE[0])) + 2


def path_offsets(offset: np.ndarray, n: int, rng: np.random.Generator, scenario: str | None = None, *,
                 months: int) -> np.ndarray:
    """``(n, months, 9)``: the scenario ``offset`` ``(L, 9)`` (month 0 first) per path, scaled by a severity
    on ``[0, SEVERITY_MAX]`` (:func:`severity_draws`, sd :data:`SEVERITY_SD` or the scenario's
    :data:`SCENARIO_SEVERITY_SD`), delayed by an onset of 0..:data:`MAX_ONSET_MONTHS` months (uniform; the
    scenario's :data:`SCENARIO_MAX_ONSET`) and
    run at a duration factor on :data:`DURATION_RANGE` (log-uniform): path month ``t`` takes the offset at
    ``(t - onset) / duration``, linear between the table's months (exact at a factor of 1), and 0 before
    the onset. ``months`` is required (a path reads the table past its own horizon, so the table's length
    is not the horizon): the table must have at least :func:`offset_months` ``(months)`` rows
    (:class:`ConfigError` otherwise). Draw order: the n severities, the n onsets, the n durations."""
    months = int(months)
    need = offset_months(months)
    if offset.ndim != 2 or offset.shape[0] < need:
        raise ConfigError(f"path_offsets: the offset table has {offset.shape[0] if offset.ndim else 0} rows; "
                          f"{months} months at the fastest duration {DURATION_RANGE[0]} need {need} "
                          f"(scenario_offsets(offset_months({months})))")
    sd = SCENARIO_SEVERITY_SD.get(scenario, SEVERITY_SD) if scenario is not None else SEVERITY_SD
    severity = severity_draws(n, rng, sd)
    onset = rng.integers(0, SCENARIO_MAX_ONSET.get(scenario, MAX_ONSET_MONTHS) + 1, n)
    duration = np.exp(rng.uniform(np.log(DURATION_RANGE[0]), np.log(DURATION_RANGE[1]), n))
    out = np.zeros((n, months, offset.shape[1]))
    if not offset.any():  # the baseline: nothing to place (its draws are made all the same)
        return out
    for k in np.unique(onset[onset < months]):  # a shock starting after the horizon leaves zeros
        rows = np.flatnonzero(onset == k)
        at = np.arange(months - k, dtype=np.float64)[None, :] / duration[rows, None]  # (r, months - k) table months
        lo = np.minimum(np.floor(at).astype(np.int64), offset.shape[0] - 2)
        w = (at - lo)[..., None]
        out[rows, k:] = severity[rows, None, None] * ((1.0 - w) * offset[lo] + w * offset[lo + 1])
    return out
