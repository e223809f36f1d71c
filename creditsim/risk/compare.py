"""Run against run: what changed between two saved simulations, and whether it is more than noise.

A risk committee asks "what moved since last quarter?" (a new tape, a new macro source, a changed
deal). :func:`compare_runs` lines two :class:`~creditsim.risk.results.SimulationResults` up tranche by
tranche (matched by name) and reports each metric in both runs, the change, and for expected losses a
z-score of the change:

* **Paired** (common random numbers): when both runs have the same number of simulations, the same
  seed, the same scenario labels (and weights and path clusters), simulation ``i`` of each run used
  the same random streams (:mod:`creditsim.rng`), so the change is the mean of per-simulation
  differences and its standard error comes from those differences (cluster-robust as the run's own,
  :func:`creditsim.risk.measures.expected_value_se`). This is what makes a small model change
  measurable: the shared noise cancels. The estimate stays valid when the runs differ in more (tape,
  horizon, macro source): the pairs are still independent across ``i``; they are then just less
  correlated, and the standard error says so.
* **Independent** otherwise: ``se = sqrt(se_A^2 + se_B^2)``.

Weighted runs are compared on their weighted means; a paired comparison needs the same weights too.
The settings that differ are listed first (the deal, the versions and the restricted-data record are
compared by content, not shown in full). All losses are fractions of the row's own balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creditsim.risk import measures
from creditsim.risk.results import SimulationResults

__all__ = ["RunComparison", "compare_runs", "COMPARED_METRICS"]

#: per-row metrics shown for both runs and their change
COMPARED_METRICS: tuple[str, ...] = ("expected_loss", "var_99", "cvar_99", "pd", "lgd", "wal_years", "irr_mean")
#: settings never worth a line of their own (they always differ, or are summarised by another line)
_SKIPPED_SETTINGS = ("versions", "wall_seconds", "simulation_seconds", "created", "run_seconds", "chunk_size",
                     "chunk_threads")
#: differing leaves of one nested setting (the deal) listed at most
_MAX_LEAVES = 25


@dataclass(frozen=True)
class RunComparison:
    """The result of :func:`compare_runs`.

    Attributes:
        table: one row per name (``portfolio``, then the tranches of A, then those only in B); columns
            ``<metric>_a``, ``<metric>_b``, ``<metric>_change`` for :data:`COMPARED_METRICS`, and
            ``expected_loss_change_se`` / ``expected_loss_change_z``.
        settings: the settings that differ: index = setting, columns ``a`` and ``b`` (text).
        by_scenario: expected pool loss by scenario type in each run (columns ``a``, ``b``).
        paired: whether the changes are paired differences (common random numbers).
        labels: the runs' names.
        pairing: why the runs are, or are not, compared in pairs (one line).
    """

    table: pd.DataFrame
    settings: pd.DataFrame
    by_scenario: pd.DataFrame
    paired: bool
    labels: tuple[str, str]
    pairing: str = ""

    def significant(self, z: float = 3.0) -> list[str]:
        """Rows whose expected-loss change is beyond ``z`` standard errors."""
        zz = self.table["expected_loss_change_z"].abs()
        return [str(name) for name in self.table.index[zz > z]]

    def __str__(self) -> str:
        a, b = self.labels
        lines = [f"{a} -> {b}: {self.pairing}"]
        if self.settings.empty:
            lines.append("  settings: the same")
        for name, row in self.settings.iterrows():
            lines.append(f"  {name}: {row['a']} -> {row['b']}")
        for name, row in self.table.iterrows():
            lines.append(f"  {name:>12}: EL {_pct(row['expected_loss_a'])} -> {_pct(row['expected_loss_b'])} "
                         f"(change {_pct(row['expected_loss_change'])}, z {_z(row['expected_loss_change_z'])})")
        return "\n".join(lines)


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.3f} %"


def _z(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:+.1f}"


def compare_runs(a: SimulationResults, b: SimulationResults, labels: tuple[str, str] = ("A", "B")) -> RunComparison:
    """Compare run ``b`` against run ``a`` (module docstring)."""
    paired, pairing = _pairing(a, b)
    summary_a, summary_b = a.summary(), b.summary()
    names = list(summary_a.index) + [n for n in summary_b.index if n not in summary_a.index]
    rows = {}
    for name in names:
        row: dict[str, float] = {}
        for m in COMPARED_METRICS:
            va = float(summary_a.at[name, m]) if name in summary_a.index else float("nan")
            vb = float(summary_b.at[name, m]) if name in summary_b.index else float("nan")
            row[f"{m}_a"], row[f"{m}_b"], row[f"{m}_change"] = va, vb, vb - va
        row["expected_loss_change_se"] = _change_se(a, b, name, summary_a, summary_b, paired)
        se = row["expected_loss_change_se"]
        row["expected_loss_change_z"] = row["expected_loss_change"] / se if se > 0 else float("nan")
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "name"
    return RunComparison(table, _settings_diff(a.settings, b.settings), _by_scenario(a, b), paired, labels, pairing)


def _same(x: np.ndarray | None, y: np.ndarray | None) -> bool:
    return (x is None) == (y is None) and (x is None or np.array_equal(x, y))


def _pairing(a: SimulationResults, b: SimulationResults) -> tuple[bool, str]:
    """Whether simulation i of ``a`` and of ``b`` form a pair, and why (not). The paired s.e. needs one
    cluster structure for the pairs (anchored macro paths share ancestors), so the clusters must match;
    a pair of runs that cannot be paired is compared as independent, the conservative choice."""
    checks = (
        (a.n_sims == b.n_sims, f"different numbers of simulations ({a.n_sims} and {b.n_sims})"),
        (a.settings.get("seed") == b.settings.get("seed"),
         f"different seeds ({a.settings.get('seed')} and {b.settings.get('seed')})"),
        (a.n_sims == b.n_sims and np.array_equal(a.scenarios, b.scenarios), "different scenario labels"),
        (_same(a.weights, b.weights), "different simulation weights"),
        (_same(a.clusters, b.clusters), "different macro-path clusters"),
    )
    failed = [why for ok, why in checks if not ok]
    if failed:
        return False, f"independent runs: {failed[0]}"
    return True, "paired: same seed, simulations, scenario labels and clusters (simulation i against simulation i)"


def _losses(run: SimulationResults, name: str) -> np.ndarray | None:
    if name == "portfolio":
        return run.portfolio_losses
    for t in run.tranche_results:
        if t.name == name:
            return np.asarray(t.losses, dtype=np.float64)
    return None


def _change_se(a: SimulationResults, b: SimulationResults, name: str, sa: pd.DataFrame, sb: pd.DataFrame,
               paired: bool) -> float:
    """Standard error of the change of ``name``'s expected loss (NaN when a run lacks the row)."""
    la, lb = _losses(a, name), _losses(b, name)
    if la is None or lb is None:
        return float("nan")
    if paired:
        return float(measures.expected_value_se(lb - la, b.weights, b.clusters))
    return float(np.hypot(sa.at[name, "expected_loss_se"], sb.at[name, "expected_loss_se"]))


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= 80 else f"{text[:77]}..."
    return str(value)


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """Nested settings (the deal) as ``{path: leaf}``: ``deal.tranches[2].coupon``."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}.{key}").items()}
    if isinstance(value, list) and any(isinstance(x, (dict, list)) for x in value):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def _settings_diff(sa: dict[str, Any], sb: dict[str, Any]) -> pd.DataFrame:
    """Settings that differ; a nested one (the deal) by its differing leaves, at most :data:`_MAX_LEAVES`."""
    rows = {}
    for key in list(sa) + [k for k in sb if k not in sa]:
        if key in _SKIPPED_SETTINGS:
            continue
        va, vb = sa.get(key, "(absent)"), sb.get(key, "(absent)")
        if json.dumps(va, sort_keys=True, default=str) == json.dumps(vb, sort_keys=True, default=str):
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            la, lb = _leaves(va, key), _leaves(vb, key)
            paths = [p for p in list(la) + [p for p in lb if p not in la] if la.get(p, "(absent)") != lb.get(p, "(absent)")]
            for p in paths[:_MAX_LEAVES]:
                rows[p] = {"a": _text(la.get(p, "(absent)")), "b": _text(lb.get(p, "(absent)"))}
            if len(paths) > _MAX_LEAVES:
                rows[f"{key} (more)"] = {"a": f"{len(paths) - _MAX_LEAVES} more fields differ", "b": ""}
        else:
            rows[key] = {"a": _text(va), "b": _text(vb)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["a", "b"])


def _by_scenario(a: SimulationResults, b: SimulationResults) -> pd.DataFrame:
    ra, rb = a.risk_table(alphas=(0.99,)), b.risk_table(alphas=(0.99,))
    cols = list(ra.columns) + [c for c in rb.columns if c not in ra.columns]
    return pd.DataFrame({"a": ra.loc["expected_loss"].reindex(cols), "b": rb.loc["expected_loss"].reindex(cols)})
