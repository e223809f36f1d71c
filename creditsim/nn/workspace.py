"""Memory of the fused key/value buffers kept for a caller's next decoding run on the same thread (CPU).

The trajectory model's ``generate`` allocates, per chunk of paths, each block's fused
:class:`~creditsim.nn.layers.KVBuffer` -- keys and values of every path and month, 2 x 30 MB per layer for
4,000 paths x 60 months -- and a Monte Carlo run calls it chunk after chunk and scenario group after group.
Every fresh allocation of that size is fresh pages from the kernel, each page faulted and zeroed on first
write: ~60,000 faults a run on the trajectory bench (2,000 loans x 60 months x 4 scenarios), 0.1 s of its
~1.7 s CPU. Inside :func:`kv_workspace` the buffers of a slot (a block) are allocated once per thread and
handed to the next run that fits them. Measured on that bench (same process, five alternations), buffers
reused across whole runs: 1.69 s CPU a run with fresh buffers, 1.58 s reused (the faults drop to a
quarter). ``generate`` opens a workspace around its chunks and the pool engine around its scenario groups,
so a Monte Carlo run of many groups reuses one set; the bench's run has two groups, half the faults go
(~1-2 % there).

Nothing is read from a reused buffer before the run writes it: the compiled step reads months
``0 .. t`` of a live row, all written by that row's own steps (tests/nn). The memory is released when the
outermost ``with kv_workspace()`` of the thread exits, so nothing is held between a caller's runs.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["held_bytes", "kv_storage", "kv_workspace"]

_LOCAL = threading.local()  # depth: open workspaces of this thread; store: slot -> (keys, values)


@contextmanager
def kv_workspace() -> Iterator[None]:
    """Within it, :func:`kv_storage` keeps each slot's buffers for this thread's next run; nested uses share
    the outermost one, whose exit releases them."""
    depth = getattr(_LOCAL, "depth", 0)
    if depth == 0:
        _LOCAL.store = {}
    _LOCAL.depth = depth + 1
    try:
        yield
    finally:
        _LOCAL.depth = depth
        if depth == 0:
            _LOCAL.store = {}


def kv_storage(slot: Hashable, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
               ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Keys and values storage of ``shape`` (rows first, CPU, contiguous) for ``slot``: inside
    :func:`kv_workspace` the slot's earlier storage when it has at least ``shape[0]`` rows of the same
    trailing shape and dtype (its first rows), else a new one that the slot keeps; None outside a workspace
    (the caller allocates its own)."""
    if getattr(_LOCAL, "depth", 0) == 0:
        return None
    held = _LOCAL.store.get(slot)
    if held is None or held[0].shape[1:] != tuple(shape[1:]) or held[0].shape[0] < shape[0] or held[0].dtype != dtype:
        _LOCAL.store.pop(slot, None)  # the old storage goes before the new one is allocated
        held = (torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype))
        _LOCAL.store[slot] = held
    return held[0][:shape[0]], held[1][:shape[0]]


def held_bytes() -> int:
    """Bytes this thread's workspace holds (0 outside one)."""
    store = getattr(_LOCAL, "store", {}) if getattr(_LOCAL, "depth", 0) else {}
    return sum(t.numel() * t.element_size() for pair in store.values() for t in pair)
