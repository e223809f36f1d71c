"""Out-of-time evaluation (creditsim.macro.oot) and `creditsim eval macro --oot`: a fast run (2 origins,
1 training epoch, 50 paths) has the expected tables, finite values, is bit-identical for one seed, and
the per-origin model cache gives the same numbers; bad options are one-line errors with exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import ConfigError
from creditsim.macro.oot import (
    ENERGY_VARS,
    GENERATORS,
    HORIZONS,
    default_origins,
    evaluate_oot,
)
from creditsim.states import MACRO_VARS

FAST = {"origins": 2, "epochs": 1, "n_samples": 50, "seed": 0}


@pytest.fixture(scope="module")
def fast_run():
    return evaluate_oot(**FAST)


def test_default_origins_are_15_decembers_ending_before_the_last_realised_month():
    origins = default_origins()
    assert [f"{o:%Y-%m}" for o in (origins[0], origins[-1])] == ["2010-12", "2024-12"]
    assert len(origins) == 15 and all(o.month == 12 for o in origins)


def test_fast_run_tables_have_the_expected_shape_and_finite_values(fast_run):
    res = fast_run
    assert res.settings["origins"] == ["2010-12", "2011-12"]
    crps = res.crps_table()
    assert list(crps.columns) == [*GENERATORS, "n"]
    assert crps.shape[0] == len(HORIZONS) * (len(MACRO_VARS) + 1)  # 2011-12 + 36 = 2014-12: all realised
    assert np.isfinite(crps.to_numpy(float)).all() and (crps[list(GENERATORS)] > 0).all().all()
    es = res.energy_table()
    assert list(es.index) == list(HORIZONS) and (es["n"] == 2).all()
    assert np.isfinite(es[[*GENERATORS, "diff", "ci_low", "ci_high"]].to_numpy(float)).all()
    assert (es["ci_low"] <= es["diff"]).all() and (es["diff"] <= es["ci_high"]).all()
    cov = res.coverage_table()
    assert cov.shape == (len(HORIZONS), 2 * len(GENERATORS) + 1)
    vals = cov.drop(columns="n").to_numpy(float)
    assert ((vals >= 0) & (vals <= 1)).all()
    assert list(res.verdict().index) == [12, 24, 36]
    assert set(res.long_frame()["score"]) == {"realised", "crps", "crps_std", "cover90", "cover99", "energy"}


def test_scores_are_consistent(fast_run):
    s = fast_run.scores
    assert set(s["generator"]) == set(GENERATORS)
    assert (s["cover99"] >= s["cover90"]).all()  # the 99 % interval contains the 90 % one
    # default_rate is realised to 2019-12 only; the energy score uses the other eight
    assert "default_rate" not in ENERGY_VARS and len(ENERGY_VARS) == 8
    realised = s[(s.generator == "MacroVAE") & (s.horizon == 12) & (s.origin == "2010-12")]
    from creditsim.datasets import load_macro_history

    truth = load_macro_history(ragged="keep").loc["2011-12"].iloc[0]
    np.testing.assert_allclose(realised.set_index("variable")["realised"], truth[list(realised["variable"])])


def test_same_seed_is_bit_identical_and_the_model_cache_reproduces_it(fast_run, tmp_path):
    again = evaluate_oot(**FAST, models_dir=tmp_path / "models")
    pd.testing.assert_frame_equal(fast_run.scores, again.scores, check_exact=True)
    pd.testing.assert_frame_equal(fast_run.energy, again.energy, check_exact=True)
    folders = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert [f[:17] for f in folders] == ["macro_vae_2010-12", "macro_vae_2011-12"]
    cached = evaluate_oot(**FAST, models_dir=tmp_path / "models")  # loads, does not retrain
    pd.testing.assert_frame_equal(fast_run.scores, cached.scores, check_exact=True)
    other = evaluate_oot(origins=["2010-12"], epochs=1, n_samples=50, seed=1)
    first = fast_run.scores[fast_run.scores.origin == "2010-12"].reset_index(drop=True)
    assert not np.allclose(other.scores["crps"], first["crps"])
    # dispersion: the cached model is calibrated on its own window before forecasting, and says so
    wide = evaluate_oot(**{**FAST, "origins": ["2010-12"]}, models_dir=tmp_path / "models", dispersion=True)
    factors = np.array(wide.settings["vae_dispersion"]["2010-12"])
    assert (factors >= 1).all() and fast_run.settings["vae_dispersion"]["2010-12"] == [1.0] * 9
    assert not np.allclose(wide.scores["crps"], first["crps"]) or (factors == 1).all()
    # a local endpoint changes the VAE's forecasts and nothing else
    local = evaluate_oot(**{**FAST, "origins": ["2010-12"]}, models_dir=tmp_path / "models", endpoint_months=60)
    vae_rows = local.scores.generator == "MacroVAE"
    assert not np.allclose(local.scores.loc[vae_rows, "crps"], first.loc[first.generator == "MacroVAE", "crps"])
    np.testing.assert_array_equal(local.scores.loc[~vae_rows, "crps"], first.loc[first.generator != "MacroVAE", "crps"])
    # the default is the forecast source's pull drawn per path; the trained backbone scores otherwise, and the
    # settings say which VAE was scored
    assert fast_run.settings["vae_variant"] == {"dispersion": False, "endpoint_months": None, "pull": "uniform"}
    drawn = evaluate_oot(**{**FAST, "origins": ["2010-12"]}, models_dir=tmp_path / "models", pull=None)
    assert drawn.settings["vae_variant"] == {"dispersion": False, "endpoint_months": None, "pull": None}
    assert not np.allclose(drawn.scores.loc[vae_rows, "crps"], first.loc[first.generator == "MacroVAE", "crps"])
    np.testing.assert_array_equal(drawn.scores.loc[~vae_rows, "crps"], first.loc[first.generator != "MacroVAE", "crps"])


@pytest.mark.parametrize("kwargs, match", [
    ({"origins": 0}, "origins must be a positive"),
    ({"origins": 16}, "at most 15 annual origins"),
    ({"origins": 2, "horizons": (6, 400)}, "400 months is beyond the data"),
    ({"origins": 2, "horizons": (0,)}, "positive whole months"),
    ({"origins": 2, "n_samples": 1}, "n_samples"),
    ({"origins": 2, "epochs": 0}, "epochs must be"),
    ({"origins": 2, "endpoint_months": 3}, "endpoint_months must be an integer >= 12"),
    ({"origins": 2, "pull": 2.0}, "pull must be a number in"),
    ({"origins": 2, "pull": "normal"}, "pull must be a number in"),
])
def test_bad_arguments_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        evaluate_oot(**kwargs)


def _cli(argv: list[str]) -> int:
    from creditsim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code)


def test_cli_eval_macro_oot_prints_the_tables(tmp_path, capsys):
    code = _cli(["eval", "macro", "--oot", "--origins", "2", "--epochs", "1", "--n-samples", "50",
                 "--csv", str(tmp_path / "oot.csv")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Out-of-time CRPS" in out and "Energy score" in out and "coverage" in out
    assert "mean (sd units)" in out and "h=36: VAE energy score" in out
    # into a pipe: one line per origin instead of a live bar, and the tables uncut (no '…')
    assert "origin 2011-12 scored (2 of 2)" in out and "…" not in out
    frame = pd.read_csv(tmp_path / "oot.csv")
    assert set(frame["generator"]) == set(GENERATORS) and np.isfinite(frame["value"]).all()


@pytest.mark.parametrize("argv, match", [
    (["--origins", "0"], "--origins must be >= 1"),
    (["--origins", "2", "--horizons", "6,400"], "400 months is beyond the data"),
    (["--origins", "2", "--horizons", "six"], "--horizons must be whole months"),
    (["--origins", "2", "--plot", "x"], "not used with --oot"),
    (["--origins", "2", "--pull", "fast"], "--pull must be a number in [0, 1], 'uniform' or 'trained'"),
    (["--origins", "2", "--pull", "2"], "--pull must be a number in [0, 1], 'uniform' or 'trained'"),
    (["--origins", "2", "--pull", "1.5"], "--pull must be a number in [0, 1]"),
])
def test_cli_bad_oot_options_are_one_line_errors(argv, match, capsys):
    assert _cli(["eval", "macro", "--oot", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert match in err


def test_cli_oot_only_options_without_oot_are_one_line_errors(capsys):
    assert _cli(["eval", "macro", "--pull", "uniform"]) == 2
    err = capsys.readouterr().err.strip()
    assert "apply to --oot only" in err and len(err.splitlines()) == 1, err


def test_origin_forecasts_keep_the_vae_in_the_band_known_at_the_origin():
    """The evaluation scores the VAE as macro="forecast" ships it: months 1.. in the plausible band, here
    a deliberately narrow one (the 2017-19 range) so that the band must bind; month 0 stays the origin's
    state, and the baselines are scored as drawn."""
    import creditsim as cs
    from creditsim.datasets import macro_state
    from creditsim.macro.baselines import BlockBootstrapGenerator, VARGenerator
    from creditsim.macro.oot import origin_forecasts
    from creditsim.macro.plausibility import plausible_band
    from creditsim.macro.vae import MacroVAE

    history = cs.load_macro_history(end="2019-12")
    band = plausible_band(history.loc["2017-01":], margin=0.1)
    vae, var, boot = MacroVAE.from_pretrained(), VARGenerator(1).fit(history), BlockBootstrapGenerator(12.0).fit(history)
    state, origin = macro_state("2019-12"), pd.Timestamp("2019-12-01")
    free, _ = origin_forecasts(vae, var, boot, state, 13, 64, 0, origin)
    kept, _ = origin_forecasts(vae, var, boot, state, 13, 64, 0, origin, band=band)
    assert (free["MacroVAE"][:, 1:] > band.hi).any()  # the band binds
    assert (kept["MacroVAE"][:, 1:] <= band.hi).all()
    lo = np.isfinite(band.lo)
    assert (kept["MacroVAE"][:, 1:, lo] >= band.lo[lo]).all()
    np.testing.assert_array_equal(kept["MacroVAE"][:, 0], free["MacroVAE"][:, 0])
    np.testing.assert_array_equal(kept["VAR(1)"], free["VAR(1)"])
