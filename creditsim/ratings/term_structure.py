"""Lifetime PD beyond the Markov assumption: a Markov-mixture term structure fitted to published
multi-year cumulative default rates.

Why not matrix powers. Powers of a through-the-cycle one-year matrix ``P`` miss realised multi-year
default rates in a systematic way: for the bundled S&P 1981-2016 matrix, ``P^t`` gives B and CCC
cumulative PDs 1.5-1.9x the published 1981-2024 averages from year 5 on, and AAA 0.4-0.6x at 3-7
years. Z paths and scenario weighting cannot close that gap, since ``E[prod M(Z_t)] = P^t`` for
independent years. The cause is heterogeneity: a static pool of one grade mixes issuers that hardly
move with issuers that keep migrating (downgrade momentum, "fallen angels"), so the pool's default
hazard falls with time since formation (seasoning). A homogeneous chain, memoryless by construction,
has hazards that *rise* with time for good grades and stay high for bad ones.

Model (choice). A Markov mixture in continuous time (Frydman & Schuermann, "Credit rating dynamics
and Markov mixture models", J. Banking & Finance 32, 2008; the mover-stayer model is its special case
with a zero speed). ``Q`` (K, K) is the regularised generator of the TTC matrix
(:func:`creditsim.ratings.estimate.generator`, ``expm(Q) ~ P``). An issuer that starts in grade g is of
type j = 0..J-1 with probability ``weights_[g, j]`` and then migrates along the homogeneous chain with
generator ``speeds_[g, j] * Q`` through every grade: same destinations as the TTC chain, faster or
slower. Cumulative PD of grade g after t years::

    PD_g(t) = sum_j weights_[g, j] * expm(speeds_[g, j] * Q * t)[g, D]

J = 2 by default, ``speeds_[g, 0] <= speeds_[g, 1]`` (a slow and a fast type; a slow speed of 0 would
be a mover-stayer model, which the fit excludes by default: ``min_speed`` = 0.1, so that no issuer is
immune to the economy in a simulation or immortal over a long life). The mixture keeps the TTC matrix's migration *directions*, so it needs 3 numbers
per grade rather than a full matrix per year, extrapolates past the calibration horizon like a chain
(no flat-lining of a curve fit), and its monthly hazards come from monthly matrices, as the
other providers'. A non-homogeneous chain fitted year by year would match the calibration curves
exactly but has no rule for years beyond them and no heterogeneity to explain the seasoning.

Calibration (:meth:`MarkovMixtureTermStructure.fit`). Per grade, weighted least squares on relative
errors of the published cumulative curve ``c_g(t)``, t = 1..Y::

    sum_t ((PD_g(t) - c_g(t)) / max(c_g(t), floor))^2        (floor = 1e-4, i.e. 0.01 %)

Relative, because the acceptance is relative and PDs span four orders of magnitude; the floor keeps
a published 0.00 % (AAA, year 1) from dominating; a binomial likelihood would need the static pools'
sizes, which the tables do not give. With ``monotone=True`` (default) the grades are fitted from the
worst up and each curve is penalised where it exceeds the next-worse grade's fitted curve over
``check_years`` years: a better grade never gets a higher PD (the published AAA row is above AA's from
year 3, an artefact of few AAA issuers). Nelder-Mead from fixed starts plus the best point of a
fixed grid: deterministic, and the same basin on every machine (the objective has several; from the
fixed starts alone, which one AA's fit reached moved with 1e-13 changes of ``Q``).

Seasoned exposures. The published curves are averages over static pools of *all* issuers rated g at
the pool's formation, whatever their age, so ``PD_g(t)`` is the PD of an exposure rated g today; the
term structure is a function of the current grade only.

Units: cumulative PDs are decimals by year 1..T; monthly survival ``(n_months + 1, G)`` with row 0 = 1;
monthly hazards ``h_g(m) = 1 - S_g(m) / S_g(m - 1)`` decimals per month. G = K - 1 non-default grades.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize

from creditsim.errors import ConfigError, DataError, NotFittedError, format_labels
from creditsim.ratings.estimate import (absorbing_stochastic, expm_batched, generator, regularised_generator,
                                       validate_matrix)
from creditsim.ratings.lifetime import PDTermStructure
from creditsim.ratings.limits import MAX_YEARS, check_count
from creditsim.states import GRADES_7, GRADES_8

__all__ = ["MarkovMixtureTermStructure", "MixtureFit", "type_monthly_matrices", "scenario_default_hazard",
           "bundled_term_structure", "fit_bundled_term_structure", "write_bundled_term_structure",
           "BUNDLED_TERM_STRUCTURE_FILE"]

#: fixed Nelder-Mead starts, in the unconstrained coordinates of :func:`_unpack` (logit weight of the
#: fast type, log fast speed, logit of slow / fast speed): a slow-majority pool, a near mover-stayer,
#: a fast-majority pool, a very fast minority, a near-homogeneous pool
_STARTS = np.array([[0.0, 0.0, 0.0], [-2.0, 1.0, -3.0], [2.0, 0.5, -1.0], [-4.0, 2.5, -1.0], [-1.0, -1.0, 0.0]])
#: weight of the ordering penalty (relative excess over the next-worse grade's curve) in the refit
_PENALTY = 1e3


def _grade_labels(k: int) -> tuple[str, ...]:
    lab = GRADES_8 if k == 8 else GRADES_7 if k == 7 else tuple(str(i) for i in range(k))
    return tuple(lab[:-1])


def type_monthly_matrices(q: np.ndarray, speeds: np.ndarray) -> np.ndarray:
    """Monthly matrices ``expm(s * Q / 12)`` ``(..., K, K)`` for speeds ``(...)``, cleaned as
    :func:`creditsim.ratings.estimate.monthly_matrix` cleans its own (clip at 0, rows renormalised, D
    absorbing), so speed 1 gives exactly the matrix of ``monthly_matrix(P)`` for the same generator."""
    s = np.asarray(speeds, dtype=np.float64)
    return absorbing_stochastic(expm_batched(s[..., None, None] * q / 12.0))


def _type_curves(q: np.ndarray, speeds: np.ndarray, n_years: int, starts: np.ndarray | None = None) -> np.ndarray:
    """``(n_years, N, J)`` cumulative PD of type j of row i: ``expm(speeds[i, j] Q t)[starts[i], D]``;
    ``speeds`` ``(N, J)``, ``starts`` ``(N,)`` start grades (default: row i starts in grade i)."""
    g, j = speeds.shape
    starts = np.arange(g) if starts is None else starts
    annual = expm_batched(speeds[..., None, None] * q)  # (N, J, K, K)
    rows = np.zeros((g, j, q.shape[0]))
    rows[np.arange(g), :, starts] = 1.0  # each grade's pool starts in its own grade
    out = np.empty((n_years, g, j))
    for t in range(n_years):
        rows = np.einsum("gjk,gjkl->gjl", rows, annual)
        out[t] = rows[..., -1]
    return out


def _curve_function(q: np.ndarray, gi: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """``f(speeds (J,), n_years) -> (n_years, J)``: :func:`_type_curves` of grade ``gi`` for the fit's
    inner loop. Through the eigendecomposition ``Q = V diag(lam) V^-1`` (one exp per eigenvalue instead
    of a matrix exponential and T products, ~50x faster) when it reproduces ``expm(Q)`` to 1e-12;
    otherwise (defective or ill-conditioned ``Q``) the matrix products themselves."""
    lam, vec = np.linalg.eig(q)
    if np.linalg.cond(vec) < 1e8:
        inv = np.linalg.inv(vec)
        coef = vec[gi] * inv[:, -1]  # (K,): PD_g(t) = sum_i coef_i exp(s lam_i t)
        check = float(np.abs((vec * np.exp(lam)) @ inv - expm_batched(q)).max())
        if check < 1e-12:
            def by_eigen(speeds: np.ndarray, n_years: int) -> np.ndarray:
                t = np.arange(1, n_years + 1, dtype=np.float64)
                return (np.exp(t[:, None, None] * speeds[None, :, None] * lam) @ coef).real
            return by_eigen
    start = np.array([gi])
    return lambda speeds, n_years: _type_curves(q, speeds[None, :], n_years, start)[:, 0]


def _unpack(x: np.ndarray, max_speed: float, min_speed: float = 0.0) -> tuple[float, float, float]:
    """Unconstrained ``x`` (3,) -> (weight of the fast type, slow speed, fast speed), both speeds in
    ``[min_speed, max_speed]``; clipped so that Nelder-Mead's wild steps cannot overflow."""
    z = np.clip(x, -30.0, 30.0)
    w = 1.0 / (1.0 + np.exp(-z[0]))
    fast = min(max(float(np.exp(z[1])), min_speed), max_speed)
    return float(w), min_speed + (fast - min_speed) / (1.0 + np.exp(-z[2])), fast


