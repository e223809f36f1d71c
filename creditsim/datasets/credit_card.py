"""The UCI "default of credit card clients" data as a loan tape and a loan-month panel in our states.

30,000 credit-card accounts of a bank in Taiwan, observed monthly April .. September 2005, with a flag
for a payment default in October 2005. See :func:`load_credit_card_panel`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from creditsim.datasets.files import data_path
from creditsim.errors import DataError
from creditsim.schema import validate_loan_tape, validate_panel
from creditsim.states import LoanState

__all__ = ["load_credit_card_panel", "load_credit_card_tape", "CREDIT_CARD_MONTHS"]

#: observed reporting months (month starts), oldest first; a default row adds 2005-10
CREDIT_CARD_MONTHS: pd.DatetimeIndex = pd.date_range(
    "2005-04-01", "2005-09-01", freq="MS", name="reporting_month"
)
_DEFAULT_MONTH = pd.Timestamp("2005-10-01")
# UCI columns per observed month, oldest (April) first: X11..X6 repayment status, X17..X12 bill statement,
# X23..X18 amount paid
_STATUS_COLS = [f"X{i}" for i in range(11, 5, -1)]
_BILL_COLS = [f"X{i}" for i in range(17, 11, -1)]
_PAID_COLS = [f"X{i}" for i in range(23, 17, -1)]
_EXPECTED = ["ID", *[f"X{i}" for i in range(1, 24)], "Y"]

#: assumed annual revolving rate (the data carry none): the Civil Code (art. 205) 20 % ceiling that
#: Taiwanese card issuers charged on revolving balances in 2005
ASSUMED_INTEREST_RATE = 0.20
#: nominal term of a card line in the tape (card lines have no contractual maturity)
NOMINAL_TERM_MONTHS = 12

_CITATION = (
    "Yeh, I-C. & Lien, C-H. (2009), Expert Systems with Applications 36(2):2473-2480; UCI Machine Learning "
    "Repository, 'Default of Credit Card Clients' (id 350), CC BY 4.0."
)


@lru_cache(maxsize=1)
def _raw() -> pd.DataFrame:
    raw = pd.read_csv(data_path("credit_card", "UCI_Credit_Card.csv.gz"))
    if list(raw.columns) != _EXPECTED:
        raise DataError(f"UCI_Credit_Card.csv: expected columns {_EXPECTED}, got {list(raw.columns)}")
    if raw.isna().any().any() or not raw["ID"].is_unique:
        raise DataError("UCI_Credit_Card.csv: missing values or duplicate IDs in the bundled file")
    return raw


def _loan_ids(raw: pd.DataFrame) -> np.ndarray:
    return np.array([f"UCI-{i:05d}" for i in raw["ID"].to_numpy()], dtype=object)


def capped_delinquency_path(buckets: np.ndarray) -> np.ndarray:
    """Cap a ``(n_loans, n_months)`` path of delinquency buckets (0..3) to one bucket of advance a month.

    ``capped[:, 0] = buckets[:, 0]`` and ``capped[:, t] = min(buckets[:, t], capped[:, t-1] + 1)``: a
    loan can fall behind by at most one payment per month, so a reported jump of several buckets is
    taken as one step a month; cures (moves down) are kept as reported.
    """
    capped = np.array(buckets, dtype=np.int8, copy=True)
    for t in range(1, capped.shape[1]):
        np.minimum(capped[:, t], capped[:, t - 1] + 1, out=capped[:, t])
    return capped


@lru_cache(maxsize=1)
def _panel() -> pd.DataFrame:
    raw = _raw()
    n_loans, n_months = len(raw), len(CREDIT_CARD_MONTHS)
    status = raw[_STATUS_COLS].to_numpy(np.int64)  # (n_loans, 6) UCI codes -2..8
    reported = np.clip(status, 0, int(LoanState.DPD90))  # <= 0 current, 1 -> DPD30, 2 -> DPD60, >= 3 DPD90
    state = capped_delinquency_path(reported)
    bill = raw[_BILL_COLS].to_numpy(np.float64)
    paid = raw[_PAID_COLS].to_numpy(np.float64)
    ids = _loan_ids(raw)
    defaulted = raw["Y"].to_numpy() == 1
    # Y = 0: followed through October without a default, October's state not reported -> the last
    # observed row (September) is right-censored (the Markov fit counts it as a default-free month)
    censored = np.zeros((n_loans, n_months), dtype=bool)
    censored[~defaulted, -1] = True

    observed = pd.DataFrame(
        {
            "loan_id": np.repeat(ids, n_months),
            "reporting_month": np.tile(CREDIT_CARD_MONTHS.to_numpy(), n_loans),
            "current_balance": np.maximum(bill, 0.0).ravel(),
            "actual_payment": paid.ravel(),
            "days_past_due": (30 * state.astype(np.int64)).ravel(),
            "loan_state": state.ravel(),
            "pay_status": status.ravel(),
            "bill_amount": bill.ravel(),
            "reported_state": reported.astype(np.int8).ravel(),
            "censored": censored.ravel(),
        }
    )
    last_state = state[defaulted, -1].astype(np.int64)
    default_rows = pd.DataFrame(
        {
            "loan_id": ids[defaulted],
            "reporting_month": np.full(int(defaulted.sum()), _DEFAULT_MONTH.to_datetime64()),
            "current_balance": np.maximum(bill[defaulted, -1], 0.0),
            "actual_payment": 0.0,
            "days_past_due": 30 * (last_state + 1),
            "loan_state": np.int8(LoanState.DEFAULT),
            "pay_status": pd.NA,
            "bill_amount": np.nan,
            "reported_state": np.int8(LoanState.DEFAULT),
            "censored": False,
        }
    )
    panel = pd.concat([observed, default_rows], ignore_index=True)
    panel["reporting_month"] = pd.to_datetime(panel["reporting_month"])
    panel = panel.sort_values(["loan_id", "reporting_month"], kind="stable", ignore_index=True)
    panel = panel.astype(
        {
            "loan_id": "str",
            "current_balance": np.float64,
            "actual_payment": np.float64,
            "days_past_due": np.int64,
            "loan_state": np.int8,
            "pay_status": "Int8",
            "bill_amount": np.float64,
            "reported_state": np.int8,
            "censored": bool,
        }
    )
    validate_panel(panel)  # the contract must hold for the shipped panel (allowed moves included)
    return panel


def load_credit_card_panel() -> pd.DataFrame:
    """UCI credit-card accounts as a loan-month panel in :class:`~creditsim.states.LoanState` states.

    Returns:
        DataFrame, 186,636 rows x 10 columns = 30,000 accounts x 6 observed months (2005-04 .. 2005-09) + one
        ``DEFAULT`` row in 2005-10 for each of the 6,636 accounts flagged as defaulting, sorted by
        ``loan_id`` and ``reporting_month``, ``RangeIndex`` (loans x months, so the month is a column,
        the panel contract of :func:`creditsim.schema.validate_panel`, which it passes). Columns:

        - ``loan_id`` (str, ``"UCI-00001"`` .. ``"UCI-30000"``, the UCI ``ID``);
        - ``reporting_month`` (datetime64, month start);
        - ``current_balance`` (float64, NT$): the month's bill statement, floored at 0 (a negative bill
          is a credit balance owed to the holder, not debt); the DEFAULT row repeats September's;
        - ``actual_payment`` (float64, NT$): amount paid in the month (UCI ``PAY_AMT``); 0 in the DEFAULT
          row (the default flag is a missed payment);
        - ``days_past_due`` (int64): ``30 * loan_state`` for live months, consistent with the state; the
          DEFAULT row is the previous month's + 30;
        - ``loan_state`` (int8): 0 CURRENT, 1 DPD30, 2 DPD60, 3 DPD90, 4 DEFAULT (see below);
        - ``pay_status`` (Int8, nullable): the raw UCI repayment code (-2 no consumption, -1 paid in full,
          0 revolving, 1..8 months of delay, 9 = 9+); <NA> in the DEFAULT row;
        - ``bill_amount`` (float64, NT$): the raw bill (may be negative); NaN in the DEFAULT row;
        - ``reported_state`` (int8): the state the raw code maps to before the one-bucket cap;
        - ``censored`` (bool): True on the last row (2005-09) of the 23,364 accounts with ``Y = 0``:
          followed through 2005-10 without a default, but their October state is not reported
          (right-censored after one default-free month). False elsewhere, including every DEFAULT row.
          :meth:`creditsim.transitions.markov.MarkovTransitionModel.fit` reads it: without it only the
          defaulters would have an observed move out of September, and every such move is a default
          (fitted that way the 12-month PD from CURRENT was 40.6 %, with it 35.1 %).

        The only NaN / <NA> are the two raw columns in DEFAULT rows. ``attrs``: ``n_capped`` (rows
        whose state the cap lowered), ``source``.

    State mapping: ``pay_status <= 0`` -> CURRENT, ``1`` -> DPD30, ``2`` -> DPD60, ``>= 3`` -> DPD90;
    ``Y = 1`` ("default payment next month") adds a final 2005-10 row in DEFAULT. Accounts with
    ``Y = 0`` end in 2005-09 with ``censored`` True (October's state is not observed, only that it is not
DEFAULT). No PREPAID / MATURED exist in the data, so a chain fitted on it has DEFAULT as its only exit:
its infinite-horizon absorption into DEFAULT is 1 from every live state by construction; quote PDs
over a finite horizon such as the tape's nominal 12-month term.

    Reconciling jumps: the raw codes jump several buckets in a month (6,209 month-to-month moves of +2,
    mostly 0 -> 2, because code 1 is almost never used before September, a known quirk of the data),
    while our allowed-transition mask advances delinquency one bucket a month. A payment can fall behind
    by at most one month per month, so the reported path is **capped**: ``state_t = min(reported_t,
    state_{t-1} + 1)`` (:func:`capped_delinquency_path`); cures are kept as reported. The cap delays
    delinquency, it never invents it; ``reported_state`` keeps the uncapped value for anyone who wants
    the raw roll rates. Collapse DPD30/DPD60 before estimating Apr-Aug roll rates (PROVENANCE note).

    Source and licence: UCI Machine Learning Repository, "Default of Credit Card Clients" (id 350),
    donated by I-Cheng Yeh; Yeh, I-C. & Lien, C-H. (2009), "The comparisons of data mining techniques
    for the predictive accuracy of probability of default of credit card clients", Expert Systems with
    Applications 36(2):2473-2480. Licence **CC BY 4.0** (attribution required). Copied from GitHub
    ``fju155447/uci`` ``UCI_Credit_Card.csv`` (commit 84670e7).
    """
    panel = _panel().copy()
    panel.attrs = {
        "n_capped": int((panel["loan_state"] != panel["reported_state"]).sum()),
        "source": _CITATION,
    }
    return panel


@lru_cache(maxsize=1)
def _tape() -> pd.DataFrame:
    raw = _raw()
    n = len(raw)
    origination = pd.Timestamp("2005-04-01")
    maturity = origination + pd.DateOffset(months=NOMINAL_TERM_MONTHS)
    tape = pd.DataFrame(
        {
            "loan_id": _loan_ids(raw),
            "origination_date": np.full(n, origination.to_datetime64()),
            "maturity_date": np.full(n, maturity.to_datetime64()),
            "original_balance": raw["X1"].to_numpy(np.float64),
            "interest_rate": ASSUMED_INTEREST_RATE,
            "rate_type": "fixed",
            "payment_frequency": "monthly",
            "amortization_type": "interest_only",
            "asset_class": "consumer",
            "term_months": NOMINAL_TERM_MONTHS,
            "geography_country": "TW",
            "borrower_type": "consumer",
            "originator_id": "UCI-TW-BANK",
            "vintage": f"{origination:%Y-%m}",
            "collateral_type": "unsecured",
            "credit_limit": raw["X1"].to_numpy(np.float64),
            "sex": raw["X2"].to_numpy(np.int8),
            "education": raw["X3"].to_numpy(np.int8),
            "marriage": raw["X4"].to_numpy(np.int8),
            "age": raw["X5"].to_numpy(np.int16),
            "default_next_month": raw["Y"].to_numpy(np.int8),
        }
    )
    tape["origination_date"] = pd.to_datetime(tape["origination_date"])
    tape["maturity_date"] = pd.to_datetime(tape["maturity_date"])
    tape["term_months"] = tape["term_months"].astype(np.int64)
    tape = tape.astype({"loan_id": "str"})
    validate_loan_tape(tape)
    return tape


def load_credit_card_tape() -> pd.DataFrame:
    """Static loan tape (30,000 rows, one per account) matching :func:`load_credit_card_panel`.

    Passes :func:`creditsim.schema.validate_loan_tape`. Required columns are filled as follows (the
    data are a card portfolio snapshot, so several contract fields are documented conventions):

    - ``loan_id``: ``"UCI-00001"`` .. as in the panel; ``original_balance``: the credit limit
      (``LIMIT_BAL``, NT$), the committed amount of a revolving line (bills exceed it for 8,274 of the
      180,000 account-months: over-limit spending);
    - ``origination_date`` 2005-04-01 and ``vintage`` ``"2005-04"``: the start of observation (account
      opening dates are not in the data); ``term_months`` 12 and ``maturity_date`` 2006-04-01: a nominal
      one-year card renewal, so no MATURED state falls inside the window;
    - ``interest_rate`` 0.20 (**assumed**: the 20 % Civil-Code ceiling Taiwanese issuers charged on
      revolving balances in 2005; the data carry no rate), ``rate_type`` fixed, ``payment_frequency``
      monthly, ``amortization_type`` interest_only (revolving, minimum payments), ``asset_class`` and
      ``borrower_type`` consumer, ``collateral_type`` unsecured, ``geography_country`` TW,
      ``originator_id`` ``"UCI-TW-BANK"``.

    Extra columns, raw UCI attributes: ``credit_limit`` (float64, NT$), ``sex`` (1 male, 2 female),
    ``education`` (1 graduate school, 2 university, 3 high school, 4 others, 0/5/6 undocumented),
    ``marriage`` (1 married, 2 single, 3 others, 0 undocumented), ``age`` (years), ``default_next_month``
    (int8, the UCI target ``Y``: default payment in October 2005; mean 0.2212). No NaN.

    Source and licence: as :func:`load_credit_card_panel` — UCI Machine Learning Repository (id 350),
    Yeh & Lien (2009), **CC BY 4.0**.
    """
    tape = _tape().copy()
    tape.attrs = {"source": _CITATION}
    return tape
