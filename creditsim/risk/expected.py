"""The differentiable expected-loss path: macro path -> matrices -> expected pool cashflows -> tranche losses.

Every step is the Monte Carlo run's own step, written so autograd goes through it:

1. **Cohort matrices** (:meth:`ExpectedLossPath.cohort_matrices`): the Markov model's calibrated macro
   overlay (:meth:`MarkovTransitionModel.scenario_matrices_torch`); the rated cohorts' monthly default
   hazard from the Z-conditional rating chain; the fixed-rate real-estate cohort's refinancing S-curve.
   Equal to :meth:`PoolEngine.cohort_matrices` to 1e-12 (tested).
2. **Channels**: the real-estate LGD from the path's house-price trough and the floating index shift,
   as :class:`PoolEngine` applies them.
3. **Expected pool cashflows**: the exact expectation of the Markov engine's cashflows given the path
   (:func:`creditsim.loans.expected.expected_pool_cashflows`), no sampling.
4. **Waterfall**: the deal's soft (or straight-through / hard) waterfall on those cashflows, and the
   tranches' principal-loss fractions (:func:`creditsim.deal.analytics.principal_loss`).

What the result is, and is not. Steps 1-3 are exact expectations *given the macro path*. Step 4 applies
the waterfall to the expected cashflows, i.e. it replaces ``E[w(cf)]`` by ``w(E[cf])``: given a path,
loans default independently, so a pool of a few thousand loans has little idiosyncratic spread and the
gap is small where a tranche is hit (measured in the tests and the reverse-stress report against the
hard-mode Monte Carlo on the same path), but it is a gap, and :func:`creditsim.risk.reverse_stress`
always re-prices its answer with the Monte Carlo engine.

The one non-torch step: a rated year's monthly 8x8 matrix is the monthly root of the annual Z-conditional
matrix (a matrix logarithm, which torch lacks). It depends on the path only through that year's Z mean
(one number), so its derivative is taken by a central difference of the exact numpy map along that number
(step 1e-5, truncation error ~1e-10), inside a custom autograd function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from creditsim.deal.analytics import principal_loss
from creditsim.deal.config import WaterfallConfig
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError, DataError
from creditsim.loans.engine import floating_base
from creditsim.loans.expected import expected_pool_cashflows
from creditsim.ratings.lifetime import ZMacroLink, monthly_matrices_from_z
from creditsim.risk.pool_engine import PoolEngine
from creditsim.states import ASSET_CLASSES, MACRO_VARS, LoanState

__all__ = ["ExpectedLossPath"]

_N_AC = len(ASSET_CLASSES)
_CORPORATE = ASSET_CLASSES.index("corporate")
_REAL_ESTATE = ASSET_CLASSES.index("real_estate")
_HPI = MACRO_VARS.index("house_price_growth")
_POLICY = MACRO_VARS.index("policy_rate")
_TEN_YEAR = MACRO_VARS.index("yield_10y")
#: central-difference step along a year's Z mean (standard-normal units)
Z_STEP = 1e-5


class _MonthlyRatingMatrices(torch.autograd.Function):
    """``(S, Y)`` Z means -> ``(S, Y, 8, 8)`` monthly rating matrices (numpy forward, difference backward)."""

    @staticmethod
    def forward(ctx: Any, z_mean: torch.Tensor, link: ZMacroLink) -> torch.Tensor:
        z = z_mean.detach().cpu().numpy()
        out = monthly_matrices_from_z(z, link)
        if z_mean.requires_grad:
            slope = (monthly_matrices_from_z(z + Z_STEP, link) - monthly_matrices_from_z(z - Z_STEP, link)) / (2 * Z_STEP)
            ctx.save_for_backward(torch.from_numpy(slope).to(z_mean.device))
        return torch.from_numpy(out).to(z_mean.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (slope,) = ctx.saved_tensors
        return (grad * slope).sum(dim=(-2, -1)), None


def _annual_means(x: torch.Tensor) -> torch.Tensor:
    """``(S, T, V)`` monthly -> ``(S, ceil(T / 12), V)`` means of consecutive 12-month blocks (a partial last
    block over its own months), as :func:`creditsim.ratings.lifetime.annualise_macro`."""
    t_len = x.shape[1]
    years = [x[:, y:min(y + 12, t_len)].mean(dim=1) for y in range(0, t_len, 12)]
    return torch.stack(years, dim=1)


def _rating_hazard(monthly: torch.Tensor) -> torch.Tensor:
    """``(S, T, 8, 8)`` rating matrices -> ``(S, 7, T)`` monthly default hazards by starting grade
    (:func:`creditsim.risk.pool_engine.rating_default_hazard`, in torch)."""
    s, t_len = monthly.shape[:2]
    pi = torch.eye(8, dtype=monthly.dtype, device=monthly.device)[:7].expand(s, 7, 8)
    out = []
    for t in range(t_len):
        nxt = torch.einsum("sgi,sij->sgj", pi, monthly[:, t])
        alive = 1.0 - pi[..., 7]
        safe = torch.where(alive > 1e-15, alive, torch.ones_like(alive))
        h = torch.where(alive > 1e-15, (nxt[..., 7] - pi[..., 7]) / safe, torch.zeros_like(alive))
        out.append(torch.clamp(h, 0.0, 1.0))
        pi = nxt
    return torch.stack(out, dim=-1)


def _rated_cohorts(hazard: torch.Tensor, corporate: torch.Tensor) -> torch.Tensor:
    """``(S, 7, T)`` hazards + ``(S, T, 7, 7)`` corporate matrices -> ``(S, 7, T, 7, 7)`` rated cohorts
    (:func:`creditsim.risk.pool_engine.rated_cohort_matrices`, in torch)."""
    s, g, t_len = hazard.shape
    base = corporate[:, None].expand(s, g, t_len, 7, 7)
    cur = LoanState.CURRENT
    p = base[..., cur, LoanState.PREPAID]
    m = base[..., cur, LoanState.MATURED]
    h = torch.minimum(hazard, torch.clamp(1.0 - p - m, min=0.0))
    zero = torch.zeros_like(h)
    row = torch.stack([torch.clamp(1.0 - h - p - m, min=0.0), zero, zero, zero, h, p, m], dim=-1)
    row = row / row.sum(-1, keepdim=True)
    return torch.cat([row[..., None, :], base[..., 1:, :]], dim=-2)


class ExpectedLossPath:
    """Macro paths ``(S, T, 9)`` -> expected pool cashflows and tranche losses, differentiably.

    Args:
        engine: the run's :class:`PoolEngine` (its Markov model must offer ``scenario_matrices_torch``).
        deal: the (scaled) deal the Monte Carlo run uses.
        temperature: soft-gate temperature (ratio units); None = the deal's ``soft_temperature``.
        device: torch device of the chain (the macro tensors are moved there).
    """

    def __init__(self, engine: PoolEngine, deal: WaterfallConfig, *, temperature: float | None = None,
                 device: str = "cpu") -> None:
        if not isinstance(engine, PoolEngine):
            raise ConfigError(f"engine must be a PoolEngine, got {type(engine).__name__}")
        if not isinstance(deal, WaterfallConfig):
            raise ConfigError(f"deal must be a WaterfallConfig, got {type(deal).__name__}")
        if engine.trajectory_model is not None or not hasattr(engine.transition_model, "scenario_matrices_torch"):
            raise ConfigError("the expected-loss path needs the Markov engine (a MarkovTransitionModel); "
                              f"this run uses {engine.describe()}")
        self.engine, self.deal, self.temperature = engine, deal, temperature
        self.device = torch.device(device)
        book = engine.book
        self._real_estate = torch.from_numpy(book.asset_class == _REAL_ESTATE).to(self.device)
        self._lgd = torch.from_numpy(np.asarray(book.lgd, dtype=np.float64)).to(self.device)
        self._floor = floating_base(book)[1] if book.floating.any() else None
        #: the run's macro start ``(9,)`` (set by :meth:`from_tape`), its label and the tape's cut-off
        self.start: np.ndarray | None = None
        self.start_label = ""
        self.cutoff: Any = None

    @classmethod
    def from_tape(cls, loans: Any, deal: Any, config: Any = None, *, temperature: float | None = None,
                  **overrides: Any) -> "ExpectedLossPath":
        """The path of the run ``simulate(loans, deal, config, **overrides)`` would make: the same validated
        tape, pool engine (Markov engine), scaled deal and macro start (:attr:`start`, ``(9,)`` or None)."""
        from creditsim.risk.config import RunConfig
        from creditsim.risk.simulate import as_deal, prepare_run

        if config is None:
            config = RunConfig(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        if config.engine != "markov":
            raise ConfigError(f"the expected-loss path runs the Markov engine, got engine={config.engine!r}")
        prepared = prepare_run(loans, as_deal(deal), config)
        out = cls(prepared.engine, prepared.deal, temperature=temperature, device=config.device)
        out.start = prepared.start_vec
        out.start_label = prepared.start_label
        out.cutoff = prepared.cutoff
        return out

    @property
    def horizon(self) -> int:
        return int(self.engine.horizon)

    def _macro(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(macro, dtype=torch.float64, device=self.device)
        if x.ndim != 3 or x.shape[-1] != len(MACRO_VARS) or x.shape[1] < self.horizon:
            raise DataError(f"macro paths: expected (S, >= {self.horizon}, {len(MACRO_VARS)}), got {tuple(x.shape)}")
        return x[:, : self.horizon]

    def cohort_matrices(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, C, T, 7, 7)`` float64 matrices, as :meth:`PoolEngine.cohort_matrices`."""
        x = self._macro(macro)
        eng, s = self.engine, x.shape[0]
        mats = eng.transition_model.scenario_matrices_torch(x)
        if mats.ndim == 4:
            mats = mats[:, None].expand(s, _N_AC, *mats.shape[1:])
        mats = mats[:, :, : self.horizon]
        if eng.rating_link is not None:
            link = eng.rating_link
            idx = [MACRO_VARS.index(v) for v in link.variables]
            coef = torch.tensor(np.array(link.coef_, dtype=np.float64), dtype=torch.float64, device=x.device)
            z_mean = link.intercept_ + (_annual_means(x)[..., idx] * coef).sum(-1)  # (S, Y)
            yearly = _MonthlyRatingMatrices.apply(z_mean, link)  # (S, Y, 8, 8)
            monthly = yearly[:, torch.arange(self.horizon, device=x.device) // 12]
            mats = torch.cat([mats, _rated_cohorts(_rating_hazard(monthly), mats[:, _CORPORATE])], dim=1)
        if eng.refinancing is not None:
            mats = torch.cat([mats, self._refinanced(mats[:, _REAL_ESTATE], x)[:, None]], dim=1)
        return mats

    def _refinanced(self, mats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The fixed-rate real-estate cohort: CURRENT -> PREPAID times the refinancing multiplier
        (:class:`creditsim.loans.prepayment.RefinancingCurve`, :func:`apply_prepayment_multiplier`)."""
        curve = self.engine.refinancing
        market = torch.clamp(x[..., _TEN_YEAR] + curve.mortgage_spread, min=1e-4)
        cpr = curve.k1 - curve.k2 * torch.atan(curve.k3 * (curve.k4 - self.engine.refinancing_coupon / market))
        factor = cpr / cpr[:, :1]  # (S, T)
        cur, pre = LoanState.CURRENT, LoanState.PREPAID
        p, stay = mats[..., cur, pre], mats[..., cur, cur]
        new = torch.minimum(p * factor, p + stay)
        row = mats[..., cur, :].clone()
        row[..., cur] = stay - (new - p)
        row[..., pre] = new
        return torch.cat([row[..., None, :], mats[..., 1:, :]], dim=-2)

    def expected_lgd(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, L)`` expected LGD: the book's LGD, real estate's recovered share times the path's
        house-price trough (:mod:`creditsim.loans.collateral`)."""
        x = self._macro(macro)
        g = x[:, 1:, _HPI]
        log_level = torch.cat([torch.zeros_like(x[:, :1, _HPI]), torch.cumsum(torch.log1p(g) / 12.0, dim=1)], dim=1)
        trough = torch.exp(log_level).amin(dim=1)  # (S,), <= 1 (month 0 is 1)
        scale = torch.where(self._real_estate[None, :], trough[:, None], torch.ones_like(trough)[:, None])
        return 1.0 - (1.0 - self._lgd[None, :]) * scale

    def index_shift(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """``(S, T)`` floored policy-rate change since month 0, or None without floating loans."""
        if self._floor is None:
            return None
        x = self._macro(macro)
        policy = x[..., _POLICY]
        return torch.clamp(policy - policy[:, :1], min=self._floor)

    def pool_cashflows(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, T, 7)`` expected pool cashflows (currency units, POOL_CF_TYPES order)."""
        x = self._macro(macro)
        return expected_pool_cashflows(self.engine.book, self.cohort_matrices(x), self.horizon, self.expected_lgd(x),
                                       index_shift=self.index_shift(x), loan_chunk=self.engine.loan_chunk)

    def waterfall(self, macro: torch.Tensor | np.ndarray, *, tranche_balances: torch.Tensor | None = None,
                  mode: str = "soft") -> dict[str, torch.Tensor]:
        """The deal's waterfall (``mode`` soft / straight_through / hard) on the expected pool cashflows."""
        cf = self.pool_cashflows(macro)
        return run_waterfall(cf, self.deal, initial_balance=self.engine.initial_balance, mode=mode,
                             tranche_balances=tranche_balances, temperature=self.temperature, device=self.device)

    def tranche_losses(self, macro: torch.Tensor | np.ndarray, *, tranche_balances: torch.Tensor | None = None,
                       mode: str = "soft") -> torch.Tensor:
        """``(S, N)`` principal-loss fractions of every tranche (equity last) on the expected cashflows."""
        return principal_loss(self.waterfall(macro, tranche_balances=tranche_balances, mode=mode))

    def tranche_index(self, name: str) -> int:
        """Position of tranche ``name`` (one-line ConfigError listing the names otherwise)."""
        names = [t.name for t in self.deal.tranches]
        if name not in names:
            raise ConfigError(f"tranche {name!r} is not in deal {self.deal.name!r}; tranches: {names}")
        return names.index(name)
