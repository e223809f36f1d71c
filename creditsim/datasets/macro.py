"""US macro history in the 9 :data:`~creditsim.states.MACRO_VARS`, monthly decimals, from 1980-01.

Built from the full-length public-domain FRED series shipped in ``creditsim/datasets/fred/`` (to late
2025), the Federal Reserve Board delinquency rate in ``creditsim/datasets/credit_losses/DRALACBS.csv``
(1985Q1 .. 2025Q4) and the restricted series that are not shipped (their publishers forbid
republication): the ICE BofA spreads, Case-Shiller and, for the 1979 CPI base and the back-fill
regressors, the FRED-MD 2019-10 vintage, read from ``$CREDITSIM_DATA_DIR``, the user cache (``creditsim
data fetch``) or ``../shared/data/macro`` beside a checkout (:mod:`creditsim.datasets.restricted`). The
frame ends at the common end of the 9 variables (``ragged="trim"``, default; 2025-09 with the bundled
files, the last month of GDP's last published quarter) or, with ``ragged="keep"``, runs on with NaN
where a series has ended.
See :func:`load_macro_history`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from creditsim.datasets.credit_losses import load_bank_loss_rates
from creditsim.datasets.files import month_start_range, parse_month, quarterly_to_monthly, read_fred_series
from creditsim.datasets.fred import load_fred_md
from creditsim.errors import ConfigError
from creditsim.schema import validate_macro
from creditsim.states import MACRO_VARS

__all__ = ["load_macro_history", "macro_state", "BACKFILL_REGRESSORS", "LATE_VARIABLES", "BACKFILL_VINTAGE_END", "RAGGED_MODES"]

#: the back-fill regressions are estimated on the bundled series as observed through this month (the
#: raw files cut at its last day, as the package bundled them before the full-length update). The
#: FRED-MD regressors end in 2019-09 anyway; fixing the estimation vintage keeps the back-filled early
#: years (and the fits :mod:`creditsim.datasets.fed` reuses) independent of later data releases, e.g.
#: of the 2019-12 GDP month, which the full-length GDPC1 now interpolates towards 2020Q1.
BACKFILL_VINTAGE_END: pd.Timestamp = pd.Timestamp("2019-12-01")
#: how :func:`load_macro_history` treats the ragged end: ``"trim"`` (default) ends at the last month up
#: to which all 9 variables are observed without a gap; ``"keep"`` runs to the last month any variable
#: is observed and leaves NaN where a series has ended or has a missing month (never forward-filled)
RAGGED_MODES: tuple[str, ...] = ("trim", "keep")

#: cyclical regressors of the back-fill of spreads and default rate: observed (or, for gdp_growth in 1980,
#: back-filled first) over the whole frame and, unlike the 1980-84 rate regime (fed funds up to 19 %),
#: inside the range seen in the fit period
BACKFILL_REGRESSORS: tuple[str, ...] = ("gdp_growth", "unemployment_rate", "baa_treasury_spread")
#: variables whose FRED source starts after the frame's first month (first observed month in brackets),
#: in back-fill order: gdp_growth (1981-01: y/y needs 1979 GDP), credit_spread_ig / credit_spread_hy
#: (1996-12), house_price_growth (1988-01), default_rate (1985-01)
LATE_VARIABLES: tuple[str, ...] = (
    "gdp_growth",
    "credit_spread_ig",
    "credit_spread_hy",
    "house_price_growth",
    "default_rate",
)
#: per late variable: (regressors, offset). The target minus the offset column is regressed; the offset
#: enters with coefficient 1 (nominal house prices follow the general price level one for one).
_BACKFILL_SPECS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "gdp_growth": (("indpro_growth", "unemployment_change"), None),
    "credit_spread_ig": (BACKFILL_REGRESSORS, None),
    "credit_spread_hy": (BACKFILL_REGRESSORS, None),
    "house_price_growth": (("gdp_growth", "unemployment_rate"), "inflation_rate"),
    "default_rate": (BACKFILL_REGRESSORS, None),
}

#: back-filled spreads are floored here: an OAS is positive, and a linear fit must not say otherwise
_SPREAD_FLOOR = {"credit_spread_ig": 0.003, "credit_spread_hy": 0.015}

_SOURCE = (
    "FRED, Federal Reserve Bank of St. Louis: GDPC1 (BEA), UNRATE and CPIAUCSL (BLS), FEDFUNDS, DGS10 "
    "and DRALACBS (Federal Reserve Board), BAMLC0A0CM and BAMLH0A0HYM2 (ICE Data Indices, copyrighted), "
    "CSUSHPINSA (S&P CoreLogic Case-Shiller, copyrighted); FRED-MD 2019-10 vintage (McCracken & Ng) "
    "for 1979 CPI and the back-fill regressors (Moody's Baa - 10y spread, INDPRO, UNRATE); "
    "internal research use only; do not republish (the restricted series are not shipped: fetched at "
    "the user's site)."
)


def _fred_md_regressors() -> pd.DataFrame:
    """Back-fill regressors from FRED-MD, decimals, monthly 1959-01 .. 2019-09.

    ``baa_treasury_spread`` = Moody's Baa corporate yield - 10-year Treasury (``(BAA - GS10) / 100``);
    ``indpro_growth`` = industrial production y/y; ``unemployment_change`` = 12-month change of UNRATE.
    """
    md = load_fred_md()
    unemployment = md["UNRATE"] / 100.0
    return pd.DataFrame(
        {
            "baa_treasury_spread": (md["BAA"] - md["GS10"]) / 100.0,
            "indpro_growth": md["INDPRO"] / md["INDPRO"].shift(12) - 1.0,
            "unemployment_change": unemployment - unemployment.shift(12),
        },
        index=md.index,
    )


def _series(series_id: str, through: pd.Timestamp | None) -> pd.Series:
    """A FRED series (shipped, or restricted and found by :func:`~creditsim.datasets.restricted.restricted_path`),
    cut after the last day of month ``through`` (``None``: full length)."""
    raw = read_fred_series(series_id)
    if through is None:
        return raw
    return raw.loc[raw.index <= through + pd.offsets.MonthEnd(0)]


def _default_rate(through: pd.Timestamp | None) -> pd.Series:
    """``DRALACBS`` (delinquency rate, all loans, all commercial banks), quarterly fractions, from the
    bundled ``credit_losses/DRALACBS.csv`` (1985Q1 .. 2025Q4), cut after the last day of month ``through``."""
    rate = load_bank_loss_rates("delinquency")["all"].dropna().rename("DRALACBS")
    if through is None:
        return rate
    return rate.loc[rate.index <= through + pd.offsets.MonthEnd(0)]


def _cpi_level(through: pd.Timestamp | None = None) -> pd.Series:
    """CPIAUCSL level: the FRED file (1980-01 on) preceded by FRED-MD (1959-1979), the y/y base of 1980."""
    fred = _series("CPIAUCSL", through)
    early = load_fred_md()["CPIAUCSL"]
    early = early.loc[early.index < fred.index[0]]
    level = pd.concat([early, fred.rename(early.name)])
    return pd.Series(level.to_numpy(), index=month_start_range(level.index[0], level.index[-1]), name="CPIAUCSL")


def _observed_variables(through: pd.Timestamp | None = None) -> pd.DataFrame:
    """The 9 variables plus the back-fill regressors where their sources exist, NaN elsewhere.

    Monthly, 1980-01 .. the last month any of the 9 is observed, from the raw series cut after month
    ``through`` (``None``: full length). Nothing is forward-filled: a series that ends early, or a month
    a publisher skipped (UNRATE and CPIAUCSL 2025-10), is NaN.
    """
    gdp_q = _series("GDPC1", through)
    gdp_yoy_q = (gdp_q / gdp_q.shift(4) - 1.0).rename("gdp_growth")
    cpi = _cpi_level(through)
    hpi = _series("CSUSHPINSA", through)
    columns = {
        "gdp_growth": quarterly_to_monthly(gdp_yoy_q),
        "unemployment_rate": _series("UNRATE", through) / 100.0,
        "inflation_rate": cpi / cpi.shift(12) - 1.0,
        "policy_rate": _series("FEDFUNDS", through) / 100.0,
        "yield_10y": _series("DGS10", through).resample("MS").mean() / 100.0,
        "credit_spread_ig": _series("BAMLC0A0CM", through).resample("MS").mean() / 100.0,
        "credit_spread_hy": _series("BAMLH0A0HYM2", through).resample("MS").mean() / 100.0,
        "house_price_growth": hpi / hpi.shift(12) - 1.0,
        "default_rate": quarterly_to_monthly(_default_rate(through)),
    }
    last = max(col.last_valid_index() for col in columns.values())
    # the first month of the FRED files; 1979 CPI comes from FRED-MD, 1980 GDP growth is back-filled
    index = month_start_range(pd.Timestamp("1980-01-01"), last.to_period("M").to_timestamp())
    frame = pd.DataFrame({k: v.reindex(index) for k, v in columns.items()}, index=index)
    regressors = _fred_md_regressors().reindex(index)
    for col in regressors.columns:
        frame[col] = regressors[col]
    return frame


def _backfill(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """OLS back-fill of each late variable (see ``_BACKFILL_SPECS``), fitted on its observed months."""
    out = frame.copy()
    mask = pd.DataFrame(False, index=frame.index, columns=list(MACRO_VARS))
    fits: dict[str, dict[str, float]] = {}
    for var in LATE_VARIABLES:
        regressors, offset_col = _BACKFILL_SPECS[var]
        # from `out`: a regressor back-filled earlier in LATE_VARIABLES order (gdp_growth) is used filled
        design = np.column_stack([np.ones(len(out))] + [out[r].to_numpy() for r in regressors])
        offset = out[offset_col].to_numpy() if offset_col else np.zeros(len(out))
        design_ok = np.isfinite(design).all(axis=1) & np.isfinite(offset)
        y = frame[var].to_numpy() - offset
        fit_rows = design_ok & np.isfinite(y)
        coef, *_ = np.linalg.lstsq(design[fit_rows], y[fit_rows], rcond=None)
        resid = y[fit_rows] - design[fit_rows] @ coef
        r2 = 1.0 - resid.var() / y[fit_rows].var()
        fill_rows = ~np.isfinite(y)
        if not design_ok[fill_rows].all():  # pragma: no cover - guarded by the bundled data
            raise ConfigError(f"cannot back-fill {var}: regressors missing in the fill period")
        pred = design[fill_rows] @ coef
        # Regression errors are persistent (AR(1) rho ~ 0.75-0.99 monthly): backcast the error of the first
        # observed month, decayed by rho per month back, so the series joins without a jump at the splice.
        obs_pos = np.flatnonzero(fit_rows)
        rho = float(np.clip(np.corrcoef(resid[1:], resid[:-1])[0, 1], 0.0, 0.99))
        fill_pos = np.flatnonzero(fill_rows)
        before = fill_pos < obs_pos[0]
        pred[before] += resid[0] * rho ** (obs_pos[0] - fill_pos[before])
        pred = pred + offset[fill_rows]
        if var in _SPREAD_FLOOR:
            pred = np.maximum(pred, _SPREAD_FLOOR[var])
        filled = frame[var].to_numpy().copy()
        filled[fill_rows] = pred
        out[var] = filled
        mask[var] = fill_rows
        fits[var] = {
            "r2": float(r2),
            "n_obs": float(fit_rows.sum()),
            "resid_std": float(resid.std()),
            "resid_ar1": rho,
            "intercept": float(coef[0]),
        }
        fits[var].update({f"coef_{r}": float(c) for r, c in zip(regressors, coef[1:])})
    return out, mask, fits


def _backfill_full(observed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """Back-fill estimated on the :data:`BACKFILL_VINTAGE_END` vintage, spliced into the full frame.

    Only the early months before each late variable's source starts are filled; every observed value
    comes from the full-length files.
    """
    vintage_filled, vintage_mask, fits = _backfill(_observed_variables(BACKFILL_VINTAGE_END))
    out = observed.copy()
    mask = pd.DataFrame(False, index=observed.index, columns=list(MACRO_VARS))
    for var in LATE_VARIABLES:
        rows = vintage_mask.index[vintage_mask[var].to_numpy()]
        if observed.loc[rows, var].notna().any():  # pragma: no cover - guarded by the bundled data
            raise ConfigError(f"back-fill of {var}: the full-length data observe a back-filled month")
        out.loc[rows, var] = vintage_filled.loc[rows, var]
        mask.loc[rows, var] = True
    return out, mask, fits


def _ragged_end(frame: pd.DataFrame, ragged: str) -> pd.Timestamp:
    """Last month kept: for ``trim`` the month before the first incomplete one, else the last observed."""
    values = frame[list(MACRO_VARS)]
    if ragged == "keep":
        return values.index[values.notna().any(axis=1).to_numpy()][-1]
    incomplete = np.flatnonzero(values.isna().any(axis=1).to_numpy())
    if len(incomplete) == 0:
        return values.index[-1]
    if incomplete[0] == 0:  # pragma: no cover - guarded by the bundled data
        raise ConfigError("macro history: the first month is incomplete")
    return values.index[incomplete[0] - 1]


@lru_cache(maxsize=1)
def _last_observed() -> tuple[tuple[str, str], ...]:
    """Last month each of the 9 variables is observed in the bundled files (``YYYY-MM``)."""
    observed = _observed_variables()
    return tuple((var, f"{observed[var].last_valid_index():%Y-%m}") for var in MACRO_VARS)


@lru_cache(maxsize=None)
def macro_history(
    backfill: bool, ragged: str = "trim"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    observed = _observed_variables()
    if backfill:
        filled, mask, fits = _backfill_full(observed)
    else:
        complete = observed[list(MACRO_VARS)].notna().all(axis=1)
        first = complete.idxmax()
        filled = observed.loc[first:]
        mask = pd.DataFrame(False, index=filled.index, columns=list(MACRO_VARS))
        fits = {}
    filled = filled.loc[: _ragged_end(filled, ragged), list(MACRO_VARS)]
    if ragged == "trim":
        macro = validate_macro(filled)  # contract check: no NaN, decimals, all 9 present
    else:  # NaN marks where a series has ended or skipped a month; the rest meets the same contract
        macro = filled.astype(np.float64)
        validate_macro(macro.fillna(0.0))
    macro.index = month_start_range(macro.index[0], macro.index[-1])
    mask = mask.loc[: macro.index[-1]].copy()
    mask.index = macro.index
    return macro, mask.astype(bool), fits


def load_macro_history(
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    backfill: bool = True,
    return_mask: bool = False,
    ragged: str = "trim",
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly US macro history in the 9 :data:`~creditsim.states.MACRO_VARS`, decimals, from 1980-01.

    Args:
        start, end: first / last month to keep (inclusive; anything ``pd.Timestamp`` parses, e.g.
            ``"1990-01"``); ``None`` keeps the full range. ``end=`` is how training and out-of-time
            evaluation cut the data; a window reaching past the last month is cut there.
        backfill: ``True`` (default) starts in 1980-01 with the late-starting series back-filled by
            regression; ``False`` returns only fully observed months from 1996-12.
        return_mask: also return a bool frame of the same shape, ``True`` where a value is back-filled.
        ragged: the ragged end (see below). ``"trim"`` (default) ends at the common end, the last month
            up to which all 9 variables are observed without a gap: no NaN. With the bundled files that
            is **2025-09** (549 months with ``backfill=True``, 346 = 1996-12 .. 2025-09 without), the
            last month of GDP's last published quarter (2025Q3). ``"keep"`` runs to the last month any
            variable is observed (2025-12, 552 months) and leaves NaN where a series has ended or skipped
            a month.

    Returns:
        ``macro``: float64 DataFrame ``(n_months, 9)``, columns in ``MACRO_VARS`` order, month-start
        ``DatetimeIndex`` named ``reporting_month`` (freq ``MS``); or ``(macro, backfilled)`` with
        ``return_mask=True``. No NaN with ``ragged="trim"``. ``macro.attrs`` holds ``source``,
        ``backfilled_until`` (last back-filled month per variable, ``None`` if never), ``backfill_fit``
        (R^2, residual std and OLS coefficients per back-filled variable), ``ragged``, ``last_observed``
        (last observed month per variable, ``YYYY-MM``) and ``common_end`` (the ``"trim"`` end).

    Ragged end (FRED copies of 2026-01-03: the shipped files and the shared copies of the restricted ones). Last observed month per variable:
    ``yield_10y`` and both spreads 2025-12 (daily to 2025-12-30; a month is the mean of its available
    days), ``unemployment_rate``, ``inflation_rate`` and ``policy_rate`` 2025-11 (BLS published no
    2025-10 UNRATE or CPI: that month is NaN, not interpolated), ``house_price_growth`` 2025-10,
    ``gdp_growth`` 2025-09 (2025Q3 is the last published quarter; its value holds for the quarter's last
    month, nothing is extrapolated), ``default_rate`` 2025-12 (``DRALACBS`` to 2025Q4, the quarter's
    last month holding its value as for GDP). Nothing is forward-filled, so ``"trim"`` ends in
    **2025-09** (GDP), the month before the 2025-10 BLS gap. The 2020-25 history is included as
    published (COVID: unemployment 14.8 % in 2020-04; 2022 CPI inflation 9 %); how the generators treat
    the COVID months is decided in :mod:`creditsim.macro.train` (``COVID_MONTHS``), not here.

    Transformations (FRED mnemonic; all results decimals):

    - ``gdp_growth``: real GDP ``GDPC1`` (quarterly) year-on-year growth ``Y_q / Y_{q-4} - 1``, placed
      at the middle month of each quarter and linearly interpolated between; the first/last month of
      the span hold the nearest quarterly value. Real GDP, not ``INDPRO``, because the Fed scenarios
      (:func:`load_fed_scenarios`) publish real GDP, and industrial production covers only ~1/5 of output
      and swings about three times as much. (1980 has no 1979 base in the bundled GDPC1: back-filled.)
      With the full-length GDPC1, 2019-12 lies between 2019Q4 and 2020Q1 and is interpolated
      (2.69 %); the 2019-truncated copy held the 2019Q4 value there (3.35 %).
    - ``unemployment_rate``: ``UNRATE / 100``.
    - ``inflation_rate``: ``CPIAUCSL_t / CPIAUCSL_{t-12} - 1``; the 1979 base months come from FRED-MD's
      CPIAUCSL (the same BLS series; the two files agree exactly on 1980-82).
    - ``policy_rate``: ``FEDFUNDS / 100`` (monthly average effective rate).
    - ``yield_10y``: monthly mean of daily ``DGS10`` / 100.
    - ``credit_spread_ig``: monthly mean of daily ``BAMLC0A0CM`` (ICE BofA US Corporate OAS) / 100.
    - ``credit_spread_hy``: monthly mean of daily ``BAMLH0A0HYM2`` (ICE BofA US High Yield OAS) / 100.
    - ``house_price_growth``: ``CSUSHPINSA_t / CSUSHPINSA_{t-12} - 1`` (NSA index; y/y removes seasonality).
    - ``default_rate``: delinquency rate on all loans at commercial banks ``DRALACBS / 100`` (quarterly,
      interpolated as for GDP; Federal Reserve Board via FRED, the bundled
      ``credit_losses/DRALACBS.csv`` read by :func:`~creditsim.datasets.load_bank_loss_rates`, one
      vintage 1985Q1 .. 2025Q4; it replaced a copy ending 2019Q4 whose values it matches within
      0.02 pp, seasonal-factor revisions). Scaling: the rate is used **as is** (scale factor 1): 30+ days
      delinquency is the pipeline into default and its range (1.4 % in 2019 to 7.4 % in 2010) matches the
      annual default-rate ranges of the loan-tape spec; a model mapping the index to one asset class's
      default rate learns its own slope.

    Back-fill decision: the frame starts in 1980-01, the first month of the bundled FRED files, so that
    it holds the 1980 stagflation recession (CPI 14 %, fed funds 17-19 %). Five series start later: GDP
    year-on-year growth (1981-01; no 1979 GDP bundled), the ICE BofA spreads (1996-12), Case-Shiller
    growth (1988-01) and DRALACBS (1985-01). Starting the frame in 1996-12 would leave 277 months (218
    windows of 60 months) and drop the 1980 and 1981-82 recessions, the 1990-91 recession and the S&L
    crisis, so by default the missing early values are **back-filled** by OLS fitted on the months where
    the target is observed, in this order:

    - ``gdp_growth`` (1980 only) on industrial production y/y and the 12-month change of the
      unemployment rate, both from FRED-MD (R^2 0.75);
    - spreads and ``default_rate`` on ``gdp_growth``, ``unemployment_rate`` and the Moody's Baa - 10y
      Treasury spread from FRED-MD (``(BAA - GS10) / 100``), which carries the 1980s credit cycle the ICE
      spreads miss (R^2 0.88 IG, 0.89 HY, 0.69 default rate);
    - ``house_price_growth`` as ``inflation_rate`` + OLS of real house-price growth
      (``house_price_growth - inflation_rate``) on ``gdp_growth`` and ``unemployment_rate`` (R^2 0.34).

    Only cyclical regressors are used: the 1980-84 rate regime (fed funds up to 19 %, CPI up to 12 %)
    lies far outside the fit periods, and a fit that includes rates or inflation extrapolates there to
    absurd values (a free nominal fit gives -13 % house-price growth for 1982, when US house prices
    rose). The unit pass-through of inflation into nominal house prices is imposed, not estimated, for
    the same reason. The regression errors are strongly autocorrelated, so the fitted value is corrected
    by the error of the first observed month decayed by the residuals' AR(1) coefficient per month back
    (the best backcast under AR(1) errors): the back-fill joins the observed series without a jump and
    reverts to the regression further back. Back-filled spreads are floored at 30 bp (IG) and 150 bp
    (HY); the floors bind in 13 / 10 months, mostly 1983-84 when the Baa - Treasury spread was narrow.
    Back-filled values are a model, not data: ``return_mask=True`` (or
    ``attrs["backfilled_until"]``) says which they are, to weight or drop them. The regressions are
    estimated on the data as observed through :data:`BACKFILL_VINTAGE_END` (2019-12; the FRED-MD 2019-10
    regressors end in 2019-09), so the back-filled years do not move when later data are released:
    1980-01 .. 2019-12 are identical to the 2019-truncated build except ``gdp_growth`` in 2019-12 (see
    above) and ``default_rate``, whose 1985-2019 values come from the newer ``DRALACBS`` vintage
    (within 0.02 pp of the old copy; its back-filled 1980-84 months move with the refitted regression).
    Only months before a source starts are back-filled; nothing is filled at the end.

    Source and licence: FRED (Federal Reserve Bank of St. Louis); underlying publishers BEA (GDPC1), BLS
    (UNRATE, CPIAUCSL), Federal Reserve Board (FEDFUNDS, DGS10, DRALACBS; public domain), ICE Data Indices
    (BAMLC0A0CM, BAMLH0A0HYM2: copyrighted, reproduction restricted), S&P CoreLogic Case-Shiller
    (CSUSHPINSA: copyrighted); FRED-MD by McCracken & Ng (2016), JBES 34(4), no licence stated. Per
    ``shared/data/macro/PROVENANCE.md``: **internal research use only; do not republish.** The public-domain
    series ship with creditsim, full length (to late 2025; ``DRALACBS`` copies and checks in
    ``creditsim/datasets/credit_losses/PROVENANCE.md``). The ICE, Case-Shiller and FRED-MD files do not:
    they are read from ``$CREDITSIM_DATA_DIR``, the user cache (``creditsim data fetch`` downloads them
    from FRED / the St. Louis Fed) or ``../shared/data/macro`` beside a source checkout; the numbers
    documented here are those of the shared copies (FRED copies of 2026-01-03, byte-identical to the
    files shipped until 2026-12). A fresh download is a newer vintage: its observed months can differ
    (revisions, a later end), the back-fill (fitted through 2019-12 on FRED-MD 2019-10) does not move
    unless the 1996-2019 spreads or 1987-2019 Case-Shiller values were revised. Hold out later history
    for validation with ``end=``.

    Raises:
        ConfigError: unparseable ``start``/``end``, ``start`` after ``end``, a window with no months, or
            an unknown ``ragged``.
        DataError: a restricted series is not found (one line: which, its publisher, how to fetch it).
    """
    if not isinstance(backfill, (bool, np.bool_)):
        raise ConfigError(f"backfill must be True or False, got {backfill!r}")
    if not isinstance(ragged, str) or ragged not in RAGGED_MODES:
        raise ConfigError(f"ragged must be one of {list(RAGGED_MODES)}, got {ragged!r}")
    macro, mask, fits = macro_history(bool(backfill), ragged)
    lo, hi = parse_month(start, "start"), parse_month(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"start ({lo:%Y-%m}) must not be after end ({hi:%Y-%m})")
    window = macro.loc[lo:hi]
    if window.empty:
        raise ConfigError(
            f"no macro history between {start!r} and {end!r}; available "
            f"{macro.index[0]:%Y-%m} .. {macro.index[-1]:%Y-%m}"
        )
    out = window.copy()
    out.attrs = {
        "source": _SOURCE,
        "backfilled_until": {
            var: (f"{mask.index[mask[var].to_numpy()][-1]:%Y-%m}" if mask[var].any() else None)
            for var in MACRO_VARS
        },
        "backfill_fit": {k: dict(v) for k, v in fits.items()},
        "ragged": ragged,
        "last_observed": dict(_last_observed()),
        "common_end": f"{macro_history(bool(backfill), 'trim')[0].index[-1]:%Y-%m}",
    }
    if return_mask:
        return out, mask.loc[out.index].copy()
    return out


