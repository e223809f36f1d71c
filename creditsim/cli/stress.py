"""``creditsim stress``: supervisory-style (DFAST) nine-quarter loss rates by asset class.

Runs :func:`creditsim.risk.stress.stress_losses` on a loan tape under named macro scenarios, prints the
cumulative loss rate (% of the average balance over the window; mean and 5-95 % band over paths) per
asset class and scenario, and optionally writes the CSV tables (``--out``) and a chart of the quarterly
loss rates (``--plot``). Bad input is a one-line error with exit status 2 (:func:`creditsim.cli.main`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from creditsim.cli.tables import print_whole

__all__ = ["register", "stress_cmd", "print_stress_table"]

console = Console()

_TAPE_HELP = ("loan tape (.csv, .csv.gz or .parquet). The bundled demo tape is "
              "creditsim/examples/loans_example.parquet (python -c \"from creditsim.examples import example_path; "
              "print(example_path('loans_example.parquet'))\"); a synthetic one: creditsim data synth --out DIR "
              "(writes DIR/loans.parquet)")


def register(app: typer.Typer) -> None:
    """Add the ``stress`` command to ``app``."""
    app.command("stress")(stress_cmd)


def print_stress_table(result: Any, seconds: float | None = None, out: Console | None = None) -> None:
    """Print the cumulative loss rates (percent) of a :class:`~creditsim.risk.stress.StressResult`:
    rows asset classes, per scenario ``mean [p05, p95]``, the banks' pre-stress reference
    (:meth:`~creditsim.risk.stress.StressResult.bank_reference`) and the average balance over the window of the
    first scenario (fits 80 columns; headers name the scenarios by their last part when unique)."""
    from rich import box

    out = out or console
    table = result.table()
    summary = result.summary()
    first = result.scenarios[0]
    avg = summary[summary["scenario"] == first].set_index("asset_class")["avg_balance"]
    short = [sc.rsplit(":", 1)[-1] for sc in result.scenarios]
    heads = short if len(set(short)) == len(short) else list(result.scenarios)
    t = Table(title=f"{result.quarters}-quarter loss rate, % of avg balance: mean [5 %, 95 %] over "
                    f"{result.losses.shape[1]} paths", caption=", ".join(result.scenarios), box=box.SIMPLE_HEAD)
    t.add_column("asset class", no_wrap=True)
    for head in heads:
        t.add_column(head, justify="right", no_wrap=True)
    t.add_column("banks*", justify="right", no_wrap=True)
    t.add_column("avg bal.", justify="right", no_wrap=True)
    bank = result.bank_reference()
    for cls in result.asset_classes:
        cells = [f"{table.loc[cls, (s, 'mean')]:.2f} [{table.loc[cls, (s, 'p05')]:.2f}, "
                 f"{table.loc[cls, (s, 'p95')]:.2f}]" for s in result.scenarios]
        t.add_row(cls, *cells, f"{bank[cls]:.2f}", _money(float(avg[cls])))
    print_whole(out, t)
    out.print(f"* US banks' net charge-offs on the matching loan type over {result.quarters} quarters at the "
              "2024H1 pace (Federal Reserve Board)")
    if seconds is not None:
        s = result.settings
        out.print(f"{s.get('n_loans', 0):,} loans, engine {s.get('engine')}, seed {s.get('seed')}; "
                  f"{seconds:.1f} s")


def _money(x: float) -> str:
    """``1.23bn`` / ``4.5m`` / ``12,345`` (currency units)."""
    return f"{x / 1e9:.2f}bn" if abs(x) >= 1e9 else f"{x / 1e6:.1f}m" if abs(x) >= 1e6 else f"{x:,.0f}"


def _check_targets(out: Path | None, plot: Path | None) -> None:
    """Refuse unwritable outputs before any work."""
    from creditsim.fileio import check_output_target

    if out is not None:
        for name in ("stress_summary.csv", "stress_table.csv", "stress_quarterly.csv"):
            check_output_target(out / name, "file", "--out")
    if plot is not None:
        check_output_target(plot, "file", "--plot")


def stress_cmd(
    tape: Path = typer.Option(..., "--tape", help=_TAPE_HELP),
    scenarios: str = typer.Option("fed:2025:baseline,fed:2025:severely_adverse", "--scenarios",
                                  help="comma-separated scenarios: fed:YEAR:SCENARIO (bundled supervisory paths) "
                                       "or SOURCE:SCENARIO with SOURCE vae | var | bootstrap | synthetic"),
    quarters: int = typer.Option(9, "--quarters", help="window in quarters (DFAST: 9; at most 13 for the Fed tables)"),
    paths: int = typer.Option(200, "--paths", help="macro paths (and loan-level draws) per scenario"),
    seed: int = typer.Option(0, "--seed", help="master seed of every random draw"),
    out: Path = typer.Option(None, "--out", help="directory for stress_summary.csv, stress_table.csv (percent) "
                             "and stress_quarterly.csv"),
    plot: Path = typer.Option(None, "--plot", help="PNG chart of the quarterly loss rates, one panel per asset class"),
    engine: str = typer.Option("markov", "--engine", help="markov | transformer"),
    classes: str = typer.Option(None, "--classes", help="comma-separated asset classes to report (default: all "
                                "classes of the tape)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
) -> None:
    """Nine-quarter loss rates by asset class under supervisory scenarios (the DFAST convention).

    Loss = LGD x defaulted balance booked at default (net of the expected recovery); rate = the window's
    losses / the average balance over the window.
    """
    # the CLI imports its stack on use: `creditsim --help` must not pay for torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from creditsim.cli.run import read_tape
    from creditsim.risk.stress import stress_losses

    _check_targets(out, plot)
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes is not None else None
    df = read_tape(tape)
    t0 = time.perf_counter()
    columns = (TextColumn("[bold]stress"), BarColumn(), MofNCompleteColumn(), TextColumn("paths"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("stress", total=None)
        result = stress_losses(df, scenarios, quarters=quarters, n_paths=paths, seed=seed, engine=engine,
                               device=device, asset_classes=names,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    seconds = time.perf_counter() - t0
    print_stress_table(result, seconds)
    if out is not None:
        for path in result.to_csv(out):
            console.print(f"wrote {path}")
    if plot is not None:
        result.plot(plot)
        console.print(f"wrote {plot}")
