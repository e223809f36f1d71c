"""Freddie Mac's Single-Family Loan-Level Dataset, read at the user's site, as a loan tape and a
loan-month panel in our states: the public mortgage panel with a recession in it (2007-09) that the
transition models' out-of-time test needs (issue 14).

The data are not shipped and never fetched: Freddie Mac gives them to registered users under terms that
forbid redistribution. Download the files (the "sample" files of 50,000 loans a vintage year, or the
full quarterly files) from https://www.freddiemac.com/research/datasets/sf-loanlevel-dataset and point
:func:`read_freddie_mac` or ``creditsim data freddie`` at them, zipped or unzipped.

Citation: Freddie Mac, Single-Family Loan-Level Dataset, General User Guide and File Layout (the field
order read here is the published layout; later releases add fields at the end, which are ignored).

The files are pipe-separated text without a header: an origination file per vintage
(``sample_orig_YYYY.txt``, ``historical_data_YYYYQn.txt``) with one row per loan, and a monthly
performance file (``sample_svcg_YYYY.txt``, ``historical_data_time_YYYYQn.txt``) with one row per loan
and reporting month from the first payment to the loan's termination or the release's last month.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.schema import validate_loan_tape, validate_panel
from creditsim.states import LoanState

__all__ = ["read_freddie_mac", "FreddieMacData", "ORIGINATION_FIELDS", "PERFORMANCE_FIELDS", "PERFORMANCE_OPTIONAL_FIELDS",
           "DEFAULT_ZERO_BALANCE_CODES", "PREPAID_ZERO_BALANCE_CODE"]

#: positions (0-based) of the origination fields read, in the published layout
ORIGINATION_FIELDS: dict[str, int] = {
    "credit_score": 0, "first_payment_date": 1, "maturity_date": 3, "mi_percent": 5, "original_cltv": 8,
    "original_dti": 9, "original_upb": 10, "original_ltv": 11, "original_interest_rate": 12,
    "amortization_type": 15, "property_state": 16, "loan_sequence_number": 19, "loan_purpose": 20,
    "original_loan_term": 21, "seller_name": 23,
}
#: positions (0-based) of the monthly performance fields read
PERFORMANCE_FIELDS: dict[str, int] = {
    "loan_sequence_number": 0, "monthly_reporting_period": 1, "current_actual_upb": 2,
    "current_loan_delinquency_status": 3, "loan_age": 4, "remaining_months_to_legal_maturity": 5,
    "zero_balance_code": 8, "current_interest_rate": 10,
}
#: performance fields of later releases only (read when the file has them, else NaN): the servicer's
#: estimated current loan-to-value, 1-998 percent, 999 = unknown
PERFORMANCE_OPTIONAL_FIELDS: dict[str, int] = {"estimated_ltv": 25}
#: zero-balance codes of a credit loss: third-party sale, short sale or charge-off, REO disposition,
#: non-performing note sale
DEFAULT_ZERO_BALANCE_CODES: frozenset[str] = frozenset({"02", "03", "09", "15"})
#: prepaid or matured
PREPAID_ZERO_BALANCE_CODE = "01"
#: the delinquency status of a loan whose property the lender acquired (REO acquisition)
REO_ACQUISITION = "RA"
_CHUNK_ROWS = 1_000_000
_ORIGINATION_NAME = re.compile(r"(orig|historical_data_\d{4}Q\d)", re.IGNORECASE)
_PERFORMANCE_NAME = re.compile(r"(svcg|historical_data_time_)", re.IGNORECASE)


@dataclass(frozen=True)
class FreddieMacData:
    """A loan tape and panel read from Freddie Mac files (:func:`read_freddie_mac`).

    tape: one row per loan with performance rows, in the tape contract (:func:`creditsim.schema.validate_loan_tape`).
    panel: loan x month rows in the panel contract, sorted by loan and month.
    counts: what was read and what was set aside, by reason (loans and rows).
    """

    tape: pd.DataFrame
    panel: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _FileRef:
    """One text file: a path, or a member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def open(self):
        if self.member is None:
            return open(self.path, "rb")
        return zipfile.ZipFile(self.path).open(self.member)


