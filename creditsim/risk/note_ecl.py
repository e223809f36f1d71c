"""IFRS 9 expected credit loss of an SPV note held at amortised cost (a holder's view of one tranche).

The loan-level Monte Carlo runs through the hard waterfall (:meth:`ExpectedLossPath.monte_carlo_pool`,
``reps`` loan draws on each of ``n_paths`` macro paths of the run's scenario mix); for the chosen debt
class, per scenario:

* **Cash shortfall, discounted at the EIR.** The note is taken as bought at par, so its effective
  interest rate is its coupon (monthly compounding, the waterfall's accrual): the present value at the
  coupon of the contractual flows is par whatever their timing, and the scenario's lifetime credit loss
  is ``balance x pv_loss`` -- par minus the PV at the EIR of the cash received
  (:func:`creditsim.deal.analytics.pv_loss`; balance still owed at the horizon counts as lost). A note
  bought at a premium or discount needs its own EIR and is refused rather than approximated.
* **Default event month.** The first month the note receives less interest than accrued at its coupon
  -- interest unpaid on a current-pay class, or deferred and capitalised on a deferrable one (a PIK
  deferral is contractually allowed, but it is the note's first cash shortfall, which is what IFRS 9
  5.5.3 and B5.5.37 look at) -- or, when the only shortfall is principal, the horizon.
* **12-month ECL** (IFRS 9 5.5.5, Appendix A): the part of the lifetime loss from default events
  possible within 12 months, ``E[loss x 1{event month <= 12}]``; **lifetime ECL**: ``E[loss]``.
* **Lifetime PD of the note**: the probability of any cash shortfall (``pv_loss > 1e-9``); the 12-month
  PD: of one whose event falls in the first 12 months.
* **Stage**: 3 when the holder says the note is credit-impaired; 2 when the lifetime PD now against the
  lifetime PD at purchase passes the quantitative SICR test of :class:`creditsim.ifrs9.EclSettings`
  (relative ``sicr_relative``, absolute ``sicr_absolute``, combined by ``sicr_combine``); else 1. The
  allowance is the 12-month ECL in Stage 1, the lifetime ECL in Stages 2 and 3.

Standard errors treat the ``reps`` loan draws of one macro path as one cluster (the path's common
shock): the project's cluster-robust :func:`creditsim.risk.measures.expected_value_se`, which with
equal clusters is the standard error of a mean over paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from creditsim.deal.analytics import pv_loss
from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError
from creditsim.ifrs9.settings import EclSettings
from creditsim.ifrs9.staging import pd_threshold_hit
from creditsim.risk.expected import ExpectedLossPath
from creditsim.risk.measures import expected_value_se

__all__ = ["NoteEcl", "note_ecl", "note_losses"]

#: a PV loss or a month's interest shortfall below this fraction of the note is rounding, not a loss
LOSS_TOLERANCE = 1e-9


@dataclass
class NoteEcl:
    """The ECL of one note (module docstring). Amounts in currency units, probabilities as fractions."""

    tranche: str
    balance: float
    eir: float
    stage: int
    allowance: float
    ecl_12m: float
    ecl_lifetime: float
    pd_12m: float
    pd_lifetime: float
    pd_at_purchase: float | None
    se: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per figure, with its standard error where it has one."""
        rows = [("stage", self.stage), ("allowance", self.allowance), ("12-month ECL", self.ecl_12m),
                ("lifetime ECL", self.ecl_lifetime), ("coverage (allowance / balance)", self.allowance / self.balance),
                ("12-month PD of the note", self.pd_12m), ("lifetime PD of the note", self.pd_lifetime),
                ("lifetime PD at purchase", self.pd_at_purchase)]
        key = {"12-month ECL": "ecl_12m", "lifetime ECL": "ecl_lifetime", "12-month PD of the note": "pd_12m",
               "lifetime PD of the note": "pd_lifetime"}
        return pd.DataFrame([{"figure": n, "value": v, "se": self.se.get(key.get(n, ""), np.nan)} for n, v in rows]
                            ).set_index("figure")


