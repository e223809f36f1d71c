"""Cashflow engine: identities to the cent, schedule reproduction, an independent reference model,
pool = sum of loans, chunk invariance, Monte Carlo against closed forms, bad input."""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from creditsim.loans.book import LoanBook
from creditsim.loans.engine import (
    loan_cashflows,
    simulate_loan_level,
    simulate_pool_cashflows,
    simulate_pool_chunk,
)
from creditsim.loans.schedule import amortization_schedule
from creditsim.schema import AMORTIZATION_TYPES
from creditsim.errors import ConfigError, DataError
from creditsim.transitions.markov import base_case_matrix
from creditsim.states import ALLOWED_TRANSITIONS, POOL_CF_TYPES, LoanState

K = {name: i for i, name in enumerate(POOL_CF_TYPES)}
CENT = 0.005

# a stressed chain with every live move possible, so short tests see cures, rolls and exits
STRESSED = np.array(
    [
        [0.90, 0.05, 0.00, 0.00, 0.01, 0.03, 0.01],
        [0.30, 0.35, 0.25, 0.00, 0.05, 0.04, 0.01],
        [0.15, 0.10, 0.35, 0.30, 0.08, 0.01, 0.01],
        [0.10, 0.05, 0.05, 0.35, 0.44, 0.01, 0.00],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
    ],
    dtype=np.float64,
)


def _book(n: int = 40, seed: int = 0, **kw: object) -> LoanBook:
    rng = np.random.default_rng(seed)
    args = dict(
        balance=np.round(rng.uniform(1e3, 1e6, n), 2),
        annual_rate=rng.uniform(0.0, 0.2, n),
        remaining_term=rng.integers(1, 40, n),
        amortization=rng.choice(AMORTIZATION_TYPES, n),
        io_months=rng.integers(0, 10, n),
        lgd=rng.uniform(0.1, 0.9, n),
        initial_state=rng.choice([0, 0, 0, 1, 2, 3], n),
        recovery_lag=3,
    )
    args.update(kw)
    return LoanBook.from_arrays(**args)


# ---------------------------------------------------------------------------- independent reference
def _reference_loan(book: LoanBook, i: int, path: np.ndarray, lgd: float) -> dict[str, np.ndarray]:
    """A FIFO of unpaid instalments, written without the engine's tables: each month the instalment
    due (if any) joins the queue; a live state y leaves y instalments unpaid (oldest paid first)."""
    x0 = int(book.initial_state[i])
    n = int(book.remaining_term[i])
    io = int(book.io_months[i])
    sched = amortization_schedule(book.balance[i : i + 1], book.monthly_rate[i : i + 1], np.array([n + x0]),
                                  book.amortization[i : i + 1], np.array([io + x0 if io > 0 else 0]))
    inst = list(zip(sched.interest[0], sched.principal[0]))  # payment j+1 is due in month j - x0
    queue = deque(inst[:x0])
    outstanding = float(book.balance[i])
    m = n - 1
    months = len(path)
    out = {k: np.zeros(months) for k in ("interest", "scheduled_principal", "prepayment", "default_par", "balance")}
    states = np.zeros(months, dtype=np.int64)
    state = x0
    for t in range(months):
        if state >= 4:
            states[t] = state
            continue
        if t <= m:
            queue.append(inst[t + x0])
        y = int(path[t])
        if y == LoanState.DEFAULT:
            out["default_par"][t] = outstanding
            outstanding, state = 0.0, 4
        else:
            keep = 0 if y >= 4 else y
            while len(queue) > keep:
                it, pr = queue.popleft()
                out["interest"][t] += it
                out["scheduled_principal"][t] += pr
                outstanding -= pr
            if y >= 5:
                out["prepayment"][t] = outstanding
                outstanding = 0.0
                state = 6 if t >= m else 5
            elif y == 0 and t >= m:
                state = 6
            else:
                state = y
        out["balance"][t] = outstanding if state < 4 else 0.0
        states[t] = state
    out["states"] = states
    out["loss"] = np.round(out["default_par"] * lgd, 2)  # losses are booked in whole cents
    return out


