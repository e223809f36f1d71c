"""Resource limits of the rating tools: refuse a request before allocating, with a one-line ConfigError.

- :data:`MAX_YEARS` = 200: the longest projection horizon (years). A lifetime PD curve beyond 200
  years has no credit meaning (every grade has defaulted with probability ~1), so a larger value is
  a typing or unit mistake (e.g. months or days given as years).
- :data:`MEMORY_BUDGET_BYTES` = 2 GiB: the largest working-memory estimate a single call may need.
  Estimates count the float64 arrays a call allocates (output plus its largest temporaries); they are
  upper-bound approximations, not measurements. Raise the module attribute for bigger machines.
"""

from __future__ import annotations

import math

from creditsim.errors import ConfigError

__all__ = ["MAX_YEARS", "MEMORY_BUDGET_BYTES", "check_memory", "check_count"]

MAX_YEARS = 200
MEMORY_BUDGET_BYTES = 2 * 2**30


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024.0
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(n_bytes: float, param: str, what: str) -> None:
    """Raise :class:`ConfigError` naming ``param`` when ``n_bytes`` (estimate) exceeds the budget.

    ``what`` describes the request in words, e.g. ``"1e9 paths x 30 years of 8x8 matrices"``."""
    budget = MEMORY_BUDGET_BYTES
    if not math.isfinite(n_bytes) or n_bytes > budget:
        raise ConfigError(
            f"{param}: {what} needs about {_fmt_bytes(float(n_bytes))} of memory, more than the "
            f"{_fmt_bytes(budget)} budget (creditsim.ratings.limits.MEMORY_BUDGET_BYTES); use a smaller {param}"
        )


def check_count(value: object, param: str, *, low: int = 1, high: int | None = None, unit: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (whole numbers only; bools rejected), else ConfigError naming ``param``."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        f = math.nan
    if isinstance(value, bool) or not math.isfinite(f) or f != int(f):
        raise ConfigError(f"{param} must be a whole number{unit}, got {value!r}")
    n = int(f)
    if n < low or (high is not None and n > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{param} must be in {rng}{unit}, got {value!r}")
    return n
