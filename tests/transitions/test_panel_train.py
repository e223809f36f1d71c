"""A TransitionTransformer trained on your own panel (calendar-aligned cohorts, the macro history of the
panel's months, the credit link), saved, and run by `simulate` from the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import creditsim as cs
from creditsim.datasets.macro import load_macro_history
from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.states import ASSET_CLASSES, MACRO_VARS, LoanState
from creditsim.transitions.cohorts import transition_counts
from creditsim.transitions.panel_train import panel_transition_data, train_transformer_on_panel
from creditsim.transitions.reporting import reporting_view
from creditsim.transitions.train import _model_view
from creditsim.transitions.transformer import TransitionTransformer


@pytest.fixture(scope="module")
def book(tmp_path_factory, synthetic_book):
    return synthetic_book(tmp_path_factory.mktemp("panel"), 600, 18, seed=11)


def test_sequences_are_the_panels_counts_on_its_calendar_with_that_months_macro(book) -> None:
    loans, panel, _ = book
    data = panel_transition_data(panel, loans, val_share=0.25, seed=3)
    counts, cohorts, months = transition_counts(panel, loans, "asset_class")
    for split in ("train", "val"):
        assert data[split].counts.shape[1:] == (len(months), 7, 7)
    # train + val loans are the panel's loans, each once: their coarse-cohort counts add up to the whole panel's
    coarse = {s: data[s].counts[data[s].definition == "asset_class"].sum(0) for s in ("train", "val")}
    np.testing.assert_array_equal(coarse["train"] + coarse["val"], counts.sum(0))
    assert 0 < coarse["val"].sum() < coarse["train"].sum()
    history = load_macro_history()
    np.testing.assert_array_equal(data["train"].macro[0], history.loc[months, list(MACRO_VARS)].to_numpy())
    assert str(months[0])[:7] == "2022-02"  # the move into the panel's second month is position 0
    one = data["train"].cohort_features[data["train"].definition == "asset_class"][:, 12:]
    assert set(np.unique(one)) == {0.0, 1.0} and np.allclose(one.sum(1), 1.0)  # one class per coarse cohort


def test_bad_inputs_name_what_is_wrong(book) -> None:
    loans, panel, _ = book
    short = load_macro_history().loc[:"2022-12"]
    with pytest.raises(DataError, match=r"no complete values for 6 panel month\(s\): 2023-01, .* 2023-06 \(the frame covers 1980-01 .. 2022-12\)"):
        panel_transition_data(panel, loans, macro=short)
    with pytest.raises(DataError, match="every row is in 2022-01; a move needs two consecutive calendar months"):
        panel_transition_data(panel[panel["reporting_month"] == panel["reporting_month"].min()], loans)
    with pytest.raises(ConfigError, match="val_share"):
        panel_transition_data(panel, loans, val_share=0.7)
    with pytest.raises(ConfigError, match="give the loan tape"):
        cs.fit_transitions(panel, model="transformer")


def test_trained_model_carries_the_link_and_fits_the_book(book, tmp_path) -> None:
    loans, panel, _ = book
    torch.manual_seed(0)
    model = train_transformer_on_panel(panel, loans, out=tmp_path / "m", epochs=40)
    assert model.config.macro_link and not model.config.macro_inputs and model.config.max_months == 17
    back = TransitionTransformer.from_pretrained(tmp_path / "m")
    calm = load_macro_history().loc["2022-02":"2023-07"].to_numpy()[None]
    stressed = calm.copy()
    stressed[..., MACRO_VARS.index("credit_spread_hy")] += 0.05
    mats = back.for_tape(loans).scenario_matrices(np.concatenate([calm, stressed]))  # (2, 4, 18, 7, 7)
    corporate = ASSET_CLASSES.index("corporate")
    assert (mats[1, corporate, :, 0, LoanState.DEFAULT] > mats[0, corporate, :, 0, LoanState.DEFAULT]).all()
    # the book's own one-month default rate from CURRENT, by class, is what the model learnt (within noise)
    _, _, months = transition_counts(panel, loans, "asset_class")
    counts = panel_transition_data(panel, loans, val_share=0.0)["train"]
    coarse = counts.counts[counts.definition == "asset_class"].sum(1)  # (4, 7, 7) in ASSET_CLASSES order
    realised = coarse[:, 0, LoanState.DEFAULT] / coarse[:, 0].sum(1)
    learnt = mats[0, :, :, 0, LoanState.DEFAULT].mean(1)
    assert np.all(np.abs(learnt - realised) < 0.5 * realised + 1e-3), (learnt, realised)


def test_cli_trains_it_and_simulate_runs_on_it(book, tmp_path, capsys, run_cli) -> None:
    _, _, folder = book
    out = tmp_path / "transformer"
    args = ["train", "transitions", "--model", "transformer", "--panel", str(folder / "panel.parquet")]
    assert run_cli([*args, "--out", str(out)]) == 2
    assert "needs --tape" in capsys.readouterr().err
    assert run_cli([*args, "--tape", str(folder / "loans.parquet"), "--out", str(out), "--epochs", "5"]) == 0
    assert "TransitionTransformer trained" in capsys.readouterr().out
    sim = ["simulate", "--tape", str(folder / "loans.parquet"), "--deal", str(example_path("example_clo.yaml")), "--n-sims", "20",
           "--horizon", "12", "--mix", "baseline", "--transition-model", str(out)]
    assert run_cli([*sim, "--out", str(tmp_path / "r0")]) == 2
    assert "--engine transformer" in capsys.readouterr().err
    assert run_cli([*sim, "--engine", "transformer", "--out", str(tmp_path / "r1")]) == 0
    settings = json.loads((tmp_path / "r1" / "run.json").read_text())["settings"]
    assert settings["engine"] == "transformer" and settings["transition_model"]


def test_a_macro_frame_with_its_months_in_a_column_is_read(book) -> None:
    """As `creditsim data synth` writes DIR/macro.parquet: a RangeIndex and a reporting_month column."""
    loans, panel, _ = book
    history = load_macro_history()
    as_file = history.reset_index()  # reporting_month becomes a column
    np.testing.assert_array_equal(panel_transition_data(panel, loans, macro=as_file)["train"].macro,
                                  panel_transition_data(panel, loans, macro=history)["train"].macro)
    with pytest.raises(DataError, match="must hold the months"):
        panel_transition_data(panel, loans, macro=history.reset_index(drop=True).set_axis([f"m{i}" for i in range(len(history))]))


def test_every_panel_loan_needs_its_tape_row_and_the_panel_its_columns(book) -> None:
    """Reviewer findings: a panel loan missing from the tape was silently dropped; an empty panel, a missing
    column or a bad month failed deep in pandas."""
    loans, panel, _ = book
    with pytest.raises(DataError, match=r"has \d+ row\(s\) .* whose loan is not in the loan tape"):
        panel_transition_data(panel, loans.iloc[10:])
    with pytest.raises(DataError, match="not in the loan tape"):  # no loan matches at all
        panel_transition_data(panel.assign(loan_id="X" + panel["loan_id"].astype(str)), loans)
    with pytest.raises(DataError, match="panel: no rows"):
        panel_transition_data(panel.iloc[:0], loans)
    late = loans.assign(origination_date=pd.to_datetime(loans["origination_date"]) + pd.DateOffset(years=30),
                        maturity_date=pd.to_datetime(loans["maturity_date"]) + pd.DateOffset(years=30))
    with pytest.raises(DataError, match="report a month before their loan's origination"):
        panel_transition_data(panel, late)
    with pytest.raises(DataError, match=r"missing required column\(s\) \['loan_id'\]"):
        panel_transition_data(panel.drop(columns="loan_id"), loans)
    bad = panel.assign(reporting_month=panel["reporting_month"].astype(str))
    bad.loc[bad.index[5], "reporting_month"] = "not a month"
    with pytest.raises(DataError, match="reporting_month"):
        panel_transition_data(bad, loans)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        train_transformer_on_panel(panel, loans, seed=-1)


def test_a_panel_without_monthly_moves_is_refused(book) -> None:
    """A quarterly panel has rows three months apart: no move to learn from, said plainly (it trained before)."""
    loans, panel, _ = book
    quarterly = panel[pd.to_datetime(panel["reporting_month"]).dt.month.isin([1, 4, 7, 10])]
    with pytest.raises(DataError, match="most are 3 months apart.*--period quarter"):
        panel_transition_data(quarterly, loans)


def test_held_out_loans_read_the_features_of_their_whole_cohort(book) -> None:
    """Cohort features come from the whole tape, for both splits (only the counts are split): the same
    cohort has the same features in train and val, and they are the full tape's features."""
    from creditsim.transitions.cohorts import cohort_features

    loans, panel, _ = book
    data = panel_transition_data(panel, loans, val_share=0.3, seed=1)
    full = cohort_features(loans, "asset_class", as_of=pd.Timestamp("2022-01-01"))
    for split in ("train", "val"):
        coarse = data[split].definition == "asset_class"
        np.testing.assert_array_equal(data[split].cohort_features[coarse],
                                      full.loc[data[split].cohort[coarse]].to_numpy(np.float64))


