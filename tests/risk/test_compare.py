"""Run against run (creditsim.risk.compare, ``creditsim compare``): paired and independent changes,
the settings that differ, the page and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim as cs
from creditsim.cli import main
from creditsim.examples import example_path
from creditsim.risk.compare import compare_runs
from creditsim.risk.report import comparison_html
from creditsim.risk.results import SimulationResults


def _run(**kw) -> SimulationResults:
    tape = pd.read_parquet(example_path("loans_example.parquet")).iloc[:300]
    base = dict(n_simulations=300, macro="synthetic", seed=2, horizon=24, progress=False)
    return cs.simulate(tape, example_path("example_clo.yaml"), **{**base, **kw})


@pytest.fixture(scope="module")
def runs() -> dict[str, SimulationResults]:
    return {"a": _run(), "mixture": _run(rating_pd="mixture"), "reseeded": _run(seed=3)}


def test_a_run_against_itself_changes_nothing(runs) -> None:
    cmp = compare_runs(runs["a"], runs["a"])
    assert cmp.paired and cmp.settings.empty and cmp.significant() == []
    assert (cmp.table["expected_loss_change"] == 0).all()


def test_paired_change_is_the_mean_of_per_simulation_differences(runs) -> None:
    a, b = runs["a"], runs["mixture"]
    cmp = compare_runs(a, b)
    assert cmp.paired and list(cmp.settings.index[:1]) == ["rating_pd"]
    diff = b.portfolio_losses - a.portfolio_losses
    row = cmp.table.loc["portfolio"]
    assert row["expected_loss_change"] == pytest.approx(diff.mean(), abs=1e-15)
    assert row["expected_loss_change_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(diff.size), rel=1e-9)
    # common random numbers: the change is measured far more tightly than either run's own EL
    independent = np.hypot(a.summary().at["portfolio", "expected_loss_se"], b.summary().at["portfolio", "expected_loss_se"])
    assert row["expected_loss_change_se"] < 0.5 * independent
    assert list(cmp.table.index) == ["portfolio", *(t.name for t in a.tranche_results)]


def test_other_seeds_are_compared_as_independent_runs(runs) -> None:
    a, b = runs["a"], runs["reseeded"]
    cmp = compare_runs(a, b)
    assert not cmp.paired and cmp.settings.loc["seed"].tolist() == ["2", "3"]
    sa, sb = a.summary(), b.summary()
    assert cmp.table.at["portfolio", "expected_loss_change_se"] == pytest.approx(
        np.hypot(sa.at["portfolio", "expected_loss_se"], sb.at["portfolio", "expected_loss_se"]), rel=1e-12)
    assert set(cmp.by_scenario.columns) == {"a", "b"} and "all" in cmp.by_scenario.index


def test_the_page_and_the_cli(runs, tmp_path, capsys) -> None:
    page = comparison_html(compare_runs(runs["a"], runs["mixture"], labels=("q3", "q4")), runs["a"], runs["mixture"])
    assert "q3 &rarr; q4" in page and "paired: same seed" in page and "VaR 99% (q3)" in page and 'id="exceedance"' in page
    runs["a"].to_parquet(tmp_path / "a")
    runs["mixture"].to_parquet(tmp_path / "b")
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--csv", str(tmp_path / "c.csv"),
              "--html", str(tmp_path / "c.html")])
    out = capsys.readouterr().out
    assert exc.value.code == 0, out
    assert "rating_pd" in out and "EL A" in out and "changes beyond 3 standard errors" in out
    assert pd.read_csv(tmp_path / "c.csv", index_col=0).index[0] == "portfolio"
    assert (tmp_path / "c.html").stat().st_size < 200_000 and list(tmp_path.glob("plotly-*.min.js"))
    # the "charts need plotly.js" notice removes itself once the bundle beside the page has loaded
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    notice = page.index('id="charts-missing"')
    assert "missing.remove()" in page[notice:]
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "not a simulation result directory" in err and "Traceback" not in err


def test_review_cases_deal_fields_reasons_and_damaged_runs(runs, tmp_path) -> None:
    """Found by a reviewer: a changed deal is shown field by field, an independent comparison says
    why, the argument order does not change a paired z, and a damaged table is a one-line error."""
    import copy
    import dataclasses

    from creditsim.errors import DataError

    a = runs["a"]
    b = dataclasses.replace(a, settings=copy.deepcopy(a.settings))
    b.settings["deal"]["tranches"][2]["coupon"] = 0.123
    cmp = compare_runs(a, b)
    assert list(cmp.settings.index) == ["deal.tranches[2].coupon"] and cmp.settings.iloc[0]["b"] == "0.123"
    assert "different seeds (2 and 3)" in compare_runs(a, runs["reseeded"]).pairing
    there, back = compare_runs(a, runs["mixture"]), compare_runs(runs["mixture"], a)
    np.testing.assert_allclose(there.table["expected_loss_change_z"], -back.table["expected_loss_change_z"])
    a.to_parquet(tmp_path / "run")
    (tmp_path / "run" / "portfolio.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="portfolio.parquet: not a readable Parquet table"):
        SimulationResults.load(tmp_path / "run")
