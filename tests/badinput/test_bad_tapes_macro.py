"""Bad-input suite for loan tapes, panels and tapes as read from files, and macro frames (issue 10).

Each case is (id, builder, expected error class or None, substring of the message / check of the
documented result). Builders take a clean base and return the bad input; every error must be one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.cli import main
from creditsim.io import read_frame, read_loan_tape, read_panel
from creditsim.errors import DataError
from creditsim.schema import validate_loan_tape, validate_macro, validate_panel
from creditsim.states import MACRO_VARS

EXAMPLE = Path(__file__).resolve().parents[2] / "creditsim" / "examples" / "loans_example.parquet"


@pytest.fixture(scope="module")
def tape() -> pd.DataFrame:
    """Six valid loans of the shipped example tape (ISO datetime columns, term consistent with dates)."""
    df = pd.read_parquet(EXAMPLE).head(6).reset_index(drop=True)
    return df


def _macro(n: int = 6, start: str = "2020-01-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq="MS")
    return pd.DataFrame(np.full((n, len(MACRO_VARS)), 0.02), index=idx, columns=list(MACRO_VARS))


def _panel() -> pd.DataFrame:
    return pd.DataFrame({
        "loan_id": ["007", "007", "008"],
        "reporting_month": ["2024-01-01", "2024-02-01", "2024-01-01"],
        "current_balance": [100.0, 90.0, 50.0],
        "loan_state": [0, 1, 0],
    })


def _set(col: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def build(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out[col] = out[col].astype(object)
        out.loc[row, col] = value
        return out
    return build


def _drop(col: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda df: df.drop(columns=col)


def _dates_as(fmt: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def build(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        for c in ("origination_date", "maturity_date"):
            out[c] = out[c].dt.strftime(fmt)
        return out
    return build


def _dates_as_int(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in ("origination_date", "maturity_date"):
        out[c] = out[c].dt.strftime("%Y%m%d").astype(np.int64)
    return out


# ---- in-memory tapes --------------------------------------------------------------------------------

TAPE_CASES = [
    ("missing-loan_id", _drop("loan_id"), DataError, "missing required column(s) ['loan_id']"),
    ("missing-maturity", _drop("maturity_date"), DataError, "'maturity_date'"),
    ("missing-interest_rate", _drop("interest_rate"), DataError, "'interest_rate'"),
    ("missing-term", _drop("term_months"), DataError, "'term_months'"),
    ("not-a-frame", lambda df: df.to_dict(), DataError, "expected a pandas DataFrame"),
    ("no-rows", lambda df: df.iloc[:0], DataError, "no rows"),
    ("balance-text", _set("original_balance", 2, "lots"), DataError, "'original_balance' has 1 invalid row(s) [2]"),
    ("balance-negative", _set("original_balance", 1, -5.0), DataError, "'original_balance' has 1 invalid row(s) [1]"),
    ("balance-zero", _set("original_balance", 0, 0.0), DataError, "values > 0"),
    ("balance-inf", _set("original_balance", 0, np.inf), DataError, "a finite number"),
    ("current-negative", _set("current_balance", 3, -1.0), DataError, "'current_balance'"),
    ("current-above-original", lambda df: df.assign(current_balance=df["original_balance"] * 2),
     DataError, "current_balance <= original_balance"),
    ("rate-percent", _set("interest_rate", 4, 5.5), DataError, "'interest_rate' has 1 invalid row(s) [4]"),
    ("rate-negative", _set("interest_rate", 4, -0.01), DataError, "'interest_rate'"),
    ("ltv-above-2", _set("ltv_origination", 1, 85.0), DataError, "'ltv_origination'"),
    ("ltv-negative", _set("ltv_origination", 1, -0.1), DataError, "'ltv_origination'"),
    ("term-zero", _set("term_months", 0, 0), DataError, "'term_months' has 1 invalid row(s) [0]"),
    ("term-fraction", _set("term_months", 0, 1.5), DataError, "an integer"),
    ("term-above-360", _set("term_months", 0, 480), DataError, "values <= 360"),
    ("term-disagrees-with-dates", _set("term_months", 2, 12), DataError, "'term_months' has 1 invalid row(s) [2]"),
    ("maturity-before-origination", lambda df: df.assign(maturity_date=df["origination_date"] - pd.Timedelta(days=31)),
     DataError, "a maturity date after origination_date"),
    ("duplicate-ids", _set("loan_id", 1, "L000001"), DataError, "'loan_id' has 2 invalid row(s) [0, 1]"),
    ("nan-loan_id", _set("loan_id", 5, None), DataError, "'loan_id' has 1 invalid row(s) [5]"),
    ("nan-origination", _set("origination_date", 3, None), DataError, "'origination_date' has 1 invalid row(s) [3]"),
    ("nan-rate", _set("interest_rate", 3, np.nan), DataError, "no missing values"),
    ("unknown-asset-class", _set("asset_class", 2, "crypto"), DataError, "'asset_class' has 1 invalid row(s) [2]"),
    ("unknown-amortization", _set("amortization_type", 2, "balloon"), DataError, "'amortization_type'"),
    ("unknown-rate-type", _set("rate_type", 2, "hybrid"), DataError, "'rate_type'"),
    ("unknown-frequency", _set("payment_frequency", 2, "weekly"), DataError, "'payment_frequency'"),
    ("unknown-rating", _set("rating", 2, "ZZZ"), DataError, "'rating'"),
    ("bad-vintage", _set("vintage", 0, "2025/01"), DataError, "'YYYY-MM'"),
    ("dates-dd/mm", _dates_as("%d/%m/%Y"), DataError, "'origination_date'"),
    ("dates-mm/dd", _dates_as("%m/%d/%Y"), DataError, "ISO dates YYYY-MM-DD"),
    ("dates-yyyymmdd-int", _dates_as_int, DataError, "date_format="),
    ("dates-garbage", _set("maturity_date", 1, "soon"), DataError, "'maturity_date' has 1 invalid row(s) [1]"),
    ("dates-impossible-iso", _set("maturity_date", 1, "2030-02-30"), DataError, "'maturity_date'"),
]


@pytest.mark.parametrize("case,build,err,needle", TAPE_CASES, ids=[c[0] for c in TAPE_CASES])
def test_bad_tape(tape, case, build, err, needle):
    with pytest.raises(err) as exc:
        validate_loan_tape(build(tape))
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


# documented correct results (not errors)
def test_iso_text_dates_give_the_same_tape_as_datetimes(tape):
    clean = validate_loan_tape(tape)
    assert validate_loan_tape(_dates_as("%Y-%m-%d")(tape)).equals(clean)


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%m/%d/%Y", "%Y%m%d"])
def test_explicit_date_format_reads_the_dates_exactly(tape, fmt):
    clean = validate_loan_tape(tape)
    got = validate_loan_tape(_dates_as(fmt)(tape), date_format=fmt)
    pd.testing.assert_series_equal(got["origination_date"], clean["origination_date"])
    pd.testing.assert_series_equal(got["maturity_date"], clean["maturity_date"])


def test_integer_yyyymmdd_with_date_format(tape):
    got = validate_loan_tape(_dates_as_int(tape), date_format="%Y%m%d")
    assert (got["maturity_date"] == tape["maturity_date"]).all()


def test_date_format_mismatch_names_column_and_format(tape):
    with pytest.raises(DataError, match=r"'origination_date'.*'%d/%m/%Y'"):
        validate_loan_tape(_dates_as("%Y-%m-%d")(tape), date_format="%d/%m/%Y")


def test_origination_after_cutoff(tape):
    late = tape["origination_date"].idxmax()
    with pytest.raises(DataError, match=rf"'origination_date' has \d+ invalid row\(s\) \[.*{late}"):
        validate_loan_tape(tape, cutoff=tape["origination_date"].max() - pd.Timedelta(days=1))
    validate_loan_tape(tape, cutoff=tape["origination_date"].max())  # on the cut-off date: fine
    with pytest.raises(DataError, match="cutoff must be a date"):
        validate_loan_tape(tape, cutoff="not a date")


def test_term_within_one_month_of_dates_is_accepted(tape):
    """Documented tolerance: term_months may differ by up to 1 month from the date span."""
    df = tape.copy()
    df["term_months"] = df["term_months"] + 1
    df.loc[df["term_months"] > 360, "term_months"] = 360
    validate_loan_tape(df)


def test_numeric_ids_become_integer_text_not_float_text(tape):
    df = tape.copy()
    df["loan_id"] = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    assert validate_loan_tape(df)["loan_id"].tolist() == ["7", "8", "9", "10", "11", "12"]


# ---- files ------------------------------------------------------------------------------------------

def _write_csv(tape: pd.DataFrame, path: Path, **kw) -> Path:
    tape.to_csv(path, index=False, date_format="%Y-%m-%d", **kw)
    return path


def _f_empty(tape, d):
    (d / "t.csv").write_text("")
    return d / "t.csv"


def _f_semicolon(tape, d):
    return _write_csv(tape, d / "t.csv", sep=";")


def _f_tab(tape, d):
    return _write_csv(tape, d / "t.csv", sep="\t")


def _f_xlsx(tape, d):
    (d / "t.csv").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    return d / "t.csv"


def _f_xls(tape, d):
    (d / "t.csv").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 64)
    return d / "t.csv"


def _f_parquet_as_csv(tape, d):
    tape.to_parquet(d / "t.csv")
    return d / "t.csv"


def _f_parquet_wrong_schema(tape, d):
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(d / "t.parquet")
    return d / "t.parquet"


def _f_parquet_garbage(tape, d):
    (d / "t.parquet").write_bytes(b"not parquet")
    return d / "t.parquet"


def _f_header_only(tape, d):
    (d / "t.csv").write_text(",".join(tape.columns) + "\n")
    return d / "t.csv"


def _f_ddmm_csv(tape, d):
    return _write_csv(_dates_as("%d/%m/%Y")(tape), d / "t.csv")


def _f_epoch_int_csv(tape, d):
    return _write_csv(_dates_as_int(tape), d / "t.csv")


def _f_rate_percent_csv(tape, d):
    return _write_csv(tape.assign(interest_rate=tape["interest_rate"] * 100), d / "t.csv")


def _f_missing_col_parquet(tape, d):
    tape.drop(columns="asset_class").to_parquet(d / "t.parquet")
    return d / "t.parquet"


def _f_json(tape, d):
    (d / "t.json").write_text("{}")
    return d / "t.json"


def _f_missing(tape, d):
    return d / "nope.csv"


def _f_ragged(tape, d):
    text = _write_csv(tape, d / "t.csv").read_text().splitlines()
    text[2] = text[2] + ",extra,fields,here"
    (d / "t.csv").write_text("\n".join(text) + "\n")
    return d / "t.csv"


FILE_CASES = [
    ("empty-file", _f_empty, DataError, "is empty"),
    ("semicolon-delimiter", _f_semicolon, DataError, "';'-separated"),
    ("tab-delimiter", _f_tab, DataError, "'\\t'-separated"),
    ("xlsx-as-csv", _f_xlsx, DataError, "Excel .xlsx"),
    ("xls-as-csv", _f_xls, DataError, "Excel .xls"),
    ("parquet-as-csv", _f_parquet_as_csv, DataError, "a Parquet file"),
    ("parquet-wrong-schema", _f_parquet_wrong_schema, DataError, "missing required column(s)"),
    ("parquet-garbage", _f_parquet_garbage, DataError, "cannot be read as PARQUET"),
    ("header-only", _f_header_only, DataError, "no rows"),
    ("dd/mm-csv", _f_ddmm_csv, DataError, "'origination_date'"),
    ("int-dates-csv", _f_epoch_int_csv, DataError, "date_format="),
    ("rate-percent-csv", _f_rate_percent_csv, DataError, "'interest_rate'"),
    ("missing-col-parquet", _f_missing_col_parquet, DataError, "'asset_class'"),
    ("unknown-extension", _f_json, DataError, "unknown file extension"),
    ("missing-file", _f_missing, DataError, "does not exist"),
    ("ragged-csv", _f_ragged, DataError, "cannot be read as CSV"),
]


@pytest.mark.parametrize("case,build,err,needle", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_tape_file(tape, tmp_path, case, build, err, needle):
    path = build(tape, tmp_path)
    with pytest.raises(err) as exc:
        read_loan_tape(path)
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


def test_bom_csv_reads_like_plain_csv(tape, tmp_path):
    """Documented result: a UTF-8 BOM (Excel's 'CSV UTF-8') is accepted; the first column is loan_id."""
    plain = read_loan_tape(_write_csv(tape, tmp_path / "a.csv"))
    bom = read_loan_tape(_write_csv(tape, tmp_path / "b.csv", encoding="utf-8-sig"))
    pd.testing.assert_frame_equal(plain, bom)


def test_ids_are_one_string_for_csv_and_parquet(tape, tmp_path):
    """Defect 3: '007' keeps its zeros in CSV and Parquet; numeric Parquet ids are '7' not '7.0'."""
    df = tape.copy()
    df["loan_id"] = ["007", "008", "009", "010", "011", "012"]
    csv = _write_csv(df, tmp_path / "t.csv")
    pq = tmp_path / "t.parquet"
    df.to_parquet(pq)
    assert read_loan_tape(csv)["loan_id"].tolist() == df["loan_id"].tolist()
    assert read_loan_tape(pq)["loan_id"].tolist() == df["loan_id"].tolist()
    assert read_frame(csv)["loan_id"].tolist() == df["loan_id"].tolist()
    num = df.assign(loan_id=[7, 8, 9, 10, 11, 12])
    num.to_parquet(tmp_path / "n.parquet")
    _write_csv(num, tmp_path / "n.csv")
    assert read_loan_tape(tmp_path / "n.parquet")["loan_id"].tolist() == ["7", "8", "9", "10", "11", "12"]
    assert read_loan_tape(tmp_path / "n.csv")["loan_id"].tolist() == ["7", "8", "9", "10", "11", "12"]


def test_cli_validate_date_format(tape, tmp_path, capsys):
    path = _write_csv(_dates_as("%d/%m/%Y")(tape), tmp_path / "t.csv")
    with pytest.raises(SystemExit) as exc:
        main(["data", "validate", str(path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "origination_date" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["data", "validate", str(path), "--date-format", "%d/%m/%Y"])
    assert exc.value.code in (0, None)
    assert "valid loan tape" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["data", "validate", str(path), "--date-format", "dd/mm"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--date-format" in err


# ---- panels -----------------------------------------------------------------------------------------

PANEL_CASES = [
    ("panel-missing-state", lambda p: p.drop(columns="loan_state"), DataError, "'loan_state'"),
    ("panel-state-7", lambda p: p.assign(loan_state=[0, 7, 0]), DataError, "'loan_state' has 1 invalid row(s) [1]"),
    ("panel-negative-balance", lambda p: p.assign(current_balance=[100.0, -1.0, 5.0]), DataError,
     "'current_balance' has 1 invalid row(s) [1]"),
    ("panel-duplicate-month", lambda p: p.assign(reporting_month=["2024-01-01", "2024-01-01", "2024-01-01"]),
     DataError, "one row per (loan_id, reporting_month)"),
    ("panel-dd/mm-month", lambda p: p.assign(reporting_month=["01/02/2024", "01/03/2024", "01/02/2024"]),
     DataError, "'reporting_month'"),
    ("panel-forbidden-move", lambda p: p.assign(loan_state=[4, 0, 0]), DataError, "allowed month-to-month"),
]


@pytest.mark.parametrize("case,build,err,needle", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_bad_panel(case, build, err, needle):
    with pytest.raises(err) as exc:
        validate_panel(build(_panel()))
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_panel_file_keeps_ids_and_reads_date_format(tmp_path):
    p = _panel()
    p["reporting_month"] = ["01/01/2024", "01/02/2024", "01/01/2024"]
    p.to_csv(tmp_path / "p.csv", index=False)
    got = read_panel(tmp_path / "p.csv", date_format="%d/%m/%Y")
    assert got["loan_id"].tolist() == ["007", "007", "008"]
    assert got["reporting_month"].dt.month.tolist() == [1, 2, 1]
    with pytest.raises(DataError, match="'reporting_month'"):
        read_panel(tmp_path / "p.csv")


# ---- macro frames -----------------------------------------------------------------------------------

def _m(fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    return lambda: fn(_macro())


def _cell(var: str, row: int, value: float) -> Callable[[], pd.DataFrame]:
    def build() -> pd.DataFrame:
        m = _macro()
        m.iloc[row, m.columns.get_loc(var)] = value
        return m
    return build


MACRO_CASES = [
    ("missing-variable", _m(lambda m: m.drop(columns="unemployment_rate")), DataError, "unemployment_rate"),
    ("missing-two", _m(lambda m: m.drop(columns=["gdp_growth", "policy_rate"])), DataError, "gdp_growth"),
    ("nan", _cell("credit_spread_hy", 2, np.nan), DataError, "'credit_spread_hy' has 1 invalid row(s) ['2020-03']"),
    ("inf", _cell("gdp_growth", 0, np.inf), DataError, "'gdp_growth'"),
    ("text-value", _m(lambda m: m.astype(object).assign(policy_rate=["x"] * 6)), DataError, "'policy_rate'"),
    ("percent", _cell("unemployment_rate", 1, 5.5), DataError, "not percent"),
    ("percent-negative", _cell("gdp_growth", 1, -3.2), DataError, "not percent"),
    ("duplicate-month", _m(lambda m: m.set_axis(pd.DatetimeIndex(
        ["2020-01-01", "2020-02-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-05-01"]))),
     DataError, "'2020-02-01'"),
    ("daily-dates", _m(lambda m: m.set_axis(pd.date_range("2020-01-01", periods=6, freq="D"))),
     DataError, "one row per calendar month"),
    ("weekly-dates", _m(lambda m: m.set_axis(pd.date_range("2020-01-01", periods=6, freq="W"))),
     DataError, "appear more than once"),
    ("gap", _m(lambda m: m.set_axis(pd.DatetimeIndex(
        ["2020-01-01", "2020-02-01", "2020-04-01", "2020-05-01", "2020-06-01", "2020-07-01"]))),
     DataError, "2020-02-01 -> 2020-04-01"),
    ("quarterly", _m(lambda m: m.set_axis(pd.date_range("2020-01-01", periods=6, freq="QS"))),
     DataError, "consecutive calendar months"),
    ("unsorted", _m(lambda m: m.iloc[[0, 2, 1, 3, 4, 5]]), DataError, "not sorted at ['2020-02-01']"),
    ("range-index", _m(lambda m: m.reset_index(drop=True)), DataError, "expected a DatetimeIndex"),
    ("string-index", _m(lambda m: m.set_axis([f"2020-0{i}" for i in range(1, 7)])), DataError, "DatetimeIndex"),
    ("reporting_month-garbage", _m(lambda m: m.reset_index(drop=True).assign(
        reporting_month=["2020-01-01", "nope", "2020-03-01", "2020-04-01", "2020-05-01", "2020-06-01"])),
     DataError, "'reporting_month' has 1 invalid row(s) [1]"),
    ("reporting_month-dd/mm", _m(lambda m: m.reset_index(drop=True).assign(
        reporting_month=[f"01/0{i}/2020" for i in range(1, 7)])), DataError, "'reporting_month'"),
    ("nat-index", _m(lambda m: m.set_axis(pd.DatetimeIndex(
        ["2020-01-01", None, "2020-03-01", "2020-04-01", "2020-05-01", "2020-06-01"]))), DataError, "NaT"),
    ("not-a-frame", lambda: _macro().to_numpy(), DataError, "expected a pandas DataFrame"),
]


@pytest.mark.parametrize("case,build,err,needle", MACRO_CASES, ids=[c[0] for c in MACRO_CASES])
def test_bad_macro(case, build, err, needle):
    with pytest.raises(err) as exc:
        validate_macro(build())
    assert needle in str(exc.value) and "\n" not in str(exc.value)


GOOD_MACRO = [
    ("month-end-dates", lambda: _macro().set_axis(pd.date_range("2020-01-31", periods=6, freq="ME"))),
    ("mid-month-dates", lambda: _macro().set_axis(pd.date_range("2020-01-01", periods=6, freq="MS")
                                                  + pd.Timedelta(days=14))),
    ("period-index", lambda: _macro().set_axis(pd.period_range("2020-01", periods=6, freq="M"))),
    ("reporting_month-column", lambda: _macro().reset_index(names="reporting_month")),
    ("year-boundary", lambda: _macro(start="2019-10-01")),
    ("single-month", lambda: _macro(n=1)),
    ("tz-aware", lambda: _macro().tz_localize("UTC")),
]


@pytest.mark.parametrize("case,build", GOOD_MACRO, ids=[c[0] for c in GOOD_MACRO])
def test_macro_documented_correct_results(case, build):
    """One row per calendar month, any day of the month: accepted, values unchanged, MACRO_VARS order."""
    out = validate_macro(build())
    assert list(out.columns) == list(MACRO_VARS)
    assert np.allclose(out.to_numpy(), 0.02)


def test_percent_below_one_is_not_detectable():
    """Documented limitation: a percent value below 1 (0.9 meaning 0.9 %) looks like a valid decimal
    (90 %) and passes; only |x| > 1 is detectable as percent."""
    m = _macro()
    m["gdp_growth"] = 0.9
    assert validate_macro(m)["gdp_growth"].eq(0.9).all()


def test_simulation_macro_frame_goes_through_validation():
    """scenarios.build_macro_paths with a user frame: a gap is refused (it was used as consecutive)."""
    from creditsim.macro.scenarios import build_macro_paths

    bad = _macro(12).drop(index=pd.Timestamp("2020-05-01"))
    with pytest.raises(DataError, match="gaps between months"):
        build_macro_paths(bad, np.zeros(3, dtype=np.int64), horizon=6, seed=0)
    ok = build_macro_paths(_macro(12), np.zeros(3, dtype=np.int64), horizon=6, seed=0)
    assert ok.shape == (3, 6, len(MACRO_VARS))
