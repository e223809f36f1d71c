"""Reading and writing loan tapes and panels (creditsim.io), bad input included."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.io import atomic_write, read_loan_tape, read_panel, write_loan_tape, write_panel
from creditsim.transitions.synthetic import LoanTapeGenerator
from creditsim.errors import DataError
from creditsim.schema import validate_loan_tape, validate_panel


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return LoanTapeGenerator(200, 12, random_seed=8).generate()


def _compare(read: pd.DataFrame, expected: pd.DataFrame) -> None:
    read = read.reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    assert list(read.columns) == list(expected.columns)
    for col in expected.columns:
        a, b = read[col], expected[col]
        if pd.api.types.is_numeric_dtype(b):
            np.testing.assert_allclose(a.to_numpy(np.float64), b.to_numpy(np.float64), rtol=1e-12, equal_nan=True)
        elif pd.api.types.is_datetime64_any_dtype(b):
            assert (pd.to_datetime(a).to_numpy() == b.to_numpy()).all(), col
        else:
            assert (a.astype(object).where(a.notna(), None).tolist()
                    == b.astype(object).where(b.notna(), None).tolist()), col


@pytest.mark.parametrize("ext", ["csv", "csv.gz", "parquet"])
def test_loan_tape_round_trip(tmp_path: Path, frames, ext):
    loans, _ = frames
    path = write_loan_tape(loans, tmp_path / f"loans.{ext}")
    _compare(read_loan_tape(path), validate_loan_tape(loans))


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_panel_round_trip(tmp_path: Path, frames, ext):
    _, panel = frames
    path = write_panel(panel, tmp_path / f"panel.{ext}")
    back = read_panel(path)
    expected = validate_panel(panel)
    _compare(back.assign(loan_id=back["loan_id"].astype(str)), expected.assign(loan_id=expected["loan_id"].astype(str)))


def test_csv_keeps_identifiers_as_text(tmp_path: Path, frames):
    loans, _ = frames
    numeric_ids = loans.assign(loan_id=[f"{i:05d}" for i in range(len(loans))])
    path = write_loan_tape(numeric_ids, tmp_path / "ids.csv")
    assert read_loan_tape(path)["loan_id"].iloc[3] == "00003"


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path, frames, monkeypatch):
    loans, _ = frames
    path = tmp_path / "loans.csv"
    write_loan_tape(loans.iloc[:10], path)
    before = path.read_bytes()

    def broken(self, target, *args, **kwargs):
        Path(target).write_text("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_loan_tape(loans, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["loans.csv"]


def test_unknown_extension_and_unreadable_files_raise_data_error(tmp_path: Path, frames):
    loans, _ = frames
    with pytest.raises(DataError, match="unknown file extension"):
        write_loan_tape(loans, tmp_path / "loans.xlsx")
    with pytest.raises(DataError, match="unknown file extension"):
        read_loan_tape(tmp_path / "loans.json")
    with pytest.raises(DataError, match="does not exist"):
        read_panel(tmp_path / "missing.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match="cannot be read as PARQUET"):
        read_loan_tape(garbage)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_panel(empty)


# -- every bad-input case of the data contract, through the readers ------------------------------------


def _bad_tape(case: str, loans: pd.DataFrame) -> tuple[pd.DataFrame, str, list[int]]:
    """A broken copy of ``loans``, the column the error must name and the broken rows."""
    df = loans.copy()
    if case == "missing_column":
        return df.drop(columns="interest_rate"), "interest_rate", []
    if case == "nan_required":
        df.loc[[3, 7], "original_balance"] = np.nan
        return df, "original_balance", [3, 7]
    if case == "negative_balance":
        df.loc[[4], "original_balance"] = -1000.0
        return df, "original_balance", [4]
    if case == "maturity_before_origination":
        df.loc[[2, 9], "maturity_date"] = df.loc[[2, 9], "origination_date"] - pd.DateOffset(months=1)
        return df, "maturity_date", [2, 9]
    if case == "unknown_asset_class":
        df.loc[[5], "asset_class"] = "aircraft"
        return df, "asset_class", [5]
    if case == "duplicate_loan_id":
        df.loc[[6], "loan_id"] = df.loc[1, "loan_id"]
        return df, "loan_id", [1, 6]
    raise AssertionError(case)


TAPE_CASES = ["missing_column", "nan_required", "negative_balance", "maturity_before_origination",
              "unknown_asset_class", "duplicate_loan_id"]


@pytest.mark.parametrize("ext", ["csv", "parquet"])
@pytest.mark.parametrize("case", TAPE_CASES)
def test_bad_loan_tape_raises_data_error_naming_column_and_rows(tmp_path: Path, frames, case, ext):
    loans, _ = frames
    bad, column, rows = _bad_tape(case, loans)
    path = tmp_path / f"bad.{ext}"
    bad.to_csv(path, index=False) if ext == "csv" else bad.to_parquet(path, index=False)
    with pytest.raises(DataError) as err:
        read_loan_tape(path)
    msg = str(err.value)
    assert f"'{column}'" in msg or f"['{column}']" in msg
    for r in rows:
        assert str(r) in msg
    assert "expected" in msg or "missing" in msg


def _bad_panel(case: str, panel: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    df = panel.copy().reset_index(drop=True)
    df["loan_state"] = df["loan_state"].astype(np.int64)
    if case == "state_outside_range":
        df.loc[[13, 40], "loan_state"] = [7, 12]
        return df, [13, 40]
    if case == "forbidden_move":
        # loan 0: month 1 CURRENT, month 2 jumps straight to 90 dpd (skips two buckets)
        df.loc[0:2, "loan_state"] = [0, 0, 3]
        return df, [2]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["state_outside_range", "forbidden_move"])
def test_bad_panel_raises_data_error_naming_column_and_rows(tmp_path: Path, frames, case):
    _, panel = frames
    bad, rows = _bad_panel(case, panel)
    path = tmp_path / "bad_panel.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        read_panel(path)
    msg = str(err.value)
    assert "'loan_state'" in msg and "expected" in msg
    for r in rows:
        assert str(r) in msg


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("ext", ["csv", "csv.gz", "parquet"])
def test_written_files_get_umask_permissions_not_0600(tmp_path: Path, frames, ext, umask_022):
    loans, panel = frames
    tape = write_loan_tape(loans.iloc[:20], tmp_path / f"loans.{ext}")
    pan = write_panel(panel.iloc[:50], tmp_path / f"panel.{ext}", validate=False)
    assert stat.S_IMODE(tape.stat().st_mode) == 0o644
    assert stat.S_IMODE(pan.stat().st_mode) == 0o644


def test_atomic_write_follows_the_umask_and_cleans_up_on_error(tmp_path: Path):
    old = os.umask(0o027)
    try:
        out = atomic_write(tmp_path / "sub" / "x.txt", lambda tmp: tmp.write_text("hello"))
        assert out.read_text() == "hello" and stat.S_IMODE(out.stat().st_mode) == 0o640

        def broken(tmp: Path) -> None:
            tmp.write_text("half")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            atomic_write(out, broken)
    finally:
        os.umask(old)
    assert out.read_text() == "hello"
    assert [p.name for p in out.parent.iterdir()] == ["x.txt"]