def test_transformer_options_that_do_not_apply_are_refused(book) -> None:
    loans, panel, _ = book
    for kwargs in ({"by": "asset_class"}, {"overlay": "fit"}, {"cohort_by": ["ltv"]}):
        with pytest.raises(ConfigError, match="do not apply"):
            cs.fit_transitions(panel, loans, model="transformer", **kwargs)


def test_one_model_per_folder_and_simulate_reads_the_one_asked_for(book, tmp_path, capsys, run_cli) -> None:
    """A folder with a chain refuses a transformer (and the other way round); a folder holding both (written
    by hand) is read by the engine's kind; a folder with neither says what it expected."""
    loans, panel, folder = book
    both = tmp_path / "both"
    cs.fit_transitions(panel, loans).save(both)
    with pytest.raises(ConfigError, match=r"already holds another model \(markov_model.json\)"):
        train_transformer_on_panel(panel, loans, out=both, epochs=1)
    base = ["train", "transitions", "--panel", str(folder / "panel.parquet"), "--tape", str(folder / "loans.parquet")]
    tt = tmp_path / "tt"
    assert run_cli([*base, "--model", "transformer", "--epochs", "2", "--out", str(tt)]) == 0
    capsys.readouterr()
    assert run_cli([*base, "--out", str(tt)]) == 2
    assert "already holds a neural model checkpoint" in capsys.readouterr().err
    assert run_cli([*base, "--seed", "3", "--out", str(tmp_path / "c")]) == 2
    assert "--epochs and --seed train the transformer" in capsys.readouterr().err
    assert run_cli([*base, "--model", "transformer", "--seed", "-1", "--out", str(tmp_path / "d")]) == 2
    capsys.readouterr()
    for name in ("config.json", "model.safetensors"):
        (both / name).write_bytes((tt / name).read_bytes())
    from creditsim.cli.run import load_chain
    from creditsim.transitions.markov import MarkovTransitionModel

    assert isinstance(load_chain(both, "markov"), MarkovTransitionModel)
    assert isinstance(load_chain(both, "transformer"), TransitionTransformer)
    with pytest.raises(ConfigError, match="holds both"):
        load_chain(both, "trajectory")
    with pytest.raises(ConfigError, match="no model there"):
        load_chain(tmp_path / "empty", "markov")


