"""Tranche analytics: loss, PD / EL / LGD, WAL, IRR, attachment points, break-even CDR.

Definitions (WATERFALL.md 2.11). Timeline: the notes are bought at the cut-off (time 0) for
``price x initial balance``; the cash of month t (t = 0..T-1) is received at the end of month t, i.e.
``t + 1`` months after the cut-off.

- principal loss ``l_k = min(1, unpaid balance incl. PIK at the horizon / N_k(0))`` (debt classes;
  the cap: see :func:`principal_loss`); for the
  equity class, whose cash has no promised amount, the cash-on-cash shortfall
  ``max(0, 1 - total cash received / notional)``.
- PV loss ``1 - PV_c(cash received) / PV_c(cash promised)`` at the class coupon. The promised cash of a
  par note at coupon c has PV exactly ``N_k(0)`` when discounted at c, so the denominator is the initial
  balance (timing and interest shortfalls are captured; NaN for equity). No cash beyond the promise
  exists in this waterfall (no call premium, carried interest is paid without interest), so the PV
  loss is >= 0 by definition; the rounding of the discounted sum (~1e-15 of par) is clipped: values in
  ``(-PV_LOSS_TOLERANCE, 0)`` become exactly 0, while anything more negative is left visible (it would
  be a bug, not rounding).
- ``PD = P(l > eps)``, ``EL = E[l]``, ``LGD = EL / PD`` (NaN when PD = 0).
- WAL ``= sum_t ((t+1)/12) Prin_t / sum_t Prin_t`` in years, principal actually received (capitalised
  interest repaid excluded for debt classes); NaN where no principal was received.
- IRR: monthly ``m`` solving ``-price N_k(0) + sum_t CF_t (1+m)^-(t+1) = 0``, annualised
  ``(1+m)^12 - 1``. Rule for the cases without a sign change: nothing received -> -1.0 (-100 %, the
  limit of the IRR as the cash goes to 0, as WATERFALL.md asks); a non-positive price or a negative
  cashflow (not produced by the waterfall) -> NaN. With a positive price and non-negative flows, some of
  them positive, the NPV is strictly decreasing in m and the root is unique, so bisection is exact.
- Attachment ``A_k = sum of the balances junior to k / collateral par``, detachment ``A_k + N_k / par``.
- Break-even CDR: the largest constant annual CDR (given CPR, severity, lag) at which the class's
  principal loss stays <= eps (first-dollar loss), found by a vectorised k-section search on
  deterministic runs of :func:`level_pay_pool`; also the CDR at which the loss reaches a target (1 %).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.deal.config import MAX_TRIGGER, Tranche, WaterfallConfig
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError
from creditsim.fixed_order import column_sum, elementwise
from creditsim.states import POOL_CF_TYPES

__all__ = [
    "closing_oc", "oc_cushions", "with_cushioned_triggers",
    "level_pay_pool",
    "annual_to_monthly",
    "irr",
    "irr_torch",
    "wal",
    "principal_loss",
    "pv_loss",
    "attachment_points",
    "tranche_outcomes",
    "tranche_summary",
    "breakeven_cdr",
    "parse_vector",
    "DEFAULT_EPSILON",
    "PV_LOSS_TOLERANCE",
]

#: a tranche "loses" in a scenario when its principal loss exceeds this fraction of its balance
DEFAULT_EPSILON = 1e-8

#: PV losses in (-PV_LOSS_TOLERANCE, 0) are rounding of a loss that is >= 0 by definition: set to 0
#: (float64 sums of a few hundred discounted flows are exact to ~1e-15 of par; 1e-9 leaves a margin
#: of a million while still exposing a real negative)
PV_LOSS_TOLERANCE = 1e-9


def annual_to_monthly(rate: float | np.ndarray) -> np.ndarray:
    """Annual hazard (CDR / CPR) to a monthly one: ``1 - (1 - annual)^(1/12)``."""
    r = np.asarray(rate, dtype=np.float64)
    return 1.0 - np.power(1.0 - np.clip(r, 0.0, 1.0), 1.0 / 12.0)


def level_pay_pool(
    balance: float,
    wac: float,
    term_months: int,
    horizon: int | None = None,
    cdr: float | np.ndarray = 0.0,
    cpr: float | np.ndarray = 0.0,
    severity: float | np.ndarray = 0.0,
    lag: int = 0,
) -> np.ndarray:
    """Deterministic pool cashflows of a level-pay (annuity) pool under constant CDR / CPR / severity.

    The pool is one representative fully amortising loan of ``balance`` at annual rate ``wac`` over
    ``term_months``. Each month, from the performing balance ``B`` at its start:

    1. defaults ``D = MDR x B`` (``MDR = 1 - (1 - CDR)^(1/12)``) happen first and pay nothing;
    2. the survivors pay interest ``wac/12 x (B - D)`` and the level-pay scheduled principal of
       ``B - D`` over the remaining term (all of it in the last month);
    3. prepayments ``SMM x (B - D - scheduled)`` (``SMM = 1 - (1 - CPR)^(1/12)``);
    4. the loss ``severity x D`` is recognised at default and the recovery ``(1 - severity) x D`` is
       received ``lag`` months later (recoveries due after the horizon are not in the array; the
       waterfall's liquidation realises them).

    ``cdr``, ``cpr`` and ``severity`` may be arrays of one shape ``(S,)`` for S scenarios at once, or
    ``(S, n)`` vectors: month ``t``'s rate is column ``t`` (the last column held after month ``n``),
    the way a structurer writes a default curve (e.g. 2 % for a year, then 6 %; :func:`parse_vector`),
    or a list of S such monthly vectors of different lengths (each holding its own last value).

    Returns:
        ``(S, horizon, 7)`` float64 in ``POOL_CF_TYPES`` order (S = 1 for scalars); months after
        the pool's maturity are zero. ``horizon`` defaults to ``term_months + lag``.
    """
    if not balance > 0 or not math.isfinite(balance):
        raise ConfigError(f"balance must be > 0, got {balance}")
    if not 0.0 <= wac < 1.0:
        raise ConfigError(f"wac must be an annual decimal in [0, 1), got {wac}")
    if int(term_months) != term_months or term_months < 1:
        raise ConfigError(f"term_months must be a whole number >= 1, got {term_months}")
    if int(lag) != lag or lag < 0:
        raise ConfigError(f"lag must be a whole number of months >= 0, got {lag}")
    term_months, lag = int(term_months), int(lag)
    horizon = term_months + lag if horizon is None else int(horizon)
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1 month, got {horizon}")
    cdr_a, cpr_a, sev_a = (_monthly_curve(v, name, horizon) for v, name in
                           ((cdr, "cdr"), (cpr, "cpr"), (severity, "severity")))
    try:
        cdr_a, cpr_a, sev_a = np.broadcast_arrays(cdr_a, cpr_a, sev_a)
    except ValueError:
        raise ConfigError(f"cdr, cpr and severity must describe the same number of scenarios, got "
                          f"{cdr_a.shape[0]}, {cpr_a.shape[0]} and {sev_a.shape[0]}") from None
    S = cdr_a.shape[0]
    mdr, smm = annual_to_monthly(cdr_a), annual_to_monthly(cpr_a)  # (S, horizon) each
    r = wac / 12.0
    out = np.zeros((S, horizon, len(POOL_CF_TYPES)), dtype=np.float64)
    bal = np.full(S, float(balance))
    recoveries = np.zeros((S, horizon + lag + term_months + 1))
    for t in range(min(horizon, term_months)):
        remaining = term_months - t
        d = mdr[:, t] * bal
        surv = bal - d
        if remaining == 1:
            sched = surv
        elif r == 0.0:
            sched = surv / remaining
        else:
            payment_factor = r / (1.0 - (1.0 + r) ** (-remaining))
            sched = surv * (payment_factor - r)
        prep = smm[:, t] * (surv - sched)
        out[:, t, 0] = r * surv
        out[:, t, 1] = sched
        out[:, t, 2] = prep
        out[:, t, 4] = d
        out[:, t, 5] = sev_a[:, t] * d
        recoveries[:, t + lag] += (1.0 - sev_a[:, t]) * d
        bal = surv - sched - prep
        out[:, t, 6] = bal
    out[:, :, 3] = recoveries[:, :horizon]
    return out


def _monthly_curve(value: float | np.ndarray, name: str, horizon: int) -> np.ndarray:
    """A rate given as a scalar, ``(S,)``, ``(S, n)`` monthly vectors or a list of S monthly vectors of
    any lengths -> ``(S, horizon)`` (each vector's last value held); ConfigError naming ``name`` unless
    every value is a decimal in [0, 1]."""
    if isinstance(value, (list, tuple)) and value and all(np.ndim(v) == 1 for v in value):
        return np.concatenate([_monthly_curve(np.asarray(v, dtype=np.float64)[None, :], name, horizon)
                               for v in value])
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 2 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        raise ConfigError(f"{name} must be decimals in [0, 1] (a scalar, one per scenario, or monthly vectors "
                          f"(scenarios, months)), got {np.array2string(arr, threshold=8)}")
    arr = arr.reshape(-1, 1) if arr.ndim < 2 else arr
    if arr.shape[1] < horizon:
        arr = np.concatenate([arr, np.repeat(arr[:, -1:], horizon - arr.shape[1], axis=1)], axis=1)
    return arr[:, :horizon]


#: months a rate vector may spell out (100 years; the deal tools' horizon bound)
MAX_VECTOR_MONTHS = 1200


def parse_vector(text: str, name: str = "vector") -> np.ndarray:
    """A rate vector in a structurer's notation -> monthly values (decimals).

    ``"0.02x12 0.06x12 0.03"``: 2 % for 12 months, 6 % for the next 12, then 3 % (the last value is
    held by :func:`level_pay_pool`); a single number is a constant. Segments ``VALUExMONTHS`` are
    separated by spaces. ConfigError naming ``name`` for anything else."""
    values: list[float] = []
    parts = str(text).split()
    if not parts:
        raise ConfigError(f"{name}: empty vector; expected e.g. 0.02 or '0.02x12 0.06x12 0.03'")
    for part in parts:
        value, _, months = part.partition("x")
        try:
            v, n = float(value), int(months) if months else 1
        except ValueError:
            raise ConfigError(f"{name}: cannot read {part!r}; expected VALUE or VALUExMONTHS, "
                              f"e.g. '0.02x12 0.06x12 0.03'") from None
        if not 0.0 <= v <= 1.0 or n < 1:
            raise ConfigError(f"{name}: {part!r} needs a decimal in [0, 1] and at least 1 month")
        if len(values) + n > MAX_VECTOR_MONTHS:
            raise ConfigError(f"{name}: the vector spells out more than {MAX_VECTOR_MONTHS} months; the last value "
                              f"is held anyway, so write the tail once (e.g. '0.02x12 0.06')")
        values += [v] * n
    return np.array(values, dtype=np.float64)


# ------------------------------------------------------------------------------------------ IRR
def _npv(m: np.ndarray, cf: np.ndarray, price: np.ndarray) -> np.ndarray:
    t = np.arange(1, cf.shape[1] + 1, dtype=np.float64)
    disc = np.exp(-np.log1p(m)[:, None] * t[None, :])
    return column_sum(cf * disc, 1) - price


def irr(cashflows: np.ndarray, price: float | np.ndarray, bisection_steps: int = 12, newton_steps: int = 60
        ) -> np.ndarray:
    """Annualised IRR per scenario of ``(S, T)`` monthly cash received against ``price`` paid at 0.

    In ``x = log(1 + m)`` the NPV ``f(x) = sum_t CF_t e^(-x t) - price`` is decreasing and convex.
    A few vectorised bisection steps over ``[-min(30, 700/T), log 11]`` (monthly m from about -100 %
    to +1000 %) bracket the root, then Newton steps from the bracket's left end, where ``f > 0``,
    converge monotonically from the left (convexity: no overshoot) to machine precision.
    Returns ``(S,)`` decimals; see the module docstring for the no-sign-change rule (-1.0 when
    nothing is received, NaN for a non-positive price or negative flows).
    """
    cf = np.asarray(cashflows, dtype=np.float64)
    if cf.ndim == 1:
        cf = cf[None, :]
    S = cf.shape[0]
    pr = np.broadcast_to(np.asarray(price, dtype=np.float64), (S,)).copy()
    out = np.full(S, np.nan)
    nothing = ~(cf > 0).any(axis=1)
    valid = (pr > 0) & ~(cf < 0).any(axis=1) & np.isfinite(cf).all(axis=1)
    out[valid & nothing] = -1.0
    todo = valid & ~nothing
    if todo.any():
        c, p = cf[todo], pr[todo]
        t = np.arange(1, c.shape[1] + 1, dtype=np.float64)
        # lowest log(1+m) whose discount factors stay finite over T months (annual IRR ~ -100 %)
        lo = np.full(c.shape[0], -min(30.0, 700.0 / c.shape[1]))
        hi = np.full(c.shape[0], math.log(11.0))
        for _ in range(bisection_steps):
            mid = 0.5 * (lo + hi)
            npv = column_sum(c * np.exp(-mid[:, None] * t[None, :]), 1) - p
            pos = npv > 0  # NPV decreases in the rate: a positive NPV means the root is higher
            lo = np.where(pos, mid, lo)
            hi = np.where(pos, hi, mid)
        x = lo
        # each scenario stops when ITS step is negligible: a batch-wide stop would give a scenario more
        # or fewer iterations (other last bits) depending on the chunk it is solved in
        done = np.zeros(len(x), dtype=bool)
        for _ in range(newton_steps):
            disc = c * np.exp(-x[:, None] * t[None, :])
            f = column_sum(disc, 1) - p
            slope = -column_sum(disc * t[None, :], 1)
            step = np.where(slope < 0, -f / np.where(slope < 0, slope, -1.0), 0.0)
            step = np.where(done, 0.0, np.clip(step, 0.0, None))  # iterates only move right, towards the root
            x = np.minimum(x + step, hi)
            done |= step <= 1e-15 * np.maximum(1.0, np.abs(x))
            if done.all():
                break
        out[todo] = np.expm1(12.0 * x)
    return out


def irr_torch(cashflows: torch.Tensor, price: torch.Tensor | float) -> torch.Tensor:
    """Differentiable annualised IRR, ``(S, T)`` cash and ``(S,)`` price -> ``(S,)``.

    The root is found without gradients (:func:`irr`); the gradient comes from the implicit function
    theorem through one Newton step ``m = m* - NPV(m*) / NPV'(m*)`` with ``m*`` and ``NPV'`` detached:
    its value is ``m*`` (NPV(m*) = 0) and ``dm/dx = -(dNPV/dx) / NPV'``, the exact sensitivity.
    Scenarios whose IRR is NaN or -100 % carry no gradient.
    """
    cf = cashflows if cashflows.ndim == 2 else cashflows.unsqueeze(0)
    pr = torch.as_tensor(price, dtype=torch.float64, device=cf.device)
    pr = pr.expand(cf.shape[0]) if pr.ndim == 0 else pr
    annual = irr(cf.detach().cpu().numpy(), pr.detach().cpu().numpy())
    ok = np.isfinite(annual) & (annual > -1.0)
    m_star = torch.as_tensor(np.where(ok, np.power(1.0 + np.where(ok, annual, 0.0), 1.0 / 12.0) - 1.0, 0.0),
                             dtype=torch.float64, device=cf.device)
    t = torch.arange(1, cf.shape[1] + 1, dtype=torch.float64, device=cf.device)
    # exp(-t log(1 + m)) through the position-independent path (a scenario's bits do not depend on its batch)
    disc = elementwise(torch.exp, -t * elementwise(torch.log1p, m_star).unsqueeze(1))
    npv = column_sum(cf * disc, 1) - pr
    dnpv = (-column_sum(t * cf.detach() * disc / (1.0 + m_star).unsqueeze(1), 1)).detach()
    safe = torch.where(torch.as_tensor(ok, device=cf.device), dnpv, torch.ones_like(dnpv))
    m = m_star - npv / safe
    annual_t = elementwise(torch.expm1, 12.0 * elementwise(torch.log1p, m))
    return torch.where(torch.as_tensor(ok, device=cf.device), annual_t,
                       torch.as_tensor(annual, dtype=torch.float64, device=cf.device))


# ----------------------------------------------------------------------------- per-tranche arrays
def wal(principal: np.ndarray) -> np.ndarray:
    """Weighted average life in years of ``(S, T)`` principal received; NaN where none."""
    p = np.asarray(principal, dtype=np.float64)
    years = np.arange(1, p.shape[1] + 1, dtype=np.float64) / 12.0
    total = column_sum(p, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, column_sum(p * years, 1) / np.where(total > 0, total, 1.0), np.nan)


def principal_loss(result: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(S, N)`` principal loss fractions in [0, 1].

    Debt: unpaid balance at the horizon incl. capitalised (PIK) interest / initial balance, capped at
    1. Including PIK makes unrepaid deferred interest a loss (a default event for PD); the cap keeps a
    wiped-out deferrable class at 100 % rather than above it (its full economic shortfall, interest
    included, is the PV loss). Equity: cash-on-cash shortfall ``max(0, 1 - cash / notional)``.
    """
    sizes = result["initial_balances"]
    debt_loss = torch.clamp(result["balances"][:, -1, :] / sizes[:-1], min=0.0, max=1.0)
    eq_cash = column_sum(result["equity"], 1)
    eq_loss = torch.clamp(1.0 - eq_cash / sizes[-1], min=0.0)
    return torch.cat([debt_loss, eq_loss.unsqueeze(1)], dim=1)


def pv_loss(result: dict[str, torch.Tensor], config: WaterfallConfig) -> np.ndarray:
    """``(S, Nd)`` PV loss of the debt classes at their coupons (see module docstring); a floating class
    is discounted at its own coupon path (the result's ``note_rate``; at the deal's flat base rate,
    :meth:`WaterfallConfig.nominal_coupon`, when the result does not hold it).

    Values in ``(-PV_LOSS_TOLERANCE, 0)`` (rounding) are returned as exactly 0.
    """
    cash = result["tranche_cashflows"][:, :, :-1].detach().cpu().numpy()
    sizes = result["initial_balances"][:-1].detach().cpu().numpy()
    t = np.arange(1, cash.shape[1] + 1, dtype=np.float64)
    out = np.empty((cash.shape[0], cash.shape[2]))
    # compounding once a payment period: the promised cash of a note paying every p months is then worth
    # exactly par (a monthly rate would count quarterly interest as paid late)
    p = config.months_per_period
    rates = result["note_rate"].detach().cpu().numpy() if "note_rate" in result else None
    for k, tr in enumerate(config.debt_tranches):
        if tr.floating and rates is not None:  # the scenario's own coupons: a rate move is not a credit loss
            disc = _period_discount(rates[:, :, k], p)
        else:
            disc = (1.0 + config.nominal_coupon(tr) * p / 12.0) ** (-t / p)
        out[:, k] = 1.0 - column_sum(cash[:, :, k] * disc, 1) / sizes[k]
    out[(out < 0.0) & (out > -PV_LOSS_TOLERANCE)] = 0.0
    return out


def _period_discount(rates: np.ndarray, period: int) -> np.ndarray:
    """``(S, T)`` discount factors of cash paid in month t at a note's own accruals ``rates`` ``(S, T)``
    (interest per unit of balance in each month): simple interest within a payment period, compounded
    on payment dates (every ``period`` months and the last month), so the promised cash of a note is
    worth exactly par whatever its coupon path."""
    S, T = rates.shape
    disc = np.empty((S, T))
    acc, growth = np.zeros(S), np.ones(S)
    for t in range(T):
        acc = acc + rates[:, t]
        if period == 1 or (t + 1) % period == 0 or t == T - 1:
            growth = growth * (1.0 + acc)
            acc = np.zeros(S)
        disc[:, t] = 1.0 / growth
    return disc


def attachment_points(config: WaterfallConfig, collateral_balance: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Attachment and detachment ``(N,)`` of every tranche as fractions of collateral par; the classes of
    a pari-passu group share the group's (losses reach them together, pro rata)."""
    par = config.initial_collateral if collateral_balance is None else float(collateral_balance)
    sizes = np.array([t.balance for t in config.tranches], dtype=np.float64)
    junior = np.cumsum(sizes[::-1])[::-1] - sizes
    att = junior / par
    det = att + sizes / par
    for a, b in config.pari_passu_groups:
        att[a:b], det[a:b] = att[b - 1], det[a]
    return att, det


def tranche_outcomes(result: dict[str, torch.Tensor], config: WaterfallConfig,
                     price: float = 1.0, collateral_balance: float | None = None) -> dict[str, dict[str, Any]]:
    """Per-tranche, per-scenario outcomes in the fields of ``simulation.results.TrancheResult``.

    Returns ``{name: {balance, losses (S,), irr (S,), wal (S,), coupon, attachment, detachment,
    equity, pv_losses (S,) or None}}`` so that a caller builds ``TrancheResult(name=name, **d)``.
    ``collateral_balance`` defaults to the mean pool balance at the cut-off of the run.
    """
    par = float(result["pool_balance_0"].detach().mean()) if collateral_balance is None else collateral_balance
    att, det = attachment_points(config, par)
    losses = principal_loss(result).detach().cpu().numpy()
    pvl = pv_loss(result, config)
    cash = result["tranche_cashflows"].detach().cpu().numpy()
    prin = result["tranche_principal"].detach().cpu().numpy()
    prin_debt = result["principal"].detach().cpu().numpy()
    sizes = result["initial_balances"].detach().cpu().numpy()
    out: dict[str, dict[str, Any]] = {}
    for k, tr in enumerate(config.tranches):
        out[tr.name] = {
            "balance": float(sizes[k]),
            "losses": losses[:, k],
            "irr": irr(cash[:, :, k], price * sizes[k]),
            "wal": wal(prin[:, :, k] if tr.equity else prin_debt[:, :, k]),
            "coupon": float("nan") if tr.equity else config.nominal_coupon(tr),
            "attachment": float(att[k]),
            "detachment": float(det[k]),
            "equity": tr.equity,
            "pv_losses": None if tr.equity else pvl[:, k],
        }
    return out


def tranche_summary(result: dict[str, torch.Tensor], config: WaterfallConfig, price: float = 1.0,
                    epsilon: float = DEFAULT_EPSILON, collateral_balance: float | None = None) -> pd.DataFrame:
    """One row per tranche: balance, attachment, detachment, PD, EL, LGD, PV EL, mean WAL, IRR stats."""
    rows = []
    for name, o in tranche_outcomes(result, config, price, collateral_balance).items():
        loss = o["losses"]
        pd_ = float(np.mean(loss > epsilon))
        el = float(np.mean(loss))
        irr_v = o["irr"][np.isfinite(o["irr"])]
        wal_v = o["wal"][np.isfinite(o["wal"])]
        rows.append({
            "tranche": name,
            "balance": o["balance"],
            "coupon": o["coupon"],
            "attachment": o["attachment"],
            "detachment": o["detachment"],
            "pd": pd_,
            "expected_loss": el,
            "lgd": el / pd_ if pd_ > 0 else float("nan"),
            "pv_expected_loss": float("nan") if o["pv_losses"] is None else float(np.mean(o["pv_losses"])),
            "wal_years": float(np.mean(wal_v)) if wal_v.size else float("nan"),
            "irr_mean": float(np.mean(irr_v)) if irr_v.size else float("nan"),
            "irr_median": float(np.median(irr_v)) if irr_v.size else float("nan"),
        })
    return pd.DataFrame(rows).set_index("tranche")


def breakeven_cdr(
    config: WaterfallConfig,
    cpr: float,
    severity: float,
    lag: int,
    wac: float = 0.08,
    term_months: int = 60,
    horizon: int | None = None,
    collateral_balance: float | None = None,
    target_loss: float = DEFAULT_EPSILON,
    points: int = 16,
    rounds: int = 6,
) -> pd.Series:
    """Largest constant annual CDR at which each debt class's principal loss stays <= ``target_loss``.

    Deterministic :func:`level_pay_pool` runs (hard waterfall) searched by k-section: each round runs
    ``points`` CDRs for every class at once (one batched waterfall call) and shrinks each class's
    bracket ``[lo, hi]`` (loss <= target at lo, > target at hi) by a factor ``points + 1``; after 6
    rounds of 16 the bracket is < 1e-7 wide. Monotonicity of the loss in the CDR is assumed (true for
    sequential-pay debt). A class that never reaches the target returns 1.0 (100 % CDR).

    Returns:
        ``pd.Series`` indexed by debt class name: the CDR (annual decimal) at the bracket's low end.
    """

    if not 0 <= target_loss < 1:
        raise ConfigError(f"target_loss must be in [0, 1), got {target_loss}")
    par = config.initial_collateral if collateral_balance is None else float(collateral_balance)
    names = [t.name for t in config.debt_tranches]
    Kd = len(names)

    def losses(cdrs: np.ndarray) -> np.ndarray:
        pool = level_pay_pool(par, wac, term_months, horizon, cdr=cdrs, cpr=cpr, severity=severity, lag=lag)
        with torch.no_grad():
            res = run_waterfall(pool, config, initial_balance=par, mode="hard", outputs=("balances", "equity"))
        return principal_loss(res)[:, :Kd].cpu().numpy()

    lo = np.zeros(Kd)
    hi = np.ones(Kd)
    ends = losses(np.array([0.0, 1.0]))
    never = ends[1] <= target_loss
    always = ends[0] > target_loss
    frac = np.arange(1, points + 1) / (points + 1)
    for _ in range(rounds):
        grid = lo[:, None] + (hi - lo)[:, None] * frac[None, :]  # (Kd, points)
        loss = losses(grid.reshape(-1)).reshape(Kd, points, Kd)
        own = loss[np.arange(Kd), :, np.arange(Kd)]  # (Kd, points): class k's loss on its own grid
        ok = own <= target_loss
        # last grid point still at or below the target (monotone loss): new bracket around it
        n_ok = ok.sum(axis=1)
        new_lo = np.where(n_ok > 0, grid[np.arange(Kd), np.maximum(n_ok - 1, 0)], lo)
        new_hi = np.where(n_ok < points, grid[np.arange(Kd), np.minimum(n_ok, points - 1)], hi)
        lo, hi = new_lo, new_hi
    result = np.where(never, 1.0, np.where(always, 0.0, lo))
    return pd.Series(result, index=pd.Index(names, name="tranche"), name="breakeven_cdr")


def closing_oc(config: WaterfallConfig, balances: Any = None, collateral: float | None = None) -> np.ndarray:
    """``(Nd,)`` OC ratio of every debt class at closing: collateral par over the balance of the class and
    everything senior (a pari-passu group's members share the group's ratio). ``balances`` ``(N,)``
    (equity last) default to the deal's; ``collateral`` to its ``initial_collateral``."""
    sizes = np.array([t.balance for t in config.tranches] if balances is None else balances, dtype=np.float64)
    par = config.initial_collateral if collateral is None else float(collateral)
    cum = np.cumsum(sizes[:-1])
    ends = np.array([b - 1 for a, b in config.pari_passu_groups for _ in range(a, b)])
    return par / cum[ends]


def oc_cushions(config: WaterfallConfig, collateral: float | None = None) -> np.ndarray:
    """``(Nd,)`` OC cushion of every debt class at closing, ``closing OC / trigger - 1`` (NaN for a class
    without an OC test)."""
    oc = closing_oc(config, collateral=collateral)
    trig = np.array([np.nan if t.oc_trigger is None else t.oc_trigger for t in config.debt_tranches])
    return oc / trig - 1.0


def with_cushioned_triggers(config: WaterfallConfig, balances: Any, cushions: np.ndarray,
                            collateral: float | None = None) -> WaterfallConfig:
    """The deal with tranche ``balances`` ``(N,)`` and OC triggers moved so that every class keeps its
    closing ``cushions`` ``(Nd,)`` (:func:`oc_cushions`): ``trigger = closing OC / (1 + cushion)``,
    within [1, MAX_TRIGGER]. This is how structurers set triggers: relative to the closing ratio, so resizing a
    class does not leave its test a knife edge. The interest-diversion trigger moves by the same factor
    as the most junior class's OC trigger; IC triggers stay (they depend on coupons, not on sizes)."""
    sizes = np.asarray(balances, dtype=np.float64)
    oc = closing_oc(config, sizes, collateral)
    tranches, old_junior, new_junior = [], None, None
    for k, t in enumerate(config.tranches):
        change: dict[str, Any] = {"balance": float(sizes[k])}
        if not t.equity and t.oc_trigger is not None and np.isfinite(cushions[k]):
            # within the deal's valid range: a sliver of a class (a sizing trial) can have a closing OC of 100
            change["oc_trigger"] = min(max(1.0, float(oc[k] / (1.0 + cushions[k]))), MAX_TRIGGER)
            old_junior, new_junior = t.oc_trigger, change["oc_trigger"]
        tranches.append(Tranche(**{**t.__dict__, **change}))
    diversion = config.interest_diversion_trigger
    if diversion is not None and old_junior is not None:
        diversion = min(max(1.0, diversion * new_junior / old_junior), MAX_TRIGGER)
    return replace(config, tranches=tranches, interest_diversion_trigger=diversion)

