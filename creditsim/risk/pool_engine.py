"""Pool engine: macro paths of a scenario chunk -> cohort transition matrices -> pool cashflows.

:class:`PoolEngine` bundles what every chunk needs (the loan book, the transition model, the rating
link) and is shipped once to each worker. :meth:`PoolEngine.pool_cashflows` is a pure function of
(macro paths, global scenario ids): the loan-level random streams are keyed by (seed, scenario id,
loan block) inside :func:`creditsim.loans.engine.simulate_pool_chunk`.

Collateral. Real-estate loans recover less when the path's house prices fall
(:mod:`creditsim.loans.collateral`): the engine's LGD draws are rescaled per scenario, in the Markov
engine (the trajectory model books its own LGD).

Cohorts. Unrated loans use the cohort of their asset class (``ASSET_CLASSES`` order, 4 cohorts) and
the macro-conditioned matrices of the Markov model. Loans with a ``rating`` (AAA..CCC) get one cohort
per initial grade, appended after the asset classes (cohort ``4 + grade``). Unrated fixed-rate
real-estate loans get one more cohort, last: the real-estate matrices with their prepayment scaled by
the refinancing incentive of the path's 10-year yield (:mod:`creditsim.loans.prepayment`).

Rated loans (decision). A rated corporate loan migrates monthly along the Z-conditional 8x8 rating
matrices of :func:`creditsim.ratings.monthly_scenario_matrices` (driven by the same macro path) and
defaults when it reaches D. Only the default *time* of a loan affects its cashflows, so instead of
sampling the rating path the engine gives the loan's cohort the exact monthly default hazard of the
rating chain started in its grade,

    h_g(t) = P(D at t+1 | not D at t) = (pi_t M_t)[D] - pi_t[D]) / (1 - pi_t[D]),  pi_0 = e_g,

which reproduces the default-time distribution of the rating chain in every scenario (the macro path
and hence M_t are common to all loans of the scenario; idiosyncratic draws are independent across
loans, as in the chain). The rated cohort's CURRENT row is ``[1 - h - p - m, 0, 0, 0, h, p, m]``
with the prepayment ``p`` and maturity ``m`` probabilities of the corporate Markov cohort; the
rating event replaces the delinquency roll (no DPD path for rated names), and the DPD rows are the
corporate cohort's, used only by loans that enter the cut-off delinquent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numba import njit

from creditsim.deal.inputs import remaining_wal
from creditsim.deal.market import RATING_FACTORS, deal_market_paths
from creditsim.errors import ConfigError, DataError, check_out_array
from creditsim.loans.book import LoanBook
from creditsim.loans.collateral import recovery_scale
from creditsim.cents import from_cents, to_cents
from creditsim.fixed_order import column_sum
from creditsim.loans.engine import simulate_pool_chunk
from creditsim.loans.schedule import amortization_schedule
from creditsim.loans.prepayment import RefinancingCurve, apply_prepayment_multiplier
from creditsim.ratings.lifetime import ZMacroLink, monthly_scenario_matrices
from creditsim.ratings.term_structure import scenario_default_hazard
from creditsim.schema import RATINGS, LoanTape, as_loan_tape
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.transitions.sampler import validate_matrices
from creditsim.states import ASSET_CLASSES, MACRO_VARS, POOL_CF_TYPES, LoanState
from creditsim.rng import LOANS, torch_seed
from creditsim.loans.pool import pool_cashflows
from creditsim.nn.workspace import kv_workspace
from creditsim.loans.trajectory import scenario_groups, scenario_threads, trajectory_flows
from creditsim.threads import map_scenarios

__all__ = ["PoolEngine", "rating_default_hazard", "rated_cohort_matrices"]

_N_AC = len(ASSET_CLASSES)
_CORPORATE = ASSET_CLASSES.index("corporate")
_REAL_ESTATE = ASSET_CLASSES.index("real_estate")
#: most bytes of ``(s, C, T, 7, 7)`` float64 cohort matrices one pass of :meth:`PoolEngine.pool_cashflows`
#: builds: a scenario chunk whose matrices would be larger runs in scenario blocks that fit. 72 MiB keeps a
#: 500-scenario chunk of 12 cohorts at 60 months in two blocks (as 128 MiB did) while a 360-month one runs in
#: twelve: its peak resident memory (10,000 loans, 1,000 scenarios) fell from 1.02-1.06 GiB to 0.96 (AMD EPYC
#: host, 2026-12-07), at ~2 % more CPU there
MATRIX_BYTES = 72 * 2**20


def rating_default_hazard(monthly: np.ndarray) -> np.ndarray:
    """Monthly default hazard of the rating chain for every starting grade.

    Args:
        monthly: ``(S, T, 8, 8)`` monthly rating matrices (rows stochastic, D = last, absorbing).

    Returns:
        ``(S, 7, T)`` float64: ``h[s, g, t]`` = P(reach D in month t | not in D before), chain started
        in grade g (AAA..CCC) at the cut-off. Hazards are 0 once the chain has no surviving mass.
    """
    m = np.asarray(monthly, dtype=np.float64)
    if m.ndim != 4 or m.shape[-2:] != (8, 8):
        raise DataError(f"rating matrices must be (S, T, 8, 8), got {m.shape}")
    s, t_len = m.shape[:2]
    pi = np.broadcast_to(np.eye(8)[:7], (s, 7, 8)).copy()  # (S, g, 8)
    out = np.empty((s, 7, t_len))
    for t in range(t_len):
        nxt = np.einsum("sgi,sij->sgj", pi, m[:, t])
        alive = 1.0 - pi[..., 7]
        with np.errstate(invalid="ignore", divide="ignore"):
            h = np.where(alive > 1e-15, (nxt[..., 7] - pi[..., 7]) / alive, 0.0)
        out[:, :, t] = np.clip(h, 0.0, 1.0)
        pi = nxt
    return out


def rated_cohort_matrices(hazard: np.ndarray, corporate: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """7x7 loan-state matrices of the rated cohorts.

    Args:
        hazard: ``(S, 7, T)`` rating default hazards (:func:`rating_default_hazard`).
        corporate: ``(S, T, 7, 7)`` matrices of the corporate Markov cohort (prepayment, maturity
            and delinquent rows are taken from it).
        out: optional ``(S, 7, T, 7, 7)`` float64 array to fill (any strides; must not overlap ``corporate``).

    Returns:
        ``(S, 7, T, 7, 7)``: CURRENT row ``[1 - h - p - m, 0, 0, 0, h, p, m]`` (see module docstring), with
        ``h = min(hazard, max(1 - p - m, 0))`` and the row divided by its sum (exact stochasticity after the
        clip; a no-op otherwise).
    """
    hazard = np.asarray(hazard, dtype=np.float64)
    corporate = np.asarray(corporate, dtype=np.float64)
    # the compiled pass reads and writes by these shapes without bounds checks: they must agree
    if hazard.ndim != 3 or corporate.shape != (hazard.shape[0], hazard.shape[2], 7, 7):
        raise DataError(f"rated_cohort_matrices: hazard must be (S, G, T) and corporate (S, T, 7, 7) of the same S "
                        f"and T, got {hazard.shape} and {corporate.shape}")
    s, g, t_len = hazard.shape
    if out is None:
        out = np.empty((s, g, t_len, 7, 7))
    else:
        check_out_array(out, (s, g, t_len, 7, 7), "rated_cohort_matrices")
    _rated_rows(hazard, corporate, out)
    return out


@njit(cache=True, nogil=True)
def _rated_rows(hazard, corporate, out):  # pragma: no cover - compiled
    """:func:`rated_cohort_matrices` in one pass (numba): each rated matrix is the corporate one with its CURRENT
    row rebuilt. The numpy version made eight passes over ``(S, 7, T, 7)``-sized arrays and a copy of the
    corporate matrices into every grade, ~30 ms a 250-scenario block at 60 months (a tenth of ``simulate``
    on a 2,000-loan book); the same operations in the same order give the same bits: ``(1 - p) - m`` and
    ``((1 - h) - p) - m`` as numpy evaluates them, ``min`` / ``max`` as ``np.minimum`` / ``np.maximum`` pick
    (a NaN from either side; on a tie, -0.0 against 0.0 included, the second argument), and the row's sum
    left to right from 0, as numpy sums a row of seven (tests/risk hold the two to the same bits). The
    caller checks the shapes (:func:`rated_cohort_matrices`): nothing here is bounds-checked."""
    for i in range(hazard.shape[0]):
        for g in range(hazard.shape[1]):
            for t in range(hazard.shape[2]):
                for a in range(7):
                    for b in range(7):
                        out[i, g, t, a, b] = corporate[i, t, a, b]
                p = corporate[i, t, 0, 5]
                m = corporate[i, t, 0, 6]
                cap = 1.0 - p - m
                cap = cap if (cap > 0.0 or cap != cap) else 0.0  # np.maximum(cap, 0.0)
                h = hazard[i, g, t]
                h = h if (h < cap or h != h) else cap  # np.minimum(h, cap)
                cur = 1.0 - h - p - m
                cur = cur if (cur > 0.0 or cur != cur) else 0.0
                total = 0.0
                total += cur
                total += 0.0
                total += 0.0
                total += 0.0
                total += h
                total += p
                total += m
                out[i, g, t, 0, 0] = cur / total
                out[i, g, t, 0, 1] = 0.0 / total
                out[i, g, t, 0, 2] = 0.0 / total
                out[i, g, t, 0, 3] = 0.0 / total
                out[i, g, t, 0, 4] = h / total
                out[i, g, t, 0, 5] = p / total
                out[i, g, t, 0, 6] = m / total


@dataclass
class PoolEngine:
    """Loan book + transition model (+ rating link) -> pool cashflows of a chunk of scenarios.

    Attributes:
        book: :class:`creditsim.loans.book.LoanBook` with cohorts as described in the module.
        transition_model: object with ``scenario_matrices(macro_paths (s, T, 9)) -> (s, 4, T, 7, 7)``
            (one cohort per asset class) or ``(s, T, 7, 7)``.
        seed: root seed of the loan-level streams.
        horizon: months T.
        rating_link: fitted :class:`creditsim.ratings.ZMacroLink` (with ttc and rho) when the tape has
            rated loans, else None.
        rating_term_structure: a fitted :class:`creditsim.ratings.term_structure.MarkovMixtureTermStructure`
            whose mixture of rating chains gives the rated cohorts' default hazards
            (:func:`~creditsim.ratings.term_structure.scenario_default_hazard`), or None for the single
            Markov rating chain (module docstring).
        device: torch device of the sampler.
    """

    book: Any
    transition_model: Any
    seed: int
    horizon: int
    rating_link: Any = None
    device: str = "cpu"
    loan_chunk: int = 4096
    rating_term_structure: Any = None
    trajectory_model: Any = None
    loan_features: Any = None
    _rated: bool = field(default=False, repr=False)
    #: the fixed-rate real-estate cohort's refinancing S-curve and balance-weighted coupon (annual
    #: decimal), or None when the book has no such loans (:mod:`creditsim.loans.prepayment`)
    refinancing: RefinancingCurve | None = None
    refinancing_coupon: float = float("nan")
    #: ``(L,)`` contractual spread of each floating loan over its index (the tape's ``spread_bps``, annual
    #: decimal; NaN for fixed loans and floating ones without it), for the WAS test (:meth:`pool_spread`)
    #: and the run's coupon check
    loan_spread: np.ndarray | None = field(default=None, repr=False)
    #: per-month sums over the loans' contractual schedules (:meth:`_schedule_totals`), computed once
    _schedule: dict[str, np.ndarray] | None = field(default=None, repr=False)
    #: each loan block's contractual history, computed by the first chunk and reused by the others
    #: (:func:`creditsim.loans.engine.simulate_pool_chunk`'s ``history``)
    _history: dict = field(default_factory=dict, repr=False)
    #: chunks that run at once in this process (:class:`creditsim.risk.backends.LocalBackend`'s threads):
    #: each builds its cohort matrices within :data:`MATRIX_BYTES` / ``chunks_in_flight``, so the run's
    #: matrices take no more memory on several threads than on one
    chunks_in_flight: int = 1
    #: while True (``simulate``, for the duration of its chunks: :func:`creditsim.risk.simulate._run_all_chunks`),
    #: each thread keeps one cohort-matrix array that every scenario block it runs rewrites
    #: (:meth:`_matrix_buffer`); otherwise (engines that outlive a run, e.g. an expected-loss path's) each
    #: block allocates its own, freed when the block is done
    keep_matrix_memory: bool = False
    #: each thread's kept cohort-matrix array (thread id -> ``(s, C, T, 7, 7)`` float64); not pickled (a dask
    #: worker's copy of the engine starts empty and keeps its own while the run holds it), not shared by
    #: ``dataclasses.replace``, emptied by :meth:`release_matrix_memory`
    _matrix_buffers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_matrix_buffers"] = {}
        return state

    def _matrix_buffer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """With :attr:`keep_matrix_memory`, this thread's C-contiguous float64 array of ``shape`` for the cohort
        matrices of one scenario block: the first ``shape[0]`` rows of the array the thread's earlier blocks
        used when it is large enough; else None (the block allocates its own).

        The run's blocks, on any thread or worker, then write the same memory rather than fresh pages: on
        this kind of VM a fresh page can cost far more than the kernel's fault (a 41 MB first write measured
        8-13 ms most times and 92 ms once, the host backing the guest's page anew); the Markov simulate
        bench's four blocks spent 0.55-0.92 s building matrices that take 0.38 s in reused memory (AMD EPYC
        host, 2026-12-07). At most :data:`MATRIX_BYTES` / :attr:`chunks_in_flight` per thread, until
        :meth:`release_matrix_memory`. Each block writes every element it reads (:meth:`cohort_matrices`)."""
        if not self.keep_matrix_memory:
            return None
        key = threading.get_ident()
        held = self._matrix_buffers.get(key)
        if held is None or held.shape[1:] != tuple(shape[1:]) or held.shape[0] < shape[0]:
            held = None  # the old array goes before the new one is allocated
            self._matrix_buffers.pop(key, None)
            held = self._matrix_buffers[key] = np.empty(shape)
        return held[:shape[0]]

    def release_matrix_memory(self) -> None:
        """Stop keeping cohort-matrix arrays and free those kept (the end of a run)."""
        self.keep_matrix_memory = False
        self._matrix_buffers.clear()

    @classmethod
    def from_tape(cls, loans: LoanTape | pd.DataFrame, *, seed: int, horizon: int, cutoff: Any = None,
                  transition_model: Any = None, rating_link: Any = None, device: str = "cpu",
                  rating_term_structure: Any = None) -> PoolEngine:
        """Validate the tape, build the loan book and pick the models (defaults documented in
        :func:`creditsim.risk.simulate.simulate`)."""
        tape = as_loan_tape(loans)  # validated once, at the edge of the run
        clean = tape.frame
        cohort = np.array([ASSET_CLASSES.index(a) for a in clean["asset_class"]], dtype=np.int64)
        rated = False
        if "rating" in clean.columns:
            has = clean["rating"].notna().to_numpy()
            if has.any():
                grade = np.array([RATINGS.index(r) if h else -1 for r, h in zip(clean["rating"], has)])
                cohort = np.where(has, _N_AC + grade, cohort)
                rated = True
        # unrated fixed-rate real estate: a cohort of its own, after the others, whose prepayment follows the
        # refinancing incentive (mortgages are the loans whose prepayment is driven by rates)
        fixed_re = ((clean["asset_class"] == "real_estate") & (clean["rate_type"].astype(str).str.lower() == "fixed")
                    ).to_numpy() & (cohort < _N_AC)
        if fixed_re.any():
            cohort = np.where(fixed_re, _N_AC + (len(RATINGS) if rated else 0), cohort)
        # an explicit (L,) cohort array; the labels the book invents ("0", "1", ...) are not used here
        book = LoanBook.from_tape(tape, cutoff=cutoff, cohort=cohort)
        if transition_model is None:
            transition_model = default_transition_model()
        elif not hasattr(transition_model, "scenario_matrices"):
            raise ConfigError(f"transition_model must have scenario_matrices(macro_paths), got "
                              f"{type(transition_model).__name__}")
        segments = getattr(transition_model, "segments_", None)
        if segments is not None and tuple(segments) != tuple(ASSET_CLASSES):
            raise ConfigError(f"transition_model is segmented by {list(segments)}; the simulation needs one "
                              f"segment per asset class {list(ASSET_CLASSES)} (fit it by asset_class: "
                              f"'creditsim train transitions --by asset_class', in Python by='asset_class') "
                              f"or an unsegmented model")
        if rated and rating_link is None:
            rating_link = ZMacroLink.from_bundled()
        refi, coupon = None, float("nan")
        in_book = book.cohort == _N_AC + (len(RATINGS) if rated else 0)
        if fixed_re.any() and in_book.any():  # loans past maturity at the cut-off may have left the book
            refi = RefinancingCurve()
            coupon = float(np.dot(book.balance[in_book], book.monthly_rate[in_book]) * 12.0 / book.balance[in_book].sum())
        return cls(book=book, transition_model=transition_model, seed=int(seed), horizon=int(horizon),
                   rating_link=rating_link if rated else None, device=device, _rated=rated,
                   rating_term_structure=rating_term_structure if rated else None,
                   refinancing=refi, refinancing_coupon=coupon, loan_spread=_floating_spreads(clean, book))

    @property
    def initial_balance(self) -> float:
        return float(self.book.initial_balance)

    @property
    def n_loans(self) -> int:
        return int(self.book.n_loans)

    def describe(self) -> str:
        name = type(self.transition_model).__name__
        if self.trajectory_model is not None:
            name = f"LoanTrajectoryModel on {name} cohort matrices"
        rated = int((self.book.cohort >= _N_AC).sum())
        chain = "a mixture of Z-conditional rating chains" if self.rating_term_structure is not None else \
            "Z-conditional rating matrices"
        return f"{name}; {rated} rated loans via {chain}" if rated else name

    def cohort_matrices(self, macro: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(s, C, T, 7, 7)`` float64 matrices for a chunk's macro paths ``(s, T, 9)``, written into ``out``
        (C-contiguous, that shape) when given, else into a new array."""
        s, t_len = macro.shape[0], self.horizon
        shape = (s, self.n_cohorts(), t_len, 7, 7)
        if out is None:
            out = np.empty(shape)
        else:
            check_out_array(out, shape, "cohort_matrices", contiguous=True)
        if not self._markov_in_place(macro):
            self._model_cohorts(macro, out)
        else:  # stochastic by construction (MarkovTransitionModel.scenario_matrices), written where it goes
            base = validate_matrices(self.transition_model.transition_matrix_, "Markov transition matrix")
            if base.ndim == 3:
                self.transition_model.scenario_matrices(macro, out=out[:, :_N_AC])
            else:  # one cohort for every asset class
                self.transition_model.scenario_matrices(macro, out=out[:, 0])
                out[:, 1:_N_AC] = out[:, :1]
        n_rated = len(RATINGS) if self._rated else 0
        if self._rated:
            if self.rating_term_structure is not None:
                hazard = scenario_default_hazard(self.rating_term_structure, macro[:, :t_len], self.rating_link)
            else:
                hazard = rating_default_hazard(monthly_scenario_matrices(macro[:, :t_len], self.rating_link))  # (s, 7, T)
            if not np.isfinite(hazard).all():  # the one input of the rated rows not checked above (small)
                raise DataError("the rating chain's default hazards are not finite on these macro paths")
            rated_cohort_matrices(hazard, out[:, _CORPORATE], out=out[:, _N_AC:_N_AC + n_rated])
        if self.refinancing is not None:  # the fixed-rate real-estate cohort, last
            ten_year = np.asarray(macro, dtype=np.float64)[:, :t_len, MACRO_VARS.index("yield_10y")]
            factor = self.refinancing.multiplier(self.refinancing_coupon, ten_year)
            if not (np.isfinite(factor) & (factor >= 0)).all():
                raise DataError("the refinancing curve's prepayment multipliers are not finite and >= 0 on these paths")
            out[:, -1] = apply_prepayment_multiplier(out[:, _REAL_ESTATE], factor)
        return out

    def _markov_in_place(self, macro: np.ndarray) -> bool:
        """Whether the transition model is the package's Markov chain with one cohort per asset class (or one
        for all), on paths of exactly the horizon: then it writes its matrices into the cohort array."""
        model = self.transition_model
        p = getattr(model, "transition_matrix_", None)
        return (type(model) is MarkovTransitionModel and isinstance(p, np.ndarray)
                and (p.ndim == 2 or (p.ndim == 3 and p.shape[0] == _N_AC)) and np.ndim(macro) == 3
                and macro.shape[1] == self.horizon)

    def _model_cohorts(self, macro: np.ndarray, out: np.ndarray) -> None:
        """Any other transition model: its ``scenario_matrices`` checked here, once (the rated and
        refinancing cohorts built from them are stochastic by construction, so the engine does not check
        the whole chunk again: ``validated=True``), then copied into ``out[:, :4]``."""
        s, t_len = macro.shape[0], self.horizon
        mats = validate_matrices(self.transition_model.scenario_matrices(macro), "transition model output")
        if mats.ndim == 4:  # one cohort for every asset class
            mats = np.broadcast_to(mats[:, None], (s, _N_AC, *mats.shape[1:]))
        if mats.ndim != 5 or mats.shape[0] != s or mats.shape[1] != _N_AC or mats.shape[2] < t_len:
            raise DataError(f"transition model returned matrices of shape {mats.shape}, expected "
                            f"({s}, {_N_AC}, >= {t_len}, 7, 7)")
        out[:, :_N_AC] = mats[:, :, :t_len]

    def n_cohorts(self) -> int:
        """Cohorts of :meth:`cohort_matrices`: the asset classes, the rated grades if any, and the
        refinancing cohort if any."""
        return _N_AC + (len(RATINGS) if self._rated else 0) + (self.refinancing is not None)

    def pool_cashflows(self, macro: np.ndarray, scenario_ids: np.ndarray) -> np.ndarray:
        """``(s, T, 7)`` float64 pool cashflows of the global scenarios ``scenario_ids``.

        The chunk's cohort matrices take ``s x C x T x 49 x 8`` bytes: 0.85 GB for 500 scenarios, 12
        cohorts and 360 months, and building them takes as much again. Scenarios run in equal blocks
        whose matrices stay under :data:`MATRIX_BYTES` (shared by the :attr:`chunks_in_flight`), so memory
        does not grow with chunk x months, nor with the chunks a local run keeps in flight.
        Every scenario's draws are keyed by its global id and its pool sums are exact, so the blocks
        give the chunk's numbers bit for bit (tests/risk/test_pool_engine_blocks.py)."""
        s = len(scenario_ids)
        budget = MATRIX_BYTES // max(1, self.chunks_in_flight)
        cap = max(1, budget // (self.n_cohorts() * self.horizon * 49 * 8))  # scenarios per block
        if s > cap:
            n_blocks = -(-s // cap)
            block = -(-s // n_blocks)  # equal blocks: 500 scenarios in two go as 250 + 250, not 464 + 36
            return np.concatenate([self.pool_cashflows(macro[a:a + block], scenario_ids[a:a + block])
                                   for a in range(0, s, block)])
        mats = self.cohort_matrices(macro, self._matrix_buffer((s, self.n_cohorts(), self.horizon, 7, 7)))
        if self.trajectory_model is not None:
            return self._trajectory_pool(mats, macro, scenario_ids)
        return simulate_pool_chunk(self.book, mats, scenario_ids, self.seed, self.horizon,
                                   loan_chunk=self.loan_chunk, device=self.device, history=self._history,
                                   recovery_scale=self.recovery_scale(macro), index_shift=self.index_shift(macro),
                                   index_level=self.index_level(macro), validated=True)

    def market_inputs(self, deal: Any, macro: np.ndarray | torch.Tensor, pool_cf: np.ndarray | torch.Tensor,
                      ccc_share: torch.Tensor | None = None) -> dict[str, Any]:
        """The waterfall's market inputs for ``deal`` on macro paths ``(s, T, 9)`` and their pool cashflows
        ``(s, T, 7)``: :func:`creditsim.deal.market.deal_market_paths` (torch paths keep their gradients),
        plus the rated loans' CCC par (:meth:`ccc_par`, no gradient) when the deal has a CCC limit, and the
        paths of its reinvestment criteria: the rated loans' WARF (:meth:`pool_warf`) with ``max_warf``, the
        tape's scheduled WAL (:meth:`pool_wal`) with ``max_wal`` (the WAS comes from the collections). One
        place for what ``simulate`` and the expected-loss path both give the waterfall. ``ccc_share``
        ``(s, T)``: the CCC share of the performing pool to use instead of computing :meth:`ccc_par`'s
        (the expected-loss path passes its differentiable one)."""
        out = deal_market_paths(deal, macro, pool_cf.shape[1])
        if deal.ccc_limit is None and getattr(deal, "max_warf", None) is None:
            return self._with_schedule_paths(deal, out, pool_cf.shape)
        detached = macro.detach().cpu().numpy() if isinstance(macro, torch.Tensor) else np.asarray(macro)
        cf = pool_cf.detach().cpu().numpy() if isinstance(pool_cf, torch.Tensor) else np.asarray(pool_cf)
        if deal.ccc_limit is not None:
            ccc = self.ccc_par(detached, cf) if ccc_share is None else pool_cf[..., POOL_CF_TYPES.index("balance")] * ccc_share
            if ccc is not None:
                out["ccc_par"] = ccc
        if getattr(deal, "max_warf", None) is not None:
            warf = self.pool_warf(detached, cf.shape[1])
            if warf is not None:
                out["pool_warf"] = warf
        return self._with_schedule_paths(deal, out, pool_cf.shape)

    def _with_schedule_paths(self, deal: Any, out: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
        """``out`` plus the ``(s, T)`` ``pool_wal`` path when the deal has a WAL limit and the ``pool_spread``
        path when it has a WAS limit and the tape gives floating spreads (each the same row for every
        scenario); ``shape`` is the pool cashflows' ``(s, T, 7)``."""
        if getattr(deal, "max_wal", None) is not None:
            out["pool_wal"] = np.repeat(self.pool_wal(shape[1])[None], shape[0], axis=0)
        if getattr(deal, "min_was", None) is not None:
            was = self.pool_spread(shape[1])
            if was is not None:
                out["pool_spread"] = np.repeat(was[None], shape[0], axis=0)
        return out

    def pool_spread(self, t_len: int) -> np.ndarray | None:
        """``(T,)`` weighted-average spread (annual decimal) of the floating loans over their index at the end
        of each month, for the deal's ``min_was`` reinvestment test; None when no loan gives ``spread_bps``
        (the waterfall then reads the spread off the collections: yield minus the base rate).

        Why not the collections: in a simulation a floating loan's coupon is its cut-off coupon moved by the
        path's index since the cut-off, so "yield minus base rate" is the tape coupon minus the path's
        month-0 index plus the credit drag of the month (measured on the BSL example: 4.2 % against the
        tape's 3.5 % contractual spread under synthetic paths), not a spread. The indenture's WAS is the
        par-weighted contractual spread of the performing floating obligations: here weighted by each
        loan's scheduled balance (the WAL test's convention: no prepayments or defaults), the same path in
        every scenario."""
        spread = self.loan_spread
        if spread is None or not np.isfinite(spread).any():
            return None
        totals = self._schedule_totals(t_len)
        par, weighted = totals["spread_par"], totals["spread_weighted"]
        last = np.where(par > 0, weighted / np.where(par > 0, par, 1.0), np.nan)
        return pd.Series(last).ffill().fillna(float(np.nanmean(spread))).to_numpy()[:t_len]  # after maturity

    def _schedule_totals(self, t_len: int) -> dict[str, np.ndarray]:
        """Per-month sums over every loan's contractual schedule from the cut-off to its maturity (no
        prepayments or defaults), one pass for the WAL and WAS paths: ``principal`` paid at the end of each
        month, and over the floating loans with a spread their scheduled balance (``spread_par``) and that
        balance times the spread (``spread_weighted``); each ``(max(remaining term), t_len)`` long. Cached."""
        if self._schedule is None or len(self._schedule["principal"]) < t_len:
            book = self.book
            spread = self.loan_spread if self.loan_spread is not None else np.full(book.n_loans, np.nan)
            has = np.isfinite(spread)
            months = max(int(book.remaining_term.max()), t_len)
            totals = {k: np.zeros(months) for k in ("principal", "spread_par", "spread_weighted")}
            for a in range(0, book.n_loans, self.loan_chunk):  # blocks bound the (loans, months) table
                b = slice(a, a + self.loan_chunk)
                sched = amortization_schedule(book.balance[b], book.monthly_rate[b], book.remaining_term[b],
                                              book.amortization[b], book.io_months[b], n_columns=months)
                totals["principal"] += column_sum(sched.principal, 0)
                if has.any():
                    bal = np.where(has[b, None], sched.balance[:, 1:], 0.0)  # end of month t, floating loans only
                    totals["spread_weighted"] += column_sum(bal * np.where(has[b], spread[b], 0.0)[:, None], 0)
                    totals["spread_par"] += column_sum(bal, 0)
            self._schedule = totals
        return self._schedule

    def _grade_distributions(self, macro: np.ndarray, t_len: int) -> Iterator[np.ndarray]:
        """For t = 0..t_len-1: ``(s, 7, 8)`` rating distribution at the end of month t of a loan rated
        g (AAA..CCC) at the cut-off, ``e_g M_1 ... M_t`` along the path's Z-conditional matrices (a
        generator; fixed-order sums, not a BLAS product: the same bits whatever the chunk)."""
        rating = monthly_scenario_matrices(np.asarray(macro)[:, :t_len], self.rating_link)  # (s, T, 8, 8)
        dist = np.broadcast_to(np.eye(8)[:7], (rating.shape[0], 7, 8)).copy()  # (s, 7 grades, 8 ratings)
        for t in range(t_len):
            dist = column_sum(dist[:, :, :, None] * rating[:, t][:, None, :, :], 2)
            yield dist

    def grade_weights(self) -> np.ndarray:
        """``(7,)`` share of the pool's cut-off balance by initial grade (0 for unrated loans)."""
        grade = self.book.cohort - _N_AC
        rated = (grade >= 0) & (grade < len(RATINGS))
        weight = np.bincount(grade[rated], weights=self.book.balance[rated], minlength=len(RATINGS))
        return weight / float(self.book.balance.sum())

    def pool_warf(self, macro: np.ndarray, t_len: int) -> np.ndarray | None:
        """``(s, T)`` expected weighted-average rating factor of the rated loans still performing, for the
        deal's ``max_warf`` reinvestment test; None when the book has no rated loans (the test is then off).

        Each grade's loans are spread over the ratings by the rating chain of the path (:meth:`ccc_par`);
        the factor of a rating is Moody's idealised factor of its middle notch
        (:data:`~creditsim.deal.market.RATING_FACTORS`); grades weigh by cut-off balance times survival,
        ``WARF_t = sum_g w_g sum_r pi_g,t[r] RF_r / sum_g w_g (1 - pi_g,t[D])``. Unrated loans do not count
        (a tape is rated or not; a mixed tape's WARF is its rated part's).
        """
        if not self._rated:
            return None
        weight = self.grade_weights()
        factors = np.array([RATING_FACTORS[r] for r in RATINGS])
        out = np.empty((np.asarray(macro).shape[0], t_len))
        for t, dist in enumerate(self._grade_distributions(macro, t_len)):
            alive = column_sum(weight[None, :] * (1.0 - dist[:, :, len(RATINGS)]), 1)
            mass = column_sum(weight[None, :] * column_sum(dist[:, :, :len(RATINGS)] * factors, 2), 1)
            out[:, t] = mass / np.clip(alive, 1e-12, None)
        return out

    def pool_wal(self, t_len: int) -> np.ndarray:
        """``(T,)`` weighted-average life (years) at the end of each month of the pool's scheduled principal,
        for the deal's ``max_wal`` reinvestment test: every loan's contractual amortisation from the cut-off
        to its maturity (no prepayments or defaults, the indenture convention), summed over the pool
        (:func:`~creditsim.deal.inputs.remaining_wal`). The same path in every scenario: the loans that
        survive are weighted by their scheduled balance, not by their scenario's survival."""
        return remaining_wal(torch.as_tensor(self._schedule_totals(t_len)["principal"])).numpy()[:t_len]

    def ccc_par(self, macro: np.ndarray, pool_cf: np.ndarray) -> np.ndarray | None:
        """``(s, T)`` expected CCC-rated par of the performing pool (currency units), for the deal's CCC
        excess haircut; None when the book has no rated loans.

        A rated loan of grade g is CCC at month t with probability ``pi_g,t[CCC] / (1 - pi_g,t[D])``
        among surviving names, ``pi_g,t = e_g M_1 ... M_t`` along the path's Z-conditional monthly rating
        matrices (the same chain that sets the rated cohorts' default hazard). The CCC par is the pool's
        performing balance times the balance-weighted CCC share of the grades, with the rated loans
        keeping their cut-off share of the pool (an expectation given the path, not a sampled bucket:
        the engine samples defaults, not rating paths).
        """
        if not self._rated:
            return None
        weight = self.grade_weights()  # (7,) share of the pool by initial grade
        t_len = pool_cf.shape[1]
        share = np.empty((np.asarray(macro).shape[0], t_len))
        ccc, d = len(RATINGS) - 1, len(RATINGS)
        for t, dist in enumerate(self._grade_distributions(macro, t_len)):
            alive = np.clip(1.0 - dist[:, :, d], 1e-12, None)
            share[:, t] = column_sum(dist[:, :, ccc] / alive * weight[None, :], 1)
        return pool_cf[:, :, POOL_CF_TYPES.index("balance")] * share

    def recovery_scale(self, macro: np.ndarray) -> np.ndarray | None:
        """``(s, L)`` factors on the recovered share of real-estate loans from the paths' house-price
        troughs (:mod:`creditsim.loans.collateral`), or None when nothing changes."""
        return recovery_scale(np.asarray(macro)[:, : self.horizon], self.book.asset_class)

    def index_shift(self, macro: np.ndarray, months: int | None = None) -> np.ndarray | None:
        """``(s, months)`` change of the floating-rate index since month 0 of the paths (annual decimal):
        the policy rate stands in for SOFR (both follow the Fed's target range), so floating loans pay
        their cut-off coupon plus the path's rate move (:mod:`creditsim.loans.engine`, "Floating
        coupons"); None when the book has no floating loans (the engine then skips the column)."""
        if not self.book.floating.any():
            return None
        policy = np.asarray(macro, dtype=np.float64)[:, : months or self.horizon, MACRO_VARS.index("policy_rate")]
        return policy - policy[:, :1]

    def index_level(self, macro: np.ndarray) -> np.ndarray | None:
        """``(s,)`` the index at the cut-off: the policy rate in month 0 of the paths (annual decimal), for
        index floors and caps (:mod:`creditsim.loans.floating`); None without floating loans."""
        if not self.book.floating.any():
            return None
        return np.asarray(macro, dtype=np.float64)[:, 0, MACRO_VARS.index("policy_rate")]


    def _trajectory_pool(self, mats: np.ndarray, macro: np.ndarray, scenario_ids: np.ndarray) -> np.ndarray:
        """Pool cashflows ``(S, T, 7)`` from loan paths of the LoanTrajectoryModel, its scenarios generated in
        groups (:func:`~creditsim.loans.trajectory.scenario_groups`, one
        :meth:`~creditsim.loans.trajectory.LoanTrajectoryModel.generate_scenarios` call per group).

        The scenario's cohort matrices (systematic risk) and macro path condition the model; its
        random streams are seeded by (seed, global scenario id), so neither chunking nor grouping
        matters. The model books ``loss = lgd x default_par`` in the default month; the recovery
        ``default_par - loss`` arrives ``book.recovery_lag`` months later (dropped when that is after the
        horizon, as in the Markov engine's pool totals). The rate and collateral channels of the Markov
        engine apply to the model's loan flows too (:meth:`_with_channels`).

        On CPU, books of at least :data:`~creditsim.loans.trajectory.THREAD_MIN_LOANS` loans
        (``THREAD_MIN_LOANS_TORCH`` in torch alone) run their groups side by side on up to the caller's
        torch thread count of Python threads (:func:`creditsim.threads.map_scenarios`,
        :func:`~creditsim.loans.trajectory.scenario_threads`), bit-identical to one thread.
        """
        book, model = self.book, self.trajectory_model
        dev = model.device
        feats = torch.tensor(np.array(self.loan_features, dtype=np.float32), device=dev)
        terms = {"balance": book.balance, "interest_rate": book.monthly_rate * 12.0,
                 "remaining_term": book.remaining_term, "amortization": book.amortization,
                 "io_months": book.io_months}
        init = np.asarray(book.initial_state, dtype=np.int64)
        groups = scenario_groups(len(scenario_ids), book.n_loans, dev, model.fused_kernels)
        # once for all threads; the caller's modes come back after. The workspace: groups run on this thread
        # reuse one set of key/value buffers (creditsim.nn.workspace; a worker thread's run its own per group)
        with model.evaluating(), kv_workspace():
            rows = map_scenarios(lambda i: self._trajectory_group(feats, terms, init, mats[groups[i][0]],
                                                                  macro[groups[i][0]], scenario_ids[groups[i][0]],
                                                                  groups[i][1]),
                                 len(groups), dev, max_threads=scenario_threads(book.n_loans, model.fused_kernels))
        out = np.zeros((len(scenario_ids), self.horizon, 7))
        for (scen, _), cash in zip(groups, rows):
            out[scen.start:scen.stop] = cash
        return out

    def _trajectory_group(self, feats: torch.Tensor, terms: dict[str, np.ndarray], init: np.ndarray,
                          mats: np.ndarray, macro: np.ndarray, sids: np.ndarray, chunk: int) -> np.ndarray:
        """``(s, T, 7)`` pool cashflows of the global scenarios ``sids`` (:meth:`_trajectory_pool`, which builds
        the loans' ``feats``, contract ``terms`` and initial states ``init`` once for all scenarios): ``mats``
        their cohort matrices ``(s, G, T, 7, 7)``, ``macro`` their paths ``(s, T, n_macro)``, ``chunk`` the
        loans per chunk of the group's :meth:`generate_scenarios` call."""
        book, model = self.book, self.trajectory_model
        dev = model.device
        coh = torch.as_tensor(mats, dtype=torch.float32, device=dev)  # (s, G, T, 7, 7): read per loan, not copied
        g = model.generate_scenarios(feats, coh, torch.as_tensor(macro, dtype=torch.float32, device=dev),
                                     [torch_seed(self.seed, LOANS, int(sid)) for sid in sids], loan_terms=terms,
                                     initial_states=init, cohort_index=book.cohort, chunk_size=chunk)
        flows = trajectory_flows(g)
        # whole-cent sums are exact, so the pool does not depend on the loan count's tiling, grouping or threads
        return np.concatenate([pool_cashflows(self._with_channels({k: v[i:i + 1] for k, v in flows.items()},
                                                                  macro[i:i + 1]), int(book.recovery_lag)).cashflows
                               for i in range(len(sids))])

    def _with_channels(self, flows: dict[str, Any], macro: np.ndarray) -> dict[str, Any]:
        """Loan flows ``(1, L, T)`` of one scenario with the Markov engine's channels applied per loan,
        in whole cents: floating loans' interest times ``1 + shift_t / coupon`` (:meth:`index_shift`; the
        shift floored at minus the coupon) and real-estate recoveries times the path's house-price factor
        (:meth:`recovery_scale`: ``loss = default_par - round(recovered x H)``)."""
        book = self.book
        out = {k: np.asarray(v.detach().cpu().double().numpy() if hasattr(v, "detach") else v, dtype=np.float64)
               for k, v in flows.items()}
        shift = self.index_shift(macro)
        classes = book.floating_classes()
        if shift is not None and classes is not None:
            annual = book.monthly_rate * 12.0
            paying = classes.member >= 0
            coupon = np.where(paying, annual, 1.0)[None, :, None]
            level = self.index_level(macro)
            change = classes.coupon_change(torch.from_numpy(shift), None if level is None else torch.from_numpy(level),
                                           bounded=False).numpy()  # (1, T, J): each loan is bounded at its own coupon
            per_loan = change[:, :, np.maximum(classes.member, 0)].transpose(0, 2, 1)  # (1, L, T)
            factor = np.maximum(per_loan, -coupon) / coupon  # 0 for fixed loans below
            extra = np.round(to_cents(out["interest"]) * np.where(paying[None, :, None], factor, 0.0))
            out["interest"] = from_cents(to_cents(out["interest"]) + extra)
        scale = self.recovery_scale(macro)
        if scale is not None:
            par, loss = to_cents(out["default_par"]), to_cents(out["loss"])
            recovered = np.round((par - loss) * scale[:, :, None])
            out["loss"] = from_cents(par - recovered)
        return out


def default_transition_model() -> Any:
    """The Markov model: the spec's base-case roll rates per asset class with the macro overlay calibrated on
    the bank delinquency history (:meth:`MarkovTransitionModel.default`)."""
    return MarkovTransitionModel.default()


def _floating_spreads(tape: pd.DataFrame, book: Any) -> np.ndarray | None:
    """``(L,)`` the book's floating loans' ``spread_bps`` as annual decimals (book order, matched by
    ``loan_id``, so it holds whatever rows the book kept), NaN elsewhere; None when the tape has no such column."""
    if "spread_bps" not in tape.columns or book.floating is None:
        return None
    bps = pd.to_numeric(tape["spread_bps"], errors="coerce").to_numpy(np.float64)
    by_id = pd.Series(bps, index=tape["loan_id"].astype(str).to_numpy()).groupby(level=0).first()
    spread = by_id.reindex(book.loan_id).to_numpy(np.float64) / 1e4
    return np.where(np.asarray(book.floating, bool), spread, np.nan)
