"""Floating-rate coupons on a scenario's index path: index floors and caps, and reset months.

A floating loan pays a margin over an index. Its coupon at the cut-off ``c`` (the tape's
``interest_rate``) holds the index at the cut-off ``I_0`` (the policy rate in month 0 of the path stands
in for SOFR: both follow the Fed's target range). In month ``t`` of a scenario it pays ``c + D_t``::

    D_t = g(I_0 + d_r(t)) - g(I_0),     g(I) = min(max(I, floor), cap),

``d_t`` the index change since the cut-off (``index_shift``, per scenario and month) and ``r(t)`` the
loan's last reset month at or before ``t``: the coupon is fixed at a reset and holds until the next. A
loan resets every ``reset_months`` months on its origination anniversaries: month ``t`` is a reset month
when ``(elapsed + t) % reset_months == 0``, ``elapsed`` the whole months from origination to the
cut-off, so ``phase = -elapsed mod reset_months`` is the first reset month after the cut-off (0 when the
cut-off is one); before it ``r(t) = 0`` and the cut-off coupon holds. Without a floor and a cap, ``g``
is the identity and ``D_t = d_r(t)``, computed as the change itself (no level arithmetic), so books
without those terms keep their numbers to the bit. Finally ``D_t >= -c`` for every loan, so no coupon
turns negative.

Classes (why they exist). The pool engine sums each loan's *floating base* ``round(interest / c)``
exactly, in whole cents, and adds ``round(D_t x base)`` to the pool's interest after the sums
(:mod:`creditsim.loans.engine`, "Floating coupons"). That is exact only when ``D_t`` is the same for every
loan summed together, so floating loans are grouped into classes of equal (floor, cap, reset months,
phase), one base per class, and each class applies its own ``D_t``. The lower bound is the class's lowest
coupon (one ``D_t`` per class); the trajectory engine, which works per loan, bounds each loan at its own
coupon. A book typically has a handful of classes (floors of 0 / 25 / 50 / 75 / 100 bp, monthly or
quarterly resets), so the engine tabulates a handful of bases instead of one.

The tape coupon is the truth at the cut-off: the model never re-derives it from ``spread_bps``. A tape
whose coupon does not yet reflect a floor or cap binding at ``I_0`` (coupon = spread + unclamped index)
would imply a different margin (coupon minus the clamped index): :func:`coupon_mismatch` finds such rows
and ``simulate`` warns about them. Likewise a quarterly-reset loan is taken to have reset at ``I_0``.

Units: annual decimals (0.005 = 50 bp) for floors, caps, coupons and index changes; months for resets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from creditsim.errors import ConfigError, DataError

__all__ = ["MIN_FLOATING_COUPON", "COUPON_TOLERANCE", "FloatingClasses", "floating_classes", "coupon_mismatch"]

#: floating loans with an annual coupon below this (1 bp) keep a zero-coupon schedule (no floating base)
MIN_FLOATING_COUPON = 1e-4
#: annual decimal gap between a tape coupon and margin + clamped index that :func:`coupon_mismatch` flags
#: (a coupon fixed at the last reset may trail the index by a recent move, hence not zero)
COUPON_TOLERANCE = 0.005


@dataclass(frozen=True)
class FloatingClasses:
    """Floating loans grouped by their reset and floor / cap terms (module docstring), J classes.

    Attributes:
        member: ``(L,)`` int64 class of each paying floating loan, -1 for fixed loans and floating loans
            with a coupon below :data:`MIN_FLOATING_COUPON`.
        floor, cap: ``(J,)`` float64 index floor and cap (annual decimals; -inf / +inf = none).
        reset_months: ``(J,)`` int64 months between resets (1 = monthly).
        phase: ``(J,)`` int64 first reset month after the cut-off, in ``[0, reset_months)``.
        min_coupon: ``(J,)`` float64 lowest annual coupon of the class's loans at the cut-off.
    """

    member: np.ndarray
    floor: np.ndarray
    cap: np.ndarray
    reset_months: np.ndarray
    phase: np.ndarray
    min_coupon: np.ndarray

    @property
    def n_classes(self) -> int:
        """Number of classes J."""
        return len(self.floor)

    def base_weights(self, monthly_rate: np.ndarray) -> np.ndarray:
        """``(L, J)`` float64: ``1 / annual coupon`` in the column of the loan's class, 0 elsewhere (the
        engine's floating base per class is ``round(interest x weight)``)."""
        annual = np.asarray(monthly_rate, np.float64) * 12.0
        paying = self.member >= 0
        inv = np.where(paying, 1.0 / np.where(paying, annual, 1.0), 0.0)
        out = np.zeros((len(self.member), self.n_classes))
        out[np.flatnonzero(paying), self.member[paying]] = inv[paying]
        return out

    def reset_month(self, months: int) -> np.ndarray:
        """``(J, months)`` int64: the last reset month at or before each month (0 before the first)."""
        t = np.arange(months)[None, :]
        r, p = self.reset_months[:, None], self.phase[:, None]
        return np.where(t >= p, t - (t - p) % r, 0)

    def coupon_change(self, index_shift: torch.Tensor, index_level: torch.Tensor | None = None,
                      bounded: bool = True) -> torch.Tensor:
        """``(S, T, J)`` change of each class's coupon since the cut-off, annual decimals.

        Args:
            index_shift: ``(S, T)`` index change since the cut-off (``d_t``), float64; gradients flow.
            index_level: ``(S,)`` index at the cut-off ``I_0``; needed only when a class has a floor or
                a cap (the distance to the floor depends on the level).
            bounded: apply the lower bound ``-min_coupon`` per class (the pool engines); False leaves it
                to a per-loan caller.

        Raises:
            ConfigError: floors or caps without ``index_level``.
        """
        s, t_len = index_shift.shape
        dev, dt = index_shift.device, index_shift.dtype
        tau = torch.from_numpy(self.reset_month(t_len).reshape(-1)).to(dev)
        d = index_shift[:, tau].view(s, self.n_classes, t_len)  # (S, J, T)
        floor = torch.as_tensor(self.floor, dtype=dt, device=dev).view(1, -1, 1)
        cap = torch.as_tensor(self.cap, dtype=dt, device=dev).view(1, -1, 1)
        terms = torch.as_tensor(np.isfinite(self.floor) | np.isfinite(self.cap), device=dev).view(1, -1, 1)
        if bool(terms.any()):
            if index_level is None:
                raise ConfigError("index_level: the book has index floors or caps, so the floating coupons need the "
                                  "index at the cut-off (annual decimal per scenario), not only its change")
            level = index_level.to(dt).view(s, 1, 1)
            change = torch.clamp(level + d, min=floor, max=cap) - torch.clamp(level, min=floor, max=cap)
            d = torch.where(terms, change, d)
        if bounded:
            d = torch.maximum(d, -torch.as_tensor(self.min_coupon, dtype=dt, device=dev).view(1, -1, 1))
        return d.transpose(1, 2)


