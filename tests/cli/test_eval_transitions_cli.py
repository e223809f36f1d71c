"""`creditsim eval transitions`: a panel file in, the side-by-side table out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape


@pytest.fixture(scope="module")
def uci_files(tmp_path_factory) -> tuple[Path, Path]:
    panel, tape = load_credit_card_panel(), load_credit_card_tape()
    keep = tape["loan_id"].iloc[:1500]
    folder = tmp_path_factory.mktemp("uci")
    panel[panel["loan_id"].isin(keep)].to_parquet(folder / "panel.parquet")
    tape[tape["loan_id"].isin(keep)].to_parquet(folder / "tape.parquet")
    return folder / "panel.parquet", folder / "tape.parquet"


def test_eval_transitions_prints_and_saves(uci_files, tmp_path, capsys, run_cli) -> None:
    panel, tape = uci_files
    out = tmp_path / "harness"
    code = run_cli(["eval", "transitions", "--panel", str(panel), "--tape", str(tape), "--models", "markov,markov_calendar,logit",
                    "--panel-features", "pay_status,current_balance", "--tape-features", "credit_limit,age",
                    "--n-boot", "20", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Next-state prediction, split account" in text and "markov_calendar" in text
    scores = pd.read_csv(out / "scores.csv", index_col="model")
    assert list(scores.index) == ["markov", "markov_calendar", "logit"]
    assert scores.loc["logit", "nll"] < scores.loc["markov", "nll"]
    assert (out / "harness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["producer"] == "creditsim" and meta["settings"]["tape_features"] == ["credit_limit", "age"]
    # a second run may replace its own result directory
    assert run_cli(["eval", "transitions", "--panel", str(panel), "--models", "markov", "--n-boot", "10", "--out", str(out)]) == 0


@pytest.mark.parametrize("args, message", [
    (["--split", "yesterday"], "oot:YYYY-MM"),
    (["--models", "markov,forest"], "model 'forest'"),
    (["--segment-by", "colour"], "segment_by: 'colour'"),
    (["--split", "oot:2030-01"], "test side has no moves"),
    (["--macro", "history", "--credit-link", "cards"], "--credit-link: expected one of all, business, consumer, "
                                                       "credit_card, residential_mortgage, auto or none; got 'cards'"),
    (["--credit-link", "business"], "credit_link='business' needs a macro frame"),
])
def test_bad_requests_exit_2_with_one_line(uci_files, capsys, run_cli, args, message) -> None:
    code = run_cli(["eval", "transitions", "--panel", str(uci_files[0]), "--n-boot", "10", "--models", "markov", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bundled_sp_panel_runs_out_of_time_with_macro(capsys, run_cli) -> None:
    code = run_cli(["eval", "transitions", "--panel", "sp", "--models", "markov,markov_segment,logit,transformer", "--n-boot", "20",
                    "--reference", "markov_segment"])
    assert code == 0
    text = " ".join(capsys.readouterr().out.split())  # the table title wraps
    assert "split oot:1990-01" in text and "bootstrap by period" in text and "n/a (censored)" in text
    assert "transformer vs markov_segment" in text and "transformer vs logit" in text


def test_a_link_too_early_for_the_bank_history_is_refused_before_any_fit(capsys, run_cli) -> None:
    code = run_cli(["eval", "transitions", "--panel", "sp", "--models", "markov,logit,transformer", "--n-boot", "10",
                    "--credit-link", "business"])
    assert code == 2
    captured = capsys.readouterr()
    assert "quarters of bank delinquency and macro history before the split" in captured.err
    assert "logit: NLL" not in captured.out  # refused before the other models were fitted
