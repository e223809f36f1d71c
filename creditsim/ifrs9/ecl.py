"""Expected credit loss (IFRS 9 §5.5, CECL's PD x LGD method), vectorised over loans x periods x scenarios.

For loan ``l``, scenario ``s`` and periods ``k = 1..T_l`` (``settings.period``; the last may be partial):

    ECL_{l,s} = sum_k  PDmarg_{l,s}(k) * LGD_{l,s}(k) * EAD_l(k) * DF_l(tau_k)

- **PD** (default-only survival ``S_d`` from the PD provider) and **prepayment as a competing risk**,
  treatment "all-cause survival": ``PDmarg(k) = S_p(a_k) [S_d(a_k) - S_d(b_k)]``, the probability that
  the loan is still on the books (neither defaulted nor prepaid) at the start ``a_k`` of the period and
  defaults in it; ``S_p(m) = (1 - SMM)^m`` with ``SMM = 1 - (1 - CPR)^(1/12)``. Within a period default
  comes before prepayment (prepayments are taken at period ends), so monthly periods are the exact
  discrete-time competing-risks model and longer ones approximate it. The exposure is the
  *contractual* balance: the prepayment survival is in the PD, never also in the EAD (not both).
  Staging uses the default-only lifetime PD (credit risk, not the prepayment behaviour).
- **EAD** from the contractual schedule of :func:`creditsim.loans.schedule.amortization_schedule`
  (annuity / linear / bullet / interest-only, cent-rounded like a servicer's), per ``ead_timing``, plus
  one month's accrued interest (``accrued_interest``) and ``ccf * undrawn`` while the facility lives.
- **DF** ``(1 + EIR_eff)^(-tau / 12)``, tau in months per ``default_timing``; EIR by rate type
  (fixed: original, floating: current, POCI: credit-adjusted; :meth:`EclLoans.discount_eir`); 1 with
  ``discount=False`` (CECL without DCF).
- **CECL** (``framework="cecl"``): every loan carries its lifetime ECL; stages are still reported.
- **Horizons**: 12-month ECL sums the periods ending within 12 months (the lifetime loss of defaults in
  the next 12 months, B5.5.43); lifetime ECL all periods to maturity / behavioural life.
- **Stage 3** (> 90 dpd when ``default_90dpd``, ``defaulted``, or in Stage 3 probation): PD = 1 at the
  reporting date, ``ECL = LGD_in_default * EAD(0)``, 12-month = lifetime.
- **POCI**: lifetime ECL always, allowance = lifetime ECL - ``poci_initial_ecl`` (may be negative, 5.5.14).
- **Scenarios**: ECL per scenario, weighted as *outcomes* ``sum_s w_s ECL_s`` (5.5.17), never the ECL of
  a weighted macro path. Staging on the weighted lifetime PD (``staging="weighted"``, one stage) or per
  scenario (each scenario at its own stage; the reported stage is the worst over scenarios with weight > 0).

Reproducibility: loans are processed in chunks of ``chunk_size``; every per-loan number is computed
elementwise or by a fixed-order sum over periods / scenarios (:func:`creditsim.fixed_order.column_sum`),
so results are bit-identical for any chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditsim.errors import ConfigError, check_positive_int
from creditsim.fixed_order import column_sum
from creditsim.ifrs9.loans import EclLoans
from creditsim.ifrs9.settings import SICR_TRIGGERS, EclSettings
from creditsim.ifrs9.staging import stage_loans
from creditsim.loans.schedule import AMORTIZATION_CODES

__all__ = ["EclResult", "expected_credit_loss", "audit_chunks", "effective_eir", "contract_balance"]

#: audit table columns: scenario index, period k (0 = a Stage 3 loan's single row at the reporting date),
#: its first / last month after the reporting date, tau (default time, years), survival (neither defaulted
#: nor prepaid at the period start), marginal_pd (all-cause survival x default-only hazard), ead, lgd,
#: discount_factor, ecl (their product) and in_12m (the period counts towards the 12-month ECL)
AUDIT_COLUMNS = ("loan_id", "scenario", "period", "month_start", "month_end", "tau_years", "survival",
                 "marginal_pd", "ead", "lgd", "discount_factor", "ecl", "in_12m")


@dataclass(frozen=True)
class EclResult:
    """Result of :func:`expected_credit_loss`. ``(S, L)`` arrays are per scenario and loan, currency units.

    ``stage`` ``(L,)`` 1/2/3 (per-scenario staging: worst over scenarios with weight > 0),
    ``stage_by_scenario`` ``(S, L)``, ``triggers`` (L x :data:`SICR_TRIGGERS` booleans),
    ``lifetime_pd`` ``(S, L)`` default-only PD over the remaining life, ``origination_pd`` ``(L,)`` (the
    SICR reference; NaN when no PD threshold is set), ``ecl_12m`` / ``ecl_lifetime`` ``(S, L)``,
    ``ecl_by_scenario`` ``(S, L)`` the allowance at each scenario's stage, ``ecl`` ``(L,)`` the
    probability-weighted allowance, ``ead`` ``(L,)`` exposure at the reporting date, ``audit`` (loan x
    period x scenario rows, when asked for).
    """

    loan_id: np.ndarray
    scenarios: tuple[str, ...]
    weights: np.ndarray
    settings: EclSettings
    stage: np.ndarray
    stage_by_scenario: np.ndarray
    poci: np.ndarray
    triggers: pd.DataFrame
    lifetime_pd: np.ndarray
    origination_pd: np.ndarray
    ecl_12m: np.ndarray
    ecl_lifetime: np.ndarray
    ecl_by_scenario: np.ndarray
    ecl: np.ndarray
    ead: np.ndarray
    audit: pd.DataFrame | None = None

    def _weighted(self, a: np.ndarray) -> np.ndarray:
        return column_sum(self.weights[:, None] * a, axis=0)

    @property
    def ecl_12m_weighted(self) -> np.ndarray:
        """``(L,)`` probability-weighted 12-month ECL."""
        return self._weighted(self.ecl_12m)

    @property
    def ecl_lifetime_weighted(self) -> np.ndarray:
        """``(L,)`` probability-weighted lifetime ECL."""
        return self._weighted(self.ecl_lifetime)

    @property
    def total(self) -> float:
        """The allowance of the book (sum of ``ecl``, in loan order)."""
        return float(np.sum(self.ecl))

    def summary(self) -> pd.DataFrame:
        """Loans, exposure at the reporting date, allowance and coverage (allowance / exposure) by stage."""
        df = pd.DataFrame({"stage": self.stage, "ead": self.ead, "ecl": self.ecl})
        out = df.groupby("stage").agg(loans=("ecl", "size"), ead=("ead", "sum"), ecl=("ecl", "sum"))
        out["coverage"] = out["ecl"] / out["ead"].where(out["ead"] > 0)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per loan: stage, exposure, weighted 12-month / lifetime ECL, allowance, triggers."""
        df = pd.DataFrame({"loan_id": self.loan_id, "stage": self.stage, "ead": self.ead,
                           "ecl_12m": self.ecl_12m_weighted, "ecl_lifetime": self.ecl_lifetime_weighted,
                           "ecl": self.ecl})
        return pd.concat([df, self.triggers.reset_index(drop=True)], axis=1)


