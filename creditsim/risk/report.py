"""HTML report of a simulation run, for people who open it in a browser, offline.

Sections: headline risk measures, summary table (portfolio + tranches), risk measures by scenario type,
tranche metrics by scenario, charts, run settings. Charts, each drawn only from arrays the result really
holds (a panel whose data the run did not keep is listed under "Not shown" with the reason, never drawn
from made-up numbers):

- loss distribution (histogram, EL / VaR 99 % / CVaR 99 % marked) and the tail view (exceedance
  probability ``P(loss > x)`` on a log axis, VaR 95 / 99 / 99.9 % and CVaR 99 % marked);
- loss timing: cumulative pool loss by month, mean and 5-95 % band, mean per scenario type
  (needs the pool cashflows);
- tranche expected loss by scenario type and tranche loss buckets;
- tranche balance fans (one panel per note, % of its initial balance) and the mean cumulative cash
  each tranche received, interest and principal (needs the tranche arrays of a ``keep_cashflows`` run);
- OC / IC test ratio fans, one panel per class with the test, trigger dashed (needs ``oc_ratio`` /
  ``ic_ratio`` arrays in ``results.cashflows``);
- mean pool cashflows by month;
- macro fans: all nine variables as small multiples, a band and median per scenario type.

Fans use the library's quantile (the empirical quantile without interpolation, scenario weights
applied), so a chart's band agrees with the risk tables. Histograms and curves are binned or thinned
here (numpy), which keeps the page small for 10^5 scenarios; plotly embeds the arrays as base64.

plotly.js (~4.6 MB) -- decision: :func:`write_report` writes it *once beside the report* as
``plotly-<version>.min.js`` and the page loads it with a relative ``<script src>``. An offline risk
team keeps each run in a directory: the report stays ~100 KB (it was 4.9 MB with the library inlined
in every page), several reports in one directory share one bundle, copying the directory keeps the
report working, and nothing is fetched from the network (no CDN, which an air-gapped desk cannot
reach). The version in the file name means a report never runs against a bundle it was not drawn for.
``plotly_js="inline"`` gives the old single self-contained file (to e-mail one page).

The page markup is Jinja2 templates, package data in ``creditsim/risk/templates`` (``base.html.j2``:
skeleton and stylesheet; ``report.html.j2``, ``compare.html.j2``, ``reverse_stress.html.j2``; the table
macro in ``macros.html.j2``). This module computes the numbers, formats them as text and draws the
figures; the templates escape every value (autoescape), so a tranche or run name is escaped exactly once,
and print unescaped only plotly's markup of our own figures and plotly.js itself.

A small script at the end counts the rendered charts and writes the count into
``<body data-charts-rendered=N>`` so a headless browser test can check that plotly actually drew them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from creditsim.risk import measures
from creditsim.fileio import atomic_write
from creditsim.risk.results import DEFAULT_EPSILON, SimulationResults
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, SCENARIOS

__all__ = ["build_report_html", "write_report", "tranche_loss_buckets", "reverse_stress_html", "LOSS_BUCKETS",
           "FAN_VARS", "plotly_bundle_name", "write_plotly_bundle", "human_label", "fan_quantiles",
           "exceedance_curve", "cumulative_pool_loss", "has_loss_timing"]

PlotlyJs = Literal["file", "inline"]

# ---------------------------------------------------------------------- labels
#: table columns and risk-table rows -> what a reader sees
_LABELS: dict[str, str] = {
    "name": "", "tranche": "Tranche", "scenario": "Scenario", "balance": "Balance", "attachment": "Attachment",
    "detachment": "Detachment", "pd": "PD", "expected_loss": "Expected loss", "expected_loss_se": "EL s.e.",
    "lgd": "LGD", "wal_years": "WAL (years)", "irr_mean": "IRR mean", "irr_median": "IRR median",
    "n_sims": "Scenarios", "all": "All scenarios", "portfolio": "Pool", "setting": "Setting", "value": "Value",
    "baseline": "Baseline", "adverse": "Adverse", "severely_adverse": "Severely adverse",
    "stagflation": "Stagflation",
    "interest": "Interest", "scheduled_principal": "Scheduled principal", "prepayment": "Prepayments",
    "recovery": "Recoveries", "default_par": "Defaulted par", "loss": "Loss",
}
_MEASURE_RE = re.compile(r"^(c?var)_(\d+(?:_\d+)?)(_se)?$")


def human_label(key: str) -> str:
    """Reader-facing label of a column, measure or scenario key: ``var_99_9_se`` -> ``VaR 99.9% s.e.``,
    ``severely_adverse`` -> ``Severely adverse``, ``wal_years`` -> ``WAL (years)``; an unknown key
    has its underscores replaced (``horizon_months`` -> ``Horizon months``)."""
    if key in _LABELS:
        return _LABELS[key]
    m = _MEASURE_RE.match(key)
    if m:
        kind = "VaR" if m.group(1) == "var" else "CVaR"
        return f"{kind} {m.group(2).replace('_', '.')}%" + (" s.e." if m.group(3) else "")
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


#: macro panels: variable, panel title, scale of the stored decimal to the unit shown
FAN_VARS: tuple[tuple[str, str, float], ...] = (
    ("gdp_growth", "GDP growth (y/y), %", 100.0),
    ("unemployment_rate", "Unemployment rate, %", 100.0),
    ("inflation_rate", "CPI inflation (y/y), %", 100.0),
    ("policy_rate", "Policy rate, %", 100.0),
    ("yield_10y", "10-year Treasury yield, %", 100.0),
    ("credit_spread_ig", "IG credit spread, bp", 1e4),
    ("credit_spread_hy", "HY credit spread, bp", 1e4),
    ("house_price_growth", "House price growth (y/y), %", 100.0),
    ("default_rate", "Default rate index, %", 100.0),
)
assert tuple(v for v, _, _ in FAN_VARS) == MACRO_VARS  # every macro variable, in the API order

_SCENARIO_RGB = {"baseline": "76,114,176", "adverse": "221,132,82", "severely_adverse": "196,78,82",
                 "stagflation": "129,114,179"}
#: a lean plotly template: the default one is ~8 KB of JSON repeated in every chart
_TEMPLATE: dict[str, Any] = {"layout": {
    "font": {"family": "-apple-system,Segoe UI,Helvetica,Arial,sans-serif", "size": 12, "color": "#222"},
    "paper_bgcolor": "white", "plot_bgcolor": "white", "hovermode": "closest",
    "colorway": ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"],
    "xaxis": {"gridcolor": "#eee", "zerolinecolor": "#ccc", "linecolor": "#999", "automargin": True},
    "yaxis": {"gridcolor": "#eee", "zerolinecolor": "#ccc", "linecolor": "#999", "automargin": True},
    "title": {"x": 0.02, "font": {"size": 15}}, "legend": {"font": {"size": 11}},
}}


# ---------------------------------------------------------------------- tables
_PCT_COLS = {"attachment", "detachment", "pd", "expected_loss", "expected_loss_se", "lgd", "var_99",
             "cvar_99", "irr_mean", "irr_median"}


def _fmt_cell(col: str, v: object) -> str:
    """A cell's text (not escaped: the template escapes it)."""
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        if col in _PCT_COLS or col.startswith(("var_", "cvar_", "expected_loss")) or col in SCENARIOS or col == "all":
            return f"{v * 100:.3f}%"
        if col == "wal_years":
            return f"{v:.2f}"
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(v)


