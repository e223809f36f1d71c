"""SimulationResults / TrancheResult: exact risk estimators, standard errors, tables, storage."""

from __future__ import annotations

import json

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError
from creditsim.risk import measures
from creditsim.risk.results import SimulationResults, TrancheResult, escape_excel_text
from creditsim.states import POOL_CF_TYPES


# ---------------------------------------------------------------- estimators on hand-computed samples
def test_var_is_order_statistic_without_interpolation():
    losses = np.arange(1, 101, dtype=float)  # 1..100
    # F(99) = 0.99 exactly -> VaR_99 = 99 (np.percentile would give 99.01)
    assert measures.value_at_risk(losses, 0.99) == 99.0
    assert np.percentile(losses, 99) != 99.0
    # F(95) = 0.95 -> 95; F(x) >= 0.951 first at 96
    assert measures.value_at_risk(losses, 0.95) == 95.0
    assert measures.value_at_risk(losses, 0.951) == 96.0


def test_cvar_acerbi_tasche_on_1_to_100():
    losses = np.arange(1, 101, dtype=float)
    # 99 + E[(L-99)^+]/0.01 = 99 + (1/100)/0.01 = 100
    assert measures.expected_shortfall(losses, 0.99) == pytest.approx(100.0, abs=1e-12)
    # 95 + (1+2+3+4+5)/100/0.05 = 95 + 3 = 98 = mean of the top 5
    assert measures.expected_shortfall(losses, 0.95) == pytest.approx(98.0, abs=1e-12)


def test_cvar_with_ties_differs_from_naive_tail_mean():
    losses = np.array([0.0] * 9 + [1.0])
    # F(0) = 0.9 >= 0.8 -> VaR_0.8 = 0; CVaR = 0 + 0.1/0.2 = 0.5 (the worst 20 %: half atom at 0, 1)
    assert measures.value_at_risk(losses, 0.8) == 0.0
    assert measures.expected_shortfall(losses, 0.8) == pytest.approx(0.5)
    naive = losses[losses >= 0.0].mean()
    assert naive == pytest.approx(0.1)  # mean(L | L >= VaR) badly understates here


def test_var_and_cvar_with_weights():
    losses = np.array([3.0, 1.0, 2.0])  # unsorted on purpose
    weights = np.array([0.2, 0.5, 0.3])
    # F(1) = .5, F(2) = .8, F(3) = 1
    assert measures.value_at_risk(losses, 0.75, weights) == 2.0
    assert measures.value_at_risk(losses, 0.8, weights) == 2.0
    assert measures.value_at_risk(losses, 0.81, weights) == 3.0
    # tail 25 %: mass .2 at 3 and .05 at 2 -> (0.6 + 0.1) / 0.25 = 2.8
    assert measures.expected_shortfall(losses, 0.75, weights) == pytest.approx(2.8)
    assert measures.expected_value(losses, weights) == pytest.approx(0.5 + 0.6 + 0.6)
    # unnormalised weights give the same answer
    assert measures.expected_shortfall(losses, 0.75, weights * 7) == pytest.approx(2.8)


def test_weights_equal_to_duplication():
    x = np.array([0.1, 0.4, 0.2])
    w = np.array([2.0, 1.0, 3.0])
    dup = np.repeat(x, w.astype(int))
    for a in (0.3, 0.5, 0.6, 0.9):
        assert measures.value_at_risk(x, a, w) == measures.value_at_risk(dup, a)
        assert measures.expected_shortfall(x, a, w) == pytest.approx(measures.expected_shortfall(dup, a))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60),
       st.floats(0.01, 0.99))
def test_cvar_bounds_and_monotonicity(xs, alpha):
    x = np.array(xs)
    v = measures.value_at_risk(x, alpha)
    c = measures.expected_shortfall(x, alpha)
    assert x.min() <= v <= x.max()
    assert v - 1e-12 <= c <= x.max() + 1e-9
    assert c >= measures.expected_value(x) - 1e-12
    assert v in x  # a sample value, never interpolated


