"""TransitionTransformer: macro path + cohort -> monthly 7x7 loan-state transition matrices.

Layout (read top to bottom): :class:`TransitionConfig`, the causal self-attention block, the MLP,
:class:`TransitionTransformer` with ``forward`` / ``loss`` / ``predict`` / ``cohort_matrices`` and
checkpoint I/O, then :class:`TapeTransitionModel`, the adapter the simulation engine plugs in as
``engine="transformer"``.

How a matrix is made
--------------------
Each month ``t`` of a macro path is one token: the standardised macro vector ``(9,)`` (statistics
stored in the buffers ``macro_mean`` / ``macro_std``) is embedded linearly, the standardised cohort
features ``(12,)`` or ``(16,)`` (buffers ``cohort_mean`` / ``cohort_std``) are embedded once and added to every
month, and a learned month embedding (months since the cut-off) is added so the model can learn
seasoning and maturity effects. Causal self-attention blocks (nanoGPT layout: pre-LayerNorm,
attention, MLP) mix the months so that month ``t``'s matrix depends on the macro path up to ``t``
only. A linear head gives ``7 x 7`` logits per month (plus, with ``macro_link``, the credit link's fixed
log-odds tilt, :meth:`link_tilt`); moves forbidden by
:data:`~creditsim.states.ALLOWED_TRANSITIONS` get logit ``-inf`` *before* the row softmax, so their
probability is exactly 0 and rows of absorbing states (DEFAULT, PREPAID, MATURED) are exact unit rows.
Nothing is renormalised after the fact.

Decisions
---------
* The head bias starts at the log of a pooled prior matrix (:meth:`set_prior`, the homogeneous
  Markov estimate of the training counts), so an untrained network *is* the Markov baseline (with
  ``macro_link``: the baseline under the calibrated overlay) and training learns macro, cohort and month
  deviations from it.
* ``unemployment_change`` (issue 13, on in the shipped model): the 12-month change of the unemployment
  rate, the driver the bank-delinquency link reads instead of the level, is computed from each path
  exactly as the Markov overlay does (:func:`~creditsim.macro.sensitivity.with_derived`: month 0 repeated
  before the jump-off), divided by its 1981-2019 sd (1.02 pp) and embedded linearly like the nine inputs.
  Attention could in principle learn the difference from the level tokens, but a 32-wide model trained on
  a few dozen paths did not: a 2 pp rise moved the worst-year PD by -1.2 .. +8 % (three classes down on
  unjittered paths; with jitter, real estate -0.4 .. -1.7 % and the others +0.03 .. +6 %); with the input
  that model gave corporate, consumer and receivables +6.5 .. +18 %, real estate -0.7 % (its link's
  unemployment term is the weakest, +2.8 % in the Markov chain). The input stays ``(S, T, 9)``; the
  feature is made inside :meth:`log_matrices`.
* Asset-class shares (issue 13): four of the 16 cohort features are the cohort's balance share of each
  asset class. The calibrated link differs by class, and without the shares the model had to guess the
  class from LTV, DSCR and term. ``n_cohort_features = 12`` (the spec's default) reads the first 12.
* ``macro_link`` (issue 13, on in the shipped model): the calibrated credit link -- the Markov overlay of
  ``MarkovTransitionModel.default()``, fitted on the Fed's bank delinquency history per asset class --
  is added to the logits as a fixed offset (:meth:`link_tilt`: its log-odds shock per move class, the
  classes' sensitivities weighted by the cohort's shares), stored with the weights. The network learns
  the cohort, seasoning and month structure and the macro effects the linear link misses, as deviations.
  Why: a learnt response is shrunk toward zero by early stopping and carries the noise of a few dozen
  training paths (+-1.5 % of worst-year PD for a one-sd shock, measured over training seeds); the link's
  weakest terms (+1 .. +3 %) then came out with either sign depending on the seed. With the offset the
  documented signs hold by construction, up to the network's residual. A model without the link
  (``macro_link=False``, the spec's default) learns every macro effect itself.
* ``macro_inputs=False`` (models trained on one real panel, :mod:`creditsim.transitions.panel_train`): the
  network does not read the macro path at all, only the link does. One panel spans one economy, so any
  macro response the network learnt from it would be the calendar's noise, extrapolated to every stress.
* Months beyond ``max_months`` reuse the last month embedding (seasoning effects are assumed to have
  settled by then); the attention itself works for any length.
* ``forward(cohort_features, macro_path)`` returns the matrices as in the models-api spec; passing
  ``counts`` also returns the loss (nanoGPT habit: training and inference share one path).
* The loss is the multinomial negative log-likelihood of the observed moves, ``-sum n_ab log P_ab``,
  divided by the number of moves out of live states (CURRENT..DPD90): moves out of absorbing states
  are certain and carry no information, so counting them would only dilute the per-move figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditsim.checkpoints import (
    check_weight_shapes,
    config_from_meta,
    load_model_weights,
    read_model_meta,
    save_model_checkpoint,
)
from creditsim.errors import CheckpointError, ConfigError, DataError
from creditsim.macro.sensitivity import CHANGE_MONTHS, OVERLAY_VARS
from creditsim.nn.config import JSONConfig
from creditsim.nn.layers import Block
from creditsim.schema import LoanTape, as_loan_tape
from creditsim.states import (
    ALLOWED_TRANSITIONS,
    ASSET_CLASSES,
    MACRO_VARS,
    N_STATES,
    LoanState,
    reachable_states,
)
from creditsim.transitions.markov import MOVE_CLASSES, UNEMPLOYMENT_CHANGE_SD, MarkovTransitionModel
from creditsim.transitions.cohorts import (
    BASE_COHORT_FEATURES,
    COHORT_FEATURES,
    DEFAULT_COHORT_KEY,
    cohort_features,
)

__all__ = ["TransitionConfig", "TransitionTransformer", "TapeTransitionModel", "MacroRangeWarning", "PRETRAINED_DIR"]

#: folder of the checkpoint shipped inside the package
#: (regenerated by ``python -m creditsim.transitions.train --out creditsim/pretrained/transition``)
PRETRAINED_DIR: Path = Path(__file__).resolve().parent.parent / "pretrained" / "transition"
_N_LIVE = int(LoanState.DPD90) + 1  # CURRENT, DPD30, DPD60, DPD90
#: a macro value further than this many training ranges outside the training range triggers a warning
RANGE_TOLERANCE = 0.25


class MacroRangeWarning(UserWarning):
    """Macro inputs lie well outside the range seen in training: the matrices are extrapolations."""


@dataclass
class TransitionConfig(JSONConfig):
    """Hyper-parameters of :class:`TransitionTransformer`. The first seven fields are the spec's.

    Size bounds (``LIMITS``, inclusive; a checkpoint outside them is refused before building):
    ``n_cohort_features`` 1..256, ``n_macro_vars`` 1..64, ``d_model`` 1..512, ``n_heads`` 1..64,
    ``n_layers`` 1..16, ``max_months`` 1..1200 (100 years). The shipped model uses 16/9/32/4/2/120.
    """

    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "n_cohort_features": (1, 256), "n_macro_vars": (1, 64), "d_model": (1, 512), "n_heads": (1, 64),
        "n_layers": (1, 16), "max_months": (1, 1200),
    }

    # cohort features: 12 reads BASE_COHORT_FEATURES (the spec's default), 16 all COHORT_FEATURES (with the
    # asset-class shares; the shipped model); another count is for custom features given to forward()
    n_cohort_features: int = 12
    n_macro_vars: int = 9  # macro variables (MACRO_VARS order)
    d_model: int = 128  # width of the month tokens
    n_heads: int = 4  # attention heads (d_model must be divisible by n_heads)
    n_layers: int = 3  # transformer blocks
    n_states: int = 7  # loan states; must be 7 (the allowed-move mask is 7x7)
    dropout: float = 0.1
    # extension (default keeps the spec's constructor working)
    max_months: int = 120  # learned month embeddings; later months reuse the last one
    unemployment_change: bool = False  # also embed the 12-month unemployment change (see Decisions)
    macro_link: bool = False  # add the calibrated credit link's log-odds tilt (see Decisions; needs the 16 features)
    macro_inputs: bool = True  # the network reads the macro path (off: only the link, if any, does; see Decisions)

    def __post_init__(self) -> None:
        for name in ("n_cohort_features", "n_macro_vars", "d_model", "n_heads", "n_layers", "n_states", "max_months"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"TransitionConfig.{name} must be a positive integer, got {value!r}")
        self.check_limits()
        if self.n_states != N_STATES:
            raise ConfigError(f"TransitionConfig.n_states must be {N_STATES} (the LoanState set), got {self.n_states}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"TransitionConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        for name in ("unemployment_change", "macro_link", "macro_inputs"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"TransitionConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.macro_link and self.n_cohort_features != len(COHORT_FEATURES):
            raise ConfigError(f"TransitionConfig.macro_link needs the asset-class shares: n_cohort_features must be "
                              f"{len(COHORT_FEATURES)} (COHORT_FEATURES), got {self.n_cohort_features}")
        if (self.macro_link or self.unemployment_change) and self.n_macro_vars != len(MACRO_VARS):
            raise ConfigError(f"TransitionConfig.macro_link and unemployment_change read the {len(MACRO_VARS)} "
                              f"MACRO_VARS: n_macro_vars must be {len(MACRO_VARS)}, got {self.n_macro_vars}")
        if isinstance(self.dropout, bool) or not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"TransitionConfig.dropout must be in [0, 1), got {self.dropout!r}")


def _as_tensor(x: Any, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected a numeric array or tensor, got {type(x).__name__} ({exc})") from None
    return torch.from_numpy(arr).to(device)


def _check_shares(frame: pd.DataFrame, names: tuple[str, ...]) -> None:
    """The asset-class share columns among ``names`` are fractions in [0, 1] summing to 1 per row
    (a DataError naming the columns and rows otherwise: shares in percent would silently saturate the link)."""
    cols = [c for c in names if c in COHORT_FEATURES[len(BASE_COHORT_FEATURES):]]
    if not cols:
        return
    shares = frame[cols].to_numpy(np.float64)
    bad = ~((shares >= 0.0) & (shares <= 1.0)).all(axis=1) | (np.abs(shares.sum(axis=1) - 1.0) > 1e-6)
    if bad.any():
        rows = [str(r) for r in frame.index[bad][:5]]
        raise DataError(f"cohort_features: the asset-class shares {cols} must be fractions in [0, 1] summing to 1; "
                        f"not so in {int(bad.sum())} row(s), e.g. {rows}")


def _unemployment_change(macro_path: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` 12-month change of the unemployment rate of ``(B, T, 9)`` paths, decimals; month ``t``
    gets ``u_t - u_max(t - 12, 0)`` (:func:`creditsim.macro.sensitivity.with_derived`)."""
    u = macro_path[..., MACRO_VARS.index("unemployment_rate")]
    T = u.shape[1]
    lag = torch.clamp(torch.arange(T, device=u.device) - CHANGE_MONTHS, min=0)
    return u - u[:, lag]


