"""Generative metrics (closed forms), VAR / bootstrap baselines, the evaluation table and `creditsim eval macro`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError, NotFittedError
from creditsim.macro import metrics as M
from creditsim.macro.baselines import BlockBootstrapGenerator, VARGenerator
from creditsim.macro.evaluate import compare_generators, evaluate_macro, historical_windows
from creditsim.states import MACRO_VARS


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    from creditsim.datasets import load_macro_history

    return load_macro_history()


@pytest.fixture(scope="module")
def recession() -> pd.Series:
    from creditsim.datasets import load_recession_indicator

    return load_recession_indicator()["recession"]


class HistoryGenerator:
    """Returns real windows (random with replacement): the noise floor of every metric."""

    name = "history"

    def __init__(self, history):
        self.windows = historical_windows(history)

    def generate(self, scenario=None, seq_length=60, n_samples=100, *, seed=None):
        rng = np.random.default_rng(seed)
        return torch.from_numpy(self.windows[rng.integers(len(self.windows), size=n_samples), :seq_length])


# ---------------------------------------------------------------- metrics against closed forms
def test_w1_of_a_shifted_sample_is_the_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 20, 3))
    np.testing.assert_allclose(M.marginal_w1(x, x + 0.7), 0.7, rtol=1e-12)
    np.testing.assert_allclose(M.marginal_w1(x, x + 0.7, diff=True), 0.0, atol=1e-12)


def test_acf_of_an_ar1_process_is_phi_to_the_k():
    rng = np.random.default_rng(1)
    phi, n, T = 0.8, 400, 400
    x = np.zeros((n, T, 1))
    for t in range(1, T):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=(n, 1))
    rho = M.acf(x, (1, 3, 6))[0]
    # within-window demeaning biases by O(1/T); 400 months keep it below 0.02
    np.testing.assert_allclose(rho, [phi, phi ** 3, phi ** 6], atol=0.03)
    assert M.acf_error(x, x) == 0.0


def test_correlation_error_of_known_correlations():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(200, 50, 2))
    a = np.stack([z[..., 0], z[..., 0]], -1)  # correlation 1
    b = np.stack([z[..., 0], z[..., 1]], -1)  # correlation ~0
    assert M.correlation_error(a, a) == 0.0
    assert M.correlation_error(a, b) == pytest.approx(1.0, abs=0.02)


def test_cross_correlation_detects_a_lead():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(100, 63))
    x = np.stack([e[:, 3:], e[:, :-3]], -1)  # variable 1 is variable 0 three months later
    assert M.cross_correlation(x, 0, 1, 3) == pytest.approx(1.0, abs=1e-12)
    assert abs(M.cross_correlation(x, 0, 1, 0)) < 0.05


def test_mmd_and_energy_distinguish_shifted_distributions():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(120, 10, 2)), rng.normal(size=(120, 10, 2))
    c = rng.normal(size=(120, 10, 2)) + 0.5
    same, _ = M.mmd2_unbiased(a, b)
    diff, _ = M.mmd2_unbiased(a, c)
    assert abs(same) < 0.01 < diff
    assert M.energy_distance(a, b) < M.energy_distance(a, c)
    stat, p_same = M.mmd_test(a, b, n_perm=50)
    stat, p_diff = M.mmd_test(a, c, n_perm=50)
    assert p_same > 0.05 and p_diff < 0.05


def test_discriminative_score_is_near_zero_for_twins_and_near_half_for_strangers():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 24, 2)), rng.normal(size=(200, 24, 2))
    assert M.discriminative_score(a, b) < 0.1
    assert M.discriminative_score(a, b * 3 + 2) > 0.45


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=15),
       st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=15))
def test_prob_greater_matches_pairwise_count(a, b):
    a, b = np.array(a), np.array(b)
    brute = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert M.prob_greater(a, b) == pytest.approx(brute, abs=1e-12)


def test_tail_statistics_of_a_hand_made_path():
    T = 60
    path = np.tile(np.array([0.02, 0.05, 0.02, 0.03, 0.04, 0.01, 0.04, 0.0, 0.03]), (1, T, 1)).astype(float)
    path[0, 10:, 1] = 0.09  # unemployment 5 % -> 9 %
    path[0, 20, 6] = 0.12  # HY spread peaks at 1,200 bp
    path[0, :12, 7] = -0.12  # house prices fall 12 % over the first year
    stats = M.tail_statistics(path).iloc[0]
    assert stats["peak_unemployment_rise_pp"] == pytest.approx(4.0)
    assert stats["peak_hy_spread_bp"] == pytest.approx(1200.0)
    assert stats["hy_spread_widening_bp"] == pytest.approx(800.0)
    assert stats["max_hpi_drawdown"] == pytest.approx(0.12, rel=1e-9)
    assert stats["peak_default_rate"] == pytest.approx(0.03)


def test_as_paths_rejects_bad_input():
    with pytest.raises(DataError, match="shape"):
        M.as_paths(np.zeros((3, 4)))
    with pytest.raises(DataError, match="NaN"):
        M.as_paths(np.full((2, 3, 4), np.nan))


# ---------------------------------------------------------------- baselines
def test_var_baseline_matches_statsmodels_and_its_implied_mean(history, recession):
    from statsmodels.tsa.api import VAR

    everything = VARGenerator(1).fit(history, recession, exclude=None)  # COVID months kept: statsmodels as is
    ref = VAR(history.to_numpy()).fit(1)
    np.testing.assert_allclose(everything.coefs_, ref.coefs, rtol=1e-10)
    np.testing.assert_allclose(everything.sigma_u_, ref.sigma_u, rtol=1e-10)
    gen = VARGenerator(1).fit(history, recession)  # default: COVID rows left out (test_covid_exclusion)
    # closed form: from a fixed start x0, E[x_t] = mu + A^t (x0 - mu) with mu = (I - A)^-1 c. (The VAR is
    # close to a unit root -- largest eigenvalue ~0.995 -- so even 400 months do not forget the start.)
    x0 = history.to_numpy()[-1]
    paths = gen.generate(None, seq_length=120, n_samples=4000, seed=0, start=x0, censor=False).numpy()
    np.testing.assert_array_equal(paths[:, 0], np.broadcast_to(x0, (4000, 9)))
    mu = np.linalg.solve(np.eye(9) - gen.coefs_[0], gen.intercept_)
    for t in (12, 60, 119):
        expected = mu + np.linalg.matrix_power(gen.coefs_[0], t) @ (x0 - mu)
        se = paths[:, t].std(0) / np.sqrt(4000)
        assert np.all(np.abs(paths[:, t].mean(0) - expected) < 5 * se + 1e-12), t


def test_baselines_keep_rates_at_their_lower_bounds_as_censored_paths(history, recession):
    """Issue 18 review: unfloored VAR / bootstrap paths reached policy rates of -3 to -6 %. Censored: never
    below the MacroVAE's LOWER_BOUNDS, a month at a bound is where the next builds on, and a path that never
    reaches a bound is the uncensored path to the bit."""
    from creditsim.macro.vae import LOWER_BOUNDS
    from creditsim.states import MACRO_VARS

    x0 = history.to_numpy()[-1].copy()
    x0[MACRO_VARS.index("policy_rate")] = 0.0025  # start at the lower bound's doorstep
    lo = np.array([LOWER_BOUNDS.get(v, -np.inf) for v in MACRO_VARS])
    for gen in (VARGenerator(1).fit(history, recession), BlockBootstrapGenerator(12.0).fit(history, recession)):
        free = gen.generate(None, seq_length=60, n_samples=400, seed=3, start=x0, censor=False).numpy()
        held = gen.generate(None, seq_length=60, n_samples=400, seed=3, start=x0).numpy()
        assert (free < lo - 1e-12).any(), gen.name  # the bounds bind on this start
        assert (held >= lo).all(), gen.name
        untouched = (free >= lo).all(axis=(1, 2))
        assert untouched.any() and (~untouched).any()
        np.testing.assert_array_equal(held[untouched], free[untouched])


def test_bootstrap_from_a_given_start_adds_historical_changes_to_it(history, recession):
    gen = BlockBootstrapGenerator(6.0).fit(history, recession)
    x0 = history.to_numpy()[100]
    paths = gen.generate("severely_adverse", seq_length=24, n_samples=50, seed=2, start=x0, censor=False).numpy()
    np.testing.assert_array_equal(paths[:, 0], np.broadcast_to(x0, (50, 9)))
    steps = np.diff(paths, axis=1).reshape(-1, 9)
    # every month-on-month step is one of the historical monthly changes
    changes = gen.changes_
    assert all(np.abs(changes - step).max(axis=1).min() < 1e-12 for step in steps[:200])
    with pytest.raises(ConfigError, match="start must be 9 finite values"):
        gen.generate(start=np.zeros(3))


def test_var_generate_is_seeded_and_starts_from_real_months(history, recession):
    gen = VARGenerator(2).fit(history, recession)
    a = gen.generate(scenario=2, n_samples=20, seed=3)
    assert torch.equal(a, gen.generate(scenario=2, n_samples=20, seed=3))
    assert a.shape == (20, 60, 9)
    windows = historical_windows(history)
    starts = windows[gen.window_labels_ == 2][:, :2]  # both without the COVID-overlapping windows
    for path in a.numpy():
        assert np.abs(starts - path[:2]).max(axis=(1, 2)).min() < 1e-12


def test_var_lag_selection_and_errors(history):
    gen = VARGenerator("aic", max_lags=3).fit(history)
    assert 1 <= gen.lags_ <= 3
    with pytest.raises(ConfigError):
        VARGenerator(0)
    with pytest.raises(NotFittedError):
        VARGenerator(1).generate()


def test_bootstrap_changes_are_historical_changes(history, recession):
    gen = BlockBootstrapGenerator(mean_block=6).fit(history, recession)
    paths = gen.generate(None, seq_length=60, n_samples=50, seed=1, censor=False).numpy()  # the mechanics
    steps = np.diff(paths, axis=1).reshape(-1, 9)
    changes = np.diff(history.to_numpy(), axis=0)
    # every simulated monthly change is one of the historical monthly change vectors
    dist = np.abs(steps[:, None, :] - changes[None, :, :]).max(-1).min(-1)
    assert dist.max() < 1e-12
    # blocks: consecutive steps continue the same historical sequence with probability 1 - 1/6
    idx = np.abs(steps[:, None, :] - changes[None, :, :]).max(-1).argmin(-1).reshape(50, 59)
    cont = (np.diff(idx, axis=1) == 1).mean()
    assert cont == pytest.approx(5 / 6, abs=0.05)


def test_bootstrap_scenario_uses_only_its_windows(history, recession):
    gen = BlockBootstrapGenerator().fit(history, recession)
    with pytest.raises(ConfigError):
        gen.generate(scenario="boom")
    paths = gen.generate("severely_adverse", n_samples=10, seed=0).numpy()
    firsts = historical_windows(history)[gen.window_labels_ == 2][:, 0]
    assert all(np.abs(firsts - p[0]).max(1).min() < 1e-12 for p in paths)


# ---------------------------------------------------------------- the table
def test_evaluate_macro_is_tidy_and_real_windows_score_near_zero(history):
    table = evaluate_macro(HistoryGenerator(history), history, n_samples=400, seeds=(0, 1))
    assert list(table.columns) == ["generator", "metric", "mean", "sd"]
    m = table.set_index("metric")["mean"]
    assert m["w1_mean"] < 0.08 and m["acf_err"] < 0.02 and m["corr_err"] < 0.05
    # the blocked-CV discriminative score of resampled history is not 0 (a time block is told apart
    # from copies of itself seen in training; EVALUATION.md reports 0.34 for half the windows), but a
    # visibly distorted history must score worse
    class Distorted(HistoryGenerator):
        def generate(self, *args, **kwargs):
            return super().generate(*args, **kwargs) * 1.3

    worse = evaluate_macro(Distorted(history), history, n_samples=400, seeds=(0,)).set_index("metric")["mean"]
    assert worse["disc_score"] > m["disc_score"] and worse["w1_mean"] > m["w1_mean"]
    with pytest.raises(ConfigError):
        evaluate_macro(HistoryGenerator(history), history, n_samples=5)


@pytest.fixture(scope="module")
def eval_table(history, recession):
    from creditsim.macro.vae import MacroVAE

    torch.set_num_threads(min(2, torch.get_num_threads()))
    gens = {"vae": MacroVAE.from_pretrained(), "var1": VARGenerator(1).fit(history, recession),
            "boot": BlockBootstrapGenerator().fit(history, recession)}
    return compare_generators(gens, history, n_samples=1000, seeds=(0, 1, 2))


def test_vae_tails_are_closer_to_history_than_var1(eval_table):
    t = eval_table
    for stat in ("peak_unemployment_rise_pp_q95", "peak_hy_spread_bp_q95"):
        assert abs(t.loc[stat, "vae"] - t.loc[stat, "history"]) < abs(t.loc[stat, "var1"] - t.loc[stat, "history"]), stat


def test_vae_acf_error_within_1_5x_of_var1(eval_table):
    t = eval_table
    assert t.loc["acf_err", "vae"] <= 1.5 * t.loc["acf_err", "var1"]
    # lead-lag cross-correlations of the key pairs: at least as good as the VAR's
    assert t.loc["lead_lag_err", "vae"] <= 1.5 * t.loc["lead_lag_err", "var1"]


def test_vae_correlation_error_within_1_5x_of_var1(eval_table):
    t = eval_table
    assert t.loc["corr_err", "vae"] <= 1.5 * t.loc["corr_err", "var1"]


def test_vae_correlation_error_beats_the_split_half_noise_floor(eval_table):
    t = eval_table
    assert t.loc["corr_err", "vae"] < t.loc["corr_err", "history"]


def test_cli_eval_macro_prints_table_and_writes_fan_charts(tmp_path, capsys):
    from creditsim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "macro", "--n-samples", "60", "--seeds", "1", "--plot", str(tmp_path / "fans"),
              "--csv", str(tmp_path / "table.csv")])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "MacroVAE" in out and "VAR(1)" in out and "scenario ordering" in out
    assert "Scenarios from" in out and "P(worse), min" in out and "Fed sa" in out
    pngs = sorted(p.name for p in (tmp_path / "fans").glob("*.png"))
    assert pngs == [f"fan_{s}.png" for s in sorted(["baseline", "adverse", "severely_adverse", "stagflation"])]
    assert (tmp_path / "fans" / "fan_baseline.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "table.csv", index_col=0)
    assert {"MacroVAE", "VAR(1)", "block bootstrap", "history"} <= set(table.columns)
    assert table.loc["peak_unemployment_rise_pp_q95", "history"] == pytest.approx(5.6, abs=0.05)


def _same_type_windows(history, recession, months=36, exclude=None):
    from creditsim.macro.train import COVID_MONTHS, label_windows, make_windows, overlaps_months

    windows, starts = make_windows(history, months + 3)
    labels = label_windows(windows, starts, recession, history)
    keep = ~overlaps_months(starts, months + 3, COVID_MONTHS if exclude == "covid" else None)
    return windows[keep], labels[keep]


def test_scenario_diversity_of_history_itself_is_one_and_conditioning_only_narrows_history(history, recession):
    """History's own windows of a type, given as that type's paths, keep all of its spread (ratio 1 per
    variable and in total), and the start-conditional reading divides by a residual sd that cannot exceed
    the unconditional one (least squares with an intercept), so its ratios are >= 1."""
    from creditsim.macro.evaluate import scenario_diversity

    windows, labels = _same_type_windows(history, recession, exclude="covid")
    paths = {"baseline": windows[labels == 0], "severely_adverse": windows[labels == 2]}
    table = scenario_diversity(paths, history, recession)
    ratios = ["total", "total_capped", *MACRO_VARS]
    np.testing.assert_allclose(table.loc["unconditional", ratios].to_numpy(float), 1.0, rtol=1e-12)
    # a residual sd on n - 2 degrees of freedom can exceed the plain sd only by sqrt((n - 1) / (n - 2))
    n = table.loc[("unconditional", "severely_adverse"), "windows"]
    assert (table.loc["start_conditional", ratios].to_numpy(float) >= np.sqrt((n - 2) / (n - 1)) - 1e-12).all()
    assert table.loc[("unconditional", "severely_adverse"), "episodes"] >= 1
    # a path set twice as wide in one variable reads 2 there, and the total moves by the stated weights
    wide = windows[labels == 0].copy()
    j = MACRO_VARS.index("house_price_growth")
    wide[:, :, j] = wide[:, :1, j] + 2.0 * (wide[:, :, j] - wide[:, :1, j])
    row = scenario_diversity({"baseline": wide}, history, recession).loc[("unconditional", "baseline")]
    assert row["house_price_growth"] == pytest.approx(2.0) and row["gdp_growth"] == pytest.approx(1.0)
    all_w, _ = _same_type_windows(history, recession, exclude="covid")
    change = all_w[:, 36] - all_w[:, 0]
    mine = (windows[labels == 0, 36] - windows[labels == 0, 0]).var(0) / change.var(0)
    expected = np.sqrt((mine.sum() + 3 * mine[j]) / mine.sum())
    assert row["total"] == pytest.approx(expected)
    assert row["total_capped"] == pytest.approx(1.0)  # wider than history counts as history's spread
    narrow = windows[labels == 0].copy()
    narrow[:, :, j] = narrow[:, :1, j] + 0.5 * (narrow[:, :, j] - narrow[:, :1, j])
    row = scenario_diversity({"baseline": narrow}, history, recession).loc[("unconditional", "baseline")]
    assert row["total_capped"] == pytest.approx(np.sqrt((mine.sum() - 0.75 * mine[j]) / mine.sum()))


def test_scenario_diversity_follows_the_covid_exclusion_and_refuses_bad_input(history, recession):
    from creditsim.macro.evaluate import scenario_diversity

    windows, labels = _same_type_windows(history, recession)  # every window, COVID ones included
    paths = {"severely_adverse": windows[labels == 2]}
    cols = ["total", *MACRO_VARS]
    np.testing.assert_allclose(scenario_diversity(paths, history, recession, exclude=None).loc["unconditional", cols], 1.0)
    assert not np.allclose(scenario_diversity(paths, history, recession).loc["unconditional", cols], 1.0)
    with pytest.raises(ConfigError, match="paths\\['baseline'\\]"):
        scenario_diversity({"baseline": np.zeros((5, 30, 9))}, history, recession)
    with pytest.raises(ConfigError, match="unknown scenario 'boom'"):
        scenario_diversity({"boom": np.zeros((5, 40, 9))}, history, recession)


def _ramp_paths(n: int, u_end: float, hy_end: float, gdp: float, seed: int) -> np.ndarray:
    """(n, 40, 9) paths from one start: unemployment and HY rise linearly to their ends (+ noise), GDP
    growth and house-price growth held at ``gdp``; the other variables flat."""
    rng = np.random.default_rng(seed)
    T = 40
    v = np.tile(np.array([0.02, 0.04, 0.03, 0.04, 0.04, 0.01, 0.03, 0.02, 0.015]), (n, T, 1))
    ramp = np.linspace(0.0, 1.0, T)[None, :]
    j = {name: i for i, name in enumerate(MACRO_VARS)}
    v[:, :, j["unemployment_rate"]] = 0.04 + (u_end - 0.04) * ramp + rng.normal(0, 0.002, (n, 1))
    v[:, :, j["credit_spread_hy"]] = 0.03 + (hy_end - 0.03) * ramp
    v[:, :, j["gdp_growth"]] = gdp
    v[:, :, j["house_price_growth"]] = gdp
    v[:, 1:] += rng.normal(0, 1e-3, (n, T - 1, 9))  # every variable moves a little: no zero dispersion
    return v


def test_scenario_check_reads_sizes_separation_and_diversity_of_hand_made_paths(history, recession):
    from creditsim.macro.scenario_check import ROWS, scenario_check

    paths = {"baseline": _ramp_paths(200, 0.045, 0.035, 0.02, 0), "severely_adverse": _ramp_paths(200, 0.10, 0.09, -0.03, 1)}
    table = scenario_check(paths, history, recession)
    assert list(table.index) == list(ROWS) and list(table.columns) == ["baseline", "severely_adverse"]
    sa = table["severely_adverse"]
    assert sa["u_rise"] == pytest.approx(0.06, abs=0.001) and sa["hy_widen_bp"] == pytest.approx(600, abs=15)
    assert sa["hpi_fall"] < -0.05 and table.loc["hpi_fall", "baseline"] == pytest.approx(0.0, abs=0.01)
    assert sa["P_named_min"] == 1.0 and sa["P_named_stat"] in ("u_peak", "gdp_fall", "hpi_fall", "hy_widen_bp")
    assert pd.isna(table.loc["P_min", "baseline"])
    assert 0 < sa["disp_min"] <= sa["disp_cond_min"] and isinstance(sa["disp_min_var"], str)
    # a stress that is not worse than the baseline is measured as such
    flipped = scenario_check({"baseline": paths["severely_adverse"], "adverse": paths["baseline"]}, history, recession)
    assert flipped.loc["P_min", "adverse"] == 0.0
    with pytest.raises(ConfigError, match="'baseline' entry is needed"):
        scenario_check({"adverse": paths["baseline"]}, history, recession)
    with pytest.raises(ConfigError, match="T >= 25"):
        scenario_check({"baseline": paths["baseline"][:, :20]}, history, recession)
    with pytest.raises(ConfigError, match="S >= 2 paths per scenario"):
        scenario_check({"baseline": paths["baseline"][:1]}, history, recession)
    with pytest.raises(ConfigError, match="percent"):
        scenario_check({"baseline": 100 * paths["baseline"]}, history, recession)
