"""The simulate-ready LoanTrajectoryModel trained on the UCI credit-card panel, against what it must beat.

Run: ``python bench/bench_panel_trajectory_uci.py [--seeds 0,1,2] [--cold]`` (about 2 minutes per seed on
2 cores). Split by account: the trainer's seeded 15 % of accounts are held out; one snapshot at 2005-04,
window 6 (every move of the panel). Scored per move, teacher-forced, censored months as -log(1 - P(D)):

* ``chain``: the asset class's empirical monthly chain of the training accounts (the model's own input);
* ``shipped``: the shipped trajectory model (trained on synthetic books);
* ``gbm_limit`` / ``gbm_history``: the harness's gradient-boosted classifier given the previous state,
  calendar month and credit limit, and also the whole state history as lags -- what the trajectory model
  sees (its balance feature is the credit limit here);
* ``trajectory`` (warm start, the default) and with ``--cold`` the same from scratch.

Prints each NLL and the trajectory model's paired difference with a 95 % bootstrap interval by account.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from creditsim.datasets.credit_card import load_credit_card_panel, load_credit_card_tape
from creditsim.harness import build_moves, make_contestant
from creditsim.harness.scoring import move_scores
from creditsim.loans.panel_train import PanelSequences, panel_trajectory_sequences, train_trajectory_on_panel
from creditsim.loans.trajectory import LoanTrajectoryModel
from creditsim.states import LoanState

_D = int(LoanState.DEFAULT)


@torch.no_grad()
def per_account(model: LoanTrajectoryModel, s: PanelSequences, idx: np.ndarray) -> np.ndarray:
    """NLL summed over each held-out sequence's moves."""
    out = []
    for i in range(0, len(idx), 4096):
        j = torch.from_numpy(idx[i:i + 4096])
        states = s.states[j]
        o = model.eval()(s.features[j], s.cohort_matrices[s.cohort_index[j]], states,
                         macro_path=s.macro_paths[s.path_index[j]], initial_states=s.initial_states[j])
        lp = torch.log_softmax(o["state_logits"].double(), -1)
        hit = lp.gather(2, states.unsqueeze(-1)).squeeze(-1)
        surv = torch.log1p(-lp[..., _D].exp().clamp(max=1 - 1e-12))
        ll = torch.where(s.observed[j] > 0, hit, 0.0).sum(1) + torch.where(s.censored[j] > 0, surv, 0.0).sum(1)
        out.append((-ll).numpy())
    return np.concatenate(out)


def per_account_chain(s: PanelSequences, idx: np.ndarray) -> np.ndarray:
    mats = s.cohort_matrices.double().numpy()
    cidx, init, st = s.cohort_index.numpy()[idx], s.initial_states.numpy()[idx], s.states.numpy()[idx]
    prev = np.concatenate([init[:, None], st[:, :-1]], 1)
    row = mats[cidx[:, None], np.broadcast_to(np.arange(st.shape[1]), st.shape), prev]
    hit = np.take_along_axis(row, st[..., None], -1)[..., 0]
    w, c = s.observed.numpy()[idx] > 0, s.censored.numpy()[idx] > 0
    return -(np.where(w, np.log(np.maximum(hit, 1e-300)), 0).sum(1)
             + np.where(c, np.log1p(-np.minimum(row[..., _D], 1 - 1e-12)), 0).sum(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cold", action="store_true", help="also train from scratch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    panel, tape = load_credit_card_panel(), load_credit_card_tape()
    panel = panel.assign(state_now=panel["loan_state"])
    for seed in (int(x) for x in args.seeds.split(",")):
        s = panel_trajectory_sequences(panel, tape, window=6, stride=6, seed=seed)
        idx = np.flatnonzero(s.held_out)
        ids = np.asarray(s.loan_id)[idx].astype(str)
        n = (s.observed.numpy()[idx] + s.censored.numpy()[idx]).sum(1)
        res = {"trajectory": per_account(train_trajectory_on_panel(panel, tape, window=6, stride=6, seed=seed), s, idx),
               "chain": per_account_chain(s, idx), "shipped": per_account(LoanTrajectoryModel.from_pretrained(), s, idx)}
        if args.cold:
            res["cold start"] = per_account(train_trajectory_on_panel(panel, tape, window=6, stride=6, seed=seed,
                                                                      warm_start=False), s, idx)
        for name, feats, lags in (("gbm_limit", [], 0), ("gbm_history", ["state_now"], 5)):
            moves = build_moves(panel, tape, feats, ["credit_limit"], lags=lags)
            test = np.isin(moves.loan_id.astype(str), ids)
            train, held = moves.take(~test), moves.take(test)
            nll = move_scores(make_contestant("gbm", ("prev_state",), seed, tape=tape).fit(train).predict(held), held).nll
            res[name] = pd.Series(nll).groupby(held.loan_id.astype(str)).sum().reindex(ids).to_numpy()
            assert len(held) == n.sum()  # the same moves as the sequences'
        boot = np.random.default_rng(seed).integers(0, len(idx), (1000, len(idx)))
        for name, v in res.items():
            d = res["trajectory"] - v
            bs = d[boot].sum(1) / n[boot].sum(1)
            print(f"seed {seed} {name:12s} NLL {v.sum() / n.sum():.4f}   trajectory minus this {d.sum() / n.sum():+.4f} "
                  f"[{np.quantile(bs, 0.025):+.4f}, {np.quantile(bs, 0.975):+.4f}]", flush=True)


if __name__ == "__main__":
    main()
