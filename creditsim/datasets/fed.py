"""Federal Reserve supervisory stress-test scenarios (DFAST/CCAR), as published and mapped to MACRO_VARS."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from creditsim.datasets.files import data_path, month_start_range, quarterly_to_monthly
from creditsim.datasets.macro import macro_history
from creditsim.errors import ConfigError, DataError
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = ["load_fed_scenarios", "FED_SCENARIO_FILES", "available_fed_scenarios"]

#: (year, scenario, region) -> bundled file in ``fed_scenarios/`` (2026 = the proposed 2026 scenarios)
FED_SCENARIO_FILES: dict[tuple[int, str, str], str] = {
    (2024, "baseline", "domestic"): "2024-Table_3A_Supervisory_Baseline_Domestic.csv.gz",
    (2024, "severely_adverse", "domestic"): "2024-Table_4A_Supervisory_Severely_Adverse_Domestic.csv.gz",
    (2025, "baseline", "domestic"): "2025-Table_2A_Supervisory_Baseline_Domestic.csv.gz",
    (2025, "severely_adverse", "domestic"): "2025-Table_3A_Supervisory_Severely_Adverse_Domestic.csv.gz",
    (2025, "baseline", "international"): "2025-Table_2B_Supervisory_Baseline_International.csv.gz",
    (2025, "severely_adverse", "international"): (
        "2025-Table_3B_Supervisory_Severely_Adverse_International.csv.gz"
    ),
    (2026, "baseline", "domestic"): "2026_Proposed_Supervisory_Baseline_Domestic.csv.gz",
    (2026, "severely_adverse", "domestic"): "2026_Proposed_Supervisory_Severely_Adverse_Domestic.csv.gz",
}

#: how each macro variable is obtained from a domestic table (see load_fed_scenarios)
MAPPING: dict[str, str] = {
    "gdp_growth": "published: Real GDP growth (annualised q/q), compounded over 4 quarters",
    "unemployment_rate": "published: Unemployment rate / 100",
    "inflation_rate": "published: CPI inflation rate (annualised q/q), compounded over 4 quarters",
    "policy_rate": "proxy: 3-month Treasury rate / 100",
    "yield_10y": "published: 10-year Treasury yield / 100",
    "credit_spread_ig": "regression: history back-fill OLS on gdp, unemployment, (BBB yield - 10y) / 100",
    "credit_spread_hy": "regression: history back-fill OLS on gdp, unemployment, (BBB yield - 10y) / 100",
    "house_price_growth": "published: House Price Index (Level), growth over the trailing 4 quarters",
    "default_rate": "regression: history back-fill OLS on gdp, unemployment, (BBB yield - 10y) / 100",
}
DERIVED: tuple[str, ...] = tuple(v for v, how in MAPPING.items() if how.startswith("regression"))


def available_fed_scenarios() -> list[tuple[int, str, str]]:
    """The bundled ``(year, scenario, region)`` combinations."""
    return sorted(FED_SCENARIO_FILES)


def _normalise_scenario(scenario: object) -> str:
    if isinstance(scenario, (int, np.integer)) and not isinstance(scenario, bool):
        if 0 <= int(scenario) < len(SCENARIOS):
            return SCENARIOS[int(scenario)]
        raise ConfigError(f"scenario index must be in 0..{len(SCENARIOS) - 1}, got {scenario}")
    if not isinstance(scenario, str):
        raise ConfigError(f"scenario must be a name like 'severely_adverse', got {scenario!r}")
    key = scenario.strip().lower().replace("-", " ").replace("_", " ")
    key = key.removeprefix("supervisory ").strip().replace(" ", "_")
    return key


@lru_cache(maxsize=None)
def _read_table(file_name: str) -> tuple[pd.DataFrame, str]:
    raw = pd.read_csv(data_path("fed_scenarios", file_name))
    if list(raw.columns[:2]) != ["Scenario Name", "Date"]:
        raise DataError(f"{file_name}: expected the columns 'Scenario Name', 'Date' first")
    quarters = pd.PeriodIndex([d.replace(" ", "") for d in raw["Date"].astype(str)], freq="Q")
    index = pd.DatetimeIndex(quarters.to_timestamp(how="start"), name="quarter")
    values = raw.drop(columns=["Scenario Name", "Date"]).apply(pd.to_numeric, errors="raise")
    values = values.astype(np.float64)
    values.index = index
    if values.isna().any().any():
        raise DataError(f"{file_name}: missing values in the published table")
    return values, str(raw["Scenario Name"].iloc[0])


def _year_on_year(factor: np.ndarray, pre_factor: float) -> np.ndarray:
    """Year-on-year growth from per-quarter gross factors ``(Q,)``: the product of the trailing 4 factors.

    The 3 quarters before the scenario are not published; they take ``pre_factor`` (the jump-off trend).
    """
    padded = np.concatenate([np.full(3, pre_factor), factor])
    log_f = np.log(padded)
    csum = np.concatenate([[0.0], np.cumsum(log_f)])
    return np.exp(csum[4:] - csum[:-4]) - 1.0


def _regressed(fits: dict, levels: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The back-fill regressions of :func:`load_macro_history` for the unpublished variables, quarterly,
    on ``levels``' gdp growth and unemployment and the table's BBB yield minus the 10-year yield."""
    bbb_spread = (table["BBB corporate yield"] - table["10-year Treasury yield"]).to_numpy() / 100.0
    return pd.DataFrame({var: fits[var]["intercept"] + fits[var]["coef_gdp_growth"] * levels["gdp_growth"].to_numpy()
                         + fits[var]["coef_unemployment_rate"] * levels["unemployment_rate"].to_numpy()
                         + fits[var]["coef_baa_treasury_spread"] * bbb_spread
                         for var in ("credit_spread_ig", "credit_spread_hy", "default_rate")}, index=table.index)


