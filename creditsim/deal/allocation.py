"""Allocation primitives of the waterfall: paying one pot across dues in priority order (pro rata inside a
pari-passu group), the IC paydown walk, coverage ratios and the pass/fail gates of the three modes.

Every sum over classes is a fixed-order column sum (:mod:`creditsim.fixed_order`), so a scenario's
numbers do not depend on the batch it runs in.
"""

from __future__ import annotations

from typing import Any

import torch

from creditsim.fixed_order import column_sum, elementwise

__all__ = ["pay_pro_rata", "group_sums", "pay_in_order", "pay_sequential", "rowsum", "ic_paydown",
           "coverage_ratio", "Gates"]


def pay_pro_rata(pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Pay ``pot`` (S,) to pari-passu ``dues`` (S, m) pro rata; a single class gets ``min(pot, due)``."""
    if dues.shape[1] == 1:
        return torch.minimum(pot.unsqueeze(1), dues)
    total = column_sum(dues, 1)
    paid = torch.minimum(pot, total)
    share = torch.where(total > 0, paid / torch.where(total > 0, total, 1.0), 0.0)
    return dues * share.unsqueeze(1)


def group_sums(deal: Any, x: torch.Tensor) -> torch.Tensor:
    """Sums (S, g) of ``x`` (S, m) over the pari-passu groups within its first m classes."""
    m = x.shape[1]
    return torch.stack([column_sum(x[:, a:b], 1) for a, b in deal.groups if b <= m], dim=1)


def pay_in_order(deal: Any, pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Pay ``pot`` (S,) to the classes of ``dues`` (S, m) in priority order, pro rata inside a
    pari-passu group (``dues`` covers the first m classes and ends at a group's end)."""
    if not deal.grouped:
        return pay_sequential(pot, dues)
    m = dues.shape[1]
    paid_g = pay_sequential(pot, group_sums(deal, dues))
    cols = []
    for g, (a, b) in enumerate(x for x in deal.groups if x[1] <= m):
        cols.append(pay_pro_rata(paid_g[:, g], dues[:, a:b]))
    return torch.cat(cols, dim=1)


def pay_sequential(pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Allocate ``pot`` (S,) across ``dues`` (S, m) in priority order; returns paid (S, m) <= dues.

    ``paid_k = min(due_k, (pot - sum_{j<k} due_j)^+)``: one vectorised step instead of a loop.
    """
    before = torch.cumsum(dues, dim=1) - dues
    return torch.minimum(dues, torch.clamp(pot.unsqueeze(1) - before, min=0.0))


def rowsum(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(dim=1)`` of a narrow ``(S, m)`` matrix, column by column in class order.

    Not ``x @ ones``: a BLAS ``gemv`` sums a row in an order that depends on its position in the tile
    and on the CPU's kernel, so a scenario's numbers would change with the chunk it runs in
    (:mod:`creditsim.fixed_order`). m is the number of classes (a handful), so the loop is cheap.
    """
    return column_sum(x, 1)


def ic_paydown(deal: Any, balances: torch.Tensor, rates: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    """Sequential paydown (S,) from the most senior class that cuts interest due by ``excess`` (S,).

    Walks down the classes: ``x_j = min(N_j, remaining cut / rate_j)``; a zero-coupon class must be
    repaid in full before the next one is reached (its repayment cuts nothing). A pari-passu group is
    paid down pro rata, so it walks as one class at its balance-weighted rate.
    """
    if deal.grouped:
        due = group_sums(deal, balances * rates)
        balances = group_sums(deal, balances)
        rates = torch.where(balances > 0, due / torch.where(balances > 0, balances, 1.0), 0.0)
    due = balances * rates
    rem = torch.clamp(excess.unsqueeze(1) - (torch.cumsum(due, dim=1) - due), min=0.0)
    safe = torch.where(rates > 0, rates, 1.0)
    x = torch.where(rates > 0, torch.minimum(balances, rem / safe), torch.where(rem > 0, balances, 0.0))
    return rowsum(x)


def coverage_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, +inf where the denominator is 0 (a repaid class passes every test)."""
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, 1.0), float("inf"))


class Gates:
    """Pass/fail weights of the three modes; ``fail(margin)`` with margin = trigger - ratio."""

    def __init__(self, mode: str, tau: float) -> None:
        self.mode, self.tau = mode, tau

    def switch(self, margin: torch.Tensor) -> torch.Tensor:
        """Weight of a one-way switch (event of default, call, refinancing) that fires when ``margin > 0``.

        Soft modes use a smoothstep on ``[-tau, tau]`` instead of a sigmoid: it is exactly 0 (or 1) away
        from the trigger, so a state that never comes back does not collect a sigmoid's tail on every
        payment date (measured with a sigmoid at tau 0.1: 4.7 % acceleration weight on a healthy deal
        whose senior OC never came near its event-of-default level)."""
        hard = (margin > 0).to(margin.dtype)
        if self.mode == "hard":
            return hard
        x = torch.clamp(0.5 * (margin / self.tau + 1.0), 0.0, 1.0)
        soft = x * x * (3.0 - 2.0 * x)
        if self.mode == "soft":
            return soft
        return hard + (soft - soft.detach())

    def fail(self, margin: torch.Tensor) -> torch.Tensor:
        hard = (margin > 0).to(margin.dtype)
        if self.mode == "hard":
            return hard
        # margin is -inf for a repaid class: sigmoid gives exactly 0 there, gradient 0
        soft = elementwise(torch.sigmoid, margin / self.tau)  # the same bits in any batch
        if self.mode == "soft":
            return soft
        return hard + (soft - soft.detach())