def effective_eir(eir: np.ndarray, compounding: str) -> np.ndarray:
    """Effective annual rate of an EIR quoted with ``compounding`` (annual / monthly / quarterly / continuous)."""
    if compounding == "annual":
        return eir
    if compounding == "continuous":
        return np.expm1(eir)
    m = 12.0 if compounding == "monthly" else 4.0
    return np.expm1(m * np.log1p(eir / m))


def contract_balance(loans: EclLoans, n_months: int) -> np.ndarray:
    """``(L, n_months)`` contractual balance before instalment ``m + 1`` (column ``m``), 0 from maturity on.

    The closed forms of :mod:`creditsim.loans.schedule` (annuity after the interest-only period, linear,
    bullet) in float64 without the cent rounding of the servicer's schedule (within a cent of
    :func:`creditsim.loans.schedule.amortization_schedule`, tested), written as ``c0 - c1 f(j')`` with
    ``j'`` the payments made after the interest-only period and ``f = (1+r)^j'`` (annuity) or ``j'``
    (linear, zero-rate annuity), so each month costs a handful of passes.
    """
    r = loans.annual_rate / 12.0
    n = loans.remaining_months.astype(np.float64)
    code = loans.amortization
    io = np.where(code == AMORTIZATION_CODES["interest_only"], np.minimum(loans.io_months, loans.remaining_months - 1), 0)
    io = np.where(code == AMORTIZATION_CODES["bullet"], loans.remaining_months - 1, io).astype(np.float64)
    linear = code == AMORTIZATION_CODES["linear"]
    io = np.where(linear, 0.0, io)
    left = n - io  # payments of the amortising part
    lr = np.log1p(r)
    geometric = ~linear & (r > 0)
    big = np.expm1(left * lr)  # (1+r)^n' - 1
    c1 = np.where(geometric, loans.balance / np.where(geometric, big, 1.0), loans.balance / left)
    c0 = np.where(geometric, loans.balance + c1, loans.balance)
    j = np.clip(np.arange(n_months, dtype=np.float64)[None, :] - io[:, None], 0.0, None)
    f = np.exp(j * lr[:, None]) if geometric.all() else np.where(geometric[:, None], np.exp(j * lr[:, None]), j)
    bal = c0[:, None] - c1[:, None] * f
    return np.where(np.arange(n_months)[None, :] < loans.remaining_months[:, None], np.maximum(bal, 0.0), 0.0)


