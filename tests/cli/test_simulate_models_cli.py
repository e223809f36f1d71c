"""`creditsim simulate` with model folders: --engine against the run config file's engine, --macro DIR
(a MacroVAE checkpoint), the model folders run.json records, and a folder given to the wrong option."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def inputs(simulate_inputs):
    return simulate_inputs(60)


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


@pytest.fixture(scope="module")
def macro_vae_folder(tmp_path_factory):
    """The shipped MacroVAE saved as a checkpoint folder (what 'creditsim train macro --out DIR' writes)."""
    from creditsim.macro.vae import MacroVAE

    return MacroVAE.from_pretrained().save_pretrained(tmp_path_factory.mktemp("models") / "vae")


def test_macro_takes_a_trained_macro_vae_folder(inputs, macro_vae_folder, trajectory_folder, tmp_path, capsys,
                                                run_cli):
    """``--macro DIR`` runs on a MacroVAE checkpoint folder (the folder the wrong-folder errors send it to),
    as does a run config file's ``macro: DIR``; the run is the shipped VAE's when the folder holds it."""
    import numpy as np

    from creditsim.risk.results import SimulationResults

    tape, deal = inputs
    args = [a for a in _sim(tape, deal, tmp_path / "x") if a not in ("--macro", "synthetic")][:-2]
    assert run_cli([*args, "--macro", str(macro_vae_folder), "--out", str(tmp_path / "dir")]) == 0, capsys.readouterr().err
    assert run_cli([*args, "--macro", "vae", "--out", str(tmp_path / "vae")]) == 0
    np.testing.assert_array_equal(SimulationResults.load(tmp_path / "dir").portfolio_losses,
                                  SimulationResults.load(tmp_path / "vae").portfolio_losses)
    settings = json.loads((tmp_path / "dir" / "run.json").read_text())["settings"]
    assert "model.safetensors" in settings["macro_sha256"]
    (tmp_path / "run.yaml").write_text(f"macro: {macro_vae_folder}\n")
    assert run_cli([*args, "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "file")]) == 0
    capsys.readouterr()
    # the wrong-folder message's advice works; a folder of another model, or of none, is named
    assert run_cli([*args, "--trajectory-model", str(macro_vae_folder), "--out", str(tmp_path / "w1")]) == 2
    err = capsys.readouterr().err
    assert "holds a MacroVAE" in err and "give it as --macro" in err
    assert run_cli([*args, "--macro", str(trajectory_folder), "--out", str(tmp_path / "w2")]) == 2
    err = capsys.readouterr().err
    assert "--macro" in err and "holds a LoanTrajectoryModel" in err and "give it as --trajectory-model" in err
    (tmp_path / "empty").mkdir()
    assert run_cli([*args, "--macro", str(tmp_path / "empty"), "--out", str(tmp_path / "w3")]) == 2
    assert "no MacroVAE there" in capsys.readouterr().err


def test_run_json_records_absolute_model_folders_and_hashes_their_config(inputs, trajectory_folder, tmp_path,
                                                                         run_cli, monkeypatch):
    """A folder given relative to the working directory is recorded as its absolute path, and config.json
    (which shapes the model as much as its weights) is hashed with model.safetensors."""
    import hashlib

    tape, deal = inputs
    monkeypatch.chdir(trajectory_folder.parent)
    args = [*_sim(tape, deal, tmp_path / "r"), "--trajectory-model", trajectory_folder.name]
    assert run_cli(args) == 0
    settings = json.loads((tmp_path / "r" / "run.json").read_text())["settings"]
    assert settings["trajectory_model_folder"] == str(trajectory_folder.resolve())
    hashes = settings["trajectory_model_sha256"]
    assert set(hashes) == {"model.safetensors", "config.json"}
    assert hashes["config.json"] == hashlib.sha256((trajectory_folder / "config.json").read_bytes()).hexdigest()


def test_python_run_configs_take_a_macro_vae_folder_relative_to_the_file(macro_vae_folder, trajectory_folder,
                                                                         tmp_path, monkeypatch):
    """The Python API reads a MacroVAE folder as the CLI does: RunConfig(macro=DIR) and build_macro_paths draw
    the same paths as the loaded model; a run config file's relative macro path is read from the file's
    folder; another model's folder is named."""
    import shutil

    import numpy as np

    from creditsim.errors import ConfigError
    from creditsim.macro.scenarios import build_macro_paths
    from creditsim.macro.vae import MacroVAE
    from creditsim.risk.config import RunConfig

    assert RunConfig(macro=str(macro_vae_folder)).macro == str(macro_vae_folder)
    labels = np.array([0, 1, 2, 0], dtype=np.int64)  # scenario indices
    a = build_macro_paths(str(macro_vae_folder), labels, 6, seed=3)
    b = build_macro_paths(MacroVAE.from_pretrained(macro_vae_folder), labels, 6, seed=3)
    np.testing.assert_array_equal(a, b)
    (tmp_path / "cfg").mkdir()
    shutil.copytree(macro_vae_folder, tmp_path / "vae")
    (tmp_path / "cfg" / "run.yaml").write_text("macro: ../vae\n")
    assert RunConfig.from_yaml(tmp_path / "cfg" / "run.yaml").macro == str(tmp_path / "cfg" / "../vae")
    with pytest.raises(ConfigError, match="expected a MacroVAE checkpoint folder .* found LoanTrajectoryModel"):
        RunConfig(macro=str(trajectory_folder))
    (tmp_path / "cfg" / "cwd.yaml").write_text("macro: vae_here\n")  # only beside the cwd, not the file
    (tmp_path / "vae_here").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="read from the config file's folder"):
        RunConfig.from_yaml(tmp_path / "cfg" / "cwd.yaml")
    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "markov_model.json").write_text("{}")
    with pytest.raises(ConfigError, match="found MarkovTransitionModel"):
        RunConfig(macro=str(chain))


def test_a_config_files_relative_macro_folder_is_read_from_its_folder_on_the_command_line(
        inputs, macro_vae_folder, tmp_path, capsys, run_cli, monkeypatch):
    """The CLI reads a run config file's ``macro: ../vae`` from the file's folder, as RunConfig.from_yaml
    does, wherever it is run from; run.json records the tape, deal and config file as absolute paths."""
    import shutil

    tape, deal = inputs
    shutil.copytree(macro_vae_folder, tmp_path / "vae")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "run.yaml").write_text("macro: ../vae\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")  # from here ../vae is a/vae, which does not exist
    args = [a for a in _sim(tape, deal, tmp_path / "x") if a not in ("--macro", "synthetic")][:-2]
    assert run_cli([*args, "--config", "../../cfg/run.yaml", "--out", "out"]) == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "a" / "b" / "out" / "run.json").read_text())["settings"]
    assert settings["config_file"] == str(tmp_path / "cfg" / "run.yaml")
    assert settings["tape"] == str(tape.resolve()) and settings["deal_file"] == str(deal.resolve())
    assert "model.safetensors" in settings["macro_sha256"]
