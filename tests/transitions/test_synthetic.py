"""Synthetic macro scenarios, loan tapes and panels (creditsim.transitions.synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.features import LOAN_FEATURES, loan_features
from creditsim.rng import numpy_generator
from creditsim.transitions.markov import DEFAULT_MACRO_MEAN, MarkovTransitionModel, base_case_matrix
from creditsim.transitions.synthetic import (ASSET_CLASS_PARAMS, LoanTapeGenerator, MacroSensitivity, OverlaySensitivity,
                                             _Schedule, jitter_macro_path)
from creditsim.macro.synthetic import (SCENARIO_PROFILES, MacroAnchors, MacroScenarioGenerator,
                                      activity_level_drawdown)
from creditsim.errors import ConfigError, DataError
from creditsim.schema import RATINGS, REQUIRED_LOAN_COLUMNS, validate_loan_tape, validate_panel
from creditsim.states import ALLOWED_TRANSITIONS, ASSET_CLASSES, MACRO_VARS, LoanState

U = MACRO_VARS.index("unemployment_rate")
G = MACRO_VARS.index("gdp_growth")
PI = MACRO_VARS.index("inflation_rate")
POL = MACRO_VARS.index("policy_rate")


@pytest.fixture(scope="module")
def tape_and_panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    return LoanTapeGenerator(4000, 36, random_seed=11).generate()


@pytest.fixture(scope="module")
def scenario_means() -> dict[str, np.ndarray]:
    gen = MacroScenarioGenerator(60)
    return {s: gen.generate_scenario(s, n_paths=200, seed=5) for s in
            ("baseline", "adverse", "severely_adverse", "stagflation")}


def flat_macro(n_months: int, **overrides: float) -> np.ndarray:
    """A constant macro path at the macro generator's steady state, with optional overrides."""
    a = MacroAnchors()
    vec = a.as_vector()
    for name, value in overrides.items():
        vec[MACRO_VARS.index(name)] = value
    return np.tile(vec, (n_months, 1))


def neutral_macro(n_months: int) -> np.ndarray:
    """A constant path at the overlay's centre (``DEFAULT_MACRO_MEAN``, unemployment flat): every shock 0."""
    vec = np.array([DEFAULT_MACRO_MEAN[v] for v in MACRO_VARS])
    return np.tile(vec, (n_months, 1))


# -- macro scenarios ---------------------------------------------------------------------------------


def test_macro_paths_have_shape_order_and_are_reproducible():
    gen = MacroScenarioGenerator(48, start="2026-03")
    a = gen.generate_scenario("adverse", n_paths=3, seed=7)
    b = gen.generate_scenario(1, n_paths=3, seed=7)
    c = gen.generate_scenario("adverse", n_paths=3, seed=8)
    assert a.shape == (3, 48, 9) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # path k does not depend on how many paths were drawn
    np.testing.assert_array_equal(gen.generate_scenario("adverse", n_paths=1, seed=7)[0], a[0])
    frame = gen.scenario_frame("adverse", seed=7, path=2)
    assert list(frame.columns) == list(MACRO_VARS)
    assert frame.index[0] == pd.Timestamp("2026-03-01") and len(frame) == 48
    np.testing.assert_array_equal(frame.to_numpy(), a[2])


@pytest.mark.parametrize("block", [1, 7, 2048])
def test_macro_paths_drawn_block_by_block_are_one_draw_of_the_whole_noise(monkeypatch, block):
    """generate_scenario computes its paths a block at a time (cache-sized); the noise of the blocks is
    one path-major draw of the scenario's generator, so the paths are the bits of the whole-array model
    whatever the block size (a block that re-seeded, or drew month-major, would differ)."""
    gen = MacroScenarioGenerator(30)
    whole_noise = numpy_generator(11).standard_normal((50, 30, MacroScenarioGenerator._N_NOISE))
    expected = gen._paths(SCENARIO_PROFILES[3], whole_noise)
    monkeypatch.setattr(MacroScenarioGenerator, "_BLOCK_PATHS", block)
    got = gen.generate_scenario("stagflation", n_paths=50, seed=11)
    assert got.view(np.int64).tolist() == expected.view(np.int64).tolist()


