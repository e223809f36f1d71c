"""``PortfolioAggregator``: loan trajectories -> pool cashflows -> waterfall, as an ``nn.Module``.

The module holds a deal (:class:`~creditsim.deal.config.WaterfallConfig`), a mode and a device.
:meth:`PortfolioAggregator.aggregate_cashflows` sums loan-level trajectories into the pool cashflow
table through :func:`creditsim.loans.pool.pool_cashflows` (the one loan -> pool aggregation),
:meth:`PortfolioAggregator.apply_waterfall` (= ``forward``) runs the waterfall of
:mod:`creditsim.deal.waterfall`, :meth:`monte_carlo_simulate` runs :func:`creditsim.simulate` on the deal.

It lives in ``risk/`` rather than ``deal/`` because it spans three stages (loan -> pool, waterfall,
Monte Carlo): on the risk floor it can import all three without an import running up a floor, and
``deal/`` stays free of everything but the ground floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from creditsim.cents import sum_currency
from creditsim.deal.config import WaterfallConfig
from creditsim.deal.waterfall import MODES, run_waterfall
from creditsim.errors import ConfigError, DataError
from creditsim.loans.pool import (
    DEFAULT_RECOVERY_LAG,
    LOAN_FLOWS,
    check_recovery_lag,
    pool_cashflows,
)
from creditsim.risk.simulate import monte_carlo_simulate
from creditsim.states import POOL_CF_TYPES, LoanState

__all__ = ["PortfolioAggregator", "TRAJECTORY_ALIASES"]

#: keys of a trajectory dict that carry no cashflow and are ignored (LoanTrajectoryModel.generate's
#: realised LGD ``(n_sims, n_loans)``: its effect is in ``losses`` already)
INFORMATIONAL_KEYS: frozenset[str] = frozenset({"lgd"})

#: accepted trajectory keys -> pool cashflow type (or "states" / "payments")
TRAJECTORY_ALIASES: dict[str, str] = {
    "interest": "interest",
    "scheduled_principal": "scheduled_principal",
    "principal": "scheduled_principal",
    "prepayment": "prepayment",
    "prepayments": "prepayment",
    "recovery": "recovery",
    "recoveries": "recovery",
    "default_par": "default_par",
    "defaults": "default_par",
    "loss": "loss",
    "losses": "loss",
    "balance": "balance",
    "balances": "balance",
    "states": "states",
    "payments": "payments",
}


def _as_numpy(value: Any, key: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"trajectories[{key!r}] must be numeric, got {type(value).__name__}") from None


def _collect_trajectories(trajectories: Any) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The trajectory dict under canonical names, checked: ``(flows, initial_balance or None)``."""
    if not isinstance(trajectories, dict) or not trajectories:
        raise DataError("trajectories must be a non-empty dict of (n_sims, n_loans, T) arrays")
    flows: dict[str, np.ndarray] = {}
    init: np.ndarray | None = None
    for key, value in trajectories.items():
        if key == "initial_balance":
            init = _as_numpy(value, key)
            continue
        if key in INFORMATIONAL_KEYS:  # e.g. LoanTrajectoryModel.generate's realised LGD: in 'losses' already
            continue
        if key not in TRAJECTORY_ALIASES:
            raise DataError(
                f"trajectories has unknown key {key!r}; accepted: "
                f"{sorted(TRAJECTORY_ALIASES) + ['initial_balance'] + sorted(INFORMATIONAL_KEYS)}"
            )
        canon = TRAJECTORY_ALIASES[key]
        if canon in flows:
            raise DataError(f"trajectories gives {canon!r} twice (key {key!r} is an alias)")
        arr = _as_numpy(value, key)
        if arr.ndim != 3:
            raise DataError(f"trajectories[{key!r}] must have shape (n_sims, n_loans, T), got {arr.shape}")
        flows[canon] = arr
    if "balance" not in flows:
        raise DataError("trajectories needs 'balance' (or 'balances'): end-of-month loan balances (n_sims, n_loans, T)")
    shape = flows["balance"].shape
    for key, arr in flows.items():
        if arr.shape != shape:
            raise DataError(f"trajectories[{key!r}] has shape {arr.shape}, 'balance' has {shape}")
        if not np.all(np.isfinite(arr)):
            raise DataError(f"trajectories[{key!r}] has non-finite values")
        if key != "states" and np.any(arr < 0):
            s, l, t = (int(v) for v in np.argwhere(arr < 0)[0])
            raise DataError(f"trajectories[{key!r}] must be >= 0, got {arr[s, l, t]:.6g} at sim {s}, loan {l}, month {t}")
    return flows, init


