"""Population stability: PSI (and CSI, the same index on one characteristic).

``PSI = sum_b (a_b - e_b) ln(a_b / e_b)`` over bins of the reference (expected) sample; rule of thumb
(Siddiqi 2006, *Credit Risk Scorecards*, ch. 8): < 0.10 stable (green), 0.10-0.25 some shift (amber),
> 0.25 shifted (red). An empty bin makes the index infinite, so the policy is explicit: ``"error"``
refuses it, ``"epsilon"`` gives empty bins a share ``epsilon`` (then renormalises), ``"merge"`` joins an
empty bin (in either sample) to its right neighbour (the last to its left) until none is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from creditsim.errors import ConfigError, DataError
from creditsim.validation.results import ValidationResult

__all__ = ["psi", "GREEN", "RED"]

GREEN, RED = 0.10, 0.25


def _sample(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.isfinite(a).all():
        raise DataError(f"{name}: expected finite values, got {a.size} values with NaN/inf or none")
    return a


def _merge(e: np.ndarray, a: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e, a, edges = list(e), list(a), list(edges)
    i = 0
    while len(e) > 1 and i < len(e):
        if e[i] == 0 or a[i] == 0:
            j = i + 1 if i + 1 < len(e) else i - 1
            lo, hi = min(i, j), max(i, j)
            e[lo:hi + 1] = [e[lo] + e[hi]]
            a[lo:hi + 1] = [a[lo] + a[hi]]
            del edges[hi]
            i = 0
            continue
        i += 1
    return np.array(e), np.array(a), np.array(edges)


def psi(expected: Any, actual: Any, bins: int = 10, edges: Any = None, empty_bin: str = "error",
        epsilon: float = 1e-4) -> ValidationResult:
    """PSI of ``actual`` against the reference sample ``expected`` (module docstring). Bins: ``edges`` (sorted,
    covering both samples) or ``bins`` quantile bins of ``expected``. ``decision``: green / amber / red."""
    e_x, a_x = _sample(expected, "expected"), _sample(actual, "actual")
    if empty_bin not in ("error", "epsilon", "merge"):
        raise ConfigError(f"empty_bin: expected 'error', 'epsilon' or 'merge', got {empty_bin!r}")
    if edges is None:
        inner = np.unique(np.quantile(e_x, np.linspace(0, 1, bins + 1)[1:-1]))
        cuts = np.r_[-np.inf, inner, np.inf]
    else:
        cuts = np.asarray(edges, dtype=np.float64)
        if cuts.ndim != 1 or cuts.size < 2 or (np.diff(cuts) <= 0).any():
            raise ConfigError("edges: expected at least two strictly increasing bin edges")
        if e_x.min() < cuts[0] or e_x.max() > cuts[-1] or a_x.min() < cuts[0] or a_x.max() > cuts[-1]:
            raise DataError("edges: some values fall outside the bins; widen the first / last edge")
    # right-closed bins (a, b]; the first bin also takes its left edge
    e_n = np.histogram(e_x, cuts)[0].astype(np.float64)
    a_n = np.histogram(a_x, cuts)[0].astype(np.float64)
    if empty_bin == "merge":
        e_n, a_n, cuts = _merge(e_n, a_n, cuts)
    e_s, a_s = e_n / e_n.sum(), a_n / a_n.sum()
    if ((e_s == 0) | (a_s == 0)).any():
        if empty_bin == "error":
            raise DataError("psi: a bin is empty in one sample (the index would be infinite); use "
                            "empty_bin='epsilon' or 'merge', or fewer bins")
        e_s, a_s = np.maximum(e_s, epsilon), np.maximum(a_s, epsilon)
        e_s, a_s = e_s / e_s.sum(), a_s / a_s.sum()
    contrib = (a_s - e_s) * np.log(a_s / e_s)
    value = float(contrib.sum())
    colour = "green" if value < GREEN else "amber" if value <= RED else "red"
    return ValidationResult("psi", value, float("nan"), colour, 1.0, {"bins": int(e_s.size), "empty_bin": empty_bin},
                            {"expected_share": e_s.tolist(), "actual_share": a_s.tolist(), "contribution": contrib.tolist(),
                             "edges": cuts.tolist()})
