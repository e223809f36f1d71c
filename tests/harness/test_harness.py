"""The transition harness: moves, contestants, scores and splits, checked by hand and against sklearn."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError
from creditsim.harness import build_moves, evaluate_transitions, make_contestant, split_moves
from creditsim.harness.scoring import expected_calibration_error, move_scores, weighted_auc
from creditsim.states import ALLOWED_TRANSITIONS


def _panel(rows: list[tuple[str, str, int, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["loan_id", "reporting_month", "loan_state", "censored"]).assign(
        reporting_month=lambda d: pd.to_datetime(d["reporting_month"]))


def test_moves_by_hand() -> None:
    panel = _panel([
        ("a", "2020-01", 0, False), ("a", "2020-02", 1, False), ("a", "2020-03", 4, False),  # 0->1, 1->4; DEFAULT absorbing
        ("b", "2020-01", 0, False), ("b", "2020-03", 0, False), ("b", "2020-04", 0, True),   # gap: no move; censored last
        ("c", "2020-02", 2, False),                                                           # one row, not censored: nothing
    ])
    m = build_moves(panel)
    assert list(zip(m.loan_id, m.from_state, m.to_state)) == [("a", 0, 1), ("a", 1, 4), ("b", 0, 0), ("b", 0, -1)]
    assert list(m.covariates["prev_state"]) == ["-1", "0", "-1", "0"]
    assert list(m.covariates["period"]) == ["2020-01", "2020-02", "2020-03", "2020-04"]
    q = build_moves(_panel([("a", "2020-01", 0, False), ("a", "2020-04", 1, False), ("a", "2020-05", 2, False)]), period="quarter")
    assert list(zip(q.from_state, q.to_state)) == [(0, 1)]


def test_moves_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="row 1: loan_state 9"):
        build_moves(_panel([("a", "2020-01", 0, False), ("a", "2020-02", 9, False)]))
    with pytest.raises(DataError, match=r"missing column\(s\) \['balance'\]"):
        build_moves(_panel([("a", "2020-01", 0, False)]), panel_features=["balance"])
    with pytest.raises(ConfigError, match="need a tape"):
        build_moves(_panel([("a", "2020-01", 0, False), ("a", "2020-02", 0, False)]), tape_features=["age"])
    with pytest.raises(ConfigError, match="oot:YYYY-MM"):
        split_moves(build_moves(_panel([("a", "2020-01", 0, False), ("a", "2020-02", 0, False)])), "time")
    monthly = _panel([("a", "2020-01", 0, False), ("a", "2020-02", 0, False), ("a", "2020-03", 4, False)])
    with pytest.raises(DataError, match=r"rows are one month apart \(2 monthly pairs\): period='quarter' reads rows 3 "
                                        r"months apart, so use period='month' or keep one row every 3 months"):
        build_moves(monthly, period="quarter")
    with pytest.raises(DataError, match=r"same loan\)$"):  # no monthly pairs either: no hint
        build_moves(_panel([("a", "2020-01", 0, False), ("b", "2020-02", 0, False)]), period="quarter")


def _synthetic(n_loans: int = 3000, months: int = 6, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loans whose monthly default probability is 2 % or 20 % by a tape flag (``risky``); otherwise CURRENT."""
    rng = np.random.default_rng(seed)
    risky = rng.random(n_loans) < 0.3
    rows = []
    for i in range(n_loans):
        for t in range(months):
            month = f"2020-{t + 1:02d}"
            if rng.random() < (0.2 if risky[i] else 0.02):
                rows.append((f"L{i}", month, 0, False))
                rows.append((f"L{i}", f"2020-{t + 2:02d}", 4, False))
                break
            rows.append((f"L{i}", month, 0, t == months - 1))  # survived the last month: one censored default-free period
    tape = pd.DataFrame({"loan_id": [f"L{i}" for i in range(n_loans)], "risky": risky.astype(int)})
    return _panel(rows), tape


