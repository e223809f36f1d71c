"""Dated macro frames are read from the first simulated month: a history file is refused, not replayed as
the next years, a frame reaching back is cut at the cut-off, one starting later is used as given with a
warning; the run's settings spell the cut-off one way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import DataError
from creditsim.macro.scenarios import build_macro_draw
from creditsim.states import MACRO_VARS


def _frame(start: str, months: int) -> pd.DataFrame:
    """Row k holds 0.001 * k in every variable, so a path's first value names the row it starts at."""
    idx = pd.date_range(start, periods=months, freq="MS")
    values = np.repeat((np.arange(months) * 0.001)[:, None], len(MACRO_VARS), axis=1)
    return pd.DataFrame(values, index=idx, columns=list(MACRO_VARS))


LABELS = np.array([0, 1, 0])


def test_a_frame_reaching_back_is_read_from_the_first_simulated_month():
    frame = _frame("2020-01-01", 120)  # 2020-01 .. 2029-12
    got = build_macro_draw(frame, LABELS, 24, seed=0, first_month="2025-10").values
    row = frame.index.get_loc(pd.Timestamp("2025-10-01"))
    np.testing.assert_array_equal(got[:, :, 0], np.broadcast_to(frame.iloc[row:row + 24, 0].to_numpy(), (3, 24)))
    undated = build_macro_draw(frame, LABELS, 24, seed=0).values  # no month given: the first rows, as before
    assert undated[0, 0, 0] == 0.0


def test_a_history_file_is_refused_naming_its_months_and_the_first_simulated_one():
    history = _frame("1980-01-01", 549)  # 1980-01 .. 2025-09
    with pytest.raises(DataError, match=r"1980-01 to 2025-09, all before the first simulated month 2025-10.*history"):
        build_macro_draw(history, LABELS, 24, seed=0, first_month="2025-10")


def test_a_frame_too_short_after_the_cut_off_says_from_when():
    frame = _frame("2025-01-01", 20)  # 2025-01 .. 2026-08: 11 months from 2025-10
    with pytest.raises(DataError, match="11 months from 2025-10 on, the simulation horizon needs 24"):
        build_macro_draw(frame, LABELS, 24, seed=0, first_month="2025-10")


def test_a_frame_starting_later_is_used_as_given_with_a_warning():
    frame = _frame("2026-01-01", 30)
    with pytest.warns(UserWarning, match="starts 2026-01, 3 month"):
        got = build_macro_draw(frame, LABELS, 24, seed=0, first_month="2025-10").values
    assert got[0, 0, 0] == 0.0


def test_scenario_frames_are_cut_per_scenario():
    a, b = _frame("2024-01-01", 60), _frame("2025-06-01", 40)
    b[list(MACRO_VARS)] += 0.5
    frame = pd.concat([a.assign(scenario="baseline"), b.assign(scenario="adverse")])
    got = build_macro_draw(frame, LABELS, 12, seed=0, first_month="2025-10").values
    assert got[0, 0, 0] == pytest.approx(0.021) and got[1, 0, 0] == pytest.approx(0.504)


def test_simulate_refuses_a_history_file_and_spells_the_cut_off_one_way(tmp_path):
    from creditsim.deal.config import WaterfallConfig
    from creditsim.risk.simulate import simulate
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(60, 1, random_seed=3).generate()
    deal = WaterfallConfig(name="T", tranches=[{"name": "A", "balance": 90, "coupon": 0.05},
                                               {"name": "Equity", "balance": 10, "equity": True}])
    history = _frame("1990-01-01", 400)  # ends 2023-04
    path = tmp_path / "history.csv"
    history.rename_axis("reporting_month").to_csv(path)
    kw = dict(n_simulations=2, seed=1, horizon=12, progress=False)
    with pytest.raises(DataError, match="history, not a scenario path"):
        simulate(loans, deal, macro=str(path), cutoff="2025-01", **kw)
    r = simulate(loans, deal, macro="synthetic", cutoff="2025-01", **kw)
    assert r.settings["cutoff"] == "2025-01-01"
    r = simulate(loans, deal, macro="synthetic", cutoff=pd.Timestamp("2025-01-01"), **kw)
    assert r.settings["cutoff"] == "2025-01-01"


def test_the_expected_loss_path_reads_a_dated_file_as_simulate_does(tmp_path):
    """size_tranches and note_ecl draw their paths through ExpectedLossPath.scenario_paths: a history file
    is refused there too (helper-97: it was replayed from 1980 while simulate refused it)."""
    from creditsim.deal.config import load_deal
    from creditsim.examples import example_path
    from creditsim.io import read_loan_tape
    from creditsim.risk.expected import ExpectedLossPath

    loans = read_loan_tape(example_path("loans_example.parquet"))
    elp = ExpectedLossPath.from_tape(loans, load_deal(example_path("example_clo.yaml")), seed=0)
    history = _frame("1990-01-01", 400)  # ends 2023-04, before the tape's cut-off
    path = tmp_path / "history.csv"
    history.rename_axis("reporting_month").to_csv(path)
    with pytest.raises(DataError, match="history, not a scenario path"):
        elp.scenario_paths(4, 0, {"macro": str(path)})
    later = _frame(f"{elp.cutoff:%Y-%m}-01", 80)  # starts at the cut-off's month: cut to the month after it
    got = elp.scenario_paths(2, 0, {"macro": later, "horizon": elp.horizon})
    assert got[0, 0, 0] == pytest.approx(0.001)
