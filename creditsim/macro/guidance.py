"""Look-ahead guidance for conditional macro generation: twisted sequential Monte Carlo.

Why: :meth:`~creditsim.macro.vae.MacroVAE.generate_conditional` meets anchors such as "unemployment 9 %
at month 18" by sequential Monte Carlo. A plain particle filter only learns about an anchor *at* its
month; before it, particles wander as the unconditional model does, and at the anchor almost all of
them are far from the target. Measured on the shipped model from 2025-09 with three joint tail anchors
(unemployment 9 % at month 18, HY spread 900 bp at month 12, house prices -15 % y/y at month 18), 8,000
particles: effective sample size 4.8 % at month 12 and 0.01 % at month 18; the 500 returned paths had
4 distinct histories up to month 12.

Method (a *twisted* / guided particle filter; Whiteley & Lee 2014, Guarniero, Johansen & Lee 2017):
every month ``t`` before an anchor, the model's one-step Gaussian ``N(mu_t, Sigma_t)`` is multiplied by a
*twist* ``psi_t(x_t)``: the probability of the coming anchors given ``x_t`` under a linear-Gaussian
approximation of the decoder (its frozen VAR(1) backbone ``x_{t+1} = A x_t + c + c_s + e``, with each
particle's innovation covariance ``Q`` held at its own covariance of this month: volatility is
persistent, and with one average ``Q`` for all particles calm-dynamics paths forced to a tail anchor
degenerated -- baseline dynamics, ESS 0.02 % at month 5 -- against 22 % with the particle's own). The product is
Gaussian (a Kalman update of ``x_t`` on the anchors as noisy observations), so particles are steered
towards the anchors from the start. The importance weight of a move is

    w_t = [ integral N(x; mu_t, Sigma_t) 1{x_J = c} psi_t(x) dx ] / psi_{t-1}(x_{t-1})

(``1{x_J = c}``: exact conditions at month ``t`` itself). With a linear-Gaussian model the weights would
all be equal; with the LSTM's (penalised, small) nonlinear drift and heteroscedastic scales they are
nearly so. The weights are exact for *any* choice of ``psi``, so the method stays an exact sampler of
the model's conditional distribution up to Monte Carlo error; the approximation only affects efficiency.
Particles are resampled at anchored months and whenever the effective sample size falls below half.

The linear twist is not exact for the LSTM decoder: shocks two or more months ahead get
:data:`FAR_INFLATION` times the modelled variance (a flatter twist for the less certain far future), and
a fully anchored month (a path's start state) is not twisted (every particle has the same value).

``psi_t`` looks ahead to the next :data:`LOOKAHEAD` anchored months only (and never past a month where
every variable is anchored, after which the linear model is Markov): enough to steer, and the
observation dimension stays small for supervisory tables with anchors every quarter.

All matrices here are in standardised units; shapes: P particles, D variables, F anchored entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LOOKAHEAD", "FAR_INFLATION", "Message", "LinearGuide", "twisted_step", "log_twist"]

#: anchored months ahead that the twist looks at
LOOKAHEAD = 2
#: factor on the variance of the shocks two or more months ahead in the twist. The linear backbone misses
#: the LSTM's latent- and state-dependent drift, whose effect grows with the distance to the anchor; a
#: twist that trusts the far future too much over-steers and the weights scatter, one that trusts it too
#: little does not steer. Measured (three joint tail anchors from 2025-09, 8,000 particles, 500 paths,
#: severely adverse dynamics; smallest ESS after month 0 / distinct histories at month 6): 1.0 -> 27 % /
#: 327, 1.5 -> 26 % / 354, 2.5 -> 35 % / 432, 4 -> 29 % / 358
FAR_INFLATION = 2.5
#: added to the anchors' predictive covariance (standardised units squared): numerical floor
_JITTER = 1e-6


@dataclass
class Message:
    """The coming anchors as a linear-Gaussian function of ``x_t``: ``y ~ N(M x_t + m[s], R)``.

    M: (F, D); m: (S, F) per scenario label; R: (P, F, F) per particle or (F, F); y: (F,) anchor targets
    (standardised)."""

    M: torch.Tensor
    m: torch.Tensor
    R: torch.Tensor
    y: torch.Tensor


class LinearGuide:
    """Backward messages of the anchors under the decoder's linear backbone.

    A: (D, D) VAR(1) matrix ``I + B``; drift: (S, D) intercept per scenario ``c + c_s``; L: (D, D) the
    unit-lower-triangular shock loading; anchors: ``{month: {variable index: standardised target}}``.
    All float64."""

    def __init__(self, A: torch.Tensor, drift: torch.Tensor, L: torch.Tensor,
                 anchors: dict[int, dict[int, float]], lookahead: int = LOOKAHEAD,
                 inflation: float = FAR_INFLATION):
        self.A, self.drift, self.L = A, drift, L
        self.D = A.shape[0]
        self.months = sorted(anchors)
        self.anchors = anchors
        self.lookahead = lookahead
        self.inflation = inflation

    def ahead(self, t: int) -> list[int]:
        """Anchored months after ``t`` that the twist at ``t`` uses."""
        out: list[int] = []
        for a in self.months:
            if a <= t:
                continue
            out.append(a)
            if len(out) == self.lookahead or len(self.anchors[a]) == self.D:
                break
        return out

    def message(self, t: int, scale_sq: torch.Tensor) -> Message | None:
        """The twist of month ``t``, or None when no anchor lies ahead.

        scale_sq: (P, D) each particle's innovation sd squared this month (``sigma`` of ``diag(sigma) L``),
        standardised units, held for the months ahead; a (D,) vector gives one twist for all particles.
        Then ``R`` is (P, F, F) (or (F, F))."""
        ahead = self.ahead(t)
        if not ahead or len(self.anchors.get(t, ())) == self.D:
            return None  # a fully anchored month is the same for every particle: nothing to steer
        A, D = self.A, self.D
        S = scale_sq.sqrt()[..., :, None] * self.L  # (D, D) or (P, D, D)
        Q = S @ S.transpose(-1, -2)
        horizon = ahead[-1] - t
        powers = [torch.eye(D, dtype=A.dtype, device=A.device)]  # A^0 .. A^horizon
        for _ in range(horizon):
            powers.append(A @ powers[-1])
        V = [torch.zeros_like(Q)]  # V[n] = sum_{i<n} A^i Q A^i'
        mean_drift = [torch.zeros_like(self.drift)]  # (S, D): sum_{i<n} A^i drift
        for n in range(horizon):  # the next month's shock as modelled, later ones inflated
            V.append(V[-1] + (1.0 if n == 0 else self.inflation) * powers[n] @ Q @ powers[n].T)
            mean_drift.append(mean_drift[-1] + self.drift @ powers[n].T)
        rows = [(a, j) for a in ahead for j in sorted(self.anchors[a])]
        M = torch.stack([powers[a - t][j] for a, j in rows])  # (F, D)
        m = torch.stack([mean_drift[a - t][:, j] for a, j in rows], dim=1)  # (S, F)
        y = torch.tensor([self.anchors[a][j] for a, j in rows], dtype=A.dtype, device=A.device)
        blocks = {}  # (a, b) with a <= b -> Cov(x_a, x_b | x_t) = V[a - t] (A^(b - a))'
        for i, a in enumerate(ahead):
            for b in ahead[i:]:
                blocks[a, b] = V[a - t] @ powers[b - a].T
        F = len(rows)
        R = torch.empty(*Q.shape[:-2], F, F, dtype=A.dtype, device=A.device)
        for p, (a, j) in enumerate(rows):
            for q, (b, k) in enumerate(rows):
                R[..., p, q] = blocks[a, b][..., j, k] if a <= b else blocks[b, a][..., k, j]
        R = 0.5 * (R + R.transpose(-1, -2)) + _JITTER * torch.eye(F, dtype=A.dtype, device=A.device)
        return Message(M, m, R, y)


def _gauss_logpdf(resid: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """log N(resid; 0, C) with C = chol chol'; resid (P, F, 1), chol (P, F, F) -> (P,)."""
    white = torch.linalg.solve_triangular(chol, resid, upper=False)
    log_det = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(-1)
    return -0.5 * (white ** 2).sum((1, 2)) - log_det - 0.5 * resid.shape[1] * torch.log(
        torch.tensor(2 * torch.pi, dtype=resid.dtype, device=resid.device))


