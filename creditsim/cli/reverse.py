"""``creditsim reverse-stress``: the most plausible economy that breaks a tranche.

Runs :func:`creditsim.risk.reverse_stress.reverse_stress` on a loan tape and a deal, prints the headline
numbers, the found path against the Fed 2025 severely adverse path and the single-variable shifts, and
writes the results (``--out``: summary.json, path.csv, path_vs_fed.csv, single_variable.csv,
reference.csv, reverse_stress.png). Bad input is a one-line error with exit status 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from creditsim.cli.tables import print_whole

__all__ = ["register", "reverse_stress_cmd", "size_tranches_cmd", "print_reverse_stress"]

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``reverse-stress`` and ``size-tranches`` commands to ``app``."""
    app.command("reverse-stress")(reverse_stress_cmd)
    app.command("size-tranches")(size_tranches_cmd)


def print_reverse_stress(result: Any, seconds: float | None = None, out: Console | None = None) -> None:
    """Headline table, the path against the Fed path (percent) and the single-variable shifts."""
    from rich import box

    out = out or console
    head = Table(title=f"Reverse stress: tranche {result.tranche}, principal loss >= {result.threshold:.2%}",
                 box=box.SIMPLE_HEAD, show_header=False)
    head.add_column("", no_wrap=True)
    head.add_column("", justify="right", no_wrap=True)
    for name, value in result.summary()["value"].items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if isinstance(value, float) and ("loss" in name or "s.e." in name or "paths at least" in name
                                         or "more plausible" in name):
            text = f"{100 * value:.2f} %"
        head.add_row(name, text)
    print_whole(out, head)
    table = result.path_table()
    show = ["unemployment_rate", "gdp_growth", "credit_spread_hy", "house_price_growth", "policy_rate"]
    t = Table(title="found path vs Fed 2025 severely adverse, % (found / Fed)", box=box.SIMPLE_HEAD)
    t.add_column("month", justify="right")
    for var in show:
        t.add_column(var, justify="right", no_wrap=True)
    for month in table.index:
        cells = [f"{100 * table.loc[month, ('found', v)]:.1f} / {100 * table.loc[month, ('fed_2025_severely_adverse', v)]:.1f}"
                 for v in show]
        t.add_row(str(month), *cells)
    print_whole(out, t)
    if result.single_variable is not None:
        sv = Table(title="one variable alone: smallest parallel shift that breaks the target", box=box.SIMPLE_HEAD)
        for col in ("variable", "shift (sd)", "shift (pp)", "direction"):
            sv.add_column(col, justify="right" if col != "variable" else "left")
        for var, row in result.single_variable.iterrows():
            broke = row["shift_sd"] == row["shift_sd"]
            sv.add_row(var, f"{row['shift_sd']:.2f}" if broke else "-", f"{100 * row['shift']:.2f}" if broke else "-",
                       row["direction"] if broke else f"not within 6 sd (max loss {row['loss_at_max']:.2%})")
        print_whole(out, sv)
    if seconds is not None:
        out.print(f"{seconds:.1f} s")


def reverse_stress_cmd(
    tape: Path = typer.Option(..., "--tape", help="loan tape (.csv, .csv.gz or .parquet); the demo tape: "
                              "creditsim examples --out DIR"),
    deal: Path = typer.Option(..., "--deal", help="deal YAML (see creditsim deal check)"),
    tranche: str = typer.Option(..., "--tranche", help="target class name, e.g. B"),
    loss: float = typer.Option(..., "--loss", help="principal-loss threshold as a fraction, e.g. 0.01 for 1 %"),
    horizon: int = typer.Option(60, "--horizon", help="months"),
    cutoff: str = typer.Option(None, "--cutoff", help="cut-off date of the tape (default: its latest origination)"),
    starts: int = typer.Option(4, "--starts", help="parallel starts of the search"),
    reference: int = typer.Option(1000, "--reference", help="generator paths for the severity percentile"),
    mc: int = typer.Option(2000, "--mc", help="Monte Carlo draws re-pricing the found path"),
    scenario: str = typer.Option("baseline", "--scenario", help="the generator's dynamics label"),
    single: bool = typer.Option(True, "--single-variable/--no-single-variable",
                                help="also find the least single-variable shift that breaks the target"),
    seed: int = typer.Option(0, "--seed", help="master seed"),
    out: Path = typer.Option(None, "--out", help="directory for the results (files replaced atomically)"),
) -> None:
    """Find the most plausible macro path (under the MacroVAE, from today's state) whose expected loss on a
    tranche reaches a threshold, and re-price it with the Monte Carlo engine."""
    from creditsim.cli.run import read_tape
    from creditsim.deal.config import load_deal
    from creditsim.fileio import check_output_target
    from creditsim.risk.reverse_stress import reverse_stress

    if out is not None:
        check_output_target(out / "summary.json", "file", "--out")
    df = read_tape(tape)
    config = load_deal(deal)
    t0 = time.perf_counter()
    result = reverse_stress(df, config, tranche, loss, horizon=horizon, cutoff=cutoff, n_starts=starts,
                            n_reference=reference, n_mc=mc, scenario=scenario, single_variable=single, seed=seed,
                            progress=True)
    print_reverse_stress(result, time.perf_counter() - t0)
    if out is not None:
        result.save(out)
        console.print(f"wrote {out}")


