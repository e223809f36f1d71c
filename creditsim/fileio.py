"""The one place that writes output files: atomic replacement and spreadsheet-safe text.

Every file creditsim writes (tapes, panels, deal YAML, Excel workbooks, PNG plots, HTML reports,
checkpoints) goes through :func:`atomic_write`: the content is written to a temporary sibling and moved
into place with :func:`os.replace`, so a reader never sees a half-written file and an interrupted run
leaves the previous file (or nothing). Text bound for a spreadsheet goes through
:func:`escape_excel_text` so that no cell is evaluated as a formula.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["umask_mode", "atomic_write", "escape_excel_text", "escape_frame", "FORMULA_PREFIXES"]

#: leading characters that make a spreadsheet evaluate a text cell (CSV/formula injection)
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def umask_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``mkstemp``/``mkdtemp`` create 0600/0700, which would leave results unreadable to colleagues
    after the rename.
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary sibling, which is moved onto ``path``.

    Args:
        path: the target file; its parent directory is created if needed.
        write: called with the temporary path (same directory, so ``os.replace`` is a rename on one
            file system); it must create / fill that file.
        suffix: ending of the temporary file name, for writers that infer the format from it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    The file gets the mode a plain ``open`` would give (``0o666 & ~umask``), not mkstemp's 0600. If
    ``write`` raises (or the process is interrupted), the temporary file is removed and an existing
    file at ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def escape_excel_text(value: Any) -> Any:
    """Prefix text that a spreadsheet would evaluate as a formula (= + - @ tab CR) with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def escape_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with every text cell, column label and index label passed through
    :func:`escape_excel_text`; numbers are untouched."""
    out = df.copy()
    # pandas >= 3 stores text as a string dtype, older versions as object: test "not numeric"
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(object).map(escape_excel_text)
    out.columns = [escape_excel_text(c) for c in out.columns]
    if not pd.api.types.is_numeric_dtype(out.index):
        out.index = pd.Index([escape_excel_text(i) for i in out.index], name=escape_excel_text(out.index.name))
    return out
