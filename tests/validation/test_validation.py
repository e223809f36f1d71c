"""Validation tests against scipy, closed forms, Monte Carlo calibration and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from creditsim.errors import ConfigError, DataError
from creditsim.validation import (auc_test, basel_traffic_light, binomial_test, brier_score, christoffersen, compare_auc,
                                  hosmer_lemeshow, jeffreys_test, ks_test, kupiec_pof, psi, spiegelhalter,
                                  vasicek_binomial_test)


def _sample(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    pd_ = 1 / (1 + np.exp(-(score - 3)))
    y = (rng.random(n) < pd_).astype(int)
    return score, pd_, y


@pytest.mark.parametrize("d, n, p", [(0, 100, 0.01), (3, 100, 0.01), (12, 500, 0.015), (40, 1000, 0.03)])
def test_binomial_matches_scipy(d, n, p) -> None:
    r = binomial_test(d, n, p)
    assert r.p_value == pytest.approx(stats.binomtest(d, n, p, alternative="greater").pvalue, rel=1e-10)
    crit = r.details["critical_defaults"]
    assert stats.binom.sf(crit - 1, n, p) <= 0.05 < stats.binom.sf(crit - 2, n, p)


def test_jeffreys_matches_the_beta_posterior() -> None:
    r = jeffreys_test(9, 400, 0.01)
    assert r.p_value == pytest.approx(stats.beta(9.5, 391.5).cdf(0.01), rel=1e-12)
    assert r.decision == "reject"  # 2.25 % realised against a 1 % PD
    assert jeffreys_test(7, 400, 0.01).decision == "pass"  # 1.75 %: p = 0.075


def test_vasicek_binomial_reduces_to_binomial_and_widens_with_correlation() -> None:
    assert vasicek_binomial_test(12, 500, 0.015, 0.0).p_value == pytest.approx(binomial_test(12, 500, 0.015).p_value, rel=1e-9)
    assert vasicek_binomial_test(12, 500, 0.015, 0.12).p_value > binomial_test(12, 500, 0.015).p_value


def test_vasicek_binomial_is_calibrated_under_its_null() -> None:
    """Default counts simulated from the one-factor model: the 5 % test rejects at most ~5 % of them
    (a discrete test is conservative)."""
    rng = np.random.default_rng(7)
    n, pd_, rho = 400, 0.02, 0.1
    z = rng.normal(size=2000)
    pz = stats.norm.cdf((stats.norm.ppf(pd_) - np.sqrt(rho) * z) / np.sqrt(1 - rho))
    counts = rng.binomial(n, pz)
    rejected = np.mean([vasicek_binomial_test(int(d), n, pd_, rho).p_value < 0.05 for d in counts])
    assert 0.02 < rejected <= 0.065
    naive = np.mean([binomial_test(int(d), n, pd_).p_value < 0.05 for d in counts])
    assert naive > 2 * rejected  # ignoring correlation over-rejects


def test_hosmer_lemeshow_by_hand_and_calibrated_model_passes() -> None:
    p = np.array([0.1, 0.1, 0.5, 0.5])
    y = np.array([1, 0, 0, 0])
    r = hosmer_lemeshow(p, y, groups=[0, 0, 1, 1])
    expected = (1 - 0.2) ** 2 / (0.2 * (1 - 0.1)) + (0 - 1.0) ** 2 / (1.0 * (1 - 0.5))
    assert r.statistic == pytest.approx(expected)
    assert r.p_value == pytest.approx(stats.chi2.sf(expected, 2))
    _, pd_, y = _sample()
    assert hosmer_lemeshow(pd_, y).decision == "pass"
    assert hosmer_lemeshow(pd_ / 3, y).decision == "reject"


def test_spiegelhalter_and_brier_decomposition() -> None:
    _, pd_, y = _sample()
    assert spiegelhalter(pd_, y).decision == "pass"
    assert spiegelhalter(np.clip(pd_ * 4, 0, 0.99), y).decision == "reject"
    grades = np.digitize(pd_, [0.02, 0.05, 0.1, 0.2])
    flat = np.bincount(grades, weights=pd_)[grades] / np.bincount(grades)[grades]  # one PD per grade: exact
    b = brier_score(flat, y, groups=grades)
    d = b.details
    assert b.statistic == pytest.approx(d["reliability"] - d["resolution"] + d["uncertainty"], abs=1e-12)


def test_auc_matches_mann_whitney_and_delong_matches_bootstrap() -> None:
    score, _, y = _sample(1500, 3)
    r = auc_test(score, y)
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    assert r.statistic == pytest.approx(u / (y.sum() * (1 - y).sum()), rel=1e-12)
    assert r.details["gini"] == pytest.approx(2 * r.statistic - 1)
    rng = np.random.default_rng(1)
    boot = []
    for _ in range(400):
        i = rng.integers(0, y.size, y.size)
        if 0 < y[i].sum() < y.size:
            boot.append(auc_test(score[i], y[i]).statistic)
    assert r.details["se"] == pytest.approx(np.std(boot), rel=0.2)


def test_auc_handles_ties_and_compare_auc() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([1, 2, 2, 3, 1, 1])
    # pairs (pos, neg): (2:1,2,1)->1,.5,1 ; (3)->1,1,1 ; (1)->.5,0,.5  => 6.5 / 9
    assert auc_test(s, y).statistic == pytest.approx(6.5 / 9)
    score, _, y2 = _sample(1500, 4)
    noisy = score + np.random.default_rng(2).normal(scale=2.0, size=score.size)
    r = compare_auc(score, noisy, y2)
    assert r.details["difference"] > 0 and r.decision == "reject"
    assert compare_auc(score, score, y2).statistic == 0.0


def test_ks_matches_scipy() -> None:
    score, _, y = _sample()
    r = ks_test(score, y)
    assert r.statistic == pytest.approx(stats.ks_2samp(score[y == 1], score[y == 0]).statistic)


def test_psi_identical_is_zero_and_shift_is_red() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, x).statistic == pytest.approx(0.0, abs=1e-15)
    assert psi(x, x + 1.0).decision == "red"
    assert psi(x, x + 0.05).decision == "green"


def test_psi_empty_bin_policy_is_explicit() -> None:
    e = np.r_[np.zeros(50), np.ones(50)]
    a = np.zeros(100)
    with pytest.raises(DataError, match="empty"):
        psi(e, a, edges=[-1, 0.5, 2])
    eps = psi(e, a, edges=[-1, 0.5, 2], empty_bin="epsilon", epsilon=1e-4)
    assert np.isfinite(eps.statistic) and eps.statistic > 1
    merged = psi(e, a, edges=[-1, 0.5, 2], empty_bin="merge")
    assert merged.statistic == 0.0 and merged.inputs["bins"] == 1


def test_kupiec_closed_forms() -> None:
    r0 = kupiec_pof(0, 250, 0.99)
    assert r0.statistic == pytest.approx(-2 * 250 * np.log(0.99))
    r = kupiec_pof(8, 250, 0.99)
    lr = -2 * (242 * np.log(0.99) + 8 * np.log(0.01) - 242 * np.log(242 / 250) - 8 * np.log(8 / 250))
    assert r.statistic == pytest.approx(lr) and r.p_value == pytest.approx(stats.chi2.sf(lr, 1))
    assert kupiec_pof(2, 250).decision == "pass" and r.decision == "reject"


def test_christoffersen_detects_clustering() -> None:
    spread = np.zeros(250, int)
    spread[[20, 70, 120, 170, 220]] = 1
    clustered = np.zeros(250, int)
    clustered[100:105] = 1
    assert christoffersen(spread).decision == "pass"
    assert christoffersen(clustered).decision == "reject"
    assert christoffersen(spread).details["transitions"]["n01"] == 5


@pytest.mark.parametrize("x, zone", [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red")])
def test_basel_zones_at_250_days(x, zone) -> None:
    assert basel_traffic_light(x, 250, 0.99).decision == zone


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-500, 500), min_size=20, max_size=60), st.integers(0, 2 ** 31 - 1))
def test_auc_is_invariant_to_monotone_transforms(values, seed) -> None:
    s = np.array(values, dtype=np.float64) / 100
    y = (np.random.default_rng(seed).random(s.size) < 0.5).astype(int)
    if 0 < y.sum() < y.size:
        assert auc_test(s, y).statistic == pytest.approx(auc_test(np.exp(s) * 3 + 1, y).statistic, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=30, max_size=80), st.lists(st.floats(-3, 3), min_size=30, max_size=80))
def test_psi_is_non_negative_and_p_values_are_probabilities(a, b) -> None:
    r = psi(a, b, bins=5, empty_bin="epsilon")
    assert r.statistic >= -1e-12
    d = int(np.sum(np.array(a) > 0))
    assert 0 <= binomial_test(d, len(a), 0.3).p_value <= 1


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(DataError, match="defaults/obligors"):
        binomial_test(5, 3, 0.1)
    with pytest.raises(DataError, match="pd: expected probabilities"):
        jeffreys_test(1, 10, 1.5)
    with pytest.raises(DataError, match="outcomes: expected 10 outcomes"):
        hosmer_lemeshow(np.full(10, 0.1), np.zeros(9))
    with pytest.raises(DataError, match="both defaulters"):
        auc_test([1, 2, 3], [0, 0, 0])
    with pytest.raises(ConfigError, match="empty_bin"):
        psi([1, 2], [1, 2], empty_bin="drop")
    with pytest.raises(ConfigError, match="coverage"):
        kupiec_pof(1, 10, coverage=99)


def test_concentration_closed_forms() -> None:
    from creditsim.validation import concentration

    even = concentration([5, 5, 5, 5])
    assert even.statistic == pytest.approx(0.25) and even.details["cv"] == pytest.approx(0.0, abs=1e-12)
    one = concentration([0, 10, 0, 0])
    assert one.statistic == 1.0 and one.details["cv"] == pytest.approx(np.sqrt(3))


def test_migration_bandwidth_and_z_tests() -> None:
    from creditsim.validation import migration_bandwidth, migration_z_tests

    stay = np.diag([100.0, 100.0, 100.0])
    assert migration_bandwidth(stay).statistic == 0.0
    worst = np.array([[0, 0, 100], [0, 0, 100], [0, 0, 100.0]])
    assert migration_bandwidth(worst).statistic == pytest.approx(1.0)
    ref = np.array([[0.9, 0.08, 0.02], [0.05, 0.9, 0.05], [0.0, 0.0, 1.0]])
    assert migration_z_tests(ref * 1000, ref).decision == "pass"
    bad = ref.copy()
    bad[0] = [0.8, 0.15, 0.05]
    assert migration_z_tests(bad * 1000, ref).decision == "reject"


def test_lgd_t_test_matches_scipy_and_sicr_effectiveness() -> None:
    from creditsim.validation import lgd_t_test, sicr_effectiveness

    rng = np.random.default_rng(0)
    est = rng.uniform(0.2, 0.6, 200)
    real = est + 0.05 + rng.normal(0, 0.1, 200)
    r = lgd_t_test(real, est)
    assert r.p_value == pytest.approx(stats.ttest_rel(real, est, alternative="greater").pvalue)
    assert r.decision == "reject"
    hist = np.array([[1, 2, 2, 2, 3], [1, 1, 1, 1, 3], [1, 1, 2, 3, 3], [1, 1, 1, 1, 1]])
    s = sicr_effectiveness(hist, [True, True, True, False], months_before=2)
    assert s.statistic == pytest.approx(1 / 3)  # only the first was in Stage 2 >= 2 months before default
    assert s.details["straight_to_stage3"] == pytest.approx(1 / 3)


def test_pd_traffic_light_zones_follow_the_correlated_quantiles() -> None:
    from creditsim.validation import pd_traffic_light

    zones = [pd_traffic_light(d, 1000, 0.01, rho=0.05).decision for d in range(0, 60)]
    assert zones[5] == "green" and zones[-1] == "red"
    first_yellow, first_red = zones.index("yellow"), zones.index("red")
    assert set(zones[:first_yellow]) == {"green"} and set(zones[first_yellow:first_red]) == {"yellow"}
    p = vasicek_binomial_test(first_yellow, 1000, 0.01, 0.05).p_value
    assert p <= 0.05 < vasicek_binomial_test(first_yellow - 1, 1000, 0.01, 0.05).p_value
