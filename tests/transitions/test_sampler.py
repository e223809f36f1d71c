"""State sampler: thresholds keep forbidden moves impossible, risk shifts, matrix validation, streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.transitions.sampler import (
    ADVERSE_MOVES,
    RNG_LOAN_BLOCK,
    BlockStreams,
    apply_risk_shift,
    block_stream,
    cumulative_thresholds,
    risk_bins,
    sample_next,
    validate_matrices,
)
from creditsim.errors import ConfigError, DataError
from creditsim.transitions.markov import base_case_matrix
from creditsim.states import ALLOWED_TRANSITIONS, N_STATES

LAST_UNIFORM = np.nextafter(np.float32(1.0), np.float32(0.0))


def _random_matrix(draw_weights: list[float], zero_mask: list[bool]) -> np.ndarray:
    """A stochastic matrix on the allowed pattern with some allowed entries set to 0."""
    p = np.zeros((N_STATES, N_STATES))
    w = iter(draw_weights)
    z = iter(zero_mask)
    for i in range(N_STATES):
        for j in np.flatnonzero(ALLOWED_TRANSITIONS[i]):
            p[i, j] = 0.0 if (next(z) and i != j) else next(w)
        p[i] /= p[i].sum()
    return p


@settings(max_examples=50, deadline=None)
@given(
    weights=st.lists(st.floats(1e-9, 1.0), min_size=40, max_size=40),
    zeros=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_zero_probability_moves_are_never_sampled(weights: list[float], zeros: list[bool]) -> None:
    p = _random_matrix(weights, zeros)
    thr = cumulative_thresholds(torch.from_numpy(p))  # (7, 6)
    u = torch.tensor(np.r_[0.0, LAST_UNIFORM, np.random.default_rng(0).random(2000)], dtype=torch.float32)
    for i in range(N_STATES):
        y = sample_next(u, thr[i].expand(len(u), -1)).numpy()
        assert (p[i, y] > 0).all(), (i, np.unique(y))


def test_sampled_frequencies_match_row_probabilities() -> None:
    p = base_case_matrix("consumer")
    thr = cumulative_thresholds(torch.from_numpy(p))
    n = 200_000
    u = torch.from_numpy(np.random.default_rng(1).random(n, dtype=np.float32))
    for i in range(4):
        counts = np.bincount(sample_next(u, thr[i].expand(n, -1)).numpy(), minlength=N_STATES) / n
        se = np.sqrt(p[i] * (1 - p[i]) / n)
        assert (np.abs(counts - p[i]) <= 4 * se + 1e-12).all(), (i, counts, p[i])


def test_risk_shift_zero_is_bitwise_baseline_and_keeps_zeros_and_rows() -> None:
    p = torch.from_numpy(np.stack([base_case_matrix("corporate"), base_case_matrix("receivables")]))
    shifted = apply_risk_shift(p, torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))  # (2, 3, 7, 7)
    assert torch.equal(shifted[:, 0], p)
    assert (shifted[:, 1:][(p == 0).unsqueeze(1).expand(-1, 2, -1, -1)] == 0).all()
    torch.testing.assert_close(shifted.sum(-1), torch.ones(2, 3, 7, dtype=torch.float64))
    adv = torch.from_numpy(ADVERSE_MOVES.copy())
    up, base, down = shifted[:, 1], p, shifted[:, 2]
    mask = adv & (p > 0)
    assert (up[mask.expand_as(up)] > base[mask.expand_as(base)]).all()
    assert (down[mask.expand_as(down)] < base[mask.expand_as(base)]).all()
    # odds of an adverse move against staying move by exactly exp(shift)
    ratio = (up[0, 0, 1] / up[0, 0, 0]) / (p[0, 0, 1] / p[0, 0, 0])
    assert float(ratio) == pytest.approx(np.e)


def test_risk_bins_exact_then_quantiles() -> None:
    values, idx = risk_bins(np.array([0.5, -0.2, 0.5, 0.0]))
    np.testing.assert_array_equal(values[idx], [0.5, -0.2, 0.5, 0.0])
    shifts = np.random.default_rng(0).normal(size=1000)
    values, idx = risk_bins(shifts, max_bins=8)
    assert len(values) == 8 and np.bincount(idx).min() == 125
    assert np.abs(values[idx] - shifts).mean() < 0.2


@pytest.mark.parametrize(
    "matrix, match",
    [
        (np.eye(6), "shape"),
        (np.full((7, 7), np.nan), "non-finite"),
        (-np.eye(7), "negative"),
        (np.eye(7) * 0.5, "sum to 1"),
    ],
)
def test_validate_matrices_rejects_bad_matrices(matrix: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        validate_matrices(matrix)


@pytest.mark.parametrize("value, what", [(np.nan, "non-finite entries"), (-0.25, "negative probabilities")])
def test_validate_matrices_names_bad_entries_as_plain_positions(value: float, what: str) -> None:
    """The position reads ``(1, 2, 0)``, not numpy's ``(np.int64(1), ...)`` reprs."""
    p = np.stack([base_case_matrix("corporate")] * 2)
    p[1, 2, 0] = value
    with pytest.raises(DataError, match=rf"{what} at \(index\.\.\., from, to\) \[\(1, 2, 0\)\]$"):
        validate_matrices(p)
    # one 7 x 7 matrix: its positions are (from, to)
    with pytest.raises(DataError, match=rf"{what} at \(from, to\) \[\(2, 0\)\]$"):
        validate_matrices(p[1])


