"""loans.pool: the one loan -> pool aggregation (exact cent sums, recoveries after the lag)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.errors import ConfigError, DataError
from creditsim.loans.pool import LOAN_FLOWS, book_recoveries, pool_cashflows, stack_pool
from creditsim.states import POOL_CF_TYPES

K = {name: i for i, name in enumerate(POOL_CF_TYPES)}


def _flows(S: int = 2, L: int = 3, T: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    flows = {k: np.round(rng.uniform(0, 1000, (S, L, T)), 2) for k in LOAN_FLOWS}
    flows["loss"] = np.round(flows["default_par"] * 0.4, 2)
    return flows


def test_columns_sums_and_lagged_recoveries_by_hand() -> None:
    flows = {k: np.zeros((1, 2, 4)) for k in LOAN_FLOWS}
    flows["default_par"][0, 0, 1] = 100.0
    flows["loss"][0, 0, 1] = 40.0
    flows["default_par"][0, 1, 3] = 50.0
    flows["loss"][0, 1, 3] = 10.0
    flows["interest"][0] = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]]
    pool = pool_cashflows(flows, recovery_lag=2)
    cf = pool.cashflows[0]
    np.testing.assert_array_equal(cf[:, K["recovery"]], [0.0, 0.0, 0.0, 60.0])  # 100 - 40 two months on
    np.testing.assert_array_equal(cf[:, K["interest"]], [1.5, 2.5, 3.5, 4.5])
    assert pool.pending_recovery[0] == 40.0  # loan 1's 50 - 10 falls after the horizon
    per_loan = pool_cashflows(flows, recovery_lag=np.array([1, 0])).cashflows[0]
    np.testing.assert_array_equal(per_loan[:, K["recovery"]], [0.0, 0.0, 60.0, 40.0])


def test_given_recoveries_are_taken_as_they_are() -> None:
    flows = _flows()
    flows["recovery"] = np.full_like(flows["balance"], 1.25)
    pool = pool_cashflows(flows, recovery_lag=5)
    np.testing.assert_allclose(pool.cashflows[..., K["recovery"]], 3 * 1.25)
    assert (pool.pending_recovery == 0).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), lag=st.integers(0, 8), order=st.permutations(range(5)))
def test_recovered_plus_pending_is_par_minus_loss_and_loan_order_does_not_matter(seed, lag, order) -> None:
    flows = _flows(S=2, L=5, T=6, seed=seed)
    pool = pool_cashflows(flows, recovery_lag=lag)
    total = (flows["default_par"] - flows["loss"]).sum(axis=(1, 2))
    np.testing.assert_allclose(pool.cashflows[..., K["recovery"]].sum(1) + pool.pending_recovery, total, rtol=0, atol=1e-6)
    shuffled = pool_cashflows({k: v[:, list(order)] for k, v in flows.items()}, recovery_lag=lag)
    np.testing.assert_array_equal(shuffled.cashflows, pool.cashflows)  # exact cent sums: order-free


@pytest.mark.parametrize("lag", [1.5, True, "3", -1, 10**6, np.array([1, 2]), None, [[1, 2, 3]]])
def test_bad_recovery_lag_is_one_config_error(lag) -> None:
    with pytest.raises(ConfigError, match="recovery_lag must be whole months"):
        pool_cashflows(_flows(), recovery_lag=lag)


def test_missing_or_misshapen_flows_name_the_key() -> None:
    flows = _flows()
    del flows["loss"]
    with pytest.raises(DataError, match=r"missing \['loss'\]"):
        pool_cashflows(flows)
    flows = _flows()
    flows["interest"] = flows["interest"][:, :, :3]
    with pytest.raises(DataError, match=r"loan flows\['interest'\]"):
        pool_cashflows(flows)
    with pytest.raises(DataError, match="missing"):
        stack_pool({"interest": np.zeros(3)})
    with pytest.raises(DataError, match="months >= 0"):
        book_recoveries(np.zeros((2, 3)), -1)
