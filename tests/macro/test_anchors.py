"""Anchored scenarios: from today's state each scenario name means what it says (issue-12 acceptance,
on 300 paths instead of 1,000 to stay quick)."""

from __future__ import annotations

import numpy as np
import pytest

import creditsim as cs
from creditsim.datasets import load_fed_scenarios, macro_state
from creditsim.macro.anchors import ADVERSE_SHARE, consensus_path, scenario_offsets
from creditsim.macro.synthetic import activity_level_drawdown
from creditsim.states import MACRO_VARS, SCENARIOS

J = {v: i for i, v in enumerate(MACRO_VARS)}
N, T = 300, 39


@pytest.fixture(scope="module")
def paths() -> dict[str, np.ndarray]:
    return {s: cs.macro_paths("vae", s, n_paths=N, months=T, seed=5).values for s in SCENARIOS}


def _median(x: np.ndarray) -> float:
    return float(np.median(x))


def test_offsets_are_the_supervisory_gap_and_the_narrative() -> None:
    off = scenario_offsets(T)
    assert off.shape == (4, T, 9) and (off[0] == 0).all() and (off[:, 0] == 0).all()
    base = load_fed_scenarios(2026, "baseline", monthly=True)[list(MACRO_VARS)].to_numpy()
    severe = load_fed_scenarios(2026, "severely_adverse", monthly=True)[list(MACRO_VARS)].to_numpy()
    np.testing.assert_allclose(off[2, 3:], (severe - base)[3:])  # full gap once the first quarter has passed
    np.testing.assert_allclose(off[1], ADVERSE_SHARE * off[2])
    np.testing.assert_allclose(consensus_path(T), base - base[0])
    longer = scenario_offsets(80)
    assert abs(longer[2, -1, J["unemployment_rate"]]) < 0.25 * abs(longer[2, T - 1, J["unemployment_rate"]])


def test_every_path_starts_from_today_and_stays_in_bounds(paths) -> None:
    start = macro_state()[list(MACRO_VARS)].to_numpy(float)
    for v in paths.values():
        np.testing.assert_allclose(v[:, 0], np.broadcast_to(start, (N, 9)), atol=1e-6)
        assert np.isfinite(v).all() and (v[:, :, J["unemployment_rate"]] >= 0).all()


def test_severely_adverse_has_the_supervisory_size(paths) -> None:
    u = {s: paths[s][:, :, J["unemployment_rate"]].max(1) for s in SCENARIOS}
    fed_peak = load_fed_scenarios(2026, "severely_adverse", monthly=True)["unemployment_rate"].max()
    assert abs(_median(u["severely_adverse"]) - fed_peak) <= 0.01
    sa = paths["severely_adverse"]
    assert _median(activity_level_drawdown(sa[:, :, J["gdp_growth"]])) <= -0.04
    assert _median(activity_level_drawdown(sa[:, :, J["house_price_growth"]], trend=0.0)) <= -0.15
    hy = sa[:, :, J["credit_spread_hy"]]
    assert _median(hy.max(1) - hy[:, 0]) >= 0.06


def test_adverse_lies_between_and_stress_is_worse_than_baseline(paths) -> None:
    u = {s: paths[s][:, :, J["unemployment_rate"]].max(1) for s in SCENARIOS}
    b, a, sa = (_median(u[s]) for s in ("baseline", "adverse", "severely_adverse"))
    assert b + 0.3 * (sa - b) <= a <= sa
    for s in ("adverse", "severely_adverse", "stagflation"):
        assert np.mean(u[s][:, None] > u["baseline"][None, :]) >= 0.8, s


def test_baseline_follows_the_supervisory_baseline(paths) -> None:
    fed = load_fed_scenarios(2026, "baseline", monthly=True)["unemployment_rate"].to_numpy()
    med = np.median(paths["baseline"][:, :, J["unemployment_rate"]], axis=0)
    assert np.abs(med[::3] - fed[::3]).max() <= 0.007


