"""COVID months (2020-03 .. 2020-12) are left out of estimation by the VAE's windows and both baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import ConfigError, DataError
from creditsim.macro.baselines import BlockBootstrapGenerator, VARGenerator
from creditsim.macro.train import COVID_MONTHS, in_months, load_training_history, make_windows, overlaps_months


@pytest.fixture(scope="module")
def full():
    return load_training_history()


def test_covid_span_and_window_overlap(full):
    history, _ = full
    assert COVID_MONTHS == ("2020-03", "2020-12")
    assert history.index[-1] == pd.Timestamp("2025-09-01")
    months = in_months(history.index, COVID_MONTHS)
    assert months.sum() == 10 and history.index[months][0] == pd.Timestamp("2020-03-01")
    _, starts = make_windows(history, 60)
    hit = overlaps_months(starts, 60, COVID_MONTHS)
    # windows from 2015-04 (ends 2020-03) to the last one (2020-10 .. 2025-09) overlap; none fits after
    assert hit.sum() == 67 and starts[hit][0] == pd.Timestamp("2015-04-01") and hit[-1]
    assert starts[~hit][-1] == pd.Timestamp("2015-03-01")
    assert not overlaps_months(starts, 60, None).any() and not in_months(history.index, None).any()
    with pytest.raises(ConfigError, match="after last month"):
        in_months(history.index, ("2020-12", "2020-03"))


def test_var_without_covid_rows_equals_statsmodels_on_the_same_rows(full):
    """The exclusion path's OLS is statsmodels' VAR on a history without the gap: checked on a
    pre-2020 history by excluding its first months (rows with a lag in them drop out)."""
    from statsmodels.tsa.api import VAR

    history, recession = full
    pre = history.loc[:"2019-12"]
    ref = VAR(pre.loc["1981-01":].to_numpy()).fit(1)
    ours = VARGenerator(1).fit(pre, recession, exclude=("1980-01", "1980-12"))
    assert ours.results_ is None
    np.testing.assert_allclose(ours.intercept_, ref.intercept, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.coefs_, ref.coefs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.sigma_u_, ref.sigma_u, rtol=1e-9, atol=1e-15)
    # no excluded month inside the history: the statsmodels path, unchanged
    plain = VARGenerator(1).fit(pre, recession)
    assert plain.results_ is not None
    np.testing.assert_array_equal(plain.sigma_u_, VARGenerator(1).fit(pre, recession, exclude=None).sigma_u_)


def test_var_fitted_through_2025_ignores_covid(full):
    history, recession = full
    u = history.columns.get_loc("unemployment_rate")
    kept = VARGenerator(1).fit(history, recession)
    both = VARGenerator(1).fit(history, recession, exclude=None)
    pre = VARGenerator(1).fit(history.loc[:"2020-02"], recession)
    sd = lambda g: float(np.sqrt(g.sigma_u_[u, u]))  # noqa: E731
    # with 2020-04 the unemployment innovation sd triples; without it, it stays at its pre-2020 size
    assert sd(both) > 3.0 * sd(pre)
    assert sd(kept) == pytest.approx(sd(pre), rel=0.1)
    # the 2021-25 rows are used: the fit differs from the pre-2020 one
    assert not np.allclose(kept.coefs_, pre.coefs_)
    # lag selection on the same rows works with the exclusion
    assert VARGenerator("bic", max_lags=3).fit(history, recession).lags_ in (1, 2, 3)
    paths = kept.generate("severely_adverse", seq_length=24, n_samples=50, seed=1).numpy()
    assert np.isfinite(paths).all()


def test_bootstrap_pool_and_starts_skip_covid(full):
    history, recession = full
    gen = BlockBootstrapGenerator(12.0).fit(history, recession)
    months = history.index
    change_end = months[1:][gen.change_pool_]
    change_start = months[:-1][gen.change_pool_]
    for m in (change_start, change_end):
        assert not ((m >= pd.Timestamp("2020-03-01")) & (m <= pd.Timestamp("2020-12-01"))).any()
    assert len(gen.change_pool_) == len(months) - 1 - 11  # 2020-02->03 .. 2020-12->2021-01
    assert months[gen.window_starts_].max() == pd.Timestamp("2015-03-01")
    paths = gen.generate(None, seq_length=36, n_samples=2000, seed=3).numpy()
    u = history.columns.get_loc("unemployment_rate")
    # no 10 pp one-month jump can be drawn any more
    assert np.abs(np.diff(paths[:, :, u], axis=1)).max() < 0.05
    assert np.abs(np.diff(BlockBootstrapGenerator(12.0).fit(history, recession, exclude=None)
                          .generate(None, seq_length=36, n_samples=2000, seed=3).numpy()[:, :, u], axis=1)).max() > 0.05


def test_vae_training_drops_overlapping_windows_and_records_them(full):
    """A short run (2 epochs): the windows, split and scalers of the kept windows; the metadata says so."""
    from creditsim.macro.train import train_macro_vae
    from creditsim.macro.vae import MacroVAEConfig
    from creditsim.nn.trainer import TrainConfig

    history, recession = full
    cfg = MacroVAEConfig(seq_length=60, latent_dim=2, hidden_dim=8)
    tc = TrainConfig(epochs=2, batch_size=64, min_epochs=0, kl_warmup=0, seed=0, device="cpu", progress=False)
    res = train_macro_vae(history, cfg, tc, recession=recession)
    meta = res.metadata()
    assert meta["history_end"] == "2025-09-01" and meta["last_window_end"] == "2020-02-01"
    assert meta["excluded_months"] == ["2020-03", "2020-12"] and meta["excluded_windows"] == 67
    assert meta["windows"] == 490 - 67 and res.starts[-1] == pd.Timestamp("2015-03-01")
    # the model never saw 14.8 % unemployment: its range is that of 1980-01 .. 2020-02
    u = history.columns.get_loc("unemployment_rate")
    assert float(res.model.x_max[u]) == pytest.approx(history["unemployment_rate"].loc[:"2020-02"].max())
    # the validation block lies inside the kept span (the last 20 % of 1980-01 .. 2020-02)
    assert res.starts[res.val_index][0] >= pd.Timestamp("2012-01-01") and len(res.val_index) > 0
    with pytest.raises(DataError, match="overlaps the excluded months"):
        train_macro_vae(history.loc["2016-01":], cfg, tc, recession=recession)


def test_dispersion_calibration_skips_origins_whose_forecast_touches_covid(full):
    from creditsim.macro.dispersion import calibration_origins

    history, _ = full
    months = history.index
    rows = calibration_origins(months)
    every = calibration_origins(months, exclude=None)
    assert np.array_equal(every, np.arange(24, len(months) - 12, 12))
    # origins are Januaries; only 2020-01's 12-month forecast (2020-01 .. 2021-01) reaches into COVID
    dropped = months[np.setdiff1d(every, rows)]
    assert list(dropped.strftime("%Y-%m")) == ["2020-01"]
    assert not overlaps_months(months[rows], 13, COVID_MONTHS).any()
    # a history that ends before COVID keeps every origin (the 2019-12 calibration is unchanged)
    pre = months[months <= pd.Timestamp("2019-12-01")]
    assert np.array_equal(calibration_origins(pre), np.arange(24, len(pre) - 12, 12))


def test_vae_training_on_logs_refuses_a_non_positive_month_by_name(full):
    from creditsim.macro.train import train_macro_vae
    from creditsim.macro.vae import MacroVAEConfig
    from creditsim.nn.trainer import TrainConfig

    history, recession = full
    bad = history.copy()
    bad.loc["1994-03-01", "credit_spread_ig"] = 0.0
    cfg = MacroVAEConfig(seq_length=60, latent_dim=2, hidden_dim=8, log_variables=("credit_spread_ig",))
    tc = TrainConfig(epochs=1, batch_size=64, min_epochs=0, kl_warmup=0, seed=0, device="cpu", progress=False)
    with pytest.raises(DataError, match=r"'credit_spread_ig' must be > 0.*1 months.*1994-03: 0\.0"):
        train_macro_vae(bad, cfg, tc, recession=recession)
