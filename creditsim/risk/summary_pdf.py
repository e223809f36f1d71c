"""One-page PDF summary of a simulation run, for a risk committee: :func:`write_summary_pdf`.

One A4 landscape page, drawn with matplotlib (a bare :class:`~matplotlib.figure.Figure`, no pyplot, so
nothing is left in pyplot's global state and no window ever opens):

- headline: deal, tape, cut-off, simulations and horizon, seed, macro source, engine, date of the run
  (all from ``results.settings``; "not recorded" where the run did not record one), the realised scenario
  mix and the pool's EL / VaR 99 % / CVaR 99 %;
- one table, a row for the pool and one per tranche (:func:`summary_rows`): balance,
  attachment-detachment, EL, VaR 99 %, CVaR 99 %, PD, LGD, WAL, IRR median and mean from
  :meth:`SimulationResults.summary` (VaR / CVaR are "–" where the HTML report and
  :meth:`SimulationResults.risk_table` leave them out: fewer than one effective scenario beyond 99 %,
  :meth:`SimulationResults.tail_estimable`), then, when the run holds more than one scenario type, EL by
  scenario type (pool from :meth:`SimulationResults.risk_table`, tranches from
  :meth:`SimulationResults.tranche_table`) and a row of scenario counts; a run without tranches shows the
  pool row and says so;
- the loss tail: ``P(pool loss > x)`` on a log axis (:func:`creditsim.risk.report.exceedance_curve`),
  EL, VaR 99 % and CVaR 99 % marked;
- loss timing: cumulative pool loss by year after the cut-off, median and 5-95 % band
  (:func:`creditsim.risk.report.cumulative_pool_loss`, :func:`creditsim.risk.report.fan_quantiles`).

Every number is one the library already computes (the same functions as the HTML report and the
workbook); this module only lays them out. Units on the page: pool losses in % of the pool's par at the
cut-off, tranche losses in % of the note's balance, WAL in years, IRR in % a year.

The same run gives the same bytes: the page carries no timestamp of its own (the date shown is the run's),
the PDF has no CreationDate, and the matplotlib settings the page depends on are fixed while it is drawn
(the user's style and rcParams do not change it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from creditsim.errors import ConfigError
from creditsim.fileio import atomic_write, check_output_target, fault_point
from creditsim.risk import measures
from creditsim.risk.report import (
    cumulative_pool_loss, exceedance_curve, fan_quantiles, has_loss_timing, human_label,
)
from creditsim.risk.results import SimulationResults
from creditsim.states import SCENARIOS

__all__ = ["write_summary_pdf", "summary_figure", "summary_rows", "headline_lines", "format_percent",
           "A4_LANDSCAPE_INCHES"]

#: page size, inches (297 x 210 mm)
A4_LANDSCAPE_INCHES: tuple[float, float] = (11.69, 8.27)

#: matplotlib settings the page depends on, fixed while it is drawn and saved. pdf.fonttype 3: text is
#: embedded as a subset font whose codes are the characters (searchable); svg.hashsalt fixes the ids of
#: an SVG of the same figure. text.parse_math off: names are the user's text ("US$ 300m"), never mathtext.
_RC: dict[str, Any] = {
    "text.parse_math": False, "pdf.fonttype": 3, "pdf.compression": 6, "svg.hashsalt": "creditsim-summary", "font.family": "DejaVu Sans",
    "font.size": 8, "axes.titlesize": 9.5, "axes.titleweight": "bold", "axes.titlelocation": "left",
    "axes.labelsize": 8, "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "legend.fontsize": 7.5,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#888888", "axes.linewidth": 0.7,
    "grid.color": "#e6e6e6", "grid.linewidth": 0.6, "legend.frameon": False,
}
_INK, _MUTED, _RULE, _STRIPE = "#1a1a1a", "#5f6368", "#9aa0a6", "#f3f5f8"
_BLUE, _DARK_BLUE, _GREEN, _ORANGE, _RED = "#4c72b0", "#1f3b73", "#3f8f55", "#dd8452", "#c44e52"

_MARGIN = 0.035  # left / right page margin, fraction of the page width
_ROW_PT = 13.5  # table row height at full size, points
_HEADER_ROWS = 4.4  # the table's title, group labels and two-line column labels, in rows
_MAX_NAME = 20  # characters of a tranche name shown in the tables


# ---------------------------------------------------------------------- formatting
def format_percent(v: float, digits: int = 2) -> str:
    """A fraction as the page shows it: ``0.0366 -> "3.66%"``; "" for NaN (a number that does not
    apply); a non-zero value that would round to zero is ``"<0.01%"`` (``">-0.01%"``), so a tiny loss
    is never shown as none."""
    if not np.isfinite(v):
        return ""
    step = 10.0 ** -digits
    if v != 0 and abs(v * 100) < step / 2:
        return f"<{step:.{digits}f}%" if v > 0 else f">-{step:.{digits}f}%"
    return f"{v * 100:.{digits}f}%"


def _money(x: float) -> str:
    """Currency units, compact: 5.18bn, 776.5m, 12,345; "" for NaN."""
    if not np.isfinite(x):
        return ""
    return f"{x / 1e9:.2f}bn" if abs(x) >= 1e9 else f"{x / 1e6:.1f}m" if abs(x) >= 1e6 else f"{x:,.0f}"


def _short(name: object, limit: int = _MAX_NAME) -> str:
    text = str(name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _settings(results: SimulationResults) -> dict[str, Any]:
    return results.settings if isinstance(results.settings, dict) else {}


def _file_name(value: object) -> str:
    """A path setting as its file name (the directory is noise on a page); other values as text."""
    text = str(value)
    return Path(text).name if ("/" in text or "\\" in text) else text


def headline_lines(results: SimulationResults) -> list[str]:
    """The page's headline under the title, one string a line: what was run (deal, tape, cut-off, pool
    par), how (simulations, horizon, seed, macro source, engine, date of the run), the realised scenario
    mix and the pool's headline loss numbers (% of pool par). A setting the run did not record reads
    "not recorded"."""
    s = _settings(results)
    missing = "not recorded"
    deal = _short(s.get("name") or missing, 48) + (f" ({_short(_file_name(s['deal_file']), 36)})"
                                                    if s.get("deal_file") else "")
    tape = _short(_file_name(s["tape"]), 40) if s.get("tape") else missing
    if s.get("n_loans") is not None:
        tape += f" ({int(s['n_loans']):,} loans)"
    cutoff = str(s["cutoff"])[:7] if s.get("cutoff") else missing
    months = results.n_months
    span = f" over {months} months ({months / 12:g} years)" if months else ""
    macro = _short(_file_name(s["macro"]), 40) if s.get("macro") else missing
    start = (s.get("macro_start") or {}).get("source") if isinstance(s.get("macro_start"), dict) else None
    created = str(s["created"]).replace("T", " ").replace("Z", "")[:16] + " UTC" if s.get("created") else missing
    weighted = ", weighted" if results.weights is not None else ""
    mix = "   ·   ".join(f"{human_label(k)} {v:.1%}" for k, v in results.scenario_mix().items())
    tail = results.tail_estimable(0.99)
    el_se = results.standard_errors(0.99)["expected_loss"]
    pool = (f"Pool loss{span}, % of pool par:   EL {format_percent(results.expected_loss)} "
            f"(Monte Carlo s.e. {format_percent(el_se, 3) or '–'})   ·   "
            f"VaR 99% {format_percent(results.var_99) if tail else '–'}   ·   "
            f"CVaR 99% {format_percent(results.cvar_99) if tail else '–'}")
    par = _money(results.initial_balance) or missing
    return [
        f"Deal: {deal}   ·   Loan tape: {tape}   ·   Cut-off: {cutoff}   ·   Pool par: {par}",
        f"{results.n_sims:,} simulations{span}{weighted}   ·   Seed: {s.get('seed', missing)}   ·   Macro: {macro}"
        + (f" (start: {start})" if start else "") + f"   ·   Engine: {s.get('engine', missing)}   ·   Run: {created}",
        f"Scenario mix: {mix}",
        pool,
    ]


# ---------------------------------------------------------------------- tables
@dataclass(frozen=True)
class _Column:
    header: str  # one or two lines ("\n")
    width: float  # inches at the full font size
    align: str = "right"
    group: str = ""  # label spanning the adjacent columns of the same group


def _edges(columns: Sequence[_Column], axes_width_in: float) -> tuple[np.ndarray, float]:
    """Column edges in axes fractions and the font scale: the natural widths (inches) if they fit the
    axes, else all shrunk by the same factor (the font with them)."""
    widths = np.array([c.width for c in columns])
    scale = min(1.0, axes_width_in / widths.sum())
    return np.concatenate([[0.0], np.cumsum(widths * scale)]) / axes_width_in, scale


def _draw_header(ax: Any, columns: Sequence[_Column], edges: np.ndarray, y: float, h: float, size: float) -> None:
    """Group labels (over a thin rule spanning their columns) and the column labels, bottom-aligned on
    the rule at ``y``."""
    pad = 0.004
    start = 0
    for k in range(1, len(columns) + 1):
        if k == len(columns) or columns[k].group != columns[start].group:
            if columns[start].group:
                x0, x1 = edges[start] + pad, edges[k] - pad
                ax.text((x0 + x1) / 2, y + 2.15 * h, columns[start].group, fontsize=size, ha="center",
                        va="bottom", color=_INK, weight="bold")
                ax.plot([x0, x1], [y + 2.0 * h] * 2, color=_RULE, lw=0.6)
            start = k
    for c, x0, x1 in zip(columns, edges[:-1], edges[1:]):
        ax.text(x0 + pad if c.align == "left" else x1 - pad, y + 0.3 * h, c.header, fontsize=size, ha=c.align,
                va="bottom", color=_MUTED, weight="bold", linespacing=1.05)


def _draw_table(ax: Any, title: str, columns: Sequence[_Column], rows: Sequence[Sequence[str]],
                styles: Sequence[str], note: str | None = None) -> None:
    """A plain table in ``ax`` (axes coordinates 0..1, axis off): bold title, group labels, two-line
    column labels over a rule, striped rows (``styles``: "bold", "normal" or "muted" per row, a rule
    under a bold row), ``note`` in grey below. Rows and font shrink so that any number of rows fits."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig = ax.figure
    box = ax.get_position()
    height_pt = box.height * fig.get_figheight() * 72
    edges, scale = _edges(columns, box.width * fig.get_figwidth())
    row_pt = min(_ROW_PT, height_pt / (len(rows) + _HEADER_ROWS + (1.3 if note else 0)))  # rows, header, note
    size = min(8.0, row_pt * 0.6) * scale
    h = row_pt / height_pt  # one row, axes fraction
    ax.text(0, 1, title, fontsize=9.5, weight="bold", va="top", color=_INK)
    y = 1 - _HEADER_ROWS * h
    _draw_header(ax, columns, edges, y, h, size)
    ax.plot([0, edges[-1]], [y, y], color=_RULE, lw=0.8)
    pad = 0.004
    for i, (row, style) in enumerate(zip(rows, styles)):
        if i % 2 == 1:
            ax.fill_between([0, edges[-1]], y - h, y, color=_STRIPE, lw=0)
        for cell, c, x0, x1 in zip(row, columns, edges[:-1], edges[1:]):
            ax.text(x0 + pad if c.align == "left" else x1 - pad, y - h / 2, cell, fontsize=size, ha=c.align,
                    va="center", color=_MUTED if style == "muted" else _INK,
                    weight="bold" if style == "bold" else "normal")
        y -= h
        if style == "bold" and i < len(rows) - 1:
            ax.plot([0, edges[-1]], [y, y], color=_RULE, lw=0.5)
    ax.plot([0, edges[-1]], [y, y], color=_RULE, lw=0.8)
    if note:
        ax.text(0, y - 0.4 * h, note, fontsize=size, va="top", color=_MUTED, style="italic")


