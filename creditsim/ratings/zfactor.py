"""One-factor (Vasicek / Belkin-Suchower-Forest) rating-migration model.

An obligor in grade ``i`` has credit-quality change ``X = sqrt(rho) Z + sqrt(1 - rho) eps`` with the
credit-cycle index ``Z ~ N(0, 1)`` common to all obligors in a year. **Sign convention: z > 0 is a
good year** (fewer defaults and downgrades): ``PD_i(-1) > PD_i(0) > PD_i(+1)`` ... and
``PD_i(0) != PD_i^TTC`` in general, while ``E_Z[M(Z)] = TTC`` exactly.

Thresholds: ``C[i, j] = sum_{k >= j} TTC[i, k]`` ("j or worse"), ``b[i, j] = Phi^-1(C[i, j])``
(``b[i, 0] = +inf``, ``b[i, K] = -inf``). Conditional matrix::

    M(z)[i, j] = Phi((b[i, j] - sqrt(rho) z) / s) - Phi((b[i, j+1] - sqrt(rho) z) / s)

with ``s = sqrt(1 - rho)`` (or ``sqrt(1 - rho + rho * sigma_e^2)`` when a normal residual of variance
``sigma_e^2`` around a forecast mean ``z`` is integrated out, see RATINGS.md §2). The D row stays the
unit vector.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special

from creditsim.errors import ConfigError, DataError, NotFittedError, format_labels
from creditsim.ratings.estimate import validate_matrix
from creditsim.ratings.limits import check_count, check_memory
from creditsim.states import GRADES_7, GRADES_8

__all__ = [
    "thresholds",
    "conditional_matrix",
    "conditional_pd",
    "expected_matrix",
    "gauss_hermite",
    "ZFactorModel",
    "ZFactorResult",
    "Z_ABS_MAX",
]

RHO_BOUNDS = (1e-4, 0.5)
# |z| above 8 has probability ~1e-15 under Z ~ N(0, 1): such an input is a unit or sign mistake
# (e.g. a percent), not a credit-cycle scenario, so user-given Z paths are bounded by it.
Z_ABS_MAX = 8.0
# One or two years cannot separate the cycle (Z_t) from the correlation: the marginal likelihood is
# then flat or maximal at a bound (1 year gave rho = 1e-4 silently). Three is the least that lets
# the year-to-year dispersion speak; it is still a wide interval, rho_se_ says how wide.
MIN_YEARS_FOR_RHO = 3


def _rho_bound_note(rho: float) -> str:
    """Warning text when an estimated rho sits at the edge of RHO_BOUNDS (within 1 %), else ''."""
    lo, hi = RHO_BOUNDS
    if rho <= lo * 1.01:
        return (
            f"estimated rho = {rho:.6g} is at the lower bound {lo:g} of its search range: the data show no "
            "more year-to-year dispersion than binomial noise; Z_t is then barely identified (consider rho=)"
        )
    if rho >= hi * 0.99:
        return (
            f"estimated rho = {rho:.6g} is at the upper bound {hi:g} of its search range: the dispersion "
            "exceeds what the one-factor model explains (check the counts, or fix rho=)"
        )
    return ""
#: more Gauss-Hermite nodes than this add nothing in double precision (40 reach ~1e-12)
MAX_NODES = 200
_P_FLOOR = 1e-300  # log of a cell with zero model probability but observed counts


def gauss_hermite(n_nodes: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised so ``sum w f(x) ~= E[f(Z)]``, Z~N(0,1).

    Returns ``(nodes, weights)``, each ``(n_nodes,)``; nodes are z values (z > 0 is a good year)."""
    n = check_count(n_nodes, "n_nodes", high=MAX_NODES)
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / w.sum()


def _ordered_labels(k: int) -> tuple[str, ...] | None:
    return GRADES_8 if k == 8 else GRADES_7 if k == 7 else None


_GRADE_RANK = {"AAA": 0, "AA": 1, "A": 2, "BBB": 3, "BB": 4, "B": 5, "CCC": 6, "CCC/C": 6, "C": 6, "D": 7}


def _is_positional(labels: Sequence[str]) -> bool:
    return all(g.lstrip("-").isdigit() for g in labels)