def _random_paths(draw_int, book: LoanBook, months: int) -> np.ndarray:
    paths = np.zeros((book.n_loans, months), dtype=np.int64)
    for i in range(book.n_loans):
        x = int(book.initial_state[i])
        for t in range(months):
            choices = np.flatnonzero(ALLOWED_TRANSITIONS[x])
            x = int(choices[draw_int(len(choices))])
            paths[i, t] = x
    return paths


def _assert_identities(cf, book: LoanBook) -> None:
    opening = np.concatenate([np.broadcast_to(book.balance[None, :, None], cf.balance.shape[:2] + (1,)), cf.balance[..., :-1]], axis=-1)
    gap = opening - cf.scheduled_principal - cf.prepayment - cf.default_par - cf.balance
    assert np.abs(gap).max() < CENT, "opening - principal - default = closing"
    lag = book.recovery_lag
    rec_total = cf.recovery.sum(-1) + cf.pending_recovery
    np.testing.assert_allclose(cf.loss.sum(-1) + rec_total, cf.default_par.sum(-1), atol=CENT)
    if lag < cf.recovery.shape[-1]:
        np.testing.assert_allclose(cf.recovery[..., lag:], cf.default_par[..., :-lag or None] - cf.loss[..., :-lag or None], atol=CENT)
    absorbed_before = np.concatenate([np.zeros(cf.states.shape[:2] + (1,), bool), cf.states[..., :-1] >= 4], axis=-1)
    for name in ("interest", "scheduled_principal", "prepayment", "default_par", "balance"):
        assert (getattr(cf, name)[absorbed_before] == 0).all(), f"{name} paid after an absorbing state"
    for name in ("interest", "scheduled_principal", "prepayment", "default_par", "balance", "loss", "recovery"):
        assert (getattr(cf, name) >= -1e-9).all(), f"negative {name}"


# ---------------------------------------------------------------------------- deterministic paths
def test_all_current_path_reproduces_the_schedule_exactly() -> None:
    book = LoanBook.from_arrays([120_000.0, 50_000.0, 1e6, 30_000.0], [0.06, 0.09, 0.045, 0.12], [24, 12, 18, 10],
                                ["annuity", "linear", "bullet", "interest_only"], io_months=[0, 0, 0, 4])
    months = 30
    cf = loan_cashflows(book, np.zeros((4, months), dtype=np.int64))
    sched = amortization_schedule(book.balance, book.monthly_rate, book.remaining_term, book.amortization, book.io_months, n_columns=months)
    np.testing.assert_array_equal(cf.interest[0], sched.interest)
    np.testing.assert_array_equal(cf.scheduled_principal[0], sched.principal)
    np.testing.assert_array_equal(cf.balance[0], sched.balance[:, 1:])
    assert (cf.prepayment == 0).all() and (cf.default_par == 0).all()
    for i, n in enumerate(book.remaining_term):
        assert (cf.states[0, i, : n - 1] == LoanState.CURRENT).all()
        assert (cf.states[0, i, n - 1 :] == LoanState.MATURED).all()


def test_cure_pays_the_arrears_and_delinquency_pays_nothing() -> None:
    book = LoanBook.from_arrays([1200.0], [0.0], [12], ["linear"])  # 100 principal a month, no interest
    path = np.array([[0, 1, 2, 0, 1, 1, 0]])
    cf = loan_cashflows(book, path)
    np.testing.assert_allclose(cf.scheduled_principal[0, 0], [100, 0, 0, 300, 0, 100, 200])
    np.testing.assert_allclose(cf.balance[0, 0], [1100, 1100, 1100, 800, 800, 700, 500])


