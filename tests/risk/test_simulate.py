"""Monte Carlo orchestration: scenario mix, labels, macro paths, reproducibility across chunking and
backends, and the stress ordering of the demo portfolio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.datasets import load_fed_scenarios
from creditsim.errors import ConfigError, DataError
from creditsim.macro.scenarios import (
    DEFAULT_SCENARIO_MIX,
    build_macro_paths,
    draw_scenario_labels,
    mix_from_string,
    parse_scenario_mix,
)
from creditsim.states import MACRO_VARS, POOL_CF_TYPES


# ---------------------------------------------------------------- scenario mix and labels
def test_default_mix_is_60_25_10_5():
    np.testing.assert_allclose(parse_scenario_mix(None), [0.6, 0.25, 0.1, 0.05])
    assert sum(DEFAULT_SCENARIO_MIX.values()) == pytest.approx(1.0)


def test_mix_forms_agree():
    a = parse_scenario_mix({"baseline": 0.5, "severely_adverse": 0.5})
    b = mix_from_string("baseline=0.5, severely-adverse=0.5")
    c = parse_scenario_mix([0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(parse_scenario_mix("stagflation"), [0, 0, 0, 1])


@pytest.mark.parametrize("mix, match", [
    ({"baseline": 0.5, "adverse": 0.4}, "sum to 1"),
    ({"baseline": 1.2, "adverse": -0.2}, ">= 0"),
    ({"boom": 1.0}, "unknown scenario"),
    ("baseline=0.5,baseline=0.5", "given twice"),
    ("baseline=x", "must be a number"),
    ([0.5, 0.5], "expected 4 weights"),
    ("baseline,adverse", "name=weight"),
    ("baseline, adverse=1", "name=weight"),
])
def test_bad_mix_is_a_config_error(mix, match):
    with pytest.raises(ConfigError, match=match):
        parse_scenario_mix(mix)


def test_labels_are_stratified_and_seeded():
    w = parse_scenario_mix(None)
    lab = draw_scenario_labels(w, 1001, seed=7)
    counts = np.bincount(lab, minlength=4)
    # 600.6, 250.25, 100.1, 50.05 -> floors 600/250/100/50, the one left goes to the largest remainder
    assert counts.tolist() == [601, 250, 100, 50]
    np.testing.assert_array_equal(lab, draw_scenario_labels(w, 1001, seed=7))
    assert not np.array_equal(lab, draw_scenario_labels(w, 1001, seed=8))
    assert not np.array_equal(lab[:601], np.zeros(601))  # shuffled, not blocked


def test_synthetic_macro_paths_depend_on_seed_not_on_batching():
    w = parse_scenario_mix({"baseline": 0.5, "severely_adverse": 0.5})
    lab = draw_scenario_labels(w, 40, seed=3)
    p1 = build_macro_paths("synthetic", lab, 24, seed=3)
    assert p1.shape == (40, 24, 9)
    np.testing.assert_array_equal(p1, build_macro_paths("synthetic", lab, 24, seed=3))
    u = MACRO_VARS.index("unemployment_rate")
    # severely adverse paths peak higher in unemployment than baseline paths
    peak = p1[:, :, u].max(axis=1)
    assert peak[lab == 2].mean() > peak[lab == 0].mean() + 0.01


def test_macro_frame_and_array_inputs():
    lab = np.array([0, 2, 0])
    idx = pd.date_range("2025-01-01", periods=12, freq="MS")
    frame = pd.DataFrame(np.full((12, 9), 0.03), index=idx, columns=list(MACRO_VARS))
    paths = build_macro_paths(frame, lab, 12, seed=0)
    assert paths.shape == (3, 12, 9) and np.all(paths == 0.03)
    with pytest.raises(DataError, match="horizon needs 24"):
        build_macro_paths(frame, lab, 24, seed=0)
    bad = frame.copy()
    bad["unemployment_rate"] = 5.0  # percent, not a decimal
    with pytest.raises(DataError, match="unemployment_rate"):
        build_macro_paths(bad, lab, 12, seed=0)
    with pytest.raises(DataError, match="expected shape"):
        build_macro_paths(np.zeros((2, 12, 9)), lab, 12, seed=0)
    with pytest.raises(ConfigError, match="macro must be one of"):
        build_macro_paths("crystal_ball", lab, 12, seed=0)


# ---------------------------------------------------------------- end to end with a stress-sensitive chain
class StressMarkov:
    """A macro-conditioned chain (test double of the transition model interface): onset of
    delinquency and the 90 dpd -> default roll scale with exp(25 (unemployment - 4.5 %))."""

    def scenario_matrices(self, macro: np.ndarray) -> np.ndarray:
        s, t, _ = macro.shape
        mult = np.exp(25.0 * (macro[:, :, MACRO_VARS.index("unemployment_rate")] - 0.045))
        P = np.zeros((s, t, 7, 7))
        onset = np.clip(0.015 * mult, 0, 0.3)
        P[..., 0, 1], P[..., 0, 5] = onset, 0.008
        P[..., 0, 0] = 1 - onset - 0.008
        P[..., 1, 0], P[..., 1, 2], P[..., 1, 1] = 0.4, 0.3, 0.3
        P[..., 2, 0], P[..., 2, 3], P[..., 2, 2] = 0.2, 0.4, 0.4
        d = np.clip(0.5 * mult, 0, 0.85)
        P[..., 3, 0], P[..., 3, 4] = 0.1, d
        P[..., 3, 3] = 0.9 - d
        for a in (4, 5, 6):
            P[..., a, a] = 1.0
        return P


@pytest.fixture(scope="module")
def small_tape():
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(300, 1, random_seed=11).generate()
    return loans


@pytest.fixture(scope="module")
def small_deal():
    from creditsim.deal.config import WaterfallConfig

    return WaterfallConfig(name="T", tranches=[
        {"name": "A", "balance": 70, "coupon": 0.05},
        {"name": "B", "balance": 15, "coupon": 0.07},
        {"name": "C", "balance": 10, "coupon": 0.09, "deferrable": True},
        {"name": "Equity", "balance": 5, "equity": True},
    ])


def _run(tape, deal, **kw):
    from creditsim.risk.simulate import simulate

    args = dict(n_simulations=24, macro="synthetic", seed=5, chunk_size=24, horizon=24,
                transition_model=StressMarkov(), progress=False)
    args.update(kw)
    return simulate(tape, deal, **args)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.portfolio_losses, b.portfolio_losses)
    np.testing.assert_array_equal(a.scenarios, b.scenarios)
    np.testing.assert_array_equal(a.cashflows["pool"], b.cashflows["pool"])
    for x, y in zip(a.tranche_results, b.tranche_results):
        np.testing.assert_array_equal(x.losses, y.losses)
        np.testing.assert_array_equal(x.irr, y.irr)


def test_same_seed_same_results_across_chunk_sizes(small_tape, small_deal):
    ref = _run(small_tape, small_deal, chunk_size=24)
    _assert_same(ref, _run(small_tape, small_deal, chunk_size=5))
    _assert_same(ref, _run(small_tape, small_deal, chunk_size=1000))
    other = _run(small_tape, small_deal, seed=6)
    assert not np.array_equal(ref.portfolio_losses, other.portfolio_losses)


def test_dask_backend_matches_local(small_tape, small_deal):
    from dask.distributed import Client, LocalCluster

    ref = _run(small_tape, small_deal, chunk_size=7)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        got = _run(small_tape, small_deal, chunk_size=7, backend="dask", client=client)
    _assert_same(ref, got)


def test_dask_process_workers_match_local(small_tape, small_deal):
    """The default dask path: a private 2-process LocalCluster (everything a chunk needs is pickled to
    other processes); the numbers are the local ones bit for bit."""
    from creditsim.risk.simulate import simulate

    kw = dict(n_simulations=12, macro="synthetic", seed=5, chunk_size=5, horizon=12, progress=False)
    ref = simulate(small_tape, small_deal, **kw)
    got = simulate(small_tape, small_deal, backend="dask", **kw)
    _assert_same(ref, got)
    assert got.settings["backend"] == "dask"


def test_result_is_consistent_with_the_pool_cashflows(small_tape, small_deal):
    r = _run(small_tape, small_deal)
    pool = r.cashflows["pool"]
    loss = pool[:, :, POOL_CF_TYPES.index("loss")].sum(axis=1)
    np.testing.assert_allclose(r.portfolio_losses, loss / r.initial_balance, rtol=1e-12)
    assert r.initial_balance == pytest.approx(small_tape["current_balance"].sum(), rel=1e-9)
    # the deal is scaled to the pool: tranche notionals add up to the pool balance
    assert sum(t.balance for t in r.tranche_results) == pytest.approx(r.initial_balance, rel=1e-9)
    assert r.settings["seed"] == 5 and r.settings["scenario_mix"]["baseline"] == 0.6
    assert r.macro_paths.shape == (24, 24, 9)


def test_severe_mix_loses_more_and_tranches_are_ordered(small_tape, small_deal):
    base = _run(small_tape, small_deal, scenario_mix="baseline", n_simulations=32, chunk_size=32)
    severe = _run(small_tape, small_deal, scenario_mix="severely_adverse", n_simulations=32, chunk_size=32)
    assert severe.expected_loss > base.expected_loss
    el = {t.name: t.expected_loss for t in severe.tranche_results}
    assert el["Equity"] >= el["C"] >= el["B"] >= el["A"]
    assert el["Equity"] > el["A"]


def test_bad_inputs_fail_before_any_work(small_tape, small_deal):
    from creditsim.risk.simulate import simulate

    with pytest.raises(ConfigError, match="sum to 1"):
        simulate(small_tape, small_deal, scenario_mix={"baseline": 0.3}, progress=False)
    with pytest.raises(ConfigError, match="engine must be one of"):
        simulate(small_tape, small_deal, engine="magic", progress=False)
    with pytest.raises(ConfigError, match="n_simulations"):
        simulate(small_tape, small_deal, n_simulations=0, progress=False)
    with pytest.raises(ConfigError, match="backend"):
        simulate(small_tape, small_deal, backend="spark", progress=False)
    with pytest.raises(ConfigError, match="mode must be one of"):
        simulate(small_tape, small_deal, mode="fuzzy", progress=False)
    bad = small_tape.drop(columns=["maturity_date"])
    with pytest.raises(DataError, match="maturity_date"):
        simulate(bad, small_deal, progress=False, transition_model=StressMarkov())


# ---------------------------------------------------------------- rated loans: rating-chain default hazard
def test_rating_hazard_reproduces_the_chain_default_time_distribution():
    from creditsim.risk.pool_engine import rating_default_hazard

    rng = np.random.default_rng(0)
    M = rng.uniform(size=(8, 8)) * np.r_[np.ones(7), 0.05]  # small default column
    M[7] = 0.0
    M[7, 7] = 1.0
    M /= M.sum(axis=1, keepdims=True)
    T = 30
    h = rating_default_hazard(np.broadcast_to(M, (2, T, 8, 8)))
    assert h.shape == (2, 7, T)
    np.testing.assert_allclose(h[:, :, 0], np.broadcast_to(M[:7, 7], (2, 7)))
    # survival from the hazards == 1 - P(chain in D at t) from matrix powers
    surv = np.cumprod(1.0 - h[0], axis=1)
    for t in (1, 12, 29):
        pd_chain = np.linalg.matrix_power(M, t + 1)[:7, 7]
        np.testing.assert_allclose(1.0 - surv[:, t], pd_chain, rtol=1e-10)


def test_rated_cohort_rows_are_stochastic_and_allowed():
    from creditsim.risk.pool_engine import rated_cohort_matrices
    from creditsim.states import ALLOWED_TRANSITIONS

    corp = StressMarkov().scenario_matrices(np.full((3, 5, 9), 0.05))
    hz = np.full((3, 7, 5), 0.01)
    hz[:, 6] = 0.999  # a hazard larger than the room left: clipped, rows still sum to 1
    m = rated_cohort_matrices(hz, corp)
    assert m.shape == (3, 7, 5, 7, 7)
    np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-12)
    assert np.all(m >= 0) and np.all(m[..., ~ALLOWED_TRANSITIONS] == 0)
    assert np.allclose(m[:, 0, :, 0, 4], 0.01) and np.all(m[:, :, :, 0, 1] == 0)


def _rated_rows_numpy(hazard, corporate):
    """The rated rows as plain numpy arithmetic (the pre-kernel implementation): the compiled pass must give
    its bits."""
    base = np.empty(hazard.shape + (7, 7))
    base[...] = corporate[:, None]
    p, m = base[..., 0, 5], base[..., 0, 6]
    h = np.minimum(hazard, np.maximum(1.0 - p - m, 0.0))
    row = np.zeros(base.shape[:-2] + (7,))
    row[..., 4], row[..., 5], row[..., 6] = h, p, m
    row[..., 0] = np.maximum(1.0 - h - p - m, 0.0)
    row /= row.sum(axis=-1, keepdims=True)
    base[..., 0, :] = row
    return base


def test_rated_cohort_matrices_give_the_numpy_arithmetics_bits_into_strided_memory():
    """Random corporate rows (prepayment plus maturity up to, at and beyond 1), hazards below, at and above
    the room left, zero and tiny ones: bit for bit the plain numpy computation, also written into a strided
    slice of a larger array, leaving the rest of it untouched."""
    from creditsim.risk.pool_engine import rated_cohort_matrices

    rng = np.random.default_rng(7)
    s, t_len = 40, 30
    corp = np.zeros((s, t_len, 7, 7))
    corp[..., 4:, :] = np.eye(7)[4:]
    live = rng.dirichlet(np.ones(7), size=(s, t_len, 4))
    live[..., 1:4] *= rng.random((s, t_len, 4, 1)) < 0.7  # some rows without delinquent moves
    live /= live.sum(-1, keepdims=True)
    corp[..., :4, :] = live
    corp[:5, :, 0] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.4]  # no room left: p + m = 1
    hz = rng.random((s, 7, t_len)) ** 3
    hz[:, 0] = 0.0
    hz[:, 1] = 1e-300
    hz[5:10, 2] = np.maximum(1.0 - corp[5:10, :, 0, 5] - corp[5:10, :, 0, 6], 0.0)  # exactly the room left
    hz[:5, 3] = -0.0  # against no room left (0.0): numpy's minimum keeps the second on a tie
    hz[10:12, 4, :3] = np.nan  # a NaN hazard gives numpy's NaN row (the engine refuses them before)
    ref = _rated_rows_numpy(hz, corp)
    got = rated_cohort_matrices(hz, corp)
    assert np.array_equal(got.view(np.int64), ref.view(np.int64))
    big = np.full((s, 12, t_len, 7, 7), -3.0)
    big[:, 2] = corp
    rated_cohort_matrices(hz, big[:, 2], out=big[:, 4:11])
    assert np.array_equal(big[:, 4:11].view(np.int64), ref.view(np.int64))
    assert (big[:, [0, 1, 3, 11]] == -3.0).all() and np.array_equal(big[:, 2], corp)
    # shapes that disagree are refused before the compiled pass (which checks no bounds) reads or writes
    with pytest.raises(DataError, match=r"hazard must be \(S, G, T\) and corporate"):
        rated_cohort_matrices(hz, corp[:, :10])
    with pytest.raises(ConfigError, match=r"out must be a writeable float64 array of shape"):
        rated_cohort_matrices(hz[:, :, :2], corp[:, :2], out=big[:, 4:11, :1])
    frozen = np.empty_like(ref)
    frozen.flags.writeable = False
    with pytest.raises(ConfigError, match="read-only"):
        rated_cohort_matrices(hz, corp, out=frozen)


def test_paths_longer_than_the_horizon_give_the_horizons_rated_cohorts():
    """A rated book's engine on macro paths longer than its horizon (an expected-loss path's caller may pass
    them): the rating chain reads the horizon's months, as the Markov cohorts do, rather than overrunning."""
    from creditsim.examples import example_path
    from creditsim.risk.pool_engine import PoolEngine

    eng = PoolEngine.from_tape(pd.read_parquet(example_path("loans_example.parquet")), seed=1, horizon=12)
    rng = np.random.default_rng(3)
    m = eng.transition_model
    macro = m.macro_mean_ + rng.normal(size=(3, 30, 9)) * m.macro_std_ * 0.5
    np.testing.assert_array_equal(eng.cohort_matrices(macro), eng.cohort_matrices(macro[:, :12].copy()))
    np.testing.assert_array_equal(eng.pool_cashflows(macro, np.arange(3)), eng.pool_cashflows(macro[:, :12].copy(), np.arange(3)))


