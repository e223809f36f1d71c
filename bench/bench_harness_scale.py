"""Fit time of every harness contestant on a large synthetic panel (issue: 100k loans x 60 months).

Run: ``python bench/bench_harness_scale.py --n-loans 100000 --n-months 60 [--models ...]``. The panel
comes from :class:`creditsim.LoanTapeGenerator`; 70 % of the loans train. Prints moves, seconds to
build the moves, and per model the fit + predict seconds and the test NLL per move.
"""

from __future__ import annotations

import argparse
import time

import creditsim as cs
from creditsim.harness import CONTESTANT_NAMES, build_moves, make_contestant, split_moves
from creditsim.harness.scoring import move_scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-loans", type=int, default=100_000)
    ap.add_argument("--n-months", type=int, default=60)
    ap.add_argument("--models", default=",".join(CONTESTANT_NAMES))
    args = ap.parse_args()
    t0 = time.perf_counter()
    loans, panel = cs.LoanTapeGenerator(args.n_loans, args.n_months, random_seed=1).generate()
    t1 = time.perf_counter()
    moves = build_moves(panel, loans, ["current_balance", "actual_payment"], ["internal_score", "ltv_origination", "interest_rate", "asset_class"])
    train, test = split_moves(moves, "account", 0.3, seed=0)
    t2 = time.perf_counter()
    print(f"panel {len(panel):,} rows in {t1 - t0:.0f} s; {len(moves):,} moves ({len(train):,} train) built in {t2 - t1:.0f} s")
    for name in args.models.split(","):
        start = time.perf_counter()
        model = make_contestant(name, ("prev_state",), 0, ("internal_score", "ltv_origination"), tape=loans).fit(train)
        fitted = time.perf_counter()
        nll = move_scores(model.predict(test), test).nll.mean()
        print(f"{name:>24}: fit {fitted - start:7.1f} s, predict {time.perf_counter() - fitted:6.1f} s, test NLL {nll:.4f}")


if __name__ == "__main__":
    main()
