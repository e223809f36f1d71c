"""Synthetic rating panels from a Markov chain (for tests, benchmarks and examples)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, DataError
from creditsim.ratings.estimate import validate_matrix
from creditsim.ratings.limits import MAX_YEARS, check_count, check_memory

__all__ = ["simulate_rating_panel"]


def simulate_rating_panel(
    P: np.ndarray | pd.DataFrame,
    n_entities: int,
    n_years: int,
    *,
    seed: int = 0,
    states: Sequence[str] | None = None,
    initial: np.ndarray | None = None,
    labels: bool = False,
) -> pd.DataFrame:
    """Complete yearly panel of a homogeneous chain with one-year matrix ``P`` (K, K).

    Returns a frame with columns ``entity`` (int64), ``time`` (int64 year 0..n_years) and
    ``rating`` (int64 code 0..K-1, or the label from ``states`` when ``labels``), one row per
    entity and year (``n_entities * (n_years + 1)`` rows, sorted by entity then time). Entities start
    in ``initial`` (K,) distribution (default: uniform over the non-default states). All draws come
    from ``numpy.random.default_rng(seed)``.
    """
    p = validate_matrix(P, name="P")
    k = p.shape[0]
    n_entities = check_count(n_entities, "n_entities")
    n_years = check_count(n_years, "n_years", high=MAX_YEARS, unit=" (years)")
    rows = n_entities * (n_years + 1)
    # path (int64) + three frame columns + the (n_entities, K) comparison per year; labels add a pointer column
    check_memory(8.0 * rows * (5 if labels else 4) + n_entities * k, "n_entities", f"{n_entities} entities x {n_years + 1} years")
    rng = np.random.default_rng(seed)
    if initial is None:
        initial = np.r_[np.full(k - 1, 1.0 / (k - 1)), 0.0]
    init = np.asarray(initial, dtype=np.float64)
    if init.shape != (k,) or not np.isfinite(init).all() or (init < 0).any() or abs(init.sum() - 1.0) > 1e-9:
        raise DataError(f"initial must be {k} non-negative probabilities summing to 1 (one per state), got {initial!r}")
    if labels and states is not None and len(states) != k:
        raise ConfigError(f"states has {len(states)} labels but P is {k}x{k}")
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    path = np.empty((n_entities, n_years + 1), dtype=np.int64)
    path[:, 0] = np.minimum(np.searchsorted(np.cumsum(init), rng.random(n_entities), side="right"), k - 1)
    for t in range(n_years):
        u = rng.random(n_entities)
        path[:, t + 1] = (u[:, None] >= cum[path[:, t]]).sum(axis=1)
    frame = pd.DataFrame(
        {
            "entity": np.repeat(np.arange(n_entities, dtype=np.int64), n_years + 1),
            "time": np.tile(np.arange(n_years + 1, dtype=np.int64), n_entities),
            "rating": path.reshape(-1),
        }
    )
    if labels:
        lab = np.asarray(states if states is not None else [str(i) for i in range(k)], dtype=object)
        frame["rating"] = lab[frame["rating"].to_numpy()]
    return frame
