"""One torch CPU thread around small-tensor loops (month loops, autoregressive generation).

Why: the month-by-month and step-by-step loops of the engine, the MacroVAE and the trajectory model
run many small tensor operations. With several OpenMP threads each tiny operation wakes the idle
threads, which spin; on a busy 2-core machine a spinning sibling takes the core the working thread
needs, and the loop ran up to 10-16x slower (measured in the engine: a (128, 1024) x (1024, 5)
product takes ~50 us on one thread and ~10 ms with two threads under load). Parallelism comes from
running whole scenario chunks side by side -- in separate processes (the dask backend) or on Python
threads of one process, one torch thread each (the local backend, :class:`creditsim.risk.backends.LocalBackend`)
-- not from threads inside a loop, except the engine's fused numba kernel, one parallel region per
month over whole scenarios, which runs on the caller's count (:mod:`creditsim.loans.fused`), and
:func:`map_scenarios`, which runs whole scenarios of such a loop side by side on Python threads.

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


def map_scenarios(fn: Callable[[int], R], n: int, device: torch.device | str = "cpu",
                  max_threads: int | None = None) -> list[R]:
    """``[fn(0), ..., fn(n - 1)]``, on CPU computed on ``min(n, torch.get_num_threads(), max_threads)``
    Python threads.

    For loops of whole scenarios whose every scenario is a step-by-step loop of small torch operations
    under :class:`serial_torch` (the trajectory model's ``generate``): intra-op threads only slow such a
    loop down, but torch releases the GIL inside each operation, so scenarios on separate threads
    overlap. Each operation still holds the GIL while it is dispatched (a few microseconds), so the
    gain needs operations much longer than that -- large enough batches -- and few threads: the caller
    passes ``max_threads`` (see :func:`creditsim.loans.trajectory.scenario_threads`). The count is
    otherwise the caller's torch thread count (``torch.set_num_threads`` / ``OMP_NUM_THREADS``), the one
    the fused Markov kernel reads; 1 runs the loop on this thread. ``fn`` must keep each scenario's
    numbers its own (its own generators, buffers and result) and must not change shared module state
    (e.g. ``train()`` / ``eval()``: set that once around the call), so the results are bit-identical to
    one thread; they come back in scenario order. An error is raised when its scenario's turn in
    that order comes (the first failing scenario in order; scenarios not yet started are then
    cancelled, the running ones end first). The workers take the caller's thread-local torch
    modes: autograd, inference mode and CPU autocast. On CUDA the scenarios run one after the other
    (one stream would serialise them anyway). The caller's thread count is restored once every
    thread is done.
    """
    threads = min(n, torch.get_num_threads(), n if max_threads is None else max_threads)
    if threads <= 1 or torch.device(device).type != "cpu":
        return [fn(i) for i in range(n)]
    # torch keeps these per thread: a worker would otherwise run without the caller's settings
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def one(i: int) -> R:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=autocast[1], enabled=autocast[0]):
            return fn(i)

    with serial_torch(), ThreadPoolExecutor(threads, thread_name_prefix="creditsim-scenario") as pool:
        return list(pool.map(one, range(n)))
