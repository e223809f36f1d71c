"""Full-length history (to late 2025): the ragged end, 2020-25 episodes and 1980-2019 unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets import load_macro_history
from creditsim.errors import ConfigError
from creditsim.datasets.files import read_fred_series
from creditsim.datasets.macro import BACKFILL_VINTAGE_END, RAGGED_MODES
from creditsim.states import MACRO_VARS

#: last observed month per variable in the bundled files (documented in load_macro_history)
LAST_OBSERVED = {
    "gdp_growth": "2025-09",
    "unemployment_rate": "2025-11",
    "inflation_rate": "2025-11",
    "policy_rate": "2025-11",
    "yield_10y": "2025-12",
    "credit_spread_ig": "2025-12",
    "credit_spread_hy": "2025-12",
    "house_price_growth": "2025-10",
    "default_rate": "2025-12",
}
#: months a publisher skipped inside a series' span (BLS published no October 2025 UNRATE / CPI)
GAPS = {"unemployment_rate": ["2025-10-01"], "inflation_rate": ["2025-10-01"]}
#: column sums over 1980-01 .. 2019-11 of the frame built from the 2019-truncated files (before the
#: full-length update); 2019-12 differs in gdp_growth only, see test_1980_2019_unchanged. default_rate:
#: the sum with the Board's DRALACBS vintage in credit_losses/ (1985Q1-2025Q4); the former 2019Q4 copy
#: gave 17.925206215731443 (vintage revisions of at most 0.02 pp)
SUMS_1980_2019_11 = {
    "gdp_growth": 12.943018374955837,
    "unemployment_rate": 29.721000000000004,
    "inflation_rate": 15.470568092957249,
    "policy_rate": 22.3989,
    "yield_10y": 28.929006394375655,
    "credit_spread_ig": 6.3893366323072485,
    "credit_spread_hy": 22.884876604154,
    "house_price_growth": 19.945510462060014,
    "default_rate": 17.926028557422892,
}


def _gapless_months(index: pd.Index) -> bool:
    return (
        isinstance(index, pd.DatetimeIndex)
        and bool((index == index.to_period("M").to_timestamp()).all())
        and bool((np.diff(index.to_period("M").asi8) == 1).all())
    )


def test_trim_ends_at_common_end_without_nan():
    macro = load_macro_history()
    assert macro.attrs["ragged"] == "trim" and RAGGED_MODES[0] == "trim"
    assert macro.attrs["last_observed"] == LAST_OBSERVED
    common = min(pd.Timestamp(m) for m in LAST_OBSERVED.values())
    assert macro.attrs["common_end"] == f"{common:%Y-%m}" == "2025-09"  # GDP's last quarter, 2025Q3
    assert len(macro) == 549  # 1980-01 .. 2025-09
    assert macro.index[0] == pd.Timestamp("1980-01-01") and macro.index[-1] == common
    assert _gapless_months(macro.index) and macro.index.freqstr == "MS"
    assert not macro.isna().any().any()
    # an end= past the common end is cut there (training / out-of-time windows keep working)
    assert load_macro_history(start="2015-01", end="2025-12").index[-1] == common


def test_keep_runs_to_latest_month_with_nan_only_past_each_end():
    macro, mask = load_macro_history(ragged="keep", return_mask=True)
    assert macro.attrs["ragged"] == "keep" and macro.attrs["common_end"] == "2025-09"
    assert macro.index[0] == pd.Timestamp("1980-01-01") and macro.index[-1] == pd.Timestamp("2025-12-01")
    assert len(macro) == 552 and _gapless_months(macro.index)
    assert list(macro.columns) == list(MACRO_VARS) and (macro.dtypes == np.float64).all()
    assert mask.shape == macro.shape and not mask.loc["1997":].any().any()  # nothing filled at the end
    for var, last in LAST_OBSERVED.items():
        col = macro[var]
        assert col.last_valid_index() == pd.Timestamp(last)
        assert col.loc[pd.Timestamp(last) + pd.offsets.MonthBegin(1):].isna().all()  # never forward-filled
        inside = col.loc[:last]
        assert sorted(f"{d:%Y-%m-%d}" for d in inside.index[inside.isna()]) == GAPS.get(var, [])
    # the back-filled early years and everything up to the common end match the default frame
    pd.testing.assert_frame_equal(macro.loc[:"2025-09"], load_macro_history(), check_freq=False)


def test_keep_holds_the_2020_25_episodes():
    macro = load_macro_history(start="2020-01", ragged="keep")
    u = macro["unemployment_rate"]
    assert u.loc["2020-04-01"] == pytest.approx(0.148, abs=1e-9)  # BLS: 14.8 % in April 2020
    assert u.loc["2020"].idxmax() == pd.Timestamp("2020-04-01")
    infl = macro["inflation_rate"]
    assert infl.loc["2022"].max() > 0.08 and infl.loc["2022-06-01"] == pytest.approx(0.090, abs=0.002)
    assert macro["policy_rate"].loc["2020-04":"2021-12"].max() < 0.002  # zero lower bound again
    assert macro["policy_rate"].loc["2023-08":"2024-07"].min() > 0.05  # 5.25-5.5 % target range
    assert macro["gdp_growth"].loc["2020"].min() < -0.07  # 2020Q2 real GDP y/y ~ -7.5 %
    assert macro["credit_spread_hy"].loc["2020-03":"2020-04"].max() > 0.07
    assert macro["yield_10y"].loc["2023-10-01"] > 0.045
    # GDP: 2025Q3 is the last quarter; its value holds for the quarter's last month, then NaN
    gdp = read_fred_series("GDPC1")
    q3 = gdp.loc["2025-07-01"] / gdp.loc["2024-07-01"] - 1.0
    assert macro.loc["2025-08-01", "gdp_growth"] == pytest.approx(q3, rel=1e-12)
    assert macro.loc["2025-09-01", "gdp_growth"] == pytest.approx(q3, rel=1e-12)
    assert np.isnan(macro.loc["2025-10-01", "gdp_growth"])


def test_keep_window_after_common_end():
    window = load_macro_history(start="2025-07", end="2025-12", ragged="keep")
    assert len(window) == 6 and window.loc[:"2025-09"].notna().all().all()
    assert window["gdp_growth"].loc["2025-10":].isna().all()  # GDP ends with 2025Q3
    assert window["default_rate"].notna().all()  # DRALACBS runs to 2025Q4


def test_default_rate_is_the_boards_delinquency_rate_2020_25():
    """default_rate after 2019 is the Board's DRALACBS (credit_losses/), mid-quarter month = the quarter."""
    from creditsim.datasets import load_bank_loss_rates

    macro = load_macro_history()
    dra = load_bank_loss_rates("delinquency")["all"]
    for quarter in ("2020-04-01", "2022-10-01", "2025-07-01"):
        mid = pd.Timestamp(quarter) + pd.DateOffset(months=1)
        assert macro.loc[mid, "default_rate"] == pytest.approx(dra.loc[quarter], rel=1e-12)
    # forbearance: the rate stayed near its 2019 level through COVID (1.4-1.6 %), peak 7.4 % in 2010
    assert macro["default_rate"].loc["2020":"2025-09"].between(0.011, 0.017).all()
    # 2025-09: 2025Q3 (1.49 %) blended 1/3 towards 2025Q4 (1.48 %), as for GDP
    assert macro.loc["2025-09-01", "default_rate"] == pytest.approx(0.0149 + (0.0148 - 0.0149) / 3, rel=1e-12)


