"""Every harness contestant on the bundled UCI credit-card panel, split by account (the README's table).

Run: ``python bench/bench_harness_uci.py [--lags 2] [--n-boot 200]``. Prints the summary table (NLL per
move with 95 % loan-bootstrap intervals, paired differences to the reference) and each model's fit time.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape
from creditsim.harness import CONTESTANT_NAMES, evaluate_transitions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lags", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--reference", default="gbm")
    ap.add_argument("--models", default=",".join(CONTESTANT_NAMES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.perf_counter()
    res = evaluate_transitions(load_credit_card_panel(), load_credit_card_tape(), models=args.models.split(","),
                               panel_features=["current_balance", "actual_payment", "pay_status"],
                               tape_features=["credit_limit", "sex", "education", "marriage", "age"],
                               cohort_by=["credit_limit", "age"], lags=args.lags, reference=args.reference,
                               n_boot=args.n_boot, seed=args.seed, progress=print)
    pd.set_option("display.width", 250)
    print(res.summary().assign(fit_s=res.table["fit_seconds"].round(1)).to_string())
    print(res.verdicts().to_string())
    print(f"settings: {res.settings}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