class _LoanFeatureColumns:
    """Numeric columns of the optional loan_features frame, checked per use."""

    def __init__(self, loan_features: pd.DataFrame | None, n_loans: int) -> None:
        if loan_features is not None:
            if not isinstance(loan_features, pd.DataFrame):
                raise DataError(f"loan_features must be a DataFrame, got {type(loan_features).__name__}")
            if len(loan_features) != n_loans:
                raise DataError(f"loan_features has {len(loan_features)} rows, trajectories have {n_loans} loans")
        self.frame = loan_features

    def get(self, col: str) -> np.ndarray | None:
        if self.frame is None or col not in self.frame.columns:
            return None
        vals = pd.to_numeric(self.frame[col], errors="coerce").to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(vals)):
            bad = self.frame.index[~np.isfinite(vals)].tolist()
            raise DataError(f"loan_features.{col} must be numeric for every loan; bad rows {bad[:10]}")
        return vals


def _initial_balances(init: np.ndarray | None, features: _LoanFeatureColumns, S: int, L: int) -> np.ndarray:
    """``(S, L)`` balances at the cut-off: given, else current_balance, else original_balance."""
    if init is None:
        init = features.get("current_balance")
        if init is None:
            init = features.get("original_balance")
    if init is None:
        raise DataError(
            "initial loan balances are needed: pass trajectories['initial_balance'] or a loan_features "
            "column 'current_balance' / 'original_balance'"
        )
    if init.shape not in ((L,), (S, L)):
        raise DataError(f"initial loan balances must have shape ({L},) or ({S}, {L}), got {init.shape}")
    if not np.all(np.isfinite(init)) or np.any(init < 0):
        raise DataError("initial loan balances must be finite and >= 0")
    return np.broadcast_to(init, (S, L)).astype(np.float64)


def _derive_missing_flows(flows: dict[str, np.ndarray], init: np.ndarray, features: _LoanFeatureColumns) -> None:
    """Fill the flows the caller did not give, in place (see ``aggregate_cashflows``)."""
    bal = flows["balance"]
    S, L, _ = bal.shape
    prev = np.concatenate([init[:, :, None], bal[:, :, :-1]], axis=2)
    states = flows.get("states")
    if states is not None:
        st = states.astype(np.int64)
        prev_st = np.concatenate([np.full((S, L, 1), int(LoanState.CURRENT)), st[:, :, :-1]], axis=2)
        entering_default = (st == LoanState.DEFAULT) & (prev_st != LoanState.DEFAULT)
        entering_prepaid = (st == LoanState.PREPAID) & (prev_st != LoanState.PREPAID)
    if "default_par" not in flows:
        if states is None:
            raise DataError("trajectories needs 'default_par' (or 'states' to derive it)")
        flows["default_par"] = np.where(entering_default, prev, 0.0)
    if "prepayment" not in flows:
        flows["prepayment"] = np.where(entering_prepaid, prev, 0.0) if states is not None else np.zeros(bal.shape)
    if "scheduled_principal" not in flows:
        flows["scheduled_principal"] = np.clip(prev - bal - flows["default_par"] - flows["prepayment"], 0.0, None)
    if "interest" not in flows:
        if "payments" not in flows:
            raise DataError("trajectories needs 'interest' (or 'payments' to derive it)")
        flows["interest"] = np.clip(flows["payments"] - flows["scheduled_principal"] - flows["prepayment"], 0.0, None)
    if "loss" not in flows:
        lgd = features.get("lgd_assumption")
        if lgd is None:
            raise DataError("trajectories needs 'loss' (or loan_features.lgd_assumption to derive it)")
        if np.any((lgd < 0) | (lgd > 1)):
            raise DataError("loan_features.lgd_assumption must be in [0, 1]")
        flows["loss"] = flows["default_par"] * lgd[None, :, None]
    # a recovery to derive (default_par - loss) must not be negative; given recoveries are taken as they are
    over = flows["loss"] > flows["default_par"] + 0.005
    if "recovery" not in flows and over.any():
        s, l, t = (int(v) for v in np.argwhere(over)[0])
        raise DataError(f"trajectories['loss'] exceeds 'default_par' at sim {s}, loan {l}, month {t}: "
                        f"{flows['loss'][s, l, t]:.6g} > {flows['default_par'][s, l, t]:.6g}")


