"""The SBA 7(a) reader (creditsim.datasets.sba): each loan's end made into monthly rows, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets import read_sba_loans
from creditsim.datasets.sba import SBA_COLUMNS, SBA_FEATURES
from creditsim.errors import ConfigError, DataError
from creditsim.harness import build_moves

HEADER = ("LoanNr_ChkDgt,Name,City,State,Zip,Bank,BankState,NAICS,ApprovalDate,ApprovalFY,Term,NoEmp,NewExist,"
          "CreateJob,RetainedJob,FranchiseCode,UrbanRural,RevLineCr,LowDoc,ChgOffDate,DisbursementDate,"
          "DisbursementGross,MIS_Status,ChgOffPrinGr,GrAppv,SBA_Appv")


def _row(loan: str, term: int, disbursed: str, status: str, charged_off: str = "", new: int = 1) -> str:
    # the file's own formats: M/D/YYYY disbursement, D-Mon-YY charge-off, amounts as "$60,000.00 " text
    return (f'{loan},"SHOP, INC",TOWN,IN,47711,BANK,IN,451120,2/28/2003,2003,{term},4,{new},0,0,1,1,N,Y,'
            f'{charged_off},{disbursed},"$60,000.00 ",{status},$0.00 ,"$60,000.00 ","$48,000.00 "')


def _csv(path, *rows: str):
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


@pytest.fixture()
def sba_file(tmp_path):
    rows = [
        _row("100", 24, "3/15/2004", "P I F"),                         # paid: rows to the month before maturity
        _row("200", 60, "1/10/2004", "CHGOFF", "20-Jul-05", new=2),    # charged off at month 18: DEFAULT there
        _row("300", 12, "1/10/2004", "CHGOFF", "5-May-06"),            # charged off after its (cut) term: still DEFAULT
        _row("400", 84, "6/1/2006", "CHGOFF", "1-Mar-11"),             # charge-off after the panel's end
        _row("500", 60, "5/1/2001", "P I F"),                          # disbursed before the window
        _row("600", 6, "5/1/2004", "P I F"),                           # term under 12 months
        _row("700", 60, "5/1/2004", ""),                               # no final status
    ]
    path = tmp_path / "SBAnational.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_each_loans_end_becomes_its_monthly_rows(sba_file) -> None:
    sba = read_sba_loans(sba_file, first="2002-01", last="2006-12", end="2010-12")
    p = sba.panel
    rows = p.groupby("loan_id").agg(first=("reporting_month", "min"), last=("reporting_month", "max"),
                                    n=("loan_state", "size"), last_state=("loan_state", "last"), defaults=("loan_state", "sum"))
    assert list(rows.index) == ["100", "200", "300", "400"]
    # paid in full, term 24 from 2004-03: maturity 2006-03, rows 2004-03 .. 2006-02, no event
    assert (rows.loc["100", "first"], rows.loc["100", "last"], rows.loc["100", "n"]) == (
        pd.Timestamp("2004-03-01"), pd.Timestamp("2006-02-01"), 24)
    assert rows.loc["100", "defaults"] == 0
    # charged off 2005-07, before its maturity: DEFAULT in that month, the loan's last row
    assert (rows.loc["200", "last"], rows.loc["200", "last_state"], rows.loc["200", "n"]) == (pd.Timestamp("2005-07-01"), 4, 19)
    # charged off 2006-05, after its recorded 2005-01 maturity: the file cuts a charged-off loan's term, so
    # the charge-off counts wherever it falls (deciding by the term dropped most of 2009-10's defaults)
    assert (rows.loc["300", "last"], rows.loc["300", "last_state"], rows.loc["300", "n"]) == (pd.Timestamp("2006-05-01"), 4, 29)
    # charge-off after the panel's end: CURRENT to the end
    assert (rows.loc["400", "last"], rows.loc["400", "defaults"]) == (pd.Timestamp("2010-12-01"), 0)
    assert p["loan_state"].isin([0, 4]).all()
    np.testing.assert_array_equal(p.groupby("loan_id")["loan_age"].first().to_numpy(), 0.0)
    paid = p["loan_id"] == "100"  # a paid loan never outlives its term
    assert (p.loc[paid, "loan_age"] < 24).all()
    assert sba.skipped == {"status not P I F / CHGOFF": 1, "term under 12 months": 1, "disbursed outside the window": 1}


def test_features_and_the_harness_reads_the_panel(sba_file) -> None:
    sba = read_sba_loans(sba_file)
    f = sba.features.set_index("loan_id")
    assert list(f.columns) == [*SBA_FEATURES, "term_months"]
    np.testing.assert_allclose(f["log_amount"], np.log(60_000.0))
    np.testing.assert_allclose(f["sba_share"], 0.8)
    assert f.loc["200", "business"] == "new" and f.loc["100", "business"] == "existing"
    moves = build_moves(sba.panel, sba.features, panel_features=["loan_age"], tape_features=list(SBA_FEATURES))
    assert int((moves.to_state == 4).sum()) == 2 and len(moves) == len(sba.panel) - 4  # one move per row but each loan's last


def test_bad_input_is_named(sba_file, tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_sba_loans(tmp_path / "none.csv")
    with pytest.raises(ConfigError, match=r"end: expected a month 'YYYY-MM', got 'soon'"):
        read_sba_loans(sba_file, end="soon")
    with pytest.raises(ConfigError, match="first .* is after last"):
        read_sba_loans(sba_file, first="2007-01", last="2006-12")
    with pytest.raises(DataError, match="no loan disbursed 1990-01..1990-12"):
        read_sba_loans(sba_file, first="1990-01", last="1990-12")
    thin = tmp_path / "thin.csv"
    pd.read_csv(sba_file).drop(columns=["ChgOffDate"]).to_csv(thin, index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['ChgOffDate'\]"):
        read_sba_loans(thin)
    assert "ChgOffDate" in SBA_COLUMNS


def test_cli_writes_what_the_reader_reads(sba_file, tmp_path, run_cli, capsys) -> None:
    out = tmp_path / "sba"
    assert run_cli(["data", "sba", str(sba_file), "--out", str(out), "--end", "2009-06"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    want = read_sba_loans(sba_file, end="2009-06")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "panel.parquet"), want.panel)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "loans.parquet"), want.features)
    assert "4 loans disbursed 2002-01 .. 2006-12" in said and "2 charge-offs" in said
    assert "--split oot:2008-01" in said and "--panel-features" not in said
    assert run_cli(["data", "sba", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_models_all_leaves_out_the_trajectory_model_without_a_contract_tape(sba_file, capsys) -> None:
    """The features table serves --tape-features but not the trajectory model's contract features: with
    `--models all` the trajectory model failed after every other model had been fitted."""
    from creditsim.cli.evaluate import _all_contestants
    from creditsim.examples import example_path
    from creditsim.harness import CONTESTANT_NAMES

    features = read_sba_loans(sba_file).features
    linked = [m for m in CONTESTANT_NAMES if m != "trajectory"]
    assert _all_contestants(features, linked=True) == linked
    assert "trajectory left out: the tape is not a loan tape in the data contract" in capsys.readouterr().out
    assert _all_contestants(None) == [m for m in linked if m != "markov_link"]  # no macro, no link
    assert "markov_link left out: no macro frame or no credit link" in capsys.readouterr().out
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    assert _all_contestants(tape, linked=True) == list(CONTESTANT_NAMES)


def test_the_files_dates_and_edge_cases(tmp_path) -> None:
    """Two-digit years of the 1960s-70s stay there (a date parser puts '74' in 2074 today); a charge-off in
    the disbursement month counts at age 1; one before disbursement, and a loan number twice, are refused."""
    path = tmp_path / "sba.csv"
    path.write_text("\n".join([HEADER, _row("1", 60, "15-Mar-74", "CHGOFF", "20-Jun-76"),
                                _row("2", 24, "3/15/2004", "CHGOFF", "30-Mar-04")]) + "\n")
    sba = read_sba_loans(path, first="1960-01", last="2006-12", end="2010-12")
    rows = sba.panel.groupby("loan_id")["reporting_month"].agg(["min", "max"])
    assert (rows.loc["1", "min"], rows.loc["1", "max"]) == (pd.Timestamp("1974-03-01"), pd.Timestamp("1976-06-01"))
    assert (rows.loc["2", "min"], rows.loc["2", "max"]) == (pd.Timestamp("2004-03-01"), pd.Timestamp("2004-04-01"))
    before = _csv(tmp_path / "before.csv", _row("1", 60, "3/15/2004", "CHGOFF", "1-Jan-04"), _row("2", 60, "3/15/2004", "P I F"))
    assert read_sba_loans(before).skipped == {"charged off before disbursement": 1}
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    twice = _csv(tmp_path / "twice.csv", _row("7", 60, "3/15/2004", "P I F"), _row("7", 84, "4/15/2004", "P I F"))
    for bad, error in ((twice, r"LoanNr_ChkDgt repeats on rows \[0, 1\]"), (empty, "not a readable CSV")):
        with pytest.raises(DataError, match=error):
            read_sba_loans(bad)
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        read_sba_loans(tmp_path)
    with pytest.raises(ConfigError, match=r"end: expected a month 'YYYY-MM', got ''"):
        read_sba_loans(path, end="")
    with pytest.raises(ConfigError, match=r"end \(2001-06\) is before first"):
        read_sba_loans(path, end="2001-06")
