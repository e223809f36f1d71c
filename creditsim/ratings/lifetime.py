"""Lifetime PD term structures: TTC, Z paths, scenario weighting, macro link, monthly matrices.

Conventions: annual matrices ``(..., K, K)`` (last state D absorbing), the start distribution is a
row vector on the left, so ``P(0, T) = M_1 @ M_2 @ ... @ M_T``. Cumulative PD of grade i at year T
is ``P(0, T)[i, D]``; marginal PD ``PD(T) - PD(T-1)``; conditional (hazard) PD
``(PD(T) - PD(T-1)) / (1 - PD(T-1))``. All PDs are decimals. **z > 0 is a good year** everywhere.

Scenario weighting follows IFRS 9 §5.5.17: weight *outcomes* (cumulative PDs), never matrices.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditsim.datasets.macro import load_macro_history
from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import CheckpointError, ConfigError, DataError, NotFittedError, format_labels
from creditsim.schema import monthly_index
from creditsim.ratings.estimate import monthly_matrix, validate_matrix
from creditsim.ratings.limits import MAX_YEARS, check_count, check_memory
from creditsim.ratings.zfactor import ZFactorModel, conditional_raw, thresholds_raw, check_rho
from creditsim.states import GRADES_7, GRADES_8, MACRO_VARS

__all__ = [
    "PDTermStructure",
    "ttc_term_structure",
    "matrices_term_structure",
    "path_term_structure",
    "scenario_weighted",
    "annualise_macro",
    "ZMacroLink",
    "DEFAULT_LINK_VARIABLES",
    "monthly_scenario_matrices",
    "scenario_annual_matrices",
    "monthly_pd_curves",
    "Z_LIMIT",
    "bounded_z",
]


#: default regressors of :class:`ZMacroLink` (see its docstring for the choice)
DEFAULT_LINK_VARIABLES: tuple[str, ...] = ("gdp_growth", "credit_spread_hy")

#: the default link's coefficients fitted on the bundled history (``python -m creditsim.ratings.lifetime``,
#: part of ``make pretrained``): used where the HY spread history, which may not be shipped, is missing
log = logging.getLogger(__name__)
BUNDLED_LINK_FILE = Path(__file__).resolve().parents[1] / "pretrained" / "z_macro_link.json"


def _labels(k: int) -> tuple[str, ...]:
    lab = GRADES_8 if k == 8 else GRADES_7 if k == 7 else tuple(str(i) for i in range(k))
    return tuple(lab[:-1])


@dataclass(frozen=True)
class PDTermStructure:
    """Cumulative PD term structure, ``cumulative`` shape ``(..., T, G)`` decimals: year t = 1..T
    (row t-1), G = non-default start grades. ``marginal`` and ``conditional`` (hazard) derive from it."""

    cumulative: np.ndarray
    grades: tuple[str, ...]

    @property
    def marginal(self) -> np.ndarray:
        """Unconditional probability of default in year t: ``PD(t) - PD(t-1)``, same shape."""
        c = self.cumulative
        prev = np.concatenate([np.zeros_like(c[..., :1, :]), c[..., :-1, :]], axis=-2)
        return c - prev

    @property
    def conditional(self) -> np.ndarray:
        """Hazard (forward PD): default in year t given survival to t-1, same shape."""
        c = self.cumulative
        prev = np.concatenate([np.zeros_like(c[..., :1, :]), c[..., :-1, :]], axis=-2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(prev < 1.0, (c - prev) / np.where(prev < 1.0, 1.0 - prev, 1.0), 1.0)

    def to_frame(self, kind: str = "cumulative") -> pd.DataFrame:
        """(T, G) frame with a ``year`` index 1..T; only for a single term structure."""
        arr = {"cumulative": self.cumulative, "marginal": self.marginal, "conditional": self.conditional}.get(kind)
        if arr is None:
            raise ConfigError(f"kind must be cumulative, marginal or conditional, got {kind!r}")
        if arr.ndim != 2:
            raise ConfigError(f"to_frame needs a single term structure (T, G), got shape {arr.shape}")
        return pd.DataFrame(arr, index=pd.RangeIndex(1, arr.shape[0] + 1, name="year"), columns=list(self.grades))


def _check_years(n_years: int, param: str = "n_years", per_year: int = 1) -> int:
    """Horizon as an int in ``1..MAX_YEARS * per_year`` (``per_year`` = 12 for months); ConfigError
    naming ``param`` otherwise (a 1e8-year horizon is a unit mistake, not a projection)."""
    unit = " (years)" if per_year == 1 else f" ({per_year} steps a year, at most {MAX_YEARS} years)"
    return check_count(n_years, param, high=MAX_YEARS * per_year, unit=unit)


def ttc_term_structure(ttc: np.ndarray | pd.DataFrame, n_years: int) -> PDTermStructure:
    """Homogeneous Markov term structure ``P^T`` for T = 1..n_years (one product per year).
    ``ttc`` (K, K) annual. Returns cumulative (n_years, K-1)."""
    p = validate_matrix(ttc, name="TTC matrix")
    n = _check_years(n_years)
    k = p.shape[0]
    out = np.empty((n, k - 1))
    acc = np.eye(k)
    for t in range(n):
        acc = acc @ p
        out[t] = acc[:-1, -1]
    return PDTermStructure(out, _labels(k))


def matrices_term_structure(mats: np.ndarray, *, ttc: np.ndarray | None = None, n_years: int | None = None) -> PDTermStructure:
    """Term structure of a time-inhomogeneous chain: ``mats`` ``(..., H, K, K)`` annual (or
    per-period) matrices; years after H use ``ttc`` up to ``n_years`` (reversion to TTC). Returns
    cumulative ``(..., n_years, K-1)``; vectorised over leading axes (one batched product per year)."""
    m = np.asarray(mats, dtype=np.float64)
    if m.ndim < 3 or m.shape[-1] != m.shape[-2]:
        raise DataError(f"mats must be (..., H, K, K), got shape {m.shape}")
    h, k = m.shape[-3], m.shape[-1]
    n = h if n_years is None else _check_years(n_years)
    if n > h and ttc is None:
        raise ConfigError(f"n_years={n} exceeds the {h} given matrices: pass ttc to revert to after year {h}")
    p = validate_matrix(ttc, name="TTC matrix", n_states=k) if ttc is not None else None
    lead = m.shape[:-3]
    check_memory(8.0 * int(np.prod(lead, dtype=np.int64)) * (n * (k - 1) + 2 * k * k), "n_years", f"{n} years x {int(np.prod(lead, dtype=np.int64))} paths")
    acc = np.broadcast_to(np.eye(k), lead + (k, k)).copy()
    out = np.empty(lead + (n, k - 1))
    for t in range(n):
        acc = acc @ (m[..., t, :, :] if t < h else p)
        out[..., t, :] = acc[..., :-1, -1]
    return PDTermStructure(out, _labels(k))


def path_term_structure(
    ttc: np.ndarray | pd.DataFrame,
    z_paths: np.ndarray,
    rho: float,
    *,
    n_years: int | None = None,
    horizon: int | None = None,
    residual_var: float = 0.0,
) -> PDTermStructure:
    """Term structure along credit-cycle paths (z > 0 = good year).

    ``z_paths`` ``(H,)`` or ``(S, H)`` annual Z values; years 1..min(H, horizon) use
    ``M(z_t)`` (with ``residual_var`` integrated when the Z are forecasts), later years revert to the
    TTC matrix (exact in expectation for independent years: ``E[prod M(Z_t)] = TTC^n``). Returns
    cumulative ``(n_years, K-1)`` or ``(S, n_years, K-1)``. 10,000 paths x 30 years in ~0.5 s.

    Any finite z is accepted here, because Gauss-Hermite nodes used to integrate over Z reach
    |z| ~ 11 (40 nodes); user-typed paths are bounded by ``Z_ABS_MAX`` = 8 at the CLI edge.
    """
    p = validate_matrix(ttc, name="TTC matrix")
    rho = check_rho(rho, residual_var)
    z = np.asarray(z_paths, dtype=np.float64)
    if z.ndim not in (1, 2) or z.shape[-1] < 1:
        raise DataError(f"z_paths must be (H,) or (S, H), got shape {z.shape}")
    if not np.isfinite(z).all():
        bad = np.argwhere(~np.isfinite(z.reshape(-1, z.shape[-1])))[:10]
        raise DataError(f"z_paths contains NaN/inf at (path, year) {format_labels([(int(i), int(t) + 1) for i, t in bad])} (year 1 = first)")
    h = z.shape[-1] if horizon is None else min(_check_years(horizon, "horizon"), z.shape[-1])
    if h > MAX_YEARS:
        raise ConfigError(f"z_paths: {h} years of Z exceed the {MAX_YEARS}-year limit; give a shorter path or horizon=")
    n_out = h if n_years is None else _check_years(n_years)
    k = p.shape[0]
    n_paths = int(np.prod(z.shape[:-1], dtype=np.int64))
    # conditional matrices plus two threshold-sized temporaries of _bin_probs, and the output curves
    check_memory(8.0 * n_paths * (3 * h * k * (k + 1) + n_out * k), "z_paths", f"{n_paths} paths x {h} years of {k}x{k} matrices")
    mats = conditional_raw(p, thresholds_raw(p), z[..., :h], rho, residual_var)
    return matrices_term_structure(mats, ttc=p, n_years=n_out)


def scenario_weighted(structures: Sequence[PDTermStructure], weights: Sequence[float]) -> PDTermStructure:
    """Probability-weighted term structure: ``sum_s w_s PD_s(T)`` of *outcomes* (cumulative PDs),
    not of matrices (``prod_t sum_s w_s M_s,t`` is biased). Weights must be >= 0 and sum to 1."""
    w = np.asarray(weights, dtype=np.float64)
    if len(structures) != len(w) or len(w) == 0:
        raise ConfigError(f"need one weight per scenario: {len(structures)} term structures, {len(w)} weights")
    if (w < 0).any() or abs(w.sum() - 1.0) > 1e-9:
        raise ConfigError(f"scenario weights must be >= 0 and sum to 1, got {w.tolist()}")
    shapes = {s.cumulative.shape for s in structures}
    if len(shapes) != 1:
        raise DataError(f"term structures have different shapes {sorted(shapes)}")
    cum = np.tensordot(w, np.stack([s.cumulative for s in structures]), axes=1)
    return PDTermStructure(cum, structures[0].grades)


# ----------------------------------------------------------------------------- macro link
def annualise_macro(macro: np.ndarray | pd.DataFrame, *, months_per_year: int = 12) -> np.ndarray | pd.DataFrame:
    """Annual averages of monthly macro data.

    Array ``(S, T, V)`` or ``(T, V)`` monthly -> ``(S, ceil(T/12), V)`` means over consecutive 12-month
    blocks (month 0 starts year 1; a partial last block is averaged over its months). A DataFrame
    with a DatetimeIndex -> calendar-year means with an integer ``year`` index.
    """
    if isinstance(macro, pd.DataFrame):
        if not isinstance(macro.index, pd.DatetimeIndex):
            raise DataError("macro frame must have a DatetimeIndex (monthly) to be annualised")
        # duplicate months or gaps would skew the yearly means silently: one row per consecutive month
        macro = macro.set_axis(monthly_index(macro.index, "macro frame"), axis=0)
        out = macro.groupby(macro.index.year).mean()
        out.index = pd.Index(out.index.astype(np.int64), name="year")
        return out
    a = np.asarray(macro, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise DataError(f"macro paths must be (T, V) or (S, T, V), got shape {a.shape}")
    t = a.shape[-2]
    ny = -(-t // months_per_year)
    pad = ny * months_per_year - t
    if pad:
        padded = np.concatenate([a, np.full(a.shape[:-2] + (pad, a.shape[-1]), np.nan)], axis=-2)
    else:
        padded = a
    blocks = padded.reshape(a.shape[:-2] + (ny, months_per_year, a.shape[-1]))
    return np.nanmean(blocks, axis=-2)


class ZMacroLink:
    """Satellite model ``Z_t = alpha + beta' x_t + e_t``, ``e_t ~ N(0, resid_var_)`` (z > 0 = good year).

    ``x_t`` are annual averages of the chosen macro variables (decimals). The expected conditional
    matrix under a scenario with forecast mean ``mu`` integrates the residual (RATINGS.md §2)::

        M_s[i, j] = Phi((b[i, j] - sqrt(rho) mu) / sqrt(1 - rho + rho resid_var)) - (same at j+1)

    Plugging ``mu`` into ``M(z)`` would ignore residual risk; this library integrates it by default.

    Parameters: ``variables`` (subset of MACRO_VARS, default :data:`DEFAULT_LINK_VARIABLES` =
    gdp_growth and credit_spread_hy: on the bundled 1981-2000 data both have the expected sign and
    the pair gives the best fit of the two-variable sets tried, R^2 0.20 vs 0.14 for gdp_growth +
    unemployment_rate, whose level coefficient came out with the wrong sign; note the HY spread is
    back-filled by regression before 1997 in :func:`creditsim.datasets.load_macro_history`),
    ``ttc`` (K, K) and ``rho``: the matrix and correlation used by :meth:`scenario_matrices`.
    Fitted attributes: ``intercept_``, ``coef_`` (Series by variable), ``resid_var_``, ``r2_``,
    ``se_`` (coefficient standard errors), ``years_``, ``n_obs_``.
    """

    def __init__(
        self,
        variables: Sequence[str] | None = None,
        *,
        ttc: np.ndarray | pd.DataFrame | None = None,
        rho: float | None = None,
    ) -> None:
        vs = tuple(variables) if variables is not None else DEFAULT_LINK_VARIABLES
        unknown = [v for v in vs if v not in MACRO_VARS]
        if unknown or not vs:
            raise ConfigError(f"unknown macro variables {unknown}; expected a non-empty subset of {list(MACRO_VARS)}")
        self.variables = vs
        self.ttc = ttc
        self.rho = None if rho is None else check_rho(rho)
        self.coef_: pd.Series | None = None

    def fit(self, z_series: pd.Series, macro_frame: pd.DataFrame) -> "ZMacroLink":
        """OLS of Z (Series by integer year) on annualised macro variables; keeps the residual variance
        (unbiased, ``n - p - 1`` degrees of freedom). ``macro_frame``: monthly with a DatetimeIndex
        (annualised by calendar-year means) or annual with an integer year index. z > 0 is a good
        year, so a coefficient > 0 means the variable is higher in good years (e.g. GDP growth)."""
        if not isinstance(z_series, pd.Series):
            raise DataError("z_series must be a pandas Series indexed by year")
        if not isinstance(macro_frame, pd.DataFrame):
            raise DataError("macro_frame must be a pandas DataFrame")
        missing = [v for v in self.variables if v not in macro_frame.columns]
        if missing:
            raise DataError(f"macro_frame lacks columns {missing}")
        annual = annualise_macro(macro_frame[list(self.variables)]) if isinstance(macro_frame.index, pd.DatetimeIndex) else macro_frame[list(self.variables)]
        z = z_series.astype(np.float64)
        z.index = pd.Index(z.index.astype(np.int64), name="year")
        joined = pd.concat([z.rename("__z"), annual], axis=1, join="inner").dropna()
        p = len(self.variables)
        if len(joined) < p + 3:
            raise DataError(f"only {len(joined)} years with both Z and macro data; need at least {p + 3} for {p} variables")
        y = joined["__z"].to_numpy()
        x = np.column_stack([np.ones(len(joined)), joined[list(self.variables)].to_numpy()])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ beta
        dof = len(y) - x.shape[1]
        s2 = float(resid @ resid / dof)
        cov = s2 * np.linalg.inv(x.T @ x)
        self.intercept_ = float(beta[0])
        self.coef_ = pd.Series(beta[1:], index=list(self.variables), name="coef")
        self.se_ = pd.Series(np.sqrt(np.diag(cov)), index=["intercept", *self.variables], name="se")
        self.resid_var_ = s2
        tss = float(((y - y.mean()) ** 2).sum())
        self.r2_ = 1.0 - float(resid @ resid) / tss if tss > 0 else np.nan
        self.years_ = pd.Index(joined.index, name="year")
        self.n_obs_ = len(y)
        return self

    def _check_fitted(self) -> None:
        if self.coef_ is None:
            raise NotFittedError("ZMacroLink must be fitted (fit or from_bundled) first")

    def predict(self, macro_annual: np.ndarray | pd.DataFrame) -> np.ndarray | pd.Series:
        """Forecast mean of Z from annual macro values: array ``(..., 9)`` in MACRO_VARS order, or a
        frame with the link's variables -> ``(...)`` / Series. z > 0 is a good year."""
        self._check_fitted()
        if isinstance(macro_annual, pd.DataFrame):
            missing = [v for v in self.variables if v not in macro_annual.columns]
            if missing:
                raise DataError(f"macro frame lacks columns {missing}")
            return self.intercept_ + macro_annual[list(self.variables)] @ self.coef_
        a = np.asarray(macro_annual, dtype=np.float64)
        if a.shape[-1] != len(MACRO_VARS):
            raise DataError(f"macro array last axis must be the {len(MACRO_VARS)} MACRO_VARS, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise DataError("macro array contains NaN/inf")
        idx = [MACRO_VARS.index(v) for v in self.variables]
        return self.intercept_ + a[..., idx] @ self.coef_.to_numpy()

    def _ttc_rho(self, ttc, rho) -> tuple[np.ndarray, float]:
        t = ttc if ttc is not None else self.ttc
        r = rho if rho is not None else self.rho
        if t is None or r is None:
            raise ConfigError("scenario matrices need ttc and rho (pass them here or to ZMacroLink)")
        return validate_matrix(t, name="TTC matrix"), check_rho(r)

    def scenario_matrices(
        self,
        macro_paths: np.ndarray,
        *,
        ttc: np.ndarray | pd.DataFrame | None = None,
        rho: float | None = None,
        frequency: str = "annual",
        include_residual: bool = True,
        z_shocks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Annual conditional matrices for macro paths (z > 0 = good year).

        ``macro_paths``: ``(S, Y, 9)`` annual (``frequency="annual"``) or ``(S, T, 9)`` monthly
        (``"monthly"``: averaged over 12-month blocks to ``Y = ceil(T/12)`` years), MACRO_VARS order,
        decimals. Returns ``(S, Y, K, K)``. Z mean ``mu = predict(x)``; by default the residual
        ``N(0, resid_var_)`` is integrated (expected matrix given the macro path). With ``z_shocks``
        (standard normal draws ``(S, Y)``, seeded by the caller) a residual is *sampled* instead:
        ``Z = mu + sqrt(resid_var_) * shock`` and ``M(Z)`` is returned.
        """
        self._check_fitted()
        p, r = self._ttc_rho(ttc, rho)
        a = np.asarray(macro_paths, dtype=np.float64)
        if a.ndim != 3:
            raise DataError(f"macro_paths must be (S, T, {len(MACRO_VARS)}), got shape {a.shape}")
        if frequency == "monthly":
            a = annualise_macro(a)
        elif frequency != "annual":
            raise ConfigError(f"frequency must be 'annual' or 'monthly', got {frequency!r}")
        mu = self.predict(a)  # (S, Y)
        b = thresholds_raw(p)
        if z_shocks is not None:
            e = np.asarray(z_shocks, dtype=np.float64)
            if e.shape != mu.shape:
                raise DataError(f"z_shocks must have shape {mu.shape} (S, Y), got {e.shape}")
            return conditional_raw(p, b, bounded_z(mu + np.sqrt(self.resid_var_) * e), r)
        return conditional_raw(p, b, bounded_z(mu), r, self.resid_var_ if include_residual else 0.0)

    @classmethod
    def from_bundled(
        cls,
        variables: Sequence[str] | None = None,
        *,
        ttc: np.ndarray | pd.DataFrame | None = None,
        refit: bool = False,
    ) -> "ZMacroLink":
        """The link fitted on S&P and macro history: Z_t (MAP, rho by marginal ML) from the S&P 1981-2000
        default counts (grades A..CCC, TTC PDs = pooled default rates), regressed on calendar-year averages
        of :func:`creditsim.datasets.load_macro_history` (1981-2000). The returned link carries ``ttc``
        (default: the bundled S&P 8x8) and ``rho`` = the fitted rho. z > 0 is a good year (Z_t < 0 in
        1990-91 and 1999-2000).

        The default link (``variables`` None or :data:`DEFAULT_LINK_VARIABLES`) is read from
        :data:`BUNDLED_LINK_FILE`, this project's stored fit (rho, coefficients; ``z_result_`` None):
        the counts (``SP-COUNTS``) and the HY spread history are restricted data (issue 18), and a stored
        fit gives every machine the same numbers whatever copy of them it holds. ``refit=True``, or
        other ``variables``, fits afresh (the restricted files must be on this machine; one-line
        :class:`RestrictedDataMissing` otherwise) and sets ``z_result_``; :func:`write_bundled_link`
        regenerates the file that way, and a test checks the two agree.
        """
        ttc = load_sp_ratings().matrix_8x8 if ttc is None else ttc
        link = cls(variables, ttc=ttc)
        if not refit and link.variables == DEFAULT_LINK_VARIABLES:
            params = json.loads(BUNDLED_LINK_FILE.read_text(encoding="utf-8"))
            link.rho = check_rho(params["rho"])
            link._set_fit(params)
            link.z_result_ = None
            log.info("rating link: the stored fit %s (rho %.4f)", BUNDLED_LINK_FILE.name, link.rho)
            return link
        res = _bundled_z_fit()
        link.rho = check_rho(res.rho_)
        link.fit(res.z_, load_macro_history(start="1981-01", end="2000-12"))
        link.z_result_ = copy.deepcopy(res)  # the cached fit stays untouched
        return link

    def fit_parameters(self) -> dict[str, Any]:
        """The fitted coefficients as plain JSON-able values (what :data:`BUNDLED_LINK_FILE` holds)."""
        self._check_fitted()
        return {"variables": list(self.variables), "intercept": self.intercept_, "coef": self.coef_.tolist(),
                "se": self.se_.tolist(), "resid_var": self.resid_var_, "r2": self.r2_,
                "years": [int(y) for y in self.years_], "n_obs": int(self.n_obs_)}

    def _set_fit(self, params: dict[str, Any]) -> None:
        """Restore fitted coefficients written by :meth:`fit_parameters`."""
        if tuple(params["variables"]) != tuple(self.variables):
            raise CheckpointError(f"{BUNDLED_LINK_FILE}: fitted on {params['variables']}, the link uses "
                                  f"{list(self.variables)}; regenerate it (`make pretrained`)")
        self.intercept_ = float(params["intercept"])
        self.coef_ = pd.Series(params["coef"], index=list(self.variables), name="coef", dtype=np.float64)
        self.se_ = pd.Series(params["se"], index=["intercept", *self.variables], name="se", dtype=np.float64)
        self.resid_var_ = float(params["resid_var"])
        self.r2_ = float(params["r2"])
        self.years_ = pd.Index(params["years"], name="year")
        self.n_obs_ = int(params["n_obs"])

    def summary(self) -> str:
        """Coefficient table of the fitted link."""
        self._check_fitted()
        rows = [f"Z = a + b'x + e  (z > 0 good year), n = {self.n_obs_}, R^2 = {self.r2_:.3f}, resid var = {self.resid_var_:.4f}"]
        rows.append(f"  {'intercept':<20} {self.intercept_:9.4f} (se {self.se_['intercept']:.4f})")
        for v in self.variables:
            rows.append(f"  {v:<20} {self.coef_[v]:9.4f} (se {self.se_[v]:.4f})")
        return "\n".join(rows)


@lru_cache(maxsize=1)
def _bundled_z_fit():
    """Z_t (MAP; z > 0 = good year) and rho (marginal ML) on the S&P 1981-2000 default
    counts, computed once."""
    sp = load_sp_ratings()
    return ZFactorModel().fit(defaults=sp.defaults, obligors=sp.obligors, method="map")


def monthly_scenario_matrices(
    macro_paths: np.ndarray,
    link: ZMacroLink,
    ttc_8x8: np.ndarray | pd.DataFrame | None = None,
    rho: float | None = None,
    *,
    include_residual: bool = True,
    z_shocks: np.ndarray | None = None,
    method: str = "diagonal",
) -> np.ndarray:
    """Monthly rating matrices along monthly macro paths, for the portfolio simulation.

    ``macro_paths``: ``(S, T, 9)`` monthly, MACRO_VARS order, decimals (month 0 = first month after
    the cut-off). Steps: annualise each 12-month block (year y = months 12y..12y+11) -> forecast
    ``Z`` with ``link`` (z > 0 good year) -> annual conditional 8x8 ``M_y`` (residual variance
    integrated unless ``z_shocks`` (S, Y) standard normals are given) -> monthly matrix
    ``expm(log(M_y) / 12)`` (:func:`monthly_matrix`, regularised generator) used for every month of
    year y. ``ttc_8x8``/``rho`` default to the link's. Returns ``(S, T, 8, 8)`` float64, rows
    stochastic, D absorbing; ``prod`` of the 12 monthly matrices of a year reproduces ``M_y`` up to
    the embedding distance.
    """
    annual = scenario_annual_matrices(macro_paths, link, ttc_8x8, rho, include_residual=include_residual,
                                      z_shocks=z_shocks)
    s, ny = annual.shape[:2]
    monthly = monthly_matrix(annual.reshape(-1, 8, 8), method=method).reshape(s, ny, 8, 8)
    year_of_month = np.arange(np.asarray(macro_paths).shape[1]) // 12
    return monthly[:, year_of_month]


def scenario_annual_matrices(
    macro_paths: np.ndarray,
    link: ZMacroLink,
    ttc_8x8: np.ndarray | pd.DataFrame | None = None,
    rho: float | None = None,
    *,
    include_residual: bool = True,
    z_shocks: np.ndarray | None = None,
) -> np.ndarray:
    """The annual Z-conditional 8x8 matrices ``(S, Y, 8, 8)`` of :func:`monthly_scenario_matrices` (year
    y = months 12y..12y+11 of each path; z > 0 is a good year), before their monthly root; same
    arguments and checks."""
    a = np.asarray(macro_paths, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != len(MACRO_VARS):
        raise DataError(f"macro_paths must be (S, T, {len(MACRO_VARS)}) monthly, got shape {a.shape}")
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[:10]
        raise DataError(f"macro_paths contains NaN/inf at (sim, month, var) {format_labels([tuple(map(int, i)) for i in bad])}")
    if not isinstance(link, ZMacroLink):
        raise ConfigError(f"link must be a ZMacroLink, got {type(link).__name__}")
    t = ttc_8x8 if ttc_8x8 is not None else link.ttc
    if t is None:
        raise ConfigError("ttc_8x8 is required (or a link carrying ttc)")
    k = np.asarray(t.to_numpy() if isinstance(t, pd.DataFrame) else t).shape
    if k != (8, 8):
        raise DataError(f"ttc_8x8 must be 8x8 (AAA..B, CCC, D), got shape {k}")
    s, n_months, _ = a.shape
    if n_months > 12 * MAX_YEARS:
        raise ConfigError(f"macro_paths: {n_months} months exceed the {MAX_YEARS}-year limit ({12 * MAX_YEARS} months)")
    # annual 8x8 per path-year (x3 for the generator / expm temporaries) plus the monthly output
    check_memory(8.0 * 64 * s * (3 * -(-n_months // 12) + n_months), "macro_paths", f"{s} paths x {n_months} months of 8x8 matrices")
    return link.scenario_matrices(a, ttc=t, rho=rho, frequency="monthly", include_residual=include_residual,
                                  z_shocks=z_shocks)


#: bound on a year's credit-cycle index Z (standard-normal units) when it becomes a rating matrix
Z_LIMIT = 8.0


def bounded_z(z: np.ndarray) -> np.ndarray:
    """``z`` (z > 0 is a good year) clipped to [-Z_LIMIT, Z_LIMIT].

    Decision: Z is a standardised cycle index, so an 8-sd year lies far beyond any year of the rating
    history, yet a linear link can map an extreme macro path (reverse stress searching for a 10 % loss on
    a BB note went there) to z of -50 or -100, where the annual matrix has no real logarithm and the
    monthly root failed with a linear-algebra error. Beyond the bound the chain stays at the 8-sd year's
    matrix (roots exist up to |z| ~ 30), and the derivative of the differentiable path
    (:mod:`creditsim.risk.expected`) is 0 there, so a search stops pushing."""
    return np.clip(z, -Z_LIMIT, Z_LIMIT)


def monthly_matrices_from_z(z_mean: np.ndarray, link: ZMacroLink, *, include_residual: bool = True,
                            method: str = "diagonal") -> np.ndarray:
    """Monthly rating matrices ``(..., 8, 8)`` of years whose Z forecast mean is ``z_mean`` ``(...)`` (z > 0 is a
    good year).

    The step of :func:`monthly_scenario_matrices` after the link's forecast: the annual conditional
    matrix ``M(z)`` (residual variance integrated unless ``include_residual=False``) and its monthly
    root. A year's monthly matrix depends on the macro path only through that year's ``z_mean``, which
    is what lets a differentiable caller take the derivative along that one number
    (:mod:`creditsim.risk.expected`)."""
    p, r = link._ttc_rho(None, None)
    z = bounded_z(np.asarray(z_mean, dtype=np.float64))
    annual = conditional_raw(p, thresholds_raw(p), z, r, link.resid_var_ if include_residual else 0.0)
    return monthly_matrix(annual, method=method)


def monthly_pd_curves(annual: np.ndarray | pd.DataFrame, n_months: int, *, method: str = "diagonal") -> PDTermStructure:
    """Monthly cumulative PD curves for the simulation.

    ``annual``: a TTC matrix (K, K) (homogeneous) or annual matrices ``(..., Y, K, K)`` (year y used for
    months 12y..12y+11; after Y years the last year's matrix is kept). Each annual matrix becomes a
    monthly one with :func:`monthly_matrix`. Returns a term structure with ``cumulative`` of shape
    ``(n_months, K-1)`` or ``(..., n_months, K-1)``: row m-1 is the probability of default by the
    end of month m (decimals); ``marginal`` / ``conditional`` give monthly default probabilities
    and monthly hazards.
    """
    a = np.asarray(annual.to_numpy() if isinstance(annual, pd.DataFrame) else annual, dtype=np.float64)
    n = _check_years(n_months, "n_months", per_year=12)
    if a.ndim == 2:
        m = monthly_matrix(validate_matrix(a, name="TTC matrix"), method=method)
        mats = np.broadcast_to(m, (n,) + m.shape)
    elif a.ndim >= 3:
        m = monthly_matrix(a, method=method)  # (..., Y, K, K)
        year = np.minimum(np.arange(n) // 12, a.shape[-3] - 1)
        mats = m[..., year, :, :]
    else:
        raise DataError(f"annual must be (K, K) or (..., Y, K, K), got shape {a.shape}")
    return matrices_term_structure(mats)


def write_bundled_link(path: str | Path = BUNDLED_LINK_FILE) -> Path:
    """Fit the default link on the bundled history (the restricted series must be on this machine) and
    write its coefficients to ``path`` as JSON, atomically."""
    from creditsim.fileio import atomic_write

    link = ZMacroLink.from_bundled(refit=True)
    params = {**link.fit_parameters(), "rho": link.rho}
    text = json.dumps(params, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


if __name__ == "__main__":
    print(f"wrote {write_bundled_link()}")

