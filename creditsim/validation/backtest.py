"""Back-tests of a Monte Carlo VaR: Kupiec's proportion of failures, Christoffersen's independence and
conditional coverage, the Basel traffic light.

Inputs are exception indicators (1 where the loss exceeded the VaR) or their count; ``coverage`` is the
VaR level (0.99), so an exception has probability ``p = 1 - coverage`` under the null. Kupiec (1995, J.
Derivatives 3(2)); Christoffersen (1998, Int. Econ. Rev. 39(4)); Basel Committee (1996), "Supervisory
framework for the use of backtesting": green while the binomial probability of at most ``x`` exceptions
is below 95 %, red from 99.99 % (at 250 observations and 99 %: green 0-4, yellow 5-9, red 10+).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special, stats

from creditsim.errors import ConfigError, DataError
from creditsim.validation.results import ValidationResult, check_alpha, check_count, check_outcomes

__all__ = ["kupiec_pof", "christoffersen", "basel_traffic_light"]


def _coverage(coverage: float) -> float:
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float, np.floating)) or not 0 < coverage < 1:
        raise ConfigError(f"coverage: expected the VaR level in (0, 1), e.g. 0.99, got {coverage!r}")
    return float(coverage)


def _loglik(k: float, n: float, p: float) -> float:
    """log of ``(1 - p)^(n - k) p^k`` with ``0 log 0 = 0``."""
    return float(special.xlogy(n - k, 1 - p) + special.xlogy(k, p))


def kupiec_pof(exceptions: int, observations: int, coverage: float = 0.99, alpha: float = 0.05) -> ValidationResult:
    """Kupiec's likelihood ratio ``-2 ln [L(p) / L(x / n)]``, chi-square with 1 degree of freedom."""
    x, n = check_count(exceptions, "exceptions"), check_count(observations, "observations")
    if n == 0 or x > n:
        raise DataError(f"exceptions/observations: expected 0 <= exceptions <= observations > 0, got {x}/{n}")
    c, a = _coverage(coverage), check_alpha(alpha)
    p = 1 - c
    lr = -2 * (_loglik(x, n, p) - _loglik(x, n, x / n))
    pv = float(stats.chi2.sf(lr, 1))
    return ValidationResult("kupiec_pof", float(lr), pv, "reject" if pv < a else "pass", a,
                            {"exceptions": x, "observations": n, "coverage": c}, {"exception_rate": x / n})


def christoffersen(hits: Any, coverage: float = 0.99, alpha: float = 0.05) -> ValidationResult:
    """Independence test on the 0/1 exception sequence (first-order Markov alternative), chi-square 1;
    ``details`` adds the conditional-coverage statistic (Kupiec + independence, chi-square 2)."""
    h = check_outcomes(hits, "hits")
    if h.size < 2:
        raise DataError("hits: need at least two observations")
    c, a = _coverage(coverage), check_alpha(alpha)
    prev, nxt = h[:-1], h[1:]
    n00, n01 = int(np.sum((prev == 0) & (nxt == 0))), int(np.sum((prev == 0) & (nxt == 1)))
    n10, n11 = int(np.sum((prev == 1) & (nxt == 0))), int(np.sum((prev == 1) & (nxt == 1)))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    lr_ind = -2 * (_loglik(n01 + n11, n00 + n01 + n10 + n11, pi)
                   - _loglik(n01, n00 + n01, pi01) - _loglik(n11, n10 + n11, pi11))
    lr_pof = kupiec_pof(int(h.sum()), h.size, c, a).statistic
    pv = float(stats.chi2.sf(lr_ind, 1))
    return ValidationResult("christoffersen", float(lr_ind), pv, "reject" if pv < a else "pass", a,
                            {"observations": int(h.size), "exceptions": int(h.sum()), "coverage": c},
                            {"transitions": {"n00": n00, "n01": n01, "n10": n10, "n11": n11},
                             "conditional_coverage": float(lr_pof + lr_ind),
                             "conditional_coverage_p": float(stats.chi2.sf(lr_pof + lr_ind, 2))})


def basel_traffic_light(exceptions: int, observations: int = 250, coverage: float = 0.99) -> ValidationResult:
    """Zone of ``exceptions`` in ``observations``: ``P(X <= x)`` under Binomial(n, 1 - coverage) below 0.95
    green, below 0.9999 yellow, else red; the statistic is that cumulative probability."""
    x, n = check_count(exceptions, "exceptions"), check_count(observations, "observations")
    if n == 0 or x > n:
        raise DataError(f"exceptions/observations: expected 0 <= exceptions <= observations > 0, got {x}/{n}")
    c = _coverage(coverage)
    cum = float(stats.binom.cdf(x, n, 1 - c))
    zone = "green" if cum < 0.95 else "yellow" if cum < 0.9999 else "red"
    return ValidationResult("basel_traffic_light", cum, float(stats.binom.sf(x - 1, n, 1 - c)), zone, 0.0001,
                            {"exceptions": x, "observations": n, "coverage": c})
