"""Tempered latents and innovations where the weights of a conditioned macro draw would collapse.

Why: with the start state anchored (all nine variables at month 0) the first guided move's importance
weight is the probability, under the look-ahead twist, of every coming anchor given the particle's
latent ``z`` (:mod:`creditsim.macro.guidance`: ``Z_1(z)``, the month-1 normaliser). Far-tail anchors
make that a sharp function of ``z``, and particles drawn from the prior ``N(0, I)`` lose almost all of
it in one step. Measured on the shipped model from 2025-09 (300 paths, labels left to the anchors,
seeds 0-19): unemployment 10 % at month 12, y/y GDP -5 % at month 9 and house prices -20 % at month 24
gave a smallest ESS of 0.03-0.08 of the particles, at month 1, and only 0.13 of the paths' worth of
independent paths (``bench/bench_conditioning.py``). Tempered: 0.32-0.50 and 0.34. Also at month 1:
inflation 7 % at month 12, policy rate 7 % at month 18, unemployment 6.5 % at month 24 (0.17-0.31 ->
0.46-0.54); the README's two-anchor narrative (0.13-0.26 -> 0.40-0.49); the 2026 supervisory severely
adverse table (0.06 -> 0.27-0.30). A like collapse later in the path, where an anchor first comes into
the twist's window, is moved to this stage for sparse narratives, whose twist sees every anchor from the
start (:data:`creditsim.macro.guidance.SPARSE_MONTHS`, which says where that costs).

Tempering the latent alone (``H = 1``) moved the collapse to month 2: month 1's draw ``x_1`` is made
by a twist that only approximates the decoder, and month 2's weight ``Z_2(x_1) / psi_1(x_1)`` paid for
the mismatch. A reviewer's house prices -12 % y/y at month 5, 10-year yield 1.5 % at month 11 and
unemployment 8.5 % at month 20 read 0.20-0.22 at month 2 at every seed. So the sampler moves the
month-1 innovations with the latent and tempers towards the month-2 target (:data:`TEMPER_MONTHS` = 2;
seeds 0-19): that triple 0.36-0.41 (effective paths 0.60 -> 0.85); the issue's triple 0.54-0.57 (0.88
-> 1.01); unemployment / GDP / house prices above 0.41-0.53 (0.34 -> 0.41); the credit triple IG 350 bp
m6 / HY 1,000 bp m9 / default 8 % m15 0.32-0.61 (was 0.29-0.50); the stagflation triple 0.58-0.64
(seeds 0-9, was 0.42-0.48). A collapse at an anchored month later in the path is not this stage's:
IG 400 bp m9 / 10-year 1 % m15 / default 7 % m18 read 0.19 at month 15 at seed 5 (0.43-0.55 at
seeds 0-4); the windows below take it.

Method: an SMC sampler on the latent and the innovations ``v = (z, e_1 .. e_{H-1})`` alone (Del Moral,
Doucet & Jasra 2006, J. R. Stat. Soc. B 68(3); adaptive temperatures as in Jasra et al. 2011, Scand. J.
Stat. 38(1)). The target moves from the month-0 posterior ``p(v) N(x_0; mu_0(z), Sigma_0(z))`` to
``... x (Z_1(z) prod_{t=2..H} Z_t(x_{t-1}) / psi_{t-1}(x_{t-1}))^beta`` (``x_t`` the guided draw that
``e_t`` makes) with ``beta`` from 0 to 1 in steps chosen so each step keeps an effective sample size of
:data:`TEMPER_ESS` in every block (label block, or the whole cloud); after each step the particles are
resampled within their block and moved by :data:`TEMPER_MOVES` preconditioned Crank-Nicolson steps on
``v`` (reversible for its ``N(0, I)`` prior; Cotter et al. 2013, Stat. Sci. 28(3)), accepted by the
tempered target's ratio. At ``beta = 1`` the particles are (up to Monte Carlo error) a sample of the
month-H target, so the filter's weights of months 1..H are already paid: the caller replays the chosen
innovations and subtracts them. The sampler stays exact (weights and moves leave each tempered target
invariant); each block's log mean incremental weight is added to its evidence.

Before an anchored month ``t + 1`` later in the path (``t >= 1``, the first stage's months excluded) the
same sampler runs on month t's innovations alone, ``v = e_t``, towards ``Z_t / psi_{t-1} x Z_{t+1}(x_t) /
psi_t(x_t)`` (``Z_t`` left out where an earlier stage paid it: it does not depend on ``e_t``), the filter's
weights since its last resampling paid at the first step (``log_w0``). It runs only when one step would
keep less than :data:`WINDOW_TRIGGER` of a block -- the ESS the anchored month's resampling would read.
The IG 400 bp / 10-year / default triple's seed 5: 0.19 at month 15 -> 0.56; the 2026 supervisory
severely adverse table 0.12-0.31 -> 0.50-0.53 and baseline 0.29-0.40 -> 0.55-0.57 (seeds 0-2, 300 paths,
39 months), about 1.3 times the time of the draw without the windows. Over 60 random tail triples
(``bench/bench_conditioning.py --grid``) the smallest ESS is now >= 0.36 everywhere (it was below 0.30
in 8, down to 0.09), for 1.7-1.8 times the time of the latent-only stage.

Nothing is drawn when one step already keeps :data:`TEMPER_ESS` (a window: :data:`WINDOW_TRIGGER`) in
every block: easy conditions give the same numbers as without these stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from creditsim.macro.strata import ess_count, systematic

__all__ = ["TEMPER_ESS", "TEMPER_MONTHS", "TEMPER_MOVES", "TEMPER_STEP", "WINDOW_TRIGGER", "Tempered",
           "temper_latents"]

#: effective sample size (fraction of a block) each temperature step keeps
TEMPER_ESS = 0.7
#: months whose weights the tempering pays before the filter takes over (H in the module docstring): it
#: moves the latent and the innovations of months 1 .. H - 1. 1 left the collapse at month 2 (a reviewer's
#: house-price / 10-year / unemployment triple: 0.20-0.22); 3 bought 0.37 -> 0.42 there for 40 % more time
TEMPER_MONTHS = 2
#: before an anchored month t + 1 (t >= 1, past the first stage), month t's innovations are tempered
#: when one step would keep less than this fraction of a block (the anchored month's resampling)
WINDOW_TRIGGER = 0.5
#: pCN moves on the latent and innovations after each temperature step
TEMPER_MOVES = 3
#: pCN step size rho: ``z' = sqrt(1 - rho^2) z + rho xi``
TEMPER_STEP = 0.4
#: at most this many temperature steps; a run that hits it stops short of ``beta = 1`` and says so in
#: :attr:`Tempered.beta` (the caller pays ``beta * lik`` only)
_MAX_STEPS = 200


@dataclass
class Tempered:
    """Result of :func:`temper_latents`: ancestor indices ``idx`` (P,) into the input particles, the moved
    particles ``z`` (P, V), their month-0 and months-1..H log weights ``base``, ``lik`` (P,) float64, the number
    of temperature steps, the pCN acceptance rate, each block's added log evidence (S,) float64, the
    temperature reached ``beta`` (1.0 unless :data:`_MAX_STEPS` stopped it) and the smallest ESS fraction
    of a block at any step (``min_ess``)."""

    idx: torch.Tensor
    z: torch.Tensor
    base: torch.Tensor
    lik: torch.Tensor
    steps: int
    acceptance: float
    log_evidence: torch.Tensor
    beta: float = 1.0
    min_ess: float = 1.0


def _block_ess(log_w: torch.Tensor, bounds: list[int]) -> float:
    """Smallest ESS fraction over the blocks ``bounds`` of log-weights (P,); a block the conditions rule
    out entirely (every weight zero) does not count: no temperature can help it."""
    out = [ess_count(log_w[a:b]) / (b - a) for a, b in zip(bounds[:-1], bounds[1:])
           if not bool(torch.isneginf(log_w[a:b]).all())]
    return min(out, default=1.0)


def _clean(lik: torch.Tensor) -> torch.Tensor:
    """NaN and -inf alike as a zero weight (``nan_to_num`` alone maps -inf to the most negative float)."""
    return torch.nan_to_num(lik, nan=-torch.inf, neginf=-torch.inf)


def _next_step(lik: torch.Tensor, bounds: list[int], room: float, target: float,
               offset: torch.Tensor | None = None) -> float:
    """Largest temperature step <= ``room`` whose incremental weights ``offset + step * lik`` keep ``target``
    ESS in every block (bisection, 30 halvings); 0.0 when ``offset`` alone falls short (that step resamples
    by the offset alone)."""
    off = 0.0 if offset is None else offset
    if offset is not None and _block_ess(offset, bounds) < target:
        return 0.0
    if _block_ess(off + room * lik, bounds) >= target:
        return room
    lo, hi = 0.0, room
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if _block_ess(off + mid * lik, bounds) >= target:
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-4 * room)


def temper_latents(z: torch.Tensor, log_parts: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   bounds: list[int], g: torch.Generator, target: float = TEMPER_ESS,
                   moves: int = TEMPER_MOVES, step: float = TEMPER_STEP, log_w0: torch.Tensor | None = None,
                   trigger: float | None = None) -> Tempered | None:
    """Temper the particles ``z`` (P, V) -- latents, then innovations -- from the month-0 posterior to the
    month-H target (module docstring); every column has an ``N(0, 1)`` prior.

    log_parts(z, idx) -> (base, lik): (P,) float64 month-0 log weight ``log N(x_0; ...)`` and the log
    weight of months 1..H of particles ``z`` for the particles ``idx`` (P,) of the input cloud (their
    labels and backbones). bounds: block boundaries ``[0, ..., P]`` (one block: ``[0, P]``); particles are
    resampled within their block. log_w0: (P,) float64 weights the particles carry in (a filter's since its
    last resampling; None: equally weighted), paid in full at the first step; they must not depend on ``z``
    (the Metropolis moves leave them out). Returns None when one step keeps ``trigger`` (default
    ``target``) in every block (nothing drawn from ``g``)."""
    P = z.shape[0]
    idx = torch.arange(P, device=z.device)
    base, lik = log_parts(z, idx)
    lik = _clean(lik)
    offset = None if log_w0 is None else _clean(log_w0.double())
    if _block_ess(lik if offset is None else offset + lik, bounds) >= (target if trigger is None else trigger):
        return None
    beta, steps, accepted, tried = 0.0, 0, 0, 0
    evidence = torch.zeros(len(bounds) - 1, dtype=torch.float64, device=z.device)
    keep = math.sqrt(1.0 - step * step)
    min_ess = 1.0
    while beta < 1.0 and steps < _MAX_STEPS:
        delta = _next_step(lik, bounds, 1.0 - beta, target, offset)
        inc = delta * lik if delta > 0.0 else torch.zeros_like(lik)
        inc, offset = (inc if offset is None else inc + offset), None
        min_ess = min(min_ess, _block_ess(inc, bounds))
        pick = torch.arange(P, device=z.device)
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            evidence[k] += torch.logsumexp(inc[a:b], 0) - math.log(b - a)
            pick[a:b] = a + systematic(inc[a:b], g)
        idx, z, base, lik = idx[pick], z[pick], base[pick], lik[pick]
        beta = 1.0 if delta >= 1.0 - beta else beta + delta
        steps += 1
        for _ in range(moves):
            prop = keep * z + step * torch.randn(z.shape, generator=g, device=z.device, dtype=z.dtype)
            base_p, lik_p = log_parts(prop, idx)
            lik_p = _clean(lik_p)
            log_ratio = (base_p + beta * lik_p) - (base + beta * lik)
            u = torch.rand(P, generator=g, device=z.device, dtype=torch.float64)
            ok = torch.log(u) < torch.nan_to_num(log_ratio, nan=-torch.inf)
            z = torch.where(ok[:, None], prop, z)
            base, lik = torch.where(ok, base_p, base), torch.where(ok, lik_p, lik)
            accepted, tried = accepted + int(ok.sum()), tried + P
    return Tempered(idx, z, base, lik, steps, accepted / max(tried, 1), evidence, beta, min_ess)