def test_validate_matrices_names_forbidden_positions() -> None:
    p = base_case_matrix("corporate")
    p[4, 4], p[4, 0] = 0.9, 0.1  # leaving DEFAULT
    with pytest.raises(DataError, match=r"\(4, 0\)"):
        validate_matrices(p)


def test_block_streams_month_by_month_equal_one_draw_and_ignore_chunking() -> None:
    n_loans = RNG_LOAN_BLOCK + 10
    streams = BlockStreams(5, np.array([3, 8]), range(2), n_loans)
    months = np.stack([streams.next_month().copy() for _ in range(3)])  # (3, s, L)
    rng = block_stream(5, 8, 1)  # the uniforms are the stream's first numbers (the LGDs have streams of their own)
    np.testing.assert_array_equal(rng.random((3, 10), dtype=np.float32), months[:, 1, RNG_LOAN_BLOCK:])
    alone = BlockStreams(5, np.array([8]), range(1, 2), 10)
    np.testing.assert_array_equal(alone.next_month()[0], months[0, 1, RNG_LOAN_BLOCK:])
    assert not np.array_equal(months[0, 0], months[0, 1])


@pytest.mark.parametrize("bins", [0, -3, 2.5])
def test_risk_bins_needs_a_positive_integer_bin_count(bins: object) -> None:
    with pytest.raises(ConfigError, match="max_risk_bins"):
        risk_bins(np.array([0.1, 0.2, 0.3]), bins)


@pytest.mark.parametrize("months_before", [0, 1])
def test_block_streams_are_numpys_streams(months_before: int) -> None:
    """The states handed to the fused kernel equal one numpy generator per stream (fresh, or a month on)."""
    n_loans = 2 * RNG_LOAN_BLOCK + 37
    ids, blocks = np.array([0, 5, 17]), range(1, 3)
    first = RNG_LOAN_BLOCK
    streams = BlockStreams(9, ids, blocks, n_loans - first)
    for _ in range(months_before):
        streams.next_month()
    words, buffered = streams.sfc64_states()
    refs = {}
    for i, sid in enumerate(ids):
        for j, blk in enumerate(blocks):
            ref = refs[i, j] = block_stream(9, int(sid), blk)
            width = min(n_loans, (blk + 1) * RNG_LOAN_BLOCK) - blk * RNG_LOAN_BLOCK
            for _ in range(months_before):
                ref.random(width, dtype=np.float32)
            st_ = ref.bit_generator.state
            np.testing.assert_array_equal(words[i, j], st_["state"]["state"])
            np.testing.assert_array_equal(buffered[i, j], [st_["has_uint32"], st_["uinteger"]])
    month = streams.next_month()  # the Python streams continue from the same states
    np.testing.assert_array_equal(month[2, RNG_LOAN_BLOCK:], refs[2, 1].random(37, dtype=np.float32))
