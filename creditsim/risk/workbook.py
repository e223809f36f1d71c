"""Formatted Excel workbooks for people: bold headers, fitted column widths, a frozen header row and
first column, and number formats per column (money ``#,##0``, fractions ``0.00%``, years ``0.00``).

Values stay raw numbers (a loss of 1.23 % is stored as 0.0123 and *shown* as 1.23 %), so formulas a
reader writes on the sheet keep working. Text that a spreadsheet would read as a formula (it starts
with one of :data:`creditsim.fileio.FORMULA_PREFIXES`) is written as a string cell with Excel's
*quote prefix* style, so a tranche called ``=HYPERLINK(...)`` is shown as exactly that text and never
evaluated, even when a reader edits the cell (an apostrophe in the text itself, as pandas writers need,
would show on the sheet). The file is written with :func:`creditsim.fileio.atomic_write`.

openpyxl's write-only mode streams rows to disk instead of building every cell in memory first: a
100,000-scenario per-simulation sheet (about a million cells) stays within a few hundred MB and writes
in seconds rather than the minutes a normal workbook takes to build and save.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.fileio import FORMULA_PREFIXES, atomic_write

__all__ = ["MONEY_FORMAT", "PERCENT_FORMAT", "YEARS_FORMAT", "COUNT_FORMAT", "RATIO_FORMAT", "EXCEL_MAX_ROWS",
           "Block", "Sheet", "write_workbook", "column_width"]

#: currency units, whole units with thousands separators (1234567.8 -> 1,234,568)
MONEY_FORMAT = "#,##0"
#: fractions shown as percent (0.0123 -> 1.23%)
PERCENT_FORMAT = "0.00%"
#: durations in years (WAL)
YEARS_FORMAT = "0.00"
#: counts (scenarios, months)
COUNT_FORMAT = "#,##0"
#: plain ratios (coverage tests: 1.234 = 123.4 % of the note par)
RATIO_FORMAT = "0.000"
#: rows of one Excel sheet, header included (Excel 2007+)
EXCEL_MAX_ROWS = 1_048_576
#: column width bounds, characters: a long setting value or tranche name is cut, not a 300-wide column
_MIN_WIDTH, _MAX_WIDTH = 6, 60


@dataclass
class Block:
    """One table on a sheet: a header row (bold) and the rows of ``frame``.

    Attributes:
        frame: the table; its index is not written (reset it first to keep it).
        formats: column name -> Excel number format of that column's numeric cells (others: General).
        row_formats: optional number format per row, for tables whose rows carry the unit (a risk table
            with a count row and loss rows); a non-None entry overrides ``formats`` for that row's
            numeric cells.
        caption: optional bold line written above the header (e.g. what the numbers are a fraction of).
    """

    frame: pd.DataFrame
    formats: Mapping[str, str] = field(default_factory=dict)
    row_formats: Sequence[str | None] | None = None
    caption: str | None = None

    def __post_init__(self) -> None:
        if self.row_formats is not None and len(self.row_formats) != len(self.frame):
            raise ValueError(f"row_formats: {len(self.row_formats)} entries for {len(self.frame)} rows")


@dataclass
class Sheet:
    """A worksheet: ``blocks`` written top to bottom, one blank row between them. The panes are
    frozen below the first block's header and right of the first column (the row label)."""

    name: str
    blocks: list[Block]


def write_workbook(path: str | os.PathLike[str], sheets: Sequence[Sheet]) -> Path:
    """Write ``sheets`` to the ``.xlsx`` file ``path`` atomically and return the path.

    Each block's header is bold, each column as wide as its longest shown value (header included,
    between 6 and 60 characters), panes frozen under the first header, numeric cells formatted per
    :class:`Block`. NaN / inf are written as empty cells (Excel has no NaN).
    """
    import openpyxl

    path = Path(path)
    for sheet in sheets:
        rows = sum(len(b.frame) + 1 + (b.caption is not None) for b in sheet.blocks) + len(sheet.blocks) - 1
        if rows > EXCEL_MAX_ROWS:
            raise ValueError(f"sheet {sheet.name!r}: {rows:,} rows exceed Excel's {EXCEL_MAX_ROWS:,}")

    def write(tmp: Path) -> None:
        wb = openpyxl.Workbook(write_only=True)
        for sheet in sheets:
            _write_sheet(wb, sheet)
        wb.save(tmp)

    atomic_write(path, write, suffix=".tmp.xlsx")
    return path


