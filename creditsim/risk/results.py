"""Monte Carlo outputs: :class:`SimulationResults` and :class:`TrancheResult`.

A result holds per-scenario arrays (never aggregates only), so every metric can be recomputed,
conditioned on a scenario type or re-weighted. Risk measures use the exact estimators of
:mod:`creditsim.risk.measures` (empirical quantile without interpolation, Acerbi-Tasche CVaR).

Storage: :meth:`SimulationResults.to_parquet` writes one directory (parquet tables + ``meta.json``),
:meth:`SimulationResults.load` reads it back bit-for-bit; :meth:`SimulationResults.to_excel` writes the
formatted workbook for people (:mod:`creditsim.risk.workbook`). Both writes are atomic: a temporary sibling is written first and moved
into place with :func:`os.replace`, so an interrupted write leaves the previous file (or nothing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.fileio import (
    RESULT_MARKER, atomic_write, check_output_target, escape_excel_text, fault_point, make_temp_dir,
    replace_result_dir,
)
from creditsim.risk import measures
from creditsim.risk.workbook import (
    COUNT_FORMAT, EXCEL_MAX_ROWS, MONEY_FORMAT, PERCENT_FORMAT, YEARS_FORMAT, Block, Sheet, write_workbook,
)
from creditsim.states import MACRO_VARS, POOL_CF_TYPES, SCENARIOS, scenario_index

__all__ = ["TrancheResult", "SimulationResults", "escape_excel_text"]

#: a tranche "defaults" in a scenario when its principal loss exceeds this fraction of its balance
#: (1e-8 of a 10m note is 10 cents: rounding dust in the waterfall is not a default)
DEFAULT_EPSILON = 1e-8

_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
_FORMAT_VERSION = 1


def _as_clusters(clusters: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    """``(n,)`` int64 path-cluster ids, or None; DataError naming ``where`` otherwise."""
    if clusters is None:
        return None
    c = np.asarray(clusters)
    if c.shape != (n,) or not np.issubdtype(c.dtype, np.integer):
        raise DataError(f"{where}: clusters must be ({n},) integer ids, one per simulation; got {c.dtype} {c.shape}")
    return c.astype(np.int64)


@dataclass
class TrancheResult:
    """Per-scenario outcome of one tranche.

    Attributes:
        name: tranche name as in the deal.
        balance: initial note balance, currency units.
        losses: ``(n_sims,)`` principal loss as a fraction of ``balance`` (unpaid balance incl. PIK at
            the horizon / initial balance; 0 = repaid in full).
        irr: ``(n_sims,)`` annualised IRR, decimal (-1.0 when nothing was received).
        wal: ``(n_sims,)`` weighted average life of principal received, years (NaN when none).
        coupon: annual coupon, decimal (NaN for equity).
        attachment, detachment: fractions of initial collateral par.
        equity: True for the residual (subordinated) tranche.
        pv_losses: optional ``(n_sims,)`` PV loss at the tranche coupon (Moody's style).
        weights: optional ``(n_sims,)`` scenario weights (normalised internally).
        clusters: optional ``(n_sims,)`` integer ids of scenarios whose macro paths share an ancestor
            (cluster-robust standard errors, :mod:`creditsim.risk.measures`).
    """

    name: str
    balance: float
    losses: np.ndarray
    irr: np.ndarray
    wal: np.ndarray
    coupon: float = float("nan")
    attachment: float = float("nan")
    detachment: float = float("nan")
    equity: bool = False
    pv_losses: np.ndarray | None = None
    weights: np.ndarray | None = None
    clusters: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.losses = np.asarray(self.losses, dtype=np.float64).reshape(-1)
        n = self.losses.size
        self.clusters = _as_clusters(self.clusters, n, f"tranche {self.name!r}")
        for name in ("irr", "wal"):
            arr = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if arr.size != n:
                raise DataError(f"tranche {self.name!r}: {name} has {arr.size} values, losses has {n}")
            setattr(self, name, arr)
        if self.pv_losses is not None:
            self.pv_losses = np.asarray(self.pv_losses, dtype=np.float64).reshape(-1)
            if self.pv_losses.size != n:
                raise DataError(f"tranche {self.name!r}: pv_losses has {self.pv_losses.size} values, expected {n}")
        if self.weights is not None:
            self.weights = measures.normalise_weights(self.weights, n)

    @property
    def n_sims(self) -> int:
        return int(self.losses.size)

    def _w(self) -> np.ndarray:
        return measures.normalise_weights(self.weights, self.n_sims)

    @property
    def pd(self) -> float:
        """Probability of any principal loss, ``P(loss > eps)``."""
        return float(np.dot(self._w(), self.losses > DEFAULT_EPSILON))

    @property
    def expected_loss(self) -> float:
        """Mean principal loss, fraction of the tranche balance."""
        return measures.expected_value(self.losses, self.weights)

    @property
    def expected_loss_se(self) -> float:
        return measures.expected_value_se(self.losses, self.weights, self.clusters)

    @property
    def lgd(self) -> float:
        """``EL / PD`` (NaN when the tranche never loses)."""
        pd_ = self.pd
        return self.expected_loss / pd_ if pd_ > 0 else float("nan")

    @property
    def mean_wal(self) -> float:
        """Mean WAL over the scenarios where principal was received, years."""
        ok = np.isfinite(self.wal)
        if not ok.any():
            return float("nan")
        w = self._w()[ok]
        return float(np.dot(w, self.wal[ok]) / w.sum())

    @property
    def mean_irr(self) -> float:
        ok = np.isfinite(self.irr)
        if not ok.any():
            return float("nan")
        w = self._w()[ok]
        return float(np.dot(w, self.irr[ok]) / w.sum())

    @property
    def median_irr(self) -> float:
        ok = np.isfinite(self.irr)
        if not ok.any():
            return float("nan")
        return measures.value_at_risk(self.irr[ok], 0.5, None if self.weights is None else self.weights[ok])

    def var(self, alpha: float = 0.99) -> float:
        """Empirical ``alpha``-quantile of the tranche principal loss, fraction of the tranche balance
        (0.25 = a quarter of the note lost); ``alpha`` a decimal confidence level (0.99)."""
        return measures.value_at_risk(self.losses, alpha, self.weights)

    def cvar(self, alpha: float = 0.99) -> float:
        """Acerbi-Tasche expected shortfall of the tranche principal loss beyond ``var(alpha)``,
        fraction of the tranche balance."""
        return measures.expected_shortfall(self.losses, alpha, self.weights)

    def __repr__(self) -> str:
        """One line: name, size, attachment and the headline loss numbers; never the arrays."""
        kind = " equity" if self.equity else ""
        return (f"TrancheResult({self.name!r}{kind}, balance {self.balance:,.0f}, attach {_pct(self.attachment, 1)}"
                f"-{_pct(self.detachment, 1)}, {self.n_sims:,} scenarios: EL {_pct(self.expected_loss)}, "
                f"PD {_pct(self.pd)}, VaR 99% {_pct(self.var(0.99))})")

    def subset(self, mask: np.ndarray) -> TrancheResult:
        """The same tranche restricted to the scenarios where ``mask`` is True."""
        return TrancheResult(
            name=self.name, balance=self.balance, losses=self.losses[mask], irr=self.irr[mask],
            wal=self.wal[mask], coupon=self.coupon, attachment=self.attachment,
            detachment=self.detachment, equity=self.equity,
            pv_losses=None if self.pv_losses is None else self.pv_losses[mask],
            weights=None if self.weights is None else self.weights[mask],
            clusters=None if self.clusters is None else self.clusters[mask],
        )


@dataclass
class SimulationResults:
    """Container for Monte Carlo simulation outputs.

    Attributes:
        portfolio_losses: ``(n_sims,)`` credit loss of the pool over the horizon as a fraction of the
            initial pool balance: ``sum_t loss_t / balance_0`` with ``loss_t = LGD x default_par_t``
            recognised in the month of default (the ``loss`` column of the pool cashflows). This equals
            ``(sum D - sum R) / balance_0`` when every recovery arrives inside the horizon, and does not
            count a late default as a total loss because its recovery falls after the horizon.
        tranche_results: one :class:`TrancheResult` per tranche, in priority order.
        cashflows: named arrays; ``"pool"`` is ``(n_sims, T, 7)`` in ``POOL_CF_TYPES`` order, tranche
            arrays (``"tranche_interest"``, ``"tranche_principal"``, ``"tranche_balance"``) are
            ``(n_sims, T, n_tranches)``; other 3-D arrays (e.g. coverage-test ratios) may be added.
        scenarios: ``(n_sims,)`` int scenario index (0 baseline .. 3 stagflation).
        weights: optional ``(n_sims,)`` scenario weights (None = equal weights, the usual case since
            scenario types are *drawn* according to the mix).
        macro_paths: optional ``(n_sims, T, 9)`` macro paths that drove the run (decimals).
        initial_balance: pool balance at the cut-off, currency units.
        settings: run settings (seed, mix, engine, versions, ...), JSON-serialisable.
        clusters: optional ``(n_sims,)`` integer ids: simulations whose macro paths descend from one
            month-0 particle of a conditioned VAE draw share an id; the standard errors are then
            cluster-robust (:mod:`creditsim.risk.measures`). None = independent scenarios.
    """

    portfolio_losses: np.ndarray
    tranche_results: list[TrancheResult]
    cashflows: dict[str, np.ndarray] = field(default_factory=dict)
    scenarios: np.ndarray | None = None
    weights: np.ndarray | None = None
    macro_paths: np.ndarray | None = None
    initial_balance: float = float("nan")
    settings: dict[str, Any] = field(default_factory=dict)
    clusters: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.portfolio_losses = np.asarray(self.portfolio_losses, dtype=np.float64).reshape(-1)
        n = self.portfolio_losses.size
        if n == 0:
            raise DataError("portfolio_losses: empty; expected one loss per simulation")
        if self.scenarios is None:
            self.scenarios = np.zeros(n, dtype=np.int64)
        self.scenarios = np.asarray(self.scenarios, dtype=np.int64).reshape(-1)
        if self.scenarios.size != n:
            raise DataError(f"scenarios: {self.scenarios.size} labels for {n} simulations")
        if np.any((self.scenarios < 0) | (self.scenarios >= len(SCENARIOS))):
            raise DataError(f"scenarios: labels must be in 0..{len(SCENARIOS) - 1}")
        if self.weights is not None:
            self.weights = measures.normalise_weights(self.weights, n)
        self.clusters = _as_clusters(self.clusters, n, "result")
        for t in self.tranche_results:
            if t.n_sims != n:
                raise DataError(f"tranche {t.name!r}: {t.n_sims} simulations, portfolio has {n}")
            # one set of scenario weights for the whole result: a tranche without its own weights
            # takes the result's (else tranche numbers would change after a save/load round trip)
            if t.weights is None and self.weights is not None:
                t.weights = self.weights.copy()
            elif t.weights is not None and self.weights is not None and not np.allclose(t.weights, self.weights):
                raise DataError(f"tranche {t.name!r}: its weights differ from the result's scenario weights")
            if t.clusters is None and self.clusters is not None:
                t.clusters = self.clusters.copy()
        for key, arr in self.cashflows.items():
            arr = np.asarray(arr, dtype=np.float64)
            if not _KEY_RE.match(key):
                raise ConfigError(f"cashflows key {key!r}: expected letters, digits and '_' only")
            if arr.ndim != 3 or arr.shape[0] != n:
                raise DataError(f"cashflows[{key!r}]: expected shape ({n}, T, k), got {arr.shape}")
            self.cashflows[key] = arr
        if "pool" in self.cashflows and self.cashflows["pool"].shape[2] != len(POOL_CF_TYPES):
            raise DataError(f"cashflows['pool']: last axis must be the {len(POOL_CF_TYPES)} POOL_CF_TYPES")
        if self.macro_paths is not None:
            self.macro_paths = np.asarray(self.macro_paths, dtype=np.float64)
            if self.macro_paths.ndim != 3 or self.macro_paths.shape[0] != n or self.macro_paths.shape[2] != len(MACRO_VARS):
                raise DataError(f"macro_paths: expected shape ({n}, T, {len(MACRO_VARS)}), got {self.macro_paths.shape}")

    # ------------------------------------------------------------------ risk measures
    @property
    def n_sims(self) -> int:
        return int(self.portfolio_losses.size)

    def _select(self, scenario: int | str | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(losses, weights, clusters)`` of all scenarios or of one scenario type."""
        if scenario is None:
            return self.portfolio_losses, self.weights, self.clusters
        idx = _scenario_index(scenario)
        mask = self.scenarios == idx
        if not mask.any():
            raise ConfigError(f"scenario {SCENARIOS[idx]!r} has no simulations in this run")
        return (self.portfolio_losses[mask], None if self.weights is None else self.weights[mask],
                None if self.clusters is None else self.clusters[mask])

    @property
    def expected_loss(self) -> float:
        """Mean portfolio loss, fraction of initial pool balance."""
        return measures.expected_value(self.portfolio_losses, self.weights)

    def tail_estimable(self, alpha: float) -> bool:
        """At least one scenario is expected beyond ``alpha`` (``n_eff (1 - alpha) >= 1``): below that the
        VaR / CVaR "estimate" is the sample maximum whatever alpha is, and tables show "-" (as
        :meth:`risk_table`)."""
        n_eff = measures.effective_sample_size(self.weights, self.portfolio_losses.size)
        return n_eff * (1.0 - alpha) >= 1.0 - 1e-9

    @property
    def var_99(self) -> float:
        """99 % VaR of the portfolio loss over the horizon, fraction of the initial pool balance."""
        return self.var(0.99)

    @property
    def cvar_99(self) -> float:
        """99 % CVaR (expected shortfall) of the portfolio loss, fraction of the initial pool balance."""
        return self.cvar(0.99)

    def el(self, scenario: int | str | None = None) -> float:
        """Expected loss, optionally conditional on a scenario type (name or index)."""
        x, w, _ = self._select(scenario)
        return measures.expected_value(x, w)

    def var(self, alpha: float = 0.99, scenario: int | str | None = None) -> float:
        """Empirical quantile ``inf{x : F(x) >= alpha}`` of the portfolio loss."""
        x, w, _ = self._select(scenario)
        return measures.value_at_risk(x, alpha, w)

    def cvar(self, alpha: float = 0.99, scenario: int | str | None = None) -> float:
        """Acerbi-Tasche expected shortfall of the portfolio loss."""
        x, w, _ = self._select(scenario)
        return measures.expected_shortfall(x, alpha, w)

    def standard_errors(self, alpha: float = 0.99, scenario: int | str | None = None) -> dict[str, float]:
        """Monte Carlo standard errors of EL, VaR_alpha and CVaR_alpha of the portfolio loss.

        Returns ``{"expected_loss", "var", "cvar"}`` -> standard error in the loss's units (fraction of
        the initial pool balance). The tail entries are NaN when fewer than 10 effective scenarios lie
        beyond the quantile (``n_eff (1 - alpha) < 10``, :mod:`creditsim.risk.measures`); cluster-robust
        when the run's macro paths share ancestors (:attr:`clusters`).
        """
        x, w, c = self._select(scenario)
        return {
            "expected_loss": measures.expected_value_se(x, w, c),
            "var": measures.value_at_risk_se(x, alpha, w, c),
            "cvar": measures.expected_shortfall_se(x, alpha, w, c),
        }

    def tranche(self, name: str) -> TrancheResult:
        for t in self.tranche_results:
            if t.name == name:
                return t
        raise ConfigError(f"no tranche named {name!r}; tranches are {[t.name for t in self.tranche_results]}")

    # ------------------------------------------------------------------ printing
    @property
    def n_months(self) -> int | None:
        """Simulation horizon in months: ``settings["horizon_months"]``, else the time axis of the kept
        cashflows or macro paths; None when the result holds none of them."""
        h = self.settings.get("horizon_months") if isinstance(self.settings, dict) else None
        if h is not None:
            return int(h)
        for arr in (*self.cashflows.values(), self.macro_paths):
            if arr is not None:
                return int(arr.shape[1])
        return None

    def scenario_mix(self) -> dict[str, float]:
        """Realised share of each scenario type present in the run (weights applied), name -> fraction,
        in scenario-index order. The requested mix is ``settings["scenario_mix"]``; with drawn scenario
        types the two differ by sampling noise."""
        w = measures.normalise_weights(self.weights, self.n_sims)
        return {SCENARIOS[i]: float(w[self.scenarios == i].sum()) for i in sorted(set(self.scenarios.tolist()))}

    def __repr__(self) -> str:
        """A few lines a person can read: size, scenario mix, pool EL / VaR 99 / CVaR 99 and each
        tranche's EL and PD. Arrays are never printed (a 10,000-scenario result would flood the
        terminal); use :meth:`summary`, :meth:`risk_table` or the attributes for the numbers."""
        months = self.n_months
        head = f"SimulationResults: {self.n_sims:,} scenarios"
        head += f" x {months} months" if months is not None else ""
        if np.isfinite(self.initial_balance):
            head += f", initial pool balance {self.initial_balance:,.0f}"
        if self.weights is not None:
            head += " (weighted)"
        mix = self.scenario_mix()
        counts = np.bincount(self.scenarios, minlength=len(SCENARIOS))
        lines = [head,
                 "  scenario mix (share, scenarios):",
                 "    " + "  ".join(f"{name} {share:.1%} ({counts[SCENARIOS.index(name)]:,})"
                                    for name, share in mix.items())]
        span = f" over {months} months" if months is not None else ""
        el_se = measures.expected_value_se(self.portfolio_losses, self.weights, self.clusters)
        lines.append(f"  pool loss{span}, % of initial balance:")
        tail = self.tail_estimable(0.99)
        lines.append(f"    EL {_pct(self.expected_loss)} (s.e. {_pct(el_se)})   VaR 99% "
                     f"{_pct(self.var_99) if tail else '- (too few scenarios)'}   "
                     f"CVaR 99% {_pct(self.cvar_99) if tail else '-'}")
        if self.tranche_results:
            width = max(7, *(len(t.name) for t in self.tranche_results))
            lines.append(f"  {'tranche':<{width}}  {'balance':>15}  {'attach':>7}  {'EL':>8}  {'PD':>8}")
            for t in self.tranche_results:
                lines.append(f"  {t.name:<{width}}  {t.balance:>15,.0f}  {_pct(t.attachment, 1):>7}  "
                             f"{_pct(t.expected_loss):>8}  {_pct(t.pd):>8}")
            lines.append("  (tranche EL and PD: principal loss, % of note balance)")
        kept = [k for k in self.cashflows] + (["macro_paths"] if self.macro_paths is not None else [])
        lines.append(f"  kept arrays: {', '.join(kept) if kept else 'none'}")
        lines.append("  tables: .summary(), .risk_table(), .tranche_table(), .simulation_table()")
        return "\n".join(lines)

    # ------------------------------------------------------------------ tables
    def risk_table(self, alphas: tuple[float, ...] = (0.95, 0.99, 0.999)) -> pd.DataFrame:
        """Portfolio risk measures, all scenarios and each scenario type present in the run.

        Rows: ``n_sims``, ``expected_loss`` (+ ``_se``), ``var_<a>``/``cvar_<a>`` (+ ``_se``);
        columns: ``all`` then the scenario names. Losses are fractions of initial pool balance. A VaR /
        CVaR at a level with fewer than one expected scenario beyond it (``n_eff (1 - a) < 1``, e.g. 99.9 %
        of a 100-scenario group) is NaN: it would only be the group's largest loss.
        """
        cols: dict[str, dict[str, float]] = {}
        present = [None] + [SCENARIOS[i] for i in sorted(set(self.scenarios.tolist()))]
        for sc in present:
            x, w, c = self._select(sc)
            row: dict[str, float] = {"n_sims": float(x.size)}
            row["expected_loss"] = measures.expected_value(x, w)
            row["expected_loss_se"] = measures.expected_value_se(x, w, c)
            n_eff = measures.effective_sample_size(w, x.size)
            for a in alphas:
                tag = f"{a * 100:g}".replace(".", "_")
                # fewer than one scenario expected beyond the level: the "estimate" would be the sample
                # maximum whatever alpha is (VaR 99.9 % of 100 scenarios); NaN, shown as "-"
                shown = n_eff * (1.0 - a) >= 1.0 - 1e-9
                nan = float("nan")
                row[f"var_{tag}"] = measures.value_at_risk(x, a, w) if shown else nan
                row[f"var_{tag}_se"] = measures.value_at_risk_se(x, a, w, c)
                row[f"cvar_{tag}"] = measures.expected_shortfall(x, a, w) if shown else nan
                row[f"cvar_{tag}_se"] = measures.expected_shortfall_se(x, a, w, c)
            cols["all" if sc is None else sc] = row
        return pd.DataFrame(cols)

    def summary(self) -> pd.DataFrame:
        """One row for the portfolio and one per tranche.

        Columns: balance, attachment, detachment, pd, expected_loss, expected_loss_se, lgd, var_99,
        cvar_99, wal_years, irr_mean, irr_median. Loss columns are fractions of the row's own balance
        (pool balance for the portfolio row, note balance for a tranche), cumulative over the horizon.
        Columns that do not apply to the portfolio row (pd, lgd, wal, irr) are NaN.
        """
        x, w = self.portfolio_losses, self.weights
        rows = {
            "portfolio": {
                "balance": self.initial_balance,
                "attachment": 0.0,
                "detachment": 1.0,
                # "probability of any loss" is ~1 for any real pool and says nothing: not reported
                "pd": float("nan"),
                "expected_loss": measures.expected_value(x, w),
                "expected_loss_se": measures.expected_value_se(x, w, self.clusters),
                "lgd": float("nan"),
                "var_99": measures.value_at_risk(x, 0.99, w),
                "cvar_99": measures.expected_shortfall(x, 0.99, w),
                "wal_years": float("nan"),
                "irr_mean": float("nan"),
                "irr_median": float("nan"),
            }
        }
        for t in self.tranche_results:
            rows[t.name] = {
                "balance": t.balance,
                "attachment": t.attachment,
                "detachment": t.detachment,
                "pd": t.pd,
                "expected_loss": t.expected_loss,
                "expected_loss_se": t.expected_loss_se,
                "lgd": t.lgd,
                "var_99": t.var(0.99),
                "cvar_99": t.cvar(0.99),
                "wal_years": t.mean_wal,
                "irr_mean": t.mean_irr,
                "irr_median": t.median_irr,
            }
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "name"
        return df

    def tranche_table(self) -> pd.DataFrame:
        """Tranche metrics by scenario type: rows (tranche, scenario), columns pd/el/lgd/wal/irr."""
        records = []
        present = [None] + [SCENARIOS[i] for i in sorted(set(self.scenarios.tolist()))]
        for t in self.tranche_results:
            for sc in present:
                tt = t if sc is None else t.subset(self.scenarios == _scenario_index(sc))
                records.append({
                    "tranche": t.name, "scenario": "all" if sc is None else sc, "n_sims": tt.n_sims,
                    "pd": tt.pd, "expected_loss": tt.expected_loss, "lgd": tt.lgd,
                    "var_99": tt.var(0.99), "cvar_99": tt.cvar(0.99),
                    "wal_years": tt.mean_wal, "irr_mean": tt.mean_irr,
                })
        return pd.DataFrame.from_records(records)

    def loss_distribution(self, n_bins: int = 50) -> pd.DataFrame:
        """Histogram of portfolio losses: bin edges, probability mass and cumulative probability."""
        x = self.portfolio_losses
        w = measures.normalise_weights(self.weights, x.size)
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            hi = lo + 1e-12
        mass, edges = np.histogram(x, bins=n_bins, range=(lo, hi), weights=w)
        return pd.DataFrame({
            "loss_from": edges[:-1], "loss_to": edges[1:], "probability": mass,
            "cumulative_probability": np.cumsum(mass),
        })

    def pool_cashflows_by_month(self) -> pd.DataFrame:
        """Scenario-weighted mean pool cashflows per month (rows t = 0..T-1, column ``month`` = t + 1, the
        month after the cut-off as the report's charts number it; then POOL_CF_TYPES)."""
        if "pool" not in self.cashflows:
            return pd.DataFrame(columns=["month", *POOL_CF_TYPES])
        pool = self.cashflows["pool"]
        w = measures.normalise_weights(self.weights, self.n_sims)
        mean = np.einsum("s,stk->tk", w, pool)
        df = pd.DataFrame(mean, columns=list(POOL_CF_TYPES))
        df.insert(0, "month", np.arange(1, pool.shape[1] + 1))
        return df

    def simulation_table(self) -> pd.DataFrame:
        """One row per simulation: ``sim`` (0..S-1), ``scenario_id`` (0 baseline .. 3 stagflation),
        ``scenario`` (its name), ``weight`` (only for a weighted run, normalised to sum 1),
        ``portfolio_loss`` (fraction of the initial pool balance) and, per tranche in priority order,
        ``<name>_loss`` (principal loss, fraction of the note balance) and ``<name>_irr`` (annual
        decimal, -1.0 when nothing was received)."""
        cols: dict[str, Any] = {
            "sim": np.arange(self.n_sims), "scenario_id": self.scenarios,
            "scenario": np.asarray(SCENARIOS, dtype=object)[self.scenarios],
        }
        if self.weights is not None:
            cols["weight"] = measures.normalise_weights(self.weights, self.n_sims)
        cols["portfolio_loss"] = self.portfolio_losses
        for t in self.tranche_results:
            cols[f"{t.name}_loss"] = t.losses
            cols[f"{t.name}_irr"] = t.irr
        return pd.DataFrame(cols)

    def tranche_cashflows_by_month(self) -> pd.DataFrame:
        """Scenario-weighted mean tranche cashflows per month, currency units: rows t = 0..T-1, columns
        ``month`` then ``<tranche>_interest``, ``<tranche>_principal``, ``<tranche>_balance`` for each
        tranche (in priority order) and each of the three arrays the run kept. Balance is the note
        balance at the end of the month including capitalised interest (equity: its notional);
        principal includes capitalised interest repaid. Empty frame when no tranche array was kept
        (a run with ``keep_cashflows=False``)."""
        kinds = [k for k in ("interest", "principal", "balance") if f"tranche_{k}" in self.cashflows]
        names = [t.name for t in self.tranche_results]
        if not kinds or not names:
            return pd.DataFrame(columns=["month"])
        w = measures.normalise_weights(self.weights, self.n_sims)
        means = {k: np.einsum("s,stn->tn", w, self.cashflows[f"tranche_{k}"]) for k in kinds}
        n_months = next(iter(means.values())).shape[0]
        cols: dict[str, Any] = {"month": np.arange(1, n_months + 1)}  # month after the cut-off, as the charts
        for j, name in enumerate(names):
            for k in kinds:
                cols[f"{name}_{k}"] = means[k][:, j]
        return pd.DataFrame(cols)

    def settings_table(self) -> pd.DataFrame:
        rows = []
        for k, v in _flatten(self.settings).items():
            rows.append({"setting": k, "value": v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v, default=str)})
        return pd.DataFrame(rows, columns=["setting", "value"])

    # ------------------------------------------------------------------ writers
    def to_excel(self, path: str | os.PathLike) -> Path:
        """Write the workbook for people, atomically (:mod:`creditsim.risk.workbook`).

        Sheets: ``summary`` (portfolio + tranche metrics, and below it the risk measures by scenario
        type), ``tranches`` (tranche metrics by scenario type), ``loss_distribution``,
        ``pool_cashflows`` (mean per month), ``run_settings``, ``simulations`` (one row per simulation,
        :meth:`simulation_table`) and, when the run kept tranche cashflows, ``tranche_cashflows`` (mean
        per month, :meth:`tranche_cashflows_by_month`). The first five keep their order so readers
        that open a sheet by position still find it.

        Formats: headers bold, columns fitted to their content, panes frozen under the header and
        right of the first column; currency units ``#,##0``, fractions (losses, PD, LGD, IRR,
        attachment, probabilities) ``0.00%``, WAL in years ``0.00``, counts ``#,##0``. Values stay
        unrounded numbers. Text cells starting with = + - @ are escaped with a leading quote so no
        spreadsheet evaluates them as formulas. A run with more simulations than an Excel sheet has
        rows gets a note in ``simulations`` pointing to the parquet tables instead.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = self.summary().reset_index()
        risk_rows = self.risk_table().reset_index().rename(columns={"index": "measure"})
        # the risk table carries its unit by row: a scenario count, then loss fractions
        risk_formats = [COUNT_FORMAT if m == "n_sims" else PERCENT_FORMAT for m in risk_rows["measure"]]
        pool_cf = self.pool_cashflows_by_month()

        def block(df: pd.DataFrame, money: tuple[str, ...] = (), **kw: Any) -> Block:
            return Block(df, formats=_column_formats(df, money), **kw)

        sheets = [
            Sheet("summary", [
                block(summary, money=("balance",)),
                Block(risk_rows, row_formats=risk_formats,
                      caption="Portfolio loss by scenario type, fraction of the initial pool balance"),
            ]),
            Sheet("tranches", [block(self.tranche_table())]),
            Sheet("loss_distribution", [block(self.loss_distribution())]),
            Sheet("pool_cashflows", [block(pool_cf, money=tuple(POOL_CF_TYPES))]),
            Sheet("run_settings", [block(self.settings_table())]),
        ]
        if self.n_sims < EXCEL_MAX_ROWS:
            sims = self.simulation_table()
            fractions = ("portfolio_loss", *(f"{t.name}_{k}" for t in self.tranche_results for k in ("loss", "irr")))
            sheets.append(Sheet("simulations", [Block(sims, formats={
                "sim": COUNT_FORMAT, "scenario_id": COUNT_FORMAT, **{c: PERCENT_FORMAT for c in fractions}})]))
        else:
            note = (f"{self.n_sims:,} simulations do not fit in one Excel sheet ({EXCEL_MAX_ROWS - 1:,} rows): "
                    "read portfolio.parquet and tranches.parquet of the run directory "
                    "(SimulationResults.load(...).simulation_table())")
            sheets.append(Sheet("simulations", [Block(pd.DataFrame({"note": [note]}))]))
        tranche_cf = self.tranche_cashflows_by_month()
        if len(tranche_cf):
            sheets.append(Sheet("tranche_cashflows", [block(tranche_cf, money=tuple(tranche_cf.columns[1:]))]))
        return write_workbook(path, sheets)

    def to_parquet(
        self,
        directory: str | os.PathLike,
        extra_files: dict[str, str | bytes] | None = None,
        extra_writers: list[tuple[str, Callable[[Path], Any]]] | None = None,
    ) -> Path:
        """Write the full result to ``directory`` (parquet tables + ``meta.json``), atomically.

        The directory is assembled in a temporary sibling ``.<name>.creditsim-tmp-<pid>-*`` and renamed
        into place; an existing result is first renamed to ``.<name>.creditsim-bak-<pid>-*``, the new one
        renamed in, then the backup deleted (:func:`creditsim.fileio.replace_result_dir`). So at every
        instant the old complete result or the new complete one is reachable: Ctrl-C between the two
        renames renames the backup back at once, and after SIGKILL the next run (or check) restores it;
        temp/backup siblings of dead processes are removed at the start of the next run.

        Safety (decision): only an empty directory or a *previous creditsim result* is replaced -- its
        ``meta.json`` carries ``"producer": "creditsim"`` and lists in ``"files"`` every other file in
        the directory. A directory with any other file in it (a user's notes in an old run, a foreign
        ``meta.json``, results written before the marker existed) is refused with
        :class:`ConfigError` before anything is written; its files are never deleted.

        Args:
            extra_files: more files to put in the directory, name -> text or bytes (e.g. run.json).
            extra_writers: ``(name, write(path))`` callables producing more files (Excel, HTML).
        """
        directory = Path(directory)
        check_result_target(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(directory)
        try:
            self._write_parquet_files(tmp)
            for name, content in (extra_files or {}).items():
                _check_file_name(name)
                target = tmp / name
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content, encoding="utf-8")
            fault_point("write_extra")
            for name, write in extra_writers or []:
                _check_file_name(name)
                write(tmp / name)
            # meta.json last: it lists every file, which is what makes the directory "ours"
            meta = json.loads((tmp / "meta.json").read_text())
            meta["files"] = sorted(p.name for p in tmp.iterdir() if p.name != "meta.json")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            fault_point("write_meta")
            replace_result_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def _write_parquet_files(self, out: Path) -> None:
        n = self.n_sims
        pd.DataFrame({
            "sim": np.arange(n), "scenario": self.scenarios,
            "weight": measures.normalise_weights(self.weights, n), "loss": self.portfolio_losses,
            **({} if self.clusters is None else {"path_cluster": self.clusters}),
        }).to_parquet(out / "portfolio.parquet", index=False)
        tranche_meta = []
        frames = []
        for t in self.tranche_results:
            frames.append(pd.DataFrame({
                "tranche": t.name, "sim": np.arange(n), "loss": t.losses, "irr": t.irr, "wal": t.wal,
                "pv_loss": np.full(n, np.nan) if t.pv_losses is None else t.pv_losses,
            }))
            tranche_meta.append({
                "name": t.name, "balance": t.balance, "coupon": _json_float(t.coupon),
                "attachment": _json_float(t.attachment), "detachment": _json_float(t.detachment),
                "equity": bool(t.equity), "has_pv_losses": t.pv_losses is not None,
            })
        if frames:
            pd.concat(frames, ignore_index=True).to_parquet(out / "tranches.parquet", index=False)
        cf_meta = {}
        for key, arr in self.cashflows.items():
            cols = _array_columns(key, arr.shape[2], [t.name for t in self.tranche_results])
            _write_3d(out / f"cf_{key}.parquet", arr)
            cf_meta[key] = cols
        if self.macro_paths is not None:
            _write_3d(out / "macro_paths.parquet", self.macro_paths)
        fault_point("write_parquet")
        meta = {
            "producer": RESULT_MARKER,
            "format_version": _FORMAT_VERSION,
            "n_sims": n,
            "initial_balance": _json_float(self.initial_balance),
            "weighted": self.weights is not None,
            "tranches": tranche_meta,
            "cashflows": cf_meta,
            "has_macro_paths": self.macro_paths is not None,
            "settings": self.settings,
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SimulationResults:
        """Read a result written by :meth:`to_parquet`."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{directory}: not a simulation result directory (no meta.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{meta_path}: unreadable JSON ({exc.msg} at line {exc.lineno})") from None
        if meta.get("format_version") != _FORMAT_VERSION:
            raise DataError(f"{meta_path}: format_version {meta.get('format_version')!r}, expected {_FORMAT_VERSION}")
        n = int(meta["n_sims"])
        # a run copied half-way or edited by hand: name the missing table instead of a pyarrow traceback
        needed = ["portfolio.parquet"] + (["tranches.parquet"] if meta.get("tranches") else [])
        for name in needed:
            if not (directory / name).is_file():
                raise DataError(f"{directory}: result directory is incomplete, {name} is missing")
        port = _read_table(directory / "portfolio.parquet", ("sim", "loss", "scenario")).sort_values("sim")
        tranches = []
        if meta["tranches"]:
            tdf = _read_table(directory / "tranches.parquet", ("sim", "tranche", "loss", "irr", "wal"))
            for tm in meta["tranches"]:
                sub = tdf[tdf["tranche"] == tm["name"]].sort_values("sim")
                tranches.append(TrancheResult(
                    name=tm["name"], balance=float(tm["balance"]), losses=sub["loss"].to_numpy(),
                    irr=sub["irr"].to_numpy(), wal=sub["wal"].to_numpy(),
                    coupon=_from_json_float(tm["coupon"]), attachment=_from_json_float(tm["attachment"]),
                    detachment=_from_json_float(tm["detachment"]), equity=bool(tm["equity"]),
                    pv_losses=sub["pv_loss"].to_numpy() if tm["has_pv_losses"] else None,
                    weights=port["weight"].to_numpy() if meta["weighted"] else None,
                ))
        cashflows = {key: _read_3d(directory / f"cf_{key}.parquet", n, cols) for key, cols in meta["cashflows"].items()}
        macro = _read_3d(directory / "macro_paths.parquet", n, list(MACRO_VARS)) if meta["has_macro_paths"] else None
        return cls(
            portfolio_losses=port["loss"].to_numpy(), tranche_results=tranches, cashflows=cashflows,
            scenarios=port["scenario"].to_numpy(), weights=port["weight"].to_numpy() if meta["weighted"] else None,
            macro_paths=macro, initial_balance=_from_json_float(meta["initial_balance"]),
            settings=meta.get("settings", {}),
            clusters=port["path_cluster"].to_numpy() if "path_cluster" in port.columns else None,
        )

    # ------------------------------------------------------------------ plots
    def plot(self, path: str | os.PathLike | None = None, macro_var: str = "unemployment_rate"):
        """Figure with the loss histogram (VaR/CVaR 99 % marked), tranche expected-loss bars and a
        macro fan chart (5/25/50/75/95 % bands of ``macro_var``). Saved atomically as PNG when
        ``path`` is given. Returns the matplotlib Figure."""
        # a bare Figure (no pyplot) renders with the Agg canvas and never opens a window
        from matplotlib.figure import Figure

        if macro_var not in MACRO_VARS:
            raise ConfigError(f"macro_var {macro_var!r}: expected one of {list(MACRO_VARS)}")
        fig = Figure(figsize=(15, 4.5))
        ax1, ax2, ax3 = fig.subplots(1, 3)
        w = measures.normalise_weights(self.weights, self.n_sims)
        ax1.hist(self.portfolio_losses * 100, bins=50, weights=w, color="#4c72b0")
        v, c = self.var_99 * 100, self.cvar_99 * 100
        ax1.axvline(v, color="#dd8452", ls="--", label=f"VaR 99% = {v:.2f}%")
        ax1.axvline(c, color="#c44e52", ls="-", label=f"CVaR 99% = {c:.2f}%")
        ax1.set_xlabel("portfolio loss, % of initial balance")
        ax1.set_ylabel("probability")
        ax1.set_title("Portfolio loss distribution")
        ax1.legend(fontsize=8)
        names = [t.name for t in self.tranche_results]
        els = [t.expected_loss * 100 for t in self.tranche_results]
        ax2.bar(names, els, color="#55a868")
        ax2.set_ylabel("expected loss, % of tranche balance")
        ax2.set_title("Tranche expected loss")
        if self.macro_paths is not None:
            j = MACRO_VARS.index(macro_var)
            y = self.macro_paths[:, :, j] * 100
            months = np.arange(y.shape[1])
            q = np.quantile(y, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
            ax3.fill_between(months, q[0], q[4], alpha=0.25, color="#8172b3", label="5-95%")
            ax3.fill_between(months, q[1], q[3], alpha=0.45, color="#8172b3", label="25-75%")
            ax3.plot(months, q[2], color="#3b2f80", label="median")
            ax3.set_xlabel("month")
            ax3.set_ylabel(f"{macro_var}, %")
            ax3.legend(fontsize=8)
        else:
            ax3.text(0.5, 0.5, "no macro paths stored", ha="center", va="center", transform=ax3.transAxes)
        ax3.set_title(f"Macro fan chart: {macro_var}")
        fig.tight_layout()
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".tmp.png")
        return fig