def _check_order(labels: Sequence[str], what: str) -> None:
    """Grade labels must be known rating names ordered best -> worst.

    Integer labels (array input, a ``RangeIndex``) are positions, not names, and are taken as
    already ordered. Any other label must be one of ``_GRADE_RANK``: an unknown label (``"ZZ"``,
    ``"NR"``, a typo) is rejected rather than skipped, because skipping it would also switch off
    the order check for the known ones."""
    labs = [str(g) for g in labels]
    if not labs or _is_positional(labs):
        return
    unknown = [g for g in labs if g not in _GRADE_RANK]
    if unknown:
        raise DataError(f"{what}: unknown grades {format_labels(unknown)}; allowed (best to worst) {list(_GRADE_RANK)}")
    known = [_GRADE_RANK[g] for g in labs]
    if any(b <= a for a, b in zip(known, known[1:])):
        raise DataError(f"{what}: grades out of order {labs}; expected best to worst, e.g. {list(GRADES_8)}")


def _numeric_counts(x: object, what: str) -> np.ndarray:
    """Counts as float64; non-numeric entries raise DataError naming the (year, grade) cells.

    A DataFrame is converted column by column with ``pd.to_numeric(errors="coerce")`` so that a
    text cell is reported by its year / grade; cells that were already NaN stay NaN (reported later
    as missing by :func:`_check_nonneg`)."""
    if isinstance(x, pd.DataFrame):
        num = x.apply(pd.to_numeric, errors="coerce")
        bad = num.isna() & x.notna()
        if bad.to_numpy().any():
            rows, cols = np.nonzero(bad.to_numpy())
            cells = [(_plain(x.index[r]), str(x.columns[c])) for r, c in zip(rows, cols)]
            years = list(dict.fromkeys(_plain(x.index[r]) for r in rows))
            raise DataError(
                f"{what} must be numeric counts; non-numeric values in years {format_labels(years)} "
                f"(year, grade) {format_labels(cells)}"
            )
        return num.to_numpy(dtype=np.float64)
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric counts (T, G) per year and grade, got {type(x).__name__}: {exc}") from None


def _plain(v: object) -> object:
    """numpy scalar -> Python scalar, so labels print as 1990, not np.int64(1990)."""
    return v.item() if isinstance(v, np.generic) else v


