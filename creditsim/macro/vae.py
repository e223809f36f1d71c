"""MacroVAE: a conditional VAE that generates monthly macro paths ``(S, T, 9)`` in real units.

Layout (read top to bottom): :class:`MacroVAEConfig`, the encoder, the decoder, :class:`MacroVAE` with
``forward`` / ``loss`` / ``generate`` / ``generate_conditional`` and checkpoint I/O.

Why this design (the public reference collapses: every sample of a scenario is the same path)
--------------------------------------------------------------------------------------------
* **Stochastic autoregressive decoder.** A VAE whose decoder maps ``z`` to a deterministic mean path
  can only be as diverse as its latent code, and with ~200 overlapping training windows the KL term
  squeezes that code to the prior mean: the paths collapse. Our LSTM decoder instead emits, for every
  month, the mean *and the scale* of the next month's change given the path so far, ``z`` and the
  scenario, and the next month is *sampled* from it. Dispersion therefore comes from two sources:
  the global latent (regime / level of the whole window) and the per-month innovations (shocks), whose
  size is learned by maximum likelihood, so the spread is calibrated to history rather than to a beta.
* **Heteroscedastic, correlated innovations.** ``x_t = mu_t + diag(sigma_t) L eps_t`` with
  ``eps_t ~ N(0, I)``: ``sigma_t`` (per variable, per month) comes from the decoder state so volatility
  rises in stress months (fatter tails than a VAR); ``L`` is a learned unit-lower-triangular matrix that
  gives contemporaneous shock correlation (spreads jump when unemployment jumps).
* **Keeping the latent alive.** Autoregressive decoders are prone to posterior collapse. We use
  (i) *free bits* (Kingma et al. 2016): the KL of each latent dimension below ``free_bits`` nats is
  not penalised, (ii) a small ``beta`` (the trainer anneals it linearly from 0), and (iii) ``z`` is fed
  to the decoder at every step, not only in its initial state.
* **Linear backbone.** The decoder's mean change is ``c + c_s + B x_{t-1}`` (a scenario-conditional
  VAR(1) in error-correction form: scenario intercepts ``c_s``, fitted by OLS on the training months
  and frozen) plus the LSTM's output. The backbone supplies mean reversion, co-integration and the
  average drift of each scenario; the LSTM supplies what a VAR lacks (state-dependent volatility,
  regime- and latent-dependent corrections, asymmetry).
* **Penalised nonlinear drift** (``drift_penalty``): the LSTM's part of the mean is ridge-penalised.
  Teacher forcing fits each month given the true past; unpenalised, the LSTM's corrections compound
  over 60 free-running months into wandering that breaks the joint distribution of levels (pooled
  correlation error 0.074 vs 0.027 for a VAR(1), house-price growth 1.5x too spread). The diagnosis
  and the measured choice are in :mod:`creditsim.macro.pretrained`.
* **Historical starting points.** ``generate`` starts each path from the first month of a training
  window of the requested scenario (a stored *start bank*) and samples the latent given that start by
  importance sampling, as a conditional sample with all nine month-0 values observed. Scenario paths
  thus begin from states in which such episodes began, and the comparison with the VAR / bootstrap
  baselines (which also start from real months) is about dynamics only. ``start="model"`` lets the
  decoder generate month 0 as well.
* **Scenario conditioning (CVAE).** A learned scenario embedding enters encoder and decoder; the prior
  is ``N(0, I)`` for every scenario so a scenario changes the decoder's dynamics, not the latent scale.

Units: the network works on variables standardised with the training mean / sd (buffers ``x_mean``,
``x_std``); ``generate*`` return real units (decimals, monthly), variables in ``config.variables`` order
(:data:`~creditsim.states.MACRO_VARS`). The ``config.log_variables`` are standardised as natural logs
(the shipped model: the IG and HY spreads), so their innovations are proportional moves: a spread at
1.5 % moves by basis points where one at 8 % moves by hundreds, and no path of them reaches zero.

Why (decision, 2026-12): in levels, one innovation sd serves both regimes badly -- fitted on the whole
history it is too wide for calm, tight-spread months -- so from today's tight spreads the level model's
paths ran under history's lows: 26-31 % of 1,000 baseline paths (seed 11, 2025-09) reached the plausible
band's lower edge (:mod:`creditsim.macro.plausibility`) at some month, and in the Fed severely adverse
scenario a third of the HY paths did; with the spreads in logs and the anchored scenarios taking a
spread's fall in proportion (:func:`creditsim.macro.anchors.compose`), 4-5 % and none. Unemployment and
the default rate stay
in levels, measured: in logs they broke the model's lead-lag structure (mean |cross-correlation error|
over the key pairs 0.12-0.14 against 0.06 in levels and the VAR(1)'s 0.04, unemployment against the
default rate worst at 0.18-0.30; the bar is 1.5x the VAR's). A likely reason, not tested: the
history's default rate before 1985 is itself a linear back-fill on unemployment, GDP growth and the Baa
spread (:mod:`creditsim.datasets.macro`), a relation in levels. With the spreads alone in logs the error
is 0.057.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditsim.checkpoints import (check_weight_shapes, config_from_meta, load_model_weights, read_json,
                                   read_model_meta, save_model_checkpoint)
from creditsim.errors import CheckpointError, ConfigError
from creditsim.nn.config import JSONConfig
from creditsim.states import MACRO_VARS, SCENARIOS, scenario_index
from creditsim.threads import serial_torch
from creditsim.macro.backbone import GenerationBackbone, row_product
from creditsim.macro.guidance import LinearGuide, log_twist, twisted_step
from creditsim.macro.rejuvenation import REJUVENATION_MOVES, Chains, RejuvenationReport, pcn_sweeps
from creditsim.macro.strata import LabelStrata, ess_count, systematic
from creditsim.macro.tempering import TEMPER_MONTHS, WINDOW_TRIGGER, temper_latents
from creditsim.rng import torch_seed
from creditsim.userwarn import warn

__all__ = ["MacroVAEConfig", "MacroVAE", "ConditionRangeWarning", "PRETRAINED_DIR", "LOWER_BOUNDS"]

#: folder of the checkpoint shipped inside the package (regenerated by ``make pretrained``)
PRETRAINED_DIR: Path = Path(__file__).resolve().parent.parent / "pretrained" / "macro_vae"
#: MacroVAE's own file beside the weights and config: standardisation, training range, scenario frequencies
SCALERS_FILE = "scalers.json"


def _to_numpy(x: Any, dtype) -> np.ndarray:
    """Array-like or tensor -> a fresh numpy array of ``dtype``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=dtype)


#: Floors applied while sampling (real units). Rates, spreads and the default index cannot go below 0:
#: the Fed has never set a negative policy rate and US 10y yields stayed positive; without the floor the
#: Gaussian innovations push 5 % of severely adverse policy-rate paths below -3 %. A floored month is
#: fed back to the decoder as floored (a censored path). Conditions are never floored (a condition
#: below a floor is also outside the training range and warns). House prices cannot fall by 100 % or more
#: in a year (the collateral channel, creditsim.loans.collateral, refuses such a path): the anchored
#: scenarios' severity, uncapped and lognormal until 2026-12, reached that in about one path in 10,000 (a
#: y/y fall of 147 % in the default 10,000-path run on the bundled example tape, which then stopped); the
#: severity is bounded now and the plausible band (creditsim.macro.plausibility) keeps their house prices
#: above -21 % y/y, so the floor is a last guard for the model's own paths.
LOWER_BOUNDS: dict[str, float] = {
    "unemployment_rate": 0.0, "policy_rate": 0.0, "yield_10y": 0.0,
    "credit_spread_ig": 0.0, "credit_spread_hy": 0.0, "default_rate": 0.0,
    "house_price_growth": -0.99,
}


#: smallest real value a log variable is taken the log of (a floor of 0 maps to log(1e-6), not -inf)
LOG_FLOOR = 1e-6


class ConditionRangeWarning(UserWarning):
    """A condition lies outside the range of values seen in training (extrapolation)."""


