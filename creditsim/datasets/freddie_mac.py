"""Freddie Mac's Single-Family Loan-Level Dataset, read at the user's site, as a loan tape and a
loan-month panel in our states: the public mortgage panel with a recession in it (2007-09) that the
transition models' out-of-time test needs (issue 14).

The data are not shipped and never fetched: Freddie Mac gives them to registered users under terms that
forbid redistribution. Download the files (the "sample" files of 50,000 loans a vintage year, or the
full quarterly files) from https://www.freddiemac.com/research/datasets/sf-loanlevel-dataset and point
:func:`read_freddie_mac` or ``creditsim data freddie`` at them, zipped or unzipped.

Citation: Freddie Mac, Single-Family Loan-Level Dataset, General User Guide and File Layout (the field
order read here is the published layout; fields that only later releases carry are read where a file
has them, :data:`PERFORMANCE_OPTIONAL_FIELDS`).

The files are pipe-separated text without a header: an origination file per vintage with one row per
loan (``sample_orig_YYYY.txt``; full files ``historical_data_YYYYQn.txt``, from Release 47 of July 2026
``orig_YYYYQn.txt``) and a monthly performance file with one row per loan and reporting month from the
first payment to the loan's termination or the release's last month (``sample_svcg_YYYY.txt`` /
``historical_data_time_YYYYQn.txt``, from Release 47 ``sample_perf_YYYY.txt`` / ``perf_YYYYQn.txt``).
The positions read are the same in every release (Release 47 dropped origination fields after them and
added performance fields at the end).
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.schema import month_start, validate_loan_tape, validate_panel
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
#: performance fields of later releases only (read when the file has them, else blank): Freddie Mac's
#: automated-valuation estimate of the current loan-to-value (1-998 percent, 999 = unknown; filled only
#: from 2017 on, so empty over the 2007-09 recession), and the balance at a zero-balance removal
PERFORMANCE_OPTIONAL_FIELDS: dict[str, int] = {
    "mi_recoveries": 13, "net_sale_proceeds": 14, "non_mi_recoveries": 15, "expenses": 16, "actual_loss_calculation": 21,
    "estimated_ltv": 25, "zero_balance_removal_upb": 26,
}
#: the loss fields of a credit event's zero-balance row, as :attr:`FreddieMacData.losses` names them
_LOSS_FIELDS = {"mi_recoveries": "mi_recoveries", "net_sale_proceeds": "net_sale_proceeds",
                "non_mi_recoveries": "non_mi_recoveries", "expenses": "expenses", "actual_loss_calculation": "actual_loss"}
#: zero-balance codes of a credit loss: third-party sale, short sale or charge-off, REO disposition,
#: non-performing note sale
DEFAULT_ZERO_BALANCE_CODES: frozenset[str] = frozenset({"02", "03", "09", "15"})
#: prepaid or matured
PREPAID_ZERO_BALANCE_CODE = "01"
#: zero-balance codes of a loan that leaves the data without a credit event (re-performing sale, repurchase)
LEFT_ZERO_BALANCE_CODES: frozenset[str] = frozenset({"16", "96"})
#: the delinquency status of a loan whose property the lender acquired (REO acquisition; "R" in old releases)
REO_ACQUISITION: frozenset[str] = frozenset({"RA", "R"})
#: a status the servicer did not report (a month left as a gap)
UNKNOWN_STATUS: frozenset[str] = frozenset({"XX", ""})
_CHUNK_ROWS = 1_000_000
_ORIGINATION_NAME = re.compile(r"(sample_orig_\d{4}|historical_data_\d{4}Q\d|orig_\d{4}Q\d)\.txt", re.IGNORECASE)
_PERFORMANCE_NAME = re.compile(r"(sample_(svcg|perf)_\d{4}|historical_data_time_\d{4}Q\d|perf_\d{4}Q\d)\.txt",
                               re.IGNORECASE)
_BOM = "\u00ef\u00bb\u00bf"  # a UTF-8 byte-order mark read as latin-1


@dataclass(frozen=True)
class FreddieMacData:
    """A loan tape and panel read from Freddie Mac files (:func:`read_freddie_mac`).

    tape: one row per loan with performance rows, in the tape contract (:func:`creditsim.schema.validate_loan_tape`).
    panel: loan x month rows in the panel contract, sorted by loan and month.
    counts: what was read and what was set aside, by reason (loans and rows).
    losses: one row per panel DEFAULT whose credit event's zero-balance row is in the files
    (:func:`_loss_table`): the realised loss severities of the book, for calibrating an LGD assumption.
    """

    tape: pd.DataFrame
    panel: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    losses: pd.DataFrame = field(default_factory=pd.DataFrame)


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
    """``(origination files, performance files)`` in ``sources``: folders (searched with their sub-folders
    for ``.txt`` and ``.zip`` files), zip archives or text files, told apart by Freddie Mac's file names
    (module docstring); other files are ignored. ConfigError when a source does not exist or no
    origination or no performance file is found."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    refs: list[_FileRef] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise ConfigError(f"Freddie Mac data: {path} does not exist (a folder, zip archive or text file)")
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in (".txt", ".zip")) if path.is_dir() else [path]
        for f in files:
            refs += list(_zip_members(f)) if f.suffix.lower() == ".zip" else [_FileRef(f)]
    perf = [r for r in refs if _PERFORMANCE_NAME.fullmatch(r.name)]
    orig = [r for r in refs if _ORIGINATION_NAME.fullmatch(r.name)]
    if not orig or not perf:
        missing = "origination (sample_orig_YYYY.txt, historical_data_YYYYQn.txt, orig_YYYYQn.txt)" if not orig else \
            "monthly performance (sample_svcg_YYYY.txt, sample_perf_YYYY.txt, historical_data_time_YYYYQn.txt, perf_YYYYQn.txt)"
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
    file has (blank where it has not); a ``row`` column holds the 1-based line number. DataError for an
    empty file or a row with too few fields for the layout, naming the file and line."""
    need = max(fields.values()) + 1
    with ref.open() as fh:
        first = fh.readline().decode("latin-1").removeprefix(_BOM)
    if not first.strip():
        raise DataError(f"{ref}: the file is empty or starts with a blank line; expected Freddie Mac {what} rows")
    n_fields = first.count("|") + 1
    if n_fields < need:
        raise DataError(f"{ref}: {n_fields} pipe-separated fields in line 1; a Freddie Mac {what} file has "
                        f"at least {need} (is it the other kind of file, or not Freddie Mac's layout?)")
    odd = _first_odd_line(ref, n_fields - 1)
    if odd is not None:
        line_no, loan, width = odd
        raise DataError(f"{ref}: line {line_no} (loan {loan!r}) has {width} pipe-separated fields where line 1 has "
                        f"{n_fields}; expected one Freddie Mac {what} layout per file")
    absent = [k for k, pos in (optional or {}).items() if pos >= n_fields]
    fields = {**fields, **{k: pos for k, pos in (optional or {}).items() if k not in absent}}
    order = sorted(fields, key=fields.get)
    line = 1
    with ref.open() as fh:
        # blank lines are kept as rows (of no loan) so that ``row`` is the file's line number
        # the files are not quoted: a '"' in a seller's name is a character, not the start of a quoted field
        reader = pd.read_csv(fh, sep="|", header=None, usecols=[fields[k] for k in order], dtype=str,
                             keep_default_na=False, skip_blank_lines=False, encoding="latin-1", chunksize=_CHUNK_ROWS,
                             quoting=csv.QUOTE_NONE)
        for chunk in reader:
            chunk.columns = order  # usecols keeps file order, which ``order`` follows
            chunk.iloc[:1, 0] = chunk.iloc[:1, 0].str.removeprefix(_BOM)
            yield chunk.fillna("").assign(row=np.arange(line, line + len(chunk)), layout_fields=n_fields,
                                          **{k: "" for k in absent})
            line += len(chunk)


def _first_odd_line(ref: _FileRef, n_pipes: int, block: int = 1 << 23) -> tuple[int, str, int] | None:
    """``(line (1-based), its first field, its field count)`` of the first line of ``ref`` whose number of
    pipes is not ``n_pipes`` (blank lines aside), or None. pandas fills a short row's missing fields with
    blanks, which the layout also uses for 'not reported', so odd rows are found here, in blocks of
    ``block`` bytes (a full release's file runs to gigabytes)."""
    line, carry = 1, b""
    with ref.open() as fh:
        while True:
            data = fh.read(block)
            buf = carry + data
            cut = len(buf) if not data else buf.rfind(b"\n") + 1  # at the end, the last line without newline
            arr, carry = np.frombuffer(buf[:cut] if data else buf + b"\n", np.uint8), buf[cut:]
            ends = np.flatnonzero(arr == 10)
            pipes = np.diff(np.r_[0, np.searchsorted(np.flatnonzero(arr == 124), ends)])
            lengths = np.diff(np.r_[-1, ends]) - 1 - (arr[np.maximum(ends - 1, 0)] == 13)
            odd = np.flatnonzero((pipes != n_pipes) & (lengths > 0))
            if odd.size:
                k = int(odd[0])
                start = int(ends[k - 1]) + 1 if k else 0
                text = bytes(arr[start:int(ends[k])]).decode("latin-1").removeprefix(_BOM)
                return line + k, text.split("|")[0].strip(), int(pipes[k]) + 1
            line += ends.size
            if not data:
                return None


def _bad(ref: object, chunk: pd.DataFrame, mask: pd.Series | np.ndarray, field: str, expected: str) -> DataError:
    """A DataError naming the file, the first offending line and loan, the field and what was expected."""
    pos = int(np.argmax(np.asarray(mask)))
    row = chunk.iloc[pos]
    return DataError(f"{ref}: line {row['row']} (loan {row['loan_sequence_number'].strip()!r}): {field} "
                     f"{row[field].strip()!r}, expected {expected} ({int(np.sum(mask))} such row(s))")


def _number(values: pd.Series, missing: Sequence[float] = ()) -> pd.Series:
    """float64 of text fields; blanks, text and the layout's 'not available' codes (e.g. 999, 9999) -> NaN."""
    out = pd.to_numeric(values.str.strip(), errors="coerce")
    return out.where(~out.isin(list(missing)))


def _required_number(chunk: pd.DataFrame, field: str, ref: object, low: float = 0.0) -> pd.Series:
    """float64 of a field every row must carry as a number >= ``low``; DataError naming line and loan."""
    out = _number(chunk[field])
    bad = out.isna() | (out < low)
    if bad.any():
        raise _bad(ref, chunk, bad, field, f"a number >= {low:g}")
    return out


def _month(chunk: pd.DataFrame, field: str, ref: object) -> pd.Series:
    """Month starts of a YYYYMM field every row must carry; DataError naming line, loan and value."""
    out = pd.to_datetime(chunk[field].str.strip(), format="%Y%m", errors="coerce")
    if out.isna().any():
        raise _bad(ref, chunk, out.isna(), field, "a month as YYYYMM")
    return out


def _tape(raw: pd.DataFrame, ref: object) -> tuple[pd.DataFrame, int]:
    """The loan tape of origination rows (text columns of :data:`ORIGINATION_FIELDS`) and the number of
    loans left out for a term beyond the contract's 360 months."""
    first_payment = _month(raw, "first_payment_date", ref)
    term = _required_number(raw, "original_loan_term", ref, low=1)
    origination = first_payment - pd.DateOffset(months=1)  # the first payment falls a month after funding
    tape = pd.DataFrame({
        "loan_id": raw["loan_sequence_number"].str.strip().to_numpy(),
        "origination_date": origination.to_numpy(),
        "maturity_date": _month(raw, "maturity_date", ref).to_numpy(),
        "original_balance": _required_number(raw, "original_upb", ref, low=1).to_numpy(),
        "interest_rate": (_required_number(raw, "original_interest_rate", ref) / 100.0).to_numpy(),
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
    long_term = tape["term_months"] > 360
    return tape.loc[~long_term].reset_index(drop=True), int(long_term.sum())


#: what a performance row's zero-balance code says: the loan is still there, paid off, lost, or left the data
_ZB_NONE, _ZB_PAID, _ZB_LOSS, _ZB_LEFT = 0, 1, 2, 3


def _compact(chunk: pd.DataFrame, loan_pos: pd.Series, ref: object) -> pd.DataFrame:
    """A chunk of performance text rows of known loans as numbers: ``loan`` (int32 tape position),
    ``reporting_month``, ``upb`` (currency units, NaN where masked as 0), ``removal_upb``, ``months_late``
    (NaN: unknown or REO), ``reo``, ``zb`` (:data:`_ZB_NONE` .. :data:`_ZB_LEFT`), ``remaining`` (months
    to legal maturity), ``loan_age``, ``current_interest_rate`` and ``estimated_ltv`` (decimals). Text
    columns of a full release would take gigabytes; these take about 50 bytes a row. DataError naming
    line and loan for a status, zero-balance code or balance outside the layout."""
    status = chunk["current_loan_delinquency_status"].str.strip().str.upper()
    late = _number(status)
    bad = (late.isna() & ~status.isin(REO_ACQUISITION | UNKNOWN_STATUS)) | (late < 0)
    if bad.any():
        raise _bad(ref, chunk, bad, "current_loan_delinquency_status", "months delinquent 0, 1, 2, ..., RA or XX")
    raw_code = chunk["zero_balance_code"].str.strip()
    code = raw_code.str.zfill(2).where(raw_code != "", "")
    known = {""} | {PREPAID_ZERO_BALANCE_CODE} | DEFAULT_ZERO_BALANCE_CODES | LEFT_ZERO_BALANCE_CODES
    if not code.isin(known).all():
        raise _bad(ref, chunk, ~code.isin(known), "zero_balance_code", f"blank or one of {sorted(known - {''})}")
    zb = np.select([code == "", code == PREPAID_ZERO_BALANCE_CODE, code.isin(list(DEFAULT_ZERO_BALANCE_CODES))],
                   [_ZB_NONE, _ZB_PAID, _ZB_LOSS], _ZB_LEFT)
    upb = _required_number(chunk, "current_actual_upb", ref)
    return pd.DataFrame({
        "loan": loan_pos.to_numpy(np.int32),
        "reporting_month": _month(chunk, "monthly_reporting_period", ref).to_numpy(),
        "upb": upb.where(upb > 0).to_numpy(),
        "removal_upb": _number(chunk["zero_balance_removal_upb"]).to_numpy(),
        "months_late": late.to_numpy(),
        "reo": status.isin(REO_ACQUISITION).to_numpy(),
        "zb": zb.astype(np.int8),
        "remaining": _number(chunk["remaining_months_to_legal_maturity"]).to_numpy(np.float32),
        "loan_age": _number(chunk["loan_age"]).to_numpy(np.float32),
        "current_interest_rate": (_number(chunk["current_interest_rate"]) / 100.0).to_numpy(np.float32),
        "estimated_ltv": (_number(chunk["estimated_ltv"], (999,)) / 100.0).to_numpy(np.float32),
    })


def _reported_state(perf: pd.DataFrame, at_term: np.ndarray, default_months: int | None) -> np.ndarray:
    """(n,) int8 state of compact performance rows (:func:`_compact`), -1 = not usable.

    A zero-balance code decides the row: 01 PREPAID (MATURED where ``at_term``: no month to maturity left), a
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


def _cut(loan: np.ndarray, state: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, ended_by_leaving)``, (n,) bool each, of rows sorted by loan and month: a loan's record stops
    after its first absorbing row, and before a row where it ``left`` the data without a credit event;
    ``ended_by_leaving`` marks the leaving rows that ended a record (not those after an absorption)."""
    stop = (state >= LoanState.DEFAULT) | left
    before = pd.Series(stop).groupby(loan, sort=False).cumsum().to_numpy() - stop
    return (before == 0) & ~left, (before == 0) & left


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


#: performance fields of Release 47 (July 2026) files, which report loss amounts with the opposite sign
RELEASE_47_PERFORMANCE_FIELDS = 35


def _loss_rows(chunk: pd.DataFrame, compact: pd.DataFrame, ref: object) -> pd.DataFrame:
    """The credit-event zero-balance rows of a chunk: ``loan``, ``event_month``, ``removal_upb``, the
    recoveries and ``expenses`` as amounts (>= 0), ``actual_loss`` as the release reports it and ``loss``,
    positive for a loss (currency units; NaN where blank or coded: net sale proceeds 'C' covered, 'U'
    unknown; other text is a DataError naming line, loan and field).

    Sign: releases before Release 47 report the actual loss negative for a loss (and expenses negative);
    Release 47 files (:data:`RELEASE_47_PERFORMANCE_FIELDS` fields) invert the loss elements, a loss
    positive -- from third-party layout notes of the July 2026 release, not yet Freddie Mac's own guide."""
    out = pd.DataFrame({"loan": compact["loan"].to_numpy(), "event_month": compact["reporting_month"].to_numpy(),
                        "removal_upb": compact["removal_upb"].to_numpy()})
    for name, column in _LOSS_FIELDS.items():
        text = chunk[name].str.strip().str.upper()
        value = _number(text)
        bad = value.isna() & ~text.isin(["", "C", "U"])
        if bad.any():
            raise _bad(ref, chunk, bad, name, "an amount, blank, C (covered) or U (unknown)")
        out[column] = value.to_numpy() if column == "actual_loss" else value.abs().to_numpy()
    newer = chunk["layout_fields"].to_numpy() >= RELEASE_47_PERFORMANCE_FIELDS
    out["loss"] = np.where(newer, out["actual_loss"], -out["actual_loss"])
    return out


def _performance(refs: Sequence[_FileRef], loan_ids: pd.Index,
                 counts: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(compact performance rows (:func:`_compact`), credit-event rows (:func:`_loss_rows`))`` of the
    loans ``loan_ids`` (the tape's, in order), read in chunks: memory grows with the loans read, not with
    the release; counts the rows of other loans."""
    parts, losses = [], []
    for ref in refs:
        for chunk in _read_fields(ref, PERFORMANCE_FIELDS, "monthly performance", PERFORMANCE_OPTIONAL_FIELDS):
            pos = pd.Series(loan_ids.get_indexer(chunk["loan_sequence_number"].str.strip()), index=chunk.index)
            mine = pos >= 0
            counts["rows_of_other_loans"] += int((~mine).sum())
            if mine.any():
                rows = chunk.loc[mine]
                parts.append(_compact(rows, pos[mine], ref))
                lossy = (parts[-1]["zb"] == _ZB_LOSS).to_numpy()
                if lossy.any():
                    losses.append(_loss_rows(rows.iloc[lossy], parts[-1].iloc[lossy], ref))
    if not parts:
        raise DataError("Freddie Mac data: no performance row belongs to a loan of the origination files "
                        "(are the performance files of the same vintages?)")
    perf = pd.concat(parts, ignore_index=True).sort_values(["loan", "reporting_month"], kind="stable")
    twice = perf.duplicated(["loan", "reporting_month"])
    if twice.any():
        first = perf.loc[twice].iloc[0]
        raise DataError(f"Freddie Mac performance files: loan {loan_ids[int(first['loan'])]!r} has more than one row "
                        f"for {first['reporting_month']:%Y-%m} ({int(twice.sum())} such rows); give each release's "
                        "files once (a zip archive and its unzipped files are the same files)")
    empty = pd.DataFrame(columns=["loan", "event_month", "removal_upb", *_LOSS_FIELDS.values(), "loss"])
    return perf.reset_index(drop=True), pd.concat(losses, ignore_index=True) if losses else empty


def _loss_table(events: pd.DataFrame, panel: pd.DataFrame, tape: pd.DataFrame) -> pd.DataFrame:
    """One row per loan whose panel ends in DEFAULT and whose credit-event row is in the files:
    ``loan_id``, ``vintage``, ``default_month`` (the panel's DEFAULT row), ``event_month`` (the zero
    balance: the sale, or the REO disposition months after the acquisition), ``balance_at_default``
    (the balance removed at the zero balance, else the DEFAULT row's), the release's recoveries and
    ``expenses`` (amounts), ``actual_loss`` (the release's "actual loss calculation", its sign as
    reported), ``loss`` (positive for a loss, :func:`_loss_rows`) and ``severity`` = loss /
    balance_at_default (NaN where the release gives no actual loss: older releases, or an event too
    recent to be settled). Only events the panel reached are kept: with an ``end`` month, a disposition
    after it is not yet known."""
    defaults = panel.loc[panel["loan_state"] == LoanState.DEFAULT, ["loan_id", "reporting_month", "current_balance"]]
    events = events.drop_duplicates("loan")
    events = events.assign(loan_id=pd.Series(tape["loan_id"].to_numpy()[events["loan"].to_numpy(np.int64)],
                                             index=events.index, dtype=object))
    out = defaults.merge(events.drop(columns="loan"), on="loan_id", how="inner")
    out = out.rename(columns={"reporting_month": "default_month"})
    out["balance_at_default"] = np.where(out["removal_upb"] > 0, out["removal_upb"], out["current_balance"])
    out["severity"] = out["loss"] / out["balance_at_default"]
    out.insert(1, "vintage", out["loan_id"].map(tape.set_index("loan_id")["vintage"]))
    return out.drop(columns=["current_balance", "removal_upb"]).reset_index(drop=True)


def _balances(perf: pd.DataFrame, rows: np.ndarray, state: np.ndarray, original: np.ndarray) -> np.ndarray:
    """(n,) ``current_balance`` of the kept rows (currency units). A live row the release masks (UPB 0, a
    loan's first months) or leaves blank carries the loan's last reported balance, at first the original
    one; a DEFAULT row the balance removed at the zero balance, else its own UPB, else the last live one;
    PREPAID and MATURED rows 0 (nothing is owed)."""
    loan = perf["loan"].to_numpy()[rows]
    upb = perf["upb"].to_numpy()[rows]
    removal = perf["removal_upb"].to_numpy()[rows]
    live = state < LoanState.DEFAULT
    carried = pd.Series(np.where(live, upb, np.nan)).groupby(loan, sort=False).ffill().to_numpy()
    prev = np.r_[np.nan, carried[:-1]]
    prev = np.where(np.r_[False, loan[1:] == loan[:-1]], prev, np.nan)
    at_default = np.where(removal > 0, removal, np.where(upb > 0, upb, prev))
    out = np.where(live, carried, np.where(state == LoanState.DEFAULT, at_default, 0.0))
    return np.where(np.isnan(out), original, out)


def _panel(perf: pd.DataFrame, tape: pd.DataFrame, default_months: int | None,
           counts: dict[str, int]) -> pd.DataFrame:
    """The panel of compact performance rows (sorted by loan and month) in our states: usable rows,
    records cut at their end, delinquency capped (:func:`_reported_state`, :func:`_cut`, :func:`_cap`).
    A payoff is MATURED when no month to legal maturity remains (the reported count, which follows a
    modification's new term; the tape's maturity date where the count is blank)."""
    loan = perf["loan"].to_numpy()
    month = perf["reporting_month"].to_numpy()
    remaining = perf["remaining"].to_numpy()
    at_term = np.where(np.isnan(remaining), month >= tape["maturity_date"].to_numpy()[loan], remaining <= 0)
    state = _reported_state(perf, at_term, default_months)
    keep, ended_by_leaving = _cut(loan, state, perf["zb"].to_numpy() == _ZB_LEFT)
    counts["loans_left_without_credit_event"] = int(ended_by_leaving.sum())
    early = month < tape["origination_date"].to_numpy()[loan]
    counts["rows_before_origination"] = int((keep & early).sum())
    unknown = keep & ~early & (state == -1)
    counts["rows_unknown_status"] = int(unknown.sum())
    counts["rows_after_record_end"] = int((~keep).sum())
    rows = np.flatnonzero(keep & ~early & ~unknown)
    capped = _cap(loan[rows], month[rows].astype("datetime64[M]").astype(np.int64), state[rows])
    counts["rows_capped"] = int((capped != state[rows]).sum())
    return pd.DataFrame({
        "loan_id": tape["loan_id"].to_numpy()[loan[rows]], "reporting_month": month[rows],
        "current_balance": _balances(perf, rows, capped, tape["original_balance"].to_numpy()[loan[rows]]),
        "loan_state": capped.astype(np.int8),
        "months_delinquent": perf["months_late"].to_numpy()[rows],
        "loan_age": perf["loan_age"].to_numpy()[rows],
        "current_interest_rate": perf["current_interest_rate"].to_numpy()[rows],
        "estimated_ltv": perf["estimated_ltv"].to_numpy()[rows],
    })


def _read_tape(refs: Sequence[_FileRef], counts: dict[str, int], max_loans: int | None) -> pd.DataFrame:
    """The tape of the origination files sorted by loan number; with ``max_loans``, a subset spread over
    every vintage (the loans whose hashed numbers are smallest: loan numbers encode the origination
    quarter, so the first numbers would be the oldest loans only)."""
    tapes = []
    for ref in refs:
        for chunk in _read_fields(ref, ORIGINATION_FIELDS, "origination"):
            tape, n_long = _tape(chunk, ref)
            counts["loans_term_over_360"] = counts.get("loans_term_over_360", 0) + n_long
            tapes.append(tape)
    tape = pd.concat(tapes, ignore_index=True).sort_values("loan_id", kind="stable").reset_index(drop=True)
    dup = tape["loan_id"][tape["loan_id"].duplicated()]
    if len(dup):
        raise DataError(f"Freddie Mac origination files: loan number {dup.iloc[0]!r} appears more than once "
                        f"({dup.nunique()} such loans); give each vintage's files once (a zip archive and its "
                        "unzipped files are the same files)")
    if max_loans is not None and max_loans < len(tape):
        order = np.argsort(pd.util.hash_array(tape["loan_id"].to_numpy(object)), kind="stable")
        tape = tape.iloc[np.sort(order[:max_loans])]
    return tape.reset_index(drop=True)


def read_freddie_mac(sources: str | Path | Sequence[str | Path], *, default_months: int | None = None,
                     max_loans: int | None = None, end: str | pd.Timestamp | None = None) -> FreddieMacData:
    """Freddie Mac Single-Family Loan-Level files as a loan tape and a monthly panel in our states.

    Args:
        sources: folders holding the files (searched with their sub-folders for ``.txt`` and ``.zip``),
            zip archives as downloaded, or the text files; origination and performance files are told
            apart by Freddie Mac's names (module docstring).
        default_months: months delinquent from which a loan counts as DEFAULT (6 = the 180-day
            definition common in mortgage credit-risk work). None (default): DEFAULT is the credit
            event itself -- REO acquisition, or a zero balance through a third-party sale, short sale or
            charge-off, REO disposition or non-performing note sale -- and a loan 90+ days late stays
            DPD90 until then (foreclosures took two to three years after 2008, so this default lags the
            cycle; the 180-day definition follows it more closely).
        max_loans: read only this many loans, a deterministic subset spread over the vintages given.
            Memory peaks at about 400 bytes per loan-month read (a sample year of 2.7 M rows: 1.05 GB), so
            a full quarterly release of tens of millions of rows needs a subset.
        end: last reporting month kept (``"YYYY-MM"``), e.g. the last month of the macro history a
            model will be given; None keeps every month of the release.

    Returns:
        :class:`FreddieMacData`. The tape: one row per loan with performance rows, in the tape contract
        (monthly annuity mortgages, ``real_estate``, ``consumer``; rate and LTV / DTI / MI as
        decimals; ``external_score`` the credit score; origination = the month before the first
        payment; extra columns ``cltv_origination``, ``mi_percent``, ``property_state``,
        ``loan_purpose``). Loans with terms above the contract's 360 months are left out (counted).
        The panel: ``loan_id``, ``reporting_month``, ``current_balance`` (currency units,
        :func:`_balances`: masked or blank balances carry the last reported one, DEFAULT rows the
        balance at default, payoffs 0), ``loan_state``, and as covariates for ``--panel-features``:
        ``months_delinquent`` (as reported; NaN for REO and unknown), ``loan_age``,
        ``current_interest_rate`` (decimal), ``estimated_ltv`` (Freddie Mac's model estimate of the
        current LTV, a decimal, reported from 2017 on; NaN before, where unknown, or in releases
        without the field). The losses: realised severities of the defaults (:func:`_loss_table`).

    States: the delinquency status k -> CURRENT, DPD30, DPD60 for k = 0, 1, 2 and DPD90 for k >= 3;
    zero-balance code 01 -> PREPAID, or MATURED when no month to legal maturity remains; credit events
    -> DEFAULT (see ``default_months``); a loan repurchased by its seller or sold while re-performing
    leaves the data without a credit event, so its record ends at the row before (censored, counted).
    Rows with an unknown status (``XX``) are dropped, leaving a gap, and so are rows before the loan's
    origination month. A reported jump of several buckets is taken as one bucket a month (counted as
    ``rows_capped``); rows after a loan's absorption are dropped.

    Raises:
        ConfigError: a source does not exist, no origination / performance file is found, or an
            argument is out of range.
        DataError: naming the file, line, loan and field: a file that is empty or not in Freddie Mac's
            layout (too few fields, months not YYYYMM, a status or zero-balance code the layout does not
            have, a missing balance, rate or term), a loan number twice in the origination files or a
            loan-month twice in the performance files, or no usable performance row.
    """
    if default_months is not None and (isinstance(default_months, bool) or not isinstance(default_months, int)
                                       or not 3 <= default_months <= 24):
        raise ConfigError(f"default_months must be an integer from 3 to 24 (months delinquent), got {default_months!r}")
    if max_loans is not None and (isinstance(max_loans, bool) or not isinstance(max_loans, int) or max_loans < 1):
        raise ConfigError(f"max_loans must be a positive integer, got {max_loans!r}")
    if end is not None and not (isinstance(end, pd.Timestamp) or re.fullmatch(r"\d{4}-\d{2}", str(end))):
        raise ConfigError(f"end must be a month as YYYY-MM, got {end!r}")
    last = None if end is None else month_start(end, "end")
    orig_refs, perf_refs = find_freddie_files(sources)
    counts = {"rows_of_other_loans": 0}
    tape = _read_tape(orig_refs, counts, max_loans)
    perf, events = _performance(perf_refs, pd.Index(tape["loan_id"]), counts)
    if last is not None:
        counts["rows_after_end"] = int((perf["reporting_month"] > last).sum())
        perf = perf.loc[perf["reporting_month"] <= last].reset_index(drop=True)
        events = events.loc[events["event_month"] <= last]
    panel = _panel(perf, tape, default_months, counts)
    if panel.empty:
        raise DataError("Freddie Mac data: no usable performance rows (every row unknown, before origination, "
                        "after its loan left or after the end month)")
    tape = tape.loc[tape["loan_id"].isin(set(panel["loan_id"]))].reset_index(drop=True)
    counts |= {"loans": len(tape), "rows": len(panel)}
    panel = validate_panel(panel, check_transitions=True)
    return FreddieMacData(validate_loan_tape(tape), panel, counts, _loss_table(events, panel, tape))