def _macro_quarterly_levels(table: pd.DataFrame) -> pd.DataFrame:
    """gdp growth (y/y, with the table's own first quarter as the jump-off trend) and unemployment of a
    table: what :func:`_regressed` needs of a baseline."""
    factor = (1.0 + table["Real GDP growth"].to_numpy() / 100.0) ** 0.25
    return pd.DataFrame({"gdp_growth": _year_on_year(factor, factor[0]),
                         "unemployment_rate": table["Unemployment rate"].to_numpy() / 100.0}, index=table.index)


def _observed_jump_off(first_quarter: pd.Timestamp) -> pd.Series | None:
    """The observed macro state of the month before a table's first quarter (the latest observed month
    when the bundled history ends earlier), or None when the history does not reach the year before."""
    from creditsim.datasets.macro import macro_state

    latest = macro_state()
    month = min(pd.Timestamp(first_quarter) - pd.DateOffset(months=1), pd.Timestamp(latest.attrs["month"] + "-01"))
    if month < pd.Timestamp(first_quarter) - pd.DateOffset(months=13):
        return None
    return macro_state(f"{month:%Y-%m}")


def _from_jump_off(fitted: np.ndarray, fitted_jump_off: float, observed: float | None) -> np.ndarray:
    """A regressed variable's path read from the observed jump-off level: ``observed + (fitted -
    fitted_jump_off)``, except that a change *below* the fitted jump-off level is scaled by
    ``min(1, observed / fitted_jump_off)``; ``fitted`` itself when nothing is observed (None).

    Why (2026-12): the back-fill regressions are fitted in levels on 1985/1997-2019, where the default
    rate averaged 3.4 %; their slope applied unchanged at today's 1.49 % took the 2026 baseline's default
    rate to 0.99 % in 3 years (the regression's fall from its own 2.71 % jump-off, as the unemployment rate
    eases 4.6 -> 4.2 %), under the 1.19 % low of the whole history, and the VAE's baseline scenario,
    anchored on it, put 65 % of its paths under that low at some month (1,000 paths from 2025-09, seed 11).
    A rate this close to its floor falls by a share of its level, as the scenarios' spreads do
    (:func:`creditsim.macro.anchors.compose`); with the share 1.49 / 2.71 the baseline ends at 1.22 %.
    Rises stay additive: in a recession the level slope is what history measured (1.5 -> 7.9 % in
    2007-10), and in proportion the severely adverse peak would fall from 5.8 % to 3.8 %."""
    if observed is None:
        return fitted
    change = fitted - fitted_jump_off
    share = min(1.0, observed / fitted_jump_off) if fitted_jump_off > 0 else 1.0
    return observed + np.where(change < 0, change * share, change)


