"""`creditsim ecl` on the bundled example tape: outputs, agreement with the library called directly, the
PD construction against closed forms, the movement table from a previous run, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from creditsim.examples import example_path

TAPE = example_path("loans_example.parquet")
SCEN = "fed:2026:baseline,fed:2026:severely_adverse"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs through typer's CliRunner: 2025-06-30 on the 2025 paths, 2025-12-31 on the 2026 paths with
    the first as --previous and two of the loans that left the book written off."""
    from creditsim.cli import app

    root = tmp_path_factory.mktemp("ecl")
    runner = CliRunner()
    first = runner.invoke(app, ["ecl", "--tape", str(TAPE), "--as-of", "2025-06-30", "--scenarios",
                                "fed:2025:baseline,fed:2025:severely_adverse", "--weights", "0.7,0.3",
                                "--out", str(root / "june")])
    assert first.exit_code == 0, first.output
    june = pd.read_parquet(root / "june" / "ecl_loans.parquet")
    tape = pd.read_parquet(TAPE)
    ended = tape.loc[pd.to_datetime(tape["maturity_date"]) <= "2025-12-31", "loan_id"].astype(str)
    off = sorted(set(june["loan_id"]) & set(ended))[:2]
    (root / "off.txt").write_text("\n".join(off) + "\n")
    second = runner.invoke(app, ["ecl", "--tape", str(TAPE), "--as-of", "2025-12-31", "--scenarios", SCEN,
                                 "--weights", "0.7,0.3", "--previous", str(root / "june"),
                                 "--written-off", str(root / "off.txt"), "--out", str(root / "dec")])
    assert second.exit_code == 0, second.output
    return {"june": root / "june", "dec": root / "dec", "off": off, "stdout": second.output}


def test_outputs_exist_and_the_summary_is_printed(runs) -> None:
    names = {p.name for p in runs["dec"].iterdir()}
    assert names == {"ecl_loans.parquet", "ecl_summary.csv", "ecl_exposure.csv", "ecl_scenarios.csv",
                     "ecl_movement.csv", "ecl_report.xlsx", "meta.json"}
    assert "IFRS 9 allowance at 2025-12-31" in runs["stdout"]
    for word in ("stage 1", "fed:2026:severely_adverse", "probability-weighted", "non-linearity gap", "coverage"):
        assert word in runs["stdout"]
    assert set(pd.ExcelFile(runs["dec"] / "ecl_report.xlsx").sheet_names) == {"summary", "exposure", "scenarios", "movement"}
    import json

    # the 2026 paths cover 39 months after 2025-12-31; the 2025 ones 33 after 2025-06-30, which caps the
    # reasonable-and-supportable horizon (36 by default) for every loan
    dec, june = (json.loads((runs[k] / "meta.json").read_text()) for k in ("dec", "june"))
    assert (dec["months_of_forecast"], dec["settings"]["rs_horizon_months"]) == (39, 36)
    assert (june["months_of_forecast"], june["settings"]["rs_horizon_months"]) == (33, 33)


