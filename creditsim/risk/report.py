"""Self-contained HTML report of a simulation run.

One file, no network: plotly.js is inlined once (~4.5 MB) and every chart is a plotly div with its data
embedded, so the page opens offline and in an air-gapped environment. Histograms are binned here
(numpy) rather than in the browser, which keeps the page small for 10^5 scenarios.

Sections: headline risk measures, summary table (portfolio + tranches), risk measures by scenario type,
tranche metrics by scenario, charts (loss distribution with VaR/CVaR, tranche expected loss by
scenario, tranche loss buckets (stacked probabilities on a linear axis, so tranches that never lose
are visible), mean pool cashflows by month, macro fan charts -- one panel per variable with one fan per
scenario type), run settings.

A small script at the end counts the rendered charts and writes the count into
``<body data-charts-rendered=N>`` so a headless browser test can check that plotly actually drew them.
"""

from __future__ import annotations

import html
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.risk import measures
from creditsim.fileio import atomic_write
from creditsim.risk.results import DEFAULT_EPSILON, SimulationResults
from creditsim.states import MACRO_VARS, SCENARIOS

__all__ = ["build_report_html", "write_report", "tranche_loss_buckets", "reverse_stress_html", "LOSS_BUCKETS", "FAN_VARS"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px 40px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:8px 0} th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left} thead th{background:#f4f4f4}
.cards{display:flex;gap:16px;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:150px}
.card .v{font-size:20px;font-weight:600} .card .l{font-size:11px;color:#666}
.chart{width:100%;max-width:1100px;height:420px} .muted{color:#777;font-size:12px}
"""

_PCT_COLS = {"attachment", "detachment", "pd", "expected_loss", "expected_loss_se", "lgd", "var_99",
             "cvar_99", "irr_mean", "irr_median"}


def _fmt_cell(col: str, v: object) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        if col in _PCT_COLS or col.startswith(("var_", "cvar_", "expected_loss")) or col in SCENARIOS or col == "all":
            return f"{v * 100:.3f}%"
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, index: bool = True, pct_rows: bool = False) -> str:
    """HTML table with escaped text. ``pct_rows``: format by row name (risk table) not column."""
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ([df.index.name or ""] if index else []) + cols)
    body = []
    for idx, row in df.iterrows():
        cells = [f"<td>{html.escape(str(idx))}</td>"] if index else []
        for c in cols:
            v = row[c]
            if pct_rows and str(idx) == "n_sims":
                cells.append(f"<td>{int(v):,}</td>")
            else:
                key = str(idx) if pct_rows else str(c)
                cells.append(f"<td>{_fmt_cell(key if pct_rows else c, v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figures(results: SimulationResults) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    figs: list[tuple[str, object]] = []
    w = measures.normalise_weights(results.weights, results.n_sims)
    x = results.portfolio_losses * 100
    lo, hi = float(x.min()), float(x.max())
    mass, edges = np.histogram(x, bins=60, range=(lo, hi if hi > lo else lo + 1e-9), weights=w)
    centers = (edges[:-1] + edges[1:]) / 2
    f = go.Figure(go.Bar(x=centers, y=mass, width=np.diff(edges), name="probability", marker_color="#4c72b0"))
    # labels at different heights/sides: VaR and CVaR are often only a bar or two apart
    for label, val, color, pos in (("EL", results.expected_loss * 100, "#55a868", "top right"),
                                   ("VaR 99%", results.var_99 * 100, "#dd8452", "top left"),
                                   ("CVaR 99%", results.cvar_99 * 100, "#c44e52", "bottom right")):
        f.add_vline(x=val, line_dash="dash", line_color=color, annotation_text=f"{label} {val:.2f}%",
                    annotation_position=pos)
    f.update_layout(title="Portfolio loss distribution", xaxis_title="loss, % of initial pool balance",
                    yaxis_title="probability", bargap=0)
    figs.append(("loss_distribution", f))

    if results.tranche_results:
        f = go.Figure()
        present = sorted(set(results.scenarios.tolist()))
        names = [t.name for t in results.tranche_results]
        f.add_trace(go.Bar(x=names, y=[t.expected_loss * 100 for t in results.tranche_results], name="all"))
        for sc in present:
            mask = results.scenarios == sc
            f.add_trace(go.Bar(x=names, y=[t.subset(mask).expected_loss * 100 for t in results.tranche_results],
                               name=SCENARIOS[sc]))
        f.update_layout(title="Tranche expected loss by scenario", yaxis_title="EL, % of tranche balance",
                        barmode="group")
        figs.append(("tranche_el", f))

        figs.append(("tranche_losses", _tranche_loss_buckets(results)))

    if "pool" in results.cashflows:
        pc = results.pool_cashflows_by_month()
        f = go.Figure()
        for k in ("interest", "scheduled_principal", "prepayment", "recovery"):
            f.add_trace(go.Scatter(x=pc["month"], y=pc[k], stackgroup="cash", name=k))
        f.add_trace(go.Scatter(x=pc["month"], y=pc["default_par"], name="default_par", line=dict(dash="dot")))
        f.update_layout(title="Mean pool cashflows by month", xaxis_title="month after cut-off",
                        yaxis_title="currency units")
        figs.append(("pool_cashflows", f))

    if results.macro_paths is not None:
        figs.append(("macro_fan", _macro_fans(results)))
    return figs


#: principal-loss buckets of the tranche loss chart, fractions of the note balance (lower edge exclusive)
LOSS_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("no loss", -np.inf, DEFAULT_EPSILON), ("0-5%", DEFAULT_EPSILON, 0.05), ("5-25%", 0.05, 0.25),
    ("25-50%", 0.25, 0.50), ("50-100%", 0.50, np.inf),
)
_BUCKET_COLORS = ("#9bc59d", "#f2d16b", "#f0a35e", "#e0694e", "#9e2a2b")
#: fan chart panels: variable, axis label
FAN_VARS: tuple[tuple[str, str], ...] = (
    ("unemployment_rate", "unemployment rate, %"), ("credit_spread_hy", "HY credit spread, %"),
    ("gdp_growth", "GDP growth (y/y), %"),
)
_SCENARIO_RGB = {"baseline": "76,114,176", "adverse": "221,132,82", "severely_adverse": "196,78,82",
                 "stagflation": "129,114,179"}


def tranche_loss_buckets(results: SimulationResults) -> pd.DataFrame:
    """Probability of each principal-loss bucket (:data:`LOSS_BUCKETS`) per tranche: rows tranches,
    columns bucket labels, rows sum to 1 (scenario weights applied)."""
    rows = {}
    for t in results.tranche_results:
        w = t._w()
        rows[t.name] = {label: float(w[(t.losses > lo) & (t.losses <= hi)].sum()) if np.isfinite(lo)
                        else float(w[t.losses <= hi].sum()) for label, lo, hi in LOSS_BUCKETS}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[b[0] for b in LOSS_BUCKETS])


def _tranche_loss_buckets(results: SimulationResults) -> object:
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


def _macro_fans(results: SimulationResults) -> object:
    """One panel per variable of :data:`FAN_VARS`; in each, a 5-95 % band and the median per scenario
    type present (overlaying variables on one axis, or pooling scenario types into one fan, hid how
    the scenarios differ)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    paths = results.macro_paths
    months = np.arange(paths.shape[1])
    f = make_subplots(rows=1, cols=len(FAN_VARS), subplot_titles=[lab for _, lab in FAN_VARS])
    for col, (var, label) in enumerate(FAN_VARS, start=1):
        j = MACRO_VARS.index(var)
        for sc in sorted(set(results.scenarios.tolist())):
            name = SCENARIOS[sc]
            rgb = _SCENARIO_RGB.get(name, "100,100,100")
            y = paths[results.scenarios == sc, :, j] * 100
            q = np.quantile(y, [0.05, 0.5, 0.95], axis=0)
            first = col == 1
            f.add_trace(go.Scatter(x=months, y=q[2], line=dict(width=0), showlegend=False, hoverinfo="skip",
                                   legendgroup=name), row=1, col=col)
            f.add_trace(go.Scatter(x=months, y=q[0], fill="tonexty", line=dict(width=0),
                                   fillcolor=f"rgba({rgb},0.18)", name=f"{name} 5-95%", legendgroup=name,
                                   showlegend=first), row=1, col=col)
            f.add_trace(go.Scatter(x=months, y=q[1], line=dict(color=f"rgb({rgb})", width=2),
                                   name=f"{name} median", legendgroup=name, showlegend=first), row=1, col=col)
        f.update_xaxes(title_text="month after cut-off", row=1, col=col)
        f.update_yaxes(title_text=label, row=1, col=col)
    f.update_layout(title="Macro paths by scenario type (median and 5-95% band)")
    return f


def build_report_html(results: SimulationResults, title: str | None = None) -> str:
    """Return the report as one self-contained HTML string."""
    from plotly.offline import get_plotlyjs

    title = title or str(results.settings.get("name") or "creditsim simulation report")
    se = results.standard_errors(0.99)
    cards = [
        ("Expected loss", results.expected_loss, se["expected_loss"]),
        ("VaR 99%", results.var_99, se["var"]),
        ("CVaR 99%", results.cvar_99, se["cvar"]),
    ]
    def _se(x: float) -> str:
        # NaN: fewer than 10 effective tail scenarios, no meaningful error bar (simulation.risk)
        return "MC s.e. – (too few tail scenarios)" if not np.isfinite(x) else f"MC s.e. {x * 100:.3f}%"

    cards_html = "".join(
        f'<div class="card"><div class="v">{v * 100:.3f}%</div><div class="l">{html.escape(n)} '
        f'({_se(s)})</div></div>' for n, v, s in cards
    )
    cards_html += f'<div class="card"><div class="v">{results.n_sims:,}</div><div class="l">scenarios</div></div>'
    summary = results.summary()
    risk_tab = results.risk_table()
    tranche_tab = results.tranche_table().set_index("tranche")
    settings = results.settings_table().set_index("setting")
    chart_divs = []
    for div_id, fig in _figures(results):
        chart_divs.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                      default_height="420px", config={"displaylogo": False}))
    n_charts = len(chart_divs)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body data-charts-expected="{n_charts}" data-charts-rendered="0">
<h1>{html.escape(title)}</h1>
<div class="muted">generated {stamp}; losses are fractions of the initial balance (pool or tranche);
VaR is the empirical quantile without interpolation, CVaR the Acerbi-Tasche expected shortfall.</div>
<h2>Headline</h2><div class="cards">{cards_html}</div>
<h2>Portfolio and tranches</h2>{_table(summary)}
<h2>Risk measures by scenario type</h2>{_table(risk_tab, pct_rows=True)}
<h2>Tranche metrics by scenario type</h2>{_table(tranche_tab)}
<h2>Charts</h2>{''.join(chart_divs)}
<h2>Run settings</h2>{_table(settings)}
<script>
window.addEventListener("load", function () {{
  var n = document.querySelectorAll(".js-plotly-plot .main-svg").length > 0
    ? Array.prototype.filter.call(document.querySelectorAll(".js-plotly-plot"),
        function (d) {{ return d.querySelector(".main-svg") !== null; }}).length : 0;
  document.body.setAttribute("data-charts-rendered", String(n));
}});
</script>
</body></html>
"""


def write_report(results: SimulationResults, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write :func:`build_report_html` to ``path`` atomically (:func:`creditsim.fileio.atomic_write`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_report_html(results, title)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".tmp.html")
    return path



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
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    summary = result.summary()
    summary["value"] = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in summary["value"]]
    path = (100 * result.path_table()).round(2)
    path.columns = [f"{a}: {b}" for a, b in path.columns]
    path = path.T
    path.columns = [f"month {m}" for m in path.columns]
    parts = [f"<h1>{html.escape(title)}</h1>",
             '<p class="muted">The most plausible macro path under the MacroVAE (from today\'s state) whose loss on the '
             "tranche reaches the threshold, re-priced by the hard-mode Monte Carlo engine "
             "(creditsim.risk.reverse_stress). Paths in percent.</p>",
             "<h2>Result</h2>", _table(summary),
             "<h2>Path</h2>", f'<img alt="found path" src="data:image/png;base64,{png}" style="max-width:1100px">',
             _table(path)]
    if result.single_variable is not None:
        parts += ["<h2>One variable alone</h2>", '<p class="muted">Smallest parallel shift (training sd) of the '
                  "generator's central path that breaks the target with the other variables held.</p>",
                  _table(result.single_variable)]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