# ---------------------------------------------------------------------- helpers
def _pct(x: float, digits: int = 3) -> str:
    """A fraction as a percent string for :meth:`SimulationResults.__repr__`; NaN -> "-"."""
    return "-" if not np.isfinite(x) else f"{x * 100:.{digits}f}%"


def _scenario_index(scenario: int | str) -> int:
    return scenario_index(scenario)


#: fraction columns of the tables (losses, PD, attachment, IRR, probabilities): shown as percent
_PERCENT_COLUMNS = re.compile(
    r"^(pd|lgd|attachment|detachment|expected_loss(_se)?|c?var_\d+(_\d+)?(_se)?|irr_(mean|median)|"
    r"loss_from|loss_to|probability|cumulative_probability)$")
#: count columns: scenario counts, month numbers
_COUNT_COLUMNS = frozenset({"n_sims", "month", "sim", "scenario_id"})


def _column_formats(df: pd.DataFrame, money: tuple[str, ...] = ()) -> dict[str, str]:
    """Excel number format per column of one of the result tables: ``money`` columns (currency
    units) ``#,##0``, fraction columns ``0.00%``, ``wal_years`` ``0.00``, counts ``#,##0``; other
    columns stay General."""
    formats: dict[str, str] = {}
    for col in df.columns:
        name = str(col)
        if name in money:
            formats[col] = MONEY_FORMAT
        elif _PERCENT_COLUMNS.match(name):
            formats[col] = PERCENT_FORMAT
        elif name == "wal_years":
            formats[col] = YEARS_FORMAT
        elif name in _COUNT_COLUMNS:
            formats[col] = COUNT_FORMAT
    return formats


