"""Inputs of the waterfall, checked once: pool cashflows, the pool par at the cut-off and the per-scenario
market paths (base rate, high-yield spread, CCC par; the pool's WAS / WARF / WAL of the reinvestment
criteria), each as float64 tensors with one-line
:class:`~creditsim.errors.DataError` / :class:`~creditsim.errors.ConfigError` messages that name the
input, the scenario and the month.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from creditsim.deal.config import WaterfallConfig
from creditsim.errors import ConfigError, DataError
from creditsim.states import POOL_CF_TYPES

__all__ = ["infer_initial_balance", "validate_pool", "as_float64", "base_rate_path", "scenario_path",
           "act360_fractions", "MAX_PAR", "criteria_paths", "remaining_wal"]

_K = len(POOL_CF_TYPES)
_INTEREST, _SCHED, _PREPAY, _RECOV, _DEFPAR, _LOSS, _BAL = range(_K)


def infer_initial_balance(pool_cf: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Pool balance at the cut-off implied by month 0: ``balance + scheduled + prepayment + default_par``.

    Exact when month-0 principal reduces the balance one for one (the engine's convention); pass the
    balance explicitly when the tape's cut-off balance is known.
    """
    return (pool_cf[:, 0, _BAL] + pool_cf[:, 0, _SCHED] + pool_cf[:, 0, _PREPAY]
            + pool_cf[:, 0, _DEFPAR])


def as_float64(values: Any, name: str, expected: str, device: str | torch.device | None) -> torch.Tensor:
    """``values`` (a tensor, array or nested list) as a float64 tensor on ``device``; a DataError naming
    ``name`` and what was ``expected`` when it is not numeric."""
    if isinstance(values, torch.Tensor):
        return values.to(dtype=torch.float64, device=device)
    try:
        return torch.as_tensor(np.asarray(values, dtype=np.float64), device=device)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be {expected}, got {type(values).__name__}") from None