def test_estimators_reject_bad_input():
    with pytest.raises(ConfigError, match="alpha"):
        measures.value_at_risk(np.ones(3), 1.0)
    with pytest.raises(DataError, match="NaN"):
        measures.expected_shortfall(np.array([0.1, np.nan]), 0.9)
    with pytest.raises(DataError, match="weights"):
        measures.value_at_risk(np.ones(3), 0.5, np.array([1.0, -1.0, 1.0]))


def test_standard_errors_match_closed_forms():
    rng = np.random.default_rng(3)
    n = 20_000
    x = rng.uniform(size=n)
    # mean of U(0,1): sd = 1/sqrt(12)
    assert measures.expected_value_se(x) == pytest.approx(1 / np.sqrt(12 * n), rel=0.03)
    # quantile of U(0,1): density 1 -> se = sqrt(a(1-a)/n)
    a = 0.95
    assert measures.value_at_risk_se(x, a) == pytest.approx(np.sqrt(a * (1 - a) / n), rel=0.25)
    # CVaR of U(0,1): h = a + (L-a)^+/(1-a) is the atom a (prob a) or a + U' with U' ~ U(0,1)
    eh = a * a + (1 - a) * (a + 0.5)
    eh2 = a * a**2 + (1 - a) * ((a + 0.5) ** 2 + 1 / 12)
    se = np.sqrt((eh2 - eh**2) / n)
    assert measures.expected_shortfall_se(x, a) == pytest.approx(se, rel=0.1)


def test_tail_standard_errors_are_nan_with_fewer_than_10_tail_samples():
    rng = np.random.default_rng(4)
    x = rng.beta(1, 30, size=200)
    # n (1 - a) = 0.2 and 2 tail samples: the old estimate came out as exactly 0.000
    for a in (0.999, 0.99):
        assert np.isnan(measures.value_at_risk_se(x, a)) and np.isnan(measures.expected_shortfall_se(x, a))
    # 200 x 0.05 = 10 tail samples: reported, and positive
    assert measures.value_at_risk_se(x, 0.95) > 0 and measures.expected_shortfall_se(x, 0.95) > 0
    # weights count through n_eff: 1,000 samples but nearly all weight on 50 of them
    big = rng.uniform(size=1000)
    w = np.r_[np.ones(50), np.full(950, 1e-6)]
    assert measures.value_at_risk_se(big, 0.99) > 0
    assert np.isnan(measures.value_at_risk_se(big, 0.99, w))
    # a scenario column with 20 scenarios: no tail s.e. in the risk table, EL s.e. still there
    r = _make_results(n=200)
    rt = r.risk_table()
    small = [c for c in rt.columns if c != "all"]
    assert all(np.isnan(rt.loc["var_99_se", c]) and np.isnan(rt.loc["cvar_99_9_se", c]) for c in small)
    assert all(rt.loc["expected_loss_se", c] > 0 for c in rt.columns)
    assert np.isnan(r.standard_errors(0.999)["var"])


def test_standard_error_uses_effective_sample_size():
    x = np.array([0.0, 1.0, 0.0, 1.0])
    se_equal = measures.expected_value_se(x)
    se_dup = measures.expected_value_se(x, np.array([1.0, 1.0, 1.0, 1.0]))
    assert se_equal == pytest.approx(se_dup)
    assert measures.effective_sample_size(np.array([1.0, 0.0, 0.0, 1.0]), 4) == pytest.approx(2.0)


