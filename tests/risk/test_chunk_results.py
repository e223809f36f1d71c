"""ChunkResults: a run's chunks copied into whole-run arrays as they arrive, in any order."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.errors import ConfigError
from creditsim.risk.chunk_results import ChunkResults

_ROWS = [(0, 4), (4, 9), (9, 10)]


def _chunk(start: int, stop: int, with_criteria: bool) -> dict:
    rng = np.random.default_rng(start)
    s = stop - start

    def tranche(scale: float, pv: bool) -> dict:
        return {"losses": rng.random(s) * scale, "irr": rng.normal(size=s), "wal": rng.random(s) * 5,
                "pv_losses": rng.random(s) if pv else None, "balance": 80.0 * scale, "coupon": 0.05,
                "attachment": 0.2, "detachment": 1.0, "equity": False}

    out = {"portfolio_losses": rng.random(s), "tranches": {"A": tranche(1.0, True), "E": tranche(0.5, False)},
           "pool": rng.random((s, 6, 7)), "oc_ratio": rng.random((s, 6, 1)).astype(np.float32)}
    if with_criteria:
        out["reinvestment_criteria"] = rng.random((s, 6, 4))
    return out


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_chunks_arriving_in_any_order_give_the_concatenation_in_task_order(order):
    chunks = [_chunk(a, b, with_criteria=True) for a, b in _ROWS]
    gathered = ChunkResults(10, ["A", "E"])
    for i in order:
        gathered.add(*_ROWS[i], chunks[i])
    labels, macro = np.arange(10) % 4, np.zeros((10, 6, 9))
    res = gathered.results(labels, macro, 100.0)
    np.testing.assert_array_equal(res.portfolio_losses, np.concatenate([c["portfolio_losses"] for c in chunks]))
    for key in ("pool", "oc_ratio", "reinvestment_criteria"):
        want = np.concatenate([c[key] for c in chunks])
        np.testing.assert_array_equal(res.cashflows[key], want)
    assert sorted(res.cashflows) == ["oc_ratio", "pool", "reinvestment_criteria"]
    a, e = res.tranche_results
    assert (a.name, e.name, a.balance, e.balance) == ("A", "E", 80.0, 40.0)
    for field in ("losses", "irr", "wal", "pv_losses"):
        np.testing.assert_array_equal(getattr(a, field), np.concatenate([c["tranches"]["A"][field] for c in chunks]))
    assert e.pv_losses is None
    np.testing.assert_array_equal(e.losses, np.concatenate([c["tranches"]["E"]["losses"] for c in chunks]))
    assert res.initial_balance == 100.0
    np.testing.assert_array_equal(res.scenarios, labels)


def test_an_incomplete_run_or_a_misplaced_chunk_is_refused():
    gathered = ChunkResults(10, ["A", "E"])
    gathered.add(0, 4, _chunk(0, 4, with_criteria=False))
    with pytest.raises(ConfigError, match="4 of 10 scenarios arrived"):
        gathered.results(np.zeros(10), np.zeros((10, 6, 9)), 1.0)
    with pytest.raises(ConfigError, match="rows 8..11 lie outside the run's 10 scenarios"):
        gathered.add(8, 12, _chunk(8, 12, with_criteria=False))
    with pytest.raises(ConfigError, match=r"portfolio_losses has shape \(5,\), expected 3 scenarios first"):
        gathered.add(4, 7, _chunk(4, 9, with_criteria=False))


def test_a_chunk_that_arrives_twice_or_does_not_fit_is_refused():
    gathered = ChunkResults(10, ["A", "E"])
    gathered.add(0, 4, _chunk(0, 4, with_criteria=False))
    with pytest.raises(ConfigError, match=r"chunk rows 2..5: row 2 has already arrived"):
        gathered.add(2, 6, _chunk(2, 6, with_criteria=False))
    short = _chunk(4, 9, with_criteria=False)
    short["pool"] = short["pool"][:, :5]
    with pytest.raises(ConfigError, match=r"chunk pool is float64 \(5, 5, 7\), expected float64 \(5, 6, 7\)"):
        gathered.add(4, 9, short)
    other = _chunk(4, 9, with_criteria=False)
    other["oc_ratio"] = other["oc_ratio"].astype(np.float64)
    with pytest.raises(ConfigError, match="chunk oc_ratio is float64 .* expected float32"):
        gathered.add(4, 9, other)
    # a chunk without an array the others have would leave its rows unwritten
    bare = _chunk(4, 9, with_criteria=False)
    del bare["pool"]
    with pytest.raises(ConfigError, match=r"chunk rows 4..8 bring arrays .* the chunks before them"):
        gathered.add(4, 9, bare)
