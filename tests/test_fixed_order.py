"""Fixed-order sums: the scan shortcut gives the slice loop's bits, for any batch around a row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.fixed_order import column_sum


def slice_loop(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The reference order, written out: ((x_0 + x_1) + x_2) + ... along ``axis``."""
    acc = x.select(axis, 0)
    for j in range(1, x.shape[axis]):
        acc = acc + x.select(axis, j)
    return acc


def wide_range(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    # magnitudes spread over ten decades and both signs: any other order of the adds rounds differently
    return torch.as_tensor(rng.standard_normal(shape) * 10.0 ** rng.uniform(-5, 5, shape))


@given(rows=st.integers(1, 300), n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_class_sum_is_the_slice_loop_bit_for_bit(rows: int, n: int, seed: int) -> None:
    x = wide_range(np.random.default_rng(seed), (rows, n))
    assert torch.equal(column_sum(x, 1), slice_loop(x, 1))
    # a transposed (column-major) layout and a leading axis give the same bits too
    assert torch.equal(column_sum(x.t().contiguous().t(), 1), slice_loop(x, 1))
    assert torch.equal(column_sum(x.t(), 0), slice_loop(x, 1))


def test_a_rows_sum_does_not_depend_on_the_batch_around_it() -> None:
    x = wide_range(np.random.default_rng(3), (1000, 7))
    full = column_sum(x, 1)
    for rows in (slice(0, 1), slice(5, 12), slice(333, 1000)):
        assert torch.equal(column_sum(x[rows], 1), full[rows])
    assert torch.equal(column_sum(x[torch.randperm(1000)], 1).sort().values, full.sort().values)


def test_the_sum_differs_from_a_pairwise_order() -> None:
    # the reference is not vacuous: pairwise (tree) addition of these columns gives other bits
    x = wide_range(np.random.default_rng(5), (2000, 8))
    pairwise = ((x[:, 0] + x[:, 1]) + (x[:, 2] + x[:, 3])) + ((x[:, 4] + x[:, 5]) + (x[:, 6] + x[:, 7]))
    assert not torch.equal(column_sum(x, 1), pairwise)


def test_float32_and_gradients_follow_the_loop() -> None:
    x = wide_range(np.random.default_rng(7), (200, 6)).float()
    assert torch.equal(column_sum(x, 1), slice_loop(x, 1))
    y = wide_range(np.random.default_rng(8), (50, 5)).requires_grad_(True)
    w = torch.arange(1.0, 51.0, dtype=torch.float64)
    (column_sum(y, 1) * w).sum().backward()
    assert torch.equal(y.grad, w.unsqueeze(1).expand(50, 5))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_numpy_and_empty_axes(axis: int) -> None:
    a = np.random.default_rng(9).standard_normal((4, 5))
    ref = slice_loop(torch.as_tensor(a), axis).numpy()
    assert np.array_equal(column_sum(a, axis), ref)
    assert column_sum(torch.zeros(3, 0, dtype=torch.float64), 1).shape == (3,)
