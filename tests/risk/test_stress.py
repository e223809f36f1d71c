"""Supervisory-style (DFAST) loss accounting: closed form, conservation, scenario ordering, seeds, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import ConfigError, DataError
from creditsim.examples import example_path
from creditsim.risk.stress import ALL_CLASSES, parse_stress_scenario, quarterly_measures, stress_losses
from creditsim.states import ASSET_CLASSES, LoanState
from creditsim.transitions.markov import MarkovTransitionModel

CUTOFF = pd.Timestamp("2025-01-01")
#: monthly CURRENT -> DEFAULT probability and LGD of the closed-form classes
CLOSED = {"corporate": (0.010, 0.40), "consumer": (0.025, 0.70)}


def _hazard_matrix(p: float) -> np.ndarray:
    """CURRENT defaults with probability ``p`` a month and otherwise stays; nothing else happens."""
    m = np.eye(7)
    m[LoanState.CURRENT, LoanState.CURRENT] = 1.0 - p
    m[LoanState.CURRENT, LoanState.DEFAULT] = p
    for dpd in (LoanState.DPD30, LoanState.DPD60, LoanState.DPD90):  # never reached from CURRENT
        m[dpd] = 0.0
        m[dpd, LoanState.DEFAULT] = 1.0
    return m


@pytest.fixture(scope="module")
def closed_form_case():
    """Bullet loans (constant balance) originated at the cut-off, a constant default hazard per class, no
    prepayment, and a Markov model without macro sensitivities (the overlay is the identity)."""
    from creditsim.transitions.synthetic import LoanTapeGenerator

    loans, _ = LoanTapeGenerator(1600, 1, random_seed=5).generate()
    loans = loans.drop(columns=[c for c in ("rating",) if c in loans.columns])
    n = len(loans)
    loans["asset_class"] = np.where(np.arange(n) % 2 == 0, "corporate", "consumer")
    loans["lgd_assumption"] = [CLOSED[a][1] for a in loans["asset_class"]]
    loans["amortization_type"] = "bullet"
    loans["term_months"] = 120
    loans["origination_date"] = CUTOFF
    loans["maturity_date"] = CUTOFF + pd.DateOffset(months=120)
    loans["original_balance"] = loans["current_balance"] = 10_000.0  # equal sizes: binomial noise only
    mats = np.stack([_hazard_matrix(CLOSED.get(a, (0.01, 0))[0]) for a in ASSET_CLASSES])
    model = MarkovTransitionModel.from_matrix(mats, segments=ASSET_CLASSES, sensitivities={})
    result = stress_losses(loans, ["fed:2025:baseline"], quarters=9, n_paths=24, seed=3, transition_model=model)
    return loans, result


def test_closed_form_loss_rate_is_lgd_times_pd_times_months(closed_form_case):
    # E[losses] = LGD B sum_t (1-p)^t p and E[avg balance] = B mean_t (1-p)^t over t = 0..26, so the
    # expected 9-quarter loss rate is LGD x p x 27 exactly; quarter q gets its share of sum_t (1-p)^t.
    _, r = closed_form_case
    assert r.asset_classes == ("corporate", "consumer", ALL_CLASSES)
    months = np.arange(27)
    for g, cls in enumerate(r.asset_classes[:2]):
        p, lgd = CLOSED[cls]
        rates = r.cumulative_rates[0, :, g]
        se = rates.std(ddof=1) / np.sqrt(rates.size)
        assert abs(rates.mean() - lgd * p * 27) < 4 * se + 1e-4, (cls, rates.mean(), lgd * p * 27)
        surv = (1 - p) ** months
        expected_q = lgd * p * surv.reshape(9, 3).sum(axis=1) / surv.mean()
        q_rates = r.loss_rates[0, :, :, g]
        q_se = q_rates.std(axis=0, ddof=1) / np.sqrt(q_rates.shape[0])
        assert (np.abs(q_rates.mean(axis=0) - expected_q) < 4.5 * q_se + 1e-5).all(), (cls, q_rates.mean(axis=0), expected_q)
        # bullet loans: the defaulted balance is the whole balance, the loss its LGD share on average
        assert r.losses[0, :, :, g].sum() == pytest.approx(lgd * r.default_par[0, :, :, g].sum(), rel=0.03)


def test_table_and_quarterly_are_consistent(closed_form_case):
    _, r = closed_form_case
    table = r.table()
    assert list(table.index) == list(r.asset_classes)
    assert table[("fed:2025:baseline", "mean")].to_numpy() == pytest.approx(100 * r.cumulative_rates[0].mean(axis=0))
    assert (table.xs("p05", axis=1, level="stat") <= table.xs("p95", axis=1, level="stat")).all().all()
    q = r.quarterly()
    assert len(q) == 1 * 3 * 9
    # quarterly rates over the window's average balance add up to the cumulative rate
    summed = q.groupby("asset_class", sort=False)["loss_rate_mean"].sum()
    summary = r.summary().set_index("asset_class")
    assert summed.to_numpy() == pytest.approx(summary.loc[list(summed.index), "loss_rate_mean"].to_numpy())


def test_bank_reference_is_the_2024h1_charge_off_pace_over_the_window(closed_form_case):
    """Published 2024Q1 / Q2 net charge-offs (Board release table, annualised): C&I 0.43 / 0.48 -> 0.455 %,
    all loans 0.62 / 0.65 -> 0.635 %; over the window x quarters / 4."""
    _, r = closed_form_case
    ref = r.bank_reference()
    assert list(ref.index) == list(r.asset_classes)
    want = {"corporate": 0.455, "consumer": 2.855, "real_estate": 0.12, "receivables": 0.455, "all": 0.635}
    for cls in r.asset_classes:
        assert ref[cls] == pytest.approx(want[cls] * r.quarters / 4, rel=1e-9), cls


@pytest.fixture(scope="module")
def demo_result():
    tape = pd.read_parquet(example_path("loans_example.parquet"))
    return tape, stress_losses(tape, n_paths=20, seed=0)


def test_conservation_and_all_is_the_balance_weighted_combination(demo_result):
    tape, r = demo_result
    losses, par = r.losses.sum(axis=2), r.default_par.sum(axis=2)  # (N, S, G)
    assert (losses >= 0).all() and (losses <= par + 1e-6).all()
    assert (par <= r.initial_balance[None, None] + 1e-6).all()
    assert (r.quarter_balance <= r.initial_balance + 1e-6).all()
    # "all" is the sum of the classes, its rate the classes' rates weighted by their average balances
    assert np.allclose(r.losses[..., -1], r.losses[..., :-1].sum(axis=-1), rtol=0, atol=1e-6)
    avg = r.avg_balance
    weighted = (r.cumulative_rates[..., :-1] * avg[..., :-1]).sum(axis=-1) / avg[..., :-1].sum(axis=-1)
    assert np.allclose(r.cumulative_rates[..., -1], weighted, rtol=1e-12)
    by_class = tape.groupby("asset_class")["current_balance"].sum()
    assert r.initial_balance[:-1] == pytest.approx(by_class[list(r.asset_classes[:-1])].to_numpy())


def test_severely_adverse_loses_more_than_baseline_for_every_class(demo_result):
    _, r = demo_result
    assert r.scenarios == ("fed:2025:baseline", "fed:2025:severely_adverse")
    mean = r.cumulative_rates.mean(axis=1)  # (N, G)
    assert (mean[1] > mean[0]).all(), dict(zip(r.asset_classes, mean.T.tolist()))


def test_same_seed_same_numbers_and_chunking_does_not_matter(demo_result, monkeypatch):
    tape, r = demo_result
    import creditsim.risk.stress as stress

    monkeypatch.setattr(stress, "PATH_CHUNK", 7)
    again = stress_losses(tape, n_paths=20, seed=0)
    for name in ("losses", "default_par", "recovery", "quarter_balance"):
        assert np.array_equal(getattr(again, name), getattr(r, name)), name


def test_scenario_names_and_bad_inputs(demo_result):
    tape, _ = demo_result
    assert parse_stress_scenario("FED:2025:Severely_Adverse").horizon_quarters == 13
    assert parse_stress_scenario("var:adverse").scenario == "adverse"
    with pytest.raises(ConfigError, match="unknown scenario 'moon:2025'"):
        stress_losses(tape, ["moon:2025"], n_paths=2)
    with pytest.raises(ConfigError, match="fed:YEAR:SCENARIO"):
        stress_losses(tape, ["fed:2025"], n_paths=2)
    with pytest.raises(ConfigError, match="no bundled supervisory scenarios for year '1999'") as e:
        stress_losses(tape, ["fed:1999:baseline"], n_paths=2)
    assert str(e.value).count("fed:1999:baseline") == 1  # named once, not wrapped twice
    # a name the year does not have: the year's own tables are listed, not the generator's four types
    for bad in ("fed:2025:boom", "fed:2025:adverse"):
        with pytest.raises(ConfigError, match=r"no bundled supervisory path '\w+' for 2025; bundled: "
                                              r"\['fed:2025:baseline', 'fed:2025:severely_adverse'\]$"):
            parse_stress_scenario(bad)
    with pytest.raises(ConfigError, match="quarters must be an integer >= 1"):
        stress_losses(tape, quarters=0, n_paths=2)
    with pytest.raises(ConfigError, match=r"beyond the path horizon .*\(13 quarters\)"):
        stress_losses(tape, quarters=14, n_paths=2)
    with pytest.raises(ConfigError, match="more than once"):
        stress_losses(tape, ["fed:2025:baseline", "fed:2025:baseline"], n_paths=2)
    with pytest.raises(ConfigError, match="engine must be one of"):
        stress_losses(tape, engine="trajectory", n_paths=2)
    with pytest.raises(DataError, match=r"no loans of asset class \['consumer'\]"):
        stress_losses(tape[tape["asset_class"] != "consumer"], asset_classes=["consumer", "corporate"], n_paths=2)
    with pytest.raises(ConfigError, match="are not asset classes"):
        stress_losses(tape, asset_classes=["mortgages"], n_paths=2)


def test_quarterly_measures_exact_cent_sums():
    rng = np.random.default_rng(0)
    cf = np.round(rng.uniform(0, 1000, size=(3, 6, 2, 7)), 2)
    m = quarterly_measures(cf, np.array([5000.0, 7000.0]), 2)
    assert m["losses"].shape == (3, 2, 3)
    assert np.allclose(m["losses"][..., 0], cf[:, :, 0, 5].reshape(3, 2, 3).sum(axis=2))
    assert np.allclose(m["losses"][..., 2], m["losses"][..., 0] + m["losses"][..., 1])
    assert m["quarter_balance"][:, 0, 0] == pytest.approx((5000.0 + cf[:, 0, 0, 6] + cf[:, 1, 0, 6]) / 3)
    with pytest.raises(DataError, match="quarters need"):
        quarterly_measures(cf, np.array([1.0, 1.0]), 3)


def test_rule_based_and_generated_scenarios_run_side_by_side(demo_result):
    """``synthetic:`` paths carry their own start; the run's start is passed to every source and must not
    stop them (a regression of the stress command found in review)."""
    tape, _ = demo_result
    result = stress_losses(tape.iloc[:200], ["vae:baseline", "synthetic:severely_adverse"], n_paths=4)
    assert result.scenarios == ("vae:baseline", "synthetic:severely_adverse")
    assert np.isfinite(result.losses).all() and result.losses.shape[:2] == (2, 4)