def _scenario_keys(results: SimulationResults) -> list[str]:
    """The scenario types of the by-scenario columns: those present, when there are at least two."""
    present = [SCENARIOS[i] for i in sorted(set(results.scenarios.tolist()))]
    return present if len(present) > 1 else []


def _columns(results: SimulationResults) -> list[_Column]:
    """The table's columns, in the order of :func:`summary_rows` (widths in inches, at 8 pt)."""
    months = results.n_months
    loss = f"Loss over {months} months" if months else "Loss over the horizon"
    life = "Life and return"
    cols = [_Column("", 1.3, "left"), _Column("Balance", 0.62), _Column("Attachment –\ndetachment", 0.84),
            _Column("EL", 0.68, group=loss), _Column("VaR\n99%", 0.68, group=loss),
            _Column("CVaR\n99%", 0.68, group=loss), _Column("PD", 0.62, group=loss), _Column("LGD", 0.62, group=loss),
            _Column("WAL\n(years)", 0.56, group=life), _Column("IRR\nmedian", 0.62, group=life),
            _Column("IRR\nmean", 0.62, group=life)]
    labels = {"severely_adverse": "Severely\nadverse"}
    cols += [_Column(labels.get(k, human_label(k)), 0.78, group="EL by scenario type")
             for k in _scenario_keys(results)]
    return cols


