"""The credit-cycle tilt of the harness transformer: the bank link fitted before the split, projected on the
realised macro path, and applied as an odds ratio on the moves out of CURRENT on the test periods only."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets import load_macro_history
from creditsim.datasets import credit_losses
from creditsim.errors import ConfigError
from creditsim.harness import build_moves, evaluate_transitions, split_moves
from creditsim.harness.cycle import ONSET, fit_cycle_tilt
from creditsim.macro.credit_link import backtest_credit_link
from creditsim.states import ALLOWED_TRANSITIONS, LoanState


def _month(text: str) -> int:
    t = pd.Timestamp(text)
    return t.year * 12 + t.month - 1


def test_projection_is_the_links_out_of_time_forecast_from_the_last_complete_quarter() -> None:
    """Against the link's own backtest (a separate projection loop): fitted on quarters to 2007Q4, run on
    the realised 2008-09 macro from the realised 2007Q4 rate; the tilt is the log of its ratio to 2007Q4."""
    macro = load_macro_history()
    tilt = fit_cycle_tilt("business", macro, _month("2007-12"))
    assert tilt.link.sample[1] == "2007-10"
    assert tilt.link.dropped == ("gdp_growth",)  # its pre-2008 effect came out with the wrong sign (+0.03)
    rate = credit_losses.load_bank_loss_rates("delinquency")["business"].dropna()
    ref = backtest_credit_link(rate, macro, "2007-10", horizon=8, variables=tilt.link.variables)
    start = float(rate.loc[rate.index.to_period("Q") == pd.Period("2007Q4")].iloc[0])
    for k, (when, row) in enumerate(ref.iterrows()):
        for m in range(3):
            month = _month(str(when)) + m
            assert tilt.log_ratio[month] == pytest.approx(np.log(row["link"] / start), abs=1e-9)
    assert min(tilt.log_ratio) == _month("2008-01")  # nothing on or before the split's last month
    assert np.exp(tilt.log_ratio[_month("2009-08")]) > 2.5  # the link's 2009 peak: about 3x the 2007Q4 rate


def test_a_split_inside_a_quarter_fits_on_complete_quarters_and_refers_to_the_projected_month() -> None:
    macro = load_macro_history()
    tilt = fit_cycle_tilt("all", macro, _month("2008-01"))  # last moves end in 2008-02: Q1 2008 incomplete
    assert tilt.link.sample[1] == "2007-10"
    assert min(tilt.log_ratio) == _month("2008-02") and tilt.log_ratio[_month("2008-03")] == 0.0  # same quarter as 2008-01


def test_the_tilt_never_reads_the_bank_rates_after_the_split(monkeypatch: pytest.MonkeyPatch) -> None:
    macro = load_macro_history()
    before = fit_cycle_tilt("business", macro, _month("2007-12"))
    real = credit_losses.load_bank_loss_rates

    def doctored(measure: str = "delinquency") -> pd.DataFrame:
        frame = real(measure).copy()
        frame.loc[frame.index >= "2008-01-01"] *= 0.2  # a different post-split history
        return frame

    monkeypatch.setattr(credit_losses, "load_bank_loss_rates", doctored)
    after = fit_cycle_tilt("business", macro, _month("2007-12"))
    assert after.log_ratio == before.log_ratio
    late = fit_cycle_tilt("business", macro, _month("2010-12"))  # a later split does read them
    assert late.link.n_obs > before.link.n_obs


def test_period_tilt_averages_months_and_is_zero_on_training_periods() -> None:
    tilt = fit_cycle_tilt("business", load_macro_history(), _month("2007-12"))
    first = _month("2006-01")
    yearly = tilt.period_tilt(first, 12, 4)  # 2006, 2007 train; 2008, 2009 test
    assert yearly[:2].tolist() == [0.0, 0.0]
    assert yearly[2] == pytest.approx(np.mean([tilt.log_ratio[_month("2008-01") + m] for m in range(12)]))
    assert yearly[3] > yearly[2] > 0
    gap = max(tilt.log_ratio) + 1  # the first month past the macro history
    with pytest.raises(ConfigError, match=f"no row for {gap // 12}-{gap % 12 + 1:02d}, a test month"):
        tilt.period_tilt(first, 1, gap - first + 1)


def test_errors_name_the_series_and_the_short_history() -> None:
    macro = load_macro_history()
    with pytest.raises(ConfigError, match=r"unknown series 'cards'; expected one of \['all', 'business'"):
        fit_cycle_tilt("cards", macro, _month("2007-12"))
    with pytest.raises(ConfigError, match=r"'business': 12 quarters of bank delinquency and macro history before the split .* needs 40"):
        fit_cycle_tilt("business", macro, _month("1989-12"))
    with pytest.raises(ConfigError, match="the macro frame ends before 2008-01, the last training month"):
        fit_cycle_tilt("all", macro.loc[:"2007-12"], _month("2008-01"))


def _recession_panel(n_loans: int = 400, seed: int = 3, first: str = "2005-01", last: str = "2009-06") -> pd.DataFrame:
    """Loans observed monthly ``first`` .. ``last`` with a constant 1 % monthly default hazard."""
    rng = np.random.default_rng(seed)
    months = pd.date_range(f"{first}-01", f"{last}-01", freq="MS")
    rows = []
    for i in range(n_loans):
        for t, month in enumerate(months):
            if rng.random() < 0.01:
                rows.append((f"L{i}", month, int(LoanState.DEFAULT), False))
                break
            rows.append((f"L{i}", month, int(LoanState.CURRENT), t == len(months) - 1))
    return pd.DataFrame(rows, columns=["loan_id", "reporting_month", "loan_state", "censored"])


def test_transformer_with_the_link_scales_test_roll_forward_odds_by_the_tilt_and_nothing_else() -> None:
    from creditsim.harness.deep import TransformerContestant, TransformerSettings

    macro = load_macro_history()
    moves = build_moves(_recession_panel(), macro=macro)
    train, test = split_moves(moves, "oot:2008-01", 0.3, seed=0)
    model = TransformerContestant(seed=0, settings=TransformerSettings(epochs=3, patience=3, members=1),
                                  credit_link="business", macro=macro).fit(train)
    assert not model.model_.config.macro_inputs  # the network does not read the path
    tilted = model.predict(test)
    plain = copy.copy(model)
    plain.cycle_ = None
    untilted = model.predict(train), plain.predict(test)
    np.testing.assert_array_equal(untilted[0], plain.predict(train))  # training periods: no tilt
    assert np.allclose(tilted.sum(1), 1.0) and not tilted[:, ~ALLOWED_TRANSITIONS[0]].any()
    odds = (tilted[:, ONSET[0]] / tilted[:, [0]]) / (untilted[1][:, ONSET[0]] / untilted[1][:, [0]])
    month = pd.DatetimeIndex(test.month)
    expected = np.exp([model.cycle_.log_ratio[m.year * 12 + m.month - 1] for m in month])
    np.testing.assert_allclose(odds, np.broadcast_to(expected[:, None], odds.shape), rtol=1e-5)
    assert expected.max() > 2.0  # the 2009 recession lifts the default odds


def test_evaluate_transitions_checks_the_series_before_fitting_and_records_it() -> None:
    panel = _recession_panel(60)
    with pytest.raises(ConfigError, match="credit_link: unknown series 'mortgage'"):
        evaluate_transitions(panel, split="oot:2008-01", models=["markov"], macro=load_macro_history(),
                             credit_link="mortgage", n_boot=10)
    res = evaluate_transitions(panel, split="oot:2008-01", models=["markov"], n_boot=10)
    assert res.settings["credit_link"] is None  # no macro frame: no link
    res = evaluate_transitions(panel, split="oot:2008-01", models=["markov", "transformer"], macro=load_macro_history(),
                               credit_link="business", n_boot=10)
    assert res.settings["credit_link"] == "business"


def test_auto_takes_the_all_loans_link_or_falls_back_to_the_path_with_a_warning() -> None:
    from creditsim.harness.deep import TransformerContestant, TransformerSettings

    macro = load_macro_history()
    quick = TransformerSettings(epochs=2, patience=2, members=1)
    moves = build_moves(_recession_panel(60), macro=macro)
    train, _ = split_moves(moves, "oot:2008-01", 0.3, seed=0)
    model = TransformerContestant(seed=0, settings=quick, credit_link="auto", macro=macro).fit(train)
    assert model.cycle_.series == "all" and not model.model_.config.macro_inputs
    early = build_moves(_recession_panel(60, first="1987-01", last="1991-06"), macro=macro)
    train, _ = split_moves(early, "oot:1990-01", 0.3, seed=0)
    with pytest.warns(UserWarning, match=r"20 quarters before the split \(fewer than 40\).*reads the macro path itself"):
        model = TransformerContestant(seed=0, settings=quick, credit_link="auto", macro=macro).fit(train)
    assert model.cycle_ is None and model.model_.config.macro_inputs
    with pytest.raises(ConfigError, match="'all': 20 quarters"):  # asked for by name: refused, not swapped
        TransformerContestant(seed=0, settings=quick, credit_link="all", macro=macro).fit(train)
    short = macro.loc["2000-01":]  # a macro frame that starts late: too little overlap, whatever the bank series
    train, _ = split_moves(build_moves(_recession_panel(60), macro=short), "oot:2008-01", 0.3, seed=0)
    with pytest.warns(UserWarning, match="share 28 quarters"):  # 2001-07: the unemployment change needs 12 months
        assert TransformerContestant(seed=0, settings=quick, credit_link="auto", macro=short).fit(train).cycle_ is None


def test_tilt_scales_only_the_odds_of_leaving_current_for_a_worse_state() -> None:
    import torch

    from creditsim.harness.deep import _tilted

    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(1, 2, 7, 7))).masked_fill(~torch.as_tensor(ALLOWED_TRANSITIONS), float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    out = _tilted(logp, np.array([0.0, np.log(3.0)]))
    torch.testing.assert_close(out[:, 0], logp[:, 0])  # a period with no tilt
    torch.testing.assert_close(out[0, 1, 1:], logp[0, 1, 1:])  # DPD rows, cures and rolls: untouched
    p, q = out[0, 1, 0].exp(), logp[0, 1, 0].exp()
    worse = torch.as_tensor(ONSET[0])
    ratio = (p / p[0]) / (q / q[0])  # odds against staying CURRENT
    allowed = torch.as_tensor(ALLOWED_TRANSITIONS[0])
    torch.testing.assert_close(ratio[worse], torch.full((int(worse.sum()),), 3.0, dtype=ratio.dtype))
    torch.testing.assert_close(ratio[allowed & ~worse], torch.ones(int((allowed & ~worse).sum()), dtype=ratio.dtype))
    assert float(p.sum()) == pytest.approx(1.0) and not p[~allowed].any()


def test_markov_link_is_the_recent_segment_chain_scaled_by_the_same_tilt() -> None:
    from creditsim.harness import make_contestant
    from creditsim.harness.linked import WINDOW_MONTHS

    macro = load_macro_history()
    moves = build_moves(_recession_panel(300), macro=macro)
    train, test = split_moves(moves, "oot:2008-01", 0.3, seed=0)
    linked = make_contestant("markov_link", credit_link="business", macro=macro).fit(train)
    # the last training moves leave 2007-11 (they end before the split): the window is the 24 months to it
    recent = train.take(pd.DatetimeIndex(train.month) >= pd.Timestamp("2007-11-01") - pd.DateOffset(months=WINDOW_MONTHS - 1))
    assert pd.DatetimeIndex(recent.month).min() == pd.Timestamp("2005-12-01")
    chain = make_contestant("markov_segment").fit(recent).predict(test)
    month = pd.DatetimeIndex(test.month)
    tilt = np.array([linked.cycle_.log_ratio[m.year * 12 + m.month - 1] for m in month])
    got = linked.predict(test)
    np.testing.assert_allclose(got[:, 4] / got[:, 0], np.exp(tilt) * chain[:, 4] / chain[:, 0], rtol=1e-12)
    assert np.allclose(got.sum(1), 1.0)
    with pytest.raises(ConfigError, match="markov_link needs a macro frame"):
        make_contestant("markov_link")


def test_a_named_link_is_checked_before_any_fit() -> None:
    macro = load_macro_history()
    early = _recession_panel(40, first="1987-01", last="1991-06")
    with pytest.raises(ConfigError, match="'business': 12 quarters"):
        evaluate_transitions(early, split="oot:1990-01", models=["markov", "gbm", "transformer"], macro=macro,
                             credit_link="business", n_boot=10,
                             progress=lambda line: pytest.fail(f"a model was fitted first: {line}"))
    with pytest.raises(ConfigError, match="credit_link='business' needs a macro frame"):
        evaluate_transitions(early, split="oot:1990-01", models=["markov"], credit_link="business", n_boot=10)


def test_default_models_fit_every_applicable_contestant_and_record_the_link_resolved_once() -> None:
    macro = load_macro_history()
    panel = _recession_panel(60)
    res = evaluate_transitions(panel, split="oot:2008-01", macro=macro, credit_link=None, n_boot=10)
    assert "markov_link" not in res.settings["models"] and "trajectory" not in res.settings["models"]
    lines: list[str] = []
    res = evaluate_transitions(panel, split="oot:2008-01", models=["markov", "markov_link"], macro=macro,
                               credit_link="business", n_boot=10, progress=lines.append)
    assert res.settings["credit_link"] == "business"  # recorded without a transformer too
    assert lines[0] == "credit link: the business bank delinquency rate, fitted on the quarters before the split"
    early = _recession_panel(40, first="1987-01", last="1991-06")
    with pytest.warns(UserWarning, match="none is used"):
        res = evaluate_transitions(early, split="oot:1990-01", macro=macro, n_boot=10,
                                   models=None)  # auto falls back: markov_link dropped, not run unscaled
    assert "markov_link" not in res.settings["models"] and res.settings["credit_link"] is None
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="markov_link: credit_link='auto' found too short"):
        evaluate_transitions(early, split="oot:1990-01", macro=macro, models=["markov", "markov_link"], n_boot=10)