def test_a_quarterly_panel_teaches_the_monthly_moves_it_never_shows(tmp_path, run_cli, capsys) -> None:
    """Trained on the quarter-end rows only, the transformer's monthly matrices are scored on the held-out
    loans' *monthly* moves, which it never saw: it must beat the pooled monthly chain fitted on those very
    monthly moves (here 0.2630 nats against 0.2747; on 3,000 loans x 36 months 0.2901 against 0.3046, and
    0.2884 for the transformer trained on the monthly rows)."""
    from creditsim.transitions.markov import row_mle

    loans, panel = cs.LoanTapeGenerator(1500, 30, random_seed=11, cutoff="2022-01-01").generate()
    quarterly = reporting_view(panel, 3)
    torch.manual_seed(0)
    model = cs.fit_transitions(quarterly, loans, model="transformer", period="quarter", epochs=30,
                               out=tmp_path / "q")
    monthly = panel_transition_data(panel, loans, val_share=0.15, seed=0)  # the same held-out loans (seed 0)
    val, train = monthly["val"], monthly["train"]
    cf, macro, counts = _model_view(model, val)
    with torch.no_grad():
        learnt = float(model.nll(model(cf, macro).clamp_min(1e-30).log(), counts))
    coarse = val.counts[val.definition == "asset_class"].sum((0, 1))
    chain = row_mle(train.counts[train.definition == "asset_class"].sum((0, 1)))
    pooled = float(-(coarse * np.log(np.maximum(chain, 1e-30)))[coarse > 0].sum() / coarse[:4].sum())
    assert learnt < pooled - 0.005, (learnt, pooled)
    meta = json.loads((tmp_path / "q" / "config.json").read_text())["training"]
    assert meta["period_months"] == 3
    with pytest.raises(ConfigError, match="'trajectory' learns from monthly loan histories"):
        cs.fit_transitions(quarterly, loans, model="trajectory", period="quarter")
    with pytest.raises(DataError, match="most are 3 months apart.*--period quarter"):
        panel_transition_data(quarterly, loans)


