"""Throughput of the hard-mode waterfall: 10,000 scenarios x 120 months x 6 tranches (target < 5 s, 2 cores).

Pool cashflows: the deterministic level-pay pool (120-month term) with a different CDR / CPR /
severity per scenario, so coverage tests fail in part of the scenarios and every branch runs.
For each thread count (default: 1 and 2, the issue's target machine has 2 cores) prints wall and
process CPU time (CPU time is the fairer number on a shared machine: wall time there includes waiting
for the cores) and scenarios per second for the hard mode with all outputs and with the tranche outputs
the simulation uses, the straight-through and soft modes, and the largest cash-conservation error.
``--deal all-features`` / ``all-features-monthly`` run the same deal with every real-deal feature on,
quarterly or monthly payment dates (the issue-15 bar: within 1.5x of the six-tranche deal's hard-mode
time); it reports the share of scenarios accelerated and called. ``--deal criteria`` is the six-tranche deal
with the reinvestment criteria on (WAS, WARF on a pool WARF path rising with the scenario's defaults, WAL
with a step-down); it reports the share of the reinvestment cash they blocked.
Run: ``.venv/bin/python bench/bench_waterfall.py [--threads 1 2] [--modes hard soft] [--deal all-features]``.
"""

from __future__ import annotations

import os

# idle OpenMP workers sleep instead of spinning: with 2 threads on a shared 2-core machine spinning
# workers burned 10x the CPU of the single-threaded run (measured 32 s CPU vs 2.7 s)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from creditsim.deal.analytics import level_pay_pool  # noqa: E402
from creditsim.deal.config import WaterfallConfig  # noqa: E402
from creditsim.deal.waterfall import MODES, TRANCHE_OUTPUTS, cash_conservation_error, run_waterfall  # noqa: E402


def six_tranche_deal() -> WaterfallConfig:
    return WaterfallConfig(
        name="bench CLO", senior_fee=0.0015, sub_fee=0.0035, reinvestment_period=24,
        interest_diversion_trigger=1.04,
        tranches=[
            {"name": "A", "balance": 62e6, "coupon": 0.055, "oc_trigger": 1.30, "ic_trigger": 1.20},
            {"name": "B", "balance": 12e6, "coupon": 0.065, "oc_trigger": 1.20, "ic_trigger": 1.15},
            {"name": "C", "balance": 7e6, "coupon": 0.080, "oc_trigger": 1.12, "deferrable": True},
            {"name": "D", "balance": 6e6, "coupon": 0.100, "oc_trigger": 1.06, "deferrable": True},
            {"name": "E", "balance": 4e6, "coupon": 0.130, "oc_trigger": 1.03, "deferrable": True},
            {"name": "Equity", "balance": 9e6, "equity": True},
        ],
    )


def every_feature_deal(frequency: str = "quarterly") -> WaterfallConfig:
    """The six-class deal with every real-deal feature on (issue 15): payment dates (quarterly by
    default), floating classes on a base-rate path, a pari-passu A-1/A-2 pair, admin expenses with a
    cap, incentive fee, defaulted interest, events of default with acceleration, optional and clean-up
    calls, refinancing, spread-driven prices, CCC haircut, discount obligations, reinvestment criteria."""
    six = six_tranche_deal().to_dict()
    tranches = six["tranches"]
    a2 = {**tranches[0], "name": "A-2", "balance": 10e6, "pari_passu": True}
    tranches[0] = {**tranches[0], "name": "A-1", "balance": 52e6}
    for t, margin in zip(tranches[1:5], (0.013, 0.019, 0.035, 0.065)):
        t.pop("coupon")
        t["margin"] = margin
    tranches.insert(1, a2)
    six.update(tranches=tranches, payment_frequency=frequency, base_rate=0.04, admin_fee=0.0002,
               admin_expenses=200_000.0, admin_cap=250_000.0, incentive_fee=0.2, incentive_hurdle=0.12,
               eod_oc_trigger=1.025, acceleration=True, defaulted_interest_accrues=True, non_call_period=24,
               call_nav_threshold=1.5, clean_up_call=0.1, spread_duration=3.0, ccc_limit=0.075,
               refinancing_saving=0.1, discount_obligation_price=0.8,
               # the reinvestment criteria at limits that bind in part of the scenarios (market pool_warf path)
               min_was=0.075, reinvestment_spread=0.07, max_warf=3000.0, reinvestment_warf=3200.0, max_wal=5.0,
               reinvestment_wal=6.0, max_wal_floor=2.0)
    return WaterfallConfig.from_dict(six)


