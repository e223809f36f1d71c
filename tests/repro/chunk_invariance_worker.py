"""Chunk-invariance worker: run the engine and ``simulate`` at several chunk sizes, print digests.

Run as a subprocess by ``tests/test_reproducibility_matrix.py`` under one BLAS / thread setting
(``MKL_CBWR``, ``OMP_NUM_THREADS`` are set by the caller before torch is imported). Prints one JSON
object: ``{"threads": n, "engine": {chunk: sha256}, "simulate": {chunk: sha256}}``. The digests cover
every output array bit for bit, so equal digests mean bit-identical results.

    python tests/repro/chunk_invariance_worker.py 37 333 1000 7919
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch

from creditsim.loans.book import LoanBook
from creditsim.loans.engine import simulate_pool_cashflows
from creditsim.transitions.synthetic import LoanTapeGenerator
from creditsim.transitions.markov import MarkovTransitionModel
from creditsim.risk.simulate import simulate
from creditsim.states import ASSET_CLASSES
from creditsim.deal.config import WaterfallConfig


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _book() -> LoanBook:
    # 2,100 loans: three RNG loan blocks, the last one partial
    rng = np.random.default_rng(7)
    n = 2100
    asset = rng.integers(0, len(ASSET_CLASSES), n)
    return LoanBook.from_arrays(
        balance=rng.uniform(1e4, 1e6, n), annual_rate=rng.uniform(0.02, 0.15, n),
        remaining_term=rng.integers(3, 40, n),
        amortization=rng.choice(["annuity", "linear", "bullet", "interest_only"], n),
        io_months=rng.integers(0, 6, n), lgd=rng.uniform(0.2, 0.8, n), cohort=asset,
        cohort_labels=ASSET_CLASSES, asset_class=asset, recovery_lag=2,
        risk_shift=np.round(rng.normal(0.0, 0.3, n), 1),
    )


def main(chunks: list[int]) -> dict:
    book = _book()
    # per-scenario, month-varying matrices: the macro overlay path of the orchestrator
    markov = MarkovTransitionModel.default()
    n_sims, months = 300, 6
    shocks = np.random.default_rng(3).normal(0.0, 0.02, (n_sims, months, 9))
    mats = np.asarray(markov.scenario_matrices(shocks), dtype=np.float64)
    engine = {}
    for c in chunks:
        pc = simulate_pool_cashflows(book, mats, n_sims, seed=11, n_months=months, chunk_size=c)
        engine[c] = _digest(pc.cashflows, pc.pending_recovery)

    loans, _ = LoanTapeGenerator(300, 1, random_seed=11).generate()
    deal = WaterfallConfig(name="T", tranches=[
        {"name": "A", "balance": 70, "coupon": 0.05}, {"name": "B", "balance": 15, "coupon": 0.07},
        {"name": "C", "balance": 10, "coupon": 0.09, "deferrable": True},
        {"name": "Equity", "balance": 5, "equity": True}])
    sim = {}
    for c in chunks:
        r = simulate(loans, deal, n_simulations=120, macro="synthetic", seed=5, chunk_size=c, horizon=12,
                     progress=False)
        arrays = [r.portfolio_losses, r.scenarios, r.cashflows["pool"]]
        for t in r.tranche_results:
            arrays += [t.losses, t.irr]
        sim[c] = _digest(*arrays)
    return {"threads": torch.get_num_threads(), "engine": engine, "simulate": sim}


if __name__ == "__main__":
    print(json.dumps(main([int(a) for a in sys.argv[1:]])))
