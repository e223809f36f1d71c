"""Label-stratified particle filtering: the dynamics label picked by the evidence, not by the particles.

With ``scenario=None`` the conditions of :meth:`creditsim.macro.vae.MacroVAE.generate_conditional` also
pick the dynamics label (baseline, adverse, ...). Drawn from its prior with the latent, the label is one
more thing the particles must find: three tail anchors put almost all posterior mass on severely adverse,
whose prior share is 14 %, so the first anchored resampling throws away the other labels' particles and
the effective sample size fell to 7-8 % of the particles at month 1 (against 40-42 % when the label is
given). That is posterior concentration on a discrete variable, and a discrete variable with four values
need not be sampled at all.

Here each label gets its own block of particles, resampled within the block only, so each block is a
filter of the paths *given* its label. Each block estimates its label's evidence, the product over its
resampling epochs of its mean weight (``Z_s``, unbiased for ``p(conditions | s)``; Del Moral 2004,
*Feynman-Kac Formulae*, ch. 7). The label posterior is ``p(s | conditions) ∝ prior_s Z_s``; the paths
returned are drawn from the union of the blocks with weight ``prior_s Z_s w_i / sum_block w``, so labels
come out in proportion to their posterior and paths within a label by their own weights. This is model
averaging by SMC evidence (Zhou, Johansen & Aston 2016, J. Comput. Graph. Stat. 25(3)). As the particles
grow it is exact; at finite size the label shares carry the evidence estimates' error, which the
rejuvenation moves (which propose labels from the prior and accept by the exact weight ratio,
:mod:`creditsim.macro.rejuvenation`) then correct towards the exact posterior.

The diagnostic changes meaning with the design, so it is stated: the effective sample size of a month is
each block's ESS fraction (of the block's particles) averaged with the label posterior as weights -- the
ESS of the sample the returned paths are drawn from, per label. A label with no posterior mass (baseline
dynamics forced to a 9 % unemployment) may degenerate in its block without harming anything.

Decided: equal blocks for every label with prior mass (not blocks sized by a pilot's evidence: measured
on the shipped model, a pilot-sized label *proposal* left month-1 ESS erratic, 5-30 %, because the
pilot's noise enters the weights; here it enters only the label shares). The total particle count is
unchanged, so the label that the anchors pick gets a quarter of them, about twice its prior share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["LabelStrata", "resample_within", "ess_fractions"]


def ess_fractions(log_w: torch.Tensor, size: int) -> torch.Tensor:
    """(S,) float64 effective sample size of each consecutive block of ``size`` log-weights (P,), as a
    fraction of the block; a block whose weights are all zero (log -inf) reads 0."""
    blocks = log_w.double().view(-1, size)
    dead = torch.isneginf(blocks.max(1).values)
    w = torch.softmax(torch.where(dead[:, None], torch.zeros_like(blocks), blocks), dim=1)
    return torch.where(dead, torch.zeros_like(dead, dtype=torch.float64), 1.0 / (w ** 2).sum(1) / size)


def resample_within(log_w: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Systematic resampling within each consecutive block of ``size`` particles: (P,) indices into the
    P particles, block membership kept (a block of zero weights is resampled uniformly)."""
    blocks = log_w.double().view(-1, size)
    n = blocks.shape[0]
    dead = torch.isneginf(blocks.max(1).values)
    w = torch.softmax(torch.where(dead[:, None], torch.zeros_like(blocks), blocks), dim=1)
    u = (torch.rand(n, 1, generator=g, device=log_w.device, dtype=torch.float64)
         + torch.arange(size, device=log_w.device, dtype=torch.float64)) / size
    cdf = torch.cumsum(w, dim=1)
    cdf[:, -1] = 1.0
    idx = torch.searchsorted(cdf, u).clamp(max=size - 1)
    return (idx + size * torch.arange(n, device=log_w.device)[:, None]).reshape(-1)


@dataclass
class LabelStrata:
    """Blocks of ``size`` particles per label (``labels`` (S,) int, in block order) with prior ``prior``
    (S,) (the model's scenario frequencies, need not sum to one); accumulates each block's log evidence
    ``log_z`` (S,) float64 at its resamplings and its ESS fractions per resampled month ``ess``."""

    labels: torch.Tensor
    prior: torch.Tensor
    size: int
    log_z: torch.Tensor = field(init=False)
    ess: dict[int, torch.Tensor] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.log_z = torch.zeros(self.labels.shape[0], dtype=torch.float64, device=self.labels.device)

    @property
    def particle_labels(self) -> torch.Tensor:
        """(P,) the label of every particle, blocks in order."""
        return self.labels.repeat_interleave(self.size)

    def resample(self, t: int, log_w: torch.Tensor, g: torch.Generator, every: bool,
                 threshold: float | None) -> torch.Tensor | None:
        """Month ``t``'s resampling: every block when ``every`` (an anchored month), else the blocks whose
        ESS fraction is below ``threshold`` (None: none). Resampled blocks add their mean weight to
        ``log_z`` and have their ``log_w`` (P,) zeroed in place. Returns (P,) indices (identity within
        blocks left alone) or None when no block is resampled."""
        frac = ess_fractions(log_w, self.size)
        if every:
            chosen = torch.ones_like(frac, dtype=torch.bool)
        elif threshold is not None:
            chosen = frac < threshold
        else:
            return None
        if not bool(chosen.any()):
            return None
        self.ess[t] = frac
        blocks = log_w.view(-1, self.size)
        self.log_z[chosen] += torch.logsumexp(blocks[chosen].double(), dim=1) - math.log(self.size)
        idx = resample_within(log_w, self.size, g).view(-1, self.size)
        keep = torch.arange(log_w.shape[0], device=log_w.device).view(-1, self.size)
        idx = torch.where(chosen[:, None], idx, keep).reshape(-1)
        blocks[chosen] = 0.0
        return idx

    def joint_log_w(self, log_w: torch.Tensor) -> torch.Tensor:
        """(P,) float64 log-weights of the particles as one population: ``log prior_s + log Z_s(so far) -
        log size + log_w``, so a block's weights sum to its label's posterior mass."""
        block = torch.log(self.prior.double()) + self.log_z - math.log(self.size)
        return block.repeat_interleave(self.size) + log_w.double()

    def posterior(self, log_w: torch.Tensor) -> torch.Tensor:
        """(S,) float64 posterior of the labels given the conditions, with the last epoch's weights (P,)."""
        joint = self.joint_log_w(log_w).view(-1, self.size)
        return torch.softmax(torch.logsumexp(joint, dim=1), dim=0)

    def weighted_ess(self, log_w: torch.Tensor, last_month: int) -> dict[int, float]:
        """``{month: ESS fraction}`` of every resampled month and of the final weights (``last_month``,
        when they are not flat): the blocks' fractions averaged with the label posterior as weights."""
        post = self.posterior(log_w)
        out = {t: float((post * frac).sum()) for t, frac in self.ess.items()}
        final = ess_fractions(log_w, self.size)
        if bool((final < 1 - 1e-9).any()):
            out[last_month] = min(out.get(last_month, 1.0), float((post * final).sum()))
        return out
