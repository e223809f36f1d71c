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
``(scenario_id, block)``          Markov engine: one float32 uniform per loan and month, for the
                                  :data:`~creditsim.transitions.sampler.RNG_LOAN_BLOCK` loans of ``block``
``(LGD,)``                        Markov engine: the key of the counter-based realised-LGD streams,
                                  one per (scenario id, loan) (:mod:`creditsim.loans.lgd_draws`)
``(block,)``                      trajectory model: the torch stream of loan block ``block``
``(scenario_id,)``                trajectory engine's pool run: the seed of scenario ``scenario_id``'s
                                  ``generate`` call (:meth:`LoanTrajectoryModel.pool_cashflows`)
``(VALUE_NOISE,)``                trajectory model: the key of the counter-based value-noise streams,
                                  one per (loan, sample, month) (:mod:`creditsim.loans.value_noise`)
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
    "LGD",
    "VALUE_NOISE",
    "check_seed",
    "stream",
    "int_seed",
    "torch_seed",
    "numpy_generator",
    "sfc64_generator",
    "sfc64_seed_states",
    "torch_generator",
]

#: purpose prefixes of the run-level streams (spawn keys; never reuse a number)
LABELS = 1
MACRO = 2
LOANS = 3
#: the realised-LGD key's one word: "LGD" in ASCII, far above any loan block index, so the 1-word key
#: ``(LGD,)`` cannot meet the trajectory model's ``(block,)`` keys (nor the small purpose prefixes). It
#: equals the key of the trajectory engine's scenario 4,998,980 (``(scenario_id,)`` below), a run that
#: never draws the Markov engine's LGDs
LGD = 0x4C4744
#: the value-noise key's one word ("VNOI" in ASCII): far above any loan block index, as LGD; under a
#: ``generate`` seed, which no scenario id shares a stream with
VALUE_NOISE = 0x564E4F49


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


# numpy's SeedSequence constants (pool of 4 uint32 words; hashes of 32-bit words, shift 16)
_POOL = 4
_INIT_A, _MULT_A = np.uint32(0x43B0D7E5), np.uint32(0x931E8875)
_INIT_B, _MULT_B = np.uint32(0x8B51F9DD), np.uint32(0x58F38DED)
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SFC64_WARMUP = 12


def _int_words(value: int) -> list[int]:
    """A non-negative int as numpy's SeedSequence reads it: 32-bit words, least significant first (0 -> [0])."""
    words = [value & 0xFFFFFFFF]
    value >>= 32
    while value:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
    return words


def _sequence_pools(entropy: np.ndarray) -> np.ndarray:
    """``(n, E)`` uint32 entropy words (E >= 4) -> ``(n, 4)`` uint32 pools of numpy's SeedSequence.

    Each row goes through SeedSequence's entropy mixing, one column at a time for all rows at once;
    the multiplier of the hash advances the same way for every row, so it stays a scalar. uint32 array
    arithmetic wraps modulo 2**32 as the C code's does.
    """
    const = [_INIT_A]  # the hash's running multiplier, shared by all rows

    def hashmix(value: np.ndarray) -> np.ndarray:
        value = value ^ const[0]
        const[0] = np.uint32((int(const[0]) * int(_MULT_A)) & 0xFFFFFFFF)
        value = value * const[0]
        return value ^ (value >> np.uint32(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = _MIX_L * x - _MIX_R * y
        return out ^ (out >> np.uint32(16))

    pool = [hashmix(entropy[:, i]) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, entropy.shape[1]):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[:, src]))
    return np.stack(pool, axis=1)


def _generate_words(pools: np.ndarray, n_words: int) -> np.ndarray:
    """``(n, 4)`` uint32 pools -> ``(n, n_words)`` uint64 of ``SeedSequence.generate_state(n_words, uint64)``."""
    const = int(_INIT_B)
    out = np.empty((pools.shape[0], 2 * n_words), dtype=np.uint32)
    for i in range(2 * n_words):
        value = pools[:, i % _POOL] ^ np.uint32(const)
        const = (const * int(_MULT_B)) & 0xFFFFFFFF
        value = value * np.uint32(const)
        out[:, i] = value ^ (value >> np.uint32(16))
    low, high = out[:, 0::2].astype(np.uint64), out[:, 1::2].astype(np.uint64)
    return low | (high << np.uint64(32))  # the little-endian pairs, as numpy reads them


def sfc64_seed_states(seed: int, keys: np.ndarray) -> np.ndarray:
    """The SFC64 states of :func:`sfc64_generator` ``(seed, *key)`` for many keys at once.

    Args:
        seed: the run's seed, a non-negative int.
        keys: ``(n, k)`` non-negative int64 keys, k >= 1.

    Returns:
        ``(n, 4)`` uint64: the words ``a, b, c, counter`` of ``SFC64(stream(seed, *key)).state`` (whose
        buffered half-draw is empty), bit for bit: SeedSequence's hashing and SFC64's seeding (three
        generated words, counter 1, twelve discarded outputs) run on whole columns, so a key costs
        well under a microsecond instead of a generator's construction. A test compares them with numpy.
    """
    keys = np.asarray(keys, dtype=np.int64)
    if keys.ndim != 2 or keys.shape[1] < 1 or (keys < 0).any():
        raise ValueError(f"keys: expected (n, k>=1) non-negative integers, got shape {keys.shape}")
    # a key entry of 2**32 or more is several words to SeedSequence, so its entropy is longer: such
    # (rare) keys take numpy's own path, the others share one word layout
    wide = (keys >= 2**32).any(axis=1)
    out = np.empty((keys.shape[0], 4), dtype=np.uint64)
    for row in np.flatnonzero(wide):
        out[row] = sfc64_generator(seed, *(int(k) for k in keys[row])).bit_generator.state["state"]["state"]
    out[~wide] = _narrow_seed_states(int(seed), keys[~wide])
    return out


def _narrow_seed_states(seed: int, keys: np.ndarray) -> np.ndarray:
    """:func:`sfc64_seed_states` of ``(n, k)`` keys whose entries are all below 2**32 (one word each)."""
    run = _int_words(seed)
    run += [0] * (_POOL - len(run))  # SeedSequence pads the run entropy of a spawned sequence to the pool
    entropy = np.empty((keys.shape[0], len(run) + keys.shape[1]), dtype=np.uint32)
    entropy[:, : len(run)] = np.asarray(run, dtype=np.uint32)
    entropy[:, len(run):] = keys
    s = [w.copy() for w in _generate_words(_sequence_pools(entropy), 3).T] + [np.ones(keys.shape[0], np.uint64)]
    for _ in range(_SFC64_WARMUP):
        tmp = s[0] + s[1] + s[3]
        s = [s[1] ^ (s[1] >> np.uint64(11)), s[2] + (s[2] << np.uint64(3)),
             ((s[2] << np.uint64(24)) | (s[2] >> np.uint64(40))) + tmp, s[3] + np.uint64(1)]
    return np.stack(s, axis=1)


def torch_generator(seed: int, *key: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from stream ``key``."""
    return torch.Generator(device=device).manual_seed(torch_seed(seed, *key))
