"""creditsim.macro_paths: every macro source behind one call, returning MacroPaths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.datasets import load_fed_scenarios, macro_state
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.macro.scenarios import build_macro_paths, fed_table_path
from creditsim.states import MACRO_VARS


def test_macro_paths_are_the_paths_simulate_uses() -> None:
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:80]
    res = cs.simulate(loans, example_path("example_clo.yaml"), n_simulations=12, macro="synthetic", seed=4,
                      horizon=9, progress=False)
    mp = cs.macro_paths("synthetic", n_paths=12, months=9, seed=4)
    np.testing.assert_array_equal(mp.values, res.macro_paths)
    np.testing.assert_array_equal(mp.scenarios, res.scenarios)
    assert mp.shape == (12, 9, 9) and np.asarray(mp).shape == (12, 9, 9)


@pytest.mark.parametrize("source", ["var", "bootstrap"])
def test_baselines_start_from_the_latest_real_month(source: str) -> None:
    mp = cs.macro_paths(source, "severely_adverse", n_paths=30, months=24, seed=2)
    latest = macro_state()
    np.testing.assert_array_equal(mp.values[:, 0], np.broadcast_to(latest[list(MACRO_VARS)].to_numpy(float), (30, 9)))
    assert mp.dates[0] == pd.Timestamp(latest.attrs["month"] + "-01") and (mp.scenarios == 2).all()
    assert np.isfinite(mp.values).all()
    again = cs.macro_paths(source, "severely_adverse", n_paths=30, months=24, seed=2)
    np.testing.assert_array_equal(mp.values, again.values)


@pytest.mark.parametrize("source", ["var", "bootstrap"])
def test_baseline_scenarios_from_a_start_mean_what_their_names_say(source: str) -> None:
    """From a given start the VAR's and the bootstrap's labels carry the anchored scenario meanings (as the
    VAE's): severely adverse peaks higher in unemployment than adverse, adverse than baseline, and
    stagflation runs the highest inflation at month 24. Before, the VAR's four labels were one
    distribution from a given start, and the bootstrap's stagflation had the lowest inflation. The
    paths still come from the generator: the VAR's and the bootstrap's differ, label for label."""
    labels = np.repeat(np.arange(4), 120)
    start = macro_state("2025-06")[list(MACRO_VARS)].to_numpy(float)
    paths = build_macro_paths(source, labels, 36, seed=5, start=start)
    np.testing.assert_array_equal(paths[:, 0], np.broadcast_to(start, (480, 9)))
    u, infl = MACRO_VARS.index("unemployment_rate"), MACRO_VARS.index("inflation_rate")
    peak = [np.median(paths[labels == s, :, u].max(axis=1)) for s in range(4)]
    assert peak[2] > peak[1] + 0.01 > peak[0] + 0.02, peak
    at24 = [np.median(paths[labels == s, 24, infl]) for s in range(4)]
    assert at24[3] > max(at24[:3]) + 0.02, at24
    other = build_macro_paths("bootstrap" if source == "var" else "var", labels, 36, seed=5, start=start)
    assert not np.allclose(paths[:, 1:], other[:, 1:])


def test_a_named_month_is_that_month_real_state() -> None:
    mp = cs.macro_paths("var", "baseline", n_paths=5, months=6, start="2008-10", seed=0)
    np.testing.assert_array_equal(mp.values[0, 0], macro_state("2008-10")[list(MACRO_VARS)].to_numpy(float))
    assert mp.dates[0] == pd.Timestamp("2008-10-01")


def test_fed_year_and_scenario_anchor_every_path_on_the_supervisory_table() -> None:
    mp = cs.macro_paths("fed:2026:severely_adverse", n_paths=4, months=39)
    table = load_fed_scenarios(2026, scenario="severely_adverse", monthly=True)
    u = MACRO_VARS.index("unemployment_rate")
    # quarter k of the table at month 3k + 2 after the start (the latest real month), in every path
    np.testing.assert_allclose(mp.values[:, 2::3, u], np.broadcast_to(table["unemployment_rate"].to_numpy()[1::3], (4, 13)),
                               atol=1e-6)
    latest = macro_state()
    assert (mp.scenarios == 2).all() and mp.dates[0] == pd.Timestamp(latest.attrs["month"] + "-01")
    assert set(mp.anchors["scenario"]) == {"severely_adverse"} and mp.anchors["month"].max() == 38
    # the table itself stays available as a deterministic array source
    exact = cs.macro_paths(fed_table_path(2026, "severely_adverse", 39), n_paths=2, months=39)
    np.testing.assert_array_equal(exact.values[1], table[list(MACRO_VARS)].to_numpy(float))
    with pytest.raises(ConfigError, match="no bundled supervisory scenarios for year '1999'"):
        cs.macro_paths("fed:1999:baseline", n_paths=2)
    with pytest.raises(ConfigError, match="macro must be one of"):
        cs.macro_paths("magic", n_paths=2)


def test_frames_tables_and_plots(tmp_path) -> None:
    mp = cs.macro_paths("synthetic", {"baseline": 0.5, "stagflation": 0.5}, n_paths=10, months=12, seed=1)
    frame = mp.to_frame()
    assert frame.shape == (120, 10) and list(frame.columns) == ["scenario", *MACRO_VARS]
    assert set(frame["scenario"]) == {"baseline", "stagflation"}
    q = mp.quantiles((0.1, 0.9))
    assert (q.xs(0.9, level="quantile") >= q.xs(0.1, level="quantile")).all().all()
    assert len(mp.scenario("stagflation")) == int((mp.scenarios == 3).sum())
    fig = mp.plot(["unemployment_rate", "inflation_rate"], path=tmp_path / "fan.png")
    assert (tmp_path / "fan.png").stat().st_size > 0 and len(fig.axes) >= 2
    with pytest.raises(ConfigError, match="not macro variables"):
        mp.plot(["unemployment"])
    with pytest.raises(ConfigError, match="n_paths must be an integer >= 1"):
        cs.macro_paths(n_paths=0)


@pytest.mark.parametrize("source", ["var", "bootstrap"])
def test_simulate_starts_generated_baseline_paths_from_the_given_state(source: str) -> None:
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:40]
    res = cs.simulate(loans, example_path("example_clo.yaml"), n_simulations=6, macro=source, macro_start="2008-10",
                      seed=1, horizon=6, progress=False)
    state = macro_state("2008-10")[list(MACRO_VARS)].to_numpy(float)
    np.testing.assert_array_equal(res.macro_paths[:, 0], np.broadcast_to(state, (6, 9)))
    assert res.settings["macro_start"]["source"] == "history 2008-10"


def test_a_state_vector_as_start() -> None:
    state = macro_state("2008-10")[list(MACRO_VARS)].to_numpy(float)
    mp = cs.macro_paths("var", n_paths=3, months=4, start=state, seed=0)
    np.testing.assert_array_equal(mp.values[:, 0], np.broadcast_to(state, (3, 9)))
    assert mp.start == "user"


def test_forecast_paths_are_the_vaes_own_distribution_from_the_start_and_simulate_takes_them() -> None:
    """``forecast``: month 0 is the start state exactly, no scenario is imposed (the paths carry the
    dynamics labels the start picked, more than one here), same seed same paths, and a run over them
    reproduces macro_paths (the simulation's stream is the same)."""
    mp = cs.macro_paths("forecast", n_paths=40, months=13, start="2008-10", seed=3)
    state = macro_state("2008-10")[list(MACRO_VARS)].to_numpy(float)
    np.testing.assert_allclose(mp.values[:, 0], np.broadcast_to(state, (40, 9)), atol=1e-6)
    assert len(set(mp.scenarios.tolist())) > 1 and np.isfinite(mp.values).all()
    np.testing.assert_array_equal(mp.values, cs.macro_paths("forecast", n_paths=40, months=13, start="2008-10",
                                                            seed=3).values)
    # the pull drawn per path spreads 12-month unemployment wider than the trained backbone's paths do
    vae = cs.macro_paths("vae", "baseline", n_paths=40, months=13, start="2008-10", seed=3)
    assert not np.allclose(mp.values[:, 12], vae.values[:, 12])
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:40]
    res = cs.simulate(loans, example_path("example_clo.yaml"), n_simulations=40, macro="forecast",
                      macro_start="2008-10", seed=3, horizon=13, progress=False)
    np.testing.assert_array_equal(res.macro_paths, mp.values)
    np.testing.assert_array_equal(res.scenarios, mp.scenarios)


def test_forecast_refuses_a_scenario_mix() -> None:
    from creditsim.risk.config import RunConfig

    with pytest.raises(ConfigError, match="'forecast' takes no scenario mix"):
        cs.macro_paths("forecast", "severely_adverse", n_paths=4, months=6)
    with pytest.raises(ConfigError, match="'forecast' takes no scenario mix"):
        RunConfig(macro="forecast", scenario_mix="baseline")


def test_synthetic_paths_need_no_restricted_series_but_real_starts_say_what_is_missing() -> None:
    """A wheel user before ``creditsim data fetch``: synthetic paths are dated from the shipped
    unemployment series; a VAE baseline from the real state names the missing series in one line."""
    import subprocess
    import sys

    code = (
        "import creditsim.datasets.restricted as r; r.search_dirs = lambda: []\n"
        "import creditsim as cs\n"
        "from creditsim.datasets.files import read_fred_series\n"
        "p = cs.macro_paths('synthetic', n_paths=3, months=6, seed=0)\n"
        "assert p.values.shape == (3, 6, 9), p.values.shape\n"
        "last = read_fred_series('UNRATE').index[-1]\n"
        "assert p.dates[0] == last.to_period('M').to_timestamp(), (p.dates[0], last)\n"
        "from creditsim.errors import RestrictedDataMissing\n"
        "try:\n"
        "    cs.macro_paths('vae', n_paths=3, months=6, seed=0)\n"
        "except RestrictedDataMissing as e:\n"
        "    print('missing:', str(e).splitlines()[0][:60])\n"
        "else:\n"
        "    raise SystemExit('vae paths ran without the restricted series')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "missing:" in out.stdout


TAIL_STORY = {"unemployment_rate": [{"month": 18, "value": 0.09}], "credit_spread_hy": [{"month": 12, "value": 0.09}],
              "house_price_growth": [{"month": 18, "value": -0.15}]}


def test_a_narrative_that_leaves_the_label_to_its_anchors_reports_the_posterior_they_give() -> None:
    """The paths carry the conditioning report of their draw: the label posterior the anchors give (here
    almost all severely adverse), two independent estimates of it, and the ESS / moves. The labels the
    paths carry follow the reported posterior; the draw itself is the same with or without the report."""
    mp = cs.macro_paths(TAIL_STORY, n_paths=200, months=24, seed=0)
    (report,) = mp.conditioning
    assert report.batch == "picked by the anchors" and report.n_paths == 200 and report.n_particles >= 200
    post = report.label_posterior
    assert list(post) == ["baseline", "adverse", "severely_adverse", "stagflation"]
    assert sum(post.values()) == pytest.approx(1.0) and max(post, key=post.get) == "severely_adverse"
    pilot, allocated = report.label_passes
    assert report.label_noise == pytest.approx(max(abs(pilot[k] - allocated[k]) for k in post))
    assert abs(np.mean(mp.scenarios == 2) - post["severely_adverse"]) < 0.05
    assert report.label_shares == pytest.approx({k: float(np.mean(mp.scenarios == i)) for i, k in enumerate(post)})
    assert 0.3 <= report.ess <= 1.0 and report.acceptance is not None and report.moved > 0.5
    table = mp.conditioning_table()
    assert table.loc[0, "P(severely_adverse)"] == pytest.approx(post["severely_adverse"])
    assert table.loc[0, "ess"] == pytest.approx(report.ess)
    np.testing.assert_array_equal(mp.values, cs.macro_paths(TAIL_STORY, n_paths=200, months=24, seed=0).values)


def test_fed_batches_report_per_table_and_unconditioned_sources_report_nothing() -> None:
    mp = cs.macro_paths("fed:2026", "baseline=0.5,severely_adverse=0.5", n_paths=40, months=12, seed=3)
    assert [r.batch for r in mp.conditioning] == ["baseline", "severely_adverse"]
    assert [r.n_paths for r in mp.conditioning] == [20, 20]
    assert all(r.label_posterior is None and r.label_noise is None for r in mp.conditioning)
    assert [r.batch for r in mp.scenario("severely_adverse").conditioning] == ["severely_adverse"]
    # each table has its own filter diagnostics (the two differ: 0.55 and 0.60 with the shipped model; before
    # the tempered latents, creditsim.macro.tempering, 0.02 and 0.06, the supervisory start's first guided
    # month; with the latent alone 0.04 and 0.30, before the windows ahead of its anchored months)
    assert all(0.3 <= r.ess <= 1 and 0 < r.acceptance < 1 and r.moved > 0.5 for r in mp.conditioning)
    assert all(r.tempering_steps >= 2 for r in mp.conditioning)
    assert list(mp.conditioning_table()["tempering_steps"]) == [r.tempering_steps for r in mp.conditioning]
    assert mp.conditioning[0].ess != mp.conditioning[1].ess
    plain = cs.macro_paths("var", n_paths=5, months=6)
    assert plain.conditioning == () and list(plain.conditioning_table().columns)[:4] == ["batch", "paths", "particles", "ess"]
    assert len(plain.conditioning_table()) == 0


def test_plot_refuses_an_unknown_chart_type_and_leaves_no_partial_file(tmp_path) -> None:
    mp = cs.macro_paths("synthetic", "baseline", n_paths=4, months=6, seed=1)
    with pytest.raises(ConfigError, match="expected a file ending in .png, .svg, .pdf"):
        mp.plot(path=tmp_path / "fan.jpg")
    mp.plot(path=tmp_path / "fan.svg")
    assert (tmp_path / "fan.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fan.svg"]


def test_a_paths_table_round_trips_and_drives_simulations_path_by_path(tmp_path) -> None:
    """``MacroPaths.to_frame()`` written to a file reads back as the same paths, labels and dates
    (``macro_paths(file)``), and ``simulate`` takes the file with path i driving simulation i."""
    from creditsim.risk.simulate import simulate

    mp = cs.macro_paths("var", "baseline=0.5,severely_adverse=0.5", n_paths=12, months=14, seed=4)
    f = tmp_path / "paths.parquet"
    mp.to_frame().reset_index().sample(frac=1.0, random_state=0).to_parquet(f)  # any row order
    back = cs.macro_paths(f, n_paths=12, months=14)
    np.testing.assert_array_equal(back.values, mp.values)
    np.testing.assert_array_equal(back.scenarios, mp.scenarios)
    assert (back.dates == mp.dates).all() and back.start == "paths as given"
    loans = pd.read_parquet(example_path("loans_example.parquet")).iloc[:20]
    res = simulate(loans, example_path("example_clo.yaml"), n_simulations=12, macro=str(f), horizon=14, seed=1,
                   progress=False, keep_cashflows=False)
    np.testing.assert_array_equal(res.scenarios, mp.scenarios)
    np.testing.assert_allclose(np.asarray(res.macro_paths), mp.values)
    with pytest.raises(ConfigError, match="holds 12 paths .* ask for 12"):
        cs.macro_paths(f, n_paths=10, months=14)
    with pytest.raises(ConfigError, match="labels each path with its scenario column"):
        cs.macro_paths(f, "baseline", n_paths=12, months=14)
    # to_frame() as it comes (MultiIndex) and ids of mixed types (read as text) are read too
    np.testing.assert_array_equal(cs.macro_paths(mp.to_frame(), n_paths=12, months=14).values, mp.values)
    by_id = mp.to_frame().reset_index().set_index("path")
    np.testing.assert_array_equal(cs.macro_paths(by_id, n_paths=12, months=14).values, mp.values)
    mixed = mp.to_frame().reset_index().assign(path=lambda t: [p if p % 2 else str(p) for p in t["path"]])
    assert cs.macro_paths(mixed, n_paths=12, months=14).values.shape == (12, 14, 9)
    # a run that was given paths with their own labels records those labels' shares, and refuses another mix
    assert res.settings["scenario_mix"] == pytest.approx({s: float(np.mean(mp.scenarios == i))
                                                           for i, s in enumerate(["baseline", "adverse",
                                                                                  "severely_adverse", "stagflation"])})
    with pytest.warns(UserWarning, match="labels its own paths .* is not used"):
        again = simulate(loans, example_path("example_clo.yaml"), n_simulations=12, macro=str(f), horizon=14, seed=1,
                         progress=False, keep_cashflows=False, scenario_mix="baseline")
    np.testing.assert_array_equal(again.portfolio_losses, res.portfolio_losses)
    assert again.settings["scenario_mix"] == res.settings["scenario_mix"]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t[~((t["path"] == 3) & (t["reporting_month"] == t["reporting_month"].max()))], "path 3 has 13 rows"),
    (lambda t: t.assign(scenario=np.where((t["path"] == 2) & (t.index % 2 == 0), "adverse", t["scenario"])),
     "path 2 changes scenario"),
    (lambda t: t.assign(gdp_growth=np.where(t["path"] == 5, np.nan, t["gdp_growth"])), "path 5, 2025-09: gdp_growth"),
    (lambda t: t.assign(unemployment_rate=np.where(t["path"] == 1, 4.5, t["unemployment_rate"])), "path 1.*decimals"),
    (lambda t: t.drop(columns="default_rate"), r"missing column\(s\) \['default_rate'\]"),
    (lambda t: t.assign(path=np.where(t["path"] == 2, np.nan, t["path"])), r"row 28 \(0-based, header not counted\) has no path id"),
    (lambda t: t.assign(scenario=np.where(t["path"] == 3, None, t["scenario"])), "path 3 has rows without a scenario"),
    (lambda t: t.iloc[:0], "no rows"),
    (lambda t: pd.concat([t, t.iloc[[20]]]), "path 1 has month 2026-03 more than once"),
    (lambda t: t.assign(reporting_month=t["reporting_month"] + pd.to_timedelta(np.where(t["path"] == 4, 31, 0), "D")),
     "path 4 covers other months than path 0"),
])
def test_a_bad_paths_table_names_the_path_and_what_was_expected(tmp_path, edit, match) -> None:
    from creditsim.errors import DataError

    mp = cs.macro_paths("var", "baseline", n_paths=6, months=14, seed=4)
    f = tmp_path / "bad.csv"
    edit(mp.to_frame().reset_index()).to_csv(f, index=False)
    with pytest.raises((DataError, ConfigError), match=match):
        cs.macro_paths(f, n_paths=6, months=14)


def test_options_a_source_would_ignore_are_refused() -> None:
    # sources with their own start take any start unread (stress passes the run's start to every source)
    np.testing.assert_array_equal(cs.macro_paths("synthetic", n_paths=4, months=6, start=None, seed=1).values,
                                  cs.macro_paths("synthetic", n_paths=4, months=6, start="2019-12", seed=1).values)
    with pytest.raises(ConfigError, match="lets its anchors pick the dynamics; a scenario 'baseline' would be ignored"):
        cs.macro_paths(TAIL_STORY, "baseline", n_paths=4, months=24)
    named = {**TAIL_STORY, "scenario": "severely_adverse"}
    with pytest.raises(ConfigError, match="names 'severely_adverse'"):
        cs.macro_paths(named, "adverse", n_paths=4, months=24)
    assert (cs.macro_paths(named, "severely_adverse", n_paths=4, months=24).scenarios == 2).all()
    assert (cs.macro_paths(named, {"severely_adverse": 1.0}, n_paths=4, months=24).scenarios == 2).all()