def _check_file_name(name: str) -> None:
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", name) or name == "meta.json":
        raise ConfigError(f"extra file name {name!r}: expected a plain file name other than meta.json")


def _json_float(x: float) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def _from_json_float(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _array_columns(key: str, k: int, tranche_names: list[str]) -> list[str]:
    if key == "pool":
        return list(POOL_CF_TYPES)
    if key.startswith("tranche_") and k == len(tranche_names):
        return list(tranche_names)
    return [f"c{i}" for i in range(k)]


def _write_3d(path: Path, arr: np.ndarray) -> None:
    s, t, k = arr.shape
    df = pd.DataFrame(arr.reshape(s * t, k), columns=[f"v{i}" for i in range(k)])
    df.insert(0, "month", np.tile(np.arange(t, dtype=np.int32), s))
    df.insert(0, "sim", np.repeat(np.arange(s, dtype=np.int64), t))
    # parquet column names are positional (v0..); the labels live in meta.json so any tranche name
    # (spaces, unicode, duplicates after normalisation) round-trips
    df.to_parquet(path, index=False)


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A result table, or a one-line DataError naming the file when it is not a readable Parquet
    table with ``columns`` (a run copied half-way, a file edited or overwritten by hand)."""
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several kinds (ArrowInvalid, OSError, ...) for a bad file
        raise DataError(f"{path}: not a readable Parquet table ({type(exc).__name__}); the run directory is "
                        f"damaged, re-run or restore it") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: columns {missing} are missing; the run directory is damaged")
    return df


def _read_3d(path: Path, n: int, cols: list[str]) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path.parent}: result directory is incomplete, {path.name} is missing")
    df = _read_table(path, ("sim", "month", *(f"v{i}" for i in range(len(cols))))).sort_values(["sim", "month"],
                                                                                              kind="stable")
    k = len(cols)
    t = int(df["month"].max()) + 1 if len(df) else 0
    vals = df[[f"v{i}" for i in range(k)]].to_numpy(np.float64)
    if vals.shape[0] != n * t:
        raise DataError(f"{path}: {vals.shape[0]} rows, expected {n} simulations x {t} months")
    return vals.reshape(n, t, k)


def check_result_target(directory: Path, option: str = "directory") -> None:
    """Raise :class:`ConfigError` unless ``directory`` may receive a result: it does not exist, is an
    empty directory, or is a previous creditsim result holding only our files
    (:func:`creditsim.fileio.is_our_result_dir`). Nothing else is ever replaced; a backup left by a
    killed run is restored and dead runs' temp siblings are removed first."""
    check_output_target(directory, "result_dir", option)
