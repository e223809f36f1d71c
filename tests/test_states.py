import numpy as np
import pytest

from creditsim.errors import ConfigError
from creditsim.states import (
    ALLOWED_TRANSITIONS,
    GRADES_7,
    GRADES_8,
    MACRO_VARS,
    POOL_CF_TYPES,
    LoanState,
    scenario_index,
)


def test_state_order_is_the_documented_api():
    assert [s.name for s in LoanState] == [
        "CURRENT", "DPD30", "DPD60", "DPD90", "DEFAULT", "PREPAID", "MATURED"
    ]


def test_absorbing_states_only_stay():
    for s in (LoanState.DEFAULT, LoanState.PREPAID, LoanState.MATURED):
        row = ALLOWED_TRANSITIONS[s]
        assert row.sum() == 1 and row[s]


def test_delinquency_advances_at_most_one_bucket():
    s = LoanState
    assert not ALLOWED_TRANSITIONS[s.CURRENT, s.DPD60]
    assert not ALLOWED_TRANSITIONS[s.CURRENT, s.DPD90]
    assert not ALLOWED_TRANSITIONS[s.DPD30, s.DPD90]
    assert ALLOWED_TRANSITIONS[s.DPD30, s.DPD60] and ALLOWED_TRANSITIONS[s.DPD60, s.DPD90]
    # cures to any lower bucket
    assert ALLOWED_TRANSITIONS[s.DPD90, s.CURRENT] and ALLOWED_TRANSITIONS[s.DPD90, s.DPD30]
    assert not ALLOWED_TRANSITIONS.flags.writeable


def test_every_live_state_can_default_and_exit():
    live = [LoanState.CURRENT, LoanState.DPD30, LoanState.DPD60, LoanState.DPD90]
    assert ALLOWED_TRANSITIONS[np.ix_(live, [4, 5, 6])].all()


def test_grades_and_macro_vars():
    assert GRADES_7 == ("AAA", "AA", "A", "BBB", "BB", "B", "D")
    assert GRADES_8 == ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "D")
    assert len(MACRO_VARS) == 9 and MACRO_VARS[0] == "gdp_growth" and MACRO_VARS[-1] == "default_rate"
    assert POOL_CF_TYPES[-1] == "balance" and len(POOL_CF_TYPES) == 7


@pytest.mark.parametrize("given, expected", [("baseline", 0), ("Severely Adverse", 2), ("stagflation", 3), (1, 1)])
def test_scenario_index(given, expected):
    assert scenario_index(given) == expected


@pytest.mark.parametrize("bad", ["boom", 4, -1])
def test_scenario_index_rejects_unknown(bad):
    with pytest.raises(ConfigError, match="scenario"):
        scenario_index(bad)
