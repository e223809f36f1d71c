"""Supervisory (Fed) scenarios as anchored MacroVAE paths: every published variable meets the table exactly
at months 3k + 2 in every path, the rest is the model's dispersion around it (issue 12, item 3)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.datasets import load_fed_scenarios, macro_state
from creditsim.datasets.macro import macro_history
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.macro.scenarios import FED_ANCHORED_VARS, build_macro_paths, fed_anchors
from creditsim.macro.vae import ConditionRangeWarning
from creditsim.states import MACRO_VARS, SCENARIOS

N, T = 64, 39
UNANCHORED = [v for v in MACRO_VARS if v not in FED_ANCHORED_VARS]


def _paths(source: str, **kw) -> cs.MacroPaths:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)  # severe tables lie beyond the training range
        return cs.macro_paths(source, **{"n_paths": N, "months": T, "seed": 3, **kw})


@pytest.fixture(scope="module")
def severe() -> cs.MacroPaths:
    return _paths("fed:2026:severely_adverse")


@pytest.fixture(scope="module")
def base() -> cs.MacroPaths:
    return _paths("fed:2026:baseline")


def _assert_anchors_met(mp: cs.MacroPaths) -> None:
    assert mp.anchors is not None and len(mp.anchors) == len(FED_ANCHORED_VARS) * 13
    for row in mp.anchors.itertuples():
        got = mp.values[:, row.month, MACRO_VARS.index(row.variable)]
        np.testing.assert_allclose(got, row.value, rtol=0, atol=1e-6, err_msg=f"{row.variable} month {row.month}")


def test_every_path_meets_every_published_quarter_exactly(severe: cs.MacroPaths, base: cs.MacroPaths) -> None:
    for mp, name in ((severe, "severely_adverse"), (base, "baseline")):
        _assert_anchors_met(mp)
        quarterly = load_fed_scenarios(2026, name, monthly=True).iloc[1::3]
        a = mp.anchors
        assert sorted(set(a["month"])) == [3 * k + 2 for k in range(13)]
        u = a[a["variable"] == "unemployment_rate"]["value"].to_numpy()
        np.testing.assert_array_equal(u, quarterly["unemployment_rate"].to_numpy())
        # month 0 is the run's start state (the latest real month), for all nine variables
        latest = macro_state()
        np.testing.assert_allclose(mp.values[:, 0], np.broadcast_to(latest[list(MACRO_VARS)].to_numpy(float), (N, 9)),
                                   atol=1e-6)
        assert mp.dates[0] == pd.Timestamp(latest.attrs["month"] + "-01")


def test_unanchored_months_and_variables_carry_the_models_dispersion(severe: cs.MacroPaths) -> None:
    sd = severe.values.std(axis=0)  # (T, 9)
    for v in FED_ANCHORED_VARS:
        j = MACRO_VARS.index(v)
        free = [t for t in range(1, T) if (t - 2) % 3 != 0]
        assert (sd[free, j] > 0).all(), v
    for v in UNANCHORED:  # every month after the start, unless every path sits at the floor (policy rate 0)
        j = MACRO_VARS.index(v)
        at_floor = (severe.values[:, :, j] <= 0).all(axis=0)
        assert ((sd[1:, j] > 0) | at_floor[1:]).all() and (sd[1:, j] > 0).mean() > 0.5, v


def test_severely_adverse_is_worse_than_baseline(severe: cs.MacroPaths, base: cs.MacroPaths) -> None:
    u, hy = MACRO_VARS.index("unemployment_rate"), MACRO_VARS.index("credit_spread_hy")
    assert np.median(severe.values[:, 24, u]) > np.median(base.values[:, 24, u]) + 0.02
    # an unanchored variable follows the anchors: HY spreads widen more under the severe table
    assert np.median(severe.values[:, :24, hy].max(1)) > np.median(base.values[:, :24, hy].max(1))
    assert (severe.scenarios == 2).all() and (base.scenarios == 0).all()


def test_paths_do_not_share_their_early_months(base: cs.MacroPaths) -> None:
    """The filter's resamplings at 13 quarterly anchors leave the paths with a handful of common ancestors;
    the rejuvenation moves (creditsim.macro.rejuvenation) give every path its own history, anchors exact."""
    from creditsim.macro.scenarios import _anchor_conditions
    from creditsim.macro.vae import MacroVAE

    assert len(np.unique(base.values[:, 1, :], axis=0)) == N  # what macro_paths returns
    model = MacroVAE.from_pretrained()
    start = macro_state()[list(MACRO_VARS)].to_numpy(float)
    conditions = _anchor_conditions(fed_anchors(2026, "baseline", T), start)
    kw = dict(seq_length=T, n_samples=N, seed=3, scenario="baseline", start="model", n_particles=2048)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)
        still = model.generate_conditional(conditions, n_moves=0, **kw).numpy()
        moved = model.generate_conditional(conditions, **kw).numpy()
    assert len(np.unique(still[:, 1], axis=0)) < N / 2
    assert len(np.unique(moved[:, 1], axis=0)) == N and model.last_rejuvenation.moved > 0.95
    assert 0.15 < np.mean(model.last_rejuvenation.acceptance) < 0.5
    order = [list(model.config.variables).index(v) for v in MACRO_VARS]
    for v, items in conditions.items():
        for item in items:
            assert np.abs(moved[:, item["month"], order[MACRO_VARS.index(v)]] - item["value"]).max() < 1e-6


def test_same_seed_same_paths_other_seed_other_paths(severe: cs.MacroPaths) -> None:
    np.testing.assert_array_equal(_paths("fed:2026:severely_adverse").values, severe.values)
    other = _paths("fed:2026:severely_adverse", seed=4)
    assert not np.array_equal(other.values, severe.values)
    _assert_anchors_met(other)


def test_short_horizon_no_start_and_per_label_tables() -> None:
    short = _paths("fed:2025:severely_adverse", months=12)
    assert sorted(set(short.anchors["month"])) == [2, 5, 8, 11]
    for row in short.anchors.itertuples():
        np.testing.assert_allclose(short.values[:, row.month, MACRO_VARS.index(row.variable)], row.value, atol=1e-6)
    # no start state: month 0 is the table's first quarter, dated at the table's first month
    table = load_fed_scenarios(2025, "baseline", monthly=True)
    mp = _paths("fed:2025", scenario="baseline", months=9, start="scenario")
    np.testing.assert_allclose(mp.values[:, 0], np.broadcast_to(table[list(MACRO_VARS)].to_numpy(float)[0], (N, 9)),
                               atol=1e-6)
    assert mp.dates[0] == table.index[0] and mp.start.startswith("supervisory")
    # plain "fed": each label its own table; a mix with adverse weight is refused by name
    labels = np.array([0, 2, 0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)
        paths = build_macro_paths("fed", labels, 9, seed=0)
    for s, name in ((0, "baseline"), (2, "severely_adverse")):
        for v, items in fed_anchors(2025, name, 9).items():
            for m, x in items:
                np.testing.assert_allclose(paths[labels == s, m, MACRO_VARS.index(v)], x, atol=1e-6)
    with pytest.raises(ConfigError, match="only baseline and severely_adverse"):
        build_macro_paths("fed", np.array([0, 1]), 9, seed=0)


def test_anchors_travel_with_scenario_subsets_and_plots(severe: cs.MacroPaths, tmp_path) -> None:
    assert len(severe.scenario("severely_adverse").anchors) == len(severe.anchors)
    assert severe.scenario("baseline").anchors.empty
    fig = severe.plot(["unemployment_rate", "credit_spread_hy"], path=tmp_path / "fed.png")
    assert (tmp_path / "fed.png").stat().st_size > 0
    assert any(line.get_marker() == "o" for line in fig.axes[0].get_lines())


def test_simulate_runs_fed_paths_from_its_macro_start() -> None:
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:40]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionRangeWarning)
        res = cs.simulate(loans, example_path("example_clo.yaml"), n_simulations=6, macro="fed:2026:severely_adverse",
                          macro_start="2008-10", seed=1, horizon=9, progress=False)
    state = macro_state("2008-10")[list(MACRO_VARS)].to_numpy(float)
    np.testing.assert_allclose(res.macro_paths[:, 0], np.broadcast_to(state, (6, 9)), atol=1e-6)
    for v, items in fed_anchors(2026, "severely_adverse", 9).items():
        for m, x in items:
            np.testing.assert_allclose(res.macro_paths[:, m, MACRO_VARS.index(v)], x, atol=1e-6)


@pytest.mark.parametrize("year", [2024, 2025])
def test_unpublished_spreads_start_from_the_observed_jump_off(year: int) -> None:
    """The Fed publishes no HY / IG spread or default rate; ours come from regressions on the table, which
    put the 2025 baseline's HY spread at 1.66 % in month 0, below anything ever observed. The regression
    now supplies the *moves*: the baseline's month 0 is the observed value of the month before the table
    starts, and both scenarios rise from it as the regression does, so the stress minus baseline gap is
    the regression's wherever the baseline does not fall below its jump-off (falls: the next test)."""

    derived = ["credit_spread_ig", "credit_spread_hy", "default_rate"]
    base = load_fed_scenarios(year, "baseline", monthly=True)
    severe = load_fed_scenarios(year, "severely_adverse", monthly=True)
    month = base.index[0] - pd.DateOffset(months=1)
    observed = macro_state(f"{min(month, pd.Timestamp(macro_state().attrs['month'] + '-01')):%Y-%m}")
    np.testing.assert_allclose(base[derived].iloc[0].to_numpy(float), observed[derived].to_numpy(float), rtol=0, atol=1e-12)
    assert base["credit_spread_hy"].min() > 0.025  # the regression level alone started at 1.66 % (2025)
    assert (severe["credit_spread_hy"].iloc[:24] > base["credit_spread_hy"].iloc[:24] + 0.04).all()


