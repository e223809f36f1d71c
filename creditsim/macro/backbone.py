"""The MacroVAE's linear backbone as used at generation time: a resting level and a pull per variable.

The decoder's one-step mean is ``x + LSTM correction + W x + b + c_s`` (:mod:`creditsim.macro.vae`):
a VAR(1) in error-correction form, fitted by OLS on the training months and frozen. Its pull ``W x + b
+ c_0`` draws every variable back to the resting level ``r`` of the baseline dynamics
(``W r + b + c_0 = 0``). That level is not the sample mean: the baseline windows' intercept drifts
rates down, so the shipped model (1980-2025) rests at a policy rate of -0.46 %, a 10-year yield of
1.12 %, inflation 0.67 % and HY spreads 5.5 % (sample means 4.3 %, 5.8 %, 2.9 %, 4.8 %), and its
largest eigenvalue of ``I + W`` is 0.995 a month: a slow, confident pull towards a point that the
data pin down badly. Out of time that is the VAE's largest loss (:mod:`creditsim.macro.oot`): the
backbone's level forecasts of rates and spreads were worse than a random walk's (the block bootstrap
of changes), 12-month CRPS 10-year yield 0.88 vs 0.51 pp, HY spread 1.60 vs 0.83 pp.

:class:`GenerationBackbone` rewrites the backbone at generation time, without retraining, as

    change_j = f_j [ W (x~ - r) + c_s - c_0 ]_j,      x~ = f * x + (1 - f) * r

* ``r``: the resting level -- the trained one, or an ``endpoint`` (a shifting endpoint, Kozicki &
  Tinsley 2001, J. Monetary Econ. 47(3)).
* ``f`` (``pull``, per variable in [0, 1]): how much of the trained pull a variable keeps. ``f = 1``
  everywhere with the trained ``r`` is the backbone as trained, exactly. ``f_j = 0`` makes ``j`` a
  random walk in the backbone (the LSTM's correction and the shocks remain), and ``x~`` takes its
  level out of the other equations too: they see it at its resting level. Without that second part
  a random-walk rate keeps pushing house prices through the co-integration terms (measured: 36-month
  house-price CRPS 10.8 pp against 4.4 for VAR(1)).
* This is shrinkage of the VAR towards a random walk, the Minnesota prior's idea (Litterman 1986,
  J. Bus. Econ. Stat. 4(1); Banbura, Giannone & Reichlin 2010, J. Appl. Econometrics 25(1)), applied
  to a fitted backbone by a factor instead of through a posterior.
* The scenario drift ``c_s - c_0`` is scaled by ``f`` with the rest: it was estimated jointly with the
  pull (an intercept given the levels), and without the pull a constant drift grows into a trend.

In the linear form the look-ahead guide needs (:mod:`creditsim.macro.guidance`):
``x_t = A x_{t-1} + d_s`` with ``A = I + F W F`` and ``d_s = -F W F r + F (c_s - c_0)``, ``F = diag(f)``.
All tensors are in the model's standardised units; D variables, S scenarios, P paths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from creditsim.fixed_order import column_sum

__all__ = ["GenerationBackbone", "row_product"]


def row_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` (..., I) for x (..., K) and weight (I, K), each output summed over k in index
    order (:func:`creditsim.fixed_order.column_sum`), so that a path's value does not depend on the
    paths batched with it. A BLAS product's order does: for these K = D = 9 products MKL's AVX-512
    kernels change it with the number of rows (a path rolled among 640 candidates and the same path
    rolled among 40 differed by 1 float32 ulp in 15 % of its values). Elementwise products and adds."""
    return column_sum(x[..., None, :] * weight, axis=-1)


@dataclass(frozen=True)
class GenerationBackbone:
    """The backbone rewritten with resting level ``rest`` (D,) and pull factors ``pull``: (D,) shared by
    every path, or (P, D) one row per path (a drawn pull, :meth:`with_pull`).

    weight (D, D) ``W``, bias (D,) ``b``, scenario_drift (S, D) ``c_s``: the trained backbone."""

    weight: torch.Tensor
    bias: torch.Tensor
    scenario_drift: torch.Tensor
    rest: torch.Tensor
    pull: torch.Tensor

    def change(self, x_prev: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """(P, D) the rewritten backbone change from x_prev (P, D), scenario (P,) int."""
        f, r = self.pull, self.rest
        level = f * x_prev + (1.0 - f) * r
        return f * (row_product(level - r, self.weight) + self.scenario_drift[scenario] - self.scenario_drift[0])

    def trained_change(self, x_prev: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """(P, D) the backbone change as trained, ``W x + b + c_s``."""
        return row_product(x_prev, self.weight) + self.bias + self.scenario_drift[scenario]

    def correction(self, x_prev: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """(P, D) what to add to the decoder's one-step mean: rewritten minus trained change."""
        return self.change(x_prev, scenario) - self.trained_change(x_prev, scenario)

    def with_pull(self, pull: torch.Tensor) -> GenerationBackbone:
        """The same backbone with other pull factors ((D,) or (P, D))."""
        return replace(self, pull=pull)

    def select(self, idx: torch.Tensor) -> GenerationBackbone:
        """Per-path pull factors follow a resampling of the paths (idx (P,) int); shared ones stay."""
        return self if self.pull.dim() == 1 else replace(self, pull=self.pull[idx])

    def linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A (D, D), d (S, D))`` float64: ``x_t = A x_{t-1} + d_s`` (module docstring). With per-path
        factors, those of the average path: the guide that uses it only steers the proposal, the
        importance weights stay exact for any guide (:mod:`creditsim.macro.guidance`)."""
        W, r = self.weight.double(), self.rest.double()
        f = self.pull.double() if self.pull.dim() == 1 else self.pull.double().mean(dim=0)
        fwf = f[:, None] * W * f[None, :]
        c = self.scenario_drift.double()
        A = torch.eye(W.shape[0], dtype=W.dtype, device=W.device) + fwf
        return A, -(fwf @ r)[None, :] + f[None, :] * (c - c[0])