def test_period_nll_scores_the_product_of_the_months_matrices() -> None:
    """Closed form: a 3-month move ending in month t has probability (P_{t-2} P_{t-1} P_t)_ij."""
    rng = np.random.default_rng(4)
    allowed = torch.from_numpy(cs.states.ALLOWED_TRANSITIONS)
    logits = torch.from_numpy(rng.normal(size=(2, 5, 7, 7))).masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(logits, -1)
    counts = torch.zeros(2, 5, 7, 7, dtype=torch.float64)
    counts[0, 2, 0, 3], counts[1, 4, 1, 0], counts[1, 3, 0, 4] = 2.0, 1.0, 3.0
    got = float(TransitionTransformer.period_nll(probs, counts, 3))
    p = probs.numpy()
    want = -(2 * np.log((p[0, 0] @ p[0, 1] @ p[0, 2])[0, 3]) + np.log((p[1, 2] @ p[1, 3] @ p[1, 4])[1, 0])
             + 3 * np.log((p[1, 1] @ p[1, 2] @ p[1, 3])[0, 4])) / 6
    assert got == pytest.approx(want, rel=1e-12)
    model = TransitionTransformer.from_pretrained()
    with pytest.raises(DataError, match="moves no 3 monthly moves reach"):
        bad = torch.zeros(1, 4, 7, 7)
        bad[0, 3, 4, 0] = 1.0  # out of DEFAULT
        model.loss(torch.zeros(1, len(model.cohort_feature_names)), torch.zeros(1, 4, 9), bad, period_months=3)


def test_the_reporting_view_keeps_report_months_and_moves_absorptions_to_the_next() -> None:
    panel = pd.DataFrame({"loan_id": ["a"] * 5 + ["b"] * 2 + ["c"] * 5,
                          "reporting_month": list(pd.date_range("2022-01-01", periods=5, freq="MS")) * 1
                          + list(pd.date_range("2022-01-01", periods=2, freq="MS"))
                          + list(pd.date_range("2022-01-01", periods=5, freq="MS")),
                          "loan_state": [0, 1, 2, 4, 4] + [0, 5] + [0, 0, 0, 0, 1]})
    view = reporting_view(panel, 3)
    got = {k: list(zip(g["reporting_month"].dt.strftime("%Y-%m"), g["loan_state"])) for k, g in view.groupby("loan_id")}
    assert got["a"] == [("2022-01", 0), ("2022-04", 4)]  # the defaulted row of 2022-04 itself
    assert got["b"] == [("2022-01", 0), ("2022-04", 5)]  # prepaid in 2022-02: reported at the next quarter end
    assert got["c"] == [("2022-01", 0), ("2022-04", 0)]  # live at the end: its last report month