def test_stagflation_is_an_inflation_and_rates_shock_with_rising_unemployment(paths) -> None:
    gap = {v: _median(paths["stagflation"][:, 12:25, J[v]].mean(1)) - _median(paths["baseline"][:, 12:25, J[v]].mean(1))
           for v in ("inflation_rate", "policy_rate")}
    assert gap["inflation_rate"] >= 0.03 and gap["policy_rate"] >= 0.02
    u = paths["stagflation"][:, :, J["unemployment_rate"]]
    assert _median(u[:, 24] - u[:, 0]) > 0


@pytest.fixture(scope="module")
def paths_1000() -> dict[str, np.ndarray]:
    return {s: cs.macro_paths("vae", s, n_paths=1000, months=T, seed=11).values for s in SCENARIOS}


def test_scenarios_keep_the_spread_of_history(paths_1000) -> None:
    """The issue's diversity bar on its own path count: each scenario's 36-month change keeps at least
    0.6 of the spread of history's 39-month windows of the same type, in every variable
    (:func:`creditsim.macro.evaluate.scenario_diversity`, COVID windows out as in training). 0.60-0.66 at
    the narrowest over seeds 0-39 (0.65 at this one; stagflation GDP growth, severely adverse IG, baseline
    house prices and default rate, adverse GDP growth) since the adverse onsets, the duration factor, the deviation width and the stagflation
    narrative's size (2026-12); 0.41-0.45 before, 6-7 of 36 short (``bench/bench_macro_scenarios.py``)."""
    from creditsim.datasets import load_macro_history, load_recession_indicator
    from creditsim.macro.evaluate import scenario_diversity

    table = scenario_diversity(paths_1000, load_macro_history(), load_recession_indicator()["recession"])
    raw = table.loc["unconditional", list(MACRO_VARS)]
    assert (raw >= 0.6).all().all(), raw.round(2).to_string()
    assert (table.loc["unconditional", "total"] >= 0.8).all()


def test_every_named_stress_statistic_is_worse_than_baseline_with_probability_0_8(paths) -> None:
    """P(stress statistic worse than baseline statistic) over all path pairs, for the statistics the
    issue names per scenario (:data:`creditsim.macro.scenario_check.NAMED`: the supervisory sizes for
    adverse and severely adverse; inflation, policy rate and unemployment rise for stagflation; measured
    0.85-1.00 here, 0.87-1.00 on 1,000 paths)."""
    from creditsim.macro.scenario_check import NAMED, scenario_statistics, worse_probabilities

    stats = {s: scenario_statistics(v) for s, v in paths.items()}
    for s, keys in NAMED.items():
        worse = worse_probabilities(stats[s], stats["baseline"], stagflation=s == "stagflation")
        for k in keys:
            assert worse[k] >= 0.8, (s, k, worse[k])


def test_depth_and_onset_vary_by_path_from_their_own_stream() -> None:
    from creditsim.macro.anchors import MAX_ONSET_MONTHS, offset_months, path_offsets
    from creditsim.rng import numpy_generator

    off = scenario_offsets(offset_months(T))[2]
    a = path_offsets(off, 50, numpy_generator(1, 2, 2, 1), months=T)
    assert a.shape == (50, T, 9)
    np.testing.assert_array_equal(a, path_offsets(off, 50, numpy_generator(1, 2, 2, 1), months=T))
    u = a[:, :, J["unemployment_rate"]]
    first = (np.abs(u) > 0).argmax(axis=1)
    assert first.min() >= 1 and first.max() <= MAX_ONSET_MONTHS + 1 and len(np.unique(first)) > 3
    assert np.std(u.max(1)) > 0.005  # depths differ


