"""Path-dispersion calibration of the MacroVAE (creditsim.macro.dispersion): the crossing rule, the
factor's effect on generated paths, anchors still exact, and the round trip through a checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.errors import CheckpointError, ConfigError, DataError
from creditsim.macro.dispersion import _crossing, calibrate_dispersion
from creditsim.macro.vae import MacroVAE


@pytest.fixture(scope="module")
def vae() -> MacroVAE:
    return MacroVAE.from_pretrained()


def test_crossing_interpolates_where_coverage_reaches_the_level() -> None:
    grid = np.array([1.0, 1.5, 2.0])
    coverage = np.array([[0.95, 0.70, 0.60, 0.80],
                         [0.97, 0.80, 0.70, 0.85],
                         [0.99, 1.00, 0.80, 0.84]])  # last column: noise, not monotone, never reaches
    np.testing.assert_allclose(_crossing(grid, coverage, 0.9), [1.0, 1.75, 2.0, 2.0])


def test_a_factor_widens_generated_paths_in_proportion(vae: MacroVAE) -> None:
    """The factor multiplies the innovation sd: month-12 spread from a fixed start grows about in
    proportion (the dynamics propagate it), month 0 stays the start state exactly."""
    from creditsim.datasets import macro_state

    state = macro_state("2019-12")
    cond = {v: {"month": 0, "value": float(state[v])} for v in vae.config.variables}
    sd = {}
    for factor in (1.0, 2.0):
        vae.set_dispersion(np.full(vae.config.n_macro_vars, factor))
        x = vae.generate_conditional(cond, seq_length=13, n_samples=400, scenario=0, start="model", seed=5).double().numpy()
        np.testing.assert_allclose(x[:, 0], np.broadcast_to(state[list(vae.config.variables)].to_numpy(float), (400, 9)),
                                   atol=1e-6)
        sd[factor] = x[:, 12].std(axis=0)
    vae.set_dispersion(np.ones(vae.config.n_macro_vars))
    ratio = sd[2.0] / sd[1.0]
    assert (ratio > 1.3).all() and np.median(ratio) > 1.7, ratio  # floors (rates >= 0) bend a few


def test_calibration_is_at_least_one_restores_the_model_and_is_seeded(vae: MacroVAE) -> None:
    from creditsim.macro.train import load_training_history

    history, _ = load_training_history(pd.Timestamp("2019-12-01"))
    a = calibrate_dispersion(vae, history, step=48, n_paths=64, grid=(1.0, 1.5, 2.5))
    b = calibrate_dispersion(vae, history, step=48, n_paths=64, grid=(1.0, 1.5, 2.5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (vae.config.n_macro_vars,) and (a >= 1.0).all() and (a <= 2.5).all()
    assert (vae.dispersion == 1).all()
    with pytest.raises(DataError, match="at least 5 needed"):
        calibrate_dispersion(vae, history.iloc[:60], step=12)
    with pytest.raises(ConfigError, match="factors >= 1"):
        calibrate_dispersion(vae, history, grid=(0.5, 1.0))


def test_dispersion_survives_a_checkpoint_round_trip_and_bad_values_are_refused(vae: MacroVAE, tmp_path) -> None:
    factors = np.linspace(1.0, 1.8, vae.config.n_macro_vars)
    vae.set_dispersion(factors)
    try:
        vae.save_pretrained(tmp_path / "m")
    finally:
        vae.set_dispersion(np.ones(vae.config.n_macro_vars))
    back = MacroVAE.from_pretrained(tmp_path / "m")
    np.testing.assert_allclose(back.dispersion.numpy(), factors, rtol=1e-6)
    with pytest.raises(ConfigError, match="dispersion: expected 9 factors in"):
        vae.set_dispersion([1.0] * 8)
    with pytest.raises(ConfigError, match="dispersion"):
        vae.set_dispersion([np.nan] * 9)
    import json
    scalers = json.loads((tmp_path / "m" / "scalers.json").read_text())
    scalers["dispersion"] = [0.0] * 9
    (tmp_path / "m" / "scalers.json").write_text(json.dumps(scalers))
    with pytest.raises(CheckpointError, match="dispersion"):
        MacroVAE.from_pretrained(tmp_path / "m")


def test_shifting_endpoint_moves_the_paths_resting_point_and_none_changes_nothing(vae: MacroVAE) -> None:
    """``endpoint`` moves the linear backbone's resting point (Kozicki & Tinsley's shifting endpoint):
    at the backbone's own baseline resting point the shift is zero, so the paths are those without
    it; a lower endpoint for the policy rate and the 10-year yield lowers their 5-year upper quantiles."""
    from creditsim.datasets import macro_state

    state = macro_state("2019-12")
    order = list(vae.config.variables)
    cond = {v: {"month": 0, "value": float(state[v])} for v in order}
    kw = dict(seq_length=61, n_samples=200, scenario=0, start="model", seed=3)
    plain = vae.generate_conditional(cond, **kw).double().numpy()
    np.testing.assert_array_equal(plain, vae.generate_conditional(cond, endpoint=None, **kw).double().numpy())
    W = vae.decoder.linear_ar.weight.double()
    rest_std = torch.linalg.solve(W, -(vae.decoder.linear_ar.bias.double() + vae.decoder.scenario_drift[0].double()))
    rest = vae.denormalize(rest_std.float()).double().numpy()
    x0 = vae.normalize(torch.as_tensor(plain[:, 0], dtype=torch.float32))
    at_rest = vae.generation_backbone(endpoint=rest).correction(x0, torch.zeros(len(x0), dtype=torch.long))
    assert float(at_rest.abs().max()) < 1e-4
    np.testing.assert_allclose(vae.generate_conditional(cond, endpoint=rest, **kw).double().numpy(), plain, atol=1e-3)
    low = rest.copy()
    for var in ("policy_rate", "yield_10y"):
        low[order.index(var)] -= 0.03
    shifted = vae.generate_conditional(cond, endpoint=low, **kw).double().numpy()
    for var in ("policy_rate", "yield_10y"):
        j = order.index(var)
        # the 90th percentile: from 2019-12 the zero floor holds half the policy-rate paths at 5 years
        assert np.quantile(shifted[:, 60, j], 0.9) < np.quantile(plain[:, 60, j], 0.9) - 0.005, var