def _write_sheet(wb: Any, sheet: Sheet) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title=sheet.name)
    # widths and panes must be set before the first row is streamed out
    widths: dict[int, float] = {}
    for block in sheet.blocks:
        for j, col in enumerate(block.frame.columns):
            fmts = {block.formats.get(col)} if block.row_formats is None else set(block.row_formats)
            w = max(column_width(block.frame[col], f) for f in fmts)
            w = max(w, _text_width(str(col)))
            widths[j] = max(widths.get(j, 0.0), w)
    for j, w in widths.items():
        ws.column_dimensions[get_column_letter(j + 1)].width = min(max(w + 2, _MIN_WIDTH), _MAX_WIDTH)
    header_row = 1 + (sheet.blocks[0].caption is not None) if sheet.blocks else 1
    ws.freeze_panes = f"B{header_row + 1}"

    bold = Font(bold=True)
    for i, block in enumerate(sheet.blocks):
        if i:
            ws.append([])
        if block.caption is not None:
            ws.append([_text_cell(ws, block.caption, bold)])
        ws.append([_text_cell(ws, str(col), bold) for col in block.frame.columns])
        columns = [_cell_values(block.frame[col]) for col in block.frame.columns]
        col_formats = [block.formats.get(col) for col in block.frame.columns]
        for r, values in enumerate(zip(*columns)):
            row_fmt = None if block.row_formats is None else block.row_formats[r]
            cells = []
            for value, fmt in zip(values, col_formats):
                fmt = row_fmt or fmt
                # an empty (NaN) cell keeps the column's format too: a value typed in later shows alike
                if isinstance(value, str):
                    cells.append(_text_cell(ws, value))
                elif fmt is None or isinstance(value, bool):
                    cells.append(value)
                else:
                    cell = WriteOnlyCell(ws, value)
                    cell.number_format = fmt
                    cells.append(cell)
            ws.append(cells)


def _cell_values(series: pd.Series) -> list[Any]:
    """Python values for one column: floats (NaN/inf -> None), ints, bools, text."""
    # nullable columns (pandas NA) take the element-wise path below
    has_na = bool(series.isna().any())
    if pd.api.types.is_bool_dtype(series) and not has_na:
        return [bool(v) for v in series]
    if pd.api.types.is_integer_dtype(series) and not has_na:
        return [int(v) for v in series.to_numpy(np.int64)]
    if pd.api.types.is_float_dtype(series):
        arr = series.to_numpy(np.float64)
        return [float(v) if math.isfinite(v) else None for v in arr]
    out = []
    for v in series.astype(object):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and not math.isfinite(v)):
            out.append(None)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        elif isinstance(v, (float, np.floating)):
            out.append(float(v))
        else:
            out.append(str(v))
    return out


def column_width(series: pd.Series, number_format: str | None) -> float:
    """Characters needed to show the widest value of ``series`` in ``number_format``.

    Numbers: the width of the smallest and the largest value as Excel shows them (the widest shown
    value of a column is at one of its extremes, the sign included), so a million-row column costs two
    formatting calls. Text: the longest string.
    """
    if len(series) == 0:
        return 0.0
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        arr = series.to_numpy(np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return 0.0
        return float(max(len(_shown(float(v), number_format)) for v in (arr.min(), arr.max())))
    return float(max(_text_width(str(v)) for v in series.astype(object) if v is not None) or 0)


def _text_cell(ws: Any, text: str, font: Any = None) -> Any:
    """A write-only string cell for ``text``: formula-like text is kept a string (openpyxl would store
    it as a formula) and marked with the quote-prefix style, as Excel does for text typed after ``'``."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, text)
    if text.startswith(FORMULA_PREFIXES):
        cell.data_type = "s"
        cell.quotePrefix = True
    if font is not None:
        cell.font = font
    return cell


def _text_width(text: str) -> float:
    return float(max((len(line) for line in text.splitlines()), default=0))


def _shown(value: float, number_format: str | None) -> str:
    """``value`` as Excel would display it in ``number_format`` (the formats of this module)."""
    if number_format in (MONEY_FORMAT, COUNT_FORMAT):
        return f"{value:,.0f}"
    if number_format == PERCENT_FORMAT:
        return f"{value * 100:.2f}%"
    if number_format == YEARS_FORMAT:
        return f"{value:.2f}"
    if number_format == RATIO_FORMAT:
        return f"{value:.3f}"
    # General shows at most 11 characters of a number
    text = f"{value:.10g}"
    return text if len(text) <= 11 else f"{value:.5g}"
