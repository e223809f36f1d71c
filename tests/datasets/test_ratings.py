"""Bundled S&P rating data: shapes, types and consistency with the published files."""

from __future__ import annotations

import numpy as np
import pytest

from creditsim.datasets.ratings import COUNT_GRADES, load_sp_ratings, merge_ccc_into_b
from creditsim.errors import DataError
from creditsim.states import GRADES_7, GRADES_8


def test_load_sp_ratings_matrices_are_valid_and_labelled():
    sp = load_sp_ratings()
    m8, m7 = sp.matrix_8x8, sp.matrix_7x7
    assert list(m8.index) == list(GRADES_8) == list(m8.columns)
    assert list(m7.index) == list(GRADES_7) == list(m7.columns)
    np.testing.assert_allclose(m8.sum(axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(m7.sum(axis=1), 1.0, atol=1e-14)
    assert m8.loc["D", "D"] == 1.0 and m7.loc["D", "D"] == 1.0
    # the NR-adjusted matrix is the published one with NR spread proportionally (5-decimal rounding)
    pct = sp.matrix_pct_nr
    np.testing.assert_allclose(pct.sum(axis=1), 100.0, atol=0.011)
    rated = pct.drop(columns="NR")
    np.testing.assert_allclose(m8.iloc[:-1].to_numpy(), (rated.T / rated.sum(axis=1)).T.to_numpy(), atol=2e-4)
    assert m8.loc["CCC", "D"] == pytest.approx(0.31651, abs=1e-4)


def test_annual_counts_are_typed_frames_with_year_index():
    sp = load_sp_ratings()
    for frame in (sp.obligors, sp.defaults):
        assert frame.shape == (20, 5) and list(frame.columns) == list(COUNT_GRADES)
        assert frame.index.name == "year" and list(frame.index) == list(range(1981, 2001))
        assert (frame.dtypes == np.int64).all()
    assert sp.defaults.loc[1981].sum() == 0  # the famous zero-default year
    assert sp.obligors.loc[2000, "A"] == 1215 and sp.defaults.loc[1991, "CCC"] == 19
    assert (sp.defaults <= sp.obligors).all().all()
    assert sp.ccc_share_of_b == pytest.approx(784 / (784 + 7606))
    assert sp.pooled_default_rates["B"] == pytest.approx(403 / 7606)
    assert "S&P Global Ratings" in sp.source


def test_merged_7x7_is_obligor_weighted_and_frames_are_copies():
    sp = load_sp_ratings()
    w = sp.ccc_share_of_b
    m8 = sp.matrix_8x8.to_numpy()
    assert sp.matrix_7x7.loc["B", "D"] == pytest.approx((1 - w) * m8[5, 7] + w * m8[6, 7])
    assert sp.matrix_7x7.loc["BB", "B"] == pytest.approx(m8[4, 5] + m8[4, 6])
    obligors = sp.obligors
    obligors.loc[1981, "A"] = -5
    assert sp.obligors.loc[1981, "A"] == 484 and load_sp_ratings().obligors.loc[1981, "A"] == 484
    with pytest.raises(DataError, match="8, 8"):
        merge_ccc_into_b(np.eye(7), 0.1)


def test_cumulative_default_rates_are_the_2024_study_table_as_fractions():
    from creditsim.datasets.ratings import CUMULATIVE_SOURCE, load_sp_cumulative_default_rates

    cum = load_sp_cumulative_default_rates()
    assert cum.shape == (15, 7) and list(cum.columns) == list(GRADES_8[:-1])
    assert list(cum.index) == list(range(1, 16)) and cum.index.name == "year"
    assert cum.dtypes.eq(np.float64).all()
    # Table 24 of the 2024 study, read in percent: CCC/C 26.12 at one year, BBB 2.86 at ten, B 25.11 at 15
    assert (cum.loc[1, "CCC"], cum.loc[10, "BBB"], cum.loc[15, "B"]) == (0.2612, 0.0286, 0.2511)
    assert (cum.diff().iloc[1:] >= 0).all().all()  # cumulative: never falls with the horizon
    assert "Table 24" in CUMULATIVE_SOURCE and "S&P Global Ratings" in CUMULATIVE_SOURCE
    cum.iloc[0, 0] = 1.0  # a copy: the cache is untouched
    assert load_sp_cumulative_default_rates().iloc[0, 0] == 0.0
