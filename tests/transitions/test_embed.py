"""The monthly chain behind quarterly moves (creditsim.transitions.embed) and the quarterly panel path
through MarkovTransitionModel.fit, fit_transitions and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import creditsim as cs
from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.schema import validate_panel
from creditsim.states import ALLOWED_TRANSITIONS, LoanState, reachable_states
from creditsim.transitions.embed import N_PARAMS, _matrix, _torch_nll, embed_monthly_chain, penalised_nll
from creditsim.transitions.markov import MarkovTransitionModel, row_mle

C, D30, D60, D90, DF, PP, MT = (int(s) for s in LoanState)

#: a monthly chain with every kind of move (cures, roll-forwards, jumps to default, payoffs)
TRUE_P = np.zeros((7, 7))
TRUE_P[C, [C, D30, DF, PP, MT]] = [0.955, 0.02, 0.002, 0.02, 0.003]
TRUE_P[D30, [C, D30, D60, DF, PP, MT]] = [0.35, 0.30, 0.30, 0.01, 0.03, 0.01]
TRUE_P[D60, [C, D30, D60, D90, DF, PP, MT]] = [0.10, 0.10, 0.20, 0.55, 0.02, 0.02, 0.01]
TRUE_P[D90, [C, D30, D60, D90, DF, PP, MT]] = [0.05, 0.02, 0.03, 0.40, 0.47, 0.02, 0.01]
for _a in (DF, PP, MT):
    TRUE_P[_a, _a] = 1.0


def _paths(n: int, months: int, seed: int, p: np.ndarray = TRUE_P, start: int = C) -> np.ndarray:
    """``(n, months + 1)`` states of ``n`` loans stepped through the monthly chain ``p``."""
    rng = np.random.default_rng(seed)
    s = np.full(n, start)
    out = [s]
    cum = p.cumsum(1)
    for _ in range(months):
        s = (rng.random(n)[:, None] > cum[s]).sum(1).clip(max=6)
        out.append(s)
    return np.stack(out, 1)


def _counts(paths: np.ndarray, k: int) -> np.ndarray:
    counts = np.zeros((7, 7))
    for t in range(0, paths.shape[1] - k, k):
        np.add.at(counts, (paths[:, t], paths[:, t + k]), 1)
    return counts


def test_reachable_states_follow_the_one_month_rules() -> None:
    np.testing.assert_array_equal(reachable_states(1), ALLOWED_TRANSITIONS)
    np.testing.assert_array_equal(reachable_states(0), np.eye(7, dtype=bool))
    assert not reachable_states(2)[C, D90] and reachable_states(3)[C, D90]  # one bucket a month
    assert not reachable_states(12)[DF, C]  # absorbing stays absorbing


def test_one_month_periods_give_the_row_mle_censored_rows_included() -> None:
    counts = _counts(_paths(4000, 12, seed=1), 1)
    censored = np.array([300.0, 40.0, 10.0, 5.0, 0, 0, 0])
    fit = embed_monthly_chain(counts, 1, censored, lam=1e-9)
    np.testing.assert_allclose(fit.matrix, row_mle(counts, censored), atol=2e-6)
    assert fit.gradient < 1e-8


def test_a_quarterly_view_of_a_monthly_chain_gives_the_monthly_chain_back() -> None:
    """20,000 loans over 36 months, seen every third month only: each monthly probability is recovered
    within 4 of its delta-method standard errors, and those are honest (no more than a few beyond 2)."""
    paths = _paths(20_000, 36, seed=0)
    fit = embed_monthly_chain(_counts(paths, 3), 3)
    live, allowed = slice(0, 4), ALLOWED_TRANSITIONS[:4]
    se = fit.standard_errors[live][allowed]
    z = np.abs(fit.matrix[live][allowed] - TRUE_P[live][allowed]) / se
    assert (se > 0).all() and z.max() < 4.0, z
    assert (z > 2).sum() <= 3, z
    np.testing.assert_allclose(fit.matrix.sum(1), 1.0, atol=1e-12)
    assert (fit.matrix[~ALLOWED_TRANSITIONS] == 0).all()  # no mass on moves the contract forbids in a month
    monthly = row_mle(_counts(paths, 1))  # the quarterly view is less precise than the monthly one, not biased
    assert np.abs(fit.matrix - TRUE_P)[live].max() < 0.05 and np.abs(monthly - TRUE_P)[live].max() < 0.02


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_exact_quarterly_counts_are_matched_exactly(seed: int) -> None:
    """Counts proportional to P^3 of a random allowed chain: at the maximum the fitted chain's cube
    reproduces them (the likelihood's unique optimum over cubes), whatever the chain."""
    rng = np.random.default_rng(seed)
    p = np.where(ALLOWED_TRANSITIONS, rng.gamma(0.7, size=(7, 7)), 0.0)
    p[np.arange(4), np.arange(4)] += 3.0  # loans mostly stay, as in a real book
    p /= p.sum(1, keepdims=True)
    q = np.linalg.matrix_power(p, 3)
    counts = 1e5 * q * np.array([1.0, 0.3, 0.2, 0.1, 0, 0, 0])[:, None]
    fit = embed_monthly_chain(counts, 3, lam=1e-9)
    np.testing.assert_allclose(np.linalg.matrix_power(fit.matrix, 3)[:4], q[:4], atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_the_optimisers_gradient_is_the_autograd_gradient(seed: int, months: int) -> None:
    """The hand-derived gradient (products of matrix powers, then each row's softmax) against float64
    autograd of the same objective, censored periods and the pull included."""
    import torch

    rng = np.random.default_rng(seed)
    theta, theta0 = rng.normal(0, 2, N_PARAMS), rng.normal(0, 1, N_PARAMS)
    counts = np.where(reachable_states(months), rng.integers(0, 50, (7, 7)), 0).astype(np.float64)
    censored = np.concatenate([rng.integers(0, 20, 4), np.zeros(3)]).astype(np.float64)
    f, g = penalised_nll(theta, counts, censored, months, theta0, 0.3)
    _, penalised = _torch_nll(counts, censored, months, theta0, 0.3)
    t = torch.from_numpy(theta).requires_grad_(True)
    ft = penalised(t)
    (gt,) = torch.autograd.grad(ft, t)
    assert f == pytest.approx(float(ft.detach()), rel=1e-10)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-7, atol=1e-7 * max(1.0, np.abs(gt.numpy()).max()))
    from creditsim.transitions.embed import _np_matrix

    np.testing.assert_allclose(_np_matrix(theta), _matrix(torch.from_numpy(theta)).numpy(), rtol=1e-12, atol=1e-15)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.integers(0, 3))
