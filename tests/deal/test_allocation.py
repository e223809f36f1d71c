"""Allocation primitives: paying a pot in priority order with a leading pari-passu group."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.deal.allocation import group_layout, pay_in_order


def grouped_deal(groups: list[tuple[int, int]], leading: bool = True) -> SimpleNamespace:
    layout = group_layout(groups)
    if not leading:  # the general walk over group sums, which the leading-group shortcut must reproduce
        layout = dataclasses.replace(layout, leading=None)
    return SimpleNamespace(grouped=True, groups=groups, layout=layout)


def test_leading_group_by_hand() -> None:
    deal = grouped_deal([(0, 2), (2, 3), (3, 4)])
    dues = torch.tensor([[30.0, 10.0, 50.0, 40.0], [30.0, 10.0, 50.0, 40.0], [0.0, 0.0, 5.0, 5.0]],
                        dtype=torch.float64)
    pot = torch.tensor([100.0, 20.0, 7.0], dtype=torch.float64)
    paid = pay_in_order(deal, pot, dues)
    # 100: the group's 40 in full, class 2's 50, 10 of class 3; 20: the group pro rata 15 / 5;
    # an empty group takes nothing and passes the pot on
    expected = [[30.0, 10.0, 50.0, 10.0], [15.0, 5.0, 0.0, 0.0], [0.0, 0.0, 5.0, 2.0]]
    assert torch.equal(paid, torch.tensor(expected, dtype=torch.float64))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 4), rest=st.integers(1, 4), rows=st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_leading_group_without_autograd_is_the_autograd_path_and_the_general_walk(seed: int, n: int, rest: int,
                                                                                  rows: int) -> None:
    rng = np.random.default_rng(seed)
    m = n + rest
    dues = torch.as_tensor(rng.uniform(0, 100, (rows, m)) * (rng.uniform(size=(rows, m)) > 0.2))
    pot = torch.as_tensor(rng.uniform(0, 120 * m, rows) * (rng.uniform(size=rows) > 0.1))
    deal = grouped_deal([(0, n)] + [(j, j + 1) for j in range(n, m)])
    fast = pay_in_order(deal, pot, dues)
    with_grad = pay_in_order(deal, pot, dues.clone().requires_grad_(True)).detach()
    general = pay_in_order(grouped_deal(deal.groups, leading=False), pot, dues)
    assert torch.equal(fast, with_grad)
    assert torch.allclose(fast, general, rtol=1e-13, atol=1e-9)
    # cash: what is paid is the pot or the total due, no class above its due, the group pro rata
    assert torch.allclose(fast.sum(1), torch.minimum(pot, dues.sum(1)), rtol=1e-13, atol=1e-9)
    assert bool((fast <= dues).all()) and bool((fast >= 0).all())
    share = torch.where(dues[:, :n] > 0, fast[:, :n] / dues[:, :n], torch.nan)
    spread = (share.nan_to_num(-1.0).amax(1) - share.nan_to_num(2.0).amin(1)).clamp(min=0.0)
    has = (dues[:, :n] > 0).sum(1) > 1
    assert bool((spread[has] < 1e-12).all())


def test_an_empty_scenario_path_passes_its_range_check() -> None:
    from creditsim.deal.inputs import scenario_path

    empty = scenario_path("hy_spread", torch.zeros(0, 5, dtype=torch.float64), 0, 5, torch.device("cpu"), 0.0, 1.0, "x")
    assert empty.shape == (0, 5)
