"""`creditsim reverse-stress`: printed tables, saved files, one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from creditsim.examples import example_path


@pytest.fixture(scope="module")
def small_tape(tmp_path_factory) -> Path:
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    path = tmp_path_factory.mktemp("tape") / "loans.parquet"
    tape.sample(300, random_state=4).to_parquet(path)
    return path


def test_reverse_stress_prints_and_saves(small_tape, tmp_path, capsys, run_cli) -> None:
    out = tmp_path / "rs"
    code = run_cli(["reverse-stress", "--tape", str(small_tape), "--deal", str(example_path("example_clo.yaml")),
                    "--tranche", "C", "--loss", "0.1", "--horizon", "18", "--starts", "2", "--reference", "32",
                    "--mc", "300", "--no-single-variable", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Reverse stress: tranche C" in text and "found path vs Fed 2025 severely adverse" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tranche"] == "C" and summary["Monte Carlo draws"] == 300
    assert (out / "reverse_stress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "path.csv")) == 18


@pytest.mark.parametrize("args, message", [
    (["--tranche", "Z", "--loss", "0.1"], "tranche 'Z'"),
    (["--tranche", "C", "--loss", "3"], "principal-loss fraction"),
])
def test_bad_requests_exit_2_with_one_line(small_tape, capsys, run_cli, args, message) -> None:
    code = run_cli(["reverse-stress", "--tape", str(small_tape), "--deal", str(example_path("example_clo.yaml")),
                    "--horizon", "12", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_size_tranches_command(tmp_path, capsys, run_cli) -> None:
    """Targets = the Monte Carlo ELs of a known structure on the same paths: the command sizes it back."""
    import numpy as np
    import torch
    import yaml
    from dataclasses import replace

    from creditsim.deal.config import Tranche, load_deal
    from creditsim.risk.expected import ExpectedLossPath

    tape = pd.read_parquet(example_path("loans_example.parquet")).sample(400, random_state=11).reset_index(drop=True)
    tape_path = tmp_path / "loans.parquet"
    tape.to_parquet(tape_path)
    deal = load_deal(example_path("example_clo.yaml"))
    attach = np.array([0.07, 0.045, 0.02])  # thin enough that every class loses (tests/risk/test_sizing.py)
    sizes = np.r_[1 - attach[0], -np.diff(attach), attach[-1]] * deal.initial_collateral
    deal = replace(deal, tranches=[Tranche(**{**t.__dict__, "balance": float(b)}) for t, b in zip(deal.tranches, sizes)])
    deal_path = tmp_path / "deal.yaml"
    deal_path.write_text(yaml.safe_dump(deal.to_dict(), sort_keys=False))
    elp = ExpectedLossPath.from_tape(tape, deal, horizon=24, seed=0)
    paths = elp.scenario_paths(16, 0, {"horizon": 24})
    _, mc, _ = elp.monte_carlo_losses(elp.monte_carlo_pool(paths, 32), torch.tensor([t.balance for t in elp.deal.tranches]))
    targets = ",".join(f"{n}={v:.6g}" for n, v in zip("ABC", mc[:3]))
    out = tmp_path / "sized"
    code = run_cli(["size-tranches", "--tape", str(tape_path), "--deal", str(deal_path), "--targets", targets,
                    "--horizon", "24", "--paths", "16", "--reps", "32", "--out", str(out)])
    assert code == 0
    assert "sized structure" in capsys.readouterr().out
    table = pd.read_csv(out / "sizing.csv", index_col=0)
    np.testing.assert_allclose(table["attachment"].to_numpy()[:3], attach, atol=0.01)
    sized = load_deal(out / "deal_sized.yaml")
    assert [t.name for t in sized.tranches] == ["A", "B", "C", "Equity"]


def test_size_tranches_bad_targets(small_tape, capsys, run_cli) -> None:
    code = run_cli(["size-tranches", "--tape", str(small_tape), "--deal", str(example_path("example_clo.yaml")),
                    "--targets", "A:0.01"])
    assert code == 2
    assert "--targets: expected CLASS=EL pairs" in capsys.readouterr().err
