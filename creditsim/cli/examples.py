"""``creditsim examples --out DIR``: copy the shipped example files (loan tapes, CLO deals, run
configuration, narrative scenario) where a user can read, edit and run them -- pip users have no
source tree to find them in. Two tape + deal pairs: the BSL CLO of ``make demo``
(``loans_bsl.parquet`` + ``bsl_clo.yaml``) and the small four-asset-class example
(``loans_example.parquet`` + ``example_clo.yaml``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console

from creditsim.errors import ConfigError

__all__ = ["register", "export_examples"]

console = Console()


def export_examples(out: str | Path, force: bool = False) -> list[Path]:
    """Copy every shipped example into ``out`` (created if missing); returns the written paths.

    An existing file of the same name is refused (ConfigError naming it) unless ``force``; each file is
    written to a temporary name and renamed, so an interrupted copy leaves no half-written file."""
    from creditsim.examples import example_path, list_examples

    target = Path(out)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target}: exists and is not a directory")
    names = list_examples()
    clash = [n for n in names if (target / n).exists()]
    if clash and not force:
        raise ConfigError(f"--out {target}: {clash} already exist; pass --force to overwrite them")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(example_path(name), tmp)
        tmp.replace(target / name)
        written.append(target / name)
    return written


def examples_cmd(
    out: Path = typer.Option(..., "--out", help="folder to copy the examples into (created if missing)"),
    force: bool = typer.Option(False, "--force", help="overwrite example files already there"),
) -> None:
    """Copy the example loan tapes, CLO deals, run configuration and narrative scenario into a folder."""
    for path in export_examples(out, force):
        console.print(f"wrote {path}", soft_wrap=True)
    console.print(f"try: creditsim simulate --tape {out}/loans_bsl.parquet --deal {out}/bsl_clo.yaml "
                  f"--macro synthetic --n-sims 1000 --out runs/first", soft_wrap=True)
    # the run config's MacroVAE scenarios start from the real macro state, whose restricted series a fresh
    # install fetches first; the synthetic generator needs nothing, so the first suggestion runs anywhere
    console.print(f"then, after `creditsim data fetch`: creditsim simulate --tape {out}/loans_bsl.parquet "
                  f"--deal {out}/bsl_clo.yaml --config {out}/run_config.yaml --out runs/vae", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``examples`` command to ``app``."""
    app.command("examples")(examples_cmd)