def test_severe_worse_than_adverse_worse_than_baseline_on_unemployment_peak_and_gdp_trough(scenario_means):
    peak = {s: p[:, :, U].max(axis=1).mean() for s, p in scenario_means.items()}
    trough = {s: p[:, :, G].min(axis=1).mean() for s, p in scenario_means.items()}
    assert peak["severely_adverse"] > peak["adverse"] + 0.01 > peak["baseline"] + 0.02
    assert trough["severely_adverse"] < trough["adverse"] - 0.02 < trough["baseline"] - 0.04


def test_severely_adverse_reaches_fed_magnitudes(scenario_means):
    severe = scenario_means["severely_adverse"]
    mean_path = severe.mean(axis=0)
    assert 0.09 <= mean_path[:, U].max() <= 0.11  # Fed: unemployment near 10 %
    drawdown = activity_level_drawdown(severe[:, :, G]).mean()
    assert -0.10 <= drawdown <= -0.065  # Fed: real GDP about -8 % peak to trough
    assert mean_path[:, POL].min() < 0.005  # policy rate to the floor


def test_severe_scenario_matches_published_fed_2025_severely_adverse(scenario_means):
    from creditsim.datasets import load_fed_scenarios

    fed = load_fed_scenarios(2025, "severely_adverse")
    fed_u_peak = fed["Unemployment rate"].max() / 100.0
    # annualised q/q real growth -> level -> cumulative peak-to-trough decline
    level = np.cumprod((1.0 + fed["Real GDP growth"].to_numpy() / 100.0) ** 0.25)
    level = np.concatenate([[1.0], level])
    fed_drawdown = (level / np.maximum.accumulate(level) - 1.0).min()
    severe = scenario_means["severely_adverse"]
    ours_u = severe[:, :, U].max(axis=1).mean()
    ours_dd = activity_level_drawdown(severe[:, :, G]).mean()
    assert abs(ours_u - fed_u_peak) < 0.01
    assert abs(ours_dd - fed_drawdown) < 0.02


def test_stagflation_keeps_inflation_and_policy_rate_high_while_activity_falls(scenario_means):
    stag, base = scenario_means["stagflation"].mean(axis=0), scenario_means["baseline"].mean(axis=0)
    window = slice(6, 36)
    assert stag[window, PI].mean() > base[window, PI].mean() + 0.03
    assert stag[window, POL].mean() > base[window, POL].mean() + 0.02
    assert stag[:, G].min() < base[:, G].min() - 0.02
    assert stag[:, U].max() > base[:, U].max() + 0.01


def test_activity_level_drawdown_closed_form():
    # constant y/y growth on the trend: the level never falls
    assert activity_level_drawdown(np.full(24, 0.02), trend=0.02) == pytest.approx(0.0, abs=1e-12)
    # twelve months at -6 % y/y after a trend of 0: the level falls 6 % in a year
    g = np.concatenate([np.full(12, -0.06), np.zeros(12)])
    assert activity_level_drawdown(g, trend=0.0) == pytest.approx(-0.06)


def test_macro_generator_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="n_months"):
        MacroScenarioGenerator(0)
    with pytest.raises(ConfigError, match="scenario"):
        MacroScenarioGenerator(12).generate_scenario("apocalypse")
    with pytest.raises(ConfigError, match="n_paths"):
        MacroScenarioGenerator(12).generate_scenario("baseline", n_paths=0)


# -- loan tape ---------------------------------------------------------------------------------------


def test_same_seed_same_frames_different_seed_different_frames():
    a_loans, a_panel = LoanTapeGenerator(300, 18, random_seed=3).generate()
    b_loans, b_panel = LoanTapeGenerator(300, 18, random_seed=3).generate()
    c_loans, c_panel = LoanTapeGenerator(300, 18, random_seed=4).generate()
    pd.testing.assert_frame_equal(a_loans, b_loans)
    pd.testing.assert_frame_equal(a_panel, b_panel)
    assert not a_loans["original_balance"].equals(c_loans["original_balance"])
    assert not a_panel["loan_state"].equals(c_panel["loan_state"])


def test_tape_has_all_columns_and_passes_validation(tape_and_panel):
    loans, _ = tape_and_panel
    optional = ["spread_bps", "ltv_origination", "dti_dscr_origination", "internal_score", "external_score",
                "industry_sector", "collateral_type", "collateral_value", "rating", "lgd_assumption",
                "current_balance"]
    assert set(REQUIRED_LOAN_COLUMNS) | set(optional) <= set(loans.columns)
    clean = validate_loan_tape(loans)
    assert len(clean) == 4000 and loans["loan_id"].is_unique
    assert set(loans["asset_class"]) == set(ASSET_CLASS_PARAMS)