class LeakyMarkov(StressMarkov):
    """StressMarkov with CURRENT -> DPD60, a move ALLOWED_TRANSITIONS forbids, in month 3."""

    def scenario_matrices(self, macro: np.ndarray) -> np.ndarray:
        P = super().scenario_matrices(macro)
        P[:, 3, 0, 2], P[:, 3, 0, 0] = 0.01, P[:, 3, 0, 0] - 0.01
        return P


def test_a_transition_models_bad_output_is_named_before_any_sampling(small_tape, small_deal):
    """The engine checks the transition model's output once (PoolEngine.cohort_matrices) and trusts the
    cohorts it derives from it (validated=True): a model's forbidden move is still refused, named."""
    with pytest.raises(DataError, match=r"transition model output: forbidden moves .*\[\(0, 3, 0, 2\)"):
        _run(small_tape, small_deal, transition_model=LeakyMarkov(), n_simulations=4, chunk_size=4)


def test_portfolio_aggregator_monte_carlo_simulate_delegates(small_tape, small_deal):
    from creditsim.risk.aggregator import PortfolioAggregator

    agg = PortfolioAggregator(small_deal)
    got = agg.monte_carlo_simulate(small_tape, None, StressMarkov(), None, n_simulations=24, macro="synthetic",
                                   seed=5, chunk_size=24, horizon=24, progress=False)
    _assert_same(got, _run(small_tape, small_deal))
    with pytest.raises(ConfigError, match="LoanTrajectoryModel"):
        agg.monte_carlo_simulate(small_tape, None, StressMarkov(), object(), n_simulations=2, progress=False)
    with pytest.raises(ConfigError, match="scenario_matrices"):
        agg.monte_carlo_simulate(small_tape, None, object(), None, n_simulations=2, progress=False)


