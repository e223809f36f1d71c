"""The trajectory model's value noise: counter-based normals, drawn only for the paths that need values.

Each month the diffusion head samples a path's values (payment ratio, LGD) from ``n_noise`` normal pairs
(``K + 1`` for the full ``K``-step chain), and only where the values are used: a performing or defaulting
month, 36 % of the path-months on the trajectory bench. The normals used to come from the loan block's
mt19937 stream, drawn for every path every month so that the stream's position never depended on which
paths needed values: 49 M normals a 4-scenario bench run, 0.2 s of a 1.9 s run in the draw, the
concatenation of the blocks' draws and the selection of the rows used.

Here a path-month has a stream of its own, so its normals are made where they are used and depend on
nothing else (not on the chunk, the threads, the device, or the book around the loan):

- key: ``(k0, k1) = SeedSequence(seed, spawn_key=(VALUE_NOISE,)).generate_state(2, uint64)``, ``seed``
  the scenario's generation seed (:data:`creditsim.rng.VALUE_NOISE`);
- the path-month's stream: ``h = mix(mix(k0 + loan G) ^ (k1 + (month 2**32 + sample) G))`` with ``loan``
  the loan's position in the book, ``sample`` the path's index among the loan's samples of the scenario,
  ``G = 0x9E3779B97F4A7C15`` and ``mix`` SplitMix64's finaliser (:func:`creditsim.loans.splitmix.mix64`, as the
  Markov engine's LGD streams, :mod:`creditsim.loans.lgd_draws`);
- normal pair ``k`` (``k = 0 .. n_noise - 1``): ``x = mix(h + (k + 1) G)``; its top 23 bits ``a`` a
  uniform ``u1 = (a + 1/2) 2**-23`` in (0, 1), bits 8..31 ``b`` an angle ``2 pi b 2**-24``; Box-Muller
  in float32: ``sqrt(-2 log u1) (cos, sin)(angle)`` (|z| <= 5.8: the tails beyond, 1e-8 of the mass,
  are not drawn).

One pair per 64-bit output, no rejection, so every path-month costs the same and the loop vectorises
(~3 ns a normal on the 2-core Xeon in numba; torch's mt19937 ``randn`` took 2.4 ns, for 2.8 times as many). The
package's C++ kernel (``creditsim.loans._diffusion_chain``, where the install built it) runs the same operations
in blocks of rows that vectorise at every instruction-set level, 1.1-1.7 ns a normal against numba's 2.7-3.2
(two measurements, 2026-12-07), the same bits (the tests compare the two and each level); the numba kernel runs
where it is not built.
``log``, ``cos`` and ``sin`` are this module's own float32 polynomials (``log`` by the ``atanh`` series
on the mantissa, ``cos`` / ``sin`` Taylor to degree 8 / 9 on a quarter turn; errors of a few float32
ulps): libm or a vector math library could round a lane of a vector loop differently from its scalar
remainder, and a path's noise would then depend on its position in the batch. Plain adds, multiplies,
divisions and square roots (numba contracts none into FMAs without ``fastmath``) give the same bits at
any vector width.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from creditsim.loans.splitmix import GOLDEN as _G, mix64
from creditsim.rng import VALUE_NOISE, stream

try:  # built by `pip install` (setup.py); optional: the numba kernel gives the same bits
    from creditsim.loans import _diffusion_chain
except ImportError:  # pragma: no cover - exercised only where the install had no compiler
    _diffusion_chain = None

__all__ = ["path_normals", "value_noise_keys"]

_S8, _S9, _S32 = np.uint64(8), np.uint64(9), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_F = np.float32
_LN2, _SQRT2, _HALF, _ONE, _TWO = _F(0.6931471805599453), _F(1.4142135623730951), _F(0.5), _F(1.0), _F(2.0)
_POW = tuple(_F(2.0**k) for k in (16, 8, 4, 2, 1))
_INV_POW = tuple(_F(2.0**-k) for k in (16, 8, 4, 2, 1))
_STEP = tuple(_F(k) for k in (16, 8, 4, 2, 1))
_LOG_C = tuple(_F(1.0 / k) for k in (3, 5, 7, 9))
_COS_C = tuple(_F(c) for c in (-1.0 / 2, 1.0 / 24, -1.0 / 720, 1.0 / 40320))
_SIN_C = tuple(_F(c) for c in (-1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880))
_QUARTER = _F(2.0**22)  # a quarter turn in units of the 24-bit angle
_RAD = _F(2.0 * np.pi / 2.0**24)  # radians per unit of the 24-bit angle


def value_noise_keys(seeds: tuple[int, ...]) -> np.ndarray:
    """``(len(seeds), 2)`` uint64: each scenario seed's key ``(k0, k1)`` of its value-noise streams."""
    return np.array([stream(s, VALUE_NOISE).generate_state(2, np.uint64) for s in seeds], dtype=np.uint64).reshape(
        len(seeds), 2)


