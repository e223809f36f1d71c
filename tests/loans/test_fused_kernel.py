"""The fused numba month kernel (creditsim.loans.fused) gives the torch month step's numbers, bit for bit.

The torch step is the reference (it is the loan-level path too); the kernel must agree on every
feature that changes a month: arrears at the cut-off, maturity inside the horizon (and delinquency
after it), floating bases with floors and resets, groups, risk bins, per-scenario and month-varying
matrices, degenerate LGDs, and a book that is not a whole number of RNG blocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import creditsim.loans.engine as engine
from creditsim.loans.book import LoanBook
from creditsim.loans.fused import sfc64_uniforms
from creditsim.rng import sfc64_generator
from creditsim.states import ASSET_CLASSES
from creditsim.transitions.markov import MarkovTransitionModel


def _book(n: int, seed: int, *, floating: bool = True) -> LoanBook:
    rng = np.random.default_rng(seed)
    asset = rng.integers(0, len(ASSET_CLASSES), n)
    float_mask = rng.random(n) < 0.5 if floating else None
    return LoanBook.from_arrays(
        balance=np.round(rng.uniform(1e3, 5e5, n), 2),
        annual_rate=rng.uniform(0.02, 0.15, n),
        remaining_term=rng.integers(1, 40, n),
        amortization=rng.choice(["annuity", "linear", "bullet", "interest_only"], n),
        io_months=rng.integers(0, 6, n),
        lgd=np.where(rng.random(n) < 0.1, rng.choice([0.0, 1.0], n), rng.uniform(0.1, 0.9, n)),
        cohort=asset,
        cohort_labels=ASSET_CLASSES,
        asset_class=asset,
        risk_shift=np.round(rng.normal(0.0, 0.5, n), 1),
        initial_state=rng.choice([0, 0, 0, 0, 1, 2, 3], n),
        floating=float_mask,
        index_floor=np.where(rng.random(n) < 0.3, 0.01, np.nan) if floating else None,
        reset_months=rng.choice([1, 3], n) if floating else None,
    )


def _macro_matrices(s: int, months: int, seed: int) -> np.ndarray:
    model = MarkovTransitionModel.default()
    rng = np.random.default_rng(seed)
    shock = np.cumsum(rng.normal(0, 0.3, (s, months, len(model.macro_mean_))), axis=1)
    return model.scenario_matrices(model.macro_mean_ + model.macro_std_ * shock)


def _both(monkeypatch, *args, **kwargs):
    out = {}
    for fused in (False, True):
        monkeypatch.setattr(engine, "FUSED_KERNEL", fused)
        out[fused] = engine.simulate_pool_chunk(*args, **kwargs)
    return out[False], out[True]


@pytest.mark.parametrize("seed, key, skip", [(0, (0, 0), 0), (7, (3, 11), 5), (2**40, (999, 2), 1023)])
def test_uniforms_continue_numpys_sfc64_stream(seed, key, skip):
    rng = sfc64_generator(seed, *key)
    rng.random(skip, dtype=np.float32)  # an odd month of float32 draws leaves a half-used word
    st_ = rng.bit_generator.state
    words = st_["state"]["state"].copy()
    buffered = np.array([st_["has_uint32"], st_["uinteger"]], dtype=np.uint64)
    for n in (1, 1024, 3, 1000):
        np.testing.assert_array_equal(sfc64_uniforms(words, buffered, n), rng.random(n, dtype=np.float32))


def test_fused_matches_torch_with_every_month_feature(monkeypatch):
    book = _book(2500, 1)
    s, months = 6, 45  # past every maturity: delinquent loans roll on after it
    mats = _macro_matrices(s, months, 2)
    shift = np.cumsum(np.random.default_rng(3).normal(0, 0.002, (s, months)), axis=1)
    kw = dict(seed=11, n_months=months, loan_chunk=2048, group_by="asset_class", index_shift=shift,
              index_level=np.full(s, 0.03), return_pending=True)
    (ref, ref_pending), (got, got_pending) = _both(monkeypatch, book, mats, np.arange(5, 5 + s), **kw)
    assert ref.shape == (s, months, len(ASSET_CLASSES), got.shape[-1])
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got_pending, ref_pending)
    assert ref[..., 3].sum() > 0  # defaults happened, so the event path was exercised


def test_fused_matches_torch_with_shared_matrices_and_no_groups(monkeypatch):
    book = _book(1500, 4, floating=False)
    mats = MarkovTransitionModel.default().transition_matrix_
    ref, got = _both(monkeypatch, book, mats, np.array([0, 3, 9]), seed=2, n_months=30, loan_chunk=1024)
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 2100), months=st.integers(1, 30), seed=st.integers(0, 2**31), chunk=st.sampled_from([1024, 2048, 4096]))
def test_fused_matches_torch_on_random_books(n, months, seed, chunk):
    book = _book(n, seed)
    mats = _macro_matrices(2, months, seed + 1)
    ids = np.array([seed % 97, seed % 89 + 100])
    out = []
    for fused in (False, True):
        previous, engine.FUSED_KERNEL = engine.FUSED_KERNEL, fused
        try:
            out.append(engine.simulate_pool_chunk(book, mats, ids, seed=seed, n_months=months, loan_chunk=chunk,
                                                  group_by="asset_class"))
        finally:
            engine.FUSED_KERNEL = previous
    np.testing.assert_array_equal(out[1], out[0])


def test_thread_count_changes_nothing(monkeypatch):
    """The kernel runs on the caller's torch thread count (1: the serial build; 2: the parallel one)."""
    import creditsim.loans.fused as fused

    book = _book(3000, 5)
    mats = _macro_matrices(8, 20, 6)
    calls = {"serial": 0, "parallel": 0}
    for name, attr in (("serial", "pool_month_serial"), ("parallel", "pool_month")):
        kernel = getattr(fused, attr)

        def counted(*args, _kernel=kernel, _name=name):
            calls[_name] += 1
            return _kernel(*args)

        monkeypatch.setattr(fused, attr, counted)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(engine.simulate_pool_chunk(book, mats, np.arange(8), seed=3, n_months=20))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert calls["serial"] > 0 and (calls["parallel"] > 0 or numba.config.NUMBA_NUM_THREADS == 1)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_gpu_kernel_matches_the_cpu_kernel_in_numbas_cuda_simulator():
    """The CUDA kernel's logic, run by numba's simulator (no GPU needed; a real device is checked by
    bench/gpu_check.sh). A subprocess, because the simulator is chosen when numba is first imported."""
    worker = Path(__file__).with_name("cuda_sim_worker.py")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, str(worker)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "equal", done.stdout


