"""Bad-input suite for ``creditsim.simulate`` arguments (issue 10).

Every case must give a one-line :class:`~creditsim.errors.CreditSimError` whose message names the
parameter, before any simulation work (no allocation traceback for absurd sizes, no torch / pandas
error from deep inside).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditsim.errors import CreditSimError
from creditsim.examples import example_path
from creditsim.risk.simulate import simulate
from creditsim.deal.config import load_deal


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    return pd.read_parquet(example_path("loans_example.parquet")).head(40)


@pytest.fixture(scope="module")
def deal():
    return load_deal(example_path("example_clo.yaml"))


OK = dict(n_simulations=8, macro="synthetic", horizon=6, progress=False)

CASES = [
    ("n_sims-zero", dict(n_simulations=0), "n_simulations"),
    ("n_sims-negative", dict(n_simulations=-5), "n_simulations"),
    ("n_sims-float", dict(n_simulations=2.5), "n_simulations"),
    ("n_sims-string", dict(n_simulations="many"), "n_simulations"),
    ("n_sims-huge", dict(n_simulations=10**12), "n_simulations"),
    ("n_sims-huge-float", dict(n_simulations=1e12), "n_simulations"),
    ("horizon-zero", dict(horizon=0), "horizon"),
    ("horizon-negative", dict(horizon=-12), "horizon"),
    ("horizon-huge", dict(horizon=10**7), "horizon"),
    ("horizon-string", dict(horizon="ten"), "horizon"),
    ("sims-x-horizon-too-big", dict(n_simulations=10**8, horizon=1200), "n_simulations"),
    ("chunk-zero", dict(chunk_size=0), "chunk_size"),
    ("chunk-negative", dict(chunk_size=-1), "chunk_size"),
    ("seed-negative", dict(seed=-1), "seed"),
    ("seed-float", dict(seed=1.5), "seed"),
    ("seed-string", dict(seed="abc"), "seed"),
    ("engine-unknown", dict(engine="magic"), "engine"),
    ("engine-none", dict(engine=None), "engine"),
    ("macro-unknown-name", dict(macro="nonsense"), "macro"),
    ("macro-array-wrong-shape", dict(macro=np.zeros((8, 6))), "macro"),
    ("macro-array-nan", dict(macro=np.full((8, 6, 9), np.nan)), "macro"),
    ("macro-frame-missing-vars", dict(macro=pd.DataFrame({"x": [0.1] * 6},
                                                        index=pd.date_range("2020-01-01", periods=6, freq="MS"))),
     "macro"),
    ("mix-unknown-scenario", dict(scenario_mix={"apocalypse": 1.0}), "apocalypse"),
    ("mix-negative-weight", dict(scenario_mix={"baseline": 1.5, "adverse": -0.5}), "adverse"),
    ("mix-empty", dict(scenario_mix={}), "scenario_mix"),
    ("mix-unknown-string", dict(scenario_mix="doom"), "doom"),
    ("mix-zero-weights", dict(scenario_mix={"baseline": 0.0}), "scenario_mix"),
    ("device-tpu", dict(device="tpu"), "device"),
    ("backend-unknown", dict(backend="spark"), "backend"),
    ("mode-unknown", dict(mode="fuzzy"), "mode"),
]


@pytest.mark.parametrize("kwargs, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_simulate_argument_is_a_one_line_error_naming_it(loans, deal, kwargs, needle) -> None:
    with pytest.raises(CreditSimError) as exc:
        simulate(loans, deal, **{**OK, **kwargs})
    msg = str(exc.value)
    assert needle in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("bad_loans, needle", [
    (pd.DataFrame(), "loan"),
    ("loans.csv", "loan tape"),
    (None, "loan tape"),
], ids=["empty-frame", "a-path-string", "none"])
def test_bad_loans_argument(deal, bad_loans, needle) -> None:
    with pytest.raises(CreditSimError) as exc:
        simulate(bad_loans, deal, **OK)
    assert needle in str(exc.value).lower()


@pytest.mark.parametrize("bad_deal", [None, 42, {"name": "x"}], ids=["none", "int", "dict-without-tranches"])
def test_bad_deal_argument(loans, bad_deal) -> None:
    with pytest.raises(CreditSimError) as exc:
        simulate(loans, bad_deal, **OK)
    assert "deal" in str(exc.value).lower() or "tranche" in str(exc.value).lower()