@pytest.mark.parametrize("asset_class", list(ASSET_CLASS_PARAMS))
def test_ranges_per_asset_class_follow_the_spec(tape_and_panel, asset_class):
    loans, _ = tape_and_panel
    df = loans[loans["asset_class"] == asset_class]
    p = ASSET_CLASS_PARAMS[asset_class]
    assert df["original_balance"].between(*p.balance).all()
    assert df["interest_rate"].between(p.rate[0] - 1e-9, p.rate[1] + 1e-9).all()
    assert df["term_months"].between(*p.term).all()
    assert df["lgd_assumption"].between(*p.lgd).all()
    assert (df["current_balance"] <= df["original_balance"]).all() and (df["current_balance"] > 0).all()
    assert (df["maturity_date"] > df["origination_date"]).all()
    # class-level annual default rate inside the spec's range
    assert p.pd_annual[0] <= df["pd_annual"].mean() <= p.pd_annual[1]
    if p.prepay_annual is not None:
        assert df["prepay_annual"].between(*p.prepay_annual).all()
    ltv = df["ltv_origination"].dropna()
    ratio = df["dti_dscr_origination"].dropna()
    if asset_class == "corporate":
        assert ltv.between(0.5, 0.8).all() and ratio.between(1.1, 2.5).all()
        assert df["rating"].isin(RATINGS).all() and df["rating"].nunique() >= 5
        assert set(df["borrower_type"]) <= {"sme", "midmarket", "large_corporate"}
    elif asset_class == "consumer":
        assert ratio.between(0.2, 0.5).all() and len(ratio) == len(df)
        assert df["external_score"].between(300, 850).all()
        assert (df["borrower_type"] == "consumer").all()
    elif asset_class == "real_estate":
        assert ltv.between(0.5, 0.9).all() and len(ltv) == len(df) and ratio.between(1.0, 1.8).all()
        assert (df["collateral_type"] == "real_estate").all()
    else:
        assert df["dilution_rate"].between(0.02, 0.10).all()
        assert (df["amortization_type"] == "bullet").all()
    if asset_class != "corporate":
        assert df["rating"].isna().all()
    floating = df["rate_type"] == "floating"
    assert df.loc[floating, "spread_bps"].between(50, 800).all()
    assert df.loc[~floating, "spread_bps"].isna().all()


def test_asset_mix_sets_class_counts():
    loans, _ = LoanTapeGenerator(1000, 3, asset_mix={"consumer": 3, "receivables": 1}, random_seed=1).generate()
    counts = loans["asset_class"].value_counts()
    assert counts["consumer"] == 750 and counts["receivables"] == 250 and len(counts) == 2


def test_generator_rejects_bad_configuration():
    with pytest.raises(ConfigError, match="unknown asset class"):
        LoanTapeGenerator(10, 5, asset_mix={"aircraft": 1.0})
    with pytest.raises(ConfigError, match="n_loans"):
        LoanTapeGenerator(0, 5)
    with pytest.raises(DataError, match="at least n_months=12"):
        LoanTapeGenerator(10, 12, macro_path=flat_macro(6))
    with pytest.raises(DataError, match="shape"):
        LoanTapeGenerator(10, 12, macro_path=np.zeros((12, 4)))


# -- panel -------------------------------------------------------------------------------------------


def test_panel_passes_validation_and_respects_allowed_transitions(tape_and_panel):
    loans, panel = tape_and_panel
    clean = validate_panel(panel)  # raises on any forbidden move
    assert len(clean) == 4000 * 36
    st = panel["loan_state"].to_numpy().reshape(4000, 36)
    assert ALLOWED_TRANSITIONS[st[:, :-1], st[:, 1:]].all()
    assert ALLOWED_TRANSITIONS[np.zeros(4000, dtype=int), st[:, 0]].all()  # from CURRENT at the cut-off
    # every state is visited in a 4000-loan book over 3 years
    assert set(np.unique(st)) == set(range(7))


def test_panel_balances_never_negative_nor_above_original(tape_and_panel):
    loans, panel = tape_and_panel
    orig = np.repeat(loans["original_balance"].to_numpy(), 36)
    assert (panel["current_balance"] >= 0).all()
    assert (panel["current_balance"].to_numpy() <= orig + 1e-6).all()
    absorbed = panel["loan_state"].isin([LoanState.DEFAULT, LoanState.PREPAID, LoanState.MATURED])
    assert (panel.loc[absorbed, "current_balance"] == 0).all()