def find_freddie_files(sources: str | Path | Sequence[str | Path]) -> tuple[list[_FileRef], list[_FileRef]]:
    """``(origination files, performance files)`` in ``sources``: folders (their ``*.txt`` and ``*.zip``),
    zip archives or text files, told apart by Freddie Mac's file names. ConfigError when a source does
    not exist or no origination or no performance file is found."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    refs: list[_FileRef] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise ConfigError(f"Freddie Mac data: {path} does not exist (a folder, zip archive or text file)")
        files = sorted([*path.glob("*.txt"), *path.glob("*.zip")]) if path.is_dir() else [path]
        for f in files:
            refs += list(_zip_members(f)) if f.suffix.lower() == ".zip" else [_FileRef(f)]
    perf = [r for r in refs if _PERFORMANCE_NAME.search(r.name)]
    orig = [r for r in refs if r not in perf and _ORIGINATION_NAME.search(r.name)]
    if not orig or not perf:
        missing = "origination (sample_orig_YYYY.txt, historical_data_YYYYQn.txt)" if not orig else \
            "monthly performance (sample_svcg_YYYY.txt, historical_data_time_YYYYQn.txt)"
        raise ConfigError(f"Freddie Mac data: no {missing} file in {', '.join(map(str, items))}")
    return orig, perf


def _zip_members(path: Path) -> Iterator[_FileRef]:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.lower().endswith(".txt")]
    except zipfile.BadZipFile as exc:
        raise DataError(f"Freddie Mac data: {path} is not a readable zip archive ({exc})") from None
    for n in names:
        yield _FileRef(path, n)


def _read_fields(ref: _FileRef, fields: dict[str, int], what: str,
                 optional: dict[str, int] | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of ``ref`` as text columns named by ``fields`` (positions), plus the ``optional`` fields the
    file has (a column of blanks where it has not); DataError when a row has too few fields for the layout."""
    need = max(fields.values()) + 1
    with ref.open() as fh:
        first = fh.readline().decode("latin-1")
    n_fields = first.count("|") + 1 if first.strip() else 0
    if n_fields and n_fields < need:
        raise DataError(f"{ref}: {n_fields} pipe-separated fields in the first row; a Freddie Mac {what} file has "
                        f"at least {need} (is it the other kind of file, or not Freddie Mac's layout?)")
    absent = [k for k, pos in (optional or {}).items() if pos >= n_fields]
    fields = {**fields, **{k: pos for k, pos in (optional or {}).items() if k not in absent}}
    order = sorted(fields, key=fields.get)
    with ref.open() as fh:
        reader = pd.read_csv(fh, sep="|", header=None, usecols=[fields[k] for k in order], dtype=str,
                             keep_default_na=False, encoding="latin-1", chunksize=_CHUNK_ROWS)
        for chunk in reader:
            chunk.columns = order  # usecols keeps file order, which ``order`` follows
            yield chunk.assign(**{k: "" for k in absent})


def _number(values: pd.Series, missing: Sequence[float] = ()) -> pd.Series:
    """float64 of text fields; blanks and the layout's 'not available' codes (e.g. 999, 9999) -> NaN."""
    out = pd.to_numeric(values.str.strip(), errors="coerce")
    return out.where(~out.isin(list(missing)))


def _month(values: pd.Series, column: str, ref: object) -> pd.Series:
    """Month starts of YYYYMM text; DataError naming the file and column on another format."""
    text = values.str.strip()
    out = pd.to_datetime(text, format="%Y%m", errors="coerce")
    bad = out.isna() & (text != "")
    if bad.any():
        raise DataError(f"{ref}: {column} must be YYYYMM, got {text[bad].iloc[0]!r} ({int(bad.sum())} row(s))")
    return out


def _tape(raw: pd.DataFrame, ref: object) -> tuple[pd.DataFrame, int]:
    """The loan tape of origination rows (text columns of :data:`ORIGINATION_FIELDS`) and the number of
    loans left out for a term beyond the contract's 360 months."""
    first_payment = _month(raw["first_payment_date"], "first_payment_date", ref)
    term = _number(raw["original_loan_term"])
    rate = _number(raw["original_interest_rate"]) / 100.0
    origination = first_payment - pd.DateOffset(months=1)  # the first payment falls a month after funding
    tape = pd.DataFrame({
        "loan_id": raw["loan_sequence_number"].str.strip().to_numpy(),
        "origination_date": origination.to_numpy(),
        "maturity_date": _month(raw["maturity_date"], "maturity_date", ref).to_numpy(),
        "original_balance": _number(raw["original_upb"]).to_numpy(),
        "interest_rate": rate.to_numpy(),
        "rate_type": np.where(raw["amortization_type"].str.strip().str.upper() == "ARM", "floating", "fixed"),
        "payment_frequency": "monthly",
        "amortization_type": "annuity",
        "asset_class": "real_estate",
        "term_months": term.to_numpy(),
        "geography_country": "US",
        "borrower_type": "consumer",
        "originator_id": raw["seller_name"].str.strip().replace("", "unknown").to_numpy(),
        "vintage": origination.dt.strftime("%Y-%m").to_numpy(),
        "ltv_origination": (_number(raw["original_ltv"], (999,)) / 100.0).to_numpy(),
        "cltv_origination": (_number(raw["original_cltv"], (999,)) / 100.0).to_numpy(),
        "dti_dscr_origination": (_number(raw["original_dti"], (999,)) / 100.0).to_numpy(),
        "external_score": _number(raw["credit_score"], (9999,)).clip(300, 850).to_numpy(),
        "mi_percent": (_number(raw["mi_percent"], (999,)) / 100.0).to_numpy(),
        "property_state": raw["property_state"].str.strip().to_numpy(),
        "loan_purpose": raw["loan_purpose"].str.strip().to_numpy(),
        "collateral_type": "real_estate",
    })
    long_term = (tape["term_months"] > 360) | tape["term_months"].isna()
    return tape.loc[~long_term].reset_index(drop=True), int(long_term.sum())


