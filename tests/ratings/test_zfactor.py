"""One-factor migration model: properties of M(z), Z_t / rho estimation, bad input.

Sign convention under test: z > 0 is a good year."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, DataError
from creditsim.ratings.zfactor import (
    ZFactorModel,
    conditional_matrix,
    conditional_pd,
    expected_matrix,
    gauss_hermite,
    thresholds,
)


def random_ttc(seed: int, k: int, zero_frac: float = 0.2) -> np.ndarray:
    """Random valid K x K rating matrix with some exact zero cells and D absorbing."""
    rng = np.random.default_rng(seed)
    p = rng.gamma(0.5, size=(k, k))
    p[rng.random((k, k)) < zero_frac] = 0.0
    p[np.arange(k), np.arange(k)] += 3.0  # diagonal dominance, every row non-empty
    p[:-1, -1] = np.maximum(p[:-1, -1], 1e-4)  # positive PDs
    p /= p.sum(axis=1, keepdims=True)
    p[-1] = 0.0
    p[-1, -1] = 1.0
    return p


@pytest.fixture(scope="module")
def sp():
    return load_sp_ratings()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(3, 9), z=st.floats(-6, 6), rho=st.floats(0.001, 0.499))
def test_conditional_matrix_is_stochastic_for_any_z_and_rho(seed, k, z, rho):
    p = random_ttc(seed, k)
    m = conditional_matrix(p, z, rho)
    assert m.shape == (k, k)
    assert (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(m[-1], np.eye(k)[-1])
    assert (m[p == 0] == 0).all()  # zero TTC cells stay exactly zero


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(3, 9), rho=st.floats(0.001, 0.499))
def test_j_or_worse_probability_decreases_in_z(seed, k, rho):
    p = random_ttc(seed, k, zero_frac=0.0)
    z = np.linspace(-4, 4, 41)
    m = conditional_matrix(p, z, rho)  # (41, K, K)
    worse = np.cumsum(m[..., ::-1], axis=-1)[..., ::-1][:, :-1, 1:]  # P(j or worse), j >= 1
    d = np.diff(worse, axis=0)
    assert (d <= 1e-15).all()
    # strictly decreasing where the probability is not pinned at 0 or 1
    interior = (worse[:-1] > 1e-12) & (worse[:-1] < 1 - 1e-12)
    assert (d[interior] < 0).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(3, 9), rho=st.floats(0.001, 0.499))
def test_expected_conditional_matrix_equals_ttc_gauss_hermite(seed, k, rho):
    p = random_ttc(seed, k)
    np.testing.assert_allclose(expected_matrix(p, rho, n_nodes=40), p, atol=1e-10, rtol=0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(3, 9), z=st.floats(-5, 5))
def test_rho_to_zero_gives_ttc_matrix(seed, k, z):
    p = random_ttc(seed, k)
    np.testing.assert_allclose(conditional_matrix(p, z, 1e-14), p, atol=1e-6)
    np.testing.assert_allclose(conditional_matrix(p, z, 0.0), p, atol=1e-13)


def test_pd_sign_convention_z_positive_is_good_year(sp):
    p = sp.matrix_8x8
    pd_ttc = p.to_numpy()[:-1, -1]
    m = conditional_matrix(p, np.array([-1.0, 0.0, 1.0]), 0.1)
    pds = m[:, :-1, -1]
    risky = pd_ttc > 0
    assert (pds[0, risky] > pds[1, risky]).all() and (pds[1, risky] > pds[2, risky]).all()
    # M(0) differs from TTC (sqrt(1 - rho) rescaling): PD(0) < TTC PD for these low-PD grades
    assert (pds[1, risky] < pd_ttc[risky]).all()
    np.testing.assert_allclose(pds, conditional_pd(pd_ttc, np.array([-1.0, 0.0, 1.0]), 0.1), rtol=1e-10, atol=1e-15)


def test_conditional_matrix_is_vectorised_over_z_shape(sp):
    z = np.random.default_rng(0).standard_normal((5, 3))
    m = conditional_matrix(sp.matrix_8x8, z, 0.07)
    assert m.shape == (5, 3, 8, 8)
    np.testing.assert_allclose(m[2, 1], conditional_matrix(sp.matrix_8x8, z[2, 1], 0.07))


def test_thresholds_reproduce_ttc(sp):
    from scipy.special import ndtr

    p = sp.matrix_8x8.to_numpy()
    b = thresholds(p)
    assert b.shape == (7, 9)
    assert np.isposinf(b[:, 0]).all() and np.isneginf(b[:, -1]).all()
    np.testing.assert_allclose(ndtr(b[:, :-1]) - ndtr(b[:, 1:]), p[:-1], atol=1e-15)


def test_residual_variance_formula_matches_quadrature(sp):
    p = sp.matrix_8x8.to_numpy()
    mu, s2, rho = -0.7, 0.6, 0.09
    x, w = gauss_hermite(60)
    quad = np.tensordot(w, conditional_matrix(p, mu + np.sqrt(s2) * x, rho), axes=1)
    np.testing.assert_allclose(conditional_matrix(p, mu, rho, residual_var=s2), quad, atol=1e-12)
    np.testing.assert_allclose(expected_matrix(p, rho, mean=mu, var=s2), quad, atol=1e-12)


# ----------------------------------------------------------------------------- S&P fit (acceptance)
def test_z_fitted_on_sp_default_counts_has_expected_signs_and_rho(sp):
    res = ZFactorModel().fit(defaults=sp.defaults, obligors=sp.obligors)
    z = res.z_
    assert list(z.index) == list(range(1981, 2001))
    assert z[1990] < 0 and z[1991] < 0
    assert (z.loc[1993:1997] > 0).all()
    assert 0.02 < res.rho_ < 0.15
    assert res.method == "map" and res.rho_method == "marginal"
    # 1981 has no defaults at all: the MAP estimate is finite, positive and well inside the bound
    assert 0 < z[1981] < 3.0 and not res.at_bound_[1981] and np.isfinite(res.z_se_[1981])
    assert np.isfinite(res.rho_se_) and res.rho_se_ > 0
    text = res.summary()
    assert "z > 0 = good year" in text and "1991" in text


def test_mle_on_zero_default_year_raises_clear_error(sp):
    with pytest.raises(DataError, match=r"1981.*method='map'"):
        ZFactorModel(rho=0.05).fit(defaults=sp.defaults, obligors=sp.obligors, method="mle")


def test_mle_without_zero_default_year_is_finite_and_close_to_map(sp):
    d, n = sp.defaults.loc[1982:], sp.obligors.loc[1982:]
    mle = ZFactorModel(rho=0.05).fit(defaults=d, obligors=n, method="mle")
    mp = ZFactorModel(rho=0.05).fit(defaults=d, obligors=n, method="map")
    assert np.isfinite(mle.z_).all() and not mle.at_bound_.any()
    # MAP shrinks towards 0
    assert (np.abs(mp.z_) <= np.abs(mle.z_) + 1e-9).all()


def test_bsf_variance_rule_reports_failure_on_zero_default_year(sp):
    with pytest.raises(DataError, match=r"BSF variance rule cannot be met.*1981"):
        ZFactorModel(rho_method="bsf").fit(defaults=sp.defaults, obligors=sp.obligors, method="mle")


# ----------------------------------------------------------------------------- simulated recovery
def simulate_counts(p: np.ndarray, z: np.ndarray, rho: float, n_per_grade: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = conditional_matrix(p, z, rho)
    k = p.shape[0]
    c = np.zeros((len(z), k, k))
    for t in range(len(z)):
        for i in range(k - 1):
            c[t, i] = rng.multinomial(n_per_grade, m[t, i] / m[t, i].sum())
    return c


def test_fit_recovers_z_and_rho_from_simulated_migration_counts(sp):
    p = sp.matrix_7x7.to_numpy()
    rng = np.random.default_rng(11)
    z_true = rng.standard_normal(40)
    counts = simulate_counts(p, z_true, 0.08, 3000, seed=5)
    years = np.arange(1980, 2020)
    res = ZFactorModel(p).fit(counts, years=years, method="mle")
    assert abs(res.rho_ - 0.08) < 0.035
    err = (res.z_.to_numpy() - z_true) / res.z_se_.to_numpy()
    assert np.abs(err).max() < 4.0
    assert np.corrcoef(res.z_, z_true)[0, 1] > 0.97
    wls = ZFactorModel(p, rho=0.08).fit(counts, years=years, method="wls")
    assert np.corrcoef(wls.z_, z_true)[0, 1] > 0.97
    bsf = ZFactorModel(p, rho_method="bsf").fit(counts, years=years, method="mle")
    assert abs(bsf.z_.var(ddof=1) - 1.0) < 1e-3
    assert 0.03 < bsf.rho_ < 0.2


def test_fit_from_matrices_and_obligors_equals_fit_from_counts(sp):
    p = sp.matrix_7x7.to_numpy()
    counts = simulate_counts(p, np.array([-1.0, 0.5, 1.2]), 0.1, 500, seed=2)
    n = counts.sum(axis=2)[:, :-1]
    mats = counts / np.where(counts.sum(axis=2, keepdims=True) > 0, counts.sum(axis=2, keepdims=True), 1)
    mats[:, -1] = np.eye(7)[-1]
    a = ZFactorModel(p, rho=0.1).fit(counts, method="mle")
    b = ZFactorModel(p, rho=0.1).fit(matrices=mats, obligors=n, method="mle")
    np.testing.assert_allclose(a.z_.to_numpy(), b.z_.to_numpy(), atol=1e-6)


# ----------------------------------------------------------------------------- bad input
def test_negative_counts_raise_data_error_naming_year(sp):
    d = sp.defaults.copy()
    d.loc[1985, "BB"] = -1
    with pytest.raises(DataError, match="negative counts in years \\[1985\\]"):
        ZFactorModel().fit(defaults=d, obligors=sp.obligors)


def test_year_with_no_obligors_raises(sp):
    d, n = sp.defaults.copy(), sp.obligors.copy()
    d.loc[1990] = 0
    n.loc[1990] = 0
    with pytest.raises(DataError, match="no obligors: \\[1990\\]"):
        ZFactorModel(rho=0.05).fit(defaults=d, obligors=n)


def test_nan_and_defaults_above_obligors_raise(sp):
    d = sp.defaults.astype(float)
    d.loc[1984, "A"] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ZFactorModel(rho=0.05).fit(defaults=d, obligors=sp.obligors)
    d = sp.defaults.copy()
    d.loc[1999, "B"] = 10_000
    with pytest.raises(DataError, match="exceed obligors in years \\[1999\\]"):
        ZFactorModel(rho=0.05).fit(defaults=d, obligors=sp.obligors)


def test_grades_out_of_order_raise(sp):
    cols = ["BBB", "A", "BB", "B", "CCC"]
    with pytest.raises(DataError, match="out of order"):
        ZFactorModel(rho=0.05).fit(defaults=sp.defaults[cols], obligors=sp.obligors[cols])
    p = sp.matrix_8x8.iloc[[1, 0, 2, 3, 4, 5, 6, 7], [1, 0, 2, 3, 4, 5, 6, 7]]
    with pytest.raises(DataError, match="out of order"):
        conditional_matrix(p, 0.0, 0.1)


def test_counts_shape_must_match_ttc(sp):
    with pytest.raises(DataError, match=r"\(T, 8, 8\)"):
        ZFactorModel(sp.matrix_8x8, rho=0.1).fit(np.ones((3, 7, 7)))


def test_bad_rho_and_method_raise_config_error(sp):
    with pytest.raises(ConfigError):
        ZFactorModel(rho=1.5)
    with pytest.raises(ConfigError):
        ZFactorModel(rho_method="moments")
    with pytest.raises(ConfigError, match="method"):
        ZFactorModel(rho=0.1).fit(defaults=sp.defaults, obligors=sp.obligors, method="ols")
    with pytest.raises(ConfigError):
        conditional_matrix(sp.matrix_8x8, 0.0, -0.1)


def test_non_stochastic_ttc_raises_naming_row(sp):
    p = sp.matrix_8x8.copy()
    p.loc["BB", "BB"] += 0.01
    with pytest.raises(DataError, match="BB"):
        conditional_matrix(p, 0.0, 0.1)


def test_counts_in_zero_ttc_cells_raise(sp):
    p = sp.matrix_8x8
    c = np.zeros((2, 8, 8))
    c[:, :-1] = p.to_numpy()[:-1] * 100
    c[1, 0, 7] = 1.0  # AAA -> D never happens in the S&P TTC matrix
    with pytest.raises(DataError, match="AAA->D"):
        ZFactorModel(p, rho=0.1).fit(c)


def test_marginal_loglik_matches_brute_force_integration(sp):
    from scipy.special import logsumexp

    d, n = sp.defaults.to_numpy(float), sp.obligors.to_numpy(float)
    rho = 0.06
    res = ZFactorModel(rho=rho).fit(defaults=sp.defaults, obligors=sp.obligors)
    pd_ttc = d.sum(axis=0) / n.sum(axis=0)
    z = np.linspace(-9, 9, 20001)
    pz = conditional_pd(pd_ttc, z, rho)  # (Z, G)
    ll = (d[:, None, :] * np.log(pz)[None] + (n - d)[:, None, :] * np.log1p(-pz)[None]).sum(axis=2)  # (T, Z)
    log_phi = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    brute = (logsumexp(ll + log_phi, axis=1) + np.log(z[1] - z[0])).sum()
    assert res.loglik_ == pytest.approx(brute, abs=1e-6)


def test_unknown_grade_label_is_rejected_listing_allowed_ones(sp):
    # an unknown label used to switch the order check off entirely
    d, n = sp.defaults.rename(columns={"BB": "ZZ"}), sp.obligors.rename(columns={"BB": "ZZ"})
    with pytest.raises(DataError, match=r"unknown grades \['ZZ'\].*allowed.*'AAA'.*'CCC'"):
        ZFactorModel(rho=0.05).fit(defaults=d, obligors=n)
    p = sp.matrix_8x8.rename(index={"BB": "ZZ"}, columns={"BB": "ZZ"})
    with pytest.raises(DataError, match=r"unknown grades \['ZZ'\]"):
        conditional_matrix(p, 0.0, 0.1)
    # positional (integer) labels are not grade names and are accepted as ordered
    pos = sp.matrix_8x8.reset_index(drop=True)
    pos.columns = range(8)
    np.testing.assert_allclose(conditional_matrix(pos, 0.3, 0.1), conditional_matrix(sp.matrix_8x8, 0.3, 0.1))


def test_non_numeric_default_counts_raise_data_error(sp):
    with pytest.raises(DataError, match="defaults.*numeric"):
        ZFactorModel(rho=0.05).fit(defaults="abc", obligors=sp.obligors)
    d = sp.defaults.astype(object)
    d.loc[1987, "B"] = "abc"
    with pytest.raises(DataError, match=r"defaults.*numeric.*\[1987\]"):
        ZFactorModel(rho=0.05).fit(defaults=d, obligors=sp.obligors)
    with pytest.raises(DataError, match="obligors.*numeric"):
        ZFactorModel(rho=0.05).fit(defaults=sp.defaults.to_numpy(), obligors=[["x"] * 5] * 20)


def test_rho_estimation_needs_three_years(sp):
    cols = ["BBB", "BB", "B", "CCC"]  # A had no default in 1990: its one-year pooled PD would be 0
    d, n = sp.defaults.loc[[1990], cols], sp.obligors.loc[[1990], cols]
    for rho_method in ("marginal", "bsf"):
        with pytest.raises(DataError, match=r"at least 3 years.*1 \(\[1990\]\).*rho="):
            ZFactorModel(rho_method=rho_method).fit(defaults=d, obligors=n)
    d2, n2 = sp.defaults.loc[[1990, 1991], cols], sp.obligors.loc[[1990, 1991], cols]
    with pytest.raises(DataError, match="at least 3 years"):
        ZFactorModel().fit(defaults=d2, obligors=n2)
    # with rho given a single year is fine: Z_t alone is identified
    res = ZFactorModel(rho=0.05).fit(defaults=d, obligors=n)
    assert res.z_.shape == (1,) and res.z_.iloc[0] < 0  # 1990: a bad year


def test_rho_at_its_search_bound_warns(sp):
    # identical default rates every year: no credit cycle at all, the marginal ML sits at rho's lower bound
    years = range(2001, 2011)
    n = pd.DataFrame(2000.0, index=pd.Index(years, name="year"), columns=["BBB", "BB", "B"])
    d = pd.DataFrame([[4.0, 20.0, 80.0]] * 10, index=n.index, columns=n.columns)
    with pytest.warns(RuntimeWarning, match=r"rho .* at the lower bound 0.0001"):
        res = ZFactorModel().fit(defaults=d, obligors=n)
    assert res.rho_ == pytest.approx(1e-4, rel=0.05)
    assert any("bound" in note for note in res.notes)


def test_every_public_docstring_about_z_states_the_sign_convention():
    import inspect
    import re

    import creditsim.cli.ratings as cli_ratings
    import creditsim.ratings.ccc as ccc
    import creditsim.ratings.lifetime as lifetime
    import creditsim.ratings.zfactor as zfactor

    def members(mod):
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            yield f"{mod.__name__}.{name}", obj
            if inspect.isclass(obj):
                for m, f in vars(obj).items():
                    if callable(f) or isinstance(f, classmethod):
                        f = f.__func__ if isinstance(f, classmethod) else f
                        if not m.startswith("_"):
                            yield f"{mod.__name__}.{name}.{m}", f

    about_z = re.compile(r"\b(z|Z|Z_t|z_|z_paths|z_series|Z path)\b")
    missing = []
    for mod in (zfactor, lifetime, ccc, cli_ratings):
        for qual, obj in members(mod):
            doc = inspect.getdoc(obj) or ""
            try:
                params = " ".join(inspect.signature(obj).parameters) if callable(obj) else ""
            except (TypeError, ValueError):
                params = ""
            if (about_z.search(doc) or about_z.search(params)) and "z > 0" not in doc:
                missing.append(qual)
    assert not missing, f"docstrings about z without 'z > 0 ... good year': {missing}"
