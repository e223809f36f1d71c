"""The ``creditsim`` command line (typer).

Each command group lives in its own module exposing ``register(app)``; this module only assembles
them and turns every :class:`~creditsim.errors.CreditSimError` into a one-line message on stderr and
exit status 2 (no traceback). Ctrl-C exits with 130; outputs are written atomically by the commands, so
an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import importlib
import sys

import click
import typer
from rich.console import Console

from creditsim.errors import CreditSimError

__all__ = ["app", "main"]

#: command-group modules, each with ``register(app: typer.Typer) -> None``
COMMAND_MODULES: tuple[str, ...] = ("data", "deal", "ratings", "train", "evaluate", "run")

app = typer.Typer(
    name="creditsim",
    help="Credit portfolio and SPV analytics with deep generative models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"creditsim.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command group not shipped in this build
        if exc.name != f"creditsim.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``creditsim`` console script."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except CreditSimError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