def _group_codes(group_by: str | Sequence[str] | None, loan_features: pd.DataFrame | None, L: int
                 ) -> tuple[np.ndarray, Any, list[str]]:
    """``(L,)`` group code per loan, the group keys and the group columns (one group without group_by)."""
    groups = [] if group_by is None else ([group_by] if isinstance(group_by, str) else list(group_by))
    if not groups:
        return np.zeros(L, dtype=np.int64), None, groups
    if loan_features is None:
        raise DataError("group_by needs loan_features")
    missing = [g for g in groups if g not in loan_features.columns]
    if missing:
        raise DataError(f"group_by column(s) {missing} not in loan_features")
    keys = pd.MultiIndex.from_frame(loan_features[groups].reset_index(drop=True).astype(object)) \
        if len(groups) > 1 else pd.Index(loan_features[groups[0]].to_numpy(), name=groups[0])
    codes, uniques = pd.factorize(keys)
    return codes, uniques, groups


def _group_pool(flows: dict[str, np.ndarray], members: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """``(S, T, 7)`` pool of the loans in ``members`` through the one loan -> pool function."""
    subset = {k: flows[k][:, members, :] for k in LOAN_FLOWS}
    if "recovery" in flows:
        subset["recovery"] = flows["recovery"][:, members, :]
    return pool_cashflows(subset, lag).cashflows


class PortfolioAggregator(nn.Module):
    """Differentiable waterfall simulation of one deal.

    Args:
        config: the deal.
        mode: default waterfall mode, "hard" (exact), "soft" or "straight_through".
        device: "cpu" or "cuda"; inputs are moved there.

    The tranche balances are a float64 buffer ``tranche_balances`` ``(N,)``; pass a tensor with
    ``requires_grad`` to :meth:`apply_waterfall` for sensitivities to the capital structure.
    """

    def __init__(self, config: WaterfallConfig, mode: str = "hard", device: str | torch.device = "cpu") -> None:
        super().__init__()
        if not isinstance(config, WaterfallConfig):
            raise ConfigError(f"config must be a WaterfallConfig, got {type(config).__name__}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self.config = config
        self.mode = mode
        self.register_buffer(
            "tranche_balances",
            torch.tensor([t.balance for t in config.tranches], dtype=torch.float64, device=device),
        )

    @property
    def device(self) -> torch.device:
        return self.tranche_balances.device

    @property
    def tranche_names(self) -> list[str]:
        return self.config.tranche_names

    # ------------------------------------------------------------------------------ aggregation
    def aggregate_cashflows(
        self,
        trajectories: dict[str, Any],
        loan_features: pd.DataFrame | None = None,
        group_by: str | Sequence[str] | None = None,
        recovery_lag: int | np.ndarray = DEFAULT_RECOVERY_LAG,
    ) -> pd.DataFrame:
        """Aggregate loan-level to portfolio-level cashflows (:func:`creditsim.loans.pool.pool_cashflows`).

        Args:
            trajectories: per-loan arrays / tensors of shape ``(n_sims, n_loans, T)``, currency units
                per month (``states``: LoanState codes). Accepted keys (aliases in brackets):
                ``interest``, ``scheduled_principal`` [``principal``], ``prepayment``
                [``prepayments``], ``recovery`` [``recoveries``], ``default_par`` [``defaults``],
                ``loss`` [``losses``], ``balance`` [``balances``, required, end of month],
                ``states``, ``payments`` (cash paid by the borrower: interest + scheduled principal
                + prepayment, recoveries excluded), and ``initial_balance`` ``(n_loans,)`` or
                ``(n_sims, n_loans)`` (balance at the cut-off). Missing flows are derived:

                - ``initial_balance``: ``loan_features.current_balance`` else ``original_balance``;
                - ``default_par`` / ``prepayment``: the previous month's balance of loans entering
                  DEFAULT / PREPAID (needs ``states``; loans start CURRENT); ``prepayment`` is 0
                  without ``states``;
                - ``scheduled_principal``: ``(previous balance - balance - default_par -
                  prepayment)^+``;
                - ``interest``: ``(payments - scheduled_principal - prepayment)^+``;
                - ``loss``: ``loan_features.lgd_assumption x default_par``;
                - ``recovery``: ``default_par - loss`` paid ``recovery_lag`` months after the default
                  (the engine's convention); recoveries due after the horizon are not pool cash of
                  the simulated months. A ``recovery`` array that is given is taken as the cash as is.
            loan_features: one row per loan, in the loans' order (needed for the derivations above
                and for ``group_by``).
            group_by: loan_features column(s) to keep as extra index levels (e.g. "asset_class").
            recovery_lag: months from default to recovery cash, an int or ``(n_loans,)``.

        Returns:
            long DataFrame indexed by ``(sim, month[, *group_by])`` with the ``POOL_CF_TYPES``
            columns and ``initial_balance`` (pool par at the cut-off of that sim / group).
        """
        flows, init = _collect_trajectories(trajectories)
        S, L, T = flows["balance"].shape
        features = _LoanFeatureColumns(loan_features, L)
        init = _initial_balances(init, features, S, L)
        _derive_missing_flows(flows, init, features)
        codes, uniques, groups = _group_codes(group_by, loan_features, L)
        n_groups = int(codes.max()) + 1
        lag = check_recovery_lag(recovery_lag, L)
        cols = np.stack([_group_pool(flows, codes == g, lag[codes == g]) for g in range(n_groups)], axis=2)  # (S, T, G, 7)
        init_g = np.stack([sum_currency(init[:, codes == g], axis=1) for g in range(n_groups)], axis=-1)  # (S, G)
        sims, months, grp = np.meshgrid(np.arange(S), np.arange(T), np.arange(n_groups), indexing="ij")
        data = {k: cols[..., i].reshape(-1) for i, k in enumerate(POOL_CF_TYPES)}
        data["initial_balance"] = np.broadcast_to(init_g[:, None, :], (S, T, n_groups)).reshape(-1)
        index_frame = {"sim": sims.reshape(-1), "month": months.reshape(-1)}
        if groups:
            gvals = np.asarray(uniques, dtype=object)[grp.reshape(-1)]
            if len(groups) > 1:
                for i, g in enumerate(groups):
                    index_frame[g] = [v[i] for v in gvals]
            else:
                index_frame[groups[0]] = gvals
        index = pd.MultiIndex.from_frame(pd.DataFrame(index_frame))
        return pd.DataFrame(data, index=index)

    @staticmethod
    def pool_tensor(portfolio_cf: pd.DataFrame, device: str | torch.device = "cpu"
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(S, T, 7)`` float64 tensor and ``(S,)`` initial balance from an aggregated table.

        Extra index levels (groups) are summed: the waterfall sees the whole pool.
        """
        if not isinstance(portfolio_cf.index, pd.MultiIndex) or not {"sim", "month"} <= set(portfolio_cf.index.names):
            raise DataError("portfolio_cf DataFrame must be indexed by (sim, month[, groups]) as aggregate_cashflows returns")
        missing = [c for c in POOL_CF_TYPES if c not in portfolio_cf.columns]
        if missing:
            raise DataError(f"portfolio_cf lacks column(s) {missing}; expected {list(POOL_CF_TYPES)}")
        cols = list(POOL_CF_TYPES) + (["initial_balance"] if "initial_balance" in portfolio_cf.columns else [])
        summed = portfolio_cf[cols].groupby(level=["sim", "month"]).sum().sort_index()
        sims = summed.index.get_level_values("sim").unique()
        months = summed.index.get_level_values("month").unique()
        if len(summed) != len(sims) * len(months):
            raise DataError("portfolio_cf must have one row per (sim, month) on a full grid")
        arr = summed[list(POOL_CF_TYPES)].to_numpy(dtype=np.float64).reshape(len(sims), len(months), len(POOL_CF_TYPES))
        init = None
        if "initial_balance" in cols:
            init = torch.tensor(
                summed["initial_balance"].to_numpy(dtype=np.float64).reshape(len(sims), len(months))[:, 0],
                device=device)
        return torch.tensor(arr, device=device), init

    # -------------------------------------------------------------------------------- waterfall
    def apply_waterfall(
        self,
        portfolio_cf: torch.Tensor | np.ndarray | pd.DataFrame,
        initial_balance: float | np.ndarray | torch.Tensor | None = None,
        mode: str | None = None,
        tranche_balances: torch.Tensor | None = None,
        temperature: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Apply the waterfall rules to distribute pool cashflows.

        Args:
            portfolio_cf: ``(n_sims, n_months, 7)`` pool cashflows (``POOL_CF_TYPES`` order) or the
                DataFrame of :meth:`aggregate_cashflows` (its ``initial_balance`` column is used).
            initial_balance: pool par at the cut-off, scalar or ``(n_sims,)``; None = from the
                DataFrame, else inferred from month 0.
            mode: override of the module's mode; temperature: override of ``soft_temperature``.
            tranche_balances: ``(N,)`` override of the buffer (e.g. with ``requires_grad``).

        Returns:
            dict of tensors described in :func:`creditsim.deal.waterfall.run_waterfall`: per
            period tranche interest / principal / balances / deferred interest, OC and IC ratios and
            pass flags, cures and diversions, fees, reinvestment, equity cash, tranche cashflows.
        """
        if isinstance(portfolio_cf, pd.DataFrame):
            cf, init = self.pool_tensor(portfolio_cf, self.device)
            if initial_balance is None:
                initial_balance = init
        else:
            cf = portfolio_cf
        return run_waterfall(
            cf, self.config, initial_balance=initial_balance, mode=self.mode if mode is None else mode,
            tranche_balances=self.tranche_balances if tranche_balances is None else tranche_balances,
            temperature=temperature, device=self.device,
        )

    def forward(self, portfolio_cf: torch.Tensor, initial_balance: Any = None) -> dict[str, torch.Tensor]:
        """Same as :meth:`apply_waterfall` with the module's mode."""
        return self.apply_waterfall(portfolio_cf, initial_balance)

    def monte_carlo_simulate(
        self,
        loans_df: pd.DataFrame,
        macro_vae: Any = None,
        transition_model: Any = None,
        trajectory_model: Any = None,
        n_simulations: int = 10_000,
        scenario_mix: Mapping[str, float] | str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Full Monte Carlo simulation of this deal on ``loans_df`` (the spec's signature).

        ``macro_vae`` (a MacroVAE; None = the pretrained one), ``transition_model`` (Markov or
        TransitionTransformer; None = the Markov default), ``trajectory_model`` (a LoanTrajectoryModel
        selects the trajectory engine), ``n_simulations`` scenarios drawn per ``scenario_mix`` (default
        0.6/0.25/0.1/0.05). Further keywords (``seed``, ``chunk_size``, ``backend``, ``device``, ...) go
        to :func:`creditsim.simulate`. Returns a
        :class:`~creditsim.risk.results.SimulationResults`.
        """
        return monte_carlo_simulate(self, loans_df, macro_vae=macro_vae, transition_model=transition_model,
                                    trajectory_model=trajectory_model, n_simulations=n_simulations,
                                    scenario_mix=scenario_mix, **kwargs)
