"""``make demo``: the whole job on bundled data in about a minute on 2 cores.

1. Loads the bundled example tape (``creditsim/examples/loans_example.parquet``: 2,000 synthetic loans
   over the four asset classes, corporates rated, drawn once by ``LoanTapeGenerator(2000, 1,
   random_seed=2026)``) and the example CLO deal (``example_clo.yaml``, scaled to the pool).
2. Runs :func:`creditsim.simulate` with the default scenario mix (60/25/10/5), macro paths from the
   pretrained MacroVAE when its checkpoint is installed (else the rule-based MacroScenarioGenerator,
   said so on screen), the Markov engine, seed 7.
3. Saves the run to ``runs/demo/`` with ``results.xlsx`` and ``report.html`` inside, and prints the
   risk tables.

Run: ``python -m creditsim.demo [--n-sims 1000] [--out runs/demo] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from creditsim.cli.run import print_results
from creditsim.deal.config import load_deal
from creditsim.errors import CheckpointError
from creditsim.examples import example_path
from creditsim.macro.vae import MacroVAE
from creditsim.risk.report import write_report
from creditsim.risk.results import check_result_target
from creditsim.risk.simulate import simulate, versions

__all__ = ["EXAMPLE_TAPE", "run_demo", "main"]

EXAMPLE_TAPE = "loans_example.parquet"
EXAMPLE_DEAL = "example_clo.yaml"


def _macro_source() -> tuple[Any, str]:
    """The pretrained MacroVAE when it can be loaded, else the synthetic generator."""

    try:
        return MacroVAE.from_pretrained(), "vae (pretrained MacroVAE)"
    except (ImportError, CheckpointError) as exc:
        return "synthetic", f"synthetic (MacroScenarioGenerator; pretrained MacroVAE unavailable: {str(exc)[:80]})"


def run_demo(out: str | Path = "runs/demo", n_sims: int = 1000, seed: int = 7, chunk_size: int = 250,
             progress: bool = True, macro: Any = None, quiet: bool = False) -> Any:
    """Run the demo and write ``out`` (run directory with results.xlsx and report.html).

    Returns the :class:`~creditsim.risk.results.SimulationResults`.
    """
    import pandas as pd
    import yaml
    from rich.console import Console


    out = Path(out)
    # refuse a target holding anything but a previous run before the minute of simulation, not after
    check_result_target(out)
    console = Console(quiet=quiet)
    loans = pd.read_parquet(example_path(EXAMPLE_TAPE))
    deal = load_deal(example_path(EXAMPLE_DEAL))
    if macro is None:
        macro, macro_note = _macro_source()
    else:
        macro_note = str(macro)
    console.print(f"[bold]creditsim demo[/]: {len(loans):,} loans, deal '{deal.name}', {n_sims:,} scenarios, "
                  f"macro: {macro_note}")
    t0 = time.perf_counter()
    results = simulate(loans, deal, n_simulations=n_sims, macro=macro, engine="markov", seed=seed,
                       chunk_size=chunk_size, progress=progress)
    wall = time.perf_counter() - t0
    results.settings.update({"macro": macro_note, "tape": EXAMPLE_TAPE, "wall_seconds": round(wall, 2)})
    extra = {
        "run.json": json.dumps({"settings": results.settings, "versions": versions()}, indent=2, default=str),
        "deal.yaml": yaml.safe_dump(results.settings["deal"], sort_keys=False),
    }
    writers = [("results.xlsx", results.to_excel),
               ("report.html", lambda p: write_report(results, p, title=f"{deal.name}: demo run"))]
    results.to_parquet(out, extra_files=extra, extra_writers=writers)
    print_results(results, console)
    console.print(f"simulated in {wall:.1f} s; run saved to [bold]{out}[/] "
                  f"(Excel: {out / 'results.xlsx'}, HTML: {out / 'report.html'})")
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="creditsim end-to-end demo on bundled data")
    ap.add_argument("--n-sims", type=int, default=1000)
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    run_demo(args.out, n_sims=args.n_sims, seed=args.seed)


if __name__ == "__main__":
    main()