#: what a performance row's zero-balance code says: the loan is still there, paid off, lost, or left the data
_ZB_NONE, _ZB_PAID, _ZB_LOSS, _ZB_LEFT = 0, 1, 2, 3


def _compact(chunk: pd.DataFrame, loan_pos: pd.Series, ref: object) -> pd.DataFrame:
    """A chunk of performance text rows of known loans as numbers: ``loan`` (int32 tape position),
    ``reporting_month``, ``upb`` (currency units), ``months_late`` (NaN: not a number), ``reo`` (status RA),
    ``zb`` (:data:`_ZB_NONE` .. :data:`_ZB_LEFT`), ``loan_age``, ``current_interest_rate`` (decimal).
    Text columns of a full release would take gigabytes; these take 40 bytes a row."""
    status = chunk["current_loan_delinquency_status"].str.strip().str.upper()
    code = chunk["zero_balance_code"].str.strip()
    zb = np.select([code == "", code.str.zfill(2) == PREPAID_ZERO_BALANCE_CODE,
                    code.str.zfill(2).isin(list(DEFAULT_ZERO_BALANCE_CODES))], [_ZB_NONE, _ZB_PAID, _ZB_LOSS], _ZB_LEFT)
    return pd.DataFrame({
        "loan": loan_pos.to_numpy(np.int32),
        "reporting_month": _month(chunk["monthly_reporting_period"], "monthly_reporting_period", ref).to_numpy(),
        "upb": _number(chunk["current_actual_upb"]).to_numpy(),
        "months_late": _number(status).to_numpy(),
        "reo": (status == REO_ACQUISITION).to_numpy(),
        "zb": zb.astype(np.int8),
        "loan_age": _number(chunk["loan_age"]).to_numpy(np.float32),
        "current_interest_rate": (_number(chunk["current_interest_rate"]) / 100.0).to_numpy(np.float32),
        "estimated_ltv": (_number(chunk["estimated_ltv"], (999,)) / 100.0).to_numpy(np.float32),
    })


def _reported_state(perf: pd.DataFrame, at_term: np.ndarray, default_months: int | None) -> np.ndarray:
    """(n,) int8 state of compact performance rows (:func:`_compact`), -1 = not usable.

    A zero-balance code decides the row: 01 PREPAID (MATURED from the maturity month on, ``at_term``), a
    credit loss (:data:`DEFAULT_ZERO_BALANCE_CODES`) DEFAULT, any other (repurchase, re-performing sale) -1:
    the loan leaves the data without a credit event, so its record ends censored at the row before. Else
    the delinquency status: ``RA`` (REO acquisition) DEFAULT, k months delinquent ``min(k, 3)``
    (CURRENT .. DPD90), or DEFAULT from ``default_months`` on when given; unknown (``XX``, blank) -1."""
    late = perf["months_late"].to_numpy()
    state = np.where(np.isnan(late), -1, np.minimum(np.nan_to_num(late), 3)).astype(np.int8)
    if default_months is not None:
        state[late >= default_months] = LoanState.DEFAULT
    state[perf["reo"].to_numpy()] = LoanState.DEFAULT
    zb = perf["zb"].to_numpy()
    state[zb == _ZB_LEFT] = -1
    state[zb == _ZB_PAID] = np.where(at_term, LoanState.MATURED, LoanState.PREPAID)[zb == _ZB_PAID]
    state[zb == _ZB_LOSS] = LoanState.DEFAULT
    return state


def _cut(loan: np.ndarray, state: np.ndarray, left: np.ndarray) -> np.ndarray:
    """(n,) bool rows to keep of rows sorted by loan and month: a loan's record stops after its first
    absorbing row, and before a row where it ``left`` the data without a credit event."""
    stop = (state >= LoanState.DEFAULT) | left
    before = pd.Series(stop).groupby(loan, sort=False).cumsum().to_numpy() - stop
    return (before == 0) & ~left


