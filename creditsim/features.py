"""The loan-feature contract: 24 standardised numeric features per loan, shared by every model.

Lives on the ground floor because the transition transformer, the trajectory model, the simulation and
the evaluation all read the same features; the constants in :data:`LOAN_FEATURES` are the contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditsim.schema import AMORTIZATION_TYPES, RATINGS, LoanTape, as_loan_tape, month_start
from creditsim.states import ASSET_CLASSES

__all__ = ["LOAN_FEATURES", "loan_features"]


#: The 24 numeric loan features of :func:`loan_features`: ``(name, centre, scale)``. Features are
#: standardised with these fixed, documented constants (typical values across the four asset
#: classes), not with statistics of the tape at hand, so a model trained on one tape sees the same
#: scale on another. Missing optional values are imputed at the centre (feature value 0).
LOAN_FEATURES: tuple[tuple[str, float, float], ...] = (
    ("log_original_balance", 11.5, 2.5),  # log of currency units
    ("log_current_balance", 11.0, 2.5),  # log1p of the cut-off balance (original if absent)
    ("balance_factor", 0.7, 0.3),  # current / original balance
    ("interest_rate", 0.07, 0.035),  # annual decimal
    ("spread", 0.02, 0.02),  # floating spread, decimal (0 for fixed)
    ("term_years", 5.0, 5.0),
    ("seasoning_years", 1.5, 1.5),  # origination -> as_of
    ("remaining_term_years", 4.0, 5.0),
    ("ltv", 0.7, 0.15),
    ("dti_dscr", 1.0, 0.6),  # DTI for consumers, DSCR otherwise (the asset-class one-hots tell apart)
    ("internal_score", 50.0, 25.0),
    ("external_score", 650.0, 100.0),
    ("lgd", 0.45, 0.2),
    ("collateral_coverage", 1.0, 0.8),  # collateral value / current balance, capped at 3
    ("is_floating", 0.3, 0.46),
    ("is_corporate", 0.25, 0.43),
    ("is_consumer", 0.25, 0.43),
    ("is_real_estate", 0.25, 0.43),
    ("is_receivables", 0.25, 0.43),
    ("is_annuity", 0.25, 0.43),
    ("is_linear", 0.25, 0.43),
    ("is_bullet", 0.25, 0.43),
    ("is_interest_only", 0.25, 0.43),
    ("rating_ordinal", 4.0, 1.5),  # AAA = 0 .. CCC = 6
)


def loan_features(loans_df: pd.DataFrame | LoanTape, as_of: object | None = None) -> pd.DataFrame:
    """The 24 standardised numeric features of each loan, for the models.

    Args:
        loans_df: a loan tape: a validated :class:`~creditsim.schema.LoanTape` (trusted as is) or a
            DataFrame (validated here with :func:`creditsim.schema.validate_loan_tape`).
        as_of: date for seasoning and remaining term; default the latest ``origination_date`` of the
            tape (for synthetic tapes that is at most the cut-off).

    Returns:
        ``(n_loans, 24)`` float32 DataFrame, same index as ``loans_df``, columns
        :data:`LOAN_FEATURES` names, each ``(x - centre) / scale``; finite everywhere.
    """
    tape = as_loan_tape(loans_df)
    df = tape.frame
    n = len(df)

    def col(name: str) -> np.ndarray:
        if name in df.columns:
            return pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64)
        return np.full(n, np.nan)

    orig = df["original_balance"].to_numpy(np.float64)
    cur = col("current_balance")
    cur = np.where(np.isfinite(cur), cur, orig)
    ref = df["origination_date"].max() if as_of is None else month_start(as_of, "as_of")
    odate = df["origination_date"].dt.to_period("M")
    ref_p = pd.Timestamp(ref).to_period("M")
    seasoning = (ref_p.year - odate.dt.year) * 12 + (ref_p.month - odate.dt.month)
    seasoning = np.maximum(seasoning.to_numpy(np.float64), 0.0)
    term = df["term_months"].to_numpy(np.float64)
    floating = (df["rate_type"] == "floating").to_numpy()
    spread = np.where(floating, np.nan_to_num(col("spread_bps"), nan=0.0) / 1e4, 0.0)
    coll = col("collateral_value")
    coverage = np.where(np.isfinite(coll), np.minimum(coll / np.maximum(cur, 1.0), 3.0), 0.0)
    rating_map = {g: float(i) for i, g in enumerate(RATINGS)}
    rating = (
        df["rating"].map(rating_map).to_numpy(np.float64) if "rating" in df.columns else np.full(n, np.nan)
    )
    ac = df["asset_class"].to_numpy()
    am = df["amortization_type"].to_numpy()
    raw = {
        "log_original_balance": np.log(orig),
        "log_current_balance": np.log1p(cur),
        "balance_factor": cur / orig,
        "interest_rate": df["interest_rate"].to_numpy(np.float64),
        "spread": spread,
        "term_years": term / 12.0,
        "seasoning_years": seasoning / 12.0,
        "remaining_term_years": np.maximum(term - seasoning, 0.0) / 12.0,
        "ltv": col("ltv_origination"),
        "dti_dscr": col("dti_dscr_origination"),
        "internal_score": col("internal_score"),
        "external_score": col("external_score"),
        "lgd": col("lgd_assumption"),
        "collateral_coverage": coverage,
        "is_floating": floating.astype(np.float64),
        **{f"is_{c}": (ac == c).astype(np.float64) for c in ASSET_CLASSES},
        **{f"is_{a}": (am == a).astype(np.float64) for a in AMORTIZATION_TYPES},
        "rating_ordinal": rating,
    }
    out = {}
    for name, centre, scale in LOAN_FEATURES:
        x = raw[name]
        out[name] = np.where(np.isfinite(x), (x - centre) / scale, 0.0).astype(np.float32)
    return pd.DataFrame(out, index=df.index)  # the validated copy keeps the tape's index