@dataclass
class MacroVAEConfig(JSONConfig):
    """Hyper-parameters of :class:`MacroVAE`. The first seven fields are those of the models-api spec.

    Size bounds (``LIMITS``, inclusive; a checkpoint outside them is refused before building):
    ``n_macro_vars`` 1..64, ``seq_length`` 1..1200, ``latent_dim`` 1..1024, ``hidden_dim`` 1..1024,
    ``n_layers`` 1..8, ``n_scenarios`` 1..64, ``scenario_dim`` 1..1024. The shipped model uses
    9/60/8/32/1/4/8.
    """

    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "n_macro_vars": (1, 64), "seq_length": (1, 1200), "latent_dim": (1, 1024), "hidden_dim": (1, 1024),
        "n_layers": (1, 8), "n_scenarios": (1, 64), "scenario_dim": (1, 1024),
    }

    n_macro_vars: int = 9  # number of macro variables
    seq_length: int = 60  # training window length in months
    latent_dim: int = 32  # latent space dimension
    hidden_dim: int = 128  # LSTM hidden size
    n_layers: int = 2  # LSTM layers (encoder and decoder)
    beta: float = 1.0  # KL weight at the end of annealing
    n_scenarios: int = 4  # number of scenario types
    # extensions (defaults keep the spec's constructor working)
    scenario_dim: int = 8  # scenario embedding size
    free_bits: float = 0.1  # nats per latent dimension not penalised by the KL term
    min_scale: float = 1e-3  # floor of the innovation sd, standardised units
    dropout: float = 0.0  # between LSTM layers
    teacher_noise: float = 0.0  # sd of Gaussian noise on the teacher-forced past in training (standardised)
    linear_ar: bool = True  # linear error-correction path in the decoder mean
    drift_penalty: float = 0.0  # weight of the L2 penalty on the LSTM's nonlinear drift (standardised units)
    variables: tuple[str, ...] = field(default_factory=lambda: tuple(MACRO_VARS))
    # variables the network sees as logarithms (positive, ratio-scale: their moves grow with their level);
    # empty keeps the level model every checkpoint before 2026-12 was trained as (module docstring, Units)
    log_variables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.variables = tuple(self.variables)
        if isinstance(self.log_variables, str):  # one name, not its characters
            self.log_variables = (self.log_variables,)
        if not isinstance(self.log_variables, (list, tuple)) or not all(isinstance(v, str) for v in self.log_variables):
            raise ConfigError(f"MacroVAEConfig.log_variables must be a list of variable names, got {self.log_variables!r:.200}")
        self.log_variables = tuple(self.log_variables)
        for name in ("n_macro_vars", "seq_length", "latent_dim", "hidden_dim", "n_layers", "n_scenarios", "scenario_dim"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MacroVAEConfig.{name} must be a positive integer, got {value!r}")
        self.check_limits()
        if not all(isinstance(v, str) for v in self.variables):
            raise ConfigError(f"MacroVAEConfig.variables must be macro variable names, got {list(self.variables)!r:.200}")
        if len(self.variables) != self.n_macro_vars:
            raise ConfigError(
                f"MacroVAEConfig.variables has {len(self.variables)} names but n_macro_vars={self.n_macro_vars}"
            )
        if len(set(self.variables)) != len(self.variables):
            raise ConfigError(f"MacroVAEConfig.variables has duplicates: {list(self.variables)}")
        unknown = [v for v in self.log_variables if v not in self.variables]
        if unknown or len(set(self.log_variables)) != len(self.log_variables):
            raise ConfigError(f"MacroVAEConfig.log_variables must be distinct names from variables "
                              f"{list(self.variables)}, got {list(self.log_variables)!r:.200}")
        for name in ("beta", "free_bits", "dropout", "teacher_noise", "drift_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"MacroVAEConfig.{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.linear_ar, (bool, np.bool_)) is False:
            raise ConfigError(f"MacroVAEConfig.linear_ar must be true or false, got {self.linear_ar!r}")
        if isinstance(self.min_scale, bool) or not isinstance(self.min_scale, (int, float)) or not 0 < self.min_scale < 1:
            raise ConfigError(f"MacroVAEConfig.min_scale must be in (0, 1), got {self.min_scale!r}")
        if self.dropout >= 1:
            raise ConfigError(f"MacroVAEConfig.dropout must be < 1, got {self.dropout!r}")


class Encoder(nn.Module):
    """q(z | x, s): LSTM over the standardised window, last hidden state -> (mu, log_var)."""

    def __init__(self, cfg: MacroVAEConfig):
        super().__init__()
        self.lstm = nn.LSTM(
            cfg.n_macro_vars + cfg.scenario_dim, cfg.hidden_dim, cfg.n_layers,
            batch_first=True, dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
        )
        self.to_latent = nn.Linear(cfg.hidden_dim, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor, s_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        inp = torch.cat([x, s_emb[:, None, :].expand(B, T, -1)], dim=-1)  # (B, T, D + E)
        _, (h, _) = self.lstm(inp)  # h: (n_layers, B, H)
        mu, log_var = self.to_latent(h[-1]).chunk(2, dim=-1)  # (B, Z) each
        return mu, log_var.clamp(-12.0, 8.0)


class Decoder(nn.Module):
    """p(x_t | x_<t, z, s): LSTM emitting the mean change and the innovation sd of every month.

    Month 0 is predicted from ``x_{-1} = 0`` (the training mean), so the decoder also generates the
    starting point of a path. The shared unit-lower-triangular ``L`` correlates the innovations.
    """

    def __init__(self, cfg: MacroVAEConfig):
        super().__init__()
        D, H, Z, E = cfg.n_macro_vars, cfg.hidden_dim, cfg.latent_dim, cfg.scenario_dim
        self.n_layers, self.hidden_dim = cfg.n_layers, H
        self.min_scale = cfg.min_scale
        self.init_state = nn.Linear(Z + E, 2 * cfg.n_layers * H)
        self.lstm = nn.LSTM(D + 1 + Z + E, H, cfg.n_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.head = nn.Linear(H, 2 * D)
        # linear backbone x_prev -> change: a VAR(1) in error-correction form, fitted by OLS on the
        # training months and frozen (see MacroVAE.set_linear_backbone). It carries mean reversion and
        # co-integration (policy rate vs 10y) that an LSTM on ~470 distinct months learns slowly and,
        # when learned jointly, tends to make explosive over 60 free-running months; the LSTM adds the
        # nonlinear, scenario- and latent-dependent part and all of the heteroscedasticity
        self.linear_ar = nn.Linear(D, D) if cfg.linear_ar else None
        if self.linear_ar is not None:
            nn.init.zeros_(self.linear_ar.weight)
            nn.init.zeros_(self.linear_ar.bias)
            self.linear_ar.requires_grad_(False)
        # per-scenario shift of the backbone's intercept (scenario dummies in the same OLS, frozen):
        # the scenario-conditional VAR of EVALUATION.md 2.3. Zero for checkpoints written before it.
        self.scenario_drift = nn.Parameter(torch.zeros(cfg.n_scenarios, D), requires_grad=False)
        self.corr_offdiag = nn.Parameter(torch.zeros(D, D))

    def unit_tril(self) -> torch.Tensor:
        """(D, D) unit-lower-triangular shock loading ``L``."""
        D = self.corr_offdiag.shape[0]
        return torch.tril(self.corr_offdiag, diagonal=-1) + torch.eye(D, device=self.corr_offdiag.device,
                                                                       dtype=self.corr_offdiag.dtype)

    def initial_state(self, z: torch.Tensor, s_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = z.shape[0]
        hc = torch.tanh(self.init_state(torch.cat([z, s_emb], dim=-1)))  # (B, 2 * n_layers * H)
        h, c = hc.view(B, 2, self.n_layers, self.hidden_dim).permute(1, 2, 0, 3).contiguous()
        return h, c  # (n_layers, B, H) each

    def step_inputs(self, x_prev: torch.Tensor, first: torch.Tensor, z: torch.Tensor,
                    s_emb: torch.Tensor) -> torch.Tensor:
        """Concatenate decoder inputs; x_prev (B, T, D), first (B, T, 1), z (B, Z), s_emb (B, E)."""
        B, T, _ = x_prev.shape
        ctx = torch.cat([z, s_emb], dim=-1)[:, None, :].expand(B, T, -1)
        return torch.cat([x_prev, first, ctx], dim=-1)

    def linear_change(self, x_prev: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor | float:
        """The frozen backbone's change (B, T, D): ``c + c_s + B x_prev``; 0 without a backbone.

        x_prev: (B, T, D) standardised; scenario: (B,) int indices."""
        if self.linear_ar is None:
            return 0.0
        # a fixed-order product, not nn.Linear's addmm: the same bits for a path whatever its batch
        return (row_product(x_prev, self.linear_ar.weight) + self.linear_ar.bias
                + self.scenario_drift[scenario][:, None, :])

    def emit(self, out: torch.Tensor, x_prev: torch.Tensor, scenario: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM output (B, T, H) -> mean (B, T, D) and innovation sd (B, T, D), standardised units.

        x_prev: (B, T, D) previous months; scenario: (B,) int scenario indices."""
        delta, raw_scale = self.head(out).chunk(2, dim=-1)
        return x_prev + delta + self.linear_change(x_prev, scenario), F.softplus(raw_scale) + self.min_scale


def _read_scalers(folder: Path, config: MacroVAEConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``scalers.json`` of a MacroVAE checkpoint, checked: (the raw object, the four finite ``(V,)`` stats)."""
    scalers = read_json(folder / SCALERS_FILE)
    if not isinstance(scalers, dict):
        raise CheckpointError(f"checkpoint {folder}: {SCALERS_FILE} must be a JSON object, got {type(scalers).__name__}")
    if list(scalers.get("variables") or []) != list(config.variables):
        raise CheckpointError(f"checkpoint {folder}: scalers variables {scalers.get('variables')!r:.200} "
                              f"do not match config variables {list(config.variables)}")
    stats = {}
    for key in ("mean", "std", "min", "max"):
        try:
            stats[key] = np.asarray(scalers[key], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"checkpoint {folder}: {SCALERS_FILE} field '{key}' must be "
                                  f"{config.n_macro_vars} numbers") from None
        if stats[key].shape != (config.n_macro_vars,) or not np.isfinite(stats[key]).all():
            raise CheckpointError(f"checkpoint {folder}: {SCALERS_FILE} field '{key}' must be "
                                  f"{config.n_macro_vars} finite numbers, got {scalers[key]!r:.120}")
    return scalers, stats


#: a resampling whose effective sample size falls below this fraction of the particles is reported
DEGENERACY_ESS = 0.01
#: guided months between anchors resample when the effective sample size falls below this fraction of the
#: particles (each label block on its own). Any schedule keeps the sampler exact; this one decides what
#: :attr:`MacroVAE.last_ess` can read. 0.5, the textbook rule, waits until the weights have half
#: degenerated, so a resampling it triggers records anything below 0.5: the month before the month-18
#: anchors (where the twist sharpens from the far anchor's inflated variance to the next month's own)
#: recorded 0.29-0.33 at 29 of 30 seeds (three joint tail anchors from 2025-09: 9 % unemployment at month 18,
#: HY 900 bp at month 12, house prices -15 % y/y at month 18; 300 paths, labels free). At 0.7 the same
#: stretch is split over two resamplings (0.55 and 0.67): smallest ESS 0.27-0.33 -> 0.49-0.57 over seeds
#: 0-39 and 100-119 (label given 0.32-0.36 -> 0.58-0.60). That gain is in the reading, not in the sample:
#: the effective number of independent paths the user keeps (within-run variance over the variance of run
#: means across seeds, ``bench/bench_conditioning.py``, the evidence to read first) is unchanged within its
#: noise -- median 0.82 / 0.88 of the paths at seeds 100-119, 0.82 / 0.83 at 0-39, 0.84 / 0.81 at
#: 2000-2019 (0.5 / 0.7; a reviewer's runs) -- where resampling every guided month (1.0) lost some (0.81,
#: 10th percentile 0.47 against 0.59). The cost is three more resamplings, no measurable time
RESAMPLE_ESS = 0.7


#: with no anchor after month 0, roll only the returned paths on from month 1 (:meth:`MacroVAE._keep_early`);
#: False rolls every particle to the end, as before -- the same paths (bit for bit from 16 paths up; below
#: that the LSTM's small-batch kernels round differently, ~1e-7), kept as the reference the tests compare to
KEEP_EARLY = True


def _warn_degeneracy(ess: dict[int, float], n_particles: int, moved: bool = False) -> None:
    """One :class:`ConditionRangeWarning` for a conditioned draw whose resamplings fell below
    :data:`DEGENERACY_ESS` (``ess``: month -> smallest ESS fraction there), naming the months and the
    lowest ESS; one line per call however many months degenerate (a supervisory table anchors dozens).
    moved: the paths were rejuvenated (their histories differ, but they stay correlated with few ancestors)."""
    low = sorted(m for m, f in ess.items() if f < DEGENERACY_ESS)
    if not low:
        return
    worst = min(ess[m] for m in low)
    months = ", ".join(map(str, low[:8])) + (f" and {len(low) - 8} more" if len(low) > 8 else "")
    warn(f"conditioning: effective sample size below {DEGENERACY_ESS:.0%} of the {n_particles} particles "
         f"at month(s) {months} (lowest {worst * n_particles:.0f}); the conditions lie far in the "
         + ("model's tail, so the paths descend from few ancestors before those months (the rejuvenation moves "
            "separate them, but they stay correlated: use clustered standard errors)" if moved else
            "model's tail, so paths share their history before those months"), ConditionRangeWarning)


@dataclass
class _Particles:
    """Per-particle state of :meth:`MacroVAE.generate_conditional` that a resampling reorders: latent z (P, Z),
    scenario label s (P,), backbone (per-path pull factors), historical start (P, D) or None, month-0
    ancestor ``eve`` (P,), path and innovations (P, T, D), whole-path log-weight (P,) float64."""

    z: torch.Tensor
    s: torch.Tensor
    backbone: GenerationBackbone | None
    start_target: torch.Tensor | None
    eve: torch.Tensor
    path: torch.Tensor
    noise: torch.Tensor
    log_w_path: torch.Tensor

    def select(self, idx: torch.Tensor) -> _Particles:
        return _Particles(self.z[idx], self.s[idx], None if self.backbone is None else self.backbone.select(idx),
                          None if self.start_target is None else self.start_target[idx], self.eve[idx],
                          self.path[idx], self.noise[idx], self.log_w_path[idx])


class MacroVAE(nn.Module):
    """Conditional VAE for macro scenarios (see the module docstring for the design).

    Buffers set by training (and stored in the checkpoint's scalers JSON): ``x_mean``, ``x_std``
    (standardisation, model units: :meth:`to_model_units`), ``x_min``, ``x_max`` (range seen in training, real units, used for
    out-of-range warnings) and ``scenario_freq`` (share of each scenario label among training windows,
    used when a scenario is not given); ``start_states`` (N, D) / ``start_labels`` (N,): the first month
    of every training window and its scenario label, the pool of historical starting points (saved in
    the safetensors file).
    """

    def __init__(self, config: MacroVAEConfig):
        super().__init__()
        if not isinstance(config, MacroVAEConfig):
            raise ConfigError(f"MacroVAE expects a MacroVAEConfig, got {type(config).__name__}")
        self.config = config
        D = config.n_macro_vars
        self.scenario_emb = nn.Embedding(config.n_scenarios, config.scenario_dim)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.register_buffer("x_mean", torch.zeros(D))
        # (D,) True where the network sees the log of the variable (config.log_variables); not saved: the
        # config says it
        self.register_buffer("log_mask", torch.tensor([v in config.log_variables for v in config.variables]),
                             persistent=False)
        self.register_buffer("x_std", torch.ones(D))
        self.register_buffer("x_min", torch.full((D,), -1.0))
        self.register_buffer("x_max", torch.full((D,), 1.0))
        self.register_buffer("scenario_freq", torch.full((config.n_scenarios,), 1.0 / config.n_scenarios))
        # (D,) factors on the innovation sd when *generating* (training keeps the likelihood's own): the
        # path-dispersion calibration of creditsim.macro.dispersion; ones = the decoder as trained
        self.register_buffer("dispersion", torch.ones(D))
        # historical start months of the training windows (real units) and their scenario labels
        self.register_buffer("start_states", torch.zeros(0, D))
        self.register_buffer("start_labels", torch.zeros(0, dtype=torch.long))
        #: smallest effective sample size (fraction of the particles) at a resampling step of the last
        #: :meth:`generate_conditional` call (1.0 when it never resampled): the conditioning diagnostic (when
        #: the conditions pick the label, the ESS as a sample of the label posterior, which it takes as known:
        #: :mod:`creditsim.macro.strata` says when that overstates the sample)
        self.last_ess: float = 1.0
        #: per returned path of the last :meth:`generate_conditional` call: the month-0 particle it descends
        #: from (its Eve index; paths sharing one share their early history, so they are one cluster for
        #: Monte Carlo standard errors, Lee & Whiteley 2018, Biometrika 105(3)) and its scenario label
        #: (with ``scenario=None`` the label the conditions picked); (n_samples,) int64 numpy
        self.last_ancestors: np.ndarray = np.zeros(0, dtype=np.int64)
        self.last_scenarios: np.ndarray = np.zeros(0, dtype=np.int64)
        #: the rejuvenation sweeps of the last :meth:`generate_conditional` call (steps, acceptance per sweep,
        #: share of paths moved; empty when none ran)
        self.last_rejuvenation: RejuvenationReport = RejuvenationReport()
        #: (n_scenarios,) float64 posterior of the dynamics labels given the conditions, estimated from each
        #: label's evidence, when the last :meth:`generate_conditional` call let the conditions pick the
        #: label (``scenario=None`` with conditions after month 0 and no start bank, :mod:`creditsim.macro.strata`);
        #: else None. A Monte Carlo estimate: when the labels' evidences are close it varies from seed to seed
        #: (inflation 6 % and policy rate 6.5 % at month 12, 6,400 particles: adverse 0.20-0.64 over 10 seeds),
        #: a minority label's evidence is heavy-tailed (an occasional seed gives it far more mass), and
        #: far-tail conditions can put it all on a different label per seed
        self.last_label_posterior: np.ndarray | None = None
        #: (2, n_scenarios) float64, with :attr:`last_label_posterior`: the posterior from the earlier passes'
        #: evidence (the pilot's; the pilot's pooled with the first allocated pass's when a missed label got
        #: one more pass, :meth:`~creditsim.macro.strata.LabelStrata.misallocated`) and from the last pass's
        #: alone. Independent estimates given the last pass's block sizes, so a gap between
        #: the rows is the estimate's Monte Carlo noise (half the gap is a rough standard error of their
        #: average); a large gap says: more particles, or another seed, before the label mix is read
        self.last_label_passes: np.ndarray | None = None
        #: particles the last :meth:`generate_conditional` call ran (``n_particles`` rounded down to a multiple
        #: of ``n_samples``; with label blocks, their total)
        self.last_n_particles: int = 0
        #: (temperature steps, pCN acceptance, smallest step ESS fraction) of the last conditioned filter pass's
        #: tempering of the latent and month 1's innovations (:mod:`creditsim.macro.tempering`; it runs when
        #: month 0 is fully anchored and ``start="model"`` or no start bank, as in ``macro_paths`` and
        #: ``simulate``), or None when one step kept enough particles. The step ESS enters :attr:`last_ess`
        self.last_tempering: tuple[int, float, float] | None = None
        #: ``(month t, temperature steps, pCN acceptance, smallest step ESS fraction)`` of each tempering of
        #: month t's innovations before an anchored month t + 1 in the last conditioned filter pass
        #: (:mod:`creditsim.macro.tempering`); their step ESS enters :attr:`last_ess`
        self.last_windows: list[tuple[int, int, float, float]] = []

    # ------------------------------------------------------------------ scalers
    @property
    def device(self) -> torch.device:
        return self.x_mean.device

    def set_scalers(self, mean: np.ndarray, std: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    scenario_freq: np.ndarray | None = None) -> None:
        """Store training statistics, shape (D,): ``mean`` / ``std`` of the months in model units
        (:meth:`to_model_units`: logs of ``config.log_variables``; ``std`` > 0), ``lo`` / ``hi`` the range
        seen, real units."""
        std = np.asarray(std, dtype=np.float64)
        if np.any(~np.isfinite(std)) or np.any(std <= 0):
            raise ConfigError(f"scaler std must be finite and > 0 for every variable, got {std.tolist()}")
        for name, value in (("x_mean", mean), ("x_std", std), ("x_min", lo), ("x_max", hi)):
            arr = torch.as_tensor(np.array(value, dtype=np.float64), dtype=torch.float32)
            if arr.shape != (self.config.n_macro_vars,):
                raise ConfigError(f"{name} must have shape ({self.config.n_macro_vars},), got {tuple(arr.shape)}")
            getattr(self, name).copy_(arr)
        if scenario_freq is not None:
            freq = np.asarray(scenario_freq, dtype=np.float64)
            if freq.shape != (self.config.n_scenarios,) or np.any(freq < 0) or freq.sum() <= 0:
                raise ConfigError(f"scenario_freq must be {self.config.n_scenarios} non-negative weights, got {freq}")
            self.scenario_freq.copy_(torch.as_tensor(np.array(freq / freq.sum()), dtype=torch.float32))

    def set_linear_backbone(self, x: torch.Tensor, scenario: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
        """Fit the decoder's frozen linear path by OLS on standardised windows x (N, T, D):
        ``x_t - x_{t-1} = c + c_s + B x_{t-1}``, i.e. a VAR(1) with ``A = I + B`` and, when the windows'
        scenario labels (N,) are given, scenario dummies ``c_s`` (0 for the lowest label present,
        normally baseline; a scenario without windows keeps 0). Returns the spectral radius of ``A``
        (a check: < 1 means the backbone alone is mean-reverting).

        Why the dummies: the LSTM's drift is penalised (``drift_penalty``) because its free-running
        wander distorts the joint distribution of levels; the scenario-dependent part of the drift that
        separates a deep recession from an expansion then lives in this linear, OLS-estimated term
        (a scenario-conditional VAR) instead of in the LSTM."""
        if self.decoder.linear_ar is None:
            raise ConfigError("this MacroVAE has no linear backbone (config.linear_ar=False)")
        N, T, D = x.shape
        prev = x[:, :-1].reshape(-1, D).double()
        change = (x[:, 1:] - x[:, :-1]).reshape(-1, D).double()
        cols = [torch.ones(prev.shape[0], 1, dtype=prev.dtype), prev]
        present: list[int] = []
        if scenario is not None:
            lab = torch.as_tensor(np.asarray(scenario), dtype=torch.long).reshape(-1)
            if lab.shape[0] != N:
                raise ConfigError(f"set_linear_backbone: {lab.shape[0]} scenario labels for {N} windows")
            per_month = lab.repeat_interleave(T - 1)
            if lab.numel() and (lab.min() < 0 or lab.max() >= self.config.n_scenarios):
                raise ConfigError(f"set_linear_backbone: scenario labels must be in 0..{self.config.n_scenarios - 1}")
            present = torch.unique(per_month).tolist()[1:]  # the lowest present label is the reference
            cols += [(per_month == k).to(prev.dtype)[:, None] for k in present]
        design = torch.cat(cols, dim=1)
        coef = torch.linalg.lstsq(design, change).solution  # (1 + D + len(present), D)
        with torch.no_grad():
            self.decoder.linear_ar.bias.copy_(coef[0].float())
            self.decoder.linear_ar.weight.copy_(coef[1:1 + D].T.float())
            self.decoder.scenario_drift.zero_()
            for i, k in enumerate(present):
                self.decoder.scenario_drift[k] = coef[1 + D + i].float()
        A = np.eye(D) + coef[1:1 + D].T.numpy()
        return float(np.abs(np.linalg.eigvals(A)).max())

    def lower_bounds(self) -> torch.Tensor:
        """(D,) real-unit floors of the generated paths (-inf where none), from :data:`LOWER_BOUNDS`."""
        return torch.tensor([LOWER_BOUNDS.get(v, -math.inf) for v in self.config.variables],
                            dtype=self.x_mean.dtype, device=self.device)

    def to_model_units(self, x: torch.Tensor) -> torch.Tensor:
        """Real units (..., D) -> the units the network is standardised in: the natural log of the
        ``config.log_variables`` (floored at :data:`LOG_FLOOR`), the rest unchanged."""
        if not self.config.log_variables:
            return x
        mask = self.log_mask.to(x.device)
        # log of 1 where no log is taken: no -inf / NaN in the branch torch.where discards (its gradient
        # would still be NaN there)
        logged = torch.log(torch.where(mask, x.clamp_min(LOG_FLOOR), torch.ones_like(x)))
        return torch.where(mask, logged, x)

    def from_model_units(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_model_units`: ``exp`` of the log variables, the rest unchanged."""
        if not self.config.log_variables:
            return y
        mask = self.log_mask.to(y.device)
        return torch.where(mask, torch.exp(torch.where(mask, y, torch.zeros_like(y))), y)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Real units (..., D) -> standardised units (of the log for ``config.log_variables``)."""
        return (self.to_model_units(x) - self.x_mean) / self.x_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised units (..., D) -> real units (decimals)."""
        return self.from_model_units(x * self.x_std + self.x_mean)

    def unit_scale(self) -> torch.Tensor:
        """(D,) real-unit size of one standardised unit at the training centre: ``x_std``, and for a log
        variable ``x_std * exp(x_mean)`` (the delta method at the training months' geometric mean). The
        yardstick in real units for checks that measure distances in sds (reverse stress)."""
        scale = self.x_std.clone()
        if self.config.log_variables:
            scale = torch.where(self.log_mask, scale * torch.exp(self.x_mean), scale)
        return scale

    # ------------------------------------------------------------------ training path
    def _check_batch(self, x: Any, scenario: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate a training batch at the edge: x (batch, seq_len >= 1, n_vars) finite numbers
        (numpy or torch, cast to the model's dtype and device); scenario (batch,) integer indices."""
        D = self.config.n_macro_vars
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"x must be a numeric (batch, seq_len, {D}) array or tensor: {exc}") from None
        if not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise ConfigError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.dim() != 3 or x.shape[-1] != D or x.shape[1] < 1:
            raise ConfigError(f"x must have shape (batch, seq_len >= 1, {D}), got {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=self.x_mean.dtype)
        if not torch.isfinite(x).all():
            raise ConfigError("x contains NaN or infinite values (standardised macro windows must be finite)")
        try:
            scenario = torch.as_tensor(scenario, device=x.device).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"scenario must be integer indices of shape ({x.shape[0]},): {exc}") from None
        if scenario.is_floating_point():
            if not torch.equal(scenario, scenario.round()):
                raise ConfigError("scenario must hold integer indices (0 baseline .. 3 stagflation), got fractions")
        scenario = scenario.long()
        if scenario.shape[0] != x.shape[0]:
            raise ConfigError(f"scenario must have shape ({x.shape[0]},), got {tuple(scenario.shape)}")
        if scenario.numel() and (scenario.min() < 0 or scenario.max() >= self.config.n_scenarios):
            raise ConfigError(f"scenario indices must be in 0..{self.config.n_scenarios - 1}")
        return x, scenario

    def _teacher_forced(self, x: torch.Tensor, z: torch.Tensor, s_emb: torch.Tensor, scenario: torch.Tensor):
        B, T, D = x.shape
        x_prev = torch.cat([x.new_zeros(B, 1, D), x[:, :-1]], dim=1)  # (B, T, D), x_{-1} = 0
        if self.training and self.config.teacher_noise > 0:
            # a noisy past regularises the one-step model (~400 distinct months) and reduces exposure
            # bias: at generation time the decoder conditions on its own, imperfect, samples
            # (only the LSTM sees the noise; the linear path and the mean use the clean past, so the
            # noise does not bias the linear coefficients towards zero)
            noisy = x_prev + self.config.teacher_noise * torch.randn_like(x_prev)
            return self._decode(noisy, x_prev, z, s_emb, scenario)
        return self._decode(x_prev, x_prev, z, s_emb, scenario)

    def _decode(self, x_in: torch.Tensor, x_prev: torch.Tensor, z: torch.Tensor, s_emb: torch.Tensor,
                scenario: torch.Tensor):
        B, T, _ = x_prev.shape
        first = x_prev.new_zeros(B, T, 1)
        first[:, 0] = 1.0
        h0 = self.decoder.initial_state(z, s_emb)
        out, _ = self.decoder.lstm(self.decoder.step_inputs(x_in, first, z, s_emb), h0)  # (B, T, H)
        return self.decoder.emit(out, x_prev, scenario)

    def forward(self, x: torch.Tensor, scenario: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode and reconstruct a batch of **standardised** windows.

        x: (batch, seq_len, n_vars) standardised (``self.normalize`` of real units);
        scenario: (batch,) int scenario indices.
        Returns (reconstruction, mu, log_var): the decoder's one-step-ahead means (batch, seq_len,
        n_vars), standardised, given the true past and ``z`` (sampled in training mode, ``mu`` in
        eval mode); mu, log_var: (batch, latent_dim).
        """
        recon, _, mu, log_var = self._forward_full(x, scenario)
        return recon, mu, log_var

    def _forward_full(self, x, scenario):
        x, scenario = self._check_batch(x, scenario)
        s_emb = self.scenario_emb(scenario)  # (B, E)
        mu, log_var = self.encoder(x, s_emb)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var) if self.training else mu
        mean, scale = self._teacher_forced(x, z, s_emb, scenario)
        return mean, scale, mu, log_var

    def loss(self, x: torch.Tensor, scenario: torch.Tensor, beta: float | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per window-month. Returns dict of scalar tensors: loss, nll, kl, kl_raw.

        nll: Gaussian negative log-likelihood of the standardised window per month (nats);
        kl: free-bits KL per month (sum over latent dims of max(KL_d, free_bits)) that enters the loss
        with weight ``beta`` (default ``config.beta``); kl_raw: the plain KL per month, for monitoring.
        """
        beta = self.config.beta if beta is None else float(beta)
        x, scenario = self._check_batch(x, scenario)
        mean, scale, mu, log_var = self._forward_full(x, scenario)
        B, T, D = x.shape
        L = self.decoder.unit_tril()
        u = (x - mean) / scale  # (B, T, D)
        eps = torch.linalg.solve_triangular(L, u.reshape(-1, D).T, upper=False).T  # L eps = u
        nll = 0.5 * (eps ** 2).sum(-1) + torch.log(scale).reshape(-1, D).sum(-1) + 0.5 * D * math.log(2 * math.pi)  # (B*T,)
        nll = nll.sum() / (B * T)
        kl_dim = 0.5 * (mu ** 2 + log_var.exp() - 1.0 - log_var).mean(0)  # (Z,) batch mean
        kl = torch.clamp(kl_dim, min=self.config.free_bits).sum() / T
        kl_raw = kl_dim.sum() / T
        drift = self._nonlinear_drift(x, mean, scenario)
        # month 0 is excluded: its "drift" is the decoder's model of where a path starts, not a change
        drift_pen = (drift[:, 1:] ** 2).sum(-1).mean()  # per month, summed over variables
        loss = nll + beta * kl + self.config.drift_penalty * drift_pen
        return {"loss": loss, "nll": nll, "kl": kl, "kl_raw": kl_raw, "drift": drift_pen}

    def _nonlinear_drift(self, x: torch.Tensor, mean: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        """The LSTM's part of the one-step mean (B, T, D), standardised: ``mean - x_prev - linear(x_prev)``
        (the linear part includes the scenario intercept).

        Why it is penalised (``config.drift_penalty``): teacher forcing fits each month's mean given the
        *true* past, where an unpenalised LSTM correction soaks up noise; run free for 60 months those
        corrections compound into slow, variable-specific wandering that the VAR backbone does not have.
        Measured on the shipped checkpoint before the penalty: scaling the LSTM drift by 1 / 0.5 / 0 at
        generation time gave a pooled-level correlation error of 0.077 / 0.061 / 0.029 (VAR(1): 0.027)
        with house-price growth's pooled sd at 1.47 / 1.03 / 0.96 historical sds, while scaling the
        innovation sd changed little (x 0.7: 0.069) -- the correlation gap is the drift's, not the
        (already full-covariance) per-step noise's. The ridge penalty is a prior that the nonlinear
        part is small unless the likelihood pays for it, so scenario / regime drift that explains the
        data survives and noise-fitting does not."""
        x_prev = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x[:, :-1]], dim=1)
        return mean - x_prev - self.decoder.linear_change(x_prev, scenario)

    # ------------------------------------------------------------------ generation
    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator(device=self.device)
        if seed is None:
            g.seed()
        else:
            g.manual_seed(torch_seed(int(seed)))
        return g

    def _cloud(self, s: torch.Tensor, start_target: torch.Tensor | None, endpoint: np.ndarray | None,
               pull: Mapping[str, float] | str | None, seq_length: int,
               by_month: dict[int, dict[int, tuple[float, float]]],
               g: torch.Generator) -> tuple[_Particles, LinearGuide | None]:
        """Fresh particles with labels ``s`` (P,): latents from the prior, backbone (per-particle pulls drawn
        from ``g``), empty paths; and the look-ahead guide for that backbone."""
        P, D, dev = s.shape[0], self.config.n_macro_vars, self.device
        z = torch.randn(P, self.config.latent_dim, generator=g, device=dev)  # prior N(0, I)
        backbone = self._particle_backbone(endpoint, pull, P, g)
        guide = self._guide({m: {j: v[0] for j, v in c.items()} for m, c in by_month.items()}, backbone)
        cloud = _Particles(z, s, backbone, start_target, torch.arange(P, device=dev),
                           torch.empty(P, seq_length, D, device=dev), torch.empty(P, seq_length, D, device=dev),
                           torch.zeros(P, dtype=torch.float64, device=dev))
        return cloud, guide

    def _scenario_draw(self, scenario: int | str | None, n: int, g: torch.Generator) -> torch.Tensor:
        if scenario is None:  # mixture at the training frequencies
            return torch.multinomial(self.scenario_freq, n, replacement=True, generator=g)
        if isinstance(scenario, str) or self.config.n_scenarios == len(SCENARIOS):
            idx = scenario_index(scenario)
        else:
            idx = int(scenario)
            if not 0 <= idx < self.config.n_scenarios:
                raise ConfigError(f"scenario must be in 0..{self.config.n_scenarios - 1}, got {scenario}")
        return torch.full((n,), idx, dtype=torch.long, device=self.device)

    @staticmethod
    def _check_sizes(seq_length: int, n_samples: int) -> None:
        for name, value in (("seq_length", seq_length), ("n_samples", n_samples)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    @torch.no_grad()
    @serial_torch()  # small step-by-step ops: one thread, no idle-thread spinning (creditsim.threads)
    def generate(self, scenario: int | str | None = 0, seq_length: int = 60, n_samples: int = 100, *,
                 seed: int | None = None, start: str = "auto") -> torch.Tensor:
        """Sample macro paths under a scenario.

        scenario: index or name (0 baseline, 1 adverse, 2 severely_adverse, 3 stagflation), or None for
        the mixture at the training frequencies. start: where month 0 comes from -- ``"history"``: the
        first month of a training window with that scenario label, drawn at random (the decoder's
        latent is then sampled given that start, see :meth:`generate_conditional`); ``"model"``: the
        decoder generates month 0 too; ``"auto"`` (default): history when the model holds a start bank
        (every trained model does), else model. Returns (n_samples, seq_length, n_vars) float32 on the
        model's device, real units (decimals), variables in ``config.variables`` order. The same
        ``seed`` gives the same paths.
        """
        return self.generate_conditional({}, seq_length=seq_length, n_samples=n_samples,
                                         scenario=scenario, seed=seed, start=start)

    def set_dispersion(self, factors: Sequence[float] | np.ndarray) -> None:
        """Set the ``(D,)`` generation-time factors on the innovation sd (``config.variables`` order;
        :func:`creditsim.macro.dispersion.calibrate_dispersion`); each finite in [0.25, 5]."""
        arr = np.asarray(factors, dtype=np.float64).reshape(-1)
        if arr.shape != (self.config.n_macro_vars,) or not np.isfinite(arr).all() or (arr < 0.25).any() or (arr > 5).any():
            raise ConfigError(f"dispersion: expected {self.config.n_macro_vars} factors in [0.25, 5], got {arr.tolist()!r:.200}")
        self.dispersion = torch.tensor(arr, dtype=self.x_mean.dtype, device=self.device)

    def set_start_bank(self, states: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> None:
        """Store historical starting months: states (N, D) real units, labels (N,) scenario indices."""
        states = torch.tensor(_to_numpy(states, np.float32)).reshape(-1, self.config.n_macro_vars)
        labels = torch.tensor(_to_numpy(labels, np.int64)).reshape(-1)
        if states.shape[0] != labels.shape[0]:
            raise ConfigError(f"start bank: {states.shape[0]} states but {labels.shape[0]} labels")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.config.n_scenarios):
            raise ConfigError(f"start bank labels must be in 0..{self.config.n_scenarios - 1}")
        self.start_states = states.to(self.device)
        self.start_labels = labels.to(self.device)

    def _parse_conditions(self, conditions: Mapping[str, Any], seq_length: int) -> dict[int, dict[int, tuple[float, float]]]:
        """{var: {'month', 'value'} | [..]} -> {month: {var_index: (standardised, real value)}} plus checks."""
        if not isinstance(conditions, Mapping):
            raise ConfigError(f"conditions must be a dict {{var_name: {{'month': int, 'value': float}}}}, "
                              f"got {type(conditions).__name__}")
        by_month: dict[int, dict[int, tuple[float, float]]] = {}
        variables = list(self.config.variables)
        x_min, x_max = self.x_min.double().cpu().numpy(), self.x_max.double().cpu().numpy()
        for var, spec in conditions.items():
            if var not in variables:
                raise ConfigError(f"conditions: unknown variable {var!r}; expected one of {variables}")
            j = variables.index(var)
            items = [spec] if isinstance(spec, Mapping) else spec
            if not isinstance(items, Sequence) or isinstance(items, str) or not items:
                raise ConfigError(f"conditions[{var!r}] must be {{'month': int, 'value': float}} or a non-empty list of them")
            for item in items:
                if not isinstance(item, Mapping) or set(item) != {"month", "value"}:
                    raise ConfigError(f"conditions[{var!r}]: each condition needs exactly the keys 'month' and 'value', got {item!r}")
                month, value = item["month"], item["value"]
                if isinstance(month, bool) or not isinstance(month, (int, np.integer)) or not 0 <= month < seq_length:
                    raise ConfigError(f"conditions[{var!r}]: month must be an integer in 0..{seq_length - 1}, got {month!r}")
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"conditions[{var!r}]: value must be a number, got {value!r}") from None
                if not math.isfinite(value):
                    raise ConfigError(f"conditions[{var!r}]: value must be finite, got {value!r}")
                month = int(month)
                prev = by_month.setdefault(month, {}).get(j)
                if prev is not None and prev[1] != value:
                    raise ConfigError(f"conditions[{var!r}]: two different values for month {month}")
                if self.log_mask[j] and value <= 0:
                    where = "the start (month 0)" if month == 0 else f"month {month}"
                    raise ConfigError(f"conditions[{var!r}]: value at {where} must be > 0 (this model works on the "
                                      f"log of {var}), got {value!r}")
                if not x_min[j] <= value <= x_max[j]:
                    warn(f"condition {var}={value:.4g} at month {month} is outside the training range "
                         f"[{x_min[j]:.4g}, {x_max[j]:.4g}]; the model extrapolates", ConditionRangeWarning)
                real = torch.zeros(len(variables), dtype=self.x_mean.dtype, device=self.device)
                real[j] = value
                std_value = float(self.normalize(real)[j])
                by_month[month][j] = (std_value, value)
        return by_month

    @torch.no_grad()
    @serial_torch()  # small step-by-step ops: one thread, no idle-thread spinning (creditsim.threads)
    def generate_conditional(self, conditions: Mapping[str, Any], seq_length: int = 60, n_samples: int = 100, *,
                             scenario: int | str | None = None, seed: int | None = None, start: str = "auto",
                             n_particles: int | None = None, endpoint: np.ndarray | None = None,
                             pull: Mapping[str, float] | str | None = None,
                             n_moves: int | None = None) -> torch.Tensor:
        """Sample paths that meet every condition exactly.

        conditions: ``{var_name: {'month': int, 'value': float}}`` or ``{var_name: [{...}, ...]}``;
        months are 0-based positions in the generated path, values real units (decimals).
        scenario: index / name, or None (default) to let the conditions pick among scenarios in
        proportion to their training frequency times how well they explain the conditions.
        start: as in :meth:`generate` (with ``"history"`` the start month is a historical one, drawn
        in proportion to how well it explains the conditions; a condition at month 0 overrides it).
        endpoint: optional ``(D,)`` real-unit levels (config order) the linear backbone rests at instead
        of its training means -- a shifting endpoint (Kozicki & Tinsley 2001, J. Monetary Econ. 47(3)),
        e.g. a recent 5-10 year average when rates have left their 1980-2019 range; None = as trained.
        pull: ``{variable: factor in [0, 1]}``, the share of the backbone's pull towards its resting
        level (and of its scenario drift) a variable keeps at generation time; 0 = a random walk in the
        backbone whose level also leaves the other equations; variables not named keep 1
        (:class:`creditsim.macro.backbone.GenerationBackbone`). ``"uniform"``: every path draws its own
        factor, common to all variables, uniformly on [0, 1] -- uncertainty about how fast the economy
        returns to the backbone's resting level, the out-of-time forecasting setting
        (:mod:`creditsim.macro.oot`). None = as trained (the scenario generator: stress scenarios are
        the trained drift, which a pull below 1 weakens).
        n_moves: Metropolis sweeps that *rejuvenate* the returned paths after the filter
        (:mod:`creditsim.macro.rejuvenation`); None (default) = :data:`~creditsim.macro.rejuvenation.REJUVENATION_MOVES`
        when a condition lies after month 0 (the anchors resample the particles again and again and the
        paths would share their early months), 0 when only month 0 is conditioned (one resampling; the
        paths' later months are independent draws anyway, and the scenario generator stays as calibrated).
        :attr:`last_rejuvenation` reports the sweeps.
        Returns (n_samples, seq_length, n_vars) float32 in real units.

        Method (sequential Monte Carlo with the conditions as observations): ``n_particles`` paths (default
        ``max(16 n_samples, 2048)`` with conditions; rounded to a multiple of ``n_samples``, and up to a
        multiple of the labels with prior mass when the conditions pick the label) are drawn with ``z`` and the
        scenario from the prior (the label: see below) and rolled forward month by month. At a conditioned month
        the decoder's one-step distribution is Gaussian, ``N(mu_t, Sigma_t)``; the conditioned variables are set
        to their targets and the other variables of that month are drawn from the exact Gaussian conditional
        ``x_~J | x_J = c`` (co-moving variables follow the condition with the learned shock correlation), with
        importance weight ``N(c_J; mu_J, Sigma_JJ)``. Before an anchor the moves are *guided*
        (:mod:`creditsim.macro.guidance`): each month's Gaussian is tilted towards the coming anchors by their
        probability under the decoder's linear VAR(1) backbone, and the weights correct exactly for the tilt, so
        paths head for a tail anchor from the start instead of a few lucky particles carrying all the weight at
        the anchor month. Particles are resampled at conditioned months and whenever the effective sample size
        falls below :data:`RESAMPLE_ESS` (0.7); :attr:`last_ess` keeps the smallest ESS fraction seen. Measured on the shipped model
        from 2025-09, three joint tail anchors (unemployment 9 % at month 18, HY spread 900 bp at month 12,
        house prices -15 % y/y at month 18), 500 paths: smallest ESS 0.01 % of the particles and 4 distinct
        histories to month 12 without guidance; guided, with severely adverse dynamics and 8,000 particles,
        smallest ESS 40-42 % (seeds 0-2) and about 390 distinct histories at month 6 before the rejuvenation
        moves (all 500 after them). With ``scenario=None``, conditions after month 0 and ``start="model"`` (or
        no start bank) the anchors also pick the dynamics label: each label gets its own block of particles,
        filtered on its own and estimating the label's evidence; a pilot pass with equal blocks sizes the blocks
        of the real pass by the label posterior, and the returned paths are drawn across the blocks in
        proportion to it (:mod:`creditsim.macro.strata`, which also says what the ESS means there;
        :attr:`last_label_posterior`). The same three anchors, 300 paths: severely adverse 97-98 % of the
        posterior, smallest ESS 0.52-0.57 over seeds 0-39 and 0.49-0.57 over seeds 100-119 (given the label
        0.58-0.60). The history of that figure: 39-40 % at seeds 0-2 on an older model; re-measured 2026-12 on
        today's, below 0.30 at seeds 5 (0.294), 23 (0.274) and 26 (0.024, where the pilot pass missed the
        adverse label, which then took a quarter of the posterior from its small defensive block -- such a
        pass now gets one more, its blocks sized by the pooled posterior,
        :meth:`~creditsim.macro.strata.LabelStrata.misallocated`); at seed 5 the month before the month-18
        anchors had taken a block to 0.29 before the 0.5 resampling rule acted, which :data:`RESAMPLE_ESS`
        = 0.7 splits over two resamplings (seed 23's low point was month 1, and a different pilot stream
        gives 0.55 there now). When month 0 is the anchored start state, the first guided
        month weighs each particle's latent by how well it explains every coming anchor; far-tail anchors
        made that step the bottleneck (unemployment 10 % at month 12, y/y GDP -5 % at month 9, house prices
        -20 % at month 24: ESS 0.03-0.08 at month 1, seeds 0-19), so the latents are first tempered towards
        it with Metropolis moves (:mod:`creditsim.macro.tempering`, :attr:`last_tempering`; needs
        ``start="model"`` or no start bank): 0.32-0.50 (the issue's triple, where it runs 5-6 steps too:
        0.55-0.58 at seeds 0-9). The latent alone left the collapse one month on (month 2: a reviewer's house
        price / 10-year / unemployment triple 0.20-0.22), so the month-1 innovations are tempered with it, to
        the month-2 target (:data:`~creditsim.macro.tempering.TEMPER_MONTHS`): 0.36-0.41 there, the issue's
        triple 0.54-0.57 (seeds 100-119). An anchored month later in the path can collapse the same way (IG
        400 bp m9 / 10-year 1 % m15 / default 7 % m18: 0.19 at month 15, seed 5), so before an anchored
        month whose one-step ESS would fall below :data:`~creditsim.macro.tempering.WINDOW_TRIGGER` the
        previous month's innovations are tempered towards it (:attr:`last_windows`): 0.56 there; the 2026
        supervisory tables 0.12-0.40 -> 0.50-0.57. The tempered evidence also moved the far-tail triple's
        label posterior: severely adverse 0.69-0.99 -> 0.52-0.80
        at 300 paths; a reviewer's 24,000-particle runs gave 0.66-0.70 tempered and 0.94 / 0.78 untempered at
        24,000 / 96,000 particles, so the untempered evidence had been overconfident. 400 paths
        without rejuvenation, 297 / 316 / 333 distinct histories
        at months 1 / 6 / 11 (five seeds). Drawn with the latent from the label's prior, as before, the ESS was
        7-8 % at month 1 (the label's posterior concentration) with 180 / 322 / 336 histories. With a start bank
        (``start="auto"`` on the shipped model, ``"history"``) labels are still drawn from the prior: each
        label's starts come from its own historical months. With dynamics that fight the anchors (baseline
        forced to a 9 % unemployment) the first move selects the latent ``z`` (ESS 3 %): posterior concentration
        on the latent, after which the paths stay diverse. A historical start is the same mechanism at month 0
        with all variables observed (16 latent candidates per path, resampled within the path's group). After
        de-standardisation the conditioned entries are written with the exact target so float rounding never
        breaks ``|value - target| < 1e-6``. One warning per call names the months whose resampling's effective
        sample size fell below 1 % of the particles.

        Rejuvenation: every resampling at an anchor copies some particles over others, so with anchors
        every quarter (a supervisory table) the returned paths descended from a handful of early ancestors
        (``fed:2026:baseline``, 500 paths, 2,048 particles: 3 / 58 / 133 distinct histories to months
        1 / 6 / 12, mean of three seeds) and one run's spread of the unanchored variables was far too small
        (default rate at month 12: 7.7 bp against 17-20 bp). After the filter each returned path runs its
        own Metropolis chain on its latent and innovations (preconditioned Crank-Nicolson proposals,
        accepted by the ratio of the paths' whole importance weights; :mod:`creditsim.macro.rejuvenation`),
        which leaves the conditional law exact and separates the copies: 500 / 500 / 500 distinct histories,
        default-rate sd 14.6 bp, acceptance about 30 %, about 0.5 ms of CPU per path and sweep.
        ``last_ancestors`` still records the filter's genealogy (moved paths stay correlated with their
        ancestor: the clusters stay conservative). Floors (rates >= 0) are applied
        to the free variables after each move, as in :meth:`generate`.

        Raises ConfigError for unknown variables, months outside ``0..seq_length-1``, non-finite or
        contradictory values; warns (:class:`ConditionRangeWarning`) for values outside the training
        range.
        """
        self._check_sizes(seq_length, n_samples)
        if n_moves is not None and (isinstance(n_moves, bool) or not isinstance(n_moves, (int, np.integer)) or n_moves < 0):
            raise ConfigError(f"n_moves must be None or an integer >= 0, got {n_moves!r}")
        if start not in ("auto", "history", "model"):
            raise ConfigError(f"start must be 'auto', 'history' or 'model', got {start!r}")
        by_month = self._parse_conditions(conditions, seq_length)
        has_bank = self.start_states.shape[0] > 0
        if start == "history" and not has_bank:
            raise ConfigError("start='history' needs a trained model with a start bank; use start='model'")
        use_bank = start == "history" or (start == "auto" and has_bank)
        ahead = any(m > 0 for m in by_month)  # an anchor after month 0: guided, tempered, moved
        g = self._generator(seed)
        if by_month:
            P = int(n_particles or max(16 * n_samples, 2048))
        else:
            P = 16 * n_samples if use_bank else n_samples
        k = P // n_samples  # particles per group (groups share a historical start)
        if k < 1:
            raise ConfigError(f"n_particles must be >= n_samples ({n_samples}), got {P}")
        P = k * n_samples
        strata = None  # the conditions pick the dynamics label: blocks of particles per label
        labels = (self.scenario_freq > 0).nonzero().squeeze(1)
        if scenario is None and not use_bank and ahead and labels.shape[0] > 1:
            strata = LabelStrata.equal(labels, self.scenario_freq[labels], P)
            P = strata.n_particles
        self.last_n_particles = P
        was_training = self.training
        self.eval()
        try:
            floor = self.lower_bounds()  # (D,) real units, -inf where unbounded
            floor_std = self.normalize(floor)
            if strata is not None:  # a pilot pass sizes the blocks by its label posterior, then the real one
                pilot, guide = self._cloud(strata.particle_labels, None, endpoint, pull, seq_length, by_month, g)
                log_w = self._filter(pilot, by_month, guide, k, floor_std, g, strata)[1]
                strata = strata.allocated(log_w)
                s, start_target = strata.particle_labels, None
            else:
                s, start_target = self._scenario_draw(scenario, n_samples, g), None  # one scenario per group
                if use_bank:
                    start_target = self.normalize(self._draw_starts(s, g))  # (n, D) standardised
                    start_target = start_target.repeat_interleave(k, dim=0)  # (P, D)
                s = s.repeat_interleave(k)
            cloud, guide = self._cloud(s, start_target, endpoint, pull, seq_length, by_month, g)
            early = n_samples if KEEP_EARLY and k > 1 and not ahead else None
            cloud, log_w, ess = self._filter(cloud, by_month, guide, k, floor_std, g, strata, early)
            if strata is not None and strata.misallocated(log_w):  # the pilot missed a label: one more pass
                strata = strata.allocated(log_w)
                cloud, guide = self._cloud(strata.particle_labels, None, endpoint, pull, seq_length, by_month, g)
                cloud, log_w, ess = self._filter(cloud, by_month, guide, k, floor_std, g, strata)
            keep = self._final_selection(log_w, ess, bool(by_month), n_samples, k, g, seq_length - 1, strata,
                                         selected=early is not None)
            chosen = cloud.select(keep)
            self.last_ancestors = chosen.eve.cpu().numpy().astype(np.int64)
            if n_moves is None:  # anchors after month 0 resample the particles again and again
                n_moves = REJUVENATION_MOVES if ahead else 0
            relabel = None
            if scenario is None and not use_bank:  # the conditions pick the dynamics: let the moves re-pick them
                def relabel(n: int, gen: torch.Generator) -> torch.Tensor:
                    return self._scenario_draw(None, n, gen)
            chosen = self._rejuvenate(chosen, n_moves if ess else 0, by_month, guide, floor_std, g, relabel)
            self.last_scenarios = chosen.s.cpu().numpy().astype(np.int64)
            path = chosen.path
            real = torch.maximum(self.denormalize(path), floor)  # float rounding at the bound
            for t, conds in by_month.items():
                for j, (_, value) in conds.items():
                    real[:, t, j] = value
            _warn_degeneracy(ess, P, moved=bool(self.last_rejuvenation.acceptance))
            return real
        finally:
            self.train(was_training)

    def _filter(self, cloud: _Particles, by_month: dict[int, dict[int, tuple[float, float]]],
                guide: LinearGuide | None, k: int, floor_std: torch.Tensor,
                g: torch.Generator, strata: LabelStrata | None = None,
                early: int | None = None) -> tuple[_Particles, torch.Tensor, dict[int, float]]:
        """The particle filter over all months: ``(particles at the end, log-weights since the last
        resampling (P,) float64, {month: ESS fraction of its resampling})``; k particles per group. With
        ``strata`` each label's block is resampled on its own (also when its own ESS falls below
        :data:`RESAMPLE_ESS`) and
        the ESS is recorded there instead (:meth:`LabelStrata.ess_fractions`). ``early``: with no anchor after
        month 0, the number of paths to keep after it (:meth:`_keep_early`)."""
        P, T, D = cloud.path.shape
        s_emb = self.scenario_emb(cloud.s)
        state = self.decoder.initial_state(cloud.z, s_emb)
        x_prev = torch.zeros(P, 1, D, device=cloud.path.device)
        log_w = torch.zeros(P, dtype=torch.float64, device=cloud.path.device)  # since the last resampling
        log_psi = torch.zeros_like(log_w)  # the twist at the previous month
        ess: dict[int, float] = {}
        # month -> (beta, whether its twist divisor psi_{t-1} is in it): the share of a tempered month's weight
        # already paid (creditsim.macro.tempering)
        paid: dict[int, tuple[float, bool]] = {}
        fixed: dict[int, torch.Tensor] = {}  # month -> innovations the tempering chose
        self.last_tempering, self.last_windows = None, []
        for t in range(T):
            eps = fixed.pop(t) if t in fixed else torch.randn(P, D, generator=g, device=cloud.path.device)
            if t == 1 and guide is not None and cloud.start_target is None and len(by_month.get(0, {})) == D:
                tempered = self._temper(cloud, s_emb, by_month, guide, floor_std, g, strata, eps)
                if tempered is not None:
                    cloud, s_emb, state, paid, fixed = tempered
                    eps = fixed.pop(1, eps)
            elif guide is not None and 1 <= t < T - 1 and t + 1 in by_month and t + 1 not in paid:
                tempered = self._temper_window(t, cloud, s_emb, state, x_prev, log_psi, log_w, eps, by_month, guide,
                                               floor_std, g, strata, t in paid)
                if tempered is not None:
                    cloud, s_emb, state, x_prev, log_psi, eps, more = tempered
                    paid, log_w = {**paid, **more}, torch.zeros_like(log_w)
            user = by_month.get(t, {})
            x_t, step_w, twist, state = self._month(t, state, x_prev, cloud.z, cloud.s, s_emb, cloud.backbone, eps,
                                                    user, guide, cloud.start_target if t == 0 else None, floor_std)
            cloud.log_w_path = cloud.log_w_path + step_w - log_psi
            idx = None
            if t == 0 and cloud.start_target is not None:  # a historical start: pick the latent within the group
                idx, log_w = self._resample_groups(step_w, k, g), log_w.zero_()
            else:
                log_w = log_w + step_w - log_psi
                if t in paid:  # month 1's divisor psi_0 is common to a block: not tempered
                    beta, with_psi = paid.pop(t)
                    log_w = log_w - beta * (step_w - (log_psi if with_psi else 0.0))
            log_psi = torch.zeros_like(log_w) if twist is None else twist
            if idx is None and strata is not None:  # zeroes the resampled blocks' log_w in place
                idx = strata.resample(t, log_w, g, every=bool(user), threshold=RESAMPLE_ESS if twist is not None else None)
            elif idx is None and (user or (twist is not None and self._ess(log_w) < RESAMPLE_ESS * P)):
                ess[t] = self._ess(log_w) / P
                idx, log_w = self._resample(log_w, g), log_w.zero_()
            cloud.noise[:, t] = eps
            if idx is not None:
                cloud, x_t, s_emb, log_psi = cloud.select(idx), x_t[idx], s_emb[idx], log_psi[idx]
                state = (state[0][:, idx], state[1][:, idx])
                fixed = {m: e[idx] for m, e in fixed.items()}
            cloud.path[:, t] = x_t
            x_prev = x_t[:, None, :]
            if t == 0 and early is not None:  # every later weight is 1: roll on only the paths returned
                cloud, state, x_prev, s_emb, log_w, log_psi, fixed = self._keep_early(
                    early, bool(by_month), k, cloud, state, x_prev, s_emb, log_w, log_psi, T, g)
        return cloud, log_w, ess

    @staticmethod
    def _keep_early(n: int, conditioned: bool, k: int, cloud: _Particles, state: tuple[torch.Tensor, torch.Tensor],
                    x_prev: torch.Tensor, s_emb: torch.Tensor, log_w: torch.Tensor, log_psi: torch.Tensor, T: int,
                    g: torch.Generator):
        """After month 0 of a draw with no anchor ahead (no twist, so every later weight is 1): the n particles
        :meth:`_final_selection` would return, chosen now, so months 1..T-1 roll n paths instead of P
        (``simulate``'s VAE paths: 4 latent candidates per path; ``generate`` from the start bank: 16).
        Months 1..T-1's innovations are drawn for all P particles first, then the selection's permutation
        (``conditioned``; else one particle per group of k), as the full roll draws them: the stream and every
        returned path are unchanged. Returns the selected ``(cloud, state, x_prev, s_emb, log_w, log_psi,
        {month: innovations (n, D)})``."""
        P, D, dev = x_prev.shape[0], x_prev.shape[2], x_prev.device
        if conditioned:  # the permutation follows the draws: all of them are held ((T-1) P D floats)
            rest = [torch.randn(P, D, generator=g, device=dev) for _ in range(1, T)]
            keep = torch.randperm(P, generator=g, device=dev)[:n]
            fixed = {t: e[keep] for t, e in enumerate(rest, start=1)}
        else:  # one particle per group, known before the draws: each month's rows kept as drawn
            keep = torch.arange(n, device=dev) * k
            fixed = {t: torch.randn(P, D, generator=g, device=dev)[keep] for t in range(1, T)}
        return (cloud.select(keep), (state[0][:, keep], state[1][:, keep]), x_prev[keep], s_emb[keep], log_w[keep],
                log_psi[keep], fixed)

    def _temper(self, cloud: _Particles, s_emb: torch.Tensor, by_month: dict[int, dict[int, tuple[float, float]]],
                guide: LinearGuide, floor_std: torch.Tensor, g: torch.Generator, strata: LabelStrata | None,
                eps: torch.Tensor):
        """Before month 1 of a draw whose month 0 is fully anchored: the latents and the innovations of months
        1 .. H-1 tempered towards the month-H target (:mod:`creditsim.macro.tempering`, H =
        :data:`~creditsim.macro.tempering.TEMPER_MONTHS`). Returns ``(cloud, s_emb, LSTM state after month 0,
        {month: (beta, psi in it)}: the share of months 1..H's weights already paid, {month: innovations (P,
        D)} for months 1..H-1)``, or None when one step keeps enough particles (nothing drawn). Records
        :attr:`last_tempering`; a label block's evidence gains its tempering steps'."""
        P, T, D = cloud.path.shape
        H = max(1, min(TEMPER_MONTHS, T - 1))
        zero = torch.zeros(P, D, device=cloud.path.device)
        Z = cloud.z.shape[1]

        def month0(z: torch.Tensor, idx: torch.Tensor):
            s, emb = cloud.s[idx], s_emb[idx]
            backbone = None if cloud.backbone is None else cloud.backbone.select(idx)
            state = self.decoder.initial_state(z, emb)
            x0, w0, _, state = self._month(0, state, zero[:, None], z, s, emb, backbone, zero, by_month[0], guide,
                                           None, floor_std)
            return x0, w0, state, (s, emb, backbone)

        def log_parts(v: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = v[:, :Z]
            x, w0, state, (s, emb, backbone) = month0(z, idx)
            shocks = [v[:, Z + (t - 1) * D:Z + t * D] for t in range(1, H)]
            return w0, self._months_weight(1, H, state, x, 0.0, z, s, emb, backbone, shocks, by_month, guide,
                                           floor_std)

        bounds = [0, P] if strata is None else strata.bounds
        # month 1's innovations as the filter drew them (eps (P, D)), so nothing else is drawn when one step
        # suffices; months 2 .. H-1's drawn here
        more = torch.randn(P, max(H - 2, 0) * D, generator=g, device=cloud.z.device)
        start = torch.cat([cloud.z, eps if H > 1 else eps[:, :0], more], 1)
        res = temper_latents(start, log_parts, bounds, g)
        if res is None:
            return None
        self.last_tempering = (res.steps, res.acceptance, res.min_ess)
        if strata is not None:
            strata.log_z += res.log_evidence
        z = res.z[:, :Z].contiguous()
        fixed = {t: res.z[:, Z + (t - 1) * D:Z + t * D].contiguous() for t in range(1, H)}
        cloud = replace(cloud.select(res.idx), z=z, log_w_path=res.base.clone())
        s_emb = s_emb[res.idx]
        state = month0(z, res.idx)[2]
        paid = {t: (res.beta, t > 1) for t in range(1, H + 1)}  # beta short of 1 only after _MAX_STEPS
        return cloud, s_emb, state, paid, fixed

    def _temper_window(self, t: int, cloud: _Particles, s_emb: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                       x_prev: torch.Tensor, log_psi: torch.Tensor, log_w: torch.Tensor, eps: torch.Tensor,
                       by_month: dict[int, dict[int, tuple[float, float]]], guide: LinearGuide,
                       floor_std: torch.Tensor, g: torch.Generator, strata: LabelStrata | None,
                       month_paid: bool):
        """Before month ``t + 1``, anchored: month t's innovations (``eps`` (P, D), as drawn) tempered towards
        month t+1's target when one step would keep less than :data:`~creditsim.macro.tempering.WINDOW_TRIGGER`
        of a block (:mod:`creditsim.macro.tempering`, the anchored months); the weights ``log_w`` (P,) since
        the last resampling are paid at its first step. Month t's own weight does not depend on its
        innovations; it is in the target unless ``month_paid`` (an earlier stage paid it). Returns ``(cloud,
        s_emb, state, x_prev, log_psi, innovations (P, D), {month: (beta, True)} paid)`` resampled, or None
        (nothing drawn). Appends ``(t, steps, acceptance, smallest step ESS)`` to :attr:`last_windows`; label
        blocks gain its evidence."""
        def log_parts(v: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            backbone = None if cloud.backbone is None else cloud.backbone.select(idx)
            lik = self._months_weight(t, 2, (state[0][:, idx], state[1][:, idx]), x_prev[idx][:, 0], log_psi[idx],
                                      cloud.z[idx], cloud.s[idx], s_emb[idx], backbone, [v], by_month, guide,
                                      floor_std, first_paid=month_paid)
            return torch.zeros_like(lik), lik

        bounds = [0, eps.shape[0]] if strata is None else strata.bounds
        res = temper_latents(eps, log_parts, bounds, g, log_w0=log_w, trigger=WINDOW_TRIGGER)
        if res is None:
            return None
        self.last_windows.append((t, res.steps, res.acceptance, res.min_ess))
        if strata is not None:
            strata.log_z += res.log_evidence
        i = res.idx
        paid = {m: (res.beta, True) for m in ([t + 1] if month_paid else [t, t + 1])}
        return cloud.select(i), s_emb[i], (state[0][:, i], state[1][:, i]), x_prev[i], log_psi[i], res.z, paid

    def _months_weight(self, t0: int, months: int, state: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
                       log_psi: torch.Tensor | float, z: torch.Tensor, s: torch.Tensor, s_emb: torch.Tensor,
                       backbone: GenerationBackbone | None, shocks: list[torch.Tensor],
                       by_month: dict[int, dict[int, tuple[float, float]]], guide: LinearGuide,
                       floor_std: torch.Tensor, first_paid: bool = False) -> torch.Tensor:
        """The filter's log weight (B,) float64 of months t0 .. t0 + months - 1 for B paths, from their LSTM
        state and month t0 - 1's draw x (B, D): the sum of ``log Z_t - log psi_{t-1}`` (log_psi: the twist at
        t0 - 1 (B,), or 0.0), month t's innovations ``shocks[t - t0]`` (B, D) -- the last month's normaliser
        needs none. first_paid: month t0's term left out (an earlier stage paid it; it does not depend on
        the shocks). The tempering stages' target (:mod:`creditsim.macro.tempering`)."""
        lik = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        zero = torch.zeros_like(x)
        for i in range(months):
            t = t0 + i
            x, w, twist, state = self._month(t, state, x[:, None], z, s, s_emb, backbone,
                                             shocks[i] if i < len(shocks) else zero, by_month.get(t, {}), guide,
                                             None, floor_std)
            if not (first_paid and i == 0):
                lik = lik + w - log_psi
            log_psi = 0.0 if twist is None else twist
        return lik

    def _rejuvenate(self, chosen: _Particles, n_moves: int, by_month: dict[int, dict[int, tuple[float, float]]],
                    guide: LinearGuide | None, floor_std: torch.Tensor, g: torch.Generator,
                    relabel: Callable[[int, torch.Generator], torch.Tensor] | None = None) -> _Particles:
        """The returned particles after ``n_moves`` pCN sweeps (none: as the filter left them); relabel draws
        proposal labels from their prior when the conditions pick the dynamics; records :attr:`last_rejuvenation`."""
        self.last_rejuvenation = RejuvenationReport()
        if n_moves == 0:
            return chosen

        def rollout(z: torch.Tensor, noise: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self._rollout(z, noise, s, chosen.backbone, chosen.start_target, by_month, guide, floor_std)
        chains, self.last_rejuvenation = pcn_sweeps(
            Chains(chosen.z, chosen.noise, chosen.path, chosen.log_w_path, chosen.s), rollout, n_moves, g, relabel)
        return replace(chosen, z=chains.z, noise=chains.noise, path=chains.path, log_w_path=chains.log_w, s=chains.s)

    def _month(self, t: int, state: tuple[torch.Tensor, torch.Tensor], x_prev: torch.Tensor, z: torch.Tensor,
               s: torch.Tensor, s_emb: torch.Tensor, backbone: GenerationBackbone | None, eps: torch.Tensor,
               user: dict[int, tuple[float, float]], guide: LinearGuide | None, start_target: torch.Tensor | None,
               floor_std: torch.Tensor):
        """Month ``t`` of B paths given their past: ``(x_t (B, D) after the floors, log normaliser of the move
        (B,) float64, twist log psi_t (B,) float64 of the draw before the floors (None with no anchor
        ahead), LSTM state)``.

        x_prev (B, 1, D) standardised; eps (B, D) the month's innovations; user the month's conditions;
        start_target (B, D) a historical start (month 0 only), whose normaliser is the start's density."""
        P = x_prev.shape[0]
        first = torch.full((P, 1, 1), 1.0 if t == 0 else 0.0, device=x_prev.device)
        out, state = self.decoder.lstm(self.decoder.step_inputs(x_prev, first, z, s_emb), state)
        mean, scale = self.decoder.emit(out, x_prev, s)  # (B, 1, D) each
        mean, scale = mean[:, 0], scale[:, 0] * self.dispersion
        if backbone is not None and t > 0:  # month 0 follows no real month: the rewrite governs moves
            mean = mean + backbone.correction(x_prev[:, 0], s)
        msg = None
        if guide is not None:  # the particle's own drift beyond the backbone enters its twist (guidance.DRIFT_DECAY)
            own = mean.double() - (row_product(x_prev[:, 0].double(), guide.A) + guide.drift[s]) if t > 0 else None
            msg = guide.message(t, scale.double() ** 2, own)
        x_t, step_w = self._move(t, mean, scale, eps, user, msg, start_target, s)
        # the twist is part of the proposal's density, which is over the draw before the floor: evaluated
        # after it, the weights were not exact wherever a rate sat at zero (fed severe: 38 % of particle-months)
        twist = None if msg is None else log_twist(x_t.double(), s, msg)
        if start_target is not None and twist is not None:
            # an observed historical start with anchors ahead: the start's resampling must weigh the twist that
            # month 1 divides out (without it the weights were off by psi_0, which varies with the latent)
            step_w = step_w + twist
        free = [j for j in range(mean.shape[1]) if j not in user]  # conditioned entries stay exact
        x_t[:, free] = torch.maximum(x_t[:, free], floor_std[free])
        return x_t, step_w, twist, state

    def _rollout(self, z: torch.Tensor, noise: torch.Tensor, s: torch.Tensor, backbone: GenerationBackbone | None,
                 start_target: torch.Tensor | None, by_month: dict[int, dict[int, tuple[float, float]]],
                 guide: LinearGuide | None, floor_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The guided sampler as a deterministic map: latent z (B, Z) and innovations noise (B, T, D) ->
        (path (B, T, D) standardised, the path's whole log importance weight (B,) float64), no resampling."""
        B, T, D = noise.shape
        s_emb = self.scenario_emb(s)
        state = self.decoder.initial_state(z, s_emb)
        x_prev = torch.zeros(B, 1, D, device=noise.device)
        path = torch.empty_like(noise)
        log_w = torch.zeros(B, dtype=torch.float64, device=noise.device)
        log_psi = torch.zeros_like(log_w)
        for t in range(T):
            x_t, step_w, twist, state = self._month(t, state, x_prev, z, s, s_emb, backbone, noise[:, t], by_month.get(t, {}),
                                                    guide, start_target if t == 0 else None, floor_std)
            log_w = log_w + step_w - log_psi
            log_psi = torch.zeros_like(log_w) if twist is None else twist
            path[:, t] = x_t
            x_prev = x_t[:, None, :]
        return path, log_w

    def _move(self, t: int, mean: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor,
              user: dict[int, tuple[float, float]], msg, start_target: torch.Tensor | None,
              s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One month's move of the P particles: ``(x_t (P, D), log normaliser (P,) float64)`` -- the numerator
        of the move's importance weight (zeros for a free move); start_target (P, D): month 0 observed."""
        L = self.decoder.unit_tril()  # (D, D)
        if start_target is not None:
            target = start_target.clone()
            for j, (std_value, _) in user.items():
                target[:, j] = std_value
            x_t, step_w = self._conditional_step(mean, scale, L, list(range(mean.shape[1])), target, eps)
            return x_t, step_w.double()
        J = sorted(user)
        if msg is not None:  # an anchor lies ahead: the twisted (guided) move
            return self._twisted_step(mean, scale, L, J, user, eps, s, msg)
        if user:
            target = torch.tensor([user[j][0] for j in J], dtype=mean.dtype, device=mean.device).expand(mean.shape[0], -1)
            x_t, step_w = self._conditional_step(mean, scale, L, J, target, eps)
            return x_t, step_w.double()
        zero = torch.zeros(mean.shape[0], dtype=torch.float64, device=mean.device)
        return mean + scale * row_product(eps, L), zero  # (P, D): diag(sigma) L eps, fixed-order sums

    def _final_selection(self, log_w: torch.Tensor, ess: dict[int, float], conditioned: bool, n_samples: int,
                         k: int, g: torch.Generator, last_month: int, strata: LabelStrata | None = None,
                         selected: bool = False) -> torch.Tensor:
        """Indices (n_samples,) of the returned particles: a resampling by the weights left after the last
        move, then a random subset (equally weighted particles); records :attr:`last_ess`. With ``strata``
        the resampling weighs every label's block by its evidence (labels in posterior proportion) and
        records :attr:`last_label_posterior`. ``selected``: the filter already kept the returned particles
        (:meth:`_keep_early`), in order."""
        P = log_w.shape[0]
        pick = torch.arange(P, device=log_w.device)
        self.last_label_posterior = self.last_label_passes = None
        if strata is not None:
            ess.update(strata.ess_fractions(log_w, last_month))
            post = np.zeros(self.config.n_scenarios)
            post[strata.labels.cpu().numpy()] = strata.posterior(log_w).cpu().numpy()
            self.last_label_posterior = post
            self.last_label_passes = np.zeros((2, self.config.n_scenarios))
            self.last_label_passes[:, strata.labels.cpu().numpy()] = strata.pass_posteriors(log_w).cpu().numpy()
            pick = self._resample(strata.final_log_w(log_w), g)
        elif conditioned and self._ess(log_w) < P * (1 - 1e-9):
            ess[last_month] = min(ess.get(last_month, 1.0), self._ess(log_w) / P)
            pick = self._resample(log_w, g)
        # the tempering stages' resamplings count too
        stages = [w[3] for w in self.last_windows]
        stages += [] if self.last_tempering is None else [self.last_tempering[2]]
        self.last_ess = min([*ess.values(), *stages], default=1.0)
        if selected:
            return pick
        if conditioned:
            return pick[torch.randperm(P, generator=g, device=log_w.device)[:n_samples]]
        return torch.arange(n_samples, device=log_w.device) * k  # one particle per group keeps the drawn starts

    def generation_backbone(self, endpoint: np.ndarray | None = None,
                            pull: Mapping[str, float] | None = None) -> GenerationBackbone | None:
        """The backbone rewritten for generation (:mod:`creditsim.macro.backbone`), or None when it is
        the trained one (no endpoint, no pull below 1) or the model has none.

        endpoint: (D,) real-unit resting levels, config order; pull: ``{variable: factor in [0, 1]}``,
        or ``"uniform"`` (factors 1 here; :meth:`generate_conditional` draws one per path).
        Raises ConfigError for an unknown variable, a factor outside [0, 1] or an endpoint of the wrong
        shape."""
        if pull == "uniform":
            factors = torch.ones(self.config.n_macro_vars, dtype=self.x_mean.dtype, device=self.device)
        else:
            factors = self._pull_factors(pull)
        if self.decoder.linear_ar is None:
            if endpoint is not None or factors is not None:
                raise ConfigError("endpoint / pull: this MacroVAE has no linear backbone (config.linear_ar=False)")
            return None
        if endpoint is None and factors is None:
            return None
        W, b = self.decoder.linear_ar.weight, self.decoder.linear_ar.bias
        drift = self.decoder.scenario_drift
        if endpoint is None:  # the trained resting level: W r + b + c_0 = 0
            rest = torch.linalg.solve(W.double(), -(b + drift[0]).double()).to(W.dtype)
        else:
            arr = np.asarray(endpoint, dtype=np.float64).reshape(-1)
            if arr.shape != (self.config.n_macro_vars,) or not np.isfinite(arr).all():
                raise ConfigError(f"endpoint: expected {self.config.n_macro_vars} finite levels in config order, "
                                  f"got {arr.tolist()!r:.200}")
            rest = self.normalize(torch.as_tensor(arr, dtype=W.dtype, device=self.device))
        f = torch.ones_like(b) if factors is None else factors
        return GenerationBackbone(W, b, drift, rest, f)

    def _particle_backbone(self, endpoint: np.ndarray | None, pull: Mapping[str, float] | str | None, P: int,
                           g: torch.Generator) -> GenerationBackbone | None:
        """:meth:`generation_backbone` for P particles: with ``pull="uniform"`` each particle draws its
        factor (common to all variables) from the run's stream ``g``."""
        backbone = self.generation_backbone(endpoint, pull)
        if pull == "uniform":
            u = torch.rand(P, 1, generator=g, device=self.device)
            backbone = backbone.with_pull(u.expand(P, self.config.n_macro_vars))
        return backbone

    def _pull_factors(self, pull: Mapping[str, float] | None) -> torch.Tensor | None:
        """(D,) pull factors in config order (1 for variables not named), or None when none is below 1."""
        if pull is None:
            return None
        if not isinstance(pull, Mapping):
            raise ConfigError(f"pull must be a dict {{variable: factor in [0, 1]}} or 'uniform', got {pull!r:.80}")
        unknown = [v for v in pull if v not in self.config.variables]
        if unknown:
            raise ConfigError(f"pull: unknown macro variable(s) {unknown}; expected names from {list(self.config.variables)}")
        bad = {v: x for v, x in pull.items() if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= float(x) <= 1.0}
        if bad:
            raise ConfigError(f"pull: factors must be numbers in [0, 1], got {bad}")
        f = [float(pull.get(v, 1.0)) for v in self.config.variables]
        if all(x == 1.0 for x in f):
            return None
        return torch.tensor(f, dtype=self.x_mean.dtype, device=self.device)

    def _guide(self, anchors: dict[int, dict[int, float]],
               backbone: GenerationBackbone | None = None) -> LinearGuide | None:
        """The look-ahead guide (:mod:`creditsim.macro.guidance`) for anchors after month 0, or None;
        backbone: the rewritten backbone generation uses (None: as trained)."""
        if not any(m > 0 for m in anchors):
            return None
        D, dev = self.config.n_macro_vars, self.device
        A = torch.eye(D, dtype=torch.float64, device=dev)
        drift = torch.zeros(self.config.n_scenarios, D, dtype=torch.float64, device=dev)
        if self.decoder.linear_ar is not None:  # the frozen backbone: x_t = (I + B) x_{t-1} + c + c_s
            A = A + self.decoder.linear_ar.weight.double()
            drift = drift + self.decoder.linear_ar.bias.double() + self.decoder.scenario_drift.double()
        if backbone is not None:
            A, drift = backbone.linear()
        return LinearGuide(A, drift, self.decoder.unit_tril().double(), anchors)

    @staticmethod
    def _twisted_step(mean: torch.Tensor, scale: torch.Tensor, L: torch.Tensor, J: list[int],
                      user: dict[int, tuple[float, float]], eps: torch.Tensor, s: torch.Tensor,
                      msg) -> tuple[torch.Tensor, torch.Tensor]:
        """One guided move in float64: x (P, D) in the model's dtype, log normaliser (P,) float64."""
        sd, L = scale.double(), L.double()
        cov = (L @ L.T)[None] * (sd[:, :, None] * sd[:, None, :])  # (P, D, D) diag(sd) L L' diag(sd), elementwise
        target = torch.tensor([[user[j][0] for j in J]], dtype=torch.float64, device=mean.device).expand(mean.shape[0], -1)
        x, log_norm = twisted_step(mean.double(), cov, J, target, eps.double(), s, msg)
        return x.to(mean.dtype), log_norm

    #: effective sample size ``1 / sum w^2`` of normalised log-weights (P,)
    _ess = staticmethod(ess_count)

    def _draw_starts(self, s: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Historical start months (n, D), real units: for each path a random bank entry with its scenario
        label (any entry when the bank has none with that label)."""
        out = torch.empty(s.shape[0], self.config.n_macro_vars, device=self.device)
        for label in torch.unique(s).tolist():
            rows = (s == label).nonzero().squeeze(1)
            pool = (self.start_labels == label).nonzero().squeeze(1)
            if pool.numel() == 0:
                pool = torch.arange(self.start_states.shape[0], device=self.device)
            pick = torch.randint(pool.numel(), (rows.numel(),), generator=g, device=self.device)
            out[rows] = self.start_states[pool[pick]]
        return out

    @staticmethod
    def _conditional_step(mean: torch.Tensor, scale: torch.Tensor, L: torch.Tensor, J: list[int],
                          target: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact Gaussian conditioning of one month on x_J = target.

        mean, scale, eps: (P, D); target: (P, |J|) standardised. Returns x (P, D), log_w (P,).
        """
        P, D = mean.shape
        K = [k for k in range(D) if k not in J]
        S = scale[:, :, None] * L[None]  # (P, D, D) scale_tril of the innovation
        cov = S @ S.transpose(1, 2)  # (P, D, D)
        eye_j = torch.eye(len(J), device=mean.device, dtype=mean.dtype)
        chol_jj = torch.linalg.cholesky(cov[:, J][:, :, J] + 1e-9 * eye_j)
        resid = (target - mean[:, J]).unsqueeze(-1)  # (P, |J|, 1)
        white = torch.linalg.solve_triangular(chol_jj, resid, upper=False)  # (P, |J|, 1)
        log_w = -0.5 * (white ** 2).sum((1, 2)) - torch.log(torch.diagonal(chol_jj, dim1=1, dim2=2)).sum(-1)
        x = torch.empty_like(mean)
        x[:, J] = target
        if K:
            cov_kj = cov[:, K][:, :, J]  # (P, |K|, |J|)
            gain = torch.cholesky_solve(cov_kj.transpose(1, 2), chol_jj).transpose(1, 2)  # cov_kj cov_jj^-1
            cond_mean = mean[:, K] + (gain @ resid).squeeze(-1)
            cond_cov = cov[:, K][:, :, K] - gain @ cov_kj.transpose(1, 2)
            eye_k = torch.eye(len(K), device=mean.device, dtype=mean.dtype)
            chol_k = torch.linalg.cholesky(0.5 * (cond_cov + cond_cov.transpose(1, 2)) + 1e-9 * eye_k)
            x[:, K] = cond_mean + (chol_k @ eps[:, K, None]).squeeze(-1)
        return x, log_w

    #: systematic resampling of P particles by log-weights (P,): (P,) indices
    _resample = staticmethod(systematic)

    @staticmethod
    def _resample_groups(log_w: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
        """Multinomial resampling of k particles within each consecutive group of k; returns (P,) indices."""
        w = torch.softmax(log_w.double().view(-1, k), dim=1)  # (n, k)
        draws = torch.multinomial(w, k, replacement=True, generator=g)  # (n, k)
        return (draws + k * torch.arange(w.shape[0], device=log_w.device)[:, None]).reshape(-1)

    # ------------------------------------------------------------------ checkpoints
    _SCALER_KEYS = ("x_mean", "x_std", "x_min", "x_max", "scenario_freq", "dispersion")

    def save_pretrained(self, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` (weights), ``config.json`` (config + ``extra`` training metadata)
        and ``scalers.json`` (standardisation, training range, scenario frequencies), atomically."""
        scalers = {
            "variables": list(self.config.variables),
            "mean": self.x_mean.double().cpu().tolist(), "std": self.x_std.double().cpu().tolist(),
            "min": self.x_min.double().cpu().tolist(), "max": self.x_max.double().cpu().tolist(),
            "scenarios": list(SCENARIOS[: self.config.n_scenarios]),
            "scenario_freq": self.scenario_freq.double().cpu().tolist(),
            "dispersion": self.dispersion.double().cpu().tolist(),
        }
        meta: dict[str, Any] = {"config": self.config.to_dict()}
        if extra:
            meta["training"] = dict(extra)
        return save_model_checkpoint(directory, "MacroVAE", self, meta, exclude=self._SCALER_KEYS,
                                     extra_json={SCALERS_FILE: scalers})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> MacroVAE:
        """Load a checkpoint folder (default: the one shipped in ``creditsim/pretrained/macro_vae``).

        Raises CheckpointError when a file is missing or malformed (JSON that is not an object, a
        truncated weights file), ``model`` is not ``"MacroVAE"``, the config has unknown fields or sizes
        outside :attr:`MacroVAEConfig.LIMITS`, tensors are missing, unexpected, of other shapes or hold
        NaN/inf, or the scalers are not finite; sizes are checked before the model is built.
        """
        folder = Path(directory) if directory is not None else PRETRAINED_DIR
        # the shared checks and loader of creditsim.checkpoints; the scalers file is MacroVAE's own
        meta = read_model_meta(folder, "MacroVAE")
        config = config_from_meta(folder, meta, MacroVAEConfig)
        scalers, stats = _read_scalers(folder, config)
        # scalers live in scalers.json; scenario_drift is absent from checkpoints written before the
        # scenario dummies (zero = the old model); the start bank has one row per training window
        optional = (*cls._SCALER_KEYS, "decoder.scenario_drift")
        check_weight_shapes(folder, lambda: cls(config), optional=optional, any_shape=("start_states", "start_labels"))

        def load_start_bank(model: MacroVAE, tensors: dict[str, torch.Tensor]) -> None:
            if "start_states" in tensors and "start_labels" in tensors:
                try:
                    model.set_start_bank(tensors["start_states"], tensors["start_labels"])
                except (ConfigError, RuntimeError) as exc:
                    raise CheckpointError(f"checkpoint {folder}: bad start bank ({str(exc)[:200]})") from None

        def set_scalers(model: MacroVAE) -> None:
            try:
                model.set_scalers(stats["mean"], stats["std"], stats["min"], stats["max"], scalers.get("scenario_freq"))
                if "dispersion" in scalers:  # absent from checkpoints written before the calibration
                    model.set_dispersion(scalers["dispersion"])
            except (ConfigError, TypeError, ValueError) as exc:
                raise CheckpointError(f"checkpoint {folder}: bad {SCALERS_FILE} ({str(exc)[:200]})") from None

        return load_model_weights(cls(config), folder, device, optional=optional, before_load=load_start_bank,
                                  after_load=set_scalers)
