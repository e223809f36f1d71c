"""US SBA 7(a) small-business loans, read at the user's site, as a monthly charge-off panel: a public
loan panel with the 2008-09 recession in it, for the transition models' out-of-time test (issue 14).

Source: the loan file of Li, Mickel & Taylor, "Should This Loan be Approved or Denied? A Large Dataset
with Class Assignment Guidelines", *Journal of Statistics Education* 26(1), 2018 (``SBAnational.csv``,
899,164 loans approved 1962-2014), built from U.S. Small Business Administration loan data (a U.S.
government work). Not shipped (several hundred MB); point :func:`read_sba_loans` at your copy.

The file has no monthly performance, only each loan's disbursement date, term, final status (``P I F``
paid in full / ``CHGOFF`` charged off) and charge-off date, so the panel is built from each loan's end
(decisions):

- one row per month from the disbursement month, CURRENT, to ``end``;
- every charge-off up to ``end`` is DEFAULT in its charge-off month (a charge-off in the disbursement
  month counts at age 1). It lags the missed payments by months: a charge-off hazard, not a delinquency
  one;
- a paid loan's payoff month is not in the file, so its rows stop the month before its maturity, censored.

Two fields are written after the fact and are no fair input for a model:

- **the term**: the file cuts a charged-off loan's term (of the slice's 2002-06 loans used in the README,
  20 of the 6,922 with exactly 84 months were charged off, 57 % of those with 61-83 months). Deciding
  DEFAULT by "charged off before maturity", as a first version did, censored 2,110 of 3,437 charge-offs
  and 1,408 of the 1,501 in 2009-10, and left a recession without defaults (review 79);
- **loan age**: a charged-off loan's rows run to its charge-off, a paid loan's stop at maturity, so at
  ages past the usual terms only loans that will default are left (given age and term, boosting scored a
  within-month default AUC of 0.94-0.96).

:data:`SBA_FEATURES` leaves both out (``term_months`` and the panel's ``loan_age`` are there for the
record). Two-digit years (``15-Mar-04``) are read as 1931-2030, the file's dates running 1962-2014, not
relative to today as a date parser would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.states import LoanState

__all__ = ["read_sba_loans", "SBALoans", "SBA_COLUMNS", "SBA_FEATURES"]

#: columns of the file read here
SBA_COLUMNS: tuple[str, ...] = ("LoanNr_ChkDgt", "Term", "NoEmp", "NewExist", "UrbanRural", "RevLineCr", "LowDoc",
                                "ChgOffDate", "DisbursementDate", "MIS_Status", "GrAppv", "SBA_Appv")
#: static features fit to give a model (not the term, nor the panel's loan age: module docstring)
SBA_FEATURES: tuple[str, ...] = ("log_amount", "sba_share", "business", "urban", "low_doc", "revolver", "log_employees")
_STATUSES = ("P I F", "CHGOFF")


@dataclass(frozen=True)
class SBALoans:
    """panel: ``loan_id``, ``reporting_month`` (month start), ``loan_state`` (int8, CURRENT or DEFAULT),
    ``loan_age`` (months since disbursement; no fair feature, module docstring); a loan's record ends with
    DEFAULT or stops (censored: paid, or at ``end``). features: one row per loan, ``loan_id``,
    :data:`SBA_FEATURES` and ``term_months``. skipped: loans left out, by reason."""

    panel: pd.DataFrame
    features: pd.DataFrame
    skipped: dict[str, int]


def _money(values: pd.Series) -> pd.Series:
    """``"$60,000.00 "`` -> 60000.0 (the file writes amounts as text); NaN where unreadable."""
    return pd.to_numeric(values.astype(str).str.replace(r"[$, ]", "", regex=True), errors="coerce")


def _month(value: str, name: str) -> pd.Period:
    try:
        month = pd.Period(str(value), "M")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: expected a month 'YYYY-MM', got {value!r}") from exc
    if pd.isna(month):
        raise ConfigError(f"{name}: expected a month 'YYYY-MM', got {value!r}")
    return month


def _dates(values: pd.Series) -> pd.Series:
    """The file's dates (``2/28/1997``, ``24-Jun-91``, or ISO) as months; NaT where unreadable. A two-digit
    year above 30 is 19xx (strptime's own pivot is 68, and dateutil's moves with today's date)."""
    text = values.astype("string").str.strip()
    us = pd.to_datetime(text, format="%m/%d/%Y", errors="coerce")
    short = pd.to_datetime(text, format="%d-%b-%y", errors="coerce")
    short = short.where(~(short.dt.year > 2030), short - pd.DateOffset(years=100))
    iso = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    return us.fillna(short).fillna(iso).dt.to_period("M")


def _read(source: Path) -> pd.DataFrame:
    if not source.is_file():
        raise ConfigError(f"SBA file {str(source)!r} " + ("is a folder, not a file" if source.is_dir() else "does not exist"))
    try:
        return pd.read_csv(source, low_memory=False, dtype={"LoanNr_ChkDgt": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"SBA file {source.name}: not a readable CSV ({type(exc).__name__}: {exc})") from exc


def _loans(raw: pd.DataFrame, first: pd.Period, last: pd.Period) -> tuple[pd.DataFrame, dict[str, int]]:
    missing = [c for c in SBA_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"SBA file: missing column(s) {missing}; expected the SBAnational.csv layout {list(SBA_COLUMNS)}")
    d = raw.loc[:, list(SBA_COLUMNS)].copy()
    dup = d["LoanNr_ChkDgt"].duplicated(keep=False)
    if dup.any():
        rows = list(d.index[dup][:10])
        raise DataError(f"SBA file: LoanNr_ChkDgt repeats on rows {rows} ({int(dup.sum())} rows); expected one row per loan")
    d["disbursed"], d["charged_off"] = _dates(d["DisbursementDate"]), _dates(d["ChgOffDate"])
    d["gross"], d["guaranteed"] = _money(d["GrAppv"]), _money(d["SBA_Appv"])
    d["Term"] = pd.to_numeric(d["Term"], errors="coerce")
    checks = {
        "status not P I F / CHGOFF": ~d["MIS_Status"].isin(_STATUSES),
        "no disbursement date": d["disbursed"].isna(),
        "charged off without a charge-off date": (d["MIS_Status"] == "CHGOFF") & d["charged_off"].isna(),
        "charged off before disbursement": (d["MIS_Status"] == "CHGOFF") & (d["charged_off"] < d["disbursed"]),
        "term under 12 months": ~(d["Term"] >= 12),
        "no approved amount": ~(d["gross"] > 0) | d["guaranteed"].isna(),
    }
    out = pd.Series(False, index=d.index)
    skipped: dict[str, int] = {}
    for why, bad in checks.items():
        skipped[why] = int((bad.fillna(False) & ~out).sum())
        out |= bad.fillna(False)
    window = ~out & ((d["disbursed"] < first) | (d["disbursed"] > last))
    skipped["disbursed outside the window"] = int(window.sum())
    return d.loc[~out & ~window].reset_index(drop=True), {k: v for k, v in skipped.items() if v}


def _panel(d: pd.DataFrame, end: pd.Period) -> pd.DataFrame:
    """Rows of the module docstring: a run of months per loan, vectorised (no per-loan loop)."""
    start = pd.PeriodIndex(d["disbursed"]).asi8  # month ordinals
    maturity = start + d["Term"].to_numpy(np.int64)
    never = np.iinfo(np.int64).max
    charged = np.where(d["charged_off"].isna(), never, pd.PeriodIndex(d["charged_off"]).asi8)
    chgoff = d["MIS_Status"].to_numpy() == "CHGOFF"
    defaults = chgoff & (charged <= end.ordinal)
    # a charged-off loan is followed to its charge-off (or the panel's end), a paid one to before maturity
    last = np.minimum(np.where(chgoff, np.maximum(charged, start + 1), maturity - 1), end.ordinal)
    n = np.maximum(last - start + 1, 0)
    loan = np.repeat(np.arange(len(d)), n)
    age = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    month = start[loan] + age
    is_last = age == n[loan] - 1
    state = np.where(defaults[loan] & is_last, int(LoanState.DEFAULT), int(LoanState.CURRENT)).astype(np.int8)
    ids = d["LoanNr_ChkDgt"].astype(str).to_numpy()
    return pd.DataFrame({"loan_id": ids[loan],
                         "reporting_month": pd.PeriodIndex.from_ordinals(month, freq="M").to_timestamp(),
                         "loan_state": state, "loan_age": age.astype(np.float64)})


def read_sba_loans(path: str | Path, *, first: str = "2002-01", last: str = "2006-12", end: str = "2010-12") -> SBALoans:
    """The SBA 7(a) loan file (:mod:`creditsim.datasets.sba`) as a monthly charge-off panel and loan features.

    Args:
        path: ``SBAnational.csv`` (or any CSV with :data:`SBA_COLUMNS`).
        first, last: disbursement months kept (``"YYYY-MM"``): the vintages.
        end: the panel's last month (e.g. the macro history's last month, or the end of the test window).

    Returns:
        :class:`SBALoans`. features: ``log_amount`` (log of the approved amount, currency units),
        ``sba_share`` (guaranteed / approved, a fraction), ``business`` (``"new"`` / ``"existing"``),
        ``urban``, ``low_doc``, ``revolver`` (0/1), ``log_employees`` (log(1 + employees)) and
        ``term_months`` (not a fair feature, module docstring).

    Raises:
        DataError: not a readable CSV, a column of :data:`SBA_COLUMNS` missing, a loan number repeated, or
            no loan left.
        ConfigError: no such file, a month that is not ``YYYY-MM``, ``first`` after ``last`` or ``end``
            before ``first``.
    """
    lo, hi, stop = _month(first, "first"), _month(last, "last"), _month(end, "end")
    if lo > hi:
        raise ConfigError(f"first ({first}) is after last ({last})")
    if stop < lo:
        raise ConfigError(f"end ({end}) is before first ({first}): the panel would have no month")
    source = Path(path)
    d, skipped = _loans(_read(source), lo, hi)
    if d.empty:
        raise DataError(f"SBA file {source.name}: no loan disbursed {lo}..{hi} with a usable record (left out: {skipped})")
    term = d["Term"].astype(np.float64)
    features = pd.DataFrame({
        "loan_id": d["LoanNr_ChkDgt"].astype(str), "log_amount": np.log(d["gross"]),
        "sba_share": d["guaranteed"] / d["gross"], "business": np.where(d["NewExist"] == 2, "new", "existing"),
        "urban": (d["UrbanRural"] == 1).astype(np.float64), "low_doc": (d["LowDoc"] == "Y").astype(np.float64),
        "revolver": (d["RevLineCr"] == "Y").astype(np.float64),
        "log_employees": np.log1p(pd.to_numeric(d["NoEmp"], errors="coerce").fillna(0).clip(lower=0)),
        "term_months": term,
    })
    return SBALoans(_panel(d, stop), features, skipped)