def test_chain_is_the_row_mle_and_classifiers_learn_the_flag() -> None:
    panel, tape = _synthetic()
    moves = build_moves(panel, tape, tape_features=["risky"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    chain = make_contestant("markov").fit(train).predict(test)
    n_def = int((train.to_state == 4).sum())
    assert chain[0, 4] == pytest.approx(n_def / len(train))
    risky = test.covariates["risky"].to_numpy() == 1
    for name in ("logit", "gbm"):
        p = make_contestant(name).fit(train).predict(test)
        assert np.allclose(p.sum(1), 1.0) and not p[:, ~ALLOWED_TRANSITIONS[0]].any()
        assert p[risky, 4].mean() == pytest.approx(0.2, abs=0.03)
        assert p[~risky, 4].mean() == pytest.approx(0.02, abs=0.01)


def test_gbm_fits_when_a_covariate_has_no_value_for_a_from_state() -> None:
    """A lagged feature that no move of some from-state reaches is all-NaN in that head (scikit-learn's
    binning used to fail on it); the head fits and still learns the flag."""
    panel, tape = _synthetic(1500)
    tape = tape.assign(unknown=np.nan)
    moves = build_moves(panel, tape, tape_features=["risky", "unknown"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    p = make_contestant("gbm").fit(train).predict(test)
    risky = test.covariates["risky"].to_numpy() == 1
    assert np.allclose(p.sum(1), 1.0) and p[risky, 4].mean() > 3 * p[~risky, 4].mean()


def test_the_true_model_beats_the_pooled_chain_with_an_interval_off_zero() -> None:
    panel, tape = _synthetic()
    res = evaluate_transitions(panel, tape, models=["markov", "logit"], tape_features=["risky"], n_boot=50)
    t = res.table
    assert t.loc["logit", "nll_vs_ref_hi"] < 0 < t.loc["logit", "auc_lo"] - 0.5
    assert t.loc["markov", "nll_vs_ref"] == 0.0 and t.loc["markov", "nll_vs_ref_lo"] == 0.0
    assert t.loc["markov", "auc_default"] == pytest.approx(0.5)  # a constant score cannot rank
    c = res.compare("logit", "markov")
    assert c["hi"] < 0 and c["share_better"] == 1.0
    assert c["difference"] == pytest.approx(t.loc["logit", "nll_vs_ref"])
    with pytest.raises(ConfigError, match="'gbm' was not evaluated"):
        res.compare("gbm", "markov")


def test_out_of_time_split_trains_only_on_the_past() -> None:
    panel, _ = _synthetic(500)
    train, test = split_moves(build_moves(panel), "oot:2020-04")
    assert (pd.DatetimeIndex(train.month) + pd.DateOffset(months=1)).max() < pd.Timestamp("2020-04-01")
    assert (pd.DatetimeIndex(test.month) + pd.DateOffset(months=1)).min() >= pd.Timestamp("2020-04-01")
    acc_train, acc_test = split_moves(build_moves(panel), "account", 0.3, seed=3)
    assert not set(acc_train.loan_id) & set(acc_test.loan_id)


def test_censored_period_is_scored_as_not_default() -> None:
    moves = build_moves(_panel([("a", "2020-01", 0, False), ("a", "2020-02", 0, True)]))
    p = np.zeros((2, 7))
    p[:, 0], p[:, 4], p[:, 1] = 0.7, 0.2, 0.1
    s = move_scores(p, moves)
    assert s.nll == pytest.approx([-np.log(0.7), -np.log(0.8)])
    assert s.brier[0] == pytest.approx(0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) and np.isnan(s.brier[1])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_weighted_auc_matches_sklearn(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = 60
    score = rng.integers(0, 8, n).astype(float)  # ties on purpose
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    w = rng.integers(0, 4, n).astype(float)
    w[:2] = 1.0
    assert weighted_auc(score, y, w) == pytest.approx(roc_auc_score(y, score, sample_weight=w), abs=1e-12)


def test_ece_by_hand() -> None:
    score = np.array([0.1, 0.1, 0.9, 0.9])
    label = np.array([0.0, 1.0, 1.0, 1.0])
    assert expected_calibration_error(score, label, bins=2) == pytest.approx((abs(0.2 - 1) + abs(1.8 - 2)) / 4)


def test_uci_panel_gbm_beats_every_chain() -> None:
    from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape

    panel, tape = load_credit_card_panel(), load_credit_card_tape()
    keep = panel["loan_id"].isin(tape["loan_id"].iloc[:4000])
    res = evaluate_transitions(panel[keep], tape, models=["markov", "markov_calendar", "gbm"], n_boot=30,
                               panel_features=["current_balance", "actual_payment", "pay_status"],
                               tape_features=["credit_limit", "age"])
    t = res.table
    assert t.loc["markov_calendar", "nll_vs_ref_hi"] < 0  # calendar months matter on this panel
    assert t.loc["gbm", "nll"] < t.loc["markov_calendar", "nll"]
    assert res.settings["test_loans"] == 1200


def test_grouped_auc_counts_only_pairs_within_a_group() -> None:
    # each month ranks its defaulter first, but month b's defaulter scores below month a's survivor
    score = np.array([0.5, 0.6, 0.1, 0.2])
    label = np.array([False, True, False, True])
    group = np.array(["a", "a", "b", "b"])
    assert weighted_auc(score, label, group=group) == pytest.approx(1.0)
    assert weighted_auc(score, label) == pytest.approx(0.75)


def test_transformer_contestant_learns_the_cohort_rates_and_trains_only_on_the_training_split() -> None:
    from creditsim.harness.deep import TransformerContestant, TransformerSettings

    panel, tape = _synthetic(2000)
    moves = build_moves(panel, tape, tape_features=["risky"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    model = TransformerContestant(("prev_state",), ("risky",), seed=0, settings=TransformerSettings(epochs=80, patience=80)).fit(train)
    p = model.predict(test)
    risky = test.covariates["risky"].to_numpy() == 1
    assert np.allclose(p.sum(1), 1.0) and not p[:, ~ALLOWED_TRANSITIONS[0]].any()
    assert p[risky, 4].mean() == pytest.approx(0.2, abs=0.04)
    assert p[~risky, 4].mean() == pytest.approx(0.02, abs=0.015)
    assert model.months_ == len(set(train.covariates["period"]))


def test_transformer_ensemble_averages_distinct_members_and_member_zero_is_the_single_network() -> None:
    from dataclasses import replace as dc_replace

    from creditsim.harness.deep import TransformerContestant, TransformerSettings

    panel, tape = _synthetic(600)
    moves = build_moves(panel, tape, tape_features=["risky"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    settings = TransformerSettings(epochs=6, patience=6, members=3)
    ensemble = TransformerContestant(("prev_state",), ("risky",), seed=4, settings=settings).fit(train)
    single = TransformerContestant(("prev_state",), ("risky",), seed=4, settings=dc_replace(settings, members=1)).fit(train)
    alone = []
    for member in ensemble.members_:
        ensemble_one = copy.copy(ensemble)
        ensemble_one.members_ = [member]
        alone.append(ensemble_one.predict(test))
    np.testing.assert_allclose(ensemble.predict(test), np.mean(alone, axis=0), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(alone[0], single.predict(test))  # member 0 = the one network of seed 4
    assert not np.allclose(alone[0], alone[1]) and not np.allclose(alone[1], alone[2])
    with pytest.raises(ConfigError, match="members must be a positive integer"):
        TransformerSettings(members=0)


def test_lagged_features_come_from_the_same_loan_consecutive_months_only() -> None:
    panel = _panel([("a", "2020-01", 0, False), ("a", "2020-02", 0, False), ("a", "2020-03", 1, False), ("a", "2020-04", 2, False),
                    ("b", "2020-02", 0, False), ("b", "2020-04", 0, False), ("b", "2020-05", 0, False)])
    panel["balance"] = [10.0, 11.0, 12.0, 13.0, 20.0, 21.0, 22.0]
    m = build_moves(panel, panel_features=["balance"], lags=2)
    got = m.covariates[["balance", "balance_lag1", "balance_lag2"]].to_numpy()
    want = np.array([[10, np.nan, np.nan], [11, 10, np.nan], [12, 11, 10], [21, np.nan, np.nan]])
    np.testing.assert_array_equal(got, want)


def test_trajectory_contestant_scores_uci_moves_and_needs_a_tape() -> None:
    from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape
    from creditsim.harness.trajectory import TrajectoryContestant, TrajectorySettings

    panel, tape = load_credit_card_panel(), load_credit_card_tape()
    keep = tape["loan_id"].iloc[:1500]
    moves = build_moves(panel[panel["loan_id"].isin(keep)], tape, ["pay_status", "current_balance"], ["credit_limit"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    model = TrajectoryContestant(tape, seed=0, settings=TrajectorySettings(epochs=6, patience=6)).fit(train)
    p = model.predict(test)
    allowed = ALLOWED_TRANSITIONS[test.from_state.astype(int)]
    assert np.allclose(p.sum(1), 1.0) and not p[~allowed].any()
    ours = move_scores(p, test).nll.mean()
    pooled = move_scores(make_contestant("markov").fit(train).predict(test), test).nll.mean()
    assert ours < pooled
    with pytest.raises(ConfigError, match="needs the loan tape"):
        TrajectoryContestant(None)


def test_sp_panel_reproduces_the_published_counts_and_the_segment_chain_is_the_pooled_rate() -> None:
    from creditsim.datasets.ratings import COUNT_GRADES, load_sp_default_panel, load_sp_ratings

    sp = load_sp_ratings()
    panel = load_sp_default_panel()
    moves = build_moves(panel, panel_features=["rating"], period="year")
    assert len(moves) == int(sp.obligors.to_numpy().sum())
    year = pd.DatetimeIndex(moves.month).year
    for grade in ("BB", "CCC"):
        at = (moves.covariates["rating"] == grade).to_numpy() & (year == 1991)
        assert at.sum() == sp.obligors.loc[1991, grade] and (moves.to_state[at] == 4).sum() == sp.defaults.loc[1991, grade]
    from creditsim.harness.contestants import ChainContestant
    from creditsim.harness.moves import CohortKey

    chain = ChainContestant("by rating", CohortKey(("rating",))).fit(moves)  # no parent: the plain MLE
    for grade in COUNT_GRADES:
        p = chain.matrices_[str(chain.key.levels_["rating"].index(grade))][0, 4]
        assert p == pytest.approx(sp.pooled_default_rates[grade], rel=1e-12)


def test_macro_features_are_period_averages_and_the_only_macro_left() -> None:
    from creditsim.states import MACRO_VARS

    months = pd.date_range("2019-01-01", "2021-12-01", freq="MS")
    macro = pd.DataFrame({v: 0.01 * (j + 1) for j, v in enumerate(MACRO_VARS)}, index=months)
    macro["unemployment_rate"] = np.linspace(0.03, 0.10, len(months))
    panel = _panel([("a", "2020-01", 0, False), ("a", "2021-01", 0, True)])
    m = build_moves(panel, period="year", macro=macro, macro_features=["unemployment_rate"])
    u = macro["unemployment_rate"]
    assert m.covariates["macro_unemployment_rate"].tolist() == pytest.approx([u["2020"].mean(), u["2021"].mean()])
    assert (m.macro[:, MACRO_VARS.index("gdp_growth")] == 0).all()
    with pytest.raises(DataError, match="no row for 2022-06"):
        build_moves(_panel([("a", "2021-06", 0, False), ("a", "2022-06", 0, True)]), period="year", macro=macro)


def test_trajectory_contestant_cuts_long_histories_into_windows() -> None:
    import creditsim as cs
    from creditsim.harness.trajectory import TrajectoryContestant, TrajectorySettings

    loans, panel = cs.LoanTapeGenerator(300, 30, random_seed=3).generate()
    moves = build_moves(panel, loans, ["current_balance"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    model = TrajectoryContestant(loans, seed=0, settings=TrajectorySettings(epochs=2, window=8)).fit(train)
    assert model.months_ == 8
    tensors, seq, pos = model._sequences(test)
    assert pos.max() == 7 and tensors[0].shape[0] > len(set(test.loan_id))  # more windows than loans
    p = model.predict(test)
    assert np.allclose(p.sum(1), 1.0) and not p[~ALLOWED_TRANSITIONS[test.from_state.astype(int)]].any()


def test_thin_cohorts_are_shrunk_towards_their_parent_and_thick_ones_are_not() -> None:
    from creditsim.harness.contestants import CREDIBILITY

    # cohort "thin": 2 moves, both CURRENT -> CURRENT; cohort "thick": 998 moves, 10 % to DPD30
    rows = [(f"t{i}", "2020-01", 0, False) for i in range(2)] + [(f"t{i}", "2020-02", 0, False) for i in range(2)]
    rows += [(f"k{i}", "2020-01", 0, False) for i in range(998)] + [(f"k{i}", "2020-02", int(i % 10 == 0), False) for i in range(998)]
    panel = _panel(rows)
    panel["group"] = ["thin" if r[0][0] == "t" else "thick" for r in rows]
    moves = build_moves(panel, panel_features=["group"])
    chain = make_contestant("markov_segment", ("group",)).fit(moves)
    p = chain.predict(moves)
    thin, thick = moves.covariates["group"].to_numpy() == "thin", moves.covariates["group"].to_numpy() == "thick"
    parent = 100 / 1000  # pooled CURRENT -> DPD30 rate
    assert p[thin, 1][0] == pytest.approx(CREDIBILITY * parent / (2 + CREDIBILITY))
    assert p[thick, 1][0] == pytest.approx((100 + CREDIBILITY * parent) / (998 + CREDIBILITY))


def test_a_training_split_without_defaults_is_announced() -> None:
    panel, _ = _synthetic(400)
    late = panel["reporting_month"] >= "2020-03-01"
    panel.loc[~late & (panel["loan_state"] == 4), "loan_state"] = 0  # no default before March
    with pytest.warns(UserWarning, match="training moves hold no default"):
        evaluate_transitions(panel, split="oot:2020-03", models=["markov"], n_boot=10)


def test_a_quarterly_panel_with_three_states_runs_through_every_cohort_contestant() -> None:
    """Mortgage-style data: CURRENT / DEFAULT / PREPAID only, one row a quarter, loans starting anywhere."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(600):
        start = int(rng.integers(0, 4))
        ltv = float(rng.uniform(0.4, 1.0))
        for q in range(start, 8):
            month = f"{2018 + q // 4}-{3 * (q % 4) + 1:02d}"
            u = rng.random()
            if u < 0.02 + 0.06 * (ltv > 0.8):
                rows += [(f"M{i}", month, 0, False, ltv), (f"M{i}", f"{2018 + (q + 1) // 4}-{3 * ((q + 1) % 4) + 1:02d}", 4, False, ltv)]
                break
            if u > 0.95:
                rows += [(f"M{i}", month, 0, False, ltv), (f"M{i}", f"{2018 + (q + 1) // 4}-{3 * ((q + 1) % 4) + 1:02d}", 5, False, ltv)]
                break
            rows.append((f"M{i}", month, 0, q == 7, ltv))
    panel = pd.DataFrame(rows, columns=["loan_id", "reporting_month", "loan_state", "censored", "ltv"])
    panel["reporting_month"] = pd.to_datetime(panel["reporting_month"])
    res = evaluate_transitions(panel, period="quarter", panel_features=["ltv"], cohort_by=["ltv"], n_bins=2,
                               models=["markov", "markov_cohort_calendar", "logit", "gbm", "transformer"], n_boot=20)
    t = res.table
    assert set(t.index) == {"markov", "markov_cohort_calendar", "logit", "gbm", "transformer"}
    assert t.loc["logit", "nll"] < t.loc["markov", "nll"]  # LTV matters and the logit sees it
    assert (t["auc_default"] > 0.55).loc[["logit", "gbm"]].all()
