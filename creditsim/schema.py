"""Column specs of the data contract and the validators applied at every public edge.

See ``shared/spec/loan-tape.md``. Each validator returns a cleaned copy (dtypes coerced, dates parsed)
and raises :class:`~creditsim.errors.DataError` naming the column, up to 10 offending row labels and
what was expected. Validation happens once, at the edge; code inside the package trusts its inputs.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.states import ASSET_CLASSES, GRADES_8, MACRO_VARS, N_STATES, reachable_states

__all__ = [
    "ColumnSpec",
    "LOAN_COLUMNS",
    "PANEL_COLUMNS",
    "REQUIRED_LOAN_COLUMNS",
    "REQUIRED_PANEL_COLUMNS",
    "STATE_PANEL_COLUMNS",
    "RATE_TYPES",
    "PAYMENT_FREQUENCIES",
    "AMORTIZATION_TYPES",
    "BORROWER_TYPES",
    "COLLATERAL_TYPES",
    "RATINGS",
    "validate_loan_tape",
    "LoanTape",
    "as_loan_tape",
    "month_start",
    "monthly_index",
    "validate_panel",
    "validate_macro",
    "parse_dates",
    "id_strings",
    "TERM_TOLERANCE_MONTHS",
]

RATE_TYPES = ("fixed", "floating")
PAYMENT_FREQUENCIES = ("monthly", "quarterly", "semiannual", "annual")
AMORTIZATION_TYPES = ("annuity", "linear", "bullet", "interest_only")
BORROWER_TYPES = ("sme", "midmarket", "large_corporate", "consumer")
COLLATERAL_TYPES = ("real_estate", "equipment", "inventory", "receivables", "unsecured")
#: rating grades a loan tape may carry: the 8-grade scale without D (a defaulted loan is a loan state)
RATINGS: tuple[str, ...] = GRADES_8[:-1]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the contract.

    ``kind`` is one of ``"str"``, ``"date"``, ``"float"``, ``"int"``, ``"category"``; ``low``/``high``
    are inclusive bounds for numbers; ``choices`` the allowed values of a category.
    """

    name: str
    kind: str
    required: bool = True
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    description: str = ""


LOAN_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("loan_id", "str", description="unique loan identifier"),
    ColumnSpec("origination_date", "date"),
    ColumnSpec("maturity_date", "date", description="after origination_date"),
    ColumnSpec("original_balance", "float", low=0.0, description="> 0, currency units"),
    ColumnSpec("interest_rate", "float", low=0.0, high=1.0, description="annual decimal (0.05 = 5 %)"),
    ColumnSpec("rate_type", "category", choices=RATE_TYPES),
    ColumnSpec("payment_frequency", "category", choices=PAYMENT_FREQUENCIES),
    ColumnSpec("amortization_type", "category", choices=AMORTIZATION_TYPES),
    ColumnSpec("asset_class", "category", choices=ASSET_CLASSES),
    ColumnSpec("term_months", "int", low=1, high=360),
    ColumnSpec("geography_country", "str", description="ISO-2 country code"),
    ColumnSpec("borrower_type", "category", choices=BORROWER_TYPES),
    ColumnSpec("originator_id", "str"),
    ColumnSpec("vintage", "str", description="YYYY-MM"),
    ColumnSpec("spread_bps", "float", required=False, low=0.0, high=2000.0),
    ColumnSpec("index_floor_bps", "float", required=False, low=-500.0, high=5000.0,
               description="floating loans: floor on the index (basis points; blank = none)"),
    ColumnSpec("index_cap_bps", "float", required=False, low=-500.0, high=10000.0,
               description="floating loans: cap on the index (basis points; blank = none)"),
    ColumnSpec("reset_months", "int", required=False, low=1, high=12,
               description="floating loans: months between coupon resets (blank = 1)"),
    ColumnSpec("ltv_origination", "float", required=False, low=0.0, high=2.0),
    ColumnSpec("dti_dscr_origination", "float", required=False, low=0.0, high=20.0),
    ColumnSpec("internal_score", "float", required=False, low=0.0, high=100.0),
    ColumnSpec("external_score", "float", required=False, low=300.0, high=850.0),
    ColumnSpec("industry_sector", "str", required=False),
    ColumnSpec("collateral_type", "category", required=False, choices=COLLATERAL_TYPES),
    ColumnSpec("collateral_value", "float", required=False, low=0.0),
    ColumnSpec("rating", "category", required=False, choices=RATINGS),
    ColumnSpec("lgd_assumption", "float", required=False, low=0.0, high=1.0),
    ColumnSpec("current_balance", "float", required=False, low=0.0),
)
REQUIRED_LOAN_COLUMNS: tuple[str, ...] = tuple(c.name for c in LOAN_COLUMNS if c.required)

