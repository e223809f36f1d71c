"""Restricted series (issue 18): not shipped, found at the user's site, fetched without the network here.

Order of the search: ``$CREDITSIM_DATA_DIR``, then the user cache, then ``shared/data/macro`` beside a
checkout. Nothing found: one line naming the series, its publisher and licence, and the fix. ``creditsim
data fetch`` writes atomically and refuses a file its reader cannot use; the suite never opens a socket
(``download`` is replaced, and ``urlopen`` is made to fail loudly in case anything slips through).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import creditsim.datasets.fetch as fetch_mod
import creditsim.datasets.restricted as restricted
from creditsim.datasets import files, fred, macro
from creditsim.datasets.fetch import fetch_restricted
from creditsim.datasets.restricted import ENV_DATA_DIR, RESTRICTED_FILES, restricted_path
from creditsim.errors import ConfigError, DataError

#: a FRED CSV as the endpoint writes it today (``observation_date`` header, empty field = missing)
FRED_CSV = b"observation_date,BAMLH0A0HYM2\n1996-12-31,3.13\n1997-01-01,\n1997-01-02,3.06\n2025-12-30,2.84\n"


def _fred_md_csv(columns: tuple[str, ...] = ("CPIAUCSL", "UNRATE", "INDPRO", "BAA", "GS10")) -> bytes:
    """A FRED-MD file: header, ``Transform:`` row, the vintage's months 1959-01 .. 2019-10, trailing empty
    line."""
    rows = ["sasdate," + ",".join(columns), "Transform:," + ",".join("5" for _ in columns)]
    for i, month in enumerate(pd.date_range("1959-01-01", "2019-10-01", freq="MS")):
        rows.append(f"{month.month}/1/{month.year}," + ",".join(f"{10 + i + j:.1f}" for j in range(len(columns))))
    return ("\n".join(rows) + "\n" + "," * len(columns) + "\n").encode()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the test suite must not use the network")

    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """Empty env dir, cache (``$XDG_CACHE_HOME/creditsim``) and sibling, wired into the search."""
    out = {name: tmp_path / name for name in ("env", "xdg", "sibling")}
    for path in out.values():
        path.mkdir()
    out["cache"] = out["xdg"] / "creditsim"
    monkeypatch.setenv(ENV_DATA_DIR, str(out["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(out["xdg"]))
    monkeypatch.setattr(restricted, "sibling_data_dir", lambda: out["sibling"])
    monkeypatch.setattr(restricted, "checkout_root", lambda: None)  # nor the S&P tables of the checkout
    return out


@pytest.fixture
def fresh_caches():
    """Loaders cache parsed files per process: clear before and after so a redirected search is used."""
    cached = (files.read_fred_series, fred._fred_md, macro.macro_history, macro._last_observed)

    def clear() -> None:
        for fn in cached:
            fn.cache_clear()

    clear()
    yield
    clear()


def _put(root: Path, key: str, payload: bytes = FRED_CSV) -> Path:
    path = root / RESTRICTED_FILES[key].relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_env_dir_beats_cache_beats_sibling(dirs):
    key = "BAMLH0A0HYM2"
    in_env, in_cache, in_sibling = (_put(dirs[d], key) for d in ("env", "cache", "sibling"))
    assert [label for label, _ in restricted.search_dirs()][:3] == [ENV_DATA_DIR, "cache", "shared"]
    assert restricted_path(key) == in_env
    in_env.unlink()
    assert restricted_path(key) == in_cache
    in_cache.unlink()
    assert restricted_path(key) == in_sibling


def test_cache_defaults_to_home_dot_cache_and_a_gzip_copy_is_found(dirs, monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert restricted.user_cache_dir() == tmp_path / "home" / ".cache" / "creditsim"
    import gzip

    target = tmp_path / "home" / ".cache" / "creditsim" / "fred_series" / "CSUSHPINSA.csv.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(gzip.compress(b"date,value\n1987-01-01,63.7\n"))
    assert restricted_path("CSUSHPINSA") == target


def test_nothing_found_is_one_line_naming_series_publisher_licence_and_fix(dirs):
    with pytest.raises(DataError) as err:
        restricted_path("BAMLC0A0CM")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("BAMLC0A0CM", "ICE Data Indices", "reproduction restricted", "creditsim data fetch", ENV_DATA_DIR,
                 str(dirs["env"]), str(dirs["cache"])):
        assert part in msg, (part, msg)


def test_loaders_without_restricted_data_fail_in_one_line(dirs, fresh_caches, run_cli, one_line_error):
    with pytest.raises(DataError, match="FRED-MD.*Moody's.*creditsim data fetch"):
        fred.load_fred_md()
    with pytest.raises(DataError, match="not shipped with creditsim"):
        macro.load_macro_history()
    # public-domain series still come from the wheel
    assert files.read_fred_series("UNRATE").notna().sum() > 500
    assert run_cli(["data", "macro"]) == 2
    assert "creditsim data fetch" in one_line_error()


def test_sibling_shared_is_found_only_beside_a_checkout(monkeypatch):
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    sibling = restricted.sibling_data_dir()
    checkout = Path(restricted.__file__).resolve().parents[2]
    expected = checkout.parent / "shared" / "data" / "macro"
    assert sibling == (expected if expected.is_dir() else None)
    # an installed package (no pyproject.toml beside it) never looks next to site-packages
    monkeypatch.setattr(restricted, "__file__", str(Path("/nonexistent/site-packages/creditsim/datasets/x.py")))
    assert restricted.sibling_data_dir() is None


def test_fetch_writes_the_download_atomically_into_the_cache(dirs, monkeypatch, caplog):
    urls: list[str] = []
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: urls.append(url) or FRED_CSV)
    with caplog.at_level("INFO", logger="creditsim.datasets.fetch"):
        (done,) = fetch_restricted(["bamlh0a0hym2"])
    assert [r.getMessage() for r in caplog.records] == [
        f"BAMLH0A0HYM2: {len(FRED_CSV)} bytes from https://fred.stlouisfed.org/graph/fredgraph.csv?id=BAMLH0A0HYM2 "
        f"-> {done.path} (observations 1996-12-31 .. 2025-12-30)"]
    target = dirs["cache"] / "fred_series" / "BAMLH0A0HYM2.csv"
    assert urls == ["https://fred.stlouisfed.org/graph/fredgraph.csv?id=BAMLH0A0HYM2"]
    assert (done.path, done.status, done.first, done.last) == (target, "fetched", "1996-12-31", "2025-12-30")
    assert target.read_bytes() == FRED_CSV  # as published: no rewriting
    assert sorted(p.name for p in target.parent.iterdir()) == ["BAMLH0A0HYM2.csv"]  # no temp file left
    dirs["env"].rmdir()  # the cache is now what the search finds, and the reader takes the new header
    series = files.parse_fred_csv(restricted_path("BAMLH0A0HYM2"), "BAMLH0A0HYM2")
    np.testing.assert_array_equal(series.to_numpy(), [3.13, np.nan, 3.06, 2.84])
    # present: kept without a download unless forced
    assert fetch_restricted(["BAMLH0A0HYM2"])[0].status == "present" and len(urls) == 1
    assert fetch_restricted(["BAMLH0A0HYM2"], force=True)[0].status == "fetched" and len(urls) == 2


@pytest.mark.parametrize("payload, why", [
    (b"<!DOCTYPE html><html><body>Series not found</body></html>\n", "sent an HTML page"),
    (b"observation_date,BAMLH0A0HYM2\n2023-01-02,4.5\n2025-12-30,2.8\n", "starts 2023-01-02"),
    (b"observation_date,DGS10\n1996-12-31,6.4\n", "value column"),
])
def test_fetch_refuses_a_bad_download_and_keeps_the_previous_file(dirs, monkeypatch, payload, why):
    previous = _put(dirs["cache"], "BAMLH0A0HYM2", b"date,value\n1996-12-31,3.13\n")
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: payload)
    with pytest.raises(DataError, match=why) as err:
        fetch_restricted(["BAMLH0A0HYM2"], force=True)
    assert "\n" not in str(err.value)
    assert previous.read_bytes() == b"date,value\n1996-12-31,3.13\n"
    assert sorted(p.name for p in previous.parent.iterdir()) == ["BAMLH0A0HYM2.csv"]


def test_fetch_offline_is_one_line_and_writes_nothing(dirs, monkeypatch):
    def offline(url, timeout=60.0):
        raise DataError("no connection ([Errno -3] Temporary failure in name resolution)")

    monkeypatch.setattr(fetch_mod, "download", offline)
    with pytest.raises(DataError) as err:
        fetch_restricted(["CSUSHPINSA"], directory=dirs["sibling"] / "site")
    msg = str(err.value)
    assert "\n" not in msg and "cannot download CSUSHPINSA" in msg and "offline?" in msg and ENV_DATA_DIR in msg
    assert not (dirs["sibling"] / "site").exists()


def test_the_real_download_turns_a_socket_error_into_one_line(monkeypatch):
    import urllib.error

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("urllib.request.urlopen", unreachable)
    with pytest.raises(DataError, match=r"^no connection \(.*name resolution\)$"):
        fetch_mod.download("https://fred.stlouisfed.org/graph/fredgraph.csv?id=CSUSHPINSA")


def test_fetch_fred_md_checks_the_columns_the_macro_history_reads(dirs, monkeypatch):
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: _fred_md_csv())
    (done,) = fetch_restricted(["FRED-MD"], directory=dirs["env"])
    assert done.path == dirs["env"] / "fred_md_2019-10.csv"
    assert (done.first, done.last) == ("1959-01-01", "2019-10-01")
    values, tcodes = fred.parse_fred_md(restricted_path("FRED-MD"))
    assert values.shape == (730, 5) and tcodes["BAA"] == 5
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: _fred_md_csv(("CPIAUCSL", "UNRATE")))
    with pytest.raises(DataError, match=r"lacks the columns \['INDPRO', 'BAA', 'GS10'\]"):
        fetch_restricted(["FRED-MD"], directory=dirs["env"], force=True)
    assert done.path.read_bytes() == _fred_md_csv()


def test_fetch_rejects_unknown_series():
    with pytest.raises(ConfigError, match=r"series must be among .*got \['GDPC1'\]"):
        fetch_restricted(["GDPC1"])


def test_cli_data_fetch_with_a_mocked_download(dirs, monkeypatch, run_cli, one_line_error, capsys):
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: FRED_CSV)
    out = dirs["sibling"] / "mine"
    assert run_cli(["data", "fetch", "--dir", str(out), "--series", "BAMLH0A0HYM2"]) == 0
    printed = capsys.readouterr().out
    assert (out / "fred_series" / "BAMLH0A0HYM2.csv").read_bytes() == FRED_CSV
    assert "fetched" in printed and f"{ENV_DATA_DIR}=" in printed  # --dir is not searched until named
    assert run_cli(["data", "fetch", "--series", "NOPE"]) == 2
    assert "series must be among" in one_line_error()


def test_shipped_folder_holds_no_restricted_file():
    shipped = {p.name for p in files.DATA_ROOT.rglob("*") if p.is_file()}
    for spec in RESTRICTED_FILES.values():
        name = Path(spec.relpath).name
        assert not {name, name + ".gz"} & shipped, spec.key


def test_a_truncated_cached_file_is_refused_naming_it_and_fetch_replaces_it(dirs, monkeypatch):
    from creditsim.datasets.files import read_fred_series
    from creditsim.datasets.restricted import check_restricted_span

    short = dirs["env"] / "fred_series" / "BAMLH0A0HYM2.csv"
    short.parent.mkdir(parents=True, exist_ok=True)
    short.write_bytes(b"observation_date,BAMLH0A0HYM2\n1996-12-31,3.13\n1997-01-02,3.06\n")
    series = files.parse_fred_csv(short, "BAMLH0A0HYM2")
    with pytest.raises(DataError, match=r"BAMLH0A0HYM2\.csv: BAMLH0A0HYM2 has observations 1996-12 \.\. 1997-01, but "
                                        r"creditsim needs 1996-12 \.\. at least 2025-09 .*--force"):
        check_restricted_span("BAMLH0A0HYM2", short, series.dropna().index)
    read_fred_series.cache_clear()
    with pytest.raises(DataError, match="truncated or other-vintage file"):
        read_fred_series("BAMLH0A0HYM2")
    read_fred_series.cache_clear()
    # data fetch does not call the bad copy "present": it downloads over it
    monkeypatch.setattr(fetch_mod, "download", lambda url, timeout=60.0: FRED_CSV)
    (done,) = fetch_restricted(["BAMLH0A0HYM2"], directory=dirs["env"])
    assert done.status == "fetched" and short.read_bytes() == FRED_CSV



def test_without_the_restricted_series_a_simulation_still_runs_on_synthetic_paths(dirs, fresh_caches):
    """Issue 18 review: rated tapes build the Z-macro rating link, which is fitted on the HY spread
    history; without it the link's shipped coefficients are used, so `simulate --macro synthetic` works on
    a machine that has not fetched anything (the sibling folder here is empty)."""
    from creditsim.deal.config import load_deal
    from creditsim.examples import example_path
    from creditsim.ratings.lifetime import BUNDLED_LINK_FILE, ZMacroLink
    from creditsim.risk.simulate import simulate

    with pytest.raises(DataError, match="not shipped with creditsim"):
        macro.load_macro_history()
    link = ZMacroLink.from_bundled()  # from the shipped coefficients
    import json

    shipped = json.loads(BUNDLED_LINK_FILE.read_text())
    assert link.intercept_ == shipped["intercept"] and list(link.coef_) == shipped["coef"]
    tape = pd.read_parquet(example_path("loans_bsl.parquet")).head(40)
    res = simulate(tape, load_deal(example_path("bsl_clo.yaml")), macro="synthetic", n_simulations=8, horizon=12,
                   progress=False)
    assert np.isfinite(res.portfolio_losses).all()


def test_the_shipped_link_coefficients_are_the_fit_on_the_bundled_history(fresh_caches):
    import json

    from creditsim.ratings.lifetime import BUNDLED_LINK_FILE, ZMacroLink

    fresh = ZMacroLink.from_bundled(refit=True).fit_parameters()  # the history is on this machine (../shared)
    shipped = json.loads(BUNDLED_LINK_FILE.read_text())
    assert shipped["variables"] == fresh["variables"] and shipped["years"] == fresh["years"]
    # the Z_t series regressed here comes out of an MLE whose last digits move with the numpy / scipy release
    # (numpy 2.4.6 / scipy 1.17.1 moved the intercept by 5e-9 relative): optimiser tolerance, not bit equality
    for key in ("intercept", "resid_var", "r2"):
        assert shipped[key] == pytest.approx(fresh[key], rel=1e-6), key
    np.testing.assert_allclose(shipped["coef"], fresh["coef"], rtol=1e-6)


def test_runs_record_which_restricted_files_they_read(dirs):
    import hashlib

    from creditsim.datasets.restricted import data_provenance

    assert data_provenance() == {}  # nothing on this machine (the test's empty folders)
    path = _put(dirs["cache"], "BAMLH0A0HYM2")
    assert data_provenance() == {"BAMLH0A0HYM2": {"path": str(path), "sha256": hashlib.sha256(FRED_CSV).hexdigest()}}
