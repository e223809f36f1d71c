"""LoanBook: the per-loan terms the cashflow engine needs, prepared once from a validated loan tape.

Decisions (documented here because nobody else can make them):

- Cut-off: with ``cutoff=None`` every loan is projected from its origination (remaining term =
  ``term_months``, balance = ``current_balance`` if given, else ``original_balance``). With a cut-off
  date, elapsed whole calendar months since origination are subtracted from ``term_months``; a loan
  with nothing left to pay is a :class:`DataError` (or is dropped with ``drop_matured=True``). A
  ``remaining_term_months`` column, if present, overrides both. A missing ``current_balance`` at a
  cut-off is the contractual balance after the elapsed payments.
- Coupons: ``interest_rate / 12`` (30/360) for fixed and floating loans alike in the contractual
  schedule (floating loans at their all-in rate at the cut-off). In a simulation the interest of a
  floating loan then follows the scenario's index (the policy rate, the SOFR proxy) since the cut-off,
  one for one or within its index floor and cap and at its reset months (``index_floor_bps``,
  ``index_cap_bps``, ``reset_months``: :mod:`creditsim.loans.floating`); its principal schedule stays
  the cut-off one (a reset does not re-amortise). All payment frequencies are projected as monthly schedules
  of the same term (an approximation for quarterly/semiannual/annual payers).
- Interest-only loans: the interest-only period is the first ``io_fraction`` (default half) of the
  original term, then an annuity; bullets pay interest monthly and principal at maturity.
- LGD assumption: ``lgd_assumption`` if present, else the mid-point of the spec's asset-class range
  (corporate 0.45, consumer 0.75, real estate 0.275, receivables 0.35). Realised LGD per loan and
  scenario ~ Beta with that mean and concentration ``lgd_concentration`` (default 5: sd 0.20 at a
  0.45 mean, the wide dispersion seen in workout LGD data).
- Recovery lag: ``recovery_lag`` months (default 12) for the whole book.
- Initial state: ``loan_state`` column if present (must be 0..3: a loan already defaulted, prepaid or
  matured is not part of a performing pool), else CURRENT. A delinquent loan at the cut-off owes its
  last ``state`` scheduled payments as arrears; ``balance`` includes their principal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, partial

import numpy as np
import pandas as pd

from creditsim.loans.floating import FloatingClasses, floating_classes
from creditsim.loans.pool import DEFAULT_RECOVERY_LAG
from creditsim.loans.schedule import AMORTIZATION_CODES, amortization_codes, amortization_schedule
from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.schema import AMORTIZATION_TYPES, LoanTape, as_loan_tape
from creditsim.states import ASSET_CLASSES

__all__ = ["LoanBook", "DEFAULT_LGD_BY_ASSET_CLASS"]

DEFAULT_LGD_BY_ASSET_CLASS: dict[str, float] = {
    "corporate": 0.45,
    "consumer": 0.75,
    "real_estate": 0.275,
    "receivables": 0.35,
}


def _number(value: object, name: str) -> float:
    """A real scalar setting as float, or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _rows(mask: np.ndarray, labels: np.ndarray | None) -> str:
    idx = np.flatnonzero(mask)
    return format_labels(idx if labels is None else labels[idx])


