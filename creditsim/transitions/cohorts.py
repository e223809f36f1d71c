"""Cohorts of loans: keys, cohort features and monthly transition counts.

A cohort groups loans that are expected to roll alike: by default asset class x vintage year x risk
bucket (see :func:`risk_bucket`). The transition models learn one ``(7, 7)`` matrix per cohort and
month from the counts of :func:`transition_counts`, conditioned on the 12 numbers of
:func:`cohort_features`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.schema import STATE_PANEL_COLUMNS, LoanTape, as_loan_tape, id_strings, parse_dates
from creditsim.states import ASSET_CLASSES, N_STATES

__all__ = [
    "DEFAULT_COHORT_KEY",
    "RISK_BUCKETS",
    "BASE_COHORT_FEATURES",
    "COHORT_FEATURES",
    "risk_bucket",
    "cohort_keys",
    "cohort_features",
    "transition_counts",
    "panel_loan_positions",
    "check_rows_from_origination",
    "panel_month_numbers",
    "panel_states",
]

#: name of the default cohort definition: asset class x vintage year x risk bucket
DEFAULT_COHORT_KEY = "asset_class_vintage_risk"
RISK_BUCKETS: tuple[str, ...] = ("low", "mid", "high")

#: The 16 cohort features of :func:`cohort_features`, in column order. Weighted averages ("wa") use
#: the cut-off balance (``current_balance``, else ``original_balance``) as weights and skip missing
#: values; a feature missing for a whole cohort is 0. The first 12 are the original set
#: (:data:`BASE_COHORT_FEATURES`, what a 12-feature TransitionTransformer reads); the last four are the
#: balance shares of each asset class (:data:`~creditsim.states.ASSET_CLASSES` order). Why the shares
#: (issue 13): the calibrated macro link differs by asset class (real estate barely moves with
#: unemployment, corporate loans move with spreads), and without them the transformer had to guess the
#: class from LTV, DSCR and term -- it learnt real-estate PD falling as unemployment rose.
COHORT_FEATURES: tuple[str, ...] = (
    "log_n_loans",  # log of the number of loans
    "log_balance",  # log of the summed cut-off balance (currency units)
    "wa_interest_rate",  # annual decimal
    "wa_term_years",  # contractual term
    "wa_remaining_term_years",  # term minus seasoning at as_of, floored at 0
    "wa_seasoning_years",  # months from origination to as_of / 12
    "wa_ltv",  # loan-to-value at origination, decimal
    "wa_dti_dscr",  # DTI (consumer) or DSCR (others) at origination
    "wa_internal_score",  # internal score / 100, in [0, 1]
    "wa_lgd",  # lgd_assumption, decimal
    "share_floating",  # balance share of floating-rate loans
    "risk_level",  # risk bucket as a number: low 0, mid 0.5, high 1
    "share_corporate",  # balance share of each asset class, in [0, 1], summing to 1
    "share_consumer",
    "share_real_estate",
    "share_receivables",
)
#: the first 12 :data:`COHORT_FEATURES` (no asset-class shares): the spec's ``n_cohort_features = 12``
BASE_COHORT_FEATURES: tuple[str, ...] = COHORT_FEATURES[:12]

_RATING_BUCKET = {"AAA": "low", "AA": "low", "A": "low", "BBB": "low", "BB": "mid", "B": "high", "CCC": "high"}


def risk_bucket(loans_df: pd.DataFrame) -> pd.Series:
    """Risk bucket (``"low"``, ``"mid"``, ``"high"``) of each loan.

    The first available measure decides, in this order (a documented, deliberately coarse rule so
    that cohorts stay large enough to estimate monthly matrices):

    1. ``rating`` (corporate): AAA..BBB (investment grade) low, BB mid, B and CCC high;
    2. ``external_score`` (bureau, 300-850): >= 720 low, 640-719 mid, < 640 high (the usual prime /
       near-prime / subprime cut-offs);
    3. ``internal_score`` (0-100): >= 60 low, 30-59.9 mid, < 30 high;
    4. ``ltv_origination``: <= 0.65 low, <= 0.80 mid, above high;
    5. otherwise ``"mid"``.
    """
    n = len(loans_df)
    bucket = pd.Series(np.full(n, None, dtype=object), index=loans_df.index)

    def fill(values: pd.Series) -> None:
        empty = bucket.isna() & values.notna()
        bucket[empty] = values[empty]

    if "rating" in loans_df.columns:
        fill(loans_df["rating"].astype("object").where(loans_df["rating"].notna()).map(_RATING_BUCKET))
    for col, (hi, mid), larger_is_safer in (
        ("external_score", (720.0, 640.0), True),
        ("internal_score", (60.0, 30.0), True),
        ("ltv_origination", (0.80, 0.65), False),
    ):
        if col not in loans_df.columns:
            continue
        x = pd.to_numeric(loans_df[col], errors="coerce")
        if larger_is_safer:
            values = np.where(x >= hi, "low", np.where(x >= mid, "mid", "high"))
        else:
            values = np.where(x <= mid, "low", np.where(x <= hi, "mid", "high"))
        fill(pd.Series(values, index=loans_df.index, dtype=object).where(x.notna()))
    return bucket.fillna("mid").astype(object)


def cohort_keys(
    loans_df: pd.DataFrame,
    cohort_key: str | Sequence[str] | Callable[[pd.DataFrame], pd.Series] = DEFAULT_COHORT_KEY,
) -> pd.Series:
    """Cohort label of each loan (a string, same index as ``loans_df``).

    Args:
        loans_df: loan tape.
        cohort_key: ``"asset_class_vintage_risk"`` (default: ``"<asset_class>|<vintage year>|<bucket>"``,
            e.g. ``"consumer|2023|high"``), a column name or a list of column names (joined with
            ``"|"``), or a function of the tape returning one label per loan.
    """
    if callable(cohort_key):
        keys = pd.Series(cohort_key(loans_df), index=loans_df.index)
    elif isinstance(cohort_key, str) and cohort_key == DEFAULT_COHORT_KEY:
        for col in ("asset_class", "vintage"):
            if col not in loans_df.columns:
                raise DataError(f"loan tape: missing required column(s) ['{col}'] for cohort keys")
        year = loans_df["vintage"].astype(str).str.slice(0, 4)
        keys = loans_df["asset_class"].astype(str) + "|" + year + "|" + risk_bucket(loans_df)
    else:
        cols = [cohort_key] if isinstance(cohort_key, str) else list(cohort_key)
        missing = [c for c in cols if c not in loans_df.columns]
        if not cols or missing:
            raise ConfigError(f"cohort_key names column(s) {missing or cols} that the loan tape lacks")
        keys = loans_df[cols[0]].astype(str)
        for c in cols[1:]:
            keys = keys + "|" + loans_df[c].astype(str)
    bad = keys.index[keys.isna()]
    if len(bad):
        raise DataError(f"cohort keys: {len(bad)} loan(s) without a cohort {format_labels(list(bad))}")
    return keys.astype(str)


def _seasoning_months(loans_df: pd.DataFrame, as_of: object | None) -> np.ndarray:
    # strict parse: a DD/MM text date must not be guessed as MM/DD (see schema.parse_dates)
    odate = parse_dates(loans_df["origination_date"], "origination_date", "loan tape")
    ref = odate.max() if as_of is None else pd.Timestamp(as_of)
    months = (ref.year - odate.dt.year) * 12 + (ref.month - odate.dt.month)
    return np.maximum(months.to_numpy(np.float64), 0.0)


def cohort_features(
    loans_df: LoanTape | pd.DataFrame,
    cohort_key: str | Sequence[str] | Callable[[pd.DataFrame], pd.Series] = DEFAULT_COHORT_KEY,
    as_of: object | None = None,
) -> pd.DataFrame:
    """The 16 :data:`COHORT_FEATURES` of every cohort.

    Args:
        loans_df: loan tape: a validated :class:`~creditsim.schema.LoanTape` (trusted as is) or a
            DataFrame (validated here with :func:`creditsim.schema.validate_loan_tape`).
        cohort_key: see :func:`cohort_keys`.
        as_of: date for seasoning; default the latest ``origination_date``.

    Returns:
        ``(C, 16)`` float64 DataFrame indexed by the sorted cohort labels (index name ``cohort``), in
        natural units of order one (see :data:`COHORT_FEATURES`), finite everywhere.
    """
    df = as_loan_tape(loans_df).frame
    keys = cohort_keys(df, cohort_key)
    codes, labels = pd.factorize(keys, sort=True)
    n_cohorts = len(labels)
    orig = df["original_balance"].to_numpy(np.float64)
    weight = pd.to_numeric(df["current_balance"], errors="coerce").to_numpy(np.float64) \
        if "current_balance" in df.columns else orig.copy()
    weight = np.where(np.isfinite(weight), weight, orig)
    # a fully amortised loan still counts a little, so every cohort has positive weight
    weight = np.maximum(weight, 1e-6 * orig)

    def wavg(values: np.ndarray) -> np.ndarray:
        ok = np.isfinite(values)
        num = np.bincount(codes, weights=np.where(ok, values * weight, 0.0), minlength=n_cohorts)
        den = np.bincount(codes, weights=np.where(ok, weight, 0.0), minlength=n_cohorts)
        return np.divide(num, den, out=np.zeros(n_cohorts), where=den > 0)

    def opt(col: str) -> np.ndarray:
        if col not in df.columns:
            return np.full(len(df), np.nan)
        return pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)

    seasoning = _seasoning_months(df, as_of)
    term = df["term_months"].to_numpy(np.float64)
    level = risk_bucket(df).map({"low": 0.0, "mid": 0.5, "high": 1.0}).to_numpy(np.float64)
    feats = {
        "log_n_loans": np.log(np.bincount(codes, minlength=n_cohorts).astype(np.float64)),
        "log_balance": np.log(np.bincount(codes, weights=weight, minlength=n_cohorts)),
        "wa_interest_rate": wavg(df["interest_rate"].to_numpy(np.float64)),
        "wa_term_years": wavg(term / 12.0),
        "wa_remaining_term_years": wavg(np.maximum(term - seasoning, 0.0) / 12.0),
        "wa_seasoning_years": wavg(seasoning / 12.0),
        "wa_ltv": wavg(opt("ltv_origination")),
        "wa_dti_dscr": wavg(opt("dti_dscr_origination")),
        "wa_internal_score": wavg(opt("internal_score") / 100.0),
        "wa_lgd": wavg(opt("lgd_assumption")),
        "share_floating": wavg((df["rate_type"] == "floating").to_numpy(np.float64)),
        "risk_level": wavg(level),
    }
    asset = df["asset_class"].to_numpy()
    for cls in ASSET_CLASSES:
        feats[f"share_{cls}"] = wavg((asset == cls).astype(np.float64))
    out = pd.DataFrame(feats, index=pd.Index(labels, name="cohort"))
    return out[list(COHORT_FEATURES)]


def transition_counts(
    panel_df: pd.DataFrame,
    loans_df: pd.DataFrame,
    cohort_key: str | Sequence[str] | Callable[[pd.DataFrame], pd.Series] = DEFAULT_COHORT_KEY,
    step: int = 1,
) -> tuple[np.ndarray, pd.Index, pd.DatetimeIndex]:
    """Monthly state-to-state move counts of each cohort.

    A move is a pair of consecutive rows of the same loan ``step`` calendar months apart (1: consecutive
    months; 3: a quarterly panel); it is counted in the month of its destination row. Pairs across a gap
    in a loan's reporting are not moves and are skipped. The panel need not be sorted (it is sorted here
    when it is not).

    Args:
        panel_df: loan x month panel with ``loan_id``, ``reporting_month`` and ``loan_state`` (0..6).
        loans_df: the loan tape of those loans (for the cohort keys).
        cohort_key: see :func:`cohort_keys`.
        step: months between the two rows of a move.

    Returns:
        ``(counts, cohorts, months)``: ``counts`` ``(C, T, 7, 7)`` int64 with
        ``counts[c, t, i, j]`` = number of loans of cohort ``c`` in state ``i`` in month ``months[t] - step``
        and in state ``j`` in month ``months[t]``; ``cohorts`` the sorted cohort labels (length C);
        ``months`` the month-start DatetimeIndex of destination months, from the second month of the
        panel to its last (length T = number of calendar months spanned - 1).

    Raises:
        DataError: missing columns, a loan of the panel absent from the tape, states outside 0..6.
    """
    for name, frame, cols in (
        ("panel", panel_df, STATE_PANEL_COLUMNS),
        ("loan tape", loans_df, ("loan_id",)),
    ):
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{name}: expected a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataError(f"{name}: missing required column(s) {missing}")
    keys = cohort_keys(loans_df, cohort_key)
    cohort_code, cohorts = pd.factorize(keys, sort=True)
    loan_pos = panel_loan_positions(panel_df, loans_df)
    state = panel_states(panel_df)
    month = panel_month_numbers(panel_df)
    m0 = int(month.min()) if len(month) else 0
    span = int(month.max()) - m0 + 1 if len(month) else 1
    n_months = span - 1
    month_index = pd.date_range(
        pd.Timestamp(np.datetime64(m0, "M")) + pd.offsets.MonthBegin(1), periods=n_months, freq="MS",
        name="reporting_month",
    )
    n_cohorts = len(cohorts)
    if n_months <= 0:
        return np.zeros((n_cohorts, 0, N_STATES, N_STATES), np.int64), pd.Index(cohorts, name="cohort"), month_index

    order_key = loan_pos.astype(np.int64) * span + (month - m0)
    if np.any(order_key[1:] < order_key[:-1]):
        order = np.argsort(order_key, kind="stable")
        order_key, state, loan_pos = order_key[order], state[order], loan_pos[order]
    apart = np.diff(order_key)
    # consecutive rows of one loan `step` months apart (same loan <=> same key // span)
    pair = (apart == step) & (loan_pos[1:] == loan_pos[:-1])
    src = np.flatnonzero(pair)
    dst = src + 1
    t = (order_key[dst] % span) - 1
    c = cohort_code[loan_pos[dst]]
    flat = ((c * n_months + t) * N_STATES + state[src]) * N_STATES + state[dst]
    counts = np.bincount(flat, minlength=n_cohorts * n_months * N_STATES * N_STATES)
    counts = counts.astype(np.int64).reshape(n_cohorts, n_months, N_STATES, N_STATES)
    return counts, pd.Index(cohorts, name="cohort"), month_index


def panel_loan_positions(panel_df: pd.DataFrame, loans_df: pd.DataFrame) -> np.ndarray:
    """``(n_rows,)`` position in ``loans_df`` of each panel row's loan; DataError for unknown loans.

    One id rule for tape and panel: 7, 7.0 and "7" are the same loan, "007" is not. A Categorical
    ``loan_id`` (the synthetic panels') is matched once per category, not once per row.
    """
    loan_index = pd.Index(id_strings(loans_df["loan_id"]).astype(str).to_numpy())
    if not loan_index.is_unique:
        dup = loans_df.index[loan_index.duplicated(keep=False)]
        raise DataError(f"loan tape: column 'loan_id' has duplicates {format_labels(list(dup))}; expected unique ids")
    ids = panel_df["loan_id"]
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat_pos = loan_index.get_indexer(id_strings(pd.Series(ids.cat.categories)).astype(str).to_numpy())
        codes = ids.cat.codes.to_numpy()
        loan_pos = np.where(codes >= 0, cat_pos[codes], -1)
    else:
        loan_pos = loan_index.get_indexer(id_strings(ids).astype(str).to_numpy())
    unknown = np.flatnonzero(loan_pos < 0)
    if len(unknown):
        raise DataError(
            f"panel: column 'loan_id' has {len(unknown)} row(s) {format_labels(list(panel_df.index[unknown]))} "
            "whose loan is not in the loan tape; expected every panel loan in the tape"
        )
    return loan_pos


def check_rows_from_origination(panel_df: pd.DataFrame, loans_df: pd.DataFrame, loan_pos: np.ndarray,
                                month_numbers: np.ndarray) -> None:
    """DataError naming the rows when a panel row reports a month before its loan's origination month
    (``loan_pos``: :func:`panel_loan_positions`; ``month_numbers``: :func:`panel_month_numbers`). Such a row
    is a mis-keyed loan or a date in the wrong column; a trainer that took it would learn moves of a loan
    that did not exist yet (and the trajectory model reads contract ages that are negative)."""
    orig = parse_dates(loans_df["origination_date"], "origination_date", "loan tape").to_numpy()
    orig_month = orig.astype("datetime64[M]").astype(np.int64)
    early = np.flatnonzero(month_numbers < orig_month[loan_pos])
    if len(early):
        i = int(early[0])
        raise DataError(
            f"panel: {len(early)} row(s) {format_labels(list(panel_df.index[early]))} report a month before their "
            f"loan's origination (first: loan {id_strings(loans_df['loan_id']).astype(str).iloc[int(loan_pos[i])]} in "
            f"{np.datetime64(int(month_numbers[i]), 'M')}, originated {np.datetime64(int(orig_month[loan_pos[i]]), 'M')}); "
            "expected rows from the origination month on")


def panel_states(panel_df: pd.DataFrame) -> np.ndarray:
    """``(n_rows,)`` int64 ``loan_state`` codes; DataError unless every row has an integer in 0..6."""
    state = pd.to_numeric(panel_df["loan_state"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(state) | (state < 0) | (state > N_STATES - 1) | (state != np.round(state)))
    if len(bad):
        raise DataError(
            f"panel: column 'loan_state' has {len(bad)} invalid row(s) {format_labels(list(panel_df.index[bad]))}; "
            f"expected integer state codes 0..{N_STATES - 1}"
        )
    return state.astype(np.int64)


def panel_month_numbers(panel_df: pd.DataFrame) -> np.ndarray:
    """``(n_rows,)`` int64 ``reporting_month`` as months since 1970-01; DataError on missing months."""
    rm = parse_dates(panel_df["reporting_month"], "reporting_month", "panel")
    missing = panel_df.index[rm.isna().to_numpy()]
    if len(missing):
        raise DataError(f"panel: column 'reporting_month' has {len(missing)} missing value(s) "
                        f"{format_labels(list(missing))}; expected a month on every row")
    return rm.to_numpy().astype("datetime64[M]").astype(np.int64)
