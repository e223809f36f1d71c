"""RunConfig: one validated object for a run's settings; simulate(loans, deal, config, **overrides);
``creditsim simulate --config run.yaml`` with command-line options overriding the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.cli import main
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.risk.config import RunConfig
from creditsim.risk.simulate import simulate


@pytest.fixture(scope="module")
def tape() -> pd.DataFrame:
    return pd.read_parquet(example_path("loans_example.parquet")).iloc[:150]


def test_defaults_are_the_documented_ones() -> None:
    cfg = RunConfig()
    assert (cfg.n_simulations, cfg.engine, cfg.seed, cfg.chunk_size, cfg.horizon, cfg.mode) == (
        10_000, "markov", 0, 500, 60, "hard")
    np.testing.assert_allclose(cfg.weights, [0.6, 0.25, 0.1, 0.05])


@pytest.mark.parametrize("field, value, message", [
    ("n_simulations", 0, "n_simulations must be an integer >= 1"),
    ("n_simulations", True, "n_simulations must be an integer"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("horizon", 1201, "horizon must be at most 1200"),
    ("engine", "magic", "engine must be one of"),
    ("backend", "spark", "backend must be one of"),
    ("mode", "fuzzy", "mode must be one of"),
    ("device", "tpu", "device must be 'cpu'"),
    ("progress", "yes", "progress must be True or False"),
    ("scenario_mix", "baseline=2,adverse=-1", "scenario"),
])
def test_bad_settings_fail_when_the_config_is_built(field, value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{field: value})


def test_replace_validates_and_names_unknown_settings() -> None:
    cfg = RunConfig(seed=3)
    assert cfg.replace(seed=4).seed == 4 and cfg.seed == 3
    with pytest.raises(ConfigError, match=r"unknown run setting\(s\) \['n_sims'\]"):
        cfg.replace(n_sims=10)
    with pytest.raises(ConfigError, match="chunk_size"):
        cfg.replace(chunk_size=0)


def test_simulate_with_a_config_equals_simulate_with_keywords(tape) -> None:
    cfg = RunConfig(n_simulations=24, macro="synthetic", seed=5, chunk_size=10, horizon=12, progress=False)
    a = simulate(tape, example_path("example_clo.yaml"), cfg)
    b = simulate(tape, example_path("example_clo.yaml"), n_simulations=24, macro="synthetic", seed=5, chunk_size=10,
                 horizon=12, progress=False)
    c = simulate(tape, example_path("example_clo.yaml"), cfg, seed=6)
    np.testing.assert_array_equal(a.portfolio_losses, b.portfolio_losses)
    np.testing.assert_array_equal(a.cashflows["pool"], b.cashflows["pool"])
    assert c.settings["seed"] == 6 and not np.array_equal(a.portfolio_losses, c.portfolio_losses)


def test_simulate_refuses_a_config_of_the_wrong_type(tape) -> None:
    with pytest.raises(ConfigError, match="config must be a RunConfig"):
        simulate(tape, example_path("example_clo.yaml"), 1000)


def test_yaml_config_round_trip_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "run.yaml"
    good.write_text("n_simulations: 200\nscenario_mix: {baseline: 0.5, severely_adverse: 0.5}\nmacro: synthetic\n"
                    "seed: 9\nhorizon: 24\n")
    cfg = RunConfig.from_yaml(good)
    assert (cfg.n_simulations, cfg.macro, cfg.seed, cfg.horizon) == (200, "synthetic", 9, 24)
    np.testing.assert_allclose(cfg.weights, [0.5, 0, 0.5, 0])
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_simulations: 200\nn_sims: 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['n_sims'\]"):
        RunConfig.from_yaml(bad)
    bad.write_text("seed: &s 3\nhorizon: *s\n")
    with pytest.raises(ConfigError, match="anchors"):
        RunConfig.from_yaml(bad)
    bad.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        RunConfig.from_yaml(bad)
    bad.write_text("horizon: 0\n")
    with pytest.raises(ConfigError, match=r"run config file .*horizon must be an integer >= 1"):
        RunConfig.from_yaml(bad)
    bad.write_text("transition_model: markov\n")  # objects are set in code, not in a file
    with pytest.raises(ConfigError, match="unknown setting"):
        RunConfig.from_yaml(bad)


def test_cli_config_file_with_options_overriding_it(tmp_path: Path, capsys) -> None:
    tape_file = tmp_path / "tape.parquet"
    pd.read_parquet(example_path("loans_example.parquet")).iloc[:100].to_parquet(tape_file)
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("n_simulations: 16\nmacro: synthetic\nhorizon: 12\nseed: 3\nchunk_size: 8\n")
    out = tmp_path / "runs" / "r"
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--tape", str(tape_file), "--deal", str(example_path("example_clo.yaml")), "--out", str(out),
              "--config", str(run_yaml), "--seed", "4"])
    assert e.value.code == 0, capsys.readouterr().err
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert (settings["n_simulations"], settings["horizon_months"], settings["seed"]) == (16, 12, 4)
    assert settings["config_file"] == str(run_yaml)
    run_yaml.write_text("n_simulations: 16\nhorizon: 99999\n")
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--tape", str(tape_file), "--deal", str(example_path("example_clo.yaml")),
              "--out", str(tmp_path / "runs" / "r2"), "--config", str(run_yaml)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "horizon must be at most 1200" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("field, value, message", [
    ("macro", "bogus", "macro must be one of"),
    ("macro", 123, "macro must be a source name"),
    ("macro", "fed:1999", "no bundled supervisory scenarios"),
    ("cutoff", "notadate", "cutoff must be a date"),
    ("macro_start", "xx", "macro_start"),
    ("macro_start", [0.1, 0.2], "9 values"),
])
def test_sources_dates_and_start_states_are_checked_when_the_config_is_built(field, value, message) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{field: value})


def test_simulate_reads_a_tape_file(tmp_path, tape) -> None:
    path = tmp_path / "tape.parquet"
    tape.iloc[:60].to_parquet(path)
    a = simulate(path, example_path("example_clo.yaml"), n_simulations=6, macro="var", seed=2, horizon=6, progress=False)
    b = simulate(tape.iloc[:60], example_path("example_clo.yaml"), n_simulations=6, macro="var", seed=2, horizon=6,
                 progress=False)
    np.testing.assert_array_equal(a.portfolio_losses, b.portfolio_losses)
