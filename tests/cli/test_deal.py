"""``creditsim deal check`` / ``creditsim deal run``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import openpyxl
import pytest

from creditsim.cli import main
from creditsim.examples import example_path
from creditsim.deal.config import WaterfallConfig, dump_deal, load_deal

EXAMPLE = str(example_path("example_clo.yaml"))


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_deal_check_prints_the_capital_structure(capsys):
    code, out, _ = run_cli(["deal", "check", EXAMPLE], capsys)
    assert code == 0
    assert "Example CLO 1" in out and "deal OK" in out
    assert "70,000,000" in out and "0.3000" in out  # class A balance and attachment
    assert "Equity" in out


def test_deal_check_reports_bad_field_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tranches:\n  - {name: A, balance: -1, coupon: 0.05}\n  - {name: E, balance: 1, equity: true}\n")
    code, _, err = run_cli(["deal", "check", str(bad)], capsys)
    assert code == 2
    assert "tranches[0] (A).balance must be > 0" in err
    assert "Traceback" not in err


def test_deal_check_rejects_collateral_in_other_units_and_warns_when_under_collateralised(tmp_path, capsys):
    cfg = load_deal(EXAMPLE).to_dict()
    debt = sum(t["balance"] for t in cfg["tranches"][:-1])
    text = Path(EXAMPLE).read_text()
    assert "collateral_balance: 100_000_000" in text
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(text.replace("collateral_balance: 100_000_000", "collateral_balance: 10"))
    code, out, err = run_cli(["deal", "check", str(tiny)], capsys)
    assert code == 2 and "collateral_balance 10 is" in err and "debt notes" in err and len(err.strip().splitlines()) == 1
    under = dump_deal(WaterfallConfig.from_dict({**cfg, "collateral_balance": 0.9 * debt}), tmp_path / "under.yaml")
    code, out, _ = run_cli(["deal", "check", str(under)], capsys)
    assert code == 0 and "warning: collateral par" in out and "under-collateralised" in out and "1 warning" in out


def test_deal_run_prints_periods_and_tranche_metrics(capsys):
    code, out, _ = run_cli(["deal", "run", EXAMPLE, "--cdr", "0.02", "--cpr", "0.10", "--severity", "0.4",
                            "--lag", "6", "--rows", "3", "--no-breakeven"], capsys)
    assert code == 0
    assert "periods (first 3 of 66 months)" in out
    assert "tranche metrics" in out
    assert "max cash conservation error" in out
    err = float(out.split("max cash conservation error")[1].split()[0])
    assert err < 1e-6  # currency units on a 100m deal


def test_deal_run_writes_escaped_excel_atomically(tmp_path, capsys):
    old_umask = os.umask(0o022)
    try:
        _excel_run_checks(tmp_path, capsys)
    finally:
        os.umask(old_umask)


def _excel_run_checks(tmp_path, capsys):
    cfg = load_deal(EXAMPLE)
    cfg.name = "=HYPERLINK(\"http://x\")"
    deal_file = dump_deal(cfg, tmp_path / "deal.yaml")
    out_dir = tmp_path / "out"
    xlsx = out_dir / "run.xlsx"
    code, out, _ = run_cli(["deal", "run", str(deal_file), "--cdr", "0.03", "--term", "36", "--excel", str(xlsx)], capsys)
    assert code == 0 and "wrote" in out
    assert sorted(os.listdir(out_dir)) == ["run.xlsx"]  # no temporary file left
    assert stat.S_IMODE(xlsx.stat().st_mode) == 0o644  # umask permissions, not mkstemp's 0600
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["periods", "tranches", "deal", "scenario"]
    periods = wb["periods"]
    assert periods.max_row == 36 + 6 + 1  # term + lag months and a header
    names = [c.value for c in wb["deal"]["A"]][1:]
    assert all(n == "'=HYPERLINK(\"http://x\")" for n in names)
    tranche_rows = {row[0].value: row for row in wb["tranches"].iter_rows(min_row=2)}
    assert set(tranche_rows) == {"A", "B", "C", "Equity"}
    header = [c.value for c in wb["tranches"][1]]
    be = header.index("breakeven_cdr")
    assert 0 < tranche_rows["A"][be].value <= 1
    one_pct = header.index("cdr_1pct_loss")
    assert tranche_rows["A"][one_pct].value > tranche_rows["A"][be].value


@pytest.mark.parametrize("args, message", [
    (["--cdr", "1.5"], "cdr must be decimals in [0, 1]"),
    (["--lag", "-2"], "lag must be a whole number"),
    (["--excel", "out.csv"], "--excel must name a .xlsx file"),
])
def test_deal_run_rejects_bad_options(args, message, capsys, tmp_path):
    args = [a if a != "out.csv" else str(tmp_path / "out.csv") for a in args]
    code, _, err = run_cli(["deal", "run", EXAMPLE, "--no-breakeven", *args], capsys)
    assert code == 2
    assert message in err.replace("\n", " ")


def test_deal_run_missing_file(capsys, tmp_path):
    code, _, err = run_cli(["deal", "run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "deal file not found" in err


ALL_FEATURES = str(Path(__file__).with_name("clo_all_features.yaml"))


def test_deal_check_lists_every_switched_on_feature_and_run_conserves_cash(capsys):
    code, out, _ = run_cli(["deal", "check", ALL_FEATURES], capsys)
    assert code == 0 and "deal OK" in out
    for phrase in ("payment dates quarterly", "flat base rate 4.2500%", "pari passu: A-1/A-2",
                   "senior up to 300,000 a year", "incentive fee 20%", "senior OC below 1.0250",
                   "acceleration", "earns interest at the coupon", "optional call from month 24",
                   "clean-up call below 10%", "spread duration 3 years", "CCC excess above 7.5%",
                   "floating classes refinanced from month 24", "interest reserve 1,000,000"):
        assert phrase in out, phrase
    code, out, _ = run_cli(["deal", "run", ALL_FEATURES, "--cdr", "0.03", "--wac", "0.085", "--term", "84",
                            "--rows", "3", "--no-breakeven"], capsys)
    assert code == 0
    err = float(out.split("max cash conservation error")[1].split()[0])
    assert err < 1e-6 * 400  # currency units on a 400m deal


def test_deal_run_takes_a_base_rate_and_a_spread_path(tmp_path, capsys):
    low = tmp_path / "low.xlsx"
    high = tmp_path / "high.xlsx"
    common = ["deal", "run", str(example_path("bsl_clo.yaml")), "--rows", "0", "--no-breakeven", "--start-month",
              "2025-10"]
    assert run_cli([*common, "--base-rate", "0.01", "--excel", str(low)], capsys)[0] == 0
    code, out, _ = run_cli([*common, "--base-rate", "0.06", "--hy-spread", "0.09", "--excel", str(high)], capsys)
    assert code == 0
    import pandas as pd

    a_low = pd.read_excel(low, sheet_name="periods")["AAA_interest"].iloc[2]
    a_high = pd.read_excel(high, sheet_name="periods")["AAA_interest"].iloc[2]
    # the first quarter (Oct-Dec 2025, 92 days) at base + 1.30 %, ACT/360
    assert a_low == pytest.approx(310e6 * (0.01 + 0.013) * 92 / 360, rel=1e-9)
    assert a_high == pytest.approx(310e6 * (0.06 + 0.013) * 92 / 360, rel=1e-9)


def test_deal_check_and_run_show_the_reinvestment_criteria(tmp_path, capsys):
    cfg = load_deal(EXAMPLE).to_dict()
    criteria = {"min_was": 0.035, "reinvestment_spread": 0.03, "max_warf": 3000.0, "reinvestment_warf": 3300.0,
                "max_wal": 5.0, "reinvestment_wal": 6.0, "max_wal_floor": 3.0}
    path = dump_deal(WaterfallConfig.from_dict({**cfg, **criteria}), tmp_path / "criteria.yaml")
    code, out, _ = run_cli(["deal", "check", str(path)], capsys)
    assert code == 0 and "deal OK" in out
    for phrase in ("WAS at least 3.50%, purchases at 3.00%", "WARF at most 3,000, purchases at 3,300",
                   "WAL at most 5 years, stepping down a year a year to 3, purchases at 6 years",
                   "keep from buying pay the notes"):
        assert phrase in out, phrase
    code, out, _ = run_cli(["deal", "run", str(path), "--rows", "30", "--no-breakeven", "--pool-warf", "2900"], capsys)
    assert code == 0
    assert "blocked" in out and "WARF" in out and "WAS" in out and "WAL" in out
    err = float(out.split("max cash conservation error")[1].split()[0])
    assert err < 1e-6 * 100
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(path).read_text().replace("max_warf: 3000.0", "max_warf: 0.0"))
    code, _, err = run_cli(["deal", "check", str(bad)], capsys)
    assert code == 2 and "max_warf must be a Moody's rating factor (B2 = 2720) in [1, 10000], got 0.0" in err
    assert len(err.strip().splitlines()) == 1
