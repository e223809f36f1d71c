"""EclLoans: the per-loan inputs of an expected-credit-loss run, validated once at the edge.

Every field is an ``(L,)`` array (a scalar is broadcast to all loans). Amounts are currency units, rates
annual decimals, durations whole months counted from the reporting date.

- Contract: ``balance`` (drawn, >= 0), ``annual_rate`` (coupon, paid monthly at ``annual_rate / 12``,
  30/360 as in :mod:`creditsim.loans.schedule`), ``remaining_months`` (payments left, or the
  behavioural life of a revolving facility, IFRS 9 5.5.20), ``amortization`` (annuity, linear, bullet,
  interest_only), ``io_months`` (interest-only payments left).
- Off balance: ``undrawn`` (limit - drawn, >= 0) and ``ccf`` (credit conversion factor in [0, 1]); the
  exposure adds ``ccf * undrawn`` in every period the facility is alive.
- Behaviour: ``prepayment_cpr`` (annual prepayment rate, decimal; competing risk, see ``ecl.py``).
- Credit risk: ``grade`` and ``origination_grade`` (indices 0 = best into the provider's grades, or
  labels such as "BBB"; -1 / None = unrated), ``months_on_book``, ``days_past_due``, ``defaulted``
  (in default for reasons other than days past due), ``watch_list``, ``forborne``, ``previous_stage``
  (1..3 at the last reporting date) and ``months_since_trigger`` (months since the loan last had a
  trigger of its previous stage: drives the probation periods).
- Discounting: ``rate_type`` ("fixed" | "floating"), ``poci`` (purchased or originated credit-impaired),
  ``eir`` (original EIR; default: the effective annual rate of the monthly coupon,
  ``(1 + annual_rate / 12)^12 - 1`` under ``eir_compounding='annual'``), ``current_eir`` (floating
  loans; default ``eir``), ``credit_adjusted_eir`` (POCI, required for them).
- ``lgd_in_default`` (LGD of a Stage 3 loan; NaN = the LGD provider's value at the reporting date),
  ``poci_initial_ecl`` (lifetime ECL at initial recognition of a POCI asset, 5.5.13).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from creditsim.errors import DataError, format_labels
from creditsim.loans.schedule import amortization_codes

__all__ = ["EclLoans"]

_FLOAT_FIELDS = ("balance", "annual_rate", "undrawn", "ccf", "prepayment_cpr", "eir", "current_eir",
                 "credit_adjusted_eir", "lgd_in_default", "poci_initial_ecl")
_INT_FIELDS = ("remaining_months", "io_months", "months_on_book", "days_past_due", "previous_stage", "months_since_trigger")
_BOOL_FIELDS = ("defaulted", "watch_list", "forborne", "poci")
_RANGES = {  # field: (low, high, what)
    "balance": (0.0, np.inf, "finite amounts >= 0"),
    "annual_rate": (0.0, 1.0, "annual decimals in [0, 1]"),
    "undrawn": (0.0, np.inf, "finite amounts >= 0"),
    "ccf": (0.0, 1.0, "decimals in [0, 1]"),
    "prepayment_cpr": (0.0, 0.999, "annual decimals in [0, 0.999]"),
    "eir": (0.0, 1.0, "annual decimals in [0, 1]"),
    "current_eir": (0.0, 1.0, "annual decimals in [0, 1]"),
    "credit_adjusted_eir": (0.0, 1.0, "annual decimals in [0, 1]"),
    "remaining_months": (1, 1200, "whole months in 1..1200"),
    "io_months": (0, 1200, "whole months >= 0"),
    "months_on_book": (0, 1200, "whole months in 0..1200"),
    "days_past_due": (0, 100_000, "whole days >= 0"),
    "previous_stage": (1, 3, "1, 2 or 3"),
    "months_since_trigger": (0, 100_000, "whole months >= 0"),
}


@dataclass(frozen=True)
class EclLoans:
    """Per-loan inputs (module docstring); build with keyword arguments, scalars broadcast."""

    balance: np.ndarray
    annual_rate: np.ndarray
    remaining_months: np.ndarray
    amortization: np.ndarray | str = "annuity"
    io_months: np.ndarray | int = 0
    undrawn: np.ndarray | float = 0.0
    ccf: np.ndarray | float = 0.0
    prepayment_cpr: np.ndarray | float = 0.0
    grade: np.ndarray | None = None
    origination_grade: np.ndarray | None = None
    months_on_book: np.ndarray | int = 0
    days_past_due: np.ndarray | int = 0
    defaulted: np.ndarray | bool = False
    watch_list: np.ndarray | bool = False
    forborne: np.ndarray | bool = False
    previous_stage: np.ndarray | int = 1
    months_since_trigger: np.ndarray | int = 100_000
    rate_type: np.ndarray | str = "fixed"
    poci: np.ndarray | bool = False
    eir: np.ndarray | float | None = None
    current_eir: np.ndarray | float | None = None
    credit_adjusted_eir: np.ndarray | float | None = None
    lgd_in_default: np.ndarray | float = np.nan
    poci_initial_ecl: np.ndarray | float = 0.0
    loan_id: np.ndarray | None = None
    position: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = _n_loans(self.balance)
        put = object.__setattr__
        put(self, "annual_rate", _floats(self.annual_rate, "annual_rate", n))
        if self.eir is None:
            put(self, "eir", np.expm1(12.0 * np.log1p(self.annual_rate / 12.0)))
        if self.current_eir is None:
            put(self, "current_eir", self.eir)
        nan_ok = {"lgd_in_default", "credit_adjusted_eir"}
        if self.credit_adjusted_eir is None:
            put(self, "credit_adjusted_eir", np.nan)
        for name in _FLOAT_FIELDS:
            put(self, name, _floats(getattr(self, name), name, n, nan_ok=name in nan_ok))
        for name in _INT_FIELDS:
            put(self, name, _ints(getattr(self, name), name, n))
        for name in _BOOL_FIELDS:
            put(self, name, _bools(getattr(self, name), name, n))
        put(self, "amortization", amortization_codes(_broadcast(self.amortization, n, "amortization")))
        put(self, "rate_type", _rate_type(self.rate_type, n))
        put(self, "grade", _grades(self.grade, n, "grade"))
        put(self, "origination_grade", _grades(self.origination_grade, n, "origination_grade"))
        put(self, "loan_id", np.arange(n) if self.loan_id is None else _broadcast(self.loan_id, n, "loan_id"))
        put(self, "position", np.arange(n) if self.position is None else np.asarray(self.position, dtype=np.int64))
        self._check()

    def _check(self) -> None:
        for name, (low, high, what) in _RANGES.items():
            v = getattr(self, name)
            bad = ~((v >= low) & (v <= high))
            if name in ("lgd_in_default", "credit_adjusted_eir"):
                bad &= ~np.isnan(v)
            if bad.any():
                raise DataError(f"EclLoans.{name}: rows {format_labels(self.loan_id[bad])} have "
                                f"{format_labels(v[bad].tolist(), 3)}; expected {what}")
        lgd = self.lgd_in_default
        bad = ~np.isnan(lgd) & ~((lgd >= 0) & (lgd <= 1))
        if bad.any():
            raise DataError(f"EclLoans.lgd_in_default: rows {format_labels(self.loan_id[bad])} outside [0, 1]")
        empty = ~(self.balance + self.undrawn > 0)
        if empty.any():
            raise DataError(f"EclLoans.balance: rows {format_labels(self.loan_id[empty])} have no drawn or undrawn exposure")
        poci_no_eir = self.poci & np.isnan(self.credit_adjusted_eir)
        if poci_no_eir.any():
            raise DataError(f"EclLoans.credit_adjusted_eir: POCI rows {format_labels(self.loan_id[poci_no_eir])} need one")

    @property
    def n_loans(self) -> int:
        return int(self.balance.shape[0])

    def subset(self, index: slice | np.ndarray) -> "EclLoans":
        """The loans at ``index`` (positions into the whole book are kept in ``position``)."""
        out = object.__new__(type(self))
        for f in fields(self):  # already validated: slice every array, no second check
            value = getattr(self, f.name)
            object.__setattr__(out, f.name, None if value is None else value[index])
        return out

    def discount_eir(self) -> np.ndarray:
        """``(L,)`` EIR used for discounting (IFRS 9 B5.5.44-45): POCI the credit-adjusted EIR, floating
        the current EIR, fixed the original EIR (annual, quoted per ``eir_compounding``)."""
        floating = self.rate_type == 1
        return np.where(self.poci, self.credit_adjusted_eir, np.where(floating, self.current_eir, self.eir))

    @classmethod
    def from_book(cls, book, **extra) -> "EclLoans":
        """The loans of a :class:`creditsim.loans.book.LoanBook` (the simulation's terms at its cut-off):
        balance, coupon (``monthly_rate * 12``), remaining term, amortisation, interest-only months,
        rate type (``floating``) and ids; the delinquency bucket ``initial_state`` 0..3 (CURRENT, DPD30,
        DPD60, DPD90) becomes ``days_past_due`` at the bucket's middle (0, 45, 75, 105), so DPD30 and
        DPD60 trip the 30 dpd backstop and DPD90 the 90 dpd one. ``extra`` adds or overrides fields
        (grades, flags, EIRs, ...). The book's ``lgd`` is not a field: pass ``FlatLGD(book.lgd)``."""
        terms = dict(balance=book.balance, annual_rate=book.monthly_rate * 12.0, remaining_months=book.remaining_term,
                     amortization=book.amortization, io_months=book.io_months, loan_id=book.loan_id,
                     days_past_due=np.array([0, 45, 75, 105])[np.asarray(book.initial_state, dtype=np.int64)],
                     rate_type=np.zeros(len(book.balance), np.int8) if book.floating is None else np.asarray(book.floating, np.int8))
        terms.update(extra)
        return cls(**terms)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "EclLoans":
        """One loan per row; columns named like the fields (missing optional ones take their defaults)."""
        known = {f.name for f in fields(cls)} - {"position"}
        missing = [c for c in ("balance", "annual_rate", "remaining_months") if c not in frame.columns]
        if missing:
            raise DataError(f"loan frame lacks columns {missing}")
        return cls(**{c: frame[c].to_numpy() for c in frame.columns if c in known})


def _n_loans(balance: object) -> int:
    b = np.asarray(balance)
    if b.ndim != 1 or b.size == 0:
        raise DataError(f"EclLoans.balance must be a non-empty 1-D array (one value per loan), got shape {b.shape}")
    return int(b.size)


def _broadcast(v: object, n: int, name: str) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim == 0:
        a = np.full(n, a.item(), dtype=a.dtype if a.dtype.kind != "U" else object)
    if a.shape != (n,):
        raise DataError(f"EclLoans.{name}: expected {n} values (one per loan) or a scalar, got shape {a.shape}")
    return a


def _floats(v: object, name: str, n: int, nan_ok: bool = False) -> np.ndarray:
    try:
        a = _broadcast(v, n, name).astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"EclLoans.{name}: expected numbers") from exc
    bad = ~np.isfinite(a) & ~(nan_ok & np.isnan(a))
    if bad.any():
        raise DataError(f"EclLoans.{name}: rows {format_labels(np.flatnonzero(bad))} are not finite")
    return a


