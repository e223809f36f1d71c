"""Training data (windows, scenario labels, blocked split), the training loop and `creditsim train macro`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError
from creditsim.macro.vae import MacroVAE, MacroVAEConfig
from creditsim.states import MACRO_VARS, SCENARIOS
from creditsim.macro.train import (
    blocked_split,
    label_windows,
    make_windows,
    peak_rise,
    sahm_recession,
    train_macro_vae,
)
from creditsim.nn.trainer import TrainConfig, beta_schedule, fit

TINY = MacroVAEConfig(seq_length=24, latent_dim=2, hidden_dim=8, n_layers=1, scenario_dim=3, beta=0.5)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    from creditsim.datasets import load_macro_history

    return load_macro_history()


@pytest.fixture(scope="module")
def recession() -> pd.Series:
    from creditsim.datasets import load_recession_indicator

    return load_recession_indicator()["recession"]


def flat_history(n_months: int = 40) -> pd.DataFrame:
    idx = pd.date_range("2000-01-01", periods=n_months, freq="MS")
    base = np.array([0.02, 0.05, 0.02, 0.03, 0.04, 0.01, 0.04, 0.03, 0.03])
    return pd.DataFrame(np.tile(base, (n_months, 1)), index=idx, columns=list(MACRO_VARS))


# ---------------------------------------------------------------- windows and labels
def test_peak_rise_is_the_largest_trough_to_peak_increase():
    x = np.array([[5.0, 4.0, 6.0, 3.0, 5.5, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 2.0, 1.0, 1.0, 1.0, 0.0]])
    np.testing.assert_allclose(peak_rise(x), [2.5, 5.0, 0.0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=30))
def test_peak_rise_matches_brute_force(values):
    x = np.array(values)
    brute = max(max(x[j] - x[i] for i in range(j + 1)) for j in range(len(x)))
    assert peak_rise(x) == pytest.approx(brute, abs=1e-12)


def test_make_windows_cuts_every_window():
    frame = flat_history(30)
    frame["unemployment_rate"] = np.arange(30) / 1000
    windows, starts = make_windows(frame, 24)
    assert windows.shape == (7, 24, 9) and starts[1] == pd.Timestamp("2000-02-01")
    np.testing.assert_allclose(windows[3, :, 1], np.arange(3, 27) / 1000)
    with pytest.raises(DataError, match="at least seq_length"):
        make_windows(flat_history(10), 24)


def test_label_rule_on_constructed_windows():
    T = 60
    starts = pd.date_range("2000-01-01", periods=4, freq="MS")
    w = np.tile(flat_history(T).to_numpy(), (4, 1, 1))
    w[0, 10:20, 1] = 0.05 + np.linspace(0, 0.04, 10)  # +4 pp during a recession -> severely adverse
    w[1, 10:20, 1] = 0.05 + np.linspace(0, 0.02, 10)  # +2 pp during a recession -> adverse
    w[2, 10:20, 1] = 0.05 + np.linspace(0, 0.02, 10)  # +2 pp with 6 % inflation -> stagflation
    w[2, :24, 2] = 0.06
    w[3, 10:20, 1] = 0.05 + np.linspace(0, 0.004, 10)  # +0.4 pp -> baseline even in a recession
    months = pd.date_range("2000-01-01", periods=T + 3, freq="MS")
    rec = pd.Series(((months >= "2000-12-01") & (months <= "2001-06-01")).astype(int), index=months)
    labels = label_windows(w, starts, rec)
    assert [SCENARIOS[k] for k in labels] == ["severely_adverse", "adverse", "stagflation", "baseline"]
    # without a recession month a big rise is not adverse
    assert list(label_windows(w[:2], starts[:2], rec * 0)) == [0, 0]


def test_history_labels_mark_known_episodes(history, recession):
    windows, starts = make_windows(history, 60)
    labels = pd.Series(label_windows(windows, starts, recession), index=starts)
    assert SCENARIOS[labels["2006-01-01"]] == "severely_adverse"  # the 2008-09 recession
    assert SCENARIOS[labels["1981-01-01"]] == "stagflation"  # Volcker era: 10 % inflation, rising unemployment
    assert SCENARIOS[labels["1999-01-01"]] == "adverse"  # the 2001 recession
    assert SCENARIOS[labels["2012-01-01"]] == "baseline"  # the 2010s expansion
    assert set(labels.unique()) == {0, 1, 2, 3}


def test_sahm_rule_fires_in_the_2008_recession(history):
    sahm = sahm_recession(history["unemployment_rate"])
    assert sahm["2008-06-01":"2009-06-01"].all()
    assert sahm["2015-01-01":"2017-12-01"].sum() == 0


def test_blocked_split_never_shares_a_month_between_train_and_validation():
    starts = pd.date_range("1981-01-01", periods=409, freq="MS")
    tr, va = blocked_split(starts, 468, 60, 0.2)
    assert len(va) > 0 and len(tr) > 0
    last_train_month = tr.max() + 59
    assert last_train_month < va.min()
    with pytest.raises(ConfigError):
        blocked_split(starts, 468, 60, 1.5)


# ---------------------------------------------------------------- the loop
def test_beta_schedule_is_linear_then_flat():
    assert [beta_schedule(e, 1.0, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert beta_schedule(0, 0.3, 0) == 0.3


def test_fit_stops_early_and_restores_the_best_weights(caplog):
    """Train a line on data whose validation target drifts away: validation loss has an interior minimum.
    Each epoch and the end are logged on ``creditsim.nn.trainer`` (``creditsim -v``)."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64)[:, None]
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(0.0)
    train = (x, 2 * x)
    val = (x, 0.5 * x)  # best slope for validation is 0.5: passed on the way from 0 to 2

    def loss_fn(m, batch, epoch):
        return {"loss": ((m(batch[0]) - batch[1]) ** 2).mean()}

    cfg = TrainConfig(epochs=300, batch_size=64, lr=0.02, weight_decay=0.0, patience=5, min_epochs=0, progress=False)
    with caplog.at_level("INFO", logger="creditsim.nn.trainer"):
        res = fit(model, loss_fn, train, val, cfg)
    assert res.stopped_early and res.epochs_run < 300
    lines = [r.getMessage() for r in caplog.records if r.name == "creditsim.nn.trainer"]
    assert len(lines) == res.epochs_run + 1 and "epoch 1/300: loss" in lines[0] and "best " in lines[0]
    assert "inf" not in " ".join(lines) and f"best {res.best_val_loss:.4f} at epoch {res.best_epoch + 1}" in lines[-2]
    assert f"{res.epochs_run} epochs in" in lines[-1] and f"at epoch {res.best_epoch + 1} (stopped early)" in lines[-1]
    best_val = min(row["val_loss"] for row in res.history)
    assert res.best_val_loss == pytest.approx(best_val)
    with torch.no_grad():
        assert float(((model(x) - 0.5 * x) ** 2).mean()) == pytest.approx(best_val, rel=1e-5)