def _tranche_el_by_scenario(results: SimulationResults, keys: list[str]) -> dict[str, list[str]]:
    """Tranche name -> its expected loss in each scenario type ``keys``, formatted
    (:meth:`SimulationResults.tranche_table`)."""
    if not keys or not results.tranche_results:
        return {}
    table = results.tranche_table()
    out = {}
    for t in results.tranche_results:
        sub = table[table["tranche"] == t.name].drop_duplicates("scenario").set_index("scenario")
        out[t.name] = [format_percent(sub.loc[k, "expected_loss"]) for k in keys]
    return out


def summary_rows(results: SimulationResults) -> tuple[list[list[str]], list[str]]:
    """The page's table as text, ``(rows, styles)``: the pool, then each tranche
    (:meth:`SimulationResults.summary`), then, when the run holds several scenario types, the number
    of scenarios of each. Losses are % of the row's own par (pool par / note balance); VaR / CVaR 99 %
    are "–" where the tail cannot be estimated (as :meth:`SimulationResults.risk_table`), numbers that do
    not apply (the pool's PD, LGD, WAL, IRR) are blank. Columns as the page: name, balance,
    attachment-detachment, EL, VaR 99 %, CVaR 99 %, PD, LGD, WAL (years), IRR median, IRR mean, then EL
    by scenario type (pool from :meth:`SimulationResults.risk_table`)."""
    tail = results.tail_estimable(0.99)
    keys = _scenario_keys(results)
    risk = results.risk_table()
    by_scenario = _tranche_el_by_scenario(results, keys)
    rows, styles = [], []
    for name, r in results.summary().iterrows():
        pool = name == "portfolio"
        span = "" if pool or not (np.isfinite(r["attachment"]) and np.isfinite(r["detachment"])) \
            else f"{r['attachment'] * 100:.4g} – {r['detachment'] * 100:.4g}%"
        rows.append([
            "Pool" if pool else _short(name), _money(r["balance"]), span, format_percent(r["expected_loss"]),
            format_percent(r["var_99"]) if tail else "–", format_percent(r["cvar_99"]) if tail else "–",
            format_percent(r["pd"]), format_percent(r["lgd"]),
            "" if not np.isfinite(r["wal_years"]) else f"{r['wal_years']:.2f}",
            format_percent(r["irr_median"], 1), format_percent(r["irr_mean"], 1),
            *([format_percent(risk.loc["expected_loss", k]) for k in keys] if pool else by_scenario.get(name, [])),
        ])
        styles.append("bold" if pool else "normal")
    if keys:
        rows.append(["Scenarios", "", "", f"{results.n_sims:,}", *[""] * 7,
                     *(f"{int(risk.loc['n_sims', k]):,}" for k in keys)])
        styles.append("muted")
    return rows, styles