PANEL_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("loan_id", "str"),
    ColumnSpec("reporting_month", "date"),
    ColumnSpec("current_balance", "float", low=0.0),
    ColumnSpec("scheduled_payment", "float", required=False, low=0.0),
    ColumnSpec("actual_payment", "float", required=False, low=0.0),
    ColumnSpec("principal_paid", "float", required=False),
    ColumnSpec("interest_paid", "float", required=False, low=0.0),
    ColumnSpec("prepayment_amount", "float", required=False, low=0.0),
    ColumnSpec("days_past_due", "int", required=False, low=0),
    ColumnSpec("loan_state", "int", low=0, high=N_STATES - 1, description="0..6, see LoanState"),
    ColumnSpec("loss_amount", "float", required=False, low=0.0),
    ColumnSpec("recovery_amount", "float", required=False, low=0.0),
)
REQUIRED_PANEL_COLUMNS: tuple[str, ...] = tuple(c.name for c in PANEL_COLUMNS if c.required)
#: the columns a transition model learns from (a loan's states month by month): all a panel needs for the
#: chain, the transformer and the trajectory model's state head (``validate_panel(required=...)``)
STATE_PANEL_COLUMNS: tuple[str, ...] = ("loan_id", "reporting_month", "loan_state")


def _raise(what: str, column: str, labels: Sequence[object], expected: str, frame: pd.DataFrame | None = None) -> None:
    """DataError naming the column, up to 10 row labels and what was expected; with ``frame`` (the table the
    labels index) also those rows' ``loan_id``, which is what a user searches the tape for (row labels
    alone are positions after a reset index, or whatever index the file had)."""
    raise DataError(
        f"{what}: column '{column}' has {len(labels)} invalid row(s) {format_labels(labels)}"
        f"{_loan_ids(frame, labels)}; expected {expected}"
    )


def _loan_ids(frame: pd.DataFrame | None, labels: Sequence[object], limit: int = 10) -> str:
    """``" (loan_id 'A1', 'B7')"`` for the first ``limit`` labels of ``frame``, or ``""`` when the frame has no
    loan_id column, its index is not unique (a label would name several rows) or the ids are missing."""
    if frame is None or "loan_id" not in frame.columns or not frame.index.is_unique:
        return ""
    try:
        ids = frame["loan_id"].reindex(list(labels)[:limit])
    except (TypeError, ValueError):
        return ""
    shown = [str(v) for v in ids if not pd.isna(v)]
    if not shown:
        return ""
    return f" (loan_id {format_labels(shown, limit)[1:-1]})"


#: ISO date, optionally with a time part, or an ISO month ``YYYY-MM`` (its first day: unambiguous, and how
#: monthly panels are often written): the only text layouts accepted without an explicit date_format
_ISO_DATE = r"\d{4}-\d{2}(?:-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)?"
#: a term_months value may differ from the months between origination and maturity by at most this
#: much (day-of-month rounding and end-of-month conventions), before the row is named as inconsistent
TERM_TOLERANCE_MONTHS = 1.0


