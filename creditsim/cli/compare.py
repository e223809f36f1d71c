"""``creditsim compare RUN_A RUN_B``: two saved runs side by side (:mod:`creditsim.risk.compare`).

Prints the settings that differ, expected loss, VaR 99 and CVaR 99 of the pool and every tranche in
both runs with the change and its z-score (paired when the runs share seed, simulations and scenario
labels), and the expected pool loss by scenario type. ``--csv`` writes the full table, ``--html`` a
page with the tables and the two loss-exceedance curves. Bad input is a one-line error (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from creditsim.cli.tables import print_whole
from creditsim.errors import ConfigError

__all__ = ["register", "compare_cmd"]

console = Console(width=None if sys.stdout.isatty() else 200)


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare")(compare_cmd)


def _pct(x: float) -> str:
    return "" if not np.isfinite(x) else f"{100 * x:.3f}"


def compare_cmd(
    run_a: Path = typer.Argument(..., help="the earlier / reference run directory (creditsim simulate --out)"),
    run_b: Path = typer.Argument(..., help="the run compared with it"),
    csv: Path = typer.Option(None, "--csv", help="write the comparison table (one row per pool / tranche)"),
    html: Path = typer.Option(None, "--html", help="write a comparison page (tables and loss-exceedance curves; "
                              "plotly.js is written beside it)"),
) -> None:
    """Compare two saved simulation runs: settings that differ, losses and their changes."""
    from creditsim.fileio import atomic_write, check_output_target
    from creditsim.risk.compare import compare_runs
    from creditsim.risk.results import SimulationResults

    for target, flag in ((csv, "--csv"), (html, "--html")):
        if target is not None:
            check_output_target(target, "file", flag)
    if csv is not None and html is not None and csv.resolve() == html.resolve():
        raise ConfigError(f"--csv and --html name the same file ({csv})")
    a, b = SimulationResults.load(run_a), SimulationResults.load(run_b)
    cmp = compare_runs(a, b, labels=(run_a.name or str(run_a), run_b.name or str(run_b)))
    console.print(f"[bold]{cmp.labels[0]} -> {cmp.labels[1]}[/]: {cmp.pairing}", highlight=False)
    settings = Table(title="settings that differ", show_lines=False)
    for col in ("setting", cmp.labels[0], cmp.labels[1]):
        settings.add_column(col)
    for name, row in cmp.settings.iterrows():
        settings.add_row(str(name), row["a"], row["b"])
    if cmp.settings.empty:
        console.print("settings: the same")
    else:
        print_whole(console, settings)
    losses = Table(title="losses, % of each row's balance (change: B - A; z: change / its standard error)")
    for col in ("", "EL A", "EL B", "change", "z", "VaR99 A", "VaR99 B", "CVaR99 A", "CVaR99 B"):
        losses.add_column(col, justify="right" if col else "left")
    for name, r in cmp.table.iterrows():
        z = r["expected_loss_change_z"]
        losses.add_row(str(name), _pct(r["expected_loss_a"]), _pct(r["expected_loss_b"]),
                       _pct(r["expected_loss_change"]), "" if not np.isfinite(z) else f"{z:+.1f}",
                       _pct(r["var_99_a"]), _pct(r["var_99_b"]), _pct(r["cvar_99_a"]), _pct(r["cvar_99_b"]))
    print_whole(console, losses)
    by = Table(title="expected pool loss by scenario type, %")
    for col in ("scenario", cmp.labels[0], cmp.labels[1]):
        by.add_column(col, justify="right" if col != "scenario" else "left")
    for name, r in cmp.by_scenario.iterrows():
        by.add_row(str(name), _pct(r["a"]), _pct(r["b"]))
    print_whole(console, by)
    moved = cmp.significant()
    console.print(f"changes beyond 3 standard errors: {', '.join(moved) if moved else 'none'}")
    if csv is not None:
        atomic_write(csv, lambda p: cmp.table.to_csv(p))
        console.print(f"wrote {csv}")
    if html is not None:
        from creditsim.risk.report import comparison_html, write_plotly_bundle

        # plotly.js beside the page, as the run report does: inline it would make the page ~5 MB
        atomic_write(html, lambda p: p.write_text(comparison_html(cmp, a, b, plotly_js="file"), encoding="utf-8"))
        write_plotly_bundle(html.parent)
        console.print(f"wrote {html}")
