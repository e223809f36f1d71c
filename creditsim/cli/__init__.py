"""The ``creditsim`` command line (typer).

Each command group lives in its own module exposing ``register(app)``; this module only assembles
them and turns every :class:`~creditsim.errors.CreditSimError` into a one-line message on stderr and
exit status 2 (no traceback). Ctrl-C exits with 130; outputs are written atomically by the commands, so
an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape

from creditsim.errors import CreditSimError

__all__ = ["app", "main", "run_app"]

#: command-group modules, each with ``register(app: typer.Typer) -> None``
COMMAND_MODULES: tuple[str, ...] = ("data", "deal", "ratings", "train", "evaluate", "run", "stress", "reverse", "examples", "ecl", "compare",
                                     "notes")

app = typer.Typer(
    name="creditsim",
    help="Credit portfolio and SPV analytics with deep generative models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
) -> None:
    """Credit portfolio and SPV analytics with deep generative models."""
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command("version")
def version() -> None:
    """Print the versions of creditsim and its main dependencies."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from creditsim import __version__

    typer.echo(f"creditsim {__version__}")
    for dist in ("numpy", "pandas", "torch"):
        try:
            typer.echo(f"{dist} {dist_version(dist)}")
        except PackageNotFoundError:
            typer.echo(f"{dist} (not installed)")

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
    run_app(app, argv)


def _one_line_warnings() -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints each warning as one ``warning:`` line on stderr, each text
    once per run: a user of the command line wants to know *that* an anchor lies outside the model's
    range, not the library line that said so, and not once per scenario batch."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    return show


def _blank_flag_metavars(command: Any) -> None:
    """On/off flags take no value, but typer (0.29, with click 8.5) shows them with a ``<bool>``
    placeholder in ``--help``, which reads as if ``--excel true`` were the syntax: blank it on every flag
    of ``command`` and its subcommands."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and not getattr(param, "metavar", None):
            param.metavar = ""
    help_option = command.get_help_option  # built per context, so wrapped rather than edited

    def blank_help(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = blank_help
    for sub in getattr(command, "commands", {}).values():
        _blank_flag_metavars(sub)


def _reflow_help(command: Any) -> None:
    """Join the single line breaks inside each help paragraph of ``command`` and its subcommands: typer
    0.29 joins them in a docstring's first paragraph only, so later paragraphs kept the source's line
    breaks and printed as ragged half lines. Paragraphs (blank-line separated) stay."""
    text = getattr(command, "help", None)
    if text:
        paragraphs = inspect.cleandoc(text).split("\n\n")
        command.help = "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


def run_app(typer_app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``typer_app`` and exit: 0 on success, 2 with a one-line message on a CreditSimError.

    typer >= 0.2x vendors its own click, so usage errors are recognised by shape (``show`` and
    ``exit_code``) rather than by class, which also covers commands written against plain click.
    """
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings()
            command = typer.main.get_command(typer_app)
            _blank_flag_metavars(command)
            _reflow_help(command)
            rv = command(args=argv, standalone_mode=False)
    except CreditSimError as exc:
        # escape: messages quote user values such as "[nan]" that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort, click.exceptions.Abort):
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            # one line like every other error (click's show() prints a usage block over 3-4 lines)
            fmt = getattr(exc, "format_message", None)
            msg = " ".join(str(fmt() if fmt else exc).split())
            err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)