#: the Markov overlay's move classes, in order, and the ``(7, 7)`` index of each move's class
#: (``len(_LINK_MOVES)``: no class -- absorbing rows and staying put where no class covers it)
_LINK_MOVES: tuple[str, ...] = tuple(MOVE_CLASSES)
_LINK_MOVE_INDEX = np.full((N_STATES, N_STATES), len(_LINK_MOVES), dtype=np.int64)
for _k, _mask in enumerate(MOVE_CLASSES.values()):
    _LINK_MOVE_INDEX[_mask] = _k


class TransitionTransformer(nn.Module):
    """Monthly cohort transition matrices ``(B, T, 7, 7)`` from cohort features and a macro path.

    Args:
        config: :class:`TransitionConfig`.
    """

    def __init__(self, config: TransitionConfig):
        super().__init__()
        if not isinstance(config, TransitionConfig):
            raise ConfigError(f"config must be a TransitionConfig, got {type(config).__name__}")
        self.config = config
        cfg = config
        S = cfg.n_states
        self.register_buffer("macro_mean", torch.zeros(cfg.n_macro_vars))
        self.register_buffer("macro_std", torch.ones(cfg.n_macro_vars))
        self.register_buffer("cohort_mean", torch.zeros(cfg.n_cohort_features))
        self.register_buffer("cohort_std", torch.ones(cfg.n_cohort_features))
        # training range of each macro variable (for the extrapolation warning of predict)
        self.register_buffer("macro_min", torch.full((cfg.n_macro_vars,), -math.inf))
        self.register_buffer("macro_max", torch.full((cfg.n_macro_vars,), math.inf))
        # a constant of the library, not a learned or fitted quantity: kept out of checkpoints
        self.register_buffer("allowed", torch.from_numpy(ALLOWED_TRANSITIONS.copy()), persistent=False)
        if cfg.macro_link:
            # the credit link's log-odds per standardised shock (asset class, move class, OVERLAY_VARS) and its
            # standardisation; zeros until set_macro_link (a checkpoint stores them with the weights)
            self.register_buffer("link_beta", torch.zeros(len(ASSET_CLASSES), len(_LINK_MOVES), len(OVERLAY_VARS)))
            self.register_buffer("link_mean", torch.zeros(len(MACRO_VARS)))
            self.register_buffer("link_std", torch.ones(len(MACRO_VARS)))
            self.register_buffer("link_z_clip", torch.full((1,), math.inf))
            self.register_buffer("link_move", torch.from_numpy(_LINK_MOVE_INDEX.copy()), persistent=False)
        self.macro_in = nn.Linear(cfg.n_macro_vars, cfg.d_model)
        self.change_in = nn.Linear(1, cfg.d_model) if cfg.unemployment_change else None
        self.cohort_in = nn.Sequential(nn.Linear(cfg.n_cohort_features, cfg.d_model), nn.GELU(),
                                       nn.Linear(cfg.d_model, cfg.d_model))
        self.wpe = nn.Embedding(cfg.max_months, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg.d_model, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, S * S)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # nanoGPT: scaled init of residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # ------------------------------------------------------------------ scalers and prior
    def set_scalers(self, macro_mean: Any, macro_std: Any, cohort_mean: Any, cohort_std: Any,
                    macro_min: Any = None, macro_max: Any = None) -> None:
        """Store the training standardisation of macro inputs ``(9,)`` and cohort features ``(n_cohort_features,)``,
        and optionally the training range of the macro inputs (``macro_min`` / ``macro_max``, used
        only to warn about extrapolation).

        Standard deviations below 1e-8 (a constant input) are replaced by 1 so the input maps to 0.
        """
        cfg = self.config
        items = [("macro_mean", macro_mean, cfg.n_macro_vars), ("macro_std", macro_std, cfg.n_macro_vars),
                 ("cohort_mean", cohort_mean, cfg.n_cohort_features), ("cohort_std", cohort_std, cfg.n_cohort_features)]
        if (macro_min is None) != (macro_max is None):
            raise ConfigError("macro_min and macro_max must be given together")
        if macro_min is not None:
            items += [("macro_min", macro_min, cfg.n_macro_vars), ("macro_max", macro_max, cfg.n_macro_vars)]
        for name, value, n in items:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise ConfigError(f"{name} must be {n} finite numbers, got shape {arr.shape}")
            if name.endswith("std"):
                arr = np.where(arr > 1e-8, arr, 1.0)
            getattr(self, name).copy_(torch.as_tensor(arr, dtype=torch.float32))

    def set_prior(self, matrix: Any, floor: float = 1e-6) -> None:
        """Start the head at a prior ``(7, 7)`` matrix: bias = log(max(P, floor)) on allowed moves.

        With the head weights near zero the untrained model outputs (about) this matrix every month.
        """
        p = np.asarray(matrix, dtype=np.float64)
        if p.shape != (N_STATES, N_STATES) or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ConfigError(f"prior must be a (7, 7) non-negative finite matrix, got shape {p.shape}")
        bias = np.where(ALLOWED_TRANSITIONS, np.log(np.maximum(p, floor)), 0.0)
        with torch.no_grad():
            self.head.bias.copy_(torch.as_tensor(bias.reshape(-1), dtype=torch.float32))

    # ------------------------------------------------------------------ forward
    def _check_inputs(self, cohort_features: Any, macro_path: Any) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        dev = self.device
        cf = _as_tensor(cohort_features, "cohort_features", dev)
        mp = _as_tensor(macro_path, "macro_path", dev)
        if mp.ndim != 3 or mp.shape[-1] != cfg.n_macro_vars or mp.shape[1] < 1:
            raise DataError(f"macro_path must have shape (batch, months >= 1, {cfg.n_macro_vars}), "
                            f"got {tuple(mp.shape)}")
        if cf.ndim != 2 or cf.shape[-1] != cfg.n_cohort_features:
            raise DataError(f"cohort_features must have shape (batch, {cfg.n_cohort_features}), got {tuple(cf.shape)}")
        if cf.shape[0] != mp.shape[0]:
            raise DataError(f"cohort_features has batch {cf.shape[0]} but macro_path has batch {mp.shape[0]}; "
                            "expected one macro path per cohort row")
        if not bool(torch.isfinite(mp).all()):
            raise DataError("macro_path has NaN or infinite values")
        if not bool(torch.isfinite(cf).all()):
            raise DataError("cohort_features has NaN or infinite values")
        return cf, mp

    def set_macro_link(self, chain: MarkovTransitionModel) -> None:
        """Store the macro overlay of a Markov chain segmented by asset class (e.g.
        ``MarkovTransitionModel.default()``, the calibrated credit link) as the model's fixed macro offset:
        its per-class sensitivities, standardisation and clip. Needs ``config.macro_link``."""
        if not self.config.macro_link:
            raise ConfigError("set_macro_link: this model's config has macro_link=False")
        if not isinstance(chain, MarkovTransitionModel):
            raise ConfigError(f"set_macro_link: expected a MarkovTransitionModel, got {type(chain).__name__}")
        # a class without its own sensitivities takes the chain's shared ones (as the overlay does)
        unknown = sorted(set(chain.segment_sensitivities) - set(ASSET_CLASSES))
        if unknown:
            raise ConfigError(f"set_macro_link: the chain's segment_sensitivities are keyed by {unknown}, not by the "
                              f"asset classes {list(ASSET_CLASSES)}: the link is read per asset class")
        beta = np.zeros(tuple(self.link_beta.shape))
        for a, cls in enumerate(ASSET_CLASSES):
            for name, per_var in chain.segment_sensitivities.get(cls, chain.sensitivities).items():
                for var, value in per_var.items():
                    beta[a, _LINK_MOVES.index(name), OVERLAY_VARS.index(var)] = value
        clip = math.inf if chain.z_clip is None else chain.z_clip
        for name, value in (("link_beta", beta), ("link_mean", chain.macro_mean_), ("link_std", chain.macro_std_),
                            ("link_z_clip", [clip])):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32))

    def link_tilt(self, cohort_features: torch.Tensor, macro_path: torch.Tensor) -> torch.Tensor:
        """``(B, T, 7, 7)`` log-odds tilt of the stored credit link (:meth:`set_macro_link`): the Markov
        overlay's shock per move class, with each asset class's sensitivities weighted by the cohort's
        balance share of that class (features 12..15, natural units); 0 on moves of no class.

        A single-class cohort (every cohort the engine and the training use) gets its class's overlay
        exactly. A mixed cohort gets the share-weighted *log-odds*, which is not the mixture of the class
        chains (50/50 corporate / real estate, 12 months: PD 1.77 % vs the mixture's 1.89 %): an
        approximation, outside what the model was trained on."""
        z = (macro_path - self.link_mean) / self.link_std  # (B, T, 9)
        change = _unemployment_change(macro_path)[..., None] / UNEMPLOYMENT_CHANGE_SD
        z = torch.cat([z, change], dim=-1).clamp(-self.link_z_clip, self.link_z_clip)  # (B, T, 10)
        shares = cohort_features[:, len(BASE_COHORT_FEATURES):]  # (B, 4)
        # small fixed-length sums over classes and variables (no matmul: each entry's order never changes)
        beta = (shares[:, :, None, None] * self.link_beta).sum(1)  # (B, moves, 10)
        shock = (z[:, :, None, :] * beta[:, None]).sum(-1)  # (B, T, moves)
        shock = F.pad(shock, (0, 1))  # the last index: moves of no class
        return shock[..., self.link_move]  # (B, T, 7, 7)

    def log_matrices(self, cohort_features: torch.Tensor, macro_path: torch.Tensor) -> torch.Tensor:
        """Log transition probabilities ``(B, T, 7, 7)``; ``-inf`` exactly on forbidden moves.

        Inputs must already be checked tensors on the model's device (see :meth:`forward`).
        """
        B, T, _ = macro_path.size()
        x = (macro_path - self.macro_mean) / self.macro_std  # (B, T, n_macro)
        c = (cohort_features - self.cohort_mean) / self.cohort_std  # (B, n_feat)
        pos = torch.clamp(torch.arange(T, device=x.device), max=self.config.max_months - 1)  # (T,)
        if self.config.macro_inputs:  # (the order of the sums is the shipped checkpoint's: do not reorder)
            h = self.macro_in(x) + self.cohort_in(c)[:, None, :] + self.wpe(pos)[None]  # (B, T, d)
            if self.change_in is not None:
                h = h + self.change_in(_unemployment_change(macro_path)[..., None] / UNEMPLOYMENT_CHANGE_SD)  # (B, T, d)
        else:
            h = self.cohort_in(c)[:, None, :] + self.wpe(pos)[None].expand(B, T, -1)  # (B, T, d)
        h = self.drop(h)
        for block in self.blocks:
            h, _ = block(h)
        logits = self.head(self.ln_f(h)).view(B, T, N_STATES, N_STATES)  # (B, T, 7, 7)
        if self.config.macro_link:
            logits = logits + self.link_tilt(cohort_features, macro_path)
        logits = logits.masked_fill(~self.allowed, float("-inf"))
        return F.log_softmax(logits, dim=-1)

    def forward(self, cohort_features: torch.Tensor, macro_path: torch.Tensor,
                counts: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Transition matrices of each cohort along its macro path.

        Args:
            cohort_features: ``(B, n_cohort_features)`` cohort features in natural units
                (``cohort_features()``, the columns of :attr:`cohort_feature_names`).
            macro_path: ``(B, T, 9)`` monthly macro values, decimals, MACRO_VARS order; month ``t`` of
                the output is the move during month ``t`` of the path.
            counts: optional ``(B, T, 7, 7)`` observed move counts; when given the loss is returned too.

        Returns:
            ``(B, T, 7, 7)`` float32 row-stochastic matrices (rows = from-state), or
            ``(matrices, loss)`` when ``counts`` is given (loss: see :meth:`nll`).
        """
        cf, mp = self._check_inputs(cohort_features, macro_path)
        logp = self.log_matrices(cf, mp)
        probs = logp.exp()
        if counts is None:
            return probs
        return probs, self.nll(logp, self._check_counts(counts, tuple(logp.shape)))

    def _check_counts(self, counts: Any, shape: tuple[int, ...], period_months: int = 1) -> torch.Tensor:
        n = _as_tensor(counts, "counts", self.device)
        if tuple(n.shape) != shape:
            raise DataError(f"counts must have shape {shape} (batch, months, 7, 7), got {tuple(n.shape)}")
        if not bool(torch.isfinite(n).all()) or bool((n < 0).any()):
            raise DataError("counts must be finite and non-negative")
        if period_months == 1 and bool((n[..., ~self.allowed] > 0).any()):
            raise DataError("counts has moves that ALLOWED_TRANSITIONS forbids (e.g. CURRENT -> DPD60); "
                            "expected zero counts on forbidden moves")
        if period_months > 1:
            unreachable = torch.from_numpy(~reachable_states(period_months)).to(n.device)
            if bool((n[..., unreachable] > 0).any()) or bool((n[:, : period_months - 1] > 0).any()):
                raise DataError(f"counts has moves no {period_months} monthly moves reach, or {period_months}-month "
                                f"moves ending in the first {period_months - 1} month(s)")
        return n

    @staticmethod
    def nll(log_probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Multinomial NLL per live move: ``-sum n_ab log P_ab / sum_{a live} n_ab`` (scalar, nats).

        Cells with zero count contribute 0 (so ``-inf`` on forbidden cells is harmless).
        """
        ll = torch.where(counts > 0, counts * log_probs, torch.zeros_like(log_probs)).sum()
        exposure = counts[..., :_N_LIVE, :].sum().clamp_min(1.0)
        return -ll / exposure

    @staticmethod
    def period_nll(probs: torch.Tensor, counts: torch.Tensor, period_months: int) -> torch.Tensor:
        """NLL per live move of moves observed ``k = period_months`` months apart (a quarterly panel).

        ``counts[:, t]`` ``(B, T, 7, 7)`` are moves from month ``t - k`` to month ``t`` (zero for ``t < k - 1``),
        scored by the product of the monthly matrices ``probs`` of the months they span,
        ``P_{t-k+1} ... P_t``: the model stays monthly, and a simulation steps it month by month."""
        k = int(period_months)
        T = probs.shape[1]
        q = probs[:, : T - k + 1]
        for j in range(1, k):
            q = q @ probs[:, j: T - k + 1 + j]
        n = counts[:, k - 1:]
        ll = torch.where(n > 0, n * torch.log(q.clamp_min(1e-30)), torch.zeros_like(q)).sum()
        return -ll / n[..., :_N_LIVE, :].sum().clamp_min(1.0)

    def loss(self, cohort_features: torch.Tensor, macro_path: torch.Tensor, counts: torch.Tensor,
             period_months: int = 1) -> torch.Tensor:
        """Multinomial NLL of observed ``counts`` ``(B, T, 7, 7)`` per live move (scalar tensor); with
        ``period_months`` > 1, of moves that many months apart (:meth:`period_nll`)."""
        if isinstance(period_months, bool) or not isinstance(period_months, int) or period_months < 1:
            raise ConfigError(f"period_months must be a positive integer, got {period_months!r}")
        if period_months == 1:
            return self.forward(cohort_features, macro_path, counts)[1]
        cf, mp = self._check_inputs(cohort_features, macro_path)
        probs = self.log_matrices(cf, mp).exp()
        if probs.shape[1] < period_months:
            raise DataError(f"a {period_months}-month move needs a path of at least {period_months} months, got "
                            f"{probs.shape[1]}")
        return self.period_nll(probs, self._check_counts(counts, tuple(probs.shape), period_months), period_months)

    # ------------------------------------------------------------------ convenience
    def check_macro_range(self, macro_paths: torch.Tensor) -> list[str]:
        """Names of macro variables of ``(..., 9)`` paths outside the training range widened by
        :data:`RANGE_TOLERANCE` x range on each side; warns (:class:`MacroRangeWarning`) when any."""
        import warnings

        lo, hi = self.macro_min, self.macro_max
        if not self.config.macro_inputs or not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
            return []  # the network does not read the path, or no training range stored
        pad = RANGE_TOLERANCE * (hi - lo)
        flat = macro_paths.reshape(-1, macro_paths.shape[-1])
        out = (flat < lo - pad) | (flat > hi + pad)  # (N, 9)
        bad = [MACRO_VARS[j] for j in torch.nonzero(out.any(0)).flatten().tolist()]
        if bad:
            warnings.warn(f"macro paths leave the training range for {bad}: the transition matrices are "
                          "extrapolations (still valid matrices, but untested)", MacroRangeWarning, stacklevel=3)
        return bad

    @property
    def cohort_feature_names(self) -> tuple[str, ...]:
        """The named cohort features the model reads, in input order: all 16
        :data:`~creditsim.transitions.cohorts.COHORT_FEATURES` (``n_cohort_features = 16``) or the first 12
        (``BASE_COHORT_FEATURES``, no asset-class shares: the spec's default and checkpoints from before the
        shares). Raises DataError for another count: such a model takes custom features via ``forward``."""
        n = self.config.n_cohort_features
        for names in (COHORT_FEATURES, BASE_COHORT_FEATURES):
            if n == len(names):
                return names
        raise DataError(f"this TransitionTransformer reads {n} custom cohort features, not the named "
                        f"{len(BASE_COHORT_FEATURES)} or {len(COHORT_FEATURES)} of cohort_features(); "
                        f"call forward() with a (batch, {n}) tensor instead")

    @torch.no_grad()
    def predict(self, cohort_features: pd.DataFrame, macro_paths: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Matrices for every (macro path, cohort) pair.

        Args:
            cohort_features: ``(C, F)`` DataFrame with the model's :attr:`cohort_feature_names` columns
                (extra columns are ignored), e.g. from ``cohort_features(loans_df)``.
            macro_paths: ``(S, T, 9)`` (or one path ``(T, 9)``) decimals, MACRO_VARS order; a
                DataFrame with the MACRO_VARS columns is accepted as one path.
            batch_size: (path, cohort) pairs per forward pass (bounds memory).

        Returns:
            ``(S, C, T, 7, 7)`` float32 tensor on the model's device, cohorts in the DataFrame's row
            order; ``(C, T, 7, 7)`` for a single ``(T, 9)`` path.
        """

        if not isinstance(cohort_features, pd.DataFrame):
            raise DataError(f"cohort_features: expected a pandas DataFrame, got {type(cohort_features).__name__}")
        names = self.cohort_feature_names
        missing = [c for c in names if c not in cohort_features.columns]
        if missing:
            raise DataError(f"cohort_features: missing column(s) {missing}; expected {list(names)}")
        if isinstance(macro_paths, pd.DataFrame):
            lacking = [v for v in MACRO_VARS if v not in macro_paths.columns]
            if lacking:
                raise DataError(f"macro frame: missing column(s) {lacking}")
            macro_paths = macro_paths[list(MACRO_VARS)].to_numpy(np.float32)
        _check_shares(cohort_features, names)
        feats = _as_tensor(cohort_features[list(names)].to_numpy(np.float64), "cohort_features", self.device)
        paths = _as_tensor(macro_paths, "macro_paths", self.device)
        single = paths.ndim == 2
        if single:
            paths = paths[None]
        if paths.ndim != 3 or paths.shape[-1] != self.config.n_macro_vars:
            raise DataError(f"macro_paths must have shape (S, T, {self.config.n_macro_vars}) or (T, "
                            f"{self.config.n_macro_vars}), got {tuple(paths.shape)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not bool(torch.isfinite(paths).all()):
            raise DataError("macro_paths has NaN or infinite values")
        self.check_macro_range(paths)
        S, T, _ = paths.shape
        C = feats.shape[0]
        was_training = self.training
        self.eval()
        out = torch.empty((S * C, T, N_STATES, N_STATES), dtype=torch.float32, device=self.device)
        for i in range(0, S * C, batch_size):
            idx = torch.arange(i, min(i + batch_size, S * C), device=self.device)
            out[idx] = self.forward(feats[idx % C], paths[idx // C])
        self.train(was_training)
        out = out.view(S, C, T, N_STATES, N_STATES)
        return out[0] if single else out

    def cohort_matrices(self, loans_df: pd.DataFrame, macro_paths: Any, cohort_key: Any = None,
                        as_of: object | None = None, batch_size: int = 256) -> tuple[np.ndarray, pd.Index]:
        """Matrices for the cohorts of a loan tape under every macro path, for the simulation.

        Args:
            loans_df: loan tape (validated with ``validate_loan_tape``).
            macro_paths: ``(S, T, 9)`` decimals, MACRO_VARS order.
            cohort_key: cohort definition of :func:`creditsim.transitions.cohorts.cohort_keys`; default
                ``"asset_class_vintage_risk"``.
            as_of: date for seasoning (default the tape's latest origination date).

        Returns:
            ``(matrices, cohorts)``: ``(S, C, T, 7, 7)`` float64 matrices and the cohort labels in the
            order of axis 1, which is the *sorted* order of the cohort labels (as in
            ``cohort_features`` and ``transition_counts``); map loans to cohorts with
            ``cohorts.get_indexer(cohort_keys(loans_df, cohort_key))``.
        """

        key = DEFAULT_COHORT_KEY if cohort_key is None else cohort_key
        feats = cohort_features(loans_df, key, as_of=as_of)
        paths = _as_tensor(macro_paths, "macro_paths", self.device)
        if paths.ndim != 3:
            raise DataError(f"macro_paths must have shape (S, T, {self.config.n_macro_vars}), got {tuple(paths.shape)}")
        mats = self.predict(feats, paths, batch_size=batch_size)
        return mats.double().cpu().numpy(), feats.index

    def for_tape(self, loans_df: LoanTape | pd.DataFrame, as_of: object | None = None) -> TapeTransitionModel:
        """Bind the model to a loan tape: a ``scenario_matrices`` object for the simulation engine."""
        return TapeTransitionModel(self, loans_df, as_of=as_of)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` (weights and scalers) and ``config.json`` (config + ``extra``
        training metadata), each atomically. Never pickle."""
        if self.config.macro_link and not bool(self.link_beta.any()):
            raise ConfigError("save_pretrained: this model has macro_link=True but its link is all zero "
                              "(set_macro_link was never called)")
        meta: dict[str, Any] = {"config": self.config.to_dict(), "macro_vars": list(MACRO_VARS)}
        if extra:
            meta["training"] = dict(extra)
        return save_model_checkpoint(directory, "TransitionTransformer", self, meta)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu") -> TransitionTransformer:
        """Load a checkpoint folder (default: the one shipped in ``creditsim/pretrained/transition``).

        Raises:
            CheckpointError: a file is missing or malformed (truncated weights, JSON that is not an
                object), ``model`` names another model, the config has unknown fields or sizes outside
                :attr:`TransitionConfig.LIMITS`, or the weights miss tensors, have other shapes or hold
                NaN; all checked before the model is built (see :mod:`creditsim.checkpoints`).
        """
        folder = Path(directory) if directory is not None else PRETRAINED_DIR
        meta = read_model_meta(folder, "TransitionTransformer")
        macro_vars = meta.get("macro_vars", MACRO_VARS)
        if not isinstance(macro_vars, list | tuple) or list(macro_vars) != list(MACRO_VARS):
            raise CheckpointError(f"checkpoint {folder}: macro variables {macro_vars!r:.200} differ from "
                                  f"{list(MACRO_VARS)}")
        config = config_from_meta(folder, meta, TransitionConfig)
        # sizes checked against the file header before anything is allocated
        check_weight_shapes(folder, lambda: cls(config))
        # macro_min / macro_max are +-inf when no training range was stored (see check_macro_range)
        return load_model_weights(cls(config), folder, device, allow_inf=("macro_min", "macro_max", "link_z_clip"))


class TapeTransitionModel:
    """A :class:`TransitionTransformer` bound to one loan tape, with the engine's cohort layout.

    The simulation engine (:class:`creditsim.risk.pool_engine.PoolEngine`) gives every unrated loan
    the cohort of its asset class, in :data:`~creditsim.states.ASSET_CLASSES` order, and asks its
    transition model for ``scenario_matrices(macro_paths (S, T, 9)) -> (S, 4, T, 7, 7)``. This adapter
    computes the cohort features of each asset class of the tape (``cohort_key="asset_class"``;
    the shipped model is trained on both these coarse cohorts and the finer default ones) and runs
    the transformer. An asset class absent from the tape has no loans, so its matrices are never
    used; it gets the matrices of the whole tape's features so the array stays well defined.

    Args:
        model: a trained :class:`TransitionTransformer`.
        loans_df: the loan tape.
        as_of: date for seasoning (default the tape's latest origination date).
    """

    def __init__(self, model: TransitionTransformer, loans_df: LoanTape | pd.DataFrame, as_of: object | None = None):
        if not isinstance(model, TransitionTransformer):
            raise ConfigError(f"model must be a TransitionTransformer, got {type(model).__name__}")
        self.model = model
        tape = as_loan_tape(loans_df)  # validated once for both feature tables
        by_class = cohort_features(tape, "asset_class", as_of=as_of)
        whole = cohort_features(tape, lambda df: pd.Series("all", index=df.index), as_of=as_of)
        rows = [by_class.loc[a] if a in by_class.index else whole.iloc[0] for a in ASSET_CLASSES]
        self.cohort_features_ = pd.DataFrame(rows, index=pd.Index(list(ASSET_CLASSES), name="cohort"))

    def scenario_matrices(self, macro_paths: Any) -> np.ndarray:
        """``(S, 4, T, 7, 7)`` float64 matrices, cohorts in ASSET_CLASSES order."""
        paths = _as_tensor(macro_paths, "macro_paths", self.model.device)
        if paths.ndim == 2:
            paths = paths[None]
        mats = self.model.predict(self.cohort_features_, paths)
        return mats.double().cpu().numpy()

    def __repr__(self) -> str:
        return f"TapeTransitionModel({type(self.model).__name__}, cohorts={list(self.cohort_features_.index)})"
