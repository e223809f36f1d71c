"""One torch CPU thread around small-tensor loops (month loops, autoregressive generation).

Why: the month-by-month and step-by-step loops of the engine, the MacroVAE and the trajectory model
run many small tensor operations. With several OpenMP threads each tiny operation wakes the idle
threads, which spin; on a busy 2-core machine a spinning sibling takes the core the working thread
needs, and the loop ran up to 10-16x slower (measured in the engine: a (128, 1024) x (1024, 5)
product takes ~50 us on one thread and ~10 ms with two threads under load). Parallelism comes from
running scenario chunks in separate processes (the dask backend), not from threads inside a loop --
except the engine's fused numba kernel, one parallel region per month over whole scenarios, which
runs on the caller's count (:mod:`creditsim.loans.fused`), and :func:`map_scenarios`, which runs whole
scenarios of such a loop side by side on Python threads.

:func:`serial_torch` sets ``torch.set_num_threads(1)`` for the enclosed block and restores the caller's
count afterwards (it is process-wide while the block runs). It is a context manager and a decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ContextDecorator
from typing import TypeVar

import torch

__all__ = ["serial_torch", "map_scenarios"]

R = TypeVar("R")


class serial_torch(ContextDecorator):  # noqa: N801 - used like a function: ``with serial_torch():``
    """Run the enclosed block (or decorated function) with one torch CPU thread; restore after."""

    def __enter__(self) -> "serial_torch":
        self._n = torch.get_num_threads()
        if self._n != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        # always: a numba parallel kernel inside the block (its OpenMP layer shares libgomp with torch)
        # can change the process-wide OpenMP count that torch reports, even when the caller's was 1
        torch.set_num_threads(self._n)


def map_scenarios(fn: Callable[[int], R], n: int, device: torch.device | str = "cpu") -> list[R]:
    """``[fn(0), ..., fn(n - 1)]``, on CPU computed on ``min(n, torch.get_num_threads())`` Python threads.

    For loops of whole scenarios whose every scenario is a step-by-step loop of small torch operations
    under :class:`serial_torch` (the trajectory model's ``generate``): intra-op threads only slow such a
    loop down, but torch releases the GIL inside each operation, so scenarios on separate threads
    overlap (the trajectory engine on 2 cores: 1.5-1.6x the one-thread wall at ~13 % more CPU
    seconds). The count is the caller's torch thread count (``torch.set_num_threads`` /
    ``OMP_NUM_THREADS``), the one the fused Markov kernel reads; 1 runs the loop on this thread. ``fn``
    must keep each scenario's numbers its own (its own generators, buffers and result), so the results
    are bit-identical to one thread; they come back in scenario order. On CUDA the scenarios run one
    after the other (one stream would serialise them anyway). The caller's thread count is restored
    once every thread is done; the workers run in the caller's autograd mode.
    """
    threads = min(n, torch.get_num_threads()) if torch.device(device).type == "cpu" else 1
    if threads <= 1:
        return [fn(i) for i in range(n)]
    grad = torch.is_grad_enabled()  # thread-local in torch: the workers take the caller's

    def one(i: int) -> R:
        with torch.set_grad_enabled(grad):
            return fn(i)

    with serial_torch(), ThreadPoolExecutor(threads, thread_name_prefix="creditsim-scenario") as pool:
        return list(pool.map(one, range(n)))