def test_monte_carlo_simulate_checks_the_trajectory_model_of_the_full_chain(small_tape, small_deal):
    """A transformer with a trajectory model is the spec's full chain (tests/risk/test_spec_chain.py); a
    trajectory model that is not one is still refused, naming the expected type."""
    from creditsim.transitions.transformer import TransitionConfig, TransitionTransformer
    from creditsim.risk.aggregator import PortfolioAggregator

    agg = PortfolioAggregator(small_deal)
    tt = TransitionTransformer(TransitionConfig(d_model=32, n_heads=2, n_layers=1)).eval()
    with pytest.raises(ConfigError, match="LoanTrajectoryModel"):
        agg.monte_carlo_simulate(small_tape, None, tt, object(), n_simulations=2, progress=False)
    with pytest.raises(ConfigError, match="only by engine='trajectory'"):
        agg.monte_carlo_simulate(small_tape, None, None, object(), n_simulations=2, progress=False, engine="markov")


@pytest.mark.filterwarnings("ignore::creditsim.macro.vae.ConditionRangeWarning")
def test_fed_macro_paths_follow_each_labels_table_and_reject_other_scenarios():
    # fed paths are anchored VAE paths (tests/macro/test_fed_paths.py): the label picks the table, the
    # published variables meet it at months 3k + 2, the model continues beyond the table's 39 months
    lab = np.array([0, 2, 2])
    paths = build_macro_paths("fed", lab, 60, seed=0)
    assert paths.shape == (3, 60, 9) and np.isfinite(paths).all()
    u = MACRO_VARS.index("unemployment_rate")
    severe = load_fed_scenarios(2025, "severely_adverse", monthly=True)["unemployment_rate"].to_numpy()
    np.testing.assert_allclose(paths[1:, 2:39:3, u], np.broadcast_to(severe[1::3], (2, 13)), atol=1e-6)
    assert paths[1, :, u].max() > paths[0, :, u].max() + 0.02
    assert np.ptp(paths[:, 39:], axis=1).max() > 0  # beyond the table: the model's path, not a held month
    with pytest.raises(ConfigError, match="only baseline and severely_adverse"):
        build_macro_paths("fed", np.array([0, 1]), 60, seed=0)


