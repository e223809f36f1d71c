"""HTML report: self-contained, escapes text, and renders its charts in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

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


def test_report_is_self_contained_and_escapes_text(tmp_path):
    r = _results()
    page = build_report_html(r, title="Deal <X>")
    # no external resources: every script is inline
    assert not re.search(r"<script[^>]+src=", page)
    assert "cdn.plot.ly" not in page.split("</head>")[1]
    assert "Deal &lt;X&gt;" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for div_id in ("loss_distribution", "tranche_el", "tranche_losses", "pool_cashflows", "macro_fan"):
        assert f'id="{div_id}"' in page
    # the headline VaR is the object's VaR; its s.e. (3 tail scenarios of 300) is not a number
    assert f"{r.var_99 * 100:.3f}%" in page
    assert "nan" not in page.split("<h2>Headline</h2>")[1].split("<h2>")[0].lower()
    out = write_report(r, tmp_path / "r.html")
    assert out.read_text(encoding="utf-8") .startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_report_renders_all_charts_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (run `make chromium`); render test skipped")
    path = write_report(_results(), tmp_path / "report.html")
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
    assert int(m_exp.group(1)) == 5
    assert int(m_ren.group(1)) == 5, "plotly did not draw every chart"
    # plotly drew real SVG marks (bars of the histogram) into the loss chart
    assert dom.count('class="main-svg"') >= 5


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


def test_macro_fan_has_one_panel_per_variable_and_a_fan_per_scenario():
    from creditsim.risk.report import FAN_VARS, _figures
    from creditsim.states import MACRO_VARS, SCENARIOS

    r = _results()
    fig = dict(_figures(r))["macro_fan"]
    assert {tr.xaxis for tr in fig.data} == {"x", "x2", "x3"}  # three panels
    assert [a.text for a in fig.layout.annotations] == [label for _, label in FAN_VARS]
    medians = [tr for tr in fig.data if tr.name and tr.name.endswith("median")]
    assert len(medians) == len(FAN_VARS) * 4
    # the unemployment median of the baseline is the baseline paths' median, not the pooled one
    base = next(tr for tr in medians if tr.name == f"{SCENARIOS[0]} median" and tr.xaxis == "x")
    j = MACRO_VARS.index("unemployment_rate")
    want = np.quantile(r.macro_paths[r.scenarios == 0, :, j] * 100, 0.5, axis=0)
    np.testing.assert_allclose(base.y, want)