def _table_note(results: SimulationResults) -> str | None:
    """The line under the table saying what it lacks: tranches, a breakdown by scenario type."""
    notes = []
    if not results.tranche_results:
        notes.append("This run holds no tranche results: the pool only.")
    if not _scenario_keys(results):
        notes.append(f"Every scenario is of one type ({human_label(SCENARIOS[int(results.scenarios[0])])}): "
                     "no breakdown by scenario type.")
    return "  ".join(notes) or None


# ---------------------------------------------------------------------- charts
def _percent_axis(value: float, _: Any) -> str:
    return f"{value:g}%"


def _legend_above(ax: Any, ncol: int) -> None:
    """The legend in one row between the title and the plot: it never hides a curve, wherever the
    data fall."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=ncol, borderaxespad=0.25, handlelength=2.0,
              columnspacing=1.6)


def _unavailable(ax: Any, title: str, why: str) -> None:
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    for k, line in enumerate(why.split("\n")):  # one Text a line: see _no_ligatures
        ax.text(0.5, 0.53 - 0.06 * k, line, ha="center", va="center", transform=ax.transAxes, color=_MUTED, fontsize=8)


def _draw_tail(ax: Any, results: SimulationResults) -> None:
    """Exceedance curve ``P(loss > x)`` (% of scenarios, log axis) against the pool loss x (% of pool par)."""
    from matplotlib.ticker import FuncFormatter

    title = "Loss tail: probability that the pool loss exceeds x"
    xs, p = exceedance_curve(results)
    if xs.size == 0:
        _unavailable(ax, title, "Every scenario has the same pool loss: no tail to draw.")
        return
    ax.step(xs * 100, p * 100, where="post", color=_BLUE, lw=1.4)
    ax.set_yscale("log")
    marks = [("EL", results.expected_loss, _GREEN, ":")]
    if results.tail_estimable(0.99):
        marks += [("VaR 99%", results.var_99, _ORANGE, "--"), ("CVaR 99%", results.cvar_99, _RED, "--")]
    for label, value, color, style in marks:
        ax.axvline(value * 100, color=color, ls=style, lw=1.2, label=f"{label} {format_percent(value)}")
    ax.axhline(1.0, color=_RULE, ls=":", lw=0.8)
    ax.set_ylim(max(float(p.min()) * 100 * 0.6, 1e-4), 160)
    right = max(float(xs.max()), *(v for _, v, _, _ in marks)) * 100  # CVaR can lie beyond the last step
    left = float(xs.min()) * 100
    pad = 0.03 * (right - left) if right > left else 1.0
    ax.set_xlim(left - pad, right + pad)
    ax.yaxis.set_major_formatter(FuncFormatter(_percent_axis))
    ax.xaxis.set_major_formatter(FuncFormatter(_percent_axis))
    ax.grid(True, which="major")
    ax.set_title(title, pad=17)
    ax.set_xlabel("Pool loss over the horizon, % of pool par")
    ax.set_ylabel("Scenarios with a larger loss (log scale)")
    _legend_above(ax, len(marks))
    if not results.tail_estimable(0.99):
        ax.text(1.0, 1.01, "VaR / CVaR 99% not shown: under 100 effective scenarios", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color=_MUTED)


def _draw_timing(ax: Any, results: SimulationResults) -> None:
    """Cumulative pool loss by year after the cut-off (% of pool par): median and 5-95 % band."""
    from matplotlib.ticker import FuncFormatter

    title = "Loss timing: cumulative pool loss after the cut-off"
    if not has_loss_timing(results):
        _unavailable(ax, title, "The run kept no pool cashflows by month (or no pool par):\nno loss timing to draw.")
        return
    cum = cumulative_pool_loss(results) * 100
    w = measures.normalise_weights(results.weights, results.n_sims)
    q = fan_quantiles(cum, w, (0.05, 0.5, 0.95))
    years = np.arange(1, cum.shape[1] + 1) / 12
    end = f"{years[-1]:g} years"
    ax.plot(years, q[1], color=_DARK_BLUE, lw=1.8, label=f"median: {q[1, -1]:.2f}% at {end}")
    ax.fill_between(years, q[0], q[2], color=_BLUE, alpha=0.22, lw=0,
                    label=f"5–95% of scenarios: {q[0, -1]:.2f}–{q[2, -1]:.2f}% at {end}")
    ax.set_xlim(0, years[-1])
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(_percent_axis))
    ax.grid(True)
    ax.set_title(title, pad=17)
    ax.set_xlabel("Years after the cut-off")
    ax.set_ylabel("Cumulative pool loss, % of pool par")
    _legend_above(ax, 2)


# ---------------------------------------------------------------------- page
_FOOTNOTE = (
    "Losses are credit losses cumulated over the simulation horizon; a tranche's losses are principal losses, % of "
    "its note balance. VaR 99%: the empirical 99% quantile of the loss (no interpolation).\n"
    "CVaR 99%: the expected loss beyond it (Acerbi–Tasche). PD: probability of any principal loss; LGD = EL / PD. "
    "WAL: weighted average life of the principal received, mean over scenarios. Monte Carlo s.e.: the sampling "
    "error of the pool EL.\n"
    "IRR: % a year, median and mean over scenarios (a scenario that receives nothing counts as -100%). "
    "A dash for VaR / CVaR: fewer than 100 effective scenarios, no 99% tail estimate."
)


@contextmanager
def _page_style() -> Iterator[None]:
    """matplotlib's defaults plus :data:`_RC` while the page is drawn and saved, restored afterwards."""
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        yield