def note_losses(elp: ExpectedLossPath, pool_cf: np.ndarray, k: int, paths: np.ndarray | None = None,
                reps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per scenario of Monte Carlo pool cashflows ``(n, T, 7)``: the lifetime credit loss of debt class
    ``k`` at its coupon as a fraction of its balance ``(n,)``, and its default event month ``(n,)``
    (1-based; ``T + 1`` for a scenario without a loss). ``paths`` / ``reps``: the macro paths the pool
    was simulated on (``reps`` draws each), for the deal's market inputs (a floating note's coupons)."""
    market = {} if paths is None else elp.market(np.repeat(np.asarray(paths, dtype=np.float64), reps, 0), pool_cf)
    with torch.no_grad():
        wf = run_waterfall(pool_cf, elp.deal, initial_balance=elp.engine.initial_balance, mode="hard", **market)
    loss = pv_loss(wf, elp.deal)[:, k]
    loss = np.where(loss > LOSS_TOLERANCE, loss, 0.0)  # below the tolerance it is rounding of repaid par
    balance = float(wf["initial_balances"][k])
    short = (wf["interest_shortfall"][:, :, k] + wf["deferred_interest"][:, :, k]).cpu().numpy() > LOSS_TOLERANCE * balance
    T = short.shape[1]
    first = np.where(short.any(1), short.argmax(1) + 1, T)  # the horizon when only principal is short
    return loss, np.where(loss > 0.0, first, T + 1)


def note_ecl(loans: Any, deal: Any, tranche: str, *, pd_at_purchase: float | None = None, credit_impaired: bool = False,
             settings: EclSettings | None = None, paths: np.ndarray | None = None, n_paths: int = 64, reps: int = 16,
             seed: int = 0, **run: Any) -> NoteEcl:
    """IFRS 9 ECL of debt class ``tranche`` of ``deal`` on the pool ``loans`` (module docstring).

    Args:
        loans, deal: as for :func:`creditsim.simulate` (the deal scaled to the pool).
        tranche: the note held (a debt class; the equity has no contractual cash flows).
        pd_at_purchase: the note's lifetime PD at initial recognition, for the SICR test (None: no
            quantitative test, Stage 1 unless credit-impaired).
        credit_impaired: the holder's Stage 3 flag (a missed payment, an event of default).
        settings: the SICR thresholds (:class:`creditsim.ifrs9.EclSettings`; default its defaults).
        paths: ``(S, T, 9)`` macro paths (default ``n_paths`` of the run's macro source and mix).
        reps: loan draws per path. seed: master seed. ``**run``: other RunConfig settings (``horizon``,
            ``macro``, ``scenario_mix``, ``cutoff``).
    """
    elp = ExpectedLossPath.from_tape(loans, deal, seed=seed, **run)
    k = elp.tranche_index(tranche)
    note = elp.deal.tranches[k]
    if note.equity:
        raise ConfigError(f"tranche {tranche!r} is the equity: it has no contractual cash flows, so no ECL; "
                          "choose a debt class")
    if pd_at_purchase is not None and not (isinstance(pd_at_purchase, (int, float)) and 0.0 <= pd_at_purchase <= 1.0):
        raise ConfigError(f"pd_at_purchase: expected a probability in [0, 1], got {pd_at_purchase!r}")
    settings = settings if settings is not None else EclSettings()
    paths = elp.scenario_paths(n_paths, seed, run) if paths is None else np.asarray(paths, dtype=np.float64)[:, : elp.horizon]
    loss, event = note_losses(elp, elp.monte_carlo_pool(paths, reps), k, paths, reps)
    within = (event <= 12).astype(np.float64)
    defaulted = (loss > 0.0).astype(np.float64)
    balance = float(note.balance)
    values = {"ecl_12m": balance * loss * within, "ecl_lifetime": balance * loss, "pd_12m": defaulted * within,
              "pd_lifetime": defaulted}
    est = {name: float(v.mean()) for name, v in values.items()}
    path_of = np.repeat(np.arange(len(paths)), reps)  # the reps of one path share its macro shock: one cluster
    se = {name: expected_value_se(v, clusters=path_of) for name, v in values.items()}
    if credit_impaired:
        stage = 3
    elif pd_at_purchase is not None and bool(pd_threshold_hit(np.array(est["pd_lifetime"]), np.array(pd_at_purchase), settings)):
        stage = 2
    else:
        stage = 1
    allowance = est["ecl_12m"] if stage == 1 else est["ecl_lifetime"]
    return NoteEcl(tranche, balance, float(elp.deal.nominal_coupon(note)), stage, allowance, est["ecl_12m"], est["ecl_lifetime"],
                   est["pd_12m"], est["pd_lifetime"], pd_at_purchase, se,
                   {"n_paths": len(paths), "reps": reps, "seed": seed, "horizon": elp.horizon, "eir": "coupon (bought at par)"})
