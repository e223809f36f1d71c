"""Allocation primitives of the waterfall: paying one pot across dues in priority order (pro rata inside a
pari-passu group), the IC paydown walk, coverage ratios and the pass/fail gates of the three modes.

Every sum over classes is a fixed-order column sum (:mod:`creditsim.fixed_order`), so a scenario's
numbers do not depend on the batch it runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from creditsim.fixed_order import column_sum, elementwise

__all__ = ["pay_pro_rata", "masked_ratio", "GroupLayout", "group_layout", "group_sums", "pay_in_order",
           "pay_sequential", "rowsum", "ic_paydown", "coverage_ratio", "Gates"]


def pay_pro_rata(pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Pay ``pot`` (S,) to pari-passu ``dues`` (S, m) pro rata; a single class gets ``min(pot, due)``."""
    if dues.shape[1] == 1:
        return torch.minimum(pot.unsqueeze(1), dues)
    total = column_sum(dues, 1)
    paid = torch.minimum(pot, total)
    share = masked_ratio(total > 0, paid, total, 0.0)
    return dues * share.unsqueeze(1)


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """The pari-passu groups of the debt classes, arranged once per run for the primitives below.

    Why: the class matrices are ``(S, Kd)`` with a handful of columns, so every column slice is a strided
    view and each op on one costs about as much as on the whole matrix; gathering columns
    (``index_select`` on dim 1) costs ten ops. The layout lists, for the first m classes, the pieces a
    group sum is made of (a wider group's sum, or a run of one-class groups taken as one slice), and
    ``leading``: the size of the first group when it is the only wider one (A-1 / A-2 pari passu at the
    top, the usual case), where group cumulative sums are the classes' own (see :func:`pay_in_order`).
    """

    groups: list[tuple[int, int]]  # (start, stop) class ranges in priority order
    pieces: dict[int, list[tuple[int, int, int, bool]]]  # m -> (first group, first class, stop class, wider)
    leading: int | None  # size of the first group when no other group has more than one class


def group_layout(groups: list[tuple[int, int]]) -> GroupLayout:
    """The :class:`GroupLayout` of ``groups`` (contiguous ``(start, stop)`` class ranges in order)."""
    pieces: dict[int, list[tuple[int, int, int, bool]]] = {}
    for m in sorted({b for _, b in groups}):
        out: list[tuple[int, int, int, bool]] = []
        for g, (a, b) in enumerate(x for x in groups if x[1] <= m):
            if b - a == 1 and out and not out[-1][3]:  # extend the run of one-class groups
                out[-1] = (out[-1][0], out[-1][1], b, False)
            else:
                out.append((g, a, b, b - a > 1))
        pieces[m] = out
    wider = [a for a, b in groups if b - a > 1]
    return GroupLayout(groups=list(groups), pieces=pieces, leading=groups[0][1] if wider == [0] else None)


def group_sums(deal: Any, x: torch.Tensor) -> torch.Tensor:
    """Sums (S, g) of ``x`` (S, m) over the pari-passu groups within its first m classes (each group's
    members added in class order, as :func:`rowsum` does)."""
    pieces = deal.layout.pieces[x.shape[1]]
    if all(wider or b - a == 1 for _, a, b, wider in pieces):  # one column per piece: stack them
        return torch.stack([column_sum(x[:, a:b], 1) if wider else x[:, a] for _, a, b, wider in pieces], dim=1)
    return torch.cat([column_sum(x[:, a:b], 1).unsqueeze(1) if wider else x[:, a:b] for _, a, b, wider in pieces],
                     dim=1)