def parse_dates(s: pd.Series, column: str, what: str, date_format: str | None = None,
                frame: pd.DataFrame | None = None) -> pd.Series:
    """Parse one date column to ``datetime64[ns]`` (NaN/None stay NaT; the caller checks required).

    Accepted without ``date_format``: datetime dtypes, ``datetime.date``/``Timestamp`` objects, ISO
    text ``YYYY-MM-DD`` (optionally with a time) and ISO months ``YYYY-MM`` (the month's first day). Anything else (``31/01/2020``, ``01/31/2020``,
    ``20200131`` integers, ...) is ambiguous or unparseable and raises, because a guessing parser reads
    DD/MM as MM/DD and integers as nanoseconds after 1970. With ``date_format`` (a ``strftime``
    pattern such as ``"%d/%m/%Y"`` or ``"%Y%m%d"``) text and integers are parsed with exactly that
    pattern; datetime values are kept as they are.

    Raises:
        DataError: naming the column, up to 10 offending row labels and the expected format.
    """
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.astype("datetime64[ns]")
    # positions inside, the caller's labels in messages and on the result: a label may repeat (a tape joined
    # with pd.concat), and label-based assignment fails on repeated labels
    labels, s = s.index, s.reset_index(drop=True)
    present = s.notna()
    hint = (f"dates in the format {date_format!r}" if date_format
            else "ISO dates YYYY-MM-DD or months YYYY-MM (pass date_format=, e.g. '%d/%m/%Y' or '%Y%m%d', for other layouts)")
    values = s[present]
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        is_dt = pd.Series(False, index=values.index)  # all text: skip the per-value type test
    else:
        is_dt = values.map(lambda v: isinstance(v, (_dt.date, np.datetime64))).astype(bool)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    if is_dt.any():
        out[is_dt.index[is_dt]] = pd.to_datetime(values[is_dt].astype(object), errors="coerce")
    rest = values[~is_dt]
    if len(rest):
        if date_format:
            def text(v: object) -> str:
                # integers 20200131 (or 20200131.0 from a CSV column with NaN) -> "20200131"
                if isinstance(v, (float, np.floating)) and float(v).is_integer():
                    return str(int(v))
                return str(v).strip()
            parsed = pd.to_datetime(rest.map(text), format=date_format, errors="coerce")
            ok = parsed.notna()
        else:
            txt = rest.map(lambda v: v.strip() if isinstance(v, str) else None)
            iso = txt.astype(object).str.fullmatch(_ISO_DATE).fillna(False).astype(bool)
            parsed = pd.Series(pd.NaT, index=rest.index, dtype="datetime64[ns]")
            if iso.any():
                parsed[iso.index[iso]] = pd.to_datetime(txt[iso], format="ISO8601", errors="coerce")
            ok = iso & parsed.notna()
        bad = rest.index[~ok.to_numpy()]
        if len(bad):
            examples = ", ".join(repr(v) for v in rest[~ok.to_numpy()].head(3).tolist())
            _raise(what, column, list(labels[bad]), f"{hint}; got {examples}", frame)
        out[rest.index] = parsed.astype("datetime64[ns]")
    nat = out.index[present.to_numpy() & out.isna().to_numpy()]
    if len(nat):
        _raise(what, column, list(labels[nat]), hint, frame)
    return out.set_axis(labels)