# ---------------------------------------------------------------- results object
def _make_results(n=200, t=12, seed=0, weights=None, names=("A", "B", "Equity"),
                  tranche_weights=True) -> SimulationResults:
    rng = np.random.default_rng(seed)
    losses = rng.beta(1, 30, size=n)
    tranches = []
    for j, name in enumerate(names):
        tl = np.clip(losses * (3 ** j) - 0.02 * (2 - j), 0, 1)
        tranches.append(TrancheResult(
            name=name, balance=100.0 * (3 - j), losses=tl, irr=0.05 - tl, wal=np.full(n, 2.0 + j),
            coupon=0.05 + 0.01 * j, attachment=0.1 * (2 - j), detachment=0.1 * (3 - j), equity=name == "Equity",
            weights=weights if tranche_weights else None,
        ))
    pool = rng.uniform(size=(n, t, len(POOL_CF_TYPES)))
    macro = rng.normal(0.05, 0.01, size=(n, t, 9))
    return SimulationResults(
        portfolio_losses=losses, tranche_results=tranches,
        cashflows={"pool": pool, "tranche_principal": rng.uniform(size=(n, t, len(names)))},
        scenarios=rng.integers(0, 4, size=n), weights=weights, macro_paths=macro,
        initial_balance=1e8, settings={"seed": 7, "scenario_mix": {"baseline": 0.6}, "engine": "markov"},
    )


def test_scenario_conditional_measures_use_only_that_scenario():
    r = _make_results()
    mask = r.scenarios == 2
    assert r.el("severely_adverse") == pytest.approx(r.portfolio_losses[mask].mean())
    assert r.var(0.9, 2) == measures.value_at_risk(r.portfolio_losses[mask], 0.9)
    assert r.cvar(0.9, "severely_adverse") == pytest.approx(measures.expected_shortfall(r.portfolio_losses[mask], 0.9))
    assert r.var_99 == measures.value_at_risk(r.portfolio_losses, 0.99)
    with pytest.raises(ConfigError, match="unknown scenario"):
        r.el("armageddon")


def test_tranche_pd_el_lgd_hand_computed():
    t = TrancheResult(name="M", balance=10.0, losses=np.array([0.0, 0.0, 0.5, 1.0]),
                      irr=np.array([0.1, 0.1, -0.2, -1.0]), wal=np.array([3.0, 3.0, 4.0, np.nan]))
    assert t.pd == 0.5
    assert t.expected_loss == pytest.approx(0.375)
    assert t.lgd == pytest.approx(0.75)
    assert t.mean_wal == pytest.approx(10 / 3)
    assert t.median_irr == pytest.approx(-0.2)  # inf{x: F(x) >= .5} of sorted [-1, -.2, .1, .1]


def test_summary_has_portfolio_and_tranche_rows():
    r = _make_results()
    s = r.summary()
    assert list(s.index) == ["portfolio", "A", "B", "Equity"]
    assert s.loc["portfolio", "var_99"] == r.var_99
    assert np.isnan(s.loc["portfolio", "pd"])  # P(any pool loss) ~ 1 says nothing
    assert s.loc["B", "expected_loss"] == pytest.approx(r.tranche("B").expected_loss)
    rt = r.risk_table()
    assert "all" in rt.columns and rt.loc["expected_loss", "all"] == pytest.approx(r.expected_loss)