class _Table(NamedTuple):
    """A table as text for the ``table`` macro of ``templates/macros.html.j2``: header cells and rows of
    cells, formatted here and escaped by the template (once: nothing here is HTML)."""

    head: list[str]
    rows: list[list[str]]


def _table(df: pd.DataFrame, index: bool = True, pct_rows: bool = False, human: bool = False,
           human_values: tuple[str, ...] = ()) -> _Table:
    """A frame's cells as text. ``pct_rows``: format by row name (risk table) not column.
    ``human``: show column names and the row names of a ``pct_rows`` table as :func:`human_label`
    (the numbers are formatted by the raw keys first); ``human_values``: columns whose values are
    keys too (the scenario column of the tranche table). Tranche names and settings keys are the
    user's own text and are shown as given."""
    cols = list(df.columns)
    show = human_label if human else str
    head = [show(str(c)) if c else "" for c in ([df.index.name or ""] if index else []) + cols]
    rows = []
    for idx, row in df.iterrows():
        cells = [show(str(idx)) if human and pct_rows else str(idx)] if index else []
        for c in cols:
            v = row[c]
            if pct_rows and str(idx) == "n_sims":
                cells.append(f"{int(v):,}")
            elif c in human_values and isinstance(v, str):
                cells.append(human_label(v))
            else:
                cells.append(_fmt_cell(str(idx) if pct_rows else str(c), v))
        rows.append(cells)
    return _Table(head, rows)


