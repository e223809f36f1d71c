"""serial_torch: one torch thread inside, the caller's count restored after (also on error)."""

from __future__ import annotations

import pytest
import torch

from creditsim.threads import serial_torch


def test_serial_torch_sets_one_thread_and_restores() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with serial_torch():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2

        @serial_torch()
        def inside() -> int:
            return torch.get_num_threads()

        assert inside() == 1 and torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), serial_torch():
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_generation_entry_points_run_on_one_thread(monkeypatch) -> None:
    """MacroVAE and LoanTrajectoryModel generation see one thread (their step loops are small ops)."""
    from creditsim.loans.trajectory import LoanTrajectoryModel
    from creditsim.macro.vae import MacroVAE

    for fn in (MacroVAE.generate, MacroVAE.generate_conditional, LoanTrajectoryModel.generate):
        assert hasattr(fn, "__wrapped__"), f"{fn.__qualname__} is not wrapped"
    seen: list[int] = []
    real_randn = torch.randn

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_randn(*args, **kwargs)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(torch, "randn", spy)
        MacroVAE.from_pretrained().generate(scenario="baseline", seq_length=3, n_samples=2, seed=0)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