def test_parquet_round_trip_is_exact(tmp_path):
    # weights only on the results object: the tranches must pick them up before and after the save
    r = _make_results(weights=np.linspace(1, 2, 200), tranche_weights=False)
    out = r.to_parquet(tmp_path / "run")
    back = SimulationResults.load(out)
    np.testing.assert_array_equal(back.portfolio_losses, r.portfolio_losses)
    np.testing.assert_array_equal(back.scenarios, r.scenarios)
    np.testing.assert_allclose(back.weights, r.weights, rtol=0, atol=0)
    np.testing.assert_array_equal(back.cashflows["pool"], r.cashflows["pool"])
    np.testing.assert_array_equal(back.macro_paths, r.macro_paths)
    for a, b in zip(r.tranche_results, back.tranche_results):
        assert a.name == b.name and a.balance == b.balance and a.equity == b.equity
        np.testing.assert_array_equal(a.losses, b.losses)
        np.testing.assert_array_equal(a.wal, b.wal)
        assert a.expected_loss == b.expected_loss and a.pd == b.pd and a.cvar(0.99) == b.cvar(0.99)
    pd_ = pytest.importorskip("pandas")
    pd_.testing.assert_frame_equal(back.summary(), r.summary())
    assert back.cvar_99 == r.cvar_99
    assert back.settings == r.settings
    # overwriting leaves exactly one complete directory and no temporaries behind
    r.to_parquet(tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_tranche_results_use_the_result_weights():
    w = np.linspace(1, 5, 200)
    r = _make_results(weights=w, tranche_weights=False)
    b = r.tranche("B")
    wn = w / w.sum()
    assert b.expected_loss == pytest.approx(float(np.dot(wn, b.losses)), rel=1e-12)
    assert b.expected_loss != pytest.approx(float(b.losses.mean()), rel=1e-6)
    with pytest.raises(DataError, match="weights differ"):
        SimulationResults(portfolio_losses=np.zeros(3), tranche_results=[TrancheResult(
            name="A", balance=1.0, losses=np.zeros(3), irr=np.zeros(3), wal=np.ones(3), weights=[1, 1, 2])],
            weights=np.ones(3))


def test_risk_table_leaves_out_levels_beyond_the_sample():
    """99.9 % of a 200-scenario run is not an estimate, only the largest loss: NaN (printed "-"); 99 % of
    200 (2 scenarios beyond) stays."""
    r = _make_results(n=200)
    table = r.risk_table()
    assert np.isnan(table.loc["var_99_9", "all"]) and np.isnan(table.loc["cvar_99_9", "all"])
    assert table.loc["var_99", "all"] == r.var(0.99) and table.loc["cvar_99", "all"] == r.cvar(0.99)


def test_clustered_standard_errors_closed_forms():
    """One scenario per cluster: the i.i.d. formulas. Each loss repeated k times inside its own cluster
    (k copies of one path): the EL s.e. of the G distinct values, not of the n = kG copies, which the
    i.i.d. formula would shrink by sqrt(k)."""
    x = np.random.default_rng(3).gamma(2.0, 0.01, size=400)
    singles = np.arange(x.size)
    assert measures.expected_value_se(x, clusters=singles) == pytest.approx(measures.expected_value_se(x), rel=1e-12)
    assert measures.value_at_risk_se(x, 0.95, clusters=singles) == measures.value_at_risk_se(x, 0.95)
    assert measures.expected_shortfall_se(x, 0.95, clusters=singles) == pytest.approx(
        measures.expected_shortfall_se(x, 0.95), rel=1e-12)
    k = 5
    copies, ids = np.repeat(x, k), np.repeat(singles, k)
    assert measures.expected_value_se(copies, clusters=ids) == pytest.approx(np.std(x, ddof=1) / np.sqrt(x.size), rel=1e-12)
    assert measures.expected_value_se(copies) == pytest.approx(measures.expected_value_se(x) / np.sqrt(k), rel=0.01)
    # the tail errors see the same design effect: n_eff = 400, not 2000
    assert measures.expected_shortfall_se(copies, 0.95, clusters=ids) > 2 * measures.expected_shortfall_se(copies, 0.95)
    assert np.isnan(measures.value_at_risk_se(copies, 0.99, clusters=ids))  # 400 x 1 % = 4 tail paths < 10
    with pytest.raises(DataError, match=r"clusters: expected \(400,\) integer ids"):
        measures.expected_value_se(x, clusters=np.zeros(3, dtype=int))


def test_clustered_standard_errors_cover_correlated_clusters():
    """Losses with a shared effect per cluster (intra-cluster correlation 0.5): across 400 replications
    the cluster-robust EL s.e. matches the real spread of the mean within 10 %, the i.i.d. one is about
    2.3x too small."""
    rng = np.random.default_rng(11)
    g, m, reps = 40, 10, 400
    ids = np.repeat(np.arange(g), m)
    means, robust, naive = [], [], []
    for _ in range(reps):
        x = np.repeat(rng.normal(size=g), m) + rng.normal(size=g * m)
        means.append(x.mean())
        robust.append(measures.expected_value_se(x, clusters=ids))
        naive.append(measures.expected_value_se(x))
    spread = np.std(means, ddof=1)
    assert np.sqrt(np.mean(np.square(robust))) == pytest.approx(spread, rel=0.1)
    assert np.sqrt(np.mean(np.square(naive))) < spread / 2


def test_result_clusters_reach_tranches_tables_and_the_saved_run(tmp_path):
    r = _make_results()
    n = r.n_sims
    clusters = np.arange(n) // 4
    c = SimulationResults(portfolio_losses=r.portfolio_losses, tranche_results=r.tranche_results,
                          scenarios=r.scenarios, clusters=clusters)
    assert c.standard_errors()["expected_loss"] == measures.expected_value_se(r.portfolio_losses, clusters=clusters)
    assert c.standard_errors()["expected_loss"] != r.standard_errors()["expected_loss"]
    assert c.risk_table().loc["expected_loss_se", "all"] == c.standard_errors()["expected_loss"]
    for t in c.tranche_results:
        np.testing.assert_array_equal(t.clusters, clusters)
    back = SimulationResults.load(c.to_parquet(tmp_path / "run"))
    np.testing.assert_array_equal(back.clusters, clusters)
    assert back.summary().equals(c.summary())
    with pytest.raises(DataError, match=r"result: clusters must be"):
        SimulationResults(portfolio_losses=np.zeros(3), tranche_results=[], clusters=np.array([0.5, 1, 2]))


def test_to_parquet_never_replaces_a_directory_that_is_not_a_result(tmp_path):
    r = _make_results(n=20, t=3)
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not a creditsim result"):
        r.to_parquet(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no temporaries left
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        r.to_parquet(a_file)
    assert a_file.read_text() == "x"
    # an empty directory and a previous result are fine targets
    empty = tmp_path / "empty"
    empty.mkdir()
    r.to_parquet(empty)
    r2 = _make_results(n=20, t=3, seed=1)
    r2.to_parquet(empty)
    np.testing.assert_array_equal(SimulationResults.load(empty).portfolio_losses, r2.portfolio_losses)


def test_load_rejects_non_result_directory(tmp_path):
    with pytest.raises(DataError, match="meta.json"):
        SimulationResults.load(tmp_path)
    r = _make_results()
    out = r.to_parquet(tmp_path / "run")
    (out / "cf_pool.parquet").unlink()
    with pytest.raises(DataError, match="cf_pool.parquet is missing"):
        SimulationResults.load(out)


def test_excel_sheets_keep_their_order_and_escape_formulas(tmp_path):
    r = _make_results(names=("=HYPERLINK(\"http://x\")", "+B", "Equity"))
    r.settings["note"] = "@SUM(A1:A2)"
    path = r.to_excel(tmp_path / "out.xlsx")
    wb = openpyxl.load_workbook(path)
    # the first five in their old places; the per-simulation and tranche cashflow sheets after them
    assert wb.sheetnames == ["summary", "tranches", "loss_distribution", "pool_cashflows", "run_settings",
                             "simulations", "tranche_cashflows"]
    texts = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"formula written in {ws.title}!{cell.coordinate}"
                if isinstance(cell.value, str):
                    texts[cell.value] = cell
    # shown as typed (no apostrophe in the text), kept text by the quote-prefix style
    for text in ("=HYPERLINK(\"http://x\")", "+B", "@SUM(A1:A2)"):
        assert text in texts and texts[text].quotePrefix, text
    assert not any(t.startswith("'") for t in texts), [t for t in texts if t.startswith("'")]
    assert not texts["Equity"].quotePrefix
    pc = wb["pool_cashflows"]
    assert [c.value for c in pc[1]] == ["month", *POOL_CF_TYPES]
    assert pc.max_row == 1 + 12
    assert not [p for p in tmp_path.iterdir() if p.name != "out.xlsx"]  # no temp file left


def test_excel_shows_fractions_as_percent_and_counts_as_numbers(tmp_path):
    r = _make_results()
    wb = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))
    ws = wb["summary"]
    header = [c.value for c in ws[1]]
    pd_cell = ws.cell(row=3, column=header.index("pd") + 1)  # tranche A
    assert pd_cell.value == pytest.approx(r.tranche("A").pd) and pd_cell.number_format == "0.00%"
    # money in whole currency units, WAL in years: still the unrounded numbers underneath
    balance = ws.cell(row=3, column=header.index("balance") + 1)
    assert balance.number_format == "#,##0" and balance.value == r.tranche("A").balance
    wal = ws.cell(row=3, column=header.index("wal_years") + 1)
    assert wal.number_format == "0.00" and wal.value == pytest.approx(r.tranche("A").mean_wal)
    assert ws.cell(row=2, column=header.index("pd") + 1).value is None  # NaN (pool PD) -> empty cell
    # the risk table below: n_sims a count, every loss row a percent
    rows = {ws.cell(row=i, column=1).value: i for i in range(1, ws.max_row + 1)}
    assert ws.cell(row=rows["n_sims"], column=2).number_format == "#,##0"
    assert ws.cell(row=rows["n_sims"], column=2).value == r.n_sims
    assert ws.cell(row=rows["cvar_99_9"], column=2).number_format == "0.00%"
    tr = wb["tranches"]
    th = [c.value for c in tr[1]]
    assert tr.cell(row=2, column=th.index("expected_loss") + 1).number_format == "0.00%"
    assert tr.cell(row=2, column=th.index("n_sims") + 1).number_format == "#,##0"


