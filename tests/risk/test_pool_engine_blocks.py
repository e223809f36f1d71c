"""PoolEngine.pool_cashflows runs a chunk in scenario blocks whose cohort matrices fit MATRIX_BYTES:
the blocks must give the chunk's numbers bit for bit, and the matrices' memory must be bounded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import creditsim.risk.pool_engine as pool_engine
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.macro.scenarios import fed_table_path
from creditsim.risk.pool_engine import PoolEngine
from creditsim.states import MACRO_VARS


@pytest.fixture(scope="module")
def engine() -> PoolEngine:
    # the example tape has every cohort kind: four asset classes, rated corporates, fixed-rate real estate
    tape = pd.read_parquet(example_path("loans_example.parquet")).sample(400, random_state=3)
    return PoolEngine.from_tape(tape, seed=11, horizon=18, cutoff="2025-01")


def _paths(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = fed_table_path(2025, "severely_adverse", 18)
    paths = np.repeat(base[None], n, axis=0)
    u = MACRO_VARS.index("unemployment_rate")
    paths[:, :, u] += rng.normal(0, 0.01, (n, 1)) * np.arange(18) / 18  # scenarios differ
    return paths


def test_scenario_blocks_give_the_chunks_numbers_bit_for_bit(engine, monkeypatch):
    ids = np.array([5, 900, 3, 41, 2**40, 7, 12], dtype=np.int64)
    paths = _paths(len(ids))
    whole = engine.pool_cashflows(paths, ids)
    blocks = []
    real = PoolEngine.cohort_matrices

    def counted(self, macro, out=None):
        blocks.append(len(macro))
        return real(self, macro, out)

    monkeypatch.setattr(PoolEngine, "cohort_matrices", counted)
    per_scenario = engine.n_cohorts() * engine.horizon * 49 * 8
    monkeypatch.setattr(pool_engine, "MATRIX_BYTES", 3 * per_scenario)  # 7 scenarios -> blocks of 3, 3, 1
    split = engine.pool_cashflows(paths, ids)
    assert blocks == [3, 3, 1]
    np.testing.assert_array_equal(split, whole)
    # and each scenario alone
    monkeypatch.setattr(pool_engine, "MATRIX_BYTES", 1)
    blocks.clear()
    single = engine.pool_cashflows(paths, ids)
    assert blocks == [1] * len(ids)
    np.testing.assert_array_equal(single, whole)


def test_blocks_reuse_the_threads_array_and_give_fresh_arrays_bits(engine, monkeypatch):
    """While the engine keeps matrix memory (a simulate run), every block a thread runs writes the cohort
    matrices into the same array, which an earlier call (other paths, more scenarios) left full of its own
    numbers: each block reads only what it wrote. Another thread has its own array; a pickled engine (a dask
    worker's copy) and a replaced one carry none; the release frees them, and an engine not keeping memory
    (one that outlives a run) holds nothing after a call."""
    import dataclasses
    import pickle
    import threading

    ids = np.array([5, 900, 3, 41, 2**40, 7, 12], dtype=np.int64)
    paths = _paths(len(ids))
    whole = engine.pool_cashflows(paths, ids)  # not keeping memory: fresh arrays
    assert engine._matrix_buffers == {}
    per_scenario = engine.n_cohorts() * engine.horizon * 49 * 8
    seen = []
    real = PoolEngine.cohort_matrices

    def recorded(self, macro, out=None):
        seen.append(out.__array_interface__["data"][0])
        return real(self, macro, out)

    other = _paths(12)
    other[:, :, MACRO_VARS.index("unemployment_rate")] += 0.05  # a harsher run fills the array first
    monkeypatch.setattr(engine, "keep_matrix_memory", True)
    try:
        engine.pool_cashflows(other, np.arange(12))
        monkeypatch.setattr(PoolEngine, "cohort_matrices", recorded)
        monkeypatch.setattr(pool_engine, "MATRIX_BYTES", 3 * per_scenario)
        split = engine.pool_cashflows(paths, ids)
        assert len(seen) == 3 and len(set(seen)) == 1  # one array for the three blocks
        np.testing.assert_array_equal(split, whole)
        mine = engine._matrix_buffers[threading.get_ident()]
        assert seen[0] == mine.__array_interface__["data"][0] and mine.shape[0] >= 3
        done = {}
        worker = threading.Thread(target=lambda: done.update(cf=engine.pool_cashflows(paths, ids)))
        worker.start()
        worker.join()
        np.testing.assert_array_equal(done["cf"], whole)
        assert seen[-1] != seen[0] and len(engine._matrix_buffers) == 2  # the other thread's own array
        copy = pickle.loads(pickle.dumps(engine))
        assert copy._matrix_buffers == {} and copy.keep_matrix_memory and len(engine._matrix_buffers) == 2
        assert dataclasses.replace(engine, seed=12)._matrix_buffers == {}
    finally:
        engine.release_matrix_memory()
    assert engine._matrix_buffers == {} and not engine.keep_matrix_memory


def test_simulate_keeps_matrix_memory_for_its_chunks_only(monkeypatch):
    """simulate's chunks run with the engine keeping its arrays, freed when the chunks are done, also when
    one fails."""
    import importlib

    import creditsim as cs

    sim = importlib.import_module("creditsim.risk.simulate")

    tape = pd.read_parquet(example_path("loans_example.parquet")).head(60)
    deal = cs.load_deal(example_path("example_clo.yaml"))
    engines, during = [], []
    real = PoolEngine.pool_cashflows

    def watched(self, macro, ids):
        engines.append(self)
        during.append((self.keep_matrix_memory, len(self._matrix_buffers)))
        return real(self, macro, ids)

    monkeypatch.setattr(PoolEngine, "pool_cashflows", watched)
    cs.simulate(tape, deal, n_simulations=6, chunk_size=2, horizon=12, macro="synthetic", seed=1, progress=False)
    assert [k for k, _ in during] == [True] * 3 and during[-1][1] == 1  # the first chunk's array, kept
    assert not engines[-1].keep_matrix_memory and engines[-1]._matrix_buffers == {}

    def failing(ctx, task):
        ctx.engine.pool_cashflows(task.macro, np.arange(task.start, task.stop))
        raise RuntimeError("chunk failed")

    monkeypatch.setattr(sim, "run_chunk", failing)
    with pytest.raises(RuntimeError, match="chunk failed"):
        cs.simulate(tape, deal, n_simulations=4, chunk_size=2, horizon=12, macro="synthetic", seed=1, progress=False)
    assert engines[-1]._matrix_buffers == {} and not engines[-1].keep_matrix_memory


def test_markov_writes_its_cohorts_in_place_with_the_checked_paths_bits(engine, monkeypatch):
    """The Markov chain writes its matrices into the cohort array (unchecked: stochastic by construction);
    the path of any other model (its output checked, then copied) gives the same bits."""
    paths = _paths(5)
    assert engine._markov_in_place(paths)
    direct = engine.cohort_matrices(paths)
    monkeypatch.setattr(PoolEngine, "_markov_in_place", lambda self, macro: False)
    copied = engine.cohort_matrices(paths)
    assert np.array_equal(direct.view(np.int64), copied.view(np.int64))
    shape = (5, engine.n_cohorts(), engine.horizon, 7, 7)
    with pytest.raises(ConfigError, match="C-contiguous float64 array of shape .* got float32"):
        engine.cohort_matrices(paths, np.empty(shape, dtype=np.float32))
    with pytest.raises(ConfigError, match="got float64 .*, not C-contiguous"):
        engine.cohort_matrices(paths, np.empty(shape, order="F"))
    with pytest.raises(ConfigError, match="got list"):
        engine.cohort_matrices(paths, [])


def test_blocks_are_equal_and_bounded(engine, monkeypatch):
    per_scenario = engine.n_cohorts() * engine.horizon * 49 * 8
    sizes = []
    monkeypatch.setattr(PoolEngine, "cohort_matrices", lambda self, macro, out=None: sizes.append(len(macro)) or
                        np.broadcast_to(np.eye(7), (len(macro), self.n_cohorts(), self.horizon, 7, 7)))
    monkeypatch.setattr(pool_engine, "simulate_pool_chunk",
                        lambda book, mats, ids, *a, **k: np.zeros((len(ids), engine.horizon, 7)))
    monkeypatch.setattr(pool_engine, "MATRIX_BYTES", 64 * per_scenario)
    out = engine.pool_cashflows(_paths(1)[[0] * 500], np.arange(500))
    assert out.shape == (500, engine.horizon, 7)
    assert sizes == [63] * 7 + [59]  # 8 blocks of at most 64, as equal as can be
    assert max(sizes) * per_scenario <= pool_engine.MATRIX_BYTES
    # two chunks in flight on threads share the budget: blocks of at most 32 each
    sizes.clear()
    monkeypatch.setattr(engine, "chunks_in_flight", 2)
    engine.pool_cashflows(_paths(1)[[0] * 500], np.arange(500))
    assert max(sizes) <= 32 and sum(sizes) == 500 and len(sizes) == 16


def test_simulate_on_chunk_threads_tells_the_engine_how_many_chunks_share_the_budget(monkeypatch):
    """simulate sets PoolEngine.chunks_in_flight to the local backend's threads (never more than the
    run's chunks), and 1 on one thread or on dask."""
    import torch

    import creditsim.risk.simulate as sim
    from creditsim.deal.config import load_deal

    seen = []
    real = sim.run_chunks
    monkeypatch.setattr(sim, "run_chunks", lambda runner, fn, ctx, *a, **k: seen.append(ctx.engine.chunks_in_flight)
                        or real(runner, fn, ctx, *a, **k))
    tape = pd.read_parquet(example_path("loans_example.parquet")).head(60)
    deal = load_deal(example_path("example_clo.yaml"))
    before = torch.get_num_threads()
    try:
        for threads, n in ((2, 4), (2, 2), (1, 4)):
            torch.set_num_threads(threads)
            sim.simulate(tape, deal, n_simulations=n, chunk_size=2, horizon=6, macro="synthetic", progress=False)
    finally:
        torch.set_num_threads(before)
    assert seen == [2, 1, 1]


def test_n_cohorts_is_the_matrices_cohort_axis(engine):
    assert engine.cohort_matrices(_paths(2)).shape[1] == engine.n_cohorts()
