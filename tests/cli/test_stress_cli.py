"""`creditsim stress`: the printed DFAST table, CSV and PNG outputs, one-line errors with exit 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditsim.examples import example_path




@pytest.fixture(scope="module")
def small_tape(tmp_path_factory) -> Path:
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    path = tmp_path_factory.mktemp("tape") / "loans.parquet"
    tape.groupby("asset_class", group_keys=False).head(75).to_parquet(path)  # 300 loans, every class
    return path


def test_stress_prints_the_table_and_writes_csv_and_png(small_tape, tmp_path, capsys, run_cli):
    out, png = tmp_path / "out", tmp_path / "chart.png"
    code = run_cli(["stress", "--tape", str(small_tape), "--paths", "20", "--out", str(out), "--plot", str(png)])
    assert code == 0
    text = capsys.readouterr().out
    assert "9-quarter loss rate, % of avg balance" in text and "2024H1 pace" in text
    for word in ("baseline", "severely_adverse", "corporate", "consumer", "real_estate", "receivables", "all"):
        assert word in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "stress_table.csv")
    assert list(table["asset_class"]) == ["corporate", "consumer", "real_estate", "receivables", "all"]
    assert "fed:2025:severely_adverse:mean_pct" in table.columns
    quarterly = pd.read_csv(out / "stress_quarterly.csv")
    assert len(quarterly) == 2 * 5 * 9
    summary = pd.read_csv(out / "stress_summary.csv")
    assert (summary["loss_rate_p05"] <= summary["loss_rate_p95"]).all()


def test_stress_warnings_are_one_line_each_and_a_piped_table_is_never_cut(small_tape, capsys, run_cli):
    """Library warnings (anchors outside the VAE's training range, a conditioning step with few
    particles) reach the user as one ``warning:`` line each, without the source line that raised them;
    the table printed into a pipe keeps every column whole however many scenarios it has."""
    code = run_cli(["stress", "--tape", str(small_tape), "--paths", "4", "--quarters", "3", "--scenarios",
                    "fed:2025:baseline,fed:2025:severely_adverse,vae:adverse,var:stagflation"])
    assert code == 0
    captured = capsys.readouterr()
    warned = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert warned and all(ln.startswith("warning: ") for ln in warned), captured.err
    assert len(set(warned)) == len(warned)
    assert "return func" not in captured.err and "ConditionRangeWarning" not in captured.err
    header = next(ln for ln in captured.out.splitlines() if "asset class" in ln)
    for head in ("baseline", "severely_adverse", "adverse", "stagflation", "banks*", "avg bal."):
        assert head in header, header
    assert "…" not in captured.out


def test_stress_classes_option(small_tape, capsys, run_cli):
    assert run_cli(["stress", "--tape", str(small_tape), "--paths", "3", "--quarters", "2",
                     "--scenarios", "fed:2025:baseline", "--classes", "corporate"]) == 0
    text = capsys.readouterr().out
    assert "corporate" in text and "consumer" not in text


@pytest.mark.parametrize("args, message", [
    (["--scenarios", "fed:2025:baseline,moon"], "unknown scenario 'moon'"),
    (["--quarters", "0"], "quarters must be an integer >= 1"),
    (["--quarters", "14"], "beyond the path horizon"),
    (["--classes", "mortgages"], "are not asset classes"),
    (["--engine", "trajectory"], "engine must be one of"),
])
def test_stress_bad_inputs_are_one_line_errors(small_tape, capsys, args, message, run_cli, one_line_error):
    assert run_cli(["stress", "--tape", str(small_tape), "--paths", "2", *args]) == 2
    assert message in one_line_error()


def test_stress_missing_tape_and_bad_output(small_tape, tmp_path, capsys, run_cli, one_line_error):
    assert run_cli(["stress", "--tape", str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in one_line_error()
    (tmp_path / "dir.png").mkdir()
    assert run_cli(["stress", "--tape", str(small_tape), "--plot", str(tmp_path / "dir.png")]) == 2
    assert "--plot" in one_line_error()
    assert run_cli(["stress"]) == 2
    assert "--tape" in one_line_error()
