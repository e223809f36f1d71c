"""LoanTrajectoryModel: loan-level monthly paths (states, payments, balances, losses).

Layout (read top to bottom): :class:`TrajectoryConfig`, input constants, validation helpers, the
transformer blocks (nanoGPT style, with a key/value cache for generation), the diffusion head,
:class:`LoanTrajectoryModel` with ``forward`` / ``generate`` / ``pool_cashflows`` and checkpoint I/O.

What the model is
-----------------
* **States: an autoregressive causal transformer over months.** Token ``t`` (month ``t`` after the
  cut-off) embeds the state at the end of month ``t - 1`` (the cut-off state for ``t = 0``; teacher
  forcing in training), the loan's 24 features (:func:`creditsim.features.loan_features`), the
  log of the cohort transition row of that state in month ``t``, the macro values of month ``t`` and
  three contractual-term inputs (months to maturity, "maturity month", "past maturity"). The logits of
  the state at the end of month ``t`` are ``log P_cohort[t, s_{t-1}, :] + c(h_t)``: the cohort matrix
  (the systematic, macro-driven part from the transition model) plus a learned loan-level correction
  ``c`` (initialised at 0, so an untrained model samples the cohort matrix exactly). Forbidden moves
  (:data:`~creditsim.states.ALLOWED_TRANSITIONS`) and the contractual maturity rule (below) get a logit
  of ``-inf`` *before* the softmax, so generated paths follow the allowed moves exactly; nothing is
  renormalised after the fact. Allowed moves to which a cohort matrix gives exactly 0 get the floor
  probability :data:`COHORT_PROB_FLOOR` (the correction may still learn them away).
* **Maturity rule** (the one the synthetic panels and the cashflow engine use): with ``n`` payments
  left at the cut-off the contractual maturity is month ``m = n - 1``. Before ``m`` a live loan cannot
  be MATURED (an early payoff is PREPAID); from ``m`` on a live loan cannot be CURRENT (paying the
  last instalment, or curing into it, is MATURED). This is applied to the logits: the weight of the
  impossible outcome is merged (``logaddexp``) into PREPAID resp. MATURED and the outcome gets
  ``-inf``, so an untrained model reproduces the cashflow engine's relabelling of cohort draws
  exactly. ``n`` comes from the ``remaining_term_years`` feature, so features must be computed as of
  the cut-off (``loan_features(tape, as_of=cutoff)``).
* **Values: a small DDPM head** (Ho et al. 2020; cosine noise schedule of Nichol & Dhariwal 2021,
  ``config.diffusion_steps`` steps, buffers ``betas`` / ``alphas_cumprod`` in the model). Conditioned
  on the hidden state ``h_t`` and the *new* state, it generates a 2-vector per loan-month in [0, 1]:

  0. ``payment_ratio``: cash paid in a performing month (CURRENT -> CURRENT with an instalment due) as
     a fraction of the scheduled instalment. Partial payments are the continuous behaviour a state
     machine cannot express; a shortfall of principal stays in the balance (see cashflows below).
     Over-payments are prepayment behaviour and are not modelled (ratio capped at 1).
  1. ``lgd``: loss given default in the month of default, as a fraction of the exposure (outstanding
     principal incl. arrears principal). LGD is the main continuous driver of credit losses and in
     real books it is dispersed and skewed rather than a constant, hence a generative head rather
     than a point estimate.

  Values are mapped to ``y = 2 v - 1`` in [-1, 1]; the head predicts the noise (epsilon
  parameterisation) and sampling clips the implied ``y_0`` to [-1, 1] at every step. Why diffusion
  rather than, say, a Beta: the conditional distributions are mixtures with point masses (full
  payment, LGD of a fully collateralised loan) that a single parametric family fits badly, and a
  tiny denoiser is cheap next to the transformer. The training loss on a loan-month counts only the
  value that is defined there (masks), and is the usual simplified DDPM loss (MSE on the noise),
  averaged per value so the rare LGD observations weigh as much as the many payment months.
  Generation runs the full ancestral chain by default; ``config.sampling_steps`` switches to DDIM on
  fewer steps (:mod:`creditsim.loans.diffusion_sampling`, opt-in: check it with ``sampler_check``).
  On the synthetic panels both are degenerate (borrowers pay in full; LGD is the loan's
  ``lgd_assumption``), so there the head learns loan-level point masses (LGD from the features); it
  is built for panels where they are dispersed.
* **Training loss** = mean state cross-entropy over months whose previous state is live (absorbed
  months are certain and carry no information) + ``value_weight`` x the diffusion loss.

Cashflows in :meth:`LoanTrajectoryModel.generate`
-------------------------------------------------
Per loan the contractual monthly schedule (:func:`creditsim.loans.schedule.amortization_schedule`)
gives the scheduled balance ``B(j)`` after ``j`` payments and the cumulative interest ``CI(j)``. As in
the cashflow engine, delinquency buckets count missed payments: with ``D_t = min(t + 1, n)`` payments
due by the end of month ``t``, a move into live state ``y`` sets the paid count ``P_t = max(P_{t-1},
D_t - y)``; the month's contractual cash is the interest and principal of payments ``P_{t-1}+1 ..
P_t`` (a cure pays its arrears, advancing a bucket pays nothing). In a performing month the borrower
pays ``payment_ratio`` of it; the unpaid principal is carried as a shortfall ``S`` in the balance.
Unpaid interest is *not* capitalised, so balances never increase: ``balance_t = B(P_t) + S_t``,
non-increasing and >= 0. PREPAID pays the interest and principal due through the month plus the rest
of the balance as prepayment; MATURED pays the remaining balance and the interest of the remaining
instalments; DEFAULT writes off ``default_par = balance_{t-1}`` with ``loss = lgd x default_par`` in
that month (recoveries ``default_par - loss`` are left to the caller's recovery lag). Absorbed loans
pay nothing. Payments are monthly (quarterly or semi-annual tapes are treated as monthly instalments,
as the cashflow engine does).

``idio_scale`` (the spec's "idiosyncratic variance scale"): in ``generate`` every sampled loan path
draws a frailty ``z ~ N(0, 1)`` and the log-odds of its adverse moves (roll one bucket forward,
default; :data:`creditsim.transitions.sampler.ADVERSE_MOVES`) are shifted by ``idio_scale z -
idio_scale^2 / 2`` for the whole path: mean-one lognormal odds, so average hazards are kept to first
order while loan paths become more dispersed (unobserved heterogeneity beyond the features, the usual
frailty of credit models). It plays no role in training; 0 switches it off, and it is at most
:data:`IDIO_SCALE_MAX`.
"""

from __future__ import annotations

import functools
import math
import os
import reprlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditsim.checkpoints import (check_weight_shapes, config_from_meta, load_model_weights, read_model_meta,
                                   save_model_checkpoint)
from creditsim.errors import CheckpointError, ConfigError, DataError, NumericalError, format_labels
from creditsim.features import LOAN_FEATURES
from creditsim.nn.config import JSONConfig
from creditsim.nn import attention_kernel
from creditsim.nn.layers import Block, FusedBlockStep, KVBuffer, fusable
from creditsim.nn.modes import eval_modes
from creditsim.nn.workspace import kv_storage, kv_workspace
from creditsim.loans import diffusion_kernel
from creditsim.loans.diffusion_sampling import SamplingPlan, ddim_sample, plan_for
from creditsim.loans.month_ledger import FLOWS, month_moves, settle_month
from creditsim.loans.month_states import next_states, non_finite_draw
from creditsim.loans.month_tokens import month_tokens
from creditsim.loans.value_noise import path_normals, value_noise_keys
from creditsim.loans.pool import LOAN_FLOWS, check_recovery_lag, pool_cashflows
from creditsim.loans.schedule import amortization_codes, amortization_schedule
from creditsim.states import ALLOWED_TRANSITIONS, MACRO_VARS, N_STATES, POOL_CF_TYPES, LoanState
from creditsim.threads import map_scenarios, serial_torch
from creditsim.transitions.sampler import ADVERSE_MOVES, cumulative_thresholds
from creditsim.rng import torch_seed

__all__ = [
    "censored_state_nll",
    "TrajectoryConfig",
    "LoanTrajectoryModel",
    "VALUE_NAMES",
    "COHORT_PROB_FLOOR",
    "IDIO_SCALE_MAX",
    "PRETRAINED_DIR",
    "loan_terms_from_features",
    "trajectory_flows",
    "scenario_groups",
    "scenario_threads",
    "GROUP_PATHS",
]

#: folder of the checkpoint shipped inside the package
PRETRAINED_DIR: Path = Path(__file__).resolve().parent.parent / "pretrained" / "trajectory"

#: names of the continuous values of the diffusion head, in order (both decimals in [0, 1])
VALUE_NAMES: tuple[str, ...] = ("payment_ratio", "lgd")
N_VALUES = len(VALUE_NAMES)
#: probability given to allowed moves that a cohort matrix puts exactly 0 on
COHORT_PROB_FLOOR = 1e-8
#: loans per random stream of ``generate`` (fixed: results do not depend on the chunk size)
RNG_LOAN_BLOCK = 256
#: scenarios side by side on threads (:func:`scenario_threads`) only from this many loans: each small
#: torch operation holds the GIL while it is dispatched, and on smaller books that share dominates.
#: Two threads against one (2 cores, 60 months, 8 scenarios), with the compiled value chain and attention
#: step, which release the GIL (2026-12-07): 50 loans 0.97x, 100 1.03x, 200 1.15x, 300 1.31x, 600 1.35x,
#: 1,000 1.84x. In torch alone (no compiler built them, or ``fused_kernels`` off) it took 1,000 loans to
#: reach 1.28x (300 loans 0.82x, 600 1.03x): :data:`THREAD_MIN_LOANS_TORCH`
THREAD_MIN_LOANS = 200
THREAD_MIN_LOANS_TORCH = 1000
#: at most this many scenarios in flight: each operation holds the GIL for a few of its ~10-30 us, so
#: beyond a handful of threads they would queue on it (an estimate: measured on 2 cores only), and each
#: scenario in flight holds its own working memory (~0.5 GiB at 6,000 loans x 120 months)
THREAD_MAX = 4


#: paths one batched month step of :meth:`LoanTrajectoryModel.generate_scenarios` holds at most, per device
#: type: on the CPU the 4,096 a one-scenario chunk held before scenarios were batched (~160 MB a thread at
#: 60 months); a GPU wants far larger batches to fill it (~2.6 GB at 60 months)
GROUP_PATHS = {"cpu": 4096, "cuda": 65536}


