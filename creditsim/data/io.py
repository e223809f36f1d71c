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
from pathlib import Path

import pandas as pd

from creditsim.errors import DataError
from creditsim.schema import validate_loan_tape, validate_panel
from creditsim.fileio import atomic_write

__all__ = ["read_loan_tape", "write_loan_tape", "read_panel", "write_panel", "file_format", "atomic_write_frame",
           "atomic_write"]

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


def _read_frame(path: str | os.PathLike[str], what: str) -> pd.DataFrame:
    fmt = file_format(path)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} file {os.fspath(path)} does not exist or is not a file")
    try:
        if fmt == "csv":
            header = pd.read_csv(p, nrows=0)
            dtype = {c: str for c in _TEXT_COLUMNS if c in header.columns}
            return pd.read_csv(p, dtype=dtype, keep_default_na=True)
        return pd.read_parquet(p, engine="pyarrow")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{what} file {os.fspath(path)} cannot be read as {fmt.upper()}: {_first_line(exc)}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid etc. for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"{what} file {os.fspath(path)} cannot be read as {fmt.upper()}: {_first_line(exc)}") from exc
        raise


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


def read_loan_tape(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a loan tape (CSV or Parquet by extension).

    Returns:
        the cleaned tape of :func:`creditsim.schema.validate_loan_tape` (dates parsed, categories
        normalised).

    Raises:
        DataError: unknown extension, unreadable file, or a tape violating the data contract (the
            message names the column, up to 10 row labels and what was expected).
    """
    return validate_loan_tape(_read_frame(path, "loan tape"))


def write_loan_tape(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate ``df`` as a loan tape and write it atomically (CSV or Parquet by extension)."""
    file_format(path)
    return atomic_write_frame(validate_loan_tape(df), path)


def read_panel(path: str | os.PathLike[str], check_transitions: bool = True) -> pd.DataFrame:
    """Read and validate a loan x month panel (CSV or Parquet by extension).

    Returns:
        the cleaned panel of :func:`creditsim.schema.validate_panel`, sorted by loan and month.

    Raises:
        DataError: unknown extension, unreadable file, or a panel violating the data contract (states
            outside 0..6, forbidden month-to-month moves, ...).
    """
    return validate_panel(_read_frame(path, "panel"), check_transitions=check_transitions)


def write_panel(df: pd.DataFrame, path: str | os.PathLike[str], validate: bool = True) -> Path:
    """Write a panel atomically (CSV or Parquet by extension), validating it first unless told not to.

    ``validate=False`` is for panels this package has just generated (validation of a multi-million
    row panel costs seconds); the file is still checked when it is read back.
    """
    file_format(path)
    frame = validate_panel(df) if validate else df
    return atomic_write_frame(frame, path)
