"""Locating and parsing the compressed CSV files shipped under ``creditsim/datasets/<name>/``.

Every parser here is cached (``functools.lru_cache``); public loaders return copies so a caller that
mutates a frame cannot corrupt the cache.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.errors import DataError
from creditsim.schema import month_start

__all__ = [
    "DATA_ROOT",
    "data_path",
    "read_fred_series",
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


@lru_cache(maxsize=None)
def read_fred_series(series_id: str) -> pd.Series:
    """One FRED series as a float64 Series indexed by observation date, NaN where FRED is missing.

    The files are FRED downloads (``date,value`` or ``DATE,<ID>``); FRED writes a missing observation
    as an empty field or ``.``.
    """
    path = data_path("fred", f"{series_id}.csv.gz")
    raw = pd.read_csv(path, na_values=["."], keep_default_na=True)
    date_col, value_col = raw.columns[0], raw.columns[1]
    index = pd.DatetimeIndex(pd.to_datetime(raw[date_col], format="%Y-%m-%d"), name="date")
    values = pd.to_numeric(raw[value_col], errors="coerce").to_numpy(np.float64)
    series = pd.Series(values, index=index, name=series_id)
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