@dataclass(frozen=True)
class MixtureFit:
    """Fit diagnostics per grade: ``loss`` (G,) the minimised weighted sum of squares, ``max_rel_error``
    (G,) the largest |model / published - 1| over years with a published rate >= ``floor``, ``years``
    the number of published years used."""

    loss: np.ndarray
    max_rel_error: np.ndarray
    years: int


class MarkovMixtureTermStructure:
    """Markov-mixture lifetime PD model (module docstring): ``weights_`` and ``speeds_`` ``(G, J)``.

    Args:
        ttc: annual TTC matrix ``(K, K)`` (last state D absorbing), e.g. ``load_sp_ratings().matrix_8x8``.
        n_types: J, the number of types per grade (2 for :meth:`fit`; any J >= 1 for :meth:`from_params`).
        method: generator regularisation (``"diagonal"`` or ``"weighted"``), as in ``monthly_matrix``.
        floor: smallest denominator of the relative errors (decimal PD), > 0.
        max_speed: upper bound of a type's speed (multiple of the TTC generator), > 0.
        min_speed: lower bound of a type's speed, in [0, max_speed). The default 0.1 keeps every type
            moving: unbounded, the fit makes "stayers" of speed 0 (99 % of AAA, 75 % of BB, 63 % of B,
            39 % of CCC issuers) that never migrate or default, whatever the economy -- lifetime PDs
            capped at the movers' share and a simulation whose stress cannot reach most of the book.
            The price: the largest 1-10-year fit error for BB rises from 13 % to 15 %, CCC 2 % to 14 %.
        monotone: fit grades worst-first, each penalised where it exceeds the next-worse grade's curve.
        check_years: horizon (years) over which ``monotone`` is enforced. Beyond it the curves are
            extrapolation of a 15-year table and need not stay in grade order: with the bundled fit,
            A's cumulative PD passes BBB's after about 60 years (32 % against 23 % at 100 years),
            and AAA's 100-year PD is 1.6 % against 52 % for the plain chain.
    """

    def __init__(self, ttc: np.ndarray | pd.DataFrame, *, n_types: int = 2, method: str = "diagonal",
                 floor: float = 1e-4, max_speed: float = 50.0, monotone: bool = True, check_years: int = 30,
                 min_speed: float = 0.1) -> None:
        self.ttc = validate_matrix(ttc, name="TTC matrix")
        self.k = self.ttc.shape[0]
        self.grades = _grade_labels(self.k)
        self.method = method
        self.q = generator(self.ttc, method=method).Q
        self.n_types = check_count(n_types, "n_types", high=8)
        if not (np.isfinite(floor) and 0.0 < floor < 1.0):
            raise ConfigError(f"floor must be a PD in (0, 1), got {floor!r}")
        if not (np.isfinite(max_speed) and max_speed > 0.0):
            raise ConfigError(f"max_speed must be > 0, got {max_speed!r}")
        if not (np.isfinite(min_speed) and 0.0 <= min_speed < max_speed):
            raise ConfigError(f"min_speed must be in [0, max_speed), got {min_speed!r}")
        self.floor, self.max_speed, self.monotone = float(floor), float(max_speed), bool(monotone)
        self.min_speed = float(min_speed)
        self.check_years = check_count(check_years, "check_years", high=MAX_YEARS, unit=" (years)")
        self.weights_: np.ndarray | None = None
        self.speeds_: np.ndarray | None = None
        self.fit_: MixtureFit | None = None
        self._states = np.eye(self.k)[None, : self.k - 1]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(cls, ttc: np.ndarray | pd.DataFrame, weights: np.ndarray, speeds: np.ndarray, *,
                    method: str = "diagonal") -> "MarkovMixtureTermStructure":
        """A model with given ``weights`` (G, J) (rows non-negative, summing to 1) and ``speeds``
        (G, J) (>= 0); ``(J,)`` inputs are used for every grade. No fitting."""
        model = cls(ttc, n_types=np.atleast_1d(np.asarray(weights)).shape[-1], method=method)
        g = model.k - 1
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (g, model.n_types)).copy()
        s = np.broadcast_to(np.asarray(speeds, dtype=np.float64), (g, model.n_types)).copy()
        bad = ~np.isfinite(w).all(axis=1) | (w < 0).any(axis=1) | (np.abs(w.sum(axis=1) - 1.0) > 1e-9)
        if bad.any():
            raise DataError(f"weights: rows {format_labels([model.grades[i] for i in np.flatnonzero(bad)])} must be "
                            f"non-negative and sum to 1 (one share per type)")
        bad = ~np.isfinite(s).all(axis=1) | (s < 0).any(axis=1)
        if bad.any():
            raise DataError(f"speeds: rows {format_labels([model.grades[i] for i in np.flatnonzero(bad)])} must be "
                            f"finite and >= 0 (multiples of the TTC generator)")
        model.weights_, model.speeds_ = w, s
        return model

    def _check_curves(self, cumulative: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Published cumulative PDs as ``(Y, G)`` decimals; DataError naming ``cumulative`` otherwise."""
        if isinstance(cumulative, pd.DataFrame):
            missing = [g for g in self.grades if g not in cumulative.columns]
            if missing:
                raise DataError(f"cumulative: columns {format_labels(missing)} missing (need one per grade {list(self.grades)})")
            cumulative = cumulative[list(self.grades)].to_numpy()
        try:
            c = np.asarray(cumulative, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"cumulative: cannot convert to a float array ({exc})") from None
        if c.ndim != 2 or c.shape[1] != self.k - 1 or c.shape[0] < 3:
            raise DataError(f"cumulative must be (Y, {self.k - 1}) decimals, years 1..Y (Y >= 3) by grade, got shape {c.shape}")
        bad = ~(np.isfinite(c) & (c >= 0.0) & (c < 1.0)).all(axis=0)
        if bad.any():
            raise DataError(f"cumulative: grades {format_labels([self.grades[i] for i in np.flatnonzero(bad)])} have values "
                            f"outside [0, 1) or NaN (decimals, not percent)")
        bad = (np.diff(c, axis=0) < 0).any(axis=0)
        if bad.any():
            raise DataError(f"cumulative: grades {format_labels([self.grades[i] for i in np.flatnonzero(bad)])} decrease "
                            f"with the horizon (a cumulative PD never does)")
        return c

    # ------------------------------------------------------------------ calibration
    def _fit_grade(self, gi: int, target: np.ndarray, cap: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
        """Weights (2,), speeds (2,) and loss of grade ``gi`` against ``target`` (Y,); ``cap``
        ``(check_years,)``: the next-worse grade's fitted curve, or None."""
        years = len(target)
        horizon = max(years, self.check_years if cap is not None else 0)
        denom = np.maximum(target, self.floor)
        curves = _curve_function(self.q, gi)

        def curve(x: np.ndarray) -> np.ndarray:
            w, slow, fast = _unpack(x, self.max_speed, self.min_speed)
            c = curves(np.array([slow, fast]), horizon)  # (horizon, 2)
            return (1.0 - w) * c[:, 0] + w * c[:, 1]

        def excess(x: np.ndarray) -> float:
            """Relative amount by which the curve exceeds the next-worse grade's (0 when ordered)."""
            return 0.0 if cap is None else float(np.sum(np.maximum(curve(x) - cap[:horizon], 0.0)
                                                        / np.maximum(cap[:horizon], self.floor)))

        def fit_loss(x: np.ndarray) -> float:
            return float(np.sum(((curve(x)[:years] - target) / denom) ** 2))

        def minimise(loss: Callable[[np.ndarray], float], starts: np.ndarray) -> scipy.optimize.OptimizeResult:
            return min((scipy.optimize.minimize(loss, x0, method="Nelder-Mead",
                                                options={"maxiter": 3000, "xatol": 1e-7, "fatol": 1e-12})
                        for x0 in starts), key=lambda r: r.fun)

        def grid_start(penalty: float) -> np.ndarray:
            """``x`` (3,): the best point of fit_loss + penalty * excess on a fixed grid (speed x ratio x
            weight, 41 x 33 x 121). The objective has several basins, and from the fixed starts alone
            Nelder-Mead missed the best one for AA (loss 1.13, the near-homogeneous chain, instead of
            0.073); whether the penalised refit escaped depended on the last bits of LAPACK's
            eigenvectors, i.e. on the CPU. The grid puts one start in the best basin on every machine."""
            z0, z2 = np.linspace(-12.0, 12.0, 121), np.linspace(-8.0, 8.0, 33)
            z1 = np.log(np.geomspace(max(self.min_speed, 1e-3 * self.max_speed), self.max_speed, 41))
            fast = np.exp(z1)  # (F,) as _unpack maps them
            slow = self.min_speed + (fast[:, None] - self.min_speed) / (1.0 + np.exp(-z2))  # (F, R)
            c_fast = curves(fast, horizon)[:, :, None]  # (horizon, F, 1)
            c_slow = curves(slow.ravel(), horizon).reshape(horizon, *slow.shape)  # (horizon, F, R)
            w = (1.0 / (1.0 + np.exp(-z0)))[:, None, None, None]
            mix = (1.0 - w) * c_slow + w * c_fast  # (W, horizon, F, R)
            loss = np.sum(((mix[:, :years] - target[:, None, None]) / denom[:, None, None]) ** 2, axis=1)
            if penalty and cap is not None:
                top = cap[:horizon, None, None]
                loss = loss + penalty * np.sum(np.maximum(mix - top, 0.0) / np.maximum(top, self.floor), axis=1)
            a, b, r = np.unravel_index(np.argmin(loss), loss.shape)  # first minimum: a fixed tie-break
            return np.array([z0[a], z1[b], z2[r]])

        best = minimise(fit_loss, np.vstack([grid_start(0.0), _STARTS]))
        if excess(best.x) > 0.0:
            # refit with an exact (linear) penalty on the ordering, started from the unconstrained
            # optimum too: the penalty's kink traps Nelder-Mead far from it otherwise
            best = minimise(lambda x: fit_loss(x) + _PENALTY * excess(x),
                            np.vstack([best.x, grid_start(_PENALTY), _STARTS]))
        w, slow, fast = _unpack(best.x, self.max_speed, self.min_speed)
        return np.array([1.0 - w, w]), np.array([slow, fast]), fit_loss(best.x)

    def fit(self, cumulative: np.ndarray | pd.DataFrame) -> "MarkovMixtureTermStructure":
        """Fit ``weights_``, ``speeds_`` (G, 2) to published cumulative PDs ``(Y, G)`` decimals (row t-1 =
        year t; a frame with one column per grade label, e.g. :func:`creditsim.datasets.ratings.
        load_sp_cumulative_default_rates`). Sets ``fit_`` (:class:`MixtureFit`). Returns self."""
        if self.n_types != 2:
            raise ConfigError(f"fit estimates two types per grade (n_types=2), got n_types={self.n_types}")
        c = self._check_curves(cumulative)
        g = self.k - 1
        weights, speeds, losses = np.empty((g, 2)), np.empty((g, 2)), np.empty(g)
        cap = None
        for gi in range(g - 1, -1, -1):  # worst grade first: it caps the next better one
            weights[gi], speeds[gi], losses[gi] = self._fit_grade(gi, c[:, gi], cap if self.monotone else None)
            if self.monotone:
                cap = _type_curves(self.q, speeds, max(len(c), self.check_years))[:, gi] @ weights[gi]
        self.weights_, self.speeds_ = weights, speeds
        self._states = np.eye(self.k)[None, :g]
        model = self.cumulative_pd(len(c)).cumulative
        use = c >= self.floor
        rel = np.where(use, np.abs(model / np.where(use, c, 1.0) - 1.0), 0.0).max(axis=0)
        self.fit_ = MixtureFit(losses, rel, len(c))
        return self

    # ------------------------------------------------------------------ outputs
    def _check_fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.weights_ is None or self.speeds_ is None:
            raise NotFittedError("MarkovMixtureTermStructure is not fitted: call fit(cumulative) or use from_params")
        return self.weights_, self.speeds_

    def cumulative_pd(self, n_years: int) -> PDTermStructure:
        """Cumulative PD by grade, years 1..n_years: ``cumulative`` ``(n_years, G)`` decimals."""
        w, s = self._check_fitted()
        n = check_count(n_years, "n_years", high=MAX_YEARS, unit=" (years)")
        return PDTermStructure(np.einsum("tgj,gj->tg", _type_curves(self.q, s, n), w), self.grades)

    def _state_table(self, n_months: int) -> np.ndarray:
        """``(n_months + 1, G, K)`` cached distribution over the K states after m months by start grade
        (the weighted mix of its types' chains), extended as needed: a prefix never depends on
        ``n_months``. Whole-matrix products in the order of the ECL providers' survival tables, so that
        one type of speed 1 reproduces TTCMatrixPD to the last bit."""
        w, s = self._check_fitted()
        n = check_count(n_months, "n_months", low=0, high=MAX_YEARS * 12, unit=" (months)")
        if self._states.shape[0] <= n:
            g = self.k - 1
            monthly = type_monthly_matrices(self.q, s)  # (G, J, K, K)
            acc = np.broadcast_to(np.eye(self.k), monthly.shape).copy()
            out = np.empty((n + 1, g, self.k))
            out[0] = np.eye(self.k)[:g]
            grades = np.arange(g)
            for m in range(n):
                acc = acc @ monthly
                out[m + 1] = (acc[grades, :, grades, :] * w[:, :, None]).sum(axis=1)
            self._states = out
        return self._states[: n + 1]

    def monthly_survival(self, n_months: int) -> np.ndarray:
        """``(n_months + 1, G)`` probability of no default by the end of month m (row 0 = 1) by start
        grade: the weighted mix of each type's month-by-month chain."""
        return np.clip(1.0 - self._state_table(n_months)[..., -1], 0.0, 1.0)

    def grade_distribution(self, n_months: int) -> np.ndarray:
        """``(n_months + 1, G, K)`` distribution over the K states (grades, then D) after m months of a
        name rated g at month 0: the weighted mix of its types' chains (row 0 = the unit vector of g)."""
        return self._state_table(n_months).copy()

    def monthly_hazard(self, n_months: int) -> np.ndarray:
        """``(n_months, G)`` monthly default hazards ``1 - S(m) / S(m - 1)`` by grade (1 where nothing
        survives)."""
        s = self.monthly_survival(n_months)
        prev = s[:-1]
        return np.where(prev > 0, 1.0 - s[1:] / np.where(prev > 0, prev, 1.0), 1.0)

    def summary(self) -> str:
        """One line per grade: type weights and speeds, and the fit's largest relative error."""
        w, s = self._check_fitted()
        lines = [f"Markov mixture term structure: {self.n_types} type(s) per grade, speeds x TTC generator"]
        for i, g in enumerate(self.grades):
            types = ", ".join(f"{w[i, j]:.4f} @ {s[i, j]:.3f}" for j in range(self.n_types))
            err = f"; max rel. error {self.fit_.max_rel_error[i]:.1%} over {self.fit_.years} years" if self.fit_ else ""
            lines.append(f"  {g:>4}: {types}{err}")
        return "\n".join(lines)


def scenario_default_hazard(model: MarkovMixtureTermStructure, macro_paths: np.ndarray, link: Any) -> np.ndarray:
    """Monthly default hazards ``(S, G, T)`` of the mixture along macro paths, for the simulation.

    The run's rating chain moves along path ``s`` with the monthly matrices ``M_t = expm(G_y / 12)`` of
    :func:`creditsim.ratings.lifetime.monthly_scenario_matrices` (``G_y`` the regularised generator of
    year y's Z-conditional matrix). Type ``j`` of grade ``g`` moves ``speeds_[g, j]`` times as fast along
    the same conditional chain: ``expm(speeds_[g, j] G_y / 12)`` (from the annual generator: the log of a
    monthly matrix of a stressed year, with CCC's mass almost all in D, has no real value), so the
    economy speeds up or slows every type
    alike, as it does the TTC generator in the model's own curves. The grade's survival is the weighted
    mix of its types' survivals (a loan's type is unknown and independent of other loans'),
    ``S_g(t) = sum_j w_gj S_gj(t)``, and the hazard its one-month step ``1 - S_g(t + 1) / S_g(t)``: the
    marginal default-time distribution of a loan rated g, which is all the engine samples
    (:mod:`creditsim.risk.pool_engine`). One type of speed 1 is the run's rating chain.

    Args:
        model: a fitted :class:`MarkovMixtureTermStructure` on the 8x8 scale (AAA..CCC, D).
        macro_paths: ``(S, T, 9)`` monthly macro paths (MACRO_VARS order, decimals).
        link: the fitted :class:`creditsim.ratings.lifetime.ZMacroLink` of the run.
    """
    from creditsim.ratings.lifetime import scenario_annual_matrices

    w, s = model._check_fitted()
    if model.k != 8:
        raise ConfigError(f"the simulation's rating chain is 8x8 (AAA..CCC, D); this term structure is {model.k}x{model.k}")
    a = np.asarray(macro_paths, dtype=np.float64)
    gen = regularised_generator(scenario_annual_matrices(a, link)) / 12.0  # (S, Y, 8, 8)
    n, t_len = a.shape[:2]
    year = np.arange(t_len) // 12
    survival = np.zeros((n, model.k - 1, t_len + 1))
    typed_by_speed: dict[float, np.ndarray] = {}  # grades share speeds (every min_speed type): one expm each
    for g in range(model.k - 1):
        for j in np.flatnonzero(w[g] > 0.0):
            speed = float(s[g, j])
            if speed not in typed_by_speed:
                typed_by_speed[speed] = absorbing_stochastic(expm_batched(speed * gen))  # (S, Y, 8, 8)
            typed = typed_by_speed[speed]
            pi = np.zeros((n, model.k))
            pi[:, g] = 1.0
            survival[:, g, 0] += w[g, j]
            for t in range(t_len):
                pi = np.einsum("si,sij->sj", pi, typed[:, year[t]])
                survival[:, g, t + 1] += w[g, j] * (1.0 - pi[:, -1])
    prev = survival[..., :-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(prev > 1e-15, 1.0 - survival[..., 1:] / prev, 0.0)
    return np.clip(hazard, 0.0, 1.0)


#: weights and speeds of the mixture fitted to S&P's 1981-2024 cumulative default table (this project's
#: estimates; the table itself is S&P's and not in the wheel: ``creditsim.datasets.restricted``)
BUNDLED_TERM_STRUCTURE_FILE = Path(__file__).resolve().parents[1] / "pretrained" / "sp_term_structure.json"


def bundled_term_structure() -> MarkovMixtureTermStructure:
    """The mixture fitted to S&P's 1981-2024 cumulative default table on the bundled TTC matrix, read
    from :data:`BUNDLED_TERM_STRUCTURE_FILE` (no refit: the table is restricted data, and a stored fit
    gives every machine the same bits; ``fit_`` is None). One shared instance per process: do not modify.
    :func:`write_bundled_term_structure` regenerates the file; a test checks it against a fresh fit."""
    return _bundled_fit()


@functools.lru_cache(maxsize=1)
def _bundled_fit() -> MarkovMixtureTermStructure:
    from creditsim.datasets import load_sp_ratings
    from creditsim.errors import CheckpointError

    try:
        params = json.loads(BUNDLED_TERM_STRUCTURE_FILE.read_text(encoding="utf-8"))
        weights, speeds, method = params["weights"], params["speeds"], params["method"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{BUNDLED_TERM_STRUCTURE_FILE}: unreadable fitted term structure ({exc}); "
                              f"regenerate it: python -m creditsim.ratings.term_structure") from None
    return MarkovMixtureTermStructure.from_params(load_sp_ratings().matrix_8x8, np.asarray(weights),
                                                  np.asarray(speeds), method=method)


def fit_bundled_term_structure() -> MarkovMixtureTermStructure:
    """Fit the mixture afresh on the S&P 1981-2024 cumulative table (the restricted ``SP-CUMULATIVE``
    file must be on this machine; ~3 s) with the default options."""
    from creditsim.datasets import load_sp_cumulative_default_rates, load_sp_ratings

    return MarkovMixtureTermStructure(load_sp_ratings().matrix_8x8).fit(load_sp_cumulative_default_rates())


def write_bundled_term_structure(path: str | Path = BUNDLED_TERM_STRUCTURE_FILE) -> Path:
    """Fit afresh (:func:`fit_bundled_term_structure`) and write weights / speeds as JSON, atomically."""
    from creditsim.datasets.ratings import CUMULATIVE_SOURCE
    from creditsim.fileio import atomic_write

    model = fit_bundled_term_structure()
    params = {"weights": model.weights_.tolist(), "speeds": model.speeds_.tolist(), "method": model.method,
              "grades": list(model.grades), "fitted_to": CUMULATIVE_SOURCE,
              "ttc": "creditsim.datasets.load_sp_ratings().matrix_8x8",
              "options": {"n_types": model.n_types, "floor": model.floor, "max_speed": model.max_speed,
                          "min_speed": model.min_speed, "monotone": model.monotone,
                          "check_years": model.check_years}}
    text = json.dumps(params, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


if __name__ == "__main__":
    print(f"wrote {write_bundled_term_structure()}")
