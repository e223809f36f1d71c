"""creditsim.userwarn.warn: a warning is reported at the first frame outside creditsim, whatever the path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from creditsim.userwarn import _internal, warn


def test_a_direct_call_reports_the_callers_line() -> None:
    with pytest.warns(UserWarning, match="here") as caught:
        warn("here")
    assert caught[0].filename == __file__


def test_through_simulate_an_anchored_source_warns_at_the_users_line() -> None:
    """A supervisory severely adverse table lies outside the VAE's training range and degenerates its
    particles: both warnings name this file, though they are raised three to six frames down."""
    from creditsim.examples import example_path
    from creditsim.risk.simulate import simulate
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(200, 1, random_seed=1).generate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        simulate(loans, example_path("example_clo.yaml"), n_simulations=8, macro="fed:2026:severely_adverse", seed=1,
                 progress=False, horizon=12)
    mine = [w for w in caught if "training range" in str(w.message) or "effective sample size" in str(w.message)]
    assert mine and all(w.filename == __file__ for w in mine), [(w.filename, str(w.message)[:60]) for w in mine]


def test_wrapper_frames_count_as_internal() -> None:
    import contextlib

    import creditsim

    assert _internal(creditsim.__file__) and _internal(contextlib.__file__)
    assert not _internal(__file__) and not _internal(np.__file__)
