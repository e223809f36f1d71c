"""Locating and parsing the compressed CSV files shipped under ``creditsim/datasets/<name>/``.

Restricted FRED series (ICE BofA spreads, Case-Shiller) are not shipped: :func:`read_fred_series` finds
them with :func:`creditsim.datasets.restricted.restricted_path` (``$CREDITSIM_DATA_DIR``, the user cache,
or ``shared/data/macro`` beside a checkout). Every reader here is cached (``functools.lru_cache``);
public loaders return copies so a caller that mutates a frame cannot corrupt the cache.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.datasets.restricted import check_restricted_span, is_restricted, restricted_path
from creditsim.errors import DataError
from creditsim.schema import month_start

__all__ = [
    "DATA_ROOT",
    "data_path",
    "read_fred_series",
    "parse_fred_csv",
    "month_start_range",
    "quarterly_to_monthly",
    "parse_month",
]

DATA_ROOT: Path = Path(__file__).resolve().parent


def data_path(folder: str, name: str) -> Path:
    """Path of a bundled file; a missing file (broken install) raises :class:`DataError`."""
    path = DATA_ROOT / folder / name
    if not path.is_file():
        raise DataError(
            f"bundled data file '{folder}/{name}' is missing from {DATA_ROOT}; "
            "reinstall creditsim (package data not installed?)"
        )
    return path


def parse_fred_csv(path: Path, series_id: str) -> pd.Series:
    """Parse one FRED download into a float64 Series indexed by observation date, NaN where FRED is missing.

    Reads every layout the FRED files come in: ``date,value`` (the shared copies), ``DATE,<ID>`` (older
    FRED downloads) and ``observation_date,<ID>`` (FRED's CSV endpoint since 2024); FRED writes a missing
    observation as an empty field or ``.``. ``path`` may be plain or ``.gz``.

    Raises:
        DataError: not two columns, a header naming another series, or a date that is not ``YYYY-MM-DD``
            (e.g. an HTML error page saved instead of the CSV).
    """
    try:
        raw = pd.read_csv(path, na_values=["."], keep_default_na=True)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a FRED CSV file ({' '.join(str(exc).split())})") from None
    if raw.shape[1] != 2:
        raise DataError(f"{path}: expected 2 columns (date, {series_id}), got {raw.shape[1]}")
    date_col, value_col = raw.columns[0], raw.columns[1]
    if str(value_col).strip().lower() not in ("value", series_id.lower()):
        raise DataError(f"{path}: value column is {value_col!r}, expected {series_id!r} or 'value'")
    try:
        dates = pd.to_datetime(raw[date_col], format="%Y-%m-%d")
    except (ValueError, TypeError):
        raise DataError(f"{path}: column {date_col!r} must hold YYYY-MM-DD dates") from None
    index = pd.DatetimeIndex(dates, name="date")
    values = pd.to_numeric(raw[value_col], errors="coerce").to_numpy(np.float64)
    return pd.Series(values, index=index, name=series_id)


@lru_cache(maxsize=None)
def read_fred_series(series_id: str) -> pd.Series:
    """One FRED series as a float64 Series indexed by observation date, NaN where FRED is missing.

    Public-domain series come from ``creditsim/datasets/fred/<ID>.csv.gz``; restricted ones (see
    :data:`creditsim.datasets.restricted.RESTRICTED_FILES`) from the user's data directory, cache or the
    sibling ``shared/data/macro/fred_series/<ID>.csv``.

    Raises:
        DataError: the file is missing (a restricted series not fetched yet: the message says how to
            fetch it) or malformed.
    """
    if not is_restricted(series_id):
        return parse_fred_csv(data_path("fred", f"{series_id}.csv.gz"), series_id)
    path = restricted_path(series_id)
    series = parse_fred_csv(path, series_id)
    check_restricted_span(series_id, path, series.dropna().index)
    return series


def month_start_range(start: pd.Timestamp, end: pd.Timestamp, name: str = "reporting_month") -> pd.DatetimeIndex:
    """Month-start ``DatetimeIndex`` (freq ``MS``) from ``start`` to ``end`` inclusive.

    Builds a new range; :func:`creditsim.schema.monthly_index` instead checks a given index (one date per
    month, any day of the month) and keeps its dates, so it cannot stand in here.
    """
    return pd.date_range(start, end, freq="MS", name=name)


def quarterly_to_monthly(quarterly: pd.Series) -> pd.Series:
    """Linear interpolation of a quarterly series (dated at quarter start) to month starts.

    A quarterly observation is a quarter average (GDP, delinquency rates), so it is placed at the
    middle month of its quarter and months in between are interpolated linearly. The first month of
    the first quarter and the last month of the last quarter hold the nearest quarterly value (no
    extrapolation of the trend). A missing quarter inside the span is interpolated over.
    """
    q = quarterly.dropna()
    if q.empty:
        return pd.Series(dtype=np.float64, name=quarterly.name)
    mid = pd.Series(q.to_numpy(np.float64), index=q.index + pd.DateOffset(months=1))
    months = month_start_range(q.index[0], q.index[-1] + pd.DateOffset(months=2))
    out = mid.reindex(months).interpolate(method="linear", limit_area="inside")
    out = out.bfill(limit=1).ffill(limit=1)
    out.name = quarterly.name
    return out


def parse_month(value: object, name: str) -> pd.Timestamp | None:
    """Parse a ``start``/``end`` argument ("1990-01", a date, a Timestamp) to its month start; None stays None."""
    return None if value is None else month_start(value, name)