def _id_text(v: object) -> str:
    """Text of an identifier: strings kept as given ("007" stays "007"), whole floats without ".0"
    (a numeric id column with a gap is float64 in pandas: 7.0 is loan "7", as in a column without gaps)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (float, np.floating, int, np.integer)) and not isinstance(v, bool) and float(v).is_integer():
        return str(int(v))
    return str(v)


def id_strings(s: pd.Series) -> pd.Series:
    """Identifiers as strings, the one rule of the package: text as given (``"007"`` keeps its zeros),
    whole numbers as integer text (``7`` and ``7.0`` -> ``"7"``); missing values stay missing."""
    present = s.notna()
    return s.astype(object).where(~present, s[present].map(_id_text))


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing required column(s) {missing}")
    repeated = list(dict.fromkeys(df.columns[df.columns.duplicated()]))
    if repeated:  # df[name] would be a frame: every check of that column would misread it
        raise DataError(f"{what}: column(s) {format_labels(repeated)} appear more than once; expected one column each")


def _coerce(df: pd.DataFrame, spec: ColumnSpec, what: str, date_format: str | None = None) -> None:
    """Coerce ``df[spec.name]`` in place and check NaN, bounds and choices (dates: :func:`parse_dates`)."""
    if _coerce_clean(df, spec):
        return
    col = spec.name
    s = df[col]
    if spec.required:
        bad = df.index[s.isna()]
        if len(bad):
            _raise(what, col, list(bad), "no missing values (NaN/None) in a required field", df)
    present = s.notna()
    if spec.kind == "date":
        df[col] = parse_dates(s, col, what, date_format, frame=df)
    elif spec.kind in ("float", "int"):
        num = pd.to_numeric(s, errors="coerce")
        bad = df.index[present & (num.isna() | ~np.isfinite(num.fillna(0.0)))]
        if len(bad):
            _raise(what, col, list(bad), "a finite number", df)
        if spec.kind == "int":
            frac = present & (num.fillna(0) != np.round(num.fillna(0)))
            bad = df.index[frac]
            if len(bad):
                _raise(what, col, list(bad), "an integer", df)
            if num.dtype.kind == "f":  # a float beyond int64 would be cast to garbage (1e300 -> INT64_MIN)
                bad = df.index[present & (num.abs() >= 2.0**63)]
                if len(bad):
                    _raise(what, col, list(bad), "an integer within int64 (|value| < 2**63)", df)
        if spec.low is not None:
            low_bad = (num <= spec.low) if _strict_low(spec) else (num < spec.low)
            bad = df.index[present & low_bad]
            if len(bad):
                op = ">" if _strict_low(spec) else ">="
                _raise(what, col, list(bad), f"values {op} {spec.low:g}", df)
        if spec.high is not None:
            bad = df.index[present & (num > spec.high)]
            if len(bad):
                _raise(what, col, list(bad), f"values <= {spec.high:g}", df)
        if spec.kind == "int" and not s.isna().any():
            df[col] = num.astype(np.int64)
        else:
            df[col] = num.astype(np.float64)
    elif spec.kind == "category":
        norm = _category_text(s, spec)
        bad = df.index[present & ~norm.isin(spec.choices or ())]
        if len(bad):
            _raise(what, col, list(bad), f"one of {list(spec.choices or ())}", df)
        df[col] = norm
    else:  # str
        df[col] = _id_column(s)


def _strict_low(spec: ColumnSpec) -> bool:
    """Whether ``spec.low`` is an exclusive bound (a balance must be positive)."""
    return spec.name in ("original_balance",)


def _category_text(s: pd.Series, spec: ColumnSpec) -> pd.Series:
    """A category column's present values as compared with ``spec.choices``: stripped, lower case (ratings:
    :func:`rating_grade`); missing values kept."""
    if isinstance(s.dtype, pd.CategoricalDtype):  # a categorical's where() refuses values outside its categories
        s = s.astype(object)
    present = s.notna()
    norm = s.where(~present, s.astype(str).str.strip())
    if spec.name != "rating":
        return norm.where(~present, norm.astype(str).str.lower())
    return norm.where(~present, norm.astype(str).map(rating_grade))


def _id_column(s: pd.Series) -> pd.Series:
    """An identifier column as :func:`_coerce` stores it: each present value's :func:`_id_text`."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    present = s.notna()
    return s.where(~present, s.map(_id_text))