def test_excel_headers_bold_widths_fitted_and_panes_frozen(tmp_path):
    r = _make_results(names=("A", "A very long tranche name for a mezzanine class", "Equity"))
    r.settings["deal"] = {"name": "x" * 200}  # a long value is cut at the width cap, not 200 wide
    wb = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))
    for ws in wb.worksheets:
        assert ws.freeze_panes == "B2", ws.title
        assert all(c.font.b for c in ws[1] if c.value is not None), ws.title
        assert not ws[2][0].font.b, ws.title
        for letter, dim in ws.column_dimensions.items():
            assert 6 <= dim.width <= 62, (ws.title, letter)
    s = wb["summary"]
    widths = {c.value: s.column_dimensions[c.column_letter].width for c in s[1]}
    long_name = "A very long tranche name for a mezzanine class"
    assert widths["name"] >= len(long_name)  # the first column fits the longest tranche name
    assert widths["balance"] >= len(f"{r.initial_balance:,.0f}")  # 100,000,000 shown whole
    settings = wb["run_settings"]
    assert settings.column_dimensions["B"].width == 60  # capped
    # the risk table under the summary has its own bold caption and header
    rows = {s.cell(row=i, column=1).value: i for i in range(1, s.max_row + 1)}
    assert s.cell(row=rows["measure"], column=1).font.b
    caption = rows["measure"] - 1
    assert "fraction of the initial pool balance" in s.cell(row=caption, column=1).value