def validate_pool(pool_cf: Any, initial_balance: Any, device: str | torch.device | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    cf = as_float64(pool_cf, "pool_cf", f"a numeric array (S, T, {_K})", device)
    if cf.ndim != 3 or cf.shape[2] != _K:
        raise DataError(
            f"pool_cf must have shape (n_sims, n_months, {_K}) with the last axis {list(POOL_CF_TYPES)}, "
            f"got {tuple(cf.shape)}"
        )
    if cf.shape[0] == 0 or cf.shape[1] == 0:
        raise DataError(f"pool_cf needs at least one scenario and one month, got {tuple(cf.shape)}")
    with torch.no_grad():
        # two passes without temporaries (the element-wise masks cost a 1/8-size copy each on large runs):
        # a sum is finite iff every term is, unless it overflowed - the mask then decides
        if not bool(torch.isfinite(cf.sum())):
            bad = ~torch.isfinite(cf)
            if bool(bad.any()):
                s, t, k = (int(v) for v in torch.nonzero(bad)[0])
                raise DataError(f"pool_cf has a non-finite value: {POOL_CF_TYPES[k]} at scenario {s}, month {t}")
        lo, hi = (float(v) for v in torch.aminmax(cf))
        floor = -1e-9 * max(abs(lo), abs(hi), 1.0)
        if lo < floor:
            neg = cf < floor
            s, t, k = (int(v) for v in torch.nonzero(neg)[0])
            raise DataError(
                f"pool_cf.{POOL_CF_TYPES[k]} must be >= 0 (cash and balances), got {float(cf[s, t, k]):.6g} "
                f"at scenario {s}, month {t}"
            )
    if initial_balance is None:
        p0 = infer_initial_balance(cf)
    else:
        p0 = initial_balance if isinstance(initial_balance, torch.Tensor) else torch.as_tensor(
            np.asarray(initial_balance, dtype=np.float64))
        p0 = p0.to(dtype=torch.float64, device=cf.device)
        if p0.ndim == 0:
            p0 = p0.expand(cf.shape[0])
        if p0.shape != (cf.shape[0],):
            raise DataError(f"initial_balance must be a scalar or shape ({cf.shape[0]},), got {tuple(p0.shape)}")
    with torch.no_grad():
        if not bool(torch.isfinite(p0).all()) or bool((p0 <= 0).any()):
            s = int(torch.nonzero(~(torch.isfinite(p0) & (p0 > 0)))[0])
            raise DataError(f"initial pool balance must be finite and > 0, got {float(p0[s])} at scenario {s}")
    return cf, p0


def base_rate_path(config: WaterfallConfig, base_rate: Any, S: int, T: int, dev: torch.device
                    ) -> torch.Tensor | None:
    """The annual base-rate path ``(S, T)`` of the floating classes: ``base_rate`` (scalar, ``(T,)``
    or ``(S, T)``) or the deal's flat ``base_rate``; None for an all-fixed deal."""
    if not config.has_floating:
        return None
    if base_rate is None:
        return torch.full((S, T), float(config.base_rate), dtype=torch.float64, device=dev)
    return scenario_path("base_rate", base_rate, S, T, dev, -0.5, 0.5, "a finite annual decimal within +-0.5 "
                          "(0.043 for 4.3 %)")


#: bound on pool par in a path input (currency units): far beyond any pool, catches garbage
MAX_PAR = 1e15


def scenario_path(name: str, values: Any, S: int, T: int, dev: torch.device, lo: float, hi: float,
                   expected: str) -> torch.Tensor:
    """A per-scenario monthly input as ``(S, T)`` float64: a scalar, ``(T,)`` or ``(S, T)``, every value
    finite and in ``[lo, hi]``; otherwise a DataError naming the first bad scenario and month."""
    b = as_float64(values, name, f"numeric ({expected})", dev)
    if b.ndim == 0:
        b = b.expand(S, T)
    elif b.ndim == 1 and b.shape[0] == T:
        b = b.unsqueeze(0).expand(S, T)
    if b.shape != (S, T):
        raise DataError(f"{name} must be a scalar, ({T},) or ({S}, {T}) {expected}, got {tuple(b.shape)}")
    with torch.no_grad():
        # one pass: NaN propagates into both extremes and fails both comparisons, an infinity is out of range
        least, most = torch.aminmax(b) if b.numel() else (torch.tensor(lo), torch.tensor(hi))
        if not (float(least) >= lo and float(most) <= hi):
            bad = ~torch.isfinite(b) | (b < lo) | (b > hi)
            s, t = (int(v) for v in torch.nonzero(bad)[0])
            raise DataError(f"{name} must be {expected}, got {float(b[s, t]):.6g} at scenario {s}, month {t}")
    return b


def act360_fractions(start_month: Any, T: int, dev: torch.device) -> torch.Tensor:
    """ACT/360 accrual fraction of each month ``(T,)``: days in the calendar month / 360 from
    ``start_month`` (month 0; "YYYY-MM", a date or a pandas Period), or 365/12 days when None."""
    if start_month is None:
        return torch.full((T,), 365.0 / 12.0 / 360.0, dtype=torch.float64, device=dev)
    import pandas as pd

    try:
        first = pd.Period(start_month, freq="M")
    except (TypeError, ValueError):
        raise ConfigError(f"start_month must be a month such as '2025-10', got {start_month!r}") from None
    days = [(first + i).days_in_month for i in range(T)]
    return torch.tensor(days, dtype=torch.float64, device=dev) / 360.0


def remaining_wal(principal: torch.Tensor) -> torch.Tensor:
    """Weighted-average life (years) at the end of each month of the principal still to come.

    Args:
        principal: ``(..., N)`` principal paid at the end of months ``0 .. N-1`` (currency units, >= 0).

    Returns:
        ``(..., N)``: ``sum_{u>t} (u - t) p_u / (12 sum_{u>t} p_u)``, 0 where nothing is left to pay.
        Computed from two reverse cumulative sums of non-negative terms (``sum_{u>t} (u - t) p_u =
        sum_{v>t} sum_{u>=v} p_u``), so no difference of large sums loses digits.
    """
    # in reversed time, where the tail sums are plain cumulative sums (the same additions in the same
    # order as flipping each one back and forth, with one flip in and one out instead of four)
    rev = torch.flip(principal, [-1])
    left = torch.cumsum(rev, -1)  # sum_{u >= t} p_u, reversed
    twice = torch.cumsum(left, -1)  # sum_{v >= t} sum_{u >= v} p_u, reversed
    # x_{t+1} (0 past the end) is, reversed, the previous entry, with 0 first
    amount = torch.cat([torch.zeros_like(left[..., :1]), left[..., :-1]], dim=-1)
    weighted = torch.cat([torch.zeros_like(twice[..., :1]), twice[..., :-1]], dim=-1)
    pos = amount > 0
    return torch.flip(torch.where(pos, weighted / torch.where(pos, 12.0 * amount, 1.0), 0.0), [-1])


def criteria_paths(config: WaterfallConfig, cf: torch.Tensor, S: int, T: int, pool_spread: Any, pool_warf: Any,
                   pool_wal: Any) -> dict[str, torch.Tensor | None]:
    """The pool paths the deal's reinvestment tests read, each ``(S, T)`` float64 or None.

    ``pool_spread`` (annual decimal) only with ``min_was`` (None: the waterfall derives it from the month's
    collections), ``pool_warf`` (rating factor) only with ``max_warf`` (None: no WARF test), ``pool_wal``
    (years) with ``max_wal``: the given path or, when None, :func:`remaining_wal` of the scheduled principal
    of ``cf`` (S, T, 7) with the balance left at the horizon paid in the last month (an estimate that
    ignores the life beyond the run; pass the tape's schedule for a long pool).
    """
    out: dict[str, torch.Tensor | None] = {"pool_spread": None, "pool_warf": None, "pool_wal": None}
    dev = cf.device
    if config.min_was is not None and pool_spread is not None:
        out["pool_spread"] = scenario_path("pool_spread", pool_spread, S, T, dev, -0.5, 0.5,
                                           "annual decimals within +-0.5 (0.035 for 350 bp)")
    if config.max_warf is not None and pool_warf is not None:
        out["pool_warf"] = scenario_path("pool_warf", pool_warf, S, T, dev, 0.0, 10_000.0,
                                         "Moody's rating factors in [0, 10000]")
    if config.max_wal is not None:
        if pool_wal is None:
            sched = cf[:, :, _SCHED]
            principal = torch.cat([sched[:, :-1], (sched[:, -1] + cf[:, -1, _BAL]).unsqueeze(1)], dim=1)
            out["pool_wal"] = remaining_wal(principal)
        else:
            out["pool_wal"] = scenario_path("pool_wal", pool_wal, S, T, dev, 0.0, 100.0, "years in [0, 100]")
    return out