def log_twist(x: torch.Tensor, s: torch.Tensor, msg: Message) -> torch.Tensor:
    """``log psi(x)`` (P,) = log N(y; M x + m[s], R) for particles x (P, D) float64 with labels s (P,)."""
    resid = (msg.y[None] - x @ msg.M.T - msg.m[s])[:, :, None]
    chol = torch.linalg.cholesky(msg.R)
    return _gauss_logpdf(resid, chol.expand(x.shape[0], -1, -1) if chol.dim() == 2 else chol)


def twisted_step(mean: torch.Tensor, cov: torch.Tensor, J: list[int], target: torch.Tensor, eps: torch.Tensor,
                 s: torch.Tensor, msg: Message | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``x_t`` from ``N(mean, cov) 1{x_J = target} psi_t(x)`` (normalised) and return the log of the
    normaliser (the numerator of the move's weight).

    mean (P, D), cov (P, D, D), eps (P, D), target (P, |J|), all float64; s (P,) labels; msg the twist
    of this month (None: no anchor ahead). Returns x (P, D), log_norm (P,).
    """
    P, D = mean.shape
    dev, dt = mean.device, mean.dtype
    log_norm = torch.zeros(P, dtype=dt, device=dev)
    mu, sig = mean, cov
    if J:
        K = [k for k in range(D) if k not in J]
        chol_jj = torch.linalg.cholesky(cov[:, J][:, :, J] + 1e-12 * torch.eye(len(J), dtype=dt, device=dev))
        resid = (target - mean[:, J])[:, :, None]  # (P, |J|, 1)
        log_norm = log_norm + _gauss_logpdf(resid, chol_jj)
        mu = mean.clone()
        mu[:, J] = target
        sig = torch.zeros_like(cov)  # the anchored entries are fixed: no variance
        if K:
            k_idx = torch.tensor(K, device=dev)
            cov_jk = cov[:, J][:, :, K]  # (P, |J|, |K|)
            gain = torch.cholesky_solve(cov_jk, chol_jj).transpose(1, 2)  # (P, |K|, |J|) = cov_KJ cov_JJ^-1
            mu[:, K] = mean[:, K] + (gain @ resid).squeeze(-1)
            sig[:, k_idx[:, None], k_idx[None, :]] = cov[:, K][:, :, K] - gain @ cov_jk
    if msg is not None:
        MS = sig @ msg.M.T  # (P, D, F) = Sigma M'
        S_y = msg.M @ MS + msg.R  # (P, F, F)
        S_y = 0.5 * (S_y + S_y.transpose(1, 2))
        chol_y = torch.linalg.cholesky(S_y)
        resid = (msg.y[None] - mu @ msg.M.T - msg.m[s])[:, :, None]  # (P, F, 1)
        log_norm = log_norm + _gauss_logpdf(resid, chol_y)
        gain = torch.cholesky_solve(MS.transpose(1, 2), chol_y).transpose(1, 2)  # (P, D, F) Sigma M' S_y^-1
        mu = mu + (gain @ resid).squeeze(-1)
        sig = sig - gain @ MS.transpose(1, 2)
    free = [k for k in range(D) if k not in J]
    x = mu.clone()
    if free:
        f = torch.tensor(free, device=dev)
        sig_ff = sig[:, f[:, None], f[None, :]]
        sig_ff = 0.5 * (sig_ff + sig_ff.transpose(1, 2)) + 1e-12 * torch.eye(len(free), dtype=dt, device=dev)
        x[:, f] = mu[:, f] + (torch.linalg.cholesky(sig_ff) @ eps[:, f, None]).squeeze(-1)
    if J:
        x[:, J] = target
    return x, log_norm