def test_transformer_engine_runs_and_is_chunk_invariant(small_tape, small_deal):
    import torch

    from creditsim.transitions.transformer import TransitionConfig, TransitionTransformer

    torch.manual_seed(0)
    model = TransitionTransformer(TransitionConfig(d_model=32, n_heads=2, n_layers=1)).eval()
    a = _run(small_tape, small_deal, engine="transformer", transition_model=model, n_simulations=6, chunk_size=6)
    b = _run(small_tape, small_deal, engine="transformer", transition_model=model, n_simulations=6, chunk_size=4)
    _assert_same(a, b)
    assert a.settings["engine"] == "transformer" and "TapeTransitionModel" in a.settings["transition_model"]


def test_a_model_in_training_mode_runs_in_eval_mode_on_chunk_threads(small_tape, small_deal):
    """Local chunks on two threads give the one-thread numbers with a transformer left in training mode
    (dropout 0.3): every module is in eval mode while the chunks run (models_in_eval; otherwise one
    thread's call would restore training mode under another's), and in training mode again after."""
    from types import SimpleNamespace

    import torch

    from creditsim.risk.simulate import models_in_eval
    from creditsim.transitions.transformer import TapeTransitionModel, TransitionConfig, TransitionTransformer

    torch.manual_seed(0)
    model = TransitionTransformer(TransitionConfig(d_model=32, n_heads=2, n_layers=1, dropout=0.3))
    assert model.training
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(_run(small_tape, small_deal, engine="transformer", transition_model=model, n_simulations=8,
                             chunk_size=2))
    finally:
        torch.set_num_threads(before)
    _assert_same(*runs)
    assert all(m.training for m in model.modules())
    # the engine's models: an attribute, or an attribute of one (the tape adapter's transformer)
    other = TransitionTransformer(TransitionConfig(d_model=32, n_heads=2, n_layers=1))
    engine = SimpleNamespace(transition_model=TapeTransitionModel(model, small_tape), trajectory_model=other,
                             book=object())
    with models_in_eval(engine):
        assert not any(m.training for m in (*model.modules(), *other.modules()))
    assert all(m.training for m in (*model.modules(), *other.modules()))