def _coerce_clean(df: pd.DataFrame, spec: ColumnSpec) -> bool:
    """:func:`_coerce`'s result for the usual column in a few vectorised passes: numbers already numeric, finite and
    in bounds; text categories and identifiers without a missing value, normalised once per distinct value
    (a tape of a million loans has a handful of asset classes: the per-row string passes were most of the
    validation's time). Returns False, having written nothing, for any other column -- missing values, text
    numbers, a value out of bounds or not among the choices, mixed types -- which :func:`_coerce` then checks
    row by row, naming the offending rows. The stored column is the same, dtype included (tests/test_schema)."""
    col = spec.name
    s = df[col]
    if spec.kind in ("float", "int"):
        if s.dtype.kind not in "fi":  # bools, unsigned, text, objects: the full path
            return False
        # an int column is checked and stored as its int64 values (through float64, 2**53 + 1 would round)
        a = s.to_numpy(dtype=np.int64 if spec.kind == "int" and s.dtype.kind == "i" else np.float64)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            return False
        # a float int column: whole numbers that float64 holds exactly, or the full path (which names the rest)
        if spec.kind == "int" and a.dtype.kind == "f" and not ((a == np.round(a)) & (np.abs(a) < 2.0**53)).all():
            return False
        if spec.low is not None and bool(((a <= spec.low) if _strict_low(spec) else (a < spec.low)).any()):
            return False
        if spec.high is not None and bool((a > spec.high).any()):
            return False
        df[col] = a.astype(np.int64) if spec.kind == "int" else a
        return True
    # every value a str, none missing (infer_dtype says "string" for a pandas string column with gaps too)
    if (spec.kind not in ("category", "str") or len(s) == 0 or pd.api.types.infer_dtype(s, skipna=False) != "string"
            or bool(s.isna().any())):
        return False
    if spec.kind == "str":  # a str identifier is stored as given (_id_text): in a pandas string column, as is
        return isinstance(s.dtype, pd.StringDtype)  # (an object column's np.str_ would come back as str: full path)
    codes, uniques = pd.factorize(s)
    # printable ASCII: Python's strip and lower are then exactly pandas' (which are pyarrow's on a "str" column)
    if not all(u.isascii() and u.isprintable() for u in uniques):
        return False
    norm = [rating_grade(u.strip()) if spec.name == "rating" else u.strip().lower() for u in uniques]
    if not set(norm) <= set(spec.choices or ()):
        return False
    df[col] = pd.Series(np.asarray(norm, dtype=object)[codes], index=s.index, dtype=s.dtype)
    return True


def validate_loan_tape(loans: pd.DataFrame, date_format: str | None = None, cutoff: object = None) -> pd.DataFrame:
    """Validate a static loan tape (one row per loan) and return a cleaned copy.

    Checks: required columns present, no NaN in required fields, numeric bounds (balances > 0,
    ``interest_rate`` an annual decimal in [0, 1], ``term_months`` in 1..360, ...), categories in their
    allowed sets, unique ``loan_id``, ``maturity_date`` after ``origination_date``, ``term_months``
    within :data:`TERM_TOLERANCE_MONTHS` (1 month) of the months from origination to maturity,
    ``current_balance`` not above ``original_balance``, and (when ``cutoff`` is given) no origination
    after the cut-off date.

    Args:
        loans: the tape, one row per loan.
        date_format: ``strftime`` pattern of text/integer date columns (e.g. ``"%d/%m/%Y"``,
            ``"%Y%m%d"``); None accepts only ISO ``YYYY-MM-DD`` text and datetime values
            (see :func:`parse_dates`).
        cutoff: optional cut-off date (anything ``pd.Timestamp`` accepts, e.g. ``"2025-01"``).

    Identifiers (``loan_id``, ``originator_id``) are strings; values read as numbers become their
    integer text (``7.0`` -> ``"7"``); read files with :func:`creditsim.io.read_loan_tape` so that
    ``"007"`` keeps its zeros.

    Raises:
        DataError: naming the column, up to 10 offending row labels and what was expected.
    """
    what = "loan tape"
    _check_columns(loans, REQUIRED_LOAN_COLUMNS, what)
    df = loans.copy()
    if len(df) == 0:
        raise DataError(f"{what}: no rows")
    for spec in LOAN_COLUMNS:
        if spec.name in df.columns:
            _coerce(df, spec, what, date_format)
    dup = df.index[df["loan_id"].duplicated(keep=False)]
    if len(dup):
        _raise(what, "loan_id", list(dup), "unique loan identifiers (duplicates found)", df)
    bad = df.index[df["maturity_date"] <= df["origination_date"]]
    if len(bad):
        _raise(what, "maturity_date", list(bad), "a maturity date after origination_date", df)
    orig, mat = df["origination_date"], df["maturity_date"]
    # calendar months between the dates, with the day difference as a fraction of a month
    span = ((mat.dt.year - orig.dt.year) * 12 + (mat.dt.month - orig.dt.month)
            + (mat.dt.day - orig.dt.day) / 31.0)
    bad = df.index[(span - df["term_months"]).abs() > TERM_TOLERANCE_MONTHS]
    if len(bad):
        _raise(what, "term_months", list(bad),
               f"term_months within {TERM_TOLERANCE_MONTHS:g} month of the months from origination_date to maturity_date",
               df)
    if cutoff is not None:
        try:
            cut = pd.Timestamp(cutoff)
        except (TypeError, ValueError):
            raise DataError(f"{what}: cutoff must be a date like 2025-01-31, got {cutoff!r}") from None
        bad = df.index[orig > cut]
        if len(bad):
            _raise(what, "origination_date", list(bad), f"origination on or before the cut-off {cut:%Y-%m-%d}", df)
    if "index_floor_bps" in df.columns and "index_cap_bps" in df.columns:
        floating = df["rate_type"].astype(str).str.lower() == "floating"
        inverted = floating & (df["index_cap_bps"] < df["index_floor_bps"])
        bad = df.index[inverted.fillna(False)]
        if len(bad):
            _raise(what, "index_cap_bps", list(bad), "an index cap at or above the row's index_floor_bps", df)
    if "current_balance" in df.columns:
        over = df["current_balance"] > df["original_balance"] * (1 + 1e-9)
        bad = df.index[over.fillna(False)]
        if len(bad):
            _raise(what, "current_balance", list(bad), "current_balance <= original_balance", df)
    vint = df["vintage"].astype(str)
    bad = df.index[~vint.str.fullmatch(r"\d{4}-\d{2}")]
    if len(bad):
        _raise(what, "vintage", list(bad), "a 'YYYY-MM' string", df)
    return df