def test_default_writes_off_balance_with_arrears_and_recovers_after_lag() -> None:
    book = LoanBook.from_arrays([1200.0], [0.0], [12], ["linear"], lgd=0.4, recovery_lag=2)
    cf = loan_cashflows(book, np.array([[0, 1, 2, 4, 4, 4]]), lgd=np.array([[0.25]]))
    assert cf.default_par[0, 0, 3] == 1100.0  # two missed instalments are still owed principal
    assert cf.loss[0, 0, 3] == pytest.approx(275.0)
    assert cf.recovery[0, 0, 5] == pytest.approx(825.0)
    assert cf.pending_recovery[0, 0] == 0.0
    late = loan_cashflows(book, np.array([[0, 0, 0, 0, 0, 4]]), lgd=np.array([[0.25]]))
    assert late.pending_recovery[0, 0] == pytest.approx(0.75 * 700.0)
    assert late.recovery.sum() == 0.0


def test_prepayment_pays_arrears_and_balance_and_early_matured_draw_is_prepaid() -> None:
    book = LoanBook.from_arrays([1200.0], [0.0], [12], ["linear"])
    cf = loan_cashflows(book, np.array([[0, 1, 6, 6]]))
    assert cf.states[0, 0, 2] == LoanState.PREPAID
    assert cf.scheduled_principal[0, 0, 2] == pytest.approx(200.0)
    assert cf.prepayment[0, 0, 2] == pytest.approx(900.0)


