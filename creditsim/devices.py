"""Where torch work runs: one check of a device name for the whole library.

Every torch model, the cashflow engine, the waterfall and :func:`creditsim.simulate` take ``device``;
they all pass it through :func:`torch_device` so a typo or a GPU that is not there is a one-line
ConfigError at the call, never a RuntimeError from inside torch half-way through a run.
"""

from __future__ import annotations

import re

import torch

from creditsim.errors import ConfigError

__all__ = ["check_device", "torch_device"]


def check_device(device: object) -> str:
    """A validated device name: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (N an existing GPU), lower case.

    Accepts the name or a ``torch.device``; ConfigError for anything else, and when CUDA is asked for
    but not available.
    """
    name = str(device).strip().lower() if isinstance(device, (str, torch.device)) else None
    if name is None or not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}, no usable GPU); use device='cpu'")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return name


def torch_device(device: object) -> torch.device:
    """:func:`check_device`, as a ``torch.device``."""
    return torch.device(check_device(device))
