"""The plausible band: generated economies stay in history's range with a soft edge, and a path's
scenario shock is bounded (the tails a VaR 99 is read from)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import creditsim as cs
from creditsim.errors import ConfigError, DataError
from creditsim.macro.anchors import SEVERITY_MAX, severity_draws
from creditsim.macro.plausibility import MARGIN, beyond_history, history_band, plausible_band, saturate
from creditsim.states import MACRO_VARS, SCENARIOS

J = {v: i for i, v in enumerate(MACRO_VARS)}


def _history() -> pd.DataFrame:
    """A small made-up history whose range is known: every variable runs from 1 % to 5 %, bar two."""
    values = np.tile(np.linspace(0.01, 0.05, 5)[:, None], (1, len(MACRO_VARS)))
    values[:, J["gdp_growth"]] = np.linspace(-0.04, 0.06, 5)
    return pd.DataFrame(values, columns=list(MACRO_VARS))


def test_band_edges_follow_each_kind_of_variable() -> None:
    band = plausible_band(_history(), margin=0.25)
    u, g, p = J["unemployment_rate"], J["gdp_growth"], J["policy_rate"]
    assert band.knee_lo[u] == pytest.approx(0.01) and band.knee_hi[u] == pytest.approx(0.05)
    # ratio scale: multiplicative; growth: additive in the range (0.10 wide); policy rate: no lower edge
    assert band.lo[u] == pytest.approx(0.01 / 1.25) and band.hi[u] == pytest.approx(0.05 * 1.25)
    assert band.lo[g] == pytest.approx(-0.04 - 0.025) and band.hi[g] == pytest.approx(0.06 + 0.025)
    assert band.lo[p] == -np.inf and band.hi[p] == pytest.approx(0.05 + 0.01)
    assert list(band.frame().columns) == ["lo", "knee_lo", "knee_hi", "hi"]


def test_band_refuses_what_it_cannot_bound() -> None:
    with pytest.raises(DataError, match="missing the macro variables"):
        plausible_band(_history().drop(columns="default_rate"))
    bad = _history()
    bad["credit_spread_hy"] = np.linspace(-0.01, 0.03, 5)
    with pytest.raises(DataError, match="credit_spread_hy has a minimum"):
        plausible_band(bad)
    flat = _history()
    flat["inflation_rate"] = 0.02
    with pytest.raises(DataError, match="never move"):
        plausible_band(flat)
    with pytest.raises(ConfigError, match="margin"):
        plausible_band(_history(), margin=0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.5, 0.8, allow_nan=False), min_size=2, max_size=30))
def test_saturation_is_identity_inside_increasing_and_inside_the_edges(xs: list[float]) -> None:
    band = plausible_band(_history())
    x = np.tile(np.sort(np.asarray(xs))[:, None], (1, len(MACRO_VARS)))
    y = saturate(x, band)
    inside = (x >= band.knee_lo) & (x <= band.knee_hi)
    np.testing.assert_array_equal(y[inside], x[inside])
    assert (np.diff(y, axis=0) >= 0).all()  # the order of values is kept
    assert (y <= band.hi).all() and (y >= band.lo).all()  # tanh reaches 1.0 in floating point far out
    assert ((y - x)[x > band.knee_hi] <= 0).all() and ((y - x)[x < band.knee_lo] >= 0).all()


def test_saturation_has_slope_one_at_the_knee() -> None:
    """No kink: a value just past history's edge moves as it would without the band."""
    band = plausible_band(_history())
    h = 1e-7
    for knee, sign in ((band.knee_hi, 1.0), (band.knee_lo, -1.0)):
        x = np.tile(knee, (2, 1)) + sign * np.array([[0.0], [h]])
        y = saturate(x, band)
        bounded = np.isfinite(band.lo) if sign < 0 else np.ones(len(MACRO_VARS), bool)
        np.testing.assert_allclose(((y[1] - y[0]) / (sign * h))[bounded], 1.0, rtol=1e-4)


def test_severity_is_bounded_with_median_one_and_its_sd() -> None:
    rng = np.random.default_rng(0)
    for sd in (0.5, 0.55):
        s = severity_draws(200_000, rng, sd)
        assert s.min() >= 0 and s.max() <= SEVERITY_MAX
        assert np.median(s) == pytest.approx(1.0, abs=0.01) and s.std() == pytest.approx(sd, rel=0.02)
    with pytest.raises(ConfigError, match="severity sd"):
        severity_draws(10, rng, 0.6)  # wider than the uniform's: the beta would pile paths at 0 and 2