def _check_results(results: object, title: object) -> None:
    if not isinstance(results, SimulationResults):
        raise ConfigError(f"summary PDF: expected a SimulationResults, got {type(results).__name__}")
    if title is not None and not isinstance(title, str):
        raise ConfigError(f"summary PDF: title must be text, got {type(title).__name__}")


def _page_title(results: SimulationResults, title: str | None) -> str:
    text = title or str(_settings(results).get("name") or "creditsim simulation run")
    return _short(" ".join(text.split()), 60)  # 16 pt bold: 60 characters leave room for the label on the right


def summary_figure(results: SimulationResults, *, title: str | None = None) -> Any:
    """The summary page as a matplotlib :class:`~matplotlib.figure.Figure`, A4 landscape
    (:data:`A4_LANDSCAPE_INCHES`); see the module docstring for what it shows. ``title``: the page title
    (default: the deal name of the run). Raises :class:`ConfigError` for a ``results`` that is not a
    :class:`SimulationResults`."""
    from matplotlib.figure import Figure

    _check_results(results, title)
    rows, styles = summary_rows(results)
    note = _table_note(results)
    with _page_style():
        fig = Figure(figsize=A4_LANDSCAPE_INCHES)
        fig.text(0.035, 0.955, _page_title(results, title), fontsize=16, weight="bold", va="top", color=_INK)
        fig.text(0.965, 0.955, "Simulation summary", fontsize=9, va="top", ha="right", color=_MUTED)
        for k, line in enumerate(headline_lines(results)):
            fig.text(0.035, 0.912 - k * 0.021, line, fontsize=7.8, va="top",
                     color=_INK if k == 3 else _MUTED, weight="bold" if k == 3 else "normal")
        fig.add_artist(_rule(fig, 0.826))
        table, tail, timing = _layout(len(rows) + (1.3 if note else 0))
        _draw_table(fig.add_axes(table), "Pool and tranches: losses in % of par (pool par for the pool, note "
                    "balance for a tranche)", _columns(results), rows, styles, note=note)
        _draw_tail(fig.add_axes(tail), results)
        _draw_timing(fig.add_axes(timing), results)
        fig.add_artist(_rule(fig, 0.077))
        for k, line in enumerate(_FOOTNOTE.split("\n")):
            fig.text(0.035, 0.068 - k * 0.0155, line, fontsize=6.3, va="top", color=_MUTED)
        version = (_settings(results).get("versions") or {}).get("creditsim")
        fig.text(0.965, 0.955 - 0.021, f"run with creditsim {version}" if version else "", fontsize=7,
                 va="top", ha="right", color=_MUTED)
        _no_ligatures(fig)
    return fig


