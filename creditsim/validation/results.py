"""The result object every validation test returns, and shared input checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from creditsim.errors import ConfigError, DataError

__all__ = ["ValidationResult", "check_alpha", "check_probabilities", "check_outcomes", "check_count"]


@dataclass(frozen=True)
class ValidationResult:
    """One test's outcome.

    Attributes:
        name: the test. statistic: its value. p_value: probability under the null of a value at least
            as extreme (NaN where the test has none, e.g. the Brier score). decision: ``"pass"`` /
            ``"reject"`` at ``alpha``, or a traffic-light colour. alpha: the test's level.
        inputs: the inputs that define the test (counts, PDs, bins). details: secondary numbers
            (confidence intervals, decompositions, per-bin contributions).
    """

    name: str
    statistic: float
    p_value: float
    decision: str
    alpha: float
    inputs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "statistic": self.statistic, "p_value": self.p_value, "decision": self.decision,
                "alpha": self.alpha, "inputs": self.inputs, "details": self.details}

    def __str__(self) -> str:
        p = "n/a" if not np.isfinite(self.p_value) else f"{self.p_value:.4g}"
        return f"{self.name}: statistic {self.statistic:.4g}, p-value {p}, {self.decision} (alpha {self.alpha:g})"


def check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0.0 < float(alpha) < 1.0:
        raise ConfigError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    return float(alpha)


def check_probabilities(p: Any, name: str, open_interval: bool = False) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.isfinite(a).all():
        raise DataError(f"{name}: expected finite probabilities, got {a.size} values with NaN/inf or none")
    bad = (a <= 0) | (a >= 1) if open_interval else (a < 0) | (a > 1)
    if bad.any():
        where = "(0, 1)" if open_interval else "[0, 1]"
        raise DataError(f"{name}: expected probabilities in {where} (fractions, not percent), got e.g. {a[bad][0]!r}")
    return a


def check_outcomes(y: Any, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(y).reshape(-1)
    if a.size == 0 or not np.isin(a, (0, 1, True, False)).all():
        raise DataError(f"{name}: expected 0/1 outcomes, got values like {a[~np.isin(a, (0, 1))][:3].tolist()!r}")
    if n is not None and a.size != n:
        raise DataError(f"{name}: expected {n} outcomes (one per prediction), got {a.size}")
    return a.astype(np.int64)


def check_count(x: Any, name: str) -> int:
    if isinstance(x, bool) or not float(x).is_integer() or x < 0:
        raise DataError(f"{name}: expected a non-negative whole number, got {x!r}")
    return int(x)
