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
gap is small where a tranche is hit hard (measured in the tests and the reverse-stress report against the
hard-mode Monte Carlo on the same path), but it is a gap -- on the demo deal and the Fed 2025 severely
adverse path the equity's Monte Carlo loss is 0.29 %, the waterfall of the expected flows gives 0 --
and :func:`creditsim.risk.reverse_stress` always re-prices its answer with the Monte Carlo engine.
Where the expectation itself is wanted near one path, :meth:`ExpectedLossPath.reweighted` gives it
(:mod:`creditsim.risk.reweighted`: fixed engine draws with likelihood-ratio weights, unbiased and
differentiable; it equals the Monte Carlo mean of the same draws on that path).

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
from creditsim.loans.expected import expected_pool_cashflows
from creditsim.ratings.lifetime import ZMacroLink, monthly_matrices_from_z
from creditsim.risk.pool_engine import PoolEngine
from creditsim.risk.reweighted import ReweightedLosses
from creditsim.states import ASSET_CLASSES, MACRO_VARS, POOL_CF_TYPES, LoanState

__all__ = ["ExpectedLossPath"]

_N_AC = len(ASSET_CLASSES)
_CORPORATE = ASSET_CLASSES.index("corporate")
_REAL_ESTATE = ASSET_CLASSES.index("real_estate")
_HPI = MACRO_VARS.index("house_price_growth")
_POLICY = MACRO_VARS.index("policy_rate")
_TEN_YEAR = MACRO_VARS.index("yield_10y")
#: central-difference step along a year's Z mean (standard-normal units)
Z_STEP = 1e-5
#: idiosyncratic draws around the expected cashflows in :meth:`ExpectedLossPath.tranche_losses`, and their seed
GRANULARITY_DRAWS = 64
GRANULARITY_SEED = 20261204
_COL = {name: i for i, name in enumerate(POOL_CF_TYPES)}


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
        self._floats = book.floating_classes() is not None
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

    def as_paths(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, T, 9)`` float64 macro paths on the path's device, cut to the horizon (a copy of a numpy input;
        one-line DataError for another shape)."""
        if isinstance(macro, torch.Tensor):
            x = macro.to(dtype=torch.float64, device=self.device)
        else:  # a copy: the caller's array may be read-only (pandas' to_numpy), which torch warns about
            x = torch.tensor(np.asarray(macro, dtype=np.float64), device=self.device)
        if x.ndim != 3 or x.shape[-1] != len(MACRO_VARS) or x.shape[1] < self.horizon:
            raise DataError(f"macro paths: expected (S, >= {self.horizon}, {len(MACRO_VARS)}), got {tuple(x.shape)}")
        return x[:, : self.horizon]

    def cohort_matrices(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, C, T, 7, 7)`` float64 matrices, as :meth:`PoolEngine.cohort_matrices`."""
        x = self.as_paths(macro)
        eng, s = self.engine, x.shape[0]
        mats = eng.transition_model.scenario_matrices_torch(x)
        if mats.ndim == 4:
            mats = mats[:, None].expand(s, _N_AC, *mats.shape[1:])
        mats = mats[:, :, : self.horizon]
        if eng.rating_term_structure is not None:  # its scaled-generator chains have no torch path yet
            raise ConfigError("the expected-loss path (reverse stress, sizing) follows the Markov rating chain; "
                              "run it with rating_pd='markov'")
        monthly = self.rating_matrices(x)
        if monthly is not None:
            mats = torch.cat([mats, _rated_cohorts(_rating_hazard(monthly), mats[:, _CORPORATE])], dim=1)
        if eng.refinancing is not None:
            mats = torch.cat([mats, self._refinanced(mats[:, _REAL_ESTATE], x)[:, None]], dim=1)
        return mats

    def rating_matrices(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """``(S, T, 8, 8)`` monthly Z-conditional rating matrices of the rated loans along the paths (each
        year's matrix for its 12 months), or None without rated loans: the engine's
        :func:`creditsim.ratings.lifetime.monthly_scenario_matrices`, differentiable in the path."""
        link = self.engine.rating_link
        if link is None:
            return None
        x = self.as_paths(macro)
        idx = [MACRO_VARS.index(v) for v in link.variables]
        coef = torch.tensor(np.array(link.coef_, dtype=np.float64), dtype=torch.float64, device=x.device)
        z_mean = link.intercept_ + (_annual_means(x)[..., idx] * coef).sum(-1)  # (S, Y)
        yearly = _MonthlyRatingMatrices.apply(z_mean, link)  # (S, Y, 8, 8)
        return yearly[:, torch.arange(self.horizon, device=x.device) // 12]

    def ccc_share(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """``(S, T)`` CCC share of the performing pool along the paths (:meth:`PoolEngine.ccc_par` divided
        by the performing balance), differentiable in the path; None without rated loans."""
        monthly = self.rating_matrices(macro)
        if monthly is None:
            return None
        weight = torch.as_tensor(self.engine.grade_weights(), dtype=monthly.dtype, device=monthly.device)
        s = monthly.shape[0]
        dist = torch.eye(8, dtype=monthly.dtype, device=monthly.device)[:7].expand(s, 7, 8)
        shares = []
        for t in range(monthly.shape[1]):  # the engine's chain e_g M_1 ... M_t (equal to its CCC par to 1e-12)
            dist = (dist[:, :, :, None] * monthly[:, t][:, None, :, :]).sum(2)
            alive = torch.clamp(1.0 - dist[:, :, 7], min=1e-12)
            shares.append((dist[:, :, 6] / alive * weight).sum(-1))
        return torch.stack(shares, dim=1)

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

    def lgd_moments(self, macro: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, variance)`` ``(S, L)`` of each loan's realised LGD: the book's Beta LGD (mean ``mu``,
        concentration ``kappa``: variance ``mu (1 - mu) / (kappa + 1)``), real estate's recovered share
        times the path's house-price trough ``H`` (:mod:`creditsim.loans.collateral`; variance times H^2)."""
        x = self.as_paths(macro)
        trough = self.house_price_trough(x)
        scale = torch.where(self._real_estate[None, :], trough[:, None], torch.ones_like(trough)[:, None])
        mu = self._lgd[None, :]
        kappa = float(self.engine.book.lgd_concentration)
        var = mu * (1.0 - mu) / (kappa + 1.0) if np.isfinite(kappa) else torch.zeros_like(mu)
        return 1.0 - (1.0 - mu) * scale, var * scale ** 2

    def house_price_trough(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S,)`` lowest house-price level of each path relative to month 0 (<= 1): the factor on
        real-estate loans' recovered share (:func:`creditsim.loans.collateral.house_price_trough`, in torch)."""
        x = self.as_paths(macro)
        g = x[:, 1:, _HPI]
        log_level = torch.cat([torch.zeros_like(x[:, :1, _HPI]), torch.cumsum(torch.log1p(g) / 12.0, dim=1)], dim=1)
        return torch.exp(log_level).amin(dim=1)  # month 0 is 1

    def expected_lgd(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(S, L)`` expected LGD (:meth:`lgd_moments`)."""
        return self.lgd_moments(macro)[0]

    def index_shift(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """``(S, T)`` policy-rate change since month 0 (the floating index's), or None without floating
        loans; floors, caps, resets and the lowest-coupon bound apply per floating class downstream
        (:meth:`creditsim.loans.floating.FloatingClasses.coupon_change`), as in the engine."""
        if not self._floats:
            return None
        policy = self.as_paths(macro)[..., _POLICY]
        return policy - policy[:, :1]

    def index_level(self, macro: torch.Tensor | np.ndarray) -> torch.Tensor | None:
        """``(S,)`` policy rate in month 0 (the index at the cut-off), or None without floating loans."""
        return self.as_paths(macro)[:, 0, _POLICY] if self._floats else None

    def pool_cashflows(self, macro: torch.Tensor | np.ndarray, *, with_variance: bool = False
                       ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(S, T, 7)`` expected pool cashflows (currency units, POOL_CF_TYPES order); with
        ``with_variance`` also the variances of the pool's monthly ``(S, T)`` and total ``(S,)`` loss given
        the path (:func:`expected_pool_cashflows`)."""
        x = self.as_paths(macro)
        mean, var = self.lgd_moments(x)
        return expected_pool_cashflows(self.engine.book, self.cohort_matrices(x), self.horizon, mean,
                                       index_shift=self.index_shift(x), index_level=self.index_level(x),
                                       loan_chunk=self.engine.loan_chunk,
                                       lgd_var=var if with_variance else None)

    def granular_cashflows(self, cashflows: torch.Tensor, loss_var: torch.Tensor, total_var: torch.Tensor,
                           draws: int = GRANULARITY_DRAWS) -> torch.Tensor:
        """Idiosyncratic scenarios around the expected cashflows: ``(S, K, T, 7)``, equally weighted.

        Given the path, loans default independently, so each month's pool loss has the variance
        ``loss_var`` ``(S, T)`` (:func:`expected_pool_cashflows`). Draw ``k`` scales month t's defaulted par,
        loss and (``lag`` months later) recovery by a lognormal ``a_kt`` with mean 1 and sd ``sd_t / mean_t``, from fixed
        standard normals ``e`` (antithetic pairs, one fixed seed: the map stays deterministic and
        differentiable), and the survivors' flows follow: with ``r_t = B'_{t-1} / B_{t-1}`` the surviving
        share of the expected performing balance, interest, scheduled principal and prepayment are times
        ``r_t`` and ``B'_t = B'_{t-1} - r_t (P_t + R_t) - a_kt D_t``, so par is conserved month by month.
        Month-level noise matters beyond the total: coverage tests react to a bad month. Independent
        months would overstate the variance of the total (a loan's default months are negatively
        correlated: it defaults once), so the shocks are scaled by ``sqrt(total_var / sum_t loss_var_t)``
        and the total loss keeps its exact variance.
        The waterfall of these, averaged, approximates ``E[waterfall(cashflows)]`` where :meth:`waterfall`
        gives ``waterfall(E[cashflows])`` (measured against the Monte Carlo engine in the tests).
        """
        s, t_len = cashflows.shape[:2]
        g = torch.Generator().manual_seed(GRANULARITY_SEED)
        half = torch.randn(max(1, draws // 2), t_len, generator=g, dtype=cashflows.dtype).to(cashflows.device)
        eps = torch.cat([half, -half], dim=0)  # (K, T)
        mean = cashflows[..., _COL["loss"]]  # (S, T)
        shrink = torch.sqrt(torch.clamp(total_var, min=0.0) / torch.clamp(loss_var.sum(-1), min=1e-30))  # (S,)
        rel = torch.sqrt(torch.clamp(loss_var, min=0.0)) * shrink[:, None] / torch.clamp(mean, min=1e-9)
        # lognormal factors with mean 1 and the month's relative sd: positive, and right-skewed as the loss
        # of a pool with few defaults a month is (a clipped normal would bias the mean up)
        sig2 = torch.log1p(rel ** 2)[:, None]  # (S, 1, T)
        a = torch.exp(torch.sqrt(sig2) * eps[None] - 0.5 * sig2)  # (S, K, T)
        cf = cashflows[:, None].expand(-1, eps.shape[0], -1, -1)
        b_prev = torch.full(a.shape[:2], float(self.engine.initial_balance), dtype=a.dtype, device=a.device)
        base_prev = torch.full((s, 1), float(self.engine.initial_balance), dtype=a.dtype, device=a.device)
        cols = {name: [] for name in ("interest", "scheduled_principal", "prepayment", "balance")}
        for t in range(t_len):
            r = b_prev / torch.clamp(base_prev, min=1e-9)
            for name in ("interest", "scheduled_principal", "prepayment"):
                cols[name].append(cf[:, :, t, _COL[name]] * r)
            b_now = torch.clamp(b_prev - cols["scheduled_principal"][-1] - cols["prepayment"][-1]
                                - a[:, :, t] * cf[:, :, t, _COL["default_par"]], min=0.0)
            cols["balance"].append(b_now)
            b_prev, base_prev = b_now, cashflows[:, None, t, _COL["balance"]]
        out = {name: torch.stack(v, dim=2) for name, v in cols.items()}
        out["default_par"] = cf[..., _COL["default_par"]] * a
        out["loss"] = cf[..., _COL["loss"]] * a
        lag = int(self.engine.book.recovery_lag)
        lagged = torch.cat([torch.ones_like(a[..., :lag]), a[..., : max(t_len - lag, 0)]], dim=-1)[..., :t_len]
        out["recovery"] = cf[..., _COL["recovery"]] * lagged
        return torch.stack([out[name] for name in POOL_CF_TYPES], dim=-1)

    def waterfall(self, macro: torch.Tensor | np.ndarray, *, tranche_balances: torch.Tensor | None = None,
                  mode: str = "soft") -> dict[str, torch.Tensor]:
        """The deal's waterfall (``mode`` soft / straight_through / hard) on the expected pool cashflows."""
        cf = self.pool_cashflows(macro)
        return run_waterfall(cf, self.deal, initial_balance=self.engine.initial_balance, mode=mode,
                             tranche_balances=tranche_balances, temperature=self.temperature, device=self.device,
                             **self.market(macro, cf))

    def tranche_losses(self, macro: torch.Tensor | np.ndarray, *, tranche_balances: torch.Tensor | None = None,
                       mode: str = "soft", granularity: int | None = GRANULARITY_DRAWS) -> torch.Tensor:
        """``(S, N)`` principal-loss fractions of every tranche (equity last).

        ``granularity``: idiosyncratic draws around the expected cashflows (:meth:`granular_cashflows`;
        default 64), averaged; None / 1 for the waterfall of the expected cashflows alone."""
        return self.losses(macro, mode=mode, granularity=granularity, tranche_balances=tranche_balances)[0]

    def losses(self, macro: torch.Tensor | np.ndarray, *, mode: str = "soft", granularity: int | None = GRANULARITY_DRAWS,
               tranche_balances: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tranche losses (S, N), pool loss fraction (S,))``: :meth:`tranche_losses` and the expected
        cumulative pool loss over the horizon as a fraction of the cut-off balance, from one pass."""
        p0 = float(self.engine.initial_balance)
        if not granularity or granularity <= 1:
            cf = self.pool_cashflows(macro)
            wf = run_waterfall(cf, self.deal, initial_balance=p0, mode=mode, tranche_balances=tranche_balances,
                               temperature=self.temperature, device=self.device, **self.market(macro, cf))
            return principal_loss(wf), cf[..., _COL["loss"]].sum(-1) / p0
        cf, var, total = self.pool_cashflows(macro, with_variance=True)
        draws = self.granular_cashflows(cf, var, total, granularity)
        s, k = draws.shape[:2]
        wf = run_waterfall(draws.reshape(s * k, *draws.shape[2:]), self.deal, initial_balance=p0, mode=mode,
                           tranche_balances=tranche_balances, temperature=self.temperature, device=self.device,
                           **self.market(macro, cf, repeat=k))
        return principal_loss(wf).view(s, k, -1).mean(1), cf[..., _COL["loss"]].sum(-1) / p0

    def reweighted(self, macro: torch.Tensor | np.ndarray, *, draws: int = 4096, first_id: int = 0,
                   progress: bool = False) -> ReweightedLosses:
        """Tranche losses exact in expectation near one path ``(T, 9)`` / ``(1, T, 9)``: ``draws`` engine
        draws on it, reweighted by their likelihood ratio to any nearby path, differentiably
        (:class:`~creditsim.risk.reweighted.ReweightedLosses`; what :meth:`tranche_losses` approximates)."""
        return ReweightedLosses(self, macro, draws=draws, first_id=first_id, progress=progress)

    def market(self, macro: torch.Tensor | np.ndarray, pool_cf: torch.Tensor | np.ndarray, deal: Any = None,
               repeat: int = 1) -> dict[str, Any]:
        """The waterfall's market inputs on macro paths ``(S, T, 9)`` and their pool cashflows ``(S, T, 7)``
        (:meth:`PoolEngine.market_inputs`), each row repeated ``repeat`` times (one per idiosyncratic draw). The notes' base rate,
        the sale price and (for torch cashflows) the CCC par (:meth:`ccc_share`) keep the path's gradients."""
        deal = self.deal if deal is None else deal
        # torch cashflows: the same CCC par as the engine's, with the path's gradient (computed once, here)
        share = self.ccc_share(macro) if isinstance(pool_cf, torch.Tensor) and deal.ccc_limit is not None else None
        out = self.engine.market_inputs(deal, macro, pool_cf, ccc_share=share)
        if repeat > 1:
            out = {key: (v.repeat_interleave(repeat, 0) if isinstance(v, torch.Tensor) else np.repeat(v, repeat, 0))
                   for key, v in out.items()}
        return out

    def tranche_index(self, name: str) -> int:
        """Position of tranche ``name`` (one-line ConfigError listing the names otherwise)."""
        names = [t.name for t in self.deal.tranches]
        if name not in names:
            raise ConfigError(f"tranche {name!r} is not in deal {self.deal.name!r}; tranches: {names}")
        return names.index(name)

    def scenario_paths(self, n: int, seed: int, run: dict[str, Any] | None = None) -> np.ndarray:
        """``(n, T, 9)`` macro paths of a run's macro source and scenario mix (``run``: ``macro``,
        ``scenario_mix``, ``horizon`` as :class:`creditsim.RunConfig` fields; defaults the pretrained
        MacroVAE and the 60/25/10/5 mix) from this path's start state."""
        from creditsim.macro.scenarios import build_macro_draw, draw_scenario_labels, first_simulated_month
        from creditsim.risk.config import RunConfig

        config = RunConfig(**{k: v for k, v in (run or {}).items() if k in ("macro", "scenario_mix", "horizon")})
        labels = draw_scenario_labels(config.weights, n, seed)
        # a dated frame is read from the month after the cut-off, as simulate reads it
        return build_macro_draw(config.macro, labels, self.horizon, seed, start=self.start,
                                first_month=first_simulated_month(self.cutoff)).values

    # ------------------------------------------------------------------ the hard Monte Carlo check
    def monte_carlo_pool(self, paths: np.ndarray, reps: int, chunk: int = 250) -> np.ndarray:
        """``(S x reps, T, 7)`` hard-engine pool cashflows: ``reps`` loan draws on each of ``paths``
        ``(S, T, 9)`` (path ``s`` is repeated ``reps`` times; scenario ids ``0 .. S x reps - 1`` of the
        engine's seed), simulated ``chunk`` scenarios at a time. Every scenario's draws depend on its id
        only, so the chunk size changes nothing."""
        macro = np.repeat(np.asarray(paths, dtype=np.float64), reps, axis=0)
        parts = [self.engine.pool_cashflows(macro[a:a + chunk], np.arange(a, min(len(macro), a + chunk)))
                 for a in range(0, len(macro), chunk)]
        return np.concatenate(parts)

    def monte_carlo_losses(self, pool_cf: np.ndarray, tranche_balances: torch.Tensor | None = None,
                           deal: Any = None, paths: np.ndarray | None = None, reps: int = 1
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hard-waterfall principal loss of every tranche on Monte Carlo pool cashflows ``(n, T, 7)``
        (:meth:`monte_carlo_pool`): ``(losses (n, N), mean (N,), standard error (N,))``. ``deal``
        replaces the path's deal (e.g. with triggers moved to a resized structure); ``paths`` and
        ``reps`` -- the macro paths and draws per path the pool was simulated on -- give the waterfall
        its market inputs (the notes' base rate, the sale price, the CCC par), as in ``simulate``."""
        deal = self.deal if deal is None else deal
        market = {} if paths is None else self.market(np.repeat(np.asarray(paths, dtype=np.float64), reps, 0),
                                                      pool_cf, deal)
        with torch.no_grad():
            wf = run_waterfall(pool_cf, deal, initial_balance=self.engine.initial_balance, mode="hard",
                               tranche_balances=tranche_balances, **market)
            loss = principal_loss(wf).cpu().numpy()
        se = loss.std(0, ddof=1) / np.sqrt(len(loss)) if len(loss) > 1 else np.full(loss.shape[1], np.nan)
        return loss, loss.mean(0), se

