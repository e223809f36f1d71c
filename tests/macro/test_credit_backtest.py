"""Rolling-origin out-of-time check of the credit link (creditsim.macro.credit_backtest): on a series
that a driver really moves, the link beats the no-macro baseline with an interval below zero; on a
series the drivers do not move, it does not; the bank-delinquency numbers the credit-link docstring
quotes come out of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from creditsim.errors import ConfigError, DataError
from creditsim.macro.credit_backtest import compare_to_baseline, rolling_backtest

ORIGINS = [f"{y}-{m:02d}" for y in range(1996, 2010) for m in (1, 7)]


def _series(history: pd.DataFrame, beta: float, seed: int = 0) -> pd.Series:
    """A quarterly probit partial-adjustment rate driven by the HY spread with weight ``beta``."""
    q_macro = history["credit_spread_hy"].resample("QS").mean()
    z = ((q_macro - q_macro.mean()) / q_macro.std()).to_numpy()
    rng = np.random.default_rng(seed)
    q, out = norm.ppf(0.03), []
    for shock in z:
        q = -0.35 + 0.82 * q + beta * shock + 0.02 * rng.standard_normal()
        out.append(norm.cdf(q))
    return pd.Series(out, index=q_macro.index, name="synthetic")


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    from creditsim.datasets import load_macro_history
    return load_macro_history(end="2019-12")


def test_the_link_beats_the_baseline_where_the_driver_matters(history: pd.DataFrame) -> None:
    bt = rolling_backtest(_series(history, 0.08), history, ORIGINS, horizon=8, variables=["credit_spread_hy"])
    c = compare_to_baseline(bt, block=8)
    assert c["origins"] == len(ORIGINS) and c["unfit"] == 0
    assert c["ci_high"] < 0 and c["win_share"] > 0.7
    assert c["diff"] == pytest.approx(c["rmse_link"] - c["rmse_no_macro"])


def test_no_edge_where_the_driver_does_not_matter(history: pd.DataFrame) -> None:
    bt = rolling_backtest(_series(history, 0.0), history, ORIGINS, horizon=8, variables=["credit_spread_hy"])
    c = compare_to_baseline(bt, block=8)
    assert c["ci_low"] < 0 < c["ci_high"] or c["diff"] > -0.0005


def test_bootstrap_is_seeded_and_the_interval_brackets_the_mean(history: pd.DataFrame) -> None:
    bt = rolling_backtest(_series(history, 0.05), history, ORIGINS[:10], horizon=4, variables=["credit_spread_hy"])
    a, b = compare_to_baseline(bt, seed=3), compare_to_baseline(bt, seed=3)
    assert a == b and a["ci_low"] <= a["diff"] <= a["ci_high"]


def test_bad_inputs_are_named(history: pd.DataFrame) -> None:
    s = _series(history, 0.05)
    with pytest.raises(ConfigError, match="horizon must be a positive"):
        rolling_backtest(s, history, ORIGINS, horizon=0, variables=["credit_spread_hy"])
    with pytest.raises(DataError, match="no origin has realised quarters"):
        rolling_backtest(s, history, ["2030-01"], variables=["credit_spread_hy"])
    with pytest.raises(DataError, match="at least 2"):
        compare_to_baseline(rolling_backtest(s, history, ORIGINS[:1], variables=["credit_spread_hy"]))


def test_bank_delinquency_corporate_link_beats_no_macro_out_of_time(history: pd.DataFrame) -> None:
    """The claim of the credit-link docstring: business-loan delinquency, shipped drivers and signs,
    origins 1995Q4-2017Q4 every quarter, 8 quarters ahead: RMSE below the no-macro baseline's with the
    95 % interval below zero (measured -0.0044 [-0.0069, -0.0025])."""
    from creditsim.datasets import load_bank_loss_rates, load_macro_history
    from creditsim.macro.credit_link import EXPECTED_SIGNS, LINK_VARIABLES
    rates = load_bank_loss_rates("delinquency")["business"].dropna()
    macro = load_macro_history(ragged="keep")
    origins = [f"{y}-{m:02d}" for y in range(1995, 2018) for m in (1, 4, 7, 10) if (y, m) >= (1995, 10)]
    c = compare_to_baseline(rolling_backtest(rates, macro, origins, 8, LINK_VARIABLES, EXPECTED_SIGNS), block=8)
    assert c["unfit"] == 0
    assert c["diff"] == pytest.approx(-0.0044, abs=0.0005) and c["ci_high"] < 0


def test_cli_eval_credit_link_prints_every_class_and_writes_the_csv(tmp_path, capsys, run_cli) -> None:
    out = tmp_path / "cl.csv"
    assert run_cli(["eval", "credit-link", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("corporate", "consumer", "real_estate", "link - no macro [95 %]"):
        assert word in text
    table = pd.read_csv(out)
    assert list(table["asset_class"]) == ["corporate", "consumer", "real_estate"]
    assert table.loc[0, "ci_high"] < 0 and (table["origins"] + table["unfit"] == 89).all()
