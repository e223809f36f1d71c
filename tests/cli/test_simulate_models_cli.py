"""`creditsim simulate` with model folders: --engine against the run config file's engine, --macro DIR
(a MacroVAE checkpoint), the model folders run.json records, and a folder given to the wrong option."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def inputs(tmp_path, small_deal_yaml):
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(60, 1, random_seed=3).generate()
    tape = tmp_path / "loans.parquet"
    loans.to_parquet(tape)
    deal = tmp_path / "deal.yaml"
    deal.write_text(small_deal_yaml("Test CLO"))
    return tape, deal


@pytest.fixture(scope="module")
def trajectory_folder(tmp_path_factory):
    """The shipped LoanTrajectoryModel saved as a checkpoint folder (what 'creditsim train trajectory' writes)."""
    from creditsim.loans.trajectory import LoanTrajectoryModel

    return LoanTrajectoryModel.from_pretrained().save_pretrained(tmp_path_factory.mktemp("models") / "traj")


def _sim(tape, deal, out, *extra):
    return ["simulate", "--tape", str(tape), "--deal", str(deal), "--n-sims", "4", "--horizon", "6", "--mix",
            "baseline", "--macro", "synthetic", "--seed", "1", "--out", str(out), *extra]


def test_an_explicit_engine_overrides_the_run_config_files_engine(inputs, trajectory_folder, tmp_path, capsys,
                                                                 run_cli, monkeypatch):
    """``--engine trajectory --trajectory-model DIR`` with a config that says ``engine: markov`` runs the
    trajectory engine (the user chose it on the command line); ``--trajectory-model`` alone is still refused
    (an implicit switch) with the fix spelled out; the config file is read once."""
    import creditsim.yamlfile

    tape, deal = inputs
    cfg = tmp_path / "run.yaml"
    cfg.write_text("engine: markov\n")
    reads = []
    real = creditsim.yamlfile.read_yaml

    def counting(path, what="file", **kw):
        reads.append(what)
        return real(path, what, **kw)

    monkeypatch.setattr(creditsim.yamlfile, "read_yaml", counting)
    base = _sim(tape, deal, tmp_path / "r1", "--config", str(cfg), "--trajectory-model", str(trajectory_folder))
    assert run_cli([*base, "--engine", "trajectory"]) == 0, capsys.readouterr().err
    assert reads.count("run config file") == 1
    settings = json.loads((tmp_path / "r1" / "run.json").read_text())["settings"]
    assert settings["engine"] == "trajectory"
    capsys.readouterr()
    assert run_cli(_sim(tape, deal, tmp_path / "r2", "--config", str(cfg), "--trajectory-model",
                        str(trajectory_folder))) == 2
    err = capsys.readouterr().err
    assert "run config file's engine is 'markov'" in err and "add --engine trajectory" in err
    assert run_cli([*_sim(tape, deal, tmp_path / "r3", "--trajectory-model", str(trajectory_folder)),
                    "--engine", "transformer"]) == 2
    assert "--engine is transformer" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