def test_numbers_equal_the_library_called_directly(runs) -> None:
    """Rated loans: the ECL engine on the rated subset with a ScenarioMatrixPD built here from the Fed tables
    and the bundled Z-macro link gives each loan's allowance; all loans: tape_ecl_inputs + expected_credit_loss
    gives the per-loan file; the tables add up."""
    from creditsim.cli.ecl import tape_ecl_inputs
    from creditsim.datasets import load_fed_scenarios
    from creditsim.ifrs9 import ScenarioMatrixPD, expected_credit_loss
    from creditsim.ratings.lifetime import ZMacroLink
    from creditsim.states import MACRO_VARS

    loans = pd.read_parquet(runs["dec"] / "ecl_loans.parquet")
    run = tape_ecl_inputs(pd.read_parquet(TAPE), SCEN, "2025-12-31", "0.7,0.3")
    res = expected_credit_loss(run.loans, run.pd_provider, run.lgd_provider, run.scenarios, run.weights, run.settings)
    np.testing.assert_allclose(loans["ecl"], res.ecl, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(loans["stage"], res.stage)
    # the rated loans, with the PD provider rebuilt here from the published paths (2026 tables start in 2026-01)
    macro = np.stack([load_fed_scenarios(2026, s, monthly=True)[list(MACRO_VARS)].to_numpy()
                      for s in ("baseline", "severely_adverse")])
    rated = np.flatnonzero(run.loans.grade >= 0)
    assert len(rated) > 100
    direct = expected_credit_loss(run.loans.subset(rated), ScenarioMatrixPD.from_macro(ZMacroLink.from_bundled(), macro),
                                  run.lgd_provider, run.scenarios, [0.7, 0.3], run.settings)
    np.testing.assert_allclose(loans["ecl"].to_numpy()[rated], direct.ecl, rtol=1e-12)
    # summary, scenario table
    summary = pd.read_csv(runs["dec"] / "ecl_summary.csv", index_col=0)
    assert summary.loc["total", "ecl"] == pytest.approx(loans["ecl"].sum(), rel=1e-12)
    assert summary.loc["total", "loans"] == len(loans)
    np.testing.assert_allclose(loans["gross"], run.loans.balance)
    for s in (1, 2, 3):
        on = loans["stage"] == s
        assert summary.loc[f"stage {s}", "ead"] == pytest.approx(loans.loc[on, "ead"].sum(), rel=1e-12)
        assert summary.loc[f"stage {s}", "gross"] == pytest.approx(loans.loc[on, "gross"].sum(), rel=1e-12)
    assert summary.loc["total", "coverage"] == pytest.approx(loans["ecl"].sum() / loans["gross"].sum(), rel=1e-12)
    scen = pd.read_csv(runs["dec"] / "ecl_scenarios.csv", index_col=0)
    base, severe = loans["ecl_fed:2026:baseline"].sum(), loans["ecl_fed:2026:severely_adverse"].sum()
    assert scen.loc["fed:2026:baseline", "ecl_100pct"] == pytest.approx(base, rel=1e-12)
    assert scen.loc["probability-weighted", "ecl_100pct"] == pytest.approx(0.7 * base + 0.3 * severe, rel=1e-9)
    assert scen.loc["non-linearity gap", "ecl_100pct"] == pytest.approx(0.3 * (severe - base), rel=1e-9)
    assert severe > base > 0
    exposure = pd.read_csv(runs["dec"] / "ecl_exposure.csv", index_col=0)
    assert exposure.loc["total", "allowance total"] == pytest.approx(loans["ecl"].sum(), rel=1e-12)
    assert exposure.loc["BBB", "gross total"] == pytest.approx(loans.loc[loans["grade"] == "BBB", "gross"].sum(), rel=1e-12)


def test_movement_from_the_previous_run(runs) -> None:
    """Opening = the June file by stage, closing = December's; write-offs and derecognitions are minus the
    June allowance of the loans gone; the unwind is the June allowance accreted 6 months at the EIR."""
    june = pd.read_parquet(runs["june"] / "ecl_loans.parquet").set_index("loan_id")
    dec = pd.read_parquet(runs["dec"] / "ecl_loans.parquet").set_index("loan_id")
    m = pd.read_csv(runs["dec"] / "ecl_movement.csv", index_col=0)
    cols = ["stage 1", "stage 2", "stage 3"]
    opening = [june.loc[june["stage"] == s, "ecl"].sum() for s in (1, 2, 3)]
    np.testing.assert_allclose(m.loc["opening", cols], opening, rtol=1e-12)
    np.testing.assert_allclose(m.loc["closing", cols], [dec.loc[dec["stage"] == s, "ecl"].sum() for s in (1, 2, 3)], rtol=1e-12)
    np.testing.assert_allclose(m.loc["opening", cols] + m.drop(index=["opening", "closing"])[cols].sum(),
                               m.loc["closing", cols], rtol=0, atol=1e-6)
    off = runs["off"]
    assert len(off) == 2
    assert m.loc["write-offs", "total"] == pytest.approx(-june.loc[off, "ecl"].sum(), rel=1e-12)
    gone = june.index.difference(dec.index).difference(off)
    assert m.loc["derecognitions", "total"] == pytest.approx(-june.loc[gone, "ecl"].sum(), rel=1e-12)
    both = june.index.intersection(dec.index)
    assert m.loc["new originations", "total"] == pytest.approx(dec.loc[dec.index.difference(june.index), "ecl"].sum())
    # unwind: 6 months at each loan's EIR (fixed: the effective annual rate of the monthly coupon)
    from creditsim.cli.ecl import tape_ecl_inputs

    run = tape_ecl_inputs(pd.read_parquet(TAPE), SCEN, "2025-12-31", "0.7,0.3")
    eir = pd.Series(run.loans.discount_eir(), index=run.loans.loan_id.astype(str))
    expected = (june.loc[both, "ecl"] * ((1.0 + eir.loc[both]) ** 0.5 - 1.0)).sum()
    assert m.loc["unwind of discount", "total"] == pytest.approx(expected, rel=1e-10)


def test_chain_hazard_closed_forms() -> None:
    """A pure roll chain (CURRENT -> DPD30 w.p. a, then DPD30 -> 60 -> 90 -> DEFAULT surely) has cause-specific
    hazard 0, 0, 0, then a every month; a one-step chain with prepayment q has hazard h despite the
    competing exit. One-year PDs compound the months; a partial last year is annualised."""
    from creditsim.ifrs9.pd import annual_pds, chain_default_hazard

    a, h, q = 0.02, 0.01, 0.05
    roll = np.zeros((7, 7))
    roll[0, 0], roll[0, 1], roll[1, 2], roll[2, 3], roll[3, 4] = 1 - a, a, 1, 1, 1
    roll[4, 4] = roll[5, 5] = roll[6, 6] = 1
    np.testing.assert_allclose(chain_default_hazard(np.broadcast_to(roll, (10, 7, 7)), 0), [0, 0, 0] + [a] * 7, atol=1e-15)
    np.testing.assert_allclose(chain_default_hazard(np.broadcast_to(roll, (3, 7, 7)), 3), [1, 0, 0])
    one = np.eye(7)
    one[0] = 0
    one[0, 0], one[0, 4], one[0, 5] = 1 - h - q, h, q
    np.testing.assert_allclose(chain_default_hazard(np.broadcast_to(one, (30, 7, 7)), 0), h, rtol=1e-12)
    np.testing.assert_allclose(annual_pds(np.full(30, h)), 1 - (1 - h) ** 12, rtol=1e-12)


@pytest.mark.parametrize("args, message", [
    (["--as-of", "2025-13-31"], "--as-of"),
    (["--as-of", "31/12/2025"], "YYYY-MM-DD"),
    (["--as-of", "2025-12-31", "--scenarios", "fed:2025:adverse"], "no bundled supervisory path 'adverse'"),
    (["--as-of", "2025-12-31", "--scenarios", "moon:baseline"], "unknown scenario"),
    (["--as-of", "2025-12-31", "--scenarios", "vae:baseline"], "named forecast paths"),
    (["--as-of", "2020-12-31"], "starts in 2026-01"),
    (["--as-of", "2025-12-31", "--weights", "0.5,0.6"], "summing to 1"),
    (["--as-of", "2025-12-31", "--weights", "1"], "1 weights for 2 scenarios"),
    (["--as-of", "2025-12-31", "--previous", "no/such/run"], "not a creditsim ecl result directory"),
    (["--as-of", "2025-12-31", "--written-off", __file__], "--written-off needs --previous"),
])
def test_bad_inputs_exit_2_with_one_line(args, message, tmp_path, run_cli, one_line_error) -> None:
    assert run_cli(["ecl", "--tape", str(TAPE), "--out", str(tmp_path / "o"), *args]) == 2
    assert message in one_line_error()
    assert not (tmp_path / "o").exists()


def test_missing_column_and_bad_settings(tmp_path, run_cli, one_line_error) -> None:
    tape = pd.read_parquet(TAPE).head(50).drop(columns="maturity_date")
    tape.to_parquet(tmp_path / "t.parquet")
    assert run_cli(["ecl", "--tape", str(tmp_path / "t.parquet"), "--as-of", "2025-12-31", "--out", str(tmp_path / "o")]) == 2
    assert "maturity_date" in one_line_error()
    (tmp_path / "s.yaml").write_text("staging: weighted\nsicr_relativ: 2.0\n")
    assert run_cli(["ecl", "--tape", str(TAPE), "--as-of", "2025-12-31", "--settings", str(tmp_path / "s.yaml"),
                    "--out", str(tmp_path / "o")]) == 2
    assert "sicr_relativ" in one_line_error()


def test_chain_hazard_rebuilds_the_models_cumulative_default_curve() -> None:
    """On the shipped delinquency chain (TTC, every asset class, from CURRENT and DPD60): the cumulative
    incidence sum_k P(alive at k-1) h(k), with P(alive) from matrix powers, equals the model's own
    pd_curve (P^t)[start, DEFAULT]."""
    from creditsim.ifrs9.pd import chain_default_hazard
    from creditsim.transitions.markov import MarkovTransitionModel

    model = MarkovTransitionModel.default()
    ttc = model.scenario_matrices(np.broadcast_to(model.macro_mean_, (1, 1, 9)))[0, :, 0]  # (C, 7, 7)
    for start in (0, 2):
        curve = model.pd_curve(60, start)  # (C, 60)
        for c in range(ttc.shape[0]):
            h = chain_default_hazard(np.broadcast_to(ttc[c], (60, 7, 7)), start)
            alive = np.array([np.linalg.matrix_power(ttc[c], k)[start, :4].sum() for k in range(60)])
            np.testing.assert_allclose(np.cumsum(alive * h), curve[c], rtol=1e-10, atol=1e-15)


def test_delinquent_loans_and_settings_file(tmp_path) -> None:
    """A tape with loan states: DPD90 loans are Stage 3 with allowance LGD x EAD (PD = 1), DPD30 / DPD60
    loans at least Stage 2 (30 dpd backstop); a settings YAML reaches the engine."""
    from creditsim.cli.ecl import _read_settings, run_ecl

    tape = pd.read_parquet(TAPE)
    tape = tape[pd.to_datetime(tape["maturity_date"]) > "2026-06-30"].head(40).copy()
    tape["loan_state"] = np.r_[[0] * 30, [1] * 4, [2] * 3, [3] * 3]
    (tmp_path / "s.yaml").write_text("period: quarter\nsicr_relative: 3.0\n")
    settings = _read_settings(tmp_path / "s.yaml")
    assert settings.period == "quarter" and settings.sicr_relative == 3.0
    run = run_ecl(tape, "fed:2026:baseline", "2025-12-31", settings=settings)
    res = run.result
    np.testing.assert_array_equal(res.stage[-3:], 3)
    assert (res.stage[30:37] >= 2).all()
    np.testing.assert_allclose(res.ecl[-3:], run.lgd_provider.value[-3:] * res.ead[-3:], rtol=1e-12)
    assert res.settings.period == "quarter"


def test_previous_settings_give_the_model_change_line(tmp_path) -> None:
    """The closing book measured under the previous date's settings: the model-change line is the
    difference of the two closing allowances, and the movement still reconciles."""
    from creditsim.cli.ecl import _read_settings, run_ecl

    tape = pd.read_parquet(TAPE).head(120)
    first = run_ecl(tape, "fed:2025:baseline", "2025-06-30")
    prev = tmp_path / "june"
    from creditsim.cli.ecl import write_ecl_outputs

    write_ecl_outputs(first, prev)
    (tmp_path / "old.yaml").write_text("sicr_relative: 1.0\nsicr_absolute: null\n")  # any PD rise was Stage 2
    old = _read_settings(tmp_path / "old.yaml")
    new = run_ecl(tape, "fed:2026:baseline", "2025-12-31", previous=prev, previous_settings=old)
    same = run_ecl(tape, "fed:2026:baseline", "2025-12-31", previous=prev, previous_settings=_read_settings(None))
    m, m_same = new.report.tables()["movement"], same.report.tables()["movement"]
    change = [r for r in m.index if "model" in r.lower()]
    assert change, list(m.index)
    assert m_same.loc[change[0], "total"] == pytest.approx(0.0, abs=1e-6)  # same settings: no model change
    # a looser SICR test before: more lifetime (Stage 2) allowance under the old model, so the change releases
    old_closing = run_ecl(tape, "fed:2026:baseline", "2025-12-31", settings=old).result.ecl.sum()
    assert m.loc[change[0], "total"] == pytest.approx(new.result.ecl.sum() - old_closing, rel=1e-9)
    assert m.loc[change[0], "total"] < 0
    cols = ["stage 1", "stage 2", "stage 3"]
    np.testing.assert_allclose(m.loc["opening", cols] + m.drop(index=["opening", "closing"])[cols].sum(),
                               m.loc["closing", cols], rtol=0, atol=1e-6)
    with pytest.raises(Exception, match="--previous-settings needs --previous"):
        run_ecl(tape, "fed:2026:baseline", "2025-12-31", previous_settings=old)


def test_matured_loans_are_left_out_with_a_warning_naming_the_count() -> None:
    """A loan that matured by --as-of carries no ECL; the run says how many it left out (helper-95's review:
    137 of 200 loans came back without a word)."""
    from creditsim.cli.ecl import tape_ecl_inputs

    tape = pd.read_parquet(TAPE)
    with pytest.warns(UserWarning, match=r"^\d+ of 2000 loans matured on or before --as-of 2025-12-31") as caught:
        run = tape_ecl_inputs(tape, SCEN, "2025-12-31", "0.7,0.3")
    left_out = int(str(caught[0].message).split()[0])
    assert left_out > 0 and left_out + len(run.loans.balance) == len(tape)