def test_excel_simulations_sheet_has_one_row_per_scenario_with_its_numbers(tmp_path):
    from creditsim.states import SCENARIOS

    r = _make_results(n=50)
    ws = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))["simulations"]
    header = [c.value for c in ws[1]]
    assert header == ["sim", "scenario_id", "scenario", "portfolio_loss",
                      "A_loss", "A_irr", "B_loss", "B_irr", "Equity_loss", "Equity_irr"]
    assert ws.max_row == 1 + r.n_sims
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    for i, row in enumerate(rows):
        assert row[0] == i and row[1] == r.scenarios[i] and row[2] == SCENARIOS[r.scenarios[i]]
        # the float itself, not a display-rounded copy (openpyxl writes 16 significant digits)
        assert row[3] == pytest.approx(r.portfolio_losses[i], rel=1e-14)
        for j, t in enumerate(r.tranche_results):
            assert row[4 + 2 * j] == pytest.approx(t.losses[i], rel=1e-14, abs=1e-300)
            assert row[5 + 2 * j] == pytest.approx(t.irr[i], rel=1e-14)
    cells = ws[7]
    assert [c.number_format for c in cells] == ["#,##0", "#,##0", "General"] + ["0.00%"] * 7


def test_excel_simulations_sheet_shows_weights_of_a_weighted_run(tmp_path):
    w = np.linspace(1.0, 2.0, 20)
    r = _make_results(n=20, weights=w)
    ws = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))["simulations"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["sim", "scenario_id", "scenario", "weight", "portfolio_loss"]
    got = [row[3] for row in ws.iter_rows(min_row=2, values_only=True)]
    np.testing.assert_allclose(got, w / w.sum())


def test_excel_tranche_cashflows_are_weighted_means_per_month(tmp_path):
    n, t = 40, 6
    rng = np.random.default_rng(3)
    r = _make_results(n=n, t=t)
    for key in ("tranche_interest", "tranche_principal", "tranche_balance"):
        r.cashflows[key] = rng.uniform(0, 1e6, size=(n, t, 3))
    ws = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))["tranche_cashflows"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["month", "A_interest", "A_principal", "A_balance"] and len(header) == 1 + 9
    assert ws.max_row == 1 + t
    b_balance = [row[header.index("B_balance")] for row in ws.iter_rows(min_row=2, values_only=True)]
    np.testing.assert_allclose(b_balance, r.cashflows["tranche_balance"][:, :, 1].mean(axis=0))
    assert ws.cell(row=3, column=header.index("B_balance") + 1).number_format == "#,##0"
    assert ws.cell(row=3, column=1).number_format == "#,##0"
    # months are numbered 1..T after the cut-off, as the report's charts number them
    assert [row[0] for row in ws.iter_rows(min_row=2, values_only=True)] == list(range(1, t + 1))


def test_excel_without_kept_cashflows_has_no_tranche_cashflow_sheet(tmp_path):
    r = _make_results()
    r.cashflows.clear()
    wb = openpyxl.load_workbook(r.to_excel(tmp_path / "out.xlsx"))
    assert "tranche_cashflows" not in wb.sheetnames and "simulations" in wb.sheetnames
    assert [c.value for c in wb["pool_cashflows"][1]] == ["month", *POOL_CF_TYPES]


def test_cli_tables_fit_80_columns_and_blank_what_does_not_apply():
    from rich.console import Console

    from creditsim.cli.run import print_results

    r = _make_results(names=("Class A-1", "Class B", "Subordinated notes"))
    r.settings["horizon_months"] = 60
    con = Console(width=80, record=True)
    print_results(r, con)
    text = con.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "EL 60m" in text and "IRR med" in text and "IRR avg" in text and "over 60 months" in text
    header = next(line for line in text.splitlines() if line.startswith("tranche"))
    assert "…" not in header and "…" not in text.split("Class A-1")[1].splitlines()[0]
    pool = next(line for line in text.splitlines() if line.startswith("pool")).split()
    # pool row: balance, EL, CVaR only (PD / attachment / LGD / IRR do not apply)
    assert len(pool) == 4
    assert float(pool[2]) == pytest.approx(r.expected_loss * 100, abs=0.006)
    # 200 scenarios: no tail standard error at 99 % -> "–", never "0.000"
    se_line = next(line for line in text.splitlines() if line.strip().startswith("VaR 99% s.e."))
    assert "0.000" not in se_line and "–" in se_line


def test_tranche_cvar_is_blank_where_the_portfolio_tail_is_not_estimable():
    """Under 100 scenarios the portfolio table shows no CVaR 99 % (the "estimate" would be the sample maximum);
    the tranche table follows the same rule (helper-95's review: it printed 100.0 from 20 scenarios)."""
    from rich.console import Console

    from creditsim.cli.run import print_results

    for n, blank in ((20, True), (200, False)):
        con = Console(width=80, record=True)
        print_results(_make_results(n=n), con)
        text = con.export_text()
        lines = text.splitlines()
        top = next(i for i, line in enumerate(lines) if line.startswith("tranche") and "CVaR99" in line)
        rows = [line.split() for line in lines[top + 2:top + 6]]  # the header's rule, then pool, A, B, Equity
        assert [row[0] for row in rows] == ["pool", "A", "B", "Equity"]
        cvar = [row[3] if row[0] == "pool" else row[6] for row in rows]  # the CVaR99 column
        assert (all(c == "–" for c in cvar) if blank else all(c != "–" for c in cvar)), (n, rows)


def test_escape_excel_text_leaves_numbers_and_plain_text():
    assert escape_excel_text("-1") == "'-1"
    assert escape_excel_text(-1.0) == -1.0
    assert escape_excel_text("Class A") == "Class A"


def test_plot_writes_png(tmp_path):
    r = _make_results()
    fig = r.plot(tmp_path / "p.png")
    assert len(fig.axes) == 3
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_validate_shapes():
    with pytest.raises(DataError, match="cashflows"):
        SimulationResults(np.zeros(3), [], cashflows={"pool": np.zeros((2, 4, 7))})
    with pytest.raises(DataError, match="scenarios"):
        SimulationResults(np.zeros(3), [], scenarios=np.array([0, 1, 9]))


def test_settings_json_round_trip(tmp_path):
    r = _make_results()
    out = r.to_parquet(tmp_path / "x")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["seed"] == 7


def test_written_files_follow_the_umask_not_mkstemp_0600(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        r = _make_results()
        run = r.to_parquet(tmp_path / "run")
        xl = r.to_excel(tmp_path / "x.xlsx")
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.stat().st_mode) == 0o755
    assert stat.S_IMODE(xl.stat().st_mode) == 0o644


# ---------------------------------------------------------------- printing
def test_repr_is_a_short_summary_without_arrays():
    r = _make_results(n=5000, t=12)
    text = repr(r)
    assert str(r) == text
    lines = text.splitlines()
    assert len(lines) <= 14 and max(len(line) for line in lines) <= 110
    assert "[" not in text and "array(" not in text and "..." not in text  # no numpy output
    assert lines[0].startswith("SimulationResults: 5,000 scenarios x 12 months")
    assert f"EL {r.expected_loss * 100:.3f}%" in text
    assert f"VaR 99% {r.var_99 * 100:.3f}%" in text and f"CVaR 99% {r.cvar_99 * 100:.3f}%" in text
    a = r.tranche("A")
    row = next(line for line in lines if line.split()[:1] == ["A"])
    assert f"{a.expected_loss * 100:.3f}%" in row and f"{a.pd * 100:.3f}%" in row
    share = np.mean(r.scenarios == 2)
    assert f"severely_adverse {share:.1%} ({np.sum(r.scenarios == 2):,})" in text
    assert "array(" not in repr(a) and "\n" not in repr(a) and repr(a).startswith("TrancheResult('A'")


def test_repr_of_a_bare_result_has_no_horizon_or_tranches():
    r = SimulationResults(np.array([0.0, 0.1, 0.2]), [])
    text = repr(r)
    assert text.startswith("SimulationResults: 3 scenarios,") or text.startswith("SimulationResults: 3 scenarios\n")
    assert "tranche" not in text.split("kept")[0] and "kept arrays: none" in text
    assert r.scenario_mix() == {"baseline": 1.0}


def test_headline_var_is_blank_where_the_risk_table_is_too_few_scenarios():
    """Review finding: with 50 scenarios the risk table shows '-' for VaR/CVaR 99 % (fewer than one
    scenario beyond the level) while the printed summary and the report's headline showed the sample
    maximum; they now agree."""
    from creditsim.risk.report import build_report_html

    small = _make_results(n=50)
    assert not small.tail_estimable(0.99) and np.isnan(small.risk_table().loc["var_99", "all"])
    assert "VaR 99% - (too few scenarios)" in str(small)
    page = build_report_html(small)
    assert '<div class="v">–</div><div class="l">VaR 99%' in page
    large = _make_results(n=400)
    assert large.tail_estimable(0.99) and "too few scenarios" not in str(large)