def test_engine_keeps_the_torch_step_when_numba_cannot_load(monkeypatch, caplog):
    """E.g. numba finds no writable directory for its cache: the torch step runs, the reason is logged."""
    book = _book(1200, 7)
    mats = MarkovTransitionModel.default().transition_matrix_
    ref = engine.simulate_pool_chunk(book, mats, np.arange(3), seed=1, n_months=8)
    import creditsim.loans

    monkeypatch.setitem(sys.modules, "creditsim.loans.fused", None)  # the import raises ImportError
    monkeypatch.delattr(creditsim.loans, "fused", raising=False)
    monkeypatch.setattr(engine, "_FUSED_FAILURES_LOGGED", set())
    with caplog.at_level("WARNING", logger="creditsim.loans.engine"):
        got = engine.simulate_pool_chunk(book, mats, np.arange(3), seed=1, n_months=8)
        again = engine.simulate_pool_chunk(book, mats, np.arange(3), seed=1, n_months=8)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(again, ref)
    assert caplog.text.count("fused month kernel is unavailable") == 1  # once, not per chunk and caller


def _run_in_child(queue) -> None:
    book = _book(1100, 3)
    queue.put(engine.simulate_pool_chunk(book, MarkovTransitionModel.default().transition_matrix_, np.arange(4),
                                         seed=1, n_months=6))