def _monthly_exposure(loans: EclLoans, n_months: int, accrued: bool) -> np.ndarray:
    """``(L, n_months)``: exposure if instalment ``m + 1`` is missed -- the balance before it (+ one
    month's interest) plus ``ccf * undrawn``; 0 from maturity on."""
    bal = contract_balance(loans, n_months)
    if accrued:
        bal *= (1.0 + loans.annual_rate / 12.0)[:, None]
    undrawn = loans.ccf * loans.undrawn
    if undrawn.any():
        bal += np.where(np.arange(n_months)[None, :] < loans.remaining_months[:, None], undrawn[:, None], 0.0)
    return bal


def _period_grid(rem: np.ndarray, n_periods: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` ``(T, L)`` months after the reporting date at which each period starts and ends
    (clipped at maturity: a period past maturity has ``a = b = remaining``)."""
    k = np.arange(1, n_periods + 1)[:, None]
    return np.minimum((k - 1) * step, rem[None, :]), np.minimum(k * step, rem[None, :])


def _at_period_ends(x: np.ndarray, rem: np.ndarray, step: int, n_periods: int) -> np.ndarray:
    """``x`` (month axis first, ``(>= T step + 1, ..., L)``) at month ``min(k step, rem)`` for k = 1..T.

    Slices the month axis every ``step`` months and fixes the one partial last period of each loan
    whose life is not a whole number of periods; rows of periods after maturity are left as they are
    (their exposure is 0, so they never reach a sum)."""
    out = x[step: n_periods * step + 1: step]
    partial = np.flatnonzero(rem % step)
    if len(partial):
        out = out.copy()
        out[rem[partial] // step, ..., partial] = x[rem[partial], ..., partial]
    return out


def _period_ead(exposure: np.ndarray, rem: np.ndarray, step: int, n_periods: int, timing: str) -> np.ndarray:
    """``(T, L)`` EAD per period from the monthly exposures ``(L, M)`` (0 after maturity): at the
    period start (start), the mean over the period's months (mid) or before its last instalment (end)."""
    if step == 1:
        return exposure.T[:n_periods]
    n_l = exposure.shape[0]
    padded = np.zeros((n_l, n_periods * step + 1))
    padded[:, : exposure.shape[1]] = exposure
    if timing == "start":
        return padded.T[0: n_periods * step: step]
    if timing == "end":
        shifted = np.concatenate([np.zeros((n_l, 1)), padded[:, :-1]], axis=1)  # column m = exposure of month m - 1
        return _at_period_ends(shifted.T, rem, step, n_periods)
    cum = np.concatenate([np.zeros((n_l, 1)), np.cumsum(padded[:, :-1], axis=1)], axis=1).T  # (M' + 1, L)
    a, b = _period_grid(rem, n_periods, step)
    return (_at_period_ends(cum, rem, step, n_periods) - cum[0: n_periods * step: step]) / np.maximum(b - a, 1)


def _tau(a: np.ndarray, b: np.ndarray, timing: str) -> np.ndarray:
    return a.astype(np.float64) if timing == "start" else b.astype(np.float64) if timing == "end" else 0.5 * (a + b)


def _stage3_flags(loans: EclLoans, settings: EclSettings) -> dict[str, np.ndarray]:
    return {
        "default_90dpd": (loans.days_past_due > 90) & settings.default_90dpd,
        "defaulted": loans.defaulted,
        "stage3_probation": (loans.previous_stage == 3) & (loans.months_since_trigger < settings.stage3_probation_months),
    }


def _sicr_pds(loans: EclLoans, surv: np.ndarray, pd_provider, settings: EclSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(pd_now (S, L), pd_orig (L,))`` on matched remaining horizons per ``sicr_pd_measure``."""
    rem = loans.remaining_months
    horizon = np.minimum(rem, 12) if settings.sicr_pd_measure == "12m" else rem
    now = 1.0 - np.take_along_axis(surv, horizon[None, None, :], axis=0)[0]
    if settings.sicr_relative is None and settings.sicr_absolute is None:
        return now, np.full(loans.n_loans, np.nan)
    orig = pd_provider.origination_pd(loans, loans.months_on_book, horizon)
    if settings.sicr_pd_measure == "annualised":
        def annual(p: np.ndarray) -> np.ndarray:
            return -np.expm1(12.0 / rem * np.log1p(-np.minimum(p, 1.0 - 1e-15)))
        return annual(now), annual(orig)
    return now, orig


def _period_losses(loans: EclLoans, pd_provider, lgd_provider, settings: EclSettings) -> dict[str, np.ndarray]:
    """The PD x LGD x EAD x DF terms of every period ``(T, S|1, L)`` of a chunk (module docstring)."""
    step = settings.period_months
    rem = loans.remaining_months
    n_periods = -(-int(rem.max()) // step)
    exposure = _monthly_exposure(loans, int(rem.max()), settings.accrued_interest)  # (L, M)
    a, b = _period_grid(rem, n_periods, step)  # (T, L)
    ead = _period_ead(exposure, rem, step, n_periods, settings.ead_timing)
    tau = _tau(a, b, settings.default_timing)
    eir = effective_eir(loans.discount_eir(), settings.eir_compounding)
    if not settings.discount:
        eir = np.zeros_like(eir)  # DF = 1 (CECL without DCF); LGD providers then discount nothing either
    surv = pd_provider.survival(loans, n_periods * step, settings)  # (T step + 1, S|1, L)
    s_a = surv[0: n_periods * step: step]
    marginal = s_a - _at_period_ends(surv, rem, step, n_periods)  # default-only marginal PD
    # all-cause survival to the period start (not prepaid by then), exposure and discount factor
    weight = np.exp(a * (np.log1p(-loans.prepayment_cpr) / 12.0)[None, :] - tau * (np.log1p(eir) / 12.0)[None, :])
    weight = weight * ead
    lgd = lgd_provider.lgd(loans, tau, ead, eir)  # broadcasts to (T, S, L)
    lgd = np.asarray(lgd)
    if lgd.ndim == 3 and lgd.shape[1] == 1:
        weight = weight * lgd[:, 0, :]
        contrib = marginal * weight[:, None, :]
    else:
        contrib = marginal * weight[:, None, :]
        contrib *= lgd
    return {"a": a, "b": b, "tau": tau, "ead": ead, "eir": eir, "surv": surv, "s_a": s_a, "marginal": marginal,
            "lgd": lgd, "contrib": contrib, "exposure0": exposure[:, 0]}


def _chunk(loans: EclLoans, pd_provider, lgd_provider, weights: np.ndarray, settings: EclSettings,
           audit: bool) -> tuple[dict[str, np.ndarray], pd.DataFrame | None]:
    """Every per-loan result of one chunk of loans (arrays (S, L) / (L,)) and its audit rows."""
    n_s, n_l, step = len(weights), loans.n_loans, settings.period_months
    p = _period_losses(loans, pd_provider, lgd_provider, settings)
    contrib, surv, rem = p["contrib"], p["surv"], loans.remaining_months
    n12 = 12 // step
    ecl12 = np.broadcast_to(column_sum(contrib[:n12], axis=0), (n_s, n_l))
    life = ecl12 + column_sum(contrib[n12:], axis=0)
    # Stage 3: PD = 1 now, LGD in default x EAD at the reporting date
    flags3 = _stage3_flags(loans, settings)
    s3 = flags3["default_90dpd"] | flags3["defaulted"] | flags3["stage3_probation"]
    ead0 = p["exposure0"]
    lgd_now = np.broadcast_to(lgd_provider.lgd(loans, np.zeros((1, n_l)), ead0[None, :], p["eir"]), (1, n_s, n_l))[0]
    lgd3 = np.where(np.isnan(loans.lgd_in_default), lgd_now, loans.lgd_in_default)
    ecl12 = np.where(s3, lgd3 * ead0, ecl12)
    life = np.where(s3, lgd3 * ead0, life)
    pd_now, pd_orig = _sicr_pds(loans, surv, pd_provider, settings)
    stage, triggers = stage_loans(loans, np.broadcast_to(pd_now, (n_s, n_l)), pd_orig, weights, settings, flags3)
    twelve = (stage == 1) & ~loans.poci & (settings.framework == "ifrs9")
    allowance = np.where(twelve, ecl12, life) - np.where(loans.poci, loans.poci_initial_ecl, 0.0)
    pd_life = 1.0 - np.take_along_axis(surv, rem[None, None, :], axis=0)[0]
    out = {"stage_by_scenario": stage, "triggers": triggers, "lifetime_pd": np.broadcast_to(pd_life, (n_s, n_l)),
           "origination_pd": pd_orig, "ecl_12m": ecl12, "ecl_lifetime": life, "ecl_by_scenario": allowance, "ead": ead0}
    frame = None
    if audit:
        full = (contrib.shape[0], n_s, n_l)
        frame = _audit_rows(loans, p["a"], p["b"], p["tau"], np.broadcast_to(p["s_a"] * _prepaid(loans, p["a"])[:, None, :], full),
                            np.broadcast_to(p["marginal"] * _prepaid(loans, p["a"])[:, None, :], full), p["ead"],
                            np.broadcast_to(p["lgd"], full), np.exp(-p["tau"] / 12.0 * np.log1p(p["eir"])[None, :]),
                            contrib, n12, s3, lgd3, ead0, n_s)
    return out, frame


def _prepaid(loans: EclLoans, a: np.ndarray) -> np.ndarray:
    """``(T, L)`` probability of not having prepaid by month ``a``."""
    return np.exp(a * (np.log1p(-loans.prepayment_cpr) / 12.0)[None, :])


def _audit_rows(loans, a, b, tau, survival, marginal, ead, lgd, df, contrib, n12, s3, lgd3, ead0, n_s) -> pd.DataFrame:
    """Loan x period x scenario rows of the chunk (alive periods; Stage 3 loans: one row, period 0)."""
    n_t, n_l = a.shape
    t_idx, s_idx, l_idx = np.nonzero(np.broadcast_to(((b > a) & ~s3[None, :])[:, None, :], (n_t, n_s, n_l)))
    full = (n_t, n_s, n_l)
    rows = pd.DataFrame({
        "loan_id": loans.loan_id[l_idx], "scenario": s_idx, "period": t_idx + 1, "month_start": a[t_idx, l_idx],
        "month_end": b[t_idx, l_idx], "tau_years": tau[t_idx, l_idx] / 12.0,
        "survival": np.broadcast_to(survival, full)[t_idx, s_idx, l_idx],
        "marginal_pd": np.broadcast_to(marginal, full)[t_idx, s_idx, l_idx], "ead": ead[t_idx, l_idx],
        "lgd": lgd[t_idx, s_idx, l_idx], "discount_factor": df[t_idx, l_idx],
        "ecl": np.broadcast_to(contrib, full)[t_idx, s_idx, l_idx], "in_12m": t_idx < n12})
    s_idx3, l_idx3 = np.nonzero(np.broadcast_to(s3[None, :], (n_s, n_l)))
    if len(l_idx3):
        value = np.broadcast_to(lgd3, (n_s, n_l))[s_idx3, l_idx3]
        rows3 = pd.DataFrame({
            "loan_id": loans.loan_id[l_idx3], "scenario": s_idx3, "period": 0, "month_start": 0, "month_end": 0,
            "tau_years": 0.0, "survival": 1.0, "marginal_pd": 1.0, "ead": ead0[l_idx3], "lgd": value,
            "discount_factor": 1.0, "ecl": value * ead0[l_idx3], "in_12m": True})
        rows = pd.concat([rows, rows3], ignore_index=True)
    return rows.loc[:, list(AUDIT_COLUMNS)]


def _check_inputs(loans, pd_provider, lgd_provider, scenarios, weights, settings) -> tuple[tuple[str, ...], np.ndarray, EclSettings]:
    if not isinstance(loans, EclLoans):
        raise ConfigError(f"loans must be an EclLoans, got {type(loans).__name__}")
    settings = EclSettings() if settings is None else settings
    if not isinstance(settings, EclSettings):
        raise ConfigError(f"settings must be an EclSettings, got {type(settings).__name__}")
    for name, obj, method in (("pd_provider", pd_provider, "survival"), ("lgd_provider", lgd_provider, "lgd")):
        if not callable(getattr(obj, method, None)):
            raise ConfigError(f"{name} must have a {method}() method (see creditsim.ifrs9.pd / lgd), got {type(obj).__name__}")
    names = tuple(str(s) for s in scenarios)
    try:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"weights must be numbers, got {weights!r:.60}") from exc
    if len(names) == 0 or len(w) != len(names):
        raise ConfigError(f"need one weight per scenario: {len(names)} scenarios, {len(w)} weights")
    if not np.isfinite(w).all() or (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-9:
        raise ConfigError(f"scenario weights must be >= 0 and sum to 1, got {w.tolist()}")
    for name, obj in (("pd_provider", pd_provider), ("lgd_provider", lgd_provider)):
        k = int(getattr(obj, "n_scenarios", 1))
        if k not in (1, len(names)):
            raise ConfigError(f"{name} has {k} scenarios, expected 1 or {len(names)} (one per name in scenarios)")
    return names, w, settings


def _run(loans, pd_provider, lgd_provider, weights, settings, chunk_size, audit, workers=1) -> Iterator[tuple[slice, dict, pd.DataFrame | None]]:
    """Chunks in loan order; with ``workers`` > 1 they are computed in threads (numpy releases the GIL in
    its array loops) and still yielded in order, each chunk's numbers independent of the others."""
    size = check_positive_int(chunk_size, "chunk_size")
    n_workers = check_positive_int(workers, "workers")
    parts = [slice(start, min(start + size, loans.n_loans)) for start in range(0, loans.n_loans, size)]

    def one(part: slice) -> tuple[dict, pd.DataFrame | None]:
        return _chunk(loans.subset(part), pd_provider, lgd_provider, weights, settings, audit)

    if n_workers == 1 or len(parts) == 1:
        for part in parts:
            yield (part, *one(part))
        return
    # build the providers' cached tables once, before threads share them
    step = settings.period_months
    pd_provider.survival(loans.subset(slice(0, 1)), -(-int(loans.remaining_months.max()) // step) * step, settings)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for start in range(0, len(parts), 2 * n_workers):  # a bounded window keeps memory at ~2 chunks per worker
            window = parts[start: start + 2 * n_workers]
            for part, (out, frame) in zip(window, pool.map(one, window)):
                yield part, out, frame


def expected_credit_loss(
    loans: EclLoans,
    pd_provider,
    lgd_provider,
    scenarios: Sequence[str] = ("base",),
    weights: Sequence[float] = (1.0,),
    settings: EclSettings | None = None,
    *,
    chunk_size: int = 2048,
    audit: bool = False,
    workers: int = 1,
) -> EclResult:
    """Stage, 12-month and lifetime ECL of every loan per scenario and probability-weighted.

    ``pd_provider``: :mod:`creditsim.ifrs9.pd` (TTC matrix, scenario matrices, hazard curves);
    ``lgd_provider``: :mod:`creditsim.ifrs9.lgd`; each with one scenario (shared) or ``len(scenarios)``.
    ``weights`` >= 0 summing to 1. ``chunk_size`` loans are computed at a time (memory ~ 8 bytes x
    chunk x months x scenarios x 10 per worker); ``workers`` threads compute chunks in parallel. Results do
    not depend on either. ``audit=True`` adds the loan x period
    x scenario table (:data:`AUDIT_COLUMNS`; use :func:`audit_chunks` for books too large to hold it).
    """
    names, w, settings = _check_inputs(loans, pd_provider, lgd_provider, scenarios, weights, settings)
    n_s, n_l = len(names), loans.n_loans
    keys2 = ("stage_by_scenario", "lifetime_pd", "ecl_12m", "ecl_lifetime", "ecl_by_scenario")
    acc = {k: np.empty((n_s, n_l), dtype=np.int8 if k == "stage_by_scenario" else np.float64) for k in keys2}
    acc1 = {k: np.empty(n_l) for k in ("origination_pd", "ead")}
    trig = {k: np.empty(n_l, dtype=bool) for k in SICR_TRIGGERS}
    frames = []
    for part, out, frame in _run(loans, pd_provider, lgd_provider, w, settings, chunk_size, audit, workers):
        for k in keys2:
            acc[k][:, part] = out[k]
        for k in acc1:
            acc1[k][part] = out[k]
        for k in SICR_TRIGGERS:
            trig[k][part] = out["triggers"][k]
        if frame is not None:
            frames.append(frame)
    used = w > 0
    stage = acc["stage_by_scenario"][used].max(axis=0)
    ecl = column_sum(w[:, None] * acc["ecl_by_scenario"], axis=0)
    return EclResult(loans.loan_id, names, w, settings, stage, acc["stage_by_scenario"], loans.poci,
                     pd.DataFrame(trig, index=pd.Index(loans.loan_id, name="loan_id")), acc["lifetime_pd"],
                     acc1["origination_pd"], acc["ecl_12m"], acc["ecl_lifetime"], acc["ecl_by_scenario"], ecl,
                     acc1["ead"], pd.concat(frames, ignore_index=True) if audit else None)


def audit_chunks(loans: EclLoans, pd_provider, lgd_provider, scenarios: Sequence[str] = ("base",),
                 weights: Sequence[float] = (1.0,), settings: EclSettings | None = None, *,
                 chunk_size: int = 2048) -> Iterator[pd.DataFrame]:
    """The audit table of :func:`expected_credit_loss` one chunk of loans at a time (write each to disk)."""
    _, w, settings = _check_inputs(loans, pd_provider, lgd_provider, scenarios, weights, settings)
    for _, _, frame in _run(loans, pd_provider, lgd_provider, w, settings, chunk_size, True):
        yield frame