def test_gap_counts_and_first_entries_have_the_autograd_gradient(seed: int, months: int, extra: int) -> None:
    """Moves by gap (``P^k``), absorptions first seen ``k`` months on and on-grid absorptions of a file
    that dates a share of them: the hand-derived reverse-mode gradient against float64 autograd, and the
    first-entry term against its definition ``(P^k - P^(k-1))_ia`` (entered in month ``k`` exactly)."""
    import torch

    from creditsim.transitions.embed import _np_matrix

    rng = np.random.default_rng(seed)
    depth = months + extra
    theta, theta0 = rng.normal(0, 2, N_PARAMS), rng.normal(0, 1, N_PARAMS)
    counts = np.stack([np.where(reachable_states(k), rng.integers(0, 30, (7, 7)), 0) for k in range(1, depth + 1)])
    counts = counts.astype(np.float64)
    entries = np.zeros_like(counts)
    entries[:, :4, 4:] = np.stack([np.where(reachable_states(k)[:4, 4:], rng.integers(0, 30, (4, 3)), 0)
                                   for k in range(1, depth + 1)])
    censored = np.concatenate([rng.integers(0, 20, 4), np.zeros(3)]).astype(np.float64)
    mixed = np.zeros_like(counts)
    mixed[:, :4, 4:] = np.stack([np.where(reachable_states(k)[:4, 4:], rng.integers(0, 30, (4, 3)), 0)
                                 for k in range(1, depth + 1)])
    share = np.concatenate([np.zeros(4), rng.random(3)])
    f, g = penalised_nll(theta, counts, censored, months, theta0, 0.3, entries, mixed, share)
    nll, penalised = _torch_nll(counts, censored, months, theta0, 0.3, entries, mixed, share)
    t = torch.from_numpy(theta).requires_grad_(True)
    ft = penalised(t)
    (gt,) = torch.autograd.grad(ft, t)
    assert f == pytest.approx(float(ft.detach()), rel=1e-10)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-7, atol=1e-7 * max(1.0, np.abs(gt.numpy()).max()))
    p = _np_matrix(theta)
    direct = 0.0
    for k in range(1, depth + 1):
        qk, prev = np.linalg.matrix_power(p, k), np.linalg.matrix_power(p, k - 1)
        live = counts[k - 1, :4] > 0
        direct += (counts[k - 1, :4][live] * np.log(qk[:4][live])).sum()
        first = (qk - prev)[:4]
        hit = entries[k - 1, :4] > 0
        direct += (entries[k - 1, :4][hit] * np.log(first[hit])).sum()
        both = mixed[k - 1, :4] > 0
        either = share[None, :] * first + (1 - share[None, :]) * qk[:4]  # dated, or carried to the report month
        direct += (mixed[k - 1, :4][both] * np.log(either[both])).sum()
    direct += (censored[:4] * np.log(1 - np.linalg.matrix_power(p, months)[:4, DF])).sum()
    assert float(nll(torch.from_numpy(theta))) == pytest.approx(-direct, rel=1e-10)