def test_scenario_paths_stay_inside_the_band_and_the_stress_tail_is_bounded() -> None:
    """Before the band, from 2025-09 one severely adverse path of 1,000 reached a 100 % HY spread and
    1 % had unemployment above 23.8 %; 1 % of baseline paths hit a 0 bp HY spread."""
    band = history_band()
    for s in SCENARIOS:
        v = cs.macro_paths("vae", s, n_paths=300, months=39, seed=11).values
        assert (v <= band.hi).all() and (v[..., np.isfinite(band.lo)] >= band.lo[np.isfinite(band.lo)]).all(), s
    severe = cs.macro_paths("vae", "severely_adverse", n_paths=300, months=39, seed=11).values
    assert np.quantile(severe[:, :, J["unemployment_rate"]].max(1), 0.99) < band.hi[J["unemployment_rate"]]
    # the band's edges are wider than history's range by MARGIN: the knees are history's own extremes
    hist = cs.load_macro_history()[list(MACRO_VARS)]
    np.testing.assert_allclose(band.knee_hi, hist.max().to_numpy())  # HISTORY_RANGE is the history's
    np.testing.assert_allclose(band.knee_lo, hist.min().to_numpy())
    np.testing.assert_allclose(plausible_band(hist).hi, band.hi)
    assert band.hi[J["credit_spread_hy"]] == pytest.approx(hist["credit_spread_hy"].max() * (1 + MARGIN))


def test_anchored_paths_bound_only_their_free_variables() -> None:
    """A narrative's anchored variable keeps its anchor even beyond history's range (20 % unemployment is
    the user's to ask for); the variables nobody anchored stay in the band. Fed severely adverse paths had
    the unanchored HY spread at 0 bp at some month in 10 % of paths before."""
    band = history_band()
    u, hy = J["unemployment_rate"], J["credit_spread_hy"]
    story = cs.macro_paths({"unemployment_rate": [{"month": 12, "value": 0.20}]}, n_paths=16, months=24, seed=1)
    v = story.values
    np.testing.assert_allclose(v[:, 12, u], 0.20)
    assert v[:, 12, u].min() > band.hi[u]  # anchored: not bounded
    assert (v[:, 1:, hy] >= band.lo[hy]).all() and (v[:, 1:, hy] <= band.hi[hy]).all()
    fed = cs.macro_paths("fed:2026:severely_adverse", n_paths=32, months=39, seed=11).values
    assert (fed[:, 1:, hy] >= band.lo[hy]).all() and (fed[:, 1:, hy] <= band.hi[hy]).all()


def test_beyond_history_counts_paths_by_side_and_only_bounded_sides() -> None:
    band = plausible_band(_history())  # every variable 1-5 %, GDP growth -4 to +6 %
    paths = np.full((4, 3, len(MACRO_VARS)), 0.03)
    paths[0, 2, J["credit_spread_hy"]] = 0.08  # above
    paths[1, 1, J["unemployment_rate"]] = 0.005  # below
    paths[1, 2, J["credit_spread_hy"]] = 0.07  # and above, the same path
    paths[2, :, J["policy_rate"]] = 0.0  # at a floor: the band does not bound policy below
    got = beyond_history(paths, band)
    assert got["above"] == 0.5 and got["below"] == 0.25
    assert got["above_by_variable"] == {"credit_spread_hy": 0.5} and got["below_by_variable"] == {"unemployment_rate": 0.25}
    with pytest.raises(ConfigError, match="expected"):
        beyond_history(paths[0], band)


def test_a_start_outside_history_is_kept_and_not_pulled_in_at_month_1() -> None:
    """A user's start beyond the band (unemployment 22 %, HY 30 %) stays exact at month 0 and month 1
    continues from it (review: month 0 was cut to the edge, 18.4 %, and fed / forecast paths jumped from
    22 % to 13.6 % / 18.3 % at month 1)."""
    from creditsim.datasets import macro_state

    u, hy = J["unemployment_rate"], J["credit_spread_hy"]
    start = macro_state()[list(MACRO_VARS)].to_numpy(float).copy()
    start[u], start[hy] = 0.22, 0.30
    for source in ("vae", "forecast", "fed:2026:severely_adverse"):
        scenario = "baseline" if source == "vae" else None
        v = cs.macro_paths(source, scenario, n_paths=8, months=6, seed=3, start=start).values
        np.testing.assert_allclose(v[:, 0, [u, hy]], np.tile([0.22, 0.30], (8, 1)), err_msg=source)
        if source != "fed:2026:severely_adverse":  # fed anchors unemployment at month 2: its bridge is the model's
            assert np.abs(v[:, 1, u] - 0.22).max() < 0.02, (source, v[:, 1, u])
    x = np.array([[[0.22, 0.23, 0.40]]]).transpose(0, 2, 1) * np.ones((1, 1, len(MACRO_VARS)))
    band = history_band().around_start(x[:, 0])
    y = saturate(x[:, 1:], band)
    w = (band.hi - band.knee_hi)[0, 0, u]  # the margin moves out with the knee: the start is the new knee
    assert band.knee_hi[0, 0, u] == 0.22 and 0.229 < y[0, 0, u] <= 0.23 and 0.23 < y[0, 1, u] <= 0.22 + w


def test_band_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="expected a DataFrame"):
        plausible_band(_history().to_numpy())
    nan = _history()
    nan["default_rate"] = np.nan
    with pytest.raises(DataError, match=r"\['default_rate'\] have no observations"):
        plausible_band(nan)
    text = _history().astype(object)
    text.loc[0, "yield_10y"] = "n/a"
    with pytest.raises(DataError, match=r"\['yield_10y'\] must be numbers"):
        plausible_band(text)
    with pytest.raises(ConfigError, match="margin"):
        plausible_band(_history(), margin="0.2")
