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
