"""The trajectory model's ancestral value sampler as one fused C++ pass (CPU).

:meth:`LoanTrajectoryModel._sample_values <creditsim.loans.trajectory.LoanTrajectoryModel>` runs the
:class:`~creditsim.loans.trajectory.DiffusionHead` ``K`` times (50 in the shipped model) for every
loan-month that needs a value, and this chain is about 80 % of the trajectory engine's FLOPs. In torch
eager each step is nine passes over ``(N, h)`` tensors -- three matrix products, two SiLUs, the adds and
the posterior update -- and at ``h = 64`` the passes around the products take most of the time: the
chain ran at 45-55 GFLOP/s against a 98 GFLOP/s one-thread sgemm floor (2-core AMD EPYC, 2026-12-07).
The extension ``creditsim.loans._diffusion_chain`` (``_diffusion_chain.cpp``, built by the package's
install) keeps a tile of 32 rows' activations in registers and L1 for all ``K`` steps and runs at
81-83 GFLOP/s on the same machine, 1.5-1.8x the eager chain. On a 2-core Xeon with two AVX-512 FMA ports
(176 GFLOP/s sgemm floor, 2026-12-07) the compiler's vectorisation of the hidden product kept too few
accumulators (65 GFLOP/s for the chain); an explicit AVX-512 register block for that product, chosen at
run time, gives 81-87 GFLOP/s with the same bits. The chain's own SiLU (2^y by a degree-5 polynomial and
an exact scaling: twelve vector operations and a division where ``exp`` took eighteen) and the first
layer's SiLU pass in an AVX-512 block as well: 93-97 -> 108-116 GFLOP/s (8,000 rows, same Xeon), and 2-12 %
less CPU for the whole trajectory bench (median 7 %, six interleaved pairs, 2026-12-07).

The maths is the eager sampler's, step for step (``creditsim.loans.trajectory`` writes it out):
``cond_h = cond(value_params)`` once, then per step ``z = silu(x_in(y) + cond_h + step_emb[k])``, ``eps = out(silu(hidden(z)))``,
``y0 = clip((y - sqrt(1 - ab_k) eps) / sqrt(ab_k), -1, 1)``, then the posterior draw
``y = c0_k y0 + ck_k y + sd_k noise[K - k]``, and ``(y0 + 1) / 2`` at ``k = 0``. The numbers agree with the
eager chain to float32 rounding (about 1e-7 on the shipped model): the matrix products sum in another
order and the SiLU is the kernel's own: within 1.3e-6 absolute of the exact one for ``|v| <= 20``, as
torch's float32 SiLU is, and within 1.1e-6 relative there (3.7e-7 for ``|v| <= 5``; torch's is within
1.7e-7 relative); the tests hold it to its comment's bounds. On the shipped model the compiled chain stays
within 1.8e-7 of the eager one (20,000 rows). What the kernel guarantees beyond eager:

- *row-invariant*: a tile's rows are the lanes of its vectors, so no sum ever mixes two rows; a row's
  value is the same bits whatever chunk, tile, thread or batch it is computed in (a BLAS product
  may pick another kernel for another row count);
- *the same bits on every CPU*: each product-sum is an explicit ``fmaf`` in a fixed order, compiled
  with ``-ffp-contract=off``, and the SiLU is plain IEEE arithmetic, so the AVX-512, AVX2 and baseline
  builds the library picks among at load time agree exactly.

Decision: the extension is optional. Where the install found no C++ compiler (or another platform's
compiler rejected the flags) :func:`available` is False and the model samples in torch: the same
values to float32 rounding, more slowly. The CUDA path, the DDIM sampler
(:mod:`creditsim.loans.diffusion_sampling`) and anything under autograd stay in torch; so does a model
whose ``fused_kernels`` attribute is False (the tests compare the two paths with it).
"""

from __future__ import annotations

from typing import Any

import torch

try:  # built by `pip install` (setup.py); optional, see the module docstring
    from creditsim.loans import _diffusion_chain
except ImportError:  # pragma: no cover - exercised only where the install had no compiler
    _diffusion_chain = None

__all__ = ["available", "ancestral_chain"]


def available() -> bool:
    """True where the compiled chain was built and imports."""
    return _diffusion_chain is not None


def _float32_cpu(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(device="cpu", dtype=torch.float32).contiguous()


def ancestral_chain(head: Any, posterior: torch.Tensor, value_params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The full ancestral chain of ``head`` (a :class:`~creditsim.loans.trajectory.DiffusionHead`),
    its conditioning layer included.

    Args:
        head: the noise predictor; its weights are read, float32 on the CPU.
        posterior: ``(5, K)`` float32 per-step ``sqrt(1 - ab_k)``, ``sqrt(ab_k)``, ``c0_k``, ``ck_k``, ``sd_k``
            (:meth:`LoanTrajectoryModel._posterior_table`).
        value_params: ``(N, d)`` the rows' conditioning vectors (``head.cond`` maps them to ``(N, h)``).
        noise: ``(K + 1, N, 2)`` standard normals; slice 0 is ``y_K``, slice ``K - k`` the draw of step ``k``.

    Returns:
        ``(N, 2)`` float32 values in [0, 1] on the CPU.

    Raises:
        RuntimeError: the extension is not built (check :func:`available` first).
        ValueError: shapes that do not fit the head.
    """
    if _diffusion_chain is None:
        raise RuntimeError("creditsim.loans._diffusion_chain is not built; reinstall with a C++ compiler")
    if torch.is_grad_enabled() and (value_params.requires_grad or noise.requires_grad):
        raise ValueError("ancestral_chain has no backward: call it under torch.no_grad() (the model's torch chain "
                         "is differentiable)")
    h, d = head.cond.weight.shape
    k = head.step_emb.weight.shape[0]
    n = value_params.shape[0]
    if value_params.shape != (n, d) or noise.shape != (k + 1, n, 2) or posterior.shape != (5, k):
        raise ValueError(f"ancestral_chain: value_params (N, {d}), noise ({k + 1}, N, 2) and posterior (5, {k}) "
                         f"expected, got {tuple(value_params.shape)}, {tuple(noise.shape)}, {tuple(posterior.shape)}")
    # named locals: each buffer stays alive while the C++ code reads it by address
    params, draws, coef = _float32_cpu(value_params), _float32_cpu(noise), _float32_cpu(posterior)
    weights = [_float32_cpu(w) for w in (head.cond.weight, head.cond.bias, head.x_in.weight, head.x_in.bias,
                                         head.step_emb.weight, head.hidden.weight, head.hidden.bias, head.out.weight,
                                         head.out.bias)]
    out = torch.empty(n, 2, dtype=torch.float32)
    _diffusion_chain.ancestral(n, d, h, k, params.data_ptr(), draws.data_ptr(), *(w.data_ptr() for w in weights),
                               coef.data_ptr(), out.data_ptr())
    return out
