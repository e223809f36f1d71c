"""What quarterly reporting costs the transition models: trained on quarter-end rows, scored on monthly moves.

Run: ``python bench/bench_quarterly_panel.py [--seeds 0,1,2] [--loans 3000] [--months 36]`` (about a
minute per seed on 2 cores). A synthetic book (``LoanTapeGenerator``, cut-off 2022-01, the bundled macro
history) is drawn month by month; its quarterly view (:func:`creditsim.transitions.reporting.reporting_view`)
keeps the quarter-end rows. The trainers' seeded 15 % of loans are held out, and every model is scored on
their *monthly* moves (NLL per move, nats), which the quarterly models never see:

* ``chain_monthly``: the pooled monthly chain of the training loans' monthly moves;
* ``chain_quarterly``: the monthly chain whose cube fits their quarterly moves (:mod:`creditsim.transitions.embed`);
* ``transformer_monthly``: the TransitionTransformer trained on the monthly rows (40 epochs at most);
* ``transformer_quarterly``: the same trained on the quarter-end rows (each quarter scored by the product of
  its three monthly matrices).

A second table reads a quarterly file that *dates* its defaults and payoffs (each loan's record ends in the
month it is absorbed, ``reporting_view(..., absorptions="dated")``), with the 12-month default probability
from CURRENT of each pooled chain beside its NLL: ``dated`` (:meth:`MarkovTransitionModel.fit`, each such
row a first entry in its month), ``dated_dropped`` (only rows exactly three months apart: the fit before
off-cycle rows were read) and the monthly chain as the reference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import creditsim as cs
from creditsim.transitions.embed import embed_monthly_chain
from creditsim.transitions.markov import MarkovTransitionModel, row_mle
from creditsim.transitions.panel_train import panel_transition_data, train_transformer_on_panel
from creditsim.transitions.reporting import reporting_view
from creditsim.transitions.train import _model_view


def chain_nll(matrix: np.ndarray, counts: np.ndarray) -> float:
    """NLL per live move of ``counts`` ``(7, 7)`` under the monthly ``matrix``."""
    return float(-(counts * np.log(np.maximum(matrix, 1e-30)))[counts > 0].sum() / counts[:4].sum())


@torch.no_grad()
def transformer_nll(model, data) -> float:
    cf, macro, counts = _model_view(model, data)
    return float(model.nll(model(cf, macro).clamp_min(1e-30).log(), counts))


def pd12(matrix: np.ndarray) -> float:
    """12-month default probability from CURRENT of a monthly matrix."""
    return float(np.linalg.matrix_power(matrix, 12)[0, 4])


def dated_chains(loans, panel, seed: int, coarse: dict) -> dict[str, float]:
    """The pooled chains of a dated quarterly file of the training loans (module docstring)."""
    held = np.random.default_rng(seed).random(len(loans)) < 0.15  # the trainers' held-out loans
    train_ids = set(loans["loan_id"].astype(str)[~held])
    rows = panel[panel["loan_id"].astype(str).isin(train_ids)].sort_values(["loan_id", "reporting_month"])
    # the file ends each loan's record in the month it is absorbed (the generator keeps reporting some)
    absorbed = rows["loan_state"].ge(4).groupby(rows["loan_id"].astype(str)).cumsum()
    dated = reporting_view(rows[(absorbed <= 1).to_numpy()], 3, absorptions="dated")
    month = dated["reporting_month"].dt.year * 12 + dated["reporting_month"].dt.month
    on_grid = ((month - month.min()) % 3 == 0).to_numpy()
    fits = {"dated": MarkovTransitionModel().fit(dated, period_months=3).transition_matrix_,
            "dated_dropped": MarkovTransitionModel().fit(dated[on_grid], period_months=3).transition_matrix_,
            "monthly": row_mle(coarse["train"])}
    out = {f"pd12_{k}": pd12(m) for k, m in fits.items()}
    out.update({f"nll_{k}": chain_nll(m, coarse["val"]) for k, m in fits.items()})
    return out


def one_seed(seed: int, n_loans: int, n_months: int, epochs: int) -> dict[str, float]:
    loans, panel = cs.LoanTapeGenerator(n_loans, n_months, random_seed=11 + seed, cutoff="2022-01-01").generate()
    quarterly = reporting_view(panel, 3)
    monthly = panel_transition_data(panel, loans, val_share=0.15, seed=seed)
    coarse = {s: d.counts[d.definition == "asset_class"].sum((0, 1)) for s, d in monthly.items()}
    q_train = panel_transition_data(quarterly, loans, val_share=0.15, seed=seed, period_months=3)["train"]
    out = {"chain_monthly": chain_nll(row_mle(coarse["train"]), coarse["val"]),
           "chain_quarterly": chain_nll(embed_monthly_chain(
               q_train.counts[q_train.definition == "asset_class"].sum((0, 1)), 3).matrix, coarse["val"])}
    out.update(dated_chains(loans, panel, seed, coarse))
    for name, frame, k in (("transformer_monthly", panel, 1), ("transformer_quarterly", quarterly, 3)):
        t0 = time.perf_counter()
        model = train_transformer_on_panel(frame, loans, epochs=epochs, seed=seed, period_months=k)
        out[name] = transformer_nll(model, monthly["val"])
        out[name + "_seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--loans", type=int, default=3000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = {int(s): one_seed(int(s), args.loans, args.months, args.epochs) for s in args.seeds.split(",")}
    names = ("chain_monthly", "chain_quarterly", "transformer_monthly", "transformer_quarterly")
    print(f"held-out monthly moves, NLL per move ({args.loans} loans x {args.months} months)")
    print("seed  " + "  ".join(f"{n:>22}" for n in names))
    for seed, r in rows.items():
        print(f"{seed:>4}  " + "  ".join(f"{r[n]:>22.4f}" for n in names)
              + f"   (training s: {r['transformer_monthly_seconds']:.0f} / {r['transformer_quarterly_seconds']:.0f})")
    print("\na quarterly file dating its absorptions: pooled chains, held-out monthly NLL and 12-month PD from CURRENT")
    print("seed  " + "  ".join(f"{n:>14}" for n in ("monthly", "dated", "dated_dropped")))
    for seed, r in rows.items():
        print(f"{seed:>4}  " + "  ".join(f"{r['nll_' + n]:>7.4f} {r['pd12_' + n]:>6.2%}"
                                         for n in ("monthly", "dated", "dated_dropped")))


if __name__ == "__main__":
    main()
