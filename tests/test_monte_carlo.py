"""Monte Carlo orchestration: scenario mix, labels, macro paths, reproducibility across chunking and
backends, and the stress ordering of the demo portfolio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import ConfigError, DataError
from creditsim.simulation.scenarios import (
    DEFAULT_SCENARIO_MIX,
    build_macro_paths,
    draw_scenario_labels,
    mix_from_string,
    parse_scenario_mix,
)
from creditsim.states import MACRO_VARS


# ---------------------------------------------------------------- scenario mix and labels
def test_default_mix_is_60_25_10_5():
    np.testing.assert_allclose(parse_scenario_mix(None), [0.6, 0.25, 0.1, 0.05])
    assert sum(DEFAULT_SCENARIO_MIX.values()) == pytest.approx(1.0)


def test_mix_forms_agree():
    a = parse_scenario_mix({"baseline": 0.5, "severely_adverse": 0.5})
    b = mix_from_string("baseline=0.5, severely-adverse=0.5")
    c = parse_scenario_mix([0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(parse_scenario_mix("stagflation"), [0, 0, 0, 1])


@pytest.mark.parametrize("mix, match", [
    ({"baseline": 0.5, "adverse": 0.4}, "sum to 1"),
    ({"baseline": 1.2, "adverse": -0.2}, ">= 0"),
    ({"boom": 1.0}, "unknown scenario"),
    ("baseline=0.5,baseline=0.5", "given twice"),
    ("baseline=x", "must be a number"),
    ([0.5, 0.5], "expected 4 weights"),
])
def test_bad_mix_is_a_config_error(mix, match):
    with pytest.raises(ConfigError, match=match):
        parse_scenario_mix(mix)


def test_labels_are_stratified_and_seeded():
    w = parse_scenario_mix(None)
    lab = draw_scenario_labels(w, 1001, seed=7)
    counts = np.bincount(lab, minlength=4)
    # 600.6, 250.25, 100.1, 50.05 -> floors 600/250/100/50, the one left goes to the largest remainder
    assert counts.tolist() == [601, 250, 100, 50]
    np.testing.assert_array_equal(lab, draw_scenario_labels(w, 1001, seed=7))
    assert not np.array_equal(lab, draw_scenario_labels(w, 1001, seed=8))
    assert not np.array_equal(lab[:601], np.zeros(601))  # shuffled, not blocked


def test_synthetic_macro_paths_depend_on_seed_not_on_batching():
    w = parse_scenario_mix({"baseline": 0.5, "severely_adverse": 0.5})
    lab = draw_scenario_labels(w, 40, seed=3)
    p1 = build_macro_paths("synthetic", lab, 24, seed=3)
    assert p1.shape == (40, 24, 9)
    np.testing.assert_array_equal(p1, build_macro_paths("synthetic", lab, 24, seed=3))
    u = MACRO_VARS.index("unemployment_rate")
    # severely adverse paths peak higher in unemployment than baseline paths
    peak = p1[:, :, u].max(axis=1)
    assert peak[lab == 2].mean() > peak[lab == 0].mean() + 0.01


def test_macro_frame_and_array_inputs():
    lab = np.array([0, 2, 0])
    idx = pd.date_range("2025-01-01", periods=12, freq="MS")
    frame = pd.DataFrame(np.full((12, 9), 0.03), index=idx, columns=list(MACRO_VARS))
    paths = build_macro_paths(frame, lab, 12, seed=0)
    assert paths.shape == (3, 12, 9) and np.all(paths == 0.03)
    with pytest.raises(DataError, match="horizon needs 24"):
        build_macro_paths(frame, lab, 24, seed=0)
    bad = frame.copy()
    bad["unemployment_rate"] = 5.0  # percent, not a decimal
    with pytest.raises(DataError, match="unemployment_rate"):
        build_macro_paths(bad, lab, 12, seed=0)
    with pytest.raises(DataError, match="expected shape"):
        build_macro_paths(np.zeros((2, 12, 9)), lab, 12, seed=0)
    with pytest.raises(ConfigError, match="macro must be one of"):
        build_macro_paths("crystal_ball", lab, 12, seed=0)
