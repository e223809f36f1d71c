"""Rating-migration estimators: cohort counts, Aalen-Johansen, pooled TTC, validation, generators.

Conventions
-----------
- States are ordered best -> worst and the LAST state is default ``D`` (absorbing). With
  ``nr="state"`` a withdrawn/not-rated state ``NR`` is appended after D (so D is no longer last in
  that layout; use it for diagnostics, not for the one-factor model).
- A *panel* is a frame with one row per (entity, observation time, rating). For the cohort estimator
  ``time`` is the cohort index (an integer: year 0, 1, ...; a float time is floored to
  ``period`` bins). For Aalen-Johansen ``time`` is continuous: the rating holds from ``time`` until
  the entity's next row, or until its censoring time.
- ``nr="drop"`` (remove and renormalise): a move into NR, or a missing next observation, removes the
  obligor from the row's denominator (right censoring). ``nr="state"``: NR is counted as a state.
- All matrices are float64 ``(K, K)``, rows = from-state, rows sum to 1, annual unless stated.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.ratings.limits import check_memory
from creditsim.states import GRADES_7, GRADES_8

__all__ = [
    "CohortResult",
    "AalenJohansenResult",
    "GeneratorResult",
    "cohort_matrix",
    "aalen_johansen",
    "ttc_matrix",
    "validate_matrix",
    "generator",
    "monthly_matrix",
    "regularised_generator",
    "absorbing_stochastic",
    "matrix_log",
]

ROW_SUM_TOL = 1e-9


def default_labels(k: int) -> list[str] | list[int]:
    """Row names for an unlabeled ``(K, K)`` matrix: grades AAA..D for K = 7 or 8, else row numbers.

    Plain ``str`` / ``int`` (not ``np.str_``) so messages read ``'BBB'`` rather than ``np.str_('3')``."""
    if k == 8:
        return list(GRADES_8)
    if k == 7:
        return list(GRADES_7)
    return list(range(k))


# ----------------------------------------------------------------------------- validation
def validate_matrix(
    P: np.ndarray | pd.DataFrame,
    *,
    name: str = "transition matrix",
    n_states: int | None = None,
    labels: Sequence[str] | None = None,
    absorbing_default: bool = True,
    tol: float = ROW_SUM_TOL,
) -> np.ndarray:
    """Check a one-period transition matrix and return it as float64 ``(K, K)``.

    Checks: 2-D square, ``K == n_states`` when given, finite, non-negative, every row sums to 1
    within ``tol`` (default 1e-9) and, when ``absorbing_default``, the last row (D) is the unit
    vector. Raises :class:`DataError` naming the offending rows (by ``labels`` when given).
    """
    if isinstance(P, pd.DataFrame):
        if labels is None:
            labels = [str(x) for x in P.index]
        P = P.to_numpy()
    try:
        a = np.asarray(P, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot convert to a float array ({exc})") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise DataError(f"{name} must be square (K, K), got shape {a.shape}")
    k = a.shape[0]
    if k < 2:
        raise DataError(f"{name} must have at least 2 states (grades then D), got shape {a.shape}")
    if n_states is not None and k != n_states:
        raise DataError(f"{name} must be {n_states}x{n_states}, got {k}x{k}")
    lab = [str(x) for x in labels] if labels is not None and len(labels) == k else default_labels(k)
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise DataError(f"{name}: non-finite (NaN/inf) entries in rows {format_labels([lab[i] for i in np.flatnonzero(bad)])}")
    bad = (a < 0).any(axis=1)
    if bad.any():
        raise DataError(f"{name}: negative probabilities in rows {format_labels([lab[i] for i in np.flatnonzero(bad)])}")
    sums = a.sum(axis=1)
    bad = np.abs(sums - 1.0) > tol
    if bad.any():
        raise DataError(f"{name}: rows must sum to 1 within {tol:g}; offending rows {_rows_with_sums(lab, np.flatnonzero(bad), sums)}")
    if absorbing_default:
        unit = np.zeros(k)
        unit[-1] = 1.0
        if not np.array_equal(a[-1], unit):
            raise DataError(f"{name}: default row {lab[-1]!r} must be absorbing (unit vector on D), got {a[-1]}")
    return a


def _check_counts(counts: np.ndarray, name: str) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim not in (2, 3) or c.shape[-1] != c.shape[-2]:
        raise DataError(f"{name} must be (K, K) or (T, K, K) migration counts, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise DataError(f"{name} contains NaN/inf")
    if (c < 0).any():
        idx = np.argwhere(c < 0)[:10]
        raise DataError(f"{name} has negative counts at {format_labels([tuple(map(int, i)) for i in idx])}")
    frac = c != np.round(c)
    if frac.any():  # migration counts are obligors: 2.5 obligors is a unit or weighting mistake
        idx = np.argwhere(frac)[:10]
        raise DataError(f"{name} must be whole numbers (obligor counts); fractional at {format_labels([tuple(map(int, i)) for i in idx])}")
    return c


# ----------------------------------------------------------------------------- cohort
@dataclass(frozen=True)
class CohortResult:
    """Output of :func:`cohort_matrix`.

    matrix : (K, K) pooled one-period matrix (sum of counts / sum of starting obligors); the D row is
        the unit vector; a non-default row with no obligors is NaN (see ``empty_rows``).
    counts : (K, K) migration counts pooled over periods. ``period_counts`` : (T, K, K) per period.
    exposures : (K,) starting obligors per state (= row sums of ``counts``).
    period_matrices : (T, K, K) per-period matrices (NaN rows where a period has no obligors).
    states : state labels; ``periods`` : the cohort start times (length T).
    censored : (K,) obligors removed from denominators (NR moves / missing next observation).
    """

    matrix: np.ndarray
    counts: np.ndarray
    exposures: np.ndarray
    period_counts: np.ndarray
    period_matrices: np.ndarray
    states: tuple[str, ...]
    periods: np.ndarray
    censored: np.ndarray
    empty_rows: tuple[str, ...] = field(default=())


def _rows_to_matrix(counts: np.ndarray, absorbing_last: bool) -> np.ndarray:
    tot = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(tot > 0, counts / np.where(tot > 0, tot, 1.0), np.nan)
    if absorbing_last:
        m[..., -1, :] = 0.0
        m[..., -1, -1] = 1.0
    return m


def _encode_ratings(values: np.ndarray, states: Sequence[str], nr_label: str, column: str) -> np.ndarray:
    """Map rating labels (or integer codes) to codes 0..K-1; NR -> K; missing -> -1."""
    k = len(states)
    if np.issubdtype(values.dtype, np.integer):
        codes = values.astype(np.int64)
        bad = (codes < 0) | (codes > k)
        if bad.any():
            raise DataError(f"column {column!r}: integer codes must be in 0..{k} ({k} = NR), got {np.unique(codes[bad])[:10]}")
        return codes
    lookup = {str(s): i for i, s in enumerate(states)}
    lookup[nr_label] = k
    ser = pd.Series(values, dtype="object")
    missing = ser.isna().to_numpy()
    codes = ser.astype(str).map(lookup)
    unknown = codes.isna().to_numpy() & ~missing
    if unknown.any():
        raise DataError(
            f"column {column!r}: unknown ratings {format_labels(pd.unique(ser[unknown]))}; expected one of "
            f"{list(states) + [nr_label]}"
        )
    out = codes.fillna(-1).to_numpy(np.int64)
    return out


def _resolve_states(values: np.ndarray, states: Sequence[str] | None, column: str) -> tuple[tuple[str, ...], bool]:
    """The state labels for a panel's rating column, and whether they were inferred.

    Given ``states`` are used as they are (integer code ``len(states)`` then means NR). With
    ``states=None`` the grade set is inferred only where the data make it unambiguous:

    - text labels: ``GRADES_8`` when ``'CCC'`` occurs, else ``GRADES_7`` (the labels name the grades);
    - integer codes with largest code <= 6: ``GRADES_7`` (AAA=0 .. B=5, D=6);
    - integer codes reaching 7 or more are ambiguous (7 grades + NR code 7, or 8 grades with CCC=6,
      D=7: reading the latter as the former turns defaults into withdrawals and CCC into the
      absorbing D), so they raise :class:`ConfigError` asking for ``states=``.
    """
    if states is not None:
        return tuple(str(x) for x in states), False
    if np.issubdtype(values.dtype, np.integer):
        top = int(values.max()) if values.size else 0
        if top >= len(GRADES_7):
            raise ConfigError(
                f"column {column!r}: integer rating codes 0..{top} found but the default states have "
                f"{len(GRADES_7)} grades {list(GRADES_7)} (code 7 would be NR, code 6 the absorbing D); pass "
                f"states=GRADES_8 if the codes are AAA..B, CCC, D (D = 7), or states=GRADES_7 if 7 means NR"
            )
        return tuple(GRADES_7), True
    labs = set(pd.Series(values, dtype="object").dropna().astype(str))
    return (tuple(GRADES_8) if "CCC" in labs else tuple(GRADES_7)), True


def _check_inferred_d(frm: np.ndarray, to: np.ndarray, d: int, k: int, states: Sequence[str], column: str) -> None:
    """With inferred integer states, a code that leaves D (the last code) cannot be the absorbing D:
    the codes are probably 8 grades without any default observed (CCC = 6). Raise instead of guessing."""
    left = (frm == d) & (to >= 0) & (to < k) & (to != d)
    if left.any():
        raise ConfigError(
            f"column {column!r}: code {d} was inferred as the absorbing default {states[d]!r} but {int(left.sum())} "
            f"obligors move out of it (to codes {format_labels(np.unique(to[left]).tolist())}); pass states= "
            "(e.g. GRADES_8 when 6 is CCC)"
        )


def _sort_order(ent: np.ndarray, key2: np.ndarray, key3: np.ndarray | None = None) -> np.ndarray | None:
    """Order by (entity, key2[, key3]); None when the arrays are already in that order (O(n) check)."""
    de = np.diff(ent)
    same = de == 0
    ok = (de >= 0).all() and (np.diff(key2)[same] >= 0).all()
    if ok and key3 is not None:
        d2 = np.diff(key2)
        ok = (np.diff(key3)[same & (d2 == 0)] >= 0).all()
    if ok:
        return None
    return np.lexsort((key3, key2, ent)) if key3 is not None else np.lexsort((key2, ent))


def _panel_arrays(panel: pd.DataFrame, cols: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(panel, pd.DataFrame):
        raise DataError(f"panel must be a pandas DataFrame with columns {list(cols)}, got {type(panel).__name__}")
    missing = [c for c in cols if c not in panel.columns]
    if missing:
        raise DataError(f"panel lacks columns {missing}; expected {list(cols)}")
    e = panel[cols[0]]
    # integer ids are used as they are (only equality between neighbours matters); others factorised
    ent = e.to_numpy(np.int64) if pd.api.types.is_integer_dtype(e) else pd.factorize(e)[0].astype(np.int64)
    t = panel[cols[1]]
    if pd.api.types.is_datetime64_any_dtype(t):
        tt = (t - t.min()).dt.total_seconds().to_numpy() / (365.25 * 86400.0)
    else:
        try:
            tt = t.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"column {cols[1]!r} must be numeric or datetime") from None
    if not np.isfinite(tt).all():
        raise DataError(f"column {cols[1]!r} has NaN/inf at rows {format_labels(panel.index[~np.isfinite(tt)])}")
    if len(panel) == 0:
        raise DataError(f"panel has no rows; expected one row per (entity, time, rating) in columns {list(cols)}")
    return ent, tt, panel[cols[2]].to_numpy()


def _check_duplicates(ent: np.ndarray, tt: np.ndarray, code: np.ndarray, raw_ent: np.ndarray, order: np.ndarray | None) -> None:
    """Rows sorted by (entity, time): two rows of one entity at the same time with different ratings
    are contradictory (which one holds?) -> DataError naming them. Identical duplicates are harmless."""
    clash = (ent[1:] == ent[:-1]) & (tt[1:] == tt[:-1]) & (code[1:] != code[:-1])
    if clash.any():
        pos = np.flatnonzero(clash)
        ids = raw_ent if order is None else raw_ent[order]
        pairs = list(dict.fromkeys((_plain(ids[i]), float(tt[i])) for i in pos))
        raise DataError(f"duplicate (entity, time) rows with different ratings: (entity, time) {format_labels(pairs)}")


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def cohort_matrix(
    panel: pd.DataFrame | None = None,
    *,
    counts: np.ndarray | None = None,
    states: Sequence[str] | None = None,
    nr: str = "drop",
    nr_label: str = "NR",
    entity_col: str = "entity",
    time_col: str = "time",
    rating_col: str = "rating",
    period: float = 1.0,
) -> CohortResult:
    """Cohort (discrete-time) transition matrix from a rating panel or from migration counts.

    ``panel``: rows (entity, time, rating); ``time`` is floored to cohort index
    ``floor((time - min time) / period)``; the rating of an entity in a cohort is its last row in
    that bin. A transition is counted from cohort ``c`` to ``c + 1`` when the entity is observed in
    both. ``counts``: (K, K) or (T, K, K) migration counts instead of a panel.

    ``states``: labels best -> worst, D last. ``None`` infers them only where unambiguous (see
    :func:`_resolve_states`): text labels, or integer codes 0..6; integer codes reaching 7 (8 grades
    with D = 7, or 7 grades with NR = 7) need ``states=``, and an inferred D that obligors leave is
    refused. With given ``states`` integer code ``len(states)`` means NR.

    NR handling (``nr``): ``"drop"`` removes obligors that move to NR (or are not observed in the next
    cohort) from the denominator and renormalises (right censoring); ``"state"`` keeps NR as the
    (K+1)-th state (not absorbing; the D row stays absorbing). Obligors already in NR or D at the start
    of a period count in those rows only.

    The pooled matrix is ``sum_t N[i, j, t] / sum_t N[i, t]`` (count-weighted, as TTC estimation
    needs). Vectorised: one ``np.bincount`` over all consecutive pairs (2e6 rows in ~0.2 s).
    """
    if nr not in ("drop", "state"):
        raise ConfigError(f"nr must be 'drop' or 'state', got {nr!r}")
    if (panel is None) == (counts is None):
        raise ConfigError("give exactly one of panel= or counts=")
    if counts is not None:
        return _cohort_from_count_table(counts, states, nr, nr_label)

    if not (np.isfinite(period) and period > 0):
        raise ConfigError(f"period must be > 0, got {period}")
    ent, tt, raw = _panel_arrays(panel, (entity_col, time_col, rating_col))
    states, inferred = _resolve_states(raw, states, rating_col)
    k = len(states)
    if k < 2:
        raise ConfigError(f"need at least 2 states, got {states}")
    code = _encode_ratings(raw, states, nr_label, rating_col)
    keep = code >= 0
    ent, cidx, code = _last_rating_per_cohort(
        ent[keep], tt[keep], code[keep], panel[entity_col].to_numpy()[keep], period
    )
    n_periods = int(cidx.max()) if len(cidx) else 0
    if n_periods < 1:
        raise DataError("panel spans a single cohort; need observations at >= 2 cohort dates")
    # (T, K+1, K+1) counts and matrices: a time column in days or yyyymmdd read as years asks for millions of cohorts
    check_memory(8.0 * 3 * n_periods * (k + 1) ** 2, time_col, f"{n_periods} cohorts of period={period:g} (is the time unit years?)")
    frm, to, cid = _cohort_pairs(ent, cidx, code, n_periods)
    d = k - 1
    if inferred and np.issubdtype(raw.dtype, np.integer):
        _check_inferred_d(frm, to, d, k, states, rating_col)
    # an obligor in D stays in D even if later rows are missing or carry another rating
    to = np.where(frm == d, d, to)
    pc, cens = _count_cohort_pairs(frm, to, cid, k, n_periods, nr)
    lab = states + ((nr_label,) if nr == "state" else ())
    return _cohort_from_counts(pc, lab, np.arange(n_periods) * period, cens, k)


def _cohort_from_count_table(
    counts: np.ndarray, states: Sequence[str] | None, nr: str, nr_label: str
) -> CohortResult:
    """:func:`cohort_matrix` on given migration counts ``(K, K)`` or ``(T, K, K)`` (``K + 1`` with NR
    as a state); ``states=None`` is inferred only for 7 or 8 grades. Nobody is censored."""
    c = _check_counts(counts, "counts")
    if states is None:  # a count table's size names its grades only for 7 or 8 states
        kk = c.shape[-1] - (1 if nr == "state" else 0)
        if kk not in (7, 8):
            raise ConfigError(f"counts are {c.shape[-1]}x{c.shape[-1]}: pass states= (the grade labels, D last)")
        states = GRADES_8 if kk == 8 else GRADES_7
    states = tuple(str(s) for s in states)
    k = len(states)
    if k < 2:
        raise ConfigError(f"need at least 2 states, got {states}")
    if c.shape[-1] != k and not (nr == "state" and c.shape[-1] == k + 1):
        raise DataError(f"counts are {c.shape[-1]}x{c.shape[-1]} but {k} states were given ({list(states)})")
    pc = c if c.ndim == 3 else c[None]
    lab = states + ((nr_label,) if pc.shape[-1] == k + 1 else ())
    censored = np.zeros(pc.shape[-1])
    periods = np.arange(pc.shape[0], dtype=np.float64)
    return _cohort_from_counts(pc, lab, periods, censored, k)


def _last_rating_per_cohort(
    ent: np.ndarray, tt: np.ndarray, code: np.ndarray, raw_ent: np.ndarray, period: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin rated rows ``(n,)`` to cohort index ``floor((time - min time) / period)`` and keep each
    entity's last row per cohort. Returns ``(entity, cohort, code)``, sorted by entity then cohort.

    ``raw_ent`` (the entity column as given, unsorted) names duplicates in the error message.
    """
    # 1e-9: a time that is a whole number of periods after the first must not floor one cohort short
    cidx = np.floor((tt - tt.min()) / period + 1e-9).astype(np.int64)
    # last observation per (entity, cohort): stable sort by entity, cohort, time
    order = _sort_order(ent, cidx, tt)
    if order is not None:
        ent, cidx, code = ent[order], cidx[order], code[order]
    _check_duplicates(ent, tt if order is None else tt[order], code, raw_ent, order)
    last = np.ones(len(ent), dtype=bool)
    last[:-1] = (ent[1:] != ent[:-1]) | (cidx[1:] != cidx[:-1])
    return ent[last], cidx[last], code[last]


