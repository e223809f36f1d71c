"""Label-stratified particle filtering: the dynamics label picked by the evidence, not by the particles.

With ``scenario=None`` (and no historical start bank: ``start="model"``, as :func:`creditsim.macro_paths`
and ``simulate`` condition a narrative) the conditions of
:meth:`creditsim.macro.vae.MacroVAE.generate_conditional` also pick the dynamics label (baseline, adverse,
...). Drawn from its prior with the latent, as before, the label is one more thing the particles must
find: three tail anchors put almost all posterior mass on severely adverse, whose prior share is 14 %, so
the first anchored resampling threw away the other labels' particles -- the effective sample size was
7-8 % of the particles at month 1 (40-42 % when the label is given) and the label shares of one run
varied a lot from seed to seed. A discrete variable with four values need not be sampled at all.

Method (two passes over the months, the same number of particles in each):

1. *Pilot.* Each label gets an equal block of particles, resampled within the block only, so each block
   is a filter of the paths *given* its label. Each block estimates its label's evidence, the product
   over its resampling epochs of its mean weight (``Z_s``, unbiased for ``p(conditions | s)``; Del Moral
   2004, *Feynman-Kac Formulae*, ch. 7), and so the label posterior ``p_s ∝ prior_s Z_s``.
2. *Allocated pass.* Fresh blocks sized in proportion to ``(1 - delta) p_s + delta / S`` (a defensive
   mixture, Hesterberg 1995, Technometrics 37(2): every label keeps ``delta / S`` of the particles, so a
   pilot that missed a label cannot starve it; :data:`DEFENSIVE_SHARE`), filtered the same way. The
   label evidence is the mean of both passes' estimates (each unbiased, so the mean is too).

The returned paths are drawn from the allocated pass with weight ``prior_s Z_s w_i / sum_block w`` (labels
in proportion to their posterior, paths within a label by their own weights). This is model averaging by
SMC evidence (Zhou, Johansen & Aston 2016, J. Comput. Graph. Stat. 25(3)); exact as the particles grow,
and at finite size the label shares carry the evidence estimates' error, which the rejuvenation moves
(labels proposed from the prior, accepted by the exact weight ratio, :mod:`creditsim.macro.rejuvenation`)
then work towards the exact posterior.

The effective sample size, stated because the design changes what it can mean: at each resampling, the ESS
of the allocated pass's particles as a sample of the posterior the paths are drawn from -- label ``s``
weighted by its posterior ``p_s``, a path within its block by its current weight ``w~_i`` (normalised in
the block) -- ``1 / sum_s p_s^2 sum_(i in s) w~_i^2 = 1 / sum_s p_s^2 / ESS_s``, as a fraction of all the
particles. With one label it is the ordinary filter's ESS. Particles spent on labels the conditions rule
out count for nothing, so equal blocks read low when one label dominates (the first fix, equal blocks
without the allocated pass, measured 0.23 there while each block looked healthy). Measured on the shipped
model from 2025-09 with three tail anchors (unemployment 9 % at month 18, HY 900 bp at month 12, house
prices -15 % y/y at month 18), ``scenario=None``: see
:meth:`~creditsim.macro.vae.MacroVAE.generate_conditional`. Cost: the filter runs twice, so a call takes
about 1.3 times as long with the rejuvenation sweeps (which run once) and twice as long without them.

Limits (measured by a reviewer on the shipped model, 10-30 seeds). The ESS takes the label posterior as
known. When one label dominates (the three tail anchors) that is harmless: the spread of statistics across
seeds against their spread within a run gives 210-450 effectively independent paths of 400, in line with
the ESS's ~345 (the label-drawing filter before: 33-159). When the anchors leave the label in doubt
(inflation 6 % and policy rate 6.5 % at month 12) the label shares carry the evidence estimates' error:
ESS 0.15 implies ~285 effective paths, the label shares' seed-to-seed spread only 18-34 (the
label-drawing filter was no better: its shares' spread across seeds was larger). Read
:attr:`~creditsim.macro.vae.MacroVAE.last_label_posterior` as an estimate, and repeat with more particles
or another seed when a decision rests on the label mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["DEFENSIVE_SHARE", "REALLOCATE_SHARE", "LabelStrata", "allocate", "ess_count", "systematic"]

#: share of the allocated pass's particles spread evenly over the labels whatever the pilot says. 0.05 was
#: tried (2026-12) for the issue-12 case (three tail anchors, ``scenario=None``, 300 paths from 2025-09):
#: ESS 0.29-0.32 -> 0.31-0.33 over seeds 0-9, but over seeds 0-39 a reviewer found seed 20 collapse
#: (0.317 -> 0.104: the pilot had missed the adverse label's 12 % of the posterior and its block was the
#: defensive share alone), so the ESS fell below 0.30 at 2 seeds instead of 3 (seeds 5 at 0.294, 23, and
#: 26 at 0.024 with 0.1). This share is the guard against such a miss; kept at 0.1
DEFENSIVE_SHARE = 0.1
#: a label whose pooled posterior exceeds this and twice its block's share of the particles after the
#: allocated pass gets one more pass (:meth:`LabelStrata.misallocated`)
REALLOCATE_SHARE = 0.05


def allocate(posterior: torch.Tensor, n_particles: int, defensive: float = DEFENSIVE_SHARE) -> torch.Tensor:
    """(S,) int64 block sizes summing to ``n_particles`` (at least one each), in proportion to
    ``(1 - defensive) posterior + defensive / S`` (largest remainders get the rounding); equal blocks when
    the posterior is not a finite, positive vector (every label's evidence underflowed)."""
    S = posterior.shape[0]
    p = posterior.double()
    total = float(p.sum())
    if not (math.isfinite(total) and total > 0 and bool(torch.isfinite(p).all())):
        p, total = torch.ones_like(p), float(S)
    share = (1.0 - defensive) * (p / total) + defensive / S  # normalise first: 0.9 * 5e-324 rounds back up
    want = share * (n_particles - S)
    sizes = torch.floor(want).to(torch.int64)
    extra = (n_particles - S) - int(sizes.sum())
    sizes[torch.argsort(want - sizes, descending=True)[:extra]] += 1
    return sizes + 1


def systematic(log_w: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Systematic resampling by log-weights (n,): (n,) indices, one uniform from ``g`` (uniform when every
    weight is zero)."""
    n = log_w.shape[0]
    if torch.isneginf(log_w.max()):
        log_w = torch.zeros_like(log_w)
    w = torch.softmax(log_w.double(), dim=0)
    u = (torch.rand(1, generator=g, device=log_w.device, dtype=torch.float64)
         + torch.arange(n, device=log_w.device, dtype=torch.float64)) / n
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0
    return torch.searchsorted(cdf, u).clamp(max=n - 1)


def ess_count(log_w: torch.Tensor) -> float:
    """Effective sample size ``1 / sum w^2`` of normalised log-weights (n,) (0 when every weight is zero)."""
    if torch.isneginf(log_w.max()):
        return 0.0
    w = torch.softmax(log_w.double(), dim=0)
    return float(1.0 / (w ** 2).sum())


def _ess_fraction(log_w: torch.Tensor) -> float:
    """:func:`ess_count` as a fraction of the n weights."""
    return ess_count(log_w) / log_w.shape[0]


@dataclass
class LabelStrata:
    """Consecutive blocks of ``sizes`` (S,) particles, one per label ``labels`` (S,) int, with prior
    ``prior`` (S,) (the model's scenario frequencies, need not sum to one). Accumulates each block's log
    evidence ``log_z`` (S,) float64 at its resamplings and each block's ESS (a count) at every resampled
    month ``ess`` ((S,) float64 per month). ``earlier``: a pilot pass's log evidence (S,), averaged into
    :meth:`log_evidence`."""

    labels: torch.Tensor
    prior: torch.Tensor
    sizes: torch.Tensor
    earlier: torch.Tensor | None = None
    log_z: torch.Tensor = field(init=False)
    ess: dict[int, torch.Tensor] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.log_z = torch.zeros(self.labels.shape[0], dtype=torch.float64, device=self.labels.device)
        self._bounds = [0] + torch.cumsum(self.sizes, 0).tolist()

    @classmethod
    def equal(cls, labels: torch.Tensor, prior: torch.Tensor, n_particles: int) -> LabelStrata:
        """The pilot: ``ceil(n_particles / S)`` particles per label."""
        size = -(-n_particles // labels.shape[0])
        return cls(labels, prior, torch.full((labels.shape[0],), size, dtype=torch.int64))

    def allocated(self, log_w: torch.Tensor) -> LabelStrata:
        """The next pass after this one (final weights ``log_w``): as many particles, blocks sized by
        :func:`allocate` on this pass's posterior (pooled with any earlier pass's), its evidence carried
        along -- after the pilot, and once more after a :meth:`misallocated` allocated pass."""
        n = int(self.sizes.sum())
        return LabelStrata(self.labels, self.prior, allocate(self.posterior(log_w), n),
                           self.log_evidence(log_w))

    def misallocated(self, log_w: torch.Tensor) -> bool:
        """Whether this pass's blocks missed the posterior (final weights ``log_w`` (P,)): some label holds
        more than :data:`REALLOCATE_SHARE` of the pooled posterior and more than twice its share of the
        particles -- the pilot underrated it, and its small block now carries a large weight each."""
        post = self.posterior(log_w).cpu()
        share = self.sizes.double().cpu() / self.n_particles
        return bool(((post > REALLOCATE_SHARE) & (post > 2.0 * share)).any())

    @property
    def n_particles(self) -> int:
        return self._bounds[-1]

    @property
    def bounds(self) -> list[int]:
        """Block boundaries ``[0, ..., P]``: block ``s`` holds particles ``bounds[s]:bounds[s + 1]``."""
        return list(self._bounds)

    @property
    def particle_labels(self) -> torch.Tensor:
        """(P,) the label of every particle, blocks in order."""
        return self.labels.repeat_interleave(self.sizes)

    def _blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[a:b] for a, b in zip(self._bounds[:-1], self._bounds[1:])]

    def resample(self, t: int, log_w: torch.Tensor, g: torch.Generator, every: bool,
                 threshold: float | None) -> torch.Tensor | None:
        """Month ``t``'s resampling: every block when ``every`` (an anchored month), else the blocks whose
        ESS fraction is below ``threshold`` (None: none). Records each block's ESS (a count); resampled blocks
        add their log mean weight to ``log_z`` and have their ``log_w`` (P,) zeroed in place. Returns (P,)
        indices (identity in blocks left alone), or None when no block is resampled."""
        blocks = self._blocks(log_w)
        frac = [_ess_fraction(b) for b in blocks]
        chosen = [every or (threshold is not None and f < threshold) for f in frac]
        if not any(chosen):
            return None
        self.ess[t] = torch.tensor(frac, dtype=torch.float64) * self.sizes.double()
        idx = torch.arange(log_w.shape[0], device=log_w.device)
        for s, (block, pick, a) in enumerate(zip(blocks, chosen, self._bounds)):
            if pick:
                self.log_z[s] += torch.logsumexp(block.double(), dim=0) - math.log(block.shape[0])
                idx[a:a + block.shape[0]] = a + systematic(block, g)
                block.zero_()
        return idx

    def log_evidence(self, log_w: torch.Tensor) -> torch.Tensor:
        """(S,) float64 log evidence per label: this pass's (``log_z`` and the last epoch's mean weight of
        ``log_w`` (P,)), averaged with a pilot's. Equal weights keep the average unbiased: weights by
        particle count would depend on the pilot's own estimate (it sized this pass's blocks)."""
        own = self._own_log_evidence(log_w)
        if self.earlier is None:
            return own
        return torch.logaddexp(self.earlier, own) - math.log(2.0)

    def _own_log_evidence(self, log_w: torch.Tensor) -> torch.Tensor:
        """(S,) this pass's log evidence alone: ``log_z`` and the last epoch's mean weight of ``log_w``."""
        tail = torch.stack([torch.logsumexp(b.double(), 0) - math.log(b.shape[0]) for b in self._blocks(log_w)])
        return self.log_z + tail

    def posterior(self, log_w: torch.Tensor) -> torch.Tensor:
        """(S,) float64 posterior of the labels given the conditions (final weights ``log_w`` (P,)); the
        prior when every label's evidence underflowed."""
        return self._posterior_of(self.log_evidence(log_w))

    def pass_posteriors(self, log_w: torch.Tensor) -> torch.Tensor:
        """(2, S) float64 the posterior from the earlier passes' evidence (the pilot's, pooled with the first
        allocated pass's after a :meth:`misallocated` one) and from this pass's alone (needs an earlier pass):
        two independent estimates, so their gap shows the Monte Carlo error of :meth:`posterior`."""
        if self.earlier is None:
            raise ValueError("pass_posteriors needs the strata of an allocated pass (a pilot's evidence)")
        return torch.stack([self._posterior_of(self.earlier), self._posterior_of(self._own_log_evidence(log_w))])

    def _posterior_of(self, log_evidence: torch.Tensor) -> torch.Tensor:
        joint = torch.log(self.prior.double()) + log_evidence
        if torch.isneginf(joint.max()):
            return self.prior.double() / self.prior.double().sum()
        return torch.softmax(joint, dim=0)

    def final_log_w(self, log_w: torch.Tensor) -> torch.Tensor:
        """(P,) float64 log-weights the returned paths are drawn with: each block's share is its label's
        posterior (:meth:`posterior`, the pooled evidence), shared within the block by ``log_w``. A block
        whose weights are all zero in this pass (a pilot gave its label mass) gets none: the others share
        its mass in proportion."""
        norm = torch.stack([torch.logsumexp(b.double(), 0) for b in self._blocks(log_w)])
        block = torch.where(torch.isneginf(norm), -torch.inf, torch.log(self.posterior(log_w)) - norm)
        return block.repeat_interleave(self.sizes) + log_w.double()

    def ess_fractions(self, log_w: torch.Tensor, last_month: int) -> dict[int, float]:
        """``{month: ESS fraction}`` (module docstring) of every resampled month, and of the final weights
        ``log_w`` (P,) at ``last_month`` when they are not flat, with the label posterior :meth:`posterior`."""
        post = self.posterior(log_w).cpu()
        counts = dict(self.ess)
        final = torch.tensor([_ess_fraction(b) for b in self._blocks(log_w)], dtype=torch.float64)
        if bool((final < 1 - 1e-9).any()):
            counts[last_month] = torch.minimum(counts.get(last_month, self.sizes.double()), final * self.sizes.double())
        live = post > 0  # a label the conditions rule out adds nothing, however degenerate its block
        return {t: float(1.0 / ((post[live] ** 2) / c[live]).sum()) / self.n_particles for t, c in counts.items()}