def test_principal_is_conserved_per_loan(tape_and_panel):
    """Cut-off balance = principal paid + prepaid + defaulted balance + balance left at the end."""
    loans, panel = tape_and_panel
    n = len(loans)
    arr = {c: panel[c].to_numpy().reshape(n, -1) for c in
           ("principal_paid", "prepayment_amount", "loss_amount", "current_balance")}
    defaulted_par = arr["loss_amount"].sum(axis=1) / loans["lgd_assumption"].to_numpy()
    total = (arr["principal_paid"].sum(axis=1) + arr["prepayment_amount"].sum(axis=1) + defaulted_par
             + arr["current_balance"][:, -1])
    np.testing.assert_allclose(total, loans["current_balance"].to_numpy(), rtol=1e-6, atol=1.0)


def test_loss_plus_recovery_at_most_balance_at_default(tape_and_panel):
    loans, panel = tape_and_panel
    n = len(loans)
    state = panel["loan_state"].to_numpy().reshape(n, -1)
    bal = panel["current_balance"].to_numpy().reshape(n, -1)
    prev_bal = np.concatenate([loans["current_balance"].to_numpy()[:, None], bal[:, :-1]], axis=1)
    prev_state = np.concatenate([np.zeros((n, 1), int), state[:, :-1]], axis=1)
    new_default = (state == LoanState.DEFAULT) & (prev_state != LoanState.DEFAULT)
    loss = panel["loss_amount"].to_numpy().reshape(n, -1)
    rec = panel["recovery_amount"].to_numpy().reshape(n, -1)
    at_default = (prev_bal * new_default).sum(axis=1)
    assert new_default.any()
    assert np.all(loss.sum(axis=1) + rec.sum(axis=1) <= at_default + 0.02)
    lgd = loans["lgd_assumption"].to_numpy()
    np.testing.assert_allclose(loss.sum(axis=1), lgd * at_default, atol=0.01)
    # loss is recognised only in the month of default
    assert np.all((loss > 0) <= new_default)


def _single_loan_panel(amortization: str, frequency: str = "monthly") -> tuple[pd.Series, pd.DataFrame]:
    """A loan kept CURRENT for its whole life (no delinquency, no prepayment) and its panel."""
    # strong growth and a link on which it also stops prepayment (unclipped, z ~ 30): loans stay CURRENT
    # until maturity
    link = {"delinquency": {"gdp_growth": -0.2}, "prepayment": {"gdp_growth": -0.1}}
    gen = LoanTapeGenerator(400, 60, asset_mix={"corporate": 1.0}, random_seed=2,
                            macro_path=flat_macro(60, gdp_growth=0.60),
                            sensitivity=OverlaySensitivity({c: link for c in ASSET_CLASSES}, z_clip=None))
    loans, panel = gen.generate()
    states = panel["loan_state"].to_numpy().reshape(len(loans), -1)
    clean = np.isin(states, [LoanState.CURRENT, LoanState.MATURED]).all(axis=1)
    pick = loans[(loans["amortization_type"] == amortization) & (loans["payment_frequency"] == frequency) & clean]
    loan = pick.iloc[0]
    return loan, panel[panel["loan_id"] == loan["loan_id"]].reset_index(drop=True)


def test_annuity_loan_pays_the_closed_form_instalment():
    loan, rows = _single_loan_panel("annuity")
    i, n, b0 = loan["interest_rate"] / 12.0, int(loan["term_months"]), loan["original_balance"]
    instalment = b0 * i / (1.0 - (1.0 + i) ** -n)
    live = rows["loan_state"] == 0
    np.testing.assert_allclose(rows.loc[live, "scheduled_payment"], instalment, rtol=1e-6)
    np.testing.assert_allclose(rows.loc[live, "actual_payment"], instalment, rtol=1e-6)
    # interest is the monthly rate on last month's balance
    prev = np.concatenate([[loan["current_balance"]], rows["current_balance"].to_numpy()[:-1]])
    np.testing.assert_allclose(rows.loc[live, "interest_paid"], (prev * i)[live.to_numpy()], rtol=1e-6, atol=0.01)