def floating_classes(floating: np.ndarray, monthly_rate: np.ndarray, index_floor: np.ndarray | None = None,
                     index_cap: np.ndarray | None = None, reset_months: np.ndarray | None = None,
                     reset_phase: np.ndarray | None = None) -> FloatingClasses | None:
    """The classes of a book's floating loans (module docstring), or None when none pays a coupon.

    Args: ``(L,)`` arrays: ``floating`` bool; ``monthly_rate`` decimal; ``index_floor`` / ``index_cap``
    annual decimals (NaN = none; None = no loan has one); ``reset_months`` whole months >= 1 and
    ``reset_phase`` in ``[0, reset_months)`` (None = monthly resets).
    """
    n = len(floating)
    annual = np.asarray(monthly_rate, np.float64) * 12.0
    paying = np.asarray(floating, bool) & (annual >= MIN_FLOATING_COUPON)
    if not paying.any():
        return None
    floor = np.full(n, -np.inf) if index_floor is None else np.where(np.isnan(index_floor), -np.inf, index_floor)
    cap = np.full(n, np.inf) if index_cap is None else np.where(np.isnan(index_cap), np.inf, index_cap)
    months = np.ones(n, np.int64) if reset_months is None else np.asarray(reset_months, np.int64)
    phase = np.zeros(n, np.int64) if reset_phase is None else np.asarray(reset_phase, np.int64)
    bad = paying & ((months < 1) | (phase < 0) | (phase >= months) | (floor > cap))
    if bad.any():
        raise DataError(f"floating terms: rows {np.flatnonzero(bad)[:10].tolist()} need reset_months >= 1, a phase "
                        "in [0, reset_months) and index_floor <= index_cap")
    keys = np.stack([floor, cap, months.astype(np.float64), phase.astype(np.float64)], axis=1)[paying]
    table, inverse = np.unique(keys, axis=0, return_inverse=True)
    member = np.full(n, -1, np.int64)
    member[paying] = inverse.reshape(-1)
    min_coupon = np.array([annual[paying][inverse.reshape(-1) == j].min() for j in range(len(table))])
    return FloatingClasses(member, table[:, 0].copy(), table[:, 1].copy(), table[:, 2].astype(np.int64),
                           table[:, 3].astype(np.int64), min_coupon)


def coupon_mismatch(floating: np.ndarray, annual_rate: np.ndarray, margin: np.ndarray, index_floor: np.ndarray | None,
                    index_cap: np.ndarray | None, level: float, tolerance: float = COUPON_TOLERANCE) -> np.ndarray:
    """``(L,)`` bool: floating loans with a floor or cap whose tape coupon differs from ``margin`` (the
    tape's ``spread_bps``, annual decimal; NaN = not given) plus the index ``level`` clamped to their floor
    and cap by more than ``tolerance``: the tape coupon would then imply another margin (module docstring)."""
    n = len(floating)
    floor = np.full(n, -np.inf) if index_floor is None else np.where(np.isnan(index_floor), -np.inf, index_floor)
    cap = np.full(n, np.inf) if index_cap is None else np.where(np.isnan(index_cap), np.inf, index_cap)
    terms = np.isfinite(floor) | np.isfinite(cap)
    implied = np.asarray(margin, np.float64) + np.clip(level, floor, cap)
    gap = np.abs(np.asarray(annual_rate, np.float64) - implied)
    return np.asarray(floating, bool) & terms & np.isfinite(gap) & (gap > tolerance)