def test_each_path_runs_the_offset_at_its_own_pace() -> None:
    """Path month t carries severity x offset((t - onset) / duration), read off the table by linear
    interpolation (np.interp here, an independent implementation), from the stream's severities, onsets and
    durations in that order; the durations span DURATION_RANGE, so paths peak at different months."""
    from creditsim.macro.anchors import DURATION_RANGE, offset_months, path_offsets, severity_draws
    from creditsim.rng import numpy_generator

    off = scenario_offsets(offset_months(T))[2]
    n = 200
    got = path_offsets(off, n, numpy_generator(4, 2, 2, 1), months=T)
    rng = numpy_generator(4, 2, 2, 1)
    severity, onset = severity_draws(n, rng), rng.integers(0, 13, n)
    duration = np.exp(rng.uniform(np.log(DURATION_RANGE[0]), np.log(DURATION_RANGE[1]), n))
    assert duration.min() < 0.7 and duration.max() > 1.6
    grid = np.arange(off.shape[0], dtype=float)
    for i in range(n):
        at = (np.arange(T) - onset[i]) / duration[i]
        for j in range(9):
            want = np.where(at >= 0, severity[i] * np.interp(np.maximum(at, 0.0), grid, off[:, j]), 0.0)
            np.testing.assert_allclose(got[i, :, j], want, atol=1e-15, rtol=1e-12)
    peak = got[:, :, J["unemployment_rate"]].argmax(1)
    assert np.ptp(peak[onset == 0]) >= 10  # the same onset, peaks a season or more apart


def test_short_horizons_and_late_onsets() -> None:
    from creditsim.errors import ConfigError
    from creditsim.macro.anchors import offset_months, path_offsets
    from creditsim.rng import numpy_generator

    out = path_offsets(scenario_offsets(offset_months(4))[2], 40, numpy_generator(0, 2, 2, 1), months=4)
    assert out.shape == (40, 4, 9) and np.isfinite(out).all()
    with pytest.raises(ConfigError, match="need 7"):  # a table the fastest pace would read past
        path_offsets(scenario_offsets(4)[2], 40, numpy_generator(0, 2, 2, 1), months=4)
    short = cs.macro_paths("vae", "severely_adverse", n_paths=8, months=3, seed=1)
    assert short.shape == (8, 3, 9)


def test_a_deep_severity_draw_keeps_house_prices_above_minus_one() -> None:
    """The severity was lognormal without a cap (it is bounded at SEVERITY_MAX since 2026-12, and the band
    of creditsim.macro.plausibility keeps house prices above -21 % y/y): an adverse path of a 10,000-path
    seed-7 run on the synthetic tape drew x12.6 the offset, a y/y house-price fall of 127 %, and the collateral channel
    refused the whole run (README's ``simulate --n-sims 10000 --macro vae``; the default run on the
    bundled example too). The floor keeps such a path in the domain; paths above it are untouched."""
    from creditsim.loans.collateral import house_price_trough
    from creditsim.macro.anchors import floor

    h = J["house_price_growth"]
    start = macro_state()[list(MACRO_VARS)].to_numpy(float)
    severity = np.array([1.0, 12.6])[:, None, None]
    deep = start + consensus_path(T)[None] + severity * scenario_offsets(T)[SCENARIOS.index("adverse")][None]
    assert deep[1, :, h].min() < -1 < deep[0, :, h].min()
    kept = floor(deep)
    assert kept[1, :, h].min() == -0.99
    np.testing.assert_array_equal(kept[0, :, h], deep[0, :, h])
    assert 0 < house_price_trough(kept)[1] < house_price_trough(kept)[0] < 1