def _cohort_pairs(
    ent: np.ndarray, cidx: np.ndarray, code: np.ndarray, n_periods: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive-cohort pairs of one rating per (entity, cohort), sorted by entity then cohort.

    Returns ``(from, to, cohort)`` for every row in cohorts ``0 .. n_periods - 1``; ``to`` is -1 where
    the entity is not observed in the next cohort (censored).
    """
    nxt_same = np.zeros(len(ent), dtype=bool)
    nxt_same[:-1] = (ent[1:] == ent[:-1]) & (cidx[1:] == cidx[:-1] + 1)
    frm = code
    to = np.full(len(ent), -1, dtype=np.int64)
    to[:-1] = np.where(nxt_same[:-1], code[1:], -1)
    start = cidx < n_periods
    return frm[start], to[start], cidx[start]


def _count_cohort_pairs(
    frm: np.ndarray, to: np.ndarray, cid: np.ndarray, k: int, n_periods: int, nr: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cohort migration counts ``(T, W, W)`` float64 and censored obligors per from-state.

    ``W = k`` with ``nr="drop"`` (a move to NR (code ``k``) or a missing next cohort is censoring,
    ``censored`` is ``(k,)``), ``W = k + 1`` with ``nr="state"`` (only a missing next cohort censors,
    ``censored`` is ``(k + 1,)``).
    """
    kk = k + 1  # NR code = k
    if nr == "drop":
        obs = (to >= 0) & (to < k) & (frm < k)
        cens = np.bincount(frm[(frm < k) & ~obs], minlength=kk)[:k].astype(np.float64)
        width = k
    else:
        obs = to >= 0
        cens = np.bincount(frm[~obs], minlength=kk).astype(np.float64)
        width = kk
    flat = (cid[obs] * width + frm[obs]) * width + to[obs]
    pc = np.bincount(flat, minlength=n_periods * width * width).reshape(n_periods, width, width).astype(np.float64)
    return pc, cens


def _cohort_from_counts(pc: np.ndarray, lab: tuple[str, ...], periods: np.ndarray, cens: np.ndarray, k: int) -> CohortResult:
    pooled = pc.sum(axis=0)
    m = _rows_to_matrix(pooled, absorbing_last=False)
    m[k - 1] = 0.0
    m[k - 1, k - 1] = 1.0  # D absorbing (index k-1 in both layouts)
    pm = _rows_to_matrix(pc, absorbing_last=False)
    pm[:, k - 1] = 0.0
    pm[:, k - 1, k - 1] = 1.0
    empty = tuple(lab[i] for i in range(len(lab)) if i != k - 1 and pooled[i].sum() == 0)
    return CohortResult(
        matrix=m,
        counts=pooled,
        exposures=pooled.sum(axis=1),
        period_counts=pc,
        period_matrices=pm,
        states=lab,
        periods=periods,
        censored=cens,
        empty_rows=empty,
    )


def ttc_matrix(annual_counts: np.ndarray, *, states: Sequence[str] | None = None) -> np.ndarray:
    """Through-the-cycle matrix pooled by counts: ``P[i, j] = sum_t N[i, j, t] / sum_t N[i, t]``.

    ``annual_counts``: (T, K, K) migration counts (last state D). Not a plain average of annual
    matrices, which over-weights thin years. The D row is set to the unit vector. A non-default
    grade with no obligors in any year raises :class:`DataError` naming it. Returns (K, K) float64.
    """
    c = _check_counts(annual_counts, "annual_counts")
    if c.ndim == 2:
        c = c[None]
    k = c.shape[-1]
    lab = [str(x) for x in states] if states is not None and len(states) == k else default_labels(k)
    pooled = c.sum(axis=0)
    tot = pooled.sum(axis=1)
    empty = [lab[i] for i in range(k - 1) if tot[i] <= 0]
    if empty:
        raise DataError(f"ttc_matrix: grades with no obligors in any year: {format_labels(empty)}")
    m = _rows_to_matrix(pooled, absorbing_last=True)
    return m


# ----------------------------------------------------------------------------- Aalen-Johansen
@dataclass(frozen=True)
class AalenJohansenResult:
    """Output of :func:`aalen_johansen`.

    matrix : (K, K) product-limit estimate of P(t_start, t_end); rows of states with nobody at risk
        stay unit rows (no information -> no movement).
    event_times : (m,) distinct transition times in (t_start, t_end].
    counts : (K, K) observed transitions (diagonal 0). exposures : (K,) time at risk per state
        (obligor-years when time is in years). generator : (K, K) duration MLE ``N_ij / exposure_i``
        (Poisson/Markov-chain intensity estimate; rows with no exposure are 0).
    censored : (K,) obligors censored (withdrawn/NR or end of observation before t_end) per state.
    """

    matrix: np.ndarray
    event_times: np.ndarray
    counts: np.ndarray
    exposures: np.ndarray
    generator: np.ndarray
    censored: np.ndarray
    states: tuple[str, ...]


def _ordered_product(mats: np.ndarray) -> np.ndarray:
    """Left-to-right product ``mats[0] @ mats[1] @ ...`` by pairwise batched reduction (O(log m) calls)."""
    k = mats.shape[-1]
    while mats.shape[0] > 1:
        if mats.shape[0] % 2:
            mats = np.concatenate([mats, np.eye(k)[None]], axis=0)
        mats = mats[0::2] @ mats[1::2]
    return mats[0]


def aalen_johansen(
    events: pd.DataFrame,
    *,
    states: Sequence[str] | None = None,
    nr: str = "drop",
    nr_label: str = "NR",
    t_start: float | None = None,
    t_end: float | None = None,
    end_times: pd.Series | None = None,
    entity_col: str = "entity",
    time_col: str = "time",
    rating_col: str = "rating",
) -> AalenJohansenResult:
    """Aalen-Johansen (product-limit) estimate of the transition matrix P(t_start, t_end).

    ``events``: rows (entity, time, rating): the rating holds from ``time`` until the entity's next
    row. An entity is observed until ``end_times[entity]`` when given, else until ``t_end`` (default:
    the last time in the data), i.e. it is right-censored at its end time. With ``nr="drop"`` a move
    to NR censors the entity at that time; with ``nr="state"`` NR is a state. D is absorbing.
    ``states``: as in :func:`cohort_matrix` (``None`` infers them where unambiguous).

    ``P = prod_{u in event times} (I + dA(u))``, ``dA(u)[i, j] = dN_ij(u) / Y_i(u-)``; ties: entities
    censored at ``u`` are still at risk at ``u``. On a complete yearly panel (everyone observed at
    every integer time) this equals the product of the yearly cohort matrices exactly.
    Vectorised: at-risk counts by a cumulative sum over sorted event times, the product by pairwise
    batched matrix products.
    """
    if nr not in ("drop", "state"):
        raise ConfigError(f"nr must be 'drop' or 'state', got {nr!r}")
    ent, tt, raw = _panel_arrays(events, (entity_col, time_col, rating_col))
    states, inferred = _resolve_states(raw, states, rating_col)
    k0 = len(states)
    if k0 < 2:
        raise ConfigError(f"need at least 2 states, got {states}")
    code = _encode_ratings(raw, states, nr_label, rating_col)
    keep = code >= 0
    ent, tt, code = ent[keep], tt[keep], code[keep]
    if len(ent) == 0:
        raise DataError("events frame has no rows with a rating")
    order = _sort_order(ent, tt)
    if order is None:
        order = np.arange(len(ent))
    else:
        ent, tt, code = ent[order], tt[order], code[order]
    _check_duplicates(ent, tt, code, events[entity_col].to_numpy()[keep], order)
    t0 = float(tt.min()) if t_start is None else float(t_start)
    t1 = float(tt.max()) if t_end is None else float(t_end)
    if not t1 > t0:
        raise ConfigError(f"t_end ({t1}) must be greater than t_start ({t0})")
    if end_times is not None:
        row_end = _row_end_times(end_times, events[entity_col].to_numpy()[keep][order], t1)
    else:
        row_end = np.full(len(ent), t1)
    d = k0 - 1
    k = k0 + 1 if nr == "state" else k0

    a, b, s, nxt_code = _sojourns(ent, tt, code, row_end)
    if inferred and np.issubdtype(raw.dtype, np.integer):
        _check_inferred_d(s, nxt_code, d, k0, states, rating_col)
    # NR handling: with drop, NR sojourns carry no risk and a move into NR is a censoring
    if nr == "drop":
        live = s < k0
        nxt_code = np.where(nxt_code == k0, -1, nxt_code)
        a, b, s, nxt_code = a[live], b[live], s[live], nxt_code[live]
    # same-state rows are not events: keep them as contiguous sojourns (transition i->i ignored)
    # restrict to the window
    a_c = np.maximum(a, t0)
    b_c = np.minimum(b, t1)
    ok = b_c > a_c
    event = ok & (nxt_code >= 0) & (nxt_code != s) & (b <= t1) & (b > t0) & (s != d)
    ev_t = b[event]
    times = np.unique(ev_t)
    sa, sb, ss = a_c[ok], b_c[ok], s[ok]
    at_risk = _at_risk(times, sa, sb, ss, k)
    dn = _transition_counts(times, ev_t, s[event], nxt_code[event], k)
    P = _product_limit(dn, at_risk)
    P[d] = 0.0
    P[d, d] = 1.0
    counts = dn.sum(axis=0)
    expo = np.bincount(ss, weights=sb - sa, minlength=k)
    Q = _duration_generator(counts, expo)
    cens_mask = ok & ~event & (s != d) & (b < t1)
    cens = np.bincount(s[cens_mask], minlength=k).astype(np.float64)
    lab = states + ((nr_label,) if nr == "state" else ())
    return AalenJohansenResult(P, times, counts, expo, Q, cens, lab)


def _row_end_times(end_times: pd.Series, raw_ids: np.ndarray, t1: float) -> np.ndarray:
    """Censoring time ``(n,)`` of each row's entity (``raw_ids``: entity per row, as given), capped at
    ``t1``; an entity missing from ``end_times`` raises :class:`DataError` naming it."""
    row_end = pd.Series(end_times).reindex(pd.Index(raw_ids)).to_numpy(dtype=np.float64)
    if np.isnan(row_end).any():
        raise DataError(f"end_times lacks entities {format_labels(pd.unique(raw_ids[np.isnan(row_end)]))}")
    return np.minimum(row_end, t1)


def _sojourns(
    ent: np.ndarray, tt: np.ndarray, code: np.ndarray, row_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sojourns of rows sorted by entity then time: ``[a, b)`` in state ``s``, then state ``next``.

    A row's sojourn ends at the entity's next row, or at its censoring time ``row_end`` for the last
    row (``next = -1``: censored). All ``(n,)``; ``a`` is ``tt`` itself and ``s`` is ``code`` itself.
    """
    same_next = np.zeros(len(ent), dtype=bool)
    same_next[:-1] = ent[1:] == ent[:-1]
    nxt_code = np.full(len(ent), -1, dtype=np.int64)
    nxt_code[:-1] = np.where(same_next[:-1], code[1:], -1)
    b = np.empty(len(ent))
    b[:-1] = np.where(same_next[:-1], tt[1:], row_end[:-1])
    b[-1] = row_end[-1]
    return tt, b, code, nxt_code


def _at_risk(times: np.ndarray, sa: np.ndarray, sb: np.ndarray, ss: np.ndarray, k: int) -> np.ndarray:
    """Number at risk ``Y_i(u-)`` per event time and state, ``(m, K)`` float64, from sojourns
    ``[sa, sb)`` in state ``ss`` (clipped to the window): at risk just before ``u`` when
    ``sa < u <= sb`` (start strictly before ``u``, end at or after ``u``). A cumulative sum of
    +1 / -1 at the sojourn's start / stop position among the sorted event times."""
    m = len(times)
    i_start = np.searchsorted(times, sa, side="right")
    i_stop = np.searchsorted(times, sb, side="right")
    nb = (m + 1) * k
    delta = np.bincount(i_start * k + ss, minlength=nb) - np.bincount(i_stop * k + ss, minlength=nb)
    return np.cumsum(delta.reshape(m + 1, k), axis=0)[:m].astype(np.float64)  # (m, K)


def _transition_counts(times: np.ndarray, ev_t: np.ndarray, ev_f: np.ndarray, ev_to: np.ndarray, k: int) -> np.ndarray:
    """Transitions ``dN_ij(u)`` per event time, ``(m, K, K)`` float64, from events at ``ev_t`` (each
    one of ``times``) out of ``ev_f`` into ``ev_to``."""
    m = len(times)
    ti = np.searchsorted(times, ev_t)
    return np.bincount((ti * k + ev_f) * k + ev_to, minlength=m * k * k).reshape(m, k, k).astype(np.float64)


def _product_limit(dn: np.ndarray, at_risk: np.ndarray) -> np.ndarray:
    """``prod_u (I + dA(u))`` with ``dA(u)[i, j] = dN_ij(u) / Y_i(u-)`` (0 where nobody is at risk),
    ``dn`` ``(m, K, K)``, ``at_risk`` ``(m, K)``; ``I`` (K, K) when there is no event time."""
    m, k = at_risk.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.where(at_risk[:, :, None] > 0, dn / np.where(at_risk > 0, at_risk, 1.0)[:, :, None], 0.0)
    step = da.copy()
    idx = np.arange(k)
    step[:, idx, idx] = 1.0 - da.sum(axis=2)
    return _ordered_product(step) if m else np.eye(k)


def _duration_generator(counts: np.ndarray, expo: np.ndarray) -> np.ndarray:
    """Duration MLE of the generator ``Q[i, j] = N_ij / exposure_i`` (rows with no exposure are 0),
    diagonal minus the row sum; ``counts`` (K, K), ``expo`` (K,) time at risk."""
    k = len(expo)
    with np.errstate(invalid="ignore", divide="ignore"):
        Q = np.where(expo[:, None] > 0, counts / np.where(expo > 0, expo, 1.0)[:, None], 0.0)
    idx = np.arange(k)
    Q[idx, idx] = -Q.sum(axis=1)
    return Q


# ----------------------------------------------------------------------------- generators
@dataclass(frozen=True)
class GeneratorResult:
    """Regularised generator ``Q`` (K, K) per year (rows sum to 0, off-diagonals >= 0) and the
    embedding distance ``distance = max |expm(Q) - P|`` (also as Frobenius norm ``distance_fro``)."""

    Q: np.ndarray
    distance: float
    distance_fro: float
    method: str


#: largest |exp(log P) - P| :func:`matrix_log` accepts silently where it falls back to scipy's logm
LOG_TOLERANCE = 1e-8


def matrix_log(P: np.ndarray) -> np.ndarray:
    """Principal matrix logarithm of a batch ``(..., K, K)`` via eigendecomposition (real part).

    Raises :class:`DataError` if a matrix has a non-positive real eigenvalue (no real log)."""
    w, v = np.linalg.eig(P)
    neg = (np.abs(w.imag) < 1e-12) & (w.real <= 0)
    if neg.any():
        raise DataError("matrix has a non-positive real eigenvalue: no real matrix logarithm (not embeddable)")
    lw = np.log(w.astype(np.complex128))
    vinv = np.linalg.inv(v)
    if np.iscomplexobj(v):
        # numpy returns real eigenvectors when every matrix of the batch has real eigenvalues and complex
        # ones otherwise, and the real and complex inverses round differently; so a matrix with a real
        # eigenbasis is inverted in real arithmetic whatever its batch (a simulation's chunk) holds
        real = (v.imag == 0).all(axis=(-2, -1))
        if real.any():
            vinv[real] = np.linalg.inv(np.ascontiguousarray(v.real[real]))
    q = ((v * lw[..., None, :]) @ vinv).real
    # near-defective matrices make the eigenbasis ill-conditioned (V diag(w) V^-1 != P): fall back
    # to scipy's Schur-Pade logm for those
    recon = np.abs(((v * w[..., None, :]) @ vinv).real - P).max(axis=(-2, -1))
    bad = np.atleast_1d(recon > 1e-8)
    if bad.any():
        flat_q = q.reshape(-1, *q.shape[-2:])
        flat_p = np.asarray(P).reshape(-1, *q.shape[-2:])
        worst = 0.0
        for i in np.flatnonzero(bad.reshape(-1)):
            # scipy warns per matrix when its own error estimate passes 1000 eps (~3e-10 at the extreme Z
            # of a reverse-stress search): judged by the round trip instead, and warned once per call
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="logm result may be inaccurate", category=RuntimeWarning)
                flat_q[i] = np.real(scipy.linalg.logm(flat_p[i]))
            worst = max(worst, float(np.abs(scipy.linalg.expm(flat_q[i]) - flat_p[i]).max()))
        if worst > LOG_TOLERANCE:
            warnings.warn(f"matrix logarithm: exp(log P) differs from P by up to {worst:.1e} "
                          f"(tolerance {LOG_TOLERANCE:g}); the matrix is close to defective", RuntimeWarning, stacklevel=2)
        q = flat_q.reshape(q.shape)
    return q


def expm_batched(a: np.ndarray) -> np.ndarray:
    """Matrix exponential of a batch ``(..., K, K)``: scaling and squaring with an 18-term Taylor
    series, all in batched numpy products (scipy's expm loops over the batch in Python).
    Relative accuracy ~1e-15 for generator matrices.

    Each matrix gets its own number of squarings, from its own infinity norm, so its result does not
    depend on which other matrices share the batch (a chunk of scenarios): one scaling for the whole
    batch, from its largest norm, changed a matrix's exponential in the last bits with its companions."""
    a = np.asarray(a, dtype=np.float64)
    norm = np.abs(a).sum(axis=-1).max(axis=-1) if a.size else np.zeros(a.shape[:-2])  # (...,) per matrix
    with np.errstate(divide="ignore"):
        s = np.where(norm > 0.5, np.ceil(np.log2(np.maximum(norm, 0.5) / 0.5)), 0.0).astype(np.int64)
    x = a / (2.0 ** s)[..., None, None]
    k = a.shape[-1]
    eye = np.broadcast_to(np.eye(k), a.shape)
    out = eye.copy()
    for n in range(18, 0, -1):  # Horner: I + x/1 (I + x/2 (I + ...))
        out = eye + (x @ out) / n
    for i in range(int(s.max()) if s.size else 0):
        out = np.where((s > i)[..., None, None], out @ out, out)
    return out


def _regularise(q: np.ndarray, method: str) -> np.ndarray:
    k = q.shape[-1]
    idx = np.arange(k)
    q = q.copy()
    off = ~np.eye(k, dtype=bool)
    if method == "diagonal":  # Israel-Rosenthal-Wei diagonal adjustment
        q = np.where(off & (q < 0), 0.0, q)
        q[..., idx, idx] = 0.0
        q[..., idx, idx] = -q.sum(axis=-1)
    elif method == "weighted":  # IRW weighted adjustment
        # zero the negative off-diagonals, then take the excess row sum back from every entry in
        # proportion to its magnitude (G_i = |q_ii| + sum of positive off-diagonals)
        d = q[..., idx, idx].copy()
        pos = np.where(off, np.maximum(q, 0.0), 0.0)
        excess = d + pos.sum(axis=-1)
        g = np.abs(d) + pos.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(g > 0, excess / np.where(g > 0, g, 1.0), 0.0)
        q = pos * (1.0 - frac[..., None])
        q[..., idx, idx] = d - np.abs(d) * frac
    else:
        raise ConfigError(f"unknown generator method {method!r}; expected 'diagonal', 'weighted' or 'jlt'")
    return q


def generator(P: np.ndarray | pd.DataFrame, method: str = "diagonal") -> GeneratorResult:
    """Regularised generator (intensity matrix) of a one-year matrix ``P`` (K, K), D absorbing.

    Methods: ``"diagonal"`` (Israel-Rosenthal-Wei: principal log, negative off-diagonals set to 0,
    diagonal rebalanced), ``"weighted"`` (IRW: row error spread in proportion to |q_ij|), ``"jlt"``
    (Jarrow-Lando-Turnbull closed form ``q_ii = log p_ii``, ``q_ij = p_ij log p_ii / (p_ii - 1)``, no
    logarithm needed). Always returns a valid generator; ``distance`` = max |expm(Q) - P|.
    """
    a = validate_matrix(P, name="P")
    if method == "jlt":
        diag = np.diag(a).copy()
        if (diag <= 0).any():
            raise DataError("jlt generator needs every diagonal entry > 0")
        with np.errstate(invalid="ignore", divide="ignore"):
            fac = np.where(diag < 1.0, np.log(diag) / (diag - 1.0), 0.0)
        q = a * fac[:, None]
        np.fill_diagonal(q, np.log(diag))
    else:
        q = _regularise(matrix_log(a), method)
    q[-1] = 0.0
    err = scipy.linalg.expm(q) - a
    return GeneratorResult(q, float(np.abs(err).max()), float(np.linalg.norm(err)), method)


def _rows_with_sums(lab: Sequence[str], rows: np.ndarray, sums: np.ndarray, limit: int = 10) -> str:
    """``['BBB' (sum 1.01), 'B' (sum 0.99)]``: offending rows by name with their row sums."""
    items = [f"{lab[i]!r} (sum {sums[i]:.12g})" for i in rows]
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return f"[{', '.join(items[:limit])}]{more}"


def _check_stack_rows(a: np.ndarray, name: str, tol: float) -> None:
    """Validate a ``(..., K, K)`` stack: finite, non-negative, rows summing to 1 within ``tol``.

    The message names the first offending matrix (its leading index, omitted for a single matrix)
    and its rows by grade (:func:`default_labels`)."""
    k = a.shape[-1]
    lab = default_labels(k)
    batch = a.reshape(-1, k, k)
    lead = a.shape[:-2]
    sums = batch.sum(axis=-1)
    checks = (
        ("non-finite (NaN/inf) entries", ~np.isfinite(batch).all(axis=-1)),
        ("negative probabilities", (batch < 0).any(axis=-1)),
        (f"rows not summing to 1 within {tol:g}", np.abs(sums - 1.0) > tol),
    )
    for what, bad in checks:
        if bad.any():
            m = int(np.flatnonzero(bad.any(axis=1))[0])
            rows = np.flatnonzero(bad[m])
            names = _rows_with_sums(lab, rows, sums[m]) if "sum" in what else format_labels([lab[i] for i in rows])
            where = f" in matrix {tuple(int(x) for x in np.unravel_index(m, lead))}" if lead else ""
            raise DataError(f"{name}: {what}{where}, rows {names}")


def absorbing_stochastic(m: np.ndarray) -> np.ndarray:
    """Exponentiated matrices ``(..., K, K)`` made exactly stochastic with D absorbing: negatives of
    rounding clipped to 0, rows renormalised, the last row the unit vector. In place; returns ``m``."""
    np.clip(m, 0.0, None, out=m)
    m /= m.sum(axis=-1, keepdims=True)
    m[..., -1, :] = 0.0
    m[..., -1, -1] = 1.0
    return m


def regularised_generator(P_annual: np.ndarray, method: str = "diagonal") -> np.ndarray:
    """The regularised generator ``(..., K, K)`` of annual matrices (rows summing to 0, off-diagonals
    >= 0, the absorbing D row 0): what :func:`monthly_matrix` takes the exponential of (divided by the
    steps). Batched over leading axes; no checks (the caller's)."""
    q = _regularise(matrix_log(np.asarray(P_annual, dtype=np.float64)), method)
    q[..., -1, :] = 0.0
    return q


def monthly_matrix(P_annual: np.ndarray, *, steps: int = 12, method: str = "diagonal", return_distance: bool = False):
    """Convert annual matrices ``(..., K, K)`` to one-step matrices for ``steps`` steps a year
    (default monthly): ``expm(Q / steps)`` with ``Q`` the regularised generator (see
    :func:`generator`), batched over leading axes. The result is stochastic with D absorbing and
    ``M ** steps`` approximates ``P_annual`` up to the embedding distance (0 for embeddable input).
    Rows sum to 1 within 1e-12. With ``return_distance`` also returns max |M**steps - P| per matrix.
    """
    a = np.asarray(P_annual, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise DataError(f"P_annual must be (..., K, K), got shape {a.shape}")
    _check_stack_rows(a, "P_annual", tol=1e-9)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if method not in ("diagonal", "weighted"):
        raise ConfigError(f"monthly_matrix method must be 'diagonal' or 'weighted', got {method!r}")
    m = absorbing_stochastic(expm_batched(regularised_generator(a, method) / steps))
    if return_distance:
        dist = np.abs(np.linalg.matrix_power(m, steps) - a).max(axis=(-2, -1))
        return m, dist
    return m
