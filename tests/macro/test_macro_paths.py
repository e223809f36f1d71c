"""creditsim.macro_paths: the public way to get the macro paths a run would use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.errors import ConfigError
from creditsim.examples import example_path


def test_macro_paths_are_the_paths_simulate_uses() -> None:
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:80]
    res = cs.simulate(loans, example_path("example_clo.yaml"), n_simulations=12, macro="synthetic", seed=4,
                      horizon=9, progress=False)
    paths, labels = cs.macro_paths(12, horizon=9, source="synthetic", seed=4)
    np.testing.assert_array_equal(paths, res.macro_paths)
    np.testing.assert_array_equal(labels, res.scenarios)
    assert paths.shape == (12, 9, 9)


def test_one_scenario_name_gives_only_that_scenario() -> None:
    paths, labels = cs.macro_paths(20, "severely_adverse", horizon=12, source="synthetic", seed=1)
    assert (labels == 2).all() and np.isfinite(paths).all()
    with pytest.raises(ConfigError, match="n_paths must be an integer >= 1"):
        cs.macro_paths(0)