def _macro_quarterly(table: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Map a domestic table to the 9 variables, quarterly decimals; ``baseline`` gives the jump-off trend."""
    def q_factor(frame: pd.DataFrame, col: str) -> np.ndarray:
        return (1.0 + frame[col].to_numpy() / 100.0) ** 0.25  # annualised q/q rate -> quarterly factor

    out = pd.DataFrame(index=table.index)
    out["gdp_growth"] = _year_on_year(
        q_factor(table, "Real GDP growth"), q_factor(baseline, "Real GDP growth")[0]
    )
    out["unemployment_rate"] = table["Unemployment rate"] / 100.0
    out["inflation_rate"] = _year_on_year(
        q_factor(table, "CPI inflation rate"), q_factor(baseline, "CPI inflation rate")[0]
    )
    out["policy_rate"] = table["3-month Treasury rate"] / 100.0
    out["yield_10y"] = table["10-year Treasury yield"] / 100.0
    hpi = table["House Price Index (Level)"].to_numpy()
    base_hpi = baseline["House Price Index (Level)"].to_numpy()
    trend = base_hpi[1] / base_hpi[0]  # the baseline's first quarterly change stands for the jump-off trend
    jump_off = base_hpi[0] / trend  # HPI level of the quarter before the scenario
    hpi_factor = hpi / np.concatenate([[jump_off], hpi[:-1]])
    out["house_price_growth"] = _year_on_year(hpi_factor, trend)
    fits = macro_history(True)[2]
    fitted = _regressed(fits, out, table)
    # the baseline's first quarter through the same regressions: the jump-off level the shift is read at
    base_first = _regressed(fits, _macro_quarterly_levels(baseline), baseline).iloc[0]
    jump_off = _observed_jump_off(table.index[0])
    for var in ("credit_spread_ig", "credit_spread_hy", "default_rate"):
        out[var] = _from_jump_off(fitted[var].to_numpy(), float(base_first[var]),
                                  None if jump_off is None else float(jump_off[var]))
    out["credit_spread_ig"] = out["credit_spread_ig"].clip(lower=0.003)
    out["credit_spread_hy"] = out["credit_spread_hy"].clip(lower=0.015)
    return out[list(MACRO_VARS)]


def load_fed_scenarios(
    year: int,
    scenario: str | int = "severely_adverse",
    region: str = "domestic",
    monthly: bool = False,
    include_derived: bool = True,
) -> pd.DataFrame:
    """Federal Reserve supervisory scenario paths (13 quarters), as published or as monthly MACRO_VARS.

    Bundled: 2024 and 2025 (baseline, severely adverse; 2025 also international) and the *proposed*
    2026 scenarios (``year=2026``). The Fed has published no "adverse" scenario since 2020 and never a
    "stagflation" one; asking for them raises :class:`ConfigError` listing what exists.

    Args:
        year: 2024, 2025 or 2026.
        scenario: ``"baseline"`` / ``"severely_adverse"`` (also "Supervisory Severely Adverse", or the
            scenario index 0 / 2 of :data:`creditsim.states.SCENARIOS`).
        region: ``"domestic"`` (16 US variables) or ``"international"`` (12: euro area, developing Asia,
            Japan, UK x real GDP growth, inflation, USD exchange rate; 2025 only).
        monthly: ``False`` returns the table as published; ``True`` (domestic only) returns the monthly
            path in the 9 :data:`~creditsim.states.MACRO_VARS`, decimals.
        include_derived: with ``monthly=True``, ``False`` drops the regression-derived columns
            (``credit_spread_ig``, ``credit_spread_hy``, ``default_rate``), keeping only what the Fed
            publishes; ``attrs["missing"]`` then names them.

    Returns:
        ``monthly=False``: float64 DataFrame ``(13, 16)`` (domestic) or ``(13, 12)``, published column
        names and units (percent, annualised q/q growth rates, index levels), ``DatetimeIndex`` of quarter
        starts named ``quarter``. ``monthly=True``: float64 DataFrame ``(39, 9)`` (or ``(39, 6)``),
        month-start ``DatetimeIndex`` ``reporting_month``. ``attrs``: ``scenario_name`` (as published),
        ``year``, ``mapping`` (how each variable was obtained), ``derived``, ``missing``.

    Monthly mapping (quarterly values are placed at the middle month of their quarter and interpolated
    linearly, like the quarterly series of :func:`load_macro_history`; the first/last month hold the
    nearest quarter):

    - ``gdp_growth``, ``inflation_rate``: the Fed publishes annualised q/q rates; they are turned into
      the year-on-year rates of our history by compounding the trailing 4 quarters,
      ``prod_j (1 + g_j)^(1/4) - 1``. The 3 quarters before the scenario are not published: they are
      taken to grow at the same year's *baseline* first-quarter rate (the jump-off trend), so a severe
      scenario's y/y growth falls over its first year instead of starting at the annualised first-quarter
      plunge. ``house_price_growth`` likewise from the HPI level: the jump-off level is the baseline's
      first level deflated by the baseline's first quarterly change, which is also the trend of the
      quarters before.
    - ``unemployment_rate``, ``yield_10y``: published levels / 100.
    - ``policy_rate``: the 3-month Treasury rate / 100, the Fed's short-rate variable (the fed funds rate
      is not published; the bill tracks it within a few tenths).
    - ``credit_spread_ig``, ``credit_spread_hy``, ``default_rate`` (not published): the back-fill
      regressions of :func:`load_macro_history` (fitted on 1985/1997-2019 history) evaluated on the
      scenario's ``gdp_growth``, ``unemployment_rate`` and BBB corporate yield minus the 10-year yield,
      which stands in for the Moody's Baa - Treasury spread of the fit, as changes from the baseline's
      first quarter added to the observed state of the month before the table (when the bundled history
      reaches the year before), a fall taken in proportion to the observed over the fitted jump-off level
      (:func:`_from_jump_off`). Spreads floored at 30 / 150 bp.

    Source and licence: Board of Governors of the Federal Reserve System, supervisory scenarios for the
    annual stress test (federalreserve.gov, ``supervisionreg/files/<year>-Table_...csv``); US-government
    work, **public domain**. Copied from GitHub ``vafang25/Econ_Project_2`` (2024) and
    ``zhuliang21/frb-shock`` (2025, 2026-proposed); the held-out historic tables are not bundled.

    Raises:
        ConfigError: unknown year / scenario / region (the message lists what exists), or
            ``monthly=True`` for an international table.
    """
    try:
        year_key = int(year)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"year must be an integer like 2025, got {year!r}") from exc
    if isinstance(year, bool) or year_key != year:
        raise ConfigError(f"year must be an integer like 2025, got {year!r}")
    scen_key = _normalise_scenario(scenario)
    region_key = str(region).strip().lower() if isinstance(region, str) else region
    available = available_fed_scenarios()
    key = (year_key, scen_key, region_key)
    if key not in FED_SCENARIO_FILES:
        listing = ", ".join(f"({y}, {s!r}, {r!r})" for y, s, r in available)
        if scen_key in ("adverse", "stagflation"):
            why = f"the Fed published no {scen_key!r} supervisory scenario in the bundled years"
        else:
            why = f"no bundled Fed scenario for year={year!r}, scenario={scenario!r}, region={region!r}"
        raise ConfigError(f"{why}; available (year, scenario, region): {listing}")
    if not isinstance(monthly, (bool, np.bool_)):
        raise ConfigError(f"monthly must be True or False, got {monthly!r}")
    table, scenario_name = _read_table(FED_SCENARIO_FILES[key])
    attrs: dict[str, object] = {"scenario_name": scenario_name, "year": year_key, "region": region_key}
    if not monthly:
        out = table.copy()
        out.attrs = attrs
        return out
    if region_key != "domestic":
        raise ConfigError("monthly=True maps the domestic table to MACRO_VARS; use region='domestic'")
    baseline, _ = _read_table(FED_SCENARIO_FILES[(year_key, "baseline", "domestic")])
    quarterly = _macro_quarterly(table, baseline)
    months = month_start_range(quarterly.index[0], quarterly.index[-1] + pd.DateOffset(months=2))
    out = pd.DataFrame(
        {v: quarterly_to_monthly(quarterly[v]).reindex(months) for v in MACRO_VARS}, index=months
    )
    out = out.astype(np.float64)
    missing: list[str] = []
    if not include_derived:
        out = out.drop(columns=list(DERIVED))
        missing = list(DERIVED)
    attrs.update(
        {
            "mapping": {v: MAPPING[v] for v in out.columns},
            "derived": [v for v in DERIVED if v in out.columns],
            "missing": missing,
        }
    )
    out.attrs = attrs
    return out
