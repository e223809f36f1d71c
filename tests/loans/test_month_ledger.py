"""The trajectory model's month ledger in numba (creditsim.loans.month_ledger) books the torch ledger's bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.loans.trajectory import LoanTrajectoryModel, _PathLedger
from creditsim.states import N_STATES


def _ledger_inputs(seed: int, n: int, cols: int):
    rng = np.random.default_rng(seed)
    step = rng.uniform(0, 5_000, (n, cols)).round(2)
    sbal = np.concatenate([step.sum(1, keepdims=True) - np.cumsum(np.pad(step, ((0, 0), (1, 0))), 1)[:, :-1],
                           np.zeros((n, 1))], 1)[:, :cols + 1]
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(rng.uniform(0, 300, (n, cols)).round(2), 1)], 1)
    n_idx = rng.integers(1, cols + 1, n)
    init = rng.choice(N_STATES, n, p=[0.6, 0.1, 0.05, 0.05, 0.1, 0.05, 0.05])
    return rng, torch.from_numpy(sbal), torch.from_numpy(cum), torch.from_numpy(n_idx), torch.from_numpy(init)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 70), months=st.integers(1, 14))
def test_the_numba_ledger_books_the_torch_ledgers_bits(seed, n, months):
    """Random schedules, states (absorbed and revived ones too: the kernel must follow the torch code even
    where a model would never go, int32 state codes), payment ratios and LGDs (negative, above 1, -0.0,
    infinities and NaN among them): every output the same bits, a NaN's sign bit apart (module docstring)."""
    rng, sbal, cum, n_idx, init = _ledger_inputs(seed, n, 12)
    ledgers = [_PathLedger(sbal, cum, n_idx, init, months, fused=f) for f in (False, True)]
    assert not ledgers[0]._fused and ledgers[1]._fused
    for t in range(months):
        new = torch.from_numpy(rng.choice(N_STATES, n, p=[0.55, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05]))
        if t % 2:
            new = new.int()
        values = torch.from_numpy(rng.uniform(-0.3, 1.5, (n, 2)))
        odd = torch.from_numpy(rng.choice(5, (n, 2), p=[0.9, 0.025, 0.025, 0.025, 0.025]))
        for code, x in zip((1, 2, 3, 4), (float("nan"), float("inf"), float("-inf"), -0.0)):
            values[odd == code] = x
        moves = [led.moves(t, new) for led in ledgers]
        for a, b in zip(*moves):
            assert torch.equal(a, b)
        for led, mv in zip(ledgers, moves):
            led.settle(t, new, mv, values)
    torch_out, numba_out = (led.result(1, n) for led in ledgers)
    for k in torch_out:
        assert torch.equal(torch_out[k].nan_to_num(-7.0), numba_out[k].nan_to_num(-7.0)), k
        assert torch.equal(torch_out[k].isnan(), numba_out[k].isnan()), k


def test_generate_books_the_same_paths_with_either_ledger(monkeypatch):
    """The shipped model's paths: the numba ledger (what generate runs on the CPU) and the torch one agree
    bit for bit on every output."""
    model = LoanTrajectoryModel.from_pretrained()
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(300, 24, generator=g) * 0.5
    cohort = torch.full((300, 24, N_STATES, N_STATES), 0.0)
    cohort[..., 0, :] = torch.tensor([0.90, 0.05, 0, 0, 0.02, 0.025, 0.005])
    cohort[..., 1, :] = torch.tensor([0.5, 0.2, 0.25, 0, 0.05, 0, 0])
    cohort[..., 2, :] = torch.tensor([0.2, 0.1, 0.2, 0.4, 0.1, 0, 0])
    cohort[..., 3, :] = torch.tensor([0.1, 0, 0, 0.4, 0.5, 0, 0])
    for s in (4, 5, 6):
        cohort[..., s, s] = 1.0
    fused = model.generate(feats, cohort, None, n_samples=2, seed=5)
    init = _PathLedger.__init__
    monkeypatch.setattr(_PathLedger, "__init__", lambda self, *a, fused=False: init(self, *a, fused=False))
    eager = model.generate(feats, cohort, None, n_samples=2, seed=5)
    assert (fused["states"] == 4).any() and (fused["states"] == 5).any()
    for k, v in fused.items():
        assert torch.equal(v.nan_to_num(-7.0), eager[k].nan_to_num(-7.0)), k


def test_a_state_code_outside_the_seven_is_refused():
    _, sbal, cum, n_idx, init = _ledger_inputs(0, 3, 4)
    ledger = _PathLedger(sbal, cum, n_idx, torch.zeros(3, dtype=torch.long), 2, fused=True)
    with pytest.raises(ValueError, match="state code outside 0..6"):
        ledger.moves(0, torch.tensor([0, -1, 0]))
    with pytest.raises(ValueError, match="state code outside 0..6"):
        ledger.moves(0, torch.tensor([0, 7, 0]))
