"""`creditsim train transitions`: a Markov chain fitted on your panel, saved, and used by `simulate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.examples import example_path
from creditsim.transitions.markov import MarkovTransitionModel


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    loans, panel = cs.LoanTapeGenerator(400, 24, random_seed=5).generate()
    folder = tmp_path_factory.mktemp("own")
    loans.to_parquet(folder / "loans.parquet")
    panel.to_parquet(folder / "panel.parquet")
    return folder / "panel.parquet", folder / "loans.parquet", panel, loans


def test_train_on_a_panel_then_simulate_with_it(own_data, tmp_path, capsys, run_cli) -> None:
    panel_path, tape_path, panel, loans = own_data
    model_dir = tmp_path / "chain"
    assert run_cli(["train", "transitions", "--panel", str(panel_path), "--tape", str(tape_path), "--out", str(model_dir)]) == 0
    assert "Markov chain fitted" in capsys.readouterr().out
    saved = MarkovTransitionModel.load(model_dir)
    joined = panel.merge(loans[["loan_id", "asset_class"]], on="loan_id")
    direct = MarkovTransitionModel().fit(joined, by="asset_class")
    np.testing.assert_array_equal(saved.transition_matrix_, direct.transition_matrix_)
    assert saved.segments_ == direct.segments_ and saved.segment_sensitivities  # the calibrated overlay came along
    run_dir = tmp_path / "run"
    code = run_cli(["simulate", "--tape", str(tape_path), "--deal", str(example_path("example_clo.yaml")), "--n-sims", "40",
                    "--horizon", "12", "--mix", "baseline", "--transition-model", str(model_dir), "--out", str(run_dir)])
    assert code == 0
    assert json.loads((run_dir / "run.json").read_text())["settings"]["transition_model"]


def test_fitted_overlay_and_errors(own_data, tmp_path, capsys, run_cli) -> None:
    panel_path, tape_path, *_ = own_data
    assert run_cli(["train", "transitions", "--panel", str(panel_path), "--overlay", "calibrated", "--out", str(tmp_path / "a")]) == 2
    assert "needs a chain segmented by asset_class (--by asset_class" in capsys.readouterr().err
    assert run_cli(["train", "transitions", "--panel", str(panel_path), "--tape", str(tape_path), "--macro", "history",
                    "--out", str(tmp_path / "a")]) == 2  # the calibrated overlay would not read it
    assert "the calibrated overlay does not read it" in capsys.readouterr().err
    chain = cs.fit_transitions(pd.read_parquet(panel_path), pd.read_parquet(tape_path)).save(tmp_path / "chain")
    assert run_cli(["simulate", "--tape", str(tape_path), "--deal", str(example_path("example_clo.yaml")), "--engine", "transformer",
                    "--transition-model", str(chain.parent), "--out", str(tmp_path / "r")]) == 2
    assert "--engine markov" in capsys.readouterr().err
    assert run_cli(["simulate", "--tape", str(tape_path), "--deal", str(example_path("example_clo.yaml")),
                    "--transition-model", str(tmp_path / "a"), "--out", str(tmp_path / "r")]) == 2
    assert "no model there" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "markov_model.json").write_text("{}")
    with pytest.raises(cs.errors.CheckpointError, match="creditsim.markov/1"):
        MarkovTransitionModel.load(tmp_path / "bad")


def test_save_load_round_trip_keeps_every_bit_of_a_fitted_overlay(own_data, tmp_path) -> None:
    from creditsim.datasets.macro import load_macro_history

    panel = own_data[2]
    months = pd.date_range(panel["reporting_month"].min(), panel["reporting_month"].max(), freq="MS")
    macro = load_macro_history().iloc[-len(months):].set_axis(months)
    model = MarkovTransitionModel().fit(panel).fit_macro_sensitivity(panel, macro)
    back = MarkovTransitionModel.load(model.save(tmp_path / "m"))
    paths = load_macro_history().to_numpy()[-36:][None]
    np.testing.assert_array_equal(model.scenario_matrices(paths), back.scenario_matrices(paths))
    np.testing.assert_array_equal(model.counts_, back.counts_)


def test_fit_transitions_entry_point(own_data, tmp_path) -> None:
    _, _, panel, loans = own_data
    chain = cs.fit_transitions(panel, loans, out=tmp_path / "chain")  # by asset class, calibrated overlay
    assert set(loans["asset_class"]) <= set(chain.segments_) and chain.segment_sensitivities
    saved = MarkovTransitionModel.load(tmp_path / "chain")  # out= saves what simulate --transition-model reads
    np.testing.assert_array_equal(saved.transition_matrix_, chain.transition_matrix_)
    (tmp_path / "chain" / "config.json").write_text('{"model": "LoanTrajectoryModel"}')
    with pytest.raises(cs.errors.ConfigError, match="already holds another model"):
        cs.fit_transitions(panel, loans, out=tmp_path / "chain")
    history = panel[panel["reporting_month"] <= "2025-09-01"]  # the bundled macro history ends in 2025-09
    fitted = cs.fit_transitions(history, model="markov", macro="history")  # no tape: one chain, overlay fitted
    assert fitted.segments_ is None and fitted.sensitivity_se_ is not None
    gbm = cs.fit_transitions(panel, loans, model="gbm", panel_features=["current_balance"])
    from creditsim.harness import build_moves

    moves = build_moves(panel, loans, ["current_balance"])
    assert np.allclose(gbm.predict(moves).sum(1), 1.0)
    with pytest.raises(cs.errors.ConfigError, match="expected 'markov' or one of"):
        cs.fit_transitions(panel, model="forest")
    with pytest.raises(cs.errors.ConfigError, match="needs a macro frame"):
        cs.fit_transitions(panel, overlay="fit")


def test_three_panel_columns_suffice_to_train(tmp_path, capsys, run_cli) -> None:
    """loan_id, reporting_month and loan_state train the chain, the transformer and the trajectory model
    (README: the panel you train on) and feed 'eval transitions'; no balance column is asked for. The trajectory model's value head,
    without value columns, keeps its starting weights."""
    loans, panel = cs.LoanTapeGenerator(150, 18, random_seed=2, cutoff="2022-01-01").generate()
    tape, three = tmp_path / "loans.parquet", tmp_path / "panel.csv"
    loans.to_parquet(tape)
    panel[["loan_id", "reporting_month", "loan_state"]].to_csv(three, index=False)
    base = ["--panel", str(three), "--tape", str(tape)]
    assert run_cli(["train", "transitions", *base, "--out", str(tmp_path / "chain")]) == 0, capsys.readouterr().err
    assert run_cli(["train", "transitions", *base, "--model", "transformer", "--epochs", "1",
                    "--out", str(tmp_path / "tt")]) == 0, capsys.readouterr().err
    assert run_cli(["train", "trajectory", *base, "--epochs", "1", "--window", "12",
                    "--out", str(tmp_path / "traj")]) == 0, capsys.readouterr().err
    assert {"markov_model.json"} <= {p.name for p in (tmp_path / "chain").iterdir()}
    assert (tmp_path / "tt" / "model.safetensors").is_file() and (tmp_path / "traj" / "model.safetensors").is_file()
    assert run_cli(["eval", "transitions", "--panel", str(three), "--models", "markov,logit"]) == 0
    capsys.readouterr()
    # a column the contract checks is still checked when it is there
    panel[["loan_id", "reporting_month", "loan_state"]].assign(current_balance=-1.0).to_csv(three, index=False)
    assert run_cli(["train", "transitions", *base, "--out", str(tmp_path / "chain2")]) == 2
    assert "current_balance" in capsys.readouterr().err


def test_errors_a_cli_user_meets_speak_cli_and_advise_nothing_refused(own_data, tmp_path, capsys, run_cli) -> None:
    """Messages reaching 'creditsim train transitions' / 'simulate' name options as the command line writes them
    (--by asset_class, not by='asset_class'); on a quarterly panel no message suggests --overlay fit, which
    that panel refuses."""
    import re

    panel_path, tape_path, panel, _ = own_data
    python_syntax = re.compile(r"\b[a-z_]+=('|\d)")
    base = ["train", "transitions", "--panel", str(panel_path), "--out", str(tmp_path / "m")]

    def error(args: list[str]) -> str:
        assert run_cli(args) == 2
        err = capsys.readouterr().err
        assert not python_syntax.search(err.replace("in Python by='asset_class'", "")), err
        return err

    assert "segment column 'vintage_bucket'" in error([*base, "--by", "vintage_bucket"])
    err = error([*base, "--period", "quarter", "--macro", "history"])
    assert "drop --macro" in err and "give --overlay fit" not in err
    err = error([*base, "--period", "quarter", "--overlay", "fit"])
    assert "--overlay legacy" in err and "--period quarter" in err
    assert "give --overlay fit" in error([*base, "--tape", str(tape_path), "--macro", "history"])  # monthly: it works
    # a chain segmented by another column, given to simulate
    seg = panel.assign(half=(panel["loan_id"].astype(str).str[-1].isin(list("02468"))).map({True: "a", False: "b"}))
    MarkovTransitionModel().fit(seg, by="half").save(tmp_path / "halves")
    err = error(["simulate", "--tape", str(tape_path), "--deal", str(example_path("example_clo.yaml")), "--n-sims", "4",
                 "--horizon", "3", "--macro", "synthetic", "--transition-model", str(tmp_path / "halves"),
                 "--out", str(tmp_path / "r")])
    assert "creditsim train transitions --by asset_class" in err