# ---------------------------------------------------------------------- chart helpers
def fan_quantiles(y: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``qs`` (decimals, 0.05 = 5 %) over the scenarios of ``y`` ``(S, T)``, month by month,
    with scenario weights ``w`` ``(S,)`` summing to 1: ``(len(qs), T)`` in ``y``'s units, the bands of
    every fan of the report (the library's empirical quantile, see :func:`_fan`)."""
    return _fan(y, w, qs)


def _fan(y: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``qs`` over scenarios of ``y`` ``(S, T)`` with scenario weights ``w`` ``(S,)``:
    ``(len(qs), T)``, the empirical quantile ``inf{x : F(x) >= q}`` of
    :func:`creditsim.risk.measures.value_at_risk` (same cumulative weights, same tolerance), so a fan's
    band agrees with the risk tables. Non-finite values (an OC ratio of a repaid class is +inf) are
    left out month by month; a month with none left is NaN, a gap in the chart."""
    finite = np.isfinite(y)
    if not finite.all():
        out = np.full((len(qs), y.shape[1]), np.nan)
        for t in range(y.shape[1]):
            ok = finite[:, t]
            if ok.any() and w[ok].sum() > 0:
                out[:, t] = _fan(y[ok, t:t + 1], w[ok] / w[ok].sum(), qs)[:, 0]
        return out
    n = y.shape[0]
    if np.all(w == w[0]):
        # equal weights (the usual, drawn mix): one sort per month and one CDF for all of them
        ys = np.sort(y, axis=0)
        cum = np.cumsum(np.full(n, 1.0 / n))[:, None]
    else:
        order = np.argsort(y, axis=0, kind="stable")
        ys = np.take_along_axis(y, order, axis=0)
        cum = np.cumsum(w[order], axis=0)
    cols = np.arange(y.shape[1])
    out = np.empty((len(qs), y.shape[1]))
    for i, q in enumerate(qs):
        # first sorted index whose cumulative weight reaches q (measures._quantile's rule)
        idx = np.minimum(np.sum(cum < q - measures._CDF_TOL, axis=0), n - 1)
        out[i] = ys[np.broadcast_to(idx, (y.shape[1],)), cols]
    return out


def _f32(y: np.ndarray) -> np.ndarray:
    """Chart data as float32: plotly embeds arrays as base64, and 7 significant digits are more than a
    chart can show, so the page carries half the bytes (the tables keep the float64 numbers)."""
    return np.asarray(y, dtype=np.float32)


def _months(n: int, first: int = 1) -> np.ndarray:
    """Month axis ``first .. first + n - 1`` as int16 (two bytes a point in the page)."""
    return np.arange(first, first + n, dtype=np.int16)


def _band(f: Any, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, rgb: str, name: str, group: str,
          show: bool, opacity: float = 0.18, **where: Any) -> None:
    """A filled band between ``lo`` and ``hi`` (upper edge drawn first, invisible; lower fills to it)."""
    import plotly.graph_objects as go

    f.add_trace(go.Scatter(x=x, y=_f32(hi), line=dict(width=0), showlegend=False, hoverinfo="skip",
                           legendgroup=group), **where)
    f.add_trace(go.Scatter(x=x, y=_f32(lo), fill="tonexty", line=dict(width=0), fillcolor=f"rgba({rgb},{opacity})",
                           name=name, legendgroup=group, showlegend=show, hoverinfo="skip"), **where)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _present(results: SimulationResults) -> list[int]:
    return sorted(set(results.scenarios.tolist()))


def _debt_tranches(results: SimulationResults) -> list[tuple[int, Any]]:
    """(position, tranche) of the notes: the tranches that are not equity, in priority order."""
    return [(j, t) for j, t in enumerate(results.tranche_results) if not t.equity]


# ---------------------------------------------------------------------- charts
def _loss_histogram(results: SimulationResults, w: np.ndarray) -> Any:
    import plotly.graph_objects as go

    x = results.portfolio_losses * 100
    lo, hi = float(x.min()), float(x.max())
    mass, edges = np.histogram(x, bins=60, range=(lo, hi if hi > lo else lo + 1e-9), weights=w)
    centers = (edges[:-1] + edges[1:]) / 2
    f = go.Figure(go.Bar(x=centers, y=mass * 100, width=np.diff(edges), name="share of scenarios",
                         marker_color="#4c72b0", hovertemplate="loss %{x:.2f}%: %{y:.2f}% of scenarios<extra></extra>"))
    # labels at different heights/sides: VaR and CVaR are often only a bar or two apart
    for label, val, color, pos in (("EL", results.expected_loss * 100, "#55a868", "top right"),
                                   ("VaR 99%", results.var_99 * 100, "#dd8452", "top left"),
                                   ("CVaR 99%", results.cvar_99 * 100, "#c44e52", "bottom right")):
        f.add_vline(x=val, line_dash="dash", line_color=color, annotation_text=f"{label} {val:.2f}%",
                    annotation_position=pos)
    f.update_layout(title="Portfolio loss distribution", xaxis_title="pool loss over the horizon, % of initial balance",
                    yaxis_title="% of scenarios", bargap=0)
    return f


def exceedance_curve(results: SimulationResults, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The pool's loss-exceedance curve ``(x, p)``: ``p[i] = P(loss > x[i])``, both fractions (x of the
    initial pool balance), x ascending, scenario weights applied; drawn as a step (``hv``) line. At the
    largest loss the exceedance is 0 (nothing to draw on a log axis), so the curve's last point is the
    largest loss at the level of the step before it: the line runs out to the worst scenario (a
    VaR / CVaR mark never lies past the curve's end). Every point of the top 1,000 scenarios is kept,
    the body is thinned to ``max_points`` in all."""
    w = measures.normalise_weights(results.weights, results.n_sims)
    order = np.argsort(results.portfolio_losses, kind="stable")
    xs = results.portfolio_losses[order]
    exceed = 1.0 - np.cumsum(w[order])  # P(L > xs[i]), weights summing to 1
    keep = exceed > 1e-12
    if keep.any() and not keep[-1]:
        keep[-1], exceed = True, np.where(np.arange(xs.size) == xs.size - 1, exceed[keep][-1], exceed)
    xs, exceed = xs[keep], exceed[keep]
    if xs.size > max_points:
        tail = 1000
        body = np.linspace(0, xs.size - tail - 1, max_points - tail).astype(np.int64)
        idx = np.unique(np.concatenate([body, np.arange(xs.size - tail, xs.size)]))
        xs, exceed = xs[idx], exceed[idx]
    return xs, exceed


def _exceedance(results: SimulationResults, name: str, color: str) -> Any:
    """Plotly trace of ``P(loss > x)`` (percent) against the pool loss x (percent), :func:`exceedance_curve`."""
    import plotly.graph_objects as go

    xs, exceed = exceedance_curve(results)
    return go.Scatter(x=_f32(xs * 100), y=_f32(exceed * 100), mode="lines", line=dict(shape="hv", color=color),
                      name=name, hovertemplate="loss > %{x:.2f}%: %{y:.3g}% of scenarios<extra></extra>")


def _loss_tail(results: SimulationResults, w: np.ndarray) -> Any:
    """Exceedance curve ``P(loss > x)`` on a log axis: the tail a histogram squeezes into its last bars."""
    import plotly.graph_objects as go

    f = go.Figure(_exceedance(results, "P(loss > x)", "#4c72b0"))
    marks = [("VaR 95%", results.var(0.95), "#f2a65a", "top left"),
             ("VaR 99%", results.var_99, "#dd8452", "top left"),
             ("CVaR 99%", results.cvar_99, "#c44e52", "bottom right")]
    n_eff = measures.effective_sample_size(results.weights, results.n_sims)
    if n_eff * 0.001 >= 1.0:  # VaR 99.9 % only with at least one expected scenario beyond it
        marks.insert(2, ("VaR 99.9%", results.var(0.999), "#9e2a2b", "top right"))
    for label, val, color, pos in marks:
        f.add_vline(x=val * 100, line_dash="dash", line_color=color, annotation_text=f"{label} {val * 100:.2f}%",
                    annotation_position=pos)
    f.add_hline(y=1.0, line_dash="dot", line_color="#999")  # 1 % of scenarios: where VaR 99 % sits
    f.update_layout(title="Loss tail: probability that the pool loss exceeds x",
                    xaxis_title="pool loss over the horizon, % of initial balance",
                    yaxis_title="% of scenarios with a larger loss (log scale)", yaxis_type="log", showlegend=False)
    return f


def cumulative_pool_loss(results: SimulationResults) -> np.ndarray:
    """``(n_sims, T)`` cumulative pool credit loss at the end of each month after the cut-off, fraction of
    the initial pool balance (the ``loss`` column of the pool cashflows, summed); its last month is the
    portfolio loss of the tables. Needs the pool cashflows and a positive initial balance (the caller
    checks: :func:`has_loss_timing`)."""
    loss = results.cashflows["pool"][:, :, POOL_CF_TYPES.index("loss")]
    return np.cumsum(loss, axis=1) / results.initial_balance


def has_loss_timing(results: SimulationResults) -> bool:
    """Whether the run kept what :func:`cumulative_pool_loss` needs: pool cashflows by month and a
    positive initial pool balance."""
    return "pool" in results.cashflows and bool(np.isfinite(results.initial_balance)) and results.initial_balance > 0


def _loss_timing(results: SimulationResults, w: np.ndarray) -> Any:
    """Cumulative pool loss by month, % of the initial balance: weighted mean, 5-95 % band and the mean
    of each scenario type. The last month is the portfolio loss of the tables."""
    import plotly.graph_objects as go

    cum = cumulative_pool_loss(results) * 100  # (S, T) % of initial pool balance
    months = _months(cum.shape[1])
    q = _fan(cum, w, (0.05, 0.95))
    f = go.Figure()
    _band(f, months, q[0], q[1], "76,114,176", "all scenarios, 5-95%", "all", True)
    f.add_trace(go.Scatter(x=months, y=_f32(w @ cum), name="all scenarios, mean", line=dict(color="#1f3b73", width=3)))
    if len(_present(results)) > 1:
        for sc in _present(results):
            mask = results.scenarios == sc
            wm = w[mask] / w[mask].sum()
            name = SCENARIOS[sc]
            f.add_trace(go.Scatter(x=months, y=_f32(wm @ cum[mask]), name=f"{human_label(name)}, mean",
                                   line=dict(color=f"rgb({_SCENARIO_RGB.get(name, '100,100,100')})", dash="dot")))
    f.update_layout(title="Loss timing: cumulative pool loss by month",
                    xaxis_title="month after cut-off", yaxis_title="cumulative loss, % of initial pool balance")
    return f


def _tranche_el(results: SimulationResults) -> Any:
    import plotly.graph_objects as go

    f = go.Figure()
    names = [t.name for t in results.tranche_results]
    f.add_trace(go.Bar(x=names, y=[t.expected_loss * 100 for t in results.tranche_results], name="All scenarios",
                       marker_color="#555"))
    for sc in _present(results):
        mask = results.scenarios == sc
        # the scenario colours of the fans and the loss-timing chart
        f.add_trace(go.Bar(x=names, y=[t.subset(mask).expected_loss * 100 for t in results.tranche_results],
                           name=human_label(SCENARIOS[sc]),
                           marker_color=f"rgb({_SCENARIO_RGB.get(SCENARIOS[sc], '100,100,100')})"))
    f.update_layout(title="Tranche expected loss by scenario type", yaxis_title="expected loss, % of tranche balance",
                    barmode="group")
    return f


#: principal-loss buckets of the tranche loss chart, fractions of the note balance (lower edge exclusive)
LOSS_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("no loss", -np.inf, DEFAULT_EPSILON), ("0-5%", DEFAULT_EPSILON, 0.05), ("5-25%", 0.05, 0.25),
    ("25-50%", 0.25, 0.50), ("50-100%", 0.50, np.inf),
)
_BUCKET_COLORS = ("#9bc59d", "#f2d16b", "#f0a35e", "#e0694e", "#9e2a2b")


def tranche_loss_buckets(results: SimulationResults) -> pd.DataFrame:
    """Probability of each principal-loss bucket (:data:`LOSS_BUCKETS`) per tranche: rows tranches,
    columns bucket labels, rows sum to 1 (scenario weights applied)."""
    rows = {}
    for t in results.tranche_results:
        w = t._w()
        rows[t.name] = {label: float(w[(t.losses > lo) & (t.losses <= hi)].sum()) if np.isfinite(lo)
                        else float(w[t.losses <= hi].sum()) for label, lo, hi in LOSS_BUCKETS}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[b[0] for b in LOSS_BUCKETS])


def _tranche_loss_buckets(results: SimulationResults) -> Any:
    """Stacked bars of the loss-bucket probabilities, linear axis: a tranche that never loses shows
    one full "no loss" bar (a log-scale density line had nothing to draw for it), and every bucket's
    probability is read off directly."""
    import plotly.graph_objects as go

    table = tranche_loss_buckets(results)
    f = go.Figure()
    for (label, _, _), color in zip(LOSS_BUCKETS, _BUCKET_COLORS):
        f.add_trace(go.Bar(x=[str(n) for n in table.index], y=table[label] * 100, name=label, marker_color=color,
                           hovertemplate="%{x}: %{y:.2f}% of scenarios<extra>" + label + "</extra>"))
    f.update_layout(title="Tranche principal loss: share of scenarios by loss bucket (% of note balance)",
                    yaxis_title="% of scenarios", yaxis_range=[0, 100], barmode="stack",
                    legend_title_text="loss bucket")
    return f


def _tranche_balance_fans(results: SimulationResults, w: np.ndarray) -> Any:
    """One panel per note: end-of-month balance (PIK included) as % of its initial balance, median,
    25-75 % and 5-95 % bands. Equity is left out: its "balance" is a constant notional."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    bal = results.cashflows["tranche_balance"]
    notes = _debt_tranches(results)
    rows, cols = _grid(len(notes), 4)
    f = make_subplots(rows=rows, cols=cols, subplot_titles=[str(t.name) for _, t in notes],
                      horizontal_spacing=0.06, vertical_spacing=0.18)
    months = _months(bal.shape[1])
    for k, (j, t) in enumerate(notes):
        where = dict(row=k // cols + 1, col=k % cols + 1)
        y = bal[:, :, j] / t.balance * 100 if t.balance > 0 else np.full(bal.shape[:2], np.nan)
        q = _fan(y, w, (0.05, 0.25, 0.5, 0.75, 0.95))
        _band(f, months, q[0], q[4], "76,114,176", "5-95%", "outer", k == 0, **where)
        _band(f, months, q[1], q[3], "76,114,176", "25-75%", "inner", k == 0, opacity=0.35, **where)
        f.add_trace(go.Scatter(x=months, y=_f32(q[2]), name="median", legendgroup="median", showlegend=k == 0,
                               line=dict(color="#1f3b73", width=2)), **where)
        f.update_yaxes(title_text="% of initial balance" if k % cols == 0 else None, rangemode="tozero", **where)
        f.update_xaxes(title_text="month after cut-off" if k // cols == rows - 1 else None, **where)
    f.update_layout(title="Tranche balance over time (end of month, incl. capitalised interest)",
                    height=max(420, 320 * rows))
    return f


def _tranche_cashflows(results: SimulationResults) -> Any:
    """One panel per tranche: mean cumulative interest and principal received by month (stacked), %
    of the tranche's initial balance (:meth:`SimulationResults.tranche_cashflows_by_month`, summed).
    Cumulative because the monthly means are dwarfed by the liquidation at the horizon on most notes;
    the monthly numbers are in the workbook's ``tranche_cashflows`` sheet."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    table = results.tranche_cashflows_by_month()
    tranches = results.tranche_results
    rows, cols = _grid(len(tranches), 4)
    f = make_subplots(rows=rows, cols=cols, subplot_titles=[str(t.name) for t in tranches],
                      horizontal_spacing=0.06, vertical_spacing=0.18)
    months = _months(len(table))
    for k, t in enumerate(tranches):
        where = dict(row=k // cols + 1, col=k % cols + 1)
        for kind, color in (("interest", "#55a868"), ("principal", "#4c72b0")):
            col = f"{t.name}_{kind}"
            if col in table and t.balance > 0:
                y = np.cumsum(table[col].to_numpy()) / t.balance * 100
                f.add_trace(go.Scatter(x=months, y=_f32(y), stackgroup=f"t{k}", name=kind, legendgroup=kind,
                                       showlegend=k == 0, line=dict(color=color, width=1)), **where)
        f.update_yaxes(title_text="% of initial balance" if k % cols == 0 else None, **where)
        f.update_xaxes(title_text="month after cut-off" if k // cols == rows - 1 else None, **where)
    f.update_layout(title="Tranche cash received: mean cumulative interest and principal by month",
                    height=max(420, 320 * rows))
    return f


def _coverage_triggers(results: SimulationResults, key: str) -> dict[str, float]:
    """Tranche name -> the OC / IC trigger written in the deal of the run (``settings["deal"]``), for
    tranches that state one; empty when the run did not record its deal."""
    deal = results.settings.get("deal") if isinstance(results.settings, dict) else None
    out: dict[str, float] = {}
    if isinstance(deal, dict):
        for tr in deal.get("tranches") or []:
            if isinstance(tr, dict) and tr.get(f"{key}_trigger") is not None:
                out[str(tr.get("name"))] = float(tr[f"{key}_trigger"])
    return out


def _coverage_fans(results: SimulationResults, w: np.ndarray) -> Any:
    """OC and IC ratios (rows) per class with the test (columns): median and 5-95 % band over the
    scenarios, the class's trigger dashed. Arrays ``cashflows["oc_ratio"]`` / ``["ic_ratio"]`` are
    ``(S, T, n_notes)`` in note priority order, NaN for a class without the test, +inf once a class
    is repaid (left out of the band; a gap means most scenarios have repaid it)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    notes = _debt_tranches(results)
    tests = [k for k in ("oc", "ic") if f"{k}_ratio" in results.cashflows]
    panels = []  # (test, note position, tranche)
    for key in tests:
        arr = results.cashflows[f"{key}_ratio"]
        for k, (_, t) in enumerate(notes):
            if k < arr.shape[2] and np.isfinite(arr[:, :, k]).any():
                panels.append((key, k, t))
    rows, cols = _grid(len(panels), 4)
    f = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.06, vertical_spacing=0.18,
                      subplot_titles=[f"{key.upper()} test, {t.name}" for key, _, t in panels])
    first = True
    for p, (key, k, t) in enumerate(panels):
        where = dict(row=p // cols + 1, col=p % cols + 1)
        arr = results.cashflows[f"{key}_ratio"][:, :, k] * 100  # ratio in % of the class's par / interest due
        months = _months(arr.shape[1])
        q = _fan(arr, w, (0.05, 0.5, 0.95))
        _band(f, months, q[0], q[2], "76,114,176", "5-95%", "band", first, **where)
        f.add_trace(go.Scatter(x=months, y=_f32(q[1]), name="median", legendgroup="median", showlegend=first,
                               line=dict(color="#1f3b73", width=2)), **where)
        trigger = _coverage_triggers(results, key).get(str(t.name))
        if trigger is not None:
            f.add_trace(go.Scatter(x=months[[0, -1]], y=[trigger * 100] * 2, mode="lines", name="trigger",
                                   legendgroup="trigger", showlegend=first,
                                   line=dict(color="#c44e52", dash="dash", width=1.5)), **where)
        first = False
        f.update_yaxes(title_text="ratio, %" if p % cols == 0 else None, range=_coverage_range(q, trigger), **where)
        f.update_xaxes(title_text="month after cut-off" if p // cols == rows - 1 else None, **where)
    f.update_layout(title="Coverage tests: OC and IC ratios by month (median and 5-95% band, trigger dashed; "
                          "axis cut at twice the trigger)",
                    height=max(420, 320 * rows))
    return f


#: panels of the reinvestment-criteria chart: (column of ``cashflows["reinvestment_criteria"]``, title, unit
#: scale, y title, limit field of the deal); column 0 is the blocked cash, shown cumulated
_CRITERIA_PANELS = ((1, "Weighted-average spread (WAS)", 100.0, "% p.a.", "min_was"),
                    (2, "Weighted-average rating factor (WARF)", 1.0, "rating factor", "max_warf"),
                    (3, "Weighted-average life (WAL)", 1.0, "years", "max_wal"))


def _criteria_limit(deal: dict[str, Any], field: str, months: int) -> np.ndarray | None:
    """The limit line ``(months,)`` of one collateral quality test from the run's deal settings (None when
    the deal has no such test); the WAL limit steps down as :func:`creditsim.deal.waterfall.wal_limit`."""
    value = deal.get(field)
    if value is None:
        return None
    if field != "max_wal":
        return np.full(months, float(value))
    from creditsim.deal.waterfall import wal_limit

    floor = deal.get("max_wal_floor")
    return np.array([wal_limit(float(value), None if floor is None else float(floor), t) for t in range(months)])


def _criteria_fans(results: SimulationResults, w: np.ndarray) -> Any:
    """Reinvestment criteria (issue 15): the cash the collateral quality tests kept from reinvestment,
    cumulated as % of the initial pool, and each test's metric (median and 5-95 % band over the
    scenarios) against its limit, dashed. ``cashflows["reinvestment_criteria"]`` is ``(S, T, 4)``:
    blocked cash (currency units), WAS (annual decimal), WARF, WAL (years), NaN where a test is off."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    arr = results.cashflows["reinvestment_criteria"]
    deal = results.settings.get("deal") if isinstance(results.settings, dict) else None
    deal = deal if isinstance(deal, dict) else {}
    panels = [p for p in _CRITERIA_PANELS if np.isfinite(arr[:, :, p[0]]).any()]
    titles = ["Reinvestment blocked, cumulative"] + [p[1] for p in panels]
    rows, cols = _grid(len(titles), 4)
    f = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.07, vertical_spacing=0.18, subplot_titles=titles)
    months = _months(arr.shape[1])
    blocked = np.cumsum(arr[:, :, 0], axis=1) / results.initial_balance * 100
    series = [(blocked, "% of initial pool", None)]
    for c, _, scale, unit, field in panels:
        limit = _criteria_limit(deal, field, arr.shape[1])
        series.append((arr[:, :, c] * scale, unit, None if limit is None else limit * scale))
    for p, (y, unit, limit) in enumerate(series):
        where = dict(row=p // cols + 1, col=p % cols + 1)
        q = _fan(y, w, (0.05, 0.5, 0.95))
        _band(f, months, q[0], q[2], "76,114,176", "5-95%", "band", p == 0, **where)
        f.add_trace(go.Scatter(x=months, y=_f32(q[1]), name="median", legendgroup="median", showlegend=p == 0,
                               line=dict(color="#1f3b73", width=2)), **where)
        if limit is not None:
            f.add_trace(go.Scatter(x=months, y=_f32(limit), mode="lines", name="limit", legendgroup="limit",
                                   showlegend=p == 1, line=dict(color="#c44e52", dash="dash", width=1.5)), **where)
        # blocked cash is never negative: a deal whose tests never bind shows a flat line on 0, not on -1..1
        f.update_yaxes(title_text=unit, rangemode="nonnegative" if p == 0 else None, **where)
        f.update_xaxes(title_text="month after cut-off" if p // cols == rows - 1 else None, **where)
    f.update_layout(title="Reinvestment criteria: cash kept from reinvestment and the collateral quality tests "
                          "(median and 5-95% band, limit dashed)", height=max(420, 320 * rows))
    return f


def _coverage_range(q: np.ndarray, trigger: float | None) -> list[float] | None:
    """y range (ratio in %) of one coverage panel. As a class is repaid its ratio runs to thousands of
    percent (a small denominator), which would flatten the months that matter onto the axis: the top is
    cut at twice the trigger (or twice the first month's median without one), unless the band stays
    below that anyway."""
    finite = q[np.isfinite(q)]
    if finite.size == 0:
        return None
    median = q[len(q) // 2]
    if trigger is not None:
        ref: float | None = trigger * 100
    elif np.isfinite(median).any():
        ref = float(median[np.isfinite(median)][0])
    else:
        ref = None
    lo, hi = float(finite.min()), float(finite.max())
    if trigger is not None:
        lo = min(lo, trigger * 100)  # the trigger line stays in view
    if ref is not None and hi > 2 * ref > lo:
        hi = 2 * ref
    pad = 0.05 * (hi - lo if hi > lo else max(abs(hi), 1.0))
    return [max(0.0, lo - pad), hi + pad]


def _pool_cashflows(results: SimulationResults) -> Any:
    import plotly.graph_objects as go

    pc = results.pool_cashflows_by_month()
    months = _months(len(pc))
    f = go.Figure()
    for k in ("interest", "scheduled_principal", "prepayment", "recovery"):
        f.add_trace(go.Scatter(x=months, y=_f32(pc[k].to_numpy()), stackgroup="cash", name=human_label(k)))
    f.add_trace(go.Scatter(x=months, y=_f32(pc["default_par"].to_numpy()), name=human_label("default_par"),
                           line=dict(dash="dot")))
    f.update_layout(title="Mean pool cashflows by month", xaxis_title="month after cut-off",
                    yaxis_title="currency units")
    return f


def _macro_fans(results: SimulationResults, w: np.ndarray | None = None) -> Any:
    """Small multiples, one panel per macro variable (all nine, :data:`FAN_VARS`); in each, a 5-95 %
    band and the median per scenario type present (pooling scenario types into one fan hid how they
    differ, e.g. stagflation's inflation)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    paths = results.macro_paths
    w = measures.normalise_weights(results.weights, results.n_sims) if w is None else w
    months = _months(paths.shape[1], first=0)
    rows, cols = _grid(len(FAN_VARS), 3)
    f = make_subplots(rows=rows, cols=cols, subplot_titles=[lab for _, lab, _ in FAN_VARS],
                      horizontal_spacing=0.07, vertical_spacing=0.09)
    for p, (var, _, scale) in enumerate(FAN_VARS):
        where = dict(row=p // cols + 1, col=p % cols + 1)
        j = MACRO_VARS.index(var)
        for sc in _present(results):
            name = SCENARIOS[sc]
            rgb = _SCENARIO_RGB.get(name, "100,100,100")
            mask = results.scenarios == sc
            q = _fan(paths[mask, :, j] * scale, w[mask] / w[mask].sum(), (0.05, 0.5, 0.95))
            label = human_label(name)
            _band(f, months, q[0], q[2], rgb, f"{label} 5-95%", name, p == 0, **where)
            f.add_trace(go.Scatter(x=months, y=_f32(q[1]), line=dict(color=f"rgb({rgb})", width=2),
                                   name=f"{label} median", legendgroup=name, showlegend=p == 0), **where)
        if p // cols == rows - 1:
            f.update_xaxes(title_text="month after cut-off", **where)
    f.update_layout(title="Macro paths by scenario type (median and 5-95% band)", height=300 * rows)
    return f


def _charts(results: SimulationResults) -> tuple[list[tuple[str, Any]], list[str]]:
    """``([(div id, figure)], [notes on panels not drawn])``: only data the result holds is drawn."""
    figs: list[tuple[str, Any]] = []
    notes: list[str] = []
    w = measures.normalise_weights(results.weights, results.n_sims)
    figs.append(("loss_distribution", _loss_histogram(results, w)))
    figs.append(("loss_tail", _loss_tail(results, w)))
    if has_loss_timing(results):
        figs.append(("loss_timing", _loss_timing(results, w)))
    else:
        notes.append("Loss timing: the run kept no pool cashflows by month (keep_cashflows=False) "
                     "or no initial pool balance.")
    if results.tranche_results:
        figs.append(("tranche_el", _tranche_el(results)))
        figs.append(("tranche_losses", _tranche_loss_buckets(results)))
        n = len(results.tranche_results)
        if "tranche_balance" in results.cashflows and results.cashflows["tranche_balance"].shape[2] == n \
                and _debt_tranches(results):
            figs.append(("tranche_balance", _tranche_balance_fans(results, w)))
        else:
            notes.append("Tranche balance fans: the run kept no tranche balances by month (run with "
                         "keep_cashflows=True, the default of simulate).")
        if any(k in results.cashflows and results.cashflows[k].shape[2] == n
               for k in ("tranche_interest", "tranche_principal")):
            figs.append(("tranche_cashflows", _tranche_cashflows(results)))
        else:
            notes.append("Tranche cashflows: the run kept no tranche interest or principal by month.")
        has_tests = any(k in results.cashflows and np.isfinite(results.cashflows[k]).any()
                        for k in ("oc_ratio", "ic_ratio"))
        kept = any(k in results.cashflows for k in ("oc_ratio", "ic_ratio"))
        if has_tests and _debt_tranches(results):
            figs.append(("coverage_tests", _coverage_fans(results, w)))
        elif kept:
            notes.append("OC / IC test ratios: the deal has no coverage tests.")
        else:
            notes.append("OC / IC test ratios: this run did not keep the coverage-test ratios by month "
                         "(the result holds no oc_ratio / ic_ratio arrays).")
        if "reinvestment_criteria" in results.cashflows and has_loss_timing(results):
            figs.append(("reinvestment_criteria", _criteria_fans(results, w)))
    else:
        notes.append("Tranche charts: the result holds no tranches.")
    if "pool" in results.cashflows:
        figs.append(("pool_cashflows", _pool_cashflows(results)))
    else:
        notes.append("Mean pool cashflows: the run kept no pool cashflows by month.")
    if results.macro_paths is not None:
        figs.append(("macro_fan", _macro_fans(results, w)))
    else:
        notes.append("Macro fans: the run kept no macro paths.")
    for _, fig in figs:
        fig.update_layout(template=_TEMPLATE)
    return figs, notes


def _figures(results: SimulationResults) -> list[tuple[str, Any]]:
    """The report's charts as ``(div id, plotly figure)``, in page order."""
    return _charts(results)[0]


# ---------------------------------------------------------------------- page
def plotly_bundle_name() -> str:
    """File name of the plotly.js bundle a report loads: ``plotly-<plotly.js version>.min.js``."""
    from plotly.offline.offline import get_plotlyjs_version

    return f"plotly-{get_plotlyjs_version()}.min.js"


@functools.cache
def _templates() -> Any:
    """The Jinja2 environment of the pages (``creditsim/risk/templates``, package data), made once.

    Loaded through the package (``PackageLoader``), so an installed wheel finds its own templates
    whatever the working directory. ``autoescape``: every value a template prints is escaped exactly
    once, there; Python passes text, and only plotly's markup of our own figures is printed ``|safe``.
    ``StrictUndefined``: a name missing from a page's context is an error, not an empty string."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("creditsim.risk", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _render(template: str, **context: Any) -> str:
    return _templates().get_template(template).render(**context)


def _plotly(plotly_js: PlotlyJs) -> dict[str, str | None]:
    """How a page gets plotly.js: ``inline`` (the library's code, for the page's own ``<script>``) or
    ``bundle`` (the file name beside the page, which also shows the "charts missing" notice until it loads:
    a page e-mailed without its bundle says why its charts are empty)."""
    if plotly_js == "inline":
        from plotly.offline import get_plotlyjs

        return {"inline": get_plotlyjs(), "bundle": None}
    return {"inline": None, "bundle": plotly_bundle_name()}


def _chart(fig: Any, div_id: str, height: str) -> str:
    """plotly's ``<div>`` + ``<script>`` of one of our figures (the templates print it unescaped)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_height=height,
                       config={"displaylogo": False})


def comparison_html(cmp: Any, a: SimulationResults, b: SimulationResults, plotly_js: PlotlyJs = "inline") -> str:
    """A page comparing two runs (:class:`creditsim.risk.compare.RunComparison` of ``a`` and ``b``): the
    settings that differ, the loss table with changes and z-scores, expected loss by scenario type and
    the two loss-exceedance curves on one log axis. ``plotly_js`` as in :func:`build_report_html`."""
    import plotly.graph_objects as go

    fig = go.Figure([_exceedance(a, cmp.labels[0], "#4c72b0"), _exceedance(b, cmp.labels[1], "#dd8452")])
    fig.update_layout(title="Loss tail of each run: probability that the pool loss exceeds x",
                      xaxis_title="pool loss over the horizon, % of initial balance",
                      yaxis_title="% of scenarios with a larger loss (log scale)", yaxis_type="log")
    cols = [c for c in cmp.table.columns if c.startswith(("expected_loss", "var_99", "cvar_99", "pd_", "wal_"))]
    shown = cmp.table[cols].astype(object)
    for c in cols:  # formatted here: the cell formatter keys on plain metric names, not on _a / _b / _z
        fmt = ((lambda v: f"{v:+.1f}") if c.endswith("_z") else (lambda v: f"{v:.2f}") if c.startswith("wal_")
               else (lambda v: f"{100 * v:.3f}%"))
        shown[c] = [fmt(v) if np.isfinite(v) else "–" for v in cmp.table[c]]
    shown.columns = [_compare_header(c, cmp.labels) for c in cols]
    by_scenario = cmp.by_scenario.astype(object).apply(lambda col: [f"{100 * v:.3f}%" if np.isfinite(v) else "–"
                                                                    for v in col])
    runs = {"a": cmp.labels[0], "b": cmp.labels[1]}
    return _render("compare.html.j2", labels=cmp.labels, pairing=cmp.pairing, paired=cmp.paired,
                   moved=cmp.significant(), plotly=_plotly(plotly_js), chart=_chart(fig, "exceedance", "460px"),
                   settings=None if cmp.settings.empty else _table(cmp.settings.rename(columns=runs)),
                   changes=_table(shown), by_scenario=_table(by_scenario.rename(columns=runs)))


def _compare_header(column: str, labels: tuple[str, str]) -> str:
    """``var_99_a`` -> ``VaR 99% (q3)``; ``expected_loss_change_z`` -> ``Expected loss: z of the change``."""
    for suffix, text in (("_change_se", "s.e. of the change"), ("_change_z", "z of the change"),
                         ("_change", "change"), ("_a", labels[0]), ("_b", labels[1])):
        if column.endswith(suffix):
            return f"{human_label(column[: -len(suffix)])} ({text})"
    return human_label(column)


def build_report_html(results: SimulationResults, title: str | None = None, plotly_js: PlotlyJs = "inline") -> str:
    """Return the report page as an HTML string.

    Args:
        results: the run.
        title: page title (default: ``settings["name"]`` or a generic one).
        plotly_js: ``"inline"`` (default here: a string has no sibling file, so the page carries
            plotly.js itself, ~4.7 MB) or ``"file"`` (the page loads :func:`plotly_bundle_name` from
            its own directory; :func:`write_report` writes that file).
    """
    if plotly_js not in ("inline", "file"):
        raise ValueError(f"plotly_js must be 'inline' or 'file', got {plotly_js!r}")
    title = title or str(results.settings.get("name") or "creditsim simulation report")
    figs, notes = _charts(results)
    months = results.n_months
    return _render(
        "report.html.j2", title=title, plotly=_plotly(plotly_js), cards=_headline_cards(results), notes=notes,
        stamp=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        span=f" over {months} months" if months is not None else "",
        mix=", ".join(f"{human_label(name)} {share:.1%}" for name, share in results.scenario_mix().items()),
        summary=_table(results.summary().rename(index={"portfolio": "Pool"}), human=True),
        risk=_table(results.risk_table(), pct_rows=True, human=True),
        tranches=_table(results.tranche_table().set_index("tranche"), human=True, human_values=("scenario",)),
        settings=_table(results.settings_table().set_index("setting"), human=True),
        charts=[_chart(fig, div_id, f"{fig.layout.height or 420}px") for div_id, fig in figs],
    )


def _headline_cards(results: SimulationResults) -> list[tuple[str, str]]:
    """The headline cards as (value, label): EL, VaR and CVaR 99 % with their Monte Carlo standard
    errors, the number of scenarios and of months simulated."""
    se = results.standard_errors(0.99)
    tail = results.tail_estimable(0.99)  # as the risk table: no VaR/CVaR 99 % from under 100 scenarios
    cards = []
    for name, v, s in (("Expected loss", results.expected_loss, se["expected_loss"]),
                       ("VaR 99%", results.var_99, se["var"]), ("CVaR 99%", results.cvar_99, se["cvar"])):
        value = "–" if name != "Expected loss" and not tail else f"{v * 100:.3f}%"
        # NaN: fewer than 10 effective tail scenarios, no meaningful error bar (simulation.risk)
        err = "MC s.e. – (too few tail scenarios)" if not np.isfinite(s) else f"MC s.e. {s * 100:.3f}%"
        cards.append((value, f"{name} ({err})"))
    cards.append((f"{results.n_sims:,}", "scenarios"))
    if results.n_months is not None:
        cards.append((str(results.n_months), "months simulated"))
    return cards


def write_report(results: SimulationResults, path: str | os.PathLike, title: str | None = None,
                 plotly_js: PlotlyJs = "file") -> Path:
    """Write the report to ``path``; with ``plotly_js="file"`` (default) also the plotly.js bundle
    :func:`plotly_bundle_name` beside it, once (see the module docstring for why).

    Both files are written atomically (:func:`creditsim.fileio.atomic_write`), the bundle first, so
    the page never exists without the script it loads. An existing bundle with the same bytes is kept
    (ten reports in one directory share one copy); one with other bytes (a truncated copy) is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_report_html(results, title, plotly_js=plotly_js)
    if plotly_js == "file":
        write_plotly_bundle(path.parent)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".tmp.html")
    return path


def write_plotly_bundle(directory: str | os.PathLike) -> Path:
    """Write plotly.js as ``directory / plotly_bundle_name()`` unless that file already holds the same
    bytes; return its path."""
    from plotly.offline import get_plotlyjs

    data = get_plotlyjs().encode("utf-8")
    target = Path(directory) / plotly_bundle_name()
    if target.is_file() and target.stat().st_size == len(data):
        if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest():
            return target
    return atomic_write(target, lambda tmp: tmp.write_bytes(data), suffix=".tmp.js")


def reverse_stress_html(result: Any, title: str | None = None, figure: Any = None) -> str:
    """A self-contained HTML section for a :class:`~creditsim.risk.reverse_stress.ReverseStressResult`:
    headline numbers, the found path against the Fed severely adverse path, the single-variable shifts
    and the chart (embedded PNG; ``figure``: the result's already drawn :meth:`plot`, else drawn here)."""
    import base64
    import io

    title = title or f"Reverse stress: tranche {result.tranche}, principal loss {result.threshold:.2%}"
    fig = result.plot() if figure is None else figure
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    summary = result.summary()
    summary["value"] = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in summary["value"]]
    path = (100 * result.path_table()).round(2)
    path.columns = [f"{a}: {b}" for a, b in path.columns]
    path = path.T
    path.columns = [f"month {m}" for m in path.columns]
    single = result.single_variable
    return _render("reverse_stress.html.j2", title=title, png=base64.b64encode(buf.getvalue()).decode("ascii"),
                   summary=_table(summary), path=_table(path), single_variable=None if single is None else _table(single))
