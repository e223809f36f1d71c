"""Raw FRED data: the FRED-MD monthly database (restricted: read from the user's site, not shipped) and the
NBER recession flag (shipped)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from pathlib import Path

from creditsim.datasets.files import read_fred_series
from creditsim.datasets.restricted import FRED_MD_KEY, check_restricted_span, restricted_path
from creditsim.errors import DataError

__all__ = ["load_fred_md", "load_recession_indicator", "apply_fred_md_transform", "parse_fred_md", "FRED_MD_TCODES"]

#: McCracken & Ng transformation codes
FRED_MD_TCODES: dict[int, str] = {
    1: "level x_t",
    2: "first difference x_t - x_{t-1}",
    3: "second difference",
    4: "log x_t",
    5: "log difference log x_t - log x_{t-1}",
    6: "second log difference",
    7: "difference of growth rates (x_t / x_{t-1} - 1) - (x_{t-1} / x_{t-2} - 1)",
}


def parse_fred_md(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Parse a FRED-MD monthly CSV (any vintage, plain or ``.gz``): the raw levels and the tcodes.

    Returns:
        ``(values, tcodes)``: float64 DataFrame on a gap-free month-start index ``reporting_month``, one
        column per mnemonic in file order; mnemonic -> transformation code (row 2 of the file).

    Raises:
        DataError: row 2 is not the ``Transform:`` row, or ``sasdate`` (``M/D/YYYY``) is not a gap-free
            monthly sequence (e.g. an HTML page saved instead of the CSV).
    """
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a FRED-MD CSV file ({' '.join(str(exc).split())})") from None
    first = raw.columns[0]
    if len(raw) < 2 or str(raw.iloc[0, 0]).strip().lower() != "transform:":
        raise DataError(f"{path}: row 2 must hold the FRED-MD 'Transform:' codes")
    tcodes = {c: int(raw.iloc[0][c]) for c in raw.columns[1:]}
    body = raw.iloc[1:].dropna(subset=[first])  # the file ends with an all-empty line
    try:
        index = pd.DatetimeIndex(pd.to_datetime(body[first], format="%m/%d/%Y"), name="reporting_month")
    except (ValueError, TypeError):
        raise DataError(f"{path}: column {first!r} must hold M/D/YYYY dates") from None
    values = body.drop(columns=first).apply(pd.to_numeric, errors="coerce").astype(np.float64)
    values.index = pd.date_range(index[0], periods=len(index), freq="MS", name="reporting_month")
    if not (values.index == index).all():
        raise DataError(f"{path}: sasdate is not a gap-free monthly sequence")
    return values, tcodes


@lru_cache(maxsize=1)
def _fred_md() -> tuple[pd.DataFrame, dict[str, int]]:
    path = restricted_path(FRED_MD_KEY)
    values, codes = parse_fred_md(path)
    check_restricted_span(FRED_MD_KEY, path, values.dropna(how="all").index)
    return values, codes


def apply_fred_md_transform(series: pd.Series, tcode: int) -> pd.Series:
    """Apply one FRED-MD transformation code (1..7, see :data:`FRED_MD_TCODES`) to a monthly series.

    Log codes (4, 5, 6) need positive values; the first 1 or 2 months of differenced codes are NaN.
    """
    if tcode not in FRED_MD_TCODES:
        raise DataError(f"tcode must be one of {sorted(FRED_MD_TCODES)}, got {tcode!r}")
    x = series.astype(np.float64)
    if tcode in (4, 5, 6):
        if (x <= 0).any():
            raise DataError(f"series {series.name!r}: tcode {tcode} takes logs but has values <= 0")
        x = np.log(x)
    if tcode == 1 or tcode == 4:
        return x
    if tcode in (2, 5):
        return x.diff()
    if tcode in (3, 6):
        return x.diff().diff()
    return (x / x.shift(1) - 1.0).diff()  # tcode 7