def test_delinquent_at_maturity_owes_balloon_until_cure() -> None:
    book = LoanBook.from_arrays([1000.0], [0.12], [3], ["bullet"])
    cf = loan_cashflows(book, np.array([[0, 0, 1, 2, 2, 0, 0]]))
    np.testing.assert_allclose(cf.balance[0, 0], [1000, 1000, 1000, 1000, 1000, 0, 0])
    assert cf.scheduled_principal[0, 0, 5] == pytest.approx(1000.0)
    assert cf.interest[0, 0, 5] == pytest.approx(10.0)  # the missed final coupon, no default interest
    assert cf.states[0, 0, 5] == LoanState.MATURED


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), months=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_identities_and_reference_model_on_random_tapes_and_paths(data: st.DataObject, n: int, months: int, seed: int) -> None:
    book = _book(n, seed, remaining_term=np.random.default_rng(seed).integers(1, 25, n))
    paths = _random_paths(lambda k: data.draw(st.integers(0, k - 1)), book, months)
    lgd = np.random.default_rng(seed + 1).uniform(0, 1, (1, n))
    cf = loan_cashflows(book, paths, lgd=lgd)
    _assert_identities(cf, book)
    for i in range(n):
        ref = _reference_loan(book, i, paths[i], lgd[0, i])
        np.testing.assert_array_equal(cf.states[0, i], ref["states"])
        for name in ("interest", "scheduled_principal", "prepayment", "default_par", "balance", "loss"):
            np.testing.assert_allclose(getattr(cf, name)[0, i], ref[name], atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------- sampled paths
def test_sampled_loan_level_identities_and_pool_equals_sum_of_loans() -> None:
    book = _book(60, 3)
    ids = np.arange(7)
    ll = simulate_loan_level(book, STRESSED, ids, seed=11, n_months=36)
    _assert_identities(ll, book)
    prev = np.concatenate([np.broadcast_to(book.initial_state[None, :, None], ll.states.shape[:2] + (1,)), ll.states[..., :-1]], axis=-1)
    live = prev < 4
    assert ALLOWED_TRANSITIONS[prev[live], ll.states[live]].all()
    pool, pending = simulate_pool_chunk(book, STRESSED, ids, seed=11, n_months=36, return_pending=True)
    np.testing.assert_array_equal(pool, ll.pool())
    np.testing.assert_allclose(pending, ll.pending_recovery.sum(1), atol=1e-6)


def test_same_seed_identical_pool_cashflows_for_chunk_sizes_1000_and_7919() -> None:
    book = _book(12, 5, recovery_lag=2)
    a = simulate_pool_cashflows(book, STRESSED, 8000, seed=42, n_months=18, chunk_size=1000)
    b = simulate_pool_cashflows(book, STRESSED, 8000, seed=42, n_months=18, chunk_size=7919)
    np.testing.assert_array_equal(a.cashflows, b.cashflows)
    np.testing.assert_array_equal(a.pending_recovery, b.pending_recovery)
    other_seed = simulate_pool_chunk(book, STRESSED, np.arange(100), seed=43, n_months=18)
    assert not np.array_equal(a.cashflows[:100], other_seed)


def test_results_do_not_depend_on_loan_chunk_or_scenario_slice() -> None:
    book = _book(2600, 9)
    ids = np.array([5, 17, 900])
    full = simulate_pool_chunk(book, STRESSED, ids, seed=3, n_months=6, loan_chunk=4096)
    small = simulate_pool_chunk(book, STRESSED, ids, seed=3, n_months=6, loan_chunk=1000)
    np.testing.assert_array_equal(full, small)  # exact cent sums: bit-identical, not just close
    single = simulate_pool_chunk(book, STRESSED, ids[1:2], seed=3, n_months=6)
    np.testing.assert_array_equal(full[1:2], single)


def test_a_history_kept_across_chunks_gives_the_same_numbers() -> None:
    """simulate_pool_chunk's ``history``: the contractual history is built by the first chunk, reused by the
    next, and keyed by loan block and horizon (a different horizon or loan chunk builds its own)."""
    book = _book(2600, 9)
    history: dict = {}
    for ids in (np.array([5, 17]), np.array([900, 901, 2])):
        kept = simulate_pool_chunk(book, STRESSED, ids, seed=3, n_months=6, loan_chunk=1024, history=history)
        fresh = simulate_pool_chunk(book, STRESSED, ids, seed=3, n_months=6, loan_chunk=1024)
        np.testing.assert_array_equal(kept, fresh)
    assert len(history) == 3  # three loan blocks, built once
    longer = simulate_pool_chunk(book, STRESSED, np.array([5]), seed=3, n_months=9, loan_chunk=2048, history=history)
    np.testing.assert_array_equal(longer, simulate_pool_chunk(book, STRESSED, np.array([5]), seed=3, n_months=9))
    assert len(history) == 5


def test_chunks_on_threads_build_each_history_block_once(monkeypatch) -> None:
    """Two chunks on threads that miss the same history block at once: one builds it, the other waits and
    reuses it (a second build doubled the time and transient memory), and both get the same numbers."""
    import threading
    import time

    import creditsim.loans.engine as engine_mod

    book = _book(300, 9)
    history: dict = {}
    builds = []
    real = engine_mod.contractual_history

    def slow(*args, **kwargs):
        builds.append(threading.current_thread().name)
        time.sleep(0.2)  # both threads ask while the first build runs
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_mod, "contractual_history", slow)
    out: dict = {}

    def run(name: str, ids: np.ndarray) -> None:
        out[name] = simulate_pool_chunk(book, STRESSED, ids, seed=3, n_months=6, history=history)

    threads = [threading.Thread(target=run, args=(f"t{k}", np.array([k, k + 10]))) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(history) == 1
    for k in range(2):
        np.testing.assert_array_equal(out[f"t{k}"], simulate_pool_chunk(book, STRESSED, np.array([k, k + 10]),
                                                                         seed=3, n_months=6))


def test_grouped_pool_sums_to_total_and_initial_balance_by_group() -> None:
    book = _book(50, 2, asset_class=np.random.default_rng(2).integers(0, 4, 50))
    ids = np.arange(4)
    total = simulate_pool_chunk(book, STRESSED, ids, seed=1, n_months=12)
    grouped = simulate_pool_chunk(book, STRESSED, ids, seed=1, n_months=12, group_by="asset_class")
    assert grouped.shape == (4, 12, 4, len(POOL_CF_TYPES))
    np.testing.assert_allclose(grouped.sum(2), total, rtol=1e-12, atol=1e-6)
    res = simulate_pool_cashflows(book, STRESSED, 4, seed=1, n_months=12, group_by="asset_class")
    np.testing.assert_allclose(res.initial_balance.sum(), book.initial_balance)


def test_known_matrix_default_and_prepay_probabilities_within_monte_carlo_error() -> None:
    # equal bullet loans that outlive the horizon: the pool's cumulative default par / par is the
    # fraction of loans absorbed in DEFAULT, whose probability is (P^T)[CURRENT, DEFAULT]
    n_loans, months, sims = 500, 24, 40
    book = LoanBook.from_arrays(np.full(n_loans, 1000.0), 0.06, 120, "bullet")
    res = simulate_pool_cashflows(book, STRESSED, sims, seed=8, n_months=months, chunk_size=16)
    pt = np.linalg.matrix_power(STRESSED, months)[LoanState.CURRENT]
    n = n_loans * sims
    for state, k in ((LoanState.DEFAULT, "default_par"), (LoanState.PREPAID, "prepayment")):
        observed = res.cashflows[..., K[k]].sum() / (1000.0 * n)
        p = pt[state] + (pt[LoanState.MATURED] if state == LoanState.PREPAID else 0.0)  # early MATURED -> PREPAID
        se = np.sqrt(p * (1 - p) / n)
        assert abs(observed - p) < 4 * se, (state, observed, p, se)


def test_scenario_matrices_and_risk_shift_drive_defaults() -> None:
    book = LoanBook.from_arrays(np.full(400, 1000.0), 0.05, 60, "bullet", risk_shift=np.repeat([0.0, 1.5], 200))
    benign = base_case_matrix("corporate")
    stressed = STRESSED
    mats = np.stack([np.broadcast_to(benign, (12, 7, 7)), np.broadcast_to(stressed, (12, 7, 7))])  # (2, T, 7, 7)
    ll = simulate_loan_level(book, mats, np.arange(2), seed=4, n_months=12)
    defaulted = (ll.states[:, :, -1] == LoanState.DEFAULT)
    assert defaulted[1].mean() > defaulted[0].mean() + 0.1
    assert defaulted[1, 200:].mean() > defaulted[1, :200].mean()
    # benign matrix has no CURRENT->DEFAULT or MATURED moves: never sampled even with a shift
    prev = np.concatenate([np.zeros((2, 400, 1), np.int8), ll.states[..., :-1]], axis=-1)
    assert not ((prev[0] == 0) & (ll.states[0] == LoanState.DEFAULT)).any()


def test_lgd_draws_have_the_assumed_mean_and_deterministic_limit() -> None:
    book = LoanBook.from_arrays(np.full(1000, 1000.0), 0.05, 12, "annuity", lgd=0.4, lgd_concentration=5.0)
    ll = simulate_loan_level(book, STRESSED, np.arange(3), seed=1, n_months=2)
    assert ll.lgd.mean() == pytest.approx(0.4, abs=0.01)
    assert ll.lgd.var() == pytest.approx(0.4 * 0.6 / 6, rel=0.1)
    fixed = LoanBook.from_arrays(np.full(10, 1000.0), 0.05, 12, "annuity", lgd=0.4, lgd_concentration=np.inf)
    assert (simulate_loan_level(fixed, STRESSED, np.arange(2), seed=1, n_months=2).lgd == 0.4).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    book = _book(300, 1)
    a = simulate_pool_chunk(book, STRESSED, np.arange(16), seed=2, n_months=24, device="cpu")
    b = simulate_pool_chunk(book, STRESSED, np.arange(16), seed=2, n_months=24, device="cuda")
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-6)