def test_epoch_size_draws_that_many_distinct_rows_each_epoch():
    """``epoch_size``: each epoch trains on that many rows of a fresh seeded permutation (no repeats within
    an epoch, different rows across epochs); None trains on every row."""
    x = torch.arange(100.0)[:, None]
    seen: list[list[int]] = []

    def loss_fn(m, batch, epoch):
        if m.training:
            if len(seen) <= epoch:
                seen.append([])
            seen[epoch].extend(int(v) for v in batch[0][:, 0])
        return {"loss": (m(batch[0]) ** 2).mean() * 0.0 + m.weight.sum() ** 2}

    cfg = TrainConfig(epochs=3, batch_size=16, patience=5, min_epochs=0, progress=False, epoch_size=40)
    fit(torch.nn.Linear(1, 1), loss_fn, (x,), None, cfg)
    assert [len(e) for e in seen] == [40, 40, 40] and all(len(set(e)) == 40 for e in seen)
    assert set(seen[0]) != set(seen[1])
    seen.clear()
    fit(torch.nn.Linear(1, 1), loss_fn, (x,), None, replace(cfg, epoch_size=None))
    assert [sorted(e) for e in seen] == [list(range(100))] * 3
    with pytest.raises(ConfigError, match="epoch_size"):
        TrainConfig(epoch_size=0)


