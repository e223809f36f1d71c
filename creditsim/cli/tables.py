"""Printing rich tables the same way from every command."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = ["print_whole"]


def print_whole(out: Console, table: Table) -> None:
    """Print ``table`` uncut: on a terminal as rich lays it out, into a pipe or a file (which has no
    width; rich would assume 80 columns and drop or truncate columns) at the width it needs."""
    if out.is_terminal:
        out.print(table)
        return
    need = Measurement.get(out, out.options.update(max_width=10_000), table).maximum
    width = out.width
    out.width = max(width, need)  # print(width=...) cannot widen past the console's own width
    try:
        out.print(table)
    finally:
        out.width = width