def test_dated_absorptions_of_a_quarterly_panel_reach_the_transformer() -> None:
    """A quarterly file that dates defaults and payoffs in their own month: the transformer's data read
    each such absorption as absorbed by the next quarter end (the coarsened record), so the counts equal
    those of the same book reported with absorptions carried -- none dropped (the old rule kept only rows
    exactly three months apart, and lost about a third of the defaults)."""
    from creditsim.transitions.cohorts import panel_month_numbers

    loans, panel = cs.LoanTapeGenerator(800, 24, random_seed=3, cutoff="2022-01-01").generate()
    dated, carried = reporting_view(panel, 3, absorptions="dated"), reporting_view(panel, 3)
    off = dated["reporting_month"].dt.month.isin([2, 3, 5, 6, 8, 9, 11, 12])
    assert off.any() and (dated.loc[off, "loan_state"] >= int(LoanState.DEFAULT)).all()
    # loans on staggered quarterly cycles: every move three months apart on the loan's own cycle is read
    m0 = int(panel_month_numbers(panel).min())
    group = panel["loan_id"].astype(str).str[-1].astype(int) % 3
    staggered = pd.concat([reporting_view(panel[group == g], 3, anchor=m0 + g) for g in range(3)], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped
        read = panel_transition_data(staggered, loans, period_months=3, val_share=0.0)["train"]
    s = staggered.sort_values(["loan_id", "reporting_month"])
    apart = (s["loan_id"] == s["loan_id"].shift()) & (s["reporting_month"].dt.to_period("M").astype(int).diff() == 3)
    assert read.counts[read.definition == "asset_class"][..., :4, :].sum() == (apart & (s["loan_state"].shift() < 4)).sum()
    # dated absorptions on staggered cycles: kept up to the panel's last complete period of each loan's cycle
    dated_staggered = pd.concat([reporting_view(panel[group == g], 3, absorptions="dated", anchor=m0 + g)
                                 for g in range(3)], ignore_index=True)
    carried_staggered = pd.concat([reporting_view(panel[group == g], 3, anchor=m0 + g) for g in range(3)],
                                  ignore_index=True)

    def entries(frame):
        f = frame.sort_values(["loan_id", "reporting_month"])
        return int(((f["loan_state"] >= 4) & (f["loan_id"] == f["loan_id"].shift()) & (f["loan_state"].shift() < 4)).sum())

    assert entries(reporting_view(dated_staggered, 3, grid="loan")) == entries(carried_staggered) > 0
    pd.testing.assert_frame_equal(reporting_view(panel, 3, anchor="2022-02"), reporting_view(panel, 3, anchor=m0 + 1))
    with pytest.raises(ConfigError, match="not a month number"):
        reporting_view(panel, 3, anchor=2022 * 12 + 2)  # the old unit
    with pytest.raises(ConfigError, match="not read with grid='loan'"):
        reporting_view(panel, 3, anchor=m0, grid="loan")
    stray = pd.concat([carried, panel[panel["reporting_month"] == pd.Timestamp("2022-02-01")].iloc[:5]], ignore_index=True)
    with pytest.warns(UserWarning, match="5 row.* not read by the transformer") as caught:
        panel_transition_data(stray, loans, period_months=3, val_share=0.0)
    assert caught[0].filename == __file__  # reported at the caller's line, not inside creditsim
    got = panel_transition_data(dated, loans, period_months=3, val_share=0.0)["train"]
    want = panel_transition_data(carried, loans, period_months=3, val_share=0.0)["train"]
    np.testing.assert_array_equal(got.counts, want.counts)
    absorbed = got.counts[got.definition == "asset_class"][..., :4, 4:].sum()
    was_live = carried["loan_id"].duplicated() & (carried["loan_state"].shift() < int(LoanState.DEFAULT))
    assert absorbed == ((carried["loan_state"] >= int(LoanState.DEFAULT)) & was_live).sum() > 0  # every one counted
