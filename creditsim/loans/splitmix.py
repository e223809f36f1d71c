"""SplitMix64's finaliser, the hash of the library's counter-based streams (numba).

The realised-LGD draws (:mod:`creditsim.loans.lgd_draws`) and the trajectory model's value noise
(:mod:`creditsim.loans.value_noise`) make a stream's numbers from a hash of its counters, so a number can
be made where it is needed and depends on nothing else. The hash is Steele, Lea & Flood's SplitMix64
finaliser (OOPSLA 2014; the constants of Vigna's ``splitmix64.c``): a bijection of uint64 that scatters
every input bit over the output.

Kept out of :mod:`creditsim.rng` so that the ground floor of the package does not import numba. Numba's
on-disk cache of a kernel that inlines :func:`mix64` watches the kernel's own file, not this one: an edit
here needs the cached kernels removed (``find creditsim -name "*.nbi" -delete``) to take effect.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GOLDEN", "mix64"]

#: 2**64 / golden ratio, odd: SplitMix64's counter increment
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)


@njit(cache=True, inline="always")
def mix64(z):  # pragma: no cover - compiled
    """SplitMix64's finaliser of a uint64 ``z``."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)