def pay_in_order(deal: Any, pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Pay ``pot`` (S,) to the classes of ``dues`` (S, m) in priority order, pro rata inside a
    pari-passu group (``dues`` covers the first m classes and ends at a group's end)."""
    if not deal.grouped:
        return pay_sequential(pot, dues)
    if deal.layout.leading is not None:
        return _pay_leading_group(deal.layout.leading, pot, dues)
    m = dues.shape[1]
    paid_g = pay_sequential(pot, group_sums(deal, dues))
    cols = []
    for g, (a, b) in enumerate(x for x in deal.groups if x[1] <= m):
        cols.append(pay_pro_rata(paid_g[:, g], dues[:, a:b]))
    return torch.cat(cols, dim=1)


def _pay_leading_group(n: int, pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """:func:`pay_in_order` when the first ``n`` classes are the only pari-passu group: the same numbers,
    computed on the classes. The classes' cumulative dues are the groups' (``(x_0 + x_1) + x_2`` either
    way, both sums run in class order), so a one-class group's payment is :func:`pay_sequential`'s on the
    classes; the leading group is paid ``min(its sum, pot)`` and splits it pro rata."""
    # CPU only: there the group's cumulative sum is column_sum's sequential order (a CUDA scan is parallel)
    if not (dues.requires_grad or pot.requires_grad) and dues.shape[1] > n and dues.device.type == "cpu":
        return _pay_leading_group_inplace(n, pot, dues)
    total = column_sum(dues[:, :n], 1)
    # the walk over group sums: nothing is due before the first group (its cumulative sum less itself)
    group_paid = torch.minimum(total, torch.clamp(pot - (total - total), min=0.0))
    if dues.shape[1] == n:
        return pay_pro_rata(group_paid, dues)
    paid = pay_sequential(pot, dues)
    if dues.requires_grad or pot.requires_grad:
        # ``min(paid, due)`` changes no value (the grouped walk's last step, :func:`pay_pro_rata` of a
        # one-class group); kept for autograd, which splits a tie's gradient between min's arguments
        paid = torch.minimum(paid, dues)
    paid[:, :n] = pay_pro_rata(group_paid, dues[:, :n])
    return paid


def _pay_leading_group_inplace(n: int, pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """:func:`_pay_leading_group` without autograd, for dues (finite, >= 0) beyond the group: the same
    values, with the shared work done once. The group's sum is the classes' cumulative sum at its last
    member (both add in class order); ``pot - (sum - sum)`` is the pot itself for a finite sum;
    ``min(group paid, group sum)`` in :func:`pay_pro_rata` returns the group paid (it is at most the sum);
    and the pro-rata share ``paid / sum`` is 0/0 = NaN exactly where the masked ratio's mask (sum > 0)
    is false, so the NaN is set to its fill, 0."""
    cum = torch.cumsum(dues, dim=1)
    total = cum[:, n - 1]
    paid = torch.clamp(pot.unsqueeze(1) - (cum - dues), min=0.0)
    torch.minimum(dues, paid, out=paid)
    share = torch.minimum(total, torch.clamp(pot, min=0.0)).div_(total).nan_to_num_(0.0)
    torch.mul(dues[:, :n], share.unsqueeze(1), out=paid[:, :n])
    return paid


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


def ic_paydown(deal: Any, balances: torch.Tensor, rates: torch.Tensor, excess: torch.Tensor,
               due: torch.Tensor | None = None) -> torch.Tensor:
    """Sequential paydown (S,) from the most senior class that cuts interest due by ``excess`` (S,).

    Walks down the classes: ``x_j = min(N_j, remaining cut / rate_j)``; a zero-coupon class must be
    repaid in full before the next one is reached (its repayment cuts nothing). A pari-passu group is
    paid down pro rata, so it walks as one class at its balance-weighted rate. ``due``: ``balances *
    rates`` when the caller has it already (S, m).
    """
    due = balances * rates if due is None else due
    if deal.grouped:
        balances = group_sums(deal, balances)
        rates = masked_ratio(balances > 0, group_sums(deal, due), balances, 0.0)
        due = balances * rates
    rem = torch.clamp(excess.unsqueeze(1) - (torch.cumsum(due, dim=1) - due), min=0.0)
    pos = rates > 0
    if bool(pos.all()):  # every class (group) bears interest, the usual case: no zero-coupon branch
        x = torch.minimum(balances, rem / rates)
    else:
        x = torch.where(pos, torch.minimum(balances, rem / torch.where(pos, rates, 1.0)),
                        torch.where(rem > 0, balances, 0.0))
    return rowsum(x)


def masked_ratio(pos: torch.Tensor, num: torch.Tensor, den: torch.Tensor, fill: float) -> torch.Tensor:
    """``num / den`` where ``pos`` (a bool mask, false wherever ``den`` is 0), ``fill`` elsewhere.

    Without autograd the plain quotient is masked: its inf / nan where ``den`` is 0 never reach the
    result. With autograd the denominator is made safe first, or those entries would put nan into the
    gradients (the masked branch of ``where`` still gets a zero gradient, times an infinite derivative).
    """
    if num.requires_grad or den.requires_grad:
        return torch.where(pos, num / torch.where(pos, den, 1.0), fill)
    return torch.where(pos, num / den, fill)


def coverage_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, +inf where the denominator is 0 (a repaid class passes every test)."""
    return masked_ratio(den > 0, num, den, float("inf"))


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
