"""HTML report: self-contained, escapes text, and renders its charts in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from creditsim.risk.report import build_report_html, write_report
from creditsim.risk.results import SimulationResults, TrancheResult
from creditsim.states import POOL_CF_TYPES


def _results(n=300, t=24) -> SimulationResults:
    rng = np.random.default_rng(1)
    losses = rng.beta(1, 25, size=n)
    tranches = [
        TrancheResult(name=name, balance=b, losses=np.clip(losses * m - 0.03, 0, 1), irr=0.06 - losses,
                      wal=np.full(n, 3.0), coupon=0.05)
        for name, b, m in (("A", 70.0, 1.0), ("<script>alert(1)</script>", 20.0, 4.0), ("Equity", 10.0, 12.0))
    ]
    return SimulationResults(
        portfolio_losses=losses, tranche_results=tranches,
        cashflows={"pool": rng.uniform(size=(n, t, len(POOL_CF_TYPES)))},
        scenarios=rng.integers(0, 4, size=n), macro_paths=rng.normal(0.05, 0.01, size=(n, t, 9)),
        initial_balance=100.0, settings={"seed": 7, "engine": "markov"},
    )


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_inline_report_is_self_contained_and_escapes_text(tmp_path):
    r = _results()
    page = build_report_html(r, title="Deal <X>", plotly_js="inline")
    # no external resources: every script is inline
    assert not re.search(r"<script[^>]+src=", page)
    assert "cdn.plot.ly" not in page.split("</head>")[1]
    assert "Deal &lt;X&gt;" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for div_id in ("loss_distribution", "loss_tail", "loss_timing", "tranche_el", "tranche_losses",
                   "pool_cashflows", "macro_fan"):
        assert f'id="{div_id}"' in page
    # the headline VaR is the object's VaR; its s.e. (3 tail scenarios of 300) is not a number
    assert f"{r.var_99 * 100:.3f}%" in page
    assert "nan" not in page.split("<h2>Headline</h2>")[1].split("<h2>")[0].lower()
    assert len(page) > 4_000_000  # plotly.js is in the page


def test_written_report_loads_one_shared_plotly_bundle_beside_it(tmp_path):
    from creditsim.risk.report import plotly_bundle_name

    r = _results()
    out = write_report(r, tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    bundle = plotly_bundle_name()
    assert re.fullmatch(r"plotly-\d+\.\d+\.\d+\.min\.js", bundle)
    # relative, so the run directory can be copied or archived and still open offline
    assert re.findall(r'<script[^>]+src="([^"]+)"', page) == [bundle]
    assert "cdn.plot.ly" not in page and "https://" not in page.split("</head>")[0]
    assert len(page) < 400_000  # was 4.9 MB with plotly.js inlined
    js = tmp_path / bundle
    assert js.stat().st_size > 3_000_000 and b"plotly" in js.read_bytes()[:2000].lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.html", bundle])  # no temp files left
    # a second report in the same directory shares the bundle and does not rewrite it
    mtime = js.stat().st_mtime_ns
    write_report(r, tmp_path / "r2.html")
    assert js.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.html", "r2.html", bundle])
    # a truncated copy is replaced by the real one
    js.write_bytes(b"/* truncated */")
    write_report(r, tmp_path / "r.html")
    assert js.stat().st_size > 3_000_000


def test_report_uses_human_labels_not_snake_case():
    r = _results()
    page = build_report_html(r, plotly_js="file")
    tables = page.split("<h2>Charts</h2>")[0]
    for key in ("expected_loss", "wal_years", "irr_median", "severely_adverse", "n_sims", "var_99_9"):
        assert key not in tables, key
    for label in ("Expected loss", "WAL (years)", "IRR median", "Severely adverse", "VaR 99.9%", "Scenarios"):
        assert label in tables, label
    charts = dict(_figures_of(r))
    names = {tr.name for tr in charts["pool_cashflows"].data}
    assert {"Scheduled principal", "Prepayments", "Defaulted par"} <= names


def _figures_of(r):
    from creditsim.risk.report import _figures

    return _figures(r)


def test_report_renders_all_charts_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (run `make chromium`); render test skipped")
    r = _results()
    n_figs = len(_figures_of(r))
    path = write_report(r, tmp_path / "report.html")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
           path.as_uri()]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("headless Chromium did not finish within 120 s")
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    m_exp = re.search(r'data-charts-expected="(\d+)"', dom)
    m_ren = re.search(r'data-charts-rendered="(\d+)"', dom)
    assert m_exp and m_ren, "report body lost its chart counters"
    assert int(m_exp.group(1)) == n_figs
    assert int(m_ren.group(1)) == n_figs, "plotly (loaded from the bundle beside the page) did not draw every chart"
    assert dom.count('class="main-svg"') >= n_figs


def test_tranche_loss_chart_shows_tranches_that_never_lose():
    from creditsim.risk.report import _figures, tranche_loss_buckets

    r = _results()
    r.tranche_results[0].losses[:] = 0.0  # a senior note that never loses
    table = tranche_loss_buckets(r)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    assert table.loc["A", "no loss"] == pytest.approx(1.0, abs=1e-12)
    eq = r.tranche_results[2]
    assert table.loc["Equity", "50-100%"] == pytest.approx(np.mean(eq.losses > 0.5))
    assert table.loc["Equity", "no loss"] == pytest.approx(np.mean(eq.losses <= 1e-8))
    fig = dict(_figures(r))["tranche_losses"]
    assert fig.layout.yaxis.type != "log" and fig.layout.barmode == "stack"
    no_loss = next(tr for tr in fig.data if tr.name == "no loss")
    assert list(no_loss.y)[0] == pytest.approx(100.0)


def test_macro_fans_show_all_nine_variables_and_a_fan_per_scenario():
    from creditsim.risk.report import FAN_VARS, _figures
    from creditsim.states import MACRO_VARS, SCENARIOS

    r = _results()
    fig = dict(_figures(r))["macro_fan"]
    assert [v for v, _, _ in FAN_VARS] == list(MACRO_VARS)  # inflation included
    assert len({tr.xaxis for tr in fig.data}) == 9  # one panel per variable
    assert [a.text for a in fig.layout.annotations] == [label for _, label, _ in FAN_VARS]
    assert "CPI inflation (y/y), %" in [a.text for a in fig.layout.annotations]
    medians = [tr for tr in fig.data if tr.name and tr.name.endswith("median")]
    assert len(medians) == len(FAN_VARS) * 4
    # the unemployment median of the baseline is the baseline paths' median (the library's
    # quantile, no interpolation), not the pooled one
    j = MACRO_VARS.index("unemployment_rate")
    panel = "x" if j == 0 else f"x{j + 1}"  # panels in FAN_VARS order
    base = next(tr for tr in medians if tr.name == "Baseline median" and tr.xaxis == panel)
    want = np.quantile(r.macro_paths[r.scenarios == 0, :, j] * 100, 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(base.y, want)
    assert SCENARIOS[0] == "baseline"


def _with_deal_arrays(r, t=24):
    """``r`` with tranche arrays and coverage-test ratios as a keep_cashflows run of a 3-note deal
    (equity last) would hold them."""
    n = r.n_sims
    rng = np.random.default_rng(5)
    r.tranche_results[2].equity = True
    bal0 = np.array([t_.balance for t_ in r.tranche_results])
    paydown = np.clip(1 - np.cumsum(rng.uniform(0, 0.08, size=(n, t, 1)), axis=1), 0, 1)
    r.cashflows["tranche_balance"] = bal0 * paydown
    r.cashflows["tranche_balance"][:, :, 2] = bal0[2]  # equity: its notional
    r.cashflows["tranche_interest"] = rng.uniform(0, 1, size=(n, t, 3))
    r.cashflows["tranche_principal"] = rng.uniform(0, 1, size=(n, t, 3))
    oc = rng.normal(1.3, 0.1, size=(n, t, 2))
    oc[:, -3:, 0] = np.inf  # class A repaid at the end
    r.cashflows["oc_ratio"] = oc
    ic = rng.normal(1.5, 0.2, size=(n, t, 2))
    ic[:, :, 1] = np.nan  # class B has no IC test
    r.cashflows["ic_ratio"] = ic
    r.settings["deal"] = {"tranches": [{"name": "A", "oc_trigger": 1.2, "ic_trigger": 1.1},
                                       {"name": r.tranche_results[1].name, "oc_trigger": 1.05}]}
    return r


def test_loss_timing_ends_at_the_portfolio_loss_and_has_a_band():
    from creditsim.risk.report import _figures

    r = _results()
    loss_col = POOL_CF_TYPES.index("loss")
    # pool cashflows consistent with the portfolio losses: the loss spread evenly over the months
    r.cashflows["pool"][:, :, loss_col] = (r.portfolio_losses * r.initial_balance)[:, None] / 24
    fig = dict(_figures(r))["loss_timing"]
    mean = next(tr for tr in fig.data if tr.name == "all scenarios, mean")
    assert list(mean.x) == list(range(1, 25))
    assert mean.y[-1] == pytest.approx(r.expected_loss * 100)
    assert mean.y[11] == pytest.approx(r.expected_loss * 100 / 2)
    band = next(tr for tr in fig.data if tr.name == "all scenarios, 5-95%")
    assert band.fill == "tonexty"
    # one mean line per scenario type present
    assert sum(tr.name.endswith(", mean") for tr in fig.data if tr.name) == 1 + 4


def test_tail_view_marks_var_and_cvar_on_a_log_exceedance_curve():
    from creditsim.risk.report import _figures

    r = _results(n=2000)
    fig = dict(_figures(r))["loss_tail"]
    assert fig.layout.yaxis.type == "log"
    curve = fig.data[0]
    x, y = np.asarray(curve.x), np.asarray(curve.y)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) <= 1e-12) and y.min() > 0
    # the step runs out to the worst scenario, at the level of the one before it
    assert np.isclose(x[-1], r.portfolio_losses.max() * 100, rtol=1e-6) and y[-1] == y[-2]  # float32 on the page
    # exceedance at the VaR 99 % point is at most 1 %
    k = np.searchsorted(x, r.var_99 * 100)
    assert y[k] <= 1.0 + 1e-9
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert f"VaR 99% {r.var_99 * 100:.2f}%" in texts and f"CVaR 99% {r.cvar_99 * 100:.2f}%" in texts
    assert "VaR 99.9%" in texts  # 2,000 scenarios: 2 beyond it
    small = dict(_figures(_results(n=300)))["loss_tail"]
    assert "VaR 99.9%" not in " ".join(a.text for a in small.layout.annotations)


def test_tranche_fans_and_coverage_tests_drawn_from_the_arrays_the_run_kept():
    from creditsim.risk.report import _charts

    r = _with_deal_arrays(_results())
    figs, notes = _charts(r)
    figs = dict(figs)
    assert not notes
    bal = figs["tranche_balance"]
    assert [a.text for a in bal.layout.annotations] == ["A", "<script>alert(1)</script>"]  # notes only
    median_a = next(tr for tr in bal.data if tr.name == "median" and tr.xaxis == "x")
    want = np.quantile(r.cashflows["tranche_balance"][:, :, 0] / 70.0 * 100, 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(median_a.y, want)
    cfs = figs["tranche_cashflows"]
    assert len(cfs.layout.annotations) == 3  # every tranche, equity included
    interest_a = next(tr for tr in cfs.data if tr.name == "interest" and tr.xaxis == "x")
    want = r.cashflows["tranche_interest"][:, :, 0].mean(axis=0).sum() / 70.0 * 100
    assert interest_a.y[-1] == pytest.approx(want, rel=1e-6)  # cumulative, % of the note balance
    cov = figs["coverage_tests"]
    titles = [a.text for a in cov.layout.annotations]
    assert titles == ["OC test, A", "OC test, <script>alert(1)</script>", "IC test, A"]  # B has no IC test
    triggers = [tr for tr in cov.data if tr.name == "trigger"]
    assert sorted(tr.y[0] for tr in triggers) == pytest.approx([105.0, 110.0, 120.0])
    med = next(tr for tr in cov.data if tr.name == "median" and tr.xaxis == "x")
    assert np.all(np.isnan(np.asarray(med.y, dtype=float)[-3:]))  # repaid: a gap, never +inf
    page = build_report_html(r, plotly_js="file")
    for div_id in ("tranche_balance", "tranche_cashflows", "coverage_tests"):
        assert f'id="{div_id}"' in page
    assert "Not shown" not in page
    assert "<script>alert(1)</script>" not in page


def test_panels_without_data_are_skipped_with_a_note():
    from creditsim.risk.report import _charts

    r = _results()
    figs, notes = _charts(r)
    ids = [i for i, _ in figs]
    assert "coverage_tests" not in ids and "tranche_balance" not in ids
    assert any("OC / IC" in n for n in notes) and any("balance" in n for n in notes)
    bare = SimulationResults(portfolio_losses=r.portfolio_losses, tranche_results=r.tranche_results)
    figs, notes = _charts(bare)
    assert [i for i, _ in figs] == ["loss_distribution", "loss_tail", "tranche_el", "tranche_losses"]
    assert any("Loss timing" in n for n in notes) and any("Macro" in n for n in notes)
    page = build_report_html(bare, plotly_js="file")
    assert "Not shown" in page and "Loss timing: the run kept no pool cashflows" in page


def test_coverage_axis_is_cut_where_a_nearly_repaid_class_runs_off_but_keeps_the_trigger():
    from creditsim.risk.report import _coverage_range

    # a class close to repayment: ratios of thousands of percent in the last months
    q = np.array([[110.0, 115.0, 120.0, 900.0], [130.0, 140.0, 160.0, 4500.0], [150.0, 170.0, 260.0, 9e4]])
    lo, hi = _coverage_range(q, trigger=1.2)
    assert hi < 260.0 and lo <= 110.0
    lo, hi = _coverage_range(q, trigger=None)  # no trigger recorded: twice the first median
    assert hi < 2 * 130.0 * 1.06
    calm = np.array([[100.0, 101.0], [105.0, 106.0], [110.0, 111.0]])
    lo, hi = _coverage_range(calm, trigger=0.9)
    assert lo <= 90.0 <= 111.0 <= hi < 2 * 90.0  # uncut, trigger in view
    assert _coverage_range(np.full((3, 4), np.nan), trigger=1.1) is None


def test_fan_bands_are_the_library_quantile_with_scenario_weights():
    from creditsim.risk import measures
    from creditsim.risk.report import _fan

    rng = np.random.default_rng(2)
    y = rng.normal(size=(257, 6))
    for w in (np.full(257, 1 / 257), rng.uniform(0.1, 2.0, size=257)):
        q = _fan(y, w / w.sum(), (0.05, 0.5, 0.95))
        for t in range(6):
            for i, a in enumerate((0.05, 0.5, 0.95)):
                assert q[i, t] == measures.value_at_risk(y[:, t], a, w)
    y[:10, 2] = np.inf  # repaid classes are left out of that month's band, not counted as huge
    q = _fan(y, np.full(257, 1 / 257), (0.5,))
    assert q[0, 2] == measures.value_at_risk(y[10:, 2], 0.5)


def test_a_page_without_its_plotly_file_says_why_its_charts_are_empty():
    res = _results(n=100, t=6)
    linked = build_report_html(res, plotly_js="file")
    assert 'id="charts-missing"' in linked and "--self-contained" in linked
    assert 'missing.remove()' in linked  # hidden as soon as plotly.js has loaded
    assert 'id="charts-missing"' not in build_report_html(res, plotly_js="inline")


def test_user_text_is_escaped_exactly_once_in_the_report_and_the_comparison():
    """The templates escape (autoescape); Python passes plain text, so a tranche, deal or run name with
    markup or an ampersand shows as written, escaped once: never raw, never double-escaped."""
    from creditsim.risk.compare import compare_runs
    from creditsim.risk.report import comparison_html

    nasty = "<script>x()</script> & Co"
    once = "&lt;script&gt;x()&lt;/script&gt; &amp; Co"
    r = _results(n=120, t=6)
    r.tranche_results[0].name = nasty
    r.settings["name"] = f"Deal {nasty}"
    other = _results(n=120, t=6)
    other.tranche_results[0].name = nasty
    other.settings["seed"] = 8
    pages = {"report": build_report_html(r, plotly_js="file"),
             "compare": comparison_html(compare_runs(r, other, labels=(f"q3 {nasty}", "q4 & <b>")), r, other,
                                        plotly_js="file")}
    for name, page in pages.items():
        text = page.split("<h2>Charts</h2>")[0].split("<h2>Loss tails</h2>")[0]  # the charts carry JSON
        assert "<script>x()" not in text and once in text, name
        assert "&amp;lt;" not in page and "&amp;amp;" not in page, name  # nothing escaped twice
    assert f"<title>Deal {once}</title>" in pages["report"] and f"<h1>Deal {once}</h1>" in pages["report"]
    assert f"<td>{once}</td>" in pages["report"]  # the tranche rows
    assert f"<h1>q3 {once} &rarr; q4 &amp; &lt;b&gt;</h1>" in pages["compare"]
    assert f"<th>VaR 99% (q3 {once})</th>" in pages["compare"] and f"<td>{once}</td>" in pages["compare"]


def test_templates_come_from_the_package_not_the_working_directory(tmp_path, monkeypatch):
    """The templates are package data found through the package (importlib.resources), so a report is
    drawn from any working directory, and a templates/ folder in it is not used."""
    from importlib.resources import files

    from creditsim.risk.report import _templates

    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "report.html.j2").write_text("decoy", encoding="utf-8")
    _templates.cache_clear()
    page = build_report_html(_results(n=100, t=6), plotly_js="file")
    assert page != "decoy" and 'id="loss_distribution"' in page
    shipped = files("creditsim.risk") / "templates"
    for name in ("base.html.j2", "macros.html.j2", "report.html.j2", "compare.html.j2", "reverse_stress.html.j2"):
        assert (shipped / name).is_file(), name
        found = _templates().get_template(name).filename
        assert found is not None and Path(found) == Path(str(shipped / name)), found


def test_reinvestment_criteria_chart_cumulates_blocked_cash_and_draws_each_test_against_its_limit():
    """Issue 15: blocked cash cumulated as % of the initial pool; WAS in % against min_was, WARF against
    max_warf, the WAL against its stepped-down limit (max(max_wal - (t + 1) / 12, floor)); a test that is off
    (NaN) has no panel."""
    from creditsim.risk.report import _charts

    r = _results(n=200, t=24)
    rng = np.random.default_rng(3)
    crit = np.full((200, 24, 4), np.nan)
    crit[:, :, 0] = rng.uniform(0.0, 0.5, size=(200, 24))  # blocked cash, currency units (pool 100)
    crit[:, :, 1] = rng.normal(0.035, 0.002, size=(200, 24))  # WAS
    crit[:, :, 3] = rng.normal(5.0, 0.3, size=(200, 24))  # WAL; WARF off
    r.cashflows["reinvestment_criteria"] = crit
    r.settings["deal"] = {"name": "x", "min_was": 0.033, "max_wal": 6.0, "max_wal_floor": 5.5,
                          "tranches": [{"name": "A", "balance": 70.0, "coupon": 0.05},
                                       {"name": "Equity", "balance": 30.0, "equity": True}]}
    fig = dict(_charts(r)[0])["reinvestment_criteria"]
    assert [a.text for a in fig.layout.annotations] == ["Reinvestment blocked, cumulative",
                                                        "Weighted-average spread (WAS)", "Weighted-average life (WAL)"]
    median = [tr for tr in fig.data if tr.name == "median"]
    want = np.quantile(np.cumsum(crit[:, :, 0], axis=1) / 100.0 * 100, 0.5, axis=0, method="inverted_cdf")
    np.testing.assert_allclose(median[0].y, want, rtol=1e-6)
    limits = [tr for tr in fig.data if tr.name == "limit"]
    np.testing.assert_allclose(limits[0].y, 3.3, rtol=1e-6)  # WAS, % p.a.
    np.testing.assert_allclose(limits[1].y, [max(6.0 - (t + 1) / 12, 5.5) for t in range(24)], rtol=1e-6)
    assert 'id="reinvestment_criteria"' in build_report_html(r, plotly_js="file")


def test_a_run_with_binding_criteria_keeps_them_saves_them_and_a_run_without_has_none(tmp_path):
    import pandas as pd
    import yaml

    import creditsim as cs
    from creditsim.deal.config import WaterfallConfig
    from creditsim.examples import example_path

    loans = pd.read_parquet(example_path("loans_bsl.parquet")).head(120)
    spec = yaml.safe_load(example_path("bsl_clo.yaml").read_text())
    spec.update(max_warf=2600.0, reinvestment_warf=3000.0)  # buying B3 under a tight WARF limit: it binds
    run = dict(n_simulations=16, macro="synthetic", horizon=36, seed=1, progress=False)
    r = cs.simulate(loans, WaterfallConfig.from_dict(spec), **run)
    crit = r.cashflows["reinvestment_criteria"]
    assert crit.shape == (16, 36, 4) and crit[:, :, 0].sum() > 0 and np.isfinite(crit[:, :, 2]).all()
    assert (0.03 < crit[:, 0, 1]).all() and (crit[:, 0, 1] < 0.04).all()  # WAS: the tape's spread_bps, 3.5 %
    r.save(tmp_path / "run") if hasattr(r, "save") else r.to_parquet(tmp_path / "run")
    back = type(r).load(tmp_path / "run")
    np.testing.assert_array_equal(back.cashflows["reinvestment_criteria"], crit)
    for key in ("min_was", "max_warf", "max_wal", "max_wal_floor", "reinvestment_spread", "reinvestment_warf",
                "reinvestment_wal"):
        spec.pop(key, None)
    plain = cs.simulate(loans, WaterfallConfig.from_dict(spec), **run)
    assert "reinvestment_criteria" not in plain.cashflows