def load_fred_md(transform: bool = False) -> pd.DataFrame:
    """FRED-MD monthly macro database, vintage 2019-10: 729 months (1959-01 .. 2019-09) x 128 series.

    Args:
        transform: ``False`` (default) returns the raw levels as published; ``True`` applies each
            series' transformation code (stationary form used in factor models; first rows NaN).

    Returns:
        float64 DataFrame, month-start ``DatetimeIndex`` ``reporting_month`` (freq ``MS``), one column
        per FRED-MD mnemonic in file order (units as published: percent, index levels, thousands...).
        NaN marks observations the vintage does not have (ragged edge in 2019, a few series starting
        late). ``df.attrs["tcodes"]`` maps each mnemonic to its McCracken & Ng transformation code
        (1 level, 2 diff, 3 diff^2, 4 log, 5 diff log, 6 diff^2 log, 7 diff of growth rates; see
        :data:`FRED_MD_TCODES`). Map columns by name: this vintage still has ``TWEXMMTH``, ``VXOCLSx``,
        ``AMBSL`` (renamed in later vintages).

    Source and licence: FRED-MD, Federal Reserve Bank of St. Louis; McCracken, M. W. & Ng, S. (2016),
    "FRED-MD: A Monthly Database for Macroeconomic Research", Journal of Business & Economic Statistics
    34(4). No licence stated; several constituent series are third-party copyrighted (S&P 500 series,
    Moody's AAA/BAA, VXO, Michigan sentiment): **internal research use only; do not republish.** Hence
    not shipped: the file ``fred_md_2019-10.csv`` is read from ``$CREDITSIM_DATA_DIR``, the user cache
    (``creditsim data fetch --series FRED-MD`` downloads the vintage from the St. Louis Fed) or, in a
    source checkout, ``../shared/data/macro/`` (a copy of GitHub ``geoluna/FactorModels``
    ``data/current.csv``, commit c60dea4).

    Raises:
        DataError: the file is not found (one line: how to fetch it) or is malformed.
    """
    values, tcodes = _fred_md()
    out = values.copy()
    if transform:
        out = pd.DataFrame(
            {c: apply_fred_md_transform(out[c], tcodes[c]) for c in out.columns}, index=out.index
        )
    out.attrs = {"tcodes": dict(tcodes), "vintage": "2019-10", "transformed": bool(transform)}
    return out


@lru_cache(maxsize=1)
def _usrec() -> pd.DataFrame:
    usrec = read_fred_series("USREC").dropna()
    index = pd.date_range(usrec.index[0], usrec.index[-1], freq="MS", name="reporting_month")
    if len(index) != len(usrec) or not set(np.unique(usrec.to_numpy())) <= {0.0, 1.0}:
        raise DataError("USREC.csv: expected a gap-free monthly 0/1 series")
    return pd.DataFrame({"recession": usrec.to_numpy().astype(np.int8)}, index=index)


def load_recession_indicator() -> pd.DataFrame:
    """NBER-based US recession indicator (FRED ``USREC``), monthly, 1980-01 .. 2025-12 (552 months).

    Returns:
        DataFrame with one int8 column ``recession`` (1 = the month lies in an NBER recession, from the
        month after the peak through the trough), month-start ``DatetimeIndex`` ``reporting_month``.
        The recessions covered: 1980-02..07, 1981-08..1982-11, 1990-08..1991-03, 2001-04..11,
        2008-01..2009-06, 2020-03..04 (COVID). The latest months are provisional: NBER dates a peak
        or trough months after the fact, so 0 at the end means "no recession announced". Useful to label macro windows (e.g. as stressed scenarios).

    Source and licence: FRED, Federal Reserve Bank of St. Louis, series USREC ("NBER based Recession
    Indicators for the United States from the Period following the Peak through the Trough"),
    derived from NBER business-cycle dates; copied via GitHub ``sivamsapingali/Codex_Macro-Monitor``
    (commit 7fb9755, 2026-01-03), full length. No licence stated in the source repo; FRED data, cite FRED and NBER.
    """
    return _usrec().copy()
