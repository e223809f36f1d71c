"""Statistical baselines for macro paths with the MacroVAE ``generate`` interface.

* :class:`VARGenerator` -- VAR(p) on monthly levels fitted with ``statsmodels.tsa.api.VAR`` (p fixed
  or chosen by AIC/BIC up to ``max_lags``), simulated with Gaussian innovations ``N(0, Sigma_u)``.
* :class:`BlockBootstrapGenerator` -- stationary block bootstrap (Politis-Romano): blocks of monthly
  *changes* with geometric lengths (mean ``mean_block`` months), cumulated from a real starting month.

Both keep rates, spreads and levels at or above the MacroVAE's :data:`~creditsim.macro.vae.LOWER_BOUNDS`
(policy rate, 10y yield, spreads, unemployment and the default index at 0; house-price growth above
-99 %) as censored paths: a month at its bound is the state the next month builds on, as the VAE feeds a
floored month back to its decoder. Decision (issue 18 review, the fairer issue-12 comparison): Gaussian VAR
innovations and cumulated bootstrap changes otherwise reach policy rates of -3 to -6 %, which feed the
floating loans' coupons in a simulation and which a practitioner's baseline would not produce; the VAE
was floored, its baselines were not.

Both start every path from a real state: the first ``p`` months (VAR) or the first month (bootstrap)
of a randomly drawn historical 60-month window, so that the starting-level distribution matches the
history and only the dynamics are compared. A scenario restricts the starting windows (and, for the
bootstrap, the pool of blocks) to windows with that label (rule in :mod:`creditsim.macro.train`);
``scenario=None`` uses all windows.

COVID months: ``fit(..., exclude=COVID_MONTHS)`` (default) leaves 2020-03 .. 2020-12 out of estimation,
the decision documented in :mod:`creditsim.macro.train` (Lenza & Primiceri 2022: dropping them is
acceptable for parameter estimation): no VAR regression row has a target or a lag in those months, no
bootstrap change starts or ends in them, and no starting window overlaps them. The 2021-25 months
are used. ``exclude=None`` fits on everything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from creditsim.errors import ConfigError, NotFittedError
from creditsim.macro.train import COVID_MONTHS, in_months, label_windows, make_windows, overlaps_months
from creditsim.macro.vae import LOWER_BOUNDS
from creditsim.schema import validate_macro
from creditsim.states import SCENARIOS, scenario_index

__all__ = ["VARGenerator", "BlockBootstrapGenerator"]


class _WindowedBaseline:
    """Shared fit-time bookkeeping: history values, window starts and scenario labels."""

    name = "baseline"

    def __init__(self, seq_length: int = 60):
        if isinstance(seq_length, bool) or not isinstance(seq_length, (int, np.integer)) or seq_length < 2:
            raise ConfigError(f"seq_length must be an integer >= 2, got {seq_length!r}")
        self.seq_length = int(seq_length)

    def _fit_windows(self, history: pd.DataFrame, recession: pd.Series | None,
                     exclude: tuple[str, str] | None) -> np.ndarray:
        frame = validate_macro(history)
        windows, starts = make_windows(frame, self.seq_length)
        keep = ~overlaps_months(starts, self.seq_length, exclude)
        if not keep.any():
            raise ConfigError(f"every {self.seq_length}-month window of the history overlaps the excluded months "
                              f"{exclude[0]} .. {exclude[1]}; pass exclude=None or a longer history")
        self.values_ = frame.to_numpy(np.float64)  # (M, D)
        self.excluded_ = in_months(frame.index, exclude)  # (M,) months left out of estimation
        self.window_starts_ = np.arange(len(starts))[keep]  # month offset of each kept window
        self.window_labels_ = label_windows(windows, starts, recession, frame)[keep]
        self.variables_ = tuple(frame.columns)
        return self.values_

    def _lower_bounds(self) -> np.ndarray:
        """``(D,)`` lower bound of each fitted variable (:data:`LOWER_BOUNDS`; -inf where it has none)."""
        return np.array([LOWER_BOUNDS.get(v, -np.inf) for v in self.variables_])

    def _check_fitted(self) -> None:
        if not hasattr(self, "values_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(history) first")

    def _starts_for(self, scenario: int | str | None) -> np.ndarray:
        if scenario is None:
            return self.window_starts_
        idx = scenario_index(scenario)
        starts = self.window_starts_[self.window_labels_ == idx]
        if len(starts) == 0:
            raise ConfigError(f"no historical window is labelled {SCENARIOS[idx]!r}; cannot condition on it")
        return starts

    def _start_state(self, start: np.ndarray) -> np.ndarray:
        """``start`` as a checked ``(D,)`` float64 state in the fitted variables' order."""
        vec = np.asarray(start, dtype=np.float64).reshape(-1)
        if vec.shape != (self.values_.shape[1],) or not np.all(np.isfinite(vec)):
            raise ConfigError(f"start must be {self.values_.shape[1]} finite values in the order "
                              f"{list(self.variables_)}, got shape {np.shape(start)}")
        return vec

    @staticmethod
    def _check_sizes(seq_length: int, n_samples: int) -> None:
        for name, value in (("seq_length", seq_length), ("n_samples", n_samples)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class VARGenerator(_WindowedBaseline):
    """VAR(p) baseline. ``lags``: an int, or 'aic' / 'bic' to select p <= ``max_lags``.

    Fitted attributes: ``lags_`` (p), ``intercept_`` (D,), ``coefs_`` (p, D, D), ``sigma_u_`` (D, D),
    ``results_`` (the statsmodels VARResults).
    """

    def __init__(self, lags: int | str = 1, max_lags: int = 4, seq_length: int = 60):
        super().__init__(seq_length)
        if isinstance(lags, str):
            if lags not in ("aic", "bic"):
                raise ConfigError(f"lags must be a positive int, 'aic' or 'bic', got {lags!r}")
        elif isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or lags < 1:
            raise ConfigError(f"lags must be a positive int, 'aic' or 'bic', got {lags!r}")
        self.lags, self.max_lags = lags, int(max_lags)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"VAR({self.lags_})" if hasattr(self, "lags_") else "VAR"

    def fit(self, history: pd.DataFrame, recession: pd.Series | None = None, *,
            exclude: tuple[str, str] | None = COVID_MONTHS) -> VARGenerator:
        """Fit on ``history``; ``exclude``: months left out of estimation (module docstring).

        Without excluded months inside the history this is ``statsmodels`` ``VAR(values).fit(p)``
        (``results_``); with them, the same equation-by-equation OLS and ``Sigma_u`` (residual cross
        products over ``n - D p - 1``) on the rows whose target and lags all lie outside them
        (``results_`` None), and ``'aic'`` / ``'bic'`` compare p = 1..max_lags on the rows valid for
        ``max_lags``, as ``select_order`` does.
        """
        from statsmodels.tsa.api import VAR

        values = self._fit_windows(history, recession, exclude)
        dropped = self.excluded_
        if not dropped.any():
            model = VAR(values)
            if isinstance(self.lags, str):
                order = model.select_order(self.max_lags)
                p = max(1, int(getattr(order, self.lags)))
            else:
                p = int(self.lags)
            self._check_lags(p)
            self.results_ = model.fit(p)
            self.intercept_ = np.asarray(self.results_.intercept, dtype=np.float64)
            self.coefs_ = np.asarray(self.results_.coefs, dtype=np.float64)  # (p, D, D)
            self.sigma_u_ = np.asarray(self.results_.sigma_u, dtype=np.float64)
        else:
            if isinstance(self.lags, str):
                crit = {q: self._ols(values, dropped, q, self.max_lags)[3][self.lags] for q in range(1, self.max_lags + 1)}
                p = min(crit, key=crit.get)
            else:
                p = int(self.lags)
            self._check_lags(p)
            self.results_ = None
            self.intercept_, self.coefs_, self.sigma_u_, _ = self._ols(values, dropped, p, p)
        self.lags_ = p
        return self

    def _check_lags(self, p: int) -> None:
        if p >= self.seq_length:
            raise ConfigError(f"VAR lags ({p}) must be below seq_length ({self.seq_length})")

    @staticmethod
    def _ols(values: np.ndarray, dropped: np.ndarray, p: int, sample_lags: int):
        """OLS VAR(p) on the rows t >= sample_lags whose months t, t-1, .., t-p are all kept.
        Returns (intercept (D,), coefs (p, D, D), sigma_u (D, D), {'aic', 'bic'})."""
        M, D = values.shape
        rows = np.array([t for t in range(sample_lags, M) if not dropped[t - p:t + 1].any()
                         and not dropped[t - sample_lags:t + 1].any()])
        n, k = len(rows), 1 + D * p
        if n <= k:
            raise ConfigError(f"VAR({p}): {n} usable months outside the excluded ones, need more than {k}")
        X = np.column_stack([np.ones(n)] + [values[rows - j] for j in range(1, p + 1)])
        Y = values[rows]
        beta, *_ = np.linalg.lstsq(X, Y, rcond=None)  # (k, D)
        resid = Y - X @ beta
        sigma_ml = resid.T @ resid / n
        logdet = np.linalg.slogdet(sigma_ml)[1]
        free = p * D * D
        ic = {"aic": logdet + 2.0 * free / n, "bic": logdet + np.log(n) * free / n}
        coefs = np.stack([beta[1 + D * (j - 1):1 + D * j].T for j in range(1, p + 1)])  # (p, D, D)
        return beta[0], coefs, resid.T @ resid / (n - k), ic

    def generate(self, scenario: int | str | None = None, seq_length: int = 60, n_samples: int = 100, *,
                 seed: int | None = None, start: np.ndarray | None = None, censor: bool = True) -> torch.Tensor:
        """(n_samples, seq_length, D) float64 paths, real units; the first ``p`` months are real months
        of a window of the scenario's type, or, with ``start`` ``(D,)``, that state (held for the first
        ``p`` months: the VAR's initial condition). ``censor=False``: the plain Gaussian VAR, without the
        lower bounds (its mean has the closed form; a test checks it)."""
        self._check_fitted()
        self._check_sizes(seq_length, n_samples)
        p, D = self.lags_, self.values_.shape[1]
        rng = np.random.default_rng(seed)
        starts = rng.choice(self._starts_for(scenario), size=n_samples)
        out = np.empty((n_samples, max(seq_length, p), D))
        if start is None:
            out[:, :p] = np.stack([self.values_[s:s + p] for s in starts])
        else:
            out[:, :p] = self._start_state(start)
        chol = np.linalg.cholesky(self.sigma_u_ + 1e-14 * np.eye(D))
        lo = self._lower_bounds() if censor else np.full(D, -np.inf)
        for t in range(p, out.shape[1]):
            mean = self.intercept_ + sum(out[:, t - k] @ self.coefs_[k - 1].T for k in range(1, p + 1))
            out[:, t] = np.maximum(mean + rng.standard_normal((n_samples, D)) @ chol.T, lo)  # censored path
        return torch.from_numpy(out[:, :seq_length].copy())


class BlockBootstrapGenerator(_WindowedBaseline):
    """Stationary block bootstrap of monthly changes, mean block length ``mean_block`` months."""

    name = "block bootstrap"

    def __init__(self, mean_block: float = 12.0, seq_length: int = 60):
        super().__init__(seq_length)
        if not (isinstance(mean_block, (int, float)) and mean_block >= 1):
            raise ConfigError(f"mean_block must be a number >= 1 (months), got {mean_block!r}")
        self.mean_block = float(mean_block)

    def fit(self, history: pd.DataFrame, recession: pd.Series | None = None, *,
            exclude: tuple[str, str] | None = COVID_MONTHS) -> BlockBootstrapGenerator:
        """Fit on ``history``; ``exclude``: months left out (module docstring): a change that starts or
        ends in them never enters the pool of blocks (``change_pool_``)."""
        values = self._fit_windows(history, recession, exclude)
        self.changes_ = np.diff(values, axis=0)  # (M - 1, D); change m is values[m + 1] - values[m]
        self.change_pool_ = np.flatnonzero(~(self.excluded_[1:] | self.excluded_[:-1]))  # usable change indices
        return self

    def generate(self, scenario: int | str | None = None, seq_length: int = 60, n_samples: int = 100, *,
                 seed: int | None = None, start: np.ndarray | None = None, censor: bool = True) -> torch.Tensor:
        """(n_samples, seq_length, D) float64 paths, real units; month 0 is a real month of a window of
        the scenario's type, or ``start`` ``(D,)`` when given; the changes come from windows of that type.
        ``censor=False``: historical changes cumulated without the lower bounds."""
        self._check_fitted()
        self._check_sizes(seq_length, n_samples)
        rng = np.random.default_rng(seed)
        starts = self._starts_for(scenario)
        # pool of change indices: changes inside the chosen windows (all changes when unconditional)
        if scenario is None:
            pool = self.change_pool_
        else:  # kept windows never overlap the excluded months
            pool = np.unique(np.concatenate([np.arange(s, s + self.seq_length - 1) for s in starts]))
        first = rng.choice(starts, size=n_samples)
        steps = seq_length - 1
        idx = np.empty((n_samples, max(steps, 1)), dtype=np.int64)
        pos = rng.integers(len(pool), size=n_samples)
        for t in range(steps):
            # a new block starts with probability 1/mean_block; otherwise continue the current block
            restart = rng.random(n_samples) < 1.0 / self.mean_block
            pos = np.where(restart, rng.integers(len(pool), size=n_samples), (pos + 1) % len(pool))
            idx[:, t] = pool[pos]
        out = np.empty((n_samples, seq_length, self.values_.shape[1]))
        out[:, 0] = self.values_[first] if start is None else self._start_state(start)
        lo = self._lower_bounds() if censor else np.full(self.values_.shape[1], -np.inf)
        for t in range(1, seq_length):  # censored cumulation: a month at its bound is where the next one starts
            out[:, t] = np.maximum(out[:, t - 1] + self.changes_[idx[:, t - 1]], lo)
        return torch.from_numpy(out)