def scenario_groups(n_scenarios: int, n_loans: int, device: torch.device | str = "cpu",
                    fused: bool = True) -> list[tuple[range, int]]:
    """How to generate ``n_scenarios`` scenarios of ``n_loans`` loans: ``(scenarios, chunk_size)`` per call
    of :meth:`LoanTrajectoryModel.generate_scenarios`, in scenario order.

    A group holds as many scenarios as fill :data:`GROUP_PATHS` paths with whole books (at least one;
    books of more loans are chunked), and no more than an even share of the threads
    :func:`creditsim.threads.map_scenarios` would run the groups on (:func:`scenario_threads`), so every
    thread gets work. Results do not depend on the grouping (each path's arithmetic is its own row's).
    """
    dev = torch.device(device)
    paths = GROUP_PATHS.get(dev.type, GROUP_PATHS["cpu"])
    book = max(1, -(-n_loans // RNG_LOAN_BLOCK)) * RNG_LOAN_BLOCK  # the loans of a chunk: whole RNG blocks
    threads = 1 if dev.type != "cpu" else max(1, min(n_scenarios, torch.get_num_threads(),
                                                     scenario_threads(n_loans, fused)))
    size = max(1, min(paths // book, -(-n_scenarios // threads)))
    chunk = max(RNG_LOAN_BLOCK, paths // size)
    return [(range(lo, min(lo + size, n_scenarios)), chunk) for lo in range(0, n_scenarios, size)]


def scenario_threads(n_loans: int, fused: bool = True) -> int:
    """Most threads :func:`creditsim.threads.map_scenarios` should run scenarios of ``n_loans`` loans on:
    1 below :data:`THREAD_MIN_LOANS` (:data:`THREAD_MIN_LOANS_TORCH` where generation runs in torch alone:
    ``fused`` False or the kernels not built), else :data:`THREAD_MAX` (the caller's torch count caps it)."""
    compiled = fused and diffusion_kernel.available() and attention_kernel.available()
    return 1 if n_loans < (THREAD_MIN_LOANS if compiled else THREAD_MIN_LOANS_TORCH) else THREAD_MAX

_LIVE = (LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90)

#: the largest ``idio_scale`` taken: at 10 an adverse move's odds are scaled by exp(10 z - 50), e^-50 at
#: the median path, so larger values mean nothing more; far larger ones overflowed the shift
IDIO_SCALE_MAX = 10.0


def _idio_scale_message(name: str, value: object) -> str:
    return (f"{name} must be a finite number in [0, {IDIO_SCALE_MAX:g}] (the standard deviation of a path's "
            f"log-odds frailty on adverse moves), got {value!r}")

# fixed standardisation of the macro inputs: centre = long-run anchors of the synthetic macro model,
# scale = rough 1981-2019 standard deviations of the US series (decimals, MACRO_VARS order)
_MACRO_CENTRE = (0.020, 0.042, 0.025, 0.035, 0.045, 0.012, 0.040, 0.040, 0.020)
_MACRO_SCALE = (0.019, 0.017, 0.020, 0.030, 0.025, 0.006, 0.025, 0.060, 0.015)

# positions / constants of loan_features used to recover the loan terms (see LOAN_FEATURES)
_F_LOG_CUR_BAL, _F_RATE, _F_REM_TERM = 1, 3, 7
_F_AMORT = (19, 20, 21, 22)  # is_annuity, is_linear, is_bullet, is_interest_only


def _feature_constants() -> dict[str, tuple[int, float, float]]:
    return {name: (i, centre, scale) for i, (name, centre, scale) in enumerate(LOAN_FEATURES)}


@dataclass
class TrajectoryConfig(JSONConfig):
    """Hyper-parameters of :class:`LoanTrajectoryModel`; the first eight fields are the spec's.

    Size bounds (``LIMITS``, inclusive; a checkpoint outside them is refused before building):
    ``d_model`` 1..512, ``n_heads`` 1..64, ``n_layers`` 1..16, ``diffusion_steps`` 2..10000,
    ``max_months`` 1..1200, ``diffusion_hidden`` 1..4096. The shipped model uses 32/4/2/50/120/64.
    """

    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "d_model": (1, 512), "n_heads": (1, 64), "n_layers": (1, 16), "diffusion_steps": (2, 10_000),
        "max_months": (1, 1200), "diffusion_hidden": (1, 4096),
    }

    n_loan_features: int = 24
    n_states: int = 7
    d_model: int = 256
    n_heads: int = 8
    n_layers: int = 6
    diffusion_steps: int = 100
    idio_scale: float = 0.3  # sd of the log-odds frailty of adverse moves in generate (see module doc)
    dropout: float = 0.1
    # extensions (defaults keep the spec's constructor working)
    max_months: int = 120  # longest sequence (position embeddings)
    n_macro_vars: int = 9
    diffusion_hidden: int = 128  # width of the denoiser MLP
    value_weight: float = 1.0  # weight of the diffusion loss in the training loss
    # per-month covariates observed at the start of each month (balance, utilisation, payment, bureau
    # data...); 0 = none, the spec's model. A model with them scores and trains on real panels
    # (forward's ``step_features``); generation would need their future values and refuses.
    n_step_features: int = 0
    # generation: 0 samples the values with the full ancestral chain of diffusion_steps; 2..diffusion_steps
    # uses DDIM on that many steps with noise scale sampling_eta (creditsim.loans.diffusion_sampling; an
    # approximation to be checked with its sampler_check before use)
    sampling_steps: int = 0
    sampling_eta: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_loan_features", "n_states", "d_model", "n_heads", "n_layers", "diffusion_steps",
                     "max_months", "n_macro_vars", "diffusion_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"TrajectoryConfig.{name} must be a positive integer, got {value!r}")
        if self.n_states != N_STATES:
            raise ConfigError(f"TrajectoryConfig.n_states must be {N_STATES} (LoanState), got {self.n_states}")
        self.check_limits()
        if self.n_loan_features != 24:
            raise ConfigError(f"TrajectoryConfig.n_loan_features must be 24 (loan_features), got {self.n_loan_features}")
        if self.n_macro_vars != len(MACRO_VARS):
            raise ConfigError(f"TrajectoryConfig.n_macro_vars must be {len(MACRO_VARS)}, got {self.n_macro_vars}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"TrajectoryConfig.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.diffusion_steps < 2:
            raise ConfigError(f"TrajectoryConfig.diffusion_steps must be >= 2, got {self.diffusion_steps}")
        if isinstance(self.n_step_features, bool) or not isinstance(self.n_step_features, (int, np.integer)) \
                or not 0 <= self.n_step_features <= 1024:
            raise ConfigError(f"TrajectoryConfig.n_step_features must be an integer in 0..1024, got {self.n_step_features!r}")
        try:  # the sampler's own checks (generate's keywords go through the same function)
            plan_for(self.diffusion_steps, self.sampling_steps, self.sampling_eta)
        except ConfigError as exc:
            raise ConfigError(f"TrajectoryConfig.{exc}") from None
        for name in ("idio_scale", "value_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"TrajectoryConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.idio_scale > IDIO_SCALE_MAX:
            raise ConfigError(_idio_scale_message("TrajectoryConfig.idio_scale", self.idio_scale))
        if isinstance(self.dropout, bool) or not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"TrajectoryConfig.dropout must be in [0, 1), got {self.dropout!r}")


# ------------------------------------------------------------------------------------------ validation
def _as_tensor(x: object, name: str, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.to(device=device, dtype=dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name}: expected a numeric array, got {type(x).__name__}") from exc
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = torch.nonzero(~torch.isfinite(t))[:10, 0].tolist()
        raise DataError(f"{name}: NaN or infinite values at rows {format_labels(bad)}; expected finite numbers")
    return t


def _check_features(loan_features: object, device: torch.device) -> torch.Tensor:
    if hasattr(loan_features, "to_numpy") and not isinstance(loan_features, torch.Tensor):
        loan_features = loan_features.to_numpy(np.float32)
    x = _as_tensor(loan_features, "loan_features", device)
    if x.ndim != 2 or x.shape[1] != 24:
        raise DataError(f"loan_features: expected shape (batch, 24) (creditsim.features.loan_features), "
                        f"got {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise DataError("loan_features: expected at least one loan, got 0 rows")
    return x


def _check_cohort(cohort: object, batch: int | None, device: torch.device, atol: float = 1e-3) -> torch.Tensor:
    """``(batch, T, 7, 7)`` stochastic matrices with allowed moves only; ``batch`` None: any number of
    cohorts (generate's ``cohort_index`` form), at least one."""
    p = _as_tensor(cohort, "cohort_transitions", device)
    if p.ndim != 4 or (p.shape[0] != batch if batch is not None else p.shape[0] < 1) \
            or p.shape[2:] != (N_STATES, N_STATES):
        want = (f"({batch}, T, {N_STATES}, {N_STATES}) (one matrix per loan and month)" if batch is not None
                else f"(G, T, {N_STATES}, {N_STATES}) (one matrix per cohort and month, G >= 1)")
        raise DataError(f"cohort_transitions: expected shape {want}, got {tuple(p.shape)}")
    if p.shape[1] < 1:
        raise DataError("cohort_transitions: expected at least one month, got T = 0")
    what = "loan" if batch is not None else "cohort"
    neg = p < 0
    if bool(neg.any()):
        b, t, i, j = torch.nonzero(neg)[0].tolist()
        raise DataError(f"cohort_transitions: negative probability at ({what} {b}, month {t}, {i} -> {j}); "
                        "expected stochastic rows")
    forbidden = torch.from_numpy(~ALLOWED_TRANSITIONS).to(device)
    leak = (p > 0) & forbidden
    if bool(leak.any()):
        b, t, i, j = torch.nonzero(leak)[0].tolist()
        raise DataError(f"cohort_transitions: forbidden move {LoanState(i).name} -> {LoanState(j).name} has probability "
                        f"{float(p[b, t, i, j]):.3g} at ({what} {b}, month {t}); expected exactly 0")
    off = (p.sum(-1) - 1.0).abs() > atol
    if bool(off.any()):
        b, t, i = torch.nonzero(off)[0].tolist()
        raise DataError(f"cohort_transitions: row {LoanState(i).name} of ({what} {b}, month {t}) sums to "
                        f"{float(p[b, t, i].sum()):.6f}; expected 1 (tolerance {atol})")
    return p


def _check_cohort_index(cohort_index: object, batch: int, n_cohorts: int, device: torch.device) -> torch.Tensor:
    """``(batch,)`` long row of each loan's cohort in ``0 .. n_cohorts - 1``."""
    idx = np.asarray(cohort_index.detach().cpu() if isinstance(cohort_index, torch.Tensor) else cohort_index)
    if idx.shape != (batch,) or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"cohort_index: expected ({batch},) integers (each loan's row of cohort_transitions), "
                        f"got shape {idx.shape} of {idx.dtype}")
    bad = np.flatnonzero((idx < 0) | (idx >= n_cohorts))
    if len(bad):
        raise DataError(f"cohort_index: rows {format_labels(bad)} are outside 0..{n_cohorts - 1} "
                        f"(cohort_transitions holds {n_cohorts} cohorts)")
    return torch.as_tensor(idx.astype(np.int64), device=device)


def _check_macro(macro_path: object, batch: int, n_months: int, device: torch.device) -> torch.Tensor:
    """``None`` -> zeros (macro at the anchors); ``(T', 9)`` or ``(B, T', 9)`` with ``T' >= T``."""
    if macro_path is None:
        return torch.zeros(batch, n_months, len(MACRO_VARS), device=device)
    if hasattr(macro_path, "to_numpy") and not isinstance(macro_path, torch.Tensor):
        macro_path = macro_path.to_numpy(np.float64)
    m = _as_tensor(macro_path, "macro_path", device)
    if m.ndim == 2:
        m = m.unsqueeze(0).expand(batch, -1, -1)
    if m.ndim != 3 or m.shape[0] != batch or m.shape[2] != len(MACRO_VARS) or m.shape[1] < n_months:
        raise DataError(f"macro_path: expected shape (T, 9) or ({batch}, T, 9) in MACRO_VARS order with "
                        f"T >= {n_months} months, got {tuple(m.shape)}")
    centre = torch.tensor(_MACRO_CENTRE, device=device)
    scale = torch.tensor(_MACRO_SCALE, device=device)
    return (m[:, :n_months] - centre) / scale


def _check_scenario_macro(macro_paths: object, n_scenarios: int, n_months: int, device: torch.device) -> torch.Tensor:
    """``None`` -> zeros (the anchors); ``(S, T', 9)`` with ``T' >= T`` -> ``(S, 1, T, 9)`` standardised (one path
    per scenario, shared by its loans: expanded per chunk, never per loan here)."""
    if macro_paths is None:
        return torch.zeros(n_scenarios, 1, n_months, len(MACRO_VARS), device=device)
    if hasattr(macro_paths, "to_numpy") and not isinstance(macro_paths, torch.Tensor):
        macro_paths = macro_paths.to_numpy(np.float64)
    m = macro_paths if isinstance(macro_paths, torch.Tensor) else torch.as_tensor(np.asarray(macro_paths, np.float64))
    m = m.to(device=device, dtype=torch.float32)
    if m.ndim != 3 or m.shape[0] != n_scenarios or m.shape[2] != len(MACRO_VARS) or m.shape[1] < n_months:
        raise DataError(f"macro_paths: expected ({n_scenarios}, T, {len(MACRO_VARS)}) (one path per scenario, "
                        f"MACRO_VARS order) with T >= {n_months} months, got {tuple(m.shape)}")
    bad = torch.nonzero(~torch.isfinite(m))[:, 0].unique().tolist()
    if bad:
        raise DataError(f"macro_paths: NaN or infinite values in scenarios {format_labels(bad)}; "
                        "expected finite numbers")
    centre = torch.tensor(_MACRO_CENTRE, device=device)
    scale = torch.tensor(_MACRO_SCALE, device=device)
    return ((m[:, :n_months] - centre) / scale).unsqueeze(1)


def _log_rows(rows: torch.Tensor) -> torch.Tensor:
    """The model's input from cohort rows ``(..., 7)``: log probabilities, floored at COHORT_PROB_FLOOR."""
    return torch.log(rows.clamp(min=COHORT_PROB_FLOOR))


def loan_terms_from_features(loan_features: object) -> dict[str, np.ndarray]:
    """Recover the loan terms ``generate`` needs from standardised :func:`loan_features` output.

    Inverts the fixed standardisation of :data:`creditsim.features.LOAN_FEATURES`:
    ``balance = expm1(log_current_balance)`` (currency units, float32 precision, about 1e-6
    relative), annual ``interest_rate``, ``remaining_term`` = rounded months, ``amortization`` =
    the one-hot type (annuity if none is set). Interest-only periods are unknown here (0: such loans
    amortise as annuities); pass exact ``loan_terms`` to ``generate`` when they matter.

    Returns:
        dict of ``(B,)`` arrays: balance float64, interest_rate float64 (annual decimal),
        remaining_term int64 (months), amortization int64 (codes of
        :data:`creditsim.schema.AMORTIZATION_TYPES`).
    """
    x = loan_features.detach().cpu().numpy() if isinstance(loan_features, torch.Tensor) else np.asarray(loan_features)
    x = x.astype(np.float64)
    c = _feature_constants()
    _, mu_b, sd_b = c["log_current_balance"]
    _, mu_r, sd_r = c["interest_rate"]
    _, mu_t, sd_t = c["remaining_term_years"]
    amort_cols = x[:, list(_F_AMORT)]
    return {
        "balance": np.expm1(x[:, _F_LOG_CUR_BAL] * sd_b + mu_b),
        "interest_rate": np.clip(x[:, _F_RATE] * sd_r + mu_r, 0.0, 1.0),
        "remaining_term": np.maximum(np.rint((x[:, _F_REM_TERM] * sd_t + mu_t) * 12.0), 0).astype(np.int64),
        "amortization": np.where(amort_cols.max(axis=1) > 0, amort_cols.argmax(axis=1), 0).astype(np.int64),
    }


def censored_state_nll(state_logits: torch.Tensor, target: torch.Tensor, w_obs: torch.Tensor,
                       w_cens: torch.Tensor) -> torch.Tensor:
    """Mean NLL per scored month of teacher-forced ``state_logits`` ``(B, T, 7)``: ``-log p(target)`` where
    ``w_obs`` ``(B, T)`` is set, ``-log(1 - P(DEFAULT))`` on a censored default-free month (``w_cens``),
    over the number of such months (at least 1). The training and scoring likelihood of loan sequences
    from a real panel (the harness contestant and the panel trainer)."""
    logp = torch.log_softmax(state_logits, dim=-1)
    hit = logp.gather(2, target.unsqueeze(-1)).squeeze(-1)
    ll = torch.where(w_obs > 0, hit, torch.zeros_like(hit)).sum()
    survive = torch.log1p(-logp[..., int(LoanState.DEFAULT)].exp().clamp(max=1.0 - 1e-7))
    ll = ll + torch.where(w_cens > 0, survive, torch.zeros_like(survive)).sum()
    return -ll / (w_obs.sum() + w_cens.sum()).clamp_min(1.0)


def remaining_term(loan_features: torch.Tensor) -> torch.Tensor:
    """``(B,)`` int64 months of payments left at the cut-off, from the remaining-term feature."""
    _, mu, sd = _feature_constants()["remaining_term_years"]
    months = torch.round((loan_features[:, _F_REM_TERM].double() * sd + mu) * 12.0)
    return months.clamp(min=0).long()


# ------------------------------------------------------------------------------------- transformer
# ---------------------------------------------------------------------------------- diffusion head
def trajectory_flows(generated: Mapping[str, Any]) -> dict[str, Any]:
    """The loan flows of a :meth:`LoanTrajectoryModel.generate` result under the
    :data:`creditsim.loans.pool.LOAN_FLOWS` names (``losses`` -> ``loss``, ``balances`` -> ``balance``),
    each ``(n_samples, L, T)``: the input of :func:`creditsim.loans.pool.pool_cashflows`."""
    names = {"loss": "losses", "balance": "balances"}
    return {k: generated[names.get(k, k)] for k in LOAN_FLOWS}


def cosine_schedule(steps: int, s: float = 0.008) -> torch.Tensor:
    """``(steps,)`` float64 betas of the cosine schedule (Nichol & Dhariwal 2021), capped at 0.999."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)


class DiffusionHead(nn.Module):
    """Noise predictor ``eps(y_k, k, cond)`` for the ``(N, 2)`` value vectors; small MLP.

    The conditioning enters once per loan-month (:meth:`cond_features`), so each of the K sampling
    steps costs one ``(hidden x hidden)`` layer per row.
    """

    def __init__(self, cfg: TrajectoryConfig):
        super().__init__()
        h = cfg.diffusion_hidden
        self.cond = nn.Linear(cfg.d_model, h)
        self.x_in = nn.Linear(N_VALUES, h)
        self.step_emb = nn.Embedding(cfg.diffusion_steps, h)
        self.hidden = nn.Linear(h, h)
        self.out = nn.Linear(h, N_VALUES)

    def cond_features(self, value_params: torch.Tensor) -> torch.Tensor:
        return self.cond(value_params)

    def forward(self, y: torch.Tensor, k: torch.Tensor, cond_h: torch.Tensor) -> torch.Tensor:
        return self._eps(y, self.step_emb(k), cond_h)

    def forward_step(self, y: torch.Tensor, k: int, cond_h: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with one step ``k`` for every row: the step's embedding row is broadcast, not
        looked up per row (the same sums, element by element)."""
        return self._eps(y, self.step_emb.weight[k], cond_h)

    def _eps(self, y: torch.Tensor, step: torch.Tensor, cond_h: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` predicted noise of ``y`` ``(N, 2)``, step embedding ``step`` ``(h,)`` or ``(N, h)``,
        conditioning ``cond_h`` ``(N, h)``. Without autograd the sums and SiLUs run in place on fresh
        ``(N, h)`` tensors (the same values: ``x_in(y) + cond_h`` is ``cond_h + x_in(y)`` exactly)."""
        z = self.x_in(y)
        if torch.is_grad_enabled() or cond_h.shape != z.shape:
            return self.out(F.silu(self.hidden(F.silu(cond_h + z + step))))
        z = F.silu(z.add_(cond_h).add_(step), inplace=True)
        return self.out(F.silu(self.hidden(z), inplace=True))


# ------------------------------------------------------------------------------ generation helpers
class _BlockDraws:
    """The random streams of a chunk of ``L`` loans: one CPU generator per block of
    :data:`RNG_LOAN_BLOCK` loans and seed, keyed by (seed, global block index), so chunking never changes a
    loan's draws as long as every stream is consumed in the same order (the frailty, then the month's
    uniforms); and the counter-based value noise of each path-month (:mod:`creditsim.loans.value_noise`),
    drawn only for the paths that need values. Several seeds (scenarios generated together,
    :meth:`LoanTrajectoryModel.generate_scenarios`) each keep their own streams."""

    def __init__(self, seeds: tuple[int, ...], first_block: int, n_loans: int, device: torch.device):
        n_blocks = -(-n_loans // RNG_LOAN_BLOCK)
        self._streams = [[torch.Generator().manual_seed(torch_seed(seed, first_block + b)) for b in range(n_blocks)]
                         for seed in seeds]
        self._noise_keys = value_noise_keys(seeds)
        self._first_loan = first_block * RNG_LOAN_BLOCK
        self._n_loans = n_loans
        self._device = device
        self._uniforms: torch.Tensor | None = None
        self._uniform_shape = (0, 0)

    def normals(self, rows: torch.Tensor, n_samples: int, month: int, n_noise: int) -> torch.Tensor:
        """``(n_noise, n, 2)`` float32 value noise of the paths ``rows`` ``(n,)`` (the chunk's path-major
        rows, ``seed-major, sample, loan``) in month ``month``, on the device."""
        r = rows.cpu().numpy()
        path, loan = np.divmod(r, self._n_loans)
        seed_index, sample = np.divmod(path, n_samples)
        return path_normals(self._noise_keys, seed_index, loan + self._first_loan, sample, month,
                            n_noise).to(self._device)

    def month_uniforms(self, month: int, n_samples: int, n_months: int) -> torch.Tensor:
        """``(N,)`` the state uniforms of month ``month`` of ``n_months``: every stream's next ``(n_samples,
        RNG_LOAN_BLOCK)`` draw in month order. All months are drawn on the first call, one ``rand`` per stream
        (a CPU generator's uniforms come one after another, so ``(n_months, ...)`` at once are the draws of the
        months in turn, bit for bit): a call per stream and month cost more than its draws. Call it after the other draws
        (the frailty) and for no other draw after."""
        if self._uniforms is None:
            self._uniforms = self.draw((n_months, n_samples, RNG_LOAN_BLOCK), 2, False).reshape(n_months, -1)
            self._uniform_shape = (n_samples, n_months)
        if (n_samples, n_months) != self._uniform_shape or not 0 <= month < n_months:
            raise ValueError(f"_BlockDraws.month_uniforms: month {month} of {n_months} with {n_samples} samples asked, "
                             f"drawn for {self._uniform_shape[0]} samples and {self._uniform_shape[1]} months")
        return self._uniforms[month]

    def draw(self, shape: tuple[int, ...], loan_axis: int, normal: bool) -> torch.Tensor:
        """One draw of ``shape`` per block stream, concatenated along ``loan_axis`` and cut to L; the seeds'
        draws in turn along the axis before it (the paths' sample axis: seed-major)."""
        fn = torch.randn if normal else torch.rand
        per_seed = [torch.cat([fn(*shape, generator=g) for g in streams], dim=loan_axis)
                    .narrow(loan_axis, 0, self._n_loans) for streams in self._streams]
        out = per_seed[0] if len(per_seed) == 1 else torch.cat(per_seed, dim=loan_axis - 1)
        return out.to(self._device)


def _contract_tables(terms: Mapping[str, np.ndarray], n_months: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contractual schedule of ``L`` loans, columns = payments made since the cut-off (float64 money).

    Returns ``(B (L, n_cols + 1), CI (L, n_cols + 1), n (L,) long)``: the scheduled balance and the
    cumulative interest after ``j`` payments, and the number of payments (capped at the columns, so a
    loan past its last payment owes nothing more: remaining interest = ``CI(n) - CI(P)``), with
    ``n_cols = min(max payments, T)``.
    """
    n_pay = np.maximum(terms["remaining_term"], 1)
    n_cols = int(min(n_pay.max(), n_months))
    sched = amortization_schedule(terms["balance"], terms["interest_rate"] / 12.0, n_pay, terms["amortization"],
                                  io_months=terms.get("io_months"), n_columns=n_cols)
    L = len(n_pay)
    sbal = torch.as_tensor(sched.balance, device=device)
    cum_int = torch.cat([torch.zeros(L, 1, dtype=torch.float64), torch.as_tensor(sched.interest).cumsum(1)], 1).to(device)
    n_idx = torch.as_tensor(np.minimum(n_pay, n_cols), device=device)
    return sbal, cum_int, n_idx


#: the months to maturity the model sees, clamped to this range (LoanTrajectoryModel._term_inputs)
_TERM_LO, _TERM_HI = -12, 120

#: a month's live paths run in batches of a multiple of this many rows, padded (LoanTrajectoryModel._sample_states)
_LIVE_STEP_ROWS = 96


def _select_rows(x: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The rows ``rows`` ``(m,)`` of ``x`` (``x`` itself for None: every row, in order)."""
    return x if rows is None else x.index_select(0, rows)


def _padded_linear(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)`` of ``x`` ``(n, in)`` run on a batch padded with copies of its last row to a multiple of
    :data:`_LIVE_STEP_ROWS` rows (the row bits of the month's padded batches), cut back to ``(n, out)``."""
    n = x.shape[0]
    return linear(x.index_select(0, _padded_rows(torch.arange(n, device=x.device))))[:n]


def _padded_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` ``(n,)`` followed by copies of its last entry up to a multiple of :data:`_LIVE_STEP_ROWS`
    (empty stays empty)."""
    n = rows.numel()
    return torch.cat([rows, rows[-1:].expand(-(-n // _LIVE_STEP_ROWS) * _LIVE_STEP_ROWS - n)])


class _PathInputs(NamedTuple):
    """Per-path inputs of the month step, ``N = n_samples x L`` rows (sample-major)."""

    feats: torch.Tensor  # (N, 24)
    cohort: torch.Tensor  # (G, T, 7, 7), shared by the paths
    cohort_row: torch.Tensor  # (N,) each path's row of cohort
    macro: torch.Tensor  # (R, T, 9) standardised macro paths, shared by the paths
    macro_row: torch.Tensor  # (N,) each path's row of macro
    rem: torch.Tensor  # (N,) payments left at the cut-off
    shift: torch.Tensor  # (N, 7, 7) frailty log-odds shift of the adverse moves
    rows: torch.Tensor  # (N,) arange, to gather each path's shift row
    tables: dict[str, Any]  # the compiled step's per-chunk tables, block steps and hidden buffer, made on first use


class _Moves(NamedTuple):
    """``(N,)`` masks and counts of one month's moves (see the module doc, "Cashflows")."""

    live: torch.Tensor  # live before the month
    due: torch.Tensor  # D_t: payments due by the end of the month
    stays: torch.Tensor  # live before and after
    new_paid: torch.Tensor  # P_t
    performing: torch.Tensor  # CURRENT -> CURRENT paying an instalment (a payment ratio applies)
    defaulted: torch.Tensor  # live -> DEFAULT (an LGD applies)


class _PathLedger:
    """Position and cash of ``N`` loan paths, month by month (float64 currency units).

    Holds each path's state, paid count ``P``, principal shortfall ``S`` and balance (module doc,
    "Cashflows") over the contractual tables of :func:`_contract_tables` (repeated per sample), and
    fills the outputs (``(T, N)`` month-major, ``(N, T)`` once done) as the months are settled in order.
    With ``fused`` (CPU tensors only) a month's moves and cash are booked by the numba passes of
    :mod:`creditsim.loans.month_ledger`, the same bits as the torch code here, which runs otherwise.
    """

    FLOWS = FLOWS

    def __init__(self, sbal: torch.Tensor, cum_int: torch.Tensor, n_idx: torch.Tensor, init: torch.Tensor, n_months: int,
                 fused: bool = False):
        N = init.shape[0]
        dev = init.device
        self._fused = fused and dev.type == "cpu"
        self._sbal, self._cum, self._n_idx = sbal.contiguous(), cum_int.contiguous(), n_idx.long().contiguous()
        self._cum_end = cum_int.gather(1, n_idx.view(-1, 1)).view(-1)  # CI(n): interest of the whole schedule
        self.state = init  # (N,) long, state at the end of the previous month
        self._paid = torch.zeros(N, dtype=torch.long, device=dev)  # P: scheduled payments settled
        self._short = torch.zeros(N, dtype=torch.float64, device=dev)  # unpaid principal carried in the balance
        self._balance = sbal[:, 0].clone()
        # month-major (T, N): a month's values are written together (an (N, T) column is N scattered writes);
        # not zeroed: settle writes every path's flows every month (an absorbed path's as 0)
        self._flows = torch.empty(len(FLOWS), n_months, N, dtype=torch.float64, device=dev)
        self._out = dict(zip(FLOWS, self._flows.unbind(0)))
        self._states = torch.empty(n_months, N, dtype=torch.int8, device=dev)
        self._lgd = torch.full((N,), float("nan"), dtype=torch.float64, device=dev)

    def moves(self, t: int, new: torch.Tensor) -> _Moves:
        """The masks and paid counts of moving from :attr:`state` to ``new`` in month ``t``."""
        if self._fused:
            N = new.shape[0]
            live, stays, performing, defaulted = (torch.empty(N, dtype=torch.bool) for _ in range(4))
            due, new_paid = torch.empty(N, dtype=torch.long), torch.empty(N, dtype=torch.long)
            month_moves(t, self.state.long().numpy(), new.long().numpy(), self._paid.numpy(), self._n_idx.numpy(),
                        live.numpy(), due.numpy(), stays.numpy(), new_paid.numpy(), performing.numpy(),
                        defaulted.numpy())
            return _Moves(live, due, stays, new_paid, performing, defaulted)
        state, paid = self.state, self._paid
        live = state <= LoanState.DPD90
        due = torch.clamp(torch.full_like(paid, t + 1), max=self._n_idx)  # D_t (payments due so far)
        stays = live & (new <= LoanState.DPD90)
        new_paid = torch.where(stays, torch.maximum(paid, due - new), paid)
        performing = stays & (state == LoanState.CURRENT) & (new == LoanState.CURRENT) & (new_paid > paid)
        defaulted = live & (new == LoanState.DEFAULT)
        return _Moves(live, due, stays, new_paid, performing, defaulted)

    def settle(self, t: int, new: torch.Tensor, mv: _Moves, values: torch.Tensor) -> None:
        """Book month ``t``'s cash for the moves ``mv`` into ``new`` with ``values`` ``(N, 2)``, advance."""
        if self._fused:
            new = new.long()
            settle_month(t, new.numpy(), *(x.numpy() for x in mv), values.double().contiguous().numpy(),
                         self._sbal.numpy(), self._cum.numpy(), self._cum_end.numpy(), self._paid.numpy(),
                         self._short.numpy(), self._balance.numpy(), self._lgd.numpy(), self._flows.numpy(),
                         self._states.numpy())
            self.state = new
            return
        sbal, cum, paid, short = self._sbal, self._cum, self._paid, self._short
        at = lambda table, j: table.gather(1, j.view(-1, 1)).view(-1)  # noqa: E731 -- each path's column j
        b_prev, b_new, c_paid = at(sbal, paid), at(sbal, mv.new_paid), at(cum, paid)
        sched_prin = b_prev - b_new
        sched_int = at(cum, mv.new_paid) - c_paid
        ratio = torch.where(mv.performing, values[:, 0], torch.ones_like(short))
        prin = ratio * sched_prin
        intr = ratio * sched_int
        short_new = short + (sched_prin - prin)
        # exits
        prepaid = mv.live & (new == LoanState.PREPAID)
        matured = mv.live & (new == LoanState.MATURED)
        pre_paid_to = torch.maximum(paid, mv.due)
        pre_int = at(cum, pre_paid_to) - c_paid
        pre_prin = b_prev - at(sbal, pre_paid_to)
        mat_int = self._cum_end - c_paid
        exposure = b_prev + short
        intr = torch.where(prepaid, pre_int, torch.where(matured, mat_int, torch.where(mv.stays, intr, 0.0)))
        prin = torch.where(prepaid, pre_prin, torch.where(matured, exposure, torch.where(mv.stays, prin, 0.0)))
        prepay = torch.where(prepaid, exposure - pre_prin, torch.zeros_like(short))
        par = torch.where(mv.defaulted, exposure, torch.zeros_like(short))
        lgd = values[:, 1]
        loss = torch.where(mv.defaulted, lgd * par, torch.zeros_like(short))
        self._lgd = torch.where(mv.defaulted, lgd, self._lgd)
        new_balance = torch.where(mv.stays, b_new + short_new, torch.where(mv.live, 0.0, self._balance))
        # absorbed loans carry balance 0 already; a loan absorbed before the cut-off is not supported
        out = self._out
        out["interest"][t] = intr
        out["scheduled_principal"][t] = prin
        out["prepayment"][t] = prepay
        torch.add(intr + prin, prepay, out=out["payments"][t])
        out["default_par"][t] = par
        out["losses"][t] = loss
        out["balances"][t] = new_balance
        self._states[t] = new
        self.state = new
        self._paid = mv.new_paid
        self._short = torch.where(mv.stays, short_new, torch.zeros_like(short))
        self._balance = new_balance

    def result(self, n_samples: int, n_loans: int) -> dict[str, torch.Tensor]:
        """The outputs as ``(n_samples, L, T)`` (``lgd`` ``(n_samples, L)``)."""
        res = {k: v.t().contiguous().view(n_samples, n_loans, -1) for k, v in self._out.items()}
        res["states"] = self._states.t().contiguous().view(n_samples, n_loans, -1)
        res["lgd"] = self._lgd.view(n_samples, n_loans)
        return res


# --------------------------------------------------------------------------------------------- model
class LoanTrajectoryModel(nn.Module):
    """Autoregressive transformer over months with a diffusion head for the continuous values.

    See the module docstring for the model, the maturity rule, the cashflow conventions and the role
    of ``idio_scale``.
    """

    value_names: tuple[str, ...] = VALUE_NAMES  # the diffusion head's values, in order
    # generate's value chain and attention steps in the compiled kernels where they are built
    # (creditsim.loans.diffusion_kernel, creditsim.nn.attention_kernel), its state draw and ledger in numba
    # (month_states, month_ledger); False runs all in torch (the same paths and values to float32 rounding;
    # the ledger's the same bits). Not part of the checkpoint.
    fused_kernels: bool = True

    def __init__(self, config: TrajectoryConfig):
        super().__init__()
        if not isinstance(config, TrajectoryConfig):
            raise ConfigError(f"config must be a TrajectoryConfig, got {type(config).__name__}")
        self.config = cfg = config
        d = cfg.d_model
        self.state_emb = nn.Embedding(N_STATES, d)  # previous state (input)
        self.feat_proj = nn.Linear(cfg.n_loan_features, d)
        self.row_proj = nn.Linear(N_STATES, d)  # log cohort row of the previous state
        self.macro_proj = nn.Linear(cfg.n_macro_vars, d)
        self.term_proj = nn.Linear(3, d)
        self.step_proj = nn.Linear(cfg.n_step_features, d) if cfg.n_step_features else None
        self.wpe = nn.Embedding(cfg.max_months, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg.d_model, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(d)
        self.correction = nn.Linear(d, N_STATES)
        self.new_state_emb = nn.Embedding(N_STATES, d)  # realised state (conditions the values)
        self.value_ln = nn.LayerNorm(d)
        self.diffusion = DiffusionHead(cfg)
        # the correction starts at 0: an untrained model reproduces the cohort matrices
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)
        betas = cosine_schedule(cfg.diffusion_steps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        # schedule buffers are derived from the config, so they are not saved in checkpoints
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        self.register_buffer("allowed", torch.from_numpy(ALLOWED_TRANSITIONS.copy()), persistent=False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inputs ----------------------------------------------------------------------------------
    def _term_inputs(self, rem: torch.Tensor, n_months: int, t0: int = 0) -> torch.Tensor:
        """``(B, T, 3)`` months to maturity / 120, maturity month flag, past-maturity flag."""
        t = torch.arange(t0, t0 + n_months, device=rem.device)
        left = (rem - 1).unsqueeze(1) - t.unsqueeze(0)  # months until the maturity month m = n - 1
        return torch.stack([left.clamp(_TERM_LO, _TERM_HI).float() / 120.0, (left == 0).float(), (left <= 0).float()],
                           dim=-1)

    def _apply_rules(self, logits: torch.Tensor, prev: torch.Tensor, rem: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Maturity relabelling and the allowed-move mask, on logits ``(..., 7)``.

        ``prev`` (...) long previous states; ``rem`` and ``t`` broadcastable to it. On live rows, before
        the maturity month ``m = rem - 1`` a payoff is a prepayment: MATURED's weight is added to
        PREPAID (``logaddexp``) and MATURED gets ``-inf``; from ``m`` on paying the last instalment is
        maturity: CURRENT's weight is added to MATURED and CURRENT gets ``-inf`` (the cashflow
        engine's relabelling, done on the logits so probabilities stay exactly normalised). Then
        every move ALLOWED_TRANSITIONS forbids gets ``-inf``.
        """
        live = (prev <= LoanState.DPD90).unsqueeze(-1)
        past = (t >= rem - 1).unsqueeze(-1)
        cur, pre, mat = logits[..., LoanState.CURRENT], logits[..., LoanState.PREPAID], logits[..., LoanState.MATURED]
        idx = torch.arange(N_STATES, device=logits.device)
        early = live & ~past
        late = live & past
        out = torch.where(early & (idx == LoanState.PREPAID), torch.logaddexp(pre, mat).unsqueeze(-1), logits)
        out = torch.where(late & (idx == LoanState.MATURED), torch.logaddexp(mat, cur).unsqueeze(-1), out)
        out = out.masked_fill((early & (idx == LoanState.MATURED)) | (late & (idx == LoanState.CURRENT)), float("-inf"))
        return out.masked_fill(~self.allowed[prev], float("-inf"))

    def _embed(self, feats: torch.Tensor, cohort: torch.Tensor, macro: torch.Tensor, prev: torch.Tensor,
               rem: torch.Tensor, t0: int, step: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings ``(B, T, d)`` and the cohort log rows ``(B, T, 7)`` of the previous states
        (``step``: the checked ``(B, T, n_step_features)`` covariates of a model that has them)."""
        B, T = prev.shape
        rows = torch.gather(cohort, 2, prev.view(B, T, 1, 1).expand(B, T, 1, N_STATES)).squeeze(2)
        return self._tokens(feats, _log_rows(rows), macro, prev, rem, t0, step)

    def _tokens(self, feats: torch.Tensor, log_rows: torch.Tensor, macro: torch.Tensor, prev: torch.Tensor,
                rem: torch.Tensor, t0: int, step: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_embed` from the log cohort rows ``(B, T, 7)`` of the previous states."""
        B, T = prev.shape
        pos = torch.arange(t0, t0 + T, device=feats.device)
        x = (self.state_emb(prev) + self.feat_proj(feats).unsqueeze(1) + self.row_proj(log_rows / 10.0)
             + self.macro_proj(macro) + self.term_proj(self._term_inputs(rem, T, t0)) + self.wpe(pos))
        if self.step_proj is not None:
            x = x + self.step_proj(step)
        return x, log_rows

    def _logits(self, h: torch.Tensor, log_rows: torch.Tensor, prev: torch.Tensor, rem: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        return self._apply_rules(log_rows + self.correction(h), prev, rem, t)

    def _value_params(self, h: torch.Tensor, new_state: torch.Tensor) -> torch.Tensor:
        return self.value_ln(h + self.new_state_emb(new_state))

    # -- training / scoring ----------------------------------------------------------------------
    def _checked_inputs(self, loan_features: object, cohort_transitions: object, macro_path: object,
                        initial_states: object, cohort_index: object = None) -> tuple[torch.Tensor, ...]:
        """The model inputs on its device, checked: ``(feats (B, 24), cohort, index (B,) long, macro (B, T, 9),
        init (B,))``; the cohort matrices are ``(B, T, 7, 7)`` with ``index = arange(B)``, or with
        :meth:`generate`'s ``cohort_index`` ``(G, T, 7, 7)`` and each loan's row of them; T at most
        ``config.max_months``."""
        dev = self.device
        feats = _check_features(loan_features, dev)
        B = feats.shape[0]
        if cohort_index is None:
            cohort = _check_cohort(cohort_transitions, B, dev)
            index = torch.arange(B, device=dev)
        else:
            cohort = _check_cohort(cohort_transitions, None, dev)
            index = _check_cohort_index(cohort_index, B, cohort.shape[0], dev)
        T = cohort.shape[1]
        if T > self.config.max_months:
            raise ConfigError(f"sequence of {T} months exceeds TrajectoryConfig.max_months={self.config.max_months}")
        return feats, cohort, index, _check_macro(macro_path, B, T, dev), self._initial_states(initial_states, B)

    def forward(
        self,
        loan_features: torch.Tensor,
        cohort_transitions: torch.Tensor,
        target_states: torch.Tensor | None = None,
        target_values: torch.Tensor | None = None,
        *,
        value_mask: torch.Tensor | None = None,
        macro_path: torch.Tensor | None = None,
        initial_states: torch.Tensor | None = None,
        step_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced pass over all months.

        Args:
            loan_features: ``(B, 24)`` standardised features (:func:`loan_features`, as of the cut-off).
            cohort_transitions: ``(B, T, 7, 7)`` row-stochastic cohort matrices of each loan's cohort,
                month ``t`` mapping the state at the end of month ``t - 1`` to month ``t``.
            target_states: ``(B, T)`` int states at the end of each month (for training). Without it
                the previous states are taken as the cut-off state held constant (a scoring shortcut:
                logits then describe month-0-style moves only) -- pass targets to score real paths.
            target_values: ``(B, T, 2)`` values in [0, 1] in :data:`VALUE_NAMES` order, with
                ``value_mask`` ``(B, T, 2)`` bool telling which are defined; needs target_states.
            macro_path: ``(T, 9)`` or ``(B, T, 9)`` decimals in MACRO_VARS order; None = the anchors.
            initial_states: ``(B,)`` state at the cut-off; default CURRENT.
            step_features: ``(B, T, n_step_features)`` covariates known at the start of each month,
                standardised; required exactly when ``config.n_step_features > 0``.

        Returns:
            dict with ``state_logits`` ``(B, T, 7)`` (``-inf`` on impossible moves), ``value_params``
            ``(B, T, d_model)`` (the diffusion head's conditioning of each loan-month, for the target
            state when given, else for the most likely state), ``hidden`` ``(B, T, d_model)``; with
            targets also ``loss``, ``state_loss`` (mean cross-entropy per live month, nats) and
            ``value_loss`` (DDPM noise MSE; 0 without target_values).
        """
        dev = self.device
        feats, cohort, _, macro, init = self._checked_inputs(loan_features, cohort_transitions, macro_path, initial_states)
        B, T = cohort.shape[:2]
        rem = remaining_term(feats)
        if target_states is not None:
            states = self._check_states(target_states, B, T)
            prev = torch.cat([init.unsqueeze(1), states[:, :-1]], dim=1)
        else:
            states, prev = None, init.unsqueeze(1).expand(B, T)
        x, log_rows = self._embed(feats, cohort, macro, prev, rem, 0, self._check_step(step_features, B, T))
        x = self.drop(x)
        for block in self.blocks:
            x, _ = block(x)
        h = self.ln_f(x)
        t = torch.arange(T, device=dev).unsqueeze(0)
        logits = self._logits(h, log_rows, prev, rem.unsqueeze(1), t)
        out: dict[str, torch.Tensor] = {"state_logits": logits, "hidden": h}
        new = states if states is not None else logits.argmax(-1)
        out["value_params"] = self._value_params(h, new)
        if states is None:
            if target_values is not None:
                raise DataError("target_values given without target_states; the values are conditioned on the states")
            return out
        possible = torch.gather(torch.isfinite(logits), 2, states.unsqueeze(-1)).squeeze(-1)
        if not bool(possible.all()):
            b, m = torch.nonzero(~possible)[0].tolist()
            raise DataError(
                f"target_states: loan {b} month {m} moves {LoanState(int(prev[b, m])).name} -> {LoanState(int(states[b, m])).name}, "
                f"which ALLOWED_TRANSITIONS or the maturity rule (remaining term {int(rem[b])} months) forbids")
        live = prev <= LoanState.DPD90
        nll = F.cross_entropy(logits[live], states[live], reduction="sum") if bool(live.any()) else logits.sum() * 0
        state_loss = nll / live.sum().clamp(min=1)
        value_loss = torch.zeros((), device=dev)
        if target_values is not None:
            value_loss = self._value_loss(out["value_params"], target_values, value_mask, B, T)
        out.update(state_loss=state_loss, value_loss=value_loss,
                   loss=state_loss + self.config.value_weight * value_loss)
        return out

    def _check_step(self, step_features: object, B: int, T: int) -> torch.Tensor | None:
        n = self.config.n_step_features
        if step_features is None:
            if n:
                raise DataError(f"step_features: this model takes {n} per-month covariates; expected ({B}, {T}, {n})")
            return None
        if not n:
            raise DataError("step_features: this model has no per-month covariates (TrajectoryConfig.n_step_features = 0)")
        x = _as_tensor(step_features, "step_features", self.device)
        if x.shape != (B, T, n):
            raise DataError(f"step_features: expected shape ({B}, {T}, {n}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise DataError("step_features: NaN or infinite values; standardise and fill missing values first")
        return x

    def _initial_states(self, initial_states: object, B: int) -> torch.Tensor:
        if initial_states is None:
            return torch.full((B,), int(LoanState.CURRENT), dtype=torch.long, device=self.device)
        s = torch.as_tensor(initial_states, device=self.device)
        if s.shape != (B,) or s.is_floating_point() or bool(((s < 0) | (s > LoanState.DPD90)).any()):
            raise DataError(f"initial_states: expected ({B},) integer live states 0..3, got shape {tuple(s.shape)}")
        return s.long()

    def _check_states(self, target_states: object, B: int, T: int) -> torch.Tensor:
        s = torch.as_tensor(target_states, device=self.device)
        if s.shape != (B, T):
            raise DataError(f"target_states: expected shape ({B}, {T}) matching cohort_transitions, got {tuple(s.shape)}")
        if s.is_floating_point() or bool(((s < 0) | (s >= N_STATES)).any()):
            raise DataError(f"target_states: expected integer state codes 0..{N_STATES - 1}")
        return s.long()

    def _value_loss(self, value_params: torch.Tensor, target_values: object, value_mask: object, B: int,
                    T: int) -> torch.Tensor:
        dev = self.device
        v = _as_tensor(target_values, "target_values", dev)
        if v.shape != (B, T, N_VALUES):
            raise DataError(f"target_values: expected shape ({B}, {T}, {N_VALUES}) {list(VALUE_NAMES)}, "
                            f"got {tuple(v.shape)}")
        if value_mask is None:
            raise DataError("value_mask: required with target_values ((B, T, 2) bool, which values are defined)")
        mask = torch.as_tensor(value_mask, device=dev)
        if mask.shape != (B, T, N_VALUES):
            raise DataError(f"value_mask: expected shape ({B}, {T}, {N_VALUES}), got {tuple(mask.shape)}")
        mask = mask.bool()
        rows = mask.any(-1)
        if not bool(rows.any()):
            return torch.zeros((), device=dev)
        bad = mask & ((v < 0) | (v > 1))
        if bool(bad.any()):
            b, m, j = torch.nonzero(bad)[0].tolist()
            raise DataError(f"target_values: {VALUE_NAMES[j]} = {float(v[b, m, j]):.4g} at loan {b} month {m}; "
                            "expected [0, 1]")
        y0 = 2.0 * v[rows] - 1.0  # (N, 2)
        m = mask[rows].float()
        cond_h = self.diffusion.cond_features(value_params[rows])
        # validation passes (eval mode) use a fixed stream so the monitored loss is deterministic
        g = None if self.training else torch.Generator(device=dev).manual_seed(0)
        n = y0.shape[0]
        k = torch.randint(0, self.config.diffusion_steps, (n,), device=dev, generator=g)
        noise = torch.randn(y0.shape, device=dev, generator=g)
        ab = self.alphas_cumprod[k].unsqueeze(-1)
        y_k = ab.sqrt() * y0 + (1 - ab).sqrt() * noise
        # an undefined coordinate is replaced by pure noise: the head learns to ignore it
        y_k = torch.where(m > 0, y_k, noise)
        eps = self.diffusion(y_k, k, cond_h)
        # each value gets equal weight: defaults are ~1 % of the performing months, and an LGD head
        # drowned by the payment ratios would not learn the loan-level severity
        per_value = ((eps - noise) ** 2 * m).sum(0) / m.sum(0).clamp(min=1)
        present = m.sum(0) > 0
        return per_value[present].mean()

    # -- generation ------------------------------------------------------------------------------
    @contextmanager
    def evaluating(self) -> Iterator["LoanTrajectoryModel"]:
        """Eval mode (no dropout) for every submodule inside the block; each module's own mode back after
        (:func:`creditsim.nn.modes.eval_modes`). With every module already in eval mode it changes nothing,
        so generation running on several threads inside one such block (e.g. :meth:`pool_cashflows`) never
        flips the flags another thread reads."""
        with eval_modes([self]):
            yield self

    def _sample_values(self, value_params: torch.Tensor, noise: torch.Tensor,
                       plan: SamplingPlan | None = None) -> torch.Tensor:
        """Ancestral DDPM sampling (``plan`` None or its ``steps`` None), else DDIM on ``plan``'s steps
        (:func:`creditsim.loans.diffusion_sampling.ddim_sample`). ``value_params`` ``(N, d)``, ``noise``
        ``(plan.n_noise(K), N, 2)`` standard normal (``K + 1`` for the full chain; the first slice is
        ``y_K``). Returns ``(N, 2)`` values in [0, 1]."""
        K = self.config.diffusion_steps
        if (plan is None or plan.steps is None) and self._fused_chain(value_params, noise):
            return diffusion_kernel.ancestral_chain(self.diffusion, self._posterior_table(), value_params, noise)
        cond_h = self.diffusion.cond_features(value_params)
        if plan is not None and plan.steps is not None:
            return ddim_sample(lambda y, k: self.diffusion.forward_step(y, k, cond_h), self.alphas_cumprod, plan, noise)
        y = noise[0]
        sd_noise, sd_signal, c0, ck, sd_post = self._posterior()
        for k in range(K - 1, -1, -1):
            eps = self.diffusion.forward_step(y, k, cond_h)
            y0 = ((y - sd_noise[k] * eps) / sd_signal[k]).clamp(-1.0, 1.0)
            if k == 0:
                y = y0
                break
            # posterior q(y_{k-1} | y_k, y_0) of the forward process
            y = c0[k] * y0 + ck[k] * y + sd_post[k] * noise[K - k]
        return (y + 1.0) / 2.0

    def _fused_chain(self, value_params: torch.Tensor, noise: torch.Tensor) -> bool:
        """Whether the full chain runs in the compiled kernel (:mod:`creditsim.loans.diffusion_kernel`):
        built, wanted (``fused_kernels``), float32 on the CPU and outside autograd."""
        return (self.fused_kernels and diffusion_kernel.available() and not torch.is_grad_enabled()
                and value_params.device.type == "cpu" and noise.device.type == "cpu"
                and value_params.dtype == noise.dtype == torch.float32
                and self.diffusion.hidden.weight.dtype == torch.float32)

    def _posterior_table(self) -> torch.Tensor:
        """:meth:`_posterior` as one ``(5, K)`` float32 tensor (the same values), for the compiled chain."""
        return self._posterior_cached()[1]

    def _posterior(self) -> tuple[tuple[torch.Tensor, ...], ...]:
        """Per step ``k`` (0-d float32 tensors): ``sqrt(1 - ab_k)``, ``sqrt(ab_k)`` and the posterior's
        ``c0 = sqrt(ab_{k-1}) beta_k / (1 - ab_k)``, ``ck = sqrt(1 - beta_k) (1 - ab_{k-1}) / (1 - ab_k)``,
        ``sqrt(beta_k (1 - ab_{k-1}) / (1 - ab_k))`` (entry 0 of the last three unused), with ``ab`` =
        ``alphas_cumprod``. Computed once per schedule buffer (a month's sampling would otherwise spend
        ~10 scalar tensor ops per step on them); elementwise float32 arithmetic in the order the
        sampler used to write it, so the same bits."""
        return self._posterior_cached()[0]

    def _posterior_cached(self) -> tuple[tuple[tuple[torch.Tensor, ...], ...], torch.Tensor]:
        """(:meth:`_posterior`'s rows, :meth:`_posterior_table`), computed once per schedule buffer."""
        ab, beta = self.alphas_cumprod, self.betas
        # in-place edits too; buffers made under torch.inference_mode have no version: recomputed every call; an
        # edit torch counts no version for (through .data or numpy) is caught by the bits kept beside the key
        fresh = ab.is_inference() or beta.is_inference()
        key = None if fresh else (ab.device, ab.data_ptr(), beta.data_ptr(), ab._version, beta._version)
        cached = getattr(self, "_posterior_cache", None)
        if (fresh or cached is None or cached[0] != key or not attention_kernel.same_bits(cached[2], ab)
                or not attention_kernel.same_bits(cached[3], beta)):
            one_minus = 1 - ab
            prev = torch.cat([ab[:1], ab[:-1]])  # ab_{k-1}; entry 0 is a placeholder
            c0 = prev.sqrt() * beta / one_minus
            ck = (1 - beta).sqrt() * (1 - prev) / one_minus
            var = beta * (1 - prev) / one_minus
            table = torch.stack([one_minus.sqrt(), ab.sqrt(), c0, ck, var.sqrt()])
            cached = (key, (tuple(x.unbind() for x in table), table), ab.clone(), beta.clone())
            self._posterior_cache = cached
        return cached[1]

    @torch.no_grad()
    @serial_torch()  # small step-by-step ops: one thread, no idle-thread spinning (creditsim.threads)
    def generate(
        self,
        loan_features: torch.Tensor,
        cohort_transitions: torch.Tensor,
        macro_path: torch.Tensor | None,
        n_samples: int = 1,
        *,
        loan_terms: Mapping[str, object] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        idio_scale: float | None = None,
        initial_states: object | None = None,
        chunk_size: int = 4096,
        cohort_index: object | None = None,
        sampling_steps: int | None = None,
        sampling_eta: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Sample loan paths autoregressively (key/value cache, one month per step).

        Args:
            loan_features: ``(B, 24)`` standardised features as of the cut-off.
            cohort_transitions: ``(B, T, 7, 7)`` cohort matrices (the scenario's systematic risk), one per
                loan; or ``(G, T, 7, 7)``, one per cohort, with ``cohort_index``.
            macro_path: ``(T, 9)`` or ``(B, T, 9)`` decimals, MACRO_VARS order (None = the anchors).
            n_samples: independent paths per loan (idiosyncratic draws only; the scenario is fixed by
                the cohort matrices and the macro path).
            loan_terms: optional exact terms, ``{"balance", "interest_rate" (annual decimal),
                "remaining_term" (months), "amortization" (codes or names), "io_months" (optional)}``
                each ``(B,)``; default :func:`loan_terms_from_features`.
            seed: integer seed; the frailty and state uniforms of loan ``i`` come from the stream of its
                block of :data:`RNG_LOAN_BLOCK` loans, its value noise from counter-based streams of its
                own path-months (:mod:`creditsim.loans.value_noise`), all drawn on the CPU, so the draws do
                not depend on ``chunk_size``, the device or the rest of the book (the network's float32
                arithmetic can round differently on another device: states agree, amounts to float
                precision). Default 0.
            generator: alternative to ``seed``: a CPU ``torch.Generator`` whose first draw seeds the
                streams (advances it).
            idio_scale: frailty sd in [0, :data:`IDIO_SCALE_MAX`]; default ``config.idio_scale``.
            initial_states: ``(B,)`` live states at the cut-off (default CURRENT).
            chunk_size: loans per chunk (rounded up to a multiple of RNG_LOAN_BLOCK); bounds memory.
            cohort_index: ``(B,)`` integers, loan ``b``'s row of a ``(G, T, 7, 7)`` ``cohort_transitions``:
                the matrices are checked once per cohort and read per loan as each month needs them, not
                copied per loan (the engine's form; the same paths as the expanded ``(B, T, 7, 7)``).
            sampling_steps: steps of the value sampler: 0 the full ancestral chain, 2..diffusion_steps DDIM
                (:mod:`creditsim.loans.diffusion_sampling`); default ``config.sampling_steps``.
            sampling_eta: DDIM noise scale in [0, 1]; default ``config.sampling_eta``. The states do not
                depend on the two (the value noise has streams of its own): the samplers give the same
                state paths and differ in the values alone (``sampler_check`` compares those).

        Returns:
            dict of ``(n_samples, B, T)`` tensors on the model's device: ``states`` int8 (end of
            month); float64 currency units ``payments`` (cash from the borrower = interest +
            scheduled_principal + prepayment), ``balances`` (end of month, 0 once absorbed),
            ``losses`` (``lgd x default_par`` in the default month), and the components
            ``interest``, ``scheduled_principal``, ``prepayment``, ``default_par``; plus ``lgd``
            ``(n_samples, B)`` float64 (NaN where the loan did not default) and ``opening_balance``
            ``(B,)``.

        Raises:
            DataError: inputs of the wrong shape, NaN or infinite, or matrices that are not transition
                matrices (rows summing to 1, no forbidden move).
            ConfigError: bad options (``n_samples``, ``idio_scale``, sampler settings, a horizon beyond
                ``max_months``).
            NumericalError: the model itself gave NaN or infinite next-state probabilities or NaN values
                on finite inputs (a corrupt checkpoint, or inputs far outside its training range).
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        plan, sigma = self._generation_settings(chunk_size, idio_scale, sampling_steps, sampling_eta)
        if seed is not None and generator is not None:
            raise ConfigError("pass either seed or generator, not both")
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        seed = 0 if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        feats, cohort, index, macro, init = self._checked_inputs(loan_features, cohort_transitions, macro_path,
                                                                 initial_states, cohort_index)
        terms = self._check_terms(loan_terms, feats, index.shape[0])
        return self._generate(feats, (cohort.unsqueeze(0), index), macro.unsqueeze(0), init, terms, int(n_samples),
                              sigma, (int(seed),), plan, int(chunk_size))

    @torch.no_grad()
    @serial_torch()
    def generate_scenarios(
        self,
        loan_features: torch.Tensor,
        cohort_transitions: torch.Tensor,
        macro_paths: torch.Tensor | None,
        seeds: object,
        *,
        loan_terms: Mapping[str, object] | None = None,
        idio_scale: float | None = None,
        initial_states: object | None = None,
        chunk_size: int = 1024,
        cohort_index: object | None = None,
        sampling_steps: int | None = None,
        sampling_eta: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """One path per loan under each of ``S`` scenarios, generated together (one batched month loop).

        Scenario ``s`` gives what :meth:`generate` gives for ``(loan_features, cohort_transitions[s],
        macro_paths[s], 1, seed=seeds[s])`` and the same keywords: the same draws (each seed keeps its own
        streams), and on the CPU the same bits (tests/loans/test_trajectory_scenarios.py), since every
        path's arithmetic is its own row's. Batching the scenarios is what a step-by-step loop of small
        operations needs: the per-operation cost is paid once per month for all of them, and a GPU gets
        batches large enough to fill it.

        Args:
            loan_features: ``(B, 24)`` as in :meth:`generate`.
            cohort_transitions: ``(S, G, T, 7, 7)`` with ``cohort_index`` ``(B,)``, or ``(S, B, T, 7, 7)``.
            macro_paths: ``(S, T, 9)`` decimals (None = the anchors).
            seeds: ``S`` non-negative integers, one per scenario.
            chunk_size: loans per chunk (rounded up to a multiple of RNG_LOAN_BLOCK): a chunk holds
                ``S x chunk_size`` paths, which bounds memory (~40 kB a path at 60 months).
            loan_terms, idio_scale, initial_states, cohort_index, sampling_steps, sampling_eta: as in
                :meth:`generate`.

        Returns:
            :meth:`generate`'s dict with the scenario axis in place of the sample axis: ``(S, B, T)``
            tensors, ``lgd`` ``(S, B)``, ``opening_balance`` ``(B,)``.
        """
        plan, sigma = self._generation_settings(chunk_size, idio_scale, sampling_steps, sampling_eta)
        feats, cohort, index, macro, init, seed_list = self._scenario_inputs(loan_features, cohort_transitions,
                                                                             macro_paths, seeds, initial_states,
                                                                             cohort_index)
        terms = self._check_terms(loan_terms, feats, index.shape[0])
        return self._generate(feats, (cohort, index), macro, init, terms, 1, sigma, seed_list, plan, int(chunk_size))

    def _scenario_inputs(self, loan_features: object, cohort_transitions: object, macro_paths: object, seeds: object,
                         initial_states: object, cohort_index: object) -> tuple[Any, ...]:
        """:meth:`generate_scenarios`' inputs checked: ``(feats (B, 24), cohort (S, G, T, 7, 7), index (B,),
        macro (S, 1, T, 9) standardised, init (B,), seeds (S,) ints)``; a bad scenario is named."""
        dev = self.device
        p = _as_tensor(cohort_transitions, "cohort_transitions", dev)
        if p.ndim != 5 or p.shape[0] < 1:
            raise DataError(f"cohort_transitions: expected (S, G, T, 7, 7) with cohort_index or (S, B, T, 7, 7), "
                            f"S >= 1 scenarios, got {tuple(p.shape)}")
        S = p.shape[0]
        seed_list = seeds.tolist() if isinstance(seeds, (torch.Tensor, np.ndarray)) else seeds
        if isinstance(seed_list, (list, tuple)):  # 0-d integer tensors as Python ints
            seed_list = [int(x) if isinstance(x, torch.Tensor) and x.ndim == 0 and not x.is_floating_point()
                         and x.dtype != torch.bool else x for x in seed_list]
        if (not isinstance(seed_list, list) or len(seed_list) != S
                or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0 for x in seed_list)):
            raise ConfigError(f"seeds: expected {S} non-negative integers (one per scenario), got "
                              f"{reprlib.repr(seeds)}")
        cohorts: list[torch.Tensor] = []
        for s in range(S):  # generate's checks (the book's with scenario 0), the scenario named on failure
            try:
                if s == 0:
                    feats, first, index, _, init = self._checked_inputs(loan_features, p[0], None, initial_states,
                                                                        cohort_index)
                    cohorts.append(first)
                else:
                    cohorts.append(_check_cohort(p[s], None if cohort_index is not None else feats.shape[0], dev))
            except DataError as exc:
                raise DataError(f"scenario {s}: {exc}") from None
        cohort = torch.stack(cohorts)
        return feats, cohort, index, _check_scenario_macro(macro_paths, S, cohort.shape[2], dev), init, \
            tuple(int(x) for x in seed_list)

    def _generation_settings(self, chunk_size: object, idio_scale: float | None, sampling_steps: int | None,
                             sampling_eta: float | None) -> tuple[SamplingPlan, float]:
        """The checked settings of a generation: ``(value sampler plan, frailty sd)``."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if self.step_proj is not None:
            raise ConfigError(f"generate: this model conditions on {self.config.n_step_features} per-month covariates "
                              "(n_step_features) whose future values a scenario does not give; score it with forward")
        plan = plan_for(self.config.diffusion_steps,
                        self.config.sampling_steps if sampling_steps is None else sampling_steps,
                        self.config.sampling_eta if sampling_eta is None else sampling_eta)
        sigma = self.config.idio_scale if idio_scale is None else idio_scale
        if isinstance(sigma, bool) or not (isinstance(sigma, (int, float)) and math.isfinite(sigma)
                                           and 0 <= sigma <= IDIO_SCALE_MAX):
            raise ConfigError(_idio_scale_message("idio_scale", sigma))
        return plan, float(sigma)

    def _generate(self, feats: torch.Tensor, cohort: tuple[torch.Tensor, torch.Tensor], macro: torch.Tensor,
                  init: torch.Tensor, terms: dict[str, np.ndarray], n_samples: int, sigma: float,
                  seeds: tuple[int, ...], plan: SamplingPlan, chunk_size: int) -> dict[str, torch.Tensor]:
        """The chunk loop of :meth:`generate` and :meth:`generate_scenarios` on checked inputs: ``cohort``
        (matrices ``(S, G, T, 7, 7)``, index ``(B,)``), ``macro`` ``(S, B, T, 9)`` standardised (or
        ``(S, 1, T, 9)``: one path per scenario for all its loans), one seed per scenario. Returns
        ``(S * n_samples, B, T)`` tensors, ``lgd`` ``(S * n_samples, B)`` and ``opening_balance`` ``(B,)``."""
        matrices, index = cohort
        B = index.shape[0]
        adverse = torch.from_numpy(ADVERSE_MOVES.copy()).to(feats.device)
        keys = ("states", "payments", "balances", "losses", "interest", "scheduled_principal", "prepayment", "default_par")
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*keys, "lgd")}
        step = max(1, -(-chunk_size // RNG_LOAN_BLOCK)) * RNG_LOAN_BLOCK
        with self.evaluating(), kv_workspace():  # the chunks reuse one set of key/value buffers
            for lo in range(0, B, step):
                hi = min(B, lo + step)
                out = self._generate_chunk(feats[lo:hi], (matrices, index[lo:hi]),
                                           macro if macro.shape[1] == 1 else macro[:, lo:hi], init[lo:hi],
                                           {k: v[lo:hi] for k, v in terms.items()}, n_samples, sigma,
                                           seeds, lo // RNG_LOAN_BLOCK, adverse, plan)
                for k, v in out.items():
                    parts[k].append(v)
        result = {k: v[0] if len(v) == 1 else torch.cat(v, dim=1) for k, v in parts.items()}  # one chunk: no copy
        result["opening_balance"] = torch.as_tensor(terms["balance"], dtype=torch.float64, device=feats.device)
        return result

    def _check_terms(self, loan_terms: Mapping[str, object] | None, feats: torch.Tensor, B: int) -> dict[str, np.ndarray]:
        if loan_terms is None:
            terms = loan_terms_from_features(feats)
        else:
            if not isinstance(loan_terms, Mapping):
                raise ConfigError(f"loan_terms must be a mapping of (B,) arrays, got {type(loan_terms).__name__}")
            need = ("balance", "interest_rate", "remaining_term", "amortization")
            missing = [k for k in need if k not in loan_terms]
            if missing:
                raise DataError(f"loan_terms: missing {missing}; expected keys {list(need)} (+ optional 'io_months')")
            terms = {k: np.asarray(loan_terms[k]) for k in (*need, "io_months") if k in loan_terms}
        for k, v in terms.items():
            if v.shape != (B,):
                raise DataError(f"loan_terms['{k}']: expected shape ({B},), got {v.shape}")
        terms["amortization"] = amortization_codes(terms["amortization"]).astype(np.int64)
        for k in ("balance", "interest_rate"):
            terms[k] = terms[k].astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(terms["balance"]) | (terms["balance"] <= 0))
        if len(bad):
            raise DataError(f"loan_terms['balance']: rows {format_labels(bad)} are not finite and > 0")
        bad = np.flatnonzero(~((terms["interest_rate"] >= 0) & (terms["interest_rate"] <= 1)))
        if len(bad):
            raise DataError(f"loan_terms['interest_rate']: rows {format_labels(bad)} outside [0, 1] (annual decimal)")
        rem = np.asarray(terms["remaining_term"], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(rem) | (rem < 0) | (rem != np.round(rem)))
        if len(bad):
            raise DataError(f"loan_terms['remaining_term']: rows {format_labels(bad)} are not whole months >= 0")
        terms["remaining_term"] = rem.astype(np.int64)
        if loan_terms is not None:
            from_feats = remaining_term(feats).cpu().numpy()
            bad = np.flatnonzero(from_feats != terms["remaining_term"])
            if len(bad):
                raise DataError(f"loan_terms['remaining_term'] disagrees with the remaining_term_years feature at rows "
                                f"{format_labels(bad)}; compute loan_features as of the cut-off")
        return terms

    def _generate_chunk(self, feats, cohort, macro, init, terms, n_samples, sigma, seeds, first_block, adverse, plan):
        """Paths of one chunk of ``L`` loans (whole RNG blocks starting at block ``first_block``) under
        ``S = len(seeds)`` scenarios.

        ``feats`` ``(L, 24)``, ``cohort`` the pair (matrices ``(S, G, T, 7, 7)``, ``(L,)`` each loan's row
        of them), ``macro`` ``(S, L, T, 9)`` or ``(S, 1, T, 9)`` standardised (scenario ``s`` under seed
        ``seeds[s]``),
        ``init`` ``(L,)``, ``terms`` of :meth:`_check_terms` cut to the chunk, ``adverse`` ``(7, 7)`` bool,
        ``plan`` the value sampler's :class:`~creditsim.loans.diffusion_sampling.SamplingPlan`.
        The ``N = S x n_samples x L`` paths are scenario-major, then sample, then loan; each path's
        arithmetic is its own row's, so a scenario's paths do not depend on the others generated with it.
        Returns :meth:`generate`'s dict for the chunk, ``(S * n_samples, L, T)`` tensors and ``lgd``
        ``(S * n_samples, L)``, without ``opening_balance``.
        """
        dev = feats.device
        matrices, index = cohort
        S, G, T = matrices.shape[:3]
        L = index.shape[0]
        P = S * n_samples  # paths per loan
        N = P * L
        draws = _BlockDraws(seeds, first_block, L, dev)
        frail = draws.draw((n_samples, RNG_LOAN_BLOCK), 1, True)  # first draw of every stream
        rem = torch.as_tensor(terms["remaining_term"], device=dev)
        sbal, cum_int, n_idx = _contract_tables(terms, T, dev)
        rep = lambda x: x.repeat(P, *([1] * (x.ndim - 1)))  # noqa: E731 -- path-major (N = p*L + i)
        # (N, 7, 7); where, not a product with the mask: an overflowing shift times 0 would be NaN
        shift = torch.where(adverse, sigma * frail.reshape(N, 1, 1) - 0.5 * sigma**2, 0.0)
        # each path's row of the scenarios' matrices, stacked scenario-major: s * G + the loan's cohort
        first_row = torch.arange(S, device=dev).repeat_interleave(n_samples) * G
        rows = (first_row.view(P, 1) + index.view(1, L)).reshape(N)
        # each path's macro path: its scenario's (one for all loans: (S, 1, T, 9)) or its loan's ((S, L, T, 9)),
        # read by row month by month rather than copied out to every path (N x T x 9)
        per_loan = macro.shape[1]
        macro_row = (first_row.view(P, 1) // G * per_loan
                     + (index.new_zeros(1, L) if per_loan == 1 else torch.arange(L, device=dev).view(1, L))).reshape(N)
        paths = _PathInputs(rep(feats), matrices.reshape(S * G, T, N_STATES, N_STATES), rows,
                            macro.reshape(S * per_loan, T, macro.shape[-1]), macro_row, rep(rem), shift,
                            torch.arange(N, device=dev), {})
        ledger = _PathLedger(rep(sbal), rep(cum_int), rep(n_idx), rep(init), T, fused=self.fused_kernels)
        # key/value cache of each transformer block: (N, T, nh, hs) keys and values, written month by month
        dtype = self.wpe.weight.dtype
        reuse = self.fused_kernels and fusable(dev, dtype)  # a fused buffer: its storage from the workspace
        pasts = [b.attn.kv_buffer(N, T, device=dev, dtype=dtype, fused=self.fused_kernels, compact=self.fused_kernels,
                                  storage=kv_storage(i, (N, T, b.attn.n_heads, self.config.d_model // b.attn.n_heads))
                                  if reuse else None)
                 for i, b in enumerate(self.blocks)]
        for t in range(T):
            if t:  # an absorbed path's next states are certain and need no values: attend for live paths only
                live = ledger.state <= LoanState.DPD90
                for past in pasts:
                    past.retain(live)
            h, new = self._sample_states(t, paths, ledger.state, pasts, draws, n_samples)
            moves = ledger.moves(t, new)
            # values only where they are used: payment ratio of performing months, LGD at default; their
            # noise drawn for those paths alone
            noise = functools.partial(draws.normals, n_samples=n_samples, month=t,
                                      n_noise=plan.n_noise(self.config.diffusion_steps))
            values = self._month_values(t, h, new, moves.performing | moves.defaulted, noise, plan)
            ledger.settle(t, new, moves, values)
        return ledger.result(P, L)

    def _sample_states(self, t: int, paths: _PathInputs, state: torch.Tensor, pasts: list[KVBuffer],
                       draws: _BlockDraws, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One transformer step for month ``t`` and the month's state draw.

        ``state`` ``(N,)`` long: the state at the end of month ``t - 1``. ``pasts``: the blocks'
        key/value buffers (:class:`~creditsim.nn.layers.KVBuffer` of ``N`` rows and ``T`` months,
        months ``0 .. t - 1`` filled, holding at least the paths live at month ``t``); month ``t`` is
        written in place. Draws the month's state uniform of every path from its block stream (used or
        not, so the streams never depend on the sampled paths); ``n_samples`` the paths per loan and seed of
        ``draws``.

        With the compiled kernels (compact fused buffers, on the CPU) the month runs on the live paths
        alone, from the token to the draw (:meth:`_live_step`): an absorbed path's next state is its state,
        and from month 1 on the absorbed are most paths (62 % of the path-months on the bench's shipped
        model), so the month costs 10 % less on that bench. The live paths run as a batch padded (with
        copies of the last one) to a multiple of :data:`_LIVE_STEP_ROWS` rows, month 0's full batch too, and
        every torch linear of the month (the head's correction included) sees that padded batch: torch's
        CPU linear gives a row the same bits in any batch only for some batch sizes. Measured with MKL
        (helper-103, helper-104), an empirical property of its kernels, not a documented one: on its
        AVX-512 kernels, 16 rows or more; on its AVX2 kernels, which it runs on CPUs without AVX-512,
        rows of a last partial 6-row panel of 1-3 rows are summed another way, and at 128 outputs and
        more every batch of 6-54 rows and every M = 6 (mod 12) differs from a large one. 96 = 8 x 12
        avoids all of these; the tests run the scenario invariances on the AVX2 kernels, a 128-wide model
        included. The eager path runs every row unpadded, as the reference the tests hold the compiled one
        to (on the AVX2 kernels it is not chunk-invariant to the last bit). The values sampled in torch
        are padded the same way (:meth:`_month_values`).

        Returns ``(h (N, d), new state (N,) long)``; ``h`` of a path absorbed before month ``t`` is
        meaningless (0, finite with its attention skipped, or an earlier month's), and unused. With the compiled
        kernels ``h`` is the chunk's one hidden buffer, rewritten next month: read it before the next call.
        """
        N = state.shape[0]
        unif = draws.month_uniforms(t, n_samples, paths.cohort.shape[1])
        if not (self.fused_kernels and state.device.type == "cpu"):
            h, log_rows = self._live_step(t, paths, state, None, pasts)
            logits = self._logits(h, log_rows, state, paths.rem, torch.full_like(state, t))
            logits = logits + paths.shift[paths.rows, state]  # frailty on adverse moves; -inf stays -inf
            probs = torch.softmax(logits.double(), dim=-1)
            # what next_states flags: a NaN / +inf logit, or none finite, on a path not yet absorbed
            unabsorbed = state <= int(LoanState.DPD90)
            bad = torch.isnan(probs).any(-1) & unabsorbed
            if bool(bad.any()):
                raise non_finite_draw(t, int(bad.sum()), int(unabsorbed.sum()), state[bad].cpu().numpy())
            thr = cumulative_thresholds(probs.unsqueeze(1))[:, 0]  # (N, 6)
            return h, (unif.view(N, 1) >= thr).sum(-1)
        compact = bool(pasts) and pasts[0].compact
        live = pasts[0].live if compact else None
        if compact:  # the wanted rows first, padded with copies of the last
            n = N if live is None else live.numel()
            h_rows, log_rows = self._live_step(t, paths, state,
                                               _padded_rows(torch.arange(N, device=state.device) if live is None
                                                            else live), pasts)
            corr = self.correction(h_rows)[:n]  # on the padded batch, as every linear of the month
            h_rows, log_rows = h_rows[:n], log_rows[:n]
        else:  # the kernels are not built: every row, in torch
            h_rows, log_rows = self._live_step(t, paths, state, None, pasts)
            corr = self.correction(h_rows)
        pick = functools.partial(_select_rows, rows=live)
        # the same draw as the eager path's, in one numba pass per path
        new_rows = next_states(corr, log_rows, pick(state), pick(paths.rem), t, pick(paths.shift), pick(unif))
        if live is None:
            return h_rows, new_rows
        if "hidden" not in paths.tables:  # one (N, d) buffer for the chunk, not a fresh zeroed one a month
            paths.tables["hidden"] = h_rows.new_zeros(N, h_rows.shape[1])
        h = paths.tables["hidden"].index_copy_(0, live, h_rows)
        return h, state.clone().index_copy_(0, live, new_rows)

    def _live_step(self, t: int, paths: _PathInputs, state: torch.Tensor, rows: torch.Tensor | None,
                   pasts: list[KVBuffer]) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer's month ``t`` on the paths ``rows`` ``(m,)`` (None: all ``N`` in order; else a
        compact buffer's wanted rows in order, then any padding): ``(h (m, d), log cohort rows (m, 7))``."""
        m = state.shape[0] if rows is None else rows.shape[0]
        fused = None if rows is None else self._fused_tokens(t, paths, rows, state)
        if fused is not None:
            x, log_rows = fused[0].unsqueeze(1), fused[1].unsqueeze(1)
        else:
            x, log_rows = self._torch_tokens(t, paths, state, rows)
        if "steps" not in paths.tables:  # each block's compiled step, prepared once for the chunk's buffers
            steps = [FusedBlockStep.make(block, past) for block, past in zip(self.blocks, pasts)]
            paths.tables["steps"] = steps if pasts and all(steps) else None
        steps = paths.tables["steps"]
        if steps is None:
            for block, past in zip(self.blocks, pasts):
                x, _ = block(x, past)
        else:  # Block.forward's compiled halves, their parameters and buffers checked once
            x2 = x.view(m, x.shape[-1])
            for step in steps:
                x2 = step(x2, in_place=True)  # the month's own tokens, then the previous block's output
            x = x2.view(m, 1, x2.shape[-1])
        return self.ln_f(x)[:, 0], log_rows[:, 0]

    def _torch_tokens(self, t: int, paths: _PathInputs, state: torch.Tensor,
                      rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Month ``t``'s tokens ``(m, 1, d)`` and log cohort rows ``(m, 1, 7)`` of the paths ``rows`` (None: all ``N``
        in order) in torch (:meth:`_live_step`)."""
        m = state.shape[0] if rows is None else rows.shape[0]
        pick = functools.partial(_select_rows, rows=rows)
        prev = pick(state)
        cohort = paths.cohort
        if cohort.is_contiguous():  # one flat index_select (advanced indexing by three tensors: ~0.1 ms a call)
            flat = (pick(paths.cohort_row) * cohort.shape[1] + t) * N_STATES + prev
            rows_t = cohort.view(-1, N_STATES).index_select(0, flat)
        else:  # e.g. one matrix expanded over the book: a flat view would copy it all every month
            rows_t = cohort[pick(paths.cohort_row), t, prev]
        log_rows = _log_rows(rows_t).view(m, 1, N_STATES)
        if rows is None:  # every path in order (the eager path, or no compiled buffers)
            macro = paths.macro[:, t].index_select(0, paths.macro_row).unsqueeze(1)  # (m, 1, 9)
            x, _ = self._tokens(paths.feats, log_rows, macro, prev.view(m, 1), paths.rem, t)
        else:
            x = self._live_tokens(t, paths, rows, prev, log_rows)
        return x, log_rows

    def _live_tokens(self, t: int, paths: _PathInputs, rows: torch.Tensor, prev: torch.Tensor,
                     log_rows: torch.Tensor) -> torch.Tensor:
        """:meth:`_tokens` of month ``t`` for the padded live batch ``rows`` ``(m,)`` (:meth:`_live_step`), ``(m, 1,
        d)``: the same sums in the same order, with the three inputs that do not depend on the month's state read
        from tables made once per chunk -- each path's ``feat_proj(feats)``, each macro path's ``macro_proj`` by
        month (when there are no more of those rows than paths) and ``term_proj`` of every distinct term input
        (months to maturity clamped to [-12, 120]: 133 rows). Each table is one linear over a batch padded to a
        multiple of :data:`_LIVE_STEP_ROWS` rows, which gives a row the bits the month's padded batch gave it
        (:meth:`_sample_states` says why), so the paths are the per-month computation's bits; three linears and the
        term inputs' dozen small operations fewer a month (torch profiler, the trajectory bench's 4,000-path
        months: 0.52 -> 0.26 ms of token-building a month)."""
        # no step_proj term: generate refuses a model with per-month covariates (_generation_settings)
        tab = self._token_tables(paths)
        T = paths.macro.shape[1]
        mrow = paths.macro_row.index_select(0, rows)
        if "macro" in tab:
            macro = tab["macro"].index_select(0, mrow * T + t)
        else:
            macro = self.macro_proj(paths.macro[:, t].index_select(0, mrow))
        left = (paths.rem.index_select(0, rows) - 1 - t).clamp_(_TERM_LO, _TERM_HI).sub_(_TERM_LO)  # table row
        x = self.state_emb.weight.index_select(0, prev)
        x += tab["feat"].index_select(0, rows)
        x += self.row_proj(log_rows.view(-1, N_STATES) / 10.0)
        x += macro
        x += tab["term"].index_select(0, left)
        x += self.wpe.weight[t]
        return x.unsqueeze(1)

    def _token_tables(self, paths: _PathInputs) -> dict[str, Any]:
        """The chunk's token tables (:meth:`_live_tokens`), made on first use: ``feat`` and ``term``; ``macro``
        where there are no more macro rows by month than paths; and where the cohort matrices are contiguous
        and few, ``log`` (every cohort row's :func:`_log_rows`) and ``row`` (their ``row_proj``), which
        :func:`~creditsim.loans.month_tokens.month_tokens` reads. Those two hold every (cohort, month, state) row,
        ``R x T x 7`` rows of ``d + 7`` floats for the chunk's life, where the months compute only the live paths'
        (~0.4 of ``N x T`` on the bench): they are made only where ``8 x 7 R <= N`` (at most an eighth of the rows
        the months would see with every path live; one cohort per loan is far over that: helper-113 measured 1.4x
        the time and +0.5 GB on 4,096 loans x 8 samples with a looser gate). Each one is made
        on a batch padded to a multiple of :data:`_LIVE_STEP_ROWS` rows, as the month's batches are, so a row
        has the bits the month's computation gave it: the linears for the reason :meth:`_sample_states` gives,
        the logarithm because torch's elementwise kernels run a batch's last partial vector through the scalar
        function (7 x 96 values fill whole vectors at every width)."""
        tab = paths.tables
        if "feat" in tab:
            return tab
        T = paths.macro.shape[1]
        tab["feat"] = _padded_linear(self.feat_proj, paths.feats)
        # every clamped months-to-maturity (rem - 1) - t: as rem = _TERM_LO + 1 .. _TERM_HI + 1 at t = 0
        rem_all = torch.arange(_TERM_LO + 1, _TERM_HI + 2, device=paths.feats.device)
        tab["term"] = _padded_linear(self.term_proj, self._term_inputs(rem_all, 1)[:, 0])
        if paths.macro.shape[0] * T <= paths.feats.shape[0]:
            tab["macro"] = _padded_linear(self.macro_proj, paths.macro.reshape(-1, paths.macro.shape[-1]))
        cohort = paths.cohort
        if cohort.is_contiguous() and 8 * cohort.shape[0] * N_STATES <= paths.feats.shape[0]:
            flat = cohort.view(-1, N_STATES)
            n = flat.shape[0]
            logs = _log_rows(flat.index_select(0, _padded_rows(torch.arange(n, device=flat.device))))
            tab["log"] = logs[:n]
            tab["row"] = self.row_proj(logs / 10.0)[:n]  # (the padded batch: _padded_linear's bits)
        return tab

    def _fused_tokens(self, t: int, paths: _PathInputs, rows: torch.Tensor,
                      state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """:meth:`_live_tokens` and the log cohort rows of the padded live batch ``rows`` in one numba pass per path
        (:mod:`creditsim.loans.month_tokens`, the same bits), ``(x (m, d), log rows (m, 7))``; None where the
        chunk's tables for it are not made (:meth:`_token_tables`)."""
        tab = self._token_tables(paths)
        if "row" not in tab:
            return None
        if "macro" in tab:
            macro, by_row = tab["macro"], False
        else:  # many macro paths (one per loan): the batch's own rows, as _live_tokens computes them
            mrow = paths.macro_row.index_select(0, rows)
            macro, by_row = self.macro_proj(paths.macro[:, t].index_select(0, mrow)), True
        return month_tokens(rows, state, paths.cohort_row, paths.macro.shape[1], t, paths.macro_row, paths.rem,
                            (_TERM_LO, _TERM_HI), self.state_emb.weight, tab["feat"], tab["row"], tab["log"], macro,
                            tab["term"], self.wpe.weight[t], macro_by_row=by_row)

    def _month_values(self, t: int, h: torch.Tensor, new: torch.Tensor, need: torch.Tensor,
                      noise: Callable[[torch.Tensor], torch.Tensor], plan: SamplingPlan | None = None) -> torch.Tensor:
        """``(N, 2)`` float64 values (:data:`VALUE_NAMES`) of month ``t``: sampled by the diffusion head on the
        rows ``need`` (bool ``(N,)``), 1 elsewhere; ``noise(rows)`` the ``(n_noise, n, 2)`` normals of the rows
        ``rows`` (``(n,)``, :meth:`_BlockDraws.normals`), drawn for these rows alone. Where the head runs in
        torch on the CPU (the DDIM sampler, or no compiled chain) the rows run padded to a multiple of
        :data:`_LIVE_STEP_ROWS` with copies of the last, for the reason :meth:`_sample_states` gives: a
        row's values then do not depend on how many others need values this month (the compiled chain is
        row by row already)."""
        values = torch.ones(need.shape[0], N_VALUES, dtype=torch.float64, device=h.device)
        rows = torch.nonzero(need).view(-1)  # the mask's rows once, for the selections
        n = rows.numel()
        if n:
            eps = noise(rows)
            in_torch = (plan is not None and plan.steps is not None) or not self._fused_chain(h, eps)
            if in_torch and h.device.type == "cpu":
                rows = _padded_rows(rows)
                eps = eps.index_select(1, _padded_rows(torch.arange(n, device=eps.device)))
            vp = self._value_params(h.index_select(0, rows), new.index_select(0, rows))
            sampled = self._sample_values(vp, eps, plan)[:n]
            if bool(torch.isnan(sampled).any()):  # (the chain clips to [0, 1]; only a NaN gets through)
                k = int(torch.isnan(sampled).any(-1).sum())
                raise NumericalError(f"trajectory model, month {t}: the diffusion head's values of {k} of {n} paths "
                                     f"are NaN; {NumericalError.CAUSE}")
            values.index_copy_(0, rows[:n], sampled.double())
        return values

    # -- pool cashflows ---------------------------------------------------------------------------
    @torch.no_grad()
    def pool_cashflows(
        self,
        loan_features: torch.Tensor,
        cohort_transitions: torch.Tensor,
        macro_paths: torch.Tensor | None,
        *,
        cohort_index: object | None = None,
        loan_terms: Mapping[str, object] | None = None,
        seed: int = 0,
        scenario_ids: object | None = None,
        recovery_lag: int | object = 0,
        idio_scale: float | None = None,
        chunk_size: int = 4096,
    ) -> dict[str, np.ndarray]:
        """Pool cashflows ``(S, T, K)`` of ``S`` scenarios, one generated path per loan and scenario.

        The scenarios are generated in groups (:func:`scenario_groups`, :meth:`generate_scenarios`). On
        CPU, books of at least :data:`THREAD_MIN_LOANS` loans (:data:`THREAD_MIN_LOANS_TORCH` in torch
        alone: :func:`scenario_threads`) run the groups side by side on up to the caller's torch thread
        count of Python threads (:func:`creditsim.threads.map_scenarios`), bit-identical to one thread.

        Args:
            loan_features: ``(L, 24)`` features as of the cut-off.
            cohort_transitions: ``(S, C, T, 7, 7)`` cohort matrices with ``cohort_index`` ``(L,)``
                (cohort of each loan), or ``(S, L, T, 7, 7)`` per-loan matrices without it.
            macro_paths: ``(S, T, 9)`` decimals (None = the anchors).
            loan_terms: as in :meth:`generate`.
            seed: one seed; scenario ``s`` uses the stream ``SeedSequence(seed, spawn_key=(id_s,))``
                with ``id_s = scenario_ids[s]`` (default ``s``), so a scenario's paths do not depend
                on which other scenarios are simulated with it (pass the global ids when chunking).
            recovery_lag: months from default to recovery cash, int or ``(L,)`` ints >= 0.
            idio_scale: frailty sd (default ``config.idio_scale``).

        Returns:
            ``cashflows`` ``(S, T, K)`` float64 in :data:`~creditsim.states.POOL_CF_TYPES` order
            (recovery = ``default_par - loss`` paid ``recovery_lag`` months after the default),
            ``pending_recovery`` ``(S,)`` recoveries due after the horizon, ``initial_balance``
            (float, the pool balance at the cut-off).
        """
        p = cohort_transitions
        if not isinstance(p, torch.Tensor):
            p = torch.as_tensor(np.asarray(p, dtype=np.float32))
        if p.ndim != 5 or p.shape[-2:] != (N_STATES, N_STATES):
            raise DataError(f"cohort_transitions: expected (S, C, T, 7, 7) with cohort_index or (S, L, T, 7, 7), "
                            f"got {tuple(p.shape)}")
        S, _, T = p.shape[:3]
        feats = _check_features(loan_features, self.device)
        L = feats.shape[0]
        if cohort_index is not None:
            cidx = _check_cohort_index(cohort_index, L, p.shape[1], self.device)  # integers only: no silent casts
        elif p.shape[1] != L:
            raise DataError(f"cohort_transitions: per-loan matrices need {L} loans on axis 1, got {p.shape[1]}")
        ids = np.arange(S) if scenario_ids is None else np.asarray(scenario_ids, dtype=np.int64)
        if ids.shape != (S,) or (ids < 0).any():
            raise DataError(f"scenario_ids: expected ({S},) non-negative integers")
        lag = check_recovery_lag(recovery_lag, L)  # the pool's own check (whole months, pool or per loan)
        if macro_paths is not None:
            m = macro_paths if isinstance(macro_paths, torch.Tensor) else torch.as_tensor(np.asarray(macro_paths, np.float32))
            if m.ndim != 3 or m.shape[0] != S:
                raise DataError(f"macro_paths: expected ({S}, T, 9), got {tuple(m.shape)}")

        groups = scenario_groups(S, L, self.device, self.fused_kernels)

        def group(i: int) -> tuple[np.ndarray, np.ndarray, float]:
            scen, chunk = groups[i]
            sel = list(scen)
            g = self.generate_scenarios(feats, p[sel], None if macro_paths is None else m[sel],
                                        [torch_seed(seed, int(ids[s])) for s in sel], loan_terms=loan_terms,
                                        idio_scale=idio_scale, chunk_size=min(chunk_size, chunk),
                                        cohort_index=None if cohort_index is None else cidx)
            pool = pool_cashflows(trajectory_flows(g), lag)
            return pool.cashflows, pool.pending_recovery, float(g["opening_balance"].sum())

        # groups side by side on the caller's torch thread count, bit-identical to one thread (map_scenarios);
        # eval mode set once here: a thread's generate then leaves the shared flags alone
        with self.evaluating():
            rows = map_scenarios(group, len(groups), self.device, max_threads=scenario_threads(L, self.fused_kernels))
        cash = np.zeros((S, T, len(POOL_CF_TYPES)))
        pending = np.zeros(S)
        for (scen, _), (cash_g, pending_g, _) in zip(groups, rows):
            cash[scen.start:scen.stop] = cash_g
            pending[scen.start:scen.stop] = pending_g
        return {"cashflows": cash, "pending_recovery": pending, "initial_balance": rows[-1][2] if rows else 0.0}

    # -- checkpoints -----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` and ``config.json`` (config + ``extra`` training metadata), atomically."""
        meta: dict[str, Any] = {"config": self.config.to_dict(), "value_names": list(VALUE_NAMES)}
        if extra:
            meta["training"] = dict(extra)
        return save_model_checkpoint(directory, "LoanTrajectoryModel", self, meta)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu") -> LoanTrajectoryModel:
        """Load a checkpoint folder (default: the shipped ``creditsim/pretrained/trajectory``).

        Raises CheckpointError when a file is missing or malformed, the folder holds another model, the
        config has unknown fields or sizes outside :attr:`TrajectoryConfig.LIMITS`, or the weights miss
        tensors, have other shapes or hold NaN/inf; all checked before the model is built.
        """
        folder = Path(directory) if directory is not None else PRETRAINED_DIR
        meta = read_model_meta(folder, "LoanTrajectoryModel")
        names = meta.get("value_names", [])
        if not isinstance(names, list | tuple) or list(names) != list(VALUE_NAMES):
            raise CheckpointError(f"checkpoint {folder}: value_names {names!r:.200} != {list(VALUE_NAMES)}")
        config = config_from_meta(folder, meta, TrajectoryConfig)
        check_weight_shapes(folder, lambda: cls(config))  # sizes vs the file header, before allocating
        return load_model_weights(cls(config), folder, device)