def test_moves_no_monthly_path_reaches_are_refused() -> None:
    counts = np.zeros((7, 7))
    counts[C, D90] = 2
    with pytest.raises(ConfigError, match="CURRENT -> DPD90 in 2 month"):
        embed_monthly_chain(counts, 2)


def _quarterly_book(n: int = 3000, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A tape and its quarterly panel, drawn from TRUE_P month by month and reported every third month."""
    loans, _ = cs.LoanTapeGenerator(n, 3, random_seed=seed, cutoff="2022-01-01").generate()
    loans = loans.assign(origination_date=pd.Timestamp("2021-06-01"), term_months=120,
                         maturity_date=pd.Timestamp("2031-06-01"))
    paths = _paths(n, 36, seed)
    months = pd.date_range("2022-01-01", periods=37, freq="MS")
    rows = []
    for t in range(0, 37, 3):
        prev_live = paths[:, max(t - 3, 0)] <= D90  # report a loan until the quarter it is absorbed in
        keep = prev_live if t > 0 else np.ones(n, bool)
        rows.append(pd.DataFrame({"loan_id": loans["loan_id"].to_numpy()[keep], "reporting_month": months[t],
                                  "loan_state": paths[keep, t], "current_balance": 1000.0}))
    return loans, pd.concat(rows, ignore_index=True), paths


def test_a_quarterly_panel_passes_validation_and_fits_the_monthly_chain() -> None:
    loans, panel, paths = _quarterly_book()
    jumps = panel.groupby("loan_id")["loan_state"].apply(lambda s: ((s.shift() == C) & (s == D90)).any())
    assert jumps.any()  # CURRENT -> DPD90 within a quarter: allowed three months apart
    validate_panel(panel, required=("loan_id", "reporting_month", "loan_state"))
    monthly_jump = pd.DataFrame({"loan_id": "x", "reporting_month": pd.date_range("2022-01-01", periods=2, freq="MS"),
                                 "loan_state": [C, D60]})
    with pytest.raises(DataError, match="allowed month-to-month moves"):  # one month apart: still refused
        validate_panel(monthly_jump, required=("loan_id", "reporting_month", "loan_state"))
    with pytest.raises(DataError, match="only 0 of .* one month apart .*--period quarter.*period_months=3"):
        MarkovTransitionModel().fit(panel)
    chain = MarkovTransitionModel().fit(panel, period_months=3)
    assert chain.period_months_ == 3 and chain.transition_matrix_.shape == (7, 7)
    p = chain.transition_matrix_
    assert np.abs(p - TRUE_P)[C].max() < 0.005  # the row most quarters start in
    assert np.abs(np.linalg.matrix_power(p, 3) - np.linalg.matrix_power(TRUE_P, 3))[:4].max() < 0.05
    # the 12-month default probability of the quarterly fit against the true chain's
    true_pd = np.linalg.matrix_power(TRUE_P, 12)[C, DF]
    assert chain.pd_curve(12)[-1] == pytest.approx(true_pd, rel=0.1)


def test_absorptions_reported_in_their_own_month_are_dated_not_dropped() -> None:
    """A quarterly file that dates each default and payoff (rows one or two months after a quarter end):
    those moves are read, each as an absorption in exactly that month, and the 12-month PD is the true
    chain's. Read as carried to the period end (``P^g``) they would double-count; dropped (the old fit),
    the PD fell by a third."""
    from creditsim.transitions.reporting import reporting_view

    _, carried, paths = _quarterly_book(6000, seed=8)
    months = pd.date_range("2022-01-01", periods=37, freq="MS")
    monthly = pd.DataFrame({"loan_id": np.repeat(carried["loan_id"].unique(), 37),
                            "reporting_month": np.tile(months, len(paths)), "loan_state": paths.reshape(-1)})
    first = monthly.groupby("loan_id")["loan_state"].transform(lambda s: s.ge(DF).cumsum()) <= 1
    monthly = monthly[first.to_numpy()]  # each loan ends in the month it is absorbed
    dated = reporting_view(monthly, 3, absorptions="dated")
    gap = dated.groupby("loan_id")["reporting_month"].diff().dt.days.dropna()
    assert (gap < 80).any()  # off-cycle rows are there
    true_pd = np.linalg.matrix_power(TRUE_P, 12)[C, DF]
    chain = MarkovTransitionModel().fit(dated, period_months=3)
    assert (chain.dated_shares_[4:] > 0.9).all() and (chain.dated_shares_[:4] == 0).all()
    assert chain.pd_curve(12)[-1] == pytest.approx(true_pd, rel=0.08)
    assert np.abs(chain.transition_matrix_ - TRUE_P)[C].max() < 0.004
    view = MarkovTransitionModel().fit(reporting_view(monthly, 3), period_months=3)  # the same book, carried
    assert (view.dated_shares_ == 0).all()
    assert view.pd_curve(12)[-1] == pytest.approx(true_pd, rel=0.08)
    # payoffs dated, defaults kept in the file for the workout and so seen at the next quarter end: read
    # state by state (one reading for all scored those defaults as entered in the quarter's last month)
    workout = pd.DataFrame({"loan_id": np.repeat(carried["loan_id"].unique(), 37),
                            "reporting_month": np.tile(months, len(paths)), "loan_state": paths.reshape(-1)})
    ends = workout.groupby("loan_id")["loan_state"].transform(lambda s: s.isin([PP, MT]).cumsum()) <= 1
    mixed = MarkovTransitionModel().fit(reporting_view(workout[ends.to_numpy()], 3, absorptions="dated"),
                                        period_months=3)
    assert mixed.dated_shares_[4] < 0.1 and (mixed.dated_shares_[5:] > 0.9).all()
    assert mixed.pd_curve(12)[-1] == pytest.approx(true_pd, rel=0.08)


def _file(paths: np.ndarray, offset: np.ndarray, dated: np.ndarray, delinquent_rows: bool = False) -> pd.DataFrame:
    """A quarterly file of monthly ``paths`` ``(n, T + 1)``: loan ``l`` reported at its first month and every
    third month from ``offset[l]``; its absorption dated in its month where ``dated[l]``, else carried to
    its next report month (dropped past the end); with ``delinquent_rows``, every delinquent month too."""
    n, span = paths.shape
    t = np.arange(span)[None, :]
    absorbed_at = np.where((paths >= DF).any(1), (paths >= DF).argmax(1), span)[:, None]
    live = t < absorbed_at
    report = live & (((t - offset[:, None]) % 3 == 0) | (t == 0) | (delinquent_rows & (paths >= D30) & (paths <= D90)))
    carried_at = absorbed_at + (-(absorbed_at - offset[:, None])) % 3
    end_row = np.where(dated[:, None], t == absorbed_at, t == carried_at) & (absorbed_at < span)
    loan, month = np.nonzero(report | end_row)
    state = np.where(end_row[loan, month], paths[loan, np.minimum(absorbed_at[loan, 0], span - 1)], paths[loan, month])
    return pd.DataFrame({"loan_id": loan.astype(str), "servicer": np.where(dated[loan], "dates", "carries"),
                         "reporting_month": pd.Timestamp("2022-01-01") + pd.to_timedelta(month * 31, "D"),
                         "loan_state": state}).assign(
        reporting_month=lambda d: d["reporting_month"].dt.to_period("M").dt.to_timestamp())


def test_mixed_files_are_read_as_their_mix() -> None:
    """The reviewer's files, all drawn from one monthly chain and compared with the monthly chain of the same
    paths: half the loans' absorptions dated and half carried (pooled, within 2.5 %; read all as dated it
    was 4.7 % low), with the servicer as the segment (each read as its own convention), loans on staggered
    quarterly cycles (2.5 %), a carried file with every delinquent month reported too (6 %: rows present
    *because* a loan is delinquent are informative, and the fit reads about 4 % low; the limitation is
    documented). A monthly fit of such a file is refused instead of reading its few one-month pairs."""
    paths = _paths(8000, 36, seed=12)
    reference = np.linalg.matrix_power(row_mle(_counts(paths, 1)), 12)[C, DF]
    n = len(paths)
    half = np.arange(n) % 2 == 0
    zero = np.zeros(n, np.int64)
    mix = _file(paths, zero, half)
    pooled = MarkovTransitionModel().fit(mix, period_months=3)
    assert pooled.pd_curve(12)[-1] == pytest.approx(reference, rel=0.025)
    assert 0.4 < pooled.dated_shares_[DF] < 0.6
    by = MarkovTransitionModel().fit(mix, by="servicer", period_months=3)
    assert by.segments_ == ("carries", "dates")
    np.testing.assert_allclose(by.pd_curve(12)[:, -1], reference, rtol=0.06)
    assert (by.dated_shares_[0, DF:] < 0.1).all() and (by.dated_shares_[1, DF:] > 0.85).all()
    staggered = MarkovTransitionModel().fit(_file(paths, np.arange(n) % 3, half), period_months=3)
    assert staggered.pd_curve(12)[-1] == pytest.approx(reference, rel=0.025)
    with_dpd = MarkovTransitionModel().fit(_file(paths, zero, np.zeros(n, bool), delinquent_rows=True), period_months=3)
    assert with_dpd.dated_shares_[DF] < 0.1
    assert with_dpd.pd_curve(12)[-1] == pytest.approx(reference, rel=0.06)
    with pytest.raises(DataError, match=r"consecutive rows of a loan are one month apart \(most are 3 months apart\)"):
        MarkovTransitionModel().fit(mix)
    loans = pd.DataFrame({"loan_id": np.arange(n).astype(str), "asset_class": "consumer"})
    for model in ("gbm", "logit"):  # every model, not only the chain
        with pytest.raises(DataError, match="most are 3 months apart"):
            cs.fit_transitions(mix, loans, model=model)
    # a monthly panel with gaps (missing reports) is still monthly: one month stays the most common gap
    monthly = pd.DataFrame({"loan_id": np.repeat(np.arange(400).astype(str), 37),
                            "reporting_month": np.tile(pd.date_range("2022-01-01", periods=37, freq="MS"), 400),
                            "loan_state": paths[:400].reshape(-1)})
    first_absorbed = monthly.groupby("loan_id")["loan_state"].transform(lambda s: s.ge(DF).cumsum()) <= 1
    gappy = monthly[first_absorbed.to_numpy() & (np.random.default_rng(0).random(len(monthly)) > 0.45)]
    MarkovTransitionModel().fit(gappy)


def test_fit_transitions_takes_a_quarterly_panel_and_simulate_runs_on_it(tmp_path, run_cli, capsys) -> None:
    loans, panel, _ = _quarterly_book(1500, seed=6)
    chain = cs.fit_transitions(panel, loans, period="quarter", out=tmp_path / "q")  # by asset class, calibrated
    assert chain.period_months_ == 3 and chain.segments_ and chain.segment_sensitivities
    back = MarkovTransitionModel.load(tmp_path / "q")
    np.testing.assert_array_equal(back.transition_matrix_, chain.transition_matrix_)
    assert back.period_months_ == 3
    with pytest.raises(ConfigError, match="overlay fit estimates the macro link from monthly moves"):
        cs.fit_transitions(panel, period="quarter", overlay="fit", macro="history")
    with pytest.raises(ConfigError, match="the chain's 'legacy' overlay does not read it"):  # default: legacy, not fit
        cs.fit_transitions(panel, period="quarter", macro="history")
    early = panel.assign(reporting_month=panel["reporting_month"] - pd.DateOffset(months=12))  # before origination
    with pytest.raises(DataError, match="before their loan's origination"):
        cs.fit_transitions(early, loans, period="quarter")
    with pytest.raises(ConfigError, match="'trajectory' learns from monthly loan histories"):
        cs.fit_transitions(panel, loans, model="trajectory", period="quarter")
    with pytest.raises(ConfigError, match="period: expected one of"):
        cs.fit_transitions(panel, loans, period="week")
    folder = tmp_path / "files"
    folder.mkdir()
    panel.to_parquet(folder / "panel.parquet")
    loans.to_parquet(folder / "loans.parquet")
    base = ["train", "transitions", "--panel", str(folder / "panel.parquet"), "--tape", str(folder / "loans.parquet")]
    assert run_cli([*base, "--period", "quarter", "--out", str(tmp_path / "cli")]) == 0
    assert "a monthly chain fitted to a panel reported every 3 months" in " ".join(capsys.readouterr().out.split())
    assert json.loads((tmp_path / "cli" / "markov_model.json").read_text())["period_months"] == 3
    assert run_cli([*base, "--model", "transformer", "--period", "quarter", "--epochs", "2", "--out",
                    str(tmp_path / "tt")]) == 0  # the transformer learns monthly matrices from the quarters too
    assert "(quarterly moves)" in capsys.readouterr().out
    assert json.loads((tmp_path / "tt" / "config.json").read_text())["training"]["period_months"] == 3
    assert run_cli([*base, "--period", "year", "--out", str(tmp_path / "t")]) == 2
    assert "--period: expected one of ['month', 'quarter']" in capsys.readouterr().err
    assert run_cli(["simulate", "--tape", str(folder / "loans.parquet"), "--deal", str(example_path("example_clo.yaml")),
                    "--n-sims", "8", "--horizon", "12", "--mix", "baseline", "--transition-model", str(tmp_path / "cli"),
                    "--out", str(tmp_path / "run")]) == 0