# ---------------------------------------------------------------------------- bad input
def _tape(**overrides: object) -> pd.DataFrame:
    base = {
        "loan_id": ["a", "b"], "origination_date": ["2023-01-15", "2023-06-01"], "maturity_date": ["2026-01-15", "2025-06-01"],
        "original_balance": [100_000.0, 5000.0], "interest_rate": [0.06, 0.12], "rate_type": ["fixed", "fixed"],
        "payment_frequency": ["monthly", "monthly"], "amortization_type": ["annuity", "linear"],
        "asset_class": ["corporate", "consumer"], "term_months": [36, 24], "geography_country": ["DE", "FR"],
        "borrower_type": ["sme", "consumer"], "originator_id": ["o1", "o1"], "vintage": ["2023-01", "2023-06"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_from_tape_builds_terms_at_a_cutoff() -> None:
    book = LoanBook.from_tape(_tape(), cutoff="2024-01-31")
    np.testing.assert_array_equal(book.remaining_term, [24, 17])
    np.testing.assert_allclose(book.monthly_rate, [0.005, 0.01])
    assert book.balance[1] == pytest.approx(5000 * 17 / 24, abs=0.01)  # linear: contractual balance
    np.testing.assert_allclose(book.lgd, [0.45, 0.75])
    assert book.cohort_labels[book.cohort[1]] == "consumer"
    at_orig = LoanBook.from_tape(_tape(current_balance=[90_000.0, 5000.0]))
    np.testing.assert_array_equal(at_orig.remaining_term, [36, 24])
    assert at_orig.balance[0] == 90_000.0


@pytest.mark.parametrize(
    "kwargs, cutoff, match",
    [
        ({"remaining_term_months": [12, 0]}, None, "remaining_term_months"),
        ({}, "2026-03-01", "no remaining term"),
        ({"current_balance": [100_001.0, 10.0]}, None, "current_balance"),
        ({"interest_rate": [0.06, 1.2]}, None, "interest_rate"),
        ({}, "2022-12-01", "after the cut-off"),
    ],
)
def test_bad_tapes_raise_data_error_naming_column(kwargs: dict, cutoff: str | None, match: str) -> None:
    with pytest.raises(DataError, match=match):
        LoanBook.from_tape(_tape(**kwargs), cutoff=cutoff)


def test_bad_books_paths_and_matrices_raise() -> None:
    with pytest.raises(DataError, match="initial_state"):
        LoanBook.from_arrays([100.0], 0.05, 12, initial_state=[4])
    with pytest.raises(DataError, match="remaining_term"):
        LoanBook.from_arrays([100.0], 0.05, 0)
    with pytest.raises(DataError, match="balance <= original"):
        LoanBook.from_arrays([100.0], 0.05, 12, original_balance=[50.0])
    with pytest.raises(DataError, match="interest_rate"):
        LoanBook.from_arrays([100.0], 1.5, 12)
    book = _book(3)
    with pytest.raises(DataError, match="states must be in 0..6"):
        loan_cashflows(book, np.full((3, 4), 7))
    with pytest.raises(DataError, match="forbidden moves"):
        loan_cashflows(LoanBook.from_arrays([100.0], 0.05, 12), np.array([[0, 2]]))
    with pytest.raises(DataError, match="shape"):
        simulate_pool_chunk(book, np.eye(6), [0], 1, 3)
    bad = STRESSED.copy()
    bad[0, 0] -= 0.1
    with pytest.raises(DataError, match="sum to 1"):
        simulate_pool_chunk(book, bad, [0], 1, 3)
    forbidden = STRESSED.copy()
    forbidden[0, 0] -= 0.1
    forbidden[0, 2] += 0.1
    with pytest.raises(DataError, match="forbidden"):
        simulate_pool_chunk(book, forbidden, [0], 1, 3)
    with pytest.raises(DataError, match="month axis"):
        simulate_pool_chunk(book, np.broadcast_to(STRESSED, (1, 2, 7, 7)), [0], 1, 3)
    with pytest.raises(ConfigError, match="scenario_ids"):
        simulate_pool_chunk(book, STRESSED, [-1], 1, 3)
    with pytest.raises(ConfigError, match="n_months"):
        simulate_pool_chunk(book, STRESSED, [0], 1, 0)


def test_scenario_arrays_callables_and_progress_give_the_same_pool() -> None:
    book = _book(30, 4, cohort=np.arange(30) % 2, cohort_labels=("a", "b"))
    rng = np.random.default_rng(0)
    mats = np.empty((10, 2, 8, 7, 7))
    for idx in np.ndindex(10, 2, 8):
        mats[idx] = STRESSED if rng.random() < 0.5 else base_case_matrix("consumer")
    seen = []
    by_array = simulate_pool_cashflows(book, mats, 10, seed=6, n_months=8, chunk_size=3, progress=lambda d, n: seen.append((d, n)))
    by_call = simulate_pool_cashflows(book, lambda ids: mats[ids], 10, seed=6, n_months=8, chunk_size=4)
    np.testing.assert_array_equal(by_array.cashflows, by_call.cashflows)
    np.testing.assert_array_equal(by_array.cashflows[5:7], simulate_pool_chunk(book, mats[5:7], [5, 6], 6, 8))
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert by_array.initial_balance == pytest.approx(book.initial_balance)
    with pytest.raises(DataError, match="n_sims"):
        simulate_pool_cashflows(book, mats[:4], 10, seed=6, n_months=8)


def test_month_loop_runs_on_one_cpu_thread_and_restores_the_callers_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The month loop's small products are 200x slower with two spinning OpenMP threads on a busy
    machine, so the library (not only the bench) runs it on one thread and restores the caller's count."""
    import creditsim.loans.engine as engine

    seen: list[int] = []
    step = engine._month_step_pool

    def spy(*args: object) -> object:
        seen.append(torch.get_num_threads())
        return step(*args)

    monkeypatch.setattr(engine, "_month_step_pool", spy)
    monkeypatch.setattr(engine, "FUSED_KERNEL", False)  # the torch step is the one that uses torch's threads
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        book = _book(30, seed=4)
        out = simulate_pool_chunk(book, STRESSED, np.arange(4), seed=1, n_months=6)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        loan = simulate_loan_level(book, STRESSED, np.arange(4), seed=1, n_months=6)
        np.testing.assert_array_equal(loan.pool(), out)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_pool_cashflows_are_written_into_one_preallocated_result() -> None:
    """Peak memory is the result plus one chunk, not the list of chunks plus their concatenation (2x)."""
    import tracemalloc

    book = _book(20, seed=6)
    simulate_pool_cashflows(book, STRESSED, 8, seed=2, n_months=60, chunk_size=4)  # warm caches and tables
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = simulate_pool_cashflows(book, STRESSED, 2000, seed=2, n_months=60, chunk_size=100)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert res.cashflows.shape == (2000, 60, len(POOL_CF_TYPES))
    assert peak < 1.4 * res.cashflows.nbytes, (peak, res.cashflows.nbytes)


def test_on_chunk_streams_the_same_numbers_and_keep_false_holds_nothing() -> None:
    book = _book(25, seed=8)
    full = simulate_pool_cashflows(book, STRESSED, 30, seed=3, n_months=12, chunk_size=7)
    seen: list[np.ndarray] = []
    total = np.zeros((12, len(POOL_CF_TYPES)))

    def reduce(ids: np.ndarray, cf: np.ndarray, pending: np.ndarray) -> None:
        seen.append(ids)
        total[:] += cf.sum(0)
        assert pending.shape == (len(ids),)

    assert simulate_pool_cashflows(book, STRESSED, 30, seed=3, n_months=12, chunk_size=7, on_chunk=reduce, keep=False) is None
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(30))
    np.testing.assert_allclose(total, full.cashflows.sum(0), rtol=1e-12)
    with pytest.raises(ConfigError, match="on_chunk"):
        simulate_pool_cashflows(book, STRESSED, 30, seed=3, n_months=12, keep=False)


def test_month_varying_matrices_given_as_3d_are_refused_not_read_as_cohorts() -> None:
    book = _book(12, seed=9, cohort=np.arange(12) % 4, cohort_labels=("a", "b", "c", "d"))
    by_month = np.broadcast_to(STRESSED, (24, 7, 7)).copy()
    with pytest.raises(ConfigError, match=r"\(C, 7, 7\).*24 matrices.*4 cohorts"):
        simulate_pool_chunk(book, by_month, np.arange(2), seed=0, n_months=24)
    with pytest.raises(ConfigError, match="1 cohorts"):
        simulate_pool_chunk(_book(12, seed=9), by_month, np.arange(2), seed=0, n_months=24)
    # the explicit forms work: per cohort, and month-varying shared by all scenarios
    per_cohort = simulate_pool_chunk(book, np.broadcast_to(STRESSED, (4, 7, 7)), np.arange(2), seed=0, n_months=24)
    shared = simulate_pool_chunk(book, by_month[None], np.arange(2), seed=0, n_months=24)
    np.testing.assert_allclose(shared, per_cohort, rtol=1e-12)


def test_bad_lgd_shapes_books_and_settings_raise_clear_errors() -> None:
    book = _book(5, seed=10, initial_state=0)
    paths = np.zeros((2, 5, 4), dtype=np.int64)
    with pytest.raises(DataError, match=r"lgd: expected a scalar, \(5,\) or \(2, 5\).*\(3,\)"):
        loan_cashflows(book, paths, lgd=np.full(3, 0.4))
    with pytest.raises(DataError, match="lgd"):
        loan_cashflows(book, paths, lgd="high")
    with pytest.raises(DataError, match="balance: expected numbers"):
        LoanBook.from_arrays(["abc"], 0.05, 12)
    with pytest.raises(DataError, match="io_months: rows .* not whole numbers"):
        LoanBook.from_arrays([1000.0], 0.05, 12, amortization="interest_only", io_months=[2.5])
    with pytest.raises(DataError, match="initial_state: rows .* not whole numbers"):
        LoanBook.from_arrays([1000.0], 0.05, 12, initial_state=[1.5])
    with pytest.raises(ConfigError, match="lgd_concentration"):
        LoanBook.from_arrays([1000.0], 0.05, 12, lgd_concentration="tight")
    shifted = LoanBook.from_arrays([1.0e4, 2.0e4], 0.05, 12, risk_shift=[0.1, 0.2])
    with pytest.raises(ConfigError, match="max_risk_bins"):
        simulate_pool_chunk(shifted, STRESSED, [0], 1, 3, max_risk_bins=0)


def test_book_keeps_per_loan_arrays_aligned_when_matured_loans_are_dropped() -> None:
    """Per-loan cohort / risk-shift arrays describe the whole tape; dropping matured loans keeps the
    rows of the loans that stay (it used to fail with a shape mismatch), and a cohort column with missing
    values makes a 'missing' cohort instead of a TypeError."""
    import pandas as pd

    from creditsim.examples import example_path

    tape = pd.read_parquet(example_path("loans_example.parquet"))
    n = len(tape)
    marker = np.arange(n) % 3
    shift = np.round(np.linspace(-1, 1, n), 3)
    book = LoanBook.from_tape(tape, cutoff="2031-01-01", cohort=marker, risk_shift=shift, drop_matured=True)
    assert 0 < len(book.balance) < n
    kept = np.array([tape.index.get_loc(label) for label in book.row_labels])
    np.testing.assert_array_equal(book.cohort, marker[kept])
    np.testing.assert_array_equal(book.risk_shift, shift[kept])
    rated = LoanBook.from_tape(tape, cohort="rating")
    assert "missing" in rated.cohort_labels and tape["rating"].isna().any()
