"""Deterministic sensitivity grids (creditsim.deal.sensitivity), monthly rate vectors in the level-pay
pool, and ``creditsim deal sensitivity``."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest
import torch

from creditsim.cli import main
from creditsim.deal.analytics import annual_to_monthly, level_pay_pool, parse_vector, tranche_outcomes
from creditsim.deal.config import load_deal
from creditsim.deal.sensitivity import MAX_POINTS, sensitivity_grid
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError
from creditsim.examples import example_path

EXAMPLE = str(example_path("example_clo.yaml"))


@pytest.fixture(scope="module")
def deal():
    return load_deal(EXAMPLE)


def test_vectors_parse_in_the_structurers_notation() -> None:
    v = parse_vector("0.02x12 0.06x12 0.03")
    assert v.shape == (25,) and (v[:12] == 0.02).all() and (v[12:24] == 0.06).all() and v[24] == 0.03
    np.testing.assert_array_equal(parse_vector("0.05"), [0.05])
    for bad, match in (("", "empty vector"), ("2%x12", "cannot read"), ("1.5", "decimal in"), ("0.1x0", "at least 1")):
        with pytest.raises(ConfigError, match=match):
            parse_vector(bad, "--cdr")


def test_a_constant_vector_is_the_constant_and_a_step_switches_the_monthly_default_rate() -> None:
    flat = level_pay_pool(1e6, 0.07, 48, cdr=0.04, cpr=0.1, severity=0.5, lag=3)
    np.testing.assert_array_equal(level_pay_pool(1e6, 0.07, 48, cdr=np.full((1, 48), 0.04), cpr=0.1, severity=0.5,
                                                 lag=3), flat)
    step = level_pay_pool(1e6, 0.07, 48, cdr=parse_vector("0.02x12 0.10")[None, :], cpr=0.1, severity=0.5, lag=3)[0]
    # month 13 defaults MDR(10 %) of the balance left after month 12; month 12 still MDR(2 %)
    assert step[12, 4] / step[11, 6] == pytest.approx(float(annual_to_monthly(0.10)), rel=1e-12)
    assert step[11, 4] / step[10, 6] == pytest.approx(float(annual_to_monthly(0.02)), rel=1e-12)
    np.testing.assert_array_equal(step[:12], level_pay_pool(1e6, 0.07, 48, cdr=0.02, cpr=0.1, severity=0.5, lag=3)[0, :12])
    with pytest.raises(ConfigError, match="same number of scenarios"):
        level_pay_pool(1e6, 0.07, 48, cdr=[0.01, 0.02], cpr=[0.1, 0.2, 0.3])


def test_each_grid_point_is_the_waterfall_run_on_its_pool(deal) -> None:
    grid = sensitivity_grid(deal, cdr=[0.0, 0.08], cpr=[0.15], severity=[0.4, "0.2x6 0.6"], lag=[0, 9])
    assert len(grid.table) == 2 * 1 * 2 * 2 * len(deal.tranches) and grid.settings["points"] == 8
    par = deal.initial_collateral
    pool = level_pay_pool(par, 0.08, 60, cdr=0.08, cpr=0.15, severity=parse_vector("0.2x6 0.6")[None, :], lag=9)
    with torch.no_grad():
        out = tranche_outcomes(run_waterfall(pool, deal, initial_balance=par, mode="hard"), deal, collateral_balance=par)
    row = grid.table[(grid.table.cdr == "0.08") & (grid.table.severity == "0.2x6 0.6") & (grid.table.lag == 9)]
    row = row.set_index("tranche")
    for name, o in out.items():
        assert row.loc[name, "principal_loss"] == float(o["losses"][0])
        assert row.loc[name, "irr"] == pytest.approx(float(o["irr"][0]), rel=1e-12, nan_ok=True)
    wide = grid.pivot("wal_years")
    assert list(wide.columns) == [t.name for t in deal.tranches] and wide.shape == (8, len(deal.tranches))


def test_losses_rise_with_the_default_rate_and_no_defaults_lose_nothing(deal) -> None:
    grid = sensitivity_grid(deal, cdr=[0.0, 0.03, 0.06, 0.12, 0.25, 0.5], cpr=[0.0, 0.2], severity=0.6, lag=6)
    wide = grid.pivot("principal_loss")
    debt = [t.name for t in deal.tranches if not t.equity]
    for cpr in ("0", "0.2"):
        by_cdr = wide.xs(cpr, level="cpr")[debt].to_numpy()
        assert (np.diff(by_cdr, axis=0) >= -1e-12).all(), by_cdr
        assert (by_cdr[0] == 0).all()
        assert by_cdr[-1].max() > 0.5  # a 50 % CDR at 60 % severity wipes out the junior debt


def test_bad_grids_are_refused_naming_the_axis(deal) -> None:
    with pytest.raises(ConfigError, match="cpr: cannot read"):
        sensitivity_grid(deal, cpr=["fast"])
    with pytest.raises(ConfigError, match="lag must be whole months in 0..1200"):
        sensitivity_grid(deal, lag=[-1])
    with pytest.raises(ConfigError, match=f"at most {MAX_POINTS:,}"):
        sensitivity_grid(deal, cdr=list(np.linspace(0, 1, 101)), cpr=list(np.linspace(0, 1, 101)))
    with pytest.raises(ConfigError, match="metric must be one of"):
        sensitivity_grid(deal, cdr=0.01, cpr=0.1).pivot("yield")


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_prints_the_grid_and_writes_csv_and_excel(tmp_path, capsys) -> None:
    code, out, err = _cli(["deal", "sensitivity", EXAMPLE, "--cdr", "0.02,0.02x12 0.2", "--cpr", "0.1",
                           "--lag", "6,12", "--csv", str(tmp_path / "g.csv"), "--excel", str(tmp_path / "g.xlsx")], capsys)
    assert code == 0, err
    assert "principal_loss by tranche" in out and "CDR 0.02x12 0.2 | CPR 0.1 | sev 0.4 | lag 12" in out
    frame = pd.read_csv(tmp_path / "g.csv")
    assert len(frame) == 4 * len(load_deal(EXAMPLE).tranches)
    book = openpyxl.load_workbook(tmp_path / "g.xlsx")
    assert {"grid", "principal_loss", "pv_loss", "wal_years", "irr"} <= set(book.sheetnames)


@pytest.mark.parametrize("args, match", [
    (["--cdr", "0.02,abc"], "--cdr: cannot read 'abc'"),
    (["--metric", "yield"], "--metric must be one of"),
    (["--lag", "six"], "--lag must be whole months"),
])
def test_cli_bad_options_are_one_line_errors(args, match, capsys) -> None:
    code, _, err = _cli(["deal", "sensitivity", EXAMPLE, *args], capsys)
    assert code == 2 and match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_review_cases_scalars_duplicates_one_horizon_and_long_vectors(deal) -> None:
    """Found by a reviewer: numpy and float scalars, None, duplicate points, lags of one grid on one
    horizon, and a vector spelling out a billion months."""
    grid = sensitivity_grid(deal, cdr=np.float32(0.02), cpr=[0.1, 0.1], severity=0.4, lag=6.0)
    assert grid.settings["points"] == 1 and len(grid.pivot()) == 1
    two = sensitivity_grid(deal, cdr=0.05, cpr=0.1, lag=[0, 24])
    assert two.settings["horizon"] == 60 + 24
    for bad, match in (({"cdr": None}, "cdr: expected a value"), ({"lag": None}, "lag must be whole months in 0..1200"),
                       ({"cdr": "0.02x1000000000"}, "more than 1200 months")):
        with pytest.raises(ConfigError, match=match):
            sensitivity_grid(deal, **bad)


def test_the_workbook_has_named_headers_and_the_settings(tmp_path, capsys) -> None:
    code, _, err = _cli(["deal", "sensitivity", EXAMPLE, "--cdr", "0,0.1", "--cpr", "0.1",
                         "--excel", str(tmp_path / "g.xlsx")], capsys)
    assert code == 0, err
    book = openpyxl.load_workbook(tmp_path / "g.xlsx")
    header = [c.value for c in book["principal_loss"][1]]
    assert header[:4] == ["cdr", "cpr", "severity", "lag"] and None not in header
    assert [c.value for c in book["grid"][1]][:5] == ["cdr", "cpr", "severity", "lag", "tranche"]
    settings = {r[0].value: r[1].value for r in book["settings"].iter_rows(min_row=2)}
    assert settings["term_months"] == 60 and settings["points"] == 2