def test_a_one_thread_process_can_fork_after_the_kernel_ran():
    """GNU OpenMP kills forked children of a process that started its pool; one thread starts none."""
    import multiprocessing

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = engine.simulate_pool_chunk(_book(1100, 3), MarkovTransitionModel.default().transition_matrix_,
                                         np.arange(4), seed=1, n_months=6)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_run_in_child, args=(queue,))
        child.start()
        got = queue.get(timeout=120)
        child.join(timeout=60)
    finally:
        torch.set_num_threads(before)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), s=st.integers(1, 3), c=st.integers(1, 4), months=st.integers(1, 3),
       float32=st.booleans(), zero_share=st.sampled_from([0.0, 0.3, 0.7]))
def test_month_thresholds_are_the_torch_thresholds(seed, s, c, months, float32, zero_share):
    """The numba thresholds (:func:`fused.month_thresholds`) equal :func:`cumulative_thresholds` bit for
    bit: rows with zero entries anywhere (a trailing zero gets 2.0 from the last positive entry on),
    float32 or float64 matrices, segments that skip or repeat cohorts."""
    from creditsim.loans import fused
    from creditsim.transitions.sampler import ABSORBED_THRESHOLDS, cumulative_thresholds

    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(7) * 0.7, size=(s, c, months, 7))
    p[rng.random(p.shape) < zero_share] = 0.0
    p[..., 0] += (p.sum(-1) == 0)  # no all-zero row
    p /= p.sum(-1, keepdims=True)
    p[..., 4:, :] = np.eye(7)[4:]  # absorbing unit rows
    m = p.astype(np.float32 if float32 else np.float64)
    seg = rng.integers(0, c, int(rng.integers(1, 6)))
    for t in range(months):
        ref = cumulative_thresholds(torch.from_numpy(m[:, seg, t]))  # (s, G, 7, 6)
        thr = np.empty((6, s * len(seg) * 7), dtype=np.float32)
        stay = np.empty(s * len(seg) * 7, dtype=np.float32)
        fused.month_thresholds(m, t, seg.astype(np.int64), ABSORBED_THRESHOLDS, thr, stay)
        np.testing.assert_array_equal(thr, ref.reshape(-1, 6).t().numpy())
        expect_stay = np.where(np.arange(7) == 0, ref[..., 0].numpy(), np.float32(-1.0)).reshape(-1)
        np.testing.assert_array_equal(stay, expect_stay)


def test_an_empty_scenario_chunk_gives_empty_sums():
    """A chunk of 0 scenarios (public chunk API) returns ``(0, T, ...)`` on the shared-rows path."""
    book = _book(50, 2, floating=False)
    out = engine.simulate_pool_chunk(book, MarkovTransitionModel.default().transition_matrix_,
                                     np.array([], dtype=np.int64), seed=1, n_months=5)
    assert out.shape[:2] == (0, 5)


def test_shared_month_varying_matrices_on_two_threads_match_torch_and_one_thread(monkeypatch):
    """Matrices shared by every scenario but changing by month (``(1, C, T, 7, 7)``: the shared-rows
    path, stay thresholds looked up once per month) give the torch step's sums, on 1 and 2 threads."""
    book = _book(2600, 9)
    mats = _macro_matrices(1, 25, 10)  # one path's matrices for all 6 scenarios
    ids = np.arange(20, 26)
    kw = dict(seed=5, n_months=25, loan_chunk=2048, group_by="asset_class")
    monkeypatch.setattr(engine, "FUSED_KERNEL", False)
    ref = engine.simulate_pool_chunk(book, mats, ids, **kw)
    monkeypatch.setattr(engine, "FUSED_KERNEL", True)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            np.testing.assert_array_equal(engine.simulate_pool_chunk(book, mats, ids, **kw), ref)
    finally:
        torch.set_num_threads(before)
    assert ref[..., 3].sum() > 0 and not np.array_equal(ref[0], ref[1])  # defaults, and scenarios differ
