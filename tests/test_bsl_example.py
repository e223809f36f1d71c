"""The example BSL CLO (``bsl_clo.yaml``) and its loan tape (``loans_bsl.parquet``), what ``make demo`` runs:
the files load and validate, the tape is what ``scripts/make_bsl_example.py`` generates, and the deal
behaves like a CLO on it (tranche losses ordered by seniority, the equity earning a return in the
baseline)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditsim.deal.config import load_deal
from creditsim.errors import ConfigError
from creditsim.examples import example_path, list_examples
from creditsim.risk.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_bsl_example.py"


def _script():
    """The generator script as a module (it lives outside the package: scripts/ is not shipped)."""
    spec = importlib.util.spec_from_file_location("make_bsl_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bsl():
    return pd.read_parquet(example_path("loans_bsl.parquet")), load_deal(example_path("bsl_clo.yaml"))


def test_bsl_files_are_shipped_examples():
    assert {"bsl_clo.yaml", "loans_bsl.parquet"} <= set(list_examples())
    assert example_path("loans_bsl.parquet").stat().st_size < 1_000_000


def test_bsl_tape_is_a_valid_broadly_syndicated_loan_pool(bsl):
    from creditsim.schema import validate_loan_tape

    loans, deal = bsl
    clean = validate_loan_tape(loans)
    assert 250 <= len(clean) <= 400 and clean["loan_id"].is_unique  # one position per obligor
    assert set(clean["asset_class"]) == {"corporate"} and set(clean["rate_type"]) == {"floating"}
    assert set(clean["borrower_type"]) == {"large_corporate"}
    assert clean["term_months"].between(60, 84).all()
    par = clean["current_balance"].sum()
    assert par == deal.collateral_balance == 500_000_000  # the simulation's deal scale factor is 1
    # notched ratings fold into letter grades: mostly single B, some BB, a few CCC
    share = clean.groupby("rating", observed=True)["current_balance"].sum() / par
    assert share["B"] > 0.6 and 0.1 < share["BB"] < 0.4 and 0 < share["CCC"] < 0.075
    assert set(share.index) == {"BB", "B", "CCC"}
    was = float(np.dot(clean["spread_bps"], clean["current_balance"]) / par)
    assert 300 < was < 400


def test_bsl_tape_is_reproduced_exactly_by_its_generator(bsl):
    loans, _ = bsl
    fresh = _script().build_bsl_tape()
    pd.testing.assert_frame_equal(loans, fresh, check_exact=True)


def test_bsl_generator_refuses_bad_sizes_with_config_errors():
    make = _script()
    with pytest.raises(ConfigError, match="n_loans must be an integer >= 1, got 0"):
        make.build_bsl_tape(n_loans=0)
    with pytest.raises(ConfigError, match="target_par must be a whole number of thousands"):
        make.build_bsl_tape(target_par=1_000_500)
    with pytest.raises(ConfigError, match="mix weights"):
        make.exact_counts({"B": -1.0}, 10)
    assert make.exact_counts({"a": 0.5, "b": 0.3, "c": 0.2}, 7).tolist() == [4, 2, 1]


def test_bsl_deal_passes_deal_check(capsys, run_cli):
    assert run_cli(["deal", "check", str(example_path("bsl_clo.yaml"))]) == 0
    out = capsys.readouterr().out
    assert "Example BSL CLO 2025-1" in out and "deal OK" in out
    assert "310,000,000" in out and "0.3800" in out  # AAA balance and attachment


def test_bsl_deal_has_clo_proportions_and_cushions(bsl):
    _, deal = bsl
    par = deal.collateral_balance
    shares = {t.name: t.balance / par for t in deal.tranches}
    assert shares == pytest.approx({"AAA": 0.62, "AA": 0.11, "A": 0.065, "BBB": 0.06, "BB": 0.045, "Equity": 0.10})
    senior = 0.0
    for t in deal.debt_tranches:
        senior += t.balance
        if t.oc_trigger is not None:  # every OC test starts with a cushion of a few percent
            assert 0.03 < (par / senior) / t.oc_trigger - 1 < 0.12, t.name
    assert [t.name for t in deal.debt_tranches if t.deferrable] == ["A", "BBB", "BB"]
    assert 48 <= deal.reinvestment_period <= 60 and deal.interest_diversion_trigger is not None
    assert deal.senior_fee == 0.0015 and deal.sub_fee == 0.0035


def test_bsl_notes_float_over_the_tapes_base_rate(bsl):
    """Floating notes, margins widening down the stack, over the same base rate as the loans' coupons
    (the policy rate of the tape's cut-off month in the bundled history)."""
    from creditsim.datasets import load_macro_history

    loans, deal = bsl
    margins = [t.margin for t in deal.debt_tranches]
    assert all(t.floating for t in deal.debt_tranches)
    assert margins == sorted(margins) and 0.012 <= margins[0] <= 0.015 and 0.06 <= margins[-1] <= 0.07
    cutoff = pd.Timestamp(loans["origination_date"].max()).to_period("M")
    policy = load_macro_history()["policy_rate"]
    assert deal.base_rate == pytest.approx(policy[policy.index.to_period("M") == cutoff].iloc[0])
    np.testing.assert_allclose(loans["interest_rate"], deal.base_rate + loans["spread_bps"] / 1e4, atol=1e-9)


def test_bsl_tranche_el_is_ordered_by_seniority_with_the_demo_macro_source(bsl):
    """The default scenario mix on the pretrained MacroVAE (the demo's settings, 64 scenarios): AAA loses
    (almost) nothing, and every class loses at least as much as the one above it."""
    loans, deal = bsl
    res = simulate(loans, deal, n_simulations=64, macro="vae", engine="markov", seed=7, chunk_size=64,
                   progress=False, keep_cashflows=False)
    el = [t.expected_loss for t in res.tranche_results]
    assert [t.name for t in res.tranche_results] == ["AAA", "AA", "A", "BBB", "BB", "Equity"]
    assert el[0] < 0.001
    assert all(junior >= senior for senior, junior in zip(el, el[1:])), el
    assert el[5] > el[4] > 0  # the junior classes strictly (the mezzanine holds on 64 plausible paths)


def test_bsl_demo_acceptance_numbers(bsl):
    """Issue 15's acceptance on the demo's settings with 5,000 scenarios (default mix, pretrained MacroVAE,
    seed 7, 60 months): baseline mean equity IRR 5-20 %, AAA EL under 0.1 %, tranche EL increasing down the
    stack, strictly wherever a class loses. Measured: AAA 0 / AA 0 / A 0 / BBB 0.046 / BB 1.89 / equity
    13.7 %, baseline mean equity IRR 6.2 %. Before the plausible band (:mod:`creditsim.macro.plausibility`)
    and the bounded scenario severity (2026-12), AA lost in 2 of the 5,000 scenarios, A 0.159 % and BBB
    1.13 %: the ordering was strict at the top only through the tails those removed (severely adverse
    paths with unemployment up to 43 % and HY spreads up to 100 %).
    ~15 s on 2 cores without the cashflow arrays."""
    loans, deal = bsl
    res = simulate(loans, deal, n_simulations=5000, macro="vae", engine="markov", seed=7, chunk_size=500,
                   progress=False, keep_cashflows=False)
    baseline = res.scenarios == 0
    assert 0.05 < res.tranche("Equity").subset(baseline).mean_irr < 0.20
    el = [t.expected_loss for t in res.tranche_results]
    assert el[0] < 0.001
    assert all(junior > senior or junior == senior == 0 for senior, junior in zip(el, el[1:])), el
    assert el[5] > el[4] > el[3] > 0  # BBB, BB and equity lose, each more than the class above