def test_1980_2019_unchanged():
    """Bit-identical to the 2019-truncated build except gdp_growth 2019-12 (now interpolated to 2020Q1)
    and default_rate (the Board's newer DRALACBS vintage; its back-fill refitted on it)."""
    macro, mask = load_macro_history(return_mask=True)
    sums = macro.loc[:"2019-11"].sum()
    for var, total in SUMS_1980_2019_11.items():
        assert sums[var] == pytest.approx(total, rel=1e-12, abs=0.0), var
    # back-filled values and fits pinned from the truncated build
    assert macro.loc["1980-06-01", "gdp_growth"] == pytest.approx(-0.0006609074008901376, rel=1e-12)
    assert macro.loc["1982-06-01", "house_price_growth"] == pytest.approx(-0.011625814297078693, rel=1e-12)
    # old vintage: 0.04335557646216639 and R^2 0.6943406510317001
    assert macro.loc["1984-06-01", "default_rate"] == pytest.approx(0.04336109385064005, rel=1e-12)
    assert macro.loc["1990-10-01", "credit_spread_hy"] == pytest.approx(0.04202762255900964, rel=1e-12)
    assert macro.loc["1990-10-01", "credit_spread_ig"] == pytest.approx(0.012825370372429156, rel=1e-12)
    fit = macro.attrs["backfill_fit"]
    assert fit["default_rate"]["r2"] == pytest.approx(0.6943997496308947, rel=1e-12)
    assert fit["house_price_growth"]["intercept"] == pytest.approx(0.03943916685976174, rel=1e-12)
    assert fit["credit_spread_hy"]["r2"] == pytest.approx(0.8896008018388311, rel=1e-12)
    assert int(mask.sum().sum()) == 12 + 203 + 203 + 96 + 60  # 1980, 1980-01..1996-11 (x2), 1980-87, 1980-84
    # 2019-12 GDP: 2019Q4 y/y blended 1/3 towards 2020Q1 (was the 2019Q4 value 0.03351776524198091)
    gdp = read_fred_series("GDPC1")
    q4 = gdp.loc["2019-10-01"] / gdp.loc["2018-10-01"] - 1.0
    q1 = gdp.loc["2020-01-01"] / gdp.loc["2019-01-01"] - 1.0
    assert q4 == pytest.approx(0.03351776524198091, rel=1e-12)
    assert macro.loc["2019-12-01", "gdp_growth"] == pytest.approx(q4 + (q1 - q4) / 3, rel=1e-12)
    assert BACKFILL_VINTAGE_END == pd.Timestamp("2019-12-01")


def test_without_backfill_both_modes():
    trim = load_macro_history(backfill=False)
    keep = load_macro_history(backfill=False, ragged="keep")
    assert trim.index[0] == keep.index[0] == pd.Timestamp("1996-12-01")
    assert trim.index[-1] == pd.Timestamp("2025-09-01") and keep.index[-1] == pd.Timestamp("2025-12-01")
    assert len(trim) == 346  # 1996-12 .. 2025-09
    pd.testing.assert_frame_equal(keep.loc[:"2025-09"], trim, check_freq=False)


def test_macro_state_is_the_latest_real_month_of_all_nine() -> None:
    from creditsim.datasets import load_macro_history, macro_state
    from creditsim.states import MACRO_VARS

    latest = macro_state()
    assert latest.attrs["month"] == "2025-09"  # GDP's last published quarter bounds the common month
    assert latest.attrs["held"] == {}  # every variable observed in 2025-09, the default rate included
    full = load_macro_history(ragged="keep")
    for var in MACRO_VARS:
        assert latest[var] == full.loc["2025-09-01", var]
    inside = macro_state("2008-10")
    assert inside.attrs["held"] == {} and inside["unemployment_rate"] == full.loc["2008-10-01", "unemployment_rate"]
    assert macro_state("latest").equals(latest)
    with pytest.raises(ConfigError, match="month must be between"):
        macro_state("2030-01")