def rating_grade(rating: str) -> str:
    """The grade of a rating on the 7-grade scale of :data:`RATINGS`: case and blanks ignored, S&P / Fitch
    notches folded into their letter grade (``"BB+"``, ``"bb-"`` -> ``"BB"``) and CC / C into CCC, the
    bucket the rating matrices carry below B (RATINGS.md). Anything else comes back upper-cased, to be
    refused by the caller as not a grade."""
    text = str(rating).strip().upper().replace(" ", "")
    if text in ("CC", "C"):
        return "CCC"
    base = text.rstrip("+-") if text.endswith(("+", "-")) and len(text) > 1 else text
    return base if base in RATINGS else text


@dataclass(frozen=True, eq=False)
class LoanTape:
    """A loan tape that passed :func:`validate_loan_tape`: validated once at the edge of a run, trusted
    by every inner layer (loan book, features, pool engine, cohort features) instead of being validated
    again by each.

    Build it with :meth:`validate` (or :func:`as_loan_tape`); ``frame`` is the cleaned copy (dates
    parsed, ids as text, categories checked) and must not be modified -- take a copy to change it.
    """

    frame: pd.DataFrame

    @classmethod
    def validate(cls, loans: pd.DataFrame, date_format: str | None = None, cutoff: object = None) -> LoanTape:
        """Validate ``loans`` (see :func:`validate_loan_tape`) and wrap the cleaned frame."""
        if not isinstance(loans, pd.DataFrame):
            raise DataError(f"loan tape: expected a pandas DataFrame, got {type(loans).__name__}")
        return cls(validate_loan_tape(loans, date_format=date_format, cutoff=cutoff))

    def __len__(self) -> int:
        return len(self.frame)

    def check_cutoff(self, cutoff: object) -> None:
        """DataError when a loan is originated after ``cutoff`` (validation that needs the run's cut-off)."""
        if cutoff is None:
            return
        try:
            cut = pd.Timestamp(cutoff)
        except (TypeError, ValueError):
            raise DataError(f"loan tape: cutoff must be a date like 2025-01-31, got {cutoff!r}") from None
        bad = self.frame.index[self.frame["origination_date"] > cut]
        if len(bad):
            _raise("loan tape", "origination_date", list(bad), f"origination on or before the cut-off {cut:%Y-%m-%d}",
                   self.frame)