def _as_ttc(ttc: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(ttc, pd.DataFrame):
        _check_order([str(x) for x in ttc.index], "TTC matrix rows")
        _check_order([str(x) for x in ttc.columns], "TTC matrix columns")
    return validate_matrix(ttc, name="TTC matrix")


def thresholds(ttc: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Thresholds ``b`` of a validated TTC matrix: (K-1, K+1) float64 for the non-default rows.

    ``b[i, 0] = +inf``, ``b[i, j] = Phi^-1(sum_{k >= j} TTC[i, k])``, ``b[i, K] = -inf``; cumulative
    sums are taken from the worst state (accurate small tails) and clipped to [0, 1]. X below
    ``b[i, j]`` means grade j or worse (low X = deterioration; z > 0 is a good year)."""
    p = _as_ttc(ttc)
    return thresholds_raw(p)


def thresholds_raw(p: np.ndarray) -> np.ndarray:
    k = p.shape[0]
    rows = p[:-1]
    c = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]  # c[:, j] = sum_{k>=j}
    c = np.clip(c, 0.0, 1.0)
    # no mass before column j -> "j or worse" is exactly 1 (keeps leading zero cells exactly 0)
    before = np.cumsum(rows, axis=1) - rows
    c[before == 0] = 1.0
    b = np.empty((k - 1, k + 1))
    b[:, :k] = special.ndtri(c)
    b[:, 0] = np.inf
    b[:, k] = -np.inf
    return b


def _bin_probs(b: np.ndarray, z: np.ndarray, rho: float, residual_var: float = 0.0) -> np.ndarray:
    """Probabilities of the bins between consecutive thresholds: b (R, J+1), z (...,) -> (..., R, J).

    z > 0 is a good year: it shifts X up, away from the low (worse-grade) bins."""
    s = np.sqrt(1.0 - rho + rho * residual_var)
    u = (b - np.sqrt(rho) * np.asarray(z, dtype=np.float64)[..., None, None]) / s
    # plain CDF differences: absolute error ~1e-16 per cell (what row sums and E_Z[M] = TTC need);
    # equal thresholds (zero TTC cells) give exactly 0. One ndtr call per threshold keeps
    # 10,000 paths x 30 years of 8x8 matrices at ~0.3 s.
    f = special.ndtr(u)
    p = f[..., :-1] - f[..., 1:]
    return np.clip(p, 0.0, 1.0)


def check_rho(rho: float, residual_var: float = 0.0) -> float:
    r = float(rho)
    if not (0.0 <= r < 1.0) or not np.isfinite(r):
        raise ConfigError(f"rho must be in [0, 1), got {rho}")
    if residual_var < 0 or not np.isfinite(residual_var):
        raise ConfigError(f"residual_var must be >= 0, got {residual_var}")
    return r


def conditional_matrix(
    ttc: np.ndarray | pd.DataFrame, z: float | np.ndarray, rho: float, *, residual_var: float = 0.0
) -> np.ndarray:
    """Point-in-time matrix ``M(z)`` given the credit-cycle index ``z`` (z > 0 = good year).

    ``ttc``: (K, K) validated TTC matrix, last state D absorbing. ``z``: scalar or array of any
    shape ``S``. ``rho`` in [0, 1). ``residual_var``: variance of a normal residual around ``z``
    integrated out (``E[M(z + e)]``, e ~ N(0, residual_var)). Returns ``S + (K, K)`` float64, every
    row stochastic, D row the unit vector, zero TTC cells stay exactly 0.
    """
    p = _as_ttc(ttc)
    rho = check_rho(rho, residual_var)
    zz = np.asarray(z, dtype=np.float64)
    if not np.isfinite(zz).all():
        bad = np.argwhere(~np.isfinite(np.atleast_1d(zz)))[:10]
        raise DataError(f"z must be finite; NaN/inf at positions {format_labels([tuple(map(int, i)) for i in bad])}")
    k = p.shape[0]
    # output plus the two threshold-sized temporaries of _bin_probs
    check_memory(8.0 * zz.size * 3 * k * (k + 1), "z", f"{zz.size} values of z x {k}x{k} matrices")
    return conditional_raw(p, thresholds_raw(p), zz, rho, residual_var)


def conditional_raw(p: np.ndarray, b: np.ndarray, z: np.ndarray, rho: float, residual_var: float = 0.0) -> np.ndarray:
    """``M(z)`` without validation: z shape S -> S + (K, K); z > 0 is a good year."""
    k = p.shape[0]
    out = np.zeros(z.shape + (k, k))
    out[..., :-1, :] = _bin_probs(b, z, rho, residual_var)
    out[..., -1, -1] = 1.0
    return out


def conditional_pd(pd_ttc: np.ndarray, z: float | np.ndarray, rho: float) -> np.ndarray:
    """Vasicek conditional PD ``Phi((Phi^-1(PD) - sqrt(rho) z) / sqrt(1 - rho))`` (z > 0 good year).

    ``pd_ttc`` (G,) decimals; ``z`` shape S -> S + (G,)."""
    rho = check_rho(rho)
    c = special.ndtri(np.clip(np.asarray(pd_ttc, dtype=np.float64), 0.0, 1.0))
    zz = np.asarray(z, dtype=np.float64)[..., None]
    return special.ndtr((c - np.sqrt(rho) * zz) / np.sqrt(1.0 - rho))


def expected_matrix(ttc: np.ndarray | pd.DataFrame, rho: float, *, mean: float = 0.0, var: float = 1.0, n_nodes: int = 40) -> np.ndarray:
    """``E[M(Z)]`` for ``Z ~ N(mean, var)`` by Gauss-Hermite quadrature (z > 0 good year).

    For ``mean=0, var=1`` this reproduces the TTC matrix (to ~1e-12 with 40 nodes)."""
    p = _as_ttc(ttc)
    rho = check_rho(rho)
    x, w = gauss_hermite(n_nodes)
    m = conditional_raw(p, thresholds_raw(p), mean + np.sqrt(var) * x, rho)
    return np.tensordot(w, m, axes=1)


# ----------------------------------------------------------------------------- data handling
@dataclass(frozen=True)
class _BinnedData:
    """Counts by year, row (starting grade) and bin (destination, or default / survive)."""

    b: np.ndarray  # (R, J+1) thresholds
    counts: np.ndarray  # (T, R, J)
    years: pd.Index
    rows: tuple[str, ...]
    kind: str  # "matrix" or "default"


def _year_index(years: Sequence | pd.Index | None, n: int) -> pd.Index:
    if years is None:
        return pd.RangeIndex(n, name="year")
    idx = pd.Index(years, name="year")
    if len(idx) != n:
        raise DataError(f"years has {len(idx)} labels for {n} years of data")
    return idx


def _check_nonneg(a: np.ndarray, what: str, years: pd.Index) -> None:
    if not np.isfinite(a).all():
        bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
        raise DataError(f"{what} has NaN/inf in years {format_labels(years[bad])}")
    if (a < 0).any():
        bad = (a.reshape(a.shape[0], -1) < 0).any(axis=1)
        raise DataError(f"{what} has negative counts in years {format_labels(years[bad])}")


def _check_whole(a: np.ndarray, what: str, years: pd.Index, grades: Sequence[str] | None = None) -> None:
    """Counts of obligors / defaults / migrations must be whole numbers (2.5 defaults is a unit or
    weighting mistake): DataError naming the (year, grade) cells."""
    frac = a != np.round(a)
    if frac.any():
        cells = []
        for idx in np.argwhere(frac)[:10]:
            g = grades[idx[1]] if grades is not None and a.ndim == 2 else tuple(int(x) for x in idx[1:])
            cells.append((_plain(years[idx[0]]), g))
        raise DataError(f"{what} must be whole numbers; fractional in (year, grade) {format_labels(cells)}")


# ----------------------------------------------------------------------------- results
@dataclass
class ZFactorResult:
    """Fitted credit-cycle index and correlation (z > 0 is a good year).

    z_ : Series by year, the point estimate (MLE, MAP = posterior mode under Z ~ N(0,1), or WLS).
    z_se_ : Series, standard errors from the curvature of the objective (NaN at a bound).
    rho_ : float, asset/migration correlation; rho_se_ : float (NaN when rho was given or BSF).
    method : "mle" | "map" | "wls"; rho_method : "given" | "marginal" | "bsf".
    loglik_ : marginal log-likelihood at rho_ (constants dropped; NaN for WLS fits).
    at_bound_ : Series of bool, years whose estimate sits at +-z_bound.
    """

    z_: pd.Series
    z_se_: pd.Series
    rho_: float
    rho_se_: float
    method: str
    rho_method: str
    loglik_: float
    at_bound_: pd.Series
    kind: str
    grades: tuple[str, ...]
    z_bound: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Plain-text table of rho and Z_t (z > 0 = good year)."""
        lines = [
            "One-factor migration model (z > 0 = good year)",
            f"data: {self.kind} counts, grades {', '.join(self.grades)}; Z method: {self.method}; rho by {self.rho_method}",
            f"rho = {self.rho_:.4f}" + (f" (se {self.rho_se_:.4f})" if np.isfinite(self.rho_se_) else ""),
            f"marginal log-likelihood = {self.loglik_:.3f}" if np.isfinite(self.loglik_) else "",
            f"sample var(Z) = {self.z_.var(ddof=1):.3f}, mean(Z) = {self.z_.mean():.3f}",
            f"{'year':>6} {'Z':>8} {'se':>7}",
        ]
        for y in self.z_.index:
            flag = "  at bound" if self.at_bound_[y] else ""
            lines.append(f"{str(y):>6} {self.z_[y]:8.3f} {self.z_se_[y]:7.3f}{flag}")
        lines.extend(self.notes)
        return "\n".join(x for x in lines if x)


class ZFactorModel:
    """One-factor migration model; ``fit`` estimates Z_t per year and rho (z > 0 is a good year).

    Args:
        ttc: (K, K) TTC matrix (DataFrame or array, last state D), or a Series of TTC PDs by grade for
            default-only data, or None (default-only data: pooled default rates ``sum d / sum n``).
        rho: fixed correlation, or None to estimate it with ``rho_method``.
        rho_method: ``"marginal"`` (marginal ML: Z integrated out by adaptive Gauss-Hermite, each
            year's integral centred at its posterior mode; recommended) or ``"bsf"`` (BSF variance rule:
            rho such that the sample variance of Z_t is 1; raises DataError when it cannot be met).
        z_bound: search interval [-z_bound, z_bound] for Z_t.
        n_nodes: Gauss-Hermite nodes.

    Decisions: default method is ``"map"`` (the model's own N(0,1) prior), because with default-only
    data a zero-default year has no finite MLE; ``method="mle"``/``"wls"`` raise :class:`DataError`
    naming such years instead of returning the search bound silently.
    """

    def __init__(
        self,
        ttc: np.ndarray | pd.DataFrame | pd.Series | None = None,
        rho: float | None = None,
        *,
        rho_method: str = "marginal",
        z_bound: float = 5.0,
        n_nodes: int = 30,
    ) -> None:
        if rho is not None:
            check_rho(rho)
            if not rho > 0:
                raise ConfigError(f"rho must be > 0 to identify Z, got {rho}")
        if rho_method not in ("marginal", "bsf"):
            raise ConfigError(f"rho_method must be 'marginal' or 'bsf', got {rho_method!r}")
        if not (np.isfinite(z_bound) and 0 < z_bound <= 2 * Z_ABS_MAX):
            raise ConfigError(f"z_bound must be in (0, {2 * Z_ABS_MAX:g}] (Z is a standard normal), got {z_bound}")
        self.ttc = ttc
        self.rho = rho
        self.rho_method = rho_method
        self.z_bound = float(z_bound)
        self.n_nodes = check_count(n_nodes, "n_nodes", high=MAX_NODES)
        self.result_: ZFactorResult | None = None

    # ------------------------------------------------------------------ data preparation
    def _prepare(self, counts, matrices, obligors, defaults, years) -> _BinnedData:
        given = [x is not None for x in (counts, matrices, defaults)]
        if sum(given) != 1:
            raise ConfigError("fit needs exactly one of counts=, matrices= (+ obligors=) or defaults= (+ obligors=)")
        if defaults is not None:
            return self._prepare_defaults(defaults, obligors, years)
        if isinstance(self.ttc, pd.Series) or self.ttc is None:
            raise ConfigError("migration counts need a (K, K) TTC matrix as ttc")
        p = _as_ttc(self.ttc)
        k = p.shape[0]
        if counts is not None:
            if isinstance(counts, Mapping):
                years = list(counts.keys()) if years is None else years
                counts = np.stack([np.asarray(v, dtype=np.float64) for v in counts.values()])
            c = np.asarray(counts, dtype=np.float64)
            if c.ndim != 3 or c.shape[1:] != (k, k):
                raise DataError(f"counts must be (T, {k}, {k}) to match the {k}x{k} TTC matrix, got shape {c.shape}")
            yi = _year_index(years, c.shape[0])
            _check_nonneg(c, "counts", yi)
            # fractional migration counts are accepted on purpose (NR-adjusted counts, or annual
            # matrices x obligors as below): the multinomial log-likelihood is then a weighted one
        else:
            m = np.asarray(matrices, dtype=np.float64)
            if m.ndim != 3 or m.shape[1:] != (k, k):
                raise DataError(f"matrices must be (T, {k}, {k}) to match the TTC matrix, got shape {m.shape}")
            if obligors is None:
                raise ConfigError("matrices= needs obligors= (T, K-1) starting counts per grade")
            n = np.asarray(obligors, dtype=np.float64)
            if n.ndim != 2 or n.shape[0] != m.shape[0] or n.shape[1] not in (k - 1, k):
                raise DataError(f"obligors must be (T, {k - 1}) starting counts, got shape {n.shape}")
            yi = _year_index(years if years is not None else (obligors.index if isinstance(obligors, pd.DataFrame) else None), m.shape[0])
            _check_nonneg(n, "obligors", yi)
            _check_nonneg(m, "matrices", yi)
            bad = np.abs(m[:, :-1].sum(-1) - 1.0) > 1e-6
            bad &= n[:, : k - 1] > 0
            if bad.any():
                raise DataError(f"annual matrices: rows do not sum to 1 in years {format_labels(yi[bad.any(axis=1)])}")
            c = np.zeros_like(m)
            c[:, :-1] = m[:, :-1] * n[:, : k - 1, None]
        rows_c = c[:, :-1]
        impossible = (rows_c.sum(axis=0) > 0) & (p[:-1] == 0)
        if impossible.any():
            lab_all = [str(x) for x in self.ttc.index] if isinstance(self.ttc, pd.DataFrame) else list(_ordered_labels(k) or range(k))
            cells = [f"{lab_all[i]}->{lab_all[j]}" for i, j in np.argwhere(impossible)]
            raise DataError(
                f"counts observed in cells where the TTC matrix is 0 (the model gives them probability 0 for "
                f"every z): {format_labels(cells)}; use a TTC matrix estimated from these counts (ttc_matrix)"
            )
        empty = rows_c.sum(axis=(1, 2)) <= 0
        if empty.any():
            raise DataError(f"years with no obligors: {format_labels(yi[empty])}")
        lab = tuple(str(x) for x in self.ttc.index[:-1]) if isinstance(self.ttc, pd.DataFrame) else (_ordered_labels(k) or tuple(map(str, range(k))))[:-1]
        return _BinnedData(thresholds_raw(p), rows_c, yi, lab, "matrix")

    def _prepare_defaults(self, defaults, obligors, years) -> _BinnedData:
        if obligors is None:
            raise ConfigError("defaults= needs obligors= (same shape): obligors at the start of each year")
        if isinstance(defaults, pd.DataFrame):
            grades = tuple(str(c) for c in defaults.columns)
            yi = pd.Index(defaults.index, name="year") if years is None else _year_index(years, len(defaults))
            if isinstance(obligors, pd.DataFrame):
                if list(obligors.columns) != list(defaults.columns) or not obligors.index.equals(defaults.index):
                    raise DataError("defaults and obligors frames must have the same year index and grade columns")
            d = _numeric_counts(defaults, "defaults")
        else:
            d = _numeric_counts(defaults, "defaults")
            grades = tuple(str(i) for i in range(d.shape[1])) if d.ndim == 2 else ()
            yi = _year_index(years, d.shape[0])
        n = _numeric_counts(obligors, "obligors")
        if d.ndim != 2 or n.shape != d.shape:
            raise DataError(f"defaults and obligors must both be (T, G), got {d.shape} and {n.shape}")
        _check_order(grades, "default-count columns")
        _check_nonneg(d, "defaults", yi)
        _check_nonneg(n, "obligors", yi)
        _check_whole(d, "defaults", yi, grades)
        _check_whole(n, "obligors", yi, grades)
        over = (d > n).any(axis=1)
        if over.any():
            raise DataError(f"defaults exceed obligors in years {format_labels(yi[over])}")
        empty = n.sum(axis=1) <= 0
        if empty.any():
            raise DataError(f"years with no obligors: {format_labels(yi[empty])}")
        pdv = self._ttc_pd(grades, d, n)
        if ((pdv <= 0) | (pdv >= 1)).any():
            raise DataError(f"TTC PDs must be in (0, 1) for every grade, got {dict(zip(grades, pdv.round(6).tolist()))}")
        c = special.ndtri(pdv)
        b = np.stack([np.full_like(c, np.inf), c, np.full_like(c, -np.inf)], axis=1)  # (G, 3)
        counts = np.stack([n - d, d], axis=2)  # bins: survive (X > c), default (X <= c)
        return _BinnedData(b, counts, yi, grades, "default")

    def _ttc_pd(self, grades: tuple[str, ...], d: np.ndarray, n: np.ndarray) -> np.ndarray:
        if self.ttc is None:
            return d.sum(axis=0) / n.sum(axis=0)
        if isinstance(self.ttc, pd.Series):
            missing = [g for g in grades if g not in self.ttc.index]
            if missing:
                raise DataError(f"TTC PD series lacks grades {missing}")
            return self.ttc.reindex(list(grades)).to_numpy(dtype=np.float64)
        p = _as_ttc(self.ttc)
        lab = [str(x) for x in self.ttc.index] if isinstance(self.ttc, pd.DataFrame) else list(_ordered_labels(p.shape[0]) or [])
        alias = {"CCC/C": "CCC", "C": "CCC"}
        idx = []
        for g in grades:
            g2 = alias.get(g, g)
            if g2 not in lab:
                raise DataError(f"grade {g!r} of the default counts is not a row of the TTC matrix {lab}")
            idx.append(lab.index(g2))
        return p[idx, -1]

    # ------------------------------------------------------------------ objectives
    @staticmethod
    def _loglik(data: _BinnedData, z: np.ndarray, rho: float) -> np.ndarray:
        """Per-year log-likelihood on z (z > 0 = good year): z (T, G) -> (T, G). Multinomial constants dropped."""
        p = _bin_probs(data.b, z, rho)  # (T, G, R, J)
        lp = np.log(np.maximum(p, _P_FLOOR))
        n = data.counts[:, None]  # (T, 1, R, J)
        return np.where(n > 0, n * lp, 0.0).sum(axis=(-2, -1))

    @staticmethod
    def _wls(data: _BinnedData, z: np.ndarray, rho: float) -> np.ndarray:
        """BSF chi-square distance per year (to minimise): z (T, G) -> (T, G); z > 0 is a good year."""
        p = _bin_probs(data.b, z, rho)
        n_row = data.counts.sum(axis=-1)  # (T, R)
        with np.errstate(invalid="ignore", divide="ignore"):
            phat = np.where(n_row[..., None] > 0, data.counts / np.where(n_row > 0, n_row, 1.0)[..., None], 0.0)
            var = p * (1.0 - p)
            ok = var > 1e-300
            w = np.where(ok, n_row[:, None, :, None] / np.where(ok, var, 1.0), 0.0)
        return (w * (phat[:, None] - p) ** 2).sum(axis=(-2, -1))

    def _objective(self, data: _BinnedData, method: str, rho: float):
        if method == "mle":
            return lambda z: -self._loglik(data, z, rho)
        if method == "map":
            return lambda z: -self._loglik(data, z, rho) + 0.5 * z**2
        return lambda z: self._wls(data, z, rho)

    def _argmin_z(self, f, n_years: int) -> np.ndarray:
        """Vectorised over years: grid search then golden-section refinement on [-bound, bound]."""
        zb = self.z_bound
        grid = np.linspace(-zb, zb, 201)
        vals = f(np.broadcast_to(grid, (n_years, grid.size)))
        k = np.argmin(vals, axis=1)
        h = grid[1] - grid[0]
        lo = np.clip(grid[k] - h, -zb, zb)
        hi = np.clip(grid[k] + h, -zb, zb)
        g = (np.sqrt(5.0) - 1.0) / 2.0
        for _ in range(48):
            c = hi - g * (hi - lo)
            d = lo + g * (hi - lo)
            fc, fd = f(np.stack([c, d], axis=1)).T
            left = fc < fd
            hi = np.where(left, d, hi)
            lo = np.where(left, lo, c)
        return 0.5 * (lo + hi)

    def _curvature(self, f, z: np.ndarray, h: float = 1e-3) -> np.ndarray:
        """Second difference of a per-year objective at z (T,) (z > 0 = good year) -> (T,)."""
        v = f(np.stack([z - h, z, z + h], axis=1))
        return (v[:, 0] - 2.0 * v[:, 1] + v[:, 2]) / h**2

    def _fit_z(self, data: _BinnedData, method: str, rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self._objective(data, method, rho)
        z = self._argmin_z(f, len(data.years))
        at_bound = np.abs(z) > self.z_bound - 1e-6
        curv = self._curvature(f, z)
        if method == "wls":
            # Gauss-Newton: chi-square ~ 2 x negative log-likelihood near the optimum
            curv = curv / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.where((curv > 0) & ~at_bound, 1.0 / np.sqrt(np.where(curv > 0, curv, 1.0)), np.nan)
        return z, se, at_bound

    def _marginal_loglik(self, data: _BinnedData, rho: float) -> float:
        """log prod_t int L_t(z) phi(z) dz by adaptive Gauss-Hermite centred at each posterior mode
        (z > 0 is a good year; the integral does not depend on the sign convention)."""
        f = self._objective(data, "map", rho)  # = -(loglik + log phi) up to a constant
        zhat = self._argmin_z(f, len(data.years))
        curv = np.maximum(self._curvature(f, zhat), 1e-8)
        sig = 1.0 / np.sqrt(curv)
        x, w = gauss_hermite(self.n_nodes)
        nodes = zhat[:, None] + sig[:, None] * x[None, :]
        h = self._loglik(data, nodes, rho) - 0.5 * nodes**2 - 0.5 * np.log(2 * np.pi)
        log_phi_x = -0.5 * x**2 - 0.5 * np.log(2 * np.pi)
        terms = np.log(w)[None, :] + h - log_phi_x[None, :]
        return float((np.log(sig) + special.logsumexp(terms, axis=1)).sum())

    def _rho_marginal(self, data: _BinnedData) -> tuple[float, float, float]:
        lo, hi = RHO_BOUNDS
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), 25))
        vals = np.array([self._marginal_loglik(data, r) for r in grid])
        k = int(np.argmax(vals))
        a = grid[max(k - 1, 0)]
        b = grid[min(k + 1, grid.size - 1)]
        res = optimize.minimize_scalar(lambda r: -self._marginal_loglik(data, r), bounds=(a, b), method="bounded", options={"xatol": 1e-6})
        rho = float(res.x)
        ll = -float(res.fun)
        hstep = max(1e-4, 0.02 * rho)
        if rho - hstep > lo and rho + hstep < hi:
            l2 = (self._marginal_loglik(data, rho + hstep) - 2 * ll + self._marginal_loglik(data, rho - hstep)) / hstep**2
            se = 1.0 / np.sqrt(-l2) if l2 < 0 else np.nan
        else:
            se = np.nan
        return rho, float(se), ll

    def _rho_bsf(self, data: _BinnedData, method: str) -> tuple[float, list[str]]:
        lo, hi = RHO_BOUNDS
        # a year unbounded even at the largest rho is unbounded for every rho (zero defaults)
        _, _, ab_hi = self._fit_z(data, method, hi)
        if ab_hi.any():
            raise DataError(
                f"BSF variance rule cannot be met: Z is unbounded (at +-{self.z_bound}) in years "
                f"{format_labels(data.years[ab_hi])} for every rho (no finite {method.upper()}, e.g. a year "
                "with zero defaults); use rho_method='marginal' or method='map'"
            )
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), 30))
        var = []
        for r in grid:
            z, _, ab = self._fit_z(data, method, r)
            # small rho can push Z past the search bound: the variance is then certainly > 1
            var.append(np.inf if ab.any() else np.var(z, ddof=1))
        v = np.array(var) - 1.0
        cross = np.flatnonzero((v[:-1] > 0) & (v[1:] <= 0))
        if cross.size == 0:
            raise DataError(
                "BSF variance rule cannot be met: sample var(Z_t) never crosses 1 for rho in "
                f"[{lo}, {hi}] (var = {var[0]:.3g} at rho={lo}, {var[-1]:.3g} at rho={hi}); "
                "use rho_method='marginal'"
            )
        i = int(cross[-1])

        def g(r: float) -> float:
            return float(np.var(self._fit_z(data, method, r)[0], ddof=1) - 1.0)

        rho = optimize.brentq(g, grid[i], grid[i + 1], xtol=1e-6)
        return float(rho), [f"BSF rule: var(Z_t) = 1 at rho = {rho:.4f}"]

    # ------------------------------------------------------------------ public
    def fit(
        self,
        counts: np.ndarray | Mapping | None = None,
        *,
        matrices: np.ndarray | None = None,
        obligors: np.ndarray | pd.DataFrame | None = None,
        defaults: np.ndarray | pd.DataFrame | None = None,
        years: Sequence | None = None,
        method: str = "map",
    ) -> ZFactorResult:
        """Estimate Z_t (z > 0 = good year) and rho.

        Data (exactly one form): ``counts`` (T, K, K) migration counts (or a dict year -> (K, K);
        fractional counts, e.g. NR-adjusted, are accepted as weights; default-only ``defaults`` /
        ``obligors`` must be whole numbers);
        ``matrices`` (T, K, K) annual matrices + ``obligors`` (T, K-1) starting counts; or
        ``defaults`` + ``obligors`` (T, G) default-only data (DataFrames with a year index and grade
        columns best -> worst, or arrays with ``years``). ``method``: "mle" (multinomial/binomial
        ML), "map" (ML plus the N(0, 1) prior: posterior mode, always finite) or "wls" (BSF
        chi-square with binomial-variance weights). Returns a :class:`ZFactorResult` (also kept as
        ``self.result_``).
        """
        if method not in ("mle", "map", "wls"):
            raise ConfigError(f"method must be 'mle', 'map' or 'wls', got {method!r}")
        data = self._prepare(counts, matrices, obligors, defaults, years)
        notes: list[str] = []
        rho_se, ll = np.nan, np.nan
        if self.rho is None and len(data.years) < MIN_YEARS_FOR_RHO:
            raise DataError(
                f"estimating rho needs at least {MIN_YEARS_FOR_RHO} years of data, got {len(data.years)} "
                f"({format_labels(list(data.years))}); pass rho= to fix it and estimate Z_t only"
            )
        if self.rho is not None:
            rho, rho_method = float(self.rho), "given"
        elif self.rho_method == "marginal":
            rho, rho_se, ll = self._rho_marginal(data)
            rho_method = "marginal"
        else:
            rho, notes = self._rho_bsf(data, method)
            rho_method = "bsf"
        if rho_method != "given":
            note = _rho_bound_note(rho)
            if note:
                warnings.warn(note, RuntimeWarning, stacklevel=2)
                notes.append(note)
        z, se, at_bound = self._fit_z(data, method, rho)
        if at_bound.any() and method in ("mle", "wls"):
            raise DataError(
                f"no finite {method.upper()} for Z in years {format_labels(data.years[at_bound])} (e.g. zero "
                f"defaults in every grade push Z to +{self.z_bound}); use method='map'"
            )
        if not np.isfinite(ll) and method != "wls":
            ll = self._marginal_loglik(data, rho)
        res = ZFactorResult(
            z_=pd.Series(z, index=data.years, name="z"),
            z_se_=pd.Series(se, index=data.years, name="z_se"),
            rho_=rho,
            rho_se_=rho_se,
            method=method,
            rho_method=rho_method,
            loglik_=ll,
            at_bound_=pd.Series(at_bound, index=data.years, name="at_bound"),
            kind=data.kind,
            grades=data.rows,
            z_bound=self.z_bound,
            notes=notes,
        )
        self.result_ = res
        return res

    def conditional_matrices(self) -> np.ndarray:
        """(T, K, K) conditional matrices ``M(z_t)`` at the fitted Z_t and rho (matrix ``ttc`` only).

        z > 0 is a good year: years with Z_t > 0 get fewer downgrades and defaults than TTC."""
        if self.result_ is None:
            raise NotFittedError("ZFactorModel.conditional_matrices needs fit() first")
        if self.ttc is None or isinstance(self.ttc, pd.Series):
            raise ConfigError("conditional_matrices needs a (K, K) TTC matrix as ttc")
        return conditional_matrix(self.ttc, self.result_.z_.to_numpy(), self.result_.rho_)