def test_linear_and_bullet_schedules():
    b0, rate = np.array([1200.0, 1000.0]), np.array([0.12, 0.06])
    term, period = np.array([12, 24]), np.array([1, 3])
    amort = np.array([1, 2])  # linear monthly, bullet quarterly
    sched = _Schedule(b0, rate, term, period, amort)
    bal, ci = sched(np.array([3, 7]))
    assert bal[0] == pytest.approx(1200 * (1 - 3 / 12))  # equal principal parts
    assert ci[0] == pytest.approx(0.01 * (1200 + 1100 + 1000))  # interest on the declining balance
    assert bal[1] == pytest.approx(1000.0)  # bullet: principal only at maturity
    assert ci[1] == pytest.approx(1000 * 0.015 * 2)  # two quarterly coupons paid by month 7
    bal_end, _ = sched(np.array([12, 24]))
    np.testing.assert_allclose(bal_end, 0.0)


@settings(max_examples=40, deadline=None)
@given(
    b0=st.floats(1e3, 1e7), rate=st.floats(0.02, 0.2), n_periods=st.integers(1, 40),
    period=st.sampled_from([1, 3, 6]), amort=st.integers(0, 3),
)
def test_schedule_balance_is_monotone_and_reaches_zero(b0, rate, n_periods, period, amort):
    term = n_periods * period
    sched = _Schedule(np.array([b0]), np.array([rate]), np.array([term]), np.array([period]), np.array([amort]))
    months = np.arange(term + 1)
    bal = np.array([sched(np.array([k]))[0][0] for k in months])
    ci = np.array([sched(np.array([k]))[1][0] for k in months])
    assert bal[0] == pytest.approx(b0) and bal[-1] == pytest.approx(0.0, abs=1e-6 * b0)
    assert np.all(np.diff(bal) <= 1e-6 * b0) and np.all(np.diff(ci) >= -1e-6 * b0)
    # total interest never exceeds rate x b0 x term (the bullet case is the maximum)
    assert ci[-1] <= rate * b0 * term / 12.0 + 1e-6 * b0


def test_severe_macro_path_gives_more_defaults_than_baseline():
    gen = MacroScenarioGenerator(36)
    base = gen.generate_scenario("baseline", seed=1)[0]
    severe = gen.generate_scenario("severely_adverse", seed=1)[0]
    _, p_base = LoanTapeGenerator(3000, 36, random_seed=9, macro_path=base).generate()
    _, p_severe = LoanTapeGenerator(3000, 36, random_seed=9, macro_path=severe).generate()
    def last(p: pd.DataFrame) -> np.ndarray:
        return p["loan_state"].to_numpy().reshape(3000, 36)[:, -1]
    d_base, d_severe = (last(p_base) == 4).mean(), (last(p_severe) == 4).mean()
    pp_base, pp_severe = (last(p_base) == 5).mean(), (last(p_severe) == 5).mean()
    assert d_severe > 1.5 * d_base
    assert pp_severe < pp_base  # prepayment falls in the downturn


def test_realised_default_frequency_matches_pd_annual_without_macro_shock():
    """At the overlay's centre (no shock), the 12-month default frequency of a real-estate book equals its
    mean PD."""
    loans, panel = LoanTapeGenerator(12000, 12, asset_mix={"real_estate": 1.0}, random_seed=4,
                                     macro_path=neutral_macro(12)).generate()
    realised = (panel["loan_state"].to_numpy().reshape(12000, 12)[:, -1] == LoanState.DEFAULT).mean()
    expected = loans["pd_annual"].mean()
    se = np.sqrt(expected * (1 - expected) / 12000)
    assert abs(realised - expected) < 4 * se + 0.001


def test_first_month_roll_rates_match_the_spec_base_case():
    """A flat macro path at the overlay's centre leaves the spec's base-case roll rates unchanged."""
    loans, panel = LoanTapeGenerator(20000, 2, asset_mix={"consumer": 1.0}, random_seed=6,
                                     macro_path=neutral_macro(2)).generate()
    st = panel["loan_state"].to_numpy().reshape(20000, 2)
    prepaid = (st[:, 0] == LoanState.PREPAID).mean()
    expected = 1.0 - (1.0 - loans["prepay_annual"].to_numpy()) ** (1 / 12)
    # each loan's prepayment log-odds target its prepay_annual; the competing delinquency move makes
    # the match approximate (well inside the tolerance)
    assert abs(prepaid - expected.mean()) < 4 * np.sqrt(expected.mean() / 20000) + 0.002


# -- the macro link: the Markov overlay's, per asset class ------------------------------------------


