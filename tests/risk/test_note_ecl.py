"""ECL of an SPV note held at amortised cost: the loss at the EIR, the 12-month part, staging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from creditsim.deal.waterfall import run_waterfall
from creditsim.errors import ConfigError
from creditsim.examples import example_path
from creditsim.risk.expected import ExpectedLossPath
from creditsim.risk.note_ecl import note_ecl, note_losses

DEAL = example_path("example_clo.yaml")


@pytest.fixture(scope="module")
def tape() -> pd.DataFrame:
    return pd.read_parquet(example_path("loans_example.parquet")).sample(300, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def stressed(tape):
    return note_ecl(tape, DEAL, "C", n_paths=8, reps=4, horizon=24, scenario_mix="severely_adverse")


def test_lifetime_loss_is_par_minus_the_pv_of_cash_received_at_the_coupon(tape) -> None:
    elp = ExpectedLossPath.from_tape(tape, DEAL, horizon=24)
    pool = elp.monte_carlo_pool(elp.scenario_paths(4, 0, {"horizon": 24, "scenario_mix": "severely_adverse"}), 3)
    k = elp.tranche_index("C")
    loss, event = note_losses(elp, pool, k)
    with torch.no_grad():
        wf = run_waterfall(pool, elp.deal, initial_balance=elp.engine.initial_balance, mode="hard")
    cash = wf["tranche_cashflows"][:, :, k].numpy()
    c = elp.deal.tranches[k].coupon
    by_hand = 1.0 - (cash * (1 + c / 12) ** -np.arange(1, cash.shape[1] + 1)).sum(1) / elp.deal.tranches[k].balance
    np.testing.assert_allclose(loss, np.maximum(by_hand, 0.0), atol=1e-9)
    assert ((event <= 24) == (loss > 0)).all()  # a loss always has an event month inside the horizon


def test_twelve_month_part_and_probabilities_are_ordered(stressed) -> None:
    e = stressed
    assert 0.0 < e.ecl_12m <= e.ecl_lifetime and 0.0 <= e.pd_12m <= e.pd_lifetime <= 1.0
    assert e.stage == 1 and e.allowance == e.ecl_12m  # no purchase PD: no quantitative SICR test
    assert set(e.se) == {"ecl_12m", "ecl_lifetime", "pd_12m", "pd_lifetime"}
    assert e.summary().loc["allowance", "value"] == e.allowance


def test_staging_follows_the_change_in_lifetime_pd_since_purchase(tape, stressed) -> None:
    kw = dict(n_paths=8, reps=4, horizon=24, scenario_mix="severely_adverse")
    worse = note_ecl(tape, DEAL, "C", pd_at_purchase=stressed.pd_lifetime / 4, **kw)
    same = note_ecl(tape, DEAL, "C", pd_at_purchase=stressed.pd_lifetime, **kw)
    impaired = note_ecl(tape, DEAL, "C", credit_impaired=True, **kw)
    assert (worse.stage, same.stage, impaired.stage) == (2, 1, 3)
    assert worse.allowance == pytest.approx(stressed.ecl_lifetime) and same.allowance == pytest.approx(stressed.ecl_12m)


def test_a_senior_note_on_a_baseline_path_has_no_loss(tape) -> None:
    e = note_ecl(tape, DEAL, "A", n_paths=4, reps=4, horizon=24, scenario_mix="baseline")
    assert e.ecl_lifetime == 0.0 and e.pd_lifetime == 0.0 and e.allowance == 0.0


def test_bad_requests(tape) -> None:
    with pytest.raises(ConfigError, match="is the equity"):
        note_ecl(tape, DEAL, "Equity", n_paths=2, reps=1, horizon=12)
    with pytest.raises(ConfigError, match="pd_at_purchase"):
        note_ecl(tape, DEAL, "C", pd_at_purchase=2.0, n_paths=2, reps=1, horizon=12)


def test_note_ecl_command(tape, tmp_path, capsys, run_cli) -> None:
    path = tmp_path / "loans.parquet"
    tape.to_parquet(path)
    code = run_cli(["note-ecl", "--tape", str(path), "--deal", str(DEAL), "--tranche", "C", "--paths", "4", "--reps", "2",
                    "--horizon", "12", "--pd-at-purchase", "0.01"])
    assert code == 0
    text = capsys.readouterr().out
    assert "IFRS 9 ECL of note C" in text and "lifetime PD at purchase" in text
    assert run_cli(["note-ecl", "--tape", str(path), "--deal", str(DEAL), "--tranche", "Equity", "--paths", "2", "--reps", "1",
                    "--horizon", "12"]) == 2
    assert "is the equity" in capsys.readouterr().err
