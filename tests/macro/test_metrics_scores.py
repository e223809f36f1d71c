"""Proper scores of forecast ensembles: CRPS, energy score, interval coverage (creditsim.macro.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from creditsim.errors import DataError
from creditsim.macro.metrics import crps_ensemble, energy_score, interval_coverage


def _crps_normal(mu: float, sigma: float, y: np.ndarray) -> np.ndarray:
    """Closed form (Gneiting & Raftery 2007): sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_of_a_large_normal_ensemble_matches_the_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(0.03, 0.02, size=(200_000, 1))
    y = np.array([0.03, 0.05, -0.02, 0.1])
    got = crps_ensemble(np.broadcast_to(x, (len(x), 4)), y)
    np.testing.assert_allclose(got, _crps_normal(0.03, 0.02, y), rtol=0.01)


def test_crps_matches_the_pairwise_definition_and_is_vectorised():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 3, 2))
    y = rng.standard_normal((3, 2))
    brute = np.abs(x - y).mean(0) - 0.5 * np.abs(x[:, None] - x[None]).mean((0, 1))
    np.testing.assert_allclose(crps_ensemble(x, y), brute, atol=1e-12)


def test_crps_of_a_degenerate_ensemble_is_the_absolute_error():
    x = np.full((50, 3), 0.02)
    y = np.array([0.02, 0.05, -0.01])
    np.testing.assert_allclose(crps_ensemble(x, y), np.abs(0.02 - y), atol=1e-15)
    np.testing.assert_allclose(crps_ensemble(x[:1], y), np.abs(0.02 - y))


def test_crps_is_nan_where_the_observation_is_missing_and_rejects_bad_shapes():
    out = crps_ensemble(np.zeros((5, 2)), np.array([0.0, np.nan]))
    assert out[0] == 0.0 and np.isnan(out[1])
    with pytest.raises(DataError, match="samples must be"):
        crps_ensemble(np.zeros((5, 2)), np.zeros(3))
    with pytest.raises(DataError, match="NaN"):
        crps_ensemble(np.array([[np.nan]]), np.zeros(1))


def test_energy_score_of_one_point_is_the_euclidean_distance():
    x = np.array([[1.0, 2.0, 2.0]])
    assert energy_score(x, np.zeros(3)) == pytest.approx(3.0)
    assert energy_score(np.repeat(x, 7, axis=0), np.zeros(3)) == pytest.approx(3.0)


def test_energy_score_in_one_dimension_equals_crps():
    # same convention, E||X - y|| - 0.5 E||X - X'||: the 1-D energy score IS the CRPS (no factor 2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 4))
    y = rng.standard_normal(4)
    es = np.array([energy_score(x[:, [j]], y[[j]]) for j in range(4)])
    np.testing.assert_allclose(es, crps_ensemble(x, y), atol=1e-12)


def test_energy_score_matches_the_pairwise_definition_in_chunks():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((41, 5))
    y = rng.standard_normal(5)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    brute = np.sqrt(((x - y) ** 2).sum(-1)).mean() - 0.5 * d.mean()
    assert energy_score(x, y, chunk=7) == pytest.approx(brute, abs=1e-12)
    assert np.isnan(energy_score(x, np.r_[y[:4], np.nan]))


def test_energy_score_prefers_the_right_correlation():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4000, 2))
    pos = np.c_[z[:, 0], 0.95 * z[:, 0] + 0.31 * z[:, 1]]
    neg = pos * np.array([1.0, -1.0])
    y = np.array([1.5, 1.5])
    assert energy_score(pos, y) < energy_score(neg, y)


def test_interval_coverage_on_a_constructed_case():
    x = np.arange(1, 101, dtype=float)[:, None] * np.ones((1, 5))  # 1..100 in every column
    y = np.array([50.0, 5.0, 96.0, 0.5, np.nan])
    # 90 %: 5.95 .. 95.05 (linear interpolation); 99 %: 1.495 .. 99.505
    np.testing.assert_array_equal(interval_coverage(x, y, 0.9)[:4], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(interval_coverage(x, y, 0.99)[:4], [1.0, 1.0, 1.0, 0.0])
    assert np.isnan(interval_coverage(x, y, 0.9)[4])
    rng = np.random.default_rng(5)
    draws = rng.standard_normal((2000, 4000))
    # a calibrated ensemble: y drawn from the same law as the members covers ~90 %
    assert interval_coverage(draws[1:], draws[0], 0.9).mean() == pytest.approx(0.9, abs=0.015)
    with pytest.raises(DataError, match="level"):
        interval_coverage(x, y, 90)
