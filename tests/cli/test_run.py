"""`creditsim simulate` / `creditsim report`: one-line errors with exit 2, saved runs, no half-written
output after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.risk.results import SimulationResults, TrancheResult
from creditsim.states import POOL_CF_TYPES

EXAMPLE_DEAL = Path(__file__).resolve().parents[2] / "creditsim" / "examples" / "example_clo.yaml"


def _saved_run(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n, t = 120, 12
    losses = rng.beta(1, 20, size=n)
    tr = [TrancheResult(name=nm, balance=b, losses=np.clip(losses * m - 0.02, 0, 1), irr=0.05 - losses,
                        wal=np.full(n, 2.5)) for nm, b, m in (("A", 80.0, 1), ("Equity", 20.0, 8))]
    r = SimulationResults(losses, tr, cashflows={"pool": rng.uniform(size=(n, t, len(POOL_CF_TYPES)))},
                          scenarios=rng.integers(0, 4, n), initial_balance=100.0, settings={"seed": 1})
    return r.to_parquet(tmp_path / "run")


def test_report_command_writes_html_and_excel(tmp_path, capsys, run_cli):
    run = _saved_run(tmp_path)
    code = run_cli(["report", str(run), "-o", str(tmp_path / "r.html"), "--excel", str(tmp_path / "r.xlsx")])
    assert code == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="loss_distribution"' in page
    assert (tmp_path / "r.xlsx").stat().st_size > 0
    # the page loads the plotly bundle written beside it; --self-contained inlines it instead
    bundles = list(tmp_path.glob("plotly-*.min.js"))
    assert len(bundles) == 1 and bundles[0].name in page
    assert run_cli(["report", str(run), "-o", str(tmp_path / "one.html"), "--self-contained"]) == 0
    one = (tmp_path / "one.html").read_text(encoding="utf-8")
    assert bundles[0].name not in one and len(one) > 1_000_000


def test_report_with_only_excel_writes_the_workbook_and_no_html(tmp_path, monkeypatch, run_cli):
    run = _saved_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run_cli(["report", str(run), "--excel", "book.xlsx"]) == 0
    assert (tmp_path / "book.xlsx").stat().st_size > 0
    assert not (tmp_path / "report.html").exists()  # the default page only when no output is named
    assert run_cli(["report", str(run)]) == 0
    assert (tmp_path / "report.html").exists()


def test_report_on_missing_or_bad_run_dir_is_one_line(tmp_path, capsys, run_cli, one_line_error):
    assert run_cli(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.html")]) == 2
    assert "run directory not found" in one_line_error()
    (tmp_path / "empty").mkdir()
    assert run_cli(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")]) == 2
    assert "meta.json" in one_line_error()
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- simulate


@pytest.fixture()
def inputs(simulate_inputs):
    return simulate_inputs(150)


def _sim_args(tape, deal, out, *extra):
    return ["simulate", "--tape", str(tape), "--deal", str(deal), "--n-sims", "12", "--macro", "synthetic",
            "--engine", "markov", "--seed", "7", "--horizon", "18", "--chunk-size", "5", "--out", str(out), *extra]


def test_simulate_saves_a_complete_run(inputs, tmp_path, capsys, run_cli):
    tape, deal = inputs
    out = tmp_path / "runs" / "r1"
    assert run_cli(_sim_args(tape, deal, out, "--excel", "--html")) == 0
    printed = capsys.readouterr().out
    assert "CVaR 99%" in printed and "Equity" in printed and "…" not in printed
    names = {p.name for p in out.iterdir()}
    assert {"meta.json", "portfolio.parquet", "tranches.parquet", "run.json", "deal.yaml",
            "results.xlsx", "report.html"} <= names
    info = json.loads((out / "run.json").read_text())
    assert info["settings"]["seed"] == 7 and info["settings"]["tape_sha256"]
    assert "torch" in info["versions"]
    back = SimulationResults.load(out)
    assert back.n_sims == 12 and back.settings["engine"] == "markov"
    # same seed through the CLI -> identical numbers
    out2 = tmp_path / "runs" / "r2"
    assert run_cli(_sim_args(tape, deal, out2)) == 0
    np.testing.assert_array_equal(SimulationResults.load(out2).portfolio_losses, back.portfolio_losses)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r1", "r2"]
    # two chunks side by side on threads: the same numbers, and the run records it
    out3 = tmp_path / "threads"
    assert run_cli(_sim_args(tape, deal, out3, "--chunk-threads", "2")) == 0
    threaded = SimulationResults.load(out3)
    np.testing.assert_array_equal(threaded.portfolio_losses, back.portfolio_losses)
    assert threaded.settings["chunk_threads"] == 2
    assert run_cli(_sim_args(tape, deal, tmp_path / "bad", "--chunk-threads", "0")) == 2
    assert "chunk_threads must be an integer >= 1" in capsys.readouterr().err


def test_simulate_announces_cutoff_and_rescaling_and_obeys_the_switches(inputs, tmp_path, capsys, run_cli):
    """A run says out loud the cut-off it chose and the scaling of the deal to the pool; --cutoff and
    --no-rescale take both decisions back."""
    tape, deal = inputs
    assert run_cli(_sim_args(tape, deal, tmp_path / "a")) == 0
    printed = capsys.readouterr().out
    assert "cut-off" in printed and "latest origination date" in printed
    assert "deal rescaled" in printed and "--no-rescale" in printed
    chosen = pd.Timestamp(SimulationResults.load(tmp_path / "a").settings["cutoff"])
    later = f"{chosen:%Y-%m}"  # the same month, now given: nothing to announce
    assert run_cli(_sim_args(tape, deal, tmp_path / "b", "--cutoff", later, "--no-rescale")) == 0
    printed = capsys.readouterr().out
    assert "cut-off" not in printed and "deal rescaled" not in printed
    settings = SimulationResults.load(tmp_path / "b").settings
    assert settings["deal_scale_factor"] == 1.0 and settings["cutoff"].startswith(later)
    assert run_cli(_sim_args(tape, deal, tmp_path / "c", "--cutoff", "June")) == 2


@pytest.mark.parametrize("case, match", [
    ("missing_tape", "does not exist"),
    ("bad_tape", "interest_rate"),
    ("bad_deal", "equity"),
    ("missing_deal", "deal file not found"),
    ("bad_mix", "sum to 1"),
    ("bad_engine", "engine must be one of"),
    ("mix_without_weights", "name=weight"),
    ("device_tpu", "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ("out_is_a_file", "not a directory"),
    ("out_is_someones_dir", "not a creditsim result"),
])
def test_bad_inputs_are_one_line_errors_exit_2(inputs, tmp_path, capsys, case, match, run_cli, one_line_error):
    import pandas as pd

    tape, deal = inputs
    extra: list[str] = []
    if case == "missing_tape":
        tape = tmp_path / "nope.parquet"
    elif case == "bad_tape":
        df = pd.read_parquet(tape)
        df.loc[3, "interest_rate"] = 7.5  # percent instead of a decimal
        tape = tmp_path / "bad.parquet"
        df.to_parquet(tape)
    elif case == "bad_deal":
        deal = tmp_path / "bad.yaml"
        deal.write_text("tranches:\n  - {name: A, balance: 10, coupon: 0.05}\n")
    elif case == "missing_deal":
        deal = tmp_path / "nope.yaml"
    elif case == "bad_mix":
        extra = ["--mix", "baseline=0.5,adverse=0.2"]
    elif case == "bad_engine":
        extra = ["--engine", "quantum"]
    elif case == "mix_without_weights":
        extra = ["--mix", "baseline,adverse"]
    elif case == "device_tpu":
        extra = ["--device", "tpu"]
    target = tmp_path / "out"
    if case == "out_is_a_file":
        target = tmp_path / "notes.txt"
        target.write_text("keep me")
    elif case == "out_is_someones_dir":
        target = tmp_path / "home"
        target.mkdir()
        (target / "thesis.tex").write_text("keep me")
    args = _sim_args(tape, deal, target, *extra)
    if case == "bad_engine":
        args.remove("markov")
        args.remove("--engine")
    assert run_cli(args) == 2
    assert match in one_line_error()
    assert not (tmp_path / "out").exists()
    if case == "out_is_a_file":
        assert target.read_text() == "keep me"
    elif case == "out_is_someones_dir":
        assert [p.name for p in target.iterdir()] == ["thesis.tex"]


def test_cuda_device_without_a_gpu_is_a_config_error(monkeypatch):
    import torch

    from creditsim.errors import ConfigError
    from creditsim.devices import check_device

    assert check_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        check_device("cuda:0")
    for bad in ("tpu", "cuda:x", "", None, 3):
        with pytest.raises(ConfigError, match="device must be"):
            check_device(bad)


def test_interrupted_simulation_leaves_no_output(inputs, tmp_path, monkeypatch, capsys, run_cli):
    import creditsim.risk.simulate as mc

    tape, deal = inputs
    real = mc.run_chunk
    calls = {"n": 0}

    def interrupt_second_chunk(ctx, task):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(ctx, task)

    monkeypatch.setattr(mc, "run_chunk", interrupt_second_chunk)
    out = tmp_path / "runs" / "r"
    assert run_cli(_sim_args(tape, deal, out)) == 130
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_interrupt_while_writing_leaves_no_half_written_run(inputs, tmp_path, monkeypatch, capsys, run_cli):
    tape, deal = inputs

    def interrupted(self, path):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(SimulationResults, "to_excel", interrupted)
    out = tmp_path / "runs" / "r"
    assert run_cli(_sim_args(tape, deal, out, "--excel")) == 130
    assert list((tmp_path / "runs").iterdir()) == []
