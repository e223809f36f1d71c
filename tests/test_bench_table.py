"""bench/bench_table.py's table: the trajectory engine's ratio is the median of its runs' own ratios, each run
against the sgemm floor measured around it (not the table's floor, read minutes earlier in another process, and
not the median rate over the median floor)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_table.py"


@pytest.fixture(scope="module")
def bench_table():
    spec = importlib.util.spec_from_file_location("bench_table_under_test", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(rates, paired, executed=1.5e5, table_floor=100.0):
    traj = {"value": sorted(rates)[1], "rates": rates, "paired": paired, "simulate_rates": [0.9 * r for r in rates],
            "flops_per_loan_month": 2e5, "executed_flops_per_loan_month": executed, "size": [2000, 4]}
    return {"floor_uniform": {"value": 6e8}, "floor_sgemm": {"value": table_floor}, "trajectory": traj,
            "trajectory_ddim": {**traj, "rates": [2 * r for r in rates], "value": 2 * traj["value"]}}


def _row(rows, start):
    return next(r for r in rows if r["workload"].startswith(start))


def test_ratio_is_the_median_of_paired_runs(bench_table):
    # runs of 3e5, 2.5e5 and 3.2e5 loan-months/s at 2e5 FLOP each (60, 50, 64 GFLOP/s of work) against floors of
    # 100, 150 and 200 GFLOP/s: 0.60, 0.333, 0.32, the median 0.333 -- the median rate over the median floor
    # would read 0.40 (met), the table's floor 0.60
    rows = bench_table.table(_results([3e5, 2.5e5, 3.2e5], [100.0, 150.0, 200.0]))
    row = _row(rows, "trajectory engine 2k")
    assert row["ratio"] == pytest.approx(1 / 3)
    assert not row["met"]
    # the median run's own rate and floor, so that the columns divide to the ratio
    assert row["measured"] == 2.5e5
    assert row["floor"] == pytest.approx(150e9 / 2e5)
    assert row["measured"] / row["floor"] == pytest.approx(row["ratio"])
    assert "runs 0.600, 0.333, 0.320 of floors 100, 150, 200" in row["note"]
    assert "0.600 of the table's floor" in row["note"]  # quoted, not the bar
    assert "whole simulate 0.540, 0.300, 0.288" in row["note"]
    assert "executed 150 kFLOP / loan-month" in row["note"] and "0.250 of the floor" in row["note"]
    ddim = _row(rows, "trajectory engine, 10-step")
    assert ddim["ratio"] == pytest.approx(2 / 3)


def test_bar_met_and_no_executed_estimate_without_the_kernels(bench_table):
    row = _row(bench_table.table(_results([3e5, 2.5e5, 3.2e5], [140.0, 120.0, 150.0], executed=None)),
               "trajectory engine 2k")
    # 0.4286, 0.4167, 0.4267 -> median 0.4267 (run 3)
    assert row["ratio"] == pytest.approx(64 / 150)
    assert row["met"]
    assert "executed" not in row["note"]


def test_simulate_10k_row_says_whether_it_ran_10000_scenarios_or_extrapolated(bench_table):
    base = {"floor_uniform": {"value": 6e8}, "floor_sgemm": {"value": 100.0}}
    full = {"value": 44.0, "rss_gib": 0.97, "ns_per_loan_month": 7.3, "measured_scenarios": 10_000}
    rows = bench_table.table({**base, "simulate_10k": full})
    cpu, mem = _row(rows, "simulate 10k x 60 x 10,000"), _row(rows, "simulate 10k x 60 x 10,000, memory")
    assert cpu["workload"] == "simulate 10k x 60 x 10,000, CPU" and cpu["met"]
    assert mem["note"] == "peak RSS" and mem["met"]
    quick = {**full, "value": 46.0, "measured_scenarios": 100}
    rows = bench_table.table({**base, "simulate_10k": quick})
    assert _row(rows, "simulate 10k x 60 x 10,000 (from 100)")["met"] is False
    assert _row(rows, "simulate 10k x 60 x 10,000, memory")["note"] == "peak RSS of 100 + the outputs of the other 9,900"