def test_a_regressed_fall_is_taken_in_proportion_and_a_rise_as_it_is() -> None:
    """_from_jump_off, closed form: jump-off fitted at 2.7 %, observed 1.5 % (share 1.5 / 2.7)."""
    from creditsim.datasets.fed import _from_jump_off

    fitted = np.array([0.027, 0.037, 0.022, 0.027])
    got = _from_jump_off(fitted, 0.027, 0.015)
    np.testing.assert_allclose(got, [0.015, 0.025, 0.015 - 0.005 * 0.015 / 0.027, 0.015], rtol=0, atol=1e-15)
    # an observed level above the fitted one never amplifies a fall; nothing observed keeps the fit
    np.testing.assert_allclose(_from_jump_off(fitted, 0.027, 0.040), fitted + 0.013, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(_from_jump_off(fitted, 0.027, None), fitted)


def test_the_supervisory_baseline_default_rate_stays_within_history() -> None:
    """With its level slope read unchanged from today's 1.49 %, the 2026 baseline's derived default rate
    fell to 0.99 % by 2029, under the 1.19 % low of the whole 1980-2025 history, and the VAE's baseline
    scenario anchored on it put 65 % of its paths under that low. The severe peak keeps its level rise."""
    low = macro_history(True)[0]["default_rate"].min()
    base = load_fed_scenarios(2026, "baseline", monthly=True)["default_rate"]
    severe = load_fed_scenarios(2026, "severely_adverse", monthly=True)["default_rate"]
    assert base.min() >= low, (base.min(), low)
    assert severe.max() > base.iloc[0] + 0.04  # the severe rise is as the level regression says: +4 pp or more


def test_a_scenario_mix_that_a_single_table_would_ignore_is_refused() -> None:
    with pytest.raises(ConfigError, match="gives severely_adverse paths only; a scenario mix 'baseline' would be ignored"):
        cs.macro_paths("fed:2026:severely_adverse", scenario="baseline", n_paths=4, months=6)
    # naming the table's own scenario is no conflict
    assert cs.macro_paths("fed:2026:baseline", scenario="baseline", n_paths=4, months=6, seed=1).values.shape == (4, 6, 9)


def test_a_table_the_fed_does_not_publish_is_named() -> None:
    with pytest.raises(ConfigError, match=r"fed:2026:adverse.*publishes a baseline and a severely_adverse table only"):
        cs.macro_paths("fed:2026:adverse", n_paths=4, months=6, seed=1)


def test_a_missing_macro_file_is_named_as_missing(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"macro file '.*missing.csv' does not exist"):
        cs.macro_paths(str(tmp_path / "missing.csv"), n_paths=4, months=6)


def test_plain_fed_without_a_mix_draws_its_two_tables_equally() -> None:
    mp = _paths("fed:2026", n_paths=8, months=6)
    assert set(np.unique(mp.scenarios)) <= {SCENARIOS.index("baseline"), SCENARIOS.index("severely_adverse")}
    assert len(np.unique(mp.scenarios)) == 2
    with pytest.raises(ConfigError, match="only baseline and severely_adverse"):  # a mix naming adverse is still refused
        cs.macro_paths("fed:2026", scenario="adverse", n_paths=4, months=6)


def test_an_unknown_fed_scenario_names_the_tables_the_fed_publishes():
    """helper-95's review: 'fed:2026:foo' listed the four scenario labels as valid, then 'fed:2026:adverse'
    was refused; the error now names the Fed's own tables."""
    from creditsim.macro.scenarios import parse_macro_source

    with pytest.raises(ConfigError, match=r"unknown scenario 'foo'; the Fed's 2026 tables bundled here are "
                                          r"\['baseline', 'severely_adverse'\]"):
        parse_macro_source("fed:2026:foo")
    assert parse_macro_source("fed:2026:Severely Adverse") == ("fed", 2026, "severely_adverse")
