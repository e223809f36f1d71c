"""Output targets of `data synth`, `data macro` and `ratings --plot` are checked before any work, and the
`simulate` CLI reads tape ids and macro months with the library's readers (issue 10)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditsim.cli import main


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code), capsys.readouterr().err


@pytest.mark.parametrize("argv_of", [
    lambda f: ["data", "synth", "--n-loans", "50", "--n-months", "3", "--out", str(f)],
    lambda f: ["data", "macro", "--out", str(f / "macro.csv")],
    lambda f: ["ratings", "fit", "--plot", str(f / "z.png")],
], ids=["synth-out-is-a-file", "macro-out-under-a-file", "ratings-plot-under-a-file"])
def test_output_under_a_regular_file_fails_first_with_the_option_named(tmp_path: Path, capsys, argv_of) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("user data")
    code, err = _run(argv_of(blocker), capsys)
    assert code == 2
    assert "--out" in err or "--plot" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "user data"


def test_data_macro_out_that_is_a_directory_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "macro.csv").mkdir()
    code, err = _run(["data", "macro", "--out", str(tmp_path / "macro.csv")], capsys)
    assert code == 2 and "--out" in err


def test_simulate_cli_reads_tape_ids_as_text(tmp_path: Path) -> None:
    from creditsim.cli.run import read_tape

    (tmp_path / "t.csv").write_text("loan_id,x\n007,1\n7,2\n")
    assert list(read_tape(tmp_path / "t.csv")["loan_id"]) == ["007", "7"]


def test_simulate_cli_macro_file_names_bad_months(tmp_path: Path) -> None:
    from creditsim.cli.run import read_macro_file
    from creditsim.errors import DataError

    path = tmp_path / "m.csv"
    pd.DataFrame({"reporting_month": ["2020-01-01", "31/02/2020"], "unemployment_rate": [0.04, 0.05]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="reporting_month"):
        read_macro_file(path)
