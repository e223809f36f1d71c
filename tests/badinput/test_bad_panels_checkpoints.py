"""Bad input for the Markov chain (panels, simulate, pd_curve) and for model checkpoints.

Every case is either a one-line error of the documented class whose message names the column, row,
field, tensor or parameter, or a documented correct result (then the result is asserted). Tables are
``(case id, builder, expected error class or None, substring of the message)``.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.errors import CheckpointError, ConfigError, CreditSimError, DataError, NotFittedError
from creditsim.loans.trajectory import LoanTrajectoryModel
from creditsim.macro.vae import MacroVAE
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.transitions.transformer import TransitionTransformer
from creditsim.states import MACRO_VARS, LoanState

# ------------------------------------------------------------------------------------------ panels

#: monthly paths of a small valid panel: loan -> states from 2021-01
_PATHS = {"A": [0, 0, 1, 0, 0], "B": [0, 1, 2, 3, 4], "C": [0, 0, 5], "D": [1, 0, 0, 6]}


def _panel(**changes: Any) -> pd.DataFrame:
    """``(n_rows, 4)`` valid panel (loan_id, reporting_month, current_balance, loan_state), then ``changes``
    as ``column -> {row: value}`` applied to it."""
    rows = [(loan, pd.Timestamp("2021-01-01") + pd.DateOffset(months=t), 100.0, s)
            for loan, path in _PATHS.items() for t, s in enumerate(path)]
    df = pd.DataFrame(rows, columns=["loan_id", "reporting_month", "current_balance", "loan_state"])
    for col, values in changes.items():
        if col not in df.columns:
            df[col] = None
        df[col] = df[col].astype(object)
        for row, value in values.items():
            df.at[row, col] = value
    return df


def _row(loan: str, t: int) -> int:
    """Row label of month ``t`` of ``loan`` in :func:`_panel`."""
    return _panel().index[(_panel()["loan_id"] == loan)].tolist()[t]


def _fit(panel: object, **kwargs: Any) -> MarkovTransitionModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows without observations are filled with a warning
        return MarkovTransitionModel().fit(panel, **kwargs)


_REF = _fit(_panel())


def _same_as_reference(model: MarkovTransitionModel) -> None:
    np.testing.assert_array_equal(model.transition_matrix_, _REF.transition_matrix_)
    np.testing.assert_array_equal(model.counts_, _REF.counts_)


def _gap_counts(model: MarkovTransitionModel) -> None:
    # loan A reports months 0, 1, 3, 4 (month 2 missing): 0->0 and 0->0 only, not 0->0 across the gap
    assert int(model.counts_.sum()) == int(_REF.counts_.sum()) - 2


def _single_loan(model: MarkovTransitionModel) -> None:
    # one loan 0,1,2,3,4: every live row has one move; nothing else observed
    assert int(model.counts_.sum()) == 4 and model.transition_matrix_[LoanState.DPD90, LoanState.DEFAULT] == 1.0
    assert model.empty_rows_ == []


def _censored_ints(model: MarkovTransitionModel) -> None:
    assert int(model.censored_counts_.sum()) == 1 and model.censored_counts_[LoanState.CURRENT] == 1


PANEL_CASES: list[tuple[str, Callable[[], Any], type[Exception] | None, Any]] = [
    ("not-a-frame", lambda: _fit({"loan_id": ["a"]}), DataError, "expected a pandas DataFrame"),
    ("missing-loan_state", lambda: _fit(_panel().drop(columns="loan_state")), DataError, "['loan_state']"),
    ("missing-loan_id", lambda: _fit(_panel().drop(columns="loan_id")), DataError, "['loan_id']"),
    ("missing-reporting_month", lambda: _fit(_panel().drop(columns="reporting_month")), DataError, "['reporting_month']"),
    ("empty-panel", lambda: _fit(_panel().iloc[:0]), DataError, "no rows"),
    ("unknown-state-7", lambda: _fit(_panel(loan_state={3: 7})), DataError, "column 'loan_state'"),
    ("negative-state", lambda: _fit(_panel(loan_state={0: -1})), DataError, "column 'loan_state'"),
    ("nan-state", lambda: _fit(_panel(loan_state={2: np.nan})), DataError, "no missing values"),
    ("fractional-state", lambda: _fit(_panel(loan_state={2: 1.5})), DataError, "an integer"),
    ("state-name-upper", lambda: _fit(_panel(loan_state={1: "CURRENT"})), DataError, "column 'loan_state'"),
    ("state-name-lower", lambda: _fit(_panel(loan_state={1: "current"})), DataError, "column 'loan_state'"),
    ("state-digit-strings-ok", lambda: _same_as_reference(_fit(_panel().assign(loan_state=lambda d: d["loan_state"].astype(str)))), None, None),
    ("duplicate-loan-month", lambda: _fit(pd.concat([_panel(), _panel().iloc[[1]]], ignore_index=True)), DataError, "one row per (loan_id, reporting_month)"),
    ("duplicate-index-labels", lambda: _fit(pd.concat([_panel().query("loan_id == 'A'"), _panel().query("loan_id == 'B'")
                                                       .reset_index(drop=True)])), DataError, "duplicate row label"),
    ("unsorted-months-ok", lambda: _same_as_reference(_fit(_panel().sample(frac=1.0, random_state=3))), None, None),
    ("gap-is-not-a-move", lambda: _gap_counts(_fit(_panel().drop(index=_row("A", 2)))), None, None),
    ("bad-month-text", lambda: _fit(_panel(reporting_month={4: "2021-13-01"})), DataError, "column 'reporting_month'"),
    ("nan-month", lambda: _fit(_panel(reporting_month={4: None})), DataError, "column 'reporting_month'"),
    ("nan-loan-id", lambda: _fit(_panel(loan_id={0: None})), DataError, "column 'loan_id'"),
    ("out-of-default", lambda: _fit(_panel(loan_state={_row("B", 4): 4}).pipe(
        lambda d: pd.concat([d, pd.DataFrame({"loan_id": ["B"], "reporting_month": [pd.Timestamp("2021-06-01")],
                                              "current_balance": [1.0], "loan_state": [0]})], ignore_index=True))),
     DataError, "4->0"),
    ("out-of-prepaid", lambda: _fit(pd.concat([_panel(), pd.DataFrame({"loan_id": ["C"], "reporting_month": [pd.Timestamp("2021-04-01")],
                                                                      "current_balance": [1.0], "loan_state": [4]})], ignore_index=True)),
     DataError, "5->4"),
    ("jump-current-to-dpd60", lambda: _fit(_panel(loan_state={_row("A", 2): 2})), DataError, "0->2"),
    ("jump-current-to-dpd90", lambda: _fit(_panel(loan_state={_row("A", 3): 3})), DataError, "allowed month-to-month moves"),
    ("single-row", lambda: _fit(_panel().iloc[:1]), DataError, "no one-month transitions"),
    ("only-gaps", lambda: _fit(_panel().iloc[[0, 2, 4]]), DataError, "only 0 of 2 consecutive rows of a loan are one month apart"),
    ("single-loan-ok", lambda: _single_loan(_fit(_panel().query("loan_id == 'B'"))), None, None),
    ("no-balance-column-ok", lambda: _same_as_reference(_fit(_panel().drop(columns="current_balance"))), None, None),
    ("bad-balances-unread-ok", lambda: _same_as_reference(_fit(_panel(current_balance={0: -5.0, 1: np.nan}))), None, None),
    ("by-missing-column", lambda: _fit(_panel(), by="segment"), DataError, "segment column 'segment' is missing"),
    ("by-not-a-name", lambda: _fit(_panel(), by=3), DataError, "segment column '3'"),
    ("by-with-nan", lambda: _fit(_panel(segment={0: None}).fillna({"segment": np.nan}).assign(
        segment=lambda d: d["segment"].where(d.index == 0, "x")), by="segment"), DataError, "segment column 'segment' has 1 missing"),
    ("censored-not-last-row", lambda: _fit(_panel(censored={0: True}).fillna({"censored": False})), DataError, "'censored'"),
    ("censored-on-default", lambda: _fit(_panel(censored={_row("B", 4): True}).fillna({"censored": False})), DataError, "live state"),
    ("censored-nan", lambda: _fit(_panel().assign(censored=np.nan)), DataError, "column 'censored'"),
    ("censored-text", lambda: _fit(_panel().assign(censored="no")), DataError, "True / False"),
    ("censored-ints-ok", lambda: _censored_ints(_fit(_panel().assign(censored=0).pipe(
        lambda d: d.assign(censored=np.where(d.index == _row("A", 4), 1, 0))))), None, None),
    ("macro-not-a-frame", lambda: _fit(_panel(), macro=[1, 2, 3]), DataError, "macro frame"),
    ("macro-missing-vars", lambda: _fit(_panel(), macro=pd.DataFrame({"gdp_growth": [0.01]},
                                                                     index=pd.date_range("2021-01-01", periods=1, freq="MS"))),
     DataError, "missing required column(s)"),
]


@pytest.mark.parametrize("case, build, exc, text", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_bad_panels(case: str, build: Callable[[], Any], exc: type[Exception] | None, text: str | None) -> None:
    _check(build, exc, text)


def _check(build: Callable[[], Any], exc: type[Exception] | None, text: str | None) -> None:
    if exc is None:
        build()  # the builder asserts the documented result
        return
    with pytest.raises(exc) as info:
        build()
    message = str(info.value)
    assert isinstance(info.value, CreditSimError) and "\n" not in message, message
    assert text in message, message


# ------------------------------------------------------------------------------------------ simulate / pd_curve

_MODEL = MarkovTransitionModel.from_matrix(_REF.transition_matrix_)


def _empty_simulation() -> None:
    out = _MODEL.simulate(np.array([], dtype=np.int64), 3, seed=0)
    assert out.shape == (0, 3) and out.dtype == np.int8


def _absorbed_pd() -> None:
    np.testing.assert_array_equal(_MODEL.pd_curve(3, initial_state=LoanState.DEFAULT), np.ones(3))


def _enum_state_pd() -> None:
    np.testing.assert_array_equal(_MODEL.pd_curve(4, initial_state=LoanState.DPD30), _MODEL.pd_curve(4, initial_state=1))


USE_CASES: list[tuple[str, Callable[[], Any], type[Exception] | None, Any]] = [
    ("seed-negative", lambda: _MODEL.simulate([0, 1], 3, seed=-1), ConfigError, "seed"),
    ("seed-float", lambda: _MODEL.simulate([0, 1], 3, seed=1.5), ConfigError, "seed"),
    ("seed-text", lambda: _MODEL.simulate([0, 1], 3, seed="abc"), ConfigError, "seed"),
    ("seed-bool", lambda: _MODEL.simulate([0, 1], 3, seed=True), ConfigError, "seed"),
    ("n_steps-zero", lambda: _MODEL.simulate([0, 1], 0, seed=1), ConfigError, "n_steps"),
    ("n_steps-negative", lambda: _MODEL.simulate([0, 1], -3, seed=1), ConfigError, "n_steps"),
    ("n_steps-float", lambda: _MODEL.simulate([0, 1], 2.0, seed=1), ConfigError, "n_steps"),
    ("n_steps-none", lambda: _MODEL.simulate([0, 1], None, seed=1), ConfigError, "n_steps"),
    ("initial-state-7", lambda: _MODEL.simulate([0, 7], 3, seed=1), DataError, "initial_states"),
    ("initial-state-name", lambda: _MODEL.simulate(["CURRENT"], 3, seed=1), DataError, "initial_states"),
    ("initial-state-fraction", lambda: _MODEL.simulate([0.5], 3, seed=1), DataError, "initial_states"),
    ("initial-state-nan", lambda: _MODEL.simulate([np.nan], 3, seed=1), DataError, "initial_states"),
    ("initial-states-2d", lambda: _MODEL.simulate([[0, 1]], 3, seed=1), DataError, "1-D"),
    ("initial-states-empty-ok", _empty_simulation, None, None),
    ("segment-wrong-length", lambda: _MODEL.simulate([0, 1], 3, seed=1, segment=[0]), DataError, "segment"),
    ("segment-out-of-range", lambda: _MODEL.simulate([0, 1], 3, seed=1, segment=[0, 2]), DataError, "segment"),
    ("horizon-zero", lambda: _MODEL.pd_curve(0), ConfigError, "horizon"),
    ("horizon-negative", lambda: _MODEL.pd_curve(-12), ConfigError, "horizon"),
    ("horizon-float", lambda: _MODEL.pd_curve(1.5), ConfigError, "horizon"),
    ("horizon-text", lambda: _MODEL.pd_curve("12"), ConfigError, "horizon"),
    ("pd-initial-state-9", lambda: _MODEL.pd_curve(12, initial_state=9), DataError, "initial_state"),
    ("pd-initial-state-name", lambda: _MODEL.pd_curve(12, initial_state="CURRENT"), DataError, "initial_state"),
    ("pd-from-default-ok", _absorbed_pd, None, None),
    ("pd-enum-state-ok", _enum_state_pd, None, None),
    ("matrix-power-negative", lambda: _MODEL.matrix_power(-1), ConfigError, "n must be"),
    ("not-fitted", lambda: MarkovTransitionModel().pd_curve(12), NotFittedError, "not fitted"),
    ("macro-paths-nan", lambda: _MODEL.scenario_matrices(np.full((1, 2, len(MACRO_VARS)), np.nan)), DataError, "macro_paths"),
]


@pytest.mark.parametrize("case, build, exc, text", USE_CASES, ids=[c[0] for c in USE_CASES])
def test_bad_simulate_and_pd_curve_arguments(case: str, build: Callable[[], Any], exc: type[Exception] | None,
                                             text: str | None) -> None:
    _check(build, exc, text)


# ------------------------------------------------------------------------------------------ checkpoints

_PRETRAINED = Path(__file__).resolve().parents[2] / "creditsim" / "pretrained"
#: model class, shipped folder, its width field and its layer-count field
_MODELS = {
    "MacroVAE": (MacroVAE, _PRETRAINED / "macro_vae", "hidden_dim", "n_layers"),
    "TransitionTransformer": (TransitionTransformer, _PRETRAINED / "transition", "d_model", "n_layers"),
    "LoanTrajectoryModel": (LoanTrajectoryModel, _PRETRAINED / "trajectory", "d_model", "n_layers"),
}


def _copy(name: str, tmp: Path) -> Path:
    folder = tmp / name
    shutil.copytree(_MODELS[name][1], folder)
    return folder


def _edit_config(folder: Path, edit: Callable[[dict], Any], replace: bool = False) -> None:
    """Edit config.json in place with ``edit(meta)``; with ``replace`` write its return value instead."""
    meta = json.loads((folder / "config.json").read_text())
    result = edit(meta)
    (folder / "config.json").write_text(json.dumps(result if replace else meta))


def _edit_weights(folder: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def _first_float(tensors: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(tensors) if tensors[k].is_floating_point() and tensors[k].numel() > 1
                and not k.startswith(("start_", "macro_min", "macro_max")))


def _nan_weight(t: dict[str, torch.Tensor]) -> None:
    t[_first_float(t)].view(-1)[0] = math.nan


def _inf_weight(t: dict[str, torch.Tensor]) -> None:
    t[_first_float(t)].view(-1)[-1] = math.inf


def _drop_tensor(t: dict[str, torch.Tensor]) -> None:
    del t[_first_float(t)]


def _extra_tensor(t: dict[str, torch.Tensor]) -> None:
    t["blocks.99.mlp.weight"] = torch.zeros(2, 2)


def _wrong_shape(t: dict[str, torch.Tensor]) -> None:
    key = _first_float(t)
    t[key] = torch.cat([t[key], t[key]], dim=0)


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _set(field: str, value: Any) -> Callable[[dict], None]:
    return lambda meta: meta["config"].__setitem__(field, value)


def _widen_consistently(name: str) -> Callable[[dict], None]:
    """A valid config of another width (heads still divide it): only the tensor shapes disagree."""
    width = _MODELS[name][2]
    return lambda meta: meta["config"].__setitem__(width, 2 * meta["config"][width])


# (case id, how the copied folder is broken, expected substring); every one is a CheckpointError
CHECKPOINT_BREAKS: list[tuple[str, Callable[[str, Path], None], str]] = [
    ("huge-width", lambda n, f: _edit_config(f, _set(_MODELS[n][2], 2_000_000)), "must be an integer in [1, "),
    ("negative-width", lambda n, f: _edit_config(f, _set(_MODELS[n][2], -32)), "positive integer"),
    ("huge-layer-count", lambda n, f: _edit_config(f, _set(_MODELS[n][3], 100_000)), ".n_layers must be an integer in"),
    ("width-as-text", lambda n, f: _edit_config(f, _set(_MODELS[n][2], "32")), "positive integer, got '32'"),
    ("wrong-model-field", lambda n, f: _edit_config(f, lambda m: m.__setitem__("model", "OtherModel")), "describes 'OtherModel'"),
    ("missing-model-field", lambda n, f: _edit_config(f, lambda m: m.pop("model")), "describes None"),
    ("json-not-object", lambda n, f: _edit_config(f, lambda m: [m], replace=True), "describes 'list'"),
    ("config-not-object", lambda n, f: _edit_config(f, lambda m: m.__setitem__("config", [1, 2])), "expected a JSON object"),
    ("config-missing", lambda n, f: _edit_config(f, lambda m: m.pop("config")), "no 'config' field"),
    ("unknown-field", lambda n, f: _edit_config(f, _set("flash_attention", True)), "unknown fields ['flash_attention']"),
    ("invalid-json", lambda n, f: (f / "config.json").write_text('{"model": '), "is not valid JSON"),
    ("config-file-missing", lambda n, f: (f / "config.json").unlink(), "checkpoint file missing"),
    ("nan-dropout", lambda n, f: _edit_config(f, _set("dropout", math.nan)), "dropout"),
    ("nan-weight", lambda n, f: _edit_weights(f, _nan_weight), "hold NaN or infinite values"),
    ("inf-weight", lambda n, f: _edit_weights(f, _inf_weight), "hold NaN or infinite values"),
    ("missing-tensor", lambda n, f: _edit_weights(f, _drop_tensor), "missing tensors ['"),
    ("unexpected-tensor", lambda n, f: _edit_weights(f, _extra_tensor), "unexpected ['blocks.99.mlp.weight']"),
    ("wrong-tensor-shape", lambda n, f: _edit_weights(f, _wrong_shape), "tensor shapes do not match the config"),
    ("config-other-width", lambda n, f: _edit_config(f, _widen_consistently(n)), "tensor shapes do not match the config"),
    ("truncated-weights", lambda n, f: _truncate(f), "cannot read weights"),
    ("weights-missing", lambda n, f: (f / "model.safetensors").unlink(), "checkpoint file missing"),
]

CHECKPOINT_CASES = [(f"{name}-{case}", name, breaker, text) for name in _MODELS for case, breaker, text in CHECKPOINT_BREAKS]


@pytest.mark.parametrize("case, name, breaker, text", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoints(case: str, name: str, breaker: Callable[[str, Path], None], text: str, tmp_path: Path) -> None:
    folder = _copy(name, tmp_path)
    breaker(name, folder)
    _check(lambda: _MODELS[name][0].from_pretrained(folder), CheckpointError, text)


def _scalers(edit: Callable[[dict], Any], replace: bool = False) -> Callable[[Path], None]:
    """A breaker editing scalers.json in place (or writing ``edit``'s return value with ``replace``)."""
    def apply(folder: Path) -> None:
        scalers = json.loads((folder / "scalers.json").read_text())
        result = edit(scalers)
        (folder / "scalers.json").write_text(json.dumps(result if replace else scalers))
    return apply


# checkpoint fields of one model only
MODEL_SPECIFIC: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("vae-scalers-not-object", "MacroVAE", _scalers(lambda s: "mean", replace=True), "scalers.json must be a JSON object"),
    ("vae-scalers-nan-mean", "MacroVAE", _scalers(lambda s: s["mean"].__setitem__(0, math.nan)), "field 'mean'"),
    ("vae-scalers-short-std", "MacroVAE", _scalers(lambda s: s.__setitem__("std", s["std"][:3])), "field 'std'"),
    ("vae-scalers-variables", "MacroVAE", _scalers(lambda s: s["variables"].reverse()), "scalers variables"),
    ("vae-scalers-missing", "MacroVAE", lambda f: (f / "scalers.json").unlink(), "checkpoint file missing"),
    ("vae-huge-latent", "MacroVAE", lambda f: _edit_config(f, _set("latent_dim", 10**9)), "latent_dim must be an integer in"),
    ("vae-variables-not-names", "MacroVAE", lambda f: _edit_config(f, _set("variables", 9)), "malformed field value"),
    ("transition-macro-vars", "TransitionTransformer", lambda f: _edit_config(f, lambda m: m["macro_vars"].reverse()), "macro variables"),
    ("transition-macro-vars-text", "TransitionTransformer", lambda f: _edit_config(f, lambda m: m.__setitem__("macro_vars", "gdp")), "macro variables 'gdp'"),
    ("transition-heads-divide", "TransitionTransformer", lambda f: _edit_config(f, _set("n_heads", 5)), "divisible by n_heads"),
    ("trajectory-value-names", "LoanTrajectoryModel", lambda f: _edit_config(f, lambda m: m.__setitem__("value_names", ["lgd"])), "value_names"),
    ("trajectory-huge-steps", "LoanTrajectoryModel", lambda f: _edit_config(f, _set("diffusion_steps", 10**8)), "diffusion_steps must be an integer in"),
]


@pytest.mark.parametrize("case, name, breaker, text", MODEL_SPECIFIC, ids=[c[0] for c in MODEL_SPECIFIC])
def test_bad_model_specific_checkpoint_fields(case: str, name: str, breaker: Callable[[Path], None], text: str,
                                              tmp_path: Path) -> None:
    folder = _copy(name, tmp_path)
    breaker(folder)
    _check(lambda: _MODELS[name][0].from_pretrained(folder), CheckpointError, text)


def test_cli_bad_checkpoint_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from creditsim.cli import main

    folder = _copy("MacroVAE", tmp_path)
    _edit_config(folder, _set("hidden_dim", 2_000_000))
    with pytest.raises(SystemExit) as info:
        main(["eval", "macro", "--checkpoint", str(folder), "--n-samples", "2", "--seeds", "1"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "hidden_dim" in err and "Traceback" not in err, err