def macro_state(month: str | pd.Timestamp | None = None) -> pd.Series:
    """The real macro state of one month in the 9 MACRO_VARS (decimals): the start state of scenarios.

    ``month`` None or ``"latest"``: the latest month in which every variable whose series runs to the
    recent past is observed (2025-09 with the bundled files: GDP's last quarter). Every bundled series
    (the default-rate proxy ``DRALACBS`` included, to 2025Q4) is observed up to that month, so the state
    is the real one for all 9 variables; a variable whose series ended before ``month`` would keep its
    last observed value, named in ``attrs["held"]`` (empty with the bundled files).

    Returns:
        ``(9,)`` float64 Series indexed by MACRO_VARS; ``attrs``: ``month`` (``YYYY-MM``), ``held``
        (variable -> month of the value used, for variables not observed in ``month``; ``{}`` with the
        bundled files).
    """
    full = load_macro_history(ragged="keep")
    recent = full.index[-1] - pd.DateOffset(months=6)
    current = [v for v in MACRO_VARS if full[v].last_valid_index() >= recent]
    latest = full.index[full[current].notna().all(axis=1).to_numpy()][-1]
    if month is None or (isinstance(month, str) and month.strip().lower() == "latest"):
        when = latest
    else:
        when = parse_month(month, "month")
        if when is None or when < full.index[0] or when > latest:
            raise ConfigError(f"month must be between {full.index[0]:%Y-%m} and {latest:%Y-%m} (the latest month "
                              f"with observed data), got {month!r}")
    row = full.loc[when, list(MACRO_VARS)].astype(np.float64).copy()
    held = {}
    for var in MACRO_VARS:
        if not np.isfinite(row[var]):
            last = full[var].loc[:when].last_valid_index()
            row[var] = float(full.loc[last, var])
            held[var] = f"{last:%Y-%m}"
    row.attrs = {"month": f"{when:%Y-%m}", "held": held}
    return row