def as_loan_tape(loans: LoanTape | pd.DataFrame) -> LoanTape:
    """``loans`` itself when it is a validated :class:`LoanTape`, else the tape validated now."""
    return loans if isinstance(loans, LoanTape) else LoanTape.validate(loans)


def validate_panel(panel: pd.DataFrame, check_transitions: bool = True, date_format: str | None = None,
                   required: Sequence[str] | None = None) -> pd.DataFrame:
    """Validate a loan x month performance panel and return a cleaned copy sorted by loan and month.

    Checks: unique row labels, required columns, state codes in 0..6, non-negative balances, one row per (loan, month),
    and (``check_transitions``) that consecutive rows of each loan move only along allowed paths
    (:data:`creditsim.states.ALLOWED_TRANSITIONS`; rows ``k`` months apart, as in a quarterly panel or
    across a gap, may show any state ``k`` monthly moves reach: :func:`creditsim.states.reachable_states`).
    ``required`` narrows the required columns to those
    a consumer reads (default: the data contract's :data:`REQUIRED_PANEL_COLUMNS`); columns present
    are checked either way.

    Raises:
        DataError: naming the column, up to 10 offending row labels and what was expected.
    """
    what = "panel"
    _check_columns(panel, REQUIRED_PANEL_COLUMNS if required is None else tuple(required), what)
    if not panel.index.is_unique:  # row labels name the rows in every message; duplicates would be ambiguous
        dup = list(dict.fromkeys(panel.index[panel.index.duplicated()]))
        raise DataError(f"panel: {len(dup)} duplicate row label(s) in the index, e.g. {format_labels(dup)}; expected "
                        "unique labels (frames joined with pd.concat: pass ignore_index=True, or reset_index(drop=True))")
    df = panel.copy()
    for spec in PANEL_COLUMNS:
        if spec.name in df.columns:
            _coerce(df, spec, what, date_format)
    dup = df.index[df.duplicated(["loan_id", "reporting_month"], keep=False)]
    if len(dup):
        _raise(what, "reporting_month", list(dup), "one row per (loan_id, reporting_month)", df)
    df = df.sort_values(["loan_id", "reporting_month"], kind="stable")
    df["loan_state"] = df["loan_state"].astype(np.int8)
    if check_transitions and len(df) > 1:
        ids = df["loan_id"].to_numpy()
        st = df["loan_state"].to_numpy(np.int64)
        same = ids[1:] == ids[:-1]
        # rows k months apart (a quarterly panel, a gap) may show any state k monthly moves reach
        month_no = df["reporting_month"].to_numpy().astype("datetime64[M]").astype(np.int64)
        gap = np.clip(np.diff(month_no), 1, 2 * N_STATES)
        reach = np.stack([reachable_states(k) for k in range(2 * N_STATES + 1)])
        ok = reach[gap, st[:-1], st[1:]]
        bad_pos = np.flatnonzero(same & ~ok) + 1
        if len(bad_pos):
            labels = list(df.index[bad_pos])
            pairs = ", ".join(f"{st[p - 1]}->{st[p]}" + (f" in {gap[p - 1]} months" if gap[p - 1] > 1 else "")
                              for p in bad_pos[:5])
            _raise(what, "loan_state", labels, f"allowed month-to-month moves (found {pairs})", df)
    return df