def _no_ligatures(fig: Any) -> None:
    """Turn ligatures off in every text of ``fig``: "Cut-off" stays six characters a reader can search
    the PDF for (with the ligature, "ff" is one glyph outside the font's character codes). matplotlib
    applies font features to one-line texts only, so the page draws a multi-line note one line a Text
    (column headers of two lines have no ligature pairs)."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_fontfeatures(("-liga", "-clig"))


def _layout(table_rows: float) -> tuple[tuple[float, float, float, float], ...]:
    """Figure-fraction rectangles ``(left, bottom, width, height)`` of the table and the two charts: the
    table as tall as its rows need (at most 3.3 inches, its rows shrink beyond), the charts below in
    the rest of the page above the footnote."""
    page_h = A4_LANDSCAPE_INCHES[1]
    table_h = min(3.3, (table_rows + _HEADER_ROWS + 0.2) * _ROW_PT / 72) / page_h
    top = 0.8
    chart_top, chart_bottom = top - table_h - 0.085, 0.15
    width = 1 - 2 * _MARGIN
    return ((_MARGIN, top - table_h, width, table_h),
            (_MARGIN + 0.04, chart_bottom, 0.39, chart_top - chart_bottom),
            (1 - _MARGIN - 0.39, chart_bottom, 0.39, chart_top - chart_bottom))


def _rule(fig: Any, y: float) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([0.035, 0.965], [y, y], transform=fig.transFigure, color=_RULE, lw=0.8)


def _creditsim_version() -> str:
    module = sys.modules.get("creditsim")
    return str(getattr(module, "__version__", "")) if module is not None else ""


def write_summary_pdf(results: SimulationResults, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the one-page summary (:func:`summary_figure`) to ``path`` as a PDF, atomically
    (:func:`creditsim.fileio.atomic_write`: a temporary sibling is written and renamed, so an
    interrupted write leaves the previous file or nothing). The same run gives the same bytes.

    Args:
        results: the run (:meth:`SimulationResults.load` of a run directory, or :func:`creditsim.simulate`).
        path: the file to write, ending in ``.pdf``; missing parent directories are created.
        title: page title (default: the deal name of the run).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: ``path`` is a directory, does not end in ``.pdf`` or cannot be written; ``results``
            is not a :class:`SimulationResults`; ``title`` is not text.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"summary PDF: path must be a file path, got {type(path).__name__}")
    target = check_output_target(path, "file", "summary PDF")
    if target.suffix.lower() != ".pdf":
        raise ConfigError(f"summary PDF: {str(target)!r} does not end in .pdf")
    fig = summary_figure(results, title=title)
    metadata = {"Title": _page_title(results, title), "Subject": "creditsim simulation summary",
                "Creator": f"creditsim {_creditsim_version()}".strip(), "CreationDate": None}

    def save(tmp: Path) -> None:
        with _page_style():
            fig.savefig(tmp, format="pdf", metadata=metadata)
        fault_point("write_pdf")  # test hook (CREDITSIM_FAULT_POINT): the page written, not yet in place

    return atomic_write(target, save, suffix=".tmp.pdf")