def test_a_model_creditsim_does_not_know_runs_one_chunk_at_a_time_unless_chunk_threads_says(small_tape, small_deal,
                                                                                           monkeypatch):
    """A user's transition model (any object with scenario_matrices) may keep state between calls: by
    default its chunks run one at a time; chunk_threads sets the count; the numbers do not change."""
    import torch

    import creditsim.risk.simulate as sim

    threads_seen = []
    real = sim.make_backend
    monkeypatch.setattr(sim, "make_backend", lambda *a, **k: threads_seen.append(k["threads"]) or real(*a, **k))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        runs = [_run(small_tape, small_deal, n_simulations=8, chunk_size=2, **kw)
                for kw in ({}, {"chunk_threads": 2}, {"chunk_threads": 1})]
        _run(small_tape, small_deal, n_simulations=8, chunk_size=2, transition_model=None)  # creditsim's Markov
    finally:
        torch.set_num_threads(before)
    assert threads_seen == [1, 2, 1, 2]
    _assert_same(runs[0], runs[1])
    _assert_same(runs[0], runs[2])
    assert runs[1].settings["chunk_threads"] == 2
    with pytest.raises(ConfigError, match="chunk_threads"):
        _run(small_tape, small_deal, chunk_threads=0)


def test_rated_corporates_default_by_their_rating(small_tape, small_deal):
    corp = small_tape[small_tape["asset_class"] == "corporate"].copy()
    assert len(corp) > 50
    runs = {}
    for grade in ("AAA", "CCC"):
        tape = corp.assign(rating=grade)
        runs[grade] = _run(tape, small_deal, transition_model=StressMarkov(), n_simulations=16, chunk_size=16)
    assert "rated loans" in runs["CCC"].settings["transition_model"]
    # CCC names default far more often than AAA names under the same macro paths
    assert runs["CCC"].expected_loss > 10 * max(runs["AAA"].expected_loss, 1e-4)


