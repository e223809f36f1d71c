"""Column specs of the data contract and the validators applied at every public edge.

See ``shared/spec/loan-tape.md``. Each validator returns a cleaned copy (dtypes coerced, dates parsed)
and raises :class:`~creditsim.errors.DataError` naming the column, up to 10 offending row labels and
what was expected. Validation happens once, at the edge; code inside the package trusts its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import DataError, format_labels
from creditsim.states import ALLOWED_TRANSITIONS, ASSET_CLASSES, MACRO_VARS, N_STATES

__all__ = [
    "ColumnSpec",
    "LOAN_COLUMNS",
    "PANEL_COLUMNS",
    "REQUIRED_LOAN_COLUMNS",
    "REQUIRED_PANEL_COLUMNS",
    "RATE_TYPES",
    "PAYMENT_FREQUENCIES",
    "AMORTIZATION_TYPES",
    "BORROWER_TYPES",
    "COLLATERAL_TYPES",
    "RATINGS",
    "validate_loan_tape",
    "validate_panel",
    "validate_macro",
]

RATE_TYPES = ("fixed", "floating")
PAYMENT_FREQUENCIES = ("monthly", "quarterly", "semiannual", "annual")
AMORTIZATION_TYPES = ("annuity", "linear", "bullet", "interest_only")
BORROWER_TYPES = ("sme", "midmarket", "large_corporate", "consumer")
COLLATERAL_TYPES = ("real_estate", "equipment", "inventory", "receivables", "unsecured")
RATINGS = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC")


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


def _raise(what: str, column: str, labels: Sequence[object], expected: str) -> None:
    raise DataError(
        f"{what}: column '{column}' has {len(labels)} invalid row(s) {format_labels(labels)}; "
        f"expected {expected}"
    )


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{what}: missing required column(s) {missing}")


def _coerce(df: pd.DataFrame, spec: ColumnSpec, what: str) -> None:
    """Coerce ``df[spec.name]`` in place and check NaN, bounds and choices."""
    col = spec.name
    s = df[col]
    if spec.required:
        bad = df.index[s.isna()]
        if len(bad):
            _raise(what, col, list(bad), "no missing values (NaN/None) in a required field")
    present = s.notna()
    if spec.kind == "date":
        parsed = pd.to_datetime(s, errors="coerce")
        bad = df.index[present & parsed.isna()]
        if len(bad):
            _raise(what, col, list(bad), "a date (YYYY-MM-DD)")
        df[col] = parsed
    elif spec.kind in ("float", "int"):
        num = pd.to_numeric(s, errors="coerce")
        bad = df.index[present & (num.isna() | ~np.isfinite(num.fillna(0.0)))]
        if len(bad):
            _raise(what, col, list(bad), "a finite number")
        if spec.kind == "int":
            frac = present & (num.fillna(0) != np.round(num.fillna(0)))
            bad = df.index[frac]
            if len(bad):
                _raise(what, col, list(bad), "an integer")
        if spec.low is not None:
            strict = spec.name in ("original_balance",)
            low_bad = (num <= spec.low) if strict else (num < spec.low)
            bad = df.index[present & low_bad]
            if len(bad):
                op = ">" if strict else ">="
                _raise(what, col, list(bad), f"values {op} {spec.low:g}")
        if spec.high is not None:
            bad = df.index[present & (num > spec.high)]
            if len(bad):
                _raise(what, col, list(bad), f"values <= {spec.high:g}")
        if spec.kind == "int" and not s.isna().any():
            df[col] = num.astype(np.int64)
        else:
            df[col] = num.astype(np.float64)
    elif spec.kind == "category":
        norm = s.where(~present, s.astype(str).str.strip())
        if spec.name != "rating":
            norm = norm.where(~present, norm.astype(str).str.lower())
        else:
            norm = norm.where(~present, norm.astype(str).str.upper())
        bad = df.index[present & ~norm.isin(spec.choices or ())]
        if len(bad):
            _raise(what, col, list(bad), f"one of {list(spec.choices or ())}")
        df[col] = norm
    else:  # str
        df[col] = s.where(~present, s.astype(str))


def validate_loan_tape(loans: pd.DataFrame) -> pd.DataFrame:
    """Validate a static loan tape (one row per loan) and return a cleaned copy.

    Checks: required columns present, no NaN in required fields, numeric bounds (balances > 0,
    ``interest_rate`` an annual decimal in [0, 1], ``term_months`` in 1..360, ...), categories in their
    allowed sets, unique ``loan_id``, ``maturity_date`` after ``origination_date``, ``current_balance``
    not above ``original_balance``.

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
            _coerce(df, spec, what)
    dup = df.index[df["loan_id"].duplicated(keep=False)]
    if len(dup):
        _raise(what, "loan_id", list(dup), "unique loan identifiers (duplicates found)")
    bad = df.index[df["maturity_date"] <= df["origination_date"]]
    if len(bad):
        _raise(what, "maturity_date", list(bad), "a maturity date after origination_date")
    if "current_balance" in df.columns:
        over = df["current_balance"] > df["original_balance"] * (1 + 1e-9)
        bad = df.index[over.fillna(False)]
        if len(bad):
            _raise(what, "current_balance", list(bad), "current_balance <= original_balance")
    vint = df["vintage"].astype(str)
    bad = df.index[~vint.str.fullmatch(r"\d{4}-\d{2}")]
    if len(bad):
        _raise(what, "vintage", list(bad), "a 'YYYY-MM' string")
    return df


