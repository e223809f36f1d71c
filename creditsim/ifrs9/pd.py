"""PD providers for :func:`creditsim.ifrs9.expected_credit_loss`: default-only survival curves per loan.

A provider answers two questions for a chunk of loans (an :class:`~creditsim.ifrs9.loans.EclLoans`
subset; ``loans.position`` indexes per-loan arrays given for the whole book):

- ``survival(loans, n_months, settings)`` -> ``(n_months + 1, S, L)`` float64: probability of no
  default by the end of month ``m`` after the reporting date (row 0 = 1), per scenario ``S`` (1 = the
  same for every scenario). Prepayment is *not* in it: the engine treats it as a competing risk.
  Monthly hazard ``h(m) = 1 - S(m) / S(m-1)``; the marginal PD of a period is ``S(a) - S(b)``.
- ``origination_pd(loans, start, length)`` -> ``(L,)``: the PD over months ``(start, start + length]``
  after origination, given survival to ``start``, *as expected at origination* -- the reference of the
  SICR test on matched remaining horizons (``start`` = months on book, ``length`` = remaining months).

:class:`TermStructurePD` takes a fitted Markov-mixture term structure (heterogeneity and seasoning fitted to
published cumulative default rates) instead of matrix powers. Grade-based providers take an annual TTC matrix
``(K, K)`` (last state D absorbing) and turn it into a
monthly one once with :func:`creditsim.ratings.estimate.monthly_matrix` (``expm(log(P) / 12)`` on the
regularised generator). The origination expectation is the TTC term structure of the origination
grade: the macro forecast made at origination is not stored. Survival curves are built by repeated
products month by month (a prefix never depends on the horizon asked for), and gathered per loan by
grade, so a loan's numbers do not depend on the chunk it is computed in.

Reasonable-and-supportable horizon (``settings.rs_horizon_months`` = H, ``settings.reversion``): the
scenario's monthly matrix (or hazard) is used for months 1..H; after it "immediate" switches to the TTC
one, "linear" blends ``w M_s + (1 - w) M_TTC`` with ``w = 1 - (m - H) / reversion_months`` (a blend of
stochastic matrices is stochastic), "none" keeps the scenario (its last matrix repeated past its end).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError, format_labels
from creditsim.ifrs9.loans import EclLoans
from creditsim.ifrs9.settings import EclSettings
from creditsim.ratings.estimate import monthly_matrix, validate_matrix
from creditsim.ratings.term_structure import MarkovMixtureTermStructure
from creditsim.ratings.zfactor import conditional_matrix
from creditsim.states import GRADES_7, GRADES_8

__all__ = ["TTCMatrixPD", "ScenarioMatrixPD", "TermStructurePD", "HazardCurvePD", "GroupedPD", "reversion_weights",
           "grade_codes", "chain_default_hazard", "annual_pds"]


def reversion_weights(n_months: int, given: int, settings: EclSettings) -> np.ndarray:
    """``(n_months,)`` weight of the scenario (vs TTC) in months 1..n_months; ``given`` = months of
    scenario forecast available (past them "immediate" / "linear" are TTC, "none" repeats the last)."""
    m = np.arange(1, n_months + 1, dtype=np.float64)
    if settings.reversion == "none":
        return np.ones(n_months)
    h = min(settings.rs_horizon_months, given)
    if settings.reversion == "immediate":
        return (m <= h).astype(np.float64)
    return np.clip(1.0 - (m - h) / settings.reversion_months, 0.0, 1.0)


def grade_codes(grades: np.ndarray | None, k: int, what: str = "grade") -> np.ndarray:
    """``(L,)`` indices 0..K-2 of non-default grades from indices or labels (AAA..CCC); DataError naming rows."""
    if grades is None:
        raise DataError(f"EclLoans.{what} is required by a rating-matrix PD provider")
    if grades.dtype.kind in "iu":
        codes = grades.astype(np.int64)
    else:
        labels = GRADES_8[:-1] if k == 8 else GRADES_7[:-1] if k == 7 else ()
        lookup = {g: i for i, g in enumerate(labels)}
        codes = np.array([lookup.get(str(g).strip().upper(), -1) for g in grades], dtype=np.int64)
    bad = (codes < 0) | (codes > k - 2)
    if bad.any():
        raise DataError(f"EclLoans.{what}: rows {format_labels(np.flatnonzero(bad))} are not one of the "
                        f"{k - 1} non-default grades of the {k}x{k} matrix (indices 0..{k - 2})")
    return codes


def _survival_table(monthly: np.ndarray, n_months: int) -> np.ndarray:
    """``(n_months + 1, S, K - 1)`` default-only survival by start grade of the month-by-month product of
    ``monthly`` ``(S, n_months, K, K)``."""
    s, _, k, _ = monthly.shape
    out = np.empty((n_months + 1, s, k - 1))
    out[0] = 1.0
    acc = np.broadcast_to(np.eye(k), (s, k, k)).copy()
    for m in range(n_months):
        acc = acc @ monthly[:, m]
        out[m + 1] = 1.0 - acc[:, :-1, -1]
    return np.clip(out, 0.0, 1.0)


class _GradeProvider:
    """Shared code of the matrix providers: cached survival tables, gather by grade, TTC origination PD."""

    n_scenarios: int = 1

    def __init__(self, ttc: np.ndarray | pd.DataFrame, method: str = "diagonal") -> None:
        self.ttc = validate_matrix(ttc, name="TTC matrix")
        self.k = self.ttc.shape[0]
        self.ttc_monthly = monthly_matrix(self.ttc, method=method)
        self._ttc_table = np.ones((1, 1, self.k - 1))
        self._cache: dict[tuple, np.ndarray] = {}

    def _ttc_survival(self, n_months: int) -> np.ndarray:
        """``(n_months + 1, K - 1)`` TTC survival by grade, extended as needed (prefixes never change)."""
        if self._ttc_table.shape[0] <= n_months:
            seq = np.broadcast_to(self.ttc_monthly, (1, n_months) + self.ttc_monthly.shape)
            self._ttc_table = _survival_table(seq, n_months)
        return self._ttc_table[: n_months + 1, 0]

    def origination_pd(self, loans: EclLoans, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        g = grade_codes(loans.origination_grade, self.k, "origination_grade")
        table = self._ttc_survival(int((start + length).max()))
        s0, s1 = table[start, g], table[start + length, g]
        return np.where(s0 > 0, 1.0 - s1 / np.where(s0 > 0, s0, 1.0), 1.0)

    def _table(self, n_months: int, settings: EclSettings) -> np.ndarray:
        raise NotImplementedError

    def survival(self, loans: EclLoans, n_months: int, settings: EclSettings) -> np.ndarray:
        g = grade_codes(loans.grade, self.k)
        return self._table(n_months, settings)[:, :, g]


class TTCMatrixPD(_GradeProvider):
    """PD from one annual TTC rating matrix ``(K, K)`` for every scenario (homogeneous Markov chain
    of monthly matrices); loans need ``grade`` (and ``origination_grade`` for the PD-threshold SICR)."""

    def _table(self, n_months: int, settings: EclSettings) -> np.ndarray:
        return self._ttc_survival(n_months)[:, None, :]


class ScenarioMatrixPD(_GradeProvider):
    """PD from per-scenario sequences of rating matrices (Z-path / macro-conditional matrices).

    ``matrices``: ``(S, Y, K, K)`` annual (``frequency="annual"``: year y is used for months
    12y+1..12y+12 via its monthly root) or ``(S, T, K, K)`` monthly; ``ttc`` ``(K, K)`` annual, the
    matrix reverted to after the reasonable-and-supportable horizon and the origination expectation.
    """

    def __init__(self, matrices: np.ndarray, ttc: np.ndarray | pd.DataFrame, *, frequency: str = "annual",
                 method: str = "diagonal") -> None:
        super().__init__(ttc, method)
        m = np.asarray(matrices, dtype=np.float64)
        if m.ndim != 4 or m.shape[-2:] != (self.k, self.k):
            raise DataError(f"matrices must be (S, Y, {self.k}, {self.k}) to match the TTC matrix, got shape {m.shape}")
        if frequency == "annual":
            mm = monthly_matrix(m, method=method)
            self.monthly = np.repeat(mm, 12, axis=1)
        elif frequency == "monthly":
            validate_matrix(m.reshape(-1, self.k, self.k)[0], name="monthly matrix")
            self.monthly = m
        else:
            raise ConfigError(f"frequency must be 'annual' or 'monthly', got {frequency!r}")
        self.n_scenarios = int(m.shape[0])

    @classmethod
    def from_z_paths(cls, ttc: np.ndarray | pd.DataFrame, z_paths: np.ndarray, rho: float, *,
                     residual_var: float = 0.0) -> "ScenarioMatrixPD":
        """Scenario ``s`` follows the annual credit-cycle path ``z_paths[s]`` ``(S, Y)`` (z > 0 good year):
        ``M(z)`` of :func:`creditsim.ratings.zfactor.conditional_matrix` for each year."""
        z = np.asarray(z_paths, dtype=np.float64)
        if z.ndim != 2:
            raise DataError(f"z_paths must be (S, Y), got shape {z.shape}")
        return cls(conditional_matrix(ttc, z, rho, residual_var=residual_var), ttc)

    @classmethod
    def from_macro(cls, link, macro_paths: np.ndarray, *, ttc: np.ndarray | pd.DataFrame | None = None) -> "ScenarioMatrixPD":
        """Macro-conditional matrices of a fitted :class:`creditsim.ratings.lifetime.ZMacroLink` along
        monthly macro paths ``(S, T, 9)`` (annualised per 12-month block, residual integrated)."""
        t = link.ttc if ttc is None else ttc
        return cls(link.scenario_matrices(macro_paths, ttc=t, frequency="monthly"), t)

    def _table(self, n_months: int, settings: EclSettings) -> np.ndarray:
        key = (settings.reversion, settings.rs_horizon_months, settings.reversion_months)
        table = self._cache.get(key)
        if table is None or table.shape[0] <= n_months:
            given = self.monthly.shape[1]
            w = reversion_weights(n_months, given, settings)[None, :, None, None]
            scen = self.monthly[:, np.minimum(np.arange(n_months), given - 1)]
            seq = np.where(w == 1.0, scen, w * scen + (1.0 - w) * self.ttc_monthly)
            table = self._cache[key] = _survival_table(seq, n_months)
        return table[: n_months + 1]


class TermStructurePD(_GradeProvider):
    """PD from a fitted lifetime term-structure model by grade: the Markov mixture of
    :class:`creditsim.ratings.term_structure.MarkovMixtureTermStructure` (seasoning and heterogeneity
    fitted to published multi-year cumulative default rates, where :class:`TTCMatrixPD`'s matrix powers
    overstate speculative grades' PDs from year 3 on).

    One scenario: a through-the-cycle curve, so the reasonable-and-supportable settings have nothing
    to revert from. ``survival`` is the model's monthly survival ``(n_months + 1, K - 1)`` of the loan's
    current ``grade`` (the published curves are averages over static pools of all issuers rated g at
    formation, seasoned or not). ``origination_pd`` is built the same way, so the SICR test compares
    like with like: the PD over ``(start, start + length]`` expected at origination is the mix, over
    the grades the name may hold at ``start`` (the model's own migration from its ``origination_grade``,
    given survival), of those grades' curves over ``length``. A name still in its origination grade
    therefore keeps a ratio near 1 as it ages. (The forward PD of the origination grade's own curve,
    ``1 - S(start + length) / S(start)``, would mix in the seasoning of the survivors -- richer in slow
    types -- while today's PD does not, and sent B names to Stage 2 at 84 months on book, ratio 2.3,
    for nothing but age.) A model with one type of speed 1 gives :class:`TTCMatrixPD`'s numbers (to
    rounding: that forward PD and this mix are equal for a Markov chain).
    """

    def __init__(self, model: MarkovMixtureTermStructure) -> None:
        if not isinstance(model, MarkovMixtureTermStructure):
            raise ConfigError(f"TermStructurePD needs a MarkovMixtureTermStructure, got {type(model).__name__}")
        model.monthly_survival(0)  # an unfitted model fails here, not in the middle of an ECL run
        super().__init__(model.ttc, model.method)
        self.model = model

    def origination_pd(self, loans: EclLoans, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        g0 = grade_codes(loans.origination_grade, self.k, "origination_grade")
        at = self.model.grade_distribution(int(np.max(start, initial=0)))[start, g0]  # (L, K) states at start
        pd_now = 1.0 - self.model.monthly_survival(int(np.max(length, initial=0)))[length]  # (L, G) by grade
        alive = 1.0 - at[:, -1]
        mixed = (at[:, :-1] * pd_now).sum(axis=1)  # over the K - 1 grades: a fixed-size axis
        return np.where(alive > 0, mixed / np.where(alive > 0, alive, 1.0), 1.0)

    def _table(self, n_months: int, settings: EclSettings) -> np.ndarray:
        return self.model.monthly_survival(n_months)[:, None, :]


def _annual_curve(values: object, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim > 3 or not ((a >= 0) & (a <= 1)).all():
        raise DataError(f"{name} must be annual PDs in [0, 1] of shape (), (Y,), (S, Y) or (S, L, Y), "
                        f"got shape {a.shape}" + ("" if a.ndim > 3 else " with values outside [0, 1]"))
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim == 2:
        a = a[:, None, :]
    return a  # (S, L or 1, Y)


class HazardCurvePD:
    """PD from annual hazard curves (conditional one-year PDs, decimals).

    ``annual_pd`` of shape ``()`` (flat), ``(Y,)`` (year y's hazard; the last year repeats), ``(S, Y)``
    (one curve per scenario) or ``(S, L, Y)`` (per scenario and loan, L = the whole book). Monthly
    hazard ``1 - (1 - p_y)^(1/12)``, so a flat ``p`` gives cumulative PD ``1 - (1 - p)^(m/12)``.
    ``ttc_pd`` (``()`` or ``(Y,)``): the through-the-cycle curve reverted to after the
    reasonable-and-supportable horizon (None: the curves are used over the whole life).
    ``origination_pd``: ``()`` or ``(L,)`` flat annual PD expected at origination (None: the TTC curve if
    given, else the scenario curves' mean monthly hazard: for a single curve that means "no change since
    origination", i.e. no PD-driven SICR).
    """

    def __init__(self, annual_pd: object, *, ttc_pd: object | None = None, origination_pd: object | None = None) -> None:
        self.curve = _annual_curve(annual_pd, "annual_pd")
        self.n_scenarios = int(self.curve.shape[0])
        self.ttc = None if ttc_pd is None else _annual_curve(ttc_pd, "ttc_pd")
        if self.ttc is not None and self.ttc.shape[:2] != (1, 1):
            raise DataError(f"ttc_pd must be () or (Y,), got shape {np.shape(ttc_pd)}")
        self.orig = None if origination_pd is None else np.asarray(origination_pd, dtype=np.float64)
        if self.orig is not None and (self.orig.ndim > 1 or not ((self.orig >= 0) & (self.orig <= 1)).all()):
            raise DataError(f"origination_pd must be () or (L,) annual PDs in [0, 1], got shape {self.orig.shape}")

    @staticmethod
    def _monthly(curve: np.ndarray, n_months: int, loans: EclLoans) -> np.ndarray:
        """``(n_months, S, L or 1)`` monthly hazards of a ``(S, L or 1, Y)`` annual curve."""
        year = np.minimum(np.arange(n_months) // 12, curve.shape[-1] - 1)
        c = curve if curve.shape[1] == 1 else curve[:, loans.position]
        return -np.expm1(np.log1p(-c[:, :, year]) / 12.0).transpose(2, 0, 1)

    def survival(self, loans: EclLoans, n_months: int, settings: EclSettings) -> np.ndarray:
        if self.curve.shape[1] not in (1,) and int(loans.position.max()) >= self.curve.shape[1]:
            raise DataError(f"annual_pd has {self.curve.shape[1]} loans, the book has more")
        h = self._monthly(self.curve, n_months, loans)
        if self.ttc is not None:
            w = reversion_weights(n_months, 1_000_000, settings)[:, None, None]
            h = np.where(w == 1.0, h, w * h + (1.0 - w) * self._monthly(self.ttc, n_months, loans))
        out = np.empty((n_months + 1,) + h.shape[1:])
        out[0] = 1.0
        np.cumprod(1.0 - h, axis=0, out=out[1:])
        return out

    def origination_pd(self, loans: EclLoans, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        if self.orig is not None:
            p = self.orig if self.orig.ndim == 0 else self.orig[loans.position]
            return -np.expm1(length / 12.0 * np.log1p(-p))
        curve = self.ttc if self.ttc is not None else self.curve
        n = int((start + length).max())
        h = self._monthly(curve, n, loans).mean(axis=1)  # (n, L or 1)
        logs = np.concatenate([np.zeros((1, h.shape[1])), np.cumsum(np.log1p(-h), axis=0)])
        cols = np.arange(len(start)) if h.shape[1] > 1 else np.zeros(len(start), dtype=np.int64)
        return -np.expm1(logs[start + length, cols] - logs[start, cols])


def chain_default_hazard(matrices: np.ndarray, start_state: int) -> np.ndarray:
    """Cause-specific monthly default hazard of the delinquency chain.

    ``matrices`` ``(..., T, 7, 7)`` monthly (states of :class:`creditsim.states.LoanState`), the chain
    started in ``start_state`` (0..3). Returns ``(..., T)``: ``h(t) = P(DEFAULT at t) / P(in 0..3 at t-1)``,
    the probability of defaulting in month t of a loan neither defaulted, prepaid nor matured before;
    0 once nothing survives.
    """
    m = np.asarray(matrices, dtype=np.float64)
    pi = np.zeros(m.shape[:-3] + (m.shape[-1],))
    pi[..., start_state] = 1.0
    out = np.empty(m.shape[:-2])
    for t in range(m.shape[-3]):
        alive = pi[..., :4].sum(-1)
        new = np.einsum("...i,...ij->...j", pi, m[..., t, :, :])
        into_default = np.einsum("...i,...i->...", pi[..., :4], m[..., t, :4, 4])
        out[..., t] = np.where(alive > 0, into_default / np.where(alive > 0, alive, 1.0), 0.0)
        pi = new
    return out


def annual_pds(monthly_hazard: np.ndarray) -> np.ndarray:
    """``(..., Y)`` one-year conditional PDs of monthly hazards ``(..., T)``: ``1 - prod(1 - h)`` over each
    block of 12 months; a last partial block of n months is annualised, ``1 - prod(1 - h)^(12 / n)``."""
    t = monthly_hazard.shape[-1]
    log_s = np.log1p(-np.minimum(monthly_hazard, 1.0 - 1e-15))
    years = -(-t // 12)
    out = np.empty(monthly_hazard.shape[:-1] + (years,))
    for y in range(years):
        block = log_s[..., 12 * y: 12 * y + 12]
        out[..., y] = -np.expm1(block.sum(-1) * 12.0 / block.shape[-1])
    return out


class GroupedPD:
    """A PD provider that hands each loan to the provider of its group (rated grades, unrated cohorts).

    ``groups``: list of ``(mask, provider)`` with ``mask`` ``(L,)`` bool over the whole book (the masks
    partition it). Every provider has one scenario or ``n_scenarios``; results are broadcast to
    ``(n_months + 1, n_scenarios, L)``. A loan's numbers are its own provider's, whatever chunk it is in.
    """

    def __init__(self, groups: list[tuple[np.ndarray, Any]], n_scenarios: int) -> None:
        masks = np.array([np.asarray(m, dtype=bool) for m, _ in groups])
        if masks.ndim != 2 or not (masks.sum(axis=0) == 1).all():
            raise DataError("GroupedPD: the group masks must give every loan exactly one provider")
        self.groups = [(masks[i], p) for i, (_, p) in enumerate(groups)]
        self.n_scenarios = int(n_scenarios)

    def survival(self, loans: Any, n_months: int, settings: Any) -> np.ndarray:
        out = np.empty((n_months + 1, self.n_scenarios, loans.n_loans))
        for mask, provider in self.groups:
            sel = np.flatnonzero(mask[loans.position])
            if len(sel):
                out[:, :, sel] = provider.survival(loans.subset(sel), n_months, settings)
        return out

    def origination_pd(self, loans: Any, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        out = np.empty(loans.n_loans)
        for mask, provider in self.groups:
            sel = np.flatnonzero(mask[loans.position])
            if len(sel):
                out[sel] = provider.origination_pd(loans.subset(sel), start[sel], length[sel])
        return out
