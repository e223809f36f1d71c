"""Read and write loan tapes and panels as CSV or Parquet (pyarrow), chosen by file extension.

Reads validate with :func:`creditsim.schema.validate_loan_tape` / :func:`~creditsim.schema.validate_panel`
and return the cleaned frame; writes are atomic: the file is written to a temporary file in the same
directory and moved into place with :func:`os.replace`, so a reader never sees a half-written file and an
interrupted write leaves the old file untouched.

Extensions: ``.csv``, ``.csv.gz`` (CSV, gzip by extension) and ``.parquet`` / ``.pq``.

Writes go through :func:`creditsim.fileio.atomic_write` (re-exported here), the package's one
temp-file + ``os.replace`` helper, which also gives the file the umask's mode rather than mkstemp's 0600.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from creditsim.errors import DataError
from creditsim.schema import id_strings, validate_loan_tape, validate_panel
from creditsim.fileio import atomic_write

__all__ = ["read_loan_tape", "write_loan_tape", "read_panel", "write_panel", "file_format", "atomic_write_frame",
           "atomic_write", "read_frame"]

_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: columns read as text from CSV (identifiers must not become numbers: "007" stays "007")
_TEXT_COLUMNS = ("loan_id", "originator_id", "vintage", "geography_country", "rating")


def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` or ``"parquet"`` from the file name; DataError for any other extension."""
    name = Path(path).name.lower()
    for ext in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return _FORMATS[ext]
    raise DataError(
        f"{os.fspath(path)}: unknown file extension; expected one of {sorted(_FORMATS)} (CSV or Parquet)"
    )


#: leading bytes of files that are not CSV text although they may be named .csv
_BINARY_MAGIC = {b"PK\x03\x04": "an Excel .xlsx (zip) file", b"\xd0\xcf\x11\xe0": "an Excel .xls file",
                 b"PAR1": "a Parquet file"}


def _id_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Identifier columns as strings (:func:`creditsim.schema.id_strings`), the same for CSV and Parquet."""
    for col in _TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = id_strings(frame[col])
    return frame


def read_frame(path: str | os.PathLike[str], what: str = "loan tape") -> pd.DataFrame:
    """Read a CSV or Parquet file (by extension) without validating it: the one reader of tapes and
    panels for the library and the CLI.

    CSV: UTF-8 with or without a byte-order mark; identifier columns (``loan_id``, ``originator_id``,
    ``vintage``, ``geography_country``, ``rating``) are read as text so that ``"007"`` keeps its zeros.
    Parquet: identifier columns stored as numbers become integer text (``7`` -> ``"7"``), the same
    string a CSV without leading zeros gives.

    Raises:
        DataError: unknown extension, missing/empty file, an Excel or Parquet file named .csv, a CSV
            whose header is one field holding ``;``/tab/``|`` (wrong delimiter), or any reader failure;
            one line naming the file.
    """
    fmt = file_format(path)
    p = Path(path)
    name = os.fspath(path)
    if not p.is_file():
        raise DataError(f"{what} file {name} does not exist or is not a file")
    if p.stat().st_size == 0:
        raise DataError(f"{what} file {name} is empty; expected a header row and one row per record")
    if fmt == "csv" and not p.name.lower().endswith(".gz"):
        with p.open("rb") as fh:
            head = fh.read(4)
        for magic, kind in _BINARY_MAGIC.items():
            if head.startswith(magic):
                raise DataError(f"{what} file {name} is {kind}, not CSV text; save it as CSV (comma-separated) "
                                f"or use a matching extension")
    try:
        if fmt == "csv":
            header = pd.read_csv(p, nrows=0, encoding="utf-8-sig")
            cols = [str(c) for c in header.columns]
            if len(cols) == 1:
                for sep in (";", "\t", "|"):
                    if sep in cols[0]:
                        raise DataError(f"{what} file {name}: the header is one field {cols[0][:60]!r}; expected "
                                        f"comma-separated columns (the file looks {sep!r}-separated)")
            dtype = {c: str for c in _TEXT_COLUMNS if c in cols}
            frame = pd.read_csv(p, dtype=dtype, keep_default_na=True, encoding="utf-8-sig")
        else:
            frame = pd.read_parquet(p, engine="pyarrow")
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{what} file {name} cannot be read as {fmt.upper()}: {_first_line(exc)}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc. for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"{what} file {name} cannot be read as {fmt.upper()}: {_first_line(exc)}") from exc
        raise
    frame.columns = [str(c).strip() for c in frame.columns]
    return _id_columns(frame)


_read_frame = read_frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def atomic_write_frame(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (no index) to ``path`` as CSV or Parquet, atomically (:func:`atomic_write`).

    The parent directory is created if needed. Dates are written as ISO dates in CSV.
    """
    fmt = file_format(path)
    target = Path(path)

    def write(tmp: Path) -> None:
        if fmt == "csv":
            compression = "gzip" if target.name.lower().endswith(".gz") else None
            df.to_csv(tmp, index=False, date_format="%Y-%m-%d", compression=compression)
        else:
            df.to_parquet(tmp, engine="pyarrow", index=False)

    return atomic_write(target, write, suffix="".join(target.suffixes) + ".tmp")


def read_loan_tape(path: str | os.PathLike[str], date_format: str | None = None, cutoff: object = None) -> pd.DataFrame:
    """Read (:func:`read_frame`) and validate a loan tape (CSV or Parquet by extension).

    ``date_format`` / ``cutoff``: see :func:`creditsim.schema.validate_loan_tape` (without a format only
    ISO ``YYYY-MM-DD`` dates are accepted).

    Returns:
        the cleaned tape of :func:`creditsim.schema.validate_loan_tape` (dates parsed, categories
        normalised).

    Raises:
        DataError: unknown extension, unreadable file, or a tape violating the data contract (the
            message names the column, up to 10 row labels and what was expected).
    """
    return validate_loan_tape(read_frame(path, "loan tape"), date_format=date_format, cutoff=cutoff)


def write_loan_tape(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate ``df`` as a loan tape and write it atomically (CSV or Parquet by extension)."""
    file_format(path)
    return atomic_write_frame(validate_loan_tape(df), path)


def read_panel(path: str | os.PathLike[str], check_transitions: bool = True,
               date_format: str | None = None, required: Sequence[str] | None = None) -> pd.DataFrame:
    """Read (:func:`read_frame`) and validate a loan x month panel (CSV or Parquet by extension).

    ``required``: the columns the consumer reads (default: the data contract's
    :data:`~creditsim.schema.REQUIRED_PANEL_COLUMNS`; a transition model's trainer needs only
    :data:`~creditsim.schema.STATE_PANEL_COLUMNS`); the other contract columns present are checked either way.

    Returns:
        the cleaned panel of :func:`creditsim.schema.validate_panel`, sorted by loan and month.

    Raises:
        DataError: unknown extension, unreadable file, or a panel violating the data contract (states
            outside 0..6, forbidden month-to-month moves, ...).
    """
    return validate_panel(read_frame(path, "panel"), check_transitions=check_transitions, date_format=date_format,
                          required=required)


def write_panel(df: pd.DataFrame, path: str | os.PathLike[str], validate: bool = True) -> Path:
    """Write a panel atomically (CSV or Parquet by extension), validating it first unless told not to.

    ``validate=False`` is for panels this package has just generated (validation of a multi-million
    row panel costs seconds); the file is still checked when it is read back.
    """
    file_format(path)
    frame = validate_panel(df) if validate else df
    return atomic_write_frame(frame, path)
