"""Rule-based synthetic macro scenarios: a small stochastic factor model per scenario type.

:class:`MacroScenarioGenerator` draws monthly macro paths ``(n_paths, n_months, 9)`` (decimals, in
:data:`~creditsim.states.MACRO_VARS` order) for the four scenario types; its deterministic shock profiles
are calibrated to the Federal Reserve's supervisory scenarios (``shared/data/macro/fed_scenarios``, public
domain, Board of Governors of the Federal Reserve System). Fully determined by one integer seed;
vectorised over paths, the only Python loop runs over months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError
from creditsim.macro.sensitivity import SHOCK_MEAN
from creditsim.rng import check_seed, numpy_generator
from creditsim.schema import month_start
from creditsim.states import MACRO_VARS, scenario_index

__all__ = [
    "MacroAnchors",
    "ScenarioProfile",
    "SCENARIO_PROFILES",
    "MacroScenarioGenerator",
    "activity_level_drawdown",
]


@dataclass(frozen=True)
class MacroAnchors:
    """Long-run (steady-state) values of the macro model, decimals.

    They are also the jump-off point of every path, so the baseline scenario is a stationary path
    around them. Defaults follow the start of the Fed's 2025 supervisory baseline (unemployment about
    4.2 %, CPI inflation about 2.5 %, real growth about 2 %) and the 1997-2019 medians of the ICE BofA
    IG / HY option-adjusted spreads and of the bank-loan delinquency rate (FRED ``DRALACBS``).
    """

    # the three sensitivity anchors live in creditsim.macro.sensitivity (shared with the Markov overlay)
    gdp_growth: float = SHOCK_MEAN["gdp_growth"]
    unemployment_rate: float = SHOCK_MEAN["unemployment_rate"]
    inflation_rate: float = 0.025
    neutral_real_rate: float = 0.010
    term_premium: float = 0.010
    credit_spread_ig: float = 0.012
    credit_spread_hy: float = SHOCK_MEAN["credit_spread_hy"]
    house_price_growth: float = 0.040
    default_rate: float = 0.020

    @property
    def policy_rate(self) -> float:
        """Steady-state policy rate: neutral real rate plus the inflation anchor."""
        return self.neutral_real_rate + self.inflation_rate

    @property
    def yield_10y(self) -> float:
        """Steady-state 10-year yield: policy rate plus term premium."""
        return self.policy_rate + self.term_premium

    def as_vector(self) -> np.ndarray:
        """``(9,)`` float64 steady state in MACRO_VARS order."""
        return np.array(
            [
                self.gdp_growth,
                self.unemployment_rate,
                self.inflation_rate,
                self.policy_rate,
                self.yield_10y,
                self.credit_spread_ig,
                self.credit_spread_hy,
                self.house_price_growth,
                self.default_rate,
            ]
        )


@dataclass(frozen=True)
class ScenarioProfile:
    """Deterministic shock profile of one scenario.

    ``downturn_peak`` is the peak of the downturn factor ``d`` (1.0 = Fed severely adverse), reached at
    ``downturn_peak_month`` with the hump ``h(t) = (t / m) * exp(1 - t / m)``. ``supply_peak`` is the
    extra CPI inflation (decimal) of a supply shock that builds up with time constant
    ``supply_rise_months``, is held until ``supply_hold_months`` and then decays with time constant
    ``supply_decay_months``.
    """

    downturn_peak: float = 0.0
    downturn_peak_month: float = 12.0
    supply_peak: float = 0.0
    supply_rise_months: float = 4.0
    supply_hold_months: float = 36.0
    supply_decay_months: float = 12.0

    def downturn(self, t: np.ndarray) -> np.ndarray:
        """Mean downturn factor at months ``t`` (float array)."""
        m = self.downturn_peak_month
        return self.downturn_peak * (t / m) * np.exp(1.0 - t / m)

    def supply(self, t: np.ndarray) -> np.ndarray:
        """Mean extra inflation (decimal) of the supply shock at months ``t``."""
        build = 1.0 - np.exp(-(t + 1.0) / self.supply_rise_months)
        decay = np.exp(-np.maximum(t - self.supply_hold_months, 0.0) / self.supply_decay_months)
        return self.supply_peak * build * decay


#: Scenario index -> profile. Severely adverse is scaled to the Fed's 2025 severely adverse scenario
#: (real GDP -7.8 % peak to trough, unemployment 10 %, house prices -22 %, rates near zero); adverse is
#: a bit over half of it; stagflation is a moderate downturn with a 5.5 pp supply shock to inflation.
SCENARIO_PROFILES: tuple[ScenarioProfile, ...] = (
    ScenarioProfile(),
    ScenarioProfile(downturn_peak=0.55, downturn_peak_month=12.0),
    ScenarioProfile(downturn_peak=1.0, downturn_peak_month=12.0),
    ScenarioProfile(downturn_peak=0.40, downturn_peak_month=15.0, supply_peak=0.055),
)


class MacroScenarioGenerator:
    """Stochastic monthly macro scenarios for baseline / adverse / severely adverse / stagflation.

    The model (all quantities decimals, month ``t = 0 .. n_months - 1``):

    - downturn factor ``d_t = D_s(t) + x_t`` with the scenario's hump profile ``D_s`` and an AR(1)
      business-cycle noise ``x_t = 0.95 x_{t-1} + 0.025 e_t``; labour-market factor
      ``l_t = l_{t-1} + (d_t - l_{t-1}) / 6`` (unemployment, house prices and defaults lag activity);
      financial-stress factor ``f_t = d_t + z_t`` with ``z_t = 0.8 z_{t-1} + 0.05 e'_t``.
    - real activity: log level ``a_t = g* t / 12 - 0.100 d_t + n_t``; ``gdp_growth`` is the year-on-year
      growth ``exp(a_t - a_{t-12}) - 1`` with the 12 pre-sample months on trend. A downturn peak of 1.0
      therefore gives a cumulative level decline of about 8 % and a y/y trough of about -8 %, the
      magnitudes of the Fed's severely adverse scenario (use :func:`activity_level_drawdown`).
    - ``unemployment_rate = u* + 0.066 l_t + noise`` (10 % at the severely adverse peak);
      ``inflation_rate = pi* - 0.012 d_t + S_s(t) + noise``;
      ``policy_rate``: inertial Taylor rule ``i_t = 0.8 i_{t-1} + 0.2 (r* + pi_t + 0.5 (pi_t - pi*)
      - 1.5 (u_t - u*))``, floored at 0.1 % (the Fed's effective lower bound in its scenarios);
      ``yield_10y = 0.5 i_t + 0.5 (r* + pi* + 0.5 (pi_t - pi*)) + term premium - 0.01 d_t``;
      ``credit_spread_ig = ig* + 0.025 f_t``, ``credit_spread_hy = hy* + 0.09 f_t``;
      ``house_price_growth`` y/y of the log level ``h* t / 12 - 0.25 l_t``;
      ``default_rate = dr* + 0.045 l_t``.
    - small AR(1) idiosyncratic noises on each variable; outputs are floored where a variable cannot be
      negative (rates, spreads, default rate) and unemployment is clipped to [2 %, 30 %].

    Random numbers do not depend on the scenario (common random numbers): for the same seed, path k of
    every scenario shares its business-cycle noise, so scenario comparisons are sharp. Path k is the
    same whatever ``n_paths`` is (the noise is drawn path-major from one generator).

    Args:
        n_months: path length (months after ``start``), >= 1.
        start: first month of the paths (any date-like; default 2025-01, the jump-off of the Fed's
            2025 scenarios); used for the DatetimeIndex of :meth:`scenario_frame`.
        anchors: steady-state values; default :class:`MacroAnchors`.
    """

    _N_NOISE = 11  # x, z, activity, unemployment, inflation, policy, 10y, ig, hy, house, default
    _BLOCK_PATHS = 2048  # paths computed together (see generate_scenario)

    def __init__(
        self,
        n_months: int = 60,
        start: object | None = None,
        anchors: MacroAnchors | None = None,
    ) -> None:
        if isinstance(n_months, bool) or not isinstance(n_months, (int, np.integer)) or n_months < 1:
            raise ConfigError(f"n_months must be an integer >= 1, got {n_months!r}")
        self.n_months = int(n_months)
        self.start = month_start("2025-01-01" if start is None else start, "start")
        self.anchors = anchors if anchors is not None else MacroAnchors()

    @property
    def index(self) -> pd.DatetimeIndex:
        """Month-start DatetimeIndex of the paths, named ``reporting_month``."""
        return pd.date_range(self.start, periods=self.n_months, freq="MS", name="reporting_month")

    def generate_scenario(self, scenario: int | str, n_paths: int = 1, seed: int = 0) -> np.ndarray:
        """Draw macro paths for one scenario.

        Args:
            scenario: name (``"baseline"``, ``"adverse"``, ``"severely_adverse"``, ``"stagflation"``)
                or index 0..3.
            n_paths: number of paths, >= 1.
            seed: integer seed; the same seed gives the same paths.

        Returns:
            ``(n_paths, n_months, 9)`` float64, decimals, MACRO_VARS order.
        """
        idx = scenario_index(scenario)
        if isinstance(n_paths, bool) or not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
            raise ConfigError(f"n_paths must be an integer >= 1, got {n_paths!r}")
        rng = numpy_generator(check_seed(seed))
        out = np.empty((int(n_paths), self.n_months, len(MACRO_VARS)))
        # Block by block: a block's series stay in cache (the whole-array version spent most of its time
        # streaming (T, P) temporaries through memory), and the noise of consecutive blocks is the one
        # path-major stream of a single draw (numpy's normals are drawn element by element, nothing is
        # buffered between calls), so the paths are the same bits whatever the block size.
        for p0 in range(0, out.shape[0], self._BLOCK_PATHS):
            p1 = min(p0 + self._BLOCK_PATHS, out.shape[0])
            out[p0:p1] = self._paths(SCENARIO_PROFILES[idx], rng.standard_normal((p1 - p0, self.n_months,
                                                                                  self._N_NOISE)))
        return out

    def scenario_frame(self, scenario: int | str, seed: int = 0, path: int = 0) -> pd.DataFrame:
        """One path of :meth:`generate_scenario` as a DataFrame (index ``reporting_month``, 9 columns)."""
        if not 0 <= int(path):
            raise ConfigError(f"path must be >= 0, got {path}")
        paths = self.generate_scenario(scenario, n_paths=int(path) + 1, seed=seed)
        return pd.DataFrame(paths[int(path)], index=self.index, columns=list(MACRO_VARS))

    def _paths(self, profile: ScenarioProfile, noise: np.ndarray) -> np.ndarray:
        """Map standard-normal noise ``(P, T, 11)`` to macro paths ``(P, T, 9)``.

        Computed month-major, every series ``(T, P)``: the recursions (AR(1) shocks, the labour lag, the
        policy rule) step through months, and a month's ``P`` values then lie together in memory (a
        path-major column is ``T * 11`` values apart per path: 20,000 paths took ~4x as long). Each
        element's arithmetic is the same either way, so the paths are the same bits.
        """
        a = self.anchors
        n_paths, n_months, _ = noise.shape
        t = np.arange(n_months, dtype=np.float64)
        shocks = np.ascontiguousarray(noise.transpose(2, 1, 0))  # (11, T, P)

        def ar1(eps: np.ndarray, phi: float, sigma: float) -> np.ndarray:
            out = np.empty_like(eps)
            prev = np.zeros(eps.shape[1])
            for k in range(eps.shape[0]):
                prev = phi * prev + sigma * eps[k]
                out[k] = prev
            return out

        d = profile.downturn(t)[:, None] + ar1(shocks[0], 0.95, 0.025)
        f = d + ar1(shocks[1], 0.80, 0.05)
        lab = np.empty_like(d)
        prev = np.zeros(n_paths)
        for k in range(n_months):
            prev = prev + (d[k] - prev) / 6.0
            lab[k] = prev

        # activity and house prices: log-level gaps, y/y growth against trend pre-sample months
        gap_a = -0.100 * d + ar1(shocks[2], 0.90, 0.002)
        gap_h = -0.25 * lab + ar1(shocks[9], 0.90, 0.004)
        gdp = np.exp(a.gdp_growth + gap_a - _lag12(gap_a)) - 1.0
        hpg = np.exp(a.house_price_growth + gap_h - _lag12(gap_h)) - 1.0

        unemp = np.clip(
            a.unemployment_rate + 0.066 * lab + ar1(shocks[3], 0.9, 0.0008), 0.02, 0.30
        )
        infl = (
            a.inflation_rate
            - 0.012 * d
            + profile.supply(t)[:, None]
            + ar1(shocks[4], 0.9, 0.0012)
        )
        policy = np.empty_like(d)
        prev = np.full(n_paths, a.policy_rate)
        eps_p = ar1(shocks[5], 0.5, 0.0008)
        for k in range(n_months):
            target = (
                a.neutral_real_rate
                + infl[k]
                + 0.5 * (infl[k] - a.inflation_rate)
                - 1.5 * (unemp[k] - a.unemployment_rate)
            )
            prev = np.maximum(0.8 * prev + 0.2 * target + eps_p[k], 0.001)
            policy[k] = prev
        y10 = np.maximum(
            0.5 * policy
            + 0.5 * (a.neutral_real_rate + a.inflation_rate + 0.5 * (infl - a.inflation_rate))
            + a.term_premium
            - 0.01 * d
            + ar1(shocks[6], 0.9, 0.0010),
            0.002,
        )
        ig = np.maximum(a.credit_spread_ig + 0.025 * f + ar1(shocks[7], 0.9, 0.0005), 0.003)
        hy = np.maximum(a.credit_spread_hy + 0.09 * f + ar1(shocks[8], 0.9, 0.002), 0.015)
        dr = np.maximum(a.default_rate + 0.045 * lab + ar1(shocks[10], 0.9, 0.0008), 0.003)
        out = np.empty((n_paths, n_months, len(MACRO_VARS)))
        for j, series in enumerate((gdp, unemp, infl, policy, y10, ig, hy, hpg, dr)):
            out[:, :, j] = series.T
        return out


def _lag12(x: np.ndarray) -> np.ndarray:
    """Month-major ``x`` ``(T, P)`` shifted 12 months later, zeros (the trend) before the sample."""
    out = np.zeros_like(x)
    if x.shape[0] > 12:
        out[12:] = x[:-12]
    return out


def activity_level_drawdown(gdp_growth: np.ndarray, trend: float = MacroAnchors.gdp_growth) -> np.ndarray:
    """Largest cumulative fall of the activity level implied by year-on-year growth paths.

    ``gdp_growth`` is y/y growth, so the level obeys ``L_t = L_{t-12} (1 + g_t)``; the 12 months before
    the path are taken on the trend ``L_k = (1 + trend) ** (k / 12)``, the convention of
    :class:`MacroScenarioGenerator`. The drawdown is ``min_t L_t / max_{s <= t} L_s - 1`` (negative,
    e.g. -0.078 for the Fed's 2025 severely adverse real GDP).

    Args:
        gdp_growth: ``(T,)`` or ``(P, T)`` y/y growth, decimals.
        trend: annual trend growth of the pre-sample months.

    Returns:
        ``()`` or ``(P,)`` float64 drawdowns (<= 0).
    """
    g = np.atleast_2d(np.asarray(gdp_growth, dtype=np.float64))
    n_paths, n_months = g.shape
    pre = (1.0 + trend) ** (np.arange(-12, 0) / 12.0)
    level = np.empty((n_paths, n_months + 12))
    level[:, :12] = pre
    for k in range(n_months):
        level[:, k + 12] = level[:, k] * (1.0 + g[:, k])
    running_peak = np.maximum.accumulate(level, axis=1)
    dd = (level / running_peak - 1.0).min(axis=1)
    return dd[0] if np.ndim(gdp_growth) == 1 else dd
