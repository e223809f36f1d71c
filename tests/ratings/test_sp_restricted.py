"""Issue 18: the S&P tables the wheel may not carry (the QRM counts, GPL; the 1981-2024 cumulative table,
no licence) are restricted data, and everything the simulation needs from them ships as fitted parameters.

"Without the data" is a pip user's machine: the search finds nothing (an empty cache, no checkout)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim.datasets.restricted as restricted
from creditsim.datasets import ratings as sp_ratings
from creditsim.datasets.restricted import ENV_DATA_DIR, RESTRICTED_FILES, SP_COUNTS_KEY, SP_CUMULATIVE_KEY
from creditsim.errors import ConfigError, RestrictedDataMissing
from creditsim.examples import example_path
from creditsim.ratings import lifetime, term_structure
from creditsim.ratings.lifetime import ZMacroLink
from creditsim.ratings.zfactor import ZFactorModel


def _clear() -> None:
    for fn in (sp_ratings._load_counts, sp_ratings._load_cumulative, lifetime._bundled_z_fit,
               term_structure._bundled_fit):
        fn.cache_clear()


@pytest.fixture
def without_sp_data(tmp_path, monkeypatch):
    """Nothing restricted on this machine: no env dir, an empty cache, no checkout beside the package."""
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.setattr(restricted, "search_dirs", lambda: [("cache", tmp_path / "empty-cache")])
    _clear()
    yield
    _clear()


def test_the_two_tables_are_restricted_and_found_in_the_checkout():
    for key in (SP_COUNTS_KEY, SP_CUMULATIVE_KEY):
        spec = RESTRICTED_FILES[key]
        assert not spec.downloadable and "S&P" in spec.publisher
        path = restricted.restricted_path(key)
        assert path.name == spec.relpath.split("/")[-1]
        assert "creditsim/datasets" not in path.as_posix()  # never from inside the package
    shipped = {p.name for p in sp_ratings._DIR.iterdir()}
    assert shipped == {"PROVENANCE.md", "sp_global_avg_1y_transition_1981_2016_nr_adjusted.csv",
                       "sp_global_avg_1y_transition_1981_2016_pct.csv"}


def test_ccc_share_constants_are_the_counts_pooled():
    sp = sp_ratings.load_sp_ratings()
    assert int(sp.obligors["CCC"].sum()) == sp_ratings.CCC_OBLIGORS_1981_2000
    assert int(sp.obligors["B"].sum()) == sp_ratings.B_OBLIGORS_1981_2000
    pooled = sp.obligors["CCC"].sum() / (sp.obligors["CCC"].sum() + sp.obligors["B"].sum())
    assert sp.ccc_share_of_b == float(pooled)


def test_shipped_fits_equal_a_fresh_fit_on_the_restricted_tables():
    """The JSON files are what the code would fit on the restricted tables today (regenerate them with
    `python -m creditsim.ratings.term_structure` / `python -m creditsim.ratings.lifetime` otherwise)."""
    shipped = term_structure.bundled_term_structure()
    fresh = term_structure.fit_bundled_term_structure()
    # optimiser tolerance, not bit equality: the fit's last digits move with the numpy / scipy release
    # (numpy 2.4.6 / scipy 1.17.1 moved a speed by 5e-7 relative); a stale file differs by far more
    np.testing.assert_allclose(shipped.weights_, fresh.weights_, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(shipped.speeds_, fresh.speeds_, rtol=1e-5, atol=1e-8)
    sp = sp_ratings.load_sp_ratings()
    rho = ZFactorModel().fit(defaults=sp.defaults, obligors=sp.obligors, method="map").rho_
    link = ZMacroLink.from_bundled(refit=True)
    assert link.z_result_ is not None and link.rho == pytest.approx(rho, rel=1e-6)
    import json

    params = json.loads(lifetime.BUNDLED_LINK_FILE.read_text(encoding="utf-8"))
    assert params["rho"] == pytest.approx(rho, rel=1e-6)


def test_without_the_tables_the_matrices_and_models_load_and_the_counts_say_where_to_put_them(without_sp_data, caplog):
    sp = sp_ratings.load_sp_ratings()
    assert sp.matrix_8x8.shape == (8, 8) and sp.matrix_7x7.shape == (7, 7)
    for read in (lambda: sp.obligors, lambda: sp.defaults, sp_ratings.load_sp_default_panel,
                 sp_ratings.load_sp_cumulative_default_rates):
        with pytest.raises(RestrictedDataMissing) as err:
            read()
        msg = str(err.value)
        assert "\n" not in msg and ENV_DATA_DIR in msg and "ratings/" in msg and "S&P" in msg, msg
        assert "creditsim data fetch" not in msg, msg  # there is nothing to fetch it from
    with caplog.at_level("INFO", logger="creditsim.ratings.lifetime"):
        link = ZMacroLink.from_bundled()
    assert link.z_result_ is None and 0.0 < link.rho < 1.0
    assert any("stored fit z_macro_link.json" in r.getMessage() for r in caplog.records)
    assert term_structure.bundled_term_structure().weights_.shape == (7, 2)
    for fit_afresh in (lambda: ZMacroLink.from_bundled(["gdp_growth"]), lambda: ZMacroLink.from_bundled(refit=True)):
        with pytest.raises(RestrictedDataMissing, match="SP-COUNTS"):
            fit_afresh()  # another link, or a refit, needs the data


def _rated_run() -> float:
    import creditsim as cs

    loans = pd.read_parquet(example_path("loans_bsl.parquet")).head(40)
    deal = cs.load_deal(example_path("bsl_clo.yaml"))
    r = cs.simulate(loans, deal, n_simulations=16, macro="synthetic", horizon=12, seed=3, progress=False)
    return float(r.expected_loss)


def test_a_rated_tape_simulates_the_same_bits_without_the_tables(tmp_path, monkeypatch):
    with_data = _rated_run()
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.setattr(restricted, "search_dirs", lambda: [("cache", tmp_path / "empty")])
    _clear()
    try:
        without = _rated_run()
    finally:
        _clear()
    assert without == with_data and with_data > 0.0


def test_fetch_reports_the_tables_present_or_says_how_to_make_them(run_cli, one_line_error, tmp_path, monkeypatch):
    from creditsim.datasets.fetch import fetch_restricted

    (found,) = fetch_restricted(["sp-cumulative"], tmp_path)  # the checkout's copy
    assert found.status == "present" and found.path == restricted.restricted_path(SP_CUMULATIVE_KEY)
    assert (found.first, found.last) == ("year 1", "15")
    counts = restricted.restricted_path(SP_COUNTS_KEY)
    short = tmp_path / "short" / "ratings" / counts.name
    short.parent.mkdir(parents=True)
    short.write_text("".join(counts.read_text().splitlines(keepends=True)[:6]))
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "short"))
    from creditsim.errors import DataError

    with pytest.raises(DataError, match=r"years 1981 \.\. 1985"):  # a copy of another period is not "present"
        fetch_restricted(["SP-COUNTS"], tmp_path)
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.setattr(restricted, "search_dirs", lambda: [("cache", tmp_path / "empty")])
    with pytest.raises(ConfigError, match="SP-CUMULATIVE .*no public download address.*ratings/.*Table 24"):
        fetch_restricted(["sp-cumulative"], tmp_path)
    assert run_cli(["data", "fetch", "--dir", str(tmp_path), "--series", "SP-COUNTS"]) == 2
    err = one_line_error()
    assert "no public download address" in err and "spdata.raw" in err


def test_runs_record_the_macro_series_not_the_tables_they_never_read():
    from creditsim.datasets.restricted import data_provenance

    assert not {SP_COUNTS_KEY, SP_CUMULATIVE_KEY} & set(data_provenance())
    named = data_provenance([SP_CUMULATIVE_KEY])
    assert set(named) == {SP_CUMULATIVE_KEY} and len(named[SP_CUMULATIVE_KEY]["sha256"]) == 64


def test_another_copy_of_the_counts_never_reaches_a_simulation_and_a_short_one_is_refused(tmp_path, monkeypatch):
    """A run reads the stored fit whatever counts file the machine holds (issue 18 review: a truncated copy
    in CREDITSIM_DATA_DIR had silently moved rho and the run's EL); the loaders refuse a copy that is not
    the 1981-2000 table, naming the file."""
    before = _rated_run()
    counts = restricted.restricted_path(SP_COUNTS_KEY)
    short = tmp_path / "ratings" / counts.name
    short.parent.mkdir()
    short.write_text("".join(counts.read_text().splitlines(keepends=True)[:6]))  # header + 1981-85
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path))
    _clear()
    try:
        assert _rated_run() == before
        import json

        assert ZMacroLink.from_bundled().rho == json.loads(lifetime.BUNDLED_LINK_FILE.read_text())["rho"]
        from creditsim.errors import DataError

        with pytest.raises(DataError, match=r"years 1981 \.\. 1985.*1981 \.\. 2000"):
            sp_ratings.load_sp_ratings().obligors
    finally:
        _clear()