@njit(cache=True, inline="always", error_model="numpy")
def _log_unit(a):  # pragma: no cover - compiled
    """float32 ``log(u1)`` of ``u1 = (a + 1/2) 2**-23`` for a uint64 ``a < 2**23``: ``u1 = v 2**-24`` with the
    odd integer ``v = 2a + 1`` (exact in float32), scaled by powers of two (exact) to ``m`` in [1, 2),
    ``u1 = m 2**e`` (``e`` starts at -24), by a branch-free search for the top bit of ``v``; ``m`` folded
    into [sqrt(1/2), sqrt(2)) and ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``, |s| <= 0.172, by its
    series to ``s**9`` (the next term below 1e-9)."""
    m = _F(a + a + np.uint64(1))
    e = _F(-24.0)
    for i in range(5):  # over tuples of constants: unrolled by numba, so the row loop vectorises
        big = m >= _POW[i]
        m = m * _INV_POW[i] if big else m
        e = e + _STEP[i] if big else e
    big = m > _SQRT2
    m = m * _HALF if big else m
    e = e + _ONE if big else e
    s = (m - _ONE) / (m + _ONE)
    s2 = s * s
    p = _LOG_C[2] + s2 * _LOG_C[3]
    p = _LOG_C[1] + s2 * p
    p = _LOG_C[0] + s2 * p
    return e * _LN2 + (s + s) * (_ONE + s2 * p)


@njit(cache=True, inline="always", error_model="numpy")
def _cos_sin_turn(b):  # pragma: no cover - compiled
    """float32 ``(cos, sin)`` of the angle ``2 pi b 2**-24`` for a uint64 ``b < 2**24``: the nearest quarter
    turn ``q`` and the exact remainder ``r`` in [-2**21, 2**21], Taylor series to degree 8 / 9 (the next
    terms below 3e-8) on ``x = r 2 pi 2**-24`` (|x| <= pi / 4), then the quarter turn's rotation."""
    q = (b + np.uint64(1 << 21)) >> np.uint64(22)
    x = (_F(b) - _F(q) * _QUARTER) * _RAD
    x2 = x * x
    c = _COS_C[2] + x2 * _COS_C[3]
    c = _COS_C[1] + x2 * c
    c = _COS_C[0] + x2 * c
    c = _ONE + x2 * c
    s = _SIN_C[2] + x2 * _SIN_C[3]
    s = _SIN_C[1] + x2 * s
    s = _SIN_C[0] + x2 * s
    s = x + x * (x2 * s)
    k = q & np.uint64(3)
    odd = (k & np.uint64(1)) != np.uint64(0)
    cos_t = s if odd else c
    sin_t = c if odd else s
    cos_t = -cos_t if (k == np.uint64(1) or k == np.uint64(2)) else cos_t
    sin_t = -sin_t if k >= np.uint64(2) else sin_t
    return cos_t, sin_t


