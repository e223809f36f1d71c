"""A MacroVAE as a differentiable map from standard-normal noise to macro paths from a given start.

:meth:`MacroVAE.generate` turns noise into a path: a latent ``z ~ N(0, I)`` (``latent_dim``) and, for every
month, an innovation ``eps_t ~ N(0, I)`` (``D`` variables) that the decoder scales and correlates,
``x_t = mu_t + diag(sigma_t) L eps_t``. With month 0 pinned to a given state (today's economy), a path of
``T`` months is a deterministic, differentiable function of ``u = (z, eps_1 .. eps_{T-1})`` (floors at the
rate bounds aside, which are flat where they bind). That is the coordinate system of a reverse stress
test: the most plausible path with a property is the point of the property's region nearest to the
origin (Hasofer & Lind 1974, J. Eng. Mech. 100(1): the "design point").

Plausibility (decision). The month-0 innovation is implied by the start and ``z``:
``eps_0(z) = L^-1 (x_0 - mu_0(z)) / sigma_0(z)``. The noise behind a path is therefore
``(z, eps_0(z), eps_1 .. eps_{T-1})``, standard normal under the generator, and its Euclidean norm is the
path's **latent Mahalanobis distance** :meth:`LatentPathMap.distance`. Counting ``eps_0`` keeps the search
away from latents that could not have produced today's state. Reference paths from the generator
(:meth:`LatentPathMap.sample`) draw ``z`` given the start as :meth:`MacroVAE.generate` does (importance
resampling among 16 prior candidates by the density of the start) and fresh innovations.

The map runs a float64 copy of the model (exact finite-difference checks; the shipped model is float32),
one LSTM step per month. Floors and the dispersion factors are the model's; the shifting endpoint of
``generate_conditional`` is not applied.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from creditsim.errors import ConfigError, DataError
from creditsim.rng import torch_seed
from creditsim.states import SCENARIOS, scenario_index

__all__ = ["LatentPathMap"]

#: prior candidates of z per reference path (as MacroVAE.generate with a historical start)
Z_CANDIDATES = 16
#: training standard deviations beyond the training range that :meth:`LatentPathMap.range_excess` allows
RANGE_MARGIN = 0.5


class LatentPathMap:
    """Noise ``u (B, dim)`` -> macro paths ``(B, T, D)`` (real units) from a fixed start, differentiably.

    Args:
        model: a trained :class:`~creditsim.macro.vae.MacroVAE`.
        start: ``(D,)`` month-0 state in real units (decimals, the model's variable order).
        horizon: months T (month 0 is the start).
        scenario: the decoder's dynamics label (name or index; default baseline: the plausibility of a
            path is then measured against ordinary times, not against a crisis regime).
        device: torch device.
    """

    def __init__(self, model: Any, start: np.ndarray, horizon: int, scenario: int | str = "baseline",
                 device: str = "cpu") -> None:
        if not hasattr(model, "decoder") or not hasattr(model, "scenario_emb"):
            raise ConfigError(f"model must be a MacroVAE, got {type(model).__name__}")
        cfg = model.config
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 2:
            raise ConfigError(f"horizon must be an integer >= 2 months, got {horizon!r}")
        x0 = np.asarray(start, dtype=np.float64).reshape(-1)
        if x0.shape != (cfg.n_macro_vars,) or not np.isfinite(x0).all():
            raise DataError(f"start: expected {cfg.n_macro_vars} finite values in {list(cfg.variables)} order, "
                            f"got {np.asarray(start).tolist()!r:.200}")
        self.scenario = scenario_index(scenario) if isinstance(scenario, str) else int(scenario)
        if not 0 <= self.scenario < cfg.n_scenarios:
            raise ConfigError(f"scenario must be one of {list(SCENARIOS)}, got {scenario!r}")
        self.device = torch.device(device)
        self.model = copy.deepcopy(model).to(self.device).double().eval()
        self.model.requires_grad_(False)
        self.horizon = int(horizon)
        self.n_vars = cfg.n_macro_vars
        self.latent_dim = cfg.latent_dim
        self.variables = tuple(cfg.variables)
        self.start = torch.tensor(x0, dtype=torch.float64, device=self.device)
        self._x0 = self.model.normalize(self.start)
        self._floor = self.model.lower_bounds()
        self._floor_std = self.model.normalize(self._floor)

    @property
    def dim(self) -> int:
        """Length of the noise vector: ``latent_dim + D (T - 1)``."""
        return self.latent_dim + self.n_vars * (self.horizon - 1)

    def _split(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.as_tensor(u, dtype=torch.float64, device=self.device)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise DataError(f"noise: expected (B, {self.dim}), got {tuple(u.shape)}")
        return u[:, : self.latent_dim], u[:, self.latent_dim:].reshape(-1, self.horizon - 1, self.n_vars)

    def decode(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(paths (B, T, D) float64 real units, eps_0 (B, D), log_scale (B,))`` of noise ``u`` ``(B, dim)``;
        ``log_scale`` is ``sum_t sum_j log sigma_tj`` (standardised units), the log-Jacobian of the map from
        the noise to the path (:meth:`neg_log_density`)."""
        z, eps = self._split(u)
        months, eps0, log_scale = self._roll(z, eps, self.horizon)
        m, b = self.model, z.shape[0]
        real = torch.maximum(m.denormalize(torch.stack(months, dim=1)), self._floor)
        real = torch.cat([self.start.expand(b, 1, -1), real[:, 1:]], dim=1)  # the start exactly
        return real, eps0, log_scale

    def neg_log_density(self, u: torch.Tensor, eps0: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        """``(B,)`` negative log-density of the path (standardised units, up to a constant) given the start:
        ``|z|^2 / 2 + sum_t (|eps_t|^2 / 2 + sum_j log sigma_tj)`` -- the prior of ``z`` times the decoder's
        Gaussian one-step densities, month 0 (the start) included. Unlike the noise norm it counts the
        volatility of the months a path goes through: the same shock is a bigger move in a volatile regime,
        so a path through high-volatility months is less likely per unit of movement."""
        u = torch.as_tensor(u, dtype=torch.float64, device=self.device)
        return 0.5 * ((u ** 2).sum(-1) + (eps0 ** 2).sum(-1)) + log_scale

    def range_excess(self, paths: torch.Tensor, margin: float = RANGE_MARGIN) -> torch.Tensor:
        """``(B,)`` squared excursion beyond the range seen in training: ``sum_tj (max(0, x - hi_j) / sd_j)^2
        + (max(0, lo_j - x) / sd_j)^2`` with ``[lo, hi]`` the model's training range widened by ``margin``
        training sd (real units, :meth:`MacroVAE.unit_scale`). The generator's density is no evidence
        outside what it was fitted on (decoders extrapolate: the shipped one puts high density on HY
        spreads of 40 %), so a search for plausible paths keeps inside it
        (:mod:`creditsim.risk.reverse_stress`)."""
        m = self.model
        sd = m.unit_scale().to(torch.float64)
        hi = m.x_max.to(torch.float64) + margin * sd
        lo = m.x_min.to(torch.float64) - margin * sd
        return ((torch.relu(paths - hi) / sd) ** 2 + (torch.relu(lo - paths) / sd) ** 2).sum(dim=(-2, -1))

    def distance(self, u: torch.Tensor, eps0: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` latent Mahalanobis distance ``|| (z, eps_0(z), eps_1..) ||`` (module docstring)."""
        u = torch.as_tensor(u, dtype=torch.float64, device=self.device)
        if eps0 is None:
            eps0 = self.decode(u)[1]
        return torch.sqrt((u ** 2).sum(-1) + (eps0 ** 2).sum(-1))

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> torch.Tensor:
        """``(n, dim)`` noise of reference paths from the generator, given the start (module docstring)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        g = torch.Generator(device=self.device)
        g.manual_seed(torch_seed(int(seed)))
        k = Z_CANDIDATES
        z = torch.randn(n * k, self.latent_dim, generator=g, dtype=torch.float64, device=self.device)
        probe = torch.cat([z, torch.zeros(n * k, self.dim - self.latent_dim, dtype=torch.float64, device=self.device)], 1)
        eps0, log_scale = self._month0(probe)
        log_w = (-0.5 * (eps0 ** 2).sum(-1) - log_scale).view(n, k)
        pick = torch.multinomial(torch.softmax(log_w, dim=1), 1, generator=g).squeeze(1) + k * torch.arange(n)
        eps = torch.randn(n, self.dim - self.latent_dim, generator=g, dtype=torch.float64, device=self.device)
        return torch.cat([z[pick], eps], dim=1)

    def _month0(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eps_0 (B, D), sum log sigma_0 (B,))``: month 0 only (the start's density given z)."""
        z, _ = self._split(u)
        _, eps0, log_scale = self._roll(z, None, 1)
        return eps0, log_scale

    def _roll(self, z: torch.Tensor, eps: torch.Tensor | None, n_months: int
              ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The decoder run for ``n_months`` from the start: standardised months ``[(B, D)] * n_months``,
        the implied month-0 innovation ``eps_0`` and ``sum_t sum_j log sigma_tj``; ``eps`` ``(B, T - 1, D)``
        drives months 1.. (None when only month 0 is run)."""
        m, b = self.model, z.shape[0]
        dec = m.decoder
        s = torch.full((b,), self.scenario, dtype=torch.long, device=self.device)
        s_emb = m.scenario_emb(s)
        state = dec.initial_state(z, s_emb)
        tril = dec.unit_tril()
        x_prev = torch.zeros(b, 1, self.n_vars, dtype=torch.float64, device=self.device)
        months, eps0, log_scale = [], None, 0.0
        for t in range(n_months):
            first = torch.full((b, 1, 1), 1.0 if t == 0 else 0.0, dtype=torch.float64, device=self.device)
            out, state = dec.lstm(dec.step_inputs(x_prev, first, z, s_emb), state)
            mean, scale = dec.emit(out, x_prev, s)
            mean, scale = mean[:, 0], scale[:, 0] * m.dispersion
            log_scale = log_scale + torch.log(scale).sum(-1)
            if t == 0:
                x_t = self._x0.expand(b, -1)
                white = ((x_t - mean) / scale).unsqueeze(-1)
                eps0 = torch.linalg.solve_triangular(tril, white, upper=False).squeeze(-1)
            else:
                x_t = torch.maximum(mean + scale * (eps[:, t - 1] @ tril.T), self._floor_std)
            months.append(x_t)
            x_prev = x_t[:, None, :]
        return months, eps0, log_scale
