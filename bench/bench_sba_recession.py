"""Issue 14's recession test on a real, public loan panel: US SBA 7(a) loans through 2008-10, out of time.

Data (not shipped, read where you keep it) and the panel's decisions: :mod:`creditsim.datasets.sba` (the
SBA 7(a) loan file of Li, Mickel & Taylor, *Journal of Statistics Education* 26(1), 2018). The 22,427-row
slice of it in the public GitHub repository ``aidanabekboeva/Loan-Default-Prediction-using-Machine-Learning``
gives the numbers in the README; the full file (899,164 loans) is the paper's. The covariate models (logit,
boosting) see :data:`~creditsim.datasets.sba.SBA_FEATURES` (not the term nor the loan age, which tell
which loans default); the chains and the transformer see new / existing business as their segment, the
transformer also the monthly macro path.

Run: ``python bench/bench_sba_recession.py PATH/SBAnational.csv [--split oot:2008-01] [--n-boot 100]``.
Prints the panel's charge-off rate by year, the harness table (NLL per move with 95 % intervals
bootstrapped by month, as the test months share one economy) and the verdicts. Needs the bundled macro
history, which reads FRED-MD at your site (:func:`creditsim.datasets.load_macro_history`).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from creditsim.datasets import load_macro_history, read_sba_loans
from creditsim.datasets.sba import SBA_FEATURES
from creditsim.harness import evaluate_transitions
from creditsim.states import LoanState

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", help="SBAnational.csv (Li, Mickel & Taylor 2018 layout)")
    ap.add_argument("--first", default="2002-01", help="first disbursement month kept")
    ap.add_argument("--last", default="2006-12", help="last disbursement month kept")
    ap.add_argument("--end", default="2010-12", help="last panel month")
    ap.add_argument("--split", default="oot:2008-01")
    ap.add_argument("--models", default="markov,markov_segment,logit,gbm,transformer")
    ap.add_argument("--macro-features", default="", help="macro variables the logit and gbm also see")
    ap.add_argument("--no-macro", action="store_true", help="ablation: no model sees the economy")
    ap.add_argument("--credit-link", default="business",
                    help="bank delinquency series whose pre-split link carries the economy into the transformer "
                         "(creditsim.harness.cycle); 'none': the network reads the macro path itself")
    ap.add_argument("--reference", default="markov", help="model the paired differences are taken against")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    sba = read_sba_loans(args.path, first=args.first, last=args.last, end=args.end)
    panel, tape = sba.panel, sba.features
    print("left out:", sba.skipped)
    year = panel["reporting_month"].dt.year
    rate = (panel["loan_state"] == int(LoanState.DEFAULT)).groupby(year).mean() * 12
    print(f"{len(tape):,} loans, {len(panel):,} loan-months; annualised charge-off rate by year:",
          {int(y): round(float(r), 4) for y, r in rate.items()})
    res = evaluate_transitions(panel, tape, split=args.split, models=args.models.split(","),
                               panel_features=[], tape_features=list(SBA_FEATURES), segment_by=["business"],
                               macro=None if args.no_macro else load_macro_history(),
                               macro_features=[v for v in args.macro_features.split(",") if v],
                               cluster="period", reference=args.reference,
                               credit_link=None if args.credit_link == "none" else args.credit_link, n_boot=args.n_boot, seed=args.seed, progress=print)
    pd.set_option("display.width", 250)
    print(res.summary().assign(fit_s=res.table["fit_seconds"].round(1)).to_string())
    print(res.verdicts().to_string())
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
