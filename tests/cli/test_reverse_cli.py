"""`creditsim reverse-stress`: printed tables, saved files, one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from creditsim.examples import example_path


@pytest.fixture(scope="module")
def small_tape(tmp_path_factory) -> Path:
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    path = tmp_path_factory.mktemp("tape") / "loans.parquet"
    tape.sample(300, random_state=4).to_parquet(path)
    return path


def test_reverse_stress_prints_and_saves(small_tape, tmp_path, capsys, run_cli) -> None:
    out = tmp_path / "rs"
    code = run_cli(["reverse-stress", "--tape", str(small_tape), "--deal", str(example_path("example_clo.yaml")),
                    "--tranche", "C", "--loss", "0.1", "--horizon", "18", "--starts", "2", "--reference", "32",
                    "--mc", "300", "--no-single-variable", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Reverse stress: tranche C" in text and "found path vs Fed 2025 severely adverse" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tranche"] == "C" and summary["Monte Carlo draws"] == 300
    assert (out / "reverse_stress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "path.csv")) == 18


@pytest.mark.parametrize("args, message", [
    (["--tranche", "Z", "--loss", "0.1"], "tranche 'Z'"),
    (["--tranche", "C", "--loss", "3"], "principal-loss fraction"),
])
def test_bad_requests_exit_2_with_one_line(small_tape, capsys, run_cli, args, message) -> None:
    code = run_cli(["reverse-stress", "--tape", str(small_tape), "--deal", str(example_path("example_clo.yaml")),
                    "--horizon", "12", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
