"""US commercial-bank delinquency and charge-off rates by loan type (Federal Reserve Board).

The history a credit link is calibrated on (:mod:`creditsim.macro.credit_link`): how the loss experience
of each kind of loan moved with the economy since the 1980s. :data:`ASSET_CLASS_SERIES` maps the loan
tape's four asset classes to the series that stands for them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from creditsim.datasets.files import data_path
from creditsim.errors import ConfigError, DataError

__all__ = ["load_bank_loss_rates", "ASSET_CLASS_SERIES", "DELINQUENCY_SERIES", "CHARGE_OFF_SERIES"]

_FOLDER = "credit_losses"

#: delinquency-rate series: column name -> FRED id (30+ days past due or nonaccrual, % of loans, SA)
DELINQUENCY_SERIES: dict[str, str] = {
    "all": "DRALACBS",
    "business": "DRBLACBS",
    "consumer": "DRCLACBS",
    "credit_card": "DRCCLACBS",
    "residential_mortgage": "DRSFRMACBS",
}

#: charge-off-rate series (annualised, net of recoveries, SA): column name -> FRED id
CHARGE_OFF_SERIES: dict[str, str] = {
    "all": "CORALACBS",
    "business": "CORBLACBS",
    "consumer": "CORCACBS",
    "credit_card": "CORCCACBS",
    "other_consumer": "COROCACBS",
    "residential_mortgage": "CORSFRMACBS",
    "commercial_real_estate": "CORCREXFACBS",
    "real_estate": "CORSREACBS",
}

#: loan-tape asset class -> the delinquency column standing for it. Receivables are short-dated claims on
#: businesses, so they take the business-loan series (no bank series covers trade receivables).
ASSET_CLASS_SERIES: dict[str, str] = {
    "corporate": "business",
    "consumer": "consumer",
    "real_estate": "residential_mortgage",
    "receivables": "business",
}

_MEASURES = {"delinquency": DELINQUENCY_SERIES, "charge_off": CHARGE_OFF_SERIES}


@lru_cache(maxsize=None)
def _read(series_id: str) -> pd.Series:
    path = data_path(_FOLDER, f"{series_id}.csv")
    raw = pd.read_csv(path)
    if list(raw.columns) != ["DATE", series_id]:
        raise DataError(f"{path.name}: expected the header 'DATE,{series_id}', got {','.join(map(str, raw.columns))}")
    index = pd.DatetimeIndex(pd.to_datetime(raw["DATE"], format="%Y-%m-%d"), name="quarter")
    values = pd.to_numeric(raw[series_id], errors="coerce").to_numpy(np.float64)
    if np.isnan(values).any():
        raise DataError(f"{path.name}: row {int(np.flatnonzero(np.isnan(values))[0]) + 2} is not a number")
    expected = pd.date_range(index[0], periods=len(index), freq="QS")
    if not index.equals(expected):
        raise DataError(f"{path.name}: dates are not one per quarter without gaps from {index[0]:%Y-%m}")
    return pd.Series(values / 100.0, index=expected.rename("quarter"), name=series_id)


def load_bank_loss_rates(measure: str = "delinquency") -> pd.DataFrame:
    """Quarterly loss-experience rates of all US commercial banks by loan type, as fractions.

    Args:
        measure: ``"delinquency"`` -- the share of loans 30+ days past due or on nonaccrual (a stock,
            quarter average), long histories: all loans 1985Q1-2025Q4, business and consumer
            1987Q1-2024Q2, credit cards and residential mortgages 1991Q1-2026Q2; or ``"charge_off"`` --
            annualised net charge-offs over average loans, **2020Q1-2024Q2 only** (residential and
            commercial real estate from 2019Q4): the recent level, too short to calibrate on.

    Returns:
        float64 DataFrame, index the quarter's first day (``DatetimeIndex`` named ``quarter``, freq
        ``QS``), one column per loan type (:data:`DELINQUENCY_SERIES` / :data:`CHARGE_OFF_SERIES` keys),
        fractions (0.0148 = 1.48 %), NaN outside a series' range. ``attrs``: ``series`` (column -> FRED
        id), ``measure``, ``source``.

    Source: Board of Governors of the Federal Reserve System, "Charge-Off and Delinquency Rates on Loans
    and Leases at Commercial Banks" (all commercial banks, seasonally adjusted), as republished by FRED
    (Federal Reserve Bank of St. Louis) under the series ids above. US-government work, public domain.
    Copies and checks: ``creditsim/datasets/credit_losses/PROVENANCE.md``.
    """
    if measure not in _MEASURES:
        raise ConfigError(f"measure must be one of {list(_MEASURES)}, got {measure!r}")
    series = _MEASURES[measure]
    frame = pd.concat({col: _read(sid) for col, sid in series.items()}, axis=1, sort=True)
    frame.index = pd.DatetimeIndex(frame.index, freq="QS", name="quarter")
    frame.attrs.update(series=dict(series), measure=measure,
                       source="Board of Governors of the Federal Reserve System via FRED; public domain")
    return frame