def _per_loan(v: object, dtype: object, name: str, n: int) -> np.ndarray:
    """``(n,)`` array of ``dtype`` from a per-loan array or a scalar (broadcast); DataError naming ``name``.

    An integer ``dtype`` requires whole numbers (checked on a float copy) rather than truncating them.
    """
    arr = np.asarray(v)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    if arr.shape != (n,):
        raise DataError(f"{name}: expected {n} values (one per loan), got shape {arr.shape}")
    whole = np.dtype(dtype).kind == "i" and arr.dtype.kind not in "iu"
    try:
        out = arr.astype(np.float64 if whole else dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected {np.dtype(dtype).name} values, got {arr.dtype}") from exc
    if whole:
        # 2.5 interest-only months or state 1.5 is an error, never silently truncated
        frac = ~np.isfinite(out) | (out != np.round(out))
        if frac.any():
            raise DataError(f"{name}: rows {_rows(frac, None)} are not whole numbers, got {out[frac][:5].tolist()}")
        out = out.astype(dtype)
    return out


def _labels_or_codes(v: object, n: int, name: str) -> np.ndarray:
    """``(n,)`` int64 codes if ``v`` holds integers, else ``(n,)`` object labels."""
    return _per_loan(v, np.int64 if np.asarray(v).dtype.kind in "iu" else object, name, n)


def _asset_class_codes(ac: np.ndarray) -> np.ndarray:
    """Asset-class labels -> int64 indices into :data:`ASSET_CLASSES` (integer codes pass through)."""
    if ac.dtype != object:
        return ac
    bad = ~np.isin(ac, ASSET_CLASSES)
    if bad.any():
        raise DataError(f"asset_class: rows {_rows(bad, None)} not in {list(ASSET_CLASSES)}")
    return np.array([ASSET_CLASSES.index(a) for a in ac], dtype=np.int64)


# ---------------------------------------------------------------------------- loan tape -> terms
def _elapsed_and_remaining(df: pd.DataFrame, labels: np.ndarray, term: np.ndarray,
                           cutoff: object | None) -> tuple[np.ndarray, np.ndarray]:
    """``(elapsed, remaining)`` ``(L,)`` int64 months: payments made since origination and payments
    left at the cut-off (a ``remaining_term_months`` column overrides the calendar count)."""
    if cutoff is not None:
        try:
            cut = pd.Timestamp(cutoff)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cutoff: expected a date, got {cutoff!r}") from exc
        orig = df["origination_date"]
        elapsed = ((cut.year - orig.dt.year) * 12 + (cut.month - orig.dt.month)).to_numpy(np.int64)
        bad = elapsed < 0
        if bad.any():
            raise DataError(f"loan tape: column 'origination_date' rows {_rows(bad, labels)} are after the cut-off {cut.date()}")
    else:
        elapsed = np.zeros(len(df), dtype=np.int64)
    remaining = term - elapsed
    if "remaining_term_months" in df.columns:
        rt = pd.to_numeric(df["remaining_term_months"], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(rt) | (rt != np.round(rt))
        if bad.any():
            raise DataError(f"loan tape: column 'remaining_term_months' rows {_rows(bad, labels)}; expected whole months")
        remaining = rt.astype(np.int64)
        elapsed = np.maximum(term - remaining, 0)
    return elapsed, remaining


def _live_rows(df: pd.DataFrame, labels: np.ndarray, remaining: np.ndarray, drop_matured: bool) -> np.ndarray | None:
    """Boolean mask of the loans with a payment left, or None when all have one; DataError for
    matured loans unless ``drop_matured`` (and when none is left)."""
    done = remaining < 1
    if not done.any():
        return None
    if not drop_matured:
        col = "remaining_term_months" if "remaining_term_months" in df.columns else "term_months"
        raise DataError(
            f"loan tape: column '{col}' rows {_rows(done, labels)} have no remaining term at the cut-off "
            f"(expected >= 1 month left; set the cut-off before their maturity or leave them out of the tape; "
            f"LoanBook.from_tape(..., drop_matured=True) drops them)"
        )
    if done.all():
        raise DataError("loan tape: every loan has matured by the cut-off")
    return ~done


def _cutoff_balance(df: pd.DataFrame, labels: np.ndarray, original: np.ndarray, rate: np.ndarray, term: np.ndarray,
                    amort: np.ndarray, io_total: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
    """``(L,)`` outstanding principal at the cut-off: ``current_balance`` where given, else the
    contractual balance after the elapsed payments (from the original terms); DataError if not > 0."""
    if "current_balance" in df.columns and df["current_balance"].notna().all():
        balance = df["current_balance"].to_numpy(np.float64)
    else:
        sched = amortization_schedule(original, rate / 12.0, term, amort, io_total, n_columns=int(elapsed.max()) if len(elapsed) else 0)
        balance = sched.balance[np.arange(len(df)), elapsed]
        if "current_balance" in df.columns:
            given = df["current_balance"].to_numpy(np.float64)
            balance = np.where(np.isnan(given), balance, given)
    zero = ~(balance > 0)
    if zero.any():
        raise DataError(f"loan tape: column 'current_balance' rows {_rows(zero, labels)} are 0; expected > 0 outstanding at the cut-off")
    return balance


def _floating_terms(df: pd.DataFrame, elapsed: np.ndarray) -> dict[str, np.ndarray | None]:
    """The optional floating-rate columns of a tape as book arrays: ``index_floor_bps`` / ``index_cap_bps``
    (basis points, like ``spread_bps``; blank = none) as annual decimals, ``reset_months`` (blank = 1) and
    the first reset month after the cut-off from the origination anniversaries, ``-elapsed mod
    reset_months``. Values on fixed-rate rows are not used (a tape may fill these columns for every loan), though the
    tape contract still checks their range."""
    floating = (df["rate_type"].astype(str).str.lower() == "floating").to_numpy(bool)
    out: dict[str, np.ndarray | None] = {"index_floor": None, "index_cap": None, "reset_months": None,
                                         "reset_phase": None}
    for column, key in (("index_floor_bps", "index_floor"), ("index_cap_bps", "index_cap")):
        if column in df.columns:
            bps = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
            out[key] = np.where(floating, bps / 1e4, np.nan)
    if "reset_months" in df.columns:
        months = pd.to_numeric(df["reset_months"], errors="coerce").to_numpy(np.float64)
        months = np.where(floating & np.isfinite(months), months, 1.0).astype(np.int64)
        out["reset_months"] = months
        out["reset_phase"] = np.mod(-np.asarray(elapsed, np.int64), np.maximum(months, 1))
    return out


def _lgd_assumption(df: pd.DataFrame) -> np.ndarray:
    """``(L,)`` LGD: ``lgd_assumption`` where given, else :data:`DEFAULT_LGD_BY_ASSET_CLASS`."""
    fallback = np.array([DEFAULT_LGD_BY_ASSET_CLASS[a] for a in df["asset_class"]])
    if "lgd_assumption" not in df.columns:
        return fallback
    lgd = df["lgd_assumption"].to_numpy(np.float64)
    return np.where(np.isnan(lgd), fallback, lgd)


def _cohorts(df: pd.DataFrame, cohort: str | np.ndarray | None, asset_class: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(cohort (L,) int64, labels)`` from a column name, an int array or None (see ``from_tape``)."""
    if cohort is None:
        return np.zeros(len(df), np.int64), ("all",)
    if isinstance(cohort, str):
        if cohort not in df.columns:
            raise DataError(f"loan tape: cohort column '{cohort}' is missing")
        if cohort == "asset_class":
            return asset_class.copy(), ASSET_CLASSES
        # a missing value is a cohort of its own ("missing"), not a float NaN among the strings
        values = df[cohort].astype(object).where(df[cohort].notna(), "missing").astype(str).to_numpy()
        labels = tuple(sorted(set(values)))
        return np.searchsorted(np.array(labels), values).astype(np.int64), labels
    coh = np.asarray(cohort, dtype=np.int64)
    return coh, tuple(str(i) for i in range(int(coh.max()) + 1))


def _kept_rows(values: str | np.ndarray | None, live: np.ndarray) -> str | np.ndarray | None:
    """A per-loan array given for the whole tape, cut to the ``live`` rows (names and None pass through)."""
    if values is None or isinstance(values, str):
        return values
    arr = np.asarray(values)
    if arr.shape != live.shape:
        raise DataError(f"loan tape: per-loan array of shape {arr.shape}, the tape has {live.size} loans")
    return arr[live]


def _risk_shifts(df: pd.DataFrame, risk_shift: str | np.ndarray | None) -> np.ndarray:
    """``(L,)`` float64 log-odds shifts from a column name, an array or None (0)."""
    if risk_shift is None:
        return np.zeros(len(df))
    if isinstance(risk_shift, str):
        if risk_shift not in df.columns:
            raise DataError(f"loan tape: risk_shift column '{risk_shift}' is missing")
        return pd.to_numeric(df[risk_shift], errors="coerce").to_numpy(np.float64)
    return np.asarray(risk_shift, dtype=np.float64)


@dataclass(frozen=True)
class LoanBook:
    """Per-loan terms at the cut-off, as arrays of length ``L`` (validated on construction).

    Attributes:
        loan_id: ``(L,)`` str identifiers.
        balance: ``(L,)`` float64 outstanding principal at the cut-off (currency units, incl. the
            principal of any arrears).
        monthly_rate: ``(L,)`` float64 monthly coupon (decimal, annual / 12).
        remaining_term: ``(L,)`` int64 contractual payments still to fall due from month 0 (the cut-off
            month) on; the last one is in month ``remaining_term - 1``.
        amortization: ``(L,)`` int8 code, see :data:`creditsim.loans.schedule.AMORTIZATION_CODES`.
        io_months: ``(L,)`` int64 interest-only payments left (``interest_only`` loans; 0 otherwise).
        lgd: ``(L,)`` float64 LGD assumption (mean of the loan's Beta LGD), decimal.
        cohort: ``(L,)`` int64 index into the cohort axis C of ``(S, C, T, 7, 7)`` matrices.
        cohort_labels: names of the cohorts.
        asset_class: ``(L,)`` int64 index into :data:`creditsim.states.ASSET_CLASSES`.
        risk_shift: ``(L,)`` float64 log-odds shift of adverse moves (0 = the cohort's matrix).
        initial_state: ``(L,)`` int8 state at the cut-off, 0..3.
        original_balance: ``(L,)`` float64.
        lgd_concentration: Beta concentration of realised LGDs (``inf`` = deterministic LGD).
        recovery_lag: months from default to recovery cash.
        floating: ``(L,)`` bool, True for a floating-rate loan (``rate_type == "floating"``): its coupon
            follows the index path of a scenario in the pool engine (:mod:`creditsim.loans.engine`,
            ``index_shift``); None = all fixed.
        index_floor, index_cap: ``(L,)`` float64 floor and cap on a floating loan's index, annual decimals
            (NaN = none); None = no loan has one (:mod:`creditsim.loans.floating`).
        reset_months: ``(L,)`` int64 months between a floating loan's coupon resets (1 = monthly);
            None = monthly.
        reset_phase: ``(L,)`` int64 first reset month after the cut-off, in ``[0, reset_months)``
            (:meth:`from_tape`: from the origination anniversaries); None = 0.
    """

    loan_id: np.ndarray
    balance: np.ndarray
    monthly_rate: np.ndarray
    remaining_term: np.ndarray
    amortization: np.ndarray
    io_months: np.ndarray
    lgd: np.ndarray
    cohort: np.ndarray
    cohort_labels: tuple[str, ...]
    asset_class: np.ndarray
    risk_shift: np.ndarray
    initial_state: np.ndarray
    original_balance: np.ndarray
    lgd_concentration: float = 5.0
    recovery_lag: int = DEFAULT_RECOVERY_LAG
    row_labels: np.ndarray | None = field(default=None, repr=False, compare=False)
    floating: np.ndarray | None = None
    index_floor: np.ndarray | None = None
    index_cap: np.ndarray | None = None
    reset_months: np.ndarray | None = None
    reset_phase: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        balance: object,
        annual_rate: object,
        remaining_term: object,
        amortization: object = "annuity",
        *,
        loan_id: object | None = None,
        original_balance: object | None = None,
        io_months: object | None = None,
        lgd: object = 0.45,
        cohort: object | None = None,
        cohort_labels: tuple[str, ...] | None = None,
        asset_class: object = "corporate",
        risk_shift: object | None = None,
        initial_state: object | None = None,
        lgd_concentration: float = 5.0,
        recovery_lag: int = DEFAULT_RECOVERY_LAG,
        floating: object | None = None,
        index_floor: object | None = None,
        index_cap: object | None = None,
        reset_months: object | None = None,
        reset_phase: object | None = None,
    ) -> "LoanBook":
        """Build a book from per-loan arrays; ``L = len(balance)``, every other array argument is
        ``(L,)`` or a scalar broadcast to all loans.

        Args:
            balance: ``(L,)`` outstanding principal at the cut-off, currency units, > 0 (arrears
                principal included).
            annual_rate: ``(L,)`` annual coupon, decimal (0.05 = 5 %), in [0, 1]; stored monthly (/ 12).
            remaining_term: ``(L,)`` whole number of monthly payments still due from month 0, 1..600.
            amortization: ``(L,)`` type names (``annuity``, ``linear``, ``bullet``, ``interest_only``)
                or codes 0..3 (:data:`creditsim.loans.schedule.AMORTIZATION_CODES`).
            loan_id: ``(L,)`` identifiers (default ``"0".."L-1"``).
            original_balance: ``(L,)`` currency units, >= ``balance`` (default ``balance``).
            io_months: ``(L,)`` whole number of interest-only payments left (``interest_only`` loans).
            lgd: ``(L,)`` mean loss given default, decimal in [0, 1] (default 0.45).
            cohort: ``(L,)`` int index into the cohort axis C of the matrices (default 0: one cohort).
            cohort_labels: C names of the cohorts (default ``"0".."C-1"``).
            asset_class: ``(L,)`` names from :data:`creditsim.states.ASSET_CLASSES` or their indices.
            risk_shift: ``(L,)`` log-odds shift of adverse moves (0 = the cohort's matrix; default 0).
            floating: ``(L,)`` bool, True for floating-rate loans (default all fixed).
            index_floor, index_cap: ``(L,)`` floor / cap on a floating loan's index, annual decimals
                (NaN = none; default none).
            reset_months, reset_phase: ``(L,)`` whole months between coupon resets and the first reset
                month after the cut-off (default monthly resets).
            initial_state: ``(L,)`` state at the cut-off, 0..3 (CURRENT, DPD30, DPD60, DPD90; default 0).
            lgd_concentration: Beta concentration of realised LGDs, > 0 (``inf`` = deterministic).
            recovery_lag: whole months from default to the recovery cash, >= 0.

        Raises:
            DataError: an array of the wrong length or type, or values out of range (naming the
                argument and rows); ConfigError: a bad scalar setting.
        """
        try:
            bal = np.atleast_1d(np.asarray(balance, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise DataError(f"balance: expected numbers (currency units), got {balance!r:.80}") from exc
        if bal.ndim != 1:
            raise DataError(f"balance: expected a 1-D array of loan balances, got shape {bal.shape}")
        n = len(bal)

        vec = partial(_per_loan, n=n)
        rate = vec(annual_rate, np.float64, "annual_rate")
        term_f = vec(remaining_term, np.float64, "remaining_term")
        whole = np.isfinite(term_f) & (term_f == np.round(term_f))
        if not whole.all():
            raise DataError(f"remaining_term: rows {_rows(~whole, None)} are not whole months")

        amort = amortization_codes(_labels_or_codes(amortization, n, "amortization"))
        ac = _asset_class_codes(_labels_or_codes(asset_class, n, "asset_class"))
        coh = np.zeros(n, dtype=np.int64) if cohort is None else vec(cohort, np.int64, "cohort")
        labels = cohort_labels if cohort_labels is not None else tuple(str(i) for i in range(int(coh.max()) + 1 if n else 1))
        return cls(
            loan_id=vec(np.arange(n).astype(str) if loan_id is None else loan_id, object, "loan_id"),
            balance=bal,
            monthly_rate=rate / 12.0,
            remaining_term=term_f.astype(np.int64),
            amortization=amort,
            io_months=np.zeros(n, np.int64) if io_months is None else vec(io_months, np.int64, "io_months"),
            lgd=vec(lgd, np.float64, "lgd"),
            cohort=coh,
            cohort_labels=tuple(labels),
            asset_class=ac,
            risk_shift=np.zeros(n) if risk_shift is None else vec(risk_shift, np.float64, "risk_shift"),
            initial_state=np.zeros(n, np.int8) if initial_state is None else vec(initial_state, np.int64, "initial_state"),
            original_balance=bal.copy() if original_balance is None else vec(original_balance, np.float64, "original_balance"),
            lgd_concentration=_number(lgd_concentration, "lgd_concentration"),
            recovery_lag=recovery_lag,
            floating=None if floating is None else vec(floating, bool, "floating"),
            index_floor=None if index_floor is None else vec(index_floor, np.float64, "index_floor"),
            index_cap=None if index_cap is None else vec(index_cap, np.float64, "index_cap"),
            reset_months=None if reset_months is None else vec(reset_months, np.int64, "reset_months"),
            reset_phase=None if reset_phase is None else vec(reset_phase, np.int64, "reset_phase"),
        )

    @classmethod
    def from_tape(
        cls,
        loans: LoanTape | pd.DataFrame,
        cutoff: object | None = None,
        *,
        cohort: str | np.ndarray | None = "asset_class",
        risk_shift: str | np.ndarray | None = None,
        lgd_concentration: float = 5.0,
        recovery_lag: int = DEFAULT_RECOVERY_LAG,
        io_fraction: float = 0.5,
        drop_matured: bool = False,
    ) -> "LoanBook":
        """Prepare engine terms from a loan tape: a validated :class:`~creditsim.schema.LoanTape` (trusted as
        is) or a DataFrame (validated here with :func:`creditsim.schema.validate_loan_tape`).

        Args:
            loans: loan tape, one row per loan (see spec/loan-tape.md).
            cutoff: cut-off date (anything ``pd.Timestamp`` accepts) or None (project from origination).
            cohort: column whose values index the cohort axis C of the matrices (``"asset_class"``
                uses the :data:`ASSET_CLASSES` order, other columns sorted labels), an ``(L,)`` int
                array, or None (one cohort).
            risk_shift: column name or ``(L,)`` array of log-odds shifts of adverse moves; None = 0.
            drop_matured: drop loans with no payment left at the cut-off instead of raising.

        Raises:
            DataError: naming the column and row labels (zero remaining term, balance above original,
                rates above 100 %, loans originated after the cut-off, ...).
        """
        df = as_loan_tape(loans).frame
        labels = df.index.to_numpy()
        term = df["term_months"].to_numpy(np.int64)
        elapsed, remaining = _elapsed_and_remaining(df, labels, term, cutoff)
        live = _live_rows(df, labels, remaining, drop_matured)
        if live is not None:
            df, labels, term, elapsed, remaining = df[live], labels[live], term[live], elapsed[live], remaining[live]
            # per-loan arrays are given for the whole tape: keep the rows of the loans kept
            cohort, risk_shift = _kept_rows(cohort, live), _kept_rows(risk_shift, live)
        original = df["original_balance"].to_numpy(np.float64)
        rate = df["interest_rate"].to_numpy(np.float64)
        amort = amortization_codes(df["amortization_type"].to_numpy())
        io_total = np.where(amort == AMORTIZATION_CODES["interest_only"], np.floor(io_fraction * term).astype(np.int64), 0)
        io_left = np.maximum(io_total - elapsed, 0)
        balance = _cutoff_balance(df, labels, original, rate, term, amort, io_total, elapsed)
        ac = np.array([ASSET_CLASSES.index(a) for a in df["asset_class"]], dtype=np.int64)
        coh, coh_labels = _cohorts(df, cohort, ac)
        state = df["loan_state"].to_numpy() if "loan_state" in df.columns else np.zeros(len(df), np.int64)
        return cls(
            loan_id=df["loan_id"].astype(str).to_numpy(dtype=object),
            balance=balance,
            monthly_rate=rate / 12.0,
            remaining_term=remaining,
            amortization=amort,
            io_months=io_left,
            lgd=_lgd_assumption(df),
            cohort=coh,
            cohort_labels=tuple(coh_labels),
            asset_class=ac,
            risk_shift=_risk_shifts(df, risk_shift),
            initial_state=state,
            original_balance=original,
            lgd_concentration=_number(lgd_concentration, "lgd_concentration"),
            recovery_lag=recovery_lag,
            row_labels=labels,
            floating=(df["rate_type"].astype(str).str.lower() == "floating").to_numpy(bool),
            **_floating_terms(df, elapsed),
        )

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        n = len(self.balance)
        lab = self.row_labels
        set_ = object.__setattr__
        if n == 0:
            raise DataError("loan book: no loans")
        for name in ("loan_id", "monthly_rate", "remaining_term", "amortization", "io_months", "lgd", "cohort",
                     "asset_class", "risk_shift", "initial_state", "original_balance"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n,):
                raise DataError(f"loan book: '{name}' has shape {arr.shape}, expected ({n},)")
        bal = np.asarray(self.balance, np.float64)
        checks = [
            ("balance", ~np.isfinite(bal) | (bal <= 0), "finite balances > 0"),
            ("balance", bal > np.asarray(self.original_balance) * (1 + 1e-9) + 0.005, "balance <= original_balance"),
            ("interest_rate", ~((np.asarray(self.monthly_rate) >= 0) & (np.asarray(self.monthly_rate) * 12 <= 1.0 + 1e-12)),
             "annual rates in [0, 1] (decimals, <= 100 %)"),
            ("remaining_term", np.asarray(self.remaining_term) < 1, "at least 1 remaining monthly payment"),
            ("remaining_term", np.asarray(self.remaining_term) > 600, "at most 600 remaining months"),
            ("lgd", ~((np.asarray(self.lgd) >= 0) & (np.asarray(self.lgd) <= 1)), "LGD decimals in [0, 1]"),
            ("risk_shift", ~np.isfinite(np.asarray(self.risk_shift, np.float64)), "finite log-odds shifts"),
            ("initial_state", ~np.isin(np.asarray(self.initial_state), [0, 1, 2, 3]),
             "a performing state 0..3 (CURRENT, DPD30, DPD60, DPD90) at the cut-off"),
            ("io_months", np.asarray(self.io_months) < 0, "io_months >= 0"),
            ("cohort", np.asarray(self.cohort) < 0, "cohort index >= 0"),
        ]
        for column, bad, expected in checks:
            if bad.any():
                raise DataError(f"loan book: column '{column}' invalid at rows {_rows(bad, lab)}; expected {expected}")
        if int(np.asarray(self.cohort).max()) >= len(self.cohort_labels):
            raise DataError(f"loan book: cohort index {int(np.asarray(self.cohort).max())} has no label in {self.cohort_labels}")
        if not (self.lgd_concentration > 0):
            raise ConfigError(f"lgd_concentration must be > 0 (inf = deterministic LGD), got {self.lgd_concentration}")
        if isinstance(self.recovery_lag, bool) or not isinstance(self.recovery_lag, (int, np.integer)) or self.recovery_lag < 0:
            raise ConfigError(f"recovery_lag must be an integer number of months >= 0, got {self.recovery_lag!r}")
        set_(self, "balance", bal)
        set_(self, "monthly_rate", np.asarray(self.monthly_rate, np.float64))
        set_(self, "remaining_term", np.asarray(self.remaining_term, np.int64))
        set_(self, "amortization", np.asarray(self.amortization, np.int8))
        set_(self, "io_months", np.asarray(self.io_months, np.int64))
        set_(self, "lgd", np.asarray(self.lgd, np.float64))
        set_(self, "cohort", np.asarray(self.cohort, np.int64))
        set_(self, "asset_class", np.asarray(self.asset_class, np.int64))
        set_(self, "risk_shift", np.asarray(self.risk_shift, np.float64))
        set_(self, "initial_state", np.asarray(self.initial_state, np.int8))
        set_(self, "original_balance", np.asarray(self.original_balance, np.float64))
        set_(self, "recovery_lag", int(self.recovery_lag))
        floating = np.zeros(n, bool) if self.floating is None else np.asarray(self.floating)
        if floating.shape != (n,) or floating.dtype != bool:
            raise DataError(f"loan book: 'floating' must be ({n},) booleans, got {floating.dtype} {floating.shape}")
        set_(self, "floating", floating)
        self._validate_floating_terms(n)

    def _validate_floating_terms(self, n: int) -> None:
        """Shapes and ranges of the optional floor / cap / reset arrays (module :mod:`creditsim.loans.floating`)."""
        lab = self.row_labels
        for name, dtype in (("index_floor", np.float64), ("index_cap", np.float64), ("reset_months", np.int64),
                            ("reset_phase", np.int64)):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.shape != (n,):
                raise DataError(f"loan book: '{name}' has shape {arr.shape}, expected ({n},)")
            object.__setattr__(self, name, arr.astype(dtype))
        floor, cap = self.index_floor, self.index_cap
        months = np.ones(n, np.int64) if self.reset_months is None else self.reset_months
        phase = np.zeros(n, np.int64) if self.reset_phase is None else self.reset_phase
        checks = [
            ("index_floor", None if floor is None else ~(np.isnan(floor) | ((floor >= -0.05) & (floor <= 0.5))),
             "annual decimals in [-0.05, 0.5] or NaN (no floor)"),
            ("index_cap", None if cap is None else ~(np.isnan(cap) | ((cap >= -0.05) & (cap <= 1.0))),
             "annual decimals in [-0.05, 1] or NaN (no cap)"),
            ("index_cap", None if floor is None or cap is None else cap < floor, "a cap at or above the floor"),
            ("reset_months", (months < 1) | (months > 12), "whole months between resets, 1..12"),
            ("reset_phase", (phase < 0) | (phase >= months), "a first reset month in [0, reset_months)"),
        ]
        for column, bad, expected in checks:
            if bad is not None and bad.any():
                raise DataError(f"loan book: column '{column}' invalid at rows {_rows(bad, lab)}; expected {expected}")

    def floating_classes(self) -> FloatingClasses | None:
        """The book's floating loans grouped by floor, cap and reset terms
        (:func:`creditsim.loans.floating.floating_classes`); None when no floating loan pays a coupon.
        Computed once per book: every scenario chunk (and, in the trajectory engine, every scenario) asks."""
        return self._floating_classes

    @cached_property
    def _floating_classes(self) -> FloatingClasses | None:
        return floating_classes(self.floating, self.monthly_rate, self.index_floor, self.index_cap,
                                self.reset_months, self.reset_phase)

    # ------------------------------------------------------------------ helpers
    @property
    def n_loans(self) -> int:
        """Number of loans L."""
        return len(self.balance)

    @property
    def initial_balance(self) -> float:
        """Pool balance at the cut-off (before month 0), currency units."""
        return float(self.balance.sum())

    def subset(self, index: object) -> "LoanBook":
        """A book of the selected loans (positions or boolean mask), e.g. for loan-level output."""
        idx = np.arange(self.n_loans)[index]
        arrays = {
            name: getattr(self, name)[idx]
            for name in ("loan_id", "balance", "monthly_rate", "remaining_term", "amortization", "io_months", "lgd",
                         "cohort", "asset_class", "risk_shift", "initial_state", "original_balance", "floating")
        }
        for name in ("index_floor", "index_cap", "reset_months", "reset_phase"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)[idx]
        labels = None if self.row_labels is None else self.row_labels[idx]
        return replace(self, **arrays, row_labels=labels)

    def group_codes(self, group_by: object) -> tuple[np.ndarray, tuple[str, ...]]:
        """``(codes (L,) int64, labels)`` for pool aggregation by group.

        ``group_by``: ``"asset_class"``, ``"cohort"``, ``"amortization"``, or an ``(L,)`` array of labels.
        """
        if isinstance(group_by, str):
            if group_by == "asset_class":
                return self.asset_class.astype(np.int64), ASSET_CLASSES
            if group_by == "cohort":
                return self.cohort.astype(np.int64), self.cohort_labels
            if group_by == "amortization":
                return self.amortization.astype(np.int64), AMORTIZATION_TYPES
            raise ConfigError(f"group_by must be 'asset_class', 'cohort', 'amortization' or an array, got {group_by!r}")
        arr = np.asarray(group_by)
        if arr.shape != (self.n_loans,):
            raise ConfigError(f"group_by array must have one label per loan ({self.n_loans}), got shape {arr.shape}")
        labels, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64), tuple(str(v) for v in labels)