def validate_panel(panel: pd.DataFrame, check_transitions: bool = True) -> pd.DataFrame:
    """Validate a loan x month performance panel and return a cleaned copy sorted by loan and month.

    Checks: required columns, state codes in 0..6, non-negative balances, one row per (loan, month),
    and (``check_transitions``) that consecutive months of each loan move only along allowed paths
    (:data:`creditsim.states.ALLOWED_TRANSITIONS`).

    Raises:
        DataError: naming the column, up to 10 offending row labels and what was expected.
    """
    what = "panel"
    _check_columns(panel, REQUIRED_PANEL_COLUMNS, what)
    df = panel.copy()
    for spec in PANEL_COLUMNS:
        if spec.name in df.columns:
            _coerce(df, spec, what)
    dup = df.index[df.duplicated(["loan_id", "reporting_month"], keep=False)]
    if len(dup):
        _raise(what, "reporting_month", list(dup), "one row per (loan_id, reporting_month)")
    df = df.sort_values(["loan_id", "reporting_month"], kind="stable")
    df["loan_state"] = df["loan_state"].astype(np.int8)
    if check_transitions and len(df) > 1:
        ids = df["loan_id"].to_numpy()
        st = df["loan_state"].to_numpy(np.int64)
        same = ids[1:] == ids[:-1]
        ok = ALLOWED_TRANSITIONS[st[:-1], st[1:]]
        bad_pos = np.flatnonzero(same & ~ok) + 1
        if len(bad_pos):
            labels = list(df.index[bad_pos])
            pairs = ", ".join(f"{st[p - 1]}->{st[p]}" for p in bad_pos[:5])
            _raise(what, "loan_state", labels, f"allowed month-to-month moves (found {pairs})")
    return df


def validate_macro(macro: pd.DataFrame, variables: Sequence[str] = MACRO_VARS) -> pd.DataFrame:
    """Validate a monthly macro frame (DatetimeIndex, the 9 variables as decimals).

    Returns a float64 copy with the columns in :data:`MACRO_VARS` order. A frame that lacks variables
    says which; NaN or infinite values name the variable and dates; values that look like percent
    (|x| > 1 for rates) are rejected, since everything is a decimal.
    """
    what = "macro frame"
    _check_columns(macro, list(variables), what)
    df = macro.copy()
    if not isinstance(df.index, pd.DatetimeIndex):
        if "reporting_month" in df.columns:
            df = df.set_index(pd.to_datetime(df["reporting_month"]))
        else:
            raise DataError(f"{what}: expected a DatetimeIndex (or a 'reporting_month' column)")
    if not df.index.is_monotonic_increasing:
        raise DataError(f"{what}: index must be sorted by month")
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
