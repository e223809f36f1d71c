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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from creditsim.errors import ConfigError, DataError
from creditsim.fixed_order import column_sum, elementwise
from creditsim.states import POOL_CF_TYPES
from creditsim.deal.config import WaterfallConfig

__all__ = ["MODES", "run_waterfall", "cash_conservation_error", "infer_initial_balance", "RESULT_KEYS",
           "TRANCHE_OUTPUTS"]

MODES: tuple[str, ...] = ("hard", "soft", "straight_through")
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
    """The waterfall on validated inputs: ``cf`` (S, T, 7), ``p0`` (S,), ``sizes`` (N,)."""
    dev = cf.device
    S, T, _ = cf.shape
    debt = config.debt_tranches
    Kd = len(debt)
    gates = _Gates(mode, tau)

    rates = torch.tensor([t.coupon * _ALPHA for t in debt], dtype=torch.float64, device=dev)  # (Kd,)
    deferrable = torch.tensor([t.deferrable for t in debt], dtype=torch.bool, device=dev)
    oc_trig = [t.oc_trigger for t in debt]
    ic_trig = [t.ic_trigger for t in debt]
    sr_rate = config.senior_fee_rate * _ALPHA
    sub_rate = config.sub_fee * _ALPHA
    reinv_coupon = None if config.reinvestment_coupon is None else config.reinvestment_coupon * _ALPHA
    price = config.reinvestment_price
    discount = min(price, 1.0)  # OC value per unit of reinvested par: purchase price when bought below par
    div_trig = config.interest_diversion_trigger
    tol = 1e-9 * p0  # (S,) "zero balance" tolerance, relative to the deal size
    zero = torch.zeros(S, dtype=torch.float64, device=dev)

    # Without autograd (no input requires grad) the note balances are updated in place and each month's
    # outputs are copied into preallocated (T, S, ...) buffers while they are hot in cache; with autograd
    # the same arithmetic runs out of place and the months are stacked at the end. Both paths perform
    # the same floating-point operations, so their results are bitwise equal.
    inplace = not (cf.requires_grad or p0.requires_grad or sizes.requires_grad)

    # state (S,) / (S, Kd)
    N = sizes[:Kd].unsqueeze(0).expand(S, Kd)
    if inplace:
        N = N.clone()
    deferred = torch.zeros(S, Kd, dtype=torch.float64, device=dev)
    carried = torch.zeros(S, Kd, dtype=torch.float64, device=dev)
    fee_sr_unpaid, fee_sub_unpaid = zero, zero
    bucket, bucket_pending = zero, zero
    pool_pending = zero  # expected recoveries of defaulted pool par not yet received
    pool_prev = p0

    # per-month records of the requested keys: (T, S, ...) buffers (in place) or lists of months
    rec_keys = [k for k in RESULT_KEYS if k in outputs and k not in ("initial_balances", "pool_balance_0")]
    buffers: dict[str, torch.Tensor] = {}
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in rec_keys}
    eq_notional = sizes[Kd].expand(S, 1)

    # (T, K, S): each month's flow of one type is a contiguous (S,) vector
    cf_tks = cf.permute(1, 2, 0).contiguous()
    # coverage tests of all classes at once: (Kd,) triggers (0 where a class has no such test, its
    # column is then never used) and masks of the classes that have one
    oc_has = torch.tensor([x is not None for x in oc_trig], dtype=torch.bool, device=dev)
    ic_has = torch.tensor([x is not None for x in ic_trig], dtype=torch.bool, device=dev)
    oc_trig_v = torch.tensor([0.0 if x is None else x for x in oc_trig], dtype=torch.float64, device=dev)
    ic_trig_v = torch.tensor([0.0 if x is None else x for x in ic_trig], dtype=torch.float64, device=dev)

    def class_gates(trig: list[float | None], trig_v: torch.Tensor, ratio: torch.Tensor, turbo: bool = False
                    ) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """Fail weights ``(S, Kd)`` of one kind of test and, per class, its column or None when the class
        has no test or, in the exact modes, no scenario fails it (the cure is then zero, and so is the
        straight-through gradient ``d soft x cure``; turbo diversion is not zero, keep it)."""
        if all(x is None for x in trig):
            return None, [None] * Kd
        g = gates.fail(trig_v - ratio)
        if mode == "soft" or (turbo and mode == "straight_through"):
            any_fail = [True] * Kd
        else:
            any_fail = (g.detach() > 0.5).any(dim=0).tolist()
        return g, [g[:, k] if trig[k] is not None and any_fail[k] else None for k in range(Kd)]

    def pass_weights(g: torch.Tensor | None, has: torch.Tensor) -> torch.Tensor:
        """``1 - fail`` for classes with the test, 1 for the others."""
        if g is None:
            return torch.ones(S, Kd, dtype=torch.float64, device=dev)
        return torch.where(has, 1.0 - g, 1.0)

    for t in range(T):
        interest, sched, prepay, recov, defpar, loss, pool_bal = cf_tks[t].unbind(dim=0)
        last = config.liquidate_at_horizon and t == T - 1
        in_rp = t < config.reinvestment_period and not last

        # ---- pool-mirroring rates of the period (from the original pool's realised flows)
        alive = pool_prev > tol
        base = torch.where(alive, pool_prev, torch.ones_like(pool_prev))
        d_rate = torch.where(alive, defpar / base, zero)
        p_rate = torch.where(alive, prepay / base, zero)
        s_rate = torch.where(alive, sched / base, torch.ones_like(base))  # pool gone: bucket matures
        total = torch.clamp(d_rate + p_rate + s_rate, min=1.0)
        d_rate, p_rate, s_rate = d_rate / total, p_rate / total, s_rate / total
        y_rate = torch.where(alive, interest / base, zero)
        has_def = defpar > 0
        severity = torch.where(has_def, loss / torch.where(has_def, defpar, torch.ones_like(defpar)), zero)
        severity = torch.clamp(severity, 0.0, 1.0)
        pending_pre = torch.clamp(pool_pending + defpar - loss, min=0.0)
        has_pend = pending_pre > 0
        rec_frac = torch.where(has_pend, recov / torch.where(has_pend, pending_pre, torch.ones_like(pending_pre)), zero)
        rec_frac = torch.clamp(rec_frac, 0.0, 1.0)
        pool_pending = torch.clamp(pending_pre - recov, min=0.0)

        # ---- reinvestment bucket collections
        bucket_start = bucket
        b_int = bucket * (y_rate if reinv_coupon is None else reinv_coupon)
        b_def, b_pre, b_sch = bucket * d_rate, bucket * p_rate, bucket * s_rate
        b_pending_pre = bucket_pending + b_def * (1.0 - severity)
        b_rec = rec_frac * b_pending_pre
        bucket_pending = b_pending_pre - b_rec
        bucket = bucket - b_def - b_pre - b_sch

        ip = interest + b_int
        prp_coll = sched + prepay + recov + b_sch + b_pre + b_rec
        # OC numerator (WATERFALL.md 2.4): collateral bought below par counts at its purchase price
        acpa = pool_bal + discount * bucket + pool_pending + bucket_pending + prp_coll
        if last:
            liquidation = config.liquidation_price * (pool_bal + bucket) + pool_pending + bucket_pending
            bucket, bucket_pending, pool_pending = zero, zero, zero
            # the collateral is sold: the coverage tests see the cash it fetched, not its par
            acpa = prp_coll + liquidation
        else:
            liquidation = zero
        prp = prp_coll + liquidation
        basis = pool_prev + bucket_start  # collateral par at the start of the month

        # ---- determination date (pre-distribution balances)
        fee_sr_due = sr_rate * basis + fee_sr_unpaid
        ip_net = torch.clamp(ip - fee_sr_due, min=0.0)
        cum_bal = torch.cumsum(N, dim=1)
        cum_due = torch.cumsum(N * rates, dim=1)
        oc_ratio = _ratio(acpa.unsqueeze(1).expand(S, Kd), cum_bal)
        ic_ratio = _ratio(ip_net.unsqueeze(1).expand(S, Kd), cum_due)
        oc_g, oc_fail = class_gates(oc_trig, oc_trig_v, oc_ratio)
        if t < config.ic_first_period:  # IC tests not yet active: ratios reported, every class passes
            ic_g, ic_fail = None, [None] * Kd
        else:
            ic_g, ic_fail = class_gates(ic_trig, ic_trig_v, ic_ratio, turbo=config.ic_cure == "turbo")

        deferred_start = deferred
        paid_down = torch.zeros(S, Kd, dtype=torch.float64, device=dev)

        def paydown(x: torch.Tensor, first: int = 0) -> None:
            """Pay classes first..first+m-1 down by ``x`` (S, m); split into capitalised / principal at
            month end."""
            nonlocal N, paid_down
            if inplace:
                N[:, first:first + x.shape[1]] -= x
                paid_down[:, first:first + x.shape[1]] += x
                return
            if x.shape[1] < Kd:
                x = F.pad(x, (first, Kd - x.shape[1] - first))
            N = N - x
            paid_down = paid_down + x

        def cure_need(k: int, acpa_now: torch.Tensor, principal_funded: bool, avail: torch.Tensor
                      ) -> torch.Tensor | None:
            """Paydown amount (S,) that cures class k's failing tests on current balances."""
            need = None
            if oc_fail[k] is not None:
                theta = oc_trig[k]
                lk = _rowsum(N[:, : k + 1])
                if principal_funded:  # the cash paid out also leaves the numerator
                    x = torch.clamp((theta * lk - acpa_now) / max(theta - 1.0, 1e-12), min=0.0)
                else:
                    x = torch.clamp(lk - acpa_now / theta, min=0.0)
                need = oc_fail[k] * x
            if ic_fail[k] is not None:
                if config.ic_cure == "turbo" and not principal_funded:
                    x = avail
                else:
                    excess = _rowsum(N[:, : k + 1] * rates[: k + 1]) - ip_net / ic_trig[k]
                    x = _ic_paydown(N[:, : k + 1], rates[: k + 1], torch.clamp(excess, min=0.0))
                x = ic_fail[k] * x
                need = x if need is None else torch.maximum(need, x)
            return need

        # ---- interest priority of payments
        avail = ip
        fee_sr_paid = torch.minimum(avail, fee_sr_due)
        avail = avail - fee_sr_paid
        fee_sr_unpaid = fee_sr_due - fee_sr_paid
        int_due = N * rates + carried
        int_paid_cols, short_cols = [], []
        interest_cure = zero
        for k in range(Kd):
            paid = torch.minimum(avail, int_due[:, k])
            avail = avail - paid
            int_paid_cols.append(paid)
            short_cols.append(int_due[:, k] - paid)
            need = cure_need(k, acpa, False, avail)
            if need is not None:
                cure = _pay_sequential(torch.minimum(need, avail), N[:, : k + 1])
                used = _rowsum(cure)
                avail = avail - used
                interest_cure = interest_cure + used
                paydown(cure)
            if debt[k].deferrable and config.pay_deferred_from_interest:
                rep = torch.minimum(avail, torch.clamp(deferred_start[:, k] - paid_down[:, k], min=0.0))
                avail = avail - rep
                paydown(rep.unsqueeze(1), first=k)
        int_paid = torch.stack(int_paid_cols, dim=1)
        shortfall = torch.stack(short_cols, dim=1)
        # liquidation period: the notes are repaid (or written off) now, so interest left after note
        # interest goes to their principal before any subordinated fee or equity distribution
        to_principal = avail if last else zero
        avail = avail - to_principal

        fee_sub_paid = zero

        def pay_sub_fee(pot: torch.Tensor) -> torch.Tensor:
            nonlocal fee_sub_unpaid, fee_sub_paid
            paid = torch.minimum(pot, fee_sub_unpaid)
            fee_sub_unpaid = fee_sub_unpaid - paid
            fee_sub_paid = fee_sub_paid + paid
            return pot - paid

        fee_sub_unpaid = fee_sub_unpaid + sub_rate * basis
        if config.sub_fee_before_diversion:
            avail = pay_sub_fee(avail)
        diversion = zero
        if in_rp and div_trig is not None:
            l_all = _rowsum(N)
            g = gates.fail(div_trig - _ratio(acpa, cum_bal[:, -1]))
            # cash at par counts in the numerator: buying x of collateral lifts ACPA by x
            diversion = torch.minimum(config.interest_diversion_share * avail,
                                      g * torch.clamp(div_trig * l_all - acpa, min=0.0))
            avail = avail - diversion
        if not config.sub_fee_before_diversion:
            avail = pay_sub_fee(avail)
        equity_interest = avail

        # ---- principal priority of payments
        pav = prp + to_principal
        extra_fee = torch.minimum(pav, fee_sr_unpaid)
        pav = pav - extra_fee
        fee_sr_unpaid = fee_sr_unpaid - extra_fee
        fee_sr_paid = fee_sr_paid + extra_fee
        senior_out = torch.cumsum(N, dim=1) - N
        eligible = (~deferrable).unsqueeze(0) | (senior_out <= tol.unsqueeze(1))
        catch_up = _pay_sequential(pav, shortfall * eligible)
        pav = pav - _rowsum(catch_up)
        int_paid = int_paid + catch_up
        shortfall = shortfall - catch_up
        capitalised = shortfall * deferrable
        N = N + capitalised
        carried = shortfall * (~deferrable)
        principal_cure = zero
        if in_rp:
            acpa_now = acpa + diversion - (prp - pav)
            for k in range(Kd):
                need = cure_need(k, acpa_now, True, pav)
                if need is None:
                    continue
                cure = _pay_sequential(torch.minimum(need, pav), N[:, : k + 1])
                used = _rowsum(cure)
                pav = pav - used
                acpa_now = acpa_now - used
                principal_cure = principal_cure + used
                paydown(cure)
            reinvest = pav + diversion
            bucket = bucket + reinvest / price
            pav = zero
        else:
            seq = _pay_sequential(pav, N)
            pav = pav - _rowsum(seq)
            paydown(seq)
            reinvest = diversion  # zero outside the reinvestment period
        pav = pay_sub_fee(pav)
        equity_principal = pav
        pool_prev = pool_bal
        # a month's paydowns repay capitalised interest (incl. this month's) before note principal
        deferred_paid = torch.minimum(paid_down, deferred_start + capitalised)
        principal_paid = paid_down - deferred_paid
        deferred = deferred_start + capitalised - deferred_paid

        month = {
            "cash_in": lambda: ip + prp,
            "interest_proceeds": lambda: ip,
            "principal_proceeds": lambda: prp,
            "liquidation": lambda: liquidation,
            "senior_fee": lambda: fee_sr_paid,
            "sub_fee": lambda: fee_sub_paid,
            "interest": lambda: int_paid,
            "principal": lambda: principal_paid,
            "deferred_interest_paid": lambda: deferred_paid,
            "deferred_interest": lambda: capitalised,
            "deferred_balance": lambda: deferred,
            "interest_shortfall": lambda: carried,
            "balances": lambda: N,
            "oc_ratio": lambda: torch.where(oc_has, oc_ratio, float("nan")),
            "oc_pass": lambda: pass_weights(oc_g, oc_has),
            "ic_ratio": lambda: torch.where(ic_has, ic_ratio, float("nan")),
            "ic_pass": lambda: pass_weights(ic_g, ic_has),
            "interest_cure": lambda: interest_cure,
            "principal_cure": lambda: principal_cure,
            "interest_diversion": lambda: diversion,
            "reinvestment": lambda: reinvest,
            "bucket_balance": lambda: bucket,
            "collateral_balance": lambda: (zero if last else pool_bal) + bucket,
            "acpa": lambda: acpa,
            "equity_interest": lambda: equity_interest,
            "equity_principal": lambda: equity_principal,
            "event_of_default": lambda: (_rowsum(carried) > tol).to(torch.float64),
            "equity": lambda: equity_interest + equity_principal,
            "tranche_cashflows": lambda: torch.cat(
                [int_paid + principal_paid + deferred_paid, (equity_interest + equity_principal).unsqueeze(1)],
                dim=1),
            "tranche_interest": lambda: torch.cat([int_paid, equity_interest.unsqueeze(1)], dim=1),
            "tranche_principal": lambda: torch.cat(
                [principal_paid + deferred_paid, equity_principal.unsqueeze(1)], dim=1),
            "tranche_balance": lambda: torch.cat([N, eq_notional], dim=1),
        }
        for key in rec_keys:
            value = month[key]()
            if not inplace:
                rec[key].append(value)
                continue
            if t == 0:
                buffers[key] = torch.empty((T, *value.shape), dtype=value.dtype, device=dev)
            buffers[key][t].copy_(value)

    # (T, S, ...) -> (S, T, ...) views are free; stacking along a new leading axis is a contiguous copy
    if inplace:
        out = {k: v.movedim(0, 1) for k, v in buffers.items()}
    else:
        out = {k: torch.stack(v, dim=0).movedim(0, 1) for k, v in rec.items()}
    out["initial_balances"] = sizes
    out["pool_balance_0"] = p0
    return {k: v for k, v in out.items() if k in outputs or k in ("initial_balances", "pool_balance_0")}


def cash_conservation_error(result: dict[str, torch.Tensor]) -> torch.Tensor:
    """``cash_in - (fees + interest + principal + capitalised repaid + reinvestment + equity)``, (S, T)."""
    out = (result["senior_fee"] + result["sub_fee"] + column_sum(result["interest"], 2)
           + column_sum(result["principal"], 2) + column_sum(result["deferred_interest_paid"], 2)
           + result["reinvestment"] + result["equity"])
    return result["cash_in"] - out