def test_train_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1.0)


def test_training_reduces_the_loss_and_writes_a_loadable_checkpoint(history, recession, tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = TrainConfig(epochs=6, batch_size=128, lr=1e-2, patience=10, min_epochs=0, kl_warmup=2, progress=False)
    res = train_macro_vae(history["2000-01-01":], TINY, cfg, recession=recession, val_fraction=0.4, out=tmp_path / "ck",
                          end="2014-12")
    rows = [r for r in res.fit.history if "stage" not in r]
    assert res.metadata()["history_end"] == "2014-12-01"  # the out-of-time cut is the last month seen
    assert rows[-1]["train_nll"] < rows[0]["train_nll"]
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["training"]["train_windows"] == len(res.train_index)
    model = MacroVAE.from_pretrained(tmp_path / "ck")
    paths = model.generate(scenario=None, seq_length=24, n_samples=5, seed=0)
    assert paths.shape == (5, 24, 9) and torch.isfinite(paths).all()
    # the start bank holds the first month of every window the final model was trained on
    assert model.start_states.shape == (len(res.labels), 9)
    # the backbone's scenario intercepts are fitted (0 for the reference label, the lowest present)
    present = np.unique(res.labels)
    assert torch.equal(model.decoder.scenario_drift[present[0]], torch.zeros(9))
    assert len(present) > 1 and float(model.decoder.scenario_drift[present[1:]].abs().sum()) > 0


# ---------------------------------------------------------------- CLI
def test_cli_train_macro_writes_a_checkpoint(tmp_path, capsys):
    from creditsim.cli import main

    out = tmp_path / "vae"
    with pytest.raises(SystemExit) as exc:
        main(["train", "macro", "--epochs", "2", "--hidden-dim", "8", "--latent-dim", "2", "--patience", "5",
              "--out", str(out), "--quiet"])
    assert exc.value.code == 0
    assert (out / "model.safetensors").is_file() and (out / "scalers.json").is_file()
    assert "best_epoch" in capsys.readouterr().out


def test_cli_train_macro_rejects_a_file_as_out(tmp_path, capsys):
    from creditsim.cli import main

    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["train", "macro", "--epochs", "1", "--out", str(target), "--quiet"])
    assert exc.value.code == 2
    assert "--out must be a folder" in capsys.readouterr().err


@pytest.mark.parametrize("model_name", ["MacroVAE", "TransitionTransformer", "LoanTrajectoryModel"])
def test_shipped_checkpoints_load_bit_for_bit_through_the_checked_path(model_name):
    """The validating loader (header shapes on the meta device, finite weights, size bounds) keeps
    every shipped checkpoint loading, with every stored tensor (and the MacroVAE scalers) unchanged,
    hence identical outputs."""
    from safetensors.torch import load_file

    from creditsim.loans import trajectory as loan_trajectory
    from creditsim.macro import vae as macro_vae
    from creditsim.transitions import transformer as transition_transformer
    from creditsim.checkpoints import check_weight_shapes, weight_shapes

    module = {"MacroVAE": macro_vae, "TransitionTransformer": transition_transformer,
              "LoanTrajectoryModel": loan_trajectory}[model_name]
    cls, folder = getattr(module, model_name), module.PRETRAINED_DIR
    model = cls.from_pretrained()
    stored = load_file(str(folder / "model.safetensors"))
    state = model.state_dict()
    assert set(stored) <= set(state)
    for key, value in stored.items():
        assert torch.equal(state[key], value), key
    assert weight_shapes(folder / "model.safetensors") == {k: tuple(v.shape) for k, v in stored.items()}
    if model_name == "MacroVAE":
        scalers = json.loads((folder / "scalers.json").read_text())
        for key, name in (("mean", "x_mean"), ("std", "x_std"), ("min", "x_min"), ("max", "x_max")):
            assert torch.equal(state[name], torch.tensor(scalers[key], dtype=torch.float32)), key
    else:  # the header check alone passes on the shipped folder
        check_weight_shapes(folder, lambda: cls(model.config))
