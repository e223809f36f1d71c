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


def test_map_scenarios_keeps_scenario_order_grad_mode_and_the_callers_count() -> None:
    """Results in scenario order although the later scenarios finish first; both threads used on CPU,
    one thread (this one) on CUDA or with a count of 1; the caller's grad mode inside; errors surface."""
    import threading
    import time

    from creditsim.threads import map_scenarios

    def fn(i: int) -> tuple[int, str, bool, int]:
        time.sleep(0.02 * (4 - i))  # scenario 0 finishes last
        return i, threading.current_thread().name, torch.is_grad_enabled(), torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            rows = map_scenarios(fn, 5)
        assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
        assert len({r[1] for r in rows}) == 2 and threading.current_thread().name not in {r[1] for r in rows}
        assert not any(r[2] for r in rows)  # no_grad reached the workers (torch's mode is per thread)
        assert all(r[3] == 1 for r in rows)  # each scenario's torch operations on one thread
        assert len({r[1] for r in map_scenarios(fn, 5, max_threads=1)}) == 1
        with torch.autocast("cpu", dtype=torch.bfloat16):  # per-thread modes reach the workers
            assert map_scenarios(lambda i: (torch.ones(2, 2) @ torch.ones(2, 2)).dtype, 2) == [torch.bfloat16] * 2
        with torch.inference_mode():
            assert map_scenarios(lambda i: torch.is_inference_mode_enabled(), 2) == [True, True]
        assert torch.get_num_threads() == 2
        me = threading.current_thread().name
        assert {r[1] for r in map_scenarios(fn, 3, device="cuda")} == {me}  # no thread pool for a GPU
        assert all(r[2] for r in map_scenarios(fn, 2))
        with pytest.raises(ValueError, match="scenario 3"):
            map_scenarios(lambda i: (_ for _ in ()).throw(ValueError(f"scenario {i}")) if i == 3 else i, 5)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert {r[1] for r in map_scenarios(fn, 3)} == {me} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