def _cap(loan: np.ndarray, month_no: np.ndarray, state: np.ndarray) -> np.ndarray:
    """States of rows sorted by loan and month (all usable) with delinquency advancing at most one bucket
    a month (rows ``g`` months apart: ``g`` buckets). A reported jump is taken one bucket a month, as
    :func:`creditsim.datasets.credit_card.capped_delinquency_path` does; cures are kept as reported,
    absorbing states are reachable from any bucket."""
    same = np.r_[False, loan[1:] == loan[:-1]]
    gap = np.r_[0, np.diff(month_no)]
    live = state < LoanState.DEFAULT
    capped = state.astype(np.int8)
    for _ in range(int(LoanState.DPD90) + 2):  # each pass settles one more month of a jump of at most 3
        prev = np.r_[np.int8(0), capped[:-1]]
        ceiling = np.where(same, prev + gap, LoanState.DPD90)
        new = np.where(live, np.minimum(capped, ceiling), capped).astype(np.int8)
        if np.array_equal(new, capped):
            break
        capped = new
    return capped


def _performance(refs: Sequence[_FileRef], loan_ids: pd.Index, counts: dict[str, int]) -> pd.DataFrame:
    """The compact performance rows (:func:`_compact`) of the loans ``loan_ids`` (the tape's, in order),
    read in chunks: memory grows with the loans read, not with the release; counts the rows of other loans."""
    parts = []
    for ref in refs:
        for chunk in _read_fields(ref, PERFORMANCE_FIELDS, "monthly performance", PERFORMANCE_OPTIONAL_FIELDS):
            pos = pd.Series(loan_ids.get_indexer(chunk["loan_sequence_number"].str.strip()), index=chunk.index)
            mine = pos >= 0
            counts["rows_of_other_loans"] += int((~mine).sum())
            if mine.any():
                parts.append(_compact(chunk.loc[mine], pos[mine], ref))
    if not parts:
        raise DataError("Freddie Mac data: no performance row belongs to a loan of the origination files "
                        "(are the performance files of the same vintages?)")
    return pd.concat(parts, ignore_index=True)


def _panel(perf: pd.DataFrame, tape: pd.DataFrame, default_months: int | None,
           counts: dict[str, int]) -> pd.DataFrame:
    """The panel of compact performance rows in our states: usable rows, records cut at their end,
    delinquency capped (:func:`_reported_state`, :func:`_cut`, :func:`_cap`)."""
    perf = perf.sort_values(["loan", "reporting_month"], kind="stable").reset_index(drop=True)
    loan = perf["loan"].to_numpy()
    month = perf["reporting_month"].to_numpy()
    state = _reported_state(perf, month >= tape["maturity_date"].to_numpy()[loan], default_months)
    left = perf["zb"].to_numpy() == _ZB_LEFT
    counts["loans_left_without_credit_event"] = int(np.unique(loan[left]).size)
    keep = _cut(loan, state, left)
    unknown = keep & (state == -1)
    counts["rows_unknown_status"] = int(unknown.sum())
    counts["rows_after_record_end"] = int((~keep).sum())
    rows = np.flatnonzero(keep & ~unknown)
    loan, st, month = loan[rows], state[rows], month[rows]
    capped = _cap(loan, month.astype("datetime64[M]").astype(np.int64), st)
    counts["rows_capped"] = int((capped != st).sum())
    upb = perf["upb"].to_numpy()[rows]
    # the release masks the balance of a loan's first months as 0; a live loan then owes about its original balance
    masked = ((upb == 0) | np.isnan(upb)) & (capped < LoanState.DEFAULT)
    late = perf["months_late"].to_numpy()[rows]
    return pd.DataFrame({
        "loan_id": tape["loan_id"].to_numpy()[loan], "reporting_month": month,
        "current_balance": np.where(masked, tape["original_balance"].to_numpy()[loan], np.nan_to_num(upb)),
        "days_past_due": (30 * np.nan_to_num(late)).astype(np.int64),
        "loan_state": capped.astype(np.int8),
        "months_delinquent": late,
        "loan_age": perf["loan_age"].to_numpy()[rows],
        "current_interest_rate": perf["current_interest_rate"].to_numpy()[rows],
        "estimated_ltv": perf["estimated_ltv"].to_numpy()[rows],
    })


