"""Monthly CLO / ABS waterfall, vectorised over scenarios, exact or differentiable.

One implementation serves three modes (torch, float64):

- ``"hard"``: the exact waterfall. Every pass/fail is a 0/1 flag; payments are ``min``/``clamp`` of
  amounts, so cash is conserved to rounding in every period and scenario.
- ``"soft"``: each coverage-test failure becomes a weight ``g = sigmoid((trigger - ratio) / tau)``
  (``tau = config.soft_temperature``, ratio units) that scales the cure amount. Because the cure is
  zero at the trigger, the soft waterfall differs from the hard one by O(tau) and converges to it as
  ``tau -> 0``. Payments stay ``min(available, g * cure)``, so conservation is exact in this mode too.
- ``"straight_through"``: forward values of the hard mode, gradients of the sigmoid gates
  (``hard + soft - soft.detach()``).

Kinks of ``min``/``clamp`` are not smoothed: with cure-amount semantics the waterfall is continuous
and piecewise linear in the collections and the note sizes, so autograd sub-gradients are exact almost
everywhere and match finite differences away from the kinks.

Period timeline (month t = 0..T-1, payment date at the end of month t), after WATERFALL.md:

1. Collections of the original pool (input) and of the reinvestment bucket (pool mirroring, below).
   Interest proceeds ``IP = interest``; principal proceeds ``PrP = scheduled + prepayment + recovery``.
2. Determination date: OC and IC ratios on pre-distribution note balances.
   ``ACPA = performing pool par + bucket par + expected recovery of defaulted par not yet recovered
   + principal cash of the period``; ``OC_k = ACPA / sum_{j<=k} N_j``;
   ``IC_k = (IP - senior fee due)^+ / sum_{j<=k} c_j/12 N_j``.
3. Interest priority: senior fee (+ unpaid) -> for each debt class in order: interest (+ carried
   shortfall), then its OC / IC tests (cure paid sequentially to the classes senior to and including
   it, interest formula ``x = L_k - ACPA/theta_k``; IC pro forma walk-down, or "turbo"), then, for a
   deferrable class, repayment of its capitalised interest -> interest diversion test during the
   reinvestment period (cash to buy collateral, ``min(share * remaining, theta L - ACPA)``) ->
   subordinated fee (+ unpaid; optionally before the diversion test) -> residual to equity.
4. Principal priority: unpaid senior fee -> unpaid interest of non-deferrable classes and of a
   deferrable class that is the most senior outstanding -> (reinvestment period only) cure amounts
   still owed, principal formula ``x = (theta L_k - ACPA) / (theta - 1)`` and the IC walk-down ->
   reinvestment of everything left (reinvestment period) or sequential note paydown (after it) ->
   unpaid subordinated fee -> residual to equity.
5. Deferrable classes capitalise the interest still unpaid (PIK; it accrues at the coupon and counts
   in OC denominators); unpaid interest of a non-deferrable class is carried to the next period
   (without interest) and flagged as an event of default (recorded, no acceleration). For reporting,
   a month's paydowns of a class repay its capitalised interest (this month's included) before its
   note principal (``deferred_interest_paid`` vs ``principal``); cash and balances do not depend on
   this split.
6. Last month with ``liquidate_at_horizon``: performing collateral is sold at ``liquidation_price``,
   defaulted par awaiting recovery is realised at its expected recovery, the proceeds are principal
   proceeds and are paid sequentially (no reinvestment in the last month).

Reinvestment bucket ("pool mirroring", WATERFALL 2.7): par bought during the reinvestment period
defaults, prepays and amortises in each scenario and month at the realised rates of the original pool
(``default_par / P_{t-1}``, ``prepayment / P_{t-1}``, ``scheduled_principal / P_{t-1}``), earns the
pool's realised interest yield (or ``reinvestment_coupon``), loses the pool's realised severity
(``loss / default_par``) and collects the same fraction of its pending recoveries as the pool does
(``recovery / pending expected recoveries``). When the pool has fully paid down, the bucket matures.

Decisions: coverage tests are per class on cumulative balances (pari-passu groups are not modelled);
no CCC haircut (pool flows carry no ratings); no incentive fee, admin-expense cap, hedge or EoD
acceleration; fees accrue 30/360 on collateral par at the start of the month.

Code layout: :func:`_waterfall_month` runs one month as the timeline's phases, module-level functions
(:func:`_collections` with :func:`_mirroring_rates` and :func:`_liquidate`, :func:`_determination`,
:func:`_interest_priority`, :func:`_sub_fee_and_diversion`, :func:`_principal_priority`,
:func:`_close_month`) that read the run's constants (:class:`_Deal`), update the balances carried
between months (:class:`_State`) and fill the month's record (:class:`_Month`), from which
:func:`_record_month` takes the requested outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from creditsim.deal.config import MODES, WaterfallConfig
from creditsim.errors import ConfigError, DataError
from creditsim.fixed_order import column_sum, elementwise
from creditsim.states import POOL_CF_TYPES

__all__ = ["MODES", "run_waterfall", "cash_conservation_error", "infer_initial_balance", "RESULT_KEYS",
           "TRANCHE_OUTPUTS"]

_ALPHA = 1.0 / 12.0  # 30/360 monthly accrual fraction
_K = len(POOL_CF_TYPES)
_INTEREST, _SCHED, _PREPAY, _RECOV, _DEFPAR, _LOSS, _BAL = range(_K)

#: keys of the dict returned by :func:`run_waterfall` (all float64 tensors)
RESULT_KEYS: tuple[str, ...] = (
    "cash_in", "interest_proceeds", "principal_proceeds", "liquidation", "senior_fee", "sub_fee",
    "interest", "principal", "deferred_interest_paid", "deferred_interest", "deferred_balance",
    "interest_shortfall", "balances", "oc_ratio", "oc_pass", "ic_ratio", "ic_pass", "interest_cure",
    "principal_cure", "interest_diversion", "reinvestment", "bucket_balance", "collateral_balance",
    "acpa", "equity_interest", "equity_principal", "equity", "event_of_default", "tranche_cashflows",
    "tranche_interest", "tranche_principal", "tranche_balance", "initial_balances", "pool_balance_0",
)

#: the outputs tranche analytics and simulation results need (``outputs=TRANCHE_OUTPUTS`` saves memory)
TRANCHE_OUTPUTS: tuple[str, ...] = (
    "cash_in", "principal", "balances", "equity", "tranche_cashflows", "tranche_interest",
    "tranche_principal", "tranche_balance",
)


def infer_initial_balance(pool_cf: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Pool balance at the cut-off implied by month 0: ``balance + scheduled + prepayment + default_par``.

    Exact when month-0 principal reduces the balance one for one (the engine's convention); pass the
    balance explicitly when the tape's cut-off balance is known.
    """
    return (pool_cf[:, 0, _BAL] + pool_cf[:, 0, _SCHED] + pool_cf[:, 0, _PREPAY]
            + pool_cf[:, 0, _DEFPAR])


