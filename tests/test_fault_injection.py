"""Fault injection: `creditsim simulate` killed (SIGKILL) or interrupted (SIGINT) at each stage of a
run into an ``--out`` that already holds a complete result.

The stages are hit deterministically through the test hook ``CREDITSIM_FAULT_POINT=<name>`` (see
:data:`creditsim.fileio.FAULT_ENV`): at that point the process sends itself
``CREDITSIM_FAULT_SIGNAL``. After each fault, ``--out`` holds the previous result (same numbers) or
the new complete one -- never a mixture, never nothing once start-up recovery has run -- and the next
successful run leaves no temp/backup siblings behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from creditsim.cli import main
from creditsim.fileio import recover_result_dir
from creditsim.risk.results import SimulationResults

DEAL_YAML = """
name: Fault CLO
reinvestment_period: 6
tranches:
  - {name: A, balance: 70_000_000, coupon: 0.055, oc_trigger: 1.20, ic_trigger: 1.20}
  - {name: B, balance: 25_000_000, coupon: 0.075, oc_trigger: 1.10}
  - {name: Equity, balance: 5_000_000, equity: true}
"""

# every stage of a run, in order: before the simulation, while writing the parquet tables, while
# writing the extra files (run.json, deal.yaml), after meta.json, just before the swap, after it
POINTS = ["simulate", "write_parquet", "write_extra", "write_meta", "swap", "after_swap"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from creditsim.transitions.synthetic import LoanTapeGenerator

    root = tmp_path_factory.mktemp("fault")
    loans, _ = LoanTapeGenerator(150, 1, random_seed=3).generate()
    tape = root / "loans.parquet"
    loans.to_parquet(tape)
    deal = root / "deal.yaml"
    deal.write_text(DEAL_YAML)
    # reference results of seed 1 (the "old" run) and seed 2 (the "new" run), computed once
    refs = {}
    for seed in (1, 2):
        out = root / f"ref{seed}"
        _run_in_process(_args(tape, deal, out, seed))
        refs[seed] = SimulationResults.load(out).portfolio_losses
    assert not np.array_equal(refs[1], refs[2])
    return tape, deal, refs


def _args(tape: Path, deal: Path, out: Path, seed: int) -> list[str]:
    return ["simulate", "--tape", str(tape), "--deal", str(deal), "--n-sims", "200", "--macro", "synthetic",
            "--engine", "markov", "--seed", str(seed), "--horizon", "18", "--chunk-size", "100",
            "--out", str(out)]


def _run_in_process(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# each case is a ~6 s subprocess run: a fast subset covering both signals, the write stages and both
# sides of the swap runs by default, the rest of the 6 x 2 matrix is marked slow
FAST = {("write_parquet", "KILL"), ("swap", "KILL"), ("after_swap", "KILL"), ("write_meta", "INT")}
MATRIX = [pytest.param(p, s, id=f"{p}-{s}", marks=() if (p, s) in FAST else pytest.mark.slow)
          for p in POINTS for s in ("KILL", "INT")]


@pytest.mark.parametrize("point, signal_name", MATRIX)
def test_fault_keeps_old_or_new_result(setup, tmp_path, point, signal_name):
    tape, deal, refs = setup
    out = tmp_path / "run"
    _run_in_process(_args(tape, deal, out, 1))
    user_note = tmp_path / "notes.txt"  # a user's file next to the run must survive everything
    user_note.write_text("mine")
    env = {**os.environ, "CREDITSIM_FAULT_POINT": point, "CREDITSIM_FAULT_SIGNAL": signal_name}
    # SIGINT at its default: a shell that starts the suite in the background (``make test &``) leaves it
    # ignored, and a child inherits that, so the interrupt would never arrive
    proc = subprocess.run([sys.executable, "-m", "creditsim", *_args(tape, deal, out, 2)], env=env,
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode != 0, f"fault point {point!r} was never reached"
    if signal_name == "INT":
        assert "Traceback" not in proc.stderr
    # what a reader finds right after the fault (the exchange leaves no window without a result)
    got = SimulationResults.load(out).portfolio_losses
    expected_new = point == "after_swap"
    np.testing.assert_array_equal(got, refs[2] if expected_new else refs[1])
    # start-up recovery of the next run changes nothing visible, removes dead runs' siblings
    recover_result_dir(out)
    np.testing.assert_array_equal(SimulationResults.load(out).portfolio_losses, got)
    assert _siblings(out) == []
    _run_in_process(_args(tape, deal, out, 2))
    np.testing.assert_array_equal(SimulationResults.load(out).portfolio_losses, refs[2])
    assert _siblings(out) == []
    assert user_note.read_text() == "mine"


def test_sigkill_between_fallback_renames_restores_old_result(setup, tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE the swap is two renames; a SIGKILL between them leaves only the
    backup sibling, which the next start-up renames back."""
    tape, deal, refs = setup
    out = tmp_path / "run"
    _run_in_process(_args(tape, deal, out, 1))
    code = ("import creditsim.fileio as f; f._exchange = lambda a, b: False; "
            "from creditsim.cli import main; import sys; main(sys.argv[1:])")
    env = {**os.environ, "CREDITSIM_FAULT_POINT": "between_renames", "CREDITSIM_FAULT_SIGNAL": "KILL"}
    proc = subprocess.run([sys.executable, "-c", code, *_args(tape, deal, out, 2)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9
    assert not out.exists() and any("creditsim-bak-" in n for n in _siblings(out))
    recover_result_dir(out)
    np.testing.assert_array_equal(SimulationResults.load(out).portfolio_losses, refs[1])
    assert _siblings(out) == []