@njit(cache=True, nogil=True, error_model="numpy")
def _path_normals(k0, k1, loan, tag, out):  # pragma: no cover - compiled
    """``out`` ``(n_noise, n, 2)`` float32: the normal pairs of ``n`` path-months with keys ``k0, k1`` and
    counters ``loan``, ``tag = month 2**32 + sample`` (``(n,)`` uint64 each)."""
    n = loan.shape[0]
    h = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h[i] = mix64(mix64(k0[i] + loan[i] * _G) ^ (k1[i] + tag[i] * _G))
    # contiguous per-component rows, interleaved after: stored straight into out's (n, 2) the loop would
    # not vectorise (3 ns a normal this way, 10 ns that way, in float64)
    z0 = np.empty(n, dtype=np.float32)
    z1 = np.empty(n, dtype=np.float32)
    for k in range(out.shape[0]):
        step = np.uint64(k + 1) * _G
        for i in range(n):
            x = mix64(h[i] + step)
            r = np.sqrt(-_TWO * _log_unit(x >> (_S32 + _S9)))
            c, s = _cos_sin_turn((x & _LOW32) >> _S8)
            z0[i] = r * c
            z1[i] = r * s
        for i in range(n):
            out[k, i, 0] = z0[i]
            out[k, i, 1] = z1[i]


def path_normals(keys: np.ndarray, seed_index: np.ndarray, loan: np.ndarray, sample: np.ndarray, month: int,
                 n_noise: int, compiled: bool = True) -> torch.Tensor:
    """The value noise of ``n`` path-months of month ``month`` (module docstring).

    Args:
        keys: ``(n_seeds, 2)`` uint64, :func:`value_noise_keys`.
        seed_index: ``(n,)`` each path's row of ``keys`` (its scenario).
        loan: ``(n,)`` each path's loan position in the book (global, not the chunk's).
        sample: ``(n,)`` each path's sample index within its loan and scenario.
        month: the month, >= 0.
        n_noise: normal pairs per path-month.
        compiled: in the C++ kernel where it is built (the same bits as the numba kernel, which runs otherwise).

    Returns:
        ``(n_noise, n, 2)`` float32 CPU tensor of standard normals.

    Raises:
        ValueError: arrays of other lengths or dimensions, or counters out of range (negative, a sample
            index of 2**32 or more, a ``seed_index`` past ``keys``).
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    seed_index, loan, sample = (np.asarray(x) for x in (seed_index, loan, sample))
    # the kernel trusts its lengths and counters: a mismatch would read and write past the arrays
    if keys.ndim != 2 or keys.shape[1] != 2:
        raise ValueError(f"path_normals: keys must be (n_seeds, 2), got {keys.shape}")
    if seed_index.ndim != 1:
        raise ValueError(f"path_normals: seed_index must be a 1-D integer array, got shape {seed_index.shape}")
    n = seed_index.shape[0]
    for name, x, top in (("seed_index", seed_index, keys.shape[0]), ("loan", loan, 2**64), ("sample", sample, 2**32)):
        if x.ndim != 1 or x.shape[0] != n or (x.size and x.dtype.kind not in "iu"):
            raise ValueError(f"path_normals: {name} must be a ({n},) integer array, got {x.dtype} {x.shape}")
        if x.size and (x.min() < 0 or x.max() >= top):
            bad = x.min() if x.min() < 0 else x.max()
            raise ValueError(f"path_normals: {name} must lie in [0, {top}), got {bad}")
    for name, v, top in (("month", month, 2**32), ("n_noise", n_noise, 2**31)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < top:
            raise ValueError(f"path_normals: {name} must be an integer in [0, {top}), got {v!r}")
    k = keys[seed_index.astype(np.int64)]
    tag = (np.uint64(month) << np.uint64(32)) + sample.astype(np.uint64)
    out = np.empty((int(n_noise), n, 2), dtype=np.float32)
    # named locals: each array stays alive while the C++ reads it by address
    k0, k1, loan64 = np.ascontiguousarray(k[:, 0]), np.ascontiguousarray(k[:, 1]), np.ascontiguousarray(loan, np.uint64)
    tag = np.ascontiguousarray(tag)
    if compiled and _diffusion_chain is not None:
        _diffusion_chain.normals(n, int(n_noise), k0.ctypes.data, k1.ctypes.data, loan64.ctypes.data, tag.ctypes.data,
                                 out.ctypes.data)
    else:
        _path_normals(k0, k1, loan64, tag, out)
    return torch.from_numpy(out)
