"""``creditsim ratings fit`` / ``creditsim ratings lifetime`` (z > 0 is a good year)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.cli import main
from creditsim.datasets.ratings import load_sp_ratings


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_ratings_fit_prints_ttc_rho_and_z_table_and_writes_png(tmp_path, capsys):
    png = tmp_path / "plots" / "z.png"
    code, out, _ = run(["ratings", "fit", "--plot", str(png)], capsys)
    assert code == 0
    assert "TTC one-year matrix" in out and "rho" in out and "1991" in out and "z > 0 = good year" in out
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_ratings_plot_gets_the_umask_file_mode_not_0600(tmp_path, capsys):
    import os

    png = tmp_path / "z.png"
    old = os.umask(0o022)
    try:
        code, _, _ = run(["ratings", "fit", "--plot", str(png)], capsys)
    finally:
        os.umask(old)
    assert code == 0 and (png.stat().st_mode & 0o777) == 0o644


def test_ratings_fit_reads_a_counts_csv(tmp_path, capsys):
    sp = load_sp_ratings()
    long = pd.concat(
        {"obligors": sp.obligors.stack(), "defaults": sp.defaults.stack()}, axis=1
    ).reset_index().rename(columns={"level_1": "rating"})
    path = tmp_path / "counts.csv"
    long.to_csv(path, index=False)
    code, out, _ = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 0 and "rho = 0.0500" in out and "given" in out


def test_ratings_fit_bad_input_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run(["ratings", "fit", "--method", "ols"], capsys)
    assert code == 2 and "method" in err
    code, _, err = run(["ratings", "fit", "--data", str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "not found" in err
    code, _, err = run(["ratings", "fit", "--method", "mle", "--rho", "0.05"], capsys)
    assert code == 2 and "1981" in err  # zero-default year: no finite MLE


def test_ratings_lifetime_scenarios_weighted_and_plot(tmp_path, capsys):
    png = tmp_path / "lt.png"
    code, out, _ = run(
        ["ratings", "lifetime", "--scenario", "baseline", "--scenario", "severely_adverse", "--weights", "0.7,0.3",
         "--years", "4", "--plot", str(png)],
        capsys,
    )
    assert code == 0
    assert "Cumulative PD, severely_adverse" in out and "Cumulative PD, weighted" in out
    assert png.exists()


def test_ratings_lifetime_explicit_z_path_and_errors(capsys):
    code, out, _ = run(["ratings", "lifetime", "--z", "-1.5,-0.5", "--years", "3"], capsys)
    assert code == 0 and "Cumulative PD, z path" in out
    code, _, err = run(["ratings", "lifetime", "--z", "bad,z"], capsys)
    assert code == 2 and "--z" in err
    code, _, err = run(["ratings", "lifetime", "--scenario", "baseline", "--scenario", "severely_adverse", "--weights", "0.9,0.3"], capsys)
    assert code == 2 and "sum to 1" in err


def _long_counts(tmp_path):
    sp = load_sp_ratings()
    return pd.concat(
        {"obligors": sp.obligors.stack(), "defaults": sp.defaults.stack()}, axis=1
    ).reset_index().rename(columns={"level_1": "rating"})


def test_ratings_fit_non_numeric_or_blank_counts_name_the_rows(tmp_path, capsys):
    long = _long_counts(tmp_path)
    bad = long.astype({"obligors": object})
    i = bad.index[(bad["year"] == 1990) & (bad["rating"] == "BB")][0]
    bad.loc[i, "obligors"] = "abc"
    path = tmp_path / "abc.csv"
    bad.to_csv(path, index=False)
    code, _, err = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 2 and "obligors" in err and "1990" in err and "BB" in err and "Traceback" not in err
    # a blank defaults cell used to become 0 silently
    blank = long.astype({"defaults": object})
    j = blank.index[(blank["year"] == 1991) & (blank["rating"] == "B")][0]
    blank.loc[j, "defaults"] = ""
    path = tmp_path / "blank.csv"
    blank.to_csv(path, index=False)
    code, _, err = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 2 and "defaults" in err and "1991" in err and "'B'" in err


def test_ratings_fit_unknown_rating_and_missing_pairs(tmp_path, capsys):
    long = _long_counts(tmp_path)
    zz = long.copy()
    zz.loc[zz["rating"] == "BB", "rating"] = "ZZ"
    path = tmp_path / "zz.csv"
    zz.to_csv(path, index=False)
    code, _, err = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 2 and "ZZ" in err and "AAA" in err
    gap = long.drop(long.index[(long["year"] == 1995) & (long["rating"] == "CCC")])
    path = tmp_path / "gap.csv"
    gap.to_csv(path, index=False)
    code, _, err = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 2 and "(1995, 'CCC')" in err


def test_ratings_bad_plot_and_weights_rejected_before_any_computation(tmp_path, capsys):
    # validation happens at the edge: nothing is computed or printed before the one-line error
    code, out, err = run(["ratings", "fit", "--plot", str(tmp_path / "z.jpg")], capsys)
    assert code == 2 and ".png" in err and out == ""
    code, out, err = run(["ratings", "lifetime", "--plot", str(tmp_path / "lt.pdf")], capsys)
    assert code == 2 and ".png" in err and out == ""
    base = ["ratings", "lifetime", "--scenario", "baseline", "--scenario", "severely_adverse"]
    code, out, err = run([*base, "--weights", "0.9,0.3"], capsys)
    assert code == 2 and "sum to 1" in err and out == ""
    code, out, err = run([*base, "--weights", "1.0"], capsys)
    assert code == 2 and "one weight per scenario" in err and out == ""
    code, out, err = run([*base, "--weights", "a,b"], capsys)
    assert code == 2 and "--weights" in err and out == ""
    code, out, err = run(["ratings", "lifetime", "--weights", "1.0", "--z", "0.5"], capsys)
    assert code == 2 and "--weights" in err and out == ""


def test_ratings_lifetime_rejects_implausible_z(capsys):
    code, out, err = run(["ratings", "lifetime", "--z", "100"], capsys)
    assert code == 2 and "|z|" in err and "100" in err and out == ""
    code, out, _ = run(["ratings", "lifetime", "--z", "-3.5,2", "--years", "2"], capsys)
    assert code == 0 and "Cumulative PD, z path" in out


def test_ratings_fit_plot_masks_zero_pds_instead_of_a_fake_floor(tmp_path):
    import matplotlib.pyplot as plt

    from creditsim.cli.ratings import _fit_figure
    from creditsim.ratings.lifetime import ttc_term_structure
    from creditsim.ratings.zfactor import ZFactorModel

    sp = load_sp_ratings()
    ts = ttc_term_structure(sp.matrix_8x8, 5)
    assert ts.cumulative[0, 0] == 0.0  # AAA: no default within one year in the S&P 8x8
    res = ZFactorModel(rho=0.05).fit(defaults=sp.defaults, obligors=sp.obligors)
    fig = _fit_figure(res, ts, 5)
    try:
        lines = {ln.get_label(): np.asarray(ln.get_ydata(), dtype=float) for ln in fig.axes[1].lines}
        assert np.isnan(lines["AAA"][0])
        np.testing.assert_allclose(lines["AAA"][1:], ts.cumulative[1:, 0])
        drawn = np.concatenate([v[np.isfinite(v)] for v in lines.values()])
        assert drawn.min() == pytest.approx(ts.cumulative[ts.cumulative > 0].min())
    finally:
        plt.close(fig)


def test_ratings_fit_too_few_years_or_rho_at_bound(tmp_path, capsys):
    long = _long_counts(tmp_path)
    one = long[long["year"] == 1990]
    one = one[one["rating"] != "A"]  # no A default in 1990
    path = tmp_path / "one.csv"
    one.to_csv(path, index=False)
    code, out, err = run(["ratings", "fit", "--data", str(path)], capsys)
    assert code == 2 and "at least 3 years" in err and "--rho" not in out
    code, out, _ = run(["ratings", "fit", "--data", str(path), "--rho", "0.05"], capsys)
    assert code == 0 and "1990" in out
    flat = pd.DataFrame(
        [(y, g, 2000, d) for y in range(2001, 2011) for g, d in (("BBB", 4), ("BB", 20), ("B", 80))],
        columns=["year", "rating", "obligors", "defaults"],
    )
    path = tmp_path / "flat.csv"
    flat.to_csv(path, index=False)
    code, out, err = run(["ratings", "fit", "--data", str(path)], capsys)
    assert code == 0 and "warning:" in out and "lower bound" in out and "Traceback" not in err


def test_ratings_lifetime_years_out_of_range_is_a_one_line_error(capsys):
    """Defect: ``--years 100000000`` allocated a 1e8-year term structure; now exit 2 naming the limit."""
    for value in ("1000000000000", "100000000", "0", "-3"):  # 1e12 first: fails fast on the old code
        code, out, err = run(["ratings", "lifetime", "--years", value, "--z", "0.5"], capsys)
        assert code == 2 and "--years must be in 1..200" in err and "Traceback" not in err and out == ""
        assert len(err.strip().splitlines()) == 1
