"""Cohort and Aalen-Johansen estimators, TTC pooling, validation, generators and monthly matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg

from creditsim.datasets.ratings import load_sp_ratings
from creditsim.errors import ConfigError, DataError
from creditsim.ratings.estimate import (
    aalen_johansen,
    cohort_matrix,
    generator,
    monthly_matrix,
    ttc_matrix,
    validate_matrix,
)
from creditsim.ratings.simulate import simulate_rating_panel

STATES = ("AAA", "AA", "A", "BBB", "BB", "B", "D")


@pytest.fixture(scope="module")
def p7():
    return load_sp_ratings().matrix_7x7.to_numpy()


def direct_count(panel: pd.DataFrame, k: int, nr_label="NR", labels=STATES):
    """Reference count by a plain loop: (from, to) over consecutive years of each entity."""
    code = {s: i for i, s in enumerate(labels)}
    counts = np.zeros((k, k))
    for _, g in panel.sort_values(["entity", "time"]).groupby("entity"):
        r, t = list(g["rating"]), list(g["time"])
        for a in range(len(r) - 1):
            if t[a + 1] != t[a] + 1 or r[a] == nr_label or r[a + 1] == nr_label:
                continue
            counts[code[r[a]], code[r[a + 1]]] += 1
    return counts


def test_cohort_matrix_agrees_with_direct_count_on_synthetic_panel(p7):
    panel = simulate_rating_panel(p7, 300, 6, seed=3, states=STATES, labels=True)
    rng = np.random.default_rng(0)
    # withdrawals (NR) and gaps (missing rows = right censoring)
    nr_rows = rng.choice(len(panel), 60, replace=False)
    panel.loc[nr_rows, "rating"] = "NR"
    panel = panel.drop(index=rng.choice(len(panel), 80, replace=False)).sample(frac=1, random_state=1)
    res = cohort_matrix(panel, states=STATES)
    ref = direct_count(panel, 7)
    # D is absorbing: a defaulted obligor is counted D->D in every later year even if rows are missing
    np.testing.assert_array_equal(res.counts[:-1], ref[:-1])
    np.testing.assert_array_equal(res.exposures[:-1], ref[:-1].sum(axis=1))
    with np.errstate(invalid="ignore"):
        expected = ref[:-1] / ref[:-1].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(res.matrix[:-1], expected)
    np.testing.assert_array_equal(res.matrix[-1], np.eye(7)[-1])
    assert res.censored.sum() > 0


def test_cohort_nr_as_state_keeps_nr_column(p7):
    panel = simulate_rating_panel(p7, 200, 4, seed=4, states=STATES, labels=True)
    panel.loc[panel.sample(40, random_state=2).index, "rating"] = "NR"
    keep = cohort_matrix(panel, states=STATES, nr="state")
    drop = cohort_matrix(panel, states=STATES, nr="drop")
    assert keep.matrix.shape == (8, 8) and keep.states[-1] == "NR"
    ok = keep.exposures > 0
    np.testing.assert_allclose(keep.matrix[ok].sum(axis=1), 1.0)
    # dropping NR = removing the NR column and renormalising the rated rows
    sub = keep.counts[:6, :7]
    np.testing.assert_allclose(drop.matrix[:6], sub / sub.sum(axis=1, keepdims=True))


def test_cohort_matrix_from_counts_pools_by_counts():
    c = np.zeros((2, 3, 3))
    c[0, 0] = [90, 10, 0]  # a thick year
    c[1, 0] = [1, 1, 0]  # a thin year
    c[:, 1] = [[0, 50, 50], [0, 1, 1]]
    res = cohort_matrix(counts=c, states=("A", "B", "D"))
    assert res.matrix[0, 0] == pytest.approx(91 / 102)  # not (0.9 + 0.5) / 2
    np.testing.assert_allclose(ttc_matrix(c), res.matrix)


def test_ttc_matrix_rejects_negative_counts_and_empty_grades():
    c = np.ones((3, 3, 3))
    c[1, 0, 2] = -1
    with pytest.raises(DataError, match="negative counts at \\[\\(1, 0, 2\\)\\]"):
        ttc_matrix(c)
    c = np.ones((3, 3, 3))
    c[:, 1] = 0
    with pytest.raises(DataError, match="no obligors in any year: \\['B'\\]"):
        ttc_matrix(c, states=("A", "B", "D"))


def test_aalen_johansen_equals_product_of_cohort_matrices_on_complete_yearly_panel(p7):
    panel = simulate_rating_panel(p7, 3000, 8, seed=7)
    coh = cohort_matrix(panel, states=STATES)
    aj = aalen_johansen(panel, states=STATES)
    np.testing.assert_allclose(aj.matrix, np.linalg.multi_dot(list(coh.period_matrices)), atol=1e-13)
    np.testing.assert_allclose(aj.matrix.sum(axis=1), 1.0, atol=1e-12)
    assert len(aj.event_times) == 8
    # exposure: obligor-years in each non-default state (each entity observed 8 years)
    assert aj.exposures[:-1].sum() + aj.exposures[-1] == pytest.approx(3000 * 8)


def test_aalen_johansen_handles_right_censoring_by_hand():
    # 4 obligors in A at t=0; #1 moves to B at 0.5, #2 is censored at 0.3 (end_times), #3 defaults
    # at 0.7, #4 stays in A until t_end = 1.
    ev = pd.DataFrame(
        {
            "entity": [1, 1, 2, 3, 3, 4],
            "time": [0.0, 0.5, 0.0, 0.0, 0.7, 0.0],
            "rating": ["A", "B", "A", "A", "D", "A"],
        }
    )
    res = aalen_johansen(ev, states=("A", "B", "D"), t_end=1.0, end_times=pd.Series({1: 1.0, 2: 0.3, 3: 1.0, 4: 1.0}))
    # at 0.5: 3 at risk in A (#2 gone), one A->B; at 0.7: 2 in A, one A->D; B row: #1 stays
    step1 = np.array([[2 / 3, 1 / 3, 0], [0, 1, 0], [0, 0, 1]])
    step2 = np.array([[1 / 2, 0, 1 / 2], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(res.matrix, step1 @ step2, atol=1e-15)
    np.testing.assert_allclose(res.event_times, [0.5, 0.7])
    np.testing.assert_allclose(res.exposures[:2], [0.5 + 0.3 + 0.7 + 1.0, 0.5])
    assert res.censored[0] == 1  # obligor 2
    # NR withdrawal = censoring with nr="drop"
    ev2 = pd.DataFrame({"entity": [1, 1, 2, 2, 3], "time": [0, 0.4, 0, 0.6, 0], "rating": ["A", "NR", "A", "D", "A"]})
    r2 = aalen_johansen(ev2, states=("A", "B", "D"), t_end=1.0)
    assert r2.matrix[0, 2] == pytest.approx(0.5)  # 2 at risk at 0.6, one default


def test_estimators_agree_with_transitionmatrix_cohort_estimator(p7):
    tm_cohort = pytest.importorskip("transitionMatrix.estimators.cohort_estimator")
    from transitionMatrix.statespaces.statespace import StateSpace

    panel = simulate_rating_panel(p7, 1500, 5, seed=9)
    ours = cohort_matrix(panel, states=STATES)
    ss = StateSpace([(str(i), s) for i, s in enumerate(STATES)])
    est = tm_cohort.CohortEstimator(states=ss, cohort_bounds=list(range(6)), ci={"method": "goodman", "alpha": 0.05})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(panel.rename(columns={"entity": "ID", "time": "Time", "rating": "State"}))
    # transitionMatrix adds the very last row of the panel to the denominators once more (its
    # boundary handling), so agreement is to one obligor in ~1500 per row
    np.testing.assert_allclose(est.average_matrix[:-1], ours.matrix[:-1], atol=2e-3)


def test_validate_matrix_names_the_offending_row(p7):
    bad = p7.copy()
    bad[3, 3] += 0.01
    with pytest.raises(DataError, match="BBB"):
        validate_matrix(bad, labels=STATES)
    bad = p7.copy()
    bad[2, 0] = np.nan
    with pytest.raises(DataError, match="non-finite.*'A'"):
        validate_matrix(bad, labels=STATES)
    bad = p7.copy()
    bad[4, 0] = -0.01
    bad[4, 4] += 0.01
    with pytest.raises(DataError, match="negative.*'BB'"):
        validate_matrix(bad, labels=STATES)
    with pytest.raises(DataError, match="square"):
        validate_matrix(np.ones((3, 4)) / 4)
    nd = p7.copy()
    nd[6] = [0.1, 0, 0, 0, 0, 0, 0.9]
    with pytest.raises(DataError, match="absorbing"):
        validate_matrix(nd)
    with pytest.raises(DataError, match="8x8"):
        validate_matrix(p7, n_states=8)
    np.testing.assert_array_equal(validate_matrix(p7), p7)


def test_panel_errors_are_clear(p7):
    panel = simulate_rating_panel(p7, 10, 2, seed=1, states=STATES, labels=True)
    with pytest.raises(DataError, match="lacks columns \\['rating'\\]"):
        cohort_matrix(panel.drop(columns="rating"), states=STATES)
    bad = panel.copy()
    bad.loc[3, "rating"] = "ZZ"
    with pytest.raises(DataError, match="unknown ratings \\['ZZ'\\]"):
        cohort_matrix(bad, states=STATES)
    with pytest.raises(ConfigError, match="nr"):
        cohort_matrix(panel, states=STATES, nr="keep")


# ----------------------------------------------------------------------------- generators
def test_generator_of_sp_matrix_is_valid_and_close():
    p = load_sp_ratings().matrix_8x8.to_numpy()
    for method in ("diagonal", "weighted", "jlt"):
        g = generator(p, method=method)
        off = ~np.eye(8, dtype=bool)
        assert (g.Q[off] >= 0).all()
        np.testing.assert_allclose(g.Q.sum(axis=1), 0.0, atol=1e-12)
        np.testing.assert_allclose(scipy.linalg.expm(g.Q) - p, 0, atol=g.distance + 1e-15)
    assert generator(p, "diagonal").distance < 1e-3
    assert generator(p, "jlt").distance < 0.05


def test_generator_recovers_embeddable_matrix_exactly():
    q0 = np.array([[-0.2, 0.15, 0.05], [0.1, -0.3, 0.2], [0, 0, 0]])
    p = scipy.linalg.expm(q0)
    p[-1] = [0, 0, 1]
    g = generator(p)
    np.testing.assert_allclose(g.Q, q0, atol=1e-10)
    assert g.distance < 1e-12
    m, dist = monthly_matrix(np.stack([p, p]), return_distance=True)
    np.testing.assert_allclose(m[0], scipy.linalg.expm(q0 / 12), atol=1e-12)
    assert dist.max() < 1e-12


def test_monthly_matrix_is_stochastic_and_twelfth_power_matches(p7):
    m, dist = monthly_matrix(p7, return_distance=True)
    assert (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(m[-1], np.eye(7)[-1])
    np.testing.assert_allclose(np.linalg.matrix_power(m, 12), p7, atol=float(dist) + 1e-12)
    assert dist < 1e-3
    q, dq = monthly_matrix(p7, steps=4, return_distance=True)
    assert dq < 1e-3
    with pytest.raises(DataError):
        monthly_matrix(p7 * 1.1)


def test_weighted_adjustment_differs_from_diagonal_on_a_non_embeddable_matrix():
    # Jarrow-Lando-Turnbull (1997) 8x8: its principal logarithm has negative off-diagonals
    jlt = np.array(
        [
            [0.891, 0.0963, 0.0078, 0.0019, 0.003, 0.0, 0.0, 0.0],
            [0.0086, 0.901, 0.0747, 0.0099, 0.0029, 0.0029, 0.0, 0.0],
            [0.0009, 0.0291, 0.8894, 0.0649, 0.0101, 0.0045, 0.0, 0.0011],
            [0.0006, 0.0043, 0.0656, 0.8427, 0.0644, 0.016, 0.0018, 0.0046],
            [0.0004, 0.0022, 0.0079, 0.0719, 0.7764, 0.1043, 0.0127, 0.0242],
            [0.0, 0.0019, 0.0031, 0.0066, 0.0517, 0.8246, 0.0435, 0.0686],
            [0.0, 0.0, 0.0116, 0.0116, 0.0203, 0.0754, 0.6493, 0.2318],
            [0, 0, 0, 0, 0, 0, 0, 1.0],
        ]
    )
    jlt /= jlt.sum(axis=1, keepdims=True)
    d, w = generator(jlt, "diagonal"), generator(jlt, "weighted")
    off = ~np.eye(8, dtype=bool)
    for g in (d, w):
        assert (g.Q[off] >= 0).all()
        np.testing.assert_allclose(g.Q.sum(axis=1), 0.0, atol=1e-12)
        assert 0 < g.distance < 1e-3
    assert np.abs(d.Q - w.Q).max() > 1e-4
    with pytest.raises(ConfigError, match="generator method"):
        generator(jlt, "kreinin")


def test_expm_batched_matches_scipy():
    from creditsim.ratings.estimate import expm_batched

    q = np.random.default_rng(0).normal(size=(20, 6, 6)) * 1.5
    ours = expm_batched(q)
    for i in range(20):
        ref = scipy.linalg.expm(q[i])
        np.testing.assert_allclose(ours[i], ref, rtol=1e-11, atol=1e-12 * np.abs(ref).max())


def simulate_ctmc(q: np.ndarray, n: int, horizon: float, seed: int) -> pd.DataFrame:
    """Continuous-time chain with generator q: rows (entity, time, rating code) at each jump."""
    rng = np.random.default_rng(seed)
    k = q.shape[0]
    state = rng.integers(0, k - 1, n)
    t = np.zeros(n)
    rows = [(np.arange(n), t.copy(), state.copy())]
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        rate = -q[state[idx], state[idx]]
        hold = np.where(rate > 0, rng.exponential(1.0 / np.where(rate > 0, rate, 1.0)), np.inf)
        t_new = t[idx] + hold
        jump = t_new <= horizon
        alive[idx[~jump]] = False
        j = idx[jump]
        probs = q[state[j]].copy()
        probs[np.arange(len(j)), state[j]] = 0.0
        probs /= probs.sum(axis=1, keepdims=True)
        nxt = (rng.random(len(j))[:, None] >= np.cumsum(probs, axis=1)).sum(axis=1)
        state[j], t[j] = nxt, t_new[jump]
        alive[j[nxt == k - 1]] = False  # absorbed in D
        rows.append((j, t[j].copy(), nxt))
    ent = np.concatenate([r[0] for r in rows])
    return pd.DataFrame({"entity": ent, "time": np.concatenate([r[1] for r in rows]), "rating": np.concatenate([r[2] for r in rows])})


def test_aalen_johansen_on_continuous_time_data_matches_expm_of_generator():
    q0 = np.array(
        [[-0.30, 0.25, 0.04, 0.01], [0.15, -0.50, 0.25, 0.10], [0.02, 0.30, -0.72, 0.40], [0.0, 0.0, 0.0, 0.0]]
    )
    ev = simulate_ctmc(q0, 40_000, 1.0, seed=3)
    res = aalen_johansen(ev, states=("A", "B", "C", "D"), t_start=0.0, t_end=1.0)
    truth = scipy.linalg.expm(q0)
    np.testing.assert_allclose(res.matrix, truth, atol=0.012)
    np.testing.assert_allclose(res.matrix.sum(axis=1), 1.0, atol=1e-12)
    # the duration (intensity) estimate recovers the generator itself
    np.testing.assert_allclose(res.generator[:-1], q0[:-1], atol=0.03)


def test_matrix_errors_name_grades_not_numpy_reprs(p7):
    # unlabeled 7x7 / 8x8 arrays: rows are named by grade (AAA..D), never np.str_('2') or bare numbers
    bad = p7.copy()
    bad[2, 0] = np.nan
    with pytest.raises(DataError) as e:
        validate_matrix(bad)
    assert "'A'" in str(e.value) and "np.str_" not in str(e.value)
    bad = p7.copy()
    bad[4, 0] = -0.01
    bad[4, 4] += 0.01
    with pytest.raises(DataError) as e:
        validate_matrix(bad)
    assert "'BB'" in str(e.value) and "np.str_" not in str(e.value)
    p8 = load_sp_ratings().matrix_8x8.to_numpy()
    bad8 = p8.copy()
    bad8[6, 6] += 0.02
    with pytest.raises(DataError, match=r"'CCC' \(sum"):
        validate_matrix(bad8)
    odd = np.full((3, 3), 1 / 3)
    odd[-1] = [0, 0, 1]
    odd[1, 1] = np.nan
    with pytest.raises(DataError, match=r"rows \[1\]"):
        validate_matrix(odd)


def test_monthly_matrix_errors_name_the_row(p7):
    bad = p7.copy()
    bad[3, 3] += 0.01
    with pytest.raises(DataError, match=r"'BBB' \(sum 1.01"):
        monthly_matrix(bad)
    stack = np.stack([p7, p7])
    stack[1, 5, 0] = -0.01
    stack[1, 5, 5] += 0.01
    with pytest.raises(DataError, match=r"negative.*matrix \(1,\).*'B'"):
        monthly_matrix(stack)
    stack = np.stack([p7, p7])
    stack[0, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"non-finite.*'AA'"):
        monthly_matrix(stack)


# ----------------------------------------------------------------------------- integer codes (defect)
def test_8_grade_integer_codes_are_not_misread_as_7_grades_plus_nr():
    """Defect: codes 0..7 of an 8-grade panel were read with the default 7 states: defaults (7)
    became NR (withdrawn) and CCC (6) the absorbing D. Now states= is required, and with it the
    estimate is right; the same holds for Aalen-Johansen."""
    p8 = load_sp_ratings().matrix_8x8.to_numpy()
    panel = simulate_rating_panel(p8, 400, 4, seed=5)  # integer codes, D = 7
    assert panel["rating"].max() == 7
    for estimator in (cohort_matrix, aalen_johansen):
        with pytest.raises(ConfigError, match=r"'rating': integer rating codes 0\.\.7 found .*states=GRADES_8"):
            estimator(panel)
    from creditsim.states import GRADES_8

    res = cohort_matrix(panel, states=GRADES_8)
    assert res.states == tuple(GRADES_8) and res.matrix.shape == (8, 8)
    assert res.counts[:7, 7].sum() > 0  # defaults counted as defaults
    aj = aalen_johansen(panel, states=GRADES_8)
    np.testing.assert_allclose(aj.matrix, np.linalg.multi_dot(list(cohort_matrix(panel, states=GRADES_8).period_matrices)), atol=1e-12)


def test_inferred_d_that_obligors_leave_is_refused():
    """8-grade codes without any default (max code 6) would make CCC the absorbing D: refused
    when CCC obligors move on; codes of a real 7-grade panel are inferred as GRADES_7."""
    p8 = load_sp_ratings().matrix_8x8.to_numpy()
    panel = simulate_rating_panel(p8, 300, 3, seed=2)
    panel = panel[panel["rating"] < 7]  # no default observed
    for estimator in (cohort_matrix, aalen_johansen):
        with pytest.raises(ConfigError, match="code 6 was inferred as the absorbing default 'D'"):
            estimator(panel)
    p7 = load_sp_ratings().matrix_7x7.to_numpy()
    panel7 = simulate_rating_panel(p7, 200, 3, seed=2)
    np.testing.assert_array_equal(cohort_matrix(panel7).matrix, cohort_matrix(panel7, states=STATES).matrix)
    labelled = simulate_rating_panel(p8, 200, 3, seed=2, states=load_sp_ratings().matrix_8x8.index, labels=True)
    assert cohort_matrix(labelled).states[6] == "CCC"  # text labels name their grades


def test_expm_batched_does_not_depend_on_the_batch_it_sits_in():
    """A matrix's exponential is the same alone or beside matrices of larger norm (a chunk of scenarios):
    one scaling for the whole batch changed it in the last bits."""
    from creditsim.ratings.estimate import expm_batched

    q = scipy.linalg.logm(load_sp_ratings().matrix_8x8.to_numpy()).real
    batch = np.stack([q / 12, q * 3, q * 40])
    together = expm_batched(batch)
    for i in range(3):
        np.testing.assert_array_equal(together[i], expm_batched(batch[i:i + 1])[0])
        np.testing.assert_allclose(together[i], scipy.linalg.expm(batch[i]), atol=1e-13)


def test_matrix_log_fallback_is_quiet_when_accurate_and_warns_when_not():
    """At an extreme credit-cycle index (Z = -21.07, a reverse-stress search's corner) the annual matrix is
    near defective: matrix_log falls back to scipy's logm, whose own error estimate (~3e-10) made it print a
    warning per matrix. The round trip exp(log P) = P (2e-9 here) is what counts: quiet, and a warning
    when it fails."""
    from creditsim.ratings import estimate
    from creditsim.ratings.lifetime import ZMacroLink, conditional_raw, monthly_matrices_from_z, thresholds_raw

    link = ZMacroLink.from_bundled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monthly = monthly_matrices_from_z(np.array([[-21.07]]), link)
    np.testing.assert_allclose(monthly.sum(-1), 1.0, atol=1e-12)
    p, r = link._ttc_rho(None, None)
    annual = conditional_raw(p, thresholds_raw(p), np.array([-21.07]), r, link.resid_var_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = estimate.matrix_log(annual)
    np.testing.assert_allclose(scipy.linalg.expm(q[0]), annual[0], atol=1e-8)
    old = estimate.LOG_TOLERANCE
    try:
        estimate.LOG_TOLERANCE = 0.0  # every fallback round trip now "fails"
        with pytest.warns(RuntimeWarning, match="exp\\(log P\\) differs"):
            estimate.matrix_log(annual)
    finally:
        estimate.LOG_TOLERANCE = old


def test_matrix_log_of_a_matrix_does_not_depend_on_its_batch():
    """numpy's eig returns real eigenvectors when every matrix of a batch has real eigenvalues and
    complex ones otherwise; the two inverses round differently, which moved simulated OC ratios in the
    12th digit with the scenario chunk size. Rating matrices alone and beside a matrix with complex
    eigenvalues: the same bits."""
    from creditsim.ratings import estimate
    from creditsim.ratings.lifetime import ZMacroLink, conditional_raw, thresholds_raw

    link = ZMacroLink.from_bundled()
    p, r = link._ttc_rho(None, None)
    annual = conditional_raw(p, thresholds_raw(p), np.linspace(-2.5, 2.5, 11), r, link.resid_var_)  # (11, 8, 8)
    cyclic = np.full((8, 8), 0.0)
    for i in range(8):  # a stochastic matrix with complex eigenvalues
        cyclic[i, i], cyclic[i, (i + 1) % 8] = 0.9, 0.1
    assert np.iscomplexobj(np.linalg.eigvals(cyclic)) and np.abs(np.linalg.eigvals(cyclic).imag).max() > 0.01
    alone = estimate.matrix_log(annual)
    beside = estimate.matrix_log(np.concatenate([annual, cyclic[None]]))[:-1]
    assert np.array_equal(alone, beside)
    np.testing.assert_allclose(scipy.linalg.expm(alone[3]), annual[3], atol=1e-10)