def test_trajectory_engine_runs_and_is_chunk_invariant(small_tape, small_deal):
    import torch

    from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig

    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=32, n_heads=2, n_layers=1, diffusion_steps=4))
    tape = small_tape.iloc[:80]
    a = _run(tape, small_deal, engine="trajectory", trajectory_model=model, n_simulations=4, chunk_size=4)
    b = _run(tape, small_deal, engine="trajectory", trajectory_model=model, n_simulations=4, chunk_size=3)
    np.testing.assert_allclose(a.portfolio_losses, b.portfolio_losses, rtol=1e-9)
    np.testing.assert_allclose(a.cashflows["pool"], b.cashflows["pool"], rtol=1e-9)
    assert a.settings["engine"] == "trajectory" and "LoanTrajectoryModel" in a.settings["transition_model"]
    pool = a.cashflows["pool"]
    # accounting: opening balance = closing balance + principal + prepayment + defaulted par
    k = {n: i for i, n in enumerate(POOL_CF_TYPES)}
    outflow = pool[:, :, [k["scheduled_principal"], k["prepayment"], k["default_par"]]].sum(axis=(1, 2))
    np.testing.assert_allclose(outflow + pool[:, -1, k["balance"]], a.initial_balance, rtol=1e-9)



def test_trajectory_engine_on_two_threads_is_one_thread_bit_for_bit(small_tape, small_deal, monkeypatch):
    """The chunk's scenarios, in groups (scenario_groups), run on the caller's torch thread count of Python
    threads (books from THREAD_MIN_LOANS loans; a 60-loan book stays on one thread, then is forced onto
    threads): the same bits as one thread, every scenario in its own row (a mix-up of rows or streams would differ: the
    scenarios differ), both threads used, and the caller's count and the model's mode back afterwards."""
    import threading

    import torch

    import creditsim.loans.trajectory as trajectory
    import creditsim.risk.pool_engine as pool_engine
    from creditsim.loans.trajectory import LoanTrajectoryModel, TrajectoryConfig

    torch.manual_seed(0)
    model = LoanTrajectoryModel(TrajectoryConfig(d_model=32, n_heads=2, n_layers=1, diffusion_steps=4))
    tape = small_tape.iloc[:60]
    seen: set[str] = set()
    one_group = pool_engine.PoolEngine._trajectory_group
    meet = threading.Barrier(2, timeout=30)  # the first two groups must be in flight together
    worker_calls: list[int] = []

    def spy(self, *args):
        seen.add(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            worker_calls.append(1)
            if len(worker_calls) <= 2:
                meet.wait()  # raises BrokenBarrierError after 30 s if the groups ran one at a time
        return one_group(self, *args)

    monkeypatch.setattr(pool_engine.PoolEngine, "_trajectory_group", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _run(tape, small_deal, engine="trajectory", trajectory_model=model, n_simulations=3, chunk_size=3)
        assert seen == {threading.current_thread().name}  # 60 loans, under THREAD_MIN_LOANS: one thread
        for module in (pool_engine, trajectory):  # a small book, threaded (and grouped per thread) anyway
            monkeypatch.setattr(module, "scenario_threads", lambda n_loans, fused=True: 4)
        runs = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            seen.clear()
            runs[n] = _run(tape, small_deal, engine="trajectory", trajectory_model=model, n_simulations=5, chunk_size=5)
            assert torch.get_num_threads() == n
            assert len(seen) == n and (n == 1) == (seen == {threading.current_thread().name})
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(runs[1].cashflows["pool"], runs[2].cashflows["pool"])
    np.testing.assert_array_equal(runs[1].portfolio_losses, runs[2].portfolio_losses)
    assert len(np.unique(runs[2].cashflows["pool"].sum(axis=(1, 2)))) == 5  # the scenarios' rows differ
    assert model.training  # the caller's model keeps its mode (generation ran in eval mode regardless)


# ---------------------------------------------------------------- macro start state (VAE paths)
def test_vae_paths_start_from_the_current_macro_state_and_order_the_scenarios(small_tape, small_deal):
    """A risk run starts every path from today's macro state; stress must then mean *more*
    unemployment than the baseline (with the VAE's scenario-typical historical starts the baseline
    paths started at 7.2 % unemployment and peaked above the adverse ones)."""
    from creditsim.datasets import macro_state
    from creditsim.risk.simulate import simulate
    from creditsim.states import MACRO_VARS

    res = simulate(small_tape, small_deal, n_simulations=300, macro="vae", seed=1, chunk_size=300, horizon=60,
                   scenario_mix="baseline=0.34,adverse=0.33,severely_adverse=0.33", progress=False,
                   keep_cashflows=False)
    # the real state of the tape's cut-off month (its latest origination date)
    cutoff = pd.Timestamp(small_tape["origination_date"].max()).to_period("M")
    state = macro_state(str(cutoff))[list(MACRO_VARS)].to_numpy(float)
    np.testing.assert_allclose(res.macro_paths[:, 0, :], np.broadcast_to(state, (300, 9)), atol=1e-6)
    assert res.settings["macro_start"]["source"].startswith(f"history {cutoff}")
    j = MACRO_VARS.index("unemployment_rate")
    peak = {s: np.median(res.macro_paths[res.scenarios == s, :, j].max(axis=1)) for s in (0, 1, 2)}
    assert peak[2] > peak[0] + 0.01  # severely adverse: at least 1 pp higher median peak
    assert peak[1] > peak[0]


def test_macro_start_from_cutoff_month_or_user_vector():
    from creditsim.datasets import load_macro_history
    from creditsim.macro.vae import MacroVAE
    from creditsim.macro.scenarios import build_macro_paths, resolve_macro_start
    from creditsim.states import MACRO_VARS

    hist = load_macro_history()
    vec, label = resolve_macro_start(None, pd.Timestamp("2009-06-17"))
    np.testing.assert_array_equal(vec, hist.loc["2009-06-01", list(MACRO_VARS)].to_numpy(float))
    assert label == "history 2009-06"
    assert resolve_macro_start("scenario") == (None, "scenario")
    user = dict(zip(MACRO_VARS, hist.loc["2009-06-01", list(MACRO_VARS)].to_numpy(float)))
    v2, _ = resolve_macro_start(user)
    np.testing.assert_array_equal(v2, vec)
    with pytest.raises(ConfigError, match="missing variable"):
        resolve_macro_start({"unemployment_rate": 0.05})
    with pytest.raises(ConfigError, match="9 values"):
        resolve_macro_start(np.zeros(3))
    with pytest.raises(DataError, match="non-finite"):
        resolve_macro_start(np.full(9, np.nan))
    labels = np.array([0, 2, 0, 2, 0, 2])
    paths = build_macro_paths(MacroVAE.from_pretrained(), labels, 12, seed=3, start=vec)
    np.testing.assert_allclose(paths[:, 0, :], np.broadcast_to(vec, (6, 9)), atol=1e-6)
    again = build_macro_paths(MacroVAE.from_pretrained(), labels, 12, seed=3, start=vec)
    np.testing.assert_array_equal(paths, again)


def test_the_run_logs_the_decisions_it_made_for_the_user(caplog) -> None:
    """A library user sees, at INFO, the cut-off the run chose, the deal's rescaling and the models."""
    import logging

    import creditsim as cs
    from creditsim.examples import example_path

    tape = pd.read_parquet(example_path("loans_example.parquet")).iloc[:50]
    with caplog.at_level(logging.INFO, logger="creditsim.risk.simulate"):
        cs.simulate(tape, example_path("example_clo.yaml"), n_simulations=4, macro="synthetic", horizon=6,
                    progress=False)
    text = caplog.text
    assert "(the tape's latest origination date)" in text and "deal notionals scaled x" in text
    assert "MarkovTransitionModel" in text and "expected pool loss" in text


def test_rated_clo_is_bit_identical_across_chunk_sizes():
    """The demo's BSL CLO (rated loans on the Z-conditional rating chain, CCC haircut and WARF test fed by
    it, MacroVAE paths): every per-scenario output equal bit for bit for chunks of 150, 50 and 17. The
    rating chain's matrix logarithms once depended on the other scenarios of their chunk (numpy's eig
    returns real or complex eigenvectors per batch), which moved OC ratios and losses in the 12th digit."""
    import pandas as pd

    from creditsim.deal.config import load_deal
    from creditsim.examples import example_path
    from creditsim.risk.simulate import simulate

    tape = pd.read_parquet(example_path("loans_bsl.parquet"))
    deal = load_deal(example_path("bsl_clo.yaml"))
    runs = [simulate(tape, deal, n_simulations=150, macro="vae", seed=7, chunk_size=c, horizon=60, progress=False)
            for c in (150, 50, 17)]
    for other in runs[1:]:
        _assert_same(runs[0], other)
        for key, arr in runs[0].cashflows.items():
            np.testing.assert_array_equal(arr, other.cashflows[key], err_msg=key)
