"""Random streams: every random draw of a run flows from one integer ``seed`` through a key.

One scheme for the whole library: a stream is ``numpy.random.SeedSequence(seed, spawn_key=key)``, the
key a tuple of non-negative ints naming what the numbers are for. Two streams with different keys are
statistically independent; the same ``(seed, key)`` gives the same numbers on any machine, whatever the
chunking, thread count or device, because nothing about the layout of the work enters the key.

Keys in use (never reuse one for another purpose):

================================  ==============================================================
key                               numbers
================================  ==============================================================
``(LABELS,)``                     scenario labels of a run (stratified draw)
``(MACRO, s)``                    macro paths of scenario type ``s`` (0..3); ``(MACRO, 4)``: the VAE's
                                  reference sample whose median centres anchored paths
``(MACRO, s, 1)``                 anchored scenario type ``s``: each path's severity, then onset
``(MACRO, s, 2)``                 ``fed:`` paths of label ``s``: the VAE conditioned on the supervisory
                                  table (guided SMC: particles, then resampling)
``(MACRO, k, 3)``                 narrative paths; ``k`` the narrative's scenario index, 4 when its
                                  anchors alone pick the paths
``(MACRO, 5)``                    ``forecast`` paths: the VAE's forecast distribution (a pull per path)
``(LOANS, scenario_id)``          loan-level model draws of a scenario (trajectory engine)
``(scenario_id, block)``          Markov engine: LGD Beta variates, then one float32 uniform per loan
                                  and month, for the :data:`~creditsim.transitions.sampler.RNG_LOAN_BLOCK`
                                  loans of ``block``
``(block,)``                      trajectory model: the torch stream of loan block ``block``
``()``                            a component's own root stream (generators, training, the VAE)
================================  ==============================================================

The Markov engine's ``(scenario_id, block)`` keys carry no purpose prefix: they predate this module and
every shipped number (demo, benchmarks, tests) depends on them. They can coincide with a
``(MACRO, scenario_id)`` key (scenario id 2, block ``s``); the two uses draw from different generators
(SFC64 on the sequence itself vs PCG64 seeded by a 32-bit word derived from it), so no two numbers are
shared, but a future renumbering of the run streams should give the engine a purpose prefix.
"""

from __future__ import annotations

import numpy as np
import torch

from creditsim.errors import ConfigError

__all__ = [
    "LABELS",
    "MACRO",
    "LOANS",
    "check_seed",
    "stream",
    "int_seed",
    "torch_seed",
    "numpy_generator",
    "sfc64_generator",
    "torch_generator",
]

#: purpose prefixes of the run-level streams (spawn keys; never reuse a number)
LABELS = 1
MACRO = 2
LOANS = 3


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int >= 0, or a ConfigError naming the parameter."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def stream(seed: int, *key: int) -> np.random.SeedSequence:
    """The SeedSequence of stream ``key`` under ``seed`` (see the module table)."""
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))


def int_seed(seed: int, *key: int) -> int:
    """A 32-bit seed derived from stream ``key``: for components that take an integer seed."""
    return int(stream(seed, *key).generate_state(1)[0])


def torch_seed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from stream ``key`` for ``torch.Generator.manual_seed`` (which takes int64)."""
    return int(stream(seed, *key).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def numpy_generator(seed: int, *key: int) -> np.random.Generator:
    """numpy's default (PCG64) generator on stream ``key``."""
    return np.random.default_rng(stream(seed, *key))


def sfc64_generator(seed: int, *key: int) -> np.random.Generator:
    """An SFC64 generator on stream ``key``: about 4x faster than PCG64 for float32 uniforms."""
    return np.random.Generator(np.random.SFC64(stream(seed, *key)))


def torch_generator(seed: int, *key: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from stream ``key``."""
    return torch.Generator(device=device).manual_seed(torch_seed(seed, *key))