def criteria_deal() -> WaterfallConfig:
    """The six-tranche deal with the three reinvestment tests on, tight enough to bind in part of the
    scenarios (the level-pay pool yields 8 %: a fixed-rate deal's WAS is the pool's yield)."""
    six = six_tranche_deal().to_dict()
    six.update(min_was=0.075, reinvestment_spread=0.07, max_warf=3000.0, reinvestment_warf=3200.0, max_wal=5.0,
               reinvestment_wal=6.0, max_wal_floor=2.0)
    return WaterfallConfig.from_dict(six)


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=10_000)
    ap.add_argument("--months", type=int, default=120)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="intra-op thread counts to time, one block each (default 1 2)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--deal", choices=["six", "all-features", "all-features-monthly", "criteria"], default="six",
                    help="the six-tranche deal, or the same with every real-deal feature on (issue 15), "
                         "quarterly or monthly payment dates")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    S, T = args.scenarios, args.months
    pool = level_pay_pool(100e6, 0.08, T, T, cdr=rng.uniform(0.0, 0.25, S), cpr=rng.uniform(0.0, 0.3, S),
                          severity=rng.uniform(0.2, 0.8, S), lag=6)
    cf = torch.as_tensor(pool, device=args.device)
    cfg = {"six": six_tranche_deal, "all-features": every_feature_deal,
           "all-features-monthly": lambda: every_feature_deal("monthly"), "criteria": criteria_deal}[args.deal]()
    # market paths per scenario (ignored by a deal that does not use them): the floating classes' base
    # rate, a high-yield spread widening with the scenario's default rate, a CCC bucket of 8 % of par
    phase = rng.uniform(0, 6, (S, 1))
    market = {"base_rate": torch.as_tensor(0.04 + 0.02 * np.sin(np.arange(T)[None, :] / 12.0 + phase),
                                           device=args.device),
              "hy_spread": torch.as_tensor(0.035 + 0.3 * (pool[:, :, 4].sum(1, keepdims=True) / 100e6)
                                           * np.linspace(0, 1, T)[None, :], device=args.device),
              "ccc_par": torch.as_tensor(0.08 * pool[:, :, 6], device=args.device)}
    if cfg.max_warf is not None:  # a WARF that rises with the scenario's defaults
        market["pool_warf"] = torch.as_tensor(2700.0 + 3000.0 * (pool[:, :, 4].sum(1, keepdims=True) / 100e6)
                                              * np.linspace(0, 1, T)[None, :], device=args.device)
    print(f"waterfall bench: {S} scenarios x {T} months x {len(cfg.tranches)} tranches, device {args.device}, "
          f"{os.cpu_count()} CPUs visible (shared machine: wall times include waiting for cores)")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"{threads} thread{'s' if threads > 1 else ''}:")
        for mode in args.modes:
            run_waterfall(cf[:16], cfg, 100e6, mode=mode, **{k: v[:16] for k, v in market.items()})  # warm-up
            res, dt, cpu = _timed(lambda: run_waterfall(cf, cfg, 100e6, mode=mode, **market))
            err = float((cash_conservation_error(res).abs() / res["cash_in"].clamp(min=1.0)).max())
            events = (f"; accelerated {float(res['accelerated'].amax(1).mean()):.0%}, called "
                      f"{float(res['called'].amax(1).mean()):.0%} of scenarios") if args.deal.startswith("all") else ""
            if args.deal == "criteria":
                spent = res["reinvestment"] + res["reinvestment_blocked"]
                events = (f"; criteria blocked {float(res['reinvestment_blocked'].sum() / spent.sum()):.0%} of the "
                          "reinvestment cash")
            print(f"  {mode:22s} {dt:7.2f} s wall ({cpu:6.2f} s CPU)  {S / dt:10,.0f} scenarios/s  "
                  f"max relative cash error {err:.1e}  (all {len(res)} outputs){events}")
            del res
            if mode == "hard":
                _, dt, cpu = _timed(lambda: run_waterfall(cf, cfg, 100e6, mode="hard", outputs=TRANCHE_OUTPUTS,
                                                          **market))
                print(f"  {'hard, tranche outputs':22s} {dt:7.2f} s wall ({cpu:6.2f} s CPU)  {S / dt:10,.0f} "
                      f"scenarios/s  (outputs=TRANCHE_OUTPUTS, what simulation needs)")


if __name__ == "__main__":
    main()
