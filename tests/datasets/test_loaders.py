"""Bundled real data: every loader's shape, dtypes, dates, NaN policy and published facts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets import (
    available_fed_scenarios,
    load_bank_loss_rates,
    load_credit_card_panel,
    load_credit_card_tape,
    load_fed_scenarios,
    load_fred_md,
    load_macro_history,
    load_recession_indicator,
)
from creditsim.datasets.fred import apply_fred_md_transform
from creditsim.errors import ConfigError, DataError
from creditsim.schema import validate_loan_tape, validate_macro, validate_panel
from creditsim.states import ALLOWED_TRANSITIONS, MACRO_VARS, LoanState


def _is_month_start_index(index: pd.Index) -> bool:
    return (
        isinstance(index, pd.DatetimeIndex)
        and index.is_monotonic_increasing
        and index.is_unique
        and bool((index == index.to_period("M").to_timestamp()).all())
        and bool((np.diff(index.to_period("M").asi8) == 1).all())
    )


# --------------------------------------------------------------------------- macro history


def test_macro_history_shape_dtypes_and_range():
    macro = load_macro_history()
    assert list(macro.columns) == list(MACRO_VARS)
    assert macro.shape == (549, 9)
    assert (macro.dtypes == np.float64).all()
    assert _is_month_start_index(macro.index)
    assert macro.index.name == "reporting_month"
    assert macro.index[0] == pd.Timestamp("1980-01-01")
    assert macro.index[-1] == pd.Timestamp("2025-09-01")
    assert not macro.isna().any().any()
    validate_macro(macro)  # the library's own contract: decimals, finite, all 9 present


def test_macro_history_matches_published_episodes():
    macro = load_macro_history()
    u = macro["unemployment_rate"]
    assert u.loc["2009-10-01"] == pytest.approx(0.100, abs=0.002)  # BLS: 10.0 % in Oct 2009
    assert u.loc["2008":"2011"].idxmax() == pd.Timestamp("2009-10-01")
    assert u.loc["1982-11-01"] == pytest.approx(0.108, abs=0.001)
    assert macro["credit_spread_hy"].loc["2008"].max() > 0.15  # ICE BofA HY OAS peaked ~19.9 % (Dec 2008)
    assert macro["credit_spread_ig"].loc["2008-12-01"] > 0.05
    assert (macro["inflation_rate"].loc["1980"] > 0.10).all()  # BLS CPI-U y/y peaked at 14.8 % (Mar 1980)
    assert macro["inflation_rate"].loc["1980"].max() > 0.14
    assert macro["policy_rate"].loc["1981"].max() > 0.18  # Volcker: fed funds above 19 %
    assert macro["policy_rate"].loc["2009":"2015"].max() < 0.005  # zero lower bound
    assert macro["gdp_growth"].loc["2009"].min() < -0.03  # Great Recession real GDP y/y trough ~ -3.9 %
    assert macro["house_price_growth"].loc["2008":"2009"].min() < -0.10  # Case-Shiller fall
    assert macro["house_price_growth"].loc["2004":"2005"].max() > 0.12
    assert macro["default_rate"].loc["2009":"2010"].max() == pytest.approx(0.074, abs=0.003)
    assert macro["yield_10y"].loc["2012"].min() < 0.02


def test_macro_history_transformations_reproduce_raw_fred():
    """Spot-check the documented transforms against hand computations from the raw FRED files."""
    from creditsim.datasets.files import read_fred_series

    macro = load_macro_history()
    cpi = read_fred_series("CPIAUCSL")
    assert macro.loc["2000-06-01", "inflation_rate"] == pytest.approx(
        cpi.loc["2000-06-01"] / cpi.loc["1999-06-01"] - 1.0, rel=1e-12
    )
    dgs10 = read_fred_series("DGS10")
    assert macro.loc["2005-03-01", "yield_10y"] == pytest.approx(dgs10.loc["2005-03"].mean() / 100, rel=1e-12)
    gdp = read_fred_series("GDPC1")
    # a quarter's y/y growth sits in its middle month
    assert macro.loc["2010-05-01", "gdp_growth"] == pytest.approx(
        gdp.loc["2010-04-01"] / gdp.loc["2009-04-01"] - 1.0, rel=1e-12
    )
    # the month between two mid-quarter months is the linear blend (1/3, 2/3)
    q2 = gdp.loc["2010-04-01"] / gdp.loc["2009-04-01"] - 1.0
    q3 = gdp.loc["2010-07-01"] / gdp.loc["2009-07-01"] - 1.0
    assert macro.loc["2010-06-01", "gdp_growth"] == pytest.approx(q2 + (q3 - q2) / 3, rel=1e-12)
    # 1980 CPI y/y uses FRED-MD's 1979 CPI as its base
    md = load_fred_md()
    assert macro.loc["1980-03-01", "inflation_rate"] == pytest.approx(
        cpi.loc["1980-03-01"] / md.loc["1979-03-01", "CPIAUCSL"] - 1.0, rel=1e-12
    )
    dra = load_bank_loss_rates("delinquency")["all"]  # DRALACBS as fractions
    assert macro.loc["2000-08-01", "default_rate"] == pytest.approx(dra.loc["2000-07-01"], rel=1e-12)


def test_macro_history_backfill_mask_and_flags():
    macro, mask = load_macro_history(return_mask=True)
    assert mask.shape == macro.shape and (mask.dtypes == bool).all()
    assert (mask.index == macro.index).all()
    # core variables are never back-filled; late ones exactly up to their source start
    for var in ("unemployment_rate", "inflation_rate", "policy_rate", "yield_10y"):
        assert not mask[var].any()
    assert macro.attrs["backfilled_until"]["gdp_growth"] == "1980-12" and mask["gdp_growth"].sum() == 12
    assert macro.attrs["backfilled_until"]["credit_spread_ig"] == "1996-11"
    assert macro.attrs["backfilled_until"]["credit_spread_hy"] == "1996-11"
    assert macro.attrs["backfilled_until"]["house_price_growth"] == "1987-12"
    assert macro.attrs["backfilled_until"]["default_rate"] == "1984-12"
    assert mask["default_rate"].sum() == 60
    # the splice is continuous: the AR(1) backcast removes the jump between last filled and first observed
    for var, splice in (("default_rate", "1985-01-01"), ("credit_spread_ig", "1996-12-01")):
        pos = macro.index.get_loc(pd.Timestamp(splice))
        step = abs(macro[var].iloc[pos] - macro[var].iloc[pos - 1])
        typical = macro[var].diff().abs().loc[splice:].quantile(0.95)
        assert step <= typical
    fit = macro.attrs["backfill_fit"]
    assert fit["credit_spread_ig"]["r2"] > 0.8 and fit["credit_spread_hy"]["r2"] > 0.8
    # back-filled spreads stay positive and plausible; HY above IG everywhere
    early = macro.loc[:"1996-11"]
    assert (early["credit_spread_ig"] >= 0.003).all() and (early["credit_spread_hy"] >= 0.015).all()
    assert (macro["credit_spread_hy"] > macro["credit_spread_ig"]).all()
    # back-filled house prices rise over 1980-87 on average (they did, nominally)
    assert macro.loc["1980":"1987", "house_price_growth"].mean() > 0.0
    # the 1980 recession shows in the back-filled GDP growth (BEA: real GDP y/y -1.5 % in 1980Q3)
    gdp_1980 = macro.loc["1980", "gdp_growth"]
    assert gdp_1980.loc["1980-06":"1980-08"].min() < 0.0 < gdp_1980.iloc[0]


def test_macro_history_without_backfill_starts_when_all_observed():
    macro, mask = load_macro_history(backfill=False, return_mask=True)
    assert macro.index[0] == pd.Timestamp("1996-12-01")
    assert len(macro) == 346 and not mask.any().any()  # 1996-12 .. 2025-09
    full = load_macro_history()
    pd.testing.assert_frame_equal(macro, full.loc["1996-12":], check_freq=False)


def test_macro_history_window_and_copies():
    window = load_macro_history(start="2000-01", end="2004-12-31")
    assert len(window) == 60
    assert window.index[0] == pd.Timestamp("2000-01-01") and window.index[-1] == pd.Timestamp("2004-12-01")
    window.iloc[:, :] = 99.0  # mutating the result must not touch the cache
    assert load_macro_history(start="2000-01", end="2004-12").max().max() < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": "not-a-date"}, "start"),
        ({"start": "2010-01", "end": "2000-01"}, "must not be after"),
        ({"start": "2030-01"}, "available 1980-01 .. 2025-09"),
        ({"backfill": "yes"}, "backfill"),
        ({"ragged": "ffill"}, "ragged"),
        ({"ragged": None}, "ragged"),
    ],
)
def test_macro_history_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_macro_history(**kwargs)


# --------------------------------------------------------------------------- FRED-MD and USREC


def test_fred_md_raw_with_tcodes():
    md = load_fred_md()
    assert md.shape == (729, 128)
    assert (md.dtypes == np.float64).all()
    assert _is_month_start_index(md.index)
    assert md.index[0] == pd.Timestamp("1959-01-01") and md.index[-1] == pd.Timestamp("2019-09-01")
    tcodes = md.attrs["tcodes"]
    assert set(tcodes) == set(md.columns)
    assert set(tcodes.values()) <= set(range(1, 8))
    assert tcodes["INDPRO"] == 5 and tcodes["UNRATE"] == 2 and tcodes["CPIAUCSL"] == 6
    assert tcodes["FEDFUNDS"] == 2
    # core series are complete; the ragged edge is confined to a few late series
    assert not md[["INDPRO", "UNRATE", "CPIAUCSL", "FEDFUNDS", "GS10", "BAA"]].isna().any().any()
    assert md["UNRATE"].loc["2009-10-01"] == pytest.approx(10.0, abs=0.05)  # percent, as published
    # same BLS series in the FRED file and in FRED-MD, up to seasonal-factor revisions between vintages
    macro = load_macro_history(start="1990-01", end="2019-09")
    diff = (md["UNRATE"].loc["1990-01":] / 100 - macro["unemployment_rate"]).abs()
    assert diff.max() <= 0.001 + 1e-12 and (diff < 1e-12).mean() > 0.95


def test_fred_md_transform_applies_codes():
    md = load_fred_md()
    tr = load_fred_md(transform=True)
    assert tr.attrs["transformed"] and not md.attrs["transformed"]
    np.testing.assert_allclose(tr["INDPRO"].iloc[1:], np.diff(np.log(md["INDPRO"].to_numpy())), rtol=1e-12)
    np.testing.assert_allclose(tr["UNRATE"].iloc[1:], np.diff(md["UNRATE"].to_numpy()), rtol=1e-12)
    assert np.isnan(tr["CPIAUCSL"].iloc[:2]).all()  # second log difference loses two months
    x = pd.Series([1.0, 2.0, 4.0, 4.0])
    np.testing.assert_allclose(apply_fred_md_transform(x, 7).iloc[2:], [0.0, -1.0])
    with pytest.raises(DataError, match="tcode"):
        apply_fred_md_transform(x, 8)
    with pytest.raises(DataError, match="values <= 0"):
        apply_fred_md_transform(pd.Series([1.0, 0.0], name="z"), 5)


def test_recession_indicator_marks_nber_recessions():
    rec = load_recession_indicator()
    assert list(rec.columns) == ["recession"] and rec["recession"].dtype == np.int8
    assert _is_month_start_index(rec.index) and len(rec) == 552
    assert rec.index[0] == pd.Timestamp("1980-01-01") and rec.index[-1] == pd.Timestamp("2025-12-01")
    flags = rec["recession"]
    assert set(flags.unique()) == {0, 1}
    assert flags.loc["2008-01":"2009-06"].eq(1).all()
    assert flags.loc["2009-07":"2020-02"].eq(0).all()
    assert flags.loc["2001-04":"2001-11"].eq(1).all()
    assert flags.loc["1990-08":"1991-03"].eq(1).all()
    assert int(flags.loc[:"2019-12"].sum()) == 6 + 16 + 8 + 8 + 18  # months in the five NBER recessions 1980-2009
    assert flags.loc["2020-03":"2020-04"].eq(1).all()  # COVID: NBER peak 2020-02, trough 2020-04
    assert flags.loc["2020-05":].eq(0).all()
    assert int(flags.sum()) == 6 + 16 + 8 + 8 + 18 + 2


# --------------------------------------------------------------------------- Fed scenarios


@pytest.mark.parametrize(("year", "region"), sorted({(y, r) for y, _, r in available_fed_scenarios()}))
def test_fed_scenarios_published_tables(year, region):
    for scenario in ("baseline", "severely_adverse"):
        table = load_fed_scenarios(year, scenario, region=region)
        assert table.shape == ((13, 16) if region == "domestic" else (13, 12))
        assert (table.dtypes == np.float64).all() and not table.isna().any().any()
        assert isinstance(table.index, pd.DatetimeIndex) and table.index.name == "quarter"
        assert table.index[0] == pd.Timestamp(f"{year}-01-01")
        assert (table.index.to_period("Q").asi8[1:] - table.index.to_period("Q").asi8[:-1] == 1).all()
        expected = "Supervisory Baseline" if scenario == "baseline" else "Supervisory Severely Adverse"
        assert table.attrs["scenario_name"] == expected


def test_fed_scenarios_published_values():
    sa = load_fed_scenarios(2025, "severely_adverse")
    assert sa["Unemployment rate"].max() == pytest.approx(10.0)  # the Fed's 2025 peak: 10 %
    assert sa.loc["2025-01-01", "Real GDP growth"] == pytest.approx(-8.9)
    # aliases of the scenario name
    pd.testing.assert_frame_equal(load_fed_scenarios(2025, "Supervisory Severely Adverse"), sa)
    pd.testing.assert_frame_equal(load_fed_scenarios(2025, 2), sa)
    proposed = load_fed_scenarios(2026, "baseline")  # integers written without '.0' in these files
    assert proposed.loc["2026-01-01", "Unemployment rate"] == pytest.approx(4.6)


def test_fed_scenarios_monthly_mapping():
    table = load_fed_scenarios(2025, "severely_adverse")
    macro = load_fed_scenarios(2025, "severely_adverse", monthly=True)
    assert list(macro.columns) == list(MACRO_VARS) and macro.shape == (39, 9)
    assert _is_month_start_index(macro.index)
    assert macro.index[0] == pd.Timestamp("2025-01-01") and macro.index[-1] == pd.Timestamp("2028-03-01")
    assert not macro.isna().any().any()
    validate_macro(macro)
    # levels: the middle month of each quarter carries the published value / 100
    mid = macro.iloc[1::3]
    np.testing.assert_allclose(mid["unemployment_rate"], table["Unemployment rate"] / 100, rtol=1e-12)
    np.testing.assert_allclose(mid["yield_10y"], table["10-year Treasury yield"] / 100, rtol=1e-12)
    np.testing.assert_allclose(mid["policy_rate"], table["3-month Treasury rate"] / 100, rtol=1e-12)
    # growth rates: from the 4th quarter on, y/y is exactly the compounded published annualised rates
    g = (1 + table["Real GDP growth"].to_numpy() / 100) ** 0.25
    assert mid["gdp_growth"].iloc[5] == pytest.approx(np.prod(g[2:6]) - 1, rel=1e-12)
    hpi = table["House Price Index (Level)"].to_numpy()
    assert mid["house_price_growth"].iloc[8] == pytest.approx(hpi[8] / hpi[4] - 1, rel=1e-12)
    # the severe path is a recession: cumulative GDP fall and a house-price slump, spreads wide
    assert macro["gdp_growth"].min() < -0.05
    assert macro["house_price_growth"].min() < -0.20
    assert macro["credit_spread_hy"].max() > 0.10 and macro["credit_spread_ig"].max() > 0.03
    base = load_fed_scenarios(2025, "baseline", monthly=True)
    for var in ("unemployment_rate", "credit_spread_ig", "credit_spread_hy", "default_rate"):
        assert macro[var].max() > base[var].max()
    assert macro["gdp_growth"].min() < base["gdp_growth"].min()
    assert set(macro.attrs["derived"]) == {"credit_spread_ig", "credit_spread_hy", "default_rate"}
    assert set(macro.attrs["mapping"]) == set(MACRO_VARS)


def test_fed_scenarios_monthly_without_derived_says_what_it_lacks():
    macro = load_fed_scenarios(2024, "baseline", monthly=True, include_derived=False)
    assert macro.shape == (39, 6)
    assert macro.attrs["missing"] == ["credit_spread_ig", "credit_spread_hy", "default_rate"]
    with pytest.raises(DataError, match="credit_spread_ig"):
        validate_macro(macro)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((2023, "baseline"), {}, r"available \(year, scenario, region\): \(2024, 'baseline'"),
        ((2025, "adverse"), {}, "no 'adverse' supervisory scenario"),
        ((2025, "stagflation"), {}, "no 'stagflation'"),
        ((2024, "baseline"), {"region": "international"}, "available"),
        ((2025, "baseline"), {"region": "international", "monthly": True}, "domestic"),
        (("twenty", "baseline"), {}, "year must be an integer"),
        ((2025, 7), {}, "scenario index"),
    ],
)
def test_fed_scenarios_bad_arguments(args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_fed_scenarios(*args, **kwargs)


# --------------------------------------------------------------------------- UCI credit-card panel


def test_credit_card_panel_shape_dtypes_and_contract():
    panel = load_credit_card_panel()
    assert panel.shape == (30_000 * 6 + 6_636, 10)
    assert panel["loan_id"].nunique() == 30_000
    assert panel["loan_state"].dtype == np.int8 and panel["days_past_due"].dtype == np.int64
    assert panel["current_balance"].dtype == np.float64 and panel["actual_payment"].dtype == np.float64
    assert panel["pay_status"].dtype == "Int8"
    months = pd.DatetimeIndex(panel["reporting_month"].unique()).sort_values()
    assert _is_month_start_index(months)
    assert months[0] == pd.Timestamp("2005-04-01") and months[-1] == pd.Timestamp("2005-10-01")
    # NaN only where documented: the raw columns of the October DEFAULT rows
    required = [
        "loan_id", "reporting_month", "current_balance", "actual_payment", "days_past_due", "loan_state"
    ]
    assert not panel[required].isna().any().any()
    is_default_row = panel["reporting_month"] == pd.Timestamp("2005-10-01")
    assert panel.loc[is_default_row, ["pay_status", "bill_amount"]].isna().all().all()
    assert not panel.loc[~is_default_row, ["pay_status", "bill_amount"]].isna().any().any()
    assert (panel["current_balance"] >= 0).all() and (panel["actual_payment"] >= 0).all()
    checked = validate_panel(panel)
    assert len(checked) == len(panel)
    # censored: exactly the last (September) row of each Y = 0 account
    assert panel["censored"].dtype == bool and int(panel["censored"].sum()) == 30_000 - 6_636
    flagged = panel[panel["censored"]]
    assert (flagged["reporting_month"] == pd.Timestamp("2005-09-01")).all() and flagged["loan_id"].is_unique
    assert not panel.loc[panel["loan_state"] == LoanState.DEFAULT, "loan_id"].isin(flagged["loan_id"]).any()


def test_markov_fit_on_the_credit_card_panel_gives_a_plausible_pd():
    """Defect: fitted as shipped (non-defaulters simply absent after September) every observed move
    out of September was a default: 12-month PD from CURRENT 40.6 %, 6-month 21.3 % against an
    empirical 18.7 %. With the censored flag the 6-month PD matches the data and the 12-month PD is
    about two 6-month periods of it."""
    from creditsim.transitions.markov import MarkovTransitionModel

    panel = load_credit_card_panel()
    tape = load_credit_card_tape().set_index("loan_id")
    # empirical 6-month default rate (April -> October 2005) of the accounts CURRENT in April, from the
    # raw UCI flag of the tape, independent of the fit
    april = panel[(panel["reporting_month"] == pd.Timestamp("2005-04-01")) & (panel["loan_state"] == 0)]
    r6 = float(tape.loc[april["loan_id"], "default_next_month"].mean())
    assert 0.18 < r6 < 0.19
    model = MarkovTransitionModel().fit(panel)
    assert int(model.censored_counts_.sum()) == 23_364
    pd_curve = model.pd_curve(12, initial_state=LoanState.CURRENT)
    assert abs(pd_curve[5] - r6) < 0.015, pd_curve[5]
    assert r6 < pd_curve[11] < 1 - (1 - r6) ** 2 + 0.03, pd_curve[11]
    # lifetime = the tape's nominal card term; the data hold no PREPAID/MATURED exit, so only a
    # finite-term PD can be below 1 (infinite-horizon absorption into DEFAULT is 1 by construction)
    term = int(tape["term_months"].iloc[0])
    lifetime = model.pd_curve(term)
    assert (lifetime < 1).all() and lifetime[-1] == pd_curve[term - 1]
    by_state = [model.pd_curve(term, initial_state=s)[-1] for s in range(4)]
    assert all(0 < x < 1 for x in by_state), by_state


def test_credit_card_panel_states_follow_the_raw_codes():
    panel = load_credit_card_panel()
    tape = load_credit_card_tape()
    live = panel[panel["reporting_month"] < pd.Timestamp("2005-10-01")]
    # the uncapped mapping: <= 0 current, 1, 2, >= 3 -> DPD90
    raw = live["pay_status"].astype(np.int64)
    np.testing.assert_array_equal(live["reported_state"], np.clip(raw, 0, 3))
    # the cap only ever lowers a state, and only where the reported path jumped
    assert (live["loan_state"] <= live["reported_state"]).all()
    assert 0 < panel.attrs["n_capped"] == int((live["loan_state"] != live["reported_state"]).sum())
    # exactly the Y = 1 accounts end in DEFAULT in October 2005
    defaults = panel.loc[panel["loan_state"] == LoanState.DEFAULT]
    assert (defaults["reporting_month"] == pd.Timestamp("2005-10-01")).all()
    flagged = set(tape.loc[tape["default_next_month"] == 1, "loan_id"])
    assert set(defaults["loan_id"]) == flagged and len(flagged) == 6_636
    assert tape["default_next_month"].mean() == pytest.approx(0.2212)
    # the published UCI counts of repayment codes over all 6 months (PROVENANCE)
    counts = raw.value_counts().to_dict()
    assert counts[-2] == 24_415 and counts[2] == 18_964 and counts[0] == 95_919 and counts[8] == 28
    # every consecutive move is allowed by the library's mask
    st = panel["loan_state"].to_numpy(np.int64)
    same = panel["loan_id"].to_numpy()[1:] == panel["loan_id"].to_numpy()[:-1]
    assert ALLOWED_TRANSITIONS[st[:-1], st[1:]][same].all()
    # days past due agree with the state in live months
    np.testing.assert_array_equal(live["days_past_due"], 30 * live["loan_state"].astype(np.int64))


def test_credit_card_first_account_matches_the_source_row():
    """UCI ID 1: statuses Apr..Sep = -2, -2, -1, -1, 2, 2; bills 0, 0, 0, 689, 3102, 3913; Y = 1."""
    panel = load_credit_card_panel()
    one = panel[panel["loan_id"] == "UCI-00001"]
    assert one["pay_status"].tolist() == [-2, -2, -1, -1, 2, 2, pd.NA]
    assert one["reported_state"].tolist() == [0, 0, 0, 0, 2, 2, 4]
    assert one["loan_state"].tolist() == [0, 0, 0, 0, 1, 2, 4]  # 0 -> 2 capped to 0 -> 1 -> 2
    assert one["current_balance"].tolist() == [0.0, 0.0, 0.0, 689.0, 3102.0, 3913.0, 3913.0]
    assert one["actual_payment"].tolist() == [0.0, 0.0, 0.0, 0.0, 689.0, 0.0, 0.0]


def test_capped_delinquency_path_advances_one_bucket_a_month():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from creditsim.datasets.credit_card import capped_delinquency_path

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.lists(st.integers(0, 3), min_size=6, max_size=6), min_size=1, max_size=20))
    def check(rows):
        reported = np.array(rows, dtype=np.int8)
        capped = capped_delinquency_path(reported)
        assert (capped <= reported).all()
        assert (np.diff(capped.astype(int), axis=1) <= 1).all()
        assert (capped[:, 0] == reported[:, 0]).all()
        # where the reported path never jumps, nothing changes
        smooth = (np.diff(reported.astype(int), axis=1) <= 1).all(axis=1)
        assert (capped[smooth] == reported[smooth]).all()

    check()


def test_credit_card_tape_passes_contract_and_matches_panel():
    tape = load_credit_card_tape()
    assert tape.shape[0] == 30_000 and tape["loan_id"].is_unique
    validate_loan_tape(tape)
    assert (tape["original_balance"] == tape["credit_limit"]).all()
    assert tape["original_balance"].min() == 10_000 and tape["original_balance"].max() == 1_000_000
    assert (tape["asset_class"] == "consumer").all() and (tape["geography_country"] == "TW").all()
    assert tape["age"].between(18, 100).all()
    assert not tape.isna().any().any()
    panel = load_credit_card_panel()
    assert set(panel["loan_id"]) == set(tape["loan_id"])
    assert (panel["reporting_month"] >= tape["origination_date"].min()).all()


def test_credit_card_loaders_return_copies():
    panel = load_credit_card_panel()
    panel["loan_state"] = np.int8(6)
    assert (load_credit_card_panel()["loan_state"] != 6).all()


def test_missing_bundled_file_raises_data_error():
    from creditsim.datasets.files import data_path

    with pytest.raises(DataError, match="fred/NOPE.csv.gz' is missing"):
        data_path("fred", "NOPE.csv.gz")