def _parse_targets(text: str) -> dict[str, float]:
    """``"A=0.0005,B=0.01,C=0.05"`` -> ``{"A": 0.0005, ...}`` (one-line ConfigError otherwise)."""
    from creditsim.errors import ConfigError

    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"--targets: expected CLASS=EL pairs like A=0.0005,B=0.01, got {part!r}")
    return out


def size_tranches_cmd(
    tape: Path = typer.Option(..., "--tape", help="loan tape (.csv, .csv.gz or .parquet)"),
    deal: Path = typer.Option(..., "--deal", help="deal YAML: the order of classes, coupons, triggers and fees"),
    targets: str = typer.Option(..., "--targets", help="expected principal loss per debt class, e.g. A=0.0005,B=0.01,C=0.05"),
    horizon: int = typer.Option(60, "--horizon", help="months"),
    paths: int = typer.Option(64, "--paths", help="macro paths of the run's default source and mix"),
    reps: int = typer.Option(16, "--reps", help="Monte Carlo loan draws per path in the verification"),
    seed: int = typer.Option(0, "--seed", help="master seed"),
    out: Path = typer.Option(None, "--out", help="directory for sizing.csv and the sized deal (deal_sized.yaml)"),
    measure: str = typer.Option("el", "--measure",
                                help="what the targets are: el (expected principal loss) or pd (probability of "
                                     "a principal loss above 0.01 % of the class)"),
    fixed_triggers: bool = typer.Option(False, "--fixed-triggers",
                                        help="keep the deal's OC triggers as written instead of moving them with "
                                             "the structure at each class's closing cushion"),
) -> None:
    """Attachment points meeting per-class expected-loss targets (soft sizing + Monte Carlo check). The OC
    triggers move with the structure, keeping each class's closing cushion, unless --fixed-triggers."""
    import yaml
    from rich import box

    from creditsim.cli.run import read_tape
    from creditsim.deal.config import load_deal
    from creditsim.fileio import atomic_write, check_output_target
    from creditsim.risk.sizing import size_tranches

    goal = _parse_targets(targets)
    if out is not None:
        check_output_target(out / "sizing.csv", "file", "--out")
    t0 = time.perf_counter()
    result = size_tranches(read_tape(tape), load_deal(deal), goal, n_paths=paths, reps=reps, seed=seed, horizon=horizon,
                           keep_cushions=not fixed_triggers, measure=measure)
    m = result.settings["measure"]
    what = "EL = expected principal loss" if m == "el" else "PD = probability of a principal loss > 0.01 %"
    t = Table(title=f"sized structure ({what} over the paths)", box=box.SIMPLE_HEAD)
    for col in ("class", "attach", "detach", "balance", "OC trigger", f"target {m.upper()}", f"soft {m.upper()}",
                f"Monte Carlo {m.upper()}"):
        t.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    triggers = {tr.name: tr.oc_trigger for tr in result.deal.tranches}
    for name, row in result.table.iterrows():
        target = "-" if row[f"target_{m}"] != row[f"target_{m}"] else f"{100 * row[f'target_{m}']:.3f} %"
        trig = "-" if triggers.get(name) is None else f"{triggers[name]:.4f}"
        t.add_row(str(name), f"{100 * row['attachment']:.2f} %", f"{100 * row['detachment']:.2f} %", f"{row['balance']:,.0f}",
                  trig, target, f"{100 * row[f'soft_{m}']:.3f} %",
                  f"{100 * row[f'mc_{m}']:.3f} % +- {100 * row['mc_se']:.3f}")
    print_whole(console, t)
    console.print(f"{time.perf_counter() - t0:.1f} s")
    if out is not None:
        atomic_write(out / "sizing.csv", lambda p: result.table.to_csv(p))
        atomic_write(out / "deal_sized.yaml", lambda p: p.write_text(yaml.safe_dump(result.deal.to_dict(), sort_keys=False)))
        console.print(f"wrote {out / 'sizing.csv'}, {out / 'deal_sized.yaml'}")