def month_start(value: object, what: str) -> pd.Timestamp:
    """Parse a date-like value to the first day of its month; ConfigError naming ``what`` otherwise."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a date like '2025-01', got {value!r}") from exc
    if ts is pd.NaT:
        raise ConfigError(f"{what} must be a date like '2025-01', got {value!r}")
    return ts.to_period("M").to_timestamp()


def monthly_index(index: pd.DatetimeIndex, what: str = "macro frame") -> pd.DatetimeIndex:
    """Check that ``index`` holds one date per calendar month, sorted and consecutive; return it tz-naive.

    Any day of the month is fine. Duplicate months (daily or weekly data included), gaps, unsorted and
    missing dates are a DataError naming the dates, because every consumer reads row ``t`` as month ``t``.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{what}: expected a DatetimeIndex of months, got a {type(index).__name__}")
    df = pd.DataFrame(index=index)
    if df.index.tz is not None:
        df.index = df.index.tz_localize(None)
    if df.index.hasnans:
        raise DataError(f"{what}: the index has missing dates (NaT); expected one date per month")
    months = df.index.year.to_numpy(np.int64) * 12 + df.index.month.to_numpy(np.int64) - 1
    fmt = [d.strftime("%Y-%m-%d") for d in df.index]
    dup = pd.Series(months).duplicated(keep=False).to_numpy()
    if dup.any():
        raise DataError(f"{what}: months {format_labels([f for f, d in zip(fmt, dup) if d])} appear more than "
                        f"once; expected one row per calendar month (daily or weekly data: aggregate to months first)")
    step = np.diff(months)
    if (step < 0).any():
        at = np.flatnonzero(step < 0)
        raise DataError(f"{what}: dates not sorted at {format_labels([fmt[i + 1] for i in at])}; expected "
                        f"consecutive calendar months in increasing order")
    if (step > 1).any():
        at = np.flatnonzero(step > 1)
        gaps = [f"{fmt[i]} -> {fmt[i + 1]}" for i in at]
        raise DataError(f"{what}: gaps between months {format_labels(gaps)}; expected consecutive calendar "
                        f"months (one row per month, no missing months)")
    return df.index


def validate_macro(macro: pd.DataFrame, variables: Sequence[str] = MACRO_VARS) -> pd.DataFrame:
    """Validate a monthly macro frame (DatetimeIndex, the 9 variables as decimals).

    The index (or a ``reporting_month`` column of ISO dates) must hold one row per calendar month,
    sorted and consecutive (any day of the month is fine, e.g. month starts or month ends); duplicate
    months (daily or weekly data included), gaps and unsorted dates are rejected naming the dates,
    because every consumer reads row ``t`` as month ``t``.

    Returns a float64 copy with the columns in :data:`MACRO_VARS` order. A frame that lacks variables
    says which; NaN or infinite values name the variable and dates; values with ``|x| > 1`` look like
    percent and are rejected, since everything is a decimal. Percent values below 1 (e.g. a GDP growth
    of 0.9 meaning 0.9 %) cannot be told from decimals and pass.

    Raises:
        DataError: naming the variable or the offending months and what was expected.
    """
    what = "macro frame"
    _check_columns(macro, list(variables), what)
    df = macro.copy()
    if isinstance(df.index, pd.PeriodIndex):
        df.index = df.index.to_timestamp()
    if not isinstance(df.index, pd.DatetimeIndex):
        if "reporting_month" in df.columns:
            rm = parse_dates(df["reporting_month"], "reporting_month", what)
            missing = df.index[rm.isna()]
            if len(missing):
                _raise(what, "reporting_month", list(missing), "a month for every row")
            df = df.set_index(pd.DatetimeIndex(rm.to_numpy(), name="reporting_month"))
        else:
            raise DataError(f"{what}: expected a DatetimeIndex (or a 'reporting_month' column) of months, "
                            f"got a {type(df.index).__name__}")
    df.index = monthly_index(df.index, what)
    out = pd.DataFrame(index=df.index)
    for var in variables:
        x = pd.to_numeric(df[var], errors="coerce").astype(np.float64)
        bad = df.index[~np.isfinite(x.to_numpy())]
        if len(bad):
            _raise(what, var, [d.strftime("%Y-%m") for d in bad], "finite decimal values")
        bad = df.index[np.abs(x.to_numpy()) > 1.0]
        if len(bad):
            _raise(what, var, [d.strftime("%Y-%m") for d in bad], "decimals (0.045 for 4.5 %), not percent")
        out[var] = x
    return out
