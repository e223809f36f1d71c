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

Real-deal features (issue 15), each a deal setting that is off by default:

- Payment dates every ``months_per_period`` months (quarterly, semi-annual): collections stay monthly
  and wait in the collection account (``collection_account`` output; the principal cash held counts in
  ACPA at par); fees, admin expenses and note interest accrue monthly and are paid on the date. The last
  month is always a payment date. ``cash_in`` is the cash released on payment dates.
- Floating classes (``margin``): coupon ``max(max(base_t, floor) + margin, 0)`` accrued ACT/360 per
  month from the ``base_rate`` path (``simulate`` passes each scenario's policy rate); fixed classes
  accrue 30/360.
- Pari-passu groups: interest, cures, catch-up and principal are paid pro rata inside a group; the
  group is tested as one (every member reports the group's ratios) and walks the IC paydown as one
  class at its balance-weighted rate.
- Admin expenses (rate on par + fixed amount) are paid first, up to ``admin_cap`` a year; the excess
  after the subordinated fee (interest and principal priority alike).
- Incentive fee: ``incentive_fee`` x the equity distribution beyond what brings the equity to its
  hurdle IRR (a hurdle account; continuous in the cash, no gate).
- Defaulted interest: unpaid interest of non-deferrable classes earns the coupon.
- Events of default (effective from the next payment date, never cured): the senior group's OC below
  ``eod_oc_trigger`` (a sigmoid gate in the soft modes), or interest of a non-deferrable or senior-most
  class still unpaid after the principal catch-up (0/1 in every mode). With ``acceleration`` the
  accelerated priority (one pot, strictly sequential) replaces the normal one; in the soft modes the two
  allocations are mixed by the event weight, which conserves cash because each one does.

- Optional call (from ``non_call_period``, when selling out leaves the equity ``call_nav_threshold`` x
  its notional) and clean-up call (par below ``clean_up_call``): the month runs as a liquidation month
  too and the two are mixed by the call weight (0/1 hard, sigmoid soft); later collections are the
  buyer's (scaled by the share not called).
- Market prices: with a high-yield spread path (``hy_spread``) and ``spread_duration`` the sale price
  (horizon, call) and the reinvestment price move by ``1 - D (hy_t - hy_0)``; reinvested par bought
  below par is carried at cost in the OC numerator (discount obligations).
- CCC excess: with ``ccc_limit`` and a CCC par path (``ccc_par``) the excess counts at
  ``ccc_market_value``.
- Refinancing (``refinancing_saving``, from ``non_call_period``): a floating class's margin resets to its
  market margin (issue margin x ``hy_t / hy_0``) when that is far enough below the margin in force.

- Interest reserve account (``interest_reserve``): tops the interest proceeds up to the senior expenses
  and non-deferrable interest due on each payment date; the rest is released to principal proceeds.

- Reinvestment criteria (``min_was``, ``max_warf``, ``max_wal`` with an optional step-down): collateral
  quality tests on the collateral's aggregate metrics (the bucket mirrors the pool); a purchase must leave a
  test satisfied or, failing before, maintained or improved; principal proceeds the tests keep from buying
  pay the notes in order (``reinvestment_blocked``; the decision is written above :func:`wal_limit`).

Not modelled: hedges, an interest-smoothing account (collections are monthly) and refinancing costs.

Code layout: the inputs are checked in :mod:`creditsim.deal.inputs`, the allocation primitives (paying
a pot in priority order or pro rata, the IC walk-down, ratios, gates) live in
:mod:`creditsim.deal.allocation`; here :func:`_waterfall_month` runs one month as the timeline's phases, module-level functions
(:func:`_collections` with :func:`_mirroring_rates` and :func:`_liquidate`, :func:`_determination`,
:func:`_interest_priority`, :func:`_sub_fee_and_diversion`, :func:`_principal_priority`,
:func:`_close_month`) that read the run's constants (:class:`_Deal`), update the balances carried
between months (:class:`_State`) and fill the month's record (:class:`_Month`), from which
:func:`_record_month` takes the requested outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import math

import numpy as np
import torch
import torch.nn.functional as F

from creditsim.deal.allocation import (Gates, GroupLayout, coverage_ratio, group_layout, ic_paydown, pay_in_order,
                                       pay_pro_rata, rowsum)
from creditsim.deal.config import MODES, WaterfallConfig
from creditsim.deal.inputs import (MAX_PAR, act360_fractions, base_rate_path, criteria_paths, infer_initial_balance,
                                   scenario_path, validate_pool)
from creditsim.errors import ConfigError
from creditsim.fixed_order import column_sum
from creditsim.states import POOL_CF_TYPES

__all__ = ["MODES", "run_waterfall", "cash_conservation_error", "infer_initial_balance", "RESULT_KEYS",
           "TRANCHE_OUTPUTS", "CRITERIA_OUTPUTS", "criteria_paths", "wal_limit"]

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
    "admin_expenses", "incentive_fee", "eod", "accelerated", "collection_account", "called", "note_margin",
    "note_rate", "interest_reserve", "reinvestment_blocked", "was", "warf", "wal",
)

#: outputs of the reinvestment criteria (constant 0 / NaN for a deal without them)
CRITERIA_OUTPUTS: tuple[str, ...] = ("reinvestment_blocked", "was", "warf", "wal")

#: the outputs tranche analytics and simulation results need (``outputs=TRANCHE_OUTPUTS`` saves memory)
TRANCHE_OUTPUTS: tuple[str, ...] = (
    "cash_in", "principal", "balances", "equity", "tranche_cashflows", "tranche_interest",
    "tranche_principal", "tranche_balance", "note_rate",
)


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
    base_rate: float | np.ndarray | torch.Tensor | None = None,
    start_month: Any = None,
    hy_spread: np.ndarray | torch.Tensor | None = None,
    ccc_par: np.ndarray | torch.Tensor | None = None,
    pool_spread: np.ndarray | torch.Tensor | None = None,
    pool_warf: np.ndarray | torch.Tensor | None = None,
    pool_wal: np.ndarray | torch.Tensor | None = None,
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
        base_rate: annual base rate (decimal) of the floating classes: scalar, ``(T,)`` or ``(S, T)``
            (each scenario's path, e.g. its policy rate); None = the deal's flat ``base_rate``.
            Ignored by an all-fixed deal.
        start_month: calendar month of month 0 ("YYYY-MM"), for the ACT/360 accrual of floating
            classes (days of each month / 360); None = 365/12 days a month.
        hy_spread: ``(S, T)`` or ``(T,)`` high-yield spread path (annual decimal) that moves the
            liquidation and call price with the deal's ``spread_duration``; None = flat price.
        ccc_par: ``(S, T)`` or ``(T,)`` CCC-rated par of the performing pool at the end of each month
            (currency units), for the CCC excess haircut of the OC numerator; None = no haircut.
        pool_spread: ``(S, T)`` or ``(T,)`` weighted-average spread of the performing pool (annual decimal)
            for the deal's ``min_was`` test; None = the pool's realised yield of the month (12 x interest /
            opening par) less the base rate of a floating deal. Ignored without ``min_was``.
        pool_warf: ``(S, T)`` or ``(T,)`` weighted-average rating factor of the performing pool for the
            deal's ``max_warf`` test; None = no WARF test (an unrated pool).
        pool_wal: ``(S, T)`` or ``(T,)`` weighted-average life of the performing pool at the end of each
            month (years) for the deal's ``max_wal`` test; None = the remaining scheduled principal of
            ``pool_cf`` (:func:`~creditsim.deal.inputs.remaining_wal`, the horizon's balance paid in the last
            month).

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
        - real-deal features, ``(S, T)``: ``admin_expenses``, ``incentive_fee`` (paid),
          ``collection_account`` (collections held for the next payment date), ``eod`` (an event of
          default has occurred), ``accelerated`` and ``called`` (weight of the accelerated priority and
          of the call in the month); ``(S, T, Nd)``: ``note_margin`` (margin in force, 0 for fixed).
        - reinvestment criteria, ``(S, T)``: ``reinvestment_blocked`` (cash of the payment date the
          WAS / WARF / WAL tests kept from buying collateral: it paid the notes), ``was``, ``warf``, ``wal``
          (the collateral's metrics before the month's purchase; NaN where the deal has no such test).
    """
    if not isinstance(config, WaterfallConfig):
        raise ConfigError(f"config must be a WaterfallConfig, got {type(config).__name__}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    tau = config.soft_temperature if temperature is None else float(temperature)
    if not tau > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    cf, p0 = validate_pool(pool_cf, initial_balance, device)
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
    S, T = cf.shape[0], cf.shape[1]
    base = base_rate_path(config, base_rate, S, T, cf.device)
    act360 = act360_fractions(start_month, T, cf.device) if base is not None else None
    hy = None if hy_spread is None else scenario_path("hy_spread", hy_spread, S, T, cf.device, 0.0, 1.0,
                                                        "annual decimals (0.035 for 350 bp)")
    ccc = None if ccc_par is None else scenario_path("ccc_par", ccc_par, S, T, cf.device, 0.0, MAX_PAR,
                                                       "currency units >= 0")
    paths = criteria_paths(config, cf, S, T, pool_spread, pool_warf, pool_wal)

    def rows(x: torch.Tensor | None, i: int) -> torch.Tensor | None:
        return None if x is None else x[i:i + int(chunk_size)]

    if chunk_size is None or S <= chunk_size:
        return _run(cf, p0, config, mode, sizes, tau, outputs, base, act360, hy, ccc, paths)
    parts = [_run(cf[i:i + chunk_size], p0[i:i + chunk_size], config, mode, sizes, tau, outputs,
                  rows(base, i), act360, rows(hy, i), rows(ccc, i), {k: rows(x, i) for k, x in paths.items()})
             for i in range(0, S, int(chunk_size))]
    return {k: (parts[0][k] if k == "initial_balances" else torch.cat([p[k] for p in parts], dim=0))
            for k in parts[0]}


def _run(cf: torch.Tensor, p0: torch.Tensor, config: WaterfallConfig, mode: str, sizes: torch.Tensor,
         tau: float, outputs: tuple[str, ...], base: torch.Tensor | None = None,
         act360: torch.Tensor | None = None, hy: torch.Tensor | None = None,
         ccc: torch.Tensor | None = None, paths: dict[str, torch.Tensor | None] | None = None
         ) -> dict[str, torch.Tensor]:
    """The waterfall on validated inputs: ``cf`` (S, T, 7), ``p0`` (S,), ``sizes`` (N,); ``paths`` the
    reinvestment criteria's (S, T) pool paths (:func:`criteria_paths`).

    One month at a time (:func:`_waterfall_month`); each month's requested outputs are recorded as
    soon as the month is done (:func:`_record_month`).
    """
    deal = _make_deal(cf, p0, config, mode, sizes, tau, base, act360, hy, ccc, paths or {})
    deal.record_criteria = any(key in outputs for key in CRITERIA_OUTPUTS)
    if deal.price_path and deal.inplace:  # the same elementwise arithmetic as month by month, in one pass
        deal.price_moves = _price_move(deal, slice(None))
    state = _initial_state(deal, sizes, p0)
    recorder = _make_recorder(deal, sizes, outputs)
    for t in range(deal.T):
        # (K, S): each flow of the month a contiguous (S,) vector; transposed month by month, not the whole
        # (S, T, K) array at once (a fresh buffer of the pool's size, measured 60 % slower for 10,000 x 120)
        month = _waterfall_month(deal, state, _PoolMonth(*cf[:, t].t().contiguous().unbind(dim=0)), t)
        _record_month(recorder, deal, state, month)
    out = _stacked_outputs(recorder, deal.inplace)
    if not deal.criteria:  # no test: constant outputs, made once instead of recorded month by month
        for key in CRITERIA_OUTPUTS:
            if key in outputs:
                fill = 0.0 if key == "reinvestment_blocked" else float("nan")
                out[key] = torch.full((deal.S, deal.T), fill, dtype=torch.float64, device=deal.device)
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
    gates: Gates
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
    # pari-passu groups: (start, stop) class ranges; ``grouped`` False when every group is one class (the
    # single-class code paths then run, bit for bit those of a deal without the feature)
    groups: list[tuple[int, int]] = field(default_factory=list)
    grouped: bool = False
    layout: GroupLayout | None = None  # the groups arranged for the allocation primitives
    group_end: torch.Tensor | None = None  # (Kd,) long: last class of each class's group
    group_start: torch.Tensor | None = None  # (Kd,) long: first class of each class's group
    # floating classes: coupons of month t are ``max(base_t, floor) + margin`` accrued ACT/360
    floating: torch.Tensor | None = None  # (Kd,) bool, None = every class fixed
    margins: torch.Tensor | None = None  # (Kd,) annual
    floors: torch.Tensor | None = None  # (Kd,) annual, -inf = no floor
    base: torch.Tensor | None = None  # (S, T) annual base rate path
    act360: torch.Tensor | None = None  # (T,) days of month t / 360
    period: int = 1  # months per payment period
    admin_rate: float = 0.0  # monthly admin expenses per unit of collateral par
    admin_fixed: float = 0.0  # monthly fixed admin expenses
    admin_cap: float | None = None  # monthly cap on admin expenses paid senior
    incentive: float = 0.0  # incentive fee share
    hurdle_growth: float = 1.0  # monthly growth factor of the equity hurdle account
    eod_trig: float | None = None  # event-of-default OC level of the senior group
    track_eod: bool = False  # events of default are tracked (an EoD trigger or acceleration is set)
    accelerate: bool = False
    track_call: bool = False  # an optional or clean-up call is possible
    call_from: int | None = None  # first month of the optional call
    call_nav: float | None = 1.0  # equity NAV / notional that triggers the optional call; None = no call
    clean_up: float | None = None  # clean-up call level, fraction of the cut-off par
    eq_notional: torch.Tensor | None = None  # () equity notional (may carry a gradient)
    p0: torch.Tensor | None = None  # (S,) pool par at the cut-off
    hy: torch.Tensor | None = None  # (S, T) high-yield spread path (liquidation / call price)
    ccc: torch.Tensor | None = None  # (S, T) CCC par of the pool (OC haircut)
    price_path: bool = False  # sale and purchase prices move with the spread path (bucket carried at cost)
    discount_below: float = 1.0  # purchases below this price are discount obligations (OC at cost)
    period_months: list[int] = field(default_factory=list)  # per month: months in the period it closes
    refi_saving: float | None = None  # refinancing threshold, fraction of the current margin
    # reinvestment criteria (:func:`_criteria_metrics`, :func:`_criteria_cap`): on when the deal sets a limit
    criteria: bool = False
    # the collateral metrics are also outputs: False when none of them is requested, so that after the
    # reinvestment period (where no test caps a purchase) they need not be computed
    record_criteria: bool = True
    # (S, T) loan price factors of every month (:func:`_price_move`), tabulated once for a run without autograd
    price_moves: torch.Tensor | None = None
    pool_spread: torch.Tensor | None = None  # (S, T) pool WAS path; None = from the month's collections
    pool_warf: torch.Tensor | None = None  # (S, T) pool WARF path; None = no WARF test
    pool_wal: torch.Tensor | None = None  # (S, T) pool WAL path (years); None = no WAL test


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
    admin_owed: torch.Tensor  # (S,) admin expenses accrued and not yet paid
    hurdle: torch.Tensor  # (S,) equity hurdle account: notional grown at the hurdle less distributions
    eod: torch.Tensor  # (S,) event of default has occurred (1; a weight in the soft modes)
    ip_acct: torch.Tensor  # (S,) interest collections waiting for the next payment date
    prp_acct: torch.Tensor  # (S,) principal collections waiting for the next payment date
    accrued_rate: torch.Tensor  # (S, Kd) interest per unit of balance accrued in the period's earlier months
    called: torch.Tensor  # (S,) the deal has been called (1; a weight in the soft modes)
    reserve: torch.Tensor  # (S,) cash in the interest reserve account
    margins: torch.Tensor | None  # (S, Kd) margins in force (refinancing), None = the issue margins
    bucket_carry: torch.Tensor  # (S,) OC value of the reinvestment bucket when prices move (at cost below par)
    bucket_wal: torch.Tensor  # (S,) WAL of the reinvestment bucket, years (reinvestment criteria)


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
    admin_due: torch.Tensor  # (S,) admin expenses due senior (within the cap), unpaid included
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
    pay: bool  # a note payment date
    rates: torch.Tensor  # (Kd,) or (S, Kd) interest accrued by one unit of note balance in the month
    due_rates: torch.Tensor  # interest per unit of balance accrued in the period so far, this month included
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
    admin_paid: torch.Tensor = field(init=False)  # admin expenses paid, senior and above the cap
    admin_cap_left: torch.Tensor = field(init=False)  # the payment date's admin cap not yet used
    eod_interest: torch.Tensor = field(init=False)  # 1 where the senior-most class's interest is unpaid
    accelerated: torch.Tensor = field(init=False)  # weight of the accelerated priority this month
    incentive: torch.Tensor = field(init=False)  # incentive fee paid
    called: torch.Tensor = field(init=False)  # weight of the call (liquidation) this month
    # reinvestment criteria (deals with a limit only): the collateral's par and metrics before the
    # purchase (None where the deal has no such test), and the cash kept from buying
    par_q: torch.Tensor = field(init=False)
    was: torch.Tensor | None = field(init=False)
    warf: torch.Tensor | None = field(init=False)
    wal: torch.Tensor | None = field(init=False)
    blocked: torch.Tensor = field(init=False)


def _make_deal(cf: torch.Tensor, p0: torch.Tensor, config: WaterfallConfig, mode: str, sizes: torch.Tensor,
               tau: float, base: torch.Tensor | None = None, act360: torch.Tensor | None = None,
               hy: torch.Tensor | None = None, ccc: torch.Tensor | None = None,
               paths: dict[str, torch.Tensor | None] | None = None) -> _Deal:
    """The run's constants from the deal (``sizes`` only decides the in-place path); ``base`` (S, T)
    and ``act360`` (T,) are the floating classes' base-rate path and accrual fractions, ``hy`` and
    ``ccc`` (S, T) the high-yield spread and CCC par paths, ``paths`` the reinvestment criteria's pool
    paths (:func:`~creditsim.deal.inputs.criteria_paths`)."""
    paths = paths or {}
    dev = cf.device
    S, T, _ = cf.shape
    groups = config.pari_passu_groups
    grouped = any(b - a > 1 for a, b in groups)
    # purchases below this price are discount obligations, carried at cost in the OC numerator (legacy
    # default: anything bought below par)
    discount_below = 1.0 if config.discount_obligation_price is None else config.discount_obligation_price
    debt = config.debt_tranches
    oc_trig = [t.oc_trigger for t in debt]
    ic_trig = [t.ic_trigger for t in debt]
    f64, b = {"dtype": torch.float64, "device": dev}, {"dtype": torch.bool, "device": dev}
    price = config.reinvestment_price
    return _Deal(
        config=config, mode=mode, gates=Gates(mode, tau), S=S, T=T, Kd=len(debt), device=dev,
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
        price=price, discount=price if price < discount_below else 1.0, discount_below=discount_below,
        div_trig=config.interest_diversion_trigger, period_months=_period_months(T, config.months_per_period),
        tol=1e-9 * p0, zero=torch.zeros(S, dtype=torch.float64, device=dev),
        inplace=not (cf.requires_grad or p0.requires_grad or sizes.requires_grad
                     or any(x is not None and x.requires_grad for x in (base, hy, ccc, *paths.values()))),
        groups=groups, grouped=grouped, layout=group_layout(groups),
        group_end=torch.tensor([b - 1 for a, b in groups for _ in range(a, b)], dtype=torch.long, device=dev),
        group_start=torch.tensor([a for a, b in groups for _ in range(a, b)], dtype=torch.long, device=dev),
        period=config.months_per_period,
        admin_rate=config.admin_fee * _ALPHA, admin_fixed=config.admin_expenses * _ALPHA,
        admin_cap=None if config.admin_cap is None else config.admin_cap * _ALPHA,
        incentive=config.incentive_fee, hurdle_growth=(1.0 + config.incentive_hurdle) ** _ALPHA,
        eod_trig=config.eod_oc_trigger, track_eod=config.eod_oc_trigger is not None or config.acceleration,
        accelerate=config.acceleration,
        track_call=((config.non_call_period is not None and config.call_nav_threshold is not None)
                    or config.clean_up_call is not None),
        call_from=config.non_call_period, call_nav=config.call_nav_threshold, clean_up=config.clean_up_call,
        eq_notional=sizes[len(debt)], p0=p0, hy=hy, ccc=ccc,
        price_path=hy is not None and config.spread_duration > 0,
        refi_saving=config.refinancing_saving if config.has_floating else None,
        criteria=config.has_reinvestment_criteria, **paths,
        **_floating_terms(config, base, act360, dev),
    )


def _period_months(T: int, period: int) -> list[int]:
    """For every month t: the number of months in the payment period that ends with it (0 for a month
    that is not a payment date); the last month always closes a (possibly short) period."""
    out, last_pay = [], -1
    for t in range(T):
        if period == 1 or (t + 1) % period == 0 or t == T - 1:
            out.append(t - last_pay)
            last_pay = t
        else:
            out.append(0)
    return out


def _floating_terms(config: WaterfallConfig, base: torch.Tensor | None, act360: torch.Tensor | None,
                    dev: torch.device) -> dict[str, Any]:
    """The floating classes' margins, floors and base-rate path (empty for an all-fixed deal)."""
    debt = config.debt_tranches
    if not config.has_floating:
        return {}
    f64 = {"dtype": torch.float64, "device": dev}
    return {
        "floating": torch.tensor([t.floating for t in debt], dtype=torch.bool, device=dev),
        "margins": torch.tensor([t.margin or 0.0 for t in debt], **f64),
        "floors": torch.tensor([-math.inf if t.floor is None else t.floor for t in debt], **f64),
        "base": base, "act360": act360,
    }


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
        pool_prev=p0, admin_owed=zero, hurdle=sizes[Kd].expand(S), eod=zero, ip_acct=zero,
        prp_acct=zero, accrued_rate=torch.zeros(S, Kd, dtype=torch.float64, device=deal.device), called=zero,
        margins=None if deal.refi_saving is None else deal.margins.expand(S, Kd), bucket_carry=zero,
        reserve=zero + deal.config.interest_reserve, bucket_wal=zero,
    )


# ---- one month ----------------------------------------------------------------------------------------


def _waterfall_month(deal: _Deal, state: _State, pool: _PoolMonth, t: int) -> _Month:
    """Month t (WATERFALL.md timeline, steps 1-6): updates ``state``, returns the month's record.

    Collections, fee accruals and the coverage ratios are monthly; the priorities of payments run on
    payment dates only (every ``period`` months, and always in the last month); in the months between,
    collections wait in the collection account and note interest accrues. On a payment date where an
    optional or clean-up call is possible the month is also run as a liquidation month from the same
    opening balances, and the two are mixed by the call weight (0/1 in the hard mode): both allocate
    the same cash exactly, so the mix conserves cash too. After a call the pool's later collections
    belong to the buyer (scaled by the share not called).
    """
    if deal.track_call:
        keep = 1.0 - state.called
        pool = _PoolMonth(*(x * keep for x in pool))
    last = deal.config.liquidate_at_horizon and t == deal.T - 1
    pay = deal.period == 1 or (t + 1) % deal.period == 0 or t == deal.T - 1
    may_call = deal.track_call and pay and not last and t < deal.T - 1
    opening = _branch(state) if may_call else None
    month = _open_month(deal, state, pool, t, last, pay)
    if not pay:
        _hold_collections(deal, state, month)
        return month
    weight = _call_weight(deal, state, month) if may_call else None
    if weight is not None and _exact_subset(deal):
        # hard mode without autograd: run the liquidation month only for the scenarios that call
        rows = torch.nonzero(weight > 0).flatten()
        if rows.numel():
            cuts: _Cuts = {}  # ``opening`` shares the state's tensors (but N and paydowns) as they were
            sub_deal, sub_state = _deal_rows(deal, rows), _rows(opening, rows, deal.S, cuts)
            called = _open_month(sub_deal, sub_state, _PoolMonth(*(x[rows] for x in pool)), t, True, True)
            _pay_month(sub_deal, sub_state, called)
            _pay_month(deal, state, month)
            _scatter(state, sub_state, rows, deal.S, cuts)
            _scatter(month, called, rows, deal.S)
            state.called = 1.0 - (1.0 - state.called) * (1.0 - weight)
        else:
            _pay_month(deal, state, month)
        month.called = weight
    elif weight is not None and (deal.mode != "hard" or bool((weight > 0).any())):
        called = _open_month(deal, opening, pool, t, True, True)
        _pay_month(deal, opening, called)
        _pay_month(deal, state, month)
        _blend(state, opening, state, weight)
        _blend(month, called, month, weight)
        state.called = 1.0 - (1.0 - state.called) * (1.0 - weight)
        month.called = weight
    else:
        _pay_month(deal, state, month)
        month.called = deal.zero
    return month


def _open_month(deal: _Deal, state: _State, pool: _PoolMonth, t: int, last: bool, pay: bool) -> _Month:
    """Steps 1-2: collections (liquidation when ``last``), accruals and the determination date."""
    rates = _month_rates(deal, state, t)
    month = _Month(t=t, last=last, in_rp=t < deal.config.reinvestment_period and not last, pay=pay, rates=rates,
                   due_rates=rates if deal.period == 1 else rates + state.accrued_rate)
    _collections(deal, state, pool, month)
    # past the reinvestment period no test caps a purchase, so only a requested output needs the metrics;
    # inside it they run in a liquidation (call) branch too: it ages the bucket's WAL like the normal month,
    # and the soft modes blend the two branches' states
    if deal.criteria and (t < deal.config.reinvestment_period or deal.record_criteria):
        _criteria_metrics(deal, state, pool, month)
    _accrue(deal, state, month)
    month.tests = _determination(deal, state, month)
    month.deferred_start = state.deferred
    month.paid_down = torch.zeros(deal.S, deal.Kd, dtype=torch.float64, device=deal.device)
    return month


def _pay_month(deal: _Deal, state: _State, month: _Month) -> None:
    """Steps 3-6 of a payment date: the normal priorities or, after an event of default with
    ``acceleration``, the accelerated one (mixed by the event's weight in the soft modes: both are exact
    allocations of the same cash, so the mix conserves cash too); the incentive fee; month end."""
    if deal.config.interest_reserve:
        _interest_reserve(deal, state, month)
    weight = state.eod
    if deal.accelerate and _exact_subset(deal):
        # hard mode without autograd: the accelerated priority only for the scenarios in default
        rows = torch.nonzero(weight > 0).flatten()
        if rows.numel():
            sub_deal, state_cuts, month_cuts = _deal_rows(deal, rows, paths=False), {}, {}
            sub_state = _rows(state, rows, deal.S, state_cuts)
            sub_month = _rows(month, rows, deal.S, month_cuts, tests=_ACCELERATED_TESTS)
            _normal_priorities(deal, state, month)
            _accelerated_priority(sub_deal, sub_state, sub_month)
            _scatter(state, sub_state, rows, deal.S, state_cuts)
            _scatter(month, sub_month, rows, deal.S, month_cuts)
        else:
            _normal_priorities(deal, state, month)
        month.accelerated = weight
    elif deal.accelerate and (deal.mode != "hard" or bool((weight > 0).any())):
        normal_state = _branch(state)
        normal = _branch(month)
        _normal_priorities(deal, normal_state, normal)
        _accelerated_priority(deal, state, month)
        _blend(state, state, normal_state, weight)
        _blend(month, month, normal, weight)
        month.accelerated = weight
    else:
        _normal_priorities(deal, state, month)
        month.accelerated = deal.zero
    _incentive_fee(deal, state, month)
    _close_month(state, month)
    if deal.track_eod:
        _update_event_of_default(deal, state, month)
    if deal.refi_saving is not None and deal.hy is not None and month.t + 1 >= deal.call_from:
        _refinance(deal, state, month.t)


#: the determination-date results the accelerated priority reads (its senior expenses' admin cap)
_ACCELERATED_TESTS = ("admin_due",)


def _interest_reserve(deal: _Deal, state: _State, month: _Month) -> None:
    """Draw on the interest reserve account (payment dates): top the interest proceeds up by what the
    senior expenses and the non-deferrable classes' interest due need beyond them, then release what is
    left to the principal proceeds from the payment date closing month ``interest_reserve_release`` (the
    reinvestment period's end by default) and in a liquidation month. Cash moved, none created: the
    draws and the release are part of the proceeds the priorities pay out (``cash_in``)."""
    tests = month.tests
    due = state.N * month.due_rates + state.carried
    senior = tests.fee_sr_due + tests.admin_due + rowsum(due * (~deal.deferrable))
    draw = torch.minimum(state.reserve, torch.clamp(senior - month.ip, min=0.0))
    month.ip = month.ip + draw
    state.reserve = state.reserve - draw
    release_at = deal.config.interest_reserve_release
    release_at = deal.config.reinvestment_period if release_at is None else release_at
    if month.last or month.t == deal.T - 1 or month.t + 1 >= release_at:
        month.prp = month.prp + state.reserve
        state.reserve = torch.zeros_like(state.reserve)


#: relative margin by which a spread move must clear the refinancing threshold for a date to be skipped
_REFI_SLACK = 1e-12


def _refinance(deal: _Deal, state: _State, t: int) -> None:
    """Reset the margin of each floating class whose market margin (issue margin x ``hy_t / hy_0``) is
    below ``(1 - refinancing_saving)`` x its current margin; effective from the next accrual. The gate is
    on the ratio market / current margin (a sigmoid in the soft modes)."""
    move = deal.hy[:, t] / torch.clamp(deal.hy[:, 0], min=1e-6)
    # margins in force never exceed the issue margins, so the ratio below is at least the move less its two
    # roundings (a few 1e-16 relative: (0.0135 x 0.9) / 0.0135 is 0.8999999999999999): where no scenario's
    # move is within 1e-12 of the threshold or under it, the hard gate is 0 everywhere and the margins stay
    if _exact_subset(deal) and not bool((move < (1.0 - deal.refi_saving) * (1.0 + _REFI_SLACK)).any()):
        return
    market = deal.margins * move.unsqueeze(1)
    current = state.margins
    ratio = coverage_ratio(market, current)
    w = deal.gates.switch((1.0 - deal.refi_saving) - ratio) * deal.floating
    state.margins = current - w * torch.clamp(current - market, min=0.0)


def _call_weight(deal: _Deal, state: _State, month: _Month) -> torch.Tensor | None:
    """Weight (S,) of calling the deal on this payment date (1/0 hard, a sigmoid in the soft modes).

    Liquidation value = the collateral sold at the month's price plus expected recoveries and the
    period's cash; claims = notes (capitalised interest included), interest due and every fee owed.
    Optional call (from ``non_call_period``): equity NAV ``(value - claims) / notional`` at least
    ``call_nav_threshold``. Clean-up call: collateral par below ``clean_up_call`` of the par at the
    cut-off and the sale repays every claim (NAV >= 0). None when neither is possible this month.
    """
    # the non-call period counts months: the payment date that closes month ``non_call_period`` may call
    optional = deal.call_from is not None and deal.call_nav is not None and month.t + 1 >= deal.call_from
    if not optional and deal.clean_up is None:
        return None
    par = month.pool_bal + state.bucket
    value = (_liquidation_price(deal, month.t) * par + state.pool_pending + state.bucket_pending + month.ip
             + month.prp)
    due = state.N * month.due_rates + state.carried
    claims = (rowsum(state.N) + rowsum(due) + state.fee_sr_unpaid + state.fee_sub_unpaid + state.admin_owed)
    nav = (value - claims) / deal.eq_notional
    weight = deal.gates.switch(nav - deal.call_nav) if optional else deal.zero
    if deal.clean_up is not None:
        small = deal.gates.switch(deal.clean_up - par / deal.p0) * deal.gates.switch(nav)
        weight = 1.0 - (1.0 - weight) * (1.0 - small)
    return weight


def _liquidation_price(deal: _Deal, t: int) -> torch.Tensor | float:
    """Sale price of performing collateral in month t, fraction of par: ``liquidation_price``, moved by
    the scenario's high-yield spread change times ``spread_duration`` when a spread path is given
    (floored at 5 % of par)."""
    if deal.hy is None:
        return deal.config.liquidation_price
    return deal.config.liquidation_price * _price_move(deal, t)


def _price_move(deal: _Deal, t: int | slice) -> torch.Tensor:
    """Loan price factor of month t (every month for ``slice(None)``) on the spread path:
    ``1 - spread_duration x (hy_t - hy_0)``, floored at 0.05 (the same factor moves sale and purchase
    prices)."""
    if deal.price_moves is not None:
        return deal.price_moves[:, t]
    hy0 = deal.hy[:, 0] if isinstance(t, int) else deal.hy[:, :1]
    return torch.clamp(1.0 - deal.config.spread_duration * (deal.hy[:, t] - hy0), min=0.05)


def _normal_priorities(deal: _Deal, state: _State, month: _Month) -> None:
    """Steps 3-5 of a payment date without acceleration."""
    avail = _interest_priority(deal, state, month)
    _sub_fee_and_diversion(deal, state, month, avail)
    _principal_priority(deal, state, month)


def _month_rates(deal: _Deal, state: _State, t: int) -> torch.Tensor:
    """Interest accrued in month t per unit of note balance: ``(Kd,)`` fixed 30/360 coupons, or
    ``(S, Kd)`` with the floating classes at ``max(max(base_t, floor) + margin, 0) x days / 360`` (a
    note coupon is never negative; the margin in force, after any refinancing)."""
    if deal.floating is None:
        return deal.rates
    margins = deal.margins if state.margins is None else state.margins
    # the base rate is fixed at the start of each interest period (3-month SOFR on a quarterly deal)
    start = (t // deal.period) * deal.period
    coupon = torch.clamp(torch.maximum(deal.base[:, start].unsqueeze(1), deal.floors) + margins, min=0.0)
    return torch.where(deal.floating, coupon * deal.act360[t], deal.rates)


def _accrue(deal: _Deal, state: _State, month: _Month) -> None:
    """Monthly accruals: senior and subordinated fees and admin expenses on the month's opening
    collateral par (owed until paid), the equity hurdle account, and note interest of a month that is
    not a payment date."""
    state.fee_sr_unpaid = state.fee_sr_unpaid + deal.sr_rate * month.basis
    state.fee_sub_unpaid = state.fee_sub_unpaid + deal.sub_rate * month.basis
    if deal.admin_rate or deal.admin_fixed:
        # a called deal has no trustee to pay: the fixed part stops with the collateral
        fixed = deal.admin_fixed if not deal.track_call else deal.admin_fixed * (1.0 - state.called)
        state.admin_owed = state.admin_owed + deal.admin_rate * month.basis + fixed
    if deal.incentive:
        state.hurdle = state.hurdle * deal.hurdle_growth
    if not month.pay:
        state.accrued_rate = state.accrued_rate + month.rates


def _hold_collections(deal: _Deal, state: _State, month: _Month) -> None:
    """A month between payment dates: the collections go to the collection account; nothing is paid."""
    state.ip_acct = state.ip_acct + month.ip
    state.prp_acct = state.prp_acct + month.prp
    zero, zk = deal.zero, torch.zeros(deal.S, deal.Kd, dtype=torch.float64, device=deal.device)
    month.ip, month.prp = zero, zero
    for name in ("fee_sr_paid", "fee_sub_paid", "interest_cure", "to_principal", "diversion", "equity_interest",
                 "principal_cure", "reinvest", "equity_principal", "admin_paid", "eod_interest", "accelerated",
                 "incentive", "called", "admin_cap_left"):
        setattr(month, name, zero)
    for name in ("int_paid", "shortfall", "capitalised", "deferred_paid", "principal_paid"):
        setattr(month, name, zk)
    state.pool_prev = month.pool_bal


#: per-scenario tensors of a run's constants (:class:`_Deal`): what a subset of scenarios needs indexed
_DEAL_ROWS = ("tol", "zero", "p0")
#: the run's (S, T) market and pool paths: only the collections, the call and refinancing read them
_DEAL_PATHS = ("base", "hy", "ccc", "pool_spread", "pool_warf", "pool_wal", "price_moves")


def _exact_subset(deal: _Deal) -> bool:
    """Branches (acceleration, call) can run on the scenarios they concern only: hard mode, no autograd.
    The result is the same bits as the weighted mix of the other modes (weights 0 or 1)."""
    return deal.mode == "hard" and deal.inplace


def _deal_rows(deal: _Deal, rows: torch.Tensor, paths: bool = True) -> _Deal:
    """The run's constants for the scenarios ``rows``. ``paths=False`` does not cut the (S, T) paths (gathering
    them is most of the cost): for the accelerated priority, which reads none of them (a read would fail
    loudly, its S rows against the subset's)."""
    names = _DEAL_ROWS + _DEAL_PATHS if paths else _DEAL_ROWS
    change = {name: getattr(deal, name).index_select(0, rows) for name in names if getattr(deal, name) is not None}
    return dataclasses.replace(deal, S=int(rows.numel()), **change)


def _per_scenario(name: str, value: Any, S: int) -> bool:
    """A tensor with one row per scenario (a month's coupon rates may be one ``(Kd,)`` row for all)."""
    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != S:
        return False
    return not (name in ("rates", "due_rates") and value.ndim == 1)


#: per field of a branch cut by :func:`_rows`: (the full tensor, its version, the cut tensor, its version)
_Cuts = dict[str, tuple[torch.Tensor, int, torch.Tensor, int]]


def _rows(obj: Any, rows: torch.Tensor, S: int, cuts: _Cuts | None = None,
          tests: tuple[str, ...] | None = None) -> Any:
    """A copy of a state, month record or determination with every per-scenario tensor cut to ``rows``;
    ``cuts`` (filled when given) lets :func:`_scatter` skip the fields neither side has changed since.
    ``tests``: cut only these fields of a month's determination (the others keep every scenario's rows, so a
    branch that read one would fail on the shapes); None = all of them."""
    out = copy.copy(obj)
    for f in fields(obj):
        value = getattr(obj, f.name, None)
        if tests is not None and isinstance(obj, _Tests) and f.name not in tests:
            continue
        if _per_scenario(f.name, value, S):
            cut = value.index_select(0, rows)
            setattr(out, f.name, cut)
            if cuts is not None:
                cuts[f.name] = (value, value._version, cut, cut._version)
        elif isinstance(value, _Tests):
            setattr(out, f.name, _rows(value, rows, S, tests=tests))
        elif isinstance(value, list) and any(isinstance(x, torch.Tensor) for x in value):
            setattr(out, f.name, [x.index_select(0, rows) if isinstance(x, torch.Tensor) else x for x in value])
    return out


def _scatter(full: Any, sub: Any, rows: torch.Tensor, S: int, cuts: _Cuts | None = None) -> None:
    """Write the per-scenario tensors of ``sub`` (a branch run on ``rows``) into ``full``'s rows, on
    copies (the full tensors may be shared, e.g. the run's zeros). With the ``cuts`` that made ``sub``
    (:func:`_rows`; ``full`` was cut, or shares the tensors of what was), a field that is still the same
    tensor at the same version on both sides is left alone: its rows already hold those values."""
    for f in fields(sub):
        value, target = getattr(sub, f.name, None), getattr(full, f.name, None)
        if not isinstance(value, torch.Tensor) or not _per_scenario(f.name, target, S):
            continue
        cut = cuts.get(f.name) if cuts is not None else None
        if cut is not None and cut[0] is target and cut[2] is value and cut[1:4:2] == (target._version, value._version):
            continue
        setattr(full, f.name, target.index_copy(0, rows, value))  # out of place: a copy with the rows replaced


def _branch(obj: Any) -> Any:
    """A copy of a state or month record whose tensors the priorities may update in place."""
    out = copy.copy(obj)
    for name in ("N", "paid_down"):
        if hasattr(out, name):
            setattr(out, name, getattr(out, name).clone())
    return out


def _blend(dst: Any, branch: Any, normal: Any, weight: torch.Tensor) -> None:
    """``dst = weight x branch + (1 - weight) x normal`` field by field (``dst`` may be either); exact
    in the hard mode, where the weight is 0 or 1 per scenario."""
    w = weight
    for f in fields(dst):
        a, n = getattr(branch, f.name, None), getattr(normal, f.name, None)
        if not isinstance(a, torch.Tensor) or not isinstance(n, torch.Tensor) or f.name == "rates":
            continue
        if a is n:
            setattr(dst, f.name, a)
            continue
        wk = w.unsqueeze(1) if a.ndim == 2 else w
        setattr(dst, f.name, a * wk + n * (1.0 - wk))


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
    if deal.price_path:  # the bucket's carrying value leaves with its par
        kept = torch.where(bucket > 0, state.bucket / torch.where(bucket > 0, bucket, 1.0), 0.0)
        state.bucket_carry = state.bucket_carry * kept

    month.pool_bal = pool.balance
    month.ip = pool.interest + b_int
    prp_coll = pool.sched + pool.prepay + pool.recov + b_sch + b_pre + b_rec
    held = None
    # collateral principal at the start of the month, the fee basis: par plus principal cash held
    month.basis = state.pool_prev + bucket_start if deal.period == 1 else state.pool_prev + bucket_start + state.prp_acct
    if deal.period > 1:  # collections of the period's earlier months wait in the collection account
        if month.pay:
            month.ip = month.ip + state.ip_acct
            prp_coll = prp_coll + state.prp_acct
            state.ip_acct, state.prp_acct = deal.zero, deal.zero
        else:
            held = state.prp_acct
    # OC numerator (WATERFALL.md 2.4): collateral bought below par counts at its purchase price; principal
    # cash (this month's and any held for the payment date) counts at par
    bucket_value = state.bucket_carry if deal.price_path else deal.discount * state.bucket
    month.acpa = pool.balance + bucket_value + state.pool_pending + state.bucket_pending + prp_coll
    if held is not None:
        month.acpa = month.acpa + held
    if deal.ccc is not None and deal.config.ccc_limit is not None:  # CCC excess counts at market value
        # the CCC names are part of the performing pool (and sold with it at a call)
        ccc = deal.ccc[:, month.t] if not deal.track_call else deal.ccc[:, month.t] * (1.0 - state.called)
        ccc = torch.minimum(ccc, pool.balance)
        excess = torch.clamp(ccc - deal.config.ccc_limit * (pool.balance + state.bucket), min=0.0)
        month.acpa = month.acpa - (1.0 - deal.config.ccc_market_value) * excess
    if month.last:
        _liquidate(deal, state, month, prp_coll)
    else:
        month.liquidation = deal.zero
    month.prp = prp_coll + month.liquidation


def _liquidate(deal: _Deal, state: _State, month: _Month, prp_coll: torch.Tensor) -> None:
    """Step 6, liquidation month: performing par is sold at ``liquidation_price``, defaulted par
    awaiting recovery is realised at its expected recovery; the cash is principal proceeds."""
    month.liquidation = (_liquidation_price(deal, month.t) * (month.pool_bal + state.bucket) + state.pool_pending
                         + state.bucket_pending)
    state.bucket, state.bucket_pending, state.pool_pending = deal.zero, deal.zero, deal.zero
    state.bucket_carry = deal.zero
    # the collateral is sold: the coverage tests see the cash it fetched, not its par
    month.acpa = prp_coll + month.liquidation


def _determination(deal: _Deal, state: _State, month: _Month) -> _Tests:
    """Step 2: senior fee due, OC / IC ratios of every class and their fail weights."""
    S, Kd = deal.S, deal.Kd
    fee_sr_due = state.fee_sr_unpaid  # this month's accrual included (:func:`_accrue`)
    admin_due = _admin_senior_due(deal, state, month)
    # the IC test compares the period's interest so far (held collections included) with the period's
    # interest due so far: on payment dates the whole period, in between a running check
    ip = month.ip if month.pay or deal.period == 1 else month.ip + state.ip_acct
    ip_net = ip - admin_due if deal.admin_rate or deal.admin_fixed else ip
    ip_net = torch.clamp(ip_net - fee_sr_due, min=0.0)
    cum_bal = torch.cumsum(state.N, dim=1)  # a new tensor: in-place paydowns later leave it as it is
    cum_due = torch.cumsum(state.N * month.due_rates, dim=1)
    if deal.grouped:  # a pari-passu group is tested as one: every member sees the group's ratio
        cum_bal, cum_due = _at_group_end(deal, cum_bal), _at_group_end(deal, cum_due)
    oc_ratio = coverage_ratio(month.acpa.unsqueeze(1).expand(S, Kd), cum_bal)
    ic_ratio = coverage_ratio(ip_net.unsqueeze(1).expand(S, Kd), cum_due)
    oc_g, oc_fail = _class_gates(deal, deal.oc_trig, deal.oc_trig_v, oc_ratio)
    # IC tests start at payment date number ``ic_first_period`` (0-based; months on a monthly deal)
    if month.t // deal.period < deal.config.ic_first_period:  # not yet active: ratios reported, all pass
        ic_g, ic_fail = None, [None] * Kd
    else:
        ic_g, ic_fail = _class_gates(deal, deal.ic_trig, deal.ic_trig_v, ic_ratio,
                                     turbo=deal.config.ic_cure == "turbo")
    return _Tests(fee_sr_due=fee_sr_due, admin_due=admin_due, ip_net=ip_net, cum_bal=cum_bal, oc_ratio=oc_ratio,
                  ic_ratio=ic_ratio, oc_g=oc_g, oc_fail=oc_fail, ic_g=ic_g, ic_fail=ic_fail)


def _at_group_end(deal: _Deal, cum: torch.Tensor) -> torch.Tensor:
    """Cumulative sums ``cum`` (S, Kd), a fresh tensor, read at the last class of each class's group."""
    lead = deal.layout.leading
    if lead is None:
        return cum[:, deal.group_end]
    # the one wider group leads: its members take its last column, the others are their own group
    # (an in-place copy instead of a column gather, which costs ten times as much on (S, Kd))
    cum[:, : lead - 1] = cum[:, lead - 1 : lead]
    return cum


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
        # the hard values are 0 / 1, so a column fails somewhere when its sum (a whole count, exact in any
        # order) is positive: a reduction over the scenarios that runs along the rows, 7x faster than ``any``
        any_fail = (g.detach().sum(dim=0) > 0.5).tolist()
    return g, [g[:, k] if trig[k] is not None and any_fail[k] else None for k in range(deal.Kd)]


class _CureInputs(NamedTuple):
    """What one class's cure reads, for every scenario or for the rows failing its tests (R of them)."""

    N: torch.Tensor  # (R, Kd) note balances
    due_rates: torch.Tensor  # (Kd,) or (R, Kd) interest due per unit of balance (the period's)
    ip_net: torch.Tensor  # (R,) IC numerator
    oc_fail: torch.Tensor | None  # (R,) fail weight of the class's OC test; None = nothing to cure
    ic_fail: torch.Tensor | None  # (R,)
    acpa: torch.Tensor  # (R,) OC numerator now
    pot: torch.Tensor  # (R,) cash the cure is paid from


def _pay_cure(deal: _Deal, state: _State, month: _Month, k: int, acpa_now: torch.Tensor, principal_funded: bool,
              pot: torch.Tensor) -> torch.Tensor | None:
    """Pay down the classes senior to and including k (the last class of its group) by the cure of k's failing
    tests (:func:`_cure_need`), in priority order from ``pot`` (S,); returns the cash used (S,), None when no
    scenario fails. Passing scenarios need nothing (their cure is exactly 0, and so are their changes), so when
    few fail only those rows are computed and written back."""
    tests = month.tests
    inp = _CureInputs(state.N, month.due_rates, tests.ip_net, tests.oc_fail[k], tests.ic_fail[k], acpa_now, pot)
    if inp.oc_fail is None and inp.ic_fail is None:
        return None
    rows = _failing_rows(deal, inp.oc_fail, inp.ic_fail, pot)
    if rows is not None and not rows.numel():
        return None
    if rows is None:
        cure = pay_in_order(deal, torch.minimum(_cure_need(deal, inp, k, principal_funded), pot), state.N[:, : k + 1])
        used = rowsum(cure)  # before the paydown: autograd sums a tensor's gradients in the order of its uses
        _paydown(deal, state, month, cure)
        return used
    sub = _CureInputs(*(x.index_select(0, rows) if _per_scenario(name, x, deal.S) else x
                        for name, x in zip(inp._fields, inp)))
    cure = pay_in_order(deal, torch.minimum(_cure_need(deal, sub, k, principal_funded), sub.pot), sub.N[:, : k + 1])
    sub.N[:, : k + 1] -= cure  # the same arithmetic as :func:`_paydown` on these rows
    state.N.index_copy_(0, rows, sub.N)
    paid_down = month.paid_down.index_select(0, rows)
    paid_down[:, : k + 1] += cure
    month.paid_down.index_copy_(0, rows, paid_down)
    return torch.zeros_like(pot).index_copy_(0, rows, rowsum(cure))


def _failing_rows(deal: _Deal, oc_fail: torch.Tensor | None, ic_fail: torch.Tensor | None, pot: torch.Tensor
                  ) -> torch.Tensor | None:
    """The scenarios (long indices) failing either test with cash in the ``pot`` (S,) when a cure may run on
    them alone (hard mode, no autograd, not every scenario; possibly none); None = run the cure on every
    scenario.

    Gathering and scattering the rows costs a few ops, the cure two to three dozen: on the bench deals the
    senior classes' tests (where the IC walk-down runs) fail in 3-15 % of the scenarios, the junior OC tests
    in 30-70 %, and the subset measured no slower even then. A failing scenario whose pot is exactly 0 pays
    a cure of 0 and changes nothing, so it is left out: on the monthly every-feature bench deal that is
    most of them for the junior classes (the interest is gone before their cure: 90 % for the last class)."""
    if not _exact_subset(deal):
        return None
    fails = [g > 0 for g in (oc_fail, ic_fail) if g is not None]
    mask = fails[0] if len(fails) == 1 else fails[0] | fails[1]
    rows = torch.nonzero(mask & (pot != 0)).flatten()
    return rows if rows.numel() < deal.S else None


def _cure_need(deal: _Deal, inp: _CureInputs, k: int, principal_funded: bool) -> torch.Tensor:
    """Paydown amount (R,) that cures class k's failing tests on current balances (``inp``: every scenario
    or some rows; one test at least is not None).

    OC, cured from interest: interest cash is not in ACPA, so paying ``x`` lowers only the
    denominator: ``ACPA / (L_k - x) = theta`` gives ``x = L_k - ACPA / theta``. Cured from principal:
    the cash paid out was in ACPA, so both sides drop: ``(ACPA - x) / (L_k - x) = theta`` gives
    ``x = (theta L_k - ACPA) / (theta - 1)``. IC: the pro forma walk-down that brings interest due
    to ``ip_net / trigger`` (:func:`ic_paydown`), or with "turbo" all the interest left. ``k`` is the
    last class of its pari-passu group.
    """
    need = None
    if inp.oc_fail is not None:
        theta = deal.oc_trig[k]
        lk = rowsum(inp.N[:, : k + 1])
        if principal_funded:  # the cash paid out also leaves the numerator
            x = torch.clamp((theta * lk - inp.acpa) / max(theta - 1.0, 1e-12), min=0.0)
        else:
            x = torch.clamp(lk - inp.acpa / theta, min=0.0)
        need = inp.oc_fail * x
    if inp.ic_fail is not None:
        if deal.config.ic_cure == "turbo" and not principal_funded:
            x = inp.pot
        else:
            rates = inp.due_rates[..., : k + 1]  # the period's interest due, as the test
            due = inp.N[:, : k + 1] * rates
            excess = rowsum(due) - inp.ip_net / deal.ic_trig[k]
            x = ic_paydown(deal, inp.N[:, : k + 1], rates, torch.clamp(excess, min=0.0), due=due)
        x = inp.ic_fail * x
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


def _admin_senior_due(deal: _Deal, state: _State, month: _Month) -> torch.Tensor:
    """Admin expenses payable senior on this date: what is owed, up to the cap of the period (the annual
    cap times the months the period closes; none between payment dates)."""
    if not (deal.admin_rate or deal.admin_fixed):
        return deal.zero
    if deal.admin_cap is None:
        return state.admin_owed
    return torch.clamp(state.admin_owed, max=deal.admin_cap * max(deal.period_months[month.t], 1))


def _pay_admin_senior(deal: _Deal, state: _State, month: _Month, pot: torch.Tensor) -> torch.Tensor:
    """Pay admin expenses senior from ``pot`` (S,) within what is left of the date's cap."""
    paid = torch.minimum(pot, torch.minimum(state.admin_owed, month.admin_cap_left))
    state.admin_owed = state.admin_owed - paid
    month.admin_cap_left = month.admin_cap_left - paid
    month.admin_paid = month.admin_paid + paid
    return pot - paid


def _senior_expenses(deal: _Deal, state: _State, month: _Month, pot: torch.Tensor) -> torch.Tensor:
    """Admin expenses within the cap, then the senior fee (unpaid amounts included) from ``pot`` (S,);
    returns what is left. Sets ``month.admin_paid`` and ``month.fee_sr_paid``."""
    month.admin_paid = deal.zero
    if deal.admin_rate or deal.admin_fixed:
        month.admin_cap_left = month.tests.admin_due
        pot = _pay_admin_senior(deal, state, month, pot)
    month.fee_sr_paid = torch.minimum(pot, state.fee_sr_unpaid)
    state.fee_sr_unpaid = state.fee_sr_unpaid - month.fee_sr_paid
    return pot - month.fee_sr_paid


def _interest_due(deal: _Deal, state: _State, month: _Month) -> torch.Tensor:
    """Note interest due on the payment date (S, Kd): the period's accrual on the balances (PIK
    included), plus unpaid interest carried from earlier dates (with interest on it when
    ``defaulted_interest_accrues``)."""
    int_due = state.N * month.due_rates
    if deal.period > 1:
        state.accrued_rate = torch.zeros_like(state.accrued_rate)
    if deal.config.defaulted_interest_accrues:
        # the carried amount earns the class's interest over the period since the last date
        int_due = int_due + state.carried * month.due_rates
    return int_due + state.carried


def _interest_priority(deal: _Deal, state: _State, month: _Month) -> torch.Tensor:
    """Step 3, up to the subordinated fee: admin expenses and the senior fee, then per debt class (or
    pari-passu group, pro rata) its interest, its coverage cures and (deferrable) repayment of its
    capitalised interest. Returns the interest left (S,)."""
    avail = _senior_expenses(deal, state, month, month.ip)
    int_due = _interest_due(deal, state, month)
    int_paid_cols = []
    month.interest_cure = deal.zero
    for a, b in deal.groups:
        k = b - 1
        paid = pay_pro_rata(avail, int_due[:, a:b])
        avail = avail - (paid[:, 0] if b - a == 1 else rowsum(paid))
        int_paid_cols.append(paid)
        used = _pay_cure(deal, state, month, k, month.acpa, False, avail)
        if used is not None:  # cure paid in priority order to the classes senior to and including k
            avail = avail - used
            month.interest_cure = month.interest_cure + used
        if deal.pay_deferred[k]:
            owed = torch.clamp(month.deferred_start[:, a:b] - month.paid_down[:, a:b], min=0.0)
            rep = pay_pro_rata(avail, owed)
            avail = avail - (rep[:, 0] if b - a == 1 else rowsum(rep))
            _paydown(deal, state, month, rep, first=a)
    month.int_paid = torch.cat(int_paid_cols, dim=1)
    month.shortfall = int_due - month.int_paid  # one op on all classes instead of one per group
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
    if deal.config.sub_fee_before_diversion:
        avail = _pay_sub_fee(state, month, avail)
    month.diversion = deal.zero
    if month.in_rp and deal.div_trig is not None:
        l_all = rowsum(state.N)
        g = deal.gates.fail(deal.div_trig - coverage_ratio(month.acpa, month.tests.cum_bal[:, -1]))
        # cash at par counts in the numerator: buying x of collateral lifts ACPA by x
        month.diversion = torch.minimum(deal.config.interest_diversion_share * avail,
                                        g * torch.clamp(deal.div_trig * l_all - month.acpa, min=0.0))
        avail = avail - month.diversion
    if not deal.config.sub_fee_before_diversion:
        avail = _pay_sub_fee(state, month, avail)
    month.equity_interest = _pay_admin_excess(deal, state, month, avail)


def _pay_admin_excess(deal: _Deal, state: _State, month: _Month, pot: torch.Tensor) -> torch.Tensor:
    """Pay the admin expenses owed above the cap from ``pot`` (S,) (after the subordinated fee)."""
    if deal.admin_cap is None or not (deal.admin_rate or deal.admin_fixed):
        return pot
    paid = torch.minimum(pot, state.admin_owed)
    state.admin_owed = state.admin_owed - paid
    month.admin_paid = month.admin_paid + paid
    return pot - paid


def _principal_priority(deal: _Deal, state: _State, month: _Month) -> None:
    """Step 4: unpaid senior fee, interest catch-up and PIK (:func:`_interest_catch_up`), then
    reinvestment (reinvestment period) or sequential paydown, unpaid subordinated fee, equity."""
    pav = month.prp + month.to_principal
    if deal.admin_rate or deal.admin_fixed:
        pav = _pay_admin_senior(deal, state, month, pav)
    extra_fee = torch.minimum(pav, state.fee_sr_unpaid)
    pav = pav - extra_fee
    state.fee_sr_unpaid = state.fee_sr_unpaid - extra_fee
    month.fee_sr_paid = month.fee_sr_paid + extra_fee
    pav = _interest_catch_up(deal, state, month, pav)
    month.principal_cure = deal.zero
    if month.in_rp:
        pav = _cures_and_reinvestment(deal, state, month, pav)
    else:
        seq = pay_in_order(deal, pav, state.N)
        pav = pav - rowsum(seq)
        _paydown(deal, state, month, seq)
        month.reinvest = month.diversion  # zero outside the reinvestment period
    pav = _pay_sub_fee(state, month, pav)
    month.equity_principal = _pay_admin_excess(deal, state, month, pav)


def _interest_catch_up(deal: _Deal, state: _State, month: _Month, pav: torch.Tensor) -> torch.Tensor:
    """Step 4-5: principal pays interest still unpaid of non-deferrable classes and of a deferrable class
    that is the most senior outstanding; deferrable classes capitalise the rest (PIK), the others carry
    it to next month. Returns the principal left (S,)."""
    eligible = _senior_most(deal, state.N)
    catch_up = pay_in_order(deal, pav, month.shortfall * eligible)
    pav = pav - rowsum(catch_up)
    month.int_paid = month.int_paid + catch_up
    shortfall = month.shortfall - catch_up
    month.capitalised = shortfall * deal.deferrable
    state.N = state.N + month.capitalised  # capitalised interest accrues at the coupon, counts in OC
    state.carried = shortfall * (~deal.deferrable)
    if deal.track_eod:  # interest of a non-deferrable or the senior-most outstanding class left unpaid
        month.eod_interest = (rowsum(shortfall * eligible) > deal.tol).to(torch.float64)
    return pav


def _senior_most(deal: _Deal, N: torch.Tensor) -> torch.Tensor:
    """(S, Kd) bool: classes whose unpaid interest must be paid (non-deferrable classes, and a
    deferrable class with nothing senior to its group outstanding)."""
    lead = deal.layout.leading
    if deal.grouped and lead is not None:  # the same as below: 0 for the leading group, then the classes above
        senior_out = F.pad(torch.cumsum(N, dim=1)[:, lead - 1:-1], (lead, 0))
    elif deal.grouped:  # balance senior to each class's group
        cum = torch.cumsum(N, dim=1)
        start = deal.group_start
        senior_out = torch.where(start > 0, cum[:, torch.clamp(start - 1, min=0)], 0.0)
    else:
        senior_out = torch.cumsum(N, dim=1) - N
    return (~deal.deferrable).unsqueeze(0) | (senior_out <= deal.tol.unsqueeze(1))


def _cures_and_reinvestment(deal: _Deal, state: _State, month: _Month, pav: torch.Tensor) -> torch.Tensor:
    """Step 4, reinvestment period: cure amounts still owed, paid from principal, then everything left
    (and the diverted interest) buys collateral at ``reinvestment_price``. Returns the principal left (0)."""
    # ACPA after the interest priority: diverted interest will be collateral, principal spent so far is gone
    acpa_now = month.acpa + month.diversion - (month.prp - pav)
    for _, b in deal.groups:
        k = b - 1
        used = _pay_cure(deal, state, month, k, acpa_now, True, pav)
        if used is None:
            continue
        pav = pav - used
        acpa_now = acpa_now - used
        month.principal_cure = month.principal_cure + used
    month.reinvest = pav + month.diversion
    left = deal.zero
    if deal.criteria:  # the collateral quality tests may keep part of the cash from buying: it pays the notes
        allowed = _criteria_cap(deal, month, month.reinvest)
        month.blocked = month.reinvest - allowed
        month.reinvest = allowed
        seq = pay_in_order(deal, month.blocked, state.N)
        left = month.blocked - rowsum(seq)
        _paydown(deal, state, month, seq)
    if deal.price_path:  # bought at the month's market price; a discount obligation is carried at cost
        price = deal.price * _price_move(deal, month.t)
        par = month.reinvest / price
        if deal.pool_wal is not None:
            _bucket_wal_after_purchase(deal, state, par)
        state.bucket = state.bucket + par
        state.bucket_carry = state.bucket_carry + par * torch.where(price < deal.discount_below, price, 1.0)
    else:
        par = month.reinvest / deal.price
        if deal.pool_wal is not None:
            _bucket_wal_after_purchase(deal, state, par)
        state.bucket = state.bucket + par
    return left


# ---- reinvestment criteria ----------------------------------------------------------------------------
# Decision: the reinvestment bucket mirrors the pool (no loan-level assets), so the collateral quality
# tests are on aggregates. Buying par q of collateral whose metric is b moves the collateral's metric m
# (par P) to the par-weighted mix (P m + q b) / (P + q). The indenture rule "satisfied after the purchase
# or, failing before, maintained or improved" then allows, for a maximum L (WARF, WAL; a minimum such as
# the WAS is the same rule on the negated metric): everything when b <= L; else q <= P (L - m)^+ / (b - L)
# while the test passes, and, once it fails, everything when b <= m (the mix moves towards b: improved or
# maintained) and nothing otherwise. The cap is continuous in m, P and the price except at b = m on the
# failing side, which is a gate (0/1 hard, smoothstep soft, on the relative gap (b - m) / max(|L|, |b|)).
# What the tests keep from buying pays the notes in order, as principal after the reinvestment period
# (indentures let uninvested principal wait in the principal account; the model has no such account).


def wal_limit(max_wal: float, max_wal_floor: float | None, t: int) -> float:
    """The WAL limit (years) on the payment date closing month t: ``max_wal``, or with ``max_wal_floor`` the
    limit stepped down by the years elapsed since the cut-off, ``max(max_wal - (t + 1) / 12, floor)``."""
    if max_wal_floor is None:
        return max_wal
    return max(max_wal - (t + 1) / 12.0, max_wal_floor)


def _criteria_metrics(deal: _Deal, state: _State, pool: _PoolMonth, month: _Month) -> None:
    """The collateral's par (pool + bucket, performing) and its WAS / WARF / WAL (S,) at the end of the month,
    before any purchase: the pool's metric (its path, or for the WAS the month's yield ``12 x interest /
    opening par`` less the base rate of a floating deal) mixed by par with the bucket's (every purchase is at
    the deal's ``reinvestment_*`` metric; the bucket's WAL ages a month each month). Without collateral the
    metric is the limit itself (then only purchases that pass the test are allowed)."""
    cfg, t = deal.config, month.t
    if deal.pool_wal is not None:
        state.bucket_wal = torch.clamp(state.bucket_wal - _ALPHA, min=0.0)
    bucket = state.bucket
    month.par_q = month.pool_bal + bucket
    month.blocked = deal.zero
    pos = month.par_q > deal.tol
    par = torch.where(pos, month.par_q, 1.0)

    def mix(pool_metric: torch.Tensor, bucket_metric: torch.Tensor | float, limit: float) -> torch.Tensor:
        return torch.where(pos, (month.pool_bal * pool_metric + bucket * bucket_metric) / par, limit)

    month.was = month.warf = month.wal = None
    if cfg.min_was is not None:
        if deal.pool_spread is not None:
            spread = deal.pool_spread[:, t]
        else:
            alive = state.pool_prev > deal.tol
            spread = torch.where(alive, 12.0 * pool.interest / torch.where(alive, state.pool_prev, 1.0), 0.0)
            if deal.base is not None:  # a floating deal: the pool floats over the same base rate
                spread = spread - deal.base[:, t]
        month.was = mix(spread, cfg.reinvestment_spread, cfg.min_was)
    if deal.pool_warf is not None:
        month.warf = mix(deal.pool_warf[:, t], cfg.reinvestment_warf, cfg.max_warf)
    if deal.pool_wal is not None:
        month.wal = mix(deal.pool_wal[:, t], state.bucket_wal, wal_limit(cfg.max_wal, cfg.max_wal_floor, t))


def _criteria_cap(deal: _Deal, month: _Month, cash: torch.Tensor) -> torch.Tensor:
    """The part of ``cash`` (S,) the reinvestment tests let buy collateral on this payment date: the
    smallest of each test's cap (:func:`_test_cap`), purchases at the month's reinvestment price."""
    cfg = deal.config
    price = deal.price * _price_move(deal, month.t) if deal.price_path else deal.price
    tests = ((month.was, cfg.min_was, cfg.reinvestment_spread, False),
             (month.warf, cfg.max_warf, cfg.reinvestment_warf, True),
             (month.wal, cfg.max_wal and wal_limit(cfg.max_wal, cfg.max_wal_floor, month.t), cfg.reinvestment_wal,
              True))
    allowed = cash
    for metric, limit, bought, upper in tests:
        if metric is not None:
            allowed = torch.minimum(allowed, _test_cap(deal, metric, limit, bought, upper, month.par_q, price, cash))
    return allowed


def _test_cap(deal: _Deal, m: torch.Tensor, limit: float, bought: float, upper: bool, par: torch.Tensor,
              price: torch.Tensor | float, cash: torch.Tensor) -> torch.Tensor:
    """Cash (S,) one test lets buy (the rule above the section): ``m`` the collateral's metric (S,), ``limit``
    its maximum (``upper``) or minimum, ``bought`` the purchases' metric, ``par`` (S,) the collateral par,
    ``price`` per unit of par."""
    if not upper:  # a minimum is a maximum of the negated metric
        m, limit, bought = -m, -limit, -bought
    if bought <= limit:  # the purchases pass: the mix passes, or improves towards them
        return cash
    room = par * torch.clamp(limit - m, min=0.0) / (bought - limit)  # par that keeps the mix within the limit
    improve = 1.0 - deal.gates.switch((bought - m) / max(abs(limit), abs(bought)))
    return improve * cash + (1.0 - improve) * torch.minimum(cash, price * room)


def _bucket_wal_after_purchase(deal: _Deal, state: _State, par: torch.Tensor) -> None:
    """The bucket's WAL (years) after buying ``par`` (S,) at the deal's ``reinvestment_wal``: par-weighted."""
    total = state.bucket + par
    pos = total > 0
    mixed = (state.bucket * state.bucket_wal + par * deal.config.reinvestment_wal) / torch.where(pos, total, 1.0)
    state.bucket_wal = torch.where(pos, mixed, 0.0)


def _accelerated_priority(deal: _Deal, state: _State, month: _Month) -> None:
    """Steps 3-5 after an event of default with acceleration: interest and principal proceeds are one
    pot, paid to admin expenses and the senior fee, then to each class (pari-passu group pro rata) its
    interest and then its whole balance (capitalised interest included), class after class; then the
    subordinated fee, admin expenses above the cap, and the rest to the equity (reported as equity
    principal). No cures, diversion or reinvestment. Interest still unpaid is capitalised (deferrable
    classes) or carried, as in the normal priority."""
    pot = _senior_expenses(deal, state, month, month.ip + month.prp)
    int_due = _interest_due(deal, state, month)
    int_paid_cols, short_cols = [], []
    for a, b in deal.groups:
        paid = pay_pro_rata(pot, int_due[:, a:b])
        pot = pot - (paid[:, 0] if b - a == 1 else rowsum(paid))
        int_paid_cols.append(paid)
        short_cols.append(int_due[:, a:b] - paid)
        prin = pay_pro_rata(pot, state.N[:, a:b])
        pot = pot - (prin[:, 0] if b - a == 1 else rowsum(prin))
        _paydown(deal, state, month, prin, first=a)
    month.int_paid = torch.cat(int_paid_cols, dim=1)
    shortfall = torch.cat(short_cols, dim=1)
    month.shortfall = shortfall
    month.capitalised = shortfall * deal.deferrable
    state.N = state.N + month.capitalised
    state.carried = shortfall * (~deal.deferrable)
    zero = deal.zero
    month.interest_cure, month.to_principal, month.diversion = zero, zero, zero
    month.principal_cure, month.reinvest, month.fee_sub_paid = zero, zero, zero
    month.eod_interest = zero  # the event has happened already
    pot = _pay_sub_fee(state, month, pot)
    month.equity_interest = zero
    month.equity_principal = _pay_admin_excess(deal, state, month, pot)


def _incentive_fee(deal: _Deal, state: _State, month: _Month) -> None:
    """The incentive fee: ``incentive_fee`` x the part of the month's equity distribution beyond what
    brings the equity to its hurdle IRR. The hurdle account starts at the equity notional, grows at the
    hurdle each month and falls by what the equity receives; while it is positive the equity is below
    its hurdle. Taken from equity interest first, then equity principal. Continuous in the cash, so the
    soft modes need no gate for it."""
    if not deal.incentive:
        month.incentive = deal.zero
        return
    dist = month.equity_interest + month.equity_principal
    over = torch.clamp(dist - torch.clamp(state.hurdle, min=0.0), min=0.0)
    fee = deal.incentive * over
    from_interest = torch.minimum(fee, month.equity_interest)
    month.equity_interest = month.equity_interest - from_interest
    month.equity_principal = month.equity_principal - (fee - from_interest)
    state.hurdle = state.hurdle - (dist - fee)
    month.incentive = fee


def _update_event_of_default(deal: _Deal, state: _State, month: _Month) -> None:
    """Events of default of a payment date (effective from the next one): the senior group's OC below
    ``eod_oc_trigger`` on the determination date (a sigmoid weight in the soft modes) or interest of a
    non-deferrable / senior-most class left unpaid (0/1 in every mode). Once declared it stays."""
    trig = month.eod_interest
    if deal.eod_trig is not None:
        ratio = coverage_ratio(month.acpa, month.tests.cum_bal[:, 0])  # column 0: the senior class or group
        trig = 1.0 - (1.0 - trig) * (1.0 - deal.gates.switch(deal.eod_trig - ratio))
    state.eod = 1.0 - (1.0 - state.eod) * (1.0 - trig)


def _close_month(state: _State, month: _Month) -> None:
    """Month end: a month's paydowns repay capitalised interest (this month's included) before note
    principal; cash and balances do not depend on this split."""
    # after a liquidation (horizon or call) the SPV holds no collateral
    state.pool_prev = torch.zeros_like(month.pool_bal) if month.last else month.pool_bal
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
    "admin_expenses": "admin_paid", "incentive_fee": "incentive", "accelerated": "accelerated",
    "called": "called", "reinvestment_blocked": "blocked",
}
#: outputs that are an end-of-month balance as it is: key -> :class:`_State` field
_STATE_FIELDS: dict[str, str] = {
    "deferred_balance": "deferred", "interest_shortfall": "carried", "balances": "N", "bucket_balance": "bucket",
    "eod": "eod",
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
    skip = ("initial_balances", "pool_balance_0") + (() if deal.criteria else CRITERIA_OUTPUTS)
    keys = [k for k in RESULT_KEYS if k in outputs and k not in skip]
    return _Recorder(keys=keys, eq_notional=sizes[deal.Kd].expand(deal.S, 1), months={k: [] for k in keys})


def _month_value(key: str, deal: _Deal, state: _State, month: _Month, eq_notional: torch.Tensor
                 ) -> torch.Tensor:
    """Output ``key`` of the month just closed: ``(S,)``, ``(S, Kd)`` or ``(S, N)``."""
    if key in _MONTH_FIELDS:
        return getattr(month, _MONTH_FIELDS[key])
    if key in ("was", "warf", "wal"):  # NaN where the deal has no such test
        value = getattr(month, key)
        return torch.full_like(deal.zero, float("nan")) if value is None else value
    if key in _STATE_FIELDS:
        return getattr(state, _STATE_FIELDS[key])
    tests = month.tests
    if key == "cash_in":
        return month.ip + month.prp
    if key == "collection_account":
        return state.ip_acct + state.prp_acct
    if key == "interest_reserve":
        return state.reserve
    if key == "note_rate":
        return month.rates.expand(deal.S, deal.Kd)
    if key == "note_margin":
        if deal.floating is None:
            return torch.zeros(deal.S, deal.Kd, dtype=torch.float64, device=deal.device)
        margins = deal.margins.expand(deal.S, deal.Kd) if state.margins is None else state.margins
        return margins * deal.floating
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
        return (rowsum(state.carried) > deal.tol).to(torch.float64)
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
    """``cash_in - (fees + interest + principal + capitalised repaid + reinvestment + equity)``, (S, T).

    ``cash_in`` is the cash released on each payment date (collections of the period), fees include
    admin expenses and the incentive fee when the result holds them (all outputs do).
    """
    out = (result["senior_fee"] + result["sub_fee"] + column_sum(result["interest"], 2)
           + column_sum(result["principal"], 2) + column_sum(result["deferred_interest_paid"], 2)
           + result["reinvestment"] + result["equity"])
    for key in ("admin_expenses", "incentive_fee"):
        if key in result:
            out = out + result[key]
    return result["cash_in"] - out
