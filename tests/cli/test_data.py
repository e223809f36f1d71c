"""``creditsim data ...`` commands (creditsim.cli.data), through creditsim.cli.main."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.cli import main
from creditsim.io import read_loan_tape, read_panel
from creditsim.transitions.synthetic import LoanTapeGenerator


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return LoanTapeGenerator(100, 6, random_seed=2).generate()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_synth_writes_valid_tape_panel_and_macro(tmp_path: Path, capsys, fmt):
    out = tmp_path / "synth"
    code, stdout, _ = run(["data", "synth", "--n-loans", "150", "--n-months", "8", "--seed", "4",
                           "--format", fmt, "--out", str(out)], capsys)
    assert code == 0
    assert "wrote" in stdout and "consumer" in stdout
    loans = read_loan_tape(out / f"loans.{fmt}")
    panel = read_panel(out / f"panel.{fmt}")
    assert len(loans) == 150 and len(panel) == 150 * 8
    macro = pd.read_parquet(out / "macro.parquet") if fmt == "parquet" else pd.read_csv(out / "macro.csv")
    assert len(macro) == 8 and "unemployment_rate" in macro.columns


def test_synth_same_seed_same_files_and_scenario_changes_the_panel(tmp_path: Path, capsys):
    args = ["data", "synth", "--n-loans", "300", "--n-months", "24", "--seed", "1"]
    run(args + ["--out", str(tmp_path / "a")], capsys)
    run(args + ["--out", str(tmp_path / "b")], capsys)
    run(args + ["--scenario", "severely_adverse", "--out", str(tmp_path / "c")], capsys)
    pa, pb, pc = (pd.read_parquet(tmp_path / d / "panel.parquet") for d in "abc")
    pd.testing.assert_frame_equal(pa, pb)
    la, lc = (pd.read_parquet(tmp_path / d / "loans.parquet") for d in "ac")
    pd.testing.assert_frame_equal(la, lc)  # the scenario moves the panel, not the tape
    assert not pa["loan_state"].equals(pc["loan_state"])


def test_validate_prints_summary_for_tape_and_panel(tmp_path: Path, capsys, frames):
    loans, panel = frames
    loans.to_parquet(tmp_path / "loans.parquet", index=False)
    panel.to_csv(tmp_path / "panel.csv", index=False)
    code, out, _ = run(["data", "validate", str(tmp_path / "loans.parquet")], capsys)
    assert code == 0 and "valid loan tape" in out and "100 loans" in out
    code, out, _ = run(["data", "validate", str(tmp_path / "panel.csv")], capsys)
    assert code == 0 and "valid panel" in out and "CURRENT" in out
    code, out, _ = run(["data", "validate", "--kind", "panel", str(tmp_path / "panel.csv")], capsys)
    assert code == 0


def _break(case: str, loans: pd.DataFrame, panel: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """(broken frame, --kind, column the message must name)."""
    df = loans.copy()
    if case == "missing_column":
        return df.drop(columns="vintage"), "tape", "vintage"
    if case == "nan_required":
        df.loc[[2], "interest_rate"] = np.nan
        return df, "tape", "interest_rate"
    if case == "negative_balance":
        df.loc[[3], "original_balance"] = -5.0
        return df, "tape", "original_balance"
    if case == "maturity_before_origination":
        df.loc[[4], "maturity_date"] = pd.Timestamp("1990-01-01")
        return df, "tape", "maturity_date"
    if case == "unknown_asset_class":
        df.loc[[5], "asset_class"] = "spaceships"
        return df, "tape", "asset_class"
    if case == "duplicate_loan_id":
        df.loc[[6], "loan_id"] = df.loc[0, "loan_id"]
        return df, "tape", "loan_id"
    p = panel.copy()
    p["loan_state"] = p["loan_state"].astype(np.int64)
    if case == "state_outside_range":
        p.loc[[8], "loan_state"] = 7
        return p, "panel", "loan_state"
    if case == "forbidden_move":
        p.loc[0:1, "loan_state"] = [0, 2]
        return p, "panel", "loan_state"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["missing_column", "nan_required", "negative_balance", "maturity_before_origination",
     "unknown_asset_class", "duplicate_loan_id", "state_outside_range", "forbidden_move"],
)
def test_validate_bad_file_exits_2_with_one_line_and_no_traceback(tmp_path: Path, capsys, frames, case):
    loans, panel = frames
    bad, kind, column = _break(case, loans, panel)
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    code, out, err = run(["data", "validate", "--kind", kind, str(path)], capsys)
    assert code == 2
    assert "Traceback" not in out + err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    line = lines[0]
    assert column in line and ("expected" in line or "missing" in line)
    if case != "missing_column":
        assert "row(s) [" in line  # the offending row labels are listed


def test_validate_unknown_extension_and_missing_file_exit_2(tmp_path: Path, capsys):
    code, _, err = run(["data", "validate", str(tmp_path / "tape.xlsx")], capsys)
    assert code == 2 and "unknown file extension" in err
    code, _, err = run(["data", "validate", str(tmp_path / "nothing.csv")], capsys)
    assert code == 2 and "does not exist" in err


def test_macro_prints_and_exports_history(tmp_path: Path, capsys):
    out = tmp_path / "macro.csv"
    code, stdout, _ = run(["data", "macro", "--start", "2007-01", "--end", "2009-12", "--out", str(out)], capsys)
    assert code == 0 and "2007-01" in stdout and "2009-12" in stdout
    frame = pd.read_csv(out, parse_dates=["reporting_month"])
    assert len(frame) == 36 and frame["reporting_month"].iloc[0] == pd.Timestamp("2007-01-01")
    # 2009: US unemployment peaked near 10 %, stored as a decimal
    assert 0.09 < frame["unemployment_rate"].max() < 0.11


def test_macro_rejects_bad_dates(capsys):
    code, _, err = run(["data", "macro", "--start", "not-a-month"], capsys)
    assert code == 2 and "--start" in err


@pytest.mark.parametrize("command", [[], ["synth"], ["validate"], ["macro"], ["paths"]])
def test_help_everywhere(capsys, command):
    code, out, _ = run(["data", *command, "--help"], capsys)
    assert code == 0 and "Usage" in out


def test_paths_prints_scenarios_and_conditioning_and_writes_file_and_chart(tmp_path: Path, capsys):
    story = tmp_path / "story.yaml"
    story.write_text("unemployment_rate:\n  - {month: 18, value: 0.09}\ncredit_spread_hy:\n  - {month: 12, value: 0.09}\n"
                     "house_price_growth:\n  - {month: 18, value: -0.15}\n")
    out, chart = tmp_path / "paths.csv", tmp_path / "fan.png"
    code, stdout, _ = run(["data", "paths", str(story), "--paths", "120", "--months", "24", "--seed", "2",
                           "--out", str(out), "--plot", str(chart)], capsys)
    assert code == 0, stdout
    assert "severely_adverse" in stdout and "conditioning" in stdout and "picked by the anchors" in stdout
    assert "3 anchors, met exactly" in stdout
    frame = pd.read_csv(out, parse_dates=["reporting_month"])
    assert len(frame) == 120 * 24 and {"path", "reporting_month", "scenario", "unemployment_rate"} <= set(frame.columns)
    at18 = frame[frame["reporting_month"] == frame["reporting_month"].min() + pd.DateOffset(months=18)]
    np.testing.assert_allclose(at18["unemployment_rate"], 0.09, atol=1e-9)  # every path meets its anchor
    assert chart.stat().st_size > 0


def test_paths_of_a_plain_source_and_bad_targets(tmp_path: Path, capsys):
    code, stdout, _ = run(["data", "paths", "var", "--scenario", "baseline", "--paths", "20", "--months", "13"], capsys)
    assert code == 0 and "baseline: 20 paths" in stdout and "month 12" in stdout and "conditioning" not in stdout
    code, _, err = run(["data", "paths", "var", "--paths", "5", "--out", str(tmp_path / "p.xlsx")], capsys)
    assert code == 2 and "--out" in err and ".csv or .parquet" in err
    code, _, err = run(["data", "paths", "var", "--paths", "5", "--plot", str(tmp_path / "p.gif")], capsys)
    assert code == 2 and "--plot" in err
    code, _, err = run(["data", "paths", "nowhere", "--paths", "5"], capsys)
    assert code == 2 and "Traceback" not in err


def test_paths_reads_its_own_output_back_and_refuses_options_it_would_ignore(tmp_path: Path, capsys):
    out = tmp_path / "p.parquet"
    assert run(["data", "paths", "var", "--paths", "8", "--months", "14", "--out", str(out)], capsys)[0] == 0
    code, stdout, err = run(["data", "paths", str(out), "--paths", "8", "--months", "14"], capsys)
    assert code == 0 and "paths as given" in stdout and "5-95 % m13" in stdout, err
    code, _, err = run(["data", "paths", str(out), "--paths", "5", "--months", "14"], capsys)
    assert code == 2 and "holds 8 paths" in err
    code, _, err = run(["data", "paths", "synthetic", "--start", "2019-12", "--paths", "4"], capsys)
    assert code == 2 and "carry their own start" in err
    assert run(["data", "paths", "synthetic", "--paths", "4", "--months", "6"], capsys)[0] == 0
    code, _, err = run(["data", "paths", "var", "--months", "1"], capsys)
    assert code == 2 and "--months" in err
