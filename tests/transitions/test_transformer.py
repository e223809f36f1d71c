"""TransitionTransformer: valid matrices, causality, training, checkpoints, errors, and the Markov baseline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.transitions.cohorts import BASE_COHORT_FEATURES, COHORT_FEATURES, cohort_features
from creditsim.errors import CheckpointError, ConfigError, DataError
from creditsim.transitions.evaluate import (
    brier_score,
    chained_curve_gap,
    evaluate_transition_models,
    homogeneous_matrix,
    roll_rate_calibration,
    transition_nll,
)
from creditsim.transitions.transformer import PRETRAINED_DIR, TransitionConfig, TransitionTransformer
from creditsim.states import ABSORBING_STATES, ALLOWED_TRANSITIONS, ASSET_CLASSES, MACRO_VARS, LoanState
from creditsim.transitions.train import (
    SHIPPED_TRAINING,
    TransitionDataConfig,
    build_transition_data,
    prepare_model,
    train_transition_model,
)

TINY = TransitionConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0, max_months=24)
FORBIDDEN = torch.from_numpy(~ALLOWED_TRANSITIONS)


def tiny_model(seed: int = 0, config: TransitionConfig = TINY) -> TransitionTransformer:
    torch.manual_seed(seed)
    return TransitionTransformer(config).eval()


@pytest.fixture(scope="module")
def tiny_data():
    # unjittered: with one training path per scenario a jittered test path could leave the training range
    cfg = TransitionDataConfig(paths_per_scenario=3, n_val=1, n_test=1, n_loans=400, n_months=12, seed=5,
                               scenarios=(0, 2), macro_jitter=0.0)
    return build_transition_data(cfg, progress=False)


# ----------------------------------------------------------------------------- valid matrices
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 4), months=st.integers(1, 30),
       scale=st.sampled_from([1e-3, 1.0, 50.0]))
def test_rows_stochastic_and_forbidden_moves_exactly_zero(seed, batch, months, scale):
    model = tiny_model(seed % 7)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # random (not just initial) weights, large logits included
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
        probs = model(torch.randn(batch, 12, generator=g) * scale, torch.randn(batch, months, 9, generator=g) * scale)
    assert probs.shape == (batch, months, 7, 7)
    assert torch.all(probs >= 0)
    assert torch.all(probs[..., FORBIDDEN] == 0.0)  # exactly zero, not small
    for a in ABSORBING_STATES:
        assert torch.equal(probs[..., a, :], torch.eye(7)[a].expand(batch, months, 7))
    assert torch.allclose(probs.sum(-1), torch.ones(batch, months, 7), atol=1e-6)


def test_month_t_matrix_depends_only_on_macro_up_to_t():
    model = tiny_model(1)
    cf = torch.randn(2, 12)
    macro = torch.randn(2, 20, 9)
    base = model(cf, macro)
    for t in (0, 7, 19):
        bumped = macro.clone()
        bumped[:, t:] += 3.0
        out = model(cf, bumped)
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-7, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t], atol=1e-4)


def test_unemployment_change_input_is_the_overlays_derived_driver_and_causal():
    from creditsim.macro.sensitivity import with_derived
    from creditsim.transitions.transformer import _unemployment_change

    macro = torch.rand(3, 30, 9, dtype=torch.float64) * 0.1
    np.testing.assert_allclose(_unemployment_change(macro).numpy(), with_derived(macro.numpy())[..., -1], atol=1e-15)
    model = tiny_model(2, replace(TINY, unemployment_change=True))
    cf, path = torch.randn(2, 12), torch.randn(2, 20, 9)
    base = model(cf, path)
    bumped = path.clone()
    bumped[:, 9:, MACRO_VARS.index("unemployment_rate")] += 0.02  # a rise from month 9 on
    out = model(cf, bumped)
    assert torch.allclose(out[:, :9], base[:, :9], atol=1e-7, rtol=0)
    assert not torch.allclose(out[:, 9], base[:, 9], atol=1e-5)
    plain = tiny_model(2)
    assert plain.change_in is None and model.change_in is not None


def test_months_beyond_max_months_reuse_the_last_month_embedding():
    model = tiny_model(2)
    out = model(torch.randn(1, 12), torch.zeros(1, 40, 9))  # max_months = 24
    assert out.shape == (1, 40, 7, 7)
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------- loss
def test_loss_is_the_multinomial_nll_per_live_move():
    model = tiny_model(3)
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 20, size=(2, 5, 7, 7)) * ALLOWED_TRANSITIONS
    cf, macro = torch.randn(2, 12), torch.randn(2, 5, 9)
    probs, loss = model(cf, macro, torch.as_tensor(counts, dtype=torch.float32))
    p = probs.detach().double().numpy()
    expected = -(counts * np.log(np.where(counts > 0, p, 1.0))).sum() / counts[..., :4, :].sum()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert transition_nll(p, counts)["nll"] == pytest.approx(expected, rel=1e-5)
    assert float(model.loss(cf, macro, torch.as_tensor(counts, dtype=torch.float32)).item()) == pytest.approx(loss.item())


def test_loss_decreases_on_a_tiny_training_run(tiny_data, tmp_path):
    torch.manual_seed(0)
    model = prepare_model(TransitionTransformer(TINY), tiny_data["train"])
    cf, macro, counts = tiny_data["train"].tensors(TINY.n_cohort_features)
    with torch.no_grad():
        before = model.loss(cf, macro, counts).item()
    cfg = replace(SHIPPED_TRAINING, epochs=8, batch_size=16, patience=8, min_epochs=0, progress=False)
    res = train_transition_model(tiny_data, TINY, cfg, out=tmp_path / "ckpt")
    with torch.no_grad():
        after = res.model.loss(cf, macro, counts).item()
    assert after < before - 0.005
    assert res.fit.epochs_run >= 1
    assert list(res.evaluation.index) == ["transformer", "markov", "markov_by_cohort"]
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["training"]["held_out"]["transformer"]["nll"] == pytest.approx(res.evaluation.loc["transformer", "nll"])
    assert meta["training"]["data"] == "given"


def test_untrained_model_starts_at_the_pooled_markov_prior(tiny_data):
    model = prepare_model(tiny_model(4), tiny_data["train"])
    with torch.no_grad():
        model.head.weight.zero_()
    prior = homogeneous_matrix(tiny_data["train"].counts.sum(axis=(0, 1)))
    with torch.no_grad():
        out = model(torch.randn(1, 12), torch.randn(1, 3, 9)).double().numpy()[0, 0]
    live = prior[:4] > 1e-5
    np.testing.assert_allclose(out[:4][live], prior[:4][live], rtol=1e-4)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, tiny_data):
    model = prepare_model(tiny_model(5), tiny_data["train"])
    cf, macro = torch.randn(3, 12), torch.randn(3, 9, 9)
    model.save_pretrained(tmp_path / "ckpt", extra={"note": "test"})
    loaded = TransitionTransformer.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert torch.equal(loaded(cf, macro), model(cf, macro))
    assert torch.equal(loaded.macro_mean, model.macro_mean)
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_missing_or_mismatched_checkpoint_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        TransitionTransformer.from_pretrained(tmp_path / "nothing")
    tiny_model().save_pretrained(tmp_path / "a")
    replace_cfg = TransitionConfig(d_model=32, n_heads=2, n_layers=1, dropout=0.0, max_months=24)
    TransitionTransformer(replace_cfg).save_pretrained(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").replace(tmp_path / "b" / "model.safetensors")
    with pytest.raises(CheckpointError, match="do not match"):
        TransitionTransformer.from_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TransitionTransformer.from_pretrained(tmp_path / "b")


# ----------------------------------------------------------------------------- errors
def test_bad_shapes_and_values_raise_clear_errors():
    model = tiny_model()
    with pytest.raises(DataError, match=r"macro_path must have shape \(batch, months >= 1, 9\)"):
        model(torch.randn(2, 12), torch.randn(2, 5, 8))
    with pytest.raises(DataError, match=r"cohort_features must have shape \(batch, 12\)"):
        model(torch.randn(2, 11), torch.randn(2, 5, 9))
    with pytest.raises(DataError, match="one macro path per cohort"):
        model(torch.randn(3, 12), torch.randn(2, 5, 9))
    bad = torch.randn(1, 4, 9)
    bad[0, 2, 3] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        model(torch.randn(1, 12), bad)
    counts = torch.zeros(1, 4, 7, 7)
    counts[0, 1, LoanState.CURRENT, LoanState.DPD60] = 1.0
    with pytest.raises(DataError, match="forbids"):
        model(torch.randn(1, 12), torch.randn(1, 4, 9), counts)
    with pytest.raises(DataError, match=r"counts must have shape \(1, 4, 7, 7\)"):
        model(torch.randn(1, 12), torch.randn(1, 4, 9), torch.zeros(1, 3, 7, 7))
    with pytest.raises(DataError, match=r"missing column\(s\) \['risk_level'\]"):
        model.predict(pd.DataFrame(np.zeros((2, 11)), columns=list(BASE_COHORT_FEATURES[:-1])), torch.randn(1, 3, 9))


def test_predict_reads_the_named_features_its_width_implies():
    """12 inputs read the base features (the asset-class shares are ignored), 16 read all of them (a
    missing share is named), another width has no named features and says to call forward()."""
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(2, 16)), columns=list(COHORT_FEATURES))
    frame[["share_corporate", "share_consumer", "share_real_estate", "share_receivables"]] = [1.0, 0.0, 0.0, 0.0]
    path = torch.zeros(1, 3, 9)
    base = tiny_model(0)
    assert base.cohort_feature_names == BASE_COHORT_FEATURES
    shifted = frame.assign(share_corporate=0.0, share_receivables=1.0)
    torch.testing.assert_close(base.predict(frame, path), base.predict(shifted, path), rtol=0, atol=0)
    wide = tiny_model(0, replace(TINY, n_cohort_features=16))
    assert wide.cohort_feature_names == COHORT_FEATURES
    assert not torch.equal(wide.predict(frame, path), wide.predict(shifted, path))
    torch.testing.assert_close(wide.predict(frame, path)[0], wide(torch.as_tensor(frame.to_numpy().copy(), dtype=torch.float32),
                                                                   path.expand(2, 3, 9)), rtol=0, atol=1e-6)
    with pytest.raises(DataError, match=r"missing column\(s\) \['share_receivables'\]"):
        wide.predict(frame.drop(columns="share_receivables"), path)
    with pytest.raises(DataError, match="5 custom cohort features"):
        tiny_model(0, replace(TINY, n_cohort_features=5)).predict(frame, path)


def test_predict_warns_when_macro_paths_leave_the_training_range(tiny_data):
    import warnings

    from creditsim.transitions.transformer import MacroRangeWarning

    model = prepare_model(tiny_model(8), tiny_data["train"])
    feats = pd.DataFrame(tiny_data["train"].cohort_features[:2], columns=list(COHORT_FEATURES))
    inside = torch.as_tensor(tiny_data["test"].macro[:1], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MacroRangeWarning)
        model.predict(feats, inside)
    outside = inside.clone()
    outside[0, 5, 3] = 0.25  # a 25 % policy rate, far above any synthetic path
    with pytest.warns(MacroRangeWarning, match="policy_rate"):
        out = model.predict(feats, outside)
    assert torch.all(out[..., FORBIDDEN] == 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_states": 8}, "n_states must be 7"),
    ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
    ({"dropout": 1.5}, "dropout"),
    ({"n_layers": 0}, "n_layers must be a positive integer"),
])
def test_bad_config_raises_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TransitionConfig(**kwargs)


def test_bad_data_config_raises_config_error():
    with pytest.raises(ConfigError, match="must exceed n_val"):
        TransitionDataConfig(paths_per_scenario=3, n_val=2, n_test=1)


# ----------------------------------------------------------------------------- data and metrics
def test_count_month_t_is_the_move_during_macro_month_t(tiny_data):
    train = tiny_data["train"]
    coarse = train.subset(train.definition == "asset_class")
    # month 0 starts from the cut-off, where every loan is CURRENT
    n_loans_per_path = coarse.counts[:, 0].sum(axis=(-2, -1))
    assert np.all(coarse.counts[:, 0, 1:, :] == 0)
    assert n_loans_per_path.reshape(-1, len(ASSET_CLASSES)).sum(1) == pytest.approx(400)
    # both cohort definitions count the same moves, and MarkovTransitionModel.fit on the panels agrees
    fine = train.subset(train.definition == "asset_class_vintage_risk")
    np.testing.assert_array_equal(fine.counts.sum(axis=(0, 1)), coarse.counts.sum(axis=(0, 1)))
    np.testing.assert_array_equal(train.markov_counts, coarse.counts.sum(axis=(0, 1)))


def test_build_transition_data_is_deterministic_and_splits_by_path():
    cfg = TransitionDataConfig(paths_per_scenario=3, n_val=1, n_test=1, n_loans=100, n_months=6, seed=9, scenarios=(1,))
    a, b = build_transition_data(cfg, progress=False), build_transition_data(cfg, progress=False)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a[split].counts, b[split].counts)
        np.testing.assert_array_equal(a[split].macro, b[split].macro)
    assert not set(a["train"].path) & set(a["test"].path)
    assert not set(a["val"].path) & set(a["test"].path)


def test_brier_and_calibration_against_hand_computed_values():
    p = np.zeros((1, 1, 7, 7))
    p[0, 0] = np.eye(7)
    p[0, 0, 0, :2] = [0.9, 0.1]
    n = np.zeros((1, 1, 7, 7))
    n[0, 0, 0, 0], n[0, 0, 0, 1] = 8, 2
    # loans staying: (0.9-1)^2 + 0.1^2 = 0.02; loans rolling: 0.9^2 + (0.1-1)^2 = 1.62
    assert brier_score(p, n) == pytest.approx((8 * 0.02 + 2 * 1.62) / 10)
    cal = roll_rate_calibration(p, n)
    assert cal.loc["CURRENT->DPD30", "observed"] == pytest.approx(0.2)
    assert cal.loc["CURRENT->DPD30", "predicted"] == pytest.approx(0.1)
    assert cal.loc["CURRENT->DPD30", "ece"] == pytest.approx(0.1)
    # the empirical matrix is perfectly calibrated and chains to the realised default curve
    emp = np.tile(np.eye(7), (1, 2, 1, 1))
    emp[0, :, 0, :] = [0.5, 0.3, 0, 0, 0.2, 0, 0]
    n2 = np.zeros((1, 2, 7, 7))
    n2[0, 0, 0] = [5, 3, 0, 0, 2, 0, 0]
    n2[0, 1, 0] = [2.5, 1.5, 0, 0, 1, 0, 0]
    n2[0, 1, 1, 1], n2[0, 1, 4, 4] = 3, 2
    assert roll_rate_calibration(emp, n2).loc["CURRENT->DPD30", "ece"] == pytest.approx(0.0)
    assert chained_curve_gap(emp, n2)["cum_default_gap"] == pytest.approx(0.0, abs=1e-12)


def test_homogeneous_matrix_matches_markov_transition_model_fit():
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.transitions.markov import MarkovTransitionModel
    from creditsim.transitions.train import _panel_with_cutoff_row
    from creditsim.transitions.cohorts import transition_counts

    loans, panel = LoanTapeGenerator(300, 12, random_seed=3).generate()
    full = _panel_with_cutoff_row(panel, loans, pd.Timestamp("2025-01-01"))
    counts, _, _ = transition_counts(full, loans)
    fitted = MarkovTransitionModel().fit(full).transition_matrix_
    np.testing.assert_allclose(homogeneous_matrix(counts.sum(axis=(0, 1))), fitted, atol=1e-12)


# ----------------------------------------------------------------------------- simulation plumbing
def test_cohort_matrices_for_a_tape_in_sorted_cohort_order():
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.macro.synthetic import MacroScenarioGenerator

    model = tiny_model(6)
    loans, _ = LoanTapeGenerator(200, 2, random_seed=1).generate()
    paths = MacroScenarioGenerator(10).generate_scenario("adverse", 3, seed=2)
    mats, cohorts = model.cohort_matrices(loans, paths)
    feats = cohort_features(loans)
    assert list(cohorts) == sorted(cohorts) == list(feats.index)
    assert mats.shape == (3, len(cohorts), 10, 7, 7) and mats.dtype == np.float64
    with torch.no_grad():
        direct = model(torch.tensor(feats[list(BASE_COHORT_FEATURES)].iloc[[2]].to_numpy(), dtype=torch.float32),
                       torch.as_tensor(paths[[1]], dtype=torch.float32))[0].double().numpy()
    np.testing.assert_allclose(mats[1, 2], direct, atol=1e-6)  # batched vs single: float rounding only
    bound = model.for_tape(loans)
    per_class = bound.scenario_matrices(paths)
    assert per_class.shape == (3, len(ASSET_CLASSES), 10, 7, 7)
    assert np.all(per_class[..., ~ALLOWED_TRANSITIONS] == 0.0)


def test_tape_bound_model_plugs_into_the_pool_engine():
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.macro.synthetic import MacroScenarioGenerator
    from creditsim.risk.pool_engine import PoolEngine

    loans, _ = LoanTapeGenerator(60, 2, random_seed=4, asset_mix={"consumer": 1.0}).generate()
    model = tiny_model(7)
    engine = PoolEngine.from_tape(loans, seed=0, horizon=6, transition_model=model.for_tape(loans))
    macro = MacroScenarioGenerator(6).generate_scenario(0, 2, seed=0)
    mats = engine.cohort_matrices(macro)
    assert mats.shape[:3] == (2, len(ASSET_CLASSES), 6)
    np.testing.assert_allclose(mats.sum(-1), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- the shipped model
def _shipped() -> TransitionTransformer:
    if not (PRETRAINED_DIR / "model.safetensors").is_file():
        pytest.skip("no shipped checkpoint; run python -m creditsim.transitions.train")
    return TransitionTransformer.from_pretrained()


def test_shipped_checkpoint_beats_homogeneous_markov_on_held_out_paths():
    model = _shipped()
    # a seed the shipped training never used: new macro paths and new loans
    cfg = TransitionDataConfig(paths_per_scenario=2, n_val=0, n_test=1, n_loans=800, n_months=36, seed=2024)
    data = build_transition_data(cfg, progress=False)
    table = evaluate_transition_models(model, data["train"], data["test"])
    assert table.loc["transformer", "nll"] < table.loc["markov", "nll"]
    assert table.loc["transformer", "nll"] < table.loc["markov_by_cohort", "nll"]
    assert table.loc["transformer", "brier"] < table.loc["markov", "brier"]


def test_shipped_model_default_rates_rise_with_the_stress_scenario():
    from creditsim.transitions.synthetic import LoanTapeGenerator
    from creditsim.macro.synthetic import MacroScenarioGenerator

    model = _shipped()
    loans, _ = LoanTapeGenerator(500, 2, random_seed=11).generate()
    gen = MacroScenarioGenerator(24)
    paths = np.concatenate([gen.generate_scenario(s, 20, seed=3) for s in ("baseline", "severely_adverse")])
    mats = model.for_tape(loans).scenario_matrices(paths)  # (40, 4, 24, 7, 7)
    pi = np.zeros(mats.shape[:2] + (7,))
    pi[..., LoanState.CURRENT] = 1.0
    for t in range(24):
        pi = np.einsum("scA,scAB->scB", pi, mats[:, :, t])
    cum_default = pi[..., LoanState.DEFAULT]  # (40, 4)
    assert np.all(cum_default[20:].mean(0) > cum_default[:20].mean(0))


def test_macro_link_offset_reproduces_the_markov_overlay_for_single_class_cohorts(tmp_path):
    """An untrained model whose head is the prior alone (zero weights) plus the stored credit link is the
    calibrated Markov overlay, class by class, under stressed paths: the offset is that chain's tilt
    (computed independently in numpy float64 by MarkovTransitionModel.scenario_matrices)."""
    from creditsim.macro.scenarios import fed_table_path
    from creditsim.transitions.markov import MarkovTransitionModel, base_case_matrix

    chain = MarkovTransitionModel.default()
    paths = np.stack([fed_table_path(2025, name)[:30] for name in ("baseline", "severely_adverse")])
    paths[1, :, MACRO_VARS.index("policy_rate")] += 0.05  # past the clip for some months: the clip is applied too
    expected = chain.scenario_matrices(paths)  # (2, 4, 30, 7, 7)
    model = tiny_model(3, replace(TINY, n_cohort_features=16, macro_link=True, max_months=40))
    model.set_macro_link(chain)
    with torch.no_grad():
        model.head.weight.zero_()
    for a, cls in enumerate(ASSET_CLASSES):
        model.set_prior(base_case_matrix(cls), floor=1e-12)
        shares = np.zeros((2, 16))
        shares[:, 12 + a] = 1.0
        with torch.no_grad():
            got = model(torch.as_tensor(shares, dtype=torch.float32), torch.as_tensor(paths, dtype=torch.float32))
        np.testing.assert_allclose(got.double().numpy(), expected[:, a], atol=2e-6, err_msg=cls)
    assert not np.allclose(expected[1, 0], expected[0, 0], atol=1e-3)  # the stress moves the matrices
    # the link travels with the checkpoint
    model.save_pretrained(tmp_path / "linked")
    loaded = TransitionTransformer.from_pretrained(tmp_path / "linked")
    assert loaded.config.macro_link and torch.equal(loaded.link_beta, model.link_beta)
    with torch.no_grad():
        torch.testing.assert_close(loaded(torch.as_tensor(shares, dtype=torch.float32), torch.as_tensor(paths, dtype=torch.float32)),
                                   got, rtol=0, atol=0)


def test_macro_link_needs_the_asset_class_shares_and_a_segmented_chain():
    from creditsim.transitions.markov import MarkovTransitionModel, base_case_matrix

    with pytest.raises(ConfigError, match="macro_link needs the asset-class shares"):
        TransitionConfig(macro_link=True)
    with pytest.raises(ConfigError, match="macro_link=False"):
        tiny_model(0).set_macro_link(MarkovTransitionModel.default())
    linked = tiny_model(0, replace(TINY, n_cohort_features=16, macro_link=True))
    by_region = MarkovTransitionModel.from_matrix(np.stack([base_case_matrix("consumer")] * 2), segments=["north", "south"],
                                                  segment_sensitivities={"north": {"default": {"gdp_growth": -0.1}}})
    with pytest.raises(ConfigError, match=r"keyed by \['north'\], not by the asset classes"):
        linked.set_macro_link(by_region)
    linked.set_macro_link(MarkovTransitionModel.default(calibrated=False))  # one shared link: every class takes it
    assert torch.equal(linked.link_beta[0], linked.link_beta[3]) and bool(linked.link_beta.any())


def test_macro_link_checkpoint_edge_cases_and_config_checks(tmp_path):
    """An unclipped link saves and loads; an unset link is not saved; the flags are booleans; the link needs
    the nine macro variables; shares that are not fractions summing to 1 are named."""
    from creditsim.transitions.markov import MarkovTransitionModel

    wide = replace(TINY, n_cohort_features=16, macro_link=True)
    chain = MarkovTransitionModel.default()
    chain.z_clip = None
    model = tiny_model(1, wide)
    model.set_macro_link(chain)
    model.save_pretrained(tmp_path / "unclipped")
    assert torch.isinf(TransitionTransformer.from_pretrained(tmp_path / "unclipped").link_z_clip).all()
    with pytest.raises(ConfigError, match="set_macro_link was never called"):
        tiny_model(1, wide).save_pretrained(tmp_path / "unset")
    with pytest.raises(ConfigError, match="macro_link must be True or False"):
        TransitionConfig(n_cohort_features=16, macro_link="no")
    with pytest.raises(ConfigError, match="n_macro_vars must be 9"):
        TransitionConfig(n_cohort_features=16, macro_link=True, n_macro_vars=5)
    frame = pd.DataFrame(np.zeros((3, 16)), columns=list(COHORT_FEATURES), index=["a", "b", "c"])
    frame["share_corporate"] = [1.0, 100.0, 0.5]  # row b in percent, row c sums to 0.5
    with pytest.raises(DataError, match=r"summing to 1; not so in 2 row\(s\), e.g. \['b', 'c'\]"):
        model.predict(frame, torch.zeros(1, 3, 9))


def test_without_macro_inputs_the_path_reaches_the_matrices_only_through_the_link():
    from creditsim.transitions.markov import MarkovTransitionModel

    cf = torch.zeros(2, 16)
    cf[:, 12] = 1.0
    calm, stressed = torch.full((2, 6, 9), 0.03), torch.full((2, 6, 9), 0.03)
    stressed[:, :, MACRO_VARS.index("credit_spread_hy")] = 0.12
    blind = tiny_model(2, replace(TINY, n_cohort_features=16, macro_inputs=False))
    with torch.no_grad():
        torch.testing.assert_close(blind(cf, calm), blind(cf, stressed), rtol=0, atol=0)
        linked = tiny_model(2, replace(TINY, n_cohort_features=16, macro_inputs=False, macro_link=True))
        linked.set_macro_link(MarkovTransitionModel.default())
        pd_calm, pd_stress = (linked(cf, p)[0, :, 0, LoanState.DEFAULT] for p in (calm, stressed))
    assert bool((pd_stress > pd_calm).all())  # the corporate link raises PD with the HY spread
