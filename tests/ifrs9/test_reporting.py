"""IFRS 7 movement table: hand-built books with known lines, exact reconciliation on random books."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import DataError
from creditsim.ifrs9.reporting import allowance_movement, disclosures_to_excel, exposure_by_grade_and_stage


def _book(rows):
    return pd.DataFrame(rows, columns=["loan_id", "stage", "ecl", "ead"])


OPENING = _book([("a", 1, 10.0, 1000), ("b", 1, 5.0, 500), ("c", 2, 40.0, 800), ("d", 3, 300.0, 600),
                 ("e", 2, 30.0, 700)])
CLOSING = _book([("a", 2, 60.0, 950), ("b", 1, 4.0, 450), ("e", 3, 250.0, 690), ("f", 1, 7.0, 900)])


def test_each_line_by_hand() -> None:
    """a: 1 -> 2 (10 -> 60); b stays 1 (5 -> 4); c repaid; d written off; e: 2 -> 3 (30 -> 250); f new."""
    m = allowance_movement(OPENING, CLOSING, written_off=["d"], unwind=pd.Series({"a": 1.0, "e": 2.0}))
    np.testing.assert_allclose(m.loc["opening", ["stage 1", "stage 2", "stage 3"]], [15, 70, 300])
    np.testing.assert_allclose(m.loc["transfer to stage 2", ["stage 1", "stage 2", "stage 3"]], [-10, 10, 0])
    np.testing.assert_allclose(m.loc["transfer to stage 3", ["stage 1", "stage 2", "stage 3"]], [0, -30, 30])
    np.testing.assert_allclose(m.loc["new originations", "stage 1"], 7)
    np.testing.assert_allclose(m.loc["derecognitions", "stage 2"], -40)
    np.testing.assert_allclose(m.loc["write-offs", "stage 3"], -300)
    np.testing.assert_allclose(m.loc["unwind of discount", ["stage 2", "stage 3"]], [1, 2])
    # remeasurement: a 60 - 10 - 1 (stage 2); b 4 - 5 (stage 1); e 250 - 30 - 2 (stage 3)
    np.testing.assert_allclose(m.loc["remeasurement", ["stage 1", "stage 2", "stage 3"]], [-1, 49, 218])
    np.testing.assert_allclose(m.loc["closing", ["stage 1", "stage 2", "stage 3"]], [11, 60, 250])
    assert m.loc["transfer to stage 2", "total"] == 0.0


def test_model_change_line() -> None:
    old = CLOSING.assign(ecl=CLOSING["ecl"] - np.array([5.0, 0.0, 20.0, 0.0]))
    m = allowance_movement(OPENING, CLOSING, written_off=["d"], closing_old_model=old)
    np.testing.assert_allclose(m.loc["model changes", ["stage 1", "stage 2", "stage 3"]], [0, 5, 20])
    np.testing.assert_allclose(m.loc["remeasurement", ["stage 2", "stage 3"]], [45, 200])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_every_column_reconciles(seed) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(40)
    o = pd.DataFrame({"loan_id": ids, "stage": rng.integers(1, 4, 40), "ecl": rng.uniform(0, 100, 40)})
    keep = rng.random(40) < 0.7
    c = pd.DataFrame({"loan_id": np.r_[ids[keep], 100 + np.arange(5)], "stage": rng.integers(1, 4, keep.sum() + 5),
                      "ecl": rng.uniform(0, 100, keep.sum() + 5)})
    gone = ids[~keep]
    off = gone[: len(gone) // 2]
    m = allowance_movement(o, c, written_off=off, unwind=pd.Series(rng.uniform(0, 1, 40), index=ids))
    movements = m.drop(index=["opening", "closing"]).sum()
    np.testing.assert_allclose(m.loc["opening"] + movements, m.loc["closing"], rtol=0, atol=1e-9)


def test_exposure_table_and_excel(tmp_path) -> None:
    t = exposure_by_grade_and_stage(CLOSING, ["A", "B", "B", "A"])
    assert t.loc["A", ("gross", 2)] == 950 and t.loc["B", ("allowance", 3)] == 250
    assert t.loc["A", ("coverage", 2)] == pytest.approx(60 / 950)
    path = disclosures_to_excel(tmp_path / "ifrs7.xlsx", movement=allowance_movement(OPENING, CLOSING, written_off=["d"]),
                                exposure=t.droplevel(0, axis=1).T.reset_index(drop=True))
    assert set(pd.ExcelFile(path).sheet_names) == {"movement", "exposure"}


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="still in the closing book"):
        allowance_movement(OPENING, CLOSING, written_off=["a"])
    with pytest.raises(DataError, match="missing column"):
        allowance_movement(OPENING.drop(columns="stage"), CLOSING)
    with pytest.raises(DataError, match="stage must be"):
        allowance_movement(OPENING.assign(stage=4), CLOSING)


def test_scenario_table_and_a_real_run_reconciles() -> None:
    """On a real ECL run: 100 %-weight ECLs per scenario, the weighted ECL and the gap; the movement
    table between the run and a remeasured copy reconciles and books the difference as remeasurement."""
    from creditsim.datasets.ratings import load_sp_ratings
    from creditsim.ifrs9 import EclLoans, FlatLGD, ScenarioMatrixPD, expected_credit_loss
    from creditsim.ifrs9.reporting import scenario_table

    rng = np.random.default_rng(3)
    n = 30
    grade = rng.integers(1, 7, n)
    loans = EclLoans(balance=rng.uniform(1e4, 5e5, n), annual_rate=rng.uniform(0.02, 0.09, n),
                     remaining_months=rng.integers(12, 120, n), grade=grade, origination_grade=grade,
                     loan_id=np.arange(n))
    z = np.array([[0.5] * 5, [0.0] * 5, [-1.5] * 5])
    res = expected_credit_loss(loans, ScenarioMatrixPD.from_z_paths(load_sp_ratings().matrix_8x8, z, 0.06), FlatLGD(0.4),
                               scenarios=["up", "base", "down"], weights=[0.3, 0.4, 0.3])
    t = scenario_table(res, reference=1)
    assert t.loc["down", "ecl_100pct"] > t.loc["base", "ecl_100pct"] > t.loc["up", "ecl_100pct"]
    assert t.loc["probability-weighted", "ecl_100pct"] == pytest.approx(res.total)
    assert t.loc["non-linearity gap", "ecl_100pct"] == pytest.approx(res.total - t.loc["base", "ecl_100pct"])
    later = res.to_frame().assign(ecl=lambda f: f["ecl"] * 1.1)
    m = allowance_movement(res, later)
    assert m.loc["remeasurement", "total"] == pytest.approx(0.1 * res.total)
    np.testing.assert_allclose(m.loc["opening"] + m.drop(index=["opening", "closing"]).sum(), m.loc["closing"], atol=1e-9)


def test_one_loan_moving_from_stage_1_to_2() -> None:
    """One loan, allowance 10 (12-month, Stage 1) -> 60 (lifetime, Stage 2): the transfer line carries the
    opening 10 across, the remeasurement the other 50 in Stage 2, nothing else moves."""
    m = allowance_movement(_book([("x", 1, 10.0, 100)]), _book([("x", 2, 60.0, 95)]))
    np.testing.assert_array_equal(m.loc["transfer to stage 2", ["stage 1", "stage 2", "stage 3"]], [-10, 10, 0])
    np.testing.assert_array_equal(m.loc["remeasurement", ["stage 1", "stage 2", "stage 3"]], [0, 50, 0])
    others = m.drop(index=["opening", "closing", "transfer to stage 2", "remeasurement"])
    assert (others.to_numpy() == 0).all() and not np.signbit(others.to_numpy()).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.floats(0, 1e6), st.floats(0, 1e6)),
                min_size=1, max_size=30))
def test_transfer_rows_match_a_loan_by_loan_count(rows) -> None:
    """Each transfer row: + the opening allowance of the loans arriving in that stage from another, - (in
    their old stage) the same amounts; a loan that keeps its stage moves nothing."""
    o = pd.DataFrame({"loan_id": range(len(rows)), "stage": [r[0] for r in rows], "ecl": [r[2] for r in rows]})
    c = pd.DataFrame({"loan_id": range(len(rows)), "stage": [r[1] for r in rows], "ecl": [r[3] for r in rows]})
    m = allowance_movement(o, c)
    for dest in (1, 2, 3):
        want = np.zeros(3)
        for so, sc, eo, _ in rows:
            if sc == dest and so != dest:
                want[dest - 1] += eo
                want[so - 1] -= eo
        np.testing.assert_allclose(m.loc[f"transfer to stage {dest}", ["stage 1", "stage 2", "stage 3"]], want,
                                   rtol=1e-12, atol=1e-9)


def _small_result():
    from creditsim.datasets.ratings import load_sp_ratings
    from creditsim.ifrs9 import EclLoans, FlatLGD, ScenarioMatrixPD, expected_credit_loss

    rng = np.random.default_rng(5)
    n = 25
    grade = rng.integers(2, 7, n)
    loans = EclLoans(balance=rng.uniform(1e4, 2e5, n), annual_rate=0.05, remaining_months=rng.integers(12, 96, n),
                     grade=grade, origination_grade=np.maximum(grade - 3 * (rng.random(n) < 0.3), 0),
                     days_past_due=np.where(rng.random(n) < 0.1, 120, 0), loan_id=[f"L{i}" for i in range(n)])
    z = np.array([[0.3] * 4, [-1.2] * 4])
    return expected_credit_loss(loans, ScenarioMatrixPD.from_z_paths(load_sp_ratings().matrix_8x8, z, 0.06),
                                FlatLGD(0.45), scenarios=["base", "down"], weights=[0.6, 0.4]), grade


def test_stage_summary_and_report_tables() -> None:
    from creditsim.ifrs9.reporting import build_report, stage_summary

    res, grade = _small_result()
    s = stage_summary(res)
    assert list(s.index) == ["stage 1", "stage 2", "stage 3", "total"]
    assert s.loc["total", "loans"] == 25 and s.loc["total", "ecl"] == pytest.approx(res.total, rel=1e-12)
    for k in (1, 2, 3):
        on = res.stage == k
        assert s.loc[f"stage {k}", "loans"] == on.sum()
        assert s.loc[f"stage {k}", "ead"] == pytest.approx(res.ead[on].sum(), rel=1e-12)
    # the allowance is 12-month ECL in Stage 1 and lifetime ECL in Stages 2-3
    assert s.loc["stage 1", "ecl"] == pytest.approx(s.loc["stage 1", "ecl_12m"], rel=1e-12)
    assert s.loc["stage 2", "ecl"] == pytest.approx(s.loc["stage 2", "ecl_lifetime"], rel=1e-12)
    assert s.loc["stage 3", "loans"] > 0 and s.loc["stage 2", "loans"] > 0
    np.testing.assert_allclose(s["coverage"], s["ecl"] / s["ead"])  # no gross given: the exposure
    drawn = res.ead / 1.01
    assert stage_summary(res, drawn).loc["total", "coverage"] == pytest.approx(1.01 * res.total / res.ead.sum())
    labels = np.array(["AAA", "AA", "A", "BBB", "BB", "B", "CCC"])[grade]
    rep = build_report(res, labels, opening=res.to_frame().assign(ecl=lambda f: 0.5 * f["ecl"]))
    e = rep.exposure
    assert e.loc["total", "allowance total"] == pytest.approx(res.total, rel=1e-12)
    assert e.loc["total", "gross total"] == pytest.approx(res.ead.sum(), rel=1e-12)
    assert e.loc["BB", "coverage total"] == pytest.approx(res.ecl[labels == "BB"].sum() / res.ead[labels == "BB"].sum())
    assert rep.movement.loc["remeasurement", "total"] == pytest.approx(0.5 * res.total, rel=1e-12)
    assert set(rep.tables()) == {"summary", "exposure", "scenarios", "movement"}


def test_report_to_excel_formats_and_atomic_replace(tmp_path) -> None:
    from openpyxl import load_workbook

    from creditsim.ifrs9.reporting import CURRENCY_FORMAT, PERCENT_FORMAT, build_report

    res, grade = _small_result()
    rep = build_report(res, np.where(grade > 3, "=HYPERLINK(1)", "IG"))
    path = tmp_path / "r.xlsx"
    path.write_bytes(b"old")
    assert rep.to_excel(path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["r.xlsx"]  # no temporary file left behind
    wb = load_workbook(path)
    assert wb.sheetnames == ["summary", "exposure", "scenarios"]
    ws = wb["summary"]
    head = [c.value for c in ws[1]]
    cover, ecl = head.index("coverage") + 1, head.index("ecl") + 1
    assert ws.cell(2, cover).number_format == PERCENT_FORMAT and ws.cell(2, ecl).number_format == CURRENCY_FORMAT
    assert ws.cell(5, ecl).value == pytest.approx(res.total, rel=1e-12)
    grades = [c.value for c in wb["exposure"]["A"]]  # text a spreadsheet would run as a formula is quoted
    assert "'=HYPERLINK(1)" in grades and not any(str(g).startswith("=") for g in grades), grades


def test_disclosure_workbook_escapes_formulas_and_formats_numbers(tmp_path) -> None:
    from openpyxl import load_workbook

    frame = pd.DataFrame({"gross": [1234.5], "coverage": [0.021], "note": ["=HYPERLINK(\"http://x\")"]}, index=["Stage 1"])
    path = disclosures_to_excel(tmp_path / "d.xlsx", a_sheet_name_longer_than_thirty_one_chars=frame)
    sheet = load_workbook(path)["a_sheet_name_longer_than_thirty"]
    assert sheet["D2"].value == "'=HYPERLINK(\"http://x\")"  # text, not a live formula
    assert sheet["B2"].number_format == "#,##0.00" and sheet["C2"].number_format == "0.00%"
