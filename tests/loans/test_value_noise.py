"""The trajectory model's value noise (creditsim.loans.value_noise): standard normal pairs from counter-based
streams of (seed, loan, sample, month), the same for a path whichever other paths are drawn with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from creditsim.loans.value_noise import path_normals, value_noise_keys
from creditsim.rng import VALUE_NOISE, stream

_G = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    """SplitMix64's finaliser in Python integers: the documented hash, written independently of the kernel."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _documented_pair(seed: int, loan: int, sample: int, month: int, k: int) -> tuple[float, float]:
    """Normal pair ``k`` of a path-month by the module docstring's formula, with libm's log, cos and sin."""
    k0, k1 = (int(x) for x in stream(seed, VALUE_NOISE).generate_state(2, np.uint64))
    h = _mix(_mix((k0 + loan * _G) & _MASK) ^ ((k1 + ((month << 32) + sample) * _G) & _MASK))
    x = _mix((h + (k + 1) * _G) & _MASK)
    u1 = ((x >> 41) + 0.5) * 2.0**-23
    angle = 2 * math.pi * ((x & 0xFFFFFFFF) >> 8) * 2.0**-24
    r = math.sqrt(-2 * math.log(u1))
    return r * math.cos(angle), r * math.sin(angle)


def _draw(seed_rows, loan, sample, month, n_noise, seeds=(5, 9)):
    return path_normals(value_noise_keys(seeds), np.asarray(seed_rows), np.asarray(loan), np.asarray(sample), month,
                        n_noise).numpy()


def test_normals_follow_the_documented_formula():
    """Every pair of a few path-months equals the docstring's formula evaluated in float64 with libm, to
    float32 rounding (the kernel's own polynomials err by a few float32 ulps)."""
    loans, samples, months = [0, 1, 255, 256, 10**6, 2**31 + 3], [0, 3, 1, 0, 2, 7], [0, 59, 1, 360, 7, 2]
    for month in set(months):
        rows = [i for i, m in enumerate(months) if m == month]
        got = _draw([0] * len(rows), [loans[i] for i in rows], [samples[i] for i in rows], month, 6)
        for j, i in enumerate(rows):
            for k in range(6):
                want = _documented_pair(5, loans[i], samples[i], month, k)
                assert got[k, j] == pytest.approx(want, abs=2e-6, rel=2e-6), (loans[i], month, k)


def test_normals_are_standard_normal_and_independent():
    n, n_noise = 4000, 25
    rng = np.random.default_rng(0)
    loan = rng.permutation(10**5)[:n]
    z = _draw(np.zeros(n, int), loan, np.zeros(n, int), 3, n_noise)  # (n_noise, n, 2)
    flat = z.astype(np.float64).ravel()
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    assert abs(flat.mean()) < 4 / math.sqrt(flat.size)
    assert flat.var() == pytest.approx(1.0, abs=4 * math.sqrt(2 / flat.size))
    assert np.mean(np.abs(flat) > 3) == pytest.approx(2 * stats.norm.sf(3), abs=4 * math.sqrt(0.0027 / flat.size))
    assert np.abs(flat).max() < 5.8  # the Box-Muller radius of the smallest uniform, 2**-24
    bound = 4 / math.sqrt(n * (n_noise - 1))
    assert abs(np.corrcoef(z[..., 0].ravel(), z[..., 1].ravel())[0, 1]) < bound  # the pair's two values
    assert abs(np.corrcoef(z[:-1, :, 0].ravel(), z[1:, :, 0].ravel())[0, 1]) < bound  # successive steps
    # neighbouring loans, the next month, the next sample, another seed: no shared numbers, no correlation
    for other in (_draw(np.zeros(n, int), loan + 1, np.zeros(n, int), 3, n_noise),
                  _draw(np.zeros(n, int), loan, np.zeros(n, int), 4, n_noise),
                  _draw(np.zeros(n, int), loan, np.ones(n, int), 3, n_noise),
                  _draw(np.ones(n, int), loan, np.zeros(n, int), 3, n_noise)):
        assert abs(np.corrcoef(z.ravel(), other.ravel())[0, 1]) < 4 / math.sqrt(z.size)
        assert (z == other).mean() < 1e-3


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 17, 31, 64])
def test_a_paths_normals_do_not_depend_on_the_batch(n):
    """The same path-month gives the same bits alone, in any batch length (the vector loop's remainder
    lanes included) and at any position."""
    rng = np.random.default_rng(n)
    loan, sample, seed_row = rng.integers(0, 10**6, n), rng.integers(0, 4, n), rng.integers(0, 2, n)
    batch = _draw(seed_row, loan, sample, 11, 7)
    order = rng.permutation(n)
    assert np.array_equal(_draw(seed_row[order], loan[order], sample[order], 11, 7), batch[:, order])
    for i in range(n):
        assert np.array_equal(_draw(seed_row[i:i + 1], loan[i:i + 1], sample[i:i + 1], 11, 7)[:, 0], batch[:, i])
    # fewer steps are the first steps
    assert np.array_equal(_draw(seed_row, loan, sample, 11, 3), batch[:3])


def test_keys_are_per_seed():
    keys = value_noise_keys((5, 9, 5))
    assert keys.shape == (3, 2) and keys.dtype == np.uint64
    assert np.array_equal(keys[0], keys[2]) and not np.array_equal(keys[0], keys[1])
    assert value_noise_keys(()).shape == (0, 2)