def _ints(v: object, name: str, n: int) -> np.ndarray:
    a = _floats(v, name, n)
    frac = a != np.round(a)
    if frac.any():
        raise DataError(f"EclLoans.{name}: rows {format_labels(np.flatnonzero(frac))} are not whole numbers")
    return a.astype(np.int64)


def _bools(v: object, name: str, n: int) -> np.ndarray:
    a = _broadcast(v, n, name)
    if a.dtype != bool and not (a.dtype.kind in "iu" and np.isin(a, (0, 1)).all()):
        raise DataError(f"EclLoans.{name}: expected True / False values, got dtype {a.dtype}")
    return a.astype(bool)


def _rate_type(v: object, n: int) -> np.ndarray:
    codes = np.asarray(v)
    if codes.dtype.kind in "iu" and np.isin(codes, (0, 1)).all():
        return _broadcast(codes, n, "rate_type").astype(np.int8)
    a = np.char.lower(_broadcast(v, n, "rate_type").astype(str))
    bad = ~np.isin(a, ("fixed", "floating"))
    if bad.any():
        raise DataError(f"EclLoans.rate_type: rows {format_labels(np.flatnonzero(bad))} have "
                        f"{format_labels(sorted(set(a[bad])))}; expected 'fixed' or 'floating'")
    return (a == "floating").astype(np.int8)


def _grades(v: object, n: int, name: str) -> np.ndarray | None:
    """Integer grade indices (-1 = unrated) or labels kept as strings for the provider to map."""
    if v is None:
        return None
    a = _broadcast(v, n, name)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        return _ints(a, name, n)
    return a.astype(str)