def _overlay_tilt(mats: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``(T, 7, 7)`` log-odds against staying put of ``(T, 7, 7)`` matrices minus those of ``base``
    (0 where ``base`` has no move), on the live rows."""
    live = np.arange(4)
    tilt = np.zeros_like(mats)
    has = base > 0
    for i in live:
        for j in np.flatnonzero(has[i]):
            tilt[:, i, j] = (np.log(mats[:, i, j] / mats[:, i, i]) - np.log(base[i, j] / base[i, i]))
    return tilt


def _fed_path(name: str, months: int) -> np.ndarray:
    from creditsim.macro.scenarios import fed_table_path

    return fed_table_path(2025, name)[:months]


def test_generator_link_is_the_markov_overlay_tilt_exactly():
    """The generator's per-class log-odds shift is the default Markov chain's tilt, clip and derived
    unemployment change included, on a path that leaves the +-4 sd range."""
    path = _fed_path("severely_adverse", 24).copy()
    path[5:9, MACRO_VARS.index("gdp_growth")] = -0.15  # beyond 4 sd: clipped by both
    path[:, MACRO_VARS.index("policy_rate")] += np.linspace(0.0, 0.04, 24)
    shift = OverlaySensitivity.calibrated().class_logit_shift(path)  # (C, T, 7, 7)
    mats = MarkovTransitionModel.default().scenario_matrices(path[None])[0]  # (C, T, 7, 7)
    assert shift.shape == (len(ASSET_CLASSES), 24, 7, 7)
    for c, cls in enumerate(ASSET_CLASSES):
        base = base_case_matrix(cls)
        tilt = _overlay_tilt(mats[c], base)
        has = np.broadcast_to(base > 0, tilt.shape)
        np.testing.assert_allclose(shift[c][has], tilt[has], rtol=0, atol=1e-9)
        assert np.abs(tilt[:, 0, 1]).max() > 0.1  # the path does tilt


@pytest.fixture(scope="module")
def stressed_book() -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """40 000 loans (10 000 per class) for 24 months of the Fed 2025 severely adverse path: ``(path,
    tape, (n, 24) states, (n, 7, 7) each loan's own base-case log-odds against staying put)``."""
    path = _fed_path("severely_adverse", 24)
    gen = LoanTapeGenerator(40000, 24, asset_mix={c: 1.0 for c in ASSET_CLASSES}, random_seed=17, macro_path=path)
    loans, panel = gen.generate()
    _, extras = gen._draw_tape(numpy_generator(gen.random_seed, 0))  # the tape generate() drew
    return path, loans, panel["loan_state"].to_numpy().reshape(len(loans), 24), extras["loan_eta"]


@pytest.mark.parametrize("asset_class", ASSET_CLASSES)
def test_panel_moves_follow_the_markov_default_chain_under_a_stress_path(stressed_book, asset_class):
    """Every live row of a class's panel has, within sampling error, the moves of
    ``MarkovTransitionModel.default().scenario_matrices`` under the same path. The delinquent rows are the
    chain's matrices exactly; the CURRENT row is each loan's own base row (its PD and prepayment level,
    which the chain averages) tilted by the chain's month-by-month tilt. A loan whose final month would
    leave it CURRENT is MATURED in the panel (the contractual rule), so MATURED counts as CURRENT here.
    The same counts are far from the untilted rows: the check has the power to see the link."""
    path, loans, states, loan_eta = stressed_book
    c = ASSET_CLASSES.index(asset_class)
    mats = MarkovTransitionModel.default().scenario_matrices(path[None])[0, c]  # (T, 7, 7)
    tilt = _overlay_tilt(mats, base_case_matrix(asset_class))
    mine = np.flatnonzero(loans["asset_class"].to_numpy() == asset_class)
    st = states[mine]
    prev = np.concatenate([np.zeros((len(mine), 1), dtype=st.dtype), st[:, :-1]], axis=1)
    new = np.where(st == LoanState.MATURED, LoanState.CURRENT, st)  # the maturity relabel, undone
    for tilted in (True, False):
        for i in range(4):
            loan_idx, month = np.nonzero(prev == i)
            eta = loan_eta[mine[loan_idx], i] + (tilt[month, i] if tilted else 0.0)  # (m, 7)
            p = np.exp(eta - eta.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            observed = np.bincount(new[loan_idx, month], minlength=7)
            expected, sd = p.sum(0), np.sqrt((p * (1 - p)).sum(0))
            moves = [j for j in range(7) if j != i and expected[j] > 0]
            z = {LoanState(j).name: (observed[j] - expected[j]) / sd[j] for j in moves}
            if tilted:
                assert all(abs(v) < 4.5 for v in z.values()), (asset_class, LoanState(i).name, z)
            elif i == LoanState.CURRENT:
                assert z["DPD30"] > 6, (asset_class, z)  # the stress raises delinquency onset


def test_jitter_moves_each_variable_independently_and_keeps_floors():
    path = _fed_path("severely_adverse", 36)
    a = jitter_macro_path(path, np.random.default_rng(0), 1.0)
    b = jitter_macro_path(path, np.random.default_rng(0), 1.0)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jitter_macro_path(path, np.random.default_rng(0), 0.0), path)
    u, pol = MACRO_VARS.index("unemployment_rate"), MACRO_VARS.index("policy_rate")
    assert (a[:, u] >= 0.02).all() and (a[:, pol] >= 0.0).all()
    # over many paths the shifts of two variables are uncorrelated
    rng = np.random.default_rng(1)
    d = np.stack([jitter_macro_path(path, rng, 1.0)[24] - path[24] for _ in range(400)])
    g, s = MACRO_VARS.index("gdp_growth"), MACRO_VARS.index("credit_spread_hy")
    assert abs(np.corrcoef(d[:, g], d[:, s])[0, 1]) < 0.2
    with pytest.raises(ConfigError, match="scale"):
        jitter_macro_path(path, rng, -1.0)


def test_old_spec_link_stays_reachable():
    """``sensitivity=MacroSensitivity()`` is the pre-issue-13 link (the same for every class); the default
    differs from it."""
    path = _fed_path("severely_adverse", 12)
    old = MacroSensitivity().class_logit_shift(path, MacroAnchors())
    assert old.shape == (4, 12, 7, 7) and (old[0] == old[3]).all()
    _, p_old = LoanTapeGenerator(500, 12, random_seed=3, macro_path=path, sensitivity=MacroSensitivity()).generate()
    _, p_new = LoanTapeGenerator(500, 12, random_seed=3, macro_path=path).generate()
    assert not p_old["loan_state"].equals(p_new["loan_state"])
    with pytest.raises(ConfigError, match="sensitivity"):
        LoanTapeGenerator(10, 2, sensitivity={"corporate": {}})
    with pytest.raises(ConfigError, match="asset classes"):
        OverlaySensitivity({"corporate": {}})


# -- loan features -----------------------------------------------------------------------------------


def test_loan_features_shape_dtype_and_fixed_scaling(tape_and_panel):
    loans, _ = tape_and_panel
    feats = loan_features(loans)
    assert feats.shape == (4000, 24) and (feats.dtypes == np.float32).all()
    assert list(feats.columns) == [f[0] for f in LOAN_FEATURES]
    assert np.isfinite(feats.to_numpy()).all()
    assert feats.abs().to_numpy().max() < 10
    # a loan's features do not depend on the other loans of the tape (fixed scaling)
    sub = loan_features(loans.iloc[:50], as_of=loans["origination_date"].max())
    pd.testing.assert_frame_equal(sub, feats.iloc[:50])
    # one-hot blocks: exactly one asset class and one amortisation type per loan
    centre, scale = 0.25, 0.43
    onehot = feats[["is_corporate", "is_consumer", "is_real_estate", "is_receivables"]] * scale + centre
    np.testing.assert_allclose(onehot.sum(axis=1), 1.0, atol=1e-5)
    rate = feats["interest_rate"] * 0.035 + 0.07
    np.testing.assert_allclose(rate, loans["interest_rate"], atol=1e-6)


def test_loan_features_validate_the_tape(tape_and_panel):
    loans, _ = tape_and_panel
    with pytest.raises(DataError, match="original_balance"):
        loan_features(loans.drop(columns="original_balance"))


def test_macro_dataframe_and_array_inputs_give_the_same_panel():
    gen = MacroScenarioGenerator(12)
    frame = gen.scenario_frame("adverse", seed=3)
    _, from_frame = LoanTapeGenerator(200, 12, random_seed=1, macro_path=frame).generate()
    _, from_array = LoanTapeGenerator(200, 12, random_seed=1, macro_path=frame.to_numpy()[None]).generate()
    pd.testing.assert_frame_equal(from_frame, from_array)