def test_compose_adds_deviations_and_takes_falls_of_log_variables_in_proportion() -> None:
    from creditsim.macro.anchors import PROPORTIONAL_FLOOR, compose

    central = np.full((2, 3, 9), 0.02)
    paths = np.full((2, 3, 9), 0.03)
    paths[1] = 0.005  # the second path lies below the centre
    centre = np.full((3, 9), 0.015)
    proportional = np.array([v in ("credit_spread_hy", "default_rate") for v in MACRO_VARS])
    out = compose(central, paths, centre, proportional)
    g, hy = J["gdp_growth"], J["credit_spread_hy"]
    assert np.allclose(out[0, :, g], 0.02 + 0.015) and np.allclose(out[1, :, g], 0.02 - 0.01)  # additive
    assert np.allclose(out[0, :, hy], 0.02 + 0.015)  # a rise stays additive
    assert np.allclose(out[1, :, hy], 0.02 * 0.005 / 0.015)  # a fall is a share: a third of the level
    # continuous and increasing in the path through the centre
    grid = np.linspace(0.0, 0.05, 501)[:, None, None] * np.ones((1, 1, 9))
    y = compose(np.full((501, 1, 9), 0.02), grid, np.full((1, 9), 0.015), proportional)[:, 0, hy]
    assert np.all(np.diff(y) >= 0) and np.max(np.abs(np.diff(y))) < 2 * 0.0001 * 0.02 / 0.015 + 1e-12
    # a central path at or below zero never flips the sign of a proportional variable
    central[..., J["default_rate"]] = -0.01
    out = compose(central, paths, centre, proportional)
    assert np.allclose(out[1, :, J["default_rate"]], PROPORTIONAL_FLOOR * 0.005 / 0.015)


def test_spreads_near_their_lows_move_by_less_than_in_stress(paths) -> None:
    """Falls are proportional for the log variables: from today's tight HY spread the baseline's 36-month
    spread (q95 - q5, in basis points) is under half the severely adverse one's, and the baseline keeps
    its spreads off the plausible band's lower edge (within 1 bp of it at some month)."""
    from creditsim.macro.plausibility import history_band

    j = J["credit_spread_hy"]
    base, severe = paths["baseline"][:, 36, j], paths["severely_adverse"][:, 24, j]
    width = lambda x: float(np.quantile(x, 0.95) - np.quantile(x, 0.05))  # noqa: E731
    assert width(base) < width(severe) / 2
    edge = history_band().lo[j]
    # composed additively, 26 % of 1,000 baseline paths (seed 11) reached the edge; in proportion 3 %
    assert float((paths["baseline"][:, :, j] <= edge + 1e-4).any(axis=1).mean()) < 0.1


def test_compose_widens_each_variables_deviation_by_its_width() -> None:
    from creditsim.errors import ConfigError
    from creditsim.macro.anchors import SCENARIO_DEVIATION_WIDTH, compose, deviation_width

    rng = np.random.default_rng(0)
    central, paths, centre = rng.normal(0.03, 0.01, (4, 5, 9)), rng.normal(0.02, 0.01, (4, 5, 9)), np.full((5, 9), 0.02)
    none = np.zeros(9, dtype=bool)
    width = deviation_width()
    assert width[J["gdp_growth"]] == SCENARIO_DEVIATION_WIDTH["gdp_growth"] > 1 and width[J["policy_rate"]] == 1
    np.testing.assert_allclose(compose(central, paths, centre, none, width), central + width * (paths - centre))
    np.testing.assert_array_equal(compose(central, paths, centre, none, np.ones(9)), compose(central, paths, centre, none))
    for bad in (np.ones(8), np.r_[np.ones(8), 0.0], np.r_[np.ones(8), np.nan]):
        with pytest.raises(ConfigError, match="width must be 9 positive"):
            compose(central, paths, centre, none, bad)


@pytest.mark.parametrize("mask", [("credit_spread_hy",), [True, False], np.zeros(9)])
def test_compose_refuses_a_mask_that_is_not_nine_booleans(mask) -> None:
    from creditsim.errors import ConfigError
    from creditsim.macro.anchors import compose

    x = np.full((2, 3, 9), 0.02)
    with pytest.raises(ConfigError, match="9 booleans"):
        compose(x, x, x[0], mask)
    with pytest.raises(ConfigError, match=r"centre \(T, 9\)"):
        compose(x, x, x, np.zeros(9, dtype=bool))
