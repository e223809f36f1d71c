"""A scenario's waterfall and analytics do not depend on the batch it is run in, bit for bit.

The waterfall reduces over tranches and months column by column (:mod:`creditsim.fixed_order`), and the
IRR solver stops per scenario, so running a subset, a permutation or a single scenario gives exactly the
numbers of the full run (a BLAS ``gemv`` or a batch-wide stopping rule would not).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from creditsim.examples import example_path
from creditsim.deal.analytics import irr, irr_torch, level_pay_pool, principal_loss, pv_loss, wal
from creditsim.deal.config import load_deal
from creditsim.deal.waterfall import RESULT_KEYS, run_waterfall

S = 40


@pytest.fixture(scope="module")
def deal():
    return load_deal(example_path("example_clo.yaml"))


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    rng = np.random.default_rng(4)
    # a spread of stresses: some scenarios fail OC/IC tests (cures, PIK), some liquidate with losses
    return level_pay_pool(1e8, 0.08, 60, horizon=48, cdr=rng.uniform(0.0, 0.25, S), cpr=rng.uniform(0.0, 0.3, S),
                          severity=rng.uniform(0.2, 0.8, S), lag=3)


def _per_row(result: dict[str, torch.Tensor], config) -> dict[str, np.ndarray]:
    out = {k: v.detach().numpy() for k, v in result.items() if k in RESULT_KEYS and v.ndim >= 1
           and k not in ("initial_balances",)}
    out["principal_loss"] = principal_loss(result).numpy()
    out["pv_loss"] = pv_loss(result, config)
    cash = result["tranche_cashflows"].numpy()
    out["irr"] = np.stack([irr(cash[:, :, k], float(result["initial_balances"][k])) for k in range(cash.shape[2])], 1)
    out["irr_torch"] = np.stack([irr_torch(result["tranche_cashflows"][:, :, k], result["initial_balances"][k]).numpy()
                                 for k in range(cash.shape[2])], 1)
    out["wal"] = np.stack([wal(result["tranche_principal"].numpy()[:, :, k]) for k in range(cash.shape[2])], 1)
    return out


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_subsets_and_permutations_give_the_full_runs_rows_bit_for_bit(deal, pool, mode) -> None:
    full = _per_row(run_waterfall(pool, deal, mode=mode, initial_balance=1e8), deal)
    order = np.random.default_rng(0).permutation(S)
    for rows in (order[:1], order[:7], order[:33], order):
        part = _per_row(run_waterfall(pool[rows], deal, mode=mode, initial_balance=1e8), deal)
        for key, value in full.items():
            np.testing.assert_array_equal(part[key], value[rows], err_msg=f"{key} with a batch of {len(rows)}")
    chunked = _per_row(run_waterfall(pool, deal, mode=mode, initial_balance=1e8, chunk_size=7), deal)
    for key, value in full.items():
        np.testing.assert_array_equal(chunked[key], value, err_msg=f"{key} with chunk_size=7")