def read_freddie_mac(sources: str | Path | Sequence[str | Path], *, default_months: int | None = None,
                     max_loans: int | None = None) -> FreddieMacData:
    """Freddie Mac Single-Family Loan-Level files as a loan tape and a monthly panel in our states.

    Args:
        sources: folders holding the files (``*.txt``, ``*.zip``), zip archives as downloaded, or the
            text files; origination and performance files are told apart by Freddie Mac's names.
        default_months: months delinquent from which a loan counts as DEFAULT (6 = the 180-day
            definition common in mortgage credit-risk work). None (default): DEFAULT is the credit
            event itself -- REO acquisition, or a zero balance through a third-party sale, short sale or
            charge-off, REO disposition or non-performing note sale -- and a loan 90+ days late stays
            DPD90 until then (foreclosures took two to three years after 2008, so this default lags the
            cycle; the 180-day definition follows it more closely).
        max_loans: read only the first ``max_loans`` loans in loan-number order (a deterministic
            subset: Freddie Mac's sample files are already a random draw).

    Returns:
        :class:`FreddieMacData`. The tape: one row per loan with performance rows, in the tape contract
        (monthly annuity mortgages, ``real_estate``, ``consumer``; rate and LTV / DTI / MI as
        decimals; ``external_score`` the credit score; extra columns ``cltv_origination``,
        ``mi_percent``, ``property_state``, ``loan_purpose``). Loans with terms above the contract's
        360 months are left out (counted). The panel: ``loan_id``, ``reporting_month``,
        ``current_balance`` (currency units; the release reports 0 for a loan's first months, read as
        the original balance), ``days_past_due`` (30 x months delinquent), ``loan_state``,
        ``months_delinquent`` (as reported, NaN for REO), ``loan_age``, ``current_interest_rate`` (decimal),
        ``estimated_ltv`` (the servicer's estimated current LTV, a decimal; NaN where unknown or in
        releases without the field) -- the time-varying covariates for ``--panel-features``.

    States: the delinquency status k -> CURRENT, DPD30, DPD60 for k = 0, 1, 2 and DPD90 for k >= 3;
    zero-balance code 01 -> PREPAID (MATURED in or after the maturity month); credit events -> DEFAULT
    (see ``default_months``); a loan repurchased by its seller or sold while re-performing leaves the
    data without a credit event, so its record ends at the row before (censored, counted). Rows with an
    unknown status (``XX``) are dropped, leaving a gap. A reported jump of several buckets is taken as
    one bucket a month (counted as ``rows_capped``); rows after a loan's absorption are dropped.

    Raises:
        ConfigError: a source does not exist, or no origination / performance file is found.
        DataError: a file is not in Freddie Mac's layout (too few fields, dates not YYYYMM), a loan
            number appears twice in the origination files, or no loan has usable performance rows.
    """
    if default_months is not None and (isinstance(default_months, bool) or not isinstance(default_months, int)
                                       or not 3 <= default_months <= 24):
        raise ConfigError(f"default_months must be an integer from 3 to 24 (months delinquent), got {default_months!r}")
    if max_loans is not None and (isinstance(max_loans, bool) or not isinstance(max_loans, int) or max_loans < 1):
        raise ConfigError(f"max_loans must be a positive integer, got {max_loans!r}")
    orig_refs, perf_refs = find_freddie_files(sources)
    counts = {"rows_of_other_loans": 0}
    tapes = []
    for ref in orig_refs:
        for chunk in _read_fields(ref, ORIGINATION_FIELDS, "origination"):
            tape, n_long = _tape(chunk, ref)
            counts["loans_term_over_360"] = counts.get("loans_term_over_360", 0) + n_long
            tapes.append(tape)
    tape = pd.concat(tapes, ignore_index=True).sort_values("loan_id", kind="stable").reset_index(drop=True)
    dup = tape["loan_id"][tape["loan_id"].duplicated()]
    if len(dup):
        raise DataError(f"Freddie Mac origination files: loan number {dup.iloc[0]!r} appears more than once "
                        f"({dup.nunique()} such loans); give each vintage's files once")
    if max_loans is not None:
        tape = tape.iloc[:max_loans]
    tape = tape.reset_index(drop=True)
    panel = _panel(_performance(perf_refs, pd.Index(tape["loan_id"]), counts), tape, default_months, counts)
    if panel.empty:
        raise DataError("Freddie Mac data: no usable performance rows (every row unknown or after its loan left)")
    tape = tape.loc[tape["loan_id"].isin(set(panel["loan_id"]))].reset_index(drop=True)
    counts |= {"loans": len(tape), "rows": len(panel)}
    return FreddieMacData(validate_loan_tape(tape), validate_panel(panel, check_transitions=True), counts)