def test_normals_are_the_same_bits_on_a_cpu_without_vector_extensions(tmp_path):
    """numba compiled for a generic x86-64 (SSE2 lanes, no AVX) gives the host's bits: no FMA contraction and
    no vector-width-dependent rounding in the kernel (the module's promise)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, sys; from creditsim.loans.value_noise import path_normals, value_noise_keys; "
            "r = np.random.default_rng(1); n = 37; "
            "z = path_normals(value_noise_keys((5, 9)), r.integers(0, 2, n), r.integers(0, 10**6, n), "
            "r.integers(0, 3, n), 4, 9).numpy(); np.save(sys.argv[1], z)")
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "generic.npy")], check=True, env=env, timeout=300)
    rng = np.random.default_rng(1)
    n = 37
    host = _draw(rng.integers(0, 2, n), rng.integers(0, 10**6, n), rng.integers(0, 3, n), 4, 9)
    assert np.array_equal(np.load(tmp_path / "generic.npy"), host)


def test_mismatched_or_out_of_range_counters_are_refused():
    keys = value_noise_keys((1,))
    with pytest.raises(ValueError, match=r"loan must be a \(2,\) integer array"):
        path_normals(keys, np.zeros(2, int), np.arange(8000), np.zeros(8000, int), 5, 2)
    with pytest.raises(ValueError, match=r"sample must be a \(2,\) integer array"):
        path_normals(keys, np.zeros(2, int), np.arange(2), 0, 5, 2)
    with pytest.raises(ValueError, match=r"sample must lie in \[0, 4294967296\), got 4294967296"):
        path_normals(keys, np.zeros(2, int), np.arange(2), np.array([0, 2**32]), 5, 2)
    with pytest.raises(ValueError, match=r"seed_index must lie in \[0, 1\), got 1"):
        path_normals(keys, np.array([0, 1]), np.arange(2), np.zeros(2, int), 5, 2)
    with pytest.raises(ValueError, match="seed_index must be a 1-D integer array"):
        path_normals(keys, np.int64(0), np.arange(1), np.zeros(1, int), 5, 2)
    with pytest.raises(ValueError, match="loan must lie in .*, got -1"):
        path_normals(keys, np.zeros(2, int), np.array([3, -1]), np.zeros(2, int), 5, 2)
    with pytest.raises(ValueError, match="month must be an integer"):
        path_normals(keys, np.zeros(2, int), np.arange(2), np.zeros(2, int), -1, 2)
    with pytest.raises(ValueError, match="month must be an integer"):
        path_normals(keys, np.zeros(2, int), np.arange(2), np.zeros(2, int), 2.7, 2)
    with pytest.raises(ValueError, match="n_noise must be an integer"):
        path_normals(keys, np.zeros(2, int), np.arange(2), np.zeros(2, int), 2, 3.0)
    assert path_normals(keys, np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), 0, 3).shape == (3, 0, 2)


def _counters(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Counters over their range: small and huge loans, samples up to 2**32 - 1, several seeds."""
    rng = np.random.default_rng(seed)
    loan = np.concatenate([np.arange(300), rng.integers(0, 2**63, n - 300, dtype=np.int64)]).astype(np.uint64)
    sample = np.concatenate([np.zeros(n - 2, np.int64), [1, 2**32 - 1]])
    return rng.integers(0, 3, n), loan, sample


def test_the_compiled_kernel_gives_the_numba_kernels_bits():
    """path_normals in the package's C++ kernel (where built) against the numba kernel it replaced: the same bits
    for 5,000 path-months x 40 pairs (2e5 uniforms and angles: both fields over their whole range, so every
    branch of the log's search and every quarter turn), rows in blocks of 256 and a ragged last one, months 0
    and 2**32 - 1."""
    from creditsim.loans import value_noise

    if value_noise._diffusion_chain is None:
        pytest.skip("the C++ kernels are not built")
    keys = value_noise_keys((5, 9, 11))
    seed_rows, loan, sample = _counters(5_000)
    for month in (0, 7, 2**32 - 1):
        c = path_normals(keys, seed_rows, loan, sample, month, 40).numpy()
        nb = path_normals(keys, seed_rows, loan, sample, month, 40, compiled=False).numpy()
        assert np.array_equal(c.view(np.uint32), nb.view(np.uint32)), month
    for n in (0, 1, 255, 256, 257):  # ragged blocks; and no rows at all
        c = path_normals(keys, seed_rows[:n], loan[:n], sample[:n], 3, 5, compiled=True).numpy()
        nb = path_normals(keys, seed_rows[:n], loan[:n], sample[:n], 3, 5, compiled=False).numpy()
        assert c.shape == (5, n, 2) and np.array_equal(c.view(np.uint32), nb.view(np.uint32)), n


def test_every_instruction_set_level_gives_the_same_normals(kernel_levels, monkeypatch):
    """The kernel built for baseline x86-64, AVX2 and AVX-512 gives the numba kernel's bits at each level."""
    from pathlib import Path

    from creditsim.loans import diffusion_kernel, value_noise

    keys = value_noise_keys((5, 9))
    seed_rows, loan, sample = _counters(1_000, seed=1)
    seed_rows = seed_rows % 2
    want = path_normals(keys, seed_rows, loan, sample, 11, 9, compiled=False).numpy().view(np.uint32)
    for march, module in kernel_levels(Path(diffusion_kernel.__file__).with_name("_diffusion_chain.cpp")):
        monkeypatch.setattr(value_noise, "_diffusion_chain", module)
        got = path_normals(keys, seed_rows, loan, sample, 11, 9).numpy().view(np.uint32)
        assert np.array_equal(got, want), march
