"""creditsim.rng: the vectorised SFC64 seeding is numpy's SeedSequence + SFC64 seeding, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.rng import sfc64_generator, sfc64_seed_states

# mostly one-word key entries (the vectorised path), some of two words (numpy's own path)
_KEY_ENTRY = st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**63 - 1))


def _numpy_state(seed: int, key: tuple[int, ...]) -> np.ndarray:
    return sfc64_generator(seed, *key).bit_generator.state["state"]["state"]


@settings(max_examples=60, deadline=None)
@given(seed=st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**200)),
       keys=st.integers(1, 3).flatmap(lambda k: st.lists(st.tuples(*[_KEY_ENTRY] * k), min_size=1, max_size=6)))
def test_seed_states_are_numpys(seed: int, keys: list[tuple[int, ...]]) -> None:
    # seeds of one to seven 32-bit words (SeedSequence pads short run entropy to its pool of four)
    got = sfc64_seed_states(seed, np.array(keys, dtype=np.int64))
    np.testing.assert_array_equal(got, np.stack([_numpy_state(seed, key) for key in keys]))


def test_seed_states_of_the_engine_keys_are_numpys() -> None:
    keys = np.array([(sid, blk) for sid in (0, 1, 2, 999, 2**31, 2**32 - 1, 2**32, 2**40) for blk in (0, 1, 9, 2**32 - 1)])
    for seed in (0, 7, 2**32 - 1, 2**32, 2**128 + 3):
        np.testing.assert_array_equal(sfc64_seed_states(seed, keys), np.stack([_numpy_state(seed, tuple(k)) for k in keys]))


@pytest.mark.parametrize("keys", [np.array([[-1, 0]]), np.zeros((3, 0)), np.zeros(3)])
def test_seed_states_refuse_keys_that_are_not_keys(keys: np.ndarray) -> None:
    with pytest.raises(ValueError, match="keys"):
        sfc64_seed_states(7, keys)
