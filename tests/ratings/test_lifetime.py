"""Lifetime PD term structures, scenario weighting, the Z-macro link and monthly scenario matrices.

z > 0 is a good year throughout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, DataError, NotFittedError
from creditsim.ratings.lifetime import (
    PDTermStructure,
    ZMacroLink,
    annualise_macro,
    matrices_term_structure,
    monthly_scenario_matrices,
    path_term_structure,
    scenario_weighted,
    ttc_term_structure,
)
from creditsim.ratings.zfactor import conditional_matrix, gauss_hermite
from creditsim.states import MACRO_VARS


@pytest.fixture(scope="module")
def p8():
    return load_sp_ratings().matrix_8x8.to_numpy()


def test_ttc_term_structure_equals_matrix_powers(p8):
    ts = ttc_term_structure(p8, 10)
    assert ts.cumulative.shape == (10, 7) and ts.grades == ("AAA", "AA", "A", "BBB", "BB", "B", "CCC")
    for t in (1, 5, 10):
        np.testing.assert_allclose(ts.cumulative[t - 1], np.linalg.matrix_power(p8, t)[:-1, -1], rtol=1e-12)
    # cumulative increases; marginal sums back to cumulative; hazard = marginal / survival
    assert (np.diff(ts.cumulative, axis=0) > 0).all()
    np.testing.assert_allclose(ts.marginal.cumsum(axis=0), ts.cumulative, atol=1e-15)
    surv_prev = 1 - np.vstack([np.zeros(7), ts.cumulative[:-1]])
    np.testing.assert_allclose(ts.conditional, ts.marginal / surv_prev, rtol=1e-12)
    np.testing.assert_allclose(1 - np.cumprod(1 - ts.conditional, axis=0), ts.cumulative, atol=1e-14)
    frame = ts.to_frame("marginal")
    assert list(frame.index) == list(range(1, 11)) and frame.columns[-1] == "CCC"


def test_path_term_structure_is_product_of_conditional_matrices_then_ttc(p8):
    z = np.array([-1.5, -0.5, 1.0])
    ts = path_term_structure(p8, z, 0.06, n_years=6)
    m = conditional_matrix(p8, z, 0.06)
    prod = m[0] @ m[1] @ m[2] @ np.linalg.matrix_power(p8, 3)
    np.testing.assert_allclose(ts.cumulative[-1], prod[:-1, -1], rtol=1e-12)
    # horizon cuts the path: only the first year is conditional
    ts1 = path_term_structure(p8, z, 0.06, n_years=3, horizon=1)
    np.testing.assert_allclose(ts1.cumulative[-1], (m[0] @ p8 @ p8)[:-1, -1], rtol=1e-12)
    # a bad first year raises every lifetime PD against TTC (z < 0 is a bad year)
    base = ttc_term_structure(p8, 3).cumulative
    assert (ts1.cumulative[base > 0] > base[base > 0]).all()
    assert (ts1.cumulative[base == 0] == 0).all()  # AAA has TTC PD 0: no path creates a one-year default


def test_independent_z_years_average_to_ttc_power_exactly(p8):
    # E[M(Z1) M(Z2)] = TTC^2 for independent Z: two-dimensional Gauss-Hermite
    x, w = gauss_hermite(40)
    zz = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1).reshape(-1, 2)
    ww = np.outer(w, w).reshape(-1)
    cum = path_term_structure(p8, zz, 0.1).cumulative  # (1600, 2, 7)
    np.testing.assert_allclose(np.tensordot(ww, cum, axes=1), ttc_term_structure(p8, 2).cumulative, atol=1e-10)


def test_path_term_structure_vectorised_over_paths(p8):
    z = np.random.default_rng(0).standard_normal((50, 4))
    ts = path_term_structure(p8, z, 0.05, n_years=7)
    assert ts.cumulative.shape == (50, 7, 7)
    np.testing.assert_allclose(ts.cumulative[17], path_term_structure(p8, z[17], 0.05, n_years=7).cumulative)


def test_scenario_weighting_weights_outcomes_not_matrices(p8):
    rho = 0.08
    paths = {"good": np.full(5, 1.0), "bad": np.full(5, -2.0)}
    w = [0.7, 0.3]
    ts = [path_term_structure(p8, z, rho) for z in paths.values()]
    weighted = scenario_weighted(ts, w)
    np.testing.assert_allclose(weighted.cumulative, 0.7 * ts[0].cumulative + 0.3 * ts[1].cumulative)
    # the matrix-averaging shortcut differs (biased)
    mats = 0.7 * conditional_matrix(p8, paths["good"], rho) + 0.3 * conditional_matrix(p8, paths["bad"], rho)
    shortcut = matrices_term_structure(mats)
    assert np.abs(shortcut.cumulative[-1] - weighted.cumulative[-1]).max() > 1e-3
    with pytest.raises(ConfigError, match="sum to 1"):
        scenario_weighted(ts, [0.5, 0.6])
    with pytest.raises(ConfigError, match="one weight per scenario"):
        scenario_weighted(ts, [1.0])


def test_matrices_term_structure_needs_ttc_to_go_beyond_given_years(p8):
    m = conditional_matrix(p8, np.zeros(2), 0.1)
    with pytest.raises(ConfigError, match="ttc"):
        matrices_term_structure(m, n_years=5)
    with pytest.raises(DataError):
        path_term_structure(p8, np.array([0.0, np.nan]), 0.1)


# ----------------------------------------------------------------------------- macro link
def synthetic_link_data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    years = np.arange(1980, 1980 + n)
    macro = pd.DataFrame(
        {"gdp_growth": rng.normal(0.02, 0.02, n), "credit_spread_hy": rng.normal(0.045, 0.015, n)},
        index=pd.Index(years, name="year"),
    )
    z = 0.3 + 25.0 * macro["gdp_growth"] - 30.0 * macro["credit_spread_hy"] + rng.normal(0, 0.5, n)
    return pd.Series(z.to_numpy(), index=years), macro


def test_zmacrolink_fit_recovers_coefficients_and_residual_variance():
    z, macro = synthetic_link_data(n=400)
    link = ZMacroLink(["gdp_growth", "credit_spread_hy"]).fit(z, macro)
    assert link.coef_["gdp_growth"] == pytest.approx(25.0, abs=4 * link.se_["gdp_growth"])
    assert link.coef_["credit_spread_hy"] == pytest.approx(-30.0, abs=4 * link.se_["credit_spread_hy"])
    assert link.resid_var_ == pytest.approx(0.25, rel=0.2)
    # OLS against statsmodels
    import statsmodels.api as sm

    ols = sm.OLS(z.to_numpy(), sm.add_constant(macro.to_numpy())).fit()
    np.testing.assert_allclose([link.intercept_, *link.coef_], ols.params, rtol=1e-10)
    assert link.resid_var_ == pytest.approx(ols.scale, rel=1e-10)


def test_zmacrolink_annualises_monthly_frames():
    idx = pd.date_range("1990-01-01", periods=36, freq="MS")
    monthly = pd.DataFrame({v: np.arange(36, dtype=float) for v in MACRO_VARS}, index=idx)
    annual = annualise_macro(monthly)
    assert list(annual.index) == [1990, 1991, 1992]
    assert annual.loc[1991, "gdp_growth"] == pytest.approx(np.arange(12, 24).mean())
    arr = annualise_macro(np.arange(30, dtype=float).reshape(1, 30, 1))
    np.testing.assert_allclose(arr[0, :, 0], [5.5, 17.5, 26.5])  # partial last block


def test_scenario_matrices_integrate_the_residual_variance(p8):
    z, macro = synthetic_link_data()
    link = ZMacroLink(["gdp_growth", "credit_spread_hy"], ttc=p8, rho=0.07).fit(z, macro)
    paths = np.zeros((2, 3, 9))
    paths[..., MACRO_VARS.index("gdp_growth")] = [[0.02, 0.0, -0.02], [0.03, 0.03, 0.03]]
    paths[..., MACRO_VARS.index("credit_spread_hy")] = 0.05
    m = link.scenario_matrices(paths)
    assert m.shape == (2, 3, 8, 8)
    mu = link.predict(paths)
    x, w = gauss_hermite(60)
    quad = np.tensordot(w, conditional_matrix(p8, mu[1, 2] + np.sqrt(link.resid_var_) * x, 0.07), axes=1)
    np.testing.assert_allclose(m[1, 2], quad, atol=1e-12)
    # the plug-in matrix (residual ignored) differs: convexity
    plug = link.scenario_matrices(paths, include_residual=False)
    np.testing.assert_allclose(plug[1, 2], conditional_matrix(p8, mu[1, 2], 0.07))
    assert not np.allclose(plug, m)
    # sampled residuals
    e = np.random.default_rng(1).standard_normal((2, 3))
    np.testing.assert_allclose(
        link.scenario_matrices(paths, z_shocks=e), conditional_matrix(p8, mu + np.sqrt(link.resid_var_) * e, 0.07)
    )


def test_zmacrolink_bad_input():
    with pytest.raises(ConfigError, match="unknown macro variables"):
        ZMacroLink(["gdp"])
    with pytest.raises(NotFittedError):
        ZMacroLink().predict(np.zeros((1, 9)))
    z, macro = synthetic_link_data(n=4)
    with pytest.raises(DataError, match="need at least"):
        ZMacroLink(["gdp_growth", "credit_spread_hy"]).fit(z, macro)
    with pytest.raises(DataError, match="lacks columns"):
        ZMacroLink(["unemployment_rate"]).fit(z, macro)


def test_bundled_link_has_economic_signs_and_monthly_matrices():
    link = ZMacroLink.from_bundled()
    assert link.coef_["gdp_growth"] > 0  # growth -> good year (z > 0)
    assert link.coef_["credit_spread_hy"] < 0  # wide spreads -> bad year
    assert 0.02 < link.rho < 0.15 and 0 < link.resid_var_ < 1.5
    assert link.n_obs_ == 20
    rng = np.random.default_rng(0)
    paths = np.tile(np.array([0.02, 0.05, 0.02, 0.03, 0.04, 0.012, 0.04, 0.03, 0.02]), (3, 30, 1))
    paths[1, :, MACRO_VARS.index("credit_spread_hy")] = 0.10  # stressed spreads
    paths += rng.normal(0, 1e-4, paths.shape)
    m = monthly_scenario_matrices(paths, link)
    assert m.shape == (3, 30, 8, 8)
    np.testing.assert_allclose(m.sum(axis=-1), 1.0, atol=1e-12)
    assert (m >= 0).all() and (m[..., -1, -1] == 1).all()
    np.testing.assert_array_equal(m[:, 0], m[:, 11])  # one annual matrix per 12-month block
    # twelve monthly steps reproduce the annual conditional matrix
    annual = link.scenario_matrices(paths, frequency="monthly")
    from creditsim.ratings.estimate import monthly_matrix

    mm, dist = monthly_matrix(annual[1, 0], return_distance=True)
    np.testing.assert_allclose(m[1, 0], mm, atol=1e-14)
    # within the embedding distance (a zero annual cell such as AAA->D cannot stay 0 monthly)
    np.testing.assert_allclose(np.linalg.matrix_power(m[1, 0], 12), annual[1, 0], atol=float(dist) + 1e-12)
    assert dist < 2e-3
    # stressed spreads raise monthly PDs of every grade
    assert (m[1, 0, :-1, -1] > m[0, 0, :-1, -1]).all()


def test_monthly_scenario_matrices_rejects_bad_shapes(p8):
    z, macro = synthetic_link_data()
    link = ZMacroLink(["gdp_growth", "credit_spread_hy"], ttc=p8, rho=0.07).fit(z, macro)
    with pytest.raises(DataError, match="monthly"):
        monthly_scenario_matrices(np.zeros((2, 12, 5)), link)
    p7 = load_sp_ratings().matrix_7x7.to_numpy()
    with pytest.raises(DataError, match="8x8"):
        monthly_scenario_matrices(np.zeros((2, 12, 9)), link, ttc_8x8=p7)
    bad = np.zeros((1, 12, 9))
    bad[0, 3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        monthly_scenario_matrices(bad, link)


def test_term_structure_frame_requires_single_structure(p8):
    ts = PDTermStructure(np.zeros((2, 3, 7)), ("AAA", "AA", "A", "BBB", "BB", "B", "CCC"))
    with pytest.raises(ConfigError):
        ts.to_frame()


def test_monthly_pd_curves_reach_the_annual_pd_after_twelve_months(p8):
    from creditsim.ratings.estimate import monthly_matrix
    from creditsim.ratings.lifetime import monthly_pd_curves

    curves = monthly_pd_curves(p8, 36)
    assert curves.cumulative.shape == (36, 7)
    _, dist = monthly_matrix(p8, return_distance=True)
    np.testing.assert_allclose(curves.cumulative[11], p8[:-1, -1], atol=float(dist) + 1e-12)
    np.testing.assert_allclose(curves.cumulative[35], ttc_term_structure(p8, 3).cumulative[2], atol=3 * float(dist) + 1e-12)
    assert (curves.marginal > -1e-15).all()
    # year-varying annual matrices: months 12..23 use the second (stressed) year
    mats = conditional_matrix(p8, np.array([[0.0, -2.0]]), 0.08)  # (1, 2, 8, 8)
    c = monthly_pd_curves(mats, 24)
    assert c.cumulative.shape == (1, 24, 7)
    assert (c.conditional[0, 12, 1:] > c.conditional[0, 11, 1:]).all()


# ----------------------------------------------------------------------------- resource limits (defect)
def test_huge_requests_are_refused_before_allocating():
    """Defect: 1e8-year horizons, huge path and entity counts went to numpy and failed with an
    allocation traceback (or ran for hours). Now a one-line ConfigError names the parameter and the
    limit (MAX_YEARS = 200 years, MEMORY_BUDGET_BYTES = 2 GiB), checked in microseconds."""
    import time

    from creditsim.errors import ConfigError
    from creditsim.ratings.lifetime import monthly_pd_curves
    from creditsim.ratings.simulate import simulate_rating_panel
    from creditsim.ratings.zfactor import conditional_matrix

    p8 = load_sp_ratings().matrix_8x8.to_numpy()
    t0 = time.perf_counter()
    for n in (10**12, 100_000_000):  # 1e12 first: the old code failed at once (MemoryError) rather than looping
        with pytest.raises(ConfigError, match=r"n_years must be in 1\.\.200"):
            ttc_term_structure(p8, n)
    with pytest.raises(ConfigError, match=r"n_months must be in 1\.\.2400"):
        monthly_pd_curves(p8, 10**9)
    with pytest.raises(ConfigError, match=r"n_entities: 1000000000 entities .* budget"):
        simulate_rating_panel(p8, 10**9, 10)
    z_many = np.broadcast_to(np.zeros(1), (5_000_000,))  # a view: no memory of its own
    with pytest.raises(ConfigError, match=r"^z: 5000000 values of z .*GiB budget"):
        conditional_matrix(p8, z_many, 0.05)
    with pytest.raises(ConfigError, match=r"z_paths: 5000000 paths x 1 years"):
        path_term_structure(p8, z_many[:, None], 0.05)
    assert time.perf_counter() - t0 < 0.5
    # inside the limits nothing changes
    assert ttc_term_structure(p8, 200).cumulative.shape == (200, 7)


@pytest.mark.parametrize("index", [
    pd.DatetimeIndex(["1990-01-01", "1990-01-15", "1990-02-01"]),  # two rows in one month (daily data)
    pd.DatetimeIndex(["1990-01-01", "1990-03-01", "1990-04-01"]),  # a missing month
    pd.DatetimeIndex(["1990-02-01", "1990-01-01", "1990-03-01"]),  # unsorted
])
def test_annualise_macro_refuses_frames_that_are_not_one_row_per_month(index):
    frame = pd.DataFrame({"gdp_growth": [0.01, 0.02, 0.03]}, index=index)
    with pytest.raises(DataError, match="macro frame"):
        annualise_macro(frame)
