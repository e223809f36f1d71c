"""One torch CPU thread around small-tensor loops (month loops, autoregressive generation).

Why: the month-by-month and step-by-step loops of the engine, the MacroVAE and the trajectory model
run many small tensor operations. With several OpenMP threads each tiny operation wakes the idle
threads, which spin; on a busy 2-core machine a spinning sibling takes the core the working thread
needs, and the loop ran up to 10-16x slower (measured in the engine: a (128, 1024) x (1024, 5)
product takes ~50 us on one thread and ~10 ms with two threads under load). Parallelism comes from
running scenario chunks in separate processes (the dask backend), not from threads inside a loop --
except the engine's fused numba kernel, one parallel region per month over whole scenarios, which
runs on the caller's count (:mod:`creditsim.loans.fused`).

:func:`serial_torch` sets ``torch.set_num_threads(1)`` for the enclosed block and restores the caller's
count afterwards (it is process-wide while the block runs). It is a context manager and a decorator.
"""

from __future__ import annotations

from contextlib import ContextDecorator

import torch

__all__ = ["serial_torch"]


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
