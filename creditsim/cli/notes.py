"""``creditsim note-ecl``: the IFRS 9 expected credit loss of an SPV note held at amortised cost
(:mod:`creditsim.risk.note_ecl`): stage, allowance, 12-month and lifetime ECL and the note's PDs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from creditsim.cli.tables import print_whole

__all__ = ["register", "note_ecl_cmd"]

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``note-ecl`` command to ``app``."""
    app.command("note-ecl")(note_ecl_cmd)


def note_ecl_cmd(
    tape: Path = typer.Option(..., "--tape", help="loan tape (csv/parquet) of the SPV's pool"),
    deal: Path = typer.Option(..., "--deal", help="deal YAML"),
    tranche: str = typer.Option(..., "--tranche", help="the debt class held"),
    pd_at_purchase: float = typer.Option(None, "--pd-at-purchase", help="the note's lifetime PD when bought (SICR test)"),
    credit_impaired: bool = typer.Option(False, "--credit-impaired", help="the note is credit-impaired (Stage 3)"),
    mix: str = typer.Option(None, "--mix", help="scenario mix, e.g. 'baseline=0.5,severely_adverse=0.5' (default the run's)"),
    horizon: int = typer.Option(60, "--horizon", help="months simulated"),
    paths: int = typer.Option(64, "--paths", help="macro paths"),
    reps: int = typer.Option(16, "--reps", help="loan draws per path"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """IFRS 9 ECL of a note bought at par (EIR = its coupon): the Monte Carlo through the waterfall, the
    shortfall discounted at the EIR, the stage from the change in the note's lifetime PD since purchase."""
    from creditsim.cli.run import read_tape
    from creditsim.deal.config import load_deal
    from creditsim.risk.note_ecl import note_ecl

    run = {"horizon": horizon, **({"scenario_mix": mix} if mix else {})}
    res = note_ecl(read_tape(tape), load_deal(deal), tranche, pd_at_purchase=pd_at_purchase, credit_impaired=credit_impaired,
                   n_paths=paths, reps=reps, seed=seed, **run)
    t = Table(title=f"IFRS 9 ECL of note {res.tranche} (balance {res.balance:,.0f}, EIR {res.eir:.2%}; "
                    f"{paths} paths x {reps} loan draws, {horizon} months)")
    for col in ("figure", "value", "s.e."):
        t.add_column(col, justify="left" if col == "figure" else "right", no_wrap=True)
    for name, row in res.summary().iterrows():
        value, se = row["value"], row["se"]
        money = "ECL" in name or name == "allowance"
        fmt = (lambda v: f"{v:,.0f}") if money else (lambda v: f"{v:.0f}") if name == "stage" else (lambda v: f"{v:.4%}")
        t.add_row(name, "-" if value is None or value != value else fmt(value), "" if se != se else fmt(se))
    print_whole(console, t)