def _validate_inputs(pool_cf: Any, initial_balance: Any, device: str | torch.device | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(pool_cf, torch.Tensor):
        cf = pool_cf.to(dtype=torch.float64, device=device)
    else:
        try:
            cf = torch.as_tensor(np.asarray(pool_cf, dtype=np.float64), device=device)
        except (TypeError, ValueError):
            raise DataError(f"pool_cf must be a numeric array (S, T, {_K}), got {type(pool_cf).__name__}") from None
    if cf.ndim != 3 or cf.shape[2] != _K:
        raise DataError(
            f"pool_cf must have shape (n_sims, n_months, {_K}) with the last axis {list(POOL_CF_TYPES)}, "
            f"got {tuple(cf.shape)}"
        )
    if cf.shape[0] == 0 or cf.shape[1] == 0:
        raise DataError(f"pool_cf needs at least one scenario and one month, got {tuple(cf.shape)}")
    with torch.no_grad():
        # two passes without temporaries (the element-wise masks cost a 1/8-size copy each on large runs):
        # a sum is finite iff every term is, unless it overflowed - the mask then decides
        if not bool(torch.isfinite(cf.sum())):
            bad = ~torch.isfinite(cf)
            if bool(bad.any()):
                s, t, k = (int(v) for v in torch.nonzero(bad)[0])
                raise DataError(f"pool_cf has a non-finite value: {POOL_CF_TYPES[k]} at scenario {s}, month {t}")
        lo, hi = (float(v) for v in torch.aminmax(cf))
        floor = -1e-9 * max(abs(lo), abs(hi), 1.0)
        if lo < floor:
            neg = cf < floor
            s, t, k = (int(v) for v in torch.nonzero(neg)[0])
            raise DataError(
                f"pool_cf.{POOL_CF_TYPES[k]} must be >= 0 (cash and balances), got {float(cf[s, t, k]):.6g} "
                f"at scenario {s}, month {t}"
            )
    if initial_balance is None:
        p0 = infer_initial_balance(cf)
    else:
        p0 = initial_balance if isinstance(initial_balance, torch.Tensor) else torch.as_tensor(
            np.asarray(initial_balance, dtype=np.float64))
        p0 = p0.to(dtype=torch.float64, device=cf.device)
        if p0.ndim == 0:
            p0 = p0.expand(cf.shape[0])
        if p0.shape != (cf.shape[0],):
            raise DataError(f"initial_balance must be a scalar or shape ({cf.shape[0]},), got {tuple(p0.shape)}")
    with torch.no_grad():
        if not bool(torch.isfinite(p0).all()) or bool((p0 <= 0).any()):
            s = int(torch.nonzero(~(torch.isfinite(p0) & (p0 > 0)))[0])
            raise DataError(f"initial pool balance must be finite and > 0, got {float(p0[s])} at scenario {s}")
    return cf, p0


def _pay_sequential(pot: torch.Tensor, dues: torch.Tensor) -> torch.Tensor:
    """Allocate ``pot`` (S,) across ``dues`` (S, m) in priority order; returns paid (S, m) <= dues.

    ``paid_k = min(due_k, (pot - sum_{j<k} due_j)^+)``: one vectorised step instead of a loop.
    """
    before = torch.cumsum(dues, dim=1) - dues
    return torch.minimum(dues, torch.clamp(pot.unsqueeze(1) - before, min=0.0))


def _rowsum(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(dim=1)`` of a narrow ``(S, m)`` matrix, column by column in class order.

    Not ``x @ ones``: a BLAS ``gemv`` sums a row in an order that depends on its position in the tile
    and on the CPU's kernel, so a scenario's numbers would change with the chunk it runs in
    (:mod:`creditsim.fixed_order`). m is the number of classes (a handful), so the loop is cheap.
    """
    return column_sum(x, 1)


def _ic_paydown(balances: torch.Tensor, rates: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    """Sequential paydown (S,) from the most senior class that cuts interest due by ``excess`` (S,).

    Walks down the classes: ``x_j = min(N_j, remaining cut / rate_j)``; a zero-coupon class must be
    repaid in full before the next one is reached (its repayment cuts nothing).
    """
    due = balances * rates
    rem = torch.clamp(excess.unsqueeze(1) - (torch.cumsum(due, dim=1) - due), min=0.0)
    safe = torch.where(rates > 0, rates, 1.0)
    x = torch.where(rates > 0, torch.minimum(balances, rem / safe), torch.where(rem > 0, balances, 0.0))
    return _rowsum(x)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, +inf where the denominator is 0 (a repaid class passes every test)."""
    pos = den > 0
    return torch.where(pos, num / torch.where(pos, den, 1.0), float("inf"))


class _Gates:
    """Pass/fail weights of the three modes; ``fail(margin)`` with margin = trigger - ratio."""

    def __init__(self, mode: str, tau: float) -> None:
        self.mode, self.tau = mode, tau

    def fail(self, margin: torch.Tensor) -> torch.Tensor:
        hard = (margin > 0).to(margin.dtype)
        if self.mode == "hard":
            return hard
        # margin is -inf for a repaid class: sigmoid gives exactly 0 there, gradient 0
        soft = elementwise(torch.sigmoid, margin / self.tau)  # the same bits in any batch
        if self.mode == "soft":
            return soft
        return hard + (soft - soft.detach())


def run_waterfall(
    pool_cf: np.ndarray | torch.Tensor,
    config: WaterfallConfig,
    initial_balance: float | np.ndarray | torch.Tensor | None = None,
    mode: str = "hard",
    tranche_balances: torch.Tensor | None = None,
    temperature: float | None = None,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    outputs: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Run the deal's monthly waterfall on pool cashflows of every scenario at once.

    Args:
        pool_cf: ``(S, T, 7)`` float64 pool cashflows in ``POOL_CF_TYPES`` order (cash received in
            month t; ``balance`` = performing par at the end of month t), currency units.
        config: the deal.
        initial_balance: pool par at the cut-off, scalar or ``(S,)``; None = inferred from month 0
            (:func:`infer_initial_balance`).
        mode: "hard", "soft" or "straight_through" (see module docstring).
        tranche_balances: optional ``(N,)`` tensor of initial balances of all tranches (equity last)
            replacing the deal's; pass one with ``requires_grad`` for sensitivities to tranche sizes.
        temperature: gate temperature (ratio units); None = ``config.soft_temperature``.
        device: "cpu" / "cuda"; None = the device of ``pool_cf`` (CPU for arrays).
        chunk_size: scenarios per pass, to bound the working memory of very large runs
            (scenarios are independent, so results do not depend on it). None = one pass, the
            fastest on CPU for 10,000 scenarios (chunking measured no faster once the outputs are
            concatenated) and on a GPU.
        outputs: keys of the result to keep (None = all of ``RESULT_KEYS``). The per-month arrays
            dominate the run time of large runs (memory traffic), so callers that only need tranche
            analytics pass :data:`TRANCHE_OUTPUTS`.

    Returns:
        dict of float64 tensors; with ``Nd`` debt classes and ``N = Nd + 1`` tranches:

        - ``(S, T)``: ``cash_in`` (interest + principal proceeds incl. liquidation),
          ``interest_proceeds``, ``principal_proceeds`` (incl. liquidation), ``liquidation``,
          ``senior_fee``, ``sub_fee`` (paid), ``interest_cure`` (interest used to pay notes down on
          test failure), ``principal_cure``, ``interest_diversion`` (interest sent to buy collateral),
          ``reinvestment`` (cash spent on collateral, diversion included), ``bucket_balance`` (par of
          the reinvestment bucket at the end of the month), ``collateral_balance`` (pool + bucket
          par), ``acpa`` (OC numerator), ``equity_interest``, ``equity_principal``, ``equity``,
          ``event_of_default`` (1 where a non-deferrable class is owed unpaid interest).
        - ``(S, T, Nd)``: ``interest`` (paid, incl. carried shortfalls), ``principal`` (note principal
          repaid, capitalised interest excluded), ``deferred_interest_paid`` (capitalised interest
          repaid), ``deferred_interest`` (capitalised in the month), ``deferred_balance``
          (capitalised, outstanding), ``interest_shortfall`` (unpaid, carried; non-deferrable),
          ``balances`` (end of month, incl. PIK), ``oc_ratio``, ``ic_ratio`` (determination date,
          NaN for a class without that test), ``oc_pass``, ``ic_pass`` (1 pass / 0 fail; sigmoid
          weights in soft mode; 1 where no test or the IC test is not yet active).
        - ``(S, T, N)``: ``tranche_cashflows`` (all cash to each tranche, equity last),
          ``tranche_interest``, ``tranche_principal`` (principal + capitalised interest repaid;
          equity: interest / principal residuals), ``tranche_balance`` (equity: its notional).
        - ``initial_balances`` ``(N,)`` and ``pool_balance_0`` ``(S,)``.
    """
    if not isinstance(config, WaterfallConfig):
        raise ConfigError(f"config must be a WaterfallConfig, got {type(config).__name__}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    tau = config.soft_temperature if temperature is None else float(temperature)
    if not tau > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    cf, p0 = _validate_inputs(pool_cf, initial_balance, device)
    if outputs is None:
        outputs = RESULT_KEYS
    else:
        outputs = tuple(outputs)
        unknown = sorted(set(outputs) - set(RESULT_KEYS))
        if unknown:
            raise ConfigError(f"unknown waterfall output(s) {unknown}; available: {list(RESULT_KEYS)}")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ConfigError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    if tranche_balances is None:
        sizes = torch.tensor([t.balance for t in config.tranches], dtype=torch.float64, device=cf.device)
    else:
        sizes = torch.as_tensor(tranche_balances).to(dtype=torch.float64, device=cf.device)
        if sizes.shape != (len(config.tranches),):
            raise ConfigError(f"tranche_balances must have shape ({len(config.tranches)},), got {tuple(sizes.shape)}")
        with torch.no_grad():
            if not bool((torch.isfinite(sizes) & (sizes > 0)).all()):
                raise ConfigError(f"tranche_balances must be finite and > 0, got {sizes.detach().cpu().tolist()}")
    S = cf.shape[0]
    if chunk_size is None or S <= chunk_size:
        return _run(cf, p0, config, mode, sizes, tau, outputs)
    parts = [_run(cf[i:i + chunk_size], p0[i:i + chunk_size], config, mode, sizes, tau, outputs)
             for i in range(0, S, int(chunk_size))]
    return {k: (parts[0][k] if k == "initial_balances" else torch.cat([p[k] for p in parts], dim=0))
            for k in parts[0]}


def _run(cf: torch.Tensor, p0: torch.Tensor, config: WaterfallConfig, mode: str, sizes: torch.Tensor,
         tau: float, outputs: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The waterfall on validated inputs: ``cf`` (S, T, 7), ``p0`` (S,), ``sizes`` (N,).

    One month at a time (:func:`_waterfall_month`); each month's requested outputs are recorded as
    soon as the month is done (:func:`_record_month`).
    """
    deal = _make_deal(cf, p0, config, mode, sizes, tau)
    state = _initial_state(deal, sizes, p0)
    recorder = _make_recorder(deal, sizes, outputs)
    # (T, K, S): each month's flow of one type is a contiguous (S,) vector
    cf_tks = cf.permute(1, 2, 0).contiguous()
    for t in range(deal.T):
        month = _waterfall_month(deal, state, _PoolMonth(*cf_tks[t].unbind(dim=0)), t)
        _record_month(recorder, deal, state, month)
    out = _stacked_outputs(recorder, deal.inplace)
    out["initial_balances"] = sizes
    out["pool_balance_0"] = p0
    return {k: v for k, v in out.items() if k in outputs or k in ("initial_balances", "pool_balance_0")}


# ---- state objects ------------------------------------------------------------------------------------
# Why the statement order inside the phases below is kept exactly as it is: the results must be the same
# bits in every mode, and autograd adds up the gradients a tensor receives from several uses in an order
# set by when those uses were created: reordering two independent lines can change a gradient's last bit.


@dataclass(eq=False)
class _Deal:
    """Constants of one run: the deal's rates and triggers on the run's device.

    ``S`` scenarios, ``T`` months, ``Kd`` debt classes; rates are monthly (30/360) decimals.
    """

    config: WaterfallConfig
    mode: str
    gates: _Gates
    S: int
    T: int
    Kd: int
    device: torch.device
    rates: torch.Tensor  # (Kd,) monthly coupons
    deferrable: torch.Tensor  # (Kd,) bool
    pay_deferred: list[bool]  # per class: leftover interest repays its capitalised interest
    oc_trig: list[float | None]  # per class; None = no OC test
    ic_trig: list[float | None]  # per class; None = no IC test
    oc_has: torch.Tensor  # (Kd,) bool: the class has an OC test
    ic_has: torch.Tensor  # (Kd,) bool: the class has an IC test
    oc_trig_v: torch.Tensor  # (Kd,) OC triggers, 0 where no test (that column is never used)
    ic_trig_v: torch.Tensor  # (Kd,) IC triggers, 0 where no test
    sr_rate: float  # monthly senior fee on collateral par
    sub_rate: float  # monthly subordinated fee on collateral par
    reinv_coupon: float | None  # monthly coupon of reinvested par; None = the pool's realised yield
    price: float  # reinvestment price per unit of par
    discount: float  # OC value per unit of reinvested par: purchase price when bought below par
    div_trig: float | None  # interest diversion trigger; None = no diversion test
    tol: torch.Tensor  # (S,) "zero balance" tolerance, relative to the deal size
    zero: torch.Tensor  # (S,) zeros (never written in place, shared freely)
    # Without autograd (no input requires grad) the note balances are updated in place and each month's
    # outputs are copied into preallocated (T, S, ...) buffers while they are hot in cache; with autograd
    # the same arithmetic runs out of place and the months are stacked at the end. Both paths perform
    # the same floating-point operations, so their results are bitwise equal.
    inplace: bool


@dataclass(eq=False)
class _State:
    """Balances carried from one month to the next: ``(S, Kd)`` per class, ``(S,)`` per scenario."""

    N: torch.Tensor  # (S, Kd) note balances, capitalised (PIK) interest included
    deferred: torch.Tensor  # (S, Kd) capitalised interest outstanding
    carried: torch.Tensor  # (S, Kd) unpaid interest of non-deferrable classes, owed next month
    fee_sr_unpaid: torch.Tensor  # (S,) senior fee owed
    fee_sub_unpaid: torch.Tensor  # (S,) subordinated fee owed (this month's accrual included once added)
    bucket: torch.Tensor  # (S,) par of the reinvestment bucket
    bucket_pending: torch.Tensor  # (S,) expected recoveries of defaulted bucket par not yet received
    pool_pending: torch.Tensor  # (S,) expected recoveries of defaulted pool par not yet received
    pool_prev: torch.Tensor  # (S,) performing pool par at the start of the month


class _PoolMonth(NamedTuple):
    """One month of the original pool's flows, each ``(S,)`` in currency units (``POOL_CF_TYPES``)."""

    interest: torch.Tensor
    sched: torch.Tensor
    prepay: torch.Tensor
    recov: torch.Tensor
    defpar: torch.Tensor
    loss: torch.Tensor
    balance: torch.Tensor  # performing par at the end of the month


class _Rates(NamedTuple):
    """Pool-mirroring rates of one month, each ``(S,)``: fractions of par (or of pending recoveries)."""

    default: torch.Tensor
    prepay: torch.Tensor
    sched: torch.Tensor
    yield_: torch.Tensor  # interest per unit of performing par
    severity: torch.Tensor  # loss per unit of defaulted par
    recovery: torch.Tensor  # share of the pending expected recoveries received


@dataclass(eq=False)
class _Tests:
    """Determination-date results of one month (pre-distribution balances)."""

    fee_sr_due: torch.Tensor  # (S,) senior fee due, unpaid included
    ip_net: torch.Tensor  # (S,) interest proceeds net of the senior fee due (IC numerator)
    cum_bal: torch.Tensor  # (S, Kd) cumulative note balances (OC denominators)
    oc_ratio: torch.Tensor  # (S, Kd)
    ic_ratio: torch.Tensor  # (S, Kd)
    oc_g: torch.Tensor | None  # (S, Kd) fail weights, None = no class has the test
    oc_fail: list[torch.Tensor | None]  # per class: its (S,) fail weight, None = nothing to cure
    ic_g: torch.Tensor | None
    ic_fail: list[torch.Tensor | None]


@dataclass(eq=False)
class _Month:
    """One payment period: its timeline flags and its cash record, ``(S,)`` or ``(S, Kd)`` currency units.

    The fields after the flags are filled by the phases in month order.
    """

    t: int
    last: bool  # liquidation month
    in_rp: bool  # reinvestment period (never the liquidation month)
    # collections (:func:`_collections`)
    pool_bal: torch.Tensor = field(init=False)  # performing pool par at the end of the month
    ip: torch.Tensor = field(init=False)  # interest proceeds
    prp: torch.Tensor = field(init=False)  # principal proceeds, liquidation included
    liquidation: torch.Tensor = field(init=False)
    acpa: torch.Tensor = field(init=False)  # OC numerator
    basis: torch.Tensor = field(init=False)  # collateral par at the start of the month (fee basis)
    tests: _Tests = field(init=False)
    # interest priority
    deferred_start: torch.Tensor = field(init=False)  # capitalised interest at the start of the month
    paid_down: torch.Tensor = field(init=False)  # all paydowns of the month (capitalised + principal)
    fee_sr_paid: torch.Tensor = field(init=False)
    fee_sub_paid: torch.Tensor = field(init=False)
    int_paid: torch.Tensor = field(init=False)
    shortfall: torch.Tensor = field(init=False)  # note interest left unpaid by the interest priority
    interest_cure: torch.Tensor = field(init=False)
    to_principal: torch.Tensor = field(init=False)  # interest moved to the principal priority
    diversion: torch.Tensor = field(init=False)
    equity_interest: torch.Tensor = field(init=False)
    # principal priority and month end
    capitalised: torch.Tensor = field(init=False)
    principal_cure: torch.Tensor = field(init=False)
    reinvest: torch.Tensor = field(init=False)
    equity_principal: torch.Tensor = field(init=False)
    deferred_paid: torch.Tensor = field(init=False)
    principal_paid: torch.Tensor = field(init=False)


def _make_deal(cf: torch.Tensor, p0: torch.Tensor, config: WaterfallConfig, mode: str, sizes: torch.Tensor,
               tau: float) -> _Deal:
    """The run's constants from the deal (``sizes`` only decides the in-place path)."""
    dev = cf.device
    S, T, _ = cf.shape
    debt = config.debt_tranches
    oc_trig = [t.oc_trigger for t in debt]
    ic_trig = [t.ic_trigger for t in debt]
    f64, b = {"dtype": torch.float64, "device": dev}, {"dtype": torch.bool, "device": dev}
    price = config.reinvestment_price
    return _Deal(
        config=config, mode=mode, gates=_Gates(mode, tau), S=S, T=T, Kd=len(debt), device=dev,
        rates=torch.tensor([t.coupon * _ALPHA for t in debt], **f64),
        deferrable=torch.tensor([t.deferrable for t in debt], **b),
        pay_deferred=[t.deferrable and config.pay_deferred_from_interest for t in debt],
        oc_trig=oc_trig, ic_trig=ic_trig,
        # coverage tests of all classes at once: masks of the classes that have one and (Kd,) triggers
        # (0 where a class has no such test: its column is then never used)
        oc_has=torch.tensor([x is not None for x in oc_trig], **b),
        ic_has=torch.tensor([x is not None for x in ic_trig], **b),
        oc_trig_v=torch.tensor([0.0 if x is None else x for x in oc_trig], **f64),
        ic_trig_v=torch.tensor([0.0 if x is None else x for x in ic_trig], **f64),
        sr_rate=config.senior_fee_rate * _ALPHA, sub_rate=config.sub_fee * _ALPHA,
        reinv_coupon=None if config.reinvestment_coupon is None else config.reinvestment_coupon * _ALPHA,
        price=price, discount=min(price, 1.0), div_trig=config.interest_diversion_trigger,
        tol=1e-9 * p0, zero=torch.zeros(S, dtype=torch.float64, device=dev),
        inplace=not (cf.requires_grad or p0.requires_grad or sizes.requires_grad),
    )


def _initial_state(deal: _Deal, sizes: torch.Tensor, p0: torch.Tensor) -> _State:
    """Balances at the cut-off: notes at ``sizes`` (N,), nothing owed, an empty bucket, pool par ``p0``."""
    S, Kd, zero = deal.S, deal.Kd, deal.zero
    N = sizes[:Kd].unsqueeze(0).expand(S, Kd)
    if deal.inplace:
        N = N.clone()
    return _State(
        N=N,
        deferred=torch.zeros(S, Kd, dtype=torch.float64, device=deal.device),
        carried=torch.zeros(S, Kd, dtype=torch.float64, device=deal.device),
        fee_sr_unpaid=zero, fee_sub_unpaid=zero, bucket=zero, bucket_pending=zero, pool_pending=zero,
        pool_prev=p0,
    )


# ---- one month ----------------------------------------------------------------------------------------


def _waterfall_month(deal: _Deal, state: _State, pool: _PoolMonth, t: int) -> _Month:
    """Month t (WATERFALL.md timeline, steps 1-6): updates ``state``, returns the month's record."""
    last = deal.config.liquidate_at_horizon and t == deal.T - 1
    month = _Month(t=t, last=last, in_rp=t < deal.config.reinvestment_period and not last)
    _collections(deal, state, pool, month)
    month.tests = _determination(deal, state, month)
    month.deferred_start = state.deferred
    month.paid_down = torch.zeros(deal.S, deal.Kd, dtype=torch.float64, device=deal.device)
    avail = _interest_priority(deal, state, month)
    _sub_fee_and_diversion(deal, state, month, avail)
    _principal_priority(deal, state, month)
    _close_month(state, month)
    return month


def _mirroring_rates(deal: _Deal, state: _State, pool: _PoolMonth) -> _Rates:
    """The original pool's realised rates of the month, which the reinvestment bucket mirrors.

    Also moves the pool's pending expected recoveries on (``state.pool_pending``).
    """
    zero, pool_prev = deal.zero, state.pool_prev
    alive = pool_prev > deal.tol
    base = torch.where(alive, pool_prev, torch.ones_like(pool_prev))
    d_rate = torch.where(alive, pool.defpar / base, zero)
    p_rate = torch.where(alive, pool.prepay / base, zero)
    s_rate = torch.where(alive, pool.sched / base, torch.ones_like(base))  # pool gone: bucket matures
    # the three outflows cannot take more than all the par
    total = torch.clamp(d_rate + p_rate + s_rate, min=1.0)
    d_rate, p_rate, s_rate = d_rate / total, p_rate / total, s_rate / total
    y_rate = torch.where(alive, pool.interest / base, zero)
    has_def = pool.defpar > 0
    severity = torch.where(has_def, pool.loss / torch.where(has_def, pool.defpar, torch.ones_like(pool.defpar)),
                           zero)
    severity = torch.clamp(severity, 0.0, 1.0)
    # defaults of the month join the pending recoveries before this month's recovery is collected
    pending_pre = torch.clamp(state.pool_pending + pool.defpar - pool.loss, min=0.0)
    has_pend = pending_pre > 0
    rec_frac = torch.where(has_pend, pool.recov / torch.where(has_pend, pending_pre, torch.ones_like(pending_pre)),
                           zero)
    rec_frac = torch.clamp(rec_frac, 0.0, 1.0)
    state.pool_pending = torch.clamp(pending_pre - pool.recov, min=0.0)
    return _Rates(d_rate, p_rate, s_rate, y_rate, severity, rec_frac)


def _collections(deal: _Deal, state: _State, pool: _PoolMonth, month: _Month) -> None:
    """Step 1: interest and principal proceeds of the pool and the bucket; the bucket's defaults,
    prepayments, amortisation and recoveries; ACPA; the collateral sale of the liquidation month."""
    rates = _mirroring_rates(deal, state, pool)
    bucket_start = state.bucket
    bucket = state.bucket
    b_int = bucket * (rates.yield_ if deal.reinv_coupon is None else deal.reinv_coupon)
    b_def, b_pre, b_sch = bucket * rates.default, bucket * rates.prepay, bucket * rates.sched
    b_pending_pre = state.bucket_pending + b_def * (1.0 - rates.severity)
    b_rec = rates.recovery * b_pending_pre
    state.bucket_pending = b_pending_pre - b_rec
    state.bucket = bucket - b_def - b_pre - b_sch

    month.pool_bal = pool.balance
    month.ip = pool.interest + b_int
    prp_coll = pool.sched + pool.prepay + pool.recov + b_sch + b_pre + b_rec
    # OC numerator (WATERFALL.md 2.4): collateral bought below par counts at its purchase price
    month.acpa = (pool.balance + deal.discount * state.bucket + state.pool_pending + state.bucket_pending
                  + prp_coll)
    if month.last:
        _liquidate(deal, state, month, prp_coll)
    else:
        month.liquidation = deal.zero
    month.prp = prp_coll + month.liquidation
    month.basis = state.pool_prev + bucket_start  # collateral par at the start of the month


def _liquidate(deal: _Deal, state: _State, month: _Month, prp_coll: torch.Tensor) -> None:
    """Step 6, liquidation month: performing par is sold at ``liquidation_price``, defaulted par
    awaiting recovery is realised at its expected recovery; the cash is principal proceeds."""
    month.liquidation = (deal.config.liquidation_price * (month.pool_bal + state.bucket) + state.pool_pending
                         + state.bucket_pending)
    state.bucket, state.bucket_pending, state.pool_pending = deal.zero, deal.zero, deal.zero
    # the collateral is sold: the coverage tests see the cash it fetched, not its par
    month.acpa = prp_coll + month.liquidation


def _determination(deal: _Deal, state: _State, month: _Month) -> _Tests:
    """Step 2: senior fee due, OC / IC ratios of every class and their fail weights."""
    S, Kd = deal.S, deal.Kd
    fee_sr_due = deal.sr_rate * month.basis + state.fee_sr_unpaid
    ip_net = torch.clamp(month.ip - fee_sr_due, min=0.0)
    cum_bal = torch.cumsum(state.N, dim=1)  # a new tensor: in-place paydowns later leave it as it is
    cum_due = torch.cumsum(state.N * deal.rates, dim=1)
    oc_ratio = _ratio(month.acpa.unsqueeze(1).expand(S, Kd), cum_bal)
    ic_ratio = _ratio(ip_net.unsqueeze(1).expand(S, Kd), cum_due)
    oc_g, oc_fail = _class_gates(deal, deal.oc_trig, deal.oc_trig_v, oc_ratio)
    if month.t < deal.config.ic_first_period:  # IC tests not yet active: ratios reported, every class passes
        ic_g, ic_fail = None, [None] * Kd
    else:
        ic_g, ic_fail = _class_gates(deal, deal.ic_trig, deal.ic_trig_v, ic_ratio,
                                     turbo=deal.config.ic_cure == "turbo")
    return _Tests(fee_sr_due=fee_sr_due, ip_net=ip_net, cum_bal=cum_bal, oc_ratio=oc_ratio, ic_ratio=ic_ratio,
                  oc_g=oc_g, oc_fail=oc_fail, ic_g=ic_g, ic_fail=ic_fail)


def _class_gates(deal: _Deal, trig: list[float | None], trig_v: torch.Tensor, ratio: torch.Tensor,
                 turbo: bool = False) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """Fail weights ``(S, Kd)`` of one kind of test and, per class, its column or None when the class
    has no test or, in the exact modes, no scenario fails it (the cure is then zero, and so is the
    straight-through gradient ``d soft x cure``; turbo diversion is not zero, keep it)."""
    if all(x is None for x in trig):
        return None, [None] * deal.Kd
    g = deal.gates.fail(trig_v - ratio)
    if deal.mode == "soft" or (turbo and deal.mode == "straight_through"):
        any_fail = [True] * deal.Kd
    else:
        any_fail = (g.detach() > 0.5).any(dim=0).tolist()
    return g, [g[:, k] if trig[k] is not None and any_fail[k] else None for k in range(deal.Kd)]


def _cure_need(deal: _Deal, state: _State, tests: _Tests, k: int, acpa_now: torch.Tensor,
               principal_funded: bool, avail: torch.Tensor) -> torch.Tensor | None:
    """Paydown amount (S,) that cures class k's failing tests on current balances; None = none fails.

    OC, cured from interest: interest cash is not in ACPA, so paying ``x`` lowers only the
    denominator: ``ACPA / (L_k - x) = theta`` gives ``x = L_k - ACPA / theta``. Cured from principal:
    the cash paid out was in ACPA, so both sides drop: ``(ACPA - x) / (L_k - x) = theta`` gives
    ``x = (theta L_k - ACPA) / (theta - 1)``. IC: the pro forma walk-down that brings interest due
    to ``ip_net / trigger`` (:func:`_ic_paydown`), or with "turbo" all the interest left.
    """
    need = None
    oc_fail, ic_fail = tests.oc_fail[k], tests.ic_fail[k]
    if oc_fail is not None:
        theta = deal.oc_trig[k]
        lk = _rowsum(state.N[:, : k + 1])
        if principal_funded:  # the cash paid out also leaves the numerator
            x = torch.clamp((theta * lk - acpa_now) / max(theta - 1.0, 1e-12), min=0.0)
        else:
            x = torch.clamp(lk - acpa_now / theta, min=0.0)
        need = oc_fail * x
    if ic_fail is not None:
        if deal.config.ic_cure == "turbo" and not principal_funded:
            x = avail
        else:
            excess = _rowsum(state.N[:, : k + 1] * deal.rates[: k + 1]) - tests.ip_net / deal.ic_trig[k]
            x = _ic_paydown(state.N[:, : k + 1], deal.rates[: k + 1], torch.clamp(excess, min=0.0))
        x = ic_fail * x
        need = x if need is None else torch.maximum(need, x)
    return need


def _paydown(deal: _Deal, state: _State, month: _Month, x: torch.Tensor, first: int = 0) -> None:
    """Pay classes ``first .. first+m-1`` down by ``x`` (S, m); split into capitalised interest and
    principal at month end (:func:`_close_month`)."""
    if deal.inplace:
        state.N[:, first:first + x.shape[1]] -= x
        month.paid_down[:, first:first + x.shape[1]] += x
        return
    if x.shape[1] < deal.Kd:
        x = F.pad(x, (first, deal.Kd - x.shape[1] - first))
    state.N = state.N - x
    month.paid_down = month.paid_down + x


def _interest_priority(deal: _Deal, state: _State, month: _Month) -> torch.Tensor:
    """Step 3, up to the subordinated fee: senior fee, then per debt class its interest, its coverage
    cures and (deferrable class) repayment of its capitalised interest. Returns the interest left (S,)."""
    tests = month.tests
    avail = month.ip
    month.fee_sr_paid = torch.minimum(avail, tests.fee_sr_due)
    avail = avail - month.fee_sr_paid
    state.fee_sr_unpaid = tests.fee_sr_due - month.fee_sr_paid
    int_due = state.N * deal.rates + state.carried
    int_paid_cols, short_cols = [], []
    month.interest_cure = deal.zero
    for k in range(deal.Kd):
        paid = torch.minimum(avail, int_due[:, k])
        avail = avail - paid
        int_paid_cols.append(paid)
        short_cols.append(int_due[:, k] - paid)
        need = _cure_need(deal, state, tests, k, month.acpa, False, avail)
        if need is not None:  # cure paid sequentially to the classes senior to and including k
            cure = _pay_sequential(torch.minimum(need, avail), state.N[:, : k + 1])
            used = _rowsum(cure)
            avail = avail - used
            month.interest_cure = month.interest_cure + used
            _paydown(deal, state, month, cure)
        if deal.pay_deferred[k]:
            rep = torch.minimum(avail, torch.clamp(month.deferred_start[:, k] - month.paid_down[:, k], min=0.0))
            avail = avail - rep
            _paydown(deal, state, month, rep.unsqueeze(1), first=k)
    month.int_paid = torch.stack(int_paid_cols, dim=1)
    month.shortfall = torch.stack(short_cols, dim=1)
    # liquidation period: the notes are repaid (or written off) now, so interest left after note
    # interest goes to their principal before any subordinated fee or equity distribution
    month.to_principal = avail if month.last else deal.zero
    return avail - month.to_principal


def _pay_sub_fee(state: _State, month: _Month, pot: torch.Tensor) -> torch.Tensor:
    """Pay the subordinated fee owed from ``pot`` (S,); returns what is left of the pot."""
    paid = torch.minimum(pot, state.fee_sub_unpaid)
    state.fee_sub_unpaid = state.fee_sub_unpaid - paid
    month.fee_sub_paid = month.fee_sub_paid + paid
    return pot - paid


def _sub_fee_and_diversion(deal: _Deal, state: _State, month: _Month, avail: torch.Tensor) -> None:
    """Step 3, the rest: interest diversion test (reinvestment period) and subordinated fee, in the
    deal's order; the residual is equity interest."""
    month.fee_sub_paid = deal.zero
    state.fee_sub_unpaid = state.fee_sub_unpaid + deal.sub_rate * month.basis
    if deal.config.sub_fee_before_diversion:
        avail = _pay_sub_fee(state, month, avail)
    month.diversion = deal.zero
    if month.in_rp and deal.div_trig is not None:
        l_all = _rowsum(state.N)
        g = deal.gates.fail(deal.div_trig - _ratio(month.acpa, month.tests.cum_bal[:, -1]))
        # cash at par counts in the numerator: buying x of collateral lifts ACPA by x
        month.diversion = torch.minimum(deal.config.interest_diversion_share * avail,
                                        g * torch.clamp(deal.div_trig * l_all - month.acpa, min=0.0))
        avail = avail - month.diversion
    if not deal.config.sub_fee_before_diversion:
        avail = _pay_sub_fee(state, month, avail)
    month.equity_interest = avail


def _principal_priority(deal: _Deal, state: _State, month: _Month) -> None:
    """Step 4: unpaid senior fee, interest catch-up and PIK (:func:`_interest_catch_up`), then
    reinvestment (reinvestment period) or sequential paydown, unpaid subordinated fee, equity."""
    pav = month.prp + month.to_principal
    extra_fee = torch.minimum(pav, state.fee_sr_unpaid)
    pav = pav - extra_fee
    state.fee_sr_unpaid = state.fee_sr_unpaid - extra_fee
    month.fee_sr_paid = month.fee_sr_paid + extra_fee
    pav = _interest_catch_up(deal, state, month, pav)
    month.principal_cure = deal.zero
    if month.in_rp:
        pav = _cures_and_reinvestment(deal, state, month, pav)
    else:
        seq = _pay_sequential(pav, state.N)
        pav = pav - _rowsum(seq)
        _paydown(deal, state, month, seq)
        month.reinvest = month.diversion  # zero outside the reinvestment period
    pav = _pay_sub_fee(state, month, pav)
    month.equity_principal = pav


def _interest_catch_up(deal: _Deal, state: _State, month: _Month, pav: torch.Tensor) -> torch.Tensor:
    """Step 4-5: principal pays interest still unpaid of non-deferrable classes and of a deferrable class
    that is the most senior outstanding; deferrable classes capitalise the rest (PIK), the others carry
    it to next month. Returns the principal left (S,)."""
    senior_out = torch.cumsum(state.N, dim=1) - state.N
    eligible = (~deal.deferrable).unsqueeze(0) | (senior_out <= deal.tol.unsqueeze(1))
    catch_up = _pay_sequential(pav, month.shortfall * eligible)
    pav = pav - _rowsum(catch_up)
    month.int_paid = month.int_paid + catch_up
    shortfall = month.shortfall - catch_up
    month.capitalised = shortfall * deal.deferrable
    state.N = state.N + month.capitalised  # capitalised interest accrues at the coupon, counts in OC
    state.carried = shortfall * (~deal.deferrable)
    return pav


def _cures_and_reinvestment(deal: _Deal, state: _State, month: _Month, pav: torch.Tensor) -> torch.Tensor:
    """Step 4, reinvestment period: cure amounts still owed, paid from principal, then everything left
    (and the diverted interest) buys collateral at ``reinvestment_price``. Returns the principal left (0)."""
    # ACPA after the interest priority: diverted interest will be collateral, principal spent so far is gone
    acpa_now = month.acpa + month.diversion - (month.prp - pav)
    for k in range(deal.Kd):
        need = _cure_need(deal, state, month.tests, k, acpa_now, True, pav)
        if need is None:
            continue
        cure = _pay_sequential(torch.minimum(need, pav), state.N[:, : k + 1])
        used = _rowsum(cure)
        pav = pav - used
        acpa_now = acpa_now - used
        month.principal_cure = month.principal_cure + used
        _paydown(deal, state, month, cure)
    month.reinvest = pav + month.diversion
    state.bucket = state.bucket + month.reinvest / deal.price
    return deal.zero


def _close_month(state: _State, month: _Month) -> None:
    """Month end: a month's paydowns repay capitalised interest (this month's included) before note
    principal; cash and balances do not depend on this split."""
    state.pool_prev = month.pool_bal
    month.deferred_paid = torch.minimum(month.paid_down, month.deferred_start + month.capitalised)
    month.principal_paid = month.paid_down - month.deferred_paid
    state.deferred = month.deferred_start + month.capitalised - month.deferred_paid


# ---- outputs ------------------------------------------------------------------------------------------

#: outputs that are a month-record field as it is: key -> :class:`_Month` field
_MONTH_FIELDS: dict[str, str] = {
    "interest_proceeds": "ip", "principal_proceeds": "prp", "liquidation": "liquidation",
    "senior_fee": "fee_sr_paid", "sub_fee": "fee_sub_paid", "interest": "int_paid",
    "principal": "principal_paid", "deferred_interest_paid": "deferred_paid",
    "deferred_interest": "capitalised", "interest_cure": "interest_cure", "principal_cure": "principal_cure",
    "interest_diversion": "diversion", "reinvestment": "reinvest", "acpa": "acpa",
    "equity_interest": "equity_interest", "equity_principal": "equity_principal",
}
#: outputs that are an end-of-month balance as it is: key -> :class:`_State` field
_STATE_FIELDS: dict[str, str] = {
    "deferred_balance": "deferred", "interest_shortfall": "carried", "balances": "N", "bucket_balance": "bucket",
}


@dataclass(eq=False)
class _Recorder:
    """Per-month records of the requested keys: ``(T, S, ...)`` buffers (in place) or lists of months."""

    keys: list[str]
    eq_notional: torch.Tensor  # (S, 1) equity notional, its column of ``tranche_balance``
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    months: dict[str, list[torch.Tensor]] = field(default_factory=dict)


def _make_recorder(deal: _Deal, sizes: torch.Tensor, outputs: tuple[str, ...]) -> _Recorder:
    """A recorder of the per-month keys of ``outputs`` (RESULT_KEYS order)."""
    keys = [k for k in RESULT_KEYS if k in outputs and k not in ("initial_balances", "pool_balance_0")]
    return _Recorder(keys=keys, eq_notional=sizes[deal.Kd].expand(deal.S, 1), months={k: [] for k in keys})


def _month_value(key: str, deal: _Deal, state: _State, month: _Month, eq_notional: torch.Tensor
                 ) -> torch.Tensor:
    """Output ``key`` of the month just closed: ``(S,)``, ``(S, Kd)`` or ``(S, N)``."""
    if key in _MONTH_FIELDS:
        return getattr(month, _MONTH_FIELDS[key])
    if key in _STATE_FIELDS:
        return getattr(state, _STATE_FIELDS[key])
    tests = month.tests
    if key == "cash_in":
        return month.ip + month.prp
    if key in ("oc_ratio", "ic_ratio"):
        has, ratio = (deal.oc_has, tests.oc_ratio) if key == "oc_ratio" else (deal.ic_has, tests.ic_ratio)
        return torch.where(has, ratio, float("nan"))
    if key in ("oc_pass", "ic_pass"):
        has, g = (deal.oc_has, tests.oc_g) if key == "oc_pass" else (deal.ic_has, tests.ic_g)
        if g is None:  # 1 - fail for classes with the test, 1 for the others
            return torch.ones(deal.S, deal.Kd, dtype=torch.float64, device=deal.device)
        return torch.where(has, 1.0 - g, 1.0)
    if key == "collateral_balance":
        return (deal.zero if month.last else month.pool_bal) + state.bucket
    if key == "event_of_default":
        return (_rowsum(state.carried) > deal.tol).to(torch.float64)
    if key == "equity":
        return month.equity_interest + month.equity_principal
    if key == "tranche_cashflows":
        return torch.cat([month.int_paid + month.principal_paid + month.deferred_paid,
                          (month.equity_interest + month.equity_principal).unsqueeze(1)], dim=1)
    if key == "tranche_interest":
        return torch.cat([month.int_paid, month.equity_interest.unsqueeze(1)], dim=1)
    if key == "tranche_principal":
        return torch.cat([month.principal_paid + month.deferred_paid, month.equity_principal.unsqueeze(1)],
                         dim=1)
    if key == "tranche_balance":
        return torch.cat([state.N, eq_notional], dim=1)
    raise KeyError(key)


def _record_month(recorder: _Recorder, deal: _Deal, state: _State, month: _Month) -> None:
    """Record the requested outputs of the month just closed (copied into the buffers when in place)."""
    for key in recorder.keys:
        value = _month_value(key, deal, state, month, recorder.eq_notional)
        if not deal.inplace:
            recorder.months[key].append(value)
            continue
        if month.t == 0:
            recorder.buffers[key] = torch.empty((deal.T, *value.shape), dtype=value.dtype, device=deal.device)
        recorder.buffers[key][month.t].copy_(value)


def _stacked_outputs(recorder: _Recorder, inplace: bool) -> dict[str, torch.Tensor]:
    """The recorded months as ``(S, T, ...)`` tensors."""
    # (T, S, ...) -> (S, T, ...) views are free; stacking along a new leading axis is a contiguous copy
    if inplace:
        return {k: v.movedim(0, 1) for k, v in recorder.buffers.items()}
    return {k: torch.stack(v, dim=0).movedim(0, 1) for k, v in recorder.months.items()}


def cash_conservation_error(result: dict[str, torch.Tensor]) -> torch.Tensor:
    """``cash_in - (fees + interest + principal + capitalised repaid + reinvestment + equity)``, (S, T)."""
    out = (result["senior_fee"] + result["sub_fee"] + column_sum(result["interest"], 2)
           + column_sum(result["principal"], 2) + column_sum(result["deferred_interest_paid"], 2)
           + result["reinvestment"] + result["equity"])
    return result["cash_in"] - out
