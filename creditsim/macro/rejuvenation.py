"""Rejuvenation of conditioned macro paths: Metropolis moves on each path's whole noise after the particle filter.

Why: :meth:`~creditsim.macro.vae.MacroVAE.generate_conditional` meets anchors by sequential Monte Carlo,
and every resampling at an anchored month makes some particles copies of others. A supervisory table
anchors five variables every quarter, so after a dozen resamplings the returned paths descend from a
handful of early ancestors. Measured on the shipped model (``fed:2026:baseline`` from 2025-09, 500 paths,
39 months, 2,048 particles, before the drift term of the twist): 2 / 47 / 57 distinct histories to
months 1 / 6 / 12, and the unanchored default rate's month-12 spread 6.6 bp where the law's own is 17-20
bp (below). More particles only delay the coalescence (16x the particles: 16 histories to month 1, 9.9 bp,
15x the time).

Method (resample-move, Gilks & Berzuini 2001, J. R. Stat. Soc. B 63(1); with the preconditioned
Crank-Nicolson proposal of Cotter, Roberts, Stuart & White 2013, Stat. Sci. 28(3)): a path of the guided
sampler is a deterministic function of its standard-normal inputs ``u = (z, e_0 .. e_{T-1})`` -- the
latent and every month's innovations -- given its scenario label, its backbone pull and its start.
The conditional law the particle filter targets is, in ``u``,

    pi(u)  proportional to  N(u; 0, I) * W(u),     log W(u) = sum_t [log c_t(u) - log psi_{t-1}(u)]

with ``c_t`` the normaliser of month ``t``'s move (the anchor likelihood and twist, exact Gaussian
conditioning on anchored entries) and ``psi_t`` the look-ahead twist (:mod:`creditsim.macro.guidance`):
the same sum of incremental weights the filter accumulates, without its resets. The pCN move

    u' = rho u + sqrt(1 - rho^2) xi,   xi ~ N(0, I),   accepted with probability min(1, W(u') / W(u))

leaves ``pi`` invariant because it is reversible for the ``N(0, I)`` factor; anchors stay exact because
every proposed path is built by the same exact conditioning. The returned paths start as (equally
weighted) draws of the filter and each runs its own chain, so paths that shared an ancestor separate
wherever the move is accepted. The step ``sqrt(1 - rho^2)`` adapts between sweeps towards
:data:`TARGET_ACCEPTANCE` from the acceptance of all chains (population adaptation, as in adaptive SMC
samplers; each sweep's kernel is pi-invariant for the step it uses). When the conditions pick the dynamics
label (``scenario=None``), every second sweep also proposes a label drawn from its prior (an independence
proposal from the prior: the acceptance is still the weight ratio).

What it achieves (``bench/bench_fed_paths.py``, ``fed:2026:baseline`` from 2025-09, 500 paths, 2,048
particles, means over seeds 0-2): distinct histories to months 1 / 6 / 12 go from 3 / 58 / 133 to 500 /
500 / 500, acceptance about 30 % at a step near 0.3, 5 s more CPU per 500 paths. One run's spread of the
unanchored variables moves towards the law's own, estimated by pooling independent runs (which adds the
between-run variance that one coalesced run misses; 16 runs of 8,000 particles): the default rate's
month-12 sd from 7.7 to 14.6 bp against 17-20 bp (three reference estimates 16.8, 18.0 and 19.7), at month
24 from 13.6 to 20.2 against 23-27 bp; the policy rate's from 30 to 33 bp against 37-45. The chains start
from copies and mix slowly in the latent, so one run's spread stays short of the law's by about a fifth;
more sweeps close the gap slowly (40 sweeps, one seed: 15.4 bp). Paths that started from one ancestor stay
correlated, which is why ``MacroVAE.last_ancestors`` (the Monte Carlo clusters) is the filter's genealogy.

Not chosen: one small filter per returned path (groups of k particles resampled within the group, so no
path shares an ancestor). Each survivor of a small filter is a biased draw, and the bias went the other
way: with 4, 16 or 64 particles per path the default rate's month-12 sd was 19-24 bp and the HY spread's
81-95 bp, over-dispersed against the reference, and on a linear-Gaussian model with a closed-form bridge
the means were off by a full standard deviation; 20 sweeps only halved that.

Shapes: B chains, T months, D variables, Z latent dimensions; standardised units; log-weights float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

__all__ = ["REJUVENATION_MOVES", "TARGET_ACCEPTANCE", "Chains", "RejuvenationReport", "pcn_sweeps"]

#: pCN sweeps applied to conditioned paths by default (``generate_conditional(n_moves=...)``)
REJUVENATION_MOVES = 20
#: the acceptance the step size adapts towards (about optimal for random-walk-type moves in many dimensions)
TARGET_ACCEPTANCE = 0.3
#: the first sweep's step ``sqrt(1 - rho^2)``; the adaptation keeps it in [MIN_STEP, 1]
FIRST_STEP, MIN_STEP = 0.2, 1e-3


@dataclass
class Chains:
    """The current state of B chains: latent ``z`` (B, Z), innovations ``noise`` (B, T, D), the path they
    give (B, T, D), its log-weight ``log_w`` (B,) float64 and the dynamics label ``s`` (B,) int."""

    z: torch.Tensor
    noise: torch.Tensor
    path: torch.Tensor
    log_w: torch.Tensor
    s: torch.Tensor


@dataclass
class RejuvenationReport:
    """What the sweeps did: per sweep its step ``sqrt(1 - rho^2)`` and acceptance rate (share of chains),
    and the share of chains that moved at least once (the others still share their filter ancestor's path)."""

    steps: list[float] = field(default_factory=list)
    acceptance: list[float] = field(default_factory=list)
    moved: float = 0.0


Rollout = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Relabel = Callable[[int, torch.Generator], torch.Tensor]


def pcn_sweeps(chains: Chains, rollout: Rollout, n_moves: int, g: torch.Generator,
               relabel: Relabel | None = None) -> tuple[Chains, RejuvenationReport]:
    """Run ``n_moves`` pCN Metropolis sweeps on every chain.

    rollout(z (B, Z), noise (B, T, D), s (B,)) -> (path (B, T, D), log_w (B,) float64): the deterministic
    guided sampler; g: the run's generator (every draw comes from it, in a fixed order). relabel(B, g) ->
    (B,) labels drawn from their prior: when the conditions pick the dynamics label, every second sweep
    also proposes a fresh label (an independence proposal from the prior, so the acceptance stays the
    weight ratio); None keeps the labels. Returns the chains after the sweeps and a :class:`RejuvenationReport`."""
    report = RejuvenationReport()
    moved = torch.zeros(chains.log_w.shape[0], dtype=torch.bool, device=chains.log_w.device)
    step = FIRST_STEP
    for sweep in range(n_moves):
        rho = math.sqrt(1.0 - step * step)
        z_new = rho * chains.z + step * torch.randn(chains.z.shape, generator=g, device=chains.z.device)
        noise_new = rho * chains.noise + step * torch.randn(chains.noise.shape, generator=g, device=chains.noise.device)
        s_new = chains.s if relabel is None or sweep % 2 == 0 else relabel(chains.s.shape[0], g)
        path_new, log_w_new = rollout(z_new, noise_new, s_new)
        log_u = torch.log(torch.rand(chains.log_w.shape, generator=g, device=chains.log_w.device, dtype=torch.float64))
        accept = torch.isfinite(log_w_new) & (log_u < log_w_new - chains.log_w)
        chains = Chains(torch.where(accept[:, None], z_new, chains.z),
                        torch.where(accept[:, None, None], noise_new, chains.noise),
                        torch.where(accept[:, None, None], path_new, chains.path),
                        torch.where(accept, log_w_new, chains.log_w),
                        torch.where(accept, s_new, chains.s))
        moved |= accept
        rate = float(accept.double().mean())
        report.steps.append(step)
        report.acceptance.append(rate)
        if relabel is None or sweep % 2 == 0:  # a label proposal's acceptance is not the step's
            # multiplicative adaptation; the log-ratio is bounded, so one bad sweep cannot collapse the step
            step = min(1.0, max(MIN_STEP, step * math.exp(rate - TARGET_ACCEPTANCE)))
    report.moved = float(moved.double().mean())
    return chains, report
