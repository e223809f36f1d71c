"""Modules in eval mode for a block of code, each module's own mode back after.

Generation and scoring must run without dropout whatever mode the caller left a model in, and must not
change the mode the caller sees afterwards. :func:`eval_modes` is the one place that does this, for one
model (:meth:`creditsim.loans.trajectory.LoanTrajectoryModel.evaluating`) or for every model a run holds
(:func:`creditsim.risk.simulate.models_in_eval`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

__all__ = ["eval_modes"]


@contextmanager
def eval_modes(models: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Every submodule of ``models`` in eval mode inside the block; each module's own mode back after (a
    submodule the caller froze in eval mode stays so). With every module already in eval mode it writes
    nothing, so code running on several threads inside one such block never flips the flags another
    thread reads."""
    modes = {m: m.training for model in models for m in model.modules()}
    if not any(modes.values()):
        yield
        return
    for m in modes:
        m.training = False
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training
